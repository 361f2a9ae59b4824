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
	nng_ctx ctx;
	nng_aio *aio;
	int state; /* SLOT_RECV or SLOT_SEND; only the aio callback's thread */
	uint32_t count;
	uint8_t is_array;
	int64_t start_ns; /* bo_clock_ns when the request was received (/metrics) */
	/* Results outstanding + 1 while submitting. Acq_rel: each output
	 * thread's write of res[i] happens before its decrement, and the
	 * thread that reaches zero reads every res[] after it. */
	atomic_uint pending;
	bo_cmd *cmds;
	wire_cmd_error *errs;
	bo_result *res;
	bo_cmd *scratch; /* one shard's commands, contiguous for shard_submit */
	uint64_t *tags;
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
	 * them). status_lock guards the pointers against a server_status
	 * reader while gw_stop takes them out, and the status buffer. */
	committer *committers[GW_SHARDS_MAX];
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
	atomic_uint_least64_t reads, event_states, event_states_throttled;
	/* event_state rate: requests answered in the current second. */
	pthread_mutex_t es_lock;
	int64_t es_window_ms;
	uint32_t es_count;
	/* /metrics (metrics.c). Results answered, by op and status (relaxed
	 * counters); request latency, per message; each read model's last
	 * journal sequence applied (its output thread stores, release);
	 * `ready` once gw_start is done (release). */
	atomic_uint_least64_t results[BO_OP_COUNT][BO_STATUS_COUNT];
	bo_hist request_us;
	atomic_uint_least64_t view_seq[GW_SHARDS_MAX];
	atomic_int ready;
	gw_balance balance;
};

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
