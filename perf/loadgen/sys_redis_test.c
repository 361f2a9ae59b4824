/*
 * sys_redis_test.c — the Redis + Lua baseline (sys_redis.c) against a
 * private redis-server: the scripts keep the promises a fair baseline
 * must keep, or the comparison measures a system that oversells.
 *
 * Each test starts redis-server on a unix socket in a fresh directory (no
 * TCP port, so tests run side by side), AOF on with fsync always as the
 * harness runs it, and drives lg_sys_redis directly, one request or one
 * pipeline at a time, checking every outcome. Skipped when redis-server
 * is not installed.
 *
 * What each test proves (and which line of sys_redis.c it catches):
 *   hold_is_all_or_nothing      a hold that meets one taken seat writes
 *                               nothing (HOLD's EXISTS loop before any SET)
 *   confirm_and_release_need_the_claim  another claim, a seat outside the
 *                               hold, a released or confirmed hold all
 *                               answer LG_EXPIRED; a booked seat stays taken
 *                               and the audit's three figures agree
 *   expired_hold_frees_its_seats  the TTL frees seats for reads and holds,
 *                               and the late confirm is LG_EXPIRED
 *   hold_best_picks_adjacent_seats_in_a_row  the first in-row run, never
 *                               across a row end, best rows first, every
 *                               seat of a category handed out once
 *   expired_best_holds_come_back  the sweep returns expired seats to the
 *                               free set, so best-available sells them again
 *   pipeline_answers_in_order   depth > 1: each reply goes to its request,
 *                               a confirm behind its hold in one pipeline
 *   refused_requests_and_errors duplicate seats, a category out of range and
 *                               an unknown event are LG_ERROR
 *   foreign_database_is_refused setup does not erase keys it did not write
 *                               unless told to (flush=1)
 *   lost_server_is_no_answer    a dead server is LG_NO_ANSWER, not a crash
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perf/loadgen/lg.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

#define SEATS 100u
#define PER_ROW 10u
#define WAIT_MS 5000

static char dir[256];
static char sock[320];
static char target[340];
static pid_t server;
static lg_config cfg;
static void *sys;
static void *conn;

/* The server answers PING on its socket. */
static int answers(void *ctx)
{
	redisContext *c = redisConnectUnix(ctx);
	int ok = 0;
	if (c && !c->err) {
		redisReply *r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	return ok;
}

/* redis-server's path on PATH, or NULL. */
static const char *find_redis(char *buf, size_t len)
{
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		snprintf(buf, len, "%.*s/redis-server", (int)n, path);
		if (access(buf, X_OK) == 0)
			return buf;
		path = end ? end + 1 : NULL;
	}
	return NULL;
}

static void start_server(void)
{
	char exe[512];
	if (!find_redis(exe, sizeof(exe)))
		cr_skip_test("redis-server is not installed");
	cr_assert_eq(tmpdir_make(dir, sizeof(dir), "sys-redis"), 0);
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(target, sizeof(target), "unix:%s", sock);
	char log[300];
	snprintf(log, sizeof(log), "%s/redis.log", dir);
	const char *argv[] = {exe,   "--port",        "0",      "--unixsocket",
	                      sock,  "--dir",         dir,      "--appendonly",
	                      "yes", "--appendfsync", "always", "--save",
	                      "",    "--daemonize",   "no",     NULL};
	int rc = tproc_start_ready(argv, log, WAIT_MS, answers, sock, &server, NULL);
	if (rc != 0)
		tproc_dump_tail(log, 2000);
	cr_assert_eq(rc, 0, "redis-server did not start: %d", rc);
}

static void stop_server(void)
{
	if (server > 0) {
		int status;
		tproc_signal_wait(server, SIGTERM, WAIT_MS, &status, NULL);
		server = 0;
	}
}

/* A fresh server with 2 events of 100 seats, rows of 10, 2 categories
 * (rows 0-4 and 5-9), and one connection. */
static void open_sys(const char *opts)
{
	start_server();
	cfg = (lg_config){.system = "redis",
	                  .target = target,
	                  .workload = "on-sale",
	                  .events = 2,
	                  .seats_per_event = SEATS,
	                  .per_row = PER_ROW,
	                  .categories = 2,
	                  .conns = 1,
	                  .depth = 8,
	                  .ttl_ms = 10000,
	                  .setup = 1,
	                  .opts = opts};
	char err[LG_ERR_LEN];
	cr_assert_eq(lg_sys_redis.setup(&cfg, &sys, err), 0, "setup: %s", err);
	cr_assert_eq(lg_sys_redis.conn_open(sys, 0, &conn, err), 0, "conn_open: %s", err);
}

