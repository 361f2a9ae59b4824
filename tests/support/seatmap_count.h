/*
 * seatmap_count.h — seat maps under a test's control, for the codec tests
 * (tests/engine/codec_test.c, tests/protocol/wire_test.c and the codec fuzz
 * target), which prove that decoding frees every map it allocates.
 *
 * A binary that links seatmap_count.c with
 *     -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free
 * gets every map the codecs allocate from here instead of base/seatmap.c:
 * each array is a heap block of its own (AddressSanitizer flags an overrun
 * of any one of them), live maps are counted (so "no leak" is an exact
 * check in every build, sanitizers or not), and an allocation can be made
 * to fail on purpose. bo_seatmap_check() stays the real one.
 */
#ifndef BO_TEST_SEATMAP_COUNT_H
#define BO_TEST_SEATMAP_COUNT_H

#include "base/seatmap.h"

/* Maps allocated and not yet freed; maps ever allocated. */
extern long seatmap_count_live;
extern long seatmap_count_made;

/* n >= 0: n more allocations succeed, then each returns NULL (as if out of
 * memory) until called again; n < 0: never fail (the default). */
void seatmap_count_fail_after(long n);

/* 1 when the wrap is in effect (a map made through bo_seatmap_new() was
 * counted here), 0 when the binary was linked without it: every leak check
 * would then be blind, so callers assert on it. */
int seatmap_count_wrapped(void);

/* The wrappers themselves (called only through the linker's --wrap). */
bo_seatmap *__wrap_bo_seatmap_new(uint32_t row_count, uint32_t seat_count, uint32_t pool_count);
void __wrap_bo_seatmap_free(bo_seatmap *map);

#endif /* BO_TEST_SEATMAP_COUNT_H */
