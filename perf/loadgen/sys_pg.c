/*
 * sys_pg.c — the PostgreSQL row-lock baseline of boxoffice-bench (lg_sys_pg,
 * "postgres"): seat holds the way teams write them on PostgreSQL 15 with
 * libpq, synchronous_commit on.
 *
 * Target: a libpq conninfo (default "host=127.0.0.1 port=5432
 * dbname=postgres"). One PGconn per lg_conn. No options (--opt).
 *
 * Schema, in its own schema `pgrowlock` so it never meets boxoffice's
 * committer tables in the same database (setup drops and creates it):
 *   pgrowlock.events(event int PK, capacity int)      what a read needs
 *   pgrowlock.seats(event int, seat int, category smallint,
 *                   status smallint  0 free / 1 held / 2 booked,
 *                   claim bigint     the hold (= the hold's request_id),
 *                   expires_at timestamptz,  PRIMARY KEY (event, seat))
 *   seats_taken  ON seats (event) INCLUDE (status, expires_at) WHERE status <> 0
 *       a read counts the event's non-free rows (booked, or held and not
 *       expired) from this index alone: its size follows the seats sold,
 *       not the hall, and INCLUDE lets the count skip the heap where the
 *       visibility map allows. free = capacity - that count.
 *   seats_open   ON seats (event, category, seat) WHERE status <> 2
 *       best-available walks the unsold seats of one category in seat
 *       order without stepping over the sold ones.
 * An expired hold is free (as in boxoffice and in Redis's key expiry): every
 * statement treats status 1 with expires_at <= now() as status 0, so no
 * sweeper is needed and none runs.
 *
 * Every request is ONE statement in autocommit: a data-modifying CTE that
 * locks the rows it needs (SELECT ... FOR UPDATE, in seat order so two holds
 * over the same seats queue instead of deadlocking) and an UPDATE ...
 * RETURNING that changes them only when it locked all of them:
 *   hold_seats  lock the asked seats that are free; update iff all n are
 *   hold_best   lock the first n free seats of the category, FOR UPDATE SKIP
 *               LOCKED (never wait on another buyer's candidate); update iff n
 *   confirm     lock the claim's seats still held by it and not expired;
 *               status 2 iff all n (else LG_EXPIRED)
 *   release     the same, back to free
 * Why one statement and not BEGIN / SELECT FOR UPDATE / UPDATE /
 * COMMIT-or-ROLLBACK: it is the same row-lock transaction, but its
 * all-or-nothing decision is taken inside the server, so it costs one round
 * trip instead of four and can be pipelined — a pipeline cannot wait for a
 * SELECT's answer to choose between COMMIT and ROLLBACK. Under READ
 * COMMITTED, a row another transaction changed while we waited for its lock
 * is re-checked on its new version (EvalPlanQual), so a seat taken in the
 * meantime drops out of the CTE and the count check refuses the hold.
 *
 * depth 1: PQexecPrepared, one request per round trip. depth > 1: the
 * connection stays in libpq pipeline mode; exec sends every request with
 * PQsendQueryPrepared followed by its own PQpipelineSync, then reads all
 * answers. The Sync after each request makes it its own implicit
 * transaction: one Sync for the whole round would make the round one
 * transaction (one conflict aborting all of it, locks held until its end).
 * Commits of concurrent backends share WAL flushes (group commit).
 *
 * Outcomes: 40001 serialization failure and 40P01 deadlock (a real outcome
 * users see and retry; the seat-ordered locks make it rare), class 53
 * (insufficient resources) and 57014 (statement cancelled) -> LG_BUSY:
 * retryable. A lost connection (class 08, admin shutdown, CONNECTION_BAD)
 * -> LG_NO_ANSWER, and the next exec reconnects. Anything else ->
 * LG_ERROR, the first such message printed once on stderr.
 *
 * Audit: "pgrowlock_booked" and "pgrowlock_held" (live holds), summed over
 * events 0..cfg->events-1. Not "postgres_*": that is the boxoffice system's
 * committer figure.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lg.h"

#define PG_TARGET_DEFAULT "host=127.0.0.1 port=5432 dbname=postgres"

/* The prepared statements, by name. $1 is always the event. */
static const struct pg_stmt {
	const char *name;
	int nparams;
	const char *sql;
} pg_stmts[LG_OP_COUNT] = {
        [LG_READ] = {"lg_read", 1,
                     "SELECT e.capacity - (SELECT count(*) FROM pgrowlock.seats s"
                     " WHERE s.event = $1 AND s.status <> 0"
                     " AND (s.status = 2 OR s.expires_at > now()))"
                     " FROM pgrowlock.events e WHERE e.event = $1"},
        /* $2 seats, $3 claim, $4 ttl_ms */
        [LG_HOLD_SEATS] = {"lg_hold_seats", 4,
                           "WITH want AS MATERIALIZED (SELECT seat FROM pgrowlock.seats"
                           " WHERE event = $1 AND seat = ANY($2::int[])"
                           " AND (status = 0 OR (status = 1 AND expires_at <= now()))"
                           " ORDER BY seat FOR UPDATE)"
                           " UPDATE pgrowlock.seats s SET status = 1, claim = $3,"
                           " expires_at = now() + $4::int * interval '1 millisecond'"
                           " WHERE s.event = $1 AND s.seat = ANY(ARRAY(SELECT seat FROM want))"
                           " AND (SELECT count(*) FROM want) = cardinality($2::int[])"
                           " RETURNING s.seat"},
        /* $2 category, $3 quantity, $4 claim, $5 ttl_ms */
        [LG_HOLD_BEST] = {"lg_hold_best", 5,
                          "WITH pick AS MATERIALIZED (SELECT seat FROM pgrowlock.seats"
                          " WHERE event = $1 AND category = $2::smallint AND status <> 2"
                          " AND (status = 0 OR expires_at <= now())"
                          " ORDER BY seat LIMIT $3 FOR UPDATE SKIP LOCKED)"
                          " UPDATE pgrowlock.seats s SET status = 1, claim = $4,"
                          " expires_at = now() + $5::int * interval '1 millisecond'"
                          " WHERE s.event = $1 AND s.seat = ANY(ARRAY(SELECT seat FROM pick))"
                          " AND (SELECT count(*) FROM pick) = $3"
                          " RETURNING s.seat"},
        /* $2 seats, $3 claim */
        [LG_CONFIRM] = {"lg_confirm", 3,
                        "WITH mine AS MATERIALIZED (SELECT seat FROM pgrowlock.seats"
                        " WHERE event = $1 AND seat = ANY($2::int[]) AND claim = $3"
                        " AND status = 1 AND expires_at > now() ORDER BY seat FOR UPDATE)"
                        " UPDATE pgrowlock.seats s SET status = 2, expires_at = NULL"
                        " WHERE s.event = $1 AND s.seat = ANY(ARRAY(SELECT seat FROM mine))"
                        " AND (SELECT count(*) FROM mine) = cardinality($2::int[])"
                        " RETURNING s.seat"},
        [LG_RELEASE] = {"lg_release", 3,
                        "WITH mine AS MATERIALIZED (SELECT seat FROM pgrowlock.seats"
                        " WHERE event = $1 AND seat = ANY($2::int[]) AND claim = $3"
                        " AND status = 1 AND expires_at > now() ORDER BY seat FOR UPDATE)"
                        " UPDATE pgrowlock.seats s SET status = 0, claim = NULL, expires_at = NULL"
                        " WHERE s.event = $1 AND s.seat = ANY(ARRAY(SELECT seat FROM mine))"
                        " AND (SELECT count(*) FROM mine) = cardinality($2::int[])"
                        " RETURNING s.seat"},
};

