/*
 * frame_test.c — the framed TCP front (schemas/frame.md) in-process, with a
 * plain blocking-socket client:
 *
 *  1. same-as-nng: a query and a hold sent as frames are answered with
 *     exactly the bytes nng answers (the hold's resend over nng, same ids,
 *     is the idempotent repeat of the frame's reply).
 *  2. pipelined: 1000 frames written at once (past the per-connection
 *     in-flight bound: back-pressure) over two events on two shards come
 *     back as 1000 replies in request order.
 *  3. batch: an array message is one frame, its reply one array.
 *  4. bad-length: a length 0 and one over the bound close that connection
 *     (after answering the frame before it) while another is still served.
 *  5. byte-by-byte: a frame written one byte per write is answered.
 *  6. half-frame: a client closing in the middle of a frame leaves the
 *     server serving.
 *  7. token: with a token, a frame without it is refused (unauthorized)
 *     and applies nothing; with the prefix it is applied.
 *  8. many-connections: 200 connections, each with a request in flight at
 *     once, each gets its own reply; the front's counters (/metrics) show
 *     them (bad-length checks its bad-frame counter).
 *  9. fuzz: random bodies of random lengths never stop the server: each
 *     frame is answered (or the connection closed on a bad length), and a
 *     good request still works afterwards.
 * 10. stop: gw_stop with connections open and requests answered returns
 *     within its bound and closes them.
 * 11. beyond-loopback: --frame on 0.0.0.0 without a token is refused
 *     (-EPERM, naming --frame), as --listen and --http are; a bad address
 *     is -EINVAL.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "base/seatmap.h"
#include "gateway/frame.h"
#include "gateway/gateway.h"
#include "protocol/wire.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/gwtest.h"

static tgw g_srv;

static void suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}
static void suite_fini(void)
{
	tgw_cleanup(&g_srv);
}

TestSuite(frame, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* A server with the framed front on a free port (and an optional token). */
static int srv_start(tgw *t, const char *token)
{
	tgw_config(t, "bo-frame-test");
	t->cfg.frame = "127.0.0.1:0";
	if (token) {
		t->cfg.auth_token = token;
		t->cfg.auth_token_len = strlen(token);
	}
	tgw_start(t);
	int port = gw_frame_port(t->gw);
	cr_assert(port > 0, "the framed front has no port");
	return port;
}

/* Creates event with rows x per_row seats and a pool of pool places. */
static void create_event(tgw *t, uint64_t event, uint32_t rows, uint32_t per_row, uint32_t pool)
{
	bo_seatmap *m = tcmd_rows_map(rows, per_row, 1, pool);
	bo_cmd c = tcmd_create(1, event * 1000, event, m);
	bo_result r;
	cr_assert_eq(gw_apply_local(t->gw, &c, 1, &r, TGW_WAIT_MS), 0);
	cr_assert_eq(r.status, BO_OK, "create_event %" PRIu64 ": %s", event,
	             bo_status_str(r.status));
	bo_seatmap_free(m);
}

/* ---- A frame client ----------------------------------------------------- */

