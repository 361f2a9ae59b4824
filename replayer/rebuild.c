/*
 * rebuild.c — re-executing a shard's journal offline (what it proves: see
 * rebuild.h).
 *
 * A rebuild runs in three steps: pick the base (an empty engine, or the
 * oldest usable snapshot of a pruned journal) and open the reader after it;
 * re-execute record by record, comparing each snapshot the rebuild passes;
 * then look at how the journal ended (corruption, torn tail, a requested
 * seq it never reached, snapshots beyond it).
 */
#include "rebuild.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/snapshot.h"
#include "journal/journal.h"
#include "replayer/replay_progress.h"
#include "shard/apply.h"
#include "shard/entry.h"
#include "shard/snapfile.h"

/* ==== Engine capacity and snapshots ========================================= */

/* The capacity the server ran with (see rebuild.h). */
static void resolve_config(const replay_opts *o, const replay_shard_dir *d, engine_config *cfg,
                           const char **source)
{
	engine_config_default(cfg);
	*source = "defaults";
	/* Newest first: the server's latest configuration. */
	for (uint32_t k = d->snap_count; k > 0; k--) {
		char path[REPLAY_DIR_PATH_LEN], err[SNAPSHOT_ERR_LEN];
		snapshot_info info;
		replay_dir_snap_path(d, k - 1, path, sizeof path);
		if (snapfile_peek(path, &info, err, sizeof err) == 0) {
			*cfg = info.config;
			*source = "newest snapshot";
			break;
		}
	}
	if (o->seats_max || o->claims_max || o->idem_capacity || o->events_max)
		*source = "command line";
	if (o->seats_max)
		cfg->seats_max = o->seats_max;
	if (o->claims_max)
		cfg->claims_max = o->claims_max;
	if (o->idem_capacity)
		cfg->idem_capacity = o->idem_capacity;
	if (o->events_max)
		cfg->events_max = o->events_max;
}

/* Loads snapshot i of d. Returns 0 and the engine (caller frees), with the
 * file's bytes in *bytes when bytes is not NULL (caller frees); or adds a
 * problem and returns -1 (invalid) / -2 (I/O). */
static int load_snap(replay_report *r, const replay_shard_dir *d, uint32_t i, engine **e,
                     snapshot_info *info, uint8_t **bytes, size_t *len)
{
	char path[REPLAY_DIR_PATH_LEN], err[SNAPSHOT_ERR_LEN];
	replay_dir_snap_path(d, i, path, sizeof path);
	uint64_t seq = d->snaps[i].seq;
	uint8_t *buf;
	size_t n;
	int rc = replay_dir_read_file(path, REPLAY_SNAPSHOT_BYTES_MAX, &buf, &n);
	if (rc < 0) {
		replay_report_problem(r, "io", seq, path, 0, 0, 1, "%s: cannot read snapshot: %s",
		                      path, strerror(-rc));
		return -2;
	}
	err[0] = '\0';
	rc = snapshot_load(buf, n, e, info, err, sizeof err);
	if (rc < 0) {
		free(buf);
		if (rc == -ENOMEM) {
			replay_report_problem(r, "io", seq, path, 0, 0, 1,
			                      "%s: out of memory loading snapshot", path);
			return -2;
		}
		replay_report_problem(r, "snapshot_invalid", seq, path, 0, 0, 0,
		                      "%s: invalid snapshot: %s", path,
		                      err[0] ? err : strerror(-rc));
		return -1;
	}
	if (info->seq != seq || info->shard != d->shard) {
		engine_free(*e);
		*e = NULL;
		free(buf);
		replay_report_problem(r, "snapshot_invalid", seq, path, 0, 0, 0,
		                      "%s: header says shard %" PRIu32 " seq %" PRIu64
		                      ", not what its place and name say",
		                      path, info->shard, info->seq);
		return -1;
	}
	if (bytes) {
		*bytes = buf;
		*len = n;
	} else {
		free(buf);
	}
	return 0;
}

static int configs_equal(const engine_config *a, const engine_config *b)
{
	return a->seats_max == b->seats_max && a->claims_max == b->claims_max &&
	       a->idem_capacity == b->idem_capacity && a->events_max == b->events_max;
}

