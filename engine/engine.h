/*
 * engine.h — the deterministic seat/hold state machine of one shard.
 *
 * The engine is a pure function of (state, command, time): the only clock it
 * knows is the timestamp its owner passes to engine_advance(), and every
 * decision (which seats best-available picks, which slot a new hold takes,
 * which holds expire) depends on nothing else. Replaying the same commands
 * with the same timestamps therefore rebuilds the same state, byte for byte
 * (engine_digest() proves it in the tests).
 *
 * Threading: an engine is owned by exactly one thread (its shard's writer).
 * No function here locks, allocates or makes a system call after
 * engine_new(), except that CREATE_EVENT copies the seat map into arenas that
 * engine_new() reserved.
 *
 * Usage, per batch of commands stamped with one time `now_ms`:
 *
 *     engine_advance(e, now_ms, on_expiry, ctx);   // expire holds <= now
 *     for each command: engine_apply(e, &cmd, &result);
 */
#ifndef BO_ENGINE_H
#define BO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"


/* ---- Semantics (the contract the reference model in tests/ checks) -------
 *
 * Every command is checked in this order; the first failing rule decides.
 *  1. op unknown -> INVALID/BAD_OP. Mutating ops: client_id == 0 ->
 *     INVALID/NO_CLIENT. Then the idempotency window (see engine_apply).
 *  2. Every op but CREATE_EVENT: event unknown -> NOT_FOUND/NO_EVENT.
 *
 * CREATE_EVENT: event_id 0 -> INVALID/EVENT_ID_ZERO; map NULL or breaking a
 *   rule of bo_seatmap_check -> INVALID/MAP_INVALID; event exists ->
 *   INVALID/EVENT_EXISTS; events_max reached -> LIMIT/EVENTS_FULL; seats
 *   would exceed seats_max -> LIMIT/SEATS_FULL.
 * HOLD_SEATS: seat_count 0 or > BO_SEATS_PER_HOLD_MAX -> INVALID/SEAT_COUNT;
 *   a seat >= event seats -> INVALID/SEAT_RANGE; a seat twice ->
 *   INVALID/SEAT_DUPLICATE; ttl outside [BO_TTL_MS_MIN, BO_TTL_MS_MAX] ->
 *   INVALID/TTL_RANGE; a seat not free -> TAKEN/SEAT_UNAVAILABLE with
 *   seats[0] = the first such seat in command order, seat_count = 1; client
 *   already has BO_HOLDS_PER_CLIENT_MAX active holds -> LIMIT/CLIENT_HOLDS;
 *   no free claim slot -> LIMIT/CLAIMS_FULL. OK: seats held, in command
 *   order, expires_at = now + ttl.
 * HOLD_BEST: quantity 0 or > BO_SEATS_PER_HOLD_MAX -> INVALID/QUANTITY;
 *   category >= event categories -> INVALID/CATEGORY_RANGE; ttl ->
 *   TTL_RANGE; fewer free seats of the category than quantity ->
 *   TAKEN/SOLD_OUT; client limit; claims limit. OK: seats chosen as below,
 *   listed in ascending seat order.
 * HOLD_POOL: pool >= event pools -> INVALID/POOL_RANGE; quantity 0 or >
 *   BO_POOL_QTY_PER_HOLD_MAX -> INVALID/QUANTITY; ttl; pool free < quantity
 *   -> TAKEN/POOL_UNAVAILABLE; client limit; claims limit.
 * EXTEND: claim not a hold of this event (unknown, recycled, other event,
 *   released, cancelled) -> NOT_FOUND/NO_HOLD; booked ->
 *   INVALID/ALREADY_CONFIRMED; expired -> EXPIRED/HOLD_EXPIRED; ttl range;
 *   now + ttl > created + BO_HOLD_LIFETIME_MS_MAX -> LIMIT/LIFETIME. OK:
 *   expires_at = now + ttl.
 * RELEASE: NOT_FOUND/NO_HOLD; booked -> INVALID/ALREADY_CONFIRMED; expired
 *   -> EXPIRED/HOLD_EXPIRED. OK: seats (or pool quantity) free again.
 * CONFIRM: payref_len 0 or > BO_PAYREF_LEN_MAX -> INVALID/PAYREF;
 *   NOT_FOUND/NO_HOLD; booked -> INVALID/ALREADY_CONFIRMED; active hold ->
 *   OK, seats become booked. Expired hold: if every one of its seats is free
 *   (pool: free >= quantity) they are booked directly -> OK; otherwise
 *   EXPIRED/HOLD_EXPIRED (the payment can be voided). A confirmed hold does
 *   not count against the client's hold limit.
 * CANCEL: claim not a live booking of this event -> NOT_FOUND/NO_BOOKING
 *   (a live hold -> INVALID/NOT_A_BOOKING). OK: seats/quantity free.
 * BLOCK: seat checks as HOLD_SEATS (count, range, duplicate); a seat not
 *   free -> TAKEN/SEAT_UNAVAILABLE (first one). OK: seats blocked.
 * UNBLOCK: seat checks; a seat not blocked -> INVALID/NOT_BLOCKED (first).
 * QUERY_AVAIL / QUERY_SEATS (seat count/range checks): read only, never
 *   stored in the idempotency window, need no client.
 *
 * A hold is active while now < expires_at. engine_advance(now) expires
 * holds with expires_at <= now in (expires_at, claim_id) order.
 *
 * Claim ids: (generation << 32) | slot. Slots are taken fresh first, then
 * recycled oldest-first (FIFO), so an expired hold stays confirmable as
 * long as possible; recycling bumps the generation, and an id whose
 * generation does not match is NOT_FOUND.
 *
 * Best available (HOLD_BEST, category c, quantity n). A "block" is n
 * consecutive seats of one row, all free and of category c. A block
 * starting at seat s "strands" a seat when it leaves a single free seat
 * (any category) beside it: seat s-1 (in the row) free and seat s-2 not
 * free or outside the row; or seat s+n free and s+n+1 not free or outside.
 * Among all blocks of all rows, the engine picks the one with the smallest
 *   (strands anything ? 1 : 0, row rank, |2*(s - row_first) + n - row_len|, s)
 * i.e. no stranded seat if any block avoids it, then the best row, then
 * nearest the row centre, then leftmost. When no row has n adjacent seats,
 * it takes, row by row in rank order, the free seats of category c nearest
 * each row's centre (smallest |2*(i - row_first) + 1 - row_len|, then
 * leftmost) until it has n.
 *
 * Results. Every result echoes op, client_id, request_id and event_id. An
 * OK result of HOLD_*, EXTEND, RELEASE, CONFIRM or CANCEL carries the claim:
 * claim_id; for a seat claim seat_count and seats[] (and quantity =
 * seat_count); for a pool claim pool and quantity; expires_at_ms for HOLD_*
 * and EXTEND only (0 otherwise). OK BLOCK/UNBLOCK echo the seats. A failed
 * result carries status and detail, claim_id 0, and nothing else except
 * seat_count = 1 / seats[0] for TAKEN/SEAT_UNAVAILABLE and NOT_BLOCKED.
 *
 * Idempotency: the window keeps the results of the last idem_capacity
 * mutating commands that are at most BO_IDEM_WINDOW_MS old. Content is
 * compared by a hash of every field the op uses (and, for CREATE_EVENT, the
 * map when it is valid: all invalid maps, NULL included, count as the same
 * content, since they get the same answer and the journal records such a
 * command without its map); a repeat returns the stored result with
 * replayed = 1.
 */

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
	BO_STATUS_COUNT
} bo_status;

