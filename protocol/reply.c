/*
 * reply.c — the reply half of the wire codec (wire.h): the server encodes
 * replies (wire_encode_replies, wire_encode_error), the client decodes them
 * (wire_decode_replies). schemas/protocol.md §4 is the client-facing text.
 *
 * Replies are written with msgpack-c's packer, one key table (rkeys[])
 * naming every reply key once; which keys a reply carries depends on its
 * status and op (reply_keys). They are read back with the bounded reader of
 * mpack.h: keys the decoder does not know are skipped (a v1 client keeps
 * working against a server that adds keys), known keys must have their
 * documented types.
 *
 * "seq" (bo_result.view_seq) is written on query_avail/query_seats
 * replies the read model answered (view_seq != 0) and read back on those
 * ops only: on any other op the key is checked for its type and dropped,
 * so what decodes re-encodes to the same reply.
 *
 * "retry_after_ms" (bo_result.retry_after_ms, set by the gateway) is written
 * on busy/throttled replies that have a hint (non-zero) and read back on
 * those statuses only, by the same rule.
 *
 * "epoch" and "primary" (wire_primary, given beside the results by the
 * gateway) are written on not_primary replies only, after every other key,
 * and read back into wire_reply_info.primary on that status only.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "mpack.h"
#include "pack.h"

const char *wire_detail_name(int detail)
{
	return bo_detail_name(detail);
}

/* Error text for a non-ok reply whose detail has none (gateway statuses). */
static const char *status_text(int status)
{
	switch (status) {
	case BO_BUSY:
		return "server busy, retry later";
	case BO_THROTTLED:
		return "event throttled, retry later";
	case BO_NOT_PRIMARY:
		return "this server is not the primary of the shard";
	default:
		return bo_status_str(status);
	}
}

/* ---- Reply keys ---------------------------------------------------------- */

/* Reply keys, in the order the encoder writes them (as the doc lists them). */
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
	R_SEQ, /* queries answered by the read model: bo_result.view_seq */
	R_RETRY, /* busy/throttled with a hint: bo_result.retry_after_ms */
	R_EPOCH,   /* not_primary: wire_primary.epoch */
	R_PRIMARY, /* not_primary with a known primary: {"node", "address"} */
	R_COUNT
};

#define RB(k) (1u << (k))

/* A reply being decoded: the result, what else the reply said, and the
 * values checked once every key is read. */
typedef struct reply_ctx {
	bo_result *r;
	wire_reply_info *info;
	uint64_t hold;
	uint64_t booking;
	uint32_t states_n;
} reply_ctx;

typedef int (*rkey_reader)(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e);

static const char *const rkey_names[R_COUNT] = {
        "status",   "detail",   "error",  "op",      "client",        "request",
        "event",    "replayed", "hold",   "booking", "expires_at_ms", "seats",
        "quantity", "pool",     "states", "avail",   "seq",           "retry_after_ms",
        "epoch",    "primary",
};

/* ---- Reply encoding (server side) ---------------------------------------- */

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

static int pk_avail(msgpack_packer *pk, const bo_avail *a)
{
	int rc = msgpack_pack_map(pk, 6);
	rc |= pack_kv_u64(pk, "free", a->by_state[BO_SEAT_FREE]);
	rc |= pack_kv_u64(pk, "held", a->by_state[BO_SEAT_HELD]);
	rc |= pack_kv_u64(pk, "booked", a->by_state[BO_SEAT_BOOKED]);
	rc |= pack_kv_u64(pk, "blocked", a->by_state[BO_SEAT_BLOCKED]);
	rc |= pack_str(pk, "free_by_category");
	rc |= pack_u32_array(pk, a->free_by_category, a->category_count);
	rc |= pack_str(pk, "pools");
	rc |= msgpack_pack_array(pk, a->pool_count);
	for (uint32_t p = 0; p < a->pool_count; p++) {
		rc |= msgpack_pack_map(pk, 2);
		rc |= pack_kv_u64(pk, "capacity", a->pool_capacity[p]);
		rc |= pack_kv_u64(pk, "free", a->pool_free[p]);
	}
	return rc;
}

