/*
 * power_test.c — proves that a durable shard keeps every change it
 * reported durable across a POWER CUT, not just a killed process: what only
 * reached the page cache is dropped, torn or reordered, per file and per
 * directory entry, by the storage simulator (tests/support/simfs.h), and
 * recovery must still hold everything acknowledged.
 *
 *     power_test      (BO_POWER_CUTS, BO_POWER_SEED, BO_POWER_KEEP)
 *
 * How: run after run, a fresh durable shard (64 KiB journal segments, a
 * snapshot every SNAP_EVERY records, pruning) takes a random command stream
 * (tests/support/stream_gen.h) under the simulator. A hook on the
 * simulator's events cuts the power at random events, more often at those
 * that open a risky window (a segment created, a snapshot renamed into
 * place, a segment unlinked by pruning): synchronously, inside the
 * observer, it writes the tree a power cut could leave (simfs_cut) into its
 * own directory and reads shard_durable_seq() as the acknowledged bound D.
 * The run goes on; it is cut many times.
 *
 * Why D read there is a sound bound: the writer publishes a durable
 * sequence only after the journal reported (bo_fs_note, inside the same
 * simulator lock) the completed fdatasync that covers it, and every
 * acknowledgement is published after the durable sequence (durable before
 * visible). The cut holds the lock, so any D it reads was published after
 * that SYNC entered the model, and the model it writes out includes it;
 * anything the writer made durable later is not promised by D.
 *
 * After the run (shard stopped, simulator removed), each cut directory is
 * recovered with shard_open() on real I/O, and the test checks:
 *  (1) recovery succeeds: no corruption refusal, no short log, no
 *      re-execution mismatch;
 *  (2) the recovered last sequence R >= D: nothing acknowledged was lost;
 *  (3) the recovered state (engine_digest) equals a reference engine that
 *      replayed the run's records 1..R with replay_apply(verify = 1); the
 *      records come from a journal follower that read the run's journal as
 *      it became durable (it holds the retention floor, so pruning never
 *      outruns it).
 * It also requires at least one cut per kind of window in the default
 * run, and that the simulator never met an event it could not model.
 * And at the rename that puts a snapshot snap-S.snap in place, the journal
 * must already be durable through S (checked in the hook; the hook then
 * cuts at every event until it is, so a cut shows the cost): to open that
 * window, the journal's next unit is held once a snapshot is due until one
 * is put in place or 10 ms pass (hold_unit), which a correct keeper can
 * never use. Before all that, a self-check proves that the simulator both
 * drops and keeps each kind of pending change, and never a synced one.
 *
 * Snapshots are still written by a forked child today, whose writes the
 * simulator cannot see: it adopts the .tmp (synced by the child before it
 * exits) when the keeper renames it. The summary counts adoptions.
 *
 * BO_POWER_CUTS (default 1000) cuts in all; BO_POWER_SEED replays a seed
 * (thread timing still varies); BO_POWER_KEEP=1 keeps the directories even
 * on success (they are kept on failure). Plain C, like the crash test:
 * exit 0 pass, 1 fail, 77 skip (io_uring refused).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/parse.h"
#include "base/fsio.h"
#include "engine/engine.h"
#include "journal/journal.h"
#include "shard/apply.h"
#include "shard/follower.h"
#include "shard/shard.h"
#include "shard/snapfile.h"
#include "tests/support/cmd.h"
#include "tests/support/rng.h"
#include "tests/support/simfs.h"
#include "tests/support/stream_gen.h"
#include "tests/support/tmpdir.h"

#define CUTS_DEFAULT 1000u
#define SEGMENT_BYTES (64u << 10)
#define SNAP_EVERY 250u
#define COMMANDS_PER_RUN 1500u
#define CUTS_PER_RUN_MAX 60u
#define SNAP_HOLD_MS 10L
#define INFLIGHT_MAX 96u /* commands submitted and not yet answered */
#define WAIT_MS 60000    /* a result or a record must come within this */
#define ERR_LEN 2048u

/* ---- Failures -------------------------------------------------------------- */

static unsigned failures;
static char run_ctx[128];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	failures++;
	if (failures > 20)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "power_test: FAIL %s: ", run_ctx);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

