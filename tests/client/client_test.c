/*
 * client_test.c — libboxoffice-client against a stub server, and without one.
 *
 * Proves:
 *  - no hang without a server: boc_call to a closed port returns
 *    BOC_ERR_TIMEOUT (status BOC_STATUS_NO_ANSWER) within the timeout, and a
 *    server that receives but never answers gives the same;
 *  - a full local queue makes boc_submit return -EBUSY at once, and
 *    boc_close then fails every accepted command exactly once;
 *  - batching and reply matching: many threads submit concurrently to a stub
 *    REP server (wire_decode_request + wire_encode_replies with synthesized
 *    results whose claim id is derived from the request id); every callback
 *    runs exactly once with its own request id and claim id, the stub sees
 *    every command, and it sees fewer messages than commands;
 *  - the library assigns distinct request ids and the client id;
 *  - "the server answered busy" (err 0, status BO_BUSY) is distinct from
 *    "no answer"; garbage, short or mismatched replies give
 *    BOC_ERR_PROTOCOL; commands without an encoding are refused;
 *  - the dial does not wait for the server: a server started after the
 *    command was submitted still answers it;
 *  - boc_server_status: from several threads while commands are batched,
 *    every call gets the stub's status field for field and every command
 *    its reply; a silent server or a closed port is BOC_ERR_TIMEOUT within
 *    the timeout, busy is an answer (0, status busy, its text), garbage is
 *    BOC_ERR_PROTOCOL.
 * The stub listens on tcp://127.0.0.1 on a port the kernel picks.
 */
#if defined(__SANITIZE_THREAD__) && !defined(CLIENT_TEST_FORCE_CRITERION)
/* Criterion cannot start under ThreadSanitizer; the client is all threads,
 * so this build runs the same test bodies through tests/support/tsan_harness. */
#include "tests/support/tsan_harness.h"
#else
#include <criterion/criterion.h>
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "base/clock.h"
#include "client/boxoffice.h"
#include "protocol/wire.h"

/* ---- Stub server --------------------------------------------------------- */

enum stub_mode {
	STUB_ECHO,     /* answer every command ok */
	STUB_SILENT,   /* receive, never answer */
	STUB_BUSY,     /* answer the whole message busy (message-level reply) */
	STUB_GARBAGE,  /* answer bytes that are not msgpack */
	STUB_SHORT,    /* answer one reply fewer than commands */
	STUB_WRONG_ID, /* answer with request ids + 1 */
};

typedef struct stub {
	nng_socket sock;
	char url[64];
	int port;
	int mode;
	uint32_t delay_us; /* per message: lets batches build up in the client */
	pthread_t thread;
	atomic_int stop;
	atomic_uint messages;
	atomic_uint commands;
	atomic_uint status_requests;
	bo_cmd *cmds;
	wire_cmd_error *errs;
	bo_result *res;
} stub;

/* The claim id the stub gives a request: lets a callback prove that the
 * reply it got was computed for its own command. */
static uint64_t stub_claim(uint64_t request_id)
{
	return request_id * 0x9e3779b97f4a7c15ull + 7;
}

/* The status the stub reports: 3 shards, shard k's numbers derived from k. */
static wire_server_status stub_status;

static void stub_status_fill(void)
{
	memset(&stub_status, 0, sizeof(stub_status));
	snprintf(stub_status.version, sizeof(stub_status.version), "stub-1");
	stub_status.shard_count = 3;
	for (uint32_t k = 0; k < 3; k++) {
		wire_shard_status *sh = &stub_status.shards[k];
		sh->shard = k;
		sh->durable_seq = 1000 + k;
		sh->batches = 10 + k;
		sh->committer.state = (uint8_t)(WIRE_COMMITTER_RUNNING + k);
		sh->committer.applied_seq = 900 + k;
		sh->committer.lag_records = 100;
		sh->committer.lag_ms = 50 * k;
		sh->committer.retries = k;
		if (k)
			snprintf(sh->committer.reason, sizeof(sh->committer.reason), "reason %u",
			         k);
	}
}

