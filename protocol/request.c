/*
 * request.c — the request half of the wire codec (wire.h): the server
 * decodes requests (wire_decode_request), the client encodes them
 * (wire_encode_request). schemas/protocol.md §3 is the client-facing text
 * of these rules.
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
 *      operator  bool               release, cancel O (true: BO_CMD_F_OPERATOR,
 *                                   any client's claim; false = absent)
 *      epoch     uint64             all O (the shard-map epoch the client
 *                                   routed by; reported in wire_msg.epoch,
 *                                   never changes what the command does)
 *
 *    "operator" on any other op is malformed ("does not apply"): an
 *    operator may only undo a claim, never extend or confirm another
 *    client's (engine.h, "Ownership"). No key sets BO_CMD_F_ANY_CLIENT,
 *    which only old journal records carry.
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
 *    checked before the map is allocated. Every fault inside the "map"
 *    value (not a map, an unknown or repeated key, a wrong type, a value or
 *    count too large, a row without "section" or with both or neither of
 *    its forms) is detail map_invalid, the detail the engine gives for a
 *    map it refuses: one code for "the seat map is wrong". The seats of all
 *    maps of one message <= WIRE_MAP_SEATS_PER_MSG_MAX (status limit,
 *    detail seats_full). Whether the map is valid is bo_seatmap_check's
 *    business, in the engine.
 *
 * DECODER
 *
 * Pass 1 (field_message) walks the whole message once with the bounded
 * reader of mpack.h, checking the message rule, so pass 2, which
 * interprets commands, knows the bytes are well formed and can skip the
 * rest of a rejected command. Each command key has a reader in one table
 * (keys[]), which the encoder also uses for the key names. Seat maps are
 * read twice: once to count rows, seats and pools and check them, then
 * (after bo_seatmap_new) to fill them in.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "mpack.h"
#include "pack.h"

/* ---- Command keys -------------------------------------------------------- */

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
	K_OPERATOR,
	K_EPOCH, /* last: written after the others, from the caller's epoch */
	K_COUNT
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

/* A command being decoded: its fields, and where its "map" value starts
 * (read once the op is known: only create_event takes a map). */
typedef struct cmd_ctx {
	bo_cmd *cmd;
	mpack_cur map_at;
	uint64_t epoch; /* "epoch", 0 when absent */
} cmd_ctx;

/* Reads the value of one key into the command; 0 or -1 (e filled). */
typedef int (*key_reader)(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e);

static int rd_op(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	mpack_tok o;
	if (field_str(c, name, &o, e) < 0)
		return -1;
	for (int op = BO_OP_NONE + 1; op < BO_OP_COUNT; op++) {
		if (mpack_str_is(&o, bo_op_str(op)))
			x->cmd->op = (uint8_t)op;
	}
	if (x->cmd->op == BO_OP_NONE) {
		char ob[48];
		mpack_printable(&o, ob, sizeof(ob));
		field_fail(e, BO_INVALID, BO_D_BAD_OP, "unknown op '%s'", ob);
		return -1;
	}
	return 0;
}

static int rd_event(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->cmd->event_id, e);
}

static int rd_client(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->cmd->client_id, e);
}

static int rd_request(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->cmd->request_id, e);
}

static int rd_epoch(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->epoch, e);
}

/* "hold" and "booking": the same claim id under the name its op uses. */
static int rd_claim(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->cmd->claim_id, e);
}

static int rd_seats(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	uint32_t n;
	if (field_array(c, name, BO_SEATS_PER_HOLD_MAX, BO_D_SEAT_COUNT, &n, e) < 0)
		return -1;
	for (uint32_t s = 0; s < n; s++) {
		uint64_t v;
		if (field_uint(c, "seats[]", UINT32_MAX, BO_D_SEAT_RANGE, &v, e) < 0)
			return -1;
		x->cmd->seats[s] = (uint32_t)v;
	}
	x->cmd->seat_count = (uint8_t)n;
	return 0;
}

