/*
 * cli_watch_test.c — proves that `boxoffice-cli watch`, run as a separate
 * process, does what its --help promises, against a stand-in publisher in
 * this process (tests/support/fakepub.h: PUB + event_state over ipc):
 *
 *  1. --json: the first line is the event's image (seats per state, free
 *     seats per category, pools), then one line per change in order with
 *     its seq, cause, claim and seats/state or pool/quantity/pool_free; a
 *     message the publisher never sent shows up as an image line with
 *     reason "gap" holding the lost change, after which changes go on;
 *     --count N exits 0 after N changes; every line is one valid JSON
 *     object;
 *  2. the same run in human form says what it saw, and says
 *     "resynchronised ... (gap: messages were lost)";
 *  3. an event that does not exist yet: "does not exist (yet)", then, once
 *     it is created, its image (reason "created") and its changes;
 *  4. no publisher and no server: it says so on stderr, keeps trying, and
 *     --timeout-ms ends it: exit 3 when --count changes did not come, 0
 *     without --count;
 *  5. bad arguments exit 2 without output on stdout; --help names the
 *     default publisher address.
 *
 * What needs the real server (the lead's end-to-end test): that the real
 * publisher's messages and event_state replies drive the same output.
 *
 * Waiting is for events: the publishing thread waits until the stand-in
 * sees the CLI's subscription pipe and its event_state requests before it
 * publishes; the CLI itself runs under a hard deadline.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/change.h"
#include "tests/support/fakepub.h"
#include "tests/support/json_check.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 10000
#define CLI_DEADLINE_MS 30000

static char dir[256], pub_url[320], rep_url[320];
static fakepub *F;

static void setup(void)
{
	cr_assert_eq(tmpdir_make(dir, sizeof(dir), "bo-cli-watch"), 0);
	snprintf(pub_url, sizeof(pub_url), "ipc://%s/pub.ipc", dir);
	snprintf(rep_url, sizeof(rep_url), "ipc://%s/rep.ipc", dir);
	cr_assert_eq(fakepub_start(pub_url, rep_url, &F), 0);
}

static void teardown(void)
{
	fakepub_stop(F);
	tmpdir_remove(dir);
}

TestSuite(watch, .init = setup, .fini = teardown, .timeout = 120);

static const char *cli_bin(void)
{
	const char *bin = getenv("BOXOFFICE_CLI");
	cr_assert(bin && *bin, "BOXOFFICE_CLI is not set: run this test through meson");
	return bin;
}

/* Runs boxoffice-cli with args (NULL-terminated), checks it left no
 * sanitizer report and did not hit the deadline. */
