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
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>
#include <sys/syscall.h>

#include <mimalloc.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/fsio.h"
#include "journal/maint.h"
#include "base/log.h"
#include "engine/snapshot.h"
#include "shard/apply.h"
#include "shard/entry.h"
#include "shard/replica.h"
#include "shard/snapfile.h"

/* Batches applied but not yet durable. When it is full the writer waits
 * for the disk before applying more: with one write in flight and one
 * being gathered, 256 batches are far more than group commit needs. */
#define PENDING_MAX 256u

/* Paths of the files in a shard directory: PATH_MAX-long, and the
 * directory (data_dir/shard-NNNN) short enough that "/" and the longest
 * name in it (a snapshot's .tmp) fit behind it. */
#define SHARD_PATH_MAX PATH_MAX
#define SHARD_DIR_MAX (SHARD_PATH_MAX - 1 - SNAPFILE_NAME_LEN - sizeof(SNAPFILE_TMP_SUFFIX))

/* The snapshot builder's job state (shard.snap_state). */
enum { SNAP_IDLE = 0, SNAP_RUNNING = 1 };

/* An event count: threads wait on it for a condition on the shard's
 * published state; whoever changes that state bumps `count` (release) and,
 * if `waiters` is non-zero, wakes the futex on it. A waiter reads `count`,
 * registers in `waiters`, re-checks its condition and sleeps only while
 * `count` is unchanged. The seq_cst fences on both sides (event_notify /
 * event_wait) make it Dekker-safe: either the waiter sees the change or
 * the changer sees the waiter. */
typedef struct shard_event {
	_Atomic uint32_t count;
	atomic_uint waiters;
} shard_event;

/* The writer's mailbox (shard_replicate, shard_promote): one request at a
 * time, under mb_mu. The caller fills it and sets `posted` (release) and
 * kicks the writer's input ring; the writer serves it between batches,
 * sets `done` and signals. `closed` while no writer serves (before
 * shard_start, after its loop): requests get -ESHUTDOWN. */
enum { MAIL_NONE = 0, MAIL_REPLICATE = 1, MAIL_PROMOTE = 2 };
typedef struct shard_mail {
	int kind;
	int done, rc, closed;
	uint64_t epoch, prev;
	const journal_record *recs; /* the caller's: it waits until served */
	uint32_t n;
	char *err;
	size_t errlen;
} shard_mail;

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
	char dir[SHARD_DIR_MAX]; /* data_dir/shard-NNNN */
	pthread_t thread;
	int started;
	pthread_t builder_thread; /* the snapshot builder, with a journal */
	int builder_started;
	/* Set by shard_stop() (release), read by the writer between batches
	 * (acquire): whatever was published before the stop request is
	 * visible to the writer's last poll, which runs after it sees the
	 * flag, so nothing published before shard_stop() is left behind. */
	atomic_int stopping;
	/* 1 from shard_start until the writer's loop has ended (a stop or a
	 * failure): /healthz. Relaxed: a gauge. */
	atomic_int running;
	/* Batches applied: a statistics gauge, relaxed. */
	atomic_uint_least64_t batches;
	atomic_uint_least64_t submitted; /* commands accepted by shard_submit */
	/* Durable journal sequence. Stored (release) by the writer only after
	 * journal_poll/journal_wait reported those records durable, loaded
	 * (acquire) by followers (the snapshot builder's too) before they read journal files
	 * or act on the records: what is read up to it is on disk. */
	atomic_uint_least64_t durable;
	atomic_uint_least64_t retain; /* shard_retain(): prune keeps records after it */
	/* Waits for the durable sequence (followers, among them the snapshot
	 * builder's), also bumped on failure and builder stop. The
	 * writer pays a fence per durable advance, and a wake system call only
	 * while someone sleeps here: a caught-up follower (the builder only
	 * when it has caught up with a snapshot's records before they are
	 * durable, for the few batches until they are). */
	shard_event durable_ev;
	/* The builder's wait for a job (or stop): bumped once per snapshot, so
	 * an idle builder costs the writer nothing per batch. */
	shard_event job_ev;
	/* Snapshot gauges (relaxed: statistics). */
	atomic_uint_least64_t snapshots, snap_stall_ns_max, snap_ns_last, snap_cpu_ns_last;
	/* The writer's longest batch-to-batch gap under continuous input, while
	 * a snapshot was being built and while none was (relaxed: statistics). */
	atomic_uint_least64_t gap_ns_max_snap, gap_ns_max;
	/* shard_snapshot_request(): a snapshot is wanted now (relaxed: the
	 * writer acts on it at its next look, and publishes the job itself). */
	atomic_int snap_asked;
	/* /metrics: commands per batch applied (the writer observes), and the
	 * journal's write + sync latency per unit (the journal observes, on
	 * the writer's thread: journal_options.sync_hist). */
	bo_hist batch_hist, sync_hist;
	/* Set once (release) when the journal fails; readers acquire. */
	atomic_int failed;
	char failure[JOURNAL_ERR_LEN];

	/* The snapshot job, handed from the writer to the builder: the writer
	 * fills snap_target and snap_started_ns, then stores snap_state =
	 * SNAP_RUNNING (release); the builder reads them after loading
	 * SNAP_RUNNING (acquire), and stores SNAP_IDLE (release) when it is
	 * done with them, after which the writer (acquire) may start the next
	 * one. */
	_Atomic uint32_t snap_state;
	atomic_int builder_quit; /* set by shard_stop once the writer is joined */
	uint64_t snap_target;	/* the job: a snapshot after this record */
	int64_t snap_started_ns;
	/* Builder-thread state: its engine, following the journal (kept
	 * between snapshots only with cfg.snapshot_keep_engine). */
	replica *builder;

	/* Replication (shard.h, "Replication roles"). */
	atomic_int standby;		   /* 1 while a standby */
	atomic_uint_least64_t epoch;	   /* highest epoch journaled */
	atomic_uint_least64_t sync_floor;  /* shard_set_sync_floor */
	/* Published outputs reach this seq (shard_released_seq): stored
	 * (release) by the writer, bumps durable_ev like `durable`. */
	atomic_uint_least64_t released;
	atomic_int fence_asked;		   /* shard_fence() was called */
	/* Waits of the writer for the sync floor (its pending FIFO or output
	 * ring full of held outputs): bumped by the floor, fence and stop. */
	shard_event floor_ev;
	pthread_mutex_t last_mu;	   /* shard_last_record's pair */
	uint64_t last_pub_seq, last_pub_sum;
	pthread_mutex_t mb_mu;
	pthread_cond_t mb_cv;
	atomic_int mb_posted;
	shard_mail mb;

	/* Writer-thread state. */
	int fenced;		 /* fenced (shard_fence, or a stop with held outputs) */
	int64_t batch_ms;
	uint64_t batch_no;
	uint64_t seq_last;	 /* last journal sequence appended */
	int64_t seq_last_ms;	 /* its timestamp */
	uint64_t out_next;	 /* next output sequence this writer will claim */
	uint64_t out_published;	 /* output slots [.., out_published) are published */
	pending_batch pending[PENDING_MAX];
	uint32_t pending_head, pending_len;
	uint64_t snap_seq;	 /* records covered by the last snapshot (or its start) */
	int64_t gap_from_ns;	 /* end of the last batch applied; 0 after idling */
	uint8_t payload[ENTRY_SIZE_NOMAP_MAX];
};

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
	cfg->retain_seq = UINT64_MAX;
	cfg->verify_replay = 1;
}

/* ---- Waking and waiting (see shard_event) -------------------------------- */

