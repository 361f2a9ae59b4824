/*
 * projection.c — the read side of the wire codec (projection.h): the
 * projection messages of the PUB socket and the event_state request and
 * reply. schemas/protocol.md part II is the client-facing text.
 *
 * What a change carries depends on its cause (cause_shape): create carries
 * nothing; block and unblock carry seats; the claim causes (hold, release,
 * expiry, confirm, cancel) carry "claim" and either seats or a pool. The
 * encoders check every rule the decoders check, so whatever they write
 * decodes; the values are bounded by limits.h (a seat index below
 * BO_SEATS_PER_EVENT_MAX, 1..BO_SEATS_PER_HOLD_MAX seats, a pool below
 * BO_POOLS_PER_EVENT_MAX, 1..BO_POOL_QTY_PER_HOLD_MAX tickets moved, at
 * most BO_POOL_CAPACITY_MAX free).
 *
 * The decoders first check the message rule of wire.h (field_message: one
 * msgpack value, at most WIRE_MSG_MAX bytes, nesting within
 * WIRE_DEPTH_MAX), then read keys in any order, each at most once; unknown
 * keys are skipped (a newer server may add some), known ones must have
 * their types. The projection decoder allocates nothing; the image decoder
 * allocates its three arrays only after their sizes are checked against
 * limits.h and against the bytes that carry them.
 */
#include "projection.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/names.h"
#include "field.h"
#include "mpack.h"
#include "pack.h"

#define ADMIN_OP_EVENT_STATE "event_state"

void wire_topic(uint64_t event_id, uint8_t out[WIRE_TOPIC_BYTES])
{
	for (unsigned i = 0; i < WIRE_TOPIC_BYTES; i++)
		out[i] = (uint8_t)(event_id >> (8u * (WIRE_TOPIC_BYTES - 1u - i)));
}

