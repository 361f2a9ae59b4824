/*
 * gateway_test.c — the gateway library in-process (gateway/gateway.h),
 * where the server binary cannot be steered:
 *
 *  1. gw_apply_local after a timeout: the commands it submitted are still in
 *     their shard when it returns -ETIMEDOUT (the shard's journal write is
 *     held by a fault hook, so the timeout is certain, not a race). When
 *     they come out, their results are filed under the request that
 *     submitted them (no assertion, no result handed to a later call); a
 *     call meanwhile answers -EBUSY without submitting; the next call after
 *     they are in gets its own results; and the create_event map the
 *     caller freed right after the timeout was not the one applied (the
 *     gateway applies its own copy).
 *  2. Two servers in one process (own data dirs, own addresses, two
 *     shards each): each answers from its own shards only, and both stop
 *     cleanly. Each output thread finds its server through its own
 *     arguments (they were once one static array shared by every server).
 *  3. Who may touch a hold, over nng: another client's extend, release,
 *     confirm and cancel get the answer an unknown id gets and change
 *     nothing; "operator": true releases it; "operator" on confirm is
 *     refused by the server's decoder before any engine sees it.
 *  4. A shard whose journal fails while the server runs: the command in
 *     the batch the failure struck, a command that was already in the
 *     shard's ring, and every later command for that shard are answered
 *     busy at once, while the other shard keeps serving, alone and in a
 *     message that spans both.
 *
 * How: gw_start() on mkdtemp directories, listening on ipc:// in them;
 * requests over nng REQ sockets encoded with protocol/wire.h.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/seatmap.h"
#include "gateway/gateway.h"
#include "protocol/wire.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/gate.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 20000 /* bound on every wait for an event (ASan, slow disk) */

static gate g_gate = GATE_INIT(JOURNAL_IO_WRITE);

/* ---- Servers ----------------------------------------------------------- */

typedef struct tserver {
	char dir[PATH_MAX];
	char data_dir[PATH_MAX + 8];
	char url[PATH_MAX + 16];
	gw_server *gw;
} tserver;

static tserver g_srv[2];

static void suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void)
{
	gate_set(&g_gate, 0); /* never leave a writer held */
	for (int i = 0; i < 2; i++) {
		tserver *t = &g_srv[i];
		if (t->gw) {
			gw_stop(t->gw, 5000);
			if (!gw_close_hung(t->gw))
				gw_free(t->gw);
			t->gw = NULL;
		}
		if (t->dir[0])
			tmpdir_remove(t->dir);
	}
}

/* Starts a server on a fresh directory: `shards` shards, ipc:// in the
 * directory, small tables; `hook` (may be NULL) on every shard's journal. */
static void srv_start(tserver *t, uint32_t shards, journal_fault_fn hook, void *hook_ctx)
{
	int rc = tmpdir_make(t->dir, sizeof(t->dir), "bo-gateway-test");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	snprintf(t->data_dir, sizeof(t->data_dir), "%s/data", t->dir);
	snprintf(t->url, sizeof(t->url), "ipc://%s/sock", t->dir);
	cr_assert_eq(mkdir(t->data_dir, 0700), 0, "mkdir: %s", strerror(errno));
	gw_config cfg;
	gw_config_default(&cfg);
	cfg.data_dir = t->data_dir;
	cfg.shards = shards;
	cfg.listen[0] = t->url;
	cfg.listen_count = 1;
	cfg.contexts = 4;
	cfg.shard.engine.seats_max = 262144;
	cfg.shard.engine.claims_max = 65536;
	cfg.shard.engine.idem_capacity = 65536;
	cfg.shard.engine.events_max = 64;
	cfg.shard.journal.fault = hook;
	cfg.shard.journal.fault_ctx = hook_ctx;
	char err[GW_ERR_LEN];
	rc = gw_start(&cfg, &t->gw, err, sizeof(err));
	cr_assert_eq(rc, 0, "gw_start: %d %s", rc, err);
}

