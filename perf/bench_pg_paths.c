/*
 * bench_pg_paths — which of libpq's fast paths should the committer use?
 * The same batches of journal records applied two ways, each into its own
 * database of a private PostgreSQL cluster:
 *
 *   copy      what committer/pgstore.c does (pgs_apply): COPY ... FROM
 *             STDIN (FORMAT binary) of the new rows into their tables and of
 *             the changed rows into temporary staging tables, then one
 *             set-based UPDATE per table and COMMIT;
 *   pipeline  libpq pipeline mode (PQenterPipelineMode): one prepared
 *             INSERT or UPDATE per row, binary parameters, in the same
 *             transaction shape (BEGIN, the checkpoint's compare-and-set,
 *             the rows, pg_notify, COMMIT), results read every 256
 *             statements so neither side's buffers fill.
 *
 *   scripts/bench pg_paths [--quick] [--pg-bin DIR]
 *
 * The batches: a durable shard journals the on-sale mix of bench_pg.h;
 * changes.h turns its records into batches of 64, 1024 and 8192 records
 * (what the committer groups at low load, moderate load and when behind),
 * and every batch goes to both databases, the order alternating. Reported
 * per size and path: seat_changes rows per second (the unit of
 * bench_committer's rows_per_sec) and milliseconds per batch. At the end
 * both databases must hold the same rows (counts and a checksum of every
 * table the batches touch), or the comparison is void and the benchmark
 * fails.
 *
 * Progress on stderr; the last stdout line is one JSON object. Without
 * PostgreSQL's binaries it says so and exits 77 (skipped).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bench_pg.h"
#include "bench_util.h"
#include "committer/changes.h"
#include "committer/pgstore.h"
#include "shard/follower.h"
#include "shard/shard.h"

static const char *prog = "bench_pg_paths";
static bench_pg pg;

enum {
	GROUP = 256,
	INFLIGHT = 16384,
	NSIZES = 3
};
static const uint32_t sizes[NSIZES] = {64, 1024, 8192};
#define PG_EPOCH_MS 946684800000LL

/* ---- The journal ------------------------------------------------------------- */

static uint64_t drain(shard *s, bpg_mix *m)
{
	ring *out = shard_output(s);
	uint64_t first, seen = 0;
	uint32_t n;
	while ((n = ring_poll(out, SHARD_OUT_POLL_MAX, &first)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind == SHARD_OUT_RESULT) {
				seen++;
				bpg_result(m, &o->u.result);
			}
		}
		ring_release(out, n);
	}
	return seen;
}

/* A durable shard in dir that has journaled the events and n commands of
 * the mix; stopped (its journal stays readable by a follower). */
static shard *write_journal(const char *dir, uint64_t n)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 20;
	cfg.data_dir = dir;
	shard *s;
	char err[1024];
	int rc = shard_open(&cfg, &s, NULL, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		exit(1);
	}
	if ((rc = shard_start(s)) < 0)
		bench_die(prog, "shard_start", rc);
	static bpg_mix m = {.rng = 0x9e3779b97f4a7c15ull};
	uint64_t submitted = 0, acked = 0;
	bo_seatmap *maps[BPG_EVENTS];
	for (uint32_t i = 0; i < BPG_EVENTS; i++) {
		if (!(maps[i] = bench_map(BPG_ROWS, BPG_PER_ROW, 4)))
			bench_die(prog, "bench_map", -ENOMEM);
		bo_cmd cmd = {.op = BO_OP_CREATE_EVENT,
		              .client_id = 1,
		              .request_id = ++m.req,
		              .event_id = bpg_event_id(i),
		              .map = maps[i]};
		while (shard_submit(s, &cmd, NULL, 1) != 0)
			acked += drain(s, &m);
		submitted++;
	}
	while (acked < submitted)
		if ((acked += drain(s, &m)) < submitted)
			ring_wait(shard_output(s), 1000000);
	for (uint32_t i = 0; i < BPG_EVENTS; i++)
		bo_seatmap_free(maps[i]);
	static bo_cmd group[GROUP];
	while (submitted < BPG_EVENTS + n) {
		if (submitted - acked < INFLIGHT) {
			for (uint32_t k = 0; k < GROUP; k++)
				bpg_next(&m, &group[k]);
			while (shard_submit(s, group, NULL, GROUP) != 0)
				acked += drain(s, &m);
			submitted += GROUP;
		}
		acked += drain(s, &m);
	}
	while (acked < submitted)
		if ((acked += drain(s, &m)) < submitted)
			ring_wait(shard_output(s), 1000000);
	shard_stop(s);
	if (shard_failed(s)) {
		fprintf(stderr, "%s: %s\n", prog, shard_failed(s));
		exit(1);
	}
	return s;
}

