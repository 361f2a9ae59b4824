/*
 * bench_recovery — how fast a shard comes back, and what snapshots cost.
 *
 *   scripts/bench recovery [--quick] [--dir DIR] [--commands N] [--keep-engine]
 *
 *   records_per_sec           journal records re-executed (and verified
 *                             against their recorded results) per second
 *                             during a restart without a snapshot
 *   restart_seconds           shard_open() of a journal of N commands
 *                             (default 10,000,000) without a snapshot ...
 *   restart_seconds_snapshot  ... and with a snapshot taken at its end
 *
 * Snapshots of 10M seats (1M with --quick): a first one, 200,000 more
 * records, then the measured one, asked for while 100,000 commands/s
 * (10,000 with --quick) are offered until it is official:
 *   snapshot_seconds          from the writer handing S to the builder to
 *                             the file renamed into place (the builder
 *                             loads the first snapshot, or keeps its engine
 *                             with --keep-engine, catches up the 200,000
 *                             records to S from the journal and writes)
 *   max_shard_stall_ms        the longest time the WRITER spent on snapshot
 *                             work: handing a snapshot to the builder (a
 *                             store and a futex wake). Until issue 12 the
 *                             shard forked and this was the fork's stall.
 *   batch_gap_ms_max_snapshot / _no_snapshot
 *                             the writer's longest gap from the end of one
 *                             batch to the end of the next while input kept
 *                             coming, while a snapshot was being built /
 *                             while none was: everything that delayed the
 *                             writer (its own work, other threads taking
 *                             its CPU, the machine), so the difference is
 *                             what building costs it indirectly. Noisy on
 *                             a shared machine.
 *   snapshot_cpu_seconds      the builder thread's CPU time for that one
 *   engine_rss_mb             anonymous resident memory (RssAnon) the live
 *                             engine holds at the end (its 10M seats, the
 *                             claims and the idempotency window) ...
 *   builder_rss_mb            ... and the most the process held beyond the
 *                             live engine at its largest (measured once the
 *                             builder is gone): the builder's engine, which
 *                             with --keep-engine stays all the time
 *
 * The journal is written through a real shard with --sync none (UNSAFE,
 * only to fill the disk fast: durability is not what is measured here).
 * Restarts read it back from the page cache (a warm restart; a cold one
 * adds the disk's read time for ~130 bytes a record).
 * Progress on stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/parse.h"
#include "bench_util.h"
#include "shard/shard.h"

static const char *prog = "bench_recovery";

static void config(shard_config *cfg, const char *dir, uint32_t seats_max)
{
	shard_config_default(cfg);
	cfg->engine.seats_max = seats_max;
	cfg->data_dir = dir;
	cfg->journal.sync = JOURNAL_SYNC_NONE_UNSAFE;
}

static shard *open_shard(const shard_config *cfg, shard_recovery *rec)
{
	shard *s;
	char err[1024];
	int rc = shard_open(cfg, &s, rec, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		exit(1);
	}
	if ((rc = shard_start(s)) < 0)
		bench_die(prog, "shard_start", rc);
	return s;
}

/* Submits n commands and waits for all results. */
static void run(shard *s, bo_cmd *cmds, uint32_t n)
{
	uint32_t done = 0;
	while (done < n) {
		uint32_t k = n - done < 256 ? n - done : 256;
		if (shard_submit(s, cmds + done, NULL, k) == 0)
			done += k;
		uint64_t first;
		uint32_t got;
		ring *out = shard_output(s);
		while ((got = ring_poll(out, 4096, &first)) > 0)
			ring_release(out, got);
	}
}

static void drain_until_idle(shard *s)
{
	/* Stop drains the input and makes it durable; keep the output empty
	 * meanwhile (the writer waits for room there). */
	ring *out = shard_output(s);
	for (int idle = 0; idle < 50;) {
		uint64_t first;
		uint32_t got = ring_poll(out, 4096, &first);
		if (got) {
			ring_release(out, got);
			idle = 0;
		} else {
			usleep(1000);
			idle++;
		}
	}
}

