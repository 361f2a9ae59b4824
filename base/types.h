/*
 * types.h — the vocabulary every layer speaks: result codes and their
 * details, ops, seat states, seat maps, commands, results and expiries.
 * Plain data, no state: the engine (engine/engine.h) gives these their
 * meaning, the codecs (engine/codec.h, protocol/) their encodings, and
 * base/names.h their names.
 */
#ifndef BO_BASE_TYPES_H
#define BO_BASE_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Beside this file, not "base/...": libboxoffice-client installs it under
 * <boxoffice/base/>, where only a path relative to this file resolves. */
#include "limits.h"

/* ---- Result codes -------------------------------------------------------- */

typedef enum bo_status {
	BO_OK = 0,
	BO_TAKEN = 1,	  /* a seat/quantity is not available (held, booked, blocked) */
	BO_EXPIRED = 2,	  /* the hold expired (and, for a confirm, its seats are gone) */
	BO_NOT_FOUND = 3, /* no such event, hold or booking */
	BO_INVALID = 4,	  /* malformed or out-of-range command, or wrong state for it */
	BO_LIMIT = 5,	  /* a bound of limits.h or of the shard's capacity was hit */
	BO_CONFLICT = 6,  /* (client, request) reused with different content */
	BO_BUSY = 7,	  /* never produced by the engine: ring full (gateway) */
	BO_THROTTLED = 8, /* never produced by the engine: hot event throttled */
	BO_NOT_PRIMARY = 9, /* never produced by the engine: this server does not
			     * (or no longer) hold the shard's primary; the reply
			     * names the current one (schemas/protocol.md) */
	BO_STATUS_COUNT
} bo_status;

/* Machine-readable reason for a non-ok status; bo_detail_str() gives the
 * human-readable text that replies carry. */
typedef enum bo_detail {
	BO_D_NONE = 0,
	BO_D_BAD_OP,
	BO_D_NO_CLIENT,
	BO_D_NO_EVENT,
	BO_D_EVENT_EXISTS,
	BO_D_EVENT_ID_ZERO,
	BO_D_MAP_INVALID,
	BO_D_EVENTS_FULL,
	BO_D_SEATS_FULL,
	BO_D_SEAT_RANGE,
	BO_D_SEAT_DUPLICATE,
	BO_D_SEAT_COUNT,
	BO_D_SEAT_UNAVAILABLE,
	BO_D_CATEGORY_RANGE,
	BO_D_SOLD_OUT,
	BO_D_POOL_RANGE,
	BO_D_QUANTITY,
	BO_D_POOL_UNAVAILABLE,
	BO_D_TTL_RANGE,
	BO_D_LIFETIME,
	BO_D_CLIENT_HOLDS,
	BO_D_CLAIMS_FULL,
	BO_D_NO_HOLD,
	BO_D_NO_BOOKING,
	BO_D_HOLD_EXPIRED,
	BO_D_ALREADY_CONFIRMED,
	BO_D_NOT_A_BOOKING,
	BO_D_PAYREF,
	BO_D_NOT_BLOCKED,
	BO_D_IDEM_CONFLICT,
	/* A message without the server's shared token, or with a wrong one
	 * (schemas/protocol.md section 17): status INVALID, never from the
	 * engine, never journaled. */
	BO_D_UNAUTHORIZED,
	BO_D_COUNT
} bo_detail;

/* ---- Commands ------------------------------------------------------------ */