/* Answers a server_status request as the mode says; returns 0 when req
 * was not one (then it is decoded as commands). */
static int stub_answer_admin(stub *s, nng_msg *req, msgpack_sbuffer *sb)
{
	wire_msg m;
	uint64_t event_id;
	if (wire_decode_admin(nng_msg_body(req), nng_msg_len(req), &event_id, &m) !=
	    WIRE_ADMIN_SERVER_STATUS)
		return 0;
	atomic_fetch_add(&s->status_requests, 1);
	int rv = 0;
	switch (s->mode) {
	case STUB_SILENT:
		return 1;
	case STUB_BUSY:
		rv = wire_encode_error(BO_BUSY, "ring full", sb);
		break;
	case STUB_GARBAGE:
		msgpack_sbuffer_write(sb, "\xc1\xc1\xc1", 3);
		break;
	default:
		stub_status_fill();
		rv = wire_encode_server_status(&stub_status, sb);
	}
	cr_assert_eq(rv, 0);
	nng_msg *rep;
	cr_assert_eq(nng_msg_alloc(&rep, sb->size), 0);
	memcpy(nng_msg_body(rep), sb->data, sb->size);
	if (nng_sendmsg(s->sock, rep, 0) != 0)
		nng_msg_free(rep);
	return 1;
}

