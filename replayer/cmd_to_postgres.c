/*
 * cmd_to_postgres.c — `boxoffice-replay to-postgres`: loads PostgreSQL (the
 * system of record, schemas/sql/) from the journals, from scratch or from
 * the database's own checkpoint: the operator's way to rebuild it after an
 * incident.
 *
 * It is the committer's pipeline without the live shard: per shard,
 * connect, migrate, read the shard's checkpoint and its active holds
 * (committer/pgstore.h), then read the journal after the checkpoint and
 * turn its records into rows (committer/changes.h), applying every --batch
 * records in one transaction that moves the checkpoint by compare-and-set
 * (pgs_apply). So the database is always at a record boundary with its
 * checkpoint, a run that stops (error, kill, outage) is simply run again,
 * and a live committer writing the same shard to the same database cannot
 * be doubled: whichever of the two moves the checkpoint second stops with
 * the compare-and-set's message.
 *
 * What it never does: delete rows (--from-scratch only refuses a database
 * that already holds the shard), or guess across a gap: a journal pruned
 * past the checkpoint is refused with what would be needed. It does not load
 * snapshots (see the --help text for why that could not be exact).
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/json.h"
#include "committer/changes.h"
#include "committer/committer.h"
#include "committer/pgstore.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_progress.h"
#include "replayer/replay_read.h"

static const char usage[] =
        "Usage: " REPLAY_PROG " to-postgres DIR --dsn DSN [--shard N] [--from-scratch]\n"
        "                             [--batch N] [--json] [--allow-torn-tail]\n"
        "\n"
        "Loads the PostgreSQL system of record from the journals of DIR: the same\n"
        "tables, rows, seat_changes audit and inventory_events outbox the server's\n"
        "committer writes (schemas/database.md), applied the same way. Per shard it\n"
        "connects to DSN (a libpq connection string), brings the schema to this\n"
        "binary's version, reads the shard's checkpoint (the last journal seq the\n"
        "database holds) and its active holds, then applies every journal record\n"
        "after the checkpoint, --batch records (default 8192) per transaction. Each\n"
        "transaction moves the checkpoint with a compare-and-set, so:\n"
        "  - a run that stops (an error, a kill, the database going away) leaves the\n"
        "    database at a record boundary: run it again and it continues;\n"
        "  - against a live committer writing the same shard to the same database,\n"
        "    nothing is applied twice: the one that loses the race stops with\n"
        "    \"checkpoint is no longer ...: another committer is writing this shard\".\n"
        "Run it on a stopped server's DIR: on a running one it may read records that\n"
        "are written but not yet durable.\n"
        "\n"
        "  --dsn DSN       the database (required), e.g. \"host=/run/pg dbname=boxoffice\"\n"
        "  --from-scratch  insist on a rebuild from seq 1: refused when the database\n"
        "                  already holds records of the shard (checkpoint above 0).\n"
        "                  Nothing is ever deleted: to rebuild, use a fresh database.\n"
        "                  Without it, a database continues from its checkpoint (an\n"
        "                  empty one from seq 1).\n"
        "  --batch N       journal records per transaction (1 .. 1048576)\n"
        "  --allow-torn-tail  bytes after the last whole record (a crash before the\n"
        "                  shard restarted) are a warning, not a failure; the records\n"
        "                  before them are applied either way\n"
        "\n"
        "Pruned journals: when the records right after the checkpoint are no longer\n"
        "in the journal (its first segment starts later; a snapshot covers the gap),\n"
        "it refuses and names the checkpoint, the first seq available and the\n"
        "snapshot. Snapshots are not loaded into the database: a snapshot is only the\n"
        "engine's current state, without the holds and bookings that ended, the audit\n"
        "and outbox rows before it, or the request ids of the claims, so the database\n"
        "could not be made exact from one. Restore the pruned segments (from a backup\n"
        "or archive) into DIR, or continue a database whose checkpoint reaches them.\n"
        "\n"
        "Output: one summary line per shard on stdout (records, transactions, seat\n"
        "changes, outbox events, seconds, seat changes per second), and the total\n"
        "with more than one shard. --json prints one object: {\"shards\":[{\"shard\",\n"
        "\"ok\",\"checkpoint_before\",\"checkpoint\",\"records\",\"batches\",\"changes\",\n"
        "\"outbox\",\"seconds\",\"rows_per_sec\",\"torn_tail_bytes\",\"error\"}],\n"
        "\"total\":{\"records\",\"batches\",\"changes\",\"outbox\",\"seconds\",\n"
        "\"rows_per_sec\"},\"ok\":bool}.\n"
        "\n"
        "Exit: 0 ok; 1 the journal cannot be applied (corruption, a record that does\n"
        "not translate, pruned past the checkpoint, a checkpoint ahead of the\n"
        "journal, a torn tail without --allow-torn-tail); 2 usage; 3 I/O or\n"
        "environment, including every database error (unreachable, refused,\n"
        "privileges, read-only, schema newer than this binary, --from-scratch into a\n"
        "database that holds the shard, a compare-and-set lost to another writer).\n"
        "Other shards go on after one fails; the exit code is the worst.\n";

/* What one shard's load did. */
typedef struct tp_shard {
	uint32_t shard;
	uint64_t checkpoint_before; /* where the database stood (0: nothing of the shard) */
	uint64_t checkpoint;        /* where it stands now */
	uint64_t records, batches, changes, outbox;
	int have_checkpoint; /* the checkpoint was read (the database answered) */
	int64_t ns;          /* from the first read to the last commit */
	uint64_t torn_bytes;
	char error[PATH_MAX + 1024]; /* "" when the shard loaded */
} tp_shard;