__attribute__((format(printf, 1, 2))) static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "power_test: ERROR %s: ", run_ctx);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		die("out of memory");
	return q;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- The simulator's own rules ---------------------------------------------- */

/* Reads path into buf[0..cap); returns the bytes, or -1 when it is absent. */
static long read_back(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long n = (long)fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static int is_dir(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void must(int ok, const char *what)
{
	if (!ok)
		die("simulator self-check: %s", what);
}

/* Makes a small tree through the bo_fs_* wrappers under the simulator,
 * then cuts it many times and proves that every cut keeps what a sync
 * made durable and that, over the cuts, each kind of pending change is
 * both dropped and kept: otherwise the power test below would pass for
 * a simulator that keeps everything (or drops everything durable). */
static void simfs_self_check(const char *base)
{
	snprintf(run_ctx, sizeof run_ctx, "simulator self-check");
	char root[256], p[320], err[ERR_LEN];
	snprintf(root, sizeof root, "%s/self", base);
	must(mkdir(root, 0755) == 0, "mkdir");
	simfs *sim;
	must(simfs_new(root, &sim, err, sizeof err) == 0, err);
	simfs_install(sim);
	uint8_t v1[4 * SIMFS_SECTOR_BYTES], v2[sizeof v1];
	memset(v1, 0x11, sizeof v1);
	memset(v2, 0x22, sizeof v2);
	/* a: durable v1 (file and name), then v2 over it, not synced. */
	snprintf(p, sizeof p, "%s/a", root);
	int fd = bo_fs_open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
	must(fd >= 0 && bo_fs_pwrite(fd, p, v1, sizeof v1, 0) == (ssize_t)sizeof v1, "write a");
	must(bo_fs_fsync(fd, p) == 0 && bo_fs_fsync_dir(root) == 0, "sync a");
	must(bo_fs_pwrite(fd, p, v2, sizeof v2, 0) == (ssize_t)sizeof v2, "rewrite a");
	close(fd);
	/* c renamed to d after its name was durable; e unlinked after. */
	snprintf(p, sizeof p, "%s/c", root);
	fd = bo_fs_open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
	must(fd >= 0 && bo_fs_pwrite(fd, p, v2, 200, 0) == 200 && bo_fs_fsync(fd, p) == 0, "c");
	close(fd);
	snprintf(p, sizeof p, "%s/e", root);
	fd = bo_fs_open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
	must(fd >= 0, "e");
	close(fd);
	must(bo_fs_fsync_dir(root) == 0, "sync root");
	char q[320];
	snprintf(p, sizeof p, "%s/c", root);
	snprintf(q, sizeof q, "%s/d", root);
	must(bo_fs_rename(p, q) == 0, "rename c d");
	snprintf(p, sizeof p, "%s/e", root);
	must(bo_fs_unlink(p) == 0, "unlink e");
	/* b: synced bytes, name not synced. */
	snprintf(p, sizeof p, "%s/b", root);
	fd = bo_fs_open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
	must(fd >= 0 && bo_fs_pwrite(fd, p, v1, 100, 0) == 100 && bo_fs_fsync(fd, p) == 0, "b");
	close(fd);
	/* sub/f: durable inside sub, but sub's own name is not. */
	snprintf(p, sizeof p, "%s/sub", root);
	must(bo_fs_mkdir(p, 0755) == 0, "mkdir sub");
	snprintf(q, sizeof q, "%s/sub/f", root);
	fd = bo_fs_open(q, O_RDWR | O_CREAT | O_EXCL, 0644);
	must(fd >= 0 && bo_fs_pwrite(fd, q, v1, 10, 0) == 10 && bo_fs_fsync(fd, q) == 0, "f");
	close(fd);
	must(bo_fs_fsync_dir(p) == 0, "sync sub");
	/* A forked child's reports are not the model's. */
	uint64_t events = simfs_events(sim);
	pid_t pid = fork();
	if (pid == 0) {
		snprintf(p, sizeof p, "%s/child", root);
		int cfd = bo_fs_open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
		_exit(cfd >= 0 ? 0 : 1);
	}
	int status;
	must(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	             WEXITSTATUS(status) == 0,
	     "fork");
	must(simfs_events(sim) == events, "a forked child's event reached the model");
	simfs_install(NULL);

	enum {
		A_OLD,
		A_NEW,
		A_MIXED,
		B_GONE,
		B_KEPT,
		C_ONLY,
		D_ONLY,
		E_GONE,
		E_BACK,
		SUB_GONE,
		SUB_KEPT,
		SEEN_COUNT
	};
	unsigned seen[SEEN_COUNT] = {0};
	for (unsigned k = 0; k < 200; k++) {
		char out[300];
		snprintf(out, sizeof out, "%s/cut-%u", base, k);
		must(simfs_cut(sim, k, out, NULL, err, sizeof err) == 0, err);
		uint8_t b[sizeof v1 + 1];
		long n = read_back(out, "a", b, sizeof b);
		must(n == (long)sizeof v1, "a synced file lost bytes or its name");
		unsigned old = 0;
		for (unsigned s = 0; s < 4; s++) {
			const uint8_t *sec = b + s * SIMFS_SECTOR_BYTES;
			int is1 = memcmp(sec, v1, SIMFS_SECTOR_BYTES) == 0;
			must(is1 || memcmp(sec, v2, SIMFS_SECTOR_BYTES) == 0,
			     "a sector was torn inside");
			old += (unsigned)is1;
		}
		seen[old == 4 ? A_OLD : old == 0 ? A_NEW : A_MIXED]++;
		n = read_back(out, "b", b, sizeof b);
		must(n < 0 || (n == 100 && memcmp(b, v1, 100) == 0), "b's synced bytes changed");
		seen[n < 0 ? B_GONE : B_KEPT]++;
		long c = read_back(out, "c", b, sizeof b), d = read_back(out, "d", b, sizeof b);
		must((c < 0 || c == 200) && (d < 0 || d == 200), "c's synced bytes changed");
		if (c >= 0 && d < 0)
			seen[C_ONLY]++;
		if (d >= 0 && c < 0)
			seen[D_ONLY]++;
		seen[read_back(out, "e", b, sizeof b) < 0 ? E_GONE : E_BACK]++;
		int sub = is_dir(out, "sub");
		must(!sub || read_back(out, "sub/f", b, sizeof b) == 10,
		     "sub/f lost its synced bytes");
		seen[sub ? SUB_KEPT : SUB_GONE]++;
		tmpdir_remove(out);
	}
	for (int i = 0; i < SEEN_COUNT; i++)
		if (seen[i] == 0)
			die("simulator self-check: outcome %d never happened in 200 cuts", i);
	simfs_free(sim);
	tmpdir_remove(root);
}

/* ---- Totals over all runs -------------------------------------------------- */

enum {
	WIN_ROLL,
	WIN_SNAP,
	WIN_PRUNE,
	WIN_COUNT
};
static const char *const win_names[WIN_COUNT] = {"roll-over", "snapshot publication", "pruning"};

static struct {
	uint64_t cuts, runs, records, lost, recovered_beyond;
	uint64_t in_window[WIN_COUNT];
	uint64_t entries_pending, entries_old, sectors_pending, sectors_old, sizes_reverted;
	uint64_t adopted, snapshots_recovered;
	uint64_t snaps_published, snaps_ahead;
} total;

/* ---- One cut ----------------------------------------------------------------- */

typedef struct cut {
	char dir[256];
	uint64_t acked; /* D: shard_durable_seq() at the cut */
	uint64_t event; /* the simulator's event index */
	int windows;    /* bit per WIN_*: open at the cut */
	uint64_t seed;
	uint64_t recovered; /* R, after recovery */
	uint64_t digest;
	int ok;
} cut;

/* ---- The run's state, shared with the hook ----------------------------------- */

typedef struct run {
	char dir[224];  /* the run's directory: data/ and cut-N/ */
	char data[256]; /* the shard's data directory (the simulator's root) */
	uint64_t rng;   /* the hook's generator (under the simulator's lock) */
	_Atomic(shard *) s;
	cut cuts[CUTS_PER_RUN_MAX];
	uint32_t ncuts;
	/* Windows, as the hook sees the event stream (see window_update). */
	int seg_created, snap_renamed, seg_unlinked;
	uint64_t ahead_seq; /* a snapshot put in place ahead of the journal */
	/* The last snapshot put in place (its seq), and its signal. */
	pthread_mutex_t snap_mu;
	pthread_cond_t snap_cv;
	uint64_t snap_last;
	/* The run's records, from the follower: rec[seq - 1]. */
	struct {
		int64_t ts;
		uint32_t len;
		uint8_t *payload;
	} * rec;
	uint64_t nrec, caprec;
	atomic_int follower_stop;
	_Atomic uint64_t follow_to; /* the follower stops once here (with stop) */
	char follower_err[ERR_LEN];
} run;

/* Tracks the windows a cut may fall in, from the events alone, so that it
 * holds whatever code makes them: a segment created whose directory entry
 * is not yet synced; a snapshot renamed into place whose directory entry is
 * not yet synced; segments unlinked whose removal is not yet synced. */
static void window_update(run *r, const bo_fs_event *ev)
{
	if ((ev->op == BO_FS_CREATE && ends_with(ev->path, ".seg")) ||
	    (ev->op == BO_FS_RENAME && ends_with(ev->path2, ".seg")))
		r->seg_created = 1; /* the journal names a segment by renaming its spare */
	else if (ev->op == BO_FS_RENAME && ends_with(ev->path2, ".snap"))
		r->snap_renamed = 1;
	else if (ev->op == BO_FS_UNLINK && ends_with(ev->path, ".seg"))
		r->seg_unlinked = 1;
	else if (ev->op == BO_FS_SYNC && !ends_with(ev->path, ".seg") &&
	         !ends_with(ev->path, ".tmp") && !ends_with(ev->path, ".snap") &&
	         !ends_with(ev->path, ".spare"))
		r->seg_created = r->snap_renamed = r->seg_unlinked = 0; /* a directory sync */
}

static int windows_open(const run *r)
{
	return (r->seg_created << WIN_ROLL) | (r->snap_renamed << WIN_SNAP) |
	       (r->seg_unlinked << WIN_PRUNE);
}

/* A snapshot renamed into place (snap-S.snap, shard/snapfile.h) while the
 * journal is durable only before S: a power cut now could keep the
 * snapshot and lose records it holds. Fails the test (durable is read
 * after the rename, so it was no higher then) and returns 1 from that
 * event until the journal covers S, so that the hook cuts there too: the
 * recovery of such a cut shows what the mistake costs. */
static int snapshot_ahead(run *r, shard *s, const bo_fs_event *ev)
{
	if (r->ahead_seq && s && shard_durable_seq(s) < r->ahead_seq)
		return 1; /* still ahead: cut again */
	r->ahead_seq = 0;
	if (ev->op != BO_FS_RENAME || !ends_with(ev->path2, ".snap") || !s)
		return 0;
	const char *name = strrchr(ev->path2, '/');
	uint64_t seq;
	if (!snapfile_name_parse(name ? name + 1 : ev->path2, &seq))
		return 0;
	total.snaps_published++;
	pthread_mutex_lock(&r->snap_mu);
	r->snap_last = seq;
	pthread_cond_broadcast(&r->snap_cv);
	pthread_mutex_unlock(&r->snap_mu);
	uint64_t durable = shard_durable_seq(s);
	if (durable >= seq)
		return 0;
	total.snaps_ahead++;
	r->ahead_seq = seq;
	fail("snapshot %s was put in place while the journal was durable only through seq %" PRIu64,
	     ev->path2, durable);
	return 1;
}

/* The simulator's hook: runs inside the observer, under its lock. */
static void on_event(void *ctx, simfs *sim, const bo_fs_event *ev, uint64_t index)
{
	run *r = ctx;
	shard *s = atomic_load(&r->s);
	window_update(r, ev);
	int ahead = snapshot_ahead(r, s, ev);
	if (r->ncuts == CUTS_PER_RUN_MAX)
		return;
	int risky = windows_open(r) != 0;
	if (!ahead && trng_xorshift(&r->rng) % (risky ? 2 : 5) != 0)
		return;
	cut *c = &r->cuts[r->ncuts];
	/* Before shard_open returned nothing was acknowledged. */
	c->acked = s ? shard_durable_seq(s) : 0;
	c->event = index;
	c->windows = windows_open(r);
	c->seed = trng_xorshift(&r->rng);
	char dir[sizeof c->dir];
	snprintf(dir, sizeof dir, "%s/cut-%u", r->dir, r->ncuts);
	memcpy(c->dir, dir, sizeof dir);
	char err[ERR_LEN];
	simfs_cut_stats st;
	if (simfs_cut(sim, c->seed, c->dir, &st, err, sizeof err) != 0)
		die("%s", err);
	total.entries_pending += st.entries_pending;
	total.entries_old += st.entries_old;
	total.sectors_pending += st.sectors_pending;
	total.sectors_old += st.sectors_old;
	total.sizes_reverted += st.sizes_reverted;
	r->ncuts++;
}

/* ---- The shard and its stream -------------------------------------------- */

static _Atomic int64_t clock_ms = 1700000000000;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&clock_ms);
}

