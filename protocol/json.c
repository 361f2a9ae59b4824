/*
 * json.c — the HTTP/JSON form of the wire protocol (json.h), over jansson.
 *
 * ONE SET OF RULES
 *
 * A JSON request is decoded by turning it into the msgpack message it
 * stands for and handing that to wire_decode_request(): objects become
 * maps (keys in the order written: jansson keeps insertion order), arrays
 * arrays, strings strings (their bytes, NULs included), integers msgpack
 * integers (negative ones as negative), reals floats, true/false booleans,
 * null nil. So every command rule, every detail and every error text of
 * schemas/protocol.md §3 applies to JSON unchanged ("'seats' must be an
 * array", "'event' must be an unsigned integer, not a float", ...) and
 * there is no second copy of the key table to drift. Replies go the same
 * way backwards: wire_encode_replies() writes each reply, and its map is
 * copied out as a JSON object key by key, so a JSON reply has exactly the
 * keys and values of the msgpack one (§4).
 *
 * What JSON adds, before anything is built (message-level, -EINVAL):
 *  - nesting: a scan of the raw bytes (brackets outside strings) refuses
 *    containers nested deeper than JSON_DEPTH_MAX, because jansson parses
 *    recursively (its own bound, 2048 frames, is far above ours);
 *  - a batch longer than `cap` is refused by the same scan (commas at depth
 *    1 of a top-level array), so a body of a million commands never becomes
 *    a million jansson objects;
 *  - jansson's own refusals: not JSON, invalid UTF-8, a key given twice in
 *    one object (JSON_REJECT_DUPLICATES: a JSON object cannot carry the
 *    duplicate to the command rule, so it is refused whole), an integer
 *    outside -2^63..2^63-1 ("too big integer"), trailing bytes (the EOF
 *    check stays on);
 *  - the shape: JSON_ONE takes one object, JSON_BATCH an array of 1..cap.
 * "\u0000" is accepted inside strings (JSON_ALLOW_NUL): a payref is bytes,
 * as over msgpack, where a NUL is just a byte.
 *
 * Memory: the caller bounds the body (BO_HTTP_BODY_MAX); jansson then
 * holds at most about 20 bytes per body byte (a 32-byte integer object and
 * an 8-byte array slot for each "0," of an array) until the decode ends.
 *
 * OUTPUT
 *
 * JSON is written directly into the caller's msgpack_sbuffer. Strings are
 * escaped as base/json.h does (quote and backslash escaped, bytes outside
 * 0x20..0x7e as \u00XX), so the output is valid JSON and ASCII whatever
 * bytes a text holds; the protocol's own texts are ASCII already.
 */
#include "json.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <msgpack/pack.h>

#include "mpack.h"
#include "projection.h"

/* ---- Writing JSON -------------------------------------------------------- */

/* Each put_* returns 0, or -1 when the buffer cannot grow; callers OR the
 * results and cut the buffer back once at the end (json_finish). */
static int put(msgpack_sbuffer *b, const char *s, size_t n)
{
	return msgpack_sbuffer_write(b, s, n) == 0 ? 0 : -1;
}

static int put_cstr(msgpack_sbuffer *b, const char *s)
{
	return put(b, s, strlen(s));
}

static int put_u64(msgpack_sbuffer *b, uint64_t v)
{
	char d[24];
	int n = snprintf(d, sizeof(d), "%" PRIu64, v);
	return put(b, d, (size_t)n);
}

static int put_i64(msgpack_sbuffer *b, int64_t v)
{
	char d[24];
	int n = snprintf(d, sizeof(d), "%" PRId64, v);
	return put(b, d, (size_t)n);
}

/* A JSON string of s[0..n): see OUTPUT above. */
static int put_str(msgpack_sbuffer *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	int rc = put(b, "\"", 1);
	size_t run = 0; /* bytes of s[i - run .. i) still to copy as they are */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch <= 0x7e && ch != '"' && ch != '\\') {
			run++;
			continue;
		}
		rc |= put(b, s + i - run, run);
		run = 0;
		if (ch == '"' || ch == '\\') {
			char esc[2] = {'\\', (char)ch};
			rc |= put(b, esc, 2);
		} else {
			char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
			rc |= put(b, esc, 6);
		}
	}
	rc |= put(b, s + n - run, run);
	return rc | put(b, "\"", 1);
}

/* "key": */
static int put_key(msgpack_sbuffer *b, const char *key)
{
	return put_str(b, key, strlen(key)) | put(b, ":", 1);
}

