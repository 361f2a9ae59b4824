/*
 * server_test.c — proves that a real boxoffice-server process, spoken to over
 * real nng sockets (tcp:// and ipc://), keeps its promises end to end:
 *
 *  1. contention: 200 clients race for the last 100 free seats of an event
 *     (120 seats, 20 blocked); exactly 100 holds succeed, on 100 distinct
 *     seats, no blocked seat is touched, every loser is told `taken`, and
 *     query_avail / query_seats agree with the winners' replies;
 *  2. idempotent retries across connections and transports: the same
 *     (client, request) is answered with the first result and "replayed",
 *     even after the hold was released; different content -> conflict, and
 *     neither changes anything;
 *  3. hostile input (garbage, truncations, wrong types, unknown op and key,
 *     4097 commands, depth 50, huge declared counts, empty and oversized
 *     messages) gets an `invalid` reply — or, over --recv-max, a dropped
 *     connection — and after each one the server still answers, its state
 *     is unchanged, its RSS stays bounded over 1000 garbage messages, and it
 *     shuts down cleanly (exit 0, no sanitizer report in its log);
 *  4. SIGTERM under load: exit 0 within 5 s, and after a restart on the same
 *     data dir every hold acknowledged `ok` is still held and its resend is
 *     answered `replayed` with the same hold id, seats and expiry;
 *  5. SIGKILL under load: the same after a crash, and the restart logs each
 *     shard's recovery;
 *  6. message size (schemas/protocol.md section 2): a request of exactly
 *     8 MiB, or of exactly --recv-max bytes, is answered; one byte more
 *     drops the connection, on tcp:// and ipc://;
 *  7. server_status (schemas/protocol.md section 11) without a database:
 *     every shard's committer is "off" with its reason, in the reply and in
 *     the periodic status log; an acknowledged hold has moved its shard's
 *     durable sequence in the next reply; a malformed admin request gets
 *     one invalid map; with neither --pg-dsn nor --no-pg the start-up log
 *     says the journal is not carried to PostgreSQL;
 *  8. server_status with a fresh database (only when BOXOFFICE_TEST_PG_DSN
 *     names a PostgreSQL; skipped loudly otherwise): every committer comes
 *     up "running" and, after holds, reaches lag 0 with applied_seq equal
 *     to the durable sequence and to the database's own checkpoint.
 *  9. --publish: an address nng cannot use, a missing value, a ninth
 *     address (flag or BOXOFFICE_PUBLISH) each stop the server at start
 *     with its exit status (1, 2, 2, 2) and the reason on stderr.
 * 10. --throttle-rate / --throttle-burst (and BOXOFFICE_THROTTLE_BURST) out
 *     of range or not numbers: exit 2 naming the option and its range. The
 *     load tests (4, 5) run with --throttle-rate 0: they prove durability
 *     with one event at full speed, which throttling would refuse.
 *
 * How: the server binary named by $BOXOFFICE_SERVER (meson sets it) is
 * fork/exec'ed with a fresh mkdtemp directory (data dir, ipc socket, one log
 * file per run), on a TCP port found by binding port 0, and is waited for by
 * dialling and querying it until a deadline. The test talks the wire
 * protocol with raw nng REQ sockets and gateway/wire.h's codec (no client
 * library). The server is always killed in the fini, and dies with the test
 * process anyway (PR_SET_PDEATHSIG). Random choices print their seed on
 * failure; SERVER_TEST_SEED=<n> replays them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "engine/engine.h"
#include "protocol/wire.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/pg.h"
#include "tests/support/proc.h"
#include "tests/support/rng.h"
#include "tests/support/server.h"

/* ---- Small utilities ----------------------------------------------------- */

static uint64_t seed;

static void seed_init(void)
{
	const char *s = getenv("SERVER_TEST_SEED");
	seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	if (seed == 0)
		seed = 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- The server process -------------------------------------------------- */

/* The server runs with the small tables of tests/support/server.h, so that
 * the RSS check of the hostile test measures what requests cost, not the
 * tables; it listens on tcp:// and on ipc:// in its scratch directory. */
#define SRV_READY_MS 20000 /* recovery under ASan on a slow disk */

typedef tsrv server;

/* One per test process (Criterion runs each test in its own process): the
 * fini must find it to kill the server whatever happened in the test. */
static server g_srv;
/* Commands of the current run answered to srv_start's probes and to set-up
 * calls that count themselves in. */
static uint64_t g_answered;

static void srv_fini(void)
{
	tsrv_cleanup(&g_srv, "SERVER_TEST_KEEP");
}

static void srv_init(server *s)
{
	int rc = tsrv_init(s, "bo-server-test", 1);
	cr_assert_eq(rc, 0, "server directory: %s", strerror(-rc));
}

static void srv_add_arg(server *s, const char *a)
{
	cr_assert_eq(tsrv_add_arg(s, a), 0);
}

/* Prints the last few KiB of a server log (to explain a failure). */
static void dump_log(const char *path)
{
	tproc_dump_tail(path, 4096);
}

static void srv_dump_log(const server *s)
{
	dump_log(s->log_path);
}

/* A server log contains no sanitizer report and no error line. */
static void assert_log_clean(const char *path)
{
	const char *problem = tsrv_log_problem(path);
	if (problem != NULL)
		dump_log(path);
	cr_assert_null(problem, "server log %s: %s", path, problem);
}

static void srv_assert_log_clean(const server *s)
{
	assert_log_clean(s->log_path);
}

/* Opens a REQ socket dialled to url. nng's REQ resend is switched off
 * (infinite resend time): nng would otherwise repeat a request on its own
 * (after a timeout, or at once on a new connection when one drops), and
 * the tests decide themselves when a request is repeated; a connection
 * that drops under a request then fails that call. recv_ms bounds a call.
 * Returns 0 or an nng error (the socket is then closed). */
static int cli_open(const char *url, int recv_ms, nng_socket *out)
{
	nng_socket s;
	int rv = nng_req0_open(&s);
	if (rv != 0)
		return rv;
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, recv_ms);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, WIRE_MSG_MAX);
	/* Flags 0: the dial is synchronous, so a refused connection is an
	 * error here rather than a background retry. */
	if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
		nng_close(s);
		return rv;
	}
	*out = s;
	return 0;
}

/* Sends buf[0..len) and waits for the reply; the caller frees *reply.
 * Returns 0 or an nng error (NNG_ETIMEDOUT: no reply within recv_ms). */
static int raw_call(nng_socket s, const void *buf, size_t len, nng_msg **reply)
{
	nng_msg *m;
	int rv = nng_msg_alloc(&m, 0);
	if (rv != 0)
		return rv;
	if (len && (rv = nng_msg_append(m, buf, len)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	return nng_recvmsg(s, reply, 0);
}

/* Decodes a reply message into res/info[0..cap); -EINVAL when the server's
 * reply is not valid wire protocol (wm->error says why). */
static int decode_reply(nng_msg *reply, bo_result *res, wire_reply_info *info, uint32_t cap,
                        wire_msg *wm)
{
	int rc = wire_decode_replies(nng_msg_body(reply), nng_msg_len(reply), res, info, cap, wm);
	nng_msg_free(reply);
	return rc;
}

/* Encodes cmds[0..n), sends them, decodes the reply into res/info (cap
 * entries). Returns 0, a positive nng error (no reply) or a negative errno
 * (the reply did not decode: wm->error). */
static int cmd_call(nng_socket s, const bo_cmd *cmds, uint32_t n, int as_array, bo_result *res,
                    wire_reply_info *info, uint32_t cap, wire_msg *wm)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = wire_encode_request(cmds, n, as_array, &sb);
	if (rc != 0) {
		msgpack_sbuffer_destroy(&sb);
		snprintf(wm->error, sizeof(wm->error), "request did not encode: %d", rc);
		return rc;
	}
	nng_msg *reply;
	rc = raw_call(s, sb.data, sb.size, &reply);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 0) {
		snprintf(wm->error, sizeof(wm->error), "nng: %s", nng_strerror(rc));
		return rc;
	}
	return decode_reply(reply, res, info, cap, wm);
}

/* One command, one reply map: 0 when the exchange worked (whatever the
 * status), else as cmd_call; a reply that is not exactly one map is -EPROTO. */
static int call1(nng_socket s, const bo_cmd *cmd, bo_result *res, wire_reply_info *info)
{
	wire_msg wm;
	wire_reply_info tmp;
	int rc = cmd_call(s, cmd, 1, 0, res, info ? info : &tmp, 1, &wm);
	if (rc == 0 && (wm.count != 1 || wm.is_array))
		return -EPROTO;
	return rc;
}

static bo_cmd q_avail(uint64_t event)
{
	return tcmd_query_avail(event);
}

/* The probe of srv_start: a query_avail answered on both addresses. */
static int srv_ready(void *ctx)
{
	server *s = ctx;
	const char *urls[2] = {s->tcp_url, s->ipc_url};
	for (int u = 0; u < 2; u++) {
		nng_socket c;
		if (cli_open(urls[u], 2000, &c) != 0)
			return 0;
		bo_cmd q = q_avail(1);
		bo_result r;
		int ok = call1(c, &q, &r, NULL) == 0;
		g_answered += ok;
		nng_close(c);
		if (!ok)
			return 0;
	}
	return 1;
}

/* Starts the server (a new run on the same directory) and waits until it
 * answers on both addresses. Fails the test, with the log, when it exits or
 * does not answer within SRV_READY_MS. */
static void srv_start(server *s)
{
	const char *bin = getenv("BOXOFFICE_SERVER");
	cr_assert(bin && *bin,
	          "BOXOFFICE_SERVER is not set: run this test through meson, or set it to "
	          "the boxoffice-server binary");
	g_answered = 0;
	int rc = tsrv_start(s, bin, SRV_READY_MS, srv_ready, s);
	if (rc == 0)
		return;
	srv_dump_log(s);
	cr_assert_fail("server run %d did not become ready: %s", s->run,
	               rc == -ECHILD      ? "it exited"
	               : rc == -ETIMEDOUT ? "no answer within the deadline"
	                                  : strerror(-rc));
}

/* Sends sig and waits up to timeout_ms for the process to end.
 * Returns its wait status, or -1 (after a SIGKILL) when it did not end. */
static int srv_signal_wait(server *s, int sig, int timeout_ms, int64_t *took_ms)
{
	cr_assert_gt(s->pid, 0);
	int status = 0;
	int rc = tsrv_signal_wait(s, sig, timeout_ms, &status, took_ms);
	cr_assert(rc == 0 || rc == -ETIMEDOUT, "waiting for the server: %s", strerror(-rc));
	return rc == 0 ? status : -1;
}