static void shard_cfg(shard_config *cfg, const char *dir, uint64_t snapshot_every)
{
	tstream_shard_config(cfg, dir, test_clock, snapshot_every, SEGMENT_BYTES);
	/* Smaller tables than the stream's default: smaller snapshot files. */
	cfg->engine.seats_max = 1024;
	cfg->engine.claims_max = 1024;
	cfg->engine.idem_capacity = 1024;
	cfg->retain_seq = 0; /* the follower moves it */
}

/* The follower thread: copies every durable record of the run, moving the
 * retention floor behind itself so that pruning never outruns it. */
static void *follow(void *arg)
{
	run *r = arg;
	shard *s = atomic_load(&r->s);
	follower *f;
	if (follower_open(s, 0, &f, r->follower_err, sizeof r->follower_err) != 0)
		return NULL;
	for (;;) {
		journal_record jr;
		int rc = follower_next(f, &jr, 20);
		if (rc < 0) {
			snprintf(r->follower_err, sizeof r->follower_err, "%s", follower_error(f));
			break;
		}
		if (rc == 0) {
			if (atomic_load(&r->follower_stop) &&
			    follower_position(f) >= atomic_load(&r->follow_to))
				break;
			continue;
		}
		if (r->nrec == r->caprec) {
			r->caprec = r->caprec ? 2 * r->caprec : 1024;
			r->rec = xrealloc(r->rec, r->caprec * sizeof *r->rec);
		}
		r->rec[r->nrec].ts = jr.timestamp_ms;
		r->rec[r->nrec].len = jr.payload_len;
		r->rec[r->nrec].payload = xrealloc(NULL, jr.payload_len ? jr.payload_len : 1);
		memcpy(r->rec[r->nrec].payload, jr.payload, jr.payload_len);
		r->nrec++;
		shard_retain(s, jr.seq);
	}
	follower_close(f);
	return NULL;
}

