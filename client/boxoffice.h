/*
 * boxoffice.h — the C client library of boxoffice-server (libboxoffice-client).
 *
 * Why batching: one nng REQ/REP round trip costs tens of microseconds of
 * system calls and wake-ups on each side (a raw echo of 100-byte messages
 * tops out near 16-20k messages/s on a 2-core machine), so a client that
 * sent one command per message could never load the server. This library
 * therefore coalesces the commands that any number of threads submit into
 * one array message per nng context, sends it when batch_max commands are
 * queued or linger_us has passed since the oldest queued one, and hands each
 * command's reply back to its own callback.
 *
 *     boc_client *c;
 *     if (boc_open("tcp://127.0.0.1:7400", NULL, &c) != 0) ...
 *     bo_cmd cmd;
 *     boc_hold_best(&cmd, 0, 0, event_id, category, 2, 600000);
 *     bo_result res;
 *     char text[BOC_TEXT_LEN_MAX];
 *     int rc = boc_call(c, &cmd, &res, text, sizeof(text));
 *     if (rc < 0) ... no answer: rc is a BOC_ERR_*
 *     else if (res.status != BO_OK) ... the server said no: res.status, text
 *     boc_close(c);
 *
 * Two kinds of outcome, never confused:
 *  - The server answered: err == 0 and the bo_result is the server's, with
 *    any bo_status, including BO_BUSY / BO_THROTTLED (the server shed the
 *    command: retrying later with the SAME request id is safe). A shed
 *    result may carry the server's retry hint in retry_after_ms: resend
 *    no sooner than that many milliseconds (a throttled event's next
 *    token is due then; earlier is refused again). 0: no hint, back off.
 *  - No answer: err is a negative BOC_ERR_* and the result is zeroed except
 *    for op, client_id, request_id and event_id (copied from the command)
 *    and status == BOC_STATUS_NO_ANSWER, a value that is no bo_status, so
 *    code that only looks at status never mistakes "no answer" for "ok".
 *    After BOC_ERR_TIMEOUT or BOC_ERR_CLOSED the command may or may not
 *    have been applied: resubmit it with the same (client_id, request_id)
 *    and the server's idempotency window gives the first answer again.
 *
 * Every callback is called exactly once per accepted command (boc_submit
 * returned 0), at the latest about timeout_ms after boc_submit, or, for a
 * command the library resends (see "Several servers"), at the latest
 * about max(timeout_ms, deadline_ms) after it (and at the latest when
 * boc_close returns). A full local queue or a closing client is refused at
 * once by boc_submit; nothing in this library blocks for the server
 * without a timeout.
 *
 * Threads: boc_submit and boc_call may be called from any number of threads
 * at once. Callbacks run on nng's worker threads (or, for commands that
 * fail before they are sent or resent, on the library's flusher thread or
 * the thread in boc_close); they must be quick and may call boc_submit,
 * but never boc_call or boc_close (both wait for callbacks).
 *
 * A NULL pointer where an object is required is a programmer error (assert).
 * Bad input from the server never crashes the library: it becomes
 * BOC_ERR_PROTOCOL.
 *
 * Several servers (issue 13: shards spread over servers, a primary and
 * standbys per shard): boc_open takes a comma-separated list of addresses
 * (or boc_open_servers an array). Commands go to the server the library
 * believes is the primary (at first the first address). A reply with
 * status BO_NOT_PRIMARY is not handed to the caller while retries remain:
 * the command is resent, with the SAME client and request ids (the
 * server's idempotency window makes that safe), to the primary the reply
 * names (at once), or, when it names none or the server just asked, to the
 * next address of the list after a backoff; that server becomes the one
 * later commands for events the library knows no primary of go to. Later
 * commands for the same event go straight to the primary that was named
 * (a cache of event -> server learnt from the answers; a message of
 * commands for events on different servers is split, one message per
 * server). With more than one address, a lost connection or
 * a timeout also moves the command to the next address after a backoff.
 * A backoff is drawn at random from [b/2, b], so that many clients do not
 * resend in step: b = backoff_ms after an answer, and after an attempt
 * that got none, backoff_ms doubled with each resend of the command, up to
 * 4 * backoff_ms. Resends are batched like new commands and sent by the
 * library's own thread, never on nng's. The last outcome (status
 * BO_NOT_PRIMARY, or the BOC_ERR_*) is returned after retry_max resends,
 * or when the next resend would come after the command's deadline
 * (deadline_ms after boc_submit); a command still waiting for a resend at
 * its deadline ends then with BOC_ERR_TIMEOUT. Commands waiting for a
 * resend count against queue_max. schemas/protocol.md, "not_primary", is
 * the rule for clients in other languages.
 *
 * Live availability (projections): see "Subscriber" below, a separate
 * object (boc_sub) with its own sockets, used by one thread.
 *
 * Installed as <boxoffice/boxoffice.h>; it includes the command and result
 * types of <boxoffice/base/types.h> (with limits.h, seatmap.h, names.h and
 * change.h). pkg-config name: boxoffice-client.
 */