static int conn_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	struct timeval tv = {.tv_sec = TGW_WAIT_MS / 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
	             strerror(errno));
	return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		cr_assert(w > 0, "write: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

/* Reads exactly n bytes; 0, or -1 at the end of the stream first (a
 * timeout fails the test). */
static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		cr_assert(r >= 0, "read: %s (a reply that never came)", strerror(errno));
		if (r == 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void put_be32(uint8_t *h, uint32_t n)
{
	h[0] = (uint8_t)(n >> 24);
	h[1] = (uint8_t)(n >> 16);
	h[2] = (uint8_t)(n >> 8);
	h[3] = (uint8_t)n;
}

static void send_frame(int fd, const void *body, size_t n)
{
	uint8_t h[4];
	put_be32(h, (uint32_t)n);
	write_all(fd, h, 4);
	write_all(fd, body, n);
}

/* One reply frame into *out (malloc'd, *len bytes); -1 at the end of the
 * stream. */
static int recv_frame(int fd, uint8_t **out, size_t *len)
{
	uint8_t h[4];
	if (read_all(fd, h, 4) < 0)
		return -1;
	uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	cr_assert(n > 0 && n <= WIRE_MSG_MAX, "reply frame length %" PRIu32, n);
	*out = malloc(n);
	cr_assert(*out);
	cr_assert_eq(read_all(fd, *out, n), 0, "the stream ended inside a reply frame");
	*len = n;
	return 0;
}

/* The request message of cmds[0..n) (one map when n == 1 and !as_array). */
static void encode(const bo_cmd *cmds, uint32_t n, int as_array, msgpack_sbuffer *b)
{
	msgpack_sbuffer_init(b);
	cr_assert_eq(wire_encode_request(cmds, n, as_array, b), 0);
}

/* Sends one command as a frame and decodes its one reply. */
static bo_result frame_call(int fd, const bo_cmd *c)
{
	msgpack_sbuffer b;
	encode(c, 1, 0, &b);
	send_frame(fd, b.data, b.size);
	msgpack_sbuffer_destroy(&b);
	uint8_t *rep;
	size_t len;
	cr_assert_eq(recv_frame(fd, &rep, &len), 0, "no reply");
	bo_result r;
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0, "reply: %s", wm.error);
	free(rep);
	return r;
}

/* The server answers: a query on fd is answered ok. */
static void assert_serving(int port, uint64_t event)
{
	int fd = conn_open(port);
	bo_cmd q = tcmd_query_avail(event);
	bo_result r = frame_call(fd, &q);
	cr_assert_eq(r.status, BO_OK, "query: %s", bo_status_str(r.status));
	close(fd);
}

/* The end of the stream comes (the server closed the connection). */
static void assert_closed(int fd)
{
	uint8_t b[256];
	for (;;) {
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return;
		cr_assert(r > 0, "read: %s (the connection was not closed)", strerror(errno));
	}
}

/* nng's reply bytes to msg. */
static void nng_call(const char *url, const msgpack_sbuffer *msg, uint8_t **out, size_t *len)
{
	nng_socket s = tgw_req_open(url);
	cr_assert_eq(nng_send(s, msg->data, msg->size, 0), 0);
	void *rep;
	cr_assert_eq(nng_recv(s, &rep, len, NNG_FLAG_ALLOC), 0);
	*out = malloc(*len);
	memcpy(*out, rep, *len);
	nng_free(rep, *len);
	nng_close(s);
}

static void frame_bytes(int fd, const msgpack_sbuffer *msg, uint8_t **out, size_t *len)
{
	send_frame(fd, msg->data, msg->size);
	cr_assert_eq(recv_frame(fd, out, len), 0);
}

/* ---- Tests -------------------------------------------------------------- */

Test(frame, same_as_nng)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	int fd = conn_open(port);
	bo_cmd q = tcmd_query_avail(1), h = tcmd_hold_best(7, 70, 1, 0, 2, 60000);
	msgpack_sbuffer mq, mh;
	encode(&q, 1, 0, &mq);
	encode(&h, 1, 0, &mh);
	uint8_t *a, *b;
	size_t alen, blen;
	frame_bytes(fd, &mq, &a, &alen);
	nng_call(g_srv.url, &mq, &b, &blen);
	cr_assert(alen == blen && memcmp(a, b, alen) == 0,
	          "query_avail: frame and nng replies differ");
	free(a);
	free(b);
	/* The hold over frames, then the same ids over nng: the idempotent
	 * repeat is the same result (marked replayed). */
	frame_bytes(fd, &mh, &a, &alen);
	nng_call(g_srv.url, &mh, &b, &blen);
	bo_result ra, rb;
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(a, alen, &ra, NULL, 1, &wm), 0);
	cr_assert_eq(wire_decode_replies(b, blen, &rb, NULL, 1, &wm), 0);
	cr_assert_eq(ra.status, BO_OK);
	cr_assert_eq(ra.seat_count, 2);
	cr_assert(ra.replayed == 0 && rb.replayed == 1,
	          "the nng repeat is not the frame's replayed");
	rb.replayed = 0;
	cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0,
	          "hold_best: frame reply and nng repeat differ");
	free(a);
	free(b);
	/* A malformed message: the same message-level error as nng's. */
	msgpack_sbuffer bad;
	msgpack_sbuffer_init(&bad);
	msgpack_sbuffer_write(&bad, "\xc1", 1);
	frame_bytes(fd, &bad, &a, &alen);
	nng_call(g_srv.url, &bad, &b, &blen);
	cr_assert(alen == blen && memcmp(a, b, alen) == 0,
	          "malformed: frame and nng replies differ");
	free(a);
	free(b);
	msgpack_sbuffer_destroy(&bad);
	msgpack_sbuffer_destroy(&mq);
	msgpack_sbuffer_destroy(&mh);
	close(fd);
	tgw_stop(&g_srv);
}

