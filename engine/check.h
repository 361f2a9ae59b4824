/*
 * check.h — the engine's invariant checker: proves that an engine's tables
 * are a state the engine could have reached, so that no assertion of
 * engine.c can fire on any later command. The snapshot loader runs it on
 * every image before handing the engine out; the tests and fuzzers run it
 * after every step.
 *
 * The invariants, in the order they are checked (the first broken one is
 * reported):
 *
 *  Scalars
 *   - the config is one engine_new() accepts (limits.h); the clock is in
 *     [0, 2^60];
 *   - used lengths within the capacity: seats, rows and rowcats <=
 *     seats_max, events <= events_max, claims_fresh and heap_len <=
 *     claims_max; the recycle queue holds at most 2 x claims_max entries
 *     and the idempotency window at most idem_capacity (head <= tail);
 *   - the event index and the client table have at least twice as many
 *     slots as their bound (so probes end).
 *  Events
 *   - id not 0; the events tile the seat, row and rowcat arenas in order and
 *     use exactly their used lengths; counts within limits.h; rows iff
 *     seats, no more rows or rowcats than seats; something to sell (seats or
 *     pools); categories when there are seats; a pool in use has a capacity
 *     in [1, BO_POOL_CAPACITY_MAX], every unused pool slot is all zero;
 *   - the id index holds exactly one entry per event, each event is found
 *     at its own index by the engine's probe (ids are distinct), and the
 *     other slots are empty.
 *  Claims (every slot below claims_fresh)
 *   - generation not 0; state HELD..CANCELLED; event in range; flags 0/1;
 *     client not 0; payref length <= BO_PAYREF_LEN_MAX and not 0 once
 *     booked;
 *   - a pool claim: pool in range, quantity in [1, BO_POOL_QTY_PER_HOLD_MAX],
 *     no seats; a seat claim (ended ones too: a late confirm books them):
 *     1..BO_SEATS_PER_HOLD_MAX distinct seats of its event, no quantity;
 *   - created at or before the clock, expiry within [created + BO_TTL_MS_MIN,
 *     created + BO_HOLD_LIFETIME_MS_MAX];
 *   - in the recycle queue iff ended; a hold expires after the clock and
 *     sits at its heap position, other claims have none;
 *   - every seat of a live seat claim is held (booked) and owned by it.
 *  Seats and rows (every event, row by row)
 *   - rows tile the event's seats and rowcats in order; a row has 1..
 *     BO_SEATS_PER_ROW_MAX seats, a section below BO_SECTIONS_PER_EVENT_MAX
 *     and 1..category_count rowcats;
 *   - every seat: valid state, category of the event, its row's index; a
 *     held or booked seat is owned by a claim of that state and event that
 *     lists it, a free or blocked seat by none;
 *   - exactly one rowcat per category present in the row; its max_run is >=
 *     the longest free run of its category (saturated at 255) and <= its
 *     seats in the row; a set no_clean bit n-1 is true (no block of n free
 *     seats there strands nothing);
 *   - the event's by_state and free_by_cat equal what its seats say.
 *  Expiry heap
 *   - every entry is a hold whose heap position is that entry; no hold
 *     expires before its parent (expiry, then claim id); one entry per
 *     hold.
 *  Recycle queue
 *   - every ended claim has its entry at its ticket; entries name used
 *     slots, at most two per slot, a stale one only before the valid one; a
 *     hold has none, a booking at most a stale one.
 *  Client table
 *   - empty slots count no holds, occupied ones 1..BO_HOLDS_PER_CLIENT_MAX;
 *     an empty slot exists; every client is reachable from its home slot by
 *     linear probing; every hold's client is in the table and each count
 *     equals that client's holds.
 *  Pools
 *   - each pool's held and booked counters equal the quantities of its live
 *     holds and bookings, and their sum is within the pool's capacity.
 *  Idempotency window
 *   - every entry: client not 0, a mutating op, valid status and detail,
 *     at most BO_SEATS_PER_HOLD_MAX seats; times non-decreasing, not after
 *     the clock, the oldest within BO_IDEM_WINDOW_MS of it;
 *   - index buckets' spill flags are 0/1; at least one slot is free for the
 *     next insert; while positions are exact (idem_tail < 2^32) every live
 *     slot carries its entry's hash, every entry has exactly one live slot
 *     and no stale slot points past the window; always, every entry is found
 *     at its position by the engine's own lookup (eng_idem_find), except the
 *     hole the engine leaves at each position 2^32 k - 1.
 *  Totals
 *   - holds_live and bookings_live equal the held and booked claims;
 *     expired_total is at least the expired claims still in the table.
 */
#ifndef BO_ENGINE_CHECK_H
#define BO_ENGINE_CHECK_H

#include <stddef.h>

#include "engine.h"

/* Checks every invariant above. Safe on arbitrary table contents (e.g.
 * copied from a hostile file): never asserts on the data, reads an index
 * only after checking it. Returns 0; -EINVAL with the first broken
 * invariant in err (err may be NULL; it is "" on success); or -ENOMEM (it
 * allocates scratch counters with malloc: not for a forked child). O(state)
 * plus a scan of the client, event and idempotency index tables. */
int engine_check(const engine *e, char *err, size_t errlen);

#endif /* BO_ENGINE_CHECK_H */
