/*
 * seatmap.h — building and checking seat maps (bo_seatmap, base/types.h).
 * A map is one heap block; every rule a valid map keeps is listed above
 * struct bo_seatmap.
 */
#ifndef BO_BASE_SEATMAP_H
#define BO_BASE_SEATMAP_H

#include <stdint.h>

/* Beside this file: installed under <boxoffice/base/> (see types.h). */
#include "types.h"

/* Allocates a zeroed map with room for the given counts (which must be
 * within the limits above; larger values return NULL). The caller fills
 * rows, categories and pool_capacity and owns the block: bo_seatmap_free().
 * Returns NULL when out of memory or over a limit. */
bo_seatmap *bo_seatmap_new(uint32_t row_count, uint32_t seat_count, uint32_t pool_count);
void bo_seatmap_free(bo_seatmap *map);

/* Copies `map` (valid or not) into a new block the caller owns
 * (bo_seatmap_free). An array the original lacks stays zeroed in the copy,
 * which bo_seatmap_check refuses the same way. Returns 0 and *out; -EINVAL
 * when a count is over the limits bo_seatmap_new takes; -ENOMEM. *out is
 * NULL on failure. */
int bo_seatmap_dup(const bo_seatmap *map, bo_seatmap **out /* OUT */);

/* Checks a map against every rule above. Returns BO_D_NONE when valid. */
bo_detail bo_seatmap_check(const bo_seatmap *map);

/* Bytes of the map's description (BO_MAP_DESC_BYTES_MAX, base/limits.h):
 * 4 per row + 3 per category run + 4 per pool, where a run is a maximal
 * stretch of seats of one category within one row. O(seats). The map must
 * be walkable: counts within limits.h, the arrays present, the rows'
 * seats summing to seat_count (bo_seatmap_check tests those first). */
uint64_t bo_seatmap_desc_bytes(const bo_seatmap *map);

#endif /* BO_BASE_SEATMAP_H */
