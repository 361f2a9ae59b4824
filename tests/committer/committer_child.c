/*
 * committer_child.c — the process the committer's fault tests
 * (faults_test.c) kill and starve: one durable shard and its PostgreSQL
 * committer under the committer tests' random command stream
 * (tests/support/stream_gen.h).
 *
 *     committer_child DIR DSN [--seed N] [--request-base N] [--commands N]
 *                     [--rate N] [--status-ms N] [--retry-max-ms N] [--batch-records N]
 *
 * Opens shard 0 in DIR with recovery (the journal is re-executed: what a
 * restarted server does), no snapshots (the tests' oracle re-executes the
 * journal from its first record, so nothing may be pruned) and retention
 * from 0 (the committer moves it), creates the TSTREAM_EVENTS events if the
 * journal does not have them yet, starts a committer to DSN and submits
 * the stream of seed N (request ids after --request-base, so that the
 * runs of a kill cycle never reuse one; the claims on the recovered seats
 * are known to it from the start), --rate commands per second
 * (0: as fast as the shard answers), until --commands were submitted or
 * SIGTERM came. Then it finishes: moves its clock ten minutes on so every
 * hold expires (journaled by the shard), stops the shard (nothing more
 * becomes durable), waits until the committer has applied every durable
 * record, stops it, and exits 0. --commands 0 only finishes: the drain of
 * a kill test.
 *
 * The clock is the tests' fake one (holds must expire within a short run):
 * it starts at the later of the wall clock and the recovered engine's
 * clock (never back) and moves 0..400 ms per submitted batch.
 *
 * Lines on stdout, each one write(2) of less than PIPE_BUF bytes (whole
 * lines reach the pipe even when the process is killed right after):
 *
 *     ready <recovered last_seq>
 *     commit <first_seq> <last_seq> <records> <changes> <outbox>   (after each COMMIT)
 *     status <at> <state> <applied> <durable> <lag_records> <acks> <retries> <healthy>
 *         every --status-ms ms; at: CLOCK_MONOTONIC in ms (the same clock in
 *         every process: the parent tells lines written before an event it
 *         caused from those after); acks: results received
 *     drained <applied_seq> <durable_seq> <batches>
 *     fail <why>
 *
 * The committer logs on stderr (base/log.h). A failure exits at once
 * (_exit: nothing else runs, no leak report of what was left). Exit
 * codes: 0 drained,
 * 2 usage, 3 the shard or the committer did not start, 4 the shard failed,
 * 5 the committer stopped with a reason or did not catch up while
 * draining, 77 io_uring refused by the kernel.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/parse.h"
#include "committer/committer.h"
#include "shard/shard.h"
#include "tests/support/stream_gen.h"
#include "tests/support/cmd.h"

#define LINE_BYTES 256u
#define RESULT_WAIT_MS 60000
#define DRAIN_WAIT_MS 120000
#define EXPIRE_ALL_MS (10 * 60 * 1000)
#define WATCH_US 5000

_Static_assert(LINE_BYTES <= PIPE_BUF, "a line is one atomic write");

static _Atomic int64_t clock_ms;
static atomic_uint_fast64_t acks;
static volatile sig_atomic_t term_asked;
static atomic_int watch_done;

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&clock_ms);
}

/* One whole line to stdout in one write (see the file comment). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[LINE_BYTES];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
	(void)w; /* the parent went away: nothing to tell anyone */
}

static void on_term(int sig)
{
	(void)sig;
	term_asked = 1;
}

static void on_commit(void *ctx, const committer_commit *ci)
{
	(void)ctx;
	say("commit %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, ci->first_seq,
	    ci->last_seq, ci->records, ci->changes, ci->outbox);
}

typedef struct child {
	shard *s;
	committer *c;
	tstream_gen g;
	uint32_t status_ms; /* 0: no status lines */
	pthread_t watch_thread;
} child;

static void say_status(child *ch)
{
	committer_status st;
	committer_status_get(ch->c, &st);
	say("status %" PRId64 " %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %d",
	    bo_clock_ms(), committer_state_str(st.state), st.applied_seq, st.durable_seq,
	    st.lag_records, (uint64_t)atomic_load(&acks), st.retries, shard_failed(ch->s) == NULL);
}

/* The watcher, a thread of its own: it says at once when the committer
 * stopped on a fault (the parent then fails with the reason instead of
 * waiting for commits that never come), and prints the status lines —
 * which keep coming when the load stalls, so a stall shows instead of
 * looking like silence. Joined before the committer is stopped on
 * purpose. */
