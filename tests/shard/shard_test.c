/*
 * shard_test.c — proves the shard writer of shard/shard.c keeps its
 * contract: input ring -> one engine -> output ring, one RESULT per command
 * with its tag, in ring order, with batch numbers and batch times that never
 * go back; -EBUSY at once on a full input ring; an idle tick that expires
 * holds with no command arriving; shard_stop() applying everything already
 * published; a stopped shard working again after shard_start();
 * shard_for_event() stable and balanced; bad configs refused. And, run
 * under ThreadSanitizer too: a durable shard taking snapshots (writer,
 * the snapshot builder and its own follower) while a follower thread reads its
 * journal delivers every durable record once, in order.
 *
 * How: real threads against a real shard. Three producers submit a few
 * thousand BLOCK/UNBLOCK commands each (in groups of 1..16, retrying on
 * -EBUSY) on seats of their own, so every command must succeed exactly when
 * the producer's commands are applied in its order; the test thread drains
 * the output ring and checks each record. Time is injected through
 * shard_config.clock where a test needs it (the idle tick), so nothing
 * depends on the wall clock except the timeouts that stop a hung test.
 *
 * Under -fsanitize=thread the same tests run without Criterion: Criterion
 * 2.4 aborts at start-up under ThreadSanitizer (its sandbox maps an arena at
 * addresses TSan reserves), so the same test bodies then run through
 * tests/support/tsan_harness, each in a child process of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>

#include <xxhash.h>

#include "base/clock.h"
#include "shard/follower.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/tmpdir.h"

#if defined(__SANITIZE_THREAD__)
/* Criterion cannot start under ThreadSanitizer (see tests/support/
 * tsan_harness.h): this build runs the same tests through that harness. */
#include "tests/support/tsan_harness.h"
#else
#include <criterion/criterion.h>
#endif

/* ---- Helpers ------------------------------------------------------------- */

#define EV 7u		     /* the event every test uses */
#define SEATS_PER_ROW 1000u  /* each producer owns one row */
#define PRODUCERS 3u
#define CMDS_PER_PRODUCER 3000u
#define OP_CLIENT 900u	     /* the client that creates the event */

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Small engine tables and the smallest legal rings, so a full ring is
 * reached quickly and a test starts fast. */
static shard_config small_config(void)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 16;
	cfg.engine.claims_max = 4096;
	cfg.engine.idem_capacity = 1u << 15;
	cfg.engine.events_max = 16;
	cfg.in_slots = BO_BATCH_MAX;
	cfg.out_slots = 2 * BO_BATCH_MAX;
	cfg.tick_ms = 2;
	return cfg;
}

static shard *new_shard(const shard_config *cfg)
{
	shard *s = NULL;
	int rc = shard_new(cfg, &s);
	cr_assert_eq(rc, 0, "shard_new = %d", rc);
	cr_assert_not_null(s);
	return s;
}

/* A map of PRODUCERS rows of SEATS_PER_ROW seats, one category, one pool. */
static bo_seatmap *new_map(void)
{
	return tcmd_rows_map(PRODUCERS, SEATS_PER_ROW, 1, 100);
}

static bo_cmd create_cmd(const bo_seatmap *m)
{
	return tcmd_create(OP_CLIENT, 1, EV, m);
}

static bo_cmd query_cmd(void)
{
	return tcmd_query_avail(EV);
}

/* Drains the output ring into out[] until `want` RESULT records have come
 * (EXPIRY records are kept too) or timeout_ms passes. Returns the number
 * of records stored; the caller checks how many results there were. */
static uint32_t collect(shard *s, shard_out *out, uint32_t cap, uint32_t want, int64_t timeout_ms)
{
	ring *o = shard_output(s);
	uint32_t n = 0, results = 0;
	const int64_t deadline = bo_clock_ms() + timeout_ms;
	while (results < want && bo_clock_ms() < deadline) {
		uint64_t first;
		uint32_t k = ring_poll(o, cap - n, &first);
		if (k == 0) {
			ring_wait(o, 1000000);
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			out[n] = *(const shard_out *)ring_slot(o, first + i);
			if (out[n].kind == SHARD_OUT_RESULT)
				results++;
			n++;
		}
		ring_release(o, k);
		cr_assert_lt(n, cap + 1);
	}
	return n;
}

