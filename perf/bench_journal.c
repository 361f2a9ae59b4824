/*
 * bench_journal — one durable shard: how many commands per second with
 * fdatasync group commit on, and how long an acknowledgement takes at a
 * fixed offered load.
 *
 *   scripts/bench journal [--quick] [--dir DIR] [--sync data|none]
 *
 * One shard (writer thread) with its journal on the real disk, one client
 * thread that both submits and drains the output ring (two threads for the
 * two cores). The command mix is an on-sale's: holds of 1-4 random seats on
 * a 100k-seat event (about half are taken already) and releases of earlier
 * holds, every one of them journaled.
 *
 *   commands_per_sec     saturated: the client keeps up to 16k commands in
 *                        flight, submitting in groups of 256
 *   ack_latency_us_p*    offered 100,000 commands/s open loop: command i is
 *                        due at t0 + i * 10 us and its latency is counted
 *                        from when it was due, not when it was sent, so a
 *                        stalled client does not hide a stall (coordinated
 *                        omission)
 *   syncs_per_sec        fdatasyncs issued (group commits), counted by the
 *                        journal's I/O hook, during the saturated phase
 *   bytes_per_command    journal bytes written per command
 *   disk_sync_us_p*      the disk's own floor, measured in the same run
 *                        just before the latency phase: DISK_PROBES
 *                        sequential 16 KiB pwrite + fdatasync pairs (about
 *                        one group commit's bytes at 100k/s) into a
 *                        fallocated file beside the journal, one at a time.
 *                        An acknowledgement waits for at least one such
 *                        round trip, so ack_latency_us_p99 cannot be
 *                        below disk_sync_us_p99 on this disk.
 *
 * Progress on stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/parse.h"
#include "bench_util.h"
#include "shard/shard.h"

static const char *prog = "bench_journal";

typedef struct io_count {
	atomic_uint_least64_t syncs;
	atomic_uint_least64_t bytes;
} io_count;

/* The journal's fault hook, used here only to count: it lets every I/O
 * through unchanged. */
static int count_io(void *ctx, journal_io *io)
{
	io_count *c = ctx;
	if (io->kind == JOURNAL_IO_SYNC)
		atomic_fetch_add_explicit(&c->syncs, 1, memory_order_relaxed);
	else if (io->kind == JOURNAL_IO_WRITE)
		atomic_fetch_add_explicit(&c->bytes, io->len, memory_order_relaxed);
	return 0;
}

enum { EVENT = 7, ROWS = 500, PER_ROW = 200, SEATS = ROWS * PER_ROW };
enum { HELD_MAX = 1 << 16 };
/* Commands go to the shard in groups of GROUP; the saturated phase keeps up
 * to INFLIGHT unanswered. */
enum { GROUP = 256, INFLIGHT = 16384 };

typedef struct client {
	shard *s;
	uint64_t rng;
	uint64_t req;
	uint64_t held[HELD_MAX]; /* claim ids to release */
	uint64_t held_client[HELD_MAX]; /* their clients: only they may release */
	uint32_t nheld;
	uint64_t acked;
	int64_t *lat; /* latency samples (ns), by tag */
	uint64_t lat_n;
} client;

static void make_command(client *c, bo_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->client_id = 1000 + (bench_rnd(&c->rng) & 0xfffff);
	cmd->request_id = ++c->req;
	cmd->event_id = EVENT;
	if (c->nheld > 0 && (bench_rnd(&c->rng) & 1)) {
		uint32_t k = (uint32_t)(bench_rnd(&c->rng) % c->nheld);
		cmd->op = BO_OP_RELEASE;
		cmd->claim_id = c->held[k];
		cmd->client_id = c->held_client[k];
		c->held[k] = c->held[--c->nheld];
		c->held_client[k] = c->held_client[c->nheld];
		return;
	}
	cmd->op = BO_OP_HOLD_SEATS;
	cmd->seat_count = (uint8_t)(1 + bench_rnd(&c->rng) % 4);
	uint32_t base = (uint32_t)(bench_rnd(&c->rng) % (SEATS - 4));
	for (uint32_t k = 0; k < cmd->seat_count; k++)
		cmd->seats[k] = base + k;
	cmd->ttl_ms = 600000;
}

/* Drains the output ring; with `latency`, records each result's latency
 * against its tag (the time the command was due). Returns results seen. */
