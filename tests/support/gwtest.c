#include "gwtest.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <nng/protocol/reqrep0/req.h>

#include "tests/support/tmpdir.h"

void tgw_config(tgw *t, const char *name)
{
	int rc = tmpdir_make(t->dir, sizeof(t->dir), name);
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	snprintf(t->data_dir, sizeof(t->data_dir), "%s/data", t->dir);
	snprintf(t->url, sizeof(t->url), "ipc://%s/sock", t->dir);
	snprintf(t->pub_url, sizeof(t->pub_url), "ipc://%s/pub", t->dir);
	cr_assert_eq(mkdir(t->data_dir, 0700), 0, "mkdir: %s", strerror(errno));
	gw_config *cfg = &t->cfg;
	gw_config_default(cfg);
	cfg->data_dir = t->data_dir;
	cfg->shards = 2;
	cfg->listen[0] = t->url;
	cfg->listen_count = 1;
	cfg->contexts = 4;
	cfg->status_every_ms = 0;
	cfg->shard.engine.seats_max = 65536;
	cfg->shard.engine.claims_max = 65536;
	cfg->shard.engine.idem_capacity = 65536;
	cfg->shard.engine.events_max = 64;
}

void tgw_start(tgw *t)
{
	char err[GW_ERR_LEN];
	int rc = gw_start(&t->cfg, &t->gw, err, sizeof(err));
	cr_assert_eq(rc, 0, "gw_start: %d %s", rc, err);
}

void tgw_stop(tgw *t)
{
	cr_assert_eq(gw_stop(t->gw, TGW_WAIT_MS), 0, "gw_stop timed out");
	cr_assert_eq(gw_close_hung(t->gw), 0, "nng_close hung");
	gw_free(t->gw);
	t->gw = NULL;
	tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

void tgw_cleanup(tgw *t)
{
	if (t->gw) {
		gw_stop(t->gw, 5000);
		if (!gw_close_hung(t->gw))
			gw_free(t->gw);
		t->gw = NULL;
	}
	if (t->dir[0])
		tmpdir_remove(t->dir);
	t->dir[0] = '\0';
}

nng_socket tgw_req_open(const char *url)
{
	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, TGW_WAIT_MS);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, TGW_WAIT_MS);
	int rv = nng_dial(s, url, NULL, 0);
	cr_assert_eq(rv, 0, "dial %s: %s", url, nng_strerror(rv));
	return s;
}
