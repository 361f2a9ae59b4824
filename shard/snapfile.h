/*
 * snapfile.h — snapshot files of a shard: their names, and (as they move
 * here from engine/snapshot.c) saving and loading them. The image inside a
 * file is engine/snapshot.h's encoding; this module only knows where files
 * live and what they are called:
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

/* Digits of the sequence number in a snapshot file name (zero-padded, so
 * names sort in sequence order). */
#define SNAPFILE_SEQ_DIGITS 20u
/* Length of a snapshot file name: "snap-" + digits + ".snap". */
#define SNAPFILE_NAME_LEN (5u + SNAPFILE_SEQ_DIGITS + 5u)

/* Writes "<dir>/snap-<seq>.snap" (or just the file name when dir is NULL)
 * into buf. Returns 0, or -ENAMETOOLONG when it does not fit in len (buf
 * then holds a truncated string). */
int snapfile_path(char *buf, size_t len, const char *dir, uint64_t seq);

/* Parses a file name (no directory) of the form "snap-<20 digits>.snap".
 * Returns 1 and *seq, or 0 for any other name. */
int snapfile_name_parse(const char *name, uint64_t *seq /* OUT */);

#endif /* BO_SHARD_SNAPFILE_H */
