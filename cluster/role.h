/*
 * role.h — the role state machine of the control plane: what ONE node
 * should do next about ONE shard, as a pure function of what it knows
 * (role_decide of a role_view). No threads, no I/O, no clock: the caller
 * (the node's control thread) gathers the view, asks for the next action,
 * executes it (an etcd compare-and-swap and/or local effects on the shard
 * and the replication links) in the order documented below, and asks again.
 * The deterministic simulator (tests/cluster/role_sim_test.c) runs exactly
 * this loop against a model of etcd and of the data plane, over many seeds,
 * and checks the safety invariants after every step.
 *
 * THE SHARD MAP (etcd key /boxoffice/shards/<k>, changed only by a CAS on
 * its mod_revision; created with "version == 0"):
 *   {"epoch":E,"primary":N,"in_sync":[N,...],"start_seq":S,"handoff":N}
 *   epoch      the primary's term, >= 1; only increases;
 *   primary    the node serving term E; always a member of in_sync;
 *   in_sync    the nodes holding every acknowledged record: the primary
 *              releases a reply only when each of them has it durable;
 *              no duplicates, 1..ROLE_NODES_MAX members;
 *   start_seq  the sequence of term E's first record (its EPOCH record,
 *              shard_promote); records of older terms at or after it are
 *              not part of the history and are cut by a returning copy;
 *   handoff    optional (absent or 0: none): a planned switchover asked by
 *              the operator, to this in-sync node.
 *
 * SAFETY ARGUMENT (why these rules keep zero acknowledged loss):
 *  - a record is acknowledged only when every member of the primary's
 *    in_sync has it durable (the sync floor covers a superset of in_sync);
 *  - in_sync shrinks only by a CAS of the primary, and the primary stops
 *    waiting for a member only after that CAS succeeded (DROP_STANDBY);
 *  - in_sync grows only after the newcomer is in the sync floor (GATE_PEER)
 *    and has acknowledged everything that could have been released before
 *    that (ADD_STANDBY): it then holds every acknowledged record;
 *  - only a member of in_sync may take a new term (PROMOTE), so the new
 *    primary holds every acknowledged record; the CAS on mod_revision makes
 *    the new term unique; a standby refuses records of an older term, so
 *    the old primary, still running, gets no more acks from the member that
 *    promoted and can release nothing new (fencing by acks, not by time).
 *
 * WHAT role_decide NEEDS FROM THE DATA PLANE (h-node must guarantee it):
 *  - a standby's ack to the primary of term E carries E and its DURABLE
 *    sequence, and is sent only once a run from THIS primary's stream
 *    passed the hash-chain check (an empty run too: the primary's idle
 *    heartbeat carries prev seq/checksum), never for an unverified tail;
 *    the primary counts an ack only when E is its own term;
 *  - a standby appends only at its last seq + 1, only when the run's prev
 *    checksum is its last record's (-EBADMSG: set view.diverged) and only
 *    from a term >= its own epoch (shard_replicate -ESTALE);
 *  - the primary ships only records durable on it;
 *  - a standby whose primary is silent for ack_timeout_ms / 2 drops the
 *    connection and says hello again (a restarted primary forgets it);
 *  - released (acknowledged) = min(durable, min acked_seq of the GATED
 *    peers); a new term starts with no peer gated and in_sync [self].
 */
#ifndef BO_CLUSTER_ROLE_H
#define BO_CLUSTER_ROLE_H

#include <stddef.h>
#include <stdint.h>

/* Members of one in_sync set and peers one primary tracks: a primary and a
 * few standbys; a shard copied to more than 8 servers is a typo. */
#define ROLE_NODES_MAX 8

/* Node ids are 1..ROLE_NODE_ID_MAX (0 means "none" in every field). */
#define ROLE_NODE_ID_MAX 65535u

/* Live nodes one view lists (the whole registry of a small cluster). */
#define ROLE_LIVE_MAX 32

/* Bound of one encoded map: 5 u64 fields and 8 ids fit with room. */
#define ROLE_MAP_JSON_MAX 256

