/*
 * repl.c — the replication messages (repl.h, schemas/replication.md).
 *
 * Decoding walks the whole message once (mpack_walk: well formed, nesting
 * <= REPL_DEPTH_MAX, no trailing bytes), then reads the top map with one
 * key table per message type: every key of the table is required, at most
 * once, of its kind; unknown keys are skipped. Nothing is allocated and
 * nothing copied but the fixed-size refuse text: a record's payload points
 * into the caller's buffer.
 */
#include "repl.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "mpack.h"
#include "pack.h"

/* map > records > record: three levels. */
#define REPL_DEPTH_MAX 3u

/* Bytes an append needs besides its records: the map header, the type and
 * five keys with uint64 values, the records array header (a generous
 * bound, so the size check never needs the packer's exact sizes). */
#define APPEND_ENVELOPE_BYTES 128u
/* Bytes a record needs besides its payload: array header (1), int64 (9),
 * bin32 header (5). */
#define RECORD_OVERHEAD_BYTES 15u

static const char *const type_names[REPL_TYPE_COUNT] = {
        [REPL_APPEND] = "append", [REPL_ACK] = "ack",     [REPL_REFUSE] = "refuse",
        [REPL_PROBE] = "probe",   [REPL_STATE] = "state",
};

static const char *const reason_names[REPL_REASON_COUNT] = {
        [REPL_R_STALE] = "stale",
        [REPL_R_GAP] = "gap",
        [REPL_R_DIVERGED] = "diverged",
        [REPL_R_FAILED] = "failed",
        [REPL_R_NOT_STANDBY] = "not_standby",
};

const char *repl_type_name(int type)
{
	return type > REPL_NONE && type < REPL_TYPE_COUNT ? type_names[type] : NULL;
}

const char *repl_reason_name(int reason)
{
	return reason > REPL_R_NONE && reason < REPL_REASON_COUNT ? reason_names[reason] : NULL;
}

/* ---- Encoding ------------------------------------------------------------ */

/* The map header and "type": the first key of every message. */
static int pk_head(msgpack_packer *pk, uint32_t pairs, int type)
{
	return msgpack_pack_map(pk, pairs) | pack_kv_str(pk, "type", type_names[type]);
}

int repl_encode_append(uint32_t shard, uint64_t epoch, uint64_t first_seq, uint64_t prev,
                       const repl_record *recs, uint32_t n, uint32_t *taken, msgpack_sbuffer *out)
{
	assert(recs != NULL && n >= 1 && taken != NULL && out != NULL);
	*taken = 0;
	if (first_seq == 0)
		return -EINVAL;
	uint32_t k = 0;
	uint64_t bytes = APPEND_ENVELOPE_BYTES;
	for (; k < n && k < REPL_RECORDS_MAX; k++) {
		assert(recs[k].seq == first_seq + k);
		if (recs[k].len > REPL_PAYLOAD_BYTES_MAX ||
		    (recs[k].payload == NULL && recs[k].len > 0))
			return -EINVAL;
		uint64_t need = RECORD_OVERHEAD_BYTES + (uint64_t)recs[k].len;
		if (bytes + need > REPL_MSG_MAX)
			break; /* k >= 1 here: one record of any legal size fits (repl.h) */
		bytes += need;
	}
	assert(k >= 1);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = pk_head(&pk, 6, REPL_APPEND) | pack_kv_u64(&pk, "shard", shard) |
	             pack_kv_u64(&pk, "epoch", epoch) | pack_kv_u64(&pk, "first_seq", first_seq) |
	             pack_kv_u64(&pk, "prev", prev) | pack_str(&pk, "records") |
	             msgpack_pack_array(&pk, k);
	for (uint32_t i = 0; i < k; i++)
		failed |= msgpack_pack_array(&pk, 2) |
		          msgpack_pack_int64(&pk, recs[i].timestamp_ms) |
		          msgpack_pack_bin_with_body(&pk, recs[i].payload, recs[i].len);
	int rc = pack_finish(out, start, failed);
	if (rc == 0)
		*taken = k;
	return rc;
}

