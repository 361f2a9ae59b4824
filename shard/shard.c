/*
 * shard.c — the writer thread: input ring -> engine -> journal -> output ring.
 *
 * The loop is the LMAX one: take everything published as one batch (up to
 * BO_BATCH_MAX), give it one timestamp, apply, journal, release the input
 * slots. Batching is what makes a writer fast under load (one clock read,
 * one advance, one output claim, one journal commit per batch) without
 * adding latency when idle: a batch of one leaves as soon as it is durable.
 *
 * DURABLE BEFORE VISIBLE
 *
 * Output slots are claimed and filled when a batch is applied, but
 * published (made visible to the consumer) only when the journal reports
 * the batch durable. Output sequence numbers and journal sequence numbers
 * both grow with the batches, so a FIFO of (last journal seq of batch,
 * end of its output slots) says how far the output may be published for a
 * durable sequence d: up to the end of the last batch whose records are
 * all <= d. A batch that journaled nothing (only queries) gets the journal
 * sequence reached so far, so it is published after the batches before it,
 * never before: the output keeps its order.
 *
 * The writer never blocks on the disk while it has input: it applies the
 * next batch while the previous one syncs (the journal keeps one write in
 * flight and gathers what is committed meanwhile into the next one: group
 * commit). It waits for the disk only when it is idle, when the FIFO is
 * full, or when the output ring has no room left (its unpublished slots
 * hold it).
 */
#include "shard.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mimalloc.h>
#include <xxhash.h>

#include "shard/entry.h"
#include "shard/apply.h"
#include "engine/snapshot.h"
#include "shard/snapfile.h"

/* Batches applied but not yet durable. When it is full the writer waits
 * for the disk before applying more: with one write in flight and one
 * being gathered, 256 batches are far more than group commit needs. */
#define PENDING_MAX 256u

typedef struct pending_batch {
	uint64_t seq_last; /* journal sequence covering the batch */
	uint64_t out_end;  /* output sequence after its last slot */
} pending_batch;

struct shard {
	shard_config cfg;
	engine *engine;
	ring *in;
	ring *out;
	journal *journal; /* NULL without data_dir */
	char dir[4096];	  /* data_dir/shard-NNNN */
	pthread_t thread;
	int started;
	/* Set by shard_stop() (release), read by the writer between batches
	 * (acquire): whatever was published before the stop request is
	 * visible to the writer's last poll, which runs after it sees the
	 * flag, so nothing published before shard_stop() is left behind. */
	atomic_int stopping;
	/* Batches applied: a statistics gauge, relaxed. */
	atomic_uint_least64_t batches;
	/* Durable journal sequence: a gauge for other threads, relaxed (the
	 * output ring's publish orders the data consumers read). */
	atomic_uint_least64_t durable;
	/* Snapshot gauges (relaxed: statistics). */
	atomic_uint_least64_t snapshots, snap_stall_ns_max, snap_ns_last;
	int64_t snap_started_ns;
	/* Set once (release) when the journal fails; readers acquire. */
	atomic_int failed;
	char failure[JOURNAL_ERR_LEN];

	/* Writer-thread state. */
	int64_t batch_ms;
	uint64_t batch_no;
	uint64_t seq_last;	 /* last journal sequence appended */
	int64_t seq_last_ms;	 /* its timestamp */
	uint64_t out_next;	 /* next output sequence this writer will claim */
	uint64_t out_published;	 /* output slots [.., out_published) are published */
	pending_batch pending[PENDING_MAX];
	uint32_t pending_head, pending_len;
	uint64_t snap_seq;	 /* records covered by the last snapshot (or its start) */
	pid_t snap_child;	 /* snapshot being written, 0 when none */
	uint64_t snap_child_seq;
	int snap_written;	 /* the child finished its .tmp; waits for durability */
	char snap_tmp[4200];
	uint8_t payload[ENTRY_SIZE_NOMAP_MAX];
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t clock_realtime_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void shard_config_default(shard_config *cfg)
{
	assert(cfg);
	memset(cfg, 0, sizeof(*cfg));
	engine_config_default(&cfg->engine);
	cfg->in_slots = BO_RING_SLOTS_DEFAULT;
	cfg->out_slots = BO_RING_SLOTS_DEFAULT;
	cfg->tick_ms = BO_TICK_MS;
	journal_options_default(&cfg->journal);
	cfg->snapshot_every = 0;
	cfg->prune = 1;
	cfg->verify_replay = 1;
}

/* ---- Failure ------------------------------------------------------------- */

static void shard_fail(shard *s, const char *what, int rc)
{
	if (atomic_load_explicit(&s->failed, memory_order_relaxed))
		return;
	const char *jerr = s->journal ? journal_error(s->journal) : "";
	snprintf(s->failure, sizeof(s->failure), "shard %u stopped: %s failed (%s)%s%s", s->cfg.id, what,
		 strerror(-rc), jerr[0] ? ": " : "", jerr);
	/* Release: the message is written before the flag is seen. */
	atomic_store_explicit(&s->failed, 1, memory_order_release);
	fprintf(stderr, "level=error shard=%u msg=\"%s\"\n", s->cfg.id, s->failure);
}

const char *shard_failed(const shard *s)
{
	/* Acquire: pairs with shard_fail's release, so the message is whole. */
	return atomic_load_explicit(&((shard *)s)->failed, memory_order_acquire) ? s->failure : NULL;
}

uint64_t shard_durable_seq(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->durable, memory_order_relaxed);
}