typedef enum bo_op {
	BO_OP_NONE = 0,
	BO_OP_CREATE_EVENT = 1, /* map */
	BO_OP_HOLD_SEATS = 2,	/* seats[seat_count], ttl_ms; all or nothing */
	BO_OP_HOLD_BEST = 3,	/* category, quantity (1..BO_SEATS_PER_HOLD_MAX), ttl_ms */
	BO_OP_HOLD_POOL = 4,	/* pool, quantity, ttl_ms */
	BO_OP_EXTEND = 5,	/* claim_id, ttl_ms: expiry = now + ttl */
	BO_OP_RELEASE = 6,	/* claim_id */
	BO_OP_CONFIRM = 7,	/* claim_id, payref: hold -> booking (same id) */
	BO_OP_CANCEL = 8,	/* claim_id of a booking: seats return to free */
	BO_OP_BLOCK = 9,	/* seats[seat_count]: free -> blocked (operator) */
	BO_OP_UNBLOCK = 10,	/* seats[seat_count]: blocked -> free (operator) */
	BO_OP_QUERY_AVAIL = 11, /* counts per state, per category, per pool */
	BO_OP_QUERY_SEATS = 12, /* state of seats[seat_count] */
	BO_OP_COUNT
} bo_op;

/* True for commands that change state: they carry (client_id, request_id)
 * and go through the idempotency window and the journal. */
static inline int bo_op_mutates(int op) { return op >= BO_OP_CREATE_EVENT && op <= BO_OP_UNBLOCK; }

typedef enum bo_seat_state {
	BO_SEAT_FREE = 0,
	BO_SEAT_HELD = 1,
	BO_SEAT_BOOKED = 2,
	BO_SEAT_BLOCKED = 3,
	BO_SEAT_STATE_COUNT = 4
} bo_seat_state;

/* One row of a seat map. Rows are listed best first: a row's position in the
 * map is its rank for best-available. Seats are numbered from 0 in map order
 * across rows: the first seat of row r follows the last seat of row r-1. */
typedef struct bo_row_def {
	uint16_t section; /* section number, < BO_SECTIONS_PER_EVENT_MAX */
	uint16_t seats;	  /* seats in the row, 1..BO_SEATS_PER_ROW_MAX */
} bo_row_def;

/* An event's seat map: one heap block (bo_seatmap_new), immutable once
 * built. `categories[i]` is the price tier of seat i. Valid maps
 * (bo_seatmap_check) sell something: seats (in rows) or pools or both;
 * rows and seats are both present or both absent; every limit of limits.h
 * holds; pool capacities are 1..BO_POOL_CAPACITY_MAX; the description
 * (4 bytes a row + 3 a category run + 4 a pool, bo_seatmap_desc_bytes) is
 * at most BO_MAP_DESC_BYTES_MAX, so the map fits a journal record. A run is
 * a maximal stretch of one category within one row. category_count is
 * kept as given even for an event without seats (HOLD_BEST there answers
 * SOLD_OUT for a category below it). */
typedef struct bo_seatmap {
	uint32_t row_count;	/* 0..BO_ROWS_PER_EVENT_MAX */
	uint32_t seat_count;	/* sum of rows[].seats */
	uint32_t pool_count;	/* 0..BO_POOLS_PER_EVENT_MAX */
	uint32_t category_count; /* categories[i] < category_count <= BO_CATEGORIES_MAX */
	bo_row_def *rows;	/* [row_count] */
	uint8_t *categories;	/* [seat_count] */
	uint32_t *pool_capacity; /* [pool_count], each 1..BO_POOL_CAPACITY_MAX */
} bo_seatmap;

/* bo_cmd.flags. A claim op (EXTEND, RELEASE, CONFIRM, CANCEL) touches a
 * claim only when its client_id is the claim's client; otherwise it is
 * answered NOT_FOUND (NO_HOLD / NO_BOOKING), as if the claim did not
 * exist, so an id reveals nothing to another client.
 *   BO_CMD_F_OPERATOR    an operator's RELEASE or CANCEL of any client's
 *                        claim (the wire protocol's explicit "operator"
 *                        key); meaningless on other ops (engine.h).
 *   BO_CMD_F_ANY_CLIENT  set only by the journal decoder for records
 *                        written before the rule existed (codec version
 *                        1): they replay as they were first applied. No
 *                        network decoder ever sets it. */
#define BO_CMD_F_OPERATOR 0x01u
#define BO_CMD_F_ANY_CLIENT 0x02u

