/*
 * engine_test.c — targeted, deterministic unit tests of engine/engine.c
 * against its contract: the "Semantics" block of engine/engine.h and the
 * bounds of engine/limits.h.
 *
 * How: every test builds a tiny engine and one or more hand-written seat
 * maps (a string per row, one character per seat: its category digit, or
 * 'x' for a seat of category 0 that an operator blocks right after the
 * event is created), applies a few commands and checks the full result and
 * the seat states that follow. Each test is named for the rule it proves;
 * where two rules could both apply, the test sets up both and expects the
 * one the documented check order puts first. Limits are probed on both
 * sides of their edge. Best-available expectations were derived by hand
 * from the rule in engine.h (the derivation is in the comment above each
 * case), not taken from the engine's output. Memory is measured, not
 * computed: the process RSS (/proc/self/statm) before and after creating a
 * 1,000,000-seat event.
 *
 * The randomized comparison with a reference model lives in model_test.c;
 * this file pins down individual rules so a failure names the rule.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "engine/engine.h"
#include "tests/support/descmap.h"

/* ---- Fixtures and helpers ------------------------------------------------ */

#define EV 100u		 /* the event most tests use */
#define EV2 200u	 /* a second event */
#define EV_NONE 999u	 /* never created */
#define C1 11u		 /* clients */
#define C2 12u
#define C3 13u
#define OPER 77u	 /* the operator client that blocks seats */
#define TTL 60000u	 /* a ttl well inside the limits */
#define T0 1000000	 /* the clock when a test starts */
#define NO_SEAT UINT32_MAX

/* Every command gets a fresh request id unless a test reuses a command. */
static uint64_t g_req = 1;

/* A list of seats as two arguments: pointer and count. */
#define SEATS(...)                                                                                 \
	(const uint32_t[]){__VA_ARGS__},                                                           \
		(uint32_t)(sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static engine *engine_with(uint32_t seats_max, uint32_t claims_max, uint32_t idem_capacity,
			   uint32_t events_max)
{
	engine_config cfg = {.seats_max = seats_max,
			     .claims_max = claims_max,
			     .idem_capacity = idem_capacity,
			     .events_max = events_max};
	engine *e = NULL;
	int rc = engine_new(&cfg, &e);
	cr_assert_eq(rc, 0, "engine_new = %d", rc);
	cr_assert_not_null(e);
	engine_advance(e, T0, NULL, NULL);
	return e;
}

/* Small tables: fast to create, big enough for every test that does not
 * probe a table limit. */
static engine *small_engine(void) { return engine_with(1u << 16, 1024, 1024, 16); }

static uint8_t spec_category(char ch)
{
	if (ch >= '0' && ch <= '9')
		return (uint8_t)(ch - '0');
	if (ch >= 'a' && ch <= 'f')
		return (uint8_t)(10 + ch - 'a');
	cr_assert_eq(ch, 'x', "bad seat character '%c' in a map spec", ch);
	return 0;
}

/* Builds a map from a spec: rows separated by '|', one character per seat
 * (see the file comment). NULL or "" makes a map without seats. */
static bo_seatmap *map_spec(const char *spec, uint32_t category_count, uint32_t pool_count,
			    uint32_t pool_capacity)
{
	uint32_t rows = 0, seats = 0;
	if (spec && *spec) {
		rows = 1;
		for (const char *p = spec; *p; p++) {
			if (*p == '|')
				rows++;
			else
				seats++;
		}
	}
	bo_seatmap *m = bo_seatmap_new(rows, seats, pool_count);
	cr_assert_not_null(m);
	m->category_count = category_count;
	uint32_t r = 0, s = 0;
	for (const char *p = spec; p && *p; p++) {
		if (*p == '|') {
			r++;
			continue;
		}
		m->rows[r].seats++;
		m->rows[r].section = (uint16_t)(r / 4);
		m->categories[s++] = spec_category(*p);
	}
	for (uint32_t i = 0; i < pool_count; i++)
		m->pool_capacity[i] = pool_capacity;
	return m;
}

static bo_cmd cmd_new(uint8_t op, uint64_t client, uint64_t event_id)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.client_id = client;
	c.request_id = g_req++;
	c.event_id = event_id;
	return c;
}

static bo_result run(engine *e, const bo_cmd *c)
{
	bo_result r;
	engine_apply(e, c, &r);
	return r;
}

static bo_cmd cmd_create(uint64_t event_id, const bo_seatmap *map)
{
	bo_cmd c = cmd_new(BO_OP_CREATE_EVENT, OPER, event_id);
	c.map = map;
	return c;
}

static bo_cmd cmd_seats(uint8_t op, uint64_t client, uint64_t event_id, const uint32_t *seats,
			uint32_t n)
{
	bo_cmd c = cmd_new(op, client, event_id);
	c.seat_count = (uint8_t)n;
	uint32_t copy = n < BO_SEATS_PER_HOLD_MAX ? n : BO_SEATS_PER_HOLD_MAX;
	memcpy(c.seats, seats, copy * sizeof(uint32_t));
	return c;
}

static bo_cmd cmd_hold_seats(uint64_t client, uint64_t event_id, uint32_t ttl_ms,
			     const uint32_t *seats, uint32_t n)
{
	bo_cmd c = cmd_seats(BO_OP_HOLD_SEATS, client, event_id, seats, n);
	c.ttl_ms = ttl_ms;
	return c;
}

static bo_cmd cmd_hold_best(uint64_t client, uint64_t event_id, uint8_t category, uint16_t quantity,
			    uint32_t ttl_ms)
{
	bo_cmd c = cmd_new(BO_OP_HOLD_BEST, client, event_id);
	c.category = category;
	c.quantity = quantity;
	c.ttl_ms = ttl_ms;
	return c;
}

static bo_cmd cmd_hold_pool(uint64_t client, uint64_t event_id, uint8_t pool, uint16_t quantity,
			    uint32_t ttl_ms)
{
	bo_cmd c = cmd_new(BO_OP_HOLD_POOL, client, event_id);
	c.pool = pool;
	c.quantity = quantity;
	c.ttl_ms = ttl_ms;
	return c;
}

static bo_cmd cmd_claim(uint8_t op, uint64_t client, uint64_t event_id, uint64_t claim_id)
{
	bo_cmd c = cmd_new(op, client, event_id);
	c.claim_id = claim_id;
	return c;
}

static bo_cmd cmd_extend(uint64_t client, uint64_t event_id, uint64_t claim_id, uint32_t ttl_ms)
{
	bo_cmd c = cmd_claim(BO_OP_EXTEND, client, event_id, claim_id);
	c.ttl_ms = ttl_ms;
	return c;
}

static bo_cmd cmd_confirm_len(uint64_t client, uint64_t event_id, uint64_t claim_id, uint32_t len)
{
	bo_cmd c = cmd_claim(BO_OP_CONFIRM, client, event_id, claim_id);
	c.payref_len = (uint8_t)len;
	for (uint32_t i = 0; i < len && i < BO_PAYREF_LEN_MAX; i++)
		c.payref[i] = (char)('A' + i % 26);
	return c;
}

/* Shorthands that apply at once. */
static bo_result hold_seats(engine *e, uint64_t client, uint64_t ev, uint32_t ttl,
			    const uint32_t *seats, uint32_t n)
{
	bo_cmd c = cmd_hold_seats(client, ev, ttl, seats, n);
	return run(e, &c);
}
static bo_result hold_best(engine *e, uint64_t client, uint64_t ev, uint8_t cat, uint16_t qty,
			   uint32_t ttl)
{
	bo_cmd c = cmd_hold_best(client, ev, cat, qty, ttl);
	return run(e, &c);
}
static bo_result hold_pool(engine *e, uint64_t client, uint64_t ev, uint8_t pool, uint16_t qty,
			   uint32_t ttl)
{
	bo_cmd c = cmd_hold_pool(client, ev, pool, qty, ttl);
	return run(e, &c);
}
static bo_result extend(engine *e, uint64_t client, uint64_t ev, uint64_t claim_id, uint32_t ttl)
{
	bo_cmd c = cmd_extend(client, ev, claim_id, ttl);
	return run(e, &c);
}
static bo_result release(engine *e, uint64_t client, uint64_t ev, uint64_t claim_id)
{
	bo_cmd c = cmd_claim(BO_OP_RELEASE, client, ev, claim_id);
	return run(e, &c);
}
static bo_result confirm(engine *e, uint64_t client, uint64_t ev, uint64_t claim_id)
{
	bo_cmd c = cmd_confirm_len(client, ev, claim_id, 12);
	return run(e, &c);
}
static bo_result cancel(engine *e, uint64_t client, uint64_t ev, uint64_t claim_id)
{
	bo_cmd c = cmd_claim(BO_OP_CANCEL, client, ev, claim_id);
	return run(e, &c);
}
static bo_result seats_op(engine *e, uint8_t op, uint64_t ev, const uint32_t *seats, uint32_t n)
{
	bo_cmd c = cmd_seats(op, op == BO_OP_QUERY_SEATS ? 0 : OPER, ev, seats, n);
	return run(e, &c);
}
static bo_result query_avail(engine *e, uint64_t ev)
{
	bo_cmd c = cmd_new(BO_OP_QUERY_AVAIL, 0, ev);
	return run(e, &c);
}

static void advance(engine *e, int64_t t) { engine_advance(e, t, NULL, NULL); }

/* Result checks; the macros pass the caller's line so a failure names it. */
static void expect_ok_at(int line, const bo_result *r)
{
	cr_assert_eq(r->status, BO_OK, "line %d: expected ok, got %s/%s", line,
		     bo_status_str(r->status), bo_detail_str(r->detail));
	cr_assert_eq(r->detail, BO_D_NONE, "line %d: ok carries no detail", line);
}

/* A failed result carries status and detail, claim_id 0 and nothing else,
 * except seat_count = 1 / seats[0] = the offending seat where the contract
 * says so (pass NO_SEAT otherwise). */
static void expect_fail_at(int line, const bo_result *r, int status, int detail, uint32_t seat)
{
	cr_assert_eq(r->status, status, "line %d: expected %s/%s, got %s/%s", line,
		     bo_status_str(status), bo_detail_str(detail),
		     bo_status_str(r->status), bo_detail_str(r->detail));
	cr_assert_eq(r->detail, detail, "line %d: expected detail '%s', got '%s'", line,
		     bo_detail_str(detail), bo_detail_str(r->detail));
	cr_assert_eq(r->claim_id, 0, "line %d: a failure carries no claim", line);
	cr_assert_eq(r->expires_at_ms, 0, "line %d: a failure carries no expiry", line);
	cr_assert_eq(r->quantity, 0, "line %d: a failure carries no quantity", line);
	cr_assert_eq(r->pool, 0, "line %d: a failure carries no pool", line);
	if (seat == NO_SEAT) {
		cr_assert_eq(r->seat_count, 0, "line %d: a failure carries no seats", line);
	} else {
		cr_assert_eq(r->seat_count, 1, "line %d: the offending seat only", line);
		cr_assert_eq(r->seats[0], seat, "line %d: offending seat %u, expected %u", line,
			     r->seats[0], seat);
	}
}

static void expect_seats_at(int line, const bo_result *r, const uint32_t *seats, uint32_t n)
{
	expect_ok_at(line, r);
	cr_assert_eq(r->seat_count, n, "line %d: %u seats, expected %u", line, r->seat_count, n);
	cr_assert_eq(r->quantity, n, "line %d: quantity = seat count", line);
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(r->seats[i], seats[i], "line %d: seats[%u] = %u, expected %u", line, i,
			     r->seats[i], seats[i]);
}

/* The 16 seats a full hold names. */
#define SEATS_0_TO_15 SEATS(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define SEATS_20_TO_35 SEATS(20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35)

#define EXPECT_OK(r) expect_ok_at(__LINE__, (r))
#define EXPECT_FAIL(r, st, d) expect_fail_at(__LINE__, (r), (st), (d), NO_SEAT)
#define EXPECT_FAIL_SEAT(r, st, d, seat) expect_fail_at(__LINE__, (r), (st), (d), (seat))
#define EXPECT_SEATS(r, ...) expect_seats_at(__LINE__, (r), SEATS(__VA_ARGS__))

/* Creates an event from a spec and blocks its 'x' seats. */
static void create_spec(engine *e, uint64_t id, const char *spec, uint32_t category_count,
			uint32_t pool_count, uint32_t pool_capacity)
{
	bo_seatmap *m = map_spec(spec, category_count, pool_count, pool_capacity);
	bo_cmd c = cmd_create(id, m);
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	uint32_t s = 0;
	for (const char *p = spec; p && *p; p++) {
		if (*p == '|')
			continue;
		if (*p == 'x') {
			bo_result b = seats_op(e, BO_OP_BLOCK, id, &s, 1);
			EXPECT_OK(&b);
		}
		s++;
	}
	bo_seatmap_free(m);
}

/* An event of 3 rows of 10 seats, category 0, plus one pool of 100. */
static void create_plain(engine *e, uint64_t id)
{
	create_spec(e, id, "0000000000|0000000000|0000000000", 1, 1, 100);
}

static uint64_t hold_ok(engine *e, uint64_t client, uint64_t ev, const uint32_t *seats, uint32_t n)
{
	bo_result r = hold_seats(e, client, ev, TTL, seats, n);
	EXPECT_OK(&r);
	cr_assert_neq(r.claim_id, 0);
	return r.claim_id;
}

static uint8_t seat_state(const engine *e, uint64_t ev, uint32_t s)
{
	uint8_t st = 0xff;
	uint64_t owner = 0;
	cr_assert_eq(engine_seat(e, ev, s, &st, &owner), 0, "seat %u of event %lu", s,
		     (unsigned long)ev);
	return st;
}

static uint64_t seat_owner(const engine *e, uint64_t ev, uint32_t s)
{
	uint8_t st = 0;
	uint64_t owner = 0xdead;
	cr_assert_eq(engine_seat(e, ev, s, &st, &owner), 0);
	return owner;
}

static void expect_state_at(int line, const engine *e, uint64_t ev, uint32_t s, uint8_t want)
{
	uint8_t st = seat_state(e, ev, s);
	cr_assert_eq(st, want, "line %d: seat %u is %s, expected %s", line, s,
		     bo_seat_state_str(st), bo_seat_state_str(want));
}
#define EXPECT_STATE(e, ev, s, st) expect_state_at(__LINE__, (e), (ev), (s), (st))

static uint32_t idem_entries(const engine *e)
{
	engine_stats st;
	engine_stats_get(e, &st);
	return st.idem_entries;
}

/* Collects expiries reported by engine_advance. */
typedef struct expiries {
	uint32_t n;
	bo_expiry x[64];
} expiries;

static void collect_expiry(void *ctx, const bo_expiry *x)
{
	expiries *xs = ctx;
	cr_assert_lt(xs->n, 64u);
	xs->x[xs->n++] = *x;
}

static expiries advance_collect(engine *e, int64_t t)
{
	expiries xs;
	memset(&xs, 0, sizeof(xs));
	engine_advance(e, t, collect_expiry, &xs);
	return xs;
}

/* ---- Rule 1 and 2: op, client, idempotency, event ------------------------ */

Test(common, unknown_op_is_bad_op_before_any_other_check)
{
	engine *e = small_engine();
	const uint8_t ops[] = {BO_OP_NONE, BO_OP_COUNT, 200, 255};
	for (size_t i = 0; i < sizeof(ops); i++) {
		bo_cmd c = cmd_new(ops[i], 0, EV_NONE); /* no client, no event either */
		bo_result r = run(e, &c);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_BAD_OP);
		cr_assert_eq(r.op, ops[i], "the op is echoed");
	}
	cr_assert_eq(idem_entries(e), 0, "a bad op is not stored in the window");
	engine_free(e);
}

Test(common, mutating_op_without_client_is_no_client_before_no_event)
{
	engine *e = small_engine();
	for (uint8_t op = BO_OP_CREATE_EVENT; op <= BO_OP_UNBLOCK; op++) {
		bo_cmd c = cmd_new(op, 0, EV_NONE);
		bo_result r = run(e, &c);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_NO_CLIENT);
	}
	cr_assert_eq(idem_entries(e), 0, "client 0 is never stored");
	engine_free(e);
}

Test(common, unknown_event_is_no_event_for_every_op_but_create)
{
	engine *e = small_engine();
	create_plain(e, EV);
	for (uint8_t op = BO_OP_HOLD_SEATS; op < BO_OP_COUNT; op++) {
		/* Otherwise valid commands, so only the event is wrong. */
		bo_cmd c = cmd_new(op, bo_op_mutates(op) ? C1 : 0, EV_NONE);
		c.seat_count = 1;
		c.quantity = 1;
		c.ttl_ms = TTL;
		c.payref_len = 4;
		bo_result r = run(e, &c);
		EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_EVENT);
	}
	engine_free(e);
}

Test(common, idempotency_window_is_checked_before_the_event)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd c = cmd_hold_seats(C1, EV, TTL, SEATS(1));
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	c.event_id = EV_NONE; /* same key, unknown event */
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_CONFLICT, BO_D_IDEM_CONFLICT);
	engine_free(e);
}

