/*
 * follower_test.c — proves the journal follower (shard/follower.h) keeps its
 * contract on a real durable shard:
 *
 *  1. Every durable record is delivered exactly once, in order, with the
 *     seq, timestamp and payload the journal holds, by a follower running
 *     while the writer appends and rolls segments (64 KiB segments, a few
 *     hundred records each); each delivered seq is checked against the
 *     shard's durable sequence at that moment.
 *  2. Starting after seq N begins at N + 1; after the durable sequence it
 *     is caught up (0 without waiting); beyond it, -ERANGE.
 *  3. A follower waiting at the end (caught up, asleep in follower_next)
 *     wakes when a new batch becomes durable: the test waits until the
 *     follower's thread sleeps, submits one command, and the call returns
 *     the record long before its 30 s timeout (which would fail the test).
 *  4. It never returns a record beyond the durable sequence, even when the
 *     record's bytes are in the segment file: the journal's fault hook
 *     writes a unit's bytes to the file itself and then holds the unit's
 *     I/O back, so the records are in the file but not durable; the
 *     follower must time out (0) there, and deliver them once released.
 *  5. A start that was pruned is an error (-ENODATA), not a silent skip:
 *     for a follower opened afterwards from seq 0, and for one opened
 *     before the prune that fell behind it.
 *  6. follower_feed (a start and a sink): records go to the sink in order
 *     up to the bound asked for (1), a sink's refusal is returned and the
 *     refused record comes again on the next call (nothing skipped), and
 *     past the durable sequence it returns 0 (caught up).
 *
 * How: shards in mkdtemp directories under /tmp with a fake clock (so idle
 * ticks journal nothing), commands submitted and their results drained by
 * the test thread, followers in the test thread or a second thread. Waits
 * are for events (results drained, a thread asleep, a segment gone), each
 * bounded by WAIT_MS with a message naming what never came. Where the
 * kernel refuses io_uring the tests skip loudly.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <criterion/criterion.h>

#include "base/clock.h"
#include "journal/journal.h"
#include "shard/follower.h"
#include "shard/shard.h"
#include "tests/support/cmd.h"
#include "tests/support/tmpdir.h"

#define EV 9u
#define SEATS 256u
#define ADMIN_CLIENT 1u
#define BLOCK_CLIENT 2u
#define WAIT_MS 30000 /* longest wait for any event before a test fails */
#define RECORDS_MAX 8192u

/* ---- Fixture ------------------------------------------------------------- */

static char data_root[64];
static shard *the_shard;

static void setup(void)
{
	int rc = tmpdir_make(data_root, sizeof(data_root), "bo-follower");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
}

static void teardown(void)
{
	shard_free(the_shard);
	the_shard = NULL;
	tmpdir_remove(data_root);
}

TestSuite(follower, .init = setup, .fini = teardown, .timeout = 120);

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return 1700000000000; /* never moves: idle ticks journal nothing */
}

static shard_config config(void)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.engine.seats_max = 1u << 12;
	cfg.engine.claims_max = 1024;
	cfg.engine.idem_capacity = 1u << 12;
	cfg.engine.events_max = 4;
	cfg.in_slots = BO_BATCH_MAX;
	cfg.out_slots = 2 * BO_BATCH_MAX;
	cfg.tick_ms = 2;
	cfg.clock = fake_clock;
	cfg.data_dir = data_root;
	/* Small segments: a few hundred records each, so loads roll often. */
	cfg.journal.segment_bytes = 64u << 10;
	cfg.journal.buffer_bytes = 16u << 10;
	cfg.journal.payload_bytes_max = 8u << 10;
	return cfg;
}

static shard *open_started(const shard_config *cfg)
{
	char err[JOURNAL_ERR_LEN];
	shard *s = NULL;
	int rc = shard_open(cfg, &s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "shard_open: %s", err);
	cr_assert_eq(shard_start(s), 0);
	the_shard = s;
	return s;
}

/* ---- Commands -------------------------------------------------------------- */

static bo_seatmap *the_map;
static uint64_t next_request = 1;

