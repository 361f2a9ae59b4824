/*
 * wire.c — msgpack codec of the wire protocol v1 (schemas/protocol.md).
 *
 * MESSAGE RULE
 *
 * A request is valid at message level if and only if: 1 <= len <=
 * WIRE_MSG_MAX; the bytes are exactly one msgpack value (no trailing
 * bytes; the never-used byte 0xc1 is an error); no container is nested
 * deeper than WIRE_DEPTH_MAX (top level = depth 1); the top level is a map
 * (one command) or an array of at most WIRE_BATCH_MAX values (commands).
 * Anything else is answered with ONE map {"status": "invalid", ...}.
 *
 * COMMAND RULE (applied to each command of a valid message; a failure
 * rejects that command only)
 *
 *  - It is a map whose keys are strings, each at most once, each one of
 *    the keys below; "op" names an op (bo_op_str) and every other key
 *    present applies to that op; every required key is present.
 *  - Values have the listed type; an integer fits its field (any msgpack
 *    int format, but a negative value where an unsigned one is expected is
 *    a type error); floats are never integers.
 *
 *      key       type               ops (R = required, O = optional)
 *      op        str                all R
 *      event     uint64             all R
 *      client    uint64             mutating R, queries O
 *      request   uint64             mutating R, queries O
 *      seats     [uint32] <= 16     hold_seats, block, unblock, query_seats R
 *      ttl_ms    uint32             hold_*, extend R
 *      category  uint8              hold_best R
 *      quantity  uint16             hold_best, hold_pool R
 *      pool      uint8              hold_pool R
 *      hold      uint64             extend, release, confirm R  (claim id)
 *      booking   uint64             cancel R                   (claim id)
 *      payref    str <= 32 bytes    confirm R
 *      map       seat map           create_event R
 *
 *    A value too large for its field is rejected with the engine's detail
 *    for that field (seats > 16 -> seat_count, category > 255 ->
 *    category_range, ...), so a client sees one code per fault whichever
 *    layer catches it. Values that fit are the engine's business.
 *  - Seat map: {"categories": uint32, "rows": [row...], "pools": [uint32...]},
 *    every key optional (0 / [] / []); a row is {"section": uint16,
 *    "seats": uint16, "category": uint8} or {"section": uint16,
 *    "categories": [uint8...] (<= 65535)}. Rows <= BO_ROWS_PER_EVENT_MAX,
 *    seats <= BO_SEATS_PER_EVENT_MAX, pools <= BO_POOLS_PER_EVENT_MAX,
 *    checked before the map is allocated (detail map_invalid); the seats of
 *    all maps of one message <= WIRE_MAP_SEATS_PER_MSG_MAX (status limit,
 *    detail seats_full). Whether the map is valid is bo_seatmap_check's
 *    business, in the engine.
 *
 * DECODER
 *
 * A pull parser over the byte buffer: a cursor (pointer, bytes left) and
 * rd_tok(), which reads one value header and returns its kind, its integer
 * value, or its length/count. Before a count is returned it is checked
 * against the bytes left: a string, bin or ext body must be there in full;
 * an array of n needs >= n bytes and a map of n >= 2n, because every value
 * takes at least one byte. Nothing is allocated for a count.
 * Pass 1 (wf_value) walks the whole message once, checking the message
 * rule, so pass 2, which interprets commands, knows the bytes are well
 * formed and can skip the rest of a rejected command with wf_value too.
 * Seat maps are read twice: once to count rows, seats and pools and check
 * them, then (after bo_seatmap_new) to fill them in.
 *
 * REPLIES are written with msgpack-c's packer; wire_decode_replies() reads
 * them back with the same pull parser (keys it does not know are skipped).
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <msgpack/pack.h>

/* ---- Names --------------------------------------------------------------- */

/* Machine names of bo_detail. Sized by its initialisers: a detail added to
 * engine.h without a name here makes the array one short of BO_D_COUNT (the
 * assertion below), a gap in the middle leaves a NULL (wire_test checks). */
const char *wire_detail_name(int detail) { return bo_detail_name(detail); }

/* Error text for a non-ok reply whose detail has none (gateway statuses). */
static const char *status_text(int status)
{
	switch (status) {
	case BO_BUSY:
		return "server busy, retry later";
	case BO_THROTTLED:
		return "event throttled, retry later";
	default:
		return bo_status_str(status);
	}
}

/* ---- Cursor and tokens --------------------------------------------------- */

typedef struct cur {
	const uint8_t *base; /* start of the message (for offsets in errors) */
	const uint8_t *p;    /* next byte */
	size_t left;         /* bytes from p to the end */
} cur;

enum tkind {
	T_NIL,
	T_BOOL,
	T_UINT,
	T_NINT,
	T_FLOAT,
	T_STR,
	T_BIN,
	T_EXT,
	T_ARRAY,
	T_MAP
};

/* Kinds as error messages name them ("must be a map, not an array"). */
static const char *const kind_names[] = {
        "nil",
        "a boolean",
        "an unsigned integer",
        "a negative integer",
        "a float",
        "a string",
        "a bin",
        "an ext",
        "an array",
        "a map",
};

typedef struct tok {
	uint8_t kind;        /* enum tkind */
	uint64_t u;          /* T_UINT value, T_BOOL 0/1 */
	int64_t i;           /* T_NINT value (< 0) */
	uint32_t n;          /* T_STR/T_BIN/T_EXT bytes, T_ARRAY elements, T_MAP pairs */
	const uint8_t *data; /* T_STR/T_BIN/T_EXT body */
} tok;

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
static const uint8_t *take(cur *c, uint64_t n)
{
	if (n > c->left)
		return NULL;
	const uint8_t *p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

/* Reads one value header (and the body of a str/bin/ext). Returns 0, or -1
 * when the bytes end early, a count cannot be covered by the bytes left, or
 * the byte is 0xc1. A signed-format int >= 0 is returned as T_UINT. */
static int rd_tok(cur *c, tok *t)
{
	memset(t, 0, sizeof(*t));
	const uint8_t *h = take(c, 1);
	if (!h)
		return -1;
	uint8_t b = *h;
	uint32_t lenw = 0; /* width of a length field that follows */
	const uint8_t *q;
	if (b <= 0x7f) {
		t->kind = T_UINT;
		t->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		t->kind = T_NINT;
		t->i = (int64_t)b - 256;
		return 0;
	}
	if (b >= 0x80 && b <= 0x8f) {
		t->kind = T_MAP;
		t->n = b & 0x0fu;
		goto count;
	}
	if (b >= 0x90 && b <= 0x9f) {
		t->kind = T_ARRAY;
		t->n = b & 0x0fu;
		goto count;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		t->kind = T_STR;
		t->n = b & 0x1fu;
		goto body;
	}
	switch (b) {
	case 0xc0:
		t->kind = T_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		t->kind = T_BOOL;
		t->u = b == 0xc3;
		return 0;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		t->kind = T_BIN;
		lenw = 1u << (b - 0xc4);
		goto length;
	case 0xc7:
	case 0xc8:
	case 0xc9:
		t->kind = T_EXT;
		lenw = 1u << (b - 0xc7);
		goto length;
	case 0xca:
	case 0xcb:
		t->kind = T_FLOAT;
		return take(c, b == 0xca ? 4 : 8) ? 0 : -1;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: {
		uint32_t w = 1u << (b - 0xcc);
		if (!(q = take(c, w)))
			return -1;
		t->kind = T_UINT;
		t->u = be(q, w);
		return 0;
	}
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		uint32_t w = 1u << (b - 0xd0);
		if (!(q = take(c, w)))
			return -1;
		int64_t v = be_signed(q, w);
		if (v >= 0) {
			t->kind = T_UINT;
			t->u = (uint64_t)v;
		} else {
			t->kind = T_NINT;
			t->i = v;
		}
		return 0;
	}
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		t->kind = T_EXT;
		t->n = 1u << (b - 0xd4);
		t->n += 1; /* the type byte */
		goto body;
	case 0xd9:
	case 0xda:
	case 0xdb:
		t->kind = T_STR;
		lenw = 1u << (b - 0xd9);
		goto length;
	case 0xdc:
	case 0xdd:
		t->kind = T_ARRAY;
		if (!(q = take(c, b == 0xdc ? 2 : 4)))
			return -1;
		t->n = (uint32_t)be(q, b == 0xdc ? 2 : 4);
		goto count;
	case 0xde:
	case 0xdf:
		t->kind = T_MAP;
		if (!(q = take(c, b == 0xde ? 2 : 4)))
			return -1;
		t->n = (uint32_t)be(q, b == 0xde ? 2 : 4);
		goto count;
	default:
		return -1; /* 0xc1: never used */
	}
length:
	if (!(q = take(c, lenw)))
		return -1;
	t->n = (uint32_t)be(q, lenw);
	if (t->kind == T_EXT && !take(c, 1)) /* the ext type byte */
		return -1;
body:
	if (!(t->data = take(c, t->n)))
		return -1;
	return 0;
count:
	/* Every element takes at least one byte: a count the bytes left cannot
	 * cover is refused here, before any caller loops over it. */
	if ((uint64_t)t->n * (t->kind == T_MAP ? 2u : 1u) > c->left)
		return -1;
	return 0;
}