/* Waits until at most `left` submitted commands are unanswered. */
static void settle(shard *s, tstream_gen *g, uint64_t *inflight, uint64_t left)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (*inflight > left) {
		uint32_t k = tstream_drain(s, g);
		*inflight -= k;
		if (k > 0)
			continue;
		if (shard_failed(s))
			die("the shard failed: %s", shard_failed(s));
		if (bo_clock_ms() > deadline)
			die("%" PRIu64 " results did not come", *inflight);
		ring_wait(shard_output(s), 1000000);
	}
}

static void submit(shard *s, tstream_gen *g, const bo_cmd *c, uint32_t n, uint64_t *inflight)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (shard_submit(s, c, NULL, n) == -EBUSY) {
		settle(s, g, inflight, *inflight > 0 ? *inflight - 1 : 0);
		if (bo_clock_ms() > deadline)
			die("the input ring stayed full");
	}
	*inflight += n;
	settle(s, g, inflight, INFLIGHT_MAX);
}

/* The stream: the events, then random batches on a clock that moves
 * 0..400 ms per batch (holds expire, ticks get journaled), a few commands
 * in flight at a time so that units hold several batches. */
static void drive(shard *s, uint64_t seed)
{
	tstream_gen g = {.rng = seed | 1};
	uint64_t inflight = 0;
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++g.request, TSTREAM_EVENT_FIRST + i, m);
		submit(s, &g, &c, 1, &inflight);
		settle(s, &g, &inflight, 0); /* the map is borrowed until applied */
		bo_seatmap_free(m);
	}
	bo_cmd cmds[32];
	for (uint32_t done = 0; done < COMMANDS_PER_RUN;) {
		uint32_t m = 1 + tstream_rnd(&g, 32);
		if (m > COMMANDS_PER_RUN - done)
			m = COMMANDS_PER_RUN - done;
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = tstream_random_cmd(&g);
		atomic_fetch_add(&clock_ms, 100 * tstream_rnd(&g, 5));
		submit(s, &g, cmds, m, &inflight);
		done += m;
	}
	settle(s, &g, &inflight, 0);
}