static int rd_ttl(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT32_MAX, BO_D_TTL_RANGE, &v, e) < 0)
		return -1;
	x->cmd->ttl_ms = (uint32_t)v;
	return 0;
}

static int rd_category(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT8_MAX, BO_D_CATEGORY_RANGE, &v, e) < 0)
		return -1;
	x->cmd->category = (uint8_t)v;
	return 0;
}

static int rd_quantity(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT16_MAX, BO_D_QUANTITY, &v, e) < 0)
		return -1;
	x->cmd->quantity = (uint16_t)v;
	return 0;
}

static int rd_pool(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT8_MAX, BO_D_POOL_RANGE, &v, e) < 0)
		return -1;
	x->cmd->pool = (uint8_t)v;
	return 0;
}

static int rd_payref(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	mpack_tok s;
	if (field_str(c, name, &s, e) < 0)
		return -1;
	if (s.n > BO_PAYREF_LEN_MAX) {
		field_fail(e, BO_INVALID, BO_D_PAYREF, "'payref' has %" PRIu32 " bytes, at most %u",
		           s.n, BO_PAYREF_LEN_MAX);
		return -1;
	}
	memcpy(x->cmd->payref, s.data, s.n);
	x->cmd->payref_len = (uint8_t)s.n;
	return 0;
}

static int rd_operator(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	mpack_tok b;
	if (mpack_read(c, &b) < 0 || b.kind != MPACK_BOOL) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a boolean", name);
		return -1;
	}
	if (b.u)
		x->cmd->flags |= BO_CMD_F_OPERATOR;
	return 0;
}

static int rd_map(mpack_cur *c, const char *name, cmd_ctx *x, wire_cmd_error *e)
{
	(void)name;
	(void)e;
	x->map_at = *c;
	mpack_skip(c);
	return 0;
}

/* The command keys: wire name and reader, in the order the encoder writes
 * them. */
static const struct key_def {
	const char *name;
	key_reader read;
} keys[K_COUNT] = {
        [K_OP] = {"op", rd_op},
        [K_EVENT] = {"event", rd_event},
        [K_CLIENT] = {"client", rd_client},
        [K_REQUEST] = {"request", rd_request},
        [K_SEATS] = {"seats", rd_seats},
        [K_TTL] = {"ttl_ms", rd_ttl},
        [K_CATEGORY] = {"category", rd_category},
        [K_QUANTITY] = {"quantity", rd_quantity},
        [K_POOL] = {"pool", rd_pool},
        [K_HOLD] = {"hold", rd_claim},
        [K_BOOKING] = {"booking", rd_claim},
        [K_PAYREF] = {"payref", rd_payref},
        [K_MAP] = {"map", rd_map},
        [K_OPERATOR] = {"operator", rd_operator},
        [K_EPOCH] = {"epoch", rd_epoch},
};

/* Ops on which an operator may act on any client's claim (engine.h). */
static bool op_takes_operator(uint32_t op)
{
	return op == BO_OP_RELEASE || op == BO_OP_CANCEL;
}

/* ---- Seat maps ----------------------------------------------------------- */

/* State of decoding one message: the seat budget spans its commands. */
typedef struct dec {
	uint64_t map_seats; /* seats of the maps allocated so far in this message */
	int nomem;          /* a map allocation failed */
	uint64_t epoch;     /* the highest "epoch" of the commands decoded */
} dec;

/* A seat map row, first pass: its section, its seat count and, for a
 * one-category row, the category (-1 for a per-seat list). */
typedef struct row_info {
	uint16_t section;
	uint16_t seats;
	int32_t category; /* -1: per-seat "categories" list */
	mpack_cur list;   /* where the per-seat list starts */
} row_info;

enum row_key {
	R_SECTION = 1,
	R_SEATS = 2,
	R_CATEGORY = 4,
	R_CATEGORIES = 8
};

