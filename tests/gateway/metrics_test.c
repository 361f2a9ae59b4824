/*
 * metrics_test.c — /metrics, /healthz and /readyz of an in-process gateway
 * (gateway/metrics.h):
 *
 *  1. After known traffic over nng, the page's figures moved by exactly
 *     what was sent: results by op and status, the request histogram's
 *     count (one per message, a batch message is one), commands per shard,
 *     the balance (all the load on one of two shards: 2), a batch-size
 *     histogram per shard whose count equals the shard's batches, the
 *     journal sync histogram and durable sequence, and a read model caught
 *     up with the disk once the replies are in. Every histogram's buckets
 *     are cumulative and end at _count. Then `promtool check metrics`
 *     (Debian's prometheus package: a real Prometheus text parser and
 *     linter) accepts the page; without promtool the test is skipped,
 *     loudly.
 *  3. With a database (a private PostgreSQL, tests/support/pg.h; skipped
 *     without one): each shard's committer shows as running (one-hot),
 *     and once it has applied everything durable its applied sequence is
 *     the journal's durable sequence and its lag is zero.
 *  2. gw_health/gw_ready: healthy and ready after start; a journal whose
 *     I/O fails (a fault hook, armed after start) turns both to -1 with
 *     the shard and the journal's reason, and the page says so; after
 *     gw_stop, not ready (draining) and not healthy (writer stopped).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/clock.h"
#include "base/seatmap.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "protocol/wire.h"
#include "tests/support/cmd.h"
#include "tests/support/pg.h"
#include "tests/support/gwtest.h"



static tgw g_srv;

/* The fault hook of test 2: every journal I/O fails with EIO once armed. */
static atomic_int g_fail_io;

static int fail_hook(void *ctx, journal_io *io)
{
	(void)ctx;
	(void)io;
	return atomic_load(&g_fail_io) ? -EIO : 0;
}

static void suite_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void) { tgw_cleanup(&g_srv); }

TestSuite(metrics, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* `publish`: projections on ipc:// in the directory too; `dsn`: NULL or
 * the committers' database. */
static void srv_start_db(tgw *t, uint32_t shards, journal_fault_fn hook, int publish,
                         const char *dsn)
{
	tgw_config(t, "bo-metrics-test");
	gw_config *cfg = &t->cfg;
	cfg->shards = shards;
	cfg->shard.engine.events_max = 16;
	cfg->shard.journal.fault = hook;
	if (publish) {
		cfg->publish[0] = t->pub_url;
		cfg->publish_count = 1;
	}
	cfg->committer.dsn = dsn;
	tgw_start(t);
}

static void srv_start(tgw *t, uint32_t shards, journal_fault_fn hook, int publish)
{
	srv_start_db(t, shards, hook, publish, NULL);
}

/* ---- Requests ------------------------------------------------------------ */

/* Sends cmds[0..n) as one message (an array when n > 1) and checks each
 * reply's status. */
static void cli_call(nng_socket s, const bo_cmd *cmds, uint32_t n, int want_status)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(cmds, n, n > 1, &sb), 0);
	int rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
	nng_msg *m;
	rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no reply: %s", nng_strerror(rv));
	bo_result r[64];
	wire_reply_info info[64];
	wire_msg wm;
	cr_assert(n <= 64);
	rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), r, info, n, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	cr_assert_eq(wm.count, n);
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(r[i].status, want_status, "reply %u: %s/%s, not %s", i,
		             bo_status_str(r[i].status), bo_detail_str(r[i].detail),
		             bo_status_str(want_status));
}

/* Sends raw bytes as a request and checks the reply holds n results (an
 * array), each with status want_status. */
static void cli_call_raw(nng_socket s, const void *buf, size_t len, uint32_t n, int want_status)
{
	int rv = nng_send(s, (void *)buf, len, 0);
	cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
	nng_msg *m;
	rv = nng_recvmsg(s, &m, 0);
	cr_assert_eq(rv, 0, "no reply: %s", nng_strerror(rv));
	bo_result r[4];
	wire_reply_info info[4];
	wire_msg wm;
	cr_assert(n <= 4);
	rv = wire_decode_replies(nng_msg_body(m), nng_msg_len(m), r, info, n, &wm);
	nng_msg_free(m);
	cr_assert_eq(rv, 0, "reply: %s", wm.error);
	cr_assert_eq(wm.count, n);
	for (uint32_t i = 0; i < n; i++)
		cr_assert_eq(r[i].status, want_status, "reply %u: %s", i,
		             bo_status_str(r[i].status));
}

