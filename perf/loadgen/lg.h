/*
 * lg.h — boxoffice-bench, the load generator of the benchmark harness
 * (issue 11): one workload, one system, one run, one JSON line.
 *
 * The harness measures boxoffice and what teams otherwise build (Redis 7
 * with Lua scripts, PostgreSQL row locks, and a bare nng echo as the
 * transport's ceiling) on the same requests. Every system sees the same
 * abstract requests (lg_req): an availability read, a hold of given seats,
 * a best-available hold, a confirm or a release of an earlier hold. A
 * system (lg_system) turns them into its own calls: the client library's
 * commands, a Lua script's EVALSHA, a row-lock transaction.
 *
 * Files:
 *   lg.h          this contract
 *   main.c        options, the run (threads, open/closed loop), JSON
 *   workload.c    the platform's traffic profiles (lg_workload_*)
 *   stats.c       log-bucketed latency histogram, per-op outcome counts
 *   audit.c       the oversell audit over what every worker saw
 *   sys_boxoffice.c  boxoffice through libboxoffice-client (nng)
 *   sys_frame.c   boxoffice over the framed TCP front (schemas/frame.md)
 *   sys_redis.c   Redis 7 + Lua (hiredis)
 *   sys_pg.c      PostgreSQL row locks (libpq)
 *   sys_echo.c    bare nng REQ/REP echo (and its server: --echo-server)
 *
 * Seats are named the same way for every system: event e in
 * 0..events-1 and seat s in 0..seats_per_event-1, rows of `per_row`
 * seats in order (seat s is in row s / per_row); category = row band
 * (lg_category). A system maps these to its own ids (boxoffice: event id
 * e + 1, seat number s; Redis: key names; PostgreSQL: columns).
 *
 * Threads: each connection (lg_conn) is driven by exactly one worker
 * thread; lg_system.exec is only ever called for one connection from one
 * thread at a time. setup/audit/teardown run on the main thread with no
 * worker running.
 */
#ifndef BO_PERF_LG_H
#define BO_PERF_LG_H

#include <stddef.h>
#include <stdint.h>

/* Seats one hold names or asks for (<= BO_SEATS_PER_HOLD_MAX). */
#define LG_SEATS_MAX 8u
/* Bytes of an error text (NUL included). */
#define LG_ERR_LEN 256u

/* ---- Requests ------------------------------------------------------------- */

enum lg_op {
	LG_READ = 0,	   /* availability of one event: free seats */
	LG_HOLD_SEATS = 1, /* hold seat[0..n-1], all or nothing, for ttl_ms */
	LG_HOLD_BEST = 2,  /* hold n adjacent-or-best seats of `category` */
	LG_CONFIRM = 3,	   /* confirm the hold `claim` (seat[0..n-1] are its seats) */
	LG_RELEASE = 4,	   /* release the hold `claim` (seat[0..n-1] are its seats) */
	LG_OP_COUNT
};

enum lg_outcome {
	LG_OK = 0,	  /* done as asked */
	LG_TAKEN = 1,	  /* a hold found a seat not free / sold out: business as usual */
	LG_EXPIRED = 2,	  /* confirm/release of a hold that expired (or is gone) */
	LG_BUSY = 3,	  /* the system shed it (overload); retry later */
	LG_THROTTLED = 4, /* refused by a rate limit (boxoffice's hot-event throttle) */
	LG_ERROR = 5,	  /* any other answer: a bug or bad request; counts as an error */
	LG_NO_ANSWER = 6, /* transport failure or timeout: no answer */
	LG_OUTCOME_COUNT
};

typedef struct lg_req {
	/* In: set by the workload. */
	uint8_t op;	  /* enum lg_op */
	uint8_t n;	  /* seats in seat[] (HOLD_SEATS, CONFIRM, RELEASE) or quantity (HOLD_BEST) */
	uint8_t category; /* HOLD_BEST */
	uint8_t _pad;
	uint32_t event;	  /* 0..events-1 */
	uint32_t ttl_ms;  /* holds */
	uint32_t seat[LG_SEATS_MAX];
	uint64_t client;     /* the buyer, non-zero; a hold is confirmed/released by its buyer */
	uint64_t request_id; /* unique in the run, non-zero (idempotency key) */
	uint64_t claim;	     /* CONFIRM/RELEASE: claim_out of the hold */
	/* Out: set by lg_system.exec. */
	uint8_t outcome;      /* enum lg_outcome */
	uint8_t nseats_out;   /* holds with LG_OK: seats held, in seat_out[] */
	uint8_t _pad2[2];
	uint32_t seat_out[LG_SEATS_MAX];
	uint64_t claim_out;   /* holds with LG_OK: the system's handle of the hold (non-zero) */
	int64_t avail_out;    /* READ with LG_OK: free seats of the event */
} lg_req;

