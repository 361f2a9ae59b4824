/*
 * auth_server_test.c — the shared token end to end: the real
 * boxoffice-server with --auth-token-file, the client library and
 * boxoffice-cli as separate processes.
 *
 *  1. Without a token, a --listen or --publish address beyond loopback
 *     (tcp://0.0.0.0:PORT) stops the server at start: exit status 1 (what
 *     --help documents), the log names the address and the option, and no
 *     shard was opened (the refusal comes before recovery).
 *  2. A bad token file is a usage error (exit status 2) with a message
 *     naming the file and the fault, before anything else: group- or
 *     world-accessible, empty, a directory, a FIFO, missing, 257 bytes, two
 *     lines, a space inside; by flag and by BOXOFFICE_AUTH_TOKEN_FILE.
 *  3. A server started with a token file ("TOKEN\r\n": the line end is not
 *     part of it): the client library without a token and with a wrong one
 *     gets invalid/unauthorized for commands and server_status, and
 *     nothing is applied (the event does not exist afterwards); with the
 *     token everything works. A subscriber's event_state (boc_sub) gets
 *     the image only with the token. boxoffice-cli with --auth-token-file
 *     (and with BOXOFFICE_AUTH_TOKEN_FILE) exits 0, without one exits 1
 *     saying "unauthorized", with a bad file exits 2. The server stops
 *     cleanly (SIGTERM, exit 0) and its last line counts the refusals.
 *
 * How: $BOXOFFICE_SERVER and $BOXOFFICE_CLI (set by meson) name the
 * binaries; tests/support/server.h runs the server on a free loopback port
 * in a scratch directory; tests/support/proc.h runs the one-shot processes
 * with their output captured.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/boxoffice.h"
#include "tests/support/proc.h"
#include "tests/support/server.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 20000
#define TOKEN "3f2a9c-secret-token-for-tests"
#define EV 77u

static tsrv g_srv;
static char g_tok[PATH_MAX + 16];

static const char *bin_of(const char *var)
{
	const char *bin = getenv(var);
	cr_assert(bin && *bin, "%s is not set: run this test through meson", var);
	return bin;
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(tsrv_init(&g_srv, "bo-auth-server", 0), 0);
	snprintf(g_tok, sizeof(g_tok), "%s/token", g_srv.dir);
	write_file(g_tok, TOKEN "\r\n", strlen(TOKEN) + 2, 0600);
}

static void teardown(void)
{
	unsetenv("BOXOFFICE_AUTH_TOKEN_FILE");
	tsrv_cleanup(&g_srv, "AUTH_SERVER_TEST_KEEP");
}

TestSuite(auth_server, .init = setup, .fini = teardown, .timeout = 180);

/* Runs argv to its end; asserts it ran and left no sanitizer report. */
static void run(const char *const *argv, tproc_result *r)
{
	int rc = tproc_run(argv, "BOXOFFICE_URL", WAIT_MS, r);
	cr_assert_eq(rc, 0, "cannot run %s: %s", argv[0], strerror(-rc));
	cr_assert(!r->timed_out, "%s still ran after %d ms", argv[0], WAIT_MS);
	cr_assert_null(tproc_sanitizer_report(r->err), "sanitizer report:\n%s", r->err);
}

static void expect(const tproc_result *r, int code, const char *in_err, const char *what)
{
	cr_assert_eq(r->code, code, "%s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", what,
	             r->code, code, r->out, r->err);
	cr_assert_not_null(strstr(r->err, in_err), "%s: stderr lacks \"%s\":\n%s", what, in_err,
	                   r->err);
}

static int shard_dir_exists(void)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/shard-0000", g_srv.data_dir);
	struct stat st;
	return stat(p, &st) == 0;
}

/* ==== 1. Beyond loopback without a token ================================== */

Test(auth_server, exposed_listener_without_token_fails_start)
{
	int port = tproc_free_port();
	cr_assert_gt(port, 0);
	char any[64], local[64], want[160];
	snprintf(any, sizeof(any), "tcp://0.0.0.0:%d", port);
	snprintf(local, sizeof(local), "tcp://127.0.0.1:%d", port);
	const char *srv = bin_of("BOXOFFICE_SERVER");
	tproc_result r;

	const char *listen[] = {srv,        "--no-pg", "--data-dir", g_srv.data_dir,
	                        "--listen", any,       NULL};
	run(listen, &r);
	snprintf(want, sizeof(want), "refusing to listen on %s (--listen): not a loopback address",
	         any);
	expect(&r, 1, want, "--listen 0.0.0.0");
	expect(&r, 1, "--auth-token-file", "--listen 0.0.0.0");
	tproc_result_free(&r);

	const char *publish[] = {srv,        "--no-pg", "--data-dir", g_srv.data_dir,
	                         "--listen", local,     "--publish",  any,
	                         NULL};
	run(publish, &r);
	snprintf(want, sizeof(want), "refusing to listen on %s (--publish)", any);
	expect(&r, 1, want, "--publish 0.0.0.0");
	tproc_result_free(&r);
	cr_assert(!shard_dir_exists(), "a refused start recovered a shard");
}

