/*
 * follower.h — reads one shard's DURABLE journal records from a sequence on,
 * waiting for more: what the PostgreSQL committer, a snapshot builder and a
 * hot standby share.
 *
 *     follower *f;
 *     char err[JOURNAL_ERR_LEN];
 *     if (follower_open(s, position, &f, err, sizeof err) != 0)
 *         report err;
 *     for (;;) {
 *         journal_record rec;
 *         int rc = follower_next(f, &rec, 100);
 *         if (rc == 1) apply rec (rec.seq == position + 1), position = rec.seq;
 *         else if (rc == 0) caught up: flush what was applied, go on;
 *         else report follower_error(f), stop;
 *     }
 *     follower_close(f);
 *
 * A record comes out only once the shard has published a durable sequence
 * at or past it (shard_durable_seq): it is on disk, so whatever the follower
 * does with it can never get ahead of what a crash keeps. Records are read
 * from the journal's segment files with the journal's reader (so every
 * checksum and the hash chain are checked), never beyond that sequence; when
 * caught up the follower sleeps until the writer publishes more. It works
 * while the writer appends and rolls segments, and while the shard is
 * stopped (it then reads what is durable and times out).
 *
 * What the shard does not know: how far a follower got. It prunes journal
 * segments that its snapshots cover without asking; a follower that falls
 * behind a prune gets -ENODATA (it must restart from a snapshot), never a
 * silent gap.
 *
 * Threading: a follower belongs to one thread at a time; any number of
 * followers may follow one shard. The shard must outlive its followers.
 */
#ifndef BO_SHARD_FOLLOWER_H
#define BO_SHARD_FOLLOWER_H

#include <stdint.h>

#include "journal/journal.h"
#include "shard/shard.h"

typedef struct follower follower;

/* Opens a follower of durable shard `s` (opened with a data_dir) that
 * delivers the records after `after_seq` (0: from the first). Reads
 * nothing yet beyond listing the shard's segments.
 * Returns 0 and *out (caller owns: follower_close), or, with a message in
 * err: -EINVAL (the shard has no journal), -ERANGE (after_seq is beyond the
 * shard's durable sequence: the journal does not hold what the caller says
 * it has), -ENOMEM, or the -errno of reading the shard directory. */
int follower_open(shard *s, uint64_t after_seq, follower **out /* OUT */, char *err, size_t errlen);

/* follower_open, bounded by shard_released_seq() instead of the durable
 * sequence: delivers only records whose outputs were published (durable
 * here and on every in-sync standby). The database committer's form: what
 * reaches PostgreSQL can never be lost by a failover. */
int follower_open_released(shard *s, uint64_t after_seq, follower **out /* OUT */, char *err, size_t errlen);

/* The next record: seq is one more than the previous one's (after_seq + 1
 * first). Waits up to timeout_ms (0: does not wait) for it to become
 * durable.
 * Returns 1 with *rec filled (payload and file borrowed until the next call
 * on f); 0 when no further record became durable in time (caught up);
 * or a negative errno, with follower_error() saying what, after which f is
 * only good for follower_close (every further call returns the same):
 *   -ENODATA    the next record was pruned from the journal (the follower
 *               fell behind a snapshot);
 *   -EBADMSG    the journal is corrupt where the record should be, or a
 *               durable record is missing from it;
 *   -ESHUTDOWN  the shard failed and every record it made durable has been
 *               delivered: nothing more will come;
 *   -ENOMEM / -errno of opening or reading a segment. */
int follower_next(follower *f, journal_record *rec /* OUT */, uint32_t timeout_ms);

/* A sink: what a follower hands its records to (follower_feed). Returns 0
 * to go on, or a negative errno to stop; the record is borrowed for the
 * call. */
typedef int (*follower_sink_fn)(void *ctx, const journal_record *rec);

/* Delivers the durable records after follower_position(f), in order, to
 * sink, until the position reaches `upto` (UINT64_MAX: never), waiting up
 * to timeout_ms in all for records to become durable. The follower's
 * general form: a start sequence (follower_open) and a sink; the snapshot
 * builder's sink re-executes records into an engine (replica.h), a hot
 * standby's would too.
 * Returns 1 when the position is `upto`; 0 when no further record became
 * durable in time (position < upto, everything durable delivered); the
 * sink's negative return (the follower stays usable: its position is the
 * record before the one the sink refused); or follower_next's failure. */
int follower_feed(follower *f, uint64_t upto, follower_sink_fn sink, void *ctx, uint32_t timeout_ms);

/* Sequence of the last record delivered (after_seq before the first). */
uint64_t follower_position(const follower *f);

/* What went wrong, "" while healthy. Owned by f. */
const char *follower_error(const follower *f);

/* Frees f (accepts NULL). Records it handed out are invalid afterwards. */
void follower_close(follower *f);

#endif /* BO_SHARD_FOLLOWER_H */