Test(frame, pipelined)
{
	int port = srv_start(&g_srv, NULL);
	/* Two events on different shards: their results come out of two
	 * output threads in no particular order between them. */
	uint64_t ev[2] = {1, 2};
	while (shard_for_event(ev[1], g_srv.cfg.shards) == shard_for_event(ev[0], g_srv.cfg.shards))
		ev[1]++;
	create_event(&g_srv, ev[0], 1, 1, 1000);
	create_event(&g_srv, ev[1], 1, 1, 1000);
	enum {
		N = 1000
	};
	msgpack_sbuffer all;
	msgpack_sbuffer_init(&all);
	for (uint32_t i = 0; i < N; i++) {
		bo_cmd c = tcmd(BO_OP_HOLD_POOL, 1 + i, 1 + i, ev[i % 2]);
		c.pool = 0;
		c.quantity = 1;
		c.ttl_ms = 60000;
		msgpack_sbuffer m;
		encode(&c, 1, 0, &m);
		uint8_t h[4];
		put_be32(h, (uint32_t)m.size);
		msgpack_sbuffer_write(&all, (const char *)h, 4);
		msgpack_sbuffer_write(&all, m.data, m.size);
		msgpack_sbuffer_destroy(&m);
	}
	int fd = conn_open(port);
	write_all(fd, all.data, all.size); /* every frame before any reply is read */
	msgpack_sbuffer_destroy(&all);
	for (uint32_t i = 0; i < N; i++) {
		uint8_t *rep;
		size_t len;
		cr_assert_eq(recv_frame(fd, &rep, &len), 0, "reply %u missing", i);
		bo_result r;
		wire_msg wm;
		cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0, "%s", wm.error);
		free(rep);
		cr_assert_eq(r.request_id, 1 + i,
		             "reply %u answers request %" PRIu64 ": out of order", i, r.request_id);
		cr_assert_eq(r.status, BO_OK, "hold %u: %s", i, bo_status_str(r.status));
	}
	close(fd);
	tgw_stop(&g_srv);
}

Test(frame, batch)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	bo_cmd cmds[3] = {tcmd_hold_best(5, 1, 1, 0, 1, 60000), tcmd_query_avail(1),
	                  tcmd_query_avail(999)};
	msgpack_sbuffer m;
	encode(cmds, 3, 1, &m);
	int fd = conn_open(port);
	uint8_t *rep;
	size_t len;
	frame_bytes(fd, &m, &rep, &len);
	bo_result r[3];
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(rep, len, r, NULL, 3, &wm), 0, "%s", wm.error);
	cr_assert(wm.is_array && wm.count == 3,
	          "a batch is answered with an array of 3 (is_array %u, count %u)", wm.is_array,
	          wm.count);
	cr_assert_eq(r[0].status, BO_OK);
	cr_assert_eq(r[0].op, BO_OP_HOLD_BEST);
	cr_assert_eq(r[1].status, BO_OK);
	cr_assert_eq(r[2].status, BO_NOT_FOUND);
	free(rep);
	/* A single command in an array is an array too. */
	msgpack_sbuffer one;
	encode(cmds + 1, 1, 1, &one);
	frame_bytes(fd, &one, &rep, &len);
	cr_assert_eq(wire_decode_replies(rep, len, r, NULL, 3, &wm), 0, "%s", wm.error);
	cr_assert(wm.is_array && wm.count == 1);
	free(rep);
	msgpack_sbuffer_destroy(&one);
	msgpack_sbuffer_destroy(&m);
	close(fd);
	tgw_stop(&g_srv);
}

