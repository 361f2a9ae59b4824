/*
 * bench_view.c — the read model's in-process read rate (issue 9's
 * reads_in_process_per_sec): 2 reader threads answer QUERY_AVAIL and
 * QUERY_SEATS from a view (view/view.h) as fast as they can while a writer
 * thread applies ~100,000 changes/s to it (OK results), paced by the clock.
 *
 *   build/perf/bench_view [--quick] [--seconds N] [--rate CHANGES_PER_SEC]
 *                         [--readers N]
 *
 * The shard: 64 events of 2,000 seats (40 rows of 50, 4 categories) and 2
 * pools each, in one engine and its view. The writer holds 2 adjacent
 * seats or 4 pool tickets of a random event and releases its oldest hold
 * once it has 4,096, one view batch per millisecond's worth of commands
 * (fed as a shard's output would be, view_batch_begin .. end); only OK
 * results count as changes. Each reader alternates a QUERY_AVAIL and a
 * QUERY_SEATS of 4 seats of a random event. Prints one JSON line:
 *   {"bench":"view","quick":..,"seconds":..,"readers":2,
 *    "reads_in_process_per_sec":..,"avail_reads":..,"seats_reads":..,
 *    "writer_changes_per_sec":..,"read_retries":..}
 * Exit 1 on a failure, 2 on a bad option.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "engine/engine.h"
#include "perf/bench_util.h"
#include "view/view.h"

#define PROG "bench_view"
#define EVENTS 64u
#define ROWS 40u
#define PER_ROW 50u
#define SEATS (ROWS * PER_ROW)
#define HOLDS_KEPT 4096u
#define READERS_MAX 8

typedef struct run {
	view *v;
	_Atomic int stop;
	uint64_t writer_changes;
	double writer_seconds;
	double rate;
} run;

typedef struct reader {
	run *r;
	uint64_t seed;
	uint64_t avail, seats;
} reader;

static void *reader_main(void *arg)
{
	reader *rd = arg;
	bo_cmd q;
	memset(&q, 0, sizeof(q));
	bo_result res;
	uint64_t avail = 0, seats = 0;
	while (!atomic_load_explicit(&rd->r->stop, memory_order_relaxed)) {
		/* 64 reads between looks at the flag: the flag's line is shared. */
		for (int i = 0; i < 32; i++) {
			uint64_t x = bench_rnd(&rd->seed);
			q.op = BO_OP_QUERY_AVAIL;
			q.event_id = 1 + x % EVENTS;
			view_query(rd->r->v, &q, &res);
			q.op = BO_OP_QUERY_SEATS;
			q.seat_count = 4;
			uint32_t s = (uint32_t)(x >> 32) % (SEATS - 4);
			for (uint32_t k = 0; k < 4; k++)
				q.seats[k] = s + k;
			view_query(rd->r->v, &q, &res);
			if (res.status != BO_OK)
				bench_die(PROG, "query_seats", res.status);
		}
		avail += 32;
		seats += 32;
	}
	rd->avail = avail;
	rd->seats = seats;
	return NULL;
}

typedef struct writer {
	run *r;
	engine *e;
	uint64_t seed, request;
	uint64_t holds[HOLDS_KEPT], hold_event[HOLDS_KEPT];
	uint64_t hold_client[HOLDS_KEPT]; /* only the hold's client may release it */
	uint32_t head, count;
} writer;

/* The next command: a release of the oldest hold once HOLDS_KEPT are
 * kept, otherwise a hold of 2 seats or 4 pool tickets. */
static bo_cmd next_cmd(writer *w)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.client_id = 1 + w->request % 1000; /* under BO_HOLDS_PER_CLIENT_MAX each */
	c.request_id = ++w->request;
	uint64_t x = bench_rnd(&w->seed);
	c.event_id = 1 + x % EVENTS;
	c.ttl_ms = BO_TTL_MS_MAX;
	if (w->count == HOLDS_KEPT) {
		uint32_t k = w->head;
		w->head = (w->head + 1) % HOLDS_KEPT;
		w->count--;
		c.op = BO_OP_RELEASE;
		c.claim_id = w->holds[k];
		c.event_id = w->hold_event[k];
		c.client_id = w->hold_client[k];
	} else if ((x >> 20) % 4 == 0) {
		c.op = BO_OP_HOLD_POOL;
		c.pool = (uint8_t)((x >> 24) % 2);
		c.quantity = 4;
	} else {
		c.op = BO_OP_HOLD_SEATS;
		c.seat_count = 2;
		c.seats[0] = (uint32_t)(x >> 32) % (SEATS - 1);
		c.seats[1] = c.seats[0] + 1;
	}
	return c;
}

static void note(writer *w, const bo_result *res)
{
	if (res->status != BO_OK || (res->op != BO_OP_HOLD_SEATS && res->op != BO_OP_HOLD_POOL))
		return;
	uint32_t k = (w->head + w->count) % HOLDS_KEPT;
	w->holds[k] = res->claim_id;
	w->hold_event[k] = res->event_id;
	w->hold_client[k] = res->client_id;
	w->count++;
}