static void stub_answer(stub *s, nng_msg *req)
{
	wire_msg m;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (stub_answer_admin(s, req, &sb)) {
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	int rv = wire_decode_request(nng_msg_body(req), nng_msg_len(req), s->cmds, s->errs,
	                             WIRE_BATCH_MAX, &m);
	cr_assert_eq(rv, 0, "stub got an undecodable request: %s", m.error);
	atomic_fetch_add(&s->commands, m.count);
	atomic_fetch_add(&s->messages, 1);
	if (s->delay_us)
		usleep(s->delay_us);
	for (uint32_t i = 0; i < m.count; i++) {
		bo_result *r = &s->res[i];
		memset(r, 0, sizeof(*r));
		r->op = s->cmds[i].op;
		r->status = BO_OK;
		r->client_id = s->cmds[i].client_id;
		r->request_id = s->cmds[i].request_id + (s->mode == STUB_WRONG_ID);
		r->event_id = s->cmds[i].event_id;
		if (r->op >= BO_OP_HOLD_SEATS && r->op <= BO_OP_CANCEL)
			r->claim_id = stub_claim(s->cmds[i].request_id);
	}
	wire_free_maps(s->cmds, m.count);
	switch (s->mode) {
	case STUB_SILENT:
		msgpack_sbuffer_destroy(&sb);
		return;
	case STUB_BUSY:
		rv = wire_encode_error(BO_BUSY, "ring full", &sb);
		break;
	case STUB_GARBAGE:
		msgpack_sbuffer_write(&sb, "\xc1\xc1\xc1", 3);
		rv = 0;
		break;
	case STUB_SHORT:
		rv = wire_encode_replies(s->res, s->errs, m.count - 1, 1, &sb);
		break;
	default:
		rv = wire_encode_replies(s->res, s->errs, m.count, m.is_array, &sb);
	}
	cr_assert_eq(rv, 0);
	nng_msg *rep;
	cr_assert_eq(nng_msg_alloc(&rep, sb.size), 0);
	memcpy(nng_msg_body(rep), sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	if (nng_sendmsg(s->sock, rep, 0) != 0)
		nng_msg_free(rep);
}

static void *stub_main(void *arg)
{
	stub *s = arg;
	while (!atomic_load(&s->stop)) {
		nng_msg *req;
		int rv = nng_recvmsg(s->sock, &req, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		stub_answer(s, req);
		nng_msg_free(req);
	}
	return NULL;
}

/* Starts a stub on `port` (0: the kernel picks one). */
static stub *stub_start(int mode, int port)
{
	stub *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	s->mode = mode;
	s->cmds = calloc(WIRE_BATCH_MAX, sizeof(bo_cmd));
	s->errs = calloc(WIRE_BATCH_MAX, sizeof(wire_cmd_error));
	s->res = calloc(WIRE_BATCH_MAX, sizeof(bo_result));
	cr_assert(s->cmds && s->errs && s->res);
	cr_assert_eq(nng_rep0_open(&s->sock), 0);
	nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 50);
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, WIRE_MSG_MAX + WIRE_SP_HEADER_BYTES);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	nng_listener l;
	int rv = nng_listen(s->sock, url, &l, 0);
	cr_assert_eq(rv, 0, "listen %s: %s", url, nng_strerror(rv));
	nng_sockaddr sa;
	cr_assert_eq(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	s->port = ntohs(sa.s_in.sa_port);
	snprintf(s->url, sizeof(s->url), "tcp://127.0.0.1:%d", s->port);
	cr_assert_eq(pthread_create(&s->thread, NULL, stub_main, s), 0);
	return s;
}

static void stub_stop(stub *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	nng_close(s->sock);
	free(s->cmds);
	free(s->errs);
	free(s->res);
	free(s);
}

/* A URL where nothing listens: a port the kernel just handed out and that
 * was closed again. */
static void closed_url(char *url, size_t len, int *port)
{
	stub *s = stub_start(STUB_ECHO, 0);
	*port = s->port;
	snprintf(url, len, "%s", s->url);
	stub_stop(s);
}

/* ---- Callback bookkeeping ------------------------------------------------ */

typedef struct tracked {
	uint64_t request_id; /* what the reply must echo */
	atomic_int calls;
	atomic_int err;
	atomic_int status;
	_Atomic uint64_t claim_id;
} tracked;

static atomic_uint callbacks_total;

static void track_cb(void *ctx, int err, const bo_result *res, const char *text)
{
	tracked *t = ctx;
	cr_assert_not_null(text);
	atomic_store(&t->err, err);
	atomic_store(&t->status, res->status);
	atomic_store(&t->claim_id, res->claim_id);
	if (t->request_id != 0 && res->request_id != t->request_id)
		atomic_store(&t->err, 1); /* flagged: someone else's reply */
	atomic_fetch_add(&t->calls, 1);
	atomic_fetch_add(&callbacks_total, 1);
}

static void wait_callbacks(unsigned want, int64_t ms)
{
	int64_t end = bo_clock_ms() + ms;
	while (atomic_load(&callbacks_total) < want && bo_clock_ms() < end)
		usleep(1000);
	cr_assert_eq(atomic_load(&callbacks_total), want, "callbacks: %u of %u",
	             atomic_load(&callbacks_total), want);
}

static boc_options opts(uint32_t timeout_ms)
{
	boc_options o;
	boc_options_default(&o);
	o.timeout_ms = timeout_ms;
	return o;
}

static void hold_cmd(bo_cmd *cmd, uint64_t request)
{
	uint32_t seats[3] = {12, 13, 14};
	boc_hold_seats(cmd, 0, request, 42, seats, 3, 600000);
}

/* ---- Without a server ---------------------------------------------------- */

Test(client, call_to_closed_port_times_out)
{
	char url[64];
	int port;
	closed_url(url, sizeof(url), &port);
	boc_options o = opts(300);
	boc_client *c;
	cr_assert_eq(boc_open(url, &o, &c), 0);
	bo_cmd cmd;
	hold_cmd(&cmd, 0);
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	int64_t t0 = bo_clock_ms();
	int rc = boc_call(c, &cmd, &res, text, sizeof(text));
	int64_t took = bo_clock_ms() - t0;
	cr_assert_eq(rc, BOC_ERR_TIMEOUT, "rc %d (%s)", rc, text);
	cr_assert_eq(res.status, BOC_STATUS_NO_ANSWER);
	cr_assert_neq(res.request_id, 0, "the assigned request id is reported");
	cr_assert_eq(res.client_id, boc_client_id(c));
	cr_assert_eq(res.claim_id, 0);
	cr_assert(took >= 250 && took < 2000, "took %lld ms for a 300 ms timeout", (long long)took);
	cr_assert_gt(strlen(text), 0);
	boc_close(c);
}

Test(client, bad_url_and_options_are_refused)
{
	boc_client *c = (boc_client *)1;
	cr_assert_eq(boc_open("nonsense://x", NULL, &c), -EINVAL);
	cr_assert_null(c);
	boc_options o = opts(100);
	o.batch_max = WIRE_BATCH_MAX + 1;
	cr_assert_eq(boc_open("tcp://127.0.0.1:1", &o, &c), -EINVAL);
	o = opts(100);
	o.batch_max = 64;
	o.queue_max = 32; /* cannot hold one batch */
	cr_assert_eq(boc_open("tcp://127.0.0.1:1", &o, &c), -EINVAL);
}

Test(client, full_queue_refuses_at_once_and_close_fails_the_rest)
{
	char url[64];
	int port;
	closed_url(url, sizeof(url), &port);
	boc_options o = opts(1000);
	o.inflight_max = 1;
	o.batch_max = 4;
	o.queue_max = 4;
	o.linger_us = BOC_LINGER_US_MAX;
	boc_client *c;
	cr_assert_eq(boc_open(url, &o, &c), 0);
	static tracked t[64];
	atomic_store(&callbacks_total, 0);
	unsigned accepted = 0;
	int rc = 0;
	for (; accepted < 64; accepted++) {
		bo_cmd cmd;
		hold_cmd(&cmd, 0);
		if ((rc = boc_submit(c, &cmd, track_cb, &t[accepted])) != 0)
			break;
	}
	cr_assert_eq(rc, -EBUSY);
	/* Queue (4) plus at most one batch (4) in the single slot. */
	cr_assert(accepted >= 4 && accepted <= 8, "accepted %u", accepted);
	int64_t t0 = bo_clock_ms();
	bo_cmd cmd;
	hold_cmd(&cmd, 0);
	cr_assert_eq(boc_submit(c, &cmd, track_cb, &t[63]), -EBUSY);
	cr_assert_lt(bo_clock_ms() - t0, 50, "-EBUSY must not wait");
	boc_stats st;
	boc_stats_get(c, &st);
	cr_assert_eq(st.refused_busy, 2);
	cr_assert_eq(st.commands_submitted, accepted);
	boc_close(c);
	cr_assert_eq(atomic_load(&callbacks_total), accepted);
	for (unsigned i = 0; i < accepted; i++) {
		cr_assert_eq(atomic_load(&t[i].calls), 1, "command %u: %d calls", i,
		             atomic_load(&t[i].calls));
		int err = atomic_load(&t[i].err);
		cr_assert(err == BOC_ERR_CLOSED || err == BOC_ERR_TIMEOUT, "err %d", err);
		cr_assert_eq(atomic_load(&t[i].status), BOC_STATUS_NO_ANSWER);
	}
}

Test(client, unencodable_commands_are_refused)
{
	boc_client *c;
	cr_assert_eq(boc_open("tcp://127.0.0.1:1", NULL, &c), 0);
	bo_cmd cmd;
	memset(&cmd, 0, sizeof(cmd));
	cr_assert_eq(boc_submit(c, &cmd, NULL, NULL), -EINVAL, "op 0");
	uint32_t seats[BO_SEATS_PER_HOLD_MAX + 1] = {0};
	boc_hold_seats(&cmd, 1, 1, 1, seats, BO_SEATS_PER_HOLD_MAX + 1, 600000);
	cr_assert_eq(boc_submit(c, &cmd, NULL, NULL), -EINVAL, "17 seats");
	boc_create_event(&cmd, 1, 1, 1, NULL);
	cr_assert_eq(boc_submit(c, &cmd, NULL, NULL), -EINVAL, "no map");
	boc_confirm(&cmd, 1, 1, 1, 5, "0123456789012345678901234567890123456789");
	cr_assert_eq(boc_submit(c, &cmd, NULL, NULL), -EINVAL, "40-byte payref");
	boc_close(c);
}

/* ---- Against the stub ---------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 2000

typedef struct submitter {
	boc_client *c;
	tracked *t;       /* [PER_THREAD] */
	uint32_t pace_us; /* pause between submits (0: as fast as possible) */
	int busy_retries;
} submitter;

static void *submit_main(void *arg)
{
	submitter *sub = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		bo_cmd cmd;
		sub->t[i].request_id = boc_next_request_id(sub->c);
		hold_cmd(&cmd, sub->t[i].request_id);
		int rc;
		while ((rc = boc_submit(sub->c, &cmd, track_cb, &sub->t[i])) == -EBUSY) {
			sub->busy_retries++;
			usleep(100);
		}
		cr_assert_eq(rc, 0);
		if (sub->pace_us)
			usleep(sub->pace_us);
	}
	return NULL;
}

