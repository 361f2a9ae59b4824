/*
 * readside_test.c — the read side of the gateway in-process: queries from
 * the read model, the durability rule, and projections end to end.
 *
 *  1. Reads never enter a shard's ring: a thousand queries (single and in
 *     arrays) leave the rings' command count where it was, and answer
 *     what the writes did; a write beside them in one message enters alone.
 *  2. A read never sees a change before it is durable: with the shard's
 *     journal sync held in a fault hook, a hold's seat stays free for
 *     query_avail, query_seats and event_state, and the read model's
 *     sequence does not move; once the sync completes, the client that
 *     has the hold's reply reads it at once (read-your-writes).
 *  3. Projections: a subscriber (a small one written here from
 *     schemas/protocol.md part II, independent of the client library)
 *     joins, follows a random run of every kind of change over two
 *     events on two shards, sees every change in order with no gap (its
 *     counts per cause equal the writes' ok results), detects a message it
 *     drops on purpose as a gap and resynchronises with event_state; at
 *     the end its images equal the server's and the engine's (the shards
 *     reopened from their journals after the server stopped).
 *  4. A mass expiry: 4,096 holds made at one instant of a fake clock
 *     expire in one advance (one TICK record) of a batch that also applies
 *     ten commands queued behind a held journal write; the group comes out
 *     at once, so the output thread's poll takes the expiries and peeks at
 *     the first command. Every expiry and every command reaches the read
 *     model, the replies and the subscriber exactly once, with no gap, and
 *     the server goes on answering writes.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/change.h"
#include "base/seatmap.h"
#include "engine/engine.h"
#include "gateway/gateway.h"
#include "protocol/projection.h"
#include "protocol/wire.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/gate.h"
#include "tests/support/rng.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 20000 /* bound on every wait for an event (ASan, slow disk) */

static gate g_gate = GATE_INIT(JOURNAL_IO_SYNC);
static gate g_wgate = GATE_INIT(JOURNAL_IO_WRITE);

/* ---- The server ---------------------------------------------------------- */

typedef struct tserver {
	char dir[PATH_MAX];
	char data_dir[PATH_MAX + 8];
	char url[PATH_MAX + 16];
	char pub[PATH_MAX + 16];
	gw_config cfg;
	gw_server *gw;
} tserver;

static tserver g_srv;

static void suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void)
{
	gate_set(&g_gate, 0);
	gate_set(&g_wgate, 0);
	if (g_srv.gw) {
		gw_stop(g_srv.gw, 5000);
		if (!gw_close_hung(g_srv.gw))
			gw_free(g_srv.gw);
		g_srv.gw = NULL;
	}
	if (g_srv.dir[0])
		tmpdir_remove(g_srv.dir);
}

/* A clock for the shards when set (else the real one). */
static shard_clock_fn g_clock;

static void srv_start(tserver *t, uint32_t shards, journal_fault_fn hook, void *hook_ctx)
{
	int rc = tmpdir_make(t->dir, sizeof(t->dir), "bo-readside-test");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	snprintf(t->data_dir, sizeof(t->data_dir), "%s/data", t->dir);
	snprintf(t->url, sizeof(t->url), "ipc://%s/sock", t->dir);
	snprintf(t->pub, sizeof(t->pub), "ipc://%s/pub", t->dir);
	cr_assert_eq(mkdir(t->data_dir, 0700), 0, "mkdir: %s", strerror(errno));
	gw_config *cfg = &t->cfg;
	gw_config_default(cfg);
	cfg->data_dir = t->data_dir;
	cfg->shards = shards;
	cfg->listen[0] = t->url;
	cfg->listen_count = 1;
	cfg->publish[0] = t->pub;
	cfg->publish_count = 1;
	cfg->contexts = 4;
	cfg->status_every_ms = 0;
	cfg->shard.engine.seats_max = 65536;
	cfg->shard.engine.claims_max = 65536;
	cfg->shard.engine.idem_capacity = 65536;
	cfg->shard.engine.events_max = 64;
	cfg->shard.journal.fault = hook;
	cfg->shard.journal.fault_ctx = hook_ctx;
	cfg->shard.clock = g_clock;
	char err[GW_ERR_LEN];
	rc = gw_start(cfg, &t->gw, err, sizeof(err));
	cr_assert_eq(rc, 0, "gw_start: %d %s", rc, err);
}