/* Reads the per-seat "categories" list of a row (checking every entry). */
static int read_row_list(mpack_cur *c, row_info *ri, wire_cmd_error *e)
{
	uint32_t n;
	uint64_t v;
	ri->list = *c;
	if (field_array(c, "categories", UINT16_MAX, BO_D_MAP_INVALID, &n, e) < 0)
		return -1;
	for (uint32_t s = 0; s < n; s++) {
		if (field_uint(c, "categories[]", UINT8_MAX, BO_D_MAP_INVALID, &v, e) < 0)
			return -1;
	}
	ri->seats = (uint16_t)n;
	return 0;
}

/* Reads one key of a row; *seen collects the keys given. */
static int read_row_key(mpack_cur *c, const char *where, row_info *ri, uint32_t *seen,
                        wire_cmd_error *e)
{
	mpack_tok k;
	uint64_t v;
	if (field_key(c, "a row", &k, e) < 0)
		return -1;
	uint32_t bit = mpack_str_is(&k, "section")      ? R_SECTION
	               : mpack_str_is(&k, "seats")      ? R_SEATS
	               : mpack_str_is(&k, "category")   ? R_CATEGORY
	               : mpack_str_is(&k, "categories") ? R_CATEGORIES
	                                                : 0;
	if (bit == 0)
		return field_unknown_key(&k, where, e);
	char kb[16];
	mpack_printable(&k, kb, sizeof(kb));
	if (*seen & bit)
		return field_dup_key(kb, e);
	*seen |= bit;
	switch (bit) {
	case R_SECTION:
		if (field_uint(c, "section", UINT16_MAX, BO_D_MAP_INVALID, &v, e) < 0)
			return -1;
		ri->section = (uint16_t)v;
		return 0;
	case R_SEATS:
		if (field_uint(c, "seats", UINT16_MAX, BO_D_MAP_INVALID, &v, e) < 0)
			return -1;
		ri->seats = (uint16_t)v;
		return 0;
	case R_CATEGORY:
		if (field_uint(c, "category", UINT8_MAX, BO_D_MAP_INVALID, &v, e) < 0)
			return -1;
		ri->category = (int32_t)v;
		return 0;
	default:
		return read_row_list(c, ri, e);
	}
}

/* Reads and checks row `index` of a seat map. Returns 0 and *ri, or -1. */
static int read_row(mpack_cur *c, uint32_t index, row_info *ri, wire_cmd_error *e)
{
	char where[32];
	snprintf(where, sizeof(where), "row %" PRIu32, index);
	int64_t pairs = field_map(c, "rows[]", e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0;
	memset(ri, 0, sizeof(*ri));
	ri->category = -1;
	for (int64_t i = 0; i < pairs; i++) {
		if (read_row_key(c, where, ri, &seen, e) < 0)
			return -1;
	}
	if (!(seen & R_SECTION)) {
		field_fail(e, BO_INVALID, BO_D_NONE, "%s: missing key 'section'", where);
		return -1;
	}
	if ((seen & R_CATEGORIES) ? (seen & (R_SEATS | R_CATEGORY)) != 0
	                          : (seen & (R_SEATS | R_CATEGORY)) != (R_SEATS | R_CATEGORY)) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "%s: give either 'seats' and 'category' or 'categories'", where);
		return -1;
	}
	return 0;
}

/* What the first pass over a seat map found, and where to read it again. */
typedef struct map_scan {
	uint64_t category_count;
	uint64_t seat_count;
	uint32_t row_count;
	uint32_t pool_count;
	mpack_cur rows_at;  /* the first row */
	mpack_cur pools_at; /* the first pool capacity */
} map_scan;