#define PG_PARAMS_MAX 5
/* Text of one parameter: a uint64, or "{s,s,...}" of LG_SEATS_MAX seats. */
#define PG_PARAM_LEN (2 + LG_SEATS_MAX * 11)

typedef struct pg_sys {
	char *conninfo;       /* owned */
	uint32_t depth;       /* > 1: connections run in pipeline mode */
	int sync_per_request; /* --opt sync=request: one Sync (transaction) per request */
	atomic_int err_said;  /* the first LG_ERROR message was printed */
} pg_sys;

typedef struct pg_conn {
	pg_sys *sys;
	PGconn *pc; /* NULL after a lost connection: exec reconnects */
} pg_conn;

/* libpq's messages end in a newline and may span lines; err is one line.
 * Called on every error the system returns. */
static void pg_err_trim(char *err)
{
	size_t n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

/* Runs one utility statement; 0, or -EIO with err naming `what`. */
static int pg_run(PGconn *pc, const char *sql, const char *what, char *err)
{
	PGresult *r = PQexec(pc, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		snprintf(err, LG_ERR_LEN, "postgres: %s: %s", what, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -EIO;
}

/* Connects; 0 and *out, or -ECONNREFUSED with err. */
static int pg_connect(const char *conninfo, PGconn **out, char *err)
{
	PGconn *pc = PQconnectdb(conninfo);
	if (PQstatus(pc) != CONNECTION_OK) {
		snprintf(err, LG_ERR_LEN, "postgres: cannot connect to \"%s\": %s", conninfo,
		         PQerrorMessage(pc));
		PQfinish(pc);
		return -ECONNREFUSED;
	}
	*out = pc;
	return 0;
}

/* Says on stderr how durable the server is (synchronous_commit and fsync
 * must stay on for a fair comparison: boxoffice fsyncs before it answers). */
static void pg_log_durability(PGconn *pc)
{
	const char *names[] = {"synchronous_commit", "fsync"};
	for (size_t i = 0; i < 2; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SHOW %s", names[i]);
		PGresult *r = PQexec(pc, sql);
		const char *v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
		                        ? PQgetvalue(r, 0, 0)
		                        : "?";
		fprintf(stderr, "boxoffice-bench: postgres: %s = %s%s\n", names[i], v,
		        strcmp(v, "on") == 0 ? "" : " (NOT durable: figures are not comparable)");
		PQclear(r);
	}
}

/* Creates the schema and cfg's events, all seats free. */
static int pg_create(PGconn *pc, const lg_config *cfg, char *err)
{
	static const char *ddl =
	        "SET client_min_messages = warning;" /* no NOTICE for the first DROP */
	        "DROP SCHEMA IF EXISTS pgrowlock CASCADE;"
	        "CREATE SCHEMA pgrowlock;"
	        "CREATE TABLE pgrowlock.events (event int PRIMARY KEY, capacity int NOT NULL);"
	        "CREATE TABLE pgrowlock.seats (event int NOT NULL, seat int NOT NULL,"
	        " category smallint NOT NULL, status smallint NOT NULL DEFAULT 0,"
	        " claim bigint, expires_at timestamptz)";
	int rc = pg_run(pc, ddl, "creating the schema", err);
	if (rc < 0)
		return rc;
	/* The same bands as lg_category(): rows split into `categories`
	 * bands of `band` rows, best first. The primary key and indexes are
	 * built after the rows go in: one sort each instead of a per-row
	 * index insert. */
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	uint32_t band = (rows + cfg->categories - 1) / cfg->categories;
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO pgrowlock.events SELECT e, %" PRIu32
	         " FROM generate_series(0, %" PRIu32 " - 1) e;"
	         "INSERT INTO pgrowlock.seats (event, seat, category)"
	         " SELECT e, s, (s / %" PRIu32 ") / %" PRIu32 " FROM generate_series(0, %" PRIu32
	         " - 1) e,"
	         " generate_series(0, %" PRIu32 " - 1) s ORDER BY e, s;"
	         "ALTER TABLE pgrowlock.seats ADD PRIMARY KEY (event, seat);"
	         "CREATE INDEX seats_taken ON pgrowlock.seats (event)"
	         " INCLUDE (status, expires_at) WHERE status <> 0;"
	         "CREATE INDEX seats_open ON pgrowlock.seats (event, category, seat)"
	         " WHERE status <> 2",
	         cfg->seats_per_event, cfg->events, cfg->per_row, band, cfg->events,
	         cfg->seats_per_event);
	rc = pg_run(pc, sql, "creating the events", err);
	if (rc < 0)
		return rc;
	/* Planner statistics and the visibility map from the start, as a
	 * table that has been live for a while would have them. */
	return pg_run(pc, "VACUUM ANALYZE pgrowlock.events, pgrowlock.seats", "VACUUM ANALYZE",
	              err);
}

/* Without setup: the events must be there from an earlier run. */
static int pg_check_events(PGconn *pc, const lg_config *cfg, char *err)
{
	PGresult *r = PQexec(pc, "SELECT count(*) FROM pgrowlock.events");
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, LG_ERR_LEN, "postgres: no pgrowlock schema (run once with setup): %s",
		         PQresultErrorMessage(r));
		rc = -ENOENT;
	} else if (strtoull(PQgetvalue(r, 0, 0), NULL, 10) < cfg->events) {
		snprintf(err, LG_ERR_LEN,
		         "postgres: pgrowlock.events has %s events, the run needs %" PRIu32,
		         PQgetvalue(r, 0, 0), cfg->events);
		rc = -ENOENT;
	}
	PQclear(r);
	return rc;
}