/* Message-level walk: one well-formed value at `depth`. Returns 0, or -1
 * with *why set ("truncated" or "depth"). */
static int wf_value(cur *c, uint32_t depth, const char **why)
{
	tok t;
	if (rd_tok(c, &t) < 0) {
		*why = "truncated";
		return -1;
	}
	if (t.kind != T_ARRAY && t.kind != T_MAP)
		return 0;
	if (depth > WIRE_DEPTH_MAX) {
		*why = "depth";
		return -1;
	}
	uint64_t n = (uint64_t)t.n * (t.kind == T_MAP ? 2u : 1u);
	for (uint64_t i = 0; i < n; i++) {
		if (wf_value(c, depth + 1, why) < 0)
			return -1;
	}
	return 0;
}

/* Skips one value known to be well formed (pass 1 checked it). */
static void skip_value(cur *c)
{
	const char *why = NULL;
	int rc = wf_value(c, 1, &why);
	/* Pass 1 checked the whole message from the top: a value inside it is
	 * complete and shallower. */
	assert(rc == 0);
	(void)rc;
}

static int str_is(const tok *t, const char *s)
{
	size_t n = strlen(s);
	return t->kind == T_STR && t->n == n && memcmp(t->data, s, n) == 0;
}

/* Copies up to 40 bytes of a client string for an error message, printable
 * ASCII only (a reply must stay valid UTF-8 whatever the client sent). */
static void printable(const tok *t, char *dst, size_t cap)
{
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

/* Message-level check shared by both directions. Returns 0 and the first
 * token (cursor at the start of the message again), or -1 with msg->error. */
static int message_check(const uint8_t *buf, size_t len, cur *c, wire_msg *msg)
{
	c->base = buf;
	c->p = buf;
	c->left = len;
	if (len == 0) {
		snprintf(msg->error, sizeof(msg->error), "empty message");
		return -1;
	}
	if (len > WIRE_MSG_MAX) {
		snprintf(msg->error, sizeof(msg->error), "message of %zu bytes exceeds %u bytes",
		         len, WIRE_MSG_MAX);
		return -1;
	}
	const char *why = NULL;
	if (wf_value(c, 1, &why) < 0) {
		if (strcmp(why, "depth") == 0)
			snprintf(msg->error, sizeof(msg->error),
			         "containers nested deeper than %u (at byte %zu)", WIRE_DEPTH_MAX,
			         (size_t)(c->p - buf) - 1);
		else
			snprintf(msg->error, sizeof(msg->error),
			         "not msgpack: truncated or invalid value (at byte %zu of %zu)",
			         (size_t)(c->p - buf), len);
		return -1;
	}
	if (c->left != 0) {
		snprintf(msg->error, sizeof(msg->error),
		         "%zu trailing bytes after the message (it ends at byte %zu)", c->left,
		         (size_t)(c->p - buf));
		return -1;
	}
	c->p = buf;
	c->left = len;
	return 0;
}

/* ---- Request decoding ---------------------------------------------------- */

enum key {
	K_OP,
	K_EVENT,
	K_CLIENT,
	K_REQUEST,
	K_SEATS,
	K_TTL,
	K_CATEGORY,
	K_QUANTITY,
	K_POOL,
	K_HOLD,
	K_BOOKING,
	K_PAYREF,
	K_MAP,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
        [K_OP] = "op",
        [K_EVENT] = "event",
        [K_CLIENT] = "client",
        [K_REQUEST] = "request",
        [K_SEATS] = "seats",
        [K_TTL] = "ttl_ms",
        [K_CATEGORY] = "category",
        [K_QUANTITY] = "quantity",
        [K_POOL] = "pool",
        [K_HOLD] = "hold",
        [K_BOOKING] = "booking",
        [K_PAYREF] = "payref",
        [K_MAP] = "map",
};

#define KB(k) (1u << (k))

/* Keys an op requires, besides op and event (and client/request when it
 * mutates). */
static uint32_t op_keys(uint32_t op)
{
	switch (op) {
	case BO_OP_CREATE_EVENT:
		return KB(K_MAP);
	case BO_OP_HOLD_SEATS:
		return KB(K_SEATS) | KB(K_TTL);
	case BO_OP_HOLD_BEST:
		return KB(K_CATEGORY) | KB(K_QUANTITY) | KB(K_TTL);
	case BO_OP_HOLD_POOL:
		return KB(K_POOL) | KB(K_QUANTITY) | KB(K_TTL);
	case BO_OP_EXTEND:
		return KB(K_HOLD) | KB(K_TTL);
	case BO_OP_RELEASE:
		return KB(K_HOLD);
	case BO_OP_CONFIRM:
		return KB(K_HOLD) | KB(K_PAYREF);
	case BO_OP_CANCEL:
		return KB(K_BOOKING);
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
	case BO_OP_QUERY_SEATS:
		return KB(K_SEATS);
	case BO_OP_QUERY_AVAIL:
		return 0;
	default:
		break;
	}
	assert(!"op validated by the caller");
	return 0;
}

/* State of decoding one message: the seat budget spans its commands. */
typedef struct dec {
	uint64_t map_seats; /* seats of the maps allocated so far in this message */
	int nomem;          /* a map allocation failed */
} dec;

static void fail(wire_cmd_error *e, uint8_t status, uint8_t detail, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Records the first failure of a command (later ones are not looked for). */
static void fail(wire_cmd_error *e, uint8_t status, uint8_t detail, const char *fmt, ...)
{
	if (e->status != BO_OK)
		return;
	e->status = status;
	e->detail = detail;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

/* Reads an unsigned integer <= max into *v. A value over max is `detail`
 * (BO_D_NONE: malformed). Returns 0 or -1 (e filled). */
static int get_uint(cur *c, const char *name, uint64_t max, uint8_t detail, uint64_t *v,
                    wire_cmd_error *e)
{
	tok t;
	if (rd_tok(c, &t) < 0) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' is truncated", name);
		return -1;
	}
	if (t.kind == T_NINT) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' must not be negative (got %" PRId64 ")", name,
		     t.i);
		return -1;
	}
	if (t.kind != T_UINT) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an unsigned integer, not %s", name,
		     kind_names[t.kind]);
		return -1;
	}
	if (t.u > max) {
		fail(e, BO_INVALID, detail, "'%s' is %" PRIu64 ", more than %" PRIu64, name, t.u,
		     max);
		return -1;
	}
	*v = t.u;
	return 0;
}

