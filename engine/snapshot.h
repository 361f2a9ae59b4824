/*
 * snapshot.h — a shard's whole engine state at a journal sequence number,
 * as one checksummed file, and the loader that rebuilds an engine from it.
 *
 * A snapshot taken after record `seq` plus the journal records after `seq`
 * rebuild the state; records at or below `seq` are then no longer needed
 * for recovery. The format, the validity rule and the loader's checks are
 * documented at the top of snapshot.c. Files live beside the journal:
 * <root>/shard-NNNN/snap-<seq, 20 digits>.snap.
 */
#ifndef BO_SNAPSHOT_H
#define BO_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define SNAPSHOT_ERR_LEN 512u

typedef struct snapshot_info {
	uint32_t shard;
	uint64_t seq;	      /* last journal record the state includes */
	int64_t seq_ts_ms;    /* that record's timestamp: the engine's clock */
	engine_config config; /* the engine's capacity */
	uint64_t bytes;	      /* size of the encoding */
} snapshot_info;

/* Writes the snapshot encoding of `e` to fd (already open for writing, at
 * offset 0). Uses no heap and no locks (a stack buffer of 32 KiB and
 * write(2)), so a child process may call it right after fork() from a
 * multi-threaded parent. seq_ts_ms must be in [0, engine_now(e)] (asserted):
 * it is written as the clock (a later clock that moved without changing
 * anything is not state), so it must not be older than the last change.
 * Returns 0, or the -errno of the first failed write (the file is then
 * incomplete: the caller removes it). Does not fsync. */
int snapshot_write_fd(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms, int fd);

/* The snapshot encoding in memory (heap; tests, digests, tools): the same
 * bytes snapshot_write_fd writes. Returns 0 and a buffer the caller frees
 * with free(), or -ENOMEM (*buf NULL). */
int snapshot_encode(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
		    uint8_t **buf /* OUT */, size_t *len /* OUT */);

/* Rebuilds an engine from an encoding. All input is hostile: every length,
 * index and cross-reference is checked (engine_check) before the engine is
 * handed out; the engine's clock is the snapshot's seq_ts_ms. Returns 0 and
 * a new engine (caller frees with engine_free) with `info` filled (info may
 * be NULL); -EINVAL with the reason in err (truncated, bad magic or
 * checksum, version or table layout of another build, config outside
 * limits.h, sizes, broken invariant); -ENOMEM. *out is NULL on failure.
 * The buffer is only read, and not kept. */
int snapshot_load(const uint8_t *buf, size_t len, engine **out /* OUT */, snapshot_info *info /* OUT */,
		  char *err, size_t errlen);

/* Reads only the header of a snapshot file: magic, header checksum,
 * version and layout are checked, the body is not. Returns 0 and `info`,
 * -EINVAL (not a valid header; err says why), or -errno of open/read. */
int snapshot_peek(const char *path, snapshot_info *info /* OUT */, char *err, size_t errlen);

/* Writes a snapshot file atomically: <dir>/snap-<seq>.snap.tmp, fsync,
 * rename, fsync of dir. Returns 0 or -errno (err says what failed; the .tmp
 * is removed, except when only the final directory fsync failed: then the
 * file is in place but its name may not be durable yet). */
int snapshot_save(const engine *e, const char *dir, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
		  char *err, size_t errlen);

/* Loads the newest snapshot of dir that is valid, skipping (and naming in
 * err, as a warning, with the reason) invalid ones: unreadable, corrupt, or
 * whose header seq differs from its file name. Only names of the form
 * snap-<20 digits>.snap are considered (".tmp" leftovers are not). Returns
 * 1 and the engine; 0 when there is none (dir missing or empty, or every
 * file invalid: err then lists them, so a caller whose journal was pruned
 * must treat "0 with a warning" as fatal); -ENOMEM; or -errno when dir
 * cannot be read. err is "" when nothing was skipped. */
int snapshot_load_latest(const char *dir, engine **out /* OUT */, snapshot_info *info /* OUT */, char *err,
			 size_t errlen);

/* Checks every invariant of the engine's tables (counters equal seat
 * states, owners point at live claims that list the seat, heap order and
 * positions, recycle queue, client counts, idempotency index, row caches,
 * ...; the full list is above engine_check in snapshot.c). Safe on
 * arbitrary table contents: never asserts, never reads out of bounds.
 * Returns 0, -EINVAL with the first broken invariant in err, or -ENOMEM
 * (it allocates scratch counters: not for a forked child). O(state) plus a
 * scan of the client, event and idempotency index tables. */
int engine_check(const engine *e, char *err, size_t errlen);

#endif /* BO_SNAPSHOT_H */