static int pg_setup(const lg_config *cfg, void **out, char *err)
{
	assert(cfg->depth >= 1 && cfg->per_row >= 1);
	assert(cfg->categories >= 1 && cfg->categories <= 8);
	const char *conninfo = cfg->target ? cfg->target : PG_TARGET_DEFAULT;
	int sync_per_request = 0;
	char v[16];
	if (lg_opt(cfg->opts, "sync", v, sizeof(v))) {
		sync_per_request = strcmp(v, "request") == 0;
		if (!sync_per_request && strcmp(v, "round") != 0) {
			snprintf(err, LG_ERR_LEN,
			         "postgres: --opt sync=%s: expected round or request", v);
			return -EINVAL;
		}
	}
	PGconn *pc;
	int rc = pg_connect(conninfo, &pc, err);
	if (rc < 0) {
		pg_err_trim(err);
		return rc;
	}
	pg_log_durability(pc);
	rc = cfg->setup ? pg_create(pc, cfg, err) : pg_check_events(pc, cfg, err);
	PQfinish(pc);
	if (rc < 0) {
		pg_err_trim(err);
		return rc;
	}
	pg_sys *s = calloc(1, sizeof(*s));
	if (s)
		s->conninfo = strdup(conninfo);
	if (!s || !s->conninfo) {
		free(s);
		snprintf(err, LG_ERR_LEN, "postgres: out of memory");
		return -ENOMEM;
	}
	s->depth = cfg->depth;
	s->sync_per_request = sync_per_request;
	if (cfg->depth > 1)
		fprintf(stderr,
		        "boxoffice-bench: postgres: pipeline of %" PRIu32
		        ", one transaction per %s\n",
		        cfg->depth, sync_per_request ? "request" : "round");
	*out = s;
	return 0;
}

