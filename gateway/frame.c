/*
 * frame.c — the framed TCP front (frame.h, schemas/frame.md).
 *
 * ONE THREAD, ONE RING. Every operation on a socket is an io_uring
 * request: a multishot accept on the listener, at most one recv and one
 * send per connection, a read of the eventfd that other threads write
 * when they complete a request, and a 100 ms timeout (stalled sends, the
 * stop deadline). Each loop turn submits what the last one prepared and
 * waits for at least one completion.
 *
 * A CONNECTION
 *   in    received bytes not yet parsed; it grows to hold the frame that is
 *         arriving (up to the message bound) and shrinks back afterwards.
 *   q     its requests in order: frame-slot numbers. A slot completes on
 *         any thread (reply_fn: pushed onto done_list); this thread then
 *         moves each completed reply at the head of q into `next`, so
 *         replies keep the order of requests.
 *   out   the bytes of the send in flight; `next` collects what completes
 *         meanwhile, and becomes the next send (one send per connection
 *         per loop turn, carrying every reply that is ready).
 * It ends in one of two ways: `eof` (the peer's end of stream, a bad
 * frame, the server stopping): read no more, send what is owed, then
 * close; or `closing` (a socket error, a stalled send, out of memory):
 * shutdown at once (its posted operations complete), drop what is unsent.
 * Either way its struct is reused only once no operation is posted and
 * every request of q has come back.
 */
#include "gateway/frame.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "base/clock.h"
#include "base/log.h"
#include "protocol/wire.h"

enum {
	UD_ACCEPT = 1,
	UD_EVENT,
	UD_TIMER,
	UD_RECV,
	UD_SEND,
	UD_CANCEL
};
#define UD(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))
#define FRAME_SLOTS (GW_FRAME_SLOTS_SMALL + GW_FRAME_SLOTS_BIG)
#define FRAME_TICK_NS 100000000LL
#define FRAME_STOP_GRACE_NS 1000000000LL

typedef struct fconn {
	int fd; /* -1: free */
	int recv_posted, send_posted;
	int eof, closing, starved, dirty;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out, *next;
	size_t out_len, out_off, out_cap, next_len, next_cap;
	uint32_t out_frames, next_frames;
	int64_t send_at_ns; /* the send in flight last moved bytes */
	uint32_t q[GW_FRAME_INFLIGHT_MAX];
	uint32_t q_head, q_len;
	char peer[32];
} fconn;

typedef struct fslot {
	struct fslot *next; /* done_list link */
	uint32_t conn;
	uint8_t done; /* this thread's view: the reply is in the slot */
} fslot;

struct gw_frame {
	gw_server *gw;
	struct io_uring ring;
	int ring_ok, lfd, efd;
	uint16_t port;
	pthread_t thread;
	int started;
	atomic_int stop;
	_Atomic(fslot *) done_list;
	uint32_t first; /* gw->slots index of frame slot 0 */
	size_t bound;   /* largest frame body: cfg.recv_max_bytes */
	fslot fs[FRAME_SLOTS];
	uint32_t free_small[GW_FRAME_SLOTS_SMALL], n_small;
	uint32_t free_big[GW_FRAME_SLOTS_BIG], n_big;
	fconn conns[GW_FRAME_CONNS_MAX];
	uint32_t free_conns[GW_FRAME_CONNS_MAX], n_free;
	uint32_t starved[GW_FRAME_CONNS_MAX], n_starved;
	uint32_t dirty[GW_FRAME_CONNS_MAX], n_dirty;
	uint32_t live; /* connections in use */
	int freed;     /* a slot came back this turn */
	int accept_posted, multishot, stopping;
	int64_t stop_deadline_ns;
	uint64_t efd_buf;
	struct __kernel_timespec tick;
	/* /metrics: written by the front's thread, read by any (relaxed). */
	int64_t refused_logged_ns;
	atomic_uint_least64_t n_conns, n_accepted, n_refused, n_requests, n_bad, n_stalled;
};

static _Thread_local struct gw_frame *ring_thread_of; /* set on the front's own thread */

/* ---- Completions from other threads ------------------------------------------ */

