/*
 * faults_test.c — the PostgreSQL committer under process-level faults, with
 * a real PostgreSQL (BOXOFFICE_TEST_PG_DSN; skipped loudly without). The
 * process under test is committer_child.c: a durable shard, its committer
 * and the committer tests' random command stream (tests/support/stream_gen.h).
 *
 *  1. kill cycles: the child is SIGKILLed (the whole "server": shard and
 *     committer at once) and restarted on the same journal (recovery),
 *     BO_KILL_CYCLES times (100 by default, CI; BO_KILL_SEED picks the
 *     moments), each run with batches of 32, 256 or 8192 records at most
 *     (small ones make a catch-up many transactions back to back). The
 *     moment of the kill: K (1..5) commits plus 0..3 ms; or 0..30 ms after
 *     the child opened its shard (connecting, migrating, catching up); or,
 *     after a first commit, as soon as its session shows a write
 *     transaction open. Each cycle: the child's batches follow each other
 *     from the checkpoint without a gap or an overlap, the database's
 *     checkpoint covers every commit the child reported, the recovered
 *     journal covers the checkpoint. Just before each kill the test
 *     samples the child's session: a write transaction open then that
 *     ended aborted is a batch the kill cut mid-transaction — some must
 *     have been (else the test proved nothing about mid-batch kills). At
 *     the end a last child applies everything durable, and the database
 *     must equal a fresh engine re-executing the journal (oracle.h): every
 *     seat and pool, seat_changes one row per change (per cause: a record
 *     applied twice or lost shows), the outbox gap-free with one event per
 *     domain change and journal_seq non-decreasing with position.
 *     A LISTEN consumer, as the platform's workers do it (LISTEN
 *     boxoffice_inventory; on each '<shard>:<position>' read
 *     inventory_events after its last position), runs through all the
 *     cycles: it sees every position 1..N exactly once, in order, journal
 *     order, and never a notification of a position it cannot read yet.
 *  2. outage: PostgreSQL (a private cluster: stopping the shared one would
 *     break the tests running beside this one) stops (fast shutdown, as
 *     pg_ctl stop -m fast) for 30 s under load. The shard keeps
 *     acknowledging and stays healthy, the committer goes retrying, its
 *     applied position stands still and its lag grows; once PostgreSQL is
 *     back the lag returns to normal, the database equals the journal, and
 *     the committer logged "retrying" once, not once per retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "base/clock.h"
#include "tests/committer/oracle.h"
#include "tests/support/pg.h"
#include "tests/support/proc.h"
#include "tests/support/rng.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 60000
#define KILL_CYCLES_DEFAULT 100u
#define KILL_RATE 5000   /* commands per second in the kill cycles */
#define OUTAGE_MS 30000  /* the 30 s: do not shorten it */
#define OUTAGE_RATE 2000 /* commands per second through the outage */
#define OUTAGE_STATUS_MS 50
#define LINE_CAP 512

static char data_root[64];
static char log_path[128];
static char db_dsn[PGT_DSN_MAX]; /* "": no database of this test */

/* ---- Databases and directories -------------------------------------------- */

/* One row, one column, as text into out (NULL value or no row: ""). */
static void q_text(PGconn *db, char *out, size_t cap, const char *sql, const char *param)
{
	PGresult *r =
	        PQexecParams(db, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(db));
	snprintf(out, cap, "%s",
	         PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
}

static long long q_int(PGconn *db, const char *sql, const char *param)
{
	char v[64];
	q_text(db, v, sizeof(v), sql, param);
	cr_assert(v[0], "%s: no value", sql);
	return strtoll(v, NULL, 10);
}

static void data_setup(void)
{
	int rc = tmpdir_make(data_root, sizeof(data_root), "bo-faults");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	snprintf(log_path, sizeof(log_path), "%s/child.log", data_root);
}

static void kill_setup(void)
{
	pgt_require();
	data_setup();
	pgt_create_db("bo_faults", db_dsn, sizeof(db_dsn));
}

/* ---- The child (committer_child.c) ------------------------------------------- */

typedef struct kid {
	pid_t pid;
	int out; /* read end of its stdout */
	int eof;
	size_t len;
	char buf[1 << 16];
} kid;

static const char *child_path(void)
{
	const char *p = getenv("BOXOFFICE_COMMITTER_CHILD");
	cr_assert(p && *p, "BOXOFFICE_COMMITTER_CHILD is not set (meson sets it)");
	return p;
}

/* Starts the child with `args` (NULL-terminated, after DIR and DSN):
 * stdout to a pipe we read lines from, stderr appended to log_path; it
 * dies with this process. */
static void kid_start(kid *k, const char *dsn, const char *const *args)
{
	const char *argv[24] = {child_path(), data_root, dsn};
	size_t n = 3;
	for (; args[n - 3]; n++) {
		cr_assert_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
		argv[n] = args[n - 3];
	}
	argv[n] = NULL;
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	int err = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_geq(err, 0, "%s: %s", log_path, strerror(errno));
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(err, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	close(err);
	k->pid = pid;
	k->out = p[0];
	k->eof = 0;
	k->len = 0;
}

/* The next line of the child's stdout, without its '\n'. Returns 1; 0 at
 * the end of its output; -ETIMEDOUT when deadline (bo_clock_ms) passed. */
static int kid_line(kid *k, char *line, size_t cap, int64_t deadline)
{
	for (;;) {
		char *nl = memchr(k->buf, '\n', k->len);
		if (nl) {
			size_t n = (size_t)(nl - k->buf);
			snprintf(line, cap, "%.*s", (int)n, k->buf);
			k->len -= n + 1;
			memmove(k->buf, nl + 1, k->len);
			return 1;
		}
		if (k->eof)
			return 0;
		cr_assert_lt(k->len, sizeof(k->buf), "a line longer than %zu bytes",
		             sizeof(k->buf));
		int64_t left = deadline - bo_clock_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = k->out, .events = POLLIN};
		if (poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left) <= 0)
			continue;
		ssize_t r = read(k->out, k->buf + k->len, sizeof(k->buf) - k->len);
		if (r > 0)
			k->len += (size_t)r;
		else if (r == 0 || errno != EINTR)
			k->eof = 1;
	}
}

