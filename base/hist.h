/*
 * hist.h — a lock-free histogram with fixed power-of-two buckets, for the
 * figures /metrics serves (latencies in microseconds, batch sizes).
 *
 * Bucket i counts the values v with 2^(i-1) < v <= 2^i (bucket 0: v <= 1),
 * for i < BO_HIST_TOP; bucket BO_HIST_TOP counts everything above
 * 2^(BO_HIST_TOP-1) (Prometheus' +Inf). In microseconds that is 1 us ..
 * 4.2 s before +Inf: wide enough for a journal sync on a slow disk and a
 * request held behind a full ring, and fine enough at the low end for a
 * sub-millisecond round trip. Fixed bounds keep observing to one count
 * leading zeros and two relaxed additions, with no configuration and
 * nothing to allocate; the price is a factor-of-two resolution, which is
 * what a latency histogram on a dashboard needs.
 *
 * Any number of threads may observe and read at once: each bucket and the
 * sum are atomic on their own, so a reader sees a count that was true at
 * some instant per bucket (the set is not one instant). A bo_hist is
 * zero-initialised storage (static, calloc, memset): no init function.
 */
#ifndef BO_BASE_HIST_H
#define BO_BASE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

/* The +Inf bucket's index; buckets 0..BO_HIST_TOP - 1 have finite bounds. */
#define BO_HIST_TOP 23u
#define BO_HIST_BUCKETS (BO_HIST_TOP + 1u)

typedef struct bo_hist {
	atomic_uint_least64_t n[BO_HIST_BUCKETS]; /* per bucket, not cumulative */
	atomic_uint_least64_t sum;                /* of the values observed */
} bo_hist;

/* A copy, for rendering. */
typedef struct bo_hist_snap {
	uint64_t n[BO_HIST_BUCKETS];
	uint64_t count; /* sum of n[]: the exact count of the copy */
	uint64_t sum;
} bo_hist_snap;

/* The bucket a value falls in. */
static inline uint32_t bo_hist_index(uint64_t v)
{
	if (v <= 1)
		return 0;
	uint32_t i = 64u - (uint32_t)__builtin_clzll(v - 1); /* ceil(log2 v) */
	return i < BO_HIST_TOP ? i : BO_HIST_TOP;
}

/* Upper bound of bucket i < BO_HIST_TOP (inclusive): 2^i. */
static inline uint64_t bo_hist_bound(uint32_t i)
{
	return (uint64_t)1 << i;
}

/* Counts one value. Relaxed: a statistic orders nothing. */
static inline void bo_hist_observe(bo_hist *h, uint64_t v)
{
	atomic_fetch_add_explicit(&h->n[bo_hist_index(v)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

/* Copies h into *out; out->count is the sum of the copied buckets, so a
 * rendered histogram's _count always equals its +Inf bucket. */
static inline void bo_hist_read(const bo_hist *h, bo_hist_snap *out)
{
	out->count = 0;
	for (uint32_t i = 0; i < BO_HIST_BUCKETS; i++) {
		out->n[i] = atomic_load_explicit(&((bo_hist *)h)->n[i], memory_order_relaxed);
		out->count += out->n[i];
	}
	out->sum = atomic_load_explicit(&((bo_hist *)h)->sum, memory_order_relaxed);
}

#endif /* BO_BASE_HIST_H */
