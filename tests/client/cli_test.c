/*
 * cli_test.c — proves that boxoffice-cli, run as a separate process against a
 * real boxoffice-server process, does what its --help and schemas/protocol.md
 * promise, and that its exit status tells a script what happened:
 *
 *  1. create-event with flags and with --map FILE builds the map it was
 *     asked for: status (human and --json) shows the seat, category and pool
 *     counts that map implies;
 *  2. hold --seats / --best / --pool, extend, confirm, cancel, release,
 *     block, unblock and status --seats exit 0, name the hold id and the
 *     seats, and after each step status --json shows exactly the expected
 *     change;
 *  3. refusals exit 1 and print the status: `taken` with the offending seat,
 *     `not_found` for an unknown event or hold, `invalid`/`event_exists`,
 *     `conflict`; nothing changes;
 *  4. the same --client/--request twice is answered with the first answer
 *     (same hold id, marked replayed) and changes nothing, also after the
 *     hold was released;
 *  5. bad arguments exit 2 with a message on stderr, nothing on stdout and
 *     without contacting the server (the --url it is given is a closed port
 *     with a long timeout: any attempt would take that long and exit 3);
 *     16 seats are accepted, 17 refused;
 *  6. no answer exits 3 within the --timeout (plus 1.5 s for process
 *     start-up): a closed port, and a stopped server (SIGSTOP: the kernel
 *     accepts the connection, nothing answers); the retry ids the CLI
 *     prints for a mutating command, used after SIGCONT, leave exactly one
 *     hold;
 *  7. --help of the tool and of every command exits 0 with usage on stdout;
 *  8. ids are read as the help documents them ("decimal or 0x-hexadecimal"),
 *     and an explicit --client/--request pair is honoured for every value,
 *     so that repeating it is always a safe retry;
 *  9. --json output is printable ASCII whatever bytes a reply carries: DEL,
 *     UTF-8 and invalid UTF-8 in an error text come out as \u00XX (the one
 *     rule of base/json.h), from a stand-in nng server in the test;
 * 10. server-status prints every shard of a server without a database as
 *     "off" with its reason, in the table and in --json (one valid object),
 *     and the durable sequences grow with acknowledged changes; a
 *     malformed reply from a stand-in server exits 3 saying why, a refusal
 *     (busy) exits 1 with the server's status and text;
 * 11. a command refused `throttled` (a server with --throttle-rate 1
 *     --throttle-burst 1: a hot event) exits 1 and says when to retry:
 *     "retry in N ms or later" with N in 1..1000, and "retry_after_ms"
 *     in --json;
 * 12. cluster prints a stand-in server's cluster_status as a table (epoch,
 *     role, primary, in-sync set, standby lag) and as --json with the
 *     documented keys; switchover prints its outcome (ok: exit 0; a
 *     refusal: exit 1 with the server's text); both have --help texts.
 *
 * How: $BOXOFFICE_SERVER and $BOXOFFICE_CLI (meson sets both) name the
 * binaries. Each server test fork/execs its own server with a fresh mkdtemp
 * data dir on a TCP port found by binding port 0, waits until the CLI gets an
 * answer from it, and ends with SIGTERM: exit 0 and a log free of sanitizer
 * reports. The server dies with the test process (PR_SET_PDEATHSIG) and is
 * SIGKILLed in the fini whatever happened. The CLI runs with stdout and
 * stderr captured through pipes, under a hard deadline; its stderr must never
 * hold a sanitizer report. JSON output is checked by a small validating
 * parser below, not by substring matching.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/tcp/tcp.h>

#include "base/limits.h"
#include "protocol/wire.h"
#include "tests/support/json_check.h"
#include "tests/support/proc.h"
#include "tests/support/server.h"
#include "tests/support/tmpdir.h"

/* ---- Small utilities ----------------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

/* A TCP port nobody listens on (tproc_free_port). Another process could
 * take it in between; on loopback that is vanishingly rare and would show
 * as a wrong exit code, not as a pass. */
static int closed_port(void)
{
	int port = tproc_free_port();
	cr_assert_gt(port, 0, "no free port: %s", strerror(-port));
	return port;
}

/* ---- Running the CLI ----------------------------------------------------- */

#define RUN_OUT_MAX 16384
#define RUN_ERR_MAX 8192
#define RUN_DEADLINE_MS 20000 /* a CLI that hangs is killed and fails the test */
#define RUN_ARGS_MAX 32

typedef struct run {
	int code;          /* exit status; 128 + signal when it died of one */
	int64_t took_ms;   /* fork to reap */
	char cmdline[512]; /* for failure messages */
	char out[RUN_OUT_MAX];
	char err[RUN_ERR_MAX];
} run;

/* One test per process (Criterion): the URL the CLI is pointed at, and the
 * scratch directory (map files, the server's data dir and log). */
static char g_url[64];
static char g_dir[PATH_MAX];

static const char *cli_bin(void)
{
	const char *bin = getenv("BOXOFFICE_CLI");
	cr_assert(bin && *bin,
	          "BOXOFFICE_CLI is not set: run this test through meson, or set it to the "
	          "boxoffice-cli binary");
	return bin;
}

/* Runs `boxoffice-cli [--url g_url] args...` (args NULL-terminated) and
 * collects its exit status, stdout and stderr. BOXOFFICE_URL is removed from
 * its environment so that only --url decides where it goes. */
static void cli_exec(run *r, bool with_url, const char *const *args)
{
	const char *argv[RUN_ARGS_MAX + 4];
	int argc = 0;
	argv[argc++] = cli_bin();
	if (with_url) {
		argv[argc++] = "--url";
		argv[argc++] = g_url;
	}
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(argc, RUN_ARGS_MAX);
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	memset(r, 0, sizeof(*r));
	size_t pos = 0;
	for (int i = 1; i < argc && pos < sizeof(r->cmdline) - 1; i++)
		pos += (size_t)snprintf(r->cmdline + pos, sizeof(r->cmdline) - pos, "%s%s",
		                        i > 1 ? " " : "", argv[i]);

	tproc_result t;
	int rc = tproc_run(argv, "BOXOFFICE_URL", RUN_DEADLINE_MS, &t);
	cr_assert_eq(rc, 0, "`%s`: cannot run it: %s", r->cmdline, strerror(-rc));
	r->code = t.code;
	r->took_ms = t.took_ms;
	snprintf(r->out, sizeof(r->out), "%s", t.out);
	snprintf(r->err, sizeof(r->err), "%s", t.err);
	int timed_out = t.timed_out;
	const char *report = tproc_sanitizer_report(t.err);
	tproc_result_free(&t);
	cr_assert(!timed_out, "`%s` still ran after %d ms: killed", r->cmdline, RUN_DEADLINE_MS);
	cr_assert_null(report, "`%s`: sanitizer report on stderr:\n%s", r->cmdline, r->err);
}

/* CLI(&r, "hold", "42", ...) runs `boxoffice-cli --url g_url hold 42 ...`. */
#define CLI(r, ...) cli_exec((r), true, (const char *const[]){__VA_ARGS__, NULL})

/* The run exited `code`; the message shows everything it printed. */
static void expect_code(const run *r, int code)
{
	cr_assert_eq(r->code, code, "`%s` exited %d, expected %d\n--- stdout:\n%s--- stderr:\n%s",
	             r->cmdline, r->code, code, r->out, r->err);
}

static void expect_out(const run *r, const char *needle)
{
	cr_assert_not_null(strstr(r->out, needle),
	                   "`%s`: stdout lacks \"%s\"\n--- stdout:\n%s--- stderr:\n%s", r->cmdline,
	                   needle, r->out, r->err);
}

/* Exit 0, nothing on stderr. */
static void expect_ok(const run *r)
{
	expect_code(r, 0);
	cr_assert_str_empty(r->err, "`%s`: exit 0 but stderr says:\n%s", r->cmdline, r->err);
}

/* Exit 1 (the server refused), the status on stdout, nothing on stderr. */
static void expect_refused(const run *r, const char *status)
{
	expect_code(r, 1);
	expect_out(r, status);
	cr_assert_str_empty(r->err, "`%s`: a refusal belongs on stdout, stderr says:\n%s",
	                    r->cmdline, r->err);
}

