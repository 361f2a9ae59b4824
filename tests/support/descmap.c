/*
 * descmap.c — seat maps of a chosen description size (descmap.h).
 */
#include "tests/support/descmap.h"

#include <assert.h>

bo_seatmap *descmap_new(uint32_t rows, uint32_t runs, uint32_t pools)
{
	assert(rows >= 1 && rows <= BO_ROWS_PER_EVENT_MAX && pools <= BO_POOLS_PER_EVENT_MAX);
	assert(runs >= rows && (uint64_t)runs <= (uint64_t)DESCMAP_ROW_SEATS * rows);
	bo_seatmap *m = bo_seatmap_new(rows, rows * DESCMAP_ROW_SEATS, pools);
	if (m == NULL)
		return NULL;
	m->category_count = 2;
	for (uint32_t p = 0; p < pools; p++)
		m->pool_capacity[p] = 1;
	uint32_t base = runs / rows, extra = runs % rows;
	for (uint32_t r = 0; r < rows; r++) {
		uint32_t k = base + (r < extra); /* runs in this row, 1..16 */
		m->rows[r].section = (uint16_t)(r % BO_SECTIONS_PER_EVENT_MAX);
		m->rows[r].seats = DESCMAP_ROW_SEATS;
		uint8_t *cat = m->categories + (uint64_t)r * DESCMAP_ROW_SEATS;
		/* Seats 0..k-2 alternate (a run each); the rest is run k-1. */
		for (uint32_t i = 0; i < DESCMAP_ROW_SEATS; i++)
			cat[i] = (uint8_t)((i < k - 1 ? i : k - 1) % 2);
	}
	return m;
}

bo_seatmap *descmap_alternating(void)
{
	return descmap_new(BO_ROWS_PER_EVENT_MAX, BO_ROWS_PER_EVENT_MAX * DESCMAP_ROW_SEATS, 0);
}

bo_seatmap *descmap_sized(uint64_t bytes)
{
	const uint64_t pools = BO_POOLS_PER_EVENT_MAX;
	for (uint64_t rows = BO_ROWS_PER_EVENT_MAX; rows >= 1; rows--) {
		if (bytes < 4 * rows + 4 * pools)
			continue;
		uint64_t rest = bytes - 4 * rows - 4 * pools;
		if (rest % 3 == 0 && rest / 3 >= rows && rest / 3 <= DESCMAP_ROW_SEATS * rows)
			return descmap_new((uint32_t)rows, (uint32_t)(rest / 3), (uint32_t)pools);
	}
	assert(0 && "no descmap has that description size");
	return NULL;
}
