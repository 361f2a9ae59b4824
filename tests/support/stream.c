/*
 * stream.c — the random command stream of the PostgreSQL tests (see
 * stream.h). Moved here from tests/committer/committer_test.c so that the
 * to-postgres test drives the same stream; its commands come from
 * stream_gen.c.
 */
#include "tests/support/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include "base/clock.h"
#include "tests/support/cmd.h"

#define WAIT_MS 60000

static _Atomic int64_t stream_clock_ms = 1700000000000;

int64_t tstream_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&stream_clock_ms);
}

void tstream_submit_wait(shard *s, tstream_gen *g, const bo_cmd *c, uint32_t n)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (shard_submit(s, c, NULL, n) == -EBUSY) {
		tstream_drain(s, g);
		cr_assert_lt(bo_clock_ms(), deadline, "ring stayed full");
	}
	uint32_t got = 0;
	while (got < n) {
		uint32_t k = tstream_drain(s, g);
		got += k;
		if (k == 0) {
			cr_assert_null(shard_failed(s), "%s", shard_failed(s));
			cr_assert_lt(bo_clock_ms(), deadline, "%u of %u results", got, n);
			ring_wait(shard_output(s), 1000000);
		}
	}
}

void tstream_create_events(shard *s, tstream_gen *g)
{
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++g->request, TSTREAM_EVENT_FIRST + i, m);
		tstream_submit_wait(s, g, &c, 1);
		bo_seatmap_free(m);
	}
}

/* `n` random commands in random batches, the clock moving 0..400 ms per
 * batch; calls between(k) every `every` commands (0: never). */
void tstream_run(shard *s, tstream_gen *g, uint32_t n, uint32_t every, void (*between)(uint32_t))
{
	bo_cmd cmds[32];
	for (uint32_t done = 0; done < n;) {
		uint32_t m = 1 + tstream_rnd(g, 32);
		if (m > n - done)
			m = n - done;
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = tstream_random_cmd(g);
		atomic_fetch_add(&stream_clock_ms, 100 * tstream_rnd(g, 5));
		tstream_submit_wait(s, g, cmds, m);
		uint32_t before = done;
		done += m;
		if (every && between && done / every != before / every)
			between(done);
	}
	/* Let every hold expire, journaled by an idle tick. */
	atomic_fetch_add(&stream_clock_ms, 10 * 60 * 1000);
	bo_cmd q = tcmd_query_avail(TSTREAM_EVENT_FIRST);
	tstream_submit_wait(s, g, &q, 1);
}

shard *tstream_open_shard(const char *dir, uint64_t snapshot_every)
{
	shard_config cfg;
	tstream_shard_config(&cfg, dir, tstream_clock, snapshot_every, 64u << 10);
	char err[JOURNAL_ERR_LEN];
	shard *s = NULL;
	int rc = shard_open(&cfg, &s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("SKIP: io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	cr_assert_eq(shard_start(s), 0);
	return s;
}

committer *tstream_start_committer(shard *s, const char *dsn, uint32_t batch_records)
{
	committer_config cc;
	committer_config_default(&cc);
	cc.dsn = dsn;
	if (batch_records)
		cc.batch_records = batch_records;
	cc.retry_min_ms = 20;
	cc.retry_max_ms = 200;
	committer *c = NULL;
	char err[256];
	cr_assert_eq(committer_start(s, &cc, &c, err, sizeof(err)), 0, "%s", err);
	return c;
}
