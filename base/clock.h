/*
 * clock.h — the monotonic clock, in one place. Durations, timeouts and
 * latencies use it; wall-clock time (what the engine is stamped with and
 * logs print) comes from CLOCK_REALTIME where it is used, never from here.
 */
#ifndef BO_BASE_CLOCK_H
#define BO_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC. It cannot fail on Linux for this clock id
 * with a valid pointer, so there is no error to return. */
static inline int64_t bo_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t bo_clock_us(void) { return bo_clock_ns() / 1000; }
static inline int64_t bo_clock_ms(void) { return bo_clock_ns() / 1000000; }

#endif /* BO_BASE_CLOCK_H */
