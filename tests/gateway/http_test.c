/*
 * http_test.c — the HTTP front in-process, where a test needs the inside of
 * the server (a journal fault hook, a held sync, a token, a bucket):
 *
 *  1. /healthz is 200 while every shard writes its journal and turns 503,
 *     naming the shard and the failure, when a journal write fails (an
 *     injected -EIO), and the hold whose write failed is answered 503
 *     busy at once; /readyz is 200 once started.
 *  2. Answers leave after durability: with the journal's sync held, a
 *     POSTed hold is not answered; released, it is (200).
 *  3. A hold touched by another client is refused (404 no_hold) and an
 *     operator's release of it is taken.
 *  4. A hot event over its bucket is answered 429 with Retry-After and
 *     retry_after_ms, while another event on the same shard is never
 *     throttled.
 *  5. With a token: no bearer or a wrong one is 401 and applies nothing;
 *     the right one works; the probes stay open.
 * The API's behaviour against the msgpack protocol, hostile clients and
 * /metrics with promtool are in tests/http/http_api_test.py (real binary,
 * standard clients).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sched.h>
#include <pthread.h>

#include "gateway/gateway.h"
#include "journal/journal.h"
#include "shard/shard.h"
#include "tests/support/gate.h"
#include "tests/support/httpc.h"
#include "tests/support/gwtest.h"
#include "tests/support/tmpdir.h"


/* The server, and its HTTP front's port. */
static tgw g_srv;
static int g_port;

static gate g_gate = GATE_INIT(JOURNAL_IO_SYNC);
static atomic_int g_fail_writes;

static int fail_hook(void *ctx, journal_io *io)
{
	(void)ctx;
	if (atomic_load(&g_fail_writes) && io->kind == JOURNAL_IO_WRITE)
		return -EIO;
	return 0;
}

static void suite_init(void) { signal(SIGPIPE, SIG_IGN); }

static void suite_fini(void)
{
	gate_set(&g_gate, 0);
	tgw_cleanup(&g_srv);
}

