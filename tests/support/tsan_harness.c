/*
 * tsan_harness.c — the test runner of the ThreadSanitizer build (see
 * tsan_harness.h). Compiles to nothing elsewhere, so that linking it into a
 * Criterion binary cannot bring a second main().
 */
#if defined(__SANITIZE_THREAD__)
#include "tests/support/tsan_harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"

enum {
	TSAN_HARNESS_TESTS_MAX = 64
};

static struct {
	const char *name;
	void (*fn)(void);
	struct tsan_harness_opts opts;
} tests[TSAN_HARNESS_TESTS_MAX];
static int test_count;
static const char *current = "(none)";

void tsan_harness_add(const char *name, void (*fn)(void), struct tsan_harness_opts opts)
{
	if (test_count == TSAN_HARNESS_TESTS_MAX) {
		fprintf(stderr, "tsan_harness: more than %d tests: raise TSAN_HARNESS_TESTS_MAX\n",
		        TSAN_HARNESS_TESTS_MAX);
		abort();
	}
	tests[test_count].name = name;
	tests[test_count].fn = fn;
	tests[test_count].opts = opts;
	test_count++;
}

void tsan_harness_check(bool ok, const char *expr, const char *file, int line, const char *fmt, ...)
{
	if (ok)
		return;
	fprintf(stderr, "[FAIL] %s: %s:%d: %s", current, file, line, expr);
	if (fmt[0] != '\0' && fmt[1] != '\0') {
		va_list ap;
		va_start(ap, fmt);
		fputc(':', stderr);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	exit(1);
}

void tsan_harness_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[----] %s: ", current);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Did the child end as the test's options demand? Says why not on stderr. */
static bool outcome_ok(const struct tsan_harness_opts *o, int status)
{
	if (o->signal != 0) {
		if (WIFSIGNALED(status) && WTERMSIG(status) == o->signal)
			return true;
		fprintf(stderr, "[FAIL] %s: expected death by signal %d, wait status 0x%x\n",
		        current, o->signal, status);
		return false;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		fprintf(stderr, "[FAIL] %s: died of signal %d%s\n", current, WTERMSIG(status),
		        WTERMSIG(status) == SIGALRM ? " (its timeout)" : "");
	return false;
}

int main(void)
{
	int failed = 0;
	for (int i = 0; i < test_count; i++) {
		current = tests[i].name;
		int64_t t0 = bo_clock_ms();
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("tsan_harness: fork");
			return 2;
		}
		if (pid == 0) {
			if (tests[i].opts.timeout > 0)
				alarm((unsigned)tests[i].opts.timeout);
			tests[i].fn();
			exit(0);
		}
		int status = 0;
		if (waitpid(pid, &status, 0) != pid) {
			perror("tsan_harness: waitpid");
			return 2;
		}
		bool ok = outcome_ok(&tests[i].opts, status);
		failed += !ok;
		fprintf(stderr, "[%s] %s (%ld ms)\n", ok ? "PASS" : "FAIL", current,
		        (long)(bo_clock_ms() - t0));
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", test_count,
	        test_count - failed, failed);
	return failed ? 1 : 0;
}
#endif /* __SANITIZE_THREAD__ */