/* Nothing is waiting in the output ring. */
static void expect_output_empty(shard *s)
{
	uint64_t first;
	uint32_t k = ring_poll(shard_output(s), 16, &first);
	cr_assert_eq(k, 0, "%u unexpected output record(s), first of kind %d", k,
		     k ? ((const shard_out *)ring_slot(shard_output(s), first))->kind : 0);
}

/* Submits one command and waits for its result. */
static bo_result submit_one(shard *s, const bo_cmd *c, uint64_t tag)
{
	cr_assert_eq(shard_submit(s, c, &tag, 1), 0);
	shard_out out[8];
	uint32_t n = collect(s, out, 8, 1, 5000);
	cr_assert_eq(n, 1, "exactly one record expected, got %u", n);
	cr_assert_eq(out[0].kind, SHARD_OUT_RESULT);
	cr_assert_eq(out[0].tag, tag);
	return out[0].u.result;
}

/* ---- Start and stop ------------------------------------------------------ */

Test(shard, start_stop_with_nothing_submitted_is_clean_and_repeatable)
{
	shard_config cfg = small_config();
	shard *s = new_shard(&cfg);
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(shard_start(s), 0);
		sleep_ms(10); /* a few idle ticks */
		shard_stop(s);
		shard_stop(s); /* idempotent */
		expect_output_empty(s);
		cr_assert_eq(shard_batches(s), 0, "round %d: ticks are not batches", round);
	}
	shard_free(s);

	/* Freeing a shard that never started, and one that is running. */
	s = new_shard(&cfg);
	shard_free(s);
	s = new_shard(&cfg);
	cr_assert_eq(shard_start(s), 0);
	shard_free(s);
}

Test(shard, a_restarted_shard_still_applies_commands)
{
	shard_config cfg = small_config();
	shard *s = new_shard(&cfg);
	bo_cmd q = query_cmd();
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(shard_start(s), 0);
		sleep_ms(10); /* idle first: the writer must keep waiting, not leave */
		uint64_t tag = 100 + (uint64_t)round;
		cr_assert_eq(shard_submit(s, &q, &tag, 1), 0);
		shard_out out[4];
		uint32_t n = collect(s, out, 4, 1, 2000);
		cr_assert_eq(n, 1, "round %d: no result within 2 s", round);
		cr_assert_eq(out[0].tag, tag);
		shard_stop(s);
		cr_assert_eq(shard_batches(s), (uint64_t)round + 1);
	}
	shard_free(s);
}

/* ---- Many producers ------------------------------------------------------ */

typedef struct producer {
	shard *s;
	uint32_t index;
	uint64_t busy; /* -EBUSY answers seen */
	int error;     /* any other shard_submit() answer */
} producer;

/* Command k of producer p: BLOCK (k even) then UNBLOCK (k odd) of one of
 * the producer's seats, so each succeeds only if p's commands are applied
 * in submission order. The tag names (p, k). */
static bo_cmd producer_cmd(uint32_t p, uint32_t k)
{
	uint32_t seat = p * SEATS_PER_ROW + (k / 2) % SEATS_PER_ROW;
	return tcmd_seats(k % 2 == 0 ? BO_OP_BLOCK : BO_OP_UNBLOCK, 1000 + p, (uint64_t)k + 1, EV,
	                  &seat, 1);
}

static uint64_t producer_tag(uint32_t p, uint32_t k) { return ((uint64_t)p << 32) | k; }