static void cli_run(tproc_result *r, const char *const *args)
{
	const char *argv[32] = {cli_bin()};
	int n = 1;
	for (; args[n - 1] != NULL; n++) {
		cr_assert_lt(n, 31);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	cr_assert_eq(tproc_run(argv, "BOXOFFICE_URL", CLI_DEADLINE_MS, r), 0);
	cr_assert(!r->timed_out, "boxoffice-cli watch hung; stdout:\n%s\nstderr:\n%s", r->out,
	          r->err);
	cr_assert_null(tproc_sanitizer_report(r->err), "sanitizer report:\n%s", r->err);
}

/* The lines of text, in place ('\n' -> '\0'); returns their count. */
static int split_lines(char *text, char **lines, int cap)
{
	int n = 0;
	for (char *p = text; *p != '\0' && n < cap;) {
		lines[n++] = p;
		char *nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/* The JSON value at path in line, as text up to its end (a copy). */
static char *json_at(const char *line, const char *path)
{
	const char *found = NULL;
	cr_assert_not_null(tjson_value(line, path, &found), "not JSON: %s", line);
	cr_assert_not_null(found, "no %s in %s", path, line);
	const char *end = tjson_value(found, NULL, NULL);
	static char buf[8][256];
	static int k;
	char *b = buf[k++ % 8];
	size_t len = (size_t)(end - found);
	cr_assert_lt(len, sizeof(buf[0]));
	memcpy(b, found, len);
	b[len] = '\0';
	return b;
}

/* ---- The publishing side ------------------------------------------------------ */

enum {
	EV = 7
};

static const bo_change c_hold = {.cause = BO_CAUSE_HOLD,
                                 .state = BO_SEAT_HELD,
                                 .seat_count = 2,
                                 .claim_id = 100,
                                 .seats = {0, 1}};
static const bo_change c_pool = {.cause = BO_CAUSE_HOLD,
                                 .is_pool = 1,
                                 .pool = 0,
                                 .quantity = 3,
                                 .pool_free = 7,
                                 .claim_id = 101};
static const bo_change c_block = {
        .cause = BO_CAUSE_BLOCK, .state = BO_SEAT_BLOCKED, .seat_count = 1, .seats = {5}};
static const bo_change c_confirm = {.cause = BO_CAUSE_CONFIRM,
                                    .state = BO_SEAT_BOOKED,
                                    .seat_count = 2,
                                    .claim_id = 100,
                                    .seats = {0, 1}};
static const bo_change c_release = {.cause = BO_CAUSE_RELEASE,
                                    .is_pool = 1,
                                    .pool = 0,
                                    .quantity = 3,
                                    .pool_free = 10,
                                    .claim_id = 101};
static const bo_change c_unblock = {
        .cause = BO_CAUSE_UNBLOCK, .state = BO_SEAT_FREE, .seat_count = 1, .seats = {5}};

/* Event 7 at seq 10; once the CLI is subscribed and has its image: hold
 * (11), pool hold (12), a block that is never sent (13), confirm (14);
 * once the CLI fetched again (the gap): pool release (15), unblock (16). */
static void *publish_with_gap(void *arg)
{
	(void)arg;
	if (fakepub_wait_pipes(F, 1, WAIT_MS) != 0 ||
	    fakepub_wait_state_requests(F, 1, WAIT_MS) != 0)
		return "the CLI never subscribed";
	fakepub_publish(F, EV, &c_hold, 1, false);
	fakepub_publish(F, EV, &c_pool, 1, false);
	fakepub_publish(F, EV, &c_block, 1, true);
	fakepub_publish(F, EV, &c_confirm, 1, false);
	if (fakepub_wait_state_requests(F, 2, WAIT_MS) != 0)
		return "the CLI never resynchronised";
	fakepub_publish(F, EV, &c_release, 1, false);
	fakepub_publish(F, EV, &c_unblock, 1, false);
	return NULL;
}

static void run_with_publisher(void *(*fn)(void *), tproc_result *r, const char *const *args)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, fn, NULL), 0);
	cli_run(r, args);
	void *why = NULL;
	pthread_join(t, &why);
	cr_assert_null(why, "%s; stdout:\n%s\nstderr:\n%s", (const char *)why, r->out, r->err);
}

/* ---- 1, 2. Changes, a gap ------------------------------------------------------- */

Test(watch, json_changes_in_order_and_gap)
{
	fakepub_add_event(F, EV, 4, 5, 2, 1, 10, 10);
	tproc_result r;
	const char *args[] = {"watch", "7",       "--json", "--pub",        pub_url, "--server",
	                      rep_url, "--count", "4",      "--timeout-ms", "20000", NULL};
	run_with_publisher(publish_with_gap, &r, args);
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	char *lines[16];
	int n = split_lines(r.out, lines, 16);
	cr_assert_eq(n, 6, "6 lines expected, got %d:\n%s", n, r.out);
	for (int i = 0; i < n; i++)
		cr_assert(tjson_valid(lines[i], strlen(lines[i])), "line %d not JSON: %s", i,
		          lines[i]);

	cr_assert_str_eq(json_at(lines[0], "type"), "\"image\"");
	cr_assert_str_eq(json_at(lines[0], "reason"), "\"join\"");
	cr_assert_str_eq(json_at(lines[0], "event"), "7");
	cr_assert_str_eq(json_at(lines[0], "seq"), "10");
	cr_assert_str_eq(json_at(lines[0], "seats"), "20");
	cr_assert_str_eq(json_at(lines[0], "by_state.free"), "20");
	cr_assert_str_eq(json_at(lines[0], "free_by_category"), "[10,10]");
	cr_assert_str_eq(json_at(lines[0], "pools"), "[{\"pool\":0,\"capacity\":10,\"free\":10}]");

	cr_assert_str_eq(json_at(lines[1], "type"), "\"change\"");
	cr_assert_str_eq(json_at(lines[1], "seq"), "11");
	cr_assert_str_eq(json_at(lines[1], "prev"), "10");
	cr_assert_str_eq(json_at(lines[1], "cause"), "\"hold\"");
	cr_assert_str_eq(json_at(lines[1], "claim"), "100");
	cr_assert_str_eq(json_at(lines[1], "seats"), "[0,1]");
	cr_assert_str_eq(json_at(lines[1], "state"), "\"held\"");

	cr_assert_str_eq(json_at(lines[2], "seq"), "12");
	cr_assert_str_eq(json_at(lines[2], "pool"), "0");
	cr_assert_str_eq(json_at(lines[2], "quantity"), "3");
	cr_assert_str_eq(json_at(lines[2], "pool_free"), "7");

	/* The lost block (13) and the confirm (14) come with the new image. */
	cr_assert_str_eq(json_at(lines[3], "type"), "\"image\"");
	cr_assert_str_eq(json_at(lines[3], "reason"), "\"gap\"");
	cr_assert_str_eq(json_at(lines[3], "seq"), "14");
	cr_assert_str_eq(json_at(lines[3], "by_state.booked"), "2");
	cr_assert_str_eq(json_at(lines[3], "by_state.blocked"), "1");
	cr_assert_str_eq(json_at(lines[3], "by_state.free"), "17");

	cr_assert_str_eq(json_at(lines[4], "seq"), "15");
	cr_assert_str_eq(json_at(lines[4], "cause"), "\"release\"");
	cr_assert_str_eq(json_at(lines[4], "pool_free"), "10");
	cr_assert_str_eq(json_at(lines[5], "seq"), "16");
	cr_assert_str_eq(json_at(lines[5], "cause"), "\"unblock\"");
	cr_assert_str_eq(json_at(lines[5], "state"), "\"free\"");
	tproc_result_free(&r);
}

