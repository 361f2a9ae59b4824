/*
 * engine.c — the seat/hold state machine of one shard.
 *
 * The contract (what each command does, in which order rules are checked,
 * how best-available chooses) is the "Semantics" block of engine.h; this file
 * is about how it is made fast and bounded.
 *
 * MEMORY LAYOUT
 *
 *   seats[]    8 bytes per seat: owner claim slot + 1 (0 = none), row index
 *              within the event, state, category. An event's seats are one
 *              contiguous run of this arena, so seat i of event E is
 *              seats[E.seat_base + i]. This is the only per-seat state: the
 *              16-byte budget of the issue is met with room to spare.
 *   rows[]     16 bytes per row: first seat, length, section, and the span of
 *              its row-category counters.
 *   rowcats[]  4 bytes per (row, category present in it): an upper bound of
 *              the longest run of free seats of that category in that row
 *              (max_run) and the block sizes that found no clean block there
 *              (no_clean), so best-available skips rows that cannot hold the
 *              block without reading their seats.
 *   claims[]   one slot per hold/booking (ids: generation << 32 | slot).
 *   heap[]     indexed min-heap of active holds by (expires_at, claim id):
 *              extend is a sift, release a removal, and nothing is lazy, so
 *              the heap's size is bounded by claims_max.
 *   clients    open-addressed table client -> active holds.
 *   events     open-addressed table event id -> event index (no deletion).
 *   idem       FIFO of the last idem_capacity mutating results + a bucketed
 *              hash index keyed by (client, request) (see "Idempotency
 *              window").
 *
 * Every table is reserved in engine_new() straight from mmap
 * (eng_table_alloc); zero pages that are never touched are never resident,
 * so a shard sized for 16 Mi seats costs only what its events use.
 */
#include "engine.h"
#include "engine_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <mimalloc.h>
#include <xxhash.h>

static uint32_t pow2_at_least(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	assert(p <= (1ull << 31));
	return (uint32_t)p;
}

/* The engine's tables are reserved for the shard's whole capacity but only
 * partly used; they come straight from mmap (zero pages that stay
 * non-resident until touched) rather than from mimalloc, whose zeroed
 * allocations memset the whole block and would make a 16 Mi-seat
 * reservation cost its full size in RSS from the start. A 64-byte header
 * keeps the size for the unmap and the data cache-line aligned. */
#define TABLE_HEADER 64u

void *eng_table_alloc(size_t n, size_t size)
{
	size_t bytes = n * size + TABLE_HEADER;
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* The idempotency, client and seat tables are probed at random: with
	 * 4 KiB pages nearly every probe is also a TLB miss. Huge pages where
	 * the kernel allows them (advice only; failure is harmless). */
	if (bytes >= (2u << 20))
		(void)madvise(p, bytes, MADV_HUGEPAGE);
	memcpy(p, &bytes, sizeof(bytes));
	return p + TABLE_HEADER;
}

void eng_table_free(void *table)
{
	if (!table)
		return;
	uint8_t *p = (uint8_t *)table - TABLE_HEADER;
	size_t bytes;
	memcpy(&bytes, p, sizeof(bytes));
	munmap(p, bytes);
}

/* ---- Construction -------------------------------------------------------- */

void engine_config_default(engine_config *cfg)
{
	assert(cfg);
	cfg->seats_max = BO_SEATS_PER_SHARD_DEFAULT;
	cfg->claims_max = BO_CLAIMS_PER_SHARD_DEFAULT;
	cfg->idem_capacity = BO_IDEM_CAPACITY_DEFAULT;
	cfg->events_max = BO_EVENTS_PER_SHARD_MAX;
}

