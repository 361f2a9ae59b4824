/*
 * auth.c — the auth prefix of a request message (wire.h, "The shared
 * token"; schemas/protocol.md section 17).
 *
 * RULE
 *
 * A message begins with an auth prefix if and only if its first msgpack
 * value is a map of exactly one pair whose key is the string "auth". Then
 * the prefix is valid if and only if the value is a str or bin of
 * 1..BO_AUTH_TOKEN_LEN_MAX bytes lying wholly inside the message and at
 * least one byte follows it (the request). Anything about the rest of the
 * message is wire_decode_request's (or wire_decode_admin's) business: it
 * is decoded as if the prefix were not there, offsets in its error texts
 * counting from the request's first byte.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mpack.h"
#include "pack.h"

int wire_decode_auth(const uint8_t *buf, size_t len, const uint8_t **token, size_t *token_len,
                     wire_msg *out)
{
	assert((buf != NULL || len == 0) && token != NULL && token_len != NULL && out != NULL);
	memset(out, 0, sizeof(*out));
	*token = NULL;
	*token_len = 0;
	mpack_cur c = mpack_cur_init(buf, len);
	mpack_tok t;
	/* Not a one-pair map keyed "auth" (or not msgpack): no prefix. What is
	 * wrong with such a message is the request decoder's to say. */
	if (mpack_read(&c, &t) < 0 || t.kind != MPACK_MAP || t.n != 1)
		return 0;
	if (mpack_read(&c, &t) < 0 || !mpack_str_is(&t, WIRE_AUTH_KEY))
		return 0;
	if (mpack_read(&c, &t) < 0) {
		snprintf(out->error, sizeof(out->error), "the auth prefix ends early");
		return -EINVAL;
	}
	if (t.kind != MPACK_STR && t.kind != MPACK_BIN) {
		snprintf(out->error, sizeof(out->error), "'auth' must be a string, not %s",
		         mpack_kind_name(t.kind));
		return -EINVAL;
	}
	if (t.n == 0 || t.n > BO_AUTH_TOKEN_LEN_MAX) {
		snprintf(out->error, sizeof(out->error), "'auth' must be 1..%u bytes, not %u",
		         BO_AUTH_TOKEN_LEN_MAX, t.n);
		return -EINVAL;
	}
	if (c.left == 0) {
		snprintf(out->error, sizeof(out->error), "no request after the auth prefix");
		return -EINVAL;
	}
	/* mpack_read checked the token's bytes against what is left. */
	assert(t.data >= buf && t.data + t.n <= c.p && c.p < buf + len);
	*token = t.data;
	*token_len = t.n;
	_Static_assert(BO_AUTH_TOKEN_LEN_MAX < 1024, "a prefix's length fits an int");
	return (int)(c.p - buf);
}

int wire_encode_auth(const char *token, size_t len, msgpack_sbuffer *out)
{
	assert(token != NULL && out != NULL);
	if (len == 0 || len > BO_AUTH_TOKEN_LEN_MAX)
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 1) | pack_str(&pk, WIRE_AUTH_KEY) |
	             msgpack_pack_str_with_body(&pk, token, len);
	return pack_finish(out, start, failed);
}
