/*
 * seatmap.c — seat maps: allocation as one block and the validity rules
 * (see base/types.h, struct bo_seatmap).
 */
#include "base/seatmap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bo_seatmap *bo_seatmap_new(uint32_t row_count, uint32_t seat_count, uint32_t pool_count)
{
	if (row_count > BO_ROWS_PER_EVENT_MAX || seat_count > BO_SEATS_PER_EVENT_MAX ||
	    pool_count > BO_POOLS_PER_EVENT_MAX)
		return NULL;
	size_t size = sizeof(bo_seatmap) + (size_t)row_count * sizeof(bo_row_def) +
		      (size_t)pool_count * sizeof(uint32_t) + seat_count;
	/* libc, not mimalloc: a map is a transient message built by gateway
	 * threads (not start-up state), and sanitizers see libc's heap. */
	uint8_t *p = calloc(1, size);
	if (!p)
		return NULL;
	bo_seatmap *m = (bo_seatmap *)p;
	m->row_count = row_count;
	m->seat_count = seat_count;
	m->pool_count = pool_count;
	m->rows = (bo_row_def *)(p + sizeof(bo_seatmap));
	m->pool_capacity = (uint32_t *)(m->rows + row_count);
	m->categories = (uint8_t *)(m->pool_capacity + pool_count);
	return m;
}

void bo_seatmap_free(bo_seatmap *map) { free(map); }

int bo_seatmap_dup(const bo_seatmap *m, bo_seatmap **out)
{
	assert(m && out);
	*out = NULL;
	if (m->row_count > BO_ROWS_PER_EVENT_MAX || m->seat_count > BO_SEATS_PER_EVENT_MAX ||
	    m->pool_count > BO_POOLS_PER_EVENT_MAX)
		return -EINVAL;
	bo_seatmap *c = bo_seatmap_new(m->row_count, m->seat_count, m->pool_count);
	if (!c)
		return -ENOMEM;
	c->category_count = m->category_count;
	if (m->rows)
		memcpy(c->rows, m->rows, m->row_count * sizeof(*m->rows));
	if (m->categories)
		memcpy(c->categories, m->categories, m->seat_count);
	if (m->pool_capacity)
		memcpy(c->pool_capacity, m->pool_capacity, m->pool_count * sizeof(*m->pool_capacity));
	*out = c;
	return 0;
}

bo_detail bo_seatmap_check(const bo_seatmap *m)
{
	if (!m)
		return BO_D_MAP_INVALID;
	if (m->row_count > BO_ROWS_PER_EVENT_MAX || m->seat_count > BO_SEATS_PER_EVENT_MAX ||
	    m->pool_count > BO_POOLS_PER_EVENT_MAX)
		return BO_D_MAP_INVALID;
	if (m->seat_count == 0 && m->pool_count == 0)
		return BO_D_MAP_INVALID; /* an event must sell something */
	if ((m->seat_count > 0) != (m->row_count > 0))
		return BO_D_MAP_INVALID;
	if (m->seat_count > 0 && (m->category_count == 0 || m->category_count > BO_CATEGORIES_MAX))
		return BO_D_MAP_INVALID;
	if (m->category_count > BO_CATEGORIES_MAX)
		return BO_D_MAP_INVALID;
	if ((m->row_count && !m->rows) || (m->seat_count && !m->categories) ||
	    (m->pool_count && !m->pool_capacity))
		return BO_D_MAP_INVALID;
	uint64_t sum = 0;
	for (uint32_t r = 0; r < m->row_count; r++) {
		if (m->rows[r].seats == 0 || m->rows[r].seats > BO_SEATS_PER_ROW_MAX ||
		    m->rows[r].section >= BO_SECTIONS_PER_EVENT_MAX)
			return BO_D_MAP_INVALID;
		sum += m->rows[r].seats;
	}
	if (sum != m->seat_count)
		return BO_D_MAP_INVALID;
	for (uint32_t i = 0; i < m->seat_count; i++)
		if (m->categories[i] >= m->category_count)
			return BO_D_MAP_INVALID;
	for (uint32_t p = 0; p < m->pool_count; p++)
		if (m->pool_capacity[p] == 0 || m->pool_capacity[p] > BO_POOL_CAPACITY_MAX)
			return BO_D_MAP_INVALID;
	/* Last: the walk relies on the counts and sums checked above. */
	if (bo_seatmap_desc_bytes(m) > BO_MAP_DESC_BYTES_MAX)
		return BO_D_MAP_INVALID; /* it could not be journaled */
	return BO_D_NONE;
}

uint64_t bo_seatmap_desc_bytes(const bo_seatmap *m)
{
	assert(m != NULL);
	assert(m->row_count <= BO_ROWS_PER_EVENT_MAX && m->seat_count <= BO_SEATS_PER_EVENT_MAX &&
	       m->pool_count <= BO_POOLS_PER_EVENT_MAX);
	uint64_t size = 4ull * m->row_count + 4ull * m->pool_count;
	uint32_t first = 0;
	for (uint32_t r = 0; r < m->row_count; r++) {
		uint32_t n = m->rows[r].seats;
		assert(n <= m->seat_count - first);
		/* A row's first seat starts a run; so does every category change. */
		for (uint32_t i = 0; i < n; i++)
			if (i == 0 || m->categories[first + i] != m->categories[first + i - 1])
				size += 3;
		first += n;
	}
	assert(first == m->seat_count);
	return size;
}
