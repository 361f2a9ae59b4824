/*
 * engine_internal.h — the engine's tables, shared by engine.c and the
 * modules that read or rebuild them wholesale (snapshot.c, check.c), and
 * the few rules all of them must apply identically (the config bounds, the
 * expiry order, the idempotency lookup). Not a public header: only files of
 * engine/ include it.
 */
#ifndef BO_ENGINE_INTERNAL_H
#define BO_ENGINE_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/hash.h"
#include "engine.h"

#define SLOT_NONE UINT32_MAX

/* Claim states. HELD and BOOKED are live; the others are ended claims that
 * keep their content until the slot is recycled (a late confirm of an EXPIRED
 * hold needs its seats). */
enum { CL_UNUSED = 0, CL_HELD, CL_BOOKED, CL_EXPIRED, CL_RELEASED, CL_CANCELLED };

typedef struct seat {
	uint32_t owner; /* claim slot + 1; 0 when free or blocked */
	uint16_t row;	/* row index within the event */
	uint8_t state;	/* bo_seat_state */
	uint8_t cat;	/* category */
} seat;
_Static_assert(sizeof(seat) == 8, "seat state is 8 bytes (issue budget: 16)");
_Static_assert(BO_ROWS_PER_EVENT_MAX - 1 <= UINT16_MAX, "row index fits seat.row");

typedef struct row {
	uint32_t first;	   /* first seat, event-relative */
	uint32_t rc_first; /* first rowcat, event-relative */
	uint16_t len;	   /* seats */
	uint16_t section;
	uint16_t rc_count; /* categories present */
	uint16_t _pad;
} row;

typedef struct rowcat {
	uint16_t no_clean; /* bit n-1: best-available for n found no block that
			    * strands nothing here, and no seat of the row has
			    * been freed or taken since: skip the row for n */
	uint8_t max_run;   /* >= min(255, longest run of free seats of `cat`):
			    * exact after creation and after best-available
			    * scans the row; a hold leaves it stale-high (cheap),
			    * a release raises it. Saturates: n <= 16 < 255. */
	uint8_t cat;
} rowcat;
_Static_assert(sizeof(rowcat) == 4, "4 bytes per (row, category)");
_Static_assert(BO_SEATS_PER_HOLD_MAX <= 16, "rowcat.no_clean has a bit per quantity");