static void fini(void)
{
	if (conn)
		lg_sys_redis.conn_close(conn);
	if (sys)
		lg_sys_redis.teardown(sys);
	conn = sys = NULL;
	stop_server();
	if (dir[0])
		tmpdir_remove(dir);
	dir[0] = '\0';
}

TestSuite(sys_redis, .fini = fini, .timeout = 60);

static lg_req req(uint8_t op, uint32_t event, uint64_t id, const uint32_t *seats, uint8_t n)
{
	lg_req q = {.op = op,
	            .n = n,
	            .event = event,
	            .ttl_ms = 10000,
	            .client = 7,
	            .request_id = id,
	            .claim = id};
	for (uint8_t i = 0; i < n && seats; i++)
		q.seat[i] = seats[i];
	return q;
}

/* Runs one request alone (depth 1) and returns its outcome. */
static uint8_t run(lg_req *q)
{
	lg_sys_redis.exec(conn, q, 1);
	return q->outcome;
}

static int64_t avail(uint32_t event)
{
	lg_req q = req(LG_READ, event, 1, NULL, 0);
	cr_assert_eq(run(&q), LG_OK);
	return q.avail_out;
}

static uint8_t hold(uint32_t event, uint64_t id, uint32_t ttl_ms, const uint32_t *seats, uint8_t n)
{
	lg_req q = req(LG_HOLD_SEATS, event, id, seats, n);
	q.ttl_ms = ttl_ms;
	uint8_t o = run(&q);
	if (o == LG_OK) {
		cr_assert_eq(q.claim_out, id);
		cr_assert_eq(q.nseats_out, n);
		cr_assert_arr_eq(q.seat_out, seats, n * sizeof(seats[0]));
	}
	return o;
}

static uint8_t settle(uint8_t op, uint32_t event, uint64_t claim, const uint32_t *seats, uint8_t n)
{
	lg_req q = req(op, event, claim, seats, n);
	return run(&q);
}

/* A best-available hold; its seats go to seats_out. */
static uint8_t best(uint32_t event, uint64_t id, uint32_t ttl_ms, uint8_t category, uint8_t n,
                    uint32_t *seats_out)
{
	lg_req q = req(LG_HOLD_BEST, event, id, NULL, n);
	q.category = category;
	q.ttl_ms = ttl_ms;
	uint8_t o = run(&q);
	if (o == LG_OK) {
		cr_assert_eq(q.nseats_out, n);
		cr_assert_eq(q.claim_out, id);
		memcpy(seats_out, q.seat_out, n * sizeof(seats_out[0]));
	}
	return o;
}

static void pause_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(sys_redis, hold_is_all_or_nothing)
{
	open_sys(NULL);
	cr_assert_eq(hold(0, 1, 10000, (uint32_t[]){1, 2}, 2), LG_OK);
	cr_assert_eq(hold(0, 2, 10000, (uint32_t[]){2, 3}, 2), LG_TAKEN);
	/* Seat 3 was not written by the refused hold. */
	cr_assert_eq(hold(0, 3, 10000, (uint32_t[]){3, 4}, 2), LG_OK);
	cr_assert_eq(avail(0), SEATS - 4);
	cr_assert_eq(avail(1), SEATS);
}

