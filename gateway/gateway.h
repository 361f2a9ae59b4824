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
 * Each of `contexts` nng contexts owns one request slot, allocated at
 * start-up with room for a full message (WIRE_BATCH_MAX commands): the
 * number of requests in flight is bounded, and a request never allocates
 * on its path except the seat map of a create_event.
 */
#ifndef BO_GATEWAY_H
#define BO_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"

#define GW_LISTEN_MAX 8u
#define GW_SHARDS_MAX 64u
#define GW_ERR_LEN 1024u

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
} gw_config;

typedef struct gw_server gw_server;

typedef struct gw_stats {
	uint64_t requests;	/* messages answered */
	uint64_t commands;	/* commands answered */
	uint64_t invalid_msgs;	/* messages answered with a message-level invalid */
	uint64_t busy;		/* commands answered busy (ring full, shard stopped, draining) */
} gw_stats;

/* Fills cfg with defaults: data dir "var", 1 shard per core (at most 4),
 * tcp://127.0.0.1:7400, GW_CONTEXTS_DEFAULT contexts, WIRE_MSG_MAX. */
void gw_config_default(gw_config *cfg);

/* Opens (recovering) every shard, starts their writers and output threads,
 * then the listeners. Logs recovery per shard. Returns 0, or a negative
 * errno with the reason in err (a shard that cannot recover, an address
 * in use, a bad URL). On failure nothing is left running. */
int gw_start(const gw_config *cfg, gw_server **out /* OUT */, char *err, size_t errlen);

/* Graceful stop: new requests are answered `busy`; wait for every request
 * in flight to be answered (at most timeout_ms), stop the shards
 * (everything applied is durable), let the replies drain, then close the
 * listeners and the socket. Returns 0, or -ETIMEDOUT when requests were still
 * in flight at the deadline (they are then dropped unanswered; nothing
 * unacknowledged was lost: the client retries with the same request id). */
int gw_stop(gw_server *gw, int64_t timeout_ms);

/* 1 when gw_stop() gave up waiting for nng to close its socket (a known
 * nng 1.5.2 hang). Everything was durable and answered by then; nng may
 * still use the server's memory, so the caller must exit without
 * gw_free(). */
int gw_close_hung(const gw_server *gw);

/* Frees a stopped server. */
void gw_free(gw_server *gw);

/* NULL while every shard is healthy, else the first failure. */
const char *gw_failed(const gw_server *gw);

void gw_stats_get(const gw_server *gw, gw_stats *out /* OUT */);

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
