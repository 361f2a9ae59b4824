/*
 * subscribe.c — libboxoffice-client's subscriber (boxoffice.h, "Subscriber"):
 * live images of events from the server's projection messages.
 *
 * DESIGN
 *
 *   SUB socket (topics: the watched events) ──▶ boc_sub_poll ──▶ per event:
 *                                                 apply / drop / resync
 *   REQ socket ◀── event_state ── fetch (join, gap, create, misfit, reconnect)
 *
 * One thread does everything (the caller's, inside boc_sub_watch and
 * boc_sub_poll): no locks around images, callbacks in message order. The
 * only other thread is nng's pipe callback, which counts connections under
 * `mu`.
 *
 * THE RULE, per watched event with an image at sequence S, for a message
 * (prev, seq):
 *   seq <= S          stale: the image already holds it (it was published
 *                     before the image was taken, or is a duplicate): drop
 *   prev == S         apply every change, then S = seq
 *   otherwise         a gap: fetch a new image
 * Why this needs no buffer of early messages: the topic is subscribed
 * before the image is asked for, and the fetch is synchronous, so every
 * message published after the server took the image is received after
 * the reply (nng queues it meanwhile, up to recv_buf messages) and is
 * judged against that image. A message that arrives while a fetch waits
 * for its backoff, and does not apply, is dropped: the image fetched later
 * is at least as new (the server publishes a batch after its read model
 * holds it).
 *
 * A message is checked whole against the image (every seat and pool
 * inside it) before any of it is applied, so the image is never left half
 * changed by a message that does not fit it.
 *
 * FETCHES have backoff: after a failure (no answer, throttled, busy, an
 * undecodable reply) an event waits retry_ms_min, doubling up to
 * retry_ms_max, each wait drawn in [d/2, d] so that many subscribers
 * resynchronising at once spread out; after a no-answer the other events
 * due wait as long, so a down server costs one timeout per wait, not one
 * per event. Successful fetches of one event are at least retry_ms_min
 * apart, so a subscriber too slow for its events cannot turn into a loop
 * of event_state requests.
 */
#include "boxoffice.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/clock.h"
#include "base/limits.h"
#include "protocol/projection.h"

_Static_assert(BOC_SUB_RECV_BUF_DEFAULT <= BOC_SUB_RECV_BUF_MAX, "default within bound");
_Static_assert(BOC_SUB_RETRY_MS_MIN_DEFAULT <= BOC_SUB_RETRY_MS_MAX_DEFAULT, "backoff range");

#define NS_PER_MS 1000000ll

/* The largest messages the subscriber accepts, set on its sockets so that
 * no nng default decides (and a hostile peer cannot make it buffer more).
 * An event_state reply carries a state and a category byte per seat and
 * at most 7 bytes per row ([section, seats]) plus a few hundred bytes of
 * keys and pools; a projection message at most WIRE_PROJECTION_CHANGES_MAX
 * changes of at most ~160 bytes (a seat change with 16 seat numbers of up
 * to 5 bytes, a claim, keys). */
#define SUB_IMAGE_BYTES_MAX (4u << 20)
#define SUB_MESSAGE_BYTES_MAX (2u << 20)
_Static_assert(2ull * BO_SEATS_PER_EVENT_MAX + 7ull * BO_ROWS_PER_EVENT_MAX + 4096 <
                       SUB_IMAGE_BYTES_MAX,
               "the largest event's image fits the REQ socket's limit");
_Static_assert(WIRE_TOPIC_BYTES + 160ull * WIRE_PROJECTION_CHANGES_MAX + 4096 <
                       SUB_MESSAGE_BYTES_MAX,
               "the largest projection message fits the SUB socket's limit");

/* One watched event. */
typedef struct watch {
	uint64_t event_id;
	bo_event_image im; /* valid when has_image */
	bool has_image;
	bool fetch_due;        /* an image is wanted, at next_fetch_ns */
	int reason;            /* boc_resync_reason of the wanted image */
	int64_t next_fetch_ns; /* CLOCK_MONOTONIC */
	int64_t last_image_ns; /* when the last image came (spacing) */
	uint32_t backoff_ms;   /* the last backoff; 0 after a success */
	uint64_t conn_gen;     /* s->conn_gen when its image was last asked for */
	uint32_t drop_next;    /* test hook: messages still to drop */
} watch;

