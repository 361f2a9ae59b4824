/*
 * field.h — what the request decoder (request.c) and the reply decoder
 * (reply.c) share on top of the msgpack reader: the message-level check
 * and typed reads of map fields that either yield a value or record why
 * the command (or reply) is rejected. Internal to protocol/.
 *
 * Every field_* read that fails fills the wire_cmd_error with status
 * BO_INVALID and detail BO_D_NONE ("malformed") unless a detail is passed,
 * and returns -1; the first failure of a command is kept (field_fail).
 * They read from a message that field_message() accepted, so a failing read
 * is a wrong type or value, never bytes out of bounds.
 */
#ifndef BO_PROTOCOL_FIELD_H
#define BO_PROTOCOL_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "mpack.h"
#include "wire.h"

/* The message-level rule (wire.h, request.c): 1 <= len <= WIRE_MSG_MAX,
 * exactly one msgpack value, nesting <= WIRE_DEPTH_MAX. Returns 0 with *at
 * at the start of the message, *top its first header and *inside the
 * cursor after that header; or -1 with msg->error set. The caller checks
 * the top-level kind. */
int field_message(const uint8_t *buf, size_t len, mpack_cur *at /* OUT */, mpack_tok *top /* OUT */,
                  mpack_cur *inside /* OUT */, wire_msg *msg);

/* Records a failure in e unless one is recorded already (later faults of
 * the same command are not looked for). */
void field_fail(wire_cmd_error *e, uint8_t status, uint8_t detail, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Reads an unsigned integer <= max into *v. A negative or non-integer value
 * is malformed; a value over max fails with `detail`. Returns 0 or -1. */
int field_uint(mpack_cur *c, const char *name, uint64_t max, uint8_t detail, uint64_t *v /* OUT */,
               wire_cmd_error *e);

/* Reads an array header of at most max elements into *n; a larger count
 * fails with `detail`, another kind is malformed. Returns 0 or -1. */
int field_array(mpack_cur *c, const char *name, uint32_t max, uint8_t detail, uint32_t *n /* OUT */,
                wire_cmd_error *e);

/* Reads a map header; returns its pair count, or -1 (not a map). */
int64_t field_map(mpack_cur *c, const char *name, wire_cmd_error *e);

/* Reads a string into *s (data points into the message). Returns 0 or -1. */
int field_str(mpack_cur *c, const char *name, mpack_tok *s /* OUT */, wire_cmd_error *e);

/* Reads a map key, which must be a string; `where` names the map in the
 * error ("a command"). Returns 0 or -1. */
int field_key(mpack_cur *c, const char *where, mpack_tok *k /* OUT */, wire_cmd_error *e);

/* Fail with "unknown key 'k' in <where>" (where "" for a command) or
 * "key 'name' given twice". Both return -1. */
int field_unknown_key(const mpack_tok *k, const char *where, wire_cmd_error *e);
int field_dup_key(const char *name, wire_cmd_error *e);

/* Reads a not_primary reply's "primary": {"node": uint32, "address": a
 * string of 1..WIRE_ADDRESS_LEN_MAX-1 bytes} (other keys skipped) into
 * p->node/address and sets p->known. An address is never truncated: a
 * longer one fails. Returns 0 or -1. */
int field_primary(mpack_cur *c, const char *name, wire_primary *p /* OUT */, wire_cmd_error *e);

#endif /* BO_PROTOCOL_FIELD_H */
