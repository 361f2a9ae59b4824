/*
 * bench_e2e — boxoffice-server end to end over tcp loopback, driven through
 * the client library (client/boxoffice.h), against the bare transport's
 * ceiling measured in the same run.
 *
 *   scripts/bench e2e [--quick] [--server PATH] [--sync data|none]
 *
 *   commands_per_sec         saturated: two submitting threads, the client
 *                            library coalescing into messages of up to
 *                            4096 commands, 8 messages in flight
 *   latency_ms_p50/p99/p999  offered 100,000 commands/s, open loop: command
 *                            i is due at t0 + i * 10 us and its latency
 *                            runs from when it was due (so a stall of the
 *                            generator is not hidden: coordinated omission)
 *   latency_ms_p99_with_snapshot
 *                            the same open loop (after the same saturated
 *                            warm-up) against a second server that
 *                            snapshots every (commands of the loop /
 *                            shards / 3) records, so that each shard makes
 *                            about two snapshots inside the measured window
 *                            (snapshots_in_window counts those made official
 *                            during it)
 *   single_requests_per_sec  one command per message (batch_max 1),
 *                            64 messages in flight
 *   nng_echo_messages_per_sec the same messages, pattern and socket kind
 *                            against a bare nng REP echo in this process:
 *                            the transport's ceiling
 *   cold_event_latency_ms_p99_without_hot_sale / _during_hot_sale
 *                            a second server with the default hot-event
 *                            throttling (the first runs with
 *                            --throttle-rate 0 so the figures above stay
 *                            the engine's): sequential single holds of a
 *                            cold event, one every 2 ms, alone and then
 *                            while a hot event on the same shard is
 *                            offered 10x its bucket (open loop, batched
 *                            by the client library); the cold event must
 *                            never be throttled (cold_event_throttled)
 *
 * The server runs as a child process with its journal on the real disk
 * (fdatasync group commit), 2 shards (--shards). The mix: holds of 1-4 random seats on
 * 8 events of 10,000 seats, and releases of earlier holds.
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
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench_util.h"
#include "client/boxoffice.h"
#include "gateway/throttle.h"
#include "protocol/wire.h"
#include "shard/shard.h"

static const char *prog = "bench_e2e";

enum { EVENTS = 8, ROWS = 100, PER_ROW = 100, SEATS = ROWS * PER_ROW };

/* ---- Workload -------------------------------------------------------------- */

/* Holds the bench may release later: filled by callbacks, taken by the
 * submitters. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t held_id[1 << 16], held_ev[1 << 16], held_client[1 << 16];
static uint32_t held_n;

static atomic_uint_least64_t done, answered_ok, no_answer;

static void note_hold(const bo_result *r)
{
	if (r->op != BO_OP_HOLD_SEATS || r->status != BO_OK)
		return;
	pthread_mutex_lock(&held_lock);
	if (held_n < (1u << 16)) {
		held_id[held_n] = r->claim_id;
		held_client[held_n] = r->client_id; /* only it may release the hold */
		held_ev[held_n++] = r->event_id;
	}
	pthread_mutex_unlock(&held_lock);
}

static void make_command(bo_cmd *c, uint64_t *rng)
{
	memset(c, 0, sizeof(*c));
	c->client_id = 1000 + (bench_rnd(rng) & 0xfffff);
	if (bench_rnd(rng) & 1) {
		pthread_mutex_lock(&held_lock);
		if (held_n > 0) {
			uint32_t k = (uint32_t)(bench_rnd(rng) % held_n);
			c->op = BO_OP_RELEASE;
			c->event_id = held_ev[k];
			c->claim_id = held_id[k];
			c->client_id = held_client[k];
			held_id[k] = held_id[--held_n];
			held_client[k] = held_client[held_n];
			held_ev[k] = held_ev[held_n];
		}
		pthread_mutex_unlock(&held_lock);
		if (c->op)
			return;
	}
	c->op = BO_OP_HOLD_SEATS;
	c->event_id = 100 + bench_rnd(rng) % EVENTS;
	c->seat_count = (uint8_t)(1 + bench_rnd(rng) % 4);
	uint32_t base = (uint32_t)(bench_rnd(rng) % (SEATS - 4));
	for (uint32_t k = 0; k < c->seat_count; k++)
		c->seats[k] = base + k;
	c->ttl_ms = 600000;
}

