/*
 * replay_test.c — proves that the boxoffice-replay binary tells the truth
 * about real journals: it accepts what a shard wrote (verify exits 0, dump
 * prints exactly one line per record, stats counts what the shard did), its
 * snapshots equal the state and verify compares them for real (a snapshot of
 * another state is caught), it starts from a snapshot when the journal was
 * pruned (and fails when nothing covers the gap), it catches corruption (a
 * flipped byte: exit 1 naming file, offset and seq), non-determinism (a
 * recorded result that re-execution does not reproduce) and a torn tail, and
 * names the place as the journal reader reports it (the damaged segment and
 * offset, even where the last good record lies in another file), and
 * `repair` cuts at the bad record, keeps a backup and leaves a journal that
 * verifies again. stats prints each shard's seq range as first..last record
 * (also of a pruned journal) and none for the sum over shards. Bad command
 * lines exit 2, bad directories 3, never a crash.
 *
 * How: each test opens a real durable shard (shard_open with data_dir under
 * a mkdtemp directory, snapshot_every 0, small segments so the journal
 * spans several files, an injected clock so holds expire and ticks are
 * journaled), submits a few hundred commands one at a time (create event,
 * holds of every kind, extend, confirm, release, cancel, block/unblock, an
 * idempotent repeat and a conflict), drains the output ring (outputs appear
 * when durable) and counts what it saw: records, commands per op and
 * status, ticks. Then it runs the binary named by $BOXOFFICE_REPLAY (meson
 * passes its path) with fork/exec, capturing stdout, stderr and the exit
 * code, and checks them against those counts. JSON output is checked by a
 * small strict JSON parser below. Where io_uring is refused, tests skip
 * loudly.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shard/shard.h"
#include "engine/snapshot.h"
#include "shard/snapfile.h"
#include "shard/entry.h"
#include "journal/journal.h"
#include "tests/support/json_check.h"
#include "tests/support/proc.h"
#include "tests/support/tmpdir.h"

#define EV 7u
#define ROWS 10u
#define SEATS_PER_ROW 20u
#define POOL_CAP 100u
#define T0_MS 1700000000000LL

/* ---- Running the binary -------------------------------------------------- */

/* A run of boxoffice-replay: exit code, stdout and stderr (heap, NUL-terminated). */
typedef tproc_result run_out;

/* A run still going after this long is killed and fails the test. */
#define RUN_DEADLINE_MS 120000

static char g_root[256];

static void run_free(run_out *r)
{
	tproc_result_free(r);
}

/* Runs boxoffice-replay with args (NULL-terminated); fails the test when it
 * could not run, crashed (died of a signal) or hung. */
static run_out run_tool(const char *const *args)
{
	const char *bin = getenv("BOXOFFICE_REPLAY");
	cr_assert_not_null(bin, "set BOXOFFICE_REPLAY to the boxoffice-replay binary (meson does)");
	const char *argv[32];
	int n = 0;
	argv[n++] = bin;
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(n, 31);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	run_out r;
	int rc = tproc_run(argv, NULL, RUN_DEADLINE_MS, &r);
	cr_assert_eq(rc, 0, "cannot run %s: %s", bin, strerror(-rc));
	cr_assert(!r.timed_out, "boxoffice-replay still ran after %d ms: killed", RUN_DEADLINE_MS);
	cr_assert_neq(r.code, 127, "could not exec %s: %s", bin, r.err);
	cr_assert_lt(r.code, 128, "boxoffice-replay crashed (signal %d); stderr: %s", r.code - 128,
	             r.err);
	return r;
}

#define RUN(...) run_tool((const char *const[]){__VA_ARGS__, NULL})

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- JSON output ----------------------------------------------------------
 * Validated by tests/support/json_check (RFC 8259, no extensions). */

/* The unsigned number after the first "key": at or after `from`. */
static uint64_t json_u64(const char *from, const char *key)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(from, pat);
	cr_assert_not_null(p, "no %s in %s", pat, from);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* The string after the first "key": at or after `from` (no escapes in it). */
static void json_str_at(const char *from, const char *key, char *out, size_t len)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(from, pat);
	cr_assert_not_null(p, "no %s in %s", pat, from);
	p += strlen(pat);
	size_t n = strcspn(p, "\"\\");
	cr_assert_eq(p[n], '"', "escapes in %s", p);
	cr_assert_lt(n, len);
	memcpy(out, p, n);
	out[n] = '\0';
}

/* ---- Writing a real journal ---------------------------------------------- */

static _Atomic int64_t g_clock_ms;

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&g_clock_ms);
}

typedef struct written {
	uint64_t records;  /* last durable seq */
	uint64_t commands; /* journaled commands */
	uint64_t ticks;
	uint64_t by_op[BO_OP_COUNT];
	uint64_t by_status[BO_STATUS_COUNT];
} written;

typedef struct writer {
	shard *s;
	uint64_t tag;
	uint64_t req;
	uint64_t last_tick_seq;
	written w;
} writer;

static bo_seatmap *make_map(void)
{
	bo_seatmap *m = bo_seatmap_new(ROWS, ROWS * SEATS_PER_ROW, 1);
	cr_assert_not_null(m);
	m->category_count = 2;
	for (uint32_t r = 0; r < ROWS; r++) {
		m->rows[r].section = (uint16_t)(r / 5);
		m->rows[r].seats = SEATS_PER_ROW;
	}
	for (uint32_t i = 0; i < ROWS * SEATS_PER_ROW; i++)
		m->categories[i] = i < ROWS * SEATS_PER_ROW / 2 ? 0 : 1;
	m->pool_capacity[0] = POOL_CAP;
	cr_assert_eq(bo_seatmap_check(m), BO_D_NONE);
	return m;
}

/* Submits one command, waits for its result (published once durable),
 * counting expiries' tick records on the way. */
