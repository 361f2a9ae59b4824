/*
 * bench_reads — the read side (issue 9): availability reads answered from
 * the read model, over the wire beside writes and in process alone, and
 * how late the projections and the read model run behind the journal.
 *
 *   scripts/bench reads [--quick] [--only in-process|wire] [--server PATH]
 *                       [--read-threads N] [--sync data|none]
 *
 * The server runs as a child process with its journal on the real disk
 * (fdatasync group commit), 2 shards, publishing projections on an ipc://
 * PUB socket in the bench's own directory (--publish). Its 8 events have
 * 10,000 seats (100 rows, 4 categories) and 2 pools of 2,000 tickets.
 * WRITES are e2e's mix plus pool holds: holds of 1-4 random seats (40%),
 * pool holds of 1-4 tickets (10%), releases of earlier holds (50%). READS
 * are half query_avail (counts per state, category and pool) and half
 * query_seats of 1-4 random seats. Both go through the client library
 * (messages of up to 4096 commands, 8 in flight, 200 us linger), reads on
 * a client of their own: a message's reply waits for its slowest command,
 * and a write's is a journal sync.
 *
 * Phases, in order, on one server (after a warm-up of saturated writes,
 * not counted):
 *   write_commands_per_sec_without_reads  writes alone, saturated (two
 *                     submitting threads, as e2e's commands_per_sec); run
 *                     before AND after the next phase, the mean of both
 *                     (write_runs_without_reads lists them)
 *   write_commands_per_sec_with_reads     the same with a saturated read
 *                     load beside it (--read-threads submitting threads);
 *                     write_with_without_ratio = with / without, so 0.90
 *                     means reads took 10% (reads_per_sec_beside_saturated_
 *                     writes: what those reads got)
 *   reads_per_sec     saturated reads while writes are offered at 100,000/s
 *                     open loop (reads_writes_achieved_per_sec: what the
 *                     writes got)
 *   read_latency_ms_p50/p99/p999  reads offered at 500,000/s and writes at
 *                     50,000/s (the platform's 90/10 mix), both open loop:
 *                     read i is due at t0 + i * 2 us and its latency runs
 *                     from when it was due, so a stall of the generator or
 *                     of the server is not hidden (coordinated omission).
 *                     mix_*_achieved_per_sec: the rates the generators
 *                     reached; below the offered rate the latencies are
 *                     mostly the backlog's age
 *   fit_*             the same 10:1 mix at 100,000 reads/s + 10,000
 *                     writes/s, a load this 2-core machine carries
 *
 * The subscriber (nng SUB on the --publish socket, every event, a thread
 * of its own) records during each mix; the unsuffixed lag keys are from
 * the fit mix, the *_at_500k ones from the 500k mix. Per message:
 *   projection_lag_ms_p50/p95/p99  receipt time (CLOCK_REALTIME) minus the
 *                     message's "at_ms", its batch's stamp. The shard takes
 *                     the stamp when it begins the batch, BEFORE the
 *                     batch's fdatasync, truncated to the millisecond, so
 *                     for the changes of that batch this is an UPPER BOUND
 *                     of durable -> subscriber: it includes the group
 *                     commit and up to 1 ms of truncation. (When one output
 *                     poll carries several batches, at_ms is the last
 *                     one's; the earlier batches' changes are older.)
 *   projection_publish_lag_ms_p50/p95/p99  receipt minus "pub_us", the
 *                     server's publish time, stamped after the batch is
 *                     durable and applied to the read model: the publisher
 *                     queue and nng's delivery only, a LOWER BOUND of
 *                     durable -> subscriber
 *   read_model_lag_ms_p50/p95/p99  pub_us minus at_ms. pub_us is taken
 *                     after view_batch_end has made the batch visible to
 *                     readers, so this is an UPPER BOUND of durable ->
 *                     visible in the read model (group commit and ms
 *                     truncation included). A poller over the wire could
 *                     not do better: it sees when a change became visible
 *                     but not when it became durable, and a writer's own
 *                     reply leaves only after the read model has the write
 *   projection_gaps   messages the subscriber missed (a prev that is not
 *                     the last seq it saw of the event): nng's per-
 *                     subscriber queue or the publisher's queue dropped them
 *
 * In process, before the server starts:
 *   reads_in_process_per_sec  the read model alone (view/view.h, no
 *                     server): 2 reader threads calling
 *                     view_query(QUERY_AVAIL) on the 8 events while one
 *                     writer thread feeds 100,000 commands/s (results of
 *                     its own engine) through view_batch_begin/add/end;
 *                     the two readers' total
 *   reads_in_process_seats_per_sec  the same with query_seats of 1-4 seats
 *   in_process_commands/changes_per_sec  what the writer achieved
 *   reads_in_process_without_writer_per_sec  query_avail with no writer:
 *                     the readers' ceiling (the writer's stores to the
 *                     counters the readers copy cost them cache misses)
 *
 * cores_server_bench: per phase, the cores (CPU seconds per second, from
 * /proc) the server and this process used: where the 2 cores went.
 * "targets" says, for each of issue 9's targets, whether it was met.
 * Progress on stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "bench_util.h"
#include "client/boxoffice.h"
#include "engine/engine.h"
#include "protocol/projection.h"
#include "view/view.h"

static const char *prog = "bench_reads";

enum {
	EVENTS = 8,
	ROWS = 100,
	PER_ROW = 100,
	SEATS = ROWS * PER_ROW,
	CATS = 4,
	POOLS = 2,
	POOL_CAP = 2000
};
enum {
	FIRST_EVENT = 100
};
enum {
	KIND_WRITE = 0,
	KIND_READ = 1
};

/* ---- Workload -------------------------------------------------------------- */

/* Holds that may be released later. One list for the wire (filled by
 * callbacks, taken by submitters), one for the in-process writer. */
#define HELD_MAX (1u << 16)
typedef struct held_list {
	pthread_mutex_t lock;
	uint64_t id[HELD_MAX], ev[HELD_MAX];
	uint64_t client[HELD_MAX]; /* the hold's client: only it may release it */
	uint32_t n;
} held_list;

static held_list wire_held = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Holds alive at most (about): past it every write is a release, so the
 * events stay ~15% held and a long run's later phases meet the same state
 * as its first ones (a saturated submitter runs ahead of its replies, so
 * without a cap holds outnumber releases until every seat is taken). */