static void *producer_main(void *arg)
{
	producer *pr = arg;
	bo_cmd cmds[16];
	uint64_t tags[16];
	uint32_t k = 0;
	while (k < CMDS_PER_PRODUCER && pr->error == 0) {
		uint32_t n = 1 + (k * 7 + pr->index * 5) % 16; /* groups of 1..16 */
		if (n > CMDS_PER_PRODUCER - k)
			n = CMDS_PER_PRODUCER - k;
		for (uint32_t i = 0; i < n; i++) {
			cmds[i] = producer_cmd(pr->index, k + i);
			tags[i] = producer_tag(pr->index, k + i);
		}
		for (;;) {
			int rc = shard_submit(pr->s, cmds, tags, n);
			if (rc == 0)
				break;
			if (rc != -EBUSY) {
				pr->error = rc;
				break;
			}
			pr->busy++;
			sched_yield();
		}
		k += n;
	}
	return NULL;
}

Test(shard, every_command_of_many_producers_yields_one_result_in_order)
{
	shard_config cfg = small_config();
	shard *s = new_shard(&cfg);
	cr_assert_eq(shard_start(s), 0);
	bo_seatmap *m = new_map();
	bo_cmd create = create_cmd(m);
	bo_result r = submit_one(s, &create, UINT64_MAX);
	cr_assert_eq(r.status, BO_OK);
	bo_seatmap_free(m); /* its result is out: the map is no longer borrowed */

	producer prs[PRODUCERS];
	pthread_t threads[PRODUCERS];
	for (uint32_t p = 0; p < PRODUCERS; p++) {
		prs[p] = (producer){.s = s, .index = p};
		cr_assert_eq(pthread_create(&threads[p], NULL, producer_main, &prs[p]), 0);
	}

	const uint32_t total = PRODUCERS * CMDS_PER_PRODUCER;
	uint32_t next[PRODUCERS] = {0};
	uint32_t received = 0, polls = 0;
	uint64_t last_batch = 0;
	int64_t last_now = INT64_MIN;
	ring *o = shard_output(s);
	const int64_t deadline = bo_clock_ms() + 60000;
	while (received < total && bo_clock_ms() < deadline) {
		uint64_t first;
		/* Varying poll sizes: the writer must cope with a slow consumer. */
		uint32_t k = ring_poll(o, 1 + (polls++ * 37) % 700, &first);
		if (k == 0) {
			ring_wait(o, 1000000);
			continue;
		}
		for (uint32_t i = 0; i < k; i++) {
			const shard_out *x = ring_slot(o, first + i);
			cr_assert_eq(x->kind, SHARD_OUT_RESULT, "only results: no hold exists");
			uint32_t p = (uint32_t)(x->tag >> 32), c = (uint32_t)x->tag;
			cr_assert_lt(p, PRODUCERS, "tag %#lx", (unsigned long)x->tag);
			cr_assert_eq(c, next[p], "producer %u: result for command %u, expected %u",
				     p, c, next[p]);
			next[p]++;
			const bo_result *res = &x->u.result;
			cr_assert_eq(res->client_id, 1000 + p, "the result belongs to its command");
			cr_assert_eq(res->request_id, (uint64_t)c + 1);
			cr_assert_eq(res->op, c % 2 == 0 ? BO_OP_BLOCK : BO_OP_UNBLOCK);
			cr_assert_eq(res->status, BO_OK, "producer %u command %u: %s/%s", p, c,
				     bo_status_str(res->status),
				     bo_detail_str(res->detail));
			cr_assert_geq(x->batch, last_batch, "batch numbers never go back");
			cr_assert_geq(x->now_ms, last_now, "batch times never go back");
			last_batch = x->batch;
			last_now = x->now_ms;
			received++;
		}
		ring_release(o, k);
	}
	for (uint32_t p = 0; p < PRODUCERS; p++)
		pthread_join(threads[p], NULL);
	uint64_t busy = 0;
	for (uint32_t p = 0; p < PRODUCERS; p++) {
		cr_assert_eq(prs[p].error, 0, "producer %u: shard_submit = %d", p, prs[p].error);
		cr_assert_eq(next[p], CMDS_PER_PRODUCER, "producer %u: %u results", p, next[p]);
		busy += prs[p].busy;
	}
	cr_assert_eq(received, total);
	shard_stop(s);
	expect_output_empty(s);
	cr_assert_geq(shard_batches(s), 2);
	cr_assert_leq(shard_batches(s), total + 1);
	cr_log_info("%u results in %lu batches, %lu busy retries", received,
		    (unsigned long)shard_batches(s), (unsigned long)busy);
	/* Every seat ends free: each BLOCK was followed by its UNBLOCK. */
	bo_avail a;
	cr_assert_eq(engine_avail(shard_engine(s), EV, &a), 0);
	cr_assert_eq(a.by_state[BO_SEAT_FREE], PRODUCERS * SEATS_PER_ROW);
	shard_free(s);
}

