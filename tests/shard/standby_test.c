/*
 * standby_test.c — the shard's replication roles (shard.h, "Replication
 * roles"): what a hot standby, the sync floor, promotion, fencing and the
 * rejoining cut do, each against a real durable shard.
 *
 *  1. Stream: a primary under the random command stream (support/
 *     stream_gen.h, with queries and clock jumps that make expiries) and a
 *     standby in another directory, fed by a thread that follows the
 *     primary's journal and calls shard_replicate in runs of 1..16 records,
 *     acknowledging by moving the primary's sync floor to the standby's
 *     durable sequence (synchronous replication). Every output the primary
 *     publishes has seq <= the standby's durable sequence when it is seen;
 *     afterwards both engines encode to the same snapshot bytes and both
 *     journals hold the same (seq, timestamp, payload, checksum) records.
 *  2. Sync floor: held at X, no output of a record after X is published
 *     (they are durable), shard_released_seq is X, follower_open_released
 *     stops at X; moved to X + 2, exactly those two come out and the
 *     released follower delivers them; UINT64_MAX releases the rest.
 *  3. Refusals: an older epoch (-ESTALE), a gap or an overlap (-ERANGE), a
 *     wrong previous checksum or an undecodable payload (-EBADMSG), a
 *     tampered result in the middle of a run (-EPROTO) each leave the
 *     standby's last record and engine as they were, and the right records
 *     are accepted afterwards (the engines end equal).
 *  4. Roles: commands submitted to a standby come back BO_NOT_PRIMARY;
 *     shard_promote(2) journals an EPOCH record, the shard then serves,
 *     shard_epoch is 2, and reopening the directory recovers epoch 2.
 *  5. Fencing: results held by the floor come back BO_NOT_PRIMARY after
 *     shard_fence, later commands too; shard_stop on a held floor answers
 *     the held results BO_NOT_PRIMARY and returns.
 *  6. shard_cut_after: a primary with records to >= 100 and snapshots
 *     before and after 60, cut after 60: the snapshots after 60 are gone,
 *     reopening gives last seq 60 and the state of a reference fed the
 *     first 60 records; a cut beyond the end is -ERANGE and changes
 *     nothing; reopened as a standby it replicates 61.. of another
 *     primary's history (an EPOCH record first) and ends equal to it.
 *  7. A writer whose output ring is full of results the floor holds
 *     stops taking input (its input ring stays full), publishes nothing,
 *     and is woken by the floor's move: every result then comes out.
 *  8. journal_cut_after over a journal of several segments: a cut beyond
 *     the end is -ERANGE and changes nothing; a cut after 1234 removes the
 *     later segments, reopens with last seq 1234 and nothing left to cut,
 *     journal_last gives record 1234's content checksum, the same record
 *     appended again gets the same checksum as on the first copy; a cut
 *     after 0 leaves no segment.
 *
 * The journals run without fdatasync (what is tested is the replication
 * logic; durability is still what the shard publishes), on a test clock.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/snapshot.h"
#include "journal/maint.h"
#include "shard/entry.h"
#include "shard/follower.h"
#include "shard/shard.h"
#include "shard/snapfile.h"
#include "tests/support/cmd.h"
#include "tests/support/stream_gen.h"
#include "tests/support/tmpdir.h"

#if defined(__SANITIZE_THREAD__)
/* Criterion cannot start under ThreadSanitizer (see tests/support/
 * tsan_harness.h): this build runs the same tests through that harness,
 * where a test without io_uring says so and ends (as shard_test does). */
#include "tests/support/tsan_harness.h"
#define skip_test(...)                     \
	do {                               \
		cr_log_info(__VA_ARGS__);  \
		exit(0);                   \
	} while (0)
#else
#include <criterion/criterion.h>
#define skip_test(...) cr_skip_test(__VA_ARGS__)
#endif

#define WAIT_MS 30000

static _Atomic int64_t test_clock_ms = 1700000000000;

static int64_t test_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&test_clock_ms);
}

/* One shard in its own directory. */
typedef struct node {
	char dir[256];
	shard *s;
	tstream_gen g;
	shard *watch; /* a standby whose durable seq bounds every output seen */
	uint64_t last_seq;
	uint32_t not_primary; /* results seen with BO_NOT_PRIMARY */
} node;

static void node_config(node *n, shard_config *cfg, int standby)
{
	tstream_shard_config(cfg, n->dir, test_clock, 0, 64u << 10);
	cfg->journal.sync = JOURNAL_SYNC_NONE_UNSAFE;
	cfg->tick_ms = 1;
	cfg->standby = standby;
}

