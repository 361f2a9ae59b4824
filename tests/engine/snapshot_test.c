/*
 * snapshot_test.c — proves engine/snapshot.c: a snapshot rebuilds exactly
 * the engine it was taken of, and the loader refuses anything else.
 *
 * How:
 *  - Engines are built by random command streams (seeded, the seed printed
 *    on failure): events with random seat maps and pools, holds of every
 *    kind, extends, releases, confirms (also late ones), cancels, blocks,
 *    replayed and conflicting request ids, and clock jumps that expire
 *    holds and age out the idempotency window. Small tables (32 claims, a
 *    64-entry window) make slot recycling and window wrap-around common.
 *  - Round trip: load(encode(x)) has x's engine_digest() (which hashes
 *    every table), encode(load(x)) is byte-identical to x, and the loaded
 *    engine then answers the same further commands with the same results,
 *    expiries and digests as the original.
 *  - engine_check() accepts every state reached (checked after every step
 *    of several streams): it must not reject a reachable state.
 *  - Rejection: every single-byte change anywhere and every truncation is
 *    refused; a header with a config outside limits.h is refused with a
 *    message naming the config; and a body whose checksums the test
 *    recomputes but with one invariant broken (the test edits the image at
 *    the offsets the format documentation at the top of snapshot.c gives:
 *    this also checks the documentation) is refused by engine_check with a
 *    message naming the invariant. A control copy, re-checksummed without
 *    an edit, must load: so a refusal is due to the edit.
 *  - Files: snapfile_save / snapfile_load_latest / snapfile_peek with
 *    several files, a corrupt newest one (skipped with a warning naming it),
 *    a misnamed one, a truncated one and a .tmp leftover.
 *  - snapshot_write_fd in a child forked while another thread of the parent
 *    allocates continuously writes the same bytes as snapshot_encode (and
 *    finishes: it takes no allocator lock); write errors are returned.
 *  - A snapshot taken at a clock older than engine_now() (a later clock that
 *    changed nothing) rebuilds the same state once the clock moves on.
 *  - Scale: a 1,000,000-seat shard round-trips.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "base/le.h"
#include "engine/check.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "engine/snapshot.h"
#include "shard/snapfile.h"

/* ---- Format offsets, as documented at the top of snapshot.c -------------- */

#define HDR_BYTES 256u
#define HDR_HASHED 248u
#define OFF_SEATS_MAX 56u
#define OFF_CLAIMS_MAX 60u
#define OFF_IDEM_CAP 64u
#define OFF_EVENTS_MAX 68u
#define OFF_SEATS_USED 72u
#define OFF_ROWS_USED 76u
#define OFF_ROWCATS_USED 80u
#define OFF_EVENT_COUNT 84u
#define OFF_EVENT_INDEX_LEN 88u
#define OFF_CLAIMS_FRESH 92u
#define OFF_HEAP_LEN 96u
#define OFF_CLIENTS_USED 104u
#define OFF_IDEM_BUCKETS_USED 112u
#define OFF_HOLDS_LIVE 116u
#define OFF_RECYCLE_HEAD 128u
#define OFF_RECYCLE_TAIL 136u
#define OFF_IDEM_HEAD 144u
#define OFF_IDEM_TAIL 152u

/* Recomputes both checksums after an edit. */
static void rehash(uint8_t *b, size_t len)
{
	bo_le_store64(b + HDR_HASHED, XXH3_64bits(b, HDR_HASHED));
	bo_le_store64(b + len - 8, XXH3_64bits(b, len - 8));
}

/* Section offsets of an image, from its header. */
typedef struct layout {
	size_t seats, rows, rowcats, events, event_index, claims, recycle, heap, clients, idem,
	        idem_index, end;
} layout;

static layout layout_of(const uint8_t *b)
{
	layout l;
	l.seats = HDR_BYTES;
	l.rows = l.seats + bo_le_load32(b + OFF_SEATS_USED) * sizeof(seat);
	l.rowcats = l.rows + bo_le_load32(b + OFF_ROWS_USED) * sizeof(row);
	l.events = l.rowcats + bo_le_load32(b + OFF_ROWCATS_USED) * sizeof(rowcat);
	l.event_index = l.events + bo_le_load32(b + OFF_EVENT_COUNT) * sizeof(event);
	l.claims = l.event_index + bo_le_load32(b + OFF_EVENT_INDEX_LEN) * 4u;
	l.recycle = l.claims + bo_le_load32(b + OFF_CLAIMS_FRESH) * sizeof(claim);
	l.heap = l.recycle +
	         (bo_le_load64(b + OFF_RECYCLE_TAIL) - bo_le_load64(b + OFF_RECYCLE_HEAD)) * 4u;
	l.clients = l.heap + bo_le_load32(b + OFF_HEAP_LEN) * 4u;
	l.idem = l.clients + bo_le_load32(b + OFF_CLIENTS_USED) * (4u + sizeof(client_slot));
	l.idem_index =
	        l.idem + (bo_le_load64(b + OFF_IDEM_TAIL) - bo_le_load64(b + OFF_IDEM_HEAD)) *
	                         sizeof(idem_entry);
	l.end = l.idem_index + bo_le_load32(b + OFF_IDEM_BUCKETS_USED) * (4u + sizeof(idem_bucket));
	return l;
}

/* ---- Random worlds ------------------------------------------------------- */