/* ---- Reading the page ---------------------------------------------------- */

static char *render(gw_server *gw)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(gw_metrics_render(gw, &sb), 0);
	cr_assert(sb.size > 0);
	char *page = malloc(sb.size + 1);
	cr_assert_not_null(page);
	memcpy(page, sb.data, sb.size);
	page[sb.size] = '\0';
	msgpack_sbuffer_destroy(&sb);
	return page;
}

/* The value of `series` (name and labels exactly as rendered), or `dflt`
 * when the page has no such line. */
static double value_or(const char *page, const char *series, double dflt)
{
	size_t len = strlen(series);
	for (const char *l = page; *l;) {
		const char *eol = strchr(l, '\n');
		cr_assert_not_null(eol, "the page ends without a newline");
		if (l[0] != '#' && (size_t)(eol - l) > len && strncmp(l, series, len) == 0 &&
		    l[len] == ' ') {
			char *end;
			double v = strtod(l + len + 1, &end);
			cr_assert_eq(end, eol, "not a number: %.*s", (int)(eol - l), l);
			return v;
		}
		l = eol + 1;
	}
	return dflt;
}

static double value(const char *page, const char *series)
{
	double v = value_or(page, series, -1);
	cr_assert_geq(v, 0, "no series %s on the page", series);
	return v;
}

/* Checks one histogram series: buckets cumulative, +Inf = _count.
 * `labels` as in the page ("" or `shard="0",`). Returns _count. */
static double hist_check(const char *page, const char *name, const char *labels)
{
	char series[256];
	double prev = 0, last = -1;
	int buckets = 0;
	size_t nl = strlen(name);
	for (const char *l = page; *l; l = strchr(l, '\n') + 1) {
		snprintf(series, sizeof(series), "%s_bucket{%sle=\"", name, labels);
		if (strncmp(l, series, strlen(series)) != 0)
			continue;
		const char *v = strchr(l, '}');
		cr_assert_not_null(v);
		last = strtod(v + 2, NULL);
		cr_assert_geq(last, prev, "%s{%s}: buckets not cumulative", name, labels);
		prev = last;
		buckets++;
	}
	cr_assert_gt(buckets, 2, "no buckets of %s{%s}", name, labels);
	size_t ll = strlen(labels);
	snprintf(series, sizeof(series), "%.*s_count%s%.*s%s", (int)nl, name, ll ? "{" : "",
	         (int)(ll ? ll - 1 : 0), labels, ll ? "}" : "");
	double count = value(page, series);
	cr_assert_eq(last, count, "%s: +Inf bucket %.0f, _count %.0f", series, last, count);
	return count;
}

/* `promtool check metrics` on the page: 0 when it passes, 77 when there is
 * no promtool. Its findings go to the test's output. */
static int promtool_check(const tgw *t, const char *page)
{
	const char *tool = getenv("PROMTOOL") ? getenv("PROMTOOL") : "promtool";
	char cmd[3 * PATH_MAX];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	if (system(cmd) != 0)
		return 77;
	char path[sizeof(g_srv.dir) + 16];
	snprintf(path, sizeof(path), "%s/metrics.txt", t->dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(page, 1, strlen(page), f), strlen(page));
	cr_assert_eq(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "%s check metrics < %s 1>&2", tool, path);
	int st = system(cmd);
	cr_assert(WIFEXITED(st), "promtool did not exit");
	return WEXITSTATUS(st);
}

/* ==== 1. The page after known traffic ===================================== */

#define N_OK 20u    /* single holds that succeed */
#define N_TAKEN 7u  /* single holds of seats already held */
#define N_BATCH 30u /* holds in one array message */
#define SEATS 1024u

/* An event id that lives on shard `want` of `shards`. */
static uint64_t event_on(uint32_t want, uint32_t shards)
{
	for (uint64_t e = 1;; e++)
		if (shard_for_event(e, shards) == want)
			return e;
}

