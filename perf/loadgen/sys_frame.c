/*
 * sys_frame.c — boxoffice over the framed TCP front (schemas/frame.md):
 * one blocking TCP socket per connection (TCP_NODELAY), one command per
 * request message, every frame of a round written at once (depth =
 * pipeline depth) and the replies read in order. This is the path of
 * boxoffice_single_per_sec with --depth 1.
 *
 * target: the front's "HOST:PORT" (IPv4; default 127.0.0.1:7402, what
 * scripts/run serves).
 * --opt keys:
 *   nng=URL      the server's nng address, for setup (creating the events)
 *                and the audit, which are lg_sys_boxoffice's own so that
 *                both systems count alike (default tcp://127.0.0.1:7400)
 *   token=FILE   the server's shared token: each frame carries the prefix
 *                (and setup/audit pass it on)
 *   as=NAME, pg=CONNINFO   passed on to lg_sys_boxoffice's audit
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <msgpack.h>

#include "base/parse.h"
#include "base/tokenfile.h"
#include "client/boxoffice.h"
#include "lg.h"
#include "sys_bo.h"
#include "protocol/wire.h"

#define FR_TARGET_DEFAULT "127.0.0.1:7402"
#define FR_NNG_DEFAULT "tcp://127.0.0.1:7400"
/* A reply that takes longer is no answer (the server answers in ms). */
#define FR_TIMEOUT_S 10
#define FR_RBUF 65536u

typedef struct fr_sys {
	void *bx; /* lg_sys_boxoffice's setup, for the audit */
	lg_config cfg;
	struct sockaddr_in addr;
	char target[128];
	char opts[2048];
	msgpack_sbuffer auth; /* the auth prefix; empty without a token */
} fr_sys;

typedef struct fr_conn {
	fr_sys *sys;
	int fd; /* -1: reconnect on the next exec */
	msgpack_sbuffer out;
	uint8_t *in;
	size_t in_len, in_cap;
} fr_conn;

/* The target "HOST:PORT" into a. 0 / -1. */
static int parse_target(const char *s, struct sockaddr_in *a)
{
	const char *colon = strrchr(s, ':');
	char host[64];
	uint64_t port;
	if (!colon || (size_t)(colon - s) >= sizeof(host) ||
	    bo_parse_u64(colon + 1, 1, 65535, 0, &port) != 0)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
	                 &a->sin_addr) == 1
	               ? 0
	               : -1;
}