typedef struct rng {
	uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static uint32_t below(rng *r, uint32_t n)
{
	return (uint32_t)(rnd(r) % n);
}

#define WORLD_EVENTS_MAX 4u
#define WORLD_CLAIMS_KEPT 64u
#define WORLD_CMDS_KEPT 16u

typedef struct world {
	engine *e;
	uint64_t seed;
	uint64_t events[WORLD_EVENTS_MAX];
	uint32_t event_seats[WORLD_EVENTS_MAX], event_pools[WORLD_EVENTS_MAX],
	        event_cats[WORLD_EVENTS_MAX];
	uint32_t nevents;
	uint64_t claims[WORLD_CLAIMS_KEPT]; /* claim ids seen, with their event */
	uint64_t claim_event[WORLD_CLAIMS_KEPT];
	uint32_t nclaims;
	bo_cmd recent[WORLD_CMDS_KEPT]; /* for replays and conflicts */
	uint32_t nrecent;
	uint64_t next_req;
	int64_t last_change_ms; /* clock of the last command (a change or not) */
} world;

/* Expiries seen, folded into a hash so two engines can be compared. */
typedef struct expiry_log {
	uint64_t count, hash;
} expiry_log;

static void on_expiry(void *ctx, const bo_expiry *x)
{
	expiry_log *l = ctx;
	l->count++;
	l->hash = XXH3_64bits_withSeed(x, sizeof(*x), l->hash);
}

static const engine_config small_cfg = {
        .seats_max = 4096, .claims_max = 32, .idem_capacity = 64, .events_max = 4};

static engine *engine_make(const engine_config *cfg)
{
	engine *e = NULL;
	int rc = engine_new(cfg, &e);
	cr_assert_eq(rc, 0, "engine_new = %d", rc);
	return e;
}

/* A random map: rows of 1..24 seats, categories in short runs, 0..2 pools. */
static bo_seatmap *random_map(rng *r, uint32_t *cats_out)
{
	uint32_t rows = 1 + below(r, 10), cats = 1 + below(r, 4), pools = below(r, 3);
	if (pools > 0 && below(r, 6) == 0)
		rows = 0; /* general admission only */
	uint32_t lens[16], seats = 0;
	for (uint32_t i = 0; i < rows; i++) {
		lens[i] = 1 + below(r, 24);
		seats += lens[i];
	}
	bo_seatmap *m = bo_seatmap_new(rows, seats, pools);
	cr_assert_not_null(m);
	m->category_count = cats;
	uint32_t s = 0;
	for (uint32_t i = 0; i < rows; i++) {
		m->rows[i].seats = (uint16_t)lens[i];
		m->rows[i].section = (uint16_t)(i / 3);
		uint8_t cat = (uint8_t)below(r, cats);
		for (uint32_t k = 0; k < lens[i]; k++, s++) {
			if (below(r, 5) == 0)
				cat = (uint8_t)below(r, cats);
			m->categories[s] = cat;
		}
	}
	for (uint32_t p = 0; p < pools; p++)
		m->pool_capacity[p] = 1 + below(r, 60);
	*cats_out = cats;
	return m;
}

static uint64_t pick_claim(world *w, rng *r, uint64_t *event_id)
{
	if (w->nclaims == 0 || below(r, 20) == 0) {
		*event_id = w->nevents ? w->events[below(r, w->nevents)] : 1;
		return rnd(r) & 0xffffffffffull; /* unknown or stale */
	}
	uint32_t i = below(r, w->nclaims);
	*event_id = w->claim_event[i];
	return w->claims[i];
}

/* One random command (or clock move) applied to the world's engine and,
 * when `twin` is set, to a second engine that must answer identically. */
static void world_step(world *w, rng *r, engine *twin, expiry_log *la, expiry_log *lb)
{
	if (below(r, 6) == 0) {
		/* Time: mostly small steps, sometimes past ttls and the window. */
		int64_t dt = below(r, 10) == 0 ? 400000 + below(r, 400000) : below(r, 30000);
		int64_t now = engine_now(w->e) + dt;
		uint32_t ca = engine_advance(w->e, now, on_expiry, la);
		if (twin) {
			uint32_t cb = engine_advance(twin, now, on_expiry, lb);
			cr_assert_eq(ca, cb, "seed %" PRIu64 ": advance changes differ", w->seed);
		}
		return;
	}
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	bo_seatmap *map = NULL;
	uint32_t kind = below(r, 100);
	if (w->nrecent && kind < 6) {
		c = w->recent[below(r, w->nrecent)]; /* a retry */
		if (kind < 2)
			c.ttl_ms ^= 1; /* ... with other content: a conflict (or harmless) */
		c.map = NULL;
		if (c.op == BO_OP_CREATE_EVENT)
			return; /* its map is gone */
	} else {
		c.client_id = 1 + below(r, 5);
		c.request_id = ++w->next_req;
		uint32_t ev = w->nevents ? below(r, w->nevents) : 0;
		c.event_id = w->nevents ? w->events[ev] : 1;
		c.ttl_ms = BO_TTL_MS_MIN + below(r, 120000);
		if (w->nevents == 0 || (w->nevents < WORLD_EVENTS_MAX && kind < 10)) {
			c.op = BO_OP_CREATE_EVENT;
			c.event_id = 1000 + w->nevents * 7 + below(r, 3);
			uint32_t cats;
			map = random_map(r, &cats);
			c.map = map;
		} else if (kind < 35) {
			c.op = BO_OP_HOLD_SEATS;
			c.seat_count = (uint8_t)(1 + below(r, 4));
			for (uint32_t i = 0; i < c.seat_count; i++)
				c.seats[i] = below(r, w->event_seats[ev] +
				                              1); /* sometimes out of range */
		} else if (kind < 55) {
			c.op = BO_OP_HOLD_BEST;
			c.category = (uint8_t)below(r, w->event_cats[ev] + 1);
			c.quantity = (uint16_t)(1 + below(r, 6));
		} else if (kind < 62) {
			c.op = BO_OP_HOLD_POOL;
			c.pool = (uint8_t)below(r, w->event_pools[ev] + 1);
			c.quantity = (uint16_t)(1 + below(r, 20));
		} else if (kind < 68) {
			c.op = BO_OP_EXTEND;
			c.claim_id = pick_claim(w, r, &c.event_id);
		} else if (kind < 76) {
			c.op = BO_OP_RELEASE;
			c.claim_id = pick_claim(w, r, &c.event_id);
		} else if (kind < 88) {
			c.op = BO_OP_CONFIRM;
			c.claim_id = pick_claim(w, r, &c.event_id);
			c.payref_len = (uint8_t)(1 + below(r, 8));
			memset(c.payref, 'a' + (int)below(r, 26), c.payref_len);
		} else if (kind < 93) {
			c.op = BO_OP_CANCEL;
			c.claim_id = pick_claim(w, r, &c.event_id);
		} else {
			c.op = below(r, 2) ? BO_OP_BLOCK : BO_OP_UNBLOCK;
			c.client_id = 99;
			c.seat_count = (uint8_t)(1 + below(r, 3));
			for (uint32_t i = 0; i < c.seat_count; i++)
				c.seats[i] = below(r, w->event_seats[ev] ? w->event_seats[ev] : 1);
		}
	}
	bo_result ra, rb;
	engine_apply(w->e, &c, &ra);
	if (twin) {
		engine_apply(twin, &c, &rb);
		cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0,
		          "seed %" PRIu64 ": results differ for %s (status %s / %s, claim %" PRIx64
		          " / %" PRIx64 ")",
		          w->seed, bo_op_str(c.op), bo_status_str(ra.status),
		          bo_status_str(rb.status), ra.claim_id, rb.claim_id);
	}
	w->last_change_ms = engine_now(w->e);
	if (c.op == BO_OP_CREATE_EVENT && ra.status == BO_OK && !ra.replayed) {
		w->events[w->nevents] = c.event_id;
		w->event_seats[w->nevents] = c.map->seat_count;
		w->event_pools[w->nevents] = c.map->pool_count;
		w->event_cats[w->nevents] = c.map->category_count;
		w->nevents++;
	}
	if (ra.claim_id && ra.status == BO_OK) {
		uint32_t i =
		        w->nclaims < WORLD_CLAIMS_KEPT ? w->nclaims++ : below(r, WORLD_CLAIMS_KEPT);
		w->claims[i] = ra.claim_id;
		w->claim_event[i] = c.event_id;
	}
	if (c.op != BO_OP_CREATE_EVENT) {
		uint32_t i =
		        w->nrecent < WORLD_CMDS_KEPT ? w->nrecent++ : below(r, WORLD_CMDS_KEPT);
		w->recent[i] = c;
	}
	if (map)
		bo_seatmap_free(map);
}

static void world_init(world *w, uint64_t seed, const engine_config *cfg)
{
	memset(w, 0, sizeof(*w));
	w->seed = seed;
	w->e = engine_make(cfg);
	engine_advance(w->e, 1700000000000 + (int64_t)seed, NULL, NULL);
}

