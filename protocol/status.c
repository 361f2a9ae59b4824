/*
 * status.c — the admin half of the wire codec (wire.h, "Admin requests"):
 * recognising admin requests (server_status, event_state), and the
 * server_status request and its reply. schemas/protocol.md section 11 is
 * the client-facing text (section 15 for event_state, whose request
 * encoder and reply codec are protocol/projection.c's).
 *
 * The reply's maps are read with one table per map (the keys, each with
 * where its value goes and its kind), so the decoder checks the same rules
 * at every level: string keys, each known key at most once and of its
 * type, every known key present, unknown keys skipped (a newer server may
 * add some). Counts are bounded before anything is read (mpack.h), texts
 * are truncated into fixed fields: nothing is allocated.
 */
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "mpack.h"
#include "pack.h"

#define ADMIN_OP_SERVER_STATUS "server_status"
#define ADMIN_OP_EVENT_STATE "event_state"
#define ADMIN_OP_CLUSTER_STATUS "cluster_status"
#define ADMIN_OP_SWITCHOVER "switchover"

/* The admin ops by wire_admin. */
static const char *const admin_op_names[] = {
        [WIRE_ADMIN_SERVER_STATUS] = ADMIN_OP_SERVER_STATUS,
        [WIRE_ADMIN_EVENT_STATE] = ADMIN_OP_EVENT_STATE,
        [WIRE_ADMIN_CLUSTER_STATUS] = ADMIN_OP_CLUSTER_STATUS,
        [WIRE_ADMIN_SWITCHOVER] = ADMIN_OP_SWITCHOVER,
};
#define ADMIN_OP_LAST WIRE_ADMIN_SWITCHOVER

static const char *const committer_state_names[WIRE_COMMITTER_STATE_COUNT] = {
        [WIRE_COMMITTER_OFF] = "off",         [WIRE_COMMITTER_STARTING] = "starting",
        [WIRE_COMMITTER_RUNNING] = "running", [WIRE_COMMITTER_RETRYING] = "retrying",
        [WIRE_COMMITTER_STOPPED] = "stopped",
};

const char *wire_committer_state_name(int state)
{
	return state >= 0 && state < WIRE_COMMITTER_STATE_COUNT ? committer_state_names[state]
	                                                        : NULL;
}

/* ---- Request (server side) ----------------------------------------------- */

/* 1 when the first byte of a message is a map header (fixmap, map16, map32). */
static int starts_with_map(const uint8_t *buf)
{
	return (buf[0] & 0xf0u) == 0x80u || buf[0] == 0xdeu || buf[0] == 0xdfu;
}

/* The admin op the map at c names in "op", or WIRE_ADMIN_NONE (no such key,
 * not a string, a non-string key: all the command decoder's business). */
static int admin_op(mpack_cur c)
{
	mpack_tok t;
	int rc = mpack_read(&c, &t);
	assert(rc == 0 && t.kind == MPACK_MAP);
	(void)rc;
	for (uint32_t i = 0; i < t.n; i++) {
		mpack_tok k, v;
		if (mpack_read(&c, &k) < 0 || k.kind != MPACK_STR)
			return WIRE_ADMIN_NONE;
		if (!mpack_str_is(&k, "op")) {
			mpack_skip(&c);
			continue;
		}
		if (mpack_read(&c, &v) < 0 || v.kind != MPACK_STR)
			return WIRE_ADMIN_NONE;
		for (int op = WIRE_ADMIN_NONE + 1; op <= ADMIN_OP_LAST; op++)
			if (mpack_str_is(&v, admin_op_names[op]))
				return op;
		return WIRE_ADMIN_NONE;
	}
	return WIRE_ADMIN_NONE;
}

/* The keys of an admin request: "op", "client"/"request" (uint64, ignored:
 * a generic client may send them with everything), "epoch" (uint64, the
 * shard-map epoch the client routed by: reported only), and the op's own:
 * event_state "event" (required, a uint64 other than 0), switchover
 * "shard" and "to" (required, uint32). */