/* SIGTERM: must exit 0 within timeout_ms with a clean log. */
static void srv_stop_clean(server *s, int timeout_ms)
{
	int64_t took;
	int st = srv_signal_wait(s, SIGTERM, timeout_ms, &took);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		srv_dump_log(s);
	cr_assert_neq(st, -1, "server did not exit within %d ms of SIGTERM", timeout_ms);
	cr_assert(WIFEXITED(st), "server died of signal %d after SIGTERM", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "server exited %d after SIGTERM", WEXITSTATUS(st));
	srv_assert_log_clean(s);
}

/* The server process is alive and answers a valid query on a fresh
 * connection: returns the event's availability through *av. */
static void srv_assert_alive(server *s, const char *url, uint64_t event, bo_avail *av,
                             const char *after)
{
	int status;
	cr_assert_gt(s->pid, 0);
	if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
		s->pid = 0;
		srv_dump_log(s);
		cr_assert_fail("server died after %s (wait status 0x%x)", after, status);
	}
	/* One fresh connection, one query: a live server answers it. (A
	 * listener that stopped accepting also lets the dial succeed, since
	 * nng's transport still completes the handshake: only the reply
	 * tells.) */
	bo_cmd q = q_avail(event);
	bo_result r;
	nng_socket c;
	int rv = cli_open(url, 5000, &c);
	cr_assert_eq(rv, 0, "after %s: cannot connect: %s", after, nng_strerror(rv));
	rv = call1(c, &q, &r, NULL);
	nng_close(c);
	cr_assert_eq(rv, 0, "after %s: a valid query got no valid reply (%d)", after, rv);
	cr_assert_eq(r.status, BO_OK, "after %s: query_avail answered %s", after,
	             bo_status_str(r.status));
	if (av)
		*av = r.avail;
}

static long srv_rss_kib(const server *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)s->pid);
	char *t = tproc_read_file(path, NULL);
	cr_assert_not_null(t, "cannot read %s", path);
	long size = 0, resident = 0;
	cr_assert_eq(sscanf(t, "%ld %ld", &size, &resident), 2);
	free(t);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- Building commands --------------------------------------------------- */

#define TTL_MS 600000u /* no hold may expire during a test */

/* create_event: rows x seats_per_row seats, one category. */
static void create_event(nng_socket s, uint64_t event, uint32_t rows, uint32_t seats_per_row)
{
	bo_seatmap *m = tcmd_rows_map(rows, seats_per_row, 0, 0);
	for (uint32_t r = 0; r < rows; r++)
		m->rows[r].section = (uint16_t)r;
	bo_cmd c = tcmd_create(1, event, event, m);
	bo_result r;
	int rc = call1(s, &c, &r, NULL);
	bo_seatmap_free(m);
	cr_assert_eq(rc, 0, "create_event %" PRIu64 ": no reply (%d)", event, rc);
	cr_assert_eq(r.status, BO_OK, "create_event %" PRIu64 ": %s/%s", event,
	             bo_status_str(r.status), bo_detail_str(r.detail));
}

static bo_cmd c_hold_seats(uint64_t client, uint64_t request, uint64_t event, const uint32_t *seats,
                           uint32_t n)
{
	return tcmd_hold_seats(client, request, event, seats, n, TTL_MS);
}

static bo_cmd c_hold_best(uint64_t client, uint64_t request, uint64_t event, uint16_t quantity)
{
	return tcmd_hold_best(client, request, event, 0, quantity, TTL_MS);
}

static bo_cmd c_query_seats(uint64_t event, uint32_t first, uint32_t n)
{
	return tcmd_query_seats(event, first, n);
}

/* States of seats [0, count) of an event, by query_seats in one array. */
static void seat_states(nng_socket s, uint64_t event, uint32_t count, uint8_t *state /* OUT */)
{
	uint32_t nq = (count + BO_QUERY_SEATS_MAX - 1) / BO_QUERY_SEATS_MAX;
	cr_assert_leq(nq, WIRE_BATCH_MAX);
	bo_cmd *q = calloc(nq, sizeof(bo_cmd));
	bo_result *r = calloc(nq, sizeof(bo_result));
	wire_reply_info *info = calloc(nq, sizeof(wire_reply_info));
	cr_assert(q && r && info);
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t first = i * BO_QUERY_SEATS_MAX;
		uint32_t n =
		        count - first < BO_QUERY_SEATS_MAX ? count - first : BO_QUERY_SEATS_MAX;
		q[i] = c_query_seats(event, first, n);
	}
	wire_msg wm;
	int rc = cmd_call(s, q, nq, 1, r, info, nq, &wm);
	cr_assert_eq(rc, 0, "query_seats: %d %s", rc, wm.error);
	cr_assert_eq(wm.count, nq);
	for (uint32_t i = 0; i < nq; i++) {
		cr_assert_eq(r[i].status, BO_OK, "query_seats %u: %s (%s)", i,
		             bo_status_str(r[i].status), info[i].error);
		cr_assert_eq(r[i].seat_count, q[i].seat_count);
		for (uint32_t j = 0; j < q[i].seat_count; j++) {
			cr_assert_eq(r[i].seats[j], q[i].seats[j]);
			state[q[i].seats[j]] = r[i].seat_state[j];
		}
	}
	free(q);
	free(r);
	free(info);
}

TestSuite(server, .fini = srv_fini, .timeout = 120);

/* ==== 1. Contention ====================================================== */

#define RACE_EVENT 101u
#define RACE_SEATS 120u  /* two rows of 60 */
#define RACE_BLOCKED 20u /* seats 0..19 blocked by the operator */
#define RACE_FREE (RACE_SEATS - RACE_BLOCKED)
#define RACE_CLIENTS 200u
#define RACE_ATTEMPTS_MAX 2000u
#define RACE_BUSY_MAX 5000u

typedef struct racer {
	pthread_t th;
	const char *url;
	uint64_t client;
	int use_best; /* hold_best 1, else hold_seats of one random seat */
	uint64_t rng;
	pthread_barrier_t *start;
	/* Results, read by the main thread after join. */
	char fail[160]; /* "" unless something unexpected happened */
	int won;
	uint32_t seat;
	uint64_t hold;
	uint32_t attempts, busy, taken;
} racer;

/* Sends one command until it gets a definitive answer. `busy` means the
 * gateway shed the command before the engine saw it (ring full, draining):
 * nothing was applied, and the protocol says to resend the same (client,
 * request) — were it applied after all, the resend would be answered from
 * the idempotency window. Counting a busy as a loss would make "exactly
 * 100 winners" unprovable, so the racer resends it (with a short backoff)
 * until the answer is ok or taken. */
static int race_call(racer *rc, nng_socket s, const bo_cmd *c, bo_result *r)
{
	for (uint32_t b = 0;; b++) {
		int rv = call1(s, c, r, NULL);
		if (rv != 0) {
			snprintf(rc->fail, sizeof(rc->fail), "client %" PRIu64 ": call failed: %d",
			         rc->client, rv);
			return -1;
		}
		if (r->status != BO_BUSY)
			return 0;
		rc->busy++;
		if (b == RACE_BUSY_MAX) {
			snprintf(rc->fail, sizeof(rc->fail), "client %" PRIu64 ": busy %u times",
			         rc->client, b);
			return -1;
		}
		sleep_ms(1 + (int)(trng_xorshift(&rc->rng) % 5));
	}
}

static void *racer_main(void *arg)
{
	racer *rc = arg;
	nng_socket s;
	int rv = cli_open(rc->url, 30000, &s);
	pthread_barrier_wait(rc->start);
	if (rv != 0) {
		snprintf(rc->fail, sizeof(rc->fail), "client %" PRIu64 ": dial: %s", rc->client,
		         nng_strerror(rv));
		return NULL;
	}
	uint64_t request = 1;
	while (rc->attempts < RACE_ATTEMPTS_MAX) {
		rc->attempts++;
		bo_cmd c;
		if (rc->use_best) {
			c = c_hold_best(rc->client, request, RACE_EVENT, 1);
		} else {
			uint32_t seat = (uint32_t)(trng_xorshift(&rc->rng) % RACE_SEATS);
			c = c_hold_seats(rc->client, request, RACE_EVENT, &seat, 1);
		}
		request++;
		bo_result r;
		if (race_call(rc, s, &c, &r) < 0)
			break;
		if (r.status == BO_OK) {
			if (r.seat_count != 1 || r.claim_id == 0 || r.replayed ||
			    (!rc->use_best && r.seats[0] != c.seats[0])) {
				snprintf(rc->fail, sizeof(rc->fail),
				         "client %" PRIu64 ": ok reply with %u seats, hold %" PRIu64
				         ", replayed %u",
				         rc->client, r.seat_count, r.claim_id, r.replayed);
				break;
			}
			rc->won = 1;
			rc->seat = r.seats[0];
			rc->hold = r.claim_id;
			break;
		}
		if (r.status != BO_TAKEN ||
		    r.detail != (rc->use_best ? BO_D_SOLD_OUT : BO_D_SEAT_UNAVAILABLE)) {
			snprintf(rc->fail, sizeof(rc->fail),
			         "client %" PRIu64 ": %s answered %s/%s", rc->client,
			         bo_op_str(c.op), bo_status_str(r.status),
			         bo_detail_str(r.detail));
			break;
		}
		rc->taken++;
		/* Seats only go from free to held here, so sold_out is final. A
		 * taken seat is not: try another one while any is free. */
		if (rc->use_best)
			break;
		bo_cmd q = q_avail(RACE_EVENT);
		if (race_call(rc, s, &q, &r) < 0)
			break;
		if (r.status != BO_OK) {
			snprintf(rc->fail, sizeof(rc->fail),
			         "client %" PRIu64 ": query_avail answered %s", rc->client,
			         bo_status_str(r.status));
			break;
		}
		if (r.avail.by_state[BO_SEAT_FREE] == 0)
			break;
	}
	if (!rc->won && !rc->fail[0] && rc->attempts >= RACE_ATTEMPTS_MAX)
		snprintf(rc->fail, sizeof(rc->fail),
		         "client %" PRIu64 ": no definitive answer in %u attempts", rc->client,
		         rc->attempts);
	nng_close(s);
	return NULL;
}

