/*
 * seatmap_count.c — the counting seat-map allocator (see seatmap_count.h).
 */
#include "tests/support/seatmap_count.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/limits.h"

long seatmap_count_live;
long seatmap_count_made;
static long fail_after = -1;

void seatmap_count_fail_after(long n) { fail_after = n; }

bo_seatmap *__wrap_bo_seatmap_new(uint32_t row_count, uint32_t seat_count, uint32_t pool_count)
{
	if (row_count > BO_ROWS_PER_EVENT_MAX || seat_count > BO_SEATS_PER_EVENT_MAX ||
	    pool_count > BO_POOLS_PER_EVENT_MAX)
		return NULL;
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	bo_seatmap *m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto oom;
	m->row_count = row_count;
	m->seat_count = seat_count;
	m->pool_count = pool_count;
	m->rows = row_count ? calloc(row_count, sizeof(bo_row_def)) : NULL;
	m->categories = seat_count ? calloc(seat_count, 1) : NULL;
	m->pool_capacity = pool_count ? calloc(pool_count, sizeof(uint32_t)) : NULL;
	if ((row_count && !m->rows) || (seat_count && !m->categories) || (pool_count && !m->pool_capacity))
		goto oom;
	seatmap_count_live++;
	seatmap_count_made++;
	return m;
oom:
	/* The test machine itself is out of memory: not an outcome under test. */
	fprintf(stderr, "seatmap_count: out of memory\n");
	abort();
}

void __wrap_bo_seatmap_free(bo_seatmap *map)
{
	if (map == NULL)
		return;
	free(map->rows);
	free(map->categories);
	free(map->pool_capacity);
	free(map);
	seatmap_count_live--;
}

int seatmap_count_wrapped(void)
{
	long made = seatmap_count_made;
	bo_seatmap *m = bo_seatmap_new(1, 1, 0);
	int counted = m != NULL && seatmap_count_made == made + 1;
	bo_seatmap_free(m);
	return counted;
}