static void on_done(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)ctx;
	(void)text;
	if (err == 0) {
		note_hold(res);
		atomic_fetch_add_explicit(&answered_ok, res->status == BO_OK, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&no_answer, 1, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
}

/* ---- The server ------------------------------------------------------------ */

static pid_t server_pid;
static char data_dir[256];

static void stop_server(void) { bench_server_stop(prog, &server_pid, data_dir); }

static const char *server_shards = "2";
static const char *server_snapshot_every = "5000000"; /* the server's default */

/* throttle_rate: the server's --throttle-rate, NULL for its default. */
static void start_server(const char *path, const char *url, const char *sync, const char *throttle_rate)
{
	snprintf(data_dir, sizeof(data_dir), "/var/tmp/boxoffice-bench-e2e-XXXXXX");
	if (!mkdtemp(data_dir))
		bench_die(prog, "mkdtemp", -errno);
	server_pid = fork();
	if (server_pid < 0)
		bench_die(prog, "fork", -errno);
	if (server_pid == 0) {
		execl(path, path, "--data-dir", data_dir, "--listen", url, "--shards", server_shards, "--sync", sync,
		      "--log-level", "warn", "--snapshot-every", server_snapshot_every,
		      throttle_rate ? "--throttle-rate" : (char *)NULL, throttle_rate, (char *)NULL);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, path, strerror(errno));
		_exit(127);
	}
}

/* ---- Client-library phases --------------------------------------------------- */

typedef struct submitter {
	boc_client *c;
	int64_t until_ns;
	uint64_t rng;
	uint64_t submitted;
} submitter;

static void *submit_main(void *arg)
{
	submitter *s = arg;
	bo_cmd cmd;
	while (bo_clock_ns() < s->until_ns) {
		for (int i = 0; i < 256; i++) {
			make_command(&cmd, &s->rng);
			while (boc_submit(s->c, &cmd, on_done, NULL) == -EBUSY)
				sched_yield(); /* the queue is full: the server sets the pace */
			s->submitted++;
		}
	}
	return NULL;
}

static boc_client *open_client(const char *url, uint32_t batch_max, uint32_t inflight, int linger_zero)
{
	boc_options o;
	boc_options_default(&o);
	o.batch_max = batch_max;
	o.inflight_max = inflight;
	o.linger_zero = (uint32_t)linger_zero;
	o.timeout_ms = 30000;
	boc_client *c;
	int rc = boc_open(url, &o, &c);
	if (rc < 0)
		bench_die(prog, "boc_open", rc);
	return c;
}

static void wait_done(uint64_t target, int64_t timeout_ns)
{
	int64_t end = bo_clock_ns() + timeout_ns;
	while (atomic_load(&done) < target && bo_clock_ns() < end)
		usleep(1000);
	if (atomic_load(&done) < target)
		bench_die(prog, "waiting for answers", -ETIMEDOUT);
}

static double saturated(const char *url, int64_t ns, uint32_t threads, uint32_t batch_max, uint32_t inflight,
			int linger_zero)
{
	boc_client *c = open_client(url, batch_max, inflight, linger_zero);
	submitter subs[4];
	pthread_t th[4];
	uint64_t before = atomic_load(&done);
	int64_t t0 = bo_clock_ns();
	for (uint32_t i = 0; i < threads; i++) {
		subs[i] = (submitter){.c = c, .until_ns = t0 + ns, .rng = 0x9e3779b97f4a7c15ull + i};
		pthread_create(&th[i], NULL, submit_main, &subs[i]);
	}
	uint64_t submitted = 0;
	for (uint32_t i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		submitted += subs[i].submitted;
	}
	wait_done(before + submitted, 60ll * 1000000000);
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	boc_close(c);
	return (double)submitted / secs;
}

/* Latency samples, indexed by command number; the due time is derived. */
static int64_t *lat;
static int64_t lat_t0, lat_step;

static void on_timed(void *ctx, int err, const bo_result *res, const char *text)
{
	uint64_t i = (uint64_t)(uintptr_t)ctx;
	lat[i] = bo_clock_ns() - (lat_t0 + (int64_t)i * lat_step);
	on_done(NULL, err, res, text);
}