int repl_encode_ack(const repl_ack *a, msgpack_sbuffer *out)
{
	assert(a != NULL && out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = pk_head(&pk, 5, REPL_ACK) | pack_kv_u64(&pk, "shard", a->shard) |
	             pack_kv_u64(&pk, "epoch", a->epoch) |
	             pack_kv_u64(&pk, "durable_seq", a->durable_seq) |
	             pack_kv_u64(&pk, "last_seq", a->last_seq);
	return pack_finish(out, start, failed);
}

int repl_encode_refuse(const repl_refuse *r, msgpack_sbuffer *out)
{
	assert(r != NULL && out != NULL);
	if (repl_reason_name(r->reason) == NULL ||
	    memchr(r->message, '\0', sizeof(r->message)) == NULL)
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = pk_head(&pk, 7, REPL_REFUSE) | pack_kv_u64(&pk, "shard", r->shard) |
	             pack_kv_u64(&pk, "epoch", r->epoch) |
	             pack_kv_str(&pk, "reason", reason_names[r->reason]) |
	             pack_kv_u64(&pk, "last_seq", r->last_seq) |
	             pack_kv_u64(&pk, "last_checksum", r->last_checksum) |
	             pack_kv_str(&pk, "message", r->message);
	return pack_finish(out, start, failed);
}

int repl_encode_probe(const repl_probe *p, msgpack_sbuffer *out)
{
	assert(p != NULL && out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = pk_head(&pk, 4, REPL_PROBE) | pack_kv_u64(&pk, "shard", p->shard) |
	             pack_kv_u64(&pk, "epoch", p->epoch) | pack_kv_u64(&pk, "node", p->node);
	return pack_finish(out, start, failed);
}

int repl_encode_state(const repl_state *s, msgpack_sbuffer *out)
{
	assert(s != NULL && out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed =
	        pk_head(&pk, 7, REPL_STATE) | pack_kv_u64(&pk, "shard", s->shard) |
	        pack_kv_u64(&pk, "epoch", s->epoch) | pack_kv_u64(&pk, "last_seq", s->last_seq) |
	        pack_kv_u64(&pk, "last_checksum", s->last_checksum) |
	        pack_kv_u64(&pk, "durable_seq", s->durable_seq) | pack_kv_u64(&pk, "node", s->node);
	return pack_finish(out, start, failed);
}

/* ---- Decoding ------------------------------------------------------------ */

/* How a key's value is read. */
enum rkind {
	K_U64,     /* uint64 */
	K_U32,     /* uint64 <= UINT32_MAX */
	K_REASON,  /* a repl_reason name into a uint8_t */
	K_TEXT,    /* a string, truncated into char[REPL_MESSAGE_LEN_MAX] */
	K_RECORDS, /* the append's records */
};

typedef struct rkey {
	const char *name;
	uint8_t kind;
	size_t off; /* into the type's member of repl_msg.u */
} rkey;

#define RK(t, f, k)                   \
	{                             \
#f, k, offsetof(t, f) \
	}

static const rkey append_keys[] = {
        RK(repl_append, shard, K_U32),     RK(repl_append, epoch, K_U64),
        RK(repl_append, first_seq, K_U64), RK(repl_append, prev, K_U64),
        {"records", K_RECORDS, 0},
};
static const rkey ack_keys[] = {
        RK(repl_ack, shard, K_U32),
        RK(repl_ack, epoch, K_U64),
        RK(repl_ack, durable_seq, K_U64),
        RK(repl_ack, last_seq, K_U64),
};
static const rkey refuse_keys[] = {
        RK(repl_refuse, shard, K_U32),         RK(repl_refuse, epoch, K_U64),
        RK(repl_refuse, reason, K_REASON),     RK(repl_refuse, last_seq, K_U64),
        RK(repl_refuse, last_checksum, K_U64), RK(repl_refuse, message, K_TEXT),
};
static const rkey probe_keys[] = {
        RK(repl_probe, shard, K_U32),
        RK(repl_probe, epoch, K_U64),
        RK(repl_probe, node, K_U32),
};
static const rkey state_keys[] = {
        RK(repl_state, shard, K_U32),       RK(repl_state, epoch, K_U64),
        RK(repl_state, last_seq, K_U64),    RK(repl_state, last_checksum, K_U64),
        RK(repl_state, durable_seq, K_U64), RK(repl_state, node, K_U32),
};

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
	const rkey *keys;
	int n;
} type_keys[REPL_TYPE_COUNT] = {
        [REPL_APPEND] = {append_keys, NKEYS(append_keys)},
        [REPL_ACK] = {ack_keys, NKEYS(ack_keys)},
        [REPL_REFUSE] = {refuse_keys, NKEYS(refuse_keys)},
        [REPL_PROBE] = {probe_keys, NKEYS(probe_keys)},
        [REPL_STATE] = {state_keys, NKEYS(state_keys)},
};

/* Where an append's records go. */
typedef struct rec_out {
	repl_record *recs;
	uint32_t cap;
	uint32_t count;
} rec_out;

/* One record: [timestamp_ms (int64), payload (bin)]. */
static int read_record(mpack_cur *c, uint32_t i, repl_record *r, wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_ARRAY || t.n != 2) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "records[%" PRIu32 "] must be an array [timestamp_ms, payload]", i);
		return -1;
	}
	if (mpack_read(c, &t) < 0 || (t.kind != MPACK_UINT && t.kind != MPACK_NINT) ||
	    (t.kind == MPACK_UINT && t.u > (uint64_t)INT64_MAX)) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "records[%" PRIu32 "]: timestamp_ms must be a 64-bit signed integer", i);
		return -1;
	}
	r->timestamp_ms = t.kind == MPACK_UINT ? (int64_t)t.u : t.i;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_BIN) {
		field_fail(e, BO_INVALID, BO_D_NONE, "records[%" PRIu32 "]: payload must be a bin",
		           i);
		return -1;
	}
	if (t.n > REPL_PAYLOAD_BYTES_MAX) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "records[%" PRIu32 "]: payload of %" PRIu32 " bytes exceeds %u", i, t.n,
		           REPL_PAYLOAD_BYTES_MAX);
		return -1;
	}
	r->payload = t.data;
	r->len = t.n;
	return 0;
}

