/*
 * crash_harness.c — the process that crash_test.c kills: durable shards under
 * a random load, telling on stdout what it submitted and what its clients
 * were answered.
 *
 *     crash_harness DIR MODE SEED
 *
 * Opens CRASH_SHARDS shards with data directory DIR (shard_open(): journal
 * recovery, newest snapshot plus the journal after it), prints what each
 * recovery found (stdout "rec" line, stderr figures), creates its events if
 * they do not exist yet, starts the shards and runs three producer threads
 * submitting a random mix of holds (explicit seats, best available, pool),
 * confirms, releases, extends, cancels and blocks to the shard of each
 * command's event. One output thread per shard drains its output ring and
 * writes an "ack" line per RESULT. The line protocol is in crash_config.h.
 *
 * MODE: "mix" submits 1..4 commands at a time with short pauses; "burst"
 * submits up to 48 at a time, so batches are large and more of them are in
 * flight when the process dies.
 *
 * Why the lines can be trusted after a SIGKILL: every group of lines goes
 * out with one write(2) of at most PIPE_BUF bytes to a pipe (atomic, and no
 * stdio buffer in between), a "sub" group is written before its commands
 * are submitted, and an "ack" is written only after the shard published the
 * result, which it does only once the command's journal record is durable.
 * A line that reached the pipe is something a client saw.
 *
 * Client and request ids never repeat across runs: client ids carry a run
 * number kept (durably) in DIR/harness-runs; SEED drives the random mix; only
 * the event creations reuse fixed (client, request) pairs, on purpose, so a
 * re-creation after a restart is answered from the idempotency window (or,
 * once it has left the window, with EVENT_EXISTS).
 *
 * Runs until killed. SIGTERM stops the producers, then the shards
 * (shard_stop(): everything submitted is applied and durable), drains the
 * output rings, writes "bye" and exits 0.
 *
 * Exit codes: 0 after SIGTERM, 2 usage, 3 shard_open() failed (the message
 * is on stdout as a "fail" line and on stderr), 4 a shard failed while
 * running, 77 io_uring refused by the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crash_config.h"
#include "shard/shard.h"
#include "tests/support/rng.h"

#define PRODUCERS 3u
#define EVENTS_PER_SHARD CRASH_EVENTS_PER_SHARD
#define EVENTS CRASH_EVENTS
#define ROWS 8u
#define SEATS_PER_ROW 16u
#define SEATS (ROWS * SEATS_PER_ROW)
#define POOL_CAPACITY 300u
#define CLAIMS_KEPT 64u     /* recent claim ids per event the producers pick from */
#define GROUP_MIX_MAX 4u    /* commands per submission in "mix" mode */
#define GROUP_BURST_MAX 48u /* ... in "burst" mode */
#define LINE_MAX_BYTES 96u  /* longest line: "ack" with six numbers */
/* Producer clients have the top bit set: they never meet the creation
 * clients (CRASH_CREATE_CLIENT_BASE + event). */
#define PRODUCER_CLIENT_BIT (1ull << 63)

/* A write carries whole lines only and at most PIPE_BUF bytes: atomic. */
_Static_assert(LINE_MAX_BYTES <= PIPE_BUF, "a line fits one atomic write");

/* ---- Output: atomic line groups ------------------------------------------ */

typedef struct linebuf {
	char bytes[PIPE_BUF];
	size_t len;
} linebuf;

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			_exit(1); /* the driver is gone: nothing left to tell */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void lb_flush(linebuf *b)
{
	if (b->len > 0)
		write_all(b->bytes, b->len);
	b->len = 0;
}

__attribute__((format(printf, 2, 3))) static void lb_add(linebuf *b, const char *fmt, ...)
{
	if (b->len + LINE_MAX_BYTES > sizeof(b->bytes))
		lb_flush(b);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->bytes + b->len, sizeof(b->bytes) - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= LINE_MAX_BYTES) {
		fprintf(stderr, "crash_harness: line too long\n");
		abort();
	}
	b->len += (size_t)n;
}

/* ---- Shared state ---------------------------------------------------------- */

