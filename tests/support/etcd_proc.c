/*
 * etcd_proc.c — private etcd members for tests (see etcd_proc.h).
 */
#include "tests/support/etcd_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cluster/etcd.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

/* Starts tried before giving up on port collisions. */
#define TETCD_START_TRIES 3

const char *tetcd_binary(void)
{
	const char *bin = getenv("BO_ETCD_BIN");
	if (bin == NULL || bin[0] == '\0')
		bin = "/usr/bin/etcd";
	return access(bin, X_OK) == 0 ? bin : NULL;
}

/* A TCP port on ip that was free a moment ago (bind to port 0). The kernel
 * hands out ephemeral ports, far above 2379/2380, but a system etcd's ports
 * are refused explicitly all the same. Returns the port or -errno. */
static int free_port(const char *ip)
{
	for (int tries = 0; tries < 10; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t len = sizeof(a);
		if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
			close(fd);
			return -EINVAL;
		}
		int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
		if (rc == 0)
			rc = getsockname(fd, (struct sockaddr *)&a, &len);
		int e = errno;
		close(fd);
		if (rc < 0)
			return -e;
		int port = ntohs(a.sin_port);
		if (port != 2379 && port != 2380)
			return port;
	}
	return -EADDRINUSE;
}

/* Makes the directory that holds the members: tmpfs when there is one, so
 * the WAL's fsyncs cost nothing and nothing reaches a disk. */
static int make_root(tetcd *c)
{
	struct stat st;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(c->root, sizeof(c->root), "/dev/shm/bo-etcd-XXXXXX");
		if (mkdtemp(c->root) != NULL)
			return 0;
	}
	return tmpdir_make(c->root, sizeof(c->root), "bo-etcd");
}

/* Chooses addresses, ports, directories and the endpoint list. */
static int plan(tetcd *c, size_t n, const char *const *ips)
{
	c->n = n;
	c->endpoints[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		tetcd_member *m = &c->m[i];
		memset(m, 0, sizeof(*m));
		snprintf(m->ip, sizeof(m->ip), "%s", ips != NULL ? ips[i] : "127.0.0.1");
		m->client_port = free_port(m->ip);
		m->peer_port = free_port(m->ip);
		if (m->client_port < 0)
			return m->client_port;
		if (m->peer_port < 0)
			return m->peer_port;
		if (m->peer_port == m->client_port)
			return -EADDRINUSE;
		snprintf(m->url, sizeof(m->url), "http://%s:%d", m->ip, m->client_port);
		snprintf(m->dir, sizeof(m->dir), "%s/m%zu", c->root, i);
		snprintf(m->log, sizeof(m->log), "%s/m%zu.log", c->root, i);
		size_t len = strlen(c->endpoints);
		snprintf(c->endpoints + len, sizeof(c->endpoints) - len, "%s%s", i > 0 ? "," : "",
		         m->url);
	}
	return 0;
}

/* Spawns member i with the cluster's member list in initial. */
static int spawn(tetcd *c, size_t i, const char *bin, const char *initial, const char *token)
{
	tetcd_member *m = &c->m[i];
	char name[24], peer[64];
	snprintf(name, sizeof(name), "m%zu", i);
	snprintf(peer, sizeof(peer), "http://%s:%d", m->ip, m->peer_port);
	const char *argv[] = {
	        bin,
	        "--name",
	        name,
	        "--data-dir",
	        m->dir,
	        "--listen-client-urls",
	        m->url,
	        "--advertise-client-urls",
	        m->url,
	        "--listen-peer-urls",
	        peer,
	        "--initial-advertise-peer-urls",
	        peer,
	        "--initial-cluster",
	        initial,
	        "--initial-cluster-state",
	        "new",
	        "--initial-cluster-token",
	        token,
	        /* etcd's defaults (100 ms heartbeat, 1 s election), written out
	         * because the quorum test's timing reasons on them. */
	        "--heartbeat-interval",
	        "100",
	        "--election-timeout",
	        "1000",
	        "--log-level",
	        "warn",
	        "--logger",
	        "zap",
	        "--log-outputs",
	        "stderr",
	        NULL,
	};
	return tproc_spawn(argv, m->log, &m->pid);
}

/* Whether member i answers a linearizable read (it has a leader). */
static int answers(const tetcd_member *m)
{
	etcd *e = NULL;
	char err[256];
	if (etcd_open(m->url, 500, &e, err, sizeof(err)) < 0)
		return 0;
	int rc = etcd_get(e, "/tetcd/probe", NULL, NULL, NULL, err, sizeof(err));
	etcd_close(e);
	return rc >= 0;
}