struct boc_sub {
	boc_sub_options opt; /* resolved; the URLs are not kept */
	nng_socket sub, req;
	watch *w; /* [BO_SUB_TOPICS_MAX], w[0..nw) in use */
	uint32_t nw;
	bo_change *changes;      /* [WIRE_PROJECTION_CHANGES_MAX]: the decoded message */
	msgpack_sbuffer sb;      /* the event_state request */
	/* The shared token (opt.auth_token's copy; the option is not kept),
	 * sent as the auth prefix of every request; auth_len 0: none. */
	char auth[BO_AUTH_TOKEN_LEN_MAX + 1];
	size_t auth_len;
	nng_duration recv_timeo; /* NNG_OPT_RECVTIMEO last set on sub (-2: none) */
	bool in_callback;        /* asserts that callbacks do not re-enter */
	uint64_t gen_seen;       /* conn_gen when the subscriber last looked */
	uint64_t rng;            /* xorshift state for the backoff jitter */
	boc_sub_stats st;        /* st.connects is conn_gen */

	pthread_mutex_t mu; /* guards pipes and conn_gen (nng's pipe callback) */
	pthread_cond_t cv;  /* signalled when a pipe is added */
	uint32_t pipes;     /* SUB connections open */
	uint64_t conn_gen;  /* SUB connections ever made */
};

/* ---- Helpers ------------------------------------------------------------- */

static int sub_err_from_nng(int rv)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return BOC_ERR_TIMEOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return BOC_ERR_CLOSED;
	case NNG_ENOMEM:
		return BOC_ERR_NOMEM;
	default:
		return BOC_ERR_TRANSPORT;
	}
}

static nng_duration ms_until(int64_t deadline_ns)
{
	int64_t left = deadline_ns - bo_clock_ns();
	if (left <= 0)
		return 0;
	return (nng_duration)((left + NS_PER_MS - 1) / NS_PER_MS);
}

