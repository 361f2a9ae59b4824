/*
 * sys_echo.c — the transport's ceiling (lg_sys_echo, "nng-echo"): a bare
 * nng REQ/REP echo carrying messages of boxoffice's sizes, and its server
 * (lg_echo_serve, boxoffice-bench --echo-server URL).
 *
 * Target: an nng URL (default tcp://127.0.0.1:7409). No options.
 *
 * Client: one REQ socket per lg_conn. exec sends ONE message for its n
 * requests and waits for the echo: the bytes libboxoffice-client would send
 * for them — a msgpack array of n command maps (the client library always
 * sends an array) — then marks every request LG_OK, or LG_NO_ANSWER when
 * the send or the receive failed (timeout EXEC_TIMEOUT_MS), or LG_ERROR
 * when the echo differs in length. Nothing is decoded on either side: what
 * is left is nng's and the kernel's cost per message and per byte.
 *
 * Message sizes are measured, not guessed: setup encodes a typical command
 * of every op and seat count with protocol/wire.h's encoder (the one the
 * client library uses), with the values a run sends — event ids around
 * cfg->events / 2 + 1, seats in the middle of the hall, the run's ttl,
 * client and request/claim ids of a few million (msgpack's 5-byte
 * integers) — and exec concatenates those maps. So an echo message is
 * byte for byte the size of boxoffice's request for the same lg_reqs, give
 * or take an id crossing a msgpack width.
 *
 * Server: a REP socket with ECHO_CTX_COUNT contexts, each an aio that
 * receives a message and sends it back unchanged, so requests from many
 * connections are echoed in parallel rather than one after another. It
 * runs until SIGTERM or SIGINT (blocked in every thread and taken with
 * sigwait on the caller's).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "protocol/wire.h"
#include "lg.h"

#define ECHO_TARGET_DEFAULT "tcp://127.0.0.1:7409"
/* Contexts of the echo server: more than the connections a run usually
 * opens (32), so no request waits for a free context. */
#define ECHO_CTX_COUNT 64u
/* A request unanswered this long counts as no answer. */
#define EXEC_TIMEOUT_MS 10000
/* Bytes of one encoded typical command (a hold of 8 seats is ~90). */
#define ECHO_CMD_MAX 160u
/* msgpack array header: fixarray (1 byte) up to 15, array16 (3) up to
 * 65535, array32 (5) beyond (the driver allows depth 65536). */
#define ECHO_ARRAY_HDR_MAX 5u

typedef struct echo_sys {
	char url[256];
	/* The encoded typical command of each op with n seats (n = 1..8;
	 * ops without seats encode the same for every n). */
	uint8_t cmd[LG_OP_COUNT][LG_SEATS_MAX + 1][ECHO_CMD_MAX];
	uint8_t cmd_len[LG_OP_COUNT][LG_SEATS_MAX + 1];
	uint32_t depth;
} echo_sys;

typedef struct echo_conn {
	echo_sys *sys;
	nng_socket sock;
} echo_conn;

