/*
 * committer_test.c — proves the PostgreSQL committer (committer/committer.h)
 * against a real PostgreSQL (BOXOFFICE_TEST_PG_DSN; skipped loudly without):
 *
 *  1. stream: long random command streams (holds of every kind, extends,
 *     releases, confirms of active and of expired holds, cancels, blocks,
 *     unblocks, repeats and conflicts; a test clock that makes holds
 *     expire) go through a durable shard while the committer follows it;
 *     once it has applied everything durable, the database equals a fresh
 *     engine re-executing the journal (oracle.h) row for row, seat_changes
 *     holds exactly one row per change (per cause) and the outbox one
 *     event per domain change with gap-free positions. Several seeds.
 *  2. restarts: the same, with the committer stopped and started again
 *     every few hundred commands (a new session reads its checkpoint and
 *     active holds back from the database): nothing lost, nothing twice
 *     (seat_changes' primary key (shard, seq, ordinal) would refuse a
 *     record applied twice, and the counts must match).
 *  3. retention: with snapshots every 500 records, the journal keeps every
 *     record the committer has not applied (a committer that never runs
 *     keeps everything).
 *  4. faults that no retry cures stop the committer with a clear reason
 *     while the shard keeps acknowledging: an unparsable DSN, a database
 *     that does not exist, a schema newer than the binary, a checkpoint
 *     ahead of the journal, a role without the privilege to create the
 *     schema, a read-only database; once the cause is gone a new committer
 *     catches up and the database equals the journal.
 *  5. two copies, one database (a cluster's failover): two committers
 *     follow two copies of one journal into one database at once, made to
 *     race for the same checkpoint (a row lock holds both at its
 *     compare-and-set, then lets go; batches of 16 records keep them
 *     racing). With committer_config.shared each loser starts again from
 *     the checkpoint the winner moved (reading it and the active holds in
 *     one snapshot: the other may commit in between), both end running,
 *     and the database equals the journal, every record once; without it
 *     the loser stops, naming the other committer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "base/clock.h"
#include "committer/committer.h"
#include "shard/shard.h"
#include "tests/committer/oracle.h"
#include "tests/support/cmd.h"
#include "tests/support/pg.h"
#include "tests/support/stream.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 60000
#define BATCH_RECORDS 512u

static char data_root[64];
static char db_dsn[PGT_DSN_MAX];
static char db_name[64];
static shard *the_shard;
/* Test 5's second copy of the journal, removed by teardown. */
static char copy_root[64];
static shard *copy_shard;
/* ---- Databases -------------------------------------------------------------- */

static const char *admin_dsn(void) { return pgt_require(); }

static void admin_exec(const char *sql)
{
	PGconn *c = pgt_connect(admin_dsn());
	pgt_exec(c, sql);
	PQfinish(c);
}

/* A fresh database; db_dsn and db_name name it. */
static void fresh_db(void)
{
	cr_assert_eq(pgt_create_db("bo_committer", db_dsn, sizeof(db_dsn)), 0);
	PGconn *c = pgt_connect(db_dsn);
	snprintf(db_name, sizeof(db_name), "%s", PQdb(c));
	PQfinish(c);
}

static PGconn *db_connect(void) { return pgt_connect(db_dsn); }
static void db_exec(PGconn *c, const char *sql) { pgt_exec(c, sql); }

/* ---- Fixture ------------------------------------------------------------------ */

static void setup(void)
{
	(void)admin_dsn();
	int rc = tmpdir_make(data_root, sizeof(data_root), "bo-committer");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	fresh_db();
}

static void teardown(void)
{
	shard_free(the_shard);
	the_shard = NULL;
	shard_free(copy_shard);
	copy_shard = NULL;
	if (copy_root[0])
		tmpdir_remove(copy_root);
	copy_root[0] = '\0';
	if (data_root[0])
		tmpdir_remove(data_root);
	if (db_name[0])
		pgt_drop_db(db_dsn);
	db_name[0] = '\0';
}

TestSuite(committer, .init = setup, .fini = teardown, .timeout = 300);

static shard *open_shard(uint64_t snapshot_every)
{
	the_shard = tstream_open_shard(data_root, snapshot_every);
	return the_shard;
}

static committer *start_committer(shard *s, const char *dsn)
{
	return tstream_start_committer(s, dsn, BATCH_RECORDS /* many transactions whatever the timing */);
}