static uint64_t topic_event(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < WIRE_TOPIC_BYTES; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- What a change carries ----------------------------------------------- */

enum {
	SH_SEATS = 1u, /* "state" and "seats" */
	SH_POOL = 2u,  /* "pool", "quantity" and "pool_free" */
	SH_CLAIM = 4u, /* "claim" */
};

/* The fields a change of `cause` (1..BO_CAUSE_COUNT-1) may carry: a claim
 * cause moves the seats or the tickets of one hold or booking. */
static unsigned cause_shape(int cause)
{
	switch (cause) {
	case BO_CAUSE_CREATE:
		return 0;
	case BO_CAUSE_BLOCK:
	case BO_CAUSE_UNBLOCK:
		return SH_SEATS;
	default:
		return SH_SEATS | SH_POOL | SH_CLAIM;
	}
}

static int change_encodable(const bo_change *c)
{
	if (c->cause <= BO_CAUSE_NONE || c->cause >= BO_CAUSE_COUNT)
		return 0;
	unsigned shape = cause_shape(c->cause);
	if (c->is_pool)
		return (shape & SH_POOL) && c->pool < BO_POOLS_PER_EVENT_MAX && c->quantity >= 1 &&
		       c->quantity <= BO_POOL_QTY_PER_HOLD_MAX &&
		       c->pool_free <= BO_POOL_CAPACITY_MAX;
	if (!(shape & SH_SEATS))
		return c->seat_count == 0;
	if (c->seat_count < 1 || c->seat_count > BO_SEATS_PER_HOLD_MAX ||
	    c->state >= BO_SEAT_STATE_COUNT)
		return 0;
	for (uint32_t i = 0; i < c->seat_count; i++) {
		if (c->seats[i] >= BO_SEATS_PER_EVENT_MAX)
			return 0;
	}
	return 1;
}

/* ---- Projection message: encoder ------------------------------------------ */

static int pk_change(msgpack_packer *pk, const bo_change *c)
{
	unsigned shape = cause_shape(c->cause);
	int seats = !c->is_pool && (shape & SH_SEATS);
	size_t keys = 1 + ((shape & SH_CLAIM) ? 1 : 0) + (c->is_pool ? 3 : 0) + (seats ? 2 : 0);
	int rc = msgpack_pack_map(pk, keys) | pack_kv_str(pk, "cause", bo_cause_str(c->cause));
	if (shape & SH_CLAIM)
		rc |= pack_kv_u64(pk, "claim", c->claim_id);
	if (c->is_pool) {
		rc |= pack_kv_u64(pk, "pool", c->pool) | pack_kv_u64(pk, "quantity", c->quantity) |
		      pack_kv_u64(pk, "pool_free", c->pool_free);
	} else if (seats) {
		rc |= pack_kv_str(pk, "state", bo_seat_state_str(c->state)) |
		      pack_str(pk, "seats") | pack_u32_array(pk, c->seats, c->seat_count);
	}
	return rc;
}

int wire_encode_projection(const wire_projection *h, const bo_change *changes, msgpack_sbuffer *out)
{
	assert(h != NULL && out != NULL && (changes != NULL || h->count == 0));
	if (h->count == 0 || h->count > WIRE_PROJECTION_CHANGES_MAX || h->seq <= h->prev_seq)
		return -EINVAL;
	for (uint32_t i = 0; i < h->count; i++) {
		if (!change_encodable(&changes[i]))
			return -EINVAL;
	}
	size_t start = out->size;
	uint8_t topic[WIRE_TOPIC_BYTES];
	wire_topic(h->event_id, topic);
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_sbuffer_write(out, (const char *)topic, sizeof(topic));
	failed |= msgpack_pack_map(&pk, 6) | pack_kv_u64(&pk, "event", h->event_id) |
	          pack_kv_u64(&pk, "prev", h->prev_seq) | pack_kv_u64(&pk, "seq", h->seq) |
	          pack_str(&pk, "at_ms") | msgpack_pack_int64(&pk, h->at_ms) |
	          pack_str(&pk, "pub_us") | msgpack_pack_int64(&pk, h->pub_us) |
	          pack_str(&pk, "changes") | msgpack_pack_array(&pk, h->count);
	for (uint32_t i = 0; i < h->count; i++)
		failed |= pk_change(&pk, &changes[i]);
	return pack_finish(out, start, failed);
}

/* ---- Shared decoding helpers ----------------------------------------------- */

/* Index of k in names[0..n), or -1. */
static int key_index(const mpack_tok *k, const char *const *names, int n)
{
	for (int j = 0; j < n; j++) {
		if (mpack_str_is(k, names[j]))
			return j;
	}
	return -1;
}

/* A string naming fn(lo..hi-1); returns its index or -1. */
static int read_name(mpack_cur *c, const char *what, const char *(*fn)(int), int lo, int hi,
                     wire_cmd_error *e)
{
	mpack_tok s;
	if (field_str(c, what, &s, e) < 0)
		return -1;
	for (int i = lo; i < hi; i++) {
		if (mpack_str_is(&s, fn(i)))
			return i;
	}
	char b[48];
	mpack_printable(&s, b, sizeof(b));
	field_fail(e, BO_INVALID, BO_D_NONE, "unknown %s '%s'", what, b);
	return -1;
}

/* An unsigned integer in lo..hi. */
static int read_range(mpack_cur *c, const char *name, uint64_t lo, uint64_t hi, uint64_t *v,
                      wire_cmd_error *e)
{
	if (field_uint(c, name, hi, BO_D_NONE, v, e) < 0)
		return -1;
	if (*v < lo) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' is %" PRIu64 ", less than %" PRIu64,
		           name, *v, lo);
		return -1;
	}
	return 0;
}

