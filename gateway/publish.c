/* publish.c — the projection publisher (see publish.h). */
#include "publish.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"

#define PIPE_SET_SLOTS 32768u

struct gw_pub {
	nng_socket sock;
	int sock_open;
	nng_listener listeners[GW_PUBLISH_MAX];
	uint32_t listener_count;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	/* Under lock: the queue (a ring of BO_PUB_QUEUE_MSGS), its bytes, stop. */
	nng_msg *q[BO_PUB_QUEUE_MSGS];
	int64_t q_at_ns[BO_PUB_QUEUE_MSGS]; /* when each was queued (/metrics) */
	uint32_t q_head, q_len;
	size_t q_bytes;
	int stop;
	atomic_uint_least64_t published, dropped, encode_failed, refused;
	atomic_uint subscribers; /* pipes between ADD_POST and REM_POST */
	bo_hist queue_us;	 /* each message's wait in the queue */
	pthread_mutex_t pipes_lock;
	uint32_t admitted;              /* under pipes_lock: pipes in the set */
	uint32_t pipes[PIPE_SET_SLOTS]; /* under pipes_lock */
};

/* The pipes counted as subscribers: a set of nng pipe ids (open
 * addressing, id + 1 so 0 is empty, backward-shift deletion) under
 * pipes_lock. nng 1.5.2 runs REM_POST also for a pipe closed in ADD_PRE
 * (whatever nng_pipe_notify(3) says), so only a set can tell which pipes
 * to uncount. */
_Static_assert(BO_IS_POW2(PIPE_SET_SLOTS) && PIPE_SET_SLOTS >= 2 * BO_SUBSCRIBERS_MAX,
               "half-empty set");

#define PIPE_POSTED 0x80000000u /* the entry's pipe reached ADD_POST */
#define PIPE_KEY(e) ((e) & ~PIPE_POSTED)

static uint32_t pipe_home(uint32_t key)
{
	return (key * 2654435761u) & (PIPE_SET_SLOTS - 1);
}

static void pipe_set_add(gw_pub *p, uint32_t key)
{
	uint32_t i = pipe_home(key);
	while (p->pipes[i] != 0)
		i = (i + 1) & (PIPE_SET_SLOTS - 1);
	p->pipes[i] = key;
}

/* The slot of key, or PIPE_SET_SLOTS when it is not there. */
static uint32_t pipe_set_find(const gw_pub *p, uint32_t key)
{
	for (uint32_t i = pipe_home(key);; i = (i + 1) & (PIPE_SET_SLOTS - 1)) {
		if (p->pipes[i] == 0)
			return PIPE_SET_SLOTS;
		if (PIPE_KEY(p->pipes[i]) == key)
			return i;
	}
}

/* Empties slot i, moving later entries of its run back into the hole
 * when their home is not between the hole and them. */
static void pipe_set_del(gw_pub *p, uint32_t i)
{
	for (uint32_t j = (i + 1) & (PIPE_SET_SLOTS - 1); p->pipes[j] != 0;
	     j = (j + 1) & (PIPE_SET_SLOTS - 1)) {
		uint32_t h = pipe_home(PIPE_KEY(p->pipes[j]));
		if (((j - h) & (PIPE_SET_SLOTS - 1)) >= ((j - i) & (PIPE_SET_SLOTS - 1))) {
			p->pipes[i] = p->pipes[j];
			i = j;
		}
	}
	p->pipes[i] = 0;
}

/* A subscriber connects or goes. At most BO_SUBSCRIBERS_MAX pipes are
 * admitted; one more is closed before it is added to the socket (ADD_PRE).
 * A pipe counts as a subscriber from ADD_POST (from then on it gets
 * messages) to REM_POST. */
