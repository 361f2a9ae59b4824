/*
 * wire.h — the wire protocol v1 of boxoffice-server: msgpack requests and
 * replies carried by nng REQ/REP (schemas/protocol.md is the client-facing
 * description). The contract of the whole codec; request.c implements the
 * request half (its top comment states the decoding rules), reply.c the
 * reply half, both over the bounded msgpack reader of mpack.h.
 *
 * One request message is one command (a msgpack map) or an array of
 * commands; the reply has the same shape and order. The server side decodes
 * requests (wire_decode_request) and encodes replies (wire_encode_replies,
 * wire_encode_error); the client side encodes requests (wire_encode_request)
 * and decodes replies (wire_decode_replies).
 *
 * Decoding treats its input as hostile: it never allocates for a declared
 * count, checks every count against the bytes left before using it, bounds
 * nesting to WIRE_DEPTH_MAX and never reads outside [buf, buf + len). The
 * only allocations are the seat maps of create_event commands, bounded by
 * limits.h and by WIRE_MAP_SEATS_PER_MSG_MAX per message.
 *
 * Encoding appends to a msgpack_sbuffer (msgpack-c's packer). On failure the
 * buffer is restored to the size it had on entry.
 *
 * A NULL pointer where an object is required is a programmer error (assert).
 */
#ifndef BO_WIRE_H
#define BO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

#include "base/names.h"
#include "base/seatmap.h"
#include "base/types.h"
#include "base/limits.h"

/* Protocol version this codec speaks (schemas/protocol.md). */
#define WIRE_VERSION 1u

/* Commands in one request message. A whole message is claimed in the ring
 * as one batch, so it is bounded like the writer's batch. */
#define WIRE_BATCH_MAX 4096u

/* Nested containers (arrays and maps) in one message; the top-level value
 * is at depth 1. The deepest legal request (array > command > map > rows >
 * row > categories) needs 6; 8 leaves room and keeps the decoder's
 * recursion a handful of frames. */
#define WIRE_DEPTH_MAX 8u

/* Bytes in one message (either direction). A 1 Mi-seat event with one
 * category per seat listed explicitly takes ~2 MiB; 8 MiB fits a few of
 * them and bounds what one client can make a gateway thread parse. */
#define WIRE_MSG_MAX (8u << 20)

/* nng's receive limit (NNG_OPT_RECVMAXSZ) counts a message as the
 * transport carries it: the REQ/REP request id (4 bytes, the SP header),
 * then the body. req0/rep0 strip it before the body is seen, so a peer
 * that must take bodies of WIRE_MSG_MAX sets its limit to
 * WIRE_MSG_MAX + WIRE_SP_HEADER_BYTES (server and client library both). */
#define WIRE_SP_HEADER_BYTES 4u

/* Seats over all seat maps of one message. A create_event of 1 Mi seats can
 * be written in ~6 KiB of msgpack (256 rows of 4096 seats, one category
 * each), so without this bound an 8 MiB message could make the gateway
 * allocate gigabytes. Four maximum-size events per message. */
#define WIRE_MAP_SEATS_PER_MSG_MAX (4u * BO_SEATS_PER_EVENT_MAX)

/* Bytes of an error text, NUL included (longer texts are truncated). */
#define WIRE_ERROR_LEN_MAX 128u

_Static_assert(WIRE_BATCH_MAX <= BO_RING_SLOTS_DEFAULT, "a message fits the ring");
_Static_assert(WIRE_DEPTH_MAX >= 6u, "the deepest legal request fits");
_Static_assert(WIRE_MAP_SEATS_PER_MSG_MAX >= BO_SEATS_PER_EVENT_MAX, "one max event fits");

/* Why one command of a request could not be decoded. status is BO_OK when
 * the command decoded; otherwise BO_INVALID (malformed or not representable)
 * or BO_LIMIT (WIRE_MAP_SEATS_PER_MSG_MAX), and detail is the bo_detail that
 * the engine would have given for the same fault (e.g. BO_D_SEAT_COUNT for
 * 17 seats; BO_D_MAP_INVALID for any fault inside a seat map) or
 * BO_D_NONE, which the reply names "malformed". */