static bo_result submit(writer *wr, bo_cmd *c)
{
	uint64_t tag = ++wr->tag;
	int64_t deadline = time(NULL) + 20;
	while (shard_submit(wr->s, c, &tag, 1) == -EBUSY)
		cr_assert_lt(time(NULL), deadline, "input ring stays full");
	ring *out = shard_output(wr->s);
	for (;;) {
		cr_assert_null(shard_failed(wr->s), "%s", shard_failed(wr->s));
		cr_assert_lt(time(NULL), deadline, "no result for tag %" PRIu64, tag);
		uint64_t first;
		uint32_t n = ring_poll(out, 1, &first);
		if (n == 0) {
			ring_wait(out, 10 * 1000 * 1000);
			continue;
		}
		shard_out o = *(const shard_out *)ring_slot(out, first);
		ring_release(out, 1);
		if (o.kind == SHARD_OUT_EXPIRY) {
			if (o.seq != wr->last_tick_seq) {
				wr->last_tick_seq = o.seq;
				wr->w.ticks++;
			}
			continue;
		}
		cr_assert_eq(o.tag, tag);
		if (o.seq != 0) {
			wr->w.commands++;
			wr->w.by_op[o.u.result.op]++;
			wr->w.by_status[o.u.result.status]++;
		}
		return o.u.result;
	}
}

static bo_cmd cmd_new(writer *wr, int op, uint64_t client)
{
	bo_cmd c;
	memset(&c, 0, sizeof c);
	c.op = (uint8_t)op;
	c.client_id = client;
	c.request_id = ++wr->req;
	c.event_id = EV;
	return c;
}

/* Writes a journal of about `rounds` * 5 commands into g_root/shard-NNNN.
 * Returns 0, or -1 when io_uring is refused (the caller skips). */
static int write_journal(uint32_t shard_id, uint32_t rounds, written *out)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.id = shard_id;
	cfg.data_dir = g_root;
	cfg.snapshot_every = 0;
	cfg.clock = fake_clock;
	/* Small segments: the journal spans several files, so file names and
	 * segment boundaries are exercised. */
	cfg.journal.payload_bytes_max = 16 * 1024;
	cfg.journal.buffer_bytes = 32 * 1024;
	cfg.journal.segment_bytes = 64 * 1024;
	atomic_store(&g_clock_ms, T0_MS);
	writer wr;
	memset(&wr, 0, sizeof wr);
	char err[1024];
	shard_recovery rec;
	int rc = shard_open(&cfg, &wr.s, &rec, err, sizeof err);
	if (rc == -ENOSYS || rc == -EPERM)
		return -1;
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	cr_assert_eq(shard_start(wr.s), 0);

	bo_seatmap *map = make_map();
	bo_cmd c = cmd_new(&wr, BO_OP_CREATE_EVENT, 1);
	c.map = map;
	cr_assert_eq(submit(&wr, &c).status, BO_OK);
	bo_seatmap_free(map);

	unsigned seed = 12345;
	for (uint32_t i = 0; i < rounds; i++) {
		uint64_t client = 10 + i % 7;
		/* Time moves 400 ms per round: 2 s holds expire a few rounds on. */
		atomic_fetch_add(&g_clock_ms, 400);
		bo_cmd h = cmd_new(&wr, BO_OP_HOLD_BEST, client);
		h.category = (uint8_t)(i % 2);
		h.quantity = (uint16_t)(1 + i % 4);
		h.ttl_ms = 2000;
		bo_result hr = submit(&wr, &h);
		if (i % 3 == 0 && hr.status == BO_OK) {
			bo_cmd x = cmd_new(&wr, BO_OP_EXTEND, client);
			x.claim_id = hr.claim_id;
			x.ttl_ms = 5000;
			submit(&wr, &x);
			bo_cmd cf = cmd_new(&wr, BO_OP_CONFIRM, client);
			cf.claim_id = hr.claim_id;
			cf.payref_len = 9;
			memcpy(cf.payref, "pay\"\\\x01\xc3\xa9x", 9); /* needs JSON escaping */
			bo_result cr = submit(&wr, &cf);
			if (i % 2 == 0 && cr.status == BO_OK) {
				bo_cmd cc = cmd_new(&wr, BO_OP_CANCEL, client);
				cc.claim_id = hr.claim_id;
				submit(&wr, &cc);
			}
		} else if (i % 3 == 1 && hr.status == BO_OK) {
			bo_cmd rl = cmd_new(&wr, BO_OP_RELEASE, client);
			rl.claim_id = hr.claim_id;
			submit(&wr, &rl);
		} /* else: left to expire (ticks) */
		bo_cmd hs = cmd_new(&wr, BO_OP_HOLD_SEATS, client);
		hs.seat_count = 2;
		hs.seats[0] = (uint32_t)(rand_r(&seed) % (ROWS * SEATS_PER_ROW));
		hs.seats[1] = (hs.seats[0] + 1) % (ROWS * SEATS_PER_ROW);
		hs.ttl_ms = 1000;
		submit(&wr, &hs);
		bo_cmd hp = cmd_new(&wr, BO_OP_HOLD_POOL, client);
		hp.quantity = (uint16_t)(1 + i % 5);
		hp.ttl_ms = 3000;
		submit(&wr, &hp);
		if (i % 10 == 0) {
			bo_cmd b = cmd_new(&wr, BO_OP_BLOCK, 2);
			b.seat_count = 1;
			b.seats[0] = (uint32_t)(rand_r(&seed) % (ROWS * SEATS_PER_ROW));
			bo_result br = submit(&wr, &b);
			if (br.status == BO_OK) {
				bo_cmd u = cmd_new(&wr, BO_OP_UNBLOCK, 2);
				u.seat_count = 1;
				u.seats[0] = b.seats[0];
				submit(&wr, &u);
			}
			/* A repeat (answered from the window) and a conflict. */
			submit(&wr, &hp);
			hp.quantity = (uint16_t)(hp.quantity + 1);
			cr_assert_eq(submit(&wr, &hp).status, BO_CONFLICT);
		}
	}
	/* Let everything left expire: one more command after a long pause,
	 * so the expiries are journaled as a tick before it. */
	atomic_fetch_add(&g_clock_ms, 10000);
	bo_cmd last = cmd_new(&wr, BO_OP_HOLD_POOL, 99);
	last.quantity = 1;
	last.ttl_ms = 30000;
	submit(&wr, &last);
	shard_stop(wr.s);
	/* Drain whatever came after the last result (nothing is expected). */
	uint64_t first;
	uint32_t n;
	while ((n = ring_poll(shard_output(wr.s), 64, &first)) > 0)
		ring_release(shard_output(wr.s), n);
	wr.w.records = shard_durable_seq(wr.s);
	shard_free(wr.s);
	cr_assert_gt(wr.w.ticks, 0, "the test must journal ticks");
	cr_assert_eq(wr.w.records, wr.w.commands + wr.w.ticks,
	             "every journaled record is a command or a tick: %" PRIu64 " != %" PRIu64
	             " + %" PRIu64,
	             wr.w.records, wr.w.commands, wr.w.ticks);
	*out = wr.w;
	return 0;
}