/* ---- A full input ring --------------------------------------------------- */

Test(shard, full_input_ring_answers_ebusy_at_once_and_takes_nothing)
{
	shard_config cfg = small_config();
	shard *s = new_shard(&cfg); /* not started: nothing drains the input */
	const uint32_t slots = cfg.in_slots;
	bo_cmd *cmds = calloc(BO_BATCH_MAX, sizeof(bo_cmd));
	uint64_t *tags = calloc(BO_BATCH_MAX, sizeof(uint64_t));
	cr_assert_not_null(cmds);
	cr_assert_not_null(tags);
	for (uint32_t i = 0; i < BO_BATCH_MAX; i++) {
		cmds[i] = query_cmd();
		tags[i] = i;
	}
	cr_assert_eq(shard_submit(s, cmds, tags, slots - 96), 0);
	int64_t t0 = bo_clock_ms();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(shard_submit(s, cmds, tags, 97), -EBUSY, "97 > 96 free slots");
	int64_t dt = bo_clock_ms() - t0;
	cr_assert_lt(dt, 1000, "100 refused submits took %ld ms: they must not wait", (long)dt);
	cr_assert_eq(shard_submit(s, cmds, tags + (slots - 96), 96), 0, "exactly full is allowed");
	cr_assert_eq(shard_submit(s, cmds, tags, 1), -EBUSY);

	/* Start it: exactly the accepted commands come out, in order. */
	cr_assert_eq(shard_start(s), 0);
	shard_out *out = calloc(slots + 16, sizeof(shard_out));
	cr_assert_not_null(out);
	uint32_t n = collect(s, out, slots + 16, slots, 10000);
	cr_assert_eq(n, slots);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(out[i].kind, SHARD_OUT_RESULT);
		cr_assert_eq(out[i].tag, i, "record %u", i);
		cr_assert_eq(out[i].u.result.status, BO_NOT_FOUND, "no event was created");
	}
	sleep_ms(20);
	expect_output_empty(s);
	/* Drained: there is room again. */
	cr_assert_eq(shard_submit(s, cmds, tags, BO_BATCH_MAX), 0);
	n = collect(s, out, slots + 16, BO_BATCH_MAX, 10000);
	cr_assert_eq(n, BO_BATCH_MAX);
	shard_free(s);
	free(out);
	free(cmds);
	free(tags);
}

/* ---- The idle tick ------------------------------------------------------- */

static int64_t fake_clock(void *ctx)
{
	/* The test thread moves the time; the writer only reads it. */
	return atomic_load_explicit((_Atomic int64_t *)ctx, memory_order_relaxed);
}

