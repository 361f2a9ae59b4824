/*
 * client.c — libboxoffice-client: batching nng REQ client (boxoffice.h).
 *
 * DESIGN
 *
 *   submitters ──lock──▶ queue (ring of queue_max entries, FIFO)
 *                            │ flusher thread: when batch_max are queued, or
 *                            │ linger_us after the oldest was queued, and a
 *                            ▼ slot is free
 *                        slot[inflight_max]: nng ctx + aio + its batch
 *                            │ encode one array message, ctx send, ctx recv
 *                            ▼ (nng worker thread)
 *                        decode replies, match them to the batch by position
 *                        (REQ/REP keeps order), check echoed request ids,
 *                        call each entry's callback, free the slot
 *
 * Only the mutex-protected counters (queue head/length, free slots, flags)
 * are shared; a slot's batch is touched by one party at a time: the flusher
 * while it fills and sends it, then the aio callback, then (after
 * nng_aio_stop) boc_close. A slot goes back to the free list only after its
 * callbacks ran, so "every callback exactly once" is a property of the slot
 * life cycle: FREE -> (flusher) SENDING -> (aio) RECEIVING -> deliver -> FREE.
 *
 * TIMEOUTS
 *
 * Each entry records when it was submitted. A batch's deadline is its
 * oldest entry's submit time + timeout_ms; entries already past it when the
 * flusher takes them fail at once, the rest bound the nng send (which waits
 * for a connected pipe: a down server shows up here) and the receive. So a
 * callback runs at most about timeout_ms after its boc_submit, whatever the
 * server does. REQ resends are disabled: a silent resend would double the
 * load on an overloaded server, and retrying is the caller's decision (with
 * the same request id, which the server's idempotency window makes safe).
 *
 * Taking entries out of the ring without holding the lock for the copy:
 * the flusher advances the head under the lock and counts the taken entries
 * in `taking` until it has copied them; submitters count `taking` as used,
 * so they never overwrite entries being copied.
 */
#include "boxoffice.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/clock.h"
#include "protocol/wire.h"

_Static_assert(BOC_BATCH_MAX_DEFAULT == WIRE_BATCH_MAX, "a default batch is a full message");
_Static_assert(BOC_TEXT_LEN_MAX >= WIRE_ERROR_LEN_MAX, "a reply's error text fits");
_Static_assert(BOC_SHARDS_MAX == WIRE_STATUS_SHARDS_MAX, "a server_status reply fits");
_Static_assert(BOC_REASON_LEN_MAX == WIRE_REASON_LEN_MAX, "a committer's reason fits");
_Static_assert(BOC_VERSION_LEN_MAX == WIRE_SERVER_VERSION_LEN_MAX, "the server version fits");
_Static_assert((int)BOC_COMMITTER_OFF == (int)WIRE_COMMITTER_OFF &&
                       (int)BOC_COMMITTER_STARTING == (int)WIRE_COMMITTER_STARTING &&
                       (int)BOC_COMMITTER_RUNNING == (int)WIRE_COMMITTER_RUNNING &&
                       (int)BOC_COMMITTER_RETRYING == (int)WIRE_COMMITTER_RETRYING &&
                       (int)BOC_COMMITTER_STOPPED == (int)WIRE_COMMITTER_STOPPED,
               "committer states are the wire's");
_Static_assert(BOC_STATUS_NO_ANSWER >= BO_STATUS_COUNT && BOC_STATUS_NO_ANSWER <= UINT8_MAX,
               "no-answer status is no bo_status and fits bo_result.status");

/* One submitted command waiting for its outcome. */
typedef struct entry {
	bo_cmd cmd;        /* copy of the caller's command, ids filled in */
	boc_callback cb;   /* may be NULL */
	void *ctx;         /* cb's argument */
	int64_t submit_ns; /* CLOCK_MONOTONIC at boc_submit: starts its timeout */
} entry;

enum slot_phase {
	SLOT_FREE = 0,
	SLOT_SENDING,
	SLOT_RECEIVING
};

/* One message in flight: an nng context and the batch it carries. */
typedef struct slot {
	struct boc_client *client;
	nng_ctx ctx;
	nng_aio *aio;
	int phase;             /* slot_phase; FREE only under client->mu */
	uint32_t n;            /* entries in e[] */
	int64_t deadline_ns;   /* oldest entry's submit + timeout */
	entry *e;              /* [batch_max] */
	bo_result *res;        /* [batch_max] decoded replies */
	wire_reply_info *info; /* [batch_max] */
	msgpack_sbuffer sbuf;  /* encoded request, reused */
	struct slot *next_free;
} slot;

struct boc_client {
	boc_options opt;
	nng_socket sock;
	nng_dialer dialer;

	pthread_mutex_t mu;
	pthread_cond_t flush_cv; /* flusher waits: queue due, slot freed, closing */
	pthread_cond_t idle_cv;  /* boc_close waits: queue empty and all slots free */
	/* Under mu: */
	entry *q;          /* [queue_max] ring */
	uint32_t q_head;   /* oldest queued */
	uint32_t q_len;    /* queued, not taken */
	uint32_t q_taking; /* taken by the flusher, still being copied */
	slot *free_slots;  /* stack of SLOT_FREE slots */
	uint32_t slots_busy;
	bool closing;  /* boc_close began: refuse submits, flush without linger */
	bool stopping; /* boc_close stops the flusher and the aios */

