/*
 * projection.h — the read side of the wire protocol (schemas/protocol.md
 * part II is the client-facing description): projection messages that the
 * server publishes on its nng PUB socket, and the event_state admin
 * request that answers a subscriber's snapshot over REQ/REP.
 *
 * PROJECTION MESSAGE (PUB -> SUB), one per event per durable batch:
 *
 *   bytes 0..7   the topic: the event id, 8 bytes big-endian. nng's SUB
 *                socket filters on a prefix of the message, so subscribing
 *                to these 8 bytes selects exactly one event; the empty
 *                topic selects every event.
 *   bytes 8..    one msgpack map:
 *     "event"   uint   the event id (equal to the topic)
 *     "prev"    uint   the event's sequence before these changes
 *     "seq"     uint   its sequence after them (> prev)
 *     "at_ms"   int    the batch's time, ms since the Unix epoch
 *     "pub_us"  int    when the server published it, us since the epoch
 *     "changes" array  1..WIRE_PROJECTION_CHANGES_MAX change maps, in order:
 *        "cause"     str   bo_cause_str(): create, hold, release, expiry,
 *                          confirm, cancel, block, unblock
 *        "claim"     uint  the hold/booking (absent for create, block, unblock)
 *        seat changes:  "state" str (bo_seat_state_str) and
 *                       "seats" array of uint (1..BO_SEATS_PER_HOLD_MAX):
 *                       every listed seat is now in that state
 *        pool changes:  "pool" uint, "quantity" uint, "pool_free" uint
 *        create:        nothing else (fetch an event_state for the map)
 *
 * EVENT_STATE (REQ/REP admin request, see wire.h's admin section):
 *   request  {"op": "event_state", "event": uint}
 *   reply    {"status": "ok", "event": uint, "seq": uint,
 *             "category_count": uint, "rows": [[section, seats], ...],
 *             "categories": bin (a byte per seat), "states": bin (a
 *             bo_seat_state per seat), "pools": [[capacity, free], ...]}
 *   or a refusal map {"status", "detail", "error"}: not_found/no_event,
 *   throttled/none (over BO_EVENT_STATE_PER_SEC_MAX requests per second),
 *   busy/none (stopping), invalid/malformed.
 *
 * Decoders treat their input as hostile (as wire.h's); encoders append to
 * a msgpack_sbuffer and restore its size on failure.
 */
#ifndef BO_PROTOCOL_PROJECTION_H
#define BO_PROTOCOL_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

#include "base/change.h"
#include "base/types.h"
#include "wire.h"

/* Bytes of a projection message's topic prefix. */
#define WIRE_TOPIC_BYTES 8u

/* Changes in one projection message: one batch's worth of one event. */
#define WIRE_PROJECTION_CHANGES_MAX BO_BATCH_MAX

/* The header of a projection message. */
typedef struct wire_projection {
	uint64_t event_id;
	uint64_t prev_seq;
	uint64_t seq;
	int64_t at_ms;
	int64_t pub_us;
	uint32_t count; /* changes */
} wire_projection;

/* The topic of event_id: its 8 bytes, big-endian. */
void wire_topic(uint64_t event_id, uint8_t out[WIRE_TOPIC_BYTES]);

/* Appends a projection message (topic + map) for h and changes[0..h->count).
 * Returns 0, -EINVAL (count 0 or over WIRE_PROJECTION_CHANGES_MAX,
 * seq <= prev_seq, a cause/state/seat_count out of range) or -ENOMEM. */
int wire_encode_projection(const wire_projection *h, const bo_change *changes, msgpack_sbuffer *out);

/* Decodes a projection message into *h and changes[0..cap). Returns 0
 * (h->count changes), or -EINVAL with msg->error saying why (shorter than
 * the topic, topic and "event" differ, not one map, a missing or mistyped
 * key, unknown cause or state, a seat or pool field where the cause has
 * none, more than cap changes, seq <= prev). Unknown keys are skipped.
 * Allocates nothing. */
int wire_decode_projection(const uint8_t *buf, size_t len, wire_projection *h /* OUT */,
			   bo_change *changes /* OUT */, uint32_t cap, wire_msg *msg /* OUT */);

/* Client side: appends {"op": "event_state", "event": event_id}. 0 or -ENOMEM. */
int wire_encode_event_state_request(uint64_t event_id, msgpack_sbuffer *out);

/* 1 when im keeps the rules an image is encoded under (counts within
 * limits.h, rows of 1..BO_SEATS_PER_ROW_MAX seats in sections below
 * BO_SECTIONS_PER_EVENT_MAX summing to its seats, categories below its
 * category count, states named, pools with free <= capacity), else 0.
 * Both image encoders (this one and json_encode_event_image) check it. */
int wire_event_image_valid(const bo_event_image *im);

/* Server side: appends the "ok" reply for an image. Returns 0, -EINVAL
 * (counts over limits.h, a state out of range) or -ENOMEM. */
int wire_encode_event_image(const bo_event_image *im, msgpack_sbuffer *out);

/* Client side: decodes an event_state reply. Returns 0 with *status the
 * reply's bo_status: BO_OK and *im filled (arrays allocated here: the
 * caller frees with bo_event_image_free), or another status (not_found,
 * throttled, busy, invalid) with msg->error its text and *im zeroed.
 * -EINVAL: not a valid reply (msg->error says why; e.g. "states" and
 * "categories" not one byte per seat, rows not summing to the seats, a
 * category >= category_count, a pool's free over its capacity); -ENOMEM.
 * Nothing is left allocated on failure. */
int wire_decode_event_image(const uint8_t *buf, size_t len, bo_event_image *im /* OUT */, int *status /* OUT */,
			    wire_msg *msg /* OUT */);

#endif /* BO_PROTOCOL_PROJECTION_H */