/* Fails the test with the child's stderr when it said "fail" or ended. */
static void kid_check_line(int rc, const char *line, const char *waiting_for)
{
	if (rc == 1 && strncmp(line, "fail ", 5) != 0)
		return;
	tproc_dump_tail(log_path, 4000);
	cr_assert_fail("while waiting for %s, the child %s%s", waiting_for,
	               rc == 1   ? "failed: "
	               : rc == 0 ? "ended"
	                         : "said nothing in time",
	               rc == 1 ? line + 5 : "");
}

/* Reaps the child (it ended or is ending); returns its wait status. */
static int kid_reap(kid *k)
{
	int status = 0;
	int rc = tproc_wait(k->pid, WAIT_MS, &status);
	cr_assert_eq(rc, 0, "the child %d did not end: %s", (int)k->pid, strerror(-rc));
	close(k->out);
	k->pid = 0;
	return status;
}

/* Reads the child's lines to its "drained" line and its exit 0. */
static void kid_finish(kid *k, uint64_t *applied)
{
	char line[LINE_CAP];
	int rc;
	while ((rc = kid_line(k, line, sizeof(line), bo_clock_ms() + 3 * WAIT_MS)) == 1 &&
	       strncmp(line, "drained ", 8) != 0)
		kid_check_line(rc, line, "the drain");
	kid_check_line(rc, line, "the drain");
	cr_assert_eq(sscanf(line, "drained %" SCNu64, applied), 1, "%s", line);
	int status = kid_reap(k);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the draining child ended with status 0x%x", status);
}

/* No sanitizer spoke on the children's stderr (the killed ones cannot:
 * the draining one ran the same code to its end). */
static void check_child_log(void)
{
	char *text = tproc_read_file(log_path, NULL);
	cr_assert_not_null(text, "%s: %s", log_path, strerror(errno));
	const char *report = tproc_sanitizer_report(text);
	if (report)
		tproc_dump_tail(log_path, 8000);
	cr_assert_null(report, "a sanitizer report in the child's stderr");
	free(text);
}

/* ---- Outbox checks ------------------------------------------------------------ */

/* journal_seq never goes back as the position grows: the outbox is in
 * journal order. */
static void check_outbox_order(PGconn *db)
{
	cr_assert_eq(
	        q_int(db,
	              "SELECT count(*) FROM (SELECT journal_seq < lag(journal_seq) OVER (ORDER BY position) AS back"
	              " FROM boxoffice.inventory_events WHERE shard = 0) t WHERE back",
	              NULL),
	        0, "outbox events out of journal order");
}

/* ---- A LISTEN consumer ----------------------------------------------------------- */

/* What a platform worker does (schemas/: LISTEN, then read after its last
 * position on every notification). Runs on a thread of its own; a fault
 * goes into err (Criterion asserts only on the test's thread). */
typedef struct consumer {
	char dsn[PGT_DSN_MAX];
	pthread_t thread;
	atomic_int stop;
	atomic_int failed;
	_Atomic uint64_t last; /* the last position read */
	uint64_t seen;         /* events read */
	uint64_t notifies;     /* notifications received */
	int64_t last_journal_seq;
	char err[512];
} consumer;

static int consumer_fail(consumer *cs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int consumer_fail(consumer *cs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cs->err, sizeof(cs->err), fmt, ap);
	va_end(ap);
	atomic_store(&cs->failed, 1);
	return -1;
}

