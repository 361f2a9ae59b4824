/*
 * auth_test.c — proves the auth prefix of the wire codec (protocol/auth.c):
 * the shared token in front of a request, as schemas/protocol.md section 17
 * describes it.
 *
 * How:
 *  - The doc's bytes: wire_encode_auth("s3cret") followed by the 50 bytes
 *    of section 8's release are the 63 bytes the doc shows; decoding them
 *    gives a 13-byte prefix, the token, and a request that decodes to the
 *    release command — the request after a prefix is read as a message of
 *    its own.
 *  - Not a prefix (0, nothing consumed): a command map, an array, the admin
 *    requests, a one-pair map keyed "op", a two-pair map keyed "auth" first,
 *    a non-string key, garbage, the empty message.
 *  - A broken prefix (-EINVAL with a message): a value that is not a
 *    string, an empty one, 257 bytes, a prefix with nothing after it, one
 *    that ends inside its value; while 256 bytes, a bin, and non-minimal
 *    msgpack forms (map16, str8) are accepted.
 *  - Every truncation of a prefixed message, read from an exact-size heap
 *    copy (ASan sees any over-read): 0 before the key is whole, -EINVAL
 *    until a request byte follows, the prefix's length after; a returned
 *    token always lies inside the message, before the request.
 *  - The encoder refuses an empty or over-long token and leaves the buffer
 *    as it was.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "protocol/wire.h"

/* The 50-byte release of schemas/protocol.md section 8. */
static const uint8_t release_doc[] = {
        0x85, 0xa2, 'o',  'p',  0xa7, 'r',  'e',  'l',  'e',  'a',  's',  'e', 0xa5,
        'e',  'v',  'e',  'n',  't',  0x2a, 0xa6, 'c',  'l',  'i',  'e',  'n', 't',
        0x07, 0xa7, 'r',  'e',  'q',  'u',  'e',  's',  't',  0x01, 0xa4, 'h', 'o',
        'l',  'd',  0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
};

/* Decodes from an exact-size heap copy; checks what every outcome
 * promises about the token. */
static int dec(const void *buf, size_t len, const uint8_t **tok_off, size_t *tok_len, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	const uint8_t *tok = (const uint8_t *)"x";
	*tok_len = 99;
	int rc = wire_decode_auth(copy, len, &tok, tok_len, m);
	if (rc > 0) {
		cr_assert((size_t)rc < len, "a request follows the prefix");
		cr_assert(tok >= copy && tok + *tok_len <= copy + rc,
		          "the token lies inside the prefix");
		cr_assert(*tok_len >= 1 && *tok_len <= BO_AUTH_TOKEN_LEN_MAX);
		cr_assert_eq(m->error[0], '\0');
		/* Hand back the offset: the copy dies here. */
		*tok_off = (const uint8_t *)buf + (tok - copy);
	} else {
		cr_assert_null(tok, "no token without a prefix");
		cr_assert_eq(*tok_len, 0);
		cr_assert((rc == 0) == (m->error[0] == '\0'),
		          "a refusal has a message, only a refusal");
		*tok_off = NULL;
	}
	free(copy);
	return rc;
}

/* A prefixed message: prefix bytes then the doc's release. */
static size_t with_release(const uint8_t *prefix, size_t plen, uint8_t *out)
{
	memcpy(out, prefix, plen);
	memcpy(out + plen, release_doc, sizeof(release_doc));
	return plen + sizeof(release_doc);
}