static int echo_errno(int nng_rv)
{
	switch (nng_rv) {
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

/* ---- Server ----------------------------------------------------------- */

typedef struct echo_slot {
	nng_aio *aio;
	nng_ctx ctx;
	int sending; /* the aio's operation in flight: 1 send, 0 receive */
} echo_slot;

/* Runs on nng's threads: a receive completed -> send the same message
 * back; a send completed (or failed) -> receive the next. */
static void echo_slot_cb(void *arg)
{
	echo_slot *e = arg;
	int rv = nng_aio_result(e->aio);
	if (e->sending) {
		if (rv != 0) /* not sent: the message is still ours */
			nng_msg_free(nng_aio_get_msg(e->aio));
		e->sending = 0;
	} else if (rv == 0) {
		nng_msg *m = nng_aio_get_msg(e->aio);
		nng_aio_set_msg(e->aio, m);
		e->sending = 1;
		nng_ctx_send(e->ctx, e->aio);
		return;
	}
	if (rv == NNG_ECLOSED)
		return; /* the socket is closing: stop */
	nng_ctx_recv(e->ctx, e->aio);
}

/* Opens the REP socket at url with every slot receiving. 0 / -errno + err. */
static int echo_listen(const char *url, nng_socket *sock, echo_slot *slots, char *err)
{
	int rv = nng_rep0_open(sock);
	if (rv != 0) {
		snprintf(err, LG_ERR_LEN, "echo server: rep0 socket: %s", nng_strerror(rv));
		return echo_errno(rv);
	}
	for (unsigned i = 0; i < ECHO_CTX_COUNT && rv == 0; i++) {
		rv = nng_aio_alloc(&slots[i].aio, echo_slot_cb, &slots[i]);
		if (rv == 0)
			rv = nng_ctx_open(&slots[i].ctx, *sock);
	}
	if (rv == 0)
		rv = nng_listen(*sock, url, NULL, 0);
	if (rv != 0) {
		snprintf(err, LG_ERR_LEN, "echo server: listening at %s: %s", url,
		         nng_strerror(rv));
		return echo_errno(rv);
	}
	for (unsigned i = 0; i < ECHO_CTX_COUNT; i++)
		nng_ctx_recv(slots[i].ctx, slots[i].aio);
	return 0;
}

int lg_echo_serve(const char *url, char *err)
{
	/* Blocked before nng starts its threads, which inherit the mask, so
	 * the signal can only be taken by sigwait below. */
	sigset_t sigs, old;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	echo_slot *slots = calloc(ECHO_CTX_COUNT, sizeof(*slots));
	if (!slots) {
		snprintf(err, LG_ERR_LEN, "echo server: out of memory");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return -ENOMEM;
	}
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	int rc = echo_listen(url, &sock, slots, err);
	if (rc == 0) {
		fprintf(stderr, "boxoffice-bench: echo server listening at %s\n", url);
		int sig;
		while (sigwait(&sigs, &sig) != 0) {
		}
		fprintf(stderr, "boxoffice-bench: echo server: signal %d, stopping\n", sig);
	}
	nng_close(sock); /* every pending aio completes with NNG_ECLOSED */
	for (unsigned i = 0; i < ECHO_CTX_COUNT; i++)
		nng_aio_free(slots[i].aio); /* waits for its callback; NULL is fine */
	free(slots);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- Client ----------------------------------------------------------- */

/* The typical command of op with n seats, as sys_boxoffice would send it. */
static void echo_typical(const lg_config *cfg, int op, unsigned n, bo_cmd *c)
{
	static const uint8_t bo_ops[LG_OP_COUNT] = {[LG_READ] = BO_OP_QUERY_AVAIL,
	                                            [LG_HOLD_SEATS] = BO_OP_HOLD_SEATS,
	                                            [LG_HOLD_BEST] = BO_OP_HOLD_BEST,
	                                            [LG_CONFIRM] = BO_OP_CONFIRM,
	                                            [LG_RELEASE] = BO_OP_RELEASE};
	memset(c, 0, sizeof(*c));
	c->op = bo_ops[op];
	c->event_id = cfg->events / 2 + 1;
	c->client_id = 3000000 + 17;
	c->request_id = 3000000 + 4242;
	switch (op) {
	case LG_HOLD_SEATS:
		c->seat_count = (uint8_t)n;
		for (unsigned k = 0; k < n; k++)
			c->seats[k] = cfg->seats_per_event / 2 + k;
		c->ttl_ms = cfg->ttl_ms;
		break;
	case LG_HOLD_BEST:
		c->category = 0;
		c->quantity = (uint16_t)n;
		c->ttl_ms = cfg->ttl_ms;
		break;
	case LG_CONFIRM:
	case LG_RELEASE:
		c->claim_id = 3000000 + 99;
		break;
	default:
		break;
	}
}

/* Encodes every op's typical command with 1..LG_SEATS_MAX seats. */
static int echo_measure(const lg_config *cfg, echo_sys *s, char *err)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = 0;
	for (int op = 0; op < LG_OP_COUNT && rc == 0; op++) {
		for (unsigned n = 1; n <= LG_SEATS_MAX && rc == 0; n++) {
			bo_cmd c;
			echo_typical(cfg, op, n, &c);
			sb.size = 0;
			rc = wire_encode_request(&c, 1, 0, &sb);
			if (rc == 0 && sb.size > ECHO_CMD_MAX)
				rc = -E2BIG;
			if (rc == 0) {
				memcpy(s->cmd[op][n], sb.data, sb.size);
				s->cmd_len[op][n] = (uint8_t)sb.size;
			}
		}
	}
	msgpack_sbuffer_destroy(&sb);
	if (rc < 0)
		snprintf(err, LG_ERR_LEN, "nng-echo: encoding a typical command failed (%d)", rc);
	return rc;
}

/* A REQ socket dialled (synchronously: a refused dial fails here) to url. */
static int echo_dial(const char *url, nng_socket *out, char *err)
{
	nng_socket sock;
	int rv = nng_req0_open(&sock);
	if (rv == 0)
		rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, EXEC_TIMEOUT_MS);
	if (rv == 0)
		rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, EXEC_TIMEOUT_MS);
	if (rv == 0)
		rv = nng_dial(sock, url, NULL, 0);
	if (rv != 0) {
		snprintf(err, LG_ERR_LEN, "nng-echo: dialling %s: %s", url, nng_strerror(rv));
		nng_close(sock);
		return echo_errno(rv);
	}
	*out = sock;
	return 0;
}