/* Waits until the committer has applied everything durable (or stopped). */
static void wait_applied(committer *c, shard *s)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	committer_status st;
	for (;;) {
		committer_status_get(c, &st);
		if (st.applied_seq >= shard_durable_seq(s) && st.state == COMMITTER_RUNNING)
			return;
		cr_assert_neq(st.state, COMMITTER_STOPPED, "committer stopped: %s", st.reason);
		cr_assert_lt(bo_clock_ms(), deadline, "committer at %" PRIu64 " of %" PRIu64 " (%s: %s)",
			     st.applied_seq, shard_durable_seq(s), committer_state_str(st.state), st.reason);
		usleep(2000);
	}
}

/* Waits until the committer stopped; returns its reason. */
static void wait_stopped(committer *c, char *reason, size_t cap)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	committer_status st;
	for (;;) {
		committer_status_get(c, &st);
		if (st.state == COMMITTER_STOPPED) {
			snprintf(reason, cap, "%s", st.reason);
			return;
		}
		cr_assert_lt(bo_clock_ms(), deadline, "the committer never stopped (%s: %s)",
			     committer_state_str(st.state), st.reason);
		usleep(2000);
	}
}

static void check_against_journal(shard *s)
{
	shard_stop(s);
	oracle o;
	oracle_run(&o, data_root, 0);
	cr_assert_eq(o.last_seq, shard_durable_seq(s));
	cr_assert_gt(o.causes[2], 0, "the stream made no hold expire: it proves too little");
	cr_assert_gt(o.causes[3], 0, "no confirm");
	cr_log_info("journal: %" PRIu64 " records, %" PRIu64 " changes (%" PRIu64 " expiries, %" PRIu64 " confirms), %" PRIu64 " outbox events", o.last_seq, o.changes, o.causes[2], o.causes[3], o.outbox);
	PGconn *db = db_connect();
	oracle_check(&o, db, 0);
	PQfinish(db);
	oracle_free(&o);
}

/* ---- 1. stream ---------------------------------------------------------------- */

Test(committer, stream_equals_journal)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		if (seed > 1) {
			teardown();
			setup();
		}
		shard *s = open_shard(0);
		committer *c = start_committer(s, db_dsn);
		tstream_gen g = {.rng = seed * 0x9e3779b97f4a7c15ull};
		tstream_create_events(s, &g);
		tstream_run(s, &g, 4000, 0, NULL);
		wait_applied(c, s);
		committer_status st;
		committer_status_get(c, &st);
		cr_assert_eq(st.lag_records, 0);
		cr_assert_geq(st.batches, st.applied_seq / BATCH_RECORDS, "batches larger than batch_records");
		committer_stop(c);
		check_against_journal(s);
	}
}

/* ---- 2. restarts ---------------------------------------------------------------- */

static committer *restart_c;

static void restart_committer(uint32_t k)
{
	(void)k;
	committer_stop(restart_c);
	restart_c = start_committer(the_shard, db_dsn);
}

Test(committer, restarts_lose_nothing_and_repeat_nothing)
{
	shard *s = open_shard(0);
	restart_c = start_committer(s, db_dsn);
	tstream_gen g = {.rng = 77};
	tstream_create_events(s, &g);
	tstream_run(s, &g, 6000, 150, restart_committer);
	wait_applied(restart_c, s);
	committer_stop(restart_c);
	check_against_journal(s);
}

/* ---- 3. retention ------------------------------------------------------------------ */

static uint64_t first_segment_seq(void)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(data_root, 0, NULL, 0, &r, err, sizeof(err)), 0, "%s", err);
	journal_record rec;
	cr_assert_eq(journal_reader_next(r, &rec), 1);
	uint64_t seq = rec.seq;
	journal_reader_close(r);
	return seq;
}

Test(committer, journal_kept_until_applied)
{
	shard *s = open_shard(500);
	tstream_gen g = {.rng = 5};
	tstream_create_events(s, &g);
	tstream_run(s, &g, 5000, 0, NULL);
	/* No committer yet: snapshots were taken, nothing was pruned. The
	 * keeper installs a snapshot (and prunes) before it counts it: wait
	 * for the count, then look at the journal. */
	shard_stats ss;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	for (;;) {
		shard_stats_get(s, &ss);
		if (ss.snapshots > 0)
			break;
		cr_assert_lt(bo_clock_ms(), deadline, "no snapshot was taken: the test proves nothing");
		usleep(2000);
	}
	cr_assert_eq(first_segment_seq(), 1, "segments were pruned before the committer applied them");
	committer *c = start_committer(s, db_dsn);
	wait_applied(c, s);
	committer_stop(c);
	check_against_journal(s);
}