static int scan_rows(mpack_cur *c, map_scan *s, wire_cmd_error *e)
{
	if (field_array(c, "rows", BO_ROWS_PER_EVENT_MAX, BO_D_MAP_INVALID, &s->row_count, e) < 0)
		return -1;
	s->rows_at = *c;
	for (uint32_t r = 0; r < s->row_count; r++) {
		row_info ri;
		if (read_row(c, r, &ri, e) < 0)
			return -1;
		s->seat_count += ri.seats;
	}
	if (s->seat_count > BO_SEATS_PER_EVENT_MAX) {
		field_fail(e, BO_INVALID, BO_D_MAP_INVALID,
		           "'map' has %" PRIu64 " seats, at most %u", s->seat_count,
		           BO_SEATS_PER_EVENT_MAX);
		return -1;
	}
	return 0;
}

static int scan_pools(mpack_cur *c, map_scan *s, wire_cmd_error *e)
{
	if (field_array(c, "pools", BO_POOLS_PER_EVENT_MAX, BO_D_MAP_INVALID, &s->pool_count, e) <
	    0)
		return -1;
	s->pools_at = *c;
	for (uint32_t p = 0; p < s->pool_count; p++) {
		uint64_t v;
		if (field_uint(c, "pools[]", UINT32_MAX, BO_D_MAP_INVALID, &v, e) < 0)
			return -1;
	}
	return 0;
}

/* First pass over a "map" value: counts and checks everything. */
static int scan_seatmap(mpack_cur *c, map_scan *s, wire_cmd_error *e)
{
	memset(s, 0, sizeof(*s));
	int64_t pairs = field_map(c, "map", e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, "'map'", &k, e) < 0)
			return -1;
		int which = mpack_str_is(&k, "categories") ? 0
		            : mpack_str_is(&k, "rows")     ? 1
		            : mpack_str_is(&k, "pools")    ? 2
		                                           : -1;
		if (which < 0)
			return field_unknown_key(&k, "'map'", e);
		static const char *const names[] = {"categories", "rows", "pools"};
		if (seen & (1u << which))
			return field_dup_key(names[which], e);
		seen |= 1u << which;
		int rc = which == 0   ? field_uint(c, "categories", UINT32_MAX, BO_D_MAP_INVALID,
		                                   &s->category_count, e)
		         : which == 1 ? scan_rows(c, s, e)
		                      : scan_pools(c, s, e);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Second pass: fills an allocated map from what scan_seatmap() checked, so
 * every read succeeds. */
static void fill_seatmap(const map_scan *s, bo_seatmap *m)
{
	wire_cmd_error scratch = {0};
	mpack_cur rows = s->rows_at, pools = s->pools_at;
	uint32_t first = 0;
	m->category_count = (uint32_t)s->category_count;
	for (uint32_t r = 0; r < s->row_count; r++) {
		row_info ri;
		int rc = read_row(&rows, r, &ri, &scratch);
		assert(rc == 0);
		m->rows[r].section = ri.section;
		m->rows[r].seats = ri.seats;
		if (ri.category >= 0) {
			if (ri.seats > 0) /* categories may be NULL in a seatless map */
				memset(m->categories + first, ri.category, ri.seats);
		} else {
			uint32_t n = 0;
			uint64_t v = 0;
			rc = field_array(&ri.list, "categories", UINT16_MAX, 0, &n, &scratch);
			assert(rc == 0 && n == ri.seats);
			for (uint32_t i = 0; i < n; i++) {
				rc = field_uint(&ri.list, "categories[]", UINT8_MAX, 0, &v,
				                &scratch);
				assert(rc == 0);
				m->categories[first + i] = (uint8_t)v;
			}
		}
		(void)rc;
		first += ri.seats;
	}
	assert(first == s->seat_count);
	for (uint32_t p = 0; p < s->pool_count; p++) {
		uint64_t v = 0;
		int rc = field_uint(&pools, "pools[]", UINT32_MAX, 0, &v, &scratch);
		assert(rc == 0);
		(void)rc;
		m->pool_capacity[p] = (uint32_t)v;
	}
	assert(scratch.status == BO_OK);
}

