/*
 * shard.c — the writer thread: input ring -> engine -> output ring.
 *
 * The loop is the LMAX one: take everything published as one batch (up to
 * BO_BATCH_MAX), give it one timestamp, apply, publish the outputs, release
 * the input slots. Batching is what makes a writer fast under load (one
 * clock read, one advance, one output claim per batch) without adding
 * latency when idle: a batch of one leaves as soon as it is applied.
 */
#include "shard.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <mimalloc.h>
#include <xxhash.h>

struct shard {
	shard_config cfg;
	engine *engine;
	ring *in;
	ring *out;
	pthread_t thread;
	int started;
	/* Set by shard_stop() (release), read by the writer between batches
	 * (acquire): whatever was published before the stop request is
	 * visible to the writer's last poll, which runs after it sees the
	 * flag, so nothing published before shard_stop() is left behind. */
	atomic_int stopping;
	/* Batches applied: a statistics gauge, relaxed. */
	atomic_uint_least64_t batches;
	/* Scratch for one batch's expiries, written by on_expiry. */
	int64_t batch_ms;
	uint64_t batch_no;
};

static int64_t clock_realtime_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void shard_config_default(shard_config *cfg)
{
	assert(cfg);
	memset(cfg, 0, sizeof(*cfg));
	engine_config_default(&cfg->engine);
	cfg->in_slots = BO_RING_SLOTS_DEFAULT;
	cfg->out_slots = BO_RING_SLOTS_DEFAULT;
	cfg->tick_ms = BO_TICK_MS;
}

int shard_new(const shard_config *cfg, shard **out)
{
	assert(cfg && out);
	*out = NULL;
	if (!BO_IS_POW2(cfg->in_slots) || cfg->in_slots < BO_BATCH_MAX || !BO_IS_POW2(cfg->out_slots) ||
	    cfg->out_slots < 2 * BO_BATCH_MAX || cfg->tick_ms == 0 || cfg->tick_ms > BO_TICK_MS)
		return -EINVAL;
	shard *s = mi_zalloc_aligned(sizeof(*s), 64);
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.clock)
		s->cfg.clock = clock_realtime_ms;
	int rc = engine_new(&cfg->engine, &s->engine);
	if (rc == 0)
		rc = ring_new(sizeof(shard_in), cfg->in_slots, &s->in);
	if (rc == 0)
		rc = ring_new(sizeof(shard_out), cfg->out_slots, &s->out);
	if (rc != 0) {
		shard_free(s);
		return rc;
	}
	atomic_init(&s->stopping, 0);
	atomic_init(&s->batches, 0);
	*out = s;
	return 0;
}

static void on_expiry(void *ctx, const bo_expiry *x)
{
	shard *s = ctx;
	uint64_t seq;
	/* Expiries are rare next to results: one claim each is fine. */
	ring_claim_wait(s->out, 1, &seq);
	shard_out *o = ring_slot(s->out, seq);
	o->kind = SHARD_OUT_EXPIRY;
	o->tag = 0;
	o->batch = s->batch_no;
	o->now_ms = s->batch_ms;
	o->u.expiry = *x;
	ring_publish(s->out, seq, 1);
}

/* Moves the engine's clock to the shard clock; a clock that steps back is
 * held at the last time used, so batch times never decrease. */
static void begin_batch(shard *s)
{
	int64_t now = s->cfg.clock(s->cfg.clock_ctx);
	int64_t last = engine_now(s->engine);
	s->batch_ms = now > last ? now : last;
	s->batch_no++;
	engine_advance(s->engine, s->batch_ms, on_expiry, s);
}

static void apply_batch(shard *s, uint64_t first, uint32_t n)
{
	begin_batch(s);
	/* One output claim for all of the batch's results: n <= BO_BATCH_MAX
	 * and the output ring holds at least two batches. */
	uint64_t out_first;
	ring_claim_wait(s->out, n, &out_first);
	for (uint32_t i = 0; i < n; i++) {
		const shard_in *in = ring_slot(s->in, first + i);
		if (i + 1 < n)
			engine_prefetch(s->engine, &((const shard_in *)ring_slot(s->in, first + i + 1))->cmd);
		shard_out *o = ring_slot(s->out, out_first + i);
		o->kind = SHARD_OUT_RESULT;
		o->tag = in->tag;
		o->batch = s->batch_no;
		o->now_ms = s->batch_ms;
		engine_apply(s->engine, &in->cmd, &o->u.result);
	}
	ring_publish(s->out, out_first, n);
	ring_release(s->in, n);
	atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
}

static void *shard_main(void *arg)
{
	shard *s = arg;
	const int64_t tick_ns = (int64_t)s->cfg.tick_ms * 1000000;
	for (;;) {
		uint64_t first;
		uint32_t n = ring_poll(s->in, BO_BATCH_MAX, &first);
		if (n > 0) {
			apply_batch(s, first, n);
			continue;
		}
		if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
			/* One more poll after seeing the flag: a command
			 * published between the poll above and the flag load
			 * must still be applied. */
			n = ring_poll(s->in, BO_BATCH_MAX, &first);
			if (n == 0)
				break;
			apply_batch(s, first, n);
			continue;
		}
		if (!ring_wait(s->in, tick_ns))
			begin_batch(s); /* idle tick: release what has expired */
	}
	return NULL;
}

int shard_start(shard *s)
{
	assert(s && !s->started);
	atomic_store_explicit(&s->stopping, 0, memory_order_relaxed); /* a stopped shard may restart */
	int rc = pthread_create(&s->thread, NULL, shard_main, s);
	if (rc != 0)
		return -rc;
	s->started = 1;
	return 0;
}

void shard_stop(shard *s)
{
	assert(s);
	if (!s->started)
		return;
	atomic_store_explicit(&s->stopping, 1, memory_order_release);
	/* The writer notices within one tick (ring_wait's timeout). */
	pthread_join(s->thread, NULL);
	s->started = 0;
}

void shard_free(shard *s)
{
	if (!s)
		return;
	shard_stop(s);
	engine_free(s->engine);
	ring_free(s->in);
	ring_free(s->out);
	mi_free(s);
}

int shard_submit(shard *s, const bo_cmd *cmds, const uint64_t *tags, uint32_t n)
{
	assert(s && cmds && n >= 1 && n <= BO_BATCH_MAX);
	uint64_t first;
	if (ring_claim(s->in, n, &first) != 0)
		return -EBUSY;
	for (uint32_t i = 0; i < n; i++) {
		shard_in *slot = ring_slot(s->in, first + i);
		slot->tag = tags ? tags[i] : 0;
		slot->cmd = cmds[i];
	}
	ring_publish(s->in, first, n);
	return 0;
}

ring *shard_output(shard *s) { return s->out; }

engine *shard_engine(shard *s) { return s->engine; }

uint64_t shard_batches(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->batches, memory_order_relaxed);
}

uint32_t shard_for_event(uint64_t event_id, uint32_t shard_count)
{
	assert(shard_count > 0);
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(event_id >> (8 * i));
	return (uint32_t)(XXH3_64bits(b, sizeof(b)) % shard_count);
}
