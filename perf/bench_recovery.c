/*
 * bench_recovery — how fast a shard comes back, and what snapshots cost.
 *
 *   scripts/bench recovery [--quick] [--dir DIR] [--commands N]
 *
 *   records_per_sec           journal records re-executed (and verified
 *                             against their recorded results) per second
 *                             during a restart without a snapshot
 *   restart_seconds           shard_open() of a journal of N commands
 *                             (default 10,000,000) without a snapshot ...
 *   restart_seconds_snapshot  ... and with a snapshot taken at its end
 *   snapshot_seconds          fork to renamed file, for 10M seats
 *   max_shard_stall_ms        the writer's longest stall (fork) while
 *                             snapshotting 10M seats under load
 *
 * The journal is written through a real shard with --sync none (UNSAFE,
 * only to fill the disk fast: durability is not what is measured here).
 * Restarts read it back from the page cache (a warm restart; a cold one
 * adds the disk's read time for ~130 bytes a record).
 * Progress on stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	int quick = 0;
	const char *dir_arg = NULL;
	uint64_t commands = 10000000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
			commands = 200000;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir_arg = argv[++i];
		} else if (!strcmp(argv[i], "--commands") && i + 1 < argc) {
			commands = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_recovery [--quick] [--dir DIR] [--commands N]\n"
			       "Restart time of a shard from its journal (with and without a snapshot) and the\n"
			       "cost of snapshotting 10M seats. Last stdout line: one JSON object.\n"
			       "  --quick       200,000 commands and 1M seats (the test suite runs this)\n"
			       "  --dir DIR     work directory (default: new under /var/tmp, removed after)\n"
			       "  --commands N  journal length for the restart figures (default 10,000,000)\n");
			return 0;
		} else {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[i]);
			return 2;
		}
	}
	if (commands == 0) {
		fprintf(stderr, "%s: --commands must be positive\n", prog);
		return 2;
	}
	char tmpl[] = "/var/tmp/boxoffice-bench-recovery-XXXXXX";
	const char *root = dir_arg ? dir_arg : mkdtemp(tmpl);
	if (!root)
		bench_die(prog, "mkdtemp", -errno);
	char dir_a[1024], dir_b[1024];
	snprintf(dir_a, sizeof(dir_a), "%s/restart", root);
	snprintf(dir_b, sizeof(dir_b), "%s/snapshot", root);

	/* ---- A journal of `commands` commands -------------------------------- */
	const uint32_t events = 8, rows = 100, per_row = 100, seats = rows * per_row;
	shard_config cfg;
	config(&cfg, dir_a, 1u << 20);
	shard_recovery rec;
	shard *s = open_shard(&cfg, &rec);
	uint64_t req = 0, rng = 0x9e3779b97f4a7c15ull;
	for (uint32_t e = 0; e < events; e++)
		create_event(s, 100 + e, rows, per_row, ++req);
	static bo_cmd batch[4096];
	int64_t t0 = bench_now_ns();
	for (uint64_t done = events; done < commands;) {
		uint32_t n = commands - done < 4096 ? (uint32_t)(commands - done) : 4096;
		make_batch(batch, n, &rng, &req, events, seats);
		run(s, batch, n);
		done += n;
		if ((done & ((1u << 20) - 1)) < 4096)
			fprintf(stderr, "\rwriting journal: %" PRIu64 " / %" PRIu64, done, commands);
	}
	drain_until_idle(s);
	stop_shard(s);
	shard_free(s);
	fprintf(stderr, "\rwriting journal: %" PRIu64 " commands in %.1fs\n", commands,
		(double)(bench_now_ns() - t0) / 1e9);

	/* ---- Restart without a snapshot -------------------------------------- */
	cfg.snapshot_every = 1; /* for the next phase: snapshot after one more record */
	s = open_shard(&cfg, &rec);
	double restart_plain = rec.seconds;
	double records_per_sec = rec.replayed / (rec.seconds > 0 ? rec.seconds : 1e-9);
	fprintf(stderr, "restart, no snapshot: %" PRIu64 " records in %.2fs (%.0f records/s)\n", rec.replayed,
		rec.seconds, records_per_sec);
	/* One more command: its batch triggers the snapshot. */
	make_batch(batch, 1, &rng, &req, events, seats);
	run(s, batch, 1);
	shard_stats st = {0};
	/* Wait (at most 10 minutes) for the child to write it. */
	for (int i = 0; i < 12000 && st.snapshots == 0; i++) {
		drain_until_idle(s);
		shard_stats_get(s, &st);
	}
	if (st.snapshots == 0)
		bench_die(prog, "waiting for the snapshot", -ETIMEDOUT);
	stop_shard(s);
	shard_free(s);

	cfg.snapshot_every = 0;
	s = open_shard(&cfg, &rec);
	double restart_snap = rec.seconds;
	fprintf(stderr, "restart, snapshot at %" PRIu64 ": %" PRIu64 " records replayed, %.3fs\n", rec.snapshot_seq,
		rec.replayed, rec.seconds);
	stop_shard(s);
	shard_free(s);

	/* ---- Snapshot of 10M seats under load -------------------------------- */
	const uint32_t big_events = quick ? 1 : 10;
	config(&cfg, dir_b, 1u << 24);
	cfg.snapshot_every = 200000;
	s = open_shard(&cfg, &rec);
	for (uint32_t e = 0; e < big_events; e++)
		create_event(s, 100 + e, 10000, 100, ++req);
	uint64_t target = quick ? 1 : 2;
	memset(&st, 0, sizeof(st));
	for (uint64_t sent = 0; st.snapshots < target && sent < 50000000;) {
		make_batch(batch, 4096, &rng, &req, big_events, 1000000);
		run(s, batch, 4096);
		sent += 4096;
		shard_stats_get(s, &st);
	}
	shard_stats_get(s, &st);
	drain_until_idle(s);
	stop_shard(s);
	shard_stats_get(s, &st);
	shard_free(s);
	double snap_s = (double)st.snapshot_ns_last / 1e9;
	double stall_ms = (double)st.snapshot_stall_ns_max / 1e6;
	fprintf(stderr, "snapshot of %u M seats: %" PRIu64 " taken, last %.2fs, writer stall max %.2f ms\n",
		big_events, st.snapshots, snap_s, stall_ms);

	if (!dir_arg) {
		char cmdline[600];
		snprintf(cmdline, sizeof(cmdline), "rm -rf '%s'", root);
		if (system(cmdline) != 0)
			fprintf(stderr, "%s: could not remove %s\n", prog, root);
	}
	printf("{\"bench\":\"recovery\",\"quick\":%s,\"commands\":%" PRIu64 ",\"records_per_sec\":%.0f,"
	       "\"restart_seconds\":%.3f,\"restart_seconds_snapshot\":%.3f,\"snapshot_seats\":%u000000,"
	       "\"snapshot_seconds\":%.3f,\"max_shard_stall_ms\":%.3f}\n",
	       quick ? "true" : "false", commands, records_per_sec, restart_plain, restart_snap, big_events, snap_s,
	       stall_ms);
	return 0;
}