static void srv_stop(tserver *t)
{
	cr_assert_eq(gw_stop(t->gw, WAIT_MS), 0, "gw_stop timed out");
	cr_assert_null(gw_failed(t->gw), "a shard failed: %s", gw_failed(t->gw));
	cr_assert_eq(gw_close_hung(t->gw), 0, "nng_close hung");
	gw_free(t->gw);
	t->gw = NULL;
}

/* ---- Requests ------------------------------------------------------------ */

static nng_socket req_open(const char *url)
{
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, WAIT_MS);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, WAIT_MS);
	int rv = nng_dial(s, url, NULL, 0);
	cr_assert_eq(rv, 0, "dial %s: %s", url, nng_strerror(rv));
	return s;
}

static void send_cmds(nng_socket s, const bo_cmd *c, uint32_t n, int as_array)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(c, n, as_array, &sb), 0);
	int rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
}

static void recv_results(nng_socket s, bo_result *r, uint32_t n)
{
	nng_msg *m;
	int rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no reply: %s", nng_strerror(rv));
	wire_msg wm;
	rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), r, NULL, n, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	cr_assert_eq(wm.count, n);
}

static bo_result call(nng_socket s, const bo_cmd *c)
{
	bo_result r;
	send_cmds(s, c, 1, 0);
	recv_results(s, &r, 1);
	return r;
}

/* event_state over s: 0 and *im, or the reply's non-ok status. */
static int event_state(nng_socket s, uint64_t event, bo_event_image *im)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_event_state_request(event, &sb), 0);
	int rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
	nng_msg *m;
	rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no event_state reply: %s", nng_strerror(rv));
	int status;
	wire_msg wm;
	rv = wire_decode_event_image(nng_msg_body(m), nng_msg_len(m), im, &status, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "event_state reply: %s", wm.error);
	return status;
}

static uint32_t free_seats(nng_socket s, uint64_t event, uint64_t *seq)
{
	bo_cmd q = tcmd_query_avail(event);
	bo_result r = call(s, &q);
	cr_assert_eq(r.status, BO_OK, "query_avail %lu: %s", (unsigned long)event,
	             bo_status_str(r.status));
	if (seq)
		*seq = r.view_seq;
	return r.avail.by_state[BO_SEAT_FREE];
}

TestSuite(readside, .init = suite_init, .fini = suite_fini, .timeout = 240);

/* ==== 1. Reads never enter a ring ========================================= */

Test(readside, reads_never_enter_the_ring)
{
	tserver *t = &g_srv;
	srv_start(t, 2, NULL, NULL);
	nng_socket s = req_open(t->url);
	bo_seatmap *m = tcmd_rows_map(4, 10, 1, 50);
	for (uint64_t e = 1; e <= 4; e++) {
		bo_cmd c = tcmd_create(1, e, e, m);
		cr_assert_eq(call(s, &c).status, BO_OK);
	}
	uint32_t seats[2] = {3, 4};
	bo_cmd h = tcmd_hold_seats(7, 1, 2, seats, 2, 60000);
	bo_result hr = call(s, &h);
	cr_assert_eq(hr.status, BO_OK);

	gw_stats before, after;
	gw_stats_get(t->gw, &before);
	bo_cmd q[100];
	bo_result r[100];
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < 100; i++)
			q[i] = i % 2 ? tcmd_query_avail(1 + (uint64_t)i % 4)
			             : tcmd_query_seats(2, 2, 4);
		send_cmds(s, q, 100, 1);
		recv_results(s, r, 100);
		for (int i = 0; i < 100; i++) {
			cr_assert_eq(r[i].status, BO_OK);
			cr_assert_gt(r[i].view_seq, 0, "a read without the read model's sequence");
			if (i % 2)
				cr_assert_eq(r[i].avail.by_state[BO_SEAT_FREE],
				             q[i].event_id == 2 ? 38u : 40u);
			else
				cr_assert(r[i].seat_state[0] == BO_SEAT_FREE &&
				          r[i].seat_state[1] == BO_SEAT_HELD &&
				          r[i].seat_state[2] == BO_SEAT_HELD &&
				          r[i].seat_state[3] == BO_SEAT_FREE);
		}
	}
	bo_cmd unknown = tcmd_query_avail(99);
	cr_assert_eq(call(s, &unknown).status, BO_NOT_FOUND);
	gw_stats_get(t->gw, &after);
	cr_assert_eq(after.ring_commands, before.ring_commands,
	             "reads entered the rings: %lu commands",
	             (unsigned long)(after.ring_commands - before.ring_commands));
	cr_assert_eq(after.reads - before.reads, 1001);

	/* A write beside reads in one message: only the write enters. */
	bo_cmd mixed[3] = {tcmd_query_avail(1), tcmd_hold_best(7, 2, 1, 0, 2, 60000),
	                   tcmd_query_avail(3)};
	send_cmds(s, mixed, 3, 1);
	recv_results(s, r, 3);
	cr_assert(r[0].status == BO_OK && r[1].status == BO_OK && r[2].status == BO_OK);
	gw_stats_get(t->gw, &after);
	cr_assert_eq(after.ring_commands, before.ring_commands + 1);
	bo_seatmap_free(m);
	nng_close(s);
	srv_stop(t);
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

