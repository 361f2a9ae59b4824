/*
 * to_postgres_test.c — proves `boxoffice-replay to-postgres` (the real
 * binary, run as a child process) against a real PostgreSQL
 * (BOXOFFICE_TEST_PG_DSN; skipped loudly without):
 *
 *  1. scratch_equals_live: a durable shard runs a long random command
 *     stream (tests/support/stream.h) while the live committer writes
 *     database A; then to-postgres --from-scratch (small batches, so many
 *     transactions) loads a fresh database B from the journal. A and B are
 *     equal: every table of the schema, row for row, every column except
 *     the times of the transactions (batch_at, updated_at, applied_at),
 *     dumped ordered by all columns and compared as text (the comparison is
 *     shown to catch a one-row difference). B also equals the journal
 *     re-executed (tests/committer/oracle.h). Then: a second run continues
 *     from B's checkpoint and finds nothing to do (B unchanged);
 *     --from-scratch into B (non-empty) is refused, exit 3, B unchanged; a
 *     checkpoint ahead of the journal is refused, exit 1; a corrupt record
 *     half-way is exit 1 naming it, with every record before it applied
 *     (the checkpoint right before it) and none after.
 *  2. continuing_equals_scratch: the same stream, and two databases that
 *     get the first half one way and the rest from to-postgres continuing
 *     from their checkpoint: C from a live committer stopped half-way
 *     (to-postgres then starts from a checkpoint with active holds loaded
 *     from the database), D from to-postgres on a copy of the data
 *     directory taken half-way. Both equal A, the live database. D's second
 *     run meets a torn tail (bytes after the last record, as a crash leaves
 *     them): exit 1 with every record before it applied, then with
 *     --allow-torn-tail exit 0.
 *  3. pruned_journal_refused: with snapshots and a committer the shard
 *     prunes its journal; to-postgres --from-scratch into a fresh database
 *     is refused (exit 1) naming the checkpoint (0), the first seq left and
 *     the snapshot that covers the gap, and writes nothing; continuing the
 *     live database (its checkpoint is in what is left) works.
 *  4. usage: no --dsn, a DSN that does not parse, --batch 0: exit 2 before
 *     anything is read.
 *  5. racing_a_live_committer_doubles_nothing: to-postgres runs into a
 *     database E while a live committer writes the same shard into it:
 *     whichever loses a compare-and-set stops with its message (exit 3 for
 *     the tool), and after a final run E equals A and the journal: nothing
 *     doubled, nothing lost, whichever interleaving came.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "base/clock.h"
#include "committer/committer.h"
#include "shard/shard.h"
#include "tests/committer/oracle.h"
#include "tests/support/json_check.h"
#include "tests/support/pg.h"
#include "tests/support/proc.h"
#include "tests/support/stream.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 60000
#define RUN_DEADLINE_MS 300000
#define STREAM_COMMANDS 8000u
#define DBS_MAX 4

static char data_root[64];
static char half_root[64]; /* test 2: the copy taken half-way */
static char db_dsns[DBS_MAX][PGT_DSN_MAX];
static int db_count;
static shard *the_shard;

/* ---- Databases ---------------------------------------------------------------- */

/* A fresh, empty database; returns its DSN (valid until the teardown,
 * which drops it). */
static const char *fresh_db(void)
{
	cr_assert_lt(db_count, DBS_MAX);
	pgt_create_db("bo_to_pg", db_dsns[db_count], sizeof db_dsns[0]);
	return db_dsns[db_count++];
}

static PGconn *db_connect(const char *dsn)
{
	return pgt_connect(dsn);
}

static void db_exec(const char *dsn, const char *sql)
{
	PGconn *c = pgt_connect(dsn);
	pgt_exec(c, sql);
	PQfinish(c);
}

static PGresult *db_query(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
	return r;
}

/* ---- Comparing databases ---------------------------------------------------------
 * Every base table of schema boxoffice (so a table a later migration adds
 * is compared too), every column but the wall-clock times of the
 * transactions, ordered by all its columns, as text. */

