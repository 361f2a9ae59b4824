/*
 * main.c — boxoffice-bench: options, the run (one worker thread per
 * connection, open or closed loop), the audit and the JSON line.
 *
 * Open loop (--mode open --rate R): connection c owns the requests due at
 * t0 + (k * conns + c) / R, k = 0, 1, ... It sleeps until its next one is
 * due, then takes every request already due (up to --depth) into one
 * exec. A request's latency runs from its INTENDED time, not from when it
 * was sent, so a system that falls behind is charged for the queue it
 * causes (wrk2's correction of coordinated omission). Requests due before
 * the end but still queued then go out during a grace period (10% of the
 * run, 0.5..5 s); what is left after it is reported as "unsent" (a system
 * far below the offered rate).
 * Closed loop: --depth requests per exec, back to back; latency from send.
 *
 * The run ends after --duration seconds, when a workload's demand is used
 * up (flash), or at SIGINT/SIGTERM. Setup (event creation) is outside the
 * measured window.
 *
 * The last stdout line, one JSON object (times in ms, rates per second):
 *   system, workload, mode ("open"/"closed"), conns, depth,
 *   offered_per_sec (--rate; null in closed loop), events, seats_per_event,
 *   per_row, categories, ttl_ms, seed,
 *   warmup_s     --warmup: seconds of load before the measured window
 *                (their requests are audited, not counted in any figure)
 *   duration_s   measured: from the measured window's start (the common
 *                start + warmup_s) to the last worker's end
 *   requests     completed requests (every one has an outcome)
 *   per_sec      requests / duration_s
 *   unsent       open loop: due in the window but never sent (too slow)
 *   demand_seats, demand_exhausted   flash: seats asked by decided holds
 *   p50_ms p95_ms p99_ms p999_ms max_ms   all requests (~3% bucket error;
 *                max exact)
 *   outcomes {ok,taken,expired,busy,throttled,error,no_answer}
 *   error_rate   (busy + throttled + error + no_answer) / requests
 *   ops {read,hold_seats,hold_best,confirm,release}: each {requests,
 *                per_sec, p50_ms..max_ms, outcomes, error_rate}
 *   oversell     audit.c's count; oversell_detail {double_booked,
 *                held_while_held, held_when_booked, holds_audited}; both
 *                null for a system without an audit (the echo keeps no seats)
 *   audit {bench_booked, bench_booked_max, <store>_booked, <store>_held
 *                ..., error (when the system's audit failed), agree}
 *   timeline [{t_s, per_sec, p99_ms}] with --timeline (whole seconds)
 * --audit-only prints {system, workload, events, seats_per_event, audit}.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/parse.h"
#include "lg_internal.h"

static const char *prog = "boxoffice-bench";

static const lg_system *const systems[] = {
        &lg_sys_boxoffice,
#ifdef LG_HAVE_FRAME
        &lg_sys_frame,
#endif
#ifdef LG_HAVE_REDIS
        &lg_sys_redis,
#endif
#ifdef LG_HAVE_PG
        &lg_sys_pg,
#endif
#ifdef LG_HAVE_ECHO
        &lg_sys_echo,
#endif
};
#define NSYSTEMS (sizeof(systems) / sizeof(systems[0]))

#define CONNS_MAX 4096u /* ids keep 12 bits for the connection (workload.c) */
#define DEPTH_MAX 65536u