#ifndef BOXOFFICE_CLIENT_H
#define BOXOFFICE_CLIENT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "base/change.h"
#include "base/names.h"
#include "base/seatmap.h"
#include "base/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Outcomes without a server answer ------------------------------------
 * Negative errno values, so every function keeps the 0 / -errno rule. */
/* No reply within timeout_ms: server down, unreachable, overloaded or slow. */
#define BOC_ERR_TIMEOUT (-ETIMEDOUT)
/* boc_close() ended the command before a reply came. */
#define BOC_ERR_CLOSED (-ESHUTDOWN)
/* The reply could not be decoded or did not match the request (count, ids). */
#define BOC_ERR_PROTOCOL (-EPROTO)
/* The command has no wire encoding (op, seat count, payref, seat map): never sent. */
#define BOC_ERR_INVALID (-EINVAL)
/* Out of memory while encoding or sending. */
#define BOC_ERR_NOMEM (-ENOMEM)
/* Any other nng failure. */
#define BOC_ERR_TRANSPORT (-EIO)

/* bo_result.status of a result that carries a BOC_ERR_* (not a bo_status). */
#define BOC_STATUS_NO_ANSWER 255u

/* Bytes of a callback's text, NUL included (longer texts are truncated). */
#define BOC_TEXT_LEN_MAX 128u

/* ---- Options ------------------------------------------------------------- */

/* Defaults and bounds. Each zero field of boc_options takes its default. */
#define BOC_LINGER_US_DEFAULT 200u   /* ~4 round trips; 20 commands at 100k/s */
#define BOC_LINGER_US_MAX 1000000u   /* a second of batching is a bug */
#define BOC_BATCH_MAX_DEFAULT 4096u  /* = WIRE_BATCH_MAX, the server's message bound */
#define BOC_INFLIGHT_MAX_DEFAULT 4u  /* messages in flight: 2 cores, 2 per core */
#define BOC_INFLIGHT_MAX_MAX 256u    /* nng contexts are cheap, but not free */
#define BOC_TIMEOUT_MS_DEFAULT 5000u /* well past the server's p99 under load */
#define BOC_TIMEOUT_MS_MAX 3600000u
#define BOC_QUEUE_MAX_MAX (1u << 20) /* commands waiting; ~240 bytes each */
#define BOC_SERVERS_MAX 16u          /* addresses: given plus learned from replies */
#define BOC_ADDRESS_LEN_MAX 128u     /* one address, NUL included */
#define BOC_RETRY_MAX_DEFAULT 50u    /* resends of one command; the deadline comes first */
#define BOC_RETRY_MAX_MAX 10000u
#define BOC_RETRY_BACKOFF_MS_DEFAULT 200u /* first wait before asking a server again */
#define BOC_RETRY_BACKOFF_MS_MAX 60000u
/* A failover (a lease of 3 s, then the election) with margin. */
#define BOC_RETRY_DEADLINE_MS_DEFAULT 10000u
#define BOC_RETRY_DEADLINE_MS_MAX BOC_TIMEOUT_MS_MAX

typedef struct boc_options {
	/* Microseconds the oldest queued command may wait for others to join
	 * its message. 0 = BOC_LINGER_US_DEFAULT; to send as soon as an nng
	 * context is free (batching only while all are busy), set
	 * linger_zero = 1. <= BOC_LINGER_US_MAX. */
	uint32_t linger_us;
	uint32_t linger_zero;
	/* Commands per message, 1..4096 (the server's WIRE_BATCH_MAX). */
	uint32_t batch_max;
	/* Messages in flight at once (one nng context each), 1..256. */
	uint32_t inflight_max;
	/* Commands queued and not yet sent, or waiting for a resend,
	 * batch_max..BOC_QUEUE_MAX_MAX; default batch_max * inflight_max * 2.
	 * boc_submit answers -EBUSY beyond it. */
	uint32_t queue_max;
	/* Milliseconds one attempt of a command may take at most (plus
	 * scheduling): from boc_submit to its callback when it is not resent,
	 * 1..BOC_TIMEOUT_MS_MAX; also what boc_close waits. */
	uint32_t timeout_ms;
	/* client_id given to mutating commands whose client_id is 0. 0 = a
	 * random non-zero id drawn at boc_open (boc_client_id() tells it).
	 * A hold belongs to the client id that made it: only that id may
	 * extend, release, confirm or cancel it (others get not_found), so a
	 * process that must act on holds made elsewhere, or after a restart,
	 * sets it explicitly (schemas/protocol.md §3, "Who may touch a hold"). */
	uint64_t client_id;
	/* The server's shared token (boxoffice-server --auth-token-file),
	 * NUL-terminated, 1..BO_AUTH_TOKEN_LEN_MAX bytes, copied by boc_open;
	 * NULL or "": none. Sent in front of every message, commands and
	 * server_status alike (schemas/protocol.md section 17). A server with
	 * a token answers a message without it (or with a wrong one) with
	 * status BO_INVALID, detail BO_D_UNAUTHORIZED for every command of the
	 * message, nothing applied; a server without one ignores it. */
	const char *auth_token;
} boc_options;

