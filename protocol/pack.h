/*
 * pack.h — small helpers over msgpack-c's packer shared by the request and
 * reply encoders. Internal to protocol/.
 *
 * Packer calls return 0, or -1 only when the sbuffer cannot grow; the
 * encoders OR them into one flag per message and check it at the end
 * (pack_finish), so one failed call is never missed and no early return
 * leaves half a value behind.
 */
#ifndef BO_PROTOCOL_PACK_H
#define BO_PROTOCOL_PACK_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <msgpack/pack.h>

static inline int pack_str(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static inline int pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	return pack_str(pk, k) | msgpack_pack_uint64(pk, v);
}

static inline int pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	return pack_str(pk, k) | pack_str(pk, v);
}

static inline int pack_u32_array(msgpack_packer *pk, const uint32_t *v, uint32_t n)
{
	int rc = msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		rc |= msgpack_pack_uint32(pk, v[i]);
	return rc;
}

/* Ends an encoder: 0 when every packer call succeeded, else -ENOMEM with
 * the buffer cut back to `start` (msgpack_sbuffer is a plain struct: data,
 * size, alloc, so its size may be lowered). */
static inline int pack_finish(msgpack_sbuffer *out, size_t start, int pk_failed)
{
	if (!pk_failed)
		return 0;
	out->size = start;
	return -ENOMEM;
}

#endif /* BO_PROTOCOL_PACK_H */