/* ---- Output: claim now, publish when durable ----------------------------- */

static void publish_upto(shard *s, uint64_t out_end)
{
	if (out_end > s->out_published) {
		ring_publish(s->out, s->out_published, (uint32_t)(out_end - s->out_published));
		s->out_published = out_end;
	}
}

/* Publishes every batch whose records are all durable. */
static void publish_durable(shard *s, uint64_t durable)
{
	atomic_store_explicit(&s->durable, durable, memory_order_relaxed);
	uint64_t end = s->out_published;
	while (s->pending_len > 0 && s->pending[s->pending_head].seq_last <= durable) {
		end = s->pending[s->pending_head].out_end;
		s->pending_head = (s->pending_head + 1) % PENDING_MAX;
		s->pending_len--;
	}
	publish_upto(s, end);
}

/* Reaps journal completions without blocking. Returns 0 or a failure. */
static int reap(shard *s)
{
	if (!s->journal)
		return 0;
	uint64_t d;
	int rc = journal_poll(s->journal, &d);
	publish_durable(s, d);
	if (rc < 0)
		shard_fail(s, "journal write", rc);
	return rc;
}

/* Blocks until the oldest pending batch (all = 0) or every pending batch
 * (all = 1) is durable. Returns 0 or a failure. The writer, when idle,
 * waits for the oldest only: the write in flight completes, its answers
 * leave, and the writer goes back to its input, so what arrived meanwhile
 * joins the batches gathered for the next write instead of waiting behind
 * a second round trip. */
static int wait_pending(shard *s, int all)
{
	if (!s->journal || s->pending_len == 0)
		return reap(s);
	uint64_t d;
	uint32_t i = all ? (s->pending_head + s->pending_len - 1) % PENDING_MAX : s->pending_head;
	int rc = journal_wait(s->journal, s->pending[i].seq_last, &d);
	publish_durable(s, d);
	if (rc < 0)
		shard_fail(s, "journal sync", rc);
	return rc;
}

/* Claims n output slots. The unpublished slots of pending batches may be
 * what fills the ring: then wait for the disk, which publishes them, and
 * for the consumer. */
static uint64_t out_claim(shard *s, uint32_t n)
{
	uint64_t first;
	while (ring_claim(s->out, n, &first) != 0) {
		if (s->pending_len > 0 && wait_pending(s, 0) == 0)
			continue;
		/* Everything claimed is published (or the journal failed and
		 * nothing more will be): only the consumer can make room. */
		ring_claim_wait(s->out, n, &first);
		break;
	}
	assert(first == s->out_next);
	s->out_next = first + n;
	return first;
}

/* Ends a batch: its outputs wait for the journal sequence reached so far. */
static void batch_done(shard *s)
{
	if (!s->journal) {
		publish_upto(s, s->out_next);
		return;
	}
	if (s->pending_len == PENDING_MAX)
		wait_pending(s, 0);
	if (s->pending_len == 0 && s->seq_last <= shard_durable_seq(s)) {
		publish_upto(s, s->out_next); /* nothing of it is waiting for the disk */
		return;
	}
	uint32_t tail = (s->pending_head + s->pending_len) % PENDING_MAX;
	s->pending[tail].seq_last = s->seq_last;
	s->pending[tail].out_end = s->out_next;
	s->pending_len++;
}