enum {
	A_OP,
	A_CLIENT,
	A_REQUEST,
	A_EPOCH,
	A_EVENT,
	A_SHARD,
	A_TO,
	A_COUNT
};
static const char *const admin_key_names[A_COUNT] = {"op",    "client", "request", "epoch",
                                                      "event", "shard",  "to"};

/* The keys an admin op requires beyond the common ones. */
static uint32_t admin_op_keys(int kind)
{
	switch (kind) {
	case WIRE_ADMIN_EVENT_STATE:
		return 1u << A_EVENT;
	case WIRE_ADMIN_SWITCHOVER:
		return (1u << A_SHARD) | (1u << A_TO);
	default:
		return 0;
	}
}

static int admin_value(mpack_cur *c, int key, wire_admin_args *a, uint64_t *epoch, wire_cmd_error *e)
{
	uint64_t v;
	uint64_t max = key == A_SHARD || key == A_TO ? UINT32_MAX : UINT64_MAX;
	if (key == A_OP) {
		mpack_skip(c); /* admin_op() read it */
		return 0;
	}
	if (field_uint(c, admin_key_names[key], max, BO_D_NONE, &v, e) < 0)
		return -1;
	if (key == A_EVENT)
		a->event_id = v;
	else if (key == A_SHARD)
		a->shard = (uint32_t)v;
	else if (key == A_TO)
		a->to = (uint32_t)v;
	else if (key == A_EPOCH)
		*epoch = v;
	return 0;
}

static int admin_keys(mpack_cur c, int kind, wire_admin_args *a, uint64_t *epoch, wire_cmd_error *e)
{
	const char *op = admin_op_names[kind];
	uint32_t required = admin_op_keys(kind);
	uint32_t allowed = required | (1u << A_OP) | (1u << A_CLIENT) | (1u << A_REQUEST) | (1u << A_EPOCH);
	mpack_tok t;
	int rc = mpack_read(&c, &t);
	assert(rc == 0 && t.kind == MPACK_MAP);
	(void)rc;
	uint32_t seen = 0;
	for (uint32_t i = 0; i < t.n; i++) {
		mpack_tok k;
		if (field_key(&c, "a request", &k, e) < 0)
			return -1;
		int key = -1;
		for (int j = 0; j < A_COUNT && key < 0; j++)
			if ((allowed & (1u << j)) && mpack_str_is(&k, admin_key_names[j]))
				key = j;
		if (key < 0) {
			char kb[48];
			mpack_printable(&k, kb, sizeof(kb));
			field_fail(e, BO_INVALID, BO_D_NONE, "key '%s' does not apply to op '%s'",
			           kb, op);
			return -1;
		}
		if (seen & (1u << key))
			return field_dup_key(admin_key_names[key], e);
		seen |= 1u << key;
		if (admin_value(&c, key, a, epoch, e) < 0)
			return -1;
	}
	for (int j = 0; j < A_COUNT; j++) {
		if ((required & (1u << j)) && !(seen & (1u << j))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "missing key '%s'", admin_key_names[j]);
			return -1;
		}
	}
	if (kind == WIRE_ADMIN_EVENT_STATE && a->event_id == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'event' must not be 0");
		return -1;
	}
	return 0;
}

int wire_decode_admin(const uint8_t *buf, size_t len, uint64_t *event_id, wire_msg *out)
{
	assert(event_id != NULL);
	wire_admin_args a;
	int rc = wire_decode_admin_args(buf, len, &a, out);
	/* The ops of issue 13 are only for callers that know them (they read
	 * their arguments with wire_decode_admin_args): to this caller they
	 * are commands with an unknown op, as to a server older than them. */
	if (rc == WIRE_ADMIN_CLUSTER_STATUS || rc == WIRE_ADMIN_SWITCHOVER) {
		memset(out, 0, sizeof(*out));
		rc = WIRE_ADMIN_NONE;
	}
	*event_id = a.event_id;
	return rc;
}