/* ---- The pipeline path ------------------------------------------------------------ */

enum {
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_INT4ARR = 1007,
	OID_TSTZ = 1184
};
enum {
	P_MAX = 17,
	ARR_BYTES = 20 + 8 * BO_SEATS_PER_HOLD_MAX
};

/* One statement's parameters, all in binary format. */
typedef struct params {
	int n;
	const char *val[P_MAX];
	int len[P_MAX], fmt[P_MAX];
	uint8_t num[P_MAX][8];
	uint8_t arr[P_MAX][ARR_BYTES];
	char text[P_MAX][4 * BO_PAYREF_LEN_MAX + 1];
} params;

static void be(uint8_t *b, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void p_num(params *p, uint64_t v, int bytes)
{
	be(p->num[p->n], v, bytes);
	p->val[p->n] = (const char *)p->num[p->n];
	p->len[p->n] = bytes;
	p->fmt[p->n++] = 1;
}

static void p_i64(params *p, uint64_t v)
{
	p_num(p, v, 8);
}
static void p_i32(params *p, int64_t v)
{
	p_num(p, (uint64_t)(uint32_t)(int32_t)v, 4);
}
static void p_i16(params *p, int v)
{
	p_num(p, (uint64_t)(uint16_t)(int16_t)v, 2);
}
static void p_ts(params *p, int64_t ms)
{
	p_i64(p, (uint64_t)((ms - PG_EPOCH_MS) * 1000));
}

static void p_null(params *p)
{
	p->val[p->n] = NULL;
	p->len[p->n] = 0;
	p->fmt[p->n++] = 1;
}

static void p_i64_or_null(params *p, uint64_t v)
{
	v ? p_i64(p, v) : p_null(p);
}
static void p_ts_or_null(params *p, int64_t ms)
{
	ms ? p_ts(p, ms) : p_null(p);
}

static void p_bytes(params *p, const char *s, size_t n)
{
	p->val[p->n] = s;
	p->len[p->n] = (int)n;
	p->fmt[p->n++] = 1;
}

static void p_str(params *p, const char *s)
{
	p_bytes(p, s, strlen(s));
}

static void p_payref(params *p, const char *payref, size_t n)
{
	pgs_payref_text(payref, n, p->text[p->n]);
	p_str(p, p->text[p->n]);
}

/* int4[] in the array send format: ndim, has-nulls, element type, length,
 * lower bound, then each element with its length. */
static void p_int4_array(params *p, const uint32_t *v, uint32_t n)
{
	uint8_t *b = p->arr[p->n];
	be(b, 1, 4), be(b + 4, 0, 4), be(b + 8, OID_INT4, 4), be(b + 12, n, 4), be(b + 16, 1, 4);
	for (uint32_t i = 0; i < n; i++)
		be(b + 20 + 8 * i, 4, 4), be(b + 24 + 8 * i, v[i], 4);
	p_bytes(p, (const char *)b, 20 + 8 * n);
}

static void p_claim(params *p, const chg_claim *c)
{
	if (c->pool < 0) {
		p_int4_array(p, c->seats, c->seat_count);
		p_null(p);
	} else {
		p_null(p);
		p_i16(p, c->pool);
	}
}

typedef struct stmt {
	const char *name, *sql;
	int n;
	Oid types[P_MAX];
} stmt;

enum {
	S_CKPT,
	S_HOLD_INS,
	S_HOLD_UPD,
	S_BOOK_INS,
	S_BOOK_UPD,
	S_CHG_INS,
	S_OUT_INS,
	S_SEAT_UPD,
	S_NOTIFY,
	S_COUNT
};

static const stmt stmts[S_COUNT] = {
        [S_CKPT] =
                {"ckpt",
                 "UPDATE boxoffice.checkpoints SET journal_seq = $1, outbox_position = $2, journal_at = $3,"
                 " updated_at = now() WHERE shard = $4 AND journal_seq = $5",
                 5,
                 {OID_INT8, OID_INT8, OID_TSTZ, OID_INT4, OID_INT8}},
        [S_HOLD_INS] =
                {"hold_ins",
                 "INSERT INTO boxoffice.holds (event_id, claim_id, shard, client_id, request_id, seats, pool,"
                 " quantity, state, expires_at, created_seq, created_at, ended_seq, ended_at)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                 14,
                 {OID_INT8, OID_INT8, OID_INT4, OID_INT8, OID_INT8, OID_INT4ARR, OID_INT2, OID_INT4,
                  OID_TEXT, OID_TSTZ, OID_INT8, OID_TSTZ, OID_INT8, OID_TSTZ}},
        [S_HOLD_UPD] =
                {"hold_upd",
                 "UPDATE boxoffice.holds SET state = $3, expires_at = coalesce($4, expires_at),"
                 " ended_seq = coalesce($5, ended_seq), ended_at = coalesce($6, ended_at)"
                 " WHERE event_id = $1 AND claim_id = $2",
                 6,
                 {OID_INT8, OID_INT8, OID_TEXT, OID_TSTZ, OID_INT8, OID_TSTZ}},
        [S_BOOK_INS] =
                {"book_ins",
                 "INSERT INTO boxoffice.bookings (event_id, claim_id, shard, client_id, request_id, payref,"
                 " payref_bytes, seats, pool, quantity, state, confirmed_seq, confirmed_at, cancelled_seq,"
                 " cancelled_at, cancel_client_id, cancel_request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                 " $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                 17,
                 {OID_INT8, OID_INT8, OID_INT4, OID_INT8, OID_INT8, OID_TEXT, OID_BYTEA,
                  OID_INT4ARR, OID_INT2, OID_INT4, OID_TEXT, OID_INT8, OID_TSTZ, OID_INT8, OID_TSTZ,
                  OID_INT8, OID_INT8}},
        [S_BOOK_UPD] =
                {"book_upd",
                 "UPDATE boxoffice.bookings SET state = 'cancelled', cancelled_seq = $3, cancelled_at = $4,"
                 " cancel_client_id = $5, cancel_request_id = $6 WHERE event_id = $1 AND claim_id = $2",
                 6,
                 {OID_INT8, OID_INT8, OID_INT8, OID_TSTZ, OID_INT8, OID_INT8}},
        [S_CHG_INS] =
                {"chg_ins",
                 "INSERT INTO boxoffice.seat_changes (shard, journal_seq, ordinal, event_id, seat, pool, quantity,"
                 " from_state, to_state, cause, claim_id, client_id, request_id, journal_at)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                 14,
                 {OID_INT4, OID_INT8, OID_INT4, OID_INT8, OID_INT4, OID_INT2, OID_INT4, OID_TEXT,
                  OID_TEXT, OID_TEXT, OID_INT8, OID_INT8, OID_INT8, OID_TSTZ}},
        [S_OUT_INS] =
                {"out_ins",
                 "INSERT INTO boxoffice.inventory_events (shard, position, event_type, event_id, claim_id,"
                 " client_id, request_id, seats, pool, quantity, payref, expires_at, journal_seq, occurred_at)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                 14,
                 {OID_INT4, OID_INT8, OID_TEXT, OID_INT8, OID_INT8, OID_INT8, OID_INT8, OID_INT4ARR,
                  OID_INT2, OID_INT4, OID_TEXT, OID_TSTZ, OID_INT8, OID_TSTZ}},
        [S_SEAT_UPD] = {"seat_upd",
                        "UPDATE boxoffice.seats SET state = $3, claim_id = $4, journal_seq = $5"
                        " WHERE event_id = $1 AND seat = $2",
                        5,
                        {OID_INT8, OID_INT4, OID_TEXT, OID_INT8, OID_INT8}},
        [S_NOTIFY] = {"notify", "SELECT pg_notify($1, $2)", 2, {OID_TEXT, OID_TEXT}},
};

typedef struct pipe_conn {
	PGconn *c;
	uint32_t pending; /* statements sent whose results are unread */
	int ckpt_at;      /* the checkpoint's place among them, or -1 */
} pipe_conn;

static void pipe_fail(pipe_conn *pc, PGresult *r, const char *what)
{
	fprintf(stderr, "%s: pipeline: %s: %s%s", prog, what, r ? PQresultErrorMessage(r) : "",
	        PQerrorMessage(pc->c));
	exit(1);
}

/* Reads the results of every statement sent so far. */
static void pipe_read(pipe_conn *pc)
{
	if (PQsendFlushRequest(pc->c) != 1 || PQflush(pc->c) != 0)
		pipe_fail(pc, NULL, "flush");
	for (uint32_t i = 0; i < pc->pending; i++) {
		PGresult *r = PQgetResult(pc->c);
		ExecStatusType s = PQresultStatus(r);
		if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
			pipe_fail(pc, r, "a statement failed");
		if ((int)i == pc->ckpt_at && strcmp(PQcmdTuples(r), "1") != 0)
			pipe_fail(pc, r, "the checkpoint's compare-and-set matched no row");
		PQclear(r);
		if ((r = PQgetResult(pc->c)) != NULL)
			pipe_fail(pc, r, "more than one result for a statement");
	}
	pc->pending = 0;
	pc->ckpt_at = -1;
}

static void pipe_send(pipe_conn *pc, int s, const params *p)
{
	assert(p->n == stmts[s].n);
	if (PQsendQueryPrepared(pc->c, stmts[s].name, p->n, p->val, p->len, p->fmt, 0) != 1)
		pipe_fail(pc, NULL, stmts[s].name);
	if (s == S_CKPT)
		pc->ckpt_at = (int)pc->pending;
	if (++pc->pending == 256)
		pipe_read(pc);
}

static void pipe_plain(pipe_conn *pc, const char *sql)
{
	if (PQsendQueryParams(pc->c, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
		pipe_fail(pc, NULL, sql);
	if (++pc->pending == 256)
		pipe_read(pc);
}

static void pipe_open(pipe_conn *pc, const char *db)
{
	pc->c = bench_pg_connect(&pg, db);
	pc->pending = 0;
	pc->ckpt_at = -1;
	for (int s = 0; s < S_COUNT; s++) {
		PGresult *r =
		        PQprepare(pc->c, stmts[s].name, stmts[s].sql, stmts[s].n, stmts[s].types);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			pipe_fail(pc, r, stmts[s].name);
		PQclear(r);
	}
	if (PQenterPipelineMode(pc->c) != 1)
		pipe_fail(pc, NULL, "PQenterPipelineMode");
}

static void pipe_holds_bookings(pipe_conn *pc, const chg_batch *b)
{
	static params p;
	for (size_t i = 0; i < b->holds.n; i++) {
		const chg_hold *h = &b->holds.v[i];
		p.n = 0;
		if (h->is_new) {
			p_i64(&p, h->c.event_id), p_i64(&p, h->c.claim_id), p_i32(&p, 0),
			        p_i64(&p, h->c.client_id);
			p_i64(&p, h->c.request_id), p_claim(&p, &h->c), p_i32(&p, h->c.quantity);
			p_str(&p, chg_hold_state_str(h->state)), p_ts(&p, h->expires_ms),
			        p_i64(&p, h->created_seq);
			p_ts(&p, h->created_ms), p_i64_or_null(&p, h->ended_seq),
			        p_ts_or_null(&p, h->ended_ms);
			pipe_send(pc, S_HOLD_INS, &p);
		} else {
			p_i64(&p, h->c.event_id), p_i64(&p, h->c.claim_id),
			        p_str(&p, chg_hold_state_str(h->state));
			p_ts_or_null(&p, h->expires_ms), p_i64_or_null(&p, h->ended_seq),
			        p_ts_or_null(&p, h->ended_ms);
			pipe_send(pc, S_HOLD_UPD, &p);
		}
	}
	for (size_t i = 0; i < b->bookings.n; i++) {
		const chg_booking *bk = &b->bookings.v[i];
		p.n = 0;
		if (bk->is_new) {
			int cancelled = bk->cancelled_seq != 0;
			p_i64(&p, bk->c.event_id), p_i64(&p, bk->c.claim_id), p_i32(&p, 0),
			        p_i64(&p, bk->c.client_id);
			p_i64(&p, bk->c.request_id), p_payref(&p, bk->payref, bk->payref_len);
			p_bytes(&p, bk->payref, bk->payref_len), p_claim(&p, &bk->c),
			        p_i32(&p, bk->c.quantity);
			p_str(&p, chg_booking_state_str(bk->state)), p_i64(&p, bk->confirmed_seq);
			p_ts(&p, bk->confirmed_ms), p_i64_or_null(&p, bk->cancelled_seq),
			        p_ts_or_null(&p, bk->cancelled_ms);
			cancelled ? p_i64(&p, bk->cancel_client_id) : p_null(&p);
			cancelled ? p_i64(&p, bk->cancel_request_id) : p_null(&p);
			pipe_send(pc, S_BOOK_INS, &p);
		} else {
			p_i64(&p, bk->c.event_id), p_i64(&p, bk->c.claim_id),
			        p_i64(&p, bk->cancelled_seq);
			p_ts(&p, bk->cancelled_ms), p_i64(&p, bk->cancel_client_id),
			        p_i64(&p, bk->cancel_request_id);
			pipe_send(pc, S_BOOK_UPD, &p);
		}
	}
}

static void pipe_changes_outbox_seats(pipe_conn *pc, const chg_batch *b)
{
	static params p;
	for (size_t i = 0; i < b->changes.n; i++) {
		const chg_change *c = &b->changes.v[i];
		p.n = 0;
		p_i32(&p, 0), p_i64(&p, c->seq), p_i32(&p, c->ordinal), p_i64(&p, c->event_id);
		c->seat >= 0 ? p_i32(&p, c->seat) : p_null(&p);
		c->seat < 0 ? p_i16(&p, c->pool) : p_null(&p);
		p_i32(&p, c->quantity), p_str(&p, bo_seat_state_str(c->from)),
		        p_str(&p, bo_seat_state_str(c->to));
		p_str(&p, chg_cause_str(c->cause)), p_i64_or_null(&p, c->claim_id),
		        p_i64(&p, c->client_id);
		p_i64(&p, c->request_id), p_ts(&p, c->at_ms);
		pipe_send(pc, S_CHG_INS, &p);
	}
	for (size_t i = 0; i < b->outbox.n; i++) {
		const chg_outbox *o = &b->outbox.v[i];
		p.n = 0;
		p_i32(&p, 0), p_i64(&p, o->position), p_str(&p, chg_outbox_type_str(o->type));
		p_i64(&p, o->c.event_id), p_i64(&p, o->c.claim_id), p_i64(&p, o->c.client_id),
		        p_i64(&p, o->c.request_id);
		p_claim(&p, &o->c), p_i32(&p, o->c.quantity);
		o->type == CHG_O_BOOKING_CONFIRMED ? p_payref(&p, o->payref, o->payref_len)
		                                   : p_null(&p);
		p_ts_or_null(&p, o->expires_ms), p_i64(&p, o->seq), p_ts(&p, o->at_ms);
		pipe_send(pc, S_OUT_INS, &p);
	}
	for (size_t i = 0; i < b->seats.n; i++) {
		const chg_seat *s = &b->seats.v[i];
		p.n = 0;
		p_i64(&p, s->event_id), p_i32(&p, s->seat), p_str(&p, bo_seat_state_str(s->state));
		p_i64_or_null(&p, s->claim_id), p_i64(&p, s->seq);
		pipe_send(pc, S_SEAT_UPD, &p);
	}
}

/* Applies batch b (records prev+1 .. b->last_seq) in one transaction, as
 * pgs_apply does. The mix creates no events and no pools after the first
 * batch, which goes through pgs_apply on both sides. */
static void pipe_apply(pipe_conn *pc, uint64_t prev, const chg_batch *b)
{
	assert(b->events.n == 0 && b->pools.n == 0);
	static params p;
	uint64_t outbox_last =
	        b->outbox.n ? b->outbox.v[b->outbox.n - 1].position : b->outbox_first;
	pipe_plain(pc, "BEGIN");
	p.n = 0;
	p_i64(&p, b->last_seq), p_i64(&p, outbox_last), p_ts(&p, b->last_ms), p_i32(&p, 0),
	        p_i64(&p, prev);
	pipe_send(pc, S_CKPT, &p);
	pipe_holds_bookings(pc, b);
	pipe_changes_outbox_seats(pc, b);
	if (b->outbox.n) {
		char payload[64];
		snprintf(payload, sizeof(payload), "0:%" PRIu64, outbox_last);
		p.n = 0;
		p_str(&p, "boxoffice_inventory"), p_str(&p, payload);
		pipe_send(pc, S_NOTIFY, &p);
	}
	pipe_plain(pc, "COMMIT");
	if (PQpipelineSync(pc->c) != 1)
		pipe_fail(pc, NULL, "PQpipelineSync");
	pipe_read(pc);
	PGresult *r = PQgetResult(pc->c);
	if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
		pipe_fail(pc, r, "expected the pipeline's sync");
	PQclear(r);
}

/* ---- The comparison ------------------------------------------------------------ */

typedef struct path_fig {
	uint64_t batches, records, changes;
	double seconds;
} path_fig;

static pgstore *store_open(const char *db)
{
	char dsn[128];
	bench_pg_dsn(&pg, db, dsn, sizeof(dsn));
	pgstore *p;
	pgs_err e;
	uint64_t seq, outbox;
	if (pgs_connect(dsn, &p, &e) < 0 || pgs_migrate(p, &e) < 0 ||
	    pgs_checkpoint(p, 0, &seq, &outbox, &e) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, db, e.msg);
		exit(1);
	}
	return p;
}

static void store_apply(pgstore *p, uint64_t prev, const chg_batch *b)
{
	pgs_err e;
	if (pgs_apply(p, 0, prev, b, "boxoffice_inventory", &e) < 0) {
		fprintf(stderr, "%s: pgs_apply: %s\n", prog, e.msg);
		exit(1);
	}
}

/* Reads up to n records into the batch; returns how many. */
static uint32_t fill(follower *f, chg_state *cs, uint32_t n)
{
	uint32_t got = 0;
	while (got < n) {
		journal_record rec;
		int rc = follower_next(f, &rec, 0);
		if (rc == 0)
			break;
		if (rc < 0) {
			fprintf(stderr, "%s: journal: %s\n", prog, follower_error(f));
			exit(1);
		}
		char err[192];
		if ((rc = chg_record(cs, &rec, err, sizeof(err))) < 0) {
			fprintf(stderr, "%s: record %" PRIu64 ": %s\n", prog, rec.seq, err);
			exit(1);
		}
		got++;
	}
	return got;
}

/* What both databases must agree on: row counts and checksums of every
 * table a batch touches. */
static char *db_digest(const char *db)
{
	PGconn *c = bench_pg_connect(&pg, db);
	PGresult *r = PQexec(
	        c,
	        "SELECT (SELECT count(*) || ':' || sum(hashtext(s::text)) FROM boxoffice.seats s) || '/' ||"
	        " (SELECT count(*) || ':' || sum(hashtext(h::text)) FROM boxoffice.holds h) || '/' ||"
	        " (SELECT count(*) || ':' || sum(hashtext(b::text)) FROM boxoffice.bookings b) || '/' ||"
	        " (SELECT count(*) || ':' || sum(hashtext((x.shard, x.journal_seq, x.ordinal, x.event_id, x.seat,"
	        "  x.pool, x.quantity, x.from_state, x.to_state, x.cause, x.claim_id, x.client_id, x.request_id,"
	        "  x.journal_at)::text)) FROM boxoffice.seat_changes x) || '/' ||"
	        " (SELECT count(*) || ':' || sum(hashtext(o::text)) FROM boxoffice.inventory_events o) || '/' ||"
	        " (SELECT journal_seq || ':' || outbox_position FROM boxoffice.checkpoints WHERE shard = 0)");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "%s: digest of %s: %s", prog, db, PQerrorMessage(c));
		exit(1);
	}
	char *d = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return d;
}