/* Opens the window of a snapshot that overtakes the journal: once a
 * snapshot is due, the journal's next unit is held (before its write is
 * submitted) until a snapshot is put in place, or SNAP_HOLD_MS. A keeper
 * that waits for the journal to cover the snapshot, as it must, cannot put
 * it in place meanwhile, so the hold ends by its timeout; one that does not
 * wait puts it in place while the journal is behind, and the hook sees it.
 * Only timing: no verdict depends on how long the hold lasts. */
static int hold_unit(void *ctx, journal_io *io)
{
	run *r = ctx;
	if (io->kind != JOURNAL_IO_WRITE)
		return 0;
	pthread_mutex_lock(&r->snap_mu);
	uint64_t last = r->snap_last;
	if (io->seq_last >= last + SNAP_EVERY) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += SNAP_HOLD_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (r->snap_last == last &&
		       pthread_cond_timedwait(&r->snap_cv, &r->snap_mu, &until) == 0) {
		}
	}
	pthread_mutex_unlock(&r->snap_mu);
	return 0;
}

/* ---- After the run: recovery of each cut ------------------------------------ */

static void recover_cut(run *r, cut *c)
{
	shard_config cfg;
	shard_cfg(&cfg, c->dir, 0);
	cfg.prune = 0;
	cfg.retain_seq = UINT64_MAX;
	shard *s = NULL;
	shard_recovery rec;
	char err[ERR_LEN] = "";
	int rc = shard_open(&cfg, &s, &rec, err, sizeof err);
	if (rc != 0) {
		fail("cut %s (event %" PRIu64 ", acked %" PRIu64
		     ", windows 0x%x): recovery refused "
		     "(%s): %s",
		     c->dir, c->event, c->acked, c->windows, strerror(-rc), err);
		return;
	}
	c->recovered = rec.last_seq;
	c->digest = engine_digest(shard_engine(s));
	total.snapshots_recovered += rec.snapshot_seq > 0;
	shard_free(s);
	if (c->recovered < c->acked) {
		total.lost += c->acked - c->recovered;
		fail("cut %s (event %" PRIu64 ", windows 0x%x): recovered through seq %" PRIu64
		     " but seq %" PRIu64 " was acknowledged durable",
		     c->dir, c->event, c->windows, c->recovered, c->acked);
		return;
	}
	if (c->recovered > r->nrec) {
		fail("cut %s: recovered through seq %" PRIu64 ", the run wrote %" PRIu64, c->dir,
		     c->recovered, r->nrec);
		return;
	}
	total.recovered_beyond += c->recovered > c->acked;
	c->ok = 1;
}

