/*
 * snapshot_builder_test.c — proves that a snapshot built from the journal
 * (the shard's builder thread: a replica following the durable records,
 * shard/replica.h) is the snapshot of the live engine:
 *
 *  1. Byte for byte: over many random streams (seeds), at several points
 *     of each, the file the builder wrote for the shard's last record S
 *     equals snapshot_encode() of the writer's own engine at S. The streams
 *     are tests/support/stream_gen.h's (holds of every kind, extends,
 *     releases, confirms, cancels, blocks, repeats and conflicts of earlier
 *     requests) mixed with what the journal does not hold: queries with and
 *     without client ids (some reusing a recent request key), mutating
 *     commands without a client id, unknown ops; the clock moves 0..400 ms
 *     per batch, sometimes past every hold's expiry and the idempotency
 *     window, so expiries happen in batches and in idle ticks. Every point
 *     after the first loads the previous snapshot (default) or keeps the
 *     builder's engine (snapshot_keep_engine, every other seed), so both
 *     ways of getting the builder's engine are compared. A difference
 *     names the seed, the point and the first differing byte.
 *  2. The builder never gets ahead of the durable journal: with a journal
 *     write held (its records in the segment file, not durable) and a
 *     snapshot asked for, the builder waits (its thread asleep) and no
 *     snapshot of those records, official or temporary, appears; released,
 *     the snapshot comes, at a sequence the journal covers.
 *
 * How: real durable shards in mkdtemp directories on a test clock (idle
 * ticks journal nothing unless the clock moved), snapshots asked for with
 * shard_snapshot_request() and waited for (shard_stats.snapshots, bounded
 * by WAIT_MS); the live engine read once the shard is stopped (and
 * restarted for the next point). Test 1 runs the journal without
 * fdatasync (its durability is not what it tests: the follower still reads
 * only what the shard published durable) so that many seeds fit in a few
 * seconds; BO_SNAP_SEEDS=N runs more (default 16).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "base/parse.h"
#include "base/clock.h"
#include "engine/snapshot.h"
#include "shard/apply.h"
#include "shard/replica.h"
#include "shard/shard.h"
#include "shard/snapfile.h"
#include "tests/support/cmd.h"
#include "tests/support/stream_gen.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 30000

static _Atomic int64_t test_clock_ms = 1700000000000;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&test_clock_ms);
}

/* The run: the shard, its directory, and what the outputs said. */
typedef struct brun {
	char dir[256];
	char shard_dir[300];
	shard *s;
	tstream_gen g;
	uint64_t last_seq; /* highest journal seq seen in an output */
	int64_t last_ts;   /* its batch time */
} brun;

static void note_out(brun *r, const shard_out *o)
{
	if (o->seq > r->last_seq) {
		r->last_seq = o->seq;
		r->last_ts = o->now_ms;
	}
	if (o->kind == SHARD_OUT_RESULT)
		tstream_note(&r->g, &o->u.result);
}

/* Submits n commands and waits for their n results. */
static void submit_wait(brun *r, const bo_cmd *c, uint32_t n)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	ring *out = shard_output(r->s);
	bool in = false;
	uint32_t got = 0;
	while (!in || got < n) {
		if (!in)
			in = shard_submit(r->s, c, NULL, n) == 0;
		uint64_t first;
		uint32_t k = ring_poll(out, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < k; i++) {
			const shard_out *o = ring_slot(out, first + i);
			note_out(r, o);
			got += o->kind == SHARD_OUT_RESULT;
		}
		ring_release(out, k);
		if (k == 0) {
			cr_assert_null(shard_failed(r->s), "%s", shard_failed(r->s));
			cr_assert_lt(bo_clock_ms(), deadline, "%u of %u results", got, n);
			ring_wait(out, 1000000);
		}
	}
}

/* Something the journal does not hold: a query (with or without a client
 * id, sometimes the key of a recent request), a mutating command without
 * a client id, an unknown op. */