/* The value of reply key k for result r. */
static int pk_rvalue(msgpack_packer *pk, int k, const bo_result *r)
{
	switch (k) {
	case R_STATUS:
		return pack_str(pk, bo_status_str(r->status));
	case R_DETAIL:
		return pack_str(pk, bo_detail_name(r->detail));
	case R_ERROR:
		return pack_str(pk, r->detail != BO_D_NONE ? bo_detail_str(r->detail)
		                                           : status_text(r->status));
	case R_OP:
		return pack_str(pk, bo_op_str(r->op));
	case R_CLIENT:
		return msgpack_pack_uint64(pk, r->client_id);
	case R_REQUEST:
		return msgpack_pack_uint64(pk, r->request_id);
	case R_EVENT:
		return msgpack_pack_uint64(pk, r->event_id);
	case R_REPLAYED:
		return msgpack_pack_true(pk);
	case R_HOLD:
	case R_BOOKING:
		return msgpack_pack_uint64(pk, r->claim_id);
	case R_EXPIRES:
		return msgpack_pack_int64(pk, r->expires_at_ms);
	case R_SEATS:
		return pack_u32_array(pk, r->seats, r->seat_count);
	case R_QUANTITY:
		return msgpack_pack_uint32(pk, r->quantity);
	case R_POOL:
		return msgpack_pack_uint32(pk, r->pool);
	case R_STATES: {
		int rc = msgpack_pack_array(pk, r->seat_count);
		for (uint32_t i = 0; i < r->seat_count; i++)
			rc |= pack_str(pk, bo_seat_state_str(r->seat_state[i]));
		return rc;
	}
	case R_AVAIL:
		return pk_avail(pk, &r->avail);
	case R_SEQ:
		return msgpack_pack_uint64(pk, r->view_seq);
	case R_RETRY:
		return msgpack_pack_uint32(pk, r->retry_after_ms);
	default: /* R_EPOCH, R_PRIMARY: pk_primary */
		assert(!"every reply key is handled");
		return -1;
	}
}

/* 1 for the ops the read model answers (their replies may carry "seq"). */
static int is_query(int op)
{
	return op == BO_OP_QUERY_AVAIL || op == BO_OP_QUERY_SEATS;
}

/* 1 for the statuses whose replies may carry "retry_after_ms". */
static int is_shed(int status)
{
	return status == BO_BUSY || status == BO_THROTTLED;
}

/* A primary is encodable when unknown, or known with a non-empty
 * NUL-terminated address. */
static int primary_encodable(const wire_primary *p)
{
	return !p || !p->known ||
	       (p->address[0] != '\0' && memchr(p->address, '\0', sizeof(p->address)) != NULL);
}

/* The not_primary keys (present: RB(R_EPOCH) and maybe RB(R_PRIMARY)). */
static int pk_primary(msgpack_packer *pk, uint32_t present, const wire_primary *p)
{
	int rc = 0;
	if (present & RB(R_EPOCH))
		rc |= pack_kv_u64(pk, rkey_names[R_EPOCH], p ? p->epoch : 0);
	if (present & RB(R_PRIMARY))
		rc |= pack_str(pk, rkey_names[R_PRIMARY]) | msgpack_pack_map(pk, 2) |
		      pack_kv_u64(pk, "node", p->node) | pack_kv_str(pk, "address", p->address);
	return rc;
}

/* The keys a not_primary reply adds. */
static uint32_t primary_keys(int status, const wire_primary *p)
{
	if (status != BO_NOT_PRIMARY)
		return 0;
	return RB(R_EPOCH) | (p && p->known ? RB(R_PRIMARY) : 0);
}

