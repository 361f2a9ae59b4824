/*
 * replica.c — an engine following a shard's durable journal (replica.h).
 */
#include "replica.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "shard/apply.h"

struct replica {
	follower *f;
	engine *e;
	uint64_t seq;
	int64_t seq_ts_ms;
	char err[REPLAY_ERR_LEN]; /* the sink's reason for stopping */
};

int replica_open(shard *s, engine *e, uint64_t seq, int64_t seq_ts_ms, replica **out, char *err, size_t errlen)
{
	assert(s && e && out && err && errlen > 0);
	*out = NULL;
	replica *r = calloc(1, sizeof(*r));
	if (!r) {
		engine_free(e);
		snprintf(err, errlen, "out of memory for a replica");
		return -ENOMEM;
	}
	int rc = follower_open(s, seq, &r->f, err, errlen);
	if (rc < 0) {
		engine_free(e);
		free(r);
		return rc;
	}
	r->e = e;
	r->seq = seq;
	r->seq_ts_ms = seq_ts_ms;
	*out = r;
	return 0;
}

/* The follower's sink: one record, re-executed and verified. */
static int apply_sink(void *ctx, const journal_record *rec)
{
	replica *r = ctx;
	int rc = replay_apply(r->e, rec, 1, NULL, r->err, sizeof(r->err));
	if (rc != REPLAY_OK)
		return rc == REPLAY_MISMATCH ? -EPROTO : -EBADMSG;
	r->seq = rec->seq;
	r->seq_ts_ms = rec->timestamp_ms;
	return 0;
}

int replica_catch_up(replica *r, uint64_t target, char *err, size_t errlen)
{
	assert(r && err && errlen > 0 && target >= r->seq);
	err[0] = '\0';
	/* A timeout only means the records are not durable yet: wait on (the
	 * follower fails with -ESHUTDOWN if the shard fails first). */
	int rc;
	while ((rc = follower_feed(r->f, target, apply_sink, r, 1000)) == 0) {
	}
	if (rc == 1) {
		assert(r->seq == target);
		return 0;
	}
	if (rc == -EPROTO || rc == -EBADMSG) {
		if (r->err[0]) {
			snprintf(err, errlen, "%s", r->err);
			return rc;
		}
	}
	snprintf(err, errlen, "%s", follower_error(r->f));
	return rc;
}

uint64_t replica_seq(const replica *r) { return r->seq; }

int64_t replica_seq_ts(const replica *r) { return r->seq_ts_ms; }

const engine *replica_engine(const replica *r) { return r->e; }

void replica_close(replica *r)
{
	if (!r)
		return;
	follower_close(r->f);
	engine_free(r->e);
	free(r);
}