/* How the library resends (see "Several servers" at the top). A struct of
 * its own, given to boc_open_servers, so boc_options keeps its size (the
 * shared library's ABI). Each zero field takes its default. */
typedef struct boc_retry_options {
	/* Resends of one command after a not_primary reply (or, with several
	 * addresses, a lost connection or timeout), 1..BOC_RETRY_MAX_MAX;
	 * 0 = BOC_RETRY_MAX_DEFAULT. */
	uint32_t retry_max;
	/* Milliseconds of backoff before resending to a server that is not
	 * named as the primary (the next address, or the same one again);
	 * after an attempt without an answer it doubles with each resend of
	 * the command, up to 4 times this; each wait is drawn from the upper
	 * half of it. 1..BOC_RETRY_BACKOFF_MS_MAX;
	 * 0 = BOC_RETRY_BACKOFF_MS_DEFAULT. */
	uint32_t backoff_ms;
	/* 1: never resend (a not_primary reply is returned as it came, a lost
	 * connection fails as with one address). */
	uint32_t no_retry;
	/* Milliseconds from boc_submit by which a command that is resent gets
	 * its outcome, whatever the servers do: no resend is started that
	 * would come later, each attempt ends by then, and one still waiting
	 * for its resend then ends with BOC_ERR_TIMEOUT. At least timeout_ms
	 * (a smaller value means timeout_ms), ..BOC_RETRY_DEADLINE_MS_MAX;
	 * 0 = BOC_RETRY_DEADLINE_MS_DEFAULT. */
	uint32_t deadline_ms;
} boc_retry_options;

/* Fills *ro with every default (what a NULL pointer means). */
void boc_retry_options_default(boc_retry_options *ro /* OUT */);

/* Fills *opt with every default (what a NULL options pointer means). */
void boc_options_default(boc_options *opt /* OUT */);

/* ---- The client ---------------------------------------------------------- */

typedef struct boc_client boc_client;

/* Called once per accepted command. err == 0: res is the server's answer
 * (any res->status) and text is its "error" text or "". err < 0: a
 * BOC_ERR_*, res as described at the top of this file, text says why.
 * res and text are valid only during the call. */
typedef void (*boc_callback)(void *ctx, int err, const bo_result *res, const char *text);

/* Opens a client of the server at `url` (nng syntax, e.g.
 * "tcp://127.0.0.1:7400"). The dial does not wait for the server: nng keeps
 * redialling, and commands submitted meanwhile wait for it up to their
 * timeout. opt may be NULL (defaults).
 * Returns 0 and sets *out (the caller owns it: boc_close), -EINVAL for an
 * option out of range or a URL nng does not accept, -ENOMEM, or
 * BOC_ERR_TRANSPORT when nng cannot make a socket or thread. */
int boc_open(const char *url, const boc_options *opt, boc_client **out /* OUT */);
/* `url` may also be a comma-separated list of addresses of the servers of
 * one cluster ("tcp://10.0.0.1:7400,tcp://10.0.0.2:7400", at most
 * BOC_SERVERS_MAX, each < BOC_ADDRESS_LEN_MAX bytes; -EINVAL otherwise):
 * see "Several servers" at the top; boc_open resends with the default
 * boc_retry_options. boc_open_servers takes the addresses as an array of
 * n >= 1 (no commas inside) and the retry options (NULL: defaults;
 * -EINVAL for one out of range). */
int boc_open_servers(const char *const *urls, uint32_t n, const boc_options *opt,
                     const boc_retry_options *retry, boc_client **out /* OUT */);

/* Queues a copy of *cmd; `cb(ctx, ...)` gets its outcome later (cb may be
 * NULL: fire and forget). If cmd->request_id is 0 the library assigns a
 * unique one (see boc_next_request_id); if a mutating command's client_id
 * is 0 it gets boc_client_id(c). A CREATE_EVENT's map is borrowed until the
 * callback runs: the caller keeps it alive and unchanged until then.
 * Returns 0 (the callback will be called exactly once), or, with no callback
 * ever: -EBUSY (the queue holds queue_max commands: shed or retry later),
 * -EINVAL (the command cannot be encoded: op out of range, seat_count >
 * BO_SEATS_PER_HOLD_MAX, payref_len > BO_PAYREF_LEN_MAX, CREATE_EVENT
 * without a map, flags other than BO_CMD_F_OPERATOR on a release/cancel),
 * -ESHUTDOWN (boc_close has begun). Never blocks on I/O. */
