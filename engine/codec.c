/*
 * codec.c — canonical binary encoding of commands and results.
 *
 * ENCODING
 *
 * Every integer is little-endian and of the width given below (u8, u16,
 * u32, u64; i64 is two's complement). Fields are written one by one, in the
 * order listed; nothing is aligned or padded. A "group" is present only when
 * the meaningful-field table below says so for the op (and status).
 *
 * Command (version 2, CODEC_VERSION):
 *   u8 op (1..BO_OP_COUNT-1)  u8 version (2)
 *   u64 client_id  u64 request_id  u64 event_id
 *   [CLAIM]    u64 claim_id
 *   [TTL]      u32 ttl_ms
 *   [CATEGORY] u8 category
 *   [POOL]     u8 pool
 *   [QTY]      u16 quantity
 *   [SEATS]    u8 seat_count (<= BO_SEATS_PER_HOLD_MAX), u32 seats[seat_count]
 *   [PAYREF]   u8 payref_len (<= BO_PAYREF_LEN_MAX), payref_len bytes
 *   [MAP]      u8 has_map (0: map NULL, 1: a map follows)
 *              u32 row_count  u32 seat_count  u8 pool_count  u8 category_count
 *              u32 pool_capacity[pool_count]
 *              row_count times: u16 section  u16 seats  runs
 *              runs: (u16 length, u8 category) pairs covering the row's seats
 *              in order; every length >= 1, and two consecutive runs of one
 *              row never share a category (runs are maximal).
 *   [FLAGS]    u8 flags: BO_CMD_F_* bits only (OPERATOR 0x01, ANY_CLIENT
 *              0x02; any other bit set is invalid). Last, so a version 2
 *              claim command is its version 1 form plus this one byte.
 *
 * Command, version 1 (CODEC_VERSION_V1: journals written before claims
 * were owned, engine.h "Ownership"): the same layout without [FLAGS].
 * Decode still accepts it, for recovery and replay of old journals, and
 * gives a claim op flags = BO_CMD_F_ANY_CLIENT: those records were applied
 * under the old rule (any client could touch any claim) and must replay
 * to the same results. This is the one exception to "canonical": such a
 * command re-encodes as version 2 (with flags 0x02), never as version 1;
 * encode writes version 2 only.
 *
 * Result (CODEC_RESULT_VERSION, still 1: the ownership rule added no
 * result field, and results keep their one encoding):
 *   u8 op  u8 version  u8 status (< BO_STATUS_COUNT)  u8 replayed
 *   u64 client_id  u64 request_id  u64 event_id
 *   [DETAIL]   u8 detail (< BO_D_COUNT)
 *   [CLAIM]    u64 claim_id
 *   [EXPIRES]  i64 expires_at_ms
 *   [QTY]      u32 quantity
 *   [POOL]     u8 pool
 *   [SEATS]    u8 seat_count (<= BO_SEATS_PER_HOLD_MAX), u32 seats[seat_count]
 *   [STATE]    u8 seat_state[seat_count] (each < BO_SEAT_STATE_COUNT)
 *   [AVAIL]    u8 category_count (<= BO_CATEGORIES_MAX)
 *              u8 pool_count (<= BO_POOLS_PER_EVENT_MAX)
 *              u32 by_state[BO_SEAT_STATE_COUNT]
 *              u32 free_by_category[category_count]
 *              u32 pool_capacity[pool_count]  u32 pool_free[pool_count]
 *
 * MEANINGFUL FIELDS (the one place that defines them: cmd_groups() and
 * result_groups() below; size, encode, decode and the _equal functions all
 * follow these two functions and nothing else)
 *
 * Commands: op, client_id, request_id, event_id always (client/request are
 * the request's identity, which the gateway uses to route the answer even
 * for read-only queries), plus
 *   CREATE_EVENT  map (by content; NULL is a value of its own)
 *   HOLD_SEATS    seats, ttl          HOLD_BEST   category, quantity, ttl
 *   HOLD_POOL     pool, quantity, ttl EXTEND      claim, ttl
 *   RELEASE       claim, flags        CONFIRM     claim, payref, flags
 *   CANCEL        claim, flags        BLOCK/UNBLOCK/QUERY_SEATS  seats
 *   EXTEND also carries flags;        QUERY_AVAIL nothing more
 * (flags are encoded as they are for all four claim ops, whatever the
 * engine makes of a bit on a given op: the journal records what was
 * asked, and replay re-asks exactly that.)
 * "seats" means seat_count and seats[0..seat_count); "payref" means
 * payref_len and payref[0..payref_len).
 *
 * Results: op, status, replayed, client_id, request_id, event_id always, plus
 *   status != OK  detail, seats (BO_TAKEN names the first unavailable seat;
 *                 for every other error seat_count is normally 0: one byte)
 *   OK HOLD_SEATS / HOLD_BEST   claim, expires_at, seats, quantity
 *   OK HOLD_POOL                claim, expires_at, pool, quantity
 *   OK EXTEND                   claim, expires_at, seats, pool, quantity
 *   OK RELEASE/CONFIRM/CANCEL   claim, seats, pool, quantity (the claim may
 *                               be a seat hold or a pool hold; the unused
 *                               half costs two to six bytes)
 *   OK BLOCK / UNBLOCK          seats
 *   OK QUERY_SEATS              seats and seat_state[0..seat_count)
 *   OK QUERY_AVAIL              avail (by_state, the first category_count
 *                               free_by_category, the first pool_count
 *                               pool_capacity / pool_free)
 *   OK CREATE_EVENT             nothing more
 * The table leans to including a field when engine.h leaves it open whether
 * the engine fills it: a spare field costs bytes, a missing one would hide a
 * divergence from the replay verifier.
 *
 * VALIDITY RULE
 *
 * An encoding is valid if and only if it is exactly what the encoder writes
 * for some value: every count within its bound, every enumerated byte in its
 * range, has_map 0 or 1, runs maximal, the runs of a row summing
 * to its seats, the rows summing to seat_count, and the decoded map passing
 * bo_seatmap_check(), flags within BO_CMD_F_*; or, for a command, exactly
 * what the version 1 encoder wrote. Anything else, including a truncation,
 * is -EINVAL.
 *
 * DECODING A MAP FROM HOSTILE BYTES
 *
 * Before bo_seatmap_new() is called: the counts are within limits.h,
 * seat_count <= row_count * BO_SEATS_PER_ROW_MAX, and the bytes left cover
 * the fixed part (pools and row headers). So the largest allocation a hostile
 * input can cause is bounded by limits.h (a 1 Mi-seat map, ~1.3 MiB), which
 * takes 256 rows, i.e. about 1 KiB of input; the map is freed again before a
 * failing decode returns. Runs are then bounds-checked one by one against
 * the row and the seat array.
 */