typedef struct run_opts {
	lg_config cfg;
	const char *mode;
	double rate;
	double duration;
	double warmup; /* seconds sent before the measured window, not measured */
	uint64_t seed;
	int timeline, quick, audit_only;
	const char *echo_url;
	/* Sizes given on the command line (0: the workload's default). */
	uint32_t events, seats, per_row, categories, ttl_ms;
} run_opts;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: %s --system NAME [options]       one run, one JSON line on stdout\n"
	        "       %s --audit-only --system NAME [options]   the system's audit figures\n"
	        "       %s --echo-server URL                      nng REP echo until SIGTERM\n"
	        "\n"
	        "  --system NAME       system under test:",
	        prog, prog, prog);
	for (size_t i = 0; i < NSYSTEMS; i++)
		fprintf(f, " %s", systems[i]->name);
	fprintf(f,
	        "\n"
	        "  --target T          where it listens (system-specific; default: the system's)\n"
	        "  --workload W        normal, on-sale, flash or many-events (default: on-sale)\n"
	        "  --mode M            open (fixed offered rate, needs --rate) or closed\n"
	        "                      (default: closed)\n"
	        "  --rate N            open loop: requests offered per second, all connections\n"
	        "  --duration S        seconds of load (default: 10; --quick: 2)\n"
	        "  --warmup S          seconds of the same load before those, not measured\n"
	        "                      (default: none): connections, caches and the\n"
	        "                      server's first touches of memory settle first\n"
	        "  --conns N           connections, one worker thread each, 1..%u (default: 4)\n"
	        "  --depth N           requests per round trip (pipeline/batch), 1..%u (default: 16)\n"
	        "  --events N          events the workload uses     (default: per workload)\n"
	        "  --seats N           seats per event              (default: per workload)\n"
	        "  --per-row N         seats per row                (default: 50)\n"
	        "  --categories N      price tiers, row bands, 1..8 (default: 4)\n"
	        "  --ttl-ms N          hold TTL                     (default: 10000; flash 3000)\n"
	        "  --no-setup          the events exist: do not create them\n"
	        "  --opt k=v,k=v       system-specific options (below)\n"
	        "  --timeline          per second: requests completed and their p99\n"
	        "  --quick             2 s on small venues (the test suite's mode)\n"
	        "  --seed N            the workload's choices (default: 1)\n"
	        "  --audit-only        no load: connect (no setup), print the system's audit\n"
	        "  --echo-server URL   serve the bare nng REP echo at URL until SIGTERM\n"
	        "  -h, --help          this text\n"
	        "\n"
	        "Workloads (events x seats): normal 20 x 10000 (92%% reads), on-sale 20 x 50000\n"
	        "(87%% reads), flash 1 x 50000 (25%% reads, best-available holds, 70%% confirmed,\n"
	        "demand 10x the seats), many-events 2000 x 500 (the on-sale mix).\n"
	        "Systems, their --target (default) and --opt keys:\n"
	        "  boxoffice        nng URL (tcp://127.0.0.1:7400); single=1 (one command a\n"
	        "                   message), linger_us=N, batch_max=N, inflight=N (the client\n"
	        "                   library's options), token=FILE, as=NAME (audit figures'\n"
	        "                   prefix, default read_model), pg=CONNINFO (also count the\n"
	        "                   committer's tables)\n"
	        "  boxoffice-frame  HOST:PORT of --frame (127.0.0.1:7402); nng=URL (setup and\n"
	        "                   audit), token=FILE, as=NAME, pg=CONNINFO\n"
	        "  redis            HOST:PORT, HOST or unix:PATH (127.0.0.1:6379); timeout_ms=N,\n"
	        "                   flush=1 (empty a database that holds keys of others)\n"
	        "  postgres         libpq conninfo (host=127.0.0.1 port=5432 dbname=postgres);\n"
	        "                   sync=round (one commit per pipelined round) or request\n"
	        "  nng-echo         nng URL of --echo-server (tcp://127.0.0.1:7409)\n"
	        "Exit: 0 ok, 1 the run failed (system unreachable, setup refused), 2 usage.\n",
	        CONNS_MAX, DEPTH_MAX);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (try --help)\n");
	va_end(ap);
	exit(2);
}

static uint32_t arg_u32(const char *name, const char *v, uint32_t lo, uint32_t hi)
{
	uint64_t x;
	if (bo_parse_u64(v, lo, hi, 0, &x) != 0) {
		fprintf(stderr, "%s: %s takes a whole number in %u..%u, not '%s' (try --help)\n",
		        prog, name, lo, hi, v);
		exit(2);
	}
	return (uint32_t)x;
}

static double arg_pos(const char *name, const char *v)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d > 0) || d > 1e12) {
		fprintf(stderr, "%s: %s takes a positive number, not '%s' (try --help)\n", prog,
		        name, v);
		exit(2);
	}
	return d;
}

