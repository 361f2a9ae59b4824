/*
 * retry_test.c — the client library's not_primary retry and multi-server
 * failover (client/boxoffice.h "Several servers", schemas/protocol.md
 * "not_primary"), against stub servers (nng REP in this process).
 *
 * Proves:
 *  - a not_primary reply naming another server is not returned: the
 *    command is resent there, and the caller gets that server's ok; the
 *    second server saw the SAME (client id, request id) as the first; a
 *    later command goes straight to the second server (the first sees no
 *    more);
 *  - the same for a message-level not_primary (one map for the message);
 *  - without a named primary the client retries the configured list and,
 *    after retry_max resends, returns status not_primary with the server's
 *    text; the server saw exactly 1 + retry_max requests, all with the
 *    same request id; no_retry returns the first not_primary at once;
 *  - with two addresses, the first one dead, a command times out there and
 *    is resent to the second with the same ids;
 *  - boc_switchover follows not_primary to the named primary;
 *    boc_cluster_status returns the stub's report field for field;
 *  - comma-separated address lists are parsed; bad ones are refused.
 * Stubs listen on tcp://127.0.0.1 on ports the kernel picks.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "client/boxoffice.h"
#include "protocol/wire.h"

/* ---- Stub servers ---------------------------------------------------------- */

enum stub_mode {
	STUB_OK,         /* every command ok */
	STUB_NP_NAMED,   /* every command not_primary, naming `primary` */
	STUB_NP_WHOLE,   /* one message-level not_primary naming `primary` */
	STUB_NP_UNKNOWN, /* every command not_primary, no primary named */
	STUB_SPLIT,      /* ok for events of its parity, else not_primary naming `primary` */
};

#define SEEN_MAX 256u

typedef struct stub {
	nng_socket sock;
	char url[64];
	int mode;
	uint64_t parity;      /* STUB_SPLIT: the events it owns (event % 2) */
	uint32_t strays;      /* STUB_SPLIT: commands for events it does not own */
	wire_primary primary; /* what not_primary replies name */
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t mu;
	uint32_t seen;                  /* commands received */
	uint64_t seen_client[SEEN_MAX]; /* their ids, in order */
	uint64_t seen_request[SEEN_MAX];
	uint64_t seen_epoch[SEEN_MAX]; /* the message's "epoch" */
	uint32_t switchovers;          /* switchover requests */
	wire_admin_args last_switchover;
	bo_cmd cmds[64];
	wire_cmd_error errs[64];
	bo_result res[64];
	wire_primary prim[64];
} stub;

static void stub_send(stub *s, const msgpack_sbuffer *sb)
{
	nng_msg *rep;
	cr_assert_eq(nng_msg_alloc(&rep, sb->size), 0);
	memcpy(nng_msg_body(rep), sb->data, sb->size);
	if (nng_sendmsg(s->sock, rep, 0) != 0)
		nng_msg_free(rep);
}

static wire_cluster_status stub_cluster; /* what cluster_status answers */

/* Answers an admin request; 0 when req is none. */
static int stub_admin(stub *s, nng_msg *req, msgpack_sbuffer *sb)
{
	wire_msg m;
	wire_admin_args a;
	int kind = wire_decode_admin_args(nng_msg_body(req), nng_msg_len(req), &a, &m);
	if (kind == WIRE_ADMIN_NONE)
		return 0;
	cr_assert_gt(kind, 0, "%s", m.error);
	if (kind == WIRE_ADMIN_CLUSTER_STATUS) {
		cr_assert_eq(wire_encode_cluster_status(&stub_cluster, sb), 0);
	} else {
		cr_assert_eq(kind, WIRE_ADMIN_SWITCHOVER);
		pthread_mutex_lock(&s->mu);
		s->switchovers++;
		s->last_switchover = a;
		pthread_mutex_unlock(&s->mu);
		if (s->mode == STUB_OK)
			cr_assert_eq(wire_encode_ok(sb), 0);
		else
			cr_assert_eq(wire_encode_not_primary(&s->primary, "ask the primary", sb),
			             0);
	}
	stub_send(s, sb);
	return 1;
}

