/*
 * stream.c — the random command stream of the PostgreSQL tests (see
 * stream.h). Moved here from tests/committer/committer_test.c so that the
 * to-postgres test drives the same stream.
 */
#include "tests/support/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include "base/clock.h"
#include "tests/support/cmd.h"
#include "tests/support/rng.h"

#define WAIT_MS 60000

static _Atomic int64_t stream_clock_ms = 1700000000000;

int64_t tstream_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&stream_clock_ms);
}

static uint32_t rnd(tstream_gen *g, uint32_t n)
{
	return (uint32_t)(trng_xorshift(&g->rng) % n);
}

/* Drains results, remembering claim ids. Returns how many came. */
static uint32_t drain(shard *s, tstream_gen *g)
{
	ring *o = shard_output(s);
	uint64_t first;
	uint32_t k = ring_poll(o, SHARD_OUT_POLL_MAX, &first), got = 0;
	for (uint32_t i = 0; i < k; i++) {
		const shard_out *out = ring_slot(o, first + i);
		if (out->kind != SHARD_OUT_RESULT)
			continue;
		got++;
		const bo_result *r = &out->u.result;
		if (r->status == BO_OK && r->claim_id &&
		    (r->op >= BO_OP_HOLD_SEATS && r->op <= BO_OP_HOLD_POOL)) {
			uint32_t slot = g->nclaims < 256 ? g->nclaims++ : rnd(g, 256);
			g->claims[slot] = r->claim_id;
			g->claim_event[slot] = r->event_id;
		}
	}
	ring_release(o, k);
	return got;
}

void tstream_submit_wait(shard *s, tstream_gen *g, const bo_cmd *c, uint32_t n)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (shard_submit(s, c, NULL, n) == -EBUSY) {
		drain(s, g);
		cr_assert_lt(bo_clock_ms(), deadline, "ring stayed full");
	}
	uint32_t got = 0;
	while (got < n) {
		uint32_t k = drain(s, g);
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
		bo_seatmap *m = tcmd_rows_map(4, 12, i == 2 ? 0 : 2, 20);
		m->category_count = 3;
		for (uint32_t k = 0; k < m->seat_count; k++)
			m->categories[k] = (uint8_t)(k % 3);
		bo_cmd c = tcmd_create(1, ++g->request, 100 + i, m);
		tstream_submit_wait(s, g, &c, 1);
		bo_seatmap_free(m);
	}
}

/* One random command. */
static bo_cmd random_cmd(tstream_gen *g)
{
	uint64_t ev = 100 + rnd(g, TSTREAM_EVENTS);
	uint64_t client = 10 + rnd(g, 6);
	/* On the clock's 100 ms grid: expiries fall exactly on batch times too. */
	uint32_t ttl = 1000 + 500 * rnd(g, 6);
	uint32_t pick = rnd(g, 100);
	uint64_t claim = 0;
	if (g->nclaims) {
		uint32_t k = rnd(g, g->nclaims);
		claim = g->claims[k];
		if (pick >= 40)
			ev = g->claim_event[k];
	}
	/* A repeat (or a conflict) of an earlier request. */
	if (rnd(g, 50) == 0 && g->request > 10) {
		bo_cmd c = tcmd(BO_OP_RELEASE, client, g->request - rnd(g, 5), ev);
		c.claim_id = claim;
		return c;
	}
	if (pick < 20) {
		uint32_t seats[4], n = 1 + rnd(g, 4);
		for (uint32_t i = 0; i < n; i++)
			seats[i] = rnd(g, 48);
		return tcmd_hold_seats(client, ++g->request, ev, seats, n, ttl);
	}
	if (pick < 35)
		return tcmd_hold_best(client, ++g->request, ev, (uint8_t)rnd(g, 3),
		                      (uint16_t)(1 + rnd(g, 4)), ttl);
	if (pick < 42) {
		bo_cmd c = tcmd(BO_OP_HOLD_POOL, client, ++g->request, ev);
		c.pool = (uint8_t)rnd(g, 2);
		c.quantity = (uint16_t)(1 + rnd(g, 5));
		c.ttl_ms = ttl;
		return c;
	}
	if (pick < 48) {
		uint32_t seat = rnd(g, 48);
		return tcmd_seats(rnd(g, 2) ? BO_OP_BLOCK : BO_OP_UNBLOCK, 2, ++g->request, ev,
		                  &seat, 1);
	}
	static const uint8_t ops[] = {BO_OP_EXTEND, BO_OP_RELEASE, BO_OP_CONFIRM, BO_OP_CONFIRM,
	                              BO_OP_CANCEL};
	bo_cmd c = tcmd(ops[rnd(g, sizeof(ops))], client, ++g->request, ev);
	c.claim_id = claim;
	c.ttl_ms = ttl;
	if (c.op == BO_OP_CONFIRM) {
		c.payref_len =
		        (uint8_t)snprintf(c.payref, sizeof(c.payref), "psp_%" PRIu64, g->request);
		if (rnd(g, 8) == 0) { /* bytes the text column must escape */
			c.payref[1] = '\\';
			c.payref[2] = (char)0xc3;
		}
	}
	return c;
}

/* `n` random commands in random batches, the clock moving 0..400 ms per
 * batch; calls between(k) every `every` commands (0: never). */
void tstream_run(shard *s, tstream_gen *g, uint32_t n, uint32_t every, void (*between)(uint32_t))
{
	bo_cmd cmds[32];
	for (uint32_t done = 0; done < n;) {
		uint32_t m = 1 + rnd(g, 32);
		if (m > n - done)
			m = n - done;
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = random_cmd(g);
		atomic_fetch_add(&stream_clock_ms, 100 * rnd(g, 5));
		tstream_submit_wait(s, g, cmds, m);
		uint32_t before = done;
		done += m;
		if (every && between && done / every != before / every)
			between(done);
	}
	/* Let every hold expire, journaled by an idle tick. */
	atomic_fetch_add(&stream_clock_ms, 10 * 60 * 1000);
	bo_cmd q = tcmd_query_avail(100);
	tstream_submit_wait(s, g, &q, 1);
}
