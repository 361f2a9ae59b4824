/*
 * node_test.c — two boxoffice-server processes as cluster nodes (issue 13)
 * on 127.0.0.11 and 127.0.0.12 with one private etcd (tests/support/
 * etcd_proc.h, data in tmpfs):
 *
 *   - the shard maps are created with node 1 primary, and node 2 becomes
 *     in_sync once caught up (seen through cluster_status);
 *   - holds through the client library are acknowledged; node 2's journal
 *     equals node 1's, (seq, checksum), up to the common point;
 *   - kill -9 of node 1 under load: node 2 promotes within the lease plus
 *     one second (measured from the kill to node 2's cluster_status saying
 *     primary for every shard), the client's retries (same client and
 *     request ids) reach node 2, every acknowledged hold is in node 2's
 *     state (the seat is held, and the retried request is answered from its
 *     idempotency window with the same hold), no seat acknowledged twice;
 *   - kill -9 of the standby: the primary drops it from in_sync and goes on;
 *   - with node 2 played by the test (its replication answered by hand, to
 *     lose what a real server cannot lose on cue): a standby that comes
 *     back holding every record, its last ACK lost, and an append lost on
 *     its way to a live standby — either way, with nothing more to send,
 *     the held reply is released (GW_REPL_REPROBE_MS, the STATE counted as
 *     an acknowledgement).
 *
 * Every wait is for an event (cluster_status polled, with a deadline).
 * Without the etcd binary the tests are skipped, loudly.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/clock.h"
#include "base/seatmap.h"
#include "client/boxoffice.h"
#include "cluster/etcd.h"
#include "cluster/role.h"
#include "journal/journal.h"
#include "protocol/repl.h"
#include "protocol/wire.h"
#include "shard/shard.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

#define SHARDS 2
#define LEASE_MS 2000
#define EVENTS 4
#define SEATS_PER_EVENT 600
#define GW_SWITCHOVER_WAIT_MS 15000

typedef struct tnode {
	int id;
	char ip[16];
	char dir[400];
	char data[600];
	char log[600];
	char client_url[64];
	char repl_url[64];
	pid_t pid;
	int run; /* starts so far: each run logs to server-RUN.log */
	const char *extra; /* one more option for every run (NULL: none) */
	const char *extra_val;
} tnode;

static tetcd tetcd_c;
static tnode nodes[2];
static char root[256];

/* ---- Processes ------------------------------------------------------------ */

static void node_start(tnode *n)
{
	const char *bin = getenv("BOXOFFICE_SERVER");
	cr_assert(bin, "BOXOFFICE_SERVER is not set (meson test sets it)");
	char lease[16];
	snprintf(lease, sizeof(lease), "%d", LEASE_MS);
	char id[8];
	snprintf(id, sizeof(id), "%d", n->id);
	const char *argv[] = {bin,	      "--data-dir", n->data,   "--shards",	   "2",
			      "--seats-max",  "65536",	    "--claims-max", "65536",	   "--idem-capacity",
			      "65536",	      "--events-max", "16",	   "--contexts",	   "8",
			      "--no-pg",      "--status-every", "0",	   "--listen",	   n->client_url,
			      "--etcd",	      tetcd_c.endpoints, "--node-id", id,		   "--repl",
			      n->repl_url,    "--lease-ms", lease,	   "--throttle-rate", "0",
			      n->extra,	      n->extra_val, NULL};
	snprintf(n->log, sizeof(n->log), "%s/server-%d.log", n->dir, ++n->run);
	int rc = tproc_spawn(argv, n->log, &n->pid);
	cr_assert_eq(rc, 0, "cannot start node %d: %s", n->id, strerror(-rc));
}

static void node_init(tnode *n, int id)
{
	n->id = id;
	snprintf(n->ip, sizeof(n->ip), "127.0.0.%d", 10 + id);
	snprintf(n->dir, sizeof(n->dir), "%s/node%d", root, id);
	snprintf(n->data, sizeof(n->data), "%s/data", n->dir);
	int cp = tproc_free_port(), rp = tproc_free_port();
	cr_assert(cp > 0 && rp > 0);
	snprintf(n->client_url, sizeof(n->client_url), "tcp://%s:%d", n->ip, cp);
	snprintf(n->repl_url, sizeof(n->repl_url), "tcp://%s:%d", n->ip, rp);
	cr_assert_eq(mkdir(n->dir, 0700), 0);
	cr_assert_eq(mkdir(n->data, 0700), 0);
}

static void cluster_up(void)
{
	const char *bin = tetcd_binary();
	if (!bin)
		cr_skip_test("SKIPPED: no etcd binary (/usr/bin/etcd or $BO_ETCD_BIN): apt-get install etcd-server");
	cr_assert_eq(tmpdir_make(root, sizeof(root), "node_test"), 0);
	char err[512];
	const char *ips[] = {"127.0.0.31"};
	int rc = tetcd_start(&tetcd_c, 1, ips, err, sizeof(err));
	cr_assert_eq(rc, 0, "etcd: %s", err);
	node_init(&nodes[0], 1);
	node_init(&nodes[1], 2);
}

static void cluster_down(void)
{
	for (int i = 0; i < 2; i++) {
		if (nodes[i].pid > 0) {
			int st;
			tproc_signal_wait(nodes[i].pid, SIGKILL, 5000, &st, NULL);
			nodes[i].pid = 0;
		}
	}
	tetcd_stop(&tetcd_c);
	if (root[0] && !getenv("NODE_TEST_KEEP"))
		tmpdir_remove(root);
}

static void dump_logs(void)
{
	for (int i = 0; i < 2; i++)
		tproc_dump_tail(nodes[i].log, 6000);
}

/* ---- cluster_status --------------------------------------------------------- */

