/*
 * shard_journal_test.c — proves the DURABLE shard (shard/shard.c with
 * shard_config.data_dir set) keeps the promises of shard.h:
 *
 *  1. Durable before visible: while the journal's write of a batch is held
 *     back, not one output record of that batch (or any later one) is
 *     published; once released, every command's result comes out, in
 *     submission order, with the journal seq of its record (0 for queries).
 *  2. A journal failure (EIO on write, EIO on fdatasync, ENOSPC on write, a
 *     short write) stops the shard: shard_failed() names the failure, no
 *     output of the failed batch or of anything later is ever published
 *     as an acknowledgement: every command not yet answered, and every
 *     command submitted afterwards, is answered busy (seq 0) at once and
 *     the lost batches' expiries come out void, so no producer waits for
 *     an answer that would never come; stop/free return, and
 *     reopening recovers every acknowledged record as acknowledged, nothing
 *     of the failed write, and nothing else except records of the one batch
 *     the failure struck (a batch can span several writes and is published
 *     whole or not at all, so its head may be durable yet unacknowledged).
 *     With one write per batch that is exactly the acknowledged records and
 *     the state they make. Two more cases put the failed write where it is
 *     submitted from inside journal_append (the write buffer filled
 *     mid-batch; a segment roll-over under a pipelined load), right after
 *     the journal itself reaped an earlier write: the batches that earlier
 *     write made durable must still be acknowledged.
 *  3. A graceful stop acknowledges everything submitted, and reopening
 *     rebuilds the same state (engine_digest) at the same last seq.
 *  4. Snapshots: taken every snapshot_every records, journal segments they
 *     cover are pruned, reopening starts from the newest snapshot; a corrupt
 *     snapshot is skipped with a warning naming it, and when pruning removed
 *     what an older snapshot would need, shard_open refuses instead of
 *     loading wrong state.
 *  4b. Snapshot work stays off the writer thread: no prune, rename or fsync
 *     is ever called on it, and nothing forks (checked through --wrap'ed
 *     functions); a snapshot is renamed into place (made official) only
 *     once the journal is durable through its seq; a prune goes only up to
 *     a snapshot that was renamed into place, with the directory fsynced
 *     after the rename, and is durable; and a prune held back does not stop
 *     the writer from answering.
 *  5. An idle tick that expires a hold is journaled (an EXPIRY output with
 *     the tick record's seq) and the expiry survives a restart.
 *  6. A corrupt record with good records after it is refused on open
 *     (-EBADMSG naming file, offset and seq); force_truncate opens.
 *  7. A CREATE_EVENT whose map could not fit a journal record (1 Mi seats
 *     of alternating categories) is answered INVALID/MAP_INVALID and the
 *     shard goes on answering durably; the largest valid map is journaled
 *     whole, and the journal replays and recovers to the same state.
 *
 * How: real shards on real journals (io_uring, fdatasync) in mkdtemp
 * directories under /tmp, driven from the test thread. The journal's fault
 * hook (journal_options.fault) holds back or fails chosen I/Os. Time is a
 * fake clock (shard_config.clock) that stays put unless a test moves it, so
 * idle ticks change nothing and every record of a run carries the same
 * timestamp (which makes the engine's clock part of the compared state
 * without racing); the failure tests use one that moves 1 ms per reading
 * instead, so each batch's records carry their own timestamp. Acknowledgements are the RESULT records the test drains
 * from the output ring; "what the journal holds" is read back with a
 * journal_reader and decoded with entry_decode; expected states are built by
 * a fresh engine, either replaying the journal (replay_apply) or applying
 * the acknowledged commands directly, and compared by engine_digest.
 *
 * Where the kernel refuses io_uring the tests skip loudly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "base/clock.h"
#include "shard/shard.h"
#include "shard/entry.h"
#include "shard/snapfile.h"
#include "journal/journal.h"
#include "shard/apply.h"
#include "tests/support/cmd.h"
#include "tests/support/descmap.h"
#include "tests/support/tmpdir.h"

/* ---- Constants ----------------------------------------------------------- */

#define EV 7u /* the one event every test uses */
#define ROWS 4u
#define SEATS_PER_ROW 64u
#define SEATS (ROWS * SEATS_PER_ROW)
#define HALF (SEATS / 2) /* seats [0, HALF) blocked/unblocked, [HALF, SEATS) held */
#define CREATE_CLIENT 1u
#define BLOCK_CLIENT 100u
#define HOLD_CLIENT_BASE 5000u
#define LONG_TTL_MS 600000u   /* holds of the load never expire: the clock is fake */
#define T0_MS 1700000000000ll /* the fake clock's start */
#define CMDS_MAX 4096u        /* commands per test run (tags 0 .. CMDS_MAX-1) */
#define OUT_MAX (2u * CMDS_MAX)
#define WAIT_MS 10000 /* longest wait for anything before a test fails */
#define DIGEST_FMT "%016" PRIx64

/* ---- Small helpers ------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The fake clock. Relaxed: a lone value the writer reads per batch; it
 * orders nothing else (the tests wait for outputs, which the rings order). */
static _Atomic int64_t fake_now_ms = T0_MS;

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load_explicit(&fake_now_ms, memory_order_relaxed);
}

/* A clock that moves 1 ms per reading: every batch (and tick) gets its own
 * timestamp, so journal records show which batch wrote them. Relaxed, as
 * above. Holds of the load live far longer than such a test runs. */
static int64_t counting_clock(void *ctx)
{
	(void)ctx;
	return atomic_fetch_add_explicit(&fake_now_ms, 1, memory_order_relaxed);
}

/* The data directory of the running test, removed by the fixture. */
static char data_root[64];

/* What a test holds, freed by the fixture when an assertion cut it short
 * (so sanitizer leak reports stay about the code under test). */
#define TRACKED_MAX 8
static shard *tracked_shards[TRACKED_MAX];
static struct run *tracked_runs[TRACKED_MAX];

static void track(void **slots, void *p)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (slots[i] == NULL) {
			slots[i] = p;
			return;
		}
	cr_assert_fail("more than %d tracked objects", TRACKED_MAX);
}

static void untrack(void **slots, void *p)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (slots[i] == p)
			slots[i] = NULL;
}

static void run_free(struct run *r);

static void setup(void)
{
	atomic_store_explicit(&fake_now_ms, T0_MS, memory_order_relaxed);
	int rc = tmpdir_make(data_root, sizeof(data_root), "bo-shard-journal");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
}

static void teardown(void)
{
	for (int i = 0; i < TRACKED_MAX; i++) {
		shard_free(tracked_shards[i]);
		tracked_shards[i] = NULL;
	}
	for (int i = 0; i < TRACKED_MAX; i++) {
		if (tracked_runs[i])
			run_free(tracked_runs[i]);
		tracked_runs[i] = NULL;
	}
	if (data_root[0])
		tmpdir_remove(data_root);
	data_root[0] = '\0';
}

TestSuite(shard_journal, .init = setup, .fini = teardown, .timeout = 60);

static void shard_dir(char *buf, size_t len)
{
	snprintf(buf, len, "%s/shard-0000", data_root);
}

/* Small tables and rings, a 1 MiB segment: fast to open, quick to fill. */
static shard_config durable_config(void)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 16;
	cfg.engine.claims_max = 4096;
	cfg.engine.idem_capacity = 1u << 15;
	cfg.engine.events_max = 16;
	cfg.in_slots = BO_BATCH_MAX;
	cfg.out_slots = 2 * BO_BATCH_MAX;
	cfg.tick_ms = 2;
	cfg.clock = fake_clock;
	cfg.data_dir = data_root;
	cfg.journal.segment_bytes = 1u << 20;
	cfg.journal.buffer_bytes = 256u << 10;
	cfg.journal.payload_bytes_max = 64u << 10;
	return cfg;
}

/* shard_open that skips loudly when io_uring is refused and fails on any
 * other error. */
static shard *open_ok(const shard_config *cfg, shard_recovery *rec)
{
	shard *s = NULL;
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(cfg, &s, rec, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring refused by the kernel (%s): durable shard untested here",
		             err);
	cr_assert_eq(rc, 0, "shard_open: %d (%s): %s", rc, strerror(-rc), err);
	cr_assert_not_null(s);
	track((void **)tracked_shards, s);
	return s;
}

static void close_shard(shard *s)
{
	untrack((void **)tracked_shards, s);
	shard_free(s);
}

/* Runs shard_open with stderr captured into `log` (the shard reports
 * skipped snapshots there). Returns shard_open's result. */
static int open_capturing(const shard_config *cfg, shard **s, shard_recovery *rec, char *err,
                          size_t errlen, char *log, size_t loglen)
{
	char path[] = "/tmp/bo-shard-journal-stderr-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	fflush(stderr);
	int saved = dup(2);
	cr_assert_geq(saved, 0);
	dup2(fd, 2);
	int rc = shard_open(cfg, s, rec, err, errlen);
	if (rc == 0)
		track((void **)tracked_shards, *s);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, log, loglen - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	fputs(log, stderr); /* keep the shard's messages visible in the test log */
	return rc;
}

/* ---- Commands ------------------------------------------------------------ */

static bo_seatmap *new_map(void)
{
	return tcmd_rows_map(ROWS, SEATS_PER_ROW, 1, 100);
}