int boc_submit(boc_client *c, const bo_cmd *cmd, boc_callback cb, void *ctx);

/* Submits *cmd and waits for its outcome. Returns 0 when the server
 * answered (*out holds the answer, any status; err gets its text or ""),
 * or a negative value: boc_submit's refusals (-EBUSY, -EINVAL, -ESHUTDOWN)
 * or a BOC_ERR_* (then *out is as described at the top). err may be NULL
 * (errlen 0). Returns within about timeout_ms (+ linger), or for a command
 * that is resent (see "Several servers") by its deadline. Must not be
 * called from a callback. */
int boc_call(boc_client *c, const bo_cmd *cmd, bo_result *out /* OUT */, char *err /* OUT */,
             size_t errlen);

/* Sends what is queued, waits up to timeout_ms for the replies in flight,
 * fails everything still unanswered with BOC_ERR_CLOSED, closes the socket
 * and frees the client. Every callback has run when it returns. NULL is a
 * no-op. Must not be called from a callback or twice; boc_submit calls that
 * race with it get -ESHUTDOWN until it frees the client, so the caller
 * stops its submitting threads before calling it. */
void boc_close(boc_client *c);

/* The client id mutating commands get when they carry 0. */
uint64_t boc_client_id(const boc_client *c);

/* A request id no other call on this client returns (a random 64-bit base
 * drawn at boc_open plus a counter; never 0). Take one to know a command's
 * id before submitting it, e.g. to resubmit it idempotently later. */
uint64_t boc_next_request_id(boc_client *c);

/* Counters since boc_open, for tests and metrics (racy snapshot). */
typedef struct boc_stats {
	uint64_t commands_submitted; /* accepted by boc_submit */
	uint64_t messages_sent;      /* request messages handed to nng */
	uint64_t commands_sent;      /* commands inside those messages */
	uint64_t replies;            /* commands answered by the server */
	uint64_t failures;           /* commands completed with a BOC_ERR_* */
	uint64_t refused_busy;       /* boc_submit calls answered -EBUSY */
} boc_stats;
void boc_stats_get(boc_client *c, boc_stats *out /* OUT */);

/* Resends since boc_open (after not_primary or a lost server; switchover's
 * included). Not in boc_stats, which keeps its size (the ABI). */
uint64_t boc_retries(boc_client *c);

/* Text for a BOC_ERR_* or submit refusal ("timeout", ...); "ok" for 0. */
const char *boc_strerror(int err);

/* ---- Server status ----------------------------------------------------------
 * What the server reports about itself (schemas/protocol.md section 11):
 * per shard, the durable journal sequence and the state of the committer
 * that carries the journal into PostgreSQL, with its lag. Not a command:
 * it bypasses the batching queue (one message of its own). */

#define BOC_SHARDS_MAX 64u      /* shards one reply describes at most (the server's bound) */
#define BOC_REASON_LEN_MAX 256u /* a committer's reason, NUL included */
#define BOC_VERSION_LEN_MAX 32u /* the server's version, NUL included */

/* A shard's database committer. OFF: the server runs without a database. */
enum boc_committer_state {
	BOC_COMMITTER_OFF = 0,
	BOC_COMMITTER_STARTING = 1, /* connecting, migrating, loading its position */
	BOC_COMMITTER_RUNNING = 2,  /* following the journal */
	BOC_COMMITTER_RETRYING = 3, /* the database is unreachable or failing: retrying */
	BOC_COMMITTER_STOPPED = 4,  /* a fault no retry cures (reason), or the server stops */
};

typedef struct boc_committer_status {
	int state;                       /* enum boc_committer_state */
	uint64_t applied_seq;            /* last journal sequence in the database */
	uint64_t lag_records;            /* durable records not yet in the database */
	uint64_t lag_ms;                 /* age of the oldest of them (0: none) */
	uint64_t batches;                /* database transactions committed */
	uint64_t changes;                /* seat_changes rows written */
	uint64_t outbox;                 /* inventory_events rows written */
	uint64_t retries;                /* failed attempts retried */
	char reason[BOC_REASON_LEN_MAX]; /* why not running; "" when running */
} boc_committer_status;

typedef struct boc_shard_status {
	uint32_t shard;       /* 0..shard_count-1 */
	uint64_t durable_seq; /* highest journal sequence on disk */
	uint64_t batches;     /* writer batches applied since the server started */
	boc_committer_status committer;
} boc_shard_status;

