/*
 * bench_engine — how fast is the engine core on this machine?
 *
 *   scripts/bench engine [--quick]
 *
 * Measures, each in isolation so one figure does not hide another:
 *   commands_per_sec        one thread applying a realistic on-sale mix
 *                           straight to the engine: explicit holds of 1-4
 *                           seats (many collide), confirms, releases,
 *                           cancels and expiries (time advances 1 ms per
 *                           batch of 64 commands, TTLs of 1-3 s);
 *   best_available_per_sec  best-4 holds on a 100k-seat event kept at
 *                           ~50% occupancy (random blocked seats);
 *   ring_messages_per_sec   2 producer threads -> 1 consumer thread, claims
 *                           of 64 slots of 64 bytes;
 *   ring_latency_ns_p99     publish -> consume, one paced producer;
 *   bytes_per_seat          resident memory added by 10M seats;
 *   memory_latency_ns       the machine's price of a cold line: one load
 *                           at a random line of 256 MiB (the size of the
 *                           engine's random-access tables: claims, the
 *                           idempotency window, the per-client counters),
 *                           each load's address coming from the previous
 *                           one, with transparent huge pages as the engine
 *                           asks for them;
 *   memory_parallel_ns      the same with eight independent chains at once:
 *                           the cost per cold line when, as the engine's
 *                           prefetching arranges, misses overlap. At 5M
 *                           commands/s a command has 200 ns in all.
 * Progress goes to stderr; the last stdout line is one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mimalloc.h>

#include "base/parse.h"
#include "bench_util.h"
#include "engine/engine.h"
#include "shard/ring.h"

static const char *prog = "bench_engine";

static int quick;
static const char *only; /* --only NAME: run one part (memory, commands, best, ring, latency, dram) */
static uint64_t commands_opt; /* --commands N: commands_per_sec's length (0: the mode's default) */

static int want(const char *name) { return !only || !strcmp(only, name); }

/* One generator for the whole run, so the figures are comparable. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return bench_rnd(&rng_state); }

static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		bench_die(prog, "opening /proc/self/statm", -errno);
	long pages = 0, res = 0;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		bench_die(prog, "reading /proc/self/statm", -EIO);
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

/* An engine with the default configuration, but room for seats_max seats
 * when that is not 0. */
static engine *new_engine(uint32_t seats_max)
{
	engine_config cfg;
	engine_config_default(&cfg);
	if (seats_max)
		cfg.seats_max = seats_max;
	engine *e;
	int rc = engine_new(&cfg, &e);
	if (rc)
		bench_die(prog, "engine_new", rc);
	return e;
}

/* An event of rows x seats_per_row seats, `cats` categories by row bands. */
static void create_event(engine *e, uint64_t id, uint32_t rows, uint32_t per_row, uint32_t cats)
{
	bo_seatmap *m = bench_map(rows, per_row, cats);
	if (!m)
		bench_die(prog, "bench_map", -ENOMEM);
	bo_cmd c = {0};
	c.op = BO_OP_CREATE_EVENT;
	c.client_id = 1;
	c.request_id = id;
	c.event_id = id;
	c.map = m;
	bo_result res;
	engine_apply(e, &c, &res);
	if (res.status != BO_OK)
		bench_die(prog, bo_detail_str(res.detail), res.status);
	bo_seatmap_free(m);
}

/* ---- commands_per_sec ---------------------------------------------------- */

/* Claims the bench knows about, to confirm/release/cancel them. */
enum { LIVE = 1 << 14 };
static uint64_t holds[LIVE], holds_ev[LIVE], books[LIVE], books_ev[LIVE];
/* The client of each claim: only it may confirm, release or cancel it. */
static uint64_t holds_cl[LIVE], books_cl[LIVE];
static uint32_t nh, nb;
static uint64_t req;

/* The mix of an on-sale: 60% explicit holds of 1-4 adjacent seats at random
 * places (many collide), 15% confirms, 15% releases, 10% cancels. A claim
 * picked for confirm/release/cancel leaves the bench's lists at once. */