static void open_loop(const char *url, uint64_t total, double *p50, double *p99, double *p999)
{
	boc_client *c = open_client(url, 4096, 8, 0);
	lat = calloc(total, sizeof(int64_t));
	if (!lat)
		bench_die(prog, "calloc", -ENOMEM);
	lat_step = 10000; /* 100,000 commands/s */
	lat_t0 = bo_clock_ns() + 1000000;
	uint64_t before = atomic_load(&done), rng = 42;
	bo_cmd cmd;
	for (uint64_t i = 0; i < total; i++) {
		int64_t due = lat_t0 + (int64_t)i * lat_step;
		/* Sleep, not spin, until the command is due: on two cores a
		 * spinning generator would steal the server's CPU. Commands that
		 * came due during a sleep go out at once (their latency still
		 * counts from when they were due). */
		int64_t wait = due - bo_clock_ns();
		if (wait > 0) {
			struct timespec ts = {0, wait};
			nanosleep(&ts, NULL);
		}
		make_command(&cmd, &rng);
		while (boc_submit(c, &cmd, on_timed, (void *)(uintptr_t)i) == -EBUSY)
			sched_yield();
	}
	wait_done(before + total, 60ll * 1000000000);
	boc_close(c);
	bench_pcts pc = bench_percentiles(lat, total);
	*p50 = (double)pc.p50 / 1e6;
	*p99 = (double)pc.p99 / 1e6;
	*p999 = (double)pc.p999 / 1e6;
	free(lat);
}

/* ---- Bare nng echo ------------------------------------------------------------- */

typedef struct echo_ctx {
	nng_ctx ctx;
	nng_aio *aio;
	int sending;
} echo_ctx;

static void echo_cb(void *arg)
{
	echo_ctx *e = arg;
	if (nng_aio_result(e->aio) != 0) {
		if (e->sending) {
			nng_msg *m = nng_aio_get_msg(e->aio);
			if (m)
				nng_msg_free(m);
		}
		if (nng_aio_result(e->aio) == NNG_ECLOSED)
			return;
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (e->sending) {
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
	} else {
		e->sending = 1; /* echo the request message itself */
		nng_ctx_send(e->ctx, e->aio);
	}
}

typedef struct req_ctx {
	nng_ctx ctx;
	nng_aio *aio;
	const uint8_t *bytes;
	size_t len;
	int sending;
	atomic_uint_least64_t *count;
	atomic_int *stop;
} req_ctx;

static void req_send(req_ctx *r)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, r->bytes, r->len) != 0)
		bench_die(prog, "nng_msg_alloc", -ENOMEM);
	r->sending = 1;
	nng_aio_set_msg(r->aio, m);
	nng_ctx_send(r->ctx, r->aio);
}

static void req_cb(void *arg)
{
	req_ctx *r = arg;
	int rv = nng_aio_result(r->aio);
	if (rv != 0) {
		if (r->sending) {
			nng_msg *m = nng_aio_get_msg(r->aio);
			if (m)
				nng_msg_free(m);
		}
		return; /* closed or timed out: this context stops */
	}
	if (r->sending) {
		r->sending = 0;
		nng_ctx_recv(r->ctx, r->aio);
		return;
	}
	nng_msg_free(nng_aio_get_msg(r->aio));
	atomic_fetch_add_explicit(r->count, 1, memory_order_relaxed);
	if (!atomic_load_explicit(r->stop, memory_order_relaxed))
		req_send(r);
}

/* Messages per second of `bytes` over REQ contexts against url. */
static double req_rate(const char *url, const uint8_t *bytes, size_t len, uint32_t inflight, int64_t ns)
{
	nng_socket s;
	if (nng_req0_open(&s) != 0)
		bench_die(prog, "nng_req0_open", -EIO);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 3600000);
	if (nng_dial(s, url, NULL, 0) != 0)
		bench_die(prog, "nng_dial", -EIO);
	atomic_uint_least64_t count = 0;
	atomic_int stop = 0;
	req_ctx *rs = calloc(inflight, sizeof(req_ctx));
	for (uint32_t i = 0; i < inflight; i++) {
		rs[i] = (req_ctx){.bytes = bytes, .len = len, .count = &count, .stop = &stop};
		if (nng_ctx_open(&rs[i].ctx, s) != 0 || nng_aio_alloc(&rs[i].aio, req_cb, &rs[i]) != 0)
			bench_die(prog, "nng context", -EIO);
		nng_aio_set_timeout(rs[i].aio, 10000);
	}
	int64_t t0 = bo_clock_ns();
	for (uint32_t i = 0; i < inflight; i++)
		req_send(&rs[i]);
	usleep((useconds_t)(ns / 1000));
	uint64_t n = atomic_load(&count);
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	atomic_store(&stop, 1);
	usleep(200000);
	nng_close(s);
	for (uint32_t i = 0; i < inflight; i++) {
		nng_aio_stop(rs[i].aio);
		nng_aio_free(rs[i].aio);
	}
	free(rs);
	return (double)n / secs;
}