static void srv_stop(tserver *t)
{
	int rc = gw_stop(t->gw, WAIT_MS);
	cr_assert_eq(rc, 0, "gw_stop: %d", rc);
	cr_assert_null(gw_failed(t->gw), "a shard failed: %s", gw_failed(t->gw));
	cr_assert_eq(gw_close_hung(t->gw), 0, "nng_close hung");
	gw_free(t->gw);
	t->gw = NULL;
}

/* ---- Requests ------------------------------------------------------------ */

static nng_socket cli_open(const char *url)
{
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	/* No resend by nng: a request is sent once, as the test says. */
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, WAIT_MS);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, WAIT_MS);
	int rv = nng_dial(s, url, NULL, 0);
	cr_assert_eq(rv, 0, "dial %s: %s", url, nng_strerror(rv));
	return s;
}

static void cli_send(nng_socket s, const bo_cmd *c)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(c, 1, 0, &sb), 0);
	int rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
}

static bo_result cli_recv(nng_socket s)
{
	nng_msg *m;
	int rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no reply: %s", nng_strerror(rv));
	bo_result r;
	wire_reply_info info;
	wire_msg wm;
	rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), &r, &info, 1, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	cr_assert_eq(wm.count, 1);
	return r;
}

static bo_result cli_call(nng_socket s, const bo_cmd *c)
{
	cli_send(s, c);
	return cli_recv(s);
}

/* rows x seats_per_row seats, one category. */
static bo_seatmap *map_new(uint32_t rows, uint32_t seats_per_row)
{
	return tcmd_rows_map(rows, seats_per_row, 0, 0);
}

static bo_cmd c_create(uint64_t event, const bo_seatmap *m)
{
	return tcmd_create(1, event, event, m);
}

static bo_cmd c_avail(uint64_t event)
{
	return tcmd_query_avail(event);
}

static void assert_free_seats(const bo_result *r, uint64_t event, uint32_t seats)
{
	cr_assert_eq(r->op, BO_OP_QUERY_AVAIL, "event %lu: the result of op %s", (unsigned long)event,
		     bo_op_str(r->op));
	cr_assert_eq(r->status, BO_OK, "event %lu: query_avail %s/%s", (unsigned long)event,
		     bo_status_str(r->status), bo_detail_str(r->detail));
	cr_assert_eq(r->event_id, event);
	cr_assert_eq(r->avail.by_state[BO_SEAT_FREE], seats, "event %lu: %u free seats, not %u",
		     (unsigned long)event, r->avail.by_state[BO_SEAT_FREE], seats);
}