Test(server, contention_last_100_seats)
{
	seed_init();
	srv_init(&g_srv);
	srv_start(&g_srv);
	nng_socket s;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &s), 0);
	create_event(s, RACE_EVENT, 2, RACE_SEATS / 2);
	/* Block seats 0..19 (a block takes at most 16 seats). */
	for (uint32_t first = 0; first < RACE_BLOCKED; first += 16) {
		bo_cmd b = {0};
		b.op = BO_OP_BLOCK;
		b.client_id = 1;
		b.request_id = 1000 + first;
		b.event_id = RACE_EVENT;
		b.seat_count = (uint8_t)(RACE_BLOCKED - first < 16 ? RACE_BLOCKED - first : 16);
		for (uint32_t i = 0; i < b.seat_count; i++)
			b.seats[i] = first + i;
		bo_result r;
		cr_assert_eq(call1(s, &b, &r, NULL), 0);
		cr_assert_eq(r.status, BO_OK, "block: %s", bo_status_str(r.status));
	}
	bo_avail av;
	srv_assert_alive(&g_srv, g_srv.tcp_url, RACE_EVENT, &av, "set-up");
	cr_assert_eq(av.by_state[BO_SEAT_FREE], RACE_FREE,
	             "exactly %u seats are free before the race", RACE_FREE);

	static racer racers[RACE_CLIENTS];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, RACE_CLIENTS);
	for (uint32_t i = 0; i < RACE_CLIENTS; i++) {
		racers[i] = (racer){0};
		racers[i].url = i % 4 == 3 ? g_srv.ipc_url : g_srv.tcp_url; /* both transports */
		racers[i].client = 1000 + i;
		racers[i].use_best = i % 2;
		racers[i].rng = seed * 2654435761u + i + 1;
		racers[i].start = &start;
		cr_assert_eq(pthread_create(&racers[i].th, NULL, racer_main, &racers[i]), 0);
	}
	for (uint32_t i = 0; i < RACE_CLIENTS; i++)
		pthread_join(racers[i].th, NULL);
	pthread_barrier_destroy(&start);

	uint32_t winners = 0, best_winners = 0, busy = 0, taken = 0;
	uint64_t winner_of[RACE_SEATS] = {0};
	for (uint32_t i = 0; i < RACE_CLIENTS; i++) {
		racer *rc = &racers[i];
		cr_assert_eq(rc->fail[0], '\0', "seed %" PRIu64 ": %s", seed, rc->fail);
		busy += rc->busy;
		taken += rc->taken;
		if (!rc->won) {
			cr_assert_gt(rc->taken, 0,
			             "client %" PRIu64 " lost without being told taken",
			             rc->client);
			continue;
		}
		winners++;
		best_winners += (uint32_t)rc->use_best;
		cr_assert_geq(rc->seat, RACE_BLOCKED,
		              "client %" PRIu64 " was given blocked seat %u", rc->client, rc->seat);
		cr_assert_lt(rc->seat, RACE_SEATS);
		cr_assert_eq(winner_of[rc->seat], 0,
		             "seat %u held twice: by clients %" PRIu64 " and %" PRIu64, rc->seat,
		             winner_of[rc->seat], rc->client);
		winner_of[rc->seat] = rc->client;
	}
	cr_log_info("contention: %u winners (%u by hold_best), %u taken answers, %u busy answers "
	            "retried",
	            winners, best_winners, taken, busy);
	cr_assert_eq(winners, RACE_FREE, "seed %" PRIu64 ": %u clients got a seat, %u were free",
	             seed, winners, RACE_FREE);

	/* The server's view agrees with the replies. */
	srv_assert_alive(&g_srv, g_srv.tcp_url, RACE_EVENT, &av, "the race");
	cr_assert_eq(av.by_state[BO_SEAT_FREE], 0);
	cr_assert_eq(av.by_state[BO_SEAT_HELD], RACE_FREE);
	cr_assert_eq(av.by_state[BO_SEAT_BLOCKED], RACE_BLOCKED);
	cr_assert_eq(av.by_state[BO_SEAT_BOOKED], 0);
	uint8_t st[RACE_SEATS];
	seat_states(s, RACE_EVENT, RACE_SEATS, st);
	for (uint32_t i = 0; i < RACE_SEATS; i++) {
		uint8_t want = i < RACE_BLOCKED ? BO_SEAT_BLOCKED : BO_SEAT_HELD;
		cr_assert_eq(st[i], want, "seat %u is %s, expected %s", i,
		             bo_seat_state_str(st[i]), bo_seat_state_str(want));
		cr_assert(i < RACE_BLOCKED || winner_of[i] != 0,
		          "seat %u is held but no client was told so", i);
	}
	nng_close(s);
	srv_stop_clean(&g_srv, 10000);
}

/* ==== 2. Idempotent retries ============================================= */

#define IDEM_EVENT 202u

static void assert_same_claim(const bo_result *a, const bo_result *b, const char *what)
{
	cr_assert_eq(a->status, b->status, "%s: status %s vs %s", what,
	             bo_status_str(a->status), bo_status_str(b->status));
	cr_assert_eq(a->op, b->op, "%s: op", what);
	cr_assert_eq(a->claim_id, b->claim_id, "%s: hold %" PRIu64 " vs %" PRIu64, what,
	             a->claim_id, b->claim_id);
	cr_assert_eq(a->expires_at_ms, b->expires_at_ms, "%s: expires_at_ms", what);
	cr_assert_eq(a->quantity, b->quantity, "%s: quantity", what);
	cr_assert_eq(a->seat_count, b->seat_count, "%s: seat count", what);
	for (uint32_t i = 0; i < a->seat_count; i++)
		cr_assert_eq(a->seats[i], b->seats[i], "%s: seat %u", what, i);
	cr_assert_eq(a->client_id, b->client_id, "%s: client", what);
	cr_assert_eq(a->request_id, b->request_id, "%s: request", what);
	cr_assert_eq(a->event_id, b->event_id, "%s: event", what);
}

Test(server, idempotent_retries)
{
	srv_init(&g_srv);
	srv_start(&g_srv);
	nng_socket tcp, ipc;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &tcp), 0);
	cr_assert_eq(cli_open(g_srv.ipc_url, 10000, &ipc), 0);
	create_event(tcp, IDEM_EVENT, 4, 25);

	/* A hold, then the very same request over the same connection, over a
	 * new connection and over the other transport. */
	uint32_t seats[2] = {30, 31};
	bo_cmd hold = c_hold_seats(7, 1, IDEM_EVENT, seats, 2);
	bo_result first, again;
	cr_assert_eq(call1(tcp, &hold, &first, NULL), 0);
	cr_assert_eq(first.status, BO_OK, "first hold: %s", bo_status_str(first.status));
	cr_assert_eq(first.replayed, 0, "a first answer is not replayed");
	cr_assert_neq(first.claim_id, 0);
	cr_assert_eq(first.seat_count, 2);
	cr_assert_eq(first.seats[0], 30);
	cr_assert_eq(first.seats[1], 31);

	cr_assert_eq(call1(tcp, &hold, &again, NULL), 0);
	assert_same_claim(&first, &again, "resend on the same connection");
	cr_assert_eq(again.replayed, 1, "a resend is answered replayed");

	nng_socket tcp2;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &tcp2), 0);
	cr_assert_eq(call1(tcp2, &hold, &again, NULL), 0);
	nng_close(tcp2);
	assert_same_claim(&first, &again, "resend on a new connection");
	cr_assert_eq(again.replayed, 1);

	cr_assert_eq(call1(ipc, &hold, &again, NULL), 0);
	assert_same_claim(&first, &again, "resend over ipc");
	cr_assert_eq(again.replayed, 1);

	/* A best-available hold replays the seats it chose. */
	bo_cmd best = c_hold_best(8, 1, IDEM_EVENT, 3);
	bo_result bfirst, bagain;
	cr_assert_eq(call1(ipc, &best, &bfirst, NULL), 0);
	cr_assert_eq(bfirst.status, BO_OK);
	cr_assert_eq(bfirst.seat_count, 3);
	cr_assert_eq(call1(tcp, &best, &bagain, NULL), 0);
	assert_same_claim(&bfirst, &bagain, "hold_best resend");
	cr_assert_eq(bagain.replayed, 1);

	bo_avail av;
	srv_assert_alive(&g_srv, g_srv.tcp_url, IDEM_EVENT, &av, "the resends");
	cr_assert_eq(av.by_state[BO_SEAT_HELD], 5, "resends changed nothing: 2 + 3 seats held");

	/* Same key, different content (another seat; then another ttl). */
	uint32_t other = 40;
	bo_cmd diff = c_hold_seats(7, 1, IDEM_EVENT, &other, 1);
	bo_result r;
	wire_reply_info info;
	cr_assert_eq(call1(tcp, &diff, &r, &info), 0);
	cr_assert_eq(r.status, BO_CONFLICT, "same key, other seats: %s",
	             bo_status_str(r.status));
	cr_assert_eq(r.detail, BO_D_IDEM_CONFLICT);
	cr_assert_neq(info.error[0], '\0', "a conflict carries an error text");
	diff = hold;
	diff.ttl_ms = TTL_MS + 1000;
	cr_assert_eq(call1(ipc, &diff, &r, NULL), 0);
	cr_assert_eq(r.status, BO_CONFLICT, "same key, other ttl: %s", bo_status_str(r.status));
	cr_assert_eq(r.detail, BO_D_IDEM_CONFLICT);
	uint8_t st[100];
	seat_states(tcp, IDEM_EVENT, 100, st);
	cr_assert_eq(st[40], BO_SEAT_FREE, "a conflicting request changed nothing");
	srv_assert_alive(&g_srv, g_srv.tcp_url, IDEM_EVENT, &av, "the conflicts");
	cr_assert_eq(av.by_state[BO_SEAT_HELD], 5);

	/* Release the hold, then resend the original hold: the first answer
	 * again, and the seats stay free (a replay changes nothing). */
	bo_cmd rel = {0};
	rel.op = BO_OP_RELEASE;
	rel.client_id = 7;
	rel.request_id = 2;
	rel.event_id = IDEM_EVENT;
	rel.claim_id = first.claim_id;
	cr_assert_eq(call1(tcp, &rel, &r, NULL), 0);
	cr_assert_eq(r.status, BO_OK, "release: %s", bo_status_str(r.status));
	cr_assert_eq(call1(ipc, &hold, &again, NULL), 0);
	assert_same_claim(&first, &again, "resend after release");
	cr_assert_eq(again.replayed, 1);
	seat_states(tcp, IDEM_EVENT, 100, st);
	cr_assert_eq(st[30], BO_SEAT_FREE, "a replay after release does not hold again");
	cr_assert_eq(st[31], BO_SEAT_FREE);
	nng_close(tcp);
	nng_close(ipc);
	srv_stop_clean(&g_srv, 10000);
}

/* ==== 3. Hostile input =================================================== */

#define HOSTILE_EVENT 303u
#define HOSTILE_RECV_MAX 65536u

typedef struct bytes {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} bytes;

static void b_init(bytes *b)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void b_raw(bytes *b, const void *p, size_t n)
{
	msgpack_sbuffer_write(&b->sb, p, n);
}

static void b_str(bytes *b, const char *s)
{
	msgpack_pack_str(&b->pk, strlen(s));
	msgpack_pack_str_body(&b->pk, s, strlen(s));
}

static void b_kv_u(bytes *b, const char *k, uint64_t v)
{
	b_str(b, k);
	msgpack_pack_uint64(&b->pk, v);
}

/* Sends a hostile message on s and checks the answer is `invalid` with an
 * error text: one map when whole_msg (message-level), else any shape whose
 * every reply is invalid (per-command rejections); want_detail >= 0 pins
 * the detail of every reply. Then the server must still answer. */
