/*
 * pg_test.c — the tests' PostgreSQL helpers (support/pg.h) against the
 * real server scripts/test starts (BOXOFFICE_TEST_PG_DSN):
 *   - a created database is a fresh, separate database of the cluster that
 *     the returned DSN reaches, and pgt_drop_db removes it even while a
 *     connection to it is open (FORCE);
 *   - the cluster's password group: a member connecting with a wrong or no
 *     password is refused ("password authentication failed"), with the
 *     right one admitted — so the committer's bad-password tests can rely
 *     on it;
 *   - pgt_dsn_set writes DSNs libpq reads back exactly (quoting).
 * Without the variable the server tests skip, loudly (scripts/test lists
 * them); scripts/test always sets it unless told --no-pg.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/pg.h"

/* The value of keyword in dsn as libpq parses it, copied into out. */
static void dsn_get(const char *dsn, const char *keyword, char *out, size_t cap)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	PQfreemem(err);
	cr_assert(opts, "libpq cannot parse '%s'", dsn);
	out[0] = '\0';
	for (const PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val)
			snprintf(out, cap, "%s", o->val);
	PQconninfoFree(opts);
}

/* How many databases of the cluster are called name. */
static long long db_count(const char *name)
{
	PGconn *admin = pgt_connect(pgt_require());
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_database WHERE datname = '%s'", name);
	long long n = pgt_scalar(admin, sql);
	PQfinish(admin);
	return n;
}

Test(pg, create_connect_scalar_drop)
{
	pgt_require();
	char dsn[PGT_DSN_MAX], name[128];
	cr_assert_eq(pgt_create_db("pgt_smoke", dsn, sizeof dsn), 0);
	dsn_get(dsn, "dbname", name, sizeof name);
	cr_assert(strncmp(name, "pgt_smoke_", 10) == 0, "database name '%s'", name);
	cr_assert_eq(db_count(name), 1);

	PGconn *c = pgt_connect(dsn);
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT (current_database() = '%s')::int", name);
	cr_assert_eq(pgt_scalar(c, sql), 1, "the DSN reaches another database");
	cr_assert_eq(pgt_scalar(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0,
	             "a new database must be empty");
	pgt_exec(c, "CREATE TABLE t (x bigint); INSERT INTO t VALUES (40), (2)");
	cr_assert_eq(pgt_scalar(c, "SELECT sum(x) FROM t"), 42);

	/* Dropped while c is still connected: FORCE ends that session. */
	pgt_drop_db(dsn);
	cr_assert_eq(db_count(name), 0);
	PGresult *r = PQexec(c, "SELECT 1");
	cr_assert_neq(PQresultStatus(r), PGRES_TUPLES_OK, "the session outlived its database");
	PQclear(r);
	PQfinish(c);
	pgt_drop_db(dsn); /* gone already: nothing happens */
}

Test(pg, created_databases_are_separate)
{
	pgt_require();
	char a[PGT_DSN_MAX], b[PGT_DSN_MAX];
	pgt_create_db("pgt_sep", a, sizeof a);
	pgt_create_db("pgt_sep", b, sizeof b);
	cr_assert(strcmp(a, b) != 0, "two databases with one DSN: %s", a);
	PGconn *ca = pgt_connect(a), *cb = pgt_connect(b);
	pgt_exec(ca, "CREATE TABLE only_a (x int)");
	cr_assert_eq(pgt_scalar(ca, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'"),
	             1);
	cr_assert_eq(pgt_scalar(cb, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'"),
	             0);
	PQfinish(ca);
	PQfinish(cb);
	pgt_drop_db(a);
	pgt_drop_db(b);
}

/* Connects as user with password (NULL: none), never from a password file;
 * returns the status and copies libpq's message into msg. */
static ConnStatusType try_login(const char *dsn, const char *user, const char *password, char *msg,
                                size_t cap)
{
	char d1[PGT_DSN_MAX], d2[PGT_DSN_MAX], d3[PGT_DSN_MAX];
	pgt_dsn_set(dsn, "user", user, d1, sizeof d1);
	pgt_dsn_set(d1, "passfile", "/nonexistent/pgpass", d2, sizeof d2);
	pgt_dsn_set(d2, "password", password ? password : "", d3, sizeof d3);
	PGconn *c = PQconnectdb(d3);
	cr_assert(c, "out of memory");
	ConnStatusType st = PQstatus(c);
	snprintf(msg, cap, "%s", PQerrorMessage(c));
	PQfinish(c);
	return st;
}

Test(pg, password_group_refuses_a_wrong_password)
{
	pgt_require();
	char dsn[PGT_DSN_MAX];
	pgt_create_db("pgt_pw", dsn, sizeof dsn);
	char role[64], sql[256];
	snprintf(role, sizeof role, "pgt_pw_%ld", (long)getpid());
	PGconn *admin = pgt_connect(dsn);
	snprintf(
	        sql, sizeof sql,
	        "SET client_min_messages = warning; DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN PASSWORD 'right-pw' IN ROLE " PGT_PASSWORD_GROUP,
	        role, role);
	pgt_exec(admin, sql);

	char wrong[512], none[512], right[512];
	ConnStatusType st_wrong = try_login(dsn, role, "wrong-pw", wrong, sizeof wrong);
	ConnStatusType st_none = try_login(dsn, role, NULL, none, sizeof none);
	ConnStatusType st_right = try_login(dsn, role, "right-pw", right, sizeof right);
	snprintf(sql, sizeof sql, "DROP ROLE %s", role);
	pgt_exec(admin, sql);
	PQfinish(admin);
	pgt_drop_db(dsn);

	cr_assert_eq(st_wrong, CONNECTION_BAD, "a wrong password was accepted");
	cr_assert(strstr(wrong, "password authentication failed"), "wrong password: %s", wrong);
	cr_assert_eq(st_none, CONNECTION_BAD, "no password was accepted");
	cr_assert_eq(st_right, CONNECTION_OK, "the right password was refused: %s", right);
}

Test(pg, dsn_set_quotes_what_libpq_reads_back)
{
	const char *base = "host=/some/dir port=5432 dbname=postgres user=boxoffice";
	const char *odd = "it's a \\ name";
	char out[PGT_DSN_MAX], v[256];
	pgt_dsn_set(base, "dbname", odd, out, sizeof out);
	dsn_get(out, "dbname", v, sizeof v);
	cr_assert_str_eq(v, odd);
	dsn_get(out, "host", v, sizeof v);
	cr_assert_str_eq(v, "/some/dir");
	dsn_get(out, "user", v, sizeof v);
	cr_assert_str_eq(v, "boxoffice");
	/* Added when absent; URIs are read too. */
	pgt_dsn_set("postgresql:///db1?host=/run/x", "application_name", "t 1", out, sizeof out);
	dsn_get(out, "application_name", v, sizeof v);
	cr_assert_str_eq(v, "t 1");
	dsn_get(out, "dbname", v, sizeof v);
	cr_assert_str_eq(v, "db1");
	dsn_get(out, "host", v, sizeof v);
	cr_assert_str_eq(v, "/run/x");
}

Test(pg, no_admin_dsn_without_the_variable)
{
	cr_assert_eq(setenv(PGT_ENV, "", 1), 0);
	cr_assert_null(pgt_admin_dsn());
	cr_assert_eq(unsetenv(PGT_ENV), 0);
	cr_assert_null(pgt_admin_dsn());
}