Test(metrics, page_counts_what_was_sent)
{
	tgw *t = &g_srv;
	srv_start(t, 2, NULL, 1);
	const uint64_t ev = event_on(1, 2); /* all the load on shard 1 */
	bo_seatmap *map = tcmd_rows_map(8, SEATS / 8, 0, 0);
	bo_cmd create = tcmd_create(1, 1, ev, map);
	bo_result cr;
	cr_assert_eq(gw_apply_local(t->gw, &create, 1, &cr, TGW_WAIT_MS), 0);
	cr_assert_eq(cr.status, BO_OK);
	bo_seatmap_free(map);

	char *before = render(t->gw);
	cr_assert_eq(
	        value_or(before, "boxoffice_results_total{op=\"hold_seats\",status=\"ok\"}", 0), 0);
	cr_assert_eq(value(before, "boxoffice_request_duration_seconds_count"), 0);
	double shard1_before = value(before, "boxoffice_shard_commands_total{shard=\"1\"}");
	cr_assert_eq(shard1_before, 1, "the local create_event went into shard 1's ring");

	nng_socket s = tgw_req_open(t->url);
	uint32_t req = 100;
	for (uint32_t i = 0; i < N_OK; i++) {
		bo_cmd h = tcmd_hold_seats(1000 + i, req++, ev, &i, 1, 60000);
		cli_call(s, &h, 1, BO_OK);
	}
	for (uint32_t i = 0; i < N_TAKEN; i++) {
		bo_cmd h = tcmd_hold_seats(2000 + i, req++, ev, &i, 1, 60000);
		cli_call(s, &h, 1, BO_TAKEN);
	}
	bo_cmd batch[N_BATCH];
	uint32_t seats[N_BATCH];
	for (uint32_t i = 0; i < N_BATCH; i++) {
		seats[i] = 500 + i;
		batch[i] = tcmd_hold_seats(3000 + i, req++, ev, &seats[i], 1, 60000);
	}
	cli_call(s, batch, N_BATCH, BO_OK);
	bo_cmd q = tcmd_query_avail(ev);
	cli_call(s, &q, 1, BO_OK);
	/* [{"op": "nope"}]: a command that does not decode, in a message
	 * that does. */
	static const uint8_t bad_op[] = {0x91, 0x81, 0xa2, 'o', 'p', 0xa4, 'n', 'o', 'p', 'e'};
	cli_call_raw(s, bad_op, sizeof(bad_op), 1, BO_INVALID);
	nng_close(s);
	const double messages = N_OK + N_TAKEN + 1 + 1 + 1;

	char *page = render(t->gw);
	cr_assert_eq(value(page, "boxoffice_results_total{op=\"hold_seats\",status=\"ok\"}"),
	             N_OK + N_BATCH);
	cr_assert_eq(value(page, "boxoffice_results_total{op=\"hold_seats\",status=\"taken\"}"),
	             N_TAKEN);
	cr_assert_eq(value(page, "boxoffice_results_total{op=\"query_avail\",status=\"ok\"}"), 1);
	cr_assert_eq(value(page, "boxoffice_results_total{op=\"none\",status=\"invalid\"}"), 1,
	             "the command that did not decode");
	cr_assert_eq(value(page, "boxoffice_invalid_messages_total"), 0, "its message did decode");
	cr_assert_eq(
	        value_or(page, "boxoffice_results_total{op=\"create_event\",status=\"ok\"}", 0), 0,
	        "gw_apply_local is no client request");
	cr_assert_eq(value(page, "boxoffice_reads_total"), 1);
	cr_assert_eq(value(page, "boxoffice_busy_total"), 0);
	/* Every reply was handed to nng before the client had it: the
	 * histogram counts exactly the messages, not the commands. */
	cr_assert_eq(hist_check(page, "boxoffice_request_duration_seconds", ""), messages);
	cr_assert_gt(value(page, "boxoffice_request_duration_seconds_sum"), 0);

	/* Load: every hold went into shard 1's ring (the query did not). */
	cr_assert_eq(value(page, "boxoffice_shard_commands_total{shard=\"1\"}") - shard1_before,
	             N_OK + N_TAKEN + N_BATCH);
	cr_assert_eq(value(page, "boxoffice_shard_commands_total{shard=\"0\"}"), 0);
	cr_assert_eq(value(page, "boxoffice_shard_balance"), 2.0,
	             "all on one of two shards is max/avg 2");
	cr_assert_gt(value(page, "boxoffice_shard_balance_window_seconds"), 0);
	for (int k = 0; k < 2; k++) {
		char series[128], labels[32];
		snprintf(labels, sizeof(labels), "shard=\"%d\",", k);
		snprintf(series, sizeof(series), "boxoffice_shard_batches_total{shard=\"%d\"}", k);
		double batches = value(page, series);
		cr_assert_eq(hist_check(page, "boxoffice_shard_batch_size", labels), batches,
		             "shard %d: one batch-size observation per batch", k);
		snprintf(series, sizeof(series), "boxoffice_shard_batch_size_sum{shard=\"%d\"}", k);
		cr_assert_eq(value(page, series), k == 1 ? 1 + N_OK + N_TAKEN + N_BATCH : 0,
		             "shard %d: the batch sizes add up to the commands applied", k);
		double syncs = hist_check(page, "boxoffice_journal_sync_duration_seconds", labels);
		snprintf(series, sizeof(series), "boxoffice_journal_durable_seq{shard=\"%d\"}", k);
		double durable = value(page, series);
		if (k == 1) {
			/* Every journaled command is durable (its reply came). */
			cr_assert_geq(durable, 1 + N_OK + N_BATCH);
			cr_assert_gt(syncs, 0);
		}
		snprintf(series, sizeof(series), "boxoffice_read_model_seq{shard=\"%d\"}", k);
		cr_assert_eq(value(page, series), durable,
		             "shard %d: the read model is at the disk", k);
		snprintf(series, sizeof(series), "boxoffice_read_model_lag_records{shard=\"%d\"}",
		         k);
		cr_assert_eq(value(page, series), 0);
		snprintf(series, sizeof(series), "boxoffice_shard_up{shard=\"%d\"}", k);
		cr_assert_eq(value(page, series), 1);
		snprintf(series, sizeof(series),
		         "boxoffice_committer_state{shard=\"%d\",state=\"off\"}", k);
		cr_assert_eq(value(page, series), 1, "no database: the committer is off");
		snprintf(series, sizeof(series),
		         "boxoffice_committer_state{shard=\"%d\",state=\"running\"}", k);
		cr_assert_eq(value(page, series), 0);
	}
	cr_assert_eq(value(page, "boxoffice_healthy"), 1);
	cr_assert_eq(value(page, "boxoffice_ready"), 1);
	cr_assert_eq(value(page, "boxoffice_throttled_total"), 0);

	/* Projections (no subscriber: PUB sends to nobody, still counted):
	 * once the publisher has drained its queue, every message it took
	 * has a queue-wait observation and was published. */
	int64_t deadline = bo_clock_ms() + TGW_WAIT_MS;
	for (;;) {
		double published = value(page, "boxoffice_projections_published_total");
		double waits = hist_check(page, "boxoffice_projection_queue_wait_seconds", "");
		if (value(page, "boxoffice_projection_queue_messages") == 0 && waits == published) {
			cr_assert_gt(published, 0, "the holds were projected");
			cr_assert_eq(value(page, "boxoffice_projection_queue_age_seconds"), 0);
			break;
		}
		cr_assert_lt(bo_clock_ms(), deadline,
		             "the publisher did not drain: %.0f waits, %.0f published", waits,
		             published);
		usleep(1000);
		free(page);
		page = render(t->gw);
	}
	cr_assert_eq(value(page, "boxoffice_projections_dropped_total"), 0);

	if (getenv("BO_METRICS_DUMP")) /* to look at the page */
		fputs(page, stderr);
	int rc = promtool_check(t, page);
	free(before);
	free(page);
	if (rc == 77) {
		fprintf(stderr,
		        "\n*** SKIPPED: promtool not found (install Debian's 'prometheus' package, "
		        "scripts/setup): the page was not checked by a Prometheus parser ***\n\n");
		cr_skip_test("promtool not found: the page was not checked by a Prometheus parser");
	}
	cr_assert_eq(rc, 0, "promtool check metrics refused the page (its findings are above)");
	tgw_stop(t);
}