static int by_recovered(const void *a, const void *b)
{
	const cut *x = a, *y = b;
	return x->recovered < y->recovered ? -1 : x->recovered > y->recovered;
}

/* (3): one reference engine walks the run's records; each recovered cut
 * is compared when the reference reaches its sequence. */
static void compare_states(run *r)
{
	qsort(r->cuts, r->ncuts, sizeof r->cuts[0], by_recovered);
	shard_config cfg;
	shard_cfg(&cfg, r->data, 0);
	engine *ref;
	if (engine_new(&cfg.engine, &ref) != 0)
		die("engine_new");
	uint64_t at = 0;
	for (uint32_t i = 0; i < r->ncuts; i++) {
		cut *c = &r->cuts[i];
		if (!c->ok)
			continue;
		for (; at < c->recovered; at++) {
			journal_record jr = {.seq = at + 1,
			                     .timestamp_ms = r->rec[at].ts,
			                     .payload_len = r->rec[at].len,
			                     .payload = r->rec[at].payload,
			                     .file = "(the run's follower)"};
			char err[REPLAY_ERR_LEN];
			if (replay_apply(ref, &jr, 1, NULL, err, sizeof err) != REPLAY_OK)
				die("the reference cannot replay the run's record %" PRIu64 ": %s",
				    at + 1, err);
		}
		uint64_t d = engine_digest(ref);
		if (d != c->digest)
			fail("cut %s (event %" PRIu64 ", acked %" PRIu64 "): the state recovered "
			     "through seq %" PRIu64 " (digest %016" PRIx64 ") is not the state of "
			     "records 1..%" PRIu64 " (%016" PRIx64 ")",
			     c->dir, c->event, c->acked, c->recovered, c->digest, c->recovered, d);
	}
	engine_free(ref);
}

