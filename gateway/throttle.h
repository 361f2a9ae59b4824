/*
 * throttle.h — hot-event throttling: a token bucket per event, taken by the
 * gateway's request threads (nng and HTTP) before a mutating command
 * enters its shard's ring, so one flash sale cannot fill a shard's ring
 * and starve the other events on it. Reads never take tokens (they never
 * enter a ring). A command refused here is answered BO_THROTTLED with
 * bo_result.retry_after_ms, and was not applied (safe to resend with the
 * same request id). The ring-full BO_BUSY stays as the last defence.
 *
 * Thread-safe; no allocation after gw_throttle_new; bounded memory: at
 * most `events_max` buckets (an event beyond that shares ... — see
 * throttle.c for what happens when the table is full).
 */
#ifndef BO_GATEWAY_THROTTLE_H
#define BO_GATEWAY_THROTTLE_H

#include <stdint.h>

typedef struct gw_throttle gw_throttle;

/* rate: tokens per second per event (>= 1); burst: bucket size (>= 1).
 * Returns 0, -EINVAL (a zero), -ENOMEM. */
int gw_throttle_new(uint32_t rate, uint32_t burst, uint32_t events_max, gw_throttle **out /* OUT */);
void gw_throttle_free(gw_throttle *t);

/* Takes one token of event_id's bucket at now_ns (CLOCK_MONOTONIC).
 * Returns 0 when admitted, else the milliseconds (>= 1) until a token is
 * due: the retry hint. */
uint32_t gw_throttle_take(gw_throttle *t, uint64_t event_id, int64_t now_ns);

/* Calls fn for each event with a non-zero refused count (for /metrics):
 * at most `max` events, the most refused first. */
typedef void (*gw_throttle_fn)(void *ctx, uint64_t event_id, uint64_t admitted, uint64_t refused);
void gw_throttle_foreach(gw_throttle *t, uint32_t max, gw_throttle_fn fn, void *ctx);

#endif /* BO_GATEWAY_THROTTLE_H */