static void node_open(node *n, int standby)
{
	shard_config cfg;
	node_config(n, &cfg, standby);
	char err[JOURNAL_ERR_LEN];
	int rc = shard_open(&cfg, &n->s, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		skip_test("SKIP: io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(shard_start(n->s), 0);
}

static void node_new(node *n, const char *name, int standby, uint64_t seed)
{
	memset(n, 0, sizeof(*n));
	n->g.rng = seed;
	cr_assert_eq(tmpdir_make(n->dir, sizeof(n->dir), name), 0);
	node_open(n, standby);
}

static void node_free(node *n)
{
	shard_free(n->s);
	n->s = NULL;
	tmpdir_remove(n->dir);
}

static void note_out(node *n, const shard_out *o)
{
	if (o->seq > n->last_seq)
		n->last_seq = o->seq;
	if (n->watch && o->seq > 0) {
		uint64_t d = shard_durable_seq(n->watch);
		cr_assert_leq(o->seq, d, "output of seq %" PRIu64 " published, the standby is durable to %" PRIu64,
			      o->seq, d);
	}
	if (o->kind == SHARD_OUT_RESULT) {
		if (o->u.result.status == BO_NOT_PRIMARY)
			n->not_primary++;
		tstream_note(&n->g, &o->u.result);
	}
}

/* Submits m commands and waits for their m results (into res, if given). */
static void submit_wait(node *n, const bo_cmd *c, uint32_t m, bo_result *res)
{
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	ring *out = shard_output(n->s);
	bool in = false;
	uint32_t got = 0;
	while (!in || got < m) {
		if (!in)
			in = shard_submit(n->s, c, NULL, m) == 0;
		uint64_t first;
		uint32_t k = ring_poll(out, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < k; i++) {
			const shard_out *o = ring_slot(out, first + i);
			note_out(n, o);
			if (o->kind == SHARD_OUT_RESULT) {
				if (res && got < m)
					res[got] = o->u.result;
				got++;
			}
		}
		ring_release(out, k);
		if (k == 0) {
			cr_assert_null(shard_failed(n->s), "%s", shard_failed(n->s));
			cr_assert_lt(bo_clock_ms(), deadline, "%u of %u results", got, m);
			ring_wait(out, 1000000);
		}
	}
}

static void create_events(node *n)
{
	for (uint32_t i = 0; i < TSTREAM_EVENTS; i++) {
		bo_seatmap *m = tstream_event_map(i);
		bo_cmd c = tcmd_create(1, ++n->g.request, TSTREAM_EVENT_FIRST + i, m);
		bo_result r;
		submit_wait(n, &c, 1, &r);
		cr_assert_eq(r.status, BO_OK);
		bo_seatmap_free(m);
	}
}

/* `count` random commands in batches of 1..16, some queries, the clock
 * moving 0..400 ms a batch and now and then past every hold. */
static void stream(node *n, uint32_t count)
{
	bo_cmd cmds[16];
	for (uint32_t done = 0; done < count;) {
		uint32_t m = 1 + tstream_rnd(&n->g, 16);
		if (m > count - done)
			m = count - done;
		for (uint32_t i = 0; i < m; i++)
			cmds[i] = tstream_rnd(&n->g, 6) == 0
					  ? tcmd_query_avail(TSTREAM_EVENT_FIRST + tstream_rnd(&n->g, TSTREAM_EVENTS))
					  : tstream_random_cmd(&n->g);
		uint32_t p = tstream_rnd(&n->g, 100);
		atomic_fetch_add(&test_clock_ms, p < 97 ? 100 * (int64_t)tstream_rnd(&n->g, 5) : 20 * 60 * 1000);
		submit_wait(n, cmds, m, NULL);
		done += m;
	}
}

/* ---- Records read from a journal, with their payloads copied ------------- */

typedef struct recs {
	journal_record *r;
	uint32_t n, cap;
} recs;

static void recs_push(recs *v, const journal_record *x)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 64;
		v->r = realloc(v->r, v->cap * sizeof(*v->r));
		cr_assert_not_null(v->r);
	}
	journal_record *y = &v->r[v->n++];
	*y = *x;
	uint8_t *p = malloc(x->payload_len ? x->payload_len : 1);
	cr_assert_not_null(p);
	memcpy(p, x->payload, x->payload_len);
	y->payload = p;
	y->file = NULL;
}

static void recs_free(recs *v)
{
	for (uint32_t i = 0; i < v->n; i++)
		free((void *)v->r[i].payload);
	free(v->r);
	memset(v, 0, sizeof(*v));
}

/* Every record of shard 0's journal in dir. */
static void recs_load(recs *v, const char *dir)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(dir, 0, NULL, &r, err, sizeof(err)), 0, "%s", err);
	journal_record x;
	int rc;
	while ((rc = journal_reader_next(r, &x)) == 1)
		recs_push(v, &x);
	cr_assert_eq(rc, 0, "%s", journal_reader_error(r));
	journal_reader_close(r);
}

static void assert_same_journals(const char *a, const char *b)
{
	recs x = {0}, y = {0};
	recs_load(&x, a);
	recs_load(&y, b);
	cr_assert_eq(x.n, y.n, "%u records against %u", x.n, y.n);
	cr_assert_gt(x.n, 0);
	for (uint32_t i = 0; i < x.n; i++) {
		const journal_record *p = &x.r[i], *q = &y.r[i];
		cr_assert(p->seq == q->seq && p->checksum == q->checksum && p->timestamp_ms == q->timestamp_ms &&
				  p->payload_len == q->payload_len && memcmp(p->payload, q->payload, p->payload_len) == 0,
			  "record %u: seq %" PRIu64 "/%" PRIu64 " checksum %#" PRIx64 "/%#" PRIx64, i, p->seq, q->seq,
			  p->checksum, q->checksum);
	}
	recs_free(&x);
	recs_free(&y);
}