	slot *slots; /* [inflight_max] */
	pthread_t flusher;
	/* The auth prefix sent in front of every message ({"auth": token},
	 * schemas/protocol.md section 17); auth_len 0: none. Written at
	 * boc_open only. */
	uint8_t auth[BO_AUTH_TOKEN_LEN_MAX + 16];
	size_t auth_len;
	uint64_t request_base;
	/* Relaxed everywhere: ids only need to be distinct, and the counters
	 * are statistics that order nothing. */
	_Atomic uint64_t request_seq;
	_Atomic uint64_t st_submitted, st_messages, st_cmds_sent, st_replies, st_failures, st_busy;
};

/* ---- Helpers ------------------------------------------------------------- */

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	return ts;
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
		/* No entropy syscall (old kernel, seccomp): time and address
		 * still make collisions between clients unlikely. */
		v = (uint64_t)bo_clock_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&v;
	}
	return v;
}

static int err_from_nng(int rv)
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

/* The text a failed nng operation gives the caller. */
static const char *nng_why(int rv, const char *timeout_text)
{
	if (rv == NNG_ETIMEDOUT)
		return timeout_text;
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return "client closed before the reply";
	return nng_strerror(rv);
}

/* Calls one entry's callback with a client error. */
static void fail_entry(boc_client *c, const entry *en, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void fail_entry(boc_client *c, const entry *en, int err, const char *fmt, ...)
{
	assert(err < 0);
	atomic_fetch_add_explicit(&c->st_failures, 1, memory_order_relaxed);
	if (en->cb == NULL)
		return;
	bo_result r;
	memset(&r, 0, sizeof(r));
	r.op = en->cmd.op;
	r.status = BOC_STATUS_NO_ANSWER;
	r.client_id = en->cmd.client_id;
	r.request_id = en->cmd.request_id;
	r.event_id = en->cmd.event_id;
	char text[BOC_TEXT_LEN_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	en->cb(en->ctx, err, &r, text);
}

static void fail_range(boc_client *c, const entry *e, uint32_t n, int err, const char *why)
{
	for (uint32_t i = 0; i < n; i++)
		fail_entry(c, &e[i], err, "%s", why);
}

/* Returns a slot whose callbacks have all run to the free list. */
static void slot_release(slot *s)
{
	boc_client *c = s->client;
	pthread_mutex_lock(&c->mu);
	assert(s->phase != SLOT_FREE && c->slots_busy > 0);
	s->phase = SLOT_FREE;
	s->n = 0;
	s->next_free = c->free_slots;
	c->free_slots = s;
	c->slots_busy--;
	pthread_cond_signal(&c->flush_cv);
	if (c->closing)
		pthread_cond_broadcast(&c->idle_cv);
	pthread_mutex_unlock(&c->mu);
}

static void slot_fail_all(slot *s, int err, const char *why)
{
	fail_range(s->client, s->e, s->n, err, why);
	s->n = 0;
}

static nng_duration ms_left(int64_t deadline_ns)
{
	int64_t left = deadline_ns - bo_clock_ns();
	if (left <= 0)
		return NNG_DURATION_ZERO;
	return (nng_duration)((left + 999999) / 1000000);
}

/* ---- Replies ------------------------------------------------------------- */

/* Matches the decoded reply message to the slot's batch and calls every
 * callback. The server answers an array request with an array of the same
 * length and order; a message-level answer (one map: the server shed or
 * refused the whole message) applies to every command. */
static void slot_deliver(slot *s, nng_msg *msg)
{
	boc_client *c = s->client;
	wire_msg m;
	int rv = wire_decode_replies(nng_msg_body(msg), nng_msg_len(msg), s->res, s->info,
	                             c->opt.batch_max, &m);
	if (rv != 0) {
		char why[WIRE_ERROR_LEN_MAX + 32]; /* fail_entry cuts it to the text size */
		snprintf(why, sizeof(why), "undecodable reply: %s", m.error);
		slot_fail_all(s, BOC_ERR_PROTOCOL, why);
		return;
	}
	bool whole = !m.is_array && m.count == 1 && s->res[0].status != BO_OK;
	if (!whole && (!m.is_array || m.count != s->n)) {
		char why[BOC_TEXT_LEN_MAX];
		snprintf(why, sizeof(why), "reply has %" PRIu32 " answers for %" PRIu32 " commands",
		         m.count, s->n);
		slot_fail_all(s, BOC_ERR_PROTOCOL, why);
		return;
	}
	for (uint32_t i = 0; i < s->n; i++) {
		const entry *en = &s->e[i];
		bo_result r = s->res[whole ? 0 : i];
		const wire_reply_info *inf = &s->info[whole ? 0 : i];
		if (whole || inf->malformed) {
			/* The server could not read this command (or the message):
			 * it echoes nothing, so the ids come from the command. */
			r.op = en->cmd.op;
			r.client_id = en->cmd.client_id;
			r.request_id = en->cmd.request_id;
			r.event_id = en->cmd.event_id;
		} else if (r.request_id != en->cmd.request_id || r.op != en->cmd.op) {
			fail_entry(c, en, BOC_ERR_PROTOCOL,
			           "reply %" PRIu32 " answers request %" PRIu64 ", sent %" PRIu64,
			           i, r.request_id, en->cmd.request_id);
			continue;
		}
		atomic_fetch_add_explicit(&c->st_replies, 1, memory_order_relaxed);
		if (en->cb != NULL)
			en->cb(en->ctx, 0, &r, inf->error);
	}
	s->n = 0;
}

/* nng calls this when the slot's send or receive completes. */
static void slot_aio_cb(void *arg)
{
	slot *s = arg;
	boc_client *c = s->client;
	int rv = nng_aio_result(s->aio);
	if (s->phase == SLOT_SENDING) {
		if (rv != 0) {
			/* The message is still ours when a send fails. */
			nng_msg *msg = nng_aio_get_msg(s->aio);
			if (msg != NULL)
				nng_msg_free(msg);
			nng_aio_set_msg(s->aio, NULL);
			slot_fail_all(s, err_from_nng(rv),
			              nng_why(rv, "no connection to the server"));
			slot_release(s);
			return;
		}
		pthread_mutex_lock(&c->mu);
		bool stopping = c->stopping;
		pthread_mutex_unlock(&c->mu);
		if (stopping) {
			slot_fail_all(s, BOC_ERR_CLOSED, "client closed before the reply");
			slot_release(s);
			return;
		}
		s->phase = SLOT_RECEIVING;
		nng_aio_set_timeout(s->aio, ms_left(s->deadline_ns));
		nng_ctx_recv(s->ctx, s->aio);
		return;
	}
	assert(s->phase == SLOT_RECEIVING);
	if (rv != 0) {
		slot_fail_all(s, err_from_nng(rv), nng_why(rv, "no reply from the server"));
		slot_release(s);
		return;
	}
	nng_msg *msg = nng_aio_get_msg(s->aio);
	nng_aio_set_msg(s->aio, NULL);
	slot_deliver(s, msg);
	nng_msg_free(msg);
	slot_release(s);
}

/* ---- Sending (flusher thread) -------------------------------------------- */

/* Encodes e[0..n) as one array into sbuf. On -EINVAL (a command without an
 * encoding, or the message would exceed WIRE_MSG_MAX) finds the commands
 * that cannot be encoded alone, fails them and retries with the rest. */
static int slot_encode(slot *s)
{
	boc_client *c = s->client;
	s->sbuf.size = 0;
	/* bo_cmd is inside entry: encode from a packed array of commands.
	 * res[] is free until the reply comes, and is at least as large. */
	_Static_assert(sizeof(bo_result) >= sizeof(bo_cmd), "res[] can hold the commands");
	bo_cmd *cmds = (bo_cmd *)(void *)s->res;
	for (uint32_t i = 0; i < s->n; i++)
		cmds[i] = s->e[i].cmd;
	int rv = wire_encode_request(cmds, s->n, 1, &s->sbuf);
	if (rv != -EINVAL)
		return rv;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		s->sbuf.size = 0;
		if (wire_encode_request(&s->e[i].cmd, 1, 1, &s->sbuf) == -EINVAL) {
			fail_entry(c, &s->e[i], BOC_ERR_INVALID, "command has no wire encoding");
			continue;
		}
		s->e[kept] = s->e[i];
		cmds[kept++] = s->e[i].cmd;
	}
	s->n = kept;
	s->sbuf.size = 0;
	if (kept == 0)
		return 0;
	return wire_encode_request(cmds, kept, 1, &s->sbuf);
}

/* Sends the slot's batch (flusher thread, slot owned, lock not held). */
static void slot_send(slot *s)
{
	boc_client *c = s->client;
	int64_t now = bo_clock_ns();
	int64_t timeout_ns = (int64_t)c->opt.timeout_ms * 1000000;
	/* The queue is FIFO: entries past their deadline are at the front. */
	uint32_t expired = 0;
	while (expired < s->n && s->e[expired].submit_ns + timeout_ns <= now)
		expired++;
	if (expired > 0) {
		fail_range(c, s->e, expired, BOC_ERR_TIMEOUT,
		           "timed out in the local queue (all connections busy)");
		memmove(s->e, s->e + expired, (size_t)(s->n - expired) * sizeof(entry));
		s->n -= expired;
	}
	if (s->n == 0) {
		slot_release(s);
		return;
	}
	s->deadline_ns = s->e[0].submit_ns + timeout_ns;
	int rv = slot_encode(s);
	if (rv != 0 || s->n == 0) {
		if (rv == -EINVAL)
			slot_fail_all(s, BOC_ERR_INVALID, "batch exceeds the message size limit");
		else if (rv != 0)
			slot_fail_all(s, BOC_ERR_NOMEM, "out of memory encoding the request");
		slot_release(s);
		return;
	}
	nng_msg *msg = NULL;
	if ((rv = nng_msg_alloc(&msg, c->auth_len + s->sbuf.size)) != 0) {
		slot_fail_all(s, err_from_nng(rv), nng_strerror(rv));
		slot_release(s);
		return;
	}
	memcpy(nng_msg_body(msg), c->auth, c->auth_len);
	memcpy((uint8_t *)nng_msg_body(msg) + c->auth_len, s->sbuf.data, s->sbuf.size);
	atomic_fetch_add_explicit(&c->st_messages, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->st_cmds_sent, s->n, memory_order_relaxed);
	s->phase = SLOT_SENDING;
	nng_aio_set_msg(s->aio, msg);
	nng_aio_set_timeout(s->aio, ms_left(s->deadline_ns));
	nng_ctx_send(s->ctx, s->aio);
}

/* The batching decision: a message leaves when it is full (batch_max), when
 * its oldest command has waited linger_us (bounded latency cost of
 * batching), or at once when the client is closing. Waiting only while a
 * slot is free means that under load (all slots busy) batches grow on their
 * own while replies are outstanding, without any linger. */
static void *flusher_main(void *arg)
{
	boc_client *c = arg;
	int64_t linger_ns = (int64_t)c->opt.linger_us * 1000;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->stopping)
			break;
		if (c->q_len == 0 || c->free_slots == NULL) {
			pthread_cond_wait(&c->flush_cv, &c->mu);
			continue;
		}
		int64_t due = c->q[c->q_head].submit_ns + linger_ns;
		if (!c->closing && c->q_len < c->opt.batch_max && bo_clock_ns() < due) {
			struct timespec ts = ns_to_ts(due);
			pthread_cond_timedwait(&c->flush_cv, &c->mu, &ts);
			continue;
		}
		slot *s = c->free_slots;
		c->free_slots = s->next_free;
		c->slots_busy++;
		s->phase = SLOT_SENDING;
		uint32_t n = c->q_len < c->opt.batch_max ? c->q_len : c->opt.batch_max;
		uint32_t start = c->q_head;
		c->q_head = (c->q_head + n) % c->opt.queue_max;
		c->q_len -= n;
		c->q_taking = n;
		pthread_mutex_unlock(&c->mu);

		/* Copy outside the lock: submitters keep queueing meanwhile. */
		uint32_t first = c->opt.queue_max - start < n ? c->opt.queue_max - start : n;
		memcpy(s->e, &c->q[start], (size_t)first * sizeof(entry));
		memcpy(s->e + first, c->q, (size_t)(n - first) * sizeof(entry));
		s->n = n;

		pthread_mutex_lock(&c->mu);
		c->q_taking = 0;
		pthread_mutex_unlock(&c->mu);
		slot_send(s);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- Public API ---------------------------------------------------------- */

void boc_options_default(boc_options *opt)
{
	assert(opt != NULL);
	memset(opt, 0, sizeof(*opt));
	opt->linger_us = BOC_LINGER_US_DEFAULT;
	opt->batch_max = BOC_BATCH_MAX_DEFAULT;
	opt->inflight_max = BOC_INFLIGHT_MAX_DEFAULT;
	opt->queue_max = BOC_BATCH_MAX_DEFAULT * BOC_INFLIGHT_MAX_DEFAULT * 2;
	opt->timeout_ms = BOC_TIMEOUT_MS_DEFAULT;
}

/* Fills defaults into zero fields and checks ranges. */
static int options_resolve(const boc_options *in, boc_options *o)
{
	boc_options_default(o);
	if (in == NULL)
		return 0;
	o->linger_us = in->linger_zero ? 0 : in->linger_us ? in->linger_us : o->linger_us;
	o->linger_zero = in->linger_zero;
	if (in->batch_max)
		o->batch_max = in->batch_max;
	if (in->inflight_max)
		o->inflight_max = in->inflight_max;
	o->queue_max = in->queue_max ? in->queue_max : o->batch_max * o->inflight_max * 2;
	if (in->timeout_ms)
		o->timeout_ms = in->timeout_ms;
	o->client_id = in->client_id;
	o->auth_token = in->auth_token;
	if (o->auth_token != NULL && strlen(o->auth_token) > BO_AUTH_TOKEN_LEN_MAX)
		return -EINVAL;
	if (o->linger_us > BOC_LINGER_US_MAX || o->batch_max > WIRE_BATCH_MAX ||
	    o->inflight_max > BOC_INFLIGHT_MAX_MAX || o->queue_max < o->batch_max ||
	    o->queue_max > BOC_QUEUE_MAX_MAX || o->timeout_ms > BOC_TIMEOUT_MS_MAX)
		return -EINVAL;
	return 0;
}

/* Encodes the auth prefix of c->opt.auth_token (checked by
 * options_resolve) into c->auth, and forgets the caller's pointer. */
static int auth_prefix(boc_client *c)
{
	const char *tok = c->opt.auth_token;
	c->opt.auth_token = NULL;
	c->auth_len = 0;
	if (tok == NULL || tok[0] == '\0')
		return 0;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rv = wire_encode_auth(tok, strlen(tok), &sb);
	assert(rv != -EINVAL); /* its length was checked */
	if (rv == 0 && sb.size <= sizeof(c->auth)) {
		memcpy(c->auth, sb.data, sb.size);
		c->auth_len = sb.size;
	}
	if (sb.data != NULL)
		explicit_bzero(sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

static void client_free_mem(boc_client *c)
{
	if (c->slots != NULL) {
		for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
			free(c->slots[i].e);
			free(c->slots[i].res);
			free(c->slots[i].info);
			msgpack_sbuffer_destroy(&c->slots[i].sbuf);
		}
	}
	free(c->slots);
	free(c->q);
	explicit_bzero(c->auth, sizeof(c->auth));
	free(c);
}

int boc_open(const char *url, const boc_options *opt, boc_client **out)
{
	assert(url != NULL && out != NULL);
	*out = NULL;
	boc_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (options_resolve(opt, &c->opt) != 0) {
		free(c);
		return -EINVAL;
	}
	while (c->opt.client_id == 0)
		c->opt.client_id = random_u64() >> 1; /* positive in signed stores too */
	if (auth_prefix(c) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->request_base = random_u64();
	c->q = calloc(c->opt.queue_max, sizeof(entry));
	c->slots = calloc(c->opt.inflight_max, sizeof(slot));
	if (c->q == NULL || c->slots == NULL) {
		client_free_mem(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		slot *s = &c->slots[i];
		s->client = c;
		msgpack_sbuffer_init(&s->sbuf);
		s->e = calloc(c->opt.batch_max, sizeof(entry));
		s->res = calloc(c->opt.batch_max, sizeof(bo_result));
		s->info = calloc(c->opt.batch_max, sizeof(wire_reply_info));
		if (s->e == NULL || s->res == NULL || s->info == NULL) {
			client_free_mem(c);
			return -ENOMEM;
		}
	}

	int rv = nng_req0_open(&c->sock);
	if (rv != 0) {
		client_free_mem(c);
		return rv == NNG_ENOMEM ? -ENOMEM : BOC_ERR_TRANSPORT;
	}
	/* No silent resends (see TIMEOUTS); replies as large as the server
	 * may send; redial a restarted server quickly but without spinning. */
	if (nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0)
		nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)INT32_MAX);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, WIRE_MSG_MAX + WIRE_SP_HEADER_BYTES);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);

	uint32_t opened = 0;
	for (; opened < c->opt.inflight_max; opened++) {
		slot *s = &c->slots[opened];
		if ((rv = nng_aio_alloc(&s->aio, slot_aio_cb, s)) != 0)
			break;
		if ((rv = nng_ctx_open(&s->ctx, c->sock)) != 0) {
			nng_aio_free(s->aio);
			break;
		}
		nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		s->next_free = c->free_slots;
		c->free_slots = s;
	}
	if (rv == 0) {
		/* Non-blocking: the server may start after its clients. */
		rv = nng_dial(c->sock, url, &c->dialer, NNG_FLAG_NONBLOCK);
		if (rv != 0)
			rv = (rv == NNG_ENOMEM) ? -ENOMEM : -EINVAL;
	} else {
		rv = rv == NNG_ENOMEM ? -ENOMEM : BOC_ERR_TRANSPORT;
	}
	bool locks = false;
	if (rv == 0) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		/* Linger and close deadlines are monotonic: a wall-clock jump
		 * must neither stall nor rush a batch. */
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_mutex_init(&c->mu, NULL);
		pthread_cond_init(&c->flush_cv, &ca);
		pthread_cond_init(&c->idle_cv, &ca);
		pthread_condattr_destroy(&ca);
		locks = true;
		if (pthread_create(&c->flusher, NULL, flusher_main, c) != 0)
			rv = BOC_ERR_TRANSPORT;
	}
	if (rv != 0) {
		nng_close(c->sock);
		for (uint32_t i = 0; i < opened; i++) {
			nng_ctx_close(c->slots[i].ctx);
			nng_aio_free(c->slots[i].aio);
		}
		if (locks) {
			pthread_cond_destroy(&c->idle_cv);
			pthread_cond_destroy(&c->flush_cv);
			pthread_mutex_destroy(&c->mu);
		}
		client_free_mem(c);
		return rv;
	}
	*out = c;
	return 0;
}