static void submit1(shard *s, const bo_cmd *c)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	int rc;
	while ((rc = shard_submit(s, c, NULL, 1)) == -EBUSY && bo_clock_ms() < deadline)
		ring_wait(shard_output(s), 1000000); /* the output is drained by wait_results */
	cr_assert_eq(rc, 0, "shard_submit: %d", rc);
}

/* Drains the output ring until `n` results came. */
static void wait_results(shard *s, uint32_t n)
{
	ring *o = shard_output(s);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	uint32_t got = 0;
	while (got < n) {
		uint64_t first;
		uint32_t k = ring_poll(o, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < k; i++)
			got += ((const shard_out *)ring_slot(o, first + i))->kind == SHARD_OUT_RESULT;
		ring_release(o, k);
		if (k > 0)
			continue;
		cr_assert_null(shard_failed(s), "%s", shard_failed(s));
		cr_assert_lt(bo_clock_ms(), deadline, "only %u of %u results came", got, n);
		ring_wait(o, 1000000);
	}
}

static void create_event(shard *s)
{
	the_map = tcmd_rows_map(4, SEATS / 4, 1, 10);
	bo_cmd c = tcmd_create(ADMIN_CLIENT, 1, EV, the_map);
	submit1(s, &c);
	wait_results(s, 1);
}

/* Command k of the load: BLOCK then UNBLOCK of seat (k / 2) % SEATS, each
 * journaled (a state change with a client) and each a success only in
 * order. */
static bo_cmd load_cmd(uint32_t k)
{
	uint32_t seat = (k / 2) % SEATS;
	return tcmd_seats(k % 2 == 0 ? BO_OP_BLOCK : BO_OP_UNBLOCK, BLOCK_CLIENT, next_request++, EV,
	                  &seat, 1);
}

/* `n` load commands in batches of up to `per`, each batch's results
 * awaited (so batches become separate journal writes). */
static void load(shard *s, uint32_t n, uint32_t per)
{
	static uint32_t k;
	bo_cmd c[64];
	cr_assert_leq(per, 64u);
	for (uint32_t done = 0; done < n;) {
		uint32_t m = n - done < per ? n - done : per;
		for (uint32_t i = 0; i < m; i++)
			c[i] = load_cmd(k++);
		const int64_t deadline = bo_clock_ms() + WAIT_MS;
		int rc;
		while ((rc = shard_submit(s, c, NULL, m)) == -EBUSY && bo_clock_ms() < deadline)
			;
		cr_assert_eq(rc, 0, "shard_submit: %d", rc);
		wait_results(s, m);
		done += m;
	}
}

/* ---- The journal as a reader sees it -------------------------------------- */

typedef struct rec_copy {
	uint64_t seq;
	int64_t ts;
	uint32_t len;
	uint8_t *payload;
} rec_copy;

static void copy_rec(rec_copy *dst, const journal_record *r)
{
	dst->seq = r->seq;
	dst->ts = r->timestamp_ms;
	dst->len = r->payload_len;
	dst->payload = malloc(r->payload_len ? r->payload_len : 1);
	cr_assert_not_null(dst->payload);
	memcpy(dst->payload, r->payload, r->payload_len);
}

/* Every record of the shard's journal after `after`. Returns the count. */
static uint32_t read_journal(uint64_t after, rec_copy *out, uint32_t cap)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(data_root, 0, NULL, after, &r, err, sizeof(err)), 0, "%s", err);
	journal_record jr;
	uint32_t n = 0;
	int rc;
	while ((rc = journal_reader_next(r, &jr)) == 1) {
		cr_assert_lt(n, cap);
		copy_rec(&out[n++], &jr);
	}
	cr_assert_eq(rc, 0, "journal reader: %s", journal_reader_error(r));
	journal_reader_close(r);
	return n;
}

static void free_recs(rec_copy *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		free(r[i].payload);
}

