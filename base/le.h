/*
 * le.h — explicit little-endian loads and stores, byte by byte: every
 * on-disk format (journal records, codec, snapshots) is little-endian
 * whatever the host, and never depends on alignment or struct layout.
 * Compilers turn these into single moves on little-endian hosts.
 */
#ifndef BO_BASE_LE_H
#define BO_BASE_LE_H

#include <stdint.h>

static inline uint16_t bo_le_load16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }

static inline uint32_t bo_le_load32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t bo_le_load64(const uint8_t *p)
{
	return (uint64_t)bo_le_load32(p) | (uint64_t)bo_le_load32(p + 4) << 32;
}

static inline void bo_le_store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void bo_le_store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void bo_le_store64(uint8_t *p, uint64_t v)
{
	bo_le_store32(p, (uint32_t)v);
	bo_le_store32(p + 4, (uint32_t)(v >> 32));
}

#endif /* BO_BASE_LE_H */
