/*
 * wire_fuzz.c — libFuzzer target for the wire codec of protocol/ (the msgpack
 * wire protocol: mpack.c, field.c, request.c, reply.c, status.c,
 * projection.c).
 *
 * Proves, for any input bytes, read both as a request and as a reply:
 *  - decoding never crashes, never reads out of bounds, never leaks (ASan,
 *    UBSan, LeakSanitizer; engine.c allocates seat maps with libc calloc,
 *    which LeakSanitizer sees) and returns only 0, -EINVAL (with a message)
 *    or -ENOMEM;
 *  - an accepted request is consistent (count within bounds, every rejected
 *    command has a reason and no map, invalid == the number rejected), its
 *    decoded commands re-encode (wire_encode_request) and decode again to
 *    equal commands (codec_cmd_equal), and its reply message
 *    (wire_encode_replies with the decode errors) decodes back with the same
 *    shape and statuses;
 *  - an accepted reply message re-encodes and decodes to equal results
 *    (codec_result_equal);
 *  - read as an admin request (status.c), the answer is "not one", a kind
 *    (an event id exactly for event_state, never 0), or -EINVAL with a
 *    message; read as a server_status reply, it is
 *    -EINVAL with a message or a status, and an ok one (shards within
 *    bounds, each at its index, states named) re-encodes and decodes to the
 *    same bytes' meaning;
 *  - read as a projection message (projection.c), it is -EINVAL with a
 *    message and a zeroed header, or 1..WIRE_PROJECTION_CHANGES_MAX
 *    changes with seq > prev that re-encode, decode to the same header and
 *    changes, and re-encode to the same bytes;
 *  - read as an event_state reply, it is -EINVAL/-ENOMEM with a message
 *    and nothing allocated, a refusal with an empty image, or an image
 *    whose rows sum to its seats that re-encodes and decodes equal;
 *  - read for an auth prefix (auth.c), it is "none" (nothing consumed, no
 *    token), -EINVAL with a message, or a prefix shorter than the input
 *    whose token (1..BO_AUTH_TOKEN_LEN_MAX bytes) lies inside it and
 *    re-encodes to a prefix the decoder reads back to the same token; the
 *    request after it then goes through every check above.
 *
 * Built and run by scripts/fuzz (tests/fuzz/X_fuzz.c with the core sources,
 * the sources of protocol/ among them, and -lmsgpackc):
 *   scripts/fuzz --seconds 60 wire
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/codec.h"
#include "protocol/projection.h"
#include "protocol/wire.h"
#include "tests/support/fuzz_check.h"
#include "tests/support/fuzz_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Static: WIRE_BATCH_MAX of each does not belong on the stack. */
static bo_cmd cmds[WIRE_BATCH_MAX], again[WIRE_BATCH_MAX], valid[WIRE_BATCH_MAX];
static wire_cmd_error errs[WIRE_BATCH_MAX], errs2[WIRE_BATCH_MAX];
static bo_result res[WIRE_BATCH_MAX], res2[WIRE_BATCH_MAX];
static wire_reply_info info[WIRE_BATCH_MAX];

static void fuzz_request(const uint8_t *data, size_t size)
{
	wire_msg msg;
	int rc = wire_decode_request(data, size, cmds, errs, WIRE_BATCH_MAX, &msg);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(msg.count == 0 && msg.error[0] != '\0');
		return;
	}
	FUZZ_CHECK(rc == 0 && msg.count <= WIRE_BATCH_MAX);
	FUZZ_CHECK(msg.is_array || msg.count == 1);
	uint32_t n_valid = fuzz_check_request(cmds, errs, &msg, valid);

	/* Re-encode the decoded commands: they must decode to equal ones. */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	FUZZ_CHECK(wire_encode_request(valid, n_valid, 1, &sb) == 0);
	wire_msg msg2;
	rc = wire_decode_request((const uint8_t *)sb.data, sb.size, again, errs2, WIRE_BATCH_MAX,
	                         &msg2);
	FUZZ_CHECK(rc == 0 && msg2.count == n_valid && msg2.invalid == 0);
	for (uint32_t i = 0; i < n_valid; i++)
		FUZZ_CHECK(codec_cmd_equal(&valid[i], &again[i]) &&
		           codec_cmd_equal(&again[i], &valid[i]));
	wire_free_maps(again, n_valid);

	/* The reply message for it: same shape, the rejected ones invalid. */
	for (uint32_t i = 0; i < msg.count; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		res[i].op = cmds[i].op;
		res[i].status = BO_NOT_FOUND;
		res[i].detail = BO_D_NO_EVENT;
		res[i].event_id = cmds[i].event_id;
	}
	msgpack_sbuffer_clear(&sb);
	FUZZ_CHECK(wire_encode_replies(res, errs, msg.count, msg.is_array, &sb) == 0);
	rc = wire_decode_replies((const uint8_t *)sb.data, sb.size, res2, info, WIRE_BATCH_MAX,
	                         &msg2);
	FUZZ_CHECK(rc == 0 && msg2.count == msg.count && msg2.is_array == msg.is_array);
	for (uint32_t i = 0; i < msg.count; i++) {
		if (errs[i].status != BO_OK) {
			FUZZ_CHECK(res2[i].status == errs[i].status);
			FUZZ_CHECK(strncmp(info[i].error, errs[i].text, WIRE_ERROR_LEN_MAX) == 0);
		} else {
			FUZZ_CHECK(codec_result_equal(&res[i], &res2[i]));
		}
	}
	msgpack_sbuffer_destroy(&sb);
	wire_free_maps(cmds, msg.count);
}