/* Sends m (owned by the call) and checks the echo has len bytes. Returns
 * LG_OK, LG_ERROR (wrong length) or LG_NO_ANSWER. */
static uint8_t echo_round(nng_socket sock, nng_msg *m, size_t len)
{
	if (nng_sendmsg(sock, m, 0) != 0) {
		nng_msg_free(m);
		return LG_NO_ANSWER;
	}
	nng_msg *r;
	if (nng_recvmsg(sock, &r, 0) != 0)
		return LG_NO_ANSWER;
	uint8_t out = nng_msg_len(r) == len ? LG_OK : LG_ERROR;
	nng_msg_free(r);
	return out;
}

static int echo_setup(const lg_config *cfg, void **out, char *err)
{
	assert(cfg->depth >= 1);
	echo_sys *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, LG_ERR_LEN, "nng-echo: out of memory");
		return -ENOMEM;
	}
	const char *url = cfg->target ? cfg->target : ECHO_TARGET_DEFAULT;
	s->depth = cfg->depth;
	int rc = 0;
	if (strlen(url) >= sizeof(s->url)) {
		snprintf(err, LG_ERR_LEN, "nng-echo: URL too long: %.200s", url);
		rc = -EINVAL;
	}
	if (rc == 0) {
		snprintf(s->url, sizeof(s->url), "%s", url);
		rc = echo_measure(cfg, s, err);
	}
	/* Does it answer? One round of a read. */
	nng_socket sock;
	if (rc == 0)
		rc = echo_dial(s->url, &sock, err);
	if (rc == 0) {
		nng_msg *m;
		size_t len = s->cmd_len[LG_READ][1];
		rc = nng_msg_alloc(&m, 0) == 0 && nng_msg_append(m, s->cmd[LG_READ][1], len) == 0
		             ? 0
		             : -ENOMEM;
		if (rc == 0 && echo_round(sock, m, len) != LG_OK) {
			snprintf(err, LG_ERR_LEN, "nng-echo: no echo from %.200s", s->url);
			rc = -ETIMEDOUT;
		}
		nng_close(sock);
	}
	if (rc < 0) {
		free(s);
		return rc;
	}
	fprintf(stderr,
	        "boxoffice-bench: nng-echo: message bytes per command: read %u, hold %u (2 seats),"
	        " hold_best %u, confirm %u, release %u\n",
	        s->cmd_len[LG_READ][1], s->cmd_len[LG_HOLD_SEATS][2], s->cmd_len[LG_HOLD_BEST][2],
	        s->cmd_len[LG_CONFIRM][1], s->cmd_len[LG_RELEASE][1]);
	*out = s;
	return 0;
}