static int read_records(mpack_cur *c, rec_out *ro, wire_cmd_error *e)
{
	uint32_t max = ro->cap < REPL_RECORDS_MAX ? ro->cap : REPL_RECORDS_MAX;
	uint32_t n;
	if (field_array(c, "records", max, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'records' is empty");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		if (read_record(c, i, &ro->recs[i], e) < 0)
			return -1;
	ro->count = n;
	return 0;
}

static int read_value(mpack_cur *c, const rkey *k, char *base, rec_out *ro, wire_cmd_error *e)
{
	uint64_t v;
	mpack_tok s;
	switch (k->kind) {
	case K_U64:
		return field_uint(c, k->name, UINT64_MAX, BO_D_NONE,
		                  (uint64_t *)(void *)(base + k->off), e);
	case K_U32:
		if (field_uint(c, k->name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		*(uint32_t *)(void *)(base + k->off) = (uint32_t)v;
		return 0;
	case K_REASON:
		if (field_str(c, k->name, &s, e) < 0)
			return -1;
		for (int r = REPL_R_NONE + 1; r < REPL_REASON_COUNT; r++) {
			if (mpack_str_is(&s, reason_names[r])) {
				*(uint8_t *)(base + k->off) = (uint8_t)r;
				return 0;
			}
		}
		char b[48];
		mpack_printable(&s, b, sizeof(b));
		field_fail(e, BO_INVALID, BO_D_NONE, "unknown reason '%s'", b);
		return -1;
	case K_TEXT: {
		if (field_str(c, k->name, &s, e) < 0)
			return -1;
		size_t n = s.n < REPL_MESSAGE_LEN_MAX - 1 ? s.n : REPL_MESSAGE_LEN_MAX - 1;
		memcpy(base + k->off, s.data, n);
		base[k->off + n] = '\0';
		return 0;
	}
	default:
		return read_records(c, ro, e);
	}
}

/* The first key, "type": its repl_type, or -1. */
static int read_type(mpack_cur *c, uint32_t pairs, wire_cmd_error *e)
{
	mpack_tok k, v;
	if (pairs == 0 || mpack_read(c, &k) < 0 || !mpack_str_is(&k, "type")) {
		field_fail(e, BO_INVALID, BO_D_NONE, "the first key must be 'type'");
		return -1;
	}
	if (field_str(c, "type", &v, e) < 0)
		return -1;
	for (int t = REPL_NONE + 1; t < REPL_TYPE_COUNT; t++)
		if (mpack_str_is(&v, type_names[t]))
			return t;
	char b[48];
	mpack_printable(&v, b, sizeof(b));
	field_fail(e, BO_INVALID, BO_D_NONE, "unknown type '%s'", b);
	return -1;
}

/* The keys after "type", with the type's table, into base. */
static int read_keys(mpack_cur *c, uint32_t pairs, int type, char *base, rec_out *ro,
                     wire_cmd_error *e)
{
	const rkey *keys = type_keys[type].keys;
	int nk = type_keys[type].n;
	uint32_t seen = 0;
	for (uint32_t i = 1; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, "a replication message", &k, e) < 0)
			return -1;
		if (mpack_str_is(&k, "type"))
			return field_dup_key("type", e);
		int key = -1;
		for (int j = 0; j < nk && key < 0; j++)
			if (mpack_str_is(&k, keys[j].name))
				key = j;
		if (key < 0) {
			mpack_skip(c); /* a newer peer's key */
			continue;
		}
		if (seen & (1u << key))
			return field_dup_key(keys[key].name, e);
		seen |= 1u << key;
		if (read_value(c, &keys[key], base, ro, e) < 0)
			return -1;
	}
	for (int j = 0; j < nk; j++) {
		if (!(seen & (1u << j))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "%s: missing key '%s'",
			           type_names[type], keys[j].name);
			return -1;
		}
	}
	return 0;
}

/* An append's sequence rules, once its keys are read; numbers the records. */
static int check_append(repl_append *a, repl_record *recs, wire_cmd_error *e)
{
	if (a->first_seq == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "append: 'first_seq' must not be 0");
		return -1;
	}
	if (a->first_seq - 1 > UINT64_MAX - a->count) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           "append: first_seq %" PRIu64 " + %" PRIu32 " records overflows",
		           a->first_seq, a->count);
		return -1;
	}
	for (uint32_t i = 0; i < a->count; i++)
		recs[i].seq = a->first_seq + i;
	return 0;
}

