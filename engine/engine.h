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

#include "base/change.h"
#include "base/limits.h"
#include "base/names.h"
#include "base/seatmap.h"
#include "base/types.h"


/* ---- Semantics (the contract the reference model in tests/ checks) -------
 *
 * Every command is checked in this order; the first failing rule decides.
 *  1. op unknown -> INVALID/BAD_OP. Mutating ops: client_id == 0 ->
 *     INVALID/NO_CLIENT. Then the idempotency window (see engine_apply).
 *  2. Every op but CREATE_EVENT: event unknown -> NOT_FOUND/NO_EVENT.
 *
 * CREATE_EVENT: event_id 0 -> INVALID/EVENT_ID_ZERO; map NULL or breaking a
 *   rule of bo_seatmap_check (listed above struct bo_seatmap in
 *   base/types.h; the description bound BO_MAP_DESC_BYTES_MAX among them)
 *   -> INVALID/MAP_INVALID; event exists -> INVALID/EVENT_EXISTS;
 *   events_max reached -> LIMIT/EVENTS_FULL; seats would exceed seats_max
 *   -> LIMIT/SEATS_FULL.
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
 *   released, cancelled, or another client's: "Ownership" below) ->
 *   NOT_FOUND/NO_HOLD; booked ->
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
 * CANCEL: claim not a live booking of this event (or another client's)
 *   -> NOT_FOUND/NO_BOOKING (a live hold of the client's own ->
 *   INVALID/NOT_A_BOOKING). OK: seats/quantity free.
 * BLOCK: seat checks as HOLD_SEATS (count, range, duplicate); a seat not
 *   free -> TAKEN/SEAT_UNAVAILABLE (first one). OK: seats blocked.
 * UNBLOCK: seat checks; a seat not blocked -> INVALID/NOT_BLOCKED (first).
 * QUERY_AVAIL / QUERY_SEATS (seat count/range checks): read only, never
 *   stored in the idempotency window, need no client.
 *
 * Ownership. A claim belongs to the client whose HOLD_* created it (a
 * booking stays its hold's client's). EXTEND, RELEASE, CONFIRM and CANCEL
 * act on it only when cmd->client_id is that client; for any other client
 * the claim is treated as unknown, before any state rule: NOT_FOUND/NO_HOLD
 * (NO_BOOKING for CANCEL), the answer an id that never existed gets, and
 * nothing changes. So ids, which are guessable, reveal nothing across
 * clients. The rule uses only the command and the state, so replay
 * reproduces every refusal. Exceptions (bo_cmd.flags, base/types.h):
 *   BO_CMD_F_OPERATOR on RELEASE or CANCEL: any client's claim (an
 *     operator undoing a hold or a booking). On every other op the engine
 *     ignores it (the rule applies as without it); the wire decoders
 *     refuse it there as malformed, so it never reaches an engine from a
 *     caller.
 *   BO_CMD_F_ANY_CLIENT: no check at all. Only the journal decoder sets it,
 *     on records written before the rule (codec version 1), so they replay
 *     exactly as they were first applied.
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
 * replayed = 1. BO_CMD_F_OPERATOR is content on RELEASE and CANCEL (an
 * operator's release and a client's own are different requests: a repeat
 * that adds or drops the flag is a CONFLICT); BO_CMD_F_ANY_CLIENT never is
 * (it says which rule a journal record was written under, not what the
 * caller asked for, so a retry across an upgrade is still a repeat).
 */

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
 * `cmd` will touch first (its idempotency bucket, client slot and event;
 * the claim a claim op names; the slot a hold would recycle; the first
 * seat a seat op names). A writer that applies a batch calls it for
 * command i+1 before applying command i, so the misses of one overlap the
 * work of the other; a replay calls it right before applying, so the
 * misses of one command overlap each other. */
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

/* ---- Export (the read model starts from it: view/view.h) ----------------
 * Only while no thread changes the engine (a recovered shard before
 * shard_start, or a stopped one). */

/* Events resident: indexes 0..count-1, in creation order. */
uint32_t engine_event_count(const engine *e);

/* Copies event `index`'s map and state into *im (arrays allocated here,
 * bo_event_image_free; seq is left 0). 0, -ENOENT (index >= count) or
 * -ENOMEM. */
int engine_event_image(const engine *e, uint32_t index, bo_event_image *im /* OUT */);

/* Calls fn once per active pool hold (a hold of pool tickets not yet
 * expired, released or confirmed), in no particular order. */
typedef void (*engine_pool_hold_fn)(void *ctx, uint64_t event_id, uint64_t claim_id, uint8_t pool,
				    uint32_t quantity);
void engine_foreach_pool_hold(const engine *e, engine_pool_hold_fn fn, void *ctx);

/* A 64-bit digest of the whole logical state (events, seats, claims, expiry
 * order, idempotency window, clock). Two engines that applied the same
 * commands at the same times have equal digests. */
uint64_t engine_digest(const engine *e);

#endif /* BO_ENGINE_H */
