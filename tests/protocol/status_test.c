/*
 * status_test.c — proves the admin half of the wire codec (protocol/status.c):
 * the server_status request and its reply, as schemas/protocol.md section 11
 * describes them.
 *
 * How:
 *  - The request: the encoder writes the 18 bytes of the doc; the admin
 *    decoder recognises them (and "client"/"request" beside them), refuses
 *    other keys and repeated keys with a message, and leaves everything
 *    else to the command decoder (an engine op, an admin op inside an
 *    array, a message over WIRE_ADMIN_MSG_MAX, garbage) — which still
 *    answers "server_status" in an array as bad_op.
 *  - event_state: the encoder's bytes are recognised with their event id;
 *    "event" is required, a uint64 other than 0, once; "client"/"request"
 *    are ignored; other keys are refused naming the op; an id is only
 *    reported for an accepted request; inside an array it is bad_op.
 *  - The reply: a full status (64 shards, every state, every field at
 *    its extremes, reasons with quotes) survives encode/decode; the encoder
 *    refuses what it must not write; a refusal map (busy) decodes as that
 *    status with its text; unknown keys are skipped at every level.
 *  - Hostile replies: a table of malformed ones (missing, repeated and
 *    mistyped keys, unknown state, 65 shards, shards out of order, empty
 *    shards, huge declared counts) and every truncation of a valid reply
 *    are -EINVAL with a message, read from exact-size heap copies (ASan
 *    sees any over-read); an over-long reason is truncated, not overflowed.
 *  - cluster_status and switchover (issue 13): the requests are recognised
 *    with their arguments and "epoch", refusals name the key; a full
 *    cluster_status reply (64 shards, every role, known and unknown
 *    primaries, in_sync and standbys at their bounds) survives
 *    encode/decode; the encoder refuses what it must not write; malformed
 *    replies and every truncation are -EINVAL with a message; a
 *    not_primary refusal decodes as its status; status-only replies
 *    (switchover's) carry their text and, for not_primary, the primary.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "protocol/projection.h"
#include "protocol/wire.h"

/* ---- Helpers ------------------------------------------------------------- */

static wire_server_status st_in, st_out; /* ~20 KiB each */

/* Decoders read from an exact-size heap copy. Only an accepted
 * event_state yields an event id. */
static int admin_ev(const void *buf, size_t len, uint64_t *event_id, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	*event_id = 12345;
	int rc = wire_decode_admin(copy, len, event_id, m);
	free(copy);
	if (rc != WIRE_ADMIN_EVENT_STATE)
		cr_assert_eq(*event_id, 0, "no event_state: no event id");
	return rc;
}

static int admin(const void *buf, size_t len, wire_msg *m)
{
	uint64_t event_id;
	return admin_ev(buf, len, &event_id, m);
}

static int status_decode(const void *buf, size_t len, int *status, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	int rc = wire_decode_server_status(copy, len, &st_out, status, m);
	free(copy);
	return rc;
}

static void pk_s(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void fill_status(wire_server_status *st, uint32_t n)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->version, sizeof(st->version), "9.8.7-test");
	st->shard_count = n;
	for (uint32_t k = 0; k < n; k++) {
		wire_shard_status *s = &st->shards[k];
		s->shard = k;
		s->durable_seq = k == 0 ? UINT64_MAX : k * 1000 + 7;
		s->batches = k * 3;
		wire_committer_status *c = &s->committer;
		c->state = (uint8_t)(k % WIRE_COMMITTER_STATE_COUNT);
		c->applied_seq = k * 1000;
		c->lag_records = 7;
		c->lag_ms = k * 11;
		c->batches = k + 1;
		c->changes = (uint64_t)k << 40;
		c->outbox = k * 5;
		c->retries = k % 3;
		if (c->state != WIRE_COMMITTER_RUNNING)
			snprintf(c->reason, sizeof(c->reason),
			         "shard %u: \"quoted\" reason\nline two", k);
	}
	/* One reason at the full length the wire allows. */
	memset(st->shards[1].committer.reason, 'r', WIRE_REASON_LEN_MAX - 1);
	st->shards[1].committer.reason[WIRE_REASON_LEN_MAX - 1] = '\0';
}

/* ---- The request --------------------------------------------------------- */

Test(wire_status, request_bytes_are_the_doc_example)
{
	static const uint8_t doc[] = {0x81, 0xa2, 'o', 'p', 0xad, 's', 'e', 'r', 'v',
	                              'e',  'r',  '_', 's', 't',  'a', 't', 'u', 's'};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_server_status_request(&sb), 0);
	cr_assert_eq(sb.size, sizeof(doc));
	cr_assert(memcmp(sb.data, doc, sizeof(doc)) == 0);
	wire_msg m;
	cr_assert_eq(admin(doc, sizeof(doc), &m), WIRE_ADMIN_SERVER_STATUS);
	cr_assert_eq(m.error[0], '\0');
	msgpack_sbuffer_destroy(&sb);
}