Test(common, every_result_echoes_op_client_request_and_event)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd ok = cmd_hold_seats(C1, EV, TTL, SEATS(3));
	bo_cmd bad = cmd_hold_seats(C2, EV, TTL, SEATS(3)); /* taken */
	bo_cmd nf = cmd_claim(BO_OP_RELEASE, C2, EV_NONE, 5);
	const bo_cmd *cmds[] = {&ok, &bad, &nf};
	for (int i = 0; i < 3; i++) {
		bo_result r = run(e, cmds[i]);
		cr_assert_eq(r.op, cmds[i]->op);
		cr_assert_eq(r.client_id, cmds[i]->client_id);
		cr_assert_eq(r.request_id, cmds[i]->request_id);
		cr_assert_eq(r.event_id, cmds[i]->event_id);
		cr_assert_eq(r.replayed, 0);
	}
	engine_free(e);
}

/* ---- CREATE_EVENT -------------------------------------------------------- */

Test(create_event, ok_event_starts_all_free_with_its_counts)
{
	engine *e = small_engine();
	bo_seatmap *m = map_spec("0012|0122", 3, 2, 40);
	m->pool_capacity[1] = 7;
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	cr_assert_eq(r.claim_id, 0);
	bo_avail a;
	cr_assert_eq(engine_avail(e, EV, &a), 0);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 8);
	cr_assert_eq(a.by_state[BO_SEAT_HELD], 0);
	cr_assert_eq(a.by_state[BO_SEAT_BOOKED], 0);
	cr_assert_eq(a.by_state[BO_SEAT_BLOCKED], 0);
	cr_assert_eq(a.category_count, 3);
	cr_assert_eq(a.free_by_category[0], 3);
	cr_assert_eq(a.free_by_category[1], 2);
	cr_assert_eq(a.free_by_category[2], 3);
	cr_assert_eq(a.pool_count, 2);
	cr_assert_eq(a.pool_capacity[0], 40);
	cr_assert_eq(a.pool_free[0], 40);
	cr_assert_eq(a.pool_capacity[1], 7);
	cr_assert_eq(a.pool_free[1], 7);
	for (uint32_t s = 0; s < 8; s++)
		EXPECT_STATE(e, EV, s, BO_SEAT_FREE);
	uint8_t st;
	uint64_t owner;
	cr_assert_eq(engine_seat(e, EV, 8, &st, &owner), -ENOENT, "seat 8 does not exist");
	bo_seatmap_free(m);
	/* The engine copied the map: the event survives the caller's free. */
	EXPECT_STATE(e, EV, 7, BO_SEAT_FREE);
	engine_free(e);
}

Test(create_event, event_id_zero_is_checked_before_the_map)
{
	engine *e = small_engine();
	bo_cmd c = cmd_create(0, NULL);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_EVENT_ID_ZERO);
	engine_free(e);
}

Test(create_event, null_map_is_map_invalid)
{
	engine *e = small_engine();
	bo_cmd c = cmd_create(EV, NULL);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_MAP_INVALID);
	engine_free(e);
}

Test(create_event, map_is_checked_before_existence)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_seatmap *bad = map_spec("00", 1, 0, 0);
	bad->categories[1] = 1; /* category 1 of 1 */
	bo_cmd c = cmd_create(EV, bad);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_MAP_INVALID);
	bo_seatmap *good = map_spec("00", 1, 0, 0);
	c = cmd_create(EV, good);
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_EVENT_EXISTS);
	bo_avail a;
	cr_assert_eq(engine_avail(e, EV, &a), 0);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 30, "the first event is untouched");
	bo_seatmap_free(bad);
	bo_seatmap_free(good);
	engine_free(e);
}

Test(create_event, events_max_reached_is_events_full_after_existence)
{
	engine *e = engine_with(1000, 64, 64, 2);
	create_spec(e, 1, "00", 1, 0, 0);
	create_spec(e, 2, "00", 1, 0, 0); /* the 2nd of 2: ok */
	bo_seatmap *m = map_spec("00", 1, 0, 0);
	bo_cmd c = cmd_create(3, m);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_EVENTS_FULL);
	c = cmd_create(2, m);
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_EVENT_EXISTS);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.events, 2);
	bo_seatmap_free(m);
	engine_free(e);
}

Test(create_event, events_full_is_checked_before_seats_full)
{
	engine *e = engine_with(10, 64, 64, 1);
	create_spec(e, 1, "0000000000", 1, 0, 0); /* all 10 seats, the only event */
	bo_seatmap *m = map_spec("00000", 1, 0, 0);
	bo_cmd c = cmd_create(2, m);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_EVENTS_FULL);
	bo_seatmap_free(m);
	engine_free(e);
}

Test(create_event, seats_beyond_seats_max_is_seats_full)
{
	engine *e = engine_with(20, 64, 64, 16);
	create_spec(e, 1, "000000000000", 1, 0, 0); /* 12 */
	create_spec(e, 2, "00000000", 1, 0, 0);	    /* 20 of 20: exactly full is ok */
	bo_seatmap *m = map_spec("0", 1, 0, 0);
	bo_cmd c = cmd_create(3, m);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_SEATS_FULL);
	cr_assert_eq(engine_avail(e, 3, &(bo_avail){0}), -ENOENT, "nothing was created");
	/* A pool-only event needs no seats. */
	create_spec(e, 4, NULL, 0, 1, 10);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.events, 3);
	cr_assert_eq(st.seats, 20);
	bo_seatmap_free(m);
	engine_free(e);
}

/* ---- Seat map rules ------------------------------------------------------ */

/* The map breaks a rule: bo_seatmap_check says so and CREATE_EVENT answers
 * INVALID/MAP_INVALID without creating anything. */
static void expect_map_invalid_at(int line, bo_seatmap *m)
{
	cr_assert_neq(bo_seatmap_check(m), BO_D_NONE, "line %d: map accepted", line);
	engine *e = small_engine();
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	expect_fail_at(line, &r, BO_INVALID, BO_D_MAP_INVALID, NO_SEAT);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.events, 0, "line %d", line);
	cr_assert_eq(st.seats, 0, "line %d", line);
	engine_free(e);
	bo_seatmap_free(m);
}

static void expect_map_ok_at(int line, bo_seatmap *m)
{
	cr_assert_eq(bo_seatmap_check(m), BO_D_NONE, "line %d: map refused", line);
	engine *e = small_engine();
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	expect_ok_at(line, &r);
	engine_free(e);
	bo_seatmap_free(m);
}
#define EXPECT_MAP_INVALID(m) expect_map_invalid_at(__LINE__, (m))
#define EXPECT_MAP_OK(m) expect_map_ok_at(__LINE__, (m))

Test(seatmap, row_with_zero_seats_is_invalid)
{
	bo_seatmap *m = bo_seatmap_new(3, 4, 0);
	m->category_count = 1;
	m->rows[0].seats = 2;
	m->rows[1].seats = 0;
	m->rows[2].seats = 2;
	EXPECT_MAP_INVALID(m);
}

Test(seatmap, row_longer_than_seats_per_row_max_is_invalid)
{
	bo_seatmap *m = bo_seatmap_new(1, BO_SEATS_PER_ROW_MAX + 1, 0);
	m->category_count = 1;
	/* rows[].seats is 16 bits wide, so 4097 fits and must be refused. */
	m->rows[0].seats = (uint16_t)(BO_SEATS_PER_ROW_MAX + 1);
	EXPECT_MAP_INVALID(m);

	m = bo_seatmap_new(1, BO_SEATS_PER_ROW_MAX, 0);
	m->category_count = 1;
	m->rows[0].seats = (uint16_t)BO_SEATS_PER_ROW_MAX;
	EXPECT_MAP_OK(m);
}

Test(seatmap, sum_of_rows_differing_from_seat_count_is_invalid)
{
	bo_seatmap *m = map_spec("0000|0000", 1, 0, 0);
	m->rows[1].seats = 3; /* 7 != 8 */
	EXPECT_MAP_INVALID(m);
	m = map_spec("0000|0000", 1, 0, 0);
	m->seat_count = 7; /* rows say 8 */
	EXPECT_MAP_INVALID(m);
}

Test(seatmap, category_out_of_range_is_invalid)
{
	bo_seatmap *m = map_spec("0120", 3, 0, 0);
	m->categories[3] = 3; /* == category_count */
	EXPECT_MAP_INVALID(m);
	EXPECT_MAP_OK(map_spec("0122", 3, 0, 0));
}

Test(seatmap, category_count_zero_or_over_max_is_invalid)
{
	EXPECT_MAP_INVALID(map_spec("00", 0, 0, 0));
	EXPECT_MAP_INVALID(map_spec("00", BO_CATEGORIES_MAX + 1, 0, 0));
	EXPECT_MAP_OK(map_spec("0f", BO_CATEGORIES_MAX, 0, 0));
}

Test(seatmap, pool_capacity_zero_or_over_max_is_invalid)
{
	EXPECT_MAP_INVALID(map_spec(NULL, 0, 1, 0));
	EXPECT_MAP_INVALID(map_spec(NULL, 0, 1, BO_POOL_CAPACITY_MAX + 1));
	bo_seatmap *m = map_spec("00", 1, 2, 10);
	m->pool_capacity[1] = 0; /* the second pool only */
	EXPECT_MAP_INVALID(m);
	EXPECT_MAP_OK(map_spec(NULL, 0, 1, 1));
	EXPECT_MAP_OK(map_spec(NULL, 0, 1, BO_POOL_CAPACITY_MAX));
}

Test(seatmap, no_seats_and_no_pools_is_invalid)
{
	EXPECT_MAP_INVALID(map_spec(NULL, 0, 0, 0));
	EXPECT_MAP_INVALID(map_spec(NULL, 1, 0, 0));
	EXPECT_MAP_OK(map_spec(NULL, 0, BO_POOLS_PER_EVENT_MAX, 5)); /* pools only */
	EXPECT_MAP_OK(map_spec("0", 1, 0, 0));			     /* one seat only */
}

Test(seatmap, section_out_of_range_is_invalid)
{
	bo_seatmap *m = map_spec("00|00", 1, 0, 0);
	m->rows[1].section = BO_SECTIONS_PER_EVENT_MAX;
	EXPECT_MAP_INVALID(m);
	m = map_spec("00|00", 1, 0, 0);
	m->rows[1].section = BO_SECTIONS_PER_EVENT_MAX - 1;
	EXPECT_MAP_OK(m);
}

/* The description (BO_MAP_DESC_BYTES_MAX): 4 bytes a row, 3 a category run
 * (maximal within its row, never across rows), 4 a pool. */
Test(seatmap, description_counts_rows_runs_within_rows_and_pools)
{
	/* Row 0: runs 00 11 0 (3); row 1: 0 11 (2; its first 0 follows row
	 * 0's last 0 but starts a run of its own); row 2: 2222 (1). */
	bo_seatmap *m = map_spec("00110|011|2222", 3, 2, 7);
	cr_assert_eq(bo_seatmap_desc_bytes(m), 4u * 3 + 3u * 6 + 4u * 2);
	bo_seatmap_free(m);
	m = map_spec(NULL, 0, 1, 7); /* pools only */
	cr_assert_eq(bo_seatmap_desc_bytes(m), 4u);
	bo_seatmap_free(m);
}

/* An engine with room for the largest map (1 Mi seats). */
static engine *big_engine(void) { return engine_with(BO_SEATS_PER_EVENT_MAX, 1024, 1024, 16); }

Test(seatmap, description_at_the_bound_is_valid_one_byte_or_run_over_is_invalid)
{
	/* Exactly the bound: valid, and the engine creates the event. */
	bo_seatmap *m = descmap_sized(BO_MAP_DESC_BYTES_MAX);
	cr_assert_not_null(m);
	cr_assert_eq(bo_seatmap_desc_bytes(m), BO_MAP_DESC_BYTES_MAX);
	cr_assert_eq(bo_seatmap_check(m), BO_D_NONE);
	engine *e = big_engine();
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	bo_avail a;
	cr_assert_eq(engine_avail(e, EV, &a), 0);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], m->seat_count);
	engine_free(e);

	/* One run more (the last seat of a row whose last run is longer than
	 * one seat changes category): 3 bytes over. */
	uint32_t r0 = 0;
	while (m->categories[(r0 + 1) * DESCMAP_ROW_SEATS - 1] !=
	       m->categories[(r0 + 1) * DESCMAP_ROW_SEATS - 2])
		r0++;
	m->categories[(r0 + 1) * DESCMAP_ROW_SEATS - 1] ^= 1;
	cr_assert_eq(bo_seatmap_desc_bytes(m), BO_MAP_DESC_BYTES_MAX + 3u);
	EXPECT_MAP_INVALID(m);

	/* One byte over (a different shape: fewer rows, more runs). */
	m = descmap_sized(BO_MAP_DESC_BYTES_MAX + 1u);
	cr_assert_not_null(m);
	cr_assert_eq(bo_seatmap_desc_bytes(m), BO_MAP_DESC_BYTES_MAX + 1u);
	EXPECT_MAP_INVALID(m);
}

/* The defect's map: 1 Mi seats, categories alternating seat by seat. Every
 * other rule holds, but it could not be journaled (3.4 MB > 2 MiB). */
Test(seatmap, a_million_seats_of_alternating_categories_is_map_invalid)
{
	bo_seatmap *m = descmap_alternating();
	cr_assert_not_null(m);
	cr_assert_eq(m->seat_count, BO_SEATS_PER_EVENT_MAX);
	cr_assert_eq(bo_seatmap_desc_bytes(m), 4ull * BO_ROWS_PER_EVENT_MAX + 3ull * BO_SEATS_PER_EVENT_MAX);
	/* In an engine that has the room, so the answer is the map's. */
	engine *e = big_engine();
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_MAP_INVALID);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.events, 0);
	engine_free(e);
	EXPECT_MAP_INVALID(m);
}

/* ---- HOLD_SEATS ---------------------------------------------------------- */

Test(hold_seats, ok_holds_the_seats_in_command_order)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = hold_seats(e, C1, EV, 5000, SEATS(17, 2, 9));
	EXPECT_SEATS(&r, 17, 2, 9);
	cr_assert_neq(r.claim_id, 0);
	cr_assert_eq(r.expires_at_ms, T0 + 5000, "expires_at = now + ttl");
	cr_assert_eq(r.replayed, 0);
	for (uint32_t s = 0; s < 30; s++) {
		bool held = s == 17 || s == 2 || s == 9;
		EXPECT_STATE(e, EV, s, held ? BO_SEAT_HELD : BO_SEAT_FREE);
		cr_assert_eq(seat_owner(e, EV, s), held ? r.claim_id : 0);
	}
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.by_state[BO_SEAT_HELD], 3);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 27);
	cr_assert_eq(engine_client_holds(e, C1), 1);
	engine_free(e);
}

Test(hold_seats, seat_count_zero_or_over_max_is_seat_count)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd c = cmd_hold_seats(C1, EV, TTL, SEATS(1));
	c.seat_count = 0;
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
	c = cmd_hold_seats(C1, EV, TTL, SEATS_0_TO_15);
	c.seat_count = BO_SEATS_PER_HOLD_MAX + 1;
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
	engine_free(e);
}

Test(hold_seats, seat_beyond_the_event_is_seat_range)
{
	engine *e = small_engine();
	create_plain(e, EV); /* seats 0..29 */
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(0, 30));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_RANGE);
	r = hold_seats(e, C1, EV, TTL, SEATS(UINT32_MAX));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_RANGE);
	EXPECT_STATE(e, EV, 0, BO_SEAT_FREE);
	r = hold_seats(e, C1, EV, TTL, SEATS(29));
	EXPECT_SEATS(&r, 29);
	engine_free(e);
}

Test(hold_seats, range_is_checked_before_duplicate)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(1, 1, 30));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_RANGE);
	engine_free(e);
}

Test(hold_seats, duplicate_is_checked_before_taken)
{
	engine *e = small_engine();
	create_plain(e, EV);
	hold_ok(e, C2, EV, SEATS(3));
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(3, 4, 4));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_DUPLICATE);
	EXPECT_STATE(e, EV, 4, BO_SEAT_FREE);
	engine_free(e);
}

Test(hold_seats, ttl_is_checked_before_taken)
{
	engine *e = small_engine();
	create_plain(e, EV);
	hold_ok(e, C2, EV, SEATS(3));
	bo_result r = hold_seats(e, C1, EV, BO_TTL_MS_MIN - 1, SEATS(3));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	r = hold_seats(e, C1, EV, BO_TTL_MS_MAX + 1, SEATS(3));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	engine_free(e);
}