TestSuite(http, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* Starts an in-process server with HTTP on a free port; tweak adjusts the
 * configuration first. */
static void srv_start(tgw *t, journal_fault_fn hook, void *hook_ctx, void (*tweak)(gw_config *))
{
	tgw_config(t, "bo-http-test");
	t->cfg.http = "127.0.0.1:0";
	t->cfg.shard.journal.fault = hook;
	t->cfg.shard.journal.fault_ctx = hook_ctx;
	if (tweak)
		tweak(&t->cfg);
	tgw_start(t);
	g_port = gw_http_port(t->gw);
	cr_assert_gt(g_port, 0);
}

static httpc_resp g_r; /* large: off the stack */

static const httpc_resp *post(const char *headers, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const httpc_resp *post(const char *headers, const char *fmt, ...)
{
	char body[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	int rc = httpc_do(g_port, "POST", "/v1/command", headers, body, &g_r);
	cr_assert_eq(rc, 0, "POST: %s", strerror(-rc));
	cr_assert_gt(g_r.status, 0, "no HTTP response to %s", body);
	return &g_r;
}

static const httpc_resp *get(const char *path)
{
	int rc = httpc_do(g_port, "GET", path, "", NULL, &g_r);
	cr_assert_eq(rc, 0, "GET %s: %s", path, strerror(-rc));
	return &g_r;
}

static const char MAP[] = "{\"categories\":1,\"rows\":[{\"section\":0,\"seats\":20,\"category\":0}],\"pools\":[100]}";

static void create(uint64_t event)
{
	const httpc_resp *r = post("",
				   "{\"op\":\"create_event\",\"event\":%" PRIu64 ",\"client\":1,\"request\":%" PRIu64
				   ",\"map\":%s}",
				   event, event, MAP);
	cr_assert_eq(r->status, 200, "create_event %" PRIu64 ": %d %s", event, r->status, r->body);
}

/* The hold id in a reply body ("hold":N). */
static uint64_t hold_of(const httpc_resp *r)
{
	const char *p = strstr(r->body, "\"hold\":");
	cr_assert_not_null(p, "no hold in %s", r->body);
	return strtoull(p + 7, NULL, 10);
}

/* ---- 1. probes ---------------------------------------------------------- */

typedef struct async_post {
	const tgw *t;
	char body[512];
	httpc_resp r;
	atomic_int done;
} async_post;

static void *post_main(void *arg)
{
	async_post *a = arg;
	httpc_do(g_port, "POST", "/v1/command", "", a->body, &a->r);
	atomic_store(&a->done, 1);
	return NULL;
}


Test(http, healthz_turns_503_on_journal_failure)
{
	tgw *t = &g_srv;
	atomic_store(&g_fail_writes, 0);
	srv_start(t, fail_hook, NULL, NULL);
	cr_assert_eq(get("/healthz")->status, 200, "%s", g_r.body);
	cr_assert_str_eq(g_r.body, "ok\n");
	cr_assert_eq(get("/readyz")->status, 200, "%s", g_r.body);
	create(5);
	atomic_store(&g_fail_writes, 1);
	/* The hold's journal write fails: its shard stops, and answers the
	 * request busy at once (shard.h): not applied, to be resent. */
	static async_post a;
	memset(&a, 0, sizeof(a));
	a.t = t;
	snprintf(a.body, sizeof(a.body),
		 "{\"op\":\"hold_seats\",\"event\":5,\"client\":2,\"request\":1,\"seats\":[1],\"ttl_ms\":60000}");
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, post_main, &a), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const httpc_resp *r;
	while ((r = get("/healthz"))->status == 200) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		cr_assert_lt(t1.tv_sec - t0.tv_sec, TGW_WAIT_MS / 1000, "healthz stayed 200 after a journal failure");
		sched_yield();
	}
	cr_assert_eq(r->status, 503, "healthz after a journal failure: %d %s", r->status, r->body);
	cr_assert_not_null(strstr(r->body, "shard"), "the reason names the shard: %s", r->body);
	cr_assert_not_null(strstr(r->body, "Input/output error"), "the reason says what failed: %s", r->body);
	atomic_store(&g_fail_writes, 0);
	/* A failed shard stays failed (its journal is in an unknown state). */
	cr_assert_eq(get("/healthz")->status, 503);
	/* Answered while the server still runs (the test's timeout bounds
	 * the join: it fails if the answer never comes). */
	pthread_join(th, NULL);
	cr_assert_eq(a.r.status, 503, "the hold whose journal failed: %d %s", a.r.status, a.r.body);
	cr_assert_not_null(strstr(a.r.body, "\"busy\""), "%s", a.r.body);
	cr_assert_eq(get("/healthz")->status, 503, "the server stopped answering");
	gw_stop(t->gw, 1000);
	gw_free(t->gw);
	t->gw = NULL;
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

/* ---- 2. durability ------------------------------------------------------- */

Test(http, answered_only_after_the_sync)
{
	tgw *t = &g_srv;
	srv_start(t, gate_hook, &g_gate, NULL);
	create(7);
	gate_set(&g_gate, 1);
	static async_post a;
	memset(&a, 0, sizeof(a));
	a.t = t;
	snprintf(a.body, sizeof(a.body),
		 "{\"op\":\"hold_seats\",\"event\":7,\"client\":3,\"request\":1,\"seats\":[4],\"ttl_ms\":60000}");
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, post_main, &a), 0);
	gate_wait_entered(&g_gate, TGW_WAIT_MS);
	/* The sync is held: the seat reads free and no answer has come. */
	cr_assert_eq(get("/v1/events/7/seats?seats=4")->status, 200);
	cr_assert_not_null(strstr(g_r.body, "\"free\""), "%s", g_r.body);
	cr_assert_eq(atomic_load(&a.done), 0, "answered before its journal sync: %s", a.r.body);
	gate_set(&g_gate, 0);
	pthread_join(th, NULL);
	cr_assert_eq(a.r.status, 200, "%d %s", a.r.status, a.r.body);
	cr_assert_eq(get("/v1/events/7/seats?seats=4")->status, 200);
	cr_assert_not_null(strstr(g_r.body, "\"held\""), "read-your-writes: %s", g_r.body);
	tgw_stop(t);
}

/* ---- 3. ownership -------------------------------------------------------- */

Test(http, another_clients_hold_is_refused)
{
	tgw *t = &g_srv;
	srv_start(t, NULL, NULL, NULL);
	create(9);
	const httpc_resp *r = post("",
				   "{\"op\":\"hold_seats\",\"event\":9,\"client\":7,\"request\":1,\"seats\":[2,3],"
				   "\"ttl_ms\":60000}");
	cr_assert_eq(r->status, 200, "%s", r->body);
	uint64_t hold = hold_of(r);
	static const char *ops[] = {"release", "extend", "confirm"};
	for (int i = 0; i < 3; i++) {
		r = post("",
			 "{\"op\":\"%s\",\"event\":9,\"client\":8,\"request\":%d,\"hold\":%" PRIu64 "%s}", ops[i],
			 10 + i, hold,
			 i == 1	  ? ",\"ttl_ms\":60000"
			 : i == 2 ? ",\"payref\":\"p\""
				  : "");
		cr_assert_eq(r->status, 404, "%s by another client: %d %s", ops[i], r->status, r->body);
		cr_assert_not_null(strstr(r->body, "\"no_hold\""), "%s", r->body);
	}
	r = get("/v1/events/9/seats?seats=2,3");
	cr_assert_not_null(strstr(r->body, "[\"held\",\"held\"]"), "still held: %s", r->body);
	r = post("",
		 "{\"op\":\"release\",\"event\":9,\"client\":99,\"request\":1,\"hold\":%" PRIu64
		 ",\"operator\":true}",
		 hold);
	cr_assert_eq(r->status, 200, "an operator's release: %d %s", r->status, r->body);
	r = get("/v1/events/9/seats?seats=2,3");
	cr_assert_not_null(strstr(r->body, "[\"free\",\"free\"]"), "released: %s", r->body);
	tgw_stop(t);
}