int wire_decode_admin_args(const uint8_t *buf, size_t len, wire_admin_args *args, wire_msg *out)
{
	assert((buf != NULL || len == 0) && args != NULL && out != NULL);
	memset(out, 0, sizeof(*out));
	memset(args, 0, sizeof(*args));
	if (len == 0 || len > WIRE_ADMIN_MSG_MAX || !starts_with_map(buf))
		return WIRE_ADMIN_NONE;
	mpack_cur c, inside;
	mpack_tok top;
	wire_msg scratch = {0};
	if (field_message(buf, len, &c, &top, &inside, &scratch) < 0)
		return WIRE_ADMIN_NONE; /* wire_decode_request says what is wrong */
	int kind = admin_op(c);
	if (kind == WIRE_ADMIN_NONE)
		return WIRE_ADMIN_NONE;
	wire_cmd_error e = {0};
	wire_admin_args a = {0};
	uint64_t epoch = 0;
	if (admin_keys(c, kind, &a, &epoch, &e) < 0) {
		snprintf(out->error, sizeof(out->error), "%s", e.text);
		return -EINVAL;
	}
	*args = a;
	out->epoch = epoch;
	out->count = 1;
	return kind;
}

int wire_encode_server_status_request(msgpack_sbuffer *out)
{
	assert(out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 1) | pack_kv_str(&pk, "op", ADMIN_OP_SERVER_STATUS);
	return pack_finish(out, start, failed);
}

/* ---- Reply (server side) ------------------------------------------------- */

static int has_nul(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static int status_encodable(const wire_server_status *st)
{
	if (st->shard_count == 0 || st->shard_count > WIRE_STATUS_SHARDS_MAX ||
	    !has_nul(st->version, sizeof(st->version)))
		return 0;
	for (uint32_t i = 0; i < st->shard_count; i++) {
		const wire_shard_status *s = &st->shards[i];
		if (s->shard != i || s->committer.state >= WIRE_COMMITTER_STATE_COUNT ||
		    !has_nul(s->committer.reason, sizeof(s->committer.reason)))
			return 0;
	}
	return 1;
}

static int pk_committer(msgpack_packer *pk, const wire_committer_status *c)
{
	return msgpack_pack_map(pk, 9) | pack_kv_str(pk, "state", committer_state_names[c->state]) |
	       pack_kv_u64(pk, "applied_seq", c->applied_seq) |
	       pack_kv_u64(pk, "lag_records", c->lag_records) |
	       pack_kv_u64(pk, "lag_ms", c->lag_ms) | pack_kv_u64(pk, "batches", c->batches) |
	       pack_kv_u64(pk, "changes", c->changes) | pack_kv_u64(pk, "outbox", c->outbox) |
	       pack_kv_u64(pk, "retries", c->retries) | pack_kv_str(pk, "reason", c->reason);
}

int wire_encode_server_status(const wire_server_status *st, msgpack_sbuffer *out)
{
	assert(st != NULL && out != NULL);
	if (!status_encodable(st))
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 3) | pack_kv_str(&pk, "status", bo_status_str(BO_OK)) |
	             pack_kv_str(&pk, "version", st->version) | pack_str(&pk, "shards") |
	             msgpack_pack_array(&pk, st->shard_count);
	for (uint32_t i = 0; i < st->shard_count; i++) {
		const wire_shard_status *s = &st->shards[i];
		failed |= msgpack_pack_map(&pk, 4) | pack_kv_u64(&pk, "shard", s->shard) |
		          pack_kv_u64(&pk, "durable_seq", s->durable_seq) |
		          pack_kv_u64(&pk, "batches", s->batches) | pack_str(&pk, "committer") |
		          pk_committer(&pk, &s->committer);
	}
	return pack_finish(out, start, failed);
}

/* ---- Reply (client side) ------------------------------------------------- */

/* How a known key's value is read. */
enum fkind {
	F_U64,    /* uint64 into a uint64_t */
	F_U32,    /* uint32 into a uint32_t */
	F_TEXT,   /* string, truncated into char[size] */
	F_STATE,  /* committer state name into a uint8_t */
	F_STATUS, /* bo_status name into an int */
	F_SKIP,   /* string, not kept */
	F_SUB,    /* a nested value with its own reader */
};

typedef int (*sub_reader)(mpack_cur *c, void *base, wire_cmd_error *e);