static void expect_invalid(server *srv, nng_socket s, const char *what, const void *buf, size_t len,
                           int whole_msg, int want_detail, uint32_t want_count)
{
	nng_msg *reply;
	int rv = raw_call(s, buf, len, &reply);
	cr_assert_eq(rv, 0, "%s (%zu bytes): no reply: %s", what, len, nng_strerror(rv));
	static bo_result res[WIRE_BATCH_MAX];
	static wire_reply_info info[WIRE_BATCH_MAX];
	wire_msg wm;
	rv = decode_reply(reply, res, info, WIRE_BATCH_MAX, &wm);
	cr_assert_eq(rv, 0, "%s: the reply is not wire protocol: %s", what, wm.error);
	cr_assert_geq(wm.count, 1, "%s: an empty reply", what);
	if (whole_msg) {
		cr_assert_eq(wm.is_array, 0, "%s: a message-level error is one map", what);
		cr_assert_eq(wm.count, 1);
		cr_assert_eq(info[0].malformed, 1, "%s: detail malformed", what);
	}
	if (want_count)
		cr_assert_eq(wm.count, want_count, "%s: %u replies", what, wm.count);
	for (uint32_t i = 0; i < wm.count; i++) {
		cr_assert_eq(res[i].status, BO_INVALID, "%s: reply %u is %s", what, i,
		             bo_status_str(res[i].status));
		cr_assert_neq(info[i].error[0], '\0', "%s: reply %u has no error text", what, i);
		if (want_detail >= 0)
			cr_assert_eq(res[i].detail, want_detail, "%s: reply %u detail %s (%s)",
			             what, i, wire_detail_name(res[i].detail), info[i].error);
	}
	srv_assert_alive(srv, srv->tcp_url, HOSTILE_EVENT, NULL, what);
}

static void expect_invalid_b(server *srv, nng_socket s, const char *what, bytes *b, int whole_msg,
                             int detail)
{
	expect_invalid(srv, s, what, b->sb.data, b->sb.size, whole_msg, detail, 0);
	msgpack_sbuffer_destroy(&b->sb);
}

/* A well-formed map {"op": "query_avail", "event": E, "pad": bin} of
 * exactly len bytes (len >= 40): only its size or its unknown key "pad" is
 * wrong. The caller frees it. */
static uint8_t *padded_query(size_t len)
{
	bytes b;
	b_init(&b);
	msgpack_pack_map(&b.pk, 3);
	b_str(&b, "op");
	b_str(&b, "query_avail");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_str(&b, "pad");
	/* bin16 (3-byte header) below 64 KiB of body, else bin32 (5). */
	size_t head = b.sb.size + (len - b.sb.size - 3 < 65536 ? 3 : 5);
	cr_assert_gt(len, head);
	msgpack_pack_bin(&b.pk, (uint32_t)(len - head));
	cr_assert_eq(b.sb.size, head);
	uint8_t *buf = malloc(len);
	cr_assert_not_null(buf);
	memcpy(buf, b.sb.data, head);
	memset(buf + head, 0x5a, len - head);
	msgpack_sbuffer_destroy(&b.sb);
	return buf;
}

/* A message of exactly the receive limit is read and answered: its one
 * command is rejected for the key "pad", which only a decoder that read
 * the whole message can say. */
static void expect_answered_at_limit(server *srv, const char *url, size_t len)
{
	nng_socket s;
	cr_assert_eq(cli_open(url, 30000, &s), 0);
	uint8_t *buf = padded_query(len);
	char what[PATH_MAX + 64];
	snprintf(what, sizeof(what), "a %zu-byte request over %s", len, url);
	expect_invalid(srv, s, what, buf, len, 0, BO_D_NONE, 1);
	free(buf);
	nng_close(s);
}

/* Connects a plain socket to url (tcp://127.0.0.1:PORT or ipc:///PATH),
 * with 10 s bounds on each send and receive. Returns the descriptor. */
static int raw_connect(const char *url)
{
	int fd;
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un ua = {.sun_family = AF_UNIX};
		snprintf(ua.sun_path, sizeof(ua.sun_path), "%s", url + 6);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		cr_assert_geq(fd, 0);
		cr_assert_eq(connect(fd, (struct sockaddr *)&ua, sizeof(ua)), 0, "connect %s: %s", url,
		             strerror(errno));
	} else {
		const char *colon = strrchr(url, ':');
		cr_assert(strncmp(url, "tcp://127.0.0.1:", 16) == 0 && colon, "%s", url);
		struct sockaddr_in ta = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)atoi(colon + 1)),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fd = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_geq(fd, 0);
		cr_assert_eq(connect(fd, (struct sockaddr *)&ta, sizeof(ta)), 0, "connect %s: %s", url,
		             strerror(errno));
	}
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* raw_connect, then the SP handshake as a REQ peer: sends its header, then
 * reads the server's (so the server's handshake cannot fail when this
 * socket later goes away). Returns the descriptor. */
static int sp_connect(const char *url)
{
	int fd = raw_connect(url);
	static const uint8_t req_head[8] = {0, 'S', 'P', 0, 0x00, 0x30 /* REQ */, 0, 0};
	cr_assert_eq(send(fd, req_head, 8, MSG_NOSIGNAL), 8);
	uint8_t rep_head[8];
	size_t got = 0;
	while (got < 8) {
		ssize_t n = recv(fd, rep_head + got, 8 - got, 0);
		cr_assert_gt(n, 0, "%s: no SP handshake from the server", url);
		got += (size_t)n;
	}
	cr_assert_eq(rep_head[5], 0x31, "%s: the peer is not a REP socket", url);
	return fd;
}

/* A message over the receive limit cannot be answered: nng drops the
 * connection. Sends one request of len bytes, framed by hand (8-byte
 * length, ipc:// with a type byte before it, then REQ's 4-byte request id
 * and the body), and checks the server closes the connection without a
 * reply, then still answers others.
 *
 * Not an nng REQ socket: its dialer redials a dropped pipe on its own
 * (nng 1.5.2 ignores the reconnect time about half the time), and closing
 * the socket while that redial is in its handshake can stop the server's
 * listener for good (nng issue #1518, fixed in nng 1.6.0): that is what
 * made this test fail about 2 runs in 27 with no reply on the next
 * connection. listener_survives_handshake_disconnect pins the server
 * side of it. */
