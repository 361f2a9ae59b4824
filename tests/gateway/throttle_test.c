/*
 * throttle_test.c — the hot-event buckets (gateway/throttle.h) on a fake
 * clock (every take is given its instant), so every figure is exact:
 *
 *  1. burst, then rate: a rested bucket admits exactly `burst` takes at one
 *     instant, refuses the next with a hint of one interval; one more token
 *     is due per interval, and after burst / rate seconds of rest exactly
 *     `burst` again — never more;
 *  2. over 10 s of greedy taking every 100 µs, admitted == burst + rate * 10;
 *  3. the retry hint is exact: a take at now + hint ms is admitted, one at
 *     now + hint - 1 ms is refused (random rates, bursts and instants), and
 *     a refusal changes nothing;
 *  4. model: random takes of a few events at random instants agree, take by
 *     take, with a ten-line token bucket kept in integer nanoseconds;
 *  5. events are independent: one exhausted event leaves another whole;
 *  6. table full: memory is the table gw_throttle_new sized; once every
 *     slot belongs to an event still refilling, new events share their
 *     stripe's overflow bucket (20,000 fresh events at one instant admit at
 *     most slots + stripes, the rest refused and counted as overflow);
 *     once those buckets are full again their slots are reused;
 *  7. gw_throttle_foreach: the most refused first, at most `max`, events
 *     never refused left out;
 *  8. concurrent takers (4 threads, one shared hot event and one event of
 *     their own each, the instant frozen): the hot event admits exactly
 *     `burst` in total, each own event exactly `burst`, the totals add up.
 *     In the 'tsan' suite: under ThreadSanitizer this runs through
 *     tests/support/tsan_harness (Criterion cannot start there).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/throttle.h"
#include "tests/support/rng.h"

#if defined(__SANITIZE_THREAD__)
#include "tests/support/tsan_harness.h"
#else
#include <criterion/criterion.h>
#endif

#define MS 1000000ll
#define SEC 1000000000ll
#define T0 (1000 * SEC) /* an arbitrary start: nothing assumes the clock starts at 0 */

static gw_throttle *mk(uint32_t rate, uint32_t burst, uint32_t events_max)
{
	gw_throttle *t;
	int rc = gw_throttle_new(rate, burst, events_max, &t);
	cr_assert_eq(rc, 0, "gw_throttle_new(%u, %u, %u): %d", rate, burst, events_max, rc);
	return t;
}

Test(throttle, bad_arguments_are_refused)
{
	gw_throttle *t;
	cr_assert_eq(gw_throttle_new(0, 1, 1, &t), -EINVAL);
	cr_assert_eq(gw_throttle_new(1, 0, 1, &t), -EINVAL);
	cr_assert_eq(gw_throttle_new(1, 1, 0, &t), -EINVAL);
	cr_assert_eq(gw_throttle_new(GW_THROTTLE_RATE_MAX + 1, 1, 1, &t), -EINVAL);
	cr_assert_eq(gw_throttle_new(1, GW_THROTTLE_BURST_MAX + 1, 1, &t), -EINVAL);
	cr_assert_eq(gw_throttle_new(GW_THROTTLE_RATE_MAX, GW_THROTTLE_BURST_MAX, 1, &t), 0);
	gw_throttle_free(t);
	/* Off (NULL): nothing to free, nothing to report. */
	gw_throttle_free(NULL);
	gw_throttle_stats st = {.refused = 1};
	gw_throttle_stats_get(NULL, &st);
	cr_assert_eq(st.refused, 0);
	gw_throttle_foreach(NULL, 10, NULL, NULL);
}

/* ==== 1. Burst, then rate ================================================= */