/* The hex id after `tag` in s (e.g. "hold=0x"). */
static uint64_t hex_after(const run *r, const char *tag)
{
	const char *p = strstr(r->out, tag);
	cr_assert_not_null(p, "`%s`: no \"%s\" in:\n%s", r->cmdline, tag, r->out);
	char *end;
	errno = 0;
	uint64_t v = strtoull(p + strlen(tag), &end, 16);
	cr_assert(errno == 0 && end != p + strlen(tag), "`%s`: bad id after \"%s\"", r->cmdline,
	          tag);
	return v;
}

/* ---- JSON output ----------------------------------------------------------
 * Checked by tests/support/json_check (RFC 8259, no extensions): "one valid
 * JSON object per reply", and the value at a dotted path ("avail.free"). */

/* The CLI printed exactly one valid JSON object on stdout, ending in a
 * newline. Returns where path's value starts (NULL: absent). */
static const char *json_at(const run *r, const char *path)
{
	const char *found = NULL;
	const char *p = tjson_ws(r->out);
	cr_assert_eq(*p, '{', "`%s`: --json output is not an object:\n%s", r->cmdline, r->out);
	const char *end = tjson_value(p, path, &found);
	cr_assert_not_null(end, "`%s`: --json output is not valid JSON:\n%s", r->cmdline, r->out);
	cr_assert_str_eq(end, "\n", "`%s`: --json output has more than one value:\n%s", r->cmdline,
	                 r->out);
	return found;
}

static uint64_t json_u64(const run *r, const char *path)
{
	const char *v = json_at(r, path);
	cr_assert_not_null(v, "`%s`: no \"%s\" in:\n%s", r->cmdline, path, r->out);
	cr_assert(*v >= '0' && *v <= '9', "`%s`: \"%s\" is not a number:\n%s", r->cmdline, path,
	          r->out);
	return strtoull(v, NULL, 10);
}

/* The raw text of the value at path equals want (e.g. "[20,20]", "\"ok\""). */
static void expect_json(const run *r, const char *path, const char *want)
{
	const char *v = json_at(r, path);
	cr_assert_not_null(v, "`%s`: no \"%s\" in:\n%s", r->cmdline, path, r->out);
	const char *found = NULL;
	const char *end = tjson_value(v, NULL, &found);
	cr_assert_not_null(end);
	size_t n = (size_t)(end - v);
	cr_assert(strlen(want) == n && strncmp(v, want, n) == 0,
	          "`%s`: \"%s\" is %.*s, expected %s", r->cmdline, path, (int)n, v, want);
}

/* The hold id of a --json reply, from the exact hex form. */
static uint64_t json_claim(const run *r)
{
	const char *v = json_at(r, "claim_hex");
	cr_assert_not_null(v, "`%s`: no claim_hex in:\n%s", r->cmdline, r->out);
	cr_assert_eq(strncmp(v, "\"0x", 3), 0);
	return strtoull(v + 3, NULL, 16);
}

/* The JSON parser itself must be able to fail, or the checks above prove
 * nothing: a few broken documents are rejected. */
Test(cli, json_reader_rejects_broken_json)
{
	static const char *const bad[] = {"{\"a\":1,}\n",     "{\"a\" 1}\n",    "{\"a\":01}\n",
	                                  "{\"a\":\"x\n",     "{\"a\":[1,2}\n", "{\"a\":tru}\n",
	                                  "{\"a\":\"\\q\"}\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *found = NULL;
		cr_expect_null(tjson_value(bad[i], "a", &found), "accepted %s", bad[i]);
	}
	const char *found = NULL;
	const char *good = "{\"a\":{\"b\":[1,{\"c\":2}],\"c\":-3.5e2},\"c\":\"\\u00e9\"}";
	cr_assert_not_null(tjson_value(good, "a.c", &found));
	cr_assert_not_null(found);
	cr_assert_eq(strncmp(found, "-3.5e2", 6), 0);
}

/* ---- The server process -------------------------------------------------- */

#define SRV_READY_MS 20000 /* start-up under ASan on a slow disk */

static tsrv g_srv; /* the server of this test (one test per process) */

static void dir_setup(void)
{
	int rc = tmpdir_make(g_dir, sizeof(g_dir), "bo-cli-test");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	/* Until a server runs: a closed port, so that a command that gets as
	 * far as the network fails loudly (exit 3) instead of reaching a
	 * server that happens to listen on the default port. */
	snprintf(g_url, sizeof(g_url), "tcp://127.0.0.1:%d", closed_port());
}

static void dir_teardown(void)
{
	tsrv_kill(&g_srv);
	if (g_dir[0] && !getenv("CLI_TEST_KEEP"))
		tmpdir_remove(g_dir);
}

/* The server answers the CLI (a query for an event that does not exist:
 * exit 1, not_found). */
static int srv_ready(void *ctx)
{
	(void)ctx;
	snprintf(g_url, sizeof(g_url), "%s", g_srv.tcp_url); /* this run's address */
	run r;
	CLI(&r, "--timeout", "1000", "status", "1");
	return r.code == 1 && strstr(r.out, "not_found") != NULL;
}

/* Starts a server (with args, NULL-terminated, or none) on a free port and
 * waits until the CLI gets an answer from it; its scratch directory is the
 * test's (g_dir). */
static void srv_setup_args(const char *const *args)
{
	const char *bin = getenv("BOXOFFICE_SERVER");
	cr_assert(bin && *bin,
	          "BOXOFFICE_SERVER is not set: run this test through meson, or set it to the "
	          "boxoffice-server binary");
	int rc = tsrv_init(&g_srv, "bo-cli-test", 0);
	cr_assert_eq(rc, 0, "server directory: %s", strerror(-rc));
	snprintf(g_dir, sizeof(g_dir), "%s", g_srv.dir);
	for (; args && *args; args++)
		cr_assert_eq(tsrv_add_arg(&g_srv, *args), 0);
	rc = tsrv_start(&g_srv, bin, SRV_READY_MS, srv_ready, NULL);
	if (rc != 0) {
		tproc_dump_tail(g_srv.log_path, 4096);
		/* A failed init skips the fini: clean up here. */
		dir_teardown();
		cr_assert_fail("server did not become ready: %s",
		               rc == -ECHILD      ? "it exited"
		               : rc == -ETIMEDOUT ? "no answer within the deadline"
		                                  : strerror(-rc));
	}
}

static void srv_setup(void) { srv_setup_args(NULL); }

/* Every event admits one mutating command per second. */
static void srv_setup_throttled(void)
{
	srv_setup_args((const char *const[]){"--throttle-rate", "1", "--throttle-burst", "1", NULL});
}

/* SIGTERM: the server exits 0 within 10 s, its log holds no sanitizer
 * report and no error line. Ends every server test: the CLI traffic must
 * not have hurt the server. */
static void srv_stop_clean(void)
{
	cr_assert_gt(g_srv.pid, 0);
	int st = 0;
	int rc = tsrv_signal_wait(&g_srv, SIGTERM, 10000, &st, NULL);
	if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tproc_dump_tail(g_srv.log_path, 4096);
	cr_assert_eq(rc, 0, "server did not exit within 10 s of SIGTERM");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server ended with wait status 0x%x", st);
	const char *problem = tsrv_log_problem(g_srv.log_path);
	if (problem != NULL)
		tproc_dump_tail(g_srv.log_path, 4096);
	cr_assert_null(problem, "server log: %s", problem);
}

TestSuite(cli, .timeout = 120);

/* ---- Availability checks ------------------------------------------------- */

/* status --json of event ev: the counts per state, free seats per category
 * and pool free places are exactly these (arrays as JSON text). */