static void expect_dropped(server *srv, const char *url, size_t len, uint32_t recv_max)
{
	int fd = sp_connect(url);
	int ipc = strncmp(url, "ipc://", 6) == 0;
	uint8_t head[1 + 8 + 4];
	size_t h = 0;
	if (ipc)
		head[h++] = 1; /* message type */
	uint64_t wire_len = 4 + (uint64_t)len;
	for (int i = 7; i >= 0; i--)
		head[h++] = (uint8_t)(wire_len >> (8 * i));
	static const uint8_t id[4] = {0x80, 0, 0, 1};
	memcpy(head + h, id, 4);
	h += 4;
	uint8_t *buf = padded_query(len);
	/* The server may close before it has all the bytes: a failed send is
	 * fine, the reply (or its absence) says what happened. */
	if (send(fd, head, h, MSG_NOSIGNAL) == (ssize_t)h) {
		size_t off = 0;
		while (off < len) {
			ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	}
	free(buf);
	/* Wait for the server's answer to that: the end of the connection. */
	uint8_t r[64];
	ssize_t n;
	while ((n = recv(fd, r, sizeof(r), 0)) < 0 && errno == EINTR)
		;
	int e = errno;
	close(fd);
	cr_assert_leq(n, 0, "%zu bytes over %s (recv max %u) were answered", len, url, recv_max);
	cr_assert(n == 0 || e == ECONNRESET, "%zu bytes over %s: the connection was not dropped: %s", len,
	          url, strerror(e));
	srv_assert_alive(srv, url, HOSTILE_EVENT, NULL, "a message over the receive limit");
}

Test(server, hostile_input)
{
	seed_init();
	uint64_t rng = seed;
	srv_init(&g_srv);
	char recv_max[32];
	snprintf(recv_max, sizeof(recv_max), "%u", HOSTILE_RECV_MAX);
	srv_add_arg(&g_srv, "--recv-max");
	srv_add_arg(&g_srv, recv_max);
	srv_start(&g_srv);
	nng_socket s;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &s), 0);
	create_event(s, HOSTILE_EVENT, 4, 25);
	uint32_t seat = 5;
	bo_cmd held = c_hold_seats(9, 1, HOSTILE_EVENT, &seat, 1);
	bo_result r0;
	cr_assert_eq(call1(s, &held, &r0, NULL), 0);
	cr_assert_eq(r0.status, BO_OK);
	bo_avail av0;
	srv_assert_alive(&g_srv, g_srv.tcp_url, HOSTILE_EVENT, &av0, "set-up");

	/* Empty message. */
	expect_invalid(&g_srv, s, "empty message", "", 0, 1, BO_D_NONE, 0);

	/* Garbage: 0xc1 is never msgpack; a bare string is no command. */
	expect_invalid(&g_srv, s, "byte 0xc1", "\xc1\x01\x02", 3, 1, BO_D_NONE, 0);
	expect_invalid(&g_srv, s, "text", "GET / HTTP/1.1\r\n\r\n", 18, 1, BO_D_NONE, 0);
	expect_invalid(&g_srv, s, "top-level int", "\x2a", 1, 1, BO_D_NONE, 0);
	expect_invalid(&g_srv, s, "trailing bytes", "\x80\x80", 2, 1, BO_D_NONE, 0);

	/* Every truncation of a valid request. */
	bo_cmd valid = c_hold_seats(9, 2, HOSTILE_EVENT, (uint32_t[]){6, 7, 8}, 3);
	msgpack_sbuffer vb;
	msgpack_sbuffer_init(&vb);
	cr_assert_eq(wire_encode_request(&valid, 1, 0, &vb), 0);
	for (size_t cut = 1; cut < vb.size; cut++) {
		char what[96];
		snprintf(what, sizeof(what), "request truncated to %zu of %zu bytes", cut, vb.size);
		expect_invalid(&g_srv, s, what, vb.data, cut, 1, BO_D_NONE, 0);
	}
	msgpack_sbuffer_destroy(&vb);

	/* Wrong types: each a well-formed message whose command is rejected. */
	bytes b;
	b_init(&b); /* op is an int */
	msgpack_pack_map(&b.pk, 2);
	b_str(&b, "op");
	msgpack_pack_int(&b.pk, 11);
	b_kv_u(&b, "event", HOSTILE_EVENT);
	expect_invalid_b(&g_srv, s, "op as int", &b, 0, BO_D_NONE);
	b_init(&b); /* event is a string */
	msgpack_pack_map(&b.pk, 2);
	b_str(&b, "op");
	b_str(&b, "query_avail");
	b_str(&b, "event");
	b_str(&b, "303");
	expect_invalid_b(&g_srv, s, "event as string", &b, 0, BO_D_NONE);
	b_init(&b); /* event is a float */
	msgpack_pack_map(&b.pk, 2);
	b_str(&b, "op");
	b_str(&b, "query_avail");
	b_str(&b, "event");
	msgpack_pack_double(&b.pk, 303.0);
	expect_invalid_b(&g_srv, s, "event as float", &b, 0, BO_D_NONE);
	b_init(&b); /* negative ttl and seats as a map */
	msgpack_pack_map(&b.pk, 6);
	b_str(&b, "op");
	b_str(&b, "hold_seats");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_kv_u(&b, "client", 9);
	b_kv_u(&b, "request", 3);
	b_str(&b, "seats");
	msgpack_pack_array(&b.pk, 1);
	msgpack_pack_uint32(&b.pk, 10);
	b_str(&b, "ttl_ms");
	msgpack_pack_int(&b.pk, -5000);
	expect_invalid_b(&g_srv, s, "negative ttl", &b, 0, BO_D_NONE);
	b_init(&b);
	msgpack_pack_map(&b.pk, 6);
	b_str(&b, "op");
	b_str(&b, "hold_seats");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_kv_u(&b, "client", 9);
	b_kv_u(&b, "request", 4);
	b_str(&b, "seats");
	msgpack_pack_map(&b.pk, 1);
	b_kv_u(&b, "10", 10);
	b_kv_u(&b, "ttl_ms", TTL_MS);
	expect_invalid_b(&g_srv, s, "seats as map", &b, 0, BO_D_NONE);
	b_init(&b); /* a non-string key */
	msgpack_pack_map(&b.pk, 1);
	msgpack_pack_uint8(&b.pk, 1);
	b_str(&b, "op");
	expect_invalid_b(&g_srv, s, "integer key", &b, 0, BO_D_NONE);
	b_init(&b); /* an array of non-commands: one invalid reply each */
	msgpack_pack_array(&b.pk, 3);
	msgpack_pack_nil(&b.pk);
	msgpack_pack_true(&b.pk);
	b_str(&b, "hold_seats");
	expect_invalid(&g_srv, s, "array of non-maps", b.sb.data, b.sb.size, 0, BO_D_NONE, 3);
	msgpack_sbuffer_destroy(&b.sb);

	/* Unknown op, unknown key. */
	b_init(&b);
	msgpack_pack_map(&b.pk, 4);
	b_str(&b, "op");
	b_str(&b, "sell");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_kv_u(&b, "client", 9);
	b_kv_u(&b, "request", 5);
	expect_invalid_b(&g_srv, s, "unknown op", &b, 0, BO_D_BAD_OP);
	b_init(&b);
	msgpack_pack_map(&b.pk, 7);
	b_str(&b, "op");
	b_str(&b, "hold_seats");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_kv_u(&b, "client", 9);
	b_kv_u(&b, "request", 6);
	b_str(&b, "seats");
	msgpack_pack_array(&b.pk, 1);
	msgpack_pack_uint32(&b.pk, 11);
	b_kv_u(&b, "ttl_ms", TTL_MS);
	b_str(&b, "colour");
	b_str(&b, "red");
	expect_invalid_b(&g_srv, s, "unknown key", &b, 0, BO_D_NONE);

	/* 4096 commands is the limit (each one rejected on its own: empty
	 * maps), 4097 is a message-level error. Empty maps keep the message
	 * under --recv-max. */
	uint8_t *arr = malloc(8 + WIRE_BATCH_MAX + 1);
	cr_assert_not_null(arr);
	for (uint32_t n = WIRE_BATCH_MAX; n <= WIRE_BATCH_MAX + 1; n++) {
		arr[0] = 0xdc;
		arr[1] = (uint8_t)(n >> 8);
		arr[2] = (uint8_t)n;
		memset(arr + 3, 0x80, n);
		expect_invalid(&g_srv, s,
		               n == WIRE_BATCH_MAX ? "4096 empty commands" : "4097 commands", arr,
		               3 + n, n > WIRE_BATCH_MAX, BO_D_NONE,
		               n == WIRE_BATCH_MAX ? WIRE_BATCH_MAX : 1);
	}
	free(arr);

	/* Depth 50: at the top, and inside a command. */
	uint8_t deep[64];
	memset(deep, 0x91, 49);
	deep[49] = 0x80;
	expect_invalid(&g_srv, s, "arrays nested 50 deep", deep, 50, 1, BO_D_NONE, 0);
	b_init(&b);
	msgpack_pack_map(&b.pk, 3);
	b_str(&b, "op");
	b_str(&b, "query_seats");
	b_kv_u(&b, "event", HOSTILE_EVENT);
	b_str(&b, "seats");
	memset(deep, 0x91, 49); /* the command map is level 1: 49 arrays make 50 */
	deep[49] = 0x01;
	b_raw(&b, deep, 50);
	expect_invalid_b(&g_srv, s, "seats nested 50 deep", &b, 1, BO_D_NONE);

	/* Huge declared counts followed by a few bytes. */
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} huge[] = {
#define HUGE(what, lit) {what, lit, sizeof(lit) - 1}
	        HUGE("array32 of 4G", "\xdd\xff\xff\xff\xff\x80\x80\x80"),
	        HUGE("array16 of 65535", "\xdc\xff\xff\x80\x80"),
	        HUGE("map32 of 4G", "\xdf\xff\xff\xff\xff\xa2op"),
	        HUGE("str32 of 4G", "\xdb\xff\xff\xff\xff"
	                            "abc"),
	        HUGE("bin32 of 4G", "\xc6\xff\xff\xff\xff\x01\x02"),
	        HUGE("ext32 of 4G", "\xc9\xff\xff\xff\xff\x01\x02"),
	        HUGE("map key str32 of 4G", "\x81\xdb\xff\xff\xff\xffop"),
	        HUGE("seats array32 of 4G",
	             "\x83\xa2op\xabquery_seats\xa5"
	             "event\xcd\x01\x2f\xa5seats\xdd\xff\xff\xff\xff\x01\x02"),
	        HUGE("rows array32 of 2G in a seat map",
	             "\x85\xa2op\xac"
	             "create_event\xa5"
	             "event\x07\xa6"
	             "client\x01\xa7request\x01"
	             "\xa3map\x81\xa4rows\xdd\x7f\xff\xff\xff\x80"),
#undef HUGE
	};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++)
		expect_invalid(&g_srv, s, huge[i].what, huge[i].bytes, huge[i].len, 1, BO_D_NONE,
		               0);

	/* Over --recv-max: the connection is dropped, on both transports ... */
	expect_dropped(&g_srv, g_srv.tcp_url, HOSTILE_RECV_MAX + 1, HOSTILE_RECV_MAX);
	expect_dropped(&g_srv, g_srv.ipc_url, HOSTILE_RECV_MAX + 1, HOSTILE_RECV_MAX);
	expect_dropped(&g_srv, g_srv.ipc_url, 4 * HOSTILE_RECV_MAX, HOSTILE_RECV_MAX);
	/* ... while a message of exactly --recv-max bytes is answered. */
	expect_answered_at_limit(&g_srv, g_srv.tcp_url, HOSTILE_RECV_MAX);
	expect_answered_at_limit(&g_srv, g_srv.ipc_url, HOSTILE_RECV_MAX);
	uint8_t *big = malloc(HOSTILE_RECV_MAX);
	cr_assert_not_null(big);
	memset(big, 0xa1, HOSTILE_RECV_MAX); /* a stream of 1-byte strings */
	big[0] = 0xdd;
	expect_invalid(&g_srv, s, "a 60000-byte garbage message", big, 60000, 1, BO_D_NONE, 0);

	/* Nothing of the above changed the state. */
	bo_avail av1;
	srv_assert_alive(&g_srv, g_srv.ipc_url, HOSTILE_EVENT, &av1, "the hostile messages");
	cr_assert_eq(memcmp(&av0, &av1, sizeof(av0)), 0,
	             "hostile messages changed the event's availability");

	/* 1000 random garbage messages: RSS stays bounded. Each must get one
	 * invalid map: the first byte is never a fixarray header, a map is at
	 * most one (rejected) command, and a random 32-bit count after an
	 * array32 header exceeds the bytes that follow (but for odds of
	 * ~2^-16, which would fail with the seed printed). The str32,
	 * bin32, ext32, array32 and map32 headers declare up to 4 Gi: a
	 * decoder that allocated for a declared count would show here. */
	long rss0 = srv_rss_kib(&g_srv);
	for (int i = 0; i < 1000; i++) {
		size_t len = 1 + (size_t)(trng_xorshift(&rng) % (i % 4 == 0 ? 60000 : 512));
		for (size_t j = 0; j < len; j++)
			big[j] = (uint8_t)trng_xorshift(&rng);
		static const uint8_t firsts[] = {0xc1, 0xdb, 0xda, 0xd9, 0xc6, 0xc7, 0xc9,
		                                 0xcf, 0xa5, 0x7f, 0xff, 0xdd, 0xdf, 0xde};
		big[0] = firsts[trng_xorshift(&rng) % sizeof(firsts)];
		nng_msg *reply;
		int rv = raw_call(s, big, len, &reply);
		cr_assert_eq(rv, 0, "seed %" PRIu64 ": garbage message %d got no reply: %s", seed,
		             i, nng_strerror(rv));
		static bo_result gr[1];
		wire_reply_info gi;
		wire_msg wm;
		rv = decode_reply(reply, gr, &gi, 1, &wm);
		cr_assert_eq(rv, 0, "seed %" PRIu64 ": garbage %d: reply: %s", seed, i, wm.error);
		cr_assert_eq(wm.count, 1, "seed %" PRIu64 ": garbage %d: %u replies", seed, i,
		             wm.count);
		cr_assert_eq(gr[0].status, BO_INVALID, "seed %" PRIu64 ": garbage %d answered %s",
		             seed, i, bo_status_str(gr[0].status));
	}
	free(big);
	long rss1 = srv_rss_kib(&g_srv);
	cr_log_info("hostile: RSS %ld KiB before 1000 garbage messages, %ld KiB after", rss0, rss1);
	cr_assert_lt(rss1, 2 * rss0, "RSS grew from %ld KiB to %ld KiB over 1000 garbage messages",
	             rss0, rss1);
	srv_assert_alive(&g_srv, g_srv.tcp_url, HOSTILE_EVENT, &av1, "1000 garbage messages");
	cr_assert_eq(memcmp(&av0, &av1, sizeof(av0)), 0);
	nng_close(s);
	srv_stop_clean(&g_srv, 10000);
}

/* schemas/protocol.md section 2: the largest request is 8 MiB (8388608
 * bytes) and one byte more is dropped without a reply. nng's own limit
 * counts the REQ peer's 4-byte request id as well; the server allows for
 * it, so the body may be exactly 8 MiB. */