typedef struct text {
	char *s;
	size_t n, cap;
} text;

static void text_add(text *t, const char *s)
{
	size_t k = strlen(s);
	if (t->n + k + 1 > t->cap) {
		t->cap = (t->n + k + 1) * 2;
		t->s = realloc(t->s, t->cap);
		cr_assert_not_null(t->s);
	}
	memcpy(t->s + t->n, s, k + 1);
	t->n += k;
}

static void dump_table(PGconn *c, const char *table, text *out)
{
	char sql[512];
	snprintf(
	        sql, sizeof sql,
	        "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)"
	        " FROM information_schema.columns WHERE table_schema = 'boxoffice'"
	        " AND table_name = '%s' AND column_name NOT IN ('batch_at', 'updated_at', 'applied_at')",
	        table);
	PGresult *r = db_query(c, sql);
	char cols[1024];
	snprintf(cols, sizeof cols, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	char q[2600];
	snprintf(q, sizeof q, "SELECT %s FROM boxoffice.%s ORDER BY %s", cols, table, cols);
	r = db_query(c, q);
	char rows[32];
	snprintf(rows, sizeof rows, "): %d rows\n", PQntuples(r));
	text_add(out, "== ");
	text_add(out, table);
	text_add(out, " (");
	text_add(out, cols);
	text_add(out, rows);
	for (int i = 0; i < PQntuples(r); i++) {
		for (int k = 0; k < PQnfields(r); k++) {
			text_add(out, k ? "\t" : "");
			text_add(out, PQgetisnull(r, i, k) ? "\\N" : PQgetvalue(r, i, k));
		}
		text_add(out, "\n");
	}
	PQclear(r);
}

/* The whole database as text (caller frees). */
static char *dump_db(const char *dsn)
{
	PGconn *c = db_connect(dsn);
	PGresult *r =
	        db_query(c, "SELECT table_name FROM information_schema.tables WHERE table_schema ="
	                    " 'boxoffice' AND table_type = 'BASE TABLE' ORDER BY table_name");
	cr_assert_geq(PQntuples(r), 8, "the schema has fewer tables than expected");
	text t = {0};
	for (int i = 0; i < PQntuples(r); i++)
		dump_table(c, PQgetvalue(r, i, 0), &t);
	PQclear(r);
	PQfinish(c);
	return t.s;
}

/* NULL when equal, else the first line that differs (static buffer). */
static const char *first_difference(const char *a, const char *b)
{
	static char msg[1024];
	size_t line = 1;
	const char *la = a, *lb = b;
	for (; *a && *a == *b; a++, b++)
		if (*a == '\n') {
			line++;
			la = a + 1;
			lb = b + 1;
		}
	if (*a == *b)
		return NULL;
	snprintf(msg, sizeof msg, "line %zu: '%.*s' vs '%.*s'", line, (int)strcspn(la, "\n"), la,
	         (int)strcspn(lb, "\n"), lb);
	return msg;
}

static void assert_same_db(const char *dsn_a, const char *dsn_b, const char *what)
{
	char *a = dump_db(dsn_a), *b = dump_db(dsn_b);
	const char *diff = first_difference(a, b);
	cr_assert_null(diff, "%s: the databases differ at %s", what, diff);
	free(a);
	free(b);
}

/* ---- The shard and the live committer ------------------------------------------------ */

static void setup(void)
{
	(void)pgt_require();
	int rc = tmpdir_make(data_root, sizeof data_root, "bo-to-pg");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
}

static void teardown(void)
{
	shard_free(the_shard);
	the_shard = NULL;
	if (getenv("REPLAY_TEST_KEEP")) { /* to look at by hand */
		cr_log_info("kept %s %s and the databases (REPLAY_TEST_KEEP)", data_root,
		            half_root);
		return;
	}
	if (data_root[0])
		tmpdir_remove(data_root);
	if (half_root[0])
		tmpdir_remove(half_root);
	for (int i = 0; i < db_count; i++)
		pgt_drop_db(db_dsns[i]);
}

TestSuite(to_postgres, .init = setup, .fini = teardown, .timeout = 600);

static shard *open_shard(uint64_t snapshot_every)
{
	the_shard = tstream_open_shard(data_root, snapshot_every);
	return the_shard;
}

static committer *start_committer(shard *s, const char *dsn)
{
	return tstream_start_committer(s, dsn, 0);
}

/* Waits until c applied everything durable, then stops it. */
static void finish_committer(committer *c, shard *s)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	committer_status st;
	for (;;) {
		committer_status_get(c, &st);
		if (st.applied_seq >= shard_durable_seq(s) && st.state == COMMITTER_RUNNING)
			break;
		cr_assert_neq(st.state, COMMITTER_STOPPED, "committer stopped: %s", st.reason);
		cr_assert_lt(bo_clock_ms(), deadline, "committer at %" PRIu64 " of %" PRIu64,
		             st.applied_seq, shard_durable_seq(s));
		usleep(2000);
	}
	committer_stop(c);
}

