/*
 * internal.h — the gateway's state, shared by its parts (gateway.c: nng
 * requests, output threads, status; http.c: the HTTP/JSON front;
 * metrics.c: /metrics, /healthz, /readyz; throttle.c: hot events; auth.c:
 * the shared token). Not a contract for anyone outside gateway/.
 */
#ifndef BO_GATEWAY_INTERNAL_H
#define BO_GATEWAY_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include <msgpack.h>
#include <nng/nng.h>

#include "base/hist.h"
#include "gateway/gateway.h"
#include "gateway/throttle.h"
#include "view/view.h"

enum { SLOT_RECV = 0, SLOT_SEND = 1 };

/* Output records an output thread takes from its ring at once: a full
 * message's worth, so one request's results are filed in one pass; and
 * one read-model batch. */
#define GW_OUT_POLL_MAX WIRE_BATCH_MAX
_Static_assert(GW_OUT_POLL_MAX <= VIEW_BATCH_MAX, "a poll is one read-model batch");

typedef struct gw_slot {
	gw_server *gw;
	uint32_t index;
	int local; /* gw_apply_local's slot: completion posts `done` */
	/* Local slot only, under local_lock: a gw_apply_local that timed out
	 * left its commands in their shards. count, cmds (their copied maps)
	 * and res stay as they were until its last result posts `done`, which
	 * the next gw_apply_local waits for. */
	int abandoned;
	uint32_t cap; /* commands the slot's arrays hold */
	/* Set for the HTTP front's slots: called (on the thread that files the
	 * last result) instead of encoding a msgpack reply; front is its
	 * request. */
	void (*done_fn)(struct gw_slot *sl);
	/* Set for the framed front's slots (frame.c): called instead of an
	 * nng send once `reply` holds the encoded reply (or message-level
	 * error), on whichever thread produced it. */
	void (*reply_fn)(struct gw_slot *sl);
	void *front;
	nng_ctx ctx;
	nng_aio *aio;
	int state; /* SLOT_RECV or SLOT_SEND; only the aio callback's thread */
	uint32_t count;
	uint8_t is_array;
	int64_t start_ns; /* bo_clock_ns when the request was received (/metrics) */
	uint64_t start_aux; /* switchover: the shard asked about */
	/* Results outstanding + 1 while submitting. Acq_rel: each output
	 * thread's write of res[i] happens before its decrement, and the
	 * thread that reaches zero reads every res[] after it. */
	atomic_uint pending;
	bo_cmd *cmds;
	wire_cmd_error *errs;
	bo_result *res;
	bo_cmd *scratch; /* one shard's commands, contiguous for shard_submit */
	uint64_t *tags;
	/* Cluster mode: what each not_primary result's reply names (filled
	 * at completion from the node's map cache); NULL otherwise. */
	wire_primary *primary;
	msgpack_sbuffer reply;
	sem_t done;
} gw_slot;

/* The shard balance (/metrics): per-shard command totals sampled at most
 * once a second (by the status thread, and by each render), so that a
 * render can take the difference over the last ~10 s. */
#define GW_BALANCE_SLOTS 16u
#define GW_BALANCE_WINDOW_NS 10000000000LL
typedef struct gw_balance {
	pthread_mutex_t lock;
	uint32_t head, len; /* ring of samples; head: the oldest */
	int64_t at_ns[GW_BALANCE_SLOTS];
	uint64_t cmds[GW_BALANCE_SLOTS][GW_SHARDS_MAX];
} gw_balance;

/* What an output thread is started with: one per shard, in its server. */
typedef struct out_arg {
	gw_server *gw;
	uint32_t shard;
	msgpack_sbuffer scratch; /* projection encoding, this thread's own */
} out_arg;

