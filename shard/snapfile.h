/*
 * snapfile.h — snapshot files of a shard: their names, saving one
 * atomically, and loading the newest valid one. The image inside a file is
 * engine/snapshot.h's encoding; this module only knows where files live,
 * what they are called and how they become durable:
 *
 *     <root>/shard-NNNN/snap-<seq, 20 decimal digits>.snap
 *
 * A name in any other form (".tmp" leftovers of an interrupted save,
 * strangers) is not a snapshot.
 */
#ifndef BO_SHARD_SNAPFILE_H
#define BO_SHARD_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/snapshot.h"

/* Digits of the sequence number in a snapshot file name (zero-padded, so
 * names sort in sequence order). */
#define SNAPFILE_SEQ_DIGITS 20u
/* Length of a snapshot file name: "snap-" + digits + ".snap". */
#define SNAPFILE_NAME_LEN (5u + SNAPFILE_SEQ_DIGITS + 5u)
/* Appended to a snapshot's path while it is being written: a file of that
 * name is never loaded, and a save that did not finish leaves only it. */
#define SNAPFILE_TMP_SUFFIX ".tmp"

/* Writes "<dir>/snap-<seq>.snap" (or just the file name when dir is NULL)
 * into buf. Returns 0, or -ENAMETOOLONG when it does not fit in len (buf
 * then holds a truncated string). */
int snapfile_path(char *buf, size_t len, const char *dir, uint64_t seq);

/* Parses a file name (no directory) of the form "snap-<20 digits>.snap".
 * Returns 1 and *seq, or 0 for any other name. */
int snapfile_name_parse(const char *name, uint64_t *seq /* OUT */);

/* Writes the snapshot of `e` at (seq, seq_ts_ms) (snapshot_write_fd's
 * contract) as <dir>/snap-<seq>.snap, atomically: into the name plus
 * SNAPFILE_TMP_SUFFIX, fsync, rename, fsync of dir. Returns 0 or -errno
 * (err says what failed; the .tmp is removed, except when only the final
 * directory fsync failed: then the file is in place but its name may not be
 * durable yet); -ENAMETOOLONG when the path does not fit PATH_MAX. */
int snapfile_save(const engine *e, const char *dir, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
                  char *err, size_t errlen);

/* snapfile_save in two steps, for a caller that must check something in
 * between (the shard: that its journal covers seq). Every file-system
 * change goes through base/fsio.h's wrappers.
 *
 * Step 1: writes the snapshot into <dir>/snap-<seq>.snap + SNAPFILE_TMP_SUFFIX
 * and fsyncs it. Returns 0, or -errno (err says what failed; the .tmp is
 * removed). */
int snapfile_write_tmp(const engine *e, const char *dir, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
                       char *err, size_t errlen);

/* Step 2: makes it official: renames the .tmp to its final name and fsyncs
 * dir. Returns 0, or -errno with err: the rename failed (the .tmp is
 * removed), or only the directory fsync did (the file is in place but its
 * name may not be durable: nothing it covers may be pruned). */
int snapfile_publish(const char *dir, uint64_t seq, char *err, size_t errlen);

/* Removes the .tmp of step 1 (a snapshot that must not become official). */
void snapfile_discard_tmp(const char *dir, uint64_t seq);

/* Loads the newest snapshot of dir that is valid, skipping (and naming in
 * err, as a warning, with the reason) invalid ones: unreadable, corrupt, or
 * whose header seq differs from its file name. Only names of the form
 * snap-<20 digits>.snap are considered (".tmp" leftovers are not). Returns
 * 1 and the engine (caller frees with engine_free; info may be NULL); 0
 * when there is none (dir missing or empty, or every file invalid: err then
 * lists them, so a caller whose journal was pruned must treat "0 with a
 * warning" as fatal); -ENOMEM; or -errno when dir cannot be read
 * (-ENAMETOOLONG: its paths do not fit PATH_MAX). err is "" when nothing
 * was skipped. */
int snapfile_load_latest(const char *dir, engine **out /* OUT */, snapshot_info *info /* OUT */,
                         char *err, size_t errlen);

/* Reads only the header of a snapshot file (snapshot_header_decode): the
 * body is not checked. Returns 0 and `info`, -EINVAL (not a valid header;
 * err says why), or -errno of open/read. */
int snapfile_peek(const char *path, snapshot_info *info /* OUT */, char *err, size_t errlen);

#endif /* BO_SHARD_SNAPFILE_H */