static void gen_command(bo_cmd *c, uint32_t events, uint32_t seats)
{
	memset(c, 0, sizeof(*c));
	c->client_id = 1000 + (rnd() & 0xfffff);
	c->request_id = ++req;
	uint32_t dice = (uint32_t)(rnd() % 100);
	if (dice < 60 || (nh == 0 && nb == 0)) {
		c->op = BO_OP_HOLD_SEATS;
		c->event_id = 100 + rnd() % events;
		c->seat_count = (uint8_t)(1 + rnd() % 4);
		uint32_t base = (uint32_t)(rnd() % (seats - 4));
		for (uint32_t k = 0; k < c->seat_count; k++)
			c->seats[k] = base + k;
		c->ttl_ms = 1000 + (uint32_t)(rnd() % 2000);
	} else if (dice < 90 && nh > 0) {
		uint32_t k = (uint32_t)(rnd() % nh);
		c->op = dice < 75 ? BO_OP_CONFIRM : BO_OP_RELEASE;
		c->event_id = holds_ev[k];
		c->claim_id = holds[k];
		c->client_id = holds_cl[k];
		c->payref_len = 12;
		memcpy(c->payref, "psp_12345678", 12);
		holds[k] = holds[--nh];
		holds_ev[k] = holds_ev[nh];
		holds_cl[k] = holds_cl[nh];
	} else if (nb > 0) {
		uint32_t k = (uint32_t)(rnd() % nb);
		c->op = BO_OP_CANCEL;
		c->event_id = books_ev[k];
		c->claim_id = books[k];
		c->client_id = books_cl[k];
		books[k] = books[--nb];
		books_ev[k] = books_ev[nb];
		books_cl[k] = books_cl[nb];
	} else {
		c->op = BO_OP_QUERY_AVAIL;
		c->event_id = 100;
	}
}

static void note_result(const bo_cmd *c, const bo_result *r)
{
	if (c->op == BO_OP_HOLD_SEATS && nh < LIVE) {
		holds[nh] = r->claim_id;
		holds_cl[nh] = c->client_id;
		holds_ev[nh++] = c->event_id;
	} else if (c->op == BO_OP_CONFIRM && nb < LIVE) {
		books[nb] = c->claim_id;
		books_cl[nb] = c->client_id;
		books_ev[nb++] = c->event_id;
	}
}

static double bench_commands(void)
{
	engine *e = new_engine(0);
	const uint32_t events = 8, rows = 100, per_row = 100, seats = rows * per_row;
	for (uint32_t i = 0; i < events; i++)
		create_event(e, 100 + i, rows, per_row, 4);

	const uint64_t total = commands_opt ? commands_opt : quick ? 2000000 : 30000000;
	uint64_t ok = 0;
	int64_t t_ms = 1000;
	bo_cmd cmd[2];
	bo_result r;
	engine_advance(e, t_ms, NULL, NULL);
	int64_t t0 = bo_clock_ns();
	/* Applied as a shard does: the next command is known (and prefetched)
	 * while the current one is applied. */
	gen_command(&cmd[0], events, seats);
	for (uint64_t i = 0; i < total; i++) {
		if ((i & 63) == 0)
			engine_advance(e, ++t_ms, NULL, NULL);
		bo_cmd *c = &cmd[i & 1], *next = &cmd[(i + 1) & 1];
		gen_command(next, events, seats);
		engine_prefetch(e, next);
		engine_apply(e, c, &r);
		if (r.status == BO_OK)
			note_result(c, &r);
		ok += r.status == BO_OK;
	}
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	engine_stats st;
	engine_stats_get(e, &st);
	fprintf(stderr, "commands: %" PRIu64 " in %.2fs, %.1f%% ok, %" PRIu64 " expired, %u holds, %u bookings\n",
		total, secs, 100.0 * (double)ok / (double)total, st.expired_total, st.holds, st.bookings);
	engine_free(e);
	return (double)total / secs;
}

/* ---- best_available_per_sec ---------------------------------------------- */