typedef struct fdef {
	const char *name;
	uint8_t kind;
	uint8_t required;
	size_t off;  /* where in the object the value goes */
	size_t size; /* F_TEXT: the field's bytes */
	sub_reader sub;
} fdef;

/* A string into dst[0..cap), cut to cap - 1 bytes. */
static int read_text(mpack_cur *c, const char *name, char *dst, size_t cap, wire_cmd_error *e)
{
	mpack_tok s;
	if (field_str(c, name, &s, e) < 0)
		return -1;
	size_t n = s.n < cap - 1 ? s.n : cap - 1;
	memcpy(dst, s.data, n);
	dst[n] = '\0';
	return 0;
}

/* A string naming one of names[0..count). Returns its index or -1. */
static int read_name(mpack_cur *c, const char *name, const char *(*fn)(int), int count,
                     wire_cmd_error *e)
{
	mpack_tok s;
	if (field_str(c, name, &s, e) < 0)
		return -1;
	for (int i = 0; i < count; i++)
		if (fn(i) && mpack_str_is(&s, fn(i)))
			return i;
	char b[48];
	mpack_printable(&s, b, sizeof(b));
	field_fail(e, BO_INVALID, BO_D_NONE, "unknown %s '%s'", name, b);
	return -1;
}

static int read_field(mpack_cur *c, const fdef *f, void *base, wire_cmd_error *e)
{
	char *at = (char *)base + f->off;
	uint64_t v;
	int idx;
	switch (f->kind) {
	case F_U64:
		return field_uint(c, f->name, UINT64_MAX, BO_D_NONE, (uint64_t *)(void *)at, e);
	case F_U32:
		if (field_uint(c, f->name, UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		*(uint32_t *)(void *)at = (uint32_t)v;
		return 0;
	case F_TEXT:
		return read_text(c, f->name, at, f->size, e);
	case F_STATE:
		if ((idx = read_name(c, "committer state", wire_committer_state_name,
		                     WIRE_COMMITTER_STATE_COUNT, e)) < 0)
			return -1;
		*(uint8_t *)at = (uint8_t)idx;
		return 0;
	case F_STATUS:
		if ((idx = read_name(c, "status", bo_status_str, BO_STATUS_COUNT, e)) < 0)
			return -1;
		*(int *)(void *)at = idx;
		return 0;
	case F_SKIP: {
		mpack_tok s;
		return field_str(c, f->name, &s, e);
	}
	default:
		return f->sub(c, at, e);
	}
}

/* Reads the map at c with the key table defs[0..n) into base. `where` names
 * the map in errors. */
static int read_object(mpack_cur *c, const char *where, const fdef *defs, int n, void *base,
                       wire_cmd_error *e)
{
	int64_t pairs = field_map(c, where, e);
	if (pairs < 0)
		return -1;
	uint32_t seen = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k;
		if (field_key(c, where, &k, e) < 0)
			return -1;
		int key = -1;
		for (int j = 0; j < n && key < 0; j++)
			if (mpack_str_is(&k, defs[j].name))
				key = j;
		if (key < 0) {
			mpack_skip(c); /* a newer server's key */
			continue;
		}
		if (seen & (1u << key))
			return field_dup_key(defs[key].name, e);
		seen |= 1u << key;
		if (read_field(c, &defs[key], base, e) < 0)
			return -1;
	}
	for (int j = 0; j < n; j++) {
		if (defs[j].required && !(seen & (1u << j))) {
			field_fail(e, BO_INVALID, BO_D_NONE, "%s: missing key '%s'", where,
			           defs[j].name);
			return -1;
		}
	}
	return 0;
}

#define FU64(s, f)                                    \
	{                                             \
#f, F_U64, 1, offsetof(s, f), 0, NULL \
	}

static int read_committer(mpack_cur *c, void *base, wire_cmd_error *e)
{
	static const fdef defs[] = {
	        {"state", F_STATE, 1, offsetof(wire_committer_status, state), 0, NULL},
	        FU64(wire_committer_status, applied_seq),
	        FU64(wire_committer_status, lag_records),
	        FU64(wire_committer_status, lag_ms),
	        FU64(wire_committer_status, batches),
	        FU64(wire_committer_status, changes),
	        FU64(wire_committer_status, outbox),
	        FU64(wire_committer_status, retries),
	        {"reason", F_TEXT, 1, offsetof(wire_committer_status, reason), WIRE_REASON_LEN_MAX,
	         NULL},
	};
	return read_object(c, "committer", defs, (int)(sizeof(defs) / sizeof(defs[0])), base, e);
}

/* The top-level map: what a refusal carries, and where an ok reply goes. */
typedef struct status_reply {
	int status;
	char error[WIRE_ERROR_LEN_MAX];
	wire_server_status *st;
	int has_version;
	int has_shards;
} status_reply;

/* "version" (base: the status_reply's st pointer). */
static int read_version(mpack_cur *c, void *base, wire_cmd_error *e)
{
	status_reply *r = (status_reply *)((char *)base - offsetof(status_reply, st));
	r->has_version = 1;
	return read_text(c, "version", r->st->version, sizeof(r->st->version), e);
}

/* "shards": each entry's "shard" must be its index. */
static int read_shards(mpack_cur *c, void *base, wire_cmd_error *e)
{
	static const fdef defs[] = {
	        {"shard", F_U32, 1, offsetof(wire_shard_status, shard), 0, NULL},
	        FU64(wire_shard_status, durable_seq),
	        FU64(wire_shard_status, batches),
	        {"committer", F_SUB, 1, offsetof(wire_shard_status, committer), 0, read_committer},
	};
	status_reply *r = (status_reply *)((char *)base - offsetof(status_reply, st));
	uint32_t n;
	if (field_array(c, "shards", WIRE_STATUS_SHARDS_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'shards' is empty");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		wire_shard_status *s = &r->st->shards[i];
		if (read_object(c, "shards[]", defs, (int)(sizeof(defs) / sizeof(defs[0])), s, e) <
		    0)
			return -1;
		if (s->shard != i) {
			field_fail(e, BO_INVALID, BO_D_NONE,
			           "shards[%" PRIu32 "] describes shard %" PRIu32, i, s->shard);
			return -1;
		}
	}
	r->st->shard_count = n;
	r->has_shards = 1;
	return 0;
}

int wire_decode_server_status(const uint8_t *buf, size_t len, wire_server_status *st, int *status,
                              wire_msg *msg)
{
	assert((buf != NULL || len == 0) && st != NULL && status != NULL && msg != NULL);
	static const fdef defs[] = {
	        {"status", F_STATUS, 1, offsetof(status_reply, status), 0, NULL},
	        {"version", F_SUB, 0, offsetof(status_reply, st), 0, read_version},
	        {"shards", F_SUB, 0, offsetof(status_reply, st), 0, read_shards},
	        {"detail", F_SKIP, 0, 0, 0, NULL},
	        {"error", F_TEXT, 0, offsetof(status_reply, error), WIRE_ERROR_LEN_MAX, NULL},
	};
	memset(st, 0, sizeof(*st));
	*status = BO_INVALID;
	memset(msg, 0, sizeof(*msg));
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, msg) < 0)
		return -EINVAL;
	if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error),
		         "a server_status reply must be a map, not %s", mpack_kind_name(top.kind));
		return -EINVAL;
	}
	status_reply r = {.st = st};
	wire_cmd_error e = {0};
	int rc = read_object(&c, "the reply", defs, (int)(sizeof(defs) / sizeof(defs[0])), &r, &e);
	if (rc == 0 && r.status == BO_OK && !(r.has_version && r.has_shards))
		field_fail(&e, BO_INVALID, BO_D_NONE, "an ok reply needs 'version' and 'shards'");
	if (e.status != BO_OK) {
		memset(st, 0, sizeof(*st));
		snprintf(msg->error, sizeof(msg->error), "server_status reply: %.100s", e.text);
		return -EINVAL;
	}
	*status = r.status;
	if (r.status != BO_OK) {
		memset(st, 0, sizeof(*st));
		snprintf(msg->error, sizeof(msg->error), "%s", r.error);
	}
	msg->count = 1;
	return 0;
}

