/*
 * repl_test.c — proves the replication messages (protocol/repl.c) as
 * protocol/repl.h and schemas/replication.md describe them.
 *
 * How:
 *  - Round trips: every type survives encode/decode field by field, with
 *    extreme values; an append's records come back numbered from first_seq
 *    with their timestamps (negative too) and payloads that point INTO the
 *    decoded buffer (zero copy), empty payloads included.
 *  - Bounds: the encoder splits a run at REPL_RECORDS_MAX records and at
 *    REPL_MSG_MAX bytes (five 2 MiB payloads: four fit), refuses a payload
 *    over REPL_PAYLOAD_BYTES_MAX and first_seq 0; the decoder refuses a
 *    message over REPL_MSG_MAX, a payload over the bound, more records than
 *    the caller's array.
 *  - Hostile input: a table of hand-built malformed messages (every
 *    missing key of every type, repeated, mistyped, out-of-range and
 *    unknown values, bad records, bad envelopes) is -EINVAL with the
 *    expected words in the message, out zeroed; every truncation and every
 *    single-byte corruption of valid messages is decoded from exact-size
 *    heap copies without crashing (ASan sees any over-read).
 *  - Unknown keys are skipped (a newer peer's).
 *  - The ack example bytes of schemas/replication.md are what the encoder
 *    writes and the decoder reads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "protocol/repl.h"

#define CAP 16u

static repl_record recs[CAP];

/* Decodes from an exact-size heap copy (ASan sees any over-read). On
 * success, payload pointers are rebased to buf so the caller can check
 * that they pointed into the decoded buffer. */
static int decode(const void *buf, size_t len, repl_msg *m, uint32_t cap, char *err, size_t errlen)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	if (len > 0) /* an empty sbuffer's data is NULL: memcpy must not see it */
		memcpy(copy, buf, len);
	int rc = repl_decode(copy, len, m, recs, cap, err, errlen);
	if (rc == 0 && m->type == REPL_APPEND) {
		for (uint32_t i = 0; i < m->u.append.count; i++) {
			cr_assert(recs[i].payload >= copy &&
			                  recs[i].payload + recs[i].len <= copy + len,
			          "record %u's payload points into the message (zero copy)", i);
			recs[i].payload = (const uint8_t *)buf + (recs[i].payload - copy);
		}
	}
	free(copy);
	return rc;
}

/* ---- Round trips ---------------------------------------------------------- */

Test(repl, append_round_trip_is_zero_copy)
{
	static const char *payloads[3] = {"first", "", "third record"};
	repl_record in[3];
	for (uint32_t i = 0; i < 3; i++)
		in[i] = (repl_record){.seq = UINT64_MAX - 3 + i,
		                      .timestamp_ms = i == 1 ? -5 : INT64_MAX - i,
		                      .payload = (const uint8_t *)payloads[i],
		                      .len = (uint32_t)strlen(payloads[i])};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint32_t taken = 0;
	cr_assert_eq(repl_encode_append(UINT32_MAX, UINT64_MAX, UINT64_MAX - 3, 0xfeedfacecafebeefu,
	                                in, 3, &taken, &sb),
	             0);
	cr_assert_eq(taken, 3);
	repl_msg m;
	char err[128];
	cr_assert_eq(decode(sb.data, sb.size, &m, CAP, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, REPL_APPEND);
	cr_assert_eq(m.u.append.shard, UINT32_MAX);
	cr_assert_eq(m.u.append.epoch, UINT64_MAX);
	cr_assert_eq(m.u.append.first_seq, UINT64_MAX - 3);
	cr_assert_eq(m.u.append.prev, 0xfeedfacecafebeefu);
	cr_assert_eq(m.u.append.count, 3);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(recs[i].seq, UINT64_MAX - 3 + i);
		cr_assert_eq(recs[i].timestamp_ms, in[i].timestamp_ms);
		cr_assert_eq(recs[i].len, in[i].len);
		cr_assert(memcmp(recs[i].payload, payloads[i], in[i].len) == 0);
	}
	/* "type" is the first key, as the doc says. */
	cr_assert(memcmp(sb.data + 1,
	                 "\xa4type\xa6"
	                 "append",
	                 12) == 0);
	msgpack_sbuffer_destroy(&sb);
}