static void concurrent_submits(uint32_t pace_us)
{
	stub *s = stub_start(STUB_ECHO, 0);
	s->delay_us = 200; /* a server with some work per message */
	boc_options o = opts(20000);
	o.inflight_max = 2;
	o.linger_us = 500;
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	/* Connected before the load starts, so batches come from concurrency,
	 * not from commands piling up while the connection is made. */
	bo_cmd warm;
	hold_cmd(&warm, 0);
	bo_result wres;
	cr_assert_eq(boc_call(c, &warm, &wres, NULL, 0), 0);
	atomic_store(&s->messages, 0);
	atomic_store(&s->commands, 0);
	atomic_store(&callbacks_total, 0);
	static tracked t[THREADS][PER_THREAD];
	memset(t, 0, sizeof(t));
	submitter subs[THREADS];
	pthread_t th[THREADS];
	for (int k = 0; k < THREADS; k++) {
		subs[k] = (submitter){.c = c, .t = t[k], .pace_us = pace_us};
		cr_assert_eq(pthread_create(&th[k], NULL, submit_main, &subs[k]), 0);
	}
	for (int k = 0; k < THREADS; k++)
		pthread_join(th[k], NULL);
	wait_callbacks(THREADS * PER_THREAD, 60000);
	for (int k = 0; k < THREADS; k++)
		for (int i = 0; i < PER_THREAD; i++) {
			tracked *x = &t[k][i];
			cr_assert_eq(atomic_load(&x->calls), 1, "t%d/%d: %d calls", k, i,
			             atomic_load(&x->calls));
			cr_assert_eq(atomic_load(&x->err), 0, "t%d/%d: err %d", k, i,
			             atomic_load(&x->err));
			cr_assert_eq(atomic_load(&x->status), BO_OK);
			cr_assert_eq(atomic_load(&x->claim_id), stub_claim(x->request_id),
			             "t%d/%d got another command's reply", k, i);
		}
	unsigned msgs = atomic_load(&s->messages), cmds = atomic_load(&s->commands);
	cr_assert_eq(cmds, THREADS * PER_THREAD);
	cr_assert_gt(cmds, 2 * msgs, "no batching: %u commands in %u messages", cmds, msgs);
	boc_stats st;
	boc_stats_get(c, &st);
	cr_assert_eq(st.messages_sent, msgs + 1);
	cr_assert_eq(st.replies, THREADS * PER_THREAD + 1);
	cr_assert_eq(st.failures, 0);
	cr_log_info("pace %u us: %u commands in %u messages (%.1f per message)", pace_us, cmds,
	            msgs, (double)cmds / msgs);
	boc_close(c);
	stub_stop(s);
}