/* Decodes a create_event "map" value at c into a new seat map (*out), or
 * fails the command: map_invalid for any fault inside the value,
 * limit/seats_full over the message's seat budget. */
static int read_seatmap(mpack_cur *c, dec *d, bo_seatmap **out, wire_cmd_error *e)
{
	*out = NULL;
	map_scan s;
	if (scan_seatmap(c, &s, e) < 0) {
		/* The readers name the fault; its code is the seat map's. */
		e->detail = BO_D_MAP_INVALID;
		return -1;
	}
	if (d->map_seats + s.seat_count > WIRE_MAP_SEATS_PER_MSG_MAX) {
		field_fail(e, BO_LIMIT, BO_D_SEATS_FULL,
		           "seat maps of one message exceed %u seats; split the create_events",
		           WIRE_MAP_SEATS_PER_MSG_MAX);
		return -1;
	}
	/* Counts are within limits.h, so NULL can only mean out of memory. */
	bo_seatmap *m = bo_seatmap_new(s.row_count, (uint32_t)s.seat_count, s.pool_count);
	if (!m) {
		d->nomem = 1;
		field_fail(e, BO_INVALID, BO_D_NONE, "out of memory");
		return -1;
	}
	d->map_seats += s.seat_count;
	fill_seatmap(&s, m);
	*out = m;
	return 0;
}

/* ---- Request decoding ---------------------------------------------------- */

static int find_key(const mpack_tok *k)
{
	for (int j = 0; j < K_COUNT; j++) {
		if (mpack_str_is(k, keys[j].name))
			return j;
	}
	return -1;
}

/* Reads every key of a command map into x; *seen gets one bit per key. */
static int read_keys(mpack_cur *c, cmd_ctx *x, uint32_t *seen, wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_MAP) {
		field_fail(e, BO_INVALID, BO_D_NONE, "a command must be a map, not %s",
		           mpack_kind_name(t.kind));
		return -1;
	}
	for (uint32_t i = 0; i < t.n; i++) {
		mpack_tok k;
		if (field_key(c, "a command", &k, e) < 0)
			return -1;
		int key = find_key(&k);
		if (key < 0)
			return field_unknown_key(&k, "", e);
		if (*seen & KB(key))
			return field_dup_key(keys[key].name, e);
		*seen |= KB(key);
		if (keys[key].read(c, keys[key].name, x, e) < 0)
			return -1;
	}
	return 0;
}

/* The keys given must be those the op requires, plus optional ones. */
static int check_keys(uint8_t op, uint32_t seen, wire_cmd_error *e)
{
	if (!(seen & KB(K_OP))) {
		field_fail(e, BO_INVALID, BO_D_NONE, "missing key 'op'");
		return -1;
	}
	uint32_t required = op_keys(op) | KB(K_OP) | KB(K_EVENT);
	if (bo_op_mutates(op))
		required |= KB(K_CLIENT) | KB(K_REQUEST);
	uint32_t allowed = required | KB(K_CLIENT) | KB(K_REQUEST) | KB(K_EPOCH);
	if (op_takes_operator(op))
		allowed |= KB(K_OPERATOR);
	for (int j = 0; j < K_COUNT; j++) {
		if ((seen & KB(j)) && !(allowed & KB(j))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "key '%s' does not apply to op '%s'",
			           keys[j].name, bo_op_str(op));
			return -1;
		}
		if (!(seen & KB(j)) && (required & KB(j))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "missing key '%s' (op '%s')",
			           keys[j].name, bo_op_str(op));
			return -1;
		}
	}
	return 0;
}

/* Interprets one command (the value at c, well formed). Fills cmd and
 * returns 0, or fills e (cmd zeroed, nothing allocated) and returns -1. In
 * both cases c ends after the value. */
