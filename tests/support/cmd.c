/*
 * cmd.c — the commands and seat maps tests submit (see cmd.h).
 */
#include "tests/support/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "base/seatmap.h"

/* A test that asks for more seats than a command holds is wrong itself. */
static void check_seat_count(uint32_t n)
{
	if (n > BO_SEATS_PER_HOLD_MAX) {
		fprintf(stderr, "tcmd: %u seats, a command holds at most %u\n", n,
		        BO_SEATS_PER_HOLD_MAX);
		abort();
	}
}

bo_cmd tcmd(uint8_t op, uint64_t client, uint64_t request, uint64_t event)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.client_id = client;
	c.request_id = request;
	c.event_id = event;
	return c;
}

bo_cmd tcmd_create(uint64_t client, uint64_t request, uint64_t event, const bo_seatmap *map)
{
	bo_cmd c = tcmd(BO_OP_CREATE_EVENT, client, request, event);
	c.map = map;
	return c;
}

bo_cmd tcmd_query_avail(uint64_t event)
{
	return tcmd(BO_OP_QUERY_AVAIL, 0, 0, event);
}

bo_cmd tcmd_query_seats(uint64_t event, uint32_t first, uint32_t n)
{
	check_seat_count(n);
	bo_cmd c = tcmd(BO_OP_QUERY_SEATS, 0, 0, event);
	c.seat_count = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++)
		c.seats[i] = first + i;
	return c;
}

bo_cmd tcmd_seats(uint8_t op, uint64_t client, uint64_t request, uint64_t event,
                  const uint32_t *seats, uint32_t n)
{
	check_seat_count(n);
	bo_cmd c = tcmd(op, client, request, event);
	c.seat_count = (uint8_t)n;
	if (n > 0)
		memcpy(c.seats, seats, n * sizeof(uint32_t));
	return c;
}

bo_cmd tcmd_hold_seats(uint64_t client, uint64_t request, uint64_t event, const uint32_t *seats,
                       uint32_t n, uint32_t ttl_ms)
{
	bo_cmd c = tcmd_seats(BO_OP_HOLD_SEATS, client, request, event, seats, n);
	c.ttl_ms = ttl_ms;
	return c;
}

bo_cmd tcmd_hold_best(uint64_t client, uint64_t request, uint64_t event, uint8_t category,
                      uint16_t quantity, uint32_t ttl_ms)
{
	bo_cmd c = tcmd(BO_OP_HOLD_BEST, client, request, event);
	c.category = category;
	c.quantity = quantity;
	c.ttl_ms = ttl_ms;
	return c;
}

bo_seatmap *tcmd_rows_map(uint32_t rows, uint32_t seats_per_row, uint32_t pool_count,
                          uint32_t pool_capacity)
{
	bo_seatmap *m = bo_seatmap_new(rows, rows * seats_per_row, pool_count);
	if (m == NULL) {
		fprintf(stderr, "tcmd_rows_map: no map of %u x %u seats, %u pools\n", rows,
		        seats_per_row, pool_count);
		abort();
	}
	m->category_count = 1;
	for (uint32_t r = 0; r < rows; r++)
		m->rows[r].seats = (uint16_t)seats_per_row;
	for (uint32_t p = 0; p < pool_count; p++)
		m->pool_capacity[p] = pool_capacity;
	return m;
}