#define HELD_TARGET 4096u

static void held_note(held_list *h, const bo_result *r)
{
	if ((r->op != BO_OP_HOLD_SEATS && r->op != BO_OP_HOLD_POOL) || r->status != BO_OK)
		return;
	pthread_mutex_lock(&h->lock);
	if (h->n < HELD_MAX) {
		h->id[h->n] = r->claim_id;
		h->client[h->n] = r->client_id;
		h->ev[h->n++] = r->event_id;
	}
	pthread_mutex_unlock(&h->lock);
}

/* A release of a random earlier hold (0 when there is none), else a hold. */
static void make_write(held_list *h, bo_cmd *c, uint64_t *rng)
{
	memset(c, 0, sizeof(*c));
	c->client_id = 1000 + (bench_rnd(rng) & 0xfffff);
	uint64_t pick = bench_rnd(rng) % 10;
	if (pick >= 5 || h->n >= HELD_TARGET) { /* racy peek: the lock decides */
		pthread_mutex_lock(&h->lock);
		if (h->n > 0) {
			uint32_t k = (uint32_t)(bench_rnd(rng) % h->n);
			c->op = BO_OP_RELEASE;
			c->event_id = h->ev[k];
			c->claim_id = h->id[k];
			c->client_id = h->client[k];
			h->id[k] = h->id[--h->n];
			h->client[k] = h->client[h->n];
			h->ev[k] = h->ev[h->n];
		}
		pthread_mutex_unlock(&h->lock);
		if (c->op)
			return;
	}
	c->event_id = FIRST_EVENT + bench_rnd(rng) % EVENTS;
	c->ttl_ms = 600000;
	if (pick == 4) {
		c->op = BO_OP_HOLD_POOL;
		c->pool = (uint8_t)(bench_rnd(rng) % POOLS);
		c->quantity = (uint16_t)(1 + bench_rnd(rng) % 4);
		return;
	}
	c->op = BO_OP_HOLD_SEATS;
	c->seat_count = (uint8_t)(1 + bench_rnd(rng) % 4);
	uint32_t base = (uint32_t)(bench_rnd(rng) % (SEATS - 4));
	for (uint32_t k = 0; k < c->seat_count; k++)
		c->seats[k] = base + k;
}

/* Half query_avail, half query_seats of 1-4 random seats. */
static void make_read(bo_cmd *c, uint64_t *rng)
{
	uint64_t r = bench_rnd(rng);
	uint64_t ev = FIRST_EVENT + r % EVENTS;
	if ((r >> 8) & 1) {
		boc_query_avail(c, ev);
		return;
	}
	uint32_t seats[4], n = (uint32_t)(1 + (r >> 9) % 4);
	for (uint32_t k = 0; k < n; k++)
		seats[k] = (uint32_t)(bench_rnd(rng) % SEATS);
	boc_query_seats(c, ev, seats, n);
}

/* The events' map: bench_map's rows and categories, plus POOLS pools. */
static bo_seatmap *event_map(void)
{
	bo_seatmap *m = bo_seatmap_new(ROWS, SEATS, POOLS);
	if (!m)
		bench_die(prog, "bo_seatmap_new", -ENOMEM);
	m->category_count = CATS;
	for (uint32_t r = 0; r < ROWS; r++) {
		m->rows[r].section = (uint16_t)(r / 25);
		m->rows[r].seats = PER_ROW;
		memset(m->categories + (size_t)r * PER_ROW, (int)(r * CATS / ROWS), PER_ROW);
	}
	for (uint32_t p = 0; p < POOLS; p++)
		m->pool_capacity[p] = POOL_CAP;
	return m;
}

/* ---- Answers ------------------------------------------------------------------ */

static atomic_uint_least64_t done[2], no_answer, reads_failed, writes_ok;

static void on_answer(int kind, int err, const bo_result *res)
{
	if (err != 0)
		atomic_fetch_add_explicit(&no_answer, 1, memory_order_relaxed);
	else if (kind == KIND_WRITE) {
		held_note(&wire_held, res);
		atomic_fetch_add_explicit(&writes_ok, res->status == BO_OK, memory_order_relaxed);
	} else if (res->status != BO_OK)
		atomic_fetch_add_explicit(&reads_failed, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&done[kind], 1, memory_order_relaxed);
}

static void on_write(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)ctx;
	(void)text;
	on_answer(KIND_WRITE, err, res);
}

static void on_read(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)ctx;
	(void)text;
	on_answer(KIND_READ, err, res);
}

/* ---- The server ------------------------------------------------------------ */

static pid_t server_pid;
static char work_dir[256];
static const char *sync_mode = "data";

static void stop_server(void) { bench_server_stop(prog, &server_pid, work_dir); }

/* Starts the server with its journal under a new directory of /var/tmp (the
 * real disk, not a tmpfs) and its PUB socket beside it; pub_url gets the
 * subscribers' URL. */
static void start_server(const char *path, const char *url, char *pub_url, size_t pub_len)
{
	snprintf(work_dir, sizeof(work_dir), "/var/tmp/boxoffice-bench-reads-XXXXXX");
	if (!mkdtemp(work_dir))
		bench_die(prog, "mkdtemp", -errno);
	char data[300];
	snprintf(data, sizeof(data), "%s/data", work_dir);
	if (mkdir(data, 0755) != 0)
		bench_die(prog, "mkdir", -errno);
	snprintf(pub_url, pub_len, "ipc://%s/pub.ipc", work_dir);
	server_pid = fork();
	if (server_pid < 0)
		bench_die(prog, "fork", -errno);
	if (server_pid == 0) {
		/* --throttle-rate 0: the saturated writes take ~75,000 commands/s
		 * per event, over the default hot-event bucket; these figures
		 * are the read model's and the engine's, not the throttle's. */
		execl(path, path, "--data-dir", data, "--listen", url, "--publish", pub_url,
		      "--shards", "2", "--sync", sync_mode, "--no-pg", "--log-level", "warn",
		      "--throttle-rate", "0", (char *)NULL);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, path, strerror(errno));
		_exit(127);
	}
}

/* Dies when the server has exited (crashed): its figures would be the
 * client's timeouts. */
