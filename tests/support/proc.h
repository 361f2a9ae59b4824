/*
 * proc.h — child processes for the end-to-end tests: a server or tool
 * started with fork/exec, its output captured or logged, waited for with a
 * deadline. Used by tests/client/cli_test.c, tests/gateway/server_test.c and
 * tests/replayer/replay_test.c.
 *
 * Free of Criterion: every function reports failure through its return
 * value, so that plain programs (the crash harness, perf/) may use it too;
 * the tests turn the results into assertions. Every child started here
 * dies with the process that started it (PR_SET_PDEATHSIG), so a test that
 * fails or is killed leaves no server behind.
 *
 * Waiting is for events: a child's exit is seen by waitpid, a server's
 * readiness by a probe the caller supplies, output by poll; between two
 * looks at an exit or a probe the helpers pause a few milliseconds. Every
 * wait has a deadline, so a hung child fails a test instead of hanging it.
 */
#ifndef BO_TEST_PROC_H
#define BO_TEST_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The whole file at path as a NUL-terminated heap buffer (the caller frees
 * it); its length without the NUL goes to *len when len is not NULL.
 * NULL (errno set) when the file cannot be read or memory runs out. */
char *tproc_read_file(const char *path, size_t *len);

/* A loopback TCP port that was free a moment ago: binds port 0, reads the
 * port, closes. Returns it (> 0), or -errno when no socket could be bound.
 * Another process may take the port before the caller uses it: a server
 * started on it then fails with "Address in use" and the caller retries. */
int tproc_free_port(void);

/* Starts argv[0] (a path; argv NULL-terminated) with stdin from /dev/null
 * and stdout and stderr written to log_path (created or truncated). Returns
 * 0 and the child's pid in *pid, or -errno when fork failed. When exec
 * fails, the child writes why to the log and exits 127. */
int tproc_spawn(const char *const *argv, const char *log_path, pid_t *pid);

/* Starts argv as tproc_spawn does and waits up to ready_ms until
 * ready(ctx) returns nonzero (the probe of a server: it answers), asking
 * again every 20 ms while the child runs. Returns 0 (*pid: the running
 * child); -ECHILD when the child ended first (it is reaped, *pid is 0, its
 * wait status in *status when status is not NULL); -ETIMEDOUT when it still
 * runs without being ready (*pid set: the caller decides to kill it); or
 * -errno when fork failed (*pid is 0). */
int tproc_start_ready(const char *const *argv, const char *log_path, int ready_ms,
                      int (*ready)(void *ctx), void *ctx, pid_t *pid, int *status);

/* Waits up to timeout_ms (< 0: without limit) for the child pid to end.
 * Returns 0 with its wait status in *status; -ETIMEDOUT when it still runs
 * (it is left running and unreaped); -errno when waitpid failed (ECHILD:
 * not a child of this process, or already reaped). */
int tproc_wait(pid_t pid, int timeout_ms, int *status);

/* Sends sig to the child pid and waits up to timeout_ms for it to end.
 * Returns 0 with its wait status in *status; -ETIMEDOUT when it did not end
 * in time: it is then SIGKILLed and reaped, so the pid is free either way;
 * -errno when kill or waitpid failed. *took_ms (when not NULL): from the
 * signal to the end of the wait. */
int tproc_signal_wait(pid_t pid, int sig, int timeout_ms, int *status, int64_t *took_ms);

/* What tproc_run saw of one run of a program. */
typedef struct tproc_result {
	int code;        /* exit status; 128 + the signal when one ended it */
	int timed_out;   /* 1: it was still running at the deadline and was SIGKILLed */
	int64_t took_ms; /* from fork to reap */
	char *out;       /* its stdout, NUL-terminated (heap; tproc_result_free) */
	size_t out_len;  /* bytes in out, without the NUL */
	char *err;       /* its stderr, likewise */
	size_t err_len;
} tproc_result;

/* Runs argv[0] (argv NULL-terminated) to its end with stdin from /dev/null
 * and stdout and stderr captured whole through pipes; unset_env (when not
 * NULL) is removed from its environment. A run still going after
 * deadline_ms is SIGKILLed (r->timed_out). Returns 0 when the program ran
 * (whatever its exit status: see r; an exec failure is code 127 with the
 * reason on its stderr); -errno when pipes, fork, poll or memory failed (r
 * then holds nothing to free). */
int tproc_run(const char *const *argv, const char *unset_env, int deadline_ms, tproc_result *r);

/* Frees a tproc_result's buffers and zeroes it; a zeroed one is fine. */
void tproc_result_free(tproc_result *r);

/* The first sanitizer report marker (AddressSanitizer, LeakSanitizer,
 * UndefinedBehaviorSanitizer's "runtime error:", ThreadSanitizer) found in
 * text, or NULL when there is none. A report on a child's stderr or in its
 * log fails a test even when the child exited 0. */
const char *tproc_sanitizer_report(const char *text);

/* Prints the last max_bytes of the file at path to stderr between two
 * marker lines (to explain a failure); prints nothing when unreadable. */
void tproc_dump_tail(const char *path, size_t max_bytes);

#endif /* BO_TEST_PROC_H */