#include "codec.h"
#include "base/le.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/* ---- Meaningful fields --------------------------------------------------- */

enum {
	CF_CLAIM = 1u << 0,
	CF_TTL = 1u << 1,
	CF_CATEGORY = 1u << 2,
	CF_POOL = 1u << 3,
	CF_QTY = 1u << 4,
	CF_SEATS = 1u << 5,
	CF_PAYREF = 1u << 6,
	CF_MAP = 1u << 7,
	CF_FLAGS = 1u << 8,
};

/* The flag bits a command encoding may carry. */
#define CODEC_FLAGS_KNOWN (BO_CMD_F_OPERATOR | BO_CMD_F_ANY_CLIENT)

enum {
	RF_DETAIL = 1u << 0,
	RF_CLAIM = 1u << 1,
	RF_EXPIRES = 1u << 2,
	RF_QTY = 1u << 3,
	RF_POOL = 1u << 4,
	RF_SEATS = 1u << 5,
	RF_STATE = 1u << 6,
	RF_AVAIL = 1u << 7,
};

static int op_valid(uint32_t op)
{
	return op > BO_OP_NONE && op < BO_OP_COUNT;
}

/* Groups a command of `op` carries besides op and the three ids. */
static uint32_t cmd_groups(uint32_t op)
{
	switch (op) {
	case BO_OP_CREATE_EVENT:
		return CF_MAP;
	case BO_OP_HOLD_SEATS:
		return CF_TTL | CF_SEATS;
	case BO_OP_HOLD_BEST:
		return CF_TTL | CF_CATEGORY | CF_QTY;
	case BO_OP_HOLD_POOL:
		return CF_TTL | CF_POOL | CF_QTY;
	case BO_OP_EXTEND:
		return CF_CLAIM | CF_TTL | CF_FLAGS;
	case BO_OP_RELEASE:
		return CF_CLAIM | CF_FLAGS;
	case BO_OP_CONFIRM:
		return CF_CLAIM | CF_PAYREF | CF_FLAGS;
	case BO_OP_CANCEL:
		return CF_CLAIM | CF_FLAGS;
	case BO_OP_BLOCK:
		return CF_SEATS;
	case BO_OP_UNBLOCK:
		return CF_SEATS;
	case BO_OP_QUERY_AVAIL:
		return 0;
	case BO_OP_QUERY_SEATS:
		return CF_SEATS;
	default:
		break;
	}
	assert(!"op validated by the caller");
	return 0;
}