static void *writer_main(void *arg)
{
	writer *w = arg;
	run *r = w->r;
	uint64_t seq = 1000, changes = 0;
	int64_t t0 = bo_clock_ns();
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		/* Paced on changes (OK results), not commands: a taken seat
		 * changes nothing. */
		double elapsed = (double)(bo_clock_ns() - t0) / 1e9;
		uint64_t due = (uint64_t)(elapsed * r->rate);
		if (due <= changes) {
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
			continue;
		}
		view_batch_begin(r->v);
		for (uint32_t i = 0; i < VIEW_BATCH_MAX && changes < due; i++) {
			bo_cmd c = next_cmd(w);
			bo_result res;
			engine_apply(w->e, &c, &res);
			view_add_result(r->v, &res, &c, ++seq, engine_now(w->e));
			note(w, &res);
			changes += res.status == BO_OK;
		}
		view_batch_end(r->v, NULL, NULL);
	}
	r->writer_seconds = (double)(bo_clock_ns() - t0) / 1e9;
	r->writer_changes = changes;
	return NULL;
}

static void setup(engine **e, view **v)
{
	engine_config cfg;
	engine_config_default(&cfg);
	cfg.seats_max = 1u << 20;
	cfg.claims_max = 1u << 16;
	int rc = engine_new(&cfg, e);
	if (rc != 0)
		bench_die(PROG, "engine_new", rc);
	rc = view_new(&cfg, v);
	if (rc != 0)
		bench_die(PROG, "view_new", rc);
	engine_advance(*e, bo_clock_ms(), NULL, NULL);
	bo_seatmap *m = bench_map(ROWS, PER_ROW, 4);
	bo_seatmap *pm = m ? bo_seatmap_new(m->row_count, m->seat_count, 2) : NULL;
	if (!pm)
		bench_die(PROG, "seat map", -ENOMEM);
	pm->category_count = m->category_count;
	memcpy(pm->rows, m->rows, m->row_count * sizeof(bo_row_def));
	memcpy(pm->categories, m->categories, m->seat_count);
	pm->pool_capacity[0] = pm->pool_capacity[1] = 100000;
	for (uint64_t id = 1; id <= EVENTS; id++) {
		bo_cmd c = {.op = BO_OP_CREATE_EVENT,
		            .client_id = 1,
		            .request_id = id,
		            .event_id = id,
		            .map = pm};
		bo_result res;
		engine_apply(*e, &c, &res);
		if (res.status != BO_OK)
			bench_die(PROG, "create", res.status);
	}
	/* The view starts as a recovered shard's does: loaded from the engine. */
	rc = view_load(*v, *e, 1000);
	if (rc != 0)
		bench_die(PROG, "view_load", rc);
	bo_seatmap_free(m);
	bo_seatmap_free(pm);
}

int main(int argc, char **argv)
{
	double seconds = 5, rate = 100000;
	int readers_n = 2, quick = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
			seconds = 0.5;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			rate = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--readers") && i + 1 < argc) {
			readers_n = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--help")) {
			printf("usage: bench_view [--quick] [--seconds N] [--rate CHANGES_PER_SEC] [--readers N]\n"
			       "  --quick      half a second (the test suite runs this)\n"
			       "  --seconds N  how long the readers read (default 5)\n"
			       "  --rate R     changes/s the writer applies (default 100000)\n"
			       "  --readers N  reader threads, 1..%d (default 2)\n",
			       READERS_MAX);
			return 0;
		} else {
			bench_bad_option(PROG, argv[i]);
		}
	}
	if (seconds <= 0 || rate <= 0 || readers_n < 1 || readers_n > READERS_MAX)
		bench_bad_option(PROG, "(a value out of range)");
	engine *e = NULL;
	static run r;
	setup(&e, &r.v);
	r.rate = rate;
	static writer w;
	w = (writer){.r = &r, .e = e, .seed = 42};
	reader rd[READERS_MAX];
	pthread_t rt[READERS_MAX], wt;
	if (pthread_create(&wt, NULL, writer_main, &w) != 0)
		bench_die(PROG, "pthread_create", -errno);
	int64_t t0 = bo_clock_ns();
	for (int i = 0; i < readers_n; i++) {
		rd[i] = (reader){.r = &r, .seed = 1000 + (uint64_t)i};
		if (pthread_create(&rt[i], NULL, reader_main, &rd[i]) != 0)
			bench_die(PROG, "pthread_create", -errno);
	}
	struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	atomic_store_explicit(&r.stop, 1, memory_order_relaxed);
	uint64_t avail = 0, seats = 0;
	for (int i = 0; i < readers_n; i++) {
		pthread_join(rt[i], NULL);
		avail += rd[i].avail;
		seats += rd[i].seats;
	}
	double elapsed = (double)(bo_clock_ns() - t0) / 1e9;
	pthread_join(wt, NULL);
	view_stats st;
	view_stats_get(r.v, &st);
	printf("{\"bench\":\"view\",\"quick\":%s,\"seconds\":%.2f,\"readers\":%d,\"reads_in_process_per_sec\":%.0f,"
	       "\"avail_reads\":%" PRIu64 ",\"seats_reads\":%" PRIu64
	       ",\"writer_changes_per_sec\":%.0f,"
	       "\"read_retries\":%" PRIu64 "}\n",
	       quick ? "true" : "false", elapsed, readers_n, (double)(avail + seats) / elapsed,
	       avail, seats, (double)r.writer_changes / r.writer_seconds, st.read_retries);
	view_free(r.v);
	engine_free(e);
	return 0;
}