static void world_run(world *w, rng *r, uint32_t steps)
{
	expiry_log l = {0};
	for (uint32_t i = 0; i < steps; i++)
		world_step(w, r, NULL, &l, NULL);
}

static void assert_check_ok(const engine *e, uint64_t seed, const char *when)
{
	char err[SNAPSHOT_ERR_LEN];
	int rc = engine_check(e, err, sizeof(err));
	cr_assert_eq(rc, 0, "seed %" PRIu64 " %s: engine_check = %d: %s", seed, when, rc, err);
}

static engine *load_ok(const uint8_t *b, size_t len, snapshot_info *info, uint64_t seed)
{
	engine *e = NULL;
	char err[SNAPSHOT_ERR_LEN];
	int rc = snapshot_load(b, len, &e, info, err, sizeof(err));
	cr_assert_eq(rc, 0, "seed %" PRIu64 ": snapshot_load = %d: %s", seed, rc, err);
	cr_assert_not_null(e);
	return e;
}

static void load_fails(const uint8_t *b, size_t len, const char *want, const char *what)
{
	engine *e = (engine *)0x1;
	char err[SNAPSHOT_ERR_LEN] = "";
	int rc = snapshot_load(b, len, &e, NULL, err, sizeof(err));
	cr_assert_eq(rc, -EINVAL, "%s: snapshot_load = %d, want -EINVAL (%s)", what, rc, err);
	cr_assert_null(e, "%s: engine handed out on failure", what);
	cr_assert(err[0] != '\0', "%s: no message", what);
	if (want)
		cr_assert(strstr(err, want) != NULL, "%s: message \"%s\" does not mention \"%s\"",
		          what, err, want);
}

/* ---- Round trips --------------------------------------------------------- */

Test(snapshot, roundtrip_random_states)
{
	for (uint64_t seed = 1; seed <= 150; seed++) {
		world w;
		world_init(&w, seed, &small_cfg);
		rng r = {seed};
		world_run(&w, &r, below(&r, 700));
		assert_check_ok(w.e, seed, "before snapshot");
		int64_t ts = engine_now(w.e);
		uint8_t *a;
		size_t alen;
		cr_assert_eq(snapshot_encode(w.e, 7, 1000 + seed, ts, &a, &alen), 0);
		snapshot_info info;
		engine *b = load_ok(a, alen, &info, seed);
		cr_assert_eq(engine_digest(b), engine_digest(w.e),
		             "seed %" PRIu64 ": digest differs", seed);
		cr_assert(info.shard == 7 && info.seq == 1000 + seed && info.seq_ts_ms == ts &&
		          info.bytes == alen);
		cr_assert(memcmp(&info.config, &small_cfg, sizeof(small_cfg)) == 0);
		uint8_t *a2;
		size_t alen2;
		cr_assert_eq(snapshot_encode(b, 7, 1000 + seed, ts, &a2, &alen2), 0);
		cr_assert(alen2 == alen && memcmp(a, a2, alen) == 0,
		          "seed %" PRIu64 ": re-encoding differs", seed);
		free(a);
		free(a2);
		engine_free(b);
		engine_free(w.e);
	}
}

Test(snapshot, loaded_engine_behaves_identically)
{
	for (uint64_t seed = 500; seed < 560; seed++) {
		world w;
		world_init(&w, seed, &small_cfg);
		rng r = {seed};
		world_run(&w, &r, 100 + below(&r, 500));
		uint8_t *a;
		size_t alen;
		cr_assert_eq(snapshot_encode(w.e, 0, 1, engine_now(w.e), &a, &alen), 0);
		engine *twin = load_ok(a, alen, NULL, seed);
		free(a);
		expiry_log la = {0}, lb = {0};
		for (uint32_t i = 0; i < 500; i++) {
			world_step(&w, &r, twin, &la, &lb);
			cr_assert(la.count == lb.count && la.hash == lb.hash,
			          "seed %" PRIu64 " step %" PRIu32 ": expiries differ", seed, i);
			if (i % 50 == 0)
				cr_assert_eq(engine_digest(w.e), engine_digest(twin),
				             "seed %" PRIu64 " step %" PRIu32, seed, i);
		}
		cr_assert_eq(engine_digest(w.e), engine_digest(twin),
		             "seed %" PRIu64 ": final digest", seed);
		assert_check_ok(twin, seed, "twin after 500 steps");
		engine_free(twin);
		engine_free(w.e);
	}
}

Test(snapshot, check_accepts_every_reachable_state)
{
	for (uint64_t seed = 900; seed < 930; seed++) {
		world w;
		world_init(&w, seed, &small_cfg);
		rng r = {seed};
		expiry_log l = {0};
		for (uint32_t i = 0; i < 600; i++) {
			world_step(&w, &r, NULL, &l, NULL);
			char when[32];
			snprintf(when, sizeof(when), "step %" PRIu32, i);
			assert_check_ok(w.e, seed, when);
		}
		engine_free(w.e);
	}
}

/* A state reached at time T, then a clock that moved to T + 1 without any
 * change: a snapshot at T loads, and advancing it to T + 1 gives the same
 * state as the original's. */
Test(snapshot, older_clock_is_not_state)
{
	for (uint64_t seed = 40; seed < 60; seed++) {
		world w;
		world_init(&w, seed, &small_cfg);
		rng r = {seed};
		world_run(&w, &r, 300);
		int64_t t = engine_now(w.e);
		uint32_t changes = engine_advance(w.e, t + 1, NULL, NULL);
		if (changes != 0) { /* something expired exactly at t + 1: not this case */
			engine_free(w.e);
			continue;
		}
		uint8_t *a;
		size_t alen;
		cr_assert_eq(snapshot_encode(w.e, 0, 9, t, &a, &alen), 0);
		engine *b = load_ok(a, alen, NULL, seed);
		cr_assert_eq(engine_now(b), t);
		cr_assert_eq(engine_advance(b, t + 1, NULL, NULL), 0);
		cr_assert_eq(engine_digest(b), engine_digest(w.e), "seed %" PRIu64, seed);
		free(a);
		engine_free(b);
		engine_free(w.e);
	}
}

/* 10 events of 100,000 seats in rows of 100, four categories, some holds
 * and bookings: the arenas are large, the format must not care. */
