/*
 * sub_test.c — proves the subscriber of libboxoffice-client (boxoffice.h,
 * "Subscriber") against a stand-in publisher in this process
 * (tests/support/fakepub.h: an nng PUB socket and a REP socket answering
 * event_state from the same truth), no server needed:
 *
 *  1. in order: every change of 300 random messages reaches on_change once,
 *     in publication order, identical to what was published, with the image
 *     showing each change as it is delivered; no gap, no resync beyond the
 *     join; the image ends equal to the publisher's truth;
 *  2. a message the publisher never sends (a gap) is detected at the next
 *     message and repaired by fetching a new image (on_resync "gap"); the
 *     image then equals the truth; the same with the test hook
 *     boc_sub_inject_gap (the subscriber drops a received message);
 *  3. a subscriber too slow for its publisher (2 messages of receive buffer,
 *     2000 published before it reads): nng drops messages, the subscriber
 *     resynchronises, and ends equal to the truth;
 *  4. stale messages (seq <= the image's) are dropped, counted, not applied
 *     and do not cause a resync;
 *  5. an event_state answered throttled is asked again after a backoff that
 *     doubles (on_no_image tells each wait), then the image arrives;
 *  6. malformed messages (not msgpack, mistyped, topic and event differing)
 *     are counted and dropped, and one that does not fit the image (a seat
 *     outside it) resynchronises ("invalid") without touching the image;
 *     the subscriber goes on applying good messages;
 *  7. at most BO_SUB_TOPICS_MAX events are watched (-ENOSPC beyond),
 *     unwatch frees a place, an unknown event is reported not found;
 *  8. an event that does not exist yet is shown when its create message
 *     comes (on_resync "created") and then followed;
 *  9. a reconnection of the SUB socket refetches the image ("reconnect"),
 *     catching up on what was published while it was away;
 *  5b. no answer at all (nobody listens): each event is reported with
 *     BOC_ERR_TIMEOUT and asked again later, and one unanswered request
 *     holds the other events back (one timeout per wait, not per event);
 * 10. two events at once: a gap in one resynchronises that one only, the
 *     other's changes all arrive in order; after unwatch, no callback
 *     names the unwatched event, even for its messages already queued;
 * 11. the image of the largest event (BO_SEATS_PER_EVENT_MAX seats, over
 *     2 MiB) arrives over a real transport (ipc), past nng's default
 *     receive limit of 1 MiB.
 *
 * Every run checks the subscriber's central promise on the side: the
 * sequences it delivers form an unbroken chain (each message's prev is the
 * seq of the image or message before it), i.e. the user never sees a gap.
 *
 * Waiting is for events: the publisher waits until it sees the subscriber's
 * pipe (nng pub/sub drops messages sent before a subscriber is connected),
 * the subscriber until it is connected; then the test polls until the
 * subscriber's image reaches the truth's sequence, with a deadline that
 * fails the test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "base/clock.h"
#include "client/boxoffice.h"
#include "protocol/projection.h"
#include "tests/support/fakepub.h"

#define WAIT_MS 10000 /* any wait: a failure, not a slow run */
#define RETRY_MIN 20u
#define RETRY_MAX 1000u

/* ---- What the callbacks saw ---------------------------------------------- */

#define REC_CHANGES 8192
#define REC_EVENTS 8

typedef struct rec {
	boc_sub *sub; /* to read images from a callback */
	bo_change changes[REC_CHANGES];
	boc_sub_msg msgs[REC_CHANGES];
	uint32_t nchanges;
	int reasons[64];
	uint64_t resync_seq[64];
	uint32_t nresync;
	struct {
		uint64_t event;
		int err, status;
		uint32_t retry_ms;
	} noimg[BO_SUB_TOPICS_MAX + 8];
	uint32_t nnoimg;
	/* The chain: per event, the seq the next message must start from. */
	uint64_t chain_event[REC_EVENTS], chain_seq[REC_EVENTS];
	uint32_t chain_breaks;  /* a delivered message not following the chain */
	uint32_t image_misfits; /* an image not showing the change it came with */
} rec;