static double bench_best(void)
{
	engine *e = new_engine(0);
	const uint32_t rows = 500, per_row = 200, seats = rows * per_row;
	create_event(e, 42, rows, per_row, 1);
	engine_advance(e, 1000, NULL, NULL);
	/* 50% occupancy: block a random half of the seats, 16 at a time. */
	bo_cmd c;
	bo_result r;
	uint32_t blocked = 0;
	while (blocked < seats / 2) {
		memset(&c, 0, sizeof(c));
		c.op = BO_OP_BLOCK;
		c.client_id = 1;
		c.request_id = ++req;
		c.event_id = 42;
		c.seat_count = 1;
		c.seats[0] = (uint32_t)(rnd() % seats);
		engine_apply(e, &c, &r);
		blocked += r.status == BO_OK;
	}
	/* Rounds of 1000 best-4 holds (timed), then their release (not timed),
	 * so occupancy stays between 50% and 54%. */
	enum { ROUND = 1000 };
	static uint64_t ids[ROUND];
	const uint32_t rounds = quick ? 50 : 1000;
	int64_t timed = 0;
	uint64_t held = 0;
	for (uint32_t round = 0; round < rounds; round++) {
		int64_t t0 = bo_clock_ns();
		for (uint32_t i = 0; i < ROUND; i++) {
			memset(&c, 0, sizeof(c));
			c.op = BO_OP_HOLD_BEST;
			c.client_id = 10 + i;
			c.request_id = ++req;
			c.event_id = 42;
			c.quantity = 4;
			c.ttl_ms = 60000;
			engine_apply(e, &c, &r);
			if (r.status != BO_OK)
				bench_die(prog, "hold_best", r.status);
			ids[i] = r.claim_id;
		}
		timed += bo_clock_ns() - t0;
		held += ROUND;
		for (uint32_t i = 0; i < ROUND; i++) {
			memset(&c, 0, sizeof(c));
			c.op = BO_OP_RELEASE;
			c.client_id = 10 + i;
			c.request_id = ++req;
			c.event_id = 42;
			c.claim_id = ids[i];
			engine_apply(e, &c, &r);
		}
	}
	double secs = (double)timed / 1e9;
	fprintf(stderr, "best_available: %" PRIu64 " best-4 holds in %.2fs\n", held, secs);
	engine_free(e);
	return (double)held / secs;
}

/* ---- ring ---------------------------------------------------------------- */

typedef struct msg {
	uint64_t producer;
	uint64_t n;
	int64_t sent_ns;
	uint64_t pad[5];
} msg;

typedef struct ring_run {
	ring *r;
	uint64_t per_producer;
	uint64_t id;
	atomic_uint_least64_t *busy;
} ring_run;

static void *ring_producer(void *arg)
{
	ring_run *p = arg;
	uint64_t busy = 0;
	for (uint64_t i = 0; i < p->per_producer;) {
		uint32_t n = p->per_producer - i < 64 ? (uint32_t)(p->per_producer - i) : 64;
		uint64_t first;
		if (ring_claim(p->r, n, &first) != 0) {
			busy++;
			continue;
		}
		for (uint32_t k = 0; k < n; k++) {
			msg *m = ring_slot(p->r, first + k);
			m->producer = p->id;
			m->n = i + k;
		}
		ring_publish(p->r, first, n);
		i += n;
	}
	atomic_fetch_add(p->busy, busy);
	return NULL;
}

static double bench_ring(void)
{
	ring *r;
	int rc = ring_new(sizeof(msg), 1 << 16, &r);
	if (rc)
		bench_die(prog, "ring_new", rc);
	const uint64_t per = quick ? 2000000 : 50000000;
	atomic_uint_least64_t busy = 0;
	ring_run runs[2];
	pthread_t th[2];
	int64_t t0 = bo_clock_ns();
	for (int i = 0; i < 2; i++) {
		runs[i] = (ring_run){.r = r, .per_producer = per, .id = (uint64_t)i, .busy = &busy};
		pthread_create(&th[i], NULL, ring_producer, &runs[i]);
	}
	uint64_t got = 0, next[2] = {0, 0}, bad = 0;
	while (got < 2 * per) {
		uint64_t first;
		uint32_t n = ring_poll(r, 4096, &first);
		if (n == 0) {
			ring_wait(r, 1000000);
			continue;
		}
		for (uint32_t k = 0; k < n; k++) {
			const msg *m = ring_slot(r, first + k);
			bad += m->n != next[m->producer & 1]++;
		}
		ring_release(r, n);
		got += n;
	}
	double secs = (double)(bo_clock_ns() - t0) / 1e9;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (bad)
		bench_die(prog, "ring order check", (int)bad);
	fprintf(stderr, "ring: %" PRIu64 " messages in %.2fs (%" PRIu64 " busy claims retried)\n", got, secs,
		(uint64_t)atomic_load(&busy));
	ring_free(r);
	return (double)got / secs;
}

