/*
 * cluster_load — a steady stream of seat holds against a boxoffice cluster
 * that counts, at the end, how many acknowledged holds the cluster lost.
 *
 * What it is for: scripts/cluster's demonstration (kill the primary in one
 * terminal, watch the load in another pause and go on), the fault tests
 * (tests/cluster/faults.py) and scripts/bench cluster. Every hold is of one
 * seat that no other hold of the run asks for (event e, seat s, in order),
 * by its own client id (8 holds per id: a client may hold
 * BO_HOLDS_PER_CLIENT_MAX), with a TTL beyond the run, so in a correct cluster every hold is
 * answered ok exactly once and stays.
 *
 * How loss is judged — by the server's own memory, not by timing: at the
 * end every acknowledged seat's state is asked (query_seats): nothing of
 * this run releases a hold and nobody else asks for these seats, so each
 * must still be held; a free seat (or a vanished event) counts in
 * lost_acknowledged. A run of at most CL_RESEND_CHECK_MAX holds (inside
 * the servers' idempotency window) is checked first more strictly: every
 * acknowledged hold is sent again with the SAME (client id, request id),
 * and a cluster that kept it answers from the window with the recorded
 * result, the same hold id; one that lost it executes it afresh (a new
 * hold id) or refuses it. Holds that never got an ok (no answer, not_primary,
 * busy) are resent with their request id until they do, so the idempotency
 * window makes an unknown outcome harmless.
 *
 * Output: one line per --report-ms (acknowledged per second, resends,
 * the longest time without any acknowledgement so far), then one JSON
 * object as the last line of stdout. Exit 0 when nothing acknowledged was
 * lost, 1 when something was, 2 on a usage or set-up error.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/parse.h"
#include "client/boxoffice.h"

#define CL_ROWS 100u
#define CL_SEATS_PER_ROW 1000u
#define CL_RESEND_CHECK_MAX (BO_IDEM_CAPACITY_DEFAULT / 2)
#define CL_TTL_MS BO_TTL_MS_MAX /* 30 minutes: longer than any run */

static const char usage[] =
	"usage: cluster_load --server URL[,URL...] [OPTIONS]\n"
	"\n"
	"Holds seats one by one against a boxoffice cluster (or one server) and\n"
	"counts, at the end, the acknowledged holds the cluster lost: every\n"
	"acknowledged seat must still be held, and (up to 131,072 holds) each\n"
	"hold resent with its (client, request id) must come back as itself.\n"
	"\n"
	"  --server URLS      the servers' client addresses (comma-separated); the\n"
	"                     client library follows not_primary answers\n"
	"  --rate N           holds offered per second (default 2000)\n"
	"  --seconds S        run time; 0 = until SIGINT/SIGTERM (default 0)\n"
	"  --events N         events created, 100,000 seats each (default 4)\n"
	"  --first-event ID   id of the first event (default 1000)\n"
	"  --report-ms MS     progress line interval (default 1000; 0 = none)\n"
	"  --timeout-ms MS    per-request timeout before a resend (default 2000)\n"
	"  --verify-on-usr1   after the load, wait for SIGUSR1 before verifying (the\n"
	"                     tests use it to prove a lost hold is seen)\n"
	"  -h, --help         this text\n"
	"\n"
	"Exit status: 0 every hold acknowledged and kept, 1 one was lost, refused\n"
	"or never answered, 2 error.\n"
	"Last line of stdout: a JSON object (acknowledged, refused, lost_acknowledged:\n"
	"losses found, a lost hold counting once per check that saw it;\n"
	"resent, max_gap_ms, holds_per_sec, latency_us_p50/p99/p999: first\n"
	"submission to the ok, resends included).\n";

enum { OP_IDLE = 0, OP_SENT, OP_RETRY, OP_ACKED };

typedef struct cl_op {
	uint64_t client, event, request, hold;
	uint32_t seat;
	_Atomic int state;
	int64_t retry_at_ns;
	int64_t first_sent_ns; /* the first submission: latency counts resends */
	uint32_t latency_us;   /* first submission to the ok (UINT32_MAX capped) */
} cl_op;