static rec *R;
static fakepub *F;
static char pub_url[64], rep_url[64];

static uint64_t *chain_of(rec *r, uint64_t event)
{
	for (uint32_t i = 0; i < REC_EVENTS; i++)
		if (r->chain_event[i] == event || r->chain_event[i] == 0) {
			r->chain_event[i] = event;
			return &r->chain_seq[i];
		}
	cr_assert_fail("more than %d events followed", REC_EVENTS);
	return NULL;
}

static void on_change(void *ctx, const boc_sub_msg *m, const bo_change *c, const bo_event_image *im)
{
	rec *r = ctx;
	uint64_t *chain = chain_of(r, m->event_id);
	if (m->change_index == 0 && m->prev_seq != *chain)
		r->chain_breaks++;
	bool last = m->change_index + 1 == m->change_count;
	if (last)
		*chain = m->seq;
	/* The image shows this change, and its seq follows the contract. */
	if (im->seq != (last ? m->seq : m->prev_seq))
		r->image_misfits++;
	if (c->is_pool && im->pool_free[c->pool] != c->pool_free)
		r->image_misfits++;
	for (uint32_t k = 0; !c->is_pool && k < c->seat_count; k++)
		if (im->states[c->seats[k]] != c->state)
			r->image_misfits++;
	if (im != boc_sub_image(r->sub, m->event_id))
		r->image_misfits++;
	cr_assert_lt(r->nchanges, REC_CHANGES);
	r->changes[r->nchanges] = *c;
	r->msgs[r->nchanges++] = *m;
}

static void on_resync(void *ctx, uint64_t event_id, const bo_event_image *im, int reason)
{
	rec *r = ctx;
	cr_assert_eq(im->event_id, event_id);
	*chain_of(r, event_id) = im->seq;
	cr_assert_lt(r->nresync, 64);
	r->reasons[r->nresync] = reason;
	r->resync_seq[r->nresync++] = im->seq;
}

static void on_no_image(void *ctx, uint64_t event_id, int err, int status, const char *text,
                        uint32_t retry_ms)
{
	rec *r = ctx;
	cr_assert(text != NULL);
	cr_assert_lt(r->nnoimg, sizeof(r->noimg) / sizeof(r->noimg[0]));
	r->noimg[r->nnoimg].event = event_id;
	r->noimg[r->nnoimg].err = err;
	r->noimg[r->nnoimg].status = status;
	r->noimg[r->nnoimg++].retry_ms = retry_ms;
}

/* ---- Set-up ---------------------------------------------------------------- */

static void setup(void)
{
	static int n;
	n++;
	snprintf(pub_url, sizeof(pub_url), "inproc://sub-test-pub-%d", n);
	snprintf(rep_url, sizeof(rep_url), "inproc://sub-test-rep-%d", n);
	cr_assert_eq(fakepub_start(pub_url, rep_url, &F), 0);
	R = calloc(1, sizeof(*R));
	cr_assert(R != NULL);
}

static void teardown(void)
{
	boc_sub_close(R->sub);
	fakepub_stop(F);
	free(R);
}

TestSuite(sub, .init = setup, .fini = teardown, .timeout = 120);

/* Opens R->sub on the fake (recv_buf 0: the default) and waits until both
 * sides see the connection. */
