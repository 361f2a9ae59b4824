/*
 * pg.h — the tests' PostgreSQL: a real server (never a mock), reached
 * through BOXOFFICE_TEST_PG_DSN. scripts/test starts a private cluster
 * (scripts/pg) and sets it to a DSN of that cluster's 'postgres' database as
 * the superuser 'boxoffice', so a test can create its own databases and
 * roles. Each test works in a fresh database of its own (pgt_create_db) and
 * drops it at the end (pgt_drop_db).
 *
 * The cluster's pg_hba.conf trusts every role on its private socket except
 * members of the group role 'bo_password_auth' (PGT_PASSWORD_GROUP), who
 * must give their password (scram-sha-256): a test that needs a password
 * check creates a role in that group.
 *
 * Criterion only: every failure (no connection, an SQL error, a DSN that
 * does not fit) fails the current test with PostgreSQL's message, and a
 * test that needs the server skips, loudly, when the variable is unset.
 */
#ifndef BO_TEST_PG_H
#define BO_TEST_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* The variable scripts/test exports. */
#define PGT_ENV "BOXOFFICE_TEST_PG_DSN"

/* The group role whose members authenticate with a password. */
#define PGT_PASSWORD_GROUP "bo_password_auth"

/* Room for any DSN these helpers write. */
#define PGT_DSN_MAX 1024

/* The admin DSN: the value of BOXOFFICE_TEST_PG_DSN, or NULL when it is
 * unset or empty. */
const char *pgt_admin_dsn(void);

/* Returns the admin DSN; when there is none, skips the current test with a
 * message naming BOXOFFICE_TEST_PG_DSN and scripts/test (does not return).
 * Call it first in every test that needs PostgreSQL. */
const char *pgt_require(void);

/* Writes into out[0..cap) the DSN dsn (key=value or URI form) with keyword
 * set to value (replaced if present, added if not), in key=value form with
 * every value quoted. Fails the test when dsn does not parse, keyword is not
 * a libpq keyword, or the result does not fit. Returns its length. */
size_t pgt_dsn_set(const char *dsn, const char *keyword, const char *value, char *out, size_t cap);

/* Creates a new empty database named "<prefix>_<pid>_<n>" (prefix: 1 to 32
 * characters of [a-z0-9_], asserted; n counts up in this process and past
 * any name that already exists) and writes a DSN for it (the admin DSN with
 * its dbname replaced) into dsn_out[0..cap); PGT_DSN_MAX is enough. Skips
 * the test when there is no admin DSN (pgt_require); fails it on any
 * error. Returns 0. The caller drops it with pgt_drop_db. */
int pgt_create_db(const char *prefix, char *dsn_out, size_t cap);

/* Drops the database dsn names (WITH (FORCE): connections to it are ended
 * first); nothing happens when it no longer exists. Fails the test on an
 * error, or when dsn names the admin DSN's own database. */
void pgt_drop_db(const char *dsn);

/* Connects to dsn; fails the test with libpq's message when that does not
 * succeed. The caller owns the connection (PQfinish). */
PGconn *pgt_connect(const char *dsn);

/* Runs sql (one or more commands, no parameters) on conn; fails the test
 * unless all succeed. */
void pgt_exec(PGconn *conn, const char *sql);

/* Runs sql, a query returning exactly one row of one non-NULL integer
 * column, and returns that integer; fails the test otherwise (SQL error,
 * another shape, NULL, not an integer). */
long long pgt_scalar(PGconn *conn, const char *sql);

#endif /* BO_TEST_PG_H */