Test(throttle, burst_then_one_token_per_interval)
{
	gw_throttle *t = mk(1000, 10, 16); /* one token per ms */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(gw_throttle_take(t, 7, T0), 0, "take %d of the burst", i);
	cr_assert_eq(gw_throttle_take(t, 7, T0), 1, "the 11th: due in one interval (1 ms)");
	cr_assert_eq(gw_throttle_take(t, 7, T0 + MS - 1), 1, "1 ns early");
	cr_assert_eq(gw_throttle_take(t, 7, T0 + MS), 0, "one token per interval");
	cr_assert_neq(gw_throttle_take(t, 7, T0 + MS), 0, "only one");
	cr_assert_eq(gw_throttle_take(t, 7, T0 + 3 * MS), 0);
	cr_assert_eq(gw_throttle_take(t, 7, T0 + 3 * MS), 0, "two intervals: two tokens");
	cr_assert_neq(gw_throttle_take(t, 7, T0 + 3 * MS), 0);
	/* Rest: a full bucket again after burst intervals, and no more than
	 * burst however long the rest. */
	int64_t later = T0 + 3600 * SEC;
	for (int i = 0; i < 10; i++)
		cr_assert_eq(gw_throttle_take(t, 7, later), 0, "take %d after an hour", i);
	cr_assert_neq(gw_throttle_take(t, 7, later), 0, "a bucket never holds more than burst");
	gw_throttle_stats st;
	gw_throttle_stats_get(t, &st);
	cr_assert_eq(st.admitted, 10 + 1 + 2 + 10);
	cr_assert_eq(st.refused, 5);
	cr_assert_eq(st.overflow_admitted + st.overflow_refused, 0);
	gw_throttle_free(t);
}

/* ==== 2. The rate over a long run ========================================= */

Test(throttle, long_run_admits_burst_plus_rate_times_seconds)
{
	const uint32_t rates[] = {1, 7, 1000, 20000, 333333};
	for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
		uint32_t rate = rates[k], burst = 50;
		gw_throttle *t = mk(rate, burst, 16);
		uint64_t admitted = 0;
		/* Greedy: every 100 µs, take until refused. */
		for (int64_t now = T0; now <= T0 + 10 * SEC; now += 100000)
			while (gw_throttle_take(t, 42, now) == 0)
				admitted++;
		/* The interval is whole ns, rounded up (throttle.h): 10 s admit
		 * burst + floor(10 s / interval) — rate * 10 when the interval
		 * divides 1e9, a little less otherwise (333333/s: 3001 ns,
		 * 0.03% less). */
		int64_t interval = (SEC + rate - 1) / rate;
		uint64_t want = burst + (uint64_t)(10 * SEC / interval);
		double real = (double)SEC / (double)interval;
		cr_assert(real <= rate && real >= rate * 0.999,
		          "rate %u: the rounding costs at most 0.1%% up to 1,000,000/s (%.3f/s)",
		          rate, real);
		cr_assert(admitted == want || admitted + 1 == want,
		          "rate %u burst %u over 10 s: admitted %" PRIu64 ", want %" PRIu64, rate,
		          burst, admitted, want);
		gw_throttle_free(t);
	}
}

/* ==== 3. The hint is exact ================================================ */

Test(throttle, retry_hint_is_exact)
{
	uint64_t rng = 0x5eed;
	for (int round = 0; round < 2000; round++) {
		uint32_t rate = 1 + (uint32_t)(trng_xorshift(&rng) % 5000);
		uint32_t burst = 1 + (uint32_t)(trng_xorshift(&rng) % 20);
		gw_throttle *t = mk(rate, burst, 16);
		int64_t now = T0 + (int64_t)(trng_xorshift(&rng) % SEC);
		/* Empty the bucket at random instants, then look at the hint. */
		uint32_t hint = 0;
		while ((hint = gw_throttle_take(t, 9, now)) == 0)
			now += (int64_t)(trng_xorshift(&rng) % 1000);
		int64_t interval = (SEC + rate - 1) / rate;
		cr_assert(hint >= 1 && (int64_t)hint <= (interval + MS - 1) / MS,
		          "rate %u: hint %u ms outside 1..ceil(interval)", rate, hint);
		/* A refusal changes nothing: ask again and again. */
		for (int i = 0; i < 3; i++)
			cr_assert_eq(gw_throttle_take(t, 9, now), hint);
		if (hint > 1)
			cr_assert_neq(gw_throttle_take(t, 9, now + (int64_t)(hint - 1) * MS), 0,
			              "rate %u burst %u: admitted a ms before the hint (%u ms)",
			              rate, burst, hint);
		cr_assert_eq(gw_throttle_take(t, 9, now + (int64_t)hint * MS), 0,
		             "rate %u burst %u: refused at the hint (%u ms)", rate, burst, hint);
		gw_throttle_free(t);
	}
}