static void assert_same(const rec_copy *got, const rec_copy *want)
{
	cr_assert_eq(got->seq, want->seq);
	cr_assert_eq(got->ts, want->ts, "seq %" PRIu64 ": timestamp", got->seq);
	cr_assert_eq(got->len, want->len, "seq %" PRIu64 ": payload length", got->seq);
	cr_assert_eq(memcmp(got->payload, want->payload, got->len), 0, "seq %" PRIu64 ": payload", got->seq);
}

static uint32_t count_segments(uint64_t *first_seq)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/shard-0000", data_root);
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	uint32_t n = 0;
	uint64_t first = UINT64_MAX;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".seg") == 0) {
			uint64_t f = strtoull(de->d_name, NULL, 10);
			first = f < first ? f : first;
			n++;
		}
	}
	closedir(d);
	*first_seq = first;
	return n;
}

/* ==== 1. Everything, once, in order, while the writer rolls ============== */

typedef struct follow_arg {
	follower *f;
	shard *s;
	atomic_bool done; /* the load is over and the shard stopped */
	rec_copy *recs;
	uint32_t n;
	int rc;
	char why[256];
} follow_arg;

static void *follow_main(void *p)
{
	follow_arg *a = p;
	for (;;) {
		journal_record jr;
		/* Read `done` before the call: a 0 after it means caught up with
		 * everything the stopped shard made durable. */
		bool done = atomic_load(&a->done);
		int rc = follower_next(a->f, &jr, 50);
		if (rc == 0 && done)
			return NULL;
		if (rc == 0)
			continue;
		uint64_t durable = shard_durable_seq(a->s);
		if (rc < 0 || jr.seq > durable || a->n == RECORDS_MAX) {
			a->rc = rc < 0 ? rc : -1;
			snprintf(a->why, sizeof(a->why), "rc %d seq %" PRIu64 " durable %" PRIu64 " n %u: %s", rc,
				 rc == 1 ? jr.seq : 0, durable, a->n, follower_error(a->f));
			return NULL;
		}
		copy_rec(&a->recs[a->n++], &jr);
	}
}

Test(follower, every_durable_record_is_delivered_once_in_order_while_segments_roll)
{
	shard_config cfg = config();
	shard *s = open_started(&cfg);
	follow_arg a = {.s = s, .recs = calloc(RECORDS_MAX, sizeof(rec_copy))};
	cr_assert_not_null(a.recs);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, 0, &a.f, err, sizeof(err)), 0, "%s", err);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, follow_main, &a), 0);

	create_event(s);
	load(s, 1500, 1);  /* one record per write: many units */
	load(s, 2500, 50); /* bigger units, several segments */
	shard_stop(s);
	const uint64_t durable = shard_durable_seq(s);
	atomic_store(&a.done, true);
	pthread_join(t, NULL);
	cr_assert_eq(a.rc, 0, "follower: %s", a.why);

	rec_copy *want = calloc(RECORDS_MAX, sizeof(rec_copy));
	cr_assert_not_null(want);
	uint32_t n = read_journal(0, want, RECORDS_MAX);
	uint64_t first_seg;
	uint32_t segs = count_segments(&first_seg);
	cr_log_info("%u records, %u segments, durable %" PRIu64, n, segs, durable);
	cr_assert_geq(segs, 5u, "the load did not roll segments: the test needs more");
	cr_assert_eq(n, durable, "the journal holds %u records, durable %" PRIu64, n, durable);
	cr_assert_eq(a.n, n, "delivered %u of %u records", a.n, n);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(a.recs[i].seq, (uint64_t)i + 1, "record %u has seq %" PRIu64, i, a.recs[i].seq);
		assert_same(&a.recs[i], &want[i]);
	}
	cr_assert_eq(follower_position(a.f), durable);
	follower_close(a.f);
	free_recs(a.recs, a.n);
	free_recs(want, n);
	free(a.recs);
	free(want);
}

/* ==== 2. Where it starts ==================================================== */

