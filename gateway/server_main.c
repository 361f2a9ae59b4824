/*
 * server_main.c — boxoffice-server: options, start-up (recovery), signals,
 * graceful shutdown. The work is in gateway.c and shard/shard.c.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/parse.h"
#include "base/seatmap.h"
#include "base/tokenfile.h"
#include "gateway/gateway.h"
#include "gateway/node.h"
#include "gateway/throttle.h"
#include "protocol/wire.h"

#ifndef BO_VERSION
#define BO_VERSION "unknown"
#endif

/* Exit statuses (--help says them). */
enum { EXIT_OK = 0, EXIT_START_FAILED = 1, EXIT_USAGE = 2 };

/* How long shutdown waits for requests in flight, and the demo venue for
 * its creation (it waits on recovery's first batch at most). */
#define SRV_STOP_TIMEOUT_MS 10000
#define SRV_DEMO_TIMEOUT_MS 10000

static const char *prog = "boxoffice-server";

/* What the command line and the environment ask for. */
typedef struct srv_options {
	gw_config cfg;
	int demo;
	int listen_flags; /* --listen seen so far: the first replaces the default and the environment */
	char *listen_env; /* strdup of $BOXOFFICE_LISTEN: cfg.listen points into it */
	int publish_flags; /* --publish seen so far: the first replaces the environment */
	char *publish_env; /* strdup of $BOXOFFICE_PUBLISH: cfg.publish points into it */
	/* The database: a DSN, or --no-pg, or neither (the engine runs alone
	 * and says so). A flag wins over the environment; both flags (or both
	 * variables) are a usage error. */
	const char *pg_dsn_env;
	int no_pg_env;
	const char *pg_dsn_flag;
	int no_pg_flag;
	int no_pg; /* resolved */
	/* --auth-token-file (or BOXOFFICE_AUTH_TOKEN_FILE): the file, and the
	 * token read from it, which cfg.auth_token points at. */
	const char *auth_file;
	char auth_token[BO_AUTH_TOKEN_LEN_MAX + 1];
	int cluster_flags; /* cluster options given (they need --etcd) */
} srv_options;

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
		"                        [BOXOFFICE_LISTEN, comma-separated] (default: tcp://127.0.0.1:7400).\n"
		"                        An address other than loopback (127.0.0.0/8, ::1, localhost, ipc://)\n"
		"                        needs --auth-token-file (also for --publish); without it start-up\n"
		"                        fails (exit status 1)\n"
		"  --auth-token-file FILE  require the shared token in FILE of every request (nng: the\n"
		"                        {\"auth\": TOKEN} prefix, schemas/protocol.md section 17); FILE is\n"
		"                        one line of 1..%u visible ASCII characters, a regular file that\n"
		"                        only its owner may read (chmod 600) [BOXOFFICE_AUTH_TOKEN_FILE]\n"
		"  --publish URL         publish live availability (projections, schemas/protocol.md\n"
		"                        part II) on an nng PUB socket at URL; repeatable, up to %u\n"
		"                        [BOXOFFICE_PUBLISH, comma-separated] (default: none). Queries\n"
		"                        are answered from the read model with or without it\n"
		"  --http HOST:PORT      serve the HTTP/JSON API (schemas/http.md), /metrics, /healthz\n"
		"                        and /readyz on HOST:PORT (an IPv4 address or localhost)\n"
		"                        [BOXOFFICE_HTTP] (default: none; scripts/run: 127.0.0.1:7480)\n"
		"  --frame HOST:PORT     serve the request messages of schemas/protocol.md as length-\n"
		"                        prefixed frames over plain TCP (schemas/frame.md), the fastest\n"
		"                        path for one command per request [BOXOFFICE_FRAME]\n"
		"                        (default: none; scripts/run: 127.0.0.1:7402)\n"
		"  --contexts N          requests in flight, 1..%u (default: %u)\n"
		"  --recv-max BYTES      largest request accepted, <= %u (default: %u); a larger one\n"
		"                        drops the connection (nng cannot answer it)\n"
		"  --sync data|none      data: fdatasync every group commit (default). none: UNSAFE,\n"
		"                        benchmarks only: acknowledged changes can be lost on power loss\n"
		"  --snapshot-every N    journal records between snapshots, 0 = never (default: 5000000)\n"
		"  --seats-max N         seats per shard (default: %u)\n"
		"  --claims-max N        holds + bookings per shard (default: %u)\n"
		"  --idem-capacity N     idempotency window entries per shard, power of two (default: %u)\n"
		"  --events-max N        events per shard (default: %u)\n"
		"  --pg-dsn DSN          carry every shard's journal into PostgreSQL (libpq connection\n"
		"                        string, e.g. 'host=/path/to/socket dbname=boxoffice'): one\n"
		"                        committer thread per shard; the journal is kept until applied\n"
		"                        [BOXOFFICE_PG_DSN]. With --etcd, give every node the same\n"
		"                        database: only a shard's current primary runs its committer\n"
		"                        (carrying what every in-sync copy holds); a new primary's\n"
		"                        resumes from the database's checkpoint\n"
		"  --no-pg               run the engine alone, without a database [BOXOFFICE_NO_PG=1];\n"
		"                        conflicts with --pg-dsn. With neither, the engine also runs\n"
		"                        alone and the log says the journal is not carried to PostgreSQL\n"
		"  --status-every SEC    log each shard's durable sequence, committer state and lag\n"
		"                        every SEC seconds, and at once when a committer changes state;\n"
		"                        0 = off, at most %u [BOXOFFICE_STATUS_EVERY] (default: %u)\n"
		"  --throttle-rate N     hot events: each event admits N mutating commands per second\n"
		"                        (after a burst, below); more are answered throttled with a\n"
		"                        retry_after_ms hint and not applied. 0 = off, at most %u\n"
		"                        [BOXOFFICE_THROTTLE_RATE] (default: %u: ~7%% of what a shard\n"
		"                        sustains, twice a human on-sale's peak; README)\n"
		"  --throttle-burst N    commands an idle event may send at once, 1..%u\n"
		"                        [BOXOFFICE_THROTTLE_BURST] (default: %u, one full message)\n"
		"  --demo                create the demo venue (event 1) if it does not exist\n"
		"\n"
		"Cluster (issue 13; only with --etcd, otherwise a single server as above):\n"
		"  --etcd URL[,URL...]   etcd endpoints (http://HOST:PORT of its HTTP/JSON gateway): the\n"
		"                        shard map lives under /boxoffice/ there. Every node opens every\n"
		"                        shard (same --shards everywhere): primary where the map says so,\n"
		"                        else a standby fed by the primary's journal. With --pg-dsn,\n"
		"                        the shard's primary carries it to PostgreSQL (see --pg-dsn)\n"
		"  --node-id N           this node's id, 1..%u (required with --etcd)\n"
		"  --repl URL            this node's replication listener, e.g. tcp://127.0.0.11:7101\n"
		"                        (required with --etcd); primaries dial it\n"
		"  --advertise URL       the client address other nodes tell clients (not_primary\n"
		"                        replies) (default: the first --listen)\n"
		"  --lease-ms MS         this node's etcd lease, %u..%u (default: %u): a primary is\n"
		"                        replaced about this long after it stops renewing\n"
		"  --min-in-sync 1|2     copies a write needs, the primary's included (default: 1: a\n"
		"                        silent standby is dropped and the primary goes on alone; 2:\n"
		"                        writes wait instead)\n"
		"  --bootstrap-primary N the node that creates missing shard maps, naming itself the\n"
		"                        primary (default: 1)\n"
		"  --allow-unsafe-promote  let a standby that is not in sync take a shard whose\n"
		"                        primary is gone (acknowledged changes may be lost; with\n"
		"                        --pg-dsn the database may then hold changes the cluster lost)\n"
		"  --log-level LEVEL     debug, info, warn or error (default: info)\n"
		"  --version             print the version and exit\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit status: 0 after a clean shutdown, 1 when start-up fails (the log says why: a shard\n"
		"that cannot recover names the file, offset and sequence), 2 for usage errors.\n",
		prog, GW_SHARDS_MAX, GW_LISTEN_MAX, BO_AUTH_TOKEN_LEN_MAX, GW_PUBLISH_MAX, GW_CONTEXTS_MAX, GW_CONTEXTS_DEFAULT, WIRE_MSG_MAX, WIRE_MSG_MAX,
		BO_SEATS_PER_SHARD_DEFAULT, BO_CLAIMS_PER_SHARD_DEFAULT, BO_IDEM_CAPACITY_DEFAULT,
		BO_EVENTS_PER_SHARD_MAX, GW_STATUS_EVERY_MS_MAX / 1000, GW_STATUS_EVERY_MS_DEFAULT / 1000,
		GW_THROTTLE_RATE_MAX, GW_THROTTLE_RATE_DEFAULT, GW_THROTTLE_BURST_MAX, GW_THROTTLE_BURST_DEFAULT,
		GW_NODE_ID_MAX, GW_NODE_LEASE_MS_MIN, GW_NODE_LEASE_MS_MAX, GW_NODE_LEASE_MS_DEFAULT);
}