/* ---- Running the tool --------------------------------------------------------------- */

static tproc_result run_tool(const char *const *args)
{
	const char *bin = getenv("BOXOFFICE_REPLAY");
	cr_assert_not_null(bin, "set BOXOFFICE_REPLAY to the boxoffice-replay binary (meson does)");
	const char *argv[24];
	int n = 0;
	argv[n++] = bin;
	for (int i = 0; args[i]; i++) {
		cr_assert_lt(n, 23);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	tproc_result r;
	int rc = tproc_run(argv, NULL, RUN_DEADLINE_MS, &r);
	cr_assert_eq(rc, 0, "cannot run %s: %s", bin, strerror(-rc));
	cr_assert(!r.timed_out, "boxoffice-replay still ran after %d ms: killed", RUN_DEADLINE_MS);
	cr_assert_neq(r.code, 127, "could not exec %s: %s", bin, r.err);
	cr_assert_lt(r.code, 128, "boxoffice-replay crashed (signal %d); stderr: %s", r.code - 128,
	             r.err);
	const char *san = tproc_sanitizer_report(r.err);
	cr_assert_null(san, "sanitizer report: %s", r.err);
	return r;
}

#define RUN(...) run_tool((const char *const[]){"to-postgres", __VA_ARGS__, NULL})

/* The unsigned number after the first "key": in s. */
static uint64_t json_u64(const char *s, const char *key)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(s, pat);
	cr_assert_not_null(p, "no %s in %s", pat, s);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* Runs to-postgres with --json and the extra args; asserts exit 0 and a
 * valid document. Returns what it applied; *before: the checkpoint it
 * started from (may be NULL). */
static uint64_t load(const char *dir, const char *dsn, const char *extra1, const char *extra2,
                     uint64_t *before)
{
	const char *args[12];
	int n = 0;
	args[n++] = "to-postgres";
	args[n++] = dir;
	args[n++] = "--dsn";
	args[n++] = dsn;
	args[n++] = "--json";
	args[n++] = "--batch";
	args[n++] = "333"; /* many transactions, some cut mid-batch of the shard */
	if (extra1)
		args[n++] = extra1;
	if (extra2)
		args[n++] = extra2;
	args[n] = NULL;
	tproc_result r = run_tool(args);
	cr_assert_eq(r.code, 0, "to-postgres exit %d; stderr: %s; stdout: %s", r.code, r.err,
	             r.out);
	cr_assert(tjson_valid(r.out, r.out_len), "not one JSON document: %s", r.out);
	cr_assert(strstr(r.out, "\"ok\":true"), "%s", r.out);
	uint64_t records = json_u64(r.out, "records");
	if (records > 333)
		cr_assert_geq(json_u64(r.out, "batches"), records / 333, "%s", r.out);
	if (before)
		*before = json_u64(r.out, "checkpoint_before");
	tproc_result_free(&r);
	return records;
}

static uint64_t checkpoint_of(const char *dsn)
{
	PGconn *c = db_connect(dsn);
	long long v =
	        pgt_scalar(c, "SELECT journal_seq FROM boxoffice.checkpoints WHERE shard = 0");
	PQfinish(c);
	return (uint64_t)v;
}

/* Flips a byte in the payload of record seq of shard 0: the reader then
 * stops there with corruption (valid records follow). */
static void corrupt_record(uint64_t seq)
{
	journal_reader *rd;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(data_root, 0, NULL, seq - 1, &rd, err, sizeof err), 0,
	             "%s", err);
	journal_record rec;
	cr_assert_eq(journal_reader_next(rd, &rec), 1);
	cr_assert_eq(rec.seq, seq);
	cr_assert_gt(rec.payload_len, 0);
	int fd = open(rec.file, O_RDWR);
	cr_assert_geq(fd, 0, "%s: %s", rec.file, strerror(errno));
	uint8_t byte = rec.payload[0] ^ 0x5a;
	cr_assert_eq(pwrite(fd, &byte, 1, (off_t)rec.offset + 48),
	             1); /* the payload's first byte */
	close(fd);
	journal_reader_close(rd);
}