/* Asks node n for its cluster_status. 0, or -1 (not answering yet). */
static int cluster_status(const tnode *n, wire_cluster_status *st)
{
	nng_socket s;
	if (nng_req0_open(&s) != 0)
		return -1;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
	int rc = -1;
	msgpack_sbuffer buf;
	msgpack_sbuffer_init(&buf);
	if (nng_dial(s, n->client_url, NULL, 0) == 0 && wire_encode_cluster_status_request(&buf) == 0 &&
	    nng_send(s, buf.data, buf.size, 0) == 0) {
		void *reply;
		size_t len;
		if (nng_recv(s, &reply, &len, NNG_FLAG_ALLOC) == 0) {
			int status;
			wire_msg wm;
			if (wire_decode_cluster_status(reply, len, st, &status, &wm) == 0 && status == BO_OK)
				rc = 0;
			nng_free(reply, len);
		}
	}
	msgpack_sbuffer_destroy(&buf);
	nng_close(s);
	return rc;
}

static int in_sync_has(const wire_shard_cluster *sc, uint32_t node)
{
	for (uint32_t i = 0; i < sc->in_sync_count; i++)
		if (sc->in_sync[i] == node)
			return 1;
	return 0;
}

typedef int (*status_pred)(const wire_cluster_status *st, void *ctx);