static bo_cmd create_cmd(const bo_seatmap *m)
{
	return tcmd_create(CREATE_CLIENT, 1, EV, m);
}

static bo_cmd query_cmd(void)
{
	return tcmd_query_avail(EV);
}

static bo_cmd hold_cmd(uint64_t client, uint32_t seat, uint32_t ttl_ms)
{
	return tcmd_hold_seats(client, 1, EV, &seat, 1, ttl_ms);
}

/* Load command k (tag k + 1): BLOCK seat s, HOLD another seat, UNBLOCK s,
 * QUERY — so three of four are journaled, each BLOCK/UNBLOCK succeeds only
 * if applied in order, and holds make claims and expiry-heap state. */
static bo_cmd load_cmd(uint32_t k)
{
	uint32_t s = (k / 4) % HALF;
	switch (k % 4) {
	case 1:
		return hold_cmd(HOLD_CLIENT_BASE + k, HALF + s, LONG_TTL_MS);
	case 3:
		return query_cmd();
	default:
		return tcmd_seats(k % 4 == 0 ? BO_OP_BLOCK : BO_OP_UNBLOCK, BLOCK_CLIENT,
		                  (uint64_t)k + 1, EV, &s, 1);
	}
}

/* ---- A run: what was submitted and what came out ------------------------- */

struct run {
	shard *s;
	bo_seatmap *map;
	bo_cmd cmds[CMDS_MAX]; /* by tag */
	uint32_t submitted;    /* tags 0 .. submitted-1 were submitted */
	shard_out outs[OUT_MAX];
	uint32_t nout;      /* records drained */
	uint32_t results;   /* RESULT records among them */
	bool other_drainer; /* another thread drains: submit() must not */
};
typedef struct run run;

static run *run_new(void)
{
	run *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	r->map = new_map();
	track((void **)tracked_runs, r);
	return r;
}

static void run_free(run *r)
{
	untrack((void **)tracked_runs, r);
	bo_seatmap_free(r->map);
	free(r);
}

/* Moves every published output record into r->outs. Returns how many. */
static uint32_t drain(run *r)
{
	ring *o = shard_output(r->s);
	uint32_t got = 0;
	for (;;) {
		uint64_t first;
		uint32_t k = ring_poll(o, 256, &first);
		if (k == 0)
			return got;
		for (uint32_t i = 0; i < k; i++) {
			cr_assert_lt(r->nout, OUT_MAX, "more output than the test can hold");
			shard_out *x = &r->outs[r->nout++];
			*x = *(const shard_out *)ring_slot(o, first + i);
			if (x->kind == SHARD_OUT_RESULT)
				r->results++;
		}
		ring_release(o, k);
		got += k;
	}
}

/* Drains until `want` results came, the shard failed, or WAIT_MS passed.
 * Returns true when they came. */
static bool wait_results(run *r, uint32_t want)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (r->results < want) {
		if (drain(r) > 0)
			continue;
		if (shard_failed(r->s) || bo_clock_ms() > deadline)
			return false;
		ring_wait(shard_output(r->s), 1000000);
	}
	return true;
}

/* Submits cmds (tags from r->submitted on) as one shard_submit. */
static void submit(run *r, const bo_cmd *cmds, uint32_t n)
{
	cr_assert_leq(r->submitted + n, CMDS_MAX);
	uint64_t tags[64];
	cr_assert_leq(n, 64u);
	for (uint32_t i = 0; i < n; i++) {
		tags[i] = r->submitted + i;
		r->cmds[r->submitted + i] = cmds[i];
	}
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	int rc;
	while ((rc = shard_submit(r->s, cmds, tags, n)) == -EBUSY && bo_clock_ms() < deadline) {
		if (r->other_drainer)
			sleep_ms(1);
		else
			drain(r);
	}
	cr_assert_eq(rc, 0, "shard_submit: %d", rc);
	r->submitted += n;
}

/* Submits load commands k0 .. k0+n-1. */
static void submit_load(run *r, uint32_t k0, uint32_t n)
{
	bo_cmd c[64];
	for (uint32_t i = 0; i < n; i++)
		c[i] = load_cmd(k0 + i);
	submit(r, c, n);
}

static void submit_create(run *r)
{
	bo_cmd c = create_cmd(r->map);
	submit(r, &c, 1);
}

/* The sequential load: `groups` groups of `per` commands, each submitted
 * after the previous one's results came (so each is one batch, usually one
 * journal write). Stops early if the shard fails. */
static void sequential_load(run *r, uint32_t groups, uint32_t per)
{
	for (uint32_t g = 0; g < groups && !shard_failed(r->s); g++) {
		submit_load(r, r->submitted - 1, per);
		if (!wait_results(r, r->submitted))
			return;
	}
}

/* Checks the drained outputs: RESULTs in submission order (a prefix of the
 * tags), journaled ones with seqs 1, 2, ... in order and queries with 0,
 * batch numbers and times not going back. After a journal failure, the
 * failed shard's answers: busy with seq 0 (never an acknowledgement after
 * the first of them), void slots (the lost batches' records). Returns the
 * number of results acknowledged (busy answers not counted). */
static uint32_t check_outputs(const run *r, uint64_t *seq_last_out)
{
	uint32_t next_tag = 0, acked = 0;
	uint64_t seq = 0, batch = 0;
	int64_t now = 0;
	bool busy_seen = false;
	for (uint32_t i = 0; i < r->nout; i++) {
		const shard_out *o = &r->outs[i];
		cr_assert_geq(o->batch, batch, "record %u: batch %" PRIu64 " after %" PRIu64, i,
		              o->batch, batch);
		cr_assert_geq(o->now_ms, now, "record %u: time went back", i);
		batch = o->batch;
		now = o->now_ms;
		if (o->kind == SHARD_OUT_VOID) {
			cr_assert_not_null(shard_failed(r->s), "record %u is void, yet the shard did not fail", i);
			continue;
		}
		if (o->kind == SHARD_OUT_EXPIRY) {
			cr_assert(!busy_seen, "record %u: an expiry published after the failed shard's busy answers", i);
			cr_assert_eq(o->seq, seq + 1,
			             "expiry: seq %" PRIu64 ", expected the tick's %" PRIu64,
			             o->seq, seq + 1);
			seq = o->seq;
			continue;
		}
		cr_assert_eq(o->kind, SHARD_OUT_RESULT);
		cr_assert_eq(o->tag, next_tag,
		             "result %u has tag %" PRIu64 ", expected %u (submission order)", i,
		             o->tag, next_tag);
		const bo_cmd *c = &r->cmds[next_tag];
		cr_assert_eq(o->u.result.op, c->op, "tag %u: result of another op", next_tag);
		if (o->u.result.status == BO_BUSY) {
			/* Only the failed shard answers busy (the engine never does). */
			cr_assert_not_null(shard_failed(r->s), "tag %u answered busy by a healthy shard", next_tag);
			cr_assert_eq(o->seq, 0, "tag %u: a busy answer with seq %" PRIu64, next_tag, o->seq);
			cr_assert(o->u.result.client_id == c->client_id && o->u.result.request_id == c->request_id,
				  "tag %u: a busy answer for another command", next_tag);
			busy_seen = true;
			next_tag++;
			continue;
		}
		cr_assert(!busy_seen, "tag %u acknowledged after the failed shard answered busy", next_tag);
		acked++;
		if (entry_journals(c)) {
			cr_assert_eq(o->seq, seq + 1, "tag %u: seq %" PRIu64 ", expected %" PRIu64,
			             next_tag, o->seq, seq + 1);
			seq = o->seq;
		} else {
			cr_assert_eq(o->seq, 0, "tag %u: a query has seq %" PRIu64, next_tag,
			             o->seq);
		}
		next_tag++;
	}
	if (seq_last_out)
		*seq_last_out = seq;
	return acked;
}

/* ---- The journal, read back ---------------------------------------------- */

typedef struct jinfo {
	uint64_t seq;
	int64_t ts_ms;
	int kind; /* ENTRY_COMMAND / ENTRY_TICK */
	uint64_t client, request;
	uint8_t op, status;
} jinfo;

/* Reads the whole journal (from seq 1) into out[]. Returns the count. */
static uint32_t journal_scan(jinfo *out, uint32_t cap)
{
	journal_reader *jr;
	char err[JOURNAL_ERR_LEN];
	int rc = journal_reader_open(data_root, 0, NULL, &jr, err, sizeof(err));
	cr_assert_eq(rc, 0, "journal_reader_open: %s", err);
	journal_record rec;
	uint32_t n = 0;
	while ((rc = journal_reader_next(jr, &rec)) == 1) {
		cr_assert_lt(n, cap);
		entry en;
		bo_seatmap *m = NULL;
		cr_assert_eq(entry_decode(rec.payload, rec.payload_len, &en, &m), 0,
		             "seq %" PRIu64 " does not decode", rec.seq);
		bo_seatmap_free(m);
		jinfo *x = &out[n++];
		memset(x, 0, sizeof(*x));
		x->seq = rec.seq;
		x->ts_ms = rec.timestamp_ms;
		x->kind = en.kind;
		if (en.kind == ENTRY_COMMAND) {
			x->client = en.cmd.client_id;
			x->request = en.cmd.request_id;
			x->op = en.cmd.op;
			x->status = en.res.status;
		}
	}
	cr_assert_eq(rc, 0, "journal_reader_next: %d: %s", rc, journal_reader_error(jr));
	journal_reader_close(jr);
	return n;
}