/* Any integer that fits an int64. */
static int read_i64(mpack_cur *c, const char *name, int64_t *v, wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || (t.kind != MPACK_UINT && t.kind != MPACK_NINT) ||
	    (t.kind == MPACK_UINT && t.u > INT64_MAX)) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an int64", name);
		return -1;
	}
	*v = t.kind == MPACK_UINT ? (int64_t)t.u : t.i;
	return 0;
}

/* ---- Projection message: decoder ------------------------------------------ */

enum ckey {
	C_CAUSE,
	C_CLAIM,
	C_STATE,
	C_SEATS,
	C_POOL,
	C_QUANTITY,
	C_POOL_FREE,
	C_COUNT
};
static const char *const ckey_names[C_COUNT] = {"cause", "claim",    "state",    "seats",
                                                "pool",  "quantity", "pool_free"};

#define CB(k) (1u << (k))
#define C_SEAT_KEYS (CB(C_STATE) | CB(C_SEATS))
#define C_POOL_KEYS (CB(C_POOL) | CB(C_QUANTITY) | CB(C_POOL_FREE))

static int read_seats(mpack_cur *c, bo_change *ch, wire_cmd_error *e)
{
	uint32_t n;
	if (field_array(c, "seats", BO_SEATS_PER_HOLD_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'seats' is empty");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v;
		if (field_uint(c, "seats", BO_SEATS_PER_EVENT_MAX - 1u, BO_D_NONE, &v, e) < 0)
			return -1;
		ch->seats[i] = (uint32_t)v;
	}
	ch->seat_count = (uint8_t)n;
	return 0;
}

static int read_change_value(mpack_cur *c, int key, bo_change *ch, wire_cmd_error *e)
{
	uint64_t v;
	int idx;
	switch (key) {
	case C_CAUSE:
		if ((idx = read_name(c, "cause", bo_cause_str, 1, BO_CAUSE_COUNT, e)) < 0)
			return -1;
		ch->cause = (uint8_t)idx;
		return 0;
	case C_CLAIM:
		return field_uint(c, "claim", UINT64_MAX, BO_D_NONE, &ch->claim_id, e);
	case C_STATE:
		if ((idx = read_name(c, "state", bo_seat_state_str, 0, BO_SEAT_STATE_COUNT, e)) < 0)
			return -1;
		ch->state = (uint8_t)idx;
		return 0;
	case C_SEATS:
		return read_seats(c, ch, e);
	case C_POOL:
		if (field_uint(c, "pool", BO_POOLS_PER_EVENT_MAX - 1u, BO_D_NONE, &v, e) < 0)
			return -1;
		ch->pool = (uint8_t)v;
		return 0;
	case C_QUANTITY:
		if (read_range(c, "quantity", 1, BO_POOL_QTY_PER_HOLD_MAX, &v, e) < 0)
			return -1;
		ch->quantity = (uint32_t)v;
		return 0;
	default:
		if (field_uint(c, "pool_free", BO_POOL_CAPACITY_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		ch->pool_free = (uint32_t)v;
		return 0;
	}
}

/* The rules between a change's keys: the cause decides which it has. */
static int check_change(const bo_change *ch, uint32_t seen, wire_cmd_error *e)
{
	if (!(seen & CB(C_CAUSE))) {
		field_fail(e, BO_INVALID, BO_D_NONE, "missing key 'cause'");
		return -1;
	}
	const char *cause = bo_cause_str(ch->cause);
	unsigned shape = cause_shape(ch->cause);
	if ((seen & C_SEAT_KEYS) && (seen & C_POOL_KEYS)) {
		field_fail(e, BO_INVALID, BO_D_NONE, "a change has seat or pool fields, not both");
		return -1;
	}
	const char *extra = (seen & C_SEAT_KEYS) && !(shape & SH_SEATS)   ? "seat fields"
	                    : (seen & C_POOL_KEYS) && !(shape & SH_POOL)  ? "pool fields"
	                    : (seen & CB(C_CLAIM)) && !(shape & SH_CLAIM) ? "'claim'"
	                                                                  : NULL;
	if (extra) {
		field_fail(e, BO_INVALID, BO_D_NONE, "a '%s' change has no %s", cause, extra);
		return -1;
	}
	uint32_t need = 0;
	if (shape & SH_CLAIM)
		need |= CB(C_CLAIM);
	if (seen & C_POOL_KEYS)
		need |= C_POOL_KEYS;
	else if (shape & SH_SEATS)
		need |= C_SEAT_KEYS; /* a seat change unless it is a pool one */
	for (int k = 0; k < C_COUNT; k++) {
		if ((need & CB(k)) && !(seen & CB(k))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "a '%s' change needs '%s'", cause,
			           ckey_names[k]);
			return -1;
		}
	}
	return 0;
}

static int read_change(mpack_cur *c, bo_change *ch, wire_cmd_error *e)
{
	memset(ch, 0, sizeof(*ch));
	int64_t pairs = field_map(c, "changes[]", e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, "a change", &k, e) < 0)
			return -1;
		int key = key_index(&k, ckey_names, C_COUNT);
		if (key < 0) {
			mpack_skip(c);
			continue;
		}
		if (seen & CB(key))
			return field_dup_key(ckey_names[key], e);
		seen |= CB(key);
		if (read_change_value(c, key, ch, e) < 0)
			return -1;
	}
	if (check_change(ch, seen, e) < 0)
		return -1;
	ch->is_pool = (seen & C_POOL_KEYS) ? 1 : 0;
	return 0;
}