static void stub_answer(stub *s, nng_msg *req)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (stub_admin(s, req, &sb)) {
		msgpack_sbuffer_destroy(&sb);
		return;
	}
	wire_msg m;
	int rv = wire_decode_request(nng_msg_body(req), nng_msg_len(req), s->cmds, s->errs, 64, &m);
	cr_assert_eq(rv, 0, "stub got an undecodable request: %s", m.error);
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < m.count && s->seen < SEEN_MAX; i++, s->seen++) {
		s->seen_client[s->seen] = s->cmds[i].client_id;
		s->seen_request[s->seen] = s->cmds[i].request_id;
		s->seen_epoch[s->seen] = m.epoch;
	}
	pthread_mutex_unlock(&s->mu);
	for (uint32_t i = 0; i < m.count; i++) {
		bo_result *r = &s->res[i];
		memset(r, 0, sizeof(*r));
		r->op = s->cmds[i].op;
		r->status = s->mode == STUB_OK ? BO_OK : BO_NOT_PRIMARY;
		if (s->mode == STUB_SPLIT) {
			bool mine = s->cmds[i].event_id % 2 == s->parity;
			r->status = mine ? BO_OK : BO_NOT_PRIMARY;
			if (!mine) {
				pthread_mutex_lock(&s->mu);
				s->strays++;
				pthread_mutex_unlock(&s->mu);
			}
		}
		r->client_id = s->cmds[i].client_id;
		r->request_id = s->cmds[i].request_id;
		r->event_id = s->cmds[i].event_id;
		if (r->status == BO_OK && r->op == BO_OP_HOLD_SEATS)
			r->claim_id = 4242;
		s->prim[i] = s->primary;
		if (s->mode == STUB_NP_UNKNOWN)
			s->prim[i].known = 0;
	}
	wire_free_maps(s->cmds, m.count);
	if (s->mode == STUB_NP_WHOLE)
		rv = wire_encode_not_primary(&s->primary, "this server is a standby", &sb);
	else
		rv = wire_encode_replies_primary(s->res, NULL, s->prim, m.count, m.is_array, &sb);
	cr_assert_eq(rv, 0);
	stub_send(s, &sb);
	msgpack_sbuffer_destroy(&sb);
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

static stub *stub_start(int mode)
{
	stub *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	s->mode = mode;
	pthread_mutex_init(&s->mu, NULL);
	cr_assert_eq(nng_rep0_open(&s->sock), 0);
	nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 50);
	nng_listener l;
	int rv = nng_listen(s->sock, "tcp://127.0.0.1:0", &l, 0);
	cr_assert_eq(rv, 0, "listen: %s", nng_strerror(rv));
	nng_sockaddr sa;
	cr_assert_eq(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	snprintf(s->url, sizeof(s->url), "tcp://127.0.0.1:%d", ntohs(sa.s_in.sa_port));
	cr_assert_eq(pthread_create(&s->thread, NULL, stub_main, s), 0);
	return s;
}

/* Makes s's not_primary replies name `to` as the primary of epoch 7. */
static void stub_names(stub *s, const stub *to, uint32_t node)
{
	s->primary = (wire_primary){.epoch = 7, .known = 1, .node = node};
	snprintf(s->primary.address, sizeof(s->primary.address), "%s", to->url);
}