static void *watch_main(void *arg)
{
	child *ch = arg;
	int64_t next_status = bo_clock_ms();
	while (!atomic_load(&watch_done)) {
		committer_status st;
		committer_status_get(ch->c, &st);
		if (st.state == COMMITTER_STOPPED) {
			say("fail committer stopped: %s", st.reason);
			_exit(5);
		}
		if (ch->status_ms && bo_clock_ms() >= next_status) {
			say_status(ch);
			next_status += ch->status_ms;
		}
		usleep(WATCH_US);
	}
	return NULL;
}

/* Submits n commands and waits for their n results (the shard publishes a
 * result once its record is durable: each is an acknowledgement). Exits
 * the process when the shard failed or hung. */
static void submit_wait(child *ch, const bo_cmd *cmds, uint32_t n)
{
	const int64_t deadline = bo_clock_ms() + RESULT_WAIT_MS;
	uint32_t got = 0;
	int submitted = 0;
	while (got < n) {
		if (!submitted)
			submitted = shard_submit(ch->s, cmds, NULL, n) == 0;
		uint32_t k = tstream_drain(ch->s, &ch->g);
		got += k;
		if (k)
			continue;
		if (shard_failed(ch->s)) {
			say("fail shard: %s", shard_failed(ch->s));
			_exit(4);
		}
		if (bo_clock_ms() > deadline) {
			say("fail %u of %u results after %d ms", got, n, RESULT_WAIT_MS);
			_exit(4);
		}
		if (submitted)
			ring_wait(shard_output(ch->s), 1000000);
	}
	atomic_fetch_add(&acks, n);
}

/* What the recovered engine has (read before the writer starts: the
 * engine is the writer's afterwards): which events are missing, and the
 * holds and bookings on their seats — without them the stream of a
 * restarted process could never release or cancel what earlier runs
 * left, and the seats would fill up for good after a few kill cycles.
 * (Pool claims are not found this way.) */
static void recall(child *ch, uint8_t *missing)
{
	const engine *e = shard_engine(ch->s);
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		const uint64_t ev = TSTREAM_EVENT_FIRST + i;
		bo_avail a;
		missing[i] = engine_avail(e, ev, &a) != 0;
		uint64_t prev = 0;
		uint8_t st;
		uint64_t claim;
		for (uint32_t seat = 0; !missing[i] && engine_seat(e, ev, seat, &st, &claim) == 0;
		     seat++)
			if (claim && claim != prev) {
				tstream_remember(&ch->g, ev, claim, 0); /* client unknown */
				prev = claim;
			}
	}
}

/* Creates the events the recovered engine lacks. */
static void create_missing_events(child *ch, const uint8_t *missing)
{
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		if (!missing[i])
			continue;
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++ch->g.request, TSTREAM_EVENT_FIRST + i, m);
		submit_wait(ch, &c, 1);
		bo_seatmap_free(m);
	}
}

static void pace(int64_t start_ns, uint64_t done, uint64_t rate)
{
	if (!rate)
		return;
	int64_t due = start_ns + (int64_t)(done * 1000000000ull / rate), now = bo_clock_ns();
	if (due <= now)
		return;
	struct timespec ts = {.tv_sec = (due - now) / 1000000000,
	                      .tv_nsec = (due - now) % 1000000000};
	nanosleep(&ts, NULL);
}

/* The stream: `commands` commands (UINT64_MAX: until SIGTERM). */
static void load(child *ch, uint64_t commands, uint64_t rate)
{
	bo_cmd cmds[32];
	const int64_t start = bo_clock_ns();
	for (uint64_t done = 0; done < commands && !term_asked;) {
		uint32_t m = 1 + tstream_rnd(&ch->g, 32);
		if (m > commands - done)
			m = (uint32_t)(commands - done);
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = tstream_random_cmd(&ch->g);
		atomic_fetch_add(&clock_ms, 100 * tstream_rnd(&ch->g, 5));
		submit_wait(ch, cmds, m);
		done += m;
		pace(start, done, rate);
	}
}

/* Every hold expires (the shard journals it), the shard stops, the
 * committer applies everything durable. Exits 0 or 5. */