static double echo_rate(const uint8_t *bytes, size_t len, uint32_t inflight, int64_t ns)
{
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", 27400 + (int)(getpid() % 1000));
	nng_socket rep;
	if (nng_rep0_open(&rep) != 0 || nng_listen(rep, url, NULL, 0) != 0)
		bench_die(prog, "echo listen", -EIO);
	echo_ctx *es = calloc(inflight, sizeof(echo_ctx));
	for (uint32_t i = 0; i < inflight; i++) {
		if (nng_ctx_open(&es[i].ctx, rep) != 0 || nng_aio_alloc(&es[i].aio, echo_cb, &es[i]) != 0)
			bench_die(prog, "echo context", -EIO);
		nng_ctx_recv(es[i].ctx, es[i].aio);
	}
	double rate = req_rate(url, bytes, len, inflight, ns);
	nng_close(rep);
	for (uint32_t i = 0; i < inflight; i++) {
		nng_aio_stop(es[i].aio);
		nng_aio_free(es[i].aio);
	}
	free(es);
	return rate;
}

/* ---- Main -------------------------------------------------------------------- */

static int quick;
static const char *sync_mode = "data"; /* --sync, passed on to the server */
/* --hot-sale-throttle-rate: the hot-sale server's --throttle-rate (NULL: its
 * default; "0" shows what the cold event suffers without throttling). */
static const char *hot_sale_rate;

static void parse_options(int argc, char **argv, const char **server)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--server") && i + 1 < argc) {
			*server = argv[++i];
		} else if (!strcmp(argv[i], "--snapshot-every") && i + 1 < argc) {
			server_snapshot_every = argv[++i];
		} else if (!strcmp(argv[i], "--shards") && i + 1 < argc) {
			server_shards = argv[++i];
		} else if (!strcmp(argv[i], "--hot-sale-throttle-rate") && i + 1 < argc) {
			hot_sale_rate = argv[++i];
		} else if (!strcmp(argv[i], "--sync") && i + 1 < argc) {
			sync_mode = bench_sync_durable(prog, argv[++i]) ? "data" : "none";
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_e2e [--quick] [--server PATH] [--shards N] [--snapshot-every N] [--sync data|none]\n"
			       "                 [--hot-sale-throttle-rate N]\n"
			       "boxoffice-server end to end over tcp loopback through the client library, and\n"
			       "the bare nng echo ceiling in the same run. Last stdout line: one JSON object.\n"
			       "  --quick        a few seconds (the test suite runs this)\n"
			       "  --server PATH  the server binary (default: ../gateway/boxoffice-server\n"
			       "                 next to this program)\n"
			       "  --shards N     server shards (default 2)\n"
			       "  --snapshot-every N  server snapshot interval in records (default: the\n"
			       "                 server's, 5,000,000) for every phase but the one with snapshots\n"
			       "  --sync none    UNSAFE server mode without fdatasync (shows the disk's share)\n"
			       "  --hot-sale-throttle-rate N  the hot-sale server's --throttle-rate (default:\n"
			       "                 the server's; 0 = off, to see the cold event without it). The\n"
			       "                 hot event is offered 10x the server's default rate either way\n");
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

/* Waits (up to 10 s) until the server answers, then creates the EVENTS
 * events the workload uses. */
static void create_events(const char *url)
{
	boc_client *c = open_client(url, 4096, 4, 0);
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
	for (uint32_t e = 0; e < EVENTS; e++) {
		bo_seatmap *m = bench_map(ROWS, PER_ROW, 4);
		if (!m)
			bench_die(prog, "bench_map", -ENOMEM);
		boc_create_event(&cmd, 1, 0, 100 + e, m);
		int rc = boc_call(c, &cmd, &res, err, sizeof(err));
		bo_seatmap_free(m);
		if (rc < 0 || res.status != BO_OK)
			bench_die(prog, "create_event", rc < 0 ? rc : -EPROTO);
	}
	boc_close(c);
}