typedef struct bo_cmd {
	uint8_t op;	     /* bo_op */
	uint8_t seat_count;  /* seats[] in use */
	uint8_t category;    /* HOLD_BEST */
	uint8_t pool;	     /* HOLD_POOL */
	uint8_t payref_len;  /* CONFIRM: bytes of payref in use */
	uint8_t flags;	     /* BO_CMD_F_*: who may touch the claim (below) */
	uint16_t quantity;   /* HOLD_BEST, HOLD_POOL */
	uint32_t ttl_ms;     /* HOLD_*, EXTEND */
	uint32_t _pad2;
	uint64_t client_id;  /* mutating commands: non-zero */
	uint64_t request_id; /* mutating commands: unique per client (idempotency key) */
	uint64_t event_id;   /* every command: routes it to its shard */
	uint64_t claim_id;   /* EXTEND, RELEASE, CONFIRM (a hold), CANCEL (a booking) */
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
	char payref[BO_PAYREF_LEN_MAX];
	/* CREATE_EVENT only. Borrowed: the engine copies it during engine_apply()
	 * and never keeps the pointer; whoever built the command frees it. */
	const bo_seatmap *map;
} bo_cmd;

/* ---- Results ------------------------------------------------------------- */

typedef struct bo_avail {
	uint32_t by_state[BO_SEAT_STATE_COUNT]; /* seats per bo_seat_state */
	uint32_t free_by_category[BO_CATEGORIES_MAX];
	uint32_t pool_capacity[BO_POOLS_PER_EVENT_MAX];
	uint32_t pool_free[BO_POOLS_PER_EVENT_MAX];
	uint8_t category_count;
	uint8_t pool_count;
	uint8_t _pad[6];
} bo_avail;

typedef struct bo_result {
	uint8_t op;	    /* the command's op */
	uint8_t status;	    /* bo_status */
	uint8_t detail;	    /* bo_detail when status != BO_OK */
	uint8_t seat_count; /* seats[] in use */
	uint32_t quantity;  /* OK claim ops: tickets in the claim (seats or pool quantity) */
	uint64_t client_id;
	uint64_t request_id;
	uint64_t event_id;
	uint64_t claim_id;	/* HOLD_*: the new hold; CONFIRM: the booking (same id) */
	int64_t expires_at_ms;	/* HOLD_*, EXTEND: when the hold expires */
	/* Claim ops: the claim's seats; BLOCK/UNBLOCK: the seats; TAKEN or
	 * NOT_BLOCKED: seats[0] is the first offending seat; QUERY_SEATS: the
	 * seats asked about, with their states in seat_state[]. */
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
	uint8_t seat_state[BO_QUERY_SEATS_MAX]; /* QUERY_SEATS: bo_seat_state */
	uint8_t pool;				/* HOLD_POOL: the pool */
	uint8_t replayed;			/* 1 when answered from the idempotency window */
	uint8_t _pad[2];
	/* THROTTLED/BUSY, set by the gateway (never by the engine, never
	 * journaled): milliseconds after which a retry may be admitted. */
	uint32_t retry_after_ms;
	bo_avail avail; /* QUERY_AVAIL only */
	/* QUERY_AVAIL/QUERY_SEATS answered by the read model (view/view.h):
	 * the event's read-model sequence, i.e. the journal sequence of the
	 * last durable change the answer includes (base/change.h). 0 from the
	 * engine itself and for every other op. */
	uint64_t view_seq;
} bo_result;

/* An expiry, reported by engine_advance() for every hold that expired. */
typedef struct bo_expiry {
	uint64_t event_id;
	uint64_t claim_id;
	uint64_t client_id;
	int64_t expires_at_ms;
	uint8_t is_pool;    /* 1: pool hold (pool, quantity); 0: seats[] */
	uint8_t pool;
	uint8_t seat_count;
	uint8_t _pad[1];
	uint32_t quantity;
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
} bo_expiry;


#endif /* BO_BASE_TYPES_H */
