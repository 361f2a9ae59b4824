/*
 * journal.h — the append-only, checksummed, hash-chained journal of one shard.
 *
 * A shard's journal is a directory `<root>/shard-NNNN/` of segment files. The
 * shard's writer thread appends records (opaque payload bytes, stamped with a
 * batch timestamp and a sequence number 1, 2, 3, ...), ends each batch with
 * journal_commit(), and learns from journal_poll()/journal_wait() which
 * sequence numbers are durable. Replies may leave only for records at or
 * below the durable sequence. The byte layout, the validity rule and the
 * recovery algorithm are documented at the top of journal.c.
 *
 * Intended use (writer thread of shard 3):
 *
 *     journal_options opt;
 *     journal_options_default(&opt);
 *     journal *j;
 *     journal_recovery rec;
 *     char err[JOURNAL_ERR_LEN];
 *     if (journal_open("/var/lib/boxoffice", 3, &opt, &j, &rec, err, sizeof err) != 0)
 *         refuse to start, print err;
 *     // replay with a journal_reader first (or use rec.last_seq), then loop:
 *     for each batch (one timestamp now_ms):
 *         for each change: journal_append(j, now_ms, bytes, len, &seq);
 *         journal_commit(j);               // submits one write + fdatasync, returns at once
 *         journal_poll(j, &durable_seq);   // release replies with seq <= durable_seq
 *     journal_close(j, &durable_seq);
 *
 *     // after a durable snapshot at seq S, once the committer has taken C:
 *     journal_prune(root, 3, min(S, C, durable_seq), err, sizeof err);
 *     // on restart from that snapshot: opt.after_seq = S before journal_open.
 *
 *     journal_reader *r;                   // replay / verify / dump
 *     journal_reader_open(root, 3, &opt, &r, err, sizeof err);  // or _open_from(.., S, ..)
 *     while ((rc = journal_reader_next(r, &record)) == 1) use record;
 *     rc == 0: end of the log; rc < 0: journal_reader_error(r) says what, and
 *     journal_reader_error_at(r, &at) gives file, offset and seq as fields.
 *     journal_reader_close(r);
 *
 * Threading: a journal or a reader belongs to one thread at a time. Nothing
 * here is thread-safe; a journal may be handed to another thread between
 * calls with the usual happens-before of the hand-over. An open journal has
 * a thread of its own (started by journal_open, joined by journal_close)
 * that creates and fallocates the next segment ahead of time as the file
 * "segment.spare" in the shard directory; no reader or tool looks at it.
 *
 * Allocation: journal_open() and journal_reader_open() allocate everything.
 * journal_append(), journal_commit(), journal_poll() and journal_wait() never
 * allocate; they make no system call other than io_uring submission and
 * completion waits (and, at segment roll-over, a mutex hand-over of the
 * spare: it is renamed into place by the new segment's first io_uring chain,
 * and the writer waits only if the spare is not ready yet, i.e. when a
 * segment fills faster than one is created), except after an I/O failure.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno on
 * failure. Errors are operating errors (disk, hostile files, limits) and come
 * with a message; misuse (NULL journal, waiting for a sequence never
 * appended) is a programmer error and asserts.
 */
#ifndef BO_JOURNAL_H
#define BO_JOURNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"

/* ---- Limits -------------------------------------------------------------- */

/* Largest payload of one record (a format limit: readers refuse larger).
 * The shard journals each command as one record, a CREATE_EVENT with its
 * whole seat map, so the engine refuses maps whose description would not
 * fit (BO_MAP_DESC_BYTES_MAX in base/limits.h; shard/entry.h asserts that
 * the largest command entry fits). Changing this value changes both. */
#define JOURNAL_PAYLOAD_BYTES_MAX (2u << 20)

/* Default segment size: big enough that roll-over (a rename and a directory
 * fsync in the new segment's first chain; the file is made ahead of time)
 * is rare (every ~0.5 s at 1M records/s of ~150 bytes), small enough to
 * archive or delete segment by segment. */
#define JOURNAL_SEGMENT_BYTES_DEFAULT (64ull << 20)

/* Default size of each of the two write buffers: holds a full batch
 * (BO_BATCH_MAX commands of ~1 KiB of records) and one record of the
 * largest payload. */
#define JOURNAL_BUFFER_BYTES_DEFAULT (4u << 20)