/* Reads an array header of at most max elements. */
static int get_array(cur *c, const char *name, uint32_t max, uint8_t detail, uint32_t *n,
                     wire_cmd_error *e)
{
	tok t;
	if (rd_tok(c, &t) < 0 || t.kind != T_ARRAY) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an array", name);
		return -1;
	}
	if (t.n > max) {
		fail(e, BO_INVALID, detail, "'%s' has %" PRIu32 " entries, at most %" PRIu32, name,
		     t.n, max);
		return -1;
	}
	*n = t.n;
	return 0;
}

/* Reads a map header; returns its pair count or -1. */
static int64_t get_map(cur *c, const char *name, wire_cmd_error *e)
{
	tok t;
	if (rd_tok(c, &t) < 0 || t.kind != T_MAP) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a map", name);
		return -1;
	}
	return t.n;
}

/* Reads a key: a string. Returns 0 and the token, or -1. */
static int get_key(cur *c, const char *where, tok *k, wire_cmd_error *e)
{
	if (rd_tok(c, k) < 0 || k->kind != T_STR) {
		fail(e, BO_INVALID, BO_D_NONE, "keys of %s must be strings", where);
		return -1;
	}
	return 0;
}

static int unknown_key(const tok *k, const char *where, wire_cmd_error *e)
{
	char kb[48];
	printable(k, kb, sizeof(kb));
	fail(e, BO_INVALID, BO_D_NONE, "unknown key '%s'%s%s", kb, where[0] ? " in " : "", where);
	return -1;
}

static int dup_key(const char *name, wire_cmd_error *e)
{
	fail(e, BO_INVALID, BO_D_NONE, "key '%s' given twice", name);
	return -1;
}

/* A seat map row, first pass: checks it and returns its seat count and,
 * for a one-category row, the category (-1 for a per-seat list). */
typedef struct row_info {
	uint16_t section;
	uint16_t seats;
	int32_t category; /* -1: per-seat "categories" list */
	cur list;         /* where the per-seat list starts */
} row_info;

