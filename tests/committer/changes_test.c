/*
 * changes_test.c — unit tests of the committer's translation (changes.h)
 * and of the payref text form (pgstore.h), no database needed:
 *
 *  1. Records out of sequence, of another shard, malformed, or
 *     contradicting the holds known (a release of a hold never made) are
 *     errors (-EBADMSG) with a message naming the record, never guessed.
 *  2. A hold and its release in one batch collapse into one hold row (new,
 *     released) and one seat row per seat (free again), with two
 *     seat_changes rows per seat and two outbox events.
 *  3. Holds expire at the first record whose time reaches their expiry
 *     (expires_at <= time, as the engine does), in (expiry, claim id)
 *     order, attributed to that record.
 *  4. The payref text form escapes every byte that is not printable ASCII,
 *     and the backslash, as \xHH.
 *  5. An EPOCH record (a new primary's first, issue 13) takes its place in
 *     the batch (sequence, count) and changes nothing: no row, and no
 *     expiry even at a time past a hold's end (the engine does not move
 *     its clock for it either); the next record at that time expires it.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "committer/changes.h"
#include "committer/pgstore.h"
#include "shard/entry.h"
#include "tests/support/cmd.h"

static uint8_t payload[4096];

/* A command record with its result. */
static journal_record rec_of(uint64_t seq, int64_t ts, const bo_cmd *c, const bo_result *r)
{
	int32_t n = entry_encode_command(c, r, payload, sizeof(payload));
	cr_assert_gt(n, 0);
	return (journal_record){.seq = seq, .timestamp_ms = ts, .payload = payload, .payload_len = (uint32_t)n};
}

static bo_result ok_hold(uint64_t claim, uint32_t seat0, uint32_t n, int64_t expires)
{
	bo_result r;
	memset(&r, 0, sizeof(r));
	r.op = BO_OP_HOLD_SEATS;
	r.status = BO_OK;
	r.client_id = 7;
	r.request_id = claim;
	r.event_id = 1;
	r.claim_id = claim;
	r.expires_at_ms = expires;
	r.seat_count = (uint8_t)n;
	r.quantity = n;
	for (uint32_t i = 0; i < n; i++)
		r.seats[i] = seat0 + i;
	return r;
}

Test(changes, contradictions_are_errors)
{
	chg_state *st;
	cr_assert_eq(chg_new(0, &st), 0);
	chg_position(st, 10, 0);
	char err[256];
	bo_cmd c = tcmd(BO_OP_RELEASE, 7, 1, 1);
	c.claim_id = 99;
	bo_result r = ok_hold(99, 0, 1, 0);
	r.op = BO_OP_RELEASE;
	journal_record rec = rec_of(12, 1000, &c, &r);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "record 12 follows 10"), "%s", err);
	rec.seq = 11;
	rec.shard_id = 3;
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "shard 3"), "%s", err);
	rec.shard_id = 0;
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "release of hold 99 of event 1, which is not active"), "%s", err);
	chg_free(st);

	cr_assert_eq(chg_new(0, &st), 0);
	uint8_t junk[3] = {ENTRY_COMMAND, 0xff, 0xff};
	journal_record bad = {.seq = 1, .timestamp_ms = 1, .payload = junk, .payload_len = 3};
	cr_assert_eq(chg_record(st, &bad, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "record 1 does not decode"), "%s", err);
	chg_free(st);
}

Test(changes, hold_and_release_in_one_batch_collapse)
{
	chg_state *st;
	cr_assert_eq(chg_new(0, &st), 0);
	char err[256];
	uint32_t seats[2] = {4, 5};
	bo_cmd h = tcmd_hold_seats(7, 1, 1, seats, 2, 5000);
	bo_result hr = ok_hold(42, 4, 2, 6000);
	journal_record rec = rec_of(1, 1000, &h, &hr);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), 0, "%s", err);
	bo_cmd rl = tcmd(BO_OP_RELEASE, 7, 2, 1);
	rl.claim_id = 42;
	bo_result rr = hr;
	rr.op = BO_OP_RELEASE;
	rr.request_id = 2;
	rr.expires_at_ms = 0;
	rec = rec_of(2, 1100, &rl, &rr);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), 0, "%s", err);
	const chg_batch *b = chg_get_batch(st);
	cr_assert_eq(b->holds.n, 1);
	cr_assert(b->holds.v[0].is_new);
	cr_assert_eq(b->holds.v[0].state, CHG_H_RELEASED);
	cr_assert_eq(b->holds.v[0].ended_seq, 2);
	cr_assert_eq(b->seats.n, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(b->seats.v[i].state, BO_SEAT_FREE);
		cr_assert_eq(b->seats.v[i].claim_id, 0);
	}
	cr_assert_eq(b->changes.n, 4);
	cr_assert_eq(b->changes.v[2].cause, CHG_RELEASE);
	cr_assert_eq(b->changes.v[2].request_id, 2);
	cr_assert_eq(b->outbox.n, 2);
	cr_assert_eq(b->outbox.v[1].position, 2);
	cr_assert_eq(chg_active_holds(st), 0);
	chg_free(st);
}