/* Bytes of the message buffers callers pass (err) and journal_error(). */
#define JOURNAL_ERR_LEN 1024u

/* ---- Types --------------------------------------------------------------- */

typedef struct journal journal;               /* an open journal for appending */
typedef struct journal_reader journal_reader; /* an iterator over a shard's records */

typedef enum journal_sync {
	/* A batch is durable once its write and an fdatasync of the segment (and,
	 * for the first batch of a new segment, an fsync of the directory) have
	 * completed. */
	JOURNAL_SYNC_DATA = 0,
	/* UNSAFE, benchmarks only: no fdatasync at all; a batch counts as
	 * "durable" when its write reached the page cache. A power loss loses
	 * acknowledged changes. Every log and error string says so. */
	JOURNAL_SYNC_NONE_UNSAFE = 1,
} journal_sync;

/* Fault injection (tests): the hook sees every I/O right before it is
 * submitted. */
typedef enum journal_io_kind {
	JOURNAL_IO_WRITE = 0,   /* a batch's bytes into a segment */
	JOURNAL_IO_SYNC = 1,    /* fdatasync of the segment */
	JOURNAL_IO_DIRSYNC = 2, /* fsync of the shard directory (new segment) */
	JOURNAL_IO_RENAME = 3,  /* the spare file renamed to the new segment's name
	                         * (path: that name), first in the new segment's chain */
} journal_io_kind;

typedef struct journal_io {
	journal_io_kind kind;
	uint32_t shard_id;
	const char *path;   /* segment file (directory for DIRSYNC); borrowed */
	uint64_t offset;    /* WRITE: file offset of buf[0] */
	uint8_t *buf;       /* WRITE: the bytes about to be written; the hook may change
	                     * them to simulate corruption on the way to the disk */
	uint32_t len;       /* WRITE: bytes to write; lowering it makes a short write */
	uint64_t seq_first; /* records carried by this batch */
	uint64_t seq_last;
} journal_io;

/* Returns 0 to let the I/O proceed (as possibly changed through *io), or a
 * negative errno (-EIO, -ENOSPC, ...) that the I/O then completes with
 * instead of running. */
typedef int (*journal_fault_fn)(void *ctx, journal_io *io);

typedef struct journal_options {
	uint64_t segment_bytes;     /* size of a new segment (multiple of 4096,
	                             * >= buffer_bytes + 4096); existing ones keep theirs */
	uint32_t buffer_bytes;      /* each of the two write buffers (multiple of 4096,
	                             * holds one record of payload_bytes_max) */
	uint32_t payload_bytes_max; /* <= JOURNAL_PAYLOAD_BYTES_MAX; larger records are
	                             * refused on append and invalid on read */
	journal_sync sync;          /* JOURNAL_SYNC_DATA unless benchmarking */
	int force_truncate;         /* recovery: cut at the first corruption instead of
	                             * refusing to open (operator decision, loses data;
	                             * never used to cut a missing head, see after_seq) */
	uint64_t after_seq;         /* journal_open: the caller already holds the state
	                             * through this seq (a snapshot), so older segments may
	                             * have been pruned and are not read; the journal must
	                             * hold every record after it. 0: everything from seq 1.
	                             * The rule is "PRUNED JOURNALS" at the top of journal.c */
	int allow_pruned;           /* journal_open and readers: when no segment starts at or
	                             * before after_seq + 1, read from the first segment
	                             * instead of refusing (missing head). For a caller that
	                             * opens before it knows its snapshot seq: it must then
	                             * check journal_recovery.first_seq <= its seq + 1 */
	journal_fault_fn fault;     /* NULL in production */
	void *fault_ctx;
	bo_hist *sync_hist;         /* NULL, or where each unit's latency goes (us, from
	                             * submitting its write to its last completion:
	                             * write + fdatasync [+ directory fsync]); the
	                             * caller's, outlives the journal; /metrics */
} journal_options;

/* What recovery found and did (journal_open) or the reader saw at its end. */
typedef struct journal_recovery {
	uint64_t last_seq;          /* last good record; 0 when the journal is empty */
	uint64_t first_seq;         /* first record read and validated: 1, or more when
	                             * older segments were pruned or skipped (after_seq);
	                             * 0 when no record was read */
	uint64_t records;           /* good records read (first_seq..last_seq) */
	uint32_t segments;          /* segments holding them (after the cut) */
	int forced;                 /* 1 when corruption was cut because of force_truncate */
	uint64_t bytes_cut;         /* non-zero bytes discarded after the last good record */
	uint64_t records_cut;       /* checksum-valid records discarded after it (torn batch,
	                             * or everything after a forced cut) */
	char note[JOURNAL_ERR_LEN]; /* human-readable: what was cut where, or "" */
} journal_recovery;

