/*
 * server_main.c — boxoffice-server: options, start-up (recovery), signals,
 * graceful shutdown. The work is in gateway.c and engine/shard.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "base/log.h"
#include "protocol/wire.h"

#ifndef BO_VERSION
#define BO_VERSION "unknown"
#endif

static const char *prog = "boxoffice-server";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [OPTIONS]\n"
		"\n"
		"The boxoffice seat-inventory server: N shards (one writer thread each, journaled to\n"
		"DATA_DIR/shard-NNNN with fdatasync group commit), answering the wire protocol v1\n"
		"(msgpack over nng REQ/REP, schemas/protocol.md) only after each change is on disk.\n"
		"On start it recovers every shard from its snapshot and journal and logs how long it took.\n"
		"SIGTERM/SIGINT: stop accepting, answer everything in flight, make it durable, exit 0.\n"
		"\n"
		"Options (environment variable in brackets; a flag wins over the environment):\n"
		"  --data-dir DIR        journals and snapshots [BOXOFFICE_DATA_DIR] (default: var)\n"
		"  --shards N            shards, 1..%u [BOXOFFICE_SHARDS] (default: cores, at most 4);\n"
		"                        an event's shard is XXH3(event id) mod N: keep N for a data dir\n"
		"  --listen URL          tcp://HOST:PORT or ipc:///PATH; repeatable, up to %u\n"
		"                        [BOXOFFICE_LISTEN, comma-separated] (default: tcp://127.0.0.1:7400)\n"
		"  --contexts N          requests in flight, 1..%u (default: %u)\n"
		"  --recv-max BYTES      largest request accepted, <= %u (default: %u); a larger one\n"
		"                        drops the connection (nng cannot answer it)\n"
		"  --sync data|none      data: fdatasync every group commit (default). none: UNSAFE,\n"
		"                        benchmarks only: acknowledged changes can be lost on power loss\n"
		"  --snapshot-every N    journal records between snapshots, 0 = never (default: 10000000)\n"
		"  --seats-max N         seats per shard (default: %u)\n"
		"  --claims-max N        holds + bookings per shard (default: %u)\n"
		"  --idem-capacity N     idempotency window entries per shard, power of two (default: %u)\n"
		"  --events-max N        events per shard (default: %u)\n"
		"  --demo                create the demo venue (event 1) if it does not exist\n"
		"  --log-level LEVEL     debug, info, warn or error (default: info)\n"
		"  --version             print the version and exit\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit status: 0 after a clean shutdown, 1 when start-up fails (the log says why: a shard\n"
		"that cannot recover names the file, offset and sequence), 2 for usage errors.\n",
		prog, GW_SHARDS_MAX, GW_LISTEN_MAX, GW_CONTEXTS_MAX, GW_CONTEXTS_DEFAULT, WIRE_MSG_MAX, WIRE_MSG_MAX,
		BO_SEATS_PER_SHARD_DEFAULT, BO_CLAIMS_PER_SHARD_DEFAULT, BO_IDEM_CAPACITY_DEFAULT,
		BO_EVENTS_PER_SHARD_MAX);
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "%s: %s takes a whole number in %" PRIu64 "..%" PRIu64 ", not '%s'\n", prog, opt, min,
			max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* The demo venue: 20 rows of 30 seats in 3 sections, 3 price tiers (rows
 * 0-4, 5-12, 13-19), and a standing pool of 500. */