Test(watch, human_changes_and_gap)
{
	fakepub_add_event(F, EV, 4, 5, 2, 1, 10, 10);
	tproc_result r;
	const char *args[] = {"watch", "7",       "--pub", pub_url, "--server",
	                      rep_url, "--count", "4",     NULL};
	run_with_publisher(publish_with_gap, &r, args);
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	static const char *const want[] = {
	        "event 7 at seq 10: 20 seats: 20 free, 0 held, 0 booked, 0 blocked\n",
	        "  free by category: 0: 10, 1: 10\n",
	        "  pool 0: 10 of 10 free\n",
	        "seq 11 hold    claim 0x64 seats 0 1 -> held\n",
	        "seq 12 hold    claim 0x65 pool 0: 3 moved, 7 of 10 free\n",
	        "resynchronised event 7 at seq 14 (gap: messages were lost): 20 seats: 17 free, "
	        "0 held, 2 booked, 1 blocked\n",
	        "seq 15 release claim 0x65 pool 0: 3 moved, 10 of 10 free\n",
	        "seq 16 unblock seats 5 -> free\n",
	};
	const char *at = r.out;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *p = strstr(at, want[i]);
		cr_assert_not_null(p, "missing (in order) '%s' in:\n%s", want[i], r.out);
		at = p + strlen(want[i]);
	}
	tproc_result_free(&r);
}

/* ---- 3. Not there yet ----------------------------------------------------------- */

static void *publish_create(void *arg)
{
	(void)arg;
	if (fakepub_wait_pipes(F, 1, WAIT_MS) != 0 ||
	    fakepub_wait_state_requests(F, 1, WAIT_MS) != 0)
		return "the CLI never subscribed";
	fakepub_create(F, 99, 2, 10, 1, 0, 0);
	if (fakepub_wait_state_requests(F, 2, WAIT_MS) != 0)
		return "the CLI never fetched the created event";
	bo_change c = c_hold;
	fakepub_publish(F, 99, &c, 1, false);
	return NULL;
}

Test(watch, waits_for_an_event_to_be_created)
{
	tproc_result r;
	const char *args[] = {"watch",    "99",    "--json",  "--pub", pub_url,
	                      "--server", rep_url, "--count", "1",     NULL};
	run_with_publisher(publish_create, &r, args);
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	char *lines[8];
	int n = split_lines(r.out, lines, 8);
	cr_assert_eq(n, 3, "3 lines expected:\n%s", r.out);
	cr_assert_str_eq(lines[0], "{\"type\":\"missing\",\"event\":99}");
	cr_assert_str_eq(json_at(lines[1], "reason"), "\"created\"");
	cr_assert_str_eq(json_at(lines[1], "seq"), "1");
	cr_assert_str_eq(json_at(lines[1], "by_state.free"), "20");
	cr_assert_str_eq(json_at(lines[2], "seq"), "2");
	cr_assert_str_eq(json_at(lines[2], "state"), "\"held\"");
	tproc_result_free(&r);
}