/* Reads every event after the last position, checking each comes once, in
 * position order (no gap, no repeat) and in journal order. */
static int consumer_read(consumer *cs, PGconn *c)
{
	char after[32];
	snprintf(after, sizeof(after), "%" PRIu64, atomic_load(&cs->last));
	const char *param = after;
	PGresult *r = PQexecParams(c,
	                           "SELECT position, journal_seq FROM boxoffice.inventory_events"
	                           " WHERE shard = 0 AND position > $1 ORDER BY position",
	                           1, NULL, &param, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return consumer_fail(cs, "reading the outbox: %s", PQerrorMessage(c));
	}
	int rc = 0;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		uint64_t pos = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		int64_t jseq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		uint64_t last = atomic_load(&cs->last);
		if (pos != last + 1)
			rc = consumer_fail(cs,
			                   "position %" PRIu64 " came after %" PRIu64
			                   ": a gap or a repeat",
			                   pos, last);
		else if (jseq < cs->last_journal_seq)
			rc = consumer_fail(cs,
			                   "journal_seq %" PRId64 " after %" PRId64
			                   ": out of journal order",
			                   jseq, cs->last_journal_seq);
		else {
			cs->last_journal_seq = jseq;
			cs->seen++;
			atomic_store(&cs->last, pos);
		}
	}
	PQclear(r);
	return rc;
}

/* The highest position the pending notifications announce (0: none), or
 * -1 on a malformed payload. */
static int64_t consumer_notified(consumer *cs, PGconn *c)
{
	int64_t want = 0;
	PGnotify *n;
	while ((n = PQnotifies(c)) != NULL) {
		unsigned shard;
		uint64_t pos;
		char extra;
		int ok = sscanf(n->extra, "%u:%" SCNu64 "%c", &shard, &pos, &extra) == 2 &&
		         shard == 0;
		if (!ok)
			consumer_fail(cs, "notification payload '%s' is not '0:<position>'",
			              n->extra);
		PQfreemem(n);
		if (!ok)
			return -1;
		cs->notifies++;
		if ((int64_t)pos > want)
			want = (int64_t)pos;
	}
	return want;
}

static void *consumer_main(void *arg)
{
	consumer *cs = arg;
	PGconn *c = PQconnectdb(cs->dsn);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "LISTEN boxoffice_inventory") : NULL;
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		consumer_fail(cs, "LISTEN: %s", PQerrorMessage(c));
	PQclear(r);
	/* What was committed before the LISTEN: read once, then on notifications. */
	if (atomic_load(&cs->failed) || consumer_read(cs, c) < 0) {
		PQfinish(c);
		return NULL;
	}
	while (!atomic_load(&cs->stop)) {
		struct pollfd pf = {.fd = PQsocket(c), .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		if (!PQconsumeInput(c)) {
			consumer_fail(cs, "connection: %s", PQerrorMessage(c));
			break;
		}
		int64_t want = consumer_notified(cs, c);
		if (want < 0 ||
		    (want > (int64_t)atomic_load(&cs->last) && consumer_read(cs, c) < 0))
			break;
		/* NOTIFY is delivered on commit: what it announces is readable. */
		if (want > (int64_t)atomic_load(&cs->last)) {
			consumer_fail(
			        cs, "notified position %" PRId64 " but only %" PRIu64 " is visible",
			        want, (uint64_t)atomic_load(&cs->last));
			break;
		}
	}
	PQfinish(c);
	return NULL;
}

static void consumer_start(consumer *cs, const char *dsn)
{
	memset(cs, 0, sizeof(*cs));
	pgt_dsn_set(dsn, "application_name", "bo_faults_consumer", cs->dsn, sizeof(cs->dsn));
	cr_assert_eq(pthread_create(&cs->thread, NULL, consumer_main, cs), 0);
}

/* Waits until the consumer has read position `n`, stops it, checks it saw
 * 1..n exactly once each. */
static void consumer_finish(consumer *cs, uint64_t n)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (atomic_load(&cs->last) < n && !atomic_load(&cs->failed) && bo_clock_ms() < deadline)
		usleep(2000);
	atomic_store(&cs->stop, 1);
	pthread_join(cs->thread, NULL);
	cr_assert_not(atomic_load(&cs->failed), "LISTEN consumer: %s", cs->err);
	cr_assert_eq(atomic_load(&cs->last), n,
	             "the LISTEN consumer read up to position %" PRIu64 " of %" PRIu64,
	             atomic_load(&cs->last), n);
	cr_assert_eq(cs->seen, n,
	             "the LISTEN consumer saw %" PRIu64 " events, the outbox has %" PRIu64,
	             cs->seen, n);
	cr_assert_gt(cs->notifies, 0,
	             "no notification came: the consumer proved nothing about NOTIFY");
}