static int pk_result(msgpack_packer *pk, const bo_result *r, const wire_primary *p)
{
	int op_ok = r->op > BO_OP_NONE && r->op < BO_OP_COUNT;
	uint32_t present = RB(R_STATUS) | RB(R_CLIENT) | RB(R_REQUEST) | RB(R_EVENT) |
	                   (op_ok ? RB(R_OP) : 0) | (r->replayed ? RB(R_REPLAYED) : 0) |
	                   (is_query(r->op) && r->view_seq != 0 ? RB(R_SEQ) : 0) |
	                   (is_shed(r->status) && r->retry_after_ms != 0 ? RB(R_RETRY) : 0) |
	                   reply_keys(r) | primary_keys(r->status, p);
	int rc = msgpack_pack_map(pk, (size_t)__builtin_popcount(present));
	for (int k = 0; k < R_EPOCH; k++) {
		if (present & RB(k))
			rc |= pack_str(pk, rkey_names[k]) | pk_rvalue(pk, k, r);
	}
	return rc | pk_primary(pk, present, p);
}

static int pk_cmd_error(msgpack_packer *pk, const wire_cmd_error *e)
{
	const char *detail = e->detail == BO_D_NONE || e->detail >= BO_D_COUNT
	                             ? WIRE_DETAIL_MALFORMED
	                             : bo_detail_name(e->detail);
	return msgpack_pack_map(pk, 3) | pack_kv_str(pk, "status", bo_status_str(e->status)) |
	       pack_kv_str(pk, "detail", detail) | pack_kv_str(pk, "error", e->text);
}

int wire_encode_replies(const bo_result *res, const wire_cmd_error *errs, uint32_t count,
                        int is_array, msgpack_sbuffer *out)
{
	return wire_encode_replies_primary(res, errs, NULL, count, is_array, out);
}