static void check_server(void)
{
	int status;
	if (server_pid > 0 && waitpid(server_pid, &status, WNOHANG) == server_pid) {
		server_pid = 0;
		fprintf(stderr, "%s: the server exited (%s %d) during the run\n", prog,
		        WIFSIGNALED(status) ? "signal" : "status",
		        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		exit(1);
	}
}

static void wait_done(int kind, uint64_t target)
{
	int64_t end = bo_clock_ns() + 60ll * 1000000000;
	while (atomic_load(&done[kind]) < target && bo_clock_ns() < end) {
		check_server();
		usleep(1000);
	}
	if (atomic_load(&done[kind]) < target)
		bench_die(prog, "waiting for answers", -ETIMEDOUT);
	check_server();
}

static boc_client *open_client(const char *url)
{
	boc_options o;
	boc_options_default(&o);
	o.batch_max = 4096;
	o.inflight_max = 8;
	o.timeout_ms = 30000;
	boc_client *c;
	int rc = boc_open(url, &o, &c);
	if (rc < 0)
		bench_die(prog, "boc_open", rc);
	return c;
}

/* Waits (up to 10 s) until the server answers, then creates the events. */
static void create_events(const char *url)
{
	boc_client *c = open_client(url);
	bo_cmd cmd;
	bo_result res;
	char err[256];
	int up = 0;
	for (int i = 0; i < 100 && !up; i++) {
		boc_query_avail(&cmd, 1);
		up = boc_call(c, &cmd, &res, err, sizeof(err)) == 0;
		if (!up)
			usleep(100000);
	}
	if (!up)
		bench_die(prog, "waiting for the server", -ETIMEDOUT);
	bo_seatmap *m = event_map();
	for (uint32_t e = 0; e < EVENTS; e++) {
		boc_create_event(&cmd, 1, 0, FIRST_EVENT + e, m);
		int rc = boc_call(c, &cmd, &res, err, sizeof(err));
		if (rc < 0 || res.status != BO_OK)
			bench_die(prog, "create_event", rc < 0 ? rc : -EPROTO);
	}
	bo_seatmap_free(m);
	boc_close(c);
}

/* ---- Load generators ---------------------------------------------------------- */

static void make_cmd(int kind, bo_cmd *c, uint64_t *rng)
{
	if (kind == KIND_WRITE)
		make_write(&wire_held, c, rng);
	else
		make_read(c, rng);
}

/* Saturating: submits until until_ns, as fast as the client's queue takes. */
typedef struct submitter {
	boc_client *c;
	int kind;
	int64_t until_ns;
	uint64_t rng;
	uint64_t submitted;
} submitter;

static void *submit_main(void *arg)
{
	submitter *s = arg;
	boc_callback cb = s->kind == KIND_WRITE ? on_write : on_read;
	bo_cmd cmd;
	while (bo_clock_ns() < s->until_ns) {
		for (int i = 0; i < 256; i++) {
			make_cmd(s->kind, &cmd, &s->rng);
			while (boc_submit(s->c, &cmd, cb, NULL) == -EBUSY)
				sched_yield(); /* the queue is full: the server sets the pace */
			s->submitted++;
		}
	}
	return NULL;
}

/* Open loop: command i is due at t0 + i * step_ns; until_ns ends it. With
 * lat, each answer's latency from its due time goes to lat[i]. */
typedef struct pacer {
	boc_client *c;
	int kind;
	int64_t step_ns, t0, until_ns;
	uint64_t rng;
	int64_t *lat; /* [cap] or NULL */
	uint64_t cap;
	uint64_t submitted;
	int64_t last_submit_ns;
} pacer;

static pacer *timed[2]; /* the pacer whose answers on_timed_* time */

static void on_timed(int kind, void *ctx, int err, const bo_result *res)
{
	pacer *p = timed[kind];
	uint64_t i = (uint64_t)(uintptr_t)ctx;
	if (p->lat && i < p->cap)
		p->lat[i] = bo_clock_ns() - (p->t0 + (int64_t)i * p->step_ns);
	on_answer(kind, err, res);
}

static void on_timed_write(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)text;
	on_timed(KIND_WRITE, ctx, err, res);
}

static void on_timed_read(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)text;
	on_timed(KIND_READ, ctx, err, res);
}

static void *pace_main(void *arg)
{
	pacer *p = arg;
	boc_callback cb = p->kind == KIND_WRITE ? on_timed_write : on_timed_read;
	bo_cmd cmd;
	for (uint64_t i = 0;; i++) {
		int64_t due = p->t0 + (int64_t)i * p->step_ns;
		if (due >= p->until_ns)
			break;
		/* Sleep, not spin, until the command is due: on two cores a
		 * spinning generator would steal the server's CPU. Commands that
		 * came due during a sleep go out at once (their latency still
		 * counts from when they were due). */
		int64_t wait = due - bo_clock_ns();
		if (wait > 0) {
			struct timespec ts = {0, wait};
			nanosleep(&ts, NULL);
		}
		make_cmd(p->kind, &cmd, &p->rng);
		while (boc_submit(p->c, &cmd, cb, (void *)(uintptr_t)i) == -EBUSY)
			sched_yield();
		p->submitted++;
	}
	p->last_submit_ns = bo_clock_ns();
	return NULL;
}

static void pacer_init(pacer *p, boc_client *c, int kind, double rate, int64_t t0, int64_t ns,
                       int keep_lat)
{
	*p = (pacer){.c = c,
	             .kind = kind,
	             .step_ns = (int64_t)(1e9 / rate),
	             .t0 = t0,
	             .until_ns = t0 + ns,
	             .rng = 0x51ed27 + (uint64_t)kind};
	if (keep_lat) {
		p->cap = (uint64_t)(ns / p->step_ns) + 1;
		p->lat = calloc(p->cap, sizeof(int64_t));
		if (!p->lat)
			bench_die(prog, "calloc", -ENOMEM);
	}
	timed[kind] = p;
}

/* Commands per second the pacer handed to the library: its offered rate
 * when it kept up, less when the generator or a full queue held it back. */
static double pacer_achieved(const pacer *p)
{
	int64_t span = p->last_submit_ns - p->t0;
	int64_t planned = p->until_ns - p->t0;
	return (double)p->submitted / ((double)(span > planned ? span : planned) / 1e9);
}

/* ---- The subscriber ------------------------------------------------------------ */