/* ---- Fixture ------------------------------------------------------------------------ */

static kid the_kid; /* the child running now (pid 0: none) */
static consumer the_consumer;
static int consumer_running;

static void stop_leftovers(void)
{
	if (the_kid.pid > 0) {
		kill(the_kid.pid, SIGKILL);
		tproc_wait(the_kid.pid, WAIT_MS, NULL);
		close(the_kid.out);
		the_kid.pid = 0;
	}
	if (consumer_running) {
		atomic_store(&the_consumer.stop, 1);
		pthread_join(the_consumer.thread, NULL);
		consumer_running = 0;
	}
}

static void kill_teardown(void)
{
	stop_leftovers();
	if (data_root[0])
		tmpdir_remove(data_root);
	if (db_dsn[0])
		pgt_drop_db(db_dsn);
	db_dsn[0] = '\0';
}

TestSuite(faults);

/* ---- 1. kill cycles ---------------------------------------------------------------- */

typedef struct kill_stats {
	unsigned early;      /* cycles killed 0..30 ms after the shard opened */
	unsigned aimed;      /* cycles killed once a write transaction was seen open */
	unsigned in_txn;     /* kills with a write transaction of the child open just before */
	unsigned cut;        /* ... that ended aborted: the kill cut the batch */
	uint64_t reported;   /* the highest last_seq a commit line reported */
	uint64_t checkpoint; /* the database's checkpoint after the last kill */
	uint64_t next;       /* the first record of the child's next batch */
	uint64_t commits;    /* commit lines seen */
} kill_stats;

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	char *end;
	unsigned long long n = strtoull(v, &end, 0);
	cr_assert(*end == '\0' && n > 0, "%s=%s is not a positive number", name, v);
	return n;
}

/* The child's write transaction open now, if any: its full transaction id
 * (xid8 as text) into xid, "" when none. The migration's transactions
 * (under their advisory lock) are not batches and do not count. */
static void sample_xact(PGconn *db, const char *app, char *xid, size_t cap)
{
	/* backend_xid has 32 bits; the epoch comes from the current snapshot
	 * (a test cluster does not wrap around in between). */
	q_text(db, xid, cap,
	       "SELECT (((pg_snapshot_xmax(pg_current_snapshot())::text::bigint >> 32) << 32)"
	       " + backend_xid::text::bigint)::text FROM pg_stat_activity"
	       " WHERE application_name = $1 AND backend_xid IS NOT NULL"
	       " AND query NOT LIKE '%pg_advisory_xact_lock%'",
	       app);
}

/* Waits until the killed child's session has ended (PostgreSQL rolled its
 * open transaction back), so the checkpoint read next is final. */
static void wait_session_gone(PGconn *db, const char *app)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (q_int(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) >
	       0) {
		cr_assert_lt(bo_clock_ms(), deadline, "the session of %s outlived its process",
		             app);
		usleep(1000);
	}
}

/* Notes a commit line: the child's batches follow each other from the
 * checkpoint it started from, without a gap or an overlap. */
static void note_commit(kill_stats *ks, const char *line)
{
	uint64_t first, last;
	cr_assert_eq(sscanf(line, "commit %" SCNu64 " %" SCNu64, &first, &last), 2, "%s", line);
	cr_assert_leq(first, last, "%s", line);
	cr_assert_eq(first, ks->next,
	             "a batch of records %" PRIu64 "..%" PRIu64 " where %" PRIu64 " was next (%s)",
	             first, last, ks->next, first < ks->next ? "applied twice" : "records skipped");
	ks->next = last + 1;
	if (last > ks->reported)
		ks->reported = last;
	ks->commits++;
}

/* Lets the started child run until the moment to kill it, one of:
 *  - K (1..5) commits plus 0..3 ms (half of the cycles);
 *  - early: 0..30 ms after it opened its shard (connecting, migrating,
 *    catching up, or not even connected yet);
 *  - aimed: after its first commit, as soon as its session is seen with a
 *    write transaction open (looked at for up to 2 s): a batch in flight.
 * Sets xid to the child's open write transaction just before the kill
 * (sample_xact). */