uint64_t boc_client_id(const boc_client *c)
{
	assert(c != NULL);
	return c->opt.client_id;
}

uint64_t boc_next_request_id(boc_client *c)
{
	assert(c != NULL);
	for (;;) {
		uint64_t id = c->request_base +
		              atomic_fetch_add_explicit(&c->request_seq, 1, memory_order_relaxed);
		if (id != 0)
			return id;
	}
}

int boc_submit(boc_client *c, const bo_cmd *cmd, boc_callback cb, void *ctx)
{
	assert(c != NULL && cmd != NULL);
	if (cmd->op <= BO_OP_NONE || cmd->op >= BO_OP_COUNT ||
	    cmd->seat_count > BO_SEATS_PER_HOLD_MAX || cmd->payref_len > BO_PAYREF_LEN_MAX ||
	    (cmd->op == BO_OP_CREATE_EVENT && cmd->map == NULL) ||
	    (cmd->flags & ~BO_CMD_F_OPERATOR) ||
	    ((cmd->flags & BO_CMD_F_OPERATOR) && cmd->op != BO_OP_RELEASE &&
	     cmd->op != BO_OP_CANCEL))
		return -EINVAL;
	entry en;
	en.cmd = *cmd;
	if (en.cmd.request_id == 0)
		en.cmd.request_id = boc_next_request_id(c);
	if (en.cmd.client_id == 0 && bo_op_mutates(en.cmd.op))
		en.cmd.client_id = c->opt.client_id;
	en.cb = cb;
	en.ctx = ctx;
	en.submit_ns = bo_clock_ns();

	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		return -ESHUTDOWN;
	}
	if (c->q_len + c->q_taking >= c->opt.queue_max) {
		pthread_mutex_unlock(&c->mu);
		atomic_fetch_add_explicit(&c->st_busy, 1, memory_order_relaxed);
		return -EBUSY;
	}
	c->q[(c->q_head + c->q_len) % c->opt.queue_max] = en;
	c->q_len++;
	/* Wake the flusher only when its decision can change: the first
	 * command arms the linger timer, the batch_max-th fills a message. */
	if (c->q_len == 1 || c->q_len == c->opt.batch_max)
		pthread_cond_signal(&c->flush_cv);
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_add_explicit(&c->st_submitted, 1, memory_order_relaxed);
	return 0;
}