int engine_new(const engine_config *cfg, engine **out)
{
	assert(cfg && out);
	*out = NULL;
	if (!eng_config_ok(cfg))
		return -EINVAL;

	engine *e = mi_zalloc_aligned(sizeof(*e), 64);
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	e->now_ms = 0;
	/* Rows and row-categories each hold at least one seat, so seats_max
	 * bounds them too. */
	e->seats = eng_table_alloc(cfg->seats_max, sizeof(seat));
	e->rows = eng_table_alloc(cfg->seats_max, sizeof(row));
	e->rowcats = eng_table_alloc(cfg->seats_max, sizeof(rowcat));
	e->events = eng_table_alloc(cfg->events_max, sizeof(event));
	e->event_index_mask = pow2_at_least(2ull * cfg->events_max) - 1;
	e->event_index = eng_table_alloc(e->event_index_mask + 1ull, sizeof(uint32_t));
	e->claims = eng_table_alloc(cfg->claims_max, sizeof(claim));
	e->recycle = eng_table_alloc(eng_recycle_cap(cfg), sizeof(uint32_t));
	e->heap = eng_table_alloc(cfg->claims_max, sizeof(uint32_t));
	/* Only clients with active holds are in the table: at most claims_max. */
	e->clients_mask = pow2_at_least(2ull * cfg->claims_max) - 1;
	e->clients = eng_table_alloc(e->clients_mask + 1ull, sizeof(client_slot));
	e->idem = eng_table_alloc(cfg->idem_capacity, sizeof(idem_entry));
	/* 4 slots per entry, 7 slots per bucket: capacity * 4 / 7 buckets,
	 * rounded up to a power of two. */
	e->idem_index_mask = pow2_at_least((4ull * cfg->idem_capacity + 6) / 7) - 1;
	e->idem_index = eng_table_alloc(e->idem_index_mask + 1ull, sizeof(struct idem_bucket));
	if (!e->seats || !e->rows || !e->rowcats || !e->events || !e->event_index || !e->claims ||
	    !e->recycle || !e->heap || !e->clients || !e->idem || !e->idem_index) {
		engine_free(e);
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void engine_free(engine *e)
{
	if (!e)
		return;
	eng_table_free(e->seats);
	eng_table_free(e->rows);
	eng_table_free(e->rowcats);
	eng_table_free(e->events);
	eng_table_free(e->event_index);
	eng_table_free(e->claims);
	eng_table_free(e->recycle);
	eng_table_free(e->heap);
	eng_table_free(e->clients);
	eng_table_free(e->idem);
	eng_table_free(e->idem_index);
	mi_free(e);
}

int64_t engine_now(const engine *e) { return e->now_ms; }

/* ---- Event table --------------------------------------------------------- */

static event *event_find(const engine *e, uint64_t id)
{
	if (id == 0)
		return NULL;
	for (uint32_t i = (uint32_t)mix64(id) & e->event_index_mask;; i = (i + 1) & e->event_index_mask) {
		uint32_t v = e->event_index[i];
		if (v == 0)
			return NULL;
		if (e->events[v - 1].id == id)
			return &e->events[v - 1];
	}
}

static void event_index_put(engine *e, uint64_t id, uint32_t index)
{
	assert(e->event_count < e->cfg.events_max); /* so the table has room */
	uint32_t i = (uint32_t)mix64(id) & e->event_index_mask;
	while (e->event_index[i] != 0)
		i = (i + 1) & e->event_index_mask;
	e->event_index[i] = index + 1;
}

/* ---- Client table (active holds per client) ------------------------------ */

static client_slot *client_find(const engine *e, uint64_t client)
{
	assert(client != 0);
	for (uint32_t i = (uint32_t)mix64(client) & e->clients_mask;; i = (i + 1) & e->clients_mask) {
		client_slot *c = &e->clients[i];
		if (c->client == client)
			return c;
		if (c->client == 0)
			return NULL;
	}
}

static void client_holds_add(engine *e, uint64_t client)
{
	uint32_t i = (uint32_t)mix64(client) & e->clients_mask;
	while (e->clients[i].client != 0 && e->clients[i].client != client)
		i = (i + 1) & e->clients_mask;
	e->clients[i].client = client;
	e->clients[i].holds++;
	assert(e->clients[i].holds <= BO_HOLDS_PER_CLIENT_MAX);
}

static void client_holds_sub(engine *e, uint64_t client)
{
	client_slot *c = client_find(e, client);
	assert(c && c->holds > 0);
	if (--c->holds > 0)
		return;
	/* Remove by backward shift so that probing never needs tombstones and
	 * the table's layout stays a function of the command history. */
	uint32_t hole = (uint32_t)(c - e->clients);
	uint32_t j = hole;
	for (;;) {
		j = (j + 1) & e->clients_mask;
		if (e->clients[j].client == 0)
			break;
		uint32_t home = (uint32_t)mix64(e->clients[j].client) & e->clients_mask;
		if (((j - home) & e->clients_mask) >= ((j - hole) & e->clients_mask)) {
			e->clients[hole] = e->clients[j];
			hole = j;
		}
	}
	e->clients[hole] = (client_slot){0};
}

uint32_t engine_client_holds(const engine *e, uint64_t client_id)
{
	if (client_id == 0)
		return 0;
	const client_slot *c = client_find(e, client_id);
	return c ? c->holds : 0;
}

/* ---- Expiry heap --------------------------------------------------------- */

static inline void heap_set(engine *e, uint32_t pos, uint32_t slot)
{
	e->heap[pos] = slot;
	e->claims[slot].heap_pos = pos;
}

static void heap_up(engine *e, uint32_t pos)
{
	uint32_t slot = e->heap[pos];
	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;
		if (!eng_heap_less(e, slot, e->heap[parent]))
			break;
		heap_set(e, pos, e->heap[parent]);
		pos = parent;
	}
	heap_set(e, pos, slot);
}

static void heap_down(engine *e, uint32_t pos)
{
	uint32_t slot = e->heap[pos];
	for (;;) {
		uint32_t child = 2 * pos + 1;
		if (child >= e->heap_len)
			break;
		if (child + 1 < e->heap_len && eng_heap_less(e, e->heap[child + 1], e->heap[child]))
			child++;
		if (!eng_heap_less(e, e->heap[child], slot))
			break;
		heap_set(e, pos, e->heap[child]);
		pos = child;
	}
	heap_set(e, pos, slot);
}

static void heap_push(engine *e, uint32_t slot)
{
	assert(e->heap_len < e->cfg.claims_max);
	assert(e->claims[slot].heap_pos == SLOT_NONE);
	e->heap[e->heap_len] = slot;
	e->claims[slot].heap_pos = e->heap_len;
	e->heap_len++;
	heap_up(e, e->heap_len - 1);
}

static void heap_remove(engine *e, uint32_t slot)
{
	uint32_t pos = e->claims[slot].heap_pos;
	assert(pos < e->heap_len && e->heap[pos] == slot);
	e->claims[slot].heap_pos = SLOT_NONE;
	e->heap_len--;
	if (pos == e->heap_len)
		return;
	heap_set(e, pos, e->heap[e->heap_len]);
	heap_up(e, pos);
	heap_down(e, e->claims[e->heap[pos]].heap_pos);
}

/* Re-sorts a slot whose expiry changed. */
static void heap_fix(engine *e, uint32_t slot)
{
	uint32_t pos = e->claims[slot].heap_pos;
	assert(pos < e->heap_len);
	heap_up(e, pos);
	heap_down(e, e->claims[slot].heap_pos);
}

/* ---- Claim slots --------------------------------------------------------- */

/* Takes a slot: fresh ones first, then the oldest ended one, so an expired
 * hold stays confirmable for as long as the table allows. */
static uint32_t claim_take(engine *e)
{
	uint32_t slot;
	if (e->claims_fresh < e->cfg.claims_max) {
		slot = e->claims_fresh++;
		e->claims[slot].gen = 1;
	} else {
		const uint64_t cap = eng_recycle_cap(&e->cfg);
		for (;;) {
			if (e->recycle_head == e->recycle_tail)
				return SLOT_NONE;
			uint64_t pos = e->recycle_head++;
			slot = e->recycle[pos % cap];
			claim *c = &e->claims[slot];
			if (c->in_recycle && c->ticket == (uint32_t)pos)
				break;
			/* stale: the slot was revived after this entry was queued */
		}
		assert(e->claims[slot].state != CL_HELD && e->claims[slot].state != CL_BOOKED);
		uint32_t gen = e->claims[slot].gen + 1;
		if (gen == 0)
			gen = 1; /* never id 0, never gen 0 */
		memset(&e->claims[slot], 0, sizeof(claim));
		e->claims[slot].gen = gen;
	}
	e->claims[slot].heap_pos = SLOT_NONE;
	return slot;
}

static void claim_end(engine *e, uint32_t slot, uint8_t state)
{
	claim *c = &e->claims[slot];
	assert(state == CL_EXPIRED || state == CL_RELEASED || state == CL_CANCELLED);
	assert(c->heap_pos == SLOT_NONE);
	c->state = state;
	assert(!c->in_recycle);
	const uint64_t cap = eng_recycle_cap(&e->cfg);
	assert(e->recycle_tail - e->recycle_head < cap);
	c->in_recycle = 1;
	c->ticket = (uint32_t)e->recycle_tail;
	e->recycle[e->recycle_tail % cap] = slot;
	e->recycle_tail++;
}

/* Finds a claim by id within an event; NULL when the id is unknown, its slot
 * was recycled, or it belongs to another event. */
static claim *claim_lookup(engine *e, const event *ev, uint64_t id, uint32_t *slot_out)
{
	uint32_t slot = (uint32_t)id;
	uint32_t gen = (uint32_t)(id >> 32);
	if (slot >= e->claims_fresh || gen == 0)
		return NULL;
	claim *c = &e->claims[slot];
	if (c->gen != gen || c->state == CL_UNUSED || &e->events[c->event] != ev)
		return NULL;
	*slot_out = slot;
	return c;
}

/* ---- Seat state and its counters ----------------------------------------- */

static rowcat *rowcat_of(engine *e, const event *ev, uint32_t row_index, uint8_t cat)
{
	const row *r = &e->rows[ev->row_base + row_index];
	rowcat *rc = &e->rowcats[ev->rc_base + r->rc_first];
	for (uint32_t i = 0; i < r->rc_count; i++)
		if (rc[i].cat == cat)
			return &rc[i];
	return NULL;
}

/* The one place a seat changes state: keeps the event's per-state and
 * per-category counters and the row's free counter exact. */
static void seat_set(engine *e, event *ev, uint32_t s, uint8_t state, uint32_t owner)
{
	seat *st = &e->seats[ev->seat_base + s];
	assert(st->state != state);
	if (st->state == BO_SEAT_FREE || state == BO_SEAT_FREE) {
		/* Which seats are free decides where blocks fit and what they
		 * strand, for every category of the row: forget the verdicts. */
		const row *rw = &e->rows[ev->row_base + st->row];
		rowcat *rcs = &e->rowcats[ev->rc_base + rw->rc_first];
		for (uint32_t i = 0; i < rw->rc_count; i++)
			rcs[i].no_clean = 0;
		if (state == BO_SEAT_FREE) {
			ev->free_by_cat[st->cat]++;
			/* The run this seat joins: count its free neighbours of
			 * the same category inside the row. No run is longer
			 * than the row: when the bound already covers the row
			 * (as it does from the event's creation until a
			 * best-available scan tightens it, so nearly always
			 * under explicit-seat holds), counting could not raise
			 * it and would walk up to the whole row. */
			rowcat *rc = rowcat_of(e, ev, st->row, st->cat);
			assert(rc);
			if (rc->max_run < rw->len && rc->max_run < 255) {
				const seat *base = &e->seats[ev->seat_base];
				uint32_t lo = s, hi = s + 1;
				while (lo > rw->first && base[lo - 1].state == BO_SEAT_FREE && base[lo - 1].cat == st->cat)
					lo--;
				while (hi < rw->first + rw->len && base[hi].state == BO_SEAT_FREE && base[hi].cat == st->cat)
					hi++;
				if (hi - lo > rc->max_run)
					rc->max_run = (uint8_t)(hi - lo > 255 ? 255 : hi - lo);
			}
		} else {
			ev->free_by_cat[st->cat]--;
		}
	}
	assert(ev->by_state[st->state] > 0);
	ev->by_state[st->state]--;
	ev->by_state[state]++;
	st->state = state;
	st->owner = owner;
}

static inline bool seat_free(const engine *e, const event *ev, uint32_t s)
{
	return e->seats[ev->seat_base + s].state == BO_SEAT_FREE;
}

/* ---- Idempotency window -------------------------------------------------- */

/* The window is probed on every mutating command, so the index must cost
 * one cache line per command. It is an array of 64-byte buckets of seven
 * (key hash, position) slots and a spill flag, at least four times as many
 * slots as entries (under two live slots per bucket on average). A slot is
 * live while its position is in the FIFO, [idem_head, idem_tail): evicting
 * the oldest entry is just idem_head++, with no index write at all. The
 * lookup is eng_idem_find() (engine_internal.h), shared with the
 * checker. A key lives in its home bucket
 * unless that bucket was full of live slots when it was inserted; then it
 * goes to the next bucket with room, and every bucket passed gets its
 * `spill` flag, which tells lookups to look further. (Measured with
 * bench_engine --only commands: the linear-probing index with
 * backward-shift deletion this replaced cost three cold misses per
 * command and capped the engine at ~2.1M commands/s.) */

/* The window's entry for (client, request), or NULL (eng_idem_find). */
static idem_entry *idem_find(const engine *e, uint64_t client, uint64_t request)
{
	uint64_t pos = eng_idem_find(e, client, request);
	return pos == UINT64_MAX ? NULL : &e->idem[pos & (e->cfg.idem_capacity - 1)];
}

/* Clears the spill flag of bucket b when nothing spilled from it is live:
 * the next bucket does not spill itself and holds no live key from an
 * earlier home. Run on every insert, so flags do not pile up as the window
 * turns over (a lap of flags would make every lookup scan the index). */
static void idem_unspill(engine *e, uint32_t b)
{
	idem_bucket *bk = &e->idem_index[b];
	uint32_t next = (b + 1) & e->idem_index_mask;
	const idem_bucket *nb = &e->idem_index[next];
	if (!bk->spill || nb->spill)
		return;
	for (uint32_t i = 0; i < IDEM_SLOTS; i++)
		if (idem_live(e, nb->pos[i]) && (nb->hash[i] & e->idem_index_mask) != next)
			return;
	bk->spill = 0;
}

static void idem_evict_oldest(engine *e)
{
	assert(e->idem_tail > e->idem_head);
	memset(&e->idem[e->idem_head & (e->cfg.idem_capacity - 1)], 0, sizeof(idem_entry));
	e->idem_head++;
}

/* Only engine_apply() calls this, right after idem_find() found no entry
 * for the key and with nothing in between that touches the window, so the
 * key is new. (That was an assert() running the whole lookup a second
 * time: ~115 instructions a command, measured with cachegrind.) */
static void idem_store(engine *e, const bo_cmd *cmd, uint64_t content, const bo_result *r)
{
	if ((uint32_t)e->idem_tail == UINT32_MAX) {
		/* Position k * 2^32 - 1 would be stored as pos1 = 0, "never used":
		 * leave it as a hole (client 0 matches no key) once per 2^32. */
		if (e->idem_tail - e->idem_head == e->cfg.idem_capacity)
			idem_evict_oldest(e);
		idem_entry *hole = &e->idem[e->idem_tail & (e->cfg.idem_capacity - 1)];
		memset(hole, 0, sizeof(*hole));
		hole->at_ms = e->now_ms;
		e->idem_tail++;
	}
	/* A full window drops its oldest entry, whose slot is the very one
	 * written below (tail = head + capacity): every byte of it is
	 * assigned there, padding included, so idem_evict_oldest()'s memset
	 * would only be overwritten (~27 instructions a command, cachegrind). */
	if (e->idem_tail - e->idem_head == e->cfg.idem_capacity)
		e->idem_head++;
	uint64_t fifo = e->idem_tail;
	idem_entry *en = &e->idem[fifo & (e->cfg.idem_capacity - 1)];
	en->client = cmd->client_id;
	en->request = cmd->request_id;
	en->content = content;
	en->at_ms = e->now_ms;
	en->claim_id = r->claim_id;
	en->expires_at_ms = r->expires_at_ms;
	en->quantity = r->quantity;
	en->op = r->op;
	en->status = r->status;
	en->detail = r->detail;
	en->seat_count = r->seat_count;
	en->pool = r->pool;
	memset(en->_pad, 0, sizeof(en->_pad));
	memcpy(en->seats, r->seats, sizeof(en->seats));
	uint32_t h = idem_hash(en->client, en->request);
	idem_unspill(e, h & e->idem_index_mask);
	for (uint32_t b = h & e->idem_index_mask, probes = 0;; b = (b + 1) & e->idem_index_mask, probes++) {
		/* There are 4x more slots than live entries: a free slot is near. */
		assert(probes <= e->idem_index_mask);
		idem_bucket *bk = &e->idem_index[b];
		for (uint32_t i = 0; i < IDEM_SLOTS; i++) {
			if (!idem_live(e, bk->pos[i])) {
				bk->hash[i] = h;
				bk->pos[i] = (uint32_t)fifo + 1;
				e->idem_tail++;
				return;
			}
		}
		bk->spill = 1;
	}
}

/* Hash of the fields a command's op uses: a retry that differs in any of
 * them is a different request (BO_CONFLICT), while fields the op ignores
 * may differ freely. */
static uint64_t cmd_content_hash(const bo_cmd *c)
{
	uint64_t f[8] = {0};
	uint32_t n = 0;
	f[n++] = c->op;
	f[n++] = c->event_id;
	const void *extra = NULL;
	size_t extra_len = 0;
	switch (c->op) {
	case BO_OP_CREATE_EVENT:
		break;
	case BO_OP_HOLD_SEATS:
		f[n++] = c->ttl_ms;
		/* fallthrough */
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		f[n++] = c->seat_count;
		extra = c->seats;
		extra_len = (c->seat_count <= BO_SEATS_PER_HOLD_MAX ? c->seat_count : BO_SEATS_PER_HOLD_MAX) *
			    sizeof(uint32_t);
		break;
	case BO_OP_HOLD_BEST:
		f[n++] = c->category;
		f[n++] = c->quantity;
		f[n++] = c->ttl_ms;
		break;
	case BO_OP_HOLD_POOL:
		f[n++] = c->pool;
		f[n++] = c->quantity;
		f[n++] = c->ttl_ms;
		break;
	case BO_OP_EXTEND:
		f[n++] = c->claim_id;
		f[n++] = c->ttl_ms;
		break;
	case BO_OP_CONFIRM:
		f[n++] = c->claim_id;
		f[n++] = c->payref_len;
		extra = c->payref;
		extra_len = c->payref_len <= BO_PAYREF_LEN_MAX ? c->payref_len : BO_PAYREF_LEN_MAX;
		break;
	case BO_OP_RELEASE:
	case BO_OP_CANCEL:
		f[n++] = c->claim_id;
		/* The operator flag changes who may act, so it is content. It
		 * is hashed only when set: a command without it hashes as it
		 * did before the flag existed, so the windows of older
		 * snapshots and journals keep their meaning. */
		if (c->flags & BO_CMD_F_OPERATOR)
			f[n++] = UINT64_C(0x6f70657261746f72); /* "operator" */
		break;
	default:
		assert(0 && "only mutating ops are hashed");
	}
	uint64_t h = XXH3_64bits(f, n * sizeof(uint64_t));
	if (extra_len)
		h = XXH3_64bits_withSeed(extra, extra_len, h);
	/* Only a valid map is hashed: every invalid map gets the same answer
	 * (MAP_INVALID), and the journal records such a command without its
	 * map (an invalid map has no encoding), so replay must hash alike. */
	if (c->op == BO_OP_CREATE_EVENT && c->map && bo_seatmap_check(c->map) == BO_D_NONE) {
		const bo_seatmap *m = c->map;
		uint32_t hdr[4] = {m->row_count, m->seat_count, m->pool_count, m->category_count};
		h = XXH3_64bits_withSeed(hdr, sizeof(hdr), h);
		if (m->row_count <= BO_ROWS_PER_EVENT_MAX && m->seat_count <= BO_SEATS_PER_EVENT_MAX &&
		    m->pool_count <= BO_POOLS_PER_EVENT_MAX) {
			if (m->rows)
				h = XXH3_64bits_withSeed(m->rows, m->row_count * sizeof(bo_row_def), h);
			if (m->categories)
				h = XXH3_64bits_withSeed(m->categories, m->seat_count, h);
			if (m->pool_capacity)
				h = XXH3_64bits_withSeed(m->pool_capacity, m->pool_count * sizeof(uint32_t), h);
		}
	}
	return h;
}

/* ---- Time ---------------------------------------------------------------- */

static void expire_one(engine *e, uint32_t slot, bo_expiry_fn fn, void *ctx)
{
	claim *c = &e->claims[slot];
	event *ev = &e->events[c->event];
	assert(c->state == CL_HELD);
	heap_remove(e, slot);
	if (c->is_pool) {
		assert(ev->pool_held[c->pool] >= c->quantity);
		ev->pool_held[c->pool] -= c->quantity;
	} else {
		for (uint32_t i = 0; i < c->seat_count; i++) {
			assert(e->seats[ev->seat_base + c->seats[i]].owner == slot + 1);
			seat_set(e, ev, c->seats[i], BO_SEAT_FREE, 0);
		}
	}
	client_holds_sub(e, c->client);
	e->holds_live--;
	e->expired_total++;
	if (fn) {
		bo_expiry x = {0};
		x.event_id = ev->id;
		x.claim_id = claim_id_of(e, slot);
		x.client_id = c->client;
		x.expires_at_ms = c->expires_ms;
		x.is_pool = c->is_pool;
		x.pool = c->pool;
		x.quantity = c->quantity;
		x.seat_count = c->seat_count;
		memcpy(x.seats, c->seats, sizeof(x.seats));
		fn(ctx, &x);
	}
	claim_end(e, slot, CL_EXPIRED);
}

uint32_t engine_advance_bounded(engine *e, int64_t now_ms, uint32_t expiries_max, bo_expiry_fn fn, void *ctx,
				int *more)
{
	assert(e && more);
	uint32_t changes = 0;
	if (now_ms > e->now_ms)
		e->now_ms = now_ms;
	while (e->heap_len > 0 && e->claims[e->heap[0]].expires_ms <= e->now_ms && changes < expiries_max) {
		expire_one(e, e->heap[0], fn, ctx);
		changes++;
	}
	*more = e->heap_len > 0 && e->claims[e->heap[0]].expires_ms <= e->now_ms;
	while (e->idem_tail > e->idem_head &&
	       e->now_ms - e->idem[e->idem_head & (e->cfg.idem_capacity - 1)].at_ms > (int64_t)BO_IDEM_WINDOW_MS) {
		idem_evict_oldest(e);
		changes++;
	}
	return changes;
}

uint32_t engine_advance(engine *e, int64_t now_ms, bo_expiry_fn fn, void *ctx)
{
	int more;
	uint32_t changes = engine_advance_bounded(e, now_ms, UINT32_MAX, fn, ctx, &more);
	assert(!more);
	return changes;
}

/* ---- Commands ------------------------------------------------------------ */

static inline void fail(bo_result *r, uint8_t status, uint8_t detail)
{
	r->status = status;
	r->detail = detail;
}

/* Count, range and duplicate checks shared by every op that names seats. */
static bool seats_check(const event *ev, const bo_cmd *c, uint32_t count_max, bool allow_dup, bo_result *r)
{
	if (c->seat_count == 0 || c->seat_count > count_max) {
		fail(r, BO_INVALID, BO_D_SEAT_COUNT);
		return false;
	}
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (c->seats[i] >= ev->seat_count) {
			fail(r, BO_INVALID, BO_D_SEAT_RANGE);
			return false;
		}
	}
	if (!allow_dup) {
		for (uint32_t i = 1; i < c->seat_count; i++)
			for (uint32_t j = 0; j < i; j++)
				if (c->seats[i] == c->seats[j]) {
					fail(r, BO_INVALID, BO_D_SEAT_DUPLICATE);
					return false;
				}
	}
	return true;
}

