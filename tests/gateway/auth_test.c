/*
 * auth_test.c — the shared token in the gateway (gateway/auth.h,
 * gateway/auth.c, the check in gateway.c), in-process:
 *
 *  1. gw_addr_is_loopback: 127.0.0.0/8, ::1 (bracketed), ::ffff:127.x,
 *     localhost, ipc://, inproc:// and the HTTP form HOST:PORT are
 *     loopback; 0.0.0.0, ::, an empty host, LAN and public addresses, other
 *     host names, unbracketed IPv6 and what cannot be parsed are not.
 *  2. gw_start refuses, before anything is opened, a --listen, --publish or
 *     --http address that is not loopback when there is no token (-EPERM,
 *     the error names the address and what to do; any of nng's network
 *     schemes, case-insensitive), and a token of 0 or 257 bytes (-EINVAL);
 *     a scheme nng does not know gets nng's own error; with a token it
 *     listens on 0.0.0.0 and answers a client that sends it.
 *  3. A server with a token refuses every message without it, or with a
 *     wrong one (another of the same length, a prefix of it, a longer one):
 *     single commands, arrays, server_status and event_state alike, with one
 *     map invalid/unauthorized; nothing of a refused message is applied (the
 *     seats it held are still free, read with the token), and the refusals
 *     are counted. The same messages with the token are applied. A
 *     malformed prefix is invalid/malformed. gw_start copied the token: the
 *     caller's buffer is wiped right after it.
 *  4. A server without a token takes a message with a prefix (whatever the
 *     token) as if it had none, and plain messages as always.
 *  5. gw_auth_ok: the token itself only; 1 for anything on a tokenless
 *     server.
 *
 * How: gw_start() on mkdtemp directories, listening on ipc:// there (and
 * once on tcp://0.0.0.0); raw nng REQ sockets whose messages are built
 * with protocol/wire.h, so the bytes on the wire are exactly the doc's.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/seatmap.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "protocol/projection.h"
#include "protocol/wire.h"
#include "tests/support/cmd.h"
#include "tests/support/gwtest.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

#define TOKEN "0123456789abcdef-the-token"
#define EVENT 42u

static tgw g_srv;

static void suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void) { tgw_cleanup(&g_srv); }

TestSuite(auth, .init = suite_init, .fini = suite_fini, .timeout = 120);

static void srv_stop(void)
{
	cr_assert_null(gw_failed(g_srv.gw));
	tgw_stop(&g_srv);
}

/* ---- Raw requests -------------------------------------------------------- */

/* What a request carries in front of it. */
enum {
	TOK_NONE,
	TOK_GIVEN
};

/* Sends [{"auth": tok}] + body and returns the reply (the caller frees it). */
static nng_msg *round_trip(nng_socket s, const char *tok, const msgpack_sbuffer *body)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (tok != NULL)
		cr_assert_eq(wire_encode_auth(tok, strlen(tok), &sb), 0);
	msgpack_sbuffer_write(&sb, body->data, body->size);
	int rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
	nng_msg *m;
	rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no reply: %s", nng_strerror(rv));
	return m;
}

/* Sends cmds[0..n) (an array when as_array) and decodes the replies into
 * res[0..cap); returns their count. */
static uint32_t call(nng_socket s, const char *tok, const bo_cmd *cmds, uint32_t n, int as_array,
                     bo_result *res, wire_reply_info *info, uint32_t cap, int *is_array)
{
	msgpack_sbuffer body;
	msgpack_sbuffer_init(&body);
	cr_assert_eq(wire_encode_request(cmds, n, as_array, &body), 0);
	nng_msg *m = round_trip(s, tok, &body);
	msgpack_sbuffer_destroy(&body);
	wire_msg wm;
	int rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), res, info, cap, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	*is_array = wm.is_array;
	return wm.count;
}

/* One command, one reply map. */
static bo_result call1(nng_socket s, const char *tok, const bo_cmd *c,
                       char *text /* OUT, may be NULL */)
{
	bo_result r;
	wire_reply_info info;
	int is_array;
	cr_assert_eq(call(s, tok, c, 1, 0, &r, &info, 1, &is_array), 1);
	if (text)
		snprintf(text, WIRE_ERROR_LEN_MAX, "%s", info.error);
	return r;
}