/* As fast as the threads can: messages fill up to batch_max. */
Test(client, concurrent_submits_are_batched_and_matched, .timeout = 120)
{
	concurrent_submits(0);
}

/* Paced submitters (~100k commands/s in all): messages leave on linger. */
Test(client, paced_submits_are_batched_by_linger, .timeout = 120)
{
	concurrent_submits(20);
}

Test(client, request_and_client_ids_are_assigned)
{
	stub *s = stub_start(STUB_ECHO, 0);
	boc_options o = opts(5000);
	o.linger_zero = 1;
	o.client_id = 77;
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	cr_assert_eq(boc_client_id(c), 77);
	enum {
		N = 64
	};
	uint64_t ids[N];
	for (int i = 0; i < N; i++) {
		bo_cmd cmd;
		hold_cmd(&cmd, 0);
		bo_result res;
		cr_assert_eq(boc_call(c, &cmd, &res, NULL, 0), 0);
		cr_assert_eq(res.status, BO_OK);
		cr_assert_eq(res.client_id, 77);
		cr_assert_eq(res.claim_id, stub_claim(res.request_id));
		ids[i] = res.request_id;
		cr_assert_neq(ids[i], 0);
		for (int j = 0; j < i; j++)
			cr_assert_neq(ids[i], ids[j], "request id reused");
	}
	/* A caller's own ids are kept. */
	bo_cmd cmd;
	boc_hold_best(&cmd, 5, 123456, 42, 1, 2, 600000);
	bo_result res;
	cr_assert_eq(boc_call(c, &cmd, &res, NULL, 0), 0);
	cr_assert_eq(res.request_id, 123456);
	cr_assert_eq(res.client_id, 5);
	boc_close(c);
	stub_stop(s);
}