/* Packs {"op": "server_status", then `extra` more pairs written by fn}. */
static int admin_with(void (*fn)(msgpack_packer *), uint32_t extra, wire_msg *m)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1 + extra);
	if (fn)
		fn(&pk); /* keys before "op" too: order does not matter */
	pk_s(&pk, "op");
	pk_s(&pk, "server_status");
	int rc = admin(sb.data, sb.size, m);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void ids(msgpack_packer *pk)
{
	pk_s(pk, "client");
	msgpack_pack_uint64(pk, UINT64_MAX);
	pk_s(pk, "request");
	msgpack_pack_uint64(pk, 1);
}
static void colour(msgpack_packer *pk)
{
	pk_s(pk, "colour");
	pk_s(pk, "red");
}
static void event(msgpack_packer *pk)
{
	pk_s(pk, "event");
	msgpack_pack_uint64(pk, 1);
}
static void two_clients(msgpack_packer *pk)
{
	pk_s(pk, "client");
	msgpack_pack_uint64(pk, 1);
	pk_s(pk, "client");
	msgpack_pack_uint64(pk, 2);
}
static void negative_request(msgpack_packer *pk)
{
	pk_s(pk, "request");
	msgpack_pack_int64(pk, -1);
}

Test(wire_status, admin_request_keys)
{
	wire_msg m;
	cr_assert_eq(admin_with(ids, 2, &m), WIRE_ADMIN_SERVER_STATUS,
	             "client and request are ignored");
	cr_assert_eq(admin_with(colour, 1, &m), -EINVAL);
	cr_assert_str_eq(m.error, "key 'colour' does not apply to op 'server_status'");
	cr_assert_eq(admin_with(event, 1, &m), -EINVAL);
	cr_assert_str_eq(m.error, "key 'event' does not apply to op 'server_status'");
	cr_assert_eq(admin_with(two_clients, 2, &m), -EINVAL);
	cr_assert_str_eq(m.error, "key 'client' given twice");
	cr_assert_eq(admin_with(negative_request, 1, &m), -EINVAL);
	cr_assert(strstr(m.error, "'request' must not be negative"), "%s", m.error);
}

Test(wire_status, everything_else_is_left_to_the_command_decoder)
{
	wire_msg m;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* An engine command. */
	bo_cmd c = {.op = BO_OP_QUERY_AVAIL, .event_id = 5};
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), 0);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);

	/* The admin op inside an array: a command with an unknown op. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_array(&pk, 1);
	cr_assert_eq(wire_encode_server_status_request(&sb), 0);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);
	static bo_cmd cmds[4];
	static wire_cmd_error errs[4];
	cr_assert_eq(wire_decode_request((const uint8_t *)sb.data, sb.size, cmds, errs, 4, &m), 0);
	cr_assert_eq(m.count, 1);
	cr_assert_eq(errs[0].status, BO_INVALID);
	cr_assert_eq(errs[0].detail, BO_D_BAD_OP);

	/* "op" that is not a string, no "op", a non-string key. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 1);
	pk_s(&pk, "op");
	msgpack_pack_uint8(&pk, 1);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 0);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_uint8(&pk, 1);
	pk_s(&pk, "server_status");
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);

	/* Over WIRE_ADMIN_MSG_MAX bytes: not looked at. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	pk_s(&pk, "op");
	pk_s(&pk, "server_status");
	pk_s(&pk, "client");
	char pad[WIRE_ADMIN_MSG_MAX];
	memset(pad, 'x', sizeof(pad));
	msgpack_pack_str_with_body(&pk, pad, sizeof(pad));
	cr_assert_gt(sb.size, WIRE_ADMIN_MSG_MAX);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);

	/* Not msgpack, trailing bytes, truncated, empty. */
	static const uint8_t junk[] = {0x81, 0xa2, 'o', 'p', 0xad, 's', 'e'};
	cr_assert_eq(admin(junk, sizeof(junk), &m), WIRE_ADMIN_NONE);
	static const uint8_t bad[] = {0xc1};
	cr_assert_eq(admin(bad, sizeof(bad), &m), WIRE_ADMIN_NONE);
	cr_assert_eq(admin(bad, 0, &m), WIRE_ADMIN_NONE);
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(wire_encode_server_status_request(&sb), 0);
	msgpack_pack_nil(&pk);
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- event_state ------------------------------------------------------- */

/* Packs {"op": "event_state", then `extra` more pairs written by fn}. */
static int event_state_with(void (*fn)(msgpack_packer *), uint32_t extra, uint64_t *ev, wire_msg *m)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1 + extra);
	pk_s(&pk, "op");
	pk_s(&pk, "event_state");
	if (fn)
		fn(&pk);
	int rc = admin_ev(sb.data, sb.size, ev, m);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void event_max(msgpack_packer *pk)
{
	pk_s(pk, "event");
	msgpack_pack_uint64(pk, UINT64_MAX);
}
static void event_and_ids(msgpack_packer *pk)
{
	ids(pk);
	event(pk);
}
static void event_zero(msgpack_packer *pk)
{
	pk_s(pk, "event");
	msgpack_pack_uint64(pk, 0);
}
static void event_negative(msgpack_packer *pk)
{
	pk_s(pk, "event");
	msgpack_pack_int64(pk, -7);
}
static void event_string(msgpack_packer *pk)
{
	pk_s(pk, "event");
	pk_s(pk, "42");
}
static void event_twice(msgpack_packer *pk)
{
	event(pk);
	event(pk);
}
static void event_and_colour(msgpack_packer *pk)
{
	event(pk);
	colour(pk);
}
static void event_and_seats(msgpack_packer *pk)
{
	event(pk);
	pk_s(pk, "seats");
	msgpack_pack_array(pk, 0);
}