typedef struct boc_server_report {
	int status; /* the server's bo_status: BO_OK, or why it did not answer */
	char version[BOC_VERSION_LEN_MAX];
	uint32_t shard_count; /* entries in shards[] (BO_OK: 1..BOC_SHARDS_MAX) */
	boc_shard_status shards[BOC_SHARDS_MAX];
} boc_server_report;

/* Asks the server for its status and waits up to timeout_ms for it. The
 * reply is checked as hostile input (bounded counts, every field typed).
 * Returns 0 when the server answered: out->status is its bo_status, BO_OK
 * with the rest of *out filled in, else (BO_BUSY: the server is stopping;
 * BO_INVALID: a server too old to know the request, or one whose shared
 * token boc_options.auth_token lacks) err gets its text and
 * the rest of *out is zero. Or, *out zeroed: BOC_ERR_TIMEOUT,
 * BOC_ERR_PROTOCOL (an undecodable reply; err says why), BOC_ERR_NOMEM,
 * BOC_ERR_TRANSPORT, -ESHUTDOWN (boc_close has begun). err may be NULL
 * (errlen 0). Any number of threads may call it at once (each call uses
 * its own nng context); never from a callback, never racing boc_close. */
int boc_server_status(boc_client *c, boc_server_report *out /* OUT */, char *err /* OUT */,
                      size_t errlen);

/* "off", "starting", "running", "retrying", "stopped"; NULL out of range. */
const char *boc_committer_state_name(int state);

/* ---- Cluster status and switchover (schemas/protocol.md, issue 13) ---------
 * The replication state of the server's shards as that server sees it. */

#define BOC_CLUSTER_STANDBYS_MAX 8u /* standbys per shard a reply lists at most */

/* A server's role for one shard. */
enum boc_role {
	BOC_ROLE_NONE = 0,    /* it holds no copy */
	BOC_ROLE_PRIMARY = 1, /* it serves the shard */
	BOC_ROLE_STANDBY = 2, /* it follows the primary */
	BOC_ROLE_FENCED = 3,  /* an old primary that learnt of a newer term */
};

typedef struct boc_standby_status {
	uint32_t node;        /* the standby's node id */
	uint64_t acked_seq;   /* its last acknowledged durable sequence */
	uint64_t lag_records; /* records it has not acknowledged */
} boc_standby_status;

typedef struct boc_shard_cluster {
	uint32_t shard;
	uint64_t epoch;
	int role;              /* enum boc_role */
	int primary_known;     /* 1: primary is set */
	uint32_t primary;      /* the primary's node id */
	uint32_t in_sync_count;
	uint32_t in_sync[BOC_CLUSTER_STANDBYS_MAX + 1];
	uint64_t last_seq;     /* last journaled record */
	uint64_t durable_seq;  /* highest durable sequence */
	uint64_t released_seq; /* highest sequence released to replies */
	uint32_t standby_count; /* primary only: standbys[] in use */
	boc_standby_status standbys[BOC_CLUSTER_STANDBYS_MAX];
} boc_shard_cluster;

typedef struct boc_cluster_report {
	int status;           /* the server's bo_status: BO_OK, or why not */
	uint32_t node;        /* the answering server's node id */
	uint32_t shard_count; /* BO_OK: 1..BOC_SHARDS_MAX */
	boc_shard_cluster shards[BOC_SHARDS_MAX];
} boc_cluster_report;

/* Asks the server the library currently sends to (the first address at
 * first) for its cluster status; outcomes as boc_server_status. */
int boc_cluster_status(boc_client *c, boc_cluster_report *out /* OUT */, char *err /* OUT */,
                       size_t errlen);

/* Asks the primary of `shard` to hand it to node `to` and waits for the
 * answer (the server replies once done, or with why not). A not_primary
 * answer is followed to the primary it names, as for commands (retry_max).
 * Returns 0 when a server answered: *status is its bo_status (BO_OK: done)
 * and err its text; or a BOC_ERR_* / -ESHUTDOWN as boc_server_status. */
int boc_switchover(boc_client *c, uint32_t shard, uint32_t to, int *status /* OUT */,
                   char *err /* OUT */, size_t errlen);

/* "none", "primary", "standby", "fenced"; NULL out of range. */
const char *boc_role_name(int role);

/* ---- Names of server answers ---------------------------------------------- */

/* Wire names: "ok", "taken", ...; "seat_unavailable", ...; "hold_seats", ...;
 * "free", "held", ... NULL when the value is out of range. */
const char *boc_status_name(int status);
const char *boc_detail_name(int detail);
const char *boc_op_name(int op);
const char *boc_seat_state_name(int state);
/* Human-readable reason for a bo_detail ("the seat is not free", ...). */
const char *boc_detail_text(int detail);

