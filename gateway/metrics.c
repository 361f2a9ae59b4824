/*
 * metrics.c — GET /metrics (Prometheus text format 0.0.4), /healthz and
 * /readyz (see metrics.h), and the counting hooks the request paths call
 * (internal.h).
 *
 * Every figure is read where it lives, at render time: the gateway's
 * counters, each shard's stats and histograms (shard/shard.h), each
 * committer's status, the read models' sequences, the publisher's stats.
 * Nothing is copied on the hot paths beyond a relaxed addition per result
 * run and per reply, so an idle scrape costs the engine nothing, and a
 * render is a few hundred snprintf calls into the caller's buffer.
 *
 * THE SHARD BALANCE
 *
 * boxoffice_shard_balance = max_k(c_k) / avg_k(c_k), where c_k is the
 * number of commands shard k accepted into its ring over the window (the
 * last ~10 s: the difference against the newest per-shard sample at least
 * GW_BALANCE_WINDOW_NS old, or the oldest sample when the server is
 * younger or nobody sampled for a while; boxoffice_shard_balance_window_
 * seconds says which). 1.0 is an even spread; N (the shard count) is all
 * the load on one shard; with no commands in the window it is 1 (nothing
 * is unbalanced). It is what decides whether adding cores helps: a writer
 * at max/avg = 2 saturates while the others idle at half its rate.
 * Samples are taken at most once a second, by the status thread as it
 * polls and by each render, so the window holds whether or not anyone
 * scrapes.
 */
#include "gateway/metrics.h"
#include "gateway/internal.h"
#include "gateway/throttle.h"
#include "gateway/frame.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/names.h"

/* ---- Counting hooks ------------------------------------------------------ */

void gw_count_result(gw_server *gw, int op, int status)
{
	assert(status >= 0 && status < BO_STATUS_COUNT);
	if (op < 0 || op >= BO_OP_COUNT)
		op = BO_OP_NONE;
	atomic_fetch_add_explicit(&gw->results[op][status], 1, memory_order_relaxed);
}

void gw_count_results(gw_server *gw, const bo_result *res, const wire_cmd_error *errs,
                      const bo_cmd *cmds, uint32_t n)
{
	/* One addition per run of equal (op, status): a batch of 4096 holds
	 * that all succeed is one atomic, not 4096 on a line every output
	 * thread shares. */
	int op = -1, status = -1;
	uint64_t run = 0;
	for (uint32_t i = 0; i < n; i++) {
		int o, st;
		if (errs && errs[i].status != BO_OK) {
			o = cmds ? cmds[i].op : BO_OP_NONE;
			st = errs[i].status;
		} else {
			o = res[i].op;
			st = res[i].status;
		}
		if (o < 0 || o >= BO_OP_COUNT)
			o = BO_OP_NONE;
		assert(st >= 0 && st < BO_STATUS_COUNT);
		if (o == op && st == status) {
			run++;
			continue;
		}
		if (run)
			atomic_fetch_add_explicit(&gw->results[op][status], run,
			                          memory_order_relaxed);
		op = o;
		status = st;
		run = 1;
	}
	if (run)
		atomic_fetch_add_explicit(&gw->results[op][status], run, memory_order_relaxed);
}

void gw_observe_request(gw_server *gw, int64_t start_ns)
{
	int64_t d = bo_clock_ns() - start_ns;
	bo_hist_observe(&gw->request_us, d > 0 ? (uint64_t)d / 1000 : 0);
}

/* ---- The shard balance --------------------------------------------------- */

static void shard_totals(gw_server *gw, uint64_t *cmds)
{
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		cmds[k] = 0;
		if (gw->shards[k]) {
			shard_stats ss;
			shard_stats_get(gw->shards[k], &ss);
			cmds[k] = ss.submitted;
		}
	}
}

/* Appends a sample when the newest is a second old or more (lock held). */
static void balance_push(gw_balance *b, int64_t now, const uint64_t *cmds, uint32_t shards)
{
	if (b->len > 0) {
		uint32_t newest = (b->head + b->len - 1) % GW_BALANCE_SLOTS;
		if (now - b->at_ns[newest] < 1000000000LL)
			return;
	}
	uint32_t at;
	if (b->len < GW_BALANCE_SLOTS) {
		at = (b->head + b->len) % GW_BALANCE_SLOTS;
		b->len++;
	} else {
		at = b->head;
		b->head = (b->head + 1) % GW_BALANCE_SLOTS;
	}
	b->at_ns[at] = now;
	memcpy(b->cmds[at], cmds, shards * sizeof(uint64_t));
}