static void finish(child *ch)
{
	atomic_fetch_add(&clock_ms, EXPIRE_ALL_MS);
	bo_cmd q = tcmd_query_avail(TSTREAM_EVENT_FIRST);
	submit_wait(ch, &q, 1);
	shard_stop(ch->s);
	const int64_t deadline = bo_clock_ms() + DRAIN_WAIT_MS;
	committer_status st;
	for (;;) {
		committer_status_get(ch->c, &st);
		if (st.state == COMMITTER_RUNNING && st.lag_records == 0)
			break;
		if (st.state == COMMITTER_STOPPED) {
			say("fail committer stopped: %s", st.reason);
			_exit(5);
		}
		if (bo_clock_ms() > deadline) {
			say("fail the committer did not catch up in %d ms: %s at %" PRIu64
			    " of %" PRIu64 " (%s)",
			    DRAIN_WAIT_MS, committer_state_str(st.state), st.applied_seq,
			    st.durable_seq, st.reason);
			_exit(5);
		}
		usleep(2000);
	}
	atomic_store(&watch_done, 1);
	pthread_join(ch->watch_thread, NULL);
	committer_stop(ch->c);
	ch->c = NULL;
	say("drained %" PRIu64 " %" PRIu64 " %" PRIu64, st.applied_seq, st.durable_seq, st.batches);
}

static shard *open_shard(const char *dir)
{
	shard_config cfg;
	tstream_shard_config(&cfg, dir, fake_clock, 0, 1u << 20); /* a few segments over a kill test */
	char err[JOURNAL_ERR_LEN];
	shard_recovery rec;
	shard *s = NULL;
	atomic_store(&clock_ms, 0);
	int rc = shard_open(&cfg, &s, &rec, err, sizeof(err));
	if (rc != 0) {
		say("fail shard_open: %s", err);
		_exit(rc == -ENOSYS || rc == -EPERM ? 77 : 3);
	}
	int64_t now = wall_ms(), recovered = engine_now(shard_engine(s));
	atomic_store(&clock_ms, now > recovered ? now : recovered);
	say("ready %" PRIu64, rec.last_seq);
	return s;
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: committer_child DIR DSN [--seed N] [--request-base N] [--commands N] [--rate N]"
	        " [--status-ms N] [--retry-max-ms N] [--batch-records N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (argc - 3) % 2)
		return usage();
	uint64_t seed = 1, request_base = 0, commands = UINT64_MAX, rate = 0, status_ms = 0,
	         retry_max = 1000, batch_records = 8192;
	for (int i = 3; i < argc; i += 2) {
		uint64_t *v = !strcmp(argv[i], "--seed")            ? &seed
		              : !strcmp(argv[i], "--request-base")  ? &request_base
		              : !strcmp(argv[i], "--commands")      ? &commands
		              : !strcmp(argv[i], "--rate")          ? &rate
		              : !strcmp(argv[i], "--status-ms")     ? &status_ms
		              : !strcmp(argv[i], "--retry-max-ms")  ? &retry_max
		              : !strcmp(argv[i], "--batch-records") ? &batch_records
		                                                    : NULL;
		if (!v || bo_parse_u64(argv[i + 1], 0, UINT64_MAX, 0, v) != 0)
			return usage();
	}
	if (seed == 0 || retry_max < 20 || retry_max > 60000 || status_ms > 60000 ||
	    batch_records == 0 || batch_records > UINT32_MAX)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);

	child ch = {.g = {.rng = seed, .request = request_base}, .status_ms = (uint32_t)status_ms};
	ch.s = open_shard(argv[1]);
	uint8_t missing[TSTREAM_EVENTS];
	recall(&ch, missing);
	committer_config cc;
	committer_config_default(&cc);
	cc.dsn = argv[2];
	cc.retry_min_ms = 20;
	cc.retry_max_ms = (uint32_t)retry_max;
	cc.batch_records = (uint32_t)batch_records;
	cc.on_commit = on_commit;
	char err[256] = "";
	if (shard_start(ch.s) != 0 || committer_start(ch.s, &cc, &ch.c, err, sizeof(err)) != 0) {
		say("fail starting the shard or the committer: %s", err);
		return 3;
	}
	if (pthread_create(&ch.watch_thread, NULL, watch_main, &ch) != 0) {
		say("fail cannot start the watcher thread");
		return 3;
	}
	create_missing_events(&ch, missing);
	load(&ch, commands, rate);
	finish(&ch);
	shard_free(ch.s);
	return 0;
}
