/*
 * bench_pg.h — what the PostgreSQL benchmarks (bench_committer,
 * bench_pg_paths) share: a private PostgreSQL 15 cluster of their own, and
 * the on-sale command mix they journal. Header only, like bench_util.h.
 *
 * The cluster: initdb into a new directory /tmp/bo-bpg-XXXXXX (short: the
 * Unix socket lives there too), owned by the user `postgres` when the
 * benchmark runs as root (initdb and pg_ctl refuse root; they run under
 * runuser), no TCP port, default settings otherwise (fsync and
 * synchronous_commit on: the database is the system of record). A guard
 * process forked at start stops the cluster (pg_ctl stop -m immediate) and
 * removes the directory when the benchmark ends for any reason — exit, a
 * failed assertion, a signal — because it waits for the end of a pipe only
 * the benchmark holds open.
 */
#ifndef BO_BENCH_PG_H
#define BO_BENCH_PG_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/types.h"
#include "bench_util.h"

#define BENCH_PG_BIN_DEFAULT "/usr/lib/postgresql/15/bin"

typedef struct bench_pg {
	const char *prog;
	char bin[200];   /* initdb and pg_ctl live here */
	char dir[32];    /* /tmp/bo-bpg-XXXXXX: data/, the socket, logs */
	int as_postgres; /* running as root: the cluster belongs to `postgres` */
	uid_t uid;
	gid_t gid;
	const char *extra; /* more -c settings for postgres (profiling), or NULL */
	int guard_fd;      /* write end of the guard's pipe */
	pid_t guard;
} bench_pg;

/* Where PostgreSQL's binaries are: $BO_PG_BIN (as scripts/pg), else
 * Debian's PostgreSQL 15. */
static inline const char *bench_pg_bin_default(void)
{
	const char *b = getenv("BO_PG_BIN");
	return b && *b ? b : BENCH_PG_BIN_DEFAULT;
}

/* 1 when bin holds initdb and pg_ctl. */
static inline int bench_pg_available(const char *bin)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/initdb", bin);
	if (access(p, X_OK) != 0)
		return 0;
	snprintf(p, sizeof(p), "%s/pg_ctl", bin);
	return access(p, X_OK) == 0;
}

/* Runs bin/TOOL with args (NULL-terminated, at most 16) as the cluster's
 * owner, its output appended to DIR/tools.log. Returns the exit status
 * (-1: did not run normally). */
static inline int bench_pg_tool(const bench_pg *pg, const char *tool, const char *const *args)
{
	char exe[256], log[64];
	snprintf(exe, sizeof(exe), "%s/%s", pg->bin, tool);
	snprintf(log, sizeof(log), "%s/tools.log", pg->dir);
	const char *argv[24];
	int n = 0;
	if (pg->as_postgres) {
		argv[n++] = "runuser";
		argv[n++] = "-u";
		argv[n++] = "postgres";
		argv[n++] = "--";
	}
	argv[n++] = exe;
	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* pg_ctl start, waiting until it accepts connections. 0 or the status. */
static inline int bench_pg_start(const bench_pg *pg)
{
	char data[64], log[64], opts[400];
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/postgres.log", pg->dir);
	snprintf(opts, sizeof(opts), "-c listen_addresses='' -c unix_socket_directories=%s %s",
	         pg->dir, pg->extra ? pg->extra : "");
	const char *args[] = {"-D", data, "-l", log, "-w", "-t", "120", "-o", opts, "start", NULL};
	return bench_pg_tool(pg, "pg_ctl", args);
}

/* pg_ctl stop in `mode` (fast, immediate), waiting. 0 or the status. */
static inline int bench_pg_stop(const bench_pg *pg, const char *mode)
{
	char data[64];
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	const char *args[] = {"-D", data, "-m", mode, "-w", "-t", "120", "stop", NULL};
	return bench_pg_tool(pg, "pg_ctl", args);
}

/* The guard: waits for the benchmark to close its pipe (normally or by
 * dying), then stops the cluster and removes its directory and every
 * path the benchmark wrote into the pipe (bench_pg_remove_later). Signals
 * that reach the whole process group do not stop it early. */
static inline void bench_pg_guard(bench_pg *pg, int rfd)
{
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	char paths[4096];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(rfd, paths + len, sizeof(paths) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(paths) - 1)
			len = 0; /* more than it can hold: the benchmark's bug; keep the newest */
	}
	paths[len] = '\0';
	char pid_file[64];
	snprintf(pid_file, sizeof(pid_file), "%s/data/postmaster.pid", pg->dir);
	if (access(pid_file, F_OK) == 0)
		(void)bench_pg_stop(pg, "immediate");
	bench_remove_dir(pg->prog, pg->dir);
	for (char *p = paths, *nl; *p; p = nl + 1) {
		if (!(nl = strchr(p, '\n')))
			break;
		*nl = '\0';
		if (access(p, F_OK) == 0)
			bench_remove_dir(pg->prog, p);
	}
	_exit(0);
}