static void make_root(void)
{
	int rc = tmpdir_make(g_root, sizeof g_root, "replay_test");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
}

static void remove_root(void)
{
	if (getenv("REPLAY_TEST_KEEP")) {
		cr_log_info("kept %s (REPLAY_TEST_KEEP)", g_root);
		return;
	}
	if (tmpdir_remove(g_root) != 0)
		cr_log_warn("could not remove %s", g_root);
}

static int segments_in(const char *dir)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.seg$' > '%s.count'", dir, g_root);
	cr_assert_eq(system(cmd), 0);
	char path[300];
	snprintf(path, sizeof path, "%s.count", g_root);
	char *s = tproc_read_file(path, NULL);
	cr_assert_not_null(s, "%s: %s", path, strerror(errno));
	int n = atoi(s);
	free(s);
	unlink(path);
	return n;
}

/* The first seq of the newest segment of dir (from its file name). */
static uint64_t last_segment_first_seq(const char *dir)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	uint64_t best = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n == 24 && strcmp(de->d_name + 20, ".seg") == 0) {
			uint64_t v = strtoull(de->d_name, NULL, 10);
			best = v > best ? v : best;
		}
	}
	closedir(d);
	return best;
}

#define WRITE_OR_SKIP(w)                                                                        \
	do {                                                                                    \
		make_root();                                                                    \
		if (write_journal(0, 150, (w)) != 0) {                                          \
			remove_root();                                                          \
			cr_skip_test("io_uring refused by the kernel: cannot write a journal"); \
		}                                                                               \
	} while (0)

/* ---- Tests ----------------------------------------------------------------- */

Test(replay, verify_dump_stats_agree_with_what_the_shard_wrote)
{
	written w;
	WRITE_OR_SKIP(&w);
	char shard_dir[300];
	snprintf(shard_dir, sizeof shard_dir, "%s/shard-0000", g_root);
	cr_assert_geq(segments_in(shard_dir), 2, "small segments: the journal spans several files");

	run_out r = RUN("verify", g_root);
	cr_assert_eq(r.code, 0, "verify: %s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "OK"), "%s", r.out);
	run_free(&r);

	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(tjson_valid(r.out, r.out_len), "verify --json is not JSON: %s", r.out);
	cr_assert_not_null(strstr(r.out, "\"ok\":true"));
	cr_assert_eq(json_u64(r.out, "records"), w.records);
	cr_assert_eq(json_u64(r.out, "commands"), w.commands);
	cr_assert_eq(json_u64(r.out, "ticks"), w.ticks);
	run_free(&r);

	/* dump: one line per record, in seq order. */
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), w.records, "%zu lines for %" PRIu64 " records",
	             count_lines(r.out), w.records);
	const char *line = r.out;
	for (uint64_t seq = 1; seq <= w.records; seq++) {
		char want[64];
		snprintf(want, sizeof want, "shard=0 seq=%" PRIu64 " time=", seq);
		cr_assert_eq(strncmp(line, want, strlen(want)), 0, "line %" PRIu64 ": %.80s", seq,
		             line);
		line = strchr(line, '\n') + 1;
	}
	cr_assert_not_null(strstr(r.out, "kind=command op=create_event client=1"));
	cr_assert_not_null(strstr(r.out, "kind=tick"));
	cr_assert_not_null(strstr(r.out, "2023-11-14T22:13:20.000Z"), "ISO UTC time of T0");
	run_free(&r);

	/* dump --json: every line is a JSON object with the right seq. */
	r = RUN("dump", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), w.records);
	line = r.out;
	uint64_t payrefs = 0;
	for (uint64_t seq = 1; seq <= w.records; seq++) {
		const char *nl = strchr(line, '\n');
		cr_assert(tjson_valid(line, (size_t)(nl - line)), "not JSON: %.*s", (int)(nl - line),
		          line);
		char *one = strndup(line, (size_t)(nl - line));
		cr_assert_eq(json_u64(one, "seq"), seq);
		payrefs += strstr(one, "\"payref\":\"pay\\\"\\\\\\u0001\\u00c3\\u00a9x\"") != NULL;
		free(one);
		line = nl + 1;
	}
	cr_assert_eq(payrefs, w.by_op[BO_OP_CONFIRM], "every confirm's payref, escaped");
	run_free(&r);

	/* Filters. */
	r = RUN("dump", g_root, "--from", "10", "--to", "20");
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), 11);
	cr_assert_eq(strncmp(r.out, "shard=0 seq=10 ", 15), 0);
	run_free(&r);
	r = RUN("dump", g_root, "--event", "7");
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), w.commands, "--event 7: every command, no tick");
	run_free(&r);
	r = RUN("dump", g_root, "--event", "8");
	cr_assert_eq(r.code, 0);
	cr_assert_eq(r.out_len, 0);
	run_free(&r);

	/* stats --json: the counts the shard produced. */
	r = RUN("stats", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(tjson_valid(r.out, r.out_len), "stats --json is not JSON: %s", r.out);
	cr_assert_eq(json_u64(r.out, "records"), w.records);
	cr_assert_eq(json_u64(r.out, "commands"), w.commands);
	cr_assert_eq(json_u64(r.out, "ticks"), w.ticks);
	cr_assert_eq(json_u64(r.out, "last_seq"), w.records);
	for (int op = 1; op < BO_OP_COUNT; op++) {
		if (!bo_op_mutates(op))
			continue;
		cr_assert_eq(json_u64(r.out, bo_op_str(op)), w.by_op[op], "by_op %s",
		             bo_op_str(op));
	}
	const char *bs = strstr(r.out, "\"by_status\"");
	cr_assert_not_null(bs);
	for (int st = 0; st < BO_STATUS_COUNT; st++)
		cr_assert_eq(json_u64(bs, bo_status_str(st)), w.by_status[st], "by_status %s",
		             bo_status_str(st));
	cr_assert_geq(json_u64(r.out, "segments"), 2);
	cr_assert_gt(json_u64(r.out, "payload_bytes"), 0);
	cr_assert_eq(json_u64(r.out, "first_ts_ms"), (uint64_t)T0_MS);
	run_free(&r);

	/* The seq range printed is the journal's first and last record. */
	char want[128];
	snprintf(want, sizeof want, "  records          %" PRIu64 " (seq 1..%" PRIu64 ")\n",
	         w.records, w.records);
	r = RUN("stats", g_root);
	cr_assert_eq(r.code, 0);
	cr_assert_not_null(strstr(r.out, want), "want %s in %s", want, r.out);
	run_free(&r);
	remove_root();
}

