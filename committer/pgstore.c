/*
 * pgstore.c — PostgreSQL for the committer (see pgstore.h).
 */
#include "committer/pgstore.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "base/le.h"
#include "base/names.h"

struct pgstore {
	PGconn *conn;
	/* The COPY buffer (binary rows), reused across batches. */
	uint8_t *buf;
	size_t len, cap;
	int oom;
	/* The batch's seat rows in key order (copy_staged_seats_pools). */
	const chg_seat **order;
	size_t order_cap;
};

/* ---- Errors ---------------------------------------------------------------- */

static int err_set(pgs_err *e, int retry, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->retry = retry;
	e->moved = 0;
	return -1;
}

/* libpq's messages end with a newline; keep one line. */
static void one_line(char *s)
{
	for (char *c = s; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = (c[1] == '\0') ? '\0' : ' ';
}

/* Transient SQLSTATEs: the database is away, busy or short of something
 * that comes back; everything else is a fault no retry cures. */
static int sqlstate_transient(const char *st)
{
	if (!st || strlen(st) != 5)
		return 1; /* no SQLSTATE: the connection itself failed */
	static const char *const classes[] = {"08", "53", "58"};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(st, classes[i], 2) == 0)
			return 1;
	static const char *const codes[] = {"57P01", "57P02", "57P03", "57P04", "57P05", "40001",
					    "40P01", "55P03", "57014"};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(st, codes[i]) == 0)
			return 1;
	return 0;
}

/* What a failed result says, classified. */
static int err_result(pgs_err *e, PGconn *conn, PGresult *r, const char *what)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : NULL;
	if (!msg || !*msg)
		msg = PQerrorMessage(conn);
	int retry = PQstatus(conn) != CONNECTION_OK || sqlstate_transient(st);
	const char *hint = "";
	if (st && strcmp(st, "25006") == 0)
		hint = "the database is read-only: ";
	else if (st && strcmp(st, "42501") == 0)
		hint = "missing privileges: ";
	else if (st && strncmp(st, "28", 2) == 0)
		hint = "not authorized: ";
	err_set(e, retry, "%s%s: %s%s%s", hint, what, msg, st ? " SQLSTATE " : "", st ? st : "");
	one_line(e->msg);
	PQclear(r);
	return -1;
}

/* Runs one command that returns no rows. 0 or -1. */
static int exec_cmd(pgstore *p, const char *sql, const char *what, pgs_err *e)
{
	PGresult *r = PQexec(p->conn, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		return err_result(e, p->conn, r, what);
	PQclear(r);
	return 0;
}

/* ---- Connection ------------------------------------------------------------ */

int pgs_connect(const char *dsn, pgstore **out, pgs_err *e)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
	if (!opts) {
		err_set(e, 0, "invalid DSN: %s", perr ? perr : "out of memory");
		one_line(e->msg);
		PQfreemem(perr);
		return -1;
	}
	PQconninfoFree(opts);
	pgstore *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, 1, "out of memory");
	p->conn = PQconnectdb(dsn);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		const char *m = PQerrorMessage(p->conn);
		/* The server answered and refused: retrying changes nothing. */
		int fatal = strstr(m, "password authentication failed") || strstr(m, "no pg_hba.conf entry") ||
			    strstr(m, "does not exist") || strstr(m, "permission denied") ||
			    strstr(m, "authentication failed") || strstr(m, "no password supplied");
		err_set(e, !fatal, "cannot connect: %s", m);
		one_line(e->msg);
		pgs_close(p);
		return -1;
	}
	/* The migrations' IF NOT EXISTS notices are noise in the server's log. */
	PQclear(PQexec(p->conn, "SET client_min_messages = warning"));
	*out = p;
	return 0;
}

void pgs_close(pgstore *p)
{
	if (!p)
		return;
	if (p->conn)
		PQfinish(p->conn);
	free(p->buf);
	free(p->order);
	free(p);
}

/* ---- Migrations ------------------------------------------------------------ */