/* ---- Command builders ------------------------------------------------------
 * Each zeroes *cmd and fills the fields its op uses. client and request may
 * be 0 (the library fills them in at submit). Values are not checked here:
 * the server answers what is wrong with them. ttl_ms is milliseconds. */
void boc_create_event(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                      const bo_seatmap *map /* borrowed, see boc_submit */);
/* n > BO_SEATS_PER_HOLD_MAX makes a command boc_submit refuses (-EINVAL). */
void boc_hold_seats(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                    const uint32_t *seats, uint32_t n, uint32_t ttl_ms);
void boc_hold_best(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint8_t category,
                   uint16_t quantity, uint32_t ttl_ms);
void boc_hold_pool(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint8_t pool,
                   uint16_t quantity, uint32_t ttl_ms);
void boc_extend(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold,
                uint32_t ttl_ms);
void boc_release(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold);
/* payref longer than BO_PAYREF_LEN_MAX makes a command boc_submit refuses. */
void boc_confirm(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t hold,
                 const char *payref);
void boc_cancel(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event, uint64_t booking);
/* Makes a release or cancel built above an operator's: it then acts on the
 * claim whatever client made it (sent as "operator": true; the server
 * trusts whoever may connect, see schemas/protocol.md §3). Without it a
 * claim op acts only on the sending client's own claims. Returns 0, or
 * -EINVAL (cmd unchanged) for any other op: an operator cannot extend or
 * confirm another client's hold. */
int boc_as_operator(bo_cmd *cmd);
void boc_block(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
               const uint32_t *seats, uint32_t n);
void boc_unblock(bo_cmd *cmd, uint64_t client, uint64_t request, uint64_t event,
                 const uint32_t *seats, uint32_t n);
void boc_query_avail(bo_cmd *cmd, uint64_t event);
void boc_query_seats(bo_cmd *cmd, uint64_t event, const uint32_t *seats, uint32_t n);

/* ---- Subscriber: live availability over projections -------------------------
 *
 * The server publishes, for every durable batch, one projection message per
 * event it changed (schemas/protocol.md part II): the event's sequence
 * before (prev) and after (seq) the batch and its bo_changes. A boc_sub
 * keeps an image (bo_event_image: map, seat states, pool remainders) of
 * each watched event and applies the messages to it, so that the caller
 * sees a current image and one callback per change, without ever seeing
 * a gap:
 *
 *   - boc_sub_watch subscribes to the event's topic FIRST and then asks the
 *     server for its image (event_state over REQ/REP): every message
 *     published after the image was taken is therefore received.
 *   - A message is applied iff its prev is the image's seq; one with
 *     seq <= the image's seq is stale (the image already holds it) and is
 *     dropped; any other prev means messages were lost (nng drops them for
 *     a slow subscriber, or a reconnection lost them): the library fetches
 *     a new image (resynchronisation, with backoff while the server answers
 *     throttled or busy or does not answer) and calls on_resync.
 *   - A "create" change carries no map: a message holding one is not
 *     applied; the library fetches the image and calls on_resync
 *     (BOC_RESYNC_CREATED). on_change never sees a create.
 *   - When the SUB socket (re)connects after an image was asked for,
 *     messages may have been lost with no later message to reveal it: the
 *     library refetches those images (BOC_RESYNC_RECONNECT).
 *
 *     boc_sub_options o;
 *     boc_sub_options_default(&o);
 *     o.on_change = my_change; o.on_resync = my_resync; o.ctx = me;
 *     boc_sub *s;
 *     char err[BOC_TEXT_LEN_MAX];
 *     if (boc_sub_open(&o, &s, err, sizeof(err)) != 0) ... err says why
 *     boc_sub_watch(s, event_id);
 *     for (;;) boc_sub_poll(s, 1000);
 *
 * Threads: a boc_sub is used by one thread at a time. Callbacks run on the
 * calling thread, only inside boc_sub_watch and boc_sub_poll; they may read
 * images (boc_sub_image, the pointers they are given) and stats but must not
 * call boc_sub_watch, boc_sub_unwatch, boc_sub_poll or boc_sub_close
 * (asserted). Bad input from the network (an undecodable message, a change
 * that does not fit the image, a malformed image) is counted and dropped
 * (a misfit also resynchronises), never a crash. */