#define LAG_CAP (1u << 20)

/* One nng SUB socket on every event, its own thread. Gaps (a message
 * whose prev is not the last seq seen of its event) are counted all the
 * time; lag samples only while recording, under the lock. */
static struct {
	nng_socket sock;
	pthread_t th;
	atomic_int stop;
	atomic_uint_least64_t received;
	uint64_t gaps, bad;
	uint64_t last_seq[EVENTS];
	bo_change *changes; /* decode buffer */
	pthread_mutex_t lock;
	int recording;
	uint64_t n;
	int64_t *from_stamp, *from_pub, *model; /* [LAG_CAP], microseconds */
} sub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sub_take(nng_msg *m)
{
	int64_t now = wall_us();
	wire_projection h;
	wire_msg wm;
	if (wire_decode_projection(nng_msg_body(m), nng_msg_len(m), &h, sub.changes,
	                           WIRE_PROJECTION_CHANGES_MAX, &wm) != 0) {
		sub.bad++;
		return;
	}
	atomic_fetch_add_explicit(&sub.received, 1, memory_order_relaxed);
	if (h.event_id >= FIRST_EVENT && h.event_id < FIRST_EVENT + EVENTS) {
		uint64_t *last = &sub.last_seq[h.event_id - FIRST_EVENT];
		if (*last != 0 && h.prev_seq != *last)
			sub.gaps++; /* a dropped message (the publisher's queue or nng's) */
		*last = h.seq;
	}
	pthread_mutex_lock(&sub.lock);
	if (sub.recording && sub.n < LAG_CAP) {
		sub.from_stamp[sub.n] = now - h.at_ms * 1000;
		sub.from_pub[sub.n] = now - h.pub_us;
		sub.model[sub.n] = h.pub_us - h.at_ms * 1000;
		sub.n++;
	}
	pthread_mutex_unlock(&sub.lock);
}

static void *sub_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&sub.stop)) {
		nng_msg *m;
		int rv = nng_recvmsg(sub.sock, &m, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break; /* closed */
		sub_take(m);
		nng_msg_free(m);
	}
	return NULL;
}

static void sub_start(const char *pub_url)
{
	sub.from_stamp = malloc(LAG_CAP * sizeof(int64_t));
	sub.from_pub = malloc(LAG_CAP * sizeof(int64_t));
	sub.model = malloc(LAG_CAP * sizeof(int64_t));
	sub.changes = malloc(WIRE_PROJECTION_CHANGES_MAX * sizeof(bo_change));
	if (!sub.from_stamp || !sub.from_pub || !sub.model || !sub.changes)
		bench_die(prog, "malloc", -ENOMEM);
	if (nng_sub0_open(&sub.sock) != 0 ||
	    nng_socket_set(sub.sock, NNG_OPT_SUB_SUBSCRIBE, "", 0) != 0)
		bench_die(prog, "nng_sub0_open", -EIO);
	nng_socket_set_int(sub.sock, NNG_OPT_RECVBUF,
	                   8192); /* fewer drops if this thread is late */
	nng_socket_set_ms(sub.sock, NNG_OPT_RECVTIMEO, 100);
	if (nng_dial(sub.sock, pub_url, NULL, NNG_FLAG_NONBLOCK) != 0)
		bench_die(prog, "nng_dial (subscriber)", -EIO);
	pthread_create(&sub.th, NULL, sub_main, NULL);
}

static void sub_stop(void)
{
	atomic_store(&sub.stop, 1);
	pthread_join(sub.th, NULL);
	nng_close(sub.sock);
	free(sub.changes);
	free(sub.from_stamp);
	free(sub.from_pub);
	free(sub.model);
}

/* Percentiles (ms) of microsecond samples, sorted in place. */
typedef struct lag_pcts {
	double p50, p95, p99;
} lag_pcts;

static lag_pcts lag_percentiles(int64_t *us, uint64_t n)
{
	qsort(us, n, sizeof(int64_t), bench_cmp_i64);
	return (lag_pcts){(double)bench_quantile(us, n, 0.50) / 1e3,
	                  (double)bench_quantile(us, n, 0.95) / 1e3,
	                  (double)bench_quantile(us, n, 0.99) / 1e3};
}

/* What the subscriber saw over one recording window. */
typedef struct lag_figures {
	lag_pcts stamp, pub, model;
	uint64_t messages, gaps;
} lag_figures;

static void sub_record(void)
{
	pthread_mutex_lock(&sub.lock);
	sub.recording = 1;
	sub.n = 0;
	pthread_mutex_unlock(&sub.lock);
}

static void sub_figures(uint64_t gaps_before, lag_figures *f)
{
	pthread_mutex_lock(&sub.lock);
	sub.recording = 0;
	f->messages = sub.n;
	f->stamp = lag_percentiles(sub.from_stamp, sub.n);
	f->pub = lag_percentiles(sub.from_pub, sub.n);
	f->model = lag_percentiles(sub.model, sub.n);
	pthread_mutex_unlock(&sub.lock);
	f->gaps = sub.gaps - gaps_before; /* racy read of a counter: a gauge */
}

/* ---- Where the two cores go ---------------------------------------------------- */

/* CPU seconds (user + system) of a process so far, from /proc; 0 when it
 * cannot be read (the figure is a diagnostic, not a result). */