enum pkey {
	P_EVENT,
	P_PREV,
	P_SEQ,
	P_AT_MS,
	P_PUB_US,
	P_CHANGES,
	P_COUNT
};
static const char *const pkey_names[P_COUNT] = {"event", "prev",   "seq",
                                                "at_ms", "pub_us", "changes"};

static int read_changes(mpack_cur *c, wire_projection *h, bo_change *changes, uint32_t cap,
                        wire_cmd_error *e)
{
	uint32_t max = cap < WIRE_PROJECTION_CHANGES_MAX ? cap : WIRE_PROJECTION_CHANGES_MAX;
	uint32_t n;
	if (field_array(c, "changes", max, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'changes' is empty");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		wire_cmd_error ce = {0};
		if (read_change(c, &changes[i], &ce) < 0) {
			field_fail(e, BO_INVALID, BO_D_NONE, "changes[%" PRIu32 "]: %.90s", i,
			           ce.text);
			return -1;
		}
	}
	h->count = n;
	return 0;
}

static int read_projection_key(mpack_cur *c, int key, wire_projection *h, bo_change *changes,
                               uint32_t cap, wire_cmd_error *e)
{
	switch (key) {
	case P_EVENT:
		return field_uint(c, "event", UINT64_MAX, BO_D_NONE, &h->event_id, e);
	case P_PREV:
		return field_uint(c, "prev", UINT64_MAX, BO_D_NONE, &h->prev_seq, e);
	case P_SEQ:
		return field_uint(c, "seq", UINT64_MAX, BO_D_NONE, &h->seq, e);
	case P_AT_MS:
		return read_i64(c, "at_ms", &h->at_ms, e);
	case P_PUB_US:
		return read_i64(c, "pub_us", &h->pub_us, e);
	default:
		return read_changes(c, h, changes, cap, e);
	}
}

/* The map of a projection message, after its topic. */
static int read_projection(mpack_cur *c, uint64_t topic, wire_projection *h, bo_change *changes,
                           uint32_t cap, wire_cmd_error *e)
{
	int64_t pairs = field_map(c, "a projection", e);
	uint32_t seen = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, "a projection", &k, e) < 0)
			return -1;
		int key = key_index(&k, pkey_names, P_COUNT);
		if (key < 0) {
			mpack_skip(c);
			continue;
		}
		if (seen & (1u << key))
			return field_dup_key(pkey_names[key], e);
		seen |= 1u << key;
		if (read_projection_key(c, key, h, changes, cap, e) < 0)
			return -1;
	}
	for (int k = 0; k < P_COUNT; k++) {
		if (!(seen & (1u << k))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "missing key '%s'", pkey_names[k]);
			return -1;
		}
	}
	if (h->event_id != topic) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "the topic names event %" PRIu64 " but 'event' is %" PRIu64, topic,
		           h->event_id);
		return -1;
	}
	if (h->seq <= h->prev_seq) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "'seq' %" PRIu64 " is not above 'prev' %" PRIu64, h->seq, h->prev_seq);
		return -1;
	}
	return 0;
}