/* Both engines (their shards stopped) encode to the same image at seq. */
static void assert_same_engines(shard *a, shard *b, uint64_t seq, int64_t ts)
{
	uint8_t *x, *y;
	size_t xn, yn;
	cr_assert_eq(snapshot_encode(shard_engine(a), 0, seq, ts, &x, &xn), 0);
	cr_assert_eq(snapshot_encode(shard_engine(b), 0, seq, ts, &y, &yn), 0);
	size_t i = 0;
	while (i < xn && i < yn && x[i] == y[i])
		i++;
	cr_assert(xn == yn && i == xn, "engines differ: %zu and %zu bytes, first difference at byte %zu", xn, yn, i);
	free(x);
	free(y);
}

/* Timestamp of record seq of dir's journal. */
static int64_t record_ts(const char *dir, uint64_t seq)
{
	recs v = {0};
	recs_load(&v, dir);
	int64_t ts = -1;
	for (uint32_t i = 0; i < v.n; i++)
		if (v.r[i].seq == seq)
			ts = v.r[i].timestamp_ms;
	recs_free(&v);
	cr_assert_geq(ts, 0, "no record %" PRIu64, seq);
	return ts;
}

/* Replicates v's records [from, to) (indexes) into s in one run. */
static int replicate_range(shard *s, uint64_t epoch, const recs *v, uint32_t from, uint32_t to, char *err,
			   size_t errlen)
{
	uint64_t prev = from > 0 ? v->r[from - 1].checksum : 0;
	return shard_replicate(s, epoch, prev, v->r + from, to - from, err, errlen);
}

static void wait_durable(shard *s, uint64_t seq)
{
	uint64_t d = 0;
	cr_assert_eq(shard_durable_wait(s, seq - 1, (int64_t)WAIT_MS * 1000000, &d), 1, "durable %" PRIu64 " < %" PRIu64,
		     d, seq);
}

/* ---- The feeder: a standby following a primary's journal ----------------- */

typedef struct feeder {
	shard *from, *to;
	uint64_t epoch, seed;
	int set_floor;
	_Atomic uint64_t target; /* UINT64_MAX until the primary is done */
	int rc;
	uint64_t runs;
	char err[JOURNAL_ERR_LEN];
} feeder;

static void *feeder_main(void *arg)
{
	feeder *fd = arg;
	uint64_t last, prev;
	shard_last_record(fd->to, &last, &prev);
	follower *f;
	fd->rc = follower_open(fd->from, last, &f, fd->err, sizeof(fd->err));
	if (fd->rc != 0)
		return NULL;
	recs run = {0};
	uint64_t rng = fd->seed;
	for (;;) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t m = 1 + (uint32_t)(rng >> 60);
		for (uint32_t k = 0; k < m; k++) {
			journal_record x;
			int rc = follower_next(f, &x, k == 0 ? 5 : 0);
			if (rc < 0) {
				fd->rc = rc;
				snprintf(fd->err, sizeof(fd->err), "follower: %s", follower_error(f));
				goto out;
			}
			if (rc == 0)
				break;
			recs_push(&run, &x);
		}
		if (run.n > 0) {
			fd->rc = shard_replicate(fd->to, fd->epoch, prev, run.r, run.n, fd->err, sizeof(fd->err));
			if (fd->rc != 0)
				goto out;
			uint64_t upto = run.r[run.n - 1].seq, d;
			prev = run.r[run.n - 1].checksum;
			if (shard_durable_wait(fd->to, upto - 1, (int64_t)WAIT_MS * 1000000, &d) != 1) {
				fd->rc = -ETIMEDOUT;
				snprintf(fd->err, sizeof(fd->err), "standby never durable to %" PRIu64, upto);
				goto out;
			}
			if (fd->set_floor)
				shard_set_sync_floor(fd->from, upto); /* the acknowledgement */
			fd->runs++;
			recs_free(&run);
		} else if (follower_position(f) >= atomic_load(&fd->target)) {
			break;
		}
	}
out:
	recs_free(&run);
	follower_close(f);
	return NULL;
}

/* ---- 1. Stream ------------------------------------------------------------ */

Test(standby, follows_a_primary_under_a_random_stream)
{
	const uint64_t seeds[] = {0x5eed1, 0xfeed2, 0xbeef3};
	for (size_t si = 0; si < sizeof(seeds) / sizeof(seeds[0]); si++) {
		node p, sb;
		node_new(&p, "bo-standby-p", 0, seeds[si]);
		node_new(&sb, "bo-standby-s", 1, 1);
		cr_assert(shard_is_standby(sb.s) && !shard_is_standby(p.s));
		shard_set_sync_floor(p.s, 0); /* nothing published until the standby has it */
		p.watch = sb.s;
		feeder fd = {.from = p.s, .to = sb.s, .epoch = 0, .seed = seeds[si], .set_floor = 1};
		atomic_init(&fd.target, UINT64_MAX);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, feeder_main, &fd), 0);
		create_events(&p);
		stream(&p, 600);
		shard_stop(p.s);
		atomic_store(&fd.target, shard_durable_seq(p.s));
		pthread_join(t, NULL);
		cr_assert_eq(fd.rc, 0, "seed %#" PRIx64 ": %s", seeds[si], fd.err);
		cr_assert_gt(fd.runs, 10);
		shard_stop(sb.s);
		const uint64_t S = shard_durable_seq(p.s);
		cr_assert_eq(shard_durable_seq(sb.s), S);
		cr_assert_geq(S, 300, "only %" PRIu64 " records", S);
		uint64_t ls, lc, ps, pc;
		shard_last_record(sb.s, &ls, &lc);
		shard_last_record(p.s, &ps, &pc);
		cr_assert(ls == S && ps == S && lc == pc && lc != 0);
		assert_same_engines(p.s, sb.s, S, record_ts(p.dir, S));
		assert_same_journals(p.dir, sb.dir);
		node_free(&p);
		node_free(&sb);
	}
}