static void pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	gw_pub *p = arg;
	uint32_t key = (uint32_t)nng_pipe_id(pipe) + 1;
	assert(key != 0 && !(key & PIPE_POSTED));
	pthread_mutex_lock(&p->pipes_lock);
	uint32_t i = ev == NNG_PIPE_EV_ADD_PRE ? PIPE_SET_SLOTS : pipe_set_find(p, key);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (p->admitted >= BO_SUBSCRIBERS_MAX) {
			atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
			pthread_mutex_unlock(&p->pipes_lock);
			nng_pipe_close(pipe);
			return;
		}
		pipe_set_add(p, key);
		p->admitted++;
	} else if (ev == NNG_PIPE_EV_ADD_POST && i < PIPE_SET_SLOTS) {
		p->pipes[i] |= PIPE_POSTED;
		atomic_fetch_add_explicit(&p->subscribers, 1, memory_order_relaxed);
	} else if (ev == NNG_PIPE_EV_REM_POST && i < PIPE_SET_SLOTS) {
		if (p->pipes[i] & PIPE_POSTED)
			atomic_fetch_sub_explicit(&p->subscribers, 1, memory_order_relaxed);
		pipe_set_del(p, i);
		p->admitted--;
	}
	pthread_mutex_unlock(&p->pipes_lock);
}

static void *pub_main(void *arg)
{
	gw_pub *p = arg;
	nng_msg *batch[256];
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->q_len == 0 && !p->stop)
			pthread_cond_wait(&p->cv, &p->lock);
		if (p->q_len == 0 && p->stop)
			break;
		uint32_t n = 0;
		int64_t now = bo_clock_ns();
		while (p->q_len > 0 && n < 256) {
			nng_msg *m = p->q[p->q_head];
			int64_t wait = now - p->q_at_ns[p->q_head];
			bo_hist_observe(&p->queue_us, wait > 0 ? (uint64_t)wait / 1000 : 0);
			p->q_head = (p->q_head + 1) % BO_PUB_QUEUE_MSGS;
			p->q_len--;
			p->q_bytes -= nng_msg_len(m);
			batch[n++] = m;
		}
		pthread_mutex_unlock(&p->lock);
		for (uint32_t i = 0; i < n; i++) {
			/* pub0 never blocks: a subscriber whose queue is full
			 * misses the message. On failure nng leaves it ours. */
			if (nng_sendmsg(p->sock, batch[i], 0) == 0)
				atomic_fetch_add_explicit(&p->published, 1, memory_order_relaxed);
			else
				nng_msg_free(batch[i]);
		}
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int64_t wall_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void gw_pub_emit(gw_pub *p, msgpack_sbuffer *scratch, uint64_t event_id, uint64_t prev_seq,
                 uint64_t seq, int64_t at_ms, const bo_change *changes, uint32_t n)
{
	wire_projection h = {.event_id = event_id,
	                     .prev_seq = prev_seq,
	                     .seq = seq,
	                     .at_ms = at_ms,
	                     .pub_us = wall_us(),
	                     .count = n};
	scratch->size = 0;
	int rc = wire_encode_projection(&h, changes, scratch);
	if (rc != 0) {
		/* The read model produced something the codec refuses: a bug.
		 * Subscribers of this event see a gap and resynchronise. */
		if (atomic_fetch_add_explicit(&p->encode_failed, 1, memory_order_relaxed) == 0)
			bo_log(BO_LOG_ERROR,
			       "msg=\"projection could not be encoded\" event=%" PRIu64 " error=%d",
			       event_id, rc);
		return;
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) != 0)
		goto drop;
	if (nng_msg_append(m, scratch->data, scratch->size) != 0) {
		nng_msg_free(m);
		goto drop;
	}
	int64_t now = bo_clock_ns();
	pthread_mutex_lock(&p->lock);
	if (p->stop || p->q_len == BO_PUB_QUEUE_MSGS ||
	    p->q_bytes + scratch->size > BO_PUB_QUEUE_BYTES) {
		pthread_mutex_unlock(&p->lock);
		nng_msg_free(m);
		goto drop;
	}
	p->q[(p->q_head + p->q_len) % BO_PUB_QUEUE_MSGS] = m;
	p->q_at_ns[(p->q_head + p->q_len) % BO_PUB_QUEUE_MSGS] = now;
	p->q_len++;
	p->q_bytes += scratch->size;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	return;