/* Groups a result of (op, status) carries besides op, status, replayed and
 * the three ids. */
static uint32_t result_groups(uint32_t op, uint32_t status)
{
	if (status != BO_OK)
		return RF_DETAIL | RF_SEATS;
	switch (op) {
	case BO_OP_CREATE_EVENT:
		return 0;
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
		return RF_CLAIM | RF_EXPIRES | RF_SEATS | RF_QTY;
	case BO_OP_HOLD_POOL:
		return RF_CLAIM | RF_EXPIRES | RF_POOL | RF_QTY;
	case BO_OP_EXTEND:
		return RF_CLAIM | RF_EXPIRES | RF_SEATS | RF_POOL | RF_QTY;
	case BO_OP_RELEASE:
	case BO_OP_CONFIRM:
	case BO_OP_CANCEL:
		return RF_CLAIM | RF_SEATS | RF_POOL | RF_QTY;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		return RF_SEATS;
	case BO_OP_QUERY_AVAIL:
		return RF_AVAIL;
	case BO_OP_QUERY_SEATS:
		return RF_SEATS | RF_STATE;
	default:
		break;
	}
	assert(!"op validated by the caller");
	return 0;
}

/* ---- Byte writer (sizes are computed first, so running out is a bug) ---- */

typedef struct wr {
	uint8_t *p;   /* next byte to write */
	uint8_t *end; /* one past the last byte we may write */
} wr;

static void put_u8(wr *w, uint32_t v)
{
	assert(w->p < w->end);
	*w->p++ = (uint8_t)v;
}

static void put_u16(wr *w, uint32_t v)
{
	assert(w->end - w->p >= 2);
	bo_le_store16(w->p, (uint16_t)v);
	w->p += 2;
}

static void put_u32(wr *w, uint32_t v)
{
	assert(w->end - w->p >= 4);
	bo_le_store32(w->p, v);
	w->p += 4;
}

static void put_u64(wr *w, uint64_t v)
{
	assert(w->end - w->p >= 8);
	bo_le_store64(w->p, v);
	w->p += 8;
}

static void put_i64(wr *w, int64_t v)
{
	put_u64(w, (uint64_t)v);
}

static void put_bytes(wr *w, const void *src, size_t n)
{
	assert((size_t)(w->end - w->p) >= n);
	if (n > 0)
		memcpy(w->p, src, n);
	w->p += n;
}

/* ---- Byte reader: sticky failure, never reads past the end -------------- */

typedef struct rd {
	const uint8_t *p; /* next byte to read */
	size_t left;      /* bytes left in the input */
	int bad;          /* a read ran past the end: every later read yields 0 */
} rd;

/* 1 when n more bytes are available (and marks the reader bad if not), so
 * a count can be checked against the input before it is trusted. */
static inline int need(rd *r, uint64_t n)
{
	if (r->bad || n > r->left) {
		r->bad = 1;
		return 0;
	}
	return 1;
}

static inline uint32_t get_u8(rd *r)
{
	if (!need(r, 1))
		return 0;
	r->left--;
	return *r->p++;
}

static inline uint32_t get_u16(rd *r)
{
	if (!need(r, 2))
		return 0;
	uint32_t v = bo_le_load16(r->p);
	r->p += 2;
	r->left -= 2;
	return v;
}

