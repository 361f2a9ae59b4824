/*
 * mpack.c — the bounded msgpack pull reader (mpack.h). mpack_read()
 * dispatches on the first byte to one reader per family of formats (fixed
 * values, integers, length-prefixed bodies, containers); every reader takes
 * bytes only through take(), which never passes the end.
 */
#include "mpack.h"

#include <assert.h>
#include <string.h>

mpack_cur mpack_cur_init(const uint8_t *buf, size_t len)
{
	assert(buf != NULL || len == 0);
	return (mpack_cur){.base = buf, .p = buf, .left = len};
}

/* An n-byte big-endian field (n <= 8). */
static uint64_t be(const uint8_t *p, uint32_t n)
{
	uint64_t v = 0;
	for (uint32_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Two's complement of an n-byte big-endian field without
 * implementation-defined conversions. */
static int64_t be_signed(const uint8_t *p, uint32_t n)
{
	uint64_t v = be(p, n);
	uint64_t sign = (uint64_t)1 << (8 * n - 1);
	if (!(v & sign))
		return (int64_t)v;
	uint64_t mag = (n == 8 ? 0 : ((uint64_t)1 << (8 * n))) - v; /* wraps for n == 8 */
	if (mag == ((uint64_t)1 << 63))
		return INT64_MIN;
	return -(int64_t)mag;
}

/* Takes n bytes from the cursor, or returns NULL (cursor unchanged). */
static const uint8_t *take(mpack_cur *c, uint64_t n)
{
	if (n > c->left)
		return NULL;
	const uint8_t *p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static void set_int(mpack_tok *t, int64_t v)
{
	if (v >= 0) {
		t->kind = MPACK_UINT;
		t->u = (uint64_t)v;
	} else {
		t->kind = MPACK_NINT;
		t->i = v;
	}
}

/* uint 8/16/32/64 (unsigned = 1) or int 8/16/32/64: a w-byte field. */
static int rd_int(mpack_cur *c, mpack_tok *t, uint32_t w, int is_unsigned)
{
	const uint8_t *q = take(c, w);
	if (!q)
		return -1;
	if (is_unsigned) {
		t->kind = MPACK_UINT;
		t->u = be(q, w);
	} else {
		set_int(t, be_signed(q, w));
	}
	return 0;
}

/* A body of n bytes follows (str, bin, ext). */
static int rd_body(mpack_cur *c, mpack_tok *t, uint8_t kind, uint32_t n)
{
	t->kind = kind;
	t->n = n;
	t->data = take(c, n);
	return t->data ? 0 : -1;
}

/* A lenw-byte length, then (ext only) a type byte, then the body. */
static int rd_sized(mpack_cur *c, mpack_tok *t, uint8_t kind, uint32_t lenw)
{
	const uint8_t *q = take(c, lenw);
	if (!q)
		return -1;
	if (kind == MPACK_EXT && !take(c, 1)) /* the ext type byte */
		return -1;
	return rd_body(c, t, kind, (uint32_t)be(q, lenw));
}

/* An array or map of n elements/pairs. Every element takes at least one
 * byte: a count the bytes left cannot cover is refused here, before any
 * caller loops over it. */
static int rd_count(mpack_cur *c, mpack_tok *t, uint8_t kind, uint32_t n)
{
	t->kind = kind;
	t->n = n;
	return (uint64_t)n * (kind == MPACK_MAP ? 2u : 1u) > c->left ? -1 : 0;
}

/* An array or map whose count is a w-byte field. */
static int rd_count_w(mpack_cur *c, mpack_tok *t, uint8_t kind, uint32_t w)
{
	const uint8_t *q = take(c, w);
	if (!q)
		return -1;
	return rd_count(c, t, kind, (uint32_t)be(q, w));
}

/* The formats of 0xc0..0xdf (everything but the fix* ranges). Families of
 * 2^k-byte widths are told apart by their offset in the family. */
static int rd_typed(mpack_cur *c, mpack_tok *t, uint8_t b)
{
	if (b >= 0xc4 && b <= 0xc6) /* bin 8/16/32 */
		return rd_sized(c, t, MPACK_BIN, 1u << (b - 0xc4));
	if (b >= 0xc7 && b <= 0xc9) /* ext 8/16/32 */
		return rd_sized(c, t, MPACK_EXT, 1u << (b - 0xc7));
	if (b >= 0xcc && b <= 0xcf) /* uint 8/16/32/64 */
		return rd_int(c, t, 1u << (b - 0xcc), 1);
	if (b >= 0xd0 && b <= 0xd3) /* int 8/16/32/64 */
		return rd_int(c, t, 1u << (b - 0xd0), 0);
	if (b >= 0xd4 && b <= 0xd8) /* fixext 1..16: the type byte and the body */
		return rd_body(c, t, MPACK_EXT, (1u << (b - 0xd4)) + 1);
	if (b >= 0xd9 && b <= 0xdb) /* str 8/16/32 */
		return rd_sized(c, t, MPACK_STR, 1u << (b - 0xd9));
	switch (b) {
	case 0xc0:
		t->kind = MPACK_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		t->kind = MPACK_BOOL;
		t->u = b == 0xc3;
		return 0;
	case 0xca:
	case 0xcb: /* float 32/64: the value is never used */
		t->kind = MPACK_FLOAT;
		return take(c, b == 0xca ? 4 : 8) ? 0 : -1;
	case 0xdc:
	case 0xdd:
		return rd_count_w(c, t, MPACK_ARRAY, b == 0xdc ? 2 : 4);
	case 0xde:
	case 0xdf:
		return rd_count_w(c, t, MPACK_MAP, b == 0xde ? 2 : 4);
	default:
		return -1; /* 0xc1: never used */
	}
}

int mpack_read(mpack_cur *c, mpack_tok *t)
{
	assert(c != NULL && t != NULL);
	memset(t, 0, sizeof(*t));
	const uint8_t *h = take(c, 1);
	if (!h)
		return -1;
	uint8_t b = *h;
	if (b <= 0x7f) { /* positive fixint */
		t->kind = MPACK_UINT;
		t->u = b;
		return 0;
	}
	if (b >= 0xe0) { /* negative fixint */
		t->kind = MPACK_NINT;
		t->i = (int64_t)b - 256;
		return 0;
	}
	if (b <= 0x8f)
		return rd_count(c, t, MPACK_MAP, b & 0x0fu);
	if (b <= 0x9f)
		return rd_count(c, t, MPACK_ARRAY, b & 0x0fu);
	if (b <= 0xbf)
		return rd_body(c, t, MPACK_STR, b & 0x1fu);
	return rd_typed(c, t, b);
}

mpack_walk_error mpack_walk(mpack_cur *c, uint32_t depth, uint32_t depth_max)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0)
		return MPACK_WALK_TRUNCATED;
	if (t.kind != MPACK_ARRAY && t.kind != MPACK_MAP)
		return MPACK_WALK_OK;
	if (depth > depth_max)
		return MPACK_WALK_DEPTH;
	uint64_t n = (uint64_t)t.n * (t.kind == MPACK_MAP ? 2u : 1u);
	for (uint64_t i = 0; i < n; i++) {
		mpack_walk_error rc = mpack_walk(c, depth + 1, depth_max);
		if (rc != MPACK_WALK_OK)
			return rc;
	}
	return MPACK_WALK_OK;
}

void mpack_skip(mpack_cur *c)
{
	/* An enclosing walk checked the value: it is complete, and shallower
	 * than that walk's bound, so no bound is needed here. */
	mpack_walk_error rc = mpack_walk(c, 1, UINT32_MAX);
	assert(rc == MPACK_WALK_OK);
	(void)rc;
}

int mpack_str_is(const mpack_tok *t, const char *s)
{
	/* Decoders try each key against several names: stop at the first
	 * byte that differs rather than measuring `s` every time (strlen was
	 * a sixth of a client's decoding, perf/README.md "Read side"). */
	if (t->kind != MPACK_STR)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (s[i] == '\0' || s[i] != (char)t->data[i])
			return 0;
	return s[t->n] == '\0';
}

void mpack_printable(const mpack_tok *t, char *dst, size_t cap)
{
	assert(cap >= 8);
	size_t n = t->n < 40 ? t->n : 40;
	if (n > cap - 4)
		n = cap - 4;
	size_t j = 0;
	for (size_t i = 0; i < n; i++)
		dst[j++] = (t->data[i] >= 0x20 && t->data[i] < 0x7f) ? (char)t->data[i] : '?';
	if (t->n > n) {
		dst[j++] = '.';
		dst[j++] = '.';
	}
	dst[j] = '\0';
}

const char *mpack_kind_name(int kind)
{
	/* As error messages use them: "must be a map, not an array". */
	static const char *const names[MPACK_KIND_COUNT] = {
	        [MPACK_NIL] = "nil",
	        [MPACK_BOOL] = "a boolean",
	        [MPACK_UINT] = "an unsigned integer",
	        [MPACK_NINT] = "a negative integer",
	        [MPACK_FLOAT] = "a float",
	        [MPACK_STR] = "a string",
	        [MPACK_BIN] = "a bin",
	        [MPACK_EXT] = "an ext",
	        [MPACK_ARRAY] = "an array",
	        [MPACK_MAP] = "a map",
	};
	return kind >= 0 && kind < MPACK_KIND_COUNT ? names[kind] : "an unknown value";
}