/* ==== 2. /healthz and /readyz ============================================= */

Test(metrics, health_fails_with_the_journal)
{
	tgw *t = &g_srv;
	srv_start(t, 1, fail_hook, 0);
	char reason[512];
	cr_assert_eq(gw_health(t->gw, reason, sizeof(reason)), 0, "healthy at start: %s", reason);
	cr_assert_str_empty(reason);
	cr_assert_eq(gw_ready(t->gw, reason, sizeof(reason)), 0, "ready at start: %s", reason);

	/* A command's journal write fails: the shard stops. Its result never
	 * comes out, so gw_apply_local gives up at once. */
	atomic_store(&g_fail_io, 1);
	bo_seatmap *map = tcmd_rows_map(1, 4, 0, 0);
	bo_cmd create = tcmd_create(1, 1, 5, map);
	bo_result r;
	cr_assert_eq(gw_apply_local(t->gw, &create, 1, &r, 0), -ETIMEDOUT);
	bo_seatmap_free(map); /* the gateway applies its own copy */
	int64_t deadline = bo_clock_ms() + TGW_WAIT_MS;
	while (gw_failed(t->gw) == NULL) {
		cr_assert_lt(bo_clock_ms(), deadline,
		             "the shard did not fail on a failing journal");
		usleep(1000);
	}

	cr_assert_eq(gw_health(t->gw, reason, sizeof(reason)), -1, "healthy with a failed journal");
	cr_assert_not_null(strstr(reason, "shard 0: journal failed: "), "reason: %s", reason);
	cr_assert_not_null(strstr(reason, strerror(EIO)), "reason names the error: %s", reason);
	cr_assert_eq(gw_ready(t->gw, reason, sizeof(reason)), -1, "ready with a failed journal");
	cr_assert_not_null(strstr(reason, "shard 0: journal failed"), "reason: %s", reason);
	char *page = render(t->gw);
	cr_assert_eq(value(page, "boxoffice_shard_up{shard=\"0\"}"), 0);
	cr_assert_eq(value(page, "boxoffice_healthy"), 0);
	cr_assert_eq(value(page, "boxoffice_ready"), 0);
	free(page);
	/* A short reason buffer is cut, not overrun. */
	char small[8];
	cr_assert_eq(gw_health(t->gw, small, sizeof(small)), -1);
	cr_assert_eq(strlen(small), sizeof(small) - 1);

	tgw_stop(t);
	atomic_store(&g_fail_io, 0);
}

