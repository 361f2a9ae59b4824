/*
 * changes.c — journal records to database rows (see changes.h).
 *
 * Two structures:
 *  - the active holds: a slab of holds, a hash map (event, claim) -> slab
 *    index, and an indexed min-heap of slab indices by (expires_at, claim
 *    id), so that expiring, extending and ending a hold are O(log n);
 *  - the batch: vectors of rows plus hash maps (event, key) -> row index
 *    that collapse repeated changes of one row into its final state. The
 *    batch maps are cleared in O(1) by bumping a generation.
 */
#include "committer/changes.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/seatmap.h"
#include "shard/entry.h"

/* ---- Names --------------------------------------------------------------- */

const char *chg_cause_str(int cause)
{
	static const char *const n[CHG_CAUSE_COUNT] = {"hold",	 "release", "expiry", "confirm",
						       "cancel", "block",   "unblock"};
	assert(cause >= 0 && cause < CHG_CAUSE_COUNT);
	return n[cause];
}

const char *chg_hold_state_str(int st)
{
	static const char *const n[] = {"held", "released", "expired", "confirmed"};
	assert(st >= 0 && st <= CHG_H_CONFIRMED);
	return n[st];
}

const char *chg_booking_state_str(int st)
{
	assert(st == CHG_B_CONFIRMED || st == CHG_B_CANCELLED);
	return st == CHG_B_CONFIRMED ? "confirmed" : "cancelled";
}

const char *chg_outbox_type_str(int type)
{
	static const char *const n[] = {"hold_created", "hold_expired", "hold_released", "booking_confirmed",
					"booking_cancelled"};
	assert(type >= 0 && type <= CHG_O_BOOKING_CANCELLED);
	return n[type];
}

/* ---- Vectors ------------------------------------------------------------- */

/* Makes room for one more element; returns its index or -ENOMEM. */
static long vec_grow(void **v, size_t *n, size_t *cap, size_t elem)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		void *p = realloc(*v, nc * elem);
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = nc;
	}
	return (long)(*n)++;
}

#define VEC_PUSH(vec) vec_grow((void **)&(vec).v, &(vec).n, &(vec).cap, sizeof(*(vec).v))

/* ---- Hash map (a, b) -> index -------------------------------------------- */

typedef struct kslot {
	uint64_t a, b;
	uint32_t val;
	uint32_t gen; /* the slot is in use when gen == map.gen */
} kslot;

typedef struct kmap {
	kslot *s;
	uint32_t cap, len, gen; /* cap a power of two, 0 before the first put */
} kmap;

static uint64_t kmix(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull + (a << 6) + (a >> 2));
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return h;
}

static long kmap_get(const kmap *m, uint64_t a, uint64_t b)
{
	if (m->cap == 0)
		return -1;
	for (uint32_t i = (uint32_t)kmix(a, b) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const kslot *k = &m->s[i];
		if (k->gen != m->gen)
			return -1;
		if (k->a == a && k->b == b)
			return k->val;
	}
}

static int kmap_put(kmap *m, uint64_t a, uint64_t b, uint32_t val);

static int kmap_rehash(kmap *m, uint32_t ncap)
{
	kslot *old = m->s;
	uint32_t ocap = m->cap, ogen = m->gen;
	kslot *s = calloc(ncap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	m->s = s;
	m->cap = ncap;
	m->len = 0;
	m->gen = 1;
	for (uint32_t i = 0; i < ocap; i++)
		if (old[i].gen == ogen)
			kmap_put(m, old[i].a, old[i].b, old[i].val);
	free(old);
	return 0;
}

/* Inserts or overwrites. 0 or -ENOMEM. */
static int kmap_put(kmap *m, uint64_t a, uint64_t b, uint32_t val)
{
	if ((m->len + 1) * 4 > m->cap * 3) {
		int rc = kmap_rehash(m, m->cap ? m->cap * 2 : 256);
		if (rc)
			return rc;
	}
	for (uint32_t i = (uint32_t)kmix(a, b) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		kslot *k = &m->s[i];
		if (k->gen != m->gen) {
			*k = (kslot){.a = a, .b = b, .val = val, .gen = m->gen};
			m->len++;
			return 0;
		}
		if (k->a == a && k->b == b) {
			k->val = val;
			return 0;
		}
	}
}

/* Removes a key (present or not) with backward-shift deletion, so lookups
 * never need tombstones. */
static void kmap_del(kmap *m, uint64_t a, uint64_t b)
{
	if (m->cap == 0)
		return;
	uint32_t mask = m->cap - 1, i = (uint32_t)kmix(a, b) & mask;
	for (;; i = (i + 1) & mask) {
		if (m->s[i].gen != m->gen)
			return;
		if (m->s[i].a == a && m->s[i].b == b)
			break;
	}
	m->s[i].gen = m->gen - 1;
	m->len--;
	for (uint32_t j = (i + 1) & mask; m->s[j].gen == m->gen; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)kmix(m->s[j].a, m->s[j].b) & mask;
		/* Move j back into the hole when its home is not in (i, j]. */
		int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!between) {
			m->s[i] = m->s[j];
			m->s[j].gen = m->gen - 1;
			i = j;
		}
	}
}