/* Compares snapshot i with the rebuilt engine `e` at its seq. The clock a
 * snapshot records is the engine's (the last record's timestamp, since
 * batch times never go back). Adds a problem when they differ. */
static void compare_snap(replay_report *r, const replay_shard_dir *d, uint32_t i, const engine *e,
                         const engine_config *cfg)
{
	engine *s = NULL;
	snapshot_info info;
	uint8_t *file = NULL;
	size_t file_len = 0;
	if (load_snap(r, d, i, &s, &info, &file, &file_len) != 0)
		return;
	char path[REPLAY_DIR_PATH_LEN];
	replay_dir_snap_path(d, i, path, sizeof path);
	uint64_t seq = d->snaps[i].seq;
	uint8_t *mine = NULL;
	size_t mine_len = 0;
	int64_t ts = engine_now(e);
	int rc = ts < 0 ? -EINVAL : snapshot_encode(e, d->shard, seq, ts, &mine, &mine_len);
	uint64_t ds = engine_digest(s), de = engine_digest(e);
	if (ts < 0) {
		replay_report_problem(r, "malformed", seq, path, 0, 0, 0,
		                      "%s: the journal's clock at seq %" PRIu64
		                      " is before 1970 (%" PRId64 " ms): no snapshot can hold it",
		                      path, seq, ts);
	} else if (rc < 0) {
		replay_report_problem(r, "io", seq, path, 0, 0, 1,
		                      "%s: cannot encode the rebuilt state: %s", path,
		                      strerror(-rc));
	} else if (!configs_equal(&info.config, cfg)) {
		replay_report_problem(
		        r, "snapshot_mismatch", seq, path, 0, 0, 0,
		        "%s: taken with engine capacity seats %" PRIu32 " claims %" PRIu32
		        " idem %" PRIu32 " events %" PRIu32 ", rebuilt with seats %" PRIu32
		        " claims %" PRIu32 " idem %" PRIu32 " events %" PRIu32
		        " (give the server's with --seats-max ...)",
		        path, info.config.seats_max, info.config.claims_max,
		        info.config.idem_capacity, info.config.events_max, cfg->seats_max,
		        cfg->claims_max, cfg->idem_capacity, cfg->events_max);
	} else if (info.seq_ts_ms != ts) {
		replay_report_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		                      "%s: snapshot clock %" PRId64 " ms, but record %" PRIu64
		                      " has timestamp %" PRId64 " ms",
		                      path, info.seq_ts_ms, seq, ts);
	} else if (ds != de) {
		replay_report_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		                      "%s: state differs from the journal rebuilt to seq %" PRIu64
		                      " (digest %016" PRIx64 " in the file, %016" PRIx64
		                      " rebuilt)",
		                      path, seq, ds, de);
	} else if (mine_len != file_len || memcmp(mine, file, file_len) != 0) {
		replay_report_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		                      "%s: digests agree but the encoding differs from the "
		                      "rebuilt state's (%zu vs %zu bytes)",
		                      path, file_len, mine_len);
	} else {
		r->snaps_checked++;
	}
	free(mine);
	free(file);
	engine_free(s);
}

/* ==== The base =============================================================== */

static int base_empty(rebuild *b, replay_report *r)
{
	const replay_shard_dir *d = b->d;
	int rc = engine_new(&b->cfg, &b->e);
	if (rc < 0) {
		replay_report_problem(r, "io", 0, d->path, 0, 0, 1,
		                      "shard %" PRIu32 ": cannot create an engine with seats_max "
		                      "%" PRIu32 " claims_max %" PRIu32 " idem_capacity %" PRIu32
		                      " events_max %" PRIu32 " (from %s): %s",
		                      d->shard, b->cfg.seats_max, b->cfg.claims_max,
		                      b->cfg.idem_capacity, b->cfg.events_max, b->cfg_source,
		                      strerror(-rc));
		return -1;
	}
	r->base = "empty";
	r->base_seq = 0;
	r->last_ts_ms = 0;
	return 0;
}