TestSuite(gateway, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* ==== 1. gw_apply_local after a timeout =================================== */

#define EV_NET 10u   /* created over the network while the writer is held */
#define EV_LOCAL 20u /* created by the gw_apply_local that times out */

Test(gateway, apply_local_timeout_with_results_in_flight)
{
	tserver *t = &g_srv[0];
	srv_start(t, 1, gate_hook, &g_gate);

	/* Hold the writer in the journal write of a network request's batch. */
	gate_set(&g_gate, 1);
	nng_socket s = cli_open(t->url);
	bo_seatmap *mnet = map_new(1, 8);
	bo_cmd net = c_create(EV_NET, mnet);
	cli_send(s, &net);
	gate_wait_entered(&g_gate, WAIT_MS);

	/* Two commands that cannot come out before the gate opens: create an
	 * event of 2 x 10 seats, then ask for its availability. */
	bo_seatmap *m = map_new(2, 10);
	bo_cmd cmds[2] = {c_create(EV_LOCAL, m), c_avail(EV_LOCAL)};
	bo_result res[2];
	int rc = gw_apply_local(t->gw, cmds, 2, res, 50);
	cr_assert_eq(rc, -ETIMEDOUT, "gw_apply_local answered %d while the writer was held", rc);
	/* The caller owns its map again: wreck it, then free it. Only a copy
	 * taken by the gateway can still create the event as asked. */
	m->rows[0].seats = 0;
	m->rows[1].seats = 0;
	m->category_count = 0;
	bo_seatmap_free(m);

	/* Still held: a new call must not take the slot from the old one. */
	bo_cmd q = c_avail(EV_LOCAL);
	bo_result r;
	rc = gw_apply_local(t->gw, &q, 1, &r, 50);
	cr_assert_eq(rc, -EBUSY, "a call while the timed-out one is in flight answered %d", rc);

	gate_set(&g_gate, 0);
	bo_result rnet = cli_recv(s);
	cr_assert_eq(rnet.status, BO_OK, "the network create_event: %s/%s", bo_status_str(rnet.status),
		     bo_detail_str(rnet.detail));
	bo_seatmap_free(mnet);

	/* The next call waits for the timed-out results and gets its own. */
	rc = gw_apply_local(t->gw, &q, 1, &r, WAIT_MS);
	cr_assert_eq(rc, 0, "gw_apply_local after the results came out: %d", rc);
	assert_free_seats(&r, EV_LOCAL, 20);
	bo_cmd two[2] = {c_avail(EV_NET), c_avail(EV_LOCAL)};
	cr_assert_eq(gw_apply_local(t->gw, two, 2, res, WAIT_MS), 0);
	assert_free_seats(&res[0], EV_NET, 8);
	assert_free_seats(&res[1], EV_LOCAL, 20);
	nng_close(s);
	srv_stop(t);
}

/* A timed-out call whose commands are still held when the server stops:
 * stopping drains them and frees the gateway's copies (ASan: no leak, no
 * use after free). */
Test(gateway, apply_local_timeout_then_stop)
{
	tserver *t = &g_srv[0];
	srv_start(t, 1, gate_hook, &g_gate);
	gate_set(&g_gate, 1);
	bo_seatmap *m = map_new(1, 4);
	bo_cmd c = c_create(EV_LOCAL, m);
	bo_result r;
	cr_assert_eq(gw_apply_local(t->gw, &c, 1, &r, 50), -ETIMEDOUT);
	bo_seatmap_free(m);
	gate_wait_entered(&g_gate, WAIT_MS);
	gate_set(&g_gate, 0);
	srv_stop(t);
}

/* ==== 2. Two servers in one process ======================================= */

#define TWO_EVENTS 8u /* events 1..8: both shards of each server get some */

/* Over the network: server `t` creates events first..first+TWO_EVENTS-1
 * with `seats` seats each. */
static void create_events(tserver *t, uint64_t first, uint32_t seats)
{
	nng_socket s = cli_open(t->url);
	bo_seatmap *m = map_new(1, seats);
	for (uint64_t e = first; e < first + TWO_EVENTS; e++) {
		bo_cmd c = c_create(e, m);
		bo_result r = cli_call(s, &c);
		cr_assert_eq(r.status, BO_OK, "create_event %lu: %s/%s", (unsigned long)e,
			     bo_status_str(r.status), bo_detail_str(r.detail));
	}
	bo_seatmap_free(m);
	nng_close(s);
}

/* Server `t` knows exactly its own events: `first`.. with `seats` seats,
 * and not those of the other server (`other_first`..). */
static void check_events(tserver *t, uint64_t first, uint32_t seats, uint64_t other_first)
{
	nng_socket s = cli_open(t->url);
	for (uint64_t e = first; e < first + TWO_EVENTS; e++) {
		bo_cmd q = c_avail(e);
		bo_result r = cli_call(s, &q);
		assert_free_seats(&r, e, seats);
		q = c_avail(other_first + (e - first));
		r = cli_call(s, &q);
		cr_assert_eq(r.status, BO_NOT_FOUND, "event %lu of the other server answered %s",
			     (unsigned long)q.event_id, bo_status_str(r.status));
	}
	nng_close(s);
}

/* Each server's output threads get their arguments from their own server
 * (they used to come from one file-level array that a second server in the
 * process overwrote). With the old array this test only fails when the
 * second start races the first server's threads reading their arguments,
 * so it is a guard on the per-server state, not a deterministic reproducer
 * of that race: it fails if a server answers for, or stops, the other. */
Test(gateway, two_servers_in_one_process)
{
	srv_start(&g_srv[0], 2, NULL, NULL);
	srv_start(&g_srv[1], 2, NULL, NULL);
	create_events(&g_srv[0], 1, 5);
	create_events(&g_srv[1], 101, 7);
	check_events(&g_srv[0], 1, 5, 101);
	check_events(&g_srv[1], 101, 7, 1);
	/* The first stops while the second goes on answering. */
	srv_stop(&g_srv[0]);
	check_events(&g_srv[1], 101, 7, 1);
	srv_stop(&g_srv[1]);
}

/* ==== 3. Who may touch a hold ============================================= */

#define EV_OWN 30u
#define OWNER 41u
#define OTHER 42u

static bo_cmd c_claim(uint8_t op, uint64_t client, uint64_t request, uint64_t claim)
{
	bo_cmd c = tcmd(op, client, request, EV_OWN);
	c.claim_id = claim;
	c.ttl_ms = 60000;
	if (op == BO_OP_CONFIRM) {
		c.payref_len = 3;
		memcpy(c.payref, "psp", 3);
	}
	return c;
}

/* The reply to `c` equals, request id aside, the reply the same client
 * gets for a claim id that does not exist. */
static void assert_as_unknown(nng_socket s, const bo_cmd *c, uint64_t *request)
{
	bo_result got = cli_call(s, c);
	bo_cmd u = *c;
	u.request_id = ++*request;
	u.claim_id = 0x777700000001ull;
	bo_result unknown = cli_call(s, &u);
	cr_assert_eq(got.status, BO_NOT_FOUND, "%s by another client: %s/%s", bo_op_str(c->op),
		     bo_status_str(got.status), bo_detail_str(got.detail));
	cr_assert_eq(got.detail, unknown.detail, "%s: %s, unlike an unknown claim (%s)",
		     bo_op_str(c->op), bo_detail_str(got.detail), bo_detail_str(unknown.detail));
	cr_assert_eq(got.claim_id, 0);
	cr_assert_eq(got.seat_count, 0);
}

Test(gateway, another_clients_hold_is_not_found_over_nng)
{
	tserver *t = &g_srv[0];
	srv_start(t, 1, NULL, NULL);
	nng_socket s = cli_open(t->url);
	bo_seatmap *m = map_new(1, 10);
	bo_cmd c = c_create(EV_OWN, m);
	bo_result r = cli_call(s, &c);
	bo_seatmap_free(m);
	cr_assert_eq(r.status, BO_OK);
	uint64_t req = 100;
	uint32_t seats[] = {2, 3};
	c = tcmd_hold_seats(OWNER, ++req, EV_OWN, seats, 2, 60000);
	r = cli_call(s, &c);
	cr_assert_eq(r.status, BO_OK);
	uint64_t hold = r.claim_id;
	uint64_t booking = 0;
	c = tcmd_hold_seats(OWNER, ++req, EV_OWN, (uint32_t[]){5}, 1, 60000);
	r = cli_call(s, &c);
	cr_assert_eq(r.status, BO_OK);
	c = c_claim(BO_OP_CONFIRM, OWNER, ++req, r.claim_id);
	r = cli_call(s, &c);
	cr_assert_eq(r.status, BO_OK);
	booking = r.claim_id;

	const uint8_t ops[] = {BO_OP_EXTEND, BO_OP_RELEASE, BO_OP_CONFIRM, BO_OP_CANCEL};
	for (uint32_t i = 0; i < 4; i++) {
		c = c_claim(ops[i], OTHER, ++req, ops[i] == BO_OP_CANCEL ? booking : hold);
		assert_as_unknown(s, &c, &req);
	}
	c = c_claim(BO_OP_CANCEL, OTHER, ++req, hold); /* a hold is not "not a booking" to others */
	assert_as_unknown(s, &c, &req);
	bo_cmd q = c_avail(EV_OWN);
	r = cli_call(s, &q);
	assert_free_seats(&r, EV_OWN, 7); /* 2, 3 held; 5 booked */

	/* "operator" on a confirm: refused by the decoder (malformed). */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 7);
	const char *keys[] = {"op", "client", "request", "event", "hold", "payref", "operator"};
	for (uint32_t k = 0; k < 7; k++) {
		msgpack_pack_str_with_body(&pk, keys[k], strlen(keys[k]));
		switch (k) {
		case 0: msgpack_pack_str_with_body(&pk, "confirm", 7); break;
		case 1: msgpack_pack_uint64(&pk, OTHER); break;
		case 2: msgpack_pack_uint64(&pk, ++req); break;
		case 3: msgpack_pack_uint64(&pk, EV_OWN); break;
		case 4: msgpack_pack_uint64(&pk, hold); break;
		case 5: msgpack_pack_str_with_body(&pk, "psp", 3); break;
		default: msgpack_pack_true(&pk); break;
		}
	}
	cr_assert_eq(nng_send(s, sb.data, sb.size, 0), 0);
	msgpack_sbuffer_destroy(&sb);
	r = cli_recv(s);
	cr_assert_eq(r.status, BO_INVALID, "operator confirm: %s", bo_status_str(r.status));
	cr_assert_eq(r.detail, BO_D_NONE, "malformed, not an engine detail");

	/* An operator releases and cancels them. */
	c = c_claim(BO_OP_RELEASE, OTHER, ++req, hold);
	c.flags = BO_CMD_F_OPERATOR;
	r = cli_call(s, &c);
	cr_assert_eq(r.status, BO_OK, "operator release: %s/%s", bo_status_str(r.status),
		     bo_detail_str(r.detail));
	cr_assert_eq(r.claim_id, hold);
	c = c_claim(BO_OP_CANCEL, OTHER, ++req, booking);
	c.flags = BO_CMD_F_OPERATOR;
	r = cli_call(s, &c);
	cr_assert_eq(r.status, BO_OK, "operator cancel: %s/%s", bo_status_str(r.status),
		     bo_detail_str(r.detail));
	r = cli_call(s, &q);
	assert_free_seats(&r, EV_OWN, 10);
	nng_close(s);
	srv_stop(t);
}