Test(replay, snapshots_are_built_and_really_compared)
{
	written w;
	WRITE_OR_SKIP(&w);
	char shard_dir[300], snap_end[400], snap_mid[400];
	snprintf(shard_dir, sizeof shard_dir, "%s/shard-0000", g_root);
	cr_assert_eq(snapfile_path(snap_end, sizeof snap_end, shard_dir, w.records), 0);
	/* Past the start of the newest segment, so pruning to it removes the
	 * older ones. */
	uint64_t mid = last_segment_first_seq(shard_dir) + 2;
	cr_assert_gt(mid, 3);
	cr_assert_lt(mid + 1, w.records);
	cr_assert_eq(snapfile_path(snap_mid, sizeof snap_mid, shard_dir, mid), 0);

	run_out r = RUN("snapshot", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, snap_end), "prints the path: %s", r.out);
	cr_assert_eq(access(snap_end, R_OK), 0);
	run_free(&r);
	char at[32];
	snprintf(at, sizeof at, "%" PRIu64, mid);
	r = RUN("snapshot", g_root, "--at", at, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert(tjson_valid(r.out, r.out_len), "%s", r.out);
	cr_assert_eq(json_u64(r.out, "seq"), mid);
	cr_assert_eq(access(snap_mid, R_OK), 0);
	run_free(&r);

	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
	cr_assert_eq(json_u64(r.out, "snapshots_checked"), 2, "%s", r.out);
	run_free(&r);

	/* A snapshot beyond the end of the journal is a loss of records. */
	snprintf(at, sizeof at, "%" PRIu64, w.records + 1);
	r = RUN("snapshot", g_root, "--at", at);
	cr_assert_eq(r.code, 1, "--at beyond the end: %s", r.err);
	run_free(&r);

	/* Pruned journal: verify starts from the snapshot and says so. */
	char err[1024];
	int removed = journal_prune(g_root, 0, mid, err, sizeof err);
	cr_assert_gt(removed, 0, "prune: %s", err);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "pruned"), "%s", r.out);
	run_free(&r);
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_lt(count_lines(r.out), w.records);
	run_free(&r);
	/* stats of the pruned journal: its range starts at the first record left. */
	uint64_t first_seg = last_segment_first_seq(shard_dir);
	r = RUN("stats", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_eq(json_u64(r.out, "first_seq"), first_seg, "%s", r.out);
	cr_assert_eq(json_u64(r.out, "last_seq"), w.records);
	cr_assert_eq(json_u64(r.out, "records"), w.records - first_seg + 1);
	run_free(&r);
	char range[96];
	snprintf(range, sizeof range, "(seq %" PRIu64 "..%" PRIu64 ")\n", first_seg, w.records);
	r = RUN("stats", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, range), "want %s in %s", range, r.out);
	run_free(&r);

	/* A snapshot of another state at a seq the rebuild passes: an engine
	 * with only the event, saved as seq mid + 1 with that record's time. */
	engine *e;
	engine_config ec;
	engine_config_default(&ec);
	cr_assert_eq(engine_new(&ec, &e), 0);
	bo_seatmap *map = make_map();
	bo_cmd c;
	memset(&c, 0, sizeof c);
	c.op = BO_OP_CREATE_EVENT;
	c.client_id = 1;
	c.request_id = 1;
	c.event_id = EV;
	c.map = map;
	bo_result res;
	engine_advance(e, T0_MS, NULL, NULL);
	engine_apply(e, &c, &res);
	bo_seatmap_free(map);
	r = RUN("dump", g_root, "--json", "--from", at, "--to", at);
	snprintf(at, sizeof at, "%" PRIu64, mid + 1);
	run_free(&r);
	r = RUN("dump", g_root, "--json", "--from", at, "--to", at);
	cr_assert_eq(count_lines(r.out), 1);
	int64_t ts = (int64_t)json_u64(r.out, "ts_ms");
	run_free(&r);
	engine_advance(e, ts, NULL, NULL);
	cr_assert_eq(snapfile_save(e, shard_dir, 0, mid + 1, ts, err, sizeof err), 0, "%s", err);
	engine_free(e);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "a wrong snapshot must fail verify: %s", r.out);
	cr_assert_not_null(strstr(r.out, "\"kind\":\"snapshot_mismatch\""), "%s", r.out);
	cr_assert_eq(json_u64(strstr(r.out, "snapshot_mismatch"), "seq"), mid + 1);
	run_free(&r);

	/* Without any snapshot covering the pruned head there is no base. */
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -f '%s'/snap-*.snap", shard_dir);
	cr_assert_eq(system(cmd), 0);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.out, "\"kind\":\"pruned\""), "%s", r.out);
	run_free(&r);
	remove_root();
}