/* The shard's load in progress. */
typedef struct tp_load {
	const replay_opts *o;
	const replay_shard_dir *d;
	tp_shard *res;
	pgstore *pg;
	chg_state *cs;
	const char *channel;
	uint32_t batch;
} tp_load;

/* Records the shard's failure (kept for --json) and prints it. Returns code. */
static int tp_fail(tp_load *l, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int tp_fail(tp_load *l, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->res->error, sizeof l->res->error, fmt, ap);
	va_end(ap);
	replay_err("shard %" PRIu32 ": %s", l->res->shard, l->res->error);
	return code;
}

/* A database failure: the message of pgstore, and how far this run got
 * (when another writer won the compare-and-set, the database may be
 * further: that writer's doing). */
static int tp_db_fail(tp_load *l, const pgs_err *e)
{
	if (!l->res->have_checkpoint)
		return tp_fail(l, REPLAY_EXIT_IO, "database: %s", e->msg);
	return tp_fail(l, REPLAY_EXIT_IO, "database: %s (applied through seq %" PRIu64 ")", e->msg,
	               l->res->checkpoint);
}

/* Connects, migrates and loads the position: the checkpoint, the outbox
 * position and the active holds. Returns 0 or an exit code. */
static int tp_open_db(tp_load *l)
{
	pgs_err e;
	uint64_t outbox = 0;
	if (pgs_connect(l->o->dsn, &l->pg, &e) < 0 || pgs_migrate(l->pg, &e) < 0 ||
	    pgs_checkpoint(l->pg, l->res->shard, &l->res->checkpoint_before, &outbox, &e) < 0)
		return tp_db_fail(l, &e);
	l->res->checkpoint = l->res->checkpoint_before;
	l->res->have_checkpoint = 1;
	if (l->o->from_scratch && l->res->checkpoint_before != 0)
		return tp_fail(
		        l, REPLAY_EXIT_IO,
		        "--from-scratch refused: the database already holds this shard through "
		        "journal seq %" PRIu64 " (its checkpoint); nothing was changed. To "
		        "rebuild, point --dsn at a fresh database; to continue from the "
		        "checkpoint, run without --from-scratch",
		        l->res->checkpoint_before);
	if (chg_new(l->res->shard, &l->cs) != 0)
		return tp_fail(l, REPLAY_EXIT_IO, "out of memory");
	chg_position(l->cs, l->res->checkpoint_before, outbox);
	if (pgs_load_holds(l->pg, l->res->shard, l->cs, &e) < 0)
		return tp_db_fail(l, &e);
	return 0;
}