/* ==== 4. Against a model ================================================== */

/* The model: credit in ns of refill, capped at burst intervals; a take
 * costs one interval. Rates that divide 1e9 keep the interval exact. */
typedef struct mbucket {
	int64_t credit_ns, at_ns;
} mbucket;

static int model_take(mbucket *b, int64_t interval, uint32_t burst, int64_t now)
{
	b->credit_ns += now - b->at_ns;
	if (b->credit_ns > (int64_t)burst * interval)
		b->credit_ns = (int64_t)burst * interval;
	b->at_ns = now;
	if (b->credit_ns < interval)
		return 0;
	b->credit_ns -= interval;
	return 1;
}

Test(throttle, agrees_with_a_model)
{
	const uint32_t rates[] = {1, 2, 5, 8, 10, 25, 1000, 20000, 1000000};
	uint64_t rng = 0xfeed;
	for (int round = 0; round < 200; round++) {
		uint32_t rate = rates[trng_xorshift(&rng) % (sizeof(rates) / sizeof(rates[0]))];
		uint32_t burst = 1 + (uint32_t)(trng_xorshift(&rng) % 64);
		int64_t interval = SEC / rate;
		gw_throttle *t = mk(rate, burst, 16);
		mbucket m[4];
		for (int e = 0; e < 4; e++)
			m[e] = (mbucket){.credit_ns = (int64_t)burst * interval, .at_ns = T0};
		int64_t now = T0;
		for (int i = 0; i < 5000; i++) {
			now += (int64_t)(trng_xorshift(&rng) % (uint64_t)(2 * interval / 3 + 1));
			int e = (int)(trng_xorshift(&rng) % 4);
			int want = model_take(&m[e], interval, burst, now);
			int got = gw_throttle_take(t, 100 + (uint64_t)e, now) == 0;
			cr_assert_eq(
			        got, want,
			        "round %d take %d: rate %u burst %u event %d: got %d, model %d",
			        round, i, rate, burst, e, got, want);
		}
		gw_throttle_free(t);
	}
}

/* ==== 5. Independent events =============================================== */

Test(throttle, a_hot_event_leaves_others_whole)
{
	gw_throttle *t = mk(100, 5, 64);
	for (int i = 0; i < 1000; i++)
		gw_throttle_take(t, 1, T0);
	for (uint64_t e = 2; e < 50; e++)
		for (int i = 0; i < 5; i++)
			cr_assert_eq(gw_throttle_take(t, e, T0), 0, "event %" PRIu64 " take %d", e,
			             i);
	gw_throttle_stats st;
	gw_throttle_stats_get(t, &st);
	cr_assert_eq(st.admitted, 5 + 48 * 5);
	cr_assert_eq(st.refused, 995);
	gw_throttle_free(t);
}

/* ==== 6. Table full ======================================================= */

Test(throttle, full_table_shares_overflow_buckets_then_reuses_slots)
{
	gw_throttle *t = mk(1000, 1, 1);
	gw_throttle_stats st;
	gw_throttle_stats_get(t, &st);
	cr_assert_eq(st.slots, GW_THROTTLE_STRIPES * GW_THROTTLE_PROBE, "the smallest table");
	/* 20,000 fresh events at one instant, one take each: every one
	 * empties its bucket (burst 1), so no slot can be handed on. */
	uint64_t admitted = 0;
	for (uint64_t e = 1; e <= 20000; e++)
		admitted += gw_throttle_take(t, e, T0) == 0;
	gw_throttle_stats_get(t, &st);
	cr_assert_leq(admitted, (uint64_t)st.slots + GW_THROTTLE_STRIPES,
	              "spraying event ids must not buy admissions: %" PRIu64, admitted);
	cr_assert_geq(admitted, (uint64_t)st.slots / 2, "the table was used: %" PRIu64, admitted);
	cr_assert_eq(st.admitted, admitted);
	cr_assert_eq(st.refused, 20000 - admitted);
	cr_assert_eq(st.overflow_refused, st.refused, "every refusal came from an overflow bucket");
	cr_assert_leq(st.overflow_admitted, GW_THROTTLE_STRIPES, "one token per overflow bucket");
	/* One interval later every bucket is full again: 200 new events get
	 * slots of their own (reused), each its whole burst. */
	for (uint64_t e = 100001; e <= 100200; e++)
		cr_assert_eq(gw_throttle_take(t, e, T0 + MS), 0, "event %" PRIu64, e);
	gw_throttle_stats st2;
	gw_throttle_stats_get(t, &st2);
	cr_assert_eq(st2.overflow_admitted, st.overflow_admitted, "none of them in overflow");
	cr_assert_geq(st2.reused, 200);
	cr_assert_eq(st2.slots, st.slots, "the table never grows");
	gw_throttle_free(t);
}