/* reply_fn: sl->reply holds the reply. Pushes the slot for the ring
 * thread; the push that finds the list empty wakes it (a later push finds
 * it non-empty only while a wake-up is still to be consumed). */
static void frame_reply(gw_slot *sl)
{
	struct gw_frame *fr = sl->front;
	fslot *fs = &fr->fs[sl->index - fr->first];
	fslot *head = atomic_load_explicit(&fr->done_list, memory_order_relaxed);
	do
		fs->next = head;
	while (!atomic_compare_exchange_weak_explicit(&fr->done_list, &head, fs,
	                                              memory_order_release, memory_order_relaxed));
	if (head == NULL && ring_thread_of != fr) {
		uint64_t one = 1;
		ssize_t w = write(fr->efd, &one, sizeof(one));
		(void)w; /* EAGAIN: the counter is saturated, a wake-up is pending anyway */
	}
}

/* ---- Ring helpers ------------------------------------------------------------ */

static struct io_uring_sqe *sqe_get(struct gw_frame *fr)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fr->ring);
	if (!sqe) {
		io_uring_submit(&fr->ring);
		sqe = io_uring_get_sqe(&fr->ring);
	}
	assert(sqe != NULL); /* the SQ was just emptied */
	return sqe;
}

static void post_accept(struct gw_frame *fr)
{
	struct io_uring_sqe *sqe = sqe_get(fr);
	if (fr->multishot)
		io_uring_prep_multishot_accept(sqe, fr->lfd, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, fr->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(UD_ACCEPT, 0));
	fr->accept_posted = 1;
}

static void post_event_read(struct gw_frame *fr)
{
	struct io_uring_sqe *sqe = sqe_get(fr);
	io_uring_prep_read(sqe, fr->efd, &fr->efd_buf, sizeof(fr->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, UD(UD_EVENT, 0));
}

static void post_timer(struct gw_frame *fr)
{
	struct io_uring_sqe *sqe = sqe_get(fr);
	fr->tick = (struct __kernel_timespec){.tv_sec = 0, .tv_nsec = FRAME_TICK_NS};
	io_uring_prep_timeout(sqe, &fr->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(UD_TIMER, 0));
}

static uint32_t conn_index(struct gw_frame *fr, const fconn *c)
{
	return (uint32_t)(c - fr->conns);
}

static void post_send(struct gw_frame *fr, fconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(fr);
	io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(UD_SEND, conn_index(fr, c)));
	c->send_posted = 1;
}

/* ---- Slots ------------------------------------------------------------------- */

/* A batch (an array of more than one command) needs a big slot; anything
 * else fits a small one (a malformed message is answered from either). */
static int wants_big(const uint8_t *body, size_t len)
{
	const uint8_t *tok;
	size_t tok_len;
	wire_msg wm;
	int skip = wire_decode_auth(body, len, &tok, &tok_len, &wm);
	if (skip < 0 || (size_t)skip >= len)
		return 0;
	uint8_t b = body[skip];
	return ((b & 0xf0) == 0x90 && (b & 0x0f) > 1) || b == 0xdc || b == 0xdd;
}

static gw_slot *slot_take(struct gw_frame *fr, int big)
{
	uint32_t k;
	if (big && fr->n_big > 0)
		k = fr->free_big[--fr->n_big];
	else if (!big && fr->n_small > 0)
		k = fr->free_small[--fr->n_small];
	else
		return NULL;
	return &fr->gw->slots[fr->first + k];
}

static void slot_give(struct gw_frame *fr, uint32_t k)
{
	gw_slot *sl = &fr->gw->slots[fr->first + k];
	wire_free_maps(sl->cmds, sl->count);
	sl->count = 0;
	fr->fs[k].done = 0;
	fr->freed = 1;
	if (k < GW_FRAME_SLOTS_SMALL)
		fr->free_small[fr->n_small++] = k;
	else
		fr->free_big[fr->n_big++] = k;
	atomic_fetch_sub_explicit(&fr->gw->in_flight, 1, memory_order_relaxed);
}

/* ---- Connections ------------------------------------------------------------- */

