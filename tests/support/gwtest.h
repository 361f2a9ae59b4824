/*
 * gwtest.h — an in-process boxoffice gateway for the gateway tests
 * (the tests in tests/gateway/): a scratch directory with its data dir, a
 * configuration with test-sized tables listening on an ipc:// socket
 * there, the start, the stop, and a REQ socket to talk to it. A test
 * adjusts t->cfg between tgw_config and tgw_start. Criterion only (every
 * failure fails the test).
 */
#ifndef BO_TEST_GWTEST_H
#define BO_TEST_GWTEST_H

#include <limits.h>

#include <nng/nng.h>

#include "gateway/gateway.h"

/* Bound on every wait for a reply or a stop (ASan, a slow disk). */
#define TGW_WAIT_MS 20000

typedef struct tgw {
	char dir[PATH_MAX];          /* the scratch directory ("" when none) */
	char data_dir[PATH_MAX + 8]; /* dir/data */
	char url[PATH_MAX + 16];     /* ipc://dir/sock: cfg.listen[0] */
	char pub_url[PATH_MAX + 16]; /* ipc://dir/pub: for a test that publishes */
	gw_config cfg;
	gw_server *gw; /* NULL until tgw_start, and after tgw_stop */
} tgw;

/* Makes the scratch directory "$TMPDIR/<name>-XXXXXX" and fills t->cfg:
 * gw_config_default, then the data dir, 2 shards, t->url as the only
 * listener, 4 contexts, no status log, 65536 seats, claims and idempotency
 * entries and 64 events per shard. */
void tgw_config(tgw *t, const char *name);

/* gw_start(&t->cfg); fails the test with gw_start's reason. */
void tgw_start(tgw *t);

/* gw_stop within TGW_WAIT_MS (nothing left in flight, nng_close did not
 * hang), gw_free, and the scratch directory removed. A failed shard is no
 * failure here: a test that wants none asserts gw_failed() first. */
void tgw_stop(tgw *t);

/* For a suite's .fini: stops and frees what a failed test left running
 * (without asserting) and removes the directory. */
void tgw_cleanup(tgw *t);

/* A REQ socket dialled to url: no resend, TGW_WAIT_MS to send and to
 * receive. */
nng_socket tgw_req_open(const char *url);

#endif /* BO_TEST_GWTEST_H */