/* ---- Journal ------------------------------------------------------------- */

static int journal_put(shard *s, int64_t ts, const uint8_t *payload, uint32_t len)
{
	uint64_t seq;
	int rc = journal_append(s->journal, ts, payload, len, &seq);
	if (rc < 0) {
		shard_fail(s, "journal append", rc);
		return rc;
	}
	assert(seq == s->seq_last + 1);
	s->seq_last = seq;
	s->seq_last_ms = ts;
	return 0;
}

static int journal_command(shard *s, const bo_cmd *cmd, const bo_result *res)
{
	int32_t len = entry_encode_command(cmd, res, s->payload, sizeof(s->payload));
	if (len == -ENOSPC) {
		/* Only a CREATE_EVENT with its seat map outgrows the scratch
		 * buffer: rare, so it may allocate. */
		int32_t need = entry_command_size(cmd, res);
		uint8_t *big = mi_malloc((size_t)need);
		if (!big) {
			shard_fail(s, "journal buffer allocation", -ENOMEM);
			return -ENOMEM;
		}
		len = entry_encode_command(cmd, res, big, (size_t)need);
		assert(len == need);
		int rc = journal_put(s, s->batch_ms, big, (uint32_t)len);
		mi_free(big);
		return rc;
	}
	assert(len > 0);
	return journal_put(s, s->batch_ms, s->payload, (uint32_t)len);
}

/* ---- Snapshots ----------------------------------------------------------- */

/* Starts a snapshot of the state at the last journaled record. The child
 * writes it to a .tmp file; the writer only pays for fork(). A snapshot
 * must never contain a change the journal could lose, so the file becomes
 * a snapshot (is renamed) only once the journal is durable up to its seq:
 * snapshot_finish(). Waiting for durability before forking instead would
 * starve snapshots under sustained load, where some batch is always on its
 * way to disk. */
static void snapshot_start(shard *s)
{
	assert(s->snap_child == 0);
	snprintf(s->snap_tmp, sizeof(s->snap_tmp), "%s/snap-%020" PRIu64 ".snap.tmp", s->dir, s->seq_last);
	int fd = open(s->snap_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "level=warn shard=%u msg=\"snapshot not started\" file=%s err=\"%s\"\n", s->cfg.id,
			s->snap_tmp, strerror(errno));
		s->snap_seq = s->seq_last; /* try again after another interval */
		return;
	}
	int64_t t0 = mono_ns();
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: a copy-on-write image of the engine, frozen at this
		 * batch boundary. Only heap-free, lock-free calls from here.
		 * Lowest CPU priority: on a small machine it competes with the
		 * writer it was forked from. */
		if (nice(19) == -1) {
			/* not fatal: the snapshot is still written */
		}
		int rc = snapshot_write_fd(s->engine, s->cfg.id, s->seq_last, s->seq_last_ms, fd);
		if (rc == 0 && fsync(fd) != 0)
			rc = -errno;
		_exit(rc == 0 ? 0 : 1);
	}
	int64_t stall = mono_ns() - t0;
	if ((uint64_t)stall > atomic_load_explicit(&s->snap_stall_ns_max, memory_order_relaxed))
		atomic_store_explicit(&s->snap_stall_ns_max, (uint64_t)stall, memory_order_relaxed);
	s->snap_started_ns = t0;
	close(fd);
	if (pid < 0) {
		fprintf(stderr, "level=warn shard=%u msg=\"snapshot fork failed\" err=\"%s\"\n", s->cfg.id,
			strerror(errno));
		unlink(s->snap_tmp);
		s->snap_seq = s->seq_last;
		return;
	}
	s->snap_child = pid;
	s->snap_child_seq = s->seq_last;
	s->snap_seq = s->seq_last;
	s->snap_written = 0;
}

/* Reaps the snapshot child (`block`: wait for it). On success the .tmp
 * file is complete and synced: snap_written. */
static void snapshot_reap(shard *s, int block)
{
	if (s->snap_child == 0)
		return;
	int status;
	pid_t r = waitpid(s->snap_child, &status, block ? 0 : WNOHANG);
	if (r == 0)
		return;
	s->snap_child = 0;
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "level=warn shard=%u msg=\"snapshot failed, journal kept\" seq=%" PRIu64 "\n",
			s->cfg.id, s->snap_child_seq);
		unlink(s->snap_tmp);
		return;
	}
	s->snap_written = 1;
}