/* ---- cluster_status, switchover and plain status replies (issue 13) ------- */

static const char *const role_names[WIRE_ROLE_COUNT] = {
        [WIRE_ROLE_NONE] = "none",
        [WIRE_ROLE_PRIMARY] = "primary",
        [WIRE_ROLE_STANDBY] = "standby",
        [WIRE_ROLE_FENCED] = "fenced",
};

const char *wire_role_name(int role)
{
	return role >= 0 && role < WIRE_ROLE_COUNT ? role_names[role] : NULL;
}

int wire_encode_cluster_status_request(msgpack_sbuffer *out)
{
	assert(out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 1) | pack_kv_str(&pk, "op", ADMIN_OP_CLUSTER_STATUS);
	return pack_finish(out, start, failed);
}

int wire_encode_switchover_request(uint32_t shard, uint32_t to, msgpack_sbuffer *out)
{
	assert(out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 3) | pack_kv_str(&pk, "op", ADMIN_OP_SWITCHOVER) |
	             pack_kv_u64(&pk, "shard", shard) | pack_kv_u64(&pk, "to", to);
	return pack_finish(out, start, failed);
}

int wire_encode_ok(msgpack_sbuffer *out)
{
	assert(out != NULL);
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 1) | pack_kv_str(&pk, "status", bo_status_str(BO_OK));
	return pack_finish(out, start, failed);
}