/* Picks the starting point. Returns 0 with b->e set (empty engine or a
 * loaded snapshot), or -1 with a problem added. */
static int rebuild_base(rebuild *b, replay_report *r)
{
	const replay_shard_dir *d = b->d;
	uint64_t first_seg = d->seg_count ? d->segs[0].first_seq : 1;
	resolve_config(b->o, d, &b->cfg, &b->cfg_source);
	if (first_seg <= 1)
		return base_empty(b, r);
	/* Pruned: the oldest valid snapshot that reaches the first segment and
	 * is not past where we must stop. */
	for (uint32_t i = 0; i < d->snap_count; i++) {
		if (d->snaps[i].seq + 1 < first_seg || d->snaps[i].seq > b->stop_seq)
			continue;
		snapshot_info info;
		int rc = load_snap(r, d, i, &b->e, &info, NULL, NULL);
		if (rc == -2)
			return -1;
		if (rc < 0)
			continue; /* reported; try the next one */
		b->cfg = info.config;
		b->cfg_source = "base snapshot";
		r->base = "snapshot";
		r->base_seq = info.seq;
		r->last_ts_ms = info.seq_ts_ms;
		char path[REPLAY_DIR_PATH_LEN];
		replay_dir_snap_path(d, i, path, sizeof path);
		replay_report_note(r,
		                   "journal pruned: it starts at seq %" PRIu64
		                   "; re-executed from snapshot %s (seq %" PRIu64 ")",
		                   first_seg, path, info.seq);
		return 0;
	}
	char seg[REPLAY_DIR_PATH_LEN];
	replay_dir_seg_path(d, 0, seg, sizeof seg);
	replay_report_problem(r, "pruned", first_seg - 1, seg, 0, 0, 0,
	                      "%s: journal starts at seq %" PRIu64
	                      " (older segments pruned) and no valid snapshot covers seq "
	                      "%" PRIu64 "%s: the state before it cannot be rebuilt",
	                      seg, first_seg, first_seg - 1,
	                      b->stop_seq != UINT64_MAX ? " at or before the requested seq" : "");
	return -1;
}

/* ==== Re-execution =========================================================== */

/* One pass over the journal after the base. */
typedef struct pass {
	journal_reader *rd;
	uint32_t si;     /* the next snapshot the rebuild reaches */
	uint64_t expect; /* the seq the next record must have */
	char last_file[PATH_MAX];
	int stopped; /* a problem stopped re-execution */
} pass;

/* Snapshots at or below the base: validated (loaded) but not compared (the
 * journal before the base is gone or was not re-executed). Leaves p->si at
 * the first snapshot after the base. */
static void check_older_snaps(const rebuild *b, replay_report *r, pass *p)
{
	const replay_shard_dir *d = b->d;
	for (; p->si < d->snap_count && d->snaps[p->si].seq <= r->base_seq; p->si++) {
		uint32_t i = p->si;
		if (!b->check_snaps || d->snaps[i].seq == r->base_seq)
			continue;
		/* Those that reach the first segment were tried as the base
		 * already (and reported if invalid). */
		if (strcmp(r->base, "snapshot") == 0 && d->seg_count &&
		    d->snaps[i].seq + 1 >= d->segs[0].first_seq)
			continue;
		engine *tmp = NULL;
		snapshot_info info;
		if (load_snap(r, d, i, &tmp, &info, NULL, NULL) == 0) {
			engine_free(tmp);
			r->snaps_older++;
		}
	}
}

/* Applies a staged record (its seq already checked), then compares the
 * snapshots of its seq. Returns 0, or -1 with a problem added (p->stopped). */