static void mark_dirty(struct gw_frame *fr, fconn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		fr->dirty[fr->n_dirty++] = conn_index(fr, c);
	}
}

/* Closes at once: the posted operations complete (shutdown wakes them),
 * what is unsent is dropped. */
static void conn_close(struct gw_frame *fr, fconn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->eof = 1;
	shutdown(c->fd, SHUT_RDWR);
	c->next_len = 0;
	c->next_frames = 0;
	mark_dirty(fr, c);
}

/* Gives the struct back once nothing refers to it any more. */
static void conn_release_if_idle(struct gw_frame *fr, fconn *c)
{
	if (!c->closing || c->recv_posted || c->send_posted || c->q_len > 0)
		return;
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c->next);
	uint32_t idx = conn_index(fr, c);
	for (uint32_t i = 0; c->starved && i < fr->n_starved; i++)
		if (fr->starved[i] == idx)
			fr->starved[i] = fr->starved[--fr->n_starved];
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	fr->free_conns[fr->n_free++] = idx;
	fr->live--;
	atomic_store_explicit(&fr->n_conns, fr->live, memory_order_relaxed);
}

static int conn_full(const fconn *c)
{
	return c->q_len + c->out_frames + c->next_frames >= GW_FRAME_INFLIGHT_MAX;
}

/* Posts a recv when the connection may read: not ending, not held back
 * (too much in flight, no slot), and no complete frame waiting. Makes
 * room for the frame that is arriving. */
static void conn_want_recv(struct gw_frame *fr, fconn *c)
{
	if (c->recv_posted || c->eof || c->starved || conn_full(c))
		return;
	size_t need = GW_FRAME_RECV_BUF;
	if (c->in_len >= GW_FRAME_HEADER_BYTES) {
		uint32_t n = (uint32_t)c->in[0] << 24 | (uint32_t)c->in[1] << 16 |
		             (uint32_t)c->in[2] << 8 | c->in[3];
		if (GW_FRAME_HEADER_BYTES + (size_t)n > need)
			need = GW_FRAME_HEADER_BYTES +
			       (size_t)n; /* n was checked against the bound */
	}
	/* Grow for a big frame; shrink back once the big frames are past. */
	if (c->in_cap != need && (c->in_cap < need || c->in_len <= need)) {
		uint8_t *b = realloc(c->in, need);
		if (!b) {
			bo_log(BO_LOG_ERROR,
			       "msg=\"frame: out of memory for a receive buffer: closing\" peer=%s bytes=%zu",
			       c->peer, need);
			conn_close(fr, c);
			return;
		}
		c->in = b;
		c->in_cap = need;
	}
	assert(c->in_len < c->in_cap);
	struct io_uring_sqe *sqe = sqe_get(fr);
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	io_uring_sqe_set_data64(sqe, UD(UD_RECV, conn_index(fr, c)));
	c->recv_posted = 1;
}

/* Hands each complete frame of c->in to the gateway, while the
 * connection may have more in flight and a slot is free. */