static bo_cmd noise_cmd(brun *r)
{
	tstream_gen *g = &r->g;
	uint64_t ev = TSTREAM_EVENT_FIRST + tstream_rnd(g, TSTREAM_EVENTS);
	bo_cmd c;
	switch (tstream_rnd(g, 5)) {
	case 0:
		c = tcmd_query_avail(ev);
		break;
	case 1:
		c = tcmd_query_seats(ev, tstream_rnd(g, 40), 1 + tstream_rnd(g, 8));
		break;
	case 2: {
		uint32_t seat = tstream_rnd(g, 48);
		c = tcmd_hold_seats(0, 0, ev, &seat, 1, 2000); /* no client: refused, not journaled */
		return c;
	}
	case 3:
		c = tcmd(200, 10 + tstream_rnd(g, 6), g->request + 1, ev); /* an unknown op */
		return c;
	default:
		c = tcmd_query_avail(ev);
		c.client_id = 10 + tstream_rnd(g, 6);
		c.request_id = g->request - tstream_rnd(g, 3); /* a key in the window */
		return c;
	}
	if (tstream_rnd(g, 2)) {
		c.client_id = 10 + tstream_rnd(g, 6);
		c.request_id = ++g->request;
	}
	return c;
}

/* n commands in random batches of 1..32, a quarter of them noise. */
static void stream(brun *r, uint32_t n)
{
	bo_cmd cmds[32];
	for (uint32_t done = 0; done < n;) {
		uint32_t m = 1 + tstream_rnd(&r->g, 32);
		if (m > n - done)
			m = n - done;
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = tstream_rnd(&r->g, 4) == 0 ? noise_cmd(r) : tstream_random_cmd(&r->g);
		uint32_t p = tstream_rnd(&r->g, 100);
		/* Mostly small steps; sometimes past every hold and the idempotency
		 * window (BO_IDEM_WINDOW_MS), so whole tables age out. */
		int64_t step = p < 97 ? 100 * (int64_t)tstream_rnd(&r->g, 5) : (int64_t)BO_IDEM_WINDOW_MS + 100;
		atomic_fetch_add(&test_clock_ms, step);
		submit_wait(r, cmds, m);
		done += m;
	}
}

static void open_run(brun *r, uint64_t seed, int keep, journal_sync sync)
{
	memset(r, 0, sizeof(*r));
	r->g.rng = seed;
	cr_assert_eq(tmpdir_make(r->dir, sizeof(r->dir), "bo-snapbuild"), 0);
	snprintf(r->shard_dir, sizeof(r->shard_dir), "%s/shard-0000", r->dir);
	shard_config cfg;
	tstream_shard_config(&cfg, r->dir, test_clock, 0, 64u << 10);
	cfg.retain_seq = UINT64_MAX; /* no committer: prune what snapshots cover */
	cfg.snapshot_keep_engine = keep;
	cfg.journal.sync = sync;
	cfg.tick_ms = 1; /* an idle writer takes a snapshot request within 1 ms */
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(&cfg, &r->s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("SKIP: io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(shard_start(r->s), 0);
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++r->g.request, TSTREAM_EVENT_FIRST + i, m);
		submit_wait(r, &c, 1);
		bo_seatmap_free(m);
	}
}

static void close_run(brun *r)
{
	shard_free(r->s);
	tmpdir_remove(r->dir);
}