int wire_decode_projection(const uint8_t *buf, size_t len, wire_projection *h, bo_change *changes,
                           uint32_t cap, wire_msg *msg)
{
	assert((buf != NULL || len == 0) && h != NULL && msg != NULL &&
	       (changes != NULL || cap == 0));
	memset(h, 0, sizeof(*h));
	memset(msg, 0, sizeof(*msg));
	if (len < WIRE_TOPIC_BYTES) {
		snprintf(msg->error, sizeof(msg->error),
		         "projection of %zu bytes is shorter than its %u-byte topic", len,
		         WIRE_TOPIC_BYTES);
		return -EINVAL;
	}
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf + WIRE_TOPIC_BYTES, len - WIRE_TOPIC_BYTES, &c, &top, &inside, msg) <
	    0)
		return -EINVAL;
	if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error), "a projection must be a map, not %s",
		         mpack_kind_name(top.kind));
		return -EINVAL;
	}
	wire_cmd_error e = {0};
	if (read_projection(&c, topic_event(buf), h, changes, cap, &e) < 0) {
		memset(h, 0, sizeof(*h));
		snprintf(msg->error, sizeof(msg->error), "projection: %.110s", e.text);
		return -EINVAL;
	}
	msg->count = h->count;
	return 0;
}

/* ---- event_state request (client side) ------------------------------------ */

int wire_encode_event_state_request(uint64_t event_id, msgpack_sbuffer *out)
{
	assert(out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 2) | pack_kv_str(&pk, "op", ADMIN_OP_EVENT_STATE) |
	             pack_kv_u64(&pk, "event", event_id);
	return pack_finish(out, start, failed);
}

/* ---- event_state reply: encoder (server side) ----------------------------- */

/* The rules both sides check: counts within limits.h, rows of 1..
 * BO_SEATS_PER_ROW_MAX seats in sections below BO_SECTIONS_PER_EVENT_MAX
 * summing to the seats, every category below category_count, every state
 * a bo_seat_state, pools of 1..BO_POOL_CAPACITY_MAX with free <= capacity. */
int wire_event_image_valid(const bo_event_image *im)
{
	if (im->seat_count > BO_SEATS_PER_EVENT_MAX || im->row_count > BO_ROWS_PER_EVENT_MAX ||
	    im->category_count > BO_CATEGORIES_MAX || im->pool_count > BO_POOLS_PER_EVENT_MAX)
		return 0;
	if ((im->row_count && !im->rows) || (im->seat_count && (!im->categories || !im->states)))
		return 0;
	uint64_t sum = 0;
	for (uint32_t r = 0; r < im->row_count; r++) {
		const bo_row_def *row = &im->rows[r];
		if (row->section >= BO_SECTIONS_PER_EVENT_MAX || row->seats < 1 ||
		    row->seats > BO_SEATS_PER_ROW_MAX)
			return 0;
		sum += row->seats;
	}
	if (sum != im->seat_count)
		return 0;
	for (uint32_t s = 0; s < im->seat_count; s++) {
		if (im->categories[s] >= im->category_count || im->states[s] >= BO_SEAT_STATE_COUNT)
			return 0;
	}
	for (uint32_t p = 0; p < im->pool_count; p++) {
		if (im->pool_capacity[p] < 1 || im->pool_capacity[p] > BO_POOL_CAPACITY_MAX ||
		    im->pool_free[p] > im->pool_capacity[p])
			return 0;
	}
	return 1;
}

