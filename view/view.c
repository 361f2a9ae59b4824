/*
 * view.c — the read model of one shard (see view.h for the contract).
 *
 * MEMORY LAYOUT (all reserved by view_new straight from mmap: zero pages,
 * resident only once written)
 *
 *   words[]    seat states, 8 per _Atomic uint64_t: seat s of an event is
 *              byte s % 8 (bits 8*(s%8) ..) of word word_base + s / 8. Each
 *              event's seats start at a word boundary, so no word holds two
 *              events' seats and an event's writer never touches a word
 *              another event's readers read. ceil(seats_max / 8) +
 *              events_max words: at most 7 bytes of padding per event.
 *   cats[]     a category byte per seat (seats_max): immutable.
 *   rows[]     a bo_row_def per row (seats_max: rows <= seats): immutable.
 *   events[]   one vevent per event of events_max, 256 bytes (4 cache
 *              lines, so two events never share one): the seqlock, the
 *              sequence, the counters (atomics), the immutable description
 *              of the event, and a few fields only the writer touches.
 *   index[]    open addressing event_id -> events[] index, power of two
 *              >= 2 x events_max slots of 24 bytes; insert only (events
 *              are never deleted), so readers probe it without a lock.
 *   holds[]    the writer's active pool holds, claim_id -> (pool,
 *              quantity), 2 x claims_max slots of 16 bytes, linear probing
 *              with backward-shift deletion (no tombstones, so a probe
 *              never walks more than the cluster it is in).
 *   batch      VIEW_BATCH_MAX pending changes, the touched events and a
 *              scratch array for emit: ~0.8 MiB, fixed.
 *
 * PUBLICATION. An event becomes visible to readers when its id is stored
 * (release) into its index slot; everything about it (its slot's event
 * index, its rows, categories, pool capacities, initial counters and
 * states) is written before, and readers load the id with acquire, so they
 * see all of it. The writer finds events through `wid`, a copy of the id
 * only it reads, set when the CREATE is added: later changes of the same
 * batch chain to the event while readers still cannot see it. Created
 * events are published in creation order, which is the order they took
 * their index slots, so a published id is never behind an unpublished
 * slot on its probe path.
 *
 * SEQLOCK (per event). Writer: lock = odd (relaxed); release fence; the
 * changes as relaxed atomic stores; lock = even (release). Reader: s1 =
 * lock (acquire), retry if odd; copy with relaxed atomic loads; acquire
 * fence; s2 = lock (relaxed); the copy is whole iff s1 == s2. The release
 * fence keeps the data stores after the odd store; the acquire fence keeps
 * the data loads before the second lock load. Every word a reader loads
 * while the writer may store it is an atomic, so there is no data race
 * (ThreadSanitizer agrees), only retries.
 *
 * POOL HOLDS. A change carries no state of its claim, but the pool's free
 * count after a CONFIRM depends on it (engine.h): confirming an active
 * hold moves its tickets from held to booked (free unchanged), confirming
 * an expired one books them afresh (free - quantity). So the writer keeps
 * the active pool holds: added by HOLD_POOL, removed by RELEASE, EXPIRY and
 * CONFIRM. Seat changes need nothing like it: each seat's old state is in
 * words[], and the counters follow from old and new state.
 */
#include "view.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/hash.h"

#define NONE UINT32_MAX

/* gcc's ThreadSanitizer does not model atomic_thread_fence and says so
 * (-Wtsan, an error under -Dwerror). The seqlock's fences (see SEQLOCK)
 * order the relaxed accesses on the hardware; TSan needs none of them to
 * see no race, since every word shared with readers is an atomic. */
#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wtsan"
#endif

typedef struct vevent {
	/* Changed by the writer while readers read: atomics. */
	_Atomic uint64_t lock; /* seqlock: odd while the writer applies */
	_Atomic uint64_t seq;  /* journal sequence of the last change */
	_Atomic uint32_t by_state[BO_SEAT_STATE_COUNT];
	_Atomic uint32_t free_by_cat[BO_CATEGORIES_MAX];
	_Atomic uint32_t pool_free[BO_POOLS_PER_EVENT_MAX];
	/* Immutable once published: plain. */
	uint64_t id;
	uint32_t word_base; /* first state word */
	uint32_t seat_base; /* first category byte */
	uint32_t seat_count;
	uint32_t row_base, row_count;
	uint32_t category_count, pool_count;
	uint32_t pool_cap[BO_POOLS_PER_EVENT_MAX];
	/* The writer's own. */
	uint64_t batch;      /* the batch that last touched it */
	uint32_t head, tail; /* its chain of pending changes this batch */
	uint32_t slot;       /* its index slot */
	uint8_t unpublished; /* created in this batch, not yet visible */
} __attribute__((aligned(64))) vevent;
_Static_assert(sizeof(vevent) == 256, "an event is 4 cache lines");

typedef struct vslot {
	_Atomic uint64_t id; /* readers: published event id, 0 = empty */
	uint64_t wid;        /* writer: the id, set when the event is created */
	uint32_t event;      /* events[] index, set before id is published */
	uint32_t _pad;
} vslot;