static inline uint32_t get_u32(rd *r)
{
	if (!need(r, 4))
		return 0;
	uint32_t v = bo_le_load32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

static inline uint64_t get_u64(rd *r)
{
	if (!need(r, 8))
		return 0;
	uint64_t v = bo_le_load64(r->p);
	r->p += 8;
	r->left -= 8;
	return v;
}

/* Two's complement back to int64_t without implementation-defined casts. */
static int64_t get_i64(rd *r)
{
	uint64_t v = get_u64(r);
	if (v <= (uint64_t)INT64_MAX)
		return (int64_t)v;
	return -(int64_t)(~v) - 1;
}

static void get_bytes(rd *r, void *dst, size_t n)
{
	if (!need(r, n))
		return;
	if (n > 0)
		memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
}

/* Finishes an encode: checks the size promise and returns it. */
static int32_t wr_done(const wr *w, const uint8_t *buf, int32_t size)
{
	assert(w->p - buf == size);
	(void)w;
	(void)buf;
	return size;
}

/* ---- Seat maps ----------------------------------------------------------- */

/* The codec's own precondition for walking a map: counts within what the
 * format can carry and rows summing to seat_count. The engine's rules
 * proper are bo_seatmap_check()'s; this only keeps the walks below inside
 * the arrays whatever the map holds. */
static int map_walkable(const bo_seatmap *m)
{
	if (m->row_count > BO_ROWS_PER_EVENT_MAX || m->seat_count > BO_SEATS_PER_EVENT_MAX ||
	    m->pool_count > BO_POOLS_PER_EVENT_MAX || m->category_count > BO_CATEGORIES_MAX)
		return 0;
	if ((m->row_count > 0 && m->rows == NULL) || (m->seat_count > 0 && m->categories == NULL) ||
	    (m->pool_count > 0 && m->pool_capacity == NULL))
		return 0;
	uint64_t sum = 0;
	for (uint32_t r = 0; r < m->row_count; r++)
		sum += m->rows[r].seats;
	return sum == m->seat_count;
}

/* Encoded size of a walkable map, has_map byte included: the flag and the
 * four counts, then the description (rows, runs, pools) as base/seatmap.h
 * measures it for BO_MAP_DESC_BYTES_MAX. */
static uint64_t map_size(const bo_seatmap *m)
{
	return CODEC_MAP_FIXED_BYTES + bo_seatmap_desc_bytes(m);
}

static void map_put(wr *w, const bo_seatmap *m)
{
	put_u8(w, 1);
	put_u32(w, m->row_count);
	put_u32(w, m->seat_count);
	put_u8(w, m->pool_count);
	put_u8(w, m->category_count);
	for (uint32_t p = 0; p < m->pool_count; p++)
		put_u32(w, m->pool_capacity[p]);
	uint32_t first = 0;
	for (uint32_t r = 0; r < m->row_count; r++) {
		uint32_t n = m->rows[r].seats;
		put_u16(w, m->rows[r].section);
		put_u16(w, n);
		uint32_t i = 0;
		while (i < n) {
			uint8_t cat = m->categories[first + i];
			uint32_t len = 1;
			while (i + len < n && m->categories[first + i + len] == cat)
				len++;
			put_u16(w, len);
			put_u8(w, cat);
			i += len;
		}
		first += n;
	}
}

/* Decodes the part after has_map == 1. Returns 0 and sets *out, -EINVAL or
 * -ENOMEM; nothing stays allocated on failure. */
static int map_get(rd *r, bo_seatmap **out)
{
	*out = NULL;
	uint32_t row_count = get_u32(r);
	uint32_t seat_count = get_u32(r);
	uint32_t pool_count = get_u8(r);
	uint32_t category_count = get_u8(r);
	if (r->bad)
		return -EINVAL;
	if (row_count > BO_ROWS_PER_EVENT_MAX || seat_count > BO_SEATS_PER_EVENT_MAX ||
	    pool_count > BO_POOLS_PER_EVENT_MAX || category_count > BO_CATEGORIES_MAX)
		return -EINVAL;
	/* No row can hold more than BO_SEATS_PER_ROW_MAX seats, and every row
	 * and pool needs its fixed bytes: check both before allocating, so a
	 * short input cannot make us reserve a large map. */
	if ((uint64_t)seat_count > (uint64_t)row_count * BO_SEATS_PER_ROW_MAX)
		return -EINVAL;
	if (!need(r, 4ull * pool_count + 4ull * row_count))
		return -EINVAL;

	bo_seatmap *m = bo_seatmap_new(row_count, seat_count, pool_count);
	if (m == NULL)
		return -ENOMEM;
	m->row_count = row_count;
	m->seat_count = seat_count;
	m->pool_count = pool_count;
	m->category_count = category_count;
	for (uint32_t p = 0; p < pool_count; p++)
		m->pool_capacity[p] = get_u32(r);

	uint32_t first = 0;
	for (uint32_t row = 0; row < row_count; row++) {
		m->rows[row].section = (uint16_t)get_u16(r);
		uint32_t n = get_u16(r);
		m->rows[row].seats = (uint16_t)n;
		if (r->bad || n > seat_count - first)
			goto invalid;
		uint32_t filled = 0;
		uint32_t prev = UINT32_MAX; /* no run yet in this row */
		while (filled < n) {
			uint32_t len = get_u16(r);
			uint32_t cat = get_u8(r);
			/* Maximal runs keep the encoding canonical. */
			if (r->bad || len == 0 || len > n - filled || cat == prev)
				goto invalid;
			memset(m->categories + first + filled, (int)cat, len);
			filled += len;
			prev = cat;
		}
		first += n;
	}
	if (r->bad || first != seat_count)
		goto invalid;
	/* The engine's own rules (sections, row sizes, categories, pools). */
	if (bo_seatmap_check(m) != BO_D_NONE)
		goto invalid;
	*out = m;
	return 0;

invalid:
	bo_seatmap_free(m);
	return -EINVAL;
}

static int map_equal(const bo_seatmap *a, const bo_seatmap *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->row_count != b->row_count || a->seat_count != b->seat_count ||
	    a->pool_count != b->pool_count || a->category_count != b->category_count)
		return 0;
	for (uint32_t r = 0; r < a->row_count; r++) {
		if (a->rows[r].section != b->rows[r].section ||
		    a->rows[r].seats != b->rows[r].seats)
			return 0;
	}
	if (a->seat_count > 0 && memcmp(a->categories, b->categories, a->seat_count) != 0)
		return 0;
	for (uint32_t p = 0; p < a->pool_count; p++) {
		if (a->pool_capacity[p] != b->pool_capacity[p])
			return 0;
	}
	return 1;
}