/* ---- 4. faults ---------------------------------------------------------------------- */

/* Starts a committer with `dsn`, waits for it to stop, checks the reason
 * contains `want`, and that the shard still acknowledges. */
static void expect_stop(shard *s, const char *dsn, const char *want)
{
	committer *c = start_committer(s, dsn);
	char reason[COMMITTER_REASON_LEN];
	wait_stopped(c, reason, sizeof(reason));
	cr_assert(strstr(reason, want), "reason \"%s\" does not say \"%s\"", reason, want);
	tstream_gen g = {.rng = 3, .request = 100000};
	bo_cmd h = tcmd_hold_best(50, ++g.request, 100, 0, 1, 5000);
	tstream_submit_wait(s, &g, &h, 1);
	committer_stop(c);
}

Test(committer, faults_stop_with_a_reason)
{
	shard *s = open_shard(0);
	tstream_gen g = {.rng = 9};
	tstream_create_events(s, &g);
	expect_stop(s, "host=/nonexistent nosuchoption=1", "invalid DSN");
	char dsn[PGT_DSN_MAX];
	pgt_dsn_set(admin_dsn(), "dbname", "bo_no_such_database", dsn, sizeof(dsn));
	expect_stop(s, dsn, "does not exist");

	/* A schema from the future. */
	committer *c = start_committer(s, db_dsn);
	wait_applied(c, s);
	committer_stop(c);
	PGconn *db = db_connect();
	db_exec(db, "INSERT INTO boxoffice.schema_version (version, name) VALUES (999, '0999_future.sql')");
	expect_stop(s, db_dsn, "newer than this binary");
	db_exec(db, "DELETE FROM boxoffice.schema_version WHERE version = 999");

	/* A checkpoint ahead of the journal. */
	char sql[256];
	db_exec(db, "UPDATE boxoffice.checkpoints SET journal_seq = journal_seq + 1000000");
	expect_stop(s, db_dsn, "ahead of this shard's journal");
	db_exec(db, "UPDATE boxoffice.checkpoints SET journal_seq = journal_seq - 1000000");
	PQfinish(db);

	/* Active holds the database says are malformed (rows are outside
	 * input too): a seat hold whose quantity is not its seat count. */
	db = db_connect();
	long long held = pgt_scalar(db, "SELECT count(*) FROM boxoffice.holds WHERE state = 'held'");
	cr_assert_gt(held, 0, "no active hold in the database: the check proves nothing");
	db_exec(db, "UPDATE boxoffice.holds SET quantity = quantity + 1000000 WHERE state = 'held'");
	expect_stop(s, db_dsn, "bad seats, pool or quantity in the database");
	db_exec(db, "UPDATE boxoffice.holds SET quantity = quantity - 1000000 WHERE state = 'held'");
	PQfinish(db);

	/* A role that may not create the schema. */
	char role[64];
	snprintf(role, sizeof(role), "bo_noperm_%d", (int)getpid());
	snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
	admin_exec(sql);
	snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN", role);
	admin_exec(sql);
	char other[96];
	snprintf(other, sizeof(other), "%s_db", db_name);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", other);
	admin_exec(sql);
	char tmp[PGT_DSN_MAX];
	pgt_dsn_set(admin_dsn(), "dbname", other, tmp, sizeof(tmp));
	pgt_dsn_set(tmp, "user", role, dsn, sizeof(dsn));
	expect_stop(s, dsn, "missing privileges");
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", other);
	admin_exec(sql);
	snprintf(sql, sizeof(sql), "DROP ROLE %s", role);
	admin_exec(sql);

	/* A read-only database. */
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET default_transaction_read_only = on", db_name);
	admin_exec(sql);
	expect_stop(s, db_dsn, "read-only");
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s RESET default_transaction_read_only", db_name);
	admin_exec(sql);

	/* And once the cause is gone, a new committer catches up: nothing was lost. */
	c = start_committer(s, db_dsn);
	wait_applied(c, s);
	committer_stop(c);
	shard_stop(s);
	oracle o;
	oracle_run(&o, data_root, 0);
	db = db_connect();
	oracle_check(&o, db, 0);
	PQfinish(db);
	oracle_free(&o);
}

