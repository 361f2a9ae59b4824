/*
 * bench_committer — the PostgreSQL batch committer (committer/committer.h)
 * against a private PostgreSQL 15 cluster on this machine.
 *
 *   scripts/bench committer [--quick] [--pg-bin DIR] [--only PART] [--shards N]
 *
 * Path: in-process. Commands go to a durable shard (shard_submit, journal
 * on the real disk with fdatasync) with the committer following its
 * journal on its own thread, as boxoffice-server does; the server's
 * network front is not in the way (bench_e2e measures it).
 *
 *   rows_per_sec            seat_changes rows applied per second, saturated,
 *                           with --shards durable shards (default 2, the
 *                           server's one per core here): each shard gets
 *                           an even share of the commands, about the events
 *                           shard_for_event() puts on it (as the server
 *                           does), on a clock that moves with the commands;
 *                           journals written with no committer; one committer
 *                           per shard (each its own PostgreSQL backend, one
 *                           database) starts at once and the time until the
 *                           last has caught up is measured (rows = the sum
 *                           of what they wrote to seat_changes).
 *                           rows_per_sec_one_shard: the same load on one
 *                           shard, same run. The other parts use one shard.
 *   lag_ms_p50/p95/p99      offered 100,000 commands/s, open loop; lag of a
 *                           record = wall time of the commit that carried it
 *                           minus the record's timestamp, per record
 *   catch_up_seconds        the same load goes on while PostgreSQL is stopped
 *                           (pg_ctl stop -m fast) for 30 s and started again;
 *                           then the time until the first commit whose oldest
 *                           record is younger than the lag target (250 ms):
 *                           the backlog is gone and lag is back to normal
 *                           (lag_records itself never stays 0 while 100k
 *                           records/s arrive)
 *   engine_commands_per_sec_without_committer / _with_committer
 *                           saturated durable shard, the same mix, without
 *                           and with a committer (and its PostgreSQL
 *                           backend) running; alternated, same run
 *
 * The mix is bench_pg.h's: holds, confirms, releases, cancels, expiries.
 * Progress on stderr; the last stdout line is one JSON object. Without
 * PostgreSQL's binaries it says so and exits 77 (skipped).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_pg.h"
#include "bench_util.h"
#include "committer/committer.h"
#include "shard/shard.h"

static const char *prog = "bench_committer";

enum {
	GROUP = 256,
	INFLIGHT = 16384,
	SHARDS_MAX = BPG_EVENTS, /* a shard without events would measure nothing */
	SHARDS_DEFAULT = 2       /* boxoffice-server's default here: one shard per core */
};
#define TARGET_ROWS 200000.0
#define TARGET_LAG_P95_MS 250.0
#define TARGET_CATCH_UP_S 30.0
#define TARGET_COST_PCT 15.0
#define RATE_DEFAULT 100000u

typedef struct options {
	int quick;
	const char *pg_bin;
	const char *only; /* rows, engine, lag: one part */
	int profile;      /* --profile: pg_stat_statements' top statements of the rows part */
	uint32_t rate;    /* --rate: offered commands/s of the lag and outage parts */
	uint32_t shards;  /* --shards: durable shards (and committers) of the rows part */
} options;

static options opt;
static bench_pg pg;
static char data_root[64];

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- The client: submits the mix, drains the output ring -------------------- */

enum {
	REC_IDLE,
	REC_ON,
	REC_OFF,
	REC_DONE
};

typedef struct client {
	shard *s;
	bpg_mix mix;
	uint64_t submitted, acked;
	/* Lag: the main thread sets `recording` to REC_ON, later REC_OFF;
	 * while it is REC_ON the drainer stores each record's timestamp
	 * (ms) at ts[seq - ts_first]; it answers REC_OFF with REC_DONE once
	 * it has stopped (so ts_* are then the main thread's to read). */
	atomic_int recording;
	int64_t *ts;
	uint64_t ts_cap, ts_first, ts_last;
	/* The open-loop thread. */
	pthread_t thread;
	atomic_int stop;
	atomic_uint_least64_t acked_shared;
} client;

static void note_ts(client *c, const shard_out *o)
{
	if (o->seq == 0)
		return;
	if (c->ts_first == 0)
		c->ts_first = o->seq;
	if (o->seq < c->ts_first || o->seq - c->ts_first >= c->ts_cap)
		return;
	c->ts[o->seq - c->ts_first] = o->now_ms;
	if (o->seq > c->ts_last)
		c->ts_last = o->seq;
}

/* Drains the output ring; returns the results seen. */
static uint64_t drain(client *c)
{
	ring *out = shard_output(c->s);
	uint64_t first, seen = 0;
	uint32_t n;
	int rec = atomic_load_explicit(&c->recording, memory_order_acquire);
	if (rec == REC_OFF)
		atomic_store_explicit(&c->recording, REC_DONE, memory_order_release);
	while ((n = ring_poll(out, SHARD_OUT_POLL_MAX, &first)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (rec == REC_ON)
				note_ts(c, o);
			if (o->kind != SHARD_OUT_RESULT)
				continue;
			seen++;
			bpg_result(&c->mix, &o->u.result);
		}
		ring_release(out, n);
	}
	c->acked += seen;
	atomic_store_explicit(&c->acked_shared, c->acked, memory_order_relaxed);
	return seen;
}

static void wait_all(client *c)
{
	while (c->acked < c->submitted)
		if (drain(c) == 0)
			ring_wait(shard_output(c->s), 1000000);
}

static void submit(client *c, const bo_cmd *cmds, uint32_t n)
{
	while (shard_submit(c->s, cmds, NULL, n) != 0)
		if (drain(c) == 0)
			ring_wait(shard_output(c->s), 100000);
	c->submitted += n;
}