/* The database holds records this journal does not: journal_end is the
 * last seq it has. Returns the exit code. */
static int tp_ahead(tp_load *l, uint64_t journal_end)
{
	return tp_fail(l, REPLAY_EXIT_FAILED,
	               "the database's checkpoint (seq %" PRIu64 ") is ahead of this journal, "
	               "which ends at seq %" PRIu64 ": the database was written from another "
	               "journal (or records were lost here)",
	               l->res->checkpoint_before, journal_end);
}

/* Refuses a journal that no longer holds the records right after the
 * checkpoint, or none at all. Returns 0 or an exit code. */
static int tp_check_pruned(tp_load *l)
{
	const replay_shard_dir *d = l->d;
	uint64_t cp = l->res->checkpoint_before;
	if (d->seg_count == 0)
		return cp ? tp_ahead(l, 0) : 0;
	if (d->segs[0].first_seq <= cp + 1)
		return 0;
	uint64_t first = d->segs[0].first_seq;
	/* The oldest snapshot that reaches the first segment: the state the
	 * engine restarts from, and what an operator would look for. */
	char snap[REPLAY_DIR_PATH_LEN + 64] = "no snapshot covers the gap";
	for (uint32_t i = 0; i < d->snap_count; i++) {
		if (d->snaps[i].seq + 1 < first)
			continue;
		char path[REPLAY_DIR_PATH_LEN];
		replay_dir_snap_path(d, i, path, sizeof path);
		snprintf(snap, sizeof snap, "snapshot %s (seq %" PRIu64 ") covers the gap", path,
		         d->snaps[i].seq);
		break;
	}
	return tp_fail(l, REPLAY_EXIT_FAILED,
	               "pruned: the database's checkpoint is seq %" PRIu64
	               " but the journal in %s starts at seq %" PRIu64
	               " (older segments were pruned; %s). The database needs records %" PRIu64
	               "..%" PRIu64 ": put those segments back into %s (from a backup or archive) "
	               "and run again, or use a database whose checkpoint is at least %" PRIu64
	               ". Snapshots are not loaded into the database (see --help)",
	               cp, d->path, first, snap, cp + 1, first - 1, d->path, first - 1);
}

/* Applies the gathered batch (if any) in one transaction. 0 or an exit code. */
static int tp_flush(tp_load *l)
{
	const chg_batch *b = chg_get_batch(l->cs);
	if (b->records == 0)
		return 0;
	pgs_err e;
	if (pgs_apply(l->pg, l->res->shard, l->res->checkpoint, b, l->channel, &e) < 0)
		return tp_db_fail(l, &e);
	l->res->checkpoint = b->last_seq;
	l->res->records += b->records;
	l->res->batches++;
	l->res->changes += b->changes.n;
	l->res->outbox += b->outbox.n;
	chg_batch_clear(l->cs);
	return 0;
}

/* The reader stopped on an error: records the failure in the form that
 * says what is wrong. Returns the exit code. */
static int tp_reader_fail(tp_load *l, journal_reader *rd, int rc)
{
	journal_error_at at;
	journal_reader_error_at(rd, &at);
	/* A log that ends before the checkpoint (the reader expected a seq at
	 * or below it) did not write this database. */
	if (rc == -EBADMSG && l->res->records == 0 && at.seq != 0 &&
	    at.seq <= l->res->checkpoint_before)
		return tp_ahead(l, at.seq - 1);
	/* The reader's messages name the journal, the file and the seq. */
	const char *msg = journal_reader_error(rd);
	return tp_fail(l, rc == -EBADMSG ? REPLAY_EXIT_FAILED : REPLAY_EXIT_IO,
	               "%s%s (the database holds the records before it, through seq %" PRIu64 ")",
	               msg[0] ? "" : "journal: ", msg[0] ? msg : strerror(-rc), l->res->checkpoint);
}