typedef struct event_info {
	uint64_t id;
	uint32_t shard;
	bo_seatmap *map;
	/* Recent OK claim ids of this event, written by its shard's output
	 * thread, read by producers: a mutex, since neither side is hot. */
	pthread_mutex_t mu;
	uint64_t claims[CLAIMS_KEPT];
	uint64_t claim_client[CLAIMS_KEPT]; /* the client of each, the one that may touch it */
	uint32_t claims_n, claims_next;
} event_info;

static event_info events[EVENTS];
static shard *shards[CRASH_SHARDS];
static uint64_t client_base;
static int burst_mode;
static uint64_t run_seed;

/* Set by the SIGTERM handler; polled by main. Only ordering needed is that
 * main eventually sees it: relaxed would do, seq_cst costs nothing here. */
static atomic_int term_requested;
/* Set by main (release) when the producers must stop; producers acquire. */
static atomic_int producers_stop;
/* Set by main (release) after every shard_stop() returned, so all output
 * is published; output threads acquire it, then poll one last time. */
static atomic_int outputs_done;

static void on_sigterm(int sig)
{
	(void)sig;
	atomic_store(&term_requested, 1);
}

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	return trng_mix64(*s);
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rng_next(s) % n);
}

static void sleep_us(uint32_t us)
{
	struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void claim_note(event_info *ev, uint64_t claim, uint64_t client)
{
	pthread_mutex_lock(&ev->mu);
	ev->claims[ev->claims_next] = claim;
	ev->claim_client[ev->claims_next] = client;
	ev->claims_next = (ev->claims_next + 1) % CLAIMS_KEPT;
	if (ev->claims_n < CLAIMS_KEPT)
		ev->claims_n++;
	pthread_mutex_unlock(&ev->mu);
}

/* A recent claim of the event, or now and then one that never existed.
 * *client: mostly the claim's own client (only it may touch the claim:
 * engine.h, "Ownership"), else 0 (the producer's own client, refused). */
static uint64_t claim_pick(event_info *ev, uint64_t *rng, uint64_t *client)
{
	uint64_t c = 0, owner = 0;
	pthread_mutex_lock(&ev->mu);
	if (ev->claims_n > 0) {
		uint32_t k = rng_below(rng, ev->claims_n);
		c = ev->claims[k];
		owner = ev->claim_client[k];
	}
	pthread_mutex_unlock(&ev->mu);
	if (c == 0 || rng_below(rng, 16) == 0)
		c = rng_next(rng) & 0xFFFFFFFFFFull;
	*client = rng_below(rng, 5) != 0 ? owner : 0;
	return c;
}

/* ---- Output threads -------------------------------------------------------- */

static void *output_main(void *arg)
{
	uint32_t sid = (uint32_t)(uintptr_t)arg;
	ring *out = shard_output(shards[sid]);
	linebuf lb = {.len = 0};
	for (;;) {
		uint64_t first;
		uint32_t n = ring_poll(out, 256, &first);
		if (n == 0) {
			if (atomic_load_explicit(&outputs_done, memory_order_acquire)) {
				n = ring_poll(out, 256, &first);
				if (n == 0)
					break;
			} else {
				ring_wait(out, 10 * 1000 * 1000);
				continue;
			}
		}
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind != SHARD_OUT_RESULT)
				continue;
			const bo_result *r = &o->u.result;
			lb_add(&lb, "ack %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %" PRIu64 "\n",
			       sid, o->seq, r->client_id, r->request_id, (unsigned)r->status,
			       r->claim_id);
			if (r->status == BO_OK && r->claim_id != 0) {
				for (uint32_t e = 0; e < EVENTS; e++)
					if (events[e].id == r->event_id)
						claim_note(&events[e], r->claim_id, r->client_id);
			}
		}
		/* Acknowledge before handing the slots back: a line written is
		 * an answer the client saw. */
		lb_flush(&lb);
		ring_release(out, n);
	}
	lb_flush(&lb);
	return NULL;
}

/* ---- Producers ------------------------------------------------------------- */

static void random_seats(bo_cmd *c, uint64_t *rng, uint32_t max)
{
	c->seat_count = (uint8_t)(1 + rng_below(rng, max));
	for (uint32_t i = 0; i < c->seat_count; i++) {
		uint32_t s;
		int dup;
		do {
			s = rng_below(rng, SEATS);
			dup = 0;
			for (uint32_t k = 0; k < i; k++)
				dup |= c->seats[k] == s;
		} while (dup);
		c->seats[i] = s;
	}
	if (rng_below(rng, 40) == 0)
		c->seats[0] = SEATS + 3; /* out of range: an INVALID result, journaled too */
}

