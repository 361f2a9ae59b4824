/*
 * model_test.c — model-based test of the engine (engine/engine.h).
 *
 * What it proves: for long random command streams, every answer of the engine
 * and its whole observable state equal those of a deliberately simple
 * reference model of the "Semantics" block of engine.h, after every single
 * command. Compared after each command: status, detail, the result fields the
 * contract defines for that op (seats and their order, quantity, pool,
 * expires_at, claim ids, query answers), then every seat's state and owning
 * claim (engine_seat), availability (engine_avail), active holds per client,
 * the engine's counters, and after each engine_advance() the expiries it
 * reported (same holds, same order, same fields). Replays must return the
 * first answer verbatim with replayed = 1, and replays, conflicts, queries
 * and rejected ops must leave engine_digest() unchanged. For some seeds the
 * same stream also drives a second engine that must answer identically and
 * end every batch with the same digest (determinism).
 *
 * How: a seed feeds a splitmix64 generator that builds a small world (1-4
 * events of a few rows of 3..20 seats, 1..4 categories, 0..2 pools, 1..4
 * clients) and tiny engine_config values (claims_max 8..256, idem_capacity
 * 4..256, events_max 1..4, sometimes a low seats_max) so that every limit and
 * the idempotency window's eviction by count and by age are hit; a third of
 * the seeds "hoard" (long ttls, small clock steps, few clients) so holds pile
 * up to BO_HOLDS_PER_CLIENT_MAX and extensions reach the lifetime bound.
 * Commands are applied in batches as a shard does: engine_advance(now), then
 * 1..8 engine_apply(). The generator reads the model to aim most commands at
 * something that exists (free seats, live holds, expired holds, bookings) and
 * mixes in taken, duplicate and out-of-range seats, impossible quantities,
 * bogus and recycled claim ids, bad ttls/ops/clients, claim ops mostly by
 * the claim's own client and sometimes by another (with or without the
 * operator flag, or the legacy any-client flag), repeats of earlier
 * (client, request) pairs with the same content (sometimes with unused
 * fields scrambled) or different content, and clock moves of 0, small, large,
 * backwards, and exactly onto expiry and window-age instants.
 *
 * The model is flat arrays and linear scans; best-available enumerates every
 * block and takes the smallest key of the contract. It does not predict claim
 * ids: it takes the id the engine returns for a new hold after checking it is
 * non-zero and follows the slot rule (a fresh slot while any is left, else the
 * slot of the claim that ended first, with a new generation).
 *
 * Where engine.h is silent the model takes the reading that is sensible and
 * says so at the spot: a map with neither seats nor pools is invalid (a rule
 * of bo_seatmap_check), and a map whose counts exceed the limits is compared
 * by its counts alone (its arrays are never read).
 *
 * So that agreement is not vacuous, each full-size share of the seeds must
 * have produced every outcome in check_coverage() (each rule's failure, each
 * limit, replays, conflicts, re-execution after eviction, expiries, confirms
 * after expiry, recycled slots, claim ops refused to another client and
 * allowed to an operator or a legacy record). A crash (engine assert, sanitizer) prints the
 * seed and command under way from a signal/sanitizer death handler.
 *
 * Environment: BO_MODEL_SEEDS (default 200, split over four tests),
 * BO_MODEL_COMMANDS (per seed, default 10000), BO_MODEL_SEED_FIRST (default
 * 1), BO_MODEL_SEED (run exactly that seed, in model/part0),
 * BO_MODEL_TRACE=1 (print every command and answer), BO_MODEL_STATS=1
 * (print the outcome histogram). On a mismatch the seed, the command index,
 * the command, expected and actual values and a replay command line are
 * printed, then the test fails.
 */
#include <criterion/criterion.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

/* ---- The size of the test world -------------------------------------------
 * Small on purpose: few clients reach BO_HOLDS_PER_CLIENT_MAX, few seats make
 * seats collide, and a full-state comparison after every command stays cheap. */

#define W_CLIENTS 4u   /* client ids 1..W_CLIENTS (0 is the invalid client) */
#define W_EVENT_IDS 6u /* event ids 1..W_EVENT_IDS are created; events_max <= 4 */
#define W_ROWS_MAX 4u
#define W_ROW_SEATS_MIN 3u
#define W_ROW_SEATS_MAX 20u
/* +1: the "seat_count one more than the rows" corruption needs a category. */
#define W_SEATS_MAX (W_ROWS_MAX * W_ROW_SEATS_MAX + 1u)
/* +1: the "pool_count over the limit" corruption needs a capacity. */
#define W_POOLS_MAX (BO_POOLS_PER_EVENT_MAX + 1u)
#define W_EVENTS_MAX 4u
#define W_CLAIMS_MAX 256u /* largest claims_max used: the model scans claims linearly */
#define W_IDEM_MAX 256u   /* largest idem_capacity used */
#define W_HISTORY 1024u   /* mutating commands remembered for repeats */
#define W_STALE 64u       /* ids of recycled claims remembered */
#define W_PARTS 4u        /* the default seeds are split over this many tests */

_Static_assert(W_IDEM_MAX <= W_HISTORY, "repeats can reach past the window");
_Static_assert(W_SEATS_MAX <= 255, "model seat lists use small counts");

/* ---- Random numbers: splitmix64 -------------------------------------------- */

static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- Generated seat maps ----------------------------------------------------
 * A map with its arrays inline, so a command (and its copy in the history)
 * owns everything it points at. */

typedef struct gen_map {
	bo_seatmap map; /* points into the arrays below once bound */
	bo_row_def rows[W_ROWS_MAX];
	uint8_t categories[W_SEATS_MAX];
	uint32_t pool_capacity[W_POOLS_MAX];
} gen_map;

static void gen_map_bind(gen_map *g)
{
	g->map.rows = g->rows;
	g->map.categories = g->categories;
	g->map.pool_capacity = g->pool_capacity;
}

/* A command as sent, with the map it borrows (CREATE_EVENT). */
typedef struct sent_cmd {
	bo_cmd cmd;
	gen_map map;
	uint8_t has_map; /* cmd.map == &map.map */
} sent_cmd;

static void sent_bind(sent_cmd *s)
{
	gen_map_bind(&s->map);
	if (s->has_map)
		s->cmd.map = &s->map.map;
}

/* ---- The reference model ---------------------------------------------------- */

enum m_claim_state {
	MC_ACTIVE = 1, /* hold, now < expires_at */
	MC_BOOKED,     /* confirmed */
	MC_EXPIRED,    /* hold expired; confirmable while its slot is not recycled */
	MC_RELEASED,
	MC_CANCELLED,
};

/* One engine claim slot. The model has one entry per slot the engine has
 * used; a recycled slot's entry is overwritten by the new claim. */
typedef struct m_claim {
	uint64_t id;
	uint64_t event_id;
	uint64_t client_id;
	int64_t created_ms;
	int64_t expires_at_ms;
	uint64_t ended_seq; /* order in which claims ended: FIFO of slot reuse */
	uint8_t state;      /* m_claim_state */
	uint8_t is_pool;
	uint8_t pool;
	uint8_t seat_count;
	uint32_t quantity; /* pool tickets, or seat_count */
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
} m_claim;

typedef struct m_event {
	uint64_t id;
	uint32_t row_count;
	uint32_t seat_count;
	uint32_t pool_count;
	uint32_t category_count;
	uint32_t row_first[W_ROWS_MAX];
	uint32_t row_len[W_ROWS_MAX];
	uint8_t category[W_SEATS_MAX];
	uint8_t state[W_SEATS_MAX];  /* bo_seat_state */
	uint64_t claim[W_SEATS_MAX]; /* holding/booking claim, 0 when free/blocked */
	uint32_t pool_capacity[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_held[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_booked[BO_POOLS_PER_EVENT_MAX];
} m_event;

/* An idempotency window entry: the command as first applied and the engine's
 * first answer (already checked against the model). */
typedef struct m_idem {
	sent_cmd sent;
	bo_result result;
	int64_t at_ms;
} m_idem;

typedef struct model {
	engine_config cfg;
	int64_t now_ms;
	m_event events[W_EVENTS_MAX];
	uint32_t event_count;
	uint32_t seats_total;
	m_claim claims[W_CLAIMS_MAX];
	uint32_t slots_used; /* fresh slots taken so far == entries in claims[] */
	uint64_t ended_seq;
	uint64_t expired_total;
	m_idem idem[W_IDEM_MAX]; /* ring: entry n lives at n % idem_capacity */
	uint64_t idem_stored;    /* entries ever stored */
} model;

static m_event *m_event_find(model *m, uint64_t id)
{
	for (uint32_t i = 0; i < m->event_count; i++)
		if (m->events[i].id == id && id != 0)
			return &m->events[i];
	return NULL;
}

static m_claim *m_claim_find(model *m, uint64_t id)
{
	if (id == 0)
		return NULL;
	for (uint32_t i = 0; i < m->slots_used; i++)
		if (m->claims[i].id == id)
			return &m->claims[i];
	return NULL;
}

static int m_claim_ended(const m_claim *c)
{
	return c->state == MC_EXPIRED || c->state == MC_RELEASED || c->state == MC_CANCELLED;
}

static uint32_t m_client_holds(const model *m, uint64_t client)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < m->slots_used; i++)
		if (m->claims[i].state == MC_ACTIVE && m->claims[i].client_id == client)
			n++;
	return n;
}

/* The claims[] entry a new claim takes: a fresh slot while one is left, else
 * the slot whose claim ended first. -1 when every slot is alive. */
static int m_claim_slot(const model *m)
{
	if (m->slots_used < m->cfg.claims_max)
		return (int)m->slots_used;
	int best = -1;
	for (uint32_t i = 0; i < m->slots_used; i++) {
		if (!m_claim_ended(&m->claims[i]))
			continue;
		if (best < 0 || m->claims[i].ended_seq < m->claims[best].ended_seq)
			best = (int)i;
	}
	return best;
}

static void m_claim_end(model *m, m_claim *c, uint8_t state)
{
	c->state = state;
	c->ended_seq = ++m->ended_seq;
}

/* Seats (or pool tickets) of a claim go back to free. */
static void m_claim_free_inventory(model *m, const m_claim *c, uint8_t was)
{
	m_event *ev = m_event_find(m, c->event_id);
	assert(ev != NULL);
	if (c->is_pool) {
		uint32_t *n =
		        was == MC_BOOKED ? &ev->pool_booked[c->pool] : &ev->pool_held[c->pool];
		assert(*n >= c->quantity);
		*n -= c->quantity;
		return;
	}
	for (uint32_t i = 0; i < c->seat_count; i++) {
		assert(ev->claim[c->seats[i]] == c->id);
		ev->state[c->seats[i]] = BO_SEAT_FREE;
		ev->claim[c->seats[i]] = 0;
	}
}

static int m_map_valid(const bo_seatmap *map)
{
	if (map == NULL)
		return 0;
	if (map->row_count > BO_ROWS_PER_EVENT_MAX || map->pool_count > BO_POOLS_PER_EVENT_MAX)
		return 0;
	if (map->category_count > BO_CATEGORIES_MAX || map->seat_count > BO_SEATS_PER_EVENT_MAX)
		return 0;
	/* Not written in engine.h, but bo_seatmap_check (which the contract
	 * defers to) has it and it is sensible: an event must sell something. */
	if (map->seat_count == 0 && map->pool_count == 0)
		return 0;
	uint64_t sum = 0;
	for (uint32_t r = 0; r < map->row_count; r++) {
		if (map->rows[r].section >= BO_SECTIONS_PER_EVENT_MAX)
			return 0;
		if (map->rows[r].seats < 1 || map->rows[r].seats > BO_SEATS_PER_ROW_MAX)
			return 0;
		sum += map->rows[r].seats;
	}
	if (sum != map->seat_count)
		return 0;
	for (uint32_t s = 0; s < map->seat_count; s++)
		if (map->categories[s] >= map->category_count)
			return 0;
	for (uint32_t p = 0; p < map->pool_count; p++)
		if (map->pool_capacity[p] < 1 || map->pool_capacity[p] > BO_POOL_CAPACITY_MAX)
			return 0;
	/* The description bound (base/types.h): 4 bytes a row, 3 a category
	 * run (a seat starts one when it opens its row or changes category), 4
	 * a pool. The generator's maps stay far below it; engine_test.c and
	 * codec_test.c probe the edge. */
	uint64_t desc = 4ull * map->row_count + 4ull * map->pool_count;
	uint32_t s = 0;
	for (uint32_t r = 0; r < map->row_count; r++)
		for (uint32_t k = 0; k < map->rows[r].seats; k++, s++)
			if (k == 0 || map->categories[s] != map->categories[s - 1])
				desc += 3;
	return desc <= BO_MAP_DESC_BYTES_MAX;
}

static int m_map_equal(const bo_seatmap *a, const bo_seatmap *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->row_count != b->row_count || a->seat_count != b->seat_count ||
	    a->pool_count != b->pool_count || a->category_count != b->category_count)
		return 0;
	/* Arrays sized by counts beyond the limits are never read (they could be
	 * any size): such a map's content is its counts. */
	if (a->row_count > BO_ROWS_PER_EVENT_MAX || a->seat_count > BO_SEATS_PER_EVENT_MAX ||
	    a->pool_count > BO_POOLS_PER_EVENT_MAX)
		return 1;
	for (uint32_t r = 0; r < a->row_count; r++)
		if (a->rows[r].section != b->rows[r].section ||
		    a->rows[r].seats != b->rows[r].seats)
			return 0;
	if (memcmp(a->categories, b->categories, a->seat_count) != 0)
		return 0;
	return memcmp(a->pool_capacity, b->pool_capacity, a->pool_count * sizeof(uint32_t)) == 0;
}