/* Makes a written snapshot official once the journal covers it: rename
 * into place, sync the directory, prune the segments it covers. A journal
 * that failed first never gets it (the .tmp is removed). */
static void snapshot_finish(shard *s)
{
	if (!s->snap_written)
		return;
	if (shard_failed(s)) {
		unlink(s->snap_tmp);
		s->snap_written = 0;
		return;
	}
	if (shard_durable_seq(s) < s->snap_child_seq)
		return; /* not yet: the records it includes are still on their way */
	s->snap_written = 0;
	char final[4200];
	snprintf(final, sizeof(final), "%s/snap-%020" PRIu64 ".snap", s->dir, s->snap_child_seq);
	if (rename(s->snap_tmp, final) != 0) {
		fprintf(stderr, "level=warn shard=%u msg=\"snapshot rename failed\" err=\"%s\"\n", s->cfg.id,
			strerror(errno));
		return;
	}
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	atomic_fetch_add_explicit(&s->snapshots, 1, memory_order_relaxed);
	atomic_store_explicit(&s->snap_ns_last, (uint64_t)(mono_ns() - s->snap_started_ns), memory_order_relaxed);
	if (s->cfg.prune) {
		char err[JOURNAL_ERR_LEN];
		int n = journal_prune(s->cfg.data_dir, s->cfg.id, s->snap_child_seq, err, sizeof(err));
		if (n < 0)
			fprintf(stderr, "level=warn shard=%u msg=\"journal prune failed\" err=\"%s\"\n", s->cfg.id,
				err);
	}
}

static void maybe_snapshot(shard *s)
{
	if (!s->journal || s->cfg.snapshot_every == 0)
		return;
	snapshot_reap(s, 0);
	snapshot_finish(s);
	if (s->snap_child == 0 && !s->snap_written && s->seq_last - s->snap_seq >= s->cfg.snapshot_every)
		snapshot_start(s);
}

/* ---- The writer ---------------------------------------------------------- */

static void on_expiry(void *ctx, const bo_expiry *x)
{
	shard *s = ctx;
	uint64_t seq = out_claim(s, 1);
	shard_out *o = ring_slot(s->out, seq);
	o->kind = SHARD_OUT_EXPIRY;
	o->tag = 0;
	o->seq = s->journal ? s->seq_last + 1 : 0; /* the tick record written next */
	o->batch = s->batch_no;
	o->now_ms = s->batch_ms;
	o->u.expiry = *x;
}

/* Moves the engine's clock to the shard clock (a clock that steps back is
 * held at the last time used, so batch times never decrease) and journals
 * the advance if it changed anything.
 *
 * A mass expiry (tens of thousands of holds at one instant) would claim
 * more output slots than the ring holds, and none of them can be published
 * before the batch is durable: the writer would wait for room forever. So
 * expiries go in chunks of a quarter of the ring, each chunk journaled
 * (TICK) and ended like a batch, so that it can be published while the
 * next one is made. Replay applies the first TICK with a full advance:
 * the resulting state is the same. */
static int begin_batch(shard *s)
{
	int64_t now = s->cfg.clock(s->cfg.clock_ctx);
	int64_t last = engine_now(s->engine);
	s->batch_ms = now > last ? now : last;
	s->batch_no++;
	const uint32_t chunk = s->cfg.out_slots / 4;
	for (;;) {
		int more = 0;
		uint32_t changes = engine_advance_bounded(s->engine, s->batch_ms, chunk, on_expiry, s, &more);
		if (changes > 0 && s->journal) {
			int32_t len = entry_encode_tick(s->payload, sizeof(s->payload));
			assert(len == 1);
			int rc = journal_put(s, s->batch_ms, s->payload, (uint32_t)len);
			if (rc < 0)
				return rc;
		}
		if (!more)
			return 0;
		if (s->journal) {
			int rc = journal_commit(s->journal);
			if (rc < 0) {
				shard_fail(s, "journal commit", rc);
				return rc;
			}
		}
		batch_done(s);
	}
}