static int pk_bin(msgpack_packer *pk, const uint8_t *data, uint32_t n)
{
	int rc = msgpack_pack_bin(pk, n);
	if (n > 0)
		rc |= msgpack_pack_bin_body(pk, data, n);
	return rc;
}

int wire_encode_event_image(const bo_event_image *im, msgpack_sbuffer *out)
{
	assert(im != NULL && out != NULL);
	if (!wire_event_image_valid(im))
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 8) | pack_kv_str(&pk, "status", bo_status_str(BO_OK)) |
	             pack_kv_u64(&pk, "event", im->event_id) | pack_kv_u64(&pk, "seq", im->seq) |
	             pack_kv_u64(&pk, "category_count", im->category_count) |
	             pack_str(&pk, "rows") | msgpack_pack_array(&pk, im->row_count);
	for (uint32_t r = 0; r < im->row_count; r++)
		failed |= msgpack_pack_array(&pk, 2) |
		          msgpack_pack_uint16(&pk, im->rows[r].section) |
		          msgpack_pack_uint16(&pk, im->rows[r].seats);
	failed |= pack_str(&pk, "categories") | pk_bin(&pk, im->categories, im->seat_count) |
	          pack_str(&pk, "states") | pk_bin(&pk, im->states, im->seat_count) |
	          pack_str(&pk, "pools") | msgpack_pack_array(&pk, im->pool_count);
	for (uint32_t p = 0; p < im->pool_count; p++)
		failed |= msgpack_pack_array(&pk, 2) |
		          msgpack_pack_uint32(&pk, im->pool_capacity[p]) |
		          msgpack_pack_uint32(&pk, im->pool_free[p]);
	return pack_finish(out, start, failed);
}

/* ---- event_state reply: decoder (client side) ----------------------------- */

enum ikey {
	I_STATUS,
	I_DETAIL,
	I_ERROR,
	I_EVENT,
	I_SEQ,
	I_CATEGORY_COUNT,
	I_ROWS,
	I_CATEGORIES,
	I_STATES,
	I_POOLS,
	I_COUNT
};
static const char *const ikey_names[I_COUNT] = {
        "status",         "detail", "error",      "event",  "seq",
        "category_count", "rows",   "categories", "states", "pools",
};
#define IB(k) (1u << (k))
/* The keys an ok reply must have. */
#define I_OK_KEYS                                                                         \
	(IB(I_EVENT) | IB(I_SEQ) | IB(I_CATEGORY_COUNT) | IB(I_ROWS) | IB(I_CATEGORIES) | \
	 IB(I_STATES) | IB(I_POOLS))

/* A reply being read: the image, and what is checked once all is read. */
typedef struct image_ctx {
	bo_event_image *im;
	int status;
	char error[WIRE_ERROR_LEN_MAX];
	uint64_t seats; /* the rows' sum */
	mpack_tok categories, states;
	int nomem;
} image_ctx;

/* One [a, b] pair of unsigned integers: a in lo[0]..hi[0], b in lo[1]..hi[1]. */
static int read_pair(mpack_cur *c, const char *name, const uint64_t lo[2], const uint64_t hi[2],
                     uint64_t v[2], wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_ARRAY || t.n != 2) {
		field_fail(e, BO_INVALID, BO_D_NONE, "each entry of '%s' must be an array of 2",
		           name);
		return -1;
	}
	for (int j = 0; j < 2; j++) {
		if (read_range(c, name, lo[j], hi[j], &v[j], e) < 0)
			return -1;
	}
	return 0;
}