static void random_cmd(bo_cmd *c, event_info *ev, uint64_t *rng)
{
	memset(c, 0, sizeof(*c));
	c->event_id = ev->id;
	c->ttl_ms = 1000 + rng_below(rng, 3000);
	uint32_t r = rng_below(rng, 100);
	if (r < 28) {
		c->op = BO_OP_HOLD_SEATS;
		random_seats(c, rng, 4);
	} else if (r < 46) {
		c->op = BO_OP_HOLD_BEST;
		c->category = (uint8_t)rng_below(rng, 3); /* 2 is out of range */
		c->quantity = (uint16_t)(1 + rng_below(rng, 6));
	} else if (r < 56) {
		c->op = BO_OP_HOLD_POOL;
		c->pool = 0;
		c->quantity = (uint16_t)(1 + rng_below(rng, 20));
	} else if (r < 70) {
		c->op = BO_OP_CONFIRM;
		c->claim_id = claim_pick(ev, rng, &c->client_id);
		c->payref_len = (uint8_t)snprintf(c->payref, sizeof(c->payref), "pay-%08x",
		                                  (unsigned)rng_below(rng, 1u << 30));
	} else if (r < 79) {
		c->op = BO_OP_RELEASE;
		c->claim_id = claim_pick(ev, rng, &c->client_id);
	} else if (r < 87) {
		c->op = BO_OP_EXTEND;
		c->claim_id = claim_pick(ev, rng, &c->client_id);
	} else if (r < 94) {
		c->op = BO_OP_CANCEL;
		c->claim_id = claim_pick(ev, rng, &c->client_id);
	} else {
		c->op = BO_OP_BLOCK;
		random_seats(c, rng, 2);
	}
}

static void *producer_main(void *arg)
{
	uint32_t t = (uint32_t)(uintptr_t)arg;
	uint64_t rng = trng_mix64(run_seed ^ (0x1234567ull * (t + 1)));
	uint64_t n = 0; /* commands made by this thread */
	bo_cmd cmds[GROUP_BURST_MAX];
	linebuf lb = {.len = 0};
	while (!atomic_load_explicit(&producers_stop, memory_order_acquire)) {
		event_info *ev = &events[rng_below(&rng, EVENTS)];
		uint32_t group = 1 + rng_below(&rng, burst_mode ? GROUP_BURST_MAX : GROUP_MIX_MAX);
		for (uint32_t i = 0; i < group; i++) {
			random_cmd(&cmds[i], ev, &rng);
			/* A client makes 32 requests: enough for the per-client
			 * hold limit to bite now and then. A claim op goes
			 * mostly as the claim's client (random_cmd), so the
			 * thread goes into the request id: (client, request)
			 * stays unique when two threads act for one client. */
			if (cmds[i].client_id == 0)
				cmds[i].client_id =
				        client_base | ((uint64_t)(t + 1) << 24) | (n / 32);
			cmds[i].request_id = ((uint64_t)(t + 1) << 40) | (n + 1);
			n++;
			lb_add(&lb, "sub %" PRIu64 " %" PRIu64 " %u\n", cmds[i].client_id,
			       cmds[i].request_id, ev->shard);
		}
		lb_flush(&lb); /* before submitting: the driver must know of it */
		/* Once "sub" is out the command must go in, even when asked to
		 * stop: a graceful stop promises an answer for every one. The
		 * writer is still running, so the ring drains. */
		while (shard_submit(shards[ev->shard], cmds, NULL, group) == -EBUSY)
			sleep_us(200);
		sleep_us(burst_mode ? 4000 + rng_below(&rng, 12000) : 500 + rng_below(&rng, 3000));
	}
	return NULL;
}

/* ---- Set-up ---------------------------------------------------------------- */

/* Runs counted in DIR/harness-runs: makes client ids unique even if a seed
 * is reused. Durable before any client id derived from it is used. */