void gw_metrics_init(gw_server *gw)
{
	gw_balance *b = &gw->balance;
	pthread_mutex_init(&b->lock, NULL);
	uint64_t zero[GW_SHARDS_MAX] = {0};
	balance_push(b, bo_clock_ns(), zero, GW_SHARDS_MAX); /* the start: nothing submitted yet */
}

void gw_metrics_fini(gw_server *gw)
{
	pthread_mutex_destroy(&gw->balance.lock);
}

void gw_metrics_tick(gw_server *gw)
{
	uint64_t cmds[GW_SHARDS_MAX];
	shard_totals(gw, cmds);
	pthread_mutex_lock(&gw->balance.lock);
	balance_push(&gw->balance, bo_clock_ns(), cmds, gw->cfg.shards);
	pthread_mutex_unlock(&gw->balance.lock);
}

/* max/avg of the commands per shard over the window ending now; *window_s
 * the window's length. */
static double balance_get(gw_server *gw, const uint64_t *now_cmds, double *window_s)
{
	gw_balance *b = &gw->balance;
	const uint32_t shards = gw->cfg.shards;
	int64_t now = bo_clock_ns();
	uint64_t base[GW_SHARDS_MAX];
	int64_t base_ns;
	pthread_mutex_lock(&b->lock);
	/* The newest sample at least a window old, else the oldest. */
	uint32_t pick = b->head;
	for (uint32_t i = 0; i < b->len; i++) {
		uint32_t at = (b->head + i) % GW_BALANCE_SLOTS;
		if (now - b->at_ns[at] >= GW_BALANCE_WINDOW_NS)
			pick = at;
	}
	base_ns = b->at_ns[pick];
	memcpy(base, b->cmds[pick], shards * sizeof(uint64_t));
	balance_push(b, now, now_cmds, shards);
	pthread_mutex_unlock(&b->lock);
	*window_s = (double)(now - base_ns) / 1e9;
	uint64_t max = 0, sum = 0;
	for (uint32_t k = 0; k < shards; k++) {
		uint64_t d = now_cmds[k] >= base[k] ? now_cmds[k] - base[k] : 0;
		sum += d;
		if (d > max)
			max = d;
	}
	return sum == 0 ? 1.0 : (double)max * shards / (double)sum;
}

/* ---- Rendering ----------------------------------------------------------- */

typedef struct page {
	msgpack_sbuffer *out;
	int err; /* -ENOMEM once an append failed: the rest is skipped */
} page;

__attribute__((format(printf, 2, 3))) static void put(page *p, const char *fmt, ...)
{
	if (p->err)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n < sizeof(line)); /* every line is ours, and short */
	if (msgpack_sbuffer_write(p->out, line, (size_t)n) != 0)
		p->err = -ENOMEM;
}

/* Hot events listed in /metrics: the most throttled ones. */
#define GW_METRICS_HOT_EVENTS 20
#define BO_STR_(x) #x
#define BO_STR(x) BO_STR_(x)

static void put_hot_event(void *ctx, uint64_t event_id, uint64_t admitted, uint64_t refused)
{
	(void)admitted;
	put(ctx, "boxoffice_event_throttled_total{event=\"%" PRIu64 "\"} %" PRIu64 "\n", event_id,
	    refused);
}

