/*
 * publish.h — the projection publisher: an nng PUB socket listening on
 * the server's --publish URLs, fed by the shards' output threads through
 * a bounded queue and drained by a thread of its own.
 *
 * Why a thread and a queue: nng's pub0 hands every message to every
 * connected subscriber (filtering by topic happens on the subscriber's
 * side), so one send costs work per subscriber. The output threads that
 * answer clients only encode and enqueue (a mutex and a pointer); when the
 * queue is full (BO_PUB_QUEUE_MSGS messages or BO_PUB_QUEUE_BYTES bytes)
 * the message is dropped and counted, and the subscribers of its event see
 * a gap and resynchronise. So a slow publisher or a crowd of subscribers
 * never delays a reply, and the memory they can pin is bounded: the queue,
 * plus BO_PUB_SENDBUF_MSGS shared messages per subscriber (nng's per-pipe
 * queue), with at most BO_SUBSCRIBERS_MAX subscribers (one more is
 * disconnected as it connects).
 */
#ifndef BO_GATEWAY_PUBLISH_H
#define BO_GATEWAY_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "base/change.h"
#include "base/hist.h"
#include "protocol/projection.h"

/* --publish URLs at most. */
#define GW_PUBLISH_MAX 8u

typedef struct gw_pub gw_pub;

typedef struct gw_pub_stats {
	uint64_t published;           /* messages handed to nng */
	uint64_t dropped;             /* messages dropped: the queue was full */
	uint64_t encode_failed;       /* changes that had no encoding (a bug: logged) */
	uint32_t subscribers;         /* connected now */
	uint64_t subscribers_refused; /* disconnected: BO_SUBSCRIBERS_MAX reached */
	uint32_t queued;              /* messages waiting now */
	uint64_t oldest_queued_us;    /* how long the oldest of them has waited (0: none) */
} gw_pub_stats;

/* Opens the PUB socket, listens on urls[0..n) (n >= 1) and starts the
 * publisher thread. Returns 0, or a negative errno with err set (a bad URL,
 * an address in use, no memory); nothing is left running on failure.
 * 1 <= n <= GW_PUBLISH_MAX. */
int gw_pub_start(const char *const *urls, uint32_t n, gw_pub **out /* OUT */, char *err,
                 size_t errlen);

/* Encodes one event's changes (what view_batch_end emits) and enqueues the
 * message; drops it when the queue is full. Any thread; never blocks on
 * the network. `scratch` is the caller's own encoding buffer (one per
 * thread), reused across calls. */
void gw_pub_emit(gw_pub *p, msgpack_sbuffer *scratch, uint64_t event_id, uint64_t prev_seq,
                 uint64_t seq, int64_t at_ms, const bo_change *changes, uint32_t n);

/* Sends what is queued, stops the thread, closes the socket; later emits
 * are dropped. Idempotent; NULL is a no-op. Stats stay readable. */
void gw_pub_stop(gw_pub *p);

/* Stops it if needed and frees it. NULL is a no-op. */
void gw_pub_free(gw_pub *p);

void gw_pub_stats_get(gw_pub *p, gw_pub_stats *out /* OUT */);

/* Each message's wait in the queue, from gw_pub_emit to the publisher
 * thread taking it (microseconds, base/hist.h; dropped ones are not in
 * it). Live: read with bo_hist_read while p exists. */
const bo_hist *gw_pub_queue_hist(const gw_pub *p);

#endif /* BO_GATEWAY_PUBLISH_H */