static boc_sub *open_sub(uint32_t recv_buf)
{
	boc_sub_options o;
	boc_sub_options_default(&o);
	o.pub_url = pub_url;
	o.req_url = rep_url;
	o.retry_ms_min = RETRY_MIN;
	o.retry_ms_max = RETRY_MAX;
	o.timeout_ms = WAIT_MS;
	if (recv_buf)
		o.recv_buf = recv_buf;
	o.on_change = on_change;
	o.on_resync = on_resync;
	o.on_no_image = on_no_image;
	o.ctx = R;
	char err[256];
	cr_assert_eq(boc_sub_open(&o, &R->sub, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fakepub_wait_pipes(F, 1, WAIT_MS), 0,
	             "the publisher never saw the subscriber");
	cr_assert_eq(boc_sub_wait_connected(R->sub, WAIT_MS), 0);
	return R->sub;
}

static uint64_t truth_seq(uint64_t event)
{
	bo_event_image t;
	cr_assert(fakepub_truth(F, event, &t));
	uint64_t seq = t.seq;
	bo_event_image_free(&t);
	return seq;
}

/* Polls until the subscriber's image of event is at the truth's seq. */
static void poll_until_caught_up(boc_sub *s, uint64_t event)
{
	uint64_t want = truth_seq(event);
	int64_t deadline = bo_clock_ms() + WAIT_MS;
	for (;;) {
		const bo_event_image *im = boc_sub_image(s, event);
		if (im != NULL && im->seq == want)
			return;
		cr_assert_lt(bo_clock_ms(), deadline,
		             "event %" PRIu64 " stuck at seq %" PRIu64 ", truth at %" PRIu64, event,
		             im ? im->seq : 0, want);
		cr_assert_geq(boc_sub_poll(s, 100), 0);
	}
}

/* Polls until the counter at byte offset `off` of boc_sub_stats is >= want. */
static void poll_until_stat(boc_sub *s, size_t off, uint64_t want, const char *what)
{
	int64_t deadline = bo_clock_ms() + WAIT_MS;
	for (;;) {
		boc_sub_stats st;
		boc_sub_stats_get(s, &st);
		uint64_t v;
		memcpy(&v, (const char *)&st + off, sizeof(v));
		if (v >= want)
			return;
		cr_assert_lt(bo_clock_ms(), deadline, "%s stuck at %" PRIu64 ", want %" PRIu64,
		             what, v, want);
		cr_assert_geq(boc_sub_poll(s, 100), 0);
	}
}
#define POLL_UNTIL_STAT(s, field, want) \
	poll_until_stat((s), offsetof(boc_sub_stats, field), (want), #field)

/* The subscriber's image equals the truth. */
static void assert_image_is_truth(boc_sub *s, uint64_t event)
{
	bo_event_image t;
	cr_assert(fakepub_truth(F, event, &t));
	const bo_event_image *im = boc_sub_image(s, event);
	cr_assert(im != NULL);
	bool eq = fakepub_image_equal(im, &t);
	uint64_t seq = t.seq;
	bo_event_image_free(&t);
	cr_assert(eq,
	          "image of event %" PRIu64 " at seq %" PRIu64
	          " differs from the truth at %" PRIu64,
	          event, im->seq, seq);
}

static void assert_unbroken(void)
{
	cr_assert_eq(R->chain_breaks, 0, "%u delivered messages did not follow the one before",
	             R->chain_breaks);
	cr_assert_eq(R->image_misfits, 0, "%u callbacks saw an image without their change",
	             R->image_misfits);
}

static bool same_change(const bo_change *a, const bo_change *b)
{
	if (a->cause != b->cause || a->is_pool != b->is_pool || a->claim_id != b->claim_id)
		return false;
	if (a->is_pool)
		return a->pool == b->pool && a->quantity == b->quantity &&
		       a->pool_free == b->pool_free;
	return a->state == b->state && a->seat_count == b->seat_count &&
	       memcmp(a->seats, b->seats, sizeof(a->seats[0]) * a->seat_count) == 0;
}

/* ---- 1. In order ---------------------------------------------------------- */

Test(sub, every_change_in_order)
{
	enum {
		EV = 7,
		MSGS = 300
	};
	fakepub_add_event(F, EV, 20, 30, 3, 2, 500, 100);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_eq(R->nresync, 1);
	cr_assert_eq(R->reasons[0], BOC_RESYNC_JOIN);
	assert_image_is_truth(s, EV);

	static bo_change sent[MSGS * 3];
	static uint64_t sent_seq[MSGS * 3];
	uint32_t nsent = 0;
	uint64_t seed = 42;
	for (int m = 0; m < MSGS; m++) {
		bo_change c[3];
		uint32_t n = 1 + (uint32_t)(m % 3);
		for (uint32_t i = 0; i < n; i++)
			c[i] = fakepub_random_change(F, EV, &seed);
		uint64_t seq = fakepub_publish(F, EV, c, n, false);
		for (uint32_t i = 0; i < n; i++) {
			sent_seq[nsent] = seq;
			sent[nsent++] = c[i];
		}
	}
	poll_until_caught_up(s, EV);
	assert_unbroken();
	cr_assert_eq(R->nchanges, nsent);
	for (uint32_t i = 0; i < nsent; i++) {
		cr_assert(same_change(&R->changes[i], &sent[i]), "change %u differs", i);
		cr_assert_eq(R->msgs[i].seq, sent_seq[i]);
	}
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.messages, MSGS);
	cr_assert_eq(st.applied, MSGS);
	cr_assert_eq(st.changes, nsent);
	cr_assert_eq(st.gaps + st.stale + st.malformed + st.waiting + st.injected, 0);
	cr_assert_eq(st.resyncs, 1);
	cr_assert_eq(st.fetches, 1);
	cr_assert_eq(R->nresync, 1);
	assert_image_is_truth(s, EV);
}

/* ---- 2. Gaps ---------------------------------------------------------------- */

/* Publishes n random one-change messages; the one at index skip (if < n)
 * is applied to the truth but never sent. */
static void publish_some(uint64_t event, int n, int skip, uint64_t *seed)
{
	for (int i = 0; i < n; i++) {
		bo_change c = fakepub_random_change(F, event, seed);
		fakepub_publish(F, event, &c, 1, i == skip);
	}
}

Test(sub, publisher_gap_is_repaired)
{
	enum {
		EV = 3
	};
	fakepub_add_event(F, EV, 10, 10, 2, 1, 100, 1);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	uint64_t seed = 7;
	publish_some(EV, 11, 5, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.gaps, 1, "one lost message, one gap (saw %" PRIu64 ")", st.gaps);
	cr_assert_eq(st.resyncs, 2);
	cr_assert_eq(R->nresync, 2);
	cr_assert_eq(R->reasons[1], BOC_RESYNC_GAP);
	/* The five before the gap were delivered as they came. */
	cr_assert_geq(R->nchanges, 5);
	for (uint32_t i = 0; i < 5; i++)
		cr_assert_eq(R->msgs[i].seq, 2 + i);
	/* The resync came from the truth after the lost message (seq 7). */
	cr_assert_geq(R->resync_seq[1], 7);
}

Test(sub, injected_gap_is_repaired)
{
	enum {
		EV = 4
	};
	fakepub_add_event(F, EV, 5, 8, 1, 0, 0, 50);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_eq(boc_sub_inject_gap(s, EV, 1), 0);
	cr_assert_eq(boc_sub_inject_gap(s, EV + 1, 1), -ENOENT);
	uint64_t seed = 9;
	publish_some(EV, 3, -1, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.injected, 1);
	cr_assert_eq(st.gaps, 1);
	cr_assert_eq(st.resyncs, 2);
	cr_assert_eq(R->reasons[1], BOC_RESYNC_GAP);
}

/* ---- 3. A slow subscriber ----------------------------------------------------- */

Test(sub, slow_subscriber_loses_messages_and_catches_up)
{
	enum {
		EV = 11,
		MSGS = 2000
	};
	fakepub_add_event(F, EV, 40, 25, 4, 2, 1000, 1);
	boc_sub *s = open_sub(2);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	uint64_t seed = 1234;
	publish_some(EV, MSGS, -1, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	/* 2000 messages into a buffer of 2 that nobody reads while they are
	 * sent: nng drops nearly all. (Should nng's threads have been so slow
	 * that the subscriber kept up, nothing was lost and nothing is to
	 * repair: then every message was applied.) */
	cr_log_info("slow subscriber: %" PRIu64 " of %d messages received, %" PRIu64
	            " gaps, %" PRIu64 " resyncs",
	            st.messages, MSGS, st.gaps, st.resyncs);
	if (st.messages < MSGS) {
		cr_assert_geq(st.gaps, 1);
		cr_assert_geq(st.resyncs, 2);
	} else {
		cr_assert_eq(st.applied, MSGS);
	}
	cr_assert_eq(st.malformed, 0);
}

/* ---- 4. Stale messages ------------------------------------------------------- */

Test(sub, stale_messages_are_dropped)
{
	enum {
		EV = 5
	};
	fakepub_add_event(F, EV, 4, 4, 1, 1, 10, 20);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	/* Messages the image already holds: older, the same seq, a duplicate. */
	bo_change c = {.cause = BO_CAUSE_BLOCK, .state = BO_SEAT_BLOCKED, .seat_count = 1};
	fakepub_publish_raw_msg(F, EV, 18, 19, &c, 1);
	fakepub_publish_raw_msg(F, EV, 19, 20, &c, 1);
	fakepub_publish_raw_msg(F, EV, 19, 20, &c, 1);
	bo_change real = {.cause = BO_CAUSE_HOLD,
	                  .state = BO_SEAT_HELD,
	                  .seat_count = 2,
	                  .claim_id = 77,
	                  .seats = {1, 2}};
	cr_assert_eq(fakepub_publish(F, EV, &real, 1, false), 21);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.stale, 3);
	cr_assert_eq(st.gaps, 0);
	cr_assert_eq(st.resyncs, 1);
	cr_assert_eq(R->nchanges, 1);
	cr_assert(same_change(&R->changes[0], &real));
	/* Seat 0 was never blocked: the stale messages were not applied. */
	cr_assert_eq(boc_sub_image(s, EV)->states[0], BO_SEAT_FREE);
}

/* ---- 5. Throttled ------------------------------------------------------------- */

Test(sub, throttled_event_state_is_retried_with_backoff)
{
	enum {
		EV = 6
	};
	fakepub_add_event(F, EV, 3, 3, 1, 0, 0, 9);
	boc_sub *s = open_sub(0);
	fakepub_throttle(F, 2);
	int64_t t0 = bo_clock_ms();
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_null(boc_sub_image(s, EV));
	cr_assert_eq(R->nnoimg, 1);
	cr_assert_eq(R->noimg[0].err, 0);
	cr_assert_eq(R->noimg[0].status, BO_THROTTLED);
	POLL_UNTIL_STAT(s, resyncs, 1);
	int64_t took = bo_clock_ms() - t0;
	assert_image_is_truth(s, EV);
	cr_assert_eq(R->nresync, 1);
	cr_assert_eq(R->reasons[0], BOC_RESYNC_JOIN);
	cr_assert_eq(R->nnoimg, 2);
	cr_assert_eq(R->noimg[1].status, BO_THROTTLED);
	/* The waits: in [d/2, d] for d = RETRY_MIN, then 2 * RETRY_MIN. */
	uint32_t w1 = R->noimg[0].retry_ms, w2 = R->noimg[1].retry_ms;
	cr_assert(w1 >= RETRY_MIN / 2 && w1 <= RETRY_MIN, "first wait %u", w1);
	cr_assert(w2 >= RETRY_MIN && w2 <= 2 * RETRY_MIN, "second wait %u", w2);
	cr_assert_geq(took, (int64_t)(w1 + w2), "asked again before the waits were over");
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.fetches, 3);
	cr_assert_eq(st.fetch_failures, 2);
	cr_assert_eq(st.throttled, 2);
	cr_assert_eq(fakepub_state_requests(F), 3);
}