static int cluster_encodable(const wire_cluster_status *st)
{
	if (st->shard_count == 0 || st->shard_count > WIRE_STATUS_SHARDS_MAX)
		return 0;
	for (uint32_t i = 0; i < st->shard_count; i++) {
		const wire_shard_cluster *s = &st->shards[i];
		if (s->shard != i || s->role >= WIRE_ROLE_COUNT ||
		    s->in_sync_count > WIRE_CLUSTER_STANDBYS_MAX + 1 ||
		    s->standby_count > WIRE_CLUSTER_STANDBYS_MAX)
			return 0;
	}
	return 1;
}

static int pk_shard_cluster(msgpack_packer *pk, const wire_shard_cluster *s)
{
	int rc = msgpack_pack_map(pk, 8 + (s->primary_known ? 1 : 0)) |
	         pack_kv_u64(pk, "shard", s->shard) | pack_kv_u64(pk, "epoch", s->epoch) |
	         pack_kv_str(pk, "role", role_names[s->role]);
	if (s->primary_known)
		rc |= pack_kv_u64(pk, "primary", s->primary);
	rc |= pack_str(pk, "in_sync") | pack_u32_array(pk, s->in_sync, s->in_sync_count) |
	      pack_kv_u64(pk, "last_seq", s->last_seq) | pack_kv_u64(pk, "durable_seq", s->durable_seq) |
	      pack_kv_u64(pk, "released_seq", s->released_seq) | pack_str(pk, "standbys") |
	      msgpack_pack_array(pk, s->standby_count);
	for (uint32_t j = 0; j < s->standby_count; j++) {
		const wire_standby_status *b = &s->standbys[j];
		rc |= msgpack_pack_map(pk, 3) | pack_kv_u64(pk, "node", b->node) |
		      pack_kv_u64(pk, "acked_seq", b->acked_seq) |
		      pack_kv_u64(pk, "lag_records", b->lag_records);
	}
	return rc;
}

int wire_encode_cluster_status(const wire_cluster_status *st, msgpack_sbuffer *out)
{
	assert(st != NULL && out != NULL);
	if (!cluster_encodable(st))
		return -EINVAL;
	size_t start = out->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, 3) | pack_kv_str(&pk, "status", bo_status_str(BO_OK)) |
	             pack_kv_u64(&pk, "node", st->node) | pack_str(&pk, "shards") |
	             msgpack_pack_array(&pk, st->shard_count);
	for (uint32_t i = 0; i < st->shard_count; i++)
		failed |= pk_shard_cluster(&pk, &st->shards[i]);
	return pack_finish(out, start, failed);
}

/* "role" (base: the role byte). */
static int read_role(mpack_cur *c, void *base, wire_cmd_error *e)
{
	int idx = read_name(c, "role", wire_role_name, WIRE_ROLE_COUNT, e);
	if (idx < 0)
		return -1;
	*(uint8_t *)base = (uint8_t)idx;
	return 0;
}