static int echo_conn_open(void *sys, unsigned idx, void **out, char *err)
{
	(void)idx;
	echo_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, LG_ERR_LEN, "nng-echo: out of memory");
		return -ENOMEM;
	}
	c->sys = sys;
	int rc = echo_dial(c->sys->url, &c->sock, err);
	if (rc < 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* One message for reqs[0..n-1]: the array header, then each request's
 * typical command. Returns it (NULL: out of memory) and its length. */
static nng_msg *echo_message(const echo_sys *s, const lg_req *reqs, unsigned n, size_t *len)
{
	uint8_t hdr[ECHO_ARRAY_HDR_MAX];
	size_t hlen;
	if (n <= 15) {
		hdr[0] = (uint8_t)(0x90u | n);
		hlen = 1;
	} else if (n <= 0xffffu) {
		hdr[0] = 0xdc;
		hdr[1] = (uint8_t)(n >> 8);
		hdr[2] = (uint8_t)n;
		hlen = 3;
	} else {
		hdr[0] = 0xdd;
		for (int k = 0; k < 4; k++)
			hdr[1 + k] = (uint8_t)(n >> (24 - 8 * k));
		hlen = 5;
	}
	/* Sized once and filled in place: nng_msg_append grows the body to
	 * the exact size each time, quadratic over a deep round. */
	size_t total = hlen;
	for (unsigned i = 0; i < n; i++) {
		assert(reqs[i].op < LG_OP_COUNT && reqs[i].n <= LG_SEATS_MAX);
		total += s->cmd_len[reqs[i].op][reqs[i].n ? reqs[i].n : 1];
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, total) != 0)
		return NULL;
	uint8_t *at = nng_msg_body(m);
	memcpy(at, hdr, hlen);
	at += hlen;
	for (unsigned i = 0; i < n; i++) {
		unsigned seats = reqs[i].n ? reqs[i].n : 1;
		memcpy(at, s->cmd[reqs[i].op][seats], s->cmd_len[reqs[i].op][seats]);
		at += s->cmd_len[reqs[i].op][seats];
	}
	assert((size_t)(at - (uint8_t *)nng_msg_body(m)) == total);
	*len = total;
	return m;
}

static void echo_exec(void *conn, lg_req *reqs, unsigned n)
{
	echo_conn *c = conn;
	assert(n >= 1 && n <= c->sys->depth);
	size_t len = 0;
	nng_msg *m = echo_message(c->sys, reqs, n, &len);
	/* Out of memory on the client is no answer from the system. */
	uint8_t out = m ? echo_round(c->sock, m, len) : LG_NO_ANSWER;
	for (unsigned i = 0; i < n; i++) {
		reqs[i].outcome = out;
		reqs[i].nseats_out = 0;
	}
}

static void echo_conn_close(void *conn)
{
	echo_conn *c = conn;
	nng_close(c->sock);
	free(c);
}

static void echo_teardown(void *sys)
{
	free(sys);
}

const lg_system lg_sys_echo = {
        .name = "nng-echo",
        .ops = (1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM) |
               (1u << LG_RELEASE),
        .setup = echo_setup,
        .conn_open = echo_conn_open,
        .exec = echo_exec,
        .conn_close = echo_conn_close,
        .audit = NULL,
        .teardown = echo_teardown,
};