Test(follower, starting_after_n_begins_at_n_plus_one)
{
	shard_config cfg = config();
	shard *s = open_started(&cfg);
	create_event(s);
	load(s, 300, 10);
	shard_stop(s);
	const uint64_t durable = shard_durable_seq(s);
	cr_assert_eq(durable, 301);
	rec_copy *want = calloc(RECORDS_MAX, sizeof(rec_copy));
	cr_assert_not_null(want);
	uint32_t n = read_journal(0, want, RECORDS_MAX);
	cr_assert_eq(n, durable);

	const uint64_t starts[] = {0, 1, 2, 150, 299, 300};
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		follower *f;
		char err[JOURNAL_ERR_LEN];
		cr_assert_eq(follower_open(s, starts[i], &f, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(follower_position(f), starts[i]);
		for (uint64_t seq = starts[i] + 1; seq <= durable; seq++) {
			journal_record jr;
			int rc = follower_next(f, &jr, 0);
			cr_assert_eq(rc, 1, "from %" PRIu64 ": rc %d at seq %" PRIu64 ": %s", starts[i], rc, seq,
				     follower_error(f));
			rec_copy got;
			copy_rec(&got, &jr);
			assert_same(&got, &want[seq - 1]);
			free(got.payload);
		}
		journal_record jr;
		cr_assert_eq(follower_next(f, &jr, 0), 0, "more than the durable records from %" PRIu64, starts[i]);
		follower_close(f);
	}

	/* Caught up from the start; and beyond the journal: refused. */
	follower *f;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, durable, &f, err, sizeof(err)), 0, "%s", err);
	journal_record jr;
	cr_assert_eq(follower_next(f, &jr, 0), 0);
	follower_close(f);
	cr_assert_eq(follower_open(s, durable + 1, &f, err, sizeof(err)), -ERANGE);
	cr_assert_not_null(strstr(err, "durable"), "unclear error: %s", err);
	free_recs(want, n);
	free(want);
}

/* ==== 3. A waiting follower wakes ========================================== */

typedef struct waiter_arg {
	follower *f;
	atomic_int tid;
	int rc;
	uint64_t seq;
} waiter_arg;

static void *waiter_main(void *p)
{
	waiter_arg *a = p;
	atomic_store(&a->tid, (int)syscall(SYS_gettid));
	journal_record jr;
	a->rc = follower_next(a->f, &jr, WAIT_MS);
	a->seq = a->rc == 1 ? jr.seq : 0;
	return NULL;
}

/* Is thread `tid` of this process asleep (state S in /proc)? */
static bool thread_sleeps(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the name may hold spaces */
	return p && p[1] == ' ' && p[2] == 'S';
}

Test(follower, a_waiting_follower_wakes_when_a_new_batch_becomes_durable)
{
	shard_config cfg = config();
	shard *s = open_started(&cfg);
	create_event(s);
	load(s, 20, 5);
	const uint64_t durable = shard_durable_seq(s);
	follower *f;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, durable, &f, err, sizeof(err)), 0, "%s", err);
	journal_record jr;
	cr_assert_eq(follower_next(f, &jr, 0), 0, "caught up at the start");

	waiter_arg a = {.f = f};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, waiter_main, &a), 0);
	/* Until the follower's thread sleeps in follower_next (the only
	 * place it can sleep), so the record below becomes durable while it
	 * waits, not before it looks. */
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (atomic_load(&a.tid) == 0 || !thread_sleeps(atomic_load(&a.tid))) {
		cr_assert_lt(bo_clock_ms(), deadline, "the follower's thread never went to sleep");
		sched_yield();
	}
	int64_t t0 = bo_clock_ms();
	load(s, 1, 1);
	pthread_join(t, NULL);
	int64_t waited = bo_clock_ms() - t0;
	cr_log_info("woke %" PRId64 " ms after the submit", waited);
	cr_assert_eq(a.rc, 1, "follower_next returned %d (0: slept through the new record until its timeout): %s",
		     a.rc, follower_error(f));
	cr_assert_eq(a.seq, durable + 1);
	cr_assert_leq(a.seq, shard_durable_seq(s));
	follower_close(f);
}

/* ==== 4. Never beyond the durable sequence ================================= */