static int m_seats_equal(const bo_cmd *a, const bo_cmd *b)
{
	uint32_t n = a->seat_count < BO_SEATS_PER_HOLD_MAX ? a->seat_count : BO_SEATS_PER_HOLD_MAX;
	return a->seat_count == b->seat_count && memcmp(a->seats, b->seats, n * 4u) == 0;
}

/* Same content: every field the op uses (engine.h, "Idempotency"). */
static int m_content_equal(const bo_cmd *a, const bo_cmd *b)
{
	if (a->op != b->op || a->event_id != b->event_id)
		return 0;
	switch (a->op) {
	case BO_OP_CREATE_EVENT:
		/* Only a valid map is content: every invalid map (NULL too) gets
		 * the same answer, and the journal records such a command
		 * without its map (engine.h, "Idempotency"). */
		if (!m_map_valid(a->map) || !m_map_valid(b->map))
			return !m_map_valid(a->map) && !m_map_valid(b->map);
		return m_map_equal(a->map, b->map);
	case BO_OP_HOLD_SEATS:
		return a->ttl_ms == b->ttl_ms && m_seats_equal(a, b);
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		return m_seats_equal(a, b);
	case BO_OP_HOLD_BEST:
		return a->category == b->category && a->quantity == b->quantity &&
		       a->ttl_ms == b->ttl_ms;
	case BO_OP_HOLD_POOL:
		return a->pool == b->pool && a->quantity == b->quantity && a->ttl_ms == b->ttl_ms;
	case BO_OP_EXTEND:
		return a->claim_id == b->claim_id && a->ttl_ms == b->ttl_ms;
	case BO_OP_RELEASE:
	case BO_OP_CANCEL:
		/* The operator flag is content here (and only here); the
		 * legacy any-client flag never is (engine.h, "Idempotency"). */
		return a->claim_id == b->claim_id &&
		       (a->flags & BO_CMD_F_OPERATOR) == (b->flags & BO_CMD_F_OPERATOR);
	case BO_OP_CONFIRM: {
		uint32_t n = a->payref_len < BO_PAYREF_LEN_MAX ? a->payref_len : BO_PAYREF_LEN_MAX;
		return a->claim_id == b->claim_id && a->payref_len == b->payref_len &&
		       memcmp(a->payref, b->payref, n) == 0;
	}
	default:
		assert(0 && "not a mutating op");
		return 0;
	}
}

/* The window entry answering (client, request) now, or NULL. The newest entry
 * with the key decides: an older one with the same key is older still. */
static m_idem *m_idem_find(model *m, uint64_t client, uint64_t request)
{
	uint64_t cap = m->cfg.idem_capacity;
	uint64_t n = m->idem_stored < cap ? m->idem_stored : cap;
	for (uint64_t k = 0; k < n; k++) {
		m_idem *e = &m->idem[(m->idem_stored - 1 - k) % cap];
		if (e->sent.cmd.client_id != client || e->sent.cmd.request_id != request)
			continue;
		return m->now_ms - e->at_ms <= (int64_t)BO_IDEM_WINDOW_MS ? e : NULL;
	}
	return NULL;
}

static uint32_t m_idem_entries(const model *m)
{
	uint64_t cap = m->cfg.idem_capacity;
	uint64_t n = m->idem_stored < cap ? m->idem_stored : cap;
	uint32_t live = 0;
	for (uint64_t k = 0; k < n; k++) {
		const m_idem *e = &m->idem[(m->idem_stored - 1 - k) % cap];
		live += m->now_ms - e->at_ms <= (int64_t)BO_IDEM_WINDOW_MS;
	}
	return live;
}

static void m_idem_store(model *m, const sent_cmd *s, const bo_result *res)
{
	m_idem *e = &m->idem[m->idem_stored % m->cfg.idem_capacity];
	e->sent = *s;
	sent_bind(&e->sent);
	e->result = *res;
	e->at_ms = m->now_ms;
	m->idem_stored++;
}

static void m_avail(const m_event *ev, bo_avail *a)
{
	memset(a, 0, sizeof(*a));
	for (uint32_t s = 0; s < ev->seat_count; s++) {
		a->by_state[ev->state[s]]++;
		if (ev->state[s] == BO_SEAT_FREE)
			a->free_by_category[ev->category[s]]++;
	}
	for (uint32_t p = 0; p < ev->pool_count; p++) {
		a->pool_capacity[p] = ev->pool_capacity[p];
		a->pool_free[p] = ev->pool_capacity[p] - ev->pool_held[p] - ev->pool_booked[p];
	}
	a->category_count = (uint8_t)ev->category_count;
	a->pool_count = (uint8_t)ev->pool_count;
}

static int m_free(const m_event *ev, uint32_t s)
{
	return ev->state[s] == BO_SEAT_FREE;
}

/* Best available, by brute force over every block (engine.h). Writes the n
 * chosen seats in ascending order. The caller made sure enough are free. */
static void m_best(const m_event *ev, uint32_t cat, uint32_t n, uint32_t *out)
{
	int found = 0;
	uint64_t best[4] = {0};
	uint32_t best_start = 0;
	for (uint32_t r = 0; r < ev->row_count; r++) {
		uint32_t f = ev->row_first[r], len = ev->row_len[r];
		for (uint32_t off = 0; off + n <= len; off++) {
			int ok = 1;
			for (uint32_t i = 0; i < n; i++)
				ok &= m_free(ev, f + off + i) && ev->category[f + off + i] == cat;
			if (!ok)
				continue;
			int left = off >= 1 && m_free(ev, f + off - 1) &&
			           (off < 2 || !m_free(ev, f + off - 2));
			int right = off + n < len && m_free(ev, f + off + n) &&
			            (off + n + 1 >= len || !m_free(ev, f + off + n + 1));
			int64_t centre = 2 * (int64_t)off + n - len;
			uint64_t key[4] = {(uint64_t)(left || right), r,
			                   (uint64_t)(centre < 0 ? -centre : centre), f + off};
			int better = !found;
			for (int k = 0; k < 4 && !better; k++) {
				if (key[k] != best[k]) {
					better = key[k] < best[k];
					break;
				}
			}
			if (better) {
				found = 1;
				memcpy(best, key, sizeof(best));
				best_start = f + off;
			}
		}
	}
	if (found) {
		for (uint32_t i = 0; i < n; i++)
			out[i] = best_start + i;
		return;
	}
	/* No block: row by row, free seats of the category nearest the centre. */
	uint8_t taken[W_SEATS_MAX] = {0};
	uint32_t got = 0;
	for (uint32_t r = 0; r < ev->row_count && got < n; r++) {
		uint32_t f = ev->row_first[r], len = ev->row_len[r];
		while (got < n) {
			int64_t pick = -1, pick_d = 0;
			for (uint32_t i = 0; i < len; i++) {
				uint32_t s = f + i;
				if (!m_free(ev, s) || ev->category[s] != cat || taken[s])
					continue;
				int64_t d = 2 * (int64_t)i + 1 - len;
				d = d < 0 ? -d : d;
				if (pick < 0 || d < pick_d) {
					pick = s;
					pick_d = d;
				}
			}
			if (pick < 0)
				break;
			taken[pick] = 1;
			got++;
		}
	}
	assert(got == n);
	uint32_t k = 0;
	for (uint32_t s = 0; s < ev->seat_count; s++)
		if (taken[s])
			out[k++] = s;
	assert(k == n);
}

/* ---- Expected answers ------------------------------------------------------ */

/* Which result fields an OK answer defines (engine.h, "Results"). A failed
 * answer defines them all: claim_id 0 and nothing else, except seat_count 1
 * and seats[0] for TAKEN/SEAT_UNAVAILABLE and NOT_BLOCKED. */
enum {
	X_SEATS = 1u << 0,   /* seat_count and seats[] */
	X_NOSEATS = 1u << 1, /* seat_count == 0 (a pool claim has no seats) */
	X_QTY = 1u << 2,     /* quantity */
	X_EXPIRES = 1u << 3, /* expires_at_ms */
	X_CLAIM = 1u << 4,   /* claim_id */
	X_POOL = 1u << 5,    /* pool */
	X_AVAIL = 1u << 6,   /* avail */
	X_STATES = 1u << 7,  /* seat_state[] (with X_SEATS) */
};

typedef struct expect {
	uint8_t status;
	uint8_t detail;
	uint32_t check; /* X_* */
	uint8_t seat_count;
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
	uint8_t seat_state[BO_QUERY_SEATS_MAX];
	uint32_t quantity;
	int64_t expires_at_ms;
	uint64_t claim_id;
	uint8_t pool;
	bo_avail avail;
} expect;

static void x_fail(expect *x, uint8_t status, uint8_t detail)
{
	x->status = status;
	x->detail = detail;
	x->check = 0;
	x->seat_count = 0;
}

static void x_first_seat(expect *x, uint8_t status, uint8_t detail, uint32_t seat)
{
	x_fail(x, status, detail);
	x->seat_count = 1;
	x->seats[0] = seat;
}

/* An OK answer about a claim: its id, its seats (quantity = seat_count) or its
 * pool and quantity, and expires_at (0 but for HOLD_* and EXTEND). */
static void x_claim(expect *x, const m_claim *c, int64_t expires_at_ms)
{
	x->check |= X_CLAIM | X_EXPIRES | X_QTY;
	x->claim_id = c->id;
	x->expires_at_ms = expires_at_ms;
	x->quantity = c->quantity;
	if (c->is_pool) {
		x->check |= X_POOL | X_NOSEATS;
		x->pool = c->pool;
		return;
	}
	x->check |= X_SEATS;
	x->seat_count = c->seat_count;
	memcpy(x->seats, c->seats, sizeof(x->seats));
}

/* ---- The run: engine(s), model, generator, checks -------------------------- */

typedef struct expiry_buf {
	bo_expiry items[W_CLAIMS_MAX];
	uint32_t count;
	uint32_t overflow;
} expiry_buf;

/* Outcomes seen, for the coverage check and BO_MODEL_STATS. */
typedef struct outcome_counts {
	uint64_t by_op_detail[BO_OP_COUNT + 1][BO_D_COUNT]; /* [BO_OP_COUNT]: bad ops */
	uint64_t replays;
	uint64_t conflicts;
	uint64_t expiries;
	uint64_t confirm_after_expiry;
	uint64_t recycled;
	uint64_t not_owner_refused;   /* claim ops of another client, refused */
	uint64_t not_owner_allowed;   /* ... allowed: operator or legacy flag */
	uint64_t idem_evicted_reexec; /* repeats answered fresh: evicted from the window */
	uint64_t commands;
} outcome_counts;

typedef struct run {
	uint64_t seed;
	uint64_t commands;
	uint64_t index; /* command about to be / being applied */
	uint64_t rng;
	int trace;
	engine *e;
	engine *twin; /* NULL unless this seed checks determinism */
	model m;
	sent_cmd cur;
	int cur_is_repeat;
	sent_cmd history[W_HISTORY];
	uint64_t history_count;
	uint64_t stale[W_STALE];
	uint64_t stale_count;
	uint64_t next_request[W_CLIENTS + 1];
	uint32_t clients; /* this seed's clients: 1..clients */
	int hoard;        /* long ttls, small clock steps: holds pile up to the limits */
	gen_map junk_map; /* a valid map that ops other than CREATE_EVENT must ignore */
	expiry_buf got;
	expiry_buf twin_got;
	outcome_counts *counts;
} run;

static uint32_t rnd(run *r, uint32_t n)
{
	return n ? (uint32_t)(rng_next(&r->rng) % n) : 0;
}
static int chance(run *r, uint32_t percent)
{
	return rnd(r, 100) < percent;
}

static const char *op_name(int op)
{
	return op > 0 && op < BO_OP_COUNT ? bo_op_str(op) : "?";
}

static void describe_cmd(const bo_cmd *c, char *buf, size_t size)
{
	int n = snprintf(buf, size,
	                 "%s(op=%u client=%" PRIu64 " request=%" PRIu64 " event=%" PRIu64
	                 " claim=%#" PRIx64 " ttl=%" PRIu32 " cat=%u pool=%u qty=%u payref_len=%u",
	                 op_name(c->op), c->op, c->client_id, c->request_id, c->event_id,
	                 c->claim_id, c->ttl_ms, c->category, c->pool, c->quantity, c->payref_len);
	size_t at = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
	at += (size_t)snprintf(buf + at, size - at, " seats[%u]=", c->seat_count);
	for (uint32_t i = 0; i < c->seat_count && i < BO_SEATS_PER_HOLD_MAX && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%" PRIu32, i ? "," : "",
		                       c->seats[i]);
	if (at < size && c->op == BO_OP_CREATE_EVENT) {
		const bo_seatmap *map = c->map;
		if (map == NULL)
			at += (size_t)snprintf(buf + at, size - at, " map=NULL");
		else
			at += (size_t)snprintf(buf + at, size - at,
			                       " map(rows=%u seats=%u pools=%u cats=%u)",
			                       map->row_count, map->seat_count, map->pool_count,
			                       map->category_count);
	}
	if (at < size)
		snprintf(buf + at, size - at, ")");
}