typedef struct lat_run {
	ring *r;
	uint64_t count;
} lat_run;

static void *lat_producer(void *arg)
{
	lat_run *p = arg;
	for (uint64_t i = 0; i < p->count; i++) {
		/* Pace at ~1 message per 20 us so the figure is latency, not
		 * queueing. */
		int64_t until = bo_clock_ns() + 20000;
		uint64_t seq;
		while (ring_claim(p->r, 1, &seq) != 0)
			;
		msg *m = ring_slot(p->r, seq);
		m->n = i;
		m->sent_ns = bo_clock_ns();
		ring_publish(p->r, seq, 1);
		while (bo_clock_ns() < until)
			;
	}
	return NULL;
}

static double bench_ring_latency(double *p50)
{
	ring *r;
	int rc = ring_new(sizeof(msg), 1 << 12, &r);
	if (rc)
		bench_die(prog, "ring_new", rc);
	lat_run run = {.r = r, .count = quick ? 20000 : 200000};
	int64_t *lat = malloc(run.count * sizeof(int64_t));
	if (!lat)
		bench_die(prog, "malloc", -ENOMEM);
	pthread_t th;
	pthread_create(&th, NULL, lat_producer, &run);
	uint64_t got = 0;
	while (got < run.count) {
		uint64_t first;
		uint32_t n = ring_poll(r, 64, &first);
		if (n == 0) {
			ring_wait(r, 1000000);
			continue;
		}
		int64_t t = bo_clock_ns();
		for (uint32_t k = 0; k < n; k++)
			lat[got++] = t - ((const msg *)ring_slot(r, first + k))->sent_ns;
		ring_release(r, n);
	}
	pthread_join(th, NULL);
	bench_pcts pc = bench_percentiles(lat, run.count);
	*p50 = (double)pc.p50;
	double p99 = (double)pc.p99;
	fprintf(stderr, "ring latency: p50 %.0f ns, p99 %.0f ns over %" PRIu64 " messages\n", *p50, p99, run.count);
	free(lat);
	ring_free(r);
	return p99;
}

/* ---- bytes_per_seat ------------------------------------------------------ */

static double bench_memory(uint64_t *seats_out)
{
	engine *e = new_engine(1u << 24);
	const uint32_t events = quick ? 2 : 10;
	/* 1,000,000 seats an event (BO_SEATS_PER_EVENT_MAX is 1 Mi): rows of
	 * 100 seats, 4 categories. Measured after the maps are freed. */
	mi_collect(true);
	long before = rss_bytes();
	for (uint32_t i = 0; i < events; i++)
		create_event(e, 1 + i, 10000, 100, 4);
	mi_collect(true);
	long after = rss_bytes();
	uint64_t seats = (uint64_t)events * 1000000;
	double per = (double)(after - before) / (double)seats;
	fprintf(stderr, "memory: %" PRIu64 " seats, RSS +%.1f MiB, %.2f bytes/seat\n", seats,
		(double)(after - before) / 1048576.0, per);
	engine_free(e);
	*seats_out = seats;
	return per;
}

static void parse_options(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--commands") && i + 1 < argc) {
			if (bo_parse_u64(argv[++i], 1, UINT64_MAX, 0, &commands_opt) != 0) {
				fprintf(stderr, "%s: --commands takes a positive whole number, not '%s'\n", prog,
					argv[i]);
				exit(2);
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: bench_engine [--quick] [--only PART] [--commands N]\n"
			       "Measures the engine core; progress on stderr, one JSON line last on stdout.\n"
			       "  --quick      a few seconds, smaller counts (the test suite runs this)\n"
			       "  --only PART  one of memory, commands, best, ring, latency, dram (others print 0)\n"
			       "  --commands N commands_per_sec over N commands (default 30M, 2M with --quick)\n");
			exit(0);
		} else {
			bench_bad_option(prog, argv[i]);
		}
	}
}

/* ---- memory_latency_ns, memory_parallel_ns -------------------------------- */

enum { CHAINS = 8 };

/* One cycle through every line of a (n lines of 64 bytes) in random order:
 * word 0 of each line holds the index of the next line's word 0. */
