/*
 * oracle.h — what the database must hold, computed without the committer:
 * a fresh engine re-executes a shard's journal (shard/apply.h) and counts,
 * from the recorded results and from the engine's own expiry callback, the
 * seat changes and outbox events every record makes. Then oracle_check
 * compares a database with that engine row for row. Shared by the
 * committer tests (tests/committer/) and the to-postgres test.
 */
#ifndef BO_TEST_ORACLE_H
#define BO_TEST_ORACLE_H

#include <stdint.h>

#include <libpq-fe.h>

#include "engine/engine.h"

#define ORACLE_EVENTS_MAX 64u

typedef struct oracle {
	engine *e;
	uint64_t last_seq;
	uint64_t changes;	      /* seat_changes rows the journal implies */
	uint64_t causes[7];	      /* by cause, in changes.h order */
	uint64_t outbox;	      /* inventory_events rows */
	uint64_t events[ORACLE_EVENTS_MAX]; /* ids of the events created */
	uint32_t event_count;
} oracle;

/* Re-executes every record of shard `shard_id` under data_dir (cr_assert
 * on any failure). Free with oracle_free. */
void oracle_run(oracle *o, const char *data_dir, uint32_t shard_id);
void oracle_free(oracle *o);

/* cr_asserts that the database equals the oracle: every seat's state and
 * claim, every pool's counters, the number of active holds and of live
 * bookings, seat_changes (total, per cause, one row per (shard, seq,
 * ordinal)), the outbox (count, positions 1..n without a gap) and the
 * checkpoint (= last_seq). */
void oracle_check(const oracle *o, PGconn *db, uint32_t shard_id);

#endif /* BO_TEST_ORACLE_H */
