/*
 * follower.c — durable journal records of one shard, in order, waiting for
 * more (see follower.h).
 *
 * WHY IT NEVER READS PAST THE DURABLE SEQUENCE
 *
 * The segment files hold more than what is durable: the unit in flight is
 * written to the page cache before its fdatasync completes (and a crash
 * may still lose it), and a unit being written may be half there. So the
 * follower asks the journal reader for record N only once the shard has
 * published a durable sequence >= N (shard_durable_seq, an acquire load
 * paired with the writer's release after the journal reported the unit's
 * write and fdatasync complete: record N's bytes are in the file and on
 * disk by then). The reader validates a record without looking at what
 * follows it, so it never touches the bytes after N.
 *
 * SEGMENTS THAT APPEAR AND DISAPPEAR
 *
 * The journal's reader lists the segment files when it opens. When the
 * writer rolls to a new segment after that, the reader reaches the clean
 * end of its last listed segment and ends (0) although record N is durable:
 * the follower then reopens a reader after N - 1, which lists the new
 * segment, and asks again. It costs one re-read of the segment holding
 * N - 1 (the reader starts at a segment boundary and checks the chain up to
 * N - 1) once per roll-over. A prune may delete segments under an open
 * reader: a mapped segment stays readable, and a listed one that is gone
 * fails to open; the reopened reader tells this apart from corruption,
 * because it is opened with allow_pruned: it then starts at the first
 * segment left and hands out a record after N, which the follower reports
 * as pruned (-ENODATA) instead of skipping records.
 */
#include "follower.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

struct follower {
	shard *shard;
	const char *root; /* the shard's data_dir (borrowed from its config) */
	uint32_t shard_id;
	journal_reader *r; /* NULL: opened again at the next read */
	uint64_t next_seq; /* the record to deliver next */
	uint64_t durable;  /* the bound as last seen: the shard's durable sequence,
			    * or its released one (follower_open_released) */
	int released;	   /* bounded by shard_released_seq */
	int rc;		   /* 0 while healthy; then what every call returns */
	char err[JOURNAL_ERR_LEN];
};

static int fail(follower *f, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(follower *f, int rc, const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(f->err, sizeof(f->err), fmt, ap);
		va_end(ap);
	}
	f->rc = rc;
	return rc;
}

/* Opens a reader handing out the records after next_seq - 1. */
static int reader_open(follower *f)
{
	journal_options opt;
	journal_options_default(&opt);
	opt.allow_pruned = 1; /* a pruned start shows as a later first record */
	return journal_reader_open_from(f->root, f->shard_id, &opt, f->next_seq - 1, &f->r, f->err, sizeof(f->err));
}

static int open_bounded(shard *s, uint64_t after_seq, int released, follower **out, char *err, size_t errlen)
{
	assert(s && out && err && errlen > 0);
	*out = NULL;
	err[0] = '\0';
	const shard_config *cfg = shard_get_config(s);
	if (!cfg->data_dir) {
		snprintf(err, errlen, "shard %u has no journal to follow (no data directory)", cfg->id);
		return -EINVAL;
	}
	uint64_t durable = shard_durable_seq(s);
	if (after_seq > durable) {
		snprintf(err, errlen,
			 "shard %u: cannot follow from seq %" PRIu64 ": its journal is durable only up to %" PRIu64,
			 cfg->id, after_seq, durable);
		return -ERANGE;
	}
	follower *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "shard %u: out of memory for a follower", cfg->id);
		return -ENOMEM;
	}
	f->shard = s;
	f->root = cfg->data_dir;
	f->shard_id = cfg->id;
	f->next_seq = after_seq + 1;
	f->released = released;
	f->durable = released ? shard_released_seq(s) : durable;
	int rc = reader_open(f);
	if (rc < 0) {
		snprintf(err, errlen, "%s", f->err);
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int follower_open(shard *s, uint64_t after_seq, follower **out, char *err, size_t errlen)
{
	return open_bounded(s, after_seq, 0, out, err, errlen);
}

/* The released sequence never passes the durable one, so what it delivers
 * is durable too: read_durable's reasoning holds. */
int follower_open_released(shard *s, uint64_t after_seq, follower **out, char *err, size_t errlen)
{
	return open_bounded(s, after_seq, 1, out, err, errlen);
}

/* Reads record next_seq, which is durable. Returns 1 or a failure. */
static int read_durable(follower *f, journal_record *rec)
{
	for (int attempt = 0;; attempt++) {
		if (!f->r) {
			int rc = reader_open(f);
			if (rc < 0)
				return fail(f, rc, NULL); /* the message is in f->err */
		}
		int rc = journal_reader_next(f->r, rec);
		if (rc == 1 && rec->seq == f->next_seq) {
			f->next_seq++;
			return 1;
		}
		if (rc == 1) {
			/* The reader hands out records after next_seq - 1, in order:
			 * a later one means the ones between are gone. */
			assert(rec->seq > f->next_seq);
			return fail(f, -ENODATA,
				    "journal shard %u: records %" PRIu64 "..%" PRIu64
				    " were pruned (the journal now starts at %" PRIu64
				    "): the follower fell behind a snapshot",
				    f->shard_id, f->next_seq, rec->seq - 1, rec->seq);
		}
		if (attempt > 0) {
			if (rc < 0)
				return fail(f, rc, "%s", journal_reader_error(f->r));
			journal_recovery end;
			journal_reader_recovery(f->r, &end);
			return fail(f, -EBADMSG,
				    "journal shard %u: durable record %" PRIu64
				    " is missing: the journal ends at seq %" PRIu64 "%s%s",
				    f->shard_id, f->next_seq, end.last_seq, end.note[0] ? ": " : "", end.note);
		}
		/* A segment listed after this reader opened (or pruned since):
		 * once more with a fresh listing. */
		journal_reader_close(f->r);
		f->r = NULL;
	}
}

int follower_next(follower *f, journal_record *rec, uint32_t timeout_ms)
{
	assert(f && rec);
	if (f->rc != 0)
		return f->rc;
	if (f->next_seq > f->durable) {
		const int64_t ns = (int64_t)timeout_ms * 1000000;
		int rc = f->released ? shard_released_wait(f->shard, f->next_seq - 1, ns, &f->durable)
				     : shard_durable_wait(f->shard, f->next_seq - 1, ns, &f->durable);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			const char *why = shard_failed(f->shard);
			return fail(f, rc, "shard %u failed after seq %" PRIu64 ": %s", f->shard_id, f->durable,
				    why ? why : "");
		}
	}
	return read_durable(f, rec);
}

int follower_feed(follower *f, uint64_t upto, follower_sink_fn sink, void *ctx, uint32_t timeout_ms)
{
	assert(f && sink);
	const int64_t deadline = bo_clock_ns() + (int64_t)timeout_ms * 1000000;
	while (follower_position(f) < upto) {
		int64_t left_ms = (deadline - bo_clock_ns()) / 1000000;
		journal_record rec;
		int rc = follower_next(f, &rec, left_ms > 0 ? (uint32_t)left_ms : 0);
		if (rc <= 0)
			return rc;
		rc = sink(ctx, &rec);
		if (rc < 0) {
			/* Delivered again on the next call: the sink did not take it. */
			f->next_seq--;
			journal_reader_close(f->r);
			f->r = NULL;
			return rc;
		}
	}
	return 1;
}

uint64_t follower_position(const follower *f) { return f->next_seq - 1; }

const char *follower_error(const follower *f) { return f->err; }

void follower_close(follower *f)
{
	if (!f)
		return;
	journal_reader_close(f->r);
	free(f);
}