struct gw_server {
	gw_config cfg;
	shard *shards[GW_SHARDS_MAX];
	pthread_t out_threads[GW_SHARDS_MAX];
	out_arg out_args[GW_SHARDS_MAX];
	uint32_t out_started;
	atomic_int out_stop; /* relaxed: output threads poll it between batches */
	nng_socket sock;
	int sock_open;
	nng_listener listeners[GW_LISTEN_MAX];
	uint32_t listener_count;
	gw_slot *slots; /* contexts + 1 (the last is the local slot) */
	uint32_t slot_count;
	pthread_mutex_t local_lock; /* one gw_apply_local at a time */
	/* Requests between RECV and the end of their SEND (gw_stop waits for
	 * zero). Relaxed counters are enough: gw_stop polls it. */
	atomic_int in_flight;
	atomic_int draining;
	atomic_int closing; /* gw_stop: contexts stop taking requests after a reply */
	atomic_int closed; /* close_main finished nng_close (release/acquire) */
	int close_hung;	   /* gw_stop gave up on nng_close: do not free */
	atomic_uint_least64_t requests, commands, invalid_msgs, busy;
	/* Database committers (NULL without a dsn, and after gw_stop stopped
	 * them; in a cluster, NULL where this node is not the shard's primary:
	 * the node starts and stops them, gw_committer_start/stop).
	 * status_lock guards the pointers against a server_status reader while
	 * they change, and the status buffer. */
	committer *committers[GW_SHARDS_MAX];
	uint8_t committer_failed[GW_SHARDS_MAX]; /* under status_lock: the last start failed */
	pthread_mutex_t status_lock;
	wire_server_status status_buf; /* under status_lock: ~20 KiB, off every stack */
	/* The status thread: logs every status_every_ms and on state changes. */
	pthread_t status_thread;
	int status_started;
	pthread_mutex_t status_stop_lock;
	pthread_cond_t status_stop_cv; /* CLOCK_MONOTONIC */
	int status_stop;	       /* under status_stop_lock */
	wire_server_status status_log_buf; /* the status thread's own */
	/* The read side: each shard's read model (written by its output
	 * thread, read by the nng threads) and the projection publisher. */
	view *views[GW_SHARDS_MAX];
	gw_pub *pub;
	struct gw_http *http; /* NULL without cfg.http */
	struct gw_frame *frame; /* NULL without cfg.frame */
	atomic_uint_least64_t reads, event_states, event_states_throttled;
	/* Hot-event throttling (throttle.h): NULL when cfg.throttle_rate is 0.
	 * `throttled` counts commands answered BO_THROTTLED (relaxed: a
	 * counter). */
	gw_throttle *throttle;
	atomic_uint_least64_t throttled;
	/* event_state rate: requests answered in the current second. */
	pthread_mutex_t es_lock;
	int64_t es_window_ms;
	uint32_t es_count;
	/* The shared token (auth.c): gw_start's copy of cfg.auth_token (which
	 * then points at it); NULL: none. Read-only after gw_start. */
	char *auth_token;
	size_t auth_token_len;
	/* Messages refused for a missing or wrong token (relaxed: a counter). */
	atomic_uint_least64_t unauthorized;
	/* /metrics (metrics.c). Results answered, by op and status (relaxed
	 * counters); request latency, per message; each read model's last
	 * journal sequence applied (its output thread stores, release);
	 * `ready` once gw_start is done (release). */
	atomic_uint_least64_t results[BO_OP_COUNT][BO_STATUS_COUNT];
	bo_hist request_us;
	atomic_uint_least64_t view_seq[GW_SHARDS_MAX];
	atomic_int ready;
	gw_balance balance;
	/* Cluster mode (gateway/node.h): the node; NULL for a single server.
	 * shard_rw[k] guards shards[k] and views[k] against the node swapping
	 * them (write: the node thread, briefly) and the role the submit path
	 * checks; out_stop_k[k] stops shard k's output thread alone. */
	struct gw_node *node;
	wire_cluster_status cluster_buf; /* under status_lock: off every stack */
	pthread_rwlock_t shard_rw[GW_SHARDS_MAX];
	atomic_int out_stop_k[GW_SHARDS_MAX];
};

/* Shard k for a data-plane thread (replication), with shard_rw[k] held for
 * reading; NULL while the node is reopening it. Always pair with
 * gw_shard_release (also after NULL). */
shard *gw_shard_acquire(gw_server *gw, uint32_t k);
void gw_shard_release(gw_server *gw, uint32_t k);

/* Shard k's output thread alone (the node reopening or refreshing it):
 * stop after shard_stop returned (it drains what the writer published),
 * start before shard_start. */
int gw_out_start(gw_server *gw, uint32_t k);
void gw_out_stop(gw_server *gw, uint32_t k);

/* Shard k's database committer (cluster: the node's control thread, as k
 * becomes primary here or stops being it). Start: with a dsn, starts it on
 * gw->shards[k] (none may run); 0, or a negative errno with err (then
 * there is none); without a dsn, 0 and nothing. Stop: takes it out of
 * reach of the status readers, stops it (it applies what is released when
 * the database answers) and frees it; *last (may be NULL) gets its last
 * status (zeroed when none ran). Returns 1 when one ran, else 0. */
int gw_committer_start(gw_server *gw, uint32_t k, char *err, size_t errlen);
int gw_committer_stop(gw_server *gw, uint32_t k, committer_status *last /* OUT */);