/* shard_stop() needs the output ring drained until it returns (the writer
 * may still be emitting expiries): drain from a helper thread meanwhile. */
typedef struct drainer {
	shard *s;
	atomic_int stop;
} drainer;

static void *drain_main(void *arg)
{
	drainer *d = arg;
	ring *out = shard_output(d->s);
	while (!atomic_load(&d->stop)) {
		uint64_t first;
		uint32_t got = ring_poll(out, 4096, &first);
		if (got)
			ring_release(out, got);
		else
			ring_wait(out, 1000000);
	}
	return NULL;
}

static void stop_shard(shard *s)
{
	drainer d = {.s = s};
	atomic_init(&d.stop, 0);
	pthread_t t;
	if (pthread_create(&t, NULL, drain_main, &d) != 0)
		bench_die(prog, "pthread_create", -errno);
	shard_stop(s);
	atomic_store(&d.stop, 1);
	pthread_join(t, NULL);
}

static void create_event(shard *s, uint64_t id, uint32_t rows, uint32_t per_row, uint64_t req)
{
	bo_seatmap *map = bench_map(rows, per_row, 4);
	if (!map)
		bench_die(prog, "bench_map", -ENOMEM);
	bo_cmd c = {0};
	c.op = BO_OP_CREATE_EVENT;
	c.client_id = 1;
	c.request_id = req;
	c.event_id = id;
	c.map = map;
	/* The map is borrowed until its result is out: wait for exactly that. */
	while (shard_submit(s, &c, NULL, 1) != 0)
		drain_until_idle(s);
	ring *out = shard_output(s);
	for (int got = 0; !got;) {
		uint64_t first;
		uint32_t n = ring_poll(out, 4096, &first);
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind == SHARD_OUT_RESULT && o->u.result.op == BO_OP_CREATE_EVENT) {
				if (o->u.result.status != BO_OK)
					bench_die(prog, "create_event", -EPROTO);
				got = 1;
			}
		}
		if (n)
			ring_release(out, n);
		else
			ring_wait(out, 1000000);
	}
	bo_seatmap_free(map);
}

/* Fills a batch with holds (1-4 random seats) and releases of nothing in
 * particular (NOT_FOUND answers are journaled too: they enter the window). */
static void make_batch(bo_cmd *cmds, uint32_t n, uint64_t *rng, uint64_t *req, uint32_t events, uint32_t seats)
{
	for (uint32_t i = 0; i < n; i++) {
		bo_cmd *c = &cmds[i];
		memset(c, 0, sizeof(*c));
		c->client_id = 1000 + (bench_rnd(rng) & 0xfffff);
		c->request_id = ++*req;
		c->event_id = 100 + bench_rnd(rng) % events;
		if (bench_rnd(rng) % 3 == 0) {
			c->op = BO_OP_RELEASE;
			c->claim_id = (1ull << 32) | (bench_rnd(rng) % 100000);
		} else {
			c->op = BO_OP_HOLD_SEATS;
			c->seat_count = (uint8_t)(1 + bench_rnd(rng) % 4);
			uint32_t base = (uint32_t)(bench_rnd(rng) % (seats - 4));
			for (uint32_t k = 0; k < c->seat_count; k++)
				c->seats[k] = base + k;
			c->ttl_ms = 5000;
		}
	}
}

/* ---- Options ------------------------------------------------------------ */

typedef struct options {
	int quick;
	int keep_engine;   /* --keep-engine: shard_config.snapshot_keep_engine */
	const char *dir;   /* --dir, or NULL for a new directory removed afterwards */
	uint64_t commands; /* journal length for the restart figures */
} options;

