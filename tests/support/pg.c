/*
 * pg.c — the tests' PostgreSQL (see pg.h).
 *
 * Failures copy libpq's message before freeing its result or connection,
 * then fail the test: a failed test's worker ends there, and the sanitizer
 * build's leak check must not turn that into a second report.
 */
#include "tests/support/pg.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The longest prefix pgt_create_db accepts: with "_<pid>_<n>" the name stays
 * well inside PostgreSQL's 63 bytes. */
#define PGT_PREFIX_MAX 32

/* Room for one of libpq's error messages in a test's failure report. */
#define PGT_MSG_MAX 512

const char *pgt_admin_dsn(void)
{
	const char *dsn = getenv(PGT_ENV);
	return dsn && dsn[0] ? dsn : NULL;
}

const char *pgt_require(void)
{
	const char *dsn = pgt_admin_dsn();
	if (!dsn)
		cr_skip_test(PGT_ENV " is not set: this test needs a PostgreSQL server "
		                     "(scripts/test starts one; or set " PGT_ENV
		                     " to a superuser DSN)");
	return dsn;
}

/* Copies text into msg (cut to fit), dropping the trailing newline libpq
 * messages end with. */
static void copy_msg(char msg[PGT_MSG_MAX], const char *text)
{
	snprintf(msg, PGT_MSG_MAX, "%s", text ? text : "(no message)");
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
}

/* Frees r and fails the test with its error message. */
static void fail_result(PGresult *r, const char *what, const char *sql)
{
	char msg[PGT_MSG_MAX];
	copy_msg(msg, r ? PQresultErrorMessage(r) : "out of memory");
	PQclear(r);
	cr_assert_fail("%s failed: %s\n  SQL: %s", what, msg, sql);
}

/* Output of the DSN writer: the text so far, and whether it still fits. */
struct dsn_out {
	char *buf;
	size_t cap;
	size_t len;
	bool fits;
};

static void dsn_putc(struct dsn_out *o, char c)
{
	if (o->len + 1 < o->cap)
		o->buf[o->len] = c;
	else
		o->fits = false;
	o->len++;
}

/* Appends " keyword='value'" (no space before the first), with ' and \
 * escaped by a backslash as libpq's parser expects. */
static void dsn_put_pair(struct dsn_out *o, const char *keyword, const char *value)
{
	if (o->len > 0)
		dsn_putc(o, ' ');
	for (const char *p = keyword; *p; p++)
		dsn_putc(o, *p);
	dsn_putc(o, '=');
	dsn_putc(o, '\'');
	for (const char *p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			dsn_putc(o, '\\');
		dsn_putc(o, *p);
	}
	dsn_putc(o, '\'');
}

size_t pgt_dsn_set(const char *dsn, const char *keyword, const char *value, char *out, size_t cap)
{
	cr_assert(dsn && keyword && value && out && cap > 0, "pgt_dsn_set: bad arguments");
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	if (!opts) {
		char msg[PGT_MSG_MAX];
		copy_msg(msg, err ? err : "out of memory");
		PQfreemem(err);
		cr_assert_fail("cannot parse the DSN '%s': %s", dsn, msg);
	}
	struct dsn_out o = {.buf = out, .cap = cap, .len = 0, .fits = true};
	bool known = false;
	for (const PQconninfoOption *opt = opts; opt->keyword; opt++) {
		if (strcmp(opt->keyword, keyword) == 0) {
			known = true;
			dsn_put_pair(&o, keyword, value);
		} else if (opt->val) {
			dsn_put_pair(&o, opt->keyword, opt->val);
		}
	}
	PQconninfoFree(opts);
	cr_assert(known, "'%s' is not a libpq connection keyword", keyword);
	cr_assert(o.fits, "the DSN with %s set needs %zu bytes, %zu given", keyword, o.len + 1,
	          cap);
	out[o.len] = '\0';
	return o.len;
}

/* Notices of the helpers' own statements ("does not exist, skipping") are
 * noise in a test's log. */
static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