Test(snapshot, million_seats_roundtrip, .timeout = 300)
{
	engine_config cfg = {.seats_max = 1u << 20,
	                     .claims_max = 1u << 16,
	                     .idem_capacity = 1u << 14,
	                     .events_max = 16};
	engine *e = engine_make(&cfg);
	engine_advance(e, 1000000, NULL, NULL);
	bo_seatmap *m = bo_seatmap_new(1000, 100000, 1);
	cr_assert_not_null(m);
	m->category_count = 4;
	for (uint32_t i = 0; i < 1000; i++)
		m->rows[i] = (bo_row_def){.section = (uint16_t)(i / 50), .seats = 100};
	for (uint32_t s = 0; s < 100000; s++)
		m->categories[s] = (uint8_t)((s / 100) * 4 / 1000);
	m->pool_capacity[0] = 5000;
	bo_result res;
	uint64_t req = 1;
	for (uint32_t ev = 0; ev < 10; ev++) {
		bo_cmd c = {.op = BO_OP_CREATE_EVENT,
		            .client_id = 1,
		            .request_id = req++,
		            .event_id = 100 + ev,
		            .map = m};
		engine_apply(e, &c, &res);
		cr_assert_eq(res.status, BO_OK);
	}
	bo_seatmap_free(m);
	rng r = {77};
	for (uint32_t i = 0; i < 20000; i++) {
		bo_cmd c = {.op = BO_OP_HOLD_BEST,
		            .client_id = 10 + i % 5000,
		            .request_id = req++,
		            .event_id = 100 + below(&r, 10),
		            .category = (uint8_t)below(&r, 4),
		            .quantity = (uint16_t)(1 + below(&r, 6)),
		            .ttl_ms = 600000};
		engine_apply(e, &c, &res);
		if (res.status == BO_OK && i % 3 == 0) {
			bo_cmd k = {.op = BO_OP_CONFIRM,
			            .client_id = c.client_id,
			            .request_id = req++,
			            .event_id = c.event_id,
			            .claim_id = res.claim_id,
			            .payref_len = 3};
			memcpy(k.payref, "psp", 3);
			engine_apply(e, &k, &res);
			cr_assert_eq(res.status, BO_OK);
		}
	}
	assert_check_ok(e, 77, "million seats");
	uint8_t *a;
	size_t alen;
	cr_assert_eq(snapshot_encode(e, 3, 42, engine_now(e), &a, &alen), 0);
	cr_assert_geq(alen, 1000000u * sizeof(seat));
	engine *b = load_ok(a, alen, NULL, 77);
	cr_assert_eq(engine_digest(b), engine_digest(e));
	uint8_t *a2;
	size_t alen2;
	cr_assert_eq(snapshot_encode(b, 3, 42, engine_now(e), &a2, &alen2), 0);
	cr_assert(alen == alen2 && memcmp(a, a2, alen) == 0);
	free(a);
	free(a2);
	engine_free(b);
	engine_free(e);
}

/* ---- Rejection ----------------------------------------------------------- */

static void random_image(uint64_t seed, uint32_t steps, uint8_t **buf, size_t *len)
{
	world w;
	world_init(&w, seed, &small_cfg);
	rng r = {seed};
	world_run(&w, &r, steps);
	cr_assert_eq(snapshot_encode(w.e, 1, 2, engine_now(w.e), buf, len), 0);
	engine_free(w.e);
}

Test(snapshot, every_byte_flip_is_rejected)
{
	uint8_t *a;
	size_t len;
	random_image(4242, 400, &a, &len);
	uint8_t *b = malloc(len);
	cr_assert_not_null(b);
	rng r = {1};
	for (size_t off = 0; off < len; off++) {
		memcpy(b, a, len);
		b[off] ^= (uint8_t)(1 + below(&r, 255));
		engine *e = NULL;
		char err[SNAPSHOT_ERR_LEN] = "";
		int rc = snapshot_load(b, len, &e, NULL, err, sizeof(err));
		cr_assert_eq(rc, -EINVAL, "flip at %zu of %zu accepted (rc %d)", off, len, rc);
		cr_assert(e == NULL && err[0]);
	}
	free(b);
	free(a);
}

Test(snapshot, truncations_and_extensions_are_rejected)
{
	uint8_t *a;
	size_t len;
	random_image(99, 300, &a, &len);
	for (size_t n = 0; n < len; n++)
		load_fails(a, n, NULL, "truncated");
	load_fails(NULL, 0, "truncated", "NULL buffer");
	uint8_t *b = malloc(len + 1);
	cr_assert_not_null(b);
	memcpy(b, a, len);
	b[len] = 0;
	load_fails(b, len + 1, "trailing", "one byte more");
	/* A truncation whose header still says the old length. */
	load_fails(a, len - 8, "truncated", "no trailer");
	free(b);
	free(a);
}

Test(snapshot, crazy_config_is_rejected)
{
	uint8_t *a;
	size_t len;
	random_image(5, 50, &a, &len);
	struct {
		uint32_t off, value;
	} cases[] = {
	        {OFF_SEATS_MAX, 0},
	        {OFF_SEATS_MAX, BO_SEATS_PER_SHARD_MAX + 1},
	        {OFF_CLAIMS_MAX, 0},
	        {OFF_CLAIMS_MAX, UINT32_MAX},
	        {OFF_IDEM_CAP, 3},
	        {OFF_IDEM_CAP, BO_IDEM_CAPACITY_MAX * 2},
	        {OFF_EVENTS_MAX, BO_EVENTS_PER_SHARD_MAX + 1},
	        {OFF_EVENTS_MAX, 0},
	};
	uint8_t *b = malloc(len);
	cr_assert_not_null(b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(b, a, len);
		bo_le_store32(b + cases[i].off, cases[i].value);
		rehash(b, len);
		load_fails(b, len, "config", "crazy config");
	}
	/* A sane config that does not fit the counts: smaller seat capacity. */
	memcpy(b, a, len);
	bo_le_store32(b + OFF_SEATS_MAX, 1);
	rehash(b, len);
	load_fails(b, len, NULL, "config below the counts");
	/* Control: only re-checksummed, it loads. */
	memcpy(b, a, len);
	rehash(b, len);
	engine *e = load_ok(b, len, NULL, 5);
	engine_free(e);
	free(b);
	free(a);
}

/* A small deterministic state with every table in use: two events (seats
 * and a pool), holds by three clients with different expiries, a booking,
 * a released hold (recycle entry), a pool hold. */
typedef struct fixture {
	engine *e;
	uint8_t *img;
	size_t len;
	layout l;
	uint64_t held_claim, booked_claim;
} fixture;