/* Writes bytes that are no record after the last record of shard 0, as a
 * write torn by a crash leaves them. */
static void tear_tail(void)
{
	journal_reader *rd;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(data_root, 0, NULL, 0, &rd, err, sizeof err), 0, "%s",
	             err);
	journal_record rec;
	char file[PATH_MAX] = "";
	uint64_t end = 0;
	while (journal_reader_next(rd, &rec) == 1) {
		snprintf(file, sizeof file, "%s", rec.file);
		end = rec.offset + ((48u + rec.payload_len + 7u) & ~7u); /* journal.c's layout */
	}
	journal_reader_close(rd);
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0, "%s: %s", file, strerror(errno));
	static const uint8_t junk[40] = {0xab, 0xcd, 0xef, 0x01, 0x23};
	cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)end), (ssize_t)sizeof junk);
	close(fd);
}

/* ---- 1. From scratch ---------------------------------------------------------------- */

Test(to_postgres, scratch_equals_live)
{
	shard *s = open_shard(0);
	const char *a = fresh_db();
	committer *c = start_committer(s, a);
	tstream_gen g = {.rng = 0x5eed1234abcdull};
	tstream_create_events(s, &g);
	tstream_run(s, &g, STREAM_COMMANDS, 0, NULL);
	finish_committer(c, s);
	shard_stop(s);
	uint64_t durable = shard_durable_seq(s);

	const char *b = fresh_db();
	uint64_t before = 99;
	cr_assert_eq(load(data_root, b, "--from-scratch", NULL, &before), durable);
	cr_assert_eq(before, 0);
	assert_same_db(a, b, "live committer vs to-postgres from scratch");
	oracle o;
	oracle_run(&o, data_root, 0);
	cr_assert_gt(o.causes[2], 0, "no hold expired: the stream proves too little");
	cr_assert_gt(o.causes[3], 0, "no confirm");
	cr_assert_gt(o.causes[4], 0, "no cancel");
	PGconn *db = db_connect(b);
	oracle_check(&o, db, 0);
	PQfinish(db);
	oracle_free(&o);

	/* The comparison sees a one-row difference. */
	char *b_text = dump_db(b);
	db_exec(b, "UPDATE boxoffice.seat_changes SET request_id = request_id + 1"
	           " WHERE (shard, journal_seq, ordinal) = (SELECT shard, journal_seq, ordinal"
	           " FROM boxoffice.seat_changes ORDER BY journal_seq DESC, ordinal DESC LIMIT 1)");
	char *b_changed = dump_db(b);
	cr_assert_not_null(first_difference(b_text, b_changed),
	                   "the comparison missed a changed row");
	free(b_changed);
	db_exec(b, "UPDATE boxoffice.seat_changes SET request_id = request_id - 1"
	           " WHERE (shard, journal_seq, ordinal) = (SELECT shard, journal_seq, ordinal"
	           " FROM boxoffice.seat_changes ORDER BY journal_seq DESC, ordinal DESC LIMIT 1)");

	/* Again, without --from-scratch: it continues from the checkpoint and
	 * finds nothing to do. */
	cr_assert_eq(load(data_root, b, NULL, NULL, &before), 0);
	cr_assert_eq(before, durable);

	/* --from-scratch into a database that holds the shard: refused, nothing
	 * changed. */
	tproc_result r = RUN(data_root, "--dsn", b, "--from-scratch");
	cr_assert_eq(r.code, 3, "exit %d; stderr: %s", r.code, r.err);
	char want[96];
	snprintf(want, sizeof want, "through journal seq %" PRIu64, durable);
	cr_assert(strstr(r.err, "--from-scratch refused") && strstr(r.err, want), "stderr: %s",
	          r.err);
	tproc_result_free(&r);
	char *b_after = dump_db(b);
	const char *diff = first_difference(b_text, b_after);
	cr_assert_null(diff, "a refused run changed the database: %s", diff);
	free(b_after);
	free(b_text);

	/* A checkpoint ahead of the journal: refused, exit 1. */
	db_exec(b, "UPDATE boxoffice.checkpoints SET journal_seq = journal_seq + 1000000");
	r = RUN(data_root, "--dsn", b);
	cr_assert_eq(r.code, 1, "exit %d; stderr: %s", r.code, r.err);
	cr_assert(strstr(r.err, "is ahead of this journal"), "stderr: %s", r.err);
	tproc_result_free(&r);

	/* A corrupt record half-way: exit 1 naming it, and the database gets
	 * every record before it, not one after. */
	uint64_t bad = durable / 2;
	corrupt_record(bad);
	const char *e = fresh_db();
	r = RUN(data_root, "--dsn", e, "--batch", "333");
	cr_assert_eq(r.code, 1, "exit %d; stderr: %s", r.code, r.err);
	snprintf(want, sizeof want, "through seq %" PRIu64 ")", bad - 1);
	cr_assert(strstr(r.err, "corrupt") && strstr(r.err, want), "want \"%s\" in: %s", want,
	          r.err);
	tproc_result_free(&r);
	cr_assert_eq(checkpoint_of(e), bad - 1);
}