/* boc_call's rendezvous with the callback. */
typedef struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int err;
	bo_result *out;
	char *text;
	size_t textlen;
} sync_wait;

static void sync_cb(void *arg, int err, const bo_result *res, const char *text)
{
	sync_wait *w = arg;
	pthread_mutex_lock(&w->mu);
	*w->out = *res;
	w->err = err;
	if (w->textlen > 0)
		snprintf(w->text, w->textlen, "%s", text);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int boc_call(boc_client *c, const bo_cmd *cmd, bo_result *out, char *err, size_t errlen)
{
	assert(c != NULL && cmd != NULL && out != NULL && (err != NULL || errlen == 0));
	sync_wait w = {.out = out, .text = err, .textlen = errlen};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	int rv = boc_submit(c, cmd, sync_cb, &w);
	if (rv == 0) {
		/* No timeout here: the library guarantees the callback (see
		 * TIMEOUTS), so waiting for it cannot hang. */
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		rv = w.err;
	} else if (errlen > 0) {
		snprintf(err, errlen, "%s", boc_strerror(rv));
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return rv;
}

void boc_close(boc_client *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	assert(!c->closing);
	c->closing = true;
	pthread_cond_signal(&c->flush_cv);
	int64_t deadline = bo_clock_ns() + (int64_t)c->opt.timeout_ms * 1000000;
	struct timespec ts = ns_to_ts(deadline);
	while ((c->q_len > 0 || c->q_taking > 0 || c->slots_busy > 0) && bo_clock_ns() < deadline)
		pthread_cond_timedwait(&c->idle_cv, &c->mu, &ts);
	c->stopping = true;
	pthread_cond_signal(&c->flush_cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->flusher, NULL);

	/* Abort what is still in flight; the aio callbacks fail those
	 * entries with BOC_ERR_CLOSED. nng_aio_stop waits for the callback,
	 * including one started by the abort itself. */
	for (uint32_t i = 0; i < c->opt.inflight_max; i++)
		nng_aio_stop(c->slots[i].aio);
	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		slot *s = &c->slots[i];
		if (s->phase != SLOT_FREE) {
			/* A callback that could not start its receive after the
			 * stop did not run again: its entries are still here. */
			nng_msg *msg = nng_aio_get_msg(s->aio);
			if (msg != NULL)
				nng_msg_free(msg);
			nng_aio_set_msg(s->aio, NULL);
			slot_fail_all(s, BOC_ERR_CLOSED, "client closed before the reply");
			s->phase = SLOT_FREE;
		}
	}
	/* No flusher any more: what is queued was never sent. */
	for (uint32_t k = 0; k < c->q_len; k++)
		fail_entry(c, &c->q[(c->q_head + k) % c->opt.queue_max], BOC_ERR_CLOSED,
		           "client closed before the command was sent");
	c->q_len = 0;

	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		nng_ctx_close(c->slots[i].ctx);
		nng_aio_free(c->slots[i].aio);
	}
	nng_close(c->sock);
	pthread_cond_destroy(&c->idle_cv);
	pthread_cond_destroy(&c->flush_cv);
	pthread_mutex_destroy(&c->mu);
	client_free_mem(c);
}