static void run_until_kill(kid *k, unsigned cycle, uint64_t *rng, kill_stats *ks, PGconn *db,
                           const char *app, char *xid, size_t cap)
{
	char line[LINE_CAP];
	int rc = kid_line(k, line, sizeof(line), bo_clock_ms() + WAIT_MS);
	kid_check_line(rc, line, "ready");
	uint64_t recovered;
	cr_assert_eq(sscanf(line, "ready %" SCNu64, &recovered), 1, "%s", line);
	cr_assert_geq(recovered, ks->checkpoint,
	              "the journal recovered to %" PRIu64 " but the database applied %" PRIu64
	              " from it",
	              recovered, ks->checkpoint);
	/* 0, 1: K commits; 2: early; 3: aimed. The first cycle creates the schema. */
	const unsigned mode = cycle == 0 ? 0 : (unsigned)(trng_xorshift(rng) % 4);
	if (mode == 2) {
		ks->early++;
		usleep((useconds_t)(trng_xorshift(rng) % 30000));
		sample_xact(db, app, xid, cap);
		return;
	}
	for (unsigned want = mode == 3 ? 1 : 1 + (unsigned)(trng_xorshift(rng) % 5), n = 0;
	     n < want;) {
		rc = kid_line(k, line, sizeof(line), bo_clock_ms() + WAIT_MS);
		kid_check_line(rc, line, "commits");
		if (strncmp(line, "commit ", 7) == 0) {
			note_commit(ks, line);
			n++;
		}
	}
	if (!consumer_running) { /* the schema exists now */
		consumer_start(&the_consumer, db_dsn);
		consumer_running = 1;
	}
	if (mode == 3) {
		ks->aimed++;
		const int64_t until = bo_clock_ms() + 2000;
		do
			sample_xact(db, app, xid, cap);
		while (!xid[0] && bo_clock_ms() < until);
		return;
	}
	usleep((useconds_t)(trng_xorshift(rng) % 3001));
	sample_xact(db, app, xid, cap);
}

static void kill_cycle(unsigned cycle, uint64_t *rng, PGconn *db, kill_stats *ks)
{
	static const char *const batch_records[] = {"32", "256", "8192"};
	char app[64], dsn[PGT_DSN_MAX], seed[32], base[32], rate[16];
	snprintf(app, sizeof(app), "bo_kill_%d_%u", (int)getpid(), cycle);
	pgt_dsn_set(db_dsn, "application_name", app, dsn, sizeof(dsn));
	snprintf(seed, sizeof(seed), "%" PRIu64, trng_xorshift(rng) | 1);
	snprintf(base, sizeof(base), "%" PRIu64, (uint64_t)(cycle + 1) * 10000000u);
	snprintf(rate, sizeof(rate), "%d", KILL_RATE);
	/* Small batches: a catch-up is many transactions back to back. */
	const char *args[] = {
	        "--seed", seed, "--request-base",  base,
	        "--rate", rate, "--batch-records", batch_records[trng_xorshift(rng) % 3],
	        NULL};
	ks->next = ks->checkpoint + 1;
	kid_start(&the_kid, dsn, args);
	char xid[32];
	run_until_kill(&the_kid, cycle, rng, ks, db, app, xid, sizeof(xid));
	cr_assert_eq(kill(the_kid.pid, SIGKILL), 0);
	/* Commits it reported before it died count too. */
	char line[LINE_CAP];
	int rc;
	while ((rc = kid_line(&the_kid, line, sizeof(line), bo_clock_ms() + WAIT_MS)) == 1) {
		kid_check_line(rc, line, "its end");
		if (strncmp(line, "commit ", 7) == 0)
			note_commit(ks, line);
	}
	cr_assert_eq(rc, 0, "the killed child's output did not end");
	int status = kid_reap(&the_kid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		tproc_dump_tail(log_path, 4000);
		cr_assert_fail(
		        "cycle %u: the child ended on its own (status 0x%x) before it was killed",
		        cycle, status);
	}

	wait_session_gone(db, app);
	uint64_t cp = (uint64_t)q_int(
	        db, "SELECT journal_seq FROM boxoffice.checkpoints WHERE shard = 0", NULL);
	cr_assert_geq(cp, ks->reported,
	              "cycle %u: the child reported a commit up to %" PRIu64
	              ", the database's checkpoint is %" PRIu64,
	              cycle, ks->reported, cp);
	cr_assert_geq(cp, ks->checkpoint, "cycle %u: the checkpoint went back", cycle);
	ks->checkpoint = cp;
	if (xid[0]) {
		ks->in_txn++;
		char st[32];
		q_text(db, st, sizeof(st), "SELECT pg_xact_status($1::xid8)", xid);
		ks->cut += strcmp(st, "aborted") == 0;
	}
}