/* ---- 2. Continuing from a checkpoint
 * ------------------------------------------------------ */

static committer *half_c;

/* Copies every file of shard-0000 of src into dst (a new directory). */
static void copy_shard_dir(const char *src, const char *dst)
{
	char from[512], to[512];
	snprintf(from, sizeof from, "%s/shard-0000", src);
	snprintf(to, sizeof to, "%s/shard-0000", dst);
	cr_assert_eq(mkdir(to, 0700), 0, "mkdir %s: %s", to, strerror(errno));
	DIR *d = opendir(from);
	cr_assert_not_null(d, "%s: %s", from, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char a[800], b[800];
		snprintf(a, sizeof a, "%s/%s", from, de->d_name);
		snprintf(b, sizeof b, "%s/%s", to, de->d_name);
		size_t len = 0;
		char *bytes = tproc_read_file(a, &len);
		cr_assert_not_null(bytes, "%s: %s", a, strerror(errno));
		int fd = open(b, O_WRONLY | O_CREAT | O_EXCL, 0600);
		cr_assert_geq(fd, 0, "%s: %s", b, strerror(errno));
		cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
		close(fd);
		free(bytes);
	}
	closedir(d);
}

static void at_half(uint32_t done)
{
	if (done < STREAM_COMMANDS / 2 || half_root[0])
		return;
	finish_committer(half_c, the_shard);
	half_c = NULL;
	/* Every result came back, so everything submitted is durable; the
	 * writer may still add an idle tick while this copies, which the copy
	 * then holds whole or as a torn tail (--allow-torn-tail below). */
	cr_assert_eq(tmpdir_make(half_root, sizeof half_root, "bo-to-pg-half"), 0);
	copy_shard_dir(data_root, half_root);
}