static uint64_t rng_next(boc_sub *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static watch *watch_find(const boc_sub *s, uint64_t event_id)
{
	for (uint32_t i = 0; i < s->nw; i++)
		if (s->w[i].event_id == event_id)
			return &s->w[i];
	return NULL;
}

static uint64_t conn_gen_get(boc_sub *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t g = s->conn_gen;
	pthread_mutex_unlock(&s->mu);
	return g;
}

/* nng's thread: a SUB connection came or went. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	boc_sub *s = arg;
	pthread_mutex_lock(&s->mu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		s->pipes++;
		s->conn_gen++;
		pthread_cond_broadcast(&s->cv);
	} else if (ev == NNG_PIPE_EV_REM_POST && s->pipes > 0) {
		s->pipes--;
	}
	pthread_mutex_unlock(&s->mu);
}

/* Wants a new image of w, at once (or as soon as spacing allows); a fetch
 * already wanted keeps its reason and time. */
static void want_image(boc_sub *s, watch *w, int reason)
{
	if (w->fetch_due)
		return;
	w->fetch_due = true;
	w->reason = reason;
	w->backoff_ms = 0;
	int64_t spaced = w->last_image_ns + (int64_t)s->opt.retry_ms_min * NS_PER_MS;
	int64_t now = bo_clock_ns();
	w->next_fetch_ns = w->last_image_ns != 0 && spaced > now ? spaced : now;
}

/* The next backoff of w, in ms: doubled, bounded, jittered into [d/2, d]. */
static uint32_t backoff_next(boc_sub *s, watch *w)
{
	uint32_t d = s->opt.retry_ms_min;
	if (w->backoff_ms != 0)
		d = w->backoff_ms >= s->opt.retry_ms_max / 2 ? s->opt.retry_ms_max
		                                             : w->backoff_ms * 2;
	w->backoff_ms = d;
	return d - (uint32_t)(rng_next(s) % (d / 2 + 1));
}

/* ---- Fetching images ------------------------------------------------------ */

/* One event_state round trip. Returns 0 when the server answered: *status
 * is its bo_status, *im filled when BO_OK (the caller owns it); else a
 * BOC_ERR_* and *im zeroed. why gets the text of anything but BO_OK. */
static int fetch_image(boc_sub *s, uint64_t event_id, bo_event_image *im, int *status, char *why,
                       size_t whylen)
{
	*im = (bo_event_image){0};
	*status = BO_INVALID;
	s->sb.size = 0;
	if ((s->auth_len > 0 && wire_encode_auth(s->auth, s->auth_len, &s->sb) != 0) ||
	    wire_encode_event_state_request(event_id, &s->sb) != 0) {
		snprintf(why, whylen, "out of memory");
		return BOC_ERR_NOMEM;
	}
	int64_t deadline = bo_clock_ns() + (int64_t)s->opt.timeout_ms * NS_PER_MS;
	int rv = nng_socket_set_ms(s->req, NNG_OPT_SENDTIMEO, (nng_duration)s->opt.timeout_ms);
	if (rv == 0 && (rv = nng_send(s->req, s->sb.data, s->sb.size, 0)) != 0) {
		snprintf(why, whylen, "%s",
		         rv == NNG_ETIMEDOUT ? "no connection to the server" : nng_strerror(rv));
		return sub_err_from_nng(rv);
	}
	nng_msg *m = NULL;
	if (rv == 0 && (rv = nng_socket_set_ms(s->req, NNG_OPT_RECVTIMEO, ms_until(deadline))) == 0)
		rv = nng_recvmsg(s->req, &m, 0);
	if (rv != 0) {
		snprintf(why, whylen, "%s",
		         rv == NNG_ETIMEDOUT ? "no reply from the server" : nng_strerror(rv));
		return sub_err_from_nng(rv);
	}
	wire_msg wm;
	int rc = wire_decode_event_image(nng_msg_body(m), nng_msg_len(m), im, status, &wm);
	nng_msg_free(m);
	if (rc == -ENOMEM) {
		snprintf(why, whylen, "out of memory");
		return BOC_ERR_NOMEM;
	}
	if (rc != 0) {
		snprintf(why, whylen, "undecodable event_state reply: %s", wm.error);
		return BOC_ERR_PROTOCOL;
	}
	if (*status == BO_OK && im->event_id != event_id) {
		snprintf(why, whylen, "event_state reply for event %" PRIu64 ", asked for %" PRIu64,
		         im->event_id, event_id);
		bo_event_image_free(im);
		return BOC_ERR_PROTOCOL;
	}
	if (*status != BO_OK)
		snprintf(why, whylen, "%s", wm.error[0] ? wm.error : bo_status_str(*status));
	return 0;
}

/* Asks for w's image now: installs it (on_resync) or records the failure
 * (on_no_image) and when to ask again. Returns the error of a fetch that
 * got no answer (so that the caller holds back the other events), else 0. */
static int fetch(boc_sub *s, watch *w)
{
	assert(w->fetch_due);
	uint64_t gen = conn_gen_get(s);
	bo_event_image im;
	int status = 0;
	char why[WIRE_ERROR_LEN_MAX + 64] = "";
	s->st.fetches++;
	int err = fetch_image(s, w->event_id, &im, &status, why, sizeof(why));
	if (err == 0 && status == BO_OK) {
		bo_event_image_free(&w->im);
		w->im = im;
		w->has_image = true;
		w->fetch_due = false;
		w->backoff_ms = 0;
		w->conn_gen = gen;
		w->last_image_ns = bo_clock_ns();
		s->st.resyncs++;
		if (s->opt.on_resync) {
			s->in_callback = true;
			s->opt.on_resync(s->opt.ctx, w->event_id, &w->im, w->reason);
			s->in_callback = false;
		}
		return 0;
	}
	s->st.fetch_failures++;
	uint32_t retry_ms = 0;
	if (err == 0 && status == BO_NOT_FOUND) {
		/* Nothing to ask again until a message says the event exists. */
		bo_event_image_free(&w->im);
		w->has_image = false;
		w->fetch_due = false;
		w->conn_gen = gen;
	} else {
		if (err == 0 && (status == BO_THROTTLED || status == BO_BUSY))
			s->st.throttled++;
		retry_ms = backoff_next(s, w);
		w->next_fetch_ns = bo_clock_ns() + (int64_t)retry_ms * NS_PER_MS;
	}
	if (s->opt.on_no_image) {
		s->in_callback = true;
		s->opt.on_no_image(s->opt.ctx, w->event_id, err,
		                   err == 0 ? status : (int)BOC_STATUS_NO_ANSWER, why, retry_ms);
		s->in_callback = false;
	}
	return err;
}

/* Fetches every image that is due. Returns the fetches made (each made a
 * callback). */
static int fetch_due(boc_sub *s)
{
	int n = 0;
	for (uint32_t i = 0; i < s->nw; i++) {
		watch *w = &s->w[i];
		if (!w->fetch_due || w->next_fetch_ns > bo_clock_ns())
			continue;
		n++;
		if (fetch(s, w) == 0)
			continue;
		/* No answer: the server is down or overloaded; the others wait
		 * as long instead of each costing a timeout now. */
		for (uint32_t k = 0; k < s->nw; k++)
			if (s->w[k].fetch_due && s->w[k].next_fetch_ns < w->next_fetch_ns)
				s->w[k].next_fetch_ns = w->next_fetch_ns;
		break;
	}
	return n;
}

/* After a (re)connection of the SUB socket, messages published while it
 * was away are lost and an idle event would never show it: every image
 * asked for before that connection is asked for again. */
static void note_reconnects(boc_sub *s)
{
	uint64_t gen = conn_gen_get(s);
	if (gen == s->gen_seen)
		return;
	s->gen_seen = gen;
	for (uint32_t i = 0; i < s->nw; i++) {
		watch *w = &s->w[i];
		if (!w->fetch_due && w->conn_gen < gen)
			want_image(s, w, w->has_image ? BOC_RESYNC_RECONNECT : BOC_RESYNC_JOIN);
	}
}

/* The earliest due fetch, INT64_MAX when none. */
static int64_t next_due_ns(const boc_sub *s)
{
	int64_t t = INT64_MAX;
	for (uint32_t i = 0; i < s->nw; i++)
		if (s->w[i].fetch_due && s->w[i].next_fetch_ns < t)
			t = s->w[i].next_fetch_ns;
	return t;
}

/* ---- Messages ------------------------------------------------------------ */

/* Whether every change of a decoded message lies inside image im. */
static bool changes_fit(const bo_event_image *im, const bo_change *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (c[i].is_pool) {
			if (c[i].pool >= im->pool_count ||
			    c[i].pool_free > im->pool_capacity[c[i].pool])
				return false;
			continue;
		}
		if (c[i].state >= BO_SEAT_STATE_COUNT || c[i].seat_count > BO_SEATS_PER_HOLD_MAX)
			return false;
		for (uint32_t k = 0; k < c[i].seat_count; k++)
			if (c[i].seats[k] >= im->seat_count)
				return false;
	}
	return true;
}