Test(wire_status, event_state_request)
{
	/* The client encoder's bytes: {"op": "event_state", "event": 42}. */
	static const uint8_t doc[] = {0x82, 0xa2, 'o', 'p', 0xab, 'e', 'v', 'e', 'n', 't', '_', 's',
	                              't',  'a',  't', 'e', 0xa5, 'e', 'v', 'e', 'n', 't', 0x2a};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_event_state_request(42, &sb), 0);
	cr_assert_eq(sb.size, sizeof(doc));
	cr_assert(memcmp(sb.data, doc, sizeof(doc)) == 0);
	msgpack_sbuffer_destroy(&sb);
	wire_msg m;
	uint64_t ev;
	cr_assert_eq(admin_ev(doc, sizeof(doc), &ev, &m), WIRE_ADMIN_EVENT_STATE);
	cr_assert_eq(ev, 42);
	cr_assert_eq(m.count, 1);
	cr_assert_eq(m.error[0], '\0');

	cr_assert_eq(event_state_with(event_max, 1, &ev, &m), WIRE_ADMIN_EVENT_STATE);
	cr_assert_eq(ev, UINT64_MAX);
	cr_assert_eq(event_state_with(event_and_ids, 3, &ev, &m), WIRE_ADMIN_EVENT_STATE,
	             "client and request are ignored");
	cr_assert_eq(ev, 1);
}

Test(wire_status, event_state_request_refusals)
{
	static const struct {
		void (*fn)(msgpack_packer *);
		uint32_t extra;
		const char *error;
	} cases[] = {
	        {NULL, 0, "missing key 'event'"},
	        {ids, 2, "missing key 'event'"},
	        {event_zero, 1, "'event' must not be 0"},
	        {event_negative, 1, "'event' must not be negative (got -7)"},
	        {event_string, 1, "'event' must be an unsigned integer, not a string"},
	        {event_twice, 2, "key 'event' given twice"},
	        {event_and_colour, 2, "key 'colour' does not apply to op 'event_state'"},
	        {event_and_seats, 2, "key 'seats' does not apply to op 'event_state'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wire_msg m;
		uint64_t ev;
		cr_assert_eq(event_state_with(cases[i].fn, cases[i].extra, &ev, &m), -EINVAL,
		             "case %zu", i);
		cr_assert_str_eq(m.error, cases[i].error, "case %zu", i);
		cr_assert_eq(ev, 0, "case %zu: no id from a refused request", i);
	}

	/* Inside an array it is a command with an unknown op. */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	cr_assert_eq(wire_encode_event_state_request(42, &sb), 0);
	wire_msg m;
	cr_assert_eq(admin(sb.data, sb.size, &m), WIRE_ADMIN_NONE);
	static bo_cmd cmds[1];
	static wire_cmd_error errs[1];
	cr_assert_eq(wire_decode_request((const uint8_t *)sb.data, sb.size, cmds, errs, 1, &m), 0);
	cr_assert_eq(errs[0].status, BO_INVALID);
	cr_assert_eq(errs[0].detail, BO_D_BAD_OP);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- The reply ----------------------------------------------------------- */

Test(wire_status, reply_roundtrip)
{
	for (uint32_t n = 1; n <= WIRE_STATUS_SHARDS_MAX; n += n < 4 ? 1 : 20) {
		fill_status(&st_in, n < 2 ? 2 : n);
		st_in.shard_count = n;
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		cr_assert_eq(wire_encode_server_status(&st_in, &sb), 0);
		int status = -1;
		wire_msg m;
		cr_assert_eq(status_decode(sb.data, sb.size, &status, &m), 0, "%u shards: %s", n,
		             m.error);
		cr_assert_eq(status, BO_OK);
		cr_assert_str_eq(st_out.version, st_in.version);
		cr_assert_eq(st_out.shard_count, n);
		for (uint32_t k = 0; k < n; k++) {
			const wire_shard_status *a = &st_in.shards[k], *b = &st_out.shards[k];
			cr_assert_eq(a->shard, b->shard);
			cr_assert_eq(a->durable_seq, b->durable_seq);
			cr_assert_eq(a->batches, b->batches);
			const wire_committer_status *x = &a->committer, *y = &b->committer;
			cr_assert_eq(x->state, y->state);
			cr_assert_eq(x->applied_seq, y->applied_seq);
			cr_assert_eq(x->lag_records, y->lag_records);
			cr_assert_eq(x->lag_ms, y->lag_ms);
			cr_assert_eq(x->batches, y->batches);
			cr_assert_eq(x->changes, y->changes);
			cr_assert_eq(x->outbox, y->outbox);
			cr_assert_eq(x->retries, y->retries);
			cr_assert_str_eq(x->reason, y->reason);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}

Test(wire_status, state_names)
{
	static const char *const want[] = {"off", "starting", "running", "retrying", "stopped"};
	for (int s = 0; s < WIRE_COMMITTER_STATE_COUNT; s++)
		cr_assert_str_eq(wire_committer_state_name(s), want[s]);
	cr_assert_null(wire_committer_state_name(-1));
	cr_assert_null(wire_committer_state_name(WIRE_COMMITTER_STATE_COUNT));
}

Test(wire_status, encoder_refuses_what_it_must_not_write)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_nil(&pk); /* the buffer must stay as it was */
	size_t before = sb.size;
	fill_status(&st_in, 3);
	st_in.shard_count = 0;
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	st_in.shard_count = WIRE_STATUS_SHARDS_MAX + 1;
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	fill_status(&st_in, 3);
	st_in.shards[2].shard = 1;
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	fill_status(&st_in, 3);
	st_in.shards[0].committer.state = WIRE_COMMITTER_STATE_COUNT;
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	fill_status(&st_in, 3);
	memset(st_in.shards[0].committer.reason, 'x', WIRE_REASON_LEN_MAX);
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	fill_status(&st_in, 3);
	memset(st_in.version, 'v', WIRE_SERVER_VERSION_LEN_MAX);
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), -EINVAL);
	cr_assert_eq(sb.size, before);
	msgpack_sbuffer_destroy(&sb);
}

Test(wire_status, refusals_decode_as_their_status)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_error(BO_BUSY, "server stopping, retry later", &sb), 0);
	int status = -1;
	wire_msg m;
	cr_assert_eq(status_decode(sb.data, sb.size, &status, &m), 0, "%s", m.error);
	cr_assert_eq(status, BO_BUSY);
	cr_assert_str_eq(m.error, "server stopping, retry later");
	cr_assert_eq(st_out.shard_count, 0);

	/* What an old server answers: a command reply for an unknown op. */
	wire_cmd_error e = {.status = BO_INVALID, .detail = BO_D_BAD_OP};
	snprintf(e.text, sizeof(e.text), "unknown op 'server_status'");
	bo_result r = {0};
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(wire_encode_replies(&r, &e, 1, 0, &sb), 0);
	cr_assert_eq(status_decode(sb.data, sb.size, &status, &m), 0, "%s", m.error);
	cr_assert_eq(status, BO_INVALID);
	cr_assert_str_eq(m.error, "unknown op 'server_status'");
	msgpack_sbuffer_destroy(&sb);
}