static double cpu_secs(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is
	 * field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Cores the server and this process used over one phase. */
typedef struct cores {
	double server, bench;
} cores;

typedef struct cpu_mark {
	double server, bench;
	int64_t ns;
} cpu_mark;

static cpu_mark cpu_now(void)
{
	return (cpu_mark){cpu_secs(server_pid), cpu_secs(getpid()), bo_clock_ns()};
}

static cores cpu_since(cpu_mark m)
{
	cpu_mark n = cpu_now();
	double secs = (double)(n.ns - m.ns) / 1e9;
	return (cores){(n.server - m.server) / secs, (n.bench - m.bench) / secs};
}

/* ---- Wire phases ---------------------------------------------------------------- */

static int read_threads = 1;

/* Saturated writes (2 threads) and, with reads, `read_threads` saturated
 * readers on their own client, for ns. Returns writes/s; *reads_per_sec
 * gets the readers' rate (0 without). */
static double saturated_writes(const char *url, int64_t ns, int with_reads, double *reads_per_sec)
{
	boc_client *wc = open_client(url), *rc = with_reads ? open_client(url) : NULL;
	submitter subs[2 + 4];
	pthread_t th[2 + 4];
	int n = 2 + (with_reads ? read_threads : 0);
	uint64_t before[2] = {atomic_load(&done[0]), atomic_load(&done[1])},
	         ok0 = atomic_load(&writes_ok);
	int64_t t0 = bo_clock_ns();
	for (int i = 0; i < n; i++) {
		int kind = i < 2 ? KIND_WRITE : KIND_READ;
		subs[i] = (submitter){.c = kind == KIND_WRITE ? wc : rc,
		                      .kind = kind,
		                      .until_ns = t0 + ns,
		                      .rng = 0x9e3779b97f4a7c15ull + (uint64_t)i};
		pthread_create(&th[i], NULL, submit_main, &subs[i]);
	}
	uint64_t submitted[2] = {0, 0};
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		submitted[subs[i].kind] += subs[i].submitted;
	}
	/* Each side's rate runs to its own last answer. */
	wait_done(KIND_READ, before[1] + submitted[1]);
	double read_secs = (double)(bo_clock_ns() - t0) / 1e9;
	wait_done(KIND_WRITE, before[0] + submitted[0]);
	double write_secs = (double)(bo_clock_ns() - t0) / 1e9;
	*reads_per_sec = with_reads ? (double)submitted[1] / read_secs : 0;
	boc_close(wc);
	boc_close(rc);
	fprintf(stderr, "  (%.0f%% of the writes succeeded; a failed hold found a seat taken)\n",
	        submitted[0]
	                ? 100.0 * (double)(atomic_load(&writes_ok) - ok0) / (double)submitted[0]
	                : 0.0);
	return (double)submitted[0] / write_secs;
}

/* Saturated reads for ns while writes are offered at 100,000/s, open loop.
 * Returns reads/s; *writes_achieved gets the writes' rate. */
static double reads_beside_writes(const char *url, int64_t ns, double *writes_achieved)
{
	boc_client *wc = open_client(url), *rc = open_client(url);
	uint64_t before = atomic_load(&done[KIND_READ]), wbefore = atomic_load(&done[KIND_WRITE]);
	int64_t t0 = bo_clock_ns() + 1000000;
	pacer wp;
	pacer_init(&wp, wc, KIND_WRITE, 100000, t0, ns, 0);
	pthread_t wth, th[4];
	submitter subs[4];
	pthread_create(&wth, NULL, pace_main, &wp);
	for (int i = 0; i < read_threads; i++) {
		subs[i] = (submitter){
		        .c = rc, .kind = KIND_READ, .until_ns = t0 + ns, .rng = 77 + (uint64_t)i};
		pthread_create(&th[i], NULL, submit_main, &subs[i]);
	}
	uint64_t submitted = 0;
	for (int i = 0; i < read_threads; i++) {
		pthread_join(th[i], NULL);
		submitted += subs[i].submitted;
	}
	wait_done(KIND_READ, before + submitted);
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	pthread_join(wth, NULL);
	wait_done(KIND_WRITE, wbefore + wp.submitted);
	*writes_achieved = pacer_achieved(&wp);
	boc_close(wc);
	boc_close(rc);
	return (double)submitted / secs;
}

typedef struct mix_figures {
	double read_rate, write_rate; /* offered */
	double reads_achieved, writes_achieved;
	double read_p50, read_p99, read_p999, write_p99;
	lag_figures lag;
	cores cpu;
} mix_figures;

/* Reads offered at read_rate and writes at write_rate, both open loop,
 * for ns; the subscriber records the projections meanwhile. */
static void mix(const char *url, int64_t ns, double read_rate, double write_rate, mix_figures *f)
{
	boc_client *wc = open_client(url), *rc = open_client(url);
	uint64_t rbefore = atomic_load(&done[KIND_READ]), wbefore = atomic_load(&done[KIND_WRITE]);
	uint64_t gaps_before = sub.gaps;
	int64_t t0 = bo_clock_ns() + 1000000;
	pacer rp, wp;
	pacer_init(&rp, rc, KIND_READ, read_rate, t0, ns, 1);
	pacer_init(&wp, wc, KIND_WRITE, write_rate, t0, ns, 1);
	pthread_t rth, wth;
	cpu_mark mark = cpu_now();
	sub_record();
	pthread_create(&rth, NULL, pace_main, &rp);
	pthread_create(&wth, NULL, pace_main, &wp);
	pthread_join(rth, NULL);
	pthread_join(wth, NULL);
	wait_done(KIND_READ, rbefore + rp.submitted);
	wait_done(KIND_WRITE, wbefore + wp.submitted);
	f->cpu = cpu_since(mark);
	usleep(100000); /* the last batches' projections */
	sub_figures(gaps_before, &f->lag);
	f->read_rate = read_rate;
	f->write_rate = write_rate;
	f->reads_achieved = pacer_achieved(&rp);
	f->writes_achieved = pacer_achieved(&wp);
	bench_pcts r = bench_percentiles(rp.lat, rp.submitted),
	           w = bench_percentiles(wp.lat, wp.submitted);
	f->read_p50 = (double)r.p50 / 1e6;
	f->read_p99 = (double)r.p99 / 1e6;
	f->read_p999 = (double)r.p999 / 1e6;
	f->write_p99 = (double)w.p99 / 1e6;
	free(rp.lat);
	free(wp.lat);
	boc_close(wc);
	boc_close(rc);
	fprintf(stderr,
	        "mix offered %.0f reads/s + %.0f writes/s (got %.0f + %.0f): read p50 %.3f ms, p99 %.3f ms, "
	        "p99.9 %.3f ms; write p99 %.3f ms; cores: server %.2f, bench %.2f\n",
	        read_rate, write_rate, f->reads_achieved, f->writes_achieved, f->read_p50,
	        f->read_p99, f->read_p999, f->write_p99, f->cpu.server, f->cpu.bench);
	fprintf(stderr,
	        "  projections: %" PRIu64 " received, %" PRIu64
	        " gaps; lag from batch stamp p50/p95/p99 "
	        "%.3f/%.3f/%.3f ms, from publish %.3f/%.3f/%.3f ms, read model (publish - stamp) p95 %.3f ms\n",
	        f->lag.messages, f->lag.gaps, f->lag.stamp.p50, f->lag.stamp.p95, f->lag.stamp.p99,
	        f->lag.pub.p50, f->lag.pub.p95, f->lag.pub.p99, f->lag.model.p95);
}