static void fixture_build(fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->e = engine_make(&small_cfg);
	engine_advance(f->e, 5000000, NULL, NULL);
	bo_seatmap *m = bo_seatmap_new(3, 30, 1);
	cr_assert_not_null(m);
	m->category_count = 2;
	for (uint32_t i = 0; i < 3; i++)
		m->rows[i] = (bo_row_def){.section = 0, .seats = 10};
	for (uint32_t s = 0; s < 30; s++)
		m->categories[s] = s < 20 ? 0 : 1;
	m->pool_capacity[0] = 10;
	uint64_t req = 1;
	bo_result r;
	bo_cmd c = {.op = BO_OP_CREATE_EVENT,
	            .client_id = 1,
	            .request_id = req++,
	            .event_id = 7,
	            .map = m};
	engine_apply(f->e, &c, &r);
	cr_assert_eq(r.status, BO_OK);
	bo_seatmap_free(m);
	uint64_t ids[4];
	for (uint32_t i = 0; i < 4; i++) {
		bo_cmd h = {.op = BO_OP_HOLD_SEATS,
		            .client_id = 2 + i,
		            .request_id = req++,
		            .event_id = 7,
		            .seat_count = 2,
		            .seats = {i * 2, i * 2 + 1},
		            .ttl_ms = 60000 - i * 1000};
		engine_apply(f->e, &h, &r);
		cr_assert_eq(r.status, BO_OK);
		ids[i] = r.claim_id;
	}
	bo_cmd k = {.op = BO_OP_CONFIRM,
	            .client_id = 2,
	            .request_id = req++,
	            .event_id = 7,
	            .claim_id = ids[0],
	            .payref_len = 2,
	            .payref = "ok"};
	engine_apply(f->e, &k, &r);
	cr_assert_eq(r.status, BO_OK);
	bo_cmd rel = {.op = BO_OP_RELEASE,
	              .client_id = 3,
	              .request_id = req++,
	              .event_id = 7,
	              .claim_id = ids[1]};
	engine_apply(f->e, &rel, &r);
	cr_assert_eq(r.status, BO_OK);
	bo_cmd p = {.op = BO_OP_HOLD_POOL,
	            .client_id = 9,
	            .request_id = req++,
	            .event_id = 7,
	            .pool = 0,
	            .quantity = 4,
	            .ttl_ms = 90000};
	engine_apply(f->e, &p, &r);
	cr_assert_eq(r.status, BO_OK);
	f->held_claim = ids[2];
	f->booked_claim = ids[0];
	assert_check_ok(f->e, 0, "fixture");
	cr_assert_eq(snapshot_encode(f->e, 1, 2, engine_now(f->e), &f->img, &f->len), 0);
	f->l = layout_of(f->img);
	cr_assert_eq(f->l.end + 8, f->len, "documented layout gives %zu bytes, file has %zu",
	             f->l.end + 8, f->len);
	cr_assert_geq(bo_le_load32(f->img + OFF_HEAP_LEN), 3u);
	cr_assert_geq(bo_le_load64(f->img + OFF_RECYCLE_TAIL) -
	                      bo_le_load64(f->img + OFF_RECYCLE_HEAD),
	              1u);
	cr_assert_geq(bo_le_load32(f->img + OFF_IDEM_BUCKETS_USED), 1u);
}

static void fixture_free(fixture *f)
{
	free(f->img);
	engine_free(f->e);
}

/* Applies `edit` to a copy of the fixture's image, re-checksums it and
 * expects engine_check (or the loader) to refuse it naming `want`. */
typedef void (*edit_fn)(const fixture *f, uint8_t *b);

static void expect_broken(const fixture *f, edit_fn edit, const char *want, const char *what)
{
	uint8_t *b = malloc(f->len);
	cr_assert_not_null(b);
	memcpy(b, f->img, f->len);
	edit(f, b);
	cr_assert(memcmp(b, f->img, f->len) != 0, "%s: the edit changed nothing", what);
	rehash(b, f->len);
	load_fails(b, f->len, want, what);
	free(b);
}

static seat *seat_at(const fixture *f, uint8_t *b, uint32_t s)
{
	return (seat *)(b + f->l.seats + s * sizeof(seat));
}
static size_t claim_off(const fixture *f, uint32_t slot)
{
	return f->l.claims + slot * sizeof(claim);
}

static void edit_free_seat_owner(const fixture *f, uint8_t *b)
{
	seat st;
	memcpy(&st, seat_at(f, b, 25), sizeof(st));
	cr_assert_eq(st.state, BO_SEAT_FREE);
	st.state = BO_SEAT_HELD;
	st.owner = bo_le_load32(b + OFF_CLAIMS_FRESH) + 5;
	memcpy(seat_at(f, b, 25), &st, sizeof(st));
}

static void edit_counter(const fixture *f, uint8_t *b)
{
	size_t o = f->l.events + offsetof(event, by_state) + BO_SEAT_FREE * 4;
	bo_le_store32(b + o, bo_le_load32(b + o) + 1);
}

static void edit_heap_order(const fixture *f, uint8_t *b)
{
	uint32_t h0 = bo_le_load32(b + f->l.heap), h1 = bo_le_load32(b + f->l.heap + 4);
	bo_le_store32(b + f->l.heap, h1);
	bo_le_store32(b + f->l.heap + 4, h0);
	bo_le_store32(b + claim_off(f, h0) + offsetof(claim, heap_pos), 1);
	bo_le_store32(b + claim_off(f, h1) + offsetof(claim, heap_pos), 0);
}

static void edit_idem_slot(const fixture *f, uint8_t *b)
{
	/* The first live slot of the first written bucket: point it past the
	 * window's tail. */
	uint8_t *rec = b + f->l.idem_index;
	idem_bucket bk;
	memcpy(&bk, rec + 4, sizeof(bk));
	uint32_t i = 0;
	while (i < IDEM_SLOTS && bk.pos[i] == 0)
		i++;
	cr_assert_lt(i, IDEM_SLOTS);
	bk.pos[i] = (uint32_t)bo_le_load64(b + OFF_IDEM_TAIL) + 10;
	memcpy(rec + 4, &bk, sizeof(bk));
}

static void edit_holds_live(const fixture *f, uint8_t *b)
{
	(void)f;
	bo_le_store32(b + OFF_HOLDS_LIVE, bo_le_load32(b + OFF_HOLDS_LIVE) + 1);
}

static void edit_client_count(const fixture *f, uint8_t *b)
{
	client_slot cs;
	memcpy(&cs, b + f->l.clients + 4, sizeof(cs));
	cs.holds++;
	memcpy(b + f->l.clients + 4, &cs, sizeof(cs));
}

static void edit_max_run(const fixture *f, uint8_t *b)
{
	/* Row 2 (seats 20..29, category 1, all free): its only rowcat. */
	rowcat rc;
	size_t o = f->l.rowcats + 2 * sizeof(rowcat);
	memcpy(&rc, b + o, sizeof(rc));
	cr_assert_eq(rc.cat, 1);
	rc.max_run = 3;
	memcpy(b + o, &rc, sizeof(rc));
}

static void edit_no_clean(const fixture *f, uint8_t *b)
{
	rowcat rc;
	size_t o = f->l.rowcats + 2 * sizeof(rowcat);
	memcpy(&rc, b + o, sizeof(rc));
	rc.no_clean = 1u << 3; /* "no clean block of 4" in a free row of 10 */
	memcpy(b + o, &rc, sizeof(rc));
}

static void edit_recycle_entry(const fixture *f, uint8_t *b)
{
	bo_le_store32(b + f->l.recycle, bo_le_load32(b + OFF_CLAIMS_FRESH) + 1);
}

static void edit_claim_duplicate_seat(const fixture *f, uint8_t *b)
{
	uint32_t slot = (uint32_t)f->held_claim;
	size_t o = claim_off(f, slot) + offsetof(claim, seats);
	bo_le_store32(b + o + 4, bo_le_load32(b + o));
}

static void edit_pool_held(const fixture *f, uint8_t *b)
{
	size_t o = f->l.events + offsetof(event, pool_held);
	bo_le_store32(b + o, bo_le_load32(b + o) + 1);
}

static void edit_event_base(const fixture *f, uint8_t *b)
{
	size_t o = f->l.events + offsetof(event, seat_base);
	bo_le_store32(b + o, 1);
}

