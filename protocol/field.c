/*
 * field.c — message-level check and typed field reads shared by the
 * request and reply decoders (field.h).
 */
#include "field.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int field_message(const uint8_t *buf, size_t len, mpack_cur *at, mpack_tok *top, mpack_cur *inside,
                  wire_msg *msg)
{
	if (len == 0) {
		snprintf(msg->error, sizeof(msg->error), "empty message");
		return -1;
	}
	if (len > WIRE_MSG_MAX) {
		snprintf(msg->error, sizeof(msg->error), "message of %zu bytes exceeds %u bytes",
		         len, WIRE_MSG_MAX);
		return -1;
	}
	mpack_cur c = mpack_cur_init(buf, len);
	mpack_walk_error why = mpack_walk(&c, 1, WIRE_DEPTH_MAX);
	if (why == MPACK_WALK_DEPTH) {
		snprintf(msg->error, sizeof(msg->error),
		         "containers nested deeper than %u (at byte %zu)", WIRE_DEPTH_MAX,
		         (size_t)(c.p - buf) - 1);
		return -1;
	}
	if (why != MPACK_WALK_OK) {
		snprintf(msg->error, sizeof(msg->error),
		         "not msgpack: truncated or invalid value (at byte %zu of %zu)",
		         (size_t)(c.p - buf), len);
		return -1;
	}
	if (c.left != 0) {
		snprintf(msg->error, sizeof(msg->error),
		         "%zu trailing bytes after the message (it ends at byte %zu)", c.left,
		         (size_t)(c.p - buf));
		return -1;
	}
	*at = mpack_cur_init(buf, len);
	*inside = *at;
	int rc = mpack_read(inside, top);
	assert(rc == 0); /* the walk read it */
	(void)rc;
	return 0;
}

void field_fail(wire_cmd_error *e, uint8_t status, uint8_t detail, const char *fmt, ...)
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

int field_uint(mpack_cur *c, const char *name, uint64_t max, uint8_t detail, uint64_t *v,
               wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' is truncated", name);
		return -1;
	}
	if (t.kind == MPACK_NINT) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must not be negative (got %" PRId64 ")",
		           name, t.i);
		return -1;
	}
	if (t.kind != MPACK_UINT) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an unsigned integer, not %s",
		           name, mpack_kind_name(t.kind));
		return -1;
	}
	if (t.u > max) {
		field_fail(e, BO_INVALID, detail, "'%s' is %" PRIu64 ", more than %" PRIu64, name,
		           t.u, max);
		return -1;
	}
	*v = t.u;
	return 0;
}

int field_array(mpack_cur *c, const char *name, uint32_t max, uint8_t detail, uint32_t *n,
                wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_ARRAY) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be an array", name);
		return -1;
	}
	if (t.n > max) {
		field_fail(e, BO_INVALID, detail, "'%s' has %" PRIu32 " entries, at most %" PRIu32,
		           name, t.n, max);
		return -1;
	}
	*n = t.n;
	return 0;
}

int64_t field_map(mpack_cur *c, const char *name, wire_cmd_error *e)
{
	mpack_tok t;
	if (mpack_read(c, &t) < 0 || t.kind != MPACK_MAP) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a map", name);
		return -1;
	}
	return t.n;
}

int field_str(mpack_cur *c, const char *name, mpack_tok *s, wire_cmd_error *e)
{
	if (mpack_read(c, s) < 0 || s->kind != MPACK_STR) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' must be a string", name);
		return -1;
	}
	return 0;
}

int field_key(mpack_cur *c, const char *where, mpack_tok *k, wire_cmd_error *e)
{
	if (mpack_read(c, k) < 0 || k->kind != MPACK_STR) {
		field_fail(e, BO_INVALID, BO_D_NONE, "keys of %s must be strings", where);
		return -1;
	}
	return 0;
}

int field_unknown_key(const mpack_tok *k, const char *where, wire_cmd_error *e)
{
	char kb[48];
	mpack_printable(k, kb, sizeof(kb));
	field_fail(e, BO_INVALID, BO_D_NONE, "unknown key '%s'%s%s", kb, where[0] ? " in " : "",
	           where);
	return -1;
}

int field_dup_key(const char *name, wire_cmd_error *e)
{
	field_fail(e, BO_INVALID, BO_D_NONE, "key '%s' given twice", name);
	return -1;
}

int field_primary(mpack_cur *c, const char *name, wire_primary *p, wire_cmd_error *e)
{
	int64_t pairs = field_map(c, name, e);
	if (pairs < 0)
		return -1;
	int has_node = 0, has_address = 0;
	for (int64_t i = 0; i < pairs; i++) {
		mpack_tok k, s;
		uint64_t v;
		if (field_key(c, name, &k, e) < 0)
			return -1;
		int is_node = mpack_str_is(&k, "node"), is_address = mpack_str_is(&k, "address");
		if ((is_node && has_node) || (is_address && has_address))
			return field_dup_key(is_node ? "node" : "address", e);
		if (is_node) {
			if (field_uint(c, "node", UINT32_MAX, BO_D_NONE, &v, e) < 0)
				return -1;
			p->node = (uint32_t)v;
			has_node = 1;
		} else if (is_address) {
			if (field_str(c, "address", &s, e) < 0)
				return -1;
			if (s.n == 0 || s.n >= WIRE_ADDRESS_LEN_MAX) {
				field_fail(e, BO_INVALID, BO_D_NONE,
				           "'%s'.address has %" PRIu32 " bytes, must be 1..%u", name,
				           s.n, WIRE_ADDRESS_LEN_MAX - 1);
				return -1;
			}
			memcpy(p->address, s.data, s.n);
			p->address[s.n] = '\0';
			has_address = 1;
		} else {
			mpack_skip(c); /* a newer server's key */
		}
	}
	if (!has_node || !has_address) {
		field_fail(e, BO_INVALID, BO_D_NONE, "'%s' needs 'node' and 'address'", name);
		return -1;
	}
	p->known = 1;
	return 0;
}