Test(hold_seats, taken_names_the_first_unavailable_seat_in_command_order)
{
	engine *e = small_engine();
	create_plain(e, EV);
	hold_ok(e, C2, EV, SEATS(3));			       /* held */
	uint64_t b = hold_ok(e, C2, EV, SEATS(8));	       /* booked */
	bo_result r = confirm(e, C2, EV, b);
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(6));	       /* blocked */
	EXPECT_OK(&r);

	r = hold_seats(e, C1, EV, TTL, SEATS(1, 8, 6, 3));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 8);
	r = hold_seats(e, C1, EV, TTL, SEATS(2, 6, 3));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 6);
	r = hold_seats(e, C1, EV, TTL, SEATS(0, 3));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 3);
	/* All or nothing: the free seats named alongside stay free. */
	EXPECT_STATE(e, EV, 0, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 2, BO_SEAT_FREE);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	engine_free(e);
}

Test(hold_seats, taken_is_checked_before_the_client_limit)
{
	engine *e = small_engine();
	create_plain(e, EV);
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++)
		hold_ok(e, C1, EV, &i, 1);
	hold_ok(e, C2, EV, SEATS(20));
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(20));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 20);
	r = hold_seats(e, C1, EV, TTL, SEATS(21));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	engine_free(e);
}

Test(hold_seats, client_limit_is_checked_before_claims_full)
{
	/* 16 claim slots: C1's 16 holds fill the shard and reach C1's limit. */
	engine *e = engine_with(1024, BO_HOLDS_PER_CLIENT_MAX, 64, 4);
	create_plain(e, EV);
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++)
		hold_ok(e, C1, EV, &i, 1);
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(20));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	r = hold_seats(e, C2, EV, TTL, SEATS(20));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	EXPECT_STATE(e, EV, 20, BO_SEAT_FREE);
	engine_free(e);
}

/* ---- HOLD_BEST ----------------------------------------------------------- */

Test(hold_best, quantity_zero_or_over_max_is_quantity_before_category)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = hold_best(e, C1, EV, 0, 0, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_best(e, C1, EV, 0, BO_SEATS_PER_HOLD_MAX + 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_best(e, C1, EV, 9, 0, TTL); /* bad category too */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_best(e, C1, EV, 0, BO_SEATS_PER_HOLD_MAX, TTL);
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, BO_SEATS_PER_HOLD_MAX);
	engine_free(e);
}

Test(hold_best, category_beyond_the_event_is_category_range_before_ttl)
{
	engine *e = small_engine();
	create_spec(e, EV, "0011", 2, 0, 0);
	create_spec(e, EV2, NULL, 0, 1, 10); /* pools only: no category at all */
	bo_result r = hold_best(e, C1, EV, 2, 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_CATEGORY_RANGE);
	r = hold_best(e, C1, EV, 2, 1, 0); /* bad ttl too */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_CATEGORY_RANGE);
	r = hold_best(e, C1, EV2, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_CATEGORY_RANGE);
	r = hold_best(e, C1, EV, 1, 1, TTL);
	EXPECT_OK(&r);
	engine_free(e);
}

Test(hold_best, ttl_is_checked_before_sold_out)
{
	engine *e = small_engine();
	create_spec(e, EV, "0011", 2, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 3, BO_TTL_MS_MIN - 1); /* sold out too */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	r = hold_best(e, C1, EV, 0, 3, BO_TTL_MS_MAX + 1);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	engine_free(e);
}

Test(hold_best, sold_out_counts_only_free_seats_of_the_category)
{
	engine *e = small_engine();
	create_spec(e, EV, "0011|1111", 2, 1, 100);
	bo_result r = hold_best(e, C1, EV, 0, 3, TTL); /* 6 free seats, 2 of category 0 */
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_SOLD_OUT);
	hold_ok(e, C2, EV, SEATS(0));
	r = hold_best(e, C1, EV, 0, 2, TTL); /* only 1 left */
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_SOLD_OUT);
	r = hold_best(e, C1, EV, 0, 1, TTL);
	EXPECT_SEATS(&r, 1);
	r = hold_best(e, C1, EV, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_SOLD_OUT);
	engine_free(e);
}

Test(hold_best, sold_out_is_checked_before_limits_and_limits_apply)
{
	engine *e = engine_with(1024, BO_HOLDS_PER_CLIENT_MAX + 1, 64, 4);
	create_spec(e, EV, "00000000000000000000|11", 2, 0, 0);
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++)
		hold_ok(e, C1, EV, &i, 1);
	bo_result r = hold_best(e, C1, EV, 1, 3, TTL); /* 2 of category 1 */
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_SOLD_OUT);
	r = hold_best(e, C1, EV, 1, 2, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	r = hold_best(e, C2, EV, 1, 1, TTL); /* takes the 17th and last claim slot */
	EXPECT_OK(&r);
	r = hold_best(e, C3, EV, 1, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	engine_free(e);
}

Test(hold_best, ok_result_lists_seats_ascending_with_expiry)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = hold_best(e, C1, EV, 0, 4, 7000);
	EXPECT_SEATS(&r, 3, 4, 5, 6); /* |2s + 4 - 10| is 0 at s = 3 */
	cr_assert_eq(r.expires_at_ms, T0 + 7000);
	for (uint32_t s = 3; s <= 6; s++)
		cr_assert_eq(seat_owner(e, EV, s), r.claim_id);
	engine_free(e);
}

/* ---- Best available: the exact choice ------------------------------------ */

/* Each case: a hand-built event, the seats the rule in engine.h picks and
 * why. Seats are numbered across rows; `d` is |2*(s - row_first) + n -
 * row_len|. */

Test(best_available, takes_the_centre_of_the_row_leftmost_on_a_tie)
{
	engine *e = small_engine();
	create_spec(e, 1, "0000000000", 1, 0, 0);
	create_spec(e, 2, "0000000000", 1, 0, 0);
	create_spec(e, 3, "000000000", 1, 0, 0);
	bo_result r = hold_best(e, C1, 1, 0, 2, TTL); /* 10 seats, n 2: d = 0 at s = 4 */
	EXPECT_SEATS(&r, 4, 5);
	r = hold_best(e, C1, 2, 0, 3, TTL); /* n 3: d = 1 at s = 3 and 4 -> 3 */
	EXPECT_SEATS(&r, 3, 4, 5);
	r = hold_best(e, C1, 3, 0, 2, TTL); /* 9 seats, n 2: d = 1 at s = 3 and 4 -> 3 */
	EXPECT_SEATS(&r, 3, 4);
	engine_free(e);
}

Test(best_available, best_row_first_even_off_centre)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000000000|0000000000|0000000000", 1, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 4, 5);
	/* Row 0 now has free runs 0-3 and 6-9. Starts 1 and 7 strand seat 0 /
	 * 9; 2 and 6 have d = 4 -> 2. Row 1's centre (d = 0) ranks lower. */
	r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 2, 3);
	engine_free(e);
}

Test(best_available, avoids_stranding_a_seat_even_in_a_worse_row)
{
	engine *e = small_engine();
	/* Row 0 has only seats 3-5 free: both blocks of 2 leave one single. */
	create_spec(e, EV, "xxx000xxxx|0000000000", 1, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 14, 15);
	engine_free(e);
}

Test(best_available, avoids_stranding_a_seat_even_off_centre)
{
	engine *e = small_engine();
	/* Seat 7 blocked. The centre block 4-5 would leave seat 6 alone;
	 * 3-4 and 5-6 strand nothing and tie at d = 2 -> leftmost. */
	create_spec(e, EV, "0000000x00", 1, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 3, 4);
	engine_free(e);
}

Test(best_available, a_free_seat_of_another_category_can_be_stranded)
{
	engine *e = small_engine();
	/* Seat 2 blocked, seat 3 of category 1. For category 0, n 2: start 4
	 * (d = 0) leaves seat 3 free and alone; start 5 (d = 2) does not;
	 * start 0 (d = 8) is further. */
	create_spec(e, EV, "00x1000000", 2, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 5, 6);
	engine_free(e);
}

Test(best_available, unavoidable_stranding_takes_best_row_then_centre)
{
	engine *e = small_engine();
	/* Row 0 free 0-2, row 1 free 13-15: every block strands a seat.
	 * Row 0 ranks first; in it start 1 (d = 6) beats start 0 (d = 8),
	 * although row 1's start 14 would be centred. */
	create_spec(e, EV, "000xxxxxxx|xxx000xxxx", 1, 0, 0);
	bo_result r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 1, 2);
	engine_free(e);
}

Test(best_available, categories_mixed_within_a_row)
{
	engine *e = small_engine();
	create_spec(e, EV, "1110000111", 2, 0, 0);
	/* Category 1, n 2: start 0 (d = 8, seat 2 then 3 free) and start 8
	 * (d = 8) strand nothing; 1 and 7 strand seat 0 / 9 -> 0. */
	bo_result r = hold_best(e, C1, EV, 1, 2, TTL);
	EXPECT_SEATS(&r, 0, 1);
	/* Category 0, n 2: run 3-6, start 4 is centred and strands nothing
	 * (seats 2 and 7, of category 1, are free beside it in pairs). */
	r = hold_best(e, C1, EV, 0, 2, TTL);
	EXPECT_SEATS(&r, 4, 5);
	/* Category 1, n 3: only run 7-9; it leaves seat 6 alone (5 is held):
	 * stranding is unavoidable, so it is taken anyway. */
	r = hold_best(e, C1, EV, 1, 3, TTL);
	EXPECT_SEATS(&r, 7, 8, 9);
	engine_free(e);
}

Test(best_available, no_adjacent_block_takes_seats_nearest_each_centre_best_rows_first)
{
	engine *e = small_engine();
	/* Row 0 (0-4) free 0, 2, 4; row 1 (5-9) free 5, 6, 8, 9: no 4 adjacent.
	 * Row 0 gives 2 (centre), then 0 and 4 (d = 4, left first); row 1
	 * adds 6 (d = 2, left of 8). Listed ascending. */
	create_spec(e, 1, "0x0x0|00x00", 1, 0, 0);
	bo_result r = hold_best(e, C1, 1, 0, 4, TTL);
	EXPECT_SEATS(&r, 0, 2, 4, 6);
	/* Only seats of the category count: seat 2 is category 1 here. */
	create_spec(e, 2, "0x1x0|00x00", 2, 0, 0);
	r = hold_best(e, C1, 2, 0, 3, TTL);
	EXPECT_SEATS(&r, 0, 4, 6);
	/* Even rows: row 0 (0-3) free 1, 2 (d = 1 each); row 1 (4-7) free 4
	 * and 7 (d = 3 each) -> 4. */
	create_spec(e, 3, "x00x|0xx0", 1, 0, 0);
	r = hold_best(e, C1, 3, 0, 3, TTL);
	EXPECT_SEATS(&r, 1, 2, 4);
	for (uint32_t s = 0; s < 8; s++) {
		bool mine = s == 1 || s == 2 || s == 4;
		bool blocked = s == 0 || s == 3 || s == 5 || s == 6;
		uint8_t want = mine ? BO_SEAT_HELD : blocked ? BO_SEAT_BLOCKED : BO_SEAT_FREE;
		EXPECT_STATE(e, 3, s, want);
	}
	engine_free(e);
}

/* ---- HOLD_POOL ----------------------------------------------------------- */

Test(hold_pool, pool_beyond_the_event_is_pool_range_before_quantity)
{
	engine *e = small_engine();
	create_spec(e, EV, "00", 1, 2, 50);
	create_spec(e, EV2, "00", 1, 0, 0);
	bo_result r = hold_pool(e, C1, EV, 2, 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_POOL_RANGE);
	r = hold_pool(e, C1, EV, 2, 0, TTL); /* bad quantity too */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_POOL_RANGE);
	r = hold_pool(e, C1, EV2, 0, 1, TTL); /* no pools at all */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_POOL_RANGE);
	r = hold_pool(e, C1, EV, 1, 1, TTL);
	EXPECT_OK(&r);
	engine_free(e);
}

Test(hold_pool, quantity_zero_or_over_max_is_quantity_before_ttl)
{
	engine *e = small_engine();
	create_spec(e, EV, NULL, 0, 1, 1000);
	bo_result r = hold_pool(e, C1, EV, 0, 0, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_pool(e, C1, EV, 0, BO_POOL_QTY_PER_HOLD_MAX + 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_pool(e, C1, EV, 0, 0, 0); /* bad ttl too */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_pool(e, C1, EV, 0, BO_POOL_QTY_PER_HOLD_MAX, TTL);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, BO_POOL_QTY_PER_HOLD_MAX);
	engine_free(e);
}

Test(hold_pool, ttl_is_checked_before_pool_unavailable)
{
	engine *e = small_engine();
	create_spec(e, EV, NULL, 0, 1, 5);
	bo_result r = hold_pool(e, C1, EV, 0, 6, BO_TTL_MS_MIN - 1);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	r = hold_pool(e, C1, EV, 0, 6, BO_TTL_MS_MAX + 1);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	engine_free(e);
}

Test(hold_pool, pool_free_below_quantity_is_pool_unavailable_before_limits)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000000000000000", 1, 1, 150);
	bo_result r = hold_pool(e, C2, EV, 0, 100, TTL);
	EXPECT_OK(&r);
	r = hold_pool(e, C1, EV, 0, 51, TTL);
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_POOL_UNAVAILABLE);
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++)
		hold_ok(e, C1, EV, &i, 1);
	r = hold_pool(e, C1, EV, 0, 51, TTL);
	EXPECT_FAIL(&r, BO_TAKEN, BO_D_POOL_UNAVAILABLE);
	r = hold_pool(e, C1, EV, 0, 50, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	r = hold_pool(e, C3, EV, 0, 50, TTL); /* exactly what is left */
	EXPECT_OK(&r);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 0);
	engine_free(e);
}

Test(hold_pool, ok_result_carries_pool_quantity_and_expiry)
{
	engine *e = small_engine();
	create_spec(e, EV, "00", 1, 3, 40);
	bo_result r = hold_pool(e, C1, EV, 2, 15, 9000);
	EXPECT_OK(&r);
	cr_assert_neq(r.claim_id, 0);
	cr_assert_eq(r.pool, 2);
	cr_assert_eq(r.quantity, 15);
	cr_assert_eq(r.seat_count, 0);
	cr_assert_eq(r.expires_at_ms, T0 + 9000);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[2], 25);
	cr_assert_eq(a.pool_free[0], 40);
	cr_assert_eq(a.pool_free[1], 40);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 2, "seats untouched");
	cr_assert_eq(engine_client_holds(e, C1), 1);
	engine_free(e);
}

/* ---- EXTEND -------------------------------------------------------------- */

Test(extend, ok_sets_expiry_to_now_plus_ttl)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 5000, SEATS(4, 2));
	advance(e, T0 + 1000);
	bo_result r = extend(e, C1, EV, h.claim_id, 10000);
	EXPECT_SEATS(&r, 4, 2);
	cr_assert_eq(r.claim_id, h.claim_id);
	cr_assert_eq(r.expires_at_ms, T0 + 1000 + 10000);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MIN); /* shorter is allowed */
	EXPECT_OK(&r);
	cr_assert_eq(r.expires_at_ms, T0 + 1000 + BO_TTL_MS_MIN);
	/* Pool holds extend the same way. */
	create_spec(e, EV2, NULL, 0, 1, 10);
	bo_result p = hold_pool(e, C1, EV2, 0, 3, 5000);
	r = extend(e, C1, EV2, p.claim_id, 20000);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, 3);
	cr_assert_eq(r.expires_at_ms, T0 + 1000 + 20000);
	engine_free(e);
}

Test(extend, claim_not_a_live_hold_of_this_event_is_no_hold)
{
	engine *e = small_engine();
	create_plain(e, EV);
	create_plain(e, EV2);
	uint64_t other = hold_ok(e, C1, EV2, SEATS(1));
	uint64_t released = hold_ok(e, C1, EV, SEATS(2));
	bo_result r = release(e, C1, EV, released);
	EXPECT_OK(&r);
	uint64_t cancelled = hold_ok(e, C1, EV, SEATS(3));
	r = confirm(e, C1, EV, cancelled);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV, cancelled);
	EXPECT_OK(&r);
	const uint64_t ids[] = {0, 12345, (7ull << 32) | 0, other, released, cancelled};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		r = extend(e, C1, EV, ids[i], TTL);
		EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	}
	engine_free(e);
}

Test(extend, booked_is_already_confirmed_before_ttl)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t id = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = confirm(e, C1, EV, id);
	EXPECT_OK(&r);
	r = extend(e, C1, EV, id, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_ALREADY_CONFIRMED);
	r = extend(e, C1, EV, id, 0);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_ALREADY_CONFIRMED);
	engine_free(e);
}

Test(extend, expired_is_hold_expired_before_ttl)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 2000, SEATS(1));
	advance(e, T0 + 2000);
	bo_result r = extend(e, C1, EV, h.claim_id, TTL);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	r = extend(e, C1, EV, h.claim_id, 0);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	engine_free(e);
}

Test(extend, ttl_outside_limits_is_ttl_range_and_changes_nothing)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 5000, SEATS(1));
	bo_result r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MIN - 1);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX + 1);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX);
	EXPECT_OK(&r);
	cr_assert_eq(r.expires_at_ms, T0 + BO_TTL_MS_MAX);
	engine_free(e);
}