static void parse_options(int argc, char **argv, options *o)
{
	*o = (options){.commands = 10000000};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o->quick = 1;
			o->commands = 200000;
		} else if (!strcmp(argv[i], "--keep-engine")) {
			o->keep_engine = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			o->dir = argv[++i];
		} else if (!strcmp(argv[i], "--commands") && i + 1 < argc) {
			if (bo_parse_u64(argv[++i], 1, UINT64_MAX, 0, &o->commands) != 0) {
				fprintf(stderr, "%s: --commands takes a positive whole number, not '%s'\n", prog,
					argv[i]);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_recovery [--quick] [--dir DIR] [--commands N] [--keep-engine]\n"
			       "Restart time of a shard from its journal (with and without a snapshot) and the\n"
			       "cost of snapshotting 10M seats. Last stdout line: one JSON object.\n"
			       "  --quick       200,000 commands and 1M seats (the test suite runs this)\n"
			       "  --dir DIR     work directory (default: new under /var/tmp, removed after)\n"
			       "  --commands N  journal length for the restart figures (default 10,000,000)\n"
			       "  --keep-engine the snapshot builder keeps its engine between snapshots\n");
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

/* ---- The phases ------------------------------------------------------------ */

/* The restart phases' events: EVENTS of ROWS x PER_ROW seats. */
enum { EVENTS = 8, ROWS = 100, PER_ROW = 100, SEATS = ROWS * PER_ROW };
enum { BATCH = 4096 };
static bo_cmd batch[BATCH];

/* The generator and the last request id, carried from phase to phase. */
typedef struct load {
	uint64_t rng, req;
} load;

typedef struct figures {
	double records_per_sec, restart_plain_s, restart_snap_s;
	uint32_t snapshot_events; /* of 1M seats each */
	double snapshot_s, stall_ms, gap_snap_ms, gap_ms, snapshot_cpu_s, engine_rss_mb, builder_rss_mb;
} figures;

/* Anonymous resident memory of the process (RssAnon: the engines' tables,
 * not the page cache the journal's mapped segments count under RssFile),
 * in MiB. */
static double rss_mb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (double)kb / 1024.0;
}

/* A journal of `commands` commands in cfg's directory, written through a
 * shard that is stopped again. */
static void write_journal(const shard_config *cfg, uint64_t commands, load *w)
{
	shard_recovery rec;
	shard *s = open_shard(cfg, &rec);
	for (uint32_t e = 0; e < EVENTS; e++)
		create_event(s, 100 + e, ROWS, PER_ROW, ++w->req);
	int64_t t0 = bo_clock_ns();
	for (uint64_t done = EVENTS; done < commands;) {
		uint32_t n = commands - done < BATCH ? (uint32_t)(commands - done) : BATCH;
		make_batch(batch, n, &w->rng, &w->req, EVENTS, SEATS);
		run(s, batch, n);
		done += n;
		if ((done & ((1u << 20) - 1)) < BATCH)
			fprintf(stderr, "\rwriting journal: %" PRIu64 " / %" PRIu64, done, commands);
	}
	drain_until_idle(s);
	stop_shard(s);
	shard_free(s);
	fprintf(stderr, "\rwriting journal: %" PRIu64 " commands in %.1fs\n", commands,
		(double)(bo_clock_ns() - t0) / 1e9);
}

/* records_per_sec, restart_seconds: a restart that re-executes the whole
 * journal. The restarted shard then snapshots after one more command, for
 * restart_from_snapshot(). */
static void restart_plain(shard_config *cfg, load *w, figures *f)
{
	shard_recovery rec;
	cfg->snapshot_every = 1; /* snapshot after one more record */
	shard *s = open_shard(cfg, &rec);
	f->restart_plain_s = rec.seconds;
	f->records_per_sec = rec.replayed / (rec.seconds > 0 ? rec.seconds : 1e-9);
	fprintf(stderr, "restart, no snapshot: %" PRIu64 " records in %.2fs (%.0f records/s)\n", rec.replayed,
		rec.seconds, f->records_per_sec);
	/* One more command: its batch triggers the snapshot. */
	make_batch(batch, 1, &w->rng, &w->req, EVENTS, SEATS);
	run(s, batch, 1);
	shard_stats st = {0};
	/* Wait (at most 10 minutes) for the builder to write it: it replays
	 * the whole journal first (there is no snapshot to start from). */
	for (int i = 0; i < 12000 && st.snapshots == 0; i++) {
		drain_until_idle(s);
		shard_stats_get(s, &st);
	}
	if (st.snapshots == 0)
		bench_die(prog, "waiting for the snapshot", -ETIMEDOUT);
	stop_shard(s);
	shard_free(s);
	cfg->snapshot_every = 0;
}