Test(client, silent_server_times_out)
{
	stub *s = stub_start(STUB_SILENT, 0);
	boc_options o = opts(400);
	o.linger_zero = 1;
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	atomic_store(&callbacks_total, 0);
	static tracked t[10];
	for (int i = 0; i < 10; i++) {
		bo_cmd cmd;
		hold_cmd(&cmd, 0);
		cr_assert_eq(boc_submit(c, &cmd, track_cb, &t[i]), 0);
	}
	int64_t t0 = bo_clock_ms();
	wait_callbacks(10, 3000);
	int64_t took = bo_clock_ms() - t0;
	cr_assert_lt(took, 1500, "callbacks took %lld ms for a 400 ms timeout", (long long)took);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(atomic_load(&t[i].calls), 1);
		cr_assert_eq(atomic_load(&t[i].err), BOC_ERR_TIMEOUT);
	}
	cr_assert_geq(atomic_load(&s->commands), 1, "the stub received the commands");
	bo_cmd cmd;
	hold_cmd(&cmd, 0);
	bo_result res;
	t0 = bo_clock_ms();
	cr_assert_eq(boc_call(c, &cmd, &res, NULL, 0), BOC_ERR_TIMEOUT);
	took = bo_clock_ms() - t0;
	cr_assert(took >= 350 && took < 1500, "boc_call took %lld ms", (long long)took);
	boc_close(c);
	stub_stop(s);
}

Test(client, busy_answer_is_an_answer)
{
	stub *s = stub_start(STUB_BUSY, 0);
	boc_options o = opts(5000);
	o.linger_us = 20000; /* all five in one message */
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	atomic_store(&callbacks_total, 0);
	static tracked t[5];
	for (int i = 0; i < 5; i++) {
		bo_cmd cmd;
		t[i].request_id = boc_next_request_id(c);
		hold_cmd(&cmd, t[i].request_id);
		cr_assert_eq(boc_submit(c, &cmd, track_cb, &t[i]), 0);
	}
	wait_callbacks(5, 5000);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(atomic_load(&t[i].err), 0, "busy is an answer, not a client error");
		cr_assert_eq(atomic_load(&t[i].status), BO_BUSY);
	}
	bo_cmd cmd;
	hold_cmd(&cmd, 0);
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0);
	cr_assert_eq(res.status, BO_BUSY);
	cr_assert_str_eq(text, "ring full");
	cr_assert_neq(res.request_id, 0);
	boc_close(c);
	stub_stop(s);
}

static void expect_protocol_error(int mode)
{
	stub *s = stub_start(mode, 0);
	boc_options o = opts(3000);
	o.linger_zero = 1;
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	bo_cmd cmd;
	hold_cmd(&cmd, 0);
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	int rc = boc_call(c, &cmd, &res, text, sizeof(text));
	cr_assert_eq(rc, BOC_ERR_PROTOCOL, "mode %d: rc %d (%s)", mode, rc, text);
	cr_assert_eq(res.status, BOC_STATUS_NO_ANSWER);
	boc_close(c);
	stub_stop(s);
}

