/*
 * gateway.h — boxoffice-server's network side: nng REP listeners that
 * decode wire-protocol requests (protocol/wire.h), route each command to
 * the shard that owns its event, and answer when every command's result
 * has come out of its shard's output ring — which happens only once the
 * command's journal record is durable (shard/shard.h).
 *
 * THREADS
 *   nng's own threads run the per-context receive/send callbacks: decode,
 *   route, submit (never blocking: a full shard ring answers `busy`).
 *   One output thread per shard drains that shard's output ring, files each
 *   result under its request (the tag says which request and which
 *   command), and the thread that completes a request's last result
 *   encodes and sends its reply.
 *
 * With a database (gw_config.committer.dsn), one committer per shard
 * (committer/committer.h) carries the durable journal into PostgreSQL on
 * threads of its own; the shards then keep their journal until it is
 * applied (shard_retain). A status thread logs each shard's durable
 * sequence and committer state every status_every_ms, and within 100 ms
 * of a committer's state change (it polls: the committer has no
 * callback); the admin request server_status
 * (protocol/wire.h) answers the same from the nng threads.
 *
 * Each of `contexts` nng contexts owns one request slot, allocated at
 * start-up with room for a full message (WIRE_BATCH_MAX commands): the
 * number of requests in flight is bounded, and a request never allocates
 * on its path except the seat map of a create_event.
 */
#ifndef BO_GATEWAY_H
#define BO_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "committer/committer.h"
#include "gateway/node.h"
#include "gateway/publish.h"
#include "protocol/wire.h"
#include "shard/shard.h"

#define GW_LISTEN_MAX 8u
#define GW_SHARDS_MAX 64u
#define GW_ERR_LEN 1024u

_Static_assert(GW_SHARDS_MAX <= WIRE_STATUS_SHARDS_MAX, "server_status describes every shard");
_Static_assert(COMMITTER_REASON_LEN <= WIRE_REASON_LEN_MAX, "a committer's reason fits the reply");

/* Default interval of the status log, and its bound. */
#define GW_STATUS_EVERY_MS_DEFAULT 10000u
#define GW_STATUS_EVERY_MS_MAX 86400000u

/* Requests in flight at once, default: each holds up to 4096 commands, so
 * 32 keep ~130k commands in flight, far more than a 2-core machine needs
 * to saturate its shards (scripts/bench e2e). */
#define GW_CONTEXTS_DEFAULT 32u
#define GW_CONTEXTS_MAX 1024u

typedef struct gw_config {
	const char *data_dir;		     /* shard journals: data_dir/shard-NNNN */
	uint32_t shards;		     /* 1..GW_SHARDS_MAX */
	const char *listen[GW_LISTEN_MAX];   /* nng URLs: tcp://host:port, ipc:///path */
	uint32_t listen_count;
	uint32_t contexts;		     /* requests in flight, 1..GW_CONTEXTS_MAX */
	size_t recv_max_bytes;		     /* largest request body, 1..WIRE_MSG_MAX: one
					      * byte more drops the connection */
	shard_config shard;		     /* template: id and data_dir are set per shard */
	/* Template of every shard's committer. dsn NULL: no database, the
	 * engine runs alone (server_status says "off"); otherwise each shard
	 * is opened with retain_seq 0 and gets a committer once started. */
	committer_config committer;
	uint32_t status_every_ms;	     /* status log interval; 0: no status log */
	/* Projections (gateway/publish.h): nng PUB URLs; none: no PUB socket
	 * (the read model still answers queries). */
	const char *publish[GW_PUBLISH_MAX];
	uint32_t publish_count;
	const char *version;		     /* the server's version, for server_status */
	/* HTTP/JSON front (gateway/http.h): "HOST:PORT" (IPv4 literal or
	 * "localhost"); NULL: none. */
	const char *http;
	/* Framed TCP front (gateway/frame.h, schemas/frame.md): "HOST:PORT"
	 * as http; NULL: none. */
	const char *frame;
	/* Hot-event throttling (gateway/throttle.h): each event admits
	 * throttle_rate mutating commands per second, in bursts of at most
	 * throttle_burst; throttle_rate 0: off. Otherwise both in
	 * 1..GW_THROTTLE_RATE_MAX / GW_THROTTLE_BURST_MAX (gw_start refuses
	 * others). Commands of gw_apply_local are never throttled. */
	uint32_t throttle_rate, throttle_burst;
	/* The shared token (gateway/auth.h), not NUL-terminated; NULL: none.
	 * gw_start refuses a listener (nng or HTTP) on a non-loopback address
	 * without one. Copied by gw_start. */
	const char *auth_token;
	size_t auth_token_len;
	/* Cluster node (gateway/node.h): node.etcd NULL: a single server. */
	gw_node_config node;
} gw_config;