int main(int argc, char **argv)
{
	int quick = 0;
	const char *bin = bench_pg_bin_default();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--pg-bin") && i + 1 < argc) {
			bin = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_pg_paths [--quick] [--pg-bin DIR]\n"
			       "The same committer batches (64, 1024, 8192 records) applied by COPY + set-based\n"
			       "UPDATEs (pgstore.c) and by libpq pipeline mode (a prepared statement per row), each\n"
			       "into its own database of a private PostgreSQL cluster. Last stdout line: JSON.\n"
			       "  --quick       a few seconds (the test suite runs this)\n"
			       "  --pg-bin DIR  PostgreSQL's initdb and pg_ctl (default $BO_PG_BIN or %s)\n",
			       BENCH_PG_BIN_DEFAULT);
			return 0;
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
	if (!bench_pg_available(bin)) {
		fprintf(stderr,
		        "%s: SKIP: no PostgreSQL binaries (initdb, pg_ctl) in %s; scripts/setup installs "
		        "postgresql-15, or pass --pg-bin DIR\n",
		        prog, bin);
		return 77;
	}
	bench_pg_init(&pg, prog, bin, NULL);
	char root[] = "/var/tmp/boxoffice-bench-pg-paths-XXXXXX";
	if (!mkdtemp(root))
		bench_die(prog, "mkdtemp", -errno);
	bench_pg_remove_later(&pg, root);
	const uint32_t per_size = quick ? 2 * 8192 : 16 * 8192; /* records per batch size */
	shard *s = write_journal(root, (uint64_t)per_size * NSIZES + 4096);
	fprintf(stderr, "journal: %" PRIu64 " records\n", shard_durable_seq(s));

	bench_pg_create_db(&pg, "copy_path");
	bench_pg_create_db(&pg, "pipe_path");
	pgstore *copy = store_open("copy_path"), *setup = store_open("pipe_path");
	follower *f;
	char err[JOURNAL_ERR_LEN];
	if (follower_open(s, 0, &f, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	chg_state *cs;
	if (chg_new(0, &cs) != 0)
		bench_die(prog, "chg_new", -ENOMEM);
	chg_position(cs, 0, 0);
	/* The events and their seats: the same way into both, not timed. */
	fill(f, cs, BPG_EVENTS);
	store_apply(copy, 0, chg_get_batch(cs));
	store_apply(setup, 0, chg_get_batch(cs));
	uint64_t prev = chg_get_batch(cs)->last_seq;
	chg_batch_clear(cs);
	pgs_close(setup);
	pipe_conn pipe;
	pipe_open(&pipe, "pipe_path");

	path_fig fig[NSIZES][2];
	memset(fig, 0, sizeof(fig));
	for (int z = 0; z < NSIZES; z++) {
		for (uint32_t done = 0; done < per_size;) {
			uint32_t got = fill(f, cs, sizes[z]);
			if (got == 0)
				break;
			done += got;
			const chg_batch *b = chg_get_batch(cs);
			int first = (int)(fig[z][0].batches & 1); /* alternate who goes first */
			for (int k = 0; k < 2; k++) {
				int path = first ^ k;
				int64_t t0 = bo_clock_ns();
				if (path == 0)
					store_apply(copy, prev, b);
				else
					pipe_apply(&pipe, prev, b);
				fig[z][path].seconds += (double)(bo_clock_ns() - t0) / 1e9;
				fig[z][path].batches++;
				fig[z][path].records += b->records;
				fig[z][path].changes += b->changes.n;
			}
			prev = b->last_seq;
			chg_batch_clear(cs);
		}
		for (int path = 0; path < 2; path++) {
			const path_fig *pf = &fig[z][path];
			fprintf(stderr,
			        "batch %5u records, %-8s: %4" PRIu64 " batches, %7" PRIu64
			        " seat changes in %6.2f s = %7.0f rows/s, %7.2f ms a batch\n",
			        sizes[z], path ? "pipeline" : "copy", pf->batches, pf->changes,
			        pf->seconds,
			        pf->seconds > 0 ? (double)pf->changes / pf->seconds : 0,
			        pf->batches ? 1000.0 * pf->seconds / (double)pf->batches : 0);
		}
	}
	follower_close(f);
	chg_free(cs);
	pgs_close(copy);
	PQfinish(pipe.c);
	char *d1 = db_digest("copy_path"), *d2 = db_digest("pipe_path");
	int same = strcmp(d1, d2) == 0;
	if (!same)
		fprintf(stderr,
		        "%s: the two paths left different databases:\n  copy:     %s\n  pipeline: %s\n",
		        prog, d1, d2);
	free(d1);
	free(d2);
	shard_free(s);
	bench_pg_finish(&pg); /* removes root too */
	if (!same)
		return 1;

	printf("{\"bench\":\"pg_paths\",\"quick\":%s", quick ? "true" : "false");
	for (int z = 0; z < NSIZES; z++)
		for (int path = 0; path < 2; path++) {
			const path_fig *pf = &fig[z][path];
			printf(",\"%s_rows_per_sec_%u\":%.0f,\"%s_ms_per_batch_%u\":%.2f",
			       path ? "pipeline" : "copy", sizes[z],
			       pf->seconds > 0 ? (double)pf->changes / pf->seconds : 0,
			       path ? "pipeline" : "copy", sizes[z],
			       pf->batches ? 1000.0 * pf->seconds / (double)pf->batches : 0);
		}
	printf(",\"changes_per_record\":%.2f,\"same_database\":true}\n",
	       fig[0][0].records ? (double)fig[0][0].changes / (double)fig[0][0].records : 0);
	return 0;
}