Test(client, bad_replies_are_protocol_errors)
{
	expect_protocol_error(STUB_GARBAGE);
	expect_protocol_error(STUB_SHORT);
	expect_protocol_error(STUB_WRONG_ID);
}

Test(client, server_may_start_after_the_client)
{
	char url[64];
	int port;
	closed_url(url, sizeof(url), &port);
	boc_options o = opts(5000);
	o.linger_zero = 1;
	boc_client *c;
	cr_assert_eq(boc_open(url, &o, &c), 0);
	atomic_store(&callbacks_total, 0);
	static tracked t;
	bo_cmd cmd;
	t.request_id = boc_next_request_id(c);
	hold_cmd(&cmd, t.request_id);
	cr_assert_eq(boc_submit(c, &cmd, track_cb, &t), 0);
	usleep(300 * 1000);
	cr_assert_eq(atomic_load(&t.calls), 0, "answered before a server existed");
	stub *s = stub_start(STUB_ECHO, port);
	wait_callbacks(1, 5000);
	cr_assert_eq(atomic_load(&t.err), 0);
	cr_assert_eq(atomic_load(&t.claim_id), stub_claim(t.request_id));
	boc_close(c);
	stub_stop(s);
}

Test(client, close_fails_what_is_in_flight)
{
	stub *s = stub_start(STUB_SILENT, 0);
	boc_options o = opts(600);
	o.linger_zero = 1;
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	atomic_store(&callbacks_total, 0);
	static tracked t[20];
	for (int i = 0; i < 20; i++) {
		bo_cmd cmd;
		hold_cmd(&cmd, 0);
		cr_assert_eq(boc_submit(c, &cmd, track_cb, &t[i]), 0);
	}
	int64_t t0 = bo_clock_ms();
	boc_close(c);
	int64_t took = bo_clock_ms() - t0;
	cr_assert_lt(took, 2000, "close took %lld ms", (long long)took);
	cr_assert_eq(atomic_load(&callbacks_total), 20, "every callback ran before close returned");
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(atomic_load(&t[i].calls), 1);
		int err = atomic_load(&t[i].err);
		cr_assert(err == BOC_ERR_CLOSED || err == BOC_ERR_TIMEOUT, "err %d", err);
	}
	stub_stop(s);
}

/* ---- server_status ---------------------------------------------------------- */

static void expect_stub_status(const boc_server_report *st)
{
	cr_assert_eq(st->status, BO_OK);
	cr_assert_str_eq(st->version, "stub-1");
	cr_assert_eq(st->shard_count, 3);
	for (uint32_t k = 0; k < 3; k++) {
		const boc_shard_status *sh = &st->shards[k];
		cr_assert_eq(sh->shard, k);
		cr_assert_eq(sh->durable_seq, 1000 + k);
		cr_assert_eq(sh->batches, 10 + k);
		cr_assert_eq(sh->committer.state, BOC_COMMITTER_RUNNING + (int)k);
		cr_assert_eq(sh->committer.applied_seq, 900 + k);
		cr_assert_eq(sh->committer.lag_records, 100);
		cr_assert_eq(sh->committer.lag_ms, 50 * k);
		cr_assert_eq(sh->committer.retries, k);
	}
	cr_assert_str_eq(st->shards[0].committer.reason, "");
	cr_assert_str_eq(st->shards[2].committer.reason, "reason 2");
	cr_assert_str_eq(boc_committer_state_name(st->shards[1].committer.state), "retrying");
}

typedef struct status_caller {
	boc_client *c;
	int calls;
	int ok;
} status_caller;

static void *status_caller_main(void *arg)
{
	status_caller *sc = arg;
	boc_server_report *st = malloc(sizeof(*st));
	cr_assert_not_null(st);
	for (int i = 0; i < sc->calls; i++) {
		char text[BOC_TEXT_LEN_MAX];
		int rc = boc_server_status(sc->c, st, text, sizeof(text));
		cr_assert_eq(rc, 0, "call %d: %d (%s)", i, rc, text);
		expect_stub_status(st);
		sc->ok++;
	}
	free(st);
	return NULL;
}