/* ---- 5. two copies, one database ------------------------------------------------------ */

static committer *start_shared(shard *s, int shared, uint32_t batch_records)
{
	committer_config cc;
	committer_config_default(&cc);
	cc.dsn = db_dsn;
	cc.batch_records = batch_records;
	cc.retry_min_ms = 20;
	cc.retry_max_ms = 200;
	cc.shared = shared;
	committer *c = NULL;
	char err[256];
	cr_assert_eq(committer_start(s, &cc, &c, err, sizeof(err)), 0, "%s", err);
	return c;
}

/* Waits until n sessions of the test's database wait for a lock. */
static void wait_lock_waiters(PGconn *db, long long n)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock'", db_name);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (pgt_scalar(db, sql) < n) {
		cr_assert_lt(bo_clock_ms(), deadline, "the committers never reached the checkpoint's lock");
		usleep(2000);
	}
}

static void two_copies(int shared)
{
	/* The database knows the first half; both copies hold both halves. */
	shard *s = open_shard(0);
	tstream_gen g = {.rng = 31};
	tstream_create_events(s, &g);
	tstream_run(s, &g, 1500, 0, NULL);
	committer *c = start_shared(s, shared, BATCH_RECORDS);
	wait_applied(c, s);
	committer_stop(c);
	tstream_run(s, &g, 3000, 0, NULL);
	shard_stop(s);
	char cmd[256];
	cr_assert_eq(tmpdir_make(copy_root, sizeof(copy_root), "bo-committer-copy"), 0);
	snprintf(cmd, sizeof(cmd), "cp -a '%s/shard-0000' '%s/'", data_root, copy_root);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	shard *s2 = copy_shard = tstream_open_shard(copy_root, 0);
	cr_assert_eq(shard_durable_seq(s2), shard_durable_seq(s));

	/* Both committers read the checkpoint, then wait on its row. Small
	 * batches then keep them racing: each lost compare-and-set starts a
	 * session again (checkpoint and active holds read back) while the
	 * other commits. */
	PGconn *lk = db_connect(), *db = db_connect();
	db_exec(lk, "BEGIN; SELECT 1 FROM boxoffice.checkpoints WHERE shard = 0 FOR UPDATE");
	committer *a = start_shared(s, shared, 16), *b = start_shared(s2, shared, 16);
	wait_lock_waiters(db, 2);
	db_exec(lk, "COMMIT");
	PQfinish(lk);
	PQfinish(db);
	committer_status sa, sb;
	if (shared) {
		wait_applied(a, s);
		wait_applied(b, s2);
		committer_status_get(a, &sa);
		committer_status_get(b, &sb);
		cr_assert_geq(sa.retries + sb.retries, 1, "neither committer lost the checkpoint: the test proves nothing");
		cr_assert_leq(sa.carried_seq, shard_released_seq(s));
		cr_assert_leq(sb.carried_seq, shard_released_seq(s2));
		cr_log_info("shared: carried %" PRIu64 " and %" PRIu64 ", restarts %" PRIu64 " and %" PRIu64,
			    sa.carried_seq, sb.carried_seq, sa.retries, sb.retries);
	} else {
		/* One of them wins and finishes; the other stops, saying why. */
		const int64_t deadline = bo_clock_ms() + WAIT_MS;
		for (;;) {
			committer_status_get(a, &sa);
			committer_status_get(b, &sb);
			if (sa.state == COMMITTER_STOPPED || sb.state == COMMITTER_STOPPED)
				break;
			cr_assert_lt(bo_clock_ms(), deadline, "neither committer stopped without shared");
			usleep(2000);
		}
		committer_status *lost = sa.state == COMMITTER_STOPPED ? &sa : &sb;
		cr_assert(strstr(lost->reason, "another committer"), "reason: %s", lost->reason);
		wait_applied(sa.state == COMMITTER_STOPPED ? b : a, sa.state == COMMITTER_STOPPED ? s2 : s);
	}
	committer_stop(a);
	committer_stop(b);
	oracle o;
	oracle_run(&o, data_root, 0);
	db = db_connect();
	oracle_check(&o, db, 0);
	PQfinish(db);
	oracle_free(&o);
}

Test(committer, two_copies_shared_checkpoint) { two_copies(1); }

Test(committer, two_copies_not_shared_stops_one) { two_copies(0); }