typedef struct gw_server gw_server;

typedef struct gw_stats {
	uint64_t requests;	/* messages answered */
	uint64_t commands;	/* commands answered */
	uint64_t invalid_msgs;	/* messages answered with a message-level invalid */
	uint64_t busy;		/* commands answered busy (ring full, shard stopped, draining) */
	uint64_t reads;		/* queries answered from the read model (never a ring) */
	uint64_t ring_commands; /* commands submitted into the shards' input rings */
	uint64_t event_states;	/* event_state requests answered ok */
	uint64_t event_states_throttled; /* ... answered throttled */
	uint64_t unauthorized;	/* messages refused: no or a wrong auth token */
	uint64_t throttled;	/* commands answered throttled: a hot event (throttle.h) */
	gw_pub_stats pub;	/* zero without --publish */
} gw_stats;

/* Fills cfg with defaults: data dir "var", 1 shard per core (at most 4),
 * tcp://127.0.0.1:7400, GW_CONTEXTS_DEFAULT contexts, WIRE_MSG_MAX, no
 * database (committer_config_default, dsn NULL), a status line every
 * GW_STATUS_EVERY_MS_DEFAULT, version "unknown", throttling on at
 * GW_THROTTLE_RATE_DEFAULT / GW_THROTTLE_BURST_DEFAULT (throttle.h). */
void gw_config_default(gw_config *cfg);

/* Opens (recovering) every shard, starts their writers and output threads,
 * their committers (with a dsn), the status thread, then the listeners.
 * Logs recovery per shard. Returns 0, or a negative errno with the reason
 * in err (a shard that cannot recover, a committer that cannot start, an
 * address in use, a bad URL). A database that is down or refuses is no
 * start-up failure: it shows in the committers' status. -EPERM, before
 * anything is opened: a --listen, --publish, --http or --frame address that is not
 * loopback (gateway/auth.h) while cfg has no auth_token; err names it. On
 * failure nothing is left running. */
int gw_start(const gw_config *cfg, gw_server **out /* OUT */, char *err, size_t errlen);

/* Graceful stop: new requests are answered `busy`; wait for every request
 * in flight to be answered (at most timeout_ms), stop the shards
 * (everything applied is durable), stop the status thread, then each
 * committer (it applies what is durable when the database is reachable; it
 * does not wait for one that is down), let the replies drain, then close
 * the listeners and the socket. Returns 0, or -ETIMEDOUT when requests were still
 * in flight at the deadline (they are then dropped unanswered; nothing
 * unacknowledged was lost: the client retries with the same request id). */
int gw_stop(gw_server *gw, int64_t timeout_ms);

/* 1 when gw_stop() gave up waiting for nng to close its socket (a known
 * nng 1.5.2 hang). Everything was durable and answered by then; nng may
 * still use the server's memory, so the caller must exit without
 * gw_free(). */
int gw_close_hung(const gw_server *gw);

/* The HTTP front's bound port (cfg.http with port 0 picks a free one), or
 * -1 without one. */
int gw_http_port(const gw_server *gw);

/* The framed front's bound port (cfg.frame with port 0 picks a free one),
 * or -1 without one. */
int gw_frame_port(const gw_server *gw);

/* Frees a stopped server. */
void gw_free(gw_server *gw);

/* NULL while every shard is healthy, else the first failure. */
const char *gw_failed(const gw_server *gw);

void gw_stats_get(const gw_server *gw, gw_stats *out /* OUT */);

/* What server_status answers: the version, and per shard its durable
 * sequence, writer batches and committer status ("off" without a
 * database; "stopped" once gw_stop stopped it). Any thread, between
 * gw_start and gw_free. */
void gw_server_status(gw_server *gw, wire_server_status *out /* OUT */);

/* Applies commands directly (not over the network) and waits up to
 * timeout_ms for their results: used by the server to load the demo venue.
 * 1 <= n <= WIRE_BATCH_MAX. The commands are copied, create_event maps
 * included: the caller may free its maps as soon as this returns. Calls
 * are serialised. Returns
 *   0           res[0..n) holds the results (each may be `busy`: a full ring,
 *               a failed shard, or a server that is stopping);
 *   -ETIMEDOUT  the commands were submitted but not all answered in time:
 *               they may still be applied; their results are discarded;
 *   -EBUSY      an earlier call that timed out still has commands in a
 *               shard, and they did not come out within timeout_ms: nothing
 *               of this call was submitted;
 *   -ENOMEM     no memory to copy a seat map; -EINVAL a seat map over the
 *               limits of base/limits.h: nothing submitted. */
int gw_apply_local(gw_server *gw, const bo_cmd *cmds, uint32_t n, bo_result *res /* OUT */, int64_t timeout_ms);

#endif /* BO_GATEWAY_H */