/* A fresh engine replaying the journal from seq 1 (verifying results). */
static uint64_t replay_digest(const shard_config *cfg, uint64_t *last_seq)
{
	engine *e;
	cr_assert_eq(engine_new(&cfg->engine, &e), 0);
	journal_reader *jr;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(data_root, 0, NULL, &jr, err, sizeof(err)), 0, "%s", err);
	journal_record rec;
	char rerr[REPLAY_ERR_LEN];
	int rc;
	*last_seq = 0;
	while ((rc = journal_reader_next(jr, &rec)) == 1) {
		cr_assert_eq(replay_apply(e, &rec, 1, NULL, rerr, sizeof(rerr)), REPLAY_OK, "%s",
		             rerr);
		*last_seq = rec.seq;
	}
	cr_assert_eq(rc, 0, "%s", journal_reader_error(jr));
	journal_reader_close(jr);
	uint64_t d = engine_digest(e);
	engine_free(e);
	return d;
}

/* A fresh engine applying the acknowledged commands, at the times their
 * batches carried: the state the acknowledgements promise. */
static uint64_t acked_digest(const shard_config *cfg, const run *r)
{
	engine *e;
	cr_assert_eq(engine_new(&cfg->engine, &e), 0);
	for (uint32_t i = 0; i < r->nout; i++) {
		const shard_out *o = &r->outs[i];
		if (o->seq != 0) /* the journal keeps the times of records only */
			engine_advance(e, o->now_ms, NULL, NULL);
		if (o->kind != SHARD_OUT_RESULT || o->u.result.status == BO_BUSY)
			continue; /* busy: the failed shard did not apply it */
		bo_result res;
		engine_apply(e, &r->cmds[o->tag], &res);
		cr_assert_eq(res.status, o->u.result.status,
		             "tag %" PRIu64 ": %s acked, %s on re-execution", o->tag,
		             bo_status_str(o->u.result.status), bo_status_str(res.status));
	}
	uint64_t d = engine_digest(e);
	engine_free(e);
	return d;
}

/* ---- Files --------------------------------------------------------------- */

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* Sequence numbers of the snapshot files, ascending. Returns the count. */
static uint32_t list_snapshots(uint64_t *seqs, uint32_t cap)
{
	char dir[128];
	shard_dir(dir, sizeof(dir));
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s", dir);
	uint32_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t v;
		if (snapfile_name_parse(de->d_name, &v)) {
			cr_assert_lt(n, cap);
			seqs[n++] = v;
		}
	}
	closedir(d);
	for (uint32_t i = 1; i < n; i++) /* insertion sort: a few dozen */
		for (uint32_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
			uint64_t t = seqs[j];
			seqs[j] = seqs[j - 1];
			seqs[j - 1] = t;
		}
	return n;
}

static void snapshot_path(char *buf, size_t len, uint64_t seq)
{
	snprintf(buf, len, "%s/shard-0000/snap-%020" PRIu64 ".snap", data_root, seq);
}

typedef struct seg_list {
	uint64_t first[64];
	uint32_t n;
} seg_list;

static int seg_cb(void *ctx, const journal_segment_info *info)
{
	seg_list *l = ctx;
	if (l->n < 64)
		l->first[l->n] = info->first_seq;
	l->n++;
	return 0;
}

static seg_list list_segments(void)
{
	seg_list l = {.n = 0};
	char err[JOURNAL_ERR_LEN];
	int n = journal_segments(data_root, 0, seg_cb, &l, err, sizeof(err));
	cr_assert_geq(n, 1, "journal_segments: %s", err);
	cr_assert_leq(l.n, 64u);
	return l;
}

/* ==== 1. Durable before visible =========================================== */

/* Holds chosen journal WRITEs inside the fault hook (on the writer thread,
 * before the I/O is submitted) until the test releases them; records what
 * each one carried. */
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t hold_from; /* WRITEs hold_from .. hold-1 (0-based) are held */
	uint32_t hold;
	uint32_t writes;   /* WRITEs seen */
	uint32_t released; /* WRITEs the test let go */
	uint64_t seq_first[8], seq_last[8];
} gate;

static gate the_gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int gate_hook(void *ctx, journal_io *io)
{
	gate *g = ctx;
	if (io->kind != JOURNAL_IO_WRITE)
		return 0;
	pthread_mutex_lock(&g->mu);
	uint32_t k = g->writes++;
	if (k < 8) {
		g->seq_first[k] = io->seq_first;
		g->seq_last[k] = io->seq_last;
	}
	pthread_cond_broadcast(&g->cv);
	while (k >= g->hold_from && k < g->hold && g->released <= k)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

/* Waits until the hook has seen `n` WRITEs. */
static bool gate_wait_writes(gate *g, uint32_t n)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&g->mu);
	int rc = 0;
	while (g->writes < n && rc == 0)
		rc = pthread_cond_timedwait(&g->cv, &g->mu, &dl);
	bool ok = g->writes >= n;
	pthread_mutex_unlock(&g->mu);
	return ok;
}

static void gate_release(gate *g, uint32_t upto)
{
	pthread_mutex_lock(&g->mu);
	g->released = upto;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* Counts WRITEs from 0 again and holds those numbered hold_from .. hold-1. */
static void gate_arm(uint32_t hold_from, uint32_t hold)
{
	pthread_mutex_lock(&the_gate.mu);
	the_gate.hold_from = hold_from;
	the_gate.hold = hold;
	the_gate.writes = the_gate.released = 0;
	pthread_mutex_unlock(&the_gate.mu);
}

/* A failed assertion must not leave the writer parked in the hook. */
static void gate_teardown(void)
{
	gate_release(&the_gate, UINT32_MAX);
	teardown();
}

Test(shard_journal, outputs_are_published_only_after_their_write_is_durable, .fini = gate_teardown)
{
	gate *g = &the_gate;
	gate_arm(0, 2);

	shard_config cfg = durable_config();
	cfg.journal.fault = gate_hook;
	cfg.journal.fault_ctx = g;
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);

	/* Batch 1: the creation and a mix, submitted before the writer starts
	 * so that it is one batch (a submission's slots become visible one by
	 * one) and so one write. */
	bo_cmd c[8];
	c[0] = create_cmd(r->map);
	for (uint32_t i = 0; i < 5; i++)
		c[1 + i] = load_cmd(i);
	submit(r, c, 6);
	cr_assert_eq(shard_start(r->s), 0);
	cr_assert(gate_wait_writes(g, 1), "the first batch was never written");
	/* More commands while the write is held: they queue behind it. */
	submit_load(r, 5, 6);
	sleep_ms(100);
	drain(r);
	cr_assert_eq(
	        r->nout, 0,
	        "%u record(s) published while their journal write was held (first: tag %" PRIu64
	        " seq %" PRIu64 ")",
	        r->nout, r->nout ? r->outs[0].tag : 0, r->nout ? r->outs[0].seq : 0);
	cr_assert_eq(shard_durable_seq(r->s), 0);
	cr_assert_eq(g->seq_first[0], 1, "the first write starts at seq %" PRIu64, g->seq_first[0]);

	/* The second write carries what came while the first was held. While
	 * it is held, nothing it carries may be visible. */
	gate_release(g, 1);
	cr_assert(gate_wait_writes(g, 2),
	          "the commands submitted during the hold were never written");
	sleep_ms(50);
	drain(r);
	for (uint32_t i = 0; i < r->nout; i++)
		cr_assert_lt(r->outs[i].seq, g->seq_first[1],
		             "tag %" PRIu64 " (seq %" PRIu64 ") published while write %" PRIu64
		             "..%" PRIu64 " was held",
		             r->outs[i].tag, r->outs[i].seq, g->seq_first[1], g->seq_last[1]);
	for (uint32_t i = 0; i < r->nout; i++) /* and whole batches only: the first write's */
		cr_assert_lt(r->outs[i].tag, 6u, "a command of the held batch came out");

	gate_release(g, 2);
	cr_assert(wait_results(r, r->submitted), "only %u of %u results after release", r->results,
	          r->submitted);
	uint64_t seq_last, journaled = 0;
	cr_assert_eq(check_outputs(r, &seq_last), r->submitted);
	for (uint32_t t = 0; t < r->submitted; t++)
		journaled += entry_journals(&r->cmds[t]) ? 1 : 0;
	cr_assert_eq(seq_last, journaled);
	cr_assert_eq(g->seq_first[1], 6,
	             "the second write starts at seq %" PRIu64 ", batch 1 had 5 records",
	             g->seq_first[1]);
	for (uint32_t i = 0; i < r->nout; i++)
		cr_assert_eq(r->outs[i].u.result.status, BO_OK, "tag %" PRIu64 ": %s",
		             r->outs[i].tag, bo_status_str(r->outs[i].u.result.status));
	cr_assert_geq(shard_durable_seq(r->s), seq_last);
	close_shard(r->s);
	run_free(r);
}

/* ==== 2. Journal failures ================================================= */

typedef enum fault_mode {
	FAULT_WRITE_EIO,
	FAULT_SYNC_EIO,
	FAULT_WRITE_ENOSPC,
	FAULT_SHORT_WRITE,
	FAULT_MID_BATCH_EIO,       /* write 2 held by the_gate, EIO on write 3 */
	FAULT_LAST_OF_SEGMENT_EIO, /* EIO on the first write that ends near its segment's end */
} fault_mode;