Test(faults, kill_cycles_lose_nothing_and_repeat_nothing, .init = kill_setup, .fini = kill_teardown,
     .timeout = 3600)
{
	const unsigned cycles = (unsigned)env_u64("BO_KILL_CYCLES", KILL_CYCLES_DEFAULT);
	const uint64_t seed = env_u64("BO_KILL_SEED", 0x5eed);
	cr_log_info("kill cycles: %u (BO_KILL_CYCLES), seed %" PRIu64 " (BO_KILL_SEED)", cycles,
	            seed);
	uint64_t rng = trng_mix64(seed) | 1;
	PGconn *db = pgt_connect(db_dsn);
	kill_stats ks = {0};
	const int64_t t0 = bo_clock_ms();
	for (unsigned i = 0; i < cycles; i++)
		kill_cycle(i, &rng, db, &ks);

	/* A last run applies everything durable; then the database must be
	 * what the journal says, row for row. */
	char dsn[PGT_DSN_MAX];
	pgt_dsn_set(db_dsn, "application_name", "bo_kill_drain", dsn, sizeof(dsn));
	const char *args[] = {"--commands", "0", NULL};
	kid_start(&the_kid, dsn, args);
	uint64_t applied;
	kid_finish(&the_kid, &applied);
	oracle o;
	oracle_run(&o, data_root, 0);
	cr_assert_eq(applied, o.last_seq,
	             "the drain applied up to %" PRIu64 ", the journal ends at %" PRIu64, applied,
	             o.last_seq);
	oracle_check(&o, db, 0);
	check_outbox_order(db);
	cr_assert_gt(o.causes[2], 0, "no hold expired: the stream proves too little");
	consumer_finish(&the_consumer, o.outbox);
	consumer_running = 0;
	cr_log_info(
	        "kill cycles: %u in %.1f s (%u early, %u aimed at a transaction), %" PRIu64
	        " commits reported; %u kills with a write transaction open, %u of them cut it; journal %" PRIu64
	        " records, %" PRIu64 " changes, %" PRIu64 " outbox events, %" PRIu64
	        " notifications",
	        cycles, (double)(bo_clock_ms() - t0) / 1000.0, ks.early, ks.aimed, ks.commits,
	        ks.in_txn, ks.cut, o.last_seq, o.changes, o.outbox, the_consumer.notifies);
	cr_assert_gt(
	        ks.cut, 0,
	        "no kill cut a batch transaction in %u cycles: the test proved nothing about mid-batch kills",
	        cycles);
	check_child_log();
	oracle_free(&o);
	PQfinish(db);
}

/* ---- A private PostgreSQL ------------------------------------------------------------ */

/* The outage test stops its database: it gets a cluster of its own. */
typedef struct pgc {
	char dir[64];  /* /tmp/bo-pg-XXXXXX: data/, the socket, the logs */
	char bin[256]; /* PostgreSQL's bin directory */
	char dsn[160];
	int as_user; /* 1: we are root; the server runs as the user postgres */
	uid_t uid;
	gid_t gid;
	pid_t pid; /* the postmaster (0: not running) */
} pgc;

static pgc the_pg;

/* In a forked child, before exec: output to log, the cluster's user, its
 * directory as the working directory. */
static void pgc_child_prepare(const pgc *p, const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	int nul = open("/dev/null", O_RDONLY);
	if (fd < 0 || nul < 0)
		_exit(126);
	dup2(nul, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (p->as_user && (setgroups(0, NULL) != 0 || setgid(p->gid) != 0 || setuid(p->uid) != 0))
		_exit(126);
	if (chdir(p->dir) != 0)
		_exit(126);
}

/* initdb into a fresh directory under /tmp (short: a Unix socket's path
 * has at most 107 bytes), as the user postgres when we are root
 * (PostgreSQL refuses to run as root). Skips when there is no server. */
static void pgc_init(pgc *p)
{
	const char *bin = getenv("BOXOFFICE_PG_BIN");
	snprintf(p->bin, sizeof(p->bin), "%s", bin && *bin ? bin : "/usr/lib/postgresql/15/bin");
	char initdb[300], data[96], log[96];
	snprintf(initdb, sizeof(initdb), "%s/initdb", p->bin);
	if (access(initdb, X_OK) != 0)
		cr_skip_test("SKIP: no %s: the outage test needs PostgreSQL 15's server programs "
		             "(BOXOFFICE_PG_BIN names their directory)",
		             initdb);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw)
			cr_skip_test(
			        "SKIP: running as root and there is no user 'postgres' to run PostgreSQL as");
		p->as_user = 1;
		p->uid = pw->pw_uid;
		p->gid = pw->pw_gid;
	}
	snprintf(p->dir, sizeof(p->dir), "/tmp/bo-pg-XXXXXX");
	cr_assert_not_null(mkdtemp(p->dir), "mkdtemp: %s", strerror(errno));
	if (p->as_user)
		cr_assert_eq(chown(p->dir, p->uid, p->gid), 0, "chown %s: %s", p->dir,
		             strerror(errno));
	snprintf(data, sizeof(data), "%s/data", p->dir);
	snprintf(log, sizeof(log), "%s/initdb.log", p->dir);
	const char *argv[] = {initdb,       "-D",           data, "-U",
	                      "boxoffice",  "--auth=trust", "-E", "UTF8",
	                      "--locale=C", "--no-sync",    NULL};
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		pgc_child_prepare(p, log);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int status = 0;
	int rc = tproc_wait(pid, 2 * WAIT_MS, &status);
	if (rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		tproc_dump_tail(log, 4000);
		cr_assert_fail("initdb failed (%s, status 0x%x)", rc ? strerror(-rc) : "ended",
		               status);
	}
	snprintf(p->dsn, sizeof(p->dsn), "host=%s user=boxoffice dbname=postgres", p->dir);
}