static void edit_in_recycle(const fixture *f, uint8_t *b)
{
	uint32_t slot = bo_le_load32(b + f->l.recycle);
	b[claim_off(f, slot) + offsetof(claim, in_recycle)] = 0;
}

static void edit_seat_category(const fixture *f, uint8_t *b)
{
	seat_at(f, b, 0)->cat = 9;
}

static void edit_event_index(const fixture *f, uint8_t *b)
{
	uint32_t n = bo_le_load32(b + OFF_EVENT_INDEX_LEN);
	for (uint32_t j = 0; j < n; j++)
		if (bo_le_load32(b + f->l.event_index + j * 4u)) {
			bo_le_store32(b + f->l.event_index + j * 4u, 0);
			return;
		}
	cr_assert_fail("no event in the index");
}

static void edit_booked_claim_state(const fixture *f, uint8_t *b)
{
	b[claim_off(f, (uint32_t)f->booked_claim) + offsetof(claim, state)] = CL_HELD;
}

Test(snapshot, broken_invariants_are_rejected)
{
	fixture f;
	fixture_build(&f);
	/* Control: re-checksummed but unedited, the image loads. */
	uint8_t *b = malloc(f.len);
	cr_assert_not_null(b);
	memcpy(b, f.img, f.len);
	rehash(b, f.len);
	engine *e = load_ok(b, f.len, NULL, 0);
	engine_free(e);
	free(b);

	expect_broken(&f, edit_free_seat_owner, "past claims_fresh",
	              "seat owner past claims_fresh");
	expect_broken(&f, edit_counter, "by_state[free]", "free counter off by one");
	expect_broken(&f, edit_heap_order, "heap out of order", "heap out of order");
	expect_broken(&f, edit_idem_slot, "past the window", "idempotency slot outside the window");
	expect_broken(&f, edit_holds_live, "holds_live", "holds_live off by one");
	expect_broken(&f, edit_client_count, "claims say", "client hold count off by one");
	expect_broken(&f, edit_max_run, "max_run", "max_run below the longest run");
	expect_broken(&f, edit_no_clean, "no_clean", "no_clean bit where a clean block exists");
	expect_broken(&f, edit_recycle_entry, "recycle", "recycle entry past claims_fresh");
	expect_broken(&f, edit_claim_duplicate_seat, "twice", "claim lists a seat twice");
	expect_broken(&f, edit_pool_held, "pool", "pool counter off");
	expect_broken(&f, edit_event_base, "does not follow", "event not contiguous");
	expect_broken(&f, edit_in_recycle, "recycle", "ended claim not in the recycle queue");
	expect_broken(&f, edit_seat_category, "category 9", "seat category out of range");
	expect_broken(&f, edit_event_index, "event", "event missing from its index");
	expect_broken(&f, edit_booked_claim_state, "heap", "booked claim turned held");
	fixture_free(&f);
}

/* The recycle queue keeps a slot's stale entry (left by a late confirm)
 * before its valid one, so taking the slot consumes both. An image with a
 * stale entry after the valid one is refused. */
Test(snapshot, stale_recycle_entry_after_valid_is_rejected)
{
	engine *e = engine_make(&small_cfg);
	engine_advance(e, 1000000, NULL, NULL);
	bo_seatmap *m = bo_seatmap_new(1, 10, 0);
	cr_assert_not_null(m);
	m->category_count = 1;
	m->rows[0].seats = 10;
	bo_result r;
	bo_cmd c = {
	        .op = BO_OP_CREATE_EVENT, .client_id = 1, .request_id = 1, .event_id = 3, .map = m};
	engine_apply(e, &c, &r);
	bo_seatmap_free(m);
	bo_cmd a = {.op = BO_OP_HOLD_SEATS,
	            .client_id = 2,
	            .request_id = 2,
	            .event_id = 3,
	            .seat_count = 1,
	            .seats = {0},
	            .ttl_ms = 5000};
	engine_apply(e, &a, &r);
	uint64_t id_a = r.claim_id;
	bo_cmd b = {.op = BO_OP_HOLD_SEATS,
	            .client_id = 2,
	            .request_id = 3,
	            .event_id = 3,
	            .seat_count = 1,
	            .seats = {1},
	            .ttl_ms = 10000};
	engine_apply(e, &b, &r);
	uint64_t id_b = r.claim_id;
	bo_cmd rel = {.op = BO_OP_RELEASE,
	              .client_id = 2,
	              .request_id = 4,
	              .event_id = 3,
	              .claim_id = id_a};
	engine_apply(e, &rel, &r);
	cr_assert_eq(r.status, BO_OK);
	engine_advance(e, 1020000, NULL, NULL); /* b expires */
	bo_cmd k = {.op = BO_OP_CONFIRM,
	            .client_id = 2,
	            .request_id = 5,
	            .event_id = 3,
	            .claim_id = id_b,
	            .payref_len = 1,
	            .payref = "p"};
	engine_apply(e, &k, &r); /* late confirm: b's entry goes stale */
	cr_assert_eq(r.status, BO_OK);
	assert_check_ok(e, 0, "late confirm");
	uint8_t *img;
	size_t len;
	cr_assert_eq(snapshot_encode(e, 0, 1, engine_now(e), &img, &len), 0);
	layout l = layout_of(img);
	cr_assert_eq(bo_le_load64(img + OFF_RECYCLE_TAIL) - bo_le_load64(img + OFF_RECYCLE_HEAD),
	             2u);
	cr_assert_eq(bo_le_load32(img + l.recycle), (uint32_t)id_a);
	cr_assert_eq(bo_le_load32(img + l.recycle + 4), (uint32_t)id_b);
	bo_le_store32(img + l.recycle + 4,
	              (uint32_t)id_a); /* b's stale entry becomes a's, after a's valid one */
	rehash(img, len);
	load_fails(img, len, "after its valid one", "stale recycle entry after the valid one");
	free(img);
	engine_free(e);
}

/* engine_check on a live engine whose tables a test breaks directly. */
Test(snapshot, check_reports_live_corruption)
{
	fixture f;
	fixture_build(&f);
	char err[SNAPSHOT_ERR_LEN];
	engine *e = f.e;
	e->events[0].free_by_cat[0]--;
	cr_assert_eq(engine_check(e, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "free_by_cat[0]"), "%s", err);
	e->events[0].free_by_cat[0]++;
	assert_check_ok(e, 0, "restored");
	e->idem_tail++; /* an entry the index does not know (and zeroed) */
	cr_assert_eq(engine_check(e, err, sizeof(err)), -EINVAL);
	e->idem_tail--;
	assert_check_ok(e, 0, "restored");
	fixture_free(&f);
}

/* Eight keys homed in one bucket of the idempotency index: the eighth
 * spills to the next bucket. The spilled state round-trips, lookups of every
 * key still answer from the window, and an image whose spill flag is
 * cleared (so the eighth key is lost) is refused. */