/* ==== 2. Bad token files ================================================== */

Test(auth_server, bad_token_files_are_usage_errors)
{
	char path[PATH_MAX + 32], big[BO_AUTH_TOKEN_LEN_MAX + 2];
	memset(big, 'k', sizeof(big));
	big[BO_AUTH_TOKEN_LEN_MAX + 1] = '\n';
	static const struct {
		const char *name, *text;
		size_t len;
		mode_t mode;
		const char *err;
	} files[] = {
	        {"group", "tok\n", 4, 0640,
	         "mode 0640 lets group or others in; make it private (chmod 600 "},
	        {"world", "tok\n", 4, 0604, "mode 0604 lets group or others in"},
	        {"empty", "", 0, 0600, "empty (put one line with the token in it)"},
	        {"newline", "\n", 1, 0600, "empty"},
	        {"two-lines", "tok\nmore\n", 9, 0600, "more than one line"},
	        {"space", "to k\n", 5, 0600, "byte 2 is 0x20"},
	        {"big", NULL, 0, 0600, "the token is longer than 256 bytes"},
	};
	const char *srv = bin_of("BOXOFFICE_SERVER");
	const char *cli = bin_of("BOXOFFICE_CLI");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) + 3; i++) {
		const char *want;
		if (i < sizeof(files) / sizeof(files[0])) {
			snprintf(path, sizeof(path), "%s/%s", g_srv.dir, files[i].name);
			if (files[i].text)
				write_file(path, files[i].text, files[i].len, files[i].mode);
			else
				write_file(path, big, sizeof(big), files[i].mode);
			want = files[i].err;
		} else if (i == sizeof(files) / sizeof(files[0])) {
			snprintf(path, sizeof(path), "%s", g_srv.dir);
			want = "not a regular file";
		} else if (i == sizeof(files) / sizeof(files[0]) + 1) {
			snprintf(path, sizeof(path), "%s/fifo", g_srv.dir);
			cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
			want = "not a regular file";
		} else {
			snprintf(path, sizeof(path), "%s/missing", g_srv.dir);
			want = "No such file or directory";
		}
		char full[PATH_MAX + 256];
		snprintf(full, sizeof(full), "auth token file %s: %s", path, want);
		tproc_result r;
		const char *a[] = {
		        srv,  "--no-pg", "--data-dir", g_srv.data_dir, "--auth-token-file",
		        path, NULL};
		run(a, &r);
		expect(&r, 2, full, path);
		cr_assert_str_empty(r.out, "%s: nothing on stdout", path);
		tproc_result_free(&r);
		const char *c[] = {
		        cli, "--auth-token-file", path, "--url", "tcp://127.0.0.1:1", "status", "1",
		        NULL};
		run(c, &r);
		expect(&r, 2, full, path);
		tproc_result_free(&r);
	}
	/* The environment variable reads the same file the same way. */
	snprintf(path, sizeof(path), "%s/group", g_srv.dir);
	cr_assert_eq(setenv("BOXOFFICE_AUTH_TOKEN_FILE", path, 1), 0);
	tproc_result r;
	const char *a[] = {srv, "--no-pg", "--data-dir", g_srv.data_dir, NULL};
	run(a, &r);
	expect(&r, 2, "lets group or others in", "BOXOFFICE_AUTH_TOKEN_FILE");
	tproc_result_free(&r);
	const char *c[] = {cli, "--url", "tcp://127.0.0.1:1", "status", "1", NULL};
	run(c, &r);
	expect(&r, 2, "lets group or others in", "cli BOXOFFICE_AUTH_TOKEN_FILE");
	tproc_result_free(&r);
	unsetenv("BOXOFFICE_AUTH_TOKEN_FILE");
	cr_assert(!shard_dir_exists(), "a refused start recovered a shard");
}

/* ==== 3. A server with a token ============================================ */