/* Written by the writer thread (in the hook) only; the test reads it after
 * joining the writer (shard_stop), which orders everything. */
typedef struct fault {
	fault_mode mode;
	uint32_t at_write;                      /* fail the I/O of this WRITE (1-based) */
	uint64_t segment_bytes, near_end_bytes; /* FAULT_LAST_OF_SEGMENT_EIO */
	uint32_t writes;                        /* WRITEs seen */
	int64_t unit_ts_ms;                     /* timestamp of the last WRITE's first record */
	bool fired;
	uint64_t seq_first, seq_last; /* the failed unit */
	int64_t fail_ts_ms;           /* its first record's timestamp: the batch it struck */
} fault;

/* The timestamp of a write unit's first record: at offset 24 of the record
 * (journal.c, JOURNAL FILE FORMAT), which follows the 64-byte segment
 * header when the unit starts a segment. */
static int64_t unit_first_ts(const journal_io *io)
{
	uint32_t at = io->offset == 0 ? 64 : 0;
	int64_t ts;
	if (io->len < at + 32)
		return -1;
	memcpy(&ts, io->buf + at + 24, sizeof(ts));
	return ts;
}

static void fault_fired(fault *f, const journal_io *io)
{
	f->fired = true;
	f->seq_first = io->seq_first;
	f->seq_last = io->seq_last;
	f->fail_ts_ms = f->unit_ts_ms;
}

static int fault_hook(void *ctx, journal_io *io)
{
	fault *f = ctx;
	const bool on_write = io->kind == JOURNAL_IO_WRITE;
	if (on_write) {
		f->writes++;
		f->unit_ts_ms = unit_first_ts(io);
	}
	if (f->fired)
		return 0;
	switch (f->mode) {
	case FAULT_WRITE_EIO:
	case FAULT_WRITE_ENOSPC:
		if (!on_write || f->writes != f->at_write)
			return 0;
		fault_fired(f, io);
		return f->mode == FAULT_WRITE_EIO ? -EIO : -ENOSPC;
	case FAULT_SYNC_EIO:
		if (io->kind != JOURNAL_IO_SYNC || f->writes != f->at_write)
			return 0;
		fault_fired(f, io);
		return -EIO;
	case FAULT_SHORT_WRITE:
		if (!on_write || f->writes != f->at_write || io->len <= 8)
			return 0;
		fault_fired(f, io);
		io->len = io->len / 2 + 1; /* cuts a record in two */
		return 0;
	case FAULT_MID_BATCH_EIO:
		if (!on_write)
			return 0;
		if (f->writes < 3)
			return gate_hook(&the_gate, io);
		fault_fired(f, io);
		return -EIO;
	case FAULT_LAST_OF_SEGMENT_EIO:
		if (!on_write || io->offset + io->len + f->near_end_bytes < f->segment_bytes)
			return 0;
		fault_fired(f, io);
		return -EIO;
	}
	return 0;
}

static void journal_failure_case(fault_mode mode, const char *what, const char *errtext)
{
	fault f = {.mode = mode, .at_write = 5};
	shard_config cfg = durable_config();
	if (mode == FAULT_LAST_OF_SEGMENT_EIO || mode == FAULT_MID_BATCH_EIO) {
		/* Small segments and buffers: roll-overs and full buffers flush
		 * from inside journal_append, in the middle of a batch. */
		cfg.journal.segment_bytes = 64u << 10;
		cfg.journal.buffer_bytes = 16u << 10;
		cfg.journal.payload_bytes_max = 8u << 10;
		f.segment_bytes = cfg.journal.segment_bytes;
		f.near_end_bytes = 1024; /* more than any record of the load */
	}
	cfg.clock = counting_clock;
	cfg.journal.fault = fault_hook;
	cfg.journal.fault_ctx = &f;
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);

	switch (mode) {
	case FAULT_MID_BATCH_EIO:
		/* Write 1 (the creation) is durable and acknowledged, so batch
		 * B's commit submits write 2 itself; the hook holds it there
		 * while a batch M too large for one write buffer goes in.
		 * Released, the writer applies M while B's write is in flight
		 * (a fdatasync takes ~1 ms, the writer's loop microseconds);
		 * M fills the buffer, whose flush waits for B's write (B is now
		 * durable) and submits write 3, which fails; M fills the buffer
		 * again, and that flush finds write 3 failed, inside
		 * journal_append. */
		gate_arm(1, 2);
		cr_assert_eq(shard_start(r->s), 0);
		submit_create(r);
		cr_assert(wait_results(r, 1), "the creation was not acknowledged");
		submit_load(r, 0, 8);
		cr_assert(gate_wait_writes(&the_gate, 2), "write 2 never came");
		for (uint32_t g = 0; g < 12; g++) /* ~450 records: over three buffers */
			submit_load(r, r->submitted - 1, 50);
		gate_release(&the_gate, 2);
		break;
	case FAULT_LAST_OF_SEGMENT_EIO:
		cr_assert_eq(shard_start(r->s), 0);
		submit_create(r);
		cr_assert(wait_results(r, 1), "the creation was not acknowledged");
		/* Pipelined: groups go in without waiting for answers, so
		 * batches are applied while earlier writes are in flight. */
		for (uint32_t g = 0; g < 400 && !shard_failed(r->s); g++) {
			submit_load(r, r->submitted - 1, 8);
			drain(r);
		}
		break;
	default:
		cr_assert_eq(shard_start(r->s), 0);
		submit_create(r);
		cr_assert(wait_results(r, 1), "the creation was not acknowledged");
		sequential_load(r, 40, 7); /* far more writes than at_write: the fault fires */
		break;
	}

	/* The shard has stopped, saying why. */
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (!shard_failed(r->s) && bo_clock_ms() < deadline)
		sleep_ms(1);
	const char *msg = shard_failed(r->s);
	cr_assert_not_null(msg, "no failure reported after the injected %s", what);
	cr_log_info("%s: shard_failed: %s", what, msg);
	cr_assert_not_null(strstr(msg, what), "the failure message does not say '%s': %s", what,
	                   msg);
	cr_assert_not_null(strstr(msg, errtext), "the failure message does not say '%s': %s",
	                   errtext, msg);

	/* Every command gets an answer, never a hang: what was waiting for the
	 * disk or in the input ring, and what producers submit after the
	 * failure (busy, at once). */
	submit_load(r, r->submitted - 1, 3);
	const int64_t answer_deadline = bo_clock_ms() + WAIT_MS;
	while (r->results < r->submitted && bo_clock_ms() < answer_deadline)
		if (drain(r) == 0)
			ring_wait(shard_output(r->s), 1000000);
	cr_assert_eq(r->results, r->submitted, "%u commands submitted, %u answered after the failure",
		     r->submitted, r->results);
	const shard_out *last = &r->outs[r->nout - 1];
	cr_assert(last->kind == SHARD_OUT_RESULT && last->u.result.status == BO_BUSY,
		  "a command submitted after the failure was not answered busy");

	shard_stop(r->s);
	drain(r);
	cr_assert(f.fired, "the fault never fired");
	cr_assert_geq(f.seq_first, 2);

	/* Nothing of the failed write or later was acknowledged, and what was
	 * is a prefix of the submissions in order. */
	uint64_t acked_seq_last;
	uint32_t acked = check_outputs(r, &acked_seq_last);
	cr_assert_lt(acked_seq_last, f.seq_first,
	             "seq %" PRIu64 " acknowledged, but the write of %" PRIu64 "..%" PRIu64
	             " failed",
	             acked_seq_last, f.seq_first, f.seq_last);
	cr_log_info("%s: %u results acknowledged (journal seqs 1..%" PRIu64
	            "), the write of seqs %" PRIu64 "..%" PRIu64 " failed",
	            what, acked, acked_seq_last, f.seq_first, f.seq_last);
	close_shard(r->s);
	r->s = NULL;

	/* Reopen without the fault. What is recovered: every acknowledged
	 * record, as acknowledged; then possibly records nobody was told
	 * about, but only of the one batch the failure struck (earlier writes
	 * of that same batch may have made them durable: a batch is published
	 * whole or not at all), never of a batch before it, and nothing of the
	 * failed write itself (the journal zeroes it). The counting clock gives
	 * every batch its own timestamp, which is how records are told apart
	 * by batch. */
	shard_config clean = durable_config();
	shard_recovery rec;
	shard *s2 = open_ok(&clean, &rec);
	cr_assert_eq(rec.last_seq, f.seq_first - 1,
	             "recovered up to seq %" PRIu64 ", the failed write began at %" PRIu64
	             " (journal: %s)",
	             rec.last_seq, f.seq_first, rec.journal.note);
	static jinfo j[CMDS_MAX];
	uint32_t nj = journal_scan(j, CMDS_MAX);
	cr_assert_eq(nj, rec.last_seq);
	uint32_t k = 0;
	int64_t acked_ms_max = 0;
	for (uint32_t i = 0; i < r->nout; i++) {
		const shard_out *o = &r->outs[i];
		if (o->kind != SHARD_OUT_RESULT || o->seq == 0)
			continue;
		cr_assert_lt(k, nj, "seq %" PRIu64 " was acknowledged but is not recovered",
		             o->seq);
		const bo_cmd *c = &r->cmds[o->tag];
		cr_assert_eq(j[k].seq, o->seq);
		cr_assert_eq(j[k].kind, ENTRY_COMMAND);
		cr_assert(j[k].client == c->client_id && j[k].request == c->request_id,
		          "seq %" PRIu64 ": journal holds (%" PRIu64 ", %" PRIu64
		          "), acknowledged (%" PRIu64 ", %" PRIu64 ")",
		          o->seq, j[k].client, j[k].request, c->client_id, c->request_id);
		cr_assert_eq(j[k].status, o->u.result.status);
		cr_assert_eq(j[k].ts_ms, o->now_ms);
		acked_ms_max = o->now_ms;
		k++;
	}
	const uint32_t unacked = nj - k;
	cr_log_info("%s: recovered %u records: %u acknowledged, %u never acknowledged", what, nj, k,
	            unacked);
	for (uint32_t i = k; i < nj; i++) {
		cr_assert_gt(j[i].ts_ms, acked_ms_max);
		cr_assert_eq(j[i].ts_ms, f.fail_ts_ms,
		             "seq %" PRIu64 " (batch time %" PRId64
		             ") is durable but was never acknowledged, and it "
		             "is not of the batch the failed write struck (time %" PRId64
		             "): %u recovered records "
		             "(%" PRIu64 "..%" PRIu64 ") were never published",
		             j[i].seq, j[i].ts_ms, f.fail_ts_ms, unacked, j[k].seq, j[nj - 1].seq);
	}

	uint64_t replay_seq;
	uint64_t d_replay = replay_digest(&clean, &replay_seq);
	uint64_t d_rec = engine_digest(shard_engine(s2));
	cr_assert_eq(d_rec, d_replay, "recovered " DIGEST_FMT ", journal replay " DIGEST_FMT, d_rec,
	             d_replay);
	if (unacked == 0) {
		uint64_t d_acked = acked_digest(&clean, r);
		cr_assert_eq(d_rec, d_acked,
		             "recovered " DIGEST_FMT ", acknowledged commands " DIGEST_FMT, d_rec,
		             d_acked);
	}

	/* And the recovered shard works: the next command continues the log. */
	run *r2 = run_new();
	r2->s = s2;
	cr_assert_eq(shard_start(s2), 0);
	bo_cmd b = load_cmd(0);
	b.client_id = 999; /* a fresh (client, request): not in the window */
	b.seats[0] = HALF - 1;
	submit(r2, &b, 1);
	cr_assert(wait_results(r2, 1), "the recovered shard does not answer");
	cr_assert_eq(r2->outs[0].seq, rec.last_seq + 1);
	close_shard(s2);
	run_free(r2);
	run_free(r);
}