/* Starts the server (no TCP, the socket in p->dir) and waits until it
 * accepts connections. It dies with this process (immediate shutdown). */
static void pgc_start(pgc *p)
{
	char postgres[300], data[96], log[96];
	snprintf(postgres, sizeof(postgres), "%s/postgres", p->bin);
	snprintf(data, sizeof(data), "%s/data", p->dir);
	snprintf(log, sizeof(log), "%s/postgres.log", p->dir);
	const char *argv[] = {postgres, "-D", data, "-c", "listen_addresses=", "-k", p->dir, NULL};
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		pgc_child_prepare(p, log);
		/* After the user change (which clears it): SIGQUIT, PostgreSQL's
		 * immediate shutdown, when the test process dies. */
		prctl(PR_SET_PDEATHSIG, SIGQUIT);
		if (getppid() != parent)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	p->pid = pid;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (PQping(p->dsn) != PQPING_OK) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			p->pid = 0;
			tproc_dump_tail(log, 4000);
			cr_assert_fail("PostgreSQL ended at start (status 0x%x)", status);
		}
		cr_assert_lt(bo_clock_ms(), deadline,
		             "PostgreSQL did not accept connections in %d ms", WAIT_MS);
		usleep(20000);
	}
}

/* Fast shutdown: SIGINT to the postmaster, what `pg_ctl stop -m fast`
 * sends (sessions are ended, their transactions rolled back, a clean
 * stop); waits for it to end. Returns 0, or -errno. */
static int pgc_stop(pgc *p)
{
	if (p->pid <= 0)
		return 0;
	int status;
	int rc = tproc_signal_wait(p->pid, SIGINT, WAIT_MS, &status, NULL);
	p->pid = 0;
	return rc;
}

static void outage_setup(void)
{
	pgt_require(); /* the PostgreSQL tests are on (scripts/test) */
	data_setup();
	memset(&the_pg, 0, sizeof(the_pg));
	pgc_init(&the_pg);
}

static void outage_teardown(void)
{
	stop_leftovers();
	pgc_stop(&the_pg);
	if (the_pg.dir[0])
		tmpdir_remove(the_pg.dir);
	if (data_root[0])
		tmpdir_remove(data_root);
}

/* ---- 2. outage ------------------------------------------------------------------------ */

typedef struct status_line {
	/* When the child wrote it (bo_clock_ms: CLOCK_MONOTONIC, one clock for
	 * every process on the machine). */
	int64_t at;
	char state[16];
	uint64_t applied, durable, lag, acks, retries;
	int healthy;
} status_line;

/* The child's next status line (commit lines pass by). Returns 1, or 0
 * when the deadline came first. */
static int next_status(kid *k, status_line *st, int64_t deadline)
{
	char line[LINE_CAP];
	for (;;) {
		int rc = kid_line(k, line, sizeof(line), deadline);
		if (rc == -ETIMEDOUT)
			return 0;
		kid_check_line(rc, line, "status lines");
		if (strncmp(line, "status ", 7) != 0)
			continue;
		cr_assert_eq(sscanf(line,
		                    "status %" SCNd64 " %15s %" SCNu64 " %" SCNu64 " %" SCNu64
		                    " %" SCNu64 " %" SCNu64 " %d",
		                    &st->at, st->state, &st->applied, &st->durable, &st->lag,
		                    &st->acks, &st->retries, &st->healthy),
		             8, "%s", line);
		cr_assert(st->healthy, "the shard failed: %s", line);
		return 1;
	}
}

static unsigned count_lines_with(const char *path, const char *needle)
{
	char *text = tproc_read_file(path, NULL);
	cr_assert_not_null(text, "%s: %s", path, strerror(errno));
	unsigned n = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		n += strstr(line, needle) != NULL;
	free(text);
	return n;
}

/* Load flows and the committer keeps up: returns the largest lag of one
 * second of steady running, what "normal" is on this machine now. */
static uint64_t outage_warm_up(kid *k)
{
	status_line st;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	do
		cr_assert(next_status(k, &st, deadline),
		          "the committer never ran with load flowing");
	while (strcmp(st.state, "running") != 0 || st.applied == 0 || st.acks < 500);
	uint64_t lag_max = 0;
	const int64_t until = bo_clock_ms() + 1000;
	while (next_status(k, &st, until)) {
		cr_assert_str_eq(st.state, "running", "before the outage");
		lag_max = st.lag > lag_max ? st.lag : lag_max;
	}
	return lag_max;
}