typedef struct cl_run {
	boc_client *c;
	uint64_t client_id;
	cl_op *ops;
	size_t nops, next;
	/* refused: answered no (final); taken: of those, the seat was taken —
	 * only a forgotten hold of ours can have taken it, so a loss. */
	atomic_uint_fast64_t acked, resent, not_primary, no_answer, refused, taken;
	_Atomic int64_t last_ack_ns;
	_Atomic int64_t max_gap_ns;
	uint32_t timeout_ms;
	/* verification */
	atomic_uint_fast64_t verified, lost;
	_Atomic int verify_pending;
} cl_run;

static volatile sig_atomic_t g_stop, g_go;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	g_go = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note_ack(cl_run *r)
{
	int64_t t = now_ns();
	int64_t prev = atomic_exchange(&r->last_ack_ns, t);
	int64_t gap = t - prev, m = atomic_load(&r->max_gap_ns);
	while (gap > m && !atomic_compare_exchange_weak(&r->max_gap_ns, &m, gap))
		;
}

static void on_hold(void *ctx, int err, const bo_result *res, const char *text)
{
	cl_op *op = ctx;
	cl_run *r = (cl_run *)(uintptr_t)op->retry_at_ns; /* set at submit, see submit_op */
	(void)text;
	if (err == 0 && res->status == BO_OK) {
		op->hold = res->claim_id;
		int64_t us = (now_ns() - op->first_sent_ns) / 1000;
		op->latency_us = us > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
		atomic_fetch_add(&r->acked, 1);
		note_ack(r);
		atomic_store(&op->state, OP_ACKED);
		return;
	}
	if (err != 0)
		atomic_fetch_add(&r->no_answer, 1);
	else if (res->status == BO_NOT_PRIMARY)
		atomic_fetch_add(&r->not_primary, 1);
	else if (res->status != BO_BUSY && res->status != BO_THROTTLED) {
		/* Each seat is asked for once: a refusal means it was taken by a
		 * hold of ours that the cluster applied and then forgot (or the
		 * run is misconfigured). Final: not resent. */
		if (res->status == BO_TAKEN)
			atomic_fetch_add(&r->taken, 1);
		if (atomic_fetch_add(&r->refused, 1) < 5)
			fprintf(stderr, "cluster_load: event %" PRIu64 " seat %u refused: %s %s\n", op->event,
			        op->seat, bo_status_str(res->status), text);
		atomic_store(&op->state, OP_IDLE);
		return;
	}
	atomic_store(&op->state, OP_RETRY);
}

static int submit_op(cl_run *r, cl_op *op)
{
	bo_cmd cmd;
	boc_hold_seats(&cmd, op->client, op->request, op->event, &op->seat, 1, CL_TTL_MS);
	/* The callback needs the run: carried in retry_at_ns while in flight. */
	op->retry_at_ns = (int64_t)(uintptr_t)r;
	if (op->first_sent_ns == 0)
		op->first_sent_ns = now_ns();
	atomic_store(&op->state, OP_SENT);
	int rc = boc_submit(r->c, &cmd, on_hold, op);
	if (rc != 0) {
		op->retry_at_ns = 0;
		atomic_store(&op->state, OP_RETRY);
	}
	return rc;
}

/* Resends what failed (same request id), at most `budget`. */
static void resend_failed(cl_run *r, size_t budget)
{
	for (size_t i = 0; i < r->next && budget > 0; i++) {
		cl_op *op = &r->ops[i];
		if (atomic_load(&op->state) != OP_RETRY)
			continue;
		atomic_fetch_add(&r->resent, 1);
		submit_op(r, op);
		budget--;
	}
}

static void on_verify(void *ctx, int err, const bo_result *res, const char *text)
{
	cl_op *op = ctx;
	cl_run *r = (cl_run *)(uintptr_t)op->retry_at_ns;
	(void)text;
	if (err != 0 || res->status == BO_NOT_PRIMARY || res->status == BO_BUSY ||
	    res->status == BO_THROTTLED) {
		atomic_store(&op->state, OP_RETRY); /* no verdict yet: shed, not answered */
	} else {
		if (res->status != BO_OK || res->claim_id != op->hold) {
			atomic_fetch_add(&r->lost, 1);
			fprintf(stderr, "LOST: event %" PRIu64 " seat %u request %" PRIu64
			        " acknowledged hold %" PRIu64 ", now: %s hold %" PRIu64 "\n",
			        op->event, op->seat, op->request, op->hold, bo_status_str(res->status),
			        res->claim_id);
		}
		atomic_fetch_add(&r->verified, 1);
		atomic_store(&op->state, OP_IDLE);
	}
	atomic_fetch_sub(&r->verify_pending, 1);
}

