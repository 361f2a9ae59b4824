/*
 * shard.h — one writer thread that owns one engine.
 *
 * Producers (gateway threads, tests, benchmarks) submit commands through the
 * shard's input ring; the shard thread drains everything published as one
 * batch, stamps the batch with one timestamp, advances the engine's clock to
 * it (expiring holds), applies the commands in ring order and writes, in that
 * order, one shard_out record per expiry and per command to its output ring.
 * One consumer takes the output ring (the gateway's replies, or a test or
 * benchmark); whatever else needs the changes (the database committer, a
 * snapshot builder, a standby) follows the journal instead: follower.h.
 *
 * When no command arrives for tick_ms, the shard feeds itself a tick (an
 * advance to the current time), so an expired hold is released within
 * tick_ms plus scheduling delay of its expiry (BO_EXPIRY_LAG_MS_MAX).
 *
 * With a data directory the shard is durable: every state change (each
 * journaled command, see shard/entry.h, and each advance that expired
 * something) is appended to the shard's journal, a batch ends with one
 * group commit, and the batch's output records become visible in the
 * output ring only once that batch and every earlier one are on disk
 * ("durable before visible": the output slots are claimed and filled at
 * once, but published on durability). The writer goes on applying the next
 * batch while the previous one syncs. On open, the shard recovers: the
 * newest valid snapshot, then the journal after it, re-executed and
 * verified record by record. Every snapshot_every records (or when asked:
 * shard_snapshot_request) the shard snapshots its state after its last
 * journaled record S without stopping the writer: the writer only hands S
 * to the shard's snapshot builder thread (lowest CPU priority), which
 * brings a second engine to S from the journal (the newest snapshot file,
 * or the engine it kept from the last snapshot with snapshot_keep_engine,
 * plus the durable records after it, re-executed and verified: a follower,
 * replica.h), writes the image from that engine, puts the file in place
 * (rename, directory fsync) once the journal is durable through S (always
 * true by then: the builder reads only durable records; checked anyway),
 * and prunes the journal segments it covers (never past shard_retain's
 * floor). The writer makes no file-system call and copies nothing for a
 * snapshot; what the builder costs in CPU and memory is in perf/README.md.
 *
 * Other threads may follow the durable sequence: shard_durable_seq() reads
 * it, shard_durable_wait() sleeps until it passes a given sequence.
 *
 * A journal failure (EIO, ENOSPC, short write) stops the shard: nothing more
 * is applied or acknowledged, shard_failed() says why, and the process
 * must restart (recovery rebuilds the durable state). No command is left
 * without an answer: every command submitted and not yet answered when the
 * journal failed, and every command submitted afterwards until
 * shard_stop(), comes out at once as a RESULT with status BO_BUSY and
 * seq 0 (not acknowledged: after a restart a resend with the same request
 * id gets the recorded result if the change did reach the disk). Expiries
 * of batches that never became durable come out as SHARD_OUT_VOID.
 */
#ifndef BO_SHARD_H
#define BO_SHARD_H

#include <stdint.h>

#include "base/hist.h"
#include "engine/engine.h"
#include "journal/journal.h"
#include "ring.h"

/* What a producer writes into an input slot. `tag` is the producer's own
 * handle (connection, request slot, ...), carried to the output untouched.
 * A CREATE_EVENT's map is borrowed until its result comes out. */
typedef struct shard_in {
	uint64_t tag;
	bo_cmd cmd;
} shard_in;

/* SHARD_OUT_VOID: a slot of a batch lost to a journal failure (an expiry
 * that never became durable, or a result answered again as busy by the
 * failed shard): consumers skip it. */
enum { SHARD_OUT_RESULT = 1, SHARD_OUT_EXPIRY = 2, SHARD_OUT_VOID = 3 };

typedef struct shard_out {
	uint8_t kind;	 /* SHARD_OUT_RESULT, SHARD_OUT_EXPIRY or SHARD_OUT_VOID */
	uint8_t _pad[7];
	uint64_t tag;	 /* RESULT: the command's tag */
	uint64_t seq;	 /* journal sequence of the command's (or tick's) record;
			  * 0 when nothing was journaled (queries, no journal) */
	uint64_t batch;	 /* batch number (1, 2, ...) the record belongs to */
	int64_t now_ms;	 /* the batch's timestamp */
	union {
		bo_result result;
		bo_expiry expiry;
	} u;
} shard_out;