void boc_stats_get(boc_client *c, boc_stats *out)
{
	assert(c != NULL && out != NULL);
	out->commands_submitted = atomic_load_explicit(&c->st_submitted, memory_order_relaxed);
	out->messages_sent = atomic_load_explicit(&c->st_messages, memory_order_relaxed);
	out->commands_sent = atomic_load_explicit(&c->st_cmds_sent, memory_order_relaxed);
	out->replies = atomic_load_explicit(&c->st_replies, memory_order_relaxed);
	out->failures = atomic_load_explicit(&c->st_failures, memory_order_relaxed);
	out->refused_busy = atomic_load_explicit(&c->st_busy, memory_order_relaxed);
}

const char *boc_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case BOC_ERR_TIMEOUT:
		return "timeout: no reply from the server";
	case BOC_ERR_CLOSED:
		return "client closed before the reply";
	case BOC_ERR_PROTOCOL:
		return "protocol error: unexpected reply";
	case BOC_ERR_INVALID:
		return "command cannot be encoded";
	case BOC_ERR_NOMEM:
		return "out of memory";
	case BOC_ERR_TRANSPORT:
		return "transport error";
	case -EBUSY:
		return "local queue full";
	case -ENOSPC:
		return "too many events watched (BO_SUB_TOPICS_MAX)";
	case -ENOENT:
		return "event not watched";
	default:
		return "unknown error";
	}
}