Test(client, server_status_beside_batched_commands, .timeout = 120)
{
	stub *s = stub_start(STUB_ECHO, 0);
	s->delay_us = 500;
	boc_options o = opts(10000);
	boc_client *c;
	cr_assert_eq(boc_open(s->url, &o, &c), 0);
	enum {
		CMDS = 2000,
		CALLERS = 3,
		CALLS = 20
	};
	static tracked t[CMDS];
	atomic_store(&callbacks_total, 0);
	status_caller sc[CALLERS];
	pthread_t th[CALLERS];
	for (int i = 0; i < CALLERS; i++) {
		sc[i] = (status_caller){.c = c, .calls = CALLS};
		cr_assert_eq(pthread_create(&th[i], NULL, status_caller_main, &sc[i]), 0);
	}
	for (unsigned i = 0; i < CMDS; i++) {
		bo_cmd cmd;
		hold_cmd(&cmd, 0);
		while (boc_submit(c, &cmd, track_cb, &t[i]) == -EBUSY)
			usleep(100);
	}
	for (int i = 0; i < CALLERS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(sc[i].ok, CALLS);
	}
	wait_callbacks(CMDS, 20000);
	for (unsigned i = 0; i < CMDS; i++) {
		cr_assert_eq(atomic_load(&t[i].calls), 1);
		cr_assert_eq(atomic_load(&t[i].err), 0);
		cr_assert_eq(atomic_load(&t[i].status), BO_OK);
	}
	cr_assert_eq(atomic_load(&s->status_requests), CALLERS * CALLS);
	cr_assert_eq(atomic_load(&s->commands), CMDS, "status requests are not commands");
	boc_close(c);
	stub_stop(s);
}

/* One boc_server_status against a stub in `mode` (or a closed port when
 * mode < 0), timeout 300 ms. Returns its rc; *took_ms how long it took. */
static int status_once(int mode, boc_server_report *st, char *text, size_t len, int64_t *took_ms)
{
	char url[64];
	int port;
	stub *s = NULL;
	if (mode < 0) {
		closed_url(url, sizeof(url), &port);
	} else {
		s = stub_start(mode, 0);
		snprintf(url, sizeof(url), "%s", s->url);
	}
	boc_options o = opts(300);
	boc_client *c;
	cr_assert_eq(boc_open(url, &o, &c), 0);
	int64_t t0 = bo_clock_ms();
	int rc = boc_server_status(c, st, text, len);
	*took_ms = bo_clock_ms() - t0;
	boc_close(c);
	if (s)
		stub_stop(s);
	return rc;
}

Test(client, server_status_no_answer_busy_and_garbage)
{
	static boc_server_report st;
	char text[BOC_TEXT_LEN_MAX];
	int64_t took;
	for (int mode = -1; mode <= STUB_SILENT; mode += STUB_SILENT + 1) {
		int rc = status_once(mode, &st, text, sizeof(text), &took);
		cr_assert_eq(rc, BOC_ERR_TIMEOUT, "mode %d: rc %d (%s)", mode, rc, text);
		cr_assert(took >= 250 && took < 2000, "mode %d: %lld ms for a 300 ms timeout", mode,
		          (long long)took);
		cr_assert_eq(st.status, BOC_STATUS_NO_ANSWER);
		cr_assert_eq(st.shard_count, 0);
		cr_assert_gt(strlen(text), 0);
	}
	cr_assert_eq(status_once(STUB_BUSY, &st, text, sizeof(text), &took), 0);
	cr_assert_eq(st.status, BO_BUSY);
	cr_assert_str_eq(text, "ring full");
	cr_assert_eq(st.shard_count, 0);
	cr_assert_eq(status_once(STUB_GARBAGE, &st, text, sizeof(text), &took), BOC_ERR_PROTOCOL);
	cr_assert(strstr(text, "undecodable reply") != NULL, "%s", text);
	cr_assert_eq(st.shard_count, 0);
	cr_assert_eq(status_once(STUB_ECHO, &st, text, sizeof(text), &took), 0, "%s", text);
	expect_stub_status(&st);
	cr_assert_str_eq(text, "");
}