static void fuzz_replies(const uint8_t *data, size_t size)
{
	wire_msg msg;
	int rc = wire_decode_replies(data, size, res, info, WIRE_BATCH_MAX, &msg);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL && msg.error[0] != '\0');
		return;
	}
	FUZZ_CHECK(msg.is_array || msg.count == 1);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	FUZZ_CHECK(wire_encode_replies(res, NULL, msg.count, msg.is_array, &sb) == 0);
	wire_msg msg2;
	rc = wire_decode_replies((const uint8_t *)sb.data, sb.size, res2, NULL, WIRE_BATCH_MAX,
	                         &msg2);
	FUZZ_CHECK(rc == 0 && msg2.count == msg.count && msg2.is_array == msg.is_array);
	for (uint32_t i = 0; i < msg.count; i++)
		FUZZ_CHECK(codec_result_equal(&res[i], &res2[i]) &&
		           codec_result_equal(&res2[i], &res[i]) &&
		           res[i].view_seq == res2[i].view_seq);
	msgpack_sbuffer_destroy(&sb);
}

static wire_server_status st, st2;

static void fuzz_admin_and_status(const uint8_t *data, size_t size)
{
	wire_msg msg;
	uint64_t event_id;
	int rc = wire_decode_admin(data, size, &event_id, &msg);
	FUZZ_CHECK(rc == WIRE_ADMIN_NONE || rc == WIRE_ADMIN_SERVER_STATUS ||
	           rc == WIRE_ADMIN_EVENT_STATE || (rc == -EINVAL && msg.error[0] != '\0'));
	FUZZ_CHECK((rc == WIRE_ADMIN_EVENT_STATE) == (event_id != 0));
	FUZZ_CHECK(rc == WIRE_ADMIN_NONE || size <= WIRE_ADMIN_MSG_MAX);
	int status;
	rc = wire_decode_server_status(data, size, &st, &status, &msg);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL && msg.error[0] != '\0' && st.shard_count == 0);
		return;
	}
	FUZZ_CHECK(rc == 0 && status >= 0 && status < BO_STATUS_COUNT);
	if (status != BO_OK) {
		FUZZ_CHECK(st.shard_count == 0);
		return;
	}
	FUZZ_CHECK(st.shard_count >= 1 && st.shard_count <= WIRE_STATUS_SHARDS_MAX);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	FUZZ_CHECK(wire_encode_server_status(&st, &sb) == 0);
	rc = wire_decode_server_status((const uint8_t *)sb.data, sb.size, &st2, &status, &msg);
	FUZZ_CHECK(rc == 0 && status == BO_OK && st2.shard_count == st.shard_count);
	FUZZ_CHECK(strcmp(st.version, st2.version) == 0);
	for (uint32_t k = 0; k < st.shard_count; k++) {
		const wire_shard_status *a = &st.shards[k], *b = &st2.shards[k];
		FUZZ_CHECK(a->shard == k && b->shard == k && a->durable_seq == b->durable_seq &&
		           a->batches == b->batches && a->committer.state == b->committer.state &&
		           a->committer.applied_seq == b->committer.applied_seq &&
		           a->committer.lag_records == b->committer.lag_records &&
		           a->committer.lag_ms == b->committer.lag_ms &&
		           a->committer.batches == b->committer.batches &&
		           a->committer.changes == b->committer.changes &&
		           a->committer.outbox == b->committer.outbox &&
		           a->committer.retries == b->committer.retries &&
		           strcmp(a->committer.reason, b->committer.reason) == 0);
	}
	msgpack_sbuffer_destroy(&sb);
}

static bo_change changes[WIRE_PROJECTION_CHANGES_MAX], changes2[WIRE_PROJECTION_CHANGES_MAX];

