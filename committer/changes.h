/*
 * changes.h — turns a shard's journal records into the rows the database
 * gets (schemas/sql/): seat states, holds, bookings, pool counters, the
 * seat_changes audit and the inventory_events outbox. Pure: no database,
 * no threads; pgstore.c ships what it gathers.
 *
 * A record says what its command did (the command and its recorded result,
 * shard/entry.h) but not which holds expired before it: the engine expires
 * holds when its clock moves (engine_advance at the record's timestamp).
 * So this module keeps the holds that are active at the current position —
 * loaded from the database's `holds` table at start, then maintained from
 * the records — in a min-heap by (expiry, claim id), and before each record
 * at time T expires every hold with expires_at <= T, exactly as the engine
 * did (engine.h: "engine_advance(now) expires holds with expires_at <= now
 * in (expires_at, claim_id) order"). Everything else comes from results.
 *
 * A record that contradicts what this module knows (a release of a hold it
 * does not hold, a malformed payload) is an error: the caller stops, never
 * guesses.
 *
 *     chg_state *st; chg_new(shard_id, &st);
 *     chg_position(st, checkpoint_seq, outbox_position);
 *     chg_load_hold(st, ...) for every active hold of the shard;
 *     for each durable record after the checkpoint:
 *         chg_record(st, &rec, err, sizeof err);
 *     ship chg_batch(st); chg_batch_clear(st);   // after the commit
 */
#ifndef BO_COMMITTER_CHANGES_H
#define BO_COMMITTER_CHANGES_H

#include <stddef.h>
#include <stdint.h>

#include "base/types.h"
#include "journal/journal.h"

enum chg_cause { CHG_HOLD, CHG_RELEASE, CHG_EXPIRY, CHG_CONFIRM, CHG_CANCEL, CHG_BLOCK, CHG_UNBLOCK, CHG_CAUSE_COUNT };
enum chg_hold_state { CHG_H_HELD, CHG_H_RELEASED, CHG_H_EXPIRED, CHG_H_CONFIRMED };
enum chg_booking_state { CHG_B_CONFIRMED, CHG_B_CANCELLED };
enum chg_outbox_type {
	CHG_O_HOLD_CREATED,
	CHG_O_HOLD_EXPIRED,
	CHG_O_HOLD_RELEASED,
	CHG_O_BOOKING_CONFIRMED,
	CHG_O_BOOKING_CANCELLED
};

/* Names as the schema spells them (CHECK constraints of 0001_initial.sql). */
const char *chg_cause_str(int cause);
const char *chg_hold_state_str(int st);
const char *chg_booking_state_str(int st);
const char *chg_outbox_type_str(int type);

/* A claim's tickets: seats (seat_count > 0, pool -1) or a pool quantity. */
typedef struct chg_claim {
	uint64_t event_id, claim_id, client_id, request_id;
	int32_t pool;	 /* -1 for a seat claim */
	uint32_t quantity; /* seats or pool tickets */
	uint8_t seat_count;
	uint32_t seats[BO_SEATS_PER_HOLD_MAX];
} chg_claim;

/* An event created in this batch; map owned by the batch. */
typedef struct chg_event {
	uint64_t event_id, client_id, request_id, seq;
	int64_t at_ms;
	bo_seatmap *map;
} chg_event;

/* The final state of a seat touched in this batch. */
typedef struct chg_seat {
	uint64_t event_id;
	uint32_t seat;
	uint8_t state; /* bo_seat_state */
	uint64_t claim_id; /* 0: none */
	uint64_t seq;
} chg_seat;

/* Net change of a pool's counters in this batch. */
typedef struct chg_pool {
	uint64_t event_id;
	uint32_t pool;
	int64_t held, booked;
	uint64_t seq;
} chg_pool;

/* A hold touched in this batch. is_new: created in it (insert the whole
 * row); otherwise only state, expires_at and ended_* change (update). */
typedef struct chg_hold {
	chg_claim c;
	uint8_t is_new, state;
	int64_t expires_ms, created_ms, ended_ms;
	uint64_t created_seq, ended_seq; /* ended_seq 0: not ended */
} chg_hold;

/* A booking touched in this batch (same rule for is_new). */
typedef struct chg_booking {
	chg_claim c;
	uint8_t is_new, state, payref_len;
	char payref[BO_PAYREF_LEN_MAX];
	uint64_t confirmed_seq, cancelled_seq; /* cancelled_seq 0: not cancelled */
	int64_t confirmed_ms, cancelled_ms;
	uint64_t cancel_client_id, cancel_request_id;
} chg_booking;

/* One seat_changes row. seat -1: a pool change (pool, quantity). */
typedef struct chg_change {
	uint64_t seq;
	uint32_t ordinal;
	uint64_t event_id;
	int32_t seat, pool;
	uint32_t quantity;
	uint8_t from, to, cause;
	uint64_t claim_id, client_id, request_id;
	int64_t at_ms;
} chg_change;

/* One inventory_events row. */
typedef struct chg_outbox {
	uint64_t position, seq;
	uint8_t type, payref_len;
	chg_claim c;
	char payref[BO_PAYREF_LEN_MAX];
	int64_t expires_ms; /* hold_created: when it expires; else 0 */
	int64_t at_ms;
} chg_outbox;

#define CHG_VEC(T) struct { T *v; size_t n, cap; }

/* What one batch of records changes, gathered in record order and
 * collapsed per row (a seat changed twice appears once, in its final
 * state). Read it between chg_record calls; chg_batch_clear after the
 * commit. */
typedef struct chg_batch {
	uint64_t first_seq, last_seq; /* records in it; first 0: empty */
	int64_t first_ms, last_ms;    /* their timestamps */
	uint64_t records;
	uint64_t outbox_first;	      /* position before its first outbox row */
	CHG_VEC(chg_event) events;
	CHG_VEC(chg_seat) seats;
	CHG_VEC(chg_pool) pools;
	CHG_VEC(chg_hold) holds;
	CHG_VEC(chg_booking) bookings;
	CHG_VEC(chg_change) changes;
	CHG_VEC(chg_outbox) outbox;
} chg_batch;

typedef struct chg_state chg_state;

/* Returns 0 and *out, or -ENOMEM. */
int chg_new(uint32_t shard_id, chg_state **out /* OUT */);
void chg_free(chg_state *st);

/* Sets where the database stands: the last record applied and the last
 * outbox position used. Call before the first record; clears the batch. */
void chg_position(chg_state *st, uint64_t seq, uint64_t outbox_position);

/* Adds a hold active at the position (from the database).
 * expires_ms, created_seq, created_ms as stored. 0, -EEXIST, -ENOMEM. */
int chg_load_hold(chg_state *st, const chg_claim *c, int64_t expires_ms, uint64_t created_seq, int64_t created_ms);

/* Applies the next record (rec->seq must be position + 1, rec->shard_id
 * the shard's). Returns 0, or with a message in err: -EBADMSG (the payload
 * does not decode, or contradicts the holds known), -ENOMEM. After an
 * error the state is undefined: free it and start again from the
 * database. */
int chg_record(chg_state *st, const journal_record *rec, char *err, size_t errlen);

const chg_batch *chg_get_batch(const chg_state *st);

/* Forgets the batch (after its commit: the position stays where the
 * records left it). */
void chg_batch_clear(chg_state *st);

/* Last record applied, last outbox position used, active holds. */
uint64_t chg_seq(const chg_state *st);
uint64_t chg_outbox_position(const chg_state *st);
uint64_t chg_active_holds(const chg_state *st);

#endif /* BO_COMMITTER_CHANGES_H */