static inline bool ttl_ok(uint32_t ttl_ms) { return ttl_ms >= BO_TTL_MS_MIN && ttl_ms <= BO_TTL_MS_MAX; }

/* Client and table limits, checked last for every hold: returns the new
 * claim slot (initialised as a live hold of `ev`), or SLOT_NONE. */
static uint32_t hold_begin(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	if (engine_client_holds(e, c->client_id) >= BO_HOLDS_PER_CLIENT_MAX) {
		fail(r, BO_LIMIT, BO_D_CLIENT_HOLDS);
		return SLOT_NONE;
	}
	uint32_t slot = claim_take(e);
	if (slot == SLOT_NONE) {
		fail(r, BO_LIMIT, BO_D_CLAIMS_FULL);
		return SLOT_NONE;
	}
	claim *cl = &e->claims[slot];
	cl->event = (uint32_t)(ev - e->events);
	cl->state = CL_HELD;
	cl->client = c->client_id;
	cl->created_ms = e->now_ms;
	cl->expires_ms = e->now_ms + c->ttl_ms;
	heap_push(e, slot);
	client_holds_add(e, c->client_id);
	e->holds_live++;
	return slot;
}

/* Fills the OK result of any op on a claim. */
static void result_claim(const engine *e, uint32_t slot, bo_result *r)
{
	const claim *cl = &e->claims[slot];
	r->claim_id = claim_id_of(e, slot);
	if (cl->is_pool) {
		r->pool = cl->pool;
		r->quantity = cl->quantity;
	} else {
		r->seat_count = cl->seat_count;
		r->quantity = cl->seat_count;
		memcpy(r->seats, cl->seats, cl->seat_count * sizeof(uint32_t));
	}
	if (cl->state == CL_HELD)
		r->expires_at_ms = cl->expires_ms;
}