/* Connects, prepares every statement and, for depth > 1, enters pipeline
 * mode (after preparing: PQprepare waits for its answer). */
static int pg_open_pc(pg_sys *s, PGconn **out, char *err)
{
	PGconn *pc;
	int rc = pg_connect(s->conninfo, &pc, err);
	if (rc < 0)
		return rc;
	for (int op = 0; op < LG_OP_COUNT; op++) {
		const struct pg_stmt *st = &pg_stmts[op];
		PGresult *r = PQprepare(pc, st->name, st->sql, st->nparams, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			snprintf(err, LG_ERR_LEN, "postgres: preparing %s: %s", st->name,
			         PQresultErrorMessage(r));
		PQclear(r);
		if (!ok) {
			PQfinish(pc);
			return -EIO;
		}
	}
	if (s->depth > 1 && PQenterPipelineMode(pc) != 1) {
		snprintf(err, LG_ERR_LEN, "postgres: pipeline mode: %s", PQerrorMessage(pc));
		PQfinish(pc);
		return -EIO;
	}
	*out = pc;
	return 0;
}

static int pg_conn_open(void *sys, unsigned idx, void **out, char *err)
{
	(void)idx;
	pg_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, LG_ERR_LEN, "postgres: out of memory");
		return -ENOMEM;
	}
	c->sys = sys;
	int rc = pg_open_pc(c->sys, &c->pc, err);
	if (rc < 0) {
		pg_err_trim(err);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* The parameters of req, as text, into p[0..] (backed by buf). Returns
 * their number (the statement's). */
static int pg_params(const lg_req *q, char buf[PG_PARAMS_MAX][PG_PARAM_LEN],
                     const char *p[PG_PARAMS_MAX])
{
	assert(q->op < LG_OP_COUNT && q->n <= LG_SEATS_MAX);
	assert(q->request_id <= INT64_MAX && q->claim <= INT64_MAX);
	snprintf(buf[0], PG_PARAM_LEN, "%" PRIu32, q->event);
	if (q->op == LG_HOLD_SEATS || q->op == LG_CONFIRM || q->op == LG_RELEASE) {
		size_t at = 0;
		buf[1][at++] = '{';
		for (unsigned i = 0; i < q->n; i++)
			at += (size_t)snprintf(buf[1] + at, PG_PARAM_LEN - at, "%s%" PRIu32,
			                       i ? "," : "", q->seat[i]);
		buf[1][at++] = '}';
		buf[1][at] = '\0';
	}
	switch (q->op) {
	case LG_HOLD_SEATS:
		snprintf(buf[2], PG_PARAM_LEN, "%" PRIu64, q->request_id);
		snprintf(buf[3], PG_PARAM_LEN, "%" PRIu32, q->ttl_ms);
		break;
	case LG_HOLD_BEST:
		snprintf(buf[1], PG_PARAM_LEN, "%u", (unsigned)q->category);
		snprintf(buf[2], PG_PARAM_LEN, "%u", (unsigned)q->n);
		snprintf(buf[3], PG_PARAM_LEN, "%" PRIu64, q->request_id);
		snprintf(buf[4], PG_PARAM_LEN, "%" PRIu32, q->ttl_ms);
		break;
	case LG_CONFIRM:
	case LG_RELEASE:
		snprintf(buf[2], PG_PARAM_LEN, "%" PRIu64, q->claim);
		break;
	default:
		break;
	}
	int np = pg_stmts[q->op].nparams;
	for (int i = 0; i < np; i++)
		p[i] = buf[i];
	return np;
}

/* The outcome of a failed statement, from its SQLSTATE. */
static uint8_t pg_error_outcome(pg_conn *c, const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQstatus(c->pc) == CONNECTION_BAD || !state || strncmp(state, "08", 2) == 0 ||
	    strcmp(state, "57P01") == 0)
		return LG_NO_ANSWER;
	if (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strcmp(state, "57014") == 0)
		return LG_BUSY;
	if (atomic_exchange(&c->sys->err_said, 1) == 0)
		fprintf(stderr, "boxoffice-bench: postgres: first error (SQLSTATE %s): %s", state,
		        PQresultErrorMessage(r));
	return LG_ERROR;
}

/* Fills q's outcome and outputs from its statement's result. Returns 1
 * when the statement failed (its transaction is aborted), else 0. */
static int pg_fill(pg_conn *c, lg_req *q, const PGresult *r)
{
	q->nseats_out = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		/* Skipped after an earlier failure in its round: not done. */
		q->outcome = PQresultStatus(r) == PGRES_PIPELINE_ABORTED ? LG_BUSY
		                                                         : pg_error_outcome(c, r);
		return 1;
	}
	int rows = PQntuples(r);
	if (q->op == LG_READ) {
		/* No row: the event does not exist — a bad request. */
		q->outcome = rows == 1 ? LG_OK : LG_ERROR;
		if (rows == 1)
			q->avail_out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		return 0;
	}
	if (rows == 0) {
		q->outcome =
		        q->op == LG_HOLD_SEATS || q->op == LG_HOLD_BEST ? LG_TAKEN : LG_EXPIRED;
		return 0;
	}
	/* The count check makes it all n rows or none: anything else is a bug. */
	if (rows != q->n) {
		q->outcome = LG_ERROR;
		return 0;
	}
	q->outcome = LG_OK;
	if (q->op == LG_HOLD_SEATS || q->op == LG_HOLD_BEST) {
		for (int i = 0; i < rows; i++)
			q->seat_out[i] = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
		q->nseats_out = (uint8_t)rows;
		q->claim_out = q->request_id;
	}
	return 0;
}