/* An index slot may cost up to 4 per event (2 x events_max rounded up to
 * a power of two), a state word of padding: the per-event bound of
 * limits.h holds. */
_Static_assert(sizeof(vevent) + 4 * sizeof(vslot) + sizeof(uint64_t) <= BO_VIEW_EVENT_BYTES,
               "BO_VIEW_EVENT_BYTES bounds an event's share");

typedef struct vhold {
	uint64_t claim; /* 0 = empty (claim ids are never 0) */
	uint32_t quantity;
	uint8_t pool;
	uint8_t _pad[3];
} vhold;
_Static_assert(sizeof(vhold) * 2 == 32, "32 bytes per claim of claims_max (limits.h)");

typedef struct vpending {
	bo_change ch;
	uint64_t seq;
	int64_t at_ms;
	uint32_t event; /* events[] index */
	uint32_t next;  /* next change of the same event, NONE at the end */
} vpending;

struct view {
	/* Set by view_new, then only read: the readers' cache lines, kept
	 * apart from everything the writer changes per batch. */
	engine_config cfg;
	_Atomic uint64_t *words;
	uint8_t *cats;
	bo_row_def *rows;
	vevent *events;
	vslot *index;
	uint32_t index_mask;
	uint32_t words_max;
	vhold *holds;
	uint32_t holds_cap; /* 2 x claims_max */
	vpending *pending;  /* [VIEW_BATCH_MAX] the batch's changes */
	uint32_t *touched;  /* [VIEW_BATCH_MAX] events in first-touch order */
	bo_change *scratch; /* [VIEW_BATCH_MAX] one event's changes for emit */

	/* The writer's: arenas (next free word, category byte, row, event)
	 * and the batch being added. */
	_Alignas(64) uint32_t words_used;
	uint32_t seats_used, rows_used, events_used;
	bool in_batch;
	uint64_t batch_no;
	uint32_t records;  /* results + expiries added */
	uint32_t npending; /* changes recorded */
	uint32_t ntouched;
	uint64_t seq_last; /* the last change's seq: changes come in journal order */

	/* Gauges (view_stats), read by any thread: the writer's, and the one
	 * readers write, each on its own line. */
	_Alignas(64) _Atomic uint64_t batches;
	_Atomic uint64_t changes;
	_Atomic uint32_t events_gauge, holds_gauge;
	_Alignas(64) _Atomic uint64_t read_retries;
};

/* ---- Sizes and construction ---------------------------------------------- */

static uint32_t pow2_at_least(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	assert(p <= (1ull << 31));
	return (uint32_t)p;
}

/* engine_new's rule (limits.h): a view serves an engine of the same
 * configuration. */
static bool config_ok(const engine_config *c)
{
	return c->seats_max >= 1 && c->seats_max <= BO_SEATS_PER_SHARD_MAX && c->claims_max >= 1 &&
	       c->claims_max <= BO_CLAIMS_PER_SHARD_MAX && BO_IS_POW2(c->idem_capacity) &&
	       c->idem_capacity <= BO_IDEM_CAPACITY_MAX && c->events_max >= 1 &&
	       c->events_max <= BO_EVENTS_PER_SHARD_MAX;
}

static uint32_t words_for(const engine_config *cfg)
{
	return (cfg->seats_max + 7) / 8 + cfg->events_max;
}


/* The tables come straight from mmap: zero pages, resident only once
 * written. Not calloc: the process's allocator (mimalloc, and glibc under
 * MALLOC_PERTURB_) may zero a block by writing it, which would make a
 * default view cost its whole 130 MiB from the start. */
static void *table_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void table_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

/* Bytes of each table of a view of cfg, in one place for new and free. */
typedef struct table_sizes {
	size_t words, cats, rows, events, index, holds, pending, touched, scratch;
} table_sizes;

static table_sizes sizes_of(const engine_config *cfg)
{
	return (table_sizes){
	        .words = (size_t)words_for(cfg) * sizeof(uint64_t),
	        .cats = cfg->seats_max,
	        .rows = (size_t)cfg->seats_max * sizeof(bo_row_def),
	        .events = (size_t)cfg->events_max * sizeof(vevent),
	        .index = (size_t)pow2_at_least(2ull * cfg->events_max) * sizeof(vslot),
	        .holds = 2ull * cfg->claims_max * sizeof(vhold),
	        .pending = VIEW_BATCH_MAX * sizeof(vpending),
	        .touched = VIEW_BATCH_MAX * sizeof(uint32_t),
	        .scratch = VIEW_BATCH_MAX * sizeof(bo_change),
	};
}

size_t view_memory_bytes(const engine_config *cfg)
{
	assert(cfg);
	table_sizes t = sizes_of(cfg);
	return sizeof(view) + t.words + t.cats + t.rows + t.events + t.index + t.holds + t.pending +
	       t.touched + t.scratch;
}