/* ---- Options ------------------------------------------------------------- */

/* A whole number in [min, max] for option (or variable) `opt`; otherwise
 * says so on stderr and returns -1. */
static int opt_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (bo_parse_u64(s, min, max, 0, out) == 0)
		return 0;
	fprintf(stderr, "%s: %s takes a whole number in %" PRIu64 "..%" PRIu64 ", not '%s'\n", prog, opt, min, max,
		s);
	return -1;
}

/* Adds one listen address; -1 when there are GW_LISTEN_MAX already. */
static int opt_listen(srv_options *o, const char *url)
{
	if (o->cfg.listen_count == GW_LISTEN_MAX)
		return -1;
	o->cfg.listen[o->cfg.listen_count++] = url;
	return 0;
}

/* Adds one publish address; -1 when there are GW_PUBLISH_MAX already. */
static int opt_publish(srv_options *o, const char *url)
{
	if (o->cfg.publish_count == GW_PUBLISH_MAX)
		return -1;
	o->cfg.publish[o->cfg.publish_count++] = url;
	return 0;
}

/* The environment, read before the flags (which win). Returns 0 or -1 (said
 * on stderr). */
static int options_from_env(srv_options *o)
{
	const char *env;
	uint64_t v;
	if ((env = getenv("BOXOFFICE_DATA_DIR")) && *env)
		o->cfg.data_dir = env;
	if ((env = getenv("BOXOFFICE_SHARDS")) && *env) {
		if (opt_u64("BOXOFFICE_SHARDS", env, 1, GW_SHARDS_MAX, &v) < 0)
			return -1;
		o->cfg.shards = (uint32_t)v;
	}
	if ((env = getenv("BOXOFFICE_HTTP")) && *env)
		o->cfg.http = env;
	if ((env = getenv("BOXOFFICE_FRAME")) && *env)
		o->cfg.frame = env;
	if ((env = getenv("BOXOFFICE_AUTH_TOKEN_FILE")) && *env)
		o->auth_file = env;
	if ((env = getenv("BOXOFFICE_PG_DSN")) && *env)
		o->pg_dsn_env = env;
	if ((env = getenv("BOXOFFICE_NO_PG")) && *env) {
		if (strcmp(env, "0") && strcmp(env, "1")) {
			fprintf(stderr, "%s: BOXOFFICE_NO_PG takes 1 (no database) or 0, not '%s'\n", prog, env);
			return -1;
		}
		o->no_pg_env = env[0] == '1';
	}
	if ((env = getenv("BOXOFFICE_STATUS_EVERY")) && *env) {
		if (opt_u64("BOXOFFICE_STATUS_EVERY", env, 0, GW_STATUS_EVERY_MS_MAX / 1000, &v) < 0)
			return -1;
		o->cfg.status_every_ms = (uint32_t)v * 1000;
	}
	if ((env = getenv("BOXOFFICE_THROTTLE_RATE")) && *env) {
		if (opt_u64("BOXOFFICE_THROTTLE_RATE", env, 0, GW_THROTTLE_RATE_MAX, &v) < 0)
			return -1;
		o->cfg.throttle_rate = (uint32_t)v;
	}
	if ((env = getenv("BOXOFFICE_THROTTLE_BURST")) && *env) {
		if (opt_u64("BOXOFFICE_THROTTLE_BURST", env, 1, GW_THROTTLE_BURST_MAX, &v) < 0)
			return -1;
		o->cfg.throttle_burst = (uint32_t)v;
	}
	if ((env = getenv("BOXOFFICE_LISTEN")) && *env) {
		/* A copy to cut at the commas; it lives as long as the server. */
		if (!(o->listen_env = strdup(env))) {
			fprintf(stderr, "%s: out of memory\n", prog);
			return -1;
		}
		o->cfg.listen_count = 0;
		for (char *save = NULL, *tok = strtok_r(o->listen_env, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			if (opt_listen(o, tok) < 0) {
				fprintf(stderr, "%s: BOXOFFICE_LISTEN: at most %u addresses\n", prog, GW_LISTEN_MAX);
				return -1;
			}
		}
	}
	if ((env = getenv("BOXOFFICE_PUBLISH")) && *env) {
		if (!(o->publish_env = strdup(env))) {
			fprintf(stderr, "%s: out of memory\n", prog);
			return -1;
		}
		for (char *save = NULL, *tok = strtok_r(o->publish_env, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			if (opt_publish(o, tok) < 0) {
				fprintf(stderr, "%s: BOXOFFICE_PUBLISH: at most %u addresses\n", prog, GW_PUBLISH_MAX);
				return -1;
			}
		}
	}
	return 0;
}

/* Long options that take a value: their getopt_long codes, after the
 * characters so that none collides with a short option. */
enum {
	OPT_DATA_DIR = 256,
	OPT_SHARDS,
	OPT_LISTEN,
	OPT_AUTH_TOKEN_FILE,
	OPT_PUBLISH,
	OPT_HTTP,
	OPT_FRAME,
	OPT_CONTEXTS,
	OPT_RECV_MAX,
	OPT_SYNC,
	OPT_SNAPSHOT_EVERY,
	OPT_SEATS_MAX,
	OPT_CLAIMS_MAX,
	OPT_IDEM_CAPACITY,
	OPT_EVENTS_MAX,
	OPT_PG_DSN,
	OPT_NO_PG,
	OPT_STATUS_EVERY,
	OPT_THROTTLE_RATE,
	OPT_THROTTLE_BURST,
	OPT_DEMO,
	OPT_ETCD,
	OPT_NODE_ID,
	OPT_REPL,
	OPT_ADVERTISE,
	OPT_LEASE_MS,
	OPT_MIN_IN_SYNC,
	OPT_BOOTSTRAP_PRIMARY,
	OPT_ALLOW_UNSAFE_PROMOTE,
	OPT_LOG_LEVEL,
	OPT_VERSION,
};

static const struct option long_options[] = {
	{"data-dir", required_argument, NULL, OPT_DATA_DIR},
	{"shards", required_argument, NULL, OPT_SHARDS},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"auth-token-file", required_argument, NULL, OPT_AUTH_TOKEN_FILE},
	{"publish", required_argument, NULL, OPT_PUBLISH},
	{"http", required_argument, NULL, OPT_HTTP},
	{"frame", required_argument, NULL, OPT_FRAME},
	{"contexts", required_argument, NULL, OPT_CONTEXTS},
	{"recv-max", required_argument, NULL, OPT_RECV_MAX},
	{"sync", required_argument, NULL, OPT_SYNC},
	{"snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY},
	{"seats-max", required_argument, NULL, OPT_SEATS_MAX},
	{"claims-max", required_argument, NULL, OPT_CLAIMS_MAX},
	{"idem-capacity", required_argument, NULL, OPT_IDEM_CAPACITY},
	{"events-max", required_argument, NULL, OPT_EVENTS_MAX},
	{"pg-dsn", required_argument, NULL, OPT_PG_DSN},
	{"no-pg", no_argument, NULL, OPT_NO_PG},
	{"status-every", required_argument, NULL, OPT_STATUS_EVERY},
	{"throttle-rate", required_argument, NULL, OPT_THROTTLE_RATE},
	{"throttle-burst", required_argument, NULL, OPT_THROTTLE_BURST},
	{"demo", no_argument, NULL, OPT_DEMO},
	{"etcd", required_argument, NULL, OPT_ETCD},
	{"node-id", required_argument, NULL, OPT_NODE_ID},
	{"repl", required_argument, NULL, OPT_REPL},
	{"advertise", required_argument, NULL, OPT_ADVERTISE},
	{"lease-ms", required_argument, NULL, OPT_LEASE_MS},
	{"min-in-sync", required_argument, NULL, OPT_MIN_IN_SYNC},
	{"bootstrap-primary", required_argument, NULL, OPT_BOOTSTRAP_PRIMARY},
	{"allow-unsafe-promote", no_argument, NULL, OPT_ALLOW_UNSAFE_PROMOTE},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"version", no_argument, NULL, OPT_VERSION},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* "--NAME" of a long option's code, for messages. */
static const char *opt_name(int code)
{
	static char buf[32];
	for (const struct option *lo = long_options; lo->name; lo++)
		if (lo->val == code) {
			snprintf(buf, sizeof(buf), "--%s", lo->name);
			return buf;
		}
	return "?";
}

/* --sync and --log-level: words, not numbers. */
static int opt_word(srv_options *o, int code, const char *val)
{
	if (code == OPT_SYNC) {
		if (!strcmp(val, "data"))
			o->cfg.shard.journal.sync = JOURNAL_SYNC_DATA;
		else if (!strcmp(val, "none"))
			o->cfg.shard.journal.sync = JOURNAL_SYNC_NONE_UNSAFE;
		else {
			fprintf(stderr, "%s: --sync takes 'data' or 'none' (UNSAFE), not '%s'\n", prog, val);
			return -1;
		}
		return 0;
	}
	int lv = !strcmp(val, "debug")	 ? BO_LOG_DEBUG
		 : !strcmp(val, "info")	 ? BO_LOG_INFO
		 : !strcmp(val, "warn")	 ? BO_LOG_WARN
		 : !strcmp(val, "error") ? BO_LOG_ERROR
					 : -1;
	if (lv < 0) {
		fprintf(stderr, "%s: --log-level takes debug, info, warn or error\n", prog);
		return -1;
	}
	bo_log_level(lv);
	return 0;
}

/* The numeric options: range-checked into cfg. Returns 0 or -1 (said). */
static int opt_number(srv_options *o, int code, const char *val)
{
	gw_config *c = &o->cfg;
	const char *name = opt_name(code);
	uint64_t v;
	switch (code) {
	case OPT_SHARDS:
		if (opt_u64(name, val, 1, GW_SHARDS_MAX, &v) < 0)
			return -1;
		c->shards = (uint32_t)v;
		return 0;
	case OPT_CONTEXTS:
		if (opt_u64(name, val, 1, GW_CONTEXTS_MAX, &v) < 0)
			return -1;
		c->contexts = (uint32_t)v;
		return 0;
	case OPT_RECV_MAX:
		if (opt_u64(name, val, 1024, WIRE_MSG_MAX, &v) < 0)
			return -1;
		c->recv_max_bytes = (size_t)v;
		return 0;
	case OPT_SNAPSHOT_EVERY:
		if (opt_u64(name, val, 0, UINT64_MAX / 2, &v) < 0)
			return -1;
		c->shard.snapshot_every = v;
		return 0;
	case OPT_SEATS_MAX:
		if (opt_u64(name, val, 1, BO_SEATS_PER_SHARD_MAX, &v) < 0)
			return -1;
		c->shard.engine.seats_max = (uint32_t)v;
		return 0;
	case OPT_CLAIMS_MAX:
		if (opt_u64(name, val, 1, BO_CLAIMS_PER_SHARD_MAX, &v) < 0)
			return -1;
		c->shard.engine.claims_max = (uint32_t)v;
		return 0;
	case OPT_IDEM_CAPACITY:
		if (opt_u64(name, val, 1, BO_IDEM_CAPACITY_MAX, &v) < 0)
			return -1;
		if (!BO_IS_POW2(v)) {
			fprintf(stderr, "%s: --idem-capacity must be a power of two\n", prog);
			return -1;
		}
		c->shard.engine.idem_capacity = (uint32_t)v;
		return 0;
	case OPT_EVENTS_MAX:
		if (opt_u64(name, val, 1, BO_EVENTS_PER_SHARD_MAX, &v) < 0)
			return -1;
		c->shard.engine.events_max = (uint32_t)v;
		return 0;
	case OPT_STATUS_EVERY:
		if (opt_u64(name, val, 0, GW_STATUS_EVERY_MS_MAX / 1000, &v) < 0)
			return -1;
		c->status_every_ms = (uint32_t)v * 1000;
		return 0;
	case OPT_THROTTLE_RATE:
		if (opt_u64(name, val, 0, GW_THROTTLE_RATE_MAX, &v) < 0)
			return -1;
		c->throttle_rate = (uint32_t)v;
		return 0;
	case OPT_THROTTLE_BURST:
		if (opt_u64(name, val, 1, GW_THROTTLE_BURST_MAX, &v) < 0)
			return -1;
		c->throttle_burst = (uint32_t)v;
		return 0;
	case OPT_NODE_ID:
		if (opt_u64(name, val, 1, GW_NODE_ID_MAX, &v) < 0)
			return -1;
		c->node.node_id = (uint32_t)v;
		o->cluster_flags++;
		return 0;
	case OPT_LEASE_MS:
		if (opt_u64(name, val, GW_NODE_LEASE_MS_MIN, GW_NODE_LEASE_MS_MAX, &v) < 0)
			return -1;
		c->node.lease_ms = (uint32_t)v;
		o->cluster_flags++;
		return 0;
	case OPT_MIN_IN_SYNC:
		if (opt_u64(name, val, 1, 2, &v) < 0)
			return -1;
		c->node.min_in_sync = (uint32_t)v;
		o->cluster_flags++;
		return 0;
	case OPT_BOOTSTRAP_PRIMARY:
		if (opt_u64(name, val, 1, GW_NODE_ID_MAX, &v) < 0)
			return -1;
		c->node.bootstrap_primary = (uint32_t)v;
		o->cluster_flags++;
		return 0;
	}
	assert(!"every numeric option has a case");
	return -1;
}

/* One option that takes a value. Returns 0 or -1 (said on stderr). */
static int opt_value(srv_options *o, int code, const char *val)
{
	switch (code) {
	case OPT_DATA_DIR:
		o->cfg.data_dir = val;
		return 0;
	case OPT_HTTP:
		o->cfg.http = val; /* checked by gw_start, which says what is wrong */
		return 0;
	case OPT_FRAME:
		o->cfg.frame = val; /* as --http */
		return 0;
	case OPT_LISTEN:
		if (o->listen_flags++ == 0)
			o->cfg.listen_count = 0; /* flags replace the default and the environment */
		if (opt_listen(o, val) < 0) {
			fprintf(stderr, "%s: at most %u --listen addresses\n", prog, GW_LISTEN_MAX);
			return -1;
		}
		return 0;
	case OPT_PUBLISH:
		if (o->publish_flags++ == 0)
			o->cfg.publish_count = 0; /* flags replace the environment */
		if (opt_publish(o, val) < 0) {
			fprintf(stderr, "%s: at most %u --publish addresses\n", prog, GW_PUBLISH_MAX);
			return -1;
		}
		return 0;
	case OPT_AUTH_TOKEN_FILE:
		o->auth_file = val;
		return 0;
	case OPT_ETCD:
	case OPT_REPL:
	case OPT_ADVERTISE:
		if (!*val) {
			fprintf(stderr, "%s: %s takes a value (try --help)\n", prog, opt_name(code));
			return -1;
		}
		if (code == OPT_ETCD)
			o->cfg.node.etcd = val;
		else if (code == OPT_REPL)
			o->cfg.node.repl = val;
		else
			o->cfg.node.advertise = val;
		if (code != OPT_ETCD)
			o->cluster_flags++;
		return 0;
	case OPT_PG_DSN:
		if (!*val) {
			fprintf(stderr, "%s: --pg-dsn takes a libpq connection string, e.g. 'host=/path/to/socket "
					"dbname=boxoffice' (or --no-pg)\n",
				prog);
			return -1;
		}
		o->pg_dsn_flag = val;
		return 0;
	case OPT_SYNC:
	case OPT_LOG_LEVEL:
		return opt_word(o, code, val);
	default:
		return opt_number(o, code, val);
	}
}

/* Decides the database from the flags and the environment: a flag wins over
 * both variables; --pg-dsn with --no-pg, or both variables without a flag,
 * is a usage error (said on stderr). Returns 0 or -1. */
static int options_database(srv_options *o)
{
	if (o->pg_dsn_flag && o->no_pg_flag) {
		fprintf(stderr, "%s: --pg-dsn and --no-pg exclude each other: give a database or none\n", prog);
		return -1;
	}
	const char *dsn = o->pg_dsn_flag;
	int no_pg = o->no_pg_flag;
	if (!dsn && !no_pg) {
		if (o->pg_dsn_env && o->no_pg_env) {
			fprintf(stderr,
				"%s: BOXOFFICE_PG_DSN and BOXOFFICE_NO_PG=1 exclude each other: unset one (or "
				"pass --pg-dsn or --no-pg)\n",
				prog);
			return -1;
		}
		dsn = o->pg_dsn_env;
		no_pg = o->no_pg_env;
	}
	o->cfg.committer.dsn = no_pg ? NULL : dsn;
	o->no_pg = no_pg;
	return 0;
}

/* Reads the token file, when one is given, into cfg. Returns 0 or -1
 * (said on stderr: the file's fault, in the reader's words). */
static int options_auth(srv_options *o)
{
	if (o->auth_file == NULL)
		return 0;
	char err[512];
	size_t len;
	if (bo_token_file_read(o->auth_file, o->auth_token, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return -1;
	}
	o->cfg.auth_token = o->auth_token;
	o->cfg.auth_token_len = len;
	return 0;
}

/* The cluster options hang together: none without --etcd (a node that
 * forgot --etcd would run as a lone primary beside the cluster); with it,
 * a node id and a replication address. Returns 0 or -1 (said on stderr). */
static int options_cluster(srv_options *o)
{
	const gw_node_config *n = &o->cfg.node;
	if (!n->etcd) {
		if (o->cluster_flags == 0)
			return 0;
		fprintf(stderr, "%s: --node-id, --repl, --advertise, --lease-ms, --min-in-sync, --bootstrap-primary "
				"and --allow-unsafe-promote need --etcd\n",
			prog);
		return -1;
	}
	if (n->node_id == 0 || !n->repl) {
		fprintf(stderr, "%s: --etcd needs --node-id N and --repl URL\n", prog);
		return -1;
	}
	if (strncmp(n->etcd, "http://", 7) != 0 && strncmp(n->etcd, "https://", 8) != 0) {
		fprintf(stderr, "%s: --etcd takes http://HOST:PORT[,http://HOST:PORT...], not '%s'\n", prog,
			n->etcd);
		return -1;
	}
	return 0;
}

/* Parses argv into o (over the environment's values). Returns -1 to go on,
 * else the status to exit with: EXIT_OK after --help or --version,
 * EXIT_USAGE after a usage error (said on stderr). */
static int options_from_args(srv_options *o, int argc, char **argv)
{
	opterr = 0; /* the messages below, in this program's words */
	int code;
	/* ':' first: a missing value is ':' rather than '?'. */
	while ((code = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		switch (code) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case OPT_VERSION:
			printf("boxoffice-server %s (wire protocol v%u)\n", BO_VERSION, WIRE_VERSION);
			return EXIT_OK;
		case OPT_DEMO:
			o->demo = 1;
			break;
		case OPT_NO_PG:
			o->no_pg_flag = 1;
			break;
		case OPT_ALLOW_UNSAFE_PROMOTE:
			o->cfg.node.allow_unsafe_promote = 1;
			o->cluster_flags++;
			break;
		case ':':
			fprintf(stderr, "%s: %s needs a value (try --help)\n", prog, argv[optind - 1]);
			return EXIT_USAGE;
		case '?':
			if (optopt && optopt < OPT_DATA_DIR)
				fprintf(stderr, "%s: unknown option '-%c' (try --help)\n", prog, optopt);
			else
				fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[optind - 1]);
			return EXIT_USAGE;
		default:
			if (opt_value(o, code, optarg) < 0)
				return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[optind]);
		return EXIT_USAGE;
	}
	return options_database(o) < 0 || options_auth(o) < 0 || options_cluster(o) < 0 ? EXIT_USAGE : -1;
}

/* ---- Start, run, stop ---------------------------------------------------- */

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
	int rc = gw_apply_local(gw, &c, 1, &r, SRV_DEMO_TIMEOUT_MS);
	bo_seatmap_free(m); /* gw_apply_local applies its own copy, even after a timeout */
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

/* Signals are taken by the main thread alone (sigwait), never by the
 * shard, output or nng threads started after this, which inherit the mask. */
static void signals_block(sigset_t *sigs /* OUT */)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Recovers the shards and starts listening (then the demo venue, if asked).
 * Returns 0, or -1 after logging why. */
static int server_start(const srv_options *o, gw_server **gw /* OUT */)
{
	const gw_config *cfg = &o->cfg;
	bo_log(BO_LOG_INFO, "msg=\"starting\" version=%s data_dir=%s shards=%u sync=%s snapshot_every=%" PRIu64,
	       BO_VERSION, cfg->data_dir, cfg->shards,
	       cfg->shard.journal.sync == JOURNAL_SYNC_DATA ? "data" : "NONE-UNSAFE", cfg->shard.snapshot_every);
	if (cfg->shard.journal.sync != JOURNAL_SYNC_DATA)
		bo_log(BO_LOG_WARN, "msg=\"--sync none is UNSAFE: acknowledged changes can be lost on power loss\"");
	/* The DSN itself is not logged: it may hold a password. */
	if (cfg->committer.dsn)
		bo_log(BO_LOG_INFO, "msg=\"database on: one committer per shard carries the journal to PostgreSQL\"");
	else if (o->no_pg)
		bo_log(BO_LOG_INFO, "msg=\"no database (--no-pg): journal not carried to PostgreSQL\"");
	else
		bo_log(BO_LOG_WARN, "msg=\"no database: journal not carried to PostgreSQL\" hint=\"pass --pg-dsn DSN, or "
				    "--no-pg to run the engine alone on purpose\"");
	/* Whether, never what: the token stays out of the log. */
	if (cfg->auth_token)
		bo_log(BO_LOG_INFO, "msg=\"auth token required on every request\" auth_token_file=%s", o->auth_file);
	if (cfg->throttle_rate > 0)
		bo_log(BO_LOG_INFO, "msg=\"hot-event throttling on\" rate_per_event=%u burst=%u", cfg->throttle_rate,
		       cfg->throttle_burst);
	else
		bo_log(BO_LOG_INFO, "msg=\"hot-event throttling off (--throttle-rate 0)\"");
	int64_t t0 = bo_clock_ns();
	char err[GW_ERR_LEN];
	if (gw_start(cfg, gw, err, sizeof(err)) < 0) {
		bo_log(BO_LOG_ERROR, "msg=\"start-up failed\" error=\"%s\"", err);
		return -1;
	}
	int64_t took_ns = bo_clock_ns() - t0;
	int rc;
	if (o->demo && (rc = load_demo(*gw)) < 0)
		bo_log(BO_LOG_WARN, "msg=\"demo venue not loaded\" error=\"%s\"", strerror(-rc));
	bo_log(BO_LOG_INFO, "msg=\"ready\" startup_seconds=%.3f", (double)took_ns / 1e9);
	return 0;
}

static int wait_for_signal(const sigset_t *sigs)
{
	int sig = 0;
	while (sigwait(sigs, &sig) != 0)
		;
	return sig;
}

/* Graceful stop: answers what is in flight, makes it durable, logs the
 * totals. Frees gw unless nng still holds it, in which case it exits here. */
static void server_stop(gw_server *gw, int sig)
{
	bo_log(BO_LOG_INFO, "msg=\"stopping\" signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	int rc = gw_stop(gw, SRV_STOP_TIMEOUT_MS);
	gw_stats st;
	gw_stats_get(gw, &st);
	const char *failed = gw_failed(gw);
	bo_log(rc == 0 && !failed ? BO_LOG_INFO : BO_LOG_WARN,
	       "msg=\"stopped\" requests=%" PRIu64 " commands=%" PRIu64 " busy=%" PRIu64 " throttled=%" PRIu64
	       " invalid_messages=%" PRIu64 " unauthorized=%" PRIu64 "%s%s%s%s",
	       st.requests, st.commands, st.busy, st.throttled, st.invalid_msgs, st.unauthorized,
	       rc ? " in_flight_dropped=1" : "",
	       failed ? " failure=\"" : "", failed ? failed : "", failed ? "\"" : "");
	if (gw_close_hung(gw)) {
		fflush(NULL);
		_exit(EXIT_OK); /* nng may still touch gw: no free, no exit handlers */
	}
	gw_free(gw);
}

int main(int argc, char **argv)
{
	srv_options o = {0};
	gw_config_default(&o.cfg);
	o.cfg.version = BO_VERSION;
	int status = options_from_env(&o) < 0 ? EXIT_USAGE : options_from_args(&o, argc, argv);
	if (status < 0) {
		sigset_t sigs;
		signals_block(&sigs);
		gw_server *gw;
		status = EXIT_START_FAILED;
		if (server_start(&o, &gw) == 0) {
			server_stop(gw, wait_for_signal(&sigs));
			status = EXIT_OK;
		}
	}
	free(o.listen_env);
	free(o.publish_env);
	explicit_bzero(o.auth_token, sizeof(o.auth_token));
	return status;
}