static uint64_t bump_run_counter(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/harness-runs", dir);
	uint64_t runs = 0;
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%" SCNu64, &runs) != 1)
			runs = 0;
		fclose(f);
	}
	runs++;
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "crash_harness: %s: %s\n", tmp, strerror(errno));
		exit(CRASH_EXIT_OPEN);
	}
	char num[32];
	int len = snprintf(num, sizeof(num), "%" PRIu64 "\n", runs);
	if (write(fd, num, (size_t)len) != len || fsync(fd) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "crash_harness: %s: %s\n", path, strerror(errno));
		exit(CRASH_EXIT_OPEN);
	}
	close(fd);
	return runs;
}

static bo_seatmap *make_map(void)
{
	bo_seatmap *m = bo_seatmap_new(ROWS, SEATS, 1);
	if (!m) {
		fprintf(stderr, "crash_harness: out of memory\n");
		exit(CRASH_EXIT_OPEN);
	}
	m->category_count = 2;
	for (uint32_t r = 0; r < ROWS; r++) {
		m->rows[r].section = (uint16_t)(r / 4);
		m->rows[r].seats = SEATS_PER_ROW;
	}
	for (uint32_t s = 0; s < SEATS; s++)
		m->categories[s] = (uint8_t)(s / SEATS_PER_ROW < ROWS / 2 ? 0 : 1);
	m->pool_capacity[0] = POOL_CAPACITY;
	if (bo_seatmap_check(m) != BO_D_NONE) {
		fprintf(stderr, "crash_harness: seat map invalid\n");
		exit(CRASH_EXIT_OPEN);
	}
	return m;
}

/* The first EVENTS_PER_SHARD ids from 1000 up that land on each shard: the
 * same events in every run. */
static void pick_events(void)
{
	uint32_t per[CRASH_SHARDS] = {0};
	uint32_t k = 0;
	for (uint64_t id = 1000; k < EVENTS; id++) {
		uint32_t s = shard_for_event(id, CRASH_SHARDS);
		if (per[s] == EVENTS_PER_SHARD)
			continue;
		per[s]++;
		events[k].id = id;
		events[k].shard = s;
		events[k].map = make_map();
		pthread_mutex_init(&events[k].mu, NULL);
		k++;
	}
}

static void open_shard(const char *dir, uint32_t id)
{
	shard_config cfg;
	shard_config_default(&cfg);
	cfg.id = id;
	crash_engine_config(&cfg.engine);
	cfg.in_slots = CRASH_IN_SLOTS;
	cfg.out_slots = CRASH_OUT_SLOTS;
	cfg.data_dir = dir;
	crash_journal_options(&cfg.journal);
	cfg.snapshot_every = CRASH_SNAPSHOT_EVERY;
	cfg.prune = 0; /* the driver reads the whole journal from seq 1 */
	cfg.verify_replay = 1;
	shard_recovery rec;
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(&cfg, &shards[id], &rec, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "crash_harness: shard %u: shard_open failed: %s (%s)\n", id, err,
		        strerror(-rc));
		/* No other thread writes yet: the (long) line goes out alone. */
		char line[JOURNAL_ERR_LEN + 32];
		int n = snprintf(line, sizeof(line), "fail %d %s", -rc, err);
		if (n < 0 || (size_t)n >= sizeof(line))
			n = (int)sizeof(line) - 1;
		for (int i = 0; i < n; i++)
			if (line[i] == '\n')
				line[i] = ' ';
		line[n] = '\n';
		write_all(line, (size_t)n + 1);
		exit(rc == -ENOSYS || rc == -EPERM ? CRASH_EXIT_SKIP : CRASH_EXIT_OPEN);
	}
	uint64_t digest = engine_digest(shard_engine(shards[id]));
	fprintf(stderr,
	        "crash_harness: shard %u recovered: snapshot_seq=%" PRIu64 " last_seq=%" PRIu64
	        " replayed=%" PRIu64 " seconds=%.3f journal_bytes_cut=%" PRIu64
	        " journal_records_cut=%" PRIu64 "%s%s\n",
	        id, rec.snapshot_seq, rec.last_seq, rec.replayed, rec.seconds,
	        rec.journal.bytes_cut, rec.journal.records_cut, rec.journal.note[0] ? " note=" : "",
	        rec.journal.note);
	linebuf lb = {.len = 0};
	lb_add(&lb, "rec %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %016" PRIx64 "\n", id,
	       rec.snapshot_seq, rec.last_seq, rec.replayed, rec.journal.records_cut, digest);
	lb_flush(&lb);
}

