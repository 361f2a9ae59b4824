/*
 * snapshot.h — a shard's whole engine state at a journal sequence number,
 * as one checksummed image, and the loader that rebuilds an engine from it.
 *
 * A snapshot taken after record `seq` plus the journal records after `seq`
 * rebuild the state; records at or below `seq` are then no longer needed
 * for recovery. The format, the validity rule and the loader's checks are
 * documented at the top of snapshot.c. This module knows bytes only: the
 * files that hold images (names, atomic save, the newest valid one of a
 * directory) are shard/snapfile.h's.
 */
#ifndef BO_SNAPSHOT_H
#define BO_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define SNAPSHOT_ERR_LEN 512u

/* Bytes of the header, which starts every image (all that
 * snapshot_header_decode needs), and of the smallest image there is. */
#define SNAPSHOT_HEADER_BYTES 256u
#define SNAPSHOT_MIN_BYTES (SNAPSHOT_HEADER_BYTES + 8u)

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

/* The same bytes, written with pwrite(2) at offsets from 0 through
 * base/fsio.h's bo_fs_pwrite, so that a storage observer sees each write
 * under `path` (the file fd was opened as); path NULL is snapshot_write_fd.
 * Same outcomes; no heap and no locks either (an installed observer aside). */
int snapshot_write_file(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms, int fd,
                        const char *path);

/* The snapshot encoding in memory (heap; tests, digests, tools): the same
 * bytes snapshot_write_fd writes. Returns 0 and a buffer the caller frees
 * with free(), or -ENOMEM (*buf NULL). */
int snapshot_encode(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
		    uint8_t **buf /* OUT */, size_t *len /* OUT */);

/* Rebuilds an engine from an encoding. All input is hostile: every length,
 * index and cross-reference is checked (engine_check(), check.h) before
 * the engine is handed out; the engine's clock is the snapshot's seq_ts_ms.
 * Returns 0 and a new engine (caller frees with engine_free) with `info`
 * filled (info may be NULL); -EINVAL with the reason in err (truncated, bad
 * magic or checksum, version or table layout of another build, config
 * outside limits.h, sizes, broken invariant); -ENOMEM. *out is NULL on
 * failure. The buffer is only read, and not kept. */
int snapshot_load(const uint8_t *buf, size_t len, engine **out /* OUT */, snapshot_info *info /* OUT */,
		  char *err, size_t errlen);

/* Reads only the header of an image (its first SNAPSHOT_HEADER_BYTES of
 * buf[0..len)): magic, header checksum, version, layout and reserved bytes
 * are checked, the body is not. Returns 0 and `info`, or -EINVAL (too short
 * or not a valid header; err says why). */
int snapshot_header_decode(const uint8_t *buf, size_t len, snapshot_info *info /* OUT */,
			   char *err, size_t errlen);

#endif /* BO_SNAPSHOT_H */
