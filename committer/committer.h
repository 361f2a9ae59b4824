/*
 * committer.h — carries one shard's durable journal into PostgreSQL,
 * exactly once, in batches (schemas/sql/ is the schema, schemas/database.md
 * its description).
 *
 * One committer per shard, on a thread of its own (never the writer's):
 *
 *     committer *c;
 *     committer_config cc;
 *     committer_config_default(&cc);
 *     cc.dsn = "host=/path/to/socket dbname=boxoffice";
 *     committer_start(shard, &cc, &c, err, sizeof err);
 *     ...
 *     committer_status st;
 *     committer_status_get(c, &st);     // any thread: state, lag, reason
 *     ...
 *     committer_stop(c);                // applies what is durable, then joins
 *
 * The thread connects, applies the schema's migrations (refusing a database
 * whose schema is newer than this binary), reads the shard's checkpoint
 * row, loads the holds still active at that checkpoint, and follows the
 * journal from there (shard/follower.h: durable records only). Records are
 * grouped into batches (up to batch_records records or batch_ms of waiting)
 * and each batch is applied in one transaction that also moves the
 * checkpoint with a compare-and-set on its previous value: a batch is
 * applied once or not at all, whatever crashes. After each commit the
 * committer moves the shard's retention floor (shard_retain), so the journal
 * keeps every record the database has not got.
 *
 * It follows the RELEASED journal (follower_open_released): records durable
 * here and on every in-sync standby (shard.h, "Replication roles"), so the
 * database never holds a record that a failover can lose; on a server
 * without standbys that is the durable journal.
 *
 * Outages: a lost connection, a database that is shutting down, starting,
 * or refusing connections, a serialization failure or a full disk are
 * retried with a bounded exponential backoff (retry_min_ms .. retry_max_ms),
 * logged once when the state changes (not once per retry). A fault no retry
 * can cure — bad DSN syntax, authentication, missing privileges, a read-only
 * database, a schema newer than the binary, a checkpoint ahead of the
 * journal, a journal pruned past the checkpoint, a corrupt journal — stops
 * the committer with one message naming the cause (committer_status.reason);
 * the shard keeps serving.
 *
 * Threading: start/stop from one thread; committer_status_get from any.
 */
#ifndef BO_COMMITTER_H
#define BO_COMMITTER_H

#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"

typedef enum committer_state {
	COMMITTER_STARTING = 0, /* connecting, migrating, loading its position */
	COMMITTER_RUNNING = 1,	/* following the journal */
	COMMITTER_RETRYING = 2, /* the database is unreachable or failing: retrying */
	COMMITTER_STOPPED = 3,	/* a fault no retry cures (reason says which), or stopped */
	COMMITTER_STATE_COUNT
} committer_state;

/* "starting", "running", "retrying", "stopped". */
const char *committer_state_str(int state);

#define COMMITTER_REASON_LEN 256u

/* What one commit carried (committer_config.on_commit). */
typedef struct committer_commit {
	uint32_t shard_id;
	uint64_t first_seq, last_seq; /* journal records in the transaction */
	uint64_t records, changes, outbox;
	uint64_t lag_ms; /* commit time minus the first record's timestamp */
} committer_commit;

typedef struct committer_config {
	const char *dsn;	  /* libpq connection string; copied */
	uint32_t batch_records;	  /* journal records per transaction at most (default 8192) */
	uint32_t batch_ms;	  /* wait at most this long to fill a batch (default 10) */
	uint32_t retry_min_ms;	  /* first backoff (default 100) */
	uint32_t retry_max_ms;	  /* backoff bound (default 5000) */
	const char *notify_channel; /* NOTIFY channel for the outbox (default "boxoffice_inventory") */
	/* 1: another server's committer may carry this same journal into the
	 * same database (a cluster: the old primary's committer finishing a
	 * batch while the new primary's has started; both journals hold the
	 * same records up to the new term's start, so either may apply them).
	 * A checkpoint the other one moved is then not a fault: the session
	 * starts again at once from the database's checkpoint. 0 (default):
	 * it is one (two servers writing one shard into one database), and
	 * the committer stops. */
	int shared;
	/* Called on the committer's thread after each commit (NULL: none);
	 * tests and benchmarks measure with it. */
	void (*on_commit)(void *ctx, const committer_commit *info);
	void *on_commit_ctx;
} committer_config;

void committer_config_default(committer_config *cfg);

/* A gauge set, readable from any thread (each field atomic on its own). */
typedef struct committer_status {
	uint32_t shard_id;
	int state;		/* committer_state */
	uint64_t applied_seq;	/* the checkpoint: last journal sequence in the database */
	uint64_t carried_seq;	/* the last sequence this committer committed itself
				 * (0: none); never above shard_released_seq */
	uint64_t durable_seq;	/* the shard's durable sequence */
	uint64_t lag_records;	/* durable_seq - applied_seq */
	uint64_t lag_ms;	/* age of the oldest durable record not yet applied (0: none) */
	uint64_t batches;	/* transactions committed */
	uint64_t changes;	/* seat_changes rows written */
	uint64_t outbox;	/* inventory_events rows written */
	uint64_t retries;	/* failed attempts retried (shared: a checkpoint
				 * the other committer moved counts too) */
	uint64_t last_commit_ms; /* wall clock of the last commit (0: none yet) */
	char reason[COMMITTER_REASON_LEN]; /* RETRYING/STOPPED: why; "" otherwise */
} committer_status;

typedef struct committer committer;

/* Starts the committer's thread for durable shard `s` (opened with a
 * data_dir; it must outlive the committer). Returns 0 and *out, or with a
 * message in err: -EINVAL (no dsn, the shard has no journal, a bad
 * config), -ENOMEM, -errno of pthread_create. Faults of the database are
 * not returned here: they show in the status. */
int committer_start(shard *s, const committer_config *cfg, committer **out /* OUT */, char *err, size_t errlen);

void committer_status_get(const committer *c, committer_status *out /* OUT */);

/* Asks the thread to finish: it applies what is durable now (when the
 * database is reachable; it does not wait for a database that is down),
 * then exits; joins it and frees c. Accepts NULL. */
void committer_stop(committer *c);

/* committer_stop, and *last (may be NULL) gets the status it ended with
 * (what it carried: carried_seq). Accepts NULL c (then *last is zeroed). */
void committer_finish(committer *c, committer_status *last /* OUT */);

#endif /* BO_COMMITTER_H */
