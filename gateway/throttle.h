/*
 * throttle.h — hot-event throttling: a token bucket per event, taken by the
 * gateway's request threads (nng and HTTP) before a mutating command
 * enters its shard's ring, so one flash sale cannot fill a shard's ring
 * and starve the other events on it. Reads never take tokens (they never
 * enter a ring). A command refused here is answered BO_THROTTLED with
 * bo_result.retry_after_ms, and was not applied (safe to resend with the
 * same request id). The ring-full BO_BUSY stays as the last defence.
 *
 * A bucket admits `burst` commands at once and then `rate` per second
 * (exactly: GCRA, the token bucket's arithmetic on one timestamp; see
 * throttle.c). The interval between tokens is whole nanoseconds, rounded
 * up: the rate admitted is 1e9 / ceil(1e9 / rate), never above `rate` and
 * within 0.1% of it up to 1,000,000/s (exact when rate divides 1e9, as
 * the default does). A bucket that is full again carries no state, so its slot
 * may be given to another event.
 *
 * Thread-safe (any number of threads take at once); no allocation after
 * gw_throttle_new; bounded memory: a table of slots sized from
 * `events_max`, split into stripes with a lock each.
 *
 * TABLE FULL. An event looks for its slot among GW_THROTTLE_PROBE slots of
 * its stripe; a slot whose bucket is full (idle long enough to have
 * refilled) is reused. When all of them belong to other events that are
 * still refilling — only events sending near their rate keep a slot that
 * long — the event shares its stripe's overflow bucket (same rate and
 * burst) with every other event in that position: it is still throttled
 * (spraying event ids cannot buy a hot event out of its limit), at worst
 * together with strangers. gw_throttle_stats_get counts these commands.
 */
#ifndef BO_GATEWAY_THROTTLE_H
#define BO_GATEWAY_THROTTLE_H

#include <stdint.h>

/* Defaults (gw_config_default, boxoffice-server --throttle-rate/-burst).
 *
 * Rate 20,000 commands/s per event. What a shard sustains end to end on
 * this 2-core machine is ~300,000 commands/s (scripts/bench e2e:
 * 612,000-682,000/s over 2 shards, perf/README.md), so one hot event at
 * its limit takes ~7% of its shard: ten simultaneous flash sales on one
 * shard still leave a third of it to the others. A human crowd is far
 * below: 100,000 buyers pressing "hold" within 10 s of an on-sale is
 * 10,000 holds/s, and each buyer's later extend/confirm/release spreads
 * over minutes; 20,000/s is twice that peak, so only retry storms and
 * bots are throttled.
 *
 * Burst 4,096 = WIRE_BATCH_MAX: one full message of one event is admitted
 * whole from a rested bucket. Its cost to the other events of the shard
 * is one burst's worth of the shard's time, 4,096 / 300,000/s ~ 14 ms,
 * once; after it the event is held to its rate. */
#define GW_THROTTLE_RATE_DEFAULT 20000u
#define GW_THROTTLE_BURST_DEFAULT 4096u
/* Bounds of both (flags and gw_throttle_new): a rate above what the
 * journal alone sustains (~1.3M/s) is "off" in effect; the bound keeps
 * burst * interval inside int64 nanoseconds with room to spare. */
#define GW_THROTTLE_RATE_MAX 10000000u
#define GW_THROTTLE_BURST_MAX 10000000u
/* Slots an event's lookup examines (within its stripe), and the fewest
 * slots a table has. */
#define GW_THROTTLE_PROBE 16u
#define GW_THROTTLE_STRIPES 64u
/* gw_throttle_foreach reports at most this many events. */
#define GW_THROTTLE_TOP_MAX 128u

typedef struct gw_throttle gw_throttle;

/* rate: tokens per second per event, 1..GW_THROTTLE_RATE_MAX; burst: bucket
 * size, 1..GW_THROTTLE_BURST_MAX; events_max: events expected to be busy at
 * once (>= 1): the table has about twice as many slots (a power of two,
 * at least GW_THROTTLE_STRIPES * GW_THROTTLE_PROBE), 40 bytes each.
 * Returns 0 and *out (free with gw_throttle_free), -EINVAL (a value out of
 * range), -ENOMEM. */
int gw_throttle_new(uint32_t rate, uint32_t burst, uint32_t events_max,
                    gw_throttle **out /* OUT */);

/* Frees t (NULL: nothing). No take may be running. */
void gw_throttle_free(gw_throttle *t);

/* Takes one token of event_id's bucket at now_ns (CLOCK_MONOTONIC, or any
 * clock that never goes back: a test's fake one). Returns 0 when admitted,
 * else the milliseconds (1..ceil(1000 / rate)) until a token is due: the
 * retry hint. A refusal changes nothing, so a take at now_ns + hint ms is
 * admitted when nobody else took meanwhile, and one a millisecond earlier
 * is not. Never blocks for long (a stripe lock over at most
 * GW_THROTTLE_PROBE slots), never allocates. */
uint32_t gw_throttle_take(gw_throttle *t, uint64_t event_id, int64_t now_ns);

/* Calls fn for each event with a non-zero refused count (for /metrics):
 * at most min(max, GW_THROTTLE_TOP_MAX) events, the most refused first.
 * Counts are those of the event's current slot: a slot reused for another
 * event (see TABLE FULL) starts again from zero, so the per-event counts
 * may go down; gw_throttle_stats_get's totals never do. fn runs with no
 * lock held. Any thread, concurrently with takes. t NULL (throttling
 * off, gw_server.throttle): no call. */
typedef void (*gw_throttle_fn)(void *ctx, uint64_t event_id, uint64_t admitted, uint64_t refused);
void gw_throttle_foreach(gw_throttle *t, uint32_t max, gw_throttle_fn fn, void *ctx);

/* Totals since gw_throttle_new (monotonic counters); t NULL: all zero. */
typedef struct gw_throttle_stats {
	uint64_t admitted;          /* takes admitted, all events */
	uint64_t refused;           /* takes refused, all events */
	uint64_t overflow_admitted; /* ... of these, through an overflow bucket */
	uint64_t overflow_refused;
	uint64_t reused;      /* slots given to another event (the old one was idle) */
	uint32_t slots;       /* table size */
	uint32_t rate, burst; /* as configured */
} gw_throttle_stats;
void gw_throttle_stats_get(gw_throttle *t, gw_throttle_stats *out /* OUT */);

#endif /* BO_GATEWAY_THROTTLE_H */