/* One record handed out by the reader. */
typedef struct journal_record {
	uint64_t seq;
	int64_t timestamp_ms; /* the batch timestamp given to journal_append() */
	uint32_t shard_id;
	uint32_t payload_len;
	const uint8_t *payload; /* borrowed: valid until the next reader call */
	const char *file;       /* segment holding it; borrowed, same lifetime */
	uint64_t offset;        /* byte offset of the record in that file */
	uint64_t checksum;      /* the record's CONTENT checksum: XXH3 of its seq,
	                         * timestamp, payload length, shard id and payload
	                         * (not of the on-disk checksum, prev or unit_index
	                         * fields, which depend on the writer's grouping
	                         * into write units): equal on every copy of the
	                         * record; replication sends it as the chain point */
} journal_record;

/* ---- Options --------------------------------------------------------------- */

/* Fills *opt with the defaults above, JOURNAL_SYNC_DATA, no force, no hook. */
void journal_options_default(journal_options *opt);

/* ---- Appending ------------------------------------------------------------- */

/* Opens (creating when missing) `<root>/shard-NNNN/` for appending: recovers
 * it (as journal_reader_open_from(opt->after_seq) does), cuts a torn tail on
 * disk (zeroing the rest of its segment, deleting segments after it, syncing
 * both), and positions appends after the last good record.
 * A pruned journal (first segment starting after seq 1) opens when
 * opt->after_seq says the caller does not need what was pruned; appends then
 * continue its sequence and hash chain.
 * `root` must exist. `opt` may be NULL (defaults); it is copied.
 * Returns 0 and *out (caller owns: journal_close), with *rec (may be NULL)
 * describing the recovery; or, with *out = NULL and a message in err:
 *   -EINVAL   options out of range (err says which),
 *   -EBADMSG  corruption found and force_truncate not set (err names file,
 *             offset and sequence); or, force_truncate or not: the records
 *             right after after_seq are missing ("missing segment": pruned
 *             beyond what the caller holds, or lost), the log ends before
 *             after_seq, or the first remaining segment has no valid header
 *             to continue the hash chain from,
 *   -ENOSYS / -EPERM  io_uring refused by the kernel,
 *   -ENOMEM, or the -errno of a failed mkdir/open/read/fallocate/fsync. */
int journal_open(const char *root, uint32_t shard_id, const journal_options *opt, journal **out,
                 journal_recovery *rec, char *err, size_t err_len);

/* Appends one record with the next sequence number, stored in *seq_out (may
 * be NULL). The payload is copied; the caller keeps it. The record is not
 * durable until the durable sequence reaches it.
 * Returns 0; -EMSGSIZE when payload_len > payload_bytes_max; or, when the
 * journal has failed (now or before), the negative errno of that failure
 * with journal_error() saying what happened — the record was not appended.
 * May block: when the write buffer is full, or the segment is full, while
 * earlier batches are still being written (backpressure), or at roll-over
 * while the spare segment is still being made. */
int journal_append(journal *j, int64_t timestamp_ms, const void *payload, uint32_t payload_len,
                   uint64_t *seq_out);

/* Ends a batch: everything appended so far is submitted as one write +
 * fdatasync now if fewer than two earlier writes are in flight (and neither
 * they nor this one open a new segment), or else as soon as that holds
 * (journal_poll/journal_wait submit it), together with whatever is
 * committed meanwhile (group commit). Its records become durable (durable
 * seq) once its write and every earlier one have completed. Returns at once.
 * Returns 0, or the negative errno of the journal's failure. */
int journal_commit(journal *j);

/* Reaps completions without blocking, submits committed records when the
 * disk is idle, and stores in *durable_seq (may be NULL) the highest
 * sequence s such that records 1..s are all durable.
 * Returns 0, or the negative errno of the journal's failure (durable_seq is
 * still stored and never covers a record that was not durable). */
int journal_poll(journal *j, uint64_t *durable_seq);

/* Blocks until record `seq` is durable (seq must have been appended;
 * records appended but not committed are committed by this call).
 * Returns 0 with *durable_seq >= seq, or the negative errno of the failure
 * (then *durable_seq < seq). */