static int apply_batch(shard *s, uint64_t first, uint32_t n)
{
	int rc = begin_batch(s);
	/* One output claim for all of the batch's results: n <= BO_BATCH_MAX
	 * and the output ring holds at least two batches. */
	uint64_t out_first = out_claim(s, n);
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		const shard_in *in = ring_slot(s->in, first + i);
		if (i + 1 < n)
			engine_prefetch(s->engine, &((const shard_in *)ring_slot(s->in, first + i + 1))->cmd);
		shard_out *o = ring_slot(s->out, out_first + i);
		o->kind = SHARD_OUT_RESULT;
		o->tag = in->tag;
		o->batch = s->batch_no;
		o->now_ms = s->batch_ms;
		o->seq = 0;
		engine_apply(s->engine, &in->cmd, &o->u.result);
		if (s->journal && entry_journals(&in->cmd)) {
			rc = journal_command(s, &in->cmd, &o->u.result);
			o->seq = s->seq_last;
		}
	}
	if (rc != 0)
		return rc; /* failed: nothing of this batch will be published */
	ring_release(s->in, n);
	if (s->journal) {
		rc = journal_commit(s->journal);
		if (rc < 0) {
			shard_fail(s, "journal commit", rc);
			return rc;
		}
	}
	batch_done(s);
	atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
	return 0;
}

/* An idle tick: release what has expired (journaled if anything did). */
static int tick(shard *s)
{
	uint64_t seq_before = s->seq_last;
	int rc = begin_batch(s);
	if (rc != 0)
		return rc;
	if (s->journal && s->seq_last != seq_before) {
		rc = journal_commit(s->journal);
		if (rc < 0) {
			shard_fail(s, "journal commit", rc);
			return rc;
		}
	}
	batch_done(s);
	return 0;
}

static void *shard_main(void *arg)
{
	shard *s = arg;
	const int64_t tick_ns = (int64_t)s->cfg.tick_ms * 1000000;
	for (;;) {
		if (reap(s) < 0)
			break;
		uint64_t first;
		uint32_t n = ring_poll(s->in, BO_BATCH_MAX, &first);
		if (n > 0) {
			if (apply_batch(s, first, n) < 0)
				break;
			maybe_snapshot(s);
			continue;
		}
		if (s->pending_len > 0) {
			/* Idle with a batch on its way to disk: wait for it, so its
			 * answers leave now; commands arriving meanwhile gather
			 * into the next batch (group commit). */
			if (wait_pending(s, 0) < 0)
				break;
			maybe_snapshot(s);
			continue;
		}
		if (atomic_load_explicit(&s->stopping, memory_order_acquire)) {
			/* One more poll after seeing the flag: a command
			 * published between the poll above and the flag load
			 * must still be applied. */
			n = ring_poll(s->in, BO_BATCH_MAX, &first);
			if (n == 0)
				break;
			if (apply_batch(s, first, n) < 0)
				break;
			continue;
		}
		if (!ring_wait(s->in, tick_ns) && tick(s) < 0)
			break;
		/* Idle too: a snapshot child that finished must be reaped (and
		 * its segments pruned) even when no command comes. */
		maybe_snapshot(s);
	}
	if (!shard_failed(s)) {
		wait_pending(s, 1);
	} else if (s->journal) {
		/* The failure may have been found while batches before it were
		 * already durable (a mid-batch flush waits for the write in
		 * flight): answer those. The batch the failure struck is not in
		 * `pending`, so nothing of it comes out. */
		uint64_t d;
		journal_poll(s->journal, &d);
		publish_durable(s, d);
	}
	snapshot_reap(s, 1);
	snapshot_finish(s);
	return NULL;
}

/* ---- Lifecycle ----------------------------------------------------------- */