/* ==== 2. Nothing before it is durable ===================================== */

Test(readside, reads_wait_for_durability)
{
	tserver *t = &g_srv;
	srv_start(t, 1, gate_hook, &g_gate);
	nng_socket s = req_open(t->url), w = req_open(t->url);
	bo_seatmap *m = tcmd_rows_map(1, 8, 0, 0);
	bo_cmd c = tcmd_create(1, 1, 5, m);
	cr_assert_eq(call(s, &c).status, BO_OK);
	uint64_t seq0;
	cr_assert_eq(free_seats(s, 5, &seq0), 8);

	/* The hold's batch is written but its fdatasync is held. */
	gate_set(&g_gate, 1);
	uint32_t seat = 3;
	bo_cmd h = tcmd_hold_seats(9, 1, 5, &seat, 1, 60000);
	send_cmds(w, &h, 1, 0);
	gate_wait_entered(&g_gate, WAIT_MS);
	for (int i = 0; i < 50; i++) {
		uint64_t seq;
		cr_assert_eq(free_seats(s, 5, &seq), 8,
		             "a read saw a hold whose journal is not synced");
		cr_assert_eq(seq, seq0, "the read model moved before the sync");
		bo_cmd qs = tcmd_query_seats(5, 3, 1);
		bo_result r = call(s, &qs);
		cr_assert_eq(r.seat_state[0], BO_SEAT_FREE);
	}
	bo_event_image im;
	cr_assert_eq(event_state(s, 5, &im), BO_OK);
	cr_assert_eq(im.seq, seq0);
	cr_assert_eq(im.states[3], BO_SEAT_FREE);
	bo_event_image_free(&im);

	gate_set(&g_gate, 0);
	bo_result hr;
	recv_results(w, &hr, 1);
	cr_assert_eq(hr.status, BO_OK);
	/* Read-your-writes: no waiting once the reply is in. */
	uint64_t seq1;
	cr_assert_eq(free_seats(s, 5, &seq1), 7);
	cr_assert_gt(seq1, seq0);
	bo_cmd qs = tcmd_query_seats(5, 3, 1);
	cr_assert_eq(call(s, &qs).seat_state[0], BO_SEAT_HELD);
	bo_seatmap_free(m);
	nng_close(s);
	nng_close(w);
	srv_stop(t);
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

/* ==== 3. Projections end to end =========================================== */

#define NEV 2u

/* A subscriber written from the protocol document alone. */
typedef struct tsub {
	nng_socket sub, req;
	uint64_t ids[NEV];
	bo_event_image im[NEV];
	pthread_mutex_t mu; /* images and counters, against the test's reads */
	uint64_t by_cause[BO_CAUSE_COUNT];
	uint64_t gaps, resyncs, stale, messages;
	uint64_t drop_next; /* 1: drop the next message of a watched event */
	uint64_t dropped;
	atomic_int stop;
	bo_change changes[WIRE_PROJECTION_CHANGES_MAX];
} tsub;

static void tsub_apply(bo_event_image *im, const bo_change *c)
{
	if (c->is_pool) {
		cr_assert_lt(c->pool, im->pool_count);
		im->pool_free[c->pool] = c->pool_free;
		return;
	}
	for (uint32_t i = 0; i < c->seat_count; i++) {
		cr_assert_lt(c->seats[i], im->seat_count);
		im->states[c->seats[i]] = c->state;
	}
}

/* One message: apply it, or count it stale, or resynchronise. */
static void tsub_handle(tsub *ts, nng_msg *m)
{
	wire_projection h;
	wire_msg wm;
	int rc = wire_decode_projection(nng_msg_body(m), nng_msg_len(m), &h, ts->changes,
	                                WIRE_PROJECTION_CHANGES_MAX, &wm);
	cr_assert_eq(rc, 0, "projection: %s", wm.error);
	uint32_t k = 0;
	while (k < NEV && ts->ids[k] != h.event_id)
		k++;
	if (k == NEV)
		return;
	pthread_mutex_lock(&ts->mu);
	ts->messages++;
	bo_event_image *im = &ts->im[k];
	if (ts->drop_next) {
		ts->drop_next = 0;
		ts->dropped++;
	} else if (h.seq <= im->seq) {
		ts->stale++;
	} else if (h.prev_seq == im->seq) {
		for (uint32_t i = 0; i < h.count; i++) {
			tsub_apply(im, &ts->changes[i]);
			ts->by_cause[ts->changes[i].cause]++;
		}
		im->seq = h.seq;
	} else {
		ts->gaps++;
		bo_event_image fresh;
		cr_assert_eq(event_state(ts->req, h.event_id, &fresh), BO_OK);
		bo_event_image_free(im);
		*im = fresh;
		ts->resyncs++;
	}
	pthread_mutex_unlock(&ts->mu);
}

static void *tsub_main(void *arg)
{
	tsub *ts = arg;
	while (!atomic_load(&ts->stop)) {
		nng_msg *m;
		int rv = nng_recvmsg(ts->sub, &m, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		tsub_handle(ts, m);
		nng_msg_free(m);
	}
	return NULL;
}

/* Waits until the subscriber's image of every event is at the server's
 * read-model sequence. */
static void tsub_wait_caught_up(tsub *ts, nng_socket s, uint32_t nev)
{
	for (uint32_t k = 0; k < nev; k++) {
		uint64_t want;
		free_seats(s, ts->ids[k], &want);
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			pthread_mutex_lock(&ts->mu);
			uint64_t have = ts->im[k].seq;
			pthread_mutex_unlock(&ts->mu);
			if (have >= want)
				break;
			struct timespec t1;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			cr_assert_lt(t1.tv_sec - t0.tv_sec, WAIT_MS / 1000,
			             "event %lu: subscriber at seq %lu, server at %lu",
			             (unsigned long)ts->ids[k], (unsigned long)have,
			             (unsigned long)want);
			sched_yield();
		}
	}
}

static void image_assert_equal(const bo_event_image *a, const bo_event_image *b, const char *what)
{
	cr_assert_eq(a->seat_count, b->seat_count, "%s: seat count", what);
	cr_assert_eq(a->pool_count, b->pool_count, "%s: pool count", what);
	for (uint32_t i = 0; i < a->seat_count; i++)
		cr_assert_eq(a->states[i], b->states[i], "%s: event %lu seat %u is %s, not %s",
		             what, (unsigned long)a->event_id, i, bo_seat_state_str(a->states[i]),
		             bo_seat_state_str(b->states[i]));
	for (uint32_t p = 0; p < a->pool_count; p++)
		cr_assert_eq(a->pool_free[p], b->pool_free[p], "%s: pool %u free %u, not %u", what,
		             p, a->pool_free[p], b->pool_free[p]);
}

/* Claims the run can know at once: every hold it makes must be known, or
 * a short one it cannot release could expire after the end of the run. */
#define RUN_CLAIMS_MAX 32768u

/* A claim the run knows about. */
typedef struct tclaim {
	uint64_t id, event;
	uint64_t client; /* the hold's: only it may touch the claim */
	int booked, short_ttl;
} tclaim;

typedef struct trun {
	tclaim claims[RUN_CLAIMS_MAX];
	uint32_t n;
	uint64_t rng, request;
	uint64_t ok_by_cause[BO_CAUSE_COUNT];
} trun;

static uint8_t cause_of(uint8_t op)
{
	switch (op) {
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
	case BO_OP_HOLD_POOL:
		return BO_CAUSE_HOLD;
	case BO_OP_RELEASE:
		return BO_CAUSE_RELEASE;
	case BO_OP_CONFIRM:
		return BO_CAUSE_CONFIRM;
	case BO_OP_CANCEL:
		return BO_CAUSE_CANCEL;
	case BO_OP_BLOCK:
		return BO_CAUSE_BLOCK;
	case BO_OP_UNBLOCK:
		return BO_CAUSE_UNBLOCK;
	default:
		return BO_CAUSE_NONE;
	}
}

/* A random command on one of the events. */
static bo_cmd run_cmd(trun *ru, const uint64_t *events)
{
	uint64_t x = trng_xorshift(&ru->rng);
	uint64_t ev = events[x % NEV];
	uint64_t client = 1 + (x >> 8) % 50, req = ++ru->request;
	uint32_t ttl = (x >> 16) % 8 == 0 ? 1000 : 600000;
	uint32_t pick = (uint32_t)(x >> 24) % 10;
	if (pick >= 4 && ru->n > 0) {
		tclaim *cl = &ru->claims[(x >> 32) % ru->n];
		/* Mostly the claim's client; another one is told not_found. */
		if ((x >> 56) % 5 != 0)
			client = cl->client;
		bo_cmd c = tcmd(BO_OP_RELEASE, client, req, cl->event);
		c.claim_id = cl->id;
		if (cl->booked) {
			c.op = BO_OP_CANCEL;
		} else if (pick >= 7) {
			c.op = BO_OP_CONFIRM;
			c.payref_len = 3;
			memcpy(c.payref, "psp", 3);
		}
		return c;
	}
	switch (pick) {
	case 0: {
		uint32_t seats[3] = {(uint32_t)(x >> 40) % 60, (uint32_t)(x >> 46) % 60,
		                     (uint32_t)(x >> 52) % 60};
		uint32_t n = seats[0] == seats[1] || seats[0] == seats[2] || seats[1] == seats[2]
		                     ? 1
		                     : 3;
		return tcmd_hold_seats(client, req, ev, seats, n, ttl);
	}
	case 1:
		return tcmd_hold_best(client, req, ev, (uint8_t)((x >> 40) % 2),
		                      (uint16_t)(1 + (x >> 44) % 4), ttl);
	case 2: {
		bo_cmd c = tcmd(BO_OP_HOLD_POOL, client, req, ev);
		c.pool = (uint8_t)((x >> 40) % 2);
		c.quantity = (uint16_t)(1 + (x >> 44) % 10);
		c.ttl_ms = ttl;
		return c;
	}
	default: {
		uint32_t seat = (uint32_t)(x >> 40) % 60;
		return tcmd_seats((x >> 50) % 2 ? BO_OP_BLOCK : BO_OP_UNBLOCK, client, req, ev,
		                  &seat, 1);
	}
	}
}

/* Sends `rounds` requests of up to 16 random commands and books the ok
 * results (claims, counts per cause). */
static void run_rounds(trun *ru, nng_socket s, const uint64_t *events, uint32_t rounds)
{
	bo_cmd cmds[16];
	bo_result res[16];
	for (uint32_t round = 0; round < rounds; round++) {
		uint32_t n = 1 + (uint32_t)(trng_xorshift(&ru->rng) % 16);
		for (uint32_t i = 0; i < n; i++)
			cmds[i] = run_cmd(ru, events);
		send_cmds(s, cmds, n, 1);
		recv_results(s, res, n);
		for (uint32_t i = 0; i < n; i++) {
			const bo_result *r = &res[i];
			if (r->status != BO_OK)
				continue;
			ru->ok_by_cause[cause_of(r->op)]++;
			if (cause_of(r->op) == BO_CAUSE_HOLD) {
				cr_assert_lt(ru->n, RUN_CLAIMS_MAX,
				             "more holds than the run can follow");
				ru->claims[ru->n++] =
				        (tclaim){r->claim_id, r->event_id, r->client_id, 0,
				                 cmds[i].ttl_ms == 1000};
				continue;
			}
			/* A claim id is unique within its shard's engine only:
			 * the two events' shards hand out the same ids. */
			for (uint32_t j = 0; j < ru->n; j++) {
				if (ru->claims[j].id != r->claim_id ||
				    ru->claims[j].event != r->event_id || r->claim_id == 0)
					continue;
				if (r->op == BO_OP_CONFIRM)
					ru->claims[j].booked = 1;
				else if (r->op == BO_OP_RELEASE || r->op == BO_OP_CANCEL)
					ru->claims[j] = ru->claims[--ru->n];
				break;
			}
		}
	}
}

/* Releases every short hold still known, so no expiry can come after the
 * run (the long ones outlive the test). */
static void run_release_short(trun *ru, nng_socket s)
{
	for (uint32_t j = 0; j < ru->n; j++) {
		if (!ru->claims[j].short_ttl || ru->claims[j].booked)
			continue;
		bo_cmd c = tcmd(BO_OP_RELEASE, ru->claims[j].client, ++ru->request,
		                ru->claims[j].event);
		c.claim_id = ru->claims[j].id;
		bo_result r = call(s, &c);
		if (r.status == BO_OK)
			ru->ok_by_cause[BO_CAUSE_RELEASE]++;
	}
}

/* The engine's image of event `id` after reopening the shards. */
static void engine_image(shard *const *shards, uint32_t nshards, uint64_t id, bo_event_image *im)
{
	engine *e = shard_engine(shards[shard_for_event(id, nshards)]);
	for (uint32_t i = 0; i < engine_event_count(e); i++) {
		cr_assert_eq(engine_event_image(e, i, im), 0);
		if (im->event_id == id)
			return;
		bo_event_image_free(im);
	}
	cr_assert_fail("event %lu not in its shard's engine", (unsigned long)id);
}

Test(readside, projections_follow_every_change)
{
	tserver *t = &g_srv;
	srv_start(t, 2, NULL, NULL);
	nng_socket s = req_open(t->url);
	/* Two events, on both shards: 3 rows of 20 seats in 2 categories
	 * and two pools of 200. */
	uint64_t events[NEV] = {0, 0};
	for (uint64_t id = 1, k = 0; k < NEV; id++)
		if (shard_for_event(id, 2) == k)
			events[k++] = id;
	bo_seatmap *m = tcmd_rows_map(3, 20, 2, 200);
	m->category_count = 2;
	for (uint32_t i = 0; i < m->seat_count; i++)
		m->categories[i] = (uint8_t)(i / 20 % 2);

	static tsub ts;
	memset(&ts, 0, sizeof(ts));
	pthread_mutex_init(&ts.mu, NULL);
	cr_assert_eq(nng_sub0_open(&ts.sub), 0);
	nng_socket_set_int(ts.sub, NNG_OPT_RECVBUF, 8192);
	nng_socket_set_ms(ts.sub, NNG_OPT_RECVTIMEO, 100);
	for (uint32_t k = 0; k < NEV; k++) {
		uint8_t topic[WIRE_TOPIC_BYTES];
		wire_topic(events[k], topic);
		cr_assert_eq(nng_socket_set(ts.sub, NNG_OPT_SUB_SUBSCRIBE, topic, sizeof(topic)),
		             0);
		ts.ids[k] = events[k];
	}
	cr_assert_eq(nng_dial(ts.sub, t->pub, NULL, 0), 0);
	ts.req = req_open(t->url);
	/* Joined once the server counts the subscriber. */
	gw_stats st;
	for (gw_stats_get(t->gw, &st); st.pub.subscribers < 1; gw_stats_get(t->gw, &st))
		sched_yield();
	/* The events are created after the subscriber joined: their create
	 * messages come first, and the images start from event_state. */
	for (uint32_t k = 0; k < NEV; k++) {
		bo_cmd c = tcmd_create(1, 1000 + k, events[k], m);
		cr_assert_eq(call(s, &c).status, BO_OK);
		cr_assert_eq(event_state(ts.req, events[k], &ts.im[k]), BO_OK);
	}
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, tsub_main, &ts), 0);

	/* Phase 1: no loss. Every ok write is one change of its cause. */
	static trun ru;
	memset(&ru, 0, sizeof(ru));
	ru.rng = 0x9e3779b97f4a7c15ull;
	ru.request = 1;
	run_rounds(&ru, s, events, 1500);
	/* Some short hold expires (each lives 1 s): wait for its change. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pthread_mutex_lock(&ts.mu);
		uint64_t expired = ts.by_cause[BO_CAUSE_EXPIRY];
		pthread_mutex_unlock(&ts.mu);
		if (expired > 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		cr_assert_lt(t1.tv_sec - t0.tv_sec, WAIT_MS / 1000,
		             "no expiry reached the subscriber");
		sched_yield();
	}
	run_release_short(&ru, s);
	tsub_wait_caught_up(&ts, s, NEV);
	pthread_mutex_lock(&ts.mu);
	cr_assert_eq(ts.gaps, 0, "a subscriber that keeps up saw %lu gaps", (unsigned long)ts.gaps);
	for (int c = BO_CAUSE_HOLD; c < BO_CAUSE_COUNT; c++)
		if (c != BO_CAUSE_EXPIRY)
			cr_assert_eq(ts.by_cause[c], ru.ok_by_cause[c],
			             "cause %s: %lu changes seen, %lu ok writes", bo_cause_str(c),
			             (unsigned long)ts.by_cause[c],
			             (unsigned long)ru.ok_by_cause[c]);
	/* Phase 2: the subscriber loses a message. */
	ts.drop_next = 1;
	pthread_mutex_unlock(&ts.mu);
	run_rounds(&ru, s, events, 500);
	run_release_short(&ru, s);
	tsub_wait_caught_up(&ts, s, NEV);
	atomic_store(&ts.stop, 1);
	pthread_join(th, NULL);
	cr_assert_eq(ts.dropped, 1);
	gw_stats_get(t->gw, &st);
	/* More than one gap: another message was lost too; the publisher's
	 * count tells whether its queue overflowed (a machine too slow for
	 * the test) or the loss was elsewhere. */
	cr_assert_eq(ts.gaps, 1,
	             "the dropped message was seen as %lu gaps (publisher queue drops %lu)",
	             (unsigned long)ts.gaps, (unsigned long)st.pub.dropped);
	cr_assert_eq(ts.resyncs, 1);

	/* The subscriber's images equal the server's read model ... */
	for (uint32_t k = 0; k < NEV; k++) {
		bo_event_image srv;
		cr_assert_eq(event_state(s, events[k], &srv), BO_OK);
		image_assert_equal(&ts.im[k], &srv, "subscriber vs read model");
		bo_event_image_free(&srv);
	}
	nng_close(ts.sub);
	nng_close(ts.req);
	nng_close(s);
	srv_stop(t);

	/* ... and the engine's, rebuilt from the journals. */
	shard *sh[2];
	for (uint32_t k = 0; k < 2; k++) {
		shard_config sc = t->cfg.shard;
		sc.id = k;
		sc.data_dir = t->data_dir;
		sc.journal.fault = NULL;
		char err[256];
		cr_assert_eq(shard_open(&sc, &sh[k], NULL, err, sizeof(err)), 0, "reopen: %s", err);
	}
	for (uint32_t k = 0; k < NEV; k++) {
		bo_event_image eng;
		engine_image(sh, 2, events[k], &eng);
		image_assert_equal(&ts.im[k], &eng, "subscriber vs engine");
		bo_event_image_free(&eng);
		bo_event_image_free(&ts.im[k]);
	}
	for (uint32_t k = 0; k < 2; k++)
		shard_free(sh[k]);
	bo_seatmap_free(m);
	pthread_mutex_destroy(&ts.mu);
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

