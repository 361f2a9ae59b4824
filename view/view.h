/*
 * view.h — the read model of one shard: a copy of every event's
 * availability (a state per seat, counts per state and per category,
 * free tickets per pool), kept off the writer thread from the shard's
 * durable output, and read by any number of threads without a lock and
 * without the shard's input ring.
 *
 * WRITER (one thread: the consumer of the shard's output ring, which sees
 * results and expiries in journal order and only once they are durable)
 *
 *     view_batch_begin(v);
 *     for each shard_out o taken from the ring (at most VIEW_BATCH_MAX):
 *         view_add_result(v, &o->u.result, cmd_of_o, o->seq, o->now_ms)
 *         or view_add_expiry(v, &o->u.expiry, o->seq, o->now_ms);
 *     view_batch_end(v, emit, ctx);   // apply + one emit per event touched
 *
 * Adding only records what changed; view_batch_end applies each touched
 * event's changes at once under that event's seqlock, moves its sequence
 * to the journal sequence of its last change, and calls emit with the
 * event's changes (the projection of that event for this batch). So a
 * reader sees an event either before or after all of a batch's changes to
 * it, never between, and the sequence it reads names exactly the state it
 * read. A caller that answers clients after view_batch_end (the gateway)
 * gives read-your-writes: a client that has its hold's reply reads it.
 *
 * READERS (any thread, concurrently with the writer): view_query,
 * view_image. Each copies what it needs between two reads of the event's
 * seqlock and retries when the writer moved it; every shared word is an
 * atomic, so there is no data race, only retries.
 *
 * MEMORY is reserved by view_new and bounded by view_memory_bytes(): a
 * state byte and a category byte per seat of seats_max, a row entry per
 * row (rows <= seats), BO_VIEW_EVENT_BYTES per event of events_max, and the
 * active pool holds table (16 bytes x 2 x claims_max). Pages are touched
 * as events fill them. Nothing is allocated on the writer's path.
 */
#ifndef BO_VIEW_H
#define BO_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "base/change.h"
#include "base/types.h"
#include "engine/engine.h"

/* Records one batch may add (results + expiries): the output ring's poll
 * bound, so a poll's worth is one batch. */
#define VIEW_BATCH_MAX BO_BATCH_MAX

typedef struct view view;

/* Called by view_batch_end once per event the batch changed, in the order
 * the events were first touched: the event, the sequence its subscribers
 * must hold (prev_seq) and the one this moves them to (seq), the batch's
 * time (the engine's clock when it applied the last of them) and the
 * changes in journal order (borrowed for the call). Runs on the writer
 * thread after the event's new state is visible to readers. */
typedef void (*view_emit_fn)(void *ctx, uint64_t event_id, uint64_t prev_seq, uint64_t seq, int64_t at_ms,
			     const bo_change *changes, uint32_t n);

/* Bytes view_new reserves for an engine of this configuration (virtual:
 * pages are touched as events use them). */
size_t view_memory_bytes(const engine_config *cfg);

/* Reserves the read model of a shard whose engine has configuration cfg.
 * 0, -EINVAL (cfg outside limits.h), -ENOMEM. */
int view_new(const engine_config *cfg, view **out /* OUT */);
void view_free(view *v);

/* Fills an empty view from an engine that no thread is changing (a
 * recovered shard before shard_start): every event, its seats' states,
 * pool free counts and active pool holds. Every event's sequence becomes
 * `seq` (the shard's last journal sequence: no later change has happened,
 * and none of the events can have changed after it). Returns 0, -ENOMEM
 * (copying an event), -EEXIST (the view is not empty). */
int view_load(view *v, const engine *e, uint64_t seq);

/* ---- Writer ------------------------------------------------------------- */

void view_batch_begin(view *v);

/* Records what a durable result changed. Results that change nothing
 * (failed ones, replayed ones, EXTEND, queries) are ignored. `cmd` is the
 * command the result answers; only a CREATE_EVENT's is read (its map;
 * borrowed for the call), and it may be NULL for every other op. `seq` is
 * the result's journal sequence, now_ms its batch time. At most
 * VIEW_BATCH_MAX records per batch (assert). */
void view_add_result(view *v, const bo_result *r, const bo_cmd *cmd, uint64_t seq, int64_t now_ms);

/* Records a durable expiry (as view_add_result). */
void view_add_expiry(view *v, const bo_expiry *x, uint64_t seq, int64_t now_ms);

/* Applies the batch and emits each touched event's changes (emit may be
 * NULL). */
void view_batch_end(view *v, view_emit_fn emit, void *ctx);

/* ---- Readers (any thread) ------------------------------------------------ */

/* Answers QUERY_AVAIL or QUERY_SEATS exactly as engine_apply would on the
 * durable state (same checks, same order, same result), plus
 * out->view_seq. An op other than those two is a programmer error. */
void view_query(const view *v, const bo_cmd *cmd, bo_result *out /* OUT */);

/* Copies event_id's whole availability into *out (arrays allocated here:
 * bo_event_image_free). Returns 0, -ENOENT (no such event) or -ENOMEM. */
int view_image(const view *v, uint64_t event_id, bo_event_image *out /* OUT */);

/* The event's read-model sequence, 0 when it does not exist. */
uint64_t view_seq(const view *v, uint64_t event_id);

/* Gauges, any thread. */
typedef struct view_stats {
	uint64_t batches;	  /* view_batch_end calls that changed something */
	uint64_t changes;	  /* bo_changes applied */
	uint64_t read_retries;	  /* reader copies retried because the writer moved */
	uint32_t events;	  /* events in the model */
	uint32_t pool_holds;	  /* active pool holds tracked */
} view_stats;
void view_stats_get(const view *v, view_stats *out /* OUT */);

#endif /* BO_VIEW_H */