static void describe_result(const bo_result *g, char *buf, size_t size)
{
	int n = snprintf(buf, size,
	                 "%s/%s seat_count=%u qty=%" PRIu32 " claim=%#" PRIx64 " expires=%" PRId64
	                 " pool=%u replayed=%u seats=",
	                 bo_status_str(g->status), bo_detail_str(g->detail), g->seat_count,
	                 g->quantity, g->claim_id, g->expires_at_ms, g->pool, g->replayed);
	size_t at = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
	for (uint32_t i = 0; i < g->seat_count && i < BO_SEATS_PER_HOLD_MAX && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%" PRIu32, i ? "," : "",
		                       g->seats[i]);
}

static void run_fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints everything needed to reproduce and fails the test (does not return). */
static void run_fail(run *r, const char *fmt, ...)
{
	char msg[2048], cmd[1024], exe[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	describe_cmd(&r->cur.cmd, cmd, sizeof(cmd));
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[len > 0 ? len : 0] = '\0';
	fprintf(stderr,
	        "model_test: MISMATCH seed %" PRIu64 " command %" PRIu64 " (now %" PRId64 ")\n"
	        "  command%s: %s\n"
	        "  %s\n"
	        "  replay: BO_MODEL_SEED=%" PRIu64 " BO_MODEL_COMMANDS=%" PRIu64
	        " BO_MODEL_TRACE=1 %s --filter model/part0\n",
	        r->seed, r->index, r->m.now_ms, r->cur_is_repeat ? " (a repeat)" : "", cmd, msg,
	        r->seed, r->index + 1, exe[0] ? exe : "./model_test");
	cr_assert_fail("engine disagrees with the model: seed %" PRIu64 " command %" PRIu64 ": %s",
	               r->seed, r->index, msg);
	abort(); /* not reached: cr_assert_fail aborts the test */
}

/* ---- Model: commands -------------------------------------------------------- */

/* Installs a new hold under the id the engine chose, after checking the slot
 * rule: a fresh slot (never used before) while any is left, else the slot of
 * the claim that ended first, with a generation that changed. */
static m_claim *m_claim_install(run *r, int idx, uint64_t id)
{
	model *m = &r->m;
	uint32_t slot = (uint32_t)id;
	if (id == 0)
		run_fail(r, "new hold has claim id 0");
	if ((uint32_t)idx == m->slots_used) {
		for (uint32_t i = 0; i < m->slots_used; i++)
			if ((uint32_t)m->claims[i].id == slot)
				run_fail(r,
				         "new hold %#" PRIx64 " reuses slot %" PRIu32
				         " of claim %#" PRIx64 " while fresh slots remain (%" PRIu32
				         " of %" PRIu32 " used)",
				         id, slot, m->claims[i].id, m->slots_used,
				         m->cfg.claims_max);
		m->slots_used++;
	} else {
		m_claim *old = &m->claims[idx];
		if ((uint32_t)old->id != slot || old->id == id)
			run_fail(r,
			         "new hold %#" PRIx64 ": expected the slot of claim %#" PRIx64
			         " (ended first) with a new generation",
			         id, old->id);
		r->stale[r->stale_count++ % W_STALE] = old->id;
		r->counts->recycled++;
	}
	m_claim *c = &m->claims[idx];
	memset(c, 0, sizeof(*c));
	c->id = id;
	return c;
}

static int ttl_ok(uint32_t ttl)
{
	return ttl >= BO_TTL_MS_MIN && ttl <= BO_TTL_MS_MAX;
}

/* Seat checks shared by HOLD_SEATS, BLOCK, UNBLOCK (count, range, duplicate),
 * each rule over all seats before the next rule. 0 when they pass. */
static int m_seat_checks(const m_event *ev, const bo_cmd *c, expect *x, int duplicates_matter)
{
	if (c->seat_count == 0 || c->seat_count > BO_SEATS_PER_HOLD_MAX) {
		x_fail(x, BO_INVALID, BO_D_SEAT_COUNT);
		return -1;
	}
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (c->seats[i] >= ev->seat_count) {
			x_fail(x, BO_INVALID, BO_D_SEAT_RANGE);
			return -1;
		}
	}
	for (uint32_t i = 0; duplicates_matter && i < c->seat_count; i++) {
		for (uint32_t j = i + 1; j < c->seat_count; j++) {
			if (c->seats[i] == c->seats[j]) {
				x_fail(x, BO_INVALID, BO_D_SEAT_DUPLICATE);
				return -1;
			}
		}
	}
	return 0;
}

/* Client limit and a claim slot, the last two rules of every HOLD_*. Returns
 * the claims[] entry to use, or -1 with the failure in x. */
static int m_hold_limits(run *r, const bo_cmd *c, expect *x)
{
	if (m_client_holds(&r->m, c->client_id) >= BO_HOLDS_PER_CLIENT_MAX) {
		x_fail(x, BO_LIMIT, BO_D_CLIENT_HOLDS);
		return -1;
	}
	int idx = m_claim_slot(&r->m);
	if (idx < 0)
		x_fail(x, BO_LIMIT, BO_D_CLAIMS_FULL);
	return idx;
}

/* Creates the new hold once the model predicts OK and the engine agrees. When
 * the engine disagrees, check_result() reports the status (x still says OK),
 * so nothing is installed. */
static m_claim *m_new_hold(run *r, const bo_cmd *c, const bo_result *got, int idx)
{
	if (got->status != BO_OK)
		return NULL;
	m_claim *cl = m_claim_install(r, idx, got->claim_id);
	cl->event_id = c->event_id;
	cl->client_id = c->client_id;
	cl->created_ms = r->m.now_ms;
	cl->expires_at_ms = r->m.now_ms + c->ttl_ms;
	cl->state = MC_ACTIVE;
	return cl;
}

static void m_hold_seats_take(m_event *ev, m_claim *cl, const uint32_t *seats, uint32_t n,
                              expect *x)
{
	cl->seat_count = (uint8_t)n;
	cl->quantity = n;
	for (uint32_t i = 0; i < n; i++) {
		cl->seats[i] = seats[i];
		ev->state[seats[i]] = BO_SEAT_HELD;
		ev->claim[seats[i]] = cl->id;
	}
	x_claim(x, cl, cl->expires_at_ms);
}

static void m_create_event(run *r, const bo_cmd *c, expect *x)
{
	model *m = &r->m;
	const bo_seatmap *map = c->map;
	if (c->event_id == 0) {
		x_fail(x, BO_INVALID, BO_D_EVENT_ID_ZERO);
		return;
	}
	if (!m_map_valid(map)) {
		x_fail(x, BO_INVALID, BO_D_MAP_INVALID);
		return;
	}
	if (m_event_find(m, c->event_id)) {
		x_fail(x, BO_INVALID, BO_D_EVENT_EXISTS);
		return;
	}
	if (m->event_count >= m->cfg.events_max) {
		x_fail(x, BO_LIMIT, BO_D_EVENTS_FULL);
		return;
	}
	if ((uint64_t)m->seats_total + map->seat_count > m->cfg.seats_max) {
		x_fail(x, BO_LIMIT, BO_D_SEATS_FULL);
		return;
	}
	assert(m->event_count < W_EVENTS_MAX && map->seat_count <= W_SEATS_MAX);
	m_event *ev = &m->events[m->event_count++];
	memset(ev, 0, sizeof(*ev));
	ev->id = c->event_id;
	ev->row_count = map->row_count;
	ev->seat_count = map->seat_count;
	ev->pool_count = map->pool_count;
	ev->category_count = map->category_count;
	uint32_t first = 0;
	for (uint32_t i = 0; i < map->row_count; i++) {
		ev->row_first[i] = first;
		ev->row_len[i] = map->rows[i].seats;
		first += map->rows[i].seats;
	}
	memcpy(ev->category, map->categories, map->seat_count);
	memcpy(ev->pool_capacity, map->pool_capacity, map->pool_count * sizeof(uint32_t));
	m->seats_total += map->seat_count;
}

static void m_hold_seats(run *r, m_event *ev, const bo_cmd *c, const bo_result *got, expect *x)
{
	if (m_seat_checks(ev, c, x, 1) != 0)
		return;
	if (!ttl_ok(c->ttl_ms)) {
		x_fail(x, BO_INVALID, BO_D_TTL_RANGE);
		return;
	}
	for (uint32_t i = 0; i < c->seat_count; i++)
		if (!m_free(ev, c->seats[i])) {
			x_first_seat(x, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, c->seats[i]);
			return;
		}
	int idx = m_hold_limits(r, c, x);
	if (idx < 0)
		return;
	m_claim *cl = m_new_hold(r, c, got, idx);
	if (cl)
		m_hold_seats_take(ev, cl, c->seats, c->seat_count, x);
}

static void m_hold_best(run *r, m_event *ev, const bo_cmd *c, const bo_result *got, expect *x)
{
	if (c->quantity == 0 || c->quantity > BO_SEATS_PER_HOLD_MAX) {
		x_fail(x, BO_INVALID, BO_D_QUANTITY);
		return;
	}
	if (c->category >= ev->category_count) {
		x_fail(x, BO_INVALID, BO_D_CATEGORY_RANGE);
		return;
	}
	if (!ttl_ok(c->ttl_ms)) {
		x_fail(x, BO_INVALID, BO_D_TTL_RANGE);
		return;
	}
	uint32_t free_n = 0;
	for (uint32_t s = 0; s < ev->seat_count; s++)
		free_n += m_free(ev, s) && ev->category[s] == c->category;
	if (free_n < c->quantity) {
		x_fail(x, BO_TAKEN, BO_D_SOLD_OUT);
		return;
	}
	int idx = m_hold_limits(r, c, x);
	if (idx < 0)
		return;
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
	m_best(ev, c->category, c->quantity, seats);
	m_claim *cl = m_new_hold(r, c, got, idx);
	if (cl)
		m_hold_seats_take(ev, cl, seats, c->quantity, x);
}

static void m_hold_pool(run *r, m_event *ev, const bo_cmd *c, const bo_result *got, expect *x)
{
	if (c->pool >= ev->pool_count) {
		x_fail(x, BO_INVALID, BO_D_POOL_RANGE);
		return;
	}
	if (c->quantity == 0 || c->quantity > BO_POOL_QTY_PER_HOLD_MAX) {
		x_fail(x, BO_INVALID, BO_D_QUANTITY);
		return;
	}
	if (!ttl_ok(c->ttl_ms)) {
		x_fail(x, BO_INVALID, BO_D_TTL_RANGE);
		return;
	}
	uint32_t p = c->pool;
	if (ev->pool_capacity[p] - ev->pool_held[p] - ev->pool_booked[p] < c->quantity) {
		x_fail(x, BO_TAKEN, BO_D_POOL_UNAVAILABLE);
		return;
	}
	int idx = m_hold_limits(r, c, x);
	if (idx < 0)
		return;
	m_claim *cl = m_new_hold(r, c, got, idx);
	if (cl) {
		cl->is_pool = 1;
		cl->pool = c->pool;
		cl->quantity = c->quantity;
		ev->pool_held[p] += c->quantity;
		x_claim(x, cl, cl->expires_at_ms);
	}
}

/* engine.h, "Ownership": the claim's own client; an operator's RELEASE or
 * CANCEL; a legacy record (any client). */
static int m_may_touch(const m_claim *cl, const bo_cmd *c)
{
	if (c->flags & BO_CMD_F_ANY_CLIENT)
		return 1;
	if ((c->flags & BO_CMD_F_OPERATOR) && (c->op == BO_OP_RELEASE || c->op == BO_OP_CANCEL))
		return 1;
	return cl->client_id == c->client_id;
}

/* The claim a claim op names, as the command's client may see it: another
 * client's claim is not there at all. Counts the refusals and the
 * overrides, for the coverage check. */
static m_claim *m_claim_seen(run *r, const bo_cmd *c)
{
	m_claim *cl = m_claim_find(&r->m, c->claim_id);
	if (cl == NULL || cl->event_id != c->event_id || cl->client_id == c->client_id)
		return cl;
	if (!m_may_touch(cl, c)) {
		r->counts->not_owner_refused++;
		return NULL;
	}
	r->counts->not_owner_allowed++;
	return cl;
}

/* The hold named by an EXTEND/RELEASE/CONFIRM, or NULL with NO_HOLD. */
static m_claim *m_hold_of_event(run *r, const bo_cmd *c, expect *x)
{
	m_claim *cl = m_claim_seen(r, c);
	if (cl == NULL || cl->event_id != c->event_id || cl->state == MC_RELEASED ||
	    cl->state == MC_CANCELLED) {
		x_fail(x, BO_NOT_FOUND, BO_D_NO_HOLD);
		return NULL;
	}
	if (cl->state == MC_BOOKED) {
		x_fail(x, BO_INVALID, BO_D_ALREADY_CONFIRMED);
		return NULL;
	}
	return cl;
}