Test(auth_prefix, doc_bytes)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_auth("s3cret", 6, &sb), 0);
	static const uint8_t prefix[] = {0x81, 0xa4, 'a', 'u', 't', 'h', 0xa6,
	                                 's',  '3',  'c', 'r', 'e', 't'};
	cr_assert_eq(sb.size, sizeof(prefix));
	cr_assert_arr_eq(sb.data, prefix, sizeof(prefix));
	msgpack_sbuffer_write(&sb, (const char *)release_doc, sizeof(release_doc));
	cr_assert_eq(sb.size, 63, "the doc says 63 bytes");

	const uint8_t *tok;
	size_t tok_len;
	wire_msg m;
	int rc = dec(sb.data, sb.size, &tok, &tok_len, &m);
	cr_assert_eq(rc, 13);
	cr_assert_eq(tok_len, 6);
	cr_assert_arr_eq(tok, "s3cret", 6);

	bo_cmd cmd;
	wire_cmd_error e;
	rc = wire_decode_request((const uint8_t *)sb.data + 13, sb.size - 13, &cmd, &e, 1, &m);
	cr_assert_eq(rc, 0, "%s", m.error);
	cr_assert_eq(e.status, BO_OK, "%s", e.text);
	cr_assert_eq(cmd.op, BO_OP_RELEASE);
	cr_assert_eq(cmd.event_id, 42);
	cr_assert_eq(cmd.client_id, 7);
	cr_assert_eq(cmd.request_id, 1);
	cr_assert_eq(cmd.claim_id, 4294967296ull);
	msgpack_sbuffer_destroy(&sb);
}

Test(auth_prefix, not_a_prefix)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} cases[] = {
	        {"the release command", (const char *)release_doc, sizeof(release_doc)},
	        {"an array of one command",
	         "\x91\x82\xa2op\xabquery_avail\xa5"
	         "event\x01",
	         20},
	        {"server_status", "\x81\xa2op\xadserver_status", 18},
	        {"a one-pair map keyed op",
	         "\x81\xa2op\xa4"
	         "auth",
	         9},
	        {"a two-pair map keyed auth first",
	         "\x82\xa4"
	         "auth\xa1x\xa2op\xa1y",
	         14},
	        {"a one-pair map with an integer key",
	         "\x81\x01\xa4"
	         "auth\x01",
	         8},
	        {"the key 'authx'",
	         "\x81\xa5"
	         "authx\xa1x\x01",
	         10},
	        {"the key 'aut'",
	         "\x81\xa3"
	         "aut\xa1x\x01",
	         8},
	        {"garbage", "\xc1\xc1\xc1", 3},
	        {"a lone fixmap header", "\x81", 1},
	        {"the empty message", "", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *tok;
		size_t tok_len;
		wire_msg m;
		int rc = dec(cases[i].bytes, cases[i].len, &tok, &tok_len, &m);
		cr_assert_eq(rc, 0, "%s: %d (%s)", cases[i].name, rc, m.error);
	}
}

Test(auth_prefix, broken)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
		const char *error;
	} cases[] = {
	        {"an integer token",
	         "\x81\xa4"
	         "auth\x05\x01",
	         8, "'auth' must be a string, not "},
	        {"a map token",
	         "\x81\xa4"
	         "auth\x80\x01",
	         8, "'auth' must be a string, not "},
	        {"an empty token",
	         "\x81\xa4"
	         "auth\xa0\x01",
	         8, "'auth' must be 1..256 bytes, not 0"},
	        {"nothing after the prefix",
	         "\x81\xa4"
	         "auth\xa2xy",
	         9, "no request after the auth prefix"},
	        {"a token that ends early",
	         "\x81\xa4"
	         "auth\xa5xy",
	         9, "the auth prefix ends early"},
	        {"no token at all",
	         "\x81\xa4"
	         "auth",
	         6, "the auth prefix ends early"},
	        {"0xc1 as the token",
	         "\x81\xa4"
	         "auth\xc1\x01",
	         8, "the auth prefix ends early"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *tok;
		size_t tok_len;
		wire_msg m;
		int rc = dec(cases[i].bytes, cases[i].len, &tok, &tok_len, &m);
		cr_assert_eq(rc, -EINVAL, "%s: %d", cases[i].name, rc);
		cr_assert(strncmp(m.error, cases[i].error, strlen(cases[i].error)) == 0, "%s: '%s'",
		          cases[i].name, m.error);
	}
}

