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
 *
 * Progress on stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

typedef struct client {
	shard *s;
	uint64_t rng;
	uint64_t req;
	uint64_t held[HELD_MAX]; /* claim ids to release */
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
		c->held[k] = c->held[--c->nheld];
		return;
	}
	cmd->op = BO_OP_HOLD_SEATS;
	cmd->seat_count = (uint8_t)(1 + bench_rnd(&c->rng) % 4);
	uint32_t base = (uint32_t)(bench_rnd(&c->rng) % (SEATS - 4));
	for (uint32_t k = 0; k < cmd->seat_count; k++)
		cmd->seats[k] = base + k;
	cmd->ttl_ms = 600000;
}

/* Drains the output ring; with `due`, records latency against the tag
 * (the time the command was due). Returns results seen. */
static uint64_t drain(client *c, int latency)
{
	ring *out = shard_output(c->s);
	uint64_t first, seen = 0;
	uint32_t n;
	int64_t now = latency ? bench_now_ns() : 0;
	while ((n = ring_poll(out, 4096, &first)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind != SHARD_OUT_RESULT)
				continue;
			seen++;
			const bo_result *r = &o->u.result;
			if (r->op == BO_OP_HOLD_SEATS && r->status == BO_OK && c->nheld < HELD_MAX)
				c->held[c->nheld++] = r->claim_id;
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

int main(int argc, char **argv)
{
	int quick = 0;
	const char *dir_arg = NULL;
	journal_sync sync = JOURNAL_SYNC_DATA;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir_arg = argv[++i];
		} else if (!strcmp(argv[i], "--sync") && i + 1 < argc) {
			const char *v = argv[++i];
			if (!strcmp(v, "data"))
				sync = JOURNAL_SYNC_DATA;
			else if (!strcmp(v, "none"))
				sync = JOURNAL_SYNC_NONE_UNSAFE;
			else {
				fprintf(stderr, "%s: --sync takes 'data' or 'none' (UNSAFE)\n", prog);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_journal [--quick] [--dir DIR] [--sync data|none]\n"
			       "One durable shard: saturated commands/s with fdatasync group commit, and ack\n"
			       "latency at an offered 100,000 commands/s. Last stdout line: one JSON object.\n"
			       "  --quick      about two seconds (the test suite runs this)\n"
			       "  --dir DIR    where the journal goes (default: a new directory under /var/tmp,\n"
			       "               removed afterwards); it must be on the disk you want measured\n"
			       "  --sync none  UNSAFE: no fdatasync (shows what the disk costs)\n");
			return 0;
		} else {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[i]);
			return 2;
		}
	}
	char tmpl[] = "/var/tmp/boxoffice-bench-journal-XXXXXX";
	const char *dir = dir_arg;
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir)
			bench_die(prog, "mkdtemp", -errno);
	}

	io_count io = {0};
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 20;
	cfg.data_dir = dir;
	cfg.journal.sync = sync;
	cfg.journal.fault = count_io;
	cfg.journal.fault_ctx = &io;
	shard *s;
	char err[1024];
	int rc = shard_open(&cfg, &s, NULL, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	if ((rc = shard_start(s)) < 0)
		bench_die(prog, "shard_start", rc);

	static client c;
	c.s = s;
	c.rng = 0x9e3779b97f4a7c15ull;
	bo_cmd cmd;
	memset(&cmd, 0, sizeof(cmd));
	bo_seatmap *map = bench_map(ROWS, PER_ROW, 1);
	cmd.op = BO_OP_CREATE_EVENT;
	cmd.client_id = 1;
	cmd.request_id = ++c.req;
	cmd.event_id = EVENT;
	cmd.map = map;
	while (shard_submit(s, &cmd, NULL, 1) != 0)
		;
	wait_all(&c, 1, 0);
	bo_seatmap_free(map);

	/* Saturated. */
	enum { GROUP = 256, INFLIGHT = 16384 };
	static bo_cmd group[GROUP];
	const int64_t sat_ns = quick ? 1000000000ll : 5000000000ll;
	uint64_t submitted = c.acked, acked0 = c.acked;
	uint64_t syncs0 = atomic_load(&io.syncs), bytes0 = atomic_load(&io.bytes);
	int64_t t0 = bench_now_ns(), t_end = t0 + sat_ns;
	while (bench_now_ns() < t_end) {
		if (submitted - c.acked < INFLIGHT) {
			for (uint32_t i = 0; i < GROUP; i++)
				make_command(&c, &group[i]);
			while (shard_submit(s, group, NULL, GROUP) != 0)
				drain(&c, 0); /* ring full: let the shard catch up */
			submitted += GROUP;
		}
		drain(&c, 0);
	}
	wait_all(&c, submitted, 0);
	double sat_s = (double)(bench_now_ns() - t0) / 1e9;
	uint64_t sat_cmds = c.acked - acked0;
	uint64_t syncs = atomic_load(&io.syncs) - syncs0, bytes = atomic_load(&io.bytes) - bytes0;
	double cps = (double)sat_cmds / sat_s;
	fprintf(stderr, "saturated: %" PRIu64 " commands in %.2fs = %.0f/s, %" PRIu64 " syncs (%.0f commands each)\n",
		sat_cmds, sat_s, cps, syncs, syncs ? (double)sat_cmds / (double)syncs : 0.0);

	/* Fixed offered rate: 100,000/s, open loop. */
	const uint64_t rate = 100000, step_ns = 1000000000ull / rate;
	const uint64_t total = quick ? 100000 : 1000000;
	c.lat = malloc(total * sizeof(int64_t));
	if (!c.lat)
		bench_die(prog, "malloc", -ENOMEM);
	c.lat_n = 0;
	uint64_t sent = 0, base = c.acked;
	static uint64_t tags[GROUP];
	int64_t start = bench_now_ns() + 1000000;
	while (sent < total) {
		int64_t now = bench_now_ns();
		uint32_t k = 0;
		while (sent + k < total && k < GROUP && start + (int64_t)((sent + k) * step_ns) <= now) {
			make_command(&c, &group[k]);
			tags[k] = (uint64_t)(start + (int64_t)((sent + k) * step_ns));
			k++;
		}
		if (k > 0) {
			while (shard_submit(s, group, tags, k) != 0)
				drain(&c, 1);
			sent += k;
		}
		if (drain(&c, 1) == 0 && k == 0) {
			/* Nothing due and nothing back: sleep a little rather than
			 * spin (two cores: a spinning client steals the writer's). */
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	wait_all(&c, base + total, 1);
	qsort(c.lat, c.lat_n, sizeof(int64_t), bench_cmp_i64);
	double p50 = (double)bench_quantile(c.lat, c.lat_n, 0.50) / 1000.0;
	double p99 = (double)bench_quantile(c.lat, c.lat_n, 0.99) / 1000.0;
	double p999 = (double)bench_quantile(c.lat, c.lat_n, 0.999) / 1000.0;
	fprintf(stderr, "at 100k/s: %" PRIu64 " acks, p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n", c.lat_n, p50, p99,
		p999);

	shard_stop(s);
	const char *failed = shard_failed(s);
	if (failed) {
		fprintf(stderr, "%s: %s\n", prog, failed);
		return 1;
	}
	shard_free(s);
	if (!dir_arg) {
		char cmdline[512];
		snprintf(cmdline, sizeof(cmdline), "rm -rf '%s'", dir);
		if (system(cmdline) != 0)
			fprintf(stderr, "%s: could not remove %s\n", prog, dir);
	}
	printf("{\"bench\":\"journal\",\"quick\":%s,\"sync\":\"%s\",\"commands_per_sec\":%.0f,"
	       "\"ack_latency_us_p50\":%.0f,\"ack_latency_us_p99\":%.0f,\"ack_latency_us_p999\":%.0f,"
	       "\"offered_per_sec\":%" PRIu64 ",\"syncs_per_sec\":%.0f,\"bytes_per_command\":%.1f}\n",
	       quick ? "true" : "false", sync == JOURNAL_SYNC_DATA ? "data" : "none-UNSAFE", cps, p50, p99, p999, rate,
	       (double)syncs / sat_s, sat_cmds ? (double)bytes / (double)sat_cmds : 0.0);
	free(c.lat);
	return 0;
}