static void hold_take_seats(engine *e, event *ev, uint32_t slot, const uint32_t *seats, uint32_t n)
{
	claim *cl = &e->claims[slot];
	for (uint32_t i = 0; i < n; i++) {
		assert(seat_free(e, ev, seats[i]));
		seat_set(e, ev, seats[i], BO_SEAT_HELD, slot + 1);
		cl->seats[i] = seats[i];
	}
	cl->seat_count = (uint8_t)n;
}

static void op_create_event(engine *e, const bo_cmd *c, bo_result *r)
{
	if (c->event_id == 0)
		return fail(r, BO_INVALID, BO_D_EVENT_ID_ZERO);
	if (bo_seatmap_check(c->map) != BO_D_NONE)
		return fail(r, BO_INVALID, BO_D_MAP_INVALID);
	if (event_find(e, c->event_id))
		return fail(r, BO_INVALID, BO_D_EVENT_EXISTS);
	if (e->event_count >= e->cfg.events_max)
		return fail(r, BO_LIMIT, BO_D_EVENTS_FULL);
	const bo_seatmap *m = c->map;
	/* Rows and row-categories never outnumber seats, so one check on seats
	 * covers all three arenas (each sized seats_max). */
	if ((uint64_t)e->seats_used + m->seat_count > e->cfg.seats_max)
		return fail(r, BO_LIMIT, BO_D_SEATS_FULL);

	uint32_t index = e->event_count;
	event_index_put(e, c->event_id, index);
	e->event_count++;
	event *ev = &e->events[index];
	ev->id = c->event_id;
	ev->seat_base = e->seats_used;
	ev->seat_count = m->seat_count;
	ev->row_base = e->rows_used;
	ev->row_count = m->row_count;
	ev->rc_base = e->rowcats_used;
	ev->category_count = m->category_count;
	ev->pool_count = m->pool_count;
	for (uint32_t p = 0; p < m->pool_count; p++)
		ev->pool_cap[p] = m->pool_capacity[p];

	uint32_t s = 0, rc = 0;
	for (uint32_t ri = 0; ri < m->row_count; ri++) {
		row *rw = &e->rows[ev->row_base + ri];
		rw->first = s;
		rw->len = m->rows[ri].seats;
		rw->section = m->rows[ri].section;
		rw->rc_first = rc;
		uint32_t run = 0;
		for (uint32_t k = 0; k < rw->len; k++, s++) {
			uint8_t cat = m->categories[s];
			seat *st = &e->seats[ev->seat_base + s];
			st->row = (uint16_t)ri;
			st->cat = cat;
			st->state = BO_SEAT_FREE;
			st->owner = 0;
			rowcat *rcs = &e->rowcats[ev->rc_base + rw->rc_first];
			uint32_t j = 0;
			while (j < rw->rc_count && rcs[j].cat != cat)
				j++;
			if (j == rw->rc_count) {
				rcs[j].cat = cat;
				rw->rc_count++;
				rc++;
			}
			run = (k > 0 && m->categories[s - 1] == cat) ? run + 1 : 1;
			if (run > rcs[j].max_run)
				rcs[j].max_run = (uint8_t)(run > 255 ? 255 : run);
			ev->free_by_cat[cat]++;
		}
	}
	assert(s == m->seat_count && rc <= m->seat_count);
	ev->rc_count = rc;
	ev->by_state[BO_SEAT_FREE] = m->seat_count;
	e->seats_used += m->seat_count;
	e->rows_used += m->row_count;
	e->rowcats_used += rc;
}