Test(frame, bad_length)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	uint32_t bad[2] = {0, (uint32_t)g_srv.cfg.recv_max_bytes + 1};
	for (int i = 0; i < 2; i++) {
		int other = conn_open(port); /* open across the bad one's end */
		int fd = conn_open(port);
		/* A good frame first: it is answered before the close. */
		msgpack_sbuffer m;
		bo_cmd q = tcmd_query_avail(1);
		encode(&q, 1, 0, &m);
		uint8_t h[4];
		put_be32(h, bad[i]);
		send_frame(fd, m.data, m.size);
		write_all(fd, h, 4);
		write_all(fd, "abcdefgh", 8);
		uint8_t *rep;
		size_t len;
		cr_assert_eq(recv_frame(fd, &rep, &len), 0,
		             "the frame before the bad one was not answered");
		free(rep);
		assert_closed(fd);
		close(fd);
		bo_result r = frame_call(other, &q);
		cr_assert_eq(r.status, BO_OK, "another connection stopped being served");
		close(other);
		msgpack_sbuffer_destroy(&m);
	}
	assert_serving(port, 1);
	gw_frame_stats st;
	cr_assert_eq(gw_frame_stats_get(g_srv.gw, &st), 0);
	cr_assert_eq(st.bad_frames, 2, "bad frames counted: %" PRIu64, st.bad_frames);
	tgw_stop(&g_srv);
}

Test(frame, byte_by_byte)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	bo_cmd c = tcmd_hold_best(5, 11, 1, 0, 3, 60000);
	msgpack_sbuffer m;
	encode(&c, 1, 0, &m);
	uint8_t buf[512];
	cr_assert(m.size + 4 <= sizeof(buf));
	put_be32(buf, (uint32_t)m.size);
	memcpy(buf + 4, m.data, m.size);
	int fd = conn_open(port);
	for (size_t i = 0; i < m.size + 4; i++) {
		write_all(fd, buf + i, 1);
		usleep(200); /* separate segments, most of the time */
	}
	uint8_t *rep;
	size_t len;
	cr_assert_eq(recv_frame(fd, &rep, &len), 0);
	bo_result r;
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0, "%s", wm.error);
	cr_assert_eq(r.status, BO_OK);
	cr_assert_eq(r.request_id, 11);
	cr_assert_eq(r.seat_count, 3);
	free(rep);
	msgpack_sbuffer_destroy(&m);
	close(fd);
	tgw_stop(&g_srv);
}

Test(frame, half_frame)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	for (int i = 0; i < 20; i++) {
		int fd = conn_open(port);
		uint8_t h[4];
		put_be32(h, 100);
		write_all(fd, h, (size_t)(i % 4) + 1 > 4 ? 4 : (size_t)(i % 4) + 1);
		if (i % 4 == 3)
			write_all(fd, "partial", 7);
		close(fd);
	}
	assert_serving(port, 1);
	tgw_stop(&g_srv);
}

Test(frame, token)
{
	int port = srv_start(&g_srv, "s3cret-token");
	create_event(&g_srv, 1, 10, 10, 100);
	int fd = conn_open(port);
	bo_cmd h = tcmd_hold_best(5, 21, 1, 0, 1, 60000);
	bo_result r = frame_call(fd, &h);
	cr_assert_eq(r.status, BO_INVALID, "a frame without the token: %s",
	             bo_status_str(r.status));
	uint8_t *rep;
	size_t len;
	msgpack_sbuffer m;
	msgpack_sbuffer_init(&m);
	cr_assert_eq(wire_encode_auth("wrong", 5, &m), 0);
	cr_assert_eq(wire_encode_request(&h, 1, 0, &m), 0);
	frame_bytes(fd, &m, &rep, &len);
	wire_reply_info info;
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(rep, len, &r, &info, 1, &wm), 0);
	cr_assert_eq(r.status, BO_INVALID, "a wrong token: %s", bo_status_str(r.status));
	cr_assert_eq(r.detail, BO_D_UNAUTHORIZED);
	free(rep);
	/* Nothing was applied: the query shows every seat free. */
	msgpack_sbuffer_clear(&m);
	cr_assert_eq(wire_encode_auth("s3cret-token", 12, &m), 0);
	bo_cmd q = tcmd_query_avail(1);
	cr_assert_eq(wire_encode_request(&q, 1, 0, &m), 0);
	frame_bytes(fd, &m, &rep, &len);
	cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0);
	cr_assert_eq(r.status, BO_OK);
	cr_assert_eq(r.avail.free_by_category[0], 100, "a refused hold was applied");
	free(rep);
	msgpack_sbuffer_clear(&m);
	cr_assert_eq(wire_encode_auth("s3cret-token", 12, &m), 0);
	cr_assert_eq(wire_encode_request(&h, 1, 0, &m), 0);
	frame_bytes(fd, &m, &rep, &len);
	cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0);
	cr_assert_eq(r.status, BO_OK, "with the token: %s", bo_status_str(r.status));
	free(rep);
	msgpack_sbuffer_destroy(&m);
	close(fd);
	tgw_stop(&g_srv);
}