/* restart_seconds_snapshot: a restart from the snapshot restart_plain()
 * left at the journal's end. */
static void restart_from_snapshot(const shard_config *cfg, figures *f)
{
	shard_recovery rec;
	shard *s = open_shard(cfg, &rec);
	f->restart_snap_s = rec.seconds;
	fprintf(stderr, "restart, snapshot at %" PRIu64 ": %" PRIu64 " records replayed, %.3fs\n", rec.snapshot_seq,
		rec.replayed, rec.seconds);
	stop_shard(s);
	shard_free(s);
}

/* Records between the snapshot figures' snapshots. */
enum { SNAP_GAP_RECORDS = 200000 };
/* The offered load while the measured snapshot is built: the issue's
 * 100,000 commands/s, in slices of PACE_BATCH every 10 ms (--quick: a
 * tenth of it, PACE_BATCH_QUICK: under a sanitizer the writer and this
 * thread would otherwise take both cores, and the nice-19 builder, which
 * yields to them by design, would take minutes). */
enum { PACE_BATCH = 1000, PACE_BATCH_QUICK = 100, PACE_NS = 10000000 };

/* Closed loop: n commands on the big events, results awaited. */
static void fill(shard *s, load *w, uint32_t events, uint64_t n)
{
	for (uint64_t sent = 0; sent < n; sent += BATCH) {
		make_batch(batch, BATCH, &w->rng, &w->req, events, 1000000);
		run(s, batch, BATCH);
	}
}

/* Asks for a snapshot and waits (10 minutes at most) until it is official,
 * offering `paced` commands every 10 ms meanwhile (0: none); *rss_max
 * follows the process's RssAnon. */
static void snapshot_now(shard *s, load *w, uint32_t events, uint32_t paced, double *rss_max)
{
	drain_until_idle(s);
	shard_stats st;
	shard_stats_get(s, &st);
	const uint64_t before = st.snapshots;
	shard_snapshot_request(s);
	const int64_t t0 = bo_clock_ns();
	for (int64_t next = t0; st.snapshots == before; next += PACE_NS) {
		if (bo_clock_ns() - t0 > 600 * 1000000000ll)
			bench_die(prog, "waiting for the snapshot", -ETIMEDOUT);
		if (paced) {
			make_batch(batch, paced, &w->rng, &w->req, events, 1000000);
			run(s, batch, paced);
		}
		double r = rss_mb();
		if (r > *rss_max)
			*rss_max = r;
		int64_t left = next + PACE_NS - bo_clock_ns();
		if (left > 0)
			usleep((useconds_t)(left / 1000));
		shard_stats_get(s, &st);
	}
}

/* The snapshot figures: events of 1M seats each (one with --quick, else
 * ten) and SNAP_GAP_RECORDS commands, a first snapshot (from the journal
 * alone), SNAP_GAP_RECORDS more commands, then the measured snapshot (from
 * the first one, or the kept engine) while 100k commands/s are offered. */