Test(sub, no_answer_is_reported_and_holds_the_others_back)
{
	boc_sub_options o;
	boc_sub_options_default(&o);
	o.pub_url = pub_url;
	o.req_url = "inproc://sub-test-nobody";
	o.timeout_ms = 50;
	/* Waits long enough that no other event falls due between the first
	 * retry and the end of the poll that made it, however slow the run. */
	o.retry_ms_min = 400;
	o.retry_ms_max = 800;
	o.on_no_image = on_no_image;
	o.ctx = R;
	char err[256];
	cr_assert_eq(boc_sub_open(&o, &R->sub, err, sizeof(err)), 0, "%s", err);
	boc_sub *s = R->sub;
	for (uint64_t ev = 1; ev <= 3; ev++)
		cr_assert_eq(boc_sub_watch(s, ev), 0);
	cr_assert_eq(R->nnoimg, 3);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(R->noimg[i].err, BOC_ERR_TIMEOUT);
		cr_assert_eq(R->noimg[i].status, BOC_STATUS_NO_ANSWER);
		cr_assert_gt(R->noimg[i].retry_ms, 0);
	}
	/* The first retry that gets no answer pushes the other two back. */
	POLL_UNTIL_STAT(s, fetches, 4);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.fetches, 4);
	cr_assert_eq(st.fetch_failures, 4);
	cr_assert_null(boc_sub_image(s, 1));
}