/* Reads the `file`, `offset` and `payload_bytes` of record seq from dump --json. */
static void record_location(uint64_t seq, char *file, size_t file_len, uint64_t *offset,
                            uint32_t *payload)
{
	char s[32];
	snprintf(s, sizeof s, "%" PRIu64, seq);
	run_out r = RUN("dump", g_root, "--json", "--from", s, "--to", s);
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), 1);
	const char *f = strstr(r.out, "\"file\":\"");
	cr_assert_not_null(f);
	f += 8;
	const char *q = strchr(f, '"');
	cr_assert_lt((size_t)(q - f), file_len);
	memcpy(file, f, (size_t)(q - f));
	file[q - f] = '\0';
	*offset = json_u64(r.out, "offset");
	*payload = (uint32_t)json_u64(r.out, "payload_bytes");
	run_free(&r);
}

Test(replay, corruption_is_found_and_repair_cuts_it)
{
	written w;
	WRITE_OR_SKIP(&w);
	/* A snapshot past the damage: repair must move it away. */
	run_out r = RUN("snapshot", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);

	uint64_t bad = w.records / 2;
	char file[512];
	uint64_t off;
	uint32_t payload;
	record_location(bad, file, sizeof file, &off, &payload);
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t b;
	off_t at = (off_t)(off + 48 + payload / 2);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);

	char want_seq[64], want_off[64];
	snprintf(want_seq, sizeof want_seq, "seq %" PRIu64, bad);
	snprintf(want_off, sizeof want_off, "offset %" PRIu64, off);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 1, "verify must fail: %s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "corruption"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, file), "names the file: %s", r.out);
	cr_assert_not_null(strstr(r.out, want_off), "names the offset %s: %s", want_off, r.out);
	cr_assert_not_null(strstr(r.out, want_seq), "names the seq: %s", r.out);
	cr_assert_not_null(strstr(r.err, file), "stderr names the file: %s", r.err);
	run_free(&r);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1);
	cr_assert(tjson_valid(r.out, r.out_len), "%s", r.out);
	const char *p = strstr(r.out, "\"kind\":\"corruption\"");
	cr_assert_not_null(p, "%s", r.out);
	cr_assert_eq(json_u64(p, "seq"), bad);
	cr_assert_eq(json_u64(p, "offset"), off);
	run_free(&r);

	/* dump prints what comes before the damage, then fails. */
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 1);
	cr_assert_eq(count_lines(r.out), bad - 1);
	run_free(&r);

	/* repair refuses without --truncate-at (and without --shard). */
	r = RUN("repair", g_root, "--shard", "0");
	cr_assert_eq(r.code, 2);
	run_free(&r);
	r = RUN("repair", g_root, "--truncate-at", "5");
	cr_assert_eq(r.code, 2);
	run_free(&r);

	char seq_s[32];
	snprintf(seq_s, sizeof seq_s, "%" PRIu64, bad);
	r = RUN("repair", g_root, "--shard", "0", "--truncate-at", seq_s);
	cr_assert_eq(r.code, 0, "repair: %s%s", r.out, r.err);
	const char *bk = strstr(r.out, "backup of what was cut: ");
	cr_assert_not_null(bk, "%s", r.out);
	bk += strlen("backup of what was cut: ");
	char backup[512];
	size_t bl = strcspn(bk, "\n");
	memcpy(backup, bk, bl);
	backup[bl] = '\0';
	run_free(&r);
	cr_assert_eq(segments_in(backup) > 0 || access(backup, F_OK) == 0, 1);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "test -n \"$(ls -A '%s')\"", backup);
	cr_assert_eq(system(cmd), 0, "the backup %s holds what was cut", backup);
	snprintf(cmd, sizeof cmd, "ls '%s'/snap-*.snap >/dev/null 2>&1", backup);
	cr_assert_eq(system(cmd), 0, "the snapshot of a cut seq moved into the backup");

	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 0, "after repair: %s%s", r.out, r.err);
	cr_assert_eq(json_u64(r.out, "last_seq"), bad - 1);
	run_free(&r);
	remove_root();
}

static void flip_byte(const char *path, uint64_t at)
{
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "open %s", path);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
}

/* verify --json's first problem of `kind`: its file, offset and seq. */
static void problem_at(const run_out *r, const char *kind, char *file, size_t file_len,
                       uint64_t *offset, uint64_t *seq)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"kind\":\"%s\"", kind);
	cr_assert(tjson_valid(r->out, r->out_len), "%s", r->out);
	const char *p = strstr(r->out, pat);
	cr_assert_not_null(p, "no %s problem: %s", kind, r->out);
	json_str_at(p, "file", file, file_len);
	*seq = json_u64(p, "seq");
	if (offset)
		*offset = json_u64(p, "offset");
}

/* The file, offset and seq of a problem are where the reader stopped
 * (journal_reader_error_at), not the segment of the last good record: the
 * damage is put at the start of the newest segment, where the two differ. */
Test(replay, problems_name_the_damaged_segment_offset_and_seq)
{
	written w;
	WRITE_OR_SKIP(&w);
	char shard_dir[300];
	snprintf(shard_dir, sizeof shard_dir, "%s/shard-0000", g_root);
	uint64_t first = last_segment_first_seq(shard_dir);
	cr_assert_gt(first, 1);
	cr_assert_lt(first + 1, w.records, "valid records must follow the damage");
	char file[512], prev[512], got[512];
	uint64_t off, prev_off, got_off, got_seq;
	uint32_t payload, prev_payload;
	record_location(first, file, sizeof file, &off, &payload);
	record_location(first - 1, prev, sizeof prev, &prev_off, &prev_payload);
	cr_assert_str_neq(file, prev, "seq %" PRIu64 " opens a segment", first);

	/* A record: its own file and offset. */
	flip_byte(file, off + 48 + payload / 2);
	run_out r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	problem_at(&r, "corruption", got, sizeof got, &got_off, &got_seq);
	cr_assert_str_eq(got, file);
	cr_assert_eq(got_off, off);
	cr_assert_eq(got_seq, first);
	run_free(&r);
	char want[700];
	snprintf(want, sizeof want,
	         "FAILED: corruption at seq %" PRIu64 " in %s offset %" PRIu64 ": ", first, file,
	         off);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.out, want), "want %s in %s", want, r.out);
	run_free(&r);
	flip_byte(file, off + 48 + payload / 2);

	/* The segment's header: that file, offset 0. */
	flip_byte(file, 8);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	problem_at(&r, "corruption", got, sizeof got, &got_off, &got_seq);
	cr_assert_str_eq(got, file);
	cr_assert_eq(got_off, 0);
	cr_assert_eq(got_seq, first);
	run_free(&r);
	flip_byte(file, 8);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 0, "undamaged again: %s%s", r.out, r.err);
	run_free(&r);

	/* A segment that cannot be read (a directory by its name): an I/O
	 * problem (exit 3) naming it, not the segment before. */
	char moved[600];
	snprintf(moved, sizeof moved, "%s.moved", file);
	cr_assert_eq(rename(file, moved), 0);
	cr_assert_eq(mkdir(file, 0755), 0);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 3, "%s%s", r.out, r.err);
	problem_at(&r, "io", got, sizeof got, NULL, &got_seq);
	cr_assert_str_eq(got, file);
	cr_assert_eq(got_seq, first);
	run_free(&r);
	cr_assert_eq(rmdir(file), 0);
	cr_assert_eq(rename(moved, file), 0);
	remove_root();
}

