/*
 * vdrive.c — random commands through an engine into read models (see
 * vdrive.h).
 */
#include "tests/support/vdrive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/rng.h"

#define VDRIVE_CLIENTS 8u
#define VDRIVE_EXPIRIES_MAX 64u /* >= claims_max: one advance's expiries */

void vdrive_config(engine_config *cfg)
{
	/* Ten events of up to 120 seats would need 1,200 seats: some creates
	 * hit SEATS_FULL, and EVENTS_FULL before the ids run out. */
	*cfg = (engine_config){
	        .seats_max = 640, .claims_max = 48, .idem_capacity = 64, .events_max = 10};
}

static void die(const char *what)
{
	fprintf(stderr, "vdrive: %s\n", what);
	abort();
}

uint32_t vdrive_rnd(vdrive *d, uint32_t n)
{
	return (uint32_t)(trng_xorshift(&d->rng) % n);
}

void vdrive_init(vdrive *d, uint64_t seed, view_emit_fn emit, void *emit_ctx)
{
	memset(d, 0, sizeof(*d));
	d->rng = seed ? seed : 1;
	d->emit = emit;
	d->emit_ctx = emit_ctx;
	engine_config cfg;
	vdrive_config(&cfg);
	if (engine_new(&cfg, &d->e) != 0 || view_new(&cfg, &d->views[0]) != 0)
		die("engine_new or view_new failed");
	d->nviews = 1;
	d->now_ms = 1000000;
	engine_advance(d->e, d->now_ms, NULL, NULL);
}

void vdrive_free(vdrive *d)
{
	engine_free(d->e);
	for (uint32_t i = 0; i < d->nviews; i++)
		view_free(d->views[i]);
	for (uint32_t i = 0; i <= VDRIVE_EVENT_IDS; i++)
		bo_seatmap_free(d->maps[i]);
	memset(d, 0, sizeof(*d));
}

/* ---- Commands -------------------------------------------------------------- */

/* A seat map: 0..6 rows of 1..20 seats in runs of 1..4 categories, 0..3
 * pools (at least one without seats); one in twelve is invalid. */
static bo_seatmap *random_map(vdrive *d)
{
	uint32_t rows = vdrive_rnd(d, 7), lens[6], seats = 0;
	for (uint32_t r = 0; r < rows; r++)
		seats += lens[r] = 1 + vdrive_rnd(d, 20);
	uint32_t pools = vdrive_rnd(d, 4);
	if (rows == 0 && pools == 0)
		pools = 1;
	bo_seatmap *m = bo_seatmap_new(rows, seats, pools);
	if (!m)
		die("bo_seatmap_new failed");
	m->category_count = 1 + vdrive_rnd(d, 4);
	for (uint32_t r = 0; r < rows; r++)
		m->rows[r] = (bo_row_def){.section = (uint16_t)(r / 2), .seats = (uint16_t)lens[r]};
	uint8_t cat = 0;
	for (uint32_t s = 0; s < seats; s++) {
		if (vdrive_rnd(d, 4) == 0)
			cat = (uint8_t)vdrive_rnd(d, m->category_count);
		m->categories[s] = cat;
	}
	for (uint32_t p = 0; p < pools; p++)
		m->pool_capacity[p] = 5 + vdrive_rnd(d, 56);
	if (vdrive_rnd(d, 12) == 0 && seats > 0)
		m->categories[0] = (uint8_t)m->category_count; /* out of range: MAP_INVALID */
	return m;
}

static uint32_t event_seats(const vdrive *d, uint64_t ev)
{
	return ev <= VDRIVE_EVENT_IDS && d->maps[ev] ? d->maps[ev]->seat_count : 0;
}

/* n seats of ev, mostly neighbours (so holds collide), sometimes out of
 * range or repeated. */
