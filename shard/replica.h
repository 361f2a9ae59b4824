/*
 * replica.h — an engine kept in step with a shard's durable journal: a
 * follower (follower.h) whose sink re-executes each record (apply.h), the
 * way recovery does. The snapshot builder of the shard is one (it writes
 * the replica's image, shard.c); a hot standby would be another.
 *
 *     replica *r;
 *     replica_open(s, e, seq, seq_ts_ms, &r, err, sizeof err); // e is at seq
 *     replica_catch_up(r, target, err, sizeof err);            // e is at target
 *     ... snapshot_write_fd(replica_engine(r), ..., replica_seq(r), replica_seq_ts(r), ...)
 *     replica_close(r);
 *
 * Only durable records are applied (the follower's rule), so a replica's
 * state never holds a change a crash of the shard could lose. Each record's
 * recorded result is compared with the re-executed one: a replica that
 * diverged from the shard says so instead of carrying on.
 *
 * Threading: a replica belongs to one thread at a time; the shard must
 * outlive it.
 */
#ifndef BO_SHARD_REPLICA_H
#define BO_SHARD_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "shard/follower.h"
#include "shard/shard.h"

typedef struct replica replica;

/* Opens a replica of durable shard `s` from engine `e`, whose state is the
 * shard's after record `seq` (0: a new engine), whose timestamp was
 * seq_ts_ms (0 for seq 0). Takes ownership of e, also on failure. Returns 0
 * and *out (replica_close), or follower_open's failure (err says why). */
int replica_open(shard *s, engine *e, uint64_t seq, int64_t seq_ts_ms, replica **out /* OUT */, char *err,
		 size_t errlen);

/* Applies durable records until the replica is at `target` (>= replica_seq), waiting for
 * them to become durable as long as the shard lives. Returns 0 at target;
 * or a negative errno with err saying why, after which the replica must be
 * closed: the follower's failures (-ENODATA the records were pruned,
 * -ESHUTDOWN the shard failed short of target, -EBADMSG ...), -EBADMSG a
 * record that does not decode, -EPROTO a re-executed result that differs
 * from the recorded one. */
int replica_catch_up(replica *r, uint64_t target, char *err, size_t errlen);

/* The last record applied and its timestamp (the engine's clock at it). */
uint64_t replica_seq(const replica *r);
int64_t replica_seq_ts(const replica *r);

/* The replica's engine: read it between calls, never change it. */
const engine *replica_engine(const replica *r);

/* Frees the replica and its engine (accepts NULL). */
void replica_close(replica *r);

#endif /* BO_SHARD_REPLICA_H */