/* ==== 4. A failed shard answers busy; the others serve ================== */

/* Holds shard FAIL_SHARD's next journal write once armed, then fails it
 * with EIO when released: the failure lands while a second command waits
 * in that shard's ring. */
#define FAIL_SHARD 1u

typedef struct fail_hook {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int armed, entered, released;
} fail_hook;

static fail_hook g_fail = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static int fail_hook_fn(void *ctx, journal_io *io)
{
	fail_hook *h = ctx;
	if (io->shard_id != FAIL_SHARD || io->kind != JOURNAL_IO_WRITE)
		return 0;
	pthread_mutex_lock(&h->mu);
	int rc = 0;
	if (h->armed) {
		h->entered = 1;
		pthread_cond_broadcast(&h->cv);
		while (!h->released)
			pthread_cond_wait(&h->cv, &h->mu);
		rc = -EIO;
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

static void fail_hook_set(fail_hook *h, int armed, int released)
{
	pthread_mutex_lock(&h->mu);
	h->armed = armed;
	h->released = released;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void fail_hook_wait_entered(fail_hook *h)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&h->mu);
	int rc = 0;
	while (!h->entered && rc == 0)
		rc = pthread_cond_timedwait(&h->cv, &h->mu, &until);
	int entered = h->entered;
	pthread_mutex_unlock(&h->mu);
	cr_assert(entered, "the failing shard's writer never reached its journal write");
}

/* Waits until the shards' input rings have taken `n` commands in all. */
static void wait_ring_commands(gw_server *gw, uint64_t n)
{
	for (int i = 0; i < WAIT_MS; i++) {
		gw_stats st;
		gw_stats_get(gw, &st);
		if (st.ring_commands >= n)
			return;
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	cr_assert_fail("the shards took fewer than %lu commands", (unsigned long)n);
}

/* The first event id >= from that lives on shard k of 2. */
static uint64_t event_on(uint32_t k, uint64_t from)
{
	while (shard_for_event(from, 2) != k)
		from++;
	return from;
}

static void assert_status(const bo_result *r, uint8_t status, const char *what)
{
	cr_assert_eq(r->status, status, "%s: %s/%s, expected %s", what, bo_status_str(r->status),
		     bo_detail_str(r->detail), bo_status_str(status));
}

static void call_status(nng_socket s, const bo_cmd *c, uint8_t status, const char *what)
{
	bo_result r = cli_call(s, c);
	assert_status(&r, status, what);
}

Test(gateway, failed_shard_answers_busy_at_once_others_serve)
{
	tserver *t = &g_srv[0];
	fail_hook_set(&g_fail, 0, 0);
	srv_start(t, 2, fail_hook_fn, &g_fail);
	const uint64_t ev_ok = event_on(0, 100), ev_bad = event_on(FAIL_SHARD, 100);
	nng_socket a = cli_open(t->url), b = cli_open(t->url);
	/* A failed shard answers at once: seconds, not the 20 s of WAIT_MS. */
	nng_socket_set_ms(a, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(b, NNG_OPT_RECVTIMEO, 5000);
	bo_seatmap *m0 = map_new(1, 8), *m1 = map_new(1, 8);
	bo_cmd c0 = c_create(ev_ok, m0), c1 = c_create(ev_bad, m1);
	call_status(a, &c0, BO_OK, "create on the healthy shard");
	call_status(a, &c1, BO_OK, "create on the shard that will fail");

	/* A's hold is in the batch the failure strikes; B's waits in the ring. */
	fail_hook_set(&g_fail, 1, 0);
	uint32_t seat1 = 1, seat2 = 2;
	bo_cmd ha = tcmd_hold_seats(7, 1, ev_bad, &seat1, 1, 60000);
	bo_cmd hb = tcmd_hold_seats(7, 2, ev_bad, &seat2, 1, 60000);
	cli_send(a, &ha);
	fail_hook_wait_entered(&g_fail);
	cli_send(b, &hb);
	wait_ring_commands(t->gw, 4);
	fail_hook_set(&g_fail, 1, 1);
	bo_result ra = cli_recv(a), rb = cli_recv(b);
	assert_status(&ra, BO_BUSY, "the command of the batch the failure struck");
	cr_assert_eq(ra.request_id, 1);
	assert_status(&rb, BO_BUSY, "the command waiting in the failed shard's ring");
	cr_assert_eq(rb.request_id, 2);
	cr_assert_not_null(gw_failed(t->gw), "the server does not report the failed shard");

	/* Later commands: busy for the failed shard, served by the other. */
	bo_cmd hc = tcmd_hold_seats(7, 3, ev_bad, &seat1, 1, 60000);
	call_status(a, &hc, BO_BUSY, "a later command for the failed shard");
	bo_cmd hd = tcmd_hold_seats(7, 4, ev_ok, &seat1, 1, 60000);
	call_status(a, &hd, BO_OK, "a hold on the healthy shard");
	bo_cmd two[2] = {tcmd_hold_seats(7, 5, ev_ok, &seat2, 1, 60000),
			 tcmd_hold_seats(7, 6, ev_bad, &seat2, 1, 60000)};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(two, 2, 1, &sb), 0);
	cr_assert_eq(nng_send(a, sb.data, sb.size, 0), 0);
	msgpack_sbuffer_destroy(&sb);
	nng_msg *msg;
	cr_assert_eq(nng_recvmsg(a, &msg, 0), 0, "no reply to the message spanning both shards");
	bo_result r2[2];
	wire_reply_info info[2];
	wire_msg wm;
	int rv = wire_decode_replies(nng_msg_body(msg), nng_msg_len(msg), r2, info, 2, &wm);
	nng_msg_free(msg);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	cr_assert_eq(wm.count, 2);
	assert_status(&r2[0], BO_OK, "the healthy shard's part of a two-shard message");
	assert_status(&r2[1], BO_BUSY, "the failed shard's part of a two-shard message");

	gw_stats st;
	gw_stats_get(t->gw, &st);
	cr_assert_geq(st.busy, 4, "busy answers counted: %lu", (unsigned long)st.busy);
	nng_close(a);
	nng_close(b);
	bo_seatmap_free(m0);
	bo_seatmap_free(m1);
	gw_stop(t->gw, WAIT_MS);
	cr_assert_eq(gw_close_hung(t->gw), 0, "nng_close hung");
	gw_free(t->gw);
	t->gw = NULL;
	fail_hook_set(&g_fail, 0, 0);
}
