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
 *                        call each entry's callback, free the slot; a command
 *                        to resend goes to the resend pool (RESENDS), which
 *                        the flusher empties into slots like the queue
 *
 * Only the mutex-protected state (queue head/length, resend pool, free
 * slots, flags) is shared; a slot's batch is touched by one party at a
 * time: the flusher while it fills and sends it, then the aio callback,
 * then (after nng_aio_stop) boc_close. A slot goes back to the free list only after its
 * callbacks ran, so "every callback exactly once" is a property of the slot
 * life cycle: FREE -> (flusher) SENDING -> (aio) RECEIVING -> deliver -> FREE.
 *
 * TIMEOUTS
 *
 * Each entry records when it was submitted and when its current attempt
 * began (the submit, or its resend). A batch's deadline is the earliest of
 * its entries' attempt start + timeout_ms and command deadline (BOUNDS);
 * entries already past theirs when the flusher takes them fail at once, the
 * rest bound the nng send (which waits for a connected pipe: a down server
 * shows up here) and the receive. So an attempt ends at most about
 * timeout_ms after it began, whatever the server does. REQ resends are
 * disabled: a silent resend would double the load on an overloaded server;
 * the library's own resends (RESENDS) are bounded and batched.
 *
 * SEVERAL SERVERS
 *
 * One REQ socket per server address (targets[]: the configured ones, then
 * the ones not_primary replies named, never removed, so a target index
 * stays valid for the client's life; a named one is opened by the flusher,
 * or by boc_switchover's thread, before its first send). `home` is the
 * target new batches go to; a slot opens a context on a target's socket
 * the first time it sends there.
 *
 * ROUTES
 *
 * The shards' primaries may sit on different servers, so one `home` for
 * every command would have every other command answered not_primary and
 * resent (scale-out 0.044 in perf/README.md, issue 13). The client keeps a
 * small direct-mapped cache event -> target (routes[]), learnt from the
 * answers: the primary a not_primary reply names, and the server that
 * answered a mutating command (anything but not_primary). The flusher
 * splits each new batch by target: the first command's target keeps its
 * part; the other commands are parked in the resend pool (RESENDS), due at
 * once, for their own targets (not counted as resends), and leave in the
 * next passes, one message per target. Events not in the cache go to
 * `home`. The cache is only a hint: an entry torn by two concurrent
 * writers, evicted, or stale after a failover sends a command to the
 * wrong server, which answers not_primary: one resend, and the cache
 * learns again.
 *
 * RESENDS
 *
 * A command answered not_primary (or, with several targets, lost with its
 * connection or timed out) is resent with the same client and request ids.
 * Resends travel like new commands: in batches, sent by the flusher thread
 * on the slots' contexts. The aio callback that sees the outcome only
 * decides, under the lock, where and when (retry_batch): it parks the entry
 * in the resend pool with a target and a due time and wakes the flusher;
 * it opens no context, builds no message and calls nothing of nng's. The
 * flusher sends due resends (those of one target, up to batch_max, in the
 * order they were parked) before new batches: they are older.
 *
 * Why so: the first design gave each resent command an aio and a REQ
 * context of its own, opened and sent from nng's callback threads. When a
 * primary held thousands of commands (--min-in-sync 2 with the standby
 * down), each timed-out batch of 4096 became 4096 one-command messages,
 * all resent at once and again after every timeout: the client's and the
 * server's time went to per-message overhead, every attempt timed out
 * before its reply was read, and each left one more copy held at the
 * primary, to be answered in vain later (tests/client/retry_hold_test.c:
 * 8192 held commands made 124,000-409,000 resends, and outcomes resumed
 * only 7-50 s after the primary did).
 *
 * When: a resend to another server that a not_primary reply names goes at
 * once. Every other one (no primary named, the same server named, a lost
 * connection, a timeout) waits a backoff drawn uniformly from the upper
 * half of a span, so that the clients of one failover do not come back in
 * step. The span is backoff_ms after an answer (the server is fine, the
 * shard's primary is being elected: ask again soon), and doubles with the
 * command's resends, up to 2^RESEND_DOUBLINGS_MAX times, after an attempt
 * without one (the server is down or holds the command: spare it). One
 * draw per outcome of a batch, so that a batch's commands stay one batch.
 *
 * BOUNDS
 *
 * A command's deadline is its submit time + max(timeout_ms, deadline_ms)
 * (timeout_ms alone with no_retry). It is resent only while fewer than
 * retry_max resends were made and the resend is due before the deadline;
 * each attempt is bounded by timeout_ms and by the deadline; a resend
 * still waiting at its deadline fails then (the flusher wakes for the
 * earliest one). So every callback comes by the deadline, plus scheduling,
 * whatever the servers do. The pool cannot overflow: boc_submit counts the
 * waiting resends against queue_max, so queue + pool + slots never hold
 * more than queue_max + inflight_max * batch_max commands, its capacity.
 *
 * nng_sleep_aio is not used: in nng 1.5.2 an aio that once slept reports
 * the timeout of a later operation as success (aio.c sets a_expire_ok for
 * the sleep and never clears it), so a timed-out send "succeeded" with the
 * request handed back on the aio (the retry path overwrote it with the
 * next one: the requests LeakSanitizer found at the exit of the cluster
 * tests), and a timed-out receive "succeeded" without a message.
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

/* After attempts without an answer, a resend's backoff doubles this many
 * times at most (see RESENDS): with the default 200 ms, waits of 100-200,
 * 200-400 and then 400-800 ms, so that a command a server cannot answer
 * costs it a batch or two a second. */
#define RESEND_DOUBLINGS_MAX 2u
_Static_assert((1u << RESEND_DOUBLINGS_MAX) == 4, "boxoffice.h: backoffs grow to 4 * backoff_ms");
/* Resends failed at their deadline per pass of the flusher (on its stack). */
#define EXPIRE_CHUNK 32u

/* One submitted command waiting for its outcome. */
typedef struct entry {
	bo_cmd cmd;          /* copy of the caller's command, ids filled in */
	boc_callback cb;     /* may be NULL */
	void *ctx;           /* cb's argument */
	int64_t submit_ns;   /* CLOCK_MONOTONIC at boc_submit */
	int64_t attempt_ns;  /* start of the current attempt: submit_ns, then each resend's */
	int64_t deadline_ns; /* the callback runs by then (see BOUNDS) */
	uint64_t epoch;      /* the largest epoch a not_primary named (sent along) */
	uint32_t resends;    /* resends so far */
} entry;

/* A command of the resend pool waiting for its time (see RESENDS). */
typedef struct rwait {
	int64_t due_ns;      /* resend it no earlier */
	int64_t deadline_ns; /* its entry's: fail it then */
	uint32_t pool;       /* its entry: client->r_pool[pool] */
	uint32_t target;     /* where it goes */
} rwait;

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
	bool resend;                  /* the batch is of resends: it goes to target */
	nng_aio *aio;
	int phase;             /* slot_phase; FREE only under client->mu */
	uint32_t n;            /* entries in e[] */
	int64_t deadline_ns;   /* the earliest of its entries' attempt limits */
	entry *e;              /* [batch_max] */
	bo_result *res;        /* [batch_max] decoded replies */
	wire_reply_info *info; /* [batch_max] */
	uint8_t *parked;       /* [batch_max] retry_batch's scratch: 1 = resent */
	msgpack_sbuffer sbuf;  /* encoded request, reused */
	struct slot *next_free;
} slot;

/* One server address and its REQ socket. */
typedef struct target {
	char url[BOC_ADDRESS_LEN_MAX];
	nng_socket sock;
	nng_dialer dialer;
	bool open; /* under mu: sock is open (a named target opens on first use) */
} target;

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
	int64_t life_ns; /* submit to deadline of every command (see BOUNDS) */
	target targets[BOC_SERVERS_MAX];
	_Atomic uint32_t ntargets; /* targets[0..ntargets) are known; grows under mu */
	uint32_t nconfigured;      /* the addresses given to boc_open */
	_Atomic uint32_t home;     /* where new batches go */

	pthread_mutex_t mu;
	pthread_cond_t flush_cv; /* flusher waits: queue due, resend due, slot freed, closing */
	pthread_cond_t idle_cv;  /* boc_close waits: queue and pool empty and all slots free */
	/* Under mu: */
	entry *q;          /* [queue_max] ring */
	uint32_t q_head;   /* oldest queued */
	uint32_t q_len;    /* queued, not taken */
	uint32_t q_taking; /* taken by the flusher, still being copied */
	slot *free_slots;  /* stack of SLOT_FREE slots */
	uint32_t slots_busy;
	bool closing;  /* boc_close began: refuse submits, flush without linger */
	bool stopping; /* boc_close stops the flusher and the aios */
	/* The resend pool (see RESENDS and BOUNDS), under mu: */
	entry *r_pool;    /* [r_max] parked commands */
	uint32_t *r_free; /* [r_max] stack of free r_pool indices */
	uint32_t r_nfree;
	rwait *r_wait;          /* [r_max] the parked ones, in the order parked */
	uint32_t r_len;         /* parked */
	uint32_t r_max;         /* queue_max + inflight_max * batch_max; 0 with no_retry */
	int64_t r_due_min;      /* the earliest due_ns in r_wait, INT64_MAX when empty */
	int64_t r_deadline_min; /* the earliest deadline_ns in r_wait, likewise */
	uint64_t r_rand;        /* xorshift64 state of the backoff draws, never 0 */

	slot *slots; /* [inflight_max] */
	pthread_t flusher;
	route routes[ROUTES]; /* see ROUTES */
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

static void retry_batch(slot *s, uint32_t n, int err, const char *why);
static bool can_failover(const boc_client *c);
static void route_set(boc_client *c, uint64_t event, uint32_t t);

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
 * servers its commands are resent elsewhere (retry_batch); else, or when
 * the client is closing, they fail. */
static void slot_fail_or_retry(slot *s, int err, const char *why)
{
	boc_client *c = s->client;
	if (err == BOC_ERR_CLOSED || !can_failover(c)) {
		slot_fail_all(s, err, why);
		return;
	}
	retry_batch(s, s->n, err, why);
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
 * refused the whole message) applies to every command. not_primary answers
 * are packed at the front of the batch (entry, result, info) and handed to
 * retry_batch together. */
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
	/* A message-level answer is read for every command, while the packing
	 * below overwrites res[0] and info[0]: keep it aside. */
	bo_result whole_res = s->res[0];
	wire_reply_info whole_info = s->info[0];
	uint32_t resend = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		const entry *en = &s->e[i];
		bo_result r = whole ? whole_res : s->res[i];
		const wire_reply_info *inf = whole ? &whole_info : &s->info[i];
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
			/* resend <= i: each slot is read before it is written. */
			s->e[resend] = *en;
			s->res[resend] = r;
			if (&s->info[resend] != inf)
				s->info[resend] = *inf;
			resend++;
			continue;
		}
		if (bo_op_mutates(en->cmd.op))
			route_set(c, en->cmd.event_id, s->target); /* it answered: the primary */
		atomic_fetch_add_explicit(&c->st_replies, 1, memory_order_relaxed);
		if (en->cb != NULL)
			en->cb(en->ctx, 0, &r, inf->error);
	}
	s->n = 0;
	if (resend > 0)
		retry_batch(s, resend, 0, NULL);
}