static void pg_drop(pg_conn *c)
{
	PQfinish(c->pc);
	c->pc = NULL;
}

/* depth 1: one request, one round trip. */
static void pg_exec_one(pg_conn *c, lg_req *q)
{
	char buf[PG_PARAMS_MAX][PG_PARAM_LEN];
	const char *p[PG_PARAMS_MAX];
	int np = pg_params(q, buf, p);
	PGresult *r = PQexecPrepared(c->pc, pg_stmts[q->op].name, np, p, NULL, NULL, 0);
	pg_fill(c, q, r);
	PQclear(r);
	if (PQstatus(c->pc) == CONNECTION_BAD)
		pg_drop(c);
}

/* The next result, which must be the end of a query (NULL) or a Sync
 * (PGRES_PIPELINE_SYNC) as `sync` says. 1 when it is. */
static int pg_expect(pg_conn *c, int sync)
{
	PGresult *r = PQgetResult(c->pc);
	int ok = sync ? r && PQresultStatus(r) == PGRES_PIPELINE_SYNC : !r;
	PQclear(r);
	return ok;
}

/* Reads the answers of requests 0..n-1 sent in pipeline mode: for each,
 * its result, then NULL (end of that query), then — with a Sync per
 * request — PGRES_PIPELINE_SYNC; with one Sync per round, that comes
 * after the last. Returns how many requests got their answer and, in
 * *synced, whether the (last) Sync arrived (n and 1 unless the connection
 * broke); *failed: whether a statement failed. */