/* Has the guard remove dir (a work directory of the benchmark) at the end
 * too, whatever way the benchmark ends. */
static inline void bench_pg_remove_later(const bench_pg *pg, const char *dir)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "%s\n", dir);
	if (n > 0 && (size_t)n < sizeof(line) && write(pg->guard_fd, line, (size_t)n) != n)
		fprintf(stderr, "%s: could not tell the guard about %s\n", pg->prog, dir);
}

/* The libpq DSN of database `db` in the cluster. */
static inline void bench_pg_dsn(const bench_pg *pg, const char *db, char *out, size_t cap)
{
	snprintf(out, cap, "host=%s user=boxoffice dbname=%s", pg->dir, db);
}

/* Creates, starts and guards a new cluster (extra: more postgres -c
 * settings, or NULL); exits 1 with the reason (and
 * the tail of the logs' location) when it cannot. Call before starting
 * threads: it forks. */
static inline void bench_pg_init(bench_pg *pg, const char *prog, const char *bin, const char *extra)
{
	memset(pg, 0, sizeof(*pg));
	pg->prog = prog;
	pg->extra = extra;
	snprintf(pg->bin, sizeof(pg->bin), "%s", bin);
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/bo-bpg-XXXXXX");
	if (!mkdtemp(pg->dir))
		bench_die(prog, "mkdtemp /tmp/bo-bpg-XXXXXX", -errno);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw) {
			fprintf(stderr,
			        "%s: running as root, but there is no user 'postgres' to run PostgreSQL\n",
			        prog);
			bench_remove_dir(prog, pg->dir);
			exit(1);
		}
		pg->as_postgres = 1;
		if (chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0)
			bench_die(prog, "chown of the cluster directory", -errno);
	}
	int fds[2];
	if (pipe(fds) != 0)
		bench_die(prog, "pipe", -errno);
	fflush(NULL);
	pg->guard = fork();
	if (pg->guard < 0)
		bench_die(prog, "fork", -errno);
	if (pg->guard == 0) {
		close(fds[1]);
		bench_pg_guard(pg, fds[0]);
	}
	close(fds[0]);
	pg->guard_fd = fds[1];
	(void)fcntl(pg->guard_fd, F_SETFD, FD_CLOEXEC);

	char data[64];
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	const char *args[] = {"-D", data,   "-U",         "boxoffice", "--auth=trust",
	                      "-E", "UTF8", "--locale=C", NULL};
	fprintf(stderr, "%s: initdb %s (private PostgreSQL cluster; logs in %s/*.log)\n", prog,
	        data, pg->dir);
	int rc = bench_pg_tool(pg, "initdb", args);
	if (rc != 0) {
		fprintf(stderr, "%s: initdb failed (status %d), see %s/tools.log\n", prog, rc,
		        pg->dir);
		exit(1);
	}
	if ((rc = bench_pg_start(pg)) != 0) {
		fprintf(stderr, "%s: pg_ctl start failed (status %d), see %s/postgres.log\n", prog,
		        rc, pg->dir);
		exit(1);
	}
}

/* Stops the cluster (fast) and lets the guard remove it; waits for it. */
static inline void bench_pg_finish(bench_pg *pg)
{
	(void)bench_pg_stop(pg, "fast");
	close(pg->guard_fd);
	while (waitpid(pg->guard, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Connects to database db; exits 1 when it cannot. */
static inline PGconn *bench_pg_connect(const bench_pg *pg, const char *db)
{
	char dsn[128];
	bench_pg_dsn(pg, db, dsn, sizeof(dsn));
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "%s: connecting to %s: %s", pg->prog, dsn, PQerrorMessage(c));
		exit(1);
	}
	return c;
}

/* Runs sql (no rows expected back, or rows ignored); exits 1 on failure. */
static inline void bench_pg_exec(const bench_pg *pg, PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s: %s", pg->prog, sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

/* A new, empty database `db`. */
static inline void bench_pg_create_db(const bench_pg *pg, const char *db)
{
	PGconn *c = bench_pg_connect(pg, "postgres");
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	bench_pg_exec(pg, c, sql);
	PQfinish(c);
}

/* CPU seconds (user + system) the cluster's processes have used so far:
 * the postmaster (DIR/data/postmaster.pid) and its live children. A
 * backend that has exited no longer counts: read it while the connections
 * of interest are open. -1 when it cannot be read. */
static inline double bench_pg_cpu_seconds(const bench_pg *pg)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg->dir);
	FILE *f = fopen(path, "r");
	long master = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &master) != 1)
		master = 0;
	fclose(f);
	DIR *d = opendir("/proc");
	if (!d || master <= 0) {
		if (d)
			closedir(d);
		return -1;
	}
	double ticks = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char buf[1024];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *sf = fopen(path, "r");
		if (!sf)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, sf);
		fclose(sf);
		buf[n] = '\0';
		/* Fields after the command (which may hold spaces): state ppid
		 * ... utime (14th field) stime (15th). */
		char *p = strrchr(buf, ')');
		long ppid = 0;
		unsigned long ut = 0, st = 0;
		if (!p || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		                 &ppid, &ut, &st) != 3)
			continue;
		if (ppid == master || atol(de->d_name) == master)
			ticks += (double)(ut + st);
	}
	closedir(d);
	return ticks / (double)sysconf(_SC_CLK_TCK);
}

