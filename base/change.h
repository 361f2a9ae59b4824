/*
 * change.h — the vocabulary of the read side: what one durable change did
 * to an event's availability (bo_change, carried by projections), and the
 * whole availability picture of one event at one sequence (bo_event_image,
 * what a late subscriber starts from). Plain data, like types.h: the read
 * model (view/view.h) produces both, the wire codec (protocol/projection.h)
 * carries them, the client library (client/boxoffice.h) applies them.
 *
 * Sequences. An event's read-model sequence is the journal sequence of the
 * last durable record that changed it (or, after a restart, the shard's
 * last journal sequence at recovery: at least that). It only grows, also
 * across restarts, and a projection message names the sequence its
 * changes start from (prev) and the one they lead to (seq): a subscriber
 * holding `prev` applies them; one holding anything else missed something
 * and resynchronises from a bo_event_image.
 */
#ifndef BO_BASE_CHANGE_H
#define BO_BASE_CHANGE_H

#include <stdint.h>
#include <stdlib.h>

#include "types.h"

/* Why availability changed. Wire names: bo_cause_str(). */
typedef enum bo_cause {
	BO_CAUSE_NONE = 0,
	BO_CAUSE_CREATE = 1,  /* the event was created (no seats/pool in the change:
			       * its map comes with a bo_event_image) */
	BO_CAUSE_HOLD = 2,    /* HOLD_SEATS/HOLD_BEST: seats -> held; HOLD_POOL */
	BO_CAUSE_RELEASE = 3, /* RELEASE of a hold: seats -> free */
	BO_CAUSE_EXPIRY = 4,  /* a hold expired: seats -> free */
	BO_CAUSE_CONFIRM = 5, /* CONFIRM: seats -> booked (also from an expired hold) */
	BO_CAUSE_CANCEL = 6,  /* CANCEL of a booking: seats -> free */
	BO_CAUSE_BLOCK = 7,   /* BLOCK: seats -> blocked */
	BO_CAUSE_UNBLOCK = 8, /* UNBLOCK: seats -> free */
	BO_CAUSE_COUNT
} bo_cause;

/* One change of one event. A seat change sets every seat of seats[] to
 * `state`; a pool change moved `quantity` tickets of pool `pool`, which
 * then has `pool_free` free tickets (absolute, so applying it twice is
 * harmless). EXTEND changes no availability and has no bo_change. */
typedef struct bo_change {
	uint8_t cause;	    /* bo_cause */
	uint8_t is_pool;    /* 1: pool change (pool, quantity, pool_free) */
	uint8_t pool;	    /* is_pool: < the event's pool count */
	uint8_t seat_count; /* !is_pool: seats[] in use, 0..BO_SEATS_PER_HOLD_MAX */
	uint8_t state;	    /* !is_pool: the bo_seat_state of every seat of seats[] now */
	uint8_t _pad[3];
	uint32_t quantity;  /* is_pool: tickets moved */
	uint32_t pool_free; /* is_pool: the pool's free tickets after this change */
	uint64_t claim_id;  /* the hold or booking; 0 for create, block, unblock */
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
} bo_change;

/* One event's availability at sequence `seq`: its map (rows, a category
 * per seat, pool capacities) and its state (a bo_seat_state per seat,
 * free tickets per pool). The three arrays are heap blocks owned by the
 * image: bo_event_image_free(). */
typedef struct bo_event_image {
	uint64_t event_id;
	uint64_t seq;
	uint32_t seat_count;	 /* 0..BO_SEATS_PER_EVENT_MAX */
	uint32_t row_count;	 /* 0..BO_ROWS_PER_EVENT_MAX */
	uint32_t category_count; /* 0..BO_CATEGORIES_MAX */
	uint32_t pool_count;	 /* 0..BO_POOLS_PER_EVENT_MAX */
	bo_row_def *rows;	 /* [row_count] */
	uint8_t *categories;	 /* [seat_count] */
	uint8_t *states;	 /* [seat_count] bo_seat_state */
	uint32_t pool_capacity[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_free[BO_POOLS_PER_EVENT_MAX];
} bo_event_image;

/* Frees the arrays and zeroes the image; safe on a zeroed image. */
static inline void bo_event_image_free(bo_event_image *im)
{
	free(im->rows);
	free(im->categories);
	free(im->states);
	*im = (bo_event_image){0};
}

#endif /* BO_BASE_CHANGE_H */