/* ---- Hostile replies ----------------------------------------------------- */

/* Fault injected while packing a reply (see pk_reply). */
enum fault {
	F_NONE,
	F_NOT_MAP,
	F_NO_STATUS,
	F_STATUS_UNKNOWN,
	F_STATUS_TWICE,
	F_NO_VERSION,
	F_VERSION_INT,
	F_NO_SHARDS,
	F_SHARDS_EMPTY,
	F_SHARDS_65,
	F_SHARDS_HUGE_COUNT,
	F_SHARDS_NOT_ARRAY,
	F_SHARD_OUT_OF_ORDER,
	F_SHARD_NEGATIVE,
	F_SHARD_NO_COMMITTER,
	F_SHARD_SEQ_FLOAT,
	F_COMMITTER_NOT_MAP,
	F_STATE_UNKNOWN,
	F_STATE_INT,
	F_NO_REASON,
	F_REASON_TWICE,
	F_LAG_STRING,
	F_KEY_NOT_STRING,
	F_UNKNOWN_KEYS, /* valid: skipped at every level */
	F_LONG_REASON,  /* valid: truncated */
	F_COUNT
};

static void pk_committer(msgpack_packer *pk, int f)
{
	if (f == F_COMMITTER_NOT_MAP) {
		msgpack_pack_array(pk, 0);
		return;
	}
	uint32_t pairs = 9 + (f == F_UNKNOWN_KEYS) + (f == F_REASON_TWICE) - (f == F_NO_REASON);
	msgpack_pack_map(pk, pairs);
	pk_s(pk, "state");
	if (f == F_STATE_INT)
		msgpack_pack_uint8(pk, 2);
	else
		pk_s(pk, f == F_STATE_UNKNOWN ? "sleeping" : "retrying");
	static const char *const nums[] = {"applied_seq", "lag_records", "lag_ms", "batches",
	                                   "changes",     "outbox",      "retries"};
	for (int i = 0; i < 7; i++) {
		pk_s(pk, nums[i]);
		if (f == F_LAG_STRING && i == 2)
			pk_s(pk, "12");
		else
			msgpack_pack_uint64(pk, (uint64_t)i + 1);
	}
	if (f == F_UNKNOWN_KEYS) {
		pk_s(pk, "future");
		msgpack_pack_map(pk, 1);
		pk_s(pk, "x");
		msgpack_pack_array(pk, 0);
	}
	if (f != F_NO_REASON) {
		pk_s(pk, "reason");
		if (f == F_LONG_REASON) {
			char big[3 * WIRE_REASON_LEN_MAX];
			memset(big, 'L', sizeof(big));
			msgpack_pack_str_with_body(pk, big, sizeof(big));
		} else {
			pk_s(pk, "database down");
		}
	}
	if (f == F_REASON_TWICE) {
		pk_s(pk, "reason");
		pk_s(pk, "again");
	}
}