/* "primary" of a shard (base: the wire_shard_cluster). */
static int read_cluster_primary(mpack_cur *c, void *base, wire_cmd_error *e)
{
	wire_shard_cluster *s = base;
	uint64_t v;
	if (field_uint(c, "primary", UINT32_MAX, BO_D_NONE, &v, e) < 0)
		return -1;
	s->primary = (uint32_t)v;
	s->primary_known = 1;
	return 0;
}

/* "in_sync" (base: the wire_shard_cluster). */
static int read_in_sync(mpack_cur *c, void *base, wire_cmd_error *e)
{
	wire_shard_cluster *s = base;
	uint32_t n;
	if (field_array(c, "in_sync", WIRE_CLUSTER_STANDBYS_MAX + 1, BO_D_NONE, &n, e) < 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v;
		if (field_uint(c, "in_sync", UINT32_MAX, BO_D_NONE, &v, e) < 0)
			return -1;
		s->in_sync[i] = (uint32_t)v;
	}
	s->in_sync_count = n;
	return 0;
}

/* "standbys" (base: the wire_shard_cluster). */
static int read_standbys(mpack_cur *c, void *base, wire_cmd_error *e)
{
	static const fdef defs[] = {
	        {"node", F_U32, 1, offsetof(wire_standby_status, node), 0, NULL},
	        FU64(wire_standby_status, acked_seq),
	        FU64(wire_standby_status, lag_records),
	};
	wire_shard_cluster *s = base;
	uint32_t n;
	if (field_array(c, "standbys", WIRE_CLUSTER_STANDBYS_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (read_object(c, "standbys[]", defs, (int)(sizeof(defs) / sizeof(defs[0])),
		                &s->standbys[i], e) < 0)
			return -1;
	s->standby_count = n;
	return 0;
}

/* The top-level map of a cluster_status reply. */
typedef struct cluster_reply {
	int status;
	char error[WIRE_ERROR_LEN_MAX];
	wire_cluster_status *st;
	int has_node;
	int has_shards;
} cluster_reply;

static int read_cluster_node(mpack_cur *c, void *base, wire_cmd_error *e)
{
	cluster_reply *r = (cluster_reply *)((char *)base - offsetof(cluster_reply, st));
	uint64_t v;
	if (field_uint(c, "node", UINT32_MAX, BO_D_NONE, &v, e) < 0)
		return -1;
	r->st->node = (uint32_t)v;
	r->has_node = 1;
	return 0;
}

static int read_cluster_shards(mpack_cur *c, void *base, wire_cmd_error *e)
{
	static const fdef defs[] = {
	        {"shard", F_U32, 1, offsetof(wire_shard_cluster, shard), 0, NULL},
	        FU64(wire_shard_cluster, epoch),
	        {"role", F_SUB, 1, offsetof(wire_shard_cluster, role), 0, read_role},
	        {"primary", F_SUB, 0, 0, 0, read_cluster_primary},
	        {"in_sync", F_SUB, 1, 0, 0, read_in_sync},
	        FU64(wire_shard_cluster, last_seq),
	        FU64(wire_shard_cluster, durable_seq),
	        FU64(wire_shard_cluster, released_seq),
	        {"standbys", F_SUB, 1, 0, 0, read_standbys},
	};
	cluster_reply *r = (cluster_reply *)((char *)base - offsetof(cluster_reply, st));
	uint32_t n;
	if (field_array(c, "shards", WIRE_STATUS_SHARDS_MAX, BO_D_NONE, &n, e) < 0)
		return -1;
	if (n == 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'shards' is empty");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		wire_shard_cluster *s = &r->st->shards[i];
		if (read_object(c, "shards[]", defs, (int)(sizeof(defs) / sizeof(defs[0])), s, e) < 0)
			return -1;
		if (s->shard != i) {
			field_fail(e, BO_INVALID, BO_D_NONE,
			           "shards[%" PRIu32 "] describes shard %" PRIu32, i, s->shard);
			return -1;
		}
	}
	r->st->shard_count = n;
	r->has_shards = 1;
	return 0;
}

int wire_decode_cluster_status(const uint8_t *buf, size_t len, wire_cluster_status *st, int *status,
                               wire_msg *msg)
{
	assert((buf != NULL || len == 0) && st != NULL && status != NULL && msg != NULL);
	static const fdef defs[] = {
	        {"status", F_STATUS, 1, offsetof(cluster_reply, status), 0, NULL},
	        {"node", F_SUB, 0, offsetof(cluster_reply, st), 0, read_cluster_node},
	        {"shards", F_SUB, 0, offsetof(cluster_reply, st), 0, read_cluster_shards},
	        {"detail", F_SKIP, 0, 0, 0, NULL},
	        {"error", F_TEXT, 0, offsetof(cluster_reply, error), WIRE_ERROR_LEN_MAX, NULL},
	};
	memset(st, 0, sizeof(*st));
	*status = BO_INVALID;
	memset(msg, 0, sizeof(*msg));
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, msg) < 0)
		return -EINVAL;
	if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error),
		         "a cluster_status reply must be a map, not %s", mpack_kind_name(top.kind));
		return -EINVAL;
	}
	cluster_reply r = {.st = st};
	wire_cmd_error e = {0};
	int rc = read_object(&c, "the reply", defs, (int)(sizeof(defs) / sizeof(defs[0])), &r, &e);
	if (rc == 0 && r.status == BO_OK && !(r.has_node && r.has_shards))
		field_fail(&e, BO_INVALID, BO_D_NONE, "an ok reply needs 'node' and 'shards'");
	if (e.status != BO_OK) {
		memset(st, 0, sizeof(*st));
		snprintf(msg->error, sizeof(msg->error), "cluster_status reply: %.100s", e.text);
		return -EINVAL;
	}
	*status = r.status;
	if (r.status != BO_OK) {
		memset(st, 0, sizeof(*st));
		snprintf(msg->error, sizeof(msg->error), "%s", r.error);
	}
	msg->count = 1;
	return 0;
}