static void expect_avail(const char *ev, uint64_t free_n, uint64_t held, uint64_t booked,
                         uint64_t blocked, const char *free_by_category, const char *pool_free)
{
	run r;
	CLI(&r, "--json", "status", ev);
	expect_ok(&r);
	expect_json(&r, "ok", "true");
	expect_json(&r, "status", "\"ok\"");
	cr_assert_eq(json_u64(&r, "event"), strtoull(ev, NULL, 0));
	cr_expect_eq(json_u64(&r, "avail.free"), free_n, "free: %s", r.out);
	cr_expect_eq(json_u64(&r, "avail.held"), held, "held: %s", r.out);
	cr_expect_eq(json_u64(&r, "avail.booked"), booked, "booked: %s", r.out);
	cr_expect_eq(json_u64(&r, "avail.blocked"), blocked, "blocked: %s", r.out);
	expect_json(&r, "avail.free_by_category", free_by_category);
	expect_json(&r, "avail.pool_free", pool_free);
}

/* status ev --seats LIST prints exactly `want` (one line per seat). */
static void expect_seats(const char *ev, const char *list, const char *want)
{
	run r;
	CLI(&r, "status", ev, "--seats", list);
	expect_ok(&r);
	cr_assert_str_eq(r.out, want, "`%s`", r.cmdline);
}

/* ---- 1. create-event and status ------------------------------------------ */

Test(cli, create_with_flags_then_status, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	/* 4 rows of 10 in 2 categories: rows 0-1 category 0, rows 2-3
	 * category 1 (best first, equal bands). */
	CLI(&r, "create-event", "42", "--rows", "4", "--seats-per-row", "10", "--categories", "2",
	    "--pool", "30", "--pool", "7");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "created event 42: 40 seats in 4 rows, 2 categories, 2 pools\n");

	CLI(&r, "status", "42");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "event 42 at seq 1: 40 seats: 40 free, 0 held, 0 booked, 0 blocked\n"
	                        "  category 0: 20 free\n"
	                        "  category 1: 20 free\n"
	                        "  pool 0: 30 of 30 free\n"
	                        "  pool 1: 7 of 7 free\n");
	expect_avail("42", 40, 0, 0, 0, "[20,20]", "[30,7]");
	CLI(&r, "--json", "status", "0x2a"); /* the same event, by its hex id */
	expect_ok(&r);
	expect_json(&r, "avail.pool_capacity", "[30,7]");
	expect_json(&r, "op", "\"query_avail\"");

	/* Pools only: no seats at all. */
	CLI(&r, "create-event", "43", "--pool", "100");
	expect_ok(&r);
	expect_avail("43", 0, 0, 0, 0, "[0]", "[100]");

	/* Where the category bands lie: the best seat of category 1 is in
	 * row 2 (seats 20-29). */
	CLI(&r, "--json", "hold", "42", "--best", "1", "--category", "1");
	expect_ok(&r);
	const char *s = json_at(&r, "seats");
	cr_assert_eq(*s, '[');
	uint64_t first = strtoull(s + 1, NULL, 10);
	cr_assert(first >= 20 && first < 30, "best seat of category 1 is %" PRIu64, first);
	srv_stop_clean();
}

/* clang-format off */
static const char *const map_text =
        "# a small hall\n"
        "categories 3          # category 2 is unused: still counted\n"
        "row 1 8 0             # the best row\n"
        "rows 2 2 6 1\n"
        "\n"
        "pool 25\n"
        "pool 10\t# balcony standing\n";
/* clang-format on */

Test(cli, create_with_map_file_then_status, .init = srv_setup, .fini = dir_teardown)
{
	char map[PATH_MAX + 16];
	snprintf(map, sizeof(map), "%s/hall.map", g_dir);
	write_text(map, map_text);
	run r;
	CLI(&r, "create-event", "7", "--map", map);
	expect_ok(&r);
	cr_assert_str_eq(r.out, "created event 7: 20 seats in 3 rows, 3 categories, 2 pools\n");
	CLI(&r, "status", "7");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "event 7 at seq 1: 20 seats: 20 free, 0 held, 0 booked, 0 blocked\n"
	                        "  category 0: 8 free\n"
	                        "  category 1: 12 free\n"
	                        "  category 2: 0 free\n"
	                        "  pool 0: 25 of 25 free\n"
	                        "  pool 1: 10 of 10 free\n");
	expect_avail("7", 20, 0, 0, 0, "[8,12,0]", "[25,10]");

	/* Seats 8-13 are the first row of category 1: best 3 are adjacent
	 * there, in one row. */
	CLI(&r, "--json", "hold", "7", "--best", "3", "--category", "1");
	expect_ok(&r);
	const char *s = json_at(&r, "seats");
	unsigned a, b, c;
	cr_assert_eq(sscanf(s, "[%u,%u,%u]", &a, &b, &c), 3, "seats: %s", r.out);
	cr_assert(a >= 8 && c <= 13 && b == a + 1 && c == b + 1, "best 3 of category 1: %u %u %u",
	          a, b, c);
	expect_avail("7", 17, 3, 0, 0, "[8,9,0]", "[25,10]");

	/* A map with a category beyond "categories" is refused before any
	 * network traffic. */
	write_text(map, "categories 1\nrow 0 5 1\n");
	CLI(&r, "--timeout", "3000", "create-event", "8", "--map", map);
	expect_code(&r, 2);
	cr_assert_lt(r.took_ms, 2000);
	srv_stop_clean();
}

/* ---- 2. The life of holds and bookings ------------------------------------ */