/* nng_echo_messages_per_sec: the message pattern of the one-command phase
 * (one hold per message, 64 in flight) against a bare echo. */
static double echo_phase(int64_t ns)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	uint64_t rng = 7;
	bo_cmd cmd;
	make_command(&cmd, &rng);
	cmd.request_id = 1;
	if (wire_encode_request(&cmd, 1, 1, &sb) != 0)
		bench_die(prog, "wire_encode_request", -EINVAL);
	double echo = echo_rate((const uint8_t *)sb.data, sb.size, 64, ns);
	fprintf(stderr, "bare nng echo, %zu-byte messages, 64 in flight: %.0f/s\n", sb.size, echo);
	msgpack_sbuffer_destroy(&sb);
	return echo;
}

typedef struct figures {
	double commands_per_sec;
	double lat_ms_p50, lat_ms_p99, lat_ms_p999;
	double lat_ms_p99_snap;
	uint32_t snapshots_in_window;
	double single_per_sec, echo_per_sec;
	uint64_t no_answer;
	double cold_p99_ms_alone, cold_p99_ms_hot;
	double hot_offered_per_sec, hot_applied_per_sec;
	uint64_t hot_throttled, hot_unhinted, cold_throttled;
} figures;

/* ---- Snapshots in the measured window -------------------------------------- */

/* Snapshot files (snap-<seq>.snap) in the shard directories of dir. */
static uint32_t count_snapshots(const char *dir)
{
	uint32_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "shard-", 6) != 0)
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		DIR *sd = opendir(sub);
		struct dirent *f;
		while (sd && (f = readdir(sd)) != NULL) {
			size_t len = strlen(f->d_name);
			n += strncmp(f->d_name, "snap-", 5) == 0 && len > 10 &&
			     strcmp(f->d_name + len - 5, ".snap") == 0;
		}
		if (sd)
			closedir(sd);
	}
	if (d)
		closedir(d);
	return n;
}

/* latency_ms_p99_with_snapshot: the open loop against a fresh server that
 * snapshots about twice per shard while it runs. */
static void snapshot_phase(const char *server, const char *url, figures *f)
{
	const uint64_t total = quick ? 100000 : 1000000;
	const uint64_t shards = strtoul(server_shards, NULL, 10);
	char every[32];
	snprintf(every, sizeof(every), "%" PRIu64, total / (shards ? shards : 1) / 3);
	const char *saved = server_snapshot_every;
	server_snapshot_every = every;
	start_server(server, url, sync_mode, "0");
	server_snapshot_every = saved;
	create_events(url);
	pthread_mutex_lock(&held_lock);
	held_n = 0; /* the holds of the first server are not on this one */
	pthread_mutex_unlock(&held_lock);
	/* The same warm-up as the first server's open loop had (its saturated
	 * phase): the first second of a fresh server is slower, and that is
	 * not what this figure is about. */
	saturated(url, quick ? 1000000000ll : 5000000000ll, 2, 4096, 8, 0);
	const uint32_t before = count_snapshots(data_dir);
	double p50, p999;
	open_loop(url, total, &p50, &f->lat_ms_p99_snap, &p999);
	f->snapshots_in_window = count_snapshots(data_dir) - before;
	stop_server();
}

/* ---- Hot sale: a cold event beside a hot one on the same shard ------------ */

static atomic_uint_least64_t hot_done, hot_applied, hot_throttled, hot_unhinted;

static void on_hot(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)ctx;
	(void)text;
	if (err != 0)
		atomic_fetch_add_explicit(&no_answer, 1, memory_order_relaxed);
	else if (res->status == BO_THROTTLED)
		atomic_fetch_add_explicit(res->retry_after_ms ? &hot_throttled : &hot_unhinted, 1,
					  memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&hot_applied, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hot_done, 1, memory_order_relaxed);
}

typedef struct hot_gen {
	boc_client *c;
	uint64_t event;
	uint64_t per_sec;
	atomic_int stop;
	uint64_t offered; /* accepted by boc_submit */
	int64_t t0, t1;
} hot_gen;

