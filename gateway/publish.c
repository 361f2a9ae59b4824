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

#include "base/limits.h"
#include "base/log.h"

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
	uint32_t q_head, q_len;
	size_t q_bytes;
	int stop;
	atomic_uint_least64_t published, dropped, encode_failed, refused;
	atomic_uint subscribers;
};

/* A subscriber connects or goes: bound how many there are. ADD_PRE runs
 * before the pipe is usable, and a pipe closed there gets no further
 * event (nng_pipe_notify(3)); the count moves at ADD_POST and REM_POST.
 * Connections racing through ADD_PRE at once may pass the bound by as
 * many as race. */
static void pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	gw_pub *p = arg;
	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE:
		if (atomic_load_explicit(&p->subscribers, memory_order_relaxed) >= BO_SUBSCRIBERS_MAX) {
			atomic_fetch_add_explicit(&p->refused, 1, memory_order_relaxed);
			nng_pipe_close(pipe);
		}
		break;
	case NNG_PIPE_EV_ADD_POST:
		atomic_fetch_add_explicit(&p->subscribers, 1, memory_order_relaxed);
		break;
	case NNG_PIPE_EV_REM_POST: {
		unsigned n = atomic_load_explicit(&p->subscribers, memory_order_relaxed);
		while (n > 0 && !atomic_compare_exchange_weak_explicit(&p->subscribers, &n, n - 1,
									memory_order_relaxed, memory_order_relaxed))
			;
		break;
	}
	default:
		break;
	}
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
		while (p->q_len > 0 && n < 256) {
			nng_msg *m = p->q[p->q_head];
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

void gw_pub_emit(gw_pub *p, msgpack_sbuffer *scratch, uint64_t event_id, uint64_t prev_seq, uint64_t seq,
		 int64_t at_ms, const bo_change *changes, uint32_t n)
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
			bo_log(BO_LOG_ERROR, "msg=\"projection could not be encoded\" event=%" PRIu64 " error=%d",
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
	pthread_mutex_lock(&p->lock);
	if (p->stop || p->q_len == BO_PUB_QUEUE_MSGS || p->q_bytes + scratch->size > BO_PUB_QUEUE_BYTES) {
		pthread_mutex_unlock(&p->lock);
		nng_msg_free(m);
		goto drop;
	}
	p->q[(p->q_head + p->q_len) % BO_PUB_QUEUE_MSGS] = m;
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
		snprintf(err, errlen, "nng: cannot configure the PUB socket: %s", nng_strerror(nrv));
		rc = -EIO;
	}
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		nrv = nng_listen(p->sock, urls[i], &p->listeners[i], 0);
		if (nrv != 0) {
			snprintf(err, errlen, "cannot publish on %s: %s", urls[i], nng_strerror(nrv));
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
	pthread_mutex_lock(&p->lock);
	out->queued = p->q_len;
	pthread_mutex_unlock(&p->lock);
}