static void conn_parse(struct gw_frame *fr, fconn *c)
{
	size_t off = 0;
	while (!c->eof && !conn_full(c) && c->in_len - off >= GW_FRAME_HEADER_BYTES) {
		const uint8_t *h = c->in + off;
		uint32_t n =
		        (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
		if (n == 0 || n > fr->bound) {
			bo_log(BO_LOG_WARN,
			       "msg=\"frame: bad frame length: answering what came before it, then closing\" "
			       "peer=%s length=%" PRIu32 " bound=%zu",
			       c->peer, n, fr->bound);
			c->eof = 1;
			atomic_fetch_add_explicit(&fr->n_bad, 1, memory_order_relaxed);
			break;
		}
		if (c->in_len - off < GW_FRAME_HEADER_BYTES + (size_t)n)
			break;
		const uint8_t *body = h + GW_FRAME_HEADER_BYTES;
		gw_slot *sl = slot_take(fr, wants_big(body, n));
		if (!sl) {
			c->starved = 1;
			fr->starved[fr->n_starved++] = conn_index(fr, c);
			break;
		}
		uint32_t k = sl->index - fr->first;
		fr->fs[k].conn = conn_index(fr, c);
		c->q[(c->q_head + c->q_len) % GW_FRAME_INFLIGHT_MAX] = k;
		c->q_len++;
		atomic_fetch_add_explicit(&fr->gw->in_flight, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&fr->n_requests, 1, memory_order_relaxed);
		sl->start_ns = bo_clock_ns();
		gw_slot_receive(sl, body, n);
		off += GW_FRAME_HEADER_BYTES + n;
	}
	if (c->eof) {
		c->in_len = 0; /* nothing more is read or parsed */
	} else if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	conn_want_recv(fr, c);
	mark_dirty(fr, c);
}

static int append(uint8_t **buf, size_t *len, size_t *cap, const void *src, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 4096;
		while (ncap < *len + n)
			ncap *= 2;
		uint8_t *b = realloc(*buf, ncap);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
	memcpy(*buf + *len, src, n);
	*len += n;
	return 0;
}

/* Moves the completed replies at the head of c's queue into `next` (or
 * drops them when c is closing) and gives their slots back. */
static void conn_collect(struct gw_frame *fr, fconn *c)
{
	gw_server *gw = fr->gw;
	while (c->q_len > 0) {
		uint32_t k = c->q[c->q_head];
		if (!fr->fs[k].done)
			break;
		gw_slot *sl = &gw->slots[fr->first + k];
		if (!c->closing) {
			uint8_t h[GW_FRAME_HEADER_BYTES] = {
			        (uint8_t)(sl->reply.size >> 24), (uint8_t)(sl->reply.size >> 16),
			        (uint8_t)(sl->reply.size >> 8), (uint8_t)sl->reply.size};
			if (append(&c->next, &c->next_len, &c->next_cap, h, sizeof(h)) != 0 ||
			    append(&c->next, &c->next_len, &c->next_cap, sl->reply.data,
			           sl->reply.size) != 0) {
				bo_log(BO_LOG_ERROR,
				       "msg=\"frame: out of memory for replies: closing\" peer=%s",
				       c->peer);
				conn_close(fr, c);
			} else {
				c->next_frames++;
				atomic_fetch_add_explicit(&gw->requests, 1, memory_order_relaxed);
				atomic_fetch_add_explicit(&gw->commands, sl->count,
				                          memory_order_relaxed);
			}
		}
		slot_give(fr, k);
		c->q_head = (c->q_head + 1) % GW_FRAME_INFLIGHT_MAX;
		c->q_len--;
	}
	mark_dirty(fr, c);
}

/* End of a loop turn for a connection something happened to: start the
 * send of what is ready, read on if allowed, end it when it is done. */
static void conn_settle(struct gw_frame *fr, fconn *c)
{
	if (c->fd < 0) {
		c->dirty = 0;
		return;
	}
	if (!c->closing && !c->send_posted && c->next_len > 0) {
		uint8_t *b = c->out;
		size_t cap = c->out_cap;
		c->out = c->next;
		c->out_cap = c->next_cap;
		c->out_len = c->next_len;
		c->out_frames = c->next_frames;
		c->out_off = 0;
		c->next = b;
		c->next_cap = cap;
		c->next_len = 0;
		c->next_frames = 0;
		c->send_at_ns = bo_clock_ns();
		post_send(fr, c);
	}
	if (!c->closing && !c->eof && !c->starved && !conn_full(c) && !c->recv_posted)
		conn_parse(fr, c); /* back-pressure eased: frames waiting may go on */
	if (c->eof && !c->closing && c->q_len == 0 && c->next_len == 0 && !c->send_posted) {
		bo_log(BO_LOG_DEBUG, "msg=\"frame: connection done\" peer=%s", c->peer);
		c->closing = 1;
		shutdown(c->fd, SHUT_RDWR);
	}
	/* Cleared last: what settling marks again is settled now, so each
	 * connection is on the dirty list at most once. */
	c->dirty = 0;
	conn_release_if_idle(fr, c);
}

/* ---- Completions -------------------------------------------------------------- */

static void on_accept(struct gw_frame *fr, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		fr->accept_posted = 0;
	if (res < 0) {
		if (res == -EINVAL && fr->multishot && !fr->stopping) {
			fr->multishot = 0; /* a kernel without multishot accept */
		} else if (res != -ECANCELED) {
			bo_log(BO_LOG_WARN, "msg=\"frame: accept failed\" error=\"%s\"",
			       strerror(-res));
		}
	} else if (fr->stopping || fr->n_free == 0) {
		uint64_t n = fr->stopping ? 0
		                          : atomic_fetch_add_explicit(&fr->n_refused, 1,
		                                                      memory_order_relaxed) +
		                                    1;
		int64_t now = bo_clock_ns();
		if (n > 0 &&
		    now - fr->refused_logged_ns >= 1000000000) { /* a storm logs once a second */
			fr->refused_logged_ns = now;
			bo_log(BO_LOG_WARN,
			       "msg=\"frame: too many connections: refusing\" max=%u refused_total=%" PRIu64,
			       GW_FRAME_CONNS_MAX, n);
		}
		close(res);
	} else {
		fconn *c = &fr->conns[fr->free_conns[--fr->n_free]];
		fr->live++;
		atomic_store_explicit(&fr->n_conns, fr->live, memory_order_relaxed);
		atomic_fetch_add_explicit(&fr->n_accepted, 1, memory_order_relaxed);
		c->fd = res;
		int one = 1;
		setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct sockaddr_in a;
		socklen_t alen = sizeof(a);
		char ip[INET_ADDRSTRLEN] = "?";
		if (getpeername(res, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET)
			inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
		         a.sin_family == AF_INET ? ntohs(a.sin_port) : 0);
		conn_want_recv(fr, c);
	}
	if (!fr->accept_posted && !fr->stopping)
		post_accept(fr);
}

static void on_recv(struct gw_frame *fr, fconn *c, int res)
{
	c->recv_posted = 0;
	if (res > 0 && !c->closing) {
		c->in_len += (size_t)res;
		conn_parse(fr, c);
		return;
	}
	if (res == 0 && !c->closing && !c->eof) {
		if (c->in_len > 0)
			bo_log(BO_LOG_WARN,
			       "msg=\"frame: connection closed in the middle of a frame: the partial frame is dropped\" "
			       "peer=%s bytes=%zu",
			       c->peer, c->in_len);
		c->eof = 1; /* the replies owed still go out */
		c->in_len = 0;
	} else if (res < 0 && !c->closing) {
		bo_log(BO_LOG_INFO, "msg=\"frame: receive failed: closing\" peer=%s error=\"%s\"",
		       c->peer, strerror(-res));
		conn_close(fr, c);
	}
	mark_dirty(fr, c);
}

static void on_send(struct gw_frame *fr, fconn *c, int res)
{
	c->send_posted = 0;
	if (res < 0 || c->closing) {
		if (!c->closing)
			bo_log(BO_LOG_INFO,
			       "msg=\"frame: send failed: closing\" peer=%s error=\"%s\"", c->peer,
			       strerror(-res));
		conn_close(fr, c);
		mark_dirty(fr, c);
		return;
	}
	c->out_off += (size_t)res;
	if (c->out_off < c->out_len) {
		c->send_at_ns = bo_clock_ns();
		post_send(fr, c); /* the rest of it */
		return;
	}
	c->out_len = c->out_off = 0;
	c->out_frames = 0;
	mark_dirty(fr, c);
}

/* Every 100 ms: close connections whose send has not moved for
 * GW_FRAME_STALL_MS, and past the stop deadline, every connection. */
static void on_tick(struct gw_frame *fr)
{
	int64_t now = bo_clock_ns();
	int late = fr->stopping && now > fr->stop_deadline_ns;
	for (uint32_t i = 0; i < GW_FRAME_CONNS_MAX; i++) {
		fconn *c = &fr->conns[i];
		if (c->fd < 0 || c->closing)
			continue;
		if (c->send_posted && now - c->send_at_ns > (int64_t)GW_FRAME_STALL_MS * 1000000) {
			bo_log(BO_LOG_WARN,
			       "msg=\"frame: the client has not read its replies for %d ms: closing\" peer=%s "
			       "unsent_bytes=%zu",
			       GW_FRAME_STALL_MS, c->peer, c->out_len - c->out_off + c->next_len);
			atomic_fetch_add_explicit(&fr->n_stalled, 1, memory_order_relaxed);
			conn_close(fr, c);
		} else if (late) {
			bo_log(BO_LOG_WARN,
			       "msg=\"frame: stopping: replies not taken in time, closing\" peer=%s",
			       c->peer);
			conn_close(fr, c);
		}
	}
	if (!fr->stopping || fr->live > 0)
		post_timer(fr);
}

/* Takes every slot completed since the last turn. */
static void drain_done(struct gw_frame *fr)
{
	fslot *l = atomic_exchange_explicit(&fr->done_list, NULL, memory_order_acquire);
	for (; l; l = l->next) {
		l->done = 1;
		conn_collect(fr, &fr->conns[l->conn]);
	}
}

/* A slot still waiting for a shard once the output threads stopped is
 * answered busy: never applied; the client resends with the same ids. */
static void fail_pending(struct gw_frame *fr)
{
	for (uint32_t i = 0; i < GW_FRAME_CONNS_MAX; i++) {
		fconn *c = &fr->conns[i];
		for (uint32_t j = 0; c->fd >= 0 && j < c->q_len; j++) {
			uint32_t k = c->q[(c->q_head + j) % GW_FRAME_INFLIGHT_MAX];
			if (fr->fs[k].done)
				continue;
			gw_slot *sl = &fr->gw->slots[fr->first + k];
			sl->reply.size = 0;
			int rc = wire_encode_error(BO_BUSY, "server stopping, retry later",
			                           &sl->reply);
			(void)rc; /* -ENOMEM leaves an empty reply: the client sees a short frame
			             and retries */
			fr->fs[k].done = 1;
		}
		if (c->fd >= 0)
			conn_collect(fr, c);
	}
}

static void begin_stop(struct gw_frame *fr)
{
	fr->stopping = 1;
	fr->stop_deadline_ns = bo_clock_ns() + FRAME_STOP_GRACE_NS;
	if (fr->accept_posted) {
		struct io_uring_sqe *sqe = sqe_get(fr);
		io_uring_prep_cancel64(sqe, UD(UD_ACCEPT, 0), 0);
		io_uring_sqe_set_data64(sqe, UD(UD_CANCEL, 0));
	}
	drain_done(fr);
	fail_pending(fr);
	for (uint32_t i = 0; i < GW_FRAME_CONNS_MAX; i++) {
		fconn *c = &fr->conns[i];
		if (c->fd < 0)
			continue;
		c->eof = 1; /* read no more; what is owed still goes out */
		if (c->recv_posted)
			shutdown(c->fd, SHUT_RD);
		mark_dirty(fr, c);
	}
}

static void on_cqe(struct gw_frame *fr, const struct io_uring_cqe *cqe)
{
	uint32_t kind = (uint32_t)(cqe->user_data >> 32), idx = (uint32_t)cqe->user_data;
	switch (kind) {
	case UD_ACCEPT:
		on_accept(fr, cqe->res, cqe->flags);
		break;
	case UD_EVENT:
		if (!atomic_load_explicit(&fr->stop, memory_order_relaxed))
			post_event_read(fr);
		break; /* the list is drained every turn */
	case UD_TIMER:
		on_tick(fr);
		break;
	case UD_RECV:
		on_recv(fr, &fr->conns[idx], cqe->res);
		break;
	case UD_SEND:
		on_send(fr, &fr->conns[idx], cqe->res);
		break;
	default:
		break;
	}
}

/* Slots came back: the connections that waited for one go on (each
 * parse may put it back on the list). */
static void retry_starved(struct gw_frame *fr)
{
	if (!fr->freed)
		return;
	fr->freed = 0;
	uint32_t n = fr->n_starved;
	uint32_t idx[GW_FRAME_CONNS_MAX];
	memcpy(idx, fr->starved, n * sizeof(uint32_t));
	fr->n_starved = 0;
	for (uint32_t i = 0; i < n; i++) {
		fconn *c = &fr->conns[idx[i]];
		c->starved = 0;
		conn_parse(fr, c);
	}
}

static void *frame_main(void *arg)
{
	struct gw_frame *fr = arg;
	ring_thread_of = fr;
	/* A single-issuer ring belongs to the thread that enables it (liburing
	 * 2.3 declares io_uring_enable_rings but does not export it). */
	if ((fr->ring.flags & IORING_SETUP_R_DISABLED) &&
	    syscall(__NR_io_uring_register, fr->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
	            0) != 0)
		bo_log(BO_LOG_ERROR, "msg=\"frame: cannot enable the ring\" error=\"%s\"",
		       strerror(errno));
	post_event_read(fr);
	post_timer(fr);
	post_accept(fr);
	for (;;) {
		if (!fr->stopping && atomic_load_explicit(&fr->stop, memory_order_acquire))
			begin_stop(fr);
		/* Until nothing is left to do without waiting: answers given
		 * at once while parsing complete slots on this thread. */
		do {
			drain_done(fr);
			for (uint32_t i = 0; i < fr->n_dirty; i++)
				conn_settle(fr, &fr->conns[fr->dirty[i]]);
			fr->n_dirty = 0;
			retry_starved(fr);
		} while (fr->n_dirty > 0 ||
		         atomic_load_explicit(&fr->done_list, memory_order_relaxed) != NULL);
		if (fr->stopping && fr->live == 0 && !fr->accept_posted)
			break;
		int rc = io_uring_submit_and_wait(&fr->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			bo_log(BO_LOG_ERROR,
			       "msg=\"frame: io_uring failed: the framed front stops\" error=\"%s\"",
			       strerror(-rc));
			break;
		}
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&fr->ring, head, cqe)
		{
			on_cqe(fr, cqe);
			n++;
		}
		io_uring_cq_advance(&fr->ring, n);
	}
	return NULL;
}