/* ---- 2. Sync floor -------------------------------------------------------- */

/* Outputs published now (waits up to ms for the first, then takes what
 * is there): their seqs into seqs[], the count returned. */
static uint32_t take_outputs(node *n, uint64_t *seqs, uint32_t cap, int64_t ms)
{
	ring *out = shard_output(n->s);
	uint32_t got = 0;
	if (ring_wait(out, ms * 1000000)) {
		uint64_t first;
		uint32_t k = ring_poll(out, SHARD_OUT_POLL_MAX, &first);
		for (uint32_t i = 0; i < k; i++) {
			const shard_out *o = ring_slot(out, first + i);
			note_out(n, o);
			if (o->kind == SHARD_OUT_RESULT && got < cap)
				seqs[got++] = o->seq;
		}
		ring_release(out, k);
	}
	return got;
}

/* Holds one seat each with its own request: one record each, each its
 * own batch (the next is submitted once the last is durable), so that
 * each has outputs of its own to publish. */
static void submit_holds(node *n, uint32_t count, uint32_t first_seat)
{
	const uint64_t base = shard_durable_seq(n->s);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t seat = first_seat + i;
		bo_cmd c = tcmd_hold_seats(10, ++n->g.request, TSTREAM_EVENT_FIRST, &seat, 1, 600000);
		cr_assert_eq(shard_submit(n->s, &c, NULL, 1), 0);
		wait_durable(n->s, base + i + 1);
	}
}

Test(standby, sync_floor_holds_outputs_and_the_released_follower)
{
	node p;
	node_new(&p, "bo-standby-floor", 0, 7);
	create_events(&p);
	const uint64_t X = shard_durable_seq(p.s);
	cr_assert_eq(shard_released_seq(p.s), X);
	shard_set_sync_floor(p.s, X);
	submit_holds(&p, 5, 0);
	wait_durable(p.s, X + 5);
	uint64_t seqs[16];
	cr_assert_eq(take_outputs(&p, seqs, 16, 50), 0, "an output after the floor was published");
	cr_assert_eq(shard_released_seq(p.s), X);
	follower *f;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(follower_open_released(p.s, 0, &f, err, sizeof(err)), 0, "%s", err);
	journal_record x;
	for (uint64_t i = 1; i <= X; i++)
		cr_assert_eq(follower_next(f, &x, 1000), 1, "record %" PRIu64, i);
	cr_assert_eq(follower_next(f, &x, 20), 0, "the released follower passed the floor");

	shard_set_sync_floor(p.s, X + 2);
	uint32_t got = 0;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (got < 2) {
		cr_assert_lt(bo_clock_ms(), deadline);
		got += take_outputs(&p, seqs + got, 16 - got, 100);
	}
	cr_assert(got == 2 && seqs[0] == X + 1 && seqs[1] == X + 2, "got %u: %" PRIu64 " %" PRIu64, got, seqs[0],
		  seqs[1]);
	cr_assert_eq(shard_released_seq(p.s), X + 2);
	cr_assert_eq(take_outputs(&p, seqs, 16, 50), 0, "an output after the moved floor was published");
	cr_assert_eq(follower_next(f, &x, 1000), 1);
	cr_assert_eq(x.seq, X + 1);
	cr_assert_eq(follower_next(f, &x, 1000), 1);
	cr_assert_eq(x.seq, X + 2);
	cr_assert_eq(follower_next(f, &x, 20), 0);
	/* Down again: what was published stays so. */
	shard_set_sync_floor(p.s, X);
	cr_assert_eq(shard_released_seq(p.s), X + 2);

	shard_set_sync_floor(p.s, UINT64_MAX);
	got = 0;
	while (got < 3) {
		cr_assert_lt(bo_clock_ms(), deadline);
		got += take_outputs(&p, seqs + got, 16 - got, 100);
	}
	cr_assert_eq(seqs[2], X + 5);
	cr_assert_eq(follower_next(f, &x, 1000), 1);
	cr_assert_eq(x.seq, X + 3);
	follower_close(f);
	node_free(&p);
}

/* ---- 3. Refusals ---------------------------------------------------------- */

/* The standby's last record and engine image, to compare after a refusal. */
typedef struct standby_state {
	uint64_t seq, sum;
} standby_state;

