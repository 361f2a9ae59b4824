/*
 * server.h — a real boxoffice-server process for the end-to-end tests
 * (tests/client/cli_test.c, tests/gateway/server_test.c): a scratch
 * directory with its data dir, a run of the binary on a free TCP port (and
 * on an ipc:// socket in that directory when asked), its output in one log
 * file per run, readiness decided by a probe of the caller, and the stop.
 *
 * The server runs with small tables (a few events; the defaults reserve far
 * more memory than a test uses, which would also blur server_test's RSS
 * check) and 2 shards, so that routing is exercised. It dies with the test
 * process (tests/support/proc.h).
 *
 * Free of Criterion: results come back as -errno; the tests assert on them
 * and explain failures with tproc_dump_tail(s->log_path, ...).
 */
#ifndef BO_TEST_SERVER_H
#define BO_TEST_SERVER_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#define TSRV_EXTRA_MAX 8

typedef struct tsrv {
	char dir[PATH_MAX];                /* mkdtemp: data/, the ipc socket, the logs */
	char data_dir[PATH_MAX + 8];       /* dir/data, kept across runs */
	char ipc_url[PATH_MAX + 16];       /* "ipc://dir/sock", or "" without ipc */
	char tcp_url[64];                  /* the current (latest) run's address */
	char log_path[PATH_MAX + 32];      /* the current run's stdout and stderr */
	const char *extra[TSRV_EXTRA_MAX]; /* more options for every run */
	int extra_count;
	pid_t pid; /* > 0 while a started process has not been reaped */
	int run;   /* runs started so far */
} tsrv;

/* Zeroes s, makes its scratch directory "$TMPDIR/<name>-XXXXXX" with data/
 * in it, and with_ipc: an ipc:// address there. Returns 0 or -errno. */
int tsrv_init(tsrv *s, const char *name, int with_ipc);

/* Adds one option for every later run (arg must outlive s). Returns 0, or
 * -E2BIG when TSRV_EXTRA_MAX options are there already. */
int tsrv_add_arg(tsrv *s, const char *arg);

/* Starts the next run of bin on the same data dir, listening on a free
 * loopback TCP port (s->tcp_url) and on s->ipc_url when set, and waits up
 * to ready_ms until ready(ctx) returns nonzero. A run that exits because
 * another process took its port ("Address in use" in its log) is retried
 * on a new port, up to 3 times. Returns 0 (s->pid: the ready server);
 * -ECHILD when it exited (s->pid is 0); -ETIMEDOUT when it runs but was
 * not ready in time (s->pid set; tsrv_kill ends it); or -errno when no
 * port or process could be had. s->log_path names the run's log in every
 * case. */
int tsrv_start(tsrv *s, const char *bin, int ready_ms, int (*ready)(void *ctx), void *ctx);

/* Sends sig to the running server (s->pid > 0) and waits up to timeout_ms
 * for it to end, as tproc_signal_wait: 0 with its wait status in *status,
 * or -ETIMEDOUT after it was SIGKILLed. s->pid is 0 afterwards. */
int tsrv_signal_wait(tsrv *s, int sig, int timeout_ms, int *status, int64_t *took_ms);

/* What is wrong in a server log: the first sanitizer report marker, or
 * "level=error" (a line the server logged as an error), or "unreadable"
 * when the log cannot be read; NULL when it is clean. */
const char *tsrv_log_problem(const char *log_path);

/* Ends a server that may still run — also a stopped one (SIGCONT first) —
 * and reaps it. Nothing when s->pid is 0. */
void tsrv_kill(tsrv *s);

/* tsrv_kill, then removes the scratch directory unless the environment
 * variable keep_env is set (to look at a failed test's data and logs). */
void tsrv_cleanup(tsrv *s, const char *keep_env);

#endif /* BO_TEST_SERVER_H */
