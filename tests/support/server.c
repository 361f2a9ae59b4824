/*
 * server.c — a real boxoffice-server process for the tests (see server.h).
 */
#include "tests/support/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

/* Small tables and 2 shards (see server.h). */
#define TSRV_BASE_ARGS                                                                        \
	"--shards", "2", "--seats-max", "262144", "--claims-max", "65536", "--idem-capacity", \
	        "65536", "--events-max", "64", "--contexts", "16"

#define TSRV_PORT_ATTEMPTS 4

int tsrv_init(tsrv *s, const char *name, int with_ipc)
{
	memset(s, 0, sizeof(*s));
	int rc = tmpdir_make(s->dir, sizeof(s->dir), name);
	if (rc != 0)
		return rc;
	snprintf(s->data_dir, sizeof(s->data_dir), "%s/data", s->dir);
	if (with_ipc)
		snprintf(s->ipc_url, sizeof(s->ipc_url), "ipc://%s/sock", s->dir);
	return mkdir(s->data_dir, 0700) == 0 ? 0 : -errno;
}

int tsrv_add_arg(tsrv *s, const char *arg)
{
	if (s->extra_count == TSRV_EXTRA_MAX)
		return -E2BIG;
	s->extra[s->extra_count++] = arg;
	return 0;
}

/* Did the run whose log is at path fail because its port was taken? */
static int lost_port_race(const char *path)
{
	char *log = tproc_read_file(path, NULL);
	int lost = log != NULL && strstr(log, "Address in use") != NULL;
	free(log);
	return lost;
}

int tsrv_start(tsrv *s, const char *bin, int ready_ms, int (*ready)(void *ctx), void *ctx)
{
	for (int attempt = 1;; attempt++) {
		int port = tproc_free_port();
		if (port < 0)
			return port;
		s->run++;
		snprintf(s->tcp_url, sizeof(s->tcp_url), "tcp://127.0.0.1:%d", port);
		snprintf(s->log_path, sizeof(s->log_path), "%s/server-%d.log", s->dir, s->run);
		const char *argv[8 + 12 + TSRV_EXTRA_MAX + 1] = {
		        bin, "--data-dir", s->data_dir, "--listen", s->tcp_url, TSRV_BASE_ARGS};
		int argc = 0;
		while (argv[argc] != NULL)
			argc++;
		if (s->ipc_url[0] != '\0') {
			argv[argc++] = "--listen";
			argv[argc++] = s->ipc_url;
		}
		for (int i = 0; i < s->extra_count; i++)
			argv[argc++] = s->extra[i];
		argv[argc] = NULL;
		int rc = tproc_start_ready(argv, s->log_path, ready_ms, ready, ctx, &s->pid, NULL);
		if (rc == -ECHILD && attempt < TSRV_PORT_ATTEMPTS && lost_port_race(s->log_path))
			continue;
		return rc;
	}
}

int tsrv_signal_wait(tsrv *s, int sig, int timeout_ms, int *status, int64_t *took_ms)
{
	int rc = tproc_signal_wait(s->pid, sig, timeout_ms, status, took_ms);
	s->pid = 0;
	return rc;
}

const char *tsrv_log_problem(const char *log_path)
{
	char *log = tproc_read_file(log_path, NULL);
	if (log == NULL)
		return "unreadable";
	const char *problem = tproc_sanitizer_report(log);
	if (problem == NULL && strstr(log, "level=error") != NULL)
		problem = "level=error";
	free(log);
	return problem;
}

void tsrv_kill(tsrv *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGCONT); /* a stopped server must be able to die */
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

void tsrv_cleanup(tsrv *s, const char *keep_env)
{
	tsrv_kill(s);
	if (s->dir[0] != '\0' && getenv(keep_env) == NULL)
		tmpdir_remove(s->dir);
}