Test(changes, expiry_at_the_first_record_reaching_it)
{
	chg_state *st;
	cr_assert_eq(chg_new(0, &st), 0);
	char err[256];
	uint32_t s1 = 1, s2 = 2;
	bo_cmd h = tcmd_hold_seats(7, 1, 1, &s1, 1, 5000);
	bo_result r1 = ok_hold(9, 1, 1, 6000), r2 = ok_hold(8, 2, 1, 6000);
	journal_record rec = rec_of(1, 1000, &h, &r1);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), 0, "%s", err);
	h = tcmd_hold_seats(7, 2, 1, &s2, 1, 5000);
	rec = rec_of(2, 1000, &h, &r2);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), 0, "%s", err);
	chg_batch_clear(st);
	uint8_t tick[1];
	cr_assert_eq(entry_encode_tick(tick, 1), 1);
	journal_record t = {.seq = 3, .timestamp_ms = 5999, .payload = tick, .payload_len = 1};
	cr_assert_eq(chg_record(st, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(chg_get_batch(st)->changes.n, 0, "expired before its time");
	t.seq = 4;
	t.timestamp_ms = 6000;
	cr_assert_eq(chg_record(st, &t, err, sizeof(err)), 0, "%s", err);
	const chg_batch *b = chg_get_batch(st);
	cr_assert_eq(b->changes.n, 2);
	cr_assert_eq(b->changes.v[0].claim_id, 8, "claim 8 expires first (same time, smaller id)");
	cr_assert_eq(b->changes.v[1].claim_id, 9);
	cr_assert_eq(b->changes.v[0].seq, 4);
	cr_assert_eq(b->changes.v[0].cause, CHG_EXPIRY);
	cr_assert_eq(b->holds.n, 2);
	cr_assert_eq(b->holds.v[0].is_new, 0);
	cr_assert_eq(b->holds.v[0].state, CHG_H_EXPIRED);
	cr_assert_eq(chg_active_holds(st), 0);
	chg_free(st);
}

Test(changes, epoch_record_changes_nothing)
{
	chg_state *st;
	cr_assert_eq(chg_new(0, &st), 0);
	char err[256];
	uint32_t s1 = 3;
	bo_cmd h = tcmd_hold_seats(7, 1, 1, &s1, 1, 5000);
	bo_result r = ok_hold(5, 3, 1, 6000);
	journal_record rec = rec_of(1, 1000, &h, &r);
	cr_assert_eq(chg_record(st, &rec, err, sizeof(err)), 0, "%s", err);
	chg_batch_clear(st);
	uint8_t ep[ENTRY_EPOCH_BYTES];
	cr_assert_eq(entry_encode_epoch(2, ep, sizeof(ep)), (int32_t)ENTRY_EPOCH_BYTES);
	journal_record e = {.seq = 2, .timestamp_ms = 7000, .payload = ep, .payload_len = ENTRY_EPOCH_BYTES};
	cr_assert_eq(chg_record(st, &e, err, sizeof(err)), 0, "%s", err);
	const chg_batch *b = chg_get_batch(st);
	cr_assert_eq(b->first_seq, 2);
	cr_assert_eq(b->last_seq, 2);
	cr_assert_eq(b->records, 1);
	cr_assert_eq(b->changes.n + b->holds.n + b->seats.n + b->outbox.n + b->events.n, 0, "an EPOCH record made rows");
	cr_assert_eq(chg_active_holds(st), 1, "the EPOCH record's time expired a hold");
	uint8_t tick[1];
	cr_assert_eq(entry_encode_tick(tick, 1), 1);
	journal_record t = {.seq = 3, .timestamp_ms = 7000, .payload = tick, .payload_len = 1};
	cr_assert_eq(chg_record(st, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(b->changes.n, 1);
	cr_assert_eq(b->changes.v[0].cause, CHG_EXPIRY);
	cr_assert_eq(b->changes.v[0].seq, 3);
	cr_assert_eq(b->records, 2);
	chg_free(st);
}

Test(changes, payref_text)
{
	char out[4 * BO_PAYREF_LEN_MAX + 1];
	pgs_payref_text("psp_123", 7, out);
	cr_assert_str_eq(out, "psp_123");
	pgs_payref_text("a\\b\xc3\xa9\n", 6, out);
	cr_assert_str_eq(out, "a\\x5cb\\xc3\\xa9\\x0a");
	pgs_payref_text("\0x", 2, out);
	cr_assert_str_eq(out, "\\x00x");
}