static boc_client *client(const char *token, uint32_t timeout_ms)
{
	boc_options o;
	boc_options_default(&o);
	o.linger_zero = 1;
	o.timeout_ms = timeout_ms;
	o.auth_token = token;
	boc_client *c;
	int rc = boc_open(g_srv.tcp_url, &o, &c);
	cr_assert_eq(rc, 0, "boc_open: %d", rc);
	return c;
}

/* Ready when server_status answers ok with the token. */
static int srv_ready(void *ctx)
{
	(void)ctx;
	boc_client *c = client(TOKEN, 500);
	boc_server_report *rep = malloc(sizeof(*rep));
	int ok = rep && boc_server_status(c, rep, NULL, 0) == 0 && rep->status == BO_OK;
	free(rep);
	boc_close(c);
	return ok;
}

static void expect_unauthorized(boc_client *c, const char *text_want, const char *what)
{
	bo_cmd cmd;
	bo_result r;
	char text[BOC_TEXT_LEN_MAX];
	uint32_t seats[2] = {1, 2};
	boc_hold_seats(&cmd, 0, 0, EV, seats, 2, 60000);
	int rc = boc_call(c, &cmd, &r, text, sizeof(text));
	cr_assert_eq(rc, 0, "%s: no answer: %s", what, text);
	cr_assert_eq(r.status, BO_INVALID, "%s: %s", what, bo_status_str(r.status));
	cr_assert_eq(r.detail, BO_D_UNAUTHORIZED, "%s: %s", what, bo_detail_name(r.detail));
	cr_assert_eq(r.op, BO_OP_HOLD_SEATS, "%s: the ids come from the command", what);
	cr_assert_str_eq(text, text_want, "%s", what);
	boc_server_report *rep = malloc(sizeof(*rep));
	cr_assert(rep);
	rc = boc_server_status(c, rep, text, sizeof(text));
	cr_assert_eq(rc, 0, "%s: server_status: %s", what, text);
	cr_assert_eq(rep->status, BO_INVALID, "%s: server_status %d", what, rep->status);
	cr_assert_str_eq(text, text_want, "%s", what);
	free(rep);
}

typedef struct sub_seen {
	int resyncs;
	int no_image;
	int last_status;
} sub_seen;

static void on_resync(void *ctx, uint64_t ev, const bo_event_image *im, int reason)
{
	(void)ev;
	(void)im;
	(void)reason;
	((sub_seen *)ctx)->resyncs++;
}

static void on_no_image(void *ctx, uint64_t ev, int err, int status, const char *text,
                        uint32_t retry_ms)
{
	(void)ev;
	(void)text;
	(void)retry_ms;
	sub_seen *s = ctx;
	s->no_image++;
	s->last_status = err == 0 ? status : -1;
}