int view_new(const engine_config *cfg, view **out)
{
	assert(cfg && out);
	*out = NULL;
	if (!config_ok(cfg))
		return -EINVAL;
	/* Aligned: the struct's sections are cache lines of their own. */
	view *v = aligned_alloc(64, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v, 0, sizeof(*v));
	v->cfg = *cfg;
	v->words_max = words_for(cfg);
	v->index_mask = pow2_at_least(2ull * cfg->events_max) - 1;
	v->holds_cap = 2 * cfg->claims_max;
	table_sizes t = sizes_of(cfg);
	v->words = table_alloc(t.words);
	v->cats = table_alloc(t.cats);
	v->rows = table_alloc(t.rows);
	v->events = table_alloc(t.events); /* page aligned: each event on its own lines */
	v->index = table_alloc(t.index);
	v->holds = table_alloc(t.holds);
	v->pending = table_alloc(t.pending);
	v->touched = table_alloc(t.touched);
	v->scratch = table_alloc(t.scratch);
	if (!v->words || !v->cats || !v->rows || !v->events || !v->index || !v->holds ||
	    !v->pending || !v->touched || !v->scratch) {
		view_free(v);
		return -ENOMEM;
	}
	*out = v;
	return 0;
}

void view_free(view *v)
{
	if (!v)
		return;
	table_sizes t = sizes_of(&v->cfg);
	table_free((void *)v->words, t.words);
	table_free(v->cats, t.cats);
	table_free(v->rows, t.rows);
	table_free(v->events, t.events);
	table_free(v->index, t.index);
	table_free(v->holds, t.holds);
	table_free(v->pending, t.pending);
	table_free(v->touched, t.touched);
	table_free(v->scratch, t.scratch);
	free(v);
}

/* ---- Event index ----------------------------------------------------------- */

/* Ids come from clients: base/hash.h's finaliser spreads sequential ones. */
static inline uint64_t hash64(uint64_t x) { return bo_mix64(x); }

/* Readers: the published event `id`, or NULL. The table is at most half
 * full, so a probe always ends at an empty slot. */
static const vevent *event_get(const view *v, uint64_t id)
{
	if (id == 0)
		return NULL;
	for (uint32_t i = (uint32_t)hash64(id) & v->index_mask;; i = (i + 1) & v->index_mask) {
		/* Acquire: pairs with the release in event_publish, so the
		 * slot's event index and the event's contents are visible. */
		uint64_t got = atomic_load_explicit(&v->index[i].id, memory_order_acquire);
		if (got == id)
			return &v->events[v->index[i].event];
		if (got == 0)
			return NULL;
	}
}

/* Writer: event `id`, published or created in this batch; NONE if unknown. */
static uint32_t event_find_w(const view *v, uint64_t id)
{
	assert(id != 0);
	for (uint32_t i = (uint32_t)hash64(id) & v->index_mask;; i = (i + 1) & v->index_mask) {
		if (v->index[i].wid == id)
			return v->index[i].event;
		if (v->index[i].wid == 0)
			return NONE;
	}
}