/* ---- The command mix ----------------------------------------------------------
 *
 * An on-sale at a steady occupancy: holds of 1-4 adjacent seats at random
 * places on EVENTS events (55%; many collide), confirms (15%) and releases
 * (15%) of the newest holds, cancels of the newest bookings (15%, so booked
 * seats return as fast as confirms take them and the halls never sell out
 * during a long run); holds nobody confirms or releases expire after their
 * TTL of 2-5 s. Every command changes state, so every one is journaled. */

enum {
	BPG_EVENTS = 4,
	BPG_ROWS = 250,
	BPG_PER_ROW = 200,
	BPG_SEATS = BPG_ROWS * BPG_PER_ROW
};
enum {
	BPG_LIVE = 1 << 16,
	BPG_TTL_MS_MAX = 5000 /* holds live 2,000..BPG_TTL_MS_MAX ms */
};

typedef struct bpg_mix {
	uint64_t rng, req;
	/* Holds go to the events whose bit is set (event i: bit i), for a
	 * shard that owns only some of them; 0: every event. */
	uint32_t events;
	/* The claims it remembers at most, per list (<= BPG_LIVE; 0:
	 * BPG_LIVE): a shard with a share of the events gets that share, so
	 * its lists reach as far back in each event's history as one mix of
	 * every event does. */
	uint32_t live_max;
	uint64_t hold_id[BPG_LIVE], hold_ev[BPG_LIVE];
	uint64_t book_id[BPG_LIVE], book_ev[BPG_LIVE];
	uint32_t nh, nb;
} bpg_mix;

static inline uint64_t bpg_event_id(uint32_t i)
{
	return 100 + i;
}

/* The index of the event a new hold goes to: uniform over m->events. */
static inline uint32_t bpg_pick_event(bpg_mix *m)
{
	if (m->events == 0)
		return (uint32_t)(bench_rnd(&m->rng) % BPG_EVENTS);
	uint32_t k = (uint32_t)(bench_rnd(&m->rng) % (uint64_t)__builtin_popcount(m->events));
	for (uint32_t i = 0; i < BPG_EVENTS; i++)
		if ((m->events >> i & 1u) && k-- == 0)
			return i;
	return 0; /* not reached: k < the bits set */
}

/* The next command of the mix into *cmd. */
static inline void bpg_next(bpg_mix *m, bo_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->client_id = 1000 + (bench_rnd(&m->rng) & 0xfffff);
	cmd->request_id = ++m->req;
	uint32_t dice = (uint32_t)(bench_rnd(&m->rng) % 100);
	if (dice >= 85 && m->nb > 0) {
		m->nb--;
		cmd->op = BO_OP_CANCEL;
		cmd->event_id = m->book_ev[m->nb];
		cmd->claim_id = m->book_id[m->nb];
	} else if (dice >= 55 && dice < 85 && m->nh > 0) {
		m->nh--;
		cmd->op = dice < 70 ? BO_OP_CONFIRM : BO_OP_RELEASE;
		cmd->event_id = m->hold_ev[m->nh];
		cmd->claim_id = m->hold_id[m->nh];
		if (cmd->op == BO_OP_CONFIRM) {
			cmd->payref_len = 12;
			memcpy(cmd->payref, "psp_12345678", 12);
		}
	} else {
		cmd->op = BO_OP_HOLD_SEATS;
		cmd->event_id = bpg_event_id(bpg_pick_event(m));
		cmd->seat_count = (uint8_t)(1 + bench_rnd(&m->rng) % 4);
		uint32_t base = (uint32_t)(bench_rnd(&m->rng) % (BPG_SEATS - 4));
		for (uint32_t k = 0; k < cmd->seat_count; k++)
			cmd->seats[k] = base + k;
		cmd->ttl_ms = 2000 + (uint32_t)(bench_rnd(&m->rng) % (BPG_TTL_MS_MAX - 2000));
	}
}

/* Learns the claims a result created (holds to confirm or release,
 * bookings to cancel); a full list forgets the new claim (a hold then
 * expires). */
static inline void bpg_result(bpg_mix *m, const bo_result *r)
{
	uint32_t cap = m->live_max ? m->live_max : BPG_LIVE;
	if (r->status != BO_OK)
		return;
	if (r->op == BO_OP_HOLD_SEATS && m->nh < cap) {
		m->hold_id[m->nh] = r->claim_id;
		m->hold_ev[m->nh++] = r->event_id;
	} else if (r->op == BO_OP_CONFIRM && m->nb < cap) {
		m->book_id[m->nb] = r->claim_id;
		m->book_ev[m->nb++] = r->event_id;
	}
}

#endif /* BO_BENCH_PG_H */