static int apply_staged(rebuild *b, replay_report *r, pass *p, replay_staged *st, replay_progress *pg)
{
	const journal_record *rec = &st->rec;
	/* The kind is all this needs of the entry: no copy of it (~700 bytes). */
	const int kind = st->en.kind;
	char aerr[REPLAY_ERR_LEN]; /* not "= \"\"": that zeroes 1 KiB a record */
	aerr[0] = '\0';
	int ar = replay_apply_staged(b->e, st, 1, NULL, aerr, sizeof aerr);
	if (ar != REPLAY_OK) {
		assert(ar == REPLAY_MISMATCH); /* a staged record decoded */
		/* A capacity other than the server's changes LIMIT answers: say
		 * which one was used, so that case is recognisable. */
		replay_report_problem(r, "mismatch", rec->seq, rec->file, rec->offset, 1, 0,
		                      "%s [replayed with seats_max %" PRIu32 " claims_max %" PRIu32
		                      " idem_capacity %" PRIu32 " events_max %" PRIu32 " from %s]",
		                      aerr, b->cfg.seats_max, b->cfg.claims_max,
		                      b->cfg.idem_capacity, b->cfg.events_max, b->cfg_source);
		p->stopped = 1;
		return -1;
	}
	if (r->first_seq == 0)
		r->first_seq = rec->seq;
	r->last_seq = rec->seq;
	r->last_ts_ms = rec->timestamp_ms;
	r->records++;
	if (kind == ENTRY_TICK)
		r->ticks++;
	else if (kind == ENTRY_COMMAND)
		r->commands++; /* an EPOCH record (a term's start) is neither */
	p->expect = rec->seq + 1;
	const replay_shard_dir *d = b->d;
	for (; p->si < d->snap_count && d->snaps[p->si].seq <= rec->seq; p->si++)
		if (b->check_snaps && d->snaps[p->si].seq == rec->seq)
			compare_snap(r, d, p->si, b->e, &b->cfg);
	replay_progress_tick(pg, rec);
	return 0;
}

/* Checks that a record has the seq `expect` and stages it (decoded, its
 * cache lines on the way). Returns 0; or -1 (bad seq) / -2 (malformed,
 * st dropped) with nothing reported yet: the record before it must be
 * applied first, in journal order. */
static int stage_checked(rebuild *b, pass *p, uint64_t expect, const journal_record *rec, replay_staged *st)
{
	if (rec->seq != expect)
		return -1;
	if (rec->file && strcmp(rec->file, p->last_file) != 0)
		snprintf(p->last_file, sizeof p->last_file, "%s", rec->file);
	if (replay_stage(b->e, rec, st) != REPLAY_OK) {
		replay_staged_drop(st);
		return -2;
	}
	return 0;
}

/* Reports why stage_checked() refused rec (its rc `sc`). */
static void stage_problem(replay_report *r, pass *p, int sc, uint64_t expect, const journal_record *rec,
                          const replay_staged *st)
{
	if (sc == -1)
		/* The reader guarantees continuity; a break here is a reader
		 * bug or a file changing under us: still a finding. */
		replay_report_problem(r, "corruption", expect, rec->file, rec->offset, 1, 0,
		                      "%s offset %" PRIu64 ": expected seq %" PRIu64
		                      ", found %" PRIu64,
		                      rec->file, rec->offset, expect, rec->seq);
	else
		replay_report_problem(r, "malformed", rec->seq, rec->file, rec->offset, 1, 0, "%s",
		                      st->err);
	p->stopped = 1;
}

/* Reads and re-executes up to stop_seq or the end. Returns the reader's
 * last rc (1 when stopped before the reader's end). Runs one record behind
 * the reader: record n+1 is decoded and its cache lines requested before
 * record n is applied (replay_stage), which keeps the engine's misses off
 * the critical path; everything is still applied, compared and reported
 * in journal order. */
static int reexecute_all(rebuild *b, replay_report *r, pass *p)
{
	const replay_shard_dir *d = b->d;
	replay_progress pg;
	replay_progress_begin(&pg, b->o->no_progress, d, 0);
	replay_staged bufs[2];
	replay_staged *cur = NULL, *next = &bufs[0];
	journal_record rec;
	int rc;
	while ((rc = journal_reader_next(p->rd, &rec)) == 1) {
		if (rec.seq > b->stop_seq)
			break;
		uint64_t expect = cur ? cur->rec.seq + 1 : p->expect;
		int sc = stage_checked(b, p, expect, &rec, next);
		if (cur) {
			int ar = apply_staged(b, r, p, cur, &pg);
			cur = NULL;
			if (ar != 0) {
				if (sc == 0)
					replay_staged_drop(next);
				break;
			}
		}
		if (sc != 0) {
			stage_problem(r, p, sc, expect, &rec, next);
			break;
		}
		cur = next;
		next = cur == &bufs[0] ? &bufs[1] : &bufs[0];
	}
	/* The last record read. If it fails, re-execution stopped on it, as
	 * if the reader had not gone further (1: how the end looked is moot). */
	if (cur && apply_staged(b, r, p, cur, &pg) != 0)
		rc = 1;
	replay_progress_end(&pg);
	return rc;
}

