/*
 * cmd.h — the commands and seat maps tests submit: one builder per command
 * shape, so that a test names what it sends (tcmd_hold_seats(...)) instead
 * of filling a bo_cmd field by field, and every test fills it the same way
 * (all fields the op does not use are zero, as the wire decoder leaves
 * them). Used by the shard, gateway and server tests.
 *
 * Free of Criterion (the ThreadSanitizer harness of shard_test.c uses it):
 * a builder given more seats than a command holds, or a map that cannot be
 * allocated, is a bug in the test or an exhausted machine: it prints why
 * and aborts.
 */
#ifndef BO_TEST_CMD_H
#define BO_TEST_CMD_H

#include <stdint.h>

#include "base/types.h"

/* A command of op with these ids; every other field zero. */
bo_cmd tcmd(uint8_t op, uint64_t client, uint64_t request, uint64_t event);

/* CREATE_EVENT of event with map (borrowed: the caller frees it after the
 * command was applied). */
bo_cmd tcmd_create(uint64_t client, uint64_t request, uint64_t event, const bo_seatmap *map);

/* QUERY_AVAIL of event (a query: no client, no request). */
bo_cmd tcmd_query_avail(uint64_t event);

/* QUERY_SEATS of the n seats first .. first + n - 1 (n <= BO_SEATS_PER_HOLD_MAX). */
bo_cmd tcmd_query_seats(uint64_t event, uint32_t first, uint32_t n);

/* A command of op on the seats seats[0..n) (n <= BO_SEATS_PER_HOLD_MAX):
 * BLOCK, UNBLOCK, or HOLD_SEATS (then with ttl_ms, see tcmd_hold_seats). */
bo_cmd tcmd_seats(uint8_t op, uint64_t client, uint64_t request, uint64_t event,
                  const uint32_t *seats, uint32_t n);

/* HOLD_SEATS of seats[0..n) for ttl_ms. */
bo_cmd tcmd_hold_seats(uint64_t client, uint64_t request, uint64_t event, const uint32_t *seats,
                       uint32_t n, uint32_t ttl_ms);

/* HOLD_BEST of quantity seats of category for ttl_ms. */
bo_cmd tcmd_hold_best(uint64_t client, uint64_t request, uint64_t event, uint8_t category,
                      uint16_t quantity, uint32_t ttl_ms);

/* A map of rows rows of seats_per_row seats each, all of category 0 (one
 * category), and pool_count pools of pool_capacity places. The caller owns
 * it (bo_seatmap_free). Aborts when it cannot be allocated. */
bo_seatmap *tcmd_rows_map(uint32_t rows, uint32_t seats_per_row, uint32_t pool_count,
                          uint32_t pool_capacity);

#endif /* BO_TEST_CMD_H */