Test(replay, a_torn_tail_fails_unless_allowed)
{
	written w;
	WRITE_OR_SKIP(&w);
	char file[512];
	uint64_t off;
	uint32_t payload;
	record_location(w.records, file, sizeof file, &off, &payload);
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t junk[24];
	memset(junk, 0xab, sizeof junk);
	cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)((off + 48 + payload + 7) & ~7ull)),
	             (ssize_t)sizeof junk);
	close(fd);
	run_out r = RUN("verify", g_root);
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "torn_tail"), "%s", r.out);
	run_free(&r);
	r = RUN("verify", g_root, "--allow-torn-tail");
	cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
	run_free(&r);
	remove_root();
}

Test(replay, a_result_that_does_not_reexecute_is_a_mismatch)
{
	make_root();
	journal *j;
	journal_recovery jr;
	char err[1024];
	int rc = journal_open(g_root, 0, NULL, &j, &jr, err, sizeof err);
	if (rc == -ENOSYS || rc == -EPERM) {
		remove_root();
		cr_skip_test("io_uring refused by the kernel: cannot write a journal");
	}
	cr_assert_eq(rc, 0, "%s", err);
	engine *e;
	engine_config ec;
	engine_config_default(&ec);
	cr_assert_eq(engine_new(&ec, &e), 0);
	bo_seatmap *map = make_map();
	uint8_t buf[ENTRY_SIZE_NOMAP_MAX + 4096];
	for (uint32_t i = 0; i < 5; i++) {
		bo_cmd c;
		memset(&c, 0, sizeof c);
		c.client_id = 3;
		c.request_id = i + 1;
		c.event_id = EV;
		if (i == 0) {
			c.op = BO_OP_CREATE_EVENT;
			c.map = map;
		} else {
			c.op = BO_OP_HOLD_SEATS;
			c.seat_count = 1;
			c.seats[0] = i;
			c.ttl_ms = 60000;
		}
		bo_result res;
		engine_advance(e, T0_MS + i, NULL, NULL);
		engine_apply(e, &c, &res);
		cr_assert_eq(res.status, BO_OK);
		if (i == 3) {
			/* What a non-deterministic engine would have recorded. */
			res.seats[0] = 77;
		}
		int32_t n = entry_encode_command(&c, &res, buf, sizeof buf);
		cr_assert_gt(n, 0);
		cr_assert_eq(journal_append(j, T0_MS + i, buf, (uint32_t)n, NULL), 0);
		cr_assert_eq(journal_commit(j), 0);
	}
	cr_assert_eq(journal_close(j, NULL), 0);
	bo_seatmap_free(map);
	engine_free(e);
	run_out r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	const char *p = strstr(r.out, "\"kind\":\"mismatch\"");
	cr_assert_not_null(p, "%s", r.out);
	cr_assert_eq(json_u64(p, "seq"), 4);
	run_free(&r);
	/* dump does not re-execute: it prints all five. */
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), 5);
	run_free(&r);
	remove_root();
}

/* EPOCH records (a primary's term begins, issue 13) re-execute as nothing:
 * verify passes over them (records counts them, commands and ticks do
 * not), dump prints them with their epoch. */
Test(replay, epoch_records_are_verified_and_dumped)
{
	make_root();
	journal *j;
	journal_recovery jr;
	char err[1024];
	int rc = journal_open(g_root, 0, NULL, &j, &jr, err, sizeof err);
	if (rc == -ENOSYS || rc == -EPERM) {
		remove_root();
		cr_skip_test("io_uring refused by the kernel: cannot write a journal");
	}
	cr_assert_eq(rc, 0, "%s", err);
	engine *e;
	engine_config ec;
	engine_config_default(&ec);
	cr_assert_eq(engine_new(&ec, &e), 0);
	bo_seatmap *map = make_map();
	uint8_t buf[ENTRY_SIZE_NOMAP_MAX + 4096];
	for (uint32_t i = 0; i < 4; i++) {
		int32_t n;
		if (i % 2 == 0) {
			n = entry_encode_epoch(3 + i / 2, buf, sizeof buf);
		} else {
			bo_cmd c;
			memset(&c, 0, sizeof c);
			c.client_id = 3;
			c.request_id = i + 1;
			c.event_id = EV;
			if (i == 1) {
				c.op = BO_OP_CREATE_EVENT;
				c.map = map;
			} else {
				c.op = BO_OP_HOLD_SEATS;
				c.seat_count = 1;
				c.seats[0] = 1;
				c.ttl_ms = 60000;
			}
			bo_result res;
			engine_advance(e, T0_MS + i, NULL, NULL);
			engine_apply(e, &c, &res);
			cr_assert_eq(res.status, BO_OK);
			n = entry_encode_command(&c, &res, buf, sizeof buf);
		}
		cr_assert_gt(n, 0);
		cr_assert_eq(journal_append(j, T0_MS + i, buf, (uint32_t)n, NULL), 0);
		cr_assert_eq(journal_commit(j), 0);
	}
	cr_assert_eq(journal_close(j, NULL), 0);
	bo_seatmap_free(map);
	engine_free(e);
	run_out r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
	cr_assert_eq(json_u64(r.out, "records"), 4, "%s", r.out);
	cr_assert_eq(json_u64(r.out, "commands"), 2, "%s", r.out);
	cr_assert_eq(json_u64(r.out, "ticks"), 0, "%s", r.out);
	run_free(&r);
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 4);
	cr_assert_not_null(strstr(r.out, "seq=1 "), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "kind=epoch epoch=3\n"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "kind=epoch epoch=4\n"), "%s", r.out);
	run_free(&r);
	r = RUN("dump", g_root, "--json");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, "\"kind\":\"epoch\",\"epoch\":4"), "%s", r.out);
	run_free(&r);
	remove_root();
}