Test(sys_redis, confirm_and_release_need_the_claim)
{
	open_sys(NULL);
	uint32_t s56[] = {5, 6};
	cr_assert_eq(hold(0, 1, 10000, s56, 2), LG_OK);
	cr_assert_eq(settle(LG_CONFIRM, 0, 99, s56, 2), LG_EXPIRED);
	cr_assert_eq(settle(LG_CONFIRM, 0, 1, (uint32_t[]){5, 7}, 2), LG_EXPIRED);
	cr_assert_eq(settle(LG_RELEASE, 0, 99, s56, 2), LG_EXPIRED);
	cr_assert_eq(settle(LG_RELEASE, 0, 1, s56, 2), LG_OK);
	cr_assert_eq(avail(0), SEATS);
	cr_assert_eq(settle(LG_CONFIRM, 0, 1, s56, 2), LG_EXPIRED);
	cr_assert_eq(settle(LG_RELEASE, 0, 1, s56, 2), LG_EXPIRED);

	cr_assert_eq(hold(0, 2, 10000, s56, 2), LG_OK);
	cr_assert_eq(settle(LG_CONFIRM, 0, 2, s56, 2), LG_OK);
	cr_assert_eq(settle(LG_CONFIRM, 0, 2, s56, 2), LG_EXPIRED);
	cr_assert_eq(settle(LG_RELEASE, 0, 2, s56, 2), LG_EXPIRED);
	cr_assert_eq(hold(0, 3, 10000, (uint32_t[]){6}, 1), LG_TAKEN);
	cr_assert_eq(avail(0), SEATS - 2);
	cr_assert_eq(hold(0, 4, 10000, (uint32_t[]){8}, 1), LG_OK);

	lg_sys_redis.conn_close(conn);
	conn = NULL;
	lg_audit a = {0};
	char err[LG_ERR_LEN];
	cr_assert_eq(lg_sys_redis.audit(sys, &cfg, &a, err), 0, "audit: %s", err);
	cr_assert_eq(a.nfigs, 3);
	cr_assert_str_eq(a.figs[0].name, "redis_booked");
	cr_assert_eq(a.figs[0].value, 2);
	cr_assert_str_eq(a.figs[1].name, "redis_held");
	cr_assert_eq(a.figs[1].value, 1);
	cr_assert_str_eq(a.figs[2].name, "redis_counter_booked");
	cr_assert_eq(a.figs[2].value, 2);
}

Test(sys_redis, expired_hold_frees_its_seats)
{
	open_sys(NULL);
	uint32_t s[] = {10, 11};
	cr_assert_eq(hold(0, 1, 100, s, 2), LG_OK);
	/* Reads may still see the hold; wait for its expiry to show. */
	int64_t deadline = now_ms() + WAIT_MS;
	while (avail(0) != SEATS) {
		cr_assert_lt(now_ms(), deadline, "the hold never expired");
		pause_ms(10);
	}
	cr_assert_eq(settle(LG_CONFIRM, 0, 1, s, 2), LG_EXPIRED);
	cr_assert_eq(hold(0, 2, 10000, s, 2), LG_OK);
	cr_assert_eq(avail(0), SEATS - 2);
}

Test(sys_redis, hold_best_picks_adjacent_seats_in_a_row)
{
	open_sys(NULL);
	uint32_t got[LG_SEATS_MAX];
	cr_assert_eq(hold(0, 1, 10000, (uint32_t[]){1}, 1), LG_OK);
	cr_assert_eq(best(0, 2, 10000, 0, 3, got), LG_OK);
	cr_assert_arr_eq(got, ((uint32_t[]){2, 3, 4}), 3 * sizeof(uint32_t));
	cr_assert_eq(best(0, 3, 10000, 1, 2, got), LG_OK);
	cr_assert_arr_eq(got, ((uint32_t[]){50, 51}), 2 * sizeof(uint32_t));

	/* Event 1: free seats 8, 9 | 10, 11, 13, 14, ...: a run of 4 must not
	 * span the end of row 0. */
	cr_assert_eq(hold(1, 4, 10000, (uint32_t[]){0, 1, 2, 3, 4, 5, 6, 7}, 8), LG_OK);
	cr_assert_eq(hold(1, 5, 10000, (uint32_t[]){12}, 1), LG_OK);
	cr_assert_eq(best(1, 6, 10000, 0, 4, got), LG_OK);
	cr_assert_arr_eq(got, ((uint32_t[]){13, 14, 15, 16}), 4 * sizeof(uint32_t));

	/* Category 0 of event 0 (seats 0-49) has 46 free seats left: five
	 * holds of 8, then one of 6 take them all, each seat once. */
	int seen[SEATS] = {0};
	seen[1] = seen[2] = seen[3] = seen[4] = 1;
	for (uint64_t id = 10; id < 15; id++) {
		cr_assert_eq(best(0, id, 10000, 0, 8, got), LG_OK);
		for (unsigned i = 0; i < 8; i++) {
			cr_assert_lt(got[i], 50u);
			cr_assert_eq(seen[got[i]]++, 0, "seat %u handed out twice", got[i]);
		}
	}
	cr_assert_eq(best(0, 15, 10000, 0, 8, got), LG_TAKEN);
	cr_assert_eq(best(0, 16, 10000, 0, 6, got), LG_OK);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(seen[got[i]]++, 0, "seat %u handed out twice", got[i]);
	cr_assert_eq(best(0, 17, 10000, 0, 1, got), LG_TAKEN);
	cr_assert_eq(avail(0), SEATS - 50 - 2);
}