static void m_extend(run *r, const bo_cmd *c, expect *x)
{
	m_claim *cl = m_hold_of_event(r, c, x);
	if (cl == NULL)
		return;
	if (cl->state == MC_EXPIRED) {
		x_fail(x, BO_EXPIRED, BO_D_HOLD_EXPIRED);
		return;
	}
	if (!ttl_ok(c->ttl_ms)) {
		x_fail(x, BO_INVALID, BO_D_TTL_RANGE);
		return;
	}
	int64_t at = r->m.now_ms + c->ttl_ms;
	if (at > cl->created_ms + (int64_t)BO_HOLD_LIFETIME_MS_MAX) {
		x_fail(x, BO_LIMIT, BO_D_LIFETIME);
		return;
	}
	cl->expires_at_ms = at;
	x_claim(x, cl, at);
}

static void m_release(run *r, const bo_cmd *c, expect *x)
{
	m_claim *cl = m_hold_of_event(r, c, x);
	if (cl == NULL)
		return;
	if (cl->state == MC_EXPIRED) {
		x_fail(x, BO_EXPIRED, BO_D_HOLD_EXPIRED);
		return;
	}
	x_claim(x, cl, 0);
	m_claim_free_inventory(&r->m, cl, MC_ACTIVE);
	m_claim_end(&r->m, cl, MC_RELEASED);
}

static void m_book(m_event *ev, m_claim *cl)
{
	if (cl->is_pool) {
		ev->pool_booked[cl->pool] += cl->quantity;
		return;
	}
	for (uint32_t i = 0; i < cl->seat_count; i++) {
		ev->state[cl->seats[i]] = BO_SEAT_BOOKED;
		ev->claim[cl->seats[i]] = cl->id;
	}
}

static void m_confirm(run *r, m_event *ev, const bo_cmd *c, expect *x)
{
	if (c->payref_len == 0 || c->payref_len > BO_PAYREF_LEN_MAX) {
		x_fail(x, BO_INVALID, BO_D_PAYREF);
		return;
	}
	m_claim *cl = m_hold_of_event(r, c, x);
	if (cl == NULL)
		return;
	if (cl->state == MC_ACTIVE) {
		m_claim_free_inventory(&r->m, cl, MC_ACTIVE);
	} else {
		assert(cl->state == MC_EXPIRED);
		int all_free = 1;
		if (cl->is_pool) {
			uint32_t p = cl->pool;
			all_free = ev->pool_capacity[p] - ev->pool_held[p] - ev->pool_booked[p] >=
			           cl->quantity;
		}
		for (uint32_t i = 0; !cl->is_pool && i < cl->seat_count; i++)
			all_free &= m_free(ev, cl->seats[i]);
		if (!all_free) {
			x_fail(x, BO_EXPIRED, BO_D_HOLD_EXPIRED);
			return;
		}
		r->counts->confirm_after_expiry++;
	}
	m_book(ev, cl);
	cl->state = MC_BOOKED;
	x_claim(x, cl, 0);
}

static void m_cancel(run *r, const bo_cmd *c, expect *x)
{
	m_claim *cl = m_claim_seen(r, c);
	if (cl != NULL && cl->event_id == c->event_id && cl->state == MC_ACTIVE) {
		x_fail(x, BO_INVALID, BO_D_NOT_A_BOOKING);
		return;
	}
	if (cl == NULL || cl->event_id != c->event_id || cl->state != MC_BOOKED) {
		x_fail(x, BO_NOT_FOUND, BO_D_NO_BOOKING);
		return;
	}
	x_claim(x, cl, 0);
	m_claim_free_inventory(&r->m, cl, MC_BOOKED);
	m_claim_end(&r->m, cl, MC_CANCELLED);
}

static void m_block(m_event *ev, const bo_cmd *c, expect *x, int block)
{
	if (m_seat_checks(ev, c, x, 1) != 0)
		return;
	for (uint32_t i = 0; i < c->seat_count; i++) {
		uint32_t s = c->seats[i];
		if (block && !m_free(ev, s)) {
			x_first_seat(x, BO_TAKEN, BO_D_SEAT_UNAVAILABLE, s);
			return;
		}
		if (!block && ev->state[s] != BO_SEAT_BLOCKED) {
			x_first_seat(x, BO_INVALID, BO_D_NOT_BLOCKED, s);
			return;
		}
	}
	for (uint32_t i = 0; i < c->seat_count; i++)
		ev->state[c->seats[i]] = block ? BO_SEAT_BLOCKED : BO_SEAT_FREE;
	x->check |= X_SEATS; /* OK BLOCK/UNBLOCK echo the seats */
	x->seat_count = c->seat_count;
	memcpy(x->seats, c->seats, c->seat_count * 4u);
}

static void m_query_seats(m_event *ev, const bo_cmd *c, expect *x)
{
	/* Queries check count and range only: asking twice about a seat is fine. */
	if (m_seat_checks(ev, c, x, 0) != 0)
		return;
	x->check |= X_SEATS | X_STATES;
	x->seat_count = c->seat_count;
	for (uint32_t i = 0; i < c->seat_count; i++) {
		x->seats[i] = c->seats[i];
		x->seat_state[i] = ev->state[c->seats[i]];
	}
}

/* Executes a command that is not answered from the window: computes the
 * expected answer into x and applies its effect to the model. `got` is read
 * only for the id of a new hold. */
static void m_exec(run *r, const bo_cmd *c, const bo_result *got, expect *x)
{
	memset(x, 0, sizeof(*x));
	x->status = BO_OK;
	x->detail = BO_D_NONE;
	if (c->op == BO_OP_CREATE_EVENT) {
		m_create_event(r, c, x);
		return;
	}
	m_event *ev = m_event_find(&r->m, c->event_id);
	if (ev == NULL) {
		x_fail(x, BO_NOT_FOUND, BO_D_NO_EVENT);
		return;
	}
	switch (c->op) {
	case BO_OP_HOLD_SEATS:
		m_hold_seats(r, ev, c, got, x);
		return;
	case BO_OP_HOLD_BEST:
		m_hold_best(r, ev, c, got, x);
		return;
	case BO_OP_HOLD_POOL:
		m_hold_pool(r, ev, c, got, x);
		return;
	case BO_OP_EXTEND:
		m_extend(r, c, x);
		return;
	case BO_OP_RELEASE:
		m_release(r, c, x);
		return;
	case BO_OP_CONFIRM:
		m_confirm(r, ev, c, x);
		return;
	case BO_OP_CANCEL:
		m_cancel(r, c, x);
		return;
	case BO_OP_BLOCK:
		m_block(ev, c, x, 1);
		return;
	case BO_OP_UNBLOCK:
		m_block(ev, c, x, 0);
		return;
	case BO_OP_QUERY_AVAIL:
		x->check |= X_AVAIL;
		m_avail(ev, &x->avail);
		return;
	case BO_OP_QUERY_SEATS:
		m_query_seats(ev, c, x);
		return;
	default:
		assert(0 && "op checked by the caller");
	}
}

/* Expires, in (expires_at, claim id) order, every active hold with
 * expires_at <= now, writing the expected reports. */