/* Waits until the shard has made `n` snapshots official. */
static void wait_snapshots(brun *r, uint64_t n, const char *what)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	shard_stats st;
	for (shard_stats_get(r->s, &st); st.snapshots < n; shard_stats_get(r->s, &st)) {
		cr_assert_null(shard_failed(r->s), "%s", shard_failed(r->s));
		cr_assert_lt(bo_clock_ms(), deadline, "%s: snapshot %" PRIu64 " never came", what, n);
		usleep(1000);
	}
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	struct stat sb;
	cr_assert_eq(fstat(fd, &sb), 0);
	uint8_t *b = malloc((size_t)sb.st_size + 1);
	cr_assert_not_null(b);
	cr_assert_eq(pread(fd, b, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return b;
}

/* One point: a snapshot of the last record, compared with the live engine
 * (the shard is stopped, then started again). */
static void compare_point(brun *r, uint64_t seed, int point, uint64_t *snaps)
{
	shard_snapshot_request(r->s);
	wait_snapshots(r, ++*snaps, "asked");
	shard_stop(r->s);
	const uint64_t S = shard_durable_seq(r->s);
	cr_assert_eq(S, r->last_seq, "seed %" PRIu64 " point %d: durable %" PRIu64 ", outputs to %" PRIu64, seed,
		     point, S, r->last_seq);
	char path[512];
	cr_assert_eq(snapfile_path(path, sizeof(path), r->shard_dir, S), 0);
	size_t flen;
	uint8_t *file = read_file(path, &flen);
	uint8_t *live;
	size_t llen;
	cr_assert_eq(snapshot_encode(shard_engine(r->s), 0, S, r->last_ts, &live, &llen), 0);
	size_t i = 0;
	while (i < flen && i < llen && file[i] == live[i])
		i++;
	cr_assert(flen == llen && i == flen,
		  "seed %" PRIu64 " point %d seq %" PRIu64 ": the builder's snapshot (%zu bytes) differs from the "
		  "live engine's (%zu bytes) at byte %zu",
		  seed, point, S, flen, llen, i);
	free(file);
	free(live);
	cr_assert_eq(shard_start(r->s), 0);
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);
	uint64_t n = fallback;
	/* A bad count must not pass quietly as zero seeds. */
	if (v && *v && bo_parse_u64(v, 1, UINT64_MAX, 0, &n) != 0)
		cr_assert_fail("%s: a whole number >= 1, not '%s'", name, v);
	return n;
}

Test(snapshot_builder, the_follower_built_snapshot_equals_the_live_engines_byte_for_byte)
{
	const uint64_t seeds = env_u64("BO_SNAP_SEEDS", 16);
	int64_t t0 = bo_clock_ms();
	for (uint64_t k = 0; k < seeds; k++) {
		const uint64_t seed = 0x9e3779b97f4a7c15ull * (k + 1);
		brun r;
		open_run(&r, seed, (int)(k & 1), JOURNAL_SYNC_NONE_UNSAFE);
		uint64_t snaps = 0;
		for (int point = 0; point < 3; point++) {
			stream(&r, 300 + tstream_rnd(&r.g, 900));
			compare_point(&r, seed, point, &snaps);
		}
		close_run(&r);
	}
	cr_log_info("%" PRIu64 " seeds, 3 points each, in %" PRId64 " ms", seeds, bo_clock_ms() - t0);
}

/* ---- 2. Never ahead of the durable journal --------------------------------- */

/* When armed, the next journal WRITE's bytes go to the file at once (as if
 * the write had completed), then its I/O is held until released: records
 * in the segment file, not durable. */
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

static void hold_release(void)
{
	pthread_mutex_lock(&the_hold.mu);
	the_hold.released = true;
	pthread_cond_broadcast(&the_hold.cv);
	pthread_mutex_unlock(&the_hold.mu);
}