static int decode_cmd(mpack_cur *c, dec *d, bo_cmd *cmd, wire_cmd_error *e)
{
	mpack_cur start = *c;
	memset(cmd, 0, sizeof(*cmd));
	memset(e, 0, sizeof(*e));
	cmd_ctx x = {.cmd = cmd};
	uint32_t seen = 0;
	if (read_keys(c, &x, &seen, e) < 0 || check_keys(cmd->op, seen, e) < 0)
		goto bad;
	if (cmd->op == BO_OP_CREATE_EVENT) {
		bo_seatmap *m;
		if (read_seatmap(&x.map_at, d, &m, e) < 0)
			goto bad;
		cmd->map = m;
	}
	if (x.epoch > d->epoch)
		d->epoch = x.epoch;
	return 0;
bad:
	memset(cmd, 0, sizeof(*cmd));
	assert(e->status != BO_OK);
	*c = start;
	mpack_skip(c);
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
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, out) < 0)
		return -EINVAL;
	dec d = {0};
	uint32_t done = 0; /* commands decode_cmd() has written */
	if (top.kind == MPACK_MAP) {
		out->count = 1;
		out->invalid = decode_cmd(&c, &d, &cmds[0], &errs[0]) < 0;
		done = 1;
	} else if (top.kind == MPACK_ARRAY) {
		if (top.n > WIRE_BATCH_MAX || top.n > cap) {
			snprintf(out->error, sizeof(out->error),
			         "batch of %" PRIu32 " commands exceeds the limit of %" PRIu32,
			         top.n, top.n > WIRE_BATCH_MAX ? WIRE_BATCH_MAX : cap);
			return -EINVAL;
		}
		out->is_array = 1;
		out->count = top.n;
		for (; done < top.n && !d.nomem; done++)
			out->invalid += decode_cmd(&inside, &d, &cmds[done], &errs[done]) < 0;
	} else {
		snprintf(out->error, sizeof(out->error),
		         "a request must be a map or an array of maps, not %s",
		         mpack_kind_name(top.kind));
		return -EINVAL;
	}
	if (d.nomem) {
		wire_free_maps(cmds, done);
		memset(out, 0, sizeof(*out));
		snprintf(out->error, sizeof(out->error), "out of memory decoding seat maps");
		return -ENOMEM;
	}
	out->epoch = d.epoch;
	return 0;
}

/* ---- Request encoding (client side) -------------------------------------- */

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

static int pk_row(msgpack_packer *pk, uint16_t section, const uint8_t *cat, uint32_t n)
{
	bool uniform = true;
	for (uint32_t s = 1; s < n && uniform; s++)
		uniform = cat[s] == cat[0];
	/* One category for the row is the compact form; a mixed row lists each
	 * seat's category. */
	if (uniform) {
		return msgpack_pack_map(pk, 3) | pack_kv_u64(pk, "section", section) |
		       pack_kv_u64(pk, "seats", n) | pack_kv_u64(pk, "category", n ? cat[0] : 0);
	}
	int rc = msgpack_pack_map(pk, 2) | pack_kv_u64(pk, "section", section);
	rc |= pack_str(pk, "categories") | msgpack_pack_array(pk, n);
	for (uint32_t s = 0; s < n; s++)
		rc |= msgpack_pack_uint8(pk, cat[s]);
	return rc;
}

static int pk_seatmap(msgpack_packer *pk, const bo_seatmap *m)
{
	int rc = msgpack_pack_map(pk, 3);
	rc |= pack_kv_u64(pk, "categories", m->category_count);
	rc |= pack_str(pk, "rows") | msgpack_pack_array(pk, m->row_count);
	uint32_t first = 0;
	for (uint32_t r = 0; r < m->row_count; r++) {
		rc |= pk_row(pk, m->rows[r].section, m->categories + first, m->rows[r].seats);
		first += m->rows[r].seats;
	}
	rc |= pack_str(pk, "pools") | pack_u32_array(pk, m->pool_capacity, m->pool_count);
	return rc;
}