/* The reply of an admin request body: its status via the refusal shape
 * (any message-level answer decodes as one reply map) or, for an ok, 0. */
static int admin_status(nng_socket s, const char *tok, const msgpack_sbuffer *body, char *text)
{
	nng_msg *m = round_trip(s, tok, body);
	bo_result r;
	wire_reply_info info;
	wire_msg wm;
	int rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), &r, &info, 1, &wm);
	int status = BO_OK;
	if (rv == 0 && r.status != BO_OK) {
		status = r.status;
		cr_assert_eq(r.detail, BO_D_UNAUTHORIZED, "detail %s", bo_detail_name(r.detail));
		snprintf(text, WIRE_ERROR_LEN_MAX, "%s", info.error);
	} else {
		/* An ok server_status or event_state reply: not a command reply. */
		wire_server_status *st = malloc(sizeof(*st));
		bo_event_image im;
		int st_status = -1, im_status = -1;
		cr_assert(st);
		int a = wire_decode_server_status(nng_msg_body(m), nng_msg_len(m), st, &st_status,
		                                  &wm);
		int b = wire_decode_event_image(nng_msg_body(m), nng_msg_len(m), &im, &im_status,
		                                &wm);
		cr_assert((a == 0 && st_status == BO_OK) || (b == 0 && im_status == BO_OK),
		          "neither an ok status nor an ok image");
		if (b == 0)
			bo_event_image_free(&im);
		free(st);
		text[0] = '\0';
	}
	nng_msg_free(m);
	return status;
}

static void assert_unauthorized(const bo_result *r, const char *text, const char *want,
                                const char *what)
{
	cr_assert_eq(r->status, BO_INVALID, "%s: status %s", what, bo_status_str(r->status));
	cr_assert_eq(r->detail, BO_D_UNAUTHORIZED, "%s: detail %s", what,
	             bo_detail_name(r->detail));
	cr_assert_eq(r->op, 0, "%s: a message-level answer echoes no op", what);
	cr_assert_str_eq(text, want, "%s", what);
}

static void assert_free(nng_socket s, uint32_t seats)
{
	bo_cmd q = tcmd_query_avail(EVENT);
	bo_result r = call1(s, TOKEN, &q, NULL);
	cr_assert_eq(r.status, BO_OK, "query_avail: %s/%s", bo_status_str(r.status),
	             bo_detail_name(r.detail));
	cr_assert_eq(r.avail.by_state[BO_SEAT_FREE], seats, "%u free seats, want %u",
	             r.avail.by_state[BO_SEAT_FREE], seats);
}

/* ==== 1. gw_addr_is_loopback ============================================== */