static void family(page *p, const char *name, const char *type, const char *help)
{
	put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one unlabelled sample: # HELP, # TYPE and the value. */
static void scalar(page *p, const char *name, const char *type, const char *help, uint64_t v)
{
	family(p, name, type, help);
	put(p, "%s %" PRIu64 "\n", name, v);
}

/* "S.UUUUUU": microseconds as seconds, exactly (no floating point). */
#define US_FMT "%" PRIu64 ".%06" PRIu64
#define US_ARGS(us) (uint64_t)(us) / 1000000u, (uint64_t)(us) % 1000000u

/* One histogram series: cumulative buckets for finite bounds 0..top-1
 * (microseconds rendered as seconds when `us`), +Inf, _sum and _count.
 * `labels` is "" or `key="v",` (with the trailing comma). */
static void hist_series(page *p, const char *name, const char *labels, const bo_hist *h,
                        uint32_t top, int us)
{
	bo_hist_snap s;
	bo_hist_read(h, &s);
	assert(top <= BO_HIST_TOP);
	uint64_t cum = 0;
	for (uint32_t i = 0; i < top; i++) {
		cum += s.n[i];
		if (us)
			put(p, "%s_bucket{%sle=\"" US_FMT "\"} %" PRIu64 "\n", name, labels,
			    US_ARGS(bo_hist_bound(i)), cum);
		else
			put(p, "%s_bucket{%sle=\"%" PRIu64 "\"} %" PRIu64 "\n", name, labels,
			    bo_hist_bound(i), cum);
	}
	put(p, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, s.count);
	/* The labels without their trailing comma, in braces, or nothing. */
	size_t ll = strlen(labels);
	if (us)
		put(p, "%s_sum%s%.*s%s " US_FMT "\n", name, ll ? "{" : "", (int)(ll ? ll - 1 : 0),
		    labels, ll ? "}" : "", US_ARGS(s.sum));
	else
		put(p, "%s_sum%s%.*s%s %" PRIu64 "\n", name, ll ? "{" : "", (int)(ll ? ll - 1 : 0),
		    labels, ll ? "}" : "", s.sum);
	put(p, "%s_count%s%.*s%s %" PRIu64 "\n", name, ll ? "{" : "", (int)(ll ? ll - 1 : 0),
	    labels, ll ? "}" : "", s.count);
}

/* Finite buckets shown for latencies: every one (1 us .. 4.2 s). For batch
 * sizes: up to the largest batch a writer takes. */
#define LAT_TOP BO_HIST_TOP
#define BATCH_TOP (bo_hist_index(BO_BATCH_MAX) + 1u)

static void render_gateway(page *p, gw_server *gw)
{
	family(p, "boxoffice_results_total", "counter",
	       "Command results answered to clients (nng, HTTP and frames), by op and status (a command that did "
	       "not decode counts as op=\"none\").");
	for (int op = 0; op < BO_OP_COUNT; op++)
		for (int st = 0; st < BO_STATUS_COUNT; st++) {
			uint64_t v =
			        atomic_load_explicit(&gw->results[op][st], memory_order_relaxed);
			if (v)
				put(p,
				    "boxoffice_results_total{op=\"%s\",status=\"%s\"} %" PRIu64
				    "\n",
				    op == BO_OP_NONE ? "none" : bo_op_str(op), bo_status_str(st),
				    v);
		}
	uint64_t throttled = 0;
	for (int op = 0; op < BO_OP_COUNT; op++)
		throttled +=
		        atomic_load_explicit(&gw->results[op][BO_THROTTLED], memory_order_relaxed);
	scalar(p, "boxoffice_throttled_total", "counter",
	       "Commands answered throttled (hot-event token bucket): the sum over ops of "
	       "boxoffice_results_total{status=\"throttled\"}.",
	       (uint64_t)throttled);
	if (gw->throttle) {
		/* Per hot event: a label per event would be unbounded, so only
		 * the GW_METRICS_HOT_EVENTS most refused ones (throttle.h). */
		family(p, "boxoffice_event_throttled_total", "counter",
		       "Mutating commands of one event refused by its token bucket (from zero again when "
		       "its bucket was handed to another event), for the most "
		       "throttled events (at most " BO_STR(GW_METRICS_HOT_EVENTS) ").");
		gw_throttle_foreach(gw->throttle, GW_METRICS_HOT_EVENTS, put_hot_event, p);
	}
	gw_stats gs;
	gw_stats_get(gw, &gs);
	scalar(p, "boxoffice_requests_total", "counter",
	       "Requests answered: nng messages, HTTP requests and request frames.", (uint64_t)gs.requests);
	scalar(p, "boxoffice_commands_total", "counter", "Commands answered, over nng, HTTP and frames.",
	       (uint64_t)gs.commands);
	scalar(p, "boxoffice_invalid_messages_total", "counter",
	       "Request messages answered with a message-level invalid (undecodable).",
	       (uint64_t)gs.invalid_msgs);
	scalar(p, "boxoffice_busy_total", "counter",
	       "Commands the gateway answered busy (ring full, shard failed, draining).",
	       (uint64_t)gs.busy);
	scalar(p, "boxoffice_reads_total", "counter", "Queries answered from the read model.",
	       (uint64_t)gs.reads);
	family(p, "boxoffice_event_state_requests_total", "counter",
	       "event_state requests (a subscriber's snapshot), by result.");
	put(p, "boxoffice_event_state_requests_total{result=\"ok\"} %" PRIu64 "\n",
	    gs.event_states);
	put(p, "boxoffice_event_state_requests_total{result=\"throttled\"} %" PRIu64 "\n",
	    gs.event_states_throttled);
	family(p, "boxoffice_request_duration_seconds", "histogram",
	       "Per request (an nng message, an HTTP request or a request frame; one for a whole batch): from the gateway "
	       "taking it off the transport to its reply being handed back to the transport.");
	hist_series(p, "boxoffice_request_duration_seconds", "", &gw->request_us, LAT_TOP, 1);

	gw_frame_stats fs;
	if (gw_frame_stats_get(gw, &fs) == 0) {
		scalar(p, "boxoffice_frame_connections", "gauge",
		       "Framed TCP connections open (--frame, schemas/frame.md).", fs.connections);
		scalar(p, "boxoffice_frame_connections_total", "counter",
		       "Framed TCP connections accepted.", fs.accepted);
		scalar(p, "boxoffice_frame_connections_refused_total", "counter",
		       "Framed TCP connections closed as they came: the connection limit was reached.",
		       fs.refused);
		scalar(p, "boxoffice_frame_requests_total", "counter",
		       "Request frames taken by the framed TCP front (also in boxoffice_requests_total).",
		       fs.requests);
		scalar(p, "boxoffice_frame_bad_frames_total", "counter",
		       "Framed connections ended by a frame length of 0 or over the message bound.",
		       fs.bad_frames);
		scalar(p, "boxoffice_frame_stalled_total", "counter",
		       "Framed connections closed because the client did not read its replies.", fs.stalled);
	}

	scalar(p, "boxoffice_subscribers", "gauge", "Projection subscribers connected (--publish).",
	       (uint64_t)gs.pub.subscribers);
	scalar(p, "boxoffice_subscribers_refused_total", "counter",
	       "Subscribers disconnected as they connected: the subscriber limit was reached.",
	       (uint64_t)gs.pub.subscribers_refused);
	scalar(p, "boxoffice_projections_published_total", "counter",
	       "Projection messages handed to nng.", (uint64_t)gs.pub.published);
	scalar(p, "boxoffice_projections_dropped_total", "counter",
	       "Projection messages dropped: the publisher's queue was full (subscribers resynchronise).",
	       (uint64_t)gs.pub.dropped);
	scalar(p, "boxoffice_projection_queue_messages", "gauge",
	       "Projection messages waiting for the publisher thread (the projection lag, in messages).",
	       (uint64_t)gs.pub.queued);
	family(p, "boxoffice_projection_queue_age_seconds", "gauge",
	       "How long the oldest queued projection message has waited (0: none queued).");
	put(p, "boxoffice_projection_queue_age_seconds " US_FMT "\n",
	    US_ARGS(gs.pub.oldest_queued_us));
	static bo_hist empty; /* never observed */
	family(p, "boxoffice_projection_queue_wait_seconds", "histogram",
	       "Per projection message: from the read model emitting it to the publisher thread taking it "
	       "(empty without --publish).");
	hist_series(p, "boxoffice_projection_queue_wait_seconds", "",
	            gw->pub ? gw_pub_queue_hist(gw->pub) : &empty, LAT_TOP, 1);
}

/* One gauge or counter family over the shards: v[k]. */
static void per_shard(page *p, const char *name, const char *type, const char *help,
                      const uint64_t *v, uint32_t shards)
{
	family(p, name, type, help);
	for (uint32_t k = 0; k < shards; k++)
		put(p, "%s{shard=\"%" PRIu32 "\"} %" PRIu64 "\n", name, k, v[k]);
}

static void render_shards(page *p, gw_server *gw)
{
	const uint32_t shards = gw->cfg.shards;
	shard_stats ss[GW_SHARDS_MAX];
	uint64_t v[GW_SHARDS_MAX], cmds[GW_SHARDS_MAX];
	for (uint32_t k = 0; k < shards; k++) {
		shard_stats_get(gw->shards[k], &ss[k]);
		cmds[k] = ss[k].submitted;
	}
	per_shard(p, "boxoffice_shard_commands_total", "counter",
	          "Commands accepted into the shard's input ring (its load).", cmds, shards);
	double window;
	double bal = balance_get(gw, cmds, &window);
	family(p, "boxoffice_shard_balance", "gauge",
	       "max/avg over the shards of the commands each accepted in the last ~10 s "
	       "(boxoffice_shard_balance_window_seconds); 1 = even, N = all on one shard; 1 when idle.");
	put(p, "boxoffice_shard_balance %.4f\n", bal);
	family(p, "boxoffice_shard_balance_window_seconds", "gauge",
	       "The window boxoffice_shard_balance was taken over.");
	put(p, "boxoffice_shard_balance_window_seconds %.3f\n", window);

	for (uint32_t k = 0; k < shards; k++)
		v[k] = ss[k].batches;
	per_shard(p, "boxoffice_shard_batches_total", "counter",
	          "Batches the shard's writer applied.", v, shards);
	family(p, "boxoffice_shard_batch_size", "histogram",
	       "Commands per batch applied by the shard's writer.");
	for (uint32_t k = 0; k < shards; k++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "shard=\"%" PRIu32 "\",", k);
		hist_series(p, "boxoffice_shard_batch_size", labels,
		            shard_batch_hist(gw->shards[k]), BATCH_TOP, 0);
	}
	family(p, "boxoffice_ring_depth", "gauge",
	       "Slots in use: input = commands submitted, not yet applied; output = results waiting for the "
	       "disk or for the gateway.");
	for (uint32_t k = 0; k < shards; k++) {
		put(p, "boxoffice_ring_depth{shard=\"%" PRIu32 "\",ring=\"input\"} %" PRIu32 "\n",
		    k, ss[k].in_depth);
		put(p, "boxoffice_ring_depth{shard=\"%" PRIu32 "\",ring=\"output\"} %" PRIu32 "\n",
		    k, ss[k].out_depth);
	}
	for (uint32_t k = 0; k < shards; k++)
		v[k] = shard_failed(gw->shards[k]) == NULL && shard_running(gw->shards[k]);
	per_shard(p, "boxoffice_shard_up", "gauge",
	          "1 while the shard's writer runs and its journal has not failed (see /healthz).",
	          v, shards);
	for (uint32_t k = 0; k < shards; k++)
		v[k] = ss[k].durable_seq;
	per_shard(p, "boxoffice_journal_durable_seq", "gauge",
	          "Highest journal sequence on disk (every record up to it is synced).", v, shards);
	family(p, "boxoffice_journal_sync_duration_seconds", "histogram",
	       "Per journal write unit (group commit: one or more batches): from submitting its write to "
	       "the writer seeing it durable (write + fdatasync).");
	for (uint32_t k = 0; k < shards; k++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "shard=\"%" PRIu32 "\",", k);
		hist_series(p, "boxoffice_journal_sync_duration_seconds", labels,
		            shard_sync_hist(gw->shards[k]), LAT_TOP, 1);
	}
	for (uint32_t k = 0; k < shards; k++)
		v[k] = ss[k].snapshots;
	per_shard(p, "boxoffice_snapshots_total", "counter", "Snapshots the shard completed.", v,
	          shards);

	/* The read model: what the output thread applied, against the disk. */
	uint64_t vs[GW_SHARDS_MAX];
	for (uint32_t k = 0; k < shards; k++) {
		vs[k] = atomic_load_explicit(&gw->view_seq[k], memory_order_acquire);
		v[k] = ss[k].durable_seq > vs[k] ? ss[k].durable_seq - vs[k] : 0;
	}
	per_shard(p, "boxoffice_read_model_seq", "gauge",
	          "Last journal sequence applied to the shard's read model.", vs, shards);
	per_shard(
	        p, "boxoffice_read_model_lag_records", "gauge",
	        "Journal records durable but not yet in the read model (nor answered, nor projected).",
	        v, shards);
}