/* ==== The end ================================================================ */

/* How the reader stopped (rc): corruption or I/O stops the rebuild; a torn
 * tail is a problem unless allowed. */
static void reader_end(const rebuild *b, replay_report *r, pass *p, int rc)
{
	if (rc < 0) {
		replay_report_reader(r, p->rd, rc, p->expect, p->last_file);
		p->stopped = 1;
		return;
	}
	if (rc != 0)
		return; /* stopped before the end: stop_seq or a problem */
	journal_recovery jr;
	journal_reader_recovery(p->rd, &jr);
	r->torn_bytes = jr.bytes_cut;
	if (jr.bytes_cut == 0 && jr.records_cut == 0)
		return;
	if (b->o->allow_torn_tail)
		replay_report_note(r, "torn tail allowed: %s", jr.note);
	else
		replay_report_problem(
		        r, "torn_tail", p->expect, p->last_file, 0, 0, 0,
		        "%s (the next start of the shard cuts it; --allow-torn-tail accepts it)",
		        jr.note[0] ? jr.note : "bytes after the last whole record");
}

/* After the journal: a requested seq it never reached, snapshots beyond it. */
static void journal_end(const rebuild *b, replay_report *r, pass *p)
{
	const replay_shard_dir *d = b->d;
	uint64_t end = r->last_seq ? r->last_seq : r->base_seq;
	if (b->stop_seq != UINT64_MAX && !p->stopped && end < b->stop_seq) {
		replay_report_problem(r, "beyond_end", b->stop_seq, d->path, 0, 0, 0,
		                      "%s: seq %" PRIu64
		                      " is not in the journal (its readable end is seq %" PRIu64
		                      ")",
		                      d->path, b->stop_seq, end);
		p->stopped = 1;
	}
	if (!b->check_snaps || p->stopped)
		return;
	for (; p->si < d->snap_count; p->si++) {
		char path[REPLAY_DIR_PATH_LEN];
		replay_dir_snap_path(d, p->si, path, sizeof path);
		replay_report_problem(r, "snapshot_beyond_end", d->snaps[p->si].seq, path, 0, 0, 0,
		                      "%s: snapshot of seq %" PRIu64
		                      " but the journal ends at seq %" PRIu64
		                      ": durable records were lost",
		                      path, d->snaps[p->si].seq, end);
	}
}

int rebuild_run(rebuild *b, replay_report *r)
{
	const replay_shard_dir *d = b->d;
	memset(r, 0, sizeof *r);
	r->shard = d->shard;
	r->base = "none";
	b->e = NULL;
	if (rebuild_base(b, r) != 0)
		return -1;
	pass p;
	memset(&p, 0, sizeof p);
	char err[JOURNAL_ERR_LEN];
	int rc = journal_reader_open_from(b->o->dir, d->shard, NULL, r->base_seq, &p.rd, err,
	                                  sizeof err);
	if (rc < 0) {
		replay_report_problem(r, "io", 0, d->path, 0, 0, 1, "%s", err);
		p.stopped = 1;
	} else {
		p.expect = r->base_seq + 1;
		check_older_snaps(b, r, &p);
		rc = reexecute_all(b, r, &p);
		reader_end(b, r, &p, rc);
		journal_reader_close(p.rd);
		journal_end(b, r, &p);
	}
	if (p.stopped) {
		engine_free(b->e);
		b->e = NULL;
		return -1;
	}
	return r->problem_count == 0 ? 0 : 1;
}