Test(auth, loopback_addresses)
{
	static const char *const yes[] = {
	        "tcp://127.0.0.1:7400", "tcp://127.1.2.3:7400",
	        "tcp4://127.0.0.1:1",   "tcp://[::1]:7400",
	        "tcp6://[::1]:7400",    "tcp://localhost:7400",
	        "tcp://LocalHost:7400", "tcp://[::ffff:127.0.0.1]:7400",
	        "ipc:///tmp/sock",      "ipc://var/boxoffice.ipc",
	        "inproc://x",           "abstract://bo",
	        "127.0.0.1:7480",       "localhost:7480",
	        "[::1]:7480",           "ws://127.0.0.1:80/path",
	};
	static const char *const no[] = {
	        "tcp://0.0.0.0:7400",
	        "tcp://[::]:7400",
	        "tcp://:7400",
	        "tcp://*:7400",
	        "tcp://10.0.0.5:7400",
	        "tcp://192.168.1.2:7400",
	        "tcp://8.8.8.8:7400",
	        "tcp://[::2]:7400",
	        "tcp://[fe80::1]:7400",
	        "tcp://example.com:7400",
	        "tcp://localhost.evil.com:7400",
	        "tcp://localhostx:7400",
	        "tcp://128.0.0.1:7400",
	        "tcp://126.255.255.255:7400",
	        "tcp://127.1:7400",
	        "0.0.0.0:7480",
	        "10.1.2.3:7480",
	        "::1:7480",
	        "tcp://::1:7400",
	        "tcp://[::1:7400",
	        "tcp://127.0.0.1",
	        "",
	        "garbage",
	        "tcp://",
	        "ws://0.0.0.0:80/path",
	        "tcp://[::ffff:10.0.0.1]:7400",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_assert_eq(gw_addr_is_loopback(yes[i]), 1, "%s is loopback", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_assert_eq(gw_addr_is_loopback(no[i]), 0, "%s is not loopback", no[i]);
}

/* ==== 2. gw_start's rule ================================================== */

static void assert_refused(gw_config *cfg, int want_rc, const char *want_in_err)
{
	gw_server *gw = NULL;
	char err[GW_ERR_LEN];
	int rc = gw_start(cfg, &gw, err, sizeof(err));
	if (rc == 0) {
		gw_stop(gw, TGW_WAIT_MS);
		gw_free(gw);
	}
	cr_assert_eq(rc, want_rc, "gw_start: %d (%s), want %d", rc, err, want_rc);
	cr_assert_null(gw);
	cr_assert(strstr(err, want_in_err) != NULL, "'%s' not in '%s'", want_in_err, err);
}

Test(auth, start_refuses_exposed_without_token)
{
	tgw_config(&g_srv, "bo-auth-test");
	gw_config *cfg = &g_srv.cfg;
	cfg->listen[1] = "tcp://0.0.0.0:7400";
	cfg->listen_count = 2;
	assert_refused(cfg, -EPERM, "refusing to listen on tcp://0.0.0.0:7400 (--listen)");
	assert_refused(cfg, -EPERM, "--auth-token-file");

	cfg->listen[1] = "ws://0.0.0.0:7402/bo";
	assert_refused(cfg, -EPERM, "refusing to listen on ws://0.0.0.0:7402/bo (--listen)");
	cfg->listen[1] = "TLS+TCP://10.0.0.1:7400";
	assert_refused(cfg, -EPERM, "refusing to listen on TLS+TCP://10.0.0.1:7400 (--listen)");

	cfg->listen_count = 1;
	cfg->publish[0] = "ipc:///tmp/never-used";
	cfg->publish[1] = "tcp://[::]:7401";
	cfg->publish_count = 2;
	assert_refused(cfg, -EPERM, "tcp://[::]:7401 (--publish)");

	cfg->publish_count = 0;
	cfg->http = "0.0.0.0:7480";
	assert_refused(cfg, -EPERM, "0.0.0.0:7480 (--http)");

	cfg->auth_token = "";
	cfg->auth_token_len = 0;
	assert_refused(cfg, -EINVAL, "1..256 bytes");
	static char big[BO_AUTH_TOKEN_LEN_MAX + 1];
	memset(big, 'k', sizeof(big));
	cfg->auth_token = big;
	cfg->auth_token_len = sizeof(big);
	assert_refused(cfg, -EINVAL, "1..256 bytes");
	/* Nothing was left behind: the data dir is as it was made. */
	char shard0[PATH_MAX + 32];
	snprintf(shard0, sizeof(shard0), "%s/shard-0000", g_srv.data_dir);
	struct stat st;
	cr_assert_neq(stat(shard0, &st), 0, "a refused start opened a shard");

	/* A scheme nng does not know is left to nng, whose error names it
	 * (after recovery: nng finds it out). */
	cfg->auth_token = NULL;
	cfg->auth_token_len = 0;
	cfg->http = NULL;
	cfg->listen[1] = "bogus://0.0.0.0:1";
	cfg->listen_count = 2;
	assert_refused(cfg, -EINVAL, "cannot listen on bogus://0.0.0.0:1");
}

Test(auth, token_allows_any_address)
{
	tgw_config(&g_srv, "bo-auth-test");
	gw_config *cfg = &g_srv.cfg;
	int port = tproc_free_port();
	cr_assert_gt(port, 0);
	char any[64], local[64];
	snprintf(any, sizeof(any), "tcp://0.0.0.0:%d", port);
	snprintf(local, sizeof(local), "tcp://127.0.0.1:%d", port);
	cfg->listen[0] = any;
	cfg->auth_token = TOKEN;
	cfg->auth_token_len = strlen(TOKEN);
	tgw_start(&g_srv);
	nng_socket s = tgw_req_open(local);
	bo_cmd q = tcmd_query_avail(EVENT);
	char text[WIRE_ERROR_LEN_MAX];
	bo_result r = call1(s, NULL, &q, text);
	assert_unauthorized(&r, text, "this server requires an auth token", "no token on 0.0.0.0");
	r = call1(s, TOKEN, &q, text);
	cr_assert_eq(r.status, BO_NOT_FOUND, "with the token: %s (%s)", bo_status_str(r.status),
	             text);
	nng_close(s);
	srv_stop();
}

/* ==== 3. A server with a token ============================================ */

Test(auth, token_required_for_everything)
{
	tgw_config(&g_srv, "bo-auth-test");
	gw_config *cfg = &g_srv.cfg;
	char token[] = TOKEN; /* wiped after gw_start: the server keeps a copy */
	cfg->auth_token = token;
	cfg->auth_token_len = strlen(token);
	tgw_start(&g_srv);
	memset(token, 'X', strlen(token));
	nng_socket s = tgw_req_open(g_srv.url);
	char text[WIRE_ERROR_LEN_MAX];

	bo_seatmap *map = tcmd_rows_map(2, 10, 0, 0);
	bo_cmd create = tcmd_create(1, 1, EVENT, map);
	bo_result r = call1(s, NULL, &create, text);
	assert_unauthorized(&r, text, "this server requires an auth token",
	                    "create without a token");
	r = call1(s, TOKEN, &create, text);
	cr_assert_eq(r.status, BO_OK, "create with the token: %s (%s)", bo_status_str(r.status),
	             text);
	bo_seatmap_free(map);
	assert_free(s, 20);

	/* Wrong tokens: same length, a prefix of it, longer, another case. */
	static const char *const wrong[] = {
	        "0123456789abcdef-the-tokeN", "0123456789abcdef-the-toke",
	        "0123456789abcdef-the-token!", "0123456789ABCDEF-THE-TOKEN", "x"};
	uint32_t seats[2] = {3, 4};
	uint64_t refused = 1;
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		bo_cmd hold = tcmd_hold_seats(7, 100 + i, EVENT, seats, 2, 60000);
		r = call1(s, wrong[i], &hold, text);
		assert_unauthorized(&r, text, "wrong auth token", wrong[i]);
		refused++;
	}
	/* An array: one map for the whole message, nothing of it applied. */
	bo_cmd two[2] = {tcmd_hold_seats(7, 200, EVENT, seats, 1, 60000),
	                 tcmd_hold_seats(8, 201, EVENT, seats + 1, 1, 60000)};
	bo_result res[2];
	wire_reply_info info[2];
	int is_array = -1;
	uint32_t n = call(s, NULL, two, 2, 1, res, info, 2, &is_array);
	cr_assert_eq(n, 1, "one map for an array");
	cr_assert_eq(is_array, 0);
	assert_unauthorized(&res[0], info[0].error, "this server requires an auth token", "array");
	n = call(s, "nope", two, 2, 1, res, info, 2, &is_array);
	cr_assert_eq(n, 1);
	assert_unauthorized(&res[0], info[0].error, "wrong auth token", "array, wrong token");
	refused += 2;
	assert_free(s, 20);

	/* Admin requests. */
	msgpack_sbuffer st, es;
	msgpack_sbuffer_init(&st);
	msgpack_sbuffer_init(&es);
	cr_assert_eq(wire_encode_server_status_request(&st), 0);
	cr_assert_eq(wire_encode_event_state_request(EVENT, &es), 0);
	cr_assert_eq(admin_status(s, NULL, &st, text), BO_INVALID);
	cr_assert_str_eq(text, "this server requires an auth token");
	cr_assert_eq(admin_status(s, "wrong", &st, text), BO_INVALID);
	cr_assert_str_eq(text, "wrong auth token");
	cr_assert_eq(admin_status(s, NULL, &es, text), BO_INVALID);
	cr_assert_eq(admin_status(s, "wrong", &es, text), BO_INVALID);
	refused += 4;
	cr_assert_eq(admin_status(s, TOKEN, &st, text), BO_OK, "server_status with the token: %s",
	             text);
	cr_assert_eq(admin_status(s, TOKEN, &es, text), BO_OK, "event_state with the token: %s",
	             text);

	/* A malformed prefix is malformed, not unauthorized. */
	msgpack_sbuffer bad;
	msgpack_sbuffer_init(&bad);
	msgpack_sbuffer_write(&bad,
	                      "\x81\xa4"
	                      "auth\x05",
	                      7);
	msgpack_sbuffer_write(&bad, st.data, st.size);
	nng_msg *m;
	cr_assert_eq(nng_send(s, bad.data, bad.size, 0), 0);
	cr_assert_eq(nng_recvmsg(s, &m, 0), 0);
	wire_msg wm;
	cr_assert_eq(wire_decode_replies(nng_msg_body(m), nng_msg_len(m), res, info, 1, &wm), 0);
	nng_msg_free(m);
	cr_assert_eq(res[0].status, BO_INVALID);
	cr_assert(info[0].malformed, "a broken prefix is malformed");
	cr_assert_str_eq(info[0].error, "'auth' must be a string, not an unsigned integer");

	/* With the token the same commands are applied. */
	bo_cmd hold = tcmd_hold_seats(7, 300, EVENT, seats, 2, 60000);
	r = call1(s, TOKEN, &hold, text);
	cr_assert_eq(r.status, BO_OK, "hold with the token: %s/%s (%s)", bo_status_str(r.status),
	             bo_detail_name(r.detail), text);
	assert_free(s, 18);
	n = call(s, TOKEN, two, 2, 1, res, info, 2, &is_array);
	cr_assert_eq(n, 2);
	cr_assert_eq(res[0].status, BO_TAKEN, "seat 3 is held now");

	gw_stats gs;
	gw_stats_get(g_srv.gw, &gs);
	cr_assert_eq(gs.unauthorized, refused, "%lu refusals counted, want %lu",
	             (unsigned long)gs.unauthorized, (unsigned long)refused);
	msgpack_sbuffer_destroy(&st);
	msgpack_sbuffer_destroy(&es);
	msgpack_sbuffer_destroy(&bad);
	nng_close(s);

	/* 5. gw_auth_ok: the token and nothing else. */
	cr_assert_eq(gw_auth_ok(g_srv.gw, TOKEN, strlen(TOKEN)), 1);
	cr_assert_eq(gw_auth_ok(g_srv.gw, TOKEN "x", strlen(TOKEN) + 1), 0);
	cr_assert_eq(gw_auth_ok(g_srv.gw, TOKEN, strlen(TOKEN) - 1), 0);
	cr_assert_eq(gw_auth_ok(g_srv.gw, "1123456789abcdef-the-token", strlen(TOKEN)), 0);
	cr_assert_eq(gw_auth_ok(g_srv.gw, NULL, 0), 0);
	cr_assert_eq(gw_auth_ok(g_srv.gw, "", 0), 0);
	srv_stop();
}

/* ==== 4. A server without a token ========================================= */

Test(auth, tokenless_server_ignores_the_prefix)
{
	tgw_config(&g_srv, "bo-auth-test");
	tgw_start(&g_srv);
	cr_assert_eq(gw_auth_ok(g_srv.gw, NULL, 0), 1);
	cr_assert_eq(gw_auth_ok(g_srv.gw, "anything", 8), 1);
	nng_socket s = tgw_req_open(g_srv.url);
	char text[WIRE_ERROR_LEN_MAX];
	bo_seatmap *map = tcmd_rows_map(1, 10, 0, 0);
	bo_cmd create = tcmd_create(1, 1, EVENT, map);
	bo_result r = call1(s, "whatever", &create, text);
	cr_assert_eq(r.status, BO_OK, "prefixed create: %s (%s)", bo_status_str(r.status), text);
	bo_seatmap_free(map);
	uint32_t seat = 1;
	bo_cmd hold = tcmd_hold_seats(7, 2, EVENT, &seat, 1, 60000);
	r = call1(s, NULL, &hold, text);
	cr_assert_eq(r.status, BO_OK, "plain hold: %s (%s)", bo_status_str(r.status), text);
	bo_cmd q = tcmd_query_avail(EVENT);
	r = call1(s, NULL, &q, text);
	cr_assert_eq(r.avail.by_state[BO_SEAT_FREE], 9);
	gw_stats gs;
	gw_stats_get(g_srv.gw, &gs);
	cr_assert_eq(gs.unauthorized, 0);
	nng_close(s);
	srv_stop();
}
