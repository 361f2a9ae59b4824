/*
 * stream_gen.c — the random stream's commands (see stream_gen.h). Moved
 * out of stream.c, unchanged, so that a program without Criterion draws
 * the same stream.
 */
#include "tests/support/stream_gen.h"

#include <inttypes.h>
#include <stdio.h>

#include "tests/support/cmd.h"
#include "tests/support/rng.h"

uint32_t tstream_rnd(tstream_gen *g, uint32_t n)
{
	return (uint32_t)(trng_xorshift(&g->rng) % n);
}

bo_seatmap *tstream_event_map(uint32_t i)
{
	bo_seatmap *m = tcmd_rows_map(4, 12, i == 2 ? 0 : 2, 20);
	m->category_count = 3;
	for (uint32_t k = 0; k < m->seat_count; k++)
		m->categories[k] = (uint8_t)(k % 3);
	return m;
}

void tstream_remember(tstream_gen *g, uint64_t event_id, uint64_t claim_id, uint64_t client)
{
	uint32_t slot = g->nclaims < 256 ? g->nclaims++ : tstream_rnd(g, 256);
	g->claims[slot] = claim_id;
	g->claim_event[slot] = event_id;
	g->claim_client[slot] = client;
}

void tstream_note(tstream_gen *g, const bo_result *r)
{
	if (r->status == BO_OK && r->claim_id &&
	    (r->op >= BO_OP_HOLD_SEATS && r->op <= BO_OP_HOLD_POOL))
		tstream_remember(g, r->event_id, r->claim_id, r->client_id);
}

bo_cmd tstream_random_cmd(tstream_gen *g)
{
	uint64_t ev = TSTREAM_EVENT_FIRST + tstream_rnd(g, TSTREAM_EVENTS);
	uint64_t client = 10 + tstream_rnd(g, 6);
	/* On the clock's 100 ms grid: expiries fall exactly on batch times too. */
	uint32_t ttl = 1000 + 500 * tstream_rnd(g, 6);
	uint32_t pick = tstream_rnd(g, 100);
	uint64_t claim = 0, claim_client = client;
	if (g->nclaims) {
		uint32_t k = tstream_rnd(g, g->nclaims);
		claim = g->claims[k];
		if (pick >= 40)
			ev = g->claim_event[k];
		/* Mostly the claim's own client: another one is refused. */
		if (g->claim_client[k] != 0 && tstream_rnd(g, 5) != 0)
			claim_client = g->claim_client[k];
	}
	/* A repeat (or a conflict) of an earlier request. */
	if (tstream_rnd(g, 50) == 0 && g->request > 10) {
		bo_cmd c = tcmd(BO_OP_RELEASE, client, g->request - tstream_rnd(g, 5), ev);
		c.claim_id = claim;
		return c;
	}
	if (pick < 20) {
		uint32_t seats[4], n = 1 + tstream_rnd(g, 4);
		for (uint32_t i = 0; i < n; i++)
			seats[i] = tstream_rnd(g, 48);
		return tcmd_hold_seats(client, ++g->request, ev, seats, n, ttl);
	}
	if (pick < 35)
		return tcmd_hold_best(client, ++g->request, ev, (uint8_t)tstream_rnd(g, 3),
		                      (uint16_t)(1 + tstream_rnd(g, 4)), ttl);
	if (pick < 42) {
		bo_cmd c = tcmd(BO_OP_HOLD_POOL, client, ++g->request, ev);
		c.pool = (uint8_t)tstream_rnd(g, 2);
		c.quantity = (uint16_t)(1 + tstream_rnd(g, 5));
		c.ttl_ms = ttl;
		return c;
	}
	if (pick < 48) {
		uint32_t seat = tstream_rnd(g, 48);
		return tcmd_seats(tstream_rnd(g, 2) ? BO_OP_BLOCK : BO_OP_UNBLOCK, 2, ++g->request,
		                  ev, &seat, 1);
	}
	static const uint8_t ops[] = {BO_OP_EXTEND, BO_OP_RELEASE, BO_OP_CONFIRM, BO_OP_CONFIRM,
	                              BO_OP_CANCEL};
	bo_cmd c = tcmd(ops[tstream_rnd(g, sizeof(ops))], claim_client, ++g->request, ev);
	c.claim_id = claim;
	c.ttl_ms = ttl;
	if (c.op == BO_OP_CONFIRM) {
		c.payref_len =
		        (uint8_t)snprintf(c.payref, sizeof(c.payref), "psp_%" PRIu64, g->request);
		if (tstream_rnd(g, 8) == 0) { /* bytes the text column must escape */
			c.payref[1] = '\\';
			c.payref[2] = (char)0xc3;
		}
	}
	return c;
}

void tstream_shard_config(shard_config *cfg, const char *dir, shard_clock_fn clock, uint64_t snapshot_every,
			  uint32_t segment_bytes)
{
	shard_config_default(cfg);
	cfg->engine.seats_max = 1u << 14;
	cfg->engine.claims_max = 1u << 14;
	cfg->engine.idem_capacity = 1u << 14;
	cfg->engine.events_max = 16;
	cfg->in_slots = BO_BATCH_MAX;
	cfg->out_slots = 2 * BO_BATCH_MAX;
	cfg->clock = clock;
	cfg->data_dir = dir;
	cfg->snapshot_every = snapshot_every;
	cfg->retain_seq = 0;
	cfg->journal.segment_bytes = segment_bytes;
	cfg->journal.payload_bytes_max = 8u << 10; /* the stream's maps are small */
	cfg->journal.buffer_bytes = 16u << 10;
}

uint32_t tstream_drain(shard *s, tstream_gen *g)
{
	ring *o = shard_output(s);
	uint64_t first;
	uint32_t k = ring_poll(o, SHARD_OUT_POLL_MAX, &first), got = 0;
	for (uint32_t i = 0; i < k; i++) {
		const shard_out *out = ring_slot(o, first + i);
		if (out->kind != SHARD_OUT_RESULT)
			continue;
		got++;
		tstream_note(g, &out->u.result);
	}
	ring_release(o, k);
	return got;
}