/* Resends every acknowledged hold once more; the answer must be the same
 * hold. Returns 0, or -ETIMEDOUT when the cluster never answered some. */
static int verify(cl_run *r, int64_t deadline_ns)
{
	for (size_t i = 0; i < r->next; i++)
		if (atomic_load(&r->ops[i].state) == OP_ACKED)
			atomic_store(&r->ops[i].state, OP_RETRY + 10); /* to verify */
	for (;;) {
		size_t todo = 0;
		for (size_t i = 0; i < r->next; i++) {
			cl_op *op = &r->ops[i];
			int st = atomic_load(&op->state);
			if (st != OP_RETRY + 10 && !(st == OP_RETRY && op->hold != 0))
				continue;
			todo++;
			bo_cmd cmd;
			boc_hold_seats(&cmd, op->client, op->request, op->event, &op->seat, 1, CL_TTL_MS);
			op->retry_at_ns = (int64_t)(uintptr_t)r;
			atomic_store(&op->state, OP_SENT);
			atomic_fetch_add(&r->verify_pending, 1);
			if (boc_submit(r->c, &cmd, on_verify, op) != 0) {
				atomic_fetch_sub(&r->verify_pending, 1);
				atomic_store(&op->state, OP_RETRY + 10);
				break; /* queue full: wait below */
			}
		}
		while (atomic_load(&r->verify_pending) > 0)
			usleep(1000);
		if (todo == 0)
			return 0;
		if (now_ns() > deadline_ns)
			return -ETIMEDOUT;
		usleep(10000); /* what was shed (busy, throttled) goes again */
	}
}

/* ---- Verification by the seats' state ------------------------------------
 * The resend check above needs every acknowledged hold inside the
 * servers' idempotency window (BO_IDEM_CAPACITY_DEFAULT per shard); a long
 * run is beyond it (a resend then runs afresh and is refused: the seat is
 * taken by the very hold being checked). So every run also asks the state
 * of every acknowledged seat: no hold of this run is ever released and no
 * other client asks for these seats, so each must still be held. */
typedef struct cl_chunk {
	cl_run *r;
	uint64_t event;
	uint32_t seats[BO_QUERY_SEATS_MAX];
	uint32_t n;
	_Atomic int state; /* OP_RETRY: to ask (again); OP_SENT; OP_IDLE: done */
} cl_chunk;

static void on_seats(void *ctx, int err, const bo_result *res, const char *text)
{
	cl_chunk *ch = ctx;
	cl_run *r = ch->r;
	(void)text;
	if (err == 0 && res->status == BO_NOT_FOUND) {
		/* The event itself is gone: every seat of the chunk with it. */
		if (atomic_fetch_add(&r->lost, ch->n) < 10)
			fprintf(stderr, "LOST: event %" PRIu64 " is gone (%u acknowledged seats)\n", ch->event,
			        ch->n);
		atomic_fetch_add(&r->verified, ch->n);
		atomic_store(&ch->state, OP_IDLE);
	} else if (err != 0 || res->status != BO_OK) {
		atomic_store(&ch->state, OP_RETRY); /* no answer, shed, not_primary: ask again */
	} else {
		for (uint32_t i = 0; i < ch->n; i++) {
			if (res->seat_state[i] == BO_SEAT_HELD || res->seat_state[i] == BO_SEAT_BOOKED)
				continue;
			if (atomic_fetch_add(&r->lost, 1) < 10)
				fprintf(stderr, "LOST: event %" PRIu64 " seat %u was acknowledged held, now %s\n",
				        ch->event, ch->seats[i], bo_seat_state_str(res->seat_state[i]));
		}
		atomic_fetch_add(&r->verified, ch->n);
		atomic_store(&ch->state, OP_IDLE);
	}
	atomic_fetch_sub(&r->verify_pending, 1);
}

/* Builds the chunks: the acknowledged seats of each event, up to
 * BO_QUERY_SEATS_MAX per query. Returns the count, or 0 (out of memory:
 * *out NULL). */