static void link_cycle(uint64_t *a, uint64_t n)
{
	uint32_t *perm = malloc(n * sizeof(*perm));
	if (!perm)
		bench_die(prog, "malloc", -ENOMEM);
	for (uint64_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	uint64_t rng = 0x2545f4914f6cdd1dull;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = bench_rnd(&rng) % (i + 1);
		uint32_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint64_t k = 0; k < n; k++)
		a[(uint64_t)perm[k] * 8] = (uint64_t)perm[(k + 1) % n] * 8;
	free(perm);
}

static double bench_memory_latency(double *parallel_ns)
{
	const uint64_t bytes = quick ? 64ull << 20 : 256ull << 20, n = bytes / 64;
	const uint64_t steps = quick ? 1000000 : 4000000;
	uint64_t *a = mi_malloc_aligned(bytes, 2u << 20);
	if (!a)
		bench_die(prog, "mi_malloc_aligned", -ENOMEM);
	madvise(a, bytes, MADV_HUGEPAGE); /* as the engine does; no THP is fine too */
	link_cycle(a, n);
	uint64_t p = 0;
	for (uint64_t i = 0; i < n / 4; i++) /* fault the pages in, warm the TLB's walker caches */
		p = a[p];
	int64_t t0 = bo_clock_ns();
	for (uint64_t i = 0; i < steps; i++)
		p = a[p];
	double dep = (double)(bo_clock_ns() - t0) / (double)steps;
	uint64_t q[CHAINS];
	for (int c = 0; c < CHAINS; c++) /* starting points spread along the cycle */
		for (uint64_t i = 0; i < 997 * (uint64_t)(c + 1); i++)
			p = q[c] = a[p];
	t0 = bo_clock_ns();
	for (uint64_t i = 0; i < steps / CHAINS; i++)
		for (int c = 0; c < CHAINS; c++)
			q[c] = a[q[c]];
	*parallel_ns = (double)(bo_clock_ns() - t0) / (double)(steps / CHAINS * CHAINS);
	uint64_t sink = p;
	for (int c = 0; c < CHAINS; c++)
		sink ^= q[c];
	mi_free(a);
	fprintf(stderr, "memory: a dependent random line %.0f ns, %d chains at once %.0f ns a line (%" PRIu64 ")\n",
		dep, CHAINS, *parallel_ns, sink & 1);
	return dep;
}

/* The figures of one run; a part not run (--only) stays 0. */
typedef struct figures {
	double commands_per_sec, best_per_sec, ring_per_sec;
	double ring_lat_p50_ns, ring_lat_p99_ns;
	double bytes_per_seat;
	uint64_t seats_measured;
	double mem_latency_ns, mem_parallel_ns;
} figures;

static void print_json(const figures *f)
{
	printf("{\"bench\":\"engine\",\"quick\":%s,\"commands_per_sec\":%.0f,\"best_available_per_sec\":%.0f,"
	       "\"ring_messages_per_sec\":%.0f,\"ring_latency_ns_p50\":%.0f,\"ring_latency_ns_p99\":%.0f,"
	       "\"bytes_per_seat\":%.2f,\"seats_measured\":%" PRIu64
	       ",\"memory_latency_ns\":%.0f,\"memory_parallel_ns\":%.0f}\n",
	       quick ? "true" : "false", f->commands_per_sec, f->best_per_sec, f->ring_per_sec, f->ring_lat_p50_ns,
	       f->ring_lat_p99_ns, f->bytes_per_seat, f->seats_measured, f->mem_latency_ns, f->mem_parallel_ns);
}

int main(int argc, char **argv)
{
	parse_options(argc, argv);
	figures f = {0};
	if (want("memory"))
		f.bytes_per_seat = bench_memory(&f.seats_measured);
	if (want("commands"))
		f.commands_per_sec = bench_commands();
	if (want("best"))
		f.best_per_sec = bench_best();
	if (want("ring"))
		f.ring_per_sec = bench_ring();
	if (want("latency"))
		f.ring_lat_p99_ns = bench_ring_latency(&f.ring_lat_p50_ns);
	if (want("dram"))
		f.mem_latency_ns = bench_memory_latency(&f.mem_parallel_ns);
	print_json(&f);
	return 0;
}