typedef struct event {
	uint64_t id;
	uint32_t seat_base, seat_count;
	uint32_t row_base, row_count;
	uint32_t rc_base, rc_count;
	uint32_t category_count, pool_count;
	uint32_t by_state[BO_SEAT_STATE_COUNT];
	uint32_t free_by_cat[BO_CATEGORIES_MAX];
	uint32_t pool_cap[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_held[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_booked[BO_POOLS_PER_EVENT_MAX];
} event;

typedef struct claim {
	uint32_t gen;	   /* bumped on every recycle; 0 = never used */
	uint32_t event;	   /* event index */
	uint32_t heap_pos; /* position in heap[], SLOT_NONE when not there */
	uint32_t quantity; /* pool holds */
	uint8_t state;	   /* CL_* */
	uint8_t is_pool;
	uint8_t pool;
	uint8_t seat_count;
	uint8_t payref_len;
	uint8_t in_recycle; /* has a valid entry in recycle[] */
	uint8_t _pad[2];
	uint32_t ticket; /* low 32 bits of that entry's queue position */
	uint64_t client;
	int64_t created_ms;
	int64_t expires_ms;
	uint32_t seats[BO_SEATS_PER_HOLD_MAX]; /* event-relative */
	char payref[BO_PAYREF_LEN_MAX];
} claim;

/* What the idempotency window keeps of a result: everything a mutating
 * command's result carries (client/request/event come from the key). */
typedef struct idem_entry {
	uint64_t client;
	uint64_t request;
	uint64_t content; /* hash of the command's meaningful fields */
	int64_t at_ms;	  /* when it was first applied */
	uint64_t claim_id;
	int64_t expires_at_ms;
	uint32_t quantity;
	uint8_t op, status, detail, seat_count;
	uint8_t pool;
	uint8_t _pad[7];
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
} idem_entry;

typedef struct idem_bucket {
	uint32_t hash[7]; /* key hash of each slot */
	uint32_t spill;	  /* 1: keys homed here may live in later buckets */
	uint32_t pos[7];  /* low 32 bits of FIFO position + 1; 0 = never used */
	uint32_t _pad;
} idem_bucket;
_Static_assert(sizeof(idem_bucket) == 64, "one bucket, one cache line");
#define IDEM_SLOTS 7u

typedef struct client_slot {
	uint64_t client; /* 0 = empty */
	uint32_t holds;
	uint32_t _pad;
} client_slot;

struct engine {
	engine_config cfg;
	int64_t now_ms;

	/* arenas */
	seat *seats;
	row *rows;
	rowcat *rowcats;
	uint32_t seats_used, rows_used, rowcats_used;

	event *events;
	uint32_t event_count;
	uint32_t *event_index; /* event index + 1, 0 = empty */
	uint32_t event_index_mask;

	claim *claims;
	uint32_t claims_fresh;	/* slots [0, claims_fresh) have been used */
	/* FIFO of ended claim slots, oldest end first. An entry is valid only
	 * if its slot still has in_recycle set and the entry's position as
	 * ticket: a late confirm revives a queued slot by clearing in_recycle,
	 * and its next end queues it anew at the back. A slot thus has at
	 * most two entries (a stale one and a valid one): capacity 2 x claims. */
	uint32_t *recycle;
	uint64_t recycle_head, recycle_tail;
	uint32_t holds_live, bookings_live;

	uint32_t *heap; /* claim slots, min-heap by (expires_ms, claim id) */
	uint32_t heap_len;

	client_slot *clients;
	uint32_t clients_mask;

	idem_entry *idem;	/* FIFO ring, capacity idem_capacity */
	uint64_t idem_head, idem_tail;
	struct idem_bucket *idem_index; /* see "Idempotency window" */
	uint32_t idem_index_mask;

	uint64_t expired_total;
};

/* ---- Small helpers ------------------------------------------------------- */

/* The tables' hash (base/hash.h), by its old name. */
static inline uint64_t mix64(uint64_t x) { return bo_mix64(x); }

static inline uint64_t claim_id_of(const engine *e, uint32_t slot)
{
	return ((uint64_t)e->claims[slot].gen << 32) | slot;
}

static inline uint32_t idem_hash(uint64_t client, uint64_t request)
{
	return (uint32_t)mix64(client ^ mix64(request));
}

static inline bool idem_live(const engine *e, uint32_t pos1)
{
	/* pos1 - 1 is the low 32 bits of a FIFO position; live entries are the
	 * (at most idem_capacity <= 2^24) positions just below idem_tail. */
	return pos1 != 0 && (uint32_t)(pos1 - 1 - (uint32_t)e->idem_head) < (uint32_t)(e->idem_tail - e->idem_head);
}

/* The position in the FIFO window [head, tail) whose low 32 bits are
 * `low`, or tail when there is none (windows are shorter than 2^32). */
static inline uint64_t eng_window_pos(uint64_t head, uint64_t tail, uint32_t low)
{
	uint64_t p = head + (uint32_t)(low - (uint32_t)head);
	return p < tail ? p : tail;
}

/* The idempotency lookup (see "Idempotency window" in engine.c): the FIFO
 * position in [idem_head, idem_tail) of the entry keyed (client, request),
 * or UINT64_MAX when the window holds none. At most one lap of the index,
 * and every read is masked into its table, so engine_check() runs the very
 * lookup the engine uses on tables loaded from a file. Inline: it is on
 * every mutating command's path. */
static inline uint64_t eng_idem_find(const engine *e, uint64_t client, uint64_t request)
{
	uint32_t h = idem_hash(client, request);
	for (uint32_t b = h & e->idem_index_mask, probes = 0; probes <= e->idem_index_mask;
	     b = (b + 1) & e->idem_index_mask, probes++) {
		const idem_bucket *bk = &e->idem_index[b];
		for (uint32_t i = 0; i < IDEM_SLOTS; i++) {
			if (bk->hash[i] != h || !idem_live(e, bk->pos[i]))
				continue;
			uint64_t pos = eng_window_pos(e->idem_head, e->idem_tail, bk->pos[i] - 1);
			const idem_entry *en = &e->idem[pos & (e->cfg.idem_capacity - 1)];
			if (en->client == client && en->request == request)
				return pos;
		}
		if (!bk->spill)
			return UINT64_MAX;
	}
	return UINT64_MAX;
}

/* The expiry heap's order: earlier expiry first, then the lower claim id
 * (so that expiries are deterministic). */
static inline bool eng_heap_less(const engine *e, uint32_t a, uint32_t b)
{
	const claim *ca = &e->claims[a], *cb = &e->claims[b];
	if (ca->expires_ms != cb->expires_ms)
		return ca->expires_ms < cb->expires_ms;
	return claim_id_of(e, a) < claim_id_of(e, b);
}

/* The configs engine_new() accepts (limits.h); the snapshot loader and
 * engine_check() apply the same rule to name a bad one. */
static inline bool eng_config_ok(const engine_config *c)
{
	return c->seats_max >= 1 && c->seats_max <= BO_SEATS_PER_SHARD_MAX && c->claims_max >= 1 &&
	       c->claims_max <= BO_CLAIMS_PER_SHARD_MAX && BO_IS_POW2(c->idem_capacity) &&
	       c->idem_capacity <= BO_IDEM_CAPACITY_MAX && c->events_max >= 1 &&
	       c->events_max <= BO_EVENTS_PER_SHARD_MAX;
}

/* The engine's clock is wall-clock milliseconds (~2^41 today). A loaded
 * clock, creation or expiry time above this is corrupt; the bound keeps
 * now + ttl and created + lifetime far from signed overflow. */
#define ENG_CLOCK_MS_MAX (INT64_C(1) << 60)

/* Writes the reason for a refusal into err (when err is not NULL and errlen
 * not 0) and returns -EINVAL: the loader's and the checker's way to fail. */
__attribute__((format(printf, 3, 4))) static inline int eng_fail(char *err, size_t errlen,
                                                                  const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Tables come from mmap with a 64-byte header holding the mapping size. */
void *eng_table_alloc(size_t n, size_t size);
void eng_table_free(void *table);

/* Sizes of the tables engine_new() reserves for a config. */
static inline uint64_t eng_recycle_cap(const engine_config *cfg) { return 2ull * cfg->claims_max; }

#endif /* BO_ENGINE_INTERNAL_H */