/* ---- RELEASE ------------------------------------------------------------- */

Test(release, ok_frees_seats_and_reports_the_claim_without_expiry)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, TTL, SEATS(9, 7));
	bo_result r = release(e, C1, EV, h.claim_id);
	EXPECT_SEATS(&r, 9, 7);
	cr_assert_eq(r.claim_id, h.claim_id);
	cr_assert_eq(r.expires_at_ms, 0, "expires_at is for HOLD_* and EXTEND only");
	EXPECT_STATE(e, EV, 9, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 7, BO_SEAT_FREE);
	cr_assert_eq(seat_owner(e, EV, 9), 0);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 30);
	/* Released seats can be held again at once. */
	hold_ok(e, C2, EV, SEATS(7, 9));
	engine_free(e);
}

Test(release, pool_hold_returns_its_quantity)
{
	engine *e = small_engine();
	create_spec(e, EV, NULL, 0, 1, 10);
	bo_result h = hold_pool(e, C1, EV, 0, 7, TTL);
	bo_result r = release(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, 7);
	cr_assert_eq(r.expires_at_ms, 0);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 10);
	engine_free(e);
}

Test(release, not_a_live_hold_is_no_hold_booked_is_already_confirmed_expired_is_expired)
{
	engine *e = small_engine();
	create_plain(e, EV);
	create_plain(e, EV2);
	uint64_t id = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = release(e, C1, EV2, id); /* wrong event */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = release(e, C1, EV, id);
	EXPECT_OK(&r);
	r = release(e, C1, EV, id); /* released already */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = release(e, C1, EV, 424242);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);

	uint64_t booked = hold_ok(e, C1, EV, SEATS(2));
	r = confirm(e, C1, EV, booked);
	EXPECT_OK(&r);
	r = release(e, C1, EV, booked);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_ALREADY_CONFIRMED);
	EXPECT_STATE(e, EV, 2, BO_SEAT_BOOKED);

	bo_result h = hold_seats(e, C1, EV, 1000, SEATS(3));
	advance(e, T0 + 1000);
	r = release(e, C1, EV, h.claim_id);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	engine_free(e);
}

/* ---- CONFIRM ------------------------------------------------------------- */

Test(confirm, payref_missing_or_too_long_is_payref_before_the_claim)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t id = hold_ok(e, C1, EV, SEATS(1));
	bo_cmd c = cmd_confirm_len(C1, EV, id, 0);
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_PAYREF);
	c = cmd_confirm_len(C1, EV, id, BO_PAYREF_LEN_MAX + 1);
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_PAYREF);
	c = cmd_confirm_len(C1, EV, 987654, 0); /* unknown claim too */
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_PAYREF);
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	c = cmd_confirm_len(C1, EV, id, BO_PAYREF_LEN_MAX);
	r = run(e, &c);
	EXPECT_OK(&r);
	engine_free(e);
}

Test(confirm, ok_books_the_seats_and_frees_the_client_slot)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t id = hold_ok(e, C1, EV, SEATS(5, 6));
	cr_assert_eq(engine_client_holds(e, C1), 1);
	bo_cmd c = cmd_confirm_len(C1, EV, id, 1);
	bo_result r = run(e, &c);
	EXPECT_SEATS(&r, 5, 6);
	cr_assert_eq(r.claim_id, id, "the booking keeps the hold's id");
	cr_assert_eq(r.expires_at_ms, 0);
	EXPECT_STATE(e, EV, 5, BO_SEAT_BOOKED);
	EXPECT_STATE(e, EV, 6, BO_SEAT_BOOKED);
	cr_assert_eq(seat_owner(e, EV, 5), id);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.holds, 0);
	cr_assert_eq(st.bookings, 1);
	engine_free(e);
}

Test(confirm, not_a_hold_is_no_hold_and_booked_is_already_confirmed)
{
	engine *e = small_engine();
	create_plain(e, EV);
	create_plain(e, EV2);
	uint64_t id = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = confirm(e, C1, EV2, id);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = confirm(e, C1, EV, 5555);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = confirm(e, C1, EV, id);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, id); /* a new request id: not a replay */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_ALREADY_CONFIRMED);
	uint64_t rel = hold_ok(e, C1, EV, SEATS(2));
	r = release(e, C1, EV, rel);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, rel);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = cancel(e, C1, EV, id);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, id); /* cancelled booking */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	engine_free(e);
}

/* ---- CANCEL -------------------------------------------------------------- */

Test(cancel, ok_frees_seats_and_pool_quantity)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000", 1, 1, 20);
	uint64_t s = hold_ok(e, C1, EV, SEATS(3, 1));
	bo_result r = confirm(e, C1, EV, s);
	EXPECT_OK(&r);
	bo_result p = hold_pool(e, C1, EV, 0, 8, TTL);
	r = confirm(e, C1, EV, p.claim_id);
	EXPECT_OK(&r);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.by_state[BO_SEAT_BOOKED], 2);
	cr_assert_eq(a.pool_free[0], 12);

	r = cancel(e, C1, EV, s);
	EXPECT_SEATS(&r, 3, 1);
	cr_assert_eq(r.claim_id, s);
	cr_assert_eq(r.expires_at_ms, 0);
	r = cancel(e, C1, EV, p.claim_id);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, 8);
	engine_avail(e, EV, &a);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], 4);
	cr_assert_eq(a.by_state[BO_SEAT_BOOKED], 0);
	cr_assert_eq(a.pool_free[0], 20);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.bookings, 0);
	hold_ok(e, C2, EV, SEATS(1, 3));
	engine_free(e);
}

Test(cancel, live_hold_is_not_a_booking_and_anything_else_is_no_booking)
{
	engine *e = small_engine();
	create_plain(e, EV);
	create_plain(e, EV2);
	uint64_t held = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = cancel(e, C1, EV, held);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_NOT_A_BOOKING);
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);

	bo_result x = hold_seats(e, C1, EV, 1000, SEATS(2));
	advance(e, T0 + 1000);
	r = cancel(e, C1, EV, x.claim_id); /* expired hold */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);

	uint64_t booked = hold_ok(e, C1, EV, SEATS(3));
	r = confirm(e, C1, EV, booked);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV2, booked); /* other event */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	r = cancel(e, C1, EV, 31337);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	r = cancel(e, C1, EV, booked);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV, booked); /* twice */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	uint64_t rel = hold_ok(e, C1, EV, SEATS(4));
	r = release(e, C1, EV, rel);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV, rel); /* released hold */
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	engine_free(e);
}

/* ---- Ownership: who may touch a claim ------------------------------------ */

/* A claim op of `client` on `id`, with bo_cmd.flags; CONFIRM gets a payref,
 * EXTEND a ttl. */
static bo_result claim_op_flags(engine *e, uint8_t op, uint64_t client, uint64_t id, uint8_t flags)
{
	bo_cmd c = op == BO_OP_CONFIRM ? cmd_confirm_len(client, EV, id, 4)
				       : cmd_claim(op, client, EV, id);
	if (op == BO_OP_EXTEND)
		c.ttl_ms = TTL;
	c.flags = flags;
	return run(e, &c);
}

/* What a client can observe of event EV (10 seats) and the engine: every
 * seat's state and claim, availability, live holds and bookings. */
typedef struct observed {
	uint8_t state[10];
	uint64_t claim[10];
	bo_avail avail;
	uint32_t holds, bookings, c1_holds;
} observed;

static observed observe(const engine *e)
{
	observed o;
	memset(&o, 0, sizeof(o));
	for (uint32_t s = 0; s < 10; s++)
		cr_assert_eq(engine_seat(e, EV, s, &o.state[s], &o.claim[s]), 0);
	cr_assert_eq(engine_avail(e, EV, &o.avail), 0);
	engine_stats st;
	engine_stats_get(e, &st);
	o.holds = st.holds;
	o.bookings = st.bookings;
	o.c1_holds = engine_client_holds(e, C1);
	return o;
}

/* `got` is, request id aside, the very answer `client` gets for an id that
 * never existed: nothing tells the two apart. */
static void expect_as_unknown_at(int line, engine *e, uint8_t op, uint64_t client,
				 const bo_result *got)
{
	bo_result unknown = claim_op_flags(e, op, client, 0x777700000001ull, 0);
	cr_assert_eq(unknown.status, BO_NOT_FOUND, "line %d", line);
	unknown.request_id = got->request_id;
	cr_assert(memcmp(&unknown, got, sizeof(unknown)) == 0,
		  "line %d: %s by another client answered %s/%s, unlike an unknown claim (%s/%s)",
		  line, bo_op_str(op), bo_status_str(got->status), bo_detail_str(got->detail),
		  bo_status_str(unknown.status), bo_detail_str(unknown.detail));
}
#define EXPECT_AS_UNKNOWN(e, op, client, r) expect_as_unknown_at(__LINE__, (e), (op), (client), (r))

Test(ownership, another_clients_hold_is_no_hold_for_extend_release_confirm_and_changes_nothing)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, TTL, SEATS(1, 2));
	EXPECT_OK(&h);
	const uint8_t ops[] = {BO_OP_EXTEND, BO_OP_RELEASE, BO_OP_CONFIRM};
	for (uint32_t i = 0; i < 3; i++) {
		advance(e, T0 + 1 + i);
		observed before = observe(e);
		bo_result r = claim_op_flags(e, ops[i], C2, h.claim_id, 0);
		EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
		observed after = observe(e);
		cr_assert(memcmp(&before, &after, sizeof(before)) == 0, "%s changed the state",
			  bo_op_str(ops[i]));
		EXPECT_AS_UNKNOWN(e, ops[i], C2, &r);
	}
	/* The hold is untouched: still C1's, with its first expiry. */
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	cr_assert_eq(seat_owner(e, EV, 1), h.claim_id);
	bo_result r = extend(e, C1, EV, h.claim_id, TTL);
	EXPECT_OK(&r);
	cr_assert_eq(r.expires_at_ms, T0 + 3 + (int64_t)TTL);
	r = confirm(e, C1, EV, h.claim_id);
	EXPECT_SEATS(&r, 1, 2);
	engine_free(e);
}

Test(ownership, another_client_learns_nothing_of_state_expired_booked_or_live_hold)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result x = hold_seats(e, C1, EV, 1000, SEATS(5));
	uint64_t booked = hold_ok(e, C1, EV, SEATS(6));
	uint64_t held = hold_ok(e, C1, EV, SEATS(7));
	bo_result r = confirm(e, C1, EV, booked);
	EXPECT_OK(&r);
	advance(e, T0 + 1000); /* x expires */

	/* The owner would hear HOLD_EXPIRED, ALREADY_CONFIRMED, NOT_A_BOOKING;
	 * anyone else hears what an unknown id gets. */
	r = claim_op_flags(e, BO_OP_EXTEND, C2, x.claim_id, 0);
	EXPECT_AS_UNKNOWN(e, BO_OP_EXTEND, C2, &r);
	r = claim_op_flags(e, BO_OP_RELEASE, C2, x.claim_id, 0);
	EXPECT_AS_UNKNOWN(e, BO_OP_RELEASE, C2, &r);
	observed before = observe(e);
	r = claim_op_flags(e, BO_OP_CONFIRM, C2, x.claim_id, 0); /* late confirm */
	EXPECT_AS_UNKNOWN(e, BO_OP_CONFIRM, C2, &r);
	r = claim_op_flags(e, BO_OP_CONFIRM, C2, booked, 0);
	EXPECT_AS_UNKNOWN(e, BO_OP_CONFIRM, C2, &r);
	r = claim_op_flags(e, BO_OP_RELEASE, C2, booked, 0);
	EXPECT_AS_UNKNOWN(e, BO_OP_RELEASE, C2, &r);
	r = claim_op_flags(e, BO_OP_CANCEL, C2, booked, 0);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	EXPECT_AS_UNKNOWN(e, BO_OP_CANCEL, C2, &r);
	r = claim_op_flags(e, BO_OP_CANCEL, C2, held, 0);
	EXPECT_AS_UNKNOWN(e, BO_OP_CANCEL, C2, &r);
	observed after = observe(e);
	cr_assert(memcmp(&before, &after, sizeof(before)) == 0);

	/* The owner still gets the real answers (the control). */
	r = claim_op_flags(e, BO_OP_EXTEND, C1, x.claim_id, 0);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	r = claim_op_flags(e, BO_OP_CANCEL, C1, held, 0);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_NOT_A_BOOKING);
	r = claim_op_flags(e, BO_OP_CONFIRM, C1, x.claim_id, 0);
	EXPECT_SEATS(&r, 5);
	r = claim_op_flags(e, BO_OP_CANCEL, C1, booked, 0);
	EXPECT_SEATS(&r, 6);
	engine_free(e);
}

Test(ownership, operator_releases_and_cancels_any_clients_claim)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000000000", 1, 1, 20);
	uint64_t held = hold_ok(e, C1, EV, SEATS(1, 2));
	bo_result p = hold_pool(e, C1, EV, 0, 5, TTL);
	EXPECT_OK(&p);
	uint64_t booked = hold_ok(e, C1, EV, SEATS(3));
	bo_result r = confirm(e, C1, EV, booked);
	EXPECT_OK(&r);
	cr_assert_eq(engine_client_holds(e, C1), 2);

	r = claim_op_flags(e, BO_OP_RELEASE, OPER, held, BO_CMD_F_OPERATOR);
	EXPECT_SEATS(&r, 1, 2);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	r = claim_op_flags(e, BO_OP_RELEASE, OPER, p.claim_id, BO_CMD_F_OPERATOR);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, 5);
	cr_assert_eq(engine_client_holds(e, C1), 0, "the owner's hold count follows");
	r = claim_op_flags(e, BO_OP_CANCEL, OPER, booked, BO_CMD_F_OPERATOR);
	EXPECT_SEATS(&r, 3);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);
	/* The state rules still apply to an operator. */
	r = claim_op_flags(e, BO_OP_CANCEL, OPER, booked, BO_CMD_F_OPERATOR);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	uint64_t h2 = hold_ok(e, C1, EV, SEATS(4));
	r = claim_op_flags(e, BO_OP_CANCEL, OPER, h2, BO_CMD_F_OPERATOR);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_NOT_A_BOOKING);
	engine_free(e);
}

Test(ownership, operator_flag_on_extend_or_confirm_grants_nothing)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t h = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = claim_op_flags(e, BO_OP_EXTEND, OPER, h, BO_CMD_F_OPERATOR);
	EXPECT_AS_UNKNOWN(e, BO_OP_EXTEND, OPER, &r);
	r = claim_op_flags(e, BO_OP_CONFIRM, OPER, h, BO_CMD_F_OPERATOR);
	EXPECT_AS_UNKNOWN(e, BO_OP_CONFIRM, OPER, &r);
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	/* On the owner's own command it is ignored, not refused. */
	r = claim_op_flags(e, BO_OP_EXTEND, C1, h, BO_CMD_F_OPERATOR);
	EXPECT_OK(&r);
	engine_free(e);
}

Test(ownership, any_client_flag_of_legacy_records_applies_the_old_rule)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t a = hold_ok(e, C1, EV, SEATS(1));
	uint64_t b = hold_ok(e, C1, EV, SEATS(2));
	bo_result r = claim_op_flags(e, BO_OP_EXTEND, C2, a, BO_CMD_F_ANY_CLIENT);
	EXPECT_OK(&r);
	r = claim_op_flags(e, BO_OP_CONFIRM, C2, a, BO_CMD_F_ANY_CLIENT);
	EXPECT_SEATS(&r, 1);
	r = claim_op_flags(e, BO_OP_CANCEL, C3, a, BO_CMD_F_ANY_CLIENT);
	EXPECT_SEATS(&r, 1);
	r = claim_op_flags(e, BO_OP_RELEASE, C2, b, BO_CMD_F_ANY_CLIENT);
	EXPECT_SEATS(&r, 2);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	engine_free(e);
}

Test(ownership, operator_flag_is_content_for_idempotency_any_client_is_not)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t h = hold_ok(e, C1, EV, SEATS(1));
	bo_cmd rel = cmd_claim(BO_OP_RELEASE, C1, EV, h);
	bo_result r = run(e, &rel);
	EXPECT_SEATS(&r, 1);
	bo_cmd again = rel;
	again.flags = BO_CMD_F_OPERATOR;
	r = run(e, &again);
	EXPECT_FAIL(&r, BO_CONFLICT, BO_D_IDEM_CONFLICT);
	again.flags = BO_CMD_F_ANY_CLIENT; /* a legacy record's retry: the same request */
	r = run(e, &again);
	EXPECT_SEATS(&r, 1);
	cr_assert_eq(r.replayed, 1);

	/* An operator's cancel, retried without the flag, is another request. */
	uint64_t k = hold_ok(e, C1, EV, SEATS(2));
	r = confirm(e, C1, EV, k);
	EXPECT_OK(&r);
	bo_cmd can = cmd_claim(BO_OP_CANCEL, OPER, EV, k);
	can.flags = BO_CMD_F_OPERATOR;
	r = run(e, &can);
	EXPECT_SEATS(&r, 2);
	again = can;
	again.flags = 0;
	r = run(e, &again);
	EXPECT_FAIL(&r, BO_CONFLICT, BO_D_IDEM_CONFLICT);
	r = run(e, &can);
	EXPECT_SEATS(&r, 2);
	cr_assert_eq(r.replayed, 1);

	/* On EXTEND the operator bit means nothing, so it is not content. */
	uint64_t x = hold_ok(e, C1, EV, SEATS(3));
	bo_cmd ext = cmd_extend(C1, EV, x, TTL);
	r = run(e, &ext);
	EXPECT_OK(&r);
	ext.flags = BO_CMD_F_OPERATOR;
	r = run(e, &ext);
	EXPECT_OK(&r);
	cr_assert_eq(r.replayed, 1);
	engine_free(e);
}