/* ---- One run ----------------------------------------------------------------- */

static void run_once(run *r, uint64_t seed, const char *base, uint32_t index)
{
	snprintf(run_ctx, sizeof run_ctx, "run %u seed %016" PRIx64, index, seed);
	snprintf(r->dir, sizeof r->dir, "%s/run-%u", base, index);
	snprintf(r->data, sizeof r->data, "%s/data", r->dir);
	if (mkdir(r->dir, 0755) != 0 || mkdir(r->data, 0755) != 0)
		die("mkdir %s: %s", r->data, strerror(errno));
	r->rng = trng_mix64(seed) | 1;

	char err[ERR_LEN];
	simfs *sim;
	if (simfs_new(r->data, &sim, err, sizeof err) != 0)
		die("%s", err);
	simfs_set_hook(sim, on_event, r);
	simfs_install(sim);

	shard_config cfg;
	shard_cfg(&cfg, r->data, SNAP_EVERY);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->snap_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->snap_mu, NULL);
	cfg.journal.fault = hold_unit;
	cfg.journal.fault_ctx = r;
	shard *s = NULL;
	int rc = shard_open(&cfg, &s, NULL, err, sizeof err);
	if (rc == -ENOSYS || rc == -EPERM) {
		printf("power_test: SKIP: io_uring refused by the kernel: %s\n", err);
		exit(77);
	}
	if (rc != 0)
		die("shard_open: %s", err);
	atomic_store(&r->s, s);
	if (shard_start(s) != 0)
		die("shard_start");
	pthread_t ft;
	if (pthread_create(&ft, NULL, follow, r) != 0)
		die("pthread_create");

	drive(s, trng_mix64(seed ^ 0xd1ull));

	shard_stop(s);
	if (shard_failed(s))
		die("the shard failed: %s", shard_failed(s));
	atomic_store(&r->follow_to, shard_durable_seq(s));
	atomic_store(&r->follower_stop, 1);
	pthread_join(ft, NULL);
	if (r->follower_err[0])
		die("follower: %s", r->follower_err);
	if (r->nrec != shard_durable_seq(s))
		die("the follower read %" PRIu64 " records of %" PRIu64, r->nrec,
		    shard_durable_seq(s));
	shard_stats st;
	shard_stats_get(s, &st);
	atomic_store(&r->s, NULL);
	shard_free(s);
	simfs_install(NULL);
	if (simfs_anomalies(sim) != 0)
		fail("the simulator met %" PRIu64 " events it could not model",
		     simfs_anomalies(sim));
	/* Every file is written in this process through base/fsio now (the
	 * snapshot builder replaced the forked child), so a file the model
	 * met without seeing it written is an I/O that bypassed the wrappers:
	 * its bytes would count as durable without a sync. */
	if (simfs_adopted(sim) != 0)
		fail("%" PRIu64 " files were written without base/fsio reporting it", simfs_adopted(sim));
	total.adopted += simfs_adopted(sim);
	simfs_free(sim);
	if (st.snapshots == 0)
		fail("no snapshot was taken: the run covers no snapshot publication");

	for (uint32_t i = 0; i < r->ncuts; i++)
		recover_cut(r, &r->cuts[i]);
	compare_states(r);

	total.runs++;
	total.cuts += r->ncuts;
	total.records += r->nrec;
	for (uint32_t i = 0; i < r->ncuts; i++)
		for (int w = 0; w < WIN_COUNT; w++)
			total.in_window[w] += (r->cuts[i].windows >> w) & 1;
}

static void run_free(run *r)
{
	pthread_cond_destroy(&r->snap_cv);
	pthread_mutex_destroy(&r->snap_mu);
	for (uint64_t i = 0; i < r->nrec; i++)
		free(r->rec[i].payload);
	free(r->rec);
}