/* "rows": [[section, seats], ...], allocated into im->rows. */
static int read_rows(mpack_cur *c, image_ctx *x, wire_cmd_error *e)
{
	static const uint64_t lo[2] = {0, 1},
	                      hi[2] = {BO_SECTIONS_PER_EVENT_MAX - 1u, BO_SEATS_PER_ROW_MAX};
	uint32_t n;
	if (field_array(c, "rows", BO_ROWS_PER_EVENT_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n > 0 && !(x->im->rows = malloc((size_t)n * sizeof(bo_row_def)))) {
		x->nomem = 1;
		field_fail(e, BO_INVALID, BO_D_NONE, "out of memory for %" PRIu32 " rows", n);
		return -1;
	}
	x->im->row_count = n;
	for (uint32_t r = 0; r < n; r++) {
		uint64_t v[2];
		if (read_pair(c, "rows", lo, hi, v, e) < 0)
			return -1;
		x->im->rows[r] = (bo_row_def){.section = (uint16_t)v[0], .seats = (uint16_t)v[1]};
		x->seats += v[1];
	}
	return 0;
}

/* "pools": [[capacity, free], ...] with free <= capacity. */
static int read_pools(mpack_cur *c, bo_event_image *im, wire_cmd_error *e)
{
	static const uint64_t lo[2] = {1, 0}, hi[2] = {BO_POOL_CAPACITY_MAX, BO_POOL_CAPACITY_MAX};
	uint32_t n;
	if (field_array(c, "pools", BO_POOLS_PER_EVENT_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	for (uint32_t p = 0; p < n; p++) {
		uint64_t v[2];
		if (read_pair(c, "pools", lo, hi, v, e) < 0)
			return -1;
		if (v[1] > v[0]) {
			field_fail(e, BO_INVALID, BO_D_NONE,
			           "pool %" PRIu32 " has %" PRIu64
			           " free of a capacity of %" PRIu64,
			           p, v[1], v[0]);
			return -1;
		}
		im->pool_capacity[p] = (uint32_t)v[0];
		im->pool_free[p] = (uint32_t)v[1];
	}
	im->pool_count = n;
	return 0;
}

static int read_bin(mpack_cur *c, const char *name, mpack_tok *t, wire_cmd_error *e)
{
	if (mpack_read(c, t) < 0 || t->kind != MPACK_BIN) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a bin", name);
		return -1;
	}
	return 0;
}

static int read_image_key(mpack_cur *c, int key, image_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	mpack_tok s;
	int idx;
	switch (key) {
	case I_STATUS:
		if ((idx = read_name(c, "status", bo_status_str, 0, BO_STATUS_COUNT, e)) < 0)
			return -1;
		x->status = idx;
		return 0;
	case I_DETAIL:
		return field_str(c, "detail", &s, e);
	case I_ERROR: {
		if (field_str(c, "error", &s, e) < 0)
			return -1;
		size_t m = s.n < sizeof(x->error) - 1 ? s.n : sizeof(x->error) - 1;
		memcpy(x->error, s.data, m);
		x->error[m] = '\0';
		return 0;
	}
	case I_EVENT:
		return field_uint(c, "event", UINT64_MAX, BO_D_NONE, &x->im->event_id, e);
	case I_SEQ:
		return field_uint(c, "seq", UINT64_MAX, BO_D_NONE, &x->im->seq, e);
	case I_CATEGORY_COUNT:
		if (field_uint(c, "category_count", BO_CATEGORIES_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		x->im->category_count = (uint32_t)v;
		return 0;
	case I_ROWS:
		return read_rows(c, x, e);
	case I_CATEGORIES:
		return read_bin(c, "categories", &x->categories, e);
	case I_STATES:
		return read_bin(c, "states", &x->states, e);
	default:
		return read_pools(c, x->im, e);
	}
}

/* A copy of bin token t of n bytes, each below `bound`, into *dst. */
static int take_bytes(const mpack_tok *t, const char *name, uint32_t bound, uint8_t **dst,
                      image_ctx *x, wire_cmd_error *e)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->data[i] >= bound) {
			field_fail(e, BO_INVALID, BO_D_NONE,
			           "'%s' of seat %" PRIu32 " is %u, not below %" PRIu32, name, i,
			           t->data[i], bound);
			return -1;
		}
	}
	if (t->n == 0)
		return 0;
	if (!(*dst = malloc(t->n))) {
		x->nomem = 1;
		field_fail(e, BO_INVALID, BO_D_NONE, "out of memory for %" PRIu32 " seats", t->n);
		return -1;
	}
	memcpy(*dst, t->data, t->n);
	return 0;
}

/* An ok reply, all keys read: the seats the rows sum to, one category and
 * one state byte each. */
static int check_image(image_ctx *x, uint32_t seen, wire_cmd_error *e)
{
	for (int k = 0; k < I_COUNT; k++) {
		if ((I_OK_KEYS & IB(k)) && !(seen & IB(k))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "an ok reply needs '%s'",
			           ikey_names[k]);
			return -1;
		}
	}
	if (x->seats > BO_SEATS_PER_EVENT_MAX) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "the rows hold %" PRIu64 " seats, more than %u", x->seats,
		           BO_SEATS_PER_EVENT_MAX);
		return -1;
	}
	if (x->categories.n != x->seats || x->states.n != x->seats) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "'categories' (%" PRIu32 " bytes) and 'states' (%" PRIu32
		           ") must have a byte per seat of the rows (%" PRIu64 ")",
		           x->categories.n, x->states.n, x->seats);
		return -1;
	}
	bo_event_image *im = x->im;
	im->seat_count = (uint32_t)x->seats;
	return take_bytes(&x->categories, "categories", im->category_count, &im->categories, x, e) <
	                               0 ||
	                       take_bytes(&x->states, "states", BO_SEAT_STATE_COUNT, &im->states, x,
	                                  e) < 0
	               ? -1
	               : 0;
}

