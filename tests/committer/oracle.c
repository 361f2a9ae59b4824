/*
 * oracle.c — see oracle.h.
 */
#include "tests/committer/oracle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "journal/journal.h"
#include "shard/apply.h"
#include "shard/entry.h"

/* Cause indexes, as committer/changes.h numbers them. */
enum { C_HOLD, C_RELEASE, C_EXPIRY, C_CONFIRM, C_CANCEL, C_BLOCK, C_UNBLOCK };
static const char *const cause_names[7] = {"hold", "release", "expiry", "confirm", "cancel", "block", "unblock"};

static void on_expiry(void *ctx, const bo_expiry *x)
{
	oracle *o = ctx;
	uint64_t n = x->is_pool ? 1 : x->seat_count;
	o->changes += n;
	o->causes[C_EXPIRY] += n;
	o->outbox++;
}

static void count_result(oracle *o, const entry *en)
{
	const bo_result *r = &en->res;
	if (en->kind != ENTRY_COMMAND || r->status != BO_OK || r->replayed)
		return;
	uint64_t n = r->seat_count ? r->seat_count : 1;
	int cause = -1, outbox = 1;
	switch (r->op) {
	case BO_OP_CREATE_EVENT:
		cr_assert_lt(o->event_count, ORACLE_EVENTS_MAX);
		o->events[o->event_count++] = r->event_id;
		return;
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL: cause = C_HOLD; break;
	case BO_OP_RELEASE: cause = C_RELEASE; break;
	case BO_OP_CONFIRM: cause = C_CONFIRM; break;
	case BO_OP_CANCEL: cause = C_CANCEL; break;
	case BO_OP_BLOCK: cause = C_BLOCK, outbox = 0; break;
	case BO_OP_UNBLOCK: cause = C_UNBLOCK, outbox = 0; break;
	default: return; /* extend: no status change */
	}
	o->changes += n;
	o->causes[cause] += n;
	o->outbox += (uint64_t)outbox;
}

void oracle_run(oracle *o, const char *data_dir, uint32_t shard_id)
{
	memset(o, 0, sizeof(*o));
	engine_config ec;
	engine_config_default(&ec);
	ec.seats_max = 1u << 16;
	ec.claims_max = 1u << 16;
	ec.idem_capacity = 1u << 16;
	ec.events_max = ORACLE_EVENTS_MAX;
	cr_assert_eq(engine_new(&ec, &o->e), 0);
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(data_dir, shard_id, NULL, 0, &r, err, sizeof(err)), 0, "%s", err);
	journal_record rec;
	int rc;
	while ((rc = journal_reader_next(r, &rec)) == 1) {
		char rerr[REPLAY_ERR_LEN];
		entry en;
		engine_advance(o->e, rec.timestamp_ms, on_expiry, o);
		cr_assert_eq(replay_apply(o->e, &rec, 1, &en, rerr, sizeof(rerr)), REPLAY_OK, "%s", rerr);
		count_result(o, &en);
		o->last_seq = rec.seq;
	}
	cr_assert_eq(rc, 0, "journal reader: %d", rc);
	journal_reader_close(r);
}

void oracle_free(oracle *o)
{
	engine_free(o->e);
	o->e = NULL;
}

static long long q1(PGconn *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long q1(PGconn *db, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PGresult *res = PQexec(db, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(db));
	cr_assert_eq(PQntuples(res), 1, "%s: %d rows", sql, PQntuples(res));
	long long v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

static void check_event(const oracle *o, PGconn *db, uint64_t ev)
{
	bo_avail a;
	cr_assert_eq(engine_avail(o->e, ev, &a), 0);
	uint32_t total = 0;
	for (int s = 0; s < BO_SEAT_STATE_COUNT; s++)
		total += a.by_state[s];
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT seat, state, coalesce(claim_id, 0) FROM boxoffice.seats WHERE event_id = %" PRId64
		 " ORDER BY seat",
		 (int64_t)ev);
	PGresult *res = PQexec(db, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(db));
	cr_assert_eq((uint32_t)PQntuples(res), total, "event %" PRIu64 ": %d seat rows, engine has %u", ev,
		     PQntuples(res), total);
	for (uint32_t i = 0; i < total; i++) {
		uint8_t st;
		uint64_t claim;
		cr_assert_eq(engine_seat(o->e, ev, i, &st, &claim), 0);
		cr_assert_eq(strtoul(PQgetvalue(res, (int)i, 0), NULL, 10), i);
		cr_assert_str_eq(PQgetvalue(res, (int)i, 1), bo_seat_state_str(st), "event %" PRIu64 " seat %u", ev, i);
		cr_assert_eq((uint64_t)strtoll(PQgetvalue(res, (int)i, 2), NULL, 10), claim,
			     "event %" PRIu64 " seat %u: claim in the database %s, engine %" PRIu64, ev, i,
			     PQgetvalue(res, (int)i, 2), claim);
	}
	PQclear(res);
	for (uint32_t p = 0; p < a.pool_count; p++) {
		long long free_db = q1(db,
				       "SELECT capacity - held - booked FROM boxoffice.pools WHERE event_id = %" PRId64
				       " AND pool = %u",
				       (int64_t)ev, p);
		cr_assert_eq(free_db, (long long)a.pool_free[p], "event %" PRIu64 " pool %u", ev, p);
	}
	/* The reporting view agrees with the engine's counts per category. */
	for (uint32_t c = 0; c < a.category_count; c++) {
		long long f = q1(db,
				 "SELECT coalesce(sum(free), 0) FROM boxoffice.availability WHERE event_id = %" PRId64
				 " AND category = %u",
				 (int64_t)ev, c);
		cr_assert_eq(f, (long long)a.free_by_category[c], "event %" PRIu64 " category %u", ev, c);
	}
}

void oracle_check(const oracle *o, PGconn *db, uint32_t shard_id)
{
	cr_assert_eq(q1(db, "SELECT journal_seq FROM boxoffice.checkpoints WHERE shard = %u", shard_id),
		     (long long)o->last_seq, "checkpoint");
	cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.events WHERE shard = %u", shard_id),
		     (long long)o->event_count);
	for (uint32_t i = 0; i < o->event_count; i++)
		check_event(o, db, o->events[i]);
	engine_stats es;
	engine_stats_get(o->e, &es);
	cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.holds WHERE shard = %u AND state = 'held'", shard_id),
		     (long long)es.holds, "active holds");
	cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.bookings WHERE shard = %u AND state = 'confirmed'",
			shard_id),
		     (long long)es.bookings, "live bookings");
	cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.seat_changes WHERE shard = %u", shard_id),
		     (long long)o->changes, "seat_changes rows");
	for (int c = 0; c < 7; c++)
		cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.seat_changes WHERE shard = %u AND cause = '%s'",
				shard_id, cause_names[c]),
			     (long long)o->causes[c], "seat_changes with cause %s", cause_names[c]);
	cr_assert_eq(q1(db, "SELECT count(*) FROM boxoffice.inventory_events WHERE shard = %u", shard_id),
		     (long long)o->outbox, "outbox rows");
	if (o->outbox > 0) {
		cr_assert_eq(q1(db, "SELECT max(position) FROM boxoffice.inventory_events WHERE shard = %u", shard_id),
			     (long long)o->outbox, "outbox positions have a gap");
		cr_assert_eq(q1(db, "SELECT min(position) FROM boxoffice.inventory_events WHERE shard = %u", shard_id),
			     1);
	}
}