#define BOC_SUB_PUB_URL_DEFAULT "tcp://127.0.0.1:7401" /* scripts/run's tcp publisher */
#define BOC_SUB_REQ_URL_DEFAULT "tcp://127.0.0.1:7400" /* the server's REQ/REP socket */
#define BOC_SUB_TIMEOUT_MS_DEFAULT 5000u               /* one event_state round trip at most */
#define BOC_SUB_RETRY_MS_MIN_DEFAULT 50u               /* first wait after a failed fetch */
#define BOC_SUB_RETRY_MS_MAX_DEFAULT 2000u             /* waits double up to this */
/* Messages nng queues for the subscriber: a burst of 4096 batches rides out
 * an image fetch. */
#define BOC_SUB_RECV_BUF_DEFAULT 4096u
#define BOC_SUB_RECV_BUF_MAX 8192u /* nng's own bound of NNG_OPT_RECVBUF */

/* Why an image replaced the one the subscriber had (on_resync). */
enum boc_resync_reason {
	BOC_RESYNC_JOIN = 1,      /* the first image of a watched event */
	BOC_RESYNC_GAP = 2,       /* a message's prev was not the image's seq */
	BOC_RESYNC_CREATED = 3,   /* the event was created while watched */
	BOC_RESYNC_INVALID = 4,   /* a message did not fit the image (a seat or pool
	                           * outside it, a pool over its capacity) */
	BOC_RESYNC_RECONNECT = 5, /* the SUB socket (re)connected after the image
	                           * was asked for: messages may have been lost */
};

/* The projection message a change came in. */
typedef struct boc_sub_msg {
	uint64_t event_id;
	uint64_t prev_seq;     /* the event's sequence before the message */
	uint64_t seq;          /* ... and after it */
	int64_t at_ms;         /* the batch's time, ms since the Unix epoch */
	int64_t pub_us;        /* when the server published it, us since the epoch */
	uint32_t change_index; /* this change is changes[change_index] of ... */
	uint32_t change_count; /* ... change_count */
} boc_sub_msg;

/* One change, applied: `image` is the event's image with this change (and
 * the message's earlier ones) applied; image->seq is msg->prev_seq during
 * the calls for the message's changes but its last, msg->seq during the
 * last's. All three pointers are valid during the call only. */
typedef void (*boc_sub_change_cb)(void *ctx, const boc_sub_msg *msg, const bo_change *change,
                                  const bo_event_image *image);

/* A new image of event_id replaced the subscriber's (or is its first):
 * reason is an enum boc_resync_reason. image is valid until the next
 * boc_sub_* call that may change it (poll, unwatch, close). */
typedef void (*boc_sub_resync_cb)(void *ctx, uint64_t event_id, const bo_event_image *image,
                                  int reason);

/* No image of event_id could be had. err < 0: no answer (BOC_ERR_TIMEOUT:
 * no server or a slow one, BOC_ERR_PROTOCOL: an undecodable reply, ...;
 * status is then BOC_STATUS_NO_ANSWER);
 * err == 0: the server answered `status`: BO_NOT_FOUND, the event does not
 * exist (yet): retry_ms is 0, the library forgets any image it had and
 * fetches one when a message of the event arrives (its create);
 * BO_THROTTLED, BO_BUSY or another: asked again. text says why. retry_ms:
 * when the library asks again (0: it waits for a message). */
typedef void (*boc_sub_no_image_cb)(void *ctx, uint64_t event_id, int err, int status,
                                    const char *text, uint32_t retry_ms);

typedef struct boc_sub_options {
	const char *pub_url; /* the server's PUB socket; NULL: BOC_SUB_PUB_URL_DEFAULT */
	const char *req_url; /* its REQ/REP socket (event_state); NULL: BOC_SUB_REQ_URL_DEFAULT */
	uint32_t timeout_ms; /* one event_state round trip, 1..BOC_TIMEOUT_MS_MAX */
	uint32_t retry_ms_min, retry_ms_max; /* backoff of failed fetches, 1 <= min <= max
	                                      * <= BOC_TIMEOUT_MS_MAX; each wait is drawn
	                                      * in [d/2, d] so subscribers spread out */
	uint32_t recv_buf;               /* messages nng queues for us, 1..BOC_SUB_RECV_BUF_MAX */
	const char *auth_token;          /* the server's shared token, as boc_options.auth_token:
	                                  * sent with every event_state request; copied */
	boc_sub_change_cb on_change;     /* may be NULL */
	boc_sub_resync_cb on_resync;     /* may be NULL */
	boc_sub_no_image_cb on_no_image; /* may be NULL */
	void *ctx;                       /* the callbacks' first argument */
} boc_sub_options;

/* Fills *opt with the defaults (URLs NULL: the defaults above, no callbacks). */
void boc_sub_options_default(boc_sub_options *opt /* OUT */);

typedef struct boc_sub boc_sub;

