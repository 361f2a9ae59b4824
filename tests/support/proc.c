/*
 * proc.c — child processes for the end-to-end tests (see proc.h).
 */
#include "tests/support/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

/* How often a wait looks again (a child's exit, a server's readiness). */
#define EXIT_POLL_MS 5
#define READY_POLL_MS 20

static void pause_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

char *tproc_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);
	while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 2) {
			char *bigger = realloc(buf, cap * 2);
			if (bigger == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	int failed = buf != NULL && ferror(f);
	fclose(f);
	if (buf == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (failed) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

int tproc_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int rc = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
		rc = -errno;
	close(fd);
	return rc != 0 ? rc : ntohs(a.sin_port);
}

/* In the child, before exec: die with the parent (and do not start at all
 * when it is already gone), stdin from /dev/null, stdout and stderr to
 * out_fd and err_fd. */
static void child_prepare(pid_t parent, int out_fd, int err_fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	dup2(out_fd, 1);
	dup2(err_fd, 2);
}

static void child_exec(const char *const *argv)
{
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int tproc_spawn(const char *const *argv, const char *log_path, pid_t *pid)
{
	pid_t parent = getpid();
	fflush(NULL); /* or the child flushes the parent's buffered output again */
	pid_t child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			_exit(126);
		child_prepare(parent, fd, fd);
		child_exec(argv);
	}
	*pid = child;
	return 0;
}

int tproc_start_ready(const char *const *argv, const char *log_path, int ready_ms,
                      int (*ready)(void *ctx), void *ctx, pid_t *pid, int *status)
{
	*pid = 0;
	pid_t child;
	int rc = tproc_spawn(argv, log_path, &child);
	if (rc != 0)
		return rc;
	*pid = child;
	int64_t deadline = bo_clock_ms() + ready_ms;
	for (;;) {
		int st = 0;
		if (waitpid(child, &st, WNOHANG) == child) {
			*pid = 0;
			if (status != NULL)
				*status = st;
			return -ECHILD;
		}
		if (ready(ctx))
			return 0;
		if (bo_clock_ms() >= deadline)
			return -ETIMEDOUT;
		pause_ms(READY_POLL_MS);
	}
}

int tproc_wait(pid_t pid, int timeout_ms, int *status)
{
	if (timeout_ms < 0)
		return waitpid(pid, status, 0) == pid ? 0 : -errno;
	int64_t deadline = bo_clock_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		int64_t left = deadline - bo_clock_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		pause_ms(left < EXIT_POLL_MS ? (int)left : EXIT_POLL_MS);
	}
}

int tproc_signal_wait(pid_t pid, int sig, int timeout_ms, int *status, int64_t *took_ms)
{
	int64_t t0 = bo_clock_ms();
	int rc = kill(pid, sig) == 0 ? tproc_wait(pid, timeout_ms, status) : -errno;
	if (rc == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (took_ms != NULL)
		*took_ms = bo_clock_ms() - t0;
	return rc;
}

/* A growing capture buffer: always NUL-terminated. */
typedef struct capture {
	char *buf;
	size_t len, cap;
} capture;

static int capture_add(capture *c, const char *data, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (c->len + n + 1 > cap)
			cap *= 2;
		char *bigger = realloc(c->buf, cap);
		if (bigger == NULL)
			return -ENOMEM;
		c->buf = bigger;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, data, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return 0;
}

/* Reads both pipes until both close or the deadline passes. Returns 0,
 * -ETIMEDOUT at the deadline, or -errno (poll, memory). Closes the fds. */
static int drain_pipes(int fds[2], capture out[2], int64_t deadline)
{
	struct pollfd pf[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
	int rc = 0;
	while (rc == 0 && (pf[0].fd >= 0 || pf[1].fd >= 0)) {
		int64_t left = deadline - bo_clock_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		int n = poll(pf, 2, (int)left);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		for (int k = 0; n > 0 && k < 2 && rc == 0; k++) {
			if (pf[k].fd < 0 || pf[k].revents == 0)
				continue;
			char tmp[4096];
			ssize_t got = read(pf[k].fd, tmp, sizeof(tmp));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(pf[k].fd);
				pf[k].fd = -1;
				continue;
			}
			rc = capture_add(&out[k], tmp, (size_t)got);
		}
	}
	for (int k = 0; k < 2; k++)
		if (pf[k].fd >= 0)
			close(pf[k].fd);
	return rc;
}

int tproc_run(const char *const *argv, const char *unset_env, int deadline_ms, tproc_result *r)
{
	memset(r, 0, sizeof(*r));
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) != 0) {
		int rc = -errno;
		close(po[0]);
		close(po[1]);
		return rc;
	}
	pid_t parent = getpid();
	fflush(NULL);
	int64_t t0 = bo_clock_ms();
	pid_t pid = fork();
	if (pid == 0) {
		child_prepare(parent, po[1], pe[1]);
		if (unset_env != NULL)
			unsetenv(unset_env);
		child_exec(argv);
	}
	int rc = pid < 0 ? -errno : 0;
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return rc;
	}
	capture cap[2] = {{0}, {0}};
	rc = drain_pipes((int[2]){po[0], pe[0]}, cap, t0 + deadline_ms);
	int st = 0;
	if (rc == 0) {
		/* Both streams closed: the exit follows, within what is left. */
		int64_t left = t0 + deadline_ms - bo_clock_ms();
		if (tproc_wait(pid, left > 0 ? (int)left : 0, &st) == 0)
			pid = 0;
		else
			rc = -ETIMEDOUT;
	}
	if (pid > 0) {
		kill(pid, SIGKILL); /* timed out, or the test cannot read it: end it */
		while (waitpid(pid, &st, 0) != pid && errno == EINTR)
			;
	}
	r->took_ms = bo_clock_ms() - t0;
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->timed_out = rc == -ETIMEDOUT;
	if (rc == -ETIMEDOUT)
		rc = 0;
	/* An empty stream is "" rather than NULL, so callers can print it. */
	if (rc == 0 && (capture_add(&cap[0], "", 0) != 0 || capture_add(&cap[1], "", 0) != 0))
		rc = -ENOMEM;
	if (rc != 0) {
		free(cap[0].buf);
		free(cap[1].buf);
		memset(r, 0, sizeof(*r));
		return rc;
	}
	r->out = cap[0].buf;
	r->out_len = cap[0].len;
	r->err = cap[1].buf;
	r->err_len = cap[1].len;
	return 0;
}

void tproc_result_free(tproc_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

const char *tproc_sanitizer_report(const char *text)
{
	static const char *const markers[] = {"AddressSanitizer", "LeakSanitizer",
	                                      "runtime error:", "ThreadSanitizer"};
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		if (strstr(text, markers[i]) != NULL)
			return markers[i];
	return NULL;
}

void tproc_dump_tail(const char *path, size_t max_bytes)
{
	size_t len;
	char *text = tproc_read_file(path, &len);
	if (text == NULL)
		return;
	fprintf(stderr, "---- %s (tail) ----\n%s\n---- end of log ----\n", path,
	        len > max_bytes ? text + len - max_bytes : text);
	free(text);
}