static void random_seats(vdrive *d, uint64_t ev, bo_cmd *c, uint32_t n_max)
{
	uint32_t count = event_seats(d, ev);
	uint32_t n = 1 + vdrive_rnd(d, n_max);
	uint32_t base = count ? vdrive_rnd(d, count) : 0;
	c->seat_count = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++)
		c->seats[i] = count ? (base + i) % count : i;
	if (vdrive_rnd(d, 30) == 0)
		c->seats[vdrive_rnd(d, n)] = count + vdrive_rnd(d, 3); /* SEAT_RANGE */
	if (vdrive_rnd(d, 30) == 0 && n > 1)
		c->seats[1] = c->seats[0]; /* SEAT_DUPLICATE (allowed for queries) */
}

/* Mostly an event that exists, so that most commands get past the event
 * check; sometimes any id (unknown ones, or ones to create). */
static uint64_t random_event(vdrive *d)
{
	uint64_t id = 1 + vdrive_rnd(d, VDRIVE_EVENT_IDS);
	for (uint32_t tries = 0; tries < VDRIVE_EVENT_IDS && !d->maps[id] && vdrive_rnd(d, 8) != 0;
	     tries++)
		id = id % VDRIVE_EVENT_IDS + 1;
	return id;
}

/* A category or pool index of ev: mostly in range, sometimes one past. */
static uint32_t random_index(vdrive *d, uint32_t count)
{
	return vdrive_rnd(d, 12) == 0 ? count : vdrive_rnd(d, count ? count : 1);
}

/* A claim id for a claim op, and mostly (4 in 5) its own client as *client:
 * another client's claim op is refused (engine.h, "Ownership"). */
static uint64_t random_claim(vdrive *d, uint64_t *ev, uint64_t *client)
{
	if (d->nclaims == 0 || vdrive_rnd(d, 25) == 0)
		return (uint64_t)vdrive_rnd(d, 3) << 32 | vdrive_rnd(d, 64); /* mostly unknown */
	uint32_t k = vdrive_rnd(d, d->nclaims < VDRIVE_CLAIMS ? d->nclaims : VDRIVE_CLAIMS);
	if (vdrive_rnd(d, 20) != 0)
		*ev = d->claim_event[k];
	if (vdrive_rnd(d, 5) != 0)
		*client = d->claim_client[k];
	return d->claims[k];
}

static void claim_op(vdrive *d, bo_cmd *c, uint8_t op)
{
	c->op = op;
	c->claim_id = random_claim(d, &c->event_id, &c->client_id);
	if (op == BO_OP_EXTEND)
		c->ttl_ms = 1000 + 500 * vdrive_rnd(d, 8);
	if (op == BO_OP_CONFIRM) {
		c->payref_len = (uint8_t)(vdrive_rnd(d, 40) == 0 ? 0 : 1 + vdrive_rnd(d, 8));
		for (uint32_t i = 0; i < c->payref_len; i++)
			c->payref[i] = (char)('a' + vdrive_rnd(d, 26));
	}
}

/* A mutating command of a random kind; a CREATE gets a new map the caller
 * frees after the command was applied and fed. */