static void pk_shard(msgpack_packer *pk, uint32_t k, int f)
{
	uint32_t pairs = 4 + (f == F_UNKNOWN_KEYS) - (f == F_SHARD_NO_COMMITTER);
	msgpack_pack_map(pk, pairs);
	pk_s(pk, "shard");
	if (f == F_SHARD_NEGATIVE && k == 1)
		msgpack_pack_int8(pk, -1);
	else
		msgpack_pack_uint32(pk, f == F_SHARD_OUT_OF_ORDER && k == 1 ? 0 : k);
	pk_s(pk, "durable_seq");
	if (f == F_SHARD_SEQ_FLOAT)
		msgpack_pack_double(pk, 1.0);
	else
		msgpack_pack_uint64(pk, 100 + k);
	pk_s(pk, "batches");
	msgpack_pack_uint64(pk, k);
	if (f == F_UNKNOWN_KEYS) {
		pk_s(pk, "cpu");
		msgpack_pack_double(pk, 0.5);
	}
	if (f != F_SHARD_NO_COMMITTER) {
		pk_s(pk, "committer");
		pk_committer(pk, f);
	}
}

static void pk_shards(msgpack_packer *pk, int f)
{
	if (f == F_SHARDS_NOT_ARRAY) {
		msgpack_pack_map(pk, 0);
		return;
	}
	if (f == F_SHARDS_HUGE_COUNT) {
		/* An array32 header claiming 2^32-1 entries, and nothing after. */
		static const char hdr[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff,
		                           (char)0xff};
		msgpack_sbuffer_write(pk->data, hdr, sizeof(hdr));
		return;
	}
	uint32_t n = f == F_SHARDS_EMPTY ? 0 : f == F_SHARDS_65 ? WIRE_STATUS_SHARDS_MAX + 1 : 2;
	msgpack_pack_array(pk, n);
	for (uint32_t k = 0; k < n; k++)
		pk_shard(pk, k, f);
}

static void pk_reply(msgpack_sbuffer *sb, int f)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (f == F_NOT_MAP) {
		msgpack_pack_array(&pk, 0);
		return;
	}
	uint32_t pairs = 3 - (f == F_NO_STATUS) - (f == F_NO_VERSION) - (f == F_NO_SHARDS) +
	                 (f == F_STATUS_TWICE) + (f == F_UNKNOWN_KEYS) + (f == F_KEY_NOT_STRING);
	msgpack_pack_map(&pk, pairs);
	if (f == F_KEY_NOT_STRING) {
		msgpack_pack_uint8(&pk, 1);
		msgpack_pack_uint8(&pk, 1);
	}
	if (f == F_UNKNOWN_KEYS) {
		pk_s(&pk, "uptime_s");
		msgpack_pack_uint64(&pk, 5);
	}
	if (f != F_NO_STATUS) {
		pk_s(&pk, "status");
		pk_s(&pk, f == F_STATUS_UNKNOWN ? "fine" : "ok");
	}
	if (f == F_STATUS_TWICE) {
		pk_s(&pk, "status");
		pk_s(&pk, "ok");
	}
	if (f != F_NO_VERSION) {
		pk_s(&pk, "version");
		if (f == F_VERSION_INT)
			msgpack_pack_uint8(&pk, 1);
		else
			pk_s(&pk, "1.2.3");
	}
	if (f != F_NO_SHARDS) {
		pk_s(&pk, "shards");
		pk_shards(&pk, f);
	}
}

Test(wire_status, malformed_replies_are_rejected)
{
	/* What each fault's message must mention. */
	static const char *const why[F_COUNT] = {
	        [F_NOT_MAP] = "a server_status reply must be a map, not an array",
	        [F_NO_STATUS] = "missing key 'status'",
	        [F_STATUS_UNKNOWN] = "unknown status 'fine'",
	        [F_STATUS_TWICE] = "key 'status' given twice",
	        [F_NO_VERSION] = "needs 'version' and 'shards'",
	        [F_VERSION_INT] = "'version' must be a string",
	        [F_NO_SHARDS] = "needs 'version' and 'shards'",
	        [F_SHARDS_EMPTY] = "'shards' is empty",
	        [F_SHARDS_65] = "'shards' has 65 entries, at most 64",
	        [F_SHARDS_HUGE_COUNT] = "not msgpack",
	        [F_SHARDS_NOT_ARRAY] = "'shards' must be an array",
	        [F_SHARD_OUT_OF_ORDER] = "shards[1] describes shard 0",
	        [F_SHARD_NEGATIVE] = "'shard' must not be negative",
	        [F_SHARD_NO_COMMITTER] = "missing key 'committer'",
	        [F_SHARD_SEQ_FLOAT] = "'durable_seq' must be an unsigned integer",
	        [F_COMMITTER_NOT_MAP] = "'committer' must be a map",
	        [F_STATE_UNKNOWN] = "unknown committer state 'sleeping'",
	        [F_STATE_INT] = "'committer state' must be a string",
	        [F_NO_REASON] = "missing key 'reason'",
	        [F_REASON_TWICE] = "key 'reason' given twice",
	        [F_LAG_STRING] = "'lag_ms' must be an unsigned integer",
	        [F_KEY_NOT_STRING] = "keys of the reply must be strings",
	};
	for (int f = 0; f < F_COUNT; f++) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		pk_reply(&sb, f);
		int status = -1;
		wire_msg m;
		int rc = status_decode(sb.data, sb.size, &status, &m);
		if (f == F_NONE || f == F_UNKNOWN_KEYS || f == F_LONG_REASON) {
			cr_assert_eq(rc, 0, "fault %d: %s", f, m.error);
			cr_assert_eq(status, BO_OK);
			cr_assert_eq(st_out.shard_count, 2);
			cr_assert_str_eq(st_out.version, "1.2.3");
			cr_assert_eq(st_out.shards[1].durable_seq, 101);
			cr_assert_eq(st_out.shards[1].committer.state, WIRE_COMMITTER_RETRYING);
			cr_assert_eq(st_out.shards[1].committer.retries, 7);
			size_t rl = strlen(st_out.shards[0].committer.reason);
			cr_assert_eq(rl, f == F_LONG_REASON ? WIRE_REASON_LEN_MAX - 1
			                                    : strlen("database down"));
		} else {
			cr_assert_eq(rc, -EINVAL, "fault %d accepted", f);
			cr_assert(strstr(m.error, why[f]) != NULL, "fault %d: '%s' lacks '%s'", f,
			          m.error, why[f]);
			cr_assert_eq(st_out.shard_count, 0, "fault %d: nothing half-filled", f);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}

Test(wire_status, every_truncation_is_rejected)
{
	fill_status(&st_in, 5);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_server_status(&st_in, &sb), 0);
	for (size_t len = 0; len < sb.size; len++) {
		int status;
		wire_msg m;
		cr_assert_eq(status_decode(sb.data, len, &status, &m), -EINVAL,
		             "prefix of %zu bytes", len);
		cr_assert_neq(m.error[0], '\0');
	}
	msgpack_sbuffer_destroy(&sb);
}