static uint64_t drain(client *c, int latency)
{
	ring *out = shard_output(c->s);
	uint64_t first, seen = 0;
	uint32_t n;
	int64_t now = latency ? bo_clock_ns() : 0;
	while ((n = ring_poll(out, 4096, &first)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind != SHARD_OUT_RESULT)
				continue;
			seen++;
			const bo_result *r = &o->u.result;
			if (r->op == BO_OP_HOLD_SEATS && r->status == BO_OK &&
			    c->nheld < HELD_MAX) {
				c->held_client[c->nheld] = r->client_id;
				c->held[c->nheld++] = r->claim_id;
			}
			if (latency && c->lat)
				c->lat[c->lat_n++] = now - (int64_t)o->tag;
		}
		ring_release(out, n);
	}
	c->acked += seen;
	return seen;
}

static void wait_all(client *c, uint64_t submitted, int latency)
{
	while (c->acked < submitted) {
		if (drain(c, latency) == 0)
			ring_wait(shard_output(c->s), 1000000);
	}
}

/* ---- Options ------------------------------------------------------------ */

typedef struct options {
	int quick;
	const char *dir; /* --dir, or NULL for a new directory removed afterwards */
	journal_sync sync;
	uint64_t segment_bytes; /* --segment-bytes, 0: the journal's default */
} options;

static void parse_options(int argc, char **argv, options *o)
{
	*o = (options){.sync = JOURNAL_SYNC_DATA};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o->quick = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			o->dir = argv[++i];
		} else if (!strcmp(argv[i], "--sync") && i + 1 < argc) {
			o->sync = bench_sync_durable(prog, argv[++i]) ? JOURNAL_SYNC_DATA : JOURNAL_SYNC_NONE_UNSAFE;
		} else if (!strcmp(argv[i], "--segment-bytes") && i + 1 < argc) {
			const char *v = argv[++i];
			if (bo_parse_u64(v, 8u << 20, UINT64_MAX, 0, &o->segment_bytes) != 0 || o->segment_bytes % 4096 != 0 ||
			    o->segment_bytes < (8u << 20)) {
				fprintf(stderr, "%s: --segment-bytes: a multiple of 4096, at least 8 MiB: %s\n", prog, v);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_journal [--quick] [--dir DIR] [--sync data|none] [--segment-bytes N]\n"
			       "One durable shard: saturated commands/s with fdatasync group commit, and ack\n"
			       "latency at an offered 100,000 commands/s. Last stdout line: one JSON object.\n"
			       "  --quick      about two seconds (the test suite runs this)\n"
			       "  --dir DIR    where the journal goes (default: a new directory under /var/tmp,\n"
			       "               removed afterwards); it must be on the disk you want measured\n"
			       "  --sync none  UNSAFE: no fdatasync (shows what the disk costs)\n"
			       "  --segment-bytes N  journal segment size (default 64 MiB); one larger than the\n"
			       "               run's journal keeps segment preparation out of the measurement\n");
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

/* ---- The shard ------------------------------------------------------------ */

/* Opens and starts the shard with its journal in dir, counting its I/O in
 * *io; exits on failure. */
static shard *start_shard(const char *dir, journal_sync sync, uint64_t segment_bytes, io_count *io)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 20;
	cfg.data_dir = dir;
	cfg.journal.sync = sync;
	if (segment_bytes)
		cfg.journal.segment_bytes = segment_bytes;
	cfg.journal.fault = count_io;
	cfg.journal.fault_ctx = io;
	shard *s;
	char err[1024];
	int rc = shard_open(&cfg, &s, NULL, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		exit(1);
	}
	if ((rc = shard_start(s)) < 0)
		bench_die(prog, "shard_start", rc);
	return s;
}

/* The event every command is about; waits for its result (the map is
 * borrowed until then). */
static void create_event(client *c)
{
	bo_seatmap *map = bench_map(ROWS, PER_ROW, 1);
	if (!map)
		bench_die(prog, "bench_map", -ENOMEM);
	bo_cmd cmd;
	memset(&cmd, 0, sizeof(cmd));
	cmd.op = BO_OP_CREATE_EVENT;
	cmd.client_id = 1;
	cmd.request_id = ++c->req;
	cmd.event_id = EVENT;
	cmd.map = map;
	while (shard_submit(c->s, &cmd, NULL, 1) != 0)
		;
	wait_all(c, 1, 0);
	bo_seatmap_free(map);
}

/* Stops the shard; exits 1 when its writer failed on the way. */
static void stop_shard(shard *s)
{
	shard_stop(s);
	const char *failed = shard_failed(s);
	if (failed) {
		fprintf(stderr, "%s: %s\n", prog, failed);
		exit(1);
	}
	shard_free(s);
}

/* ---- The figures ------------------------------------------------------------ */