/* ---- Life cycle ----------------------------------------------------------------- */

static int listen_open(struct gw_frame *fr, char *err, size_t errlen)
{
	const char *addr_s = fr->gw->cfg.frame;
	struct sockaddr_in addr;
	if (gw_http_parse_addr(addr_s, &addr) != 0) {
		snprintf(
		        err, errlen,
		        "invalid --frame address '%s': want HOST:PORT with an IPv4 HOST or localhost",
		        addr_s);
		return -EINVAL;
	}
	fr->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fr->lfd < 0) {
		snprintf(err, errlen, "frame: cannot open a socket: %s", strerror(errno));
		return -errno;
	}
	int one = 1;
	setsockopt(fr->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in bound;
	socklen_t blen = sizeof(bound);
	if (bind(fr->lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(fr->lfd, 1024) != 0 ||
	    getsockname(fr->lfd, (struct sockaddr *)&bound, &blen) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen for frames on %s: %s", addr_s, strerror(e));
		return -e;
	}
	fr->port = ntohs(bound.sin_port);
	return 0;
}

/* The ring: one issuer with deferred task work where the kernel has it
 * (completions run when this thread asks for them, no interrupts), else
 * cooperative task work, else plain. */
static int ring_open(struct gw_frame *fr, char *err, size_t errlen)
{
	static const unsigned flags[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	                                         IORING_SETUP_R_DISABLED,
	                                 IORING_SETUP_COOP_TASKRUN, 0};
	/* Posted at most: a recv and a send per connection, the accept, the
	 * eventfd read, the timer and a cancel; completions get twice that. */
	unsigned entries = 2 * GW_FRAME_CONNS_MAX + 8;
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && rc < 0; i++)
		rc = io_uring_queue_init(entries, &fr->ring, flags[i]);
	if (rc < 0) {
		snprintf(err, errlen, "frame: io_uring refused: %s", strerror(-rc));
		return rc;
	}
	fr->ring_ok = 1;
	return 0;
}