static int read_row(cur *c, uint32_t index, row_info *ri, wire_cmd_error *e)
{
	char where[32];
	snprintf(where, sizeof(where), "row %" PRIu32, index);
	int64_t pairs = get_map(c, "rows[]", e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0;
	enum {
		R_SECTION = 1,
		R_SEATS = 2,
		R_CATEGORY = 4,
		R_CATEGORIES = 8
	};
	memset(ri, 0, sizeof(*ri));
	ri->category = -1;
	for (int64_t i = 0; i < pairs; i++) {
		tok k;
		uint64_t v;
		if (get_key(c, "a row", &k, e) < 0)
			return -1;
		if (str_is(&k, "section")) {
			if ((seen & R_SECTION) && dup_key("section", e))
				return -1;
			if (get_uint(c, "section", UINT16_MAX, BO_D_MAP_INVALID, &v, e) < 0)
				return -1;
			ri->section = (uint16_t)v;
			seen |= R_SECTION;
		} else if (str_is(&k, "seats")) {
			if ((seen & R_SEATS) && dup_key("seats", e))
				return -1;
			if (get_uint(c, "seats", UINT16_MAX, BO_D_MAP_INVALID, &v, e) < 0)
				return -1;
			ri->seats = (uint16_t)v;
			seen |= R_SEATS;
		} else if (str_is(&k, "category")) {
			if ((seen & R_CATEGORY) && dup_key("category", e))
				return -1;
			if (get_uint(c, "category", UINT8_MAX, BO_D_MAP_INVALID, &v, e) < 0)
				return -1;
			ri->category = (int32_t)v;
			seen |= R_CATEGORY;
		} else if (str_is(&k, "categories")) {
			uint32_t n;
			if ((seen & R_CATEGORIES) && dup_key("categories", e))
				return -1;
			ri->list = *c;
			if (get_array(c, "categories", UINT16_MAX, BO_D_MAP_INVALID, &n, e) < 0)
				return -1;
			for (uint32_t s = 0; s < n; s++) {
				if (get_uint(c, "categories[]", UINT8_MAX, BO_D_MAP_INVALID, &v,
				             e) < 0)
					return -1;
			}
			ri->seats = (uint16_t)n;
			seen |= R_CATEGORIES;
		} else {
			return unknown_key(&k, where, e);
		}
	}
	if (!(seen & R_SECTION)) {
		fail(e, BO_INVALID, BO_D_NONE, "%s: missing key 'section'", where);
		return -1;
	}
	if ((seen & R_CATEGORIES) ? (seen & (R_SEATS | R_CATEGORY)) != 0
	                          : (seen & (R_SEATS | R_CATEGORY)) != (R_SEATS | R_CATEGORY)) {
		fail(e, BO_INVALID, BO_D_NONE,
		     "%s: give either 'seats' and 'category' or 'categories'", where);
		return -1;
	}
	return 0;
}

/* Decodes a create_event "map" value at c into a new seat map (*out), or
 * fails the command. Two passes: count and check, allocate, fill. */
static int read_seatmap(cur *c, dec *d, bo_seatmap **out, wire_cmd_error *e)
{
	*out = NULL;
	int64_t pairs = get_map(c, "map", e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0, row_count = 0, pool_count = 0;
	uint64_t category_count = 0, seat_count = 0;
	cur rows_at = {0}, pools_at = {0};
	for (int64_t i = 0; i < pairs; i++) {
		tok k;
		if (get_key(c, "'map'", &k, e) < 0)
			return -1;
		if (str_is(&k, "categories")) {
			if ((seen & 1) && dup_key("categories", e))
				return -1;
			if (get_uint(c, "categories", UINT32_MAX, BO_D_MAP_INVALID, &category_count,
			             e) < 0)
				return -1;
			seen |= 1;
		} else if (str_is(&k, "rows")) {
			if ((seen & 2) && dup_key("rows", e))
				return -1;
			if (get_array(c, "rows", BO_ROWS_PER_EVENT_MAX, BO_D_MAP_INVALID,
			              &row_count, e) < 0)
				return -1;
			rows_at = *c;
			for (uint32_t r = 0; r < row_count; r++) {
				row_info ri;
				if (read_row(c, r, &ri, e) < 0)
					return -1;
				seat_count += ri.seats;
			}
			if (seat_count > BO_SEATS_PER_EVENT_MAX) {
				fail(e, BO_INVALID, BO_D_MAP_INVALID,
				     "'map' has %" PRIu64 " seats, at most %u", seat_count,
				     BO_SEATS_PER_EVENT_MAX);
				return -1;
			}
			seen |= 2;
		} else if (str_is(&k, "pools")) {
			uint64_t v;
			if ((seen & 4) && dup_key("pools", e))
				return -1;
			if (get_array(c, "pools", BO_POOLS_PER_EVENT_MAX, BO_D_MAP_INVALID,
			              &pool_count, e) < 0)
				return -1;
			pools_at = *c;
			for (uint32_t p = 0; p < pool_count; p++) {
				if (get_uint(c, "pools[]", UINT32_MAX, BO_D_MAP_INVALID, &v, e) < 0)
					return -1;
			}
			seen |= 4;
		} else {
			return unknown_key(&k, "'map'", e);
		}
	}
	if (d->map_seats + seat_count > WIRE_MAP_SEATS_PER_MSG_MAX) {
		fail(e, BO_LIMIT, BO_D_SEATS_FULL,
		     "seat maps of one message exceed %u seats; split the create_events",
		     WIRE_MAP_SEATS_PER_MSG_MAX);
		return -1;
	}
	/* Counts are within limits.h, so NULL can only mean out of memory. */
	bo_seatmap *m = bo_seatmap_new(row_count, (uint32_t)seat_count, pool_count);
	if (!m) {
		d->nomem = 1;
		fail(e, BO_INVALID, BO_D_NONE, "out of memory");
		return -1;
	}
	d->map_seats += seat_count;
	m->category_count = (uint32_t)category_count;
	/* Second pass: the values were checked above, so these reads succeed. */
	wire_cmd_error scratch = {0};
	uint32_t first = 0;
	for (uint32_t r = 0; r < row_count; r++) {
		row_info ri;
		int rc = read_row(&rows_at, r, &ri, &scratch);
		assert(rc == 0);
		(void)rc;
		m->rows[r].section = ri.section;
		m->rows[r].seats = ri.seats;
		if (ri.category >= 0) {
			if (ri.seats > 0) /* categories may be NULL in a seatless map */
				memset(m->categories + first, ri.category, ri.seats);
		} else {
			uint32_t n = 0;
			uint64_t v = 0;
			rc = get_array(&ri.list, "categories", UINT16_MAX, 0, &n, &scratch);
			assert(rc == 0 && n == ri.seats);
			for (uint32_t s = 0; s < n; s++) {
				rc = get_uint(&ri.list, "categories[]", UINT8_MAX, 0, &v, &scratch);
				assert(rc == 0);
				m->categories[first + s] = (uint8_t)v;
			}
		}
		first += ri.seats;
	}
	assert(first == seat_count);
	for (uint32_t p = 0; p < pool_count; p++) {
		uint64_t v = 0;
		int rc = get_uint(&pools_at, "pools[]", UINT32_MAX, 0, &v, &scratch);
		assert(rc == 0);
		(void)rc;
		m->pool_capacity[p] = (uint32_t)v;
	}
	assert(scratch.status == BO_OK);
	*out = m;
	return 0;
}

/* Interprets one command (the value at c, well formed). Fills cmd and
 * returns 0, or fills e (cmd zeroed, nothing allocated) and returns -1. In
 * both cases c ends after the value. */
static int decode_cmd(cur *c, dec *d, bo_cmd *cmd, wire_cmd_error *e)
{
	cur start = *c;
	memset(cmd, 0, sizeof(*cmd));
	memset(e, 0, sizeof(*e));
	uint32_t seen = 0;
	cur map_at = {0};
	tok t;
	if (rd_tok(c, &t) < 0 || t.kind != T_MAP) {
		fail(e, BO_INVALID, BO_D_NONE, "a command must be a map, not %s",
		     kind_names[t.kind]);
		goto bad;
	}
	for (uint32_t i = 0; i < t.n; i++) {
		tok k;
		uint64_t v = 0;
		if (get_key(c, "a command", &k, e) < 0)
			goto bad;
		int key = -1;
		for (int j = 0; j < K_COUNT; j++) {
			if (str_is(&k, key_names[j])) {
				key = j;
				break;
			}
		}
		if (key < 0) {
			unknown_key(&k, "", e);
			goto bad;
		}
		if (seen & KB(key)) {
			dup_key(key_names[key], e);
			goto bad;
		}
		seen |= KB(key);
		const char *name = key_names[key];
		switch (key) {
		case K_OP: {
			tok o;
			if (rd_tok(c, &o) < 0 || o.kind != T_STR) {
				fail(e, BO_INVALID, BO_D_NONE, "'op' must be a string");
				goto bad;
			}
			for (int op = BO_OP_NONE + 1; op < BO_OP_COUNT; op++) {
				if (str_is(&o, bo_op_str(op)))
					cmd->op = (uint8_t)op;
			}
			if (cmd->op == BO_OP_NONE) {
				char ob[48];
				printable(&o, ob, sizeof(ob));
				fail(e, BO_INVALID, BO_D_BAD_OP, "unknown op '%s'", ob);
				goto bad;
			}
			break;
		}
		case K_EVENT:
		case K_CLIENT:
		case K_REQUEST:
		case K_HOLD:
		case K_BOOKING:
			if (get_uint(c, name, UINT64_MAX, BO_D_NONE, &v, e) < 0)
				goto bad;
			if (key == K_EVENT)
				cmd->event_id = v;
			else if (key == K_CLIENT)
				cmd->client_id = v;
			else if (key == K_REQUEST)
				cmd->request_id = v;
			else
				cmd->claim_id = v;
			break;
		case K_SEATS: {
			uint32_t n;
			if (get_array(c, name, BO_SEATS_PER_HOLD_MAX, BO_D_SEAT_COUNT, &n, e) < 0)
				goto bad;
			for (uint32_t s = 0; s < n; s++) {
				if (get_uint(c, "seats[]", UINT32_MAX, BO_D_SEAT_RANGE, &v, e) < 0)
					goto bad;
				cmd->seats[s] = (uint32_t)v;
			}
			cmd->seat_count = (uint8_t)n;
			break;
		}
		case K_TTL:
			if (get_uint(c, name, UINT32_MAX, BO_D_TTL_RANGE, &v, e) < 0)
				goto bad;
			cmd->ttl_ms = (uint32_t)v;
			break;
		case K_CATEGORY:
			if (get_uint(c, name, UINT8_MAX, BO_D_CATEGORY_RANGE, &v, e) < 0)
				goto bad;
			cmd->category = (uint8_t)v;
			break;
		case K_QUANTITY:
			if (get_uint(c, name, UINT16_MAX, BO_D_QUANTITY, &v, e) < 0)
				goto bad;
			cmd->quantity = (uint16_t)v;
			break;
		case K_POOL:
			if (get_uint(c, name, UINT8_MAX, BO_D_POOL_RANGE, &v, e) < 0)
				goto bad;
			cmd->pool = (uint8_t)v;
			break;
		case K_PAYREF: {
			tok s;
			if (rd_tok(c, &s) < 0 || s.kind != T_STR) {
				fail(e, BO_INVALID, BO_D_NONE, "'payref' must be a string");
				goto bad;
			}
			if (s.n > BO_PAYREF_LEN_MAX) {
				fail(e, BO_INVALID, BO_D_PAYREF,
				     "'payref' has %" PRIu32 " bytes, at most %u", s.n,
				     BO_PAYREF_LEN_MAX);
				goto bad;
			}
			memcpy(cmd->payref, s.data, s.n);
			cmd->payref_len = (uint8_t)s.n;
			break;
		}
		case K_MAP:
			/* Read once the op is known: only create_event takes a map. */
			map_at = *c;
			skip_value(c);
			break;
		default:
			assert(!"every key is handled");
		}
	}
	if (!(seen & KB(K_OP))) {
		fail(e, BO_INVALID, BO_D_NONE, "missing key 'op'");
		goto bad;
	}
	uint32_t required = op_keys(cmd->op) | KB(K_OP) | KB(K_EVENT);
	if (bo_op_mutates(cmd->op))
		required |= KB(K_CLIENT) | KB(K_REQUEST);
	uint32_t allowed = required | KB(K_CLIENT) | KB(K_REQUEST);
	for (int j = 0; j < K_COUNT; j++) {
		if ((seen & KB(j)) && !(allowed & KB(j))) {
			fail(e, BO_INVALID, BO_D_NONE, "key '%s' does not apply to op '%s'",
			     key_names[j], bo_op_str(cmd->op));
			goto bad;
		}
		if (!(seen & KB(j)) && (required & KB(j))) {
			fail(e, BO_INVALID, BO_D_NONE, "missing key '%s' (op '%s')", key_names[j],
			     bo_op_str(cmd->op));
			goto bad;
		}
	}
	if (cmd->op == BO_OP_CREATE_EVENT) {
		bo_seatmap *m;
		if (read_seatmap(&map_at, d, &m, e) < 0)
			goto bad;
		cmd->map = m;
	}
	return 0;
bad:
	memset(cmd, 0, sizeof(*cmd));
	assert(e->status != BO_OK);
	*c = start;
	skip_value(c);
	return -1;
}

void wire_free_maps(bo_cmd *cmds, uint32_t count)
{
	assert(cmds != NULL || count == 0);
	for (uint32_t i = 0; i < count; i++) {
		if (cmds[i].op == BO_OP_CREATE_EVENT && cmds[i].map != NULL) {
			/* The decoder allocated it; const only promises the engine
			 * does not write it. */
			bo_seatmap_free((bo_seatmap *)(uintptr_t)cmds[i].map);
			cmds[i].map = NULL;
		}
	}
}

int wire_decode_request(const uint8_t *buf, size_t len, bo_cmd *cmds, wire_cmd_error *errs,
                        uint32_t cap, wire_msg *out)
{
	assert((buf != NULL || len == 0) && cmds != NULL && errs != NULL && out != NULL);
	assert(cap >= 1);
	memset(out, 0, sizeof(*out));
	cur c;
	if (message_check(buf, len, &c, out) < 0)
		return -EINVAL;
	cur peek = c;
	tok top;
	int rc = rd_tok(&peek, &top);
	assert(rc == 0);
	(void)rc;
	dec d = {0};
	uint32_t done = 0; /* commands decode_cmd() has written */
	if (top.kind == T_MAP) {
		out->count = 1;
		out->invalid = decode_cmd(&c, &d, &cmds[0], &errs[0]) < 0;
		done = 1;
	} else if (top.kind == T_ARRAY) {
		if (top.n > WIRE_BATCH_MAX || top.n > cap) {
			snprintf(out->error, sizeof(out->error),
			         "batch of %" PRIu32 " commands exceeds the limit of %" PRIu32,
			         top.n, top.n > WIRE_BATCH_MAX ? WIRE_BATCH_MAX : cap);
			return -EINVAL;
		}
		c = peek;
		out->is_array = 1;
		out->count = top.n;
		for (; done < top.n && !d.nomem; done++)
			out->invalid += decode_cmd(&c, &d, &cmds[done], &errs[done]) < 0;
	} else {
		snprintf(out->error, sizeof(out->error),
		         "a request must be a map or an array of maps, not %s",
		         kind_names[top.kind]);
		return -EINVAL;
	}
	if (d.nomem) {
		wire_free_maps(cmds, done);
		memset(out, 0, sizeof(*out));
		snprintf(out->error, sizeof(out->error), "out of memory decoding seat maps");
		return -ENOMEM;
	}
	return 0;
}

/* ---- Encoding (msgpack-c packer) ----------------------------------------- */

/* Packer calls return 0 or -1 (only when the sbuffer cannot grow); they are
 * OR-ed into one flag per message and checked at the end. */
static int pk_str(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pk_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	return pk_str(pk, k) | msgpack_pack_uint64(pk, v);
}

static int pk_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	return pk_str(pk, k) | pk_str(pk, v);
}

static int pk_u32_array(msgpack_packer *pk, const uint32_t *v, uint32_t n)
{
	int rc = msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		rc |= msgpack_pack_uint32(pk, v[i]);
	return rc;
}

/* Restores the buffer on failure (msgpack_sbuffer is a plain struct: data,
 * size, alloc). */
static int finish(msgpack_sbuffer *out, size_t start, int rc, int pk_failed)
{
	if (rc == 0 && pk_failed)
		rc = -ENOMEM;
	if (rc != 0)
		out->size = start;
	return rc;
}

/* Reply keys, as the doc lists them. */
enum rkey {
	R_STATUS,
	R_DETAIL,
	R_ERROR,
	R_OP,
	R_CLIENT,
	R_REQUEST,
	R_EVENT,
	R_REPLAYED,
	R_HOLD,
	R_BOOKING,
	R_EXPIRES,
	R_SEATS,
	R_QUANTITY,
	R_POOL,
	R_STATES,
	R_AVAIL,
	R_COUNT
};

static const char *const rkey_names[R_COUNT] = {
        "status", "detail",  "error",         "op",    "client",   "request", "event",  "replayed",
        "hold",   "booking", "expires_at_ms", "seats", "quantity", "pool",    "states", "avail",
};

#define RB(k) (1u << (k))

/* Keys of a reply for `res` (status, op and ids are decided by the caller):
 * the claim shape is seats for a seat claim, pool for a pool claim (pool is
 * also written when non-zero, so nothing is lost). */
static uint32_t reply_keys(const bo_result *r)
{
	if (r->status != BO_OK)
		return RB(R_DETAIL) | RB(R_ERROR) | (r->seat_count ? RB(R_SEATS) : 0);
	uint32_t shape = RB(R_QUANTITY) | (r->seat_count ? RB(R_SEATS) : 0) |
	                 ((r->seat_count == 0 || r->pool != 0) ? RB(R_POOL) : 0);
	switch (r->op) {
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
		return RB(R_HOLD) | RB(R_EXPIRES) | RB(R_SEATS) | RB(R_QUANTITY);
	case BO_OP_HOLD_POOL:
		return RB(R_HOLD) | RB(R_EXPIRES) | RB(R_POOL) | RB(R_QUANTITY);
	case BO_OP_EXTEND:
		return RB(R_HOLD) | RB(R_EXPIRES) | shape;
	case BO_OP_RELEASE:
		return RB(R_HOLD) | shape;
	case BO_OP_CONFIRM:
		return RB(R_HOLD) | RB(R_BOOKING) | shape;
	case BO_OP_CANCEL:
		return RB(R_BOOKING) | shape;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		return RB(R_SEATS);
	case BO_OP_QUERY_SEATS:
		return RB(R_SEATS) | RB(R_STATES);
	case BO_OP_QUERY_AVAIL:
		return RB(R_AVAIL);
	default:
		return 0; /* create_event, or no op */
	}
}

static int result_encodable(const bo_result *r)
{
	if (r->status >= BO_STATUS_COUNT || r->seat_count > BO_SEATS_PER_HOLD_MAX)
		return 0;
	if (r->status != BO_OK)
		return r->detail < BO_D_COUNT;
	if (r->op == BO_OP_QUERY_SEATS) {
		for (uint32_t i = 0; i < r->seat_count; i++) {
			if (r->seat_state[i] >= BO_SEAT_STATE_COUNT)
				return 0;
		}
	}
	if (r->op == BO_OP_QUERY_AVAIL)
		return r->avail.category_count <= BO_CATEGORIES_MAX &&
		       r->avail.pool_count <= BO_POOLS_PER_EVENT_MAX;
	return 1;
}

static int pk_result(msgpack_packer *pk, const bo_result *r)
{
	int op_ok = r->op > BO_OP_NONE && r->op < BO_OP_COUNT;
	uint32_t keys = RB(R_STATUS) | RB(R_CLIENT) | RB(R_REQUEST) | RB(R_EVENT) |
	                (op_ok ? RB(R_OP) : 0) | (r->replayed ? RB(R_REPLAYED) : 0) | reply_keys(r);
	int rc = msgpack_pack_map(pk, (size_t)__builtin_popcount(keys));
	for (int k = 0; k < R_COUNT; k++) {
		if (!(keys & RB(k)))
			continue;
		rc |= pk_str(pk, rkey_names[k]);
		switch (k) {
		case R_STATUS:
			rc |= pk_str(pk, bo_status_str(r->status));
			break;
		case R_DETAIL:
			rc |= pk_str(pk, bo_detail_name(r->detail));
			break;
		case R_ERROR:
			rc |= pk_str(pk, r->detail != BO_D_NONE ? bo_detail_str(r->detail)
			                                        : status_text(r->status));
			break;
		case R_OP:
			rc |= pk_str(pk, bo_op_str(r->op));
			break;
		case R_CLIENT:
			rc |= msgpack_pack_uint64(pk, r->client_id);
			break;
		case R_REQUEST:
			rc |= msgpack_pack_uint64(pk, r->request_id);
			break;
		case R_EVENT:
			rc |= msgpack_pack_uint64(pk, r->event_id);
			break;
		case R_REPLAYED:
			rc |= msgpack_pack_true(pk);
			break;
		case R_HOLD:
		case R_BOOKING:
			rc |= msgpack_pack_uint64(pk, r->claim_id);
			break;
		case R_EXPIRES:
			rc |= msgpack_pack_int64(pk, r->expires_at_ms);
			break;
		case R_SEATS:
			rc |= pk_u32_array(pk, r->seats, r->seat_count);
			break;
		case R_QUANTITY:
			rc |= msgpack_pack_uint32(pk, r->quantity);
			break;
		case R_POOL:
			rc |= msgpack_pack_uint32(pk, r->pool);
			break;
		case R_STATES:
			rc |= msgpack_pack_array(pk, r->seat_count);
			for (uint32_t i = 0; i < r->seat_count; i++)
				rc |= pk_str(pk, bo_seat_state_str(r->seat_state[i]));
			break;
		case R_AVAIL: {
			const bo_avail *a = &r->avail;
			rc |= msgpack_pack_map(pk, 6);
			rc |= pk_kv_u64(pk, "free", a->by_state[BO_SEAT_FREE]);
			rc |= pk_kv_u64(pk, "held", a->by_state[BO_SEAT_HELD]);
			rc |= pk_kv_u64(pk, "booked", a->by_state[BO_SEAT_BOOKED]);
			rc |= pk_kv_u64(pk, "blocked", a->by_state[BO_SEAT_BLOCKED]);
			rc |= pk_str(pk, "free_by_category");
			rc |= pk_u32_array(pk, a->free_by_category, a->category_count);
			rc |= pk_str(pk, "pools");
			rc |= msgpack_pack_array(pk, a->pool_count);
			for (uint32_t p = 0; p < a->pool_count; p++) {
				rc |= msgpack_pack_map(pk, 2);
				rc |= pk_kv_u64(pk, "capacity", a->pool_capacity[p]);
				rc |= pk_kv_u64(pk, "free", a->pool_free[p]);
			}
			break;
		}
		default:
			assert(!"every reply key is handled");
		}
	}
	return rc;
}

static int pk_cmd_error(msgpack_packer *pk, const wire_cmd_error *e)
{
	const char *detail = e->detail == BO_D_NONE || e->detail >= BO_D_COUNT
	                             ? WIRE_DETAIL_MALFORMED
	                             : bo_detail_name(e->detail);
	return msgpack_pack_map(pk, 3) | pk_kv_str(pk, "status", bo_status_str(e->status)) |
	       pk_kv_str(pk, "detail", detail) | pk_kv_str(pk, "error", e->text);
}

int wire_encode_replies(const bo_result *res, const wire_cmd_error *errs, uint32_t count,
                        int is_array, msgpack_sbuffer *out)
{
	assert(out != NULL && (res != NULL || count == 0));
	assert(is_array ? count <= WIRE_BATCH_MAX : count == 1);
	for (uint32_t i = 0; i < count; i++) {
		if (errs && errs[i].status != BO_OK) {
			if (errs[i].status >= BO_STATUS_COUNT)
				return -EINVAL;
		} else if (!result_encodable(&res[i])) {
			return -EINVAL;
		}
	}
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = is_array ? msgpack_pack_array(&pk, count) : 0;
	for (uint32_t i = 0; i < count; i++) {
		if (errs && errs[i].status != BO_OK)
			failed |= pk_cmd_error(&pk, &errs[i]);
		else
			failed |= pk_result(&pk, &res[i]);
	}
	return finish(out, start, 0, failed);
}

int wire_encode_error(int status, const char *message, msgpack_sbuffer *out)
{
	assert(message != NULL && out != NULL);
	if (status <= BO_OK || status >= BO_STATUS_COUNT)
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	const char *detail = status == BO_INVALID ? WIRE_DETAIL_MALFORMED : bo_detail_name(BO_D_NONE);
	int failed = msgpack_pack_map(&pk, 3) |
	             pk_kv_str(&pk, "status", bo_status_str(status)) |
	             pk_kv_str(&pk, "detail", detail) | pk_kv_str(&pk, "error", message);
	return finish(out, start, 0, failed);
}

/* The map rules wire_encode_request promises (so the server can decode it). */
static int map_encodable(const bo_seatmap *m)
{
	if (!m || m->row_count > BO_ROWS_PER_EVENT_MAX || m->seat_count > BO_SEATS_PER_EVENT_MAX ||
	    m->pool_count > BO_POOLS_PER_EVENT_MAX)
		return 0;
	uint64_t sum = 0;
	for (uint32_t r = 0; r < m->row_count; r++)
		sum += m->rows[r].seats;
	return sum == m->seat_count;
}

static int pk_seatmap(msgpack_packer *pk, const bo_seatmap *m)
{
	int rc = msgpack_pack_map(pk, 3);
	rc |= pk_kv_u64(pk, "categories", m->category_count);
	rc |= pk_str(pk, "rows") | msgpack_pack_array(pk, m->row_count);
	uint32_t first = 0;
	for (uint32_t r = 0; r < m->row_count; r++) {
		uint32_t n = m->rows[r].seats;
		const uint8_t *cat = m->categories + first;
		bool uniform = true;
		for (uint32_t s = 1; s < n && uniform; s++)
			uniform = cat[s] == cat[0];
		/* One category for the row is the compact form; a mixed row lists
		 * each seat's category. */
		if (uniform) {
			rc |= msgpack_pack_map(pk, 3);
			rc |= pk_kv_u64(pk, "section", m->rows[r].section);
			rc |= pk_kv_u64(pk, "seats", n);
			rc |= pk_kv_u64(pk, "category", n ? cat[0] : 0);
		} else {
			rc |= msgpack_pack_map(pk, 2);
			rc |= pk_kv_u64(pk, "section", m->rows[r].section);
			rc |= pk_str(pk, "categories") | msgpack_pack_array(pk, n);
			for (uint32_t s = 0; s < n; s++)
				rc |= msgpack_pack_uint8(pk, cat[s]);
		}
		first += n;
	}
	rc |= pk_str(pk, "pools") | pk_u32_array(pk, m->pool_capacity, m->pool_count);
	return rc;
}

static int pk_cmd(msgpack_packer *pk, const bo_cmd *c)
{
	uint32_t g = op_keys(c->op);
	uint32_t keys = g | KB(K_OP) | KB(K_EVENT) | KB(K_CLIENT) | KB(K_REQUEST);
	int rc = msgpack_pack_map(pk, (size_t)__builtin_popcount(keys));
	for (int k = 0; k < K_COUNT; k++) {
		if (!(keys & KB(k)))
			continue;
		rc |= pk_str(pk, key_names[k]);
		switch (k) {
		case K_OP:
			rc |= pk_str(pk, bo_op_str(c->op));
			break;
		case K_EVENT:
			rc |= msgpack_pack_uint64(pk, c->event_id);
			break;
		case K_CLIENT:
			rc |= msgpack_pack_uint64(pk, c->client_id);
			break;
		case K_REQUEST:
			rc |= msgpack_pack_uint64(pk, c->request_id);
			break;
		case K_SEATS:
			rc |= pk_u32_array(pk, c->seats, c->seat_count);
			break;
		case K_TTL:
			rc |= msgpack_pack_uint32(pk, c->ttl_ms);
			break;
		case K_CATEGORY:
			rc |= msgpack_pack_uint8(pk, c->category);
			break;
		case K_QUANTITY:
			rc |= msgpack_pack_uint16(pk, c->quantity);
			break;
		case K_POOL:
			rc |= msgpack_pack_uint8(pk, c->pool);
			break;
		case K_HOLD:
		case K_BOOKING:
			rc |= msgpack_pack_uint64(pk, c->claim_id);
			break;
		case K_PAYREF:
			rc |= msgpack_pack_str_with_body(pk, c->payref, c->payref_len);
			break;
		case K_MAP:
			rc |= pk_seatmap(pk, c->map);
			break;
		default:
			assert(!"every key is handled");
		}
	}
	return rc;
}

int wire_encode_request(const bo_cmd *cmds, uint32_t n, int as_array, msgpack_sbuffer *out)
{
	assert(out != NULL && (cmds != NULL || n == 0));
	if (as_array ? n > WIRE_BATCH_MAX : n != 1)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		const bo_cmd *c = &cmds[i];
		if (c->op <= BO_OP_NONE || c->op >= BO_OP_COUNT ||
		    c->seat_count > BO_SEATS_PER_HOLD_MAX || c->payref_len > BO_PAYREF_LEN_MAX)
			return -EINVAL;
		if (c->op == BO_OP_CREATE_EVENT && !map_encodable(c->map))
			return -EINVAL;
	}
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = as_array ? msgpack_pack_array(&pk, n) : 0;
	for (uint32_t i = 0; i < n; i++)
		failed |= pk_cmd(&pk, &cmds[i]);
	if (!failed && out->size - start > WIRE_MSG_MAX) {
		out->size = start;
		return -EINVAL; /* the server would refuse it */
	}
	return finish(out, start, 0, failed);
}