/* ---- BLOCK / UNBLOCK ----------------------------------------------------- */

Test(block, ok_blocks_free_seats_and_unblock_frees_them)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = seats_op(e, BO_OP_BLOCK, EV, SEATS(8, 3));
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, 2);
	cr_assert_eq(r.seats[0], 8);
	cr_assert_eq(r.seats[1], 3);
	cr_assert_eq(r.claim_id, 0);
	EXPECT_STATE(e, EV, 8, BO_SEAT_BLOCKED);
	EXPECT_STATE(e, EV, 3, BO_SEAT_BLOCKED);
	cr_assert_eq(seat_owner(e, EV, 3), 0, "blocked seats have no claim");
	r = hold_seats(e, C1, EV, TTL, SEATS(3));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 3);
	r = seats_op(e, BO_OP_UNBLOCK, EV, SEATS(3, 8));
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, 2);
	cr_assert_eq(r.seats[0], 3);
	cr_assert_eq(r.seats[1], 8);
	EXPECT_STATE(e, EV, 8, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);
	engine_free(e);
}

Test(block, seat_not_free_is_taken_naming_the_first)
{
	engine *e = small_engine();
	create_plain(e, EV);
	hold_ok(e, C1, EV, SEATS(5));
	uint64_t b = hold_ok(e, C1, EV, SEATS(6));
	bo_result r = confirm(e, C1, EV, b);
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(7));
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(1, 6, 5));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 6);
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(2, 7, 5));
	EXPECT_FAIL_SEAT(&r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 7);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 2, BO_SEAT_FREE);
	engine_free(e);
}

Test(block, seat_checks_count_range_duplicate_in_order)
{
	engine *e = small_engine();
	create_plain(e, EV);
	for (int op = BO_OP_BLOCK; op <= BO_OP_UNBLOCK; op++) {
		bo_cmd c = cmd_seats((uint8_t)op, OPER, EV, SEATS(1));
		c.seat_count = 0;
		bo_result r = run(e, &c);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
		c = cmd_seats((uint8_t)op, OPER, EV, SEATS_0_TO_15);
		c.seat_count = BO_SEATS_PER_HOLD_MAX + 1;
		r = run(e, &c);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
		r = seats_op(e, (uint8_t)op, EV, SEATS(2, 2, 30));
		EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_RANGE);
		r = seats_op(e, (uint8_t)op, EV, SEATS(2, 3, 2));
		EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_DUPLICATE);
	}
	engine_free(e);
}

Test(block, unblock_of_a_seat_not_blocked_is_not_blocked_naming_the_first)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result r = seats_op(e, BO_OP_BLOCK, EV, SEATS(1, 2));
	EXPECT_OK(&r);
	hold_ok(e, C1, EV, SEATS(4));
	r = seats_op(e, BO_OP_UNBLOCK, EV, SEATS(1, 3, 2));
	EXPECT_FAIL_SEAT(&r, BO_INVALID, BO_D_NOT_BLOCKED, 3);
	r = seats_op(e, BO_OP_UNBLOCK, EV, SEATS(2, 4));
	EXPECT_FAIL_SEAT(&r, BO_INVALID, BO_D_NOT_BLOCKED, 4);
	EXPECT_STATE(e, EV, 1, BO_SEAT_BLOCKED);
	EXPECT_STATE(e, EV, 2, BO_SEAT_BLOCKED);
	EXPECT_STATE(e, EV, 4, BO_SEAT_HELD);
	engine_free(e);
}

/* ---- Queries ------------------------------------------------------------- */

/* Counts seat states with engine_seat() and compares with QUERY_AVAIL and
 * engine_avail(). */
static void expect_avail_matches_seats(engine *e, uint64_t ev, const bo_seatmap *m,
				       const uint32_t *pool_used)
{
	uint32_t by_state[BO_SEAT_STATE_COUNT] = {0};
	uint32_t free_by_cat[BO_CATEGORIES_MAX] = {0};
	for (uint32_t s = 0; s < m->seat_count; s++) {
		uint8_t st = seat_state(e, ev, s);
		cr_assert_lt(st, BO_SEAT_STATE_COUNT);
		by_state[st]++;
		if (st == BO_SEAT_FREE)
			free_by_cat[m->categories[s]]++;
	}
	bo_result q = query_avail(e, ev);
	EXPECT_OK(&q);
	bo_avail a;
	cr_assert_eq(engine_avail(e, ev, &a), 0);
	cr_assert_eq(memcmp(&a, &q.avail, sizeof(a)), 0, "QUERY_AVAIL answers engine_avail()");
	for (int st = 0; st < BO_SEAT_STATE_COUNT; st++)
		cr_assert_eq(q.avail.by_state[st], by_state[st], "%s: %u counted, %u seen",
			     bo_seat_state_str(st), q.avail.by_state[st], by_state[st]);
	cr_assert_eq(q.avail.category_count, m->category_count);
	for (uint32_t c = 0; c < BO_CATEGORIES_MAX; c++)
		cr_assert_eq(q.avail.free_by_category[c], free_by_cat[c], "category %u", c);
	cr_assert_eq(q.avail.pool_count, m->pool_count);
	for (uint32_t p = 0; p < m->pool_count; p++) {
		cr_assert_eq(q.avail.pool_capacity[p], m->pool_capacity[p]);
		cr_assert_eq(q.avail.pool_free[p], m->pool_capacity[p] - pool_used[p], "pool %u",
			     p);
	}
}

Test(query, avail_counts_equal_the_seat_states_after_a_sequence_of_ops)
{
	engine *e = small_engine();
	bo_seatmap *m = map_spec("0011220000|1111111111|2222200000", 3, 2, 30);
	bo_cmd c = cmd_create(EV, m);
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	uint32_t used[2] = {0, 0};
	expect_avail_matches_seats(e, EV, m, used);

	uint64_t a = hold_ok(e, C1, EV, SEATS(0, 2, 4));
	bo_result b = hold_best(e, C1, EV, 1, 5, TTL);
	EXPECT_OK(&b);
	bo_result x = hold_seats(e, C2, EV, 1000, SEATS(25, 26)); /* will expire */
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(29, 9));
	EXPECT_OK(&r);
	bo_result p0 = hold_pool(e, C1, EV, 0, 12, TTL);
	bo_result p1 = hold_pool(e, C2, EV, 1, 30, 1000); /* will expire */
	EXPECT_OK(&p0);
	EXPECT_OK(&p1);
	used[0] = 12;
	used[1] = 30;
	expect_avail_matches_seats(e, EV, m, used);

	r = confirm(e, C1, EV, a);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, p0.claim_id);
	EXPECT_OK(&r);
	r = release(e, C1, EV, b.claim_id);
	EXPECT_OK(&r);
	advance(e, T0 + 1000); /* x and p1 expire */
	used[1] = 0;
	cr_assert_eq(seat_state(e, EV, 25), BO_SEAT_FREE);
	(void)x;
	expect_avail_matches_seats(e, EV, m, used);

	r = cancel(e, C1, EV, a);
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_UNBLOCK, EV, SEATS(9));
	EXPECT_OK(&r);
	r = hold_best(e, C3, EV, 2, 3, TTL);
	EXPECT_OK(&r);
	expect_avail_matches_seats(e, EV, m, used);
	bo_seatmap_free(m);
	engine_free(e);
}

Test(query, query_seats_reports_each_seat_state_in_command_order)
{
	engine *e = small_engine();
	create_plain(e, EV);
	hold_ok(e, C1, EV, SEATS(1));
	uint64_t b = hold_ok(e, C1, EV, SEATS(2));
	bo_result r = confirm(e, C1, EV, b);
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_BLOCK, EV, SEATS(3));
	EXPECT_OK(&r);
	r = seats_op(e, BO_OP_QUERY_SEATS, EV, SEATS(3, 0, 2, 1, 3));
	EXPECT_OK(&r);
	const uint32_t want_seat[] = {3, 0, 2, 1, 3};
	const uint8_t want_state[] = {BO_SEAT_BLOCKED, BO_SEAT_FREE, BO_SEAT_BOOKED, BO_SEAT_HELD,
				      BO_SEAT_BLOCKED};
	cr_assert_eq(r.seat_count, 5, "duplicates are allowed in a query");
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(r.seats[i], want_seat[i]);
		cr_assert_eq(r.seat_state[i], want_state[i], "seat %u", want_seat[i]);
	}
	engine_free(e);
}

Test(query, query_seats_checks_count_and_range)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd c = cmd_seats(BO_OP_QUERY_SEATS, 0, EV, SEATS(1));
	c.seat_count = 0;
	bo_result r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
	c = cmd_seats(BO_OP_QUERY_SEATS, 0, EV, SEATS_0_TO_15);
	r = run(e, &c);
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, BO_QUERY_SEATS_MAX);
	c.seat_count = BO_QUERY_SEATS_MAX + 1;
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
	r = seats_op(e, BO_OP_QUERY_SEATS, EV, SEATS(0, 30));
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_RANGE);
	engine_free(e);
}

Test(query, queries_need_no_client_and_are_not_stored_in_the_window)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint32_t entries = idem_entries(e);
	uint64_t d = engine_digest(e);
	bo_cmd qa = cmd_new(BO_OP_QUERY_AVAIL, 0, EV);
	bo_result r = run(e, &qa);
	EXPECT_OK(&r);
	bo_cmd qs = cmd_seats(BO_OP_QUERY_SEATS, 0, EV, SEATS(1));
	r = run(e, &qs);
	EXPECT_OK(&r);
	/* With a client and a request id they are still not stored... */
	bo_cmd q = cmd_new(BO_OP_QUERY_AVAIL, C1, EV);
	r = run(e, &q);
	EXPECT_OK(&r);
	r = run(e, &q);
	EXPECT_OK(&r);
	cr_assert_eq(r.replayed, 0, "a repeated query is answered afresh");
	cr_assert_eq(idem_entries(e), entries);
	cr_assert_eq(engine_digest(e), d, "queries change no state");
	/* ...so the same key then serves a mutating command as new. */
	bo_cmd h = cmd_hold_seats(C1, EV, TTL, SEATS(1));
	h.request_id = q.request_id;
	r = run(e, &h);
	EXPECT_OK(&r);
	cr_assert_eq(r.replayed, 0);
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	engine_free(e);
}

/* ---- Limits at their edges ----------------------------------------------- */

Test(limits, seats_per_hold_max_16_ok_17_invalid)
{
	engine *e = small_engine();
	create_spec(e, EV, "00000000000000000000|00000000000000000000", 1, 0, 0);
	bo_cmd c = cmd_hold_seats(C1, EV, TTL, SEATS_0_TO_15);
	bo_result r = run(e, &c);
	cr_assert_eq(c.seat_count, BO_SEATS_PER_HOLD_MAX);
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, BO_SEATS_PER_HOLD_MAX);
	c = cmd_hold_seats(C1, EV, TTL, SEATS_20_TO_35);
	c.seat_count = BO_SEATS_PER_HOLD_MAX + 1;
	r = run(e, &c);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_SEAT_COUNT);
	r = hold_best(e, C1, EV, 0, BO_SEATS_PER_HOLD_MAX + 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_best(e, C1, EV, 0, BO_SEATS_PER_HOLD_MAX, TTL);
	EXPECT_OK(&r);
	cr_assert_eq(r.seat_count, BO_SEATS_PER_HOLD_MAX);
	engine_free(e);
}

Test(limits, holds_per_client_max_16th_ok_17th_limit_until_one_ends)
{
	engine *e = small_engine();
	create_plain(e, EV);
	create_spec(e, EV2, NULL, 0, 1, 100);
	uint64_t ids[BO_HOLDS_PER_CLIENT_MAX];
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++) {
		/* Mixed kinds and events: the limit is per client. */
		uint32_t seat = 20 + i / 3; /* row 2: best-available takes row 0 */
		bo_result r = i % 3 == 0 ? hold_pool(e, C1, EV2, 0, 1, TTL)
			      : i % 3 == 1 ? hold_seats(e, C1, EV, TTL, &seat, 1)
					   : hold_best(e, C1, EV, 0, 1, TTL);
		EXPECT_OK(&r);
		ids[i] = r.claim_id;
	}
	cr_assert_eq(engine_client_holds(e, C1), BO_HOLDS_PER_CLIENT_MAX);
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(29));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	r = hold_best(e, C1, EV, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	r = hold_pool(e, C1, EV2, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	hold_ok(e, C2, EV, SEATS(28)); /* other clients are not affected */

	r = release(e, C1, EV, ids[1]);
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(29));
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(27));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);

	r = confirm(e, C1, EV2, ids[0]); /* a booking does not count */
	EXPECT_OK(&r);
	cr_assert_eq(engine_client_holds(e, C1), BO_HOLDS_PER_CLIENT_MAX - 1);
	r = hold_seats(e, C1, EV, TTL, SEATS(27));
	EXPECT_OK(&r);
	r = hold_pool(e, C1, EV2, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);

	/* An expired hold does not count either: all of C1's holds expire. */
	advance(e, T0 + TTL);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	for (uint32_t i = 0; i < BO_HOLDS_PER_CLIENT_MAX; i++) {
		r = hold_pool(e, C1, EV2, 0, 1, TTL);
		EXPECT_OK(&r);
	}
	r = hold_pool(e, C1, EV2, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLIENT_HOLDS);
	engine_free(e);
}

Test(limits, ttl_min_and_max_are_inclusive_for_every_op_with_a_ttl)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000000000", 1, 1, 100);
	const uint32_t bad[] = {0, BO_TTL_MS_MIN - 1, BO_TTL_MS_MAX + 1, UINT32_MAX};
	const uint32_t good[] = {BO_TTL_MS_MIN, BO_TTL_MS_MAX};
	uint64_t id = hold_ok(e, C2, EV, SEATS(9));
	for (int i = 0; i < 4; i++) {
		bo_result r = hold_seats(e, C1, EV, bad[i], SEATS(0));
		EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
		r = hold_best(e, C1, EV, 0, 1, bad[i]);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
		r = hold_pool(e, C1, EV, 0, 1, bad[i]);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
		r = extend(e, C2, EV, id, bad[i]);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	}
	for (int i = 0; i < 2; i++) {
		bo_result r = hold_seats(e, C1, EV, good[i], (uint32_t[]){(uint32_t)i}, 1);
		EXPECT_OK(&r);
		cr_assert_eq(r.expires_at_ms, T0 + good[i]);
		r = hold_best(e, C1, EV, 0, 1, good[i]);
		EXPECT_OK(&r);
		cr_assert_eq(r.expires_at_ms, T0 + good[i]);
		r = hold_pool(e, C1, EV, 0, 1, good[i]);
		EXPECT_OK(&r);
		cr_assert_eq(r.expires_at_ms, T0 + good[i]);
		r = extend(e, C2, EV, id, good[i]);
		EXPECT_OK(&r);
		cr_assert_eq(r.expires_at_ms, T0 + good[i]);
	}
	engine_free(e);
}

Test(limits, hold_lifetime_max_reached_through_repeated_extends)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, BO_TTL_MS_MAX, SEATS(1)); /* created at T0 */
	const int64_t end = T0 + (int64_t)BO_HOLD_LIFETIME_MS_MAX;
	advance(e, T0 + 1000000);
	bo_result r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX);
	EXPECT_OK(&r);
	advance(e, end - BO_TTL_MS_MAX);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX);
	EXPECT_OK(&r);
	cr_assert_eq(r.expires_at_ms, end, "exactly the lifetime is allowed");
	advance(e, end - BO_TTL_MS_MAX + 1);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX); /* 1 ms past the lifetime */
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_LIFETIME);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX - 1); /* ends exactly at it */
	EXPECT_OK(&r);
	cr_assert_eq(r.expires_at_ms, end);
	advance(e, end - 1000);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MIN);
	EXPECT_OK(&r);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MIN + 1);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_LIFETIME);
	r = extend(e, C1, EV, h.claim_id, BO_TTL_MS_MAX + 1); /* ttl range comes first */
	EXPECT_FAIL(&r, BO_INVALID, BO_D_TTL_RANGE);
	advance(e, end);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	engine_free(e);
}