static size_t seat_chunks(cl_run *r, uint64_t events, cl_chunk **out)
{
	size_t cap = r->next / BO_QUERY_SEATS_MAX + events + 1, n = 0;
	cl_chunk *ch = calloc(cap, sizeof *ch);
	*out = ch;
	if (ch == NULL)
		return 0;
	for (uint64_t e = 0; e < events; e++) {
		cl_chunk *cur = NULL;
		for (size_t i = e; i < r->next; i += events) {
			if (r->ops[i].hold == 0)
				continue; /* never acknowledged (refused): nothing to check */
			if (cur == NULL || cur->n == BO_QUERY_SEATS_MAX) {
				assert(n < cap);
				cur = &ch[n++];
				cur->r = r;
				cur->event = r->ops[i].event;
				atomic_store(&cur->state, OP_RETRY);
			}
			cur->seats[cur->n++] = r->ops[i].seat;
		}
	}
	return n;
}

/* Asks every chunk until each got an answer. 0, or -ETIMEDOUT. */
static int verify_seats(cl_run *r, uint64_t events, int64_t deadline_ns)
{
	cl_chunk *ch;
	size_t n = seat_chunks(r, events, &ch);
	if (ch == NULL)
		return -ENOMEM;
	int rc = 0;
	for (;;) {
		size_t todo = 0;
		for (size_t i = 0; i < n; i++) {
			if (atomic_load(&ch[i].state) != OP_RETRY)
				continue;
			todo++;
			bo_cmd cmd;
			boc_query_seats(&cmd, ch[i].event, ch[i].seats, ch[i].n);
			atomic_store(&ch[i].state, OP_SENT);
			atomic_fetch_add(&r->verify_pending, 1);
			if (boc_submit(r->c, &cmd, on_seats, &ch[i]) != 0) {
				atomic_fetch_sub(&r->verify_pending, 1);
				atomic_store(&ch[i].state, OP_RETRY);
				break; /* queue full: wait below */
			}
		}
		while (atomic_load(&r->verify_pending) > 0)
			usleep(1000);
		if (todo == 0)
			break;
		if (now_ns() > deadline_ns) {
			rc = -ETIMEDOUT;
			break;
		}
		usleep(10000);
	}
	free(ch);
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Latency percentiles (microseconds) of the acknowledged holds. */
static void latencies(const cl_run *r, uint32_t *p50, uint32_t *p99, uint32_t *p999)
{
	*p50 = *p99 = *p999 = 0;
	uint32_t *v = malloc((r->next + 1) * sizeof *v);
	size_t n = 0;
	if (v == NULL)
		return;
	for (size_t i = 0; i < r->next; i++)
		if (r->ops[i].hold != 0)
			v[n++] = r->ops[i].latency_us;
	if (n > 0) {
		qsort(v, n, sizeof *v, cmp_u32);
		*p50 = v[n / 2];
		*p99 = v[(size_t)((double)n * 0.99)];
		*p999 = v[(size_t)((double)n * 0.999)];
	}
	free(v);
}

static int create_events(boc_client *c, uint64_t client, uint64_t first, uint32_t n)
{
	bo_seatmap *map = bo_seatmap_new(CL_ROWS, CL_ROWS * CL_SEATS_PER_ROW, 0);
	if (map == NULL)
		return -ENOMEM;
	map->category_count = 1;
	for (uint32_t i = 0; i < CL_ROWS; i++) {
		map->rows[i].section = 1;
		map->rows[i].seats = CL_SEATS_PER_ROW;
	}
	memset(map->categories, 0, map->seat_count);
	int rc = 0;
	for (uint32_t e = 0; e < n && rc == 0; e++) {
		bo_cmd cmd;
		bo_result res;
		char text[BOC_TEXT_LEN_MAX];
		/* The same request id each time this event is created: a rerun
		 * (or a resend after a failover) is answered from the window. */
		boc_create_event(&cmd, client, 1 + e, first + e, map);
		for (int tries = 0;; tries++) {
			int err = boc_call(c, &cmd, &res, text, sizeof text);
			if (err == 0 && (res.status == BO_OK || (res.status == BO_INVALID &&
			                                         res.detail == BO_D_EVENT_EXISTS)))
				break;
			if (tries >= 100 || g_stop) {
				fprintf(stderr, "cluster_load: creating event %" PRIu64 ": %s\n", first + e,
				        err != 0 ? "no answer" : bo_status_str(res.status));
				rc = -EIO;
				break;
			}
			usleep(100000);
		}
	}
	bo_seatmap_free(map);
	return rc;
}

typedef struct cl_args {
	const char *servers;
	uint64_t rate, seconds, events, first_event, report_ms, timeout_ms;
	int wait_usr1;
} cl_args;

static void parse_args(int argc, char **argv, cl_args *a)
{
	*a = (cl_args){.rate = 2000, .events = 4, .first_event = 1000, .report_ms = 1000,
	               .timeout_ms = 2000};
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		if (strcmp(k, "-h") == 0 || strcmp(k, "--help") == 0) {
			fputs(usage, stdout);
			exit(0);
		}
		if (strcmp(k, "--verify-on-usr1") == 0) {
			a->wait_usr1 = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "cluster_load: %s: %s\n", k,
			        k[0] == '-' ? "needs a value" : "unexpected argument");
			exit(2);
		}
		const char *v = argv[++i];
		uint64_t *dst = NULL, max = UINT32_MAX;
		if (strcmp(k, "--server") == 0)
			a->servers = v;
		else if (strcmp(k, "--rate") == 0)
			dst = &a->rate, max = 10000000;
		else if (strcmp(k, "--seconds") == 0)
			dst = &a->seconds;
		else if (strcmp(k, "--events") == 0)
			dst = &a->events, max = 1000;
		else if (strcmp(k, "--first-event") == 0)
			dst = &a->first_event, max = UINT64_MAX / 2;
		else if (strcmp(k, "--report-ms") == 0)
			dst = &a->report_ms;
		else if (strcmp(k, "--timeout-ms") == 0)
			dst = &a->timeout_ms, max = 60000;
		else {
			fprintf(stderr, "cluster_load: unknown option %s (--help)\n", k);
			exit(2);
		}
		if (dst != NULL && bo_parse_u64(v, 0, max, 0, dst) != 0) {
			fprintf(stderr, "cluster_load: %s: expected a number up to %" PRIu64 ", got '%s'\n", k,
			        max, v);
			exit(2);
		}
	}
	if (a->servers == NULL || a->rate == 0 || a->events == 0 || a->timeout_ms == 0) {
		fprintf(stderr, "cluster_load: --server is required; --rate, --events and --timeout-ms "
		                "must be at least 1 (--help)\n");
		exit(2);
	}
}