static int json_finish(msgpack_sbuffer *out, size_t start, int failed)
{
	if (!failed)
		return 0;
	out->size = start;
	return -ENOMEM;
}

/* ---- msgpack -> JSON (replies) ------------------------------------------- */

/* Copies the msgpack value at c (well formed: our own encoder wrote it) as
 * JSON. Replies nest 4 deep at most; depth guards the recursion anyway. */
static int mp_value(mpack_cur *c, msgpack_sbuffer *out, unsigned depth)
{
	mpack_tok t;
	if (depth > WIRE_DEPTH_MAX || mpack_read(c, &t) < 0)
		return -1;
	int rc = 0;
	switch (t.kind) {
	case MPACK_NIL:
		return put_cstr(out, "null");
	case MPACK_BOOL:
		return put_cstr(out, t.u ? "true" : "false");
	case MPACK_UINT:
		return put_u64(out, t.u);
	case MPACK_NINT:
		return put_i64(out, t.i);
	case MPACK_STR:
		return put_str(out, (const char *)t.data, t.n);
	case MPACK_ARRAY:
		rc = put(out, "[", 1);
		for (uint32_t i = 0; i < t.n && rc == 0; i++)
			rc = (i ? put(out, ",", 1) : 0) | mp_value(c, out, depth + 1);
		return rc | put(out, "]", 1);
	case MPACK_MAP:
		rc = put(out, "{", 1);
		for (uint32_t i = 0; i < t.n && rc == 0; i++) {
			rc = (i ? put(out, ",", 1) : 0) | mp_value(c, out, depth + 1) |
			     put(out, ":", 1) | mp_value(c, out, depth + 1);
		}
		return rc | put(out, "}", 1);
	default:
		return -1; /* floats, bins, exts: no reply carries one */
	}
}

/* Copies one msgpack reply map mp[0..len) as a JSON object, adding
 * "retry_after_ms": retry_ms when retry_ms > 0 and the map has no such key
 * (the gateway's msgpack reply may come to carry it itself). */
static int mp_reply(const char *mp, size_t len, uint32_t retry_ms, msgpack_sbuffer *out)
{
	mpack_cur c = mpack_cur_init((const uint8_t *)mp, len);
	mpack_tok t;
	if (mpack_read(&c, &t) < 0 || t.kind != MPACK_MAP)
		return -1;
	int rc = put(out, "{", 1);
	for (uint32_t i = 0; i < t.n && rc == 0; i++) {
		mpack_cur key = c;
		mpack_tok k;
		if (mpack_read(&key, &k) == 0 && mpack_str_is(&k, "retry_after_ms"))
			retry_ms = 0;
		rc = (i ? put(out, ",", 1) : 0) | mp_value(&c, out, 1) | put(out, ":", 1) |
		     mp_value(&c, out, 1);
	}
	if (retry_ms > 0)
		rc |= put(out, ",", 1) | put_key(out, "retry_after_ms") | put_u64(out, retry_ms);
	return rc | put(out, "}", 1);
}

/* ---- Encoders ------------------------------------------------------------ */

int json_encode_replies(const bo_result *res, const wire_cmd_error *errs, uint32_t count,
                        int is_array, msgpack_sbuffer *out)
{
	return json_encode_replies_primary(res, errs, NULL, count, is_array, out);
}

int json_encode_replies_primary(const bo_result *res, const wire_cmd_error *errs,
                                const wire_primary *primary, uint32_t count, int is_array,
                                msgpack_sbuffer *out)
{
	assert(out != NULL && (res != NULL || count == 0));
	assert(is_array ? count <= WIRE_BATCH_MAX : count == 1);
	size_t start = out->size;
	msgpack_sbuffer mp;
	msgpack_sbuffer_init(&mp);
	int failed = is_array ? put(out, "[", 1) : 0;
	int rc = 0;
	for (uint32_t i = 0; i < count && rc == 0 && !failed; i++) {
		const wire_cmd_error *e = errs ? &errs[i] : NULL;
		mp.size = 0;
		rc = wire_encode_replies_primary(&res[i], e, primary ? &primary[i] : NULL, 1, 0, &mp);
		if (rc < 0)
			break;
		int shed = res[i].status == BO_THROTTLED || res[i].status == BO_BUSY;
		uint32_t retry_ms = (!e || e->status == BO_OK) && shed ? res[i].retry_after_ms : 0;
		failed |= (i ? put(out, ",", 1) : 0) | mp_reply(mp.data, mp.size, retry_ms, out);
	}
	msgpack_sbuffer_destroy(&mp);
	if (rc < 0) {
		out->size = start;
		return rc;
	}
	if (is_array)
		failed |= put(out, "]", 1);
	return json_finish(out, start, failed);
}

