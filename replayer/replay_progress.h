/*
 * replay_progress.h — the progress line of long boxoffice-replay runs:
 *
 *   shard 0: 1200000 / ~5400000 records (22%), 950000 records/s
 *
 * drawn on stderr (never stdout), only when stderr is a terminal, and only
 * once the work has run for over a second, then redrawn at most every
 * 0.2 s: short runs and scripts see nothing. The total is an estimate from
 * bytes: records so far scaled by the share of the segments' used bytes
 * (from the first record counted on) read so far.
 */
#ifndef BO_REPLAY_PROGRESS_H
#define BO_REPLAY_PROGRESS_H

#include <limits.h>
#include <stdint.h>

#include "journal/journal.h"
#include "replayer/replay_dir.h"

typedef struct replay_progress {
	int enabled; /* stderr is a terminal (and stdout is not, when that matters) */
	int drawn;   /* something is on the line: clear it at the end */
	uint32_t shard;
	int64_t t0_ns, last_ns; /* monotonic: start, last redraw */
	uint64_t done;          /* records so far */
	uint64_t total_bytes;   /* segment bytes in use (last segment: up to its last
	                         * non-zero byte) */
	uint64_t *before;       /* [seg_count]: bytes of the segments before segment i; owned */
	const replay_shard_dir *d;
	char cur_name[PATH_MAX]; /* last segment seen: looked up only when it changes */
	uint64_t cur_before;
	uint64_t start_bytes; /* position of the first record counted (the read may
	                       * start after seq 1) */
} replay_progress;

/* Starts the progress of shard d (borrowed until replay_progress_end).
 * no_progress: never draw (--no-progress). stdout_too: also stay silent
 * when stdout is a terminal (dump: the line would mix with the records).
 * Never fails: without memory for the estimate it just stays silent. */
void replay_progress_begin(replay_progress *p /* OUT */, int no_progress, const replay_shard_dir *d,
                           int stdout_too);

/* Counts one record (rec: where it was read) and redraws when it is time. */
void replay_progress_tick(replay_progress *p, const journal_record *rec);

/* Clears the line if it was drawn and frees what begin allocated. */
void replay_progress_end(replay_progress *p);

#endif /* BO_REPLAY_PROGRESS_H */