/* Saturated: up to INFLIGHT commands outstanding for dur_ns, then every
 * answer awaited. Returns commands per second. */
static double saturate(client *c, int64_t dur_ns)
{
	static bo_cmd group[GROUP];
	uint64_t acked0 = c->acked;
	int64_t t0 = bo_clock_ns(), end = t0 + dur_ns;
	while (bo_clock_ns() < end) {
		if (c->submitted - c->acked < INFLIGHT) {
			for (uint32_t i = 0; i < GROUP; i++)
				bpg_next(&c->mix, &group[i]);
			submit(c, group, GROUP);
		}
		drain(c);
	}
	wait_all(c);
	return (double)(c->acked - acked0) / ((double)(bo_clock_ns() - t0) / 1e9);
}

/* Open loop at opt.rate commands/s until stop: command i is due at
 * t0 + i / rate; whatever is due goes out in groups. */
static void *open_loop(void *arg)
{
	client *c = arg;
	static bo_cmd group[GROUP];
	const int64_t step_ns = 1000000000 / opt.rate;
	int64_t t0 = bo_clock_ns();
	uint64_t sent = 0;
	while (!atomic_load(&c->stop)) {
		int64_t now = bo_clock_ns();
		uint32_t k = 0;
		while (k < GROUP && t0 + (int64_t)(sent + k) * step_ns <= now)
			bpg_next(&c->mix, &group[k++]);
		if (k > 0) {
			submit(c, group, k);
			sent += k;
		}
		if (drain(c) == 0 && k < GROUP) {
			/* Two cores: a spinning generator would take the writer's. */
			struct timespec ts = {0, 500000};
			nanosleep(&ts, NULL);
		}
	}
	wait_all(c);
	return NULL;
}

static void open_loop_start(client *c)
{
	atomic_store(&c->stop, 0);
	int rc = pthread_create(&c->thread, NULL, open_loop, c);
	if (rc)
		bench_die(prog, "pthread_create", -rc);
}

static void open_loop_stop(client *c)
{
	atomic_store(&c->stop, 1);
	pthread_join(c->thread, NULL);
}

/* ---- Shards and committers -------------------------------------------------- */

/* Opens and starts durable shard `id` of `count` under data_root/name and
 * creates on it the mix's events that shard_for_event() puts there (all of
 * them with count 1), as boxoffice-server routes them. clock NULL: the
 * real one. */
static shard *shard_up_of(const char *name, client *c, uint32_t id, uint32_t count,
                          shard_clock_fn clock, void *clock_ctx)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/%s", data_root, name);
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.id = id;
	cfg.clock = clock;
	cfg.clock_ctx = clock_ctx;
	cfg.engine.seats_max = 1u << 20;
	cfg.data_dir = strdup(dir);
	shard *s;
	char err[1024];
	if (!cfg.data_dir || shard_open(&cfg, &s, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: opening shard %s: %s\n", prog, dir, err);
		exit(1);
	}
	int rc = shard_start(s);
	if (rc < 0)
		bench_die(prog, "shard_start", rc);
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->mix.rng = 0x9e3779b97f4a7c15ull;
	/* The events every command is about (maps borrowed until answered). */
	bo_seatmap *maps[BPG_EVENTS] = {0};
	for (uint32_t i = 0; i < BPG_EVENTS; i++) {
		if (shard_for_event(bpg_event_id(i), count) != id)
			continue;
		if (!(maps[i] = bench_map(BPG_ROWS, BPG_PER_ROW, 4)))
			bench_die(prog, "bench_map", -ENOMEM);
		bo_cmd cmd = {.op = BO_OP_CREATE_EVENT,
		              .client_id = 1,
		              .request_id = ++c->mix.req,
		              .event_id = bpg_event_id(i),
		              .map = maps[i]};
		submit(c, &cmd, 1);
	}
	wait_all(c);
	for (uint32_t i = 0; i < BPG_EVENTS; i++)
		if (maps[i])
			bo_seatmap_free(maps[i]);
	return s;
}

/* The one shard of the lag, outage and engine parts: every event. */
static shard *shard_up(const char *name, client *c)
{
	return shard_up_of(name, c, 0, 1, NULL, NULL);
}

static void shard_down(client *c)
{
	wait_all(c);
	shard_stop(c->s);
	const char *failed = shard_failed(c->s);
	if (failed) {
		fprintf(stderr, "%s: %s\n", prog, failed);
		exit(1);
	}
	char *dir = (char *)shard_get_config(c->s)->data_dir;
	shard_free(c->s);
	bench_remove_dir(prog, dir);
	free(dir);
	c->s = NULL;
}

/* What the committer's on_commit saw: (last_seq, commit wall time). */
typedef struct commits {
	uint64_t *last_seq;
	int64_t *at_us;
	uint64_t cap;
	atomic_uint_least64_t n;
	/* Catch-up: armed when PostgreSQL is back; caught_us is the first
	 * commit after that whose oldest record is younger than the target. */
	atomic_int armed;
	atomic_int_least64_t caught_us;
} commits;

static void on_commit(void *ctx, const committer_commit *info)
{
	commits *cm = ctx;
	int64_t now = wall_us();
	uint64_t i = atomic_load_explicit(&cm->n, memory_order_relaxed);
	if (i < cm->cap) {
		cm->last_seq[i] = info->last_seq;
		cm->at_us[i] = now;
		atomic_store_explicit(&cm->n, i + 1, memory_order_release);
	}
	if (atomic_load(&cm->armed) && info->lag_ms < TARGET_LAG_P95_MS &&
	    atomic_load(&cm->caught_us) == 0)
		atomic_store(&cm->caught_us, now);
}