Test(cli, hold_extend_confirm_cancel_release_block, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	char id[32], id_b[32], id_c[32];
	CLI(&r, "create-event", "42", "--rows", "4", "--seats-per-row", "10", "--categories", "2",
	    "--pool", "30");
	expect_ok(&r);

	/* Explicit seats. One --client throughout: a hold is its client's. */
	CLI(&r, "--client", "5", "hold", "42", "--seats", "3,4", "--ttl-ms", "60000");
	expect_ok(&r);
	expect_out(&r, "held 2 seats [3 4] hold=0x");
	uint64_t hold_a = hex_after(&r, "hold=0x");
	cr_assert(strstr(r.out, "expires in 60s") || strstr(r.out, "expires in 59s"), "%s", r.out);
	expect_avail("42", 38, 2, 0, 0, "[18,20]", "[30]");
	expect_seats("42", "3-5", "seat 3: held\nseat 4: held\nseat 5: free\n");

	/* Best available in category 1: 4 adjacent seats in one row of 20-39. */
	CLI(&r, "--json", "--client", "5", "hold", "42", "--best", "4", "--category", "1");
	expect_ok(&r);
	expect_json(&r, "op", "\"hold_best\"");
	expect_json(&r, "quantity", "4");
	uint64_t hold_b = json_claim(&r);
	cr_assert_eq(json_u64(&r, "claim"), hold_b, "claim and claim_hex disagree: %s", r.out);
	unsigned s0, s1, s2, s3;
	cr_assert_eq(sscanf(json_at(&r, "seats"), "[%u,%u,%u,%u]", &s0, &s1, &s2, &s3), 4);
	cr_assert(s0 >= 20 && s3 <= 39 && s0 / 10 == s3 / 10 && s1 == s0 + 1 && s2 == s1 + 1 &&
	                  s3 == s2 + 1,
	          "best 4 of category 1: %s", r.out);
	cr_assert_neq(hold_b, hold_a);
	expect_avail("42", 34, 6, 0, 0, "[18,16]", "[30]");

	/* Pool places. */
	CLI(&r, "--client", "5", "hold", "42", "--pool", "0", "--quantity", "5");
	expect_ok(&r);
	expect_out(&r, "held 5 from pool 0 hold=0x");
	uint64_t hold_c = hex_after(&r, "hold=0x");
	cr_assert(hold_c != hold_a && hold_c != hold_b);
	expect_avail("42", 34, 6, 0, 0, "[18,16]", "[25]");

	/* Extend A: the new expiry is the new TTL from now (same host clock). */
	snprintf(id, sizeof(id), "0x%" PRIx64, hold_a);
	int64_t before = wall_ms();
	CLI(&r, "--json", "--client", "5", "extend", "42", id, "--ttl-ms", "180000");
	int64_t after = wall_ms();
	expect_ok(&r);
	cr_assert_eq(json_claim(&r), hold_a);
	int64_t exp = (int64_t)json_u64(&r, "expires_at_ms");
	cr_assert(exp >= before + 180000 - 1000 && exp <= after + 180000 + 1000,
	          "extend: expires_at_ms %" PRId64 " is not now + 180 s (%" PRId64 "..%" PRId64 ")",
	          exp, before, after);
	CLI(&r, "--client", "5", "extend", "42", id, "--ttl-ms", "120000");
	expect_ok(&r);
	char want[128];
	snprintf(want, sizeof(want), "extended hold=0x%" PRIx64 " expires in ", hold_a);
	expect_out(&r, want);
	expect_avail("42", 34, 6, 0, 0, "[18,16]", "[25]"); /* extend changes no seat */

	/* Confirm A: booked, same id. */
	CLI(&r, "--client", "5", "confirm", "42", id, "--payref", "pi_3Nx8Yq2eZvKYlo2C");
	expect_ok(&r);
	snprintf(want, sizeof(want), "confirmed booking=0x%" PRIx64 " (2 tickets) seats [3 4]\n",
	         hold_a);
	cr_assert_str_eq(r.out, want);
	expect_avail("42", 34, 4, 2, 0, "[18,16]", "[25]");
	expect_seats("42", "3,4", "seat 3: booked\nseat 4: booked\n");

	/* Cancel the booking: its seats are free again. */
	CLI(&r, "--client", "5", "cancel", "42", id);
	expect_ok(&r);
	snprintf(want, sizeof(want), "cancelled booking=0x%" PRIx64 " (2 tickets)\n", hold_a);
	cr_assert_str_eq(r.out, want);
	expect_avail("42", 36, 4, 0, 0, "[20,16]", "[25]");
	expect_seats("42", "3,4", "seat 3: free\nseat 4: free\n");

	/* Release B. */
	snprintf(id_b, sizeof(id_b), "%" PRIu64, hold_b); /* decimal this time */
	CLI(&r, "--client", "5", "release", "42", id_b);
	expect_ok(&r);
	snprintf(want, sizeof(want), "released hold=0x%" PRIx64 " (4 tickets)\n", hold_b);
	cr_assert_str_eq(r.out, want);
	expect_avail("42", 40, 0, 0, 0, "[20,20]", "[25]");

	/* Confirm and cancel the pool hold C. */
	snprintf(id_c, sizeof(id_c), "0x%" PRIx64, hold_c);
	CLI(&r, "--client", "5", "confirm", "42", id_c, "--payref", "ref-c");
	expect_ok(&r);
	snprintf(want, sizeof(want), "confirmed booking=0x%" PRIx64 " (5 tickets)\n", hold_c);
	cr_assert_str_eq(r.out, want);
	expect_avail("42", 40, 0, 0, 0, "[20,20]", "[25]");
	CLI(&r, "--client", "5", "cancel", "42", id_c);
	expect_ok(&r);
	expect_avail("42", 40, 0, 0, 0, "[20,20]", "[30]");

	/* Block 0 and 1: off sale, and a hold on them is refused. */
	CLI(&r, "block", "42", "--seats", "0-1");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "blocked 2 seats [0 1]\n");
	expect_avail("42", 38, 0, 0, 2, "[18,20]", "[30]");
	expect_seats("42", "0,1,2", "seat 0: blocked\nseat 1: blocked\nseat 2: free\n");
	CLI(&r, "hold", "42", "--seats", "2,1");
	expect_refused(&r, "taken");
	expect_out(&r, "[seat 1]");
	CLI(&r, "unblock", "42", "--seats", "1,0");
	expect_ok(&r);
	cr_assert_str_eq(r.out, "unblocked 2 seats [1 0]\n");
	expect_avail("42", 40, 0, 0, 0, "[20,20]", "[30]");
	CLI(&r, "unblock", "42", "--seats", "0");
	expect_refused(&r, "not_blocked");
	expect_out(&r, "[seat 0]");
	srv_stop_clean();
}

/* ---- 3. Refusals ------------------------------------------------------------ */

Test(cli, refusals_exit_1_and_change_nothing, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "create-event", "42", "--rows", "2", "--seats-per-row", "10");
	expect_ok(&r);
	CLI(&r, "--client", "1", "hold", "42", "--seats", "5");
	expect_ok(&r);

	/* Another client wants 6 and 5: all or nothing, 5 is taken. */
	CLI(&r, "--client", "2", "hold", "42", "--seats", "6,5");
	expect_refused(&r, "taken");
	expect_out(&r, "[seat 5]");
	CLI(&r, "--json", "--client", "2", "hold", "42", "--seats", "6,5");
	expect_code(&r, 1);
	expect_json(&r, "ok", "false");
	expect_json(&r, "status", "\"taken\"");
	expect_json(&r, "detail", "\"seat_unavailable\"");
	expect_json(&r, "seats", "[5]");
	expect_avail("42", 19, 1, 0, 0, "[19]", "[]");
	expect_seats("42", "5,6", "seat 5: held\nseat 6: free\n");

	/* Unknown event: for a query and for a command. */
	CLI(&r, "status", "777");
	expect_refused(&r, "not_found");
	CLI(&r, "hold", "777", "--seats", "1");
	expect_refused(&r, "not_found");
	CLI(&r, "--json", "status", "777");
	expect_code(&r, 1);
	expect_json(&r, "status", "\"not_found\"");
	expect_json(&r, "detail", "\"no_event\"");
	/* Unknown hold. */
	CLI(&r, "release", "42", "0x1234");
	expect_refused(&r, "not_found");
	/* Creating an event twice. */
	CLI(&r, "create-event", "42", "--rows", "1", "--seats-per-row", "3");
	expect_refused(&r, "event_exists");
	/* Out of range for the server, not for the CLI's parser. */
	CLI(&r, "hold", "42", "--best", "17", "--category", "0");
	expect_refused(&r, "invalid");
	CLI(&r, "hold", "42", "--seats", "20");
	expect_refused(&r, "seat_range");
	CLI(&r, "hold", "42", "--seats", "1", "--ttl-ms", "10");
	expect_refused(&r, "ttl_range");
	expect_avail("42", 19, 1, 0, 0, "[19]", "[]");
	srv_stop_clean();
}

/* A hold is its client's: another --client is told the hold does not exist
 * (schemas/protocol.md §3), and only --operator releases or cancels it. */
Test(cli, another_client_cannot_touch_a_hold_but_an_operator_can, .init = srv_setup,
     .fini = dir_teardown)
{
	run r;
	char id[32], id2[32];
	CLI(&r, "create-event", "42", "--rows", "1", "--seats-per-row", "10");
	expect_ok(&r);
	CLI(&r, "--client", "1", "hold", "42", "--seats", "5");
	expect_ok(&r);
	snprintf(id, sizeof(id), "0x%" PRIx64, hex_after(&r, "hold=0x"));
	CLI(&r, "--client", "1", "hold", "42", "--seats", "6");
	expect_ok(&r);
	snprintf(id2, sizeof(id2), "0x%" PRIx64, hex_after(&r, "hold=0x"));

	CLI(&r, "--json", "--client", "2", "release", "42", id);
	expect_code(&r, 1);
	expect_json(&r, "status", "\"not_found\"");
	expect_json(&r, "detail", "\"no_hold\"");
	CLI(&r, "--client", "2", "extend", "42", id);
	expect_refused(&r, "not_found");
	CLI(&r, "--client", "2", "confirm", "42", id, "--payref", "p");
	expect_refused(&r, "not_found");
	expect_seats("42", "5,6", "seat 5: held\nseat 6: held\n");
	/* An operator cannot extend or confirm: refused before the server. */
	CLI(&r, "--client", "2", "extend", "42", id, "--operator");
	expect_code(&r, 2);

	CLI(&r, "--client", "2", "release", "42", id, "--operator");
	expect_ok(&r);
	expect_seats("42", "5,6", "seat 5: free\nseat 6: held\n");

	/* A booking: only its client or an operator cancels it. */
	CLI(&r, "--client", "1", "confirm", "42", id2, "--payref", "p");
	expect_ok(&r);
	CLI(&r, "--json", "--client", "2", "cancel", "42", id2);
	expect_code(&r, 1);
	expect_json(&r, "detail", "\"no_booking\"");
	expect_seats("42", "6", "seat 6: booked\n");
	CLI(&r, "--client", "3", "cancel", "42", id2, "--operator");
	expect_ok(&r);
	expect_seats("42", "6", "seat 6: free\n");
	srv_stop_clean();
}