PGconn *pgt_connect(const char *dsn)
{
	cr_assert(dsn, "pgt_connect: no DSN");
	PGconn *conn = PQconnectdb(dsn);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		char msg[PGT_MSG_MAX];
		copy_msg(msg, conn ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
		cr_assert_fail("cannot connect to PostgreSQL (%s): %s", dsn, msg);
	}
	return conn;
}

void pgt_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_result(r, "pgt_exec", sql);
	PQclear(r);
}

long long pgt_scalar(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_result(r, "pgt_scalar", sql);
	int rows = PQntuples(r), cols = PQnfields(r);
	bool null = rows == 1 && cols == 1 && PQgetisnull(r, 0, 0);
	char text[64] = "";
	if (rows == 1 && cols == 1)
		snprintf(text, sizeof text, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	cr_assert(rows == 1 && cols == 1, "pgt_scalar: %d rows of %d columns, not one value: %s",
	          rows, cols, sql);
	cr_assert(!null, "pgt_scalar: NULL from %s", sql);
	errno = 0;
	char *end = NULL;
	long long v = strtoll(text, &end, 10);
	cr_assert(errno == 0 && end != text && *end == '\0',
	          "pgt_scalar: '%s' is not an integer: %s", text, sql);
	return v;
}

/* Asserts that prefix is a usable start of a database name. */
static void check_prefix(const char *prefix)
{
	size_t n = prefix ? strlen(prefix) : 0;
	cr_assert(n >= 1 && n <= PGT_PREFIX_MAX, "pgt_create_db: prefix must be 1 to %d characters",
	          PGT_PREFIX_MAX);
	cr_assert(strspn(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") == n,
	          "pgt_create_db: prefix '%s' must be of [a-z0-9_]", prefix);
}

int pgt_create_db(const char *prefix, char *dsn_out, size_t cap)
{
	/* Counts the databases this process made: with the pid, unique
	 * among the tests running at once. */
	static unsigned counter;
	check_prefix(prefix);
	const char *admin = pgt_require();
	PGconn *conn = pgt_connect(admin);
	PQsetNoticeProcessor(conn, quiet_notices, NULL);
	char name[64];
	/* A name left by an earlier run whose pid was ours: take the next. */
	for (int tries = 0;; tries++) {
		cr_assert(tries < 1000, "pgt_create_db: no free name for prefix '%s'", prefix);
		snprintf(name, sizeof name, "%s_%ld_%u", prefix, (long)getpid(), ++counter);
		char sql[128];
		snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
		PGresult *r = PQexec(conn, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			break;
		}
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (!state || strcmp(state, "42P04") != 0) { /* duplicate_database */
			PQfinish(conn);
			fail_result(r, "pgt_create_db", sql);
		}
		PQclear(r);
	}
	PQfinish(conn);
	pgt_dsn_set(admin, "dbname", name, dsn_out, cap);
	return 0;
}

void pgt_drop_db(const char *dsn)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	PQfreemem(err);
	cr_assert(opts, "pgt_drop_db: cannot parse the DSN '%s'", dsn);
	char name[128] = "";
	for (const PQconninfoOption *opt = opts; opt->keyword; opt++)
		if (strcmp(opt->keyword, "dbname") == 0 && opt->val)
			snprintf(name, sizeof name, "%s", opt->val);
	PQconninfoFree(opts);
	cr_assert(name[0], "pgt_drop_db: the DSN '%s' names no database", dsn);

	PGconn *conn = pgt_connect(pgt_require());
	PQsetNoticeProcessor(conn, quiet_notices, NULL);
	/* Dropping the admin database would take every later test with it. */
	if (strcmp(name, PQdb(conn)) == 0) {
		PQfinish(conn);
		cr_assert_fail("pgt_drop_db: '%s' is the admin DSN's own database", name);
	}
	char *ident = PQescapeIdentifier(conn, name, strlen(name));
	cr_assert(ident, "pgt_drop_db: out of memory");
	char sql[256];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	PQfreemem(ident);
	PGresult *r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQfinish(conn);
		fail_result(r, "pgt_drop_db", sql);
	}
	PQclear(r);
	PQfinish(conn);
}