/* ---- Commands ------------------------------------------------------------ */

int32_t codec_cmd_size(const bo_cmd *cmd)
{
	assert(cmd != NULL);
	if (!op_valid(cmd->op))
		return -EINVAL;
	uint32_t g = cmd_groups(cmd->op);
	uint64_t size = 2 + 3 * 8;
	if (g & CF_CLAIM)
		size += 8;
	if (g & CF_TTL)
		size += 4;
	if (g & CF_CATEGORY)
		size += 1;
	if (g & CF_POOL)
		size += 1;
	if (g & CF_QTY)
		size += 2;
	if (g & CF_SEATS) {
		if (cmd->seat_count > BO_SEATS_PER_HOLD_MAX)
			return -EINVAL;
		size += 1 + 4u * cmd->seat_count;
	}
	if (g & CF_PAYREF) {
		if (cmd->payref_len > BO_PAYREF_LEN_MAX)
			return -EINVAL;
		size += 1 + cmd->payref_len;
	}
	if (g & CF_MAP) {
		if (cmd->map == NULL) {
			size += 1;
		} else {
			/* Only maps the engine would accept are encodable, so a
			 * decoded map can always be trusted (see codec.h). */
			if (!map_walkable(cmd->map) || bo_seatmap_check(cmd->map) != BO_D_NONE)
				return -EINVAL;
			size += map_size(cmd->map);
		}
	}
	if (g & CF_FLAGS) {
		if (cmd->flags & ~CODEC_FLAGS_KNOWN)
			return -EINVAL;
		size += 1;
	}
	assert(size <= CODEC_CMD_SIZE_MAX);
	return (int32_t)size;
}

int32_t codec_cmd_encode(const bo_cmd *cmd, uint8_t *buf, size_t cap)
{
	assert(cmd != NULL && (buf != NULL || cap == 0));
	int32_t size = codec_cmd_size(cmd);
	if (size < 0)
		return size;
	if ((size_t)size > cap)
		return -ENOSPC;
	wr w = {buf, buf + size};
	uint32_t g = cmd_groups(cmd->op);
	put_u8(&w, cmd->op);
	put_u8(&w, CODEC_VERSION);
	put_u64(&w, cmd->client_id);
	put_u64(&w, cmd->request_id);
	put_u64(&w, cmd->event_id);
	if (g & CF_CLAIM)
		put_u64(&w, cmd->claim_id);
	if (g & CF_TTL)
		put_u32(&w, cmd->ttl_ms);
	if (g & CF_CATEGORY)
		put_u8(&w, cmd->category);
	if (g & CF_POOL)
		put_u8(&w, cmd->pool);
	if (g & CF_QTY)
		put_u16(&w, cmd->quantity);
	if (g & CF_SEATS) {
		put_u8(&w, cmd->seat_count);
		for (uint32_t i = 0; i < cmd->seat_count; i++)
			put_u32(&w, cmd->seats[i]);
	}
	if (g & CF_PAYREF) {
		put_u8(&w, cmd->payref_len);
		put_bytes(&w, cmd->payref, cmd->payref_len);
	}
	if (g & CF_MAP) {
		if (cmd->map == NULL)
			put_u8(&w, 0);
		else
			map_put(&w, cmd->map);
	}
	if (g & CF_FLAGS)
		put_u8(&w, cmd->flags);
	return wr_done(&w, buf, size);
}