static int load_demo(gw_server *gw)
{
	bo_seatmap *m = bo_seatmap_new(20, 600, 1);
	if (!m)
		return -ENOMEM;
	m->category_count = 3;
	for (uint32_t r = 0; r < 20; r++) {
		m->rows[r].section = (uint16_t)(r / 7);
		m->rows[r].seats = 30;
		memset(m->categories + r * 30, r < 5 ? 0 : r < 13 ? 1 : 2, 30);
	}
	m->pool_capacity[0] = 500;
	bo_cmd c = {0};
	c.op = BO_OP_CREATE_EVENT;
	c.client_id = 1;
	c.request_id = 1;
	c.event_id = 1;
	c.map = m;
	bo_result r;
	int rc = gw_apply_local(gw, &c, 1, &r, 10000);
	bo_seatmap_free(m);
	if (rc < 0)
		return rc;
	if (r.status == BO_OK || (r.status == BO_INVALID && r.detail == BO_D_EVENT_EXISTS))
		bo_log(BO_LOG_INFO, "msg=\"demo venue ready\" event=1 seats=600 categories=3 pool=500 %s",
		       r.status == BO_OK && !r.replayed ? "created=1" : "created=0");
	else
		bo_log(BO_LOG_WARN, "msg=\"demo venue not created\" status=%s detail=\"%s\"", bo_status_str(r.status),
		       bo_detail_str(r.detail));
	return 0;
}

int main(int argc, char **argv)
{
	gw_config cfg;
	gw_config_default(&cfg);
	static char listen_env[4096];
	const char *env;
	uint64_t v;
	int demo = 0;
	if ((env = getenv("BOXOFFICE_DATA_DIR")) && *env)
		cfg.data_dir = env;
	if ((env = getenv("BOXOFFICE_SHARDS")) && *env) {
		if (parse_u64("BOXOFFICE_SHARDS", env, 1, GW_SHARDS_MAX, &v) < 0)
			return 2;
		cfg.shards = (uint32_t)v;
	}
	if ((env = getenv("BOXOFFICE_LISTEN")) && *env) {
		snprintf(listen_env, sizeof(listen_env), "%s", env);
		cfg.listen_count = 0;
		for (char *save = NULL, *tok = strtok_r(listen_env, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (cfg.listen_count == GW_LISTEN_MAX) {
				fprintf(stderr, "%s: BOXOFFICE_LISTEN: at most %u addresses\n", prog, GW_LISTEN_MAX);
				return 2;
			}
			cfg.listen[cfg.listen_count++] = tok;
		}
	}
	int listen_flags = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                   \
	do {                                                                           \
		if (!val) {                                                            \
			fprintf(stderr, "%s: %s needs a value (try --help)\n", prog, a); \
			return 2;                                                      \
		}                                                                      \
		i++;                                                                   \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("boxoffice-server %s (wire protocol v%u)\n", BO_VERSION, WIRE_VERSION);
			return 0;
		} else if (!strcmp(a, "--data-dir")) {
			NEED_VALUE();
			cfg.data_dir = val;
		} else if (!strcmp(a, "--shards")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, GW_SHARDS_MAX, &v) < 0)
				return 2;
			cfg.shards = (uint32_t)v;
		} else if (!strcmp(a, "--listen")) {
			NEED_VALUE();
			if (listen_flags == 0)
				cfg.listen_count = 0; /* flags replace the default and the environment */
			if (cfg.listen_count == GW_LISTEN_MAX) {
				fprintf(stderr, "%s: at most %u --listen addresses\n", prog, GW_LISTEN_MAX);
				return 2;
			}
			cfg.listen[cfg.listen_count++] = val;
			listen_flags++;
		} else if (!strcmp(a, "--contexts")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, GW_CONTEXTS_MAX, &v) < 0)
				return 2;
			cfg.contexts = (uint32_t)v;
		} else if (!strcmp(a, "--recv-max")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1024, WIRE_MSG_MAX, &v) < 0)
				return 2;
			cfg.recv_max_bytes = (size_t)v;
		} else if (!strcmp(a, "--sync")) {
			NEED_VALUE();
			if (!strcmp(val, "data"))
				cfg.shard.journal.sync = JOURNAL_SYNC_DATA;
			else if (!strcmp(val, "none"))
				cfg.shard.journal.sync = JOURNAL_SYNC_NONE_UNSAFE;
			else {
				fprintf(stderr, "%s: --sync takes 'data' or 'none' (UNSAFE), not '%s'\n", prog, val);
				return 2;
			}
		} else if (!strcmp(a, "--snapshot-every")) {
			NEED_VALUE();
			if (parse_u64(a, val, 0, UINT64_MAX / 2, &v) < 0)
				return 2;
			cfg.shard.snapshot_every = v;
		} else if (!strcmp(a, "--seats-max")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, BO_SEATS_PER_SHARD_MAX, &v) < 0)
				return 2;
			cfg.shard.engine.seats_max = (uint32_t)v;
		} else if (!strcmp(a, "--claims-max")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, BO_CLAIMS_PER_SHARD_MAX, &v) < 0)
				return 2;
			cfg.shard.engine.claims_max = (uint32_t)v;
		} else if (!strcmp(a, "--idem-capacity")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, BO_IDEM_CAPACITY_MAX, &v) < 0 || !BO_IS_POW2(v)) {
				if (!BO_IS_POW2(v))
					fprintf(stderr, "%s: --idem-capacity must be a power of two\n", prog);
				return 2;
			}
			cfg.shard.engine.idem_capacity = (uint32_t)v;
		} else if (!strcmp(a, "--events-max")) {
			NEED_VALUE();
			if (parse_u64(a, val, 1, BO_EVENTS_PER_SHARD_MAX, &v) < 0)
				return 2;
			cfg.shard.engine.events_max = (uint32_t)v;
		} else if (!strcmp(a, "--demo")) {
			demo = 1;
		} else if (!strcmp(a, "--log-level")) {
			NEED_VALUE();
			int lv = !strcmp(val, "debug") ? BO_LOG_DEBUG
				 : !strcmp(val, "info") ? BO_LOG_INFO
				 : !strcmp(val, "warn") ? BO_LOG_WARN
				 : !strcmp(val, "error") ? BO_LOG_ERROR
							  : -1;
			if (lv < 0) {
				fprintf(stderr, "%s: --log-level takes debug, info, warn or error\n", prog);
				return 2;
			}
			bo_log_level(lv);
		} else {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, a);
			return 2;
		}