typedef struct wire_cmd_error {
	uint8_t status;                /* bo_status: BO_OK = decoded */
	uint8_t detail;                /* bo_detail, BO_D_NONE = malformed */
	char text[WIRE_ERROR_LEN_MAX]; /* NUL-terminated reason; "" when decoded */
} wire_cmd_error;

/* What a decoder learnt about a whole message. */
typedef struct wire_msg {
	uint32_t count;                 /* commands (or replies) in the message */
	uint32_t invalid;               /* requests: commands that did not decode */
	uint8_t is_array;               /* 1: the message was an array (reply with one) */
	uint64_t epoch;                 /* requests: the highest "epoch" a command (or
	                                 * the admin request) carried, 0 when none */
	char error[WIRE_ERROR_LEN_MAX]; /* message-level failure, "" otherwise */
} wire_msg;

/* ---- not_primary (issue 13) ----------------------------------------------
 *
 * A reply with status "not_primary" (BO_NOT_PRIMARY: this server does not,
 * or no longer, hold the primary of the command's shard) carries
 *     "epoch":   uint, the shard's epoch as this server knows it (0: none)
 *     "primary": {"node": uint, "address": "tcp://host:port"}, the primary
 *                the server believes current; absent when it knows none.
 * A request (each command map, and an admin request) may carry
 *     "epoch":   uint, the shard-map epoch the client routed by.
 * The server answers by its own role whatever the epoch says (a stale one
 * is only reported: wire_msg.epoch); a client retries a not_primary reply
 * at the named primary with the SAME client and request ids
 * (schemas/protocol.md section "not_primary").
 */

/* Bytes of a node's client address, NUL included. */
#define WIRE_ADDRESS_LEN_MAX 128u

/* The primary a not_primary reply names. */
typedef struct wire_primary {
	uint64_t epoch;                       /* the shard's epoch (0: none) */
	uint8_t known;                        /* 1: node and address are set */
	uint32_t node;                        /* the primary's node id */
	char address[WIRE_ADDRESS_LEN_MAX];   /* its client address, NUL-terminated */
} wire_primary;

/* What wire_decode_replies() learnt about one reply besides its bo_result. */
typedef struct wire_reply_info {
	uint8_t malformed;              /* 1: detail "malformed" (the server could not
	                                 * decode the command, or the whole message) */
	char error[WIRE_ERROR_LEN_MAX]; /* the reply's "error" text, "" when none */
	wire_primary primary;           /* status not_primary: its "epoch" and
	                                 * "primary" (known 0 when absent); zeroed
	                                 * for every other status */
} wire_reply_info;

/* ---- Server side --------------------------------------------------------- */

/* Decodes the request message buf[0..len) into cmds[0..cap) and
 * errs[0..cap) (cap >= 1; pass WIRE_BATCH_MAX to accept every legal
 * message).
 *
 * Returns
 *  0        the message is well formed: out->count commands (1 for a map,
 *           the array's length otherwise, possibly 0), out->is_array. For
 *           every i < count, errs[i].status == BO_OK and cmds[i] is the
 *           command (fields the op does not use zeroed), or errs[i] says why
 *           command i is rejected (cmds[i] is then zeroed: no map);
 *           out->invalid counts those. A create_event's cmds[i].map is a
 *           seat map allocated here and owned by the caller, who frees it
 *           with wire_free_maps() (or bo_seatmap_free) once the engine
 *           applied the command (behind a shard: once its result came out
 *           of the output ring; the map is borrowed until then).
 *  -EINVAL  message-level failure (empty, larger than WIRE_MSG_MAX, not
 *           msgpack, truncated, trailing bytes, nesting deeper than
 *           WIRE_DEPTH_MAX, top level neither map nor array, more than
 *           WIRE_BATCH_MAX or cap commands): out->error says which; reply
 *           with wire_encode_error(BO_INVALID, out->error). Nothing is
 *           allocated, out->count is 0.
 *  -ENOMEM  a seat map could not be allocated: nothing is left allocated,
 *           out->count is 0, out->error says so.
 */