/* Time source, in milliseconds. Tests inject a fake clock. */
typedef int64_t (*shard_clock_fn)(void *ctx);

typedef struct shard_config {
	uint32_t id;
	engine_config engine;
	uint32_t in_slots;  /* input ring slots, power of two >= BO_BATCH_MAX */
	uint32_t out_slots; /* output ring slots, power of two >= 2 * BO_BATCH_MAX */
	uint32_t tick_ms;   /* idle tick interval, 1..BO_TICK_MS */
	shard_clock_fn clock; /* NULL: CLOCK_REALTIME */
	void *clock_ctx;
	/* Durability. data_dir NULL: no journal, outputs are published at once
	 * (tests and engine benchmarks only). */
	const char *data_dir;	  /* journal and snapshots under data_dir/shard-NNNN */
	journal_options journal;  /* sync mode, segment size, force_truncate, fault hook */
	uint64_t snapshot_every;  /* records between snapshots; 0: only when asked */
	/* 1: the snapshot builder keeps its engine between snapshots and only
	 * catches up the records since the last one (a second engine's memory
	 * all the time); 0 (default): it loads the newest snapshot when the
	 * next one is due and frees the engine after (the memory only while it
	 * builds, plus one snapshot load of CPU per snapshot). */
	int snapshot_keep_engine;
	int prune;		  /* remove segments a snapshot covers (default 1) */
	/* Retention for a follower that must see every record (the database
	 * committer): pruning never removes a record after this sequence.
	 * UINT64_MAX (default): no such follower. 0: keep everything until
	 * shard_retain() moves it. */
	uint64_t retain_seq;
	int verify_replay;	  /* recovery compares re-executed results (default 1) */
	int standby;		  /* open as a standby (see "Replication roles"); default 0 */
} shard_config;

/* What opening a durable shard found. */
typedef struct shard_recovery {
	uint64_t snapshot_seq;	  /* 0: no snapshot */
	uint64_t last_seq;	  /* last journal record */
	uint64_t replayed;	  /* records re-executed after the snapshot */
	double seconds;		  /* time spent recovering */
	journal_recovery journal; /* what the journal's own recovery cut */
} shard_recovery;

typedef struct shard shard;

/* Fills `cfg` with defaults (shard 0, engine defaults, BO_RING_SLOTS_DEFAULT,
 * BO_TICK_MS, real clock). */
void shard_config_default(shard_config *cfg);

/* Allocates the shard, its engine and both rings. Returns 0 and sets *out,
 * -EINVAL for a bad config, or -ENOMEM. Does not start the thread. For a
 * shard with data_dir, use shard_open(). */
int shard_new(const shard_config *cfg, shard **out /* OUT */);

/* shard_new() plus, with data_dir, recovery: loads the newest valid
 * snapshot, opens the journal (cutting a torn tail), re-executes the
 * records after the snapshot. Returns 0, or a negative errno with the
 * reason in err: -EBADMSG corruption (file, offset, sequence named; the
 * operator decides: journal.force_truncate or boxoffice-replay repair),
 * -EPROTO re-execution gave another result than recorded, -EIO/-ENOSPC/...
 * from the disk, -EINVAL a bad config. `rec` may be NULL. */
int shard_open(const shard_config *cfg, shard **out /* OUT */, shard_recovery *rec /* OUT */, char *err,
	       size_t errlen);

/* NULL while healthy; after a journal failure, the message (the shard has
 * stopped applying and acknowledging). Thread-safe. */
const char *shard_failed(const shard *s);

/* Highest journal sequence known durable: every record up to it is on
 * disk (fdatasync'ed), so it may be read from the journal's files and acted
 * on. Never decreases. Thread-safe; an acquire load, so what the writer did
 * before publishing it (the journal's writes completed) happens before what
 * the caller does next. 0 without data_dir. */
uint64_t shard_durable_seq(const shard *s);