Test(watch, human_says_the_event_does_not_exist_yet)
{
	tproc_result r;
	const char *args[] = {"watch", "99",      "--pub", pub_url, "--server",
	                      rep_url, "--count", "1",     NULL};
	run_with_publisher(publish_create, &r, args);
	cr_assert_eq(r.code, 0, "exit %d; stderr:\n%s", r.code, r.err);
	const char *a =
	        strstr(r.out, "event 99 does not exist (yet); waiting for it to be created\n");
	const char *b = strstr(r.out, "event 99 created, at seq 1: 20 seats: 20 free");
	const char *c = strstr(r.out, "seq 2 hold    claim 0x64 seats 0 1 -> held\n");
	cr_assert(a && b && c && a < b && b < c, "unexpected output:\n%s", r.out);
	tproc_result_free(&r);
}

/* ---- 4. Nobody there ---------------------------------------------------------------- */

Test(watch, no_server_is_reported_and_bounded_by_timeout)
{
	char nopub[400], noreq[400];
	snprintf(nopub, sizeof(nopub), "ipc://%s/nothing-pub.ipc", dir);
	snprintf(noreq, sizeof(noreq), "ipc://%s/nothing-req.ipc", dir);
	tproc_result r;
	const char *args[] = {"watch",     "5",       "--pub", nopub,          "--server",
	                      noreq,       "--count", "1",     "--timeout-ms", "2500",
	                      "--timeout", "300",     NULL};
	cli_run(&r, args);
	cr_assert_eq(r.code, 3, "exit %d; stderr:\n%s", r.code, r.err);
	cr_assert_eq(r.out_len, 0, "stdout: %s", r.out);
	cr_assert_not_null(strstr(r.err, "no publisher at"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "no image of event 5 from"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "retrying in"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "0 of 1 changes within 2500 ms"), "%s", r.err);
	tproc_result_free(&r);

	const char *args2[] = {"watch",        "5",   "--pub",     nopub, "--server", noreq,
	                       "--timeout-ms", "700", "--timeout", "200", "--json",   NULL};
	cli_run(&r, args2);
	cr_assert_eq(r.code, 0, "without --count, the end of --timeout-ms is a normal end: %s",
	             r.err);
	/* --json: the failed fetches are lines of their own. */
	char *lines[16];
	int n = split_lines(r.out, lines, 16);
	cr_assert_geq(n, 1, "no no_image line");
	for (int i = 0; i < n; i++) {
		cr_assert(tjson_valid(lines[i], strlen(lines[i])), "not JSON: %s", lines[i]);
		cr_assert_str_eq(json_at(lines[i], "type"), "\"no_image\"");
		cr_assert_str_eq(json_at(lines[i], "event"), "5");
	}
	tproc_result_free(&r);
}

/* ---- 5. Arguments -------------------------------------------------------------------- */

Test(watch, bad_arguments_exit_2)
{
	static const char *const cases[][6] = {
	        {"watch", NULL},
	        {"watch", "0", NULL},
	        {"watch", "x", NULL},
	        {"watch", "1", "--count", "0", NULL},
	        {"watch", "1", "--timeout-ms", "0", NULL},
	        {"watch", "1", "--bogus", "2", NULL},
	        {"watch", "1", "--pub", "nonsense://x", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tproc_result r;
		cli_run(&r, cases[i]);
		cr_assert_eq(r.code, 2, "case %zu: exit %d; stderr:\n%s", i, r.code, r.err);
		cr_assert_eq(r.out_len, 0, "case %zu: stdout %s", i, r.out);
		cr_assert_gt(r.err_len, 0);
		tproc_result_free(&r);
	}
}

Test(watch, help_names_the_defaults)
{
	tproc_result r;
	const char *args[] = {"watch", "--help", NULL};
	cli_run(&r, args);
	cr_assert_eq(r.code, 0);
	cr_assert_not_null(strstr(r.out, "tcp://127.0.0.1:7401"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "--count N"), "%s", r.out);
	tproc_result_free(&r);
	const char *args2[] = {"--help", NULL};
	cli_run(&r, args2);
	cr_assert_eq(r.code, 0);
	cr_assert_not_null(strstr(r.out, "watch ID"), "%s", r.out);
	tproc_result_free(&r);
}
