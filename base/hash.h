/*
 * hash.h — the one integer hash of the tables that ids from clients index
 * (the engine's event, client and idempotency tables, the read model's
 * event index): splitmix64's finaliser. Cheap, and good enough for open
 * addressing of ids chosen by clients: not adversarial-proof, but a table
 * can't overflow (each is sized at least 2x its bound), so the worst case
 * is slower probing, never a failure.
 */
#ifndef BO_BASE_HASH_H
#define BO_BASE_HASH_H

#include <stdint.h>

static inline uint64_t bo_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

#endif /* BO_BASE_HASH_H */