/* ---- cluster_status and switchover (issue 13) ----------------------------- */

static wire_cluster_status cl_in, cl_out;

static int cluster_decode(const void *buf, size_t len, int *status, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	int rc = wire_decode_cluster_status(copy, len, &cl_out, status, m);
	free(copy);
	return rc;
}

static void fill_cluster(wire_cluster_status *st, uint32_t n)
{
	memset(st, 0, sizeof(*st));
	st->node = UINT32_MAX;
	st->shard_count = n;
	for (uint32_t k = 0; k < n; k++) {
		wire_shard_cluster *s = &st->shards[k];
		s->shard = k;
		s->epoch = k == 0 ? UINT64_MAX : k + 1;
		s->role = (uint8_t)(k % WIRE_ROLE_COUNT);
		s->primary_known = k % 5 != 3;
		s->primary = s->primary_known ? k % 3 : 0;
		s->in_sync_count = k % (WIRE_CLUSTER_STANDBYS_MAX + 2);
		for (uint32_t i = 0; i < s->in_sync_count; i++)
			s->in_sync[i] = i * 7 + k;
		s->last_seq = k * 1000 + 9;
		s->durable_seq = k * 1000 + 5;
		s->released_seq = k * 1000;
		s->standby_count = s->role == WIRE_ROLE_PRIMARY ? k % (WIRE_CLUSTER_STANDBYS_MAX + 1) : 0;
		for (uint32_t i = 0; i < s->standby_count; i++)
			s->standbys[i] = (wire_standby_status){
			        .node = i + 100, .acked_seq = k * 1000 - i, .lag_records = 9 + i};
	}
}

static void assert_cluster_equal(const wire_cluster_status *a, const wire_cluster_status *b)
{
	cr_assert_eq(a->node, b->node);
	cr_assert_eq(a->shard_count, b->shard_count);
	for (uint32_t k = 0; k < a->shard_count; k++) {
		const wire_shard_cluster *x = &a->shards[k], *y = &b->shards[k];
		cr_assert(x->shard == y->shard && x->epoch == y->epoch && x->role == y->role &&
		                  x->primary_known == y->primary_known && x->primary == y->primary &&
		                  x->in_sync_count == y->in_sync_count && x->last_seq == y->last_seq &&
		                  x->durable_seq == y->durable_seq && x->released_seq == y->released_seq &&
		                  x->standby_count == y->standby_count,
		          "shard %u", k);
		cr_assert(memcmp(x->in_sync, y->in_sync, x->in_sync_count * sizeof(uint32_t)) == 0);
		for (uint32_t i = 0; i < x->standby_count; i++)
			cr_assert(x->standbys[i].node == y->standbys[i].node &&
			          x->standbys[i].acked_seq == y->standbys[i].acked_seq &&
			          x->standbys[i].lag_records == y->standbys[i].lag_records);
	}
}