Test(frame, many_connections)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 1, 1, 1000);
	enum {
		N = 200
	};
	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = conn_open(port);
		bo_cmd c = tcmd(BO_OP_HOLD_POOL, 100 + (uint64_t)i, 1, 1);
		c.quantity = 1;
		c.ttl_ms = 60000;
		msgpack_sbuffer m;
		encode(&c, 1, 0, &m);
		send_frame(fds[i], m.data, m.size);
		msgpack_sbuffer_destroy(&m);
	}
	for (int i = 0; i < N; i++) {
		uint8_t *rep;
		size_t len;
		cr_assert_eq(recv_frame(fds[i], &rep, &len), 0, "connection %d: no reply", i);
		bo_result r;
		wire_msg wm;
		cr_assert_eq(wire_decode_replies(rep, len, &r, NULL, 1, &wm), 0);
		cr_assert_eq(r.client_id, 100 + (uint64_t)i, "connection %d got another's reply",
		             i);
		cr_assert_eq(r.status, BO_OK);
		free(rep);
	}
	gw_frame_stats st;
	cr_assert_eq(gw_frame_stats_get(g_srv.gw, &st), 0);
	cr_assert_eq(st.connections, N, "connections open: %" PRIu64, st.connections);
	cr_assert_eq(st.accepted, N);
	cr_assert_eq(st.requests, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	tgw_stop(&g_srv);
}

Test(frame, fuzz)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	srand(12345);
	int fd = conn_open(port);
	for (int i = 0; i < 300; i++) {
		uint8_t body[300];
		size_t n = 1 + (size_t)rand() % sizeof(body);
		for (size_t k = 0; k < n; k++)
			body[k] = (uint8_t)rand();
		if (i % 3 == 0)
			body[0] = (uint8_t)(0x80 |
			                    (rand() & 0x0f)); /* a map: deeper into the decoder */
		else if (i % 3 == 1)
			body[0] = (uint8_t)(0x90 | (rand() & 0x0f)); /* an array */
		send_frame(fd, body, n);
		uint8_t *rep;
		size_t len;
		cr_assert_eq(recv_frame(fd, &rep, &len), 0, "fuzz frame %d not answered", i);
		free(rep);
	}
	/* Random bytes as the header too: either answered or closed. */
	for (int i = 0; i < 20; i++) {
		int f = conn_open(port);
		uint8_t junk[64];
		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (uint8_t)rand();
		write_all(f, junk, sizeof(junk));
		shutdown(f, SHUT_WR);
		assert_closed(f); /* whatever the junk said, the end of our stream ends it */
		close(f);
	}
	close(fd);
	assert_serving(port, 1);
	tgw_stop(&g_srv);
}

Test(frame, stop_with_connections)
{
	int port = srv_start(&g_srv, NULL);
	create_event(&g_srv, 1, 10, 10, 100);
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = conn_open(port);
		bo_cmd q = tcmd_query_avail(1);
		cr_assert_eq(frame_call(fds[i], &q).status, BO_OK);
	}
	tgw_stop(&g_srv); /* fails the test if it does not return in time */
	for (int i = 0; i < 8; i++) {
		assert_closed(fds[i]);
		close(fds[i]);
	}
}

Test(frame, beyond_loopback_needs_token)
{
	tgw_config(&g_srv, "bo-frame-test");
	g_srv.cfg.frame = "0.0.0.0:0";
	gw_server *gw = NULL;
	char err[GW_ERR_LEN];
	int rc = gw_start(&g_srv.cfg, &gw, err, sizeof(err));
	cr_assert_eq(rc, -EPERM, "--frame 0.0.0.0 without a token started (%d)", rc);
	cr_assert(strstr(err, "--frame") != NULL, "the refusal does not name --frame: %s", err);
	cr_assert_null(gw);
	g_srv.cfg.frame = "127.0.0.1:notaport";
	rc = gw_start(&g_srv.cfg, &gw, err, sizeof(err));
	cr_assert_eq(rc, -EINVAL, "a bad --frame address: %d", rc);
	cr_assert(strstr(err, "--frame") != NULL, "%s", err);
	tgw_cleanup(&g_srv);
}
