/*
 * shard_expiry_test.c — proves that a mass expiry on a durable shard is
 * delivered whole and never wedges the writer: more holds expire at one
 * instant than the output ring has slots, while none of the expiries may
 * be published before the journal has them. (Before expiries went out in
 * chunks, the writer waited forever for output room that only its own
 * unfinished batch was holding.) Then a restart must find every hold
 * expired.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/tmpdir.h"

static _Atomic int64_t fake_now = 1000000;
static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&fake_now);
}

enum { SEATS = 12000, HOLDS = 12000 };

/* Drains the output ring until `want` records of `kind` came or 20 s pass. */
static uint32_t drain(shard *s, uint8_t kind, uint32_t want)
{
	ring *out = shard_output(s);
	uint32_t got = 0;
	int64_t deadline = bo_clock_ms() + 20000;
	while (got < want && bo_clock_ms() < deadline) {
		uint64_t first;
		uint32_t n = ring_poll(out, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < n; i++)
			got += ((const shard_out *)ring_slot(out, first + i))->kind == kind;
		if (n)
			ring_release(out, n);
		else
			ring_wait(out, 1000000);
	}
	return got;
}

static void config(shard_config *cfg, const char *dir)
{
	shard_config_default(cfg);
	cfg->engine.seats_max = 1u << 16;
	cfg->engine.claims_max = 1u << 15;
	cfg->engine.idem_capacity = 1u << 15;
	cfg->out_slots = 2 * BO_BATCH_MAX; /* the smallest ring: 8192 < HOLDS */
	cfg->data_dir = dir;
	cfg->journal.sync = JOURNAL_SYNC_NONE_UNSAFE; /* durability order is what matters here */
	cfg->clock = fake_clock;
}

Test(shard_expiry, more_expiries_at_once_than_output_slots)
{
	char dir[PATH_MAX];
	int trc = tmpdir_make(dir, sizeof(dir), "bo-expiry");
	cr_assert_eq(trc, 0, "mkdtemp: %s", strerror(-trc));
	shard_config cfg;
	config(&cfg, dir);
	shard *s;
	char err[1024];
	cr_assert_eq(shard_open(&cfg, &s, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(shard_start(s), 0);

	bo_seatmap *m = tcmd_rows_map(SEATS / 100, 100, 0, 0);
	static bo_cmd cmds[HOLDS];
	bo_cmd c = tcmd_create(1, 1, 5, m);
	cr_assert_eq(shard_submit(s, &c, NULL, 1), 0);
	cr_assert_eq(drain(s, SHARD_OUT_RESULT, 1), 1);
	bo_seatmap_free(m);

	/* One hold per seat, all with the same expiry (one client each: the
	 * per-client limit is 16). */
	for (uint32_t i = 0; i < HOLDS; i++) {
		cmds[i] = (bo_cmd){.op = BO_OP_HOLD_SEATS, .client_id = 100 + i, .request_id = 1, .event_id = 5,
				   .seat_count = 1, .ttl_ms = 1000};
		cmds[i].seats[0] = i;
	}
	for (uint32_t i = 0; i < HOLDS; i += 1000) {
		while (shard_submit(s, cmds + i, NULL, 1000) != 0)
			drain(s, SHARD_OUT_RESULT, 0);
		cr_assert_eq(drain(s, SHARD_OUT_RESULT, 1000), 1000);
	}
	/* Every hold expires at the same instant. */
	atomic_store(&fake_now, 1000000 + 1000);
	cr_assert_eq(drain(s, SHARD_OUT_EXPIRY, HOLDS), HOLDS,
		     "the expiries did not all come out: the writer is stuck");
	cr_assert_null(shard_failed(s));
	bo_avail av;
	shard_stop(s);
	cr_assert_eq(engine_avail(shard_engine(s), 5, &av), 0);
	cr_assert_eq(av.by_state[BO_SEAT_FREE], SEATS);
	uint64_t digest = engine_digest(shard_engine(s));
	shard_free(s);

	/* Restart: the journal's TICK records rebuild the same state. */
	config(&cfg, dir);
	shard_recovery rec;
	cr_assert_eq(shard_open(&cfg, &s, &rec, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(engine_avail(shard_engine(s), 5, &av), 0);
	cr_assert_eq(av.by_state[BO_SEAT_FREE], SEATS, "holds came back after restart");
	cr_assert_eq(engine_digest(shard_engine(s)), digest, "recovered state differs");
	shard_free(s);
	cr_assert_eq(tmpdir_remove(dir), 0);
}