Test(shard_journal, eio_on_write_stops_the_shard_and_loses_no_ack)
{
	journal_failure_case(FAULT_WRITE_EIO, "write of", "Input/output error");
}

Test(shard_journal, eio_on_fdatasync_stops_the_shard_and_loses_no_ack)
{
	journal_failure_case(FAULT_SYNC_EIO, "fdatasync of", "Input/output error");
}

Test(shard_journal, enospc_on_write_stops_the_shard_and_loses_no_ack)
{
	journal_failure_case(FAULT_WRITE_ENOSPC, "write of", "No space left on device");
}

Test(shard_journal, short_write_stops_the_shard_and_loses_no_ack)
{
	journal_failure_case(FAULT_SHORT_WRITE, "short write", "short write");
}

/* The failed write is the last of a segment, under a pipelined load: it is
 * submitted from inside journal_append (roll-over) while the shard applies
 * a batch, after the journal reaped the write before it. Every batch that
 * write made durable must still be acknowledged. */
/* The failed write is submitted from inside journal_append (its buffer
 * filled mid-batch), right after the journal reaped the write before it:
 * the batch that earlier write made durable must still be acknowledged. */
Test(shard_journal, eio_on_a_write_flushed_mid_batch_loses_no_ack, .fini = gate_teardown)
{
	journal_failure_case(FAULT_MID_BATCH_EIO, "write of", "Input/output error");
}

Test(shard_journal, eio_on_the_last_write_of_a_segment_under_load_loses_no_ack)
{
	journal_failure_case(FAULT_LAST_OF_SEGMENT_EIO, "write of", "Input/output error");
}

/* ==== 3. Graceful stop ==================================================== */

typedef struct drainer {
	run *r;
	atomic_int stop; /* release by the test after shard_stop(); acquire here: the
	                  * writer has been joined, so its last publish is visible */
} drainer;

static void *drainer_main(void *arg)
{
	drainer *d = arg;
	for (;;) {
		bool last = atomic_load_explicit(&d->stop, memory_order_acquire);
		if (drain(d->r) == 0) {
			if (last)
				return NULL;
			ring_wait(shard_output(d->r->s), 1000000);
		}
	}
}

Test(shard_journal, graceful_stop_acknowledges_everything_and_reopens_to_the_same_state)
{
	shard_config cfg = durable_config();
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);
	r->other_drainer = true;
	drainer d = {.r = r};
	atomic_init(&d.stop, 0);
	pthread_t th;
	/* The drainer starts before the writer produces anything; the test thread
	 * only submits (r->outs belongs to the drainer until it is joined). */
	cr_assert_eq(pthread_create(&th, NULL, drainer_main, &d), 0);
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r);
	const uint32_t n = 3000;
	for (uint32_t k = 0; k < n; k += 50)
		submit_load(r, k, 50);
	shard_stop(r->s); /* while the writer is still draining its input */
	atomic_store_explicit(&d.stop, 1, memory_order_release);
	pthread_join(th, NULL);

	uint64_t seq_last;
	cr_assert_eq(check_outputs(r, &seq_last), r->submitted, "%u of %u acknowledged", r->results,
	             r->submitted);
	uint64_t journaled = 0;
	for (uint32_t t = 0; t < r->submitted; t++)
		journaled += entry_journals(&r->cmds[t]) ? 1 : 0;
	cr_assert_eq(seq_last, journaled);
	cr_assert_eq(shard_durable_seq(r->s), journaled);
	uint64_t before = engine_digest(shard_engine(r->s));
	close_shard(r->s);

	shard_recovery rec;
	shard *s2 = open_ok(&cfg, &rec);
	cr_assert_eq(rec.last_seq, journaled,
	             "reopened at seq %" PRIu64 ", %" PRIu64 " commands journaled", rec.last_seq,
	             journaled);
	cr_assert_eq(rec.snapshot_seq, 0);
	cr_assert_eq(rec.replayed, journaled);
	uint64_t after = engine_digest(shard_engine(s2));
	cr_assert_eq(after, before, "before stop " DIGEST_FMT ", recovered " DIGEST_FMT, before,
	             after);
	cr_assert_eq(after, acked_digest(&cfg, r));
	close_shard(s2);
	run_free(r);
}

/* ==== 4. Snapshots ======================================================== */

#define SNAP_EVERY 40u

/* 64 KiB segments (a few hundred records each) and a snapshot every 40
 * records, so a load of ~1,100 records makes many of both. */
static shard_config snapshot_config(int prune)
{
	shard_config cfg = durable_config();
	cfg.journal.segment_bytes = 64u << 10;
	cfg.journal.buffer_bytes = 16u << 10;
	cfg.journal.payload_bytes_max = 8u << 10;
	cfg.snapshot_every = SNAP_EVERY;
	cfg.prune = prune;
	return cfg;
}

#define SNAP_LOAD_GROUPS 150u
#define SNAP_WAIT_MS 30000 /* a niced snapshot child on a busy machine is slow */
/* The tail: SNAP_EVERY records take at most 2 * SNAP_EVERY commands (3 in
 * 4 load commands are journaled). */
_Static_assert(1 + SNAP_LOAD_GROUPS * 10 + 2 * SNAP_EVERY <= CMDS_MAX, "the run holds the load and its tail");

static void keep_watch(shard *s); /* 4b's checks against s's durable seq */

/* Runs the snapshot load and stops. Returns the digest before stop, the
 * last seq and (tail_seq) a seq every snapshot taken after the load is
 * newer than. */