/* nng calls this when the slot's send or receive completes. */
static void slot_aio_cb(void *arg)
{
	slot *s = arg;
	boc_client *c = s->client;
	int rv = nng_aio_result(s->aio);
	if (s->phase == SLOT_SENDING) {
		/* nng takes the message only from a send that succeeds; one it
		 * hands back is ours, and the send did not happen whatever the
		 * result says (nng 1.5.2 reports success for an aio that once
		 * slept: see the note at the top; slots never sleep). */
		nng_msg *back = nng_aio_get_msg(s->aio);
		if (back != NULL) {
			nng_msg_free(back);
			nng_aio_set_msg(s->aio, NULL);
			if (rv == 0)
				rv = NNG_ETIMEDOUT;
		}
		if (rv != 0) {
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
	nng_msg *msg = rv == 0 ? nng_aio_get_msg(s->aio) : NULL;
	if (rv == 0 && msg == NULL)
		rv = NNG_ETIMEDOUT; /* the same nng defect on a receive: no reply */
	if (rv != 0) {
		slot_fail_or_retry(s, err_from_nng(rv), nng_why(rv, "no reply from the server"));
		slot_release(s);
		return;
	}
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

/* The target of `address`, added (not opened: see target_open_locked) if
 * new; -1 when there is no room left or the client stops. Under mu: the
 * aio callbacks use it, and they must not open sockets. */
static int target_find_or_add_locked(boc_client *c, const char *address)
{
	uint32_t n = atomic_load_explicit(&c->ntargets, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(c->targets[i].url, address) == 0)
			return (int)i;
	if (n == BOC_SERVERS_MAX || c->stopping)
		return -1;
	snprintf(c->targets[n].url, sizeof(c->targets[n].url), "%s", address);
	c->targets[n].open = false;
	/* Release: a reader that sees the count sees the address. */
	atomic_store_explicit(&c->ntargets, n + 1, memory_order_release);
	return (int)n;
}

/* Opens target t's socket if it is not open yet. Under mu (opening does
 * not wait for the server). Returns 0 or target_open's error. */
static int target_open_locked(boc_client *c, uint32_t t)
{
	assert(t < atomic_load_explicit(&c->ntargets, memory_order_relaxed));
	target *tg = &c->targets[t];
	if (tg->open)
		return 0;
	if (c->stopping)
		return BOC_ERR_CLOSED;
	char url[BOC_ADDRESS_LEN_MAX];
	memcpy(url, tg->url, sizeof(url));
	int rv = target_open(tg, url);
	tg->open = rv == 0;
	return rv;
}

/* The target of `address`, opened (and dialled) if new; -1 when there is
 * no room left or it cannot be opened (the caller then tries the next
 * configured address instead). A caller's thread, never an aio callback. */
static int target_find_or_add(boc_client *c, const char *address)
{
	pthread_mutex_lock(&c->mu);
	int t = target_find_or_add_locked(c, address);
	if (t >= 0 && target_open_locked(c, (uint32_t)t) != 0)
		t = -1;
	pthread_mutex_unlock(&c->mu);
	return t;
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

/* ---- Resends (see RESENDS and BOUNDS) ------------------------------------ */

/* The next backoff draw (xorshift64: spreading waits needs no more). */
static uint64_t rand_next_locked(boc_client *c)
{
	uint64_t x = c->r_rand;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->r_rand = x;
	assert(x != 0);
	return x;
}

/* The wait before a resend when no other server was named: backoff_ms
 * doubled `doublings` times (at most RESEND_DOUBLINGS_MAX), from the upper
 * half of that by `draw`. */
static int64_t backoff_ns(const boc_client *c, uint32_t doublings, uint64_t draw)
{
	if (doublings > RESEND_DOUBLINGS_MAX)
		doublings = RESEND_DOUBLINGS_MAX;
	int64_t full = (int64_t)c->ropt.backoff_ms * 1000000 << doublings;
	int64_t half = full / 2;
	assert(half > 0);
	return half + (int64_t)(draw % (uint64_t)(half + 1));
}

/* Puts a copy of *en into the pool, due at due_ns, for target t. */
static void park_locked(boc_client *c, const entry *en, uint32_t t, int64_t due_ns)
{
	assert(c->r_nfree > 0 && c->r_len < c->r_max); /* see BOUNDS */
	assert(due_ns < en->deadline_ns);
	uint32_t k = c->r_free[--c->r_nfree];
	c->r_pool[k] = *en;
	c->r_wait[c->r_len++] =
	        (rwait){.due_ns = due_ns, .deadline_ns = en->deadline_ns, .pool = k, .target = t};
	if (due_ns < c->r_due_min)
		c->r_due_min = due_ns;
	if (en->deadline_ns < c->r_deadline_min)
		c->r_deadline_min = en->deadline_ns;
}

/* ---- Routes (see ROUTES) --------------------------------------------------- */

static uint32_t route_index(uint64_t event)
{
	return (uint32_t)((event * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - ROUTES_LOG2));
}

/* Where event's commands go: its cached target, else `home`. Any thread. */
static uint32_t route_get(boc_client *c, uint64_t event)
{
	const route *r = &c->routes[route_index(event)];
	uint32_t t1 = atomic_load_explicit(&r->target1, memory_order_acquire);
	uint32_t n = atomic_load_explicit(&c->ntargets, memory_order_acquire);
	if (t1 != 0 && t1 <= n && atomic_load_explicit(&r->event, memory_order_relaxed) == event)
		return t1 - 1;
	return atomic_load_explicit(&c->home, memory_order_acquire);
}

/* Remembers that event's commands go to target t (a store only when that
 * changes it). Any thread. */
static void route_set(boc_client *c, uint64_t event, uint32_t t)
{
	if (route_get(c, event) == t)
		return;
	route *r = &c->routes[route_index(event)];
	/* A torn pair only misroutes one command (see ROUTES). */
	atomic_store_explicit(&r->target1, 0, memory_order_relaxed);
	atomic_store_explicit(&r->event, event, memory_order_relaxed);
	atomic_store_explicit(&r->target1, t + 1, memory_order_release);
}

/* Decides, for s->e[0..n) after an outcome at s->target, which are resent,
 * where and when, parks those and delivers the others' outcome. The
 * outcome: err < 0 (lost connection or timeout, text why) for all, or
 * err == 0: s->res[i] and s->info[i] hold entry i's not_primary answer.
 * An aio callback (or the flusher, for a send that could not start): only
 * the lock is taken, nothing of nng's is called. Empties the slot. */
static void retry_batch(slot *s, uint32_t n, int err, const char *why)
{
	boc_client *c = s->client;
	assert(n <= c->opt.batch_max);
	assert(err <= 0 && (err < 0) == (why != NULL));
	uint32_t from = s->target;
	int64_t now = bo_clock_ns();
	uint32_t parked = 0;
	pthread_mutex_lock(&c->mu);
	bool may = !c->stopping && !c->ropt.no_retry && c->r_max > 0;
	uint64_t draw = may ? rand_next_locked(c) : 0; /* one per outcome: see RESENDS */
	for (uint32_t i = 0; i < n; i++) {
		entry *en = &s->e[i];
		const wire_primary *p = err == 0 ? &s->info[i].primary : NULL;
		s->parked[i] = 0;
		if (!may || en->resends >= c->ropt.retry_max)
			continue;
		int t = p != NULL && p->known ? target_find_or_add_locked(c, p->address) : -1;
		if (t >= 0)
			route_set(c, en->cmd.event_id, (uint32_t)t);
		bool elsewhere = t >= 0 && (uint32_t)t != from;
		if (!elsewhere)
			t = (int)target_next(c, from);
		/* Back off harder only from a server that did not answer. */
		int64_t due =
		        now + (elsewhere ? 0 : backoff_ns(c, err < 0 ? en->resends : 0, draw));
		if (due >= en->deadline_ns)
			continue; /* no time left for it: its outcome now */
		if (p != NULL && p->epoch > en->epoch)
			en->epoch = p->epoch;
		en->resends++;
		park_locked(c, en, (uint32_t)t, due);
		s->parked[i] = 1;
		parked++;
		/* Later batches follow the last answer, unless another one
		 * moved them already. */
		uint32_t expect = from;
		atomic_compare_exchange_strong_explicit(&c->home, &expect, (uint32_t)t,
		                                        memory_order_release, memory_order_relaxed);
	}
	if (parked > 0)
		pthread_cond_signal(&c->flush_cv);
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_add_explicit(&c->st_retries, parked, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++) {
		const entry *en = &s->e[i];
		if (s->parked[i])
			continue;
		if (err < 0) {
			fail_entry(c, en, err, "%s", why);
			continue;
		}
		atomic_fetch_add_explicit(&c->st_replies, 1, memory_order_relaxed);
		if (en->cb != NULL)
			en->cb(en->ctx, 0, &s->res[i], s->info[i].error);
	}
	s->n = 0;
}

/* Moves parked commands into out[] (up to cap), in the order they were
 * parked, keeps the others and recomputes the pool's earliest times. Under
 * mu. expired: those whose deadline has come; else the due ones of one
 * target (the first due one's, returned in *where). Returns how many. */
static uint32_t pool_take_locked(boc_client *c, int64_t now, bool expired, entry *out, uint32_t cap,
                                 int64_t *where)
{
	uint32_t n = 0, kept = 0;
	int64_t t = -1;
	int64_t due_min = INT64_MAX, deadline_min = INT64_MAX;
	for (uint32_t i = 0; i < c->r_len; i++) {
		rwait w = c->r_wait[i];
		bool take = n < cap && (expired ? w.deadline_ns <= now
		                                : w.due_ns <= now && (t < 0 || w.target == (uint32_t)t));
		if (take) {
			if (!expired)
				t = w.target;
			out[n++] = c->r_pool[w.pool];
			c->r_free[c->r_nfree++] = w.pool;
			continue;
		}
		c->r_wait[kept++] = w;
		if (w.due_ns < due_min)
			due_min = w.due_ns;
		if (w.deadline_ns < deadline_min)
			deadline_min = w.deadline_ns;
	}
	c->r_len = kept;
	c->r_due_min = due_min;
	c->r_deadline_min = deadline_min;
	if (where != NULL)
		*where = t;
	return n;
}

/* Moves the due resends of one target into the free slot s (see
 * pool_take_locked). Under mu. */
static void take_resends_locked(boc_client *c, slot *s, int64_t now)
{
	int64_t t;
	s->n = pool_take_locked(c, now, false, s->e, c->opt.batch_max, &t);
	assert(s->n > 0 && t >= 0);
	s->target = (uint32_t)t;
	s->resend = true;
}

/* ---- Sending (flusher thread) -------------------------------------------- */

/* Encodes e[0..n) as one array into sbuf, every command carrying `epoch`
 * when it is not 0. On -EINVAL (a command without an encoding, or the
 * message would exceed WIRE_MSG_MAX) finds the commands that cannot be
 * encoded alone, fails them and retries with the rest. */
static int slot_encode(slot *s, uint64_t epoch)
{
	boc_client *c = s->client;
	s->sbuf.size = 0;
	/* bo_cmd is inside entry: encode from a packed array of commands.
	 * res[] is free until the reply comes, and is at least as large. */
	_Static_assert(sizeof(bo_result) >= sizeof(bo_cmd), "res[] can hold the commands");
	bo_cmd *cmds = (bo_cmd *)(void *)s->res;
	for (uint32_t i = 0; i < s->n; i++)
		cmds[i] = s->e[i].cmd;
	int rv = wire_encode_request_epoch(cmds, s->n, 1, epoch, &s->sbuf);
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
	return wire_encode_request_epoch(cmds, kept, 1, epoch, &s->sbuf);
}

/* Fails the entries whose time is up (see TIMEOUTS and BOUNDS), keeps the
 * others in order, and sets the slot's deadline from them. Returns the
 * largest epoch among them, for the message. */
static uint64_t slot_expire(slot *s, int64_t now)
{
	boc_client *c = s->client;
	int64_t timeout_ns = (int64_t)c->opt.timeout_ms * 1000000;
	const char *why = s->resend ? "no answer before the command's deadline (resends made)"
	                            : "timed out in the local queue (all connections busy)";
	uint32_t kept = 0;
	uint64_t epoch = 0;
	s->deadline_ns = INT64_MAX;
	for (uint32_t i = 0; i < s->n; i++) {
		entry *en = &s->e[i];
		if (s->resend)
			en->attempt_ns = now;
		int64_t limit = en->attempt_ns + timeout_ns;
		if (en->deadline_ns < limit)
			limit = en->deadline_ns;
		if (limit <= now) {
			fail_entry(c, en, BOC_ERR_TIMEOUT, "%s", why);
			continue;
		}
		if (limit < s->deadline_ns)
			s->deadline_ns = limit;
		if (en->epoch > epoch)
			epoch = en->epoch;
		if (kept != i)
			s->e[kept] = *en;
		kept++;
	}
	s->n = kept;
	return epoch;
}

/* Sends the slot's batch (flusher thread, slot owned, lock not held) to
 * s->target: a new batch's route (ROUTES), a batch of resends' target. */
static void slot_send(slot *s)
{
	boc_client *c = s->client;
	uint64_t epoch = slot_expire(s, bo_clock_ns());
	if (s->n == 0) {
		slot_release(s);
		return;
	}
	int rv = slot_encode(s, epoch);
	if (rv != 0 || s->n == 0) {
		if (rv == -EINVAL)
			slot_fail_all(s, BOC_ERR_INVALID, "batch exceeds the message size limit");
		else if (rv != 0)
			slot_fail_all(s, BOC_ERR_NOMEM, "out of memory encoding the request");
		slot_release(s);
		return;
	}
	uint32_t t = s->target; /* a resend's, or the new batch's route (route_split_locked) */
	pthread_mutex_lock(&c->mu);
	rv = target_open_locked(c, t);
	pthread_mutex_unlock(&c->mu);
	if (rv == 0 && !(s->ctx_open & (1u << t))) {
		if ((rv = nng_ctx_open(&s->ctx[t], c->targets[t].sock)) == 0) {
			nng_ctx_set_ms(s->ctx[t], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
			s->ctx_open |= 1u << t;
		} else {
			rv = err_from_nng(rv);
		}
	}
	if (rv != 0) {
		/* A named address nng refuses, or no memory: another may do. */
		slot_fail_or_retry(s, rv == BOC_ERR_CLOSED ? rv : BOC_ERR_TRANSPORT,
		                   "cannot open a connection to the server");
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
	nng_ctx_send(s->ctx[t], s->aio);
}

/* Takes a free slot. Under mu. */
static slot *slot_take_locked(boc_client *c)
{
	slot *s = c->free_slots;
	assert(s != NULL && s->phase == SLOT_FREE);
	c->free_slots = s->next_free;
	c->slots_busy++;
	s->phase = SLOT_SENDING;
	return s;
}

/* Splits a new batch by route (see ROUTES): the first command's target
 * keeps its part in s (s->target); the others are parked, due now, for
 * their own targets. Under mu. Nothing is parked without a pool (no_retry:
 * one server) or for a command whose deadline has come (slot_expire fails
 * it). The pool has room: it holds queue_max + inflight_max * batch_max,
 * every command the client can hold (BOUNDS). */
static void route_split_locked(boc_client *c, slot *s)
{
	uint32_t t = s->n > 0 ? route_get(c, s->e[0].cmd.event_id)
	                      : atomic_load_explicit(&c->home, memory_order_acquire);
	s->target = t;
	if (c->r_max == 0)
		return;
	int64_t now = bo_clock_ns();
	uint32_t kept = 0, parked = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		const entry *en = &s->e[i];
		uint32_t ti = i == 0 ? t : route_get(c, en->cmd.event_id);
		if (ti != t && now < en->deadline_ns) {
			park_locked(c, en, ti, now);
			parked++;
			continue;
		}
		if (kept != i)
			s->e[kept] = *en;
		kept++;
	}
	s->n = kept;
	if (parked > 0)
		pthread_cond_signal(&c->flush_cv);
}

/* Fills slot s with the oldest queued commands (up to batch_max). Called
 * under mu; returns with it held, but copies without it (see the note on
 * `taking` at the top). */
static void take_queued_locked(boc_client *c, slot *s)
{
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
	s->resend = false;

	pthread_mutex_lock(&c->mu);
	c->q_taking = 0;
	route_split_locked(c, s);
}

/* The batching decision: a message leaves when it is full (batch_max), when
 * its oldest command has waited linger_us (bounded latency cost of
 * batching), or at once when the client is closing. Waiting only while a
 * slot is free means that under load (all slots busy) batches grow on their
 * own while replies are outstanding, without any linger. Due resends go
 * first (they are older); resends whose deadline came fail here even when
 * no slot is free (BOUNDS). */
static void *flusher_main(void *arg)
{
	boc_client *c = arg;
	int64_t linger_ns = (int64_t)c->opt.linger_us * 1000;
	entry expired[EXPIRE_CHUNK];
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		int64_t now = bo_clock_ns();
		if (c->r_len > 0 && c->r_deadline_min <= now) {
			uint32_t n = pool_take_locked(c, now, true, expired, EXPIRE_CHUNK, NULL);
			pthread_mutex_unlock(&c->mu);
			fail_range(
			        c, expired, n, BOC_ERR_TIMEOUT,
			        "no answer before the command's deadline (waiting for a resend)");
			pthread_mutex_lock(&c->mu);
			if (c->closing)
				pthread_cond_broadcast(&c->idle_cv);
			continue;
		}
		slot *s = NULL;
		int64_t wake = c->r_len > 0 ? c->r_deadline_min : INT64_MAX;
		if (c->free_slots != NULL && c->r_len > 0 && c->r_due_min <= now) {
			s = slot_take_locked(c);
			take_resends_locked(c, s, now);
		} else if (c->free_slots != NULL && c->q_len > 0) {
			int64_t due = c->q[c->q_head].submit_ns + linger_ns;
			if (c->closing || c->q_len >= c->opt.batch_max || now >= due) {
				s = slot_take_locked(c);
				take_queued_locked(c, s);
			} else if (due < wake) {
				wake = due;
			}
		}
		if (s != NULL) {
			pthread_mutex_unlock(&c->mu);
			slot_send(s);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (c->free_slots != NULL && c->r_len > 0 && c->r_due_min < wake)
			wake = c->r_due_min;
		if (wake == INT64_MAX) {
			pthread_cond_wait(&c->flush_cv, &c->mu);
		} else {
			struct timespec ts = ns_to_ts(wake);
			pthread_cond_timedwait(&c->flush_cv, &c->mu, &ts);
		}
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
	ro->deadline_ms = BOC_RETRY_DEADLINE_MS_DEFAULT;
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
	if (in->deadline_ms)
		o->deadline_ms = in->deadline_ms;
	return o->retry_max <= BOC_RETRY_MAX_MAX && o->backoff_ms <= BOC_RETRY_BACKOFF_MS_MAX &&
	                       o->deadline_ms <= BOC_RETRY_DEADLINE_MS_MAX && o->no_retry <= 1
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
			free(c->slots[i].parked);
			msgpack_sbuffer_destroy(&c->slots[i].sbuf);
		}
	}
	free(c->slots);
	free(c->q);
	free(c->r_pool);
	free(c->r_free);
	free(c->r_wait);
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
	/* See BOUNDS for both. */
	uint32_t life_ms = c->opt.timeout_ms;
	if (!c->ropt.no_retry && c->ropt.deadline_ms > life_ms)
		life_ms = c->ropt.deadline_ms;
	c->life_ns = (int64_t)life_ms * 1000000;
	c->r_max = c->ropt.no_retry ? 0 : c->opt.queue_max + c->opt.inflight_max * c->opt.batch_max;
	_Static_assert((uint64_t)BOC_QUEUE_MAX_MAX +
	                               (uint64_t)BOC_INFLIGHT_MAX_MAX * WIRE_BATCH_MAX <
	                       UINT32_MAX,
	               "the resend pool's size fits");
	c->r_due_min = INT64_MAX;
	c->r_deadline_min = INT64_MAX;
	do
		c->r_rand = random_u64();
	while (c->r_rand == 0);
	c->q = calloc(c->opt.queue_max, sizeof(entry));
	c->slots = calloc(c->opt.inflight_max, sizeof(slot));
	if (c->r_max > 0) {
		/* Untouched pages of the pool cost no memory until a resend. */
		c->r_pool = calloc(c->r_max, sizeof(entry));
		c->r_free = calloc(c->r_max, sizeof(uint32_t));
		c->r_wait = calloc(c->r_max, sizeof(rwait));
	}
	if (c->q == NULL || c->slots == NULL ||
	    (c->r_max > 0 && (c->r_pool == NULL || c->r_free == NULL || c->r_wait == NULL))) {
		client_free_mem(c);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < c->r_max; k++)
		c->r_free[k] = c->r_max - 1 - k;
	c->r_nfree = c->r_max;
	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		slot *s = &c->slots[i];
		s->client = c;
		msgpack_sbuffer_init(&s->sbuf);
		s->e = calloc(c->opt.batch_max, sizeof(entry));
		s->res = calloc(c->opt.batch_max, sizeof(bo_result));
		s->info = calloc(c->opt.batch_max, sizeof(wire_reply_info));
		s->parked = calloc(c->opt.batch_max, sizeof(uint8_t));
		if (s->e == NULL || s->res == NULL || s->info == NULL || s->parked == NULL) {
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
	for (; opened < n && rv == 0; opened++) {
		if ((rv = target_open(&c->targets[opened], urls[opened])) != 0)
			break;
		c->targets[opened].open = true;
	}
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
	en.attempt_ns = en.submit_ns;
	en.deadline_ns = en.submit_ns + c->life_ns;
	en.epoch = 0;
	en.resends = 0;

	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		return -ESHUTDOWN;
	}
	/* Waiting resends count: they bound the pool (BOUNDS). */
	if (c->q_len + c->q_taking + c->r_len >= c->opt.queue_max) {
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
	while ((c->q_len > 0 || c->q_taking > 0 || c->slots_busy > 0 || c->r_len > 0) &&
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

	/* Nor resends: the callbacks park none once stopping is set, and the
	 * ones parked before wait for a flusher that is gone. */
	for (uint32_t k = 0; k < c->r_len; k++)
		fail_entry(c, &c->r_pool[c->r_wait[k].pool], BOC_ERR_CLOSED,
		           "client closed before the command was resent");
	c->r_len = 0;

	for (uint32_t i = 0; i < c->opt.inflight_max; i++) {
		for (uint32_t t = 0; t < BOC_SERVERS_MAX; t++)
			if (c->slots[i].ctx_open & (1u << t))
				nng_ctx_close(c->slots[i].ctx[t]);
		nng_aio_free(c->slots[i].aio);
	}
	uint32_t nt = atomic_load_explicit(&c->ntargets, memory_order_acquire);
	for (uint32_t t = 0; t < nt; t++)
		if (c->targets[t].open)
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