Test(server, message_size_limit)
{
	srv_init(&g_srv);
	srv_start(&g_srv); /* the default --recv-max */
	nng_socket s;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &s), 0);
	create_event(s, HOSTILE_EVENT, 1, 10);
	nng_close(s);
	expect_answered_at_limit(&g_srv, g_srv.tcp_url, WIRE_MSG_MAX);
	expect_dropped(&g_srv, g_srv.tcp_url, WIRE_MSG_MAX + 1, WIRE_MSG_MAX);
	expect_answered_at_limit(&g_srv, g_srv.ipc_url, WIRE_MSG_MAX);
	expect_dropped(&g_srv, g_srv.ipc_url, WIRE_MSG_MAX + 1, WIRE_MSG_MAX);
	srv_stop_clean(&g_srv, 10000);
}

/* Opens a connection to the server and closes it before the server has
 * even accepted it (the server is stopped meanwhile), the way a port
 * probe or a client that gives up does: on ipc:// a plain close, on tcp://
 * a FIN and then a reset. The server's SP handshake on it then fails with
 * EPIPE when it resumes. */
static void close_before_handshake(server *srv)
{
	cr_assert_eq(kill(srv->pid, SIGSTOP), 0);
	int st;
	cr_assert_eq(waitpid(srv->pid, &st, WUNTRACED), srv->pid);
	cr_assert(WIFSTOPPED(st));

	close(raw_connect(srv->ipc_url));
	int fd = raw_connect(srv->tcp_url);
	shutdown(fd, SHUT_WR);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);

	cr_assert_eq(kill(srv->pid, SIGCONT), 0);
	cr_assert_eq(waitpid(srv->pid, &st, WCONTINUED), srv->pid);
}

/* A connection that goes away during the handshake must not stop the
 * server from accepting the next ones. It does under nng 1.5.2 (Debian
 * 12's libnng): the failed handshake's NNG_ECLOSED reaches the listener,
 * which takes it for its own close and never accepts again; the dial of
 * a later client still succeeds (the transport completes the handshake)
 * but its requests are never read. Fixed in nng 1.6.0 (issue #1518).
 * Its own Criterion suite, run by meson as an expected failure (test
 * 'nng-1518-listener', should_fail): it fails on every run with 1.5.2, and
 * the day it passes (a fixed nng, or a workaround in the gateway) meson
 * reports an unexpected pass, which scripts/test counts as a failure, so
 * that it is moved back into the 'server' suite. */
Test(nng_1518, listener_survives_handshake_disconnect)
{
	srv_init(&g_srv);
	srv_start(&g_srv);
	nng_socket s;
	cr_assert_eq(cli_open(g_srv.tcp_url, 10000, &s), 0);
	create_event(s, HOSTILE_EVENT, 1, 10);
	nng_close(s);
	close_before_handshake(&g_srv);
	srv_assert_alive(&g_srv, g_srv.ipc_url, HOSTILE_EVENT, NULL, "a disconnect during the ipc handshake");
	srv_assert_alive(&g_srv, g_srv.tcp_url, HOSTILE_EVENT, NULL, "a disconnect during the tcp handshake");
	srv_stop_clean(&g_srv, 10000);
}

/* ==== 4 and 5. Shutdown and crash under load ============================= */

#define LOAD_EVENT 404u
#define LOAD_ROWS 16u
#define LOAD_ROW_SEATS 4096u
#define LOAD_SEATS (LOAD_ROWS * LOAD_ROW_SEATS)
#define LOAD_THREADS 8u
#define LOAD_ACKS_MAX 16384u
#define LOAD_BATCH 4u /* odd threads send arrays of this many commands */
#define LOAD_MS 1200

typedef struct ack {
	bo_cmd cmd;
	bo_result res;
} ack;

typedef struct loader {
	pthread_t th;
	uint32_t idx;
	const char *url;
	atomic_int *stop; /* relaxed: a flag polled between requests */
	ack *acks;
	uint32_t n_acks;
	uint32_t sent, busy, taken, no_reply;
	char fail[256];
} loader;

/* Sends holds until told to stop or the server goes away. Each hold has a
 * fresh client id, so the per-client hold limit never interferes, and
 * request id 1. Every `ok` is recorded with its command: the server
 * promised it is durable. */
static void *loader_main(void *arg)
{
	loader *ld = arg;
	nng_socket s;
	int rv = cli_open(ld->url, 2000, &s);
	if (rv != 0) {
		snprintf(ld->fail, sizeof(ld->fail), "loader %u: dial: %s", ld->idx,
		         nng_strerror(rv));
		return NULL;
	}
	uint32_t batch = ld->idx % 2 ? LOAD_BATCH : 1;
	uint64_t k = 0;
	while (!atomic_load_explicit(ld->stop, memory_order_relaxed) &&
	       ld->n_acks + batch <= LOAD_ACKS_MAX) {
		bo_cmd c[LOAD_BATCH];
		bo_result r[LOAD_BATCH];
		wire_reply_info info[LOAD_BATCH];
		for (uint32_t i = 0; i < batch; i++, k++)
			c[i] = c_hold_best(((uint64_t)(ld->idx + 1) << 32) | k, 1, LOAD_EVENT,
			                   (uint16_t)(1 + k % 3));
		wire_msg wm;
		ld->sent += batch;
		rv = cmd_call(s, c, batch, batch > 1, r, info, batch, &wm);
		if (rv > 0) {
			ld->no_reply += batch; /* the server went away with it */
			break;
		}
		if (rv < 0 || wm.count != batch) {
			snprintf(ld->fail, sizeof(ld->fail),
			         "loader %u: bad reply (%d, %u replies): %s", ld->idx, rv, wm.count,
			         wm.error);
			break;
		}
		for (uint32_t i = 0; i < batch; i++) {
			if (r[i].status == BO_OK) {
				ld->acks[ld->n_acks++] = (ack){.cmd = c[i], .res = r[i]};
			} else if (r[i].status == BO_BUSY) {
				ld->busy++; /* shed while stopping: not applied */
			} else if (r[i].status == BO_TAKEN) {
				ld->taken++;
			} else {
				snprintf(ld->fail, sizeof(ld->fail), "loader %u: %s/%s (%s)",
				         ld->idx, bo_status_str(r[i].status),
				         bo_detail_str(r[i].detail), info[i].error);
				break;
			}
		}
		if (ld->fail[0])
			break;
	}
	nng_close(s);
	return NULL;
}

/* After the restart: every acknowledged hold is held, by its hold id, and
 * its resend is answered from the window with the first answer. */
static void verify_acks(server *srv, loader *lds, uint32_t nld)
{
	uint32_t total = 0;
	for (uint32_t i = 0; i < nld; i++)
		total += lds[i].n_acks;
	cr_assert_gt(total, 0, "no hold was acknowledged before the stop: the test proves nothing");
	ack *all = malloc((size_t)total * sizeof(ack));
	uint8_t *held_by_ack = calloc(LOAD_SEATS, 1);
	cr_assert(all && held_by_ack);
	uint32_t n = 0, seats = 0;
	for (uint32_t i = 0; i < nld; i++)
		for (uint32_t j = 0; j < lds[i].n_acks; j++)
			all[n++] = lds[i].acks[j];
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < all[i].res.seat_count; j++) {
			uint32_t st = all[i].res.seats[j];
			cr_assert_lt(st, LOAD_SEATS);
			cr_assert_eq(held_by_ack[st], 0, "seat %u was acknowledged to two holds",
			             st);
			held_by_ack[st] = 1;
			seats++;
		}
	}
	nng_socket s;
	cr_assert_eq(cli_open(srv->ipc_url, 30000, &s), 0);
	enum {
		CHUNK = 1024
	};
	bo_cmd *c = malloc(CHUNK * sizeof(bo_cmd));
	bo_result *r = malloc(CHUNK * sizeof(bo_result));
	wire_reply_info *info = malloc(CHUNK * sizeof(wire_reply_info));
	cr_assert(c && r && info);
	for (uint32_t off = 0; off < n; off += CHUNK) {
		uint32_t m = n - off < CHUNK ? n - off : CHUNK;
		for (uint32_t i = 0; i < m; i++)
			c[i] = all[off + i].cmd;
		wire_msg wm;
		int rc = cmd_call(s, c, m, 1, r, info, m, &wm);
		cr_assert_eq(rc, 0, "resending acknowledged holds: %d %s", rc, wm.error);
		cr_assert_eq(wm.count, m);
		for (uint32_t i = 0; i < m; i++) {
			char what[96];
			snprintf(what, sizeof(what),
			         "acknowledged hold of client %#" PRIx64 " after restart",
			         c[i].client_id);
			cr_assert_eq(r[i].status, BO_OK, "%s: resend answered %s/%s (%s)", what,
			             bo_status_str(r[i].status), bo_detail_str(r[i].detail),
			             info[i].error);
			cr_assert_eq(r[i].replayed, 1,
			             "%s: resend not answered from the window (applied again)",
			             what);
			assert_same_claim(&all[off + i].res, &r[i], what);
		}
	}
	/* The seats are held now (not only remembered). */
	uint8_t *st = malloc(LOAD_SEATS);
	cr_assert_not_null(st);
	for (uint32_t first = 0; first < LOAD_SEATS;
	     first += WIRE_BATCH_MAX * BO_QUERY_SEATS_MAX / 4) {
		uint32_t cnt = WIRE_BATCH_MAX * BO_QUERY_SEATS_MAX / 4;
		uint32_t nq = cnt / BO_QUERY_SEATS_MAX;
		for (uint32_t i = 0; i < nq; i++)
			c[i] = c_query_seats(LOAD_EVENT, first + i * BO_QUERY_SEATS_MAX,
			                     BO_QUERY_SEATS_MAX);
		wire_msg wm;
		int rc = cmd_call(s, c, nq, 1, r, info, nq, &wm);
		cr_assert_eq(rc, 0, "query_seats: %d %s", rc, wm.error);
		for (uint32_t i = 0; i < nq; i++) {
			cr_assert_eq(r[i].status, BO_OK);
			for (uint32_t j = 0; j < r[i].seat_count; j++)
				st[r[i].seats[j]] = r[i].seat_state[j];
		}
	}
	for (uint32_t i = 0; i < LOAD_SEATS; i++)
		if (held_by_ack[i])
			cr_assert_eq(st[i], BO_SEAT_HELD,
			             "acknowledged seat %u is %s after restart", i,
			             bo_seat_state_str(st[i]));
	bo_avail av;
	srv_assert_alive(srv, srv->ipc_url, LOAD_EVENT, &av, "restart");
	cr_assert_geq(av.by_state[BO_SEAT_HELD], seats, "fewer seats held than acknowledged");
	cr_assert_eq(av.by_state[BO_SEAT_FREE] + av.by_state[BO_SEAT_HELD], LOAD_SEATS);
	cr_log_info("verified %u acknowledged holds (%u seats); %u seats held after restart", n,
	            seats, av.by_state[BO_SEAT_HELD]);
	/* And the restarted server takes new work. On a fast machine the load
	 * may have sold the event out: then release acknowledged holds until two
	 * seats are free (their seats no longer count as acknowledged-held). */
	uint32_t free_seats = av.by_state[BO_SEAT_FREE];
	for (uint32_t k = 0; free_seats < 2 && k < n; k++) {
		bo_cmd rc_cmd;
		memset(&rc_cmd, 0, sizeof(rc_cmd));
		rc_cmd.op = BO_OP_RELEASE;
		rc_cmd.client_id = all[k].cmd.client_id;
		rc_cmd.request_id = (1ull << 62) | (k + 1);
		rc_cmd.event_id = LOAD_EVENT;
		rc_cmd.claim_id = all[k].res.claim_id;
		bo_result rr;
		cr_assert_eq(call1(s, &rc_cmd, &rr, NULL), 0);
		cr_assert_eq(rr.status, BO_OK, "release of an acknowledged hold after restart: %s",
		             bo_status_str(rr.status));
		for (uint32_t j = 0; j < all[k].res.seat_count; j++)
			held_by_ack[all[k].res.seats[j]] = 0;
		free_seats += all[k].res.seat_count;
	}
	bo_cmd nc = c_hold_best(1u << 31, 1, LOAD_EVENT, 2);
	bo_result nr;
	cr_assert_eq(call1(s, &nc, &nr, NULL), 0);
	cr_assert_eq(nr.status, BO_OK, "a new hold after restart: %s",
	             bo_status_str(nr.status));
	for (uint32_t j = 0; j < nr.seat_count; j++)
		cr_assert_eq(held_by_ack[nr.seats[j]], 0, "a new hold got acknowledged seat %u",
		             nr.seats[j]);
	nng_close(s);
	free(st);
	free(c);
	free(r);
	free(info);
	free(all);
	free(held_by_ack);
}