int journal_wait(journal *j, uint64_t seq, uint64_t *durable_seq);

/* The last record (appended, or the last one recovery read, durable or
 * not): its sequence and its content checksum (journal_record.checksum).
 * (0, 0) for an empty journal; the checksum is 0 when the last record was
 * not read (a journal opened after_seq A whose remaining segments start at
 * A + 1 and hold nothing yet). Replication compares it with the sender's
 * chain point. */
void journal_last(const journal *j, uint64_t *seq /* OUT */, uint64_t *checksum /* OUT */);

/* The failure message, "" while the journal is healthy. Owned by j. */
const char *journal_error(const journal *j);

/* Replaces the fault hook (tests). fn may be NULL. */
void journal_set_fault(journal *j, journal_fault_fn fn, void *ctx);

/* Commits and waits for everything appended, then frees j (always, even on
 * error). Stores the final durable sequence in *durable_seq (may be NULL).
 * Returns 0, or the negative errno of the journal's failure. */
int journal_close(journal *j, uint64_t *durable_seq);

/* ---- Reading --------------------------------------------------------------- */

/* Opens the shard's journal read-only for iteration from seq 1 (a pruned
 * journal is then refused as a missing segment unless opt->allow_pruned: use
 * journal_reader_open_from). Never changes the files. `opt` may be NULL;
 * only force_truncate and allow_pruned are used
 * (stop at the first corruption instead of failing; records are bounded by
 * JOURNAL_PAYLOAD_BYTES_MAX, the format's limit, not by the option). Returns 0 and *out (caller
 * owns: journal_reader_close), or -ENOENT (no such shard directory), -ENOMEM, -errno of opendir
 * with a message in err. */
int journal_reader_open(const char *root, uint32_t shard_id, const journal_options *opt,
                        journal_reader **out, char *err, size_t err_len);

/* Opens the shard's journal read-only for the records after `after_seq`
 * (0: from seq 1, exactly journal_reader_open). Segments whose records are
 * all <= after_seq are not read at all (nor validated): the reader starts in
 * the last segment whose first seq is <= after_seq (or the first segment
 * when it starts at after_seq + 1), validates that segment from its header
 * on (its chain seed is taken as given) and hands out only records >
 * after_seq. So a pruned journal is readable from after_seq as long as its
 * first segment starts at or before after_seq + 1 (or opt->allow_pruned).
 * opt->after_seq is ignored. Outcomes as journal_reader_open; and journal_reader_next()
 * returns -EBADMSG (force_truncate or not) when the records right after
 * after_seq are missing or the log ends before after_seq. */
int journal_reader_open_from(const char *root, uint32_t shard_id, const journal_options *opt,
                             uint64_t after_seq, journal_reader **out, char *err, size_t err_len);

/* Validates and returns the next record.
 * Returns 1 with *rec filled (borrowed, valid until the next call); 0 at the
 * end of the log (a torn tail is the end: journal_reader_recovery() says what
 * was cut); -EBADMSG on corruption (journal_reader_error() names file,
 * offset and sequence); -errno on an I/O error. After 0 or an error, every
 * further call returns the same. */
int journal_reader_next(journal_reader *r, journal_record *rec);

/* The reader's error message ("" if none). Owned by r. */
const char *journal_reader_error(const journal_reader *r);

/* Where a reader stopped on an error, as fields: what the message of
 * journal_reader_error() says in words, for callers that report it in a
 * structured form (boxoffice-replay) instead of scraping the text. */
typedef struct journal_error_at {
	char file[PATH_MAX]; /* the segment file concerned, as the reader names it
	                      * (<root>/shard-NNNN/<name>.seg); "" when no one file is */
	uint64_t offset;     /* byte offset in file where the damage starts; 0 unless
	                      * has_offset */
	int has_offset;      /* 1 when the error is at a place inside file */
	uint64_t seq;        /* the seq the reader expected there: the first record it
	                      * could not hand out */
} journal_error_at;