int gw_frame_start(gw_server *gw, char *err, size_t errlen)
{
	struct gw_frame *fr = calloc(1, sizeof(*fr));
	if (!fr) {
		snprintf(err, errlen, "out of memory for the framed front");
		return -ENOMEM;
	}
	gw->frame = fr;
	fr->gw = gw;
	fr->lfd = fr->efd = -1;
	fr->multishot = 1;
	fr->bound = gw->cfg.recv_max_bytes;
	fr->first =
	        gw->cfg.contexts + 1 + (gw->cfg.http ? GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG : 0);
	assert(fr->first + FRAME_SLOTS == gw->slot_count);
	for (uint32_t k = 0; k < FRAME_SLOTS; k++) {
		gw_slot *sl = &gw->slots[fr->first + k];
		assert(sl->cap == (k < GW_FRAME_SLOTS_SMALL ? 1u : WIRE_BATCH_MAX));
		sl->reply_fn = frame_reply;
		sl->front = fr;
	}
	for (uint32_t k = GW_FRAME_SLOTS_SMALL; k-- > 0;)
		fr->free_small[fr->n_small++] = k;
	for (uint32_t k = FRAME_SLOTS; k-- > GW_FRAME_SLOTS_SMALL;)
		fr->free_big[fr->n_big++] = k;
	for (uint32_t i = GW_FRAME_CONNS_MAX; i-- > 0;) {
		fr->conns[i].fd = -1;
		fr->free_conns[fr->n_free++] = i;
	}
	int rc = listen_open(fr, err, errlen);
	if (rc == 0 && (fr->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "frame: cannot make an eventfd: %s", strerror(-rc));
	}
	if (rc == 0)
		rc = ring_open(fr, err, errlen);
	if (rc == 0 && (rc = -pthread_create(&fr->thread, NULL, frame_main, fr)) < 0)
		snprintf(err, errlen, "frame: cannot start its thread: %s", strerror(-rc));
	if (rc < 0)
		return rc;
	fr->started = 1;
	bo_log(BO_LOG_INFO, "msg=\"listening for frames\" addr=%s port=%u", gw->cfg.frame,
	       fr->port);
	return 0;
}