/* Runs the loaders for LOAD_MS, sends sig, waits for the process, stops
 * the loaders. Returns the wait status; *took_ms is the time to exit and
 * *received the commands whose replies reached the loaders. */
static int load_and_signal(server *srv, loader *lds, int sig, int64_t *took_ms, uint64_t *received)
{
	static atomic_int stop;
	atomic_store_explicit(&stop, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < LOAD_THREADS; i++) {
		lds[i] = (loader){0};
		lds[i].idx = i;
		lds[i].url = i % 2 ? srv->ipc_url : srv->tcp_url;
		lds[i].stop = &stop;
		lds[i].acks = malloc(LOAD_ACKS_MAX * sizeof(ack));
		cr_assert_not_null(lds[i].acks);
		cr_assert_eq(pthread_create(&lds[i].th, NULL, loader_main, &lds[i]), 0);
	}
	sleep_ms(LOAD_MS);
	int st = srv_signal_wait(srv, sig, 12000, took_ms);
	atomic_store_explicit(&stop, 1, memory_order_relaxed);
	uint32_t acks = 0, sent = 0, busy = 0, no_reply = 0;
	*received = 0;
	for (uint32_t i = 0; i < LOAD_THREADS; i++) {
		pthread_join(lds[i].th, NULL);
		cr_assert_eq(lds[i].fail[0], '\0', "%s", lds[i].fail);
		acks += lds[i].n_acks;
		sent += lds[i].sent;
		*received += lds[i].sent - lds[i].no_reply;
		busy += lds[i].busy;
		no_reply += lds[i].no_reply;
	}
	cr_log_info("%s under load: %u holds sent, %u ok, %u busy, %u without a reply; exit after "
	            "%" PRId64 " ms",
	            sig == SIGTERM ? "SIGTERM" : "SIGKILL", sent, acks, busy, no_reply, *took_ms);
	return st;
}

static void load_setup(server *srv)
{
	/* The load is one event at full speed, and the resends after the
	 * restart come in thousands at once: what these tests prove is
	 * durability, so hot-event throttling (on by default) is off. */
	srv_add_arg(srv, "--throttle-rate");
	srv_add_arg(srv, "0");
	srv_start(srv);
	nng_socket s;
	cr_assert_eq(cli_open(srv->tcp_url, 10000, &s), 0);
	create_event(s, LOAD_EVENT, LOAD_ROWS, LOAD_ROW_SEATS);
	g_answered++;
	nng_close(s);
}

static void free_loaders(loader *lds)
{
	for (uint32_t i = 0; i < LOAD_THREADS; i++)
		free(lds[i].acks);
}

Test(server, sigterm_under_load)
{
	srv_init(&g_srv);
	load_setup(&g_srv);
	static loader lds[LOAD_THREADS];
	int64_t took;
	uint64_t received;
	int st = load_and_signal(&g_srv, lds, SIGTERM, &took, &received);
	char log1[sizeof(g_srv.log_path)];
	snprintf(log1, sizeof(log1), "%s", g_srv.log_path);
	uint64_t answered_at_start = g_answered;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || took > 5000)
		dump_log(log1);

	/* Durability first: it is checked even when the stop misbehaved (a
	 * hung server was SIGKILLed by srv_signal_wait). */
	srv_start(&g_srv);
	verify_acks(&g_srv, lds, LOAD_THREADS);
	free_loaders(lds);
	srv_stop_clean(&g_srv, 10000);

	/* Then the graceful stop itself. The wait allowed exceeds gw_stop's
	 * own 10 s drain bound, so -1 means the process hung. */
	cr_assert_neq(st, -1,
	              "the server had not exited %" PRId64 " ms after SIGTERM: hung, killed", took);
	cr_assert(WIFEXITED(st), "the server died of signal %d after SIGTERM", WTERMSIG(st));
	cr_assert_eq(WEXITSTATUS(st), 0, "the server exited %d after SIGTERM", WEXITSTATUS(st));
	cr_assert_leq(took, 5000, "the server took %" PRId64 " ms to stop", took);
	assert_log_clean(log1);
	/* "Answer everything in flight" (--help, gw_stop): every command the
	 * server answered — its own count, logged at exit — reached its
	 * client. Loaders keep their sockets open until the server has
	 * exited, so a reply the server sent cannot be lost on their side. */
	char *log = tproc_read_file(log1, NULL);
	const char *stopped = log ? strstr(log, "msg=\"stopped\"") : NULL;
	const char *cmds = stopped ? strstr(stopped, " commands=") : NULL;
	cr_assert_not_null(cmds, "the stop and its counts are logged");
	uint64_t answered = strtoull(cmds + 10, NULL, 10);
	free(log);
	uint64_t got = received + answered_at_start;
	cr_assert_eq(
	        answered, got,
	        "the server answered %" PRIu64 " commands, its clients received %" PRIu64
	        " replies: %" PRIu64
	        " answers to requests in flight at SIGTERM were dropped (the connections closed "
	        "before the replies left)",
	        answered, got, answered - got);
}

Test(server, sigkill_under_load)
{
	srv_init(&g_srv);
	/* Snapshots during the load, so recovery reads a snapshot and a journal. */
	srv_add_arg(&g_srv, "--snapshot-every");
	srv_add_arg(&g_srv, "1000");
	load_setup(&g_srv);
	static loader lds[LOAD_THREADS];
	int64_t took;
	uint64_t received;
	int st = load_and_signal(&g_srv, lds, SIGKILL, &took, &received);
	cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	          "the server died of SIGKILL");

	srv_start(&g_srv);
	char *log = tproc_read_file(g_srv.log_path, NULL);
	cr_assert_not_null(log);
	uint32_t recovered = 0;
	uint64_t last_seq_max = 0;
	for (const char *p = log; (p = strstr(p, "msg=\"shard recovered\"")) != NULL; p++) {
		recovered++;
		const char *q = strstr(p, "last_seq=");
		uint64_t last = q ? strtoull(q + 9, NULL, 10) : 0;
		if (last > last_seq_max)
			last_seq_max = last;
		const char *eol = strchr(p, '\n');
		cr_log_info("after SIGKILL: %.*s", eol ? (int)(eol - p) : (int)strlen(p), p);
	}
	free(log);
	if (recovered != 2 || last_seq_max == 0)
		srv_dump_log(&g_srv);
	cr_assert_eq(recovered, 2, "each of the 2 shards logs its recovery");
	cr_assert_gt(last_seq_max, 0, "recovery found the journal");
	srv_assert_log_clean(&g_srv);
	verify_acks(&g_srv, lds, LOAD_THREADS);
	free_loaders(lds);
	srv_stop_clean(&g_srv, 10000);
}

/* ---- 7. server_status and the status log --------------------------------- */

/* Sends {"op": "server_status"} and decodes the reply into *st. */
static int status_call(nng_socket s, wire_server_status *st, int *status, wire_msg *wm)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_server_status_request(&sb), 0);
	nng_msg *reply;
	int rc = raw_call(s, sb.data, sb.size, &reply);
	msgpack_sbuffer_destroy(&sb);
	if (rc != 0) {
		snprintf(wm->error, sizeof(wm->error), "nng: %s", nng_strerror(rc));
		return rc;
	}
	rc = wire_decode_server_status(nng_msg_body(reply), nng_msg_len(reply), st, status, wm);
	nng_msg_free(reply);
	return rc;
}

/* Waits up to timeout_ms until the log holds every needle (the server
 * writes its log as it goes: a line that is not there yet may come). */
static int log_wait_for(const char *path, const char *const *needles, int n, int timeout_ms)
{
	for (int waited = 0;; waited += 20) {
		char *log = tproc_read_file(path, NULL);
		int found = 0;
		for (int i = 0; log && i < n; i++)
			found += strstr(log, needles[i]) != NULL;
		free(log);
		if (found == n)
			return 1;
		if (waited >= timeout_ms)
			return 0;
		sleep_ms(20);
	}
}

static wire_server_status g_status;

/* 7: with --no-pg every shard's committer is "off" (with its reason) in
 * server_status and in the status log; a hold's ack moves its shard's
 * durable sequence (the reply leaves only once its record is durable, so
 * the next server_status must show it); a malformed admin request gets a
 * message-level invalid; the server still stops cleanly. */