Test(shard, idle_tick_expires_a_hold_with_no_command_arriving)
{
	static _Atomic int64_t fake_ms;
	const int64_t T = 5000000;
	atomic_store(&fake_ms, T);
	shard_config cfg = small_config();
	cfg.clock = fake_clock;
	cfg.clock_ctx = (void *)&fake_ms;
	shard *s = new_shard(&cfg);
	cr_assert_eq(shard_start(s), 0);

	bo_seatmap *m = new_map();
	bo_cmd cmds[2] = {create_cmd(m), tcmd_hold_seats(5, 1, EV, (const uint32_t[]){10, 11}, 2, 1000)};
	uint64_t tags[2] = {1, 2};
	cr_assert_eq(shard_submit(s, cmds, tags, 2), 0);
	shard_out out[8];
	uint32_t n = collect(s, out, 8, 2, 5000);
	cr_assert_eq(n, 2);
	bo_seatmap_free(m);
	cr_assert_eq(out[0].u.result.status, BO_OK);
	const bo_result *hold = &out[1].u.result;
	cr_assert_eq(out[1].tag, 2);
	cr_assert_eq(hold->status, BO_OK);
	cr_assert_eq(out[1].now_ms, T, "the batch is stamped with the injected clock");
	cr_assert_eq(hold->expires_at_ms, T + 1000);

	/* 1 ms before expiry nothing happens, however many ticks pass. */
	atomic_store(&fake_ms, T + 999);
	sleep_ms(50);
	expect_output_empty(s);

	atomic_store(&fake_ms, T + 1000);
	const int64_t deadline = bo_clock_ms() + 5000;
	uint64_t first = 0;
	uint32_t k = 0;
	while (k == 0 && bo_clock_ms() < deadline)
		if ((k = ring_poll(shard_output(s), 8, &first)) == 0)
			ring_wait(shard_output(s), 10000000);
	cr_assert_eq(k, 1, "one EXPIRY record within 5 s");
	const shard_out *x = ring_slot(shard_output(s), first);
	cr_assert_eq(x->kind, SHARD_OUT_EXPIRY);
	cr_assert_eq(x->now_ms, T + 1000, "stamped with the tick's time");
	cr_assert_geq(x->batch, out[1].batch);
	cr_assert_eq(x->u.expiry.claim_id, hold->claim_id);
	cr_assert_eq(x->u.expiry.event_id, EV);
	cr_assert_eq(x->u.expiry.client_id, 5);
	cr_assert_eq(x->u.expiry.expires_at_ms, T + 1000);
	cr_assert_eq(x->u.expiry.seat_count, 2);
	cr_assert_eq(x->u.expiry.seats[0], 10);
	cr_assert_eq(x->u.expiry.seats[1], 11);
	ring_release(shard_output(s), 1);
	shard_stop(s);
	expect_output_empty(s);
	uint8_t st;
	uint64_t owner;
	cr_assert_eq(engine_seat(shard_engine(s), EV, 10, &st, &owner), 0);
	cr_assert_eq(st, BO_SEAT_FREE);
	shard_free(s);
}

/* ---- Stop ---------------------------------------------------------------- */

Test(shard, stop_applies_everything_already_published)
{
	shard_config cfg = small_config();
	const uint32_t per = 1024, groups = 4;
	bo_cmd *cmds = calloc(per, sizeof(bo_cmd));
	uint64_t *tags = calloc(per, sizeof(uint64_t));
	shard_out *out = calloc(per * groups + 16, sizeof(shard_out));
	cr_assert_not_null(cmds);
	cr_assert_not_null(tags);
	cr_assert_not_null(out);
	for (uint32_t i = 0; i < per; i++)
		cmds[i] = query_cmd();

	/* Published before the writer starts: a full backlog at stop time. */
	shard *s = new_shard(&cfg);
	for (uint32_t g = 0; g < groups; g++) {
		for (uint32_t i = 0; i < per; i++)
			tags[i] = g * per + i;
		cr_assert_eq(shard_submit(s, cmds, tags, per), 0);
	}
	cr_assert_eq(shard_start(s), 0);
	shard_stop(s);
	uint32_t n = collect(s, out, per * groups + 16, per * groups, 1000);
	cr_assert_eq(n, per * groups, "stop returned with %u of %u applied", n, per * groups);
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(out[i].tag, i);
	expect_output_empty(s);
	shard_free(s);

	/* Published while the writer runs (just started, polling, or asleep in
	 * its idle wait), stop right after. A fresh shard each round, so that
	 * only stop's own ordering is tested (restarts are tested above). */
	for (int round = 0; round < 100; round++) {
		s = new_shard(&cfg);
		cr_assert_eq(shard_start(s), 0);
		if (round % 2)
			sleep_ms(1); /* let the writer reach its idle wait first */
		uint32_t want = 1 + (uint32_t)round % 64;
		for (uint32_t i = 0; i < want; i++)
			tags[i] = i;
		cr_assert_eq(shard_submit(s, cmds, tags, want), 0);
		shard_stop(s);
		n = collect(s, out, per * groups + 16, want, 1000);
		cr_assert_eq(n, want, "round %d: stop returned with %u of %u applied", round, n,
			     want);
		expect_output_empty(s);
		shard_free(s);
	}
	free(cmds);
	free(tags);
	free(out);
}