/* A reply that is only a status (switchover's). */
typedef struct plain_reply {
	int status;
	char error[WIRE_ERROR_LEN_MAX];
	wire_primary primary;
} plain_reply;

static int read_plain_primary(mpack_cur *c, void *base, wire_cmd_error *e)
{
	return field_primary(c, "primary", base, e);
}

int wire_decode_status_reply(const uint8_t *buf, size_t len, int *status, wire_primary *primary,
                             wire_msg *msg)
{
	assert((buf != NULL || len == 0) && status != NULL && msg != NULL);
	static const fdef defs[] = {
	        {"status", F_STATUS, 1, offsetof(plain_reply, status), 0, NULL},
	        {"detail", F_SKIP, 0, 0, 0, NULL},
	        {"error", F_TEXT, 0, offsetof(plain_reply, error), WIRE_ERROR_LEN_MAX, NULL},
	        {"epoch", F_U64, 0, offsetof(plain_reply, primary.epoch), 0, NULL},
	        {"primary", F_SUB, 0, offsetof(plain_reply, primary), 0, read_plain_primary},
	};
	*status = BO_INVALID;
	if (primary)
		memset(primary, 0, sizeof(*primary));
	memset(msg, 0, sizeof(*msg));
	mpack_cur c, inside;
	mpack_tok top;
	if (field_message(buf, len, &c, &top, &inside, msg) < 0)
		return -EINVAL;
	if (top.kind != MPACK_MAP) {
		snprintf(msg->error, sizeof(msg->error), "a reply must be a map, not %s",
		         mpack_kind_name(top.kind));
		return -EINVAL;
	}
	plain_reply r = {0};
	wire_cmd_error e = {0};
	if (read_object(&c, "the reply", defs, (int)(sizeof(defs) / sizeof(defs[0])), &r, &e) < 0) {
		snprintf(msg->error, sizeof(msg->error), "reply: %.100s", e.text);
		return -EINVAL;
	}
	*status = r.status;
	snprintf(msg->error, sizeof(msg->error), "%s", r.error);
	if (primary && r.status == BO_NOT_PRIMARY)
		*primary = r.primary;
	msg->count = 1;
	return 0;
}