/* ---- 4. Idempotent retries ------------------------------------------------ */

Test(cli, same_client_and_request_is_answered_once, .init = srv_setup, .fini = dir_teardown)
{
	char map[PATH_MAX + 16];
	snprintf(map, sizeof(map), "%s/hall.map", g_dir);
	write_text(map, map_text);
	run r;
	CLI(&r, "--client", "5", "--request", "1", "create-event", "9", "--map", map);
	expect_ok(&r);
	cr_assert_null(strstr(r.out, "repeated"), "a first answer is not a repeat: %s", r.out);
	CLI(&r, "--client", "5", "--request", "1", "create-event", "9", "--map", map);
	expect_ok(&r);
	expect_out(&r, "(repeated request: first answer)");

	CLI(&r, "--client", "77", "--request", "1", "hold", "9", "--seats", "8,9");
	expect_ok(&r);
	uint64_t hold = hex_after(&r, "hold=0x");
	CLI(&r, "--client", "77", "--request", "1", "hold", "9", "--seats", "8,9");
	expect_ok(&r);
	cr_assert_eq(hex_after(&r, "hold=0x"), hold, "a repeat got another hold: %s", r.out);
	expect_out(&r, "(repeated request: first answer)");
	/* --json after the command is accepted too. */
	CLI(&r, "--client", "77", "--request", "1", "hold", "9", "--seats", "8,9", "--json");
	expect_ok(&r);
	expect_json(&r, "replayed", "true");
	cr_assert_eq(json_claim(&r), hold);
	/* So are --client and --request (as scripts/run's examples write
	 * them): the same pair, so the same first answer. */
	CLI(&r, "hold", "9", "--seats", "8,9", "--client", "77", "--request", "1");
	expect_ok(&r);
	cr_assert_eq(hex_after(&r, "hold=0x"), hold, "options after the command: %s", r.out);
	expect_out(&r, "(repeated request: first answer)");
	expect_avail("9", 18, 2, 0, 0, "[8,10,0]", "[25,10]");

	/* Release it, then repeat the hold: still the first answer, and the
	 * seats stay free. */
	char id[32];
	snprintf(id, sizeof(id), "0x%" PRIx64, hold);
	CLI(&r, "--client", "77", "--request", "2", "release", "9", id);
	expect_ok(&r);
	CLI(&r, "--client", "77", "--request", "1", "hold", "9", "--seats", "8,9");
	expect_ok(&r);
	cr_assert_eq(hex_after(&r, "hold=0x"), hold);
	expect_out(&r, "(repeated request: first answer)");
	expect_avail("9", 20, 0, 0, 0, "[8,12,0]", "[25,10]");

	/* The same pair with other content: conflict, nothing held. */
	CLI(&r, "--client", "77", "--request", "1", "hold", "9", "--seats", "10");
	expect_refused(&r, "conflict");
	expect_avail("9", 20, 0, 0, 0, "[8,12,0]", "[25,10]");
	srv_stop_clean();
}

/* ---- 5. Usage errors -------------------------------------------------------- */

typedef struct usage_case {
	const char *args[12];
	const char *says; /* a fragment of the stderr message */
} usage_case;

Test(cli, usage_errors_exit_2_without_network, .init = dir_setup, .fini = dir_teardown)
{
	char bad_map[PATH_MAX + 16], missing[PATH_MAX + 16];
	snprintf(bad_map, sizeof(bad_map), "%s/bad.map", g_dir);
	snprintf(missing, sizeof(missing), "%s/missing.map", g_dir);
	write_text(bad_map, "row 0 10 0\nseats everywhere\n");
	char payref33[BO_PAYREF_LEN_MAX + 2];
	memset(payref33, 'x', BO_PAYREF_LEN_MAX + 1);
	payref33[BO_PAYREF_LEN_MAX + 1] = '\0';
	char seats17[32];
	snprintf(seats17, sizeof(seats17), "0-%u", BO_SEATS_PER_HOLD_MAX);
	const usage_case cases[] = {
	        {{"frob", "42"}, "unknown command"},
	        {{NULL}, "no command given"},
	        {{"--frob", "1", "status", "1"}, "unknown option"},
	        {{"hold"}, "event ID"},
	        {{"hold", "42"}, "exactly one of"},
	        {{"hold", "42", "--seats", seats17}, "at most"},
	        {{"hold", "42", "--seats", "1,,2"}, "empty entry"},
	        {{"hold", "42", "--seats", "5-3"}, "backwards"},
	        {{"hold", "42", "--seats", "-3"}, "expected a number"},
	        {{"hold", "42", "--seats"}, "needs a value"},
	        {{"hold", "42", "--best", "x", "--category", "1"}, "expected a number"},
	        {{"hold", "42", "--best", "2"}, "--category"},
	        {{"hold", "42", "--pool", "0"}, "--quantity"},
	        {{"hold", "42", "--seats", "1", "--ttl-ms", "1e3"}, "expected a number"},
	        {{"hold", "4x2", "--seats", "1"}, "expected a number"},
	        {{"status", "abc"}, "expected a number"},
	        {{"status", "42", "--bogus", "1"}, "unknown option"},
	        {{"status", "42", "43"}, "expected"},
	        {{"status", "18446744073709551616"}, "expected a number"},
	        {{"--timeout", "abc", "status", "42"}, "expected a number"},
	        {{"--timeout", "0", "status", "42"}, "at least 1 ms"},
	        {{"extend", "42"}, "HOLD"},
	        {{"confirm", "42", "1"}, "--payref"},
	        {{"confirm", "42", "1", "--payref", payref33}, "at most"},
	        {{"block", "42"}, "--seats"},
	        {{"create-event", "9"}, "--rows"},
	        {{"create-event", "9", "--rows", "2"}, "go together"},
	        {{"create-event", "9", "--rows", "2", "--seats-per-row", "5000"}, "larger than"},
	        {{"create-event", "9", "--rows", "1", "--seats-per-row", "5", "--categories", "2"},
	         "more categories than rows"},
	        {{"create-event", "9", "--map", missing}, "missing.map"},
	        {{"create-event", "9", "--map", bad_map}, ":2:"},
	        {{"create-event", "9", "--map", bad_map, "--pool", "3"}, "cannot be combined"},
	        {{"--url", "foo://nowhere", "status", "1"}, "not an address"},
	        {{"--no-retry", "--url", "tcp://127.0.0.1:1,tcp://127.0.0.1:2", "status", "1"},
	         "--no-retry asks one server"},
	        {{"status", "1", "--no-retry", "--server", "tcp://127.0.0.1:1", "--server",
	          "tcp://127.0.0.1:2"},
	         "--no-retry asks one server"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[16] = {"--timeout", "5000"};
		int n = 2;
		for (int k = 0; cases[i].args[k]; k++)
			args[n++] = cases[i].args[k];
		args[n] = NULL;
		run r;
		cli_exec(&r, true, args);
		expect_code(&r, 2);
		cr_expect_str_empty(r.out, "`%s`: stdout should be empty:\n%s", r.cmdline, r.out);
		cr_expect_eq(strncmp(r.err, "boxoffice-cli: ", 15), 0, "`%s`: stderr:\n%s",
		             r.cmdline, r.err);
		cr_expect_not_null(strstr(r.err, cases[i].says), "`%s`: stderr lacks \"%s\":\n%s",
		                   r.cmdline, cases[i].says, r.err);
		/* Any connection attempt would wait out the 5 s timeout. */
		cr_expect_lt(r.took_ms, 3000, "`%s` took %" PRId64 " ms: did it use the network?",
		             r.cmdline, r.took_ms);
	}

	/* The limit is exactly BO_SEATS_PER_HOLD_MAX: 16 seats pass the parser
	 * (and then find no server: exit 3, not 2). */
	char seats16[32];
	snprintf(seats16, sizeof(seats16), "0-%u", BO_SEATS_PER_HOLD_MAX - 1);
	run r;
	CLI(&r, "--timeout", "200", "hold", "42", "--seats", seats16);
	expect_code(&r, 3);
}

/* `help` with an unknown command name is a usage error like any other: exit
 * 2 and a message on stderr (not only the general usage on stdout). */
Test(cli, help_of_unknown_command_says_why, .init = dir_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "help", "frob");
	expect_code(&r, 2);
	cr_expect_not_null(strstr(r.err, "frob"),
	                   "`%s` exits 2 but says nothing on stderr about 'frob':\n%s", r.cmdline,
	                   r.err);
}