static const char *const committer_states[] = {"off", "starting", "running", "retrying", "stopped"};

static void render_committers(page *p, gw_server *gw)
{
	const uint32_t shards = gw->cfg.shards;
	uint8_t state[GW_SHARDS_MAX];
	committer_status cs[GW_SHARDS_MAX];
	memset(cs, 0, shards * sizeof(cs[0]));
	pthread_mutex_lock(&gw->status_lock); /* the committer pointers */
	for (uint32_t k = 0; k < shards; k++) {
		if (!gw->cfg.committer.dsn ||
		    (!gw->committers[k] && gw_committer_absent(gw, k) == GW_COMMITTER_OFF_HERE)) {
			state[k] = 0; /* no database, or (cluster) not the shard's primary here */
		} else if (!gw->committers[k]) {
			state[k] = 4;
		} else {
			committer_status_get(gw->committers[k], &cs[k]);
			state[k] = cs[k].state == COMMITTER_STARTING   ? 1
			           : cs[k].state == COMMITTER_RUNNING  ? 2
			           : cs[k].state == COMMITTER_RETRYING ? 3
			                                               : 4;
		}
	}
	pthread_mutex_unlock(&gw->status_lock);
	family(p, "boxoffice_committer_state", "gauge",
	       "The shard's PostgreSQL committer, one-hot: off (no database, or in a cluster not the shard's "
	       "primary here), starting, running, retrying, stopped.");
	for (uint32_t k = 0; k < shards; k++)
		for (uint8_t s = 0; s < 5; s++)
			put(p, "boxoffice_committer_state{shard=\"%" PRIu32 "\",state=\"%s\"} %d\n",
			    k, committer_states[s], state[k] == s);
	uint64_t v[GW_SHARDS_MAX];
	for (uint32_t k = 0; k < shards; k++)
		v[k] = cs[k].lag_records;
	per_shard(p, "boxoffice_committer_lag_records", "gauge",
	          "Durable journal records not yet applied to PostgreSQL (0 without a database).",
	          v, shards);
	family(p, "boxoffice_committer_lag_seconds", "gauge",
	       "Age of the oldest durable record not yet applied to PostgreSQL (0: none).");
	for (uint32_t k = 0; k < shards; k++)
		put(p,
		    "boxoffice_committer_lag_seconds{shard=\"%" PRIu32 "\"} %" PRIu64 ".%03" PRIu64
		    "\n",
		    k, cs[k].lag_ms / 1000, cs[k].lag_ms % 1000);
	for (uint32_t k = 0; k < shards; k++)
		v[k] = cs[k].applied_seq;
	per_shard(p, "boxoffice_committer_applied_seq", "gauge",
	          "Last journal sequence applied to PostgreSQL.", v, shards);
	for (uint32_t k = 0; k < shards; k++)
		v[k] = cs[k].retries;
	per_shard(p, "boxoffice_committer_retries_total", "counter",
	          "Times the committer retried after a database fault.", v, shards);
}