int wire_decode_request(const uint8_t *buf, size_t len, bo_cmd *cmds /* OUT */,
                        wire_cmd_error *errs /* OUT */, uint32_t cap, wire_msg *out /* OUT */);

/* Frees the seat map of every create_event among cmds[0..count) and sets
 * its map pointer to NULL. Safe on commands without maps. */
void wire_free_maps(bo_cmd *cmds, uint32_t count);

/* Appends the reply message for `count` commands to `out`: one reply map per
 * command, in order, inside an array when is_array (count must then be
 * <= WIRE_BATCH_MAX), else exactly one map (count must be 1). Reply i is
 * errs[i] when errs != NULL and errs[i].status != BO_OK, else res[i].
 * Returns 0, -EINVAL when a result has no encoding (status or detail out of
 * range, seat_count > BO_SEATS_PER_HOLD_MAX, a seat state out of range,
 * avail counts over limits.h) or -ENOMEM; on failure `out` is unchanged. */
int wire_encode_replies(const bo_result *res, const wire_cmd_error *errs, uint32_t count,
                        int is_array, msgpack_sbuffer *out);

/* As wire_encode_replies, and every reply i whose status is not_primary
 * carries "epoch" and "primary" from primary[i] (primary may be NULL: epoch
 * 0, no primary). Same returns; -EINVAL also for a known primary whose
 * address is empty or lacks its NUL. */
int wire_encode_replies_primary(const bo_result *res, const wire_cmd_error *errs, const wire_primary *primary,
                                uint32_t count, int is_array, msgpack_sbuffer *out);

/* Appends a message-level not_primary reply (one map, whatever the
 * request's shape: the whole message was refused because this server is
 * not the primary, e.g. an admin op that only a primary serves):
 * {"status": "not_primary", "detail": "none", "error": message, "epoch": ..,
 *  "primary": {..} when p->known}. p may be NULL. 0, -EINVAL (address as
 * above) or -ENOMEM. */
int wire_encode_not_primary(const wire_primary *p, const char *message, msgpack_sbuffer *out);

/* Appends a message-level reply, one map whatever the request's shape:
 * {"status": <status>, "detail": "malformed" for BO_INVALID else "none",
 *  "error": message}. For a request that failed wire_decode_request
 * (BO_INVALID) or that the server sheds as a whole (BO_BUSY, BO_THROTTLED).
 * Returns 0, -EINVAL (status not a bo_status or BO_OK) or -ENOMEM. */
int wire_encode_error(int status, const char *message, msgpack_sbuffer *out);

/* ---- Client side --------------------------------------------------------- */

/* Appends the request message for cmds[0..n): inside an array when as_array
 * (n <= WIRE_BATCH_MAX, may be 0), else exactly one map (n must be 1). Each
 * command carries op, client, request, event and the fields its op uses.
 * Returns 0, -EINVAL when a command has no encoding (op not 1..BO_OP_COUNT-1,
 * seat_count > BO_SEATS_PER_HOLD_MAX, payref_len > BO_PAYREF_LEN_MAX,
 * flags other than BO_CMD_F_OPERATOR or that flag on an op other than
 * release/cancel (it is sent as "operator": true),
 * create_event whose map is NULL, over the limits of limits.h, or whose rows
 * do not sum to its seat_count; or a message over WIRE_MSG_MAX) or -ENOMEM; on failure `out` is
 * unchanged. The server decodes what this writes into commands equal to cmds (codec_cmd_equal). */
int wire_encode_request(const bo_cmd *cmds, uint32_t n, int as_array, msgpack_sbuffer *out);

/* As wire_encode_request, and when epoch != 0 every command carries
 * "epoch": epoch (the shard-map epoch the client routed by). */
int wire_encode_request_epoch(const bo_cmd *cmds, uint32_t n, int as_array, uint64_t epoch, msgpack_sbuffer *out);