int wire_encode_replies_primary(const bo_result *res, const wire_cmd_error *errs,
                                const wire_primary *primary, uint32_t count, int is_array,
                                msgpack_sbuffer *out)
{
	assert(out != NULL && (res != NULL || count == 0));
	assert(is_array ? count <= WIRE_BATCH_MAX : count == 1);
	for (uint32_t i = 0; i < count; i++) {
		if (errs && errs[i].status != BO_OK) {
			if (errs[i].status >= BO_STATUS_COUNT)
				return -EINVAL;
		} else if (!result_encodable(&res[i]) ||
		           !primary_encodable(primary ? &primary[i] : NULL)) {
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
			failed |= pk_result(&pk, &res[i], primary ? &primary[i] : NULL);
	}
	return pack_finish(out, start, failed);
}

int wire_encode_error(int status, const char *message, msgpack_sbuffer *out)
{
	assert(message != NULL && out != NULL);
	if (status <= BO_OK || status >= BO_STATUS_COUNT)
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	const char *detail =
	        status == BO_INVALID ? WIRE_DETAIL_MALFORMED : bo_detail_name(BO_D_NONE);
	int failed = msgpack_pack_map(&pk, 3) | pack_kv_str(&pk, "status", bo_status_str(status)) |
	             pack_kv_str(&pk, "detail", detail) | pack_kv_str(&pk, "error", message);
	return pack_finish(out, start, failed);
}

int wire_encode_not_primary(const wire_primary *p, const char *message, msgpack_sbuffer *out)
{
	assert(message != NULL && out != NULL);
	if (!primary_encodable(p))
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	uint32_t present = primary_keys(BO_NOT_PRIMARY, p);
	int failed = msgpack_pack_map(&pk, 3 + (size_t)__builtin_popcount(present)) |
	             pack_kv_str(&pk, "status", bo_status_str(BO_NOT_PRIMARY)) |
	             pack_kv_str(&pk, "detail", bo_detail_name(BO_D_NONE)) |
	             pack_kv_str(&pk, "error", message) | pk_primary(&pk, present, p);
	return pack_finish(out, start, failed);
}

/* ---- Reply decoding (client side): one reader per key --------------------- */

/* Reads a string naming one of fn(lo..hi-1). Returns the index or -1. */
typedef const char *(*name_fn)(int);

static int get_name(mpack_cur *c, name_fn fn, int lo, int hi, const char *what, wire_cmd_error *e)
{
	mpack_tok t;
	if (field_str(c, what, &t, e) < 0)
		return -1;
	for (int i = lo; i < hi; i++) {
		const char *s = fn(i);
		if (s && mpack_str_is(&t, s))
			return i;
	}
	char b[48];
	mpack_printable(&t, b, sizeof(b));
	field_fail(e, BO_INVALID, BO_D_NONE, "unknown %s '%s'", what, b);
	return -1;
}

static int get_u32_list(mpack_cur *c, const char *name, uint32_t max, uint32_t *dst, uint32_t *n,
                        wire_cmd_error *e)
{
	if (field_array(c, name, max, BO_D_NONE, n, e) < 0)
		return -1;
	for (uint32_t i = 0; i < *n; i++) {
		uint64_t v;
		if (field_uint(c, name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		dst[i] = (uint32_t)v;
	}
	return 0;
}

static int rr_status(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	int idx = get_name(c, bo_status_str, 0, BO_STATUS_COUNT, name, e);
	if (idx < 0)
		return -1;
	x->r->status = (uint8_t)idx;
	return 0;
}

static int rr_detail(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	mpack_tok t;
	if (field_str(c, name, &t, e) < 0)
		return -1;
	/* "malformed" is the wire's own; a detail a newer server added is read
	 * as no detail (the status still says what happened). */
	x->info->malformed = (uint8_t)mpack_str_is(&t, WIRE_DETAIL_MALFORMED);
	for (int d = 0; d < BO_D_COUNT; d++) {
		const char *s = wire_detail_name(d);
		if (s && mpack_str_is(&t, s))
			x->r->detail = (uint8_t)d;
	}
	return 0;
}

static int rr_error(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	mpack_tok s;
	if (field_str(c, name, &s, e) < 0)
		return -1;
	size_t m = s.n < WIRE_ERROR_LEN_MAX - 1 ? s.n : WIRE_ERROR_LEN_MAX - 1;
	memcpy(x->info->error, s.data, m);
	x->info->error[m] = '\0';
	return 0;
}

static int rr_op(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	int idx = get_name(c, bo_op_str, 1, BO_OP_COUNT, name, e);
	if (idx < 0)
		return -1;
	x->r->op = (uint8_t)idx;
	return 0;
}

static int rr_client(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->r->client_id, e);
}

static int rr_request(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->r->request_id, e);
}

static int rr_event(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->r->event_id, e);
}

static int rr_hold(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->hold, e);
}

static int rr_booking(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->booking, e);
}

static int rr_replayed(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	mpack_tok b;
	if (mpack_read(c, &b) < 0 || b.kind != MPACK_BOOL) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a boolean", name);
		return -1;
	}
	x->r->replayed = (uint8_t)b.u;
	return 0;
}

static int rr_expires(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || (t.kind != MPACK_UINT && t.kind != MPACK_NINT) ||
	    (t.kind == MPACK_UINT && t.u > INT64_MAX)) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an int64", name);
		return -1;
	}
	x->r->expires_at_ms = t.kind == MPACK_UINT ? (int64_t)t.u : t.i;
	return 0;
}

static int rr_seats(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	uint32_t n;
	if (get_u32_list(c, name, BO_SEATS_PER_HOLD_MAX, x->r->seats, &n, e) < 0)
		return -1;
	x->r->seat_count = (uint8_t)n;
	return 0;
}

static int rr_quantity(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
		return -1;
	x->r->quantity = (uint32_t)v;
	return 0;
}

static int rr_pool(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT8_MAX, BO_D_NONE, &v, e) < 0)
		return -1;
	x->r->pool = (uint8_t)v;
	return 0;
}

