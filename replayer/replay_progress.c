/*
 * replay_progress.c — the progress line (see replay_progress.h).
 */
#include "replay_progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

/* The line appears after this long, and is redrawn at most this often:
 * short runs stay silent, long ones do not flood the terminal. */
#define PROGRESS_DELAY_NS 1000000000
#define PROGRESS_EVERY_NS 200000000

void replay_progress_begin(replay_progress *p, int no_progress, const replay_shard_dir *d,
                           int stdout_too)
{
	memset(p, 0, sizeof *p);
	p->enabled =
	        !no_progress && isatty(STDERR_FILENO) && !(stdout_too && isatty(STDOUT_FILENO));
	p->shard = d->shard;
	p->d = d;
	p->t0_ns = bo_clock_ns();
	if (!p->enabled || d->seg_count == 0)
		return;
	p->before = calloc(d->seg_count, sizeof *p->before);
	if (!p->before) {
		p->enabled = 0;
		return;
	}
	uint64_t sum = 0;
	for (uint32_t i = 0; i < d->seg_count; i++) {
		p->before[i] = sum;
		sum += i + 1 < d->seg_count ? d->segs[i].bytes : replay_dir_seg_used(d, i);
	}
	p->total_bytes = sum;
}

/* Byte position of rec across the segments (p->before[] of its file). */
static uint64_t progress_pos(replay_progress *p, const journal_record *rec)
{
	if (rec->file && strcmp(rec->file, p->cur_name) != 0) {
		snprintf(p->cur_name, sizeof p->cur_name, "%s", rec->file);
		int64_t i = replay_dir_seg_index(p->d, rec->file);
		p->cur_before = i >= 0 ? p->before[i] : p->cur_before;
	}
	return p->cur_before + rec->offset;
}

void replay_progress_tick(replay_progress *p, const journal_record *rec)
{
	p->done++;
	/* A read that starts after seq 1 (to-postgres from a checkpoint)
	 * estimates from the bytes after its first record only. */
	if (p->enabled && p->done == 1)
		p->start_bytes = progress_pos(p, rec);
	/* Looking at the clock every record would cost more than the record. */
	if (!p->enabled || (p->done & 255u) != 0)
		return;
	int64_t t = bo_clock_ns();
	if (t - p->t0_ns < PROGRESS_DELAY_NS || t - p->last_ns < PROGRESS_EVERY_NS)
		return;
	p->last_ns = t;
	uint64_t pos = progress_pos(p, rec);
	uint64_t est =
	        pos > p->start_bytes && p->total_bytes > pos
	                ? (uint64_t)((double)p->done * (double)(p->total_bytes - p->start_bytes) /
	                             (double)(pos - p->start_bytes))
	                : p->done;
	double pct = est ? 100.0 * (double)p->done / (double)est : 100.0;
	double secs = (double)(t - p->t0_ns) / 1e9;
	fprintf(stderr,
	        "\r\033[Kshard %" PRIu32 ": %" PRIu64 " / ~%" PRIu64
	        " records (%.0f%%), %.0f records/s",
	        p->shard, p->done, est, pct, (double)p->done / secs);
	fflush(stderr);
	p->drawn = 1;
}

void replay_progress_end(replay_progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	free(p->before);
	p->before = NULL;
}