/* ==== 7. foreach ========================================================== */

typedef struct seen {
	uint64_t event[8], admitted[8], refused[8];
	uint32_t n;
} seen;

static void collect(void *ctx, uint64_t event, uint64_t admitted, uint64_t refused)
{
	seen *s = ctx;
	cr_assert_lt(s->n, 8);
	s->event[s->n] = event;
	s->admitted[s->n] = admitted;
	s->refused[s->n++] = refused;
}

Test(throttle, foreach_most_refused_first)
{
	gw_throttle *t = mk(10, 2, 64);
	const uint64_t ev[3] = {11, 22, 33};
	const int takes[3] = {5, 9, 2}; /* refused: 3, 7, 0 */
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < takes[k]; i++)
			gw_throttle_take(t, ev[k], T0);
	seen s = {0};
	gw_throttle_foreach(t, 10, collect, &s);
	cr_assert_eq(s.n, 2, "an event never refused is left out");
	cr_assert_eq(s.event[0], 22);
	cr_assert_eq(s.refused[0], 7);
	cr_assert_eq(s.admitted[0], 2);
	cr_assert_eq(s.event[1], 11);
	cr_assert_eq(s.refused[1], 3);
	s = (seen){0};
	gw_throttle_foreach(t, 1, collect, &s);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.event[0], 22);
	s = (seen){0};
	gw_throttle_foreach(t, 0, collect, &s);
	cr_assert_eq(s.n, 0);
	gw_throttle_free(t);
}

/* ==== 8. Concurrent takers ================================================ */

enum {
	THREADS = 4,
	TAKES = 20000,
	BURST = 1000
};

typedef struct taker {
	gw_throttle *t;
	uint64_t own;
	uint64_t hot_admitted, own_admitted;
	atomic_int *go;
} taker;

static void *taker_main(void *arg)
{
	taker *k = arg;
	while (!atomic_load(k->go))
		;
	for (int i = 0; i < TAKES; i++) {
		k->hot_admitted += gw_throttle_take(k->t, 1, T0) == 0;
		k->own_admitted += gw_throttle_take(k->t, k->own, T0) == 0;
	}
	return NULL;
}

Test(throttle, concurrent_takers_admit_exactly_the_burst)
{
	gw_throttle *t = mk(1000, BURST, 64);
	atomic_int go = 0;
	taker k[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		k[i] = (taker){.t = t, .own = 1000 + (uint64_t)i, .go = &go};
		cr_assert_eq(pthread_create(&th[i], NULL, taker_main, &k[i]), 0);
	}
	atomic_store(&go, 1);
	uint64_t hot = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		hot += k[i].hot_admitted;
		cr_assert_eq(k[i].own_admitted, BURST, "thread %d's own event", i);
	}
	cr_assert_eq(hot, BURST, "the shared hot event over %d threads", THREADS);
	gw_throttle_stats st;
	gw_throttle_stats_get(t, &st);
	cr_assert_eq(st.admitted + st.refused, 2ull * THREADS * TAKES);
	cr_assert_eq(st.admitted, (uint64_t)BURST * (THREADS + 1));
	gw_throttle_free(t);
}
