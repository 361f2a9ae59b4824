/*
 * fakepub.h — a stand-in for the server's read side, in the test process:
 * an nng PUB socket that publishes projection messages and a REP socket
 * (served by a thread) that answers event_state from the same "truth", so
 * that the client library's subscriber and `boxoffice-cli watch` can be
 * tested without a server, with gaps, throttling and garbage on demand.
 *
 * The truth of each event is a bo_event_image; fakepub_publish applies
 * changes to it and sends them as one message (prev = its seq, seq = prev
 * + 1), or skips the send (a message nng lost). event_state answers a copy
 * of the truth at that moment, or throttled (fakepub_throttle), or
 * not_found for an unknown event.
 *
 * Waits are for events (a connected subscriber, a served request), each
 * with a deadline. Free of Criterion: failures are return values, except
 * programmer errors (assert).
 */
#ifndef BO_TEST_FAKEPUB_H
#define BO_TEST_FAKEPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/change.h"

typedef struct fakepub fakepub;

/* Listens on pub_url (PUB, a send buffer of 8192 messages per subscriber,
 * so that nothing is dropped unless asked) and rep_url (REP, served by a
 * thread). Returns 0 or a negative nng error number. */
int fakepub_start(const char *pub_url, const char *rep_url, fakepub **out /* OUT */);

/* Stops the thread, closes both sockets, frees the truth. NULL: no-op. */
void fakepub_stop(fakepub *f);

/* Closes the PUB socket and listens again on the same URL with a new one:
 * its subscribers lose their connection and redial. Returns 0 or an nng
 * error number. */
int fakepub_restart_pub(fakepub *f);

/* Adds event_id to the truth at sequence seq: rows x seats_per_row seats
 * (row r in category r * categories / rows), pools of pool_capacity places
 * each; every seat free, every pool full. */
void fakepub_add_event(fakepub *f, uint64_t event_id, uint32_t rows, uint32_t seats_per_row,
                       uint32_t categories, uint32_t pools, uint32_t pool_capacity, uint64_t seq);

/* Adds the event as fakepub_add_event (at seq 1) and publishes a "create"
 * message for it (prev 0, seq 1), as the server does. */
void fakepub_create(fakepub *f, uint64_t event_id, uint32_t rows, uint32_t seats_per_row,
                    uint32_t categories, uint32_t pools, uint32_t pool_capacity);

/* Applies c[0..n) to the truth of event_id and, unless skip, publishes them
 * as one message (prev = the truth's seq, seq = prev + 1). Returns the new
 * seq. Every change must fit the event (asserted). */
uint64_t fakepub_publish(fakepub *f, uint64_t event_id, const bo_change *c, uint32_t n, bool skip);

/* Publishes a message (prev, seq, changes) without touching the truth: a
 * stale or bogus message. */
void fakepub_publish_raw_msg(fakepub *f, uint64_t event_id, uint64_t prev, uint64_t seq,
                             const bo_change *c, uint32_t n);

/* Publishes buf[0..len) as it is. */
void fakepub_send_bytes(fakepub *f, const void *buf, size_t len);

/* A random change of event_id that fits it (seed: the caller's state). */
bo_change fakepub_random_change(fakepub *f, uint64_t event_id, uint64_t *seed);

/* A copy of event_id's truth (the caller frees with bo_event_image_free);
 * false when there is no such event. */
bool fakepub_truth(fakepub *f, uint64_t event_id, bo_event_image *out /* OUT */);

/* The next n event_state requests are answered throttled. */
void fakepub_throttle(fakepub *f, uint32_t n);

/* event_state requests answered so far (any answer), counted when the
 * answer is made, before it is sent. */
uint64_t fakepub_state_requests(fakepub *f);

/* Waits up to timeout_ms until at least n subscribers are connected to the
 * PUB socket (as the PUB side sees them). 0 or -ETIMEDOUT. */
int fakepub_wait_pipes(fakepub *f, uint32_t n, int timeout_ms);

/* Waits up to timeout_ms until at least n event_state requests were
 * answered (the image in the answer taken: what is published from then on
 * follows it). 0 or -ETIMEDOUT. */
int fakepub_wait_state_requests(fakepub *f, uint64_t n, int timeout_ms);

/* Whether images a and b hold the same event, seq, map and state. */
bool fakepub_image_equal(const bo_event_image *a, const bo_event_image *b);

#endif /* BO_TEST_FAKEPUB_H */