enum {
	O_SYSTEM = 256,
	O_TARGET,
	O_WORKLOAD,
	O_MODE,
	O_RATE,
	O_DURATION,
	O_WARMUP,
	O_CONNS,
	O_DEPTH,
	O_EVENTS,
	O_SEATS,
	O_PER_ROW,
	O_CATEGORIES,
	O_TTL,
	O_NO_SETUP,
	O_OPT,
	O_TIMELINE,
	O_QUICK,
	O_SEED,
	O_AUDIT_ONLY,
	O_ECHO
};

static const struct option long_opts[] = {
        {"system", required_argument, NULL, O_SYSTEM},
        {"target", required_argument, NULL, O_TARGET},
        {"workload", required_argument, NULL, O_WORKLOAD},
        {"mode", required_argument, NULL, O_MODE},
        {"rate", required_argument, NULL, O_RATE},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"conns", required_argument, NULL, O_CONNS},
        {"depth", required_argument, NULL, O_DEPTH},
        {"events", required_argument, NULL, O_EVENTS},
        {"seats", required_argument, NULL, O_SEATS},
        {"per-row", required_argument, NULL, O_PER_ROW},
        {"categories", required_argument, NULL, O_CATEGORIES},
        {"ttl-ms", required_argument, NULL, O_TTL},
        {"no-setup", no_argument, NULL, O_NO_SETUP},
        {"opt", required_argument, NULL, O_OPT},
        {"timeline", no_argument, NULL, O_TIMELINE},
        {"quick", no_argument, NULL, O_QUICK},
        {"seed", required_argument, NULL, O_SEED},
        {"audit-only", no_argument, NULL, O_AUDIT_ONLY},
        {"echo-server", required_argument, NULL, O_ECHO},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static void parse_one(run_opts *o, int c, const char *v)
{
	switch (c) {
	case O_SYSTEM:
		o->cfg.system = v;
		break;
	case O_TARGET:
		o->cfg.target = v;
		break;
	case O_WORKLOAD:
		o->cfg.workload = v;
		break;
	case O_MODE:
		o->mode = v;
		break;
	case O_RATE:
		o->rate = arg_pos("--rate", v);
		break;
	case O_DURATION:
		o->duration = arg_pos("--duration", v);
		break;
	case O_WARMUP:
		o->warmup = arg_pos("--warmup", v);
		break;
	case O_CONNS:
		o->cfg.conns = arg_u32("--conns", v, 1, CONNS_MAX);
		break;
	case O_DEPTH:
		o->cfg.depth = arg_u32("--depth", v, 1, DEPTH_MAX);
		break;
	case O_EVENTS:
		o->events = arg_u32("--events", v, 1, 1u << 24);
		break;
	case O_SEATS:
		o->seats = arg_u32("--seats", v, 1, 1u << 24);
		break;
	case O_PER_ROW:
		o->per_row = arg_u32("--per-row", v, 1, 4096);
		break;
	case O_CATEGORIES:
		o->categories = arg_u32("--categories", v, 1, 8);
		break;
	case O_TTL:
		o->ttl_ms = arg_u32("--ttl-ms", v, 1, 24u * 3600u * 1000u);
		break;
	case O_NO_SETUP:
		o->cfg.setup = 0;
		break;
	case O_OPT:
		o->cfg.opts = v;
		break;
	case O_TIMELINE:
		o->timeline = 1;
		break;
	case O_QUICK:
		o->quick = 1;
		break;
	case O_SEED: {
		uint64_t x;
		if (bo_parse_u64(v, 0, UINT64_MAX, BO_PARSE_HEX, &x) != 0)
			die_usage("--seed takes a whole number, not '%s'", v);
		o->seed = x;
		break;
	}
	case O_AUDIT_ONLY:
		o->audit_only = 1;
		break;
	case O_ECHO:
		o->echo_url = v;
		break;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		exit(2); /* getopt said what */
	}
}

/* Fills the configuration's sizes from the workload and the overrides,
 * and checks what the options say together. */