/* The value of key k of command c. */
static int pk_value(msgpack_packer *pk, int k, const bo_cmd *c)
{
	switch (k) {
	case K_OP:
		return pack_str(pk, bo_op_str(c->op));
	case K_EVENT:
		return msgpack_pack_uint64(pk, c->event_id);
	case K_CLIENT:
		return msgpack_pack_uint64(pk, c->client_id);
	case K_REQUEST:
		return msgpack_pack_uint64(pk, c->request_id);
	case K_SEATS:
		return pack_u32_array(pk, c->seats, c->seat_count);
	case K_TTL:
		return msgpack_pack_uint32(pk, c->ttl_ms);
	case K_CATEGORY:
		return msgpack_pack_uint8(pk, c->category);
	case K_QUANTITY:
		return msgpack_pack_uint16(pk, c->quantity);
	case K_POOL:
		return msgpack_pack_uint8(pk, c->pool);
	case K_HOLD:
	case K_BOOKING:
		return msgpack_pack_uint64(pk, c->claim_id);
	case K_PAYREF:
		return msgpack_pack_str_with_body(pk, c->payref, c->payref_len);
	case K_MAP:
		return pk_seatmap(pk, c->map);
	case K_OPERATOR:
		return msgpack_pack_true(pk);
	default: /* K_EPOCH: pk_cmd */
		assert(!"every key is handled");
		return -1;
	}
}

static int pk_cmd(msgpack_packer *pk, const bo_cmd *c, uint64_t epoch)
{
	uint32_t present = op_keys(c->op) | KB(K_OP) | KB(K_EVENT) | KB(K_CLIENT) | KB(K_REQUEST);
	if (c->flags & BO_CMD_F_OPERATOR)
		present |= KB(K_OPERATOR); /* only when set: the server's default */
	if (epoch != 0)
		present |= KB(K_EPOCH);
	int rc = msgpack_pack_map(pk, (size_t)__builtin_popcount(present));
	for (int k = 0; k < K_EPOCH; k++) {
		if (present & KB(k))
			rc |= pack_str(pk, keys[k].name) | pk_value(pk, k, c);
	}
	if (present & KB(K_EPOCH))
		rc |= pack_kv_u64(pk, keys[K_EPOCH].name, epoch);
	return rc;
}

int wire_encode_request(const bo_cmd *cmds, uint32_t n, int as_array, msgpack_sbuffer *out)
{
	return wire_encode_request_epoch(cmds, n, as_array, 0, out);
}

int wire_encode_request_epoch(const bo_cmd *cmds, uint32_t n, int as_array, uint64_t epoch,
                              msgpack_sbuffer *out)
{
	assert(out != NULL && (cmds != NULL || n == 0));
	if (as_array ? n > WIRE_BATCH_MAX : n != 1)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		const bo_cmd *c = &cmds[i];
		if (c->op <= BO_OP_NONE || c->op >= BO_OP_COUNT ||
		    c->seat_count > BO_SEATS_PER_HOLD_MAX || c->payref_len > BO_PAYREF_LEN_MAX)
			return -EINVAL;
		/* Only "operator" has a key, and only where it applies. */
		if ((c->flags & ~BO_CMD_F_OPERATOR) ||
		    ((c->flags & BO_CMD_F_OPERATOR) && !op_takes_operator(c->op)))
			return -EINVAL;
		if (c->op == BO_OP_CREATE_EVENT && !map_encodable(c->map))
			return -EINVAL;
	}
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = as_array ? msgpack_pack_array(&pk, n) : 0;
	for (uint32_t i = 0; i < n; i++)
		failed |= pk_cmd(&pk, &cmds[i], epoch);
	if (!failed && out->size - start > WIRE_MSG_MAX) {
		out->size = start;
		return -EINVAL; /* the server would refuse it */
	}
	return pack_finish(out, start, failed);
}