static uint32_t m_advance(model *m, int64_t now_ms, bo_expiry *out)
{
	if (now_ms > m->now_ms)
		m->now_ms = now_ms;
	m_claim *due[W_CLAIMS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < m->slots_used; i++)
		if (m->claims[i].state == MC_ACTIVE && m->claims[i].expires_at_ms <= m->now_ms)
			due[n++] = &m->claims[i];
	for (uint32_t i = 1; i < n; i++) { /* insertion sort: obviously right */
		for (uint32_t j = i; j > 0; j--) {
			m_claim *a = due[j - 1], *b = due[j];
			if (a->expires_at_ms < b->expires_at_ms ||
			    (a->expires_at_ms == b->expires_at_ms && a->id < b->id))
				break;
			due[j - 1] = b;
			due[j] = a;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		m_claim *c = due[i];
		bo_expiry *x = &out[i];
		memset(x, 0, sizeof(*x));
		x->event_id = c->event_id;
		x->claim_id = c->id;
		x->client_id = c->client_id;
		x->expires_at_ms = c->expires_at_ms;
		x->is_pool = c->is_pool;
		x->pool = c->pool;
		x->quantity = c->quantity;
		x->seat_count = c->seat_count;
		memcpy(x->seats, c->seats, sizeof(x->seats));
		m_claim_free_inventory(m, c, MC_ACTIVE);
		m_claim_end(m, c, MC_EXPIRED);
		m->expired_total++;
	}
	return n;
}

/* ---- Checks ------------------------------------------------------------------ */

static void check_seats_list(run *r, const char *what, uint32_t n, const uint32_t *want,
                             const uint32_t *got)
{
	for (uint32_t i = 0; i < n; i++) {
		if (want[i] == got[i])
			continue;
		char a[256] = "", b[256] = "";
		size_t at = 0, bt = 0;
		for (uint32_t k = 0; k < n && at < sizeof(a) && bt < sizeof(b); k++) {
			at += (size_t)snprintf(a + at, sizeof(a) - at, "%s%" PRIu32, k ? "," : "",
			                       want[k]);
			bt += (size_t)snprintf(b + bt, sizeof(b) - bt, "%s%" PRIu32, k ? "," : "",
			                       got[k]);
		}
		run_fail(r, "%s: expected seats %s, got %s", what, a, b);
	}
}

static void check_avail(run *r, const char *what, const bo_avail *want, const bo_avail *got)
{
	for (int s = 0; s < BO_SEAT_STATE_COUNT; s++)
		if (want->by_state[s] != got->by_state[s])
			run_fail(r, "%s: %s seats: expected %" PRIu32 ", got %" PRIu32, what,
			         bo_seat_state_str(s), want->by_state[s], got->by_state[s]);
	if (want->category_count != got->category_count || want->pool_count != got->pool_count)
		run_fail(r, "%s: expected %u categories %u pools, got %u %u", what,
		         want->category_count, want->pool_count, got->category_count,
		         got->pool_count);
	for (uint32_t c = 0; c < want->category_count; c++)
		if (want->free_by_category[c] != got->free_by_category[c])
			run_fail(r,
			         "%s: free seats of category %" PRIu32 ": expected %" PRIu32
			         ", got %" PRIu32,
			         what, c, want->free_by_category[c], got->free_by_category[c]);
	for (uint32_t p = 0; p < want->pool_count; p++)
		if (want->pool_capacity[p] != got->pool_capacity[p] ||
		    want->pool_free[p] != got->pool_free[p])
			run_fail(r,
			         "%s: pool %" PRIu32 ": expected capacity %" PRIu32 " free %" PRIu32
			         ", got %" PRIu32 " %" PRIu32,
			         what, p, want->pool_capacity[p], want->pool_free[p],
			         got->pool_capacity[p], got->pool_free[p]);
}

/* The answer as text, for failure messages only (formatting every answer
 * would cost more than the engine). */
#define GOT_STR(g) describe_result_tmp(g).text

typedef struct result_text {
	char text[512];
} result_text;

static result_text describe_result_tmp(const bo_result *g)
{
	result_text t;
	describe_result(g, t.text, sizeof(t.text));
	return t;
}

static void check_result(run *r, const expect *x, const bo_result *g)
{
	const bo_cmd *c = &r->cur.cmd;
	if (g->op != c->op)
		run_fail(r, "result op %u, command op %u", g->op, c->op);
	if (g->status != x->status || g->detail != x->detail)
		run_fail(r, "expected %s/%s, got %s", bo_status_str(x->status),
		         bo_detail_str(x->detail), GOT_STR(g));
	if (g->replayed != 0)
		run_fail(r, "fresh command answered with replayed=%u", g->replayed);
	if (g->client_id != c->client_id || g->request_id != c->request_id ||
	    g->event_id != c->event_id)
		run_fail(r,
		         "result does not echo client/request/event: %" PRIu64 "/%" PRIu64
		         "/%" PRIu64,
		         g->client_id, g->request_id, g->event_id);
	if (x->status != BO_OK) {
		/* A failed answer carries nothing but status, detail and the seat
		 * that failed TAKEN/SEAT_UNAVAILABLE or NOT_BLOCKED. */
		if (g->claim_id != 0 || g->expires_at_ms != 0 || g->quantity != 0 || g->pool != 0 ||
		    g->seat_count != x->seat_count)
			run_fail(r, "failed answer carries more than status/detail: %s",
			         GOT_STR(g));
		check_seats_list(r, "failed answer", x->seat_count, x->seats, g->seats);
		return;
	}
	if ((x->check & X_SEATS) && g->seat_count != x->seat_count)
		run_fail(r, "expected seat_count %u, got %s", x->seat_count, GOT_STR(g));
	if (x->check & X_SEATS)
		check_seats_list(r, "result", x->seat_count, x->seats, g->seats);
	if ((x->check & X_NOSEATS) && g->seat_count != 0)
		run_fail(r, "pool claim answered with seats: %s", GOT_STR(g));
	if ((x->check & X_STATES) && memcmp(x->seat_state, g->seat_state, x->seat_count) != 0) {
		for (uint32_t i = 0; i < x->seat_count; i++)
			if (x->seat_state[i] != g->seat_state[i])
				run_fail(r, "seat %" PRIu32 ": expected state %s, got %u",
				         x->seats[i], bo_seat_state_str(x->seat_state[i]),
				         g->seat_state[i]);
	}
	if ((x->check & X_QTY) && g->quantity != x->quantity)
		run_fail(r, "expected quantity %" PRIu32 ", got %s", x->quantity, GOT_STR(g));
	if ((x->check & X_POOL) && g->pool != x->pool)
		run_fail(r, "expected pool %u, got %s", x->pool, GOT_STR(g));
	if ((x->check & X_EXPIRES) && g->expires_at_ms != x->expires_at_ms)
		run_fail(r, "expected expires_at %" PRId64 ", got %s", x->expires_at_ms,
		         GOT_STR(g));
	if ((x->check & X_CLAIM) && g->claim_id != x->claim_id)
		run_fail(r, "expected claim %#" PRIx64 ", got %s", x->claim_id, GOT_STR(g));
	if (x->check & X_AVAIL)
		check_avail(r, "query_avail", &x->avail, &g->avail);
}

/* Every field of two answers; `what` names the comparison. */
static void check_same_result(run *r, const char *what, const bo_result *a, const bo_result *b,
                              int with_replayed)
{
	uint32_t n = a->seat_count < BO_SEATS_PER_HOLD_MAX ? a->seat_count : BO_SEATS_PER_HOLD_MAX;
	int same = a->op == b->op && a->status == b->status && a->detail == b->detail &&
	           a->seat_count == b->seat_count && a->quantity == b->quantity &&
	           a->client_id == b->client_id && a->request_id == b->request_id &&
	           a->event_id == b->event_id && a->claim_id == b->claim_id &&
	           a->expires_at_ms == b->expires_at_ms && a->pool == b->pool &&
	           memcmp(a->seats, b->seats, n * 4u) == 0 &&
	           (!with_replayed || a->replayed == b->replayed);
	if (a->op == BO_OP_QUERY_SEATS)
		same &= memcmp(a->seat_state, b->seat_state, n) == 0;
	if (!same)
		run_fail(r, "%s: expected %s, got %s", what, GOT_STR(a), GOT_STR(b));
	if (a->op == BO_OP_QUERY_AVAIL && a->status == BO_OK)
		check_avail(r, what, &a->avail, &b->avail);
}

static void check_expiries(run *r, const char *what, const bo_expiry *want, uint32_t n,
                           const expiry_buf *got)
{
	if (got->overflow || got->count != n) {
		char list[512] = "";
		size_t at = 0;
		for (uint32_t i = 0; i < n && at < sizeof(list); i++)
			at += (size_t)snprintf(list + at, sizeof(list) - at,
			                       " %#" PRIx64 "@%" PRId64, want[i].claim_id,
			                       want[i].expires_at_ms);
		run_fail(r, "%s: expected %" PRIu32 " expiries (%s ), engine reported %" PRIu32,
		         what, n, list, got->count + got->overflow);
	}
	for (uint32_t i = 0; i < n; i++) {
		const bo_expiry *w = &want[i], *g = &got->items[i];
		int same = w->event_id == g->event_id && w->claim_id == g->claim_id &&
		           w->client_id == g->client_id && w->expires_at_ms == g->expires_at_ms &&
		           w->is_pool == g->is_pool;
		if (same && w->is_pool)
			same = w->pool == g->pool && w->quantity == g->quantity;
		if (same && !w->is_pool)
			same = w->seat_count == g->seat_count &&
			       memcmp(w->seats, g->seats, w->seat_count * 4u) == 0;
		if (!same)
			run_fail(r,
			         "%s: expiry %" PRIu32 ": expected event %" PRIu64
			         " claim %#" PRIx64 " client %" PRIu64 " at %" PRId64
			         " pool=%u/%u qty %" PRIu32 " seats %u, got event %" PRIu64
			         " claim %#" PRIx64 " client %" PRIu64 " at %" PRId64
			         " pool=%u/%u qty %" PRIu32 " seats %u",
			         what, i, w->event_id, w->claim_id, w->client_id, w->expires_at_ms,
			         w->is_pool, w->pool, w->quantity, w->seat_count, g->event_id,
			         g->claim_id, g->client_id, g->expires_at_ms, g->is_pool, g->pool,
			         g->quantity, g->seat_count);
	}
}

/* The model's own bookkeeping: each live claim owns exactly its seats, pools
 * add up. The engine's state equals the model's (checked next), so these are
 * the contract's invariants for the engine too. */
static void check_model_invariants(run *r)
{
	model *m = &r->m;
	for (uint32_t e = 0; e < m->event_count; e++) {
		m_event *ev = &m->events[e];
		uint32_t held[BO_POOLS_PER_EVENT_MAX] = {0}, booked[BO_POOLS_PER_EVENT_MAX] = {0};
		uint8_t owned_by_claim[W_SEATS_MAX] = {0};
		for (uint32_t i = 0; i < m->slots_used; i++) {
			m_claim *c = &m->claims[i];
			if (c->event_id != ev->id ||
			    (c->state != MC_ACTIVE && c->state != MC_BOOKED))
				continue;
			if (c->is_pool) {
				(c->state == MC_ACTIVE ? held : booked)[c->pool] += c->quantity;
				continue;
			}
			for (uint32_t k = 0; k < c->seat_count; k++) {
				uint32_t s = c->seats[k];
				uint8_t want =
				        c->state == MC_ACTIVE ? BO_SEAT_HELD : BO_SEAT_BOOKED;
				if (ev->state[s] != want || ev->claim[s] != c->id ||
				    owned_by_claim[s])
					run_fail(r,
					         "model: claim %#" PRIx64
					         " does not own seat %" PRIu32,
					         c->id, s);
				owned_by_claim[s] = 1;
			}
		}
		/* Every held/booked seat belongs to exactly the live claim that named
		 * it above (one claim, one state); every other seat to none. */
		for (uint32_t s = 0; s < ev->seat_count; s++) {
			uint8_t st = ev->state[s];
			int owned = st == BO_SEAT_HELD || st == BO_SEAT_BOOKED;
			if (owned != owned_by_claim[s] || (!owned && ev->claim[s] != 0))
				run_fail(r,
				         "model: seat %" PRIu32 " of event %" PRIu64
				         " inconsistent",
				         s, ev->id);
		}
		for (uint32_t p = 0; p < ev->pool_count; p++)
			if (held[p] != ev->pool_held[p] || booked[p] != ev->pool_booked[p] ||
			    (uint64_t)held[p] + booked[p] > ev->pool_capacity[p])
				run_fail(r,
				         "model: pool %" PRIu32 " of event %" PRIu64
				         " inconsistent",
				         p, ev->id);
	}
}

/* The whole observable state of the engine against the model. */
static void check_state(run *r, engine *e, const char *which)
{
	model *m = &r->m;
	if (engine_now(e) != m->now_ms)
		run_fail(r, "%s: engine_now %" PRId64 ", expected %" PRId64, which, engine_now(e),
		         m->now_ms);
	uint32_t holds = 0, bookings = 0;
	for (uint32_t i = 0; i < m->slots_used; i++) {
		holds += m->claims[i].state == MC_ACTIVE;
		bookings += m->claims[i].state == MC_BOOKED;
	}
	for (uint32_t i = 0; i < m->event_count; i++) {
		const m_event *ev = &m->events[i];
		for (uint32_t s = 0; s < ev->seat_count; s++) {
			uint8_t st = 0xff;
			uint64_t claim = 0xdeadbeef;
			int rc = engine_seat(e, ev->id, s, &st, &claim);
			if (rc != 0 || st != ev->state[s] || claim != ev->claim[s])
				run_fail(r,
				         "%s: event %" PRIu64 " seat %" PRIu32
				         ": expected %s claim %#" PRIx64
				         ", engine_seat rc %d state %u claim %#" PRIx64,
				         which, ev->id, s, bo_seat_state_str(ev->state[s]),
				         ev->claim[s], rc, st, claim);
		}
		uint8_t st;
		uint64_t claim;
		if (engine_seat(e, ev->id, ev->seat_count, &st, &claim) != -ENOENT)
			run_fail(r,
			         "%s: engine_seat past the last seat of event %" PRIu64
			         " is not -ENOENT",
			         which, ev->id);
		bo_avail want, got;
		m_avail(ev, &want);
		if (engine_avail(e, ev->id, &got) != 0)
			run_fail(r, "%s: engine_avail(%" PRIu64 ") failed", which, ev->id);
		check_avail(r, which, &want, &got);
	}
	for (uint64_t id = 0; id <= W_EVENT_IDS + 1; id++) {
		bo_avail got;
		uint8_t st;
		uint64_t claim;
		if (m_event_find(m, id) != NULL)
			continue;
		if (engine_avail(e, id, &got) != -ENOENT ||
		    engine_seat(e, id, 0, &st, &claim) != -ENOENT)
			run_fail(r, "%s: unknown event %" PRIu64 " is not -ENOENT", which, id);
	}
	uint32_t client_holds[W_CLIENTS + 2] = {0};
	for (uint32_t i = 0; i < m->slots_used; i++)
		if (m->claims[i].state == MC_ACTIVE && m->claims[i].client_id <= W_CLIENTS + 1)
			client_holds[m->claims[i].client_id]++;
	for (uint64_t client = 0; client <= W_CLIENTS + 1; client++)
		if (engine_client_holds(e, client) != client_holds[client])
			run_fail(r,
			         "%s: client %" PRIu64 " holds: expected %" PRIu32 ", got %" PRIu32,
			         which, client, client_holds[client],
			         engine_client_holds(e, client));
	engine_stats st;
	engine_stats_get(e, &st);
	if (st.events != m->event_count || st.holds != holds || st.bookings != bookings ||
	    st.expired_total != m->expired_total || st.idem_entries != m_idem_entries(m))
		run_fail(r,
		         "%s: stats events/holds/bookings/expired/idem: expected %" PRIu32
		         "/%" PRIu32 "/%" PRIu32 "/%" PRIu64 "/%" PRIu32 ", got %" PRIu32
		         "/%" PRIu32 "/%" PRIu32 "/%" PRIu64 "/%" PRIu32,
		         which, m->event_count, holds, bookings, m->expired_total,
		         m_idem_entries(m), st.events, st.holds, st.bookings, st.expired_total,
		         st.idem_entries);
}

/* ---- Driving the engine ------------------------------------------------------ */

static void on_expiry(void *ctx, const bo_expiry *x)
{
	expiry_buf *b = ctx;
	if (b->count < W_CLAIMS_MAX)
		b->items[b->count++] = *x;
	else
		b->overflow++;
}

static void do_advance(run *r, int64_t now_ms)
{
	bo_expiry want[W_CLAIMS_MAX];
	r->got.count = r->got.overflow = 0;
	engine_advance(r->e, now_ms, on_expiry, &r->got);
	uint32_t n = m_advance(&r->m, now_ms, want);
	r->counts->expiries += n;
	if (r->trace)
		fprintf(stderr,
		        "[%" PRIu64 "] advance %" PRId64 " -> now %" PRId64 ", %" PRIu32
		        " expired\n",
		        r->index, now_ms, r->m.now_ms, n);
	check_expiries(r, "engine_advance", want, n, &r->got);
	if (r->twin) {
		r->twin_got.count = r->twin_got.overflow = 0;
		engine_advance(r->twin, now_ms, on_expiry, &r->twin_got);
		check_expiries(r, "twin engine_advance", want, n, &r->twin_got);
		check_state(r, r->twin, "twin after advance");
	}
	check_state(r, r->e, "after advance");
}

static void count_outcome(run *r, const bo_cmd *c, const bo_result *g)
{
	uint32_t op = c->op < BO_OP_COUNT ? c->op : BO_OP_COUNT;
	r->counts->by_op_detail[op][g->detail < BO_D_COUNT ? g->detail : 0]++;
	r->counts->commands++;
}

static void do_command(run *r)
{
	model *m = &r->m;
	sent_cmd *s = &r->cur;
	const bo_cmd *c = &s->cmd;
	enum {
		K_EXEC,
		K_QUERY,
		K_BAD,
		K_REPLAY,
		K_CONFLICT
	} kind = K_EXEC;
	expect x;
	m_idem *hit = NULL;
	memset(&x, 0, sizeof(x));
	if (c->op == BO_OP_NONE || c->op >= BO_OP_COUNT) {
		kind = K_BAD;
		x_fail(&x, BO_INVALID, BO_D_BAD_OP);
	} else if (!bo_op_mutates(c->op)) {
		kind = K_QUERY;
	} else if (c->client_id == 0) {
		kind = K_BAD;
		x_fail(&x, BO_INVALID, BO_D_NO_CLIENT);
	} else if ((hit = m_idem_find(m, c->client_id, c->request_id)) != NULL) {
		kind = m_content_equal(&hit->sent.cmd, c) ? K_REPLAY : K_CONFLICT;
	}
	/* Anything but a fresh mutating command must leave the state as it was. */
	uint64_t digest_before = kind != K_EXEC ? engine_digest(r->e) : 0;

	bo_result got, twin_got;
	memset(&got, 0xa5, sizeof(got)); /* a field the engine forgets to write shows up */
	engine_apply(r->e, c, &got);
	if (r->twin) {
		memset(&twin_got, 0xa5, sizeof(twin_got));
		engine_apply(r->twin, c, &twin_got);
	}
	if (r->trace) {
		char cs[1024], gs[512];
		describe_cmd(c, cs, sizeof(cs));
		describe_result(&got, gs, sizeof(gs));
		fprintf(stderr, "[%" PRIu64 "] %s%s\n        -> %s\n", r->index,
		        r->cur_is_repeat ? "REPEAT " : "", cs, gs);
	}
	count_outcome(r, c, &got);

	switch (kind) {
	case K_BAD:
		check_result(r, &x, &got);
		break;
	case K_REPLAY: {
		bo_result want = hit->result;
		want.replayed = 1;
		check_same_result(r, "replay of the first answer", &want, &got, 1);
		r->counts->replays++;
		break;
	}
	case K_CONFLICT:
		x_fail(&x, BO_CONFLICT, BO_D_IDEM_CONFLICT);
		check_result(r, &x, &got);
		r->counts->conflicts++;
		break;
	case K_QUERY:
	case K_EXEC:
		if (kind == K_EXEC && r->cur_is_repeat)
			r->counts->idem_evicted_reexec++;
		m_exec(r, c, &got, &x);
		check_result(r, &x, &got);
		if (kind == K_EXEC)
			m_idem_store(m, s, &got);
		break;
	}
	if (kind != K_EXEC && engine_digest(r->e) != digest_before)
		run_fail(r, "a %s changed engine_digest",
		         kind == K_REPLAY     ? "replay"
		         : kind == K_CONFLICT ? "conflict"
		         : kind == K_QUERY    ? "query"
		                              : "rejected command");
	if (r->twin)
		check_same_result(r, "twin engine answer", &got, &twin_got, 1);
	check_model_invariants(r);
	check_state(r, r->e, "after command");
}

/* ---- The generator ----------------------------------------------------------- */

static void gen_map_random(run *r, gen_map *g, int allow_invalid, int *is_null)
{
	memset(g, 0, sizeof(*g));
	gen_map_bind(g);
	*is_null = 0;
	bo_seatmap *map = &g->map;
	map->row_count = chance(r, 4) ? 0 : 1 + rnd(r, W_ROWS_MAX);
	map->category_count = 1 + rnd(r, 4);
	uint32_t mode = rnd(r, 3);
	for (uint32_t i = 0; i < map->row_count; i++) {
		g->rows[i].section = (uint16_t)rnd(r, 4);
		g->rows[i].seats =
		        (uint16_t)(W_ROW_SEATS_MIN + rnd(r, W_ROW_SEATS_MAX - W_ROW_SEATS_MIN + 1));
		for (uint32_t k = 0; k < g->rows[i].seats; k++) {
			uint32_t s = map->seat_count + k;
			uint32_t cat = mode == 0   ? i % map->category_count /* tier per row */
			               : mode == 1 ? rnd(r, map->category_count)
			                           : (k / 4) % map->category_count; /* runs of 4 */
			g->categories[s] = (uint8_t)cat;
		}
		map->seat_count += g->rows[i].seats;
	}
	map->pool_count = map->row_count == 0 ? 1 + rnd(r, 2) : rnd(r, 3);
	for (uint32_t p = 0; p < map->pool_count; p++)
		g->pool_capacity[p] =
		        chance(r, r->hoard ? 20 : 80) ? 1 + rnd(r, 60) : 1 + rnd(r, 2000);
	if (!allow_invalid || !chance(r, 12))
		return;
	switch (rnd(r, 10)) {
	case 0:
		*is_null = 1;
		break;
	case 1: /* a row of no seats */
		if (map->row_count == 0)
			map->row_count = 1;
		map->seat_count -= g->rows[0].seats;
		g->rows[0].seats = 0;
		break;
	case 2: /* seat_count not the sum of the rows */
		g->categories[map->seat_count] = 0;
		map->seat_count++;
		break;
	case 3: /* a category out of range */
		if (map->seat_count == 0)
			map->category_count = BO_CATEGORIES_MAX + 1;
		else
			g->categories[rnd(r, map->seat_count)] = (uint8_t)map->category_count;
		break;
	case 4:
		map->category_count = BO_CATEGORIES_MAX + 1;
		break;
	case 5:
		map->pool_count = 1;
		g->pool_capacity[0] = 0;
		break;
	case 6:
		map->pool_count = 1;
		g->pool_capacity[0] = BO_POOL_CAPACITY_MAX + 1;
		break;
	case 7:
		map->pool_count = BO_POOLS_PER_EVENT_MAX + 1;
		for (uint32_t p = 0; p < map->pool_count; p++)
			g->pool_capacity[p] = 10;
		break;
	case 8:
		if (map->row_count == 0) /* a seat outside every row */
			map->seat_count = 1;
		else
			g->rows[rnd(r, map->row_count)].section = BO_SECTIONS_PER_EVENT_MAX;
		break;
	default: /* categories but none allowed */
		if (map->seat_count == 0)
			map->pool_count = BO_POOLS_PER_EVENT_MAX + 1;
		else
			map->category_count = 0;
		for (uint32_t p = 0; p < map->pool_count; p++)
			g->pool_capacity[p] = 10;
		break;
	}
}

static uint32_t gen_ttl(run *r)
{
	uint32_t p = rnd(r, 100);
	if (r->hoard && p < 70)
		return BO_TTL_MS_MAX / 2 + rnd(r, BO_TTL_MS_MAX / 2 + 1);
	if (p < 62)
		return BO_TTL_MS_MIN + rnd(r, 15000);
	if (p < 80)
		return BO_TTL_MS_MIN + rnd(r, BO_TTL_MS_MAX - BO_TTL_MS_MIN + 1);
	if (p < 86)
		return BO_TTL_MS_MIN;
	if (p < 92)
		return BO_TTL_MS_MAX;
	static const uint32_t bad[] = {0, BO_TTL_MS_MIN - 1, BO_TTL_MS_MAX + 1, UINT32_MAX};
	return bad[rnd(r, 4)];
}

static uint64_t gen_client(run *r)
{
	return chance(r, 3) ? 0 : 1 + rnd(r, r->clients);
}

/* Mostly an existing event; sometimes one that was never created, or 0. */
static uint64_t gen_event_id(run *r)
{
	model *m = &r->m;
	if (m->event_count > 0 && chance(r, 93))
		return m->events[rnd(r, m->event_count)].id;
	if (chance(r, 60))
		return 1 + rnd(r, W_EVENT_IDS);
	return chance(r, 40) ? 0 : rng_next(&r->rng);
}

static void gen_random_seats(run *r, const m_event *ev, bo_cmd *c, uint32_t n)
{
	uint32_t range = ev && ev->seat_count ? ev->seat_count : 8;
	c->seat_count = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++)
		c->seats[i] = rnd(r, range);
}

