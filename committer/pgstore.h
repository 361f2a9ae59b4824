/*
 * pgstore.h — the committer's side of PostgreSQL (libpq): connect, apply
 * the schema's migrations, read a shard's checkpoint and active holds, and
 * apply one batch of changes (changes.h) in one transaction that moves the
 * checkpoint by compare-and-set.
 *
 * Batches travel as COPY ... FROM STDIN (FORMAT binary): new rows straight
 * into their tables (events, seats of new events, holds, bookings,
 * seat_changes, inventory_events), changes of existing rows into temporary
 * staging tables, then a few set-based UPDATEs — a handful of round trips
 * per batch whatever its size (perf/README.md has the measurement against
 * pipeline mode).
 *
 * Every failure is classified: retry (the database is unreachable, shutting
 * down, starting, out of resources, a serialization failure: the caller
 * reconnects with backoff and starts again from the checkpoint) or fatal
 * (bad DSN, authentication, privileges, read-only, schema newer than this
 * binary, a checkpoint moved by someone else, data the database refuses:
 * no retry can cure it). The message names the cause.
 *
 * Threading: a pgstore belongs to one thread.
 */
#ifndef BO_COMMITTER_PGSTORE_H
#define BO_COMMITTER_PGSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "committer/changes.h"

/* One migration of schemas/sql/, embedded at build time (embed_sql.py). */
typedef struct pgs_migration {
	unsigned version;
	const char *name;
	const char *sql;
} pgs_migration;

extern const pgs_migration pgs_migrations[];
extern const unsigned pgs_migration_count; /* = the schema version this binary writes */

typedef struct pgs_err {
	int retry;	/* 1: transient, try again later; 0: fatal */
	int moved;	/* pgs_apply: the checkpoint was not prev_seq (another
			 * committer moved it); retry is 0 */
	char msg[256];
} pgs_err;

typedef struct pgstore pgstore;

/* Connects. Returns 0 and *out, or -1 with *err (a failed connection is
 * retried unless the server said why it refused: authentication, missing
 * role or database; an unparsable DSN is fatal). */
int pgs_connect(const char *dsn, pgstore **out /* OUT */, pgs_err *err /* OUT */);
void pgs_close(pgstore *p);

/* Brings the schema to this binary's version (under an advisory lock, in
 * one transaction) and prepares the session's staging tables. A database
 * whose schema is newer is refused (fatal). 0 or -1 with *err. */
int pgs_migrate(pgstore *p, pgs_err *err /* OUT */);

/* A transaction in REPEATABLE READ: pgs_checkpoint and pgs_load_holds
 * between pgs_snapshot_begin and pgs_snapshot_end see the database at one
 * instant. Needed where another committer may commit between the two reads
 * (committer_config.shared): the holds of its batch would be loaded as
 * active at the older checkpoint, and met again in the journal. (Creating
 * the checkpoint row while the other one creates it too fails with a
 * serialization failure, retried.) 0 or -1 with *err. */
int pgs_snapshot_begin(pgstore *p, pgs_err *err /* OUT */);
int pgs_snapshot_end(pgstore *p, pgs_err *err /* OUT */);

/* Reads (creating it at 0 when absent) the shard's checkpoint: the last
 * journal sequence applied and the last outbox position. 0 or -1. */
int pgs_checkpoint(pgstore *p, uint32_t shard, uint64_t *seq /* OUT */, uint64_t *outbox /* OUT */,
		   pgs_err *err /* OUT */);

/* Loads the shard's active holds into st (chg_load_hold). 0 or -1. */
int pgs_load_holds(pgstore *p, uint32_t shard, chg_state *st, pgs_err *err /* OUT */);

/* Applies batch b (records prev_seq+1 .. b->last_seq) in one transaction
 * with the checkpoint's compare-and-set on prev_seq, and NOTIFYs `channel`
 * when it wrote outbox rows. 0 or -1 with *err; when the connection broke
 * during COMMIT the outcome is unknown: the caller re-reads the checkpoint
 * (it does after every failure). A checkpoint that is no longer prev_seq
 * (another committer moved it) writes nothing and sets err->moved. */
int pgs_apply(pgstore *p, uint32_t shard, uint64_t prev_seq, const chg_batch *b, const char *channel,
	      pgs_err *err /* OUT */);

/* The text a payref is stored as (bookings.payref): printable ASCII as is
 * except the backslash, every other byte (and the backslash) as \xHH — unambiguous, and
 * always valid text. out must hold 4 * len + 1 bytes. */
void pgs_payref_text(const char *payref, size_t len, char *out);

#endif /* BO_COMMITTER_PGSTORE_H */