static uint64_t snapshot_load_run(const shard_config *cfg, run *r, uint64_t *seq_last,
                                  uint64_t *tail_seq_out)
{
	r->s = open_ok(cfg, NULL);
	keep_watch(r->s); /* the rename and prune checks' durable seq */
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r);
	cr_assert(wait_results(r, 1));
	sequential_load(r, SNAP_LOAD_GROUPS, 10);
	/* A recent snapshot, newer than everything the load made: a tail of
	 * SNAP_EVERY journal records (not commands: queries journal nothing)
	 * after tail_seq makes one due whatever the snapshot under way
	 * (started at some seq <= tail_seq) is doing, and the writer starts
	 * it as soon as the keeper is done with that one, idle or not. When it
	 * completes depends on a builder at the lowest CPU priority: wait for
	 * that event (its file in place), not for a number of commands, which
	 * on a busy machine can all pass before the child gets the CPU. */
	uint64_t snaps[512];
	const uint64_t tail_seq = shard_durable_seq(r->s);
	while (shard_durable_seq(r->s) < tail_seq + SNAP_EVERY) {
		submit_load(r, r->submitted - 1, 1);
		cr_assert(wait_results(r, r->submitted));
	}
	cr_assert_null(shard_failed(r->s), "%s", shard_failed(r->s));
	const int64_t deadline = bo_clock_ms() + SNAP_WAIT_MS;
	uint32_t ns = list_snapshots(snaps, 512);
	while (ns == 0 || snaps[ns - 1] <= tail_seq) {
		cr_assert_lt(bo_clock_ms(), deadline,
		             "no snapshot after seq %" PRIu64 " completed within %d ms of a tail of %u records "
		             "(newest %" PRIu64 ")",
		             tail_seq, SNAP_WAIT_MS, SNAP_EVERY, ns ? snaps[ns - 1] : 0);
		sleep_ms(1);
		ns = list_snapshots(snaps, 512);
	}
	cr_log_info("after seq %" PRIu64 " and a tail of %u records: snapshot %" PRIu64 " within %" PRId64 " ms",
	            tail_seq, SNAP_EVERY, snaps[ns - 1], bo_clock_ms() - (deadline - SNAP_WAIT_MS));
	cr_assert_eq(r->results, r->submitted);
	*tail_seq_out = tail_seq;
	shard_stop(r->s);
	drain(r);
	cr_assert_eq(check_outputs(r, seq_last), r->submitted);
	shard_stats st;
	shard_stats_get(r->s, &st);
	cr_assert_geq(st.snapshots, 2, "only %" PRIu64 " snapshots for %" PRIu64 " records",
	              st.snapshots, *seq_last);
	uint64_t d = engine_digest(shard_engine(r->s));
	keep_watch(NULL); /* the builder is joined: nothing renames or prunes now */
	close_shard(r->s);
	r->s = NULL;
	return d;
}

Test(shard_journal, snapshots_prune_the_journal_and_recovery_starts_from_the_newest)
{
	shard_config cfg = snapshot_config(1);
	run *r = run_new();
	uint64_t seq_last;
	uint64_t tail_seq;
	uint64_t before = snapshot_load_run(&cfg, r, &seq_last, &tail_seq);

	uint64_t snaps[512];
	uint32_t ns = list_snapshots(snaps, 512);
	cr_assert_geq(ns, 1, "no snap-*.snap file");
	uint64_t newest = snaps[ns - 1];
	seg_list segs = list_segments();
	cr_log_info("%" PRIu64 " records, %u snapshots (newest at %" PRIu64
	            "), %u segment(s) left, the first "
	            "starting at seq %" PRIu64,
	            seq_last, ns, newest, segs.n, segs.first[0]);
	cr_assert_gt(segs.first[0], 1, "no segment was pruned (newest snapshot at seq %" PRIu64 ")",
	             newest);
	cr_assert_leq(segs.first[0], newest + 1, "pruned beyond the newest snapshot");

	shard_recovery rec;
	shard *s2 = open_ok(&cfg, &rec);
	cr_assert_eq(rec.snapshot_seq, newest);
	cr_assert_eq(rec.last_seq, seq_last);
	cr_assert_eq(rec.replayed, seq_last - newest);
	cr_assert_gt(rec.snapshot_seq, tail_seq);
	cr_assert_lt(rec.replayed, seq_last / 2, "replayed %" PRIu64 " of %" PRIu64 " records",
	             rec.replayed, seq_last);
	uint64_t after = engine_digest(shard_engine(s2));
	cr_assert_eq(after, before, "before stop " DIGEST_FMT ", recovered " DIGEST_FMT, before,
	             after);
	close_shard(s2);
	run_free(r);
}

Test(shard_journal, a_corrupt_snapshot_is_skipped_for_an_older_one_or_the_journal)
{
	shard_config cfg = snapshot_config(0); /* nothing pruned: every fallback is possible */
	run *r = run_new();
	uint64_t seq_last;
	uint64_t tail_seq;
	uint64_t before = snapshot_load_run(&cfg, r, &seq_last, &tail_seq);
	uint64_t snaps[512];
	uint32_t ns = list_snapshots(snaps, 512);
	cr_assert_geq(ns, 2);

	/* The newest is corrupt: the one before it is used, with a warning. */
	char path[256], err[JOURNAL_ERR_LEN], log[8192];
	snapshot_path(path, sizeof(path), snaps[ns - 1]);
	flip_byte(path, file_size(path) / 2);
	shard *s2 = NULL;
	shard_recovery rec;
	int rc = open_capturing(&cfg, &s2, &rec, err, sizeof(err), log, sizeof(log));
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	cr_assert_not_null(strstr(log, path), "no warning naming %s; stderr: %s", path, log);
	cr_assert_eq(rec.snapshot_seq, snaps[ns - 2]);
	cr_assert_eq(rec.last_seq, seq_last);
	uint64_t after = engine_digest(shard_engine(s2));
	cr_assert_eq(after, before, "before stop " DIGEST_FMT ", recovered " DIGEST_FMT, before,
	             after);
	close_shard(s2);

	/* Every snapshot corrupt: the whole journal is replayed. */
	for (uint32_t i = 0; i + 1 < ns; i++) {
		snapshot_path(path, sizeof(path), snaps[i]);
		flip_byte(path, file_size(path) / 2);
	}
	rc = open_capturing(&cfg, &s2, &rec, err, sizeof(err), log, sizeof(log));
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	cr_assert_eq(rec.snapshot_seq, 0);
	cr_assert_eq(rec.replayed, seq_last);
	after = engine_digest(shard_engine(s2));
	cr_assert_eq(after, before, "before stop " DIGEST_FMT ", recovered " DIGEST_FMT, before,
	             after);
	close_shard(s2);
	run_free(r);
}

Test(shard_journal, pruned_journal_without_a_usable_snapshot_is_refused)
{
	shard_config cfg = snapshot_config(1);
	run *r = run_new();
	uint64_t seq_last;
	uint64_t tail_seq;
	uint64_t before = snapshot_load_run(&cfg, r, &seq_last, &tail_seq);
	uint64_t snaps[512];
	uint32_t ns = list_snapshots(snaps, 512);
	cr_assert_geq(ns, 2);
	seg_list segs = list_segments();
	const uint64_t first = segs.first[0];
	cr_assert_gt(first, 1, "nothing pruned");

	/* The newest corrupt: the loader falls back to the one before, which is
	 * usable exactly when the journal still holds the records after it. */
	char path[256], err[JOURNAL_ERR_LEN], log[8192];
	snapshot_path(path, sizeof(path), snaps[ns - 1]);
	flip_byte(path, file_size(path) / 2);
	shard *s2 = NULL;
	shard_recovery rec;
	int rc = open_capturing(&cfg, &s2, &rec, err, sizeof(err), log, sizeof(log));
	cr_assert_not_null(strstr(log, path), "no warning naming %s; stderr: %s", path, log);
	if (first <= snaps[ns - 2] + 1) {
		cr_log_info("older snapshot %" PRIu64
		            " still covered by the journal (first seq %" PRIu64 "): used",
		            snaps[ns - 2], first);
		cr_assert_eq(rc, 0, "shard_open: %s", err);
		cr_assert_eq(rec.snapshot_seq, snaps[ns - 2]);
		cr_assert_eq(engine_digest(shard_engine(s2)), before);
		close_shard(s2);
	} else {
		cr_log_info("older snapshot %" PRIu64 " needs pruned records (first seq %" PRIu64
		            "): refused: %s",
		            snaps[ns - 2], first, err);
		cr_assert_eq(rc, -EBADMSG, "shard_open: %d (%s)", rc, err);
		cr_assert_null(s2);
	}

	/* Only the oldest snapshot left valid (it needs records pruned long
	 * ago): refused, naming the missing records. */
	cr_assert_gt(first, snaps[0] + 1,
	             "the oldest snapshot is still covered: the test needs more load");
	for (uint32_t i = 1; i + 1 < ns; i++) {
		snapshot_path(path, sizeof(path), snaps[i]);
		flip_byte(path, file_size(path) / 2);
	}
	rc = open_capturing(&cfg, &s2, &rec, err, sizeof(err), log, sizeof(log));
	cr_log_info("only snapshot %" PRIu64 " valid: shard_open = %d: %s", snaps[0], rc, err);
	cr_assert_eq(rc, -EBADMSG,
	             "shard_open loaded snapshot %" PRIu64 " over a journal pruned to %" PRIu64
	             ": %d %s",
	             snaps[0], first, rc, err);
	cr_assert_null(s2);
	cr_assert_not_null(strstr(err, "missing segment"), "unclear error: %s", err);

	/* No valid snapshot at all: the pruned journal alone is refused too. */
	snapshot_path(path, sizeof(path), snaps[0]);
	flip_byte(path, file_size(path) / 2);
	rc = open_capturing(&cfg, &s2, &rec, err, sizeof(err), log, sizeof(log));
	cr_log_info("no snapshot valid: shard_open = %d: %s", rc, err);
	cr_assert_eq(rc, -EBADMSG, "shard_open over a pruned journal with no snapshot: %d %s", rc,
	             err);
	cr_assert_null(s2);
	cr_assert_not_null(strstr(err, "missing segment"), "unclear error: %s", err);
	run_free(r);
}

