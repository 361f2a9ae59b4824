/*
 * json_fuzz.c — libFuzzer target for the HTTP/JSON request decoder
 * (protocol/json.c, json_decode_request) and the reply encoder behind it.
 *
 * Proves, for any body, decoded as one command (POST /v1/command) and as a
 * batch (POST /v1/batch, cap 1024):
 *  - decoding never crashes, never reads out of bounds, never leaks (ASan,
 *    UBSan, LeakSanitizer) and returns only 0, -EINVAL or -ENOMEM, a
 *    failure with a message and nothing decoded;
 *  - it agrees with jansson itself: the body is accepted exactly when
 *    jansson parses it (same flags), it nests no deeper than
 *    JSON_DEPTH_MAX and it has the shape asked for (one object; an array
 *    of 1..cap). So the byte scan that runs before jansson neither lets a
 *    deep or long body through nor refuses a good one;
 *  - an accepted request is consistent (count as the shape says, every
 *    rejected command has a reason and no map, invalid == the number
 *    rejected), its commands re-encode with wire_encode_request and decode
 *    to equal commands;
 *  - its JSON reply (json_encode_replies with the decode errors) and the
 *    message error of a refused body (json_encode_error) are JSON that
 *    jansson parses, with one reply per command in the request's shape.
 *
 * Built and run by scripts/fuzz (seeds in tests/fuzz/seeds/json, tokens in
 * tests/fuzz/json.dict):
 *   scripts/fuzz --seconds 60 json
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/codec.h"
#include "protocol/json.h"
#include "protocol/wire.h"
#include "tests/support/fuzz_check.h"
#include "tests/support/fuzz_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BATCH_CAP 1024u

static bo_cmd cmds[BATCH_CAP], again[BATCH_CAP], valid[BATCH_CAP];
static wire_cmd_error errs[BATCH_CAP], errs2[BATCH_CAP];
static bo_result res[BATCH_CAP];

/* Containers nested in v, v itself counted (jansson bounds the recursion:
 * it refuses more than 2048 levels). */
static unsigned depth_of(const json_t *v)
{
	unsigned deepest = 0;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x)
		{
			unsigned d = depth_of(x);
			deepest = d > deepest ? d : deepest;
		}
		return deepest + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			unsigned d = depth_of(x);
			deepest = d > deepest ? d : deepest;
		}
		return deepest + 1;
	}
	return 0;
}

/* What json_decode_request must answer, by jansson alone: 1 accept, 0
 * refuse. */
static int expect_accept(const uint8_t *data, size_t size, int shape)
{
	if (size == 0)
		return 0;
	json_error_t err;
	json_t *root =
	        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!root)
		return 0;
	int ok = depth_of(root) <= JSON_DEPTH_MAX &&
	         (shape == JSON_ONE ? json_is_object(root)
	                            : json_is_array(root) && json_array_size(root) >= 1 &&
	                                      json_array_size(root) <= BATCH_CAP);
	json_decref(root);
	return ok;
}

static void check_json(const msgpack_sbuffer *sb, int is_array, uint32_t count)
{
	json_error_t err;
	json_t *v = json_loadb(sb->data, sb->size, JSON_REJECT_DUPLICATES, &err);
	FUZZ_CHECK(v != NULL);
	if (is_array)
		FUZZ_CHECK(json_is_array(v) && json_array_size(v) == count);
	else
		FUZZ_CHECK(json_is_object(v) && json_is_string(json_object_get(v, "status")));
	json_decref(v);
}

static void fuzz_shape(const uint8_t *data, size_t size, int shape)
{
	wire_msg msg;
	int rc = json_decode_request((const char *)data, size, shape, cmds, errs, BATCH_CAP, &msg);
	int want = expect_accept(data, size, shape);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(msg.count == 0 && msg.error[0] != '\0');
		FUZZ_CHECK(!want || rc == -ENOMEM);
		FUZZ_CHECK(json_encode_error(BO_INVALID, msg.error, &sb) == 0);
		check_json(&sb, 0, 1);
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	FUZZ_CHECK(rc == 0 && want);
	FUZZ_CHECK(shape == JSON_ONE ? !msg.is_array && msg.count == 1
	                             : msg.is_array && msg.count >= 1 && msg.count <= BATCH_CAP);
	uint32_t n_valid = fuzz_check_request(cmds, errs, &msg, valid);

	/* The decoded commands are the msgpack decoder's: they round-trip. */
	FUZZ_CHECK(wire_encode_request(valid, n_valid, 1, &sb) == 0);
	wire_msg msg2;
	rc = wire_decode_request((const uint8_t *)sb.data, sb.size, again, errs2, BATCH_CAP, &msg2);
	FUZZ_CHECK(rc == 0 && msg2.count == n_valid && msg2.invalid == 0);
	for (uint32_t i = 0; i < n_valid; i++)
		FUZZ_CHECK(codec_cmd_equal(&valid[i], &again[i]));
	wire_free_maps(again, n_valid);

	/* The JSON reply: one per command, in the request's shape. */
	for (uint32_t i = 0; i < msg.count; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		res[i].op = cmds[i].op;
		res[i].status = i % 2 ? BO_THROTTLED : BO_NOT_FOUND;
		res[i].detail = i % 2 ? BO_D_NONE : BO_D_NO_EVENT;
		res[i].event_id = cmds[i].event_id;
		res[i].retry_after_ms = (uint32_t)i;
	}
	msgpack_sbuffer_clear(&sb);
	FUZZ_CHECK(json_encode_replies(res, errs, msg.count, msg.is_array, &sb) == 0);
	check_json(&sb, msg.is_array, msg.count);
	msgpack_sbuffer_destroy(&sb);
	wire_free_maps(cmds, msg.count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_shape(data, size, JSON_ONE);
	fuzz_shape(data, size, JSON_BATCH);
	return 0;
}