/* boc_sub_watch of EV: the image comes (1) or not (0). */
static int sub_gets_image(const char *token)
{
	sub_seen seen = {0};
	boc_sub_options o;
	boc_sub_options_default(&o);
	char pub[PATH_MAX + 32];
	snprintf(pub, sizeof(pub), "ipc://%s/no-publisher",
	         g_srv.dir); /* none: the image is enough */
	o.pub_url = pub;
	o.req_url = g_srv.tcp_url;
	o.auth_token = token;
	o.on_resync = on_resync;
	o.on_no_image = on_no_image;
	o.ctx = &seen;
	boc_sub *s;
	char err[BOC_TEXT_LEN_MAX + 64];
	cr_assert_eq(boc_sub_open(&o, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(boc_sub_watch(s, EV), 0);
	boc_sub_close(s);
	cr_assert_eq(seen.resyncs + seen.no_image, 1, "one outcome of the fetch");
	if (seen.no_image)
		cr_assert_eq(seen.last_status, BO_INVALID, "refused as invalid, not %d",
		             seen.last_status);
	return seen.resyncs == 1;
}

static void cli_expect(const char *const *argv, int code, const char *in_out, const char *what)
{
	tproc_result r;
	run(argv, &r);
	cr_assert_eq(r.code, code, "%s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", what,
	             r.code, code, r.out, r.err);
	cr_assert_not_null(strstr(r.out, in_out), "%s: stdout lacks \"%s\":\n%s", what, in_out,
	                   r.out);
	tproc_result_free(&r);
}

Test(auth_server, token_server_end_to_end)
{
	cr_assert_eq(tsrv_add_arg(&g_srv, "--no-pg"), 0);
	cr_assert_eq(tsrv_add_arg(&g_srv, "--auth-token-file"), 0);
	cr_assert_eq(tsrv_add_arg(&g_srv, g_tok), 0);
	int rc = tsrv_start(&g_srv, bin_of("BOXOFFICE_SERVER"), WAIT_MS, srv_ready, NULL);
	if (rc != 0)
		tproc_dump_tail(g_srv.log_path, 4096);
	cr_assert_eq(rc, 0, "the server did not become ready with the token (%d)", rc);

	boc_client *none = client(NULL, WAIT_MS);
	boc_client *wrong = client(TOKEN "x", WAIT_MS);
	boc_client *good = client(TOKEN, WAIT_MS);
	expect_unauthorized(none, "this server requires an auth token", "no token");
	expect_unauthorized(wrong, "wrong auth token", "wrong token");
	cr_assert(!sub_gets_image(NULL), "event_state without the token");
	cr_assert(!sub_gets_image("nope"), "event_state with a wrong token");

	/* Nothing of those was applied: the event does not exist. */
	bo_cmd cmd;
	bo_result r;
	char text[BOC_TEXT_LEN_MAX];
	boc_query_avail(&cmd, EV);
	cr_assert_eq(boc_call(good, &cmd, &r, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(r.status, BO_NOT_FOUND, "%s", bo_status_str(r.status));

	bo_seatmap *map = bo_seatmap_new(1, 10, 0);
	cr_assert(map);
	map->category_count = 1;
	map->rows[0].seats = 10;
	boc_create_event(&cmd, 0, 0, EV, map);
	cr_assert_eq(boc_call(good, &cmd, &r, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(r.status, BO_OK, "create with the token: %s (%s)", bo_status_str(r.status),
	             text);
	bo_seatmap_free(map);
	uint32_t seat = 4;
	boc_hold_seats(&cmd, 0, 0, EV, &seat, 1, 60000);
	cr_assert_eq(boc_call(good, &cmd, &r, text, sizeof(text)), 0, "%s", text);
	cr_assert_eq(r.status, BO_OK, "hold with the token: %s (%s)", bo_status_str(r.status),
	             text);
	cr_assert(sub_gets_image(TOKEN), "event_state with the token");
	expect_unauthorized(none, "this server requires an auth token", "no token, after");
	boc_close(none);
	boc_close(wrong);
	boc_close(good);

	/* boxoffice-cli. */
	const char *cli = bin_of("BOXOFFICE_CLI");
	char ev[16];
	snprintf(ev, sizeof(ev), "%u", EV);
	const char *with[] = {cli,      "--url", g_srv.tcp_url, "--auth-token-file", g_tok,
	                      "status", ev,      NULL};
	cli_expect(with, 0, "9 free", "cli --auth-token-file");
	const char *without[] = {cli, "--url", g_srv.tcp_url, "status", ev, NULL};
	cli_expect(without, 1, "unauthorized", "cli without a token");
	const char *hold[] = {cli,       "--url", g_srv.tcp_url,       "hold", ev,
	                      "--seats", "5",     "--auth-token-file", g_tok,  NULL};
	cli_expect(hold, 0, "held 1 seats [5]", "cli hold, option after the command");
	cr_assert_eq(setenv("BOXOFFICE_AUTH_TOKEN_FILE", g_tok, 1), 0);
	cli_expect(without, 0, "8 free", "cli with BOXOFFICE_AUTH_TOKEN_FILE");
	const char *sst[] = {cli, "--url", g_srv.tcp_url, "server-status", NULL};
	cli_expect(sst, 0, "shard", "cli server-status with the token");
	unsetenv("BOXOFFICE_AUTH_TOKEN_FILE");
	cli_expect(sst, 1, "", "cli server-status without a token");

	int st = 0;
	rc = tsrv_signal_wait(&g_srv, SIGTERM, 10000, &st, NULL);
	cr_assert_eq(rc, 0, "the server did not stop within 10 s");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	const char *bad = tsrv_log_problem(g_srv.log_path);
	cr_assert_null(bad, "server log: %s", bad);
	char *log = tproc_read_file(g_srv.log_path, NULL);
	cr_assert_not_null(log);
	cr_assert_null(strstr(log, TOKEN), "the token is in the log");
	cr_assert_not_null(strstr(log, "msg=\"auth token required on every request\""));
	/* 3 x 2 by the library, 2 event_state, 1 cli status, 1 cli server-status. */
	cr_assert_not_null(strstr(log, " unauthorized=10"), "refusals counted:\n%s", log);
	free(log);
}