/* Empties the map in O(1). */
static void kmap_clear(kmap *m)
{
	m->len = 0;
	if (++m->gen == 0) { /* wrapped: stale slots could look current */
		memset(m->s, 0, (size_t)m->cap * sizeof(*m->s));
		m->gen = 1;
	}
}

/* ---- State --------------------------------------------------------------- */

typedef struct active {
	chg_claim c;
	int64_t expires_ms, created_ms;
	uint64_t created_seq;
	uint32_t heap_pos; /* index in heap[]; UINT32_MAX when free */
	uint32_t next_free;
} active;

struct chg_state {
	uint32_t shard_id;
	uint64_t seq, outbox_pos;
	int64_t now_ms;
	/* Active holds. */
	active *act;
	uint32_t act_cap, act_free; /* free list head, UINT32_MAX: none */
	uint32_t *heap, heap_len;
	kmap act_map;
	/* The batch and its collapsing maps. */
	chg_batch b;
	kmap seat_map, pool_map, hold_map, booking_map;
	/* The record being applied. */
	uint32_t ordinal;
	char *err;
	size_t errlen;
};

int chg_new(uint32_t shard_id, chg_state **out)
{
	chg_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->shard_id = shard_id;
	st->act_free = UINT32_MAX;
	*out = st;
	return 0;
}

void chg_batch_clear(chg_state *st)
{
	chg_batch *b = &st->b;
	for (size_t i = 0; i < b->events.n; i++)
		bo_seatmap_free(b->events.v[i].map);
	b->events.n = b->seats.n = b->pools.n = b->holds.n = b->bookings.n = b->changes.n = b->outbox.n = 0;
	b->first_seq = b->last_seq = 0;
	b->first_ms = b->last_ms = 0;
	b->records = 0;
	b->outbox_first = st->outbox_pos;
	kmap_clear(&st->seat_map);
	kmap_clear(&st->pool_map);
	kmap_clear(&st->hold_map);
	kmap_clear(&st->booking_map);
}

void chg_free(chg_state *st)
{
	if (!st)
		return;
	chg_batch_clear(st);
	chg_batch *b = &st->b;
	free(b->events.v);
	free(b->seats.v);
	free(b->pools.v);
	free(b->holds.v);
	free(b->bookings.v);
	free(b->changes.v);
	free(b->outbox.v);
	free(st->seat_map.s);
	free(st->pool_map.s);
	free(st->hold_map.s);
	free(st->booking_map.s);
	free(st->act_map.s);
	free(st->act);
	free(st->heap);
	free(st);
}

void chg_position(chg_state *st, uint64_t seq, uint64_t outbox_position)
{
	st->seq = seq;
	st->outbox_pos = outbox_position;
	chg_batch_clear(st);
}

const chg_batch *chg_get_batch(const chg_state *st) { return &st->b; }
uint64_t chg_seq(const chg_state *st) { return st->seq; }
uint64_t chg_outbox_position(const chg_state *st) { return st->outbox_pos; }
uint64_t chg_active_holds(const chg_state *st) { return st->heap_len; }