static committer *committer_up(shard *s, const char *db, commits *cm)
{
	char dsn[128], err[256];
	bench_pg_dsn(&pg, db, dsn, sizeof(dsn));
	committer_config cc;
	committer_config_default(&cc);
	cc.dsn = dsn;
	if (cm) {
		cc.on_commit = on_commit;
		cc.on_commit_ctx = cm;
	}
	committer *c;
	int rc = committer_start(s, &cc, &c, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: committer_start: %s\n", prog, err);
		exit(1);
	}
	return c;
}

/* Waits until the committer's checkpoint reaches seq (or timeout_s
 * passes: returns 0); exits when it stopped on a fault. */
static int wait_applied(committer *c, uint64_t seq, double timeout_s, committer_status *st)
{
	int64_t end = bo_clock_ns() + (int64_t)(timeout_s * 1e9);
	for (;;) {
		committer_status_get(c, st);
		if (st->applied_seq >= seq)
			return 1;
		if (st->state == COMMITTER_STOPPED) {
			fprintf(stderr, "%s: the committer stopped: %s\n", prog, st->reason);
			exit(1);
		}
		if (bo_clock_ns() > end)
			return 0;
		sleep_ms(2);
	}
}

typedef struct stopper {
	committer *c;
	atomic_int done;
} stopper;

static void *stop_thread(void *arg)
{
	stopper *sp = arg;
	committer_stop(sp->c);
	atomic_store(&sp->done, 1);
	return NULL;
}

/* Stops a committer that is far behind without letting it apply its
 * backlog first (committer_stop would): its connections to db are
 * terminated until it gives up (a stopping committer does not retry). */
static void committer_abandon(committer *c, const char *db)
{
	stopper sp = {.c = c};
	pthread_t t;
	int rc = pthread_create(&t, NULL, stop_thread, &sp);
	if (rc)
		bench_die(prog, "pthread_create", -rc);
	PGconn *admin = bench_pg_connect(&pg, "postgres");
	char sql[256];
	snprintf(
	        sql, sizeof(sql),
	        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()",
	        db);
	while (!atomic_load(&sp.done)) {
		bench_pg_exec(&pg, admin, sql);
		sleep_ms(20);
	}
	pthread_join(t, NULL);
	PQfinish(admin);
}