void gw_frame_stop(gw_server *gw)
{
	struct gw_frame *fr = gw->frame;
	if (!fr)
		return;
	if (fr->started) {
		atomic_store_explicit(&fr->stop, 1, memory_order_release);
		uint64_t one = 1;
		ssize_t w = write(fr->efd, &one, sizeof(one));
		(void)w;
		pthread_join(fr->thread, NULL);
	}
	if (fr->ring_ok)
		io_uring_queue_exit(&fr->ring);
	if (fr->lfd >= 0)
		close(fr->lfd);
	if (fr->efd >= 0)
		close(fr->efd);
	for (uint32_t i = 0; i < GW_FRAME_CONNS_MAX; i++) {
		fconn *c = &fr->conns[i];
		if (c->fd < 0)
			continue; /* only after an io_uring failure: nothing is posted any more */
		close(c->fd);
		free(c->in);
		free(c->out);
		free(c->next);
	}
	for (uint32_t k = 0; k < FRAME_SLOTS; k++) {
		gw_slot *sl = &gw->slots[fr->first + k];
		sl->reply_fn = NULL;
		sl->front = NULL;
	}
	free(fr);
	gw->frame = NULL;
}

int gw_frame_stats_get(const gw_server *gw, gw_frame_stats *out)
{
	memset(out, 0, sizeof(*out));
	struct gw_frame *fr = gw->frame;
	if (!fr)
		return -ENOENT;
	out->connections = atomic_load_explicit(&fr->n_conns, memory_order_relaxed);
	out->accepted = atomic_load_explicit(&fr->n_accepted, memory_order_relaxed);
	out->refused = atomic_load_explicit(&fr->n_refused, memory_order_relaxed);
	out->requests = atomic_load_explicit(&fr->n_requests, memory_order_relaxed);
	out->bad_frames = atomic_load_explicit(&fr->n_bad, memory_order_relaxed);
	out->stalled = atomic_load_explicit(&fr->n_stalled, memory_order_relaxed);
	return 0;
}

int gw_frame_port(const gw_server *gw)
{
	return gw->frame ? gw->frame->port : -1;
}