static int dial(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = FR_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Setup and the audit go through lg_sys_boxoffice on the nng address,
 * with the options that concern it. */
static int fr_setup(const lg_config *cfg, void **out, char *err)
{
	fr_sys *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	msgpack_sbuffer_init(&s->auth);
	snprintf(s->target, sizeof(s->target), "%s", cfg->target ? cfg->target : FR_TARGET_DEFAULT);
	char nng[512], v[512];
	if (!lg_opt(cfg->opts, "nng", nng, sizeof(nng)))
		snprintf(nng, sizeof(nng), "%s", FR_NNG_DEFAULT);
	int rc = 0;
	if (parse_target(s->target, &s->addr) != 0) {
		snprintf(err, LG_ERR_LEN, "boxoffice-frame: target %.120s: want HOST:PORT (IPv4)",
		         s->target);
		rc = -EINVAL;
	}
	size_t ol = 0;
	s->opts[0] = '\0';
	static const char *const pass[] = {"token", "as", "pg"};
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]) && rc == 0; i++)
		if (lg_opt(cfg->opts, pass[i], v, sizeof(v)))
			ol += (size_t)snprintf(s->opts + ol, sizeof(s->opts) - ol, "%s%s=%s",
			                       ol ? "," : "", pass[i], v);
	if (rc == 0 && lg_opt(cfg->opts, "token", v, sizeof(v))) {
		char tok[BO_AUTH_TOKEN_LEN_MAX + 1];
		size_t n;
		rc = bo_token_file_read(v, tok, &n, err, LG_ERR_LEN);
		if (rc == 0 && wire_encode_auth(tok, n, &s->auth) != 0) {
			snprintf(err, LG_ERR_LEN, "boxoffice-frame: out of memory");
			rc = -ENOMEM;
		}
	}
	lg_config bc = *cfg;
	bc.target = nng;
	bc.opts = s->opts;
	if (rc == 0)
		rc = lg_sys_boxoffice.setup(&bc, &s->bx, err);
	if (rc == 0) {
		/* Does the framed front answer? */
		int fd = dial(&s->addr);
		if (fd < 0) {
			snprintf(err, LG_ERR_LEN, "boxoffice-frame: cannot connect to %.120s: %s",
			         s->target, strerror(-fd));
			rc = fd;
			lg_sys_boxoffice.teardown(s->bx);
		} else {
			close(fd);
		}
	}
	if (rc) {
		msgpack_sbuffer_destroy(&s->auth);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int fr_conn_open(void *sysp, unsigned idx, void **out, char *err)
{
	(void)idx;
	fr_sys *s = sysp;
	fr_conn *c = calloc(1, sizeof(*c));
	if (!c || !(c->in = malloc(FR_RBUF))) {
		free(c);
		snprintf(err, LG_ERR_LEN, "boxoffice-frame: out of memory");
		return -ENOMEM;
	}
	c->in_cap = FR_RBUF;
	c->sys = s;
	msgpack_sbuffer_init(&c->out);
	c->fd = dial(&s->addr);
	if (c->fd < 0) {
		snprintf(err, LG_ERR_LEN, "boxoffice-frame: cannot connect to %.120s: %s",
		         s->target, strerror(-c->fd));
		int rc = c->fd;
		msgpack_sbuffer_destroy(&c->out);
		free(c->in);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Appends the frame of one request: length, auth prefix, the command. */
static int encode(fr_conn *c, const lg_req *q)
{
	size_t at = c->out.size;
	static const char zero[4];
	if (msgpack_sbuffer_write(&c->out, zero, 4) != 0)
		return -ENOMEM;
	if (c->sys->auth.size &&
	    msgpack_sbuffer_write(&c->out, c->sys->auth.data, c->sys->auth.size) != 0)
		return -ENOMEM;
	bo_cmd cmd;
	lg_bo_cmd(q, &cmd);
	int rc = wire_encode_request(&cmd, 1, 0, &c->out);
	if (rc != 0)
		return rc;
	uint32_t n = (uint32_t)(c->out.size - at - 4);
	uint8_t *h = (uint8_t *)c->out.data + at;
	h[0] = (uint8_t)(n >> 24);
	h[1] = (uint8_t)(n >> 16);
	h[2] = (uint8_t)(n >> 8);
	h[3] = (uint8_t)n;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The next reply frame's body (in c->in, valid until the next call) and
 * its length; -1 on a broken or timed-out stream. *off is where the
 * consumed part of c->in ends. */
static int next_reply(fr_conn *c, size_t *off, const uint8_t **body, uint32_t *len)
{
	for (;;) {
		size_t have = c->in_len - *off;
		if (have >= 4) {
			const uint8_t *h = c->in + *off;
			uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
			             (uint32_t)h[2] << 8 | h[3];
			if (n == 0 || n > WIRE_MSG_MAX)
				return -1;
			if (have >= 4 + (size_t)n) {
				*body = h + 4;
				*len = n;
				*off += 4 + (size_t)n;
				return 0;
			}
			if (4 + (size_t)n > c->in_cap) {
				uint8_t *b = realloc(c->in, 4 + (size_t)n);
				if (!b)
					return -1;
				c->in = b;
				c->in_cap = 4 + (size_t)n;
			}
		}
		if (*off > 0) { /* keep the partial frame at the start */
			memmove(c->in, c->in + *off, have);
			c->in_len = have;
			*off = 0;
		}
		ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->in_len += (size_t)r;
	}
}

static void fr_exec(void *connp, lg_req *reqs, unsigned n)
{
	fr_conn *c = connp;
	if (c->fd < 0 && (c->fd = dial(&c->sys->addr)) < 0) {
		for (unsigned i = 0; i < n; i++)
			reqs[i].outcome = LG_NO_ANSWER;
		return;
	}
	c->out.size = 0;
	unsigned sent = 0;
	for (; sent < n && encode(c, &reqs[sent]) == 0; sent++)
		;
	for (unsigned i = sent; i < n; i++)
		reqs[i].outcome = LG_ERROR; /* no encoding: a bad request of the workload */
	unsigned got = 0;
	if (write_all(c->fd, c->out.data, c->out.size) == 0) {
		size_t off = 0;
		for (; got < sent; got++) {
			const uint8_t *body;
			uint32_t len;
			if (next_reply(c, &off, &body, &len) != 0)
				break;
			bo_result res;
			wire_msg wm;
			if (wire_decode_replies(body, len, &res, NULL, 1, &wm) != 0 ||
			    wm.is_array || wm.count != 1)
				reqs[got].outcome = LG_ERROR;
			else
				lg_bo_fill(&reqs[got], 0, &res);
		}
		/* One request per frame, each answered in order: nothing is left
		 * over unless the stream broke. */
		c->in_len -= off;
		memmove(c->in, c->in + off, c->in_len);
	}
	if (got < sent) {
		for (unsigned i = got; i < sent; i++)
			reqs[i].outcome = LG_NO_ANSWER;
		close(c->fd);
		c->fd = -1;
		c->in_len = 0;
	}
}

static void fr_conn_close(void *connp)
{
	fr_conn *c = connp;
	if (c->fd >= 0)
		close(c->fd);
	msgpack_sbuffer_destroy(&c->out);
	free(c->in);
	free(c);
}

static int fr_audit(void *sysp, const lg_config *cfg, lg_audit *out, char *err)
{
	fr_sys *s = sysp;
	return lg_sys_boxoffice.audit(s->bx, cfg, out, err);
}

static void fr_teardown(void *sysp)
{
	fr_sys *s = sysp;
	lg_sys_boxoffice.teardown(s->bx);
	msgpack_sbuffer_destroy(&s->auth);
	free(s);
}

const lg_system lg_sys_frame = {
        .name = "boxoffice-frame",
        .ops = (1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM) |
               (1u << LG_RELEASE),
        .setup = fr_setup,
        .conn_open = fr_conn_open,
        .exec = fr_exec,
        .conn_close = fr_conn_close,
        .audit = fr_audit,
        .teardown = fr_teardown,
};