/* Open loop: every millisecond, submit every hold that has come due since
 * t0 at per_sec (what the local queue refuses is not offered). */
static void *hot_main(void *arg)
{
	hot_gen *h = arg;
	uint64_t rng = 99, due_sent = 0;
	h->t0 = bo_clock_ns();
	while (!atomic_load(&h->stop)) {
		uint64_t due = (uint64_t)(bo_clock_ns() - h->t0) * h->per_sec / 1000000000u;
		for (; due_sent < due; due_sent++) {
			bo_cmd c;
			memset(&c, 0, sizeof(c));
			c.op = BO_OP_HOLD_SEATS;
			c.client_id = 1000 + (bench_rnd(&rng) & 0xfffff);
			c.event_id = h->event;
			c.seat_count = 1;
			c.seats[0] = (uint32_t)(bench_rnd(&rng) % SEATS);
			c.ttl_ms = 600000;
			h->offered += boc_submit(h->c, &c, on_hot, NULL) == 0;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	h->t1 = bo_clock_ns();
	return NULL;
}

/* n sequential single holds of `event`, one every 2 ms (ordinary traffic):
 * the p99 of their latency in ms; refusals other than ok counted in
 * *throttled when throttled. Seats first.., 10 holds a client. */
static double cold_p99_ms(boc_client *c, uint64_t event, uint32_t n, uint32_t first, uint64_t *throttled)
{
	int64_t *lat_ns = calloc(n, sizeof(int64_t));
	if (!lat_ns)
		bench_die(prog, "calloc", -ENOMEM);
	int64_t next = bo_clock_ns();
	for (uint32_t i = 0; i < n; i++) {
		int64_t wait = next - bo_clock_ns();
		if (wait > 0) {
			struct timespec ts = {0, wait};
			nanosleep(&ts, NULL);
		}
		next += 2000000;
		bo_cmd cmd;
		memset(&cmd, 0, sizeof(cmd));
		cmd.op = BO_OP_HOLD_SEATS;
		cmd.client_id = 5000000 + (first + i) / 10;
		cmd.event_id = event;
		cmd.seat_count = 1;
		cmd.seats[0] = first + i;
		cmd.ttl_ms = 600000;
		bo_result res;
		char err[256];
		int64_t t0 = bo_clock_ns();
		int rc = boc_call(c, &cmd, &res, err, sizeof(err));
		lat_ns[i] = bo_clock_ns() - t0;
		if (rc < 0)
			bench_die(prog, "cold event: no answer", rc);
		*throttled += res.status == BO_THROTTLED;
	}
	bench_pcts pc = bench_percentiles(lat_ns, n);
	free(lat_ns);
	return (double)pc.p99 / 1e6;
}

/* A server with the default throttling; events 100.. as create_events makes
 * them; the hot one and a cold one on its shard. */
static void hot_sale_phase(const char *server, const char *url, figures *f)
{
	start_server(server, url, sync_mode, hot_sale_rate);
	create_events(url);
	uint32_t shards = (uint32_t)strtoul(server_shards, NULL, 10);
	uint64_t hot = 100, cold = 0;
	for (uint64_t e = 101; e < 100 + EVENTS && !cold; e++)
		if (shard_for_event(e, shards) == shard_for_event(hot, shards))
			cold = e;
	if (!cold)
		bench_die(prog, "no two bench events share a shard", -EINVAL);
	uint32_t n = quick ? 300 : 1500;
	boc_client *cc = open_client(url, 1, 1, 1);
	f->cold_p99_ms_alone = cold_p99_ms(cc, cold, n, 0, &f->cold_throttled);
	hot_gen h = {.c = open_client(url, 4096, 8, 0), .event = hot, .per_sec = 10ull * GW_THROTTLE_RATE_DEFAULT};
	pthread_t th;
	pthread_create(&th, NULL, hot_main, &h);
	usleep(300000); /* past the burst, at the rate */
	f->cold_p99_ms_hot = cold_p99_ms(cc, cold, n, 5000, &f->cold_throttled);
	atomic_store(&h.stop, 1);
	pthread_join(th, NULL);
	int64_t end = bo_clock_ns() + 60ll * 1000000000;
	while (atomic_load(&hot_done) < h.offered && bo_clock_ns() < end)
		usleep(1000);
	boc_close(h.c);
	boc_close(cc);
	double secs = (double)(h.t1 - h.t0) / 1e9;
	f->hot_offered_per_sec = (double)h.offered / secs;
	f->hot_applied_per_sec = (double)atomic_load(&hot_applied) / secs;
	f->hot_throttled = atomic_load(&hot_throttled);
	f->hot_unhinted = atomic_load(&hot_unhinted);
	stop_server();
}

static void print_json(const figures *f)
{
	printf("{\"bench\":\"e2e\",\"quick\":%s,\"sync\":\"%s\",\"commands_per_sec\":%.0f,\"offered_per_sec\":100000,"
	       "\"latency_ms_p50\":%.3f,\"latency_ms_p99\":%.3f,\"latency_ms_p999\":%.3f,"
	       "\"latency_ms_p99_with_snapshot\":%.3f,\"snapshots_in_window\":%u,"
	       "\"single_requests_per_sec\":%.0f,\"nng_echo_messages_per_sec\":%.0f,"
	       "\"single_vs_echo\":%.2f,\"no_answer\":%" PRIu64 ","
	       "\"cold_event_latency_ms_p99_without_hot_sale\":%.3f,\"cold_event_latency_ms_p99_during_hot_sale\":%.3f,"
	       "\"hot_sale_offered_per_sec\":%.0f,\"hot_sale_admitted_per_sec\":%.0f,\"hot_sale_throttled\":%" PRIu64
	       ",\"hot_sale_throttled_without_hint\":%" PRIu64 ",\"cold_event_throttled\":%" PRIu64 "}\n",
	       quick ? "true" : "false", sync_mode, f->commands_per_sec, f->lat_ms_p50, f->lat_ms_p99, f->lat_ms_p999,
	       f->lat_ms_p99_snap, f->snapshots_in_window, f->single_per_sec, f->echo_per_sec, f->echo_per_sec > 0 ? f->single_per_sec / f->echo_per_sec : 0.0,
	       f->no_answer, f->cold_p99_ms_alone, f->cold_p99_ms_hot, f->hot_offered_per_sec, f->hot_applied_per_sec,
	       f->hot_throttled, f->hot_unhinted, f->cold_throttled);
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
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", 17400 + (int)(getpid() % 1000));
	start_server(server, url, sync_mode, "0"); /* the engine's figures: no throttling */
	atexit(stop_server);
	create_events(url);

	figures f = {0};
	const int64_t phase = quick ? 1000000000ll : 5000000000ll;
	f.commands_per_sec = saturated(url, phase, 2, 4096, 8, 0);
	fprintf(stderr, "saturated: %.0f commands/s (%" PRIu64 " without an answer)\n", f.commands_per_sec,
		(uint64_t)atomic_load(&no_answer));

	open_loop(url, quick ? 100000 : 1000000, &f.lat_ms_p50, &f.lat_ms_p99, &f.lat_ms_p999);
	fprintf(stderr, "offered 100k/s: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n", f.lat_ms_p50, f.lat_ms_p99,
		f.lat_ms_p999);

	f.single_per_sec = saturated(url, phase, 1, 1, 64, 1);
	fprintf(stderr, "one command per message: %.0f/s\n", f.single_per_sec);

	f.echo_per_sec = echo_phase(phase);
	stop_server();

	snapshot_phase(server, url, &f);
	fprintf(stderr, "offered 100k/s with snapshots (%u made): p99 %.3f ms\n", f.snapshots_in_window,
		f.lat_ms_p99_snap);

	hot_sale_phase(server, url, &f);
	fprintf(stderr,
		"hot sale (%.0f/s offered, %.0f/s admitted, %" PRIu64 " throttled): cold event p99 %.3f ms, "
		"%.3f ms without\n",
		f.hot_offered_per_sec, f.hot_applied_per_sec, f.hot_throttled, f.cold_p99_ms_hot, f.cold_p99_ms_alone);

	f.no_answer = atomic_load(&no_answer);
	print_json(&f);
	/* A cold event throttled, or a throttled answer without its hint, is
	 * a failure of the throttling, not a figure. */
	int throttling = !hot_sale_rate || strcmp(hot_sale_rate, "0") != 0;
	return f.no_answer == 0 && f.cold_throttled == 0 && f.hot_unhinted == 0 &&
			       (f.hot_throttled > 0 || !throttling)
		       ? 0
		       : 1;
}