/* ---- 6. No answer ------------------------------------------------------------ */

Test(cli, no_server_exits_3_within_timeout, .init = dir_setup, .fini = dir_teardown)
{
	run r;
	/* g_url is a closed port. A query: */
	CLI(&r, "--timeout", "400", "status", "42");
	expect_code(&r, 3);
	cr_assert_str_empty(r.out);
	cr_assert_not_null(strstr(r.err, "no answer from"), "stderr:\n%s", r.err);
	cr_assert_not_null(strstr(r.err, g_url), "the message should name the address:\n%s", r.err);
	cr_assert_lt(r.took_ms, 400 + 1500, "took %" PRId64 " ms for a 400 ms timeout", r.took_ms);

	/* A mutating command: the message says how to retry safely. */
	CLI(&r, "--timeout", "300", "--client", "99", "hold", "42", "--seats", "1");
	expect_code(&r, 3);
	cr_assert_lt(r.took_ms, 300 + 1500);
	cr_assert_not_null(strstr(r.err, "retry with --client 99 --request "), "stderr:\n%s",
	                   r.err);

	/* --json: one JSON object on stdout as well. */
	CLI(&r, "--json", "--timeout", "300", "status", "42");
	expect_code(&r, 3);
	expect_json(&r, "ok", "false");
	expect_json(&r, "status", "\"no_answer\"");
	cr_assert_lt(r.took_ms, 300 + 1500);
}

Test(cli, stopped_server_exits_3_and_retry_holds_once, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "create-event", "42", "--rows", "2", "--seats-per-row", "10");
	expect_ok(&r);
	/* While stopped, the kernel still completes the TCP handshake but
	 * nothing answers: the CLI must give up at its timeout, not hang. */
	cr_assert_eq(kill(g_srv.pid, SIGSTOP), 0);
	CLI(&r, "--timeout", "500", "hold", "42", "--seats", "3");
	kill(g_srv.pid, SIGCONT);
	expect_code(&r, 3);
	cr_assert_str_empty(r.out);
	cr_assert_lt(r.took_ms, 500 + 1500, "took %" PRId64 " ms for a 500 ms timeout", r.took_ms);
	const char *hint = strstr(r.err, "retry with --client ");
	cr_assert_not_null(hint, "no retry hint:\n%s", r.err);
	uint64_t client, request;
	cr_assert_eq(sscanf(hint, "retry with --client %" SCNu64 " --request %" SCNu64, &client,
	                    &request),
	             2, "hint: %s", hint);
	/* The command may or may not have been applied once the server runs
	 * again: the retry with the printed ids must leave exactly one hold. */
	char cs[24], rs[24];
	snprintf(cs, sizeof(cs), "%" PRIu64, client);
	snprintf(rs, sizeof(rs), "%" PRIu64, request);
	CLI(&r, "--client", cs, "--request", rs, "hold", "42", "--seats", "3");
	expect_ok(&r);
	expect_out(&r, "held 1 seats [3] hold=0x");
	CLI(&r, "--client", cs, "--request", rs, "hold", "42", "--seats", "3");
	expect_ok(&r);
	expect_out(&r, "(repeated request: first answer)");
	expect_avail("42", 19, 1, 0, 0, "[19]", "[]");
	srv_stop_clean();
}

/* ---- 7. Help ------------------------------------------------------------------ */

Test(cli, help_exits_0_with_usage, .init = dir_setup, .fini = dir_teardown)
{
	static const char *const cmds[] = {"create-event", "hold",  "extend",  "release", "confirm",
	                                   "cancel",       "block", "unblock", "status"};
	run r;
	static const char *const tool[][2] = {{"--help", NULL}, {"-h", NULL}, {"help", NULL}};
	for (size_t i = 0; i < 3; i++) {
		cli_exec(&r, false, tool[i]);
		expect_ok(&r);
		cr_assert_eq(strncmp(r.out, "usage: boxoffice-cli [OPTIONS] COMMAND", 38), 0,
		             "`%s`:\n%s", r.cmdline, r.out);
		for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
			cr_expect_not_null(strstr(r.out, cmds[c]), "`%s` does not list %s",
			                   r.cmdline, cmds[c]);
	}
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		char head[64];
		/* block and unblock share one text, which names both. */
		snprintf(head, sizeof(head), "boxoffice-cli %s ID", cmds[c]);
		const char *forms[][4] = {{cmds[c], "--help", NULL},
		                          {cmds[c], "-h", NULL},
		                          {"help", cmds[c], NULL},
		                          /* help wins over everything else, and
		                           * is answered without the network */
		                          {"--timeout", "5000", cmds[c], "--help"}};
		for (size_t f = 0; f < 4; f++) {
			const char *args[6] = {forms[f][0], forms[f][1], forms[f][2], forms[f][3],
			                       NULL};
			cli_exec(&r, true, args);
			expect_ok(&r);
			cr_expect_eq(strncmp(r.out, "usage: boxoffice-cli ", 21), 0, "`%s`:\n%s",
			             r.cmdline, r.out);
			cr_expect_not_null(strstr(r.out, head), "`%s` lacks \"%s\":\n%s", r.cmdline,
			                   head, r.out);
			cr_expect_lt(r.took_ms, 3000);
		}
	}
}

/* ---- 8. Ids as documented --------------------------------------------------- */

/* The help says "IDs are decimal or 0x-hexadecimal" and seats are numbers
 * "e.g. 12,13,14": 010 is ten (or refused), never eight. Reading it as
 * octal would hold, block or query the wrong seat without a word. */
Test(cli, leading_zero_is_not_octal, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "create-event", "42", "--rows", "2", "--seats-per-row", "10");
	expect_ok(&r);
	CLI(&r, "status", "42", "--seats", "010");
	cr_expect(r.code == 2 || (r.code == 0 && strcmp(r.out, "seat 10: free\n") == 0),
	          "`%s` exited %d and printed \"%s\": seat 010 must be seat 10 or refused",
	          r.cmdline, r.code, r.out);
	CLI(&r, "status", "42", "--seats", "09");
	cr_expect(r.code == 2 || (r.code == 0 && strcmp(r.out, "seat 9: free\n") == 0),
	          "`%s` exited %d: \"%s\" (stderr: %s)", r.cmdline, r.code, r.out, r.err);
	srv_stop_clean();
}

/* "repeat the same --client and --request to retry a command safely": that
 * must hold for every value the options accept. 0 is a valid request id on
 * the wire; a CLI that silently replaces 0 by a random id turns a retry into
 * a second hold. Either the pair is honoured (the repeat is replayed) or 0
 * is refused (exit 2) - in both cases only one hold may exist. */
static uint64_t held_seats(const char *ev)
{
	run r;
	CLI(&r, "--json", "status", ev);
	expect_ok(&r);
	return json_u64(&r, "avail.held");
}

/* Sends the same best-2 hold twice with this --client/--request: one hold
 * of 2 seats at most may come of it. */
static void expect_one_hold(const char *client, const char *request)
{
	uint64_t before = held_seats("42");
	int ok = 0;
	for (int i = 0; i < 2; i++) {
		run r;
		CLI(&r, "--client", client, "--request", request, "hold", "42", "--best", "2",
		    "--category", "0");
		cr_expect(r.code == 0 || r.code == 2, "`%s` exited %d", r.cmdline, r.code);
		ok += r.code == 0;
	}
	uint64_t added = held_seats("42") - before;
	cr_expect_eq(added, ok ? 2u : 0u,
	             "--client %s --request %s sent twice: %" PRIu64 " seats held, expected %u "
	             "(the second must repeat the first answer)",
	             client, request, added, ok ? 2u : 0u);
}