static uint32_t stub_strays(stub *s)
{
	pthread_mutex_lock(&s->mu);
	uint32_t n = s->strays;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static uint32_t stub_seen(stub *s)
{
	pthread_mutex_lock(&s->mu);
	uint32_t n = s->seen;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void stub_stop(stub *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	nng_close(s->sock);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static boc_options opts(void)
{
	boc_options o;
	boc_options_default(&o);
	o.timeout_ms = 2000;
	return o;
}

/* Retries as by default, with a short backoff so the tests run fast. */
static boc_retry_options ropts(void)
{
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.backoff_ms = 10;
	return ro;
}

/* Opens a client of one address or a comma-separated list. */
static void open_list(const char *list, const boc_options *o, const boc_retry_options *ro,
                      boc_client **c)
{
	const char *urls[4];
	char buf[4][64];
	uint32_t n = 0;
	for (const char *p = list; *p && n < 4; n++) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		cr_assert_lt(len, sizeof(buf[0]));
		memcpy(buf[n], p, len);
		buf[n][len] = '\0';
		urls[n] = buf[n];
		p += len + (comma != NULL);
	}
	cr_assert_eq(boc_open_servers(urls, n, o, ro, c), 0);
}

static void hold_cmd(bo_cmd *cmd)
{
	uint32_t seats[2] = {3, 4};
	boc_hold_seats(cmd, 0, 0, 42, seats, 2, 600000);
}

/* ---- Tests ------------------------------------------------------------------ */

/* mode: how A refuses (named per command, or message-level). */
static void follows_the_named_primary(int mode)
{
	stub *b = stub_start(STUB_OK);
	stub *a = stub_start(mode);
	stub_names(a, b, 2);
	boc_options o = opts();
	boc_retry_options ro = ropts();
	boc_client *c;
	open_list(a->url, &o, &ro, &c);
	bo_cmd cmd;
	hold_cmd(&cmd);
	cmd.request_id = 777;
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_OK, "status %s: %s", boc_status_name(res.status), text);
	cr_assert_eq(res.claim_id, 4242, "the named primary's answer");
	cr_assert_eq(stub_seen(a), 1);
	cr_assert_eq(stub_seen(b), 1);
	cr_assert_eq(a->seen_request[0], 777);
	cr_assert_eq(b->seen_request[0], 777, "the same request id");
	cr_assert_eq(b->seen_client[0], a->seen_client[0], "the same client id");
	cr_assert_eq(b->seen_client[0], boc_client_id(c));
	cr_assert_eq(a->seen_epoch[0], 0, "the first send knew no epoch");
	cr_assert_eq(b->seen_epoch[0], 7, "the resend carries the epoch it was told");
	boc_stats st;
	boc_stats_get(c, &st);
	cr_assert_eq(boc_retries(c), 1);
	cr_assert_eq(st.replies, 1);

	/* The next command goes straight to B. */
	hold_cmd(&cmd);
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_OK);
	cr_assert_eq(stub_seen(a), 1, "A is not asked again");
	cr_assert_eq(stub_seen(b), 2);
	boc_close(c);
	stub_stop(a);
	stub_stop(b);
}

Test(retry, not_primary_is_followed_to_the_named_primary, .timeout = 60)
{
	follows_the_named_primary(STUB_NP_NAMED);
}

Test(retry, message_level_not_primary_is_followed_too, .timeout = 60)
{
	follows_the_named_primary(STUB_NP_WHOLE);
}

Test(retry, retries_are_bounded, .timeout = 60)
{
	stub *a = stub_start(STUB_NP_UNKNOWN);
	boc_options o = opts();
	boc_retry_options ro = ropts();
	ro.retry_max = 3;
	boc_client *c;
	open_list(a->url, &o, &ro, &c);
	bo_cmd cmd;
	hold_cmd(&cmd);
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_NOT_PRIMARY, "after retry_max the not_primary is returned");
	cr_assert_str_eq(text, "this server is not the primary of the shard");
	cr_assert_eq(stub_seen(a), 4, "1 send + 3 resends, saw %u", stub_seen(a));
	for (uint32_t i = 1; i < 4; i++)
		cr_assert_eq(a->seen_request[i], a->seen_request[0], "always the same request id");
	boc_close(c);

	/* no_retry: the first answer as it came. */
	ro.no_retry = 1;
	open_list(a->url, &o, &ro, &c);
	hold_cmd(&cmd);
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_NOT_PRIMARY);
	cr_assert_eq(stub_seen(a), 5);
	boc_close(c);
	stub_stop(a);
}

Test(retry, unknown_primary_moves_through_the_list, .timeout = 60)
{
	stub *b = stub_start(STUB_OK);
	stub *a = stub_start(STUB_NP_UNKNOWN);
	char list[160];
	snprintf(list, sizeof(list), "%s,%s", a->url, b->url);
	boc_options o = opts();
	boc_retry_options ro = ropts();
	boc_client *c;
	open_list(list, &o, &ro, &c);
	bo_cmd cmd;
	hold_cmd(&cmd);
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_OK);
	cr_assert_eq(stub_seen(a), 1);
	cr_assert_eq(stub_seen(b), 1);
	cr_assert_eq(b->seen_request[0], a->seen_request[0]);
	boc_close(c);
	stub_stop(a);
	stub_stop(b);
}