/* Seats for HOLD_SEATS/BLOCK (want free), UNBLOCK (want blocked), QUERY_SEATS. */
static void gen_seats(run *r, const m_event *ev, bo_cmd *c, uint8_t want_state)
{
	uint32_t p = rnd(r, 100);
	if (ev == NULL || ev->seat_count == 0 || p >= 88) {
		uint32_t weird = rnd(r, 7);
		uint32_t count = ev ? ev->seat_count : 0;
		gen_random_seats(r, ev, c, 1 + rnd(r, 5));
		if (weird == 0) {
			c->seat_count = 0;
		} else if (weird == 1) {
			c->seat_count = (uint8_t)(BO_SEATS_PER_HOLD_MAX + 1 + rnd(r, 200));
			for (uint32_t i = 0; i < BO_SEATS_PER_HOLD_MAX; i++)
				c->seats[i] = rnd(r, count ? count : 8);
		} else if (weird == 2 && c->seat_count >= 1) { /* a duplicate */
			c->seats[c->seat_count] = c->seats[rnd(r, c->seat_count)];
			c->seat_count++;
		} else if (weird == 3) { /* out of range */
			c->seats[rnd(r, c->seat_count)] =
			        chance(r, 70) ? count + rnd(r, 3) : UINT32_MAX;
		} else if (weird == 4) { /* out of range after a duplicate: range wins */
			uint32_t n = 2 + rnd(r, 4);
			gen_random_seats(r, ev, c, n);
			c->seats[1] = c->seats[0];
			c->seats[n] = count + rnd(r, 2);
			c->seat_count = (uint8_t)(n + 1);
		} else if (weird == 5) { /* the most seats a command may name */
			gen_random_seats(r, ev, c, BO_SEATS_PER_HOLD_MAX);
		}
		return;
	}
	/* Seats in the wanted state: a run of them in one row, else a sample. */
	uint32_t pick[W_SEATS_MAX], n = 0;
	for (uint32_t s = 0; s < ev->seat_count; s++)
		if (ev->state[s] == want_state)
			pick[n++] = s;
	uint32_t len = 1 + (chance(r, 85) ? rnd(r, 4) : rnd(r, BO_SEATS_PER_HOLD_MAX));
	if (n == 0 || p >= 75) {
		gen_random_seats(r, ev, c, len);
		return;
	}
	uint32_t start = pick[rnd(r, n)];
	c->seat_count = 0;
	if (p < 55) {
		for (uint32_t s = start; s < ev->seat_count && c->seat_count < len; s++) {
			if (ev->state[s] != want_state)
				break;
			c->seats[c->seat_count++] = s;
		}
	} else {
		for (uint32_t i = 0; i < len && i < n; i++) {
			uint32_t s = pick[rnd(r, n)];
			int dup = 0;
			for (uint32_t k = 0; k < c->seat_count; k++)
				dup |= c->seats[k] == s;
			if (!dup)
				c->seats[c->seat_count++] = s;
		}
	}
	if (c->seat_count >= 2 && chance(r, 20)) { /* command order is not seat order */
		uint32_t t = c->seats[0];
		c->seats[0] = c->seats[c->seat_count - 1];
		c->seats[c->seat_count - 1] = t;
	}
}

/* A claim id for EXTEND/RELEASE/CONFIRM/CANCEL: mostly a known claim in the
 * state the op wants, sometimes any claim, a recycled id, or nonsense. */
static void gen_claim(run *r, bo_cmd *c, uint8_t want1, uint8_t want2)
{
	model *m = &r->m;
	uint32_t p = rnd(r, 100);
	if (p < 82 && m->slots_used > 0) {
		const m_claim *pick = NULL;
		uint32_t seen = 0;
		for (uint32_t i = 0; i < m->slots_used; i++) {
			const m_claim *cl = &m->claims[i];
			if (cl->state == want1 || cl->state == want2)
				if (rnd(r, ++seen) == 0)
					pick = cl;
		}
		if (want1 == MC_ACTIVE && chance(r, 20)) { /* the oldest hold: lifetime */
			for (uint32_t i = 0; i < m->slots_used; i++) {
				const m_claim *cl = &m->claims[i];
				if (cl->state == MC_ACTIVE &&
				    (pick == NULL || cl->created_ms < pick->created_ms))
					pick = cl;
			}
		}
		if (pick == NULL || chance(r, 15))
			pick = &m->claims[rnd(r, m->slots_used)];
		c->claim_id = pick->id;
		c->event_id = chance(r, 95) ? pick->event_id : gen_event_id(r);
		return;
	}
	c->event_id = gen_event_id(r);
	if (p < 90 && r->stale_count > 0) {
		uint64_t n = r->stale_count < W_STALE ? r->stale_count : W_STALE;
		c->claim_id = r->stale[rnd(r, (uint32_t)n)];
		return;
	}
	uint64_t base = m->slots_used ? m->claims[rnd(r, m->slots_used)].id : 1;
	switch (rnd(r, 4)) {
	case 0:
		c->claim_id = 0;
		break;
	case 1:
		c->claim_id = rng_next(&r->rng);
		break;
	case 2:
		c->claim_id = base + (1ull << 32); /* the next generation of a slot */
		break;
	default:
		c->claim_id = base ^ 0xffffffffull; /* a slot never used */
		break;
	}
}

static void gen_payref(run *r, bo_cmd *c)
{
	uint32_t p = rnd(r, 100);
	c->payref_len = (uint8_t)(p < 4   ? 0
	                          : p < 8 ? BO_PAYREF_LEN_MAX + 1 + rnd(r, 200)
	                                  : 1 + rnd(r, BO_PAYREF_LEN_MAX));
	for (uint32_t i = 0; i < c->payref_len && i < BO_PAYREF_LEN_MAX; i++)
		c->payref[i] = (char)('A' + rnd(r, 26));
}

/* Sets fields the op does not use to noise: the engine must ignore them, both
 * when executing and when comparing a repeat's content. */