static int fail(chg_state *st, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, st->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- The expiry heap ------------------------------------------------------ */

static int act_less(const chg_state *st, uint32_t x, uint32_t y)
{
	const active *a = &st->act[x], *b = &st->act[y];
	if (a->expires_ms != b->expires_ms)
		return a->expires_ms < b->expires_ms;
	return a->c.claim_id < b->c.claim_id;
}

static void heap_set(chg_state *st, uint32_t pos, uint32_t idx)
{
	st->heap[pos] = idx;
	st->act[idx].heap_pos = pos;
}

static void heap_up(chg_state *st, uint32_t pos)
{
	uint32_t idx = st->heap[pos];
	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;
		if (!act_less(st, idx, st->heap[parent]))
			break;
		heap_set(st, pos, st->heap[parent]);
		pos = parent;
	}
	heap_set(st, pos, idx);
}

static void heap_down(chg_state *st, uint32_t pos)
{
	uint32_t idx = st->heap[pos];
	for (;;) {
		uint32_t l = 2 * pos + 1, best = l;
		if (l >= st->heap_len)
			break;
		if (l + 1 < st->heap_len && act_less(st, st->heap[l + 1], st->heap[l]))
			best = l + 1;
		if (!act_less(st, st->heap[best], idx))
			break;
		heap_set(st, pos, st->heap[best]);
		pos = best;
	}
	heap_set(st, pos, idx);
}

static void heap_remove(chg_state *st, uint32_t pos)
{
	uint32_t last = st->heap[--st->heap_len];
	if (pos == st->heap_len)
		return;
	heap_set(st, pos, last);
	heap_up(st, pos);
	heap_down(st, st->act[last].heap_pos);
}