/* ---- 4b. Snapshot work stays off the writer --------------------------------
 *
 * This executable is linked with --wrap for journal_prune, rename, fsync
 * and fork (tests/meson.build), so every call the shard or the journal
 * makes to them comes through the wrappers below first. The writer thread
 * is recognised by the shard's clock, which only the writer reads. The
 * wrappers count calls per thread kind, check the order the snapshot
 * builder must keep (snap-S.snap renamed into place only with the journal
 * durable up to S; a prune up to S only after that rename, the directory
 * fsynced after it, and the journal durable up to S), and can hold a prune
 * back to show the writer does not wait for it.
 */
enum { CALL_PRUNE, CALL_RENAME, CALL_FSYNC, CALL_FORK, CALL_KINDS };
static const char *const call_names[CALL_KINDS] = {"journal_prune", "rename", "fsync", "fork"};

static pthread_t writer_thread;
static atomic_bool writer_known;
static atomic_uint calls_on_writer[CALL_KINDS], calls_elsewhere[CALL_KINDS];

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	shard *s;		 /* whose durable seq a prune is checked against */
	char renamed_to[512];	 /* the last rename's target */
	bool dir_synced;	 /* a directory fsync came after that rename */
	uint32_t violations;
	char violation[512];
	bool hold, held, released; /* holding the first prune back */
} keep = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void keep_watch(shard *s)
{
	pthread_mutex_lock(&keep.mu);
	keep.s = s;
	pthread_mutex_unlock(&keep.mu);
}

static int64_t writer_clock(void *ctx)
{
	if (!atomic_load(&writer_known)) {
		writer_thread = pthread_self();
		atomic_store(&writer_known, true);
	}
	return fake_clock(ctx);
}

static void note_call(int kind)
{
	if (atomic_load(&writer_known) && pthread_equal(pthread_self(), writer_thread))
		atomic_fetch_add(&calls_on_writer[kind], 1);
	else
		atomic_fetch_add(&calls_elsewhere[kind], 1);
}

static void keep_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void keep_violation(const char *fmt, ...)
{
	if (keep.violations++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(keep.violation, sizeof(keep.violation), fmt, ap);
		va_end(ap);
	}
}

int __real_journal_prune(const char *root, uint32_t shard_id, uint64_t upto_seq, char *err, size_t err_len);
int __wrap_journal_prune(const char *root, uint32_t shard_id, uint64_t upto_seq, char *err, size_t err_len);
int __wrap_journal_prune(const char *root, uint32_t shard_id, uint64_t upto_seq, char *err, size_t err_len)
{
	note_call(CALL_PRUNE);
	char want[64];
	snprintf(want, sizeof(want), "/snap-%020" PRIu64 ".snap", upto_seq);
	pthread_mutex_lock(&keep.mu);
	size_t n = strlen(keep.renamed_to);
	if (n < strlen(want) || strcmp(keep.renamed_to + n - strlen(want), want) != 0)
		keep_violation("prune up to %" PRIu64 " but the last rename was to '%s'", upto_seq, keep.renamed_to);
	else if (!keep.dir_synced)
		keep_violation("prune up to %" PRIu64 " before the directory was fsynced after the rename", upto_seq);
	if (keep.s && shard_durable_seq(keep.s) < upto_seq)
		keep_violation("prune up to %" PRIu64 " with the journal durable to %" PRIu64, upto_seq,
		               shard_durable_seq(keep.s));
	if (keep.hold) {
		keep.hold = false;
		keep.held = true;
		pthread_cond_broadcast(&keep.cv);
		while (!keep.released)
			pthread_cond_wait(&keep.cv, &keep.mu);
	}
	pthread_mutex_unlock(&keep.mu);
	return __real_journal_prune(root, shard_id, upto_seq, err, err_len);
}

int __real_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to)
{
	note_call(CALL_RENAME);
	pthread_mutex_lock(&keep.mu);
	const char *base = strrchr(to, '/');
	uint64_t seq;
	if (keep.s && snapfile_name_parse(base ? base + 1 : to, &seq) && shard_durable_seq(keep.s) < seq)
		keep_violation("snapshot %" PRIu64 " made official with the journal durable to %" PRIu64, seq,
		               shard_durable_seq(keep.s));
	pthread_mutex_unlock(&keep.mu);
	int rc = __real_rename(from, to);
	pthread_mutex_lock(&keep.mu);
	snprintf(keep.renamed_to, sizeof(keep.renamed_to), "%s", rc == 0 ? to : "");
	keep.dir_synced = false;
	pthread_mutex_unlock(&keep.mu);
	return rc;
}

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __wrap_fsync(int fd)
{
	note_call(CALL_FSYNC);
	int rc = __real_fsync(fd);
	struct stat st;
	if (rc == 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		pthread_mutex_lock(&keep.mu);
		keep.dir_synced = true;
		pthread_mutex_unlock(&keep.mu);
	}
	return rc;
}

pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __wrap_fork(void)
{
	note_call(CALL_FORK);
	return __real_fork();
}

Test(shard_journal, snapshot_file_work_and_pruning_run_off_the_writer_in_a_crash_safe_order)
{
	shard_config cfg = snapshot_config(1);
	cfg.clock = writer_clock;
	run *r = run_new();
	uint64_t seq_last, tail_seq;
	snapshot_load_run(&cfg, r, &seq_last, &tail_seq);
	cr_assert(atomic_load(&writer_known), "the writer never read its clock");
	for (int k = 0; k < CALL_KINDS; k++) {
		cr_log_info("%s: %u on the writer, %u on other threads", call_names[k], atomic_load(&calls_on_writer[k]),
		            atomic_load(&calls_elsewhere[k]));
		cr_assert_eq(atomic_load(&calls_on_writer[k]), 0, "%s called on the writer thread",
		             call_names[k]);
	}
	cr_assert_geq(atomic_load(&calls_elsewhere[CALL_PRUNE]), 1, "nothing was pruned");
	cr_assert_geq(atomic_load(&calls_elsewhere[CALL_RENAME]), 2, "fewer than two snapshots put in place");
	cr_assert_eq(atomic_load(&calls_elsewhere[CALL_FORK]), 0, "the shard forked");
	cr_assert_eq(keep.violations, 0, "%u order violations; the first: %s", keep.violations, keep.violation);
	run_free(r);
}

static void keep_release(void)
{
	pthread_mutex_lock(&keep.mu);
	keep.released = true;
	pthread_cond_broadcast(&keep.cv);
	pthread_mutex_unlock(&keep.mu);
}

/* A failed test must still let the keeper out, or shard_free waits for it. */
static void keep_teardown(void)
{
	keep_release();
	teardown();
}

Test(shard_journal, a_prune_held_back_does_not_stall_the_writer, .fini = keep_teardown)
{
	shard_config cfg = snapshot_config(1);
	cfg.clock = writer_clock;
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);
	keep.s = r->s;
	keep.hold = true;
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r);
	cr_assert(wait_results(r, 1));
	/* Enough records for the first snapshot, then wait until the keeper
	 * is inside its prune, held there (the child may take long). */
	while (shard_durable_seq(r->s) < SNAP_EVERY && !shard_failed(r->s))
		sequential_load(r, 1, 10);
	const int64_t deadline = bo_clock_ms() + SNAP_WAIT_MS;
	pthread_mutex_lock(&keep.mu);
	while (!keep.held && bo_clock_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000; /* a slice, to look at the deadline */
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&keep.cv, &keep.mu, &ts);
	}
	bool held = keep.held;
	pthread_mutex_unlock(&keep.mu);
	cr_assert(held, "the first snapshot (due at seq %u) never reached its prune within %d ms", SNAP_EVERY,
	          SNAP_WAIT_MS);
	/* The writer goes on applying and acknowledging. */
	const uint32_t before = r->submitted;
	sequential_load(r, 100, 5);
	cr_assert_eq(r->results, r->submitted,
	             "%u results for %u commands (the last %u submitted while a prune was held back)",
	             r->results, r->submitted, r->submitted - before);
	keep_release();
	shard_stop(r->s);
	drain(r);
	cr_assert_null(shard_failed(r->s), "%s", shard_failed(r->s));
	cr_assert_eq(keep.violations, 0, "%s", keep.violation);
	close_shard(r->s);
	r->s = NULL;
	run_free(r);
}

/* ==== 5. Idle tick journaling ============================================= */