/* Waits until the durable sequence exceeds `seq` or timeout_ns passes
 * (<= 0: only checks). Sleeps on a futex; the writer wakes sleepers when it
 * publishes a new durable sequence (a wake system call per advance only
 * while someone sleeps here) and when the shard fails.
 * Returns 1 with *durable (may be NULL) > seq; 0 on timeout (*durable the
 * value seen, <= seq); -ESHUTDOWN when the shard has failed and its durable
 * sequence is <= seq: nothing more will become durable (shard_failed()
 * says why). Thread-safe; `s` must outlive the call. */
int shard_durable_wait(const shard *s, uint64_t seq, int64_t timeout_ns, uint64_t *durable /* OUT */);

/* The configuration the shard was opened with (its data_dir string is the
 * caller's, as given). Valid while the shard lives. */
const shard_config *shard_get_config(const shard *s);

/* Moves the retention floor (shard_config.retain_seq): later prunes keep
 * every record after `seq`. A committer calls it with the sequence it has
 * applied, after each commit. Thread-safe; the floor only moves forward. */
void shard_retain(shard *s, uint64_t seq);

/* The retention floor now (UINT64_MAX: none). Thread-safe. */
uint64_t shard_retained(const shard *s);

/* Starts the writer thread. 0, or -errno from pthread_create. */
int shard_start(shard *s);

/* Stops the writer after it has applied everything already published and
 * made it durable (its outputs are published), and joins it; then lets the
 * snapshot builder finish a snapshot in progress (catch up to its sequence,
 * write it, put the file in place, prune) and joins it too. The
 * output ring must keep being drained until this returns (the writer waits
 * for room there; it never drops a record). Producers must have stopped
 * submitting. Idempotent; a stopped shard may be started again.
 * With the sync floor holding outputs back (a standby has not confirmed
 * them), the stop does not wait for it: those results are answered
 * BO_NOT_PRIMARY (seq 0) and their expiries become SHARD_OUT_VOID, as
 * shard_fence does, and the shard stays fenced if started again (a primary
 * that could not confirm cannot acknowledge; the client's retry with the
 * same request id finds the result wherever the record survived). A
 * standby's shard_replicate waiting meanwhile gets -ESHUTDOWN. */
void shard_stop(shard *s);

/* Stops the shard if needed and frees everything. */
void shard_free(shard *s);

/* Asks for a snapshot of the state after the last journaled record, as if
 * snapshot_every had come due: the writer hands it to the builder at its
 * next batch boundary (within tick_ms when idle), or once the snapshot
 * being built is done. Nothing happens when no record was journaled since
 * the last snapshot began. Returns at once; shard_stats.snapshots counts
 * the snapshots made official. Thread-safe; a shard without data_dir
 * ignores it. */
void shard_snapshot_request(shard *s);

/* Submits n commands (1..BO_BATCH_MAX) as consecutive ring slots: all or
 * nothing. Returns 0, or -EBUSY at once when the ring lacks room (the caller
 * answers `busy`). Thread-safe. `tags` may be NULL (tags 0). */
int shard_submit(shard *s, const bo_cmd *cmds, const uint64_t *tags, uint32_t n);

/* The output ring: exactly one consumer polls/releases shard_out slots. */
ring *shard_output(shard *s);

/* The `max` a consumer passes to ring_poll() on the output ring. A poll
 * takes what is published, up to max, so any value is correct; a batch's
 * worth takes a whole batch's results at once (the writer publishes whole
 * batches) while the slots go back to the writer after at most one batch
 * of the consumer's work. */
#define SHARD_OUT_POLL_MAX BO_BATCH_MAX

/* Records of one journal sequence in the output ring: one per command, and
 * at most SHARD_OUT_POLL_MAX expiries of one TICK (a mass expiry is cut
 * into TICK records of at most that many). */
#define SHARD_OUT_SEQ_RUN_MAX SHARD_OUT_POLL_MAX

/* The engine, for inspection only while the shard is stopped. */
engine *shard_engine(shard *s);

/* Batches applied so far (a gauge). */
uint64_t shard_batches(const shard *s);

/* Gauges of the writer, readable from any thread (each value is atomic on
 * its own; the set is not a consistent cut). */