/* ---- In process: the read model alone ---------------------------------------------- */

typedef struct inproc {
	view *v;
	engine *e;
	atomic_int stop;
	int seats; /* readers ask query_seats instead of query_avail */
	uint64_t seq;
	uint64_t commands, changes; /* fed to the view; changes: OK results */
	held_list held;
} inproc;

typedef struct reader {
	inproc *ip;
	uint64_t rng;
	uint64_t reads, failed;
} reader;

static void *reader_main(void *arg)
{
	reader *r = arg;
	bo_cmd q[EVENTS * 4];
	for (uint32_t i = 0; i < EVENTS * 4; i++) {
		if (!r->ip->seats) {
			boc_query_avail(&q[i], FIRST_EVENT + i % EVENTS);
			continue;
		}
		uint32_t seats[4], n = 1 + i / EVENTS;
		for (uint32_t k = 0; k < n; k++)
			seats[k] = (uint32_t)(bench_rnd(&r->rng) % SEATS);
		boc_query_seats(&q[i], FIRST_EVENT + i % EVENTS, seats, n);
	}
	bo_result res;
	while (!atomic_load_explicit(&r->ip->stop, memory_order_relaxed)) {
		for (int k = 0; k < 1024; k++) {
			view_query(r->ip->v, &q[bench_rnd(&r->rng) % (EVENTS * 4)], &res);
			r->failed += res.status != BO_OK;
		}
		r->reads += 1024;
	}
	return NULL;
}

static int64_t wall_ms(void)
{
	return wall_us() / 1000;
}

/* Applies n commands to the engine and feeds their results to the view as
 * one batch (commands must not be creates). */
static void inproc_batch(inproc *ip, uint32_t n, uint64_t *rng)
{
	int64_t now = wall_ms();
	engine_advance(ip->e, now, NULL, NULL);
	view_batch_begin(ip->v);
	bo_cmd cmd;
	bo_result res;
	for (uint32_t i = 0; i < n; i++) {
		make_write(&ip->held, &cmd, rng);
		cmd.request_id = ip->seq + 1;
		engine_apply(ip->e, &cmd, &res);
		held_note(&ip->held, &res);
		ip->commands++;
		ip->changes += res.status == BO_OK;
		view_add_result(ip->v, &res, NULL, ++ip->seq, now);
	}
	view_batch_end(ip->v, NULL, NULL);
}