static void op_hold_seats(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	if (!seats_check(ev, c, BO_SEATS_PER_HOLD_MAX, false, r))
		return;
	if (!ttl_ok(c->ttl_ms))
		return fail(r, BO_INVALID, BO_D_TTL_RANGE);
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (!seat_free(e, ev, c->seats[i])) {
			fail(r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE);
			r->seat_count = 1;
			r->seats[0] = c->seats[i];
			return;
		}
	}
	uint32_t slot = hold_begin(e, ev, c, r);
	if (slot == SLOT_NONE)
		return;
	hold_take_seats(e, ev, slot, c->seats, c->seat_count);
	result_claim(e, slot, r);
}

/* Distance of a block [s, s+n) from the centre of its row, in half seats. */
static inline uint32_t centre_distance(const row *rw, uint32_t s, uint32_t n)
{
	int64_t d = 2 * ((int64_t)s - rw->first) + n - rw->len;
	return (uint32_t)(d < 0 ? -d : d);
}

/* Would a block at s strand a single free seat beside it? */
static bool block_strands(const engine *e, const event *ev, const row *rw, uint32_t s, uint32_t n)
{
	uint32_t lo = rw->first, hi = rw->first + rw->len; /* row is [lo, hi) */
	if (s > lo && seat_free(e, ev, s - 1) && !(s - 1 > lo && seat_free(e, ev, s - 2)))
		return true;
	uint32_t t = s + n;
	if (t < hi && seat_free(e, ev, t) && !(t + 1 < hi && seat_free(e, ev, t + 1)))
		return true;
	return false;
}

typedef struct block_choice {
	uint32_t start;	   /* first seat, event-relative */
	uint32_t strands;  /* 0 or 1 */
	uint32_t distance; /* centre_distance */
	bool found;
} block_choice;

/* Best block of n seats inside the run [a, a+len) of free seats of the
 * category. Only starts a, a+1 (left) and e-1, e (right) can strand a seat,
 * so the optimum is the clamped centre start, a start within two of it, or
 * one of a..a+2 / e-2..e: the candidates below cover every case. */
static void run_best(const engine *e, const event *ev, const row *rw, uint32_t a, uint32_t len, uint32_t n,
		     block_choice *best)
{
	assert(len >= n);
	uint32_t last = a + len - n;
	int64_t ideal = (int64_t)rw->first + (rw->len - (int64_t)n) / 2;
	if (ideal < a)
		ideal = a;
	if (ideal > last)
		ideal = last;
	int64_t cand[11] = {ideal, ideal - 1, ideal + 1, ideal - 2, ideal + 2, a, a + 1, a + 2,
			    (int64_t)last, (int64_t)last - 1, (int64_t)last - 2};
	for (int i = 0; i < 11; i++) {
		if (cand[i] < a || cand[i] > last)
			continue;
		uint32_t s = (uint32_t)cand[i];
		uint32_t st = block_strands(e, ev, rw, s, n) ? 1 : 0;
		uint32_t d = centre_distance(rw, s, n);
		if (!best->found || st < best->strands || (st == best->strands && d < best->distance) ||
		    (st == best->strands && d == best->distance && s < best->start)) {
			best->found = true;
			best->start = s;
			best->strands = st;
			best->distance = d;
		}
	}
}

/* Best block of n adjacent seats of category cat within one row. Returns
 * the row's longest free run of the category (to tighten max_run). */