/* ---- 6. Malformed messages ---------------------------------------------------- */

/* topic(event) + a map {"event": event_in_map, "prev": "x"} */
static void send_mistyped(uint64_t topic_event, uint64_t event_in_map, bool string_prev)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint8_t topic[WIRE_TOPIC_BYTES];
	wire_topic(topic_event, topic);
	msgpack_sbuffer_write(&sb, (const char *)topic, sizeof(topic));
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "event", 5);
	msgpack_pack_uint64(&pk, event_in_map);
	msgpack_pack_str_with_body(&pk, "prev", 4);
	if (string_prev)
		msgpack_pack_str_with_body(&pk, "x", 1);
	else
		msgpack_pack_uint64(&pk, 1);
	msgpack_pack_str_with_body(&pk, "seq", 3);
	msgpack_pack_uint64(&pk, 2);
	msgpack_pack_str_with_body(&pk, "at_ms", 5);
	msgpack_pack_int64(&pk, 0);
	msgpack_pack_str_with_body(&pk, "changes", 7);
	msgpack_pack_array(&pk, 0);
	fakepub_send_bytes(F, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

Test(sub, malformed_messages_are_counted_not_fatal)
{
	enum {
		EV = 8
	};
	fakepub_add_event(F, EV, 2, 5, 1, 1, 10, 30);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	uint8_t bad[WIRE_TOPIC_BYTES + 5];
	wire_topic(EV, bad);
	memcpy(bad + WIRE_TOPIC_BYTES, "\xc1\xff\x00\x93\x01", 5); /* not msgpack */
	fakepub_send_bytes(F, bad, sizeof(bad));
	fakepub_send_bytes(F, bad, WIRE_TOPIC_BYTES); /* a topic and nothing else */
	send_mistyped(EV, EV, true);                  /* "prev" a string */
	send_mistyped(EV, EV + 1, false);             /* topic and "event" differ */
	/* Decodable, but seat 10 is outside the event's 10 seats. */
	bo_change out = {.cause = BO_CAUSE_HOLD,
	                 .state = BO_SEAT_HELD,
	                 .seat_count = 2,
	                 .claim_id = 5,
	                 .seats = {0, 10}};
	fakepub_publish_raw_msg(F, EV, 30, 31, &out, 1);
	POLL_UNTIL_STAT(s, malformed, 5);
	POLL_UNTIL_STAT(s, resyncs, 2);
	cr_assert_eq(R->nchanges, 0, "nothing of a bad message is applied");
	cr_assert_eq(R->reasons[1], BOC_RESYNC_INVALID);
	assert_image_is_truth(s, EV); /* seat 0 still free */
	/* And it goes on. */
	bo_change good = {.is_pool = 1,
	                  .cause = BO_CAUSE_HOLD,
	                  .pool = 0,
	                  .quantity = 3,
	                  .pool_free = 7,
	                  .claim_id = 6};
	fakepub_publish(F, EV, &good, 1, false);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	cr_assert_eq(R->nchanges, 1);
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.messages, 6);
	cr_assert_eq(st.malformed, 5);
	cr_assert_eq(st.applied, 1);
}