static void report_line(cl_run *r, double t, uint64_t acked_before, double dt)
{
	uint64_t acked = atomic_load(&r->acked);
	printf("t=%6.1fs acked=%8" PRIu64 " (%7.0f/s) resent=%" PRIu64 " not_primary=%" PRIu64
	       " no_answer=%" PRIu64 " max_gap_ms=%.0f\n",
	       t, acked, (double)(acked - acked_before) / dt, atomic_load(&r->resent),
	       atomic_load(&r->not_primary), atomic_load(&r->no_answer),
	       (double)atomic_load(&r->max_gap_ns) / 1e6);
	fflush(stdout);
}

/* Offers holds at the rate until the time is up, a signal comes or every
 * seat was asked for; then waits until every hold got its ok. */
static void run_load(cl_run *r, const cl_args *a)
{
	int64_t t0 = now_ns(), next_report = t0 + (int64_t)a->report_ms * 1000000;
	int64_t last_report = t0;
	uint64_t acked_at_report = 0;
	atomic_store(&r->last_ack_ns, t0);
	int64_t end = a->seconds ? t0 + (int64_t)a->seconds * 1000000000 : INT64_MAX;
	int64_t last_resend = t0;
	while (!g_stop && now_ns() < end && r->next < r->nops) {
		int64_t t = now_ns();
		size_t due = (size_t)((double)(t - t0) * (double)a->rate / 1e9);
		while (r->next < due && r->next < r->nops) {
			if (submit_op(r, &r->ops[r->next]) == -EBUSY)
				break;
			r->next++;
		}
		if (t - last_resend > 50000000) { /* failed ones, every 50 ms */
			resend_failed(r, (size_t)a->rate);
			last_resend = t;
		}
		if (a->report_ms && t >= next_report) {
			report_line(r, (double)(t - t0) / 1e9, acked_at_report, (double)(t - last_report) / 1e9);
			acked_at_report = atomic_load(&r->acked);
			last_report = t;
			next_report += (int64_t)a->report_ms * 1000000;
		}
		usleep(1000);
	}
	/* Everything sent must end acknowledged (resent until it is). */
	int64_t give_up = now_ns() + 120ll * 1000000000;
	while (atomic_load(&r->acked) + atomic_load(&r->refused) < r->next && now_ns() < give_up) {
		resend_failed(r, r->next);
		usleep(50000);
	}
}