typedef struct shard_stats {
	uint64_t batches;		/* batches applied */
	uint64_t submitted;		/* commands accepted into the input ring */
	uint64_t durable_seq;		/* highest durable journal sequence */
	uint64_t snapshots;		/* snapshots made official */
	uint64_t snapshot_stall_ns_max; /* longest time the writer spent starting one
					 * (handing it to the builder) */
	uint64_t snapshot_ns_last;	/* start to official, the last one */
	uint64_t snapshot_cpu_ns_last;	/* the builder's CPU time for the last one */
	/* The writer's longest gap from the end of one batch to the end of the
	 * next while input kept coming (its own work, disk waits when it had
	 * to, and whatever took its CPU): while a snapshot was being built,
	 * and while none was. */
	uint64_t batch_gap_ns_max_snapshot;
	uint64_t batch_gap_ns_max;
	uint32_t in_depth;		/* input ring: commands submitted, not yet applied */
	uint32_t out_depth;		/* output ring: records claimed, not yet consumed
					 * (waiting for the disk or for the consumer) */
} shard_stats;
void shard_stats_get(const shard *s, shard_stats *out /* OUT */);

/* 1 while the writer thread runs (from shard_start until it stops or its
 * journal fails), else 0. Thread-safe. */
int shard_running(const shard *s);

/* Histograms of the writer (base/hist.h), live: read with bo_hist_read
 * from any thread while the shard exists. batch: commands per batch
 * applied (expiry-only ticks not counted). sync: microseconds from
 * submitting each journal write unit to the writer seeing it durable
 * (write + fdatasync, the directory fsync of a new segment; group commit
 * makes one unit of many batches); empty without data_dir. The shard sets
 * its journal's journal_options.sync_hist itself (a caller's is ignored). */
const bo_hist *shard_batch_hist(const shard *s);
const bo_hist *shard_sync_hist(const shard *s);

/* ---- Replication roles (issue 13; DESIGN.md "Beyond one machine") --------
 *
 * A durable shard is a PRIMARY (the default: it takes commands from its
 * input ring) or a STANDBY (shard_config.standby = 1): it takes no command
 * (each one submitted is answered at once with status BO_NOT_PRIMARY, seq
 * 0) and instead appends, through shard_replicate(), the records its
 * primary made durable, re-executing each one into its engine exactly as
 * recovery does (verified: a record whose recorded result differs is
 * refused), with the same group commit. Its journal then holds the
 * primary's records: same sequence, timestamps and payloads, so the same
 * CONTENT checksums (journal_record.checksum; the on-disk checksum and
 * chain also cover how each side grouped its records into write units,
 * which differs, so replication compares content checksums).
 *
 * Epochs: the control plane numbers each primary term (1, 2, ...). A
 * shard's epoch is the highest epoch it has journaled: shard_promote()
 * journals an EPOCH record (shard/entry.h ENTRY_EPOCH; no effect on the
 * engine; replay, recovery, followers, boxoffice-replay and the committer
 * accept and skip it) as the first record of its term, and a standby that
 * replicates an EPOCH record takes its epoch. shard_epoch() reads it.
 *
 * Synchronous replication ("sync floor"): a primary's replies and expiries
 * are published only up to min(its own durable sequence, the sync floor),
 * where the floor is set by the replication layer to the lowest durable
 * sequence of the in-sync standbys (UINT64_MAX, the default: no standby,
 * its own durability is enough). shard_released_seq() is that published
 * point; the database committer follows it (follower_open_released), the
 * replication sender and the snapshot builder follow the local durable
 * sequence. */

/* Sequence through which outputs have been published (durable here AND at
 * or below the sync floor). Never decreases. Thread-safe. Equals
 * shard_durable_seq() while the floor is UINT64_MAX. */
uint64_t shard_released_seq(const shard *s);

/* shard_durable_wait for the released sequence: waits until it exceeds
 * `seq` (same outcomes, -ESHUTDOWN when the shard failed). The database
 * committer's wait (follower_open_released). Thread-safe. */
int shard_released_wait(const shard *s, uint64_t seq, int64_t timeout_ns, uint64_t *released /* OUT */);