static uint32_t row_best(const engine *e, const event *ev, const row *rw, uint8_t cat, uint32_t n,
			 block_choice *best)
{
	uint32_t longest = 0;
	const seat *seats = &e->seats[ev->seat_base];
	uint32_t end = rw->first + rw->len;
	uint32_t s = rw->first;
	while (s < end) {
		if (seats[s].state != BO_SEAT_FREE || seats[s].cat != cat) {
			s++;
			continue;
		}
		uint32_t a = s;
		while (s < end && seats[s].state == BO_SEAT_FREE && seats[s].cat == cat)
			s++;
		if (s - a > longest)
			longest = s - a;
		if (s - a >= n)
			run_best(e, ev, rw, a, s - a, n, best);
	}
	return longest;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Chooses n seats of category cat (the event has at least n free): see the
 * best-available rule in engine.h. Writes them in ascending order. */
static void best_available(engine *e, const event *ev, uint8_t cat, uint32_t n, uint32_t *out)
{
	block_choice fallback = {0};
	const row *fallback_row = NULL;
	for (uint32_t ri = 0; ri < ev->row_count; ri++) {
		rowcat *rc = rowcat_of(e, ev, ri, cat);
		if (!rc || rc->max_run < n)
			continue; /* cannot hold the block: skip without reading seats */
		const row *rw = &e->rows[ev->row_base + ri];
		block_choice b = {0};
		uint16_t bit = (uint16_t)(1u << (n - 1));
		if ((rc->no_clean & bit) && fallback_row)
			continue; /* known to hold nothing better than the fallback */
		uint32_t longest = row_best(e, ev, rw, cat, n, &b);
		rc->max_run = (uint8_t)(longest > 255 ? 255 : longest);
		if (!b.found || b.strands)
			rc->no_clean |= bit;
		if (!b.found)
			continue;
		if (b.strands == 0) {
			/* Rows are scanned best first, so the first row with a block
			 * that strands nothing holds the answer. */
			for (uint32_t i = 0; i < n; i++)
				out[i] = b.start + i;
			return;
		}
		if (!fallback_row) {
			fallback = b;
			fallback_row = rw;
		}
	}
	if (fallback_row) {
		for (uint32_t i = 0; i < n; i++)
			out[i] = fallback.start + i;
		return;
	}
	/* No row has n adjacent seats: take, best rows first, the free seats of
	 * the category nearest each row's centre. */
	const seat *seats = &e->seats[ev->seat_base];
	uint32_t got = 0;
	for (uint32_t ri = 0; ri < ev->row_count && got < n; ri++) {
		const rowcat *rc = rowcat_of(e, ev, ri, cat);
		if (!rc || rc->max_run == 0)
			continue; /* no free seat of the category here */
		const row *rw = &e->rows[ev->row_base + ri];
		/* Seats at distance d (half seats) from the centre are
		 * first + (len - 1 - d) / 2 and first + (len - 1 + d) / 2; d has
		 * the parity of len - 1. */
		for (uint32_t d = (rw->len - 1u) % 2u; d <= rw->len && got < n; d += 2) {
			uint32_t left = rw->first + (rw->len - 1u - d) / 2u;
			uint32_t right = rw->first + (rw->len - 1u + d) / 2u;
			if (seats[left].state == BO_SEAT_FREE && seats[left].cat == cat)
				out[got++] = left;
			if (right != left && got < n && seats[right].state == BO_SEAT_FREE && seats[right].cat == cat)
				out[got++] = right;
		}
	}
	assert(got == n);
	qsort(out, n, sizeof(uint32_t), cmp_u32);
}

static void op_hold_best(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	uint32_t n = c->quantity;
	if (n == 0 || n > BO_SEATS_PER_HOLD_MAX)
		return fail(r, BO_INVALID, BO_D_QUANTITY);
	if (c->category >= ev->category_count)
		return fail(r, BO_INVALID, BO_D_CATEGORY_RANGE);
	if (!ttl_ok(c->ttl_ms))
		return fail(r, BO_INVALID, BO_D_TTL_RANGE);
	if (ev->free_by_cat[c->category] < n)
		return fail(r, BO_TAKEN, BO_D_SOLD_OUT);
	uint32_t slot = hold_begin(e, ev, c, r);
	if (slot == SLOT_NONE)
		return;
	uint32_t chosen[BO_SEATS_PER_HOLD_MAX];
	best_available(e, ev, c->category, n, chosen);
	hold_take_seats(e, ev, slot, chosen, n);
	result_claim(e, slot, r);
}

static inline uint32_t pool_free(const event *ev, uint32_t p)
{
	return ev->pool_cap[p] - ev->pool_held[p] - ev->pool_booked[p];
}

static void op_hold_pool(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	if (c->pool >= ev->pool_count)
		return fail(r, BO_INVALID, BO_D_POOL_RANGE);
	if (c->quantity == 0 || c->quantity > BO_POOL_QTY_PER_HOLD_MAX)
		return fail(r, BO_INVALID, BO_D_QUANTITY);
	if (!ttl_ok(c->ttl_ms))
		return fail(r, BO_INVALID, BO_D_TTL_RANGE);
	if (pool_free(ev, c->pool) < c->quantity)
		return fail(r, BO_TAKEN, BO_D_POOL_UNAVAILABLE);
	uint32_t slot = hold_begin(e, ev, c, r);
	if (slot == SLOT_NONE)
		return;
	claim *cl = &e->claims[slot];
	cl->is_pool = 1;
	cl->pool = c->pool;
	cl->quantity = c->quantity;
	ev->pool_held[c->pool] += c->quantity;
	result_claim(e, slot, r);
}

/* Whether claim op `c` may act on `cl` (engine.h, "Ownership"): only the
 * claim's own client, an operator's RELEASE/CANCEL, or a record journaled
 * before the rule existed (BO_CMD_F_ANY_CLIENT). */
static bool claim_may_touch(const claim *cl, const bo_cmd *c)
{
	if (c->flags & BO_CMD_F_ANY_CLIENT)
		return true;
	if ((c->flags & BO_CMD_F_OPERATOR) && (c->op == BO_OP_RELEASE || c->op == BO_OP_CANCEL))
		return true;
	return cl->client == c->client_id;
}

/* Looks up the claim a claim op names, as claim_lookup(), but a claim the
 * command may not touch is not found either: another client learns nothing
 * from an id, not even that it exists or what state it is in. */
static claim *owned_lookup(engine *e, const event *ev, const bo_cmd *c, uint32_t *slot)
{
	claim *cl = claim_lookup(e, ev, c->claim_id, slot);
	return cl && claim_may_touch(cl, c) ? cl : NULL;
}

/* Looks up the hold a claim op names and applies the state rules shared by
 * EXTEND, RELEASE and CONFIRM. Returns the claim (HELD, or EXPIRED when
 * `expired_ok`) or NULL with the failure in r. */
static claim *hold_lookup(engine *e, event *ev, const bo_cmd *c, bool expired_ok, uint32_t *slot, bo_result *r)
{
	claim *cl = owned_lookup(e, ev, c, slot);
	if (!cl || cl->state == CL_RELEASED || cl->state == CL_CANCELLED) {
		fail(r, BO_NOT_FOUND, BO_D_NO_HOLD);
		return NULL;
	}
	if (cl->state == CL_BOOKED) {
		fail(r, BO_INVALID, BO_D_ALREADY_CONFIRMED);
		return NULL;
	}
	if (cl->state == CL_EXPIRED && !expired_ok) {
		fail(r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
		return NULL;
	}
	assert(cl->state == CL_HELD || cl->state == CL_EXPIRED);
	return cl;
}

static void op_extend(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	uint32_t slot;
	claim *cl = hold_lookup(e, ev, c, false, &slot, r);
	if (!cl)
		return;
	if (!ttl_ok(c->ttl_ms))
		return fail(r, BO_INVALID, BO_D_TTL_RANGE);
	if (e->now_ms + c->ttl_ms > cl->created_ms + (int64_t)BO_HOLD_LIFETIME_MS_MAX)
		return fail(r, BO_LIMIT, BO_D_LIFETIME);
	cl->expires_ms = e->now_ms + c->ttl_ms;
	heap_fix(e, slot);
	result_claim(e, slot, r);
}

/* Frees what a live claim holds (seats or pool quantity). */
static void claim_free_inventory(engine *e, event *ev, uint32_t slot)
{
	claim *cl = &e->claims[slot];
	if (cl->is_pool) {
		uint32_t *counter = cl->state == CL_HELD ? &ev->pool_held[cl->pool] : &ev->pool_booked[cl->pool];
		assert(*counter >= cl->quantity);
		*counter -= cl->quantity;
		return;
	}
	for (uint32_t i = 0; i < cl->seat_count; i++) {
		assert(e->seats[ev->seat_base + cl->seats[i]].owner == slot + 1);
		seat_set(e, ev, cl->seats[i], BO_SEAT_FREE, 0);
	}
}

static void op_release(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	uint32_t slot;
	claim *cl = hold_lookup(e, ev, c, false, &slot, r);
	if (!cl)
		return;
	result_claim(e, slot, r);
	r->expires_at_ms = 0;
	heap_remove(e, slot);
	claim_free_inventory(e, ev, slot);
	client_holds_sub(e, cl->client);
	e->holds_live--;
	claim_end(e, slot, CL_RELEASED);
}

static void op_confirm(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	if (c->payref_len == 0 || c->payref_len > BO_PAYREF_LEN_MAX)
		return fail(r, BO_INVALID, BO_D_PAYREF);
	uint32_t slot;
	claim *cl = hold_lookup(e, ev, c, true, &slot, r);
	if (!cl)
		return;
	if (cl->state == CL_HELD) {
		heap_remove(e, slot);
		client_holds_sub(e, cl->client);
		e->holds_live--;
		if (cl->is_pool) {
			ev->pool_held[cl->pool] -= cl->quantity;
			ev->pool_booked[cl->pool] += cl->quantity;
		} else {
			for (uint32_t i = 0; i < cl->seat_count; i++)
				seat_set(e, ev, cl->seats[i], BO_SEAT_BOOKED, slot + 1);
		}
	} else {
		/* Late confirm: the payment went through after the hold expired.
		 * Honour it if the inventory is still there, all of it. */
		if (cl->is_pool) {
			if (pool_free(ev, cl->pool) < cl->quantity)
				return fail(r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
			ev->pool_booked[cl->pool] += cl->quantity;
		} else {
			for (uint32_t i = 0; i < cl->seat_count; i++)
				if (!seat_free(e, ev, cl->seats[i]))
					return fail(r, BO_EXPIRED, BO_D_HOLD_EXPIRED);
			for (uint32_t i = 0; i < cl->seat_count; i++)
				seat_set(e, ev, cl->seats[i], BO_SEAT_BOOKED, slot + 1);
		}
	}
	cl->state = CL_BOOKED;
	cl->in_recycle = 0; /* revived: its queue entry (if any) goes stale */
	cl->payref_len = c->payref_len;
	memcpy(cl->payref, c->payref, c->payref_len);
	e->bookings_live++;
	result_claim(e, slot, r);
}

static void op_cancel(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	uint32_t slot;
	claim *cl = owned_lookup(e, ev, c, &slot);
	if (cl && cl->state == CL_HELD)
		return fail(r, BO_INVALID, BO_D_NOT_A_BOOKING);
	if (!cl || cl->state != CL_BOOKED)
		return fail(r, BO_NOT_FOUND, BO_D_NO_BOOKING);
	result_claim(e, slot, r);
	claim_free_inventory(e, ev, slot);
	e->bookings_live--;
	claim_end(e, slot, CL_CANCELLED);
}

static void op_block(engine *e, event *ev, const bo_cmd *c, bo_result *r, bool block)
{
	if (!seats_check(ev, c, BO_SEATS_PER_HOLD_MAX, false, r))
		return;
	uint8_t want = block ? BO_SEAT_FREE : BO_SEAT_BLOCKED;
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (e->seats[ev->seat_base + c->seats[i]].state != want) {
			if (block)
				fail(r, BO_TAKEN, BO_D_SEAT_UNAVAILABLE);
			else
				fail(r, BO_INVALID, BO_D_NOT_BLOCKED);
			r->seat_count = 1;
			r->seats[0] = c->seats[i];
			return;
		}
	}
	for (uint32_t i = 0; i < c->seat_count; i++)
		seat_set(e, ev, c->seats[i], block ? BO_SEAT_BLOCKED : BO_SEAT_FREE, 0);
	r->seat_count = c->seat_count;
	memcpy(r->seats, c->seats, c->seat_count * sizeof(uint32_t));
}

static void avail_fill(const event *ev, bo_avail *a)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->by_state, ev->by_state, sizeof(a->by_state));
	memcpy(a->free_by_category, ev->free_by_cat, sizeof(a->free_by_category));
	for (uint32_t p = 0; p < ev->pool_count; p++) {
		a->pool_capacity[p] = ev->pool_cap[p];
		a->pool_free[p] = pool_free(ev, p);
	}
	a->category_count = (uint8_t)ev->category_count;
	a->pool_count = (uint8_t)ev->pool_count;
}

