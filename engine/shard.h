/*
 * shard.h — one writer thread that owns one engine.
 *
 * Producers (gateway threads, tests, benchmarks) submit commands through the
 * shard's input ring; the shard thread drains everything published as one
 * batch, stamps the batch with one timestamp, advances the engine's clock to
 * it (expiring holds), applies the commands in ring order and writes, in that
 * order, one shard_out record per expiry and per command to its output ring.
 * The next stages (journal, replies, projections) consume the output ring;
 * until the journal exists, tests and benchmarks do.
 *
 * When no command arrives for tick_ms, the shard feeds itself a tick (an
 * advance to the current time), so an expired hold is released within
 * tick_ms plus scheduling delay of its expiry (BO_EXPIRY_LAG_MS_MAX).
 */
#ifndef BO_SHARD_H
#define BO_SHARD_H

#include <stdint.h>

#include "engine.h"
#include "ring.h"

/* What a producer writes into an input slot. `tag` is the producer's own
 * handle (connection, request slot, ...), carried to the output untouched.
 * A CREATE_EVENT's map is borrowed until its result comes out. */
typedef struct shard_in {
	uint64_t tag;
	bo_cmd cmd;
} shard_in;

enum { SHARD_OUT_RESULT = 1, SHARD_OUT_EXPIRY = 2 };

typedef struct shard_out {
	uint8_t kind;	 /* SHARD_OUT_RESULT or SHARD_OUT_EXPIRY */
	uint8_t _pad[7];
	uint64_t tag;	 /* RESULT: the command's tag */
	uint64_t batch;	 /* batch number (1, 2, ...) the record belongs to */
	int64_t now_ms;	 /* the batch's timestamp */
	union {
		bo_result result;
		bo_expiry expiry;
	} u;
} shard_out;

/* Time source, in milliseconds. Tests inject a fake clock. */
typedef int64_t (*shard_clock_fn)(void *ctx);

typedef struct shard_config {
	uint32_t id;
	engine_config engine;
	uint32_t in_slots;  /* input ring slots, power of two >= BO_BATCH_MAX */
	uint32_t out_slots; /* output ring slots, power of two >= 2 * BO_BATCH_MAX */
	uint32_t tick_ms;   /* idle tick interval, 1..BO_TICK_MS */
	shard_clock_fn clock; /* NULL: CLOCK_REALTIME */
	void *clock_ctx;
} shard_config;

typedef struct shard shard;

/* Fills `cfg` with defaults (shard 0, engine defaults, BO_RING_SLOTS_DEFAULT,
 * BO_TICK_MS, real clock). */
void shard_config_default(shard_config *cfg);

/* Allocates the shard, its engine and both rings. Returns 0 and sets *out,
 * -EINVAL for a bad config, or -ENOMEM. Does not start the thread. */
int shard_new(const shard_config *cfg, shard **out /* OUT */);

/* Starts the writer thread. 0, or -errno from pthread_create. */
int shard_start(shard *s);

/* Stops the writer after it has applied everything already published, and
 * joins it. The output ring must keep being drained until this returns
 * (the writer waits for room there; it never drops a record). Producers
 * must have stopped submitting. Idempotent. */
void shard_stop(shard *s);

/* Stops the shard if needed and frees everything. */
void shard_free(shard *s);

/* Submits n commands (1..BO_BATCH_MAX) as consecutive ring slots: all or
 * nothing. Returns 0, or -EBUSY at once when the ring lacks room (the caller
 * answers `busy`). Thread-safe. `tags` may be NULL (tags 0). */
int shard_submit(shard *s, const bo_cmd *cmds, const uint64_t *tags, uint32_t n);

/* The output ring: exactly one consumer polls/releases shard_out slots. */
ring *shard_output(shard *s);

/* The engine, for inspection only while the shard is stopped. */
engine *shard_engine(shard *s);

/* Batches applied so far (a gauge). */
uint64_t shard_batches(const shard *s);

/* The shard an event lives on: XXH3-64 of the event id (little-endian
 * bytes) modulo shard_count. Stable across versions: it decides where
 * journals live. */
uint32_t shard_for_event(uint64_t event_id, uint32_t shard_count);

#endif /* BO_SHARD_H */