Test(to_postgres, continuing_equals_scratch)
{
	shard *s = open_shard(0);
	const char *a = fresh_db(), *c_dsn = fresh_db(), *d_dsn = fresh_db();
	committer *c = start_committer(s, a);
	half_c = start_committer(s, c_dsn);
	tstream_gen g = {.rng = 0xc0ffee77ull};
	tstream_create_events(s, &g);
	tstream_run(s, &g, STREAM_COMMANDS, 100, at_half);
	cr_assert(half_root[0] && !half_c, "the half-way point was never reached");
	finish_committer(c, s);
	shard_stop(s);
	uint64_t durable = shard_durable_seq(s);

	/* C: the live committer's first half, then to-postgres continues. */
	uint64_t half_seq = checkpoint_of(c_dsn), before = 0;
	cr_assert(half_seq > 0 && half_seq < durable, "C stands at %" PRIu64 " of %" PRIu64,
	          half_seq, durable);
	PGconn *db = db_connect(c_dsn);
	long long held =
	        pgt_scalar(db, "SELECT count(*) FROM boxoffice.holds WHERE state = 'held'");
	PQfinish(db);
	/* The stream is the same every run and C stopped at a durable point
	 * of it: always the same holds, some of them still to expire. */
	cr_assert_gt(held, 0, "no active hold at C's checkpoint: loading them proves nothing");
	cr_assert_eq(load(data_root, c_dsn, NULL, NULL, &before), durable - half_seq);
	cr_assert_eq(before, half_seq);
	assert_same_db(a, c_dsn, "live committer vs committer half + to-postgres rest");

	/* D: to-postgres on the half-way copy, then on the whole journal. */
	uint64_t first = load(half_root, d_dsn, "--from-scratch", "--allow-torn-tail", NULL);
	cr_assert(first > 0 && first < durable, "%" PRIu64 " of %" PRIu64, first, durable);
	/* The whole journal, ending in a torn tail as after a crash: every
	 * record before it is applied, and the run fails unless told the tail
	 * is expected. */
	tear_tail();
	tproc_result r = RUN(data_root, "--dsn", d_dsn, "--json");
	cr_assert_eq(r.code, 1, "exit %d; stderr: %s", r.code, r.err);
	cr_assert(strstr(r.err, "torn_tail"), "stderr: %s", r.err);
	cr_assert(tjson_valid(r.out, r.out_len) && strstr(r.out, "\"ok\":false") &&
	                  strstr(r.out, "\"error\":\"torn_tail: "),
	          "%s", r.out);
	cr_assert_eq(json_u64(r.out, "checkpoint_before"), first);
	cr_assert_eq(json_u64(r.out, "records"), durable - first);
	tproc_result_free(&r);
	cr_assert_eq(load(data_root, d_dsn, "--allow-torn-tail", NULL, &before), 0);
	cr_assert_eq(before, durable);
	assert_same_db(a, d_dsn, "live committer vs to-postgres in two runs");
}

/* ---- 3. Pruned journals -------------------------------------------------------------- */

/* The first seq of the oldest segment left, by name. */
static uint64_t first_segment(const char *shard_dir)
{
	DIR *d = opendir(shard_dir);
	cr_assert_not_null(d);
	uint64_t first = UINT64_MAX;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n == 24 && strcmp(de->d_name + 20, ".seg") == 0) {
			uint64_t v = strtoull(de->d_name, NULL, 10);
			first = v < first ? v : first;
		}
	}
	closedir(d);
	return first;
}