/* ---- 7. The topic bound ------------------------------------------------------- */

Test(sub, topic_bound_and_unwatch)
{
	boc_sub *s = open_sub(0);
	for (uint64_t ev = 1; ev <= BO_SUB_TOPICS_MAX; ev++)
		cr_assert_eq(boc_sub_watch(s, ev), 0, "event %" PRIu64, ev);
	cr_assert_eq(boc_sub_watch(s, BO_SUB_TOPICS_MAX + 1), -ENOSPC);
	cr_assert_eq(boc_sub_watch(s, 0), -EINVAL);
	cr_assert_eq(boc_sub_watch(s, 3), 0, "watching a watched event is a no-op");
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.fetches, BO_SUB_TOPICS_MAX);
	/* None exists: each reported once, not asked again. */
	cr_assert_eq(R->nnoimg, BO_SUB_TOPICS_MAX);
	for (uint32_t i = 0; i < R->nnoimg; i++) {
		cr_assert_eq(R->noimg[i].status, BO_NOT_FOUND);
		cr_assert_eq(R->noimg[i].err, 0);
		cr_assert_eq(R->noimg[i].retry_ms, 0);
	}
	cr_assert_eq(boc_sub_poll(s, 0), 0);
	cr_assert_eq(boc_sub_unwatch(s, 1), 0);
	cr_assert_eq(boc_sub_unwatch(s, 1), -ENOENT);
	cr_assert_null(boc_sub_image(s, 1));
	cr_assert_eq(boc_sub_watch(s, BO_SUB_TOPICS_MAX + 1), 0);
	cr_assert_eq(boc_sub_watch(s, BO_SUB_TOPICS_MAX + 2), -ENOSPC);
}