/* ---- 4. throttling ------------------------------------------------------- */

static void tweak_throttle(gw_config *c)
{
	c->throttle_rate = 5;
	c->throttle_burst = 5;
}

Test(http, a_hot_event_is_throttled_and_another_is_not)
{
	tgw *t = &g_srv;
	srv_start(t, NULL, NULL, tweak_throttle);
	/* Two events of the same shard. */
	uint64_t hot = 0, cold = 0;
	for (uint64_t id = 100; !cold; id++)
		if (shard_for_event(id, 2) == 0) {
			if (!hot)
				hot = id;
			else
				cold = id;
		}
	create(hot);
	create(cold);
	int throttled = 0;
	for (int i = 0; i < 40; i++) {
		const httpc_resp *r =
			post("",
			     "{\"op\":\"hold_pool\",\"event\":%" PRIu64 ",\"client\":%d,\"request\":1,\"pool\":0,"
			     "\"quantity\":1,\"ttl_ms\":60000}",
			     hot, 1000 + i);
		if (r->status == 429) {
			char ra[32];
			cr_assert_not_null(httpc_header(r, "Retry-After", ra, sizeof(ra)), "429 without Retry-After");
			cr_assert_geq(atoi(ra), 1);
			cr_assert_not_null(strstr(r->body, "\"retry_after_ms\":"), "%s", r->body);
			cr_assert_not_null(strstr(r->body, "\"throttled\""), "%s", r->body);
			throttled++;
		} else {
			cr_assert_eq(r->status, 200, "%d %s", r->status, r->body);
		}
		if (i % 16 == 0) { /* 3, and its create: within its bucket of 5 */
			r = post("",
				 "{\"op\":\"hold_pool\",\"event\":%" PRIu64 ",\"client\":%d,\"request\":1,\"pool\":0,"
				 "\"quantity\":1,\"ttl_ms\":60000}",
				 cold, 5000 + i);
			cr_assert_eq(r->status, 200, "the cold event: %d %s", r->status, r->body);
		}
	}
	cr_assert_gt(throttled, 0, "40 quick holds against a bucket of 5 were never throttled");
	/* /metrics counts them under the hot event, and only there. */
	char line[128];
	snprintf(line, sizeof(line), "boxoffice_event_throttled_total{event=\"%" PRIu64 "\"} %d\n", hot, throttled);
	cr_assert_eq(get("/metrics")->status, 200);
	cr_assert_not_null(strstr(g_r.body, line), "no '%s' in /metrics", line);
	snprintf(line, sizeof(line), "boxoffice_event_throttled_total{event=\"%" PRIu64 "\"}", cold);
	cr_assert_null(strstr(g_r.body, line), "the cold event counted as throttled");
	tgw_stop(t);
}

/* ---- 5. token ------------------------------------------------------------- */

static void tweak_token(gw_config *c)
{
	c->auth_token = "s3cret-token";
	c->auth_token_len = strlen(c->auth_token);
}

Test(http, a_token_server_refuses_requests_without_it)
{
	tgw *t = &g_srv;
	srv_start(t, NULL, NULL, tweak_token);
	static const char *bad[] = {"", "Authorization: Bearer wrong-token!\r\n",
				    "Authorization: Basic czNjcmV0LXRva2Vu\r\n",
				    "Authorization: Bearer s3cret-toke\r\n"};
	for (int i = 0; i < 4; i++) {
		const httpc_resp *r = post(bad[i],
					   "{\"op\":\"create_event\",\"event\":11,\"client\":1,\"request\":1,\"map\":%s}",
					   MAP);
		cr_assert_eq(r->status, 401, "header '%s': %d %s", bad[i], r->status, r->body);
		cr_assert_eq(httpc_do(g_port, "GET", "/v1/events/11/availability", bad[i], NULL, &g_r), 0);
		cr_assert_eq(g_r.status, 401, "a read with header '%s': %d", bad[i], g_r.status);
	}
	const char *good = "Authorization: Bearer s3cret-token\r\n";
	cr_assert_eq(httpc_do(g_port, "GET", "/v1/events/11/availability", good, NULL, &g_r), 0);
	cr_assert_eq(g_r.status, 404, "nothing was created: %d %s", g_r.status, g_r.body);
	const httpc_resp *r = post(good,
				   "{\"op\":\"create_event\",\"event\":11,\"client\":1,\"request\":1,\"map\":%s}", MAP);
	cr_assert_eq(r->status, 200, "%d %s", r->status, r->body);
	cr_assert_eq(get("/healthz")->status, 200, "probes need no token");
	tgw_stop(t);
}