/* ==== 4. A mass expiry ==================================================== */

static _Atomic int64_t g_fake_ms = 1700000000000;

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&g_fake_ms);
}

/* Exactly one TICK record's worth: the advance's expiries and the
 * commands that come with it are published as one group, so the output
 * thread's poll of GW_OUT_POLL_MAX + 1 ends one record into the commands. */
#define MASS_HOLDS SHARD_OUT_SEQ_RUN_MAX
#define MASS_PER_CLIENT 16u /* BO_HOLDS_PER_CLIENT_MAX */
#define MASS_TRIGGER 10u

/* 4096 holds of one seat each, in two requests. */
static void mass_hold(nng_socket s)
{
	static bo_cmd cmds[MASS_HOLDS / 2];
	static bo_result res[MASS_HOLDS / 2];
	for (uint32_t half = 0; half < 2; half++) {
		for (uint32_t i = 0; i < MASS_HOLDS / 2; i++) {
			uint32_t k = half * (MASS_HOLDS / 2) + i, seat = k;
			cmds[i] = tcmd_hold_seats(1 + k / MASS_PER_CLIENT, 1000 + k, 3, &seat, 1,
			                          1000);
		}
		send_cmds(s, cmds, MASS_HOLDS / 2, 1);
		recv_results(s, res, MASS_HOLDS / 2);
		for (uint32_t i = 0; i < MASS_HOLDS / 2; i++)
			cr_assert_eq(res[i].status, BO_OK, "hold %u: %s/%s",
			             half * (MASS_HOLDS / 2) + i, bo_status_str(res[i].status),
			             bo_detail_str(res[i].detail));
	}
}