int json_encode_error(int status, const char *text, msgpack_sbuffer *out)
{
	assert(text != NULL && out != NULL);
	msgpack_sbuffer mp;
	msgpack_sbuffer_init(&mp);
	int rc = wire_encode_error(status, text, &mp);
	if (rc == 0) {
		size_t start = out->size;
		rc = json_finish(out, start, mp_reply(mp.data, mp.size, 0, out));
	}
	msgpack_sbuffer_destroy(&mp);
	return rc;
}

int json_http_status(int status)
{
	switch (status) {
	case BO_OK:
		return 200;
	case BO_TAKEN:
	case BO_CONFLICT:
		return 409;
	case BO_EXPIRED:
		return 410;
	case BO_NOT_FOUND:
		return 404;
	case BO_INVALID:
		return 400;
	case BO_LIMIT:
		return 422;
	case BO_BUSY:
		return 503;
	case BO_THROTTLED:
		return 429;
	case BO_NOT_PRIMARY:
		return 421; /* Misdirected Request: ask the server the reply names */
	default:
		return 500; /* not a bo_status: a bug upstream, never a client's fault */
	}
}

int json_encode_event_image(const bo_event_image *im, msgpack_sbuffer *out)
{
	assert(im != NULL && out != NULL);
	if (!wire_event_image_valid(im))
		return -EINVAL;
	size_t start = out->size;
	const char *ok = bo_status_str(BO_OK);
	int rc = put(out, "{", 1) | put_key(out, "status") | put_str(out, ok, strlen(ok));
	rc |= put(out, ",", 1) | put_key(out, "event") | put_u64(out, im->event_id);
	rc |= put(out, ",", 1) | put_key(out, "seq") | put_u64(out, im->seq);
	rc |= put(out, ",", 1) | put_key(out, "categories") | put_u64(out, im->category_count);
	rc |= put(out, ",", 1) | put_key(out, "rows") | put(out, "[", 1);
	for (uint32_t r = 0; r < im->row_count; r++) {
		rc |= put_cstr(out, r ? ",{" : "{") | put_key(out, "section") |
		      put_u64(out, im->rows[r].section) | put(out, ",", 1) | put_key(out, "seats") |
		      put_u64(out, im->rows[r].seats) | put(out, "}", 1);
	}
	rc |= put_cstr(out, "],") | put_key(out, "seats") | put(out, "[", 1);
	for (uint32_t s = 0; s < im->seat_count; s++) {
		const char *name = bo_seat_state_str(im->states[s]);
		rc |= (s ? put(out, ",", 1) : 0) | put_str(out, name, strlen(name));
	}
	rc |= put_cstr(out, "],") | put_key(out, "seat_categories") | put(out, "[", 1);
	for (uint32_t s = 0; s < im->seat_count; s++)
		rc |= (s ? put(out, ",", 1) : 0) | put_u64(out, im->categories[s]);
	rc |= put_cstr(out, "],") | put_key(out, "pools") | put(out, "[", 1);
	for (uint32_t p = 0; p < im->pool_count; p++) {
		rc |= put_cstr(out, p ? ",{" : "{") | put_key(out, "capacity") |
		      put_u64(out, im->pool_capacity[p]) | put(out, ",", 1) | put_key(out, "free") |
		      put_u64(out, im->pool_free[p]) | put(out, "}", 1);
	}
	rc |= put_cstr(out, "]}");
	return json_finish(out, start, rc);
}

/* ---- Decoding ------------------------------------------------------------ */

/* The scan before jansson: nesting depth, the top-level array a JSON_ONE
 * body must not be, and the length of a batch, from the brackets and
 * commas outside strings. Exact for valid JSON; on invalid JSON it may say
 * anything, and jansson refuses it then (with its own recursion bound).
 * Returns 0 or -1 with out->error. */
static int scan(const char *b, size_t len, int shape, uint32_t cap, wire_msg *out)
{
	unsigned depth = 0;
	int in_str = 0, top_array = -1; /* -1: top level not seen yet */
	uint64_t commas = 0;            /* at depth 1 of a top-level array */
	for (size_t i = 0; i < len; i++) {
		char ch = b[i];
		if (in_str) {
			if (ch == '\\')
				i++; /* the escaped byte cannot end the string */
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		switch (ch) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (top_array < 0)
				top_array = ch == '[';
			if (top_array == 1 && shape == JSON_ONE) {
				snprintf(out->error, sizeof(out->error),
				         "expected one command object, not an array");
				return -1;
			}
			if (++depth > JSON_DEPTH_MAX) {
				snprintf(out->error, sizeof(out->error),
				         "containers nested deeper than %u (at byte %zu)",
				         JSON_DEPTH_MAX, i);
				return -1;
			}
			break;
		case ']':
		case '}':
			depth -= depth > 0;
			break;
		case ',':
			commas += depth == 1 && top_array == 1;
			break;
		default:
			break;
		}
	}
	if (commas >= cap) {
		snprintf(out->error, sizeof(out->error),
		         "batch of %" PRIu64 " commands exceeds the limit of %" PRIu32, commas + 1,
		         cap);
		return -1;
	}
	return 0;
}

