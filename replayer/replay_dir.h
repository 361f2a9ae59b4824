/*
 * replay_dir.h — what a boxoffice data directory holds, for the
 * boxoffice-replay tool: its shards, and per shard its journal segments and
 * snapshot files, by name and size, without reading their contents.
 *
 * Layout (journal.c and engine/snapshot.h own the formats, shard/snapfile.h
 * the snapshot names; only names are used here):
 *
 *   DIR/shard-NNNN/                         NNNN = shard id, >= 4 decimal digits
 *   DIR/shard-NNNN/<first seq, 20 digits>.seg   journal segments
 *   DIR/shard-NNNN/snap-<seq, 20 digits>.snap   snapshots
 *
 * Anything else (temporary files, repair backups, operator notes) is ignored,
 * as the journal reader ignores it. Names are input from outside: a name that
 * does not parse exactly is "anything else", never an error.
 */
#ifndef BO_REPLAY_DIR_H
#define BO_REPLAY_DIR_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Shards one data directory may list: far above any shard map (a server
 * runs one shard per core), low enough that the id array is tiny. */
#define REPLAY_DIR_SHARDS_MAX 65536u

typedef struct replay_seg {
	uint64_t first_seq; /* from the file name */
	uint64_t bytes;     /* file size (segments are preallocated: mostly zero at the end) */
} replay_seg;

typedef struct replay_snap {
	uint64_t seq;   /* from the file name: the last record the state includes */
	uint64_t bytes; /* file size */
} replay_snap;

typedef struct replay_shard_dir {
	uint32_t shard;
	char path[PATH_MAX]; /* DIR/shard-NNNN */
	replay_seg *segs;    /* [seg_count], ascending first_seq; owned */
	uint32_t seg_count;
	replay_snap *snaps; /* [snap_count], ascending seq; owned */
	uint32_t snap_count;
	uint64_t seg_bytes; /* sum of segs[].bytes */
} replay_shard_dir;

/* Lists the shard ids of data directory `root` in ascending order.
 * Returns 0 with *ids (caller frees with free(); NULL when *count is 0) and
 * *count; -ENOENT / -ENOTDIR / -EACCES ... when root cannot be listed, with
 * the reason (naming root) in err; -ENOMEM. A directory without shards is
 * not an error here (count 0): the caller decides what that means. */
int replay_dir_shards(const char *root, uint32_t **ids /* OUT */, uint32_t *count /* OUT */,
                      char *err, size_t errlen);

/* Lists the segments and snapshots of shard `shard` of `root`.
 * Returns 0 and fills *out (free with replay_dir_free), or -errno with the
 * reason in err (-ENOENT: no such shard directory). */
int replay_dir_scan(const char *root, uint32_t shard, replay_shard_dir *out /* OUT */, char *err,
                    size_t errlen);

void replay_dir_free(replay_shard_dir *d);

/* Largest snapshot file read into memory (verify compares it whole; repair
 * copies it across file systems): an engine at its maximum capacity
 * (BO_SEATS_PER_SHARD_MAX seats ...) stays far below this. */
#define REPLAY_SNAPSHOT_BYTES_MAX (16ull << 30)

/* Room for any path replay_dir_*_path() writes. */
#define REPLAY_DIR_PATH_LEN (PATH_MAX + 64)

/* Writes DIR/shard-NNNN/snap-<seq>.snap for snapshot i of d into buf
 * (len >= REPLAY_DIR_PATH_LEN; asserted not to truncate). */
void replay_dir_snap_path(const replay_shard_dir *d, uint32_t i, char *buf, size_t len);

/* Writes DIR/shard-NNNN/<first seq>.seg for segment i of d (as above). */
void replay_dir_seg_path(const replay_shard_dir *d, uint32_t i, char *buf, size_t len);

/* Index of the segment whose file name is the last path component of
 * `file` (as journal_record.file gives it), or -1. */
int64_t replay_dir_seg_index(const replay_shard_dir *d, const char *file);

/* Bytes of segment i up to its last non-zero byte (reads the file from its
 * end backwards, 64 KiB at a time, until something is not zero). Used to
 * estimate how much of a preallocated segment holds records. Returns the
 * file size when the file cannot be read (an estimate only). */
uint64_t replay_dir_seg_used(const replay_shard_dir *d, uint32_t i);

/* Reads the whole file at path into a heap buffer (caller frees; never NULL
 * on success, even for an empty file). Returns 0 with *buf and *len; -EFBIG
 * when the file is larger than max_bytes; -ENOMEM; or the -errno of a failed
 * open/fstat/read (-EIO for a file that shrank while read). */
int replay_dir_read_file(const char *path, uint64_t max_bytes, uint8_t **buf /* OUT */,
                         size_t *len /* OUT */);

#endif /* BO_REPLAY_DIR_H */