Test(readside, mass_expiry_reaches_readers_whole)
{
	_Static_assert(MASS_HOLDS % MASS_PER_CLIENT == 0 &&
	                       MASS_PER_CLIENT <= BO_HOLDS_PER_CLIENT_MAX,
	               "clients");
	tserver *t = &g_srv;
	g_clock = fake_clock;
	srv_start(t, 1, gate_hook, &g_wgate);
	g_clock = NULL;
	nng_socket s = req_open(t->url), w = req_open(t->url), x = req_open(t->url);
	bo_seatmap *m = tcmd_rows_map(60, 100, 0, 0);
	bo_cmd c = tcmd_create(1, 1, 3, m);
	cr_assert_eq(call(s, &c).status, BO_OK);

	static tsub ts;
	memset(&ts, 0, sizeof(ts));
	pthread_mutex_init(&ts.mu, NULL);
	cr_assert_eq(nng_sub0_open(&ts.sub), 0);
	nng_socket_set_int(ts.sub, NNG_OPT_RECVBUF, 8192);
	nng_socket_set_ms(ts.sub, NNG_OPT_RECVTIMEO, 100);
	cr_assert_eq(nng_socket_set(ts.sub, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
	cr_assert_eq(nng_dial(ts.sub, t->pub, NULL, 0), 0);
	ts.req = req_open(t->url);
	gw_stats st;
	for (gw_stats_get(t->gw, &st); st.pub.subscribers < 1; gw_stats_get(t->gw, &st))
		sched_yield();
	ts.ids[0] = 3; /* the second slot stays empty: id 0 is no event */
	cr_assert_eq(event_state(ts.req, 3, &ts.im[0]), BO_OK);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, tsub_main, &ts), 0);

	/* The holds, all at one instant of the clock. */
	mass_hold(s);
	uint64_t seq_held;
	cr_assert_eq(free_seats(s, 3, &seq_held), 6000 - MASS_HOLDS);

	/* Hold the writer in a write, move the clock past the holds' expiry
	 * and queue MASS_TRIGGER commands behind it: the next batch expires
	 * every hold in one TICK and applies them. */
	gate_set(&g_wgate, 1);
	uint32_t seat = 5999;
	bo_cmd first = tcmd_seats(BO_OP_BLOCK, 7, 1, 3, &seat, 1);
	send_cmds(w, &first, 1, 0);
	gate_wait_entered(&g_wgate, WAIT_MS);
	atomic_fetch_add(&g_fake_ms, 1001);
	gw_stats_get(t->gw, &st);
	uint64_t ring0 = st.ring_commands;
	bo_cmd trig[MASS_TRIGGER];
	for (uint32_t i = 0; i < MASS_TRIGGER; i++) {
		uint32_t ts_seat = 5000 + i;
		trig[i] = tcmd_seats(BO_OP_BLOCK, 7, 2 + i, 3, &ts_seat, 1);
	}
	send_cmds(x, trig, MASS_TRIGGER, 1);
	for (gw_stats_get(t->gw, &st); st.ring_commands < ring0 + MASS_TRIGGER;
	     gw_stats_get(t->gw, &st))
		sched_yield();
	gate_set(&g_wgate, 0);
	bo_result r1, rt[MASS_TRIGGER];
	recv_results(w, &r1, 1);
	recv_results(x, rt, MASS_TRIGGER);
	cr_assert_eq(r1.status, BO_OK);
	for (uint32_t i = 0; i < MASS_TRIGGER; i++)
		cr_assert_eq(rt[i].status, BO_OK);

	/* The replies are out: the read model has every expiry (the trigger
	 * came after them), and the subscriber gets them all, in order. */
	uint64_t seq_after;
	cr_assert_eq(free_seats(s, 3, &seq_after), 6000 - 1 - MASS_TRIGGER);
	tsub_wait_caught_up(&ts, s, 1);
	atomic_store(&ts.stop, 1);
	pthread_join(th, NULL);
	cr_assert_eq(ts.gaps, 0, "%lu gaps", (unsigned long)ts.gaps);
	cr_assert_eq(ts.by_cause[BO_CAUSE_EXPIRY], MASS_HOLDS,
	             "%lu expiries reached the subscriber",
	             (unsigned long)ts.by_cause[BO_CAUSE_EXPIRY]);
	cr_assert_eq(ts.by_cause[BO_CAUSE_BLOCK], 1 + MASS_TRIGGER);
	bo_event_image srv;
	cr_assert_eq(event_state(s, 3, &srv), BO_OK);
	image_assert_equal(&ts.im[0], &srv, "subscriber vs read model");
	bo_event_image_free(&srv);
	gw_stats_get(t->gw, &st);
	cr_assert_eq(st.pub.encode_failed, 0);

	/* And the server still answers writes. */
	seat = 7;
	bo_cmd h = tcmd_hold_seats(999, 1, 3, &seat, 1, 60000);
	cr_assert_eq(call(s, &h).status, BO_OK);
	bo_event_image_free(&ts.im[0]);
	/* nng 1.5.2's nng_close of this subscriber, with thousands of
	 * projections still queued and its publisher alive, hung about once
	 * in twenty runs on a loaded machine (every server thread idle, and
	 * every later nng_close of the process hung behind it). So: empty its
	 * queue, stop the server (its publisher closes the pipe), then close. */
	nng_msg *left;
	while (nng_recvmsg(ts.sub, &left, NNG_FLAG_NONBLOCK) == 0)
		nng_msg_free(left);
	nng_close(ts.req);
	nng_close(s);
	nng_close(w);
	nng_close(x);
	bo_seatmap_free(m);
	pthread_mutex_destroy(&ts.mu);
	srv_stop(t);
	nng_close(ts.sub);
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}