/* One shard's map as read from etcd (or as about to be written). */
typedef struct role_map {
	int present;                      /* 0: the key does not exist (the rest is 0) */
	uint64_t epoch;                   /* >= 1 when present */
	uint32_t primary;                 /* node id serving epoch; in in_sync */
	uint32_t in_sync[ROLE_NODES_MAX]; /* members, in_sync_count of them */
	uint32_t in_sync_count;           /* 1..ROLE_NODES_MAX when present */
	uint64_t start_seq;               /* first seq of this term (its EPOCH record) */
	uint32_t handoff;                 /* switchover target; 0: none */
	int64_t mod_revision;             /* etcd's, what the next CAS compares; 0 absent */
} role_map;

/* Writes m (present) as the JSON text above into buf[0..len), NUL
 * terminated, fields in the order shown, "handoff" omitted when 0.
 * Returns the text's length (without the NUL), or -ENOSPC when it does not
 * fit. m must be valid (role_map_check == 0): asserted. */
int role_map_encode(const role_map *m, char *buf, size_t len);

/* Parses text[0..len) (outside input: etcd's value) into *out (present = 1,
 * mod_revision = 0: the caller sets it from etcd). Strict: exactly one JSON
 * object with the keys above (handoff optional, no other key, no duplicate
 * key), whole non-negative numbers without sign, fraction or exponent,
 * whitespace allowed between tokens, nothing after the object. Returns 0;
 * or -EPROTO with a one-line message in err (always NUL terminated when
 * errlen > 0) for anything else, including a value role_map_check refuses.
 * *out is written only on success. */
int role_map_decode(const char *text, size_t len, role_map *out /* OUT */, char *err,
                    size_t errlen);

/* The map's rules: epoch >= 1; node ids in 1..ROLE_NODE_ID_MAX; in_sync
 * 1..ROLE_NODES_MAX members without duplicates, containing primary;
 * start_seq >= 1; handoff 0 or a node id. Returns 0, or -EPROTO with a
 * message in err. */
int role_map_check(const role_map *m, char *err, size_t errlen);

/* 1 when node is a member of m's in_sync. */
int role_map_in_sync(const role_map *m, uint32_t node);

/* What this node's copy of the shard is doing now. */
typedef enum role_local {
	ROLE_NONE = 0,    /* the shard is not open here yet (start-up): every
	                   * action but NONE opens it as a standby first */
	ROLE_STANDBY = 1, /* open as a standby (shard_is_standby); `following`
	                   * says which primary its receiver is connected to */
	ROLE_PRIMARY = 2, /* promoted: serving term local_epoch */
	ROLE_FENCED = 3,  /* shard_fence'd: answers not_primary, must rejoin */
} role_local;

/* One replication peer as the primary sees it (the primary's sender and ack
 * receiver keep these; the standby's view has none). */
typedef struct role_peer {
	uint32_t node;      /* node id, != self */
	int connected;      /* the peer's link is up and it acked in this term */
	uint64_t acked_seq; /* highest durable seq it acked in this term (0 none) */
	uint64_t silent_ms; /* since its last ack (or since the term or the
	                     * connection began, if it never acked) */
	int gated;          /* its acked_seq is part of the sync floor now */
	uint64_t gate_seq;  /* when gated: the local last seq read right AFTER
	                     * the floor started to include it */
} role_peer;

/* Operator settings (the same on every node). */
typedef struct role_config {
	uint64_t ack_timeout_ms;    /* an in-sync standby silent longer is dropped */
	uint32_t min_in_sync;       /* 1 (default) or more: below it, hold writes */
	uint32_t bootstrap_primary; /* the node that creates an absent map; 0: none */
	int allow_unsafe_promote;   /* a node not in in_sync may take a new term
	                             * (acknowledged records may be lost) */
	uint64_t gate_lag_max;      /* gate a peer only when its acked_seq is within
	                             * this many records of the local last seq (a
	                             * peer far behind would stall the releases);
	                             * 0 would need an exact catch-up, which a
	                             * loaded primary never shows: take a few
	                             * batches' worth (the simulator uses 64) */
} role_config;

/* What node `self` knows about one shard at one instant. The fields must be
 * read so that they were all true at one instant as far as the rules need:
 * in particular last_seq is read BEFORE local_epoch (both only grow; an
 * epoch read after the seq never misses the EPOCH record under that seq). */