Test(snapshot, spilled_idempotency_index)
{
	engine *e = engine_make(&small_cfg);
	engine_advance(e, 1000, NULL, NULL);
	uint32_t mask = e->idem_index_mask, home = idem_hash(1, 1) & mask;
	uint64_t reqs[8];
	uint32_t n = 0;
	for (uint64_t q = 1; n < 8; q++)
		if ((idem_hash(1, q) & mask) == home)
			reqs[n++] = q;
	bo_result r;
	for (uint32_t i = 0; i < 8; i++) {
		bo_cmd c = {.op = BO_OP_RELEASE,
		            .client_id = 1,
		            .request_id = reqs[i],
		            .event_id = 5,
		            .claim_id = 1};
		engine_apply(e, &c, &r);
		cr_assert_eq(r.detail, BO_D_NO_EVENT);
	}
	cr_assert_eq(e->idem_index[home].spill, 1, "the eighth key did not spill");
	assert_check_ok(e, 0, "spilled");
	uint8_t *a;
	size_t len;
	cr_assert_eq(snapshot_encode(e, 0, 1, engine_now(e), &a, &len), 0);
	engine *b = load_ok(a, len, NULL, 0);
	cr_assert_eq(engine_digest(b), engine_digest(e));
	for (uint32_t i = 0; i < 8; i++) {
		bo_cmd c = {.op = BO_OP_RELEASE,
		            .client_id = 1,
		            .request_id = reqs[i],
		            .event_id = 5,
		            .claim_id = 1};
		engine_apply(b, &c, &r);
		cr_assert_eq(r.replayed, 1, "key %" PRIu32 " lost after loading", i);
	}
	engine_free(b);
	layout l = layout_of(a);
	uint32_t nb = bo_le_load32(a + OFF_IDEM_BUCKETS_USED);
	bool edited = false;
	for (uint32_t j = 0; j < nb; j++) {
		uint8_t *rec = a + l.idem_index + j * (4u + sizeof(idem_bucket));
		if (bo_le_load32(rec) == home) {
			bo_le_store32(rec + 4 + offsetof(idem_bucket, spill), 0);
			edited = true;
		}
	}
	cr_assert(edited);
	rehash(a, len);
	load_fails(a, len, "not found by lookup", "spill flag cleared");
	free(a);
	engine_free(e);
}

/* Positions of the idempotency FIFO are kept in 32 bits by the index. An
 * engine that has stored more than 2^32 results (simulated by moving head
 * and tail up by 2^32: the index only keeps their low bits) still loads and
 * answers retries from its window. */
Test(snapshot, idempotency_positions_past_2_32)
{
	world w;
	world_init(&w, 11, &small_cfg);
	rng r = {11};
	world_run(&w, &r, 300);
	uint8_t *a;
	size_t len;
	cr_assert_eq(snapshot_encode(w.e, 0, 1, engine_now(w.e), &a, &len), 0);
	bo_le_store64(a + OFF_IDEM_HEAD, bo_le_load64(a + OFF_IDEM_HEAD) + (1ull << 32));
	bo_le_store64(a + OFF_IDEM_TAIL, bo_le_load64(a + OFF_IDEM_TAIL) + (1ull << 32));
	rehash(a, len);
	engine *b = load_ok(a, len, NULL, 11);
	cr_assert_gt(w.nrecent, 0);
	for (uint32_t i = 0; i < w.nrecent; i++) {
		bo_result ra, rb;
		engine_apply(w.e, &w.recent[i], &ra);
		engine_apply(b, &w.recent[i], &rb);
		cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0,
		          "retry %" PRIu32 " answered differently", i);
	}
	expiry_log la = {0}, lb = {0};
	for (uint32_t i = 0; i < 300; i++)
		world_step(&w, &r, b, &la, &lb);
	assert_check_ok(b, 11, "past 2^32");
	free(a);
	engine_free(b);
	engine_free(w.e);
}

/* ---- Files --------------------------------------------------------------- */

static char *temp_dir(void)
{
	char *d = strdup("/tmp/snapshot_test.XXXXXX");
	cr_assert_not_null(d);
	cr_assert_not_null(mkdtemp(d), "mkdtemp: %s", strerror(errno));
	return d;
}

static void remove_dir(char *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	cr_assert_eq(system(cmd), 0);
	free(d);
}

static void flip_file_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t c;
	cr_assert_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	cr_assert_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* The one place snapshot file names are made and recognised: exactly
 * "snap-" + 20 decimal digits + ".snap", the digits a uint64_t. The
 * expected strings are written out here, so the format itself is pinned. */
Test(snapshot, file_names)
{
	char buf[PATH_MAX];
	cr_assert_eq(snapfile_path(buf, sizeof(buf), NULL, 0), 0);
	cr_assert_str_eq(buf, "snap-00000000000000000000.snap");
	cr_assert_eq(strlen(buf), SNAPFILE_NAME_LEN);
	cr_assert_eq(snapfile_path(buf, sizeof(buf), "/var/x", 12345), 0);
	cr_assert_str_eq(buf, "/var/x/snap-00000000000000012345.snap");
	cr_assert_eq(snapfile_path(buf, sizeof(buf), NULL, UINT64_MAX), 0);
	cr_assert_str_eq(buf, "snap-18446744073709551615.snap");
	/* The terminating NUL must fit too. */
	cr_assert_eq(snapfile_path(buf, SNAPFILE_NAME_LEN, NULL, 7), -ENAMETOOLONG);
	cr_assert_eq(snapfile_path(buf, SNAPFILE_NAME_LEN + 1, NULL, 7), 0);
	cr_assert_eq(snapfile_path(buf, 8, "/a/long/directory", 7), -ENAMETOOLONG);

	/* Round trip, through the name snapfile_path gives. */
	const uint64_t seqs[] = {0,
	                         1,
	                         9,
	                         10,
	                         30,
	                         999999,
	                         UINT64_C(1) << 32,
	                         UINT64_C(10000000000000000000),
	                         UINT64_MAX - 1,
	                         UINT64_MAX};
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		cr_assert_eq(snapfile_path(buf, sizeof(buf), NULL, seqs[i]), 0);
		uint64_t got = 0;
		cr_assert_eq(snapfile_name_parse(buf, &got), 1, "%s", buf);
		cr_assert_eq(got, seqs[i], "%s gave %" PRIu64, buf, got);
	}
	rng r = {77};
	for (int i = 0; i < 1000; i++) {
		uint64_t v = rnd(&r) >> below(&r, 64);
		cr_assert_eq(snapfile_path(buf, sizeof(buf), NULL, v), 0);
		uint64_t got = 0;
		cr_assert(snapfile_name_parse(buf, &got) == 1 && got == v, "%s", buf);
	}

	const char *refused[] = {
	        "",
	        "snap-00000000000000000030.snap.tmp", /* an interrupted save */
	        "snap-0000000000000000030.snap",      /* 19 digits */
	        "snap-000000000000000000030.snap",    /* 21 digits */
	        "snap-0000000000000000003a.snap",
	        "snap-+0000000000000000030.snap",
	        "snap- 0000000000000000030.snap",
	        "snap-18446744073709551616.snap", /* 2^64 */
	        "snap-99999999999999999999.snap",
	        "snap-00000000000000000030.sna",
	        "snap-00000000000000000030.SNAP",
	        "snap-00000000000000000030",
	        "Snap-00000000000000000030.snap",
	        "xsnap-0000000000000000030.snap",
	        "/snap-00000000000000000030.snap",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		uint64_t got = 0;
		cr_assert_eq(snapfile_name_parse(refused[i], &got), 0, "accepted '%s'", refused[i]);
	}
}