static const lg_workload_def *finish_opts(run_opts *o)
{
	lg_config *cfg = &o->cfg;
	const lg_workload_def *d = lg_workload_find(cfg->workload, o->quick);
	if (!d)
		die_usage("unknown workload '%s' (normal, on-sale, flash, many-events)",
		          cfg->workload);
	cfg->events = o->events ? o->events : d->events;
	cfg->seats_per_event = o->seats ? o->seats : d->seats;
	cfg->per_row = o->per_row ? o->per_row : d->per_row;
	cfg->categories = o->categories ? o->categories : d->categories;
	cfg->ttl_ms = o->ttl_ms ? o->ttl_ms : d->ttl_ms;
	if (cfg->per_row > cfg->seats_per_event)
		cfg->per_row = cfg->seats_per_event;
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	if (cfg->categories > rows) {
		fprintf(stderr,
		        "%s: --categories %u needs at least as many rows (%u) (try --help)\n", prog,
		        cfg->categories, rows);
		exit(2);
	}
	if (strcmp(o->mode, "open") && strcmp(o->mode, "closed"))
		die_usage("--mode takes open or closed, not '%s'", o->mode);
	if (!strcmp(o->mode, "open") && o->rate <= 0)
		die_usage("%s needs --rate N (requests per second)", "--mode open");
	if (!strcmp(o->mode, "closed") && o->rate > 0)
		die_usage("%s: --rate is for --mode open", "--mode closed");
	if (o->duration <= 0)
		o->duration = o->quick ? 2 : 10;
	if (o->audit_only)
		cfg->setup = 0;
	return d;
}

static const lg_system *find_system(const char *name)
{
	for (size_t i = 0; i < NSYSTEMS; i++)
		if (!strcmp(systems[i]->name, name))
			return systems[i];
	fprintf(stderr, "%s: unknown system '%s'; this build has:", prog, name);
	for (size_t i = 0; i < NSYSTEMS; i++)
		fprintf(stderr, " %s", systems[i]->name);
	fprintf(stderr, " (try --help)\n");
	exit(2);
}

/* ---- The run ------------------------------------------------------------- */

typedef struct worker {
	pthread_t th;
	unsigned idx;
	const lg_system *sys;
	void *conn;
	lg_wl *wl;
	lg_stats *stats;
	lg_audit_log *log;
	lg_req *reqs;
	int64_t *tags;
	uint64_t *intended;
	/* Run-wide, read only. */
	const run_opts *o;
	uint64_t t0, end;
	uint64_t m0;        /* the measured window's start: t0 + --warmup */
	uint64_t drain_end; /* open loop: stop sending what is overdue */
	/* Results. */
	uint64_t stopped; /* when its loop ended */
	uint64_t unsent;  /* open loop: due before the end, never sent */
	int nomem;
} worker;

static void sleep_until(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_flag)
		;
}

/* Records a finished round of n requests. */
static void finish_round(worker *w, unsigned n, uint64_t send, uint64_t done)
{
	for (unsigned i = 0; i < n; i++) {
		const lg_req *r = &w->reqs[i];
		uint64_t lat = done > w->intended[i] ? done - w->intended[i] : 0;
		/* The warm-up's requests count for the audit, not the figures. */
		if (w->intended[i] >= w->m0 &&
		    lg_stats_add(w->stats, r->op, r->outcome, lat, done - w->m0))
			w->nomem = 1;
		lg_wl_done(w->wl, r, w->tags[i], send, done, w->log);
	}
}

/* Due time of this connection's k-th request (open loop). */
static uint64_t due_ns(const worker *w, uint64_t k)
{
	double i = (double)k * w->o->cfg.conns + w->idx;
	return w->t0 + (uint64_t)(i * 1e9 / w->o->rate);
}