/* Decodes a reply message into out[0..cap) and, when info != NULL,
 * info[0..cap). Unknown keys in a reply are skipped (a v1 client keeps
 * working against a server that adds keys); known keys must have their
 * documented types.
 * A query_avail/query_seats reply's "seq" (the read model's sequence, sent
 * when non-zero) goes to view_seq; on other ops it is dropped.
 * Returns 0: msg->count replies, msg->is_array; every field a reply does not
 * carry is zero (a message-level error reply is one map: is_array 0,
 * op 0, info->malformed 1 for status invalid). A detail name this codec
 * does not know (a newer server's) reads as BO_D_NONE.
 * -EINVAL: not a valid reply message (as wire_decode_request's
 * message-level failures, more than cap replies, or a reply with a missing
 * status, an unknown status/op/seat state name, a wrong type, an array over
 * its limit, different "hold" and "booking", or "states" not matching
 * "seats"); msg->error says which reply and why. */
int wire_decode_replies(const uint8_t *buf, size_t len, bo_result *out /* OUT */,
                        wire_reply_info *info /* OUT, may be NULL */, uint32_t cap,
                        wire_msg *msg /* OUT */);

/* ---- Admin requests: server_status ----------------------------------------
 *
 * Requests about the server itself rather than commands for the engine:
 * read-only, never journaled, never idempotency-tracked, and not ops of
 * base/types.h (bo_op is the engine's vocabulary; an admin request never
 * reaches a shard). An admin request is one map {"op": "<admin op>"} (keys
 * "client" and "request" are accepted and ignored, any other key is an
 * error); inside an array its op is just an unknown op (bad_op).
 *
 * The gateway asks wire_decode_admin() first and falls back to
 * wire_decode_request(), whose contract stays "commands for the engine".
 * wire_decode_admin() refuses at once (WIRE_ADMIN_NONE, without walking the
 * message) anything but a top-level map of at most WIRE_ADMIN_MSG_MAX
 * bytes, so a command batch is parsed once as before and only small
 * single-command maps are looked at twice (a few dozen bytes).
 */

/* Largest admin request; anything larger is decoded as commands. */
#define WIRE_ADMIN_MSG_MAX 1024u

typedef enum wire_admin {
	WIRE_ADMIN_NONE = 0,          /* not an admin request: decode commands */
	WIRE_ADMIN_SERVER_STATUS = 1, /* {"op": "server_status"} */
	WIRE_ADMIN_EVENT_STATE = 2,   /* {"op": "event_state", "event": uint}: a
	                               * subscriber's snapshot (protocol/projection.h) */
	WIRE_ADMIN_CLUSTER_STATUS = 3, /* {"op": "cluster_status"} */
	WIRE_ADMIN_SWITCHOVER = 4,    /* {"op": "switchover", "shard": uint, "to": uint} */
} wire_admin;

/* The arguments of an admin request (wire_decode_admin_args). */
typedef struct wire_admin_args {
	uint64_t event_id; /* event_state: its "event" (!= 0) */
	uint32_t shard;    /* switchover: the shard to move */
	uint32_t to;       /* switchover: the node to make its primary */
} wire_admin_args;

/* Shards a server_status reply describes at most. The gateway's
 * GW_SHARDS_MAX and the client library's BOC_SHARDS_MAX are asserted equal
 * to it. */
#define WIRE_STATUS_SHARDS_MAX 64u
/* Bytes of a committer's reason, NUL included (the committer's own bound,
 * COMMITTER_REASON_LEN; a longer text from a peer is truncated). */
#define WIRE_REASON_LEN_MAX 256u
/* Bytes of the server's version string, NUL included (longer: truncated). */
#define WIRE_SERVER_VERSION_LEN_MAX 32u

/* A shard's database committer as the wire names it. OFF: the server runs
 * without a database; the others are committer.h's states. */
typedef enum wire_committer_state {
	WIRE_COMMITTER_OFF = 0,
	WIRE_COMMITTER_STARTING = 1,
	WIRE_COMMITTER_RUNNING = 2,
	WIRE_COMMITTER_RETRYING = 3,
	WIRE_COMMITTER_STOPPED = 4,
	WIRE_COMMITTER_STATE_COUNT
} wire_committer_state;