Test(snapshot, save_and_load_latest)
{
	char *dir = temp_dir();
	char err[SNAPSHOT_ERR_LEN];
	engine *got = NULL;
	snapshot_info info;
	cr_assert_eq(snapfile_load_latest(dir, &got, &info, err, sizeof(err)), 0, "empty dir: %s",
	             err);
	cr_assert_null(got);
	cr_assert_eq(
	        snapfile_load_latest("/tmp/no/such/snapshot/dir", &got, &info, err, sizeof(err)),
	        0);

	world w;
	world_init(&w, 31, &small_cfg);
	rng r = {31};
	uint64_t digest[4];
	for (uint32_t k = 1; k <= 3; k++) {
		world_run(&w, &r, 150);
		digest[k] = engine_digest(w.e);
		int rc = snapfile_save(w.e, dir, 4, k * 10, engine_now(w.e), err, sizeof(err));
		cr_assert_eq(rc, 0, "save %" PRIu32 ": %s", k, err);
	}
	char path[PATH_MAX];
	cr_assert_eq(snapfile_path(path, sizeof(path), dir, 30), 0);
	snapshot_info pk;
	cr_assert_eq(snapfile_peek(path, &pk, err, sizeof(err)), 0, "%s", err);
	cr_assert(pk.seq == 30 && pk.shard == 4 && pk.config.claims_max == small_cfg.claims_max);

	cr_assert_eq(snapfile_load_latest(dir, &got, &info, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(info.seq, 30);
	cr_assert_eq(err[0], '\0', "warning without cause: %s", err);
	cr_assert_eq(engine_digest(got), digest[3]);
	engine_free(got);

	/* Corrupt the newest; add a truncated one above it, a leftover .tmp
	 * and a copy of seq 20's file named 35. */
	flip_file_byte(path, 300);
	char p2[PATH_MAX], p3[PATH_MAX], p20[PATH_MAX], p35[PATH_MAX], cmd[4 * PATH_MAX];
	cr_assert_eq(snapfile_path(p2, sizeof(p2), dir, 50), 0);
	FILE *fp = fopen(p2, "w");
	cr_assert_not_null(fp);
	fputs("BOX", fp);
	fclose(fp);
	cr_assert_eq(snapfile_path(p3, sizeof(p3) - strlen(SNAPFILE_TMP_SUFFIX), dir, 60), 0);
	strcat(p3, SNAPFILE_TMP_SUFFIX);
	fp = fopen(p3, "w");
	cr_assert_not_null(fp);
	fclose(fp);
	cr_assert_eq(snapfile_path(p20, sizeof(p20), dir, 20), 0);
	cr_assert_eq(snapfile_path(p35, sizeof(p35), dir, 35), 0);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", p20, p35);
	cr_assert_eq(system(cmd), 0);

	cr_assert_eq(snapfile_load_latest(dir, &got, &info, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(info.seq, 20);
	cr_assert_eq(engine_digest(got), digest[2]);
	cr_assert(strstr(err, path) && strstr(err, "checksum"), "warning: %s", err);
	cr_assert(strstr(err, p2) && strstr(err, p35), "warning: %s", err);
	cr_assert(strstr(err, "header says seq 20"), "warning: %s", err);
	cr_assert(!strstr(err, ".tmp"), "a .tmp file was considered: %s", err);
	engine_free(got);
	cr_assert_eq(snapfile_peek(p2, &pk, err, sizeof(err)), -EINVAL);

	engine_free(w.e);
	remove_dir(dir);
}

Test(snapshot, write_errors_are_returned)
{
	world w;
	world_init(&w, 3, &small_cfg);
	rng r = {3};
	world_run(&w, &r, 100);
	int fd = open("/dev/full", O_WRONLY);
	if (fd < 0)
		cr_skip_test("/dev/full not available: %s", strerror(errno));
	cr_assert_eq(snapshot_write_fd(w.e, 0, 1, engine_now(w.e), fd), -ENOSPC);
	close(fd);
	fd = open("/dev/null", O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(snapshot_write_fd(w.e, 0, 1, engine_now(w.e), fd), -EBADF);
	close(fd);
	char err[SNAPSHOT_ERR_LEN];
	cr_assert_lt(snapfile_save(w.e, "/tmp/no/such/snapshot/dir", 0, 1, engine_now(w.e), err,
	                           sizeof(err)),
	             0);
	cr_assert(strstr(err, "/tmp/no/such/snapshot/dir"), "%s", err);
	engine_free(w.e);
}

/* ---- Fork ---------------------------------------------------------------- */

static atomic_bool churn_stop;

static void *churn(void *arg)
{
	(void)arg;
	void *keep[64] = {0};
	uint32_t i = 0;
	while (!atomic_load(&churn_stop)) {
		free(keep[i % 64]);
		keep[i % 64] = malloc(16 + (i * 37) % 4000);
		i++;
	}
	for (uint32_t k = 0; k < 64; k++)
		free(keep[k]);
	return NULL;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	struct stat sb;
	cr_assert_eq(fstat(fd, &sb), 0);
	uint8_t *b = malloc((size_t)sb.st_size + 1);
	cr_assert_not_null(b);
	cr_assert_eq(read(fd, b, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

Test(snapshot, write_fd_in_forked_child, .timeout = 120)
{
	world w;
	world_init(&w, 17, &small_cfg);
	rng r = {17};
	world_run(&w, &r, 500);
	uint8_t *want;
	size_t want_len;
	cr_assert_eq(snapshot_encode(w.e, 2, 77, engine_now(w.e), &want, &want_len), 0);
	char *dir = temp_dir();
	char path[512];
	snprintf(path, sizeof(path), "%s/child.snap", dir);

	atomic_store(&churn_stop, false);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, churn, NULL), 0);
	for (int round = 0; round < 20; round++) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		cr_assert_geq(fd, 0);
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			int rc = snapshot_write_fd(w.e, 2, 77, engine_now(w.e), fd);
			_exit(rc == 0 ? 0 : 1);
		}
		close(fd);
		int status = 0;
		pid_t done = 0;
		for (int waited_ms = 0; waited_ms < 20000 && done == 0; waited_ms += 5) {
			done = waitpid(pid, &status, WNOHANG);
			if (done == 0)
				nanosleep(&(struct timespec){0, 5000000}, NULL);
		}
		if (done == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			cr_assert_fail(
			        "round %d: the child did not finish in 20 s (a lock taken after fork?)",
			        round);
		}
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		          "round %d: child status %d", round, status);
		size_t len;
		uint8_t *got = read_file(path, &len);
		cr_assert(len == want_len && memcmp(got, want, len) == 0,
		          "round %d: child wrote other bytes", round);
		free(got);
	}
	atomic_store(&churn_stop, true);
	pthread_join(th, NULL);
	free(want);
	engine_free(w.e);
	remove_dir(dir);
}