/* Opens a subscriber: a SUB socket dialled to pub_url and a REQ socket
 * dialled to req_url. Neither dial waits for the server (nng keeps
 * redialling; boc_sub_wait_connected waits for the publisher). opt may be
 * NULL (defaults). Returns 0 and *out (the caller owns it: boc_sub_close),
 * -EINVAL (an option out of range or a URL nng refuses; err says which),
 * -ENOMEM or BOC_ERR_TRANSPORT (err says why). err may be NULL (errlen 0). */
int boc_sub_open(const boc_sub_options *opt, boc_sub **out /* OUT */, char *err /* OUT */,
                 size_t errlen);

/* Waits up to timeout_ms until the SUB socket is connected to a publisher.
 * Returns 0, or BOC_ERR_TIMEOUT. Calls no callback. */
int boc_sub_wait_connected(boc_sub *s, uint32_t timeout_ms);

/* Starts watching event_id: subscribes to its topic, then asks the server
 * for its image (waiting up to timeout_ms). Returns 0 when the event is
 * watched: its image was installed (on_resync BOC_RESYNC_JOIN has been
 * called), or not (on_no_image has been called: the event does not exist
 * yet, or the fetch is retried by boc_sub_poll). Watching a watched event
 * returns 0 and does nothing. Else, nothing watched: -EINVAL (event_id 0),
 * -ENOSPC (BO_SUB_TOPICS_MAX events are watched), -ENOMEM,
 * BOC_ERR_TRANSPORT (nng refused the subscription). */
int boc_sub_watch(boc_sub *s, uint64_t event_id);

/* Stops watching event_id: unsubscribes and frees its image (pointers to
 * it die). Messages of it still queued are counted as unwatched. Returns
 * 0, or -ENOENT when it was not watched. */
int boc_sub_unwatch(boc_sub *s, uint64_t event_id);

/* Waits up to timeout_ms (0: not at all) for messages, then handles every
 * message already received (at most BOC_SUB_RECV_BUF_MAX per call) and
 * every image fetch that is due, making the callbacks. Returns as soon as
 * something happened, or after timeout_ms: the number of changes applied
 * plus image fetches made (each reported to its callback, when set), >= 0;
 * or BOC_ERR_TRANSPORT when the SUB socket failed. A fetch made
 * here takes up to opt.timeout_ms, which may exceed timeout_ms. */
int boc_sub_poll(boc_sub *s, uint32_t timeout_ms);

/* The image of a watched event, read-only; NULL when event_id is not
 * watched or has no image yet (not fetched, or not existing). Valid until
 * the next boc_sub_poll, boc_sub_unwatch or boc_sub_close. */
const bo_event_image *boc_sub_image(const boc_sub *s, uint64_t event_id);

/* Counters since boc_sub_open. */
typedef struct boc_sub_stats {
	uint64_t messages;       /* messages received, any event, any outcome */
	uint64_t applied;        /* messages applied to an image */
	uint64_t changes;        /* changes applied (an on_change call each, if set) */
	uint64_t stale;          /* messages already in the image (seq <= its seq) */
	uint64_t gaps;           /* messages that revealed lost ones (-> resync) */
	uint64_t resyncs;        /* images installed, joins included */
	uint64_t malformed;      /* undecodable messages, and ones not fitting the image */
	uint64_t unwatched;      /* messages of events not (or no longer) watched */
	uint64_t waiting;        /* messages of events waiting for an image, dropped */
	uint64_t fetches;        /* event_state requests sent */
	uint64_t fetch_failures; /* of which no image came (incl. throttled, not found) */
	uint64_t throttled;      /* of which the server answered throttled or busy */
	uint64_t connects;       /* times the SUB socket connected */
	uint64_t injected;       /* messages dropped by boc_sub_inject_gap */
} boc_sub_stats;

/* A copy of the counters (connects is updated by nng's threads: read
 * atomically; the rest belong to the subscriber's thread). */
void boc_sub_stats_get(const boc_sub *s, boc_sub_stats *out /* OUT */);

/* TEST HOOK, not for production: the next `messages` messages of event_id
 * (a watched event) that the subscriber receives are dropped as if nng had
 * lost them (counted in stats.injected), so that tests can prove gap
 * detection and repair without a slow network. Returns 0 or -ENOENT (not
 * watched). */
int boc_sub_inject_gap(boc_sub *s, uint64_t event_id, uint32_t messages);

/* Unsubscribes from everything, closes the sockets and frees the images and
 * the subscriber. NULL is a no-op. Not from a callback. */
void boc_sub_close(boc_sub *s);

/* "join", "gap", "created", "invalid", "reconnect"; NULL out of range. */
const char *boc_resync_reason_name(int reason);

/* Wire name of a bo_cause: "create", "hold", ...; NULL out of range. */
const char *boc_cause_name(int cause);

#ifdef __cplusplus
}
#endif

#endif /* BOXOFFICE_CLIENT_H */