static void op_query_seats(engine *e, event *ev, const bo_cmd *c, bo_result *r)
{
	if (!seats_check(ev, c, BO_QUERY_SEATS_MAX, true, r))
		return;
	r->seat_count = c->seat_count;
	for (uint32_t i = 0; i < c->seat_count; i++) {
		r->seats[i] = c->seats[i];
		r->seat_state[i] = e->seats[ev->seat_base + c->seats[i]].state;
	}
}

void engine_apply(engine *e, const bo_cmd *c, bo_result *r)
{
	assert(e && c && r);
	memset(r, 0, sizeof(*r));
	r->op = c->op;
	r->client_id = c->client_id;
	r->request_id = c->request_id;
	r->event_id = c->event_id;
	r->status = BO_OK;
	if (c->op <= BO_OP_NONE || c->op >= BO_OP_COUNT)
		return fail(r, BO_INVALID, BO_D_BAD_OP);

	bool mutates = bo_op_mutates(c->op);
	uint64_t content = 0;
	if (mutates) {
		if (c->client_id == 0)
			return fail(r, BO_INVALID, BO_D_NO_CLIENT);
		content = cmd_content_hash(c);
		const idem_entry *en = idem_find(e, c->client_id, c->request_id);
		if (en) {
			if (en->content != content)
				return fail(r, BO_CONFLICT, BO_D_IDEM_CONFLICT);
			r->op = en->op;
			r->status = en->status;
			r->detail = en->detail;
			r->seat_count = en->seat_count;
			r->pool = en->pool;
			r->quantity = en->quantity;
			r->claim_id = en->claim_id;
			r->expires_at_ms = en->expires_at_ms;
			memcpy(r->seats, en->seats, sizeof(r->seats));
			r->replayed = 1;
			return;
		}
	}

	event *ev = NULL;
	if (c->op != BO_OP_CREATE_EVENT) {
		ev = event_find(e, c->event_id);
		if (!ev)
			fail(r, BO_NOT_FOUND, BO_D_NO_EVENT);
	}
	if (r->status == BO_OK) {
		switch (c->op) {
		case BO_OP_CREATE_EVENT: op_create_event(e, c, r); break;
		case BO_OP_HOLD_SEATS: op_hold_seats(e, ev, c, r); break;
		case BO_OP_HOLD_BEST: op_hold_best(e, ev, c, r); break;
		case BO_OP_HOLD_POOL: op_hold_pool(e, ev, c, r); break;
		case BO_OP_EXTEND: op_extend(e, ev, c, r); break;
		case BO_OP_RELEASE: op_release(e, ev, c, r); break;
		case BO_OP_CONFIRM: op_confirm(e, ev, c, r); break;
		case BO_OP_CANCEL: op_cancel(e, ev, c, r); break;
		case BO_OP_BLOCK: op_block(e, ev, c, r, true); break;
		case BO_OP_UNBLOCK: op_block(e, ev, c, r, false); break;
		case BO_OP_QUERY_AVAIL: avail_fill(ev, &r->avail); break;
		case BO_OP_QUERY_SEATS: op_query_seats(e, ev, c, r); break;
		default: assert(0 && "op range checked above");
		}
	}
	if (mutates)
		idem_store(e, c, content, r);
}