int32_t codec_cmd_decode(const uint8_t *buf, size_t len, bo_cmd *out, bo_seatmap **map)
{
	assert((buf != NULL || len == 0) && out != NULL && map != NULL);
	*map = NULL;
	memset(out, 0, sizeof(*out));
	rd r = {buf, len, 0};
	uint32_t op = get_u8(&r);
	uint32_t version = get_u8(&r);
	if (r.bad || !op_valid(op) || (version != CODEC_VERSION && version != CODEC_VERSION_V1))
		return -EINVAL;
	out->op = (uint8_t)op;
	out->client_id = get_u64(&r);
	out->request_id = get_u64(&r);
	out->event_id = get_u64(&r);
	uint32_t g = cmd_groups(op);
	if (g & CF_CLAIM)
		out->claim_id = get_u64(&r);
	if (g & CF_TTL)
		out->ttl_ms = get_u32(&r);
	if (g & CF_CATEGORY)
		out->category = (uint8_t)get_u8(&r);
	if (g & CF_POOL)
		out->pool = (uint8_t)get_u8(&r);
	if (g & CF_QTY)
		out->quantity = (uint16_t)get_u16(&r);
	if (g & CF_SEATS) {
		uint32_t n = get_u8(&r);
		if (n > BO_SEATS_PER_HOLD_MAX || !need(&r, 4ull * n))
			return -EINVAL;
		out->seat_count = (uint8_t)n;
		for (uint32_t i = 0; i < n; i++)
			out->seats[i] = get_u32(&r);
	}
	if (g & CF_PAYREF) {
		uint32_t n = get_u8(&r);
		if (n > BO_PAYREF_LEN_MAX)
			return -EINVAL;
		out->payref_len = (uint8_t)n;
		get_bytes(&r, out->payref, n);
	}
	if (r.bad)
		return -EINVAL;
	if (g & CF_MAP) {
		uint32_t has_map = get_u8(&r);
		if (r.bad || has_map > 1)
			return -EINVAL;
		if (has_map) {
			int rc = map_get(&r, map);
			if (rc < 0)
				return rc;
			out->map = *map;
		}
	}
	if ((g & CF_FLAGS) && version == CODEC_VERSION_V1) {
		out->flags = BO_CMD_F_ANY_CLIENT; /* the rule it was applied under */
	} else if (g & CF_FLAGS) {
		uint32_t f = get_u8(&r);
		if (r.bad || (f & ~CODEC_FLAGS_KNOWN))
			return -EINVAL;
		out->flags = (uint8_t)f;
	}
	assert(!r.bad && len - r.left <= CODEC_CMD_SIZE_MAX);
	return (int32_t)(len - r.left);
}

int codec_cmd_equal(const bo_cmd *a, const bo_cmd *b)
{
	assert(a != NULL && b != NULL);
	if (a->op != b->op || a->client_id != b->client_id || a->request_id != b->request_id ||
	    a->event_id != b->event_id)
		return 0;
	if (!op_valid(a->op))
		return 1; /* no meaningful fields beyond these */
	uint32_t g = cmd_groups(a->op);
	if ((g & CF_CLAIM) && a->claim_id != b->claim_id)
		return 0;
	if ((g & CF_TTL) && a->ttl_ms != b->ttl_ms)
		return 0;
	if ((g & CF_CATEGORY) && a->category != b->category)
		return 0;
	if ((g & CF_POOL) && a->pool != b->pool)
		return 0;
	if ((g & CF_QTY) && a->quantity != b->quantity)
		return 0;
	if (g & CF_SEATS) {
		if (a->seat_count != b->seat_count)
			return 0;
		uint32_t n = a->seat_count < BO_SEATS_PER_HOLD_MAX ? a->seat_count
		                                                   : BO_SEATS_PER_HOLD_MAX;
		for (uint32_t i = 0; i < n; i++) {
			if (a->seats[i] != b->seats[i])
				return 0;
		}
	}
	if (g & CF_PAYREF) {
		if (a->payref_len != b->payref_len)
			return 0;
		uint32_t n = a->payref_len < BO_PAYREF_LEN_MAX ? a->payref_len : BO_PAYREF_LEN_MAX;
		if (memcmp(a->payref, b->payref, n) != 0)
			return 0;
	}
	if ((g & CF_MAP) && !map_equal(a->map, b->map))
		return 0;
	if ((g & CF_FLAGS) && a->flags != b->flags)
		return 0;
	return 1;
}

/* ---- Results ------------------------------------------------------------- */

