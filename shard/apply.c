/*
 * apply.c — re-executing journal records (see apply.h).
 */
#include "apply.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/codec.h"

void replay_result_str(const bo_result *r, char *buf, size_t len)
{
	if (r->status == BO_OK)
		snprintf(buf, len, "%s ok claim=%#" PRIx64 " seats=%u qty=%u expires=%" PRId64, bo_op_str(r->op),
			 r->claim_id, r->seat_count, r->quantity, r->expires_at_ms);
	else
		snprintf(buf, len, "%s %s/%s", bo_op_str(r->op), bo_status_str(r->status),
			 bo_detail_str(r->detail));
}

int replay_stage(const engine *e, const journal_record *rec, replay_staged *st)
{
	assert(e && rec && st);
	st->rec = *rec;
	st->rec.payload = NULL;
	st->file[0] = '\0';
	if (rec->file) {
		size_t n = strlen(rec->file);
		if (n >= sizeof(st->file))
			n = sizeof(st->file) - 1;
		memcpy(st->file, rec->file, n);
		st->file[n] = '\0';
		st->rec.file = st->file;
	}
	st->map = NULL;
	if (entry_decode(rec->payload, rec->payload_len, &st->en, &st->map) != 0) {
		snprintf(st->err, sizeof(st->err),
			 "record %" PRIu64 " (%s offset %" PRIu64 "): payload of %u bytes does not decode", rec->seq,
			 rec->file ? rec->file : "?", rec->offset, rec->payload_len);
		st->rc = REPLAY_MALFORMED;
		return st->rc;
	}
	/* Start every cold line the command touches (its idempotency bucket,
	 * client slot, claim, seat) now: a caller one record ahead overlaps
	 * them with the previous record's work, and even replay_apply() gets
	 * them in flight together instead of missing one after the other. */
	if (st->en.kind == ENTRY_COMMAND)
		engine_prefetch(e, &st->en.cmd);
	st->rc = REPLAY_OK;
	return st->rc;
}

void replay_staged_drop(replay_staged *st)
{
	bo_seatmap_free(st->map);
	st->map = NULL;
	st->en.cmd.map = NULL;
}

int replay_apply_staged(engine *e, replay_staged *st, int verify, entry *out, char *err, size_t errlen)
{
	assert(e && st && st->rc == REPLAY_OK);
	const journal_record *rec = &st->rec;
	int rc = REPLAY_OK;
	/* An EPOCH record marks a term and nothing else: not even the clock
	 * moves (the primary journaled it without advancing its engine). */
	if (st->en.kind != ENTRY_EPOCH)
		engine_advance(e, rec->timestamp_ms, NULL, NULL);
	if (st->en.kind == ENTRY_COMMAND) {
		bo_result got;
		engine_apply(e, &st->en.cmd, &got);
		if (verify && !codec_result_equal(&got, &st->en.res)) {
			char want_s[160], got_s[160];
			replay_result_str(&st->en.res, want_s, sizeof(want_s));
			replay_result_str(&got, got_s, sizeof(got_s));
			snprintf(err, errlen,
				 "record %" PRIu64 " (%s offset %" PRIu64 "): re-execution differs: journal says [%s], engine "
				 "gives [%s]",
				 rec->seq, rec->file ? rec->file : "?", rec->offset, want_s, got_s);
			rc = REPLAY_MISMATCH;
		}
	}
	replay_staged_drop(st);
	if (out)
		*out = st->en;
	return rc;
}

int replay_apply(engine *e, const journal_record *rec, int verify, entry *out, char *err, size_t errlen)
{
	assert(e && rec);
	replay_staged st;
	if (replay_stage(e, rec, &st) != REPLAY_OK) {
		replay_staged_drop(&st);
		snprintf(err, errlen, "%s", st.err);
		return REPLAY_MALFORMED;
	}
	return replay_apply_staged(e, &st, verify, out, err, errlen);
}