static int read_image(mpack_cur *c, image_ctx *x, wire_cmd_error *e)
{
	int64_t pairs = field_map(c, "the reply", e);
	uint32_t seen = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, "the reply", &k, e) < 0)
			return -1;
		int key = key_index(&k, ikey_names, I_COUNT);
		if (key < 0) {
			mpack_skip(c);
			continue;
		}
		if (seen & IB(key))
			return field_dup_key(ikey_names[key], e);
		seen |= IB(key);
		if (read_image_key(c, key, x, e) < 0)
			return -1;
	}
	if (!(seen & IB(I_STATUS))) {
		field_fail(e, BO_INVALID, BO_D_NONE, "missing key 'status'");
		return -1;
	}
	return x->status == BO_OK ? check_image(x, seen, e) : 0;
}

int wire_decode_event_image(const uint8_t *buf, size_t len, bo_event_image *im, int *status,
                            wire_msg *msg)
{
	assert((buf != NULL || len == 0) && im != NULL && status != NULL && msg != NULL);
	*im = (bo_event_image){0};
	*status = BO_INVALID;
	memset(msg, 0, sizeof(*msg));
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, msg) < 0)
		return -EINVAL;
	if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error),
		         "an event_state reply must be a map, not %s", mpack_kind_name(top.kind));
		return -EINVAL;
	}
	image_ctx x = {.im = im, .status = BO_INVALID};
	wire_cmd_error e = {0};
	if (read_image(&c, &x, &e) < 0) {
		bo_event_image_free(im);
		snprintf(msg->error, sizeof(msg->error), "event_state reply: %.100s", e.text);
		return x.nomem ? -ENOMEM : -EINVAL;
	}
	*status = x.status;
	if (x.status != BO_OK) {
		bo_event_image_free(im);
		snprintf(msg->error, sizeof(msg->error), "%s", x.error);
	}
	msg->count = 1;
	return 0;
}