Test(to_postgres, pruned_journal_refused)
{
	shard *s = open_shard(300);
	const char *a = fresh_db();
	committer *c = start_committer(s, a);
	tstream_gen g = {.rng = 0xfeedull};
	tstream_create_events(s, &g);
	tstream_run(s, &g, STREAM_COMMANDS, 0, NULL);
	finish_committer(c, s);
	/* A holds everything so far and the shard may prune up to it; but a
	 * prune happens at a snapshot, and the last ones may have come before
	 * the committer got there. Two more snapshots (the second one started
	 * after the committer's position was final) prune up to A's
	 * checkpoint, for sure. */
	uint64_t applied = checkpoint_of(a);
	shard_stats ss;
	shard_stats_get(s, &ss);
	const uint64_t snaps = ss.snapshots;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (ss.snapshots < snaps + 2) {
		cr_assert_lt(bo_clock_ms(), deadline, "no snapshot came");
		tstream_run(s, &g, 100, 0, NULL);
		shard_stats_get(s, &ss);
	}
	shard_stop(s);
	char shard_dir[128];
	snprintf(shard_dir, sizeof shard_dir, "%s/shard-0000", data_root);
	uint64_t first = first_segment(shard_dir);
	cr_assert(first > 1 && first <= applied + 1,
	          "first segment %" PRIu64 " (A at %" PRIu64 "): not pruned as the test needs",
	          first, applied);

	const char *b = fresh_db();
	tproc_result r = RUN(data_root, "--dsn", b, "--from-scratch");
	cr_assert_eq(r.code, 1, "exit %d; stderr: %s", r.code, r.err);
	char want[384];
	snprintf(want, sizeof want,
	         "checkpoint is seq 0 but the journal in %s starts at seq %" PRIu64, shard_dir,
	         first);
	cr_assert(strstr(r.err, "pruned") && strstr(r.err, want), "want \"%s\" in: %s", want,
	          r.err);
	cr_assert(strstr(r.err, "/snap-") && strstr(r.err, "covers the gap"),
	          "no snapshot named: %s", r.err);
	snprintf(want, sizeof want, "needs records 1..%" PRIu64, first - 1);
	cr_assert(strstr(r.err, want), "want \"%s\" in: %s", want, r.err);
	tproc_result_free(&r);
	cr_assert_eq(checkpoint_of(b), 0, "a refused load moved the checkpoint");
	PGconn *db = db_connect(b);
	cr_assert_eq(pgt_scalar(db, "SELECT count(*) FROM boxoffice.events"), 0,
	             "a refused load wrote rows");
	PQfinish(db);

	/* The live database's checkpoint is inside what is left: it continues. */
	uint64_t before = 0;
	cr_assert_eq(load(data_root, a, NULL, NULL, &before), shard_durable_seq(s) - applied);
	cr_assert_eq(before, applied);
}

/* ---- 5. Racing a live committer
 * ----------------------------------------------------------- */

static const char *race_dsn;
static char race_log[600];
static pid_t race_pid;

static void start_race(uint32_t done)
{
	if (done < STREAM_COMMANDS / 4 || race_pid)
		return;
	const char *bin = getenv("BOXOFFICE_REPLAY");
	cr_assert_not_null(bin, "set BOXOFFICE_REPLAY to the boxoffice-replay binary (meson does)");
	/* The live journal may end in a unit being written: a torn tail there
	 * is the end of what is durable so far, not damage. */
	const char *argv[] = {bin,       "to-postgres", data_root,           "--dsn", race_dsn,
	                      "--batch", "50",          "--allow-torn-tail", NULL};
	snprintf(race_log, sizeof race_log, "%s/to-postgres.log", half_root);
	cr_assert_eq(tproc_spawn(argv, race_log, &race_pid), 0);
}