typedef struct figures {
	double commands_per_sec, syncs_per_sec, bytes_per_command;
	double ack_us_p50, ack_us_p99, ack_us_p999;
	double disk_us_p50, disk_us_p99, disk_us_p999;
	double unit_sync_us_p99_bound;
} figures;

enum { DISK_PROBE_BYTES = 16384, DISK_PROBES = 2000, DISK_PROBES_QUICK = 200 };

/* disk_sync_us_p*: the disk's write + fdatasync round trip, with no journal
 * in the way (see the header). */
static void measure_disk(const char *dir, uint32_t probes, figures *f)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/disk-probe", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		bench_die(prog, "open the disk probe", -errno);
	const off_t size = (off_t)probes * DISK_PROBE_BYTES;
	if (fallocate(fd, 0, 0, size) != 0 && ftruncate(fd, size) != 0)
		bench_die(prog, "size the disk probe", -errno);
	static uint8_t buf[DISK_PROBE_BYTES];
	memset(buf, 0xa5, sizeof(buf));
	int64_t *lat = malloc(probes * sizeof(int64_t));
	if (!lat)
		bench_die(prog, "malloc", -ENOMEM);
	for (uint32_t i = 0; i < probes; i++) {
		int64_t t0 = bo_clock_ns();
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * DISK_PROBE_BYTES) != (ssize_t)sizeof(buf) ||
		    fdatasync(fd) != 0)
			bench_die(prog, "disk probe write + fdatasync", -errno);
		lat[i] = bo_clock_ns() - t0;
	}
	close(fd);
	unlink(path);
	bench_pcts pc = bench_percentiles(lat, probes);
	free(lat);
	f->disk_us_p50 = (double)pc.p50 / 1000.0;
	f->disk_us_p99 = (double)pc.p99 / 1000.0;
	f->disk_us_p999 = (double)pc.p999 / 1000.0;
	fprintf(stderr, "disk: %u x (16 KiB write + fdatasync): p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n", probes,
		f->disk_us_p50, f->disk_us_p99, f->disk_us_p999);
}

/* commands_per_sec, syncs_per_sec, bytes_per_command: up to INFLIGHT
 * commands outstanding for sat_ns, then every answer awaited. */
static void measure_saturated(client *c, io_count *io, int64_t sat_ns, figures *f)
{
	static bo_cmd group[GROUP];
	uint64_t submitted = c->acked, acked0 = c->acked;
	uint64_t syncs0 = atomic_load(&io->syncs), bytes0 = atomic_load(&io->bytes);
	int64_t t0 = bo_clock_ns(), t_end = t0 + sat_ns;
	while (bo_clock_ns() < t_end) {
		if (submitted - c->acked < INFLIGHT) {
			for (uint32_t i = 0; i < GROUP; i++)
				make_command(c, &group[i]);
			while (shard_submit(c->s, group, NULL, GROUP) != 0)
				drain(c, 0); /* ring full: let the shard catch up */
			submitted += GROUP;
		}
		drain(c, 0);
	}
	wait_all(c, submitted, 0);
	double sat_s = (double)(bo_clock_ns() - t0) / 1e9;
	uint64_t sat_cmds = c->acked - acked0;
	uint64_t syncs = atomic_load(&io->syncs) - syncs0, bytes = atomic_load(&io->bytes) - bytes0;
	f->commands_per_sec = (double)sat_cmds / sat_s;
	f->syncs_per_sec = (double)syncs / sat_s;
	f->bytes_per_command = sat_cmds ? (double)bytes / (double)sat_cmds : 0.0;
	fprintf(stderr, "saturated: %" PRIu64 " commands in %.2fs = %.0f/s, %" PRIu64 " syncs (%.0f commands each)\n",
		sat_cmds, sat_s, f->commands_per_sec, syncs, syncs ? (double)sat_cmds / (double)syncs : 0.0);
}

/* ack_latency_us_p*: `total` commands offered at `rate` a second, open
 * loop; each latency runs from when its command was due (its tag). */