/* The journal ended (rc 0): a torn tail fails unless --allow-torn-tail
 * (replay_read_end prints it), everything before it applied either way.
 * Returns the exit code. */
static int tp_end(tp_load *l, journal_reader *rd, int rc)
{
	int code = replay_read_end(l->o, rd, rc, l->res->shard, &l->res->torn_bytes);
	if (code != REPLAY_EXIT_OK) {
		journal_recovery jr;
		journal_reader_recovery(rd, &jr);
		snprintf(l->res->error, sizeof l->res->error,
		         "torn_tail: %s (every record before it applied, through seq %" PRIu64
		         "; --allow-torn-tail accepts it)",
		         jr.note, l->res->checkpoint);
	}
	return code;
}

/* Reads the journal after the checkpoint and applies it, batch by batch.
 * Returns the exit code. */
static int tp_stream(tp_load *l)
{
	journal_reader *rd;
	char err[JOURNAL_ERR_LEN];
	int rc = journal_reader_open_from(l->o->dir, l->res->shard, NULL, l->res->checkpoint_before,
	                                  &rd, err, sizeof err);
	if (rc < 0)
		return tp_fail(l, REPLAY_EXIT_IO, "journal: %s", err);
	replay_progress pg;
	replay_progress_begin(&pg, l->o->no_progress, l->d, 0);
	int64_t t0 = bo_clock_ns();
	journal_record rec;
	int code = 0;
	while (code == 0 && (rc = journal_reader_next(rd, &rec)) == 1) {
		replay_progress_tick(&pg, &rec);
		char cerr[192];
		int cr = chg_record(l->cs, &rec, cerr, sizeof cerr);
		if (cr < 0) {
			/* The batch may hold part of this record: it is not applied. */
			code = tp_fail(
			        l, cr == -ENOMEM ? REPLAY_EXIT_IO : REPLAY_EXIT_FAILED,
			        "journal record %" PRIu64 " (%s offset %" PRIu64 "): %s (the "
			        "database holds the records before its batch, through seq %" PRIu64
			        ")",
			        rec.seq, rec.file, rec.offset,
			        cr == -ENOMEM ? "out of memory" : cerr, l->res->checkpoint);
			break;
		}
		if (chg_get_batch(l->cs)->records >= l->batch)
			code = tp_flush(l);
	}
	replay_progress_end(&pg);
	/* What was read before an end or a broken record is whole: apply it. */
	if (code == 0)
		code = tp_flush(l);
	l->res->ns = bo_clock_ns() - t0;
	if (code == 0 && rc < 0)
		code = tp_reader_fail(l, rd, rc);
	else if (code == 0)
		code = tp_end(l, rd, rc);
	journal_reader_close(rd);
	return code;
}

/* Loads shard res->shard. Returns its exit code. */
static int tp_one(const replay_opts *o, tp_shard *res)
{
	replay_shard_dir d;
	char err[PATH_MAX + 256];
	if (replay_dir_scan(o->dir, res->shard, &d, err, sizeof err) < 0) {
		snprintf(res->error, sizeof res->error, "%s", err);
		replay_err("%s", err);
		return REPLAY_EXIT_IO;
	}
	committer_config cc;
	committer_config_default(&cc);
	tp_load l = {.o = o,
	             .d = &d,
	             .res = res,
	             .channel = cc.notify_channel,
	             .batch = o->batch ? o->batch : cc.batch_records};
	int code = tp_open_db(&l);
	if (code == 0)
		code = tp_check_pruned(&l);
	if (code == 0)
		code = tp_stream(&l);
	chg_free(l.cs);
	pgs_close(l.pg);
	replay_dir_free(&d);
	return code;
}

static double tp_seconds(const tp_shard *s)
{
	return (double)s->ns / 1e9;
}

static double tp_rate(const tp_shard *s)
{
	return s->ns > 0 ? (double)s->changes / tp_seconds(s) : 0.0;
}