static void event_publish(view *v, vevent *ev)
{
	assert(ev->unpublished);
	ev->unpublished = 0;
	/* Release: the event's contents and the slot's event index before
	 * its id (pairs with the acquire in event_get). */
	atomic_store_explicit(&v->index[ev->slot].id, ev->id, memory_order_release);
	atomic_store_explicit(&v->events_gauge,
	                      atomic_load_explicit(&v->events_gauge, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

/* Writer: a new, unpublished event with this map, every seat free and
 * every pool whole; its events[] index, or NONE when the view has no room
 * for it (a view smaller than its engine). */
static uint32_t event_new(view *v, uint64_t id, const bo_row_def *rows, uint32_t row_count,
                          const uint8_t *cats, uint32_t seat_count, uint32_t category_count,
                          const uint32_t *pool_cap, uint32_t pool_count)
{
	assert(id != 0 && event_find_w(v, id) == NONE);
	assert(category_count <= BO_CATEGORIES_MAX && pool_count <= BO_POOLS_PER_EVENT_MAX);
	uint32_t words = (seat_count + 7) / 8;
	if (v->events_used >= v->cfg.events_max || seat_count > v->cfg.seats_max - v->seats_used ||
	    row_count > v->cfg.seats_max - v->rows_used || words > v->words_max - v->words_used)
		return NONE;
	uint32_t e = v->events_used++;
	vevent *ev = &v->events[e];
	memset(ev, 0, sizeof(*ev));
	ev->id = id;
	ev->word_base = v->words_used;
	ev->seat_base = v->seats_used;
	ev->seat_count = seat_count;
	ev->row_base = v->rows_used;
	ev->row_count = row_count;
	ev->category_count = category_count;
	ev->pool_count = pool_count;
	v->words_used += words;
	v->seats_used += seat_count;
	v->rows_used += row_count;
	if (row_count > 0) /* a map without seats may have NULL arrays */
		memcpy(&v->rows[ev->row_base], rows, (size_t)row_count * sizeof(bo_row_def));
	if (seat_count > 0)
		memcpy(&v->cats[ev->seat_base], cats, seat_count);
	/* The words are fresh (never another event's): zero, i.e. all free. */
	atomic_store_explicit(&ev->by_state[BO_SEAT_FREE], seat_count, memory_order_relaxed);
	for (uint32_t s = 0; s < seat_count; s++) {
		assert(cats[s] < category_count);
		uint32_t n = atomic_load_explicit(&ev->free_by_cat[cats[s]], memory_order_relaxed);
		atomic_store_explicit(&ev->free_by_cat[cats[s]], n + 1, memory_order_relaxed);
	}
	for (uint32_t p = 0; p < pool_count; p++) {
		ev->pool_cap[p] = pool_cap[p];
		atomic_store_explicit(&ev->pool_free[p], pool_cap[p], memory_order_relaxed);
	}
	ev->batch = 0;
	ev->head = ev->tail = NONE;
	ev->unpublished = 1;
	uint32_t i = (uint32_t)hash64(id) & v->index_mask;
	while (v->index[i].wid != 0)
		i = (i + 1) & v->index_mask;
	v->index[i].wid = id;
	v->index[i].event = e;
	ev->slot = i;
	return e;
}

/* ---- Active pool holds (writer only) ---------------------------------------- */

static inline uint32_t hold_home(const view *v, uint64_t claim)
{
	/* Multiply-shift into [0, holds_cap): the table need not be a power
	 * of two, so it is exactly 2 x claims_max. */
	return (uint32_t)(((hash64(claim) >> 32) * v->holds_cap) >> 32);
}

static inline uint32_t hold_next(const view *v, uint32_t i)
{
	return i + 1 == v->holds_cap ? 0 : i + 1;
}

static void hold_put(view *v, uint64_t claim, uint8_t pool, uint32_t quantity)
{
	assert(claim != 0);
	uint32_t n = atomic_load_explicit(&v->holds_gauge, memory_order_relaxed);
	assert(n < v->cfg.claims_max); /* so the table stays at most half full */
	uint32_t i = hold_home(v, claim);
	while (v->holds[i].claim != 0) {
		assert(v->holds[i].claim != claim);
		i = hold_next(v, i);
	}
	v->holds[i] = (vhold){.claim = claim, .quantity = quantity, .pool = pool};
	atomic_store_explicit(&v->holds_gauge, n + 1, memory_order_relaxed);
}

/* Removes claim's entry; false when it had none. */
static bool hold_take(view *v, uint64_t claim, vhold *out /* OUT */)
{
	uint32_t i = hold_home(v, claim);
	while (v->holds[i].claim != claim) {
		if (v->holds[i].claim == 0)
			return false;
		i = hold_next(v, i);
	}
	*out = v->holds[i];
	/* Backward shift: move later entries of the cluster into the hole
	 * when their home is not between the hole and them. */
	uint32_t hole = i, cap = v->holds_cap;
	for (uint32_t j = hold_next(v, i); v->holds[j].claim != 0; j = hold_next(v, j)) {
		uint32_t home = hold_home(v, v->holds[j].claim);
		uint32_t dist_home = (j + cap - home) % cap, dist_hole = (j + cap - hole) % cap;
		if (dist_home >= dist_hole) {
			v->holds[hole] = v->holds[j];
			hole = j;
		}
	}
	v->holds[hole] = (vhold){0};
	atomic_store_explicit(&v->holds_gauge,
	                      atomic_load_explicit(&v->holds_gauge, memory_order_relaxed) - 1,
	                      memory_order_relaxed);
	return true;
}

/* ---- Loading from an engine ------------------------------------------------- */

/* Writer: sets seat s of ev to state (the counters follow) and returns its
 * old state. Only inside the event's seqlock, or before it is published. */
static uint8_t seat_store(view *v, vevent *ev, uint32_t s, uint8_t state)
{
	assert(s < ev->seat_count && state < BO_SEAT_STATE_COUNT);
	_Atomic uint64_t *w = &v->words[ev->word_base + s / 8];
	uint32_t shift = 8 * (s % 8);
	uint64_t word = atomic_load_explicit(w, memory_order_relaxed);
	uint8_t old = (uint8_t)(word >> shift);
	assert(old < BO_SEAT_STATE_COUNT);
	if (old == state)
		return old;
	word = (word & ~(0xffull << shift)) | ((uint64_t)state << shift);
	atomic_store_explicit(w, word, memory_order_relaxed);
	uint8_t cat = v->cats[ev->seat_base + s];
	uint32_t o = atomic_load_explicit(&ev->by_state[old], memory_order_relaxed);
	uint32_t n = atomic_load_explicit(&ev->by_state[state], memory_order_relaxed);
	assert(o > 0);
	atomic_store_explicit(&ev->by_state[old], o - 1, memory_order_relaxed);
	atomic_store_explicit(&ev->by_state[state], n + 1, memory_order_relaxed);
	if (old == BO_SEAT_FREE || state == BO_SEAT_FREE) {
		uint32_t f = atomic_load_explicit(&ev->free_by_cat[cat], memory_order_relaxed);
		assert(state == BO_SEAT_FREE || f > 0);
		atomic_store_explicit(&ev->free_by_cat[cat], state == BO_SEAT_FREE ? f + 1 : f - 1,
		                      memory_order_relaxed);
	}
	return old;
}

typedef struct load_ctx {
	view *v;
	int rc;
} load_ctx;

static void load_pool_hold(void *ctx, uint64_t event_id, uint64_t claim_id, uint8_t pool,
                           uint32_t quantity)
{
	load_ctx *lc = ctx;
	(void)event_id;
	if (lc->rc == 0 && atomic_load_explicit(&lc->v->holds_gauge, memory_order_relaxed) >=
	                           lc->v->cfg.claims_max)
		lc->rc = -ENOMEM; /* an engine with more claims than this view */
	if (lc->rc == 0)
		hold_put(lc->v, claim_id, pool, quantity);
}

/* Copies one engine event (its image) into a new event and publishes it. */
static int load_event(view *v, const bo_event_image *im, uint64_t seq)
{
	uint32_t e =
	        event_new(v, im->event_id, im->rows, im->row_count, im->categories, im->seat_count,
	                  im->category_count, im->pool_capacity, im->pool_count);
	if (e == NONE)
		return -ENOMEM;
	vevent *ev = &v->events[e];
	for (uint32_t s = 0; s < im->seat_count; s++)
		if (im->states[s] != BO_SEAT_FREE)
			seat_store(v, ev, s, im->states[s]);
	for (uint32_t p = 0; p < im->pool_count; p++) {
		assert(im->pool_free[p] <= im->pool_capacity[p]);
		atomic_store_explicit(&ev->pool_free[p], im->pool_free[p], memory_order_relaxed);
	}
	atomic_store_explicit(&ev->seq, seq, memory_order_relaxed);
	event_publish(v, ev);
	return 0;
}

int view_load(view *v, const engine *e, uint64_t seq)
{
	assert(v && e && !v->in_batch);
	if (v->events_used != 0 || atomic_load_explicit(&v->holds_gauge, memory_order_relaxed) != 0)
		return -EEXIST;
	uint32_t n = engine_event_count(e);
	for (uint32_t i = 0; i < n; i++) {
		bo_event_image im;
		int rc = engine_event_image(e, i, &im);
		if (rc == 0) {
			rc = load_event(v, &im, seq);
			bo_event_image_free(&im);
		}
		if (rc < 0)
			return rc;
	}
	load_ctx lc = {.v = v, .rc = 0};
	engine_foreach_pool_hold(e, load_pool_hold, &lc);
	if (v->seq_last < seq)
		v->seq_last = seq;
	return lc.rc;
}

/* ---- Writer: recording ------------------------------------------------------ */

void view_batch_begin(view *v)
{
	assert(v && !v->in_batch);
	v->in_batch = true;
	v->batch_no++;
	v->records = 0;
	v->npending = 0;
	v->ntouched = 0;
}

/* A new change of event e (by id) at seq, chained after the event's
 * earlier changes of this batch; its fields are the caller's to fill. */
static bo_change *change_add(view *v, uint64_t event_id, uint64_t seq, int64_t now_ms,
                             uint8_t cause)
{
	uint32_t e = event_find_w(v, event_id);
	/* A durable OK result or expiry names an event the engine has, and
	 * the view holds everything the engine does. */
	assert(e != NONE && "change of an event the view does not have");
	assert(v->npending < VIEW_BATCH_MAX);
	/* Changes come in journal order (expiries of one tick share its
	 * record's seq). Records that change nothing are not checked: a
	 * query's result has seq 0 (it is not journaled). */
	assert(seq >= v->seq_last);
	v->seq_last = seq;
	uint32_t k = v->npending++;
	vpending *p = &v->pending[k];
	memset(&p->ch, 0, sizeof(p->ch));
	p->ch.cause = cause;
	p->seq = seq;
	p->at_ms = now_ms;
	p->event = e;
	p->next = NONE;
	vevent *ev = &v->events[e];
	if (ev->batch != v->batch_no) {
		ev->batch = v->batch_no;
		ev->head = ev->tail = k;
		v->touched[v->ntouched++] = e;
	} else {
		v->pending[ev->tail].next = k;
		ev->tail = k;
	}
	return &p->ch;
}

static void record_begin(view *v)
{
	assert(v->in_batch && "view_add_* outside view_batch_begin/end");
	assert(v->records < VIEW_BATCH_MAX);
	v->records++;
}

static void change_seats(bo_change *ch, uint8_t state, uint64_t claim, const uint32_t *seats,
                         uint32_t n)
{
	assert(n >= 1 && n <= BO_SEATS_PER_HOLD_MAX);
	ch->state = state;
	ch->claim_id = claim;
	ch->seat_count = (uint8_t)n;
	memcpy(ch->seats, seats, n * sizeof(uint32_t));
}

static void change_pool(bo_change *ch, uint8_t pool, uint32_t quantity, uint64_t claim)
{
	assert(pool < BO_POOLS_PER_EVENT_MAX && quantity > 0);
	ch->is_pool = 1;
	ch->pool = pool;
	ch->quantity = quantity;
	ch->claim_id = claim;
}

static void add_create(view *v, const bo_result *r, const bo_cmd *cmd, uint64_t seq, int64_t now_ms)
{
	assert(cmd && cmd->op == BO_OP_CREATE_EVENT && cmd->event_id == r->event_id && cmd->map);
	const bo_seatmap *m = cmd->map;
	uint32_t e = event_new(v, r->event_id, m->rows, m->row_count, m->categories, m->seat_count,
	                       m->category_count, m->pool_capacity, m->pool_count);
	/* The engine accepted it within the same configuration. */
	assert(e != NONE && "view smaller than its engine");
	(void)e;
	change_add(v, r->event_id, seq, now_ms, BO_CAUSE_CREATE);
}

/* A claim op's OK result: a seat claim carries its seats, a pool claim
 * (seat_count 0) its pool and quantity (engine.h, "Results"). */
static void add_claim(view *v, const bo_result *r, uint64_t seq, int64_t now_ms, uint8_t cause,
                      uint8_t state)
{
	bo_change *ch = change_add(v, r->event_id, seq, now_ms, cause);
	if (r->seat_count == 0)
		change_pool(ch, r->pool, r->quantity, r->claim_id);
	else
		change_seats(ch, state, r->claim_id, r->seats, r->seat_count);
}

void view_add_result(view *v, const bo_result *r, const bo_cmd *cmd, uint64_t seq, int64_t now_ms)
{
	assert(v && r);
	record_begin(v);
	if (r->status != BO_OK || r->replayed)
		return;
	switch (r->op) {
	case BO_OP_CREATE_EVENT:
		add_create(v, r, cmd, seq, now_ms);
		break;
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL:
		add_claim(v, r, seq, now_ms, BO_CAUSE_HOLD, BO_SEAT_HELD);
		break;
	case BO_OP_RELEASE:
		add_claim(v, r, seq, now_ms, BO_CAUSE_RELEASE, BO_SEAT_FREE);
		break;
	case BO_OP_CONFIRM:
		add_claim(v, r, seq, now_ms, BO_CAUSE_CONFIRM, BO_SEAT_BOOKED);
		break;
	case BO_OP_CANCEL:
		add_claim(v, r, seq, now_ms, BO_CAUSE_CANCEL, BO_SEAT_FREE);
		break;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK: {
		uint8_t block = r->op == BO_OP_BLOCK;
		bo_change *ch = change_add(v, r->event_id, seq, now_ms,
		                           block ? BO_CAUSE_BLOCK : BO_CAUSE_UNBLOCK);
		change_seats(ch, block ? BO_SEAT_BLOCKED : BO_SEAT_FREE, 0, r->seats,
		             r->seat_count);
		break;
	}
	default:
		break; /* EXTEND and the queries change no availability */
	}
}

void view_add_expiry(view *v, const bo_expiry *x, uint64_t seq, int64_t now_ms)
{
	assert(v && x);
	record_begin(v);
	bo_change *ch = change_add(v, x->event_id, seq, now_ms, BO_CAUSE_EXPIRY);
	if (x->is_pool)
		change_pool(ch, x->pool, x->quantity, x->claim_id);
	else
		change_seats(ch, BO_SEAT_FREE, x->claim_id, x->seats, x->seat_count);
}

/* ---- Writer: applying ------------------------------------------------------- */

/* A pool change: moves the pool's free count and sets ch->pool_free. */
static void apply_pool(view *v, vevent *ev, bo_change *ch)
{
	assert(ch->pool < ev->pool_count);
	uint32_t free_now = atomic_load_explicit(&ev->pool_free[ch->pool], memory_order_relaxed);
	uint32_t q = ch->quantity;
	vhold h;
	switch (ch->cause) {
	case BO_CAUSE_HOLD:
		assert(free_now >= q);
		free_now -= q;
		hold_put(v, ch->claim_id, ch->pool, q);
		break;
	case BO_CAUSE_RELEASE:
	case BO_CAUSE_EXPIRY: {
		bool had = hold_take(v, ch->claim_id, &h);
		assert(had && h.pool == ch->pool && h.quantity == q);
		(void)had;
		free_now += q;
		break;
	}
	case BO_CAUSE_CONFIRM:
		/* Active: held -> booked, free unchanged. Expired: booked
		 * afresh from the free tickets (engine.h, CONFIRM). */
		if (!hold_take(v, ch->claim_id, &h)) {
			assert(free_now >= q);
			free_now -= q;
		}
		break;
	case BO_CAUSE_CANCEL:
		free_now += q;
		break;
	default:
		assert(0 && "no such pool change");
	}
	assert(free_now <= ev->pool_cap[ch->pool]);
	atomic_store_explicit(&ev->pool_free[ch->pool], free_now, memory_order_relaxed);
	ch->pool_free = free_now;
}

/* Applies the batch's changes of one event under its seqlock. Returns the
 * last change's seq and time. */
static void apply_event(view *v, vevent *ev, uint64_t *seq, int64_t *at_ms)
{
	uint64_t lock = atomic_load_explicit(&ev->lock, memory_order_relaxed);
	assert(!(lock & 1));
	atomic_store_explicit(&ev->lock, lock + 1, memory_order_relaxed);
	/* Release fence: no store below may become visible before the odd
	 * lock (a reader that sees any of them then fails its recheck). */
	atomic_thread_fence(memory_order_release);
	for (uint32_t k = ev->head; k != NONE; k = v->pending[k].next) {
		vpending *p = &v->pending[k];
		if (p->ch.is_pool) {
			apply_pool(v, ev, &p->ch);
		} else {
			for (uint32_t i = 0; i < p->ch.seat_count; i++) {
				uint8_t old = seat_store(v, ev, p->ch.seats[i], p->ch.state);
				/* Every durable change changes each of its seats. */
				assert(old != p->ch.state);
				(void)old;
			}
		}
		*seq = p->seq;
		*at_ms = p->at_ms;
	}
	atomic_store_explicit(&ev->seq, *seq, memory_order_relaxed);
	/* Release: the changes and seq before the even lock (pairs with the
	 * reader's acquire load of the lock). */
	atomic_store_explicit(&ev->lock, lock + 2, memory_order_release);
}

void view_batch_end(view *v, view_emit_fn emit, void *ctx)
{
	assert(v && v->in_batch);
	for (uint32_t t = 0; t < v->ntouched; t++) {
		vevent *ev = &v->events[v->touched[t]];
		uint64_t prev = atomic_load_explicit(&ev->seq, memory_order_relaxed);
		uint64_t seq = prev;
		int64_t at_ms = 0;
		apply_event(v, ev, &seq, &at_ms);
		/* Created events in creation order: see PUBLICATION. */
		if (ev->unpublished)
			event_publish(v, ev);
		if (!emit)
			continue;
		uint32_t n = 0;
		for (uint32_t k = ev->head; k != NONE; k = v->pending[k].next)
			v->scratch[n++] = v->pending[k].ch;
		emit(ctx, ev->id, prev, seq, at_ms, v->scratch, n);
	}
	if (v->ntouched > 0) {
		atomic_store_explicit(&v->batches,
		                      atomic_load_explicit(&v->batches, memory_order_relaxed) + 1,
		                      memory_order_relaxed);
		atomic_store_explicit(&v->changes,
		                      atomic_load_explicit(&v->changes, memory_order_relaxed) +
		                              v->npending,
		                      memory_order_relaxed);
	}
	v->in_batch = false;
}

/* ---- Readers ---------------------------------------------------------------- */

/* A spin-wait hint: the writer holds the lock for one batch's changes of
 * one event, microseconds at most, so readers spin rather than sleep. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline uint64_t read_begin(const vevent *ev)
{
	for (;;) {
		/* Acquire: pairs with the writer's release of the even lock. */
		uint64_t s = atomic_load_explicit(&ev->lock, memory_order_acquire);
		if (!(s & 1))
			return s;
		cpu_relax();
	}
}

/* True when the copy made since read_begin returned s1 is whole. */
static inline bool read_end(const view *v, const vevent *ev, uint64_t s1)
{
	/* Acquire fence: the copy's loads before the lock's reload. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&ev->lock, memory_order_relaxed) == s1)
		return true;
	/* The gauge is the one word readers write: the cast drops the const of
	 * the readers' API, not of the object (view_new allocated it). */
	atomic_fetch_add_explicit(&((view *)v)->read_retries, 1, memory_order_relaxed);
	return false;
}

static inline uint8_t seat_load(const view *v, const vevent *ev, uint32_t s)
{
	uint64_t w = atomic_load_explicit(&v->words[ev->word_base + s / 8], memory_order_relaxed);
	return (uint8_t)(w >> (8 * (s % 8)));
}

static void query_avail(const view *v, const vevent *ev, bo_result *out)
{
	bo_avail *a = &out->avail;
	memset(a, 0, sizeof(*a));
	a->category_count = (uint8_t)ev->category_count;
	a->pool_count = (uint8_t)ev->pool_count;
	memcpy(a->pool_capacity, ev->pool_cap, sizeof(a->pool_capacity));
	uint64_t s1;
	do {
		s1 = read_begin(ev);
		for (uint32_t i = 0; i < BO_SEAT_STATE_COUNT; i++)
			a->by_state[i] =
			        atomic_load_explicit(&ev->by_state[i], memory_order_relaxed);
		for (uint32_t c = 0; c < BO_CATEGORIES_MAX; c++)
			a->free_by_category[c] =
			        atomic_load_explicit(&ev->free_by_cat[c], memory_order_relaxed);
		for (uint32_t p = 0; p < ev->pool_count; p++)
			a->pool_free[p] =
			        atomic_load_explicit(&ev->pool_free[p], memory_order_relaxed);
		out->view_seq = atomic_load_explicit(&ev->seq, memory_order_relaxed);
	} while (!read_end(v, ev, s1));
}

/* engine.c's seats_check for QUERY_SEATS (duplicates allowed). */
static bool query_seats_check(const vevent *ev, const bo_cmd *c, bo_result *r)
{
	if (c->seat_count == 0 || c->seat_count > BO_QUERY_SEATS_MAX) {
		r->status = BO_INVALID;
		r->detail = BO_D_SEAT_COUNT;
		return false;
	}
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (c->seats[i] >= ev->seat_count) {
			r->status = BO_INVALID;
			r->detail = BO_D_SEAT_RANGE;
			return false;
		}
	}
	return true;
}