Test(limits, payref_len_32_ok_0_and_33_invalid)
{
	engine *e = small_engine();
	create_plain(e, EV);
	uint64_t a = hold_ok(e, C1, EV, SEATS(1));
	uint64_t b = hold_ok(e, C1, EV, SEATS(2));
	const uint32_t bad[] = {0, BO_PAYREF_LEN_MAX + 1, 255};
	for (int i = 0; i < 3; i++) {
		bo_cmd c = cmd_confirm_len(C1, EV, a, bad[i]);
		bo_result r = run(e, &c);
		EXPECT_FAIL(&r, BO_INVALID, BO_D_PAYREF);
	}
	bo_cmd c = cmd_confirm_len(C1, EV, a, BO_PAYREF_LEN_MAX);
	bo_result r = run(e, &c);
	EXPECT_OK(&r);
	c = cmd_confirm_len(C1, EV, b, 1);
	r = run(e, &c);
	EXPECT_OK(&r);
	engine_free(e);
}

Test(limits, pool_qty_per_hold_max_100_ok_101_invalid)
{
	engine *e = small_engine();
	create_spec(e, EV, NULL, 0, 1, 1000);
	bo_result r = hold_pool(e, C1, EV, 0, BO_POOL_QTY_PER_HOLD_MAX + 1, TTL);
	EXPECT_FAIL(&r, BO_INVALID, BO_D_QUANTITY);
	r = hold_pool(e, C1, EV, 0, BO_POOL_QTY_PER_HOLD_MAX, TTL);
	EXPECT_OK(&r);
	r = hold_pool(e, C1, EV, 0, 1, TTL);
	EXPECT_OK(&r);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 1000 - BO_POOL_QTY_PER_HOLD_MAX - 1);
	engine_free(e);
}

Test(limits, claims_max_full_is_claims_full_and_recovers_when_a_claim_ends)
{
	engine *e = engine_with(1024, 3, 64, 4);
	create_spec(e, EV, "0000000000", 1, 1, 10);
	uint64_t a = hold_ok(e, C1, EV, SEATS(0));
	bo_result p = hold_pool(e, C2, EV, 0, 2, TTL);
	EXPECT_OK(&p);
	uint64_t c = hold_ok(e, C3, EV, SEATS(2));
	bo_result r = hold_seats(e, C1, EV, TTL, SEATS(3));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	r = hold_best(e, C2, EV, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	r = hold_pool(e, C3, EV, 0, 1, TTL);
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);

	r = release(e, C1, EV, a); /* one slot back */
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(3));
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(4));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);

	/* A booking keeps its slot until it is cancelled. */
	r = confirm(e, C3, EV, c);
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(4));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	r = cancel(e, C3, EV, c);
	EXPECT_OK(&r);
	r = hold_seats(e, C1, EV, TTL, SEATS(4));
	EXPECT_OK(&r);

	/* An expired hold gives its slot back too. */
	advance(e, T0 + TTL);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.holds, 0);
	for (uint32_t i = 0; i < 3; i++)
		hold_ok(e, C1, EV, &i, 1);
	r = hold_seats(e, C1, EV, TTL, SEATS(5));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	engine_free(e);
}

Test(limits, engine_new_rejects_configs_outside_limits)
{
	const engine_config ok = {
		.seats_max = 1024, .claims_max = 64, .idem_capacity = 64, .events_max = 4};
	engine_config bad[] = {ok, ok, ok, ok, ok, ok, ok, ok, ok, ok};
	bad[0].seats_max = 0;
	bad[1].seats_max = BO_SEATS_PER_SHARD_MAX + 1;
	bad[2].claims_max = 0;
	bad[3].claims_max = BO_CLAIMS_PER_SHARD_MAX + 1;
	bad[4].idem_capacity = 0;
	bad[5].idem_capacity = 96; /* not a power of two */
	bad[6].idem_capacity = BO_IDEM_CAPACITY_MAX * 2;
	bad[7].events_max = 0;
	bad[8].events_max = BO_EVENTS_PER_SHARD_MAX + 1;
	bad[9].idem_capacity = 3;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		engine *e = (engine *)&bad[i]; /* must be overwritten */
		cr_assert_eq(engine_new(&bad[i], &e), -EINVAL, "config %zu accepted", i);
		cr_assert_null(e, "config %zu: *out is NULL on failure", i);
	}
	/* The smallest legal values and the defaults are accepted. */
	const engine_config tiny = {
		.seats_max = 1, .claims_max = 1, .idem_capacity = 1, .events_max = 1};
	engine *e = NULL;
	cr_assert_eq(engine_new(&tiny, &e), 0);
	engine_free(e);
	engine_config def;
	engine_config_default(&def);
	cr_assert_eq(def.seats_max, BO_SEATS_PER_SHARD_DEFAULT);
	cr_assert_eq(def.claims_max, BO_CLAIMS_PER_SHARD_DEFAULT);
	cr_assert_eq(def.idem_capacity, BO_IDEM_CAPACITY_DEFAULT);
	cr_assert_eq(def.events_max, BO_EVENTS_PER_SHARD_MAX);
	cr_assert_eq(engine_new(&def, &e), 0);
	engine_free(e);
}

/* ---- Expiry -------------------------------------------------------------- */

Test(expiry, a_hold_expires_exactly_at_expires_at)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 5000, SEATS(3, 4));
	expiries xs = advance_collect(e, T0 + 4999);
	cr_assert_eq(xs.n, 0, "still active 1 ms before expires_at");
	EXPECT_STATE(e, EV, 3, BO_SEAT_HELD);
	cr_assert_eq(engine_client_holds(e, C1), 1);
	xs = advance_collect(e, T0 + 5000);
	cr_assert_eq(xs.n, 1, "expired at expires_at");
	cr_assert_eq(xs.x[0].claim_id, h.claim_id);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 4, BO_SEAT_FREE);
	cr_assert_eq(seat_owner(e, EV, 3), 0);
	cr_assert_eq(engine_client_holds(e, C1), 0);
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.holds, 0);
	cr_assert_eq(st.expired_total, 1);
	xs = advance_collect(e, T0 + 100000);
	cr_assert_eq(xs.n, 0, "an expiry is reported once");
	engine_free(e);
}

Test(expiry, the_record_describes_the_expired_hold)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000000000", 1, 2, 10);
	bo_result s = hold_seats(e, C1, EV, 2000, SEATS(7, 1, 5));
	bo_result p = hold_pool(e, C2, EV, 1, 4, 3000);
	expiries xs = advance_collect(e, T0 + 3000);
	cr_assert_eq(xs.n, 2);
	cr_assert_eq(xs.x[0].event_id, EV);
	cr_assert_eq(xs.x[0].claim_id, s.claim_id);
	cr_assert_eq(xs.x[0].client_id, C1);
	cr_assert_eq(xs.x[0].expires_at_ms, T0 + 2000);
	cr_assert_eq(xs.x[0].is_pool, 0);
	cr_assert_eq(xs.x[0].seat_count, 3);
	cr_assert_eq(xs.x[0].seats[0], 7);
	cr_assert_eq(xs.x[0].seats[1], 1);
	cr_assert_eq(xs.x[0].seats[2], 5);
	cr_assert_eq(xs.x[1].claim_id, p.claim_id);
	cr_assert_eq(xs.x[1].client_id, C2);
	cr_assert_eq(xs.x[1].expires_at_ms, T0 + 3000);
	cr_assert_eq(xs.x[1].is_pool, 1);
	cr_assert_eq(xs.x[1].pool, 1);
	cr_assert_eq(xs.x[1].quantity, 4);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[1], 10);
	engine_free(e);
}

Test(expiry, callbacks_come_in_expires_at_then_claim_id_order)
{
	engine *e = engine_with(1024, 4, 64, 4);
	create_plain(e, EV);
	/* Four fresh slots, then slot 0 is recycled: E's id (generation 2,
	 * slot 0) is larger than B's (generation 1, slot 1) although its slot
	 * is smaller. B and E expire at the same time. */
	bo_result a = hold_seats(e, C1, EV, 5000, SEATS(0));
	bo_result b = hold_seats(e, C1, EV, 5000, SEATS(1));
	bo_result c = hold_seats(e, C1, EV, 7000, SEATS(2));
	bo_result d = hold_seats(e, C1, EV, 2000, SEATS(3));
	bo_result r = release(e, C1, EV, a.claim_id);
	EXPECT_OK(&r);
	bo_result x = hold_seats(e, C1, EV, 5000, SEATS(4));
	EXPECT_OK(&x);
	cr_assert_eq((uint32_t)x.claim_id, (uint32_t)a.claim_id, "slot 0 was reused");
	cr_assert_gt(x.claim_id, b.claim_id);
	expiries xs = advance_collect(e, T0 + 10000);
	cr_assert_eq(xs.n, 4);
	const uint64_t want[] = {d.claim_id, b.claim_id, x.claim_id, c.claim_id};
	for (int i = 0; i < 4; i++)
		cr_assert_eq(xs.x[i].claim_id, want[i], "expiry %d: %#lx, expected %#lx", i,
			     (unsigned long)xs.x[i].claim_id, (unsigned long)want[i]);
	engine_free(e);
}

Test(expiry, extend_moves_the_expiry_both_ways)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result later = hold_seats(e, C1, EV, 5000, SEATS(1));
	bo_result sooner = hold_seats(e, C1, EV, 50000, SEATS(2));
	advance(e, T0 + 1000);
	bo_result r = extend(e, C1, EV, later.claim_id, 10000); /* now T0 + 11000 */
	EXPECT_OK(&r);
	r = extend(e, C1, EV, sooner.claim_id, 2000); /* now T0 + 3000 */
	EXPECT_OK(&r);
	expiries xs = advance_collect(e, T0 + 3000);
	cr_assert_eq(xs.n, 1);
	cr_assert_eq(xs.x[0].claim_id, sooner.claim_id);
	cr_assert_eq(xs.x[0].expires_at_ms, T0 + 3000);
	xs = advance_collect(e, T0 + 10999);
	cr_assert_eq(xs.n, 0, "the original expiry (T0 + 5000) no longer applies");
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	xs = advance_collect(e, T0 + 11000);
	cr_assert_eq(xs.n, 1);
	cr_assert_eq(xs.x[0].claim_id, later.claim_id);
	engine_free(e);
}

Test(expiry, late_confirm_books_when_every_seat_is_still_free)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 1000, SEATS(5, 6));
	advance(e, T0 + 1000);
	EXPECT_STATE(e, EV, 5, BO_SEAT_FREE);
	bo_result r = confirm(e, C1, EV, h.claim_id);
	EXPECT_SEATS(&r, 5, 6);
	cr_assert_eq(r.claim_id, h.claim_id);
	cr_assert_eq(r.expires_at_ms, 0);
	EXPECT_STATE(e, EV, 5, BO_SEAT_BOOKED);
	EXPECT_STATE(e, EV, 6, BO_SEAT_BOOKED);
	cr_assert_eq(seat_owner(e, EV, 6), h.claim_id);
	cr_assert_eq(engine_client_holds(e, C1), 0, "a booking is not a hold");
	engine_stats st;
	engine_stats_get(e, &st);
	cr_assert_eq(st.bookings, 1);
	cr_assert_eq(st.holds, 0);
	r = cancel(e, C1, EV, h.claim_id); /* a real booking */
	EXPECT_OK(&r);
	EXPECT_STATE(e, EV, 5, BO_SEAT_FREE);
	engine_free(e);
}

Test(expiry, late_confirm_is_expired_when_a_seat_was_taken)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 1000, SEATS(5, 6));
	bo_result k = hold_seats(e, C1, EV, 1000, SEATS(8, 9));
	advance(e, T0 + 1000);
	uint64_t other = hold_ok(e, C2, EV, SEATS(6));
	bo_result r = seats_op(e, BO_OP_BLOCK, EV, SEATS(9));
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, h.claim_id);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	r = confirm(e, C1, EV, k.claim_id);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	EXPECT_STATE(e, EV, 5, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 8, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 6, BO_SEAT_HELD);
	cr_assert_eq(seat_owner(e, EV, 6), other);
	/* Once the seat is free again the same hold can still be confirmed. */
	r = release(e, C2, EV, other);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	EXPECT_STATE(e, EV, 6, BO_SEAT_BOOKED);
	engine_free(e);
}

Test(expiry, late_confirm_of_a_pool_hold_needs_the_quantity_free)
{
	engine *e = small_engine();
	create_spec(e, EV, NULL, 0, 1, 10);
	bo_result h = hold_pool(e, C1, EV, 0, 6, 1000);
	advance(e, T0 + 1000);
	bo_result o = hold_pool(e, C2, EV, 0, 5, TTL); /* 5 free < 6 */
	EXPECT_OK(&o);
	bo_result r = confirm(e, C1, EV, h.claim_id);
	EXPECT_FAIL(&r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 5);
	r = release(e, C2, EV, o.claim_id);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	cr_assert_eq(r.quantity, 6);
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 4);
	r = cancel(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 10);
	engine_free(e);
}

Test(expiry, confirmed_holds_never_expire)
{
	engine *e = small_engine();
	create_spec(e, EV, "0000", 1, 1, 10);
	bo_result h = hold_seats(e, C1, EV, 1000, SEATS(1));
	bo_result p = hold_pool(e, C1, EV, 0, 3, 1000);
	bo_result r = confirm(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, p.claim_id);
	EXPECT_OK(&r);
	expiries xs = advance_collect(e, T0 + 10 * (int64_t)BO_HOLD_LIFETIME_MS_MAX);
	cr_assert_eq(xs.n, 0);
	EXPECT_STATE(e, EV, 1, BO_SEAT_BOOKED);
	bo_avail a;
	engine_avail(e, EV, &a);
	cr_assert_eq(a.pool_free[0], 7);
	engine_free(e);
}

Test(expiry, released_and_cancelled_claims_never_expire)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_result h = hold_seats(e, C1, EV, 1000, SEATS(1));
	bo_result k = hold_seats(e, C1, EV, 1000, SEATS(2));
	bo_result r = release(e, C1, EV, h.claim_id);
	EXPECT_OK(&r);
	r = confirm(e, C1, EV, k.claim_id);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV, k.claim_id);
	EXPECT_OK(&r);
	hold_ok(e, C2, EV, SEATS(1, 2)); /* someone else has them now */
	expiries xs = advance_collect(e, T0 + 1000);
	cr_assert_eq(xs.n, 0);
	EXPECT_STATE(e, EV, 1, BO_SEAT_HELD);
	EXPECT_STATE(e, EV, 2, BO_SEAT_HELD);
	engine_free(e);
}

Test(expiry, the_clock_never_goes_back)
{
	engine *e = small_engine();
	create_plain(e, EV);
	advance(e, T0 + 5000);
	advance(e, T0);
	cr_assert_eq(engine_now(e), T0 + 5000);
	bo_result r = hold_seats(e, C1, EV, 2000, SEATS(1));
	cr_assert_eq(r.expires_at_ms, T0 + 7000);
	expiries xs = advance_collect(e, T0 + 6999);
	cr_assert_eq(xs.n, 0);
	engine_free(e);
}

/* ---- Idempotency --------------------------------------------------------- */

/* Applies `c` again and checks that the stored result comes back, flagged
 * replayed, identical in every other byte, with no state change. */
static void expect_replay_at(int line, engine *e, const bo_cmd *c, const bo_result *first)
{
	uint64_t before = engine_digest(e);
	bo_result again = run(e, c);
	bo_result want = *first;
	want.replayed = 1;
	cr_assert_eq(again.replayed, 1, "line %d: not answered from the window (%s/%s)", line,
		     bo_status_str(again.status), bo_detail_str(again.detail));
	cr_assert_eq(memcmp(&again, &want, sizeof(want)), 0, "line %d: replayed result differs",
		     line);
	cr_assert_eq(engine_digest(e), before, "line %d: a replay changed the state", line);
}
#define EXPECT_REPLAY(e, c, first) expect_replay_at(__LINE__, (e), (c), (first))