Test(cli, explicit_zero_ids_are_honoured_or_refused, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "create-event", "42", "--rows", "2", "--seats-per-row", "10");
	expect_ok(&r);
	expect_one_hold("11", "1"); /* the ordinary case: the check can pass */
	expect_one_hold("11", "0");
	expect_one_hold("0", "5");
	srv_stop_clean();
}

/* ---- 9. JSON output is ASCII whatever the server's bytes -------------------- */

/* A stand-in server (nng REP in a thread) that answers one request with fixed
 * reply bytes: the real server never puts such bytes in a text, but a
 * server of another version or a proxy may, and --json must stay valid. */
typedef struct stub_srv {
	nng_socket sock;
	const uint8_t *reply;
	size_t len;
	int served; /* set by the thread before it ends */
} stub_srv;

static void *stub_main(void *arg)
{
	stub_srv *st = arg;
	nng_msg *m;
	if (nng_recvmsg(st->sock, &m, 0) != 0)
		return NULL;
	nng_msg_clear(m);
	if (nng_msg_append(m, st->reply, st->len) != 0 || nng_sendmsg(st->sock, m, 0) != 0) {
		nng_msg_free(m);
		return NULL;
	}
	st->served = 1;
	return NULL;
}

/* The rule of base/json.h: '"' and '\' escaped, 0x20..0x7e as they are,
 * every other byte (DEL, each byte of UTF-8 and of invalid UTF-8) \u00XX. */
Test(cli, json_escapes_every_byte_outside_printable_ascii, .init = dir_setup, .fini = dir_teardown)
{
	/* {"status": "invalid", "detail": "malformed",
	 *  "error": "bad <DEL> <c3 a9> <ff> \"\\"} as one message-level map. */
	static const uint8_t reply[] = {
	        0x83, 0xa6, 's',  't', 'a',  't',  'u', 's',  0xa7, 'i',  'n', 'v',  'a', 'l',
	        'i',  'd',  0xa6, 'd', 'e',  't',  'a', 'i',  'l',  0xa9, 'm', 'a',  'l', 'f',
	        'o',  'r',  'm',  'e', 'd',  0xa5, 'e', 'r',  'r',  'o',  'r', 0xad, 'b', 'a',
	        'd',  ' ',  0x7f, ' ', 0xc3, 0xa9, ' ', 0xff, ' ',  '"',  '\\'};
	stub_srv st = {.reply = reply, .len = sizeof(reply)};
	cr_assert_eq(nng_rep0_open(&st.sock), 0);
	/* Bounded: the thread ends even if the CLI never sends. */
	cr_assert_eq(nng_socket_set_ms(st.sock, NNG_OPT_RECVTIMEO, 20000), 0);
	nng_listener l;
	cr_assert_eq(nng_listen(st.sock, "tcp://127.0.0.1:0", &l, 0), 0);
	int port = 0;
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(g_url, sizeof(g_url), "tcp://127.0.0.1:%d", port);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, stub_main, &st), 0);
	run r;
	CLI(&r, "--json", "status", "1");
	pthread_join(th, NULL);
	nng_close(st.sock);
	cr_assert(st.served, "the CLI never asked the stand-in server");
	expect_code(&r, 1);
	expect_json(&r, "status", "\"invalid\"");
	expect_json(&r, "error", "\"bad \\u007f \\u00c3\\u00a9 \\u00ff \\\"\\\\\"");
	for (const char *p = r.out; *p; p++)
		cr_assert(((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f) || *p == '\n',
		          "byte 0x%02x in --json output:\n%s", (unsigned char)*p, r.out);
}

/* ---- 10. server-status -------------------------------------------------------- */

/* Occurrences of needle in s. */
static int count_of(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Sum of every number after "key": in s (the shards' durable_seq). */
static uint64_t sum_after(const char *s, const char *key)
{
	uint64_t sum = 0;
	for (const char *p = s; (p = strstr(p, key)) != NULL; p += strlen(key))
		sum += strtoull(p + strlen(key), NULL, 10);
	return sum;
}

/* A server without a database: the table names every shard "off" with the
 * reason, --json is one valid object with the documented keys, and the
 * durable sequences grow by the create_event and the hold just acknowledged. */
Test(cli, server_status_table_and_json, .init = srv_setup, .fini = dir_teardown)
{
	run r;
	CLI(&r, "server-status");
	expect_ok(&r);
	expect_out(&r, "2 shards");
	expect_out(&r, "shard      durable committer");
	cr_assert_eq(count_of(r.out, " off "), 2, "two shards off:\n%s", r.out);
	cr_assert_eq(count_of(r.out, "no database: journal not carried to PostgreSQL"), 2, "%s",
	             r.out);

	CLI(&r, "--json", "server-status");
	expect_ok(&r);
	expect_json(&r, "ok", "true");
	expect_json(&r, "status", "\"ok\"");
	cr_assert_not_null(json_at(&r, "version"));
	cr_assert_not_null(json_at(&r, "shards"));
	cr_assert_eq(count_of(r.out, "\"committer\":{\"state\":\"off\""), 2, "%s", r.out);
	cr_assert_eq(count_of(r.out, "\"applied_seq\":"), 2, "%s", r.out);
	uint64_t before = sum_after(r.out, "\"durable_seq\":");

	CLI(&r, "create-event", "42", "--rows", "1", "--seats-per-row", "10");
	expect_ok(&r);
	CLI(&r, "hold", "42", "--best", "2", "--category", "0");
	expect_ok(&r);
	CLI(&r, "server-status", "--json");
	expect_ok(&r);
	uint64_t after = sum_after(r.out, "\"durable_seq\":");
	cr_assert_geq(after, before + 2, "durable_seq %" PRIu64 " -> %" PRIu64 ":\n%s", before,
	              after, r.out);
	srv_stop_clean();
}

/* Runs `boxoffice-cli [--json] server-status` against a stand-in server
 * answering with reply[0..len). */
static void server_status_from_stub(run *r, bool json, const uint8_t *reply, size_t len)
{
	stub_srv st = {.reply = reply, .len = len};
	cr_assert_eq(nng_rep0_open(&st.sock), 0);
	cr_assert_eq(nng_socket_set_ms(st.sock, NNG_OPT_RECVTIMEO, 20000), 0);
	nng_listener l;
	cr_assert_eq(nng_listen(st.sock, "tcp://127.0.0.1:0", &l, 0), 0);
	int port = 0;
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(g_url, sizeof(g_url), "tcp://127.0.0.1:%d", port);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, stub_main, &st), 0);
	if (json)
		CLI(r, "--json", "server-status");
	else
		CLI(r, "server-status");
	pthread_join(th, NULL);
	nng_close(st.sock);
	cr_assert(st.served, "the CLI never asked the stand-in server");
}

/* A malformed reply is no answer (exit 3, why on stderr); a refusal is
 * exit 1 with the server's status and text. */
Test(cli, server_status_bad_reply_and_refusal, .init = dir_setup, .fini = dir_teardown)
{
	/* {"status": "ok", "version": "x", "shards": []} */
	static const uint8_t empty[] = {0x83, 0xa6, 's', 't', 'a', 't', 'u', 's', 0xa2, 'o',
	                                'k',  0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n',  0xa1,
	                                'x',  0xa6, 's', 'h', 'a', 'r', 'd', 's', 0x90};
	run r;
	server_status_from_stub(&r, false, empty, sizeof(empty));
	expect_code(&r, 3);
	cr_assert_not_null(strstr(r.err, "'shards' is empty"), "stderr:\n%s", r.err);
	cr_assert_str_empty(r.out);

	/* {"status": "busy", "detail": "none", "error": "stopping"} */
	static const uint8_t busy[] = {0x83, 0xa6, 's', 't',  'a', 't',  'u', 's', 0xa4, 'b',
	                               'u',  's',  'y', 0xa6, 'd', 'e',  't', 'a', 'i',  'l',
	                               0xa4, 'n',  'o', 'n',  'e', 0xa5, 'e', 'r', 'r',  'o',
	                               'r',  0xa8, 's', 't',  'o', 'p',  'p', 'i', 'n',  'g'};
	server_status_from_stub(&r, false, busy, sizeof(busy));
	expect_refused(&r, "server-status refused: busy: stopping");
	server_status_from_stub(&r, true, busy, sizeof(busy));
	expect_code(&r, 1);
	expect_json(&r, "ok", "false");
	expect_json(&r, "status", "\"busy\"");
	expect_json(&r, "error", "\"stopping\"");
}