/* ---- 8. Created while watched ------------------------------------------------- */

Test(sub, event_created_while_watched)
{
	enum {
		EV = 9
	};
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_eq(R->nnoimg, 1);
	cr_assert_eq(R->noimg[0].status, BO_NOT_FOUND);
	cr_assert_null(boc_sub_image(s, EV));
	fakepub_create(F, EV, 6, 6, 2, 1, 50);
	POLL_UNTIL_STAT(s, resyncs, 1);
	cr_assert_eq(R->reasons[0], BOC_RESYNC_CREATED);
	assert_image_is_truth(s, EV);
	uint64_t seed = 3;
	publish_some(EV, 4, -1, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	cr_assert_eq(R->nchanges, 4);
}

/* ---- 9. Reconnection ----------------------------------------------------------- */

Test(sub, reconnection_refetches_the_image)
{
	enum {
		EV = 12
	};
	fakepub_add_event(F, EV, 3, 10, 1, 0, 0, 1);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_eq(fakepub_restart_pub(F), 0);
	/* Published while the subscriber may be away: it may never see it. */
	uint64_t seed = 5;
	publish_some(EV, 1, -1, &seed);
	cr_assert_eq(fakepub_wait_pipes(F, 1, WAIT_MS), 0, "the subscriber did not redial");
	POLL_UNTIL_STAT(s, connects, 2);
	POLL_UNTIL_STAT(s, resyncs, 2);
	cr_assert_eq(R->reasons[1], BOC_RESYNC_RECONNECT);
	/* And the stream goes on from there. */
	publish_some(EV, 3, -1, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
}

/* ---- 10. Two events ------------------------------------------------------------- */

Test(sub, two_events_gap_in_one_and_unwatch)
{
	enum {
		A = 21,
		B = 22
	};
	fakepub_add_event(F, A, 5, 5, 1, 1, 40, 1);
	fakepub_add_event(F, B, 6, 4, 2, 0, 0, 1000);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, A), 0);
	cr_assert_eq(boc_sub_watch(s, B), 0);
	uint64_t seed = 99;
	uint32_t b_sent = 0;
	for (int i = 0; i < 40; i++) {
		bo_change c = fakepub_random_change(F, A, &seed);
		fakepub_publish(F, A, &c, 1, i == 17);
		c = fakepub_random_change(F, B, &seed);
		fakepub_publish(F, B, &c, 1, false);
		b_sent++;
	}
	poll_until_caught_up(s, A);
	poll_until_caught_up(s, B);
	assert_unbroken();
	assert_image_is_truth(s, A);
	assert_image_is_truth(s, B);
	uint32_t b_seen = 0;
	for (uint32_t i = 0; i < R->nchanges; i++)
		if (R->msgs[i].event_id == B)
			cr_assert_eq(R->msgs[i].seq, 1000 + ++b_seen);
	cr_assert_eq(b_seen, b_sent, "every change of B, in order");
	cr_assert_eq(R->nresync, 3, "A and B joined, A resynchronised once");
	boc_sub_stats st;
	boc_sub_stats_get(s, &st);
	cr_assert_eq(st.gaps, 1);

	/* Queued for A, then A unwatched: nothing of A comes out. */
	publish_some(A, 5, -1, &seed);
	publish_some(B, 1, -1, &seed);
	cr_assert_eq(boc_sub_unwatch(s, A), 0);
	uint32_t before = R->nchanges;
	poll_until_caught_up(s, B);
	cr_assert_null(boc_sub_image(s, A));
	for (uint32_t i = before; i < R->nchanges; i++)
		cr_assert_eq(R->msgs[i].event_id, B);
	boc_sub_stats_get(s, &st);
	cr_assert_leq(st.unwatched, 5);
}