typedef struct wire_committer_status {
	uint8_t state;                    /* wire_committer_state */
	uint64_t applied_seq;             /* last journal sequence in the database */
	uint64_t lag_records;             /* durable records not yet applied */
	uint64_t lag_ms;                  /* age of the oldest of them (0: none) */
	uint64_t batches;                 /* database transactions committed */
	uint64_t changes;                 /* seat_changes rows written */
	uint64_t outbox;                  /* inventory_events rows written */
	uint64_t retries;                 /* failed attempts retried */
	char reason[WIRE_REASON_LEN_MAX]; /* why not running; "" when running */
} wire_committer_status;

typedef struct wire_shard_status {
	uint32_t shard;       /* its index: entry i of the reply is shard i */
	uint64_t durable_seq; /* highest journal sequence on disk */
	uint64_t batches;     /* writer batches applied since start */
	wire_committer_status committer;
} wire_shard_status;

/* An "ok" server_status reply. */
typedef struct wire_server_status {
	char version[WIRE_SERVER_VERSION_LEN_MAX]; /* the server's version */
	uint32_t shard_count;                      /* 1..WIRE_STATUS_SHARDS_MAX */
	wire_shard_status shards[WIRE_STATUS_SHARDS_MAX];
} wire_server_status;

/* "off", "starting", "running", "retrying", "stopped"; NULL out of range. */
const char *wire_committer_state_name(int state);

/* Server side: whether buf[0..len) is an admin request. Returns
 *  WIRE_ADMIN_NONE  not one (not a map, larger than WIRE_ADMIN_MSG_MAX, no
 *                   string "op" naming an admin op, or not msgpack at all):
 *                   decode it with wire_decode_request;
 *  > 0              the wire_admin it asks for;
 *  -EINVAL          an admin op with a key that does not apply to it, a
 *                   repeated key, or "client"/"request" not a uint64:
 *                   out->error says which; answer with
 *                   wire_encode_error(BO_INVALID, out->error).
 * Allocates nothing. */
/* For WIRE_ADMIN_EVENT_STATE, *event_id is its "event" (required, a
 * uint64 other than 0); 0 for the others. */
int wire_decode_admin(const uint8_t *buf, size_t len, uint64_t *event_id /* OUT */, wire_msg *out /* OUT */);

/* wire_decode_admin knows only server_status and event_state: it answers
 * WIRE_ADMIN_NONE for cluster_status and switchover (well formed or not),
 * so a server that does not serve them answers bad_op as before. A server
 * that serves them calls this instead. */
/* As wire_decode_admin, with every admin op's arguments in *args (zeroed
 * for the fields an op does not take). switchover requires "shard" and
 * "to", uints of at most UINT32_MAX. Any admin request may carry "epoch"
 * (a uint64, out->epoch). */
int wire_decode_admin_args(const uint8_t *buf, size_t len, wire_admin_args *args /* OUT */, wire_msg *out /* OUT */);

/* Server side: appends the "ok" reply of server_status:
 * {"status": "ok", "version": ..., "shards": [...]} (schemas/protocol.md
 * section 11). Returns 0, -EINVAL (shard_count 0 or over
 * WIRE_STATUS_SHARDS_MAX, shards[i].shard != i, a committer state out of
 * range, a reason or version without its NUL) or -ENOMEM; on failure `out`
 * is unchanged. */
int wire_encode_server_status(const wire_server_status *st, msgpack_sbuffer *out);

/* Client side: appends the request {"op": "server_status"}. 0 or -ENOMEM. */
int wire_encode_server_status_request(msgpack_sbuffer *out);

/* Client side: decodes the reply to server_status into *st and *status.
 * Returns 0 with *status the reply's bo_status: BO_OK and *st filled; or
 * another status (the server refused or shed the request, or is too old
 * to know it: invalid/bad_op) with msg->error its "error" text and *st
 * zeroed. -EINVAL: not a valid reply (message-level failures as
 * wire_decode_replies, not a map, a missing or mistyped key, an unknown
 * status or committer state, no shards or more than
 * WIRE_STATUS_SHARDS_MAX, an entry whose "shard" is not its index);
 * msg->error says why. Unknown keys are skipped; texts longer than their
 * field are truncated. Allocates nothing. */