/* CPU seconds this process has used (user + system). */
static double process_cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* --profile: where PostgreSQL spent its time (pg_stat_statements). */
static void top_statements(const char *db)
{
	PGconn *c = bench_pg_connect(&pg, db);
	bench_pg_exec(&pg, c, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
	PGresult *r = PQexec(
	        c,
	        "SELECT calls, round(total_exec_time), rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 110)"
	        " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12");
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		fprintf(stderr, "profile: pg_stat_statements, top statements by execution time:\n");
		fprintf(stderr, "%8s %9s %10s  %s\n", "calls", "ms", "rows", "query");
		for (int i = 0; i < PQntuples(r); i++)
			fprintf(stderr, "%8s %9s %10s  %s\n", PQgetvalue(r, i, 0),
			        PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
	} else {
		fprintf(stderr, "profile: %s", PQerrorMessage(c));
	}
	PQclear(r);
	r = PQexec(c, "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
	              " WHERE schemaname = 'boxoffice' ORDER BY n_tup_upd DESC, n_tup_ins DESC");
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		fprintf(stderr, "profile: %-18s %10s %10s %10s\n", "table", "inserted", "updated",
		        "hot-upd");
		for (int i = 0; i < PQntuples(r); i++)
			fprintf(stderr, "profile: %-18s %10s %10s %10s\n", PQgetvalue(r, i, 0),
			        PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
	}
	PQclear(r);
	PQfinish(c);
}

/* ---- rows_per_sec ------------------------------------------------------------- */

/* One rows run: what `shards` durable shards and their committers did. */
typedef struct rows_run {
	uint32_t shards;
	uint64_t rows, records;
	double seconds;                   /* committer_start of all .. the last caught up */
	double shard_seconds[SHARDS_MAX]; /* .. each shard's committer caught up */
	uint64_t shard_rows[SHARDS_MAX];
	double cpu_postgres, cpu_process; /* CPU seconds during the catch-up */
} rows_run;

typedef struct figures {
	rows_run rows_one, rows_n; /* the rows part with one shard, with opt.shards */
	double rows_per_sec_one;
	double rows_per_sec, records_per_sec, changes_per_record, rows_seconds;
	double rows_cpu_committer, rows_cpu_postgres; /* CPU seconds during the catch-up */
	uint64_t rows;
	double lag_p50, lag_p95, lag_p99, lag_max;
	uint64_t lag_records, lag_unapplied;
	double outage_s, outage_acks_per_sec, catch_up_s, backlog_records;
	double catch_up_applied_per_sec; /* records the committer applied a second after the outage
	                                  */
	double eng_with_pg_cpu_pct; /* PostgreSQL's CPU while the engine ran saturated with it */
	int caught_up;
	double eng_without, eng_with;
	double eng_without_runs[3], eng_with_runs[3];
	int eng_rounds;
} figures;


/* The rows part's shard clock: time moves with the commands written, as
 * if they arrived at ROWS_RATE commands/s over all shards (a shard of
 * `shards` sees its share: ROWS_RATE / shards), not with the wall clock.
 * A writer that runs faster (two shards write in parallel) would otherwise
 * put more commands into each hold's lifetime, so more seats would be held
 * at once, more holds would collide and fail, and the runs would not carry
 * the same seat changes. */
#define ROWS_RATE 50000u
typedef struct vclock {
	int64_t base_ms;
	uint32_t shards;
	atomic_uint_least64_t cmds;
	atomic_int_least64_t jump_ms; /* moved on at the end: every hold expires */
} vclock;

static int64_t vclock_ms(void *ctx)
{
	vclock *v = ctx;
	uint64_t n = atomic_load_explicit(&v->cmds, memory_order_relaxed);
	return v->base_ms + (int64_t)(n * 1000u * v->shards / ROWS_RATE) +
	       atomic_load_explicit(&v->jump_ms, memory_order_relaxed);
}

/* Writes the rows part's journal, with no committer running: n commands
 * in all, n / shards (give or take one) to each shard, from a mix of its
 * own over the events shard_for_event() puts there. Each shard's stream
 * is what one shard's client makes, on fewer events: every event gets the
 * same share of the commands whatever the shard count. (One mix feeding
 * every shard does not: it confirms, releases and cancels the claims it
 * learnt last, so the shard whose answers it happened to read last got
 * more of those, 55/45 splits and 10-20% fewer rows than one shard.) */
static void rows_write(client *cs, vclock *vc, uint32_t shards, uint64_t n)
{
	static bo_cmd group[GROUP];
	uint64_t want[SHARDS_MAX], left = n;
	for (uint32_t k = 0; k < shards; k++) {
		want[k] = n / shards + (k < n % shards);
		cs[k].mix.events = 0;
		for (uint32_t i = 0; i < BPG_EVENTS && shards > 1; i++)
			if (shard_for_event(bpg_event_id(i), shards) == k)
				cs[k].mix.events |= 1u << i;
		if (shards > 1 && cs[k].mix.events == 0)
			bench_die(prog, "a shard without events (more shards than events)",
			          -EINVAL);
		cs[k].mix.rng = 0x9e3779b97f4a7c15ull + k;
		cs[k].mix.live_max =
		        BPG_LIVE *
		        (uint32_t)__builtin_popcount(cs[k].mix.events ? cs[k].mix.events : 0xfu) /
		        BPG_EVENTS;
	}
	while (left > 0) {
		for (uint32_t k = 0; k < shards; k++) {
			uint32_t m = want[k] < GROUP ? (uint32_t)want[k] : GROUP;
			for (uint32_t j = 0; j < m; j++)
				bpg_next(&cs[k].mix, &group[j]);
			if (m > 0)
				submit(&cs[k], group, m);
			atomic_fetch_add_explicit(&vc[k].cmds, m, memory_order_relaxed);
			want[k] -= m;
			left -= m;
		}
		/* Every shard's answers after every round: each mix learns its
		 * claims as soon as they exist, however many shards share the
		 * producer. */
		for (uint32_t k = 0; k < shards; k++)
			drain(&cs[k]);
	}
	for (uint32_t k = 0; k < shards; k++)
		wait_all(&cs[k]);
}

/* Waits until every committer's checkpoint reaches its end[k], noting when
 * each got there (seconds after t0); exits when one stops on a fault or
 * after timeout_s. */
static void rows_wait(committer **cm, const uint64_t *end, uint32_t shards, int64_t t0,
                      double timeout_s, committer_status *st, double *done_s)
{
	uint32_t left = shards;
	for (uint32_t k = 0; k < shards; k++)
		done_s[k] = -1;
	while (left > 0) {
		for (uint32_t k = 0; k < shards; k++) {
			if (done_s[k] >= 0)
				continue;
			committer_status_get(cm[k], &st[k]);
			if (st[k].state == COMMITTER_STOPPED) {
				fprintf(stderr, "%s: the committer of shard %u stopped: %s\n", prog,
				        k, st[k].reason);
				exit(1);
			}
			if (st[k].applied_seq >= end[k]) {
				done_s[k] = (double)(bo_clock_ns() - t0) / 1e9;
				left--;
			}
		}
		if (left > 0 && (double)(bo_clock_ns() - t0) / 1e9 > timeout_s)
			bench_die(prog, "the committers' catch-up", -ETIMEDOUT);
		if (left > 0)
			sleep_ms(2);
	}
}

/* The rows part with `shards` durable shards (ids 0..shards-1, one
 * database, one committer and so one PostgreSQL backend each): the
 * journals are written with no committer, then every committer starts at
 * once and the time until the last one has caught up is measured. */
static void rows_once(uint32_t shards, uint64_t n, rows_run *r)
{
	static client cs[SHARDS_MAX];
	committer *cm[SHARDS_MAX];
	committer_status st[SHARDS_MAX];
	uint64_t seq0[SHARDS_MAX] = {0}, end[SHARDS_MAX] = {0};
	double done_s[SHARDS_MAX];
	char db[32];
	snprintf(db, sizeof(db), "rows_%u", shards);
	bench_pg_create_db(&pg, db);
	static vclock vc[SHARDS_MAX];
	for (uint32_t k = 0; k < shards; k++) {
		char name[32];
		snprintf(name, sizeof(name), "rows-%u-%u", shards, k);
		vc[k].base_ms = wall_us() / 1000;
		vc[k].shards = shards;
		atomic_store(&vc[k].cmds, 0);
		atomic_store(&vc[k].jump_ms, 0);
		shard_up_of(name, &cs[k], k, shards, vclock_ms, &vc[k]);
	}
	/* The events (and their seats) go in first, outside the timing. */
	for (uint32_t k = 0; k < shards; k++) {
		cm[k] = committer_up(cs[k].s, db, NULL);
		end[k] = shard_durable_seq(cs[k].s);
	}
	rows_wait(cm, end, shards, bo_clock_ns(), 120, st, done_s);
	for (uint32_t k = 0; k < shards; k++) {
		committer_stop(cm[k]);
		seq0[k] = st[k].applied_seq;
	}

	rows_write(cs, vc, shards, n);
	/* Every hold nobody took expires (and is journaled) before the end is
	 * taken, so the journals hold the whole consequence of the n commands
	 * and no expiry record arrives during the catch-up: the shards' clocks
	 * jump past the holds' lifetime and their idle ticks (every tick_ms)
	 * expire them. */
	for (uint32_t k = 0; k < shards; k++)
		atomic_store(&vc[k].jump_ms, (int64_t)BPG_TTL_MS_MAX + 1000);
	sleep_ms(20 * BO_TICK_MS + BO_EXPIRY_LAG_MS_MAX);
	for (uint32_t k = 0; k < shards; k++) {
		end[k] = shard_durable_seq(cs[k].s);
		fprintf(stderr,
		        "rows, %u shard(s): shard %u journal holds records %" PRIu64 "..%" PRIu64
		        "\n",
		        shards, k, seq0[k] + 1, end[k]);
	}
	fprintf(stderr,
	        "rows, %u shard(s): %" PRIu64 " commands written; %u committer(s) catching up\n",
	        shards, n, shards);

	double cpu0 = process_cpu_seconds(), pg0 = bench_pg_cpu_seconds(&pg);
	int64_t t0 = bo_clock_ns();
	for (uint32_t k = 0; k < shards; k++)
		cm[k] = committer_up(cs[k].s, db, NULL);
	rows_wait(cm, end, shards, t0, 600, st, done_s);
	r->seconds = (double)(bo_clock_ns() - t0) / 1e9;
	/* Before the committers' backends exit (they would stop counting);
	 * every backend stays connected until its committer stops. */
	r->cpu_postgres = bench_pg_cpu_seconds(&pg) - pg0;
	r->cpu_process = process_cpu_seconds() - cpu0;
	if (opt.profile)
		top_statements(db);
	for (uint32_t k = 0; k < shards; k++)
		if (shard_durable_seq(cs[k].s) != end[k])
			fprintf(stderr,
			        "rows: shard %u journaled records during the catch-up (%" PRIu64
			        " after the end): the figure includes their rows\n",
			        k, shard_durable_seq(cs[k].s) - end[k]);
	r->shards = shards;
	r->rows = r->records = 0;
	for (uint32_t k = 0; k < shards; k++) {
		committer_stop(cm[k]);
		r->shard_rows[k] = st[k].changes; /* this committer's: it counts from 0 */
		r->shard_seconds[k] = done_s[k];
		r->rows += st[k].changes;
		r->records += st[k].applied_seq - seq0[k];
		fprintf(stderr,
		        "rows, %u shard(s): shard %u: %" PRIu64 " seat changes (%" PRIu64
		        " records), caught up after %.2f s\n",
		        shards, k, st[k].changes, st[k].applied_seq - seq0[k], done_s[k]);
	}
	fprintf(stderr,
	        "rows, %u shard(s): %" PRIu64 " seat changes (%" PRIu64
	        " records) in %.2f s = %.0f rows/s, %.0f records/s;"
	        " CPU: this process %.1f s (the committers; the shards are idle), PostgreSQL %.1f s\n",
	        shards, r->rows, r->records, r->seconds, (double)r->rows / r->seconds,
	        (double)r->records / r->seconds, r->cpu_process, r->cpu_postgres);
	for (uint32_t k = 0; k < shards; k++)
		shard_down(&cs[k]);
}

static void measure_rows(figures *f)
{
	const uint64_t n = opt.quick ? 60000 : 1500000;
	/* One shard first, then opt.shards: the same load, the same run. */
	rows_once(1, n, &f->rows_one);
	if (opt.shards > 1)
		rows_once(opt.shards, n, &f->rows_n);
	else
		f->rows_n = f->rows_one;
	const rows_run *r = &f->rows_n;
	f->rows = r->rows;
	f->rows_seconds = r->seconds;
	f->rows_per_sec = (double)r->rows / r->seconds;
	f->records_per_sec = (double)r->records / r->seconds;
	f->changes_per_record = (double)r->rows / (double)r->records;
	f->rows_cpu_committer = r->cpu_process;
	f->rows_cpu_postgres = r->cpu_postgres;
	f->rows_per_sec_one = (double)f->rows_one.rows / f->rows_one.seconds;
	fprintf(stderr, "rows: %u shards %.0f rows/s, one shard %.0f rows/s: x%.2f\n", opt.shards,
	        f->rows_per_sec, f->rows_per_sec_one, f->rows_per_sec / f->rows_per_sec_one);
}

/* ---- engine with and without the committer --------------------------------------- */

static double last_pg_cpu_pct;

static double engine_once(int with, int round)
{
	static client c;
	char name[32], db[32];
	snprintf(name, sizeof(name), "engine-%s-%d", with ? "with" : "without", round);
	snprintf(db, sizeof(db), "engine_%d", round);
	shard_up(name, &c);
	committer *cm = NULL;
	if (with) {
		bench_pg_create_db(&pg, db);
		cm = committer_up(c.s, db, NULL);
		committer_status st;
		if (!wait_applied(cm, shard_durable_seq(c.s), 120, &st))
			bench_die(prog, "applying the events", -ETIMEDOUT);
	}
	double pg0 = bench_pg_cpu_seconds(&pg);
	int64_t t0 = bo_clock_ns();
	double cps = saturate(&c, opt.quick ? 1000000000ll : 8000000000ll);
	if (cm) {
		double pct = 100.0 * (bench_pg_cpu_seconds(&pg) - pg0) /
		             ((double)(bo_clock_ns() - t0) / 1e9);
		fprintf(stderr, "engine with committer: PostgreSQL used %.0f%% of a core\n", pct);
		last_pg_cpu_pct = pct;
		committer_status st;
		committer_status_get(cm, &st);
		fprintf(stderr,
		        "engine with committer: committer %" PRIu64 " records behind, %" PRIu64
		        " rows written\n",
		        st.lag_records, st.changes);
		committer_abandon(cm, db);
	}
	fprintf(stderr, "engine %s committer (round %d): %.0f commands/s\n",
	        with ? "with" : "without", round, cps);
	shard_down(&c);
	return cps;
}

static void measure_engine(figures *f)
{
	f->eng_rounds = opt.quick ? 1 : 3;
	double wo = 0, w = 0, pct = 0;
	for (int r = 0; r < f->eng_rounds; r++) {
		wo += f->eng_without_runs[r] = engine_once(0, r);
		w += f->eng_with_runs[r] = engine_once(1, r);
		pct += last_pg_cpu_pct;
	}
	f->eng_with_pg_cpu_pct = pct / f->eng_rounds;
	f->eng_without = wo / f->eng_rounds;
	f->eng_with = w / f->eng_rounds;
}

/* ---- lag and the outage ------------------------------------------------------------ */

/* Per-record lag of the recorded window from the commits that carried its
 * records; records no commit carried (within the wait) count with the
 * time waited so far, so a committer that cannot keep up is not hidden. */
static void lag_figures(client *c, commits *cm, figures *f)
{
	uint64_t ncommit = atomic_load_explicit(&cm->n, memory_order_acquire);
	uint64_t n = c->ts_last >= c->ts_first ? c->ts_last - c->ts_first + 1 : 0;
	int64_t *lag = malloc((n ? n : 1) * sizeof(int64_t));
	if (!lag)
		bench_die(prog, "malloc", -ENOMEM);
	int64_t now_us = wall_us();
	uint64_t k = 0, m = 0, unapplied = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t seq = c->ts_first + i;
		if (c->ts[i] == 0)
			continue;
		while (k < ncommit && cm->last_seq[k] < seq)
			k++;
		int64_t at = k < ncommit ? cm->at_us[k] : now_us;
		unapplied += k >= ncommit;
		lag[m++] = at - c->ts[i] * 1000;
	}
	qsort(lag, m, sizeof(int64_t), bench_cmp_i64);
	f->lag_p50 = (double)bench_quantile(lag, m, 0.50) / 1000.0;
	f->lag_p95 = (double)bench_quantile(lag, m, 0.95) / 1000.0;
	f->lag_p99 = (double)bench_quantile(lag, m, 0.99) / 1000.0;
	f->lag_max = m ? (double)lag[m - 1] / 1000.0 : 0;
	f->lag_records = m;
	f->lag_unapplied = unapplied;
	free(lag);
	fprintf(stderr,
	        "lag at %u/s: %" PRIu64 " records over %" PRIu64
	        " commits (%.0f records each), p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%" PRIu64
	        " not applied in time)\n",
	        opt.rate, m, ncommit, ncommit ? (double)m / (double)ncommit : 0.0, f->lag_p50,
	        f->lag_p95, f->lag_p99, f->lag_max, unapplied);
}