/* ---- Reply decoding (client side) ---------------------------------------- */

/* Reads a string naming one of names[lo..hi) (by a lookup function).
 * Returns the index or -1. */
typedef const char *(*name_fn)(int);

static int get_name(cur *c, name_fn fn, int lo, int hi, const char *what, wire_cmd_error *e)
{
	tok t;
	if (rd_tok(c, &t) < 0 || t.kind != T_STR) {
		fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a string", what);
		return -1;
	}
	for (int i = lo; i < hi; i++) {
		const char *s = fn(i);
		if (s && str_is(&t, s))
			return i;
	}
	if (fn == wire_detail_name) {
		/* "malformed" is the wire's own; a detail a newer server added is
		 * read as no detail (the status still says what happened). */
		return str_is(&t, WIRE_DETAIL_MALFORMED) ? hi : BO_D_NONE;
	}
	char b[48];
	printable(&t, b, sizeof(b));
	fail(e, BO_INVALID, BO_D_NONE, "unknown %s '%s'", what, b);
	return -1;
}

static int get_u32_list(cur *c, const char *name, uint32_t max, uint32_t *dst, uint32_t *n,
                        wire_cmd_error *e)
{
	if (get_array(c, name, max, BO_D_NONE, n, e) < 0)
		return -1;
	for (uint32_t i = 0; i < *n; i++) {
		uint64_t v;
		if (get_uint(c, name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		dst[i] = (uint32_t)v;
	}
	return 0;
}

static int read_avail(cur *c, bo_avail *a, wire_cmd_error *e)
{
	int64_t pairs = get_map(c, "avail", e);
	if (pairs < 0)
		return -1;
	static const char *const states[BO_SEAT_STATE_COUNT] = {"free", "held", "booked",
	                                                        "blocked"};
	for (int64_t i = 0; i < pairs; i++) {
		tok k;
		uint64_t v;
		uint32_t n;
		if (get_key(c, "'avail'", &k, e) < 0)
			return -1;
		int st = -1;
		for (int s = 0; s < BO_SEAT_STATE_COUNT; s++) {
			if (str_is(&k, states[s]))
				st = s;
		}
		if (st >= 0) {
			if (get_uint(c, states[st], UINT32_MAX, BO_D_NONE, &v, e) < 0)
				return -1;
			a->by_state[st] = (uint32_t)v;
		} else if (str_is(&k, "free_by_category")) {
			if (get_u32_list(c, "free_by_category", BO_CATEGORIES_MAX,
			                 a->free_by_category, &n, e) < 0)
				return -1;
			a->category_count = (uint8_t)n;
		} else if (str_is(&k, "pools")) {
			if (get_array(c, "pools", BO_POOLS_PER_EVENT_MAX, BO_D_NONE, &n, e) < 0)
				return -1;
			a->pool_count = (uint8_t)n;
			for (uint32_t p = 0; p < n; p++) {
				int64_t pp = get_map(c, "pools[]", e);
				if (pp < 0)
					return -1;
				for (int64_t j = 0; j < pp; j++) {
					if (get_key(c, "a pool", &k, e) < 0)
						return -1;
					uint32_t *dst = str_is(&k, "capacity")
					                        ? &a->pool_capacity[p]
					                : str_is(&k, "free") ? &a->pool_free[p]
					                                     : NULL;
					if (!dst) {
						skip_value(c);
						continue;
					}
					if (get_uint(c, "pools[]", UINT32_MAX, BO_D_NONE, &v, e) <
					    0)
						return -1;
					*dst = (uint32_t)v;
				}
			}
		} else {
			skip_value(c);
		}
	}
	return 0;
}

static int decode_reply(cur *c, bo_result *r, wire_reply_info *info, wire_cmd_error *e)
{
	memset(r, 0, sizeof(*r));
	memset(info, 0, sizeof(*info));
	tok t;
	if (rd_tok(c, &t) < 0 || t.kind != T_MAP) {
		fail(e, BO_INVALID, BO_D_NONE, "a reply must be a map");
		return -1;
	}
	uint32_t seen = 0, states_n = 0;
	uint64_t hold = 0, booking = 0;
	for (uint32_t i = 0; i < t.n; i++) {
		tok k;
		uint64_t v;
		uint32_t n;
		int idx;
		if (get_key(c, "a reply", &k, e) < 0)
			return -1;
		int key = -1;
		for (int j = 0; j < R_COUNT; j++) {
			if (str_is(&k, rkey_names[j]))
				key = j;
		}
		if (key < 0) {
			skip_value(c); /* a newer server's key */
			continue;
		}
		if (seen & RB(key))
			return dup_key(rkey_names[key], e);
		seen |= RB(key);
		switch (key) {
		case R_STATUS:
			if ((idx = get_name(c, bo_status_str, 0, BO_STATUS_COUNT, "status",
			                    e)) < 0)
				return -1;
			r->status = (uint8_t)idx;
			break;
		case R_DETAIL:
			if ((idx = get_name(c, wire_detail_name, 0, BO_D_COUNT, "detail", e)) < 0)
				return -1;
			info->malformed = idx == BO_D_COUNT;
			r->detail = (uint8_t)(idx == BO_D_COUNT ? BO_D_NONE : idx);
			break;
		case R_ERROR: {
			tok s;
			if (rd_tok(c, &s) < 0 || s.kind != T_STR) {
				fail(e, BO_INVALID, BO_D_NONE, "'error' must be a string");
				return -1;
			}
			size_t m = s.n < WIRE_ERROR_LEN_MAX - 1 ? s.n : WIRE_ERROR_LEN_MAX - 1;
			memcpy(info->error, s.data, m);
			info->error[m] = '\0';
			break;
		}
		case R_OP:
			if ((idx = get_name(c, bo_op_str, 1, BO_OP_COUNT, "op", e)) < 0)
				return -1;
			r->op = (uint8_t)idx;
			break;
		case R_CLIENT:
		case R_REQUEST:
		case R_EVENT:
		case R_HOLD:
		case R_BOOKING:
			if (get_uint(c, rkey_names[key], UINT64_MAX, BO_D_NONE, &v, e) < 0)
				return -1;
			if (key == R_CLIENT)
				r->client_id = v;
			else if (key == R_REQUEST)
				r->request_id = v;
			else if (key == R_EVENT)
				r->event_id = v;
			else if (key == R_HOLD)
				hold = v;
			else
				booking = v;
			break;
		case R_REPLAYED: {
			tok b;
			if (rd_tok(c, &b) < 0 || b.kind != T_BOOL) {
				fail(e, BO_INVALID, BO_D_NONE, "'replayed' must be a boolean");
				return -1;
			}
			r->replayed = (uint8_t)b.u;
			break;
		}
		case R_EXPIRES: {
			tok x;
			if (rd_tok(c, &x) < 0 || (x.kind != T_UINT && x.kind != T_NINT) ||
			    (x.kind == T_UINT && x.u > INT64_MAX)) {
				fail(e, BO_INVALID, BO_D_NONE, "'expires_at_ms' must be an int64");
				return -1;
			}
			r->expires_at_ms = x.kind == T_UINT ? (int64_t)x.u : x.i;
			break;
		}
		case R_SEATS:
			if (get_u32_list(c, "seats", BO_SEATS_PER_HOLD_MAX, r->seats, &n, e) < 0)
				return -1;
			r->seat_count = (uint8_t)n;
			break;
		case R_QUANTITY:
			if (get_uint(c, "quantity", UINT32_MAX, BO_D_NONE, &v, e) < 0)
				return -1;
			r->quantity = (uint32_t)v;
			break;
		case R_POOL:
			if (get_uint(c, "pool", UINT8_MAX, BO_D_NONE, &v, e) < 0)
				return -1;
			r->pool = (uint8_t)v;
			break;
		case R_STATES:
			if (get_array(c, "states", BO_QUERY_SEATS_MAX, BO_D_NONE, &states_n, e) < 0)
				return -1;
			for (uint32_t s = 0; s < states_n; s++) {
				idx = get_name(c, bo_seat_state_str, 0, BO_SEAT_STATE_COUNT,
				               "seat state", e);
				if (idx < 0)
					return -1;
				r->seat_state[s] = (uint8_t)idx;
			}
			break;
		case R_AVAIL:
			if (read_avail(c, &r->avail, e) < 0)
				return -1;
			break;
		default:
			assert(!"every reply key is handled");
		}
	}
	if (!(seen & RB(R_STATUS))) {
		fail(e, BO_INVALID, BO_D_NONE, "missing key 'status'");
		return -1;
	}
	if ((seen & RB(R_HOLD)) && (seen & RB(R_BOOKING)) && hold != booking) {
		fail(e, BO_INVALID, BO_D_NONE, "'hold' and 'booking' differ");
		return -1;
	}
	if ((seen & RB(R_STATES)) && states_n != r->seat_count) {
		fail(e, BO_INVALID, BO_D_NONE, "'states' and 'seats' differ in length");
		return -1;
	}
	r->claim_id = (seen & RB(R_HOLD)) ? hold : booking;
	return 0;
}

int wire_decode_replies(const uint8_t *buf, size_t len, bo_result *out, wire_reply_info *info,
                        uint32_t cap, wire_msg *msg)
{
	assert((buf != NULL || len == 0) && out != NULL && msg != NULL && cap >= 1);
	memset(msg, 0, sizeof(*msg));
	cur c;
	if (message_check(buf, len, &c, msg) < 0)
		return -EINVAL;
	cur peek = c;
	tok top;
	int rc = rd_tok(&peek, &top);
	assert(rc == 0);
	(void)rc;
	uint32_t n = 1;
	if (top.kind == T_ARRAY) {
		if (top.n > WIRE_BATCH_MAX || top.n > cap) {
			snprintf(msg->error, sizeof(msg->error),
			         "%" PRIu32 " replies, more than the limit of %" PRIu32, top.n,
			         top.n > WIRE_BATCH_MAX ? WIRE_BATCH_MAX : cap);
			return -EINVAL;
		}
		n = top.n;
		c = peek;
		msg->is_array = 1;
	} else if (top.kind != T_MAP) {
		snprintf(msg->error, sizeof(msg->error),
		         "a reply must be a map or an array, not %s", kind_names[top.kind]);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		wire_cmd_error e = {0};
		wire_reply_info scratch;
		if (decode_reply(&c, &out[i], info ? &info[i] : &scratch, &e) < 0) {
			snprintf(msg->error, sizeof(msg->error), "reply %" PRIu32 ": %.100s", i,
			         e.text);
			return -EINVAL;
		}
	}
	msg->count = n;
	return 0;
}