int wire_decode_server_status(const uint8_t *buf, size_t len, wire_server_status *st /* OUT */,
                              int *status /* OUT */, wire_msg *msg /* OUT */);

/* ---- Admin requests: cluster_status and switchover (issue 13) -------------
 *
 * cluster_status: the replication state of this server's shards as it
 * sees it. switchover: ask this server (which must be the shard's
 * primary) to hand the shard's primary to node "to"; the reply is
 * {"status": "ok"} once done, or an error (wire_encode_error; not_primary
 * from a server that is not the shard's primary).
 */

/* Standbys of one shard a cluster_status reply lists at most; in_sync has
 * at most one more (the primary). */
#define WIRE_CLUSTER_STANDBYS_MAX 8u

/* A server's role for one shard. */
typedef enum wire_role {
	WIRE_ROLE_NONE = 0,    /* "none": the server holds no copy */
	WIRE_ROLE_PRIMARY = 1, /* "primary" */
	WIRE_ROLE_STANDBY = 2, /* "standby" */
	WIRE_ROLE_FENCED = 3,  /* "fenced": an old primary that learnt of a newer term */
	WIRE_ROLE_COUNT
} wire_role;

typedef struct wire_standby_status {
	uint32_t node;        /* the standby's node id */
	uint64_t acked_seq;   /* its last acknowledged durable sequence */
	uint64_t lag_records; /* the primary's last_seq - acked_seq */
} wire_standby_status;

typedef struct wire_shard_cluster {
	uint32_t shard;        /* its index: entry i of the reply is shard i */
	uint64_t epoch;        /* the shard's epoch here */
	uint8_t role;          /* wire_role */
	uint8_t primary_known; /* 1: primary is set ("primary" present) */
	uint32_t primary;      /* the primary's node id */
	uint32_t in_sync_count;
	uint32_t in_sync[WIRE_CLUSTER_STANDBYS_MAX + 1]; /* node ids */
	uint64_t last_seq;     /* last journaled record */
	uint64_t durable_seq;  /* highest durable sequence */
	uint64_t released_seq; /* highest sequence released to replies */
	uint32_t standby_count; /* role primary: standbys[] in use; else 0 */
	wire_standby_status standbys[WIRE_CLUSTER_STANDBYS_MAX];
} wire_shard_cluster;

/* An "ok" cluster_status reply. */
typedef struct wire_cluster_status {
	uint32_t node;        /* this server's node id */
	uint32_t shard_count; /* 1..WIRE_STATUS_SHARDS_MAX */
	wire_shard_cluster shards[WIRE_STATUS_SHARDS_MAX];
} wire_cluster_status;

/* "none", "primary", "standby", "fenced"; NULL out of range. */
const char *wire_role_name(int role);

/* Server side: appends the "ok" reply of cluster_status:
 * {"status": "ok", "node": N, "shards": [{"shard", "epoch", "role",
 *  "primary" (absent when unknown), "in_sync": [..], "last_seq",
 *  "durable_seq", "released_seq", "standbys": [{"node", "acked_seq",
 *  "lag_records"}, ..]}, ..]}. Returns 0, -EINVAL (shard_count 0 or over
 * WIRE_STATUS_SHARDS_MAX, shards[i].shard != i, a role out of range, a
 * count over its array) or -ENOMEM; on failure `out` is unchanged. */
int wire_encode_cluster_status(const wire_cluster_status *st, msgpack_sbuffer *out);

/* Client side: appends {"op": "cluster_status"}. 0 or -ENOMEM. */
int wire_encode_cluster_status_request(msgpack_sbuffer *out);

/* Client side: decodes the reply to cluster_status, as
 * wire_decode_server_status does (0 with *status; BO_OK fills *st, another
 * status leaves it zeroed with msg->error the reply's text; -EINVAL for a
 * reply that is not valid, msg->error says why: a missing or mistyped key,
 * an unknown role, counts over their arrays, an entry whose "shard" is not
 * its index). Unknown keys are skipped. Allocates nothing. */