static unsigned pg_pipe_read(pg_conn *c, lg_req *reqs, unsigned n, int *synced, int *failed)
{
	int per_request = c->sys->sync_per_request;
	*synced = 0;
	for (unsigned i = 0; i < n; i++) {
		PGresult *r = PQgetResult(c->pc);
		if (!r)
			return i;
		*failed |= pg_fill(c, &reqs[i], r);
		PQclear(r);
		/* A second result for one query means the connection broke. */
		if (!pg_expect(c, 0) || (per_request && !pg_expect(c, 1)))
			return i + 1;
	}
	*synced = per_request || pg_expect(c, 1);
	return n;
}

/* One Sync per round: the round was one transaction. When a statement
 * failed, the server rolled all of it back at the Sync, so a write that
 * answered LG_OK did not happen: it becomes LG_BUSY (retry), as do the
 * statements skipped after the failure (already LG_BUSY). When the Sync
 * never came (the connection broke), whether the round committed is
 * unknown: its writes and its skipped statements are LG_NO_ANSWER. Reads,
 * and writes that changed nothing (TAKEN, EXPIRED), keep their answers. */
static void pg_round_outcome(lg_req *reqs, unsigned n, int synced, int failed)
{
	if (synced && !failed)
		return;
	for (unsigned i = 0; i < n; i++) {
		lg_req *q = &reqs[i];
		if (!synced && q->outcome == LG_BUSY) {
			q->outcome = LG_NO_ANSWER;
			continue;
		}
		if (q->op == LG_READ || q->outcome != LG_OK)
			continue;
		q->outcome = synced ? LG_BUSY : LG_NO_ANSWER;
		q->nseats_out = 0;
		q->claim_out = 0;
	}
}

