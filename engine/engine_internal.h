/*
 * engine_internal.h — the engine's tables, shared by engine.c and the
 * modules that read or rebuild them wholesale (snapshot.c). Not a public
 * header: only files of engine/ include it.
 */
#ifndef BO_ENGINE_INTERNAL_H
#define BO_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

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

static inline uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser: cheap and good enough for open addressing of
	 * ids chosen by clients (not adversarially: a table can't overflow, it
	 * is sized 2x its bound, so the worst case is slower probing). */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

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

/* Tables come from mmap with a 64-byte header holding the mapping size. */
void *eng_table_alloc(size_t n, size_t size);
void eng_table_free(void *table);

/* Sizes of the tables engine_new() reserves for a config. */
static inline uint64_t eng_recycle_cap(const engine_config *cfg) { return 2ull * cfg->claims_max; }

#endif /* BO_ENGINE_INTERNAL_H */
