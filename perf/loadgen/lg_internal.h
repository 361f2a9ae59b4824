/*
 * lg_internal.h — what the driver's own files (main.c, workload.c,
 * stats.c, audit.c) share; the systems need only lg.h.
 */
#ifndef BO_PERF_LG_INTERNAL_H
#define BO_PERF_LG_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "lg.h"

/* ---- Latency histogram (stats.c) ------------------------------------------
 * Log-bucketed: values below 32 ns exactly, then per power of two 32
 * linear sub-buckets, so a bucket spans at most 1/32 of its value (about
 * 3%); a quantile reports its bucket's midpoint. The maximum is exact. */
#define LG_HIST_SUB 32u
#define LG_HIST_BUCKETS (60u * LG_HIST_SUB)

typedef struct lg_hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[LG_HIST_BUCKETS];
} lg_hist;

void lg_hist_add(lg_hist *h, uint64_t ns);
void lg_hist_merge(lg_hist *into, const lg_hist *h);
/* Nanoseconds at quantile q (0..1]: the midpoint of the bucket holding the
 * ceil(q * count)-th value (never above max); 0 when empty. */
uint64_t lg_hist_quantile(const lg_hist *h, double q);

/* A worker's (or the run's merged) figures. */
typedef struct lg_stats {
	lg_hist all;
	lg_hist op[LG_OP_COUNT];
	uint64_t outcomes[LG_OP_COUNT][LG_OUTCOME_COUNT];
	/* --timeline: one histogram per second of the run (all ops), grown on
	 * demand; NULL entries are seconds without a completion. */
	int timeline;
	uint32_t nsec;
	lg_hist **sec;
} lg_stats;

/* Returns a zeroed lg_stats (heap: ~90 KB) or NULL when out of memory. */
lg_stats *lg_stats_new(int timeline);
void lg_stats_free(lg_stats *s);
/* One completed request: its op and outcome, latency, and when it
 * completed, in ns since the run's start (for the timeline). Returns 0 or
 * -ENOMEM (the timeline could not grow; the rest is recorded). */
int lg_stats_add(lg_stats *s, unsigned op, unsigned outcome, uint64_t lat_ns, uint64_t at_ns);
/* Adds s into `into`. 0 / -ENOMEM (timeline). */
int lg_stats_merge(lg_stats *into, const lg_stats *s);

/* ---- Oversell audit (audit.c) ---------------------------------------------
 * Each worker notes what it saw in its own log (no locks on the hot
 * path); lg_audit_check merges the logs after the run. Times are ns of
 * CLOCK_MONOTONIC. */
typedef struct lg_audit_log lg_audit_log;

lg_audit_log *lg_audit_log_new(void);
void lg_audit_log_free(lg_audit_log *log);
/* An OK hold of seats[0..n-1] of `event` (n <= LG_SEATS_MAX), sent at
 * send_ns, its answer at ack_ns. Returns its index in the log (for
 * lg_audit_end), or -ENOMEM. */
int64_t lg_audit_hold(lg_audit_log *log, uint32_t event, const uint32_t *seats, unsigned n,
                      uint32_t ttl_ms, uint64_t send_ns, uint64_t ack_ns);
/* A CONFIRM or RELEASE (op) of the hold at index `hold` of the same log,
 * sent at send_ns, answered with `outcome` at ack_ns. */
void lg_audit_end(lg_audit_log *log, int64_t hold, unsigned op, unsigned outcome, uint64_t send_ns,
                  uint64_t ack_ns);

/* Holds are certainly live until send + ttl - LG_AUDIT_MARGIN_NS: the
 * margin absorbs the servers' millisecond clocks and expiry ticks. */
#define LG_AUDIT_MARGIN_NS (200ull * 1000000ull)

typedef struct lg_audit_result {
	uint64_t double_booked;    /* (a) seat confirmed by a second claim */
	uint64_t held_while_held;  /* (b) seat held while another hold certainly lived */
	uint64_t held_when_booked; /* (c) seat held after its booking was confirmed */
	uint64_t oversell;         /* (a) + (b) + (c) */
	uint64_t holds;            /* OK holds seen */
	uint64_t bench_booked;     /* seats of confirms answered OK */
	uint64_t bench_booked_max; /* ... plus seats of confirms without an answer */
} lg_audit_result;

/* Checks the logs of every worker together. 0 / -ENOMEM. */
int lg_audit_check(lg_audit_log *const *logs, unsigned nlogs, lg_audit_result *out);

/* ---- Workloads (workload.c) ----------------------------------------------- */

typedef struct lg_workload_def {
	const char *name;
	uint32_t events, seats, per_row, categories, ttl_ms;
	/* Permille of READ, HOLD_SEATS, HOLD_BEST, CONFIRM, RELEASE. */
	uint16_t mix[LG_OP_COUNT];
	/* flash: confirm this permille of the OK holds, abandon the rest; and
	 * end the run once holds asked for demand_x times the seats (holds
	 * that were decided: shed and unanswered ones are retried demand). */
	uint16_t confirm_permille;
	uint32_t demand_x;
	uint32_t ops; /* the ops it issues: bit (1u << LG_x) */
} lg_workload_def;

/* The profile of that name, with --quick's smaller sizes when quick;
 * NULL when unknown. */
const lg_workload_def *lg_workload_find(const char *name, int quick);

/* Run-wide state shared by the connections' generators. */
typedef struct lg_wl_shared {
	const lg_workload_def *def;
	const lg_config *cfg;
	uint64_t demand_limit;     /* seats holds may ask for; 0: unlimited */
	_Atomic uint64_t demanded; /* seats asked for by holds answered so far */
	_Atomic int exhausted;     /* the demand is used up: the run ends */
} lg_wl_shared;

/* One connection's generator. */
typedef struct lg_wl lg_wl;

/* ids_base: random per run (not from --seed), so that ids never repeat
 * across runs against one server (its idempotency window). NULL when out
 * of memory. */
lg_wl *lg_wl_new(lg_wl_shared *sh, unsigned conn, uint64_t seed, uint64_t ids_base);
void lg_wl_free(lg_wl *w);
/* Fills *r with the connection's next request (given `now_ns`) and *tag
 * with what lg_wl_done needs back (the audit index of the hold a confirm
 * or release acts on, else -1). Returns 1, or 0 when the demand is
 * exhausted (nothing filled). */
int lg_wl_next(lg_wl *w, lg_req *r, int64_t *tag, uint64_t now_ns);
/* Learns from a completed request (OK holds feed later confirms and
 * releases; a shed confirm or release is tried again later) and notes it
 * in the audit log. A round is at most cfg->depth requests from
 * lg_wl_next; lg_wl_done must see all of them, in the same order, before
 * the next round begins (asserted). */
void lg_wl_done(lg_wl *w, const lg_req *r, int64_t tag, uint64_t send_ns, uint64_t ack_ns,
                lg_audit_log *log);

/* Names of ops as the JSON keys them: "read", "hold_seats", ... */
const char *lg_op_key(unsigned op);
/* "ok", "taken", ... */
const char *lg_outcome_key(unsigned outcome);

#endif