static void measure_latency(client *c, uint64_t rate, uint64_t total, figures *f)
{
	static bo_cmd group[GROUP];
	static uint64_t tags[GROUP];
	const uint64_t step_ns = 1000000000ull / rate;
	c->lat = malloc(total * sizeof(int64_t));
	if (!c->lat)
		bench_die(prog, "malloc", -ENOMEM);
	c->lat_n = 0;
	uint64_t sent = 0, base = c->acked;
	int64_t start = bo_clock_ns() + 1000000;
	while (sent < total) {
		int64_t now = bo_clock_ns();
		uint32_t k = 0;
		while (sent + k < total && k < GROUP && start + (int64_t)((sent + k) * step_ns) <= now) {
			make_command(c, &group[k]);
			tags[k] = (uint64_t)(start + (int64_t)((sent + k) * step_ns));
			k++;
		}
		if (k > 0) {
			while (shard_submit(c->s, group, tags, k) != 0)
				drain(c, 1);
			sent += k;
		}
		if (drain(c, 1) == 0 && k == 0) {
			/* Nothing due and nothing back: sleep a little rather than
			 * spin (two cores: a spinning client steals the writer's). */
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	wait_all(c, base + total, 1);
	bench_pcts pc = bench_percentiles(c->lat, c->lat_n);
	f->ack_us_p50 = (double)pc.p50 / 1000.0;
	f->ack_us_p99 = (double)pc.p99 / 1000.0;
	f->ack_us_p999 = (double)pc.p999 / 1000.0;
	fprintf(stderr, "at 100k/s: %" PRIu64 " acks, p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n", c->lat_n,
		f->ack_us_p50, f->ack_us_p99, f->ack_us_p999);
	free(c->lat);
	c->lat = NULL;
}

/* unit_sync_us_p99_bound: the journal's own write + fdatasync latency per
 * unit during the latency phase (shard_sync_hist: power-of-two buckets, so
 * the upper bound of the bucket holding the 99th percentile). */
static void unit_sync_p99(const bo_hist_snap *a, const bo_hist_snap *b, figures *f)
{
	uint64_t n = b->count - a->count, seen = 0;
	f->unit_sync_us_p99_bound = 0;
	for (uint32_t i = 0; i < BO_HIST_BUCKETS && n > 0; i++) {
		seen += b->n[i] - a->n[i];
		if (seen * 100 >= n * 99) {
			f->unit_sync_us_p99_bound = i < BO_HIST_TOP ? (double)bo_hist_bound(i) : -1;
			break;
		}
	}
	fprintf(stderr, "journal units during the latency phase: %" PRIu64 ", write + fdatasync p99 <= %.0f us\n", n,
		f->unit_sync_us_p99_bound);
}

static void print_json(const options *o, uint64_t offered, const figures *f)
{
	printf("{\"bench\":\"journal\",\"quick\":%s,\"sync\":\"%s\",\"commands_per_sec\":%.0f,"
	       "\"ack_latency_us_p50\":%.0f,\"ack_latency_us_p99\":%.0f,\"ack_latency_us_p999\":%.0f,"
	       "\"offered_per_sec\":%" PRIu64 ",\"syncs_per_sec\":%.0f,\"bytes_per_command\":%.1f,"
	       "\"disk_sync_us_p50\":%.0f,\"disk_sync_us_p99\":%.0f,\"disk_sync_us_p999\":%.0f,"
	       "\"unit_sync_us_p99_bound\":%.0f}\n",
	       o->quick ? "true" : "false", o->sync == JOURNAL_SYNC_DATA ? "data" : "none-UNSAFE",
	       f->commands_per_sec, f->ack_us_p50, f->ack_us_p99, f->ack_us_p999, offered, f->syncs_per_sec,
	       f->bytes_per_command, f->disk_us_p50, f->disk_us_p99, f->disk_us_p999,
	       f->unit_sync_us_p99_bound);
}

int main(int argc, char **argv)
{
	options o;
	parse_options(argc, argv, &o);
	char tmpl[] = "/var/tmp/boxoffice-bench-journal-XXXXXX";
	const char *dir = o.dir;
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir)
			bench_die(prog, "mkdtemp", -errno);
	}

	io_count io = {0};
	static client c;
	c.s = start_shard(dir, o.sync, o.segment_bytes, &io);
	c.rng = 0x9e3779b97f4a7c15ull;
	create_event(&c);

	figures f;
	const uint64_t rate = 100000;
	measure_saturated(&c, &io, o.quick ? 1000000000ll : 5000000000ll, &f);
	measure_disk(dir, o.quick ? DISK_PROBES_QUICK : DISK_PROBES, &f);
	bo_hist_snap u0, u1;
	bo_hist_read(shard_sync_hist(c.s), &u0);
	measure_latency(&c, rate, o.quick ? 100000 : 1000000, &f);
	bo_hist_read(shard_sync_hist(c.s), &u1);
	unit_sync_p99(&u0, &u1, &f);

	stop_shard(c.s);
	if (!o.dir)
		bench_remove_dir(prog, dir);
	print_json(&o, rate, &f);
	return 0;
}