/* With a database and no committer for shard k (status_lock held):
 * GW_COMMITTER_OFF_HERE when this is a cluster node that is not k's
 * primary (its primary's committer carries k), GW_COMMITTER_NOT_STARTED
 * when gw_committer_start failed (logged) and no stop came since,
 * GW_COMMITTER_GONE when the server is stopping (or a single server's
 * committer is missing for another reason). */
enum { GW_COMMITTER_OFF_HERE = 1, GW_COMMITTER_NOT_STARTED, GW_COMMITTER_GONE };
int gw_committer_absent(gw_server *gw, uint32_t k);

/* The HTTP front's request slots (after the local slot in slots[]). */
#define GW_HTTP_SLOTS_SMALL BO_HTTP_INFLIGHT_MAX
#define GW_HTTP_SLOTS_BIG BO_HTTP_BATCH_INFLIGHT_MAX

/* The framed front's request slots (after the HTTP front's, if any):
 * small ones hold one command, big ones a full message. */
#define GW_FRAME_SLOTS_SMALL 1024u
#define GW_FRAME_SLOTS_BIG 8u

/* One request message body[0..len) (schemas/protocol.md: the optional
 * auth prefix, admin requests, a map or a batch array of at most sl->cap
 * commands) for slot sl, as an nng context takes it: refused, answered at
 * once (a malformed message, event_state, server_status) or submitted.
 * The reply reaches the slot's front (reply_fn, or nng) on whichever
 * thread completes it, possibly before this returns. body is not kept
 * (decoding copies what it needs). The caller counted the request in
 * gw->in_flight and set sl->start_ns. */
void gw_slot_receive(gw_slot *sl, const uint8_t *body, size_t len);

/* Submits sl->cmds[0..count) (decoded, errs[] filled): reads answered from
 * the read model, writes routed to their shards; the last result calls
 * slot completion (done_fn for a front's slot). The caller counted the
 * request in gw->in_flight. */
void gw_slot_submit(gw_slot *sl);

/* 1 when one more event_state fits this second's budget
 * (BO_EVENT_STATE_PER_SEC_MAX, shared by nng and HTTP). */
int gw_event_state_admit(gw_server *gw);

/* gateway/http.c: the HTTP front. gw_http_start after the slots exist
 * (cfg.http set); gw_http_stop once nothing is in flight (no request is
 * suspended then); both from gw_start/gw_stop. */
int gw_http_start(gw_server *gw, char *err, size_t errlen);
/* "HOST:PORT" with HOST an IPv4 literal or "localhost"; PORT 0..65535 (0:
 * any free port) into *a (the HTTP and framed fronts' addresses). Returns
 * 0 or -1. */
struct sockaddr_in;
int gw_http_parse_addr(const char *s, struct sockaddr_in *a /* OUT */);
void gw_http_stop(gw_server *gw);

/* auth.c: gw_start's check, before anything is opened: 0, or -EINVAL (a
 * token of 0 or over BO_AUTH_TOKEN_LEN_MAX bytes) or -EPERM (a --listen,
 * --publish, --http or --frame address that is not loopback, and no token) with
 * err naming the address. */
int gw_auth_check_config(const gw_config *cfg, char *err, size_t errlen);
/* auth.c: copies cfg.auth_token into gw (0 or -ENOMEM); gw_auth_fini
 * wipes and frees the copy (safe without one). */
int gw_auth_init(gw_server *gw);
void gw_auth_fini(gw_server *gw);

/* ---- Counting hooks for /metrics (metrics.c); any thread ---------------- */

/* Counts the results of one reply: res[i], or errs[i] when errs != NULL
 * and errs[i].status != BO_OK (a command that did not decode: its op is
 * cmds[i].op, which the decoder leaves BO_OP_NONE; cmds may be NULL).
 * Call once per reply, when it is encoded (boxoffice_results_total). */
void gw_count_results(gw_server *gw, const bo_result *res, const wire_cmd_error *errs, const bo_cmd *cmds,
		      uint32_t n);

/* Counts one result: an op out of range counts as BO_OP_NONE ("none");
 * status must be a bo_status. */
void gw_count_result(gw_server *gw, int op, int status);

/* Observes one request's latency: from start_ns (bo_clock_ns when it was
 * taken from the transport) to now, when its reply is handed back. */
void gw_observe_request(gw_server *gw, int64_t start_ns);

/* Set up / tear down the metrics state (gw_start / gw_free). */
void gw_metrics_init(gw_server *gw);
void gw_metrics_fini(gw_server *gw);

/* Takes a balance sample if the last is a second old or more (the status
 * thread calls it as it polls). */
void gw_metrics_tick(gw_server *gw);

#endif /* BO_GATEWAY_INTERNAL_H */