Test(idempotency, a_repeat_returns_the_first_result_for_every_mutating_op)
{
	engine *e = small_engine();
	bo_seatmap *m = map_spec("0000000000|0000000000", 1, 1, 50);
	bo_cmd create = cmd_create(EV, m);
	bo_result r_create = run(e, &create);
	EXPECT_OK(&r_create);
	EXPECT_REPLAY(e, &create, &r_create);

	bo_cmd hs = cmd_hold_seats(C1, EV, TTL, SEATS(3, 1));
	bo_result r_hs = run(e, &hs);
	EXPECT_OK(&r_hs);
	EXPECT_REPLAY(e, &hs, &r_hs);
	cr_assert_eq(engine_client_holds(e, C1), 1, "a replay makes no second hold");

	bo_cmd hb = cmd_hold_best(C1, EV, 0, 3, TTL);
	bo_result r_hb = run(e, &hb);
	EXPECT_OK(&r_hb);
	EXPECT_REPLAY(e, &hb, &r_hb);

	bo_cmd hp = cmd_hold_pool(C1, EV, 0, 5, TTL);
	bo_result r_hp = run(e, &hp);
	EXPECT_OK(&r_hp);
	EXPECT_REPLAY(e, &hp, &r_hp);

	advance(e, T0 + 1000);
	bo_cmd ex = cmd_extend(C1, EV, r_hs.claim_id, TTL);
	bo_result r_ex = run(e, &ex);
	EXPECT_OK(&r_ex);
	EXPECT_REPLAY(e, &ex, &r_ex);

	bo_cmd cf = cmd_confirm_len(C1, EV, r_hs.claim_id, 20);
	bo_result r_cf = run(e, &cf);
	EXPECT_OK(&r_cf);
	EXPECT_REPLAY(e, &cf, &r_cf);

	bo_cmd ca = cmd_claim(BO_OP_CANCEL, C1, EV, r_hs.claim_id);
	bo_result r_ca = run(e, &ca);
	EXPECT_OK(&r_ca);
	EXPECT_REPLAY(e, &ca, &r_ca);

	bo_cmd rl = cmd_claim(BO_OP_RELEASE, C1, EV, r_hb.claim_id);
	bo_result r_rl = run(e, &rl);
	EXPECT_OK(&r_rl);
	EXPECT_REPLAY(e, &rl, &r_rl);

	bo_cmd bl = cmd_seats(BO_OP_BLOCK, OPER, EV, SEATS(19, 18));
	bo_result r_bl = run(e, &bl);
	EXPECT_OK(&r_bl);
	EXPECT_REPLAY(e, &bl, &r_bl);

	bo_cmd ub = cmd_seats(BO_OP_UNBLOCK, OPER, EV, SEATS(18));
	bo_result r_ub = run(e, &ub);
	EXPECT_OK(&r_ub);
	EXPECT_REPLAY(e, &ub, &r_ub);

	/* Failures are stored too, seat and all. */
	bo_cmd tk = cmd_hold_seats(C2, EV, TTL, SEATS(0, 19));
	bo_result r_tk = run(e, &tk);
	EXPECT_FAIL_SEAT(&r_tk, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 19);
	EXPECT_REPLAY(e, &tk, &r_tk);
	bo_cmd nf = cmd_claim(BO_OP_RELEASE, C2, EV_NONE, 1);
	bo_result r_nf = run(e, &nf);
	EXPECT_FAIL(&r_nf, BO_NOT_FOUND, BO_D_NO_EVENT);
	EXPECT_REPLAY(e, &nf, &r_nf);

	/* Long after, and after the state moved on, the first answers stand:
	 * the released hold is not re-held, the taken seat is not retried. */
	r_ub = seats_op(e, BO_OP_UNBLOCK, EV, SEATS(19));
	EXPECT_OK(&r_ub);
	advance(e, T0 + 2000);
	EXPECT_REPLAY(e, &hb, &r_hb);
	EXPECT_REPLAY(e, &tk, &r_tk);
	EXPECT_REPLAY(e, &hs, &r_hs);
	EXPECT_STATE(e, EV, 0, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 19, BO_SEAT_FREE);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);
	bo_seatmap_free(m);
	engine_free(e);
}

/* Applies `c` (same key as an earlier command, other content): CONFLICT,
 * and nothing changes. */
static void expect_conflict_at(int line, engine *e, const bo_cmd *c)
{
	uint64_t before = engine_digest(e);
	bo_result r = run(e, c);
	expect_fail_at(line, &r, BO_CONFLICT, BO_D_IDEM_CONFLICT, NO_SEAT);
	cr_assert_eq(r.replayed, 0, "line %d", line);
	cr_assert_eq(engine_digest(e), before, "line %d: a conflict changed the state", line);
}
#define EXPECT_CONFLICT(e, c) expect_conflict_at(__LINE__, (e), (c))

Test(idempotency, same_key_with_different_content_is_conflict_and_changes_nothing)
{
	engine *e = small_engine();
	bo_seatmap *m = map_spec("0000000000", 1, 1, 50);
	bo_cmd create = cmd_create(EV, m);
	bo_result r_create = run(e, &create);
	EXPECT_OK(&r_create);
	bo_seatmap *m2 = map_spec("0000000001", 2, 1, 50);
	bo_cmd c = create;
	c.map = m2;
	EXPECT_CONFLICT(e, &c);
	c = create;
	c.event_id = EV2;
	EXPECT_CONFLICT(e, &c);

	bo_cmd hs = cmd_hold_seats(C1, EV, TTL, SEATS(1, 2));
	bo_result r_hs = run(e, &hs);
	EXPECT_OK(&r_hs);
	c = hs;
	c.seats[1] = 3;
	EXPECT_CONFLICT(e, &c);
	EXPECT_STATE(e, EV, 3, BO_SEAT_FREE);
	c = hs;
	c.seat_count = 1;
	EXPECT_CONFLICT(e, &c);
	c = hs;
	c.ttl_ms = TTL + 1;
	EXPECT_CONFLICT(e, &c);
	c = hs;
	c.op = BO_OP_BLOCK; /* another op under the same key */
	EXPECT_CONFLICT(e, &c);

	bo_cmd hb = cmd_hold_best(C1, EV, 0, 2, TTL);
	bo_result r_hb = run(e, &hb);
	EXPECT_OK(&r_hb);
	c = hb;
	c.quantity = 3;
	EXPECT_CONFLICT(e, &c);

	bo_cmd hp = cmd_hold_pool(C1, EV, 0, 5, TTL);
	bo_result r_hp = run(e, &hp);
	EXPECT_OK(&r_hp);
	c = hp;
	c.quantity = 6;
	EXPECT_CONFLICT(e, &c);

	bo_cmd cf = cmd_confirm_len(C1, EV, r_hs.claim_id, 10);
	bo_result r_cf = run(e, &cf);
	EXPECT_OK(&r_cf);
	c = cf;
	c.payref[3] = '#';
	EXPECT_CONFLICT(e, &c);
	c = cf;
	c.claim_id = r_hb.claim_id; /* would confirm another hold */
	EXPECT_CONFLICT(e, &c);
	EXPECT_STATE(e, EV, r_hb.seats[0], BO_SEAT_HELD);

	/* The stored answers are untouched by the conflicts. */
	EXPECT_REPLAY(e, &create, &r_create);
	EXPECT_REPLAY(e, &hs, &r_hs);
	EXPECT_REPLAY(e, &cf, &r_cf);
	bo_seatmap_free(m);
	bo_seatmap_free(m2);
	engine_free(e);
}

Test(idempotency, fields_an_op_ignores_may_differ_without_conflict)
{
	engine *e = small_engine();
	bo_seatmap *m = map_spec("0000000000", 1, 1, 50);
	bo_cmd create = cmd_create(EV, m);
	bo_result r_create = run(e, &create);
	EXPECT_OK(&r_create);
	/* An equal map at another address is the same content. */
	bo_seatmap *same = map_spec("0000000000", 1, 1, 50);
	bo_cmd c = create;
	c.map = same;
	c.ttl_ms = 5;
	c.seat_count = 3;
	EXPECT_REPLAY(e, &c, &r_create);

	bo_cmd hs = cmd_hold_seats(C1, EV, TTL, SEATS(1, 2));
	bo_result r_hs = run(e, &hs);
	EXPECT_OK(&r_hs);
	c = hs;
	c.category = 3;
	c.quantity = 9;
	c.pool = 1;
	c.claim_id = 77;
	c.payref_len = 5;
	c.seats[5] = 123; /* beyond seat_count */
	EXPECT_REPLAY(e, &c, &r_hs);

	bo_cmd hb = cmd_hold_best(C1, EV, 0, 2, TTL);
	bo_result r_hb = run(e, &hb);
	EXPECT_OK(&r_hb);
	c = hb;
	c.seat_count = 2;
	c.seats[0] = 8;
	c.pool = 4;
	c.claim_id = 5;
	EXPECT_REPLAY(e, &c, &r_hb);

	bo_cmd hp = cmd_hold_pool(C1, EV, 0, 5, TTL);
	bo_result r_hp = run(e, &hp);
	EXPECT_OK(&r_hp);
	c = hp;
	c.category = 7;
	c.seat_count = 1;
	EXPECT_REPLAY(e, &c, &r_hp);

	bo_cmd ex = cmd_extend(C1, EV, r_hs.claim_id, TTL);
	bo_result r_ex = run(e, &ex);
	EXPECT_OK(&r_ex);
	c = ex;
	c.seat_count = 4;
	c.quantity = 1;
	EXPECT_REPLAY(e, &c, &r_ex);

	bo_cmd cf = cmd_confirm_len(C1, EV, r_hs.claim_id, 4);
	bo_result r_cf = run(e, &cf);
	EXPECT_OK(&r_cf);
	c = cf;
	c.payref[10] = '!'; /* beyond payref_len */
	c.ttl_ms = 1;
	EXPECT_REPLAY(e, &c, &r_cf);

	bo_cmd rl = cmd_claim(BO_OP_RELEASE, C1, EV, r_hb.claim_id);
	bo_result r_rl = run(e, &rl);
	EXPECT_OK(&r_rl);
	c = rl;
	c.ttl_ms = 1234;
	c.seat_count = 2;
	c.payref_len = 3;
	c.category = 1;
	EXPECT_REPLAY(e, &c, &r_rl);

	bo_cmd bl = cmd_seats(BO_OP_BLOCK, OPER, EV, SEATS(9));
	bo_result r_bl = run(e, &bl);
	EXPECT_OK(&r_bl);
	c = bl;
	c.ttl_ms = 99;
	c.claim_id = 3;
	EXPECT_REPLAY(e, &c, &r_bl);
	bo_seatmap_free(m);
	bo_seatmap_free(same);
	engine_free(e);
}

Test(idempotency, the_key_is_client_and_request)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd a = cmd_hold_seats(C1, EV, TTL, SEATS(1));
	bo_result ra = run(e, &a);
	EXPECT_OK(&ra);
	bo_cmd b = a;
	b.client_id = C2; /* same request id, other client: a new request */
	bo_result rb = run(e, &b);
	EXPECT_FAIL_SEAT(&rb, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, 1);
	cr_assert_eq(rb.replayed, 0);
	engine_free(e);
}

Test(idempotency, window_evicts_by_count_and_a_repeat_then_executes_again)
{
	engine *e = engine_with(1024, 64, 2, 4); /* a window of 2 */
	create_plain(e, EV);			 /* the creation is entry 1 */
	bo_cmd blk = cmd_seats(BO_OP_BLOCK, OPER, EV, SEATS(4));
	bo_result r_blk = run(e, &blk); /* window: creation, blk */
	EXPECT_OK(&r_blk);
	bo_cmd unb = cmd_seats(BO_OP_UNBLOCK, OPER, EV, SEATS(4));
	bo_result r = run(e, &unb); /* evicts the creation: blk, unb */
	EXPECT_OK(&r);
	EXPECT_REPLAY(e, &blk, &r_blk); /* still in the window */
	EXPECT_STATE(e, EV, 4, BO_SEAT_FREE);
	cr_assert_eq(idem_entries(e), 2);

	bo_result x = seats_op(e, BO_OP_BLOCK, EV, SEATS(7)); /* evicts blk */
	EXPECT_OK(&x);
	cr_assert_eq(idem_entries(e), 2);
	r = run(e, &blk);
	EXPECT_OK(&r);
	cr_assert_eq(r.replayed, 0, "evicted: executed again");
	EXPECT_STATE(e, EV, 4, BO_SEAT_BLOCKED);
	engine_free(e);
}

Test(idempotency, window_evicts_entries_older_than_the_window_ms)
{
	engine *e = small_engine();
	create_plain(e, EV);
	bo_cmd h = cmd_hold_seats(C1, EV, 1000, SEATS(2)); /* first applied at T0 */
	bo_result r_h = run(e, &h);
	EXPECT_OK(&r_h);
	advance(e, T0 + 1000); /* the hold expires */
	EXPECT_STATE(e, EV, 2, BO_SEAT_FREE);
	advance(e, T0 + BO_IDEM_WINDOW_MS); /* exactly the window: still kept */
	EXPECT_REPLAY(e, &h, &r_h);
	EXPECT_STATE(e, EV, 2, BO_SEAT_FREE);
	uint32_t entries = idem_entries(e);
	advance(e, T0 + BO_IDEM_WINDOW_MS + 1);
	cr_assert_eq(idem_entries(e), entries - 2, "the creation and the hold aged out");
	bo_result r = run(e, &h);
	EXPECT_OK(&r);
	cr_assert_eq(r.replayed, 0, "aged out: executed again");
	cr_assert_neq(r.claim_id, r_h.claim_id);
	cr_assert_eq(r.expires_at_ms, T0 + BO_IDEM_WINDOW_MS + 1 + 1000);
	EXPECT_STATE(e, EV, 2, BO_SEAT_HELD);
	engine_free(e);
}

/* ---- Claim ids ----------------------------------------------------------- */

Test(claim_ids, recycling_bumps_the_generation_and_the_old_id_is_not_found)
{
	engine *e = engine_with(1024, 1, 64, 4); /* one claim slot */
	create_plain(e, EV);
	uint64_t old = hold_ok(e, C1, EV, SEATS(1));
	bo_result r = release(e, C1, EV, old);
	EXPECT_OK(&r);
	uint64_t cur = hold_ok(e, C2, EV, SEATS(2));
	cr_assert_eq((uint32_t)cur, (uint32_t)old, "the same slot");
	cr_assert_eq(cur >> 32, (old >> 32) + 1, "the next generation");
	r = extend(e, C1, EV, old, TTL);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = release(e, C1, EV, old);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = confirm(e, C1, EV, old);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = cancel(e, C1, EV, old);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	EXPECT_STATE(e, EV, 2, BO_SEAT_HELD);
	r = confirm(e, C2, EV, cur);
	EXPECT_OK(&r);
	r = cancel(e, C1, EV, old);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	EXPECT_STATE(e, EV, 2, BO_SEAT_BOOKED);
	engine_free(e);
}

Test(claim_ids, fresh_slots_are_used_before_recycled_ones_then_oldest_first)
{
	engine *e = engine_with(1024, 4, 64, 4);
	create_plain(e, EV);
	uint64_t a = hold_ok(e, C1, EV, SEATS(0));
	bo_result r = release(e, C1, EV, a); /* slot 0 free, 3 never used */
	EXPECT_OK(&r);
	uint64_t b = hold_ok(e, C1, EV, SEATS(1));
	uint64_t c = hold_ok(e, C1, EV, SEATS(2));
	uint64_t d = hold_ok(e, C1, EV, SEATS(3));
	cr_assert_eq((uint32_t)b, 1);
	cr_assert_eq((uint32_t)c, 2);
	cr_assert_eq((uint32_t)d, 3);
	cr_assert_eq(b >> 32, 1);
	/* Ended in the order slot 0, 2, 1: reused in that order. */
	r = release(e, C1, EV, c);
	EXPECT_OK(&r);
	r = release(e, C1, EV, b);
	EXPECT_OK(&r);
	uint64_t x = hold_ok(e, C2, EV, SEATS(10));
	uint64_t y = hold_ok(e, C2, EV, SEATS(11));
	uint64_t z = hold_ok(e, C2, EV, SEATS(12));
	cr_assert_eq((uint32_t)x, 0);
	cr_assert_eq(x >> 32, 2);
	cr_assert_eq((uint32_t)y, 2);
	cr_assert_eq(y >> 32, 2);
	cr_assert_eq((uint32_t)z, 1);
	cr_assert_eq(z >> 32, 2);
	engine_free(e);
}

Test(claim_ids, an_expired_hold_stays_confirmable_until_its_slot_is_reused)
{
	engine *e = engine_with(1024, 3, 64, 4);
	create_plain(e, EV);
	bo_result h1 = hold_seats(e, C1, EV, 1000, SEATS(1));
	bo_result h2 = hold_seats(e, C1, EV, 2000, SEATS(2));
	advance(e, T0 + 2000); /* both expired, h1 first */
	uint64_t n1 = hold_ok(e, C2, EV, SEATS(5));
	cr_assert_eq((uint32_t)n1, 2, "the fresh slot, not an expired hold's");
	uint64_t n2 = hold_ok(e, C2, EV, SEATS(6));
	cr_assert_eq((uint32_t)n2, (uint32_t)h1.claim_id, "then the oldest ended slot");
	bo_result r = confirm(e, C1, EV, h1.claim_id);
	EXPECT_FAIL(&r, BO_NOT_FOUND, BO_D_NO_HOLD);
	r = confirm(e, C1, EV, h2.claim_id); /* its slot was not needed yet */
	EXPECT_OK(&r);
	EXPECT_STATE(e, EV, 2, BO_SEAT_BOOKED);
	EXPECT_STATE(e, EV, 1, BO_SEAT_FREE);
	/* n1, n2 and h2's booking fill the 3 slots: h2's slot is not reused. */
	r = hold_seats(e, C3, EV, TTL, SEATS(7));
	EXPECT_FAIL(&r, BO_LIMIT, BO_D_CLAIMS_FULL);
	engine_free(e);
}

/* ---- Digest -------------------------------------------------------------- */