/* Applies a message that fits w's image, a callback per change. Returns
 * the changes applied. */
static int apply(boc_sub *s, watch *w, const wire_projection *h)
{
	boc_sub_msg m = {.event_id = h->event_id,
	                 .prev_seq = h->prev_seq,
	                 .seq = h->seq,
	                 .at_ms = h->at_ms,
	                 .pub_us = h->pub_us,
	                 .change_count = h->count};
	for (uint32_t i = 0; i < h->count; i++) {
		const bo_change *c = &s->changes[i];
		if (c->is_pool) {
			w->im.pool_free[c->pool] = c->pool_free;
		} else {
			for (uint32_t k = 0; k < c->seat_count; k++)
				w->im.states[c->seats[k]] = c->state;
		}
		if (i + 1 == h->count)
			w->im.seq = h->seq;
		if (s->opt.on_change) {
			m.change_index = i;
			s->in_callback = true;
			s->opt.on_change(s->opt.ctx, &m, c, &w->im);
			s->in_callback = false;
		}
	}
	s->st.applied++;
	s->st.changes += h->count;
	return (int)h->count;
}

static bool has_create(const bo_change *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (c[i].cause == BO_CAUSE_CREATE)
			return true;
	return false;
}

/* Judges one received message by the rule at the top. Returns the changes
 * it applied. */