static void outage(client *c, committer *cmt, commits *cm, figures *f)
{
	committer_status st;
	double outage_s = opt.quick ? 3 : 30;
	fprintf(stderr, "outage: stopping PostgreSQL for %.0f s under load\n", outage_s);
	uint64_t acked0 = atomic_load(&c->acked_shared);
	int64_t t0 = bo_clock_ns();
	if (bench_pg_stop(&pg, "fast") != 0)
		bench_die(prog, "pg_ctl stop", 1);
	int64_t down = bo_clock_ns();
	while (bo_clock_ns() - down < (int64_t)(outage_s * 1e9))
		sleep_ms(10);
	committer_status_get(cmt, &st);
	fprintf(stderr, "outage: committer %s (%s), %" PRIu64 " records behind\n",
	        committer_state_str(st.state), st.reason, st.lag_records);
	if (bench_pg_start(&pg) != 0)
		bench_die(prog, "pg_ctl start", 1);
	int64_t up = bo_clock_ns();
	atomic_store(&cm->caught_us, 0);
	atomic_store(&cm->armed, 1);
	int64_t up_us = wall_us();
	f->outage_s = (double)(up - down) / 1e9;
	f->outage_acks_per_sec =
	        (double)(atomic_load(&c->acked_shared) - acked0) / ((double)(up - t0) / 1e9);
	committer_status_get(cmt, &st);
	f->backlog_records = (double)st.lag_records;
	fprintf(stderr,
	        "outage: PostgreSQL down %.1f s, engine acknowledged %.0f commands/s meanwhile; backlog %" PRIu64
	        " records\n",
	        f->outage_s, f->outage_acks_per_sec, st.lag_records);
	double limit = opt.quick ? 20 : 180;
	int64_t last_log = bo_clock_ns();
	uint64_t applied0 = st.applied_seq;
	while (atomic_load(&cm->caught_us) == 0 && bo_clock_ns() - up < (int64_t)(limit * 1e9)) {
		sleep_ms(10);
		committer_status_get(cmt, &st);
		if (st.state == COMMITTER_STOPPED) {
			fprintf(stderr, "%s: the committer stopped: %s\n", prog, st.reason);
			exit(1);
		}
		if (bo_clock_ns() - last_log > 5000000000ll) {
			last_log = bo_clock_ns();
			fprintf(stderr,
			        "catch-up: %s, %" PRIu64 " records behind, oldest %" PRIu64 " ms\n",
			        committer_state_str(st.state), st.lag_records, st.lag_ms);
		}
	}
	int64_t caught = atomic_load(&cm->caught_us);
	committer_status_get(cmt, &st);
	f->catch_up_applied_per_sec =
	        (double)(st.applied_seq - applied0) / ((double)(bo_clock_ns() - up) / 1e9);
	fprintf(stderr,
	        "catch-up: the committer applied %.0f records/s meanwhile (offered %u commands/s)\n",
	        f->catch_up_applied_per_sec, opt.rate);
	f->caught_up = caught != 0;
	f->catch_up_s = caught ? (double)(caught - up_us) / 1e6 : -1;
	if (caught)
		fprintf(stderr,
		        "catch-up: lag back under %.0f ms %.1f s after PostgreSQL was back\n",
		        TARGET_LAG_P95_MS, f->catch_up_s);
	else
		fprintf(stderr, "catch-up: NOT caught up within %.0f s\n", limit);
}