Test(to_postgres, racing_a_live_committer_doubles_nothing)
{
	shard *s = open_shard(0);
	const char *a = fresh_db();
	race_dsn = fresh_db();
	cr_assert_eq(tmpdir_make(half_root, sizeof half_root, "bo-to-pg-race"), 0);
	committer *ca = start_committer(s, a), *ce = start_committer(s, race_dsn);
	tstream_gen g = {.rng = 0xace5ull};
	tstream_create_events(s, &g);
	tstream_run(s, &g, STREAM_COMMANDS, 100, start_race);
	cr_assert_neq(race_pid, 0, "the race never started");
	finish_committer(ca, s);

	/* Both wrote the same shard into E, each batch with the checkpoint's
	 * compare-and-set: either may have lost a round (and stopped with
	 * the compare-and-set's message), neither may have doubled a record. */
	int status = 0;
	cr_assert_eq(tproc_wait(race_pid, RUN_DEADLINE_MS, &status), 0, "to-postgres hangs");
	char *log = tproc_read_file(race_log, NULL);
	cr_assert_not_null(log);
	cr_assert_null(tproc_sanitizer_report(log), "sanitizer report: %s", log);
	int tp_lost = WIFEXITED(status) && WEXITSTATUS(status) == 3;
	cr_assert(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || tp_lost),
	          "to-postgres: status %d: %s", status, log);
	if (tp_lost)
		cr_assert(strstr(log, "another committer is writing this shard"), "%s", log);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	committer_status st;
	for (;;) {
		committer_status_get(ce, &st);
		if (st.state == COMMITTER_STOPPED ||
		    (st.state == COMMITTER_RUNNING && st.applied_seq >= shard_durable_seq(s)))
			break;
		cr_assert_lt(bo_clock_ms(), deadline, "committer E: %s",
		             committer_state_str(st.state));
		usleep(2000);
	}
	int c_lost = st.state == COMMITTER_STOPPED;
	if (c_lost)
		cr_assert(strstr(st.reason, "another committer is writing this shard"), "%s",
		          st.reason);
	cr_log_info("race: to-postgres %s, the committer %s", tp_lost ? "lost" : "finished",
	            c_lost ? "lost" : "finished");
	committer_stop(ce);
	free(log);
	shard_stop(s);

	/* Whatever the race left, a last run completes E: equal to A. */
	load(data_root, race_dsn, NULL, NULL, NULL);
	assert_same_db(a, race_dsn, "live committer vs a database two writers raced on");
	oracle o;
	oracle_run(&o, data_root, 0);
	PGconn *db = db_connect(race_dsn);
	oracle_check(&o, db, 0);
	PQfinish(db);
	oracle_free(&o);
}

/* ---- 4. Usage ---------------------------------------------------------------------------
 */

/* Runs a bad command line: exit 2 with `says` on stderr. */
static void expect_usage(const char *const *args, const char *says)
{
	tproc_result r = run_tool(args);
	cr_assert_eq(r.code, 2, "%s: exit %d; stderr: %s", says, r.code, r.err);
	cr_assert(strstr(r.err, says), "want \"%s\" in: %s", says, r.err);
	tproc_result_free(&r);
}

Test(to_postgres_usage, bad_command_lines_exit_2)
{
	/* The directory does not exist: a usage error comes before any look at it. */
	const char *dir = "/nonexistent/bo-to-pg";
	expect_usage((const char *const[]){"to-postgres", dir, NULL}, "needs --dsn");
	expect_usage(
	        (const char *const[]){"to-postgres", dir, "--dsn", "host=/x nosuchoption=1", NULL},
	        "--dsn: not a connection string");
	expect_usage(
	        (const char *const[]){"to-postgres", dir, "--dsn", "host=/x", "--batch", "0", NULL},
	        "--batch 0 is out of range");
	expect_usage((const char *const[]){"to-postgres", dir, "--dsn", "", NULL}, "--dsn needs");
	expect_usage(
	        (const char *const[]){"to-postgres", dir, "--dsn", "host=/x", "--at", "3", NULL},
	        "unknown option '--at' for to-postgres");
	expect_usage((const char *const[]){"verify", dir, "--dsn", "host=/x", NULL},
	             "unknown option '--dsn' for verify");
}