/* The hook: when armed, the next WRITE's bytes go to the file at once (as if
 * the write had completed), then the I/O is held until released, so its
 * records sit in the segment file while not durable. */
typedef struct hold {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool armed, holding, released;
	uint64_t seq_first, seq_last;
} hold;

static hold the_hold = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int hold_hook(void *ctx, journal_io *io)
{
	hold *h = ctx;
	pthread_mutex_lock(&h->mu);
	if (io->kind == JOURNAL_IO_WRITE && h->armed) {
		h->armed = false;
		int fd = open(io->path, O_WRONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? pwrite(fd, io->buf, io->len, (off_t)io->offset) : -1;
		if (fd >= 0)
			close(fd);
		h->seq_first = n == (ssize_t)io->len ? io->seq_first : 0;
		h->seq_last = io->seq_last;
		h->holding = true;
		pthread_cond_broadcast(&h->cv);
		while (!h->released)
			pthread_cond_wait(&h->cv, &h->mu);
		h->holding = false;
	}
	pthread_mutex_unlock(&h->mu);
	return 0;
}

Test(follower, never_returns_a_record_that_is_in_the_file_but_not_durable)
{
	shard_config cfg = config();
	cfg.journal.fault = hold_hook;
	cfg.journal.fault_ctx = &the_hold;
	shard *s = open_started(&cfg);
	create_event(s);
	load(s, 40, 4);
	const uint64_t durable = shard_durable_seq(s);
	follower *f;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, 0, &f, err, sizeof(err)), 0, "%s", err);

	pthread_mutex_lock(&the_hold.mu);
	the_hold.armed = true;
	pthread_mutex_unlock(&the_hold.mu);
	bo_cmd c[8];
	for (uint32_t i = 0; i < 8; i++)
		c[i] = load_cmd(1000 + i);
	cr_assert_eq(shard_submit(s, c, NULL, 8), 0);
	pthread_mutex_lock(&the_hold.mu);
	while (!the_hold.holding)
		pthread_cond_wait(&the_hold.cv, &the_hold.mu);
	pthread_mutex_unlock(&the_hold.mu);
	cr_assert_eq(the_hold.seq_first, durable + 1, "the held unit's bytes were not written to the file");
	cr_assert_eq(shard_durable_seq(s), durable, "the held unit is durable?");

	/* Everything durable comes out, then nothing: the held records are
	 * in the file, valid, and not durable. */
	journal_record jr;
	int rc;
	uint64_t seen = 0;
	while ((rc = follower_next(f, &jr, 0)) == 1) {
		cr_assert_leq(jr.seq, shard_durable_seq(s), "seq %" PRIu64 " delivered before it was durable", jr.seq);
		seen = jr.seq;
	}
	cr_assert_eq(rc, 0, "%s", follower_error(f));
	cr_assert_eq(seen, durable);
	rc = follower_next(f, &jr, 200);
	cr_assert_eq(rc, 0, "seq %" PRIu64 " (of the held unit %" PRIu64 "..%" PRIu64 ") delivered, durable %" PRIu64,
		     rc == 1 ? jr.seq : 0, the_hold.seq_first, the_hold.seq_last, shard_durable_seq(s));

	/* Released: the unit becomes durable and its records come out. */
	pthread_mutex_lock(&the_hold.mu);
	the_hold.released = true;
	pthread_cond_broadcast(&the_hold.cv);
	pthread_mutex_unlock(&the_hold.mu);
	wait_results(s, 8);
	for (uint64_t seq = durable + 1; seq <= the_hold.seq_last; seq++) {
		rc = follower_next(f, &jr, WAIT_MS);
		cr_assert_eq(rc, 1, "seq %" PRIu64 ": rc %d %s", seq, rc, follower_error(f));
		cr_assert_eq(jr.seq, seq);
		cr_assert_leq(jr.seq, shard_durable_seq(s));
	}
	follower_close(f);
}

/* ==== 5. A pruned start is an error ======================================= */