Test(retry, a_dead_server_is_skipped, .timeout = 60)
{
	/* A port the kernel handed out and that was closed again. */
	stub *dead = stub_start(STUB_OK);
	char dead_url[64];
	snprintf(dead_url, sizeof(dead_url), "%s", dead->url);
	stub_stop(dead);
	stub *b = stub_start(STUB_OK);
	const char *urls[2] = {dead_url, b->url};
	boc_options o = opts();
	o.timeout_ms = 300;
	boc_client *c;
	cr_assert_eq(boc_open_servers(urls, 2, &o, NULL, &c), 0);
	bo_cmd cmd;
	hold_cmd(&cmd);
	cmd.request_id = 99;
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(res.status, BO_OK);
	cr_assert_eq(stub_seen(b), 1);
	cr_assert_eq(b->seen_request[0], 99);
	boc_close(c);

	/* One address: a timeout is returned as before, never retried. */
	cr_assert_eq(boc_open(dead_url, &o, &c), 0);
	hold_cmd(&cmd);
	cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), BOC_ERR_TIMEOUT);
	cr_assert_eq(boc_retries(c), 0);
	boc_close(c);
	stub_stop(b);
}

Test(retry, switchover_follows_not_primary_and_cluster_status, .timeout = 60)
{
	stub *b = stub_start(STUB_OK);
	stub *a = stub_start(STUB_NP_NAMED);
	stub_names(a, b, 2);
	boc_options o = opts();
	boc_client *c;
	cr_assert_eq(boc_open(a->url, &o, &c), 0, "boc_open: default retries");
	int status;
	char text[BOC_TEXT_LEN_MAX];
	cr_assert_eq(boc_switchover(c, 5, 9, &status, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(status, BO_OK, "%s", text);
	cr_assert_eq(a->switchovers, 1);
	cr_assert_eq(b->switchovers, 1);
	cr_assert_eq(b->last_switchover.shard, 5);
	cr_assert_eq(b->last_switchover.to, 9);

	memset(&stub_cluster, 0, sizeof(stub_cluster));
	stub_cluster.node = 3;
	stub_cluster.shard_count = 2;
	for (uint32_t k = 0; k < 2; k++) {
		wire_shard_cluster *s = &stub_cluster.shards[k];
		s->shard = k;
		s->epoch = 10 + k;
		s->role = k ? WIRE_ROLE_STANDBY : WIRE_ROLE_PRIMARY;
		s->primary_known = 1;
		s->primary = k ? 1 : 3;
		s->in_sync_count = 2;
		s->in_sync[0] = 3;
		s->in_sync[1] = 1;
		s->last_seq = 100 + k;
		s->durable_seq = 99;
		s->released_seq = 98;
	}
	stub_cluster.shards[0].standby_count = 1;
	stub_cluster.shards[0].standbys[0] =
	        (wire_standby_status){.node = 1, .acked_seq = 95, .lag_records = 5};
	boc_cluster_report rep;
	cr_assert_eq(boc_cluster_status(c, &rep, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(rep.status, BO_OK);
	cr_assert_eq(rep.node, 3);
	cr_assert_eq(rep.shard_count, 2);
	cr_assert_eq(rep.shards[1].role, BOC_ROLE_STANDBY);
	cr_assert_eq(rep.shards[1].epoch, 11);
	cr_assert_eq(rep.shards[0].standby_count, 1);
	cr_assert_eq(rep.shards[0].standbys[0].lag_records, 5);
	cr_assert_eq(rep.shards[0].in_sync[1], 1);
	cr_assert_str_eq(boc_role_name(BOC_ROLE_FENCED), "fenced");
	boc_close(c);
	stub_stop(a);
	stub_stop(b);
}

/* A burst of commands: each callback counts itself. */
typedef struct burst {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t done, ok;
} burst;

static void burst_cb(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)text;
	burst *b = ctx;
	pthread_mutex_lock(&b->mu);
	b->done++;
	if (err == 0 && res->status == BO_OK && res->claim_id == 4242)
		b->ok++;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* The shards' primaries on two servers (A owns the even events, B the
 * odd ones; each names the other for the rest): after one not_primary per
 * event, the client sends each event's commands straight to its owner —
 * one command at a time, and in batches that mix both servers' events,
 * which the client splits. Without the per-event routes, every command
 * for the other server's events would be answered not_primary and resent
 * (boc_retries ~ half the commands). */
Test(retry, commands_go_to_their_events_primary, .timeout = 60)
{
	enum { EVENTS = 8, ROUNDS = 50, BURST = 2000 };
	stub *a = stub_start(STUB_SPLIT);
	stub *b = stub_start(STUB_SPLIT);
	a->parity = 0;
	b->parity = 1;
	stub_names(a, b, 2);
	stub_names(b, a, 1);
	boc_options o = opts();
	o.batch_max = 64; /* what a stub decodes at once */
	boc_retry_options ro = ropts();
	boc_client *c;
	char list[160];
	snprintf(list, sizeof(list), "%s,%s", a->url, b->url);
	open_list(list, &o, &ro, &c);
	bo_cmd cmd;
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	for (uint32_t i = 0; i < ROUNDS * EVENTS; i++) {
		hold_cmd(&cmd);
		cmd.event_id = 100 + i % EVENTS;
		cr_assert_eq(boc_call(c, &cmd, &res, text, sizeof(text)), 0, "%s", text);
		cr_assert_eq(res.status, BO_OK, "status %s: %s", boc_status_name(res.status), text);
		cr_assert_eq(res.claim_id, 4242);
	}
	uint64_t learnt = boc_retries(c);
	cr_assert_leq(learnt, EVENTS, "%" PRIu64 " resends for %d commands: at most one per event",
	              learnt, ROUNDS * EVENTS);
	cr_assert_leq(stub_strays(a) + stub_strays(b), EVENTS);

	/* Mixed batches: nothing more is resent. */
	burst bu = {.done = 0};
	pthread_mutex_init(&bu.mu, NULL);
	pthread_cond_init(&bu.cv, NULL);
	for (uint32_t i = 0; i < BURST; i++) {
		hold_cmd(&cmd);
		cmd.event_id = 100 + i % EVENTS;
		cr_assert_eq(boc_submit(c, &cmd, burst_cb, &bu), 0);
	}
	pthread_mutex_lock(&bu.mu);
	while (bu.done < BURST)
		pthread_cond_wait(&bu.cv, &bu.mu);
	pthread_mutex_unlock(&bu.mu);
	cr_assert_eq(bu.ok, BURST, "every command of the burst answered ok by its owner");
	cr_assert_eq(boc_retries(c), learnt, "the burst's commands all went to their owners");
	cr_assert_leq(stub_strays(a) + stub_strays(b), EVENTS, "no stray after the first per event");
	boc_close(c);
	stub_stop(a);
	stub_stop(b);
	pthread_mutex_destroy(&bu.mu);
	pthread_cond_destroy(&bu.cv);
}

Test(retry, address_lists)
{
	boc_client *c;
	cr_assert_eq(boc_open("tcp://127.0.0.1:1,", NULL, &c), -EINVAL);
	cr_assert_eq(boc_open(",tcp://127.0.0.1:1", NULL, &c), -EINVAL);
	char many[BOC_SERVERS_MAX * 24 + 32] = "";
	for (uint32_t i = 0; i <= BOC_SERVERS_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%stcp://127.0.0.1:%u",
		         i ? "," : "", 1000 + i);
	cr_assert_eq(boc_open(many, NULL, &c), -EINVAL, "more than BOC_SERVERS_MAX");
	cr_assert_eq(boc_open("tcp://127.0.0.1:1,tcp://127.0.0.1:2", NULL, &c), 0);
	boc_close(c);
	const char *bad[1] = {"tcp://a:1,tcp://b:2"};
	cr_assert_eq(boc_open_servers(bad, 1, NULL, NULL, &c), -EINVAL);
	cr_assert_eq(boc_open_servers(bad, 0, NULL, NULL, &c), -EINVAL);
	const char *one[1] = {"tcp://127.0.0.1:1"};
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	cr_assert_eq(ro.retry_max, BOC_RETRY_MAX_DEFAULT);
	ro.retry_max = BOC_RETRY_MAX_MAX + 1;
	cr_assert_eq(boc_open_servers(one, 1, NULL, &ro, &c), -EINVAL);
	boc_retry_options_default(&ro);
	ro.backoff_ms = BOC_RETRY_BACKOFF_MS_MAX + 1;
	cr_assert_eq(boc_open_servers(one, 1, NULL, &ro, &c), -EINVAL);
}
