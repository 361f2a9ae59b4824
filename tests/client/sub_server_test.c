/*
 * sub_server_test.c — the subscriber and `boxoffice-cli watch` against a
 * real boxoffice-server process publishing on ipc (--publish):
 *
 *  1. a subscriber follows a random run of holds (seats, best, pool),
 *     releases, confirms, cancels, blocks and unblocks on its event, made
 *     through the client library, interleaved with commands on another
 *     event it does not watch: every change it delivers follows the one
 *     before (no gap is ever shown), it never names the other event, and
 *     at the end its image equals the one a second subscriber joining then
 *     gets from the server, and its counts equal the server's query_avail;
 *     when nothing was lost, it delivered exactly one change per applied
 *     command;
 *  2. `boxoffice-cli watch --json --count 3`, as a process, prints the
 *     event's image and then the changes that the test keeps making (a hold
 *     and its release, repeated until the CLI has seen three), in sequence.
 *
 * The server is started on a free TCP port in a scratch directory (see
 * tests/support/server.h) and must stop cleanly (SIGTERM: exit 0, a log
 * without errors or sanitizer reports).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "client/boxoffice.h"
#include "tests/support/fakepub.h"
#include "tests/support/json_check.h"
#include "tests/support/proc.h"
#include "tests/support/server.h"

#define WAIT_MS 20000
#define EV 1
#define OTHER 2

static tsrv g_srv;
static char g_pub[PATH_MAX + 32];
static boc_client *g_c;

/* ---- The server ------------------------------------------------------------- */

/* 1 once the run's log says its TCP listener is up. Dialling before that
 * leaves nng 1.5.2 reconnecting in the background, and its objects may
 * outlive boc_close at exit (LeakSanitizer saw them); a raw connect probe
 * is no way round it (nng #1518: README). */
static int srv_listening(void)
{
	FILE *f = fopen(g_srv.log_path, "r");
	if (!f)
		return 0;
	char line[1024], want[128];
	snprintf(want, sizeof(want), "msg=\"listening\" url=%s", g_srv.tcp_url);
	int up = 0;
	while (!up && fgets(line, sizeof(line), f))
		up = strstr(line, want) != NULL;
	fclose(f);
	return up;
}

static int srv_ready(void *ctx)
{
	(void)ctx;
	if (!srv_listening())
		return 0;
	boc_options o;
	boc_options_default(&o);
	o.linger_zero = 1;
	o.timeout_ms = 500;
	boc_client *c;
	if (boc_open(g_srv.tcp_url, &o, &c) != 0)
		return 0;
	bo_cmd cmd;
	boc_query_avail(&cmd, EV);
	bo_result r;
	int rc = boc_call(c, &cmd, &r, NULL, 0);
	boc_close(c);
	return rc == 0;
}

static void setup(void)
{
	const char *bin = getenv("BOXOFFICE_SERVER");
	cr_assert(bin && *bin, "BOXOFFICE_SERVER is not set: run this test through meson");
	cr_assert_eq(tsrv_init(&g_srv, "bo-sub-server", 0), 0);
	snprintf(g_pub, sizeof(g_pub), "ipc://%s/pub.ipc", g_srv.dir);
	cr_assert_eq(tsrv_add_arg(&g_srv, "--no-pg"), 0);
	cr_assert_eq(tsrv_add_arg(&g_srv, "--publish"), 0);
	cr_assert_eq(tsrv_add_arg(&g_srv, g_pub), 0);
	int rc = tsrv_start(&g_srv, bin, WAIT_MS, srv_ready, NULL);
	if (rc != 0) {
		tproc_dump_tail(g_srv.log_path, 4096);
		tsrv_cleanup(&g_srv, "SUB_SERVER_TEST_KEEP");
		cr_assert_fail("the server did not become ready (%d)", rc);
	}
	boc_options o;
	boc_options_default(&o);
	o.linger_zero = 1;
	cr_assert_eq(boc_open(g_srv.tcp_url, &o, &g_c), 0);
}

