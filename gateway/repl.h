/*
 * repl.h — the replication data plane of a cluster node (issue 13): the
 * primary of a shard ships its durable journal records to each standby
 * over nng PAIR sockets (protocol/repl.h messages); the standby appends
 * them with shard_replicate, waits until they are durable and
 * acknowledges; the acknowledgements move the primary's sync floor
 * (shard_set_sync_floor), which holds its replies until the gated
 * standbys have the records.
 *
 * SOCKETS
 *   Every node listens on its --repl URL with one PAIR (v1, polyamorous)
 *   socket: the receiver. A primary's sender for (shard, standby) has its
 *   own PAIR socket that dials the standby's repl address; the receiver
 *   answers on the pipe a message came from. Many shards share a
 *   listener: every message names its shard.
 *
 * THREADS
 *   receiver: one thread taking every message of the listener (probe,
 *   append), plus one ack thread per shard (waits for durability, sends
 *   ACK). sender: one thread per (shard, standby): probe, then follow the
 *   primary's journal (follower_open/follower_next) and send each run of
 *   records as one APPEND (at most GW_REPL_BATCH_BYTES of payload), read
 *   ACK / REFUSE / STATE. The control-plane thread (node.c) starts and
 *   stops senders, gates them and reads their state.
 *
 * What a sender does on a refusal: GAP resumes from the standby's last
 * record; STALE / DIVERGED stop it (logged; the control plane decides);
 * FAILED / NOT_STANDBY probe again after a pause. A sender whose
 * acknowledged sequence has not moved for GW_REPL_REPROBE_MS while records
 * are outstanding probes again (an append or an ACK lost on a reconnect:
 * no later ACK may ever come). The durable sequence a STATE reports (up to
 * its last record, which the sender matched) counts as acknowledged, and
 * moves the shard's floor, as an ACK does.
 */
#ifndef BO_GATEWAY_REPL_H
#define BO_GATEWAY_REPL_H

#include <stdint.h>

#include "shard/shard.h"

#define GW_REPL_BATCH_BYTES (1u << 20) /* payload bytes in one APPEND (and its record bound below) */
#define GW_REPL_REPROBE_MS 500u
#define GW_REPL_HEARTBEAT_MS 100u /* an idle sender probes this often: the standby's liveness */

struct gw_server;
typedef struct gw_repl gw_repl;
typedef struct gw_sender gw_sender;

/* A sender's state, as the control plane reads it. */
enum {
	GW_SENDER_CONNECTING = 0, /* probing: no STATE yet */
	GW_SENDER_STREAMING = 1,  /* sending records / caught up */
	GW_SENDER_HALTED = 2,	  /* stopped: stale, diverged, or a journal it cannot read */
};

typedef struct gw_sender_info {
	int state;
	uint32_t node;		/* the standby */
	uint64_t acked_seq;	/* its last acknowledged durable sequence */
	uint64_t sent_seq;	/* last record sent */
	int64_t silent_ms;	/* since its last ACK or STATE (since the start when none) */
	int gated;		/* counted in the shard's sync floor */
	char halt_reason[160];	/* state HALTED: why */
} gw_sender_info;

/* Opens the receiver: listens on url, starts its threads. The shards are
 * found through gw (gw_shard_acquire / release, internal.h). min_in_sync
 * 2: with no gated sender a shard's floor is 0 (writes wait) instead of
 * UINT64_MAX. Returns 0 or a negative errno with err. */
int gw_repl_start(struct gw_server *gw, const char *url, uint32_t node_id, uint32_t min_in_sync,
		  gw_repl **out /* OUT */, char *err, size_t errlen);

/* Sets shard k's sync floor from its gated senders again (after the
 * shard became primary here). */
void gw_repl_floor_update(gw_repl *r, uint32_t k);

/* Standby side: answer probes of shard k only from node `node` (the map's
 * primary; 0: none) and take appends only on the pipe of its last probe.
 * Returns once no append of k is running: after following(0), nothing is
 * appended to k until following again. */
void gw_repl_follow(gw_repl *r, uint32_t k, uint32_t node);

/* Standby side: 1 when an append to k failed the chain check (-EBADMSG)
 * since the last clear. */
int gw_repl_diverged(gw_repl *r, uint32_t k);
void gw_repl_diverged_clear(gw_repl *r, uint32_t k);

/* The standby copy of shard k was reopened at `seq`: its ack thread
 * acknowledges from there again. */
void gw_repl_ack_reset(gw_repl *r, uint32_t k, uint64_t seq);

/* Stops every sender, then the receiver; frees. NULL is fine. */
void gw_repl_stop(gw_repl *r);

/* Starts a sender of shard k to standby `node` at `url` (its repl
 * address), ungated. At most one per (k, node): -EEXIST otherwise.
 * 0, -ENOMEM, -EIO (nng). */
int gw_repl_sender_start(gw_repl *r, uint32_t k, uint32_t node, const char *url);

/* Stops and frees the sender of (k, node), if any; ungates it first and
 * recomputes the floor. */
void gw_repl_sender_stop(gw_repl *r, uint32_t k, uint32_t node);

/* Stops every sender of shard k (the shard is no longer primary here). */
void gw_repl_senders_stop_shard(gw_repl *r, uint32_t k);

/* The sender of (k, node): 1 with *out, 0 when none. */
int gw_repl_sender_info(gw_repl *r, uint32_t k, uint32_t node, gw_sender_info *out /* OUT */);

/* The standbys shard k has senders to: up to max node ids into nodes[];
 * returns how many. */
uint32_t gw_repl_sender_nodes(gw_repl *r, uint32_t k, uint32_t *nodes /* OUT */, uint32_t max);

/* Gates / ungates the sender of (k, node) and sets the shard's sync floor
 * to the minimum acknowledged sequence of its gated senders (UINT64_MAX
 * when none). Gating a sender that does not exist: -ENOENT. */
int gw_repl_gate(gw_repl *r, uint32_t k, uint32_t node, int gated);

#endif /* BO_GATEWAY_REPL_H */