static void measure_snapshot(const char *dir, const options *o, load *w, figures *f)
{
	const uint32_t big_events = o->quick ? 1 : 10;
	shard_config cfg;
	config(&cfg, dir, 1u << 24);
	cfg.snapshot_every = 0; /* only when asked */
	cfg.snapshot_keep_engine = o->keep_engine;
	shard_recovery rec;
	double rss0 = rss_mb();
	shard *s = open_shard(&cfg, &rec);
	for (uint32_t e = 0; e < big_events; e++)
		create_event(s, 100 + e, 10000, 100, ++w->req);
	double rss_max = rss_mb();
	fill(s, w, big_events, SNAP_GAP_RECORDS);
	snapshot_now(s, w, big_events, 0, &rss_max);
	fill(s, w, big_events, SNAP_GAP_RECORDS);
	snapshot_now(s, w, big_events, o->quick ? PACE_BATCH_QUICK : PACE_BATCH, &rss_max);
	drain_until_idle(s);
	stop_shard(s);
	/* The builder's engine is freed now (with the builder thread): what
	 * is left is the live engine at its largest. */
	const double rss_live = rss_mb();
	f->engine_rss_mb = rss_live - rss0;
	f->builder_rss_mb = rss_max - rss_live;
	shard_stats st;
	shard_stats_get(s, &st);
	shard_free(s);
	f->snapshot_events = big_events;
	f->snapshot_s = (double)st.snapshot_ns_last / 1e9;
	f->stall_ms = (double)st.snapshot_stall_ns_max / 1e6;
	f->gap_snap_ms = (double)st.batch_gap_ns_max_snapshot / 1e6;
	f->gap_ms = (double)st.batch_gap_ns_max / 1e6;
	f->snapshot_cpu_s = (double)st.snapshot_cpu_ns_last / 1e9;
	fprintf(stderr,
		"snapshot of %u M seats (%s): %" PRIu64 " taken, last %.2fs (builder CPU %.2fs), "
		"writer's snapshot work max %.4f ms, batch gap max %.2f ms building / %.2f ms not; "
		"RSS: engine %.0f MiB, builder +%.0f MiB\n",
		big_events, o->keep_engine ? "engine kept" : "engine loaded", st.snapshots, f->snapshot_s,
		f->snapshot_cpu_s, f->stall_ms, f->gap_snap_ms, f->gap_ms, f->engine_rss_mb, f->builder_rss_mb);
}

static void print_json(const options *o, const figures *f)
{
	printf("{\"bench\":\"recovery\",\"quick\":%s,\"commands\":%" PRIu64 ",\"records_per_sec\":%.0f,"
	       "\"restart_seconds\":%.3f,\"restart_seconds_snapshot\":%.3f,\"snapshot_seats\":%u000000,"
	       "\"snapshot_seconds\":%.3f,\"max_shard_stall_ms\":%.4f,\"batch_gap_ms_max_snapshot\":%.3f,"
	       "\"batch_gap_ms_max_no_snapshot\":%.3f,\"snapshot_keep_engine\":%s,\"snapshot_cpu_seconds\":%.3f,"
	       "\"engine_rss_mb\":%.0f,\"builder_rss_mb\":%.0f}\n",
	       o->quick ? "true" : "false", o->commands, f->records_per_sec, f->restart_plain_s, f->restart_snap_s,
	       f->snapshot_events, f->snapshot_s, f->stall_ms, f->gap_snap_ms, f->gap_ms,
	       o->keep_engine ? "true" : "false", f->snapshot_cpu_s, f->engine_rss_mb, f->builder_rss_mb);
}

int main(int argc, char **argv)
{
	options o;
	parse_options(argc, argv, &o);
	char tmpl[] = "/var/tmp/boxoffice-bench-recovery-XXXXXX";
	const char *root = o.dir ? o.dir : mkdtemp(tmpl);
	if (!root)
		bench_die(prog, "mkdtemp", -errno);
	char dir_restart[PATH_MAX], dir_snapshot[PATH_MAX];
	if (snprintf(dir_restart, sizeof(dir_restart), "%s/restart", root) >= (int)sizeof(dir_restart) ||
	    snprintf(dir_snapshot, sizeof(dir_snapshot), "%s/snapshot", root) >= (int)sizeof(dir_snapshot)) {
		fprintf(stderr, "%s: --dir is too long\n", prog);
		return 2;
	}

	load w = {.rng = 0x9e3779b97f4a7c15ull};
	figures f = {0};
	shard_config cfg;
	config(&cfg, dir_restart, 1u << 20);
	write_journal(&cfg, o.commands, &w);
	restart_plain(&cfg, &w, &f);
	restart_from_snapshot(&cfg, &f);
	measure_snapshot(dir_snapshot, &o, &w, &f);

	if (!o.dir)
		bench_remove_dir(prog, root);
	print_json(&o, &f);
	return 0;
}