Test(wire_status, cluster_status_request_and_switchover_decode)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_cluster_status_request(&sb), 0);
	wire_msg m;
	wire_admin_args a;
	cr_assert_eq(wire_decode_admin_args((const uint8_t *)sb.data, sb.size, &a, &m),
	             WIRE_ADMIN_CLUSTER_STATUS);
	sb.size = 0;
	cr_assert_eq(wire_encode_switchover_request(7, UINT32_MAX, &sb), 0);
	cr_assert_eq(wire_decode_admin_args((const uint8_t *)sb.data, sb.size, &a, &m),
	             WIRE_ADMIN_SWITCHOVER, "%s", m.error);
	cr_assert_eq(a.shard, 7);
	cr_assert_eq(a.to, UINT32_MAX);
	cr_assert_eq(a.event_id, 0);
	uint64_t ev;
	cr_assert_eq(wire_decode_admin((const uint8_t *)sb.data, sb.size, &ev, &m), WIRE_ADMIN_NONE,
	             "the old entry point leaves the new ops to the command decoder (bad_op)");

	/* Hand-built: refusals name the key; "epoch" is taken by every admin op. */
	static const struct {
		const char *op;
		const char *keys[3];
		int64_t vals[3];
		int n;
		int want;
		const char *err;
	} cases[] = {
	        {"switchover", {"shard"}, {1}, 1, -EINVAL, "missing key 'to'"},
	        {"switchover", {"to"}, {1}, 1, -EINVAL, "missing key 'shard'"},
	        {"switchover", {"shard", "to"}, {1, (int64_t)UINT32_MAX + 1}, 2, -EINVAL, "'to' is 4294967296"},
	        {"switchover", {"shard", "to", "to"}, {1, 2, 2}, 3, -EINVAL, "key 'to' given twice"},
	        {"switchover", {"shard", "to", "event"}, {1, 2, 2}, 3, -EINVAL,
	         "key 'event' does not apply to op 'switchover'"},
	        {"cluster_status", {"shard"}, {1}, 1, -EINVAL,
	         "key 'shard' does not apply to op 'cluster_status'"},
	        {"server_status", {"to"}, {1}, 1, -EINVAL, "key 'to' does not apply to op 'server_status'"},
	        {"cluster_status", {"epoch"}, {12}, 1, WIRE_ADMIN_CLUSTER_STATUS, ""},
	        {"switchover", {"shard", "to", "epoch"}, {1, 2, -1}, 3, -EINVAL, "'epoch' must not be negative"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sb.size = 0;
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1 + (uint32_t)cases[i].n);
		pk_s(&pk, "op");
		pk_s(&pk, cases[i].op);
		for (int k = 0; k < cases[i].n; k++) {
			pk_s(&pk, cases[i].keys[k]);
			msgpack_pack_int64(&pk, cases[i].vals[k]);
		}
		int rc = wire_decode_admin_args((const uint8_t *)sb.data, sb.size, &a, &m);
		cr_assert_eq(rc, cases[i].want, "case %zu: %s", i, m.error);
		cr_assert(strstr(m.error, cases[i].err) != NULL, "case %zu: '%s' lacks '%s'", i, m.error,
		          cases[i].err);
		if (rc == WIRE_ADMIN_CLUSTER_STATUS)
			cr_assert_eq(m.epoch, 12);
	}
	msgpack_sbuffer_destroy(&sb);
}

Test(wire_status, cluster_status_reply_roundtrip)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	for (uint32_t n = 1; n <= WIRE_STATUS_SHARDS_MAX; n += 21) {
		fill_cluster(&cl_in, n == 64 ? 64 : n);
		sb.size = 0;
		cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), 0);
		int status;
		wire_msg m;
		cr_assert_eq(cluster_decode(sb.data, sb.size, &status, &m), 0, "%s", m.error);
		cr_assert_eq(status, BO_OK);
		assert_cluster_equal(&cl_in, &cl_out);
	}
	fill_cluster(&cl_in, WIRE_STATUS_SHARDS_MAX);
	sb.size = 0;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), 0);
	int status;
	wire_msg m;
	cr_assert_eq(cluster_decode(sb.data, sb.size, &status, &m), 0, "%s", m.error);
	assert_cluster_equal(&cl_in, &cl_out);

	/* Every truncation is refused with a message. */
	fill_cluster(&cl_in, 6);
	sb.size = 0;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), 0);
	for (size_t len = 0; len < sb.size; len++) {
		cr_assert_eq(cluster_decode(sb.data, len, &status, &m), -EINVAL, "prefix %zu", len);
		cr_assert_neq(m.error[0], '\0');
	}

	/* A refusal decodes as its status with its text. */
	sb.size = 0;
	wire_primary p = {.epoch = 3, .known = 1, .node = 2, .address = "tcp://h:1"};
	cr_assert_eq(wire_encode_not_primary(&p, "not here", &sb), 0);
	cr_assert_eq(cluster_decode(sb.data, sb.size, &status, &m), 0, "%s", m.error);
	cr_assert_eq(status, BO_NOT_PRIMARY);
	cr_assert_str_eq(m.error, "not here");
	cr_assert_eq(cl_out.shard_count, 0);
	msgpack_sbuffer_destroy(&sb);

	cr_assert_str_eq(wire_role_name(WIRE_ROLE_FENCED), "fenced");
	cr_assert_str_eq(wire_role_name(WIRE_ROLE_NONE), "none");
	cr_assert_null(wire_role_name(WIRE_ROLE_COUNT));
}