/* Where the runs write: tmpfs when there is one (many small files, written
 * and removed at once), else TMPDIR. */
static void make_base(char *buf, size_t cap)
{
	struct stat st;
	const char *saved = getenv("TMPDIR");
	char *keep = saved ? strdup(saved) : NULL;
	if (!getenv("BO_POWER_DIR") && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	else if (getenv("BO_POWER_DIR"))
		setenv("TMPDIR", getenv("BO_POWER_DIR"), 1);
	int rc = tmpdir_make(buf, cap, "boxoffice-power");
	if (keep) {
		setenv("TMPDIR", keep, 1);
		free(keep);
	} else {
		unsetenv("TMPDIR");
	}
	if (rc != 0)
		die("tmpdir_make: %s", strerror(-rc));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t want = CUTS_DEFAULT;
	const char *e = getenv("BO_POWER_CUTS");
	/* A bad count must not pass quietly as zero cuts. */
	if (e && *e && bo_parse_u64(e, 1, UINT64_MAX, 0, &want) != 0)
		die("BO_POWER_CUTS: a whole number >= 1, not '%s'", e);
	uint64_t seed = (uint64_t)bo_clock_ns() ^ ((uint64_t)getpid() << 32);
	e = getenv("BO_POWER_SEED");
	if (e && *e && bo_parse_u64(e, 0, UINT64_MAX, BO_PARSE_HEX, &seed) != 0)
		die("BO_POWER_SEED: a number (decimal, or hex with 0x), not '%s'", e);
	int keep = getenv("BO_POWER_KEEP") && strcmp(getenv("BO_POWER_KEEP"), "1") == 0;
	char base[200];
	make_base(base, sizeof base);
	printf("power_test: seed 0x%016" PRIx64 ", %" PRIu64 " cuts wanted, in %s\n", seed, want,
	       base);
	simfs_self_check(base);
	double t0 = (double)bo_clock_ns() / 1e9;
	for (uint32_t i = 0; total.cuts < want && failures == 0; i++) {
		run *r = calloc(1, sizeof *r);
		if (!r)
			die("out of memory");
		run_once(r, trng_mix64(seed ^ trng_mix64(i)), base, i);
		run_free(r);
		if (failures == 0 && !keep) {
			char dir[sizeof base + 16];
			snprintf(dir, sizeof dir, "%s/run-%u", base, i);
			tmpdir_remove(dir);
		}
		free(r);
	}
	printf("power_test: %" PRIu64 " cuts in %" PRIu64 " runs (%" PRIu64 " records) in %.1f s; "
	       "cuts in a window: %s %" PRIu64 ", %s %" PRIu64 ", %s %" PRIu64 "; "
	       "recovered past the acked bound %" PRIu64 ", a snapshot %" PRIu64 "; "
	       "dropped or kept: entries %" PRIu64 "/%" PRIu64 " old, sectors %" PRIu64 "/%" PRIu64
	       " old, sizes reverted %" PRIu64 "; files adopted %" PRIu64 "; "
	       "snapshots published %" PRIu64 ", ahead of the journal %" PRIu64 "; "
	       "records lost beyond the acked bound: %" PRIu64 "\n",
	       total.cuts, total.runs, total.records, (double)bo_clock_ns() / 1e9 - t0,
	       win_names[WIN_ROLL], total.in_window[WIN_ROLL], win_names[WIN_SNAP],
	       total.in_window[WIN_SNAP], win_names[WIN_PRUNE], total.in_window[WIN_PRUNE],
	       total.recovered_beyond, total.snapshots_recovered, total.entries_old,
	       total.entries_pending, total.sectors_old, total.sectors_pending,
	       total.sizes_reverted, total.adopted, total.snaps_published, total.snaps_ahead,
	       total.lost);
	if (failures == 0)
		for (int w = 0; w < WIN_COUNT; w++)
			if (total.in_window[w] == 0 && want >= CUTS_DEFAULT)
				fail("no cut fell in a %s window", win_names[w]);
	if (failures == 0 && !keep)
		tmpdir_remove(base);
	else
		printf("power_test: kept %s\n", base);
	return failures ? 1 : 0;
}