typedef struct role_view {
	uint32_t self;                /* this node's id */
	role_map map;                 /* the last map read or written by this node */
	int map_fresh;                /* 1: map is etcd's current value as far as known
	                               * (etcd reachable, watch up to date); 0: etcd not
	                               * reachable: no CAS is attempted, nothing changes */
	uint32_t live[ROLE_LIVE_MAX]; /* node ids whose node key exists */
	uint32_t live_count;
	role_local local;                /* see role_local */
	uint64_t local_epoch;            /* shard_epoch (0 none) */
	uint64_t last_seq;               /* the last journaled seq, DURABLE (standby: after
	                                  * the receiver appended it and it synced) */
	uint64_t released_seq;           /* primary: shard_released_seq */
	uint32_t following;              /* standby: the primary the receiver is connected
	                                  * to (0: none) */
	int diverged;                    /* standby: the receiver was refused by the chain
	                                  * check (-EBADMSG) even after the cut */
	int writes_stopped;              /* primary: new commands are refused (handoff) */
	role_peer peers[ROLE_NODES_MAX]; /* primary: every in-sync member but
	                                  * self (silent since the term began if it never
	                                  * acked), and every other node that said hello or
	                                  * acked in this term, until UNGATE_PEER forgets it */
	uint32_t peer_count;
	role_config cfg;
} role_view;

/* The next action. See role_decide for each one's exact CAS and the order
 * of its local effects. */
typedef enum role_act {
	ROLE_ACT_NONE = 0,      /* nothing to do now */
	ROLE_ACT_CREATE_MAP,    /* CAS create new_map */
	ROLE_ACT_PROMOTE,       /* CAS new_map (a new term for self) */
	ROLE_ACT_ASSUME,        /* the map already names self: shard_promote(map.epoch) */
	ROLE_ACT_FENCE,         /* shard_fence */
	ROLE_ACT_REJOIN,        /* close, cut (when cut), reopen as standby */
	ROLE_ACT_FOLLOW,        /* connect the receiver to `peer` */
	ROLE_ACT_REBUILD,       /* this copy cannot continue the primary's chain */
	ROLE_ACT_DROP_STANDBY,  /* CAS new_map (in_sync - peer), then ungate */
	ROLE_ACT_HOLD_WRITES,   /* in-sync peer silent and min_in_sync forbids
	                         * dropping it (peer), or fewer members than
	                         * min_in_sync (peer 0): refuse new commands */
	ROLE_ACT_GATE_PEER,     /* include peer in the sync floor */
	ROLE_ACT_UNGATE_PEER,   /* remove a gated non-member from the floor */
	ROLE_ACT_ADD_STANDBY,   /* CAS new_map (in_sync + peer) */
	ROLE_ACT_STOP_WRITES,   /* handoff step 1: refuse new commands */
	ROLE_ACT_HANDOFF,       /* handoff step 2: CAS new_map, then fence */
	ROLE_ACT_RESUME_WRITES, /* a handoff was abandoned: take commands again */
	ROLE_ACT_CLEAR_HANDOFF, /* CAS new_map (handoff 0): the target is not valid */
	ROLE_ACT_COUNT
} role_act;

typedef struct role_action {
	role_act act;
	uint32_t peer;      /* DROP/HOLD/GATE/UNGATE/ADD: the peer; FOLLOW: the
	                     * primary; HANDOFF: the new primary */
	int cut;            /* REJOIN: 1 when the journal is cut first */
	uint64_t cut_after; /* REJOIN with cut: shard_cut_after(.., cut_after) */
	role_map new_map;   /* CREATE_MAP/PROMOTE/DROP/ADD/HANDOFF/CLEAR: the map
	                     * to write, with new_map.mod_revision = the revision
	                     * the CAS must compare (0: create) */
	const char *why;    /* static text for the log line */
} role_action;