#undef NEED_VALUE
	}

	/* Signals are taken by this thread alone (sigwait), never by the
	 * shard, output or nng threads started below, which inherit the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	bo_log(BO_LOG_INFO, "msg=\"starting\" version=%s data_dir=%s shards=%u sync=%s snapshot_every=%" PRIu64, BO_VERSION,
	       cfg.data_dir, cfg.shards, cfg.shard.journal.sync == JOURNAL_SYNC_DATA ? "data" : "NONE-UNSAFE",
	       cfg.shard.snapshot_every);
	if (cfg.shard.journal.sync != JOURNAL_SYNC_DATA)
		bo_log(BO_LOG_WARN, "msg=\"--sync none is UNSAFE: acknowledged changes can be lost on power loss\"");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	gw_server *gw;
	char err[GW_ERR_LEN];
	int rc = gw_start(&cfg, &gw, err, sizeof(err));
	if (rc < 0) {
		bo_log(BO_LOG_ERROR, "msg=\"start-up failed\" error=\"%s\"", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (demo && (rc = load_demo(gw)) < 0)
		bo_log(BO_LOG_WARN, "msg=\"demo venue not loaded\" error=\"%s\"", strerror(-rc));
	bo_log(BO_LOG_INFO, "msg=\"ready\" startup_seconds=%.3f",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

	int sig = 0;
	while (sigwait(&sigs, &sig) != 0)
		;
	bo_log(BO_LOG_INFO, "msg=\"stopping\" signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	rc = gw_stop(gw, 10000);
	gw_stats st;
	gw_stats_get(gw, &st);
	const char *failed = gw_failed(gw);
	bo_log(rc == 0 && !failed ? BO_LOG_INFO : BO_LOG_WARN,
	       "msg=\"stopped\" requests=%" PRIu64 " commands=%" PRIu64 " busy=%" PRIu64 " invalid_messages=%" PRIu64
	       "%s%s%s%s",
	       st.requests, st.commands, st.busy, st.invalid_msgs, rc ? " in_flight_dropped=1" : "",
	       failed ? " failure=\"" : "", failed ? failed : "", failed ? "\"" : "");
	if (gw_close_hung(gw)) {
		fflush(NULL);
		_exit(0); /* nng may still touch gw: no free, no exit handlers */
	}
	gw_free(gw);
	return 0;
}