static void measure_lag(figures *f, int with_outage)
{
	static client c;
	static commits cm;
	cm.cap = 1u << 22;
	cm.last_seq = calloc(cm.cap, sizeof(uint64_t));
	cm.at_us = calloc(cm.cap, sizeof(int64_t));
	double window_s = opt.quick ? 3 : 30;
	bench_pg_create_db(&pg, "lag");
	shard_up("lag", &c);
	c.ts_cap = (uint64_t)(opt.rate * (window_s + 5) * 1.5);
	c.ts = calloc(c.ts_cap, sizeof(int64_t));
	if (!cm.last_seq || !cm.at_us || !c.ts)
		bench_die(prog, "calloc", -ENOMEM);
	committer *cmt = committer_up(c.s, "lag", &cm);
	committer_status st;
	if (!wait_applied(cmt, shard_durable_seq(c.s), 120, &st))
		bench_die(prog, "applying the events", -ETIMEDOUT);
	uint64_t seq0 = st.applied_seq, changes0 = st.changes;

	open_loop_start(&c);
	sleep_ms(opt.quick ? 1000 : 5000); /* warm-up: holds start to expire */
	atomic_store_explicit(&c.recording, REC_ON, memory_order_release);
	sleep_ms((uint32_t)(window_s * 1000));
	atomic_store_explicit(&c.recording, REC_OFF, memory_order_release);
	while (atomic_load_explicit(&c.recording, memory_order_acquire) != REC_DONE)
		sleep_ms(1);
	if (!wait_applied(cmt, c.ts_last, 120, &st))
		fprintf(stderr, "lag: the committer did not apply the window within 120 s\n");
	if (st.applied_seq > seq0)
		fprintf(stderr,
		        "lag: %.2f seat changes per record at this rate (%" PRIu64
		        " records applied)\n",
		        (double)(st.changes - changes0) / (double)(st.applied_seq - seq0),
		        st.applied_seq - seq0);
	lag_figures(&c, &cm, f);
	if (opt.profile)
		top_statements("lag");

	if (with_outage)
		outage(&c, cmt, &cm, f);
	open_loop_stop(&c);
	committer_abandon(cmt, "lag");
	shard_down(&c);
	free(c.ts);
	free(cm.last_seq);
	free(cm.at_us);
}