static int handle_message(boc_sub *s, const uint8_t *buf, size_t len)
{
	s->st.messages++;
	wire_projection h;
	wire_msg wm;
	if (wire_decode_projection(buf, len, &h, s->changes, WIRE_PROJECTION_CHANGES_MAX, &wm) !=
	    0) {
		s->st.malformed++;
		return 0;
	}
	watch *w = watch_find(s, h.event_id);
	if (w == NULL) {
		s->st.unwatched++;
		return 0;
	}
	if (w->drop_next > 0) {
		w->drop_next--;
		s->st.injected++;
		return 0;
	}
	if (w->has_image && h.seq <= w->im.seq) {
		s->st.stale++;
		return 0;
	}
	bool follows = w->has_image && h.prev_seq == w->im.seq;
	if (w->fetch_due && !follows) {
		/* The image on its way is at least this new. */
		s->st.waiting++;
		return 0;
	}
	if (has_create(s->changes, h.count)) {
		want_image(s, w, BOC_RESYNC_CREATED);
		return 0;
	}
	if (!follows) {
		s->st.gaps++;
		want_image(s, w, w->has_image ? BOC_RESYNC_GAP : BOC_RESYNC_JOIN);
		return 0;
	}
	if (!changes_fit(&w->im, s->changes, h.count)) {
		s->st.malformed++;
		want_image(s, w, BOC_RESYNC_INVALID);
		return 0;
	}
	return apply(s, w, &h);
}

/* Takes one message from the SUB socket, waiting up to wait_ns (<= 0: only
 * one already there), and handles it; *events counts the changes. Returns
 * 1 (a message), 0 (none) or BOC_ERR_TRANSPORT. */
static int recv_one(boc_sub *s, int64_t wait_ns, int *events)
{
	nng_msg *m = NULL;
	int rv;
	if (wait_ns <= 0) {
		rv = nng_recvmsg(s->sub, &m, NNG_FLAG_NONBLOCK);
	} else {
		nng_duration ms = (nng_duration)((wait_ns + NS_PER_MS - 1) / NS_PER_MS);
		if (ms != s->recv_timeo && nng_socket_set_ms(s->sub, NNG_OPT_RECVTIMEO, ms) == 0)
			s->recv_timeo = ms;
		rv = nng_recvmsg(s->sub, &m, 0);
	}
	if (rv == NNG_EAGAIN || rv == NNG_ETIMEDOUT)
		return 0;
	if (rv != 0)
		return BOC_ERR_TRANSPORT;
	*events += handle_message(s, nng_msg_body(m), nng_msg_len(m));
	nng_msg_free(m);
	return 1;
}

/* ---- API ----------------------------------------------------------------- */

void boc_sub_options_default(boc_sub_options *opt)
{
	assert(opt != NULL);
	memset(opt, 0, sizeof(*opt));
	opt->timeout_ms = BOC_SUB_TIMEOUT_MS_DEFAULT;
	opt->retry_ms_min = BOC_SUB_RETRY_MS_MIN_DEFAULT;
	opt->retry_ms_max = BOC_SUB_RETRY_MS_MAX_DEFAULT;
	opt->recv_buf = BOC_SUB_RECV_BUF_DEFAULT;
}

/* Zero fields -> defaults, then the bounds. NULL or why. */
static const char *sub_options_resolve(const boc_sub_options *in, boc_sub_options *o)
{
	boc_sub_options_default(o);
	if (in != NULL) {
		o->on_change = in->on_change;
		o->on_resync = in->on_resync;
		o->on_no_image = in->on_no_image;
		o->ctx = in->ctx;
		if (in->timeout_ms)
			o->timeout_ms = in->timeout_ms;
		if (in->retry_ms_min)
			o->retry_ms_min = in->retry_ms_min;
		if (in->retry_ms_max)
			o->retry_ms_max = in->retry_ms_max;
		if (in->recv_buf)
			o->recv_buf = in->recv_buf;
		o->auth_token = in->auth_token;
	}
	if (o->auth_token != NULL && strlen(o->auth_token) > BO_AUTH_TOKEN_LEN_MAX)
		return "auth_token longer than BO_AUTH_TOKEN_LEN_MAX bytes";
	if (o->timeout_ms > BOC_TIMEOUT_MS_MAX)
		return "timeout_ms out of range";
	if (o->retry_ms_min > o->retry_ms_max || o->retry_ms_max > BOC_TIMEOUT_MS_MAX)
		return "retry_ms_min/retry_ms_max out of range";
	if (o->recv_buf > BOC_SUB_RECV_BUF_MAX)
		return "recv_buf out of range";
	return NULL;
}

/* nng's dial errors as the API's: a URL it does not take is -EINVAL. */
static int dial_err(int rv)
{
	return rv == NNG_EINVAL || rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? -EINVAL
	                                                                     : sub_err_from_nng(rv);
}