static void assert_unchanged(shard *s, const standby_state *before, const char *what)
{
	uint64_t seq, sum;
	shard_last_record(s, &seq, &sum);
	cr_assert(seq == before->seq && sum == before->sum, "%s: last record moved to %" PRIu64, what, seq);
	cr_assert_eq(shard_durable_seq(s), before->seq, "%s", what);
	cr_assert_null(shard_failed(s), "%s: %s", what, shard_failed(s));
}

/* Index in v of a COMMAND record with an OK result, after index from. */
static uint32_t find_command(const recs *v, uint32_t from)
{
	for (uint32_t i = from; i < v->n; i++) {
		entry en;
		bo_seatmap *map = NULL;
		int rc = entry_decode(v->r[i].payload, v->r[i].payload_len, &en, &map);
		bo_seatmap_free(map);
		if (rc == 0 && en.kind == ENTRY_COMMAND && en.res.status == BO_OK && en.cmd.op == BO_OP_HOLD_SEATS)
			return i;
	}
	cr_assert(0, "no successful hold in the journal");
	return 0;
}

Test(standby, refusals_leave_the_standby_unchanged)
{
	node p, sb;
	node_new(&p, "bo-standby-rp", 1, 11);
	cr_assert_eq(shard_promote(p.s, 1), 0);
	cr_assert_eq(shard_epoch(p.s), 1);
	create_events(&p);
	const uint64_t before_holds = shard_durable_seq(p.s);
	submit_holds(&p, 20, 0);
	cr_assert_eq(shard_durable_seq(p.s), before_holds + 20);
	uint64_t seqs[32];
	for (uint32_t got = 0; got < 20;)
		got += take_outputs(&p, seqs, 32, 1000);
	shard_stop(p.s);
	recs v = {0};
	recs_load(&v, p.dir);
	cr_assert_geq(v.n, 24);
	node_new(&sb, "bo-standby-rs", 1, 12);
	char err[JOURNAL_ERR_LEN];
	/* Record 1 is the EPOCH record: the standby takes epoch 1. */
	cr_assert_eq(replicate_range(sb.s, 1, &v, 0, 6, err, sizeof(err)), 0, "%s", err);
	wait_durable(sb.s, 6);
	cr_assert_eq(shard_epoch(sb.s), 1);
	standby_state st = {0};
	shard_last_record(sb.s, &st.seq, &st.sum);
	cr_assert_eq(st.seq, 6);

	cr_assert_eq(replicate_range(sb.s, 0, &v, 6, 8, err, sizeof(err)), -ESTALE, "%s", err);
	assert_unchanged(sb.s, &st, "older epoch");
	cr_assert_eq(replicate_range(sb.s, 1, &v, 7, 9, err, sizeof(err)), -ERANGE, "%s", err);
	cr_assert(strstr(err, "gap") != NULL, "%s", err);
	assert_unchanged(sb.s, &st, "gap");
	cr_assert_eq(replicate_range(sb.s, 1, &v, 5, 9, err, sizeof(err)), -ERANGE, "%s", err);
	cr_assert(strstr(err, "overlap") != NULL, "%s", err);
	assert_unchanged(sb.s, &st, "overlap");
	cr_assert_eq(shard_replicate(sb.s, 1, v.r[5].checksum ^ 1, v.r + 6, 2, err, sizeof(err)), -EBADMSG, "%s",
		     err);
	assert_unchanged(sb.s, &st, "prev checksum");

	/* A run whose second record does not decode. */
	journal_record bad[3] = {v.r[6], v.r[7], v.r[8]};
	uint8_t junk[3] = {0x7f, 1, 2};
	bad[1].payload = junk;
	bad[1].payload_len = sizeof(junk);
	cr_assert_eq(shard_replicate(sb.s, 1, v.r[5].checksum, bad, 3, err, sizeof(err)), -EBADMSG, "%s", err);
	assert_unchanged(sb.s, &st, "malformed");

	/* A run whose third record (a hold) carries another result: the
	 * engine ran the first two and the hold, and is rebuilt. */
	uint32_t h = find_command(&v, 8);
	entry en;
	bo_seatmap *map = NULL;
	cr_assert_eq(entry_decode(v.r[h].payload, v.r[h].payload_len, &en, &map), 0);
	en.res.claim_id ^= 0x10000;
	uint8_t tampered[ENTRY_SIZE_NOMAP_MAX];
	int32_t tl = entry_encode_command(&en.cmd, &en.res, tampered, sizeof(tampered));
	cr_assert_gt(tl, 0);
	bo_seatmap_free(map);
	/* Everything from 6 up to the hold, the hold tampered. */
	recs run = {0};
	for (uint32_t i = 6; i <= h; i++)
		recs_push(&run, &v.r[i]);
	free((void *)run.r[run.n - 1].payload);
	uint8_t *tp = malloc((size_t)tl);
	memcpy(tp, tampered, (size_t)tl);
	run.r[run.n - 1].payload = tp;
	run.r[run.n - 1].payload_len = (uint32_t)tl;
	cr_assert_geq(run.n, 2);
	cr_assert_eq(shard_replicate(sb.s, 1, v.r[5].checksum, run.r, run.n, err, sizeof(err)), -EPROTO, "%s", err);
	cr_assert(strstr(err, "differs") != NULL, "%s", err);
	assert_unchanged(sb.s, &st, "tampered result");
	recs_free(&run);

	/* The right records, in two runs. */
	cr_assert_eq(replicate_range(sb.s, 1, &v, 6, 12, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(replicate_range(sb.s, 2, &v, 12, v.n, err, sizeof(err)), 0, "%s", err);
	wait_durable(sb.s, v.r[v.n - 1].seq);
	cr_assert_eq(shard_epoch(sb.s), 1, "a sender's epoch is not journaled");
	shard_stop(sb.s);
	assert_same_engines(p.s, sb.s, v.r[v.n - 1].seq, v.r[v.n - 1].timestamp_ms);
	assert_same_journals(p.dir, sb.dir);
	/* A primary refuses replication. */
	shard_start(p.s);
	cr_assert_eq(replicate_range(p.s, 1, &v, 0, 1, err, sizeof(err)), -EPERM);
	recs_free(&v);
	node_free(&p);
	node_free(&sb);
}

/* ---- 4. Roles: standby, promotion, recovery of the epoch ------------------- */

Test(standby, standby_refuses_commands_promote_serves)
{
	node sb;
	node_new(&sb, "bo-standby-role", 1, 21);
	bo_seatmap *m = tstream_event_map(0);
	bo_cmd c[2] = {tcmd_create(1, 1, TSTREAM_EVENT_FIRST, m), tcmd_query_avail(TSTREAM_EVENT_FIRST)};
	bo_result r[2];
	submit_wait(&sb, c, 2, r);
	cr_assert(r[0].status == BO_NOT_PRIMARY && r[1].status == BO_NOT_PRIMARY && r[0].request_id == 1);
	cr_assert_eq(sb.last_seq, 0, "a refused command has seq 0");
	cr_assert_eq(shard_durable_seq(sb.s), 0, "a standby journals nothing of its own");
	cr_assert_eq(shard_promote(sb.s, 0), -EINVAL);
	cr_assert_eq(shard_promote(sb.s, 2), 0);
	cr_assert_eq(shard_epoch(sb.s), 2);
	cr_assert(!shard_is_standby(sb.s));
	cr_assert_eq(shard_promote(sb.s, 3), -EPERM);
	submit_wait(&sb, c, 1, r);
	cr_assert_eq(r[0].status, BO_OK);
	cr_assert_eq(sb.last_seq, 2, "the EPOCH record is seq 1, the command 2");
	bo_seatmap_free(m);
	shard_free(sb.s);

	recs v = {0};
	recs_load(&v, sb.dir);
	cr_assert_eq(v.n, 2);
	entry en;
	bo_seatmap *map = NULL;
	cr_assert_eq(entry_decode(v.r[0].payload, v.r[0].payload_len, &en, &map), 0);
	cr_assert(en.kind == ENTRY_EPOCH && en.epoch == 2);
	recs_free(&v);

	shard_config cfg;
	node_config(&sb, &cfg, 0);
	char err[JOURNAL_ERR_LEN];
	shard_recovery rec;
	cr_assert_eq(shard_open(&cfg, &sb.s, &rec, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rec.last_seq, 2);
	cr_assert_eq(shard_epoch(sb.s), 2);
	cr_assert(!shard_is_standby(sb.s));
	node_free(&sb);
}

/* ---- 5. Fencing ------------------------------------------------------------ */

Test(standby, fence_answers_not_primary)
{
	node p;
	node_new(&p, "bo-standby-fence", 0, 31);
	create_events(&p);
	const uint64_t X = shard_durable_seq(p.s);
	shard_set_sync_floor(p.s, X);
	submit_holds(&p, 4, 0);
	wait_durable(p.s, X + 4);
	uint64_t seqs[16];
	cr_assert_eq(take_outputs(&p, seqs, 16, 20), 0);
	shard_fence(p.s);
	shard_fence(p.s); /* idempotent */
	uint32_t got = 0;
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	while (got < 4) {
		cr_assert_lt(bo_clock_ms(), deadline);
		got += take_outputs(&p, seqs + got, 16 - got, 100);
	}
	cr_assert_eq(got, 4);
	cr_assert_eq(p.not_primary, 4);
	for (uint32_t i = 0; i < 4; i++)
		cr_assert_eq(seqs[i], 0);
	cr_assert_eq(shard_released_seq(p.s), X, "a fenced shard releases nothing more");
	bo_cmd c = tcmd_query_avail(TSTREAM_EVENT_FIRST);
	bo_result r;
	submit_wait(&p, &c, 1, &r);
	cr_assert_eq(r.status, BO_NOT_PRIMARY);
	node_free(&p);

	/* A stop with the floor holding results: they are answered
	 * not_primary, and the stop returns. */
	node q;
	node_new(&q, "bo-standby-stop", 0, 32);
	create_events(&q);
	shard_set_sync_floor(q.s, shard_durable_seq(q.s));
	submit_holds(&q, 3, 0);
	wait_durable(q.s, shard_released_seq(q.s) + 3);
	shard_stop(q.s);
	got = take_outputs(&q, seqs, 16, 100);
	cr_assert_eq(got, 3);
	cr_assert_eq(q.not_primary, 3);
	node_free(&q);
}

/* ---- 6. Cutting the tail to rejoin ----------------------------------------- */

static int snap_exists(const char *dir, uint64_t seq)
{
	char sd[300], path[600];
	snprintf(sd, sizeof(sd), "%s/shard-0000", dir);
	cr_assert_eq(snapfile_path(path, sizeof(path), sd, seq), 0);
	struct stat st;
	return stat(path, &st) == 0;
}

static void snapshot_now(node *n, uint64_t want)
{
	shard_stats st;
	shard_stats_get(n->s, &st);
	const uint64_t before = st.snapshots;
	shard_snapshot_request(n->s);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	for (shard_stats_get(n->s, &st); st.snapshots <= before; shard_stats_get(n->s, &st)) {
		cr_assert_lt(bo_clock_ms(), deadline, "no snapshot");
		usleep(1000);
	}
	cr_assert(snap_exists(n->dir, want), "no snapshot at %" PRIu64, want);
}

/* Random commands one batch at a time until the journal reaches seq. */
static void stream_to(node *n, uint64_t seq)
{
	while (shard_durable_seq(n->s) < seq)
		stream(n, 4);
}

Test(standby, cut_after_then_rejoin_as_standby)
{
	node p, ref;
	node_new(&p, "bo-standby-cut", 0, 41);
	create_events(&p);
	stream_to(&p, 40);
	snapshot_now(&p, shard_durable_seq(p.s));
	const uint64_t early = shard_durable_seq(p.s);
	stream_to(&p, 80);
	snapshot_now(&p, shard_durable_seq(p.s));
	const uint64_t late = shard_durable_seq(p.s);
	stream_to(&p, 100);
	shard_free(p.s);
	p.s = NULL;
	cr_assert(early <= 60 && late > 60, "snapshots at %" PRIu64 " and %" PRIu64, early, late);
	recs v = {0};
	recs_load(&v, p.dir);
	cr_assert_geq(v.n, 100);

	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(shard_cut_after(p.dir, 0, v.n + 5, err, sizeof(err)), -ERANGE, "%s", err);
	cr_assert(snap_exists(p.dir, late), "a refused cut removed a snapshot");
	cr_assert_eq(shard_cut_after(p.dir, 0, 60, err, sizeof(err)), 0, "%s", err);
	cr_assert(!snap_exists(p.dir, late) && snap_exists(p.dir, early));

	/* The reference: a standby fed the first 60 records. */
	node_new(&ref, "bo-standby-ref", 1, 42);
	cr_assert_eq(replicate_range(ref.s, 0, &v, 0, 60, err, sizeof(err)), 0, "%s", err);
	wait_durable(ref.s, 60);

	shard_config cfg;
	node_config(&p, &cfg, 1);
	shard_recovery rec;
	cr_assert_eq(shard_open(&cfg, &p.s, &rec, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rec.last_seq, 60);
	cr_assert_eq(rec.snapshot_seq, early);
	uint64_t ls, lc;
	shard_last_record(p.s, &ls, &lc);
	cr_assert(ls == 60 && lc == v.r[59].checksum);
	shard_stop(ref.s);
	assert_same_engines(p.s, ref.s, 60, v.r[59].timestamp_ms);

	/* Another history after 60: the reference promoted (EPOCH at 61) and
	 * driven on; the cut copy follows it as a standby. */
	cr_assert_eq(shard_start(ref.s), 0);
	cr_assert_eq(shard_promote(ref.s, 2), 0);
	ref.g = p.g;
	stream(&ref, 60);
	cr_assert_eq(shard_start(p.s), 0);
	cr_assert_eq(shard_replicate(p.s, 1, lc, NULL, 0, err, sizeof(err)), 0, "%s", err);
	feeder fd = {.from = ref.s, .to = p.s, .epoch = 2, .seed = 43};
	atomic_init(&fd.target, UINT64_MAX);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, feeder_main, &fd), 0);
	shard_stop(ref.s);
	atomic_store(&fd.target, shard_durable_seq(ref.s));
	pthread_join(t, NULL);
	cr_assert_eq(fd.rc, 0, "%s", fd.err);
	const uint64_t S = shard_durable_seq(ref.s);
	cr_assert_gt(S, 61);
	cr_assert_eq(shard_epoch(p.s), 2);
	shard_stop(p.s);
	assert_same_engines(p.s, ref.s, S, record_ts(ref.dir, S));
	assert_same_journals(p.dir, ref.dir);
	/* Records of the old term are refused now. */
	cr_assert_eq(shard_start(p.s), 0);
	cr_assert_eq(replicate_range(p.s, 1, &v, 60, 61, err, sizeof(err)), -ESTALE);
	recs_free(&v);
	node_free(&p);
	node_free(&ref);
}

/* ---- 7. A writer blocked by the floor (output ring full) --------------------- */

/* With the floor held, the writer fills the output ring with held results
 * and waits for the floor (not for the disk, not spinning): it stops
 * taking input; moving the floor wakes it and every result comes out. */
Test(standby, a_full_output_ring_waits_for_the_floor)
{
	node p;
	node_new(&p, "bo-standby-full", 0, 51);
	create_events(&p);
	const uint64_t X = shard_durable_seq(p.s);
	shard_set_sync_floor(p.s, X);
	const shard_config *cfg = shard_get_config(p.s);
	const int64_t deadline = bo_clock_ms() + WAIT_MS;
	/* Submit until the input ring stays full for 200 ms: the writer has
	 * filled its output ring with held results and waits for the floor
	 * (what the 200 ms decide is only when to stop submitting). */
	uint32_t total = 0;
	int64_t busy_since = 0;
	for (;;) {
		cr_assert_lt(bo_clock_ms(), deadline, "the writer never blocked (%u submitted)", total);
		uint32_t seat = 0;
		bo_cmd c = tcmd_hold_seats(10 + total % 7, p.g.request + 1, TSTREAM_EVENT_FIRST, &seat, 1, 600000);
		if (shard_submit(p.s, &c, NULL, 1) == 0) {
			p.g.request++;
			total++;
			busy_since = 0;
			continue;
		}
		if (busy_since == 0)
			busy_since = bo_clock_ms();
		else if (bo_clock_ms() - busy_since > 200)
			break;
		usleep(1000);
	}
	cr_assert_gt(total, cfg->in_slots, "%u submitted", total);
	shard_stats st;
	shard_stats_get(p.s, &st);
	cr_assert_eq(st.in_depth, cfg->in_slots);
	uint64_t seqs[SHARD_OUT_POLL_MAX];
	cr_assert_eq(take_outputs(&p, seqs, SHARD_OUT_POLL_MAX, 20), 0, "a held output was published");
	cr_assert_eq(shard_released_seq(p.s), X);
	shard_set_sync_floor(p.s, UINT64_MAX);
	uint32_t got = 0;
	while (got < total) {
		cr_assert_lt(bo_clock_ms(), deadline, "%u of %u results", got, total);
		got += take_outputs(&p, seqs, SHARD_OUT_POLL_MAX, 100);
	}
	cr_assert_eq(shard_released_seq(p.s), X + total);
	node_free(&p);
}

/* ---- 8. journal_cut_after across segments, and the chain point ------------- */

static int count_segments(const char *root)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/shard-0000", root);
	int n = 0;
	uint64_t first;
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += journal_segment_name_parse(de->d_name, &first);
	closedir(d);
	return n;
}

Test(standby, journal_cut_after_removes_later_segments)
{
	char root[256];
	cr_assert_eq(tmpdir_make(root, sizeof(root), "bo-standby-jcut"), 0);
	journal_options opt;
	journal_options_default(&opt);
	opt.sync = JOURNAL_SYNC_NONE_UNSAFE;
	opt.buffer_bytes = 16u << 10;
	opt.segment_bytes = 32u << 10;
	opt.payload_bytes_max = 1024;
	journal *j;
	char err[JOURNAL_ERR_LEN];
	int rc = journal_open(root, 0, &opt, &j, NULL, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM)
		skip_test("SKIP: io_uring refused by the kernel: %s", err);
	cr_assert_eq(rc, 0, "%s", err);
	uint8_t payload[100];
	for (uint32_t i = 1; i <= 2000; i++) {
		memset(payload, (int)(i & 0xff), sizeof(payload));
		cr_assert_eq(journal_append(j, 1000 + i, payload, sizeof(payload), NULL), 0);
		if (i % 7 == 0)
			cr_assert_eq(journal_commit(j), 0);
	}
	uint64_t ls, lc;
	journal_last(j, &ls, &lc);
	cr_assert_eq(journal_close(j, NULL), 0);
	recs before = {0};
	recs_load(&before, root);
	cr_assert_eq(before.n, 2000);
	cr_assert(ls == 2000 && lc == before.r[1999].checksum, "journal_last: %" PRIu64, ls);
	const int segs = count_segments(root);
	cr_assert_geq(segs, 5);

	cr_assert_eq(journal_cut_after(root, 0, 2001, err, sizeof(err)), -ERANGE, "%s", err);
	cr_assert_eq(count_segments(root), segs);
	cr_assert_eq(journal_cut_after(root, 0, 1234, err, sizeof(err)), 0, "%s", err);
	cr_assert_lt(count_segments(root), segs);
	journal_recovery jr;
	cr_assert_eq(journal_open(root, 0, &opt, &j, &jr, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(jr.last_seq, 1234);
	cr_assert_eq(jr.bytes_cut, 0, "the cut left nothing to cut: %s", jr.note);
	journal_last(j, &ls, &lc);
	cr_assert(ls == 1234 && lc == before.r[1233].checksum);
	/* The same record appended again gets the same content checksum. */
	cr_assert_eq(journal_append(j, before.r[1234].timestamp_ms, before.r[1234].payload, 100, NULL), 0);
	journal_last(j, &ls, &lc);
	cr_assert(ls == 1235 && lc == before.r[1234].checksum);
	cr_assert_eq(journal_close(j, NULL), 0);
	recs after = {0};
	recs_load(&after, root);
	cr_assert_eq(after.n, 1235);
	for (uint32_t i = 0; i < after.n; i++)
		cr_assert_eq(after.r[i].checksum, before.r[i].checksum, "record %u", i + 1);
	cr_assert_eq(journal_cut_after(root, 0, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_segments(root), 0);
	recs_free(&before);
	recs_free(&after);
	tmpdir_remove(root);
}