Test(shard_journal, an_idle_tick_that_expires_a_hold_is_journaled_and_survives_restart)
{
	shard_config cfg = durable_config();
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r);
	bo_cmd h = hold_cmd(4242, 3, BO_TTL_MS_MIN);
	submit(r, &h, 1);
	cr_assert(wait_results(r, 2));
	const shard_out *held = &r->outs[1];
	cr_assert_eq(held->u.result.status, BO_OK);
	cr_assert_eq(held->seq, 2);
	cr_assert_eq(held->u.result.expires_at_ms, T0_MS + BO_TTL_MS_MIN);
	const uint64_t claim = held->u.result.claim_id;

	/* Just before the expiry: ticks run but change nothing, so nothing is
	 * journaled or published. */
	atomic_store_explicit(&fake_now_ms, T0_MS + BO_TTL_MS_MIN - 1, memory_order_relaxed);
	sleep_ms(50);
	cr_assert_eq(drain(r), 0, "output before the hold expired");
	cr_assert_eq(shard_durable_seq(r->s), 2);

	/* At expiry, with no command: the tick expires it, as record 3. */
	atomic_store_explicit(&fake_now_ms, T0_MS + BO_TTL_MS_MIN + 1, memory_order_relaxed);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (r->nout < 3 && bo_clock_ms() < deadline) {
		if (drain(r) == 0)
			ring_wait(shard_output(r->s), 1000000);
	}
	cr_assert_eq(r->nout, 3, "no EXPIRY output within %d ms", WAIT_MS);
	const shard_out *x = &r->outs[2];
	cr_assert_eq(x->kind, SHARD_OUT_EXPIRY);
	cr_assert_eq(x->seq, 3, "the expiry carries seq %" PRIu64 ", the tick record is 3", x->seq);
	cr_assert_eq(x->now_ms, T0_MS + BO_TTL_MS_MIN + 1);
	cr_assert_eq(x->u.expiry.claim_id, claim);
	cr_assert_eq(x->u.expiry.seat_count, 1);
	cr_assert_eq(x->u.expiry.seats[0], 3);
	cr_assert_geq(shard_durable_seq(r->s), 3,
	              "an expiry published before its tick was durable");
	close_shard(r->s);
	r->s = NULL;

	static jinfo j[8];
	uint32_t nj = journal_scan(j, 8);
	cr_assert_eq(nj, 3);
	cr_assert_eq(j[2].kind, ENTRY_TICK);
	cr_assert_eq(j[2].ts_ms, T0_MS + BO_TTL_MS_MIN + 1);

	shard_recovery rec;
	shard *s2 = open_ok(&cfg, &rec);
	cr_assert_eq(rec.last_seq, 3);
	uint8_t state = 0xff;
	uint64_t owner = 1;
	cr_assert_eq(engine_seat(shard_engine(s2), EV, 3, &state, &owner), 0);
	cr_assert_eq(state, BO_SEAT_FREE, "seat 3 is %s after recovery",
	             bo_seat_state_str(state));
	cr_assert_eq(owner, 0);
	engine_stats st;
	engine_stats_get(shard_engine(s2), &st);
	cr_assert_eq(st.holds, 0);
	cr_assert_eq(st.expired_total, 1);
	cr_assert_eq(engine_client_holds(shard_engine(s2), 4242), 0);
	close_shard(s2);
	run_free(r);
}

/* ==== 6. Corruption refused on open ======================================= */

Test(shard_journal, a_corrupt_record_with_good_records_after_it_is_refused_unless_forced)
{
	shard_config cfg = durable_config();
	run *r = run_new();
	r->s = open_ok(&cfg, NULL);
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r);
	cr_assert(wait_results(r, 1));
	sequential_load(r, 40, 1); /* one write per command: many units */
	cr_assert_null(shard_failed(r->s));
	close_shard(r->s);
	r->s = NULL;

	/* Find record 15: where it is. */
	const uint64_t victim = 15;
	journal_reader *jr;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(data_root, 0, NULL, &jr, err, sizeof(err)), 0, "%s", err);
	journal_record rec;
	char file[512] = "";
	uint64_t off = 0, last = 0;
	while (journal_reader_next(jr, &rec) == 1) {
		if (rec.seq == victim) {
			snprintf(file, sizeof(file), "%s", rec.file);
			off = rec.offset;
		}
		last = rec.seq;
	}
	journal_reader_close(jr);
	cr_assert_gt(last, victim + 5, "too few records after the victim");
	cr_assert_neq(file[0], '\0');
	flip_byte(file, off + 48 + 1); /* a byte of its payload */

	shard *s2 = NULL;
	shard_recovery srec;
	int rc = shard_open(&cfg, &s2, &srec, err, sizeof(err));
	cr_log_info("corrupt seq %" PRIu64 ": shard_open = %d: %s", victim, rc, err);
	cr_assert_eq(rc, -EBADMSG, "shard_open: %d (%s)", rc, err);
	cr_assert_null(s2);
	char want[64];
	cr_assert_not_null(strstr(err, file), "the message does not name %s: %s", file, err);
	snprintf(want, sizeof(want), "offset %" PRIu64, off);
	cr_assert_not_null(strstr(err, want), "the message does not say '%s': %s", want, err);
	snprintf(want, sizeof(want), "seq %" PRIu64, victim);
	cr_assert_not_null(strstr(err, want), "the message does not say '%s': %s", want, err);

	cfg.journal.force_truncate = 1;
	s2 = open_ok(&cfg, &srec);
	cr_assert_eq(srec.last_seq, victim - 1);
	cr_assert(srec.journal.forced, "the cut is not marked forced");
	cr_assert_geq(srec.journal.records_cut, last - victim);
	/* The state is that of the records before the cut. */
	uint64_t replay_seq;
	uint64_t d = replay_digest(&cfg, &replay_seq);
	cr_assert_eq(replay_seq, victim - 1);
	cr_assert_eq(engine_digest(shard_engine(s2)), d);
	close_shard(s2);
	run_free(r);
}

/* ==== 7. Seat maps and the journal's record size ========================== */

/* A CREATE_EVENT is journaled as one record, map included. The defect: a
 * map valid by every other rule (1 Mi seats, categories alternating seat by
 * seat: 3.4 MB of description) was applied, then journal_append refused
 * the record (-EMSGSIZE > 2 MiB) and the shard stopped. Now the engine
 * answers INVALID/MAP_INVALID (journaled without its map), the largest map
 * that is valid is journaled whole, and the shard goes on answering
 * durably; the journal replays and verifies to the same state. Journal
 * limits are the production ones (2 MiB records). */
Test(shard_journal, a_map_too_large_for_a_record_is_map_invalid_and_the_shard_goes_on)
{
	shard_config cfg = durable_config();
	journal_options_default(&cfg.journal);
	cr_assert_eq(cfg.journal.payload_bytes_max, JOURNAL_PAYLOAD_BYTES_MAX);
	cfg.engine.seats_max = 2 * BO_SEATS_PER_EVENT_MAX; /* room for both maps */
	bo_seatmap *alt = descmap_alternating();
	bo_seatmap *largest = descmap_sized(BO_MAP_DESC_BYTES_MAX);
	cr_assert(alt != NULL && largest != NULL);

	run *r = run_new();
	r->s = open_ok(&cfg, NULL);
	cr_assert_eq(shard_start(r->s), 0);
	submit_create(r); /* tag 0: EV, the load's event */
	bo_cmd big[2] = {create_cmd(alt), create_cmd(largest)};
	big[0].event_id = EV + 1, big[0].request_id = 2; /* tag 1 */
	big[1].event_id = EV + 2, big[1].request_id = 3; /* tag 2 */
	submit(r, &big[0], 1);
	submit(r, &big[1], 1);
	bool came = wait_results(r, 3);
	cr_assert(came, "%u of 3 results; shard failed: %s", r->results,
	          shard_failed(r->s) ? shard_failed(r->s) : "no");
	cr_assert_eq(r->outs[1].u.result.status, BO_INVALID);
	cr_assert_eq(r->outs[1].u.result.detail, BO_D_MAP_INVALID, "detail %s",
	             bo_detail_str(r->outs[1].u.result.detail));
	cr_assert_eq(r->outs[2].u.result.status, BO_OK, "the largest valid map: %s/%s",
	             bo_status_str(r->outs[2].u.result.status),
	             bo_detail_str(r->outs[2].u.result.detail));

	/* Later commands are still answered, each with its journal seq. */
	submit_load(r, 0, 40);
	cr_assert(wait_results(r, r->submitted), "%u of %u results; shard failed: %s", r->results,
	          r->submitted, shard_failed(r->s) ? shard_failed(r->s) : "no");
	cr_assert_null(shard_failed(r->s), "%s", shard_failed(r->s));
	uint64_t seq_last;
	cr_assert_eq(check_outputs(r, &seq_last), r->submitted);
	uint64_t journaled = 0;
	for (uint32_t t = 0; t < r->submitted; t++)
		journaled += entry_journals(&r->cmds[t]) ? 1 : 0;
	cr_assert_eq(seq_last, journaled);
	cr_assert_eq(shard_durable_seq(r->s), journaled);
	shard_stop(r->s);
	uint64_t before = engine_digest(shard_engine(r->s));
	close_shard(r->s);
	r->s = NULL;

	/* The journal holds the rejected CREATE_EVENT (without its map) and the
	 * largest one (with it), replays verifying every result, and recovery
	 * rebuilds the state the acknowledgements promise. */
	static jinfo j[64];
	uint32_t nj = journal_scan(j, 64);
	cr_assert_eq(nj, journaled);
	cr_assert(j[1].op == BO_OP_CREATE_EVENT && j[1].status == BO_INVALID);
	cr_assert(j[2].op == BO_OP_CREATE_EVENT && j[2].status == BO_OK);
	uint64_t replayed_seq;
	cr_assert_eq(replay_digest(&cfg, &replayed_seq), before);
	cr_assert_eq(replayed_seq, journaled);
	shard_recovery rec;
	shard *s2 = open_ok(&cfg, &rec);
	cr_assert_eq(rec.last_seq, journaled);
	cr_assert_eq(engine_digest(shard_engine(s2)), before);
	cr_assert_eq(acked_digest(&cfg, r), before);
	close_shard(s2);
	run_free(r);
	bo_seatmap_free(alt);
	bo_seatmap_free(largest);
}