static bo_cmd random_mutation(vdrive *d)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.client_id = 1 + vdrive_rnd(d, VDRIVE_CLIENTS);
	c.request_id = ++d->request;
	c.event_id = random_event(d);
	const bo_seatmap *map = d->maps[c.event_id];
	uint32_t pick = vdrive_rnd(d, 100);
	uint32_t ttl = 1000 + 500 * vdrive_rnd(d, 8);
	if (pick < 6) {
		c.op = BO_OP_CREATE_EVENT;
		c.event_id = 1 + vdrive_rnd(d, VDRIVE_EVENT_IDS);
		c.map = random_map(d);
	} else if (pick < 26) {
		c.op = BO_OP_HOLD_SEATS;
		c.ttl_ms = ttl;
		random_seats(d, c.event_id, &c, 6);
	} else if (pick < 38) {
		c.op = BO_OP_HOLD_BEST;
		c.ttl_ms = ttl;
		c.category = (uint8_t)random_index(d, map ? map->category_count : 1);
		c.quantity = (uint16_t)(1 + vdrive_rnd(d, 6));
	} else if (pick < 50) {
		c.op = BO_OP_HOLD_POOL;
		c.ttl_ms = ttl;
		c.pool = (uint8_t)random_index(d, map ? map->pool_count : 1);
		c.quantity = (uint16_t)(1 + vdrive_rnd(d, 20));
	} else if (pick < 56) {
		claim_op(d, &c, BO_OP_EXTEND);
	} else if (pick < 66) {
		claim_op(d, &c, BO_OP_RELEASE);
	} else if (pick < 80) {
		claim_op(d, &c, BO_OP_CONFIRM);
	} else if (pick < 88) {
		claim_op(d, &c, BO_OP_CANCEL);
		if (d->nbookings > 0 && vdrive_rnd(d, 5) != 0) {
			uint32_t k = vdrive_rnd(d, d->nbookings);
			c.claim_id = d->bookings[k];
			c.event_id = d->booking_event[k];
			if (vdrive_rnd(d, 5) != 0)
				c.client_id = d->booking_client[k];
		}
	} else if (pick < 94 || d->nblocks == 0 || vdrive_rnd(d, 4) == 0) {
		c.op = pick < 94 ? BO_OP_BLOCK : BO_OP_UNBLOCK;
		c.client_id = 99;
		random_seats(d, c.event_id, &c, 4);
	} else {
		/* The seats of an earlier block, so that unblocks succeed. */
		uint32_t k = vdrive_rnd(d, d->nblocks);
		uint64_t request = c.request_id;
		c = d->blocks[k];
		c.op = BO_OP_UNBLOCK;
		c.request_id = request;
		d->blocks[k] = d->blocks[--d->nblocks];
	}
	return c;
}

static bo_cmd random_command(vdrive *d)
{
	uint32_t pick = vdrive_rnd(d, 100);
	if (pick < 5)
		return vdrive_query(d);
	if (pick < 10 && d->nrecent > 0) {
		/* The same (client, request): a replay, or a conflict when the
		 * content differs. */
		bo_cmd c = d->recent[vdrive_rnd(d, d->nrecent)];
		if (vdrive_rnd(d, 3) == 0)
			c.ttl_ms += 500;
		return c;
	}
	bo_cmd c = random_mutation(d);
	if (c.op != BO_OP_CREATE_EVENT) {
		uint32_t k =
		        d->nrecent < VDRIVE_RECENT ? d->nrecent++ : vdrive_rnd(d, VDRIVE_RECENT);
		d->recent[k] = c;
	}
	return c;
}

bo_cmd vdrive_query(vdrive *d)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	/* 0 and one past the ids: never an event. */
	c.event_id = vdrive_rnd(d, 10) == 0 ? vdrive_rnd(d, VDRIVE_EVENT_IDS + 2) : random_event(d);
	if (vdrive_rnd(d, 2) == 0) {
		c.op = BO_OP_QUERY_AVAIL;
		return c;
	}
	c.op = BO_OP_QUERY_SEATS;
	random_seats(d, c.event_id, &c, BO_QUERY_SEATS_MAX);
	uint32_t odd = vdrive_rnd(d, 20);
	if (odd == 0)
		c.seat_count = 0; /* SEAT_COUNT */
	else if (odd == 1)
		c.seat_count =
		        BO_QUERY_SEATS_MAX + 1 + (uint8_t)vdrive_rnd(d, 100); /* SEAT_COUNT */
	return c;
}

/* ---- Batches --------------------------------------------------------------- */