/* ---- Run configuration ---------------------------------------------------- */

typedef struct lg_config {
	const char *system;   /* lg_system.name */
	const char *target;   /* where the system listens (system-specific syntax, see each
			       * lg_system's doc); NULL: the system's default */
	const char *workload; /* "normal", "on-sale", "flash", "many-events" */
	uint32_t events;      /* events the workload uses */
	uint32_t seats_per_event;
	uint32_t per_row;     /* seats per row */
	uint32_t categories;  /* price tiers: row bands, 1..8 */
	uint32_t conns;	      /* connections, one worker thread each */
	uint32_t depth;	      /* requests per exec (pipeline depth / batch), >= 1 */
	uint32_t ttl_ms;      /* hold TTL the workload asks for */
	int setup;	      /* 1: lg_system.setup creates the events (fresh system) */
	const char *opts;     /* system-specific "key=value,key=value" (--opt); NULL: none */
} lg_config;

/* ---- A system under test -------------------------------------------------- */

typedef struct lg_audit_fig {
	char name[48]; /* e.g. "engine_booked", "read_model_booked", "postgres_booked" */
	int64_t value;
} lg_audit_fig;

#define LG_AUDIT_FIGS_MAX 16u

/* What a system says of its own state after a run, for the oversell audit:
 * booked (sold) and held seats summed over the workload's events, as seen
 * by each of its stores. The audit requires every store's `booked` to equal
 * the seats the workers saw confirmed (allowing confirms without an
 * answer) and the stores to agree with each other. */
typedef struct lg_audit {
	unsigned nfigs;
	lg_audit_fig figs[LG_AUDIT_FIGS_MAX]; /* names end in "_booked" or "_held" */
} lg_audit;

typedef struct lg_system {
	const char *name; /* "boxoffice", "boxoffice-frame", "redis", "postgres", "nng-echo" */
	/* Ops it implements: bit (1u << LG_x). The run refuses a workload
	 * that needs an op the system lacks (with a clear error). */
	uint32_t ops;
	/* Connects, checks the target answers, and with cfg->setup creates
	 * cfg->events events of cfg->seats_per_event seats (rows of
	 * cfg->per_row, categories by lg_category), all free. Returns 0 and
	 * *sys, or -errno with err (LG_ERR_LEN) saying what and where. */
	int (*setup)(const lg_config *cfg, void **sys, char *err);
	/* Opens connection `idx` (0..cfg->conns-1). 0 / -errno + err. */
	int (*conn_open)(void *sys, unsigned idx, void **conn, char *err);
	/* Carries out reqs[0..n-1] (n <= cfg->depth) as one round of the
	 * system's best client pattern for that depth (one pipeline, one
	 * batch; n == 1: one request, one answer) and fills every req's
	 * outcome and outputs. Never fails as a whole: a lost connection
	 * marks the requests LG_NO_ANSWER (and reconnects on the next call if
	 * it can). */
	void (*exec)(void *conn, lg_req *reqs, unsigned n);
	void (*conn_close)(void *conn);
	/* After the run, all connections closed: the system's own view of the
	 * workload's events (see lg_audit). 0 / -errno + err. NULL: none. */
	int (*audit)(void *sys, const lg_config *cfg, lg_audit *out, char *err);
	void (*teardown)(void *sys);
} lg_system;

extern const lg_system lg_sys_boxoffice, lg_sys_frame, lg_sys_redis, lg_sys_pg, lg_sys_echo;

/* boxoffice-bench --echo-server URL: a bare nng REP socket at url that
 * sends every message back unchanged, until SIGTERM/SIGINT (sys_echo.c).
 * Returns 0 after a signal, -errno + err when it cannot listen. */
int lg_echo_serve(const char *url, char *err);

/* The category of seat s: rows split into cfg->categories bands, best
 * (category 0) first. Every system uses this, so best-available means the
 * same thing everywhere. */
static inline uint8_t lg_category(const lg_config *cfg, uint32_t seat)
{
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	uint32_t row = seat / cfg->per_row;
	uint32_t band = (rows + cfg->categories - 1) / cfg->categories;
	return (uint8_t)(row / band);
}

/* Looks up "key" in a "k=v,k=v" option string; copies its value into
 * buf (bufsz) and returns 1, or returns 0 when absent. */
int lg_opt(const char *opts, const char *key, char *buf, size_t bufsz);

#endif