drop:
	atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
}

static void pub_close(gw_pub *p)
{
	for (uint32_t i = 0; i < p->listener_count; i++)
		nng_listener_close(p->listeners[i]);
	p->listener_count = 0;
	if (p->sock_open)
		nng_close(p->sock);
	p->sock_open = 0;
}

static void pub_free(gw_pub *p)
{
	for (uint32_t i = 0; i < p->q_len; i++)
		nng_msg_free(p->q[(p->q_head + i) % BO_PUB_QUEUE_MSGS]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->pipes_lock);
	free(p);
}

int gw_pub_start(const char *const *urls, uint32_t n, gw_pub **out, char *err, size_t errlen)
{
	assert(n >= 1 && n <= GW_PUBLISH_MAX);
	*out = NULL;
	gw_pub *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory for the publisher");
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->pipes_lock, NULL);
	int nrv = nng_pub0_open(&p->sock);
	if (nrv != 0) {
		snprintf(err, errlen, "nng: cannot open a PUB socket: %s", nng_strerror(nrv));
		pub_free(p);
		return -EIO;
	}
	p->sock_open = 1;
	int rc = 0;
	if ((nrv = nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, (int)BO_PUB_SENDBUF_MSGS)) != 0 ||
	    (nrv = nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, p)) != 0 ||
	    (nrv = nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, p)) != 0 ||
	    (nrv = nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_cb, p)) != 0) {
		snprintf(err, errlen, "nng: cannot configure the PUB socket: %s",
		         nng_strerror(nrv));
		rc = -EIO;
	}
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		nrv = nng_listen(p->sock, urls[i], &p->listeners[i], 0);
		if (nrv != 0) {
			snprintf(err, errlen, "cannot publish on %s: %s", urls[i],
			         nng_strerror(nrv));
			rc = nrv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL;
			break;
		}
		p->listener_count++;
		bo_log(BO_LOG_INFO, "msg=\"publishing projections\" url=%s", urls[i]);
	}
	if (rc == 0 && (rc = -pthread_create(&p->thread, NULL, pub_main, p)) < 0)
		snprintf(err, errlen, "cannot start the publisher thread: %s", strerror(-rc));
	if (rc < 0) {
		pub_close(p);
		pub_free(p);
		return rc;
	}
	p->started = 1;
	*out = p;
	return 0;
}

void gw_pub_stop(gw_pub *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	if (p->started)
		pthread_join(p->thread, NULL);
	p->started = 0;
	pub_close(p);
}

void gw_pub_free(gw_pub *p)
{
	if (!p)
		return;
	gw_pub_stop(p);
	pub_free(p);
}

void gw_pub_stats_get(gw_pub *p, gw_pub_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->published = atomic_load_explicit(&p->published, memory_order_relaxed);
	out->dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
	out->encode_failed = atomic_load_explicit(&p->encode_failed, memory_order_relaxed);
	out->subscribers = atomic_load_explicit(&p->subscribers, memory_order_relaxed);
	out->subscribers_refused = atomic_load_explicit(&p->refused, memory_order_relaxed);
	int64_t now = bo_clock_ns();
	pthread_mutex_lock(&p->lock);
	out->queued = p->q_len;
	int64_t age = p->q_len ? now - p->q_at_ns[p->q_head] : 0;
	pthread_mutex_unlock(&p->lock);
	out->oldest_queued_us = age > 0 ? (uint64_t)age / 1000 : 0;
}

const bo_hist *gw_pub_queue_hist(const gw_pub *p) { return &p->queue_us; }