static void run_open(worker *w)
{
	uint64_t k = 0;
	int more = 1;
	while (more && !stop_flag) {
		uint64_t due = due_ns(w, k);
		if (due >= w->end)
			break;
		uint64_t now = (uint64_t)bo_clock_ns();
		if (due > now) {
			sleep_until(due);
			continue;
		}
		unsigned n = 0;
		while (n < w->o->cfg.depth && due <= now && due < w->end) {
			if (!lg_wl_next(w->wl, &w->reqs[n], &w->tags[n], now)) {
				more = 0;
				break;
			}
			w->intended[n++] = due;
			due = due_ns(w, ++k);
		}
		if (n == 0)
			break;
		uint64_t send = (uint64_t)bo_clock_ns();
		w->sys->exec(w->conn, w->reqs, n);
		finish_round(w, n, send, (uint64_t)bo_clock_ns());
		/* Requests due before the end still go out after it (their
		 * latency counts from when they were due), for a grace period:
		 * cutting them off would drop exactly the slowest tail. */
		if ((uint64_t)bo_clock_ns() >= w->drain_end)
			break;
	}
	/* What was due before the end and never went out. */
	if (more && !stop_flag) {
		double total =
		        ((double)(w->end - w->t0) * w->o->rate / 1e9 - w->idx) / w->o->cfg.conns;
		uint64_t due_total = total > 0 ? (uint64_t)ceil(total) : 0;
		w->unsent = due_total > k ? due_total - k : 0;
	}
}

static void run_closed(worker *w)
{
	while (!stop_flag) {
		uint64_t now = (uint64_t)bo_clock_ns();
		if (now >= w->end)
			break;
		unsigned n = 0;
		while (n < w->o->cfg.depth && lg_wl_next(w->wl, &w->reqs[n], &w->tags[n], now))
			w->intended[n++] = now;
		if (n == 0)
			break;
		uint64_t send = (uint64_t)bo_clock_ns();
		for (unsigned i = 0; i < n; i++)
			w->intended[i] = send;
		w->sys->exec(w->conn, w->reqs, n);
		finish_round(w, n, send, (uint64_t)bo_clock_ns());
		if (n < w->o->cfg.depth)
			break; /* the demand ran out */
	}
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	sleep_until(w->t0);
	if (!strcmp(w->o->mode, "open"))
		run_open(w);
	else
		run_closed(w);
	w->stopped = (uint64_t)bo_clock_ns();
	return NULL;
}

/* The run's merged figures. */
typedef struct run_result {
	lg_stats *stats;
	lg_audit_result audit;
	double seconds;
	uint64_t unsent;
	int exhausted;
	uint64_t demanded;
} run_result;

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "%s: %s%s%s\n", prog, what, err && err[0] ? ": " : "", err ? err : "");
	exit(1);
}

static worker *start_workers(const run_opts *o, const lg_system *sys, void *sysh, lg_wl_shared *sh)
{
	unsigned n = o->cfg.conns;
	worker *ws = calloc(n, sizeof(*ws));
	uint64_t ids;
	if (!ws)
		fail("out of memory", NULL);
	if (getrandom(&ids, sizeof(ids), 0) != sizeof(ids))
		ids = (uint64_t)bo_clock_ns() ^ ((uint64_t)getpid() << 32);
	char err[LG_ERR_LEN] = "";
	for (unsigned i = 0; i < n; i++) {
		worker *w = &ws[i];
		w->idx = i;
		w->sys = sys;
		w->o = o;
		w->wl = lg_wl_new(sh, i, o->seed, ids);
		w->stats = lg_stats_new(o->timeline);
		w->log = lg_audit_log_new();
		w->reqs = calloc(o->cfg.depth, sizeof(*w->reqs));
		w->tags = calloc(o->cfg.depth, sizeof(*w->tags));
		w->intended = calloc(o->cfg.depth, sizeof(*w->intended));
		if (!w->wl || !w->stats || !w->log || !w->reqs || !w->tags || !w->intended)
			fail("out of memory", NULL);
		int rc = sys->conn_open(sysh, i, &w->conn, err);
		if (rc)
			fail("cannot open a connection", err);
	}
	/* All start at once, a moment from now (threads take time to start). */
	uint64_t t0 = (uint64_t)bo_clock_ns() + 50000000ull + 1000000ull * n;
	/* Open loop's grace for overdue requests: 10% of the run, 0.5..5 s. */
	double grace = o->duration / 10 < 0.5 ? 0.5 : o->duration / 10 > 5 ? 5 : o->duration / 10;
	for (unsigned i = 0; i < n; i++) {
		ws[i].t0 = t0;
		ws[i].m0 = t0 + (uint64_t)(o->warmup * 1e9);
		ws[i].end = ws[i].m0 + (uint64_t)(o->duration * 1e9);
		ws[i].drain_end = ws[i].end + (uint64_t)(grace * 1e9);
		if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
			fail("cannot start a worker thread", strerror(errno));
	}
	return ws;
}