static void gen_scramble_unused(run *r, bo_cmd *c)
{
	int seats_op = c->op == BO_OP_HOLD_SEATS || c->op == BO_OP_BLOCK ||
	               c->op == BO_OP_UNBLOCK || c->op == BO_OP_QUERY_SEATS;
	if (!seats_op) {
		c->seat_count = (uint8_t)rnd(r, 256);
		for (uint32_t i = 0; i < BO_SEATS_PER_HOLD_MAX; i++)
			c->seats[i] = (uint32_t)rng_next(&r->rng);
	} else {
		for (uint32_t i = c->seat_count; i < BO_SEATS_PER_HOLD_MAX; i++)
			c->seats[i] = (uint32_t)rng_next(&r->rng);
	}
	if (c->op != BO_OP_CONFIRM) {
		c->payref_len = (uint8_t)rnd(r, 256);
		for (uint32_t i = 0; i < BO_PAYREF_LEN_MAX; i++)
			c->payref[i] = (char)rnd(r, 256);
	} else {
		for (uint32_t i = c->payref_len; i < BO_PAYREF_LEN_MAX; i++)
			c->payref[i] = (char)rnd(r, 256);
	}
	if (c->op != BO_OP_HOLD_BEST)
		c->category = (uint8_t)rnd(r, 256);
	if (c->op != BO_OP_HOLD_POOL)
		c->pool = (uint8_t)rnd(r, 256);
	if (c->op != BO_OP_HOLD_BEST && c->op != BO_OP_HOLD_POOL)
		c->quantity = (uint16_t)rnd(r, 65536);
	if (c->op != BO_OP_HOLD_SEATS && c->op != BO_OP_HOLD_BEST && c->op != BO_OP_HOLD_POOL &&
	    c->op != BO_OP_EXTEND)
		c->ttl_ms = (uint32_t)rng_next(&r->rng);
	if (c->op != BO_OP_EXTEND && c->op != BO_OP_RELEASE && c->op != BO_OP_CONFIRM &&
	    c->op != BO_OP_CANCEL)
		c->claim_id = rng_next(&r->rng);
	if (c->op != BO_OP_RELEASE && c->op != BO_OP_CANCEL)
		c->flags ^= (uint8_t)(rnd(r, 2) ? BO_CMD_F_OPERATOR : 0); /* ignored there */
	else if (chance(r, 30))
		c->flags ^= BO_CMD_F_ANY_CLIENT; /* never content */
	if (c->op != BO_OP_CREATE_EVENT)
		c->map = &r->junk_map.map;
}

/* Changes one field the op uses (the model decides whether it really
 * differs: a repeat with equal content is a replay). */
static void gen_change_content(run *r, sent_cmd *s)
{
	bo_cmd *c = &s->cmd;
	uint32_t p = rnd(r, 100);
	if (p < 15) {
		c->event_id ^= 1 + rnd(r, 3);
		return;
	}
	if (p < 22) {
		uint8_t ops[] = {BO_OP_HOLD_SEATS, BO_OP_HOLD_BEST, BO_OP_RELEASE, BO_OP_BLOCK};
		c->op = ops[rnd(r, 4)];
		return;
	}
	switch (c->op) {
	case BO_OP_CREATE_EVENT:
		if (s->has_map && s->map.map.seat_count > 0 && chance(r, 70))
			s->map.categories[rnd(r, s->map.map.seat_count)] ^= 1;
		else if (s->has_map && chance(r, 50))
			s->map.map.pool_count = s->map.map.pool_count ? 0 : 1;
		else
			c->event_id += 1;
		break;
	case BO_OP_HOLD_SEATS:
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		if (c->op == BO_OP_HOLD_SEATS && chance(r, 30))
			c->ttl_ms += 1 + rnd(r, 1000);
		else if (c->seat_count >= 1 && c->seat_count <= BO_SEATS_PER_HOLD_MAX &&
		         chance(r, 70))
			c->seats[rnd(r, c->seat_count)] += 1;
		else
			c->seat_count = (uint8_t)(c->seat_count + 1);
		break;
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL:
		if (chance(r, 33))
			c->quantity += 1;
		else if (chance(r, 50))
			c->ttl_ms += 1;
		else if (c->op == BO_OP_HOLD_BEST)
			c->category ^= 1;
		else
			c->pool ^= 1;
		break;
	case BO_OP_EXTEND:
		if (chance(r, 50))
			c->ttl_ms += 1;
		else
			c->claim_id ^= 1;
		break;
	case BO_OP_CONFIRM:
		if (c->payref_len >= 1 && c->payref_len <= BO_PAYREF_LEN_MAX && chance(r, 50))
			c->payref[rnd(r, c->payref_len)] ^= 1;
		else if (chance(r, 50))
			c->payref_len = (uint8_t)(1 + rnd(r, BO_PAYREF_LEN_MAX));
		else
			c->claim_id ^= 1;
		break;
	default: /* RELEASE, CANCEL: the claim or who asks as what */
		if (chance(r, 30))
			c->flags ^= BO_CMD_F_OPERATOR;
		else
			c->claim_id ^= 1;
		break;
	}
}

/* Who sends a claim op: mostly the claim's own client (a real checkout),
 * sometimes another one (the refusal), with now and then the operator flag
 * (meaningful on RELEASE/CANCEL only) or a legacy record's any-client flag. */
static void gen_claim_client(run *r, bo_cmd *c)
{
	if (c->op != BO_OP_EXTEND && c->op != BO_OP_RELEASE && c->op != BO_OP_CONFIRM &&
	    c->op != BO_OP_CANCEL)
		return;
	const m_claim *cl = m_claim_find(&r->m, c->claim_id);
	if (cl != NULL && chance(r, 80))
		c->client_id = cl->client_id;
	if (chance(r, 10))
		c->flags |= BO_CMD_F_OPERATOR;
	if (chance(r, 4))
		c->flags |= BO_CMD_F_ANY_CLIENT;
}

/* A repeat of an earlier mutating command: mostly one still in the window. */
static int gen_repeat(run *r, int same)
{
	if (r->history_count == 0)
		return 0;
	uint64_t cap = r->m.cfg.idem_capacity;
	uint64_t reach = chance(r, 80) ? cap + cap / 2 + 1 : W_HISTORY;
	if (reach > r->history_count)
		reach = r->history_count;
	if (reach > W_HISTORY)
		reach = W_HISTORY;
	uint64_t back = rnd(r, (uint32_t)reach);
	r->cur = r->history[(r->history_count - 1 - back) % W_HISTORY];
	sent_bind(&r->cur);
	if (same) {
		if (chance(r, 30))
			gen_scramble_unused(r, &r->cur.cmd);
	} else {
		gen_change_content(r, &r->cur);
		sent_bind(&r->cur);
	}
	r->cur_is_repeat = 1;
	return 1;
}

static uint64_t gen_request(run *r, uint64_t client)
{
	return client <= W_CLIENTS ? r->next_request[client]++ : rng_next(&r->rng);
}

static void gen_create(run *r, sent_cmd *s, int valid)
{
	bo_cmd *c = &s->cmd;
	int is_null;
	c->op = BO_OP_CREATE_EVENT;
	c->event_id = valid ? 1 + rnd(r, W_EVENT_IDS) : chance(r, 5) ? 0 : 1 + rnd(r, W_EVENT_IDS);
	gen_map_random(r, &s->map, !valid, &is_null);
	s->has_map = !is_null;
	if (s->has_map) {
		/* bo_seatmap_check must agree with the contract's map rules. */
		int want = m_map_valid(&s->map.map);
		bo_detail d = bo_seatmap_check(&s->map.map);
		if ((d == BO_D_NONE) != want)
			run_fail(r, "bo_seatmap_check says %s for a map the rules call %s",
			         bo_detail_str(d), want ? "valid" : "invalid");
	}
	sent_bind(s);
}

static void gen_command(run *r, int initial)
{
	model *m = &r->m;
	sent_cmd *s = &r->cur;
	bo_cmd *c = &s->cmd;
	memset(s, 0, sizeof(*s));
	r->cur_is_repeat = 0;
	if (initial) {
		gen_create(r, s, 1);
	} else {
		uint32_t p = rnd(r, 1000);
		if (p >= 890 && p < 990 && gen_repeat(r, p < 965))
			return;
		const m_event *ev = NULL;
		if (p < 15) {
			gen_create(r, s, 0);
		} else if (p < 175) {
			c->op = BO_OP_HOLD_SEATS;
			c->event_id = gen_event_id(r);
			ev = m_event_find(m, c->event_id);
			gen_seats(r, ev, c, BO_SEAT_FREE);
			c->ttl_ms = gen_ttl(r);
		} else if (p < 305) {
			c->op = BO_OP_HOLD_BEST;
			c->event_id = gen_event_id(r);
			ev = m_event_find(m, c->event_id);
			uint32_t cats = ev ? ev->category_count : 1;
			c->category = (uint8_t)(chance(r, 93) ? rnd(r, cats) : cats + rnd(r, 3));
			uint32_t q = rnd(r, 100);
			c->quantity =
			        (uint16_t)(q < 70   ? 1 + rnd(r, 4)
			                   : q < 92 ? 1 + rnd(r, BO_SEATS_PER_HOLD_MAX)
			                   : q < 96 ? 0
			                            : BO_SEATS_PER_HOLD_MAX + 1 + rnd(r, 300));
			c->ttl_ms = gen_ttl(r);
		} else if (p < 395) {
			c->op = BO_OP_HOLD_POOL;
			c->event_id = gen_event_id(r);
			ev = m_event_find(m, c->event_id);
			uint32_t pools = ev ? ev->pool_count : 0;
			c->pool = (uint8_t)(pools && chance(r, 92) ? rnd(r, pools)
			                                           : pools + rnd(r, 2));
			uint32_t q = rnd(r, 100);
			c->quantity =
			        (uint16_t)(q < 75   ? 1 + rnd(r, 8)
			                   : q < 93 ? 1 + rnd(r, BO_POOL_QTY_PER_HOLD_MAX)
			                   : q < 96 ? 0
			                            : BO_POOL_QTY_PER_HOLD_MAX + 1 + rnd(r, 100));
			c->ttl_ms = gen_ttl(r);
		} else if (p < 475) {
			c->op = BO_OP_EXTEND;
			gen_claim(r, c, MC_ACTIVE, MC_ACTIVE);
			c->ttl_ms = gen_ttl(r);
			const m_claim *cl = m_claim_find(m, c->claim_id);
			if (cl && chance(r, 25)) { /* at or just past the lifetime bound */
				int64_t t = cl->created_ms + (int64_t)BO_HOLD_LIFETIME_MS_MAX -
				            m->now_ms;
				t += chance(r, 50);
				if (t > 0 && t <= UINT32_MAX)
					c->ttl_ms = (uint32_t)t;
			}
		} else if (p < 555) {
			c->op = BO_OP_RELEASE;
			gen_claim(r, c, MC_ACTIVE, MC_ACTIVE);
		} else if (p < 675) {
			c->op = BO_OP_CONFIRM;
			gen_claim(r, c, MC_ACTIVE, chance(r, 40) ? MC_EXPIRED : MC_ACTIVE);
			gen_payref(r, c);
		} else if (p < 765) {
			c->op = BO_OP_CANCEL;
			gen_claim(r, c, MC_BOOKED, MC_BOOKED);
		} else if (p < 790) {
			c->op = BO_OP_BLOCK;
			c->event_id = gen_event_id(r);
			gen_seats(r, m_event_find(m, c->event_id), c, BO_SEAT_FREE);
		} else if (p < 820) {
			c->op = BO_OP_UNBLOCK;
			c->event_id = gen_event_id(r);
			gen_seats(r, m_event_find(m, c->event_id), c, BO_SEAT_BLOCKED);
		} else if (p < 855 || p >= 990) {
			c->op = BO_OP_QUERY_AVAIL;
			c->event_id = gen_event_id(r);
			uint8_t bad_op = (uint8_t)(BO_OP_COUNT + rnd(r, 256 - BO_OP_COUNT));
			if (p >= 995) /* an unknown op */
				c->op = chance(r, 30) ? BO_OP_NONE : bad_op;
		} else {
			c->op = BO_OP_QUERY_SEATS;
			c->event_id = gen_event_id(r);
			ev = m_event_find(m, c->event_id);
			gen_seats(r, ev, c, (uint8_t)rnd(r, BO_SEAT_STATE_COUNT));
			if (c->seat_count >= 2 && c->seat_count <= BO_SEATS_PER_HOLD_MAX &&
			    chance(r, 10))
				c->seats[1] = c->seats[0]; /* queries may name a seat twice */
		}
	}
	if (bo_op_mutates(c->op) || chance(r, 50)) {
		c->client_id = gen_client(r);
		if (c->client_id != 0)
			gen_claim_client(r, c);
		c->request_id = gen_request(r, c->client_id);
	}
	if (!bo_op_mutates(c->op) && r->history_count > 0 && chance(r, 20)) {
		/* A query or bad op carrying a key in the window is not a repeat. */
		const bo_cmd *h = &r->history[(r->history_count - 1) % W_HISTORY].cmd;
		c->client_id = h->client_id;
		c->request_id = h->request_id;
	}
	if (chance(r, 5))
		gen_scramble_unused(r, c);
	if (bo_op_mutates(c->op) && c->client_id != 0) {
		r->history[r->history_count % W_HISTORY] = *s;
		sent_bind(&r->history[r->history_count % W_HISTORY]);
		r->history_count++;
	}
}

static int64_t gen_time(run *r)
{
	model *m = &r->m;
	int64_t now = m->now_ms;
	uint32_t p = rnd(r, 100);
	if (p < 25)
		return now;
	if (p < 60)
		return now + 1 + rnd(r, 3000);
	if (p < 80)
		return now + 1 + rnd(r, 60000);
	if (p < 85)
		return now + (r->hoard ? 1 + rnd(r, 60000) : 60000 + rnd(r, 20u * 60000u));
	if (p < 93) { /* onto an expiry instant, or just before/after it */
		const m_claim *pick = NULL;
		uint32_t seen = 0;
		for (uint32_t i = 0; i < m->slots_used; i++)
			if (m->claims[i].state == MC_ACTIVE && rnd(r, ++seen) == 0)
				pick = &m->claims[i];
		if (pick == NULL)
			return now + rnd(r, 5000);
		return pick->expires_at_ms + (int64_t)rnd(r, 4) - 1 - (rnd(r, 4) == 0);
	}
	if (p < 97) { /* onto the instant a window entry ages out, or one after */
		uint64_t n = m->idem_stored < m->cfg.idem_capacity ? m->idem_stored
		                                                   : m->cfg.idem_capacity;
		if (n == 0)
			return now;
		const m_idem *e =
		        &m->idem[(m->idem_stored - 1 - rnd(r, (uint32_t)n)) % m->cfg.idem_capacity];
		return e->at_ms + (int64_t)BO_IDEM_WINDOW_MS + chance(r, 50);
	}
	return now - 1 - rnd(r, 100000); /* the clock never goes back */
}