/* depth > 1: the whole round in one pipeline. */
static void pg_exec_pipe(pg_conn *c, lg_req *reqs, unsigned n)
{
	int per_request = c->sys->sync_per_request;
	unsigned sent = 0;
	for (; sent < n; sent++) {
		char buf[PG_PARAMS_MAX][PG_PARAM_LEN];
		const char *p[PG_PARAMS_MAX];
		lg_req *q = &reqs[sent];
		int np = pg_params(q, buf, p);
		if (PQsendQueryPrepared(c->pc, pg_stmts[q->op].name, np, p, NULL, NULL, 0) != 1 ||
		    (per_request && PQpipelineSync(c->pc) != 1))
			break;
	}
	int synced = 0, failed = 0;
	unsigned got = 0;
	/* A round cut short by a send failure gets no Sync of its own: the
	 * connection is dropped below, which rolls back what it began. */
	if (sent == n && (per_request || PQpipelineSync(c->pc) == 1))
		got = pg_pipe_read(c, reqs, n, &synced, &failed);
	else if (per_request && sent)
		got = pg_pipe_read(c, reqs, sent, &synced, &failed);
	for (unsigned i = got; i < n; i++)
		reqs[i].outcome = LG_NO_ANSWER;
	if (!per_request)
		pg_round_outcome(reqs, got, synced, failed);
	if (got < n || !synced)
		pg_drop(c); /* out of step with the server: start afresh */
}

static void pg_exec(void *conn, lg_req *reqs, unsigned n)
{
	pg_conn *c = conn;
	assert(n >= 1 && n <= c->sys->depth);
	if (!c->pc) {
		char err[LG_ERR_LEN];
		if (pg_open_pc(c->sys, &c->pc, err) < 0) {
			c->pc = NULL;
			for (unsigned i = 0; i < n; i++)
				reqs[i].outcome = LG_NO_ANSWER;
			return;
		}
	}
	if (c->sys->depth == 1)
		pg_exec_one(c, &reqs[0]);
	else
		pg_exec_pipe(c, reqs, n);
}

static void pg_conn_close(void *conn)
{
	pg_conn *c = conn;
	if (c->pc)
		PQfinish(c->pc);
	free(c);
}

static int pg_audit(void *sys, const lg_config *cfg, lg_audit *out, char *err)
{
	pg_sys *s = sys;
	PGconn *pc;
	int rc = pg_connect(s->conninfo, &pc, err);
	if (rc < 0) {
		pg_err_trim(err);
		return rc;
	}
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FILTER (WHERE status = 2),"
	         " count(*) FILTER (WHERE status = 1 AND expires_at > now())"
	         " FROM pgrowlock.seats WHERE event < %" PRIu32 " AND status <> 0",
	         cfg->events);
	PGresult *r = PQexec(pc, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		snprintf(err, LG_ERR_LEN, "postgres: audit: %s", PQresultErrorMessage(r));
		rc = -EIO;
	} else {
		memset(out, 0, sizeof(*out));
		out->nfigs = 2;
		snprintf(out->figs[0].name, sizeof(out->figs[0].name), "pgrowlock_booked");
		out->figs[0].value = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(out->figs[1].name, sizeof(out->figs[1].name), "pgrowlock_held");
		out->figs[1].value = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	PQfinish(pc);
	if (rc < 0)
		pg_err_trim(err);
	return rc;
}

static void pg_teardown(void *sys)
{
	pg_sys *s = sys;
	free(s->conninfo);
	free(s);
}

const lg_system lg_sys_pg = {
        .name = "postgres",
        .ops = (1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM) |
               (1u << LG_RELEASE),
        .setup = pg_setup,
        .conn_open = pg_conn_open,
        .exec = pg_exec,
        .conn_close = pg_conn_close,
        .audit = pg_audit,
        .teardown = pg_teardown,
};