/* ---- Server status ------------------------------------------------------- */

/* One request/reply on a context of its own, waited for here: the batching
 * slots carry engine commands, and a status request must not wait behind
 * (or be coalesced with) them. Returns 0 with *reply (the caller frees
 * it) or a BOC_ERR_*; text says why. */
static int status_round_trip(boc_client *c, const msgpack_sbuffer *req, nng_msg **reply, char *why,
                             size_t whylen)
{
	*reply = NULL;
	int64_t deadline = bo_clock_ns() + (int64_t)c->opt.timeout_ms * 1000000;
	nng_aio *aio = NULL;
	nng_ctx ctx;
	nng_msg *m = NULL;
	int rv = nng_aio_alloc(&aio, NULL, NULL);
	if (rv != 0) {
		snprintf(why, whylen, "%s", nng_strerror(rv));
		return err_from_nng(rv);
	}
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_aio_free(aio);
		snprintf(why, whylen, "%s", nng_strerror(rv));
		return err_from_nng(rv);
	}
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rv = nng_msg_alloc(&m, c->auth_len + req->size)) == 0) {
		memcpy(nng_msg_body(m), c->auth, c->auth_len);
		memcpy((uint8_t *)nng_msg_body(m) + c->auth_len, req->data, req->size);
		nng_aio_set_msg(aio, m);
		nng_aio_set_timeout(aio, ms_left(deadline));
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0) {
			nng_msg_free(m); /* a failed send leaves the message ours */
			snprintf(why, whylen, "%s", nng_why(rv, "no connection to the server"));
		}
	} else {
		snprintf(why, whylen, "%s", nng_strerror(rv));
	}
	if (rv == 0) {
		nng_aio_set_timeout(aio, ms_left(deadline));
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) == 0)
			*reply = nng_aio_get_msg(aio);
		else
			snprintf(why, whylen, "%s", nng_why(rv, "no reply from the server"));
	}
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	return rv == 0 ? 0 : err_from_nng(rv);
}

