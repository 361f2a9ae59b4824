/*
 * mpack.h — a bounded msgpack pull reader over a byte buffer, for input
 * that may be hostile (the wire codec reads requests and replies with it).
 *
 * A cursor (next byte, bytes left) and mpack_read(), which reads one value
 * header and returns its kind, its integer value, or its length/count.
 * Before a count is returned it is checked against the bytes left: a
 * string, bin or ext body must be there in full; an array of n needs >= n
 * bytes and a map of n >= 2n, because every value takes at least one byte.
 * So nothing is ever allocated or looped over for a count the input cannot
 * back, and no read leaves [base, base + len).
 *
 * mpack_walk() checks one whole value (nesting bounded by the caller), so a
 * decoder can walk a message once, then interpret it knowing it is well
 * formed and skip what it does not want with mpack_skip().
 *
 * Nothing here allocates; a NULL pointer is a programmer error (assert).
 */
#ifndef BO_PROTOCOL_MPACK_H
#define BO_PROTOCOL_MPACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct mpack_cur {
	const uint8_t *base; /* start of the buffer (for offsets in errors) */
	const uint8_t *p;    /* next byte */
	size_t left;         /* bytes from p to the end */
} mpack_cur;

typedef enum mpack_kind {
	MPACK_NIL,
	MPACK_BOOL,
	MPACK_UINT,
	MPACK_NINT,
	MPACK_FLOAT,
	MPACK_STR,
	MPACK_BIN,
	MPACK_EXT,
	MPACK_ARRAY,
	MPACK_MAP,
	MPACK_KIND_COUNT
} mpack_kind;

typedef struct mpack_tok {
	uint8_t kind;        /* mpack_kind */
	uint64_t u;          /* MPACK_UINT value, MPACK_BOOL 0/1 */
	int64_t i;           /* MPACK_NINT value (< 0) */
	uint32_t n;          /* STR/BIN/EXT bytes, ARRAY elements, MAP pairs */
	const uint8_t *data; /* STR/BIN/EXT body */
} mpack_tok;

/* A cursor over buf[0..len) (buf may be NULL when len is 0). */
mpack_cur mpack_cur_init(const uint8_t *buf, size_t len);

/* Reads one value header, and the body of a str/bin/ext, advancing c.
 * Any integer format holding a value >= 0 (the signed ones too) reads as
 * MPACK_UINT, one holding a value < 0 as MPACK_NINT.
 * Returns 0 and *t; -1 when the bytes end early, a count cannot be covered
 * by the bytes left, or the byte is 0xc1 (never used by msgpack). On -1 the
 * cursor has advanced by an unspecified amount and *t is meaningless. */
int mpack_read(mpack_cur *c, mpack_tok *t /* OUT */);

/* Why mpack_walk() failed. */
typedef enum mpack_walk_error {
	MPACK_WALK_OK,
	MPACK_WALK_TRUNCATED, /* mpack_read() failed inside the value */
	MPACK_WALK_DEPTH      /* a container deeper than depth_max */
} mpack_walk_error;

/* Reads one whole value whose first byte is at c, the value being at
 * nesting level `depth` (a top-level value is level 1), no container deeper
 * than depth_max. Recurses once per level. Returns MPACK_WALK_OK with c
 * after the value, or why not (c then points just after the byte where it
 * failed, for error offsets). */
mpack_walk_error mpack_walk(mpack_cur *c, uint32_t depth, uint32_t depth_max);

/* Skips one value that an earlier mpack_walk() of an enclosing value
 * accepted (asserts that it is complete). */
void mpack_skip(mpack_cur *c);

/* 1 when t is a string equal to the NUL-terminated s, else 0. */
int mpack_str_is(const mpack_tok *t, const char *s);

/* Copies up to 40 bytes of a string token into dst[0..cap) (cap >= 8),
 * NUL-terminated, printable ASCII only ('?' for any other byte, ".." when
 * cut short), so text quoting a client's bytes stays valid UTF-8. */
void mpack_printable(const mpack_tok *t, char *dst /* OUT */, size_t cap);

/* A kind as error texts name it ("an array", "a map", ...). */
const char *mpack_kind_name(int kind);

#endif /* BO_PROTOCOL_MPACK_H */
