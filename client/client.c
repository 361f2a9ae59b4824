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
 * SEVERAL SERVERS
 *
 * One REQ socket per server address (targets[]: the configured ones, then
 * the ones not_primary replies named, never removed, so a target index
 * stays valid for the client's life). `home` is the target new batches go
 * to; a slot opens a context on a target's socket the first time it sends
 * there. A command answered not_primary (or, with several targets, lost
 * with its connection) leaves the batching path for a retry: a small state
 * machine of its own (struct retry: one aio, one context) that waits,
 * resends the same command (same client and request ids) as a message of
 * its own and either delivers the answer or tries again, at most retry_max
 * times. It also moves `home`, so later batches go where the last answer
 * pointed. A finished retry's aio cannot be freed from its own callback:
 * the flusher thread reaps finished retries, boc_close the rest.
 *
 * ROUTES
 *
 * The shards' primaries may sit on different servers, so one `home` for
 * every command would have every other command answered not_primary and
 * resent. The client keeps a small direct-mapped cache event -> target
 * (routes[]), learnt from the answers: the primary a not_primary reply
 * names, and the server that applied a retried mutating command. The
 * flusher splits each batch it takes by target (events not in the cache go
 * to `home`) and sends each part as a message of its own; parts that find
 * no free slot wait in `carry` (flusher-owned, counted as queued) and go
 * before anything else is taken. The cache is only a hint: an entry torn by
 * two concurrent writers, evicted, or stale after a failover sends a
 * command to the wrong server, which answers not_primary — one retry, and
 * the cache learns again.
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
#include <nng/supplemental/util/platform.h>

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
	nng_ctx ctx[BOC_SERVERS_MAX]; /* one per target, opened on first use */
	uint32_t ctx_open;            /* bit t: ctx[t] is open */
	uint32_t target;              /* where the batch in flight went */
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

/* One server address and its REQ socket. */
typedef struct target {
	char url[BOC_ADDRESS_LEN_MAX];
	nng_socket sock;
	nng_dialer dialer;
} target;

/* A command being resent after not_primary or a lost server (see SEVERAL
 * SERVERS). Owned by its aio callback while not done; listed in
 * client->retries until reaped. */
typedef struct retry {
	struct boc_client *client;
	entry en;
	uint32_t resends; /* resends started so far */
	uint32_t target;  /* where the next (or current) attempt goes */
	uint64_t epoch;   /* the epoch the last not_primary named (sent along) */
	int phase;        /* retry_phase */
	bool done;        /* the callback ran: reap it */
	nng_aio *aio;
	nng_ctx ctx;
	bool ctx_open;
	uint32_t ctx_target;
	/* The last outcome, returned when the resends run out. */
	int last_err;
	bo_result last_res;
	char last_text[BOC_TEXT_LEN_MAX];
	wire_reply_info info; /* scratch for decoding */
	struct retry *next;
} retry;

enum retry_phase {
	RETRY_WAIT,
	RETRY_SEND,
	RETRY_RECV
};

/* One cached route (see ROUTES): target + 1 (0: empty) for event. */
typedef struct route {
	_Atomic uint64_t event;
	_Atomic uint32_t target1;
} route;

#define ROUTES_LOG2 12u
#define ROUTES (1u << ROUTES_LOG2)

struct boc_client {
	boc_options opt;
	boc_retry_options ropt;
	target targets[BOC_SERVERS_MAX];
	_Atomic uint32_t ntargets; /* targets[0..ntargets) are open; grows under mu */
	uint32_t nconfigured;      /* the addresses given to boc_open */
	_Atomic uint32_t home;     /* where new batches go */

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
	uint32_t carry_n;      /* entries in carry (see ROUTES) */
	retry *retries;        /* every retry not yet reaped */
	uint32_t retries_live; /* of which not done */
	uint32_t retries_done; /* of which done, waiting for the reaper */

	slot *slots; /* [inflight_max] */
	pthread_t flusher;
	/* The flusher's own: batch parts waiting for a free slot, and the
	 * target of each (see ROUTES). carry_n is under mu. */
	entry *carry;           /* [batch_max] */
	uint32_t *carry_target; /* [batch_max] */
	route routes[ROUTES];
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
	_Atomic uint64_t st_retries;
};

static void retry_start(boc_client *c, const entry *en, uint32_t from, int err,
                        const bo_result *res, const wire_reply_info *info, const char *text);
static bool can_failover(const boc_client *c);

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

/* A batch lost with its connection (no reply, or no send): with several
 * servers every command moves to a retry on the next one; else, or when
 * the client is closing, it fails as before. */
static void slot_fail_or_retry(slot *s, int err, const char *why)
{
	boc_client *c = s->client;
	if (err == BOC_ERR_CLOSED || !can_failover(c)) {
		slot_fail_all(s, err, why);
		return;
	}
	for (uint32_t i = 0; i < s->n; i++)
		retry_start(c, &s->e[i], s->target, err, NULL, NULL, why);
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
		if (r.status == BO_NOT_PRIMARY && !c->ropt.no_retry) {
			retry_start(c, en, s->target, 0, &r, inf, inf->error);
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
			slot_fail_or_retry(s, err_from_nng(rv),
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
		nng_ctx_recv(s->ctx[s->target], s->aio);
		return;
	}
	assert(s->phase == SLOT_RECEIVING);
	if (rv != 0) {
		slot_fail_or_retry(s, err_from_nng(rv), nng_why(rv, "no reply from the server"));
		slot_release(s);
		return;
	}
	nng_msg *msg = nng_aio_get_msg(s->aio);
	nng_aio_set_msg(s->aio, NULL);
	slot_deliver(s, msg);
	nng_msg_free(msg);
	slot_release(s);
}

/* ---- Targets ------------------------------------------------------------- */

/* Opens target t's REQ socket and starts dialling url (not waiting for
 * the server). Returns 0, -EINVAL (nng refuses the URL), -ENOMEM or
 * BOC_ERR_TRANSPORT; nothing is left open on failure. */
static int target_open(target *t, const char *url)
{
	snprintf(t->url, sizeof(t->url), "%s", url);
	int rv = nng_req0_open(&t->sock);
	if (rv != 0)
		return rv == NNG_ENOMEM ? -ENOMEM : BOC_ERR_TRANSPORT;
	/* No silent resends (see TIMEOUTS); replies as large as the server
	 * may send; redial a restarted server quickly but without spinning. */
	if (nng_socket_set_ms(t->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0)
		nng_socket_set_ms(t->sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)INT32_MAX);
	nng_socket_set_size(t->sock, NNG_OPT_RECVMAXSZ, WIRE_MSG_MAX + WIRE_SP_HEADER_BYTES);
	nng_socket_set_ms(t->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(t->sock, NNG_OPT_RECONNMAXT, 500);
	/* Non-blocking: the server may start after its clients. */
	rv = nng_dial(t->sock, url, &t->dialer, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_close(t->sock);
		return rv == NNG_ENOMEM ? -ENOMEM : -EINVAL;
	}
	return 0;
}

/* The target of `address`, opened (and dialled) if new; -1 when there is
 * no room left or it cannot be opened (the caller then tries the next
 * configured address instead). Any thread. */
static int target_find_or_add(boc_client *c, const char *address)
{
	pthread_mutex_lock(&c->mu);
	uint32_t n = atomic_load_explicit(&c->ntargets, memory_order_relaxed);
	int found = -1;
	for (uint32_t i = 0; i < n && found < 0; i++)
		if (strcmp(c->targets[i].url, address) == 0)
			found = (int)i;
	if (found < 0 && n < BOC_SERVERS_MAX && !c->stopping &&
	    target_open(&c->targets[n], address) == 0) {
		found = (int)n;
		/* Release: a reader that sees the count sees the socket. */
		atomic_store_explicit(&c->ntargets, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

/* The target after `t`, cycling through every known one. */
static uint32_t target_next(const boc_client *c, uint32_t t)
{
	uint32_t n = atomic_load_explicit(&c->ntargets, memory_order_acquire);
	return (t + 1) % n;
}

/* Whether a lost connection is worth a retry elsewhere. */
static bool can_failover(const boc_client *c)
{
	return !c->ropt.no_retry && atomic_load_explicit(&c->ntargets, memory_order_acquire) > 1;
}

/* ---- Routes (see ROUTES) --------------------------------------------------- */

static uint32_t route_index(uint64_t event)
{
	return (uint32_t)((event * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - ROUTES_LOG2));
}

/* Remembers that event's commands go to target t. Any thread. */
static void route_set(boc_client *c, uint64_t event, uint32_t t)
{
	route *r = &c->routes[route_index(event)];
	/* A torn pair only misroutes one command (see ROUTES). */
	atomic_store_explicit(&r->target1, 0, memory_order_relaxed);
	atomic_store_explicit(&r->event, event, memory_order_relaxed);
	atomic_store_explicit(&r->target1, t + 1, memory_order_release);
}

/* Where event's commands go: its cached target, else `home`. */
static uint32_t route_get(boc_client *c, uint64_t event)
{
	const route *r = &c->routes[route_index(event)];
	uint32_t t1 = atomic_load_explicit(&r->target1, memory_order_acquire);
	uint32_t n = atomic_load_explicit(&c->ntargets, memory_order_acquire);
	if (t1 != 0 && t1 <= n && atomic_load_explicit(&r->event, memory_order_relaxed) == event)
		return t1 - 1;
	return atomic_load_explicit(&c->home, memory_order_acquire);
}

/* ---- Retries (see SEVERAL SERVERS) ---------------------------------------- */

/* Hands a retry's final outcome to its callback and marks it for the
 * reaper. Called once per retry, from its aio callback or boc_close. */
static void retry_finish(retry *r, int err, const bo_result *res, const char *text)
{
	boc_client *c = r->client;
	if (err < 0) {
		fail_entry(c, &r->en, err, "%s", text);
	} else {
		atomic_fetch_add_explicit(&c->st_replies, 1, memory_order_relaxed);
		if (r->en.cb != NULL)
			r->en.cb(r->en.ctx, 0, res, text);
	}
	pthread_mutex_lock(&c->mu);
	r->done = true;
	c->retries_live--;
	c->retries_done++;
	pthread_cond_signal(&c->flush_cv); /* the reaper */
	if (c->closing)
		pthread_cond_broadcast(&c->idle_cv);
	pthread_mutex_unlock(&c->mu);
}

/* Keeps an outcome as the one to return when the resends run out. */
static void retry_note(retry *r, int err, const bo_result *res, const char *text)
{
	r->last_err = err;
	if (res != NULL)
		r->last_res = *res;
	snprintf(r->last_text, sizeof(r->last_text), "%s", text);
}

/* Decides where and when the next attempt goes after an outcome at
 * target `from` (info: a not_primary reply's, or NULL), and starts the
 * wait; or finishes the retry when no resend is left. */
static void retry_schedule(retry *r, uint32_t from, const wire_reply_info *info)
{
	boc_client *c = r->client;
	if (r->resends >= c->ropt.retry_max) {
		retry_finish(r, r->last_err, &r->last_res, r->last_text);
		return;
	}
	int t = -1;
	if (info != NULL && info->primary.known) {
		t = target_find_or_add(c, info->primary.address);
		if (t >= 0)
			route_set(c, r->en.cmd.event_id, (uint32_t)t);
	}
	if (info != NULL)
		r->epoch = info->primary.epoch;
	if (t < 0)
		t = (int)target_next(c, from);
	/* A named primary elsewhere is asked at once; the same server again,
	 * or a guess (no primary named), after the backoff. A lost connection
	 * was already waited for (the send or receive timed out). */
	nng_duration wait = info == NULL ? 0 : (uint32_t)t == from || !info->primary.known
	                                           ? (nng_duration)c->ropt.backoff_ms
	                                           : 0;
	r->target = (uint32_t)t;
	/* Later batches follow the last answer, unless another one moved it. */
	uint32_t expect = from;
	atomic_compare_exchange_strong_explicit(&c->home, &expect, (uint32_t)t,
	                                        memory_order_release, memory_order_relaxed);
	r->resends++;
	atomic_fetch_add_explicit(&c->st_retries, 1, memory_order_relaxed);
	r->phase = RETRY_WAIT;
	nng_sleep_aio(wait, r->aio);
}

/* Drops the context after an attempt that got no reply (a failed send, a
 * timed-out or empty receive): the next attempt takes a fresh one. A REQ
 * context keeps its unanswered request for a resend, and nng 1.5.2 both
 * leaked that request when the context was reused (LeakSanitizer, in
 * node_test's switchover) and once completed a later receive with success
 * and no message; a fresh context per attempt has neither. */
static void retry_drop_ctx(retry *r)
{
	if (r->ctx_open) {
		nng_ctx_close(r->ctx);
		r->ctx_open = false;
	}
}

/* Sends the retried command (one command, as an array of one) to its
 * target. Returns 0 or a BOC_ERR_* with why. */
static int retry_send(retry *r, char *why, size_t whylen)
{
	boc_client *c = r->client;
	if (r->ctx_open && r->ctx_target != r->target) {
		nng_ctx_close(r->ctx);
		r->ctx_open = false;
	}
	int rv;
	if (!r->ctx_open) {
		if ((rv = nng_ctx_open(&r->ctx, c->targets[r->target].sock)) != 0) {
			snprintf(why, whylen, "%s", nng_strerror(rv));
			return err_from_nng(rv);
		}
		nng_ctx_set_ms(r->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		r->ctx_open = true;
		r->ctx_target = r->target;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	rv = wire_encode_request_epoch(&r->en.cmd, 1, 1, r->epoch, &sb);
	nng_msg *msg = NULL;
	if (rv == 0 && (rv = nng_msg_alloc(&msg, c->auth_len + sb.size)) == 0) {
		memcpy(nng_msg_body(msg), c->auth, c->auth_len);
		memcpy((uint8_t *)nng_msg_body(msg) + c->auth_len, sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
	if (msg == NULL) {
		snprintf(why, whylen, "out of memory encoding the request");
		return BOC_ERR_NOMEM; /* it was encodable once: only memory fails */
	}
	atomic_fetch_add_explicit(&c->st_messages, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->st_cmds_sent, 1, memory_order_relaxed);
	r->phase = RETRY_SEND;
	nng_aio_set_msg(r->aio, msg);
	nng_aio_set_timeout(r->aio, (nng_duration)c->opt.timeout_ms);
	nng_ctx_send(r->ctx, r->aio);
	return 0;
}

/* The answer to a retried command: delivered, or retried again when it is
 * not_primary. */
static void retry_reply(retry *r, nng_msg *msg)
{
	wire_msg m;
	bo_result *res = &r->last_res;
	int rv = wire_decode_replies(nng_msg_body(msg), nng_msg_len(msg), res, &r->info, 1, &m);
	if (rv == 0 && m.count == 1 && (!m.is_array || r->info.malformed)) {
		/* A message-level answer, or one the server could not read:
		 * the ids come from the command. */
		res->op = r->en.cmd.op;
		res->client_id = r->en.cmd.client_id;
		res->request_id = r->en.cmd.request_id;
		res->event_id = r->en.cmd.event_id;
	}
	if (rv != 0 || m.count != 1 || res->request_id != r->en.cmd.request_id ||
	    res->op != r->en.cmd.op) {
		char why[WIRE_ERROR_LEN_MAX + 32];
		snprintf(why, sizeof(why), "undecodable reply: %s",
		         rv != 0 ? m.error : "not the answer to the command sent");
		retry_finish(r, BOC_ERR_PROTOCOL, NULL, why);
		return;
	}
	if (res->status == BO_NOT_PRIMARY) {
		retry_note(r, 0, res, r->info.error);
		retry_schedule(r, r->target, &r->info);
		return;
	}
	if (bo_op_mutates(r->en.cmd.op))
		route_set(r->client, r->en.cmd.event_id, r->target); /* it applied it: the primary */
	bo_result out = *res;
	retry_finish(r, 0, &out, r->info.error);
}

static void retry_aio_cb(void *arg)
{
	retry *r = arg;
	boc_client *c = r->client;
	int rv = nng_aio_result(r->aio);
	pthread_mutex_lock(&c->mu);
	bool stopping = c->stopping;
	pthread_mutex_unlock(&c->mu);
	if (stopping || rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
		if (r->phase == RETRY_SEND && rv != 0) {
			nng_msg *msg = nng_aio_get_msg(r->aio);
			if (msg != NULL)
				nng_msg_free(msg);
		} else if (r->phase == RETRY_RECV && rv == 0) {
			nng_msg_free(nng_aio_get_msg(r->aio));
		}
		nng_aio_set_msg(r->aio, NULL);
		retry_finish(r, BOC_ERR_CLOSED, NULL, "client closed before the reply");
		return;
	}
	char why[BOC_TEXT_LEN_MAX];
	switch (r->phase) {
	case RETRY_WAIT:
		if ((rv = retry_send(r, why, sizeof(why))) != 0)
			retry_finish(r, rv, NULL, why);
		return;
	case RETRY_SEND:
		if (rv != 0) {
			nng_msg *msg = nng_aio_get_msg(r->aio);
			if (msg != NULL)
				nng_msg_free(msg);
			nng_aio_set_msg(r->aio, NULL);
			retry_drop_ctx(r);
			retry_note(r, err_from_nng(rv), NULL, nng_why(rv, "no connection to the server"));
			retry_schedule(r, r->target, NULL);
			return;
		}
		r->phase = RETRY_RECV;
		nng_aio_set_timeout(r->aio, (nng_duration)c->opt.timeout_ms);
		nng_ctx_recv(r->ctx, r->aio);
		return;
	default:
		if (rv != 0) {
			retry_drop_ctx(r);
			retry_note(r, err_from_nng(rv), NULL, nng_why(rv, "no reply from the server"));
			retry_schedule(r, r->target, NULL);
			return;
		}
		nng_msg *msg = nng_aio_get_msg(r->aio);
		if (msg == NULL) {
			/* nng 1.5.2 completed a receive with success and no
			 * message (seen against a SIGSTOPped server, on the first
			 * resend after a timeout; tests/cluster/faults.py
			 * pause_primary). Not a reply: resend like a timeout. */
			retry_drop_ctx(r);
			retry_note(r, BOC_ERR_TIMEOUT, NULL, "no reply from the server");
			retry_schedule(r, r->target, NULL);
			return;
		}
		nng_aio_set_msg(r->aio, NULL);
		retry_reply(r, msg);
		nng_msg_free(msg);
		return;
	}
}

/* Takes over entry `en` after an outcome at target `from`: err < 0 (a lost
 * connection, text why) or a not_primary reply (res, info). If the client
 * is stopping or no retry can be made, the outcome is delivered now. */
static void retry_start(boc_client *c, const entry *en, uint32_t from, int err,
                        const bo_result *res, const wire_reply_info *info, const char *text)
{
	retry *r = calloc(1, sizeof(*r));
	int rv = r == NULL ? NNG_ENOMEM : nng_aio_alloc(&r->aio, retry_aio_cb, r);
	bool ok = rv == 0;
	pthread_mutex_lock(&c->mu);
	if (ok && !c->stopping) {
		r->next = c->retries;
		c->retries = r;
		c->retries_live++;
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&c->mu);
	if (!ok) {
		if (r != NULL && r->aio != NULL)
			nng_aio_free(r->aio);
		free(r);
		if (err < 0) {
			fail_entry(c, en, err, "%s", text);
		} else {
			atomic_fetch_add_explicit(&c->st_replies, 1, memory_order_relaxed);
			if (en->cb != NULL)
				en->cb(en->ctx, 0, res, text);
		}
		return;
	}
	r->client = c;
	r->en = *en;
	retry_note(r, err, res, text);
	retry_schedule(r, from, info);
}

/* Frees the finished retries (flusher thread, or boc_close once nothing
 * else runs): nng_aio_free waits for a callback still returning. */
static void retries_reap(boc_client *c, bool all)
{
	pthread_mutex_lock(&c->mu);
	retry *dead = NULL;
	for (retry **pp = &c->retries; *pp != NULL;) {
		retry *r = *pp;
		if (r->done || all) {
			*pp = r->next;
			r->next = dead;
			dead = r;
			if (r->done)
				c->retries_done--;
		} else {
			pp = &r->next;
		}
	}
	pthread_mutex_unlock(&c->mu);
	while (dead != NULL) {
		retry *r = dead;
		dead = r->next;
		/* Aborts a send or receive still pending (boc_close) and waits
		 * for its callback. An aborted send may not call back at all:
		 * its request then still hangs on the aio, ours to free (every
		 * callback path clears the aio's message when it takes it).
		 * LeakSanitizer found those in node_test. */
		nng_aio_stop(r->aio);
		nng_msg *left = nng_aio_get_msg(r->aio);
		if (left != NULL)
			nng_msg_free(left);
		nng_aio_free(r->aio);
		if (r->ctx_open)
			nng_ctx_close(r->ctx);
		free(r);
	}
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

/* Sends the slot's batch to target t (flusher thread, slot owned, lock
 * not held). */
static void slot_send(slot *s, uint32_t t)
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
	if (!(s->ctx_open & (1u << t))) {
		if ((rv = nng_ctx_open(&s->ctx[t], c->targets[t].sock)) != 0) {
			slot_fail_all(s, err_from_nng(rv), nng_strerror(rv));
			slot_release(s);
			return;
		}
		nng_ctx_set_ms(s->ctx[t], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		s->ctx_open |= 1u << t;
	}
	s->target = t;
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
	nng_ctx_send(s->ctx[t], s->aio);
}

/* Takes a free slot for sending (mu held, a slot free). */
static slot *slot_take(boc_client *c)
{
	slot *s = c->free_slots;
	assert(s != NULL);
	c->free_slots = s->next_free;
	c->slots_busy++;
	s->phase = SLOT_SENDING;
	return s;
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
		if (c->retries_done > 0) {
			pthread_mutex_unlock(&c->mu);
			retries_reap(c, false);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (c->carry_n > 0) {
			/* Parts of an earlier batch first (their commands are the
			 * oldest): one target's entries per slot. */
			if (c->free_slots == NULL) {
				pthread_cond_wait(&c->flush_cv, &c->mu);
				continue;
			}
			slot *s = slot_take(c);
			pthread_mutex_unlock(&c->mu);
			uint32_t t = c->carry_target[0], n = 0, kept = 0;
			for (uint32_t i = 0; i < c->carry_n; i++) {
				if (c->carry_target[i] == t) {
					s->e[n++] = c->carry[i];
				} else {
					c->carry[kept] = c->carry[i];
					c->carry_target[kept++] = c->carry_target[i];
				}
			}
			s->n = n;
			pthread_mutex_lock(&c->mu);
			c->carry_n = kept;
			pthread_mutex_unlock(&c->mu);
			slot_send(s, t);
			pthread_mutex_lock(&c->mu);
			continue;
		}
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
		slot *s = slot_take(c);
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
		/* Split by route: the first entry's target stays in the slot,
		 * the rest wait in carry for slots of their own. */
		uint32_t t = route_get(c, s->e[0].cmd.event_id), kept = 0, carried = 0;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t ti = i == 0 ? t : route_get(c, s->e[i].cmd.event_id);
			if (ti == t) {
				s->e[kept++] = s->e[i];
			} else {
				c->carry[carried] = s->e[i];
				c->carry_target[carried++] = ti;
			}
		}
		s->n = kept;

		pthread_mutex_lock(&c->mu);
		c->q_taking = 0;
		c->carry_n = carried;
		pthread_mutex_unlock(&c->mu);
		slot_send(s, t);
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

void boc_retry_options_default(boc_retry_options *ro)
{
	assert(ro != NULL);
	memset(ro, 0, sizeof(*ro));
	ro->retry_max = BOC_RETRY_MAX_DEFAULT;
	ro->backoff_ms = BOC_RETRY_BACKOFF_MS_DEFAULT;
}

/* Fills defaults into zero fields and checks ranges. */
static int retry_options_resolve(const boc_retry_options *in, boc_retry_options *o)
{
	boc_retry_options_default(o);
	if (in == NULL)
		return 0;
	o->no_retry = in->no_retry;
	if (in->retry_max)
		o->retry_max = in->retry_max;
	if (in->backoff_ms)
		o->backoff_ms = in->backoff_ms;
	return o->retry_max <= BOC_RETRY_MAX_MAX && o->backoff_ms <= BOC_RETRY_BACKOFF_MS_MAX &&
	                       o->no_retry <= 1
	               ? 0
	               : -EINVAL;
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
	free(c->carry);
	free(c->carry_target);
	explicit_bzero(c->auth, sizeof(c->auth));
	free(c);
}

/* Splits a comma-separated list of addresses into urls[] (pointers into
 * buf). Returns the count, or -EINVAL (empty entry, too many, too long). */
static int split_urls(const char *list, char buf[BOC_SERVERS_MAX][BOC_ADDRESS_LEN_MAX],
                      const char *urls[BOC_SERVERS_MAX])
{
	uint32_t n = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len >= BOC_ADDRESS_LEN_MAX || n == BOC_SERVERS_MAX)
			return -EINVAL;
		memcpy(buf[n], p, len);
		buf[n][len] = '\0';
		urls[n] = buf[n];
		n++;
		if (!comma)
			return (int)n;
		p = comma + 1;
	}
}

int boc_open(const char *url, const boc_options *opt, boc_client **out)
{
	assert(url != NULL && out != NULL);
	*out = NULL;
	char buf[BOC_SERVERS_MAX][BOC_ADDRESS_LEN_MAX];
	const char *urls[BOC_SERVERS_MAX];
	int n = split_urls(url, buf, urls);
	if (n < 0)
		return -EINVAL;
	return boc_open_servers(urls, (uint32_t)n, opt, NULL, out);
}

/* Allocates the client and its slots, options resolved. */
static int client_alloc(const boc_options *opt, const boc_retry_options *ropt, boc_client **out)
{
	boc_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (options_resolve(opt, &c->opt) != 0 || retry_options_resolve(ropt, &c->ropt) != 0) {
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
	c->carry = calloc(c->opt.batch_max, sizeof(entry));
	c->carry_target = calloc(c->opt.batch_max, sizeof(uint32_t));
	if (c->q == NULL || c->slots == NULL || c->carry == NULL || c->carry_target == NULL) {
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
	*out = c;
	return 0;
}

int boc_open_servers(const char *const *urls, uint32_t n, const boc_options *opt,
                     const boc_retry_options *ropt, boc_client **out)
{
	assert(urls != NULL && out != NULL);
	*out = NULL;
	if (n == 0 || n > BOC_SERVERS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (urls[i] == NULL || urls[i][0] == '\0' || strlen(urls[i]) >= BOC_ADDRESS_LEN_MAX ||
		    strchr(urls[i], ',') != NULL)
			return -EINVAL;
	boc_client *c;
	int rv = client_alloc(opt, ropt, &c);
	if (rv != 0)
		return rv;
	uint32_t opened = 0;
	for (; opened < n && rv == 0; opened++)
		if ((rv = target_open(&c->targets[opened], urls[opened])) != 0)
			break;
	atomic_store_explicit(&c->ntargets, opened, memory_order_relaxed);
	c->nconfigured = n;

	uint32_t aios = 0;
	for (; rv == 0 && aios < c->opt.inflight_max; aios++) {
		slot *s = &c->slots[aios];
		if ((rv = nng_aio_alloc(&s->aio, slot_aio_cb, s)) != 0) {
			rv = rv == NNG_ENOMEM ? -ENOMEM : BOC_ERR_TRANSPORT;
			break;
		}
		s->next_free = c->free_slots;
		c->free_slots = s;
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
		for (uint32_t i = 0; i < opened; i++)
			nng_close(c->targets[i].sock);
		for (uint32_t i = 0; i < aios; i++)
			nng_aio_free(c->slots[i].aio);
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
	while ((c->q_len > 0 || c->q_taking > 0 || c->carry_n > 0 || c->slots_busy > 0 ||
	        c->retries_live > 0) &&
	       bo_clock_ns() < deadline)
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
	for (uint32_t k = 0; k < c->carry_n; k++)
		fail_entry(c, &c->carry[k], BOC_ERR_CLOSED, "client closed before the command was sent");
	c->carry_n = 0;

	/* Retries: no new one starts now (stopping); stop the live ones. A
	 * callback that could not start its next operation after the stop
	 * did not run again: its command is failed here. The list itself only
	 * changes in the reaper, which is the flusher (joined) or this. */
	for (retry *r = c->retries; r != NULL; r = r->next) {
		nng_aio_stop(r->aio);
		pthread_mutex_lock(&c->mu);
		bool done = r->done;
		pthread_mutex_unlock(&c->mu);
		if (!done) {
			nng_msg *msg = nng_aio_get_msg(r->aio);
			if (msg != NULL)
				nng_msg_free(msg);
			nng_aio_set_msg(r->aio, NULL);
			retry_finish(r, BOC_ERR_CLOSED, NULL, "client closed before the reply");
		}
	}
	retries_reap(c, true);

	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		for (uint32_t t = 0; t < BOC_SERVERS_MAX; t++)
			if (c->slots[i].ctx_open & (1u << t))
				nng_ctx_close(c->slots[i].ctx[t]);
		nng_aio_free(c->slots[i].aio);
	}
	uint32_t nt = atomic_load_explicit(&c->ntargets, memory_order_acquire);
	for (uint32_t t = 0; t < nt; t++)
		nng_close(c->targets[t].sock);
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

uint64_t boc_retries(boc_client *c)
{
	assert(c != NULL);
	return atomic_load_explicit(&c->st_retries, memory_order_relaxed);
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
static int status_round_trip_to(boc_client *c, uint32_t t, const msgpack_sbuffer *req, nng_msg **reply,
                                char *why, size_t whylen)
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
	if ((rv = nng_ctx_open(&ctx, c->targets[t].sock)) != 0) {
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

/* The same, to the server new batches go to. */
static int status_round_trip(boc_client *c, const msgpack_sbuffer *req, nng_msg **reply, char *why,
                             size_t whylen)
{
	return status_round_trip_to(c, atomic_load_explicit(&c->home, memory_order_acquire), req, reply,
	                            why, whylen);
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

/* ---- Cluster status and switchover ---------------------------------------- */

_Static_assert(BOC_CLUSTER_STANDBYS_MAX == WIRE_CLUSTER_STANDBYS_MAX, "a shard's standbys fit");
_Static_assert(BOC_ADDRESS_LEN_MAX == WIRE_ADDRESS_LEN_MAX, "a named primary's address fits");
_Static_assert((int)BOC_ROLE_NONE == (int)WIRE_ROLE_NONE &&
                       (int)BOC_ROLE_PRIMARY == (int)WIRE_ROLE_PRIMARY &&
                       (int)BOC_ROLE_STANDBY == (int)WIRE_ROLE_STANDBY &&
                       (int)BOC_ROLE_FENCED == (int)WIRE_ROLE_FENCED,
               "roles are the wire's");

static void cluster_from_wire(boc_cluster_report *o, const wire_cluster_status *w)
{
	o->node = w->node;
	o->shard_count = w->shard_count;
	for (uint32_t k = 0; k < w->shard_count; k++) {
		const wire_shard_cluster *ws = &w->shards[k];
		boc_shard_cluster *os = &o->shards[k];
		os->shard = ws->shard;
		os->epoch = ws->epoch;
		os->role = ws->role;
		os->primary_known = ws->primary_known;
		os->primary = ws->primary;
		os->in_sync_count = ws->in_sync_count;
		memcpy(os->in_sync, ws->in_sync, sizeof(os->in_sync));
		os->last_seq = ws->last_seq;
		os->durable_seq = ws->durable_seq;
		os->released_seq = ws->released_seq;
		os->standby_count = ws->standby_count;
		for (uint32_t i = 0; i < ws->standby_count; i++) {
			os->standbys[i].node = ws->standbys[i].node;
			os->standbys[i].acked_seq = ws->standbys[i].acked_seq;
			os->standbys[i].lag_records = ws->standbys[i].lag_records;
		}
	}
}

static bool client_closing(boc_client *c)
{
	pthread_mutex_lock(&c->mu);
	bool closing = c->closing;
	pthread_mutex_unlock(&c->mu);
	return closing;
}

int boc_cluster_status(boc_client *c, boc_cluster_report *out, char *err, size_t errlen)
{
	assert(c != NULL && out != NULL && (err != NULL || errlen == 0));
	memset(out, 0, sizeof(*out));
	out->status = BOC_STATUS_NO_ANSWER;
	char why[BOC_TEXT_LEN_MAX + 32] = "";
	int rv = client_closing(c) ? -ESHUTDOWN : 0;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	nng_msg *reply = NULL;
	wire_cluster_status *w = NULL; /* tens of KiB: not on the caller's stack */
	if (rv == 0 && (wire_encode_cluster_status_request(&sb) != 0 || !(w = malloc(sizeof(*w)))))
		rv = BOC_ERR_NOMEM;
	if (rv == 0)
		rv = status_round_trip(c, &sb, &reply, why, sizeof(why));
	if (rv == 0) {
		wire_msg m;
		int status;
		if (wire_decode_cluster_status(nng_msg_body(reply), nng_msg_len(reply), w, &status,
		                               &m) != 0) {
			snprintf(why, sizeof(why), "undecodable reply: %s", m.error);
			rv = BOC_ERR_PROTOCOL;
		} else {
			out->status = status;
			if (status == BO_OK)
				cluster_from_wire(out, w);
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

int boc_switchover(boc_client *c, uint32_t shard, uint32_t to, int *status, char *err, size_t errlen)
{
	assert(c != NULL && status != NULL && (err != NULL || errlen == 0));
	*status = BOC_STATUS_NO_ANSWER;
	char why[BOC_TEXT_LEN_MAX + 32] = "";
	int rv = client_closing(c) ? -ESHUTDOWN : 0;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (rv == 0 && wire_encode_switchover_request(shard, to, &sb) != 0)
		rv = BOC_ERR_NOMEM;
	uint32_t t = atomic_load_explicit(&c->home, memory_order_acquire);
	/* Only the shard's primary can hand it over: follow not_primary. */
	for (uint32_t attempt = 0; rv == 0; attempt++) {
		nng_msg *reply = NULL;
		if ((rv = status_round_trip_to(c, t, &sb, &reply, why, sizeof(why))) != 0)
			break;
		wire_msg m;
		wire_primary p;
		int st;
		rv = wire_decode_status_reply(nng_msg_body(reply), nng_msg_len(reply), &st, &p, &m);
		nng_msg_free(reply);
		if (rv != 0) {
			snprintf(why, sizeof(why), "undecodable reply: %s", m.error);
			rv = BOC_ERR_PROTOCOL;
			break;
		}
		*status = st;
		snprintf(why, sizeof(why), "%s", m.error);
		if (st != BO_NOT_PRIMARY || c->ropt.no_retry || attempt >= c->ropt.retry_max)
			break;
		int next = p.known ? target_find_or_add(c, p.address) : -1;
		if (next < 0 || (uint32_t)next == t) {
			next = (int)target_next(c, t);
			nng_msleep((nng_duration)c->ropt.backoff_ms);
		}
		t = (uint32_t)next;
		atomic_fetch_add_explicit(&c->st_retries, 1, memory_order_relaxed);
	}
	if (rv != 0 && why[0] == '\0')
		snprintf(why, sizeof(why), "%s", boc_strerror(rv));
	if (errlen > 0)
		snprintf(err, errlen, "%s", why);
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

const char *boc_role_name(int role)
{
	return wire_role_name(role);
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