int main(int argc, char **argv)
{
	cl_args a;
	parse_args(argc, argv, &a);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_usr1);
	setvbuf(stdout, NULL, _IOLBF, 0);

	boc_options opt;
	boc_options_default(&opt);
	opt.timeout_ms = (uint32_t)a.timeout_ms;
	cl_run r = {0};
	r.timeout_ms = (uint32_t)a.timeout_ms;
	boc_client *c;
	int rc = boc_open(a.servers, &opt, &c);
	if (rc != 0) {
		fprintf(stderr, "cluster_load: cannot open a client of %s: %s\n", a.servers, strerror(-rc));
		return 2;
	}
	r.c = c;
	r.client_id = boc_client_id(c);
	if (create_events(c, r.client_id, a.first_event, (uint32_t)a.events) != 0) {
		boc_close(c);
		return 2;
	}
	r.nops = (size_t)a.events * CL_ROWS * CL_SEATS_PER_ROW;
	r.ops = calloc(r.nops, sizeof *r.ops);
	if (r.ops == NULL) {
		fprintf(stderr, "cluster_load: out of memory\n");
		return 2;
	}
	for (size_t i = 0; i < r.nops; i++) {
		r.ops[i].event = a.first_event + i % a.events;
		r.ops[i].seat = (uint32_t)(i / a.events);
		r.ops[i].request = 1000 + i; /* 1..999: the events' creation */
		/* A client may hold BO_HOLDS_PER_CLIENT_MAX at once: 8 each. */
		r.ops[i].client = r.client_id + 1 + i / 8;
	}
	int64_t t0 = now_ns();
	run_load(&r, &a);
	double secs = (double)(now_ns() - t0) / 1e9;
	uint64_t acked = atomic_load(&r.acked);
	if (a.wait_usr1) {
		fprintf(stderr, "cluster_load: load done, waiting for SIGUSR1 to verify\n");
		while (!g_go)
			usleep(10000);
	}
	uint32_t p50, p99, p999;
	latencies(&r, &p50, &p99, &p999);
	/* Within the idempotency window (BO_IDEM_CAPACITY_DEFAULT per shard;
	 * a fraction of one shard's, whatever the shard count): also resend
	 * each hold, which must come back as the same hold. */
	int vrc = 0;
	if (acked <= CL_RESEND_CHECK_MAX)
		vrc = verify(&r, now_ns() + 120ll * 1000000000);
	uint64_t resend_verified = atomic_exchange(&r.verified, 0);
	if (vrc == 0)
		vrc = verify_seats(&r, a.events, now_ns() + 300ll * 1000000000);
	uint64_t lost = atomic_load(&r.lost) + atomic_load(&r.taken);
	uint64_t refused = atomic_load(&r.refused);
	fprintf(stderr, "cluster_load: %" PRIu64 " holds acknowledged in %.1f s, %" PRIu64
	        " checked by resend, %" PRIu64 " seats checked, %" PRIu64 " losses found%s\n",
	        acked, secs, resend_verified, atomic_load(&r.verified), lost,
	        vrc != 0 ? " (verification timed out: the cluster stopped answering)" : "");
	printf("{\"sent\":%zu,\"acknowledged\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"lost_acknowledged\":%" PRIu64
	       ",\"unverified\":%" PRIu64 ",\"resent\":%" PRIu64 ",\"not_primary\":%" PRIu64
	       ",\"max_gap_ms\":%.1f,\"holds_per_sec\":%.0f,\"seconds\":%.2f"
	       ",\"latency_us_p50\":%u,\"latency_us_p99\":%u,\"latency_us_p999\":%u}\n",
	       r.next, acked, refused, lost, acked - atomic_load(&r.verified), atomic_load(&r.resent),
	       atomic_load(&r.not_primary), (double)atomic_load(&r.max_gap_ns) / 1e6,
	       (double)acked / secs, secs, p50, p99, p999);
	boc_close(c);
	free(r.ops);
	if (refused > atomic_load(&r.taken))
		fprintf(stderr, "cluster_load: %" PRIu64 " holds refused for another reason than a taken seat "
		        "(a limit of the servers? see the first refusals above)\n", refused - atomic_load(&r.taken));
	return lost != 0 || vrc != 0 || acked + refused < r.next || refused != 0 ? 1 : 0; /* unacknowledged at the end: the cluster stopped answering */
}
