/*
 * replay_read.c — plain journal reads for dump and stats (see replay_read.h).
 */
#include "replay_read.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int replay_read_open(const replay_opts *o, const replay_shard_dir *d, uint64_t after,
                     journal_reader **rd)
{
	uint64_t first_seg = d->seg_count ? d->segs[0].first_seq : 1;
	if (first_seg > 1 && after < first_seg - 1)
		after = first_seg - 1;
	char err[JOURNAL_ERR_LEN];
	int rc = journal_reader_open_from(o->dir, d->shard, NULL, after, rd, err, sizeof err);
	if (rc < 0)
		replay_err("%s", err);
	return rc;
}

int replay_read_end(const replay_opts *o, const journal_reader *rd, int rc, uint32_t shard,
                    uint64_t *torn_bytes)
{
	if (rc < 0) {
		const char *msg = journal_reader_error(rd);
		replay_err("shard %" PRIu32 ": %s", shard, msg[0] ? msg : strerror(-rc));
		return rc == -EBADMSG ? REPLAY_EXIT_FAILED : REPLAY_EXIT_IO;
	}
	journal_recovery jr;
	journal_reader_recovery(rd, &jr);
	if (torn_bytes)
		*torn_bytes = jr.bytes_cut;
	if (jr.bytes_cut == 0 && jr.records_cut == 0)
		return REPLAY_EXIT_OK;
	if (o->allow_torn_tail) {
		replay_err("shard %" PRIu32 ": warning: %s", shard, jr.note);
		return REPLAY_EXIT_OK;
	}
	replay_err("shard %" PRIu32 ": torn_tail: %s (everything before it was read; "
	           "--allow-torn-tail accepts it)",
	           shard, jr.note);
	return REPLAY_EXIT_FAILED;
}