/* The 30 s without PostgreSQL (stopped at `stopped`): the shard
 * acknowledges, the committer retries, its position stands, its lag
 * grows. Returns the lag at the end. */
static uint64_t outage_down(kid *k, int64_t stopped)
{
	const int64_t until = stopped + OUTAGE_MS;
	status_line first, st, prev;
	do /* the lines still in the pipe from before the stop do not count */
		cr_assert(next_status(k, &first, until));
	while (first.at < stopped);
	prev = first;
	unsigned retrying = 0;
	while (next_status(k, &st, until)) {
		cr_assert_eq(st.applied, first.applied, "a commit while PostgreSQL was down");
		cr_assert_geq(st.lag, prev.lag, "the lag went down while PostgreSQL was down");
		retrying += strcmp(st.state, "retrying") == 0;
		prev = st;
	}
	uint64_t acks = prev.acks - first.acks;
	cr_log_info(
	        "outage: %" PRIu64
	        " commands acknowledged in %d ms without PostgreSQL (offered %d/s), lag %" PRIu64
	        " -> %" PRIu64 " records, %" PRIu64 " retries",
	        acks, OUTAGE_MS, OUTAGE_RATE, first.lag, prev.lag, prev.retries);
	cr_assert_gt(retrying, 0, "the committer never said retrying");
	cr_assert_str_eq(prev.state, "retrying", "the committer at the end of the outage");
	cr_assert_gt(prev.retries, 2,
	             "%" PRIu64 " retries: too few to tell one log line from one per retry",
	             prev.retries);
	cr_assert_geq(acks, (uint64_t)OUTAGE_RATE * (OUTAGE_MS / 1000) / 10,
	              "the shard acknowledged only %" PRIu64 " commands in the outage", acks);
	cr_assert_gt(prev.lag, first.lag, "the lag did not grow");
	return prev.lag;
}

Test(faults, outage_the_engine_serves_and_the_database_converges, .init = outage_setup,
     .fini = outage_teardown, .timeout = 900)
{
	pgc_start(&the_pg);
	char dsn[PGT_DSN_MAX], rate[16], status_ms[16];
	pgt_dsn_set(the_pg.dsn, "application_name", "bo_outage", dsn, sizeof(dsn));
	snprintf(rate, sizeof(rate), "%d", OUTAGE_RATE);
	snprintf(status_ms, sizeof(status_ms), "%d", OUTAGE_STATUS_MS);
	const char *args[] = {"--seed",         "7",    "--rate", rate, "--status-ms", status_ms,
	                      "--retry-max-ms", "1000", NULL};
	kid_start(&the_kid, dsn, args);
	const uint64_t normal = outage_warm_up(&the_kid);

	cr_assert_eq(pgc_stop(&the_pg), 0, "PostgreSQL did not stop");
	const uint64_t peak = outage_down(&the_kid, bo_clock_ms());

	pgc_start(&the_pg);
	const int64_t back = bo_clock_ms();
	/* (Lines from before the restart cannot pass: they say retrying.) */
	const uint64_t bound = 2 * normal + 100;
	status_line st;
	do
		cr_assert(next_status(&the_kid, &st, back + 2 * WAIT_MS),
		          "the lag did not return to normal (<= %" PRIu64
		          " records) in %d ms after PostgreSQL came back",
		          bound, 2 * WAIT_MS);
	while (strcmp(st.state, "running") != 0 || st.lag > bound);
	cr_log_info("outage: lag %" PRIu64 " records back to %" PRIu64 " (normal: <= %" PRIu64
	            ") in %" PRId64 " ms after PostgreSQL came back",
	            peak, st.lag, bound, bo_clock_ms() - back);

	cr_assert_eq(kill(the_kid.pid, SIGTERM), 0);
	uint64_t applied;
	kid_finish(&the_kid, &applied);
	oracle o;
	oracle_run(&o, data_root, 0);
	cr_assert_eq(applied, o.last_seq);
	PGconn *db = pgt_connect(the_pg.dsn);
	oracle_check(&o, db, 0);
	check_outbox_order(db);
	PQfinish(db);
	oracle_free(&o);

	/* The state changes are logged, not the retries. */
	const unsigned retrying = count_lines_with(log_path, "committer retrying"),
	               running = count_lines_with(log_path, "committer running"),
	               stopped = count_lines_with(log_path, "committer stopped");
	cr_assert_eq(retrying, 1, "%u \"committer retrying\" lines in %s (one per state change)",
	             retrying, log_path);
	cr_assert_eq(running, 2,
	             "%u \"committer running\" lines in %s (at start, after the outage)", running,
	             log_path);
	cr_assert_eq(stopped, 0, "%u \"committer stopped\" lines in %s", stopped, log_path);
	check_child_log();
}