/* Writes the JSON value v as the msgpack value it stands for (ONE SET OF
 * RULES above). Recursion is bounded by scan(). Returns 0 or -1 (no
 * memory). */
static int to_msgpack(const json_t *v, msgpack_packer *pk)
{
	int rc = 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		size_t key_len;
		json_t *val;
		rc = msgpack_pack_map(pk, json_object_size(v));
		json_object_keylen_foreach((json_t *)v, key, key_len, val)
		{
			rc |= msgpack_pack_str_with_body(pk, key, key_len) | to_msgpack(val, pk);
		}
		return rc;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;
		rc = msgpack_pack_array(pk, json_array_size(v));
		json_array_foreach(v, i, val)
		{
			rc |= to_msgpack(val, pk);
		}
		return rc;
	}
	case JSON_STRING:
		return msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		return i < 0 ? msgpack_pack_int64(pk, (int64_t)i)
		             : msgpack_pack_uint64(pk, (uint64_t)i);
	}
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(v));
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	default:
		return msgpack_pack_nil(pk);
	}
}

/* The shape rule of json.h; 0 or -1 with out->error. */
static int check_shape(const json_t *root, int shape, wire_msg *out)
{
	if (shape == JSON_ONE && !json_is_object(root)) {
		snprintf(out->error, sizeof(out->error), "expected one command object, not %s",
		         json_is_array(root) ? "an array" : "this value");
		return -1;
	}
	if (shape == JSON_BATCH && !json_is_array(root)) {
		snprintf(out->error, sizeof(out->error),
		         "expected an array of command objects, not %s",
		         json_is_object(root) ? "an object" : "this value");
		return -1;
	}
	if (shape == JSON_BATCH && json_array_size(root) == 0) {
		snprintf(out->error, sizeof(out->error), "empty batch: give 1 command or more");
		return -1;
	}
	return 0;
}

int json_decode_request(const char *body, size_t len, int shape, bo_cmd *cmds, wire_cmd_error *errs,
                        uint32_t cap, wire_msg *out)
{
	assert((body != NULL || len == 0) && cmds != NULL && errs != NULL && out != NULL);
	assert(cap >= 1 && (shape == JSON_ONE || shape == JSON_BATCH));
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		snprintf(out->error, sizeof(out->error), "empty body");
		return -EINVAL;
	}
	if (len > WIRE_MSG_MAX) { /* the caller's bound is lower; this one is ours */
		snprintf(out->error, sizeof(out->error), "body of %zu bytes exceeds %u bytes", len,
		         WIRE_MSG_MAX);
		return -EINVAL;
	}
	if (scan(body, len, shape, cap, out) < 0)
		return -EINVAL;
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		int nomem = json_error_code(&jerr) == json_error_out_of_memory;
		/* jansson's text may be longer than ours: cut it, keep where. */
		snprintf(out->error, sizeof(out->error), "not JSON (at byte %d): %.96s",
		         jerr.position, jerr.text);
		return nomem ? -ENOMEM : -EINVAL;
	}
	int rc = -EINVAL;
	msgpack_sbuffer mp;
	msgpack_sbuffer_init(&mp);
	if (check_shape(root, shape, out) == 0) {
		msgpack_packer pk;
		msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
		if (to_msgpack(root, &pk) < 0) {
			snprintf(out->error, sizeof(out->error), "out of memory");
			rc = -ENOMEM;
		} else if (mp.size > WIRE_MSG_MAX) {
			/* Only reals grow (3 bytes of JSON, 9 of msgpack): garbage. */
			snprintf(out->error, sizeof(out->error),
			         "request of %zu bytes as msgpack exceeds %u bytes", mp.size,
			         WIRE_MSG_MAX);
		} else {
			rc = wire_decode_request((const uint8_t *)mp.data, mp.size, cmds, errs, cap,
			                         out);
		}
	}
	msgpack_sbuffer_destroy(&mp);
	json_decref(root);
	return rc;
}