/* Adds an active hold. 0, -EEXIST or -ENOMEM. */
static int act_add(chg_state *st, const chg_claim *c, int64_t expires_ms, uint64_t created_seq, int64_t created_ms)
{
	if (kmap_get(&st->act_map, c->event_id, c->claim_id) >= 0)
		return -EEXIST;
	if (st->act_free == UINT32_MAX) {
		uint32_t ncap = st->act_cap ? st->act_cap * 2 : 1024;
		active *a = realloc(st->act, (size_t)ncap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		st->act = a;
		uint32_t *h = realloc(st->heap, (size_t)ncap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		st->heap = h;
		for (uint32_t i = ncap; i-- > st->act_cap;) {
			st->act[i].heap_pos = UINT32_MAX;
			st->act[i].next_free = st->act_free;
			st->act_free = i;
		}
		st->act_cap = ncap;
	}
	uint32_t idx = st->act_free;
	if (kmap_put(&st->act_map, c->event_id, c->claim_id, idx) != 0)
		return -ENOMEM;
	st->act_free = st->act[idx].next_free;
	active *a = &st->act[idx];
	a->c = *c;
	a->expires_ms = expires_ms;
	a->created_ms = created_ms;
	a->created_seq = created_seq;
	st->heap[st->heap_len] = idx;
	a->heap_pos = st->heap_len++;
	heap_up(st, a->heap_pos);
	return 0;
}

static active *act_find(chg_state *st, uint64_t event_id, uint64_t claim_id)
{
	long i = kmap_get(&st->act_map, event_id, claim_id);
	return i < 0 ? NULL : &st->act[i];
}

static void act_remove(chg_state *st, active *a)
{
	uint32_t idx = (uint32_t)(a - st->act);
	heap_remove(st, a->heap_pos);
	kmap_del(&st->act_map, a->c.event_id, a->c.claim_id);
	a->heap_pos = UINT32_MAX;
	a->next_free = st->act_free;
	st->act_free = idx;
}

int chg_load_hold(chg_state *st, const chg_claim *c, int64_t expires_ms, uint64_t created_seq, int64_t created_ms)
{
	return act_add(st, c, expires_ms, created_seq, created_ms);
}

/* ---- Batch rows ------------------------------------------------------------ */

static int seat_set(chg_state *st, uint64_t event_id, uint32_t seat, uint8_t state, uint64_t claim_id, uint64_t seq)
{
	long i = kmap_get(&st->seat_map, event_id, seat);
	if (i < 0) {
		i = VEC_PUSH(st->b.seats);
		if (i < 0 || kmap_put(&st->seat_map, event_id, seat, (uint32_t)i) != 0)
			return -ENOMEM;
	}
	st->b.seats.v[i] = (chg_seat){.event_id = event_id, .seat = seat, .state = state, .claim_id = claim_id, .seq = seq};
	return 0;
}

static int pool_add(chg_state *st, uint64_t event_id, uint32_t pool, int64_t held, int64_t booked, uint64_t seq)
{
	long i = kmap_get(&st->pool_map, event_id, pool);
	if (i < 0) {
		i = VEC_PUSH(st->b.pools);
		if (i < 0 || kmap_put(&st->pool_map, event_id, pool, (uint32_t)i) != 0)
			return -ENOMEM;
		st->b.pools.v[i] = (chg_pool){.event_id = event_id, .pool = pool};
	}
	chg_pool *p = &st->b.pools.v[i];
	p->held += held;
	p->booked += booked;
	p->seq = seq;
	return 0;
}

/* The seat_changes rows (and seat/pool rows) of one claim changing state:
 * every seat from -> to, or the pool quantity. */
static int claim_change(chg_state *st, const journal_record *rec, const chg_claim *c, uint8_t from, uint8_t to,
			uint8_t cause, uint64_t client_id, uint64_t request_id)
{
	uint64_t holder = (to == BO_SEAT_HELD || to == BO_SEAT_BOOKED) ? c->claim_id : 0;
	uint32_t n = c->pool < 0 ? c->seat_count : 1;
	for (uint32_t i = 0; i < n; i++) {
		long k = VEC_PUSH(st->b.changes);
		if (k < 0)
			return -ENOMEM;
		st->b.changes.v[k] = (chg_change){
			.seq = rec->seq,
			.ordinal = st->ordinal++,
			.event_id = c->event_id,
			.seat = c->pool < 0 ? (int32_t)c->seats[i] : -1,
			.pool = c->pool,
			.quantity = c->pool < 0 ? 1 : c->quantity,
			.from = from,
			.to = to,
			.cause = cause,
			.claim_id = c->claim_id,
			.client_id = client_id,
			.request_id = request_id,
			.at_ms = st->now_ms,
		};
		int rc = c->pool < 0 ? seat_set(st, c->event_id, c->seats[i], to, holder, rec->seq) : 0;
		if (rc)
			return rc;
	}
	if (c->pool >= 0) {
		int64_t q = c->quantity;
		int64_t held = (to == BO_SEAT_HELD ? q : 0) - (from == BO_SEAT_HELD ? q : 0);
		int64_t booked = (to == BO_SEAT_BOOKED ? q : 0) - (from == BO_SEAT_BOOKED ? q : 0);
		return pool_add(st, c->event_id, (uint32_t)c->pool, held, booked, rec->seq);
	}
	return 0;
}

static int outbox_add(chg_state *st, const journal_record *rec, uint8_t type, const chg_claim *c, const bo_cmd *cmd,
		      int64_t expires_ms)
{
	long k = VEC_PUSH(st->b.outbox);
	if (k < 0)
		return -ENOMEM;
	chg_outbox *o = &st->b.outbox.v[k];
	memset(o, 0, sizeof(*o));
	o->position = ++st->outbox_pos;
	o->seq = rec->seq;
	o->type = type;
	o->c = *c;
	o->expires_ms = expires_ms;
	o->at_ms = st->now_ms;
	if (cmd && type == CHG_O_BOOKING_CONFIRMED) {
		o->payref_len = cmd->payref_len;
		memcpy(o->payref, cmd->payref, cmd->payref_len);
	}
	return 0;
}

/* The batch's row for a hold: the one already in the batch, else a new
 * update row (is_new 0). NULL on -ENOMEM. */
static chg_hold *hold_touch(chg_state *st, const chg_claim *c)
{
	long i = kmap_get(&st->hold_map, c->event_id, c->claim_id);
	if (i >= 0)
		return &st->b.holds.v[i];
	i = VEC_PUSH(st->b.holds);
	if (i < 0 || kmap_put(&st->hold_map, c->event_id, c->claim_id, (uint32_t)i) != 0)
		return NULL;
	chg_hold *h = &st->b.holds.v[i];
	memset(h, 0, sizeof(*h));
	h->c = *c;
	return h;
}

static chg_booking *booking_touch(chg_state *st, const chg_claim *c)
{
	long i = kmap_get(&st->booking_map, c->event_id, c->claim_id);
	if (i >= 0)
		return &st->b.bookings.v[i];
	i = VEC_PUSH(st->b.bookings);
	if (i < 0 || kmap_put(&st->booking_map, c->event_id, c->claim_id, (uint32_t)i) != 0)
		return NULL;
	chg_booking *bk = &st->b.bookings.v[i];
	memset(bk, 0, sizeof(*bk));
	bk->c = *c;
	return bk;
}

/* ---- Records --------------------------------------------------------------- */

/* Expires, in the engine's order, every active hold with expires_at <= now. */
static int expire_until(chg_state *st, const journal_record *rec)
{
	while (st->heap_len > 0 && st->act[st->heap[0]].expires_ms <= st->now_ms) {
		active *a = &st->act[st->heap[0]];
		int rc = claim_change(st, rec, &a->c, BO_SEAT_HELD, BO_SEAT_FREE, CHG_EXPIRY, a->c.client_id,
				      a->c.request_id);
		if (rc == 0)
			rc = outbox_add(st, rec, CHG_O_HOLD_EXPIRED, &a->c, NULL, 0);
		chg_hold *h = rc == 0 ? hold_touch(st, &a->c) : NULL;
		if (!h)
			return -ENOMEM;
		h->state = CHG_H_EXPIRED;
		h->expires_ms = a->expires_ms;
		h->ended_seq = rec->seq;
		h->ended_ms = st->now_ms;
		act_remove(st, a);
	}
	return 0;
}

/* The claim an OK claim result describes; -EBADMSG when it is not one. */
static int claim_of(chg_state *st, const bo_result *r, chg_claim *c)
{
	memset(c, 0, sizeof(*c));
	c->event_id = r->event_id;
	c->claim_id = r->claim_id;
	c->client_id = r->client_id;
	c->request_id = r->request_id;
	c->quantity = r->quantity;
	if (r->seat_count > 0) {
		if (r->seat_count > BO_SEATS_PER_HOLD_MAX || r->quantity != r->seat_count)
			return fail(st, -EBADMSG, "record with a claim of %u seats and quantity %u", r->seat_count,
				    r->quantity);
		c->pool = -1;
		c->seat_count = r->seat_count;
		memcpy(c->seats, r->seats, r->seat_count * sizeof(r->seats[0]));
	} else {
		if (r->pool >= BO_POOLS_PER_EVENT_MAX || r->quantity == 0)
			return fail(st, -EBADMSG, "record with a pool claim of pool %u quantity %u", r->pool,
				    r->quantity);
		c->pool = r->pool;
	}
	return 0;
}

static int on_hold(chg_state *st, const journal_record *rec, const bo_result *r)
{
	chg_claim c;
	int rc = claim_of(st, r, &c);
	if (rc)
		return rc;
	rc = act_add(st, &c, r->expires_at_ms, rec->seq, st->now_ms);
	if (rc == -EEXIST)
		return fail(st, -EBADMSG, "hold %llu of event %llu created twice", (unsigned long long)c.claim_id,
			    (unsigned long long)c.event_id);
	if (rc == 0)
		rc = claim_change(st, rec, &c, BO_SEAT_FREE, BO_SEAT_HELD, CHG_HOLD, c.client_id, c.request_id);
	if (rc == 0)
		rc = outbox_add(st, rec, CHG_O_HOLD_CREATED, &c, NULL, r->expires_at_ms);
	chg_hold *h = rc == 0 ? hold_touch(st, &c) : NULL;
	if (!h)
		return rc ? rc : -ENOMEM;
	h->is_new = 1;
	h->state = CHG_H_HELD;
	h->expires_ms = r->expires_at_ms;
	h->created_seq = rec->seq;
	h->created_ms = st->now_ms;
	return 0;
}

static active *active_or_fail(chg_state *st, const bo_result *r, const char *what)
{
	active *a = act_find(st, r->event_id, r->claim_id);
	if (!a)
		fail(st, -EBADMSG, "%s of hold %llu of event %llu, which is not active here", what,
		     (unsigned long long)r->claim_id, (unsigned long long)r->event_id);
	return a;
}

static int on_extend(chg_state *st, const bo_result *r)
{
	active *a = active_or_fail(st, r, "extend");
	if (!a)
		return -EBADMSG;
	a->expires_ms = r->expires_at_ms;
	heap_up(st, a->heap_pos);
	heap_down(st, a->heap_pos);
	chg_hold *h = hold_touch(st, &a->c);
	if (!h)
		return -ENOMEM;
	h->expires_ms = r->expires_at_ms;
	if (!h->is_new)
		h->state = CHG_H_HELD;
	return 0;
}

static int on_release(chg_state *st, const journal_record *rec, const bo_result *r)
{
	active *a = active_or_fail(st, r, "release");
	if (!a)
		return -EBADMSG;
	chg_claim c = a->c;
	int64_t expires = a->expires_ms;
	act_remove(st, a);
	int rc = claim_change(st, rec, &c, BO_SEAT_HELD, BO_SEAT_FREE, CHG_RELEASE, r->client_id, r->request_id);
	if (rc == 0)
		rc = outbox_add(st, rec, CHG_O_HOLD_RELEASED, &c, NULL, 0);
	chg_hold *h = rc == 0 ? hold_touch(st, &c) : NULL;
	if (!h)
		return rc ? rc : -ENOMEM;
	h->state = CHG_H_RELEASED;
	h->expires_ms = expires;
	h->ended_seq = rec->seq;
	h->ended_ms = st->now_ms;
	return 0;
}

static int on_confirm(chg_state *st, const journal_record *rec, const bo_cmd *cmd, const bo_result *r)
{
	chg_claim c;
	int rc = claim_of(st, r, &c);
	if (rc)
		return rc;
	if (cmd->payref_len == 0 || cmd->payref_len > BO_PAYREF_LEN_MAX)
		return fail(st, -EBADMSG, "confirm of hold %llu with a payref of %u bytes",
			    (unsigned long long)c.claim_id, cmd->payref_len);
	/* The hold is active (held -> booked) or expired (its seats were free
	 * again and are booked directly: free -> booked). */
	active *a = act_find(st, c.event_id, c.claim_id);
	int64_t expires = 0;
	if (a) {
		expires = a->expires_ms;
		act_remove(st, a);
	}
	uint8_t from = a ? BO_SEAT_HELD : BO_SEAT_FREE;
	rc = claim_change(st, rec, &c, from, BO_SEAT_BOOKED, CHG_CONFIRM, r->client_id, r->request_id);
	if (rc == 0)
		rc = outbox_add(st, rec, CHG_O_BOOKING_CONFIRMED, &c, cmd, 0);
	chg_hold *h = rc == 0 ? hold_touch(st, &c) : NULL;
	chg_booking *bk = h ? booking_touch(st, &c) : NULL;
	if (!bk)
		return rc ? rc : -ENOMEM;
	if (a)
		h->expires_ms = expires;
	h->state = CHG_H_CONFIRMED;
	h->ended_seq = rec->seq;
	h->ended_ms = st->now_ms;
	bk->is_new = 1;
	bk->state = CHG_B_CONFIRMED;
	bk->payref_len = cmd->payref_len;
	memcpy(bk->payref, cmd->payref, cmd->payref_len);
	bk->confirmed_seq = rec->seq;
	bk->confirmed_ms = st->now_ms;
	return 0;
}

static int on_cancel(chg_state *st, const journal_record *rec, const bo_result *r)
{
	chg_claim c;
	int rc = claim_of(st, r, &c);
	if (rc)
		return rc;
	rc = claim_change(st, rec, &c, BO_SEAT_BOOKED, BO_SEAT_FREE, CHG_CANCEL, r->client_id, r->request_id);
	if (rc == 0)
		rc = outbox_add(st, rec, CHG_O_BOOKING_CANCELLED, &c, NULL, 0);
	chg_booking *bk = rc == 0 ? booking_touch(st, &c) : NULL;
	if (!bk)
		return rc ? rc : -ENOMEM;
	/* An update row keeps the booking's own client; the canceller is
	 * recorded apart. */
	if (!bk->is_new) {
		bk->c.client_id = 0;
		bk->c.request_id = 0;
	}
	bk->state = CHG_B_CANCELLED;
	bk->cancelled_seq = rec->seq;
	bk->cancelled_ms = st->now_ms;
	bk->cancel_client_id = r->client_id;
	bk->cancel_request_id = r->request_id;
	return 0;
}

static int on_block(chg_state *st, const journal_record *rec, const bo_result *r, int block)
{
	if (r->seat_count == 0 || r->seat_count > BO_SEATS_PER_HOLD_MAX)
		return fail(st, -EBADMSG, "%s of %u seats", block ? "block" : "unblock", r->seat_count);
	chg_claim c = {.event_id = r->event_id, .pool = -1, .quantity = r->seat_count, .seat_count = r->seat_count};
	memcpy(c.seats, r->seats, r->seat_count * sizeof(r->seats[0]));
	return claim_change(st, rec, &c, block ? BO_SEAT_FREE : BO_SEAT_BLOCKED, block ? BO_SEAT_BLOCKED : BO_SEAT_FREE,
			    block ? CHG_BLOCK : CHG_UNBLOCK, r->client_id, r->request_id);
}

static int on_create(chg_state *st, const journal_record *rec, const bo_result *r, bo_seatmap **map)
{
	if (!*map)
		return fail(st, -EBADMSG, "event %llu created without a seat map", (unsigned long long)r->event_id);
	long k = VEC_PUSH(st->b.events);
	if (k < 0)
		return -ENOMEM;
	st->b.events.v[k] = (chg_event){.event_id = r->event_id,
					.client_id = r->client_id,
					.request_id = r->request_id,
					.seq = rec->seq,
					.at_ms = st->now_ms,
					.map = *map};
	*map = NULL; /* the batch owns it now */
	return 0;
}

/* A command's recorded OK result, as rows. */
static int on_result(chg_state *st, const journal_record *rec, const entry *e, bo_seatmap **map)
{
	const bo_result *r = &e->res;
	if (r->op != e->cmd.op || r->event_id != e->cmd.event_id)
		return fail(st, -EBADMSG, "result of op %u event %llu recorded for op %u event %llu", r->op,
			    (unsigned long long)r->event_id, e->cmd.op, (unsigned long long)e->cmd.event_id);
	switch (r->op) {
	case BO_OP_CREATE_EVENT: return on_create(st, rec, r, map);
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL: return on_hold(st, rec, r);
	case BO_OP_EXTEND: return on_extend(st, r);
	case BO_OP_RELEASE: return on_release(st, rec, r);
	case BO_OP_CONFIRM: return on_confirm(st, rec, &e->cmd, r);
	case BO_OP_CANCEL: return on_cancel(st, rec, r);
	case BO_OP_BLOCK: return on_block(st, rec, r, 1);
	case BO_OP_UNBLOCK: return on_block(st, rec, r, 0);
	default: return fail(st, -EBADMSG, "record of op %u, which changes nothing", r->op);
	}
}

int chg_record(chg_state *st, const journal_record *rec, char *err, size_t errlen)
{
	st->err = err;
	st->errlen = errlen;
	if (errlen)
		err[0] = '\0';
	if (rec->seq != st->seq + 1)
		return fail(st, -EBADMSG, "record %llu follows %llu", (unsigned long long)rec->seq,
			    (unsigned long long)st->seq);
	if (rec->shard_id != st->shard_id)
		return fail(st, -EBADMSG, "record %llu of shard %u in shard %u's journal", (unsigned long long)rec->seq,
			    rec->shard_id, st->shard_id);
	entry e;
	bo_seatmap *map = NULL;
	int rc = entry_decode(rec->payload, rec->payload_len, &e, &map);
	if (rc == -ENOMEM)
		return rc;
	if (rc)
		return fail(st, -EBADMSG, "record %llu does not decode", (unsigned long long)rec->seq);
	/* An EPOCH record (a primary's term begins, issue 13) changes nothing,
	 * not even the engine's clock: it only takes its place in the batch. */
	const int epoch = e.kind == ENTRY_EPOCH;
	if (!epoch && rec->timestamp_ms > st->now_ms)
		st->now_ms = rec->timestamp_ms; /* the engine's clock never goes back */
	if (st->b.first_seq == 0) {
		st->b.first_seq = rec->seq;
		st->b.first_ms = rec->timestamp_ms;
	}
	st->ordinal = 0;
	rc = epoch ? 0 : expire_until(st, rec);
	if (rc == 0 && e.kind == ENTRY_COMMAND && e.res.status == BO_OK && !e.res.replayed)
		rc = on_result(st, rec, &e, &map);
	bo_seatmap_free(map);
	if (rc)
		return rc;
	st->seq = rec->seq;
	st->b.last_seq = rec->seq;
	st->b.last_ms = rec->timestamp_ms;
	st->b.records++;
	return 0;
}