static int sub_sockets_open(boc_sub *s, const char *pub_url, const char *req_url, char *why,
                            size_t whylen)
{
	int rv = nng_sub0_open(&s->sub);
	if (rv == 0)
		rv = nng_socket_set_int(s->sub, NNG_OPT_RECVBUF, (int)s->opt.recv_buf);
	if (rv == 0)
		rv = nng_socket_set_size(s->sub, NNG_OPT_RECVMAXSZ, SUB_MESSAGE_BYTES_MAX);
	if (rv == 0)
		rv = nng_pipe_notify(s->sub, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
	if (rv == 0)
		rv = nng_pipe_notify(s->sub, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	if (rv != 0) {
		snprintf(why, whylen, "SUB socket: %s", nng_strerror(rv));
		return sub_err_from_nng(rv);
	}
	if ((rv = nng_dial(s->sub, pub_url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(why, whylen, "publisher URL '%s': %s", pub_url, nng_strerror(rv));
		return dial_err(rv);
	}
	if ((rv = nng_req0_open(&s->req)) == 0)
		rv = nng_socket_set_ms(s->req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv == 0)
		rv = nng_socket_set_size(s->req, NNG_OPT_RECVMAXSZ, SUB_IMAGE_BYTES_MAX);
	if (rv != 0) {
		snprintf(why, whylen, "REQ socket: %s", nng_strerror(rv));
		return sub_err_from_nng(rv);
	}
	if ((rv = nng_dial(s->req, req_url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(why, whylen, "server URL '%s': %s", req_url, nng_strerror(rv));
		return dial_err(rv);
	}
	return 0;
}

int boc_sub_open(const boc_sub_options *opt, boc_sub **out, char *err, size_t errlen)
{
	assert(out != NULL && (err != NULL || errlen == 0));
	*out = NULL;
	char why[BOC_TEXT_LEN_MAX + 64] = "";
	boc_sub_options o;
	const char *bad = sub_options_resolve(opt, &o);
	if (bad != NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "%s", bad);
		return -EINVAL;
	}
	const char *pub_url = opt && opt->pub_url ? opt->pub_url : BOC_SUB_PUB_URL_DEFAULT;
	const char *req_url = opt && opt->req_url ? opt->req_url : BOC_SUB_REQ_URL_DEFAULT;
	boc_sub *s = calloc(1, sizeof(*s));
	if (s == NULL || !(s->w = calloc(BO_SUB_TOPICS_MAX, sizeof(*s->w))) ||
	    !(s->changes = calloc(WIRE_PROJECTION_CHANGES_MAX, sizeof(*s->changes)))) {
		if (s != NULL) {
			free(s->w);
			free(s);
		}
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->opt = o;
	if (o.auth_token != NULL) {
		s->auth_len = strlen(o.auth_token);
		memcpy(s->auth, o.auth_token, s->auth_len);
	}
	s->opt.auth_token = NULL; /* the caller's memory: not kept */
	s->recv_timeo = -2;
	msgpack_sbuffer_init(&s->sb);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (getrandom(&s->rng, sizeof(s->rng), 0) != (ssize_t)sizeof(s->rng) || s->rng == 0)
		s->rng = (uint64_t)bo_clock_ns() | 1u;
	int rc = sub_sockets_open(s, pub_url, req_url, why, sizeof(why));
	if (rc != 0) {
		boc_sub_close(s);
		if (errlen > 0)
			snprintf(err, errlen, "%s", why);
		return rc;
	}
	*out = s;
	return 0;
}

int boc_sub_wait_connected(boc_sub *s, uint32_t timeout_ms)
{
	assert(s != NULL);
	int64_t deadline = bo_clock_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * NS_PER_MS;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	while (s->pipes == 0 && bo_clock_ns() < deadline)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	int rc = s->pipes > 0 ? 0 : BOC_ERR_TIMEOUT;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int boc_sub_watch(boc_sub *s, uint64_t event_id)
{
	assert(s != NULL && !s->in_callback);
	if (event_id == 0)
		return -EINVAL;
	if (watch_find(s, event_id) != NULL)
		return 0;
	if (s->nw == BO_SUB_TOPICS_MAX)
		return -ENOSPC;
	uint8_t topic[WIRE_TOPIC_BYTES];
	wire_topic(event_id, topic);
	/* The topic first: a message published after the image is taken
	 * must be received (see THE RULE at the top). */
	int rv = nng_socket_set(s->sub, NNG_OPT_SUB_SUBSCRIBE, topic, sizeof(topic));
	if (rv != 0)
		return rv == NNG_ENOMEM ? -ENOMEM : BOC_ERR_TRANSPORT;
	watch *w = &s->w[s->nw++];
	memset(w, 0, sizeof(*w));
	w->event_id = event_id;
	want_image(s, w, BOC_RESYNC_JOIN);
	fetch(s, w);
	return 0;
}

int boc_sub_unwatch(boc_sub *s, uint64_t event_id)
{
	assert(s != NULL && !s->in_callback);
	watch *w = watch_find(s, event_id);
	if (w == NULL)
		return -ENOENT;
	uint8_t topic[WIRE_TOPIC_BYTES];
	wire_topic(event_id, topic);
	/* Fails only for a topic not subscribed, which w proves it is. */
	int rv = nng_socket_set(s->sub, NNG_OPT_SUB_UNSUBSCRIBE, topic, sizeof(topic));
	assert(rv == 0);
	(void)rv;
	bo_event_image_free(&w->im);
	*w = s->w[--s->nw];
	return 0;
}

int boc_sub_poll(boc_sub *s, uint32_t timeout_ms)
{
	assert(s != NULL && !s->in_callback);
	int64_t deadline = bo_clock_ns() + (int64_t)timeout_ms * NS_PER_MS;
	int events = 0;
	for (;;) {
		note_reconnects(s);
		events += fetch_due(s);
		int64_t now = bo_clock_ns();
		int64_t wait = events > 0 ? 0 : deadline - now;
		int64_t due = next_due_ns(s);
		if (due != INT64_MAX && due - now < wait)
			wait = due - now;
		int got = recv_one(s, wait, &events);
		/* Then what is already queued, bounded so a firehose still
		 * lets the caller run. */
		for (uint32_t k = 1; got > 0 && k < BOC_SUB_RECV_BUF_MAX; k++)
			got = recv_one(s, 0, &events);
		if (got < 0)
			return got;
		if (events > 0) {
			/* Gaps those messages revealed are repaired now. */
			note_reconnects(s);
			return events + fetch_due(s);
		}
		if (bo_clock_ns() >= deadline)
			return 0;
	}
}

const bo_event_image *boc_sub_image(const boc_sub *s, uint64_t event_id)
{
	assert(s != NULL);
	const watch *w = watch_find(s, event_id);
	return w != NULL && w->has_image ? &w->im : NULL;
}

void boc_sub_stats_get(const boc_sub *s, boc_sub_stats *out)
{
	assert(s != NULL && out != NULL);
	*out = s->st;
	out->connects = conn_gen_get((boc_sub *)s);
}

int boc_sub_inject_gap(boc_sub *s, uint64_t event_id, uint32_t messages)
{
	assert(s != NULL);
	watch *w = watch_find(s, event_id);
	if (w == NULL)
		return -ENOENT;
	w->drop_next = messages;
	return 0;
}

void boc_sub_close(boc_sub *s)
{
	if (s == NULL)
		return;
	assert(!s->in_callback);
	/* nng_close returns after the pipes and their callbacks are gone,
	 * so mu is unused from here on. */
	if (nng_socket_id(s->sub) > 0)
		nng_close(s->sub);
	if (nng_socket_id(s->req) > 0)
		nng_close(s->req);
	for (uint32_t i = 0; i < s->nw; i++)
		bo_event_image_free(&s->w[i].im);
	if (s->sb.data != NULL)
		explicit_bzero(s->sb.data, s->sb.size); /* it held the token */
	msgpack_sbuffer_destroy(&s->sb);
	explicit_bzero(s->auth, sizeof(s->auth));
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->changes);
	free(s->w);
	free(s);
}

const char *boc_resync_reason_name(int reason)
{
	switch (reason) {
	case BOC_RESYNC_JOIN:
		return "join";
	case BOC_RESYNC_GAP:
		return "gap";
	case BOC_RESYNC_CREATED:
		return "created";
	case BOC_RESYNC_INVALID:
		return "invalid";
	case BOC_RESYNC_RECONNECT:
		return "reconnect";
	default:
		return NULL;
	}
}

const char *boc_cause_name(int cause)
{
	return cause > BO_CAUSE_NONE && cause < BO_CAUSE_COUNT ? bo_cause_str(cause) : NULL;
}