/* Is thread `tid` of this process asleep (state S in /proc)? */
static bool thread_sleeps(int tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
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

/* The builder's catch-up (replica_catch_up) on a thread of its own. */
typedef struct catcher {
	replica *rep;
	uint64_t target;
	atomic_int tid;
	atomic_int done;
	int rc;
	char err[REPLAY_ERR_LEN];
} catcher;

static void *catcher_main(void *p)
{
	catcher *c = p;
	atomic_store(&c->tid, (int)syscall(SYS_gettid));
	c->rc = replica_catch_up(c->rep, c->target, c->err, sizeof(c->err));
	atomic_store(&c->done, 1);
	return NULL;
}

static void teardown(void) { hold_release(); }

Test(snapshot_builder, the_builders_engine_waits_for_the_journal_and_never_applies_a_record_ahead_of_it,
     .fini = teardown)
{
	brun r;
	memset(&r, 0, sizeof(r));
	r.g.rng = 77;
	cr_assert_eq(tmpdir_make(r.dir, sizeof(r.dir), "bo-snapbuild"), 0);
	shard_config cfg;
	tstream_shard_config(&cfg, r.dir, test_clock, 0, 64u << 10);
	cfg.journal.fault = hold_hook;
	cfg.journal.fault_ctx = &the_hold;
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(&cfg, &r.s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("SKIP: io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(shard_start(r.s), 0);
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++r.g.request, TSTREAM_EVENT_FIRST + i, m);
		submit_wait(&r, &c, 1);
		bo_seatmap_free(m);
	}
	stream(&r, 300);
	const uint64_t durable = shard_durable_seq(r.s);

	/* A write held with its records in the segment file, not durable. */
	pthread_mutex_lock(&the_hold.mu);
	the_hold.armed = true;
	pthread_mutex_unlock(&the_hold.mu);
	bo_cmd cmds[8];
	for (uint32_t i = 0; i < 8; i++) {
		uint32_t seat = 40 + i;
		cmds[i] = tcmd_hold_seats(10 + i % 4, ++r.g.request, TSTREAM_EVENT_FIRST + 1, &seat, 1, 5000);
	}
	cr_assert_eq(shard_submit(r.s, cmds, NULL, 8), 0);
	pthread_mutex_lock(&the_hold.mu);
	while (!the_hold.holding)
		pthread_cond_wait(&the_hold.cv, &the_hold.mu);
	pthread_mutex_unlock(&the_hold.mu);
	cr_assert_eq(the_hold.seq_first, durable + 1, "the held unit's bytes were not written to the file");
	cr_assert_eq(shard_durable_seq(r.s), durable);

	/* The builder's engine, from nothing, asked to reach the held unit's
	 * last record: it applies what is durable and waits (asleep) for the
	 * rest. One that read the file's bytes would be done. */
	engine *e;
	cr_assert_eq(engine_new(&cfg.engine, &e), 0);
	catcher c = {.target = the_hold.seq_last};
	cr_assert_eq(replica_open(r.s, e, 0, 0, &c.rep, err, sizeof(err)), 0, "%s", err);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, catcher_main, &c), 0);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (atomic_load(&c.tid) == 0 || !thread_sleeps(atomic_load(&c.tid))) {
		cr_assert_eq(atomic_load(&c.done), 0,
			     "the replica reached seq %" PRIu64 " (rc %d) while the journal was durable to %" PRIu64,
			     c.target, c.rc, shard_durable_seq(r.s));
		cr_assert_lt(bo_clock_ms(), deadline, "the catch-up never waited");
		sched_yield();
	}
	cr_assert_eq(atomic_load(&c.done), 0, "the replica went past the durable seq %" PRIu64, durable);

	/* Released: it reaches the target, which is then durable, and its
	 * engine is the live one's. */
	hold_release();
	pthread_join(t, NULL);
	cr_assert_eq(c.rc, 0, "%s", c.err);
	cr_assert_eq(replica_seq(c.rep), c.target);
	cr_assert_geq(shard_durable_seq(r.s), c.target);
	ring *out = shard_output(r.s);
	for (uint32_t got = 0; got < 8;) {
		uint64_t first;
		uint32_t k = ring_poll(out, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < k; i++) {
			const shard_out *o = ring_slot(out, first + i);
			note_out(&r, o);
			got += o->kind == SHARD_OUT_RESULT;
		}
		ring_release(out, k);
		if (k == 0) {
			cr_assert_lt(bo_clock_ms(), deadline, "results of the held unit");
			ring_wait(out, 1000000);
		}
	}
	shard_stop(r.s);
	cr_assert_eq(shard_durable_seq(r.s), c.target, "more was journaled than the held unit");
	uint8_t *a, *b;
	size_t alen, blen;
	cr_assert_eq(snapshot_encode(replica_engine(c.rep), 0, c.target, replica_seq_ts(c.rep), &a, &alen), 0);
	cr_assert_eq(snapshot_encode(shard_engine(r.s), 0, c.target, r.last_ts, &b, &blen), 0);
	cr_assert(alen == blen && memcmp(a, b, alen) == 0, "the replica's engine differs from the live one");
	free(a);
	free(b);
	replica_close(c.rep);
	close_run(&r);
}