/* The tool's help lists server-status; its own help exits 0; an argument it
 * does not take exits 2 without the network (g_url is a closed port). */
Test(cli, server_status_help_and_usage, .init = dir_setup, .fini = dir_teardown)
{
	run r;
	cli_exec(&r, false, (const char *const[]){"--help", NULL});
	expect_ok(&r);
	expect_out(&r, "  server-status    ");
	CLI(&r, "server-status", "--help");
	expect_ok(&r);
	cr_assert_eq(strncmp(r.out, "usage: boxoffice-cli server-status [--json]\n", 44), 0, "%s",
	             r.out);
	CLI(&r, "--timeout", "60000", "server-status", "1");
	expect_code(&r, 2);
	cr_assert_not_null(strstr(r.err, "expected no arguments"), "%s", r.err);
	cr_assert_lt(r.took_ms, 3000);
}

/* ---- 11. Throttled ------------------------------------------------------- */

Test(cli, throttled_says_when_to_retry, .init = srv_setup_throttled, .fini = dir_teardown)
{
	run r;
	CLI(&r, "create-event", "42", "--rows", "1", "--seats-per-row", "100");
	expect_ok(&r);
	/* The create took the event's one token. A hold within the second is
	 * refused; one that comes later (a very slow machine) takes the
	 * refilled token and the next is refused: try a few. */
	bool human = false, json = false;
	for (int i = 0; i < 20 && !(human && json); i++) {
		char seat[16];
		snprintf(seat, sizeof(seat), "%d", i);
		if (!human) {
			CLI(&r, "hold", "42", "--seats", seat);
			if (r.code == 0)
				continue;
			expect_refused(&r, "throttled");
			const char *p = strstr(r.out, " - retry in ");
			cr_assert_not_null(p, "no retry hint in: %s", r.out);
			unsigned long ms = strtoul(p + 12, NULL, 10);
			cr_assert(ms >= 1 && ms <= 1000, "hint %lu ms at 1 command/s: %s", ms, r.out);
			expect_out(&r, " ms or later with --client ");
			human = true;
			continue;
		}
		CLI(&r, "--json", "hold", "42", "--seats", seat);
		if (r.code == 0)
			continue;
		expect_code(&r, 1);
		expect_json(&r, "status", "\"throttled\"");
		uint64_t ms = json_u64(&r, "retry_after_ms");
		cr_assert(ms >= 1 && ms <= 1000, "retry_after_ms %" PRIu64 " at 1 command/s", ms);
		json = true;
	}
	cr_assert(human && json, "20 holds of one event at 1/s were never throttled");
	srv_stop_clean();
}

/* ---- 12. cluster and switchover (issue 13) ----------------------------------- */

/* A stand-in server answering one request with the encoding in sb. */
static stub_srv stub_listen(const msgpack_sbuffer *sb)
{
	stub_srv st = {.reply = (const uint8_t *)sb->data, .len = sb->size};
	cr_assert_eq(nng_rep0_open(&st.sock), 0);
	cr_assert_eq(nng_socket_set_ms(st.sock, NNG_OPT_RECVTIMEO, 20000), 0);
	nng_listener l;
	cr_assert_eq(nng_listen(st.sock, "tcp://127.0.0.1:0", &l, 0), 0);
	int port = 0;
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(g_url, sizeof(g_url), "tcp://127.0.0.1:%d", port);
	return st;
}

/* `cluster` prints the shard map as the server sees it: a table with the
 * epoch, role, primary, in-sync set and each standby's lag; --json one
 * object with the documented keys. */
Test(cli, cluster_table_and_json, .init = dir_setup, .fini = dir_teardown)
{
	static wire_cluster_status cs;
	memset(&cs, 0, sizeof(cs));
	cs.node = 1;
	cs.shard_count = 2;
	cs.shards[0] = (wire_shard_cluster){.shard = 0, .epoch = 4, .role = WIRE_ROLE_PRIMARY,
	                                    .primary_known = 1, .primary = 1, .in_sync_count = 2,
	                                    .in_sync = {1, 2}, .last_seq = 120, .durable_seq = 120,
	                                    .released_seq = 117, .standby_count = 1,
	                                    .standbys = {{.node = 2, .acked_seq = 117, .lag_records = 3}}};
	cs.shards[1] = (wire_shard_cluster){.shard = 1, .epoch = 9, .role = WIRE_ROLE_STANDBY,
	                                    .primary_known = 1, .primary = 2, .in_sync_count = 2,
	                                    .in_sync = {2, 1}, .last_seq = 55, .durable_seq = 55,
	                                    .released_seq = 0};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_cluster_status(&cs, &sb), 0);
	for (int json = 0; json < 2; json++) {
		pthread_t th;
		stub_srv st = stub_listen(&sb);
		cr_assert_eq(pthread_create(&th, NULL, stub_main, &st), 0);
		run r;
		if (json)
			CLI(&r, "--json", "cluster");
		else
			CLI(&r, "cluster");
		pthread_join(th, NULL);
		nng_close(st.sock);
		cr_assert(st.served, "the CLI never asked the stand-in server");
		expect_ok(&r);
		if (json) {
			expect_json(&r, "ok", "true");
			expect_json(&r, "node", "1");
			cr_assert_not_null(strstr(r.out, "\"role\":\"primary\",\"primary\":1,\"in_sync\":[1,2]"),
			                   "%s", r.out);
			cr_assert_not_null(strstr(r.out, "\"standbys\":[{\"node\":2,\"acked_seq\":117,"
			                                 "\"lag_records\":3}]"),
			                   "%s", r.out);
			cr_assert_not_null(strstr(r.out, "\"epoch\":9,\"role\":\"standby\""), "%s", r.out);
		} else {
			expect_out(&r, "node 1 (");
			expect_out(&r, "shard    epoch role     primary in_sync");
			expect_out(&r, "    0        4 primary        1 1,2");
			expect_out(&r, "  2:3\n");
			expect_out(&r, "    1        9 standby        2 2,1");
		}
	}
	msgpack_sbuffer_destroy(&sb);
}

/* `switchover` prints the outcome; a refusal exits 1 with its text. */
Test(cli, switchover_outcomes, .init = dir_setup, .fini = dir_teardown)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_ok(&sb), 0);
	pthread_t th;
	stub_srv st = stub_listen(&sb);
	cr_assert_eq(pthread_create(&th, NULL, stub_main, &st), 0);
	run r;
	CLI(&r, "switchover", "3", "2");
	pthread_join(th, NULL);
	nng_close(st.sock);
	expect_ok(&r);
	expect_out(&r, "shard 3: primary moved to node 2");

	sb.size = 0;
	cr_assert_eq(wire_encode_error(BO_INVALID, "node 2 is not in sync", &sb), 0);
	st = stub_listen(&sb);
	cr_assert_eq(pthread_create(&th, NULL, stub_main, &st), 0);
	CLI(&r, "switchover", "3", "2");
	pthread_join(th, NULL);
	nng_close(st.sock);
	expect_refused(&r, "switchover refused: invalid: node 2 is not in sync");
	msgpack_sbuffer_destroy(&sb);

	CLI(&r, "switchover", "3");
	expect_code(&r, 2);
	cr_assert_not_null(strstr(r.err, "expected SHARD and NODE"), "%s", r.err);
	CLI(&r, "switchover", "--help");
	expect_ok(&r);
	expect_out(&r, "usage: boxoffice-cli switchover SHARD NODE");
	CLI(&r, "cluster", "--help");
	expect_ok(&r);
	expect_out(&r, "usage: boxoffice-cli cluster [--json]");
	cli_exec(&r, false, (const char *const[]){"--help", NULL});
	expect_out(&r, "  cluster          ");
	expect_out(&r, "  --server URL     ");
}