Test(follower, a_pruned_start_is_an_error_not_a_skip)
{
	shard_config cfg = config();
	cfg.snapshot_every = 40;
	cfg.prune = 1;
	shard *s = open_started(&cfg);
	follower *behind;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, 0, &behind, err, sizeof(err)), 0, "%s", err);
	create_event(s);
	load(s, 2000, 20);
	/* Until the keeper has pruned the first segment (a snapshot covering it
	 * comes once the load's snapshots are done). */
	uint64_t first;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (count_segments(&first) > 0 && first == 1) {
		cr_assert_lt(bo_clock_ms(), deadline, "no segment was pruned");
		struct timespec ts = {.tv_nsec = 1000000};
		nanosleep(&ts, NULL);
	}
	/* Stopped, the keeper finishes what it is doing and prunes no more:
	 * the journal's start stays put for what follows. */
	shard_stop(s);
	count_segments(&first);
	cr_log_info("the journal starts at seq %" PRIu64 " now", first);
	cr_assert_gt(first, 1);

	journal_record jr;
	int rc = follower_next(behind, &jr, 0);
	cr_assert_eq(rc, -ENODATA, "a follower behind the prune: rc %d seq %" PRIu64 ": %s", rc,
		     rc == 1 ? jr.seq : 0, follower_error(behind));
	cr_assert_not_null(strstr(follower_error(behind), "pruned"), "unclear: %s", follower_error(behind));
	cr_assert_eq(follower_next(behind, &jr, 0), -ENODATA, "the error sticks");
	follower_close(behind);

	follower *late;
	rc = follower_open(s, 0, &late, err, sizeof(err));
	if (rc == 0) {
		rc = follower_next(late, &jr, 0);
		cr_log_info("from 0 after the prune: %d %s", rc, follower_error(late));
		follower_close(late);
	}
	cr_assert_eq(rc, -ENODATA, "from 0 after the prune: rc %d", rc);

	/* From the first record left, all is there. */
	cr_assert_eq(follower_open(s, first - 1, &late, err, sizeof(err)), 0, "%s", err);
	rc = follower_next(late, &jr, 0);
	cr_assert_eq(rc, 1, "%s", follower_error(late));
	cr_assert_eq(jr.seq, first);
	follower_close(late);
}

/* ==== 6. follower_feed ===================================================== */

typedef struct sink_log {
	uint64_t seqs[64];
	uint32_t n;
	uint64_t refuse; /* refuse this seq once (0: none) */
} sink_log;

static int log_sink(void *ctx, const journal_record *rec)
{
	sink_log *l = ctx;
	if (rec->seq == l->refuse) {
		l->refuse = 0;
		return -EAGAIN;
	}
	cr_assert_lt(l->n, 64u);
	l->seqs[l->n++] = rec->seq;
	return 0;
}

Test(follower, feed_delivers_in_order_up_to_the_bound_and_again_what_its_sink_refused)
{
	shard_config cfg = config();
	shard *s = open_started(&cfg);
	create_event(s);
	load(s, 30, 4);
	const uint64_t durable = shard_durable_seq(s);
	cr_assert(durable >= 20 && durable <= 64, "durable %" PRIu64, durable);
	follower *f;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open(s, 0, &f, err, sizeof(err)), 0, "%s", err);
	sink_log l = {.refuse = 7};
	cr_assert_eq(follower_feed(f, 10, log_sink, &l, 0), -EAGAIN, "the sink's refusal is returned");
	cr_assert_eq(follower_position(f), 6);
	cr_assert_eq(follower_feed(f, 10, log_sink, &l, 0), 1, "%s", follower_error(f));
	cr_assert_eq(follower_position(f), 10);
	cr_assert_eq(follower_feed(f, UINT64_MAX, log_sink, &l, 0), 0, "caught up: %s", follower_error(f));
	cr_assert_eq(follower_position(f), durable);
	cr_assert_eq(l.n, durable);
	for (uint32_t i = 0; i < l.n; i++)
		cr_assert_eq(l.seqs[i], i + 1, "record %u delivered as seq %" PRIu64, i + 1, l.seqs[i]);
	follower_close(f);
}