Test(repl, small_messages_round_trip)
{
	repl_ack ack = {.shard = 7, .epoch = 3, .durable_seq = 99, .last_seq = UINT64_MAX};
	repl_refuse ref = {.shard = 0,
	                   .epoch = UINT64_MAX,
	                   .reason = REPL_R_DIVERGED,
	                   .last_seq = 41,
	                   .last_checksum = 0x1234567890abcdefu};
	snprintf(ref.message, sizeof(ref.message), "prev \"x\" does not match record 41");
	repl_probe pr = {.shard = 63, .epoch = 9, .node = UINT32_MAX};
	repl_state stt = {.shard = 1,
	                  .epoch = 2,
	                  .last_seq = 3,
	                  .last_checksum = 4,
	                  .durable_seq = 2,
	                  .node = 5};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	repl_msg m;
	char err[128];

	cr_assert_eq(repl_encode_ack(&ack, &sb), 0);
	cr_assert_eq(decode(sb.data, sb.size, &m, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, REPL_ACK);
	cr_assert(m.u.ack.shard == 7 && m.u.ack.epoch == 3 && m.u.ack.durable_seq == 99 &&
	          m.u.ack.last_seq == UINT64_MAX);

	sb.size = 0;
	cr_assert_eq(repl_encode_refuse(&ref, &sb), 0);
	cr_assert_eq(decode(sb.data, sb.size, &m, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, REPL_REFUSE);
	cr_assert_eq(m.u.refuse.reason, REPL_R_DIVERGED);
	cr_assert_eq(m.u.refuse.epoch, UINT64_MAX);
	cr_assert_eq(m.u.refuse.last_seq, 41);
	cr_assert_eq(m.u.refuse.last_checksum, 0x1234567890abcdefu);
	cr_assert_str_eq(m.u.refuse.message, ref.message);

	for (int r = REPL_R_STALE; r < REPL_REASON_COUNT; r++) {
		sb.size = 0;
		ref.reason = (uint8_t)r;
		cr_assert_eq(repl_encode_refuse(&ref, &sb), 0);
		cr_assert_eq(decode(sb.data, sb.size, &m, 0, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(m.u.refuse.reason, r, "reason %s", repl_reason_name(r));
	}

	sb.size = 0;
	cr_assert_eq(repl_encode_probe(&pr, &sb), 0);
	cr_assert_eq(decode(sb.data, sb.size, &m, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, REPL_PROBE);
	cr_assert(m.u.probe.shard == pr.shard && m.u.probe.epoch == pr.epoch &&
	          m.u.probe.node == pr.node);

	sb.size = 0;
	cr_assert_eq(repl_encode_state(&stt, &sb), 0);
	cr_assert_eq(decode(sb.data, sb.size, &m, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.type, REPL_STATE);
	cr_assert(m.u.state.shard == 1 && m.u.state.epoch == 2 && m.u.state.last_seq == 3 &&
	          m.u.state.last_checksum == 4 && m.u.state.durable_seq == 2 &&
	          m.u.state.node == 5);
	msgpack_sbuffer_destroy(&sb);
}

/* The exact bytes of schemas/replication.md section 4. */
Test(repl, ack_bytes_are_the_doc_example)
{
	static const uint8_t doc[51] = {
	        0x85, 0xa4, 't', 'y',  'p',  'e', 0xa3, 'a', 'c', 'k',  0xa5, 's',  'h',
	        'a',  'r',  'd', 0x03, 0xa5, 'e', 'p',  'o', 'c', 'h',  0x0c, 0xab, 'd',
	        'u',  'r',  'a', 'b',  'l',  'e', '_',  's', 'e', 'q',  0xcd, 0x03, 0xea,
	        0xa8, 'l',  'a', 's',  't',  '_', 's',  'e', 'q', 0xcd, 0x03, 0xea};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	repl_ack a = {.shard = 3, .epoch = 12, .durable_seq = 1002, .last_seq = 1002};
	cr_assert_eq(repl_encode_ack(&a, &sb), 0);
	cr_assert_eq(sb.size, sizeof(doc));
	cr_assert(memcmp(sb.data, doc, sizeof(doc)) == 0);
	repl_msg m;
	char err[128];
	cr_assert_eq(decode(doc, sizeof(doc), &m, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.u.ack.durable_seq, 1002);
	msgpack_sbuffer_destroy(&sb);
}

Test(repl, names)
{
	cr_assert_str_eq(repl_type_name(REPL_APPEND), "append");
	cr_assert_str_eq(repl_type_name(REPL_STATE), "state");
	cr_assert_null(repl_type_name(REPL_NONE));
	cr_assert_null(repl_type_name(REPL_TYPE_COUNT));
	cr_assert_str_eq(repl_reason_name(REPL_R_NOT_STANDBY), "not_standby");
	cr_assert_str_eq(repl_reason_name(REPL_R_GAP), "gap");
	cr_assert_null(repl_reason_name(REPL_R_NONE));
	cr_assert_null(repl_reason_name(-1));
}

/* ---- Encoder bounds ------------------------------------------------------- */

Test(repl, encoder_splits_at_the_record_bound)
{
	uint32_t n = REPL_RECORDS_MAX + 5;
	repl_record *in = calloc(n, sizeof(*in));
	cr_assert(in);
	for (uint32_t i = 0; i < n; i++)
		in[i] = (repl_record){.seq = 10 + i, .payload = (const uint8_t *)"p", .len = 1};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint32_t taken = 0;
	cr_assert_eq(repl_encode_append(1, 1, 10, 0, in, n, &taken, &sb), 0);
	cr_assert_eq(taken, REPL_RECORDS_MAX);
	repl_record *out = calloc(REPL_RECORDS_MAX, sizeof(*out));
	repl_msg m;
	char err[128];
	cr_assert_eq(repl_decode((const uint8_t *)sb.data, sb.size, &m, out, REPL_RECORDS_MAX, err,
	                         sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(m.u.append.count, REPL_RECORDS_MAX);
	cr_assert_eq(out[REPL_RECORDS_MAX - 1].seq, 10 + REPL_RECORDS_MAX - 1);
	/* The rest goes in a second message. */
	sb.size = 0;
	cr_assert_eq(repl_encode_append(1, 1, 10 + taken, 0, in + taken, n - taken, &taken, &sb),
	             0);
	cr_assert_eq(taken, 5);
	free(out);
	free(in);
	msgpack_sbuffer_destroy(&sb);
}

Test(repl, encoder_splits_at_the_message_bound)
{
	uint8_t *big = malloc(REPL_PAYLOAD_BYTES_MAX + 1);
	cr_assert(big);
	memset(big, 0xab, REPL_PAYLOAD_BYTES_MAX + 1);
	repl_record in[5];
	for (uint32_t i = 0; i < 5; i++)
		in[i] = (repl_record){.seq = 1 + i, .payload = big, .len = REPL_PAYLOAD_BYTES_MAX};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint32_t taken = 0;
	cr_assert_eq(repl_encode_append(0, 1, 1, 0, in, 5, &taken, &sb), 0);
	cr_assert_eq(taken, 4, "four 2 MiB payloads fit %u bytes, five do not", REPL_MSG_MAX);
	cr_assert_leq(sb.size, REPL_MSG_MAX);
	repl_msg m;
	char err[128];
	cr_assert_eq(decode(sb.data, sb.size, &m, CAP, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.u.append.count, 4);
	cr_assert_eq(recs[3].len, REPL_PAYLOAD_BYTES_MAX);
	cr_assert_eq(recs[3].payload[REPL_PAYLOAD_BYTES_MAX - 1], 0xab);

	/* One byte over the payload bound, first_seq 0: refused, out unchanged. */
	sb.size = 0;
	in[1].len = REPL_PAYLOAD_BYTES_MAX + 1;
	cr_assert_eq(repl_encode_append(0, 1, 1, 0, in, 2, &taken, &sb), -EINVAL);
	cr_assert_eq(taken, 0);
	cr_assert_eq(sb.size, 0);
	cr_assert_eq(repl_encode_append(0, 1, 0, 0, (repl_record[]){{.seq = 0}}, 1, &taken, &sb),
	             -EINVAL);
	cr_assert_eq(sb.size, 0);

	/* A refuse without a reason, or without its NUL, is not written. */
	repl_refuse r = {.reason = REPL_R_NONE};
	cr_assert_eq(repl_encode_refuse(&r, &sb), -EINVAL);
	r.reason = REPL_REASON_COUNT;
	cr_assert_eq(repl_encode_refuse(&r, &sb), -EINVAL);
	r.reason = REPL_R_GAP;
	memset(r.message, 'x', sizeof(r.message));
	cr_assert_eq(repl_encode_refuse(&r, &sb), -EINVAL);
	cr_assert_eq(sb.size, 0);
	free(big);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- Hand-built messages -------------------------------------------------- */

static msgpack_sbuffer hb;
static msgpack_packer hp;

static void hb_begin(uint32_t pairs)
{
	msgpack_sbuffer_init(&hb);
	msgpack_packer_init(&hp, &hb, msgpack_sbuffer_write);
	msgpack_pack_map(&hp, pairs);
}

static void s(const char *str)
{
	msgpack_pack_str_with_body(&hp, str, strlen(str));
}

static void kv_u(const char *k, uint64_t v)
{
	s(k);
	msgpack_pack_uint64(&hp, v);
}

/* One record [ts, bin payload]. */
static void rec(int64_t ts, const char *payload)
{
	msgpack_pack_array(&hp, 2);
	msgpack_pack_int64(&hp, ts);
	msgpack_pack_bin_with_body(&hp, payload, strlen(payload));
}

/* Expects -EINVAL whose message contains `words`, and a zeroed out. */
static void refused(const char *words)
{
	repl_msg m;
	memset(&m, 0x5a, sizeof(m));
	char err[160];
	int rc = decode(hb.data, hb.size, &m, CAP, err, sizeof(err));
	cr_assert_eq(rc, -EINVAL, "expected a refusal containing '%s'", words);
	cr_assert(strstr(err, words) != NULL, "error '%s' should contain '%s'", err, words);
	repl_msg zero;
	memset(&zero, 0, sizeof(zero));
	cr_assert(memcmp(&m, &zero, sizeof(m)) == 0, "out is zeroed on failure");
	msgpack_sbuffer_destroy(&hb);
}

/* A valid ack with one key left out (skip < 0: none) or doubled. */
static void ack_without(int skip, int twice)
{
	static const char *keys[4] = {"shard", "epoch", "durable_seq", "last_seq"};
	hb_begin(1 + 4 - (skip >= 0) + (twice >= 0));
	s("type");
	s("ack");
	for (int i = 0; i < 4; i++) {
		if (i != skip)
			kv_u(keys[i], 1);
		if (i == twice)
			kv_u(keys[i], 1);
	}
}

Test(repl, every_missing_or_repeated_key_is_refused)
{
	static const char *ack_keys[4] = {"shard", "epoch", "durable_seq", "last_seq"};
	for (int k = 0; k < 4; k++) {
		ack_without(k, -1);
		char w[64];
		snprintf(w, sizeof(w), "missing key '%s'", ack_keys[k]);
		refused(w);
		ack_without(-1, k);
		snprintf(w, sizeof(w), "key '%s' given twice", ack_keys[k]);
		refused(w);
	}
	/* The other types: one missing key each, named. */
	static const struct {
		const char *type;
		const char *keys[7];
		int n;
	} types[] = {
	        {"append", {"shard", "epoch", "first_seq", "prev", "records"}, 5},
	        {"refuse", {"shard", "epoch", "reason", "last_seq", "last_checksum", "message"}, 6},
	        {"probe", {"shard", "epoch", "node"}, 3},
	        {"state",
	         {"shard", "epoch", "last_seq", "last_checksum", "durable_seq", "node"},
	         6},
	};
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (int skip = 0; skip < types[t].n; skip++) {
			hb_begin(1 + (uint32_t)types[t].n - 1);
			s("type");
			s(types[t].type);
			for (int i = 0; i < types[t].n; i++) {
				if (i == skip)
					continue;
				const char *k = types[t].keys[i];
				s(k);
				if (!strcmp(k, "records")) {
					msgpack_pack_array(&hp, 1);
					rec(1, "x");
				} else if (!strcmp(k, "reason")) {
					s("gap");
				} else if (!strcmp(k, "message")) {
					s("m");
				} else {
					msgpack_pack_uint64(&hp, 1);
				}
			}
			char w[80];
			snprintf(w, sizeof(w), "%s: missing key '%s'", types[t].type,
			         types[t].keys[skip]);
			refused(w);
		}
	}
}

/* A valid append header (shard, epoch, first_seq, prev) then "records". */
static void append_head(uint32_t extra_pairs, uint64_t first_seq)
{
	hb_begin(6 + extra_pairs);
	s("type");
	s("append");
	kv_u("shard", 1);
	kv_u("epoch", 2);
	kv_u("first_seq", first_seq);
	kv_u("prev", 3);
	s("records");
}

Test(repl, malformed_values_are_refused)
{
	/* Envelope. */
	msgpack_sbuffer_init(&hb);
	refused("empty message");
	msgpack_sbuffer_init(&hb);
	msgpack_sbuffer_write(&hb, "\xc1", 1);
	refused("not msgpack");
	hb_begin(0);
	refused("first key must be 'type'");
	msgpack_sbuffer_init(&hb);
	msgpack_packer_init(&hp, &hb, msgpack_sbuffer_write);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_uint8(&hp, 1);
	refused("must be a map, not an array");
	ack_without(-1, -1);
	msgpack_pack_nil(&hp); /* trailing byte */
	refused("trailing");
	hb_begin(2);
	kv_u("shard", 1);
	s("type");
	s("ack");
	refused("first key must be 'type'");
	hb_begin(1);
	s("type");
	s("hello");
	refused("unknown type 'hello'");
	hb_begin(1);
	kv_u("type", 1);
	refused("'type' must be a string");
	ack_without(-1, -1);
	hb.data[0]++; /* one more pair: "type" again */
	s("type");
	s("ack");
	refused("key 'type' given twice");

	/* Numbers. */
	hb_begin(4);
	s("type");
	s("probe");
	kv_u("shard", (uint64_t)UINT32_MAX + 1);
	kv_u("epoch", 1);
	kv_u("node", 1);
	refused("'shard' is 4294967296, more than 4294967295");
	hb_begin(4);
	s("type");
	s("probe");
	kv_u("shard", 1);
	s("epoch");
	msgpack_pack_int64(&hp, -1);
	kv_u("node", 1);
	refused("'epoch' must not be negative");
	hb_begin(4);
	s("type");
	s("probe");
	kv_u("shard", 1);
	kv_u("epoch", 1);
	s("node");
	msgpack_pack_double(&hp, 1.0);
	refused("'node' must be an unsigned integer, not a float");
	hb_begin(7);
	s("type");
	s("refuse");
	kv_u("shard", 1);
	kv_u("epoch", 1);
	s("reason");
	s("tired");
	kv_u("last_seq", 1);
	kv_u("last_checksum", 1);
	s("message");
	s("m");
	refused("unknown reason 'tired'");

	/* Records. */
	append_head(0, 0);
	msgpack_pack_array(&hp, 1);
	rec(1, "x");
	refused("'first_seq' must not be 0");
	append_head(0, UINT64_MAX);
	msgpack_pack_array(&hp, 2);
	rec(1, "x");
	rec(1, "y");
	refused("overflows");
	append_head(0, 1);
	msgpack_pack_array(&hp, 0);
	refused("'records' is empty");
	append_head(0, 1);
	msgpack_pack_map(&hp, 0);
	refused("'records' must be an array");
	append_head(0, 1);
	msgpack_pack_array(&hp, CAP + 1);
	for (uint32_t i = 0; i < CAP + 1; i++)
		rec(1, "x");
	refused("'records' has 17 entries, at most 16");
	append_head(0, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 3);
	msgpack_pack_int64(&hp, 1);
	msgpack_pack_bin_with_body(&hp, "x", 1);
	msgpack_pack_nil(&hp);
	refused("records[0] must be an array [timestamp_ms, payload]");
	append_head(0, 1);
	msgpack_pack_array(&hp, 2);
	rec(1, "x");
	msgpack_pack_array(&hp, 2);
	msgpack_pack_double(&hp, 1.5);
	msgpack_pack_bin_with_body(&hp, "x", 1);
	refused("records[1]: timestamp_ms must be a 64-bit signed integer");
	append_head(0, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 2);
	msgpack_pack_uint64(&hp, (uint64_t)INT64_MAX + 1);
	msgpack_pack_bin_with_body(&hp, "x", 1);
	refused("records[0]: timestamp_ms must be a 64-bit signed integer");
	append_head(0, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 2);
	msgpack_pack_int64(&hp, 1);
	s("a string, not a bin");
	refused("records[0]: payload must be a bin");

	/* Nesting: an unknown key holding a deep value. */
	ack_without(-1, -1);
	hb.data[0]++;
	s("future");
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_nil(&hp);
	refused("nested deeper than 3");
}

Test(repl, oversized_payload_and_message_are_refused)
{
	uint8_t *big = calloc(1, REPL_PAYLOAD_BYTES_MAX + 1);
	cr_assert(big);
	append_head(0, 1);
	msgpack_pack_array(&hp, 1);
	msgpack_pack_array(&hp, 2);
	msgpack_pack_int64(&hp, 1);
	msgpack_pack_bin_with_body(&hp, big, REPL_PAYLOAD_BYTES_MAX + 1);
	refused("payload of 2097153 bytes exceeds 2097152");
	free(big);

	uint8_t *huge = calloc(1, (size_t)REPL_MSG_MAX + 1);
	cr_assert(huge);
	repl_msg m;
	char err[128];
	cr_assert_eq(repl_decode(huge, (size_t)REPL_MSG_MAX + 1, &m, recs, CAP, err, sizeof(err)),
	             -EINVAL);
	cr_assert(strstr(err, "exceeds") != NULL, "%s", err);
	free(huge);

	/* An append with records and a zero-capacity array: refused, not written. */
	append_head(0, 1);
	msgpack_pack_array(&hp, 1);
	rec(1, "x");
	cr_assert_eq(repl_decode((const uint8_t *)hb.data, hb.size, &m, NULL, 0, err, sizeof(err)),
	             -EINVAL);
	cr_assert(strstr(err, "at most 0") != NULL, "%s", err);
	msgpack_sbuffer_destroy(&hb);
}

Test(repl, unknown_keys_are_skipped)
{
	append_head(2, 5);
	msgpack_pack_array(&hp, 1);
	rec(-1, "abc");
	s("compression");
	s("none");
	s("hints");
	msgpack_pack_array(&hp, 1);
	msgpack_pack_map(&hp, 0);
	repl_msg m;
	char err[128];
	cr_assert_eq(decode(hb.data, hb.size, &m, CAP, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m.u.append.first_seq, 5);
	cr_assert_eq(recs[0].seq, 5);
	cr_assert_eq(recs[0].timestamp_ms, -1);
	cr_assert_eq(recs[0].len, 3);
	msgpack_sbuffer_destroy(&hb);
}

/* ---- Truncations and corruptions ------------------------------------------ */

/* Every prefix is refused; every one-byte change decodes or is refused
 * with a message (never a crash, never an over-read). */
static void mutate_all(const msgpack_sbuffer *sb)
{
	repl_msg m;
	char err[128];
	for (size_t len = 0; len < sb->size; len++) {
		cr_assert_eq(decode(sb->data, len, &m, CAP, err, sizeof(err)), -EINVAL,
		             "prefix of %zu bytes", len);
		cr_assert(err[0] != '\0');
	}
	uint8_t *copy = malloc(sb->size);
	cr_assert(copy);
	static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0x90, 0xc0, 0xc1, 0xc4,
	                               0xcc, 0xd0, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
	for (size_t at = 0; at < sb->size; at++) {
		for (size_t v = 0; v < sizeof(vals); v++) {
			memcpy(copy, sb->data, sb->size);
			copy[at] = vals[v];
			int rc = decode(copy, sb->size, &m, CAP, err, sizeof(err));
			cr_assert(rc == 0 || (rc == -EINVAL && err[0] != '\0'));
		}
	}
	free(copy);
}

Test(repl, truncated_and_corrupted_messages_never_crash)
{
	repl_record in[2] = {
	        {.seq = 1, .timestamp_ms = 100, .payload = (const uint8_t *)"ab", .len = 2},
	        {.seq = 2, .timestamp_ms = 101, .payload = (const uint8_t *)"c", .len = 1}};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint32_t taken;
	cr_assert_eq(repl_encode_append(3, 4, 1, 5, in, 2, &taken, &sb), 0);
	mutate_all(&sb);
	sb.size = 0;
	repl_refuse r = {.shard = 1, .epoch = 2, .reason = REPL_R_STALE, .last_seq = 3};
	snprintf(r.message, sizeof(r.message), "epoch 2 < 3");
	cr_assert_eq(repl_encode_refuse(&r, &sb), 0);
	mutate_all(&sb);
	sb.size = 0;
	repl_state st = {.shard = 1, .epoch = 2, .last_seq = 3, .node = 4};
	cr_assert_eq(repl_encode_state(&st, &sb), 0);
	mutate_all(&sb);
	msgpack_sbuffer_destroy(&sb);
}