static void query_seats(const view *v, const vevent *ev, const bo_cmd *c, bo_result *out)
{
	if (!query_seats_check(ev, c, out)) {
		out->view_seq = atomic_load_explicit(&ev->seq, memory_order_acquire);
		return;
	}
	out->seat_count = c->seat_count;
	memcpy(out->seats, c->seats, c->seat_count * sizeof(uint32_t));
	uint64_t s1;
	do {
		s1 = read_begin(ev);
		for (uint32_t i = 0; i < c->seat_count; i++)
			out->seat_state[i] = seat_load(v, ev, c->seats[i]);
		out->view_seq = atomic_load_explicit(&ev->seq, memory_order_relaxed);
	} while (!read_end(v, ev, s1));
}

void view_query(const view *v, const bo_cmd *cmd, bo_result *out)
{
	assert(v && cmd && out);
	assert((cmd->op == BO_OP_QUERY_AVAIL || cmd->op == BO_OP_QUERY_SEATS) &&
	       "view_query answers queries only");
	memset(out, 0, sizeof(*out));
	out->op = cmd->op;
	out->client_id = cmd->client_id;
	out->request_id = cmd->request_id;
	out->event_id = cmd->event_id;
	out->status = BO_OK;
	const vevent *ev = event_get(v, cmd->event_id);
	if (!ev) {
		out->status = BO_NOT_FOUND;
		out->detail = BO_D_NO_EVENT;
		return;
	}
	if (cmd->op == BO_OP_QUERY_AVAIL)
		query_avail(v, ev, out);
	else
		query_seats(v, ev, cmd, out);
}

