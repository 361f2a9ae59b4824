/*
 * node.h — boxoffice-server as a cluster node (issue 13; DESIGN.md "Beyond
 * one machine"): the shard map in etcd, this node's lease, the role of each
 * of its shards (primary, standby), and the replication that keeps the
 * standbys' journals equal to the primary's (gateway/repl.h).
 *
 * Cluster mode is on only with gw_node_config.etcd; without it the server
 * is exactly the single-machine server and nothing here runs.
 *
 * THREADS
 *   A lease thread (node.c): etcd lease grant, the node key under it,
 *   keepalive every third of the TTL, on an etcd handle of its own so that
 *   renewal never waits behind the control thread.
 *   One control-plane thread per node (node.c): a watch of /boxoffice/
 *   (short polls), the shard maps and
 *   node keys re-read on every change and at least every
 *   GW_NODE_POLL_MS; per shard it builds the role view, asks the role
 *   machine (cluster/role.h) what to do, and does it: the etcd CAS first,
 *   the local effect after (shard_promote, shard_fence, the sync floor,
 *   the replication senders). It never writes a shard's journal itself
 *   and never blocks a shard writer.
 *   The nng threads read the node's map cache (gw_node_route) under a
 *   per-shard lock: a few loads per command.
 *
 * FAILURE OF ETCD: the lease only detects failure. While etcd is
 * unreachable the data path goes on as it was (a primary whose standbys
 * acknowledge keeps serving); nothing is promoted or dropped until etcd
 * answers again.
 */
#ifndef BO_GATEWAY_NODE_H
#define BO_GATEWAY_NODE_H

#include <stddef.h>
#include <stdint.h>

#define GW_NODE_ID_MAX 65535u /* = ROLE_NODE_ID_MAX (cluster/role.h) */
#define GW_NODE_LEASE_MS_DEFAULT 3000u
#define GW_NODE_LEASE_MS_MIN 300u
#define GW_NODE_LEASE_MS_MAX 600000u
#define GW_NODE_POLL_MS 100u  /* the control loop's period at most */
#define GW_NODE_ADDR_MAX 128u /* an address (URL) as stored in etcd, NUL included (= WIRE_ADDRESS_LEN_MAX) */

/* The cluster part of gw_config (server options --node-id ...). */
typedef struct gw_node_config {
	const char *etcd;	      /* "http://h:p[,http://h:p...]"; NULL: not a cluster node */
	uint32_t node_id;	      /* 1..GW_NODE_ID_MAX */
	const char *repl;	      /* this node's replication listener (nng URL) */
	const char *advertise;	      /* client address told to others; NULL: the first --listen */
	const char *http_advertise;   /* HTTP address told to others; NULL: none */
	uint32_t lease_ms;	      /* node key lease TTL */
	uint32_t min_in_sync;	      /* 1 or 2: copies (primary included) a write needs */
	uint32_t bootstrap_primary;   /* the node that creates missing shard maps */
	int allow_unsafe_promote;     /* promote a standby that is not in sync */
} gw_node_config;

/* Defaults: no etcd, node 0, lease GW_NODE_LEASE_MS_DEFAULT, min in sync
 * 1, bootstrap primary 1, no unsafe promotion. */
void gw_node_config_default(gw_node_config *cfg);

/* ---- Inside the gateway (gateway.c); not for other layers ---------------- */

struct gw_server;
struct wire_primary;
struct wire_cluster_status;
typedef struct gw_node gw_node;

/* Starts the node of a started gateway whose shards were opened as
 * standbys: the replication listener, then the control thread (which
 * registers the node in etcd, retrying while etcd is unreachable: start-up
 * does not wait for etcd). Returns 0 or a negative errno with err. */
int gw_node_start(struct gw_server *gw, gw_node **out /* OUT */, char *err, size_t errlen);

/* Stops the control thread, every sender and the receiver, and revokes
 * the lease (best effort: a dead etcd lets it expire). The shards stay
 * open (gw_stop stops them). NULL is fine. */
void gw_node_stop(gw_node *n);

/* gw_node_stop if needed, then frees the node and the shards and views its
 * reopens replaced (gw_free, after the shards stopped). NULL is fine. */
void gw_node_free(gw_node *n);

/* Whether this node takes shard k's commands now. Caller holds shard k's
 * lock for reading (gw_shard_acquire). Returns 1 (primary: submit), 0 (not
 * the primary: answer not_primary), or -EBUSY (primary whose writes are
 * held: --min-in-sync not met). */
int gw_node_serving(gw_node *n, uint32_t k);

/* What a not_primary reply about shard k says: its epoch as this node
 * knows it, and the primary from the map cache (known 0 when this node
 * knows no map, or the primary's node key is gone). Any thread. */
void gw_node_primary(gw_node *n, uint32_t k, struct wire_primary *out /* OUT */);

/* The cluster_status reply. Any thread. */
void gw_node_cluster_status(gw_node *n, struct wire_cluster_status *out /* OUT */);

/* Asks for a switchover of shard k to node `to`: the control thread CASes
 * the map's handoff field, the role machines do the rest. done(ctx, status,
 * text) is called once, on the control thread: BO_OK when the map names
 * `to` primary, BO_NOT_PRIMARY when this node is not the primary, BO_INVALID
 * (text says why) for a bad target, BO_BUSY when it did not complete within
 * GW_NODE_SWITCHOVER_MS or another one is pending. May call done before it
 * returns (a refusal at once). */
#define GW_NODE_SWITCHOVER_MS 10000
void gw_node_switchover(gw_node *n, uint32_t k, uint32_t to, void (*done)(void *ctx, int status, const char *text),
			void *ctx);

#endif /* BO_GATEWAY_NODE_H */