static void note_result(vdrive *d, const bo_cmd *c, const bo_result *r)
{
	d->status[r->status]++;
	d->replays += r->replayed;
	if (r->status == BO_OK && !r->replayed)
		d->ok[r->op]++;
	if (r->status != BO_OK || r->replayed)
		return;
	if (r->op == BO_OP_CREATE_EVENT) {
		if (d->maps[r->event_id] || bo_seatmap_dup(c->map, &d->maps[r->event_id]) != 0)
			die("a second create of one id, or bo_seatmap_dup failed");
	} else if (r->op == BO_OP_BLOCK) {
		uint32_t k =
		        d->nblocks < VDRIVE_RECENT ? d->nblocks++ : vdrive_rnd(d, VDRIVE_RECENT);
		d->blocks[k] = *c;
	} else if (r->op == BO_OP_CONFIRM) {
		uint32_t k = d->nbookings < VDRIVE_CLAIMS ? d->nbookings++
		                                          : vdrive_rnd(d, VDRIVE_CLAIMS);
		d->bookings[k] = r->claim_id;
		d->booking_event[k] = r->event_id;
		d->booking_client[k] = r->client_id;
	} else if (r->op == BO_OP_CANCEL) {
		for (uint32_t k = 0; k < d->nbookings; k++)
			if (d->bookings[k] == r->claim_id) {
				d->nbookings--;
				d->bookings[k] = d->bookings[d->nbookings];
				d->booking_event[k] = d->booking_event[d->nbookings];
				d->booking_client[k] = d->booking_client[d->nbookings];
				break;
			}
	} else if (r->op >= BO_OP_HOLD_SEATS && r->op <= BO_OP_HOLD_POOL) {
		uint32_t k =
		        d->nclaims < VDRIVE_CLAIMS ? d->nclaims++ : vdrive_rnd(d, VDRIVE_CLAIMS);
		d->claims[k] = r->claim_id;
		d->claim_event[k] = r->event_id;
		d->claim_client[k] = r->client_id;
	}
}

typedef struct expiry_buf {
	uint32_t n;
	bo_expiry x[VDRIVE_EXPIRIES_MAX];
} expiry_buf;

static void collect(void *ctx, const bo_expiry *x)
{
	expiry_buf *b = ctx;
	if (b->n == VDRIVE_EXPIRIES_MAX)
		die("more expiries than claims_max");
	b->x[b->n++] = *x;
}

void vdrive_batch(vdrive *d, uint32_t commands_max)
{
	/* Mostly small steps; now and then past every hold's lifetime. */
	d->now_ms += vdrive_rnd(d, 10) == 0 ? 4000 + vdrive_rnd(d, 3000) : vdrive_rnd(d, 700);
	expiry_buf xs = {0};
	uint32_t changes = engine_advance(d->e, d->now_ms, collect, &xs);
	/* The shard journals one TICK for an advance that changed anything;
	 * its expiries carry that record's seq. */
	uint64_t tick_seq = changes > 0 ? ++d->seq : 0;
	for (uint32_t i = 0; i < d->nviews; i++) {
		view_batch_begin(d->views[i]);
		for (uint32_t k = 0; k < xs.n; k++)
			view_add_expiry(d->views[i], &xs.x[k], tick_seq, d->now_ms);
	}
	d->expiries += xs.n;
	uint32_t n = 1 + vdrive_rnd(d, commands_max);
	for (uint32_t k = 0; k < n; k++) {
		bo_cmd c = random_command(d);
		bo_result r;
		engine_apply(d->e, &c, &r);
		uint64_t seq = bo_op_mutates(c.op) && c.client_id != 0 ? ++d->seq : 0;
		for (uint32_t i = 0; i < d->nviews; i++)
			view_add_result(d->views[i], &r, &c, seq, d->now_ms);
		note_result(d, &c, &r);
		if (c.op == BO_OP_CREATE_EVENT)
			bo_seatmap_free((bo_seatmap *)c.map);
	}
	d->commands += n;
	for (uint32_t i = 0; i < d->nviews; i++)
		view_batch_end(d->views[i], i == 0 ? d->emit : NULL, d->emit_ctx);
	d->batches++;
}