static void tp_add(tp_shard *t, const tp_shard *s)
{
	t->records += s->records;
	t->batches += s->batches;
	t->changes += s->changes;
	t->outbox += s->outbox;
	t->ns += s->ns;
}

static void print_counts_json(const tp_shard *s)
{
	printf("\"records\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"changes\":%" PRIu64
	       ",\"outbox\":%" PRIu64 ",\"seconds\":%.3f,\"rows_per_sec\":%.1f",
	       s->records, s->batches, s->changes, s->outbox, tp_seconds(s), tp_rate(s));
}

static void print_json(const tp_shard *s, int first)
{
	printf("%s{\"shard\":%" PRIu32 ",\"ok\":%s,\"checkpoint_before\":%" PRIu64
	       ",\"checkpoint\":%" PRIu64 ",",
	       first ? "" : ",", s->shard, s->error[0] ? "false" : "true", s->checkpoint_before,
	       s->checkpoint);
	print_counts_json(s);
	printf(",\"torn_tail_bytes\":%" PRIu64 ",\"error\":", s->torn_bytes);
	if (s->error[0])
		bo_json_cstr(stdout, s->error);
	else
		fputs("null", stdout);
	putchar('}');
}

static void print_counts(const tp_shard *s)
{
	printf("%" PRIu64 " records in %" PRIu64 " transaction%s: %" PRIu64
	       " seat changes, %" PRIu64 " outbox events in %.3f s (%.0f seat changes/s)",
	       s->records, s->batches, s->batches == 1 ? "" : "s", s->changes, s->outbox,
	       tp_seconds(s), tp_rate(s));
}

static void print_human(const tp_shard *s)
{
	printf("shard %" PRIu32 ": %s: ", s->shard, s->error[0] ? "FAILED" : "OK");
	if (s->error[0] && !s->records) {
		fputs("nothing applied (why: on stderr)", stdout);
	} else if (!s->records) {
		fputs("up to date, nothing to apply", stdout);
	} else {
		if (s->records)
			printf("seq %" PRIu64 "..%" PRIu64 ", ", s->checkpoint_before + 1,
			       s->checkpoint);
		print_counts(s);
	}
	if (s->have_checkpoint)
		printf("; the database is at seq %" PRIu64, s->checkpoint);
	putchar('\n');
}

static int check(const replay_opts *o)
{
	if (!o->dsn)
		return replay_usage_error(o->cmd, "to-postgres needs --dsn DSN");
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(o->dsn, &perr);
	if (!opts) {
		int rc = replay_usage_error(o->cmd, "--dsn: not a connection string: %s",
		                            perr ? perr : "out of memory");
		PQfreemem(perr);
		return rc;
	}
	PQconninfoFree(opts);
	return 0;
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	int code = REPLAY_EXIT_OK;
	tp_shard total;
	memset(&total, 0, sizeof total);
	if (o->json)
		fputs("{\"shards\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		tp_shard *s = calloc(1, sizeof *s);
		if (!s) {
			replay_err("out of memory");
			return REPLAY_EXIT_IO;
		}
		s->shard = sl->ids[k];
		int c = tp_one(o, s);
		code = c > code ? c : code;
		tp_add(&total, s);
		if (o->json)
			print_json(s, k == 0);
		else
			print_human(s);
		/* Shown as it goes: a long rebuild of many shards reports each. */
		fflush(stdout);
		free(s);
	}
	if (o->json) {
		fputs("],\"total\":{", stdout);
		print_counts_json(&total);
		printf("},\"ok\":%s}\n", code == REPLAY_EXIT_OK ? "true" : "false");
	} else if (sl->count > 1) {
		fputs("total: ", stdout);
		print_counts(&total);
		putchar('\n');
	}
	return code;
}

const replay_cmd cmd_to_postgres = {
        .name = "to-postgres",
        .usage = usage,
        .options = REPLAY_OPT_PG | REPLAY_OPT_ALLOW_TORN,
        .check = check,
        .run = run,
};