/* Writes a journal of `n` records to g_root: a CREATE_EVENT, then holds.
 * Record `bad_result` (1-based seq, 0: none) carries a result the engine
 * does not give; record `garbage` (0: none) a payload that does not
 * decode. Returns 0, or -1 when io_uring is refused (the test skips). */
static int write_flawed(uint32_t n, uint32_t bad_result, uint32_t garbage)
{
	make_root();
	journal *j;
	journal_recovery jr;
	char err[1024];
	int rc = journal_open(g_root, 0, NULL, &j, &jr, err, sizeof err);
	if (rc == -ENOSYS || rc == -EPERM)
		return -1;
	cr_assert_eq(rc, 0, "%s", err);
	engine *e;
	engine_config ec;
	engine_config_default(&ec);
	cr_assert_eq(engine_new(&ec, &e), 0);
	bo_seatmap *map = make_map();
	uint8_t buf[ENTRY_SIZE_NOMAP_MAX + 4096];
	for (uint32_t i = 0; i < n; i++) {
		bo_cmd c;
		memset(&c, 0, sizeof c);
		c.client_id = 3;
		c.request_id = i + 1;
		c.event_id = EV;
		if (i == 0) {
			c.op = BO_OP_CREATE_EVENT;
			c.map = map;
		} else {
			c.op = BO_OP_HOLD_SEATS;
			c.seat_count = 1;
			c.seats[0] = i;
			c.ttl_ms = 60000;
		}
		bo_result res;
		engine_advance(e, T0_MS + i, NULL, NULL);
		engine_apply(e, &c, &res);
		cr_assert_eq(res.status, BO_OK);
		if (i + 1 == bad_result)
			res.seats[0] = 77;
		int32_t len = entry_encode_command(&c, &res, buf, sizeof buf);
		cr_assert_gt(len, 0);
		if (i + 1 == garbage) {
			memset(buf, 0xee, 16);
			len = 16;
		}
		cr_assert_eq(journal_append(j, T0_MS + i, buf, (uint32_t)len, NULL), 0);
		cr_assert_eq(journal_commit(j), 0);
	}
	cr_assert_eq(journal_close(j, NULL), 0);
	bo_seatmap_free(map);
	engine_free(e);
	return 0;
}

static uint32_t count_str(const char *s, const char *what)
{
	uint32_t n = 0;
	for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/* verify decodes each record before it applies the one before it (so the
 * engine's cache misses overlap): its findings must still be those of a
 * replay in journal order. */
Test(replay, findings_come_in_journal_order_though_verify_reads_ahead)
{
	/* A malformed record right after a mismatch: re-execution stops at
	 * the mismatch, the malformed record is never reached. */
	if (write_flawed(7, 5, 6) != 0) {
		remove_root();
		cr_skip_test("io_uring refused by the kernel: cannot write a journal");
	}
	run_out r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	cr_assert_eq(count_str(r.out, "\"kind\":"), 1, "%s", r.out);
	const char *p = strstr(r.out, "\"kind\":\"mismatch\"");
	cr_assert_not_null(p, "%s", r.out);
	cr_assert_eq(json_u64(p, "seq"), 5);
	cr_assert_eq(json_u64(r.out, "records"), 4, "%s", r.out);
	run_free(&r);
	remove_root();

	/* A malformed record: every record before it re-executed first. */
	cr_assert_eq(write_flawed(7, 0, 4), 0);
	r = RUN("verify", g_root, "--json");
	cr_assert_eq(r.code, 1, "%s%s", r.out, r.err);
	cr_assert_eq(count_str(r.out, "\"kind\":"), 1, "%s", r.out);
	p = strstr(r.out, "\"kind\":\"malformed\"");
	cr_assert_not_null(p, "%s", r.out);
	cr_assert_eq(json_u64(p, "seq"), 4);
	cr_assert_eq(json_u64(r.out, "records"), 3, "%s", r.out);
	cr_assert_eq(json_u64(r.out, "last_seq"), 3, "%s", r.out);
	run_free(&r);
	remove_root();
}

Test(replay, every_shard_of_a_data_directory_or_one)
{
	make_root();
	written w0, w3;
	if (write_journal(0, 20, &w0) != 0 || write_journal(3, 30, &w3) != 0) {
		remove_root();
		cr_skip_test("io_uring refused by the kernel: cannot write a journal");
	}
	run_out r = RUN("verify", g_root);
	cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "shard 0: OK"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "shard 3: OK"), "%s", r.out);
	run_free(&r);
	r = RUN("dump", g_root);
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), w0.records + w3.records);
	run_free(&r);
	r = RUN("dump", g_root, "--shard", "3");
	cr_assert_eq(r.code, 0);
	cr_assert_eq(count_lines(r.out), w3.records);
	cr_assert_eq(strncmp(r.out, "shard=3 seq=1 ", 14), 0);
	run_free(&r);
	r = RUN("stats", g_root, "--json");
	cr_assert_eq(r.code, 0);
	cr_assert(tjson_valid(r.out, r.out_len), "%s", r.out);
	const char *total = strstr(r.out, "\"total\"");
	cr_assert_not_null(total);
	cr_assert_eq(json_u64(total, "records"), w0.records + w3.records);
	cr_assert_eq(json_u64(total, "ticks"), w0.ticks + w3.ticks);
	run_free(&r);
	/* Human form: each shard's own seq range; the total sums shards that
	 * each number their records from 1, so it has no range (it used to
	 * print "seq 0..0"). */
	r = RUN("stats", g_root);
	cr_assert_eq(r.code, 0, "%s", r.err);
	char want[128];
	snprintf(want, sizeof want,
	         "shard 0\n  records          %" PRIu64 " (seq 1..%" PRIu64 ")\n", w0.records,
	         w0.records);
	cr_assert_not_null(strstr(r.out, want), "want %s in %s", want, r.out);
	snprintf(want, sizeof want,
	         "shard 3\n  records          %" PRIu64 " (seq 1..%" PRIu64 ")\n", w3.records,
	         w3.records);
	cr_assert_not_null(strstr(r.out, want), "want %s in %s", want, r.out);
	snprintf(want, sizeof want, "total\n  records          %" PRIu64 "\n",
	         w0.records + w3.records);
	cr_assert_not_null(strstr(r.out, want), "want %s in %s", want, r.out);
	cr_assert_null(strstr(r.out, "seq 0..0"), "%s", r.out);
	run_free(&r);
	/* One bad shard fails the whole run and is named. */
	char junk[400];
	snprintf(junk, sizeof junk, "%s/shard-0003/snap-00000000000000000002.snap", g_root);
	FILE *f = fopen(junk, "wb");
	cr_assert_not_null(f);
	fputs("not a snapshot", f);
	fclose(f);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 1);
	cr_assert_not_null(strstr(r.out, "shard 0: OK"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "shard 3: FAILED: snapshot_invalid"), "%s", r.out);
	cr_assert_not_null(strstr(r.err, junk), "%s", r.err);
	run_free(&r);
	remove_root();
}