static void create_events(void)
{
	for (uint32_t e = 0; e < EVENTS; e++) {
		bo_cmd c;
		memset(&c, 0, sizeof(c));
		c.op = BO_OP_CREATE_EVENT;
		c.client_id = CRASH_CREATE_CLIENT_BASE + e;
		c.request_id = 1;
		c.event_id = events[e].id;
		c.map = events[e].map; /* borrowed until the result is out: kept forever */
		linebuf lb = {.len = 0};
		lb_add(&lb, "sub %" PRIu64 " %" PRIu64 " %u\n", c.client_id, c.request_id,
		       events[e].shard);
		lb_flush(&lb);
		while (shard_submit(shards[events[e].shard], &c, NULL, 1) == -EBUSY)
			sleep_us(200);
	}
}

static void check_failed(void)
{
	for (uint32_t i = 0; i < CRASH_SHARDS; i++) {
		const char *f = shard_failed(shards[i]);
		if (f) {
			fprintf(stderr, "crash_harness: %s\n", f);
			_exit(4);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[2], "mix") != 0 && strcmp(argv[2], "burst") != 0)) {
		fprintf(stderr, "usage: crash_harness DIR mix|burst SEED\n");
		return CRASH_EXIT_USAGE;
	}
	const char *dir = argv[1];
	burst_mode = strcmp(argv[2], "burst") == 0;
	uint64_t seed = strtoull(argv[3], NULL, 0);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	/* crash_test starts us with SIGTERM blocked, so that one sent before
	 * the handler above existed waits; it is delivered now, before any
	 * thread starts (threads inherit this unblocked mask). */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_UNBLOCK, &term, NULL);

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "crash_harness: mkdir %s: %s\n", dir, strerror(errno));
		return CRASH_EXIT_OPEN;
	}
	uint64_t run = bump_run_counter(dir);
	run_seed = trng_mix64(seed ^ trng_mix64(run));
	/* The run number (unique in DIR) in bits 32..62, above the thread
	 * (bits 24..31) and the thread's client counter (bits 0..23). */
	client_base = PRODUCER_CLIENT_BIT | ((run & 0x7FFFFFFFull) << 32);
	fprintf(stderr, "crash_harness: run %" PRIu64 " mode %s seed %" PRIu64 "\n", run, argv[2],
	        seed);

	pick_events();
	for (uint32_t i = 0; i < CRASH_SHARDS; i++)
		open_shard(dir, i);

	pthread_t outs[CRASH_SHARDS], prods[PRODUCERS];
	for (uint32_t i = 0; i < CRASH_SHARDS; i++) {
		if (pthread_create(&outs[i], NULL, output_main, (void *)(uintptr_t)i) != 0 ||
		    shard_start(shards[i]) != 0) {
			fprintf(stderr, "crash_harness: cannot start threads\n");
			return CRASH_EXIT_OPEN;
		}
	}
	create_events();
	for (uint32_t t = 0; t < PRODUCERS; t++) {
		if (pthread_create(&prods[t], NULL, producer_main, (void *)(uintptr_t)t) != 0) {
			fprintf(stderr, "crash_harness: cannot start producers\n");
			return CRASH_EXIT_OPEN;
		}
	}
	linebuf lb = {.len = 0};
	lb_add(&lb, "go\n");
	lb_flush(&lb);

	while (!atomic_load(&term_requested)) {
		check_failed();
		sleep_us(5000);
	}

	atomic_store_explicit(&producers_stop, 1, memory_order_release);
	for (uint32_t t = 0; t < PRODUCERS; t++)
		pthread_join(prods[t], NULL);
	/* The output threads keep draining while the writers finish. */
	for (uint32_t i = 0; i < CRASH_SHARDS; i++)
		shard_stop(shards[i]);
	atomic_store_explicit(&outputs_done, 1, memory_order_release);
	for (uint32_t i = 0; i < CRASH_SHARDS; i++)
		pthread_join(outs[i], NULL);
	check_failed();
	for (uint32_t i = 0; i < CRASH_SHARDS; i++)
		shard_free(shards[i]);
	for (uint32_t e = 0; e < EVENTS; e++)
		bo_seatmap_free(events[e].map);
	lb_add(&lb, "bye\n");
	lb_flush(&lb);
	return CRASH_EXIT_OK;
}