int shard_new(const shard_config *cfg, shard **out)
{
	assert(cfg && out);
	*out = NULL;
	if (!BO_IS_POW2(cfg->in_slots) || cfg->in_slots < BO_BATCH_MAX || !BO_IS_POW2(cfg->out_slots) ||
	    cfg->out_slots < 2 * BO_BATCH_MAX || cfg->tick_ms == 0 || cfg->tick_ms > BO_TICK_MS)
		return -EINVAL;
	shard *s = mi_zalloc_aligned(sizeof(*s), 64);
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (!s->cfg.clock)
		s->cfg.clock = clock_realtime_ms;
	atomic_init(&s->stopping, 0);
	atomic_init(&s->batches, 0);
	atomic_init(&s->durable, 0);
	atomic_init(&s->failed, 0);
	atomic_init(&s->snapshots, 0);
	atomic_init(&s->snap_stall_ns_max, 0);
	atomic_init(&s->snap_ns_last, 0);
	int rc = ring_new(sizeof(shard_in), cfg->in_slots, &s->in);
	if (rc == 0)
		rc = ring_new(sizeof(shard_out), cfg->out_slots, &s->out);
	if (rc == 0 && !cfg->data_dir)
		rc = engine_new(&cfg->engine, &s->engine);
	if (rc != 0) {
		shard_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A snapshot child killed mid-write leaves its .snap.tmp behind: the loader
 * ignores such files, but they would pile up. */
static void remove_stale_snapshots(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char path[4400];
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n > 9 && strncmp(de->d_name, "snap-", 5) == 0 && strcmp(de->d_name + n - 9, ".snap.tmp") == 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

static int configs_equal(const engine_config *a, const engine_config *b)
{
	return a->seats_max == b->seats_max && a->claims_max == b->claims_max &&
	       a->idem_capacity == b->idem_capacity && a->events_max == b->events_max;
}

/* Rebuilds the engine from the newest snapshot and the journal after it. */
static int recover(shard *s, shard_recovery *rec, char *err, size_t errlen)
{
	double t0 = now_seconds();
	const shard_config *cfg = &s->cfg;
	if (snprintf(s->dir, sizeof(s->dir), "%s/shard-%04u", cfg->data_dir, cfg->id) >= (int)sizeof(s->dir)) {
		snprintf(err, errlen, "data directory path too long: %s", cfg->data_dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(cfg->data_dir, 0755) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data_dir, strerror(e));
		return -e;
	}
	/* The newest valid snapshot first: the journal may have been pruned up
	 * to it, and journal_open() must know where the records it needs
	 * begin (after_seq) to tell a pruned journal from a missing segment. */
	snapshot_info info = {0};
	char warn[SNAPSHOT_ERR_LEN] = "";
	int rc = snapfile_load_latest(s->dir, &s->engine, &info, warn, sizeof(warn));
	if (rc < 0) {
		snprintf(err, errlen, "snapshot: %s", warn);
		return rc;
	}
	if (warn[0])
		fprintf(stderr, "level=warn shard=%u msg=\"%s\"\n", cfg->id, warn);
	if (rc == 1 && !configs_equal(&info.config, &cfg->engine)) {
		snprintf(err, errlen,
			 "snapshot of seq %" PRIu64 " in %s was taken with another engine capacity "
			 "(seats %u claims %u idem %u events %u): start with that configuration, or move the "
			 "snapshots away to rebuild from the journal",
			 info.seq, s->dir, info.config.seats_max, info.config.claims_max, info.config.idem_capacity,
			 info.config.events_max);
		return -EINVAL;
	}
	if (rc == 0) {
		rc = engine_new(&cfg->engine, &s->engine);
		if (rc < 0) {
			snprintf(err, errlen, "engine: %s", strerror(-rc));
			return rc;
		}
		info.seq = 0;
		info.seq_ts_ms = 0;
	}
	/* The journal: creates the shard directory, cuts a torn tail, and
	 * refuses corruption (or a journal shorter than the snapshot). */
	journal_options jopt = cfg->journal;
	jopt.after_seq = info.seq;
	rc = journal_open(cfg->data_dir, cfg->id, &jopt, &s->journal, &rec->journal, err, errlen);
	if (rc < 0)
		return rc;
	remove_stale_snapshots(s->dir);
	rec->snapshot_seq = info.seq;
	s->seq_last = info.seq;
	s->seq_last_ms = info.seq_ts_ms;

	journal_reader *r;
	rc = journal_reader_open_from(cfg->data_dir, cfg->id, &jopt, info.seq, &r, err, errlen);
	if (rc < 0)
		return rc;
	journal_record jr;
	char rerr[REPLAY_ERR_LEN];
	while ((rc = journal_reader_next(r, &jr)) == 1) {
		if (jr.seq <= info.seq)
			continue;
		if (jr.seq != s->seq_last + 1) {
			snprintf(err, errlen, "journal skips from seq %" PRIu64 " to %" PRIu64 " (%s)", s->seq_last,
				 jr.seq, jr.file);
			rc = -EBADMSG;
			break;
		}
		int ar = replay_apply(s->engine, &jr, cfg->verify_replay, NULL, rerr, sizeof(rerr));
		if (ar != REPLAY_OK) {
			snprintf(err, errlen, "%s", rerr);
			rc = ar == REPLAY_MISMATCH ? -EPROTO : -EBADMSG;
			break;
		}
		s->seq_last = jr.seq;
		s->seq_last_ms = jr.timestamp_ms;
		rec->replayed++;
	}
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s", journal_reader_error(r));
	journal_reader_close(r);
	if (rc < 0)
		return rc;
	if (s->seq_last != rec->journal.last_seq) {
		snprintf(err, errlen, "journal reader ended at seq %" PRIu64 " but the journal at %" PRIu64, s->seq_last,
			 rec->journal.last_seq);
		return -EBADMSG;
	}
	rec->last_seq = s->seq_last;
	/* The next snapshot is due snapshot_every records after the one just
	 * loaded, not after this start: a process that restarts often must
	 * still snapshot, or its recoveries grow without bound. */
	s->snap_seq = info.seq;
	atomic_store_explicit(&s->durable, s->seq_last, memory_order_relaxed);
	rec->seconds = now_seconds() - t0;
	return 0;
}

int shard_open(const shard_config *cfg, shard **out, shard_recovery *rec, char *err, size_t errlen)
{
	assert(cfg && out && err && errlen > 0);
	err[0] = '\0';
	shard_recovery local;
	if (!rec)
		rec = &local;
	memset(rec, 0, sizeof(*rec));
	int rc = shard_new(cfg, out);
	if (rc < 0) {
		snprintf(err, errlen, "shard %u: %s", cfg->id,
			 rc == -EINVAL ? "invalid configuration (ring sizes, tick)" : strerror(-rc));
		return rc;
	}
	if (!cfg->data_dir)
		return 0;
	rc = recover(*out, rec, err, errlen);
	if (rc < 0) {
		shard_free(*out);
		*out = NULL;
	}
	return rc;
}

int shard_start(shard *s)
{
	assert(s && !s->started);
	atomic_store_explicit(&s->stopping, 0, memory_order_relaxed); /* a stopped shard may restart */
	int rc = pthread_create(&s->thread, NULL, shard_main, s);
	if (rc != 0)
		return -rc;
	s->started = 1;
	return 0;
}

void shard_stop(shard *s)
{
	assert(s);
	if (!s->started)
		return;
	atomic_store_explicit(&s->stopping, 1, memory_order_release);
	/* The writer notices within one tick (ring_wait's timeout). */
	pthread_join(s->thread, NULL);
	s->started = 0;
}

void shard_free(shard *s)
{
	if (!s)
		return;
	shard_stop(s);
	snapshot_reap(s, 1);
	snapshot_finish(s);
	if (s->journal) {
		uint64_t d;
		journal_close(s->journal, &d);
	}
	engine_free(s->engine);
	ring_free(s->in);
	ring_free(s->out);
	mi_free(s);
}

int shard_submit(shard *s, const bo_cmd *cmds, const uint64_t *tags, uint32_t n)
{
	assert(s && cmds && n >= 1 && n <= BO_BATCH_MAX);
	uint64_t first;
	if (ring_claim(s->in, n, &first) != 0)
		return -EBUSY;
	for (uint32_t i = 0; i < n; i++) {
		shard_in *slot = ring_slot(s->in, first + i);
		slot->tag = tags ? tags[i] : 0;
		slot->cmd = cmds[i];
	}
	ring_publish(s->in, first, n);
	return 0;
}

ring *shard_output(shard *s) { return s->out; }

engine *shard_engine(shard *s) { return s->engine; }

uint64_t shard_batches(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->batches, memory_order_relaxed);
}

void shard_stats_get(const shard *cs, shard_stats *out)
{
	shard *s = (shard *)cs;
	out->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
	out->durable_seq = atomic_load_explicit(&s->durable, memory_order_relaxed);
	out->snapshots = atomic_load_explicit(&s->snapshots, memory_order_relaxed);
	out->snapshot_stall_ns_max = atomic_load_explicit(&s->snap_stall_ns_max, memory_order_relaxed);
	out->snapshot_ns_last = atomic_load_explicit(&s->snap_ns_last, memory_order_relaxed);
}

uint32_t shard_for_event(uint64_t event_id, uint32_t shard_count)
{
	assert(shard_count > 0);
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(event_id >> (8 * i));
	return (uint32_t)(XXH3_64bits(b, sizeof(b)) % shard_count);
}