/* ---- 11. The largest event ------------------------------------------------------ */

Test(sub, largest_event_image_over_ipc)
{
	enum {
		EV = 13
	};
	/* Over ipc, not inproc: only a real transport enforces receive limits. */
	fakepub_stop(F);
	snprintf(pub_url, sizeof(pub_url), "ipc:///tmp/bo-sub-test-%d-pub.ipc", (int)getpid());
	snprintf(rep_url, sizeof(rep_url), "ipc:///tmp/bo-sub-test-%d-rep.ipc", (int)getpid());
	cr_assert_eq(fakepub_start(pub_url, rep_url, &F), 0);
	fakepub_add_event(F, EV, BO_SEATS_PER_EVENT_MAX / BO_SEATS_PER_ROW_MAX,
	                  BO_SEATS_PER_ROW_MAX, BO_CATEGORIES_MAX, BO_POOLS_PER_EVENT_MAX,
	                  BO_POOL_CAPACITY_MAX, 5);
	boc_sub *s = open_sub(0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_eq(R->nnoimg, 0, "no image: %d/%d", R->noimg[0].err, R->noimg[0].status);
	cr_assert_eq(boc_sub_image(s, EV)->seat_count, BO_SEATS_PER_EVENT_MAX);
	uint64_t seed = 77;
	publish_some(EV, 20, -1, &seed);
	poll_until_caught_up(s, EV);
	assert_unbroken();
	assert_image_is_truth(s, EV);
	unlink(pub_url + strlen("ipc://"));
	unlink(rep_url + strlen("ipc://"));
}

/* ---- Options and names ---------------------------------------------------------- */

Test(sub, options_are_checked)
{
	boc_sub_options o;
	boc_sub_options_default(&o);
	o.pub_url = pub_url;
	o.req_url = rep_url;
	boc_sub *s = NULL;
	char err[256] = "";
	o.retry_ms_min = 100;
	o.retry_ms_max = 10;
	cr_assert_eq(boc_sub_open(&o, &s, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "retry") != NULL, "%s", err);
	boc_sub_options_default(&o);
	o.recv_buf = BOC_SUB_RECV_BUF_MAX + 1;
	cr_assert_eq(boc_sub_open(&o, &s, err, sizeof(err)), -EINVAL);
	boc_sub_options_default(&o);
	o.pub_url = "nonsense://x";
	cr_assert_eq(boc_sub_open(&o, &s, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "nonsense://x") != NULL, "%s", err);
	cr_assert_null(s);
	cr_assert_str_eq(boc_resync_reason_name(BOC_RESYNC_GAP), "gap");
	cr_assert_null(boc_resync_reason_name(0));
	cr_assert_str_eq(boc_cause_name(BO_CAUSE_EXPIRY), "expiry");
	cr_assert_null(boc_cause_name(BO_CAUSE_COUNT));
}
