/*
 * rebuild.h — re-executing one shard's journal offline: the heart of
 * `verify` and `snapshot`.
 *
 * WHAT A REBUILD PROVES (verify's contract):
 *  1. Integrity: the journal reader checks every record's checksum, the hash
 *     chain and sequence continuity (journal.c, "validity rule").
 *  2. Determinism: every record is re-executed (replay_apply, the same code
 *     path as recovery) against an engine that starts empty at seq 0 — or,
 *     when old segments were pruned so seq 1 is gone, against the OLDEST
 *     valid snapshot whose seq reaches the first remaining segment (the
 *     oldest, not the newest, so that as much journal as possible is
 *     re-executed and every newer snapshot can be compared) — and each
 *     re-executed result must equal the recorded one.
 *  3. Snapshots (check_snaps): when the rebuild passes the seq of a snapshot
 *     file, the file must load (checksums, invariants) and equal the rebuilt
 *     state: same engine_digest() and the same bytes as snapshot_encode() of
 *     the rebuilt engine (the encoding is canonical). A snapshot newer than
 *     the journal's end means durable records were lost. Snapshots older
 *     than the base are loaded (validated) but not compared.
 *  4. The end: a torn tail (bytes after the last whole record, which the
 *     next start of the shard would cut) is a problem unless
 *     --allow-torn-tail: the journal cannot tell a torn final write from
 *     damage to the final batch (journal.c), so the operator decides.
 * The first failure is reported with file, offset and seq; re-execution
 * stops there (the engine can no longer be trusted).
 *
 * The engine's capacity (engine_config) is not in the journal, yet results
 * depend on it (LIMIT answers). It comes from, in order: the command line
 * (--seats-max ...), the newest snapshot's header, engine_config_default();
 * a base snapshot's own header wins over all of them (it was taken with it).
 */
#ifndef BO_REPLAY_REBUILD_H
#define BO_REPLAY_REBUILD_H

#include <stdint.h>

#include "engine/engine.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_report.h"

typedef struct rebuild {
	/* in */
	const replay_opts *o;      /* dir, allow_torn_tail, no_progress, capacity */
	const replay_shard_dir *d; /* the shard's files */
	uint64_t stop_seq;         /* re-execute up to here (UINT64_MAX: the end) */
	int check_snaps;           /* compare snapshots on the way (verify) */
	/* out */
	engine *e; /* the rebuilt engine (caller frees), NULL on failure */
	engine_config cfg;
	const char *cfg_source; /* where cfg came from, for messages */
} rebuild;

/* Rebuilds shard b->d into b->e, filling *r (cleared first).
 * Returns 0 when the rebuild reached its end (the journal's end, or
 * stop_seq) with no problem; 1 when it reached it but found problems that
 * do not stop it (a bad snapshot on the way, snapshots beyond the end, a
 * torn tail not allowed); -1 when it stopped (no base to start from, a
 * corrupt or unreadable journal, a result that does not re-execute,
 * stop_seq beyond the journal's end, out of memory): b->e is then NULL.
 * The problems are in r (replay_report_exit says how bad). */
int rebuild_run(rebuild *b, replay_report *r /* OUT */);

#endif /* BO_REPLAY_REBUILD_H */