/* One scripted history, applied to any engine. */
static void digest_script(engine *e, bo_seatmap *m)
{
	g_req = 1000;
	bo_cmd c = cmd_create(EV, m);
	run(e, &c);
	bo_result a = hold_best(e, C1, EV, 0, 3, 2000);
	bo_result b = hold_seats(e, C2, EV, 5000, SEATS(20, 21));
	hold_pool(e, C3, EV, 0, 7, 1500);
	advance(e, T0 + 1000);
	extend(e, C1, EV, a.claim_id, 4000);
	confirm(e, C2, EV, b.claim_id);
	seats_op(e, BO_OP_BLOCK, EV, SEATS(29));
	advance(e, T0 + 3000); /* the pool hold expires */
	hold_best(e, C3, EV, 0, 5, TTL);
	cancel(e, C2, EV, b.claim_id);
	advance(e, T0 + 6000); /* a expires */
}

Test(digest, equal_for_the_same_commands_at_the_same_times)
{
	engine *e1 = small_engine();
	engine *e2 = small_engine();
	cr_assert_eq(engine_digest(e1), engine_digest(e2), "empty engines");
	bo_seatmap *m = map_spec("0000000000|0000000000|0000000000", 1, 1, 100);
	digest_script(e1, m);
	digest_script(e2, m);
	cr_assert_eq(engine_digest(e1), engine_digest(e2));
	engine_stats s1, s2;
	engine_stats_get(e1, &s1);
	engine_stats_get(e2, &s2);
	cr_assert_eq(s1.expired_total, 2, "the script did expire holds");
	cr_assert_eq(s1.events, s2.events);
	cr_assert_eq(s1.seats, s2.seats);
	cr_assert_eq(s1.holds, s2.holds);
	cr_assert_eq(s1.bookings, s2.bookings);
	cr_assert_eq(s1.idem_entries, s2.idem_entries);
	bo_seatmap_free(m);
	engine_free(e1);
	engine_free(e2);
}

Test(digest, differs_after_a_state_change)
{
	engine *e1 = small_engine();
	engine *e2 = small_engine();
	bo_seatmap *m = map_spec("0000000000|0000000000|0000000000", 1, 1, 100);
	digest_script(e1, m);
	digest_script(e2, m);
	uint64_t d = engine_digest(e1);
	bo_cmd h = cmd_hold_seats(C1, EV, TTL, SEATS(0));
	bo_result r = run(e2, &h);
	EXPECT_OK(&r);
	cr_assert_neq(engine_digest(e2), d, "a hold");
	cr_assert_eq(engine_digest(e1), d, "digest is stable on an unchanged engine");
	r = run(e1, &h);
	cr_assert_eq(engine_digest(e1), engine_digest(e2), "both applied it");
	uint64_t before = engine_digest(e1);
	r = release(e1, C1, EV, 4242); /* a failure: stored in the window */
	cr_assert_neq(engine_digest(e1), before, "the window is state");
	before = engine_digest(e2);
	advance(e2, engine_now(e2) + 1);
	cr_assert_neq(engine_digest(e2), before, "the clock is state");
	bo_seatmap_free(m);
	engine_free(e1);
	engine_free(e2);
}

/* ---- Memory -------------------------------------------------------------- */

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert_not_null(f, "cannot read /proc/self/statm");
	unsigned long size = 0, resident = 0;
	int n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	cr_assert_eq(n, 2);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Creates a 1,000,000-seat event in an engine with default (16 Mi-seat)
 * tables and checks what it costs in resident memory. */
static void expect_event_rss_at(int line, const char *what, uint32_t rows, uint32_t seats_per_row,
				uint32_t categories)
{
	const uint64_t seats = (uint64_t)rows * seats_per_row;
	bo_seatmap *m = bo_seatmap_new(rows, (uint32_t)seats, 0);
	cr_assert_not_null(m);
	m->category_count = categories;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].seats = (uint16_t)seats_per_row;
		m->rows[r].section = (uint16_t)(r / 64);
	}
	/* Each row has every category: its first categories-1 seats one each,
	 * the rest the last one (few runs: the map's description must stay
	 * within BO_MAP_DESC_BYTES_MAX). */
	for (uint64_t s = 0; s < seats; s++) {
		uint64_t i = s % seats_per_row;
		m->categories[s] = (uint8_t)(i < categories - 1 ? i : categories - 1);
	}
	cr_assert_eq(bo_seatmap_check(m), BO_D_NONE, "line %d: %s: map refused", line, what);
	engine_config cfg;
	engine_config_default(&cfg);
	engine *e = NULL;
	cr_assert_eq(engine_new(&cfg, &e), 0);
	bo_cmd c = cmd_create(EV, m);
	uint64_t before = rss_bytes();
	bo_result r = run(e, &c);
	uint64_t after = rss_bytes();
	expect_ok_at(line, &r);
	uint64_t grew = after > before ? after - before : 0;
	const uint64_t budget = 16 * seats + (4u << 20);
	cr_log_info("%s: %lu seats, RSS +%lu bytes (%.2f bytes/seat), budget %lu", what,
		    (unsigned long)seats, (unsigned long)grew, (double)grew / (double)seats,
		    (unsigned long)budget);
	cr_assert_leq(grew, budget, "line %d: %s: RSS grew %lu bytes for %lu seats (> %lu)", line,
		      what, (unsigned long)grew, (unsigned long)seats, (unsigned long)budget);
	/* The event is really there (the memory was not saved by skipping it). */
	bo_avail a;
	cr_assert_eq(engine_avail(e, EV, &a), 0);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], seats);
	bo_result h = hold_best(e, C1, EV, 0, 4, TTL);
	expect_ok_at(line, &h);
	engine_free(e);
	bo_seatmap_free(m);
}

Test(memory, a_million_seat_event_costs_at_most_16_bytes_per_seat)
{
	/* A stadium-like map: 1,000 rows of 1,000 seats, 4 price tiers. */
	expect_event_rss_at(__LINE__, "1000 x 1000, 4 categories", 1000, 1000, 4);
}

Test(memory, a_million_seats_in_short_mixed_rows_stay_within_budget)
{
	/* The densest legal layout for row overhead: 62,500 rows of 16 seats
	 * (BO_ROWS_PER_EVENT_MAX allows 65,536), each row with as many
	 * categories as the description bound lets every row have (9 runs a
	 * row: 4 * 62,500 + 3 * 9 * 62,500 = 1,937,500 bytes; 10 would be
	 * 2,125,000 > BO_MAP_DESC_BYTES_MAX), so rows and row-category
	 * counters are near their maximum. */
	expect_event_rss_at(__LINE__, "62500 x 16, 9 categories a row", 62500, 16, 9);
}

/* bo_seatmap_dup: an exact, independent copy (valid or not); counts over
 * the limits are -EINVAL, not a copy. */
Test(engine, seatmap_dup_copies_exactly_and_refuses_counts_over_limits)
{
	bo_seatmap *m = map_spec("0012|0122", 3, 2, 40);
	bo_seatmap *c = NULL;
	cr_assert_eq(bo_seatmap_dup(m, &c), 0);
	cr_assert_not_null(c);
	cr_assert_neq(c, m);
	cr_assert_eq(c->row_count, m->row_count);
	cr_assert_eq(c->seat_count, m->seat_count);
	cr_assert_eq(c->pool_count, m->pool_count);
	cr_assert_eq(c->category_count, m->category_count);
	cr_assert_arr_eq(c->rows, m->rows, m->row_count * sizeof(*m->rows));
	cr_assert_arr_eq(c->categories, m->categories, m->seat_count);
	cr_assert_arr_eq(c->pool_capacity, m->pool_capacity, m->pool_count * sizeof(uint32_t));
	cr_assert_eq(bo_seatmap_check(c), BO_D_NONE);
	m->categories[0] = 2; /* the copy does not follow the original */
	cr_assert_eq(c->categories[0], 0);
	bo_seatmap_free(c);

	/* An invalid map (category out of range) copies as it is and is refused
	 * the same way. */
	m->categories[0] = 7;
	cr_assert_eq(bo_seatmap_dup(m, &c), 0);
	cr_assert_eq(bo_seatmap_check(c), BO_D_MAP_INVALID);
	bo_seatmap_free(c);

	bo_seatmap over = *m;
	over.seat_count = BO_SEATS_PER_EVENT_MAX + 1;
	c = m; /* must be reset */
	cr_assert_eq(bo_seatmap_dup(&over, &c), -EINVAL);
	cr_assert_null(c);
	bo_seatmap_free(m);
}

/* ---- Export (engine_event_count, engine_event_image, pool holds) --------- */

/* The image of every event must say what engine_seat and engine_avail say,
 * seat by seat and counter by counter, and carry the map it was created
 * with (rows, a category per seat, pool capacities). */
static void expect_image_matches_at(int line, const engine *e, uint32_t index, uint64_t ev,
				    const bo_seatmap *m)
{
	bo_event_image im;
	memset(&im, 0xab, sizeof(im));
	cr_assert_eq(engine_event_image(e, index, &im), 0, "line %d", line);
	cr_assert_eq(im.event_id, ev, "line %d: event %lu", line, (unsigned long)im.event_id);
	cr_assert_eq(im.seq, 0, "line %d: the engine leaves seq 0", line);
	cr_assert_eq(im.seat_count, m->seat_count, "line %d", line);
	cr_assert_eq(im.row_count, m->row_count, "line %d", line);
	cr_assert_eq(im.category_count, m->category_count, "line %d", line);
	cr_assert_eq(im.pool_count, m->pool_count, "line %d", line);
	for (uint32_t r = 0; r < m->row_count; r++) {
		cr_assert_eq(im.rows[r].section, m->rows[r].section, "line %d: row %u", line, r);
		cr_assert_eq(im.rows[r].seats, m->rows[r].seats, "line %d: row %u", line, r);
	}
	bo_avail a;
	cr_assert_eq(engine_avail(e, ev, &a), 0);
	uint32_t by_state[BO_SEAT_STATE_COUNT] = {0}, free_by_cat[BO_CATEGORIES_MAX] = {0};
	for (uint32_t s = 0; s < m->seat_count; s++) {
		cr_assert_eq(im.categories[s], m->categories[s], "line %d: seat %u", line, s);
		cr_assert_eq(im.states[s], seat_state(e, ev, s), "line %d: seat %u is %s in the image",
			     line, s, bo_seat_state_str(im.states[s]));
		by_state[im.states[s]]++;
		free_by_cat[im.categories[s]] += im.states[s] == BO_SEAT_FREE;
	}
	cr_assert_arr_eq(by_state, a.by_state, sizeof(by_state), "line %d", line);
	cr_assert_arr_eq(free_by_cat, a.free_by_category, sizeof(free_by_cat), "line %d", line);
	for (uint32_t p = 0; p < m->pool_count; p++) {
		cr_assert_eq(im.pool_capacity[p], a.pool_capacity[p], "line %d: pool %u", line, p);
		cr_assert_eq(im.pool_free[p], a.pool_free[p], "line %d: pool %u free %u, avail %u",
			     line, p, im.pool_free[p], a.pool_free[p]);
	}
	for (uint32_t p = m->pool_count; p < BO_POOLS_PER_EVENT_MAX; p++)
		cr_assert(im.pool_capacity[p] == 0 && im.pool_free[p] == 0, "line %d: unused pool %u",
			  line, p);
	bo_event_image_free(&im);
	cr_assert_null(im.states);
}

#define EXPECT_OK_OF(call)                 \
	do {                               \
		bo_result r_ = (call);     \
		expect_ok_at(__LINE__, &r_); \
	} while (0)

typedef struct pool_holds_seen {
	uint32_t n;
	uint64_t event[8], claim[8];
	uint8_t pool[8];
	uint32_t quantity[8];
} pool_holds_seen;

static void collect_pool_hold(void *ctx, uint64_t event_id, uint64_t claim_id, uint8_t pool,
			      uint32_t quantity)
{
	pool_holds_seen *s = ctx;
	cr_assert_lt(s->n, 8u);
	s->event[s->n] = event_id;
	s->claim[s->n] = claim_id;
	s->pool[s->n] = pool;
	s->quantity[s->n] = quantity;
	s->n++;
}

Test(export, images_equal_seats_and_avail_and_pool_holds_are_the_active_ones)
{
	engine *e = small_engine();
	cr_assert_eq(engine_event_count(e), 0);
	bo_event_image im = {0};
	cr_assert_eq(engine_event_image(e, 0, &im), -ENOENT);

	bo_seatmap *m1 = map_spec("0011x|21100|x222", 3, 2, 50);
	bo_seatmap *m2 = map_spec(NULL, 1, 3, 7); /* pools only */
	create_spec(e, EV, "0011x|21100|x222", 3, 2, 50);
	create_spec(e, EV2, NULL, 1, 3, 7);
	cr_assert_eq(engine_event_count(e), 2);

	/* Every seat state and every kind of pool claim. */
	uint64_t held = hold_ok(e, C1, EV, SEATS(0, 1));
	uint64_t booked = hold_ok(e, C2, EV, SEATS(5, 6, 7));
	EXPECT_OK_OF(confirm(e, C2, EV, booked));
	uint64_t gone = hold_ok(e, C3, EV, SEATS(2));
	EXPECT_OK_OF(release(e, C3, EV, gone));
	bo_result active = hold_pool(e, C1, EV, 1, 9, TTL);
	EXPECT_OK(&active);
	bo_result pool_booked = hold_pool(e, C2, EV2, 2, 3, TTL);
	EXPECT_OK(&pool_booked);
	EXPECT_OK_OF(confirm(e, C2, EV2, pool_booked.claim_id));
	bo_result pool_released = hold_pool(e, C3, EV2, 0, 2, TTL);
	EXPECT_OK(&pool_released);
	EXPECT_OK_OF(release(e, C3, EV2, pool_released.claim_id));
	bo_result expiring = hold_pool(e, C3, EV2, 1, 4, 2000);
	EXPECT_OK(&expiring);
	bo_result active2 = hold_pool(e, C2, EV2, 1, 1, TTL);
	EXPECT_OK(&active2);
	expiries xs = advance_collect(e, T0 + 2000);
	cr_assert_eq(xs.n, 1, "only the short hold expired");
	(void)held;

	expect_image_matches_at(__LINE__, e, 0, EV, m1);
	expect_image_matches_at(__LINE__, e, 1, EV2, m2);
	cr_assert_eq(engine_event_image(e, 2, &im), -ENOENT);

	/* Exactly the two active pool holds, with their pool and quantity. */
	pool_holds_seen seen = {0};
	engine_foreach_pool_hold(e, collect_pool_hold, &seen);
	cr_assert_eq(seen.n, 2, "%u pool holds reported", seen.n);
	for (uint32_t i = 0; i < seen.n; i++) {
		const bo_result *want = seen.claim[i] == active.claim_id ? &active : &active2;
		cr_assert_eq(seen.claim[i], want->claim_id, "claim %lx", (unsigned long)seen.claim[i]);
		cr_assert_eq(seen.event[i], want->event_id);
		cr_assert_eq(seen.pool[i], want->pool);
		cr_assert_eq(seen.quantity[i], want->quantity);
	}
	cr_assert_neq(seen.claim[0], seen.claim[1]);
	bo_seatmap_free(m1);
	bo_seatmap_free(m2);
	engine_free(e);
}

/* engine_prefetch() reads the tables to pick addresses (the recycle queue,
 * the event table, a claim slot named by a command): whatever the command
 * holds, it must change nothing, not even in a full claim table. */
Test(prefetch, hostile_commands_change_nothing)
{
	engine *e = engine_with(1u << 16, 4, 1024, 16);
	create_plain(e, EV);
	/* Fill the claim table, then end one hold so the recycle queue has an
	 * entry (the slot a hold would take next). */
	uint64_t ids[4];
	for (uint32_t i = 0; i < 4; i++) {
		bo_cmd h = cmd_hold_seats(C1, EV, TTL, SEATS(i));
		bo_result r = run(e, &h);
		EXPECT_OK(&r);
		ids[i] = r.claim_id;
	}
	bo_cmd rel = cmd_claim(BO_OP_RELEASE, C1, EV, ids[0]);
	bo_result r = run(e, &rel);
	EXPECT_OK(&r);
	const uint64_t claim_ids[] = {0, ids[1], (uint64_t)UINT32_MAX, UINT64_MAX, (7ull << 32) | 3};
	const uint32_t seats[] = {0, 29, 30, UINT32_MAX};
	const uint64_t events[] = {0, EV, EV + 1, UINT64_MAX};
	uint64_t d = engine_digest(e);
	for (uint8_t op = 0; op <= BO_OP_COUNT; op++)
		for (uint32_t ev = 0; ev < 4; ev++)
			for (uint32_t k = 0; k < 5; k++) {
				bo_cmd c = cmd_new(op, k == 0 ? 0 : C1, events[ev]);
				c.claim_id = claim_ids[k];
				c.seat_count = (uint8_t)(k == 4 ? 200 : k);
				c.seats[0] = seats[k % 4];
				engine_prefetch(e, &c);
			}
	cr_assert_eq(engine_digest(e), d, "a prefetch changed the engine");
	engine_free(e);
}