Test(sys_redis, expired_best_holds_come_back)
{
	open_sys(NULL);
	uint32_t got[LG_SEATS_MAX];
	uint64_t id = 1;
	/* Category 1 (seats 50-99) held in short holds until sold out: ten
	 * holds at least (more if some expired meanwhile on a slow machine). */
	while (best(0, id++, 500, 1, 5, got) == LG_OK)
		;
	cr_assert_geq(id, 12, "50 seats in holds of 5");
	int64_t deadline = now_ms() + WAIT_MS;
	while (best(0, id++, 10000, 1, 5, got) != LG_OK) {
		cr_assert_lt(now_ms(), deadline, "expired seats never came back");
		pause_ms(10);
	}
	cr_assert_geq(got[0], 50u);
}

Test(sys_redis, pipeline_answers_in_order)
{
	open_sys(NULL);
	lg_req q[4] = {
	        req(LG_HOLD_SEATS, 0, 1, (uint32_t[]){20, 21}, 2),
	        req(LG_HOLD_SEATS, 0, 2, (uint32_t[]){21, 22}, 2),
	        req(LG_READ, 1, 3, NULL, 0),
	        req(LG_CONFIRM, 0, 1, (uint32_t[]){20, 21}, 2),
	};
	lg_sys_redis.exec(conn, q, 4);
	cr_assert_eq(q[0].outcome, LG_OK);
	cr_assert_eq(q[1].outcome, LG_TAKEN);
	cr_assert_eq(q[2].outcome, LG_OK);
	cr_assert_eq(q[2].avail_out, SEATS);
	cr_assert_eq(q[3].outcome, LG_OK);
	cr_assert_eq(avail(0), SEATS - 2);
}

Test(sys_redis, refused_requests_and_errors)
{
	open_sys(NULL);
	lg_req q[3] = {
	        req(LG_HOLD_SEATS, 0, 1, (uint32_t[]){30, 30}, 2),
	        req(LG_HOLD_BEST, 0, 2, NULL, 2),
	        req(LG_READ, 5, 3, NULL, 0),
	};
	q[1].category = 2;
	lg_sys_redis.exec(conn, q, 3);
	cr_assert_eq(q[0].outcome, LG_ERROR, "duplicate seats");
	cr_assert_eq(q[1].outcome, LG_ERROR, "category out of range");
	cr_assert_eq(q[2].outcome, LG_ERROR, "an event never created");
	cr_assert_eq(avail(0), SEATS);
}

Test(sys_redis, foreign_database_is_refused)
{
	start_server();
	redisContext *c = redisConnectUnix(sock);
	cr_assert(c && !c->err);
	redisReply *r = redisCommand(c, "SET someone-elses 1");
	cr_assert(r && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	cfg = (lg_config){.system = "redis",
	                  .target = target,
	                  .workload = "on-sale",
	                  .events = 1,
	                  .seats_per_event = SEATS,
	                  .per_row = PER_ROW,
	                  .categories = 1,
	                  .conns = 1,
	                  .depth = 1,
	                  .ttl_ms = 10000,
	                  .setup = 1};
	char err[LG_ERR_LEN];
	cr_assert_eq(lg_sys_redis.setup(&cfg, &sys, err), -EEXIST);
	cr_assert(strstr(err, "flush=1"), "%s", err);
	r = redisCommand(c, "EXISTS someone-elses");
	cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
	freeReplyObject(r);
	cfg.opts = "flush=1";
	cr_assert_eq(lg_sys_redis.setup(&cfg, &sys, err), 0, "%s", err);
	r = redisCommand(c, "EXISTS someone-elses");
	cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
	freeReplyObject(r);
	redisFree(c);
}

Test(sys_redis, lost_server_is_no_answer)
{
	open_sys("timeout_ms=2000");
	cr_assert_eq(avail(0), SEATS);
	stop_server();
	lg_req q[2] = {req(LG_READ, 0, 1, NULL, 0), req(LG_HOLD_SEATS, 0, 2, (uint32_t[]){1}, 1)};
	lg_sys_redis.exec(conn, q, 2);
	cr_assert_eq(q[0].outcome, LG_NO_ANSWER);
	cr_assert_eq(q[1].outcome, LG_NO_ANSWER);
	/* Still unreachable on the next call (a reconnect that fails). */
	lg_sys_redis.exec(conn, q, 1);
	cr_assert_eq(q[0].outcome, LG_NO_ANSWER);
}
