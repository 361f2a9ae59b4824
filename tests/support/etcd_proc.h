/*
 * etcd_proc.h — private etcd members for tests: one member or a 3-member
 * cluster, data in tmpfs (/dev/shm, else $TMPDIR), client and peer ports
 * picked free at random on the member's own loopback address (never 2379 or
 * 2380, where a system etcd may listen), each member its own 127.0.0.x so
 * that fault tests can cut or pause one.
 *
 * Free of Criterion: failures come back as -errno with a message; the
 * Criterion tests turn "no etcd binary" into a loud cr_skip (see
 * tetcd_binary), plain programs into a printed skip.
 *
 * Readiness is an event: a start returns once every member answers a
 * linearizable read through the HTTP gateway (so the cluster has a leader),
 * asking again every 50 ms up to a generous bound (TETCD_READY_MS). The
 * members die with the thread that started them (PR_SET_PDEATHSIG, as
 * support/proc.c does), so a failed test leaves none behind; tetcd_stop
 * kills them and removes their data.
 */
#ifndef BO_TEST_ETCD_PROC_H
#define BO_TEST_ETCD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Members of one test cluster (3 is what the fault tests use; 5 fits). */
#define TETCD_MEMBERS_MAX 5

/* Upper bound on a cluster's start: elections and the first WAL segment on
 * a loaded 2-core machine under sanitizers. Far above the usual ~1 s. */
#define TETCD_READY_MS 30000

typedef struct tetcd_member {
	pid_t pid;       /* 0: not running (killed or never started) */
	bool paused;     /* SIGSTOPped by tetcd_pause */
	char ip[16];     /* its loopback address, e.g. "127.0.0.21" */
	int client_port; /* its client (gateway) port */
	int peer_port;   /* its raft peer port */
	char url[64];    /* "http://ip:client_port" */
	char dir[256];   /* its data directory */
	char log[256];   /* its stdout+stderr */
} tetcd_member;

typedef struct tetcd {
	size_t n;                               /* members */
	tetcd_member m[TETCD_MEMBERS_MAX];      /* in the order of the ips given */
	char root[200];                         /* holds the members' dirs and logs */
	char endpoints[TETCD_MEMBERS_MAX * 66]; /* "url1,url2,..." for etcd_open */
} tetcd;

/* The etcd binary to run: $BO_ETCD_BIN, else /usr/bin/etcd; NULL when it is
 * not an executable file (the caller skips loudly, naming the path). */
const char *tetcd_binary(void);

/* Starts n (1..TETCD_MEMBERS_MAX) members forming one new cluster, member i
 * listening on ips[i] (ips may be NULL: all on 127.0.0.1), and waits until
 * each answers (TETCD_READY_MS). A port taken between choosing and binding
 * makes a member exit: the whole start is retried with new ports (3 times).
 * Returns 0 (c filled); -ENOENT no etcd binary; -ETIMEDOUT not ready in time;
 * -ECHILD a member kept exiting; -errno of the file system. On failure
 * nothing is left running or on disk, and err says why (with the tail of
 * the failing member's log on stderr). */
int tetcd_start(tetcd *c, size_t n, const char *const *ips, char *err, size_t errlen);

/* SIGKILLs member i and reaps it (its data stays: a dead member, not a
 * removed one). Returns 0 or -errno. */
int tetcd_kill(tetcd *c, size_t i);

/* SIGSTOPs (tetcd_pause) or SIGCONTs (tetcd_resume) member i: a member that
 * hangs with its sockets open. Returns 0 or -errno. */
int tetcd_pause(tetcd *c, size_t i);
int tetcd_resume(tetcd *c, size_t i);

/* Kills every member still running, reaps them and removes root with all
 * in it. Safe on a zeroed or already stopped tetcd. */
void tetcd_stop(tetcd *c);

#endif /* BO_TEST_ETCD_PROC_H */