/* The writer: ~rate commands/s in batches every ~200 us, until stop. */
static void *inproc_writer(void *arg)
{
	inproc *ip = arg;
	const double rate = 100000;
	uint64_t rng = 99, fed = 0;
	int64_t t0 = bo_clock_ns();
	while (!atomic_load(&ip->stop)) {
		uint64_t target = (uint64_t)((double)(bo_clock_ns() - t0) / 1e9 * rate);
		while (fed < target) {
			uint32_t n = target - fed > 512 ? 512 : (uint32_t)(target - fed);
			inproc_batch(ip, n, &rng);
			fed += n;
		}
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* A view and an engine holding the EVENTS events, created through the view
 * as a shard's output would create them. */
static void inproc_open(inproc *ip)
{
	engine_config cfg;
	engine_config_default(&cfg);
	int rc = engine_new(&cfg, &ip->e);
	if (rc == 0)
		rc = view_new(&cfg, &ip->v);
	if (rc != 0)
		bench_die(prog, "engine_new/view_new", rc);
	pthread_mutex_init(&ip->held.lock, NULL);
	int64_t now = wall_ms();
	engine_advance(ip->e, now, NULL, NULL);
	bo_seatmap *m = event_map();
	view_batch_begin(ip->v);
	for (uint32_t i = 0; i < EVENTS; i++) {
		bo_cmd cmd;
		bo_result res;
		boc_create_event(&cmd, 1, ++ip->seq, FIRST_EVENT + i, m);
		engine_apply(ip->e, &cmd, &res);
		if (res.status != BO_OK)
			bench_die(prog, "create_event (in process)", res.status);
		view_add_result(ip->v, &res, &cmd, ip->seq, now);
	}
	view_batch_end(ip->v, NULL, NULL);
	bo_seatmap_free(m);
}

typedef struct inproc_figures {
	double avail_per_sec, seats_per_sec, commands_per_sec, changes_per_sec;
	double avail_alone_per_sec; /* query_avail without the writer */
	uint64_t failed, retries;
} inproc_figures;

/* Two readers against one writer for ns; returns the readers' reads/s.
 * The writer's rates go to f (the first run's stay). */
static double inproc_run(inproc *ip, int seats, int with_writer, int64_t ns, inproc_figures *f)
{
	ip->seats = seats;
	atomic_store(&ip->stop, 0);
	reader rs[2];
	pthread_t rth[2], wth;
	uint64_t commands0 = ip->commands, changes0 = ip->changes;
	int64_t t0 = bo_clock_ns();
	if (with_writer)
		pthread_create(&wth, NULL, inproc_writer, ip);
	for (int i = 0; i < 2; i++) {
		rs[i] = (reader){.ip = ip, .rng = 1234567 + (uint64_t)i};
		pthread_create(&rth[i], NULL, reader_main, &rs[i]);
	}
	usleep((useconds_t)(ns / 1000));
	atomic_store(&ip->stop, 1);
	uint64_t reads = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(rth[i], NULL);
		reads += rs[i].reads;
		f->failed += rs[i].failed;
	}
	if (with_writer)
		pthread_join(wth, NULL);
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	if (with_writer && f->commands_per_sec == 0) {
		f->commands_per_sec = (double)(ip->commands - commands0) / secs;
		f->changes_per_sec = (double)(ip->changes - changes0) / secs;
	}
	return (double)reads / secs;
}

static void in_process(int64_t ns, inproc_figures *f)
{
	inproc *ip = calloc(1, sizeof(*ip));
	if (!ip)
		bench_die(prog, "calloc", -ENOMEM);
	inproc_open(ip);
	f->avail_per_sec = inproc_run(ip, 0, 1, ns, f);
	f->seats_per_sec = inproc_run(ip, 1, 1, ns, f);
	/* The ceiling: the same readers without the writer's stores. */
	f->avail_alone_per_sec = inproc_run(ip, 0, 0, ns / 2, f);
	view_stats st;
	view_stats_get(ip->v, &st);
	f->retries = st.read_retries;
	view_free(ip->v);
	engine_free(ip->e);
	pthread_mutex_destroy(&ip->held.lock);
	free(ip);
}

/* ---- Main -------------------------------------------------------------------- */

static int quick;
static const char *only; /* --only: "in-process" or "wire"; NULL: both */

static void parse_options(int argc, char **argv, const char **server)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--server") && i + 1 < argc) {
			*server = argv[++i];
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
			if (strcmp(only, "in-process") && strcmp(only, "wire")) {
				fprintf(stderr, "%s: --only takes 'in-process' or 'wire'\n", prog);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--read-threads") && i + 1 < argc) {
			read_threads = atoi(argv[++i]);
			if (read_threads < 1 || read_threads > 4) {
				fprintf(stderr, "%s: --read-threads takes 1..4\n", prog);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--sync") && i + 1 < argc) {
			sync_mode = bench_sync_durable(prog, argv[++i]) ? "data" : "none";
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_reads [--quick] [--only in-process|wire] [--server PATH] [--read-threads N]\n"
			       "                   [--sync data|none]\n"
			       "The read side: reads over the wire beside writes, writes with and without\n"
			       "reads, read latency at a 90/10 mix, projection and read-model lag, and the\n"
			       "read model in process. Last stdout line: one JSON object.\n"
			       "  --quick           a short run (the test suite runs this)\n"
			       "  --only PART       the read model in process, or the server's phases (the\n"
			       "                    other part's figures are then 0)\n"
			       "  --server PATH     the server binary (default: ../gateway/boxoffice-server\n"
			       "                    next to this program)\n"
			       "  --read-threads N  threads submitting saturated reads, 1..4 (default 1)\n"
			       "  --sync none       UNSAFE server mode without fdatasync\n");
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

typedef struct figures {
	double w_alone[2], w_without, w_with, reads_beside_saturated;
	double reads_per_sec, reads_writes_achieved;
	mix_figures mix;     /* 500k reads/s + 50k writes/s offered */
	mix_figures mix_fit; /* the same 10:1 mix at 100k + 10k */
	inproc_figures ip;
	cores cpu_without, cpu_with, cpu_reads; /* the first three phases */
} figures;

static const char *yes(int b)
{
	return b ? "true" : "false";
}

/* A target's verdict: null when its part did not run. */
static const char *met(int measured, int ok)
{
	return measured ? yes(ok) : "null";
}

static void print_lags(const char *suffix, const lag_figures *l)
{
	printf("\"projection_lag_ms_p50%s\":%.3f,\"projection_lag_ms_p95%s\":%.3f,\"projection_lag_ms_p99%s\":%.3f,"
	       "\"projection_publish_lag_ms_p50%s\":%.3f,\"projection_publish_lag_ms_p95%s\":%.3f,"
	       "\"projection_publish_lag_ms_p99%s\":%.3f,\"read_model_lag_ms_p50%s\":%.3f,"
	       "\"read_model_lag_ms_p95%s\":%.3f,\"read_model_lag_ms_p99%s\":%.3f,\"projection_messages%s\":%" PRIu64
	       ",\"projection_gaps%s\":%" PRIu64 ",",
	       suffix, l->stamp.p50, suffix, l->stamp.p95, suffix, l->stamp.p99, suffix, l->pub.p50,
	       suffix, l->pub.p95, suffix, l->pub.p99, suffix, l->model.p50, suffix, l->model.p95,
	       suffix, l->model.p99, suffix, l->messages, suffix, l->gaps);
}

static void print_json(const figures *f)
{
	double ratio = f->w_without > 0 ? f->w_with / f->w_without : 0;
	const mix_figures *m = &f->mix, *mf = &f->mix_fit;
	printf("{\"bench\":\"reads\",\"quick\":%s,\"sync\":\"%s\",\"read_threads\":%d,"
	       "\"reads_per_sec\":%.0f,\"reads_writes_offered_per_sec\":100000,\"reads_writes_achieved_per_sec\":%.0f,"
	       "\"write_commands_per_sec_without_reads\":%.0f,\"write_commands_per_sec_with_reads\":%.0f,"
	       "\"write_runs_without_reads\":[%.0f,%.0f],\"write_with_without_ratio\":%.3f,\"reads_per_sec_beside_saturated_writes\":%.0f,",
	       yes(quick), sync_mode, read_threads, f->reads_per_sec, f->reads_writes_achieved,
	       f->w_without, f->w_with, f->w_alone[0], f->w_alone[1], ratio,
	       f->reads_beside_saturated);
	printf("\"read_latency_ms_p50\":%.3f,\"read_latency_ms_p99\":%.3f,\"read_latency_ms_p999\":%.3f,"
	       "\"mix_reads_offered_per_sec\":%.0f,\"mix_reads_achieved_per_sec\":%.0f,"
	       "\"mix_writes_offered_per_sec\":%.0f,\"mix_writes_achieved_per_sec\":%.0f,\"mix_write_latency_ms_p99\":%.3f,",
	       m->read_p50, m->read_p99, m->read_p999, m->read_rate, m->reads_achieved,
	       m->write_rate, m->writes_achieved, m->write_p99);
	printf("\"fit_read_latency_ms_p50\":%.3f,\"fit_read_latency_ms_p99\":%.3f,\"fit_read_latency_ms_p999\":%.3f,"
	       "\"fit_reads_offered_per_sec\":%.0f,\"fit_reads_achieved_per_sec\":%.0f,"
	       "\"fit_writes_offered_per_sec\":%.0f,\"fit_writes_achieved_per_sec\":%.0f,\"fit_write_latency_ms_p99\":%.3f,",
	       mf->read_p50, mf->read_p99, mf->read_p999, mf->read_rate, mf->reads_achieved,
	       mf->write_rate, mf->writes_achieved, mf->write_p99);
	print_lags("", &mf->lag);
	print_lags("_at_500k", &m->lag);
	printf("\"reads_in_process_per_sec\":%.0f,\"reads_in_process_seats_per_sec\":%.0f,"
	       "\"reads_in_process_without_writer_per_sec\":%.0f,\"in_process_commands_per_sec\":%.0f,\"in_process_changes_per_sec\":%.0f,"
	       "\"in_process_read_retries\":%" PRIu64 ",",
	       f->ip.avail_per_sec, f->ip.seats_per_sec, f->ip.avail_alone_per_sec,
	       f->ip.commands_per_sec, f->ip.changes_per_sec, f->ip.retries);
	printf("\"projection_undecodable\":%" PRIu64 ",\"no_answer\":%" PRIu64
	       ",\"reads_failed\":%" PRIu64 ",",
	       sub.bad, (uint64_t)atomic_load(&no_answer),
	       (uint64_t)atomic_load(&reads_failed) + f->ip.failed);
	printf("\"cores_server_bench\":{\"writes_alone\":[%.2f,%.2f],\"writes_with_reads\":[%.2f,%.2f],"
	       "\"reads_beside_writes\":[%.2f,%.2f],\"mix_500k\":[%.2f,%.2f],\"mix_fit\":[%.2f,%.2f]},",
	       f->cpu_without.server, f->cpu_without.bench, f->cpu_with.server, f->cpu_with.bench,
	       f->cpu_reads.server, f->cpu_reads.bench, m->cpu.server, m->cpu.bench, mf->cpu.server,
	       mf->cpu.bench);
	/* A part not run (--only) meets nothing and misses nothing: null. */
	int ip = f->ip.avail_per_sec > 0, wire = f->w_without > 0;
	printf("\"targets\":{\"reads_in_process_ge_10M_per_sec\":%s,\"reads_ge_saturated_writes\":%s,"
	       "\"reads_cost_writes_le_10pct\":%s,\"read_p99_lt_2ms\":%s,\"projection_lag_p95_lt_10ms\":%s,"
	       "\"read_model_lag_p95_lt_10ms\":%s}}\n",
	       met(ip, f->ip.avail_per_sec >= 10e6), met(wire, f->reads_per_sec >= f->w_without),
	       met(wire, ratio >= 0.90), met(wire, m->read_p99 < 2.0),
	       met(wire, mf->lag.stamp.p95 < 10.0), met(wire, mf->lag.model.p95 < 10.0));
}

/* The wire phases, in order, against a running server. */
static void wire_phases(const char *url, int64_t phase, figures *f)
{
	/* Writes alone before and after the run beside reads (A B A): the
	 * mean of both is the reference, so a drift of the server over the
	 * run (a growing journal, more holds) does not pass for the reads'
	 * cost. */
	double unused;
	/* Warm-up, not counted: a fresh server's first second runs at a third
	 * of its later rate (tables and journal pages faulted in). */
	saturated_writes(url, quick ? 1000000000ll : 2000000000ll, 0, &unused);
	cpu_mark m = cpu_now();
	f->w_alone[0] = saturated_writes(url, phase, 0, &unused);
	f->cpu_without = cpu_since(m);
	fprintf(stderr, "writes alone, saturated: %.0f/s; cores: server %.2f, bench %.2f\n",
	        f->w_alone[0], f->cpu_without.server, f->cpu_without.bench);
	m = cpu_now();
	f->w_with = saturated_writes(url, phase, 1, &f->reads_beside_saturated);
	f->cpu_with = cpu_since(m);
	fprintf(stderr,
	        "writes beside saturated reads: %.0f/s, reads %.0f/s; cores: server %.2f, bench %.2f\n",
	        f->w_with, f->reads_beside_saturated, f->cpu_with.server, f->cpu_with.bench);
	f->w_alone[1] = saturated_writes(url, phase, 0, &unused);
	f->w_without = (f->w_alone[0] + f->w_alone[1]) / 2;
	fprintf(stderr, "writes alone again: %.0f/s; with reads / alone (mean) = %.3f\n",
	        f->w_alone[1], f->w_with / f->w_without);
	m = cpu_now();
	f->reads_per_sec = reads_beside_writes(url, phase, &f->reads_writes_achieved);
	f->cpu_reads = cpu_since(m);
	fprintf(stderr,
	        "reads saturated beside writes offered at 100k/s: %.0f reads/s (writes got %.0f/s); cores: "
	        "server %.2f, bench %.2f\n",
	        f->reads_per_sec, f->reads_writes_achieved, f->cpu_reads.server,
	        f->cpu_reads.bench);
	if (atomic_load(&sub.received) == 0)
		bench_die(prog, "the subscriber received no projection", -EPROTO);
	mix(url, phase, 500000, 50000, &f->mix);
	mix(url, phase, 100000, 10000, &f->mix_fit);
}

int main(int argc, char **argv)
{
	const char *server = NULL;
	parse_options(argc, argv, &server);
	if (!server)
		server = bench_default_server(prog);
	if (access(server, X_OK) != 0) {
		fprintf(stderr, "%s: no server at %s (build it, or pass --server)\n", prog, server);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	const int64_t phase = quick ? 1000000000ll : 5000000000ll;
	figures f = {0};

	/* The read model alone first, while nothing else runs. */
	if (!only || !strcmp(only, "in-process")) {
		in_process(quick ? 500000000ll : 3000000000ll, &f.ip);
		fprintf(stderr,
		        "in process, 2 readers + a writer at %.0f commands/s (%.0f changes/s): query_avail %.0f/s, "
		        "query_seats %.0f/s (%" PRIu64
		        " reader retries); query_avail without the writer %.0f/s\n",
		        f.ip.commands_per_sec, f.ip.changes_per_sec, f.ip.avail_per_sec,
		        f.ip.seats_per_sec, f.ip.retries, f.ip.avail_alone_per_sec);
	}
	if (!only || !strcmp(only, "wire")) {
		char url[64], pub_url[320];
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", 18400 + (int)(getpid() % 1000));
		start_server(server, url, pub_url, sizeof(pub_url));
		atexit(stop_server);
		sub_start(pub_url);
		create_events(url);
		wire_phases(url, phase, &f);
		sub_stop();
		stop_server();
	}
	print_json(&f);
	return atomic_load(&no_answer) == 0 && atomic_load(&reads_failed) == 0 && f.ip.failed == 0
	               ? 0
	               : 1;
}