static void teardown(void)
{
	boc_close(g_c);
	tsrv_cleanup(&g_srv, "SUB_SERVER_TEST_KEEP");
}

/* SIGTERM: exit 0 within 10 s and a clean log. */
static void stop_clean(void)
{
	int st = 0;
	int rc = tsrv_signal_wait(&g_srv, SIGTERM, 10000, &st, NULL);
	if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tproc_dump_tail(g_srv.log_path, 4096);
	cr_assert_eq(rc, 0, "the server did not stop within 10 s");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	const char *bad = tsrv_log_problem(g_srv.log_path);
	cr_assert_null(bad, "server log: %s", bad);
}

TestSuite(sub_server, .init = setup, .fini = teardown, .timeout = 180);

/* Sends cmd; returns the server's answer (asserting there was one). */
static bo_result call(bo_cmd *cmd)
{
	bo_result r;
	char text[BOC_TEXT_LEN_MAX];
	int rc = boc_call(g_c, cmd, &r, text, sizeof(text));
	cr_assert_eq(rc, 0, "no answer: %s (%s)", boc_strerror(rc), text);
	return r;
}

/* Event id: rows x 30 seats in 3 categories and a pool of 500. */
static void create(uint64_t id, uint32_t rows)
{
	bo_seatmap *m = bo_seatmap_new(rows, rows * 30, 1);
	cr_assert_not_null(m);
	m->category_count = 3;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].section = 1;
		m->rows[r].seats = 30;
		memset(m->categories + r * 30, (int)(r * 3 / rows), 30);
	}
	m->pool_capacity[0] = 500;
	bo_cmd cmd;
	boc_create_event(&cmd, 0, 0, id, m);
	bo_result r = call(&cmd);
	bo_seatmap_free(m);
	cr_assert_eq(r.status, BO_OK, "create_event: %s", boc_status_name(r.status));
}

/* ---- 1. A random run ---------------------------------------------------------- */

typedef struct follow {
	boc_sub *sub;
	uint64_t chain; /* the seq the next message must start from */
	uint32_t breaks, other_event, changes;
} follow;

static void f_change(void *ctx, const boc_sub_msg *m, const bo_change *c, const bo_event_image *im)
{
	follow *f = ctx;
	(void)c;
	(void)im;
	if (m->event_id != EV)
		f->other_event++;
	if (m->change_index == 0 && m->prev_seq != f->chain)
		f->breaks++;
	if (m->change_index + 1 == m->change_count)
		f->chain = m->seq;
	f->changes++;
}

static void f_resync(void *ctx, uint64_t event_id, const bo_event_image *im, int reason)
{
	follow *f = ctx;
	(void)reason;
	if (event_id != EV)
		f->other_event++;
	f->chain = im->seq;
}