/* After changing published state: bump the count and wake sleepers. */
static void event_notify(shard_event *ev)
{
	/* Dekker, changer half, with seq_cst operations rather than a fence
	 * (ThreadSanitizer does not model fences; on x86 the RMW is a locked
	 * instruction either way and the seq_cst load a plain one):
	 *  - the bump releases the state change to whoever reads the new count;
	 *  - the bump and the `waiters` load are both in the single total
	 *    order with event_wait()'s registration and count load. Either
	 *    the waiter's count load comes after the bump (it sees the change
	 *    and does not sleep), or its registration came before our
	 *    `waiters` load (we wake it, or its futex wait finds the count
	 *    moved and returns). */
	atomic_fetch_add_explicit(&ev->count, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&ev->waiters, memory_order_seq_cst) > 0)
		syscall(SYS_futex, (uint32_t *)&ev->count, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

typedef int (*shard_ready_fn)(shard *s, const void *ctx);

/* Sleeps on ev until ready(s, ctx) or the monotonic deadline (INT64_MAX:
 * none). Returns 1 when ready, 0 at the deadline. */
static int event_wait(shard *s, shard_event *ev, shard_ready_fn ready, const void *ctx, int64_t deadline_ns)
{
	int ok = 0;
	/* Dekker, waiter half (see event_notify): the registration and the
	 * count load are seq_cst, so they and the changer's bump and `waiters`
	 * load fall in one total order; the count load also acquires the state
	 * change of the bump it sees, which ready() then reads. */
	atomic_fetch_add_explicit(&ev->waiters, 1, memory_order_seq_cst);
	for (;;) {
		uint32_t seen = atomic_load_explicit(&ev->count, memory_order_seq_cst);
		if (ready(s, ctx)) {
			ok = 1;
			break;
		}
		struct timespec ts, *tsp = NULL;
		if (deadline_ns != INT64_MAX) {
			int64_t left_ns = deadline_ns - bo_clock_ns();
			if (left_ns <= 0)
				break;
			ts.tv_sec = (time_t)(left_ns / 1000000000);
			ts.tv_nsec = (long)(left_ns % 1000000000);
			tsp = &ts;
		}
		/* Sleeps only while the count is still `seen`: a change after the
		 * load above returns at once. EINTR, timeouts and spurious wakes
		 * just re-check. */
		syscall(SYS_futex, (uint32_t *)&ev->count, FUTEX_WAIT_PRIVATE, seen, tsp, NULL, 0);
	}
	atomic_fetch_sub_explicit(&ev->waiters, 1, memory_order_relaxed);
	return ok;
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
	event_notify(&s->durable_ev); /* waiters for durability: nothing more will come */
	bo_log(BO_LOG_ERROR, "shard=%u msg=\"%s\"", s->cfg.id, s->failure);
}

const char *shard_failed(const shard *s)
{
	/* Acquire: pairs with shard_fail's release, so the message is whole. */
	return atomic_load_explicit(&((shard *)s)->failed, memory_order_acquire) ? s->failure : NULL;
}

uint64_t shard_durable_seq(const shard *s)
{
	/* Acquire: pairs with publish_durable's release. */
	return atomic_load_explicit(&((shard *)s)->durable, memory_order_acquire);
}

void shard_retain(shard *s, uint64_t seq)
{
	uint64_t cur = atomic_load_explicit(&s->retain, memory_order_relaxed);
	while (cur < seq && !atomic_compare_exchange_weak_explicit(&s->retain, &cur, seq, memory_order_relaxed,
								   memory_order_relaxed)) {
	}
}

uint64_t shard_retained(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->retain, memory_order_relaxed);
}

static int durable_passed(shard *s, const void *ctx)
{
	return shard_durable_seq(s) > *(const uint64_t *)ctx || shard_failed(s) != NULL;
}

int shard_durable_wait(const shard *cs, uint64_t seq, int64_t timeout_ns, uint64_t *durable)
{
	assert(cs);
	shard *s = (shard *)cs;
	if (timeout_ns > 0 && !durable_passed(s, &seq)) {
		int64_t now = bo_clock_ns();
		int64_t deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
		event_wait(s, &s->durable_ev, durable_passed, &seq, deadline);
	}
	uint64_t d = shard_durable_seq(s);
	if (durable)
		*durable = d;
	if (d > seq)
		return 1;
	return shard_failed(s) ? -ESHUTDOWN : 0;
}

const shard_config *shard_get_config(const shard *s) { return &s->cfg; }

/* ---- Output: claim now, publish when durable ----------------------------- */

static void publish_upto(shard *s, uint64_t out_end)
{
	if (out_end > s->out_published) {
		ring_publish(s->out, s->out_published, (uint32_t)(out_end - s->out_published));
		s->out_published = out_end;
	}
}

static void fence_outputs(shard *s);

/* The sequence outputs may be published through: durable here and at or
 * below the sync floor; never less than what was released already (a floor
 * moved down keeps what was published). Stores it for shard_released_seq. */
static uint64_t release_point(shard *s, uint64_t durable)
{
	uint64_t floor = atomic_load_explicit(&s->sync_floor, memory_order_acquire);
	uint64_t lim = durable < floor ? durable : floor;
	uint64_t rel = atomic_load_explicit(&s->released, memory_order_relaxed);
	if (lim > rel) {
		/* Release: pairs with shard_released_seq's acquire (the records
		 * through it are durable: the durable store came first). */
		atomic_store_explicit(&s->released, lim, memory_order_release);
		rel = lim;
	}
	return rel;
}

/* Publishes every batch whose records are all durable and released (at or
 * below the sync floor). A fenced shard publishes nothing real: whatever
 * is unpublished is answered BO_NOT_PRIMARY (fence_outputs). */