int32_t codec_result_size(const bo_result *res)
{
	assert(res != NULL);
	if (!op_valid(res->op) || res->status >= BO_STATUS_COUNT)
		return -EINVAL;
	uint32_t g = result_groups(res->op, res->status);
	uint64_t size = 4 + 3 * 8;
	if (g & RF_DETAIL) {
		if (res->detail >= BO_D_COUNT)
			return -EINVAL;
		size += 1;
	}
	if (g & RF_CLAIM)
		size += 8;
	if (g & RF_EXPIRES)
		size += 8;
	if (g & RF_QTY)
		size += 4;
	if (g & RF_POOL)
		size += 1;
	if (g & RF_SEATS) {
		if (res->seat_count > BO_SEATS_PER_HOLD_MAX)
			return -EINVAL;
		size += 1 + 4u * res->seat_count;
	}
	if (g & RF_STATE) {
		for (uint32_t i = 0; i < res->seat_count; i++) {
			if (res->seat_state[i] >= BO_SEAT_STATE_COUNT)
				return -EINVAL;
		}
		size += res->seat_count;
	}
	if (g & RF_AVAIL) {
		const bo_avail *av = &res->avail;
		if (av->category_count > BO_CATEGORIES_MAX ||
		    av->pool_count > BO_POOLS_PER_EVENT_MAX)
			return -EINVAL;
		size += 2 + 4u * BO_SEAT_STATE_COUNT + 4u * av->category_count +
		        8u * av->pool_count;
	}
	assert(size <= CODEC_RESULT_SIZE_MAX);
	return (int32_t)size;
}

int32_t codec_result_encode(const bo_result *res, uint8_t *buf, size_t cap)
{
	assert(res != NULL && (buf != NULL || cap == 0));
	int32_t size = codec_result_size(res);
	if (size < 0)
		return size;
	if ((size_t)size > cap)
		return -ENOSPC;
	wr w = {buf, buf + size};
	uint32_t g = result_groups(res->op, res->status);
	put_u8(&w, res->op);
	put_u8(&w, CODEC_RESULT_VERSION);
	put_u8(&w, res->status);
	put_u8(&w, res->replayed);
	put_u64(&w, res->client_id);
	put_u64(&w, res->request_id);
	put_u64(&w, res->event_id);
	if (g & RF_DETAIL)
		put_u8(&w, res->detail);
	if (g & RF_CLAIM)
		put_u64(&w, res->claim_id);
	if (g & RF_EXPIRES)
		put_i64(&w, res->expires_at_ms);
	if (g & RF_QTY)
		put_u32(&w, res->quantity);
	if (g & RF_POOL)
		put_u8(&w, res->pool);
	if (g & RF_SEATS) {
		put_u8(&w, res->seat_count);
		for (uint32_t i = 0; i < res->seat_count; i++)
			put_u32(&w, res->seats[i]);
	}
	if (g & RF_STATE) {
		for (uint32_t i = 0; i < res->seat_count; i++)
			put_u8(&w, res->seat_state[i]);
	}
	if (g & RF_AVAIL) {
		const bo_avail *av = &res->avail;
		put_u8(&w, av->category_count);
		put_u8(&w, av->pool_count);
		for (uint32_t i = 0; i < BO_SEAT_STATE_COUNT; i++)
			put_u32(&w, av->by_state[i]);
		for (uint32_t i = 0; i < av->category_count; i++)
			put_u32(&w, av->free_by_category[i]);
		for (uint32_t i = 0; i < av->pool_count; i++)
			put_u32(&w, av->pool_capacity[i]);
		for (uint32_t i = 0; i < av->pool_count; i++)
			put_u32(&w, av->pool_free[i]);
	}
	return wr_done(&w, buf, size);
}