static const char STAGING[] =
	"CREATE TEMP TABLE IF NOT EXISTS bo_st_seats (event_id bigint, seat integer, state text, claim_id bigint,"
	" journal_seq bigint) ON COMMIT DELETE ROWS;"
	"CREATE TEMP TABLE IF NOT EXISTS bo_st_pools (event_id bigint, pool smallint, held integer, booked integer,"
	" journal_seq bigint) ON COMMIT DELETE ROWS;"
	"CREATE TEMP TABLE IF NOT EXISTS bo_st_holds (event_id bigint, claim_id bigint, state text,"
	" expires_at timestamptz, ended_seq bigint, ended_at timestamptz) ON COMMIT DELETE ROWS;"
	"CREATE TEMP TABLE IF NOT EXISTS bo_st_bookings (event_id bigint, claim_id bigint, cancelled_seq bigint,"
	" cancelled_at timestamptz, cancel_client_id bigint, cancel_request_id bigint) ON COMMIT DELETE ROWS;"
	/* The staging tables have no statistics, and a batch touches few rows
	 * of large tables: always look them up by primary key rather than let
	 * the planner guess a hash join over a whole seats table. */
	"SET enable_hashjoin = off; SET enable_mergejoin = off;";

/* The schema version the database has (0: none yet), under the lock. */
static int db_version(pgstore *p, unsigned *v, pgs_err *e)
{
	PGresult *r = PQexec(p->conn, "SELECT coalesce(max(version), 0) FROM boxoffice.schema_version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return err_result(e, p->conn, r, "reading boxoffice.schema_version");
	*v = (unsigned)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int pgs_migrate(pgstore *p, pgs_err *e)
{
	unsigned have = 0;
	if (exec_cmd(p,
		     "BEGIN; SELECT pg_advisory_xact_lock(7460, 1);"
		     "CREATE SCHEMA IF NOT EXISTS boxoffice;"
		     "CREATE TABLE IF NOT EXISTS boxoffice.schema_version (version integer PRIMARY KEY,"
		     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		     "creating schema boxoffice", e) < 0 ||
	    db_version(p, &have, e) < 0)
		goto fail;
	if (have > pgs_migration_count) {
		err_set(e, 0,
			"the database's schema is version %u, newer than this binary's %u: upgrade boxoffice "
			"(or point it at another database)",
			have, pgs_migration_count);
		goto fail;
	}
	for (unsigned i = have; i < pgs_migration_count; i++) {
		const pgs_migration *m = &pgs_migrations[i];
		char what[128];
		snprintf(what, sizeof(what), "applying migration %s", m->name);
		if (exec_cmd(p, m->sql, what, e) < 0)
			goto fail;
		char ins[160];
		snprintf(ins, sizeof(ins), "INSERT INTO boxoffice.schema_version (version, name) VALUES (%u, '%s')",
			 m->version, m->name);
		if (exec_cmd(p, ins, what, e) < 0)
			goto fail;
	}
	if (exec_cmd(p, "COMMIT", "committing the migrations", e) < 0 || exec_cmd(p, STAGING, "staging tables", e) < 0)
		goto fail;
	return 0;
fail:
	PQclear(PQexec(p->conn, "ROLLBACK"));
	return -1;
}

/* ---- Checkpoint and holds --------------------------------------------------- */

int pgs_snapshot_begin(pgstore *p, pgs_err *e)
{
	return exec_cmd(p, "BEGIN ISOLATION LEVEL REPEATABLE READ", "opening the read snapshot", e);
}

int pgs_snapshot_end(pgstore *p, pgs_err *e) { return exec_cmd(p, "COMMIT", "closing the read snapshot", e); }

int pgs_checkpoint(pgstore *p, uint32_t shard, uint64_t *seq, uint64_t *outbox, pgs_err *e)
{
	char sql[256];
	/* Read first, create only when absent: in a snapshot (pgs_snapshot_begin)
	 * an INSERT ... ON CONFLICT on a row another committer has moved since
	 * fails with a serialization failure, a needless retry. */
	snprintf(sql, sizeof(sql),
		 "SELECT journal_seq, outbox_position FROM boxoffice.checkpoints WHERE shard = %u", shard);
	PGresult *r = PQexec(p->conn, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
		PQclear(r);
		char ins[256];
		snprintf(ins, sizeof(ins),
			 "INSERT INTO boxoffice.checkpoints (shard, journal_seq, outbox_position) VALUES (%u, 0, 0)"
			 " ON CONFLICT (shard) DO NOTHING",
			 shard);
		if (exec_cmd(p, ins, "creating the checkpoint", e) < 0)
			return -1;
		r = PQexec(p->conn, sql);
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return err_result(e, p->conn, r, "reading the checkpoint");
	long long s = strtoll(PQgetvalue(r, 0, 0), NULL, 10), o = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	if (s < 0 || o < 0)
		return err_set(e, 0, "shard %u's checkpoint is negative (%lld, %lld)", shard, s, o);
	*seq = (uint64_t)s;
	*outbox = (uint64_t)o;
	return 0;
}

/* Parses "{1,2,3}" into seats; returns the count or -1. */
static int parse_seats(const char *s, uint32_t *seats)
{
	if (*s++ != '{')
		return -1;
	int n = 0;
	while (*s && *s != '}') {
		char *end;
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || n >= (int)BO_SEATS_PER_HOLD_MAX || v > UINT32_MAX)
			return -1;
		seats[n++] = (uint32_t)v;
		s = *end == ',' ? end + 1 : end;
	}
	return *s == '}' ? n : -1;
}

int pgs_load_holds(pgstore *p, uint32_t shard, chg_state *st, pgs_err *e)
{
	char sql[512];
	/* A hold lives at most BO_HOLD_LIFETIME_MS_MAX from its creation, so
	 * the holds active at the checkpoint were made within that time
	 * before the checkpoint's record (holds_recent, schemas/sql). */
	snprintf(sql, sizeof(sql),
		 "SELECT event_id, claim_id, client_id, request_id, seats, pool, quantity,"
		 " (extract(epoch FROM expires_at) * 1000)::bigint, created_seq,"
		 " (extract(epoch FROM created_at) * 1000)::bigint"
		 " FROM boxoffice.holds WHERE shard = %u AND state = 'held' AND created_at >="
		 " (SELECT journal_at FROM boxoffice.checkpoints WHERE shard = %u) - interval '%u milliseconds'",
		 shard, shard, BO_HOLD_LIFETIME_MS_MAX + 60000u);
	PGresult *r = PQexec(p->conn, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return err_result(e, p->conn, r, "loading the active holds");
	for (int i = 0; i < PQntuples(r); i++) {
		chg_claim c = {0};
		c.event_id = (uint64_t)strtoll(PQgetvalue(r, i, 0), NULL, 10);
		c.claim_id = (uint64_t)strtoll(PQgetvalue(r, i, 1), NULL, 10);
		c.client_id = (uint64_t)strtoll(PQgetvalue(r, i, 2), NULL, 10);
		c.request_id = (uint64_t)strtoll(PQgetvalue(r, i, 3), NULL, 10);
		c.quantity = (uint32_t)strtoul(PQgetvalue(r, i, 6), NULL, 10);
		/* Rows are outside input: a seat hold has 1..16 seats and their
		 * count as quantity, a pool hold a pool and 1..100 tickets. */
		int n = PQgetisnull(r, i, 4) ? 0 : parse_seats(PQgetvalue(r, i, 4), c.seats);
		long pool = PQgetisnull(r, i, 5) ? -1 : strtol(PQgetvalue(r, i, 5), NULL, 10);
		int seat_hold = n > 0 && pool < 0 && c.quantity == (uint32_t)n;
		int pool_hold = PQgetisnull(r, i, 4) && pool >= 0 && pool < (long)BO_POOLS_PER_EVENT_MAX &&
				c.quantity >= 1 && c.quantity <= BO_POOL_QTY_PER_HOLD_MAX;
		if (!seat_hold && !pool_hold) {
			PQclear(r);
			return err_set(e, 0, "hold %llu of event %llu has bad seats, pool or quantity in the database",
				       (unsigned long long)c.claim_id, (unsigned long long)c.event_id);
		}
		c.seat_count = (uint8_t)(seat_hold ? n : 0);
		c.pool = seat_hold ? -1 : (int32_t)pool;
		int64_t expires = strtoll(PQgetvalue(r, i, 7), NULL, 10);
		uint64_t cseq = (uint64_t)strtoll(PQgetvalue(r, i, 8), NULL, 10);
		int64_t cms = strtoll(PQgetvalue(r, i, 9), NULL, 10);
		int rc = chg_load_hold(st, &c, expires, cseq, cms);
		if (rc) {
			PQclear(r);
			return err_set(e, rc == -ENOMEM, "loading hold %llu of event %llu: %s",
				       (unsigned long long)c.claim_id, (unsigned long long)c.event_id, strerror(-rc));
		}
	}
	PQclear(r);
	return 0;
}

void pgs_payref_text(const char *payref, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)payref[i];
		if (c >= 0x20 && c <= 0x7e && c != '\\') {
			*out++ = (char)c;
		} else {
			*out++ = '\\';
			*out++ = 'x';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	*out = '\0';
}

/* ---- COPY (FORMAT binary) ------------------------------------------------------
 *
 * The format: a signature, flags and header extension, then per row a
 * 16-bit field count and per field a 32-bit length (-1: NULL) and the
 * value in the type's binary send format (big-endian integers; text as
 * bytes; timestamptz as microseconds since 2000-01-01; arrays as ndim,
 * flags, element type, per dimension length and lower bound, then the
 * elements each with its length), and a 16-bit -1 to end. */

#define COPY_FLUSH_BYTES (1u << 20)
#define PG_EPOCH_MS 946684800000LL /* 2000-01-01 in Unix milliseconds */
#define INT4OID 23

static void cb_put(pgstore *p, const void *v, size_t n)
{
	if (p->len + n > p->cap) {
		size_t nc = p->cap ? p->cap : 65536;
		while (nc < p->len + n)
			nc *= 2;
		uint8_t *b = realloc(p->buf, nc);
		if (!b) {
			p->oom = 1;
			return;
		}
		p->buf = b;
		p->cap = nc;
	}
	memcpy(p->buf + p->len, v, n);
	p->len += n;
}

static void cb_be16(pgstore *p, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	cb_put(p, b, 2);
}

static void cb_be32(pgstore *p, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	cb_put(p, b, 4);
}

static void cb_be64(pgstore *p, uint64_t v)
{
	cb_be32(p, (uint32_t)(v >> 32));
	cb_be32(p, (uint32_t)v);
}

static void f_null(pgstore *p) { cb_be32(p, UINT32_MAX); }
static void f_i16(pgstore *p, int v) { cb_be32(p, 2), cb_be16(p, (uint16_t)(int16_t)v); }
static void f_i32(pgstore *p, int64_t v) { cb_be32(p, 4), cb_be32(p, (uint32_t)(int32_t)v); }
static void f_i64(pgstore *p, uint64_t v) { cb_be32(p, 8), cb_be64(p, v); }
static void f_i64_or_null(pgstore *p, uint64_t v) { v ? f_i64(p, v) : f_null(p); }
static void f_ts(pgstore *p, int64_t ms) { f_i64(p, (uint64_t)((ms - PG_EPOCH_MS) * 1000)); }
static void f_ts_or_null(pgstore *p, int64_t ms) { ms ? f_ts(p, ms) : f_null(p); }

static void f_text(pgstore *p, const char *s, size_t n)
{
	cb_be32(p, (uint32_t)n);
	cb_put(p, s, n);
}

static void f_str(pgstore *p, const char *s) { f_text(p, s, strlen(s)); }

static void f_int4_array(pgstore *p, const uint32_t *v, uint32_t n)
{
	cb_be32(p, 20 + 8 * n);
	cb_be32(p, 1); /* ndim */
	cb_be32(p, 0); /* no NULLs */
	cb_be32(p, INT4OID);
	cb_be32(p, n); /* length */
	cb_be32(p, 1); /* lower bound */
	for (uint32_t i = 0; i < n; i++) {
		cb_be32(p, 4);
		cb_be32(p, v[i]);
	}
}

/* A claim's seats (NULL for a pool claim) and pool (NULL for seats). */
static void f_claim(pgstore *p, const chg_claim *c)
{
	if (c->pool < 0) {
		f_int4_array(p, c->seats, c->seat_count);
		f_null(p);
	} else {
		f_null(p);
		f_i16(p, c->pool);
	}
}

static void row(pgstore *p, int fields) { cb_be16(p, (uint16_t)fields); }

static int copy_flush(pgstore *p, pgs_err *e)
{
	if (p->oom)
		return err_set(e, 1, "out of memory building a batch");
	if (p->len && PQputCopyData(p->conn, (const char *)p->buf, (int)p->len) != 1)
		return err_result(e, p->conn, NULL, "sending COPY data");
	p->len = 0;
	return 0;
}

static int copy_begin(pgstore *p, const char *sql, pgs_err *e)
{
	PGresult *r = PQexec(p->conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN)
		return err_result(e, p->conn, r, sql);
	PQclear(r);
	static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
	p->len = 0;
	p->oom = 0;
	cb_put(p, sig, sizeof(sig));
	cb_be32(p, 0); /* flags */
	cb_be32(p, 0); /* header extension */
	return 0;
}

/* Flushes when the buffer is large; call between rows. */
static int copy_maybe_flush(pgstore *p, pgs_err *e) { return p->len >= COPY_FLUSH_BYTES ? copy_flush(p, e) : 0; }

static int copy_end(pgstore *p, const char *what, pgs_err *e)
{
	cb_be16(p, UINT16_MAX);
	if (copy_flush(p, e) < 0) {
		PQputCopyEnd(p->conn, "aborted");
		PQclear(PQgetResult(p->conn));
		return -1;
	}
	if (PQputCopyEnd(p->conn, NULL) != 1)
		return err_result(e, p->conn, NULL, what);
	PGresult *r = PQgetResult(p->conn);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return err_result(e, p->conn, r, what);
	PQclear(r);
	while ((r = PQgetResult(p->conn)) != NULL)
		PQclear(r);
	return 0;
}

/* ---- One batch --------------------------------------------------------------- */

/* events, event_rows, seats and pools of the events the batch created. */
static int copy_new_events(pgstore *p, uint32_t shard, const chg_batch *b, pgs_err *e)
{
	if (copy_begin(p,
		       "COPY boxoffice.events (event_id, shard, seat_count, row_count, category_count, pool_count,"
		       " client_id, request_id, journal_seq, created_at) FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->events.n; i++) {
		const chg_event *ev = &b->events.v[i];
		row(p, 10);
		f_i64(p, ev->event_id), f_i32(p, shard), f_i32(p, ev->map->seat_count), f_i32(p, ev->map->row_count);
		f_i16(p, (int)ev->map->category_count), f_i16(p, (int)ev->map->pool_count);
		f_i64(p, ev->client_id), f_i64(p, ev->request_id), f_i64(p, ev->seq), f_ts(p, ev->at_ms);
	}
	if (copy_end(p, "COPY events", e) < 0 ||
	    copy_begin(p, "COPY boxoffice.event_rows (event_id, row_no, section, first_seat, seats) FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->events.n; i++) {
		const chg_event *ev = &b->events.v[i];
		for (uint32_t r = 0, first = 0; r < ev->map->row_count; first += ev->map->rows[r].seats, r++) {
			row(p, 5);
			f_i64(p, ev->event_id), f_i32(p, r), f_i32(p, ev->map->rows[r].section), f_i32(p, first);
			f_i32(p, ev->map->rows[r].seats);
		}
	}
	if (copy_end(p, "COPY event_rows", e) < 0 ||
	    copy_begin(p,
		       "COPY boxoffice.seats (event_id, seat, row_no, category, state, claim_id, journal_seq)"
		       " FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->events.n; i++) {
		const chg_event *ev = &b->events.v[i];
		uint32_t seat = 0;
		for (uint32_t r = 0; r < ev->map->row_count; r++) {
			for (uint32_t k = 0; k < ev->map->rows[r].seats; k++, seat++) {
				row(p, 7);
				f_i64(p, ev->event_id), f_i32(p, seat), f_i32(p, r);
				f_i16(p, ev->map->categories[seat]), f_str(p, "free"), f_null(p), f_i64(p, ev->seq);
				if (copy_maybe_flush(p, e) < 0)
					return -1;
			}
		}
	}
	if (copy_end(p, "COPY seats", e) < 0 ||
	    copy_begin(p,
		       "COPY boxoffice.pools (event_id, pool, capacity, held, booked, journal_seq)"
		       " FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->events.n; i++) {
		const chg_event *ev = &b->events.v[i];
		for (uint32_t k = 0; k < ev->map->pool_count; k++) {
			row(p, 6);
			f_i64(p, ev->event_id), f_i16(p, (int)k), f_i32(p, ev->map->pool_capacity[k]);
			f_i32(p, 0), f_i32(p, 0), f_i64(p, ev->seq);
		}
	}
	return copy_end(p, "COPY pools", e);
}

static int copy_holds(pgstore *p, uint32_t shard, const chg_batch *b, pgs_err *e)
{
	size_t fresh = 0, upd = 0;
	for (size_t i = 0; i < b->holds.n; i++)
		b->holds.v[i].is_new ? fresh++ : upd++;
	if (fresh) {
		if (copy_begin(p,
			       "COPY boxoffice.holds (event_id, claim_id, shard, client_id, request_id, seats, pool,"
			       " quantity, state, expires_at, created_seq, created_at, ended_seq, ended_at)"
			       " FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->holds.n; i++) {
			const chg_hold *h = &b->holds.v[i];
			if (!h->is_new)
				continue;
			row(p, 14);
			f_i64(p, h->c.event_id), f_i64(p, h->c.claim_id), f_i32(p, shard);
			f_i64(p, h->c.client_id), f_i64(p, h->c.request_id), f_claim(p, &h->c), f_i32(p, h->c.quantity);
			f_str(p, chg_hold_state_str(h->state)), f_ts(p, h->expires_ms), f_i64(p, h->created_seq);
			f_ts(p, h->created_ms), f_i64_or_null(p, h->ended_seq), f_ts_or_null(p, h->ended_ms);
			if (copy_maybe_flush(p, e) < 0)
				return -1;
		}
		if (copy_end(p, "COPY holds", e) < 0)
			return -1;
	}
	if (upd) {
		if (copy_begin(p,
			       "COPY bo_st_holds (event_id, claim_id, state, expires_at, ended_seq, ended_at)"
			       " FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->holds.n; i++) {
			const chg_hold *h = &b->holds.v[i];
			if (h->is_new)
				continue;
			row(p, 6);
			f_i64(p, h->c.event_id), f_i64(p, h->c.claim_id), f_str(p, chg_hold_state_str(h->state));
			f_ts_or_null(p, h->expires_ms), f_i64_or_null(p, h->ended_seq), f_ts_or_null(p, h->ended_ms);
			if (copy_maybe_flush(p, e) < 0)
				return -1;
		}
		if (copy_end(p, "COPY holds staging", e) < 0)
			return -1;
	}
	return 0;
}

static int copy_bookings(pgstore *p, uint32_t shard, const chg_batch *b, pgs_err *e)
{
	size_t fresh = 0, upd = 0;
	for (size_t i = 0; i < b->bookings.n; i++)
		b->bookings.v[i].is_new ? fresh++ : upd++;
	if (fresh) {
		if (copy_begin(p,
			       "COPY boxoffice.bookings (event_id, claim_id, shard, client_id, request_id, payref,"
			       " payref_bytes, seats, pool, quantity, state, confirmed_seq, confirmed_at,"
			       " cancelled_seq, cancelled_at, cancel_client_id, cancel_request_id)"
			       " FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->bookings.n; i++) {
			const chg_booking *bk = &b->bookings.v[i];
			if (!bk->is_new)
				continue;
			char text[4 * BO_PAYREF_LEN_MAX + 1];
			pgs_payref_text(bk->payref, bk->payref_len, text);
			int cancelled = bk->cancelled_seq != 0;
			row(p, 17);
			f_i64(p, bk->c.event_id), f_i64(p, bk->c.claim_id), f_i32(p, shard), f_i64(p, bk->c.client_id);
			f_i64(p, bk->c.request_id), f_str(p, text), f_text(p, bk->payref, bk->payref_len);
			f_claim(p, &bk->c), f_i32(p, bk->c.quantity), f_str(p, chg_booking_state_str(bk->state));
			f_i64(p, bk->confirmed_seq), f_ts(p, bk->confirmed_ms), f_i64_or_null(p, bk->cancelled_seq);
			f_ts_or_null(p, bk->cancelled_ms);
			cancelled ? f_i64(p, bk->cancel_client_id) : f_null(p);
			cancelled ? f_i64(p, bk->cancel_request_id) : f_null(p);
			if (copy_maybe_flush(p, e) < 0)
				return -1;
		}
		if (copy_end(p, "COPY bookings", e) < 0)
			return -1;
	}
	if (upd) {
		if (copy_begin(p,
			       "COPY bo_st_bookings (event_id, claim_id, cancelled_seq, cancelled_at, cancel_client_id,"
			       " cancel_request_id) FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->bookings.n; i++) {
			const chg_booking *bk = &b->bookings.v[i];
			if (bk->is_new)
				continue;
			row(p, 6);
			f_i64(p, bk->c.event_id), f_i64(p, bk->c.claim_id), f_i64(p, bk->cancelled_seq);
			f_ts(p, bk->cancelled_ms), f_i64(p, bk->cancel_client_id), f_i64(p, bk->cancel_request_id);
			if (copy_maybe_flush(p, e) < 0)
				return -1;
		}
		if (copy_end(p, "COPY bookings staging", e) < 0)
			return -1;
	}
	return 0;
}

static int copy_changes(pgstore *p, uint32_t shard, const chg_batch *b, pgs_err *e)
{
	if (copy_begin(p,
		       "COPY boxoffice.seat_changes (shard, journal_seq, ordinal, event_id, seat, pool, quantity,"
		       " from_state, to_state, cause, claim_id, client_id, request_id, journal_at)"
		       " FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->changes.n; i++) {
		const chg_change *c = &b->changes.v[i];
		row(p, 14);
		f_i32(p, shard), f_i64(p, c->seq), f_i32(p, c->ordinal), f_i64(p, c->event_id);
		c->seat >= 0 ? f_i32(p, c->seat) : f_null(p);
		c->seat < 0 ? f_i16(p, c->pool) : f_null(p);
		f_i32(p, c->quantity), f_str(p, bo_seat_state_str(c->from)), f_str(p, bo_seat_state_str(c->to));
		f_str(p, chg_cause_str(c->cause)), f_i64_or_null(p, c->claim_id), f_i64(p, c->client_id);
		f_i64(p, c->request_id), f_ts(p, c->at_ms);
		if (copy_maybe_flush(p, e) < 0)
			return -1;
	}
	return copy_end(p, "COPY seat_changes", e);
}

static int copy_outbox(pgstore *p, uint32_t shard, const chg_batch *b, pgs_err *e)
{
	if (copy_begin(p,
		       "COPY boxoffice.inventory_events (shard, position, event_type, event_id, claim_id, client_id,"
		       " request_id, seats, pool, quantity, payref, expires_at, journal_seq, occurred_at)"
		       " FROM STDIN (FORMAT binary)",
		       e) < 0)
		return -1;
	for (size_t i = 0; i < b->outbox.n; i++) {
		const chg_outbox *o = &b->outbox.v[i];
		row(p, 14);
		f_i32(p, shard), f_i64(p, o->position), f_str(p, chg_outbox_type_str(o->type));
		f_i64(p, o->c.event_id), f_i64(p, o->c.claim_id), f_i64(p, o->c.client_id), f_i64(p, o->c.request_id);
		f_claim(p, &o->c), f_i32(p, o->c.quantity);
		if (o->type == CHG_O_BOOKING_CONFIRMED) {
			char text[4 * BO_PAYREF_LEN_MAX + 1];
			pgs_payref_text(o->payref, o->payref_len, text);
			f_str(p, text);
		} else {
			f_null(p);
		}
		f_ts_or_null(p, o->expires_ms), f_i64(p, o->seq), f_ts(p, o->at_ms);
		if (copy_maybe_flush(p, e) < 0)
			return -1;
	}
	return copy_end(p, "COPY inventory_events", e);
}

static int seat_cmp(const void *x, const void *y)
{
	const chg_seat *a = *(const chg_seat *const *)x, *b = *(const chg_seat *const *)y;
	if (a->event_id != b->event_id)
		return a->event_id < b->event_id ? -1 : 1;
	return a->seat < b->seat ? -1 : a->seat > b->seat;
}

/* The staged seat and pool changes. Seats go in primary-key order: the
 * UPDATE's probes then walk the seats table's index and pages in order
 * (neighbouring seats share pages) instead of jumping about. */
static int copy_staged_seats_pools(pgstore *p, const chg_batch *b, pgs_err *e)
{
	if (b->seats.n) {
		if (b->seats.n > p->order_cap) {
			const chg_seat **o = realloc(p->order, b->seats.n * sizeof(*o));
			if (!o)
				return err_set(e, 1, "out of memory building a batch");
			p->order = o;
			p->order_cap = b->seats.n;
		}
		for (size_t i = 0; i < b->seats.n; i++)
			p->order[i] = &b->seats.v[i];
		qsort(p->order, b->seats.n, sizeof(*p->order), seat_cmp);
		if (copy_begin(p, "COPY bo_st_seats (event_id, seat, state, claim_id, journal_seq) FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->seats.n; i++) {
			const chg_seat *s = p->order[i];
			row(p, 5);
			f_i64(p, s->event_id), f_i32(p, s->seat), f_str(p, bo_seat_state_str(s->state));
			f_i64_or_null(p, s->claim_id), f_i64(p, s->seq);
			if (copy_maybe_flush(p, e) < 0)
				return -1;
		}
		if (copy_end(p, "COPY seats staging", e) < 0)
			return -1;
	}
	if (b->pools.n) {
		if (copy_begin(p, "COPY bo_st_pools (event_id, pool, held, booked, journal_seq) FROM STDIN (FORMAT binary)",
			       e) < 0)
			return -1;
		for (size_t i = 0; i < b->pools.n; i++) {
			const chg_pool *s = &b->pools.v[i];
			row(p, 5);
			f_i64(p, s->event_id), f_i16(p, (int)s->pool), f_i32(p, s->held), f_i32(p, s->booked);
			f_i64(p, s->seq);
		}
		if (copy_end(p, "COPY pools staging", e) < 0)
			return -1;
	}
	return 0;
}

/* The set-based updates from the staging tables, the NOTIFY and COMMIT, in
 * one round trip. */
static int finish_batch(pgstore *p, uint32_t shard, const chg_batch *b, const char *channel, pgs_err *e)
{
	char sql[2048];
	size_t n = 0;
	sql[0] = '\0';
#define ADD(...) n += (size_t)snprintf(sql + n, sizeof(sql) - n, __VA_ARGS__)
	if (b->seats.n)
		ADD("UPDATE boxoffice.seats s SET state = t.state, claim_id = t.claim_id, journal_seq = t.journal_seq"
		    " FROM bo_st_seats t WHERE s.event_id = t.event_id AND s.seat = t.seat;");
	if (b->pools.n)
		ADD("UPDATE boxoffice.pools s SET held = s.held + t.held, booked = s.booked + t.booked,"
		    " journal_seq = t.journal_seq FROM bo_st_pools t WHERE s.event_id = t.event_id AND s.pool = t.pool;");
	ADD("UPDATE boxoffice.holds s SET state = t.state, expires_at = coalesce(t.expires_at, s.expires_at),"
	    " ended_seq = coalesce(t.ended_seq, s.ended_seq), ended_at = coalesce(t.ended_at, s.ended_at)"
	    " FROM bo_st_holds t WHERE s.event_id = t.event_id AND s.claim_id = t.claim_id;"
	    "UPDATE boxoffice.bookings s SET state = 'cancelled', cancelled_seq = t.cancelled_seq,"
	    " cancelled_at = t.cancelled_at, cancel_client_id = t.cancel_client_id,"
	    " cancel_request_id = t.cancel_request_id"
	    " FROM bo_st_bookings t WHERE s.event_id = t.event_id AND s.claim_id = t.claim_id;");
	if (b->outbox.n)
		ADD("NOTIFY %s, '%u:%" PRIu64 "';", channel, shard, b->outbox.v[b->outbox.n - 1].position);
	ADD("COMMIT");
#undef ADD
	assert(n < sizeof(sql));
	return exec_cmd(p, sql, "applying the batch", e);
}

int pgs_apply(pgstore *p, uint32_t shard, uint64_t prev_seq, const chg_batch *b, const char *channel, pgs_err *e)
{
	assert(b->last_seq > prev_seq);
	uint64_t outbox_last = b->outbox.n ? b->outbox.v[b->outbox.n - 1].position : b->outbox_first;
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "BEGIN; UPDATE boxoffice.checkpoints SET journal_seq = %" PRIu64 ", outbox_position = %" PRIu64
		 ", journal_at = to_timestamp(%" PRId64 " / 1000.0), updated_at = now()"
		 " WHERE shard = %u AND journal_seq = %" PRIu64,
		 b->last_seq, outbox_last, b->last_ms, shard, prev_seq);
	PGresult *r = PQexec(p->conn, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		err_result(e, p->conn, r, "moving the checkpoint");
		goto fail;
	}
	if (strcmp(PQcmdTuples(r), "1") != 0) {
		PQclear(r);
		err_set(e, 0,
			"shard %u's checkpoint is no longer %" PRIu64
			": another committer is writing this shard to the same database",
			shard, prev_seq);
		e->moved = 1;
		goto fail;
	}
	PQclear(r);
	if ((b->events.n && copy_new_events(p, shard, b, e) < 0) || copy_holds(p, shard, b, e) < 0 ||
	    copy_bookings(p, shard, b, e) < 0 || (b->changes.n && copy_changes(p, shard, b, e) < 0) ||
	    (b->outbox.n && copy_outbox(p, shard, b, e) < 0) || copy_staged_seats_pools(p, b, e) < 0 ||
	    finish_batch(p, shard, b, channel, e) < 0)
		goto fail;
	return 0;
fail:
	if (PQstatus(p->conn) == CONNECTION_OK)
		PQclear(PQexec(p->conn, "ROLLBACK"));
	return -1;
}