static boc_sub *open_sub(follow *f)
{
	boc_sub_options o;
	boc_sub_options_default(&o);
	o.pub_url = g_pub;
	o.req_url = g_srv.tcp_url;
	o.on_change = f ? f_change : NULL;
	o.on_resync = f ? f_resync : NULL;
	o.ctx = f;
	boc_sub *s;
	char err[256];
	cr_assert_eq(boc_sub_open(&o, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(boc_sub_wait_connected(s, WAIT_MS), 0);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	cr_assert_not_null(boc_sub_image(s, EV), "no image of event %d", EV);
	return s;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One random command on event ev; returns 1 when the server applied a
 * change of availability (everything but a refusal). */
static int random_command(uint64_t ev, uint64_t *seed, uint64_t *holds, uint32_t *nholds,
                          uint64_t *books, uint32_t *nbooks)
{
	bo_cmd cmd;
	uint32_t seats[4];
	uint32_t n = 1 + (uint32_t)(rnd(seed) % 4), first = (uint32_t)(rnd(seed) % (600 - n));
	for (uint32_t i = 0; i < n; i++)
		seats[i] = first + i;
	uint32_t kind = (uint32_t)(rnd(seed) % 8);
	if (kind == 0)
		boc_hold_seats(&cmd, 0, 0, ev, seats, n, 600000);
	else if (kind == 1)
		boc_hold_best(&cmd, 0, 0, ev, (uint8_t)(rnd(seed) % 3), (uint16_t)n, 600000);
	else if (kind == 2)
		boc_hold_pool(&cmd, 0, 0, ev, 0, (uint16_t)n, 600000);
	else if (kind == 3 && *nholds > 0)
		boc_release(&cmd, 0, 0, ev, holds[--*nholds]);
	else if (kind == 4 && *nholds > 0)
		boc_confirm(&cmd, 0, 0, ev, holds[--*nholds], "psp");
	else if (kind == 5 && *nbooks > 0)
		boc_cancel(&cmd, 0, 0, ev, books[--*nbooks]);
	else if (kind == 6)
		boc_block(&cmd, 0, 0, ev, seats, n);
	else
		boc_unblock(&cmd, 0, 0, ev, seats, n);
	bo_result r = call(&cmd);
	if (r.status != BO_OK)
		return 0;
	if (cmd.op == BO_OP_HOLD_SEATS || cmd.op == BO_OP_HOLD_BEST || cmd.op == BO_OP_HOLD_POOL)
		holds[(*nholds)++] = r.claim_id;
	if (cmd.op == BO_OP_CONFIRM)
		books[(*nbooks)++] = r.claim_id;
	return 1;
}

Test(sub_server, subscriber_follows_a_random_run)
{
	create(EV, 20);
	create(OTHER, 5);
	follow f = {0};
	f.sub = open_sub(&f);
	static uint64_t holds[1000], books[1000], oholds[1000], obooks[1000];
	uint32_t nholds = 0, nbooks = 0, noholds = 0, nobooks = 0, applied = 0;
	uint64_t seed = 0x5eed;
	for (int i = 0; i < 600; i++) {
		applied += (uint32_t)random_command(EV, &seed, holds, &nholds, books, &nbooks);
		if (i % 3 == 0)
			random_command(OTHER, &seed, oholds, &noholds, obooks, &nobooks);
		/* Reading as we go: the server keeps 16 messages per subscriber. */
		cr_assert_geq(boc_sub_poll(f.sub, 0), 0);
	}
	/* The oracle: a subscriber joining now gets the server's image. */
	boc_sub *oracle = open_sub(NULL);
	const bo_event_image *truth = boc_sub_image(oracle, EV);
	int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (boc_sub_image(f.sub, EV)->seq < truth->seq) {
		cr_assert_lt(bo_clock_ms(), deadline, "stuck at seq %" PRIu64 " of %" PRIu64,
		             boc_sub_image(f.sub, EV)->seq, truth->seq);
		cr_assert_geq(boc_sub_poll(f.sub, 100), 0);
	}
	const bo_event_image *im = boc_sub_image(f.sub, EV);
	cr_assert(fakepub_image_equal(im, truth),
	          "the image at seq %" PRIu64 " differs from the "
	          "server's",
	          im->seq);
	cr_assert_eq(f.breaks, 0, "a delivered message did not follow the one before");
	cr_assert_eq(f.other_event, 0, "a callback named an event not watched");
	bo_cmd q;
	boc_query_avail(&q, EV);
	bo_result r = call(&q);
	uint32_t by_state[BO_SEAT_STATE_COUNT] = {0};
	for (uint32_t i = 0; i < im->seat_count; i++)
		by_state[im->states[i]]++;
	for (int st = 0; st < BO_SEAT_STATE_COUNT; st++)
		cr_assert_eq(by_state[st], r.avail.by_state[st], "seats %s",
		             boc_seat_state_name(st));
	cr_assert_eq(im->pool_free[0], r.avail.pool_free[0]);
	boc_sub_stats st;
	boc_sub_stats_get(f.sub, &st);
	cr_log_info("random run: %u applied, %" PRIu64 " messages, %" PRIu64 " gaps, %" PRIu64
	            " resyncs",
	            applied, st.messages, st.gaps, st.resyncs);
	cr_assert_gt(applied, 100);
	if (st.gaps == 0 && st.resyncs == 1)
		cr_assert_eq(f.changes, applied, "one change per applied command");
	cr_assert_eq(st.malformed, 0);
	boc_sub_close(oracle);
	boc_sub_close(f.sub);
	stop_clean();
}

/* ---- 2. The CLI ----------------------------------------------------------------- */

typedef struct cli_run {
	tproc_result r;
	atomic_bool done;
} cli_run;

static void *run_cli(void *arg)
{
	cli_run *c = arg;
	const char *argv[] = {
	        getenv("BOXOFFICE_CLI"), "watch",   "1", "--json",       "--pub", g_pub, "--url",
	        g_srv.tcp_url,           "--count", "3", "--timeout-ms", "20000", NULL};
	int rc = tproc_run(argv, "BOXOFFICE_URL", 30000, &c->r);
	if (rc != 0)
		c->r.code = -1;
	atomic_store(&c->done, true);
	return NULL;
}

Test(sub_server, cli_watch_prints_the_servers_changes)
{
	cr_assert(getenv("BOXOFFICE_CLI") != NULL, "BOXOFFICE_CLI is not set");
	create(EV, 4);
	static cli_run c;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, run_cli, &c), 0);
	/* Changes until the CLI has seen three (those before it joined are in
	 * its image). */
	uint32_t seat = 7;
	int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (!atomic_load(&c.done) && bo_clock_ms() < deadline) {
		bo_cmd cmd;
		boc_hold_seats(&cmd, 0, 0, EV, &seat, 1, 600000);
		bo_result r = call(&cmd);
		cr_assert_eq(r.status, BO_OK);
		boc_release(&cmd, 0, 0, EV, r.claim_id);
		cr_assert_eq(call(&cmd).status, BO_OK);
	}
	pthread_join(t, NULL);
	cr_assert_eq(c.r.code, 0, "exit %d; stdout:\n%s\nstderr:\n%s", c.r.code, c.r.out, c.r.err);
	cr_assert_null(tproc_sanitizer_report(c.r.err), "%s", c.r.err);
	char *lines[16];
	int n = 0;
	for (char *p = c.r.out, *nl; *p && n < 16; p = nl + 1) {
		lines[n++] = p;
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
	}
	cr_assert_geq(n, 4, "%s", c.r.out);
	int changes = 0;
	uint64_t last = 0; /* the seq the next change must start from */
	for (int i = 0; i < n; i++) {
		cr_assert(tjson_valid(lines[i], strlen(lines[i])), "not JSON: %s", lines[i]);
		const char *type = NULL;
		tjson_value(lines[i], "type", &type);
		cr_assert_not_null(type);
		if (i == 0)
			cr_assert(strncmp(type, "\"image\"", 7) == 0, "%s", lines[i]);
		const char *seq = NULL, *prev = NULL;
		tjson_value(lines[i], "seq", &seq);
		cr_assert_not_null(seq, "%s", lines[i]);
		if (strncmp(type, "\"change\"", 8) != 0) {
			last = strtoull(seq, NULL, 10); /* an image: the chain starts again */
			continue;
		}
		tjson_value(lines[i], "prev", &prev);
		cr_assert_not_null(prev, "%s", lines[i]);
		cr_assert_eq(strtoull(prev, NULL, 10), last, "not in sequence: %s", lines[i]);
		last = strtoull(seq, NULL, 10);
		changes++;
		const char *cause = NULL;
		tjson_value(lines[i], "cause", &cause);
		cr_assert(strncmp(cause, "\"hold\"", 6) == 0 ||
		                  strncmp(cause, "\"release\"", 9) == 0,
		          "%s", lines[i]);
	}
	cr_assert_eq(changes, 3, "%s", c.r.out);
	tproc_result_free(&c.r);
	stop_clean();
}