static void committer_from_wire(boc_committer_status *o, const wire_committer_status *w)
{
	o->state = w->state;
	o->applied_seq = w->applied_seq;
	o->lag_records = w->lag_records;
	o->lag_ms = w->lag_ms;
	o->batches = w->batches;
	o->changes = w->changes;
	o->outbox = w->outbox;
	o->retries = w->retries;
	memcpy(o->reason, w->reason, sizeof(o->reason));
}

static void status_from_wire(boc_server_report *o, const wire_server_status *w)
{
	memcpy(o->version, w->version, sizeof(o->version));
	o->shard_count = w->shard_count;
	for (uint32_t k = 0; k < w->shard_count; k++) {
		o->shards[k].shard = w->shards[k].shard;
		o->shards[k].durable_seq = w->shards[k].durable_seq;
		o->shards[k].batches = w->shards[k].batches;
		committer_from_wire(&o->shards[k].committer, &w->shards[k].committer);
	}
}

int boc_server_status(boc_client *c, boc_server_report *out, char *err, size_t errlen)
{
	assert(c != NULL && out != NULL && (err != NULL || errlen == 0));
	memset(out, 0, sizeof(*out));
	out->status = BOC_STATUS_NO_ANSWER;
	char why[BOC_TEXT_LEN_MAX + 32] = "";
	pthread_mutex_lock(&c->mu);
	bool closing = c->closing;
	pthread_mutex_unlock(&c->mu);
	int rv = closing ? -ESHUTDOWN : 0;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	nng_msg *reply = NULL;
	wire_server_status *w = NULL; /* ~20 KiB: not on the caller's stack */
	if (rv == 0 && (wire_encode_server_status_request(&sb) != 0 || !(w = malloc(sizeof(*w)))))
		rv = BOC_ERR_NOMEM;
	if (rv == 0)
		rv = status_round_trip(c, &sb, &reply, why, sizeof(why));
	if (rv == 0) {
		wire_msg m;
		int status;
		if (wire_decode_server_status(nng_msg_body(reply), nng_msg_len(reply), w, &status,
		                              &m) != 0) {
			snprintf(why, sizeof(why), "undecodable reply: %s", m.error);
			rv = BOC_ERR_PROTOCOL;
		} else {
			out->status = status;
			if (status == BO_OK)
				status_from_wire(out, w);
			snprintf(why, sizeof(why), "%s", status == BO_OK ? "" : m.error);
		}
		nng_msg_free(reply);
	}
	if (rv != 0 && why[0] == '\0')
		snprintf(why, sizeof(why), "%s", boc_strerror(rv));
	if (errlen > 0)
		snprintf(err, errlen, "%s", why);
	free(w);
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

const char *boc_committer_state_name(int state)
{
	return wire_committer_state_name(state);
}

/* ---- Names --------------------------------------------------------------- */

const char *boc_status_name(int status)
{
	return status >= 0 && status < BO_STATUS_COUNT ? bo_status_str(status) : NULL;
}

const char *boc_detail_name(int detail)
{
	return wire_detail_name(detail);
}

const char *boc_op_name(int op)
{
	return op > BO_OP_NONE && op < BO_OP_COUNT ? bo_op_str(op) : NULL;
}

const char *boc_seat_state_name(int state)
{
	return state >= 0 && state < BO_SEAT_STATE_COUNT ? bo_seat_state_str(state) : NULL;
}

const char *boc_detail_text(int detail)
{
	return detail >= 0 && detail < BO_D_COUNT ? bo_detail_str(detail) : NULL;
}

/* ---- Builders ------------------------------------------------------------ */

static void cmd_init(bo_cmd *cmd, int op, uint64_t client, uint64_t request, uint64_t event)
{
	assert(cmd != NULL);
	memset(cmd, 0, sizeof(*cmd));
	cmd->op = (uint8_t)op;
	cmd->client_id = client;
	cmd->request_id = request;
	cmd->event_id = event;
}

/* Copies up to BO_SEATS_PER_HOLD_MAX seats; a longer list keeps a
 * seat_count over the limit so boc_submit refuses it rather than sending a
 * silently truncated hold. */
static void cmd_seats(bo_cmd *cmd, const uint32_t *seats, uint32_t n)
{
	assert(seats != NULL || n == 0);
	uint32_t k = n < BO_SEATS_PER_HOLD_MAX ? n : BO_SEATS_PER_HOLD_MAX;
	memcpy(cmd->seats, seats, (size_t)k * sizeof(uint32_t));
	cmd->seat_count = (uint8_t)(n < UINT8_MAX ? n : UINT8_MAX);
}

void boc_create_event(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                      const bo_seatmap *map)
{
	cmd_init(cmd, BO_OP_CREATE_EVENT, client, request, event);
	cmd->map = map;
}

void boc_hold_seats(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                    const uint32_t *seats, uint32_t n, uint32_t ttl_ms)
{
	cmd_init(cmd, BO_OP_HOLD_SEATS, client, request, event);
	cmd_seats(cmd, seats, n);
	cmd->ttl_ms = ttl_ms;
}

void boc_hold_best(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint8_t category,
                   uint16_t quantity, uint32_t ttl_ms)
{
	cmd_init(cmd, BO_OP_HOLD_BEST, client, request, event);
	cmd->category = category;
	cmd->quantity = quantity;
	cmd->ttl_ms = ttl_ms;
}

void boc_hold_pool(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint8_t pool,
                   uint16_t quantity, uint32_t ttl_ms)
{
	cmd_init(cmd, BO_OP_HOLD_POOL, client, request, event);
	cmd->pool = pool;
	cmd->quantity = quantity;
	cmd->ttl_ms = ttl_ms;
}

void boc_extend(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold,
                uint32_t ttl_ms)
{
	cmd_init(cmd, BO_OP_EXTEND, client, request, event);
	cmd->claim_id = hold;
	cmd->ttl_ms = ttl_ms;
}

void boc_release(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold)
{
	cmd_init(cmd, BO_OP_RELEASE, client, request, event);
	cmd->claim_id = hold;
}

void boc_confirm(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold,
                 const char *payref)
{
	assert(payref != NULL);
	cmd_init(cmd, BO_OP_CONFIRM, client, request, event);
	cmd->claim_id = hold;
	size_t len = strlen(payref);
	memcpy(cmd->payref, payref, len < BO_PAYREF_LEN_MAX ? len : BO_PAYREF_LEN_MAX);
	cmd->payref_len = (uint8_t)(len < UINT8_MAX ? len : UINT8_MAX);
}

void boc_cancel(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t booking)
{
	cmd_init(cmd, BO_OP_CANCEL, client, request, event);
	cmd->claim_id = booking;
}

int boc_as_operator(bo_cmd *cmd)
{
	assert(cmd != NULL);
	if (cmd->op != BO_OP_RELEASE && cmd->op != BO_OP_CANCEL)
		return -EINVAL;
	cmd->flags |= BO_CMD_F_OPERATOR;
	return 0;
}

void boc_block(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
               const uint32_t *seats, uint32_t n)
{
	cmd_init(cmd, BO_OP_BLOCK, client, request, event);
	cmd_seats(cmd, seats, n);
}

void boc_unblock(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                 const uint32_t *seats, uint32_t n)
{
	cmd_init(cmd, BO_OP_UNBLOCK, client, request, event);
	cmd_seats(cmd, seats, n);
}

void boc_query_avail(bo_cmd *cmd, uint64_t event)
{
	cmd_init(cmd, BO_OP_QUERY_AVAIL, 0, 0, event);
}

void boc_query_seats(bo_cmd *cmd, uint64_t event, const uint32_t *seats, uint32_t n)
{
	cmd_init(cmd, BO_OP_QUERY_SEATS, 0, 0, event);
	cmd_seats(cmd, seats, n);
}
