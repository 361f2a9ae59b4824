/*
 * bench_util.h — small helpers shared by the benchmark programs (header
 * only: each benchmark is one program).
 */
#ifndef BO_BENCH_UTIL_H
#define BO_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64*: deterministic, so runs are comparable. */
static inline uint64_t bench_rnd(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

static inline void bench_die(const char *prog, const char *what, int rc)
{
	fprintf(stderr, "%s: %s failed (%d%s%s)\n", prog, what, rc, rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
	exit(1);
}

/* A seat map of rows x per_row seats, `cats` categories in row bands.
 * The caller frees it with bo_seatmap_free(). */
static inline bo_seatmap *bench_map(uint32_t rows, uint32_t per_row, uint32_t cats)
{
	bo_seatmap *m = bo_seatmap_new(rows, rows * per_row, 0);
	if (!m)
		return NULL;
	m->category_count = cats;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].section = (uint16_t)(r / 25);
		m->rows[r].seats = (uint16_t)per_row;
		memset(m->categories + (size_t)r * per_row, (int)(r * cats / rows), per_row);
	}
	return m;
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Value at quantile q (0..1) of a sorted array. */
static inline int64_t bench_quantile(const int64_t *sorted, uint64_t n, double q)
{
	if (n == 0)
		return 0;
	uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

#endif /* BO_BENCH_UTIL_H */