Test(wire_status, cluster_status_encoder_refusals)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	fill_cluster(&cl_in, 3);
	cl_in.shards[1].role = WIRE_ROLE_COUNT;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), -EINVAL);
	fill_cluster(&cl_in, 3);
	cl_in.shards[1].in_sync_count = WIRE_CLUSTER_STANDBYS_MAX + 2;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), -EINVAL);
	fill_cluster(&cl_in, 3);
	cl_in.shards[1].standby_count = WIRE_CLUSTER_STANDBYS_MAX + 1;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), -EINVAL);
	fill_cluster(&cl_in, 3);
	cl_in.shards[2].shard = 1;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), -EINVAL);
	fill_cluster(&cl_in, 3);
	cl_in.shard_count = 0;
	cr_assert_eq(wire_encode_cluster_status(&cl_in, &sb), -EINVAL);
	cr_assert_eq(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* One shard entry, with a fault chosen by `fault`. */
static void pk_bad_shard(msgpack_packer *pk, int fault)
{
	msgpack_pack_map(pk, fault == 0 ? 7 : 8);
	pk_s(pk, "shard");
	msgpack_pack_uint32(pk, fault == 5 ? 1 : 0);
	pk_s(pk, "epoch");
	msgpack_pack_uint32(pk, 1);
	if (fault != 0) {
		pk_s(pk, "role");
		pk_s(pk, fault == 1 ? "emperor" : "primary");
	}
	pk_s(pk, "in_sync");
	msgpack_pack_array(pk, fault == 2 ? WIRE_CLUSTER_STANDBYS_MAX + 2 : 1);
	for (uint32_t i = 0; i < (fault == 2 ? WIRE_CLUSTER_STANDBYS_MAX + 2 : 1); i++)
		msgpack_pack_uint32(pk, i);
	pk_s(pk, "last_seq");
	msgpack_pack_uint32(pk, 1);
	pk_s(pk, "durable_seq");
	msgpack_pack_uint32(pk, 1);
	pk_s(pk, "released_seq");
	if (fault == 4)
		pk_s(pk, "one");
	else
		msgpack_pack_uint32(pk, 1);
	pk_s(pk, "standbys");
	msgpack_pack_array(pk, fault == 3 ? WIRE_CLUSTER_STANDBYS_MAX + 1 : 0);
	for (uint32_t i = 0; fault == 3 && i < WIRE_CLUSTER_STANDBYS_MAX + 1; i++) {
		msgpack_pack_map(pk, 3);
		pk_s(pk, "node");
		msgpack_pack_uint32(pk, i);
		pk_s(pk, "acked_seq");
		msgpack_pack_uint32(pk, i);
		pk_s(pk, "lag_records");
		msgpack_pack_uint32(pk, i);
	}
}

Test(wire_status, malformed_cluster_status_replies_are_rejected)
{
	static const char *const why[] = {
	        "missing key 'role'", "unknown role 'emperor'", "'in_sync' has 10 entries",
	        "'standbys' has 9 entries", "'released_seq' must be an unsigned integer",
	        "shards[0] describes shard 1",
	};
	for (int fault = 0; fault < 6; fault++) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		pk_s(&pk, "status");
		pk_s(&pk, "ok");
		pk_s(&pk, "node");
		msgpack_pack_uint32(&pk, 1);
		pk_s(&pk, "shards");
		msgpack_pack_array(&pk, 1);
		pk_bad_shard(&pk, fault);
		int status;
		wire_msg m;
		cr_assert_eq(cluster_decode(sb.data, sb.size, &status, &m), -EINVAL, "fault %d", fault);
		cr_assert(strstr(m.error, why[fault]) != NULL, "'%s' lacks '%s'", m.error, why[fault]);
		msgpack_sbuffer_destroy(&sb);
	}
	/* "ok" without "node": refused. */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pk_s(&pk, "status");
	pk_s(&pk, "ok");
	pk_s(&pk, "shards");
	msgpack_pack_array(&pk, 1);
	pk_bad_shard(&pk, 6);
	int status;
	wire_msg m;
	cr_assert_eq(cluster_decode(sb.data, sb.size, &status, &m), -EINVAL);
	cr_assert(strstr(m.error, "needs 'node' and 'shards'") != NULL, "%s", m.error);
	msgpack_sbuffer_destroy(&sb);
}

Test(wire_status, status_only_replies)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int status;
	wire_primary p;
	wire_msg m;
	cr_assert_eq(wire_encode_ok(&sb), 0);
	cr_assert_eq(wire_decode_status_reply((const uint8_t *)sb.data, sb.size, &status, &p, &m), 0);
	cr_assert_eq(status, BO_OK);
	cr_assert_str_eq(m.error, "");
	sb.size = 0;
	cr_assert_eq(wire_encode_error(BO_INVALID, "node 9 is not in sync", &sb), 0);
	cr_assert_eq(wire_decode_status_reply((const uint8_t *)sb.data, sb.size, &status, &p, &m), 0);
	cr_assert_eq(status, BO_INVALID);
	cr_assert_str_eq(m.error, "node 9 is not in sync");
	cr_assert_eq(p.known, 0);
	sb.size = 0;
	wire_primary in = {.epoch = 5, .known = 1, .node = 4, .address = "tcp://127.0.0.4:7000"};
	cr_assert_eq(wire_encode_not_primary(&in, "ask node 4", &sb), 0);
	cr_assert_eq(wire_decode_status_reply((const uint8_t *)sb.data, sb.size, &status, &p, &m), 0);
	cr_assert_eq(status, BO_NOT_PRIMARY);
	cr_assert(p.known == 1 && p.node == 4 && p.epoch == 5);
	cr_assert_str_eq(p.address, "tcp://127.0.0.4:7000");
	for (size_t len = 0; len < sb.size; len++)
		cr_assert_eq(wire_decode_status_reply((const uint8_t *)sb.data, len, &status, &p, &m),
		             -EINVAL);
	sb.size = 0;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pk_s(&pk, "status");
	pk_s(&pk, "sleepy");
	cr_assert_eq(wire_decode_status_reply((const uint8_t *)sb.data, sb.size, &status, NULL, &m),
	             -EINVAL);
	cr_assert(strstr(m.error, "unknown status 'sleepy'") != NULL, "%s", m.error);
	msgpack_sbuffer_destroy(&sb);
}