/* Waits until every member answers. Returns 0, -ECHILD (a member exited:
 * its index in *failed) or -ETIMEDOUT. */
static int wait_ready(tetcd *c, size_t *failed)
{
	int64_t deadline = bo_clock_ms() + TETCD_READY_MS;
	size_t ready = 0;
	while (ready < c->n) {
		for (size_t i = 0; i < c->n; i++) {
			int st = 0;
			if (waitpid(c->m[i].pid, &st, WNOHANG) == c->m[i].pid) {
				c->m[i].pid = 0;
				*failed = i;
				return -ECHILD;
			}
		}
		if (answers(&c->m[ready])) {
			ready++;
			continue;
		}
		if (bo_clock_ms() > deadline) {
			*failed = ready;
			return -ETIMEDOUT;
		}
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000}, NULL);
	}
	return 0;
}

/* One attempt at starting the cluster planned in c. */
static int start_once(tetcd *c, const char *bin, size_t *failed)
{
	char initial[TETCD_MEMBERS_MAX * 64] = "";
	for (size_t i = 0; i < c->n; i++) {
		size_t len = strlen(initial);
		snprintf(initial + len, sizeof(initial) - len, "%sm%zu=http://%s:%d",
		         i > 0 ? "," : "", i, c->m[i].ip, c->m[i].peer_port);
	}
	char token[64];
	snprintf(token, sizeof(token), "bo-test-%d-%lld", (int)getpid(), (long long)bo_clock_ns());
	for (size_t i = 0; i < c->n; i++) {
		int rc = spawn(c, i, bin, initial, token);
		if (rc < 0) {
			*failed = i;
			return rc;
		}
	}
	return wait_ready(c, failed);
}

static void kill_all(tetcd *c)
{
	for (size_t i = 0; i < c->n; i++)
		tetcd_kill(c, i);
}

int tetcd_start(tetcd *c, size_t n, const char *const *ips, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	const char *bin = tetcd_binary();
	if (bin == NULL) {
		snprintf(err, errlen, "no etcd binary (/usr/bin/etcd or $BO_ETCD_BIN)");
		return -ENOENT;
	}
	if (n == 0 || n > TETCD_MEMBERS_MAX) {
		snprintf(err, errlen, "tetcd_start: %zu members", n);
		return -EINVAL;
	}
	int rc = make_root(c);
	if (rc < 0) {
		snprintf(err, errlen, "tetcd_start: no scratch directory: %s", strerror(-rc));
		return rc;
	}
	for (int attempt = 0; attempt < TETCD_START_TRIES; attempt++) {
		size_t failed = 0;
		rc = plan(c, n, ips);
		if (rc == 0)
			rc = start_once(c, bin, &failed);
		if (rc == 0)
			return 0;
		snprintf(err, errlen, "etcd member %zu (%s) %s: %s", failed, c->m[failed].url,
		         rc == -ECHILD ? "exited" : "did not start", strerror(-rc));
		tproc_dump_tail(c->m[failed].log, 2000);
		kill_all(c);
		/* A new cluster needs empty data dirs. */
		for (size_t i = 0; i < n; i++)
			tmpdir_remove(c->m[i].dir);
		if (rc != -ECHILD && rc != -EADDRINUSE)
			break;
	}
	tetcd_stop(c);
	return rc;
}

int tetcd_kill(tetcd *c, size_t i)
{
	tetcd_member *m = &c->m[i];
	if (m->pid <= 0)
		return 0;
	int st = 0;
	int rc = tproc_signal_wait(m->pid, SIGKILL, 10000, &st, NULL);
	m->pid = 0;
	m->paused = false;
	return rc;
}

static int signal_member(tetcd_member *m, int sig)
{
	if (m->pid <= 0)
		return -ESRCH;
	if (kill(m->pid, sig) < 0)
		return -errno;
	m->paused = sig == SIGSTOP;
	return 0;
}

int tetcd_pause(tetcd *c, size_t i)
{
	return signal_member(&c->m[i], SIGSTOP);
}

int tetcd_resume(tetcd *c, size_t i)
{
	return signal_member(&c->m[i], SIGCONT);
}

void tetcd_stop(tetcd *c)
{
	kill_all(c);
	if (c->root[0] != '\0')
		tmpdir_remove(c->root);
	c->root[0] = '\0';
	c->n = 0;
}