int32_t codec_result_decode(const uint8_t *buf, size_t len, bo_result *out)
{
	assert((buf != NULL || len == 0) && out != NULL);
	memset(out, 0, sizeof(*out));
	rd r = {buf, len, 0};
	uint32_t op = get_u8(&r);
	uint32_t version = get_u8(&r);
	uint32_t status = get_u8(&r);
	out->replayed = (uint8_t)get_u8(&r);
	if (r.bad || !op_valid(op) || version != CODEC_RESULT_VERSION || status >= BO_STATUS_COUNT)
		return -EINVAL;
	out->op = (uint8_t)op;
	out->status = (uint8_t)status;
	out->client_id = get_u64(&r);
	out->request_id = get_u64(&r);
	out->event_id = get_u64(&r);
	uint32_t g = result_groups(op, status);
	if (g & RF_DETAIL) {
		uint32_t d = get_u8(&r);
		if (d >= BO_D_COUNT)
			return -EINVAL;
		out->detail = (uint8_t)d;
	}
	if (g & RF_CLAIM)
		out->claim_id = get_u64(&r);
	if (g & RF_EXPIRES)
		out->expires_at_ms = get_i64(&r);
	if (g & RF_QTY)
		out->quantity = get_u32(&r);
	if (g & RF_POOL)
		out->pool = (uint8_t)get_u8(&r);
	if (g & RF_SEATS) {
		uint32_t n = get_u8(&r);
		if (n > BO_SEATS_PER_HOLD_MAX || !need(&r, 4ull * n))
			return -EINVAL;
		out->seat_count = (uint8_t)n;
		for (uint32_t i = 0; i < n; i++)
			out->seats[i] = get_u32(&r);
	}
	if (g & RF_STATE) {
		for (uint32_t i = 0; i < out->seat_count; i++) {
			uint32_t s = get_u8(&r);
			if (s >= BO_SEAT_STATE_COUNT)
				return -EINVAL;
			out->seat_state[i] = (uint8_t)s;
		}
	}
	if (g & RF_AVAIL) {
		bo_avail *av = &out->avail;
		uint32_t cc = get_u8(&r);
		uint32_t pc = get_u8(&r);
		if (r.bad || cc > BO_CATEGORIES_MAX || pc > BO_POOLS_PER_EVENT_MAX)
			return -EINVAL;
		av->category_count = (uint8_t)cc;
		av->pool_count = (uint8_t)pc;
		for (uint32_t i = 0; i < BO_SEAT_STATE_COUNT; i++)
			av->by_state[i] = get_u32(&r);
		for (uint32_t i = 0; i < cc; i++)
			av->free_by_category[i] = get_u32(&r);
		for (uint32_t i = 0; i < pc; i++)
			av->pool_capacity[i] = get_u32(&r);
		for (uint32_t i = 0; i < pc; i++)
			av->pool_free[i] = get_u32(&r);
	}
	if (r.bad)
		return -EINVAL;
	assert(len - r.left <= CODEC_RESULT_SIZE_MAX);
	return (int32_t)(len - r.left);
}

static int seats_equal(uint32_t n, const uint32_t *a, const uint32_t *b)
{
	for (uint32_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return 0;
	}
	return 1;
}

int codec_result_equal(const bo_result *a, const bo_result *b)
{
	assert(a != NULL && b != NULL);
	if (a->op != b->op || a->status != b->status || a->replayed != b->replayed ||
	    a->client_id != b->client_id || a->request_id != b->request_id ||
	    a->event_id != b->event_id)
		return 0;
	if (!op_valid(a->op))
		return 1; /* no meaningful fields beyond these */
	uint32_t g = result_groups(a->op, a->status);
	if ((g & RF_DETAIL) && a->detail != b->detail)
		return 0;
	if ((g & RF_CLAIM) && a->claim_id != b->claim_id)
		return 0;
	if ((g & RF_EXPIRES) && a->expires_at_ms != b->expires_at_ms)
		return 0;
	if ((g & RF_QTY) && a->quantity != b->quantity)
		return 0;
	if ((g & RF_POOL) && a->pool != b->pool)
		return 0;
	/* Counts past the arrays (no encoding exists) compare on the count and
	 * the arrays' full length, never beyond. */
	uint32_t n = a->seat_count < BO_SEATS_PER_HOLD_MAX ? a->seat_count : BO_SEATS_PER_HOLD_MAX;
	if ((g & (RF_SEATS | RF_STATE)) && a->seat_count != b->seat_count)
		return 0;
	if ((g & RF_SEATS) && !seats_equal(n, a->seats, b->seats))
		return 0;
	if ((g & RF_STATE) && memcmp(a->seat_state, b->seat_state, n) != 0)
		return 0;
	if (g & RF_AVAIL) {
		const bo_avail *x = &a->avail, *y = &b->avail;
		if (x->category_count != y->category_count || x->pool_count != y->pool_count)
			return 0;
		uint32_t cc = x->category_count < BO_CATEGORIES_MAX ? x->category_count
		                                                    : BO_CATEGORIES_MAX;
		uint32_t pc = x->pool_count < BO_POOLS_PER_EVENT_MAX ? x->pool_count
		                                                     : BO_POOLS_PER_EVENT_MAX;
		if (!seats_equal(BO_SEAT_STATE_COUNT, x->by_state, y->by_state) ||
		    !seats_equal(cc, x->free_by_category, y->free_by_category) ||
		    !seats_equal(pc, x->pool_capacity, y->pool_capacity) ||
		    !seats_equal(pc, x->pool_free, y->pool_free))
			return 0;
	}
	return 1;
}