Test(server, server_status_without_database)
{
	srv_init(&g_srv);
	srv_add_arg(&g_srv, "--no-pg");
	srv_add_arg(&g_srv, "--status-every");
	srv_add_arg(&g_srv, "1");
	srv_start(&g_srv);
	nng_socket c;
	cr_assert_eq(cli_open(g_srv.tcp_url, 5000, &c), 0);

	int status = -1;
	wire_msg wm;
	cr_assert_eq(status_call(c, &g_status, &status, &wm), 0, "%s", wm.error);
	cr_assert_eq(status, BO_OK);
	cr_assert_neq(g_status.version[0], '\0');
	cr_assert_eq(g_status.shard_count, 2);
	uint64_t before[2];
	for (uint32_t k = 0; k < 2; k++) {
		const wire_committer_status *cs = &g_status.shards[k].committer;
		cr_assert_eq(cs->state, WIRE_COMMITTER_OFF, "shard %u: %s", k, wire_committer_state_name(cs->state));
		cr_assert(strstr(cs->reason, "no database") != NULL, "shard %u: reason '%s'", k, cs->reason);
		before[k] = g_status.shards[k].durable_seq;
	}

	/* A hold on event 7: its shard's durable sequence moves, the other's does not. */
	create_event(c, 7, 2, 10);
	bo_cmd h = c_hold_best(99, 1, 7, 2);
	bo_result r;
	cr_assert_eq(call1(c, &h, &r, NULL), 0);
	cr_assert_eq(r.status, BO_OK);
	uint32_t k7 = shard_for_event(7, 2);
	cr_assert_eq(status_call(c, &g_status, &status, &wm), 0, "%s", wm.error);
	cr_assert_eq(status, BO_OK);
	cr_assert_geq(g_status.shards[k7].durable_seq, before[k7] + 2, "create_event and hold are durable");
	cr_assert_eq(g_status.shards[1 - k7].durable_seq, before[1 - k7]);
	cr_assert_eq(g_status.shards[k7].committer.state, WIRE_COMMITTER_OFF);

	/* A key that does not apply: one invalid map, and the server goes on. */
	static const uint8_t bad[] = {0x82, 0xa2, 'o', 'p', 0xad, 's', 'e', 'r', 'v', 'e', 'r', '_',
	                              's', 't', 'a', 't', 'u', 's', 0xa5, 'e', 'v', 'e', 'n', 't', 0x01};
	nng_msg *reply;
	cr_assert_eq(raw_call(c, bad, sizeof(bad), &reply), 0);
	bo_result er;
	wire_reply_info info;
	cr_assert_eq(decode_reply(reply, &er, &info, 1, &wm), 0, "%s", wm.error);
	cr_assert_eq(er.status, BO_INVALID);
	cr_assert(info.malformed);
	cr_assert(strstr(info.error, "does not apply to op 'server_status'"), "%s", info.error);
	cr_assert_eq(status_call(c, &g_status, &status, &wm), 0, "%s", wm.error);
	nng_close(c);

	/* The status log: one line per shard, committer off, with the reason. */
	static const char *const lines[] = {
	        "msg=\"no database (--no-pg): journal not carried to PostgreSQL\"",
	        "msg=\"status\" shard=0 durable_seq=",
	        "msg=\"status\" shard=1 durable_seq=",
	        "committer=off reason=\"no database: journal not carried to PostgreSQL\"",
	};
	if (!log_wait_for(g_srv.log_path, lines, 4, 10000))
		srv_dump_log(&g_srv);
	cr_assert(log_wait_for(g_srv.log_path, lines, 4, 0), "the status log lines are missing");
	srv_stop_clean(&g_srv, 5000);
}

/* 7b: with neither --pg-dsn nor --no-pg the engine runs alone and the
 * start-up log says so. */
Test(server, no_database_is_said_at_start)
{
	srv_init(&g_srv);
	srv_start(&g_srv);
	static const char *const line[] = {"msg=\"no database: journal not carried to PostgreSQL\""};
	cr_assert(log_wait_for(g_srv.log_path, line, 1, 0), "start-up log lacks the no-database line");
	srv_stop_clean(&g_srv, 5000);
}

/* ---- 8. server_status with a database (BOXOFFICE_TEST_PG_DSN) ------------- */

static char g_pg_dsn[PGT_DSN_MAX];

static void pg_fini(void)
{
	srv_fini(); /* the server first: it holds connections to the database */
	if (g_pg_dsn[0])
		pgt_drop_db(g_pg_dsn);
}

/* Polls server_status until every shard's committer is `state` with nothing
 * left to apply (applied_seq == durable_seq, lag 0), or timeout_ms passes.
 * Returns 1 when it got there; g_status holds the last reply. */
static int status_wait_caught_up(nng_socket c, uint8_t state, int timeout_ms)
{
	for (int waited = 0;; waited += 50) {
		int status = -1;
		wire_msg wm;
		cr_assert_eq(status_call(c, &g_status, &status, &wm), 0, "%s", wm.error);
		cr_assert_eq(status, BO_OK);
		uint32_t done = 0;
		for (uint32_t k = 0; k < g_status.shard_count; k++) {
			const wire_shard_status *s = &g_status.shards[k];
			done += s->committer.state == state && s->committer.applied_seq == s->durable_seq &&
			        s->committer.lag_records == 0 && s->committer.lag_ms == 0;
		}
		if (done == g_status.shard_count)
			return 1;
		if (waited >= timeout_ms)
			return 0;
		sleep_ms(50);
	}
}

/* 8: with a fresh database every committer comes up "running", catches up
 * to lag 0 after holds, and what server_status reports as applied is the
 * database's own checkpoint; the status log names the committer running. */
Test(server, server_status_with_database, .fini = pg_fini)
{
	pgt_create_db("bo_server_status", g_pg_dsn, sizeof(g_pg_dsn));
	srv_init(&g_srv);
	srv_add_arg(&g_srv, "--pg-dsn");
	srv_add_arg(&g_srv, g_pg_dsn);
	srv_start(&g_srv);
	nng_socket c;
	cr_assert_eq(cli_open(g_srv.tcp_url, 5000, &c), 0);
	if (!status_wait_caught_up(c, WIRE_COMMITTER_RUNNING, 30000))
		srv_dump_log(&g_srv);
	cr_assert_eq(g_status.shard_count, 2);
	cr_assert(status_wait_caught_up(c, WIRE_COMMITTER_RUNNING, 0), "the committers did not come up running");

	create_event(c, 7, 2, 10);
	for (uint64_t i = 0; i < 5; i++) {
		bo_cmd h = c_hold_best(99, 10 + i, 7, 2);
		bo_result r;
		cr_assert_eq(call1(c, &h, &r, NULL), 0);
		cr_assert_eq(r.status, BO_OK);
	}
	uint32_t k7 = shard_for_event(7, 2);
	if (!status_wait_caught_up(c, WIRE_COMMITTER_RUNNING, 30000))
		srv_dump_log(&g_srv);
	cr_assert(status_wait_caught_up(c, WIRE_COMMITTER_RUNNING, 0), "shard %u: lag %" PRIu64 " records", k7,
	          g_status.shards[k7].committer.lag_records);
	const wire_shard_status *s = &g_status.shards[k7];
	cr_assert_geq(s->durable_seq, 6, "create_event and 5 holds");
	cr_assert_geq(s->committer.batches, 1);
	cr_assert_eq(s->committer.changes, 10, "5 holds of 2 seats");
	cr_assert_eq(s->committer.reason[0], '\0');
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT journal_seq FROM boxoffice.checkpoints WHERE shard = %u", k7);
	PGconn *db = pgt_connect(g_pg_dsn);
	cr_assert_eq((uint64_t)pgt_scalar(db, sql), s->committer.applied_seq);
	cr_assert_eq(pgt_scalar(db, "SELECT count(*) FROM boxoffice.seat_changes WHERE cause = 'hold'"), 10);
	PQfinish(db);
	nng_close(c);
	srv_stop_clean(&g_srv, 10000);
}

/* ---- 9. --publish: bad values are refused, nothing is left running -------- */

/* Runs the server with argv[1..] (and env BOXOFFICE_PUBLISH = publish_env
 * when not NULL); it must exit with `code` and say `text` on stderr. (Any
 * option refused at start, not only --publish: bad_throttle_values_...) */
static void publish_refused(const char *const *args, const char *publish_env, int code,
                            const char *text)
{
	const char *bin = getenv("BOXOFFICE_SERVER");
	cr_assert(bin && *bin, "BOXOFFICE_SERVER is not set: run this test through meson");
	char dir[] = "/tmp/bo-publish-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char listen[64];
	snprintf(listen, sizeof(listen), "ipc://%s/s", dir);
	const char *argv[32] = {bin,    "--data-dir",     dir, "--no-pg", "--listen",
	                        listen, "--status-every", "0"};
	int n = 8;
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(n + 1, 32);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if (publish_env)
		setenv("BOXOFFICE_PUBLISH", publish_env, 1);
	tproc_result r;
	int rc = tproc_run(argv, publish_env ? NULL : "BOXOFFICE_PUBLISH", 20000, &r);
	unsetenv("BOXOFFICE_PUBLISH");
	cr_assert_eq(rc, 0, "running the server: %s", strerror(-rc));
	cr_assert_eq(r.timed_out, 0, "the server kept running with a bad --publish");
	cr_assert_eq(r.code, code, "exit %d, not %d; stderr: %s", r.code, code, r.err);
	cr_assert_not_null(strstr(r.err, text), "stderr lacks '%s': %s", text, r.err);
	tproc_result_free(&r);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(server, bad_publish_values_are_refused)
{
	static const char *const url[] = {"--publish", "bogus://x", NULL};
	publish_refused(url, NULL, 1, "cannot publish on bogus://x");
	static const char *const none[] = {"--publish", NULL};
	publish_refused(none, NULL, 2, "--publish needs a value");
	static const char *const nine[] = {
	        "--publish", "ipc:///tmp/a1", "--publish", "ipc:///tmp/a2",
	        "--publish", "ipc:///tmp/a3", "--publish", "ipc:///tmp/a4",
	        "--publish", "ipc:///tmp/a5", "--publish", "ipc:///tmp/a6",
	        "--publish", "ipc:///tmp/a7", "--publish", "ipc:///tmp/a8",
	        "--publish", "ipc:///tmp/a9", NULL};
	publish_refused(nine, NULL, 2, "at most 8 --publish addresses");
	static const char *const no_args[] = {NULL};
	publish_refused(no_args, "a,b,c,d,e,f,g,h,i", 2, "BOXOFFICE_PUBLISH: at most 8 addresses");
}

/* --throttle-rate / --throttle-burst and their variables: out of range or
 * not a number is a usage error (exit 2) that names the option and its
 * range; nothing starts. */
Test(server, bad_throttle_values_are_refused)
{
	static const char *const word[] = {"--throttle-rate", "fast", NULL};
	publish_refused(word, NULL, 2, "--throttle-rate takes a whole number in 0..10000000, not 'fast'");
	static const char *const big[] = {"--throttle-rate", "10000001", NULL};
	publish_refused(big, NULL, 2, "--throttle-rate takes a whole number in 0..10000000");
	static const char *const zero[] = {"--throttle-burst", "0", NULL};
	publish_refused(zero, NULL, 2, "--throttle-burst takes a whole number in 1..10000000, not '0'");
	static const char *const no_args[] = {NULL};
	setenv("BOXOFFICE_THROTTLE_BURST", "-1", 1);
	publish_refused(no_args, NULL, 2, "BOXOFFICE_THROTTLE_BURST takes a whole number in 1..10000000");
	unsetenv("BOXOFFICE_THROTTLE_BURST");
}