/* Fills *out (always) and returns 1 when the reader has stopped on an error,
 * i.e. journal_reader_next() returns (or, for a missing head found at open,
 * will return) a negative value; returns 0 with *out cleared ("", no offset,
 * seq 0) while it reads, or after it reached the end (a torn tail is an end:
 * see journal_reader_recovery()). By error:
 *   -EBADMSG, a bad record or segment header with valid data after it:
 *             file = that segment, offset = where the bad bytes start, seq =
 *             the seq expected there;
 *   -EBADMSG, a segment that breaks the sequence (header names another first
 *             seq, missing or duplicated segment, chain seed or size
 *             mismatch): file = that segment, offset 0 (its header), seq =
 *             the seq expected at its start;
 *   -EBADMSG, a missing head (the records right after after_seq are absent):
 *             file = the first segment present ("" when there is none), no
 *             offset, seq = after_seq + 1;
 *   -EBADMSG, a short log (it ends before after_seq): file and offset where
 *             the last good record ends ("", no offset, when no segment
 *             has a valid header), seq = that record's seq + 1;
 *   -errno,   an I/O error: file = the file that could not be opened, read
 *             or mapped, no offset, seq = the seq expected next.
 * Owned by the caller (a copy); r is not changed. */
int journal_reader_error_at(const journal_reader *r, journal_error_at *out /* OUT */);

/* After journal_reader_next() returned 0: what the end looked like. */
void journal_reader_recovery(const journal_reader *r, journal_recovery *rec);

/* Frees r. */
void journal_reader_close(journal_reader *r);

/* ---- Segments: listing and pruning ------------------------------------------- */

/* One segment file, as journal_segments() reports it. */
typedef struct journal_segment_info {
	const char *path;      /* the file; borrowed, valid during the callback only */
	uint64_t first_seq;    /* from the file name: its first record's seq */
	uint64_t last_seq_max; /* the next segment's first_seq - 1: no record in this one
	                        * is later; UINT64_MAX for the last (growing) segment */
	uint64_t size_bytes;   /* file size (segments are preallocated: not bytes used) */
} journal_segment_info;

/* Called once per segment, in log order. Returns 0 to go on, or a negative
 * errno that stops the walk and becomes journal_segments()' result. */
typedef int (*journal_segment_fn)(void *ctx, const journal_segment_info *info);

/* Lists the shard's segment files (by name and size; contents are not read
 * or validated — the reader does that). Returns the number of segments
 * reported, or -ENOENT (no shard directory) / -errno of opendir or stat /
 * -ENOMEM / fn's negative result, with a message in err (fn's: untouched). */
int journal_segments(const char *root, uint32_t shard_id, journal_segment_fn fn, void *ctx,
                     char *err, size_t err_len);

/* Deletes the oldest segments whose records are all <= upto_seq, keeping
 * the first segment that holds a record <= upto_seq and everything after it:
 * segment i goes when segment i + 1 starts at or before upto_seq. So the
 * last segment (the one being appended to) is never removed, and what is
 * left is readable with journal_reader_open_from(upto_seq) and opens with
 * after_seq = upto_seq. Segments go oldest first, then the directory is
 * fsynced: a crash part-way leaves a shorter prefix pruned, never a gap.
 *
 * Contract (the caller's, nothing here can check it): upto_seq <= the
 * journal's durable seq, and upto_seq <= min(the seq of a snapshot that is
 * durable on disk, the last seq every other consumer — the PostgreSQL
 * committer, a standby — has taken). The shard calls this after a snapshot at
 * seq S with upto_seq = min(S, committer's position). Readers already open
 * keep the segment they have mapped; none of them may need a removed record.
 * May run on a journal that is open for appending (any thread).
 *
 * Before deleting, checks that the segment that becomes the first has a
 * valid header naming its file and a valid first record continuing its
 * chain seed; if not, nothing is removed.
 * Returns the number of segments removed (0..), or with a message in err:
 * -EBADMSG (the new first segment is damaged), -ENOENT (no shard directory),
 * -ENOMEM, or the -errno of a failed opendir/open/unlink/fsync (segments
 * removed before an unlink failed stay removed: the log is still a suffix). */
int journal_prune(const char *root, uint32_t shard_id, uint64_t upto_seq, char *err,
                  size_t err_len);

/* Parses a segment file name (no directory): "<first seq, 20 decimal
 * digits>.seg". Returns 1 and *first_seq, or 0 for any other name (the
 * tools use it to tell segments from other files of a shard directory). */
int journal_segment_name_parse(const char *name, uint64_t *first_seq /* OUT */);

/* Operator maintenance (journal_truncate_at, the explicit repair) is a module
 * of its own: journal/maint.h. */

#endif /* BO_JOURNAL_H */