/* ---- Crashes ------------------------------------------------------------------- */

/* A crash (engine assert, sanitizer report, signal) cannot reach run_fail(),
 * so the seed and command under way are kept here and printed by a handler. */
static volatile uint64_t crash_seed, crash_index;
static volatile int crash_armed;

static void crash_report(void)
{
	if (!crash_armed)
		return;
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
	                 "model_test: CRASH at seed %" PRIu64 " command %" PRIu64
	                 "; replay: BO_MODEL_SEED=%" PRIu64 " BO_MODEL_COMMANDS=%" PRIu64
	                 " BO_MODEL_TRACE=1 <model_test> --filter model/part0\n",
	                 crash_seed, crash_index, crash_seed, crash_index + 1);
	if (n > 0 && write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static void crash_signal(int sig)
{
	crash_report();
	signal(sig, SIG_DFL);
	raise(sig);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
void __sanitizer_set_death_callback(void (*callback)(void));
#endif

static void crash_arm(uint64_t seed)
{
	crash_seed = seed;
	crash_index = 0;
	if (crash_armed)
		return;
	crash_armed = 1;
	signal(SIGABRT, crash_signal);
	signal(SIGSEGV, crash_signal);
	signal(SIGBUS, crash_signal);
	signal(SIGFPE, crash_signal);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
	__sanitizer_set_death_callback(crash_report);
#endif
}

/* ---- Seeds -------------------------------------------------------------------- */

static void run_config(run *r, engine_config *cfg)
{
	static const uint32_t claims[] = {8, 32, 64, 256};
	static const uint32_t idem[] = {4, 16, 64, 256};
	engine_config_default(cfg);
	cfg->claims_max = claims[rnd(r, 4)];
	cfg->idem_capacity = idem[rnd(r, 4)];
	cfg->events_max = 1 + rnd(r, W_EVENTS_MAX);
	cfg->seats_max = chance(r, 30) ? 30 + rnd(r, 120) : 4096;
	_Static_assert(W_EVENTS_MAX <= W_EVENT_IDS, "some creates fail for want of room");
}

/* Static, not on the heap: a failing check leaves the test by longjmp, and
 * the leak checker would bury the report under the run's buffers. */
static run the_run;

static void run_seed(uint64_t seed, uint64_t commands, int twin, outcome_counts *counts)
{
	run *r = &the_run;
	memset(r, 0, sizeof(*r));
	r->seed = seed;
	r->commands = commands;
	crash_arm(seed);
	r->counts = counts;
	r->rng = seed * 0x2545f4914f6cdd1dull + 0x1234567;
	const char *trace = getenv("BO_MODEL_TRACE");
	r->trace = trace && trace[0] == '1';
	run_config(r, &r->m.cfg);
	r->hoard = chance(r, 30);
	r->clients = 1 + rnd(r, r->hoard ? 2 : W_CLIENTS);
	if (r->hoard && r->m.cfg.claims_max < 64)
		r->m.cfg.claims_max = 64; /* room for a client's BO_HOLDS_PER_CLIENT_MAX holds */
	int rc = engine_new(&r->m.cfg, &r->e);
	cr_assert_eq(rc, 0, "engine_new(claims %u idem %u events %u seats %u) = %d",
	             r->m.cfg.claims_max, r->m.cfg.idem_capacity, r->m.cfg.events_max,
	             r->m.cfg.seats_max, rc);
	if (twin) {
		rc = engine_new(&r->m.cfg, &r->twin);
		cr_assert_eq(rc, 0, "twin engine_new = %d", rc);
	}
	int is_null;
	gen_map_random(r, &r->junk_map, 0, &is_null);
	for (uint32_t c = 0; c <= W_CLIENTS; c++)
		r->next_request[c] = (rng_next(&r->rng) >> 16) + 1;
	if (r->trace)
		fprintf(stderr,
		        "seed %" PRIu64 ": claims_max %u idem_capacity %u events_max %u"
		        " seats_max %u clients %u hoard %d twin %d\n",
		        seed, r->m.cfg.claims_max, r->m.cfg.idem_capacity, r->m.cfg.events_max,
		        r->m.cfg.seats_max, r->clients, r->hoard, twin);

	/* Realistic wall-clock milliseconds: nothing may assume small times. */
	do_advance(r, 1700000000000ll + rnd(r, 1000000));
	uint32_t initial = 1 + rnd(r, 3);
	while (r->index < commands) {
		if (r->index > 0)
			do_advance(r, gen_time(r));
		uint32_t batch = 1 + rnd(r, 8);
		for (uint32_t i = 0; i < batch && r->index < commands; i++, r->index++) {
			crash_index = r->index;
			gen_command(r, r->index < initial);
			do_command(r);
		}
		if (r->twin && engine_digest(r->e) != engine_digest(r->twin))
			run_fail(r, "twin engines' digests differ after the batch");
	}
	engine_free(r->e);
	if (r->twin)
		engine_free(r->twin);
}

/* ---- Tests ---------------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return fallback;
	char *end;
	unsigned long long x = strtoull(v, &end, 0);
	cr_assert(*end == '\0', "%s=%s is not a number", name, v);
	return x;
}

static void print_counts(const outcome_counts *k)
{
	fprintf(stderr,
	        "model_test: %" PRIu64 " commands, %" PRIu64 " replays, %" PRIu64
	        " conflicts, %" PRIu64 " re-executed after eviction, %" PRIu64 " expiries, %" PRIu64
	        " confirms after expiry, %" PRIu64 " recycled slots, %" PRIu64
	        " claim ops of another client refused, %" PRIu64 " allowed\n",
	        k->commands, k->replays, k->conflicts, k->idem_evicted_reexec, k->expiries,
	        k->confirm_after_expiry, k->recycled, k->not_owner_refused, k->not_owner_allowed);
	for (uint32_t op = 0; op <= BO_OP_COUNT; op++)
		for (uint32_t d = 0; d < BO_D_COUNT; d++)
			if (k->by_op_detail[op][d])
				fprintf(stderr, "  %-12s %-28s %10" PRIu64 "\n",
				        op < BO_OP_COUNT ? op_name((int)op) : "bad-op",
				        d ? bo_detail_str((int)d) : "ok",
				        k->by_op_detail[op][d]);
}

/* Outcomes every full-size part must have produced: without them the stream
 * would not exercise the rule, and agreeing on it would prove nothing. */
static void check_coverage(const outcome_counts *k)
{
	static const struct {
		uint8_t op, detail;
	} need[] = {
	        {BO_OP_CREATE_EVENT, BO_D_NONE},
	        {BO_OP_CREATE_EVENT, BO_D_MAP_INVALID},
	        {BO_OP_CREATE_EVENT, BO_D_EVENT_EXISTS},
	        {BO_OP_CREATE_EVENT, BO_D_EVENTS_FULL},
	        {BO_OP_CREATE_EVENT, BO_D_SEATS_FULL},
	        {BO_OP_HOLD_SEATS, BO_D_NONE},
	        {BO_OP_HOLD_SEATS, BO_D_SEAT_RANGE},
	        {BO_OP_HOLD_SEATS, BO_D_SEAT_DUPLICATE},
	        {BO_OP_HOLD_SEATS, BO_D_SEAT_COUNT},
	        {BO_OP_HOLD_SEATS, BO_D_SEAT_UNAVAILABLE},
	        {BO_OP_HOLD_SEATS, BO_D_TTL_RANGE},
	        {BO_OP_HOLD_SEATS, BO_D_NO_EVENT},
	        {BO_OP_HOLD_SEATS, BO_D_NO_CLIENT},
	        {BO_OP_HOLD_BEST, BO_D_NONE},
	        {BO_OP_HOLD_BEST, BO_D_SOLD_OUT},
	        {BO_OP_HOLD_BEST, BO_D_QUANTITY},
	        {BO_OP_HOLD_BEST, BO_D_CATEGORY_RANGE},
	        {BO_OP_HOLD_BEST, BO_D_CLIENT_HOLDS},
	        {BO_OP_HOLD_BEST, BO_D_CLAIMS_FULL},
	        {BO_OP_HOLD_POOL, BO_D_NONE},
	        {BO_OP_HOLD_POOL, BO_D_POOL_RANGE},
	        {BO_OP_HOLD_POOL, BO_D_POOL_UNAVAILABLE},
	        {BO_OP_HOLD_POOL, BO_D_CLIENT_HOLDS},
	        {BO_OP_EXTEND, BO_D_NONE},
	        {BO_OP_EXTEND, BO_D_HOLD_EXPIRED},
	        {BO_OP_EXTEND, BO_D_LIFETIME},
	        {BO_OP_EXTEND, BO_D_NO_HOLD},
	        {BO_OP_EXTEND, BO_D_ALREADY_CONFIRMED},
	        {BO_OP_RELEASE, BO_D_NONE},
	        {BO_OP_RELEASE, BO_D_HOLD_EXPIRED},
	        {BO_OP_CONFIRM, BO_D_NONE},
	        {BO_OP_CONFIRM, BO_D_HOLD_EXPIRED},
	        {BO_OP_CONFIRM, BO_D_PAYREF},
	        {BO_OP_CONFIRM, BO_D_NO_HOLD},
	        {BO_OP_CANCEL, BO_D_NONE},
	        {BO_OP_CANCEL, BO_D_NOT_A_BOOKING},
	        {BO_OP_CANCEL, BO_D_NO_BOOKING},
	        {BO_OP_BLOCK, BO_D_NONE},
	        {BO_OP_BLOCK, BO_D_SEAT_UNAVAILABLE},
	        {BO_OP_UNBLOCK, BO_D_NONE},
	        {BO_OP_UNBLOCK, BO_D_NOT_BLOCKED},
	        {BO_OP_QUERY_AVAIL, BO_D_NONE},
	        {BO_OP_QUERY_SEATS, BO_D_NONE},
	        {BO_OP_COUNT, BO_D_BAD_OP},
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		cr_expect(k->by_op_detail[need[i].op][need[i].detail] > 0,
		          "coverage: the stream never produced %s -> %s",
		          need[i].op < BO_OP_COUNT ? op_name(need[i].op) : "bad-op",
		          need[i].detail ? bo_detail_str(need[i].detail) : "ok");
	cr_expect(k->replays > 0 && k->conflicts > 0 && k->idem_evicted_reexec > 0,
	          "coverage: replays %" PRIu64 " conflicts %" PRIu64 " re-executions %" PRIu64,
	          k->replays, k->conflicts, k->idem_evicted_reexec);
	cr_expect(k->not_owner_refused > 0 && k->not_owner_allowed > 0,
	          "coverage: claim ops of another client refused %" PRIu64 ", allowed %" PRIu64,
	          k->not_owner_refused, k->not_owner_allowed);
	cr_expect(k->expiries > 0 && k->confirm_after_expiry > 0 && k->recycled > 0,
	          "coverage: expiries %" PRIu64 " confirms after expiry %" PRIu64
	          " recycled %" PRIu64,
	          k->expiries, k->confirm_after_expiry, k->recycled);
}

/* Runs the part'th share of the default seeds; with BO_MODEL_SEED set (a
 * replay), part 0 runs exactly that seed and the other parts skip. */
static void run_part(uint32_t part)
{
	static outcome_counts counts;
	outcome_counts *k = &counts;
	memset(k, 0, sizeof(*k));
	if (getenv("BO_MODEL_SEED") != NULL) {
		if (part != 0)
			cr_skip_test("BO_MODEL_SEED is set: part0 replays that seed");
		uint64_t seed = env_u64("BO_MODEL_SEED", 0);
		run_seed(seed, env_u64("BO_MODEL_COMMANDS", 10000), seed % 8 == 3, k);
		if (getenv("BO_MODEL_STATS"))
			print_counts(k);
		return;
	}
	uint64_t seeds = env_u64("BO_MODEL_SEEDS", 200);
	uint64_t commands = env_u64("BO_MODEL_COMMANDS", 10000);
	uint64_t first = env_u64("BO_MODEL_SEED_FIRST", 1);
	uint64_t ran = 0;
	for (uint64_t i = part; i < seeds; i += W_PARTS, ran++)
		run_seed(first + i, commands, (first + i) % 8 == 3, k);
	if (getenv("BO_MODEL_STATS"))
		print_counts(k);
	/* A full-size share must have reached every rule; small runs may not. */
	if (ran >= 40 && commands >= 10000)
		check_coverage(k);
}

Test(model, part0)
{
	run_part(0);
}
Test(model, part1)
{
	run_part(1);
}
Test(model, part2)
{
	run_part(2);
}
Test(model, part3)
{
	run_part(3);
}