/* Joins the workers, closes their connections and merges their figures. */
static void finish_workers(const run_opts *o, const lg_system *sys, worker *ws, lg_wl_shared *sh,
                           run_result *rr)
{
	unsigned n = o->cfg.conns;
	uint64_t last = 0;
	rr->stats = lg_stats_new(o->timeline);
	lg_audit_log **logs = calloc(n, sizeof(*logs));
	if (!rr->stats || !logs)
		fail("out of memory", NULL);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(ws[i].th, NULL);
		sys->conn_close(ws[i].conn);
		if (ws[i].stopped > last)
			last = ws[i].stopped;
		if (lg_stats_merge(rr->stats, ws[i].stats) || ws[i].nomem)
			fprintf(stderr, "%s: out of memory: the timeline is incomplete\n", prog);
		rr->unsent += ws[i].unsent;
		logs[i] = ws[i].log;
	}
	rr->seconds = (double)(last - ws[0].m0) / 1e9;
	rr->exhausted = atomic_load(&sh->exhausted);
	rr->demanded = atomic_load(&sh->demanded);
	if (lg_audit_check(logs, n, &rr->audit))
		fail("out of memory for the audit", NULL);
	for (unsigned i = 0; i < n; i++) {
		lg_stats_free(ws[i].stats);
		lg_audit_log_free(ws[i].log);
		lg_wl_free(ws[i].wl);
		free(ws[i].reqs);
		free(ws[i].tags);
		free(ws[i].intended);
	}
	free(logs);
	free(ws);
}

/* ---- JSON ---------------------------------------------------------------- */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void print_latency(const lg_hist *h)
{
	printf("\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f",
	       ms(lg_hist_quantile(h, 0.50)), ms(lg_hist_quantile(h, 0.95)),
	       ms(lg_hist_quantile(h, 0.99)), ms(lg_hist_quantile(h, 0.999)), ms(h->max));
}

static void print_outcomes(const uint64_t *c)
{
	printf("\"outcomes\":{");
	for (unsigned k = 0; k < LG_OUTCOME_COUNT; k++)
		printf("%s\"%s\":%llu", k ? "," : "", lg_outcome_key(k), (unsigned long long)c[k]);
	printf("}");
}

static double error_rate(const uint64_t *c, uint64_t requests)
{
	uint64_t bad = c[LG_BUSY] + c[LG_THROTTLED] + c[LG_ERROR] + c[LG_NO_ANSWER];
	return requests ? (double)bad / (double)requests : 0;
}

static void print_ops(const lg_stats *s, double seconds)
{
	printf(",\"ops\":{");
	for (unsigned op = 0; op < LG_OP_COUNT; op++) {
		const lg_hist *h = &s->op[op];
		printf("%s\"%s\":{\"requests\":%llu,\"per_sec\":%.1f,", op ? "," : "",
		       lg_op_key(op), (unsigned long long)h->count,
		       seconds > 0 ? (double)h->count / seconds : 0);
		print_latency(h);
		printf(",");
		print_outcomes(s->outcomes[op]);
		printf(",\"error_rate\":%.6f}", error_rate(s->outcomes[op], h->count));
	}
	printf("}");
}

static void print_timeline(const lg_stats *s, double seconds)
{
	printf(",\"timeline\":[");
	/* Whole seconds only: the last moments after the end (answers to the
	 * final round) would make a sliver of a second look like a spike. */
	uint32_t secs = seconds >= 1 ? (uint32_t)floor(seconds) : 1;
	for (uint32_t t = 0; t < secs; t++) {
		const lg_hist *h = t < s->nsec ? s->sec[t] : NULL;
		double width = seconds < 1 ? seconds : 1;
		uint64_t n = h ? h->count : 0;
		printf("%s{\"t_s\":%u,\"per_sec\":%.1f,\"p99_ms\":%.3f}", t ? "," : "", t,
		       width > 0 ? (double)n / width : 0, h ? ms(lg_hist_quantile(h, 0.99)) : 0.0);
	}
	printf("]");
}