/* Machine-readable reason for a non-ok status; engine_detail_str() gives the
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
 * holds; pool capacities are 1..BO_POOL_CAPACITY_MAX. category_count is
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

/* Allocates a zeroed map with room for the given counts (which must be
 * within the limits above; larger values return NULL). The caller fills
 * rows, categories and pool_capacity and owns the block: bo_seatmap_free().
 * Returns NULL when out of memory or over a limit. */
bo_seatmap *bo_seatmap_new(uint32_t row_count, uint32_t seat_count, uint32_t pool_count);
void bo_seatmap_free(bo_seatmap *map);

/* Checks a map against every rule above. Returns BO_D_NONE when valid. */
bo_detail bo_seatmap_check(const bo_seatmap *map);

typedef struct bo_cmd {
	uint8_t op;	     /* bo_op */
	uint8_t seat_count;  /* seats[] in use */
	uint8_t category;    /* HOLD_BEST */
	uint8_t pool;	     /* HOLD_POOL */
	uint8_t payref_len;  /* CONFIRM: bytes of payref in use */
	uint8_t _pad[1];
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
	uint8_t _pad[6];
	bo_avail avail; /* QUERY_AVAIL only */
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

typedef void (*bo_expiry_fn)(void *ctx, const bo_expiry *expiry);

/* ---- The engine ---------------------------------------------------------- */

typedef struct engine engine;

typedef struct engine_config {
	uint32_t seats_max;	/* seats over all events; <= BO_SEATS_PER_SHARD_MAX */
	uint32_t claims_max;	/* holds + bookings alive at once; <= BO_CLAIMS_PER_SHARD_MAX */
	uint32_t idem_capacity; /* idempotency window entries, power of two */
	uint32_t events_max;	/* <= BO_EVENTS_PER_SHARD_MAX */
} engine_config;

/* Fills `cfg` with the defaults of limits.h. */
void engine_config_default(engine_config *cfg);

/* Reserves every table the engine will ever use.
 * Returns 0 and sets *out, -EINVAL for a config outside limits.h, or -ENOMEM.
 * The caller owns the engine: engine_free(). */
int engine_new(const engine_config *cfg, engine **out /* OUT */);
void engine_free(engine *e);

/* Moves the engine's clock to now_ms (a clock never goes back: an older
 * now_ms is treated as the current time) and expires, in order of
 * (expiry, claim id), every hold whose expires_at_ms <= now, calling
 * on_expiry (may be NULL) once per expired hold. Also ages out idempotency
 * entries older than BO_IDEM_WINDOW_MS. Returns how many of those changes
 * (expiries + aged-out entries) it made: 0 means only the clock moved, so
 * a journal need not record this advance to rebuild the same state. */
uint32_t engine_advance(engine *e, int64_t now_ms, bo_expiry_fn on_expiry, void *ctx);

/* engine_advance() that expires at most expiries_max holds (in the same
 * order) and sets *more when expired holds remain; call it again with the
 * same now_ms to go on. The state after the last call equals one
 * engine_advance(now_ms): a shard uses it so that a mass expiry never
 * produces more output at once than its output ring can hold. */
uint32_t engine_advance_bounded(engine *e, int64_t now_ms, uint32_t expiries_max, bo_expiry_fn on_expiry,
				void *ctx, int *more /* OUT */);

/* Applies one command at the engine's current time and writes its full
 * result. Every outcome is a bo_status in `out`; bad input never crashes
 * (only a NULL pointer is a programmer error). A mutating command whose
 * (client_id, request_id) is in the window is answered with the stored
 * result (replayed = 1) when its content matches, BO_CONFLICT otherwise,
 * and changes nothing either way. */
void engine_apply(engine *e, const bo_cmd *cmd, bo_result *out /* OUT */);

int64_t engine_now(const engine *e);

/* A hint, no effect on state: starts loading the cache lines that applying
 * `cmd` will touch first (its idempotency bucket, its event). A writer
 * that applies a batch calls it for command i+1 before applying command i,
 * so the misses of one overlap the work of the other. */
void engine_prefetch(const engine *e, const bo_cmd *cmd);

/* ---- Inspection (tests, tools; not for the hot path) --------------------- */

/* State of a seat: returns 0 and fills the OUT values, or -ENOENT. `claim`
 * is the holding/booking claim id, 0 when free or blocked. */
int engine_seat(const engine *e, uint64_t event_id, uint32_t seat, uint8_t *state /* OUT */,
		uint64_t *claim /* OUT */);

/* Availability of an event, as QUERY_AVAIL answers it. 0 or -ENOENT. */
int engine_avail(const engine *e, uint64_t event_id, bo_avail *out /* OUT */);

/* Active holds of a client (what BO_HOLDS_PER_CLIENT_MAX bounds). */
uint32_t engine_client_holds(const engine *e, uint64_t client_id);

/* Claims alive (held or booked), events, seats in use. */
typedef struct engine_stats {
	uint32_t events;
	uint32_t seats;
	uint32_t holds;
	uint32_t bookings;
	uint32_t idem_entries;
	uint64_t expired_total;
} engine_stats;
void engine_stats_get(const engine *e, engine_stats *out /* OUT */);

/* A 64-bit digest of the whole logical state (events, seats, claims, expiry
 * order, idempotency window, clock). Two engines that applied the same
 * commands at the same times have equal digests. */
uint64_t engine_digest(const engine *e);

/* ---- Names --------------------------------------------------------------- */

const char *engine_status_str(int status); /* "ok", "taken", ... */
const char *engine_detail_str(int detail); /* human-readable reason */
/* The stable machine name of a detail ("seat_unavailable", ...; "none" for
 * BO_D_NONE) used on the wire and in tools; NULL when out of range. */
const char *engine_detail_name(int detail);
const char *engine_op_str(int op);	   /* "hold_seats", ... */
const char *engine_seat_state_str(int state);

#endif /* BO_ENGINE_H */