/* ---- Routing ------------------------------------------------------------- */

Test(shard, shard_for_event_is_the_documented_stable_hash)
{
	for (uint64_t id = 0; id < 2000; id++) {
		uint64_t ev = id * 0x9E3779B97F4A7C15ull; /* spread over all 64 bits */
		uint8_t le[8];
		for (int i = 0; i < 8; i++)
			le[i] = (uint8_t)(ev >> (8 * i));
		uint64_t h = XXH3_64bits(le, sizeof(le));
		for (uint32_t count = 1; count <= 9; count++) {
			uint32_t sh = shard_for_event(ev, count);
			cr_assert_eq(sh, (uint32_t)(h % count), "event %#lx over %u shards",
				     (unsigned long)ev, count);
			cr_assert_eq(shard_for_event(ev, count), sh, "stable from call to call");
		}
	}
	cr_assert_eq(shard_for_event(12345, 1), 0);
}

/* Counts ids over 4 shards and checks each is within 10% of the mean. */
static void expect_balanced(const char *what, uint64_t first, uint64_t stride)
{
	const uint32_t shards = 4, ids = 10000;
	uint32_t count[4] = {0};
	for (uint32_t i = 0; i < ids; i++) {
		uint32_t sh = shard_for_event(first + i * stride, shards);
		cr_assert_lt(sh, shards);
		count[sh]++;
	}
	for (uint32_t sh = 0; sh < shards; sh++)
		cr_assert(count[sh] >= 2250 && count[sh] <= 2750, "%s: shard %u has %u of %u ids",
			  what, sh, count[sh], ids);
}

Test(shard, shard_for_event_spreads_ids_evenly)
{
	expect_balanced("ids 1..10000", 1, 1);
	expect_balanced("ids stepping by 4", 4, 4);	  /* would break id % 4 */
	expect_balanced("ids stepping by 2^32", 1ull << 32, 1ull << 32); /* low bits all 0 */
}

/* ---- Configuration ------------------------------------------------------- */

Test(shard, shard_new_rejects_bad_configs)
{
	const shard_config ok = small_config();
	shard_config bad[10];
	for (int i = 0; i < 10; i++)
		bad[i] = ok;
	bad[0].in_slots = 0;
	bad[1].in_slots = BO_BATCH_MAX + BO_BATCH_MAX / 2; /* not a power of two */
	bad[2].in_slots = BO_BATCH_MAX / 2;		   /* below one batch */
	bad[3].out_slots = BO_BATCH_MAX;		   /* below two batches */
	bad[4].out_slots = 3 * BO_BATCH_MAX;		   /* not a power of two */
	bad[5].out_slots = 0;
	bad[6].tick_ms = 0;
	bad[7].tick_ms = BO_TICK_MS + 1;
	bad[8].engine.seats_max = 0; /* the engine's config is checked too */
	bad[9].engine.idem_capacity = 3;
	for (int i = 0; i < 10; i++) {
		shard *s = (shard *)&bad[i]; /* must be overwritten */
		cr_assert_eq(shard_new(&bad[i], &s), -EINVAL, "config %d accepted", i);
		cr_assert_null(s, "config %d: *out must be NULL on failure", i);
	}
	/* The edges themselves are legal. */
	shard_config edge = ok;
	edge.tick_ms = 1;
	shard *s = new_shard(&edge);
	shard_free(s);
	edge.tick_ms = BO_TICK_MS;
	s = new_shard(&edge);
	shard_free(s);
	shard_config def;
	shard_config_default(&def);
	cr_assert_eq(def.in_slots, BO_RING_SLOTS_DEFAULT);
	cr_assert_eq(def.tick_ms, BO_TICK_MS);
	cr_assert_null(def.clock);
}