/* A prefix of a token of len bytes in str16 form (any length), by hand. */
static size_t prefix_str16(size_t len, uint8_t *out)
{
	size_t n = 0;
	out[n++] = 0x81;
	memcpy(out + n,
	       "\xa4"
	       "auth",
	       5);
	n += 5;
	out[n++] = 0xda;
	out[n++] = (uint8_t)(len >> 8);
	out[n++] = (uint8_t)len;
	memset(out + n, 'k', len);
	return n + len;
}

Test(auth_prefix, token_length_bounds)
{
	static uint8_t msg[1024];
	const uint8_t *tok;
	size_t tok_len;
	wire_msg m;
	size_t plen = prefix_str16(BO_AUTH_TOKEN_LEN_MAX, msg);
	size_t len = with_release(msg, plen, msg);
	cr_assert_eq(dec(msg, len, &tok, &tok_len, &m), (int)plen, "256 bytes: %s", m.error);
	cr_assert_eq(tok_len, BO_AUTH_TOKEN_LEN_MAX);
	cr_assert_eq(tok, msg + 9);

	plen = prefix_str16(BO_AUTH_TOKEN_LEN_MAX + 1, msg);
	len = with_release(msg, plen, msg);
	cr_assert_eq(dec(msg, len, &tok, &tok_len, &m), -EINVAL);
	cr_assert_str_eq(m.error, "'auth' must be 1..256 bytes, not 257");
}

Test(auth_prefix, other_forms_accepted)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t plen, tok_at, tok_len;
	} cases[] = {
	        {"a bin token",
	         "\x81\xa4"
	         "auth\xc4\x03"
	         "abc",
	         11, 8, 3},
	        {"a str8 token",
	         "\x81\xa4"
	         "auth\xd9\x03"
	         "abc",
	         11, 8, 3},
	        {"a map16 header",
	         "\xde\x00\x01\xa4"
	         "auth\xa3"
	         "abc",
	         12, 9, 3},
	        {"a str8 key",
	         "\x81\xd9\x04"
	         "auth\xa3"
	         "abc",
	         11, 8, 3},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t msg[128];
		size_t len = with_release((const uint8_t *)cases[i].bytes, cases[i].plen, msg);
		const uint8_t *tok;
		size_t tok_len;
		wire_msg m;
		int rc = dec(msg, len, &tok, &tok_len, &m);
		cr_assert_eq(rc, (int)cases[i].plen, "%s: %d (%s)", cases[i].name, rc, m.error);
		cr_assert_eq(tok, msg + cases[i].tok_at, "%s", cases[i].name);
		cr_assert_eq(tok_len, cases[i].tok_len, "%s", cases[i].name);
		cr_assert_arr_eq(tok, "abc", 3);
	}
}

Test(auth_prefix, every_truncation)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_auth("s3cret", 6, &sb), 0);
	msgpack_sbuffer_write(&sb, (const char *)release_doc, sizeof(release_doc));
	for (size_t k = 0; k <= sb.size; k++) {
		const uint8_t *tok;
		size_t tok_len;
		wire_msg m;
		int rc = dec(sb.data, k, &tok, &tok_len, &m);
		/* 0x81 "auth" is 6 bytes; the token ends at 13. */
		int want = k < 6 ? 0 : k <= 13 ? -EINVAL : 13;
		cr_assert_eq(rc, want, "cut at %zu: %d, want %d (%s)", k, rc, want, m.error);
	}
	msgpack_sbuffer_destroy(&sb);
}

Test(auth_prefix, encoder_refuses)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "xy", 2);
	static char big[BO_AUTH_TOKEN_LEN_MAX + 1];
	memset(big, 'k', sizeof(big));
	cr_assert_eq(wire_encode_auth("", 0, &sb), -EINVAL);
	cr_assert_eq(wire_encode_auth(big, sizeof(big), &sb), -EINVAL);
	cr_assert_eq(sb.size, 2, "the buffer is as it was");
	cr_assert_eq(wire_encode_auth(big, BO_AUTH_TOKEN_LEN_MAX, &sb), 0);
	cr_assert_eq(sb.size, 2 + 1 + 5 + 3 + BO_AUTH_TOKEN_LEN_MAX, "str16 for 256 bytes");
	msgpack_sbuffer_destroy(&sb);
}