/* The top level: envelope checks, then the type's keys. */
static int decode_msg(const uint8_t *buf, size_t len, repl_msg *out, rec_out *ro, wire_cmd_error *e)
{
	if (len == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "empty message");
		return -1;
	}
	if (len > REPL_MSG_MAX) {
		field_fail(e, BO_INVALID, BO_D_NONE, "message of %zu bytes exceeds %u bytes", len,
		           REPL_MSG_MAX);
		return -1;
	}
	mpack_cur c = mpack_cur_init(buf, len);
	mpack_walk_error why = mpack_walk(&c, 1, REPL_DEPTH_MAX);
	if (why != MPACK_WALK_OK) {
		field_fail(e, BO_INVALID, BO_D_NONE,
		           why == MPACK_WALK_DEPTH
		                   ? "containers nested deeper than %u (at byte %zu)"
		                   : "not msgpack: truncated or invalid (depth %u, at byte %zu)",
		           REPL_DEPTH_MAX, (size_t)(c.p - buf));
		return -1;
	}
	if (c.left != 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "%zu trailing bytes after the message",
		           c.left);
		return -1;
	}
	c = mpack_cur_init(buf, len);
	mpack_tok top;
	if (mpack_read(&c, &top) < 0 || top.kind != MPACK_MAP) {
		field_fail(e, BO_INVALID, BO_D_NONE, "a replication message must be a map, not %s",
		           mpack_kind_name(top.kind));
		return -1;
	}
	int type = read_type(&c, top.n, e);
	if (type < 0)
		return -1;
	out->type = (uint8_t)type;
	if (read_keys(&c, top.n, type, (char *)&out->u, ro, e) < 0)
		return -1;
	if (type == REPL_APPEND) {
		out->u.append.count = ro->count;
		return check_append(&out->u.append, ro->recs, e);
	}
	return 0;
}

int repl_decode(const uint8_t *buf, size_t len, repl_msg *out, repl_record *recs, uint32_t cap,
                char *err, size_t errlen)
{
	assert((buf != NULL || len == 0) && out != NULL && (recs != NULL || cap == 0) &&
	       err != NULL && errlen >= 1);
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	rec_out ro = {.recs = recs, .cap = cap};
	wire_cmd_error e = {0};
	if (decode_msg(buf, len, out, &ro, &e) < 0) {
		memset(out, 0, sizeof(*out));
		snprintf(err, errlen, "%s", e.text);
		return -EINVAL;
	}
	return 0;
}
