/*
 * journal_internal.h — what the log (journal.c) and operator maintenance
 * (maint.c) share: segment file names, the shard directory, file helpers
 * and the reader's position. Not a public header: only files of journal/
 * include it. The on-disk format these names belong to is described at the
 * top of journal.c.
 */
#ifndef BO_JOURNAL_INTERNAL_H
#define BO_JOURNAL_INTERNAL_H

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "journal.h"

/* ---- Names ------------------------------------------------------------------ */

/* A segment is named by its first seq in this many decimal digits (so names
 * sort in log order: UINT64_MAX has 20), then ".seg". */
#define SEG_NAME_DIGITS 20
#define SEG_NAME_LEN (SEG_NAME_DIGITS + 4) /* digits + ".seg", without the NUL */

/* The unit of zeroing and copying, and the alignment of write buffers. */
#define PAGE_BYTES 4096u

/* A shard directory path leaves room in PATH_MAX for "/" + a segment name
 * (and the NUL, with a few bytes to spare). */
#define DIR_MAX (PATH_MAX - SEG_NAME_LEN - 8)

_Static_assert(DIR_MAX > 0 && DIR_MAX + 1 + SEG_NAME_LEN + 1 <= PATH_MAX,
               "a segment path fits PATH_MAX");

/* One segment file of a shard directory, as listed. */
typedef struct jsegent {
	uint64_t first_seq; /* from the file name */
} jsegent;

/* Formats the message of an outcome into buf (NULL or len 0: none). */
static inline void msg(char *buf, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static inline void msg(char *buf, size_t len, const char *fmt, ...)
{
	if (buf == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The file name (not the path) of the segment starting at first_seq;
 * len >= SEG_NAME_LEN + 1. */
static inline void seg_name(char *out, size_t len, uint64_t first_seq)
{
	snprintf(out, len, "%0*" PRIu64 ".seg", SEG_NAME_DIGITS, first_seq);
}

/* End (exclusive) of the last non-zero byte of base[from, to), or `from`. */
static inline uint64_t last_nonzero_end(const uint8_t *base, uint64_t from, uint64_t to)
{
	while (to > from && base[to - 1] == 0)
		to--;
	return to;
}

/* ---- Files ------------------------------------------------------------------ */

/* Writes `<root>/shard-NNNN` into out[len]. Returns 0, or -ENAMETOOLONG with
 * a message in err. */
int jnl_shard_dir(char *out, size_t len, const char *root, uint32_t shard_id, char *err,
                  size_t err_len);

/* Maps the file at path read-only. Returns 0 with *map (caller unmaps
 * *bytes bytes) — a 0-byte file maps as NULL with *bytes 0 —, or the -errno
 * of open/fstat/mmap with a message in err naming shard_id and path. */
int jnl_map_file(const char *path, uint32_t shard_id, const uint8_t **map, uint64_t *bytes,
                 char *err, size_t err_len);

/* Zeroes bytes [from, file size) of the file at path and fdatasyncs it.
 * Where the file system cannot zero a range, zeros are written from the end
 * backwards, so a crash part-way leaves records, then zeros: a journal that
 * ends a little later, never a hole before surviving records.
 * Returns 0, or -errno with a message in err ("open PATH: ..." or "zeroing
 * PATH from offset N: ..."). */
int jnl_zero_tail(const char *path, uint64_t from, char *err, size_t err_len);

/* Opens the directory at path and fsyncs it, so that the names created or
 * removed in it are durable. Returns 0, or the -errno of open or fsync
 * (no message: callers say which step it was). */
int jnl_fsync_dir(const char *path);

/* ---- The reader's position ---------------------------------------------------- */

/* The segments r walks, sorted by first seq (*count of them; borrowed, valid
 * until journal_reader_close). */
const jsegent *jnl_reader_segments(const journal_reader *r, uint32_t *count);

/* Right after journal_reader_next(r) returned 1: the index (into
 * jnl_reader_segments) of the segment holding that record, and the offset
 * just after it — where a cut after that record begins. */
void jnl_reader_position(const journal_reader *r, uint32_t *seg, uint64_t *off);

#endif /* BO_JOURNAL_INTERNAL_H */