/* The audit object: the system's figures beside what the workers saw.
 * agree: every *_booked figure lies in [bench_booked, bench_booked_max]
 * (only when this run created the events: otherwise earlier runs' seats
 * count too) and all *_booked figures are equal. */
static void print_audit(const lg_audit *a, int have, const char *aerr, const run_result *rr,
                        int fresh)
{
	printf("\"audit\":{");
	int agree = have;
	const char *sep = "";
	if (rr) {
		printf("\"bench_booked\":%llu,\"bench_booked_max\":%llu",
		       (unsigned long long)rr->audit.bench_booked,
		       (unsigned long long)rr->audit.bench_booked_max);
		sep = ",";
	}
	int64_t first = -1;
	for (unsigned i = 0; have && i < a->nfigs; i++) {
		const lg_audit_fig *f = &a->figs[i];
		printf("%s", sep);
		bo_json_cstr(stdout, f->name);
		printf(":%lld", (long long)f->value);
		sep = ",";
		size_t l = strlen(f->name);
		if (l < 7 || strcmp(f->name + l - 7, "_booked"))
			continue;
		if (first >= 0 && f->value != first)
			agree = 0;
		if (first < 0)
			first = f->value;
		if (rr && fresh &&
		    (f->value < (int64_t)rr->audit.bench_booked ||
		     f->value > (int64_t)rr->audit.bench_booked_max))
			agree = 0;
	}
	if (aerr && aerr[0]) {
		printf("%s\"error\":", sep);
		bo_json_cstr(stdout, aerr);
		sep = ",";
	}
	printf("%s\"agree\":%s}", sep, have ? (agree ? "true" : "false") : "null");
}

static void print_result(const run_opts *o, const lg_system *sys, const run_result *rr,
                         const lg_audit *a, int have_audit, const char *aerr)
{
	const lg_stats *s = rr->stats;
	uint64_t tot[LG_OUTCOME_COUNT] = {0};
	for (unsigned op = 0; op < LG_OP_COUNT; op++)
		for (unsigned k = 0; k < LG_OUTCOME_COUNT; k++)
			tot[k] += s->outcomes[op][k];
	uint64_t req = s->all.count;
	printf("{\"system\":");
	bo_json_cstr(stdout, sys->name);
	printf(",\"workload\":");
	bo_json_cstr(stdout, o->cfg.workload);
	printf(",\"mode\":\"%s\",\"conns\":%u,\"depth\":%u,", o->mode, o->cfg.conns, o->cfg.depth);
	if (!strcmp(o->mode, "open"))
		printf("\"offered_per_sec\":%.1f,", o->rate);
	else
		printf("\"offered_per_sec\":null,");
	printf("\"events\":%u,\"seats_per_event\":%u,\"per_row\":%u,\"categories\":%u,"
	       "\"ttl_ms\":%u,\"seed\":%llu,",
	       o->cfg.events, o->cfg.seats_per_event, o->cfg.per_row, o->cfg.categories,
	       o->cfg.ttl_ms, (unsigned long long)o->seed);
	printf("\"warmup_s\":%.3f,", o->warmup);
	printf("\"duration_s\":%.3f,\"requests\":%llu,\"per_sec\":%.1f,\"unsent\":%llu,",
	       rr->seconds, (unsigned long long)req,
	       rr->seconds > 0 ? (double)req / rr->seconds : 0, (unsigned long long)rr->unsent);
	printf("\"demand_seats\":%llu,\"demand_exhausted\":%s,", (unsigned long long)rr->demanded,
	       rr->exhausted ? "true" : "false");
	print_latency(&s->all);
	printf(",");
	print_outcomes(tot);
	printf(",\"error_rate\":%.6f", error_rate(tot, req));
	print_ops(s, rr->seconds);
	const lg_audit_result *au = &rr->audit;
	/* A system without an audit keeps no seats (the nng echo answers
	 * every hold OK without holding anything): what the workers saw of
	 * it proves nothing either way, so its oversell is null, not a count. */
	if (!sys->audit)
		printf(",\"oversell\":null,\"oversell_detail\":null,");
	else
		printf(",\"oversell\":%llu,\"oversell_detail\":{\"double_booked\":%llu,"
		       "\"held_while_held\":%llu,\"held_when_booked\":%llu,\"holds_audited\":%llu},",
		       (unsigned long long)au->oversell, (unsigned long long)au->double_booked,
		       (unsigned long long)au->held_while_held,
		       (unsigned long long)au->held_when_booked, (unsigned long long)au->holds);
	print_audit(a, have_audit, aerr, rr, o->cfg.setup);
	if (o->timeline)
		print_timeline(s, rr->seconds);
	printf("}\n");
	fflush(stdout);
}