/* Sets the sync floor (see above): outputs of records after `seq` wait.
 * May move either way (a standby dropped: UINT64_MAX; a standby added:
 * its acknowledged sequence); what was published stays published. Wakes
 * the writer when outputs become publishable. Thread-safe, any thread. */
void shard_set_sync_floor(shard *s, uint64_t seq);

/* The shard's epoch: the highest epoch journaled (recovered, promoted or
 * replicated); 0 when none was. Thread-safe. */
uint64_t shard_epoch(const shard *s);

/* 1 while the shard is a standby, 0 while it is a primary. Thread-safe. */
int shard_is_standby(const shard *s);

/* Standby only, from one thread (the replication receiver): hands the
 * writer n records (records[i].seq == shard's last seq + 1 + i; payload,
 * timestamp and seq used; file/offset ignored) whose predecessor's
 * checksum is prev_checksum, and waits until the writer has appended them
 * to its journal (not yet durable: wait with shard_durable_wait, then
 * acknowledge). The payloads are copied before it returns.
 * Returns 0; or, with a message in err, nothing appended:
 *   -EPERM     the shard is a primary (promoted meanwhile);
 *   -ESTALE    epoch < shard_epoch(s) (records of an older term: fencing);
 *   -ERANGE    records[0].seq != last seq + 1 (a gap or an overlap; err says
 *              which and the shard's last seq, so the sender resumes there);
 *   -EBADMSG   prev_checksum is not the checksum of the shard's last record
 *              (the histories diverged: the standby must cut its tail,
 *              shard_cut_after, or be rebuilt), or a payload does not decode;
 *   -EPROTO    re-execution gave another result than recorded;
 *   -ESHUTDOWN the shard failed or is stopping.
 * `epoch` is the sender's term; a record batch of a newer term is accepted
 * (the new primary's first record is its EPOCH record). */
int shard_replicate(shard *s, uint64_t epoch, uint64_t prev_checksum, const journal_record *records, uint32_t n,
		    char *err, size_t errlen);

/* The last journaled record: its sequence and content checksum
 * (journal_record.checksum; what shard_replicate compares prev_checksum
 * with). (0, 0) when the journal is empty; after a pruned head, the
 * checksum of the snapshot's record, which recovery reads (0 in the one
 * case it cannot: the remaining segments start right after the snapshot
 * and hold nothing yet). Updated by the writer once per batch or
 * replicated run. Thread-safe. */
void shard_last_record(const shard *s, uint64_t *seq /* OUT */, uint64_t *checksum /* OUT */);

/* Standby -> primary for term `epoch` (> shard_epoch(s)): the writer
 * journals an EPOCH record and then takes commands from its input ring.
 * Returns 0 once the EPOCH record is appended (its reply-side effects come
 * with durability as usual); -EINVAL epoch not newer; -EPERM not a
 * standby; -ESHUTDOWN failed. Thread-safe (the control-plane thread). */
int shard_promote(shard *s, uint64_t epoch);

/* Primary -> fenced: this server learned that another holds a newer term.
 * At once, nothing more is published: every result not yet published and
 * every later command is answered with BO_NOT_PRIMARY (seq 0, like the
 * failed shard's busy), expiries not yet published become SHARD_OUT_VOID.
 * The journal keeps what it has (its unacknowledged tail is cut when the
 * server rejoins as a standby). Idempotent. Thread-safe. After it, only
 * shard_stop/shard_free (and reopening as a standby). */
void shard_fence(shard *s);

/* Rejoining: with the shard closed, removes every journal record after
 * `seq` (the start of the term this copy missed, minus one) and every
 * snapshot after it, durably (files synced, directory fsynced), so that
 * shard_open then recovers exactly the state through `seq`. Returns 0, or
 * a negative errno with err: -ERANGE seq is before the oldest snapshot or
 * kept record (the copy must be rebuilt from the primary). */
int shard_cut_after(const char *data_dir, uint32_t shard_id, uint64_t seq, char *err, size_t errlen);

/* The shard an event lives on: XXH3-64 of the event id (little-endian
 * bytes) modulo shard_count. Stable across versions: it decides where
 * journals live. */
uint32_t shard_for_event(uint64_t event_id, uint32_t shard_count);

#endif /* BO_SHARD_H */