/* Prefetches the claim lines a claim op reads first: its id's slot (gen,
 * state, event and client on the first two lines, its seats on the next).
 * An id out of range is left alone (the lookup will refuse it). */
static inline void prefetch_claim(const engine *e, uint64_t claim_id)
{
	uint32_t slot = (uint32_t)claim_id;
	if (slot >= e->claims_fresh)
		return;
	const char *p = (const char *)&e->claims[slot];
	__builtin_prefetch(p, 1);
	__builtin_prefetch(p + 64, 1);
	__builtin_prefetch(p + sizeof(claim) - 1, 1);
}

/* Prefetches the slot the next hold will take when the table is full: the
 * oldest recycle entry's claim (and the one after, in case this command's
 * predecessor takes the first), which claim_take() checks and rewrites. */
static inline void prefetch_recycled(const engine *e)
{
	if (e->claims_fresh < e->cfg.claims_max)
		return;
	const uint64_t cap = eng_recycle_cap(&e->cfg);
	for (uint64_t pos = e->recycle_head; pos < e->recycle_tail && pos < e->recycle_head + 2; pos++)
		__builtin_prefetch(&e->claims[e->recycle[pos % cap]], 1);
}

/* Prefetches the first seat a seat op names (its state decides the
 * answer). The event table is small and hot: finding the event is cheap. */
static inline void prefetch_seat(const engine *e, const bo_cmd *c)
{
	if (c->seat_count == 0)
		return;
	const event *ev = event_find(e, c->event_id);
	if (ev && c->seats[0] < ev->seat_count)
		__builtin_prefetch(&e->seats[ev->seat_base + c->seats[0]], 1);
}

void engine_prefetch(const engine *e, const bo_cmd *c)
{
	if (bo_op_mutates(c->op) && c->client_id != 0) {
		uint32_t h = idem_hash(c->client_id, c->request_id);
		__builtin_prefetch(&e->idem_index[h & e->idem_index_mask]);
		__builtin_prefetch(&e->clients[(uint32_t)mix64(c->client_id) & e->clients_mask]);
	}
	switch (c->op) {
	case BO_OP_HOLD_SEATS:
		prefetch_recycled(e);
		prefetch_seat(e, c);
		break;
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL:
		prefetch_recycled(e);
		break;
	case BO_OP_EXTEND:
	case BO_OP_RELEASE:
	case BO_OP_CONFIRM:
	case BO_OP_CANCEL:
		prefetch_claim(e, c->claim_id);
		break;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
	case BO_OP_QUERY_SEATS:
		prefetch_seat(e, c);
		break;
	default:
		break;
	}
	if (c->event_id != 0)
		__builtin_prefetch(&e->event_index[(uint32_t)mix64(c->event_id) & e->event_index_mask]);
}

/* ---- Inspection ---------------------------------------------------------- */

int engine_seat(const engine *e, uint64_t event_id, uint32_t s, uint8_t *state, uint64_t *claim_out)
{
	const event *ev = event_find(e, event_id);
	if (!ev || s >= ev->seat_count)
		return -ENOENT;
	const seat *st = &e->seats[ev->seat_base + s];
	*state = st->state;
	*claim_out = st->owner ? claim_id_of(e, st->owner - 1) : 0;
	return 0;
}

int engine_avail(const engine *e, uint64_t event_id, bo_avail *out)
{
	const event *ev = event_find(e, event_id);
	if (!ev)
		return -ENOENT;
	avail_fill(ev, out);
	return 0;
}

void engine_stats_get(const engine *e, engine_stats *out)
{
	out->events = e->event_count;
	out->seats = e->seats_used;
	out->holds = e->holds_live;
	out->bookings = e->bookings_live;
	out->idem_entries = (uint32_t)(e->idem_tail - e->idem_head);
	out->expired_total = e->expired_total;
}

/* Hashes every table in a fixed order. Structs are hashed as raw bytes: all
 * memory comes zeroed from engine_new() and fields are assigned one by one
 * (or whole slots are zeroed), so padding bytes are always zero. */
uint64_t engine_digest(const engine *e)
{
	XXH3_state_t *st = XXH3_createState();
	assert(st);
	XXH3_64bits_reset(st);
	uint64_t hdr[] = {(uint64_t)e->now_ms,	  e->seats_used,   e->rows_used,    e->rowcats_used,
			  e->event_count,	  e->claims_fresh, e->recycle_head, e->recycle_tail,
			  e->heap_len,		  e->idem_head,	   e->idem_tail,    e->holds_live,
			  e->bookings_live,	  e->expired_total};
	XXH3_64bits_update(st, hdr, sizeof(hdr));
	XXH3_64bits_update(st, e->seats, (size_t)e->seats_used * sizeof(seat));
	XXH3_64bits_update(st, e->rows, (size_t)e->rows_used * sizeof(row));
	XXH3_64bits_update(st, e->rowcats, (size_t)e->rowcats_used * sizeof(rowcat));
	XXH3_64bits_update(st, e->events, (size_t)e->event_count * sizeof(event));
	XXH3_64bits_update(st, e->event_index, (e->event_index_mask + 1ull) * sizeof(uint32_t));
	XXH3_64bits_update(st, e->claims, (size_t)e->claims_fresh * sizeof(claim));
	for (uint64_t pos = e->recycle_head; pos < e->recycle_tail; pos++) {
		uint32_t v = e->recycle[pos % eng_recycle_cap(&e->cfg)];
		XXH3_64bits_update(st, &v, sizeof(v));
	}
	XXH3_64bits_update(st, e->heap, (size_t)e->heap_len * sizeof(uint32_t));
	XXH3_64bits_update(st, e->clients, (e->clients_mask + 1ull) * sizeof(client_slot));
	XXH3_64bits_update(st, e->idem, (size_t)e->cfg.idem_capacity * sizeof(idem_entry));
	XXH3_64bits_update(st, e->idem_index, (e->idem_index_mask + 1ull) * sizeof(struct idem_bucket));
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}
