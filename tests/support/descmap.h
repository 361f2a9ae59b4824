/*
 * descmap.h — seat maps of a chosen description size, for the tests of the
 * bound BO_MAP_DESC_BYTES_MAX (base/limits.h): tests/engine/engine_test.c,
 * tests/engine/codec_test.c and tests/shard/shard_journal_test.c.
 *
 * The description of a map is 4 bytes a row + 3 a category run + 4 a pool
 * (bo_seatmap_desc_bytes). These maps have rows of DESCMAP_ROW_SEATS seats,
 * so every (rows, runs, pools) with rows <= runs <= DESCMAP_ROW_SEATS * rows
 * is reachable and desc = 4 * rows + 3 * runs + 4 * pools exactly.
 */
#ifndef BO_TEST_DESCMAP_H
#define BO_TEST_DESCMAP_H

#include <stdint.h>

#include "base/seatmap.h"

/* Seats in every row of a descmap: 16 x BO_ROWS_PER_EVENT_MAX = 1 Mi seats. */
#define DESCMAP_ROW_SEATS 16u

/* Builds a map of `rows` rows of DESCMAP_ROW_SEATS seats, two categories
 * and `pools` pools (capacity 1 each), whose rows hold `runs` category
 * runs in total, spread as evenly as possible. Requires rows >= 1,
 * rows <= BO_ROWS_PER_EVENT_MAX, pools <= BO_POOLS_PER_EVENT_MAX and
 * rows <= runs <= DESCMAP_ROW_SEATS * rows (asserted). The caller frees it
 * with bo_seatmap_free(); NULL only when out of memory. */
bo_seatmap *descmap_new(uint32_t rows, uint32_t runs, uint32_t pools);

/* A descmap of exactly `bytes` of description with BO_POOLS_PER_EVENT_MAX
 * pools and as many rows as can be (so bytes near BO_MAP_DESC_BYTES_MAX are
 * reachable): the first rows count from BO_ROWS_PER_EVENT_MAX down for which
 * bytes - 4 * rows - 4 * pools is 3 * runs with runs in range. Asserts that
 * one exists (it does for every value near BO_MAP_DESC_BYTES_MAX: rows can
 * step by one, and 4 * rows runs through every residue mod 3). NULL only
 * when out of memory. */
bo_seatmap *descmap_sized(uint64_t bytes);

/* The 1 Mi-seat map of the defect: BO_ROWS_PER_EVENT_MAX rows of 16 seats,
 * the two categories alternating seat by seat, so every seat is a run of
 * its own (description 4 * 65536 + 3 * 1 Mi = 3,407,872 bytes). */
bo_seatmap *descmap_alternating(void);

#endif /* BO_TEST_DESCMAP_H */