/* The one next action of v->self for this shard (see the rules in role.c).
 * Pure: reads only *v, writes only *out. v must be well formed (ids in
 * range, counts within bounds, map valid when present): asserted.
 *
 * How to execute each action (the order is part of the contract):
 *  CREATE_MAP  CAS create (version == 0) of new_map = {1, self, [self],
 *              last_seq+1}. On success: shard_promote(1), local = PRIMARY.
 *              On failure: re-read the map, ask again.
 *  PROMOTE     FIRST stop the replication receiver (no shard_replicate may
 *              run after last_seq was read), wait until durable == last;
 *              the caller re-reads last_seq if it moved and asks again.
 *              CAS new_map = {epoch+1, self, [self], last_seq+1} comparing
 *              map.mod_revision. Only AFTER it succeeded: shard_promote
 *              (new epoch), local = PRIMARY (its EPOCH record lands at
 *              exactly start_seq), peers start empty (silent since now).
 *              CAS failed (0): re-read, ask again (likely FOLLOW). Outcome
 *              unknown (-ETIMEDOUT/-EAGAIN): re-read; if the map equals
 *              new_map byte for byte the CAS happened: proceed as success.
 *  ASSUME      map.primary == self, map.epoch > local_epoch, last_seq ==
 *              map.start_seq - 1 (the CAS was done by self before a crash,
 *              or by the old primary for a handoff): stop the receiver,
 *              shard_promote(map.epoch), local = PRIMARY. No CAS.
 *  FENCE       shard_fence at once (nothing more is released), then
 *              local = FENCED. The next action is REJOIN.
 *  REJOIN      stop the sender; close the shard; when cut: shard_cut_after
 *              (cut_after) — the records of an older term at or after
 *              map.start_seq, never acknowledged; reopen as a standby;
 *              local = STANDBY, following = 0, diverged = 0.
 *  FOLLOW      connect the receiver to `peer` (= map.primary), dropping
 *              any other link; following = peer. Records arriving are
 *              appended only when their term >= local epoch and the chain
 *              holds; the ack carries the durable seq (see above).
 *  REBUILD     the chain check failed even after the cut (this copy holds
 *              an older term's tail before map.start_seq): it must be
 *              rebuilt from the primary (a fresh copy); it acks nothing.
 *  DROP_STANDBY  CAS new_map = map with in_sync - peer. Only AFTER it
 *              succeeded: ungate the peer (floor without it). Until then
 *              the floor keeps waiting for it (nothing released alone).
 *  HOLD_WRITES keep the floor, refuse new commands (busy) while the last
 *              decision is HOLD_WRITES (the next other decision, e.g.
 *              GATE/ADD of a returning standby, ends it). Nothing else:
 *              what needs the silent peer's ack simply is not released.
 *  GATE_PEER   set the floor to include peer (shard_set_sync_floor(min of
 *              gated acked_seq)), THEN read the local durable last seq into
 *              peer.gate_seq, gated = 1. No CAS. (Also chosen for an
 *              in-sync member that is not gated: defensive, never expected.)
 *  UNGATE_PEER a gated peer that is not a member went silent: gated = 0,
 *              recompute the floor. No CAS.
 *  ADD_STANDBY peer gated and acked_seq >= gate_seq: CAS new_map = map with
 *              in_sync + peer. On failure nothing changes (it stays gated).
 *  STOP_WRITES map.handoff == an in-sync connected peer: refuse new
 *              commands (not_primary/busy); writes_stopped = 1.
 *  HANDOFF     writes stopped and the target acked last_seq: CAS new_map =
 *              {epoch+1, target, [target], last_seq+1, handoff 0}; on
 *              success shard_fence at once, local = FENCED (then REJOIN,
 *              FOLLOW, and the new primary re-adds this node: gate, add).
 *              The target ASSUMEs the new term (its last seq is exactly
 *              start_seq - 1, so no client request fails). The old primary
 *              is left out of in_sync on purpose: the new primary does not
 *              wait for it, so it must not count as holding everything.
 *              (Waiting for the target's ack is for a seamless switch, not
 *              for safety: without it the target finds its last seq short
 *              of start_seq and takes a term of its own with PROMOTE.)
 *  RESUME_WRITES writes_stopped but no valid handoff pending: take commands.
 *  CLEAR_HANDOFF map.handoff names no in-sync, live peer: CAS new_map = map
 *              with handoff 0.
 * The `why` text names the rule that chose the action. */
void role_decide(const role_view *v, role_action *out /* OUT */);

/* Stable name of an action ("promote", "drop_standby" ...), for logs. */
const char *role_act_name(role_act a);

/* Stable name of a local state ("none", "standby", "primary", "fenced"). */
const char *role_local_name(role_local l);

#endif /* BO_CLUSTER_ROLE_H */