static int rr_states(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	if (field_array(c, name, BO_QUERY_SEATS_MAX, BO_D_NONE, &x->states_n, e) < 0)
		return -1;
	for (uint32_t s = 0; s < x->states_n; s++) {
		int idx = get_name(c, bo_seat_state_str, 0, BO_SEAT_STATE_COUNT, "seat state", e);
		if (idx < 0)
			return -1;
		x->r->seat_state[s] = (uint8_t)idx;
	}
	return 0;
}

/* One {"capacity": n, "free": n} of "avail"."pools" (other keys skipped). */
static int read_avail_pool(mpack_cur *c, bo_avail *a, uint32_t p, wire_cmd_error *e)
{
	int64_t pairs = field_map(c, "pools[]", e);
	if (pairs < 0)
		return -1;
	for (int64_t j = 0; j < pairs; j++) {
		mpack_tok k;
		uint64_t v;
		if (field_key(c, "a pool", &k, e) < 0)
			return -1;
		uint32_t *dst = mpack_str_is(&k, "capacity") ? &a->pool_capacity[p]
		                : mpack_str_is(&k, "free")   ? &a->pool_free[p]
		                                             : NULL;
		if (!dst) {
			mpack_skip(c);
			continue;
		}
		if (field_uint(c, "pools[]", UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		*dst = (uint32_t)v;
	}
	return 0;
}

/* One key of "avail" (unknown ones skipped). */
static int read_avail_key(mpack_cur *c, bo_avail *a, wire_cmd_error *e)
{
	static const char *const states[BO_SEAT_STATE_COUNT] = {"free", "held", "booked",
	                                                        "blocked"};
	mpack_tok k;
	uint64_t v;
	uint32_t n;
	if (field_key(c, "'avail'", &k, e) < 0)
		return -1;
	for (int s = 0; s < BO_SEAT_STATE_COUNT; s++) {
		if (!mpack_str_is(&k, states[s]))
			continue;
		if (field_uint(c, states[s], UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		a->by_state[s] = (uint32_t)v;
		return 0;
	}
	if (mpack_str_is(&k, "free_by_category")) {
		if (get_u32_list(c, "free_by_category", BO_CATEGORIES_MAX, a->free_by_category, &n,
		                 e) < 0)
			return -1;
		a->category_count = (uint8_t)n;
	} else if (mpack_str_is(&k, "pools")) {
		if (field_array(c, "pools", BO_POOLS_PER_EVENT_MAX, BO_D_NONE, &n, e) < 0)
			return -1;
		a->pool_count = (uint8_t)n;
		for (uint32_t p = 0; p < n; p++) {
			if (read_avail_pool(c, a, p, e) < 0)
				return -1;
		}
	} else {
		mpack_skip(c);
	}
	return 0;
}

static int rr_avail(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	int64_t pairs = field_map(c, name, e);
	if (pairs < 0)
		return -1;
	for (int64_t i = 0; i < pairs; i++) {
		if (read_avail_key(c, &x->r->avail, e) < 0)
			return -1;
	}
	return 0;
}

static int rr_seq(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->r->view_seq, e);
}

static int rr_retry(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	uint64_t v;
	if (field_uint(c, name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
		return -1;
	x->r->retry_after_ms = (uint32_t)v;
	return 0;
}

static int rr_epoch(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_uint(c, name, UINT64_MAX, BO_D_NONE, &x->info->primary.epoch, e);
}

static int rr_primary(mpack_cur *c, const char *name, reply_ctx *x, wire_cmd_error *e)
{
	return field_primary(c, name, &x->info->primary, e);
}

static rkey_reader const rkey_readers[R_COUNT] = {
        [R_STATUS] = rr_status,     [R_DETAIL] = rr_detail,
        [R_ERROR] = rr_error,       [R_OP] = rr_op,
        [R_CLIENT] = rr_client,     [R_REQUEST] = rr_request,
        [R_EVENT] = rr_event,       [R_REPLAYED] = rr_replayed,
        [R_HOLD] = rr_hold,         [R_BOOKING] = rr_booking,
        [R_EXPIRES] = rr_expires,   [R_SEATS] = rr_seats,
        [R_QUANTITY] = rr_quantity, [R_POOL] = rr_pool,
        [R_STATES] = rr_states,     [R_AVAIL] = rr_avail,
        [R_SEQ] = rr_seq,           [R_RETRY] = rr_retry,
        [R_EPOCH] = rr_epoch,       [R_PRIMARY] = rr_primary,
};

/* ---- Reply decoding: one reply, one message ------------------------------ */

/* The rules between keys, once all are read. */
static int check_reply(const reply_ctx *x, uint32_t seen, wire_cmd_error *e)
{
	if (!(seen & RB(R_STATUS))) {
		field_fail(e, BO_INVALID, BO_D_NONE, "missing key 'status'");
		return -1;
	}
	if ((seen & RB(R_HOLD)) && (seen & RB(R_BOOKING)) && x->hold != x->booking) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'hold' and 'booking' differ");
		return -1;
	}
	if ((seen & RB(R_STATES)) && x->states_n != x->r->seat_count) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'states' and 'seats' differ in length");
		return -1;
	}
	return 0;
}

static int decode_reply(mpack_cur *c, bo_result *r, wire_reply_info *info, wire_cmd_error *e)
{
	memset(r, 0, sizeof(*r));
	memset(info, 0, sizeof(*info));
	reply_ctx x = {.r = r, .info = info};
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_MAP) {
		field_fail(e, BO_INVALID, BO_D_NONE, "a reply must be a map");
		return -1;
	}
	uint32_t seen = 0;
	for (uint32_t i = 0; i < t.n; i++) {
		mpack_tok k;
		if (field_key(c, "a reply", &k, e) < 0)
			return -1;
		int key = -1;
		for (int j = 0; j < R_COUNT && key < 0; j++) {
			if (mpack_str_is(&k, rkey_names[j]))
				key = j;
		}
		if (key < 0) {
			mpack_skip(c); /* a newer server's key */
			continue;
		}
		if (seen & RB(key))
			return field_dup_key(rkey_names[key], e);
		seen |= RB(key);
		if (rkey_readers[key](c, rkey_names[key], &x, e) < 0)
			return -1;
	}
	if (check_reply(&x, seen, e) < 0)
		return -1;
	r->claim_id = (seen & RB(R_HOLD)) ? x.hold : x.booking;
	if (!is_query(r->op))
		r->view_seq = 0; /* only a query's "seq" means something */
	if (!is_shed(r->status))
		r->retry_after_ms = 0; /* only a shed command's hint does */
	if (r->status != BO_NOT_PRIMARY)
		memset(&info->primary, 0, sizeof(info->primary));
	return 0;
}

int wire_decode_replies(const uint8_t *buf, size_t len, bo_result *out, wire_reply_info *info,
                        uint32_t cap, wire_msg *msg)
{
	assert((buf != NULL || len == 0) && out != NULL && msg != NULL && cap >= 1);
	memset(msg, 0, sizeof(*msg));
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, msg) < 0)
		return -EINVAL;
	uint32_t n = 1;
	if (top.kind == MPACK_ARRAY) {
		if (top.n > WIRE_BATCH_MAX || top.n > cap) {
			snprintf(msg->error, sizeof(msg->error),
			         "%" PRIu32 " replies, more than the limit of %" PRIu32, top.n,
			         top.n > WIRE_BATCH_MAX ? WIRE_BATCH_MAX : cap);
			return -EINVAL;
		}
		n = top.n;
		c = inside;
		msg->is_array = 1;
	} else if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error),
		         "a reply must be a map or an array, not %s", mpack_kind_name(top.kind));
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