/* ---- Main ------------------------------------------------------------------------------ */

static void parse_options(int argc, char **argv)
{
	opt.pg_bin = bench_pg_bin_default();
	opt.rate = RATE_DEFAULT;
	opt.shards = SHARDS_DEFAULT;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			opt.quick = 1;
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end || v < 1000 || v > 10000000) {
				fprintf(stderr, "%s: --rate takes 1000..10000000 commands/s\n",
				        prog);
				exit(2);
			}
			opt.rate = (uint32_t)v;
		} else if (!strcmp(argv[i], "--shards") && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end || v < 1 || v > SHARDS_MAX) {
				fprintf(stderr, "%s: --shards takes 1..%d\n", prog, SHARDS_MAX);
				exit(2);
			}
			opt.shards = (uint32_t)v;
		} else if (!strcmp(argv[i], "--profile")) {
			opt.profile = 1;
		} else if (!strcmp(argv[i], "--pg-bin") && i + 1 < argc) {
			opt.pg_bin = argv[++i];
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			opt.only = argv[++i];
			if (strcmp(opt.only, "rows") && strcmp(opt.only, "engine") &&
			    strcmp(opt.only, "lag") && strcmp(opt.only, "outage")) {
				fprintf(stderr, "%s: --only takes rows, engine, lag or outage\n",
				        prog);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_committer [--quick] [--pg-bin DIR] [--only rows|engine|lag|outage] [--rate N]\n"
			       "                       [--shards N] [--profile]\n"
			       "The PostgreSQL committer against a private PostgreSQL cluster (started and\n"
			       "stopped here): seat changes/s applied, lag at 100,000 commands/s, catch-up after\n"
			       "a 30 s outage, engine throughput with and without it. Last stdout line: JSON.\n"
			       "  --quick       about a minute, outage 3 s (the test suite runs this)\n"
			       "  --pg-bin DIR  PostgreSQL's initdb and pg_ctl (default $BO_PG_BIN or %s)\n"
			       "  --only PART   one part (outage: the lag part, then the outage)\n"
			       "  --rate N      offered commands/s of the lag and outage parts (default 100000;\n"
			       "                the targets are for 100000)\n"
			       "  --shards N    durable shards, each with its committer and PostgreSQL backend, of\n"
			       "                the rows part (default %d, boxoffice-server's default here); it\n"
			       "                also measures one shard, same run. Other parts: one shard\n"
			       "  --profile     PostgreSQL with pg_stat_statements; print its top statements of the\n"
			       "                rows part (a diagnosis: not for the recorded figures)\n",
			       BENCH_PG_BIN_DEFAULT, SHARDS_DEFAULT);
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

static int want(const char *part)
{
	if (!opt.only)
		return 1;
	if (!strcmp(part, "lag"))
		return !strcmp(opt.only, "lag") || !strcmp(opt.only, "outage");
	return !strcmp(opt.only, part);
}

static const char *yes(int b)
{
	return b ? "true" : "false";
}

/* ",\"KEY\":[a,b,...]" of the engine's runs. */
static void print_runs(const char *key, const double *v, int n)
{
	printf(",\"%s\":[", key);
	for (int i = 0; i < n; i++)
		printf("%s%.0f", i ? "," : "", v[i]);
	printf("]");
}

/* The rows part's shards: rows_per_sec is the opt.shards figure; the
 * one-shard run of the same load, from the same run, beside it. */
static void print_rows(const figures *f)
{
	const rows_run *one = &f->rows_one, *n = &f->rows_n;
	printf(",\"rows_shards\":%u,\"rows_per_sec_one_shard\":%.0f,\"rows_one_shard\":%" PRIu64
	       ",\"rows_seconds_one_shard\":%.1f,\"rows_cpu_seconds_postgres_one_shard\":%.1f,"
	       "\"rows_shards_speedup\":%.2f,\"rows_seconds_per_shard\":[",
	       n->shards, f->rows_per_sec_one, one->rows, one->seconds, one->cpu_postgres,
	       f->rows_per_sec_one > 0 ? f->rows_per_sec / f->rows_per_sec_one : 0.0);
	for (uint32_t k = 0; k < n->shards; k++)
		printf("%s%.1f", k ? "," : "", n->shard_seconds[k]);
	printf("],\"rows_per_shard\":[");
	for (uint32_t k = 0; k < n->shards; k++)
		printf("%s%" PRIu64, k ? "," : "", n->shard_rows[k]);
	printf("],\"lag_outage_engine_shards\":1");
}

static void print_json(const figures *f)
{
	int at_target = opt.rate == RATE_DEFAULT; /* the targets are for 100k/s */
	double cost = f->eng_without > 0 ? 100.0 * (1.0 - f->eng_with / f->eng_without) : 0;
	char catch_up[32];
	if (f->caught_up)
		snprintf(catch_up, sizeof(catch_up), "%.2f", f->catch_up_s);
	else
		snprintf(catch_up, sizeof(catch_up), "null");
	printf("{\"bench\":\"committer\",\"quick\":%s,\"path\":\"in-process\",\"postgres\":\"15, private cluster, "
	       "default settings (fsync on, synchronous_commit on)\",\"rows_per_sec\":%.0f,\"rows\":%" PRIu64
	       ",\"records_per_sec\":%.0f,\"changes_per_record\":%.2f,\"rows_per_sec_target\":%.0f,\"rows_per_sec_met\":%s,"
	       "\"rows_cpu_seconds_committer\":%.1f,\"rows_cpu_seconds_postgres\":%.1f,\"rows_seconds\":%.1f,"
	       "\"offered_per_sec\":%u,\"lag_ms_p50\":%.1f,\"lag_ms_p95\":%.1f,\"lag_ms_p99\":%.1f,\"lag_ms_max\":%.1f,"
	       "\"lag_records\":%" PRIu64 ",\"lag_ms_p95_target\":%.0f,\"lag_ms_p95_met\":%s,"
	       "\"outage_seconds\":%.1f,\"acks_per_sec_during_outage\":%.0f,\"backlog_records_at_restart\":%.0f,"
	       "\"catch_up_applied_records_per_sec\":%.0f,\"catch_up_seconds\":%s,\"catch_up_seconds_target\":%.0f,\"catch_up_met\":%s,"
	       "\"engine_commands_per_sec_without_committer\":%.0f,\"engine_commands_per_sec_with_committer\":%.0f,"
	       "\"engine_with_committer_postgres_cpu_pct\":%.0f,\"committer_cost_pct\":%.1f,\"committer_cost_pct_target\":%.0f,\"committer_cost_met\":%s",
	       yes(opt.quick), f->rows_per_sec, f->rows, f->records_per_sec, f->changes_per_record,
	       TARGET_ROWS, yes(f->rows_per_sec >= TARGET_ROWS), f->rows_cpu_committer,
	       f->rows_cpu_postgres, f->rows_seconds, opt.rate, f->lag_p50, f->lag_p95, f->lag_p99,
	       f->lag_max, f->lag_records, TARGET_LAG_P95_MS,
	       yes(at_target && f->lag_records > 0 && f->lag_p95 < TARGET_LAG_P95_MS), f->outage_s,
	       f->outage_acks_per_sec, f->backlog_records, f->catch_up_applied_per_sec, catch_up,
	       TARGET_CATCH_UP_S,
	       yes(at_target && f->caught_up && f->catch_up_s <= TARGET_CATCH_UP_S), f->eng_without,
	       f->eng_with, f->eng_with_pg_cpu_pct, cost, TARGET_COST_PCT,
	       yes(f->eng_without > 0 && cost <= TARGET_COST_PCT));
	print_rows(f);
	print_runs("engine_runs_without_committer", f->eng_without_runs, f->eng_rounds);
	print_runs("engine_runs_with_committer", f->eng_with_runs, f->eng_rounds);
	printf("}\n");
}

int main(int argc, char **argv)
{
	parse_options(argc, argv);
	if (!bench_pg_available(opt.pg_bin)) {
		fprintf(stderr,
		        "%s: SKIP: no PostgreSQL binaries (initdb, pg_ctl) in %s; scripts/setup installs "
		        "postgresql-15, or pass --pg-bin DIR\n",
		        prog, opt.pg_bin);
		return 77;
	}
	bench_pg_init(
	        &pg, prog, opt.pg_bin,
	        opt.profile
	                ? "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
	                : NULL);
	snprintf(data_root, sizeof(data_root), "/var/tmp/boxoffice-bench-committer-XXXXXX");
	if (!mkdtemp(data_root))
		bench_die(prog, "mkdtemp", -errno);
	bench_pg_remove_later(&pg, data_root);

	static figures f;
	if (want("rows"))
		measure_rows(&f);
	if (want("engine"))
		measure_engine(&f);
	if (want("lag"))
		measure_lag(&f, !opt.only || !strcmp(opt.only, "outage"));

	bench_pg_finish(&pg); /* removes data_root too */
	print_json(&f);
	return 0;
}