/* ---- main ---------------------------------------------------------------- */

static int audit_only(const run_opts *o, const lg_system *sys, void *sysh)
{
	lg_audit a;
	char err[LG_ERR_LEN] = "";
	int have = sys->audit && sys->audit(sysh, &o->cfg, &a, err) == 0;
	if (sys->audit && !have)
		fprintf(stderr, "%s: audit: %s\n", prog, err);
	printf("{\"system\":");
	bo_json_cstr(stdout, sys->name);
	printf(",\"workload\":");
	bo_json_cstr(stdout, o->cfg.workload);
	printf(",\"events\":%u,\"seats_per_event\":%u,", o->cfg.events, o->cfg.seats_per_event);
	print_audit(&a, have, err, NULL, 0);
	printf("}\n");
	sys->teardown(sysh);
	return have || !sys->audit ? 0 : 1;
}

int main(int argc, char **argv)
{
	run_opts o = {
	        .cfg = {.workload = "on-sale", .conns = 4, .depth = 16, .setup = 1},
	        .mode = "closed",
	        .seed = 1,
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		parse_one(&o, c, optarg);
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (o.echo_url) {
#ifdef LG_HAVE_ECHO
		char err[LG_ERR_LEN] = "";
		if (lg_echo_serve(o.echo_url, err) != 0)
			fail("echo server", err);
		return 0;
#else
		die_usage("%s: this build has no echo system (sys_echo.c)", "--echo-server");
#endif
	}
	if (!o.cfg.system)
		die_usage("%s is required", "--system NAME");
	const lg_system *sys = find_system(o.cfg.system);
	const lg_workload_def *def = finish_opts(&o);
	if (def->ops & ~sys->ops)
		die_usage("workload '%s' needs operations this system lacks", o.cfg.workload);

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	void *sysh = NULL;
	char err[LG_ERR_LEN] = "";
	fprintf(stderr, "%s: %s, %s: %u events x %u seats%s\n", prog, sys->name, o.cfg.workload,
	        o.cfg.events, o.cfg.seats_per_event, o.cfg.setup ? " (creating them)" : "");
	if (sys->setup(&o.cfg, &sysh, err) != 0)
		fail("setup failed", err);
	if (o.audit_only)
		return audit_only(&o, sys, sysh);

	lg_wl_shared sh = {.def = def, .cfg = &o.cfg};
	if (def->demand_x)
		sh.demand_limit = (uint64_t)def->demand_x * o.cfg.seats_per_event * o.cfg.events;
	worker *ws = start_workers(&o, sys, sysh, &sh);
	run_result rr = {0};
	finish_workers(&o, sys, ws, &sh, &rr);

	lg_audit a;
	char aerr[LG_ERR_LEN] = "";
	int have = sys->audit && sys->audit(sysh, &o.cfg, &a, aerr) == 0;
	if (sys->audit && !have)
		fprintf(stderr, "%s: audit: %s\n", prog, aerr);
	sys->teardown(sysh);
	print_result(&o, sys, &rr, &a, have, aerr);
	lg_stats_free(rr.stats);
	return 0;
}