/* Polls node n's cluster_status until pred holds: 0, or -ETIMEDOUT. */
static int wait_status(const tnode *n, int timeout_ms, status_pred pred, void *ctx, wire_cluster_status *out)
{
	static wire_cluster_status st;
	int64_t deadline = bo_clock_ms() + timeout_ms;
	while (bo_clock_ms() < deadline) {
		if (cluster_status(n, &st) == 0 && pred(&st, ctx)) {
			if (out)
				*out = st;
			return 0;
		}
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

/* Every shard: primary `want` (ctx), with every node of the mask in_sync. */
typedef struct want {
	uint32_t primary;
	uint32_t in_sync_also; /* 0: none required */
	uint32_t not_in_sync;  /* 0: none forbidden */
} want;

static int pred_roles(const wire_cluster_status *st, void *ctx)
{
	const want *w = ctx;
	if (st->shard_count != SHARDS)
		return 0;
	for (uint32_t k = 0; k < st->shard_count; k++) {
		const wire_shard_cluster *sc = &st->shards[k];
		if (!sc->primary_known || sc->primary != w->primary)
			return 0;
		if (st->node == w->primary && sc->role != WIRE_ROLE_PRIMARY)
			return 0;
		if (w->in_sync_also && !in_sync_has(sc, w->in_sync_also))
			return 0;
		if (w->not_in_sync && in_sync_has(sc, w->not_in_sync))
			return 0;
	}
	return 1;
}

/* ---- Commands --------------------------------------------------------------- */

/* A client of node n alone that returns not_primary as it came. Its
 * timeout is generous: these calls check answers, not latency (a loaded
 * 2-core machine, a sanitizer build, two fsyncs per write). */
static boc_client *client_open(const tnode *n)
{
	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = 5000;
	opt.linger_us = 0;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.no_retry = 1;
	boc_client *c;
	const char *urls[] = {n->client_url};
	cr_assert_eq(boc_open_servers(urls, 1, &opt, &ro, &c), 0);
	return c;
}

/* A client of the cluster: both addresses; the library follows not_primary
 * and moves on from a dead server, resending with the same ids. */
static boc_client *cluster_client_open(void)
{
	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = 1000;
	opt.linger_us = 0;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.retry_max = 8;
	const char *urls[] = {nodes[0].client_url, nodes[1].client_url};
	boc_client *c;
	cr_assert_eq(boc_open_servers(urls, 2, &opt, &ro, &c), 0);
	return c;
}

static void create_events(boc_client *c)
{
	for (uint64_t e = 1; e <= EVENTS; e++) {
		bo_seatmap *m = bo_seatmap_new(20, SEATS_PER_EVENT, 0);
		cr_assert(m);
		m->category_count = 1;
		for (uint32_t r = 0; r < 20; r++)
			m->rows[r].seats = SEATS_PER_EVENT / 20;
		bo_cmd cmd;
		boc_create_event(&cmd, 900, e, e, m);
		bo_result res;
		char text[256];
		int rc = boc_call(c, &cmd, &res, text, sizeof(text));
		cr_assert_eq(rc, 0, "create_event %" PRIu64 ": %s", e, boc_strerror(rc));
		cr_assert_eq(res.status, BO_OK, "create_event %" PRIu64 ": %s %s", e, boc_status_name(res.status), text);
		bo_seatmap_free(m);
	}
}

/* One hold attempt, identified by (client, request); seat `seat` of event. */
typedef struct hold_op {
	uint64_t client, request, event;
	uint32_t seat;
	int acked;	   /* answered ok */
	uint64_t hold_id;
} hold_op;

#define OPS_MAX 20000
static hold_op ops[OPS_MAX];
static atomic_uint ops_done;
static atomic_int load_stop;
static atomic_int load_after_kill;
static atomic_int_least64_t first_ok_after_kill_ms;

/* Sends op through the cluster client (which follows not_primary and
 * skips a dead server), again with the same ids while the answer is
 * not_primary, busy or none, for up to 30 s. Returns the final status (or
 * -1). */
static int hold_call(boc_client *cl, hold_op *op)
{
	int64_t deadline = bo_clock_ms() + 30000;
	while (bo_clock_ms() < deadline) {
		bo_cmd cmd;
		boc_hold_seats(&cmd, op->client, op->request, op->event, &op->seat, 1, 600000);
		bo_result res;
		char text[256];
		int rc = boc_call(cl, &cmd, &res, text, sizeof(text));
		if (rc == 0 && res.status != BO_NOT_PRIMARY && res.status != BO_BUSY) {
			if (res.status == BO_OK) {
				op->acked = 1;
				op->hold_id = res.claim_id;
				if (atomic_load(&load_after_kill) && atomic_load(&first_ok_after_kill_ms) == 0)
					atomic_store(&first_ok_after_kill_ms, bo_clock_ms());
			}
			return res.status;
		}
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void *load_main(void *arg)
{
	(void)arg;
	boc_client *cl = cluster_client_open();
	for (uint32_t i = 0; i < OPS_MAX && !atomic_load(&load_stop); i++) {
		hold_op *op = &ops[i];
		/* Two clients contend for each seat: at most one may win (a
		 * client per hold: the engine bounds holds per client). */
		op->client = 1000 + i;
		op->request = 1 + i;
		op->event = 1 + (i / 2) % EVENTS;
		op->seat = (i / 2 / EVENTS) % SEATS_PER_EVENT;
		hold_call(cl, op);
		atomic_store(&ops_done, i + 1);
	}
	boc_close(cl);
	return NULL;
}

/* ---- Journals ------------------------------------------------------------- */

/* Compares (seq, checksum) of shard k's journals in the two data dirs for
 * every seq <= upto (both must have them). */
static void journals_agree(uint32_t k, uint64_t upto)
{
	journal_reader *r[2];
	char err[512];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(journal_reader_open(nodes[i].data, k, NULL, &r[i], err, sizeof(err)), 0, "%s", err);
	uint64_t n = 0;
	for (;;) {
		journal_record a, b;
		int ra = journal_reader_next(r[0], &a);
		if (ra != 1 || a.seq > upto)
			break;
		int rb = journal_reader_next(r[1], &b);
		cr_assert_eq(rb, 1, "shard %u: node 2's journal ends before seq %" PRIu64, k, a.seq);
		cr_assert_eq(a.seq, b.seq);
		cr_assert_eq(a.checksum, b.checksum, "shard %u: seq %" PRIu64 " differs", k, a.seq);
		n++;
	}
	cr_assert_geq(n, upto, "shard %u: only %" PRIu64 " of %" PRIu64 " records compared", k, n, upto);
	journal_reader_close(r[0]);
	journal_reader_close(r[1]);
}

/* Shard k's map as etcd holds it. */
static void read_map(uint32_t k, role_map *m)
{
	etcd *e;
	char err[512], key[64];
	cr_assert_eq(etcd_open(tetcd_c.endpoints, 2000, &e, err, sizeof(err)), 0, "%s", err);
	snprintf(key, sizeof(key), "/boxoffice/shards/%u", k);
	char *val = NULL;
	size_t len = 0;
	cr_assert_eq(etcd_get(e, key, &val, &len, NULL, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(role_map_decode(val, len, m, err, sizeof(err)), 0, "%s", err);
	free(val);
	etcd_close(e);
}

/* ---- Tests ---------------------------------------------------------------- */

TestSuite(node, .init = cluster_up, .fini = cluster_down, .timeout = 120);

Test(node, failover_loses_nothing)
{
	node_start(&nodes[0]);
	want w1 = {.primary = 1};
	if (wait_status(&nodes[0], 20000, pred_roles, &w1, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not become the primary of every shard");
	}
	node_start(&nodes[1]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 20000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not become in_sync");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	boc_close(c1);

	pthread_t load;
	cr_assert_eq(pthread_create(&load, NULL, load_main, NULL), 0);
	/* Some acknowledged load before the kill. */
	int64_t until = bo_clock_ms() + 10000;
	while (atomic_load(&ops_done) < 300 && bo_clock_ms() < until) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_geq(atomic_load(&ops_done), 300, "the load made no progress against node 1");

	int st;
	int64_t kill_ms = bo_clock_ms();
	atomic_store(&load_after_kill, 1);
	cr_assert_eq(tproc_signal_wait(nodes[0].pid, SIGKILL, 5000, &st, NULL), 0);
	nodes[0].pid = 0;
	want w2 = {.primary = 2};
	wire_cluster_status cs;
	if (wait_status(&nodes[1], 20000, pred_roles, &w2, &cs) != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not promote");
	}
	int64_t failover_ms = bo_clock_ms() - kill_ms;
	fprintf(stderr, "node_test: failover took %" PRId64 " ms (lease %d ms)\n", failover_ms, LEASE_MS);
	cr_assert_leq(failover_ms, LEASE_MS + 1000, "failover took %" PRId64 " ms, over lease + 1 s", failover_ms);

	/* Load goes on against node 2 for a while. */
	unsigned at_promote = atomic_load(&ops_done);
	until = bo_clock_ms() + 10000;
	while (atomic_load(&ops_done) < at_promote + 200 && bo_clock_ms() < until) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	atomic_store(&load_stop, 1);
	pthread_join(load, NULL);
	cr_assert_geq(atomic_load(&ops_done), at_promote + 200, "the load did not go on against node 2");
	cr_assert_neq(atomic_load(&first_ok_after_kill_ms), 0, "no hold was acknowledged after the kill");
	fprintf(stderr, "node_test: first hold acknowledged %" PRId64 " ms after the kill\n",
		atomic_load(&first_ok_after_kill_ms) - kill_ms);

	/* Every acknowledged hold is in node 2's state; no seat twice. */
	boc_client *c2 = client_open(&nodes[1]);
	unsigned done = atomic_load(&ops_done), acked = 0;
	for (unsigned i = 0; i < done; i++) {
		hold_op *op = &ops[i];
		if (!op->acked)
			continue;
		acked++;
		if (i % 2 == 0 && i + 1 < done)
			cr_assert(!ops[i + 1].acked, "seat %u of event %" PRIu64 " acknowledged twice", op->seat, op->event);
		bo_cmd cmd;
		boc_hold_seats(&cmd, op->client, op->request, op->event, &op->seat, 1, 600000);
		bo_result res;
		char text[256];
		cr_assert_eq(boc_call(c2, &cmd, &res, text, sizeof(text)), 0);
		cr_assert_eq(res.status, BO_OK, "acknowledged hold (client %" PRIu64 ", request %" PRIu64 ") lost: %s %s",
			     op->client, op->request, boc_status_name(res.status), text);
		cr_assert_eq(res.claim_id, op->hold_id, "hold %" PRIu64 " came back as %" PRIu64, op->hold_id,
			     res.claim_id);
		bo_cmd q;
		boc_query_seats(&q, op->event, &op->seat, 1);
		cr_assert_eq(boc_call(c2, &q, &res, text, sizeof(text)), 0);
		cr_assert_eq(res.status, BO_OK);
		cr_assert_eq(res.seat_state[0], BO_SEAT_HELD, "seat %u of event %" PRIu64 " not held on node 2",
			     op->seat, op->event);
	}
	boc_close(c2);
	cr_assert_geq(acked, 200);

	/* Node 1's journal (it is dead) and node 2's agree up to the start
	 * of node 2's term (the map's start_seq); after it, node 1 may have an
	 * unacknowledged tail. */
	for (uint32_t k = 0; k < SHARDS; k++) {
		role_map m;
		read_map(k, &m);
		cr_assert_eq(m.epoch, 2);
		cr_assert_eq(m.primary, 2);
		cr_assert_eq(cs.shards[k].epoch, 2);
		journals_agree(k, m.start_seq - 1);
	}
	fprintf(stderr, "node_test: %u holds acknowledged, %u attempted\n", acked, done);

	/* Node 1 comes back: its tail after the term's start (if it had one)
	 * is cut, it catches up and is in sync again; then the journals agree
	 * through what node 2 has from it. */
	node_start(&nodes[0]);
	want w21 = {.primary = 2, .in_sync_also = 1};
	if (wait_status(&nodes[1], 30000, pred_roles, &w21, &cs) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not rejoin in sync");
	}
	for (uint32_t k = 0; k < SHARDS; k++) {
		cr_assert_eq(cs.shards[k].standby_count, 1);
		journals_agree(k, cs.shards[k].standbys[0].acked_seq);
	}
}

Test(node, journals_agree_and_standby_loss)
{
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 30000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 primary with node 2 in sync: not reached");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	for (uint32_t i = 0; i < 400; i++) {
		bo_cmd cmd;
		uint32_t seat = i / EVENTS;
		boc_hold_seats(&cmd, 100000 + i, 1, 1 + i % EVENTS, &seat, 1, 600000);
		bo_result res;
		cr_assert_eq(boc_call(c1, &cmd, &res, NULL, 0), 0);
		cr_assert_eq(res.status, BO_OK, "hold %u: %s", i, boc_status_name(res.status));
	}
	/* Every record acknowledged by node 2: then both journals hold the
	 * same records. */
	wire_cluster_status cs;
	cr_assert_eq(cluster_status(&nodes[0], &cs), 0);
	for (uint32_t k = 0; k < SHARDS; k++) {
		const wire_shard_cluster *sc = &cs.shards[k];
		cr_assert_eq(sc->standby_count, 1);
		cr_assert_eq(sc->standbys[0].node, 2);
		/* Replies were released only once node 2 had the records. */
		cr_assert_geq(sc->standbys[0].acked_seq, sc->released_seq, "shard %u released past the standby", k);
		journals_agree(k, sc->standbys[0].acked_seq);
	}
	/* kill -9 the standby: the primary drops it and goes on. */
	int st;
	cr_assert_eq(tproc_signal_wait(nodes[1].pid, SIGKILL, 5000, &st, NULL), 0);
	nodes[1].pid = 0;
	want w1 = {.primary = 1, .not_in_sync = 2};
	if (wait_status(&nodes[0], LEASE_MS * 3, pred_roles, &w1, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not drop the dead standby");
	}
	for (uint32_t i = 0; i < 50; i++) {
		bo_cmd cmd;
		uint32_t seat = 200 + i;
		boc_hold_seats(&cmd, 200000 + i, 1, 1 + i % EVENTS, &seat, 1, 600000);
		bo_result res;
		cr_assert_eq(boc_call(c1, &cmd, &res, NULL, 0), 0, "no answer after the standby died");
		cr_assert_eq(res.status, BO_OK, "hold after the standby died: %s", boc_status_name(res.status));
	}
	boc_close(c1);
	/* A graceful stop of a cluster node: exit 0, and (in the sanitizer
	 * build) no report of a leak or a bad access in its log. */
	int64_t took;
	cr_assert_eq(tproc_signal_wait(nodes[0].pid, SIGTERM, 20000, &st, &took), 0);
	nodes[0].pid = 0;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "node 1 did not stop cleanly (status %d)", st);
	char *log = tproc_read_file(nodes[0].log, NULL);
	cr_assert(log);
	const char *bad = tproc_sanitizer_report(log);
	if (bad)
		tproc_dump_tail(nodes[0].log, 8000);
	cr_assert(!bad, "sanitizer report in node 1's log: %.80s", bad);
	free(log);
}

/* Asks node n to hand shard k to node `to`; returns the reply's status. */
static int switchover(const tnode *n, uint32_t k, uint32_t to, char *text, size_t cap)
{
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, GW_SWITCHOVER_WAIT_MS);
	msgpack_sbuffer buf;
	msgpack_sbuffer_init(&buf);
	cr_assert_eq(nng_dial(s, n->client_url, NULL, 0), 0);
	cr_assert_eq(wire_encode_switchover_request(k, to, &buf), 0);
	cr_assert_eq(nng_send(s, buf.data, buf.size, 0), 0);
	void *reply;
	size_t len;
	int rc = nng_recv(s, &reply, &len, NNG_FLAG_ALLOC);
	cr_assert_eq(rc, 0, "no switchover reply: %s", nng_strerror(rc));
	int status = -1;
	wire_msg wm;
	cr_assert_eq(wire_decode_status_reply(reply, len, &status, NULL, &wm), 0, "%s", wm.error);
	snprintf(text, cap, "%s", wm.error);
	nng_free(reply, len);
	msgpack_sbuffer_destroy(&buf);
	nng_close(s);
	return status;
}

static int pred_shard_role(const wire_cluster_status *st, void *ctx)
{
	const uint32_t *w = ctx; /* shard, primary, role here, node also in sync */
	const wire_shard_cluster *sc = &st->shards[w[0]];
	return st->shard_count == SHARDS && sc->primary_known && sc->primary == w[1] && sc->role == w[2] &&
	       (w[3] == 0 || in_sync_has(sc, w[3]));
}

/* One hold at node n, no retry, answered within timeout_ms: 0 with its
 * status, or the client's error (-ETIMEDOUT: no answer). */
static int hold_send(const tnode *n, uint64_t client, uint64_t event, uint32_t seat, uint32_t timeout_ms,
		     int *status /* OUT */)
{
	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = timeout_ms;
	opt.linger_us = 0;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.no_retry = 1;
	const char *urls[] = {n->client_url};
	boc_client *c;
	cr_assert_eq(boc_open_servers(urls, 1, &opt, &ro, &c), 0);
	bo_cmd cmd;
	boc_hold_seats(&cmd, client, 1, event, &seat, 1, 600000);
	bo_result res;
	int rc = boc_call(c, &cmd, &res, NULL, 0);
	boc_close(c);
	*status = rc == 0 ? res.status : -1;
	return rc;
}

static int hold_at(const tnode *n, uint64_t client, uint64_t event, uint32_t seat)
{
	/* A generous timeout: this is about what is answered, not how fast
	 * (a loaded 2-core machine runs the other tests beside). */
	int status;
	int64_t t0 = bo_clock_ms();
	int rc = hold_send(n, client, event, seat, 5000, &status);
	cr_assert_eq(rc, 0, "hold (client %" PRIu64 ", event %" PRIu64 ") at node %d: %s after %" PRId64 " ms", client,
		     event, n->id, boc_strerror(rc), bo_clock_ms() - t0);
	return status;
}

Test(node, rejoin_and_switchover)
{
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 30000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 primary with node 2 in sync: not reached");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	boc_close(c1);
	for (uint32_t i = 0; i < 40; i++)
		cr_assert_eq(hold_at(&nodes[0], 300000 + i, 1 + i % EVENTS, i), BO_OK);
	int st;
	cr_assert_eq(tproc_signal_wait(nodes[0].pid, SIGKILL, 5000, &st, NULL), 0);
	nodes[0].pid = 0;
	want w2 = {.primary = 2};
	if (wait_status(&nodes[1], 20000, pred_roles, &w2, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not promote");
	}
	for (uint32_t i = 0; i < 40; i++)
		cr_assert_eq(hold_at(&nodes[1], 400000 + i, 1 + i % EVENTS, 100 + i), BO_OK);
	/* Node 1 comes back: it rejoins as a standby and is in sync again. */
	node_start(&nodes[0]);
	want w21 = {.primary = 2, .in_sync_also = 1};
	if (wait_status(&nodes[1], 30000, pred_roles, &w21, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not rejoin in sync");
	}
	/* Planned switchover of shard 0 back to node 1. */
	char text[256];
	int status = switchover(&nodes[1], 0, 1, text, sizeof(text));
	cr_assert_eq(status, BO_OK, "switchover: %s %s", boc_status_name(status), text);
	uint32_t w_new[4] = {0, 1, WIRE_ROLE_PRIMARY, 0};
	if (wait_status(&nodes[0], 20000, pred_shard_role, w_new, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 is not shard 0's primary after the switchover");
	}
	uint32_t w_old[4] = {0, 1, WIRE_ROLE_STANDBY, 0};
	if (wait_status(&nodes[1], 20000, pred_shard_role, w_old, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not become shard 0's standby after the switchover");
	}
	uint32_t w_sync[4] = {0, 1, WIRE_ROLE_PRIMARY, 2};
	if (wait_status(&nodes[0], 20000, pred_shard_role, w_sync, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not become shard 0's in-sync standby again");
	}
	/* Each node takes the writes of the shard it is primary of and
	 * refuses the other's with not_primary. Every earlier hold is there. */
	for (uint64_t e = 1; e <= EVENTS; e++) {
		int zero = shard_for_event(e, SHARDS) == 0;
		int s1 = hold_at(&nodes[0], 500000 + e, e, 300);
		int s2 = hold_at(&nodes[1], 600000 + e, e, 301);
		cr_assert_eq(s1, zero ? BO_OK : BO_NOT_PRIMARY, "event %" PRIu64 " at node 1: %s", e, boc_status_name(s1));
		cr_assert_eq(s2, zero ? BO_NOT_PRIMARY : BO_OK, "event %" PRIu64 " at node 2: %s", e, boc_status_name(s2));
	}
	for (uint32_t i = 0; i < 40; i++) {
		uint64_t e = 1 + i % EVENTS;
		const tnode *p = shard_for_event(e, SHARDS) == 0 ? &nodes[0] : &nodes[1];
		cr_assert_eq(hold_at(p, 300000 + i, e, i), BO_OK, "hold %u (epoch 1) lost", i);
		cr_assert_eq(hold_at(p, 400000 + i, e, 100 + i), BO_OK, "hold %u (epoch 2) lost", i);
	}
}

static int pred_all_standby(const wire_cluster_status *st, void *ctx)
{
	uint32_t primary = *(const uint32_t *)ctx;
	if (st->shard_count != SHARDS)
		return 0;
	for (uint32_t k = 0; k < SHARDS; k++)
		if (st->shards[k].role != WIRE_ROLE_STANDBY || !st->shards[k].primary_known ||
		    st->shards[k].primary != primary)
			return 0;
	return 1;
}

/* SIGSTOP the primary past its lease: node 2 promotes; SIGCONT: node 1
 * learns of the newer term, fences (acknowledges nothing more), cuts its
 * tail, reopens as a standby and is in sync again, all while running. */
Test(node, paused_primary_steps_down)
{
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 30000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 primary with node 2 in sync: not reached");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	boc_close(c1);
	for (uint32_t i = 0; i < 20; i++)
		cr_assert_eq(hold_at(&nodes[0], 700000 + i, 1 + i % EVENTS, i), BO_OK);
	cr_assert_eq(kill(nodes[0].pid, SIGSTOP), 0);
	want w2 = {.primary = 2};
	int rc = wait_status(&nodes[1], 20000, pred_roles, &w2, NULL);
	kill(nodes[0].pid, SIGCONT);
	if (rc != 0) {
		dump_logs();
		cr_assert_fail("node 2 did not promote while node 1 was paused");
	}
	for (uint32_t i = 0; i < 20; i++)
		cr_assert_eq(hold_at(&nodes[1], 800000 + i, 1 + i % EVENTS, 100 + i), BO_OK);
	uint32_t p2 = 2;
	if (wait_status(&nodes[0], 20000, pred_all_standby, &p2, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not step down to a standby of node 2");
	}
	want w21 = {.primary = 2, .in_sync_also = 1};
	if (wait_status(&nodes[1], 30000, pred_roles, &w21, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 did not become in sync again");
	}
	/* Node 1 refuses writes now; every acknowledged hold is on node 2. */
	cr_assert_eq(hold_at(&nodes[0], 900000, 1, 500), BO_NOT_PRIMARY);
	for (uint32_t i = 0; i < 20; i++) {
		cr_assert_eq(hold_at(&nodes[1], 700000 + i, 1 + i % EVENTS, i), BO_OK, "hold %u of epoch 1 lost", i);
		cr_assert_eq(hold_at(&nodes[1], 800000 + i, 1 + i % EVENTS, 100 + i), BO_OK);
	}
}

/* --min-in-sync 2: with the standby dead the primary acknowledges nothing
 * (the held write is not lost, not answered ok); once the standby is back
 * and in sync, the held write and new ones are acknowledged. */
Test(node, min_in_sync_two)
{
	for (int i = 0; i < 2; i++) {
		nodes[i].extra = "--min-in-sync";
		nodes[i].extra_val = "2";
	}
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 30000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 primary with node 2 in sync: not reached");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	boc_close(c1);
	cr_assert_eq(hold_at(&nodes[0], 910000, 1, 1), BO_OK);
	int st;
	cr_assert_eq(tproc_signal_wait(nodes[1].pid, SIGKILL, 5000, &st, NULL), 0);
	nodes[1].pid = 0;
	/* Not acknowledged while the standby is away (busy, or no answer). */
	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = 3000;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.no_retry = 1;
	const char *urls[] = {nodes[0].client_url};
	boc_client *c;
	cr_assert_eq(boc_open_servers(urls, 1, &opt, &ro, &c), 0);
	bo_cmd cmd;
	uint32_t seat = 2;
	boc_hold_seats(&cmd, 910001, 1, 1, &seat, 1, 600000);
	bo_result res;
	int rc = boc_call(c, &cmd, &res, NULL, 0);
	cr_assert(rc != 0 || res.status != BO_OK, "acknowledged with the only standby dead and --min-in-sync 2");
	boc_close(c);
	want still = {.primary = 1, .in_sync_also = 2};
	wire_cluster_status cs;
	cr_assert_eq(cluster_status(&nodes[0], &cs), 0);
	cr_assert(pred_roles(&cs, &still), "the dead standby was dropped despite --min-in-sync 2");
	node_start(&nodes[1]);
	/* Back: the same request is acknowledged (busy until the standby
	 * acknowledges again), and new ones. */
	int status = -1;
	int64_t until = bo_clock_ms() + 20000;
	while (status != BO_OK && bo_clock_ms() < until) {
		status = hold_at(&nodes[0], 910001, 1, 2);
		cr_assert(status == BO_OK || status == BO_BUSY, "held hold: %s", boc_status_name(status));
		if (status != BO_OK) {
			struct timespec ts = {0, 50 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	cr_assert_eq(status, BO_OK, "the held hold after the standby came back");
	cr_assert_eq(hold_at(&nodes[0], 910002, 1, 3), BO_OK);
}

/* ---- Node 2 played by the test ----------------------------------------------
 * What a real standby cannot be made to do on cue — lose an append on its
 * way, or die between making records durable and acknowledging them — a
 * stand-in does: the test registers node 2's key in etcd and answers node
 * 1's replication itself on node 2's repl address, with a PAIR1 poly
 * listener as gateway/repl.c's receiver. It answers a probe with STATE
 * (its last record is durable: it keeps no journal, only a sequence per
 * shard; the checksum it names is read from node 1's journal, the same
 * record), takes appends in order (GAP otherwise) and acknowledges them
 * while `acking`; idle, it repeats its last acknowledgement on each probe,
 * as the real ack thread repeats it (GW_REPL_REACK_NS). */
typedef struct fake_shard {
	uint64_t epoch;	    /* of the last append taken */
	uint64_t last;	    /* last record taken (all of them "durable") */
	uint64_t acked;	    /* acknowledged in this life (a restart forgets it) */
	uint64_t cs_seq;    /* cs is the checksum of record cs_seq */
	uint64_t cs;
	int drop_next;	    /* the next append is lost on its way */
} fake_shard;

static struct {
	nng_socket sock;
	pthread_t thread;
	int running;
	atomic_int stop;
	atomic_int acking;
	pthread_mutex_t lock; /* sh[], error */
	fake_shard sh[SHARDS];
	/* What went wrong on the stand-in's thread (criterion asserts only on
	 * the test's own): checked by fake_stop. */
	char error[256];
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Under fake.lock: the first error is kept. */
static void fake_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fake_error(const char *fmt, ...)
{
	if (fake.error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fake.error, sizeof(fake.error), fmt, ap);
	va_end(ap);
}

/* Under fake.lock: the content checksum of record seq of shard k in node
 * 1's journal (0 after an error). */
static uint64_t journal_checksum_at(uint32_t k, uint64_t seq)
{
	journal_reader *r;
	char err[512];
	if (journal_reader_open(nodes[0].data, k, NULL, &r, err, sizeof(err)) != 0) {
		fake_error("node 1's journal of shard %u: %s", k, err);
		return 0;
	}
	journal_record rec;
	int rc;
	while ((rc = journal_reader_next(r, &rec)) == 1 && rec.seq < seq)
		;
	uint64_t cs = rc == 1 && rec.seq == seq ? rec.checksum : 0;
	if (cs == 0)
		fake_error("shard %u: record %" PRIu64 " not in node 1's journal", k, seq);
	journal_reader_close(r);
	return cs;
}

/* Under fake.lock. */
static void fake_send(nng_pipe p, int encoded, const msgpack_sbuffer *b)
{
	nng_msg *m;
	if (encoded != 0 || nng_msg_alloc(&m, 0) != 0) {
		fake_error("cannot encode or allocate a replication message");
		return;
	}
	if (nng_msg_append(m, b->data, b->size) != 0) {
		nng_msg_free(m);
		fake_error("cannot allocate a replication message");
		return;
	}
	nng_msg_set_pipe(m, p);
	if (nng_sendmsg(fake.sock, m, 0) != 0)
		nng_msg_free(m); /* lost, as a real standby's reply can be */
}

/* Under fake.lock. */
static uint64_t fake_checksum(uint32_t k)
{
	fake_shard *s = &fake.sh[k];
	if (s->last == 0)
		return 0;
	if (s->cs_seq != s->last) {
		s->cs = journal_checksum_at(k, s->last);
		s->cs_seq = s->last;
	}
	return s->cs;
}

static void fake_ack(nng_pipe p, uint32_t k, uint64_t epoch, msgpack_sbuffer *b)
{
	fake_shard *s = &fake.sh[k];
	repl_ack a = {.shard = k, .epoch = epoch, .durable_seq = s->acked, .last_seq = s->last};
	b->size = 0;
	fake_send(p, repl_encode_ack(&a, b), b);
}

/* Under fake.lock. */
static void fake_take(nng_pipe p, const repl_msg *msg, msgpack_sbuffer *b)
{
	if (msg->type == REPL_PROBE && msg->u.probe.shard < SHARDS) {
		uint32_t k = msg->u.probe.shard;
		fake_shard *s = &fake.sh[k];
		repl_state st = {.shard = k, .epoch = s->epoch, .last_seq = s->last, .last_checksum = fake_checksum(k),
				 .durable_seq = s->last, .node = 2};
		b->size = 0;
		fake_send(p, repl_encode_state(&st, b), b);
		if (atomic_load(&fake.acking) && s->acked > 0)
			fake_ack(p, k, s->epoch, b);
	} else if (msg->type == REPL_APPEND && msg->u.append.shard < SHARDS) {
		const repl_append *a = &msg->u.append;
		fake_shard *s = &fake.sh[a->shard];
		if (s->drop_next) {
			s->drop_next = 0;
		} else if (a->first_seq != s->last + 1) {
			repl_refuse rf = {.shard = a->shard, .epoch = s->epoch, .reason = REPL_R_GAP, .last_seq = s->last,
					  .last_checksum = fake_checksum(a->shard)};
			snprintf(rf.message, sizeof(rf.message), "expected %" PRIu64, s->last + 1);
			b->size = 0;
			fake_send(p, repl_encode_refuse(&rf, b), b);
		} else {
			s->last = a->first_seq + a->count - 1;
			if (a->epoch > s->epoch)
				s->epoch = a->epoch;
			if (atomic_load(&fake.acking)) {
				s->acked = s->last;
				fake_ack(p, a->shard, a->epoch, b);
			}
		}
	}
}

static void *fake_main(void *arg)
{
	(void)arg;
	static repl_record recs[REPL_RECORDS_MAX]; /* one stand-in thread at a time */
	msgpack_sbuffer b;
	msgpack_sbuffer_init(&b);
	while (!atomic_load(&fake.stop)) {
		nng_msg *m;
		if (nng_recvmsg(fake.sock, &m, 0) != 0)
			continue; /* the receive timeout: look at stop */
		repl_msg msg;
		char err[128];
		nng_pipe p = nng_msg_get_pipe(m);
		int rc = repl_decode(nng_msg_body(m), nng_msg_len(m), &msg, recs, REPL_RECORDS_MAX, err, sizeof(err));
		nng_msg_free(m); /* the payloads are not looked at */
		pthread_mutex_lock(&fake.lock);
		if (rc != 0)
			fake_error("node 1 sent a bad replication message: %s", err);
		else
			fake_take(p, &msg, &b);
		pthread_mutex_unlock(&fake.lock);
	}
	msgpack_sbuffer_destroy(&b);
	return NULL;
}

/* Starts (or restarts) node 2's stand-in on its repl address. A restart
 * keeps the records (they were durable) and forgets what it acknowledged. */
static void fake_start(void)
{
	pthread_mutex_lock(&fake.lock);
	for (uint32_t k = 0; k < SHARDS; k++)
		fake.sh[k].acked = 0;
	pthread_mutex_unlock(&fake.lock);
	cr_assert_eq(nng_pair1_open_poly(&fake.sock), 0);
	nng_socket_set_size(fake.sock, NNG_OPT_RECVMAXSZ, REPL_MSG_MAX);
	nng_socket_set_ms(fake.sock, NNG_OPT_RECVTIMEO, 50);
	nng_socket_set_ms(fake.sock, NNG_OPT_SENDTIMEO, 200);
	/* The port was just closed by the stand-in's previous life. */
	int rc;
	int64_t until = bo_clock_ms() + 5000;
	while ((rc = nng_listen(fake.sock, nodes[1].repl_url, NULL, 0)) == NNG_EADDRINUSE && bo_clock_ms() < until) {
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(rc, 0, "node 2's stand-in cannot listen on %s: %s", nodes[1].repl_url, nng_strerror(rc));
	atomic_store(&fake.acking, 1);
	atomic_store(&fake.stop, 0);
	cr_assert_eq(pthread_create(&fake.thread, NULL, fake_main, NULL), 0);
	fake.running = 1;
}

/* "kill -9": the connections close, no reply of any kind goes out. Then
 * what went wrong on its thread fails the test. */
static void fake_stop(void)
{
	if (!fake.running)
		return;
	atomic_store(&fake.stop, 1);
	pthread_join(fake.thread, NULL);
	nng_close(fake.sock);
	fake.running = 0;
	cr_assert_eq(fake.error[0], 0, "node 2's stand-in: %s", fake.error);
}

static uint64_t fake_last(uint32_t k)
{
	pthread_mutex_lock(&fake.lock);
	uint64_t last = fake.sh[k].last;
	pthread_mutex_unlock(&fake.lock);
	return last;
}

/* Node 2's key, as a live server writes it (no lease: it stays while the
 * stand-in is "dead", as a key does for a lease time), then the stand-in;
 * then node 1, primary with the stand-in in sync. */
static void fake_cluster_up(void)
{
	etcd *e;
	char err[512], val[256];
	cr_assert_eq(etcd_open(tetcd_c.endpoints, 2000, &e, err, sizeof(err)), 0, "%s", err);
	int len = snprintf(val, sizeof(val), "{\"id\":2,\"client\":\"%s\",\"repl\":\"%s\"}", nodes[1].client_url,
			   nodes[1].repl_url);
	cr_assert_eq(etcd_put(e, "/boxoffice/nodes/2", val, (size_t)len, 0, err, sizeof(err)), 0, "%s", err);
	etcd_close(e);
	fake_start();
	nodes[0].extra = "--min-in-sync";
	nodes[0].extra_val = "2";
	node_start(&nodes[0]);
	want w12 = {.primary = 1, .in_sync_also = 2};
	if (wait_status(&nodes[0], 30000, pred_roles, &w12, NULL) != 0) {
		dump_logs();
		cr_assert_fail("node 1 primary with node 2's stand-in in sync: not reached");
	}
	boc_client *c1 = client_open(&nodes[0]);
	create_events(c1);
	boc_close(c1);
	cr_assert_eq(hold_at(&nodes[0], 950000, 1, 1), BO_OK);
}

/* A hold sent once and left to its fate; its answer lands in `status`. */
typedef struct pending_hold {
	boc_client *c;
	atomic_int done;
	int err, status;
} pending_hold;

static void pending_cb(void *ctx, int err, const bo_result *res, const char *text)
{
	pending_hold *h = ctx;
	(void)text;
	h->err = err;
	h->status = err == 0 ? res->status : -1;
	atomic_store(&h->done, 1);
}

static void pending_send(pending_hold *h, uint64_t client, uint64_t event, uint32_t seat)
{
	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = 20000; /* beyond the scenario: an answer, not a timeout, ends it */
	opt.linger_us = 0;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.no_retry = 1;
	const char *urls[] = {nodes[0].client_url};
	cr_assert_eq(boc_open_servers(urls, 1, &opt, &ro, &h->c), 0);
	bo_cmd cmd;
	boc_hold_seats(&cmd, client, 1, event, &seat, 1, 600000);
	cr_assert_eq(boc_submit(h->c, &cmd, pending_cb, h), 0);
}

/* Waits for the answer (at most the client's timeout); closes the client. */
static int pending_wait(pending_hold *h)
{
	while (!atomic_load(&h->done)) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	boc_close(h->c);
	return h->status;
}

/* An event of shard k. */
static uint64_t event_of_shard(uint32_t k)
{
	for (uint64_t e = 1; e <= EVENTS; e++)
		if (shard_for_event(e, SHARDS) == k)
			return e;
	cr_assert_fail("no event of shard %u among the %d", k, EVENTS);
	return 0;
}

/* The standby dies after its records became durable and before node 1
 * heard its acknowledgement, and comes back with every record node 1 has:
 * nothing is left to send, so no acknowledgement will ever come. Its STATE
 * (durable through the last record) must release the held reply — the
 * floor follows what the sender counts as acknowledged. Before the fix the
 * sender counted it and the floor never moved: the shard's writes stayed
 * held for good (faults.py min_in_sync, 1 run in 3). */
Test(node, standby_back_with_every_record)
{
	fake_cluster_up();
	uint32_t k = shard_for_event(1, SHARDS);
	uint64_t other = event_of_shard(1 - k);
	/* Its records reach the stand-in, which acknowledges nothing more. */
	atomic_store(&fake.acking, 0);
	uint64_t before = fake_last(k);
	pending_hold h = {0};
	pending_send(&h, 950001, 1, 2);
	int64_t until = bo_clock_ms() + 10000;
	while (fake_last(k) == before && bo_clock_ms() < until) {
		struct timespec ts = {0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_gt(fake_last(k), before, "the held hold's record never reached node 2's stand-in");
	fake_stop();
	/* Node 1 notices the standby is gone: it holds new writes (answers
	 * busy; asked on the other shard, whose records do not matter here). */
	int status = -1;
	until = bo_clock_ms() + 10000;
	for (uint32_t i = 0; status != BO_BUSY && bo_clock_ms() < until; i++)
		hold_send(&nodes[0], 951000 + i, other, 10 + i, 300, &status);
	cr_assert_eq(status, BO_BUSY, "node 1 did not hold writes with its only standby dead");
	cr_assert_eq(atomic_load(&h.done), 0, "the hold was answered with its standby dead");
	fake_start();
	cr_assert_eq(pending_wait(&h), BO_OK, "the held hold after the standby came back with it: %s (err %d)",
		     h.status < 0 ? "no answer" : boc_status_name(h.status), h.err);
	fake_stop();
}

/* An append is lost on its way (as on a reconnect) while the standby stays
 * up and answers every heartbeat probe: node 1 must not wait for ever for
 * an acknowledgement that cannot come — with no progress it probes again,
 * resends from the standby's last record, and the held reply is released.
 * Before the fix the heartbeats' STATEs counted as "heard" and hid it. */
Test(node, lost_append_is_resent)
{
	fake_cluster_up();
	uint32_t k = shard_for_event(1, SHARDS);
	pthread_mutex_lock(&fake.lock);
	fake.sh[k].drop_next = 1;
	uint64_t before = fake.sh[k].last;
	pthread_mutex_unlock(&fake.lock);
	pending_hold h = {0};
	pending_send(&h, 952001, 1, 3);
	cr_assert_eq(pending_wait(&h), BO_OK, "the hold whose append was lost: %s (err %d)",
		     h.status < 0 ? "no answer" : boc_status_name(h.status), h.err);
	pthread_mutex_lock(&fake.lock);
	cr_assert_eq(fake.sh[k].drop_next, 0, "no append was lost: the test proved nothing");
	cr_assert_gt(fake.sh[k].last, before);
	pthread_mutex_unlock(&fake.lock);
	fake_stop();
}