static void publish_durable(shard *s, uint64_t durable)
{
	uint64_t rel0 = atomic_load_explicit(&s->released, memory_order_relaxed);
	int moved = 0;
	if (durable > atomic_load_explicit(&s->durable, memory_order_relaxed)) {
		/* Release: pairs with shard_durable_seq's acquire. */
		atomic_store_explicit(&s->durable, durable, memory_order_release);
		moved = 1;
	}
	if (s->fenced || atomic_load_explicit(&s->fence_asked, memory_order_acquire)) {
		if (moved)
			event_notify(&s->durable_ev);
		fence_outputs(s);
		return;
	}
	uint64_t rel = release_point(s, durable);
	if (moved || rel != rel0)
		event_notify(&s->durable_ev); /* followers of either sequence */
	uint64_t end = s->out_published;
	while (s->pending_len > 0 && s->pending[s->pending_head].seq_last <= rel) {
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

static int floor_moved(shard *s, const void *ctx)
{
	const uint64_t *seen = ctx;
	return atomic_load_explicit(&s->sync_floor, memory_order_acquire) != seen[0] ||
	       atomic_load_explicit(&s->fence_asked, memory_order_acquire) ||
	       atomic_load_explicit(&s->stopping, memory_order_acquire);
}

/* Blocks until the oldest pending batch is published: it waits for the
 * disk, or for the sync floor (a standby's acknowledgement). A fence, or a
 * stop, while the floor holds it: the held outputs are answered
 * BO_NOT_PRIMARY (fence_outputs) — a primary that stops before its standby
 * confirmed cannot acknowledge; the client's retry with the same request
 * id finds the result wherever the record survived. Returns 0 or a failure. */
static int wait_oldest(shard *s);
static int wait_oldest(shard *s)
{
	if (!s->journal || s->pending_len == 0)
		return reap(s);
	const uint32_t before = s->pending_len;
	for (;;) {
		const pending_batch *p = &s->pending[s->pending_head];
		uint64_t seen = atomic_load_explicit(&s->sync_floor, memory_order_acquire);
		int rc = p->seq_last > shard_durable_seq(s) ? wait_pending(s, 0) : reap(s);
		if (rc < 0)
			return rc;
		if (s->pending_len < before || s->fenced)
			return 0;
		if (p->seq_last > shard_durable_seq(s))
			continue; /* not durable yet (a spurious return) */
		if (atomic_load_explicit(&s->fence_asked, memory_order_acquire) ||
		    atomic_load_explicit(&s->stopping, memory_order_acquire)) {
			s->fenced = 1;
			fence_outputs(s);
			return 0;
		}
		event_wait(s, &s->floor_ev, floor_moved, &seen, INT64_MAX);
	}
}

/* Claims n output slots. The unpublished slots of pending batches may be
 * what fills the ring: then wait for the disk, which publishes them, and
 * for the consumer. */
static uint64_t out_claim(shard *s, uint32_t n)
{
	uint64_t first;
	while (ring_claim(s->out, n, &first) != 0) {
		if (s->pending_len > 0 && wait_oldest(s) == 0)
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

static void note_last_record(shard *s);

/* Ends a batch: its outputs wait for the journal sequence reached so far. */
static void batch_done(shard *s)
{
	note_last_record(s);
	if (!s->journal) {
		publish_upto(s, s->out_next);
		return;
	}
	if (s->fenced) {
		fence_outputs(s); /* a fenced shard's answers: not_primary at once */
		return;
	}
	if (s->pending_len == PENDING_MAX && wait_oldest(s) < 0)
		return; /* failed: fail_release_outputs answers everything pending */
	if (s->pending_len == 0 && s->seq_last <= atomic_load_explicit(&s->released, memory_order_relaxed)) {
		publish_upto(s, s->out_next); /* nothing of it waits for the disk or the floor */
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

/*
 * SNAPSHOTS: BUILT FROM THE JOURNAL, OFF THE WRITER
 *
 * The writer never copies its engine, forks or touches a file for a
 * snapshot: when one is due (snapshot_every records after the last, or
 * asked for) it hands the sequence S of its last journaled record to the
 * shard's snapshot builder thread (a store and a futex wake, once per
 * snapshot), and goes on. The builder, at the lowest CPU priority, owns a
 * second engine that follows the journal (shard/replica.h: a follower whose
 * sink re-executes records) and, for each job, in this order:
 *   1. gets its engine: the one kept from the last snapshot
 *      (cfg.snapshot_keep_engine), or, by default, the newest snapshot
 *      file loaded again (no snapshot yet: a new engine at seq 0);
 *   2. catches it up to S by re-executing, and verifying, the journal's
 *      records after the engine's sequence. The follower hands out only
 *      durable records, so the builder never reads a record a crash could
 *      lose, and its state at S is the writer's state after S: the engine
 *      is deterministic and every state change is in the journal (the
 *      snapshot tests compare the two images byte for byte);
 *   3. writes snap-S.snap.tmp and fsyncs it;
 *   4. checks that the journal is durable through S. A snapshot must never
 *      hold a change the journal could lose; here that holds by
 *      construction (step 2 read only durable records), and the check
 *      stays as the rule's last line of defence;
 *   5. renames it to snap-S.snap and fsyncs the shard directory, so the
 *      snapshot's directory entry is durable, not just its bytes;
 *   6. only then prunes the journal up to S (and never past the retention
 *      floor, shard_retain): a segment goes only once a durable snapshot
 *      covers every record in it, so a crash at any point leaves either the
 *      segments or a snapshot that replaces them. If step 5 failed, nothing
 *      is pruned.
 * Any failure leaves the journal as it was (and no .tmp behind): the
 * snapshot is skipped, logged, and the next one comes an interval later.
 * The writer starts the next snapshot only when the builder is back to
 * SNAP_IDLE, so there is at most one build and one .tmp at a time.
 *
 * Cost: the builder's CPU is a replay of the interval's records (the
 * writer's apply without batching, ring or journal) plus, by default, one
 * snapshot load per snapshot; its memory is a second engine while it
 * builds (always, with snapshot_keep_engine). With no snapshot yet, the
 * first build replays the journal from its first record, as a recovery
 * without a snapshot did. The builder runs at the lowest priority: when the
 * writer keeps both cores busy it falls behind, and the next snapshot,
 * due once it is back, covers everything since (snapshots come less often;
 * the writer is never slowed). A shard with a journal always has the
 * builder thread (asleep unless building), so snapshots can be asked for
 * even with snapshot_every 0. perf/README.md has figures.
 */

/* Writer: hands a snapshot of the state after its last journaled record
 * to the builder. */
static void snapshot_start(shard *s)
{
	int64_t t0 = bo_clock_ns();
	s->snap_seq = s->seq_last; /* whatever happens, the next try is an interval later */
	s->snap_target = s->seq_last;
	s->snap_started_ns = t0;
	/* Release: the job's fields before the state the builder acquires. */
	atomic_store_explicit(&s->snap_state, SNAP_RUNNING, memory_order_release);
	event_notify(&s->job_ev); /* the builder sleeps: one wake per snapshot */
	uint64_t spent = (uint64_t)(bo_clock_ns() - t0);
	if (spent > atomic_load_explicit(&s->snap_stall_ns_max, memory_order_relaxed))
		atomic_store_explicit(&s->snap_stall_ns_max, spent, memory_order_relaxed);
}

static void maybe_snapshot(shard *s)
{
	if (!s->builder_started)
		return;
	int asked = atomic_load_explicit(&s->snap_asked, memory_order_relaxed);
	if (!asked && (s->cfg.snapshot_every == 0 || s->seq_last - s->snap_seq < s->cfg.snapshot_every))
		return;
	/* Acquire: pairs with the builder's release of SNAP_IDLE, so it is
	 * done with the job's fields before they are overwritten. */
	if (atomic_load_explicit(&s->snap_state, memory_order_acquire) != SNAP_IDLE)
		return;
	if (asked)
		atomic_store_explicit(&s->snap_asked, 0, memory_order_relaxed);
	if (s->seq_last > s->snap_seq)
		snapshot_start(s);
}

void shard_snapshot_request(shard *s) { atomic_store_explicit(&s->snap_asked, 1, memory_order_relaxed); }

/* Builder: CPU time of the calling thread. */
static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Builder, step 1: the engine to catch up (s->builder). Returns 0, or -1
 * (logged). */
static int builder_open(shard *s)
{
	if (s->builder)
		return 0;
	char err[JOURNAL_ERR_LEN];
	char warn[SNAPSHOT_ERR_LEN] = "";
	engine *e = NULL;
	snapshot_info info = {0};
	int rc = snapfile_load_latest(s->dir, &e, &info, warn, sizeof(warn));
	if (warn[0])
		bo_log(BO_LOG_WARN, "shard=%u msg=\"snapshot builder: %s\"", s->cfg.id, warn);
	if (rc == 0) {
		rc = engine_new(&s->cfg.engine, &e);
		info.seq = 0;
		info.seq_ts_ms = 0;
		snprintf(err, sizeof(err), "engine: %s", strerror(rc < 0 ? -rc : 0));
	} else if (rc < 0) {
		snprintf(err, sizeof(err), "%s", warn);
	}
	if (rc >= 0)
		rc = replica_open(s, e, info.seq, info.seq_ts_ms, &s->builder, err, sizeof(err));
	if (rc < 0) {
		bo_log(BO_LOG_WARN, "shard=%u msg=\"snapshot skipped, journal kept\" seq=%" PRIu64 " err=\"%s\"",
		       s->cfg.id, s->snap_target, err);
		return -1;
	}
	return 0;
}

/* Builder, steps 4 to 6 for the .tmp of S. Returns 0, or -1 (logged). */
static int snapshot_install(shard *s, uint64_t S)
{
	char err[JOURNAL_ERR_LEN];
	if (shard_durable_seq(s) < S) {
		bo_log(BO_LOG_ERROR,
		       "shard=%u msg=\"snapshot ahead of the durable journal, discarded\" seq=%" PRIu64
		       " durable=%" PRIu64,
		       s->cfg.id, S, shard_durable_seq(s));
		snapfile_discard_tmp(s->dir, S);
		return -1;
	}
	if (snapfile_publish(s->dir, S, err, sizeof(err)) < 0) {
		/* The snapshot may not survive a crash: prune nothing it covers. */
		bo_log(BO_LOG_WARN, "shard=%u msg=\"snapshot not made official, journal kept\" err=\"%s\"", s->cfg.id,
		       err);
		return -1;
	}
	if (s->cfg.prune) {
		uint64_t upto = S, floor = shard_retained(s);
		if (floor < upto)
			upto = floor; /* a committer still needs what follows its position */
		if (upto > 0 && journal_prune(s->cfg.data_dir, s->cfg.id, upto, err, sizeof(err)) < 0)
			bo_log(BO_LOG_WARN, "shard=%u msg=\"journal prune failed\" err=\"%s\"", s->cfg.id, err);
	}
	return 0;
}

/* Builder: steps 2 and 3 for S with the builder's engine. Returns 0, or -1
 * (logged). t_caught: when the engine reached S. */
static int snapshot_write(shard *s, uint64_t S, int64_t *t_caught)
{
	char err[REPLAY_ERR_LEN];
	if (replica_catch_up(s->builder, S, err, sizeof(err)) < 0) {
		bo_log(BO_LOG_WARN, "shard=%u msg=\"snapshot skipped, journal kept\" seq=%" PRIu64 " err=\"%s\"",
		       s->cfg.id, S, err);
		return -1;
	}
	*t_caught = bo_clock_ns();
	if (snapfile_write_tmp(replica_engine(s->builder), s->dir, s->cfg.id, S, replica_seq_ts(s->builder), err,
			       sizeof(err)) < 0) {
		bo_log(BO_LOG_WARN, "shard=%u msg=\"snapshot write failed, journal kept\" err=\"%s\"", s->cfg.id, err);
		return -1;
	}
	return 0;
}

/* Builder: one snapshot job, steps 1 to 6. */
static void snapshot_build(shard *s)
{
	const uint64_t S = s->snap_target;
	const int64_t cpu0 = thread_cpu_ns(), t0 = bo_clock_ns();
	const int kept = s->builder != NULL;
	if (builder_open(s) < 0)
		return;
	const uint64_t from = replica_seq(s->builder);
	const int64_t t_open = bo_clock_ns();
	int64_t t_caught = t_open;
	/* from > S: a newer snapshot is official already, nothing to do. */
	int rc = from > S ? -1 : snapshot_write(s, S, &t_caught);
	if (rc == 0)
		rc = snapshot_install(s, S);
	if (rc == 0) {
		const int64_t t_end = bo_clock_ns(), cpu = thread_cpu_ns() - cpu0;
		atomic_fetch_add_explicit(&s->snapshots, 1, memory_order_relaxed);
		atomic_store_explicit(&s->snap_ns_last, (uint64_t)(t_end - s->snap_started_ns), memory_order_relaxed);
		atomic_store_explicit(&s->snap_cpu_ns_last, (uint64_t)cpu, memory_order_relaxed);
		bo_log(BO_LOG_INFO,
		       "shard=%u msg=\"snapshot made\" seq=%" PRIu64 " engine=%s from_seq=%" PRIu64
		       " open_ms=%.1f catch_up_ms=%.1f write_ms=%.1f cpu_ms=%.1f",
		       s->cfg.id, S, kept ? "kept" : "loaded", from, (double)(t_open - t0) / 1e6,
		       (double)(t_caught - t_open) / 1e6, (double)(t_end - t_caught) / 1e6, (double)cpu / 1e6);
	}
	/* A replica that failed is not trusted further; a kept one follows on. */
	if (rc < 0 || !s->cfg.snapshot_keep_engine) {
		replica_close(s->builder);
		s->builder = NULL;
	}
}

static int job_or_stop(shard *s, const void *ctx)
{
	(void)ctx;
	return atomic_load_explicit(&s->snap_state, memory_order_acquire) == SNAP_RUNNING ||
	       atomic_load_explicit(&s->builder_quit, memory_order_acquire);
}

/* The snapshot builder thread: one job at a time until shard_stop() (which
 * stops it only after the writer, so no job comes after the stop and a job
 * under way is finished: the writer has made every record durable). */
static void *builder_main(void *arg)
{
	shard *s = arg;
	char name[16];
	snprintf(name, sizeof(name), "bo-snap-%04u", s->cfg.id % 10000);
	pthread_setname_np(pthread_self(), name); /* top -H, and the tests find it */
	/* The lowest CPU priority, for this thread only (Linux's setpriority
	 * takes a thread id): on a small machine the builder must not take CPU
	 * from the writer or the gateway. Not SCHED_IDLE: under sustained full
	 * load that would starve it, and snapshots would stop. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		bo_log(BO_LOG_DEBUG, "shard=%u msg=\"snapshot builder keeps its priority\" err=\"%s\"", s->cfg.id,
		       strerror(errno));
	for (;;) {
		event_wait(s, &s->job_ev, job_or_stop, NULL, INT64_MAX);
		if (atomic_load_explicit(&s->snap_state, memory_order_acquire) != SNAP_RUNNING)
			break; /* stopping, nothing under way */
		snapshot_build(s);
		/* Release: done with the job's fields (pairs with maybe_snapshot). */
		atomic_store_explicit(&s->snap_state, SNAP_IDLE, memory_order_release);
	}
	replica_close(s->builder);
	s->builder = NULL;
	return NULL;
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
 * the resulting state is the same. A chunk is also at most
 * SHARD_OUT_POLL_MAX expiries: they share their TICK's sequence, and a
 * consumer that takes SHARD_OUT_POLL_MAX records at a time can then keep
 * every record of one sequence together (the read model needs to: one
 * sequence, one state). */
static int begin_batch(shard *s)
{
	int64_t now = s->cfg.clock(s->cfg.clock_ctx);
	int64_t last = engine_now(s->engine);
	s->batch_ms = now > last ? now : last;
	s->batch_no++;
	const uint32_t chunk = s->cfg.out_slots / 4 < SHARD_OUT_POLL_MAX ? s->cfg.out_slots / 4 : SHARD_OUT_POLL_MAX;
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

/* ---- After a failure: an answer for every command ------------------------ */

/* A command the failed shard will not apply: busy, with the ids a client
 * matches answers by. */
static void refused_result(bo_result *r, uint8_t status, uint8_t op, uint64_t client_id, uint64_t request_id,
			   uint64_t event_id)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->status = status;
	r->client_id = client_id;
	r->request_id = request_id;
	r->event_id = event_id;
}

/* Fills output slot o with the refusal (BO_BUSY: failed; BO_NOT_PRIMARY:
 * standby or fenced) of input slot in. */
static void refuse_answer(shard_out *o, const shard_in *in, const shard *s, uint8_t status)
{
	o->kind = SHARD_OUT_RESULT;
	o->tag = in->tag;
	o->seq = 0;
	o->batch = s->batch_no;
	o->now_ms = s->batch_ms;
	refused_result(&o->u.result, status, in->cmd.op, in->cmd.client_id, in->cmd.request_id, in->cmd.event_id);
}

static void fail_answer(shard_out *o, const shard_in *in, const shard *s) { refuse_answer(o, in, s, BO_BUSY); }

/* Answers n input slots from `first` with `status` at once (a standby's or
 * a fenced or failed shard's commands): nothing is applied. */
static void refuse_batch(shard *s, uint64_t first, uint32_t n, uint8_t status)
{
	uint64_t out_first = out_claim(s, n);
	for (uint32_t i = 0; i < n; i++)
		refuse_answer(ring_slot(s->out, out_first + i), ring_slot(s->in, first + i), s, status);
	ring_release(s->in, n);
	publish_upto(s, s->out_next);
}

static int apply_batch(shard *s, uint64_t first, uint32_t n)
{
	if (s->fenced || atomic_load_explicit(&s->standby, memory_order_relaxed)) {
		refuse_batch(s, first, n, BO_NOT_PRIMARY);
		return 0;
	}
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
	if (rc != 0) {
		/* Failed: nothing of this batch is acknowledged. Its slots
		 * (some never filled) become busy answers, published with the
		 * rest by fail_release_outputs(). */
		for (uint32_t i = 0; i < n; i++)
			fail_answer(ring_slot(s->out, out_first + i), ring_slot(s->in, first + i), s);
		ring_release(s->in, n);
		return rc;
	}
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
	bo_hist_observe(&s->batch_hist, n);
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

/* The journal failed: every output slot claimed but not published belongs
 * to a batch that is not durable (or to the batch the failure struck,
 * already answered busy). A result becomes busy, an expiry void; then all of them
 * are published, so the consumer answers every command that was waiting
 * for the disk. */
static void release_outputs_as(shard *s, uint8_t status)
{
	for (uint64_t q = s->out_published; q < s->out_next; q++) {
		shard_out *o = ring_slot(s->out, q);
		if (o->kind == SHARD_OUT_RESULT) {
			const bo_result r = o->u.result;
			refused_result(&o->u.result, status, r.op, r.client_id, r.request_id, r.event_id);
			o->seq = 0;
		} else {
			o->kind = SHARD_OUT_VOID;
		}
	}
	s->pending_len = 0;
	publish_upto(s, s->out_next);
}

static void fail_release_outputs(shard *s) { release_outputs_as(s, BO_BUSY); }

/* Fenced: every output not published (held for the disk or the sync
 * floor) is answered BO_NOT_PRIMARY, expiries become VOID; published at
 * once. From then on the writer publishes nothing real (s->fenced). */
static void fence_outputs(shard *s)
{
	s->fenced = 1;
	release_outputs_as(s, BO_NOT_PRIMARY);
}

/* The writer after a failure, until shard_stop(): whatever is in the input
 * ring (commands a producer submitted before it saw shard_failed(), or
 * after) is answered busy at once, so no request waits for an answer that
 * would never come. */
static void fail_drain(shard *s, int64_t tick_ns)
{
	for (;;) {
		uint64_t first;
		uint32_t n = ring_poll(s->in, BO_BATCH_MAX, &first);
		if (n == 0) {
			if (!atomic_load_explicit(&s->stopping, memory_order_acquire)) {
				ring_wait(s->in, tick_ns);
				continue;
			}
			/* One more poll after the flag, as in shard_main. */
			if ((n = ring_poll(s->in, BO_BATCH_MAX, &first)) == 0)
				return;
		}
		refuse_batch(s, first, n, BO_BUSY);
	}
}

/* ---- Replication: standby appends, promotion, fencing ------------------- */

/* Publishes the last journaled record for shard_last_record (writer). */
static void note_last_record(shard *s)
{
	if (!s->journal)
		return;
	uint64_t seq, sum;
	journal_last(s->journal, &seq, &sum);
	pthread_mutex_lock(&s->last_mu);
	s->last_pub_seq = seq;
	s->last_pub_sum = sum;
	pthread_mutex_unlock(&s->last_mu);
}

static void epoch_raise(shard *s, uint64_t epoch)
{
	if (epoch > atomic_load_explicit(&s->epoch, memory_order_relaxed))
		atomic_store_explicit(&s->epoch, epoch, memory_order_release);
}

static int recover_snapshot(shard *s, snapshot_info *info, char *err, size_t errlen);
static int recover_replay(shard *s, const journal_options *jopt, shard_recovery *rec, char *err, size_t errlen);

/* A standby's engine ran records it then refused (a result that differs,
 * a later record that does not decode): the engine is ahead of the
 * journal. It is rebuilt as recovery builds it (newest snapshot, then the
 * journal through the last record appended, which is made durable first
 * so the reader sees it), so a refusal leaves the shard as it was. Rare:
 * a bug or a hostile sender. Returns 0, or fails the shard. */
static int rebuild_engine(shard *s)
{
	char err[JOURNAL_ERR_LEN] = "";
	int rc = wait_pending(s, 1);
	if (rc == 0 && s->seq_last > shard_durable_seq(s)) {
		uint64_t d;
		rc = journal_wait(s->journal, s->seq_last, &d);
		publish_durable(s, d);
	}
	if (rc < 0)
		return rc;
	const uint64_t target = s->seq_last;
	const int64_t target_ms = s->seq_last_ms;
	engine_free(s->engine);
	s->engine = NULL;
	snapshot_info info = {0};
	rc = recover_snapshot(s, &info, err, sizeof(err));
	shard_recovery tmp;
	memset(&tmp, 0, sizeof(tmp));
	tmp.journal.last_seq = target;
	if (rc == 0) {
		journal_options jopt = s->cfg.journal;
		jopt.after_seq = info.seq;
		s->seq_last = info.seq;
		s->seq_last_ms = info.seq_ts_ms;
		rc = recover_replay(s, &jopt, &tmp, err, sizeof(err));
	}
	if (rc < 0) {
		s->seq_last = target;
		s->seq_last_ms = target_ms;
		bo_log(BO_LOG_ERROR, "shard=%u msg=\"standby engine rebuild failed\" err=\"%s\"", s->cfg.id, err);
		shard_fail(s, "standby engine rebuild", rc);
		return rc;
	}
	assert(s->seq_last == target);
	return 0;
}

/* Checks a replicated run against the standby's journal: epoch, sequence
 * continuity, the chain point. Returns 0 or the refusal (err set). */
static int replicate_check(shard *s, const shard_mail *m)
{
	uint64_t last, sum;
	journal_last(s->journal, &last, &sum);
	assert(last == s->seq_last);
	uint64_t epoch = atomic_load_explicit(&s->epoch, memory_order_relaxed);
	if (m->epoch < epoch) {
		snprintf(m->err, m->errlen, "shard %u: records of epoch %" PRIu64 " refused: this standby is at epoch %" PRIu64,
			 s->cfg.id, m->epoch, epoch);
		return -ESTALE;
	}
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->recs[i].seq != last + 1 + i) {
			snprintf(m->err, m->errlen,
				 "shard %u: record %u of the run has seq %" PRIu64 ", expected %" PRIu64
				 " (%s; this standby's last seq is %" PRIu64 ")",
				 s->cfg.id, i, m->recs[i].seq, last + 1 + i,
				 m->recs[i].seq > last + 1 + i ? "a gap" : "an overlap", last);
			return -ERANGE;
		}
	}
	if (m->n > 0 && m->prev != sum) {
		snprintf(m->err, m->errlen,
			 "shard %u: the run's previous checksum %#" PRIx64 " is not that of this standby's record %" PRIu64
			 " (%#" PRIx64 "): the histories diverged",
			 s->cfg.id, m->prev, last, sum);
		return -EBADMSG;
	}
	return 0;
}

/* Writer: a standby's shard_replicate. Re-executes (verified) every record
 * first, then appends them all with their timestamps, so a refusal appends
 * nothing (and an engine that ran refused records is rebuilt). */
static int serve_replicate(shard *s, shard_mail *m)
{
	if (shard_failed(s))
		return -ESHUTDOWN;
	if (!atomic_load_explicit(&s->standby, memory_order_relaxed)) {
		snprintf(m->err, m->errlen, "shard %u is a primary", s->cfg.id);
		return -EPERM;
	}
	int rc = replicate_check(s, m);
	if (rc < 0)
		return rc;
	uint64_t new_epoch = 0;
	for (uint32_t i = 0; i < m->n; i++) {
		entry en;
		int ar = replay_apply(s->engine, &m->recs[i], 1, &en, m->err, m->errlen);
		if (ar != REPLAY_OK) {
			rc = ar == REPLAY_MALFORMED ? -EBADMSG : -EPROTO;
			/* The engine ran records 0..i-1 (and i, for a mismatch). */
			if ((i > 0 || ar == REPLAY_MISMATCH) && rebuild_engine(s) < 0)
				return -ESHUTDOWN;
			return rc;
		}
		if (en.kind == ENTRY_EPOCH && en.epoch > new_epoch)
			new_epoch = en.epoch;
	}
	for (uint32_t i = 0; i < m->n; i++) {
		const journal_record *r = &m->recs[i];
		if (journal_put(s, r->timestamp_ms, r->payload, r->payload_len) < 0)
			return -ESHUTDOWN;
	}
	if (m->n > 0) {
		rc = journal_commit(s->journal);
		if (rc < 0) {
			shard_fail(s, "journal commit", rc);
			return -ESHUTDOWN;
		}
		batch_done(s); /* no outputs: only the durability of the run */
	}
	epoch_raise(s, new_epoch);
	return 0;
}

/* Writer: shard_promote. */
static int serve_promote(shard *s, shard_mail *m)
{
	if (shard_failed(s))
		return -ESHUTDOWN;
	if (!atomic_load_explicit(&s->standby, memory_order_relaxed))
		return -EPERM;
	if (m->epoch <= atomic_load_explicit(&s->epoch, memory_order_relaxed))
		return -EINVAL;
	uint8_t buf[ENTRY_EPOCH_BYTES];
	int32_t len = entry_encode_epoch(m->epoch, buf, sizeof(buf));
	assert(len == (int32_t)ENTRY_EPOCH_BYTES);
	/* The engine's clock, not the wall clock: the record moves nothing,
	 * and the batches after it begin from that time anyway. */
	if (journal_put(s, engine_now(s->engine), buf, (uint32_t)len) < 0)
		return -ESHUTDOWN;
	int rc = journal_commit(s->journal);
	if (rc < 0) {
		shard_fail(s, "journal commit", rc);
		return -ESHUTDOWN;
	}
	batch_done(s);
	epoch_raise(s, m->epoch);
	atomic_store_explicit(&s->standby, 0, memory_order_release);
	bo_log(BO_LOG_INFO, "shard=%u msg=\"promoted to primary\" epoch=%" PRIu64 " seq=%" PRIu64, s->cfg.id, m->epoch,
	       s->seq_last);
	return 0;
}

/* Writer: serves the mailbox if a request is posted. */
static void serve_mail(shard *s)
{
	/* Acquire: pairs with mail_call's release, so the request is whole. */
	if (!atomic_load_explicit(&s->mb_posted, memory_order_acquire))
		return;
	pthread_mutex_lock(&s->mb_mu);
	shard_mail *m = &s->mb;
	assert(m->kind != MAIL_NONE && !m->done);
	m->rc = m->kind == MAIL_REPLICATE ? serve_replicate(s, m) : serve_promote(s, m);
	note_last_record(s);
	m->done = 1;
	atomic_store_explicit(&s->mb_posted, 0, memory_order_relaxed);
	pthread_cond_broadcast(&s->mb_cv);
	pthread_mutex_unlock(&s->mb_mu);
}

/* Writer, at its end (and shard_new: before any start): requests get
 * -ESHUTDOWN from now on, a posted one too. */
static void mail_close(shard *s, int closed)
{
	pthread_mutex_lock(&s->mb_mu);
	s->mb.closed = closed;
	if (closed && s->mb.kind != MAIL_NONE && !s->mb.done) {
		s->mb.rc = -ESHUTDOWN;
		s->mb.done = 1;
		atomic_store_explicit(&s->mb_posted, 0, memory_order_relaxed);
	}
	pthread_cond_broadcast(&s->mb_cv);
	pthread_mutex_unlock(&s->mb_mu);
}

/* Caller side: posts *req, wakes the writer, waits for its answer. */
static int mail_call(shard *s, const shard_mail *req)
{
	pthread_mutex_lock(&s->mb_mu);
	while (s->mb.kind != MAIL_NONE && !s->mb.closed)
		pthread_cond_wait(&s->mb_cv, &s->mb_mu);
	if (s->mb.closed) {
		pthread_mutex_unlock(&s->mb_mu);
		if (req->err && req->errlen)
			snprintf(req->err, req->errlen, "shard %u: not running", s->cfg.id);
		return -ESHUTDOWN;
	}
	s->mb = *req;
	s->mb.done = 0;
	s->mb.closed = 0;
	atomic_store_explicit(&s->mb_posted, 1, memory_order_release);
	pthread_mutex_unlock(&s->mb_mu);
	ring_kick(s->in);
	pthread_mutex_lock(&s->mb_mu);
	while (!s->mb.done)
		pthread_cond_wait(&s->mb_cv, &s->mb_mu);
	int rc = s->mb.rc;
	int closed = s->mb.closed;
	memset(&s->mb, 0, sizeof(s->mb));
	s->mb.closed = closed;
	pthread_cond_broadcast(&s->mb_cv);
	pthread_mutex_unlock(&s->mb_mu);
	return rc;
}

int shard_replicate(shard *s, uint64_t epoch, uint64_t prev_checksum, const journal_record *records, uint32_t n,
		    char *err, size_t errlen)
{
	assert(s && (records || n == 0) && err && errlen > 0);
	err[0] = '\0';
	if (!s->journal) {
		snprintf(err, errlen, "shard %u has no journal", s->cfg.id);
		return -EPERM;
	}
	shard_mail req = {.kind = MAIL_REPLICATE, .epoch = epoch, .prev = prev_checksum, .recs = records, .n = n,
			  .err = err, .errlen = errlen};
	int rc = mail_call(s, &req);
	if (rc == -ESHUTDOWN && !err[0])
		snprintf(err, errlen, "shard %u stopped: %s", s->cfg.id, shard_failed(s) ? shard_failed(s) : "stopping");
	if (rc == -EPROTO || rc == -EBADMSG)
		bo_log(BO_LOG_WARN, "shard=%u msg=\"replicated records refused\" err=\"%s\"", s->cfg.id, err);
	return rc;
}

int shard_promote(shard *s, uint64_t epoch)
{
	assert(s);
	if (!s->journal)
		return -EPERM;
	char err[64];
	shard_mail req = {.kind = MAIL_PROMOTE, .epoch = epoch, .err = err, .errlen = sizeof(err)};
	return mail_call(s, &req);
}

void shard_fence(shard *s)
{
	assert(s);
	if (atomic_exchange_explicit(&s->fence_asked, 1, memory_order_acq_rel))
		return;
	bo_log(BO_LOG_WARN, "shard=%u msg=\"fenced: another server holds a newer term\"", s->cfg.id);
	event_notify(&s->floor_ev);
	ring_kick(s->in);
}

void shard_set_sync_floor(shard *s, uint64_t seq)
{
	assert(s);
	/* Release: the writer acquires it in release_point / floor_moved. */
	atomic_store_explicit(&s->sync_floor, seq, memory_order_release);
	event_notify(&s->floor_ev);
	ring_kick(s->in);
}

uint64_t shard_released_seq(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->released, memory_order_acquire);
}

static int released_passed(shard *s, const void *ctx)
{
	return shard_released_seq(s) > *(const uint64_t *)ctx || shard_failed(s) != NULL;
}

int shard_released_wait(const shard *cs, uint64_t seq, int64_t timeout_ns, uint64_t *released)
{
	assert(cs);
	shard *s = (shard *)cs;
	if (timeout_ns > 0 && !released_passed(s, &seq)) {
		int64_t now = bo_clock_ns();
		int64_t deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
		event_wait(s, &s->durable_ev, released_passed, &seq, deadline);
	}
	uint64_t r = shard_released_seq(s);
	if (released)
		*released = r;
	if (r > seq)
		return 1;
	return shard_failed(s) ? -ESHUTDOWN : 0;
}

uint64_t shard_epoch(const shard *s) { return atomic_load_explicit(&((shard *)s)->epoch, memory_order_acquire); }

int shard_is_standby(const shard *s)
{
	return atomic_load_explicit(&((shard *)s)->standby, memory_order_acquire);
}

void shard_last_record(const shard *cs, uint64_t *seq, uint64_t *checksum)
{
	assert(cs && seq && checksum);
	shard *s = (shard *)cs;
	pthread_mutex_lock(&s->last_mu);
	*seq = s->last_pub_seq;
	*checksum = s->last_pub_sum;
	pthread_mutex_unlock(&s->last_mu);
}

/* Statistics: the time from the end of the previous batch to the end of
 * this one, while input kept coming (a gap after the writer found its ring
 * empty is not counted: that is waiting, not stalling). It holds whatever
 * delayed the writer: its own work, the disk when its pending FIFO or the
 * output ring was full, and other threads taking its CPU. Kept apart while
 * a snapshot is being built, to show what building one costs the writer. */
static void note_batch_gap(shard *s)
{
	int64_t now = bo_clock_ns();
	if (s->gap_from_ns != 0) {
		uint64_t gap = (uint64_t)(now - s->gap_from_ns);
		atomic_uint_least64_t *max =
			atomic_load_explicit(&s->snap_state, memory_order_relaxed) == SNAP_RUNNING ? &s->gap_ns_max_snap
												 : &s->gap_ns_max;
		if (gap > atomic_load_explicit(max, memory_order_relaxed))
			atomic_store_explicit(max, gap, memory_order_relaxed);
	}
	s->gap_from_ns = now;
}

static void *shard_main(void *arg)
{
	shard *s = arg;
	const int64_t tick_ns = (int64_t)s->cfg.tick_ms * 1000000;
	for (;;) {
		/* Read before looking at the mailbox and the floor: a kick after
		 * this wakes the ring_wait_kicked below. */
		const uint32_t kicks = ring_kicks(s->in);
		if (reap(s) < 0)
			break;
		if (!s->fenced && atomic_load_explicit(&s->fence_asked, memory_order_acquire))
			fence_outputs(s);
		serve_mail(s);
		if (shard_failed(s))
			break;
		uint64_t first;
		uint32_t n = ring_poll(s->in, BO_BATCH_MAX, &first);
		if (n > 0) {
			if (apply_batch(s, first, n) < 0)
				break;
			note_batch_gap(s);
			maybe_snapshot(s);
			continue;
		}
		s->gap_from_ns = 0; /* no input: the next gap is no stall */
		if (s->pending_len > 0 && s->pending[s->pending_head].seq_last > shard_durable_seq(s)) {
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
		/* A standby's engine moves only by replicated records (its own
		 * ticks would journal records the primary does not have); a
		 * fenced shard journals nothing more of its own either. */
		const int quiet = s->fenced || atomic_load_explicit(&s->standby, memory_order_relaxed);
		if (!ring_wait_kicked(s->in, tick_ns, kicks) && ring_kicks(s->in) == kicks && !quiet && tick(s) < 0)
			break;
		/* Idle too: a snapshot that fell due while the builder was busy
		 * with the previous one starts even when no command comes. */
		maybe_snapshot(s);
	}
	if (!shard_failed(s)) {
		wait_pending(s, 1);
		/* Outputs the sync floor still holds (its standby did not confirm
		 * them): a stopping primary cannot acknowledge them; answered
		 * BO_NOT_PRIMARY like a fence (shard_stop's contract). */
		if (s->pending_len > 0 || s->out_published < s->out_next)
			fence_outputs(s);
	} else if (s->journal) {
		/* The failure may have been found while batches before it were
		 * already durable (a mid-batch flush waits for the write in
		 * flight): answer those. The batch the failure struck is not in
		 * `pending`: it was answered busy (apply_batch). */
		uint64_t d;
		journal_poll(s->journal, &d);
		publish_durable(s, d);
	}
	atomic_store_explicit(&s->running, 0, memory_order_relaxed);
	mail_close(s, 1);
	if (shard_failed(s)) {
		fail_release_outputs(s);
		fail_drain(s, tick_ns);
	}
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
	atomic_init(&s->running, 0);
	atomic_init(&s->batches, 0);
	atomic_init(&s->durable, 0);
	atomic_init(&s->retain, cfg->retain_seq);
	atomic_init(&s->failed, 0);
	atomic_init(&s->snapshots, 0);
	atomic_init(&s->snap_stall_ns_max, 0);
	atomic_init(&s->snap_ns_last, 0);
	atomic_init(&s->snap_cpu_ns_last, 0);
	atomic_init(&s->gap_ns_max_snap, 0);
	atomic_init(&s->gap_ns_max, 0);
	atomic_init(&s->snap_asked, 0);
	atomic_init(&s->durable_ev.count, 0);
	atomic_init(&s->durable_ev.waiters, 0);
	atomic_init(&s->job_ev.count, 0);
	atomic_init(&s->job_ev.waiters, 0);
	atomic_init(&s->snap_state, SNAP_IDLE);
	atomic_init(&s->builder_quit, 0);
	atomic_init(&s->standby, cfg->standby ? 1 : 0);
	atomic_init(&s->epoch, 0);
	atomic_init(&s->sync_floor, UINT64_MAX);
	atomic_init(&s->released, 0);
	atomic_init(&s->fence_asked, 0);
	atomic_init(&s->floor_ev.count, 0);
	atomic_init(&s->floor_ev.waiters, 0);
	atomic_init(&s->mb_posted, 0);
	pthread_mutex_init(&s->last_mu, NULL);
	pthread_mutex_init(&s->mb_mu, NULL);
	pthread_cond_init(&s->mb_cv, NULL);
	s->mb.closed = 1; /* until shard_start */
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

/* A snapshot builder stopped mid-write (a crash) leaves its .snap.tmp behind: the loader
 * ignores such files, but they would pile up. */
static void remove_stale_snapshots(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char path[SHARD_PATH_MAX];
	while ((de = readdir(d)) != NULL) {
		/* Exactly a snapshot name followed by the temporary suffix. */
		char stem[SNAPFILE_NAME_LEN + 1];
		uint64_t seq;
		if (strlen(de->d_name) != SNAPFILE_NAME_LEN + strlen(SNAPFILE_TMP_SUFFIX) ||
		    strcmp(de->d_name + SNAPFILE_NAME_LEN, SNAPFILE_TMP_SUFFIX) != 0)
			continue;
		memcpy(stem, de->d_name, SNAPFILE_NAME_LEN);
		stem[SNAPFILE_NAME_LEN] = '\0';
		if (snapfile_name_parse(stem, &seq) &&
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path))
			bo_fs_unlink(path);
	}
	closedir(d);
}

static int configs_equal(const engine_config *a, const engine_config *b)
{
	return a->seats_max == b->seats_max && a->claims_max == b->claims_max &&
	       a->idem_capacity == b->idem_capacity && a->events_max == b->events_max;
}

/* Recovery, step 1: the shard directory's name, the data directory, and
 * the engine from the newest valid snapshot (or a new one: info->seq 0).
 * The snapshot comes first: the journal may have been pruned up to it, and
 * journal_open() must know where the records it needs begin (after_seq) to
 * tell a pruned journal from a missing segment. */
static int recover_snapshot(shard *s, snapshot_info *info, char *err, size_t errlen)
{
	const shard_config *cfg = &s->cfg;
	if (snprintf(s->dir, sizeof(s->dir), "%s/shard-%04u", cfg->data_dir, cfg->id) >= (int)sizeof(s->dir)) {
		snprintf(err, errlen, "data directory path too long: %s", cfg->data_dir);
		return -ENAMETOOLONG;
	}
	if (bo_fs_mkdir(cfg->data_dir, 0755) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data_dir, strerror(e));
		return -e;
	}
	char warn[SNAPSHOT_ERR_LEN] = "";
	int rc = snapfile_load_latest(s->dir, &s->engine, info, warn, sizeof(warn));
	if (rc < 0) {
		snprintf(err, errlen, "snapshot: %s", warn);
		return rc;
	}
	if (warn[0])
		bo_log(BO_LOG_WARN, "shard=%u msg=\"%s\"", cfg->id, warn);
	if (rc == 1 && !configs_equal(&info->config, &cfg->engine)) {
		snprintf(err, errlen,
			 "snapshot of seq %" PRIu64 " in %s was taken with another engine capacity "
			 "(seats %u claims %u idem %u events %u): start with that configuration, or move the "
			 "snapshots away to rebuild from the journal",
			 info->seq, s->dir, info->config.seats_max, info->config.claims_max,
			 info->config.idem_capacity, info->config.events_max);
		return -EINVAL;
	}
	if (rc == 0) {
		rc = engine_new(&cfg->engine, &s->engine);
		if (rc < 0) {
			snprintf(err, errlen, "engine: %s", strerror(-rc));
			return rc;
		}
		info->seq = 0;
		info->seq_ts_ms = 0;
	}
	return 0;
}

/* Applies a staged record during recovery. Returns 0, or -EPROTO
 * (mismatch) with err set. */
static int recover_apply(shard *s, replay_staged *st, shard_recovery *rec, char *err, size_t errlen)
{
	char rerr[REPLAY_ERR_LEN];
	if (st->en.kind == ENTRY_EPOCH)
		epoch_raise(s, st->en.epoch); /* the term journaled last is the shard's */
	if (replay_apply_staged(s->engine, st, s->cfg.verify_replay, NULL, rerr, sizeof(rerr)) != REPLAY_OK) {
		snprintf(err, errlen, "%s", rerr);
		return -EPROTO;
	}
	s->seq_last = st->rec.seq;
	s->seq_last_ms = st->rec.timestamp_ms;
	rec->replayed++;
	return 0;
}

/* Recovery, step 3: re-executes (and verifies) the records after the
 * snapshot's seq, which s->seq_last holds on entry. */
static int recover_replay(shard *s, const journal_options *jopt, shard_recovery *rec, char *err, size_t errlen)
{
	const shard_config *cfg = &s->cfg;
	const uint64_t after = s->seq_last;
	journal_reader *r;
	int rc = journal_reader_open_from(cfg->data_dir, cfg->id, jopt, after, &r, err, errlen);
	if (rc < 0)
		return rc;
	journal_record jr;
	/* One record behind the reader: record n+1 is decoded and its cache
	 * lines requested (replay_stage) before record n is applied. */
	replay_staged *st = calloc(2, sizeof(*st));
	if (!st) {
		journal_reader_close(r);
		snprintf(err, errlen, "replay: out of memory");
		return -ENOMEM;
	}
	replay_staged *cur = NULL, *next = &st[0];
	while ((rc = journal_reader_next(r, &jr)) == 1) {
		if (jr.seq <= after)
			continue;
		uint64_t expect = (cur ? cur->rec.seq : s->seq_last) + 1;
		int bad_seq = jr.seq != expect;
		int sr = bad_seq ? REPLAY_OK : replay_stage(s->engine, &jr, next);
		if (cur) {
			int ar = recover_apply(s, cur, rec, err, errlen);
			cur = NULL;
			if (ar < 0) {
				rc = ar;
				break;
			}
		}
		if (bad_seq) {
			snprintf(err, errlen, "journal skips from seq %" PRIu64 " to %" PRIu64 " (%s)", s->seq_last,
				 jr.seq, jr.file);
			rc = -EBADMSG;
			break;
		}
		if (sr != REPLAY_OK) {
			snprintf(err, errlen, "%s", next->err);
			rc = -EBADMSG;
			break;
		}
		cur = next;
		next = cur == &st[0] ? &st[1] : &st[0];
	}
	if (cur && rc >= 0) {
		int ar = recover_apply(s, cur, rec, err, errlen);
		if (ar < 0)
			rc = ar;
	}
	for (int i = 0; i < 2; i++)
		replay_staged_drop(&st[i]);
	free(st);
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
	return 0;
}

/* Rebuilds the engine from the newest snapshot and the journal after it. */
static int recover(shard *s, shard_recovery *rec, char *err, size_t errlen)
{
	int64_t t0 = bo_clock_ns();
	const shard_config *cfg = &s->cfg;
	snapshot_info info = {0};
	int rc = recover_snapshot(s, &info, err, errlen);
	if (rc < 0)
		return rc;
	/* Step 2, the journal: creates the shard directory, cuts a torn tail,
	 * and refuses corruption (or a journal shorter than the snapshot). */
	journal_options jopt = cfg->journal;
	jopt.after_seq = info.seq;
	jopt.sync_hist = &s->sync_hist;
	rc = journal_open(cfg->data_dir, cfg->id, &jopt, &s->journal, &rec->journal, err, errlen);
	if (rc < 0)
		return rc;
	remove_stale_snapshots(s->dir);
	rec->snapshot_seq = info.seq;
	s->seq_last = info.seq;
	s->seq_last_ms = info.seq_ts_ms;
	rc = recover_replay(s, &jopt, rec, err, errlen);
	if (rc < 0)
		return rc;
	rec->last_seq = s->seq_last;
	/* The next snapshot is due snapshot_every records after the one just
	 * loaded, not after this start: a process that restarts often must
	 * still snapshot, or its recoveries grow without bound. */
	s->snap_seq = info.seq;
	/* No thread runs yet: shard_start's pthread_create publishes it. What
	 * the journal holds at open counts as released: its outputs were
	 * published (or lost with the process) before. */
	atomic_store_explicit(&s->durable, s->seq_last, memory_order_relaxed);
	atomic_store_explicit(&s->released, s->seq_last, memory_order_relaxed);
	note_last_record(s);
	rec->seconds = (double)(bo_clock_ns() - t0) / 1e9;
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

/* Stops and joins the builder. Only once the writer is joined: then no job
 * comes after the stop, and the durable sequence the builder sees is final. */
static void builder_stop(shard *s)
{
	if (!s->builder_started)
		return;
	atomic_store_explicit(&s->builder_quit, 1, memory_order_release);
	event_notify(&s->job_ev);
	event_notify(&s->durable_ev);
	pthread_join(s->builder_thread, NULL);
	s->builder_started = 0;
}

int shard_start(shard *s)
{
	assert(s && !s->started);
	atomic_store_explicit(&s->stopping, 0, memory_order_relaxed); /* a stopped shard may restart */
	if (s->journal) {
		atomic_store_explicit(&s->builder_quit, 0, memory_order_relaxed);
		int rc = pthread_create(&s->builder_thread, NULL, builder_main, s);
		if (rc != 0)
			return -rc;
		s->builder_started = 1; /* before the writer starts: it reads this */
	}
	atomic_store_explicit(&s->running, 1, memory_order_relaxed);
	mail_close(s, 0);
	int rc = pthread_create(&s->thread, NULL, shard_main, s);
	if (rc != 0) {
		mail_close(s, 1);
		atomic_store_explicit(&s->running, 0, memory_order_relaxed);
		builder_stop(s);
		return -rc;
	}
	s->started = 1;
	return 0;
}

void shard_stop(shard *s)
{
	assert(s);
	if (!s->started)
		return;
	atomic_store_explicit(&s->stopping, 1, memory_order_release);
	event_notify(&s->floor_ev); /* a writer held by the sync floor: see wait_oldest */
	ring_kick(s->in);
	/* The writer notices within one tick (ring_wait's timeout). */
	pthread_join(s->thread, NULL);
	s->started = 0;
	builder_stop(s);
}

void shard_free(shard *s)
{
	if (!s)
		return;
	shard_stop(s);
	if (s->journal) {
		uint64_t d;
		journal_close(s->journal, &d);
	}
	engine_free(s->engine);
	ring_free(s->in);
	ring_free(s->out);
	pthread_mutex_destroy(&s->last_mu);
	pthread_mutex_destroy(&s->mb_mu);
	pthread_cond_destroy(&s->mb_cv);
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
	atomic_fetch_add_explicit(&s->submitted, n, memory_order_relaxed);
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
	out->submitted = atomic_load_explicit(&s->submitted, memory_order_relaxed);
	out->durable_seq = atomic_load_explicit(&s->durable, memory_order_relaxed);
	out->snapshots = atomic_load_explicit(&s->snapshots, memory_order_relaxed);
	out->snapshot_stall_ns_max = atomic_load_explicit(&s->snap_stall_ns_max, memory_order_relaxed);
	out->snapshot_ns_last = atomic_load_explicit(&s->snap_ns_last, memory_order_relaxed);
	out->snapshot_cpu_ns_last = atomic_load_explicit(&s->snap_cpu_ns_last, memory_order_relaxed);
	out->batch_gap_ns_max = atomic_load_explicit(&s->gap_ns_max, memory_order_relaxed);
	out->batch_gap_ns_max_snapshot = atomic_load_explicit(&s->gap_ns_max_snap, memory_order_relaxed);
	out->in_depth = ring_used(s->in);
	out->out_depth = ring_used(s->out);
}

int shard_running(const shard *s) { return atomic_load_explicit(&((shard *)s)->running, memory_order_relaxed); }

const bo_hist *shard_batch_hist(const shard *s) { return &s->batch_hist; }

const bo_hist *shard_sync_hist(const shard *s) { return &s->sync_hist; }

/* ---- Rejoining: cutting a closed shard's tail ----------------------------- */

typedef struct cut_scan {
	uint64_t seq;	     /* the cut: keep through it */
	uint64_t keep_snap;  /* newest snapshot <= seq (0: none) */
	uint64_t later[64];  /* snapshots after seq (the first 64) */
	uint32_t nlater, more;
} cut_scan;

/* Lists the snapshots of dir around the cut. Returns 0 or -errno. */
static int cut_scan_snaps(const char *dir, cut_scan *c)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;
		if (!snapfile_name_parse(de->d_name, &seq))
			continue;
		if (seq <= c->seq) {
			if (seq > c->keep_snap)
				c->keep_snap = seq;
		} else if (c->nlater < sizeof(c->later) / sizeof(c->later[0])) {
			c->later[c->nlater++] = seq;
		} else {
			c->more = 1;
		}
	}
	closedir(d);
	return 0;
}

/* Can recovery rebuild the state through c->seq after the cut? It starts
 * from keep_snap (or nothing) and needs the journal's records from there
 * through seq: record seq readable after keep_snap. Returns 0 or -ERANGE
 * (err says why), or the reader's -errno. */
static int cut_check_journal(const char *root, uint32_t id, const cut_scan *c, char *err, size_t errlen)
{
	journal_reader *r;
	journal_options opt;
	journal_options_default(&opt);
	int rc = journal_reader_open_from(root, id, &opt, c->keep_snap, &r, err, errlen);
	if (rc < 0) {
		if (rc == -EBADMSG)
			rc = -ERANGE; /* a missing head: the records after the snapshot are gone */
		return rc;
	}
	uint64_t last = c->keep_snap;
	journal_record x;
	while (last < c->seq && (rc = journal_reader_next(r, &x)) == 1)
		last = x.seq;
	if (rc < 0)
		snprintf(err, errlen, "%s", journal_reader_error(r));
	journal_reader_close(r);
	if (rc >= 0 && last < c->seq) {
		snprintf(err, errlen, "shard %u: cannot cut after seq %" PRIu64 ": the journal ends at %" PRIu64, id,
			 c->seq, last);
		return -ERANGE;
	}
	return rc < 0 ? rc : 0;
}

int shard_cut_after(const char *data_dir, uint32_t shard_id, uint64_t seq, char *err, size_t errlen)
{
	assert(data_dir && err && errlen > 0);
	err[0] = '\0';
	char dir[SHARD_DIR_MAX];
	if (snprintf(dir, sizeof(dir), "%s/shard-%04u", data_dir, shard_id) >= (int)sizeof(dir)) {
		snprintf(err, errlen, "data directory path too long: %s", data_dir);
		return -ENAMETOOLONG;
	}
	cut_scan c = {.seq = seq};
	int rc = cut_scan_snaps(dir, &c);
	if (rc < 0) {
		snprintf(err, errlen, "shard %u: reading %s: %s", shard_id, dir, strerror(-rc));
		return rc;
	}
	/* Check first: nothing changes unless the state through seq can be
	 * recovered afterwards (no snapshot <= seq and a pruned journal, or a
	 * journal that ends before seq, cannot). */
	rc = cut_check_journal(data_dir, shard_id, &c, err, errlen);
	if (rc < 0)
		return rc;
	/* Snapshots after seq go first: a crash before the journal cut leaves
	 * an older snapshot and a longer journal (a valid, longer state; the
	 * cut is run again), never a snapshot the journal no longer reaches. */
	for (;;) {
		for (uint32_t i = 0; i < c.nlater; i++) {
			char path[SHARD_PATH_MAX];
			if (snapfile_path(path, sizeof(path), dir, c.later[i]) < 0 ||
			    (bo_fs_unlink(path) != 0 && errno != ENOENT)) {
				int e = errno ? errno : ENAMETOOLONG;
				snprintf(err, errlen, "shard %u: removing snapshot %" PRIu64 ": %s", shard_id,
					 c.later[i], strerror(e));
				return -e;
			}
		}
		if (!c.more)
			break;
		c.nlater = 0;
		c.more = 0;
		if ((rc = cut_scan_snaps(dir, &c)) < 0)
			return rc;
	}
	rc = bo_fs_fsync_dir(dir);
	if (rc != 0) {
		rc = rc < 0 ? rc : -errno;
		snprintf(err, errlen, "shard %u: fsync %s: %s", shard_id, dir, strerror(-rc));
		return rc;
	}
	rc = journal_cut_after(data_dir, shard_id, seq, err, errlen);
	if (rc == 0)
		bo_log(BO_LOG_INFO, "shard=%u msg=\"%s\"", shard_id, err);
	return rc;
}

uint32_t shard_for_event(uint64_t event_id, uint32_t shard_count)
{
	assert(shard_count > 0);
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(event_id >> (8 * i));
	return (uint32_t)(XXH3_64bits(b, sizeof(b)) % shard_count);
}