Test(replay, bad_command_lines_and_directories)
{
	make_root();
	run_out r = RUN("--help");
	cr_assert_eq(r.code, 0);
	cr_assert_not_null(strstr(r.out, "Exit codes"));
	run_free(&r);
	const char *cmds[] = {"verify", "dump", "stats", "snapshot", "repair"};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		r = RUN(cmds[i], "--help");
		cr_assert_eq(r.code, 0, "%s --help", cmds[i]);
		cr_assert_not_null(strstr(r.out, cmds[i]));
		run_free(&r);
	}
	r = RUN("--version");
	cr_assert_eq(r.code, 0);
	cr_assert_not_null(strstr(r.out, "boxoffice-replay"));
	run_free(&r);

	/* Usage errors: 2, with one line on stderr. */
	const char *const *usage[] = {
	        (const char *const[]){"frobnicate", g_root, NULL},
	        (const char *const[]){"verify", NULL},
	        (const char *const[]){"verify", g_root, "--bogus", NULL},
	        (const char *const[]){"dump", g_root, "--from", "x", NULL},
	        (const char *const[]){"dump", g_root, "--from", "9", "--to", "3", NULL},
	        (const char *const[]){"dump", g_root, "--at", "3", NULL},
	        (const char *const[]){"verify", g_root, "other", NULL},
	        (const char *const[]){"repair", g_root, NULL},
	        (const char *const[]){"stats", g_root, "--shard", "-1", NULL},
	        /* getopt_long would take abbreviations; they are refused. */
	        (const char *const[]){"stats", g_root, "--sha", "0", NULL},
	        (const char *const[]){"dump", g_root, "--json=1", NULL},
	        (const char *const[]){"dump", g_root, "--to", NULL},
	        (const char *const[]){"verify", g_root, "--", NULL},
	};
	for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
		r = run_tool(usage[i]);
		cr_assert_eq(r.code, 2, "case %zu: %s", i, r.err);
		cr_assert_eq(count_lines(r.err), 1, "case %zu: one line: %s", i, r.err);
		run_free(&r);
	}
	r = run_tool((const char *const[]){NULL});
	cr_assert_eq(r.code, 2);
	run_free(&r);

	/* "--" makes the next argument DIR; options may still follow (the
	 * command line is fine: DIR holds no shard, an environment error). */
	r = RUN("stats", "--", g_root, "--json");
	cr_assert_eq(r.code, 3, "%s", r.err);
	run_free(&r);

	/* Environment: 3. */
	char missing[300];
	snprintf(missing, sizeof missing, "%s/nope", g_root);
	r = RUN("verify", missing);
	cr_assert_eq(r.code, 3);
	cr_assert_not_null(strstr(r.err, missing));
	run_free(&r);
	r = RUN("stats", g_root); /* exists, but holds no shard */
	cr_assert_eq(r.code, 3);
	cr_assert_not_null(strstr(r.err, "not a data directory"), "%s", r.err);
	run_free(&r);

	/* Garbage where segments belong: found, never a crash. */
	char dir[400], seg[500];
	snprintf(dir, sizeof dir, "%s/shard-0000", g_root);
	cr_assert_eq(mkdir(dir, 0755), 0);
	r = RUN("verify", g_root, "--shard", "3");
	cr_assert_eq(r.code, 3, "no such shard");
	run_free(&r);
	r = RUN("verify", g_root);
	cr_assert_eq(r.code, 0, "an empty shard directory is an empty journal: %s", r.err);
	run_free(&r);
	snprintf(seg, sizeof seg, "%s/00000000000000000001.seg", dir);
	FILE *f = fopen(seg, "wb");
	cr_assert_not_null(f);
	unsigned seed = 7;
	for (int i = 0; i < 70000; i++)
		fputc(rand_r(&seed) & 0xff, f);
	fclose(f);
	const char *sub[] = {"verify", "dump", "stats", "snapshot"};
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		r = RUN(sub[i], g_root);
		cr_assert(r.code == 1 || r.code == 3, "%s on garbage: exit %d: %s", sub[i], r.code,
		          r.err);
		cr_assert_not_null(strstr(r.err, seg), "%s names the file: %s", sub[i], r.err);
		run_free(&r);
	}
	r = RUN("snapshot", g_root);
	run_free(&r);
	char snap[500];
	snprintf(snap, sizeof snap, "%s/snap-00000000000000000005.snap", dir);
	cr_assert_neq(access(snap, F_OK), 0, "no snapshot from garbage");
	remove_root();
}