int gw_metrics_render(gw_server *gw, msgpack_sbuffer *out)
{
	page p = {.out = out, .err = 0};
	size_t start = out->size;
	render_gateway(&p, gw);
	render_shards(&p, gw);
	render_committers(&p, gw);
	char reason[8];
	family(&p, "boxoffice_healthy", "gauge",
	       "1 when /healthz answers 200 (every shard writes its journal).");
	put(&p, "boxoffice_healthy %d\n", gw_health(gw, reason, sizeof(reason)) == 0);
	family(&p, "boxoffice_ready", "gauge", "1 when /readyz answers 200.");
	put(&p, "boxoffice_ready %d\n", gw_ready(gw, reason, sizeof(reason)) == 0);
	if (p.err)
		out->size = start; /* nothing half-written */
	return p.err;
}

/* ---- Probes -------------------------------------------------------------- */

int gw_health(gw_server *gw, char *reason, size_t len)
{
	assert(len > 0);
	reason[0] = '\0';
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		const char *f = shard_failed(gw->shards[k]);
		if (f) {
			snprintf(reason, len, "shard %" PRIu32 ": journal failed: %s", k, f);
			return -1;
		}
		if (!shard_running(gw->shards[k])) {
			snprintf(reason, len, "shard %" PRIu32 ": writer stopped", k);
			return -1;
		}
	}
	return 0;
}

int gw_ready(gw_server *gw, char *reason, size_t len)
{
	assert(len > 0);
	reason[0] = '\0';
	if (!atomic_load_explicit(&gw->ready, memory_order_acquire)) {
		snprintf(reason, len, "starting: recovery or listeners not done");
		return -1;
	}
	if (atomic_load_explicit(&gw->draining, memory_order_relaxed)) {
		snprintf(reason, len, "draining: the server is stopping");
		return -1;
	}
	/* A shard that cannot write answers busy for every event it owns:
	 * take the server out of rotation too (and /healthz says why). */
	return gw_health(gw, reason, len);
}