int wire_decode_cluster_status(const uint8_t *buf, size_t len, wire_cluster_status *st /* OUT */,
                               int *status /* OUT */, wire_msg *msg /* OUT */);

/* Server side: appends {"status": "ok"} (the reply of a switchover that
 * completed). 0 or -ENOMEM. */
int wire_encode_ok(msgpack_sbuffer *out);

/* Client side: appends {"op": "switchover", "shard": shard, "to": to}.
 * 0 or -ENOMEM. */
int wire_encode_switchover_request(uint32_t shard, uint32_t to, msgpack_sbuffer *out);

/* Client side: decodes a reply that is only a status (switchover's):
 * 0 with *status, msg->error its "error" text ("" when none) and, for
 * not_primary, *primary its "epoch"/"primary" (primary may be NULL);
 * -EINVAL when not a reply map with a known status (msg->error why).
 * Unknown keys are skipped. */
int wire_decode_status_reply(const uint8_t *buf, size_t len, int *status /* OUT */,
                             wire_primary *primary /* OUT, may be NULL */, wire_msg *msg /* OUT */);

/* ---- The shared token: the auth prefix -------------------------------------
 *
 * schemas/protocol.md section 17. A server started with a token takes a
 * request only when its message begins with the token:
 *
 *     message = [auth prefix] request
 *     auth prefix = a msgpack map of exactly one pair {"auth": TOKEN},
 *                   TOKEN a str (or bin) of 1..BO_AUTH_TOKEN_LEN_MAX bytes
 *
 * followed, in the same nng message, by the request exactly as without a
 * token (a command map, an array of them, or an admin request). No request
 * of version 1 begins with such a map (a command and an admin request both
 * need "op"), so a message without the prefix means what it always meant,
 * and a server without a token ignores the prefix it is given. The token
 * travels in every message, not once per connection: REQ/REP has no
 * connection state a server could attach it to (nng resends a request over
 * whatever pipe is up), and a per-message check needs none.
 */

/* The prefix's one key. */
#define WIRE_AUTH_KEY "auth"

/* Server side: whether buf[0..len) begins with an auth prefix. Returns
 *  0        no prefix (the message does not begin with a one-pair map
 *           whose key is "auth", or is not msgpack at all): *token NULL,
 *           *token_len 0; decode the whole message as before;
 *  > 0      the prefix's length in bytes (< len): *token points at the
 *           token's bytes inside buf, *token_len is 1..BO_AUTH_TOKEN_LEN_MAX;
 *           the request is buf[ret..len);
 *  -EINVAL  the message begins with {"auth": ...} but the value is not a
 *           str or bin, is empty, is longer than BO_AUTH_TOKEN_LEN_MAX,
 *           ends early, or no request follows it: out->error says which;
 *           answer with wire_encode_error(BO_INVALID, out->error).
 * Compares nothing (gateway/auth.h does, in constant time) and allocates
 * nothing; never reads outside buf[0..len). */
int wire_decode_auth(const uint8_t *buf, size_t len, const uint8_t **token /* OUT */, size_t *token_len /* OUT */,
                     wire_msg *out /* OUT */);

/* Client side: appends the auth prefix {"auth": token[0..len)} (a str), to
 * be followed by the request in the same message. Returns 0, -EINVAL (len
 * 0 or over BO_AUTH_TOKEN_LEN_MAX) or -ENOMEM; on failure `out` is
 * unchanged. */
int wire_encode_auth(const char *token, size_t len, msgpack_sbuffer *out);

/* ---- Names --------------------------------------------------------------- */

/* The wire name of a bo_detail ("seat_unavailable", ...; "none" for
 * BO_D_NONE), or NULL when detail is out of range. */
const char *wire_detail_name(int detail);

/* The reply name of a command decode failure without a bo_detail. */
#define WIRE_DETAIL_MALFORMED "malformed"

#endif /* BO_WIRE_H */