static void fuzz_projection(const uint8_t *data, size_t size)
{
	wire_projection h, h2;
	wire_msg msg;
	int rc = wire_decode_projection(data, size, &h, changes, WIRE_PROJECTION_CHANGES_MAX, &msg);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL && msg.error[0] != '\0' && h.count == 0);
		return;
	}
	FUZZ_CHECK(rc == 0 && h.count >= 1 && h.count <= WIRE_PROJECTION_CHANGES_MAX);
	FUZZ_CHECK(h.seq > h.prev_seq && size >= WIRE_TOPIC_BYTES);
	msgpack_sbuffer sb, sb2;
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_init(&sb2);
	FUZZ_CHECK(wire_encode_projection(&h, changes, &sb) == 0);
	FUZZ_CHECK(memcmp(sb.data, data, WIRE_TOPIC_BYTES) == 0); /* the same topic */
	rc = wire_decode_projection((const uint8_t *)sb.data, sb.size, &h2, changes2,
	                            WIRE_PROJECTION_CHANGES_MAX, &msg);
	FUZZ_CHECK(rc == 0 && h2.event_id == h.event_id && h2.prev_seq == h.prev_seq &&
	           h2.seq == h.seq && h2.at_ms == h.at_ms && h2.pub_us == h.pub_us &&
	           h2.count == h.count);
	/* Decoded changes are zeroed first, so equal ones compare equal bytes. */
	FUZZ_CHECK(memcmp(changes, changes2, h.count * sizeof(bo_change)) == 0);
	FUZZ_CHECK(wire_encode_projection(&h2, changes2, &sb2) == 0);
	FUZZ_CHECK(sb2.size == sb.size && memcmp(sb.data, sb2.data, sb.size) == 0);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&sb2);
}

static void fuzz_event_image(const uint8_t *data, size_t size)
{
	bo_event_image im, im2;
	int status;
	wire_msg msg;
	int rc = wire_decode_event_image(data, size, &im, &status, &msg);
	if (rc < 0) {
		FUZZ_CHECK((rc == -EINVAL || rc == -ENOMEM) && msg.error[0] != '\0');
		FUZZ_CHECK(!im.rows && !im.categories && !im.states && im.seat_count == 0);
		return;
	}
	FUZZ_CHECK(rc == 0 && status >= 0 && status < BO_STATUS_COUNT);
	if (status != BO_OK) {
		FUZZ_CHECK(!im.rows && !im.categories && !im.states && im.seat_count == 0);
		return;
	}
	uint64_t seats = 0;
	for (uint32_t r = 0; r < im.row_count; r++)
		seats += im.rows[r].seats;
	FUZZ_CHECK(seats == im.seat_count && im.seat_count <= BO_SEATS_PER_EVENT_MAX);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	FUZZ_CHECK(wire_encode_event_image(&im, &sb) == 0);
	rc = wire_decode_event_image((const uint8_t *)sb.data, sb.size, &im2, &status, &msg);
	FUZZ_CHECK(rc == 0 && status == BO_OK && im2.event_id == im.event_id && im2.seq == im.seq &&
	           im2.seat_count == im.seat_count && im2.row_count == im.row_count &&
	           im2.category_count == im.category_count && im2.pool_count == im.pool_count);
	FUZZ_CHECK(im.row_count == 0 ||
	           memcmp(im.rows, im2.rows, im.row_count * sizeof(bo_row_def)) == 0);
	FUZZ_CHECK(im.seat_count == 0 ||
	           (memcmp(im.categories, im2.categories, im.seat_count) == 0 &&
	            memcmp(im.states, im2.states, im.seat_count) == 0));
	FUZZ_CHECK(memcmp(im.pool_capacity, im2.pool_capacity, sizeof(im.pool_capacity)) == 0 &&
	           memcmp(im.pool_free, im2.pool_free, sizeof(im.pool_free)) == 0);
	bo_event_image_free(&im);
	bo_event_image_free(&im2);
	msgpack_sbuffer_destroy(&sb);
}

/* Returns the request part of data (all of it without a prefix). */
static size_t fuzz_auth(const uint8_t *data, size_t size)
{
	const uint8_t *tok;
	size_t tok_len;
	wire_msg msg;
	int rc = wire_decode_auth(data, size, &tok, &tok_len, &msg);
	if (rc <= 0) {
		FUZZ_CHECK(tok == NULL && tok_len == 0);
		FUZZ_CHECK(rc == 0 ? msg.error[0] == '\0' : rc == -EINVAL && msg.error[0] != '\0');
		return 0;
	}
	FUZZ_CHECK((size_t)rc < size && tok_len >= 1 && tok_len <= BO_AUTH_TOKEN_LEN_MAX);
	FUZZ_CHECK(tok >= data && tok + tok_len <= data + rc);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	FUZZ_CHECK(wire_encode_auth((const char *)tok, tok_len, &sb) == 0);
	msgpack_sbuffer_write(&sb, (const char *)data + rc, size - (size_t)rc);
	const uint8_t *tok2;
	size_t tok_len2;
	int rc2 = wire_decode_auth((const uint8_t *)sb.data, sb.size, &tok2, &tok_len2, &msg);
	FUZZ_CHECK(rc2 > 0 && sb.size - (size_t)rc2 == size - (size_t)rc && tok_len2 == tok_len &&
	           memcmp(tok2, tok, tok_len) == 0);
	msgpack_sbuffer_destroy(&sb);
	return (size_t)rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t skip = fuzz_auth(data, size);
	if (skip > 0)
		fuzz_request(data + skip, size - skip);
	fuzz_request(data, size);
	fuzz_replies(data, size);
	fuzz_admin_and_status(data, size);
	fuzz_projection(data, size);
	fuzz_event_image(data, size);
	return 0;
}