/* ---- A durable shard with snapshots and a follower ------------------------ */

typedef struct follow_ctx {
	follower *f;
	shard *s;
	atomic_bool done; /* the shard is stopped: a 0 after this is the end */
	uint64_t delivered, last_seq;
	int bad; /* 0, or why the follower thread stopped early */
} follow_ctx;

static void *follow_main(void *arg)
{
	follow_ctx *c = arg;
	for (;;) {
		bool done = atomic_load(&c->done);
		journal_record jr;
		int rc = follower_next(c->f, &jr, 20);
		if (rc == 0 && done)
			return NULL;
		if (rc == 0)
			continue;
		if (rc < 0 || jr.seq != c->last_seq + 1 || jr.seq > shard_durable_seq(c->s)) {
			c->bad = rc < 0 ? rc : -1;
			return NULL;
		}
		c->last_seq = jr.seq;
		c->delivered++;
	}
}

Test(shard, a_durable_shard_snapshots_while_a_follower_reads_every_record_once)
{
	char dir[PATH_MAX];
	int trc = tmpdir_make(dir, sizeof(dir), "bo-shard-test");
	cr_assert_eq(trc, 0, "mkdtemp: %s", strerror(-trc));
	shard_config cfg = small_config();
	cfg.data_dir = dir;
	cfg.snapshot_every = 64;
	cfg.prune = 0; /* the follower starts at seq 0 and may lag */
	cfg.journal.segment_bytes = 64u << 10;
	cfg.journal.buffer_bytes = 16u << 10;
	cfg.journal.payload_bytes_max = 8u << 10;
	shard *s = NULL;
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(&cfg, &s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM) {
		cr_log_info("io_uring refused by the kernel, skipped: %s", err);
		tmpdir_remove(dir);
		return;
	}
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	follow_ctx c = {.s = s};
	cr_assert_eq(follower_open(s, 0, &c.f, err, sizeof(err)), 0, "%s", err);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, follow_main, &c), 0);
	cr_assert_eq(shard_start(s), 0);

	bo_seatmap *m = new_map();
	bo_cmd create = create_cmd(m);
	cr_assert_eq(submit_one(s, &create, 0).status, BO_OK);
	for (uint32_t k = 0; k < 1200; k++) {
		bo_cmd b;
		memset(&b, 0, sizeof(b));
		b.op = k % 2 == 0 ? BO_OP_BLOCK : BO_OP_UNBLOCK;
		b.client_id = OP_CLIENT + 1;
		b.request_id = (uint64_t)k + 1;
		b.event_id = EV;
		b.seat_count = 1;
		b.seats[0] = (k / 2) % SEATS_PER_ROW;
		cr_assert_eq(submit_one(s, &b, k + 1).status, BO_OK, "command %u", k);
	}
	shard_stop(s);
	const uint64_t durable = shard_durable_seq(s);
	atomic_store(&c.done, true);
	pthread_join(t, NULL);
	shard_stats st;
	shard_stats_get(s, &st);
	cr_log_info("%" PRIu64 " records delivered of %" PRIu64 ", %" PRIu64 " snapshots", c.delivered, durable,
		    st.snapshots);
	cr_assert_eq(c.bad, 0, "the follower stopped at seq %" PRIu64 ": %d %s", c.last_seq, c.bad,
		     follower_error(c.f));
	cr_assert_eq(durable, 1201);
	cr_assert_eq(c.delivered, durable);
	cr_assert_geq(st.snapshots, 1, "no snapshot was taken");
	follower_close(c.f);
	shard_free(s);
	bo_seatmap_free(m);
	tmpdir_remove(dir);
}