/* An image's array: never NULL, so an empty one is one byte. */
static void *image_array(size_t n, size_t size)
{
	return malloc(n ? n * size : 1);
}

int view_image(const view *v, uint64_t event_id, bo_event_image *out)
{
	assert(v && out);
	*out = (bo_event_image){0};
	const vevent *ev = event_get(v, event_id);
	if (!ev)
		return -ENOENT;
	out->rows = image_array(ev->row_count, sizeof(bo_row_def));
	out->categories = image_array(ev->seat_count, 1);
	out->states = image_array(ev->seat_count, 1);
	if (!out->rows || !out->categories || !out->states) {
		bo_event_image_free(out);
		return -ENOMEM;
	}
	out->event_id = ev->id;
	out->seat_count = ev->seat_count;
	out->row_count = ev->row_count;
	out->category_count = ev->category_count;
	out->pool_count = ev->pool_count;
	memcpy(out->rows, &v->rows[ev->row_base], (size_t)ev->row_count * sizeof(bo_row_def));
	memcpy(out->categories, &v->cats[ev->seat_base], ev->seat_count);
	memcpy(out->pool_capacity, ev->pool_cap, sizeof(out->pool_capacity));
	const _Atomic uint64_t *words = &v->words[ev->word_base];
	uint64_t s1;
	do {
		s1 = read_begin(ev);
		for (uint32_t w = 0; w * 8 < ev->seat_count; w++) {
			uint64_t word = atomic_load_explicit(&words[w], memory_order_relaxed);
			for (uint32_t b = 0; b < 8 && w * 8 + b < ev->seat_count; b++)
				out->states[w * 8 + b] = (uint8_t)(word >> (8 * b));
		}
		for (uint32_t p = 0; p < ev->pool_count; p++)
			out->pool_free[p] =
			        atomic_load_explicit(&ev->pool_free[p], memory_order_relaxed);
		out->seq = atomic_load_explicit(&ev->seq, memory_order_relaxed);
	} while (!read_end(v, ev, s1));
	return 0;
}

uint64_t view_seq(const view *v, uint64_t event_id)
{
	assert(v);
	const vevent *ev = event_get(v, event_id);
	return ev ? atomic_load_explicit(&ev->seq, memory_order_acquire) : 0;
}

void view_stats_get(const view *v, view_stats *out)
{
	assert(v && out);
	out->batches = atomic_load_explicit(&v->batches, memory_order_relaxed);
	out->changes = atomic_load_explicit(&v->changes, memory_order_relaxed);
	out->read_retries = atomic_load_explicit(&v->read_retries, memory_order_relaxed);
	out->events = atomic_load_explicit(&v->events_gauge, memory_order_relaxed);
	out->pool_holds = atomic_load_explicit(&v->holds_gauge, memory_order_relaxed);
}