Test(metrics, not_ready_once_stopping)
{
	tgw *t = &g_srv;
	srv_start(t, 2, NULL, 0);
	char reason[256];
	cr_assert_eq(gw_ready(t->gw, reason, sizeof(reason)), 0, "ready at start: %s", reason);
	cr_assert_eq(gw_stop(t->gw, TGW_WAIT_MS), 0);
	cr_assert_eq(gw_close_hung(t->gw), 0, "nng_close hung");
	/* Stopped, not yet freed: the flags are still readable. */
	cr_assert_eq(gw_ready(t->gw, reason, sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "draining"), "reason: %s", reason);
	cr_assert_eq(gw_health(t->gw, reason, sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "writer stopped"), "reason: %s", reason);
	gw_free(t->gw);
	t->gw = NULL;
}

/* ==== 3. The committers ==================================================== */

Test(metrics, committer_state_and_lag)
{
	char dsn[PGT_DSN_MAX];
	pgt_create_db("metrics", dsn, sizeof(dsn));
	tgw *t = &g_srv;
	srv_start_db(t, 2, NULL, 0, dsn);
	const uint64_t ev = event_on(0, 2);
	bo_seatmap *map = tcmd_rows_map(2, 8, 0, 0);
	bo_cmd cmds[3];
	cmds[0] = tcmd_create(1, 1, ev, map);
	uint32_t seats[2] = {1, 2};
	cmds[1] = tcmd_hold_seats(11, 2, ev, &seats[0], 1, 60000);
	cmds[2] = tcmd_hold_seats(12, 3, ev, &seats[1], 1, 60000);
	bo_result r[3];
	cr_assert_eq(gw_apply_local(t->gw, cmds, 3, r, TGW_WAIT_MS), 0);
	bo_seatmap_free(map);

	/* Wait for the committers to be running and shard 0's to have
	 * applied everything durable. */
	int64_t deadline = bo_clock_ms() + TGW_WAIT_MS;
	char *page = NULL;
	for (;;) {
		free(page);
		page = render(t->gw);
		double applied = value(page, "boxoffice_committer_applied_seq{shard=\"0\"}");
		double durable = value(page, "boxoffice_journal_durable_seq{shard=\"0\"}");
		if (value(page, "boxoffice_committer_state{shard=\"0\",state=\"running\"}") == 1 &&
		    value(page, "boxoffice_committer_state{shard=\"1\",state=\"running\"}") == 1 &&
		    durable >= 3 && applied == durable)
			break;
		cr_assert_lt(bo_clock_ms(), deadline,
		             "committer of shard 0 not caught up: applied %.0f of %.0f", applied,
		             durable);
		usleep(2000);
	}
	for (int k = 0; k < 2; k++) {
		static const char *const states[] = {"off", "starting", "running", "retrying",
		                                     "stopped"};
		double sum = 0;
		for (int st = 0; st < 5; st++) {
			char series[128];
			snprintf(series, sizeof(series),
			         "boxoffice_committer_state{shard=\"%d\",state=\"%s\"}", k,
			         states[st]);
			sum += value(page, series);
		}
		cr_assert_eq(sum, 1, "shard %d: one state at a time", k);
	}
	cr_assert_eq(value(page, "boxoffice_committer_lag_records{shard=\"0\"}"), 0);
	cr_assert_eq(value(page, "boxoffice_committer_lag_seconds{shard=\"0\"}"), 0);
	free(page);
	tgw_stop(t);
	pgt_drop_db(dsn);
}
