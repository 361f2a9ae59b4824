/*
 * view_test.c — proves the read model (view/view.c) says what the engine
 * says, and that its projections rebuild it.
 *
 * How:
 * - random_run: an engine driven by random commands (tests/support/
 *   vdrive.h: creates, holds of every kind, extends, releases, confirms
 *   also after expiry, cancels, blocks, unblocks, replays and conflicts,
 *   queries, clock steps that expire holds) feeds a view batch by batch as
 *   a shard's output would. After every batch, for every event id (unknown
 *   ones included): view_query QUERY_AVAIL equals engine_apply's answer
 *   field by field (view_seq aside), every seat of view_image equals
 *   engine_seat, the image's map equals the engine's, and random
 *   QUERY_SEATS (bad counts, out-of-range and repeated seats, unknown
 *   events) equal engine_apply's answers. The emitted changes are checked
 *   as a subscriber uses them: applied to a per-event mirror that starts
 *   from the map of the event's creation, they must give view_image after
 *   every batch; every emit's prev must be the mirror's seq (no gap),
 *   seq > prev, the event already visible at its new seq during the
 *   emit, and each pool change's pool_free must follow from its cause and
 *   quantity. At the end a second view is loaded from the engine
 *   (view_load): its images equal the first's, and both are then fed the
 *   same further batches and must still match the engine (so view_load
 *   also carried the active pool holds a later confirm depends on).
 * - A targeted batch: a created event, its holds and a second event are
 *   invisible to view_query/view_image/view_seq until view_batch_end; the
 *   emits come one per event in first-touch order, each with its changes
 *   in journal order, prev 0 for new events, seq = its last change's, the
 *   whole batch visible during the emit and the second new event not yet
 *   (creation order); a later release is not seen before its batch ends.
 * - view_load on a non-empty view is -EEXIST; view_new refuses every bad
 *   configuration with -EINVAL; view_memory_bytes matches limits.h's
 *   figure and a default-sized view costs almost no resident memory.
 * Seeds are printed on failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "engine/engine.h"
#include "tests/support/vdrive.h"
#include "view/view.h"

/* ---- The subscriber's mirror ----------------------------------------------- */

typedef struct mirror {
	vdrive *d;
	uint64_t seed;
	bo_event_image ev[VDRIVE_EVENT_IDS + 1]; /* by id; event_id 0 = not created yet */
	uint64_t emits, changes;
	uint64_t late_pool, late_seats; /* confirms of expired holds seen */
} mirror;

/* The image of an event just created: its map, all free, pools whole. */
static void mirror_create(mirror *m, uint64_t id)
{
	const bo_seatmap *map = m->d->maps[id];
	cr_assert_not_null(map, "seed %" PRIu64 ": create of %" PRIu64 " emitted, none applied",
	                   m->seed, id);
	bo_event_image *im = &m->ev[id];
	cr_assert_eq(im->event_id, 0, "seed %" PRIu64 ": event %" PRIu64 " created twice", m->seed,
	             id);
	im->event_id = id;
	im->seat_count = map->seat_count;
	im->row_count = map->row_count;
	im->category_count = map->category_count;
	im->pool_count = map->pool_count;
	im->rows = calloc(map->row_count + 1, sizeof(bo_row_def));
	im->categories = calloc(map->seat_count + 1, 1);
	im->states = calloc(map->seat_count + 1, 1); /* all BO_SEAT_FREE */
	cr_assert(im->rows && im->categories && im->states);
	memcpy(im->rows, map->rows, map->row_count * sizeof(bo_row_def));
	memcpy(im->categories, map->categories, map->seat_count);
	for (uint32_t p = 0; p < map->pool_count; p++)
		im->pool_capacity[p] = im->pool_free[p] = map->pool_capacity[p];
}

/* One pool change: its pool_free must follow from its cause. */
static void mirror_pool(mirror *m, bo_event_image *im, const bo_change *c)
{
	cr_assert_lt(c->pool, im->pool_count, "seed %" PRIu64, m->seed);
	uint32_t before = im->pool_free[c->pool], q = c->quantity;
	switch (c->cause) {
	case BO_CAUSE_HOLD:
		cr_assert_eq(c->pool_free, before - q, "seed %" PRIu64, m->seed);
		break;
	case BO_CAUSE_RELEASE:
	case BO_CAUSE_EXPIRY:
	case BO_CAUSE_CANCEL:
		cr_assert_eq(c->pool_free, before + q, "seed %" PRIu64, m->seed);
		break;
	case BO_CAUSE_CONFIRM:
		cr_assert(c->pool_free == before || c->pool_free == before - q,
		          "seed %" PRIu64 ": confirm of %u moved the pool %u -> %u", m->seed, q,
		          before, c->pool_free);
		m->late_pool += c->pool_free != before;
		break;
	default:
		cr_assert(0, "seed %" PRIu64 ": pool change with cause %s", m->seed,
		          bo_cause_str(c->cause));
	}
	cr_assert_leq(c->pool_free, im->pool_capacity[c->pool]);
	im->pool_free[c->pool] = c->pool_free;
}

static void on_emit(void *ctx, uint64_t event_id, uint64_t prev_seq, uint64_t seq, int64_t at_ms,
                    const bo_change *changes, uint32_t n)
{
	mirror *m = ctx;
	(void)at_ms;
	cr_assert(event_id >= 1 && event_id <= VDRIVE_EVENT_IDS && n >= 1, "seed %" PRIu64,
	          m->seed);
	if (changes[0].cause == BO_CAUSE_CREATE) {
		cr_assert_eq(prev_seq, 0, "seed %" PRIu64 ": a new event starts from 0", m->seed);
		mirror_create(m, event_id);
	}
	bo_event_image *im = &m->ev[event_id];
	cr_assert_eq(im->event_id, event_id, "seed %" PRIu64 ": change of unknown event %" PRIu64,
	             m->seed, event_id);
	cr_assert_eq(prev_seq, im->seq,
	             "seed %" PRIu64 ": event %" PRIu64 " prev %" PRIu64
	             ", the subscriber holds %" PRIu64,
	             m->seed, event_id, prev_seq, im->seq);
	cr_assert_gt(seq, prev_seq, "seed %" PRIu64, m->seed);
	cr_assert_eq(view_seq(m->d->views[0], event_id), seq,
	             "seed %" PRIu64 ": the new state is visible before its emit", m->seed);
	for (uint32_t i = 0; i < n; i++) {
		const bo_change *c = &changes[i];
		cr_assert(c->cause > BO_CAUSE_NONE && c->cause < BO_CAUSE_COUNT);
		cr_assert(c->cause != BO_CAUSE_CREATE || i == 0,
		          "seed %" PRIu64 ": create not first", m->seed);
		if (c->cause == BO_CAUSE_CREATE)
			continue;
		if (c->is_pool) {
			mirror_pool(m, im, c);
			continue;
		}
		cr_assert(c->seat_count >= 1 && c->seat_count <= BO_SEATS_PER_HOLD_MAX);
		for (uint32_t k = 0; k < c->seat_count; k++) {
			cr_assert_lt(c->seats[k], im->seat_count, "seed %" PRIu64, m->seed);
			cr_assert_neq(im->states[c->seats[k]], c->state,
			              "seed %" PRIu64 ": change to the state the seat is in",
			              m->seed);
			m->late_seats += c->cause == BO_CAUSE_CONFIRM && k == 0 &&
			                 im->states[c->seats[k]] == BO_SEAT_FREE;
			im->states[c->seats[k]] = c->state;
		}
	}
	im->seq = seq;
	m->emits++;
	m->changes += n;
}

static void mirror_free(mirror *m)
{
	for (uint32_t i = 0; i <= VDRIVE_EVENT_IDS; i++)
		bo_event_image_free(&m->ev[i]);
}

/* ---- Comparisons ------------------------------------------------------------ */

static void expect_images_equal(uint64_t seed, const char *what, const bo_event_image *a,
                                const bo_event_image *b, int with_seq)
{
	cr_assert_eq(a->event_id, b->event_id, "seed %" PRIu64 ": %s", seed, what);
	uint64_t id = a->event_id;
	cr_assert(a->seat_count == b->seat_count && a->row_count == b->row_count &&
	                  a->category_count == b->category_count && a->pool_count == b->pool_count,
	          "seed %" PRIu64 ": %s: event %" PRIu64 " counts differ", seed, what, id);
	cr_assert_arr_eq(a->rows, b->rows, a->row_count * sizeof(bo_row_def),
	                 "seed %" PRIu64 ": %s", seed, what);
	cr_assert_arr_eq(a->categories, b->categories, a->seat_count, "seed %" PRIu64 ": %s", seed,
	                 what);
	for (uint32_t s = 0; s < a->seat_count; s++)
		cr_assert_eq(a->states[s], b->states[s],
		             "seed %" PRIu64 ": %s: event %" PRIu64 " seat %u: %s vs %s", seed,
		             what, id, s, bo_seat_state_str(a->states[s]),
		             bo_seat_state_str(b->states[s]));
	cr_assert_arr_eq(a->pool_capacity, b->pool_capacity, sizeof(a->pool_capacity),
	                 "seed %" PRIu64, seed);
	cr_assert_arr_eq(a->pool_free, b->pool_free, sizeof(a->pool_free),
	                 "seed %" PRIu64 ": %s: event %" PRIu64 " pools", seed, what, id);
	if (with_seq)
		cr_assert_eq(a->seq, b->seq, "seed %" PRIu64 ": %s: event %" PRIu64 " seq", seed,
		             what, id);
}

/* Every field engine_apply fills; view_seq is the view's own. */
static void expect_results_equal(uint64_t seed, const bo_cmd *c, const bo_result *want,
                                 const bo_result *got)
{
	cr_assert(got->status == want->status && got->detail == want->detail,
	          "seed %" PRIu64 ": %s of event %" PRIu64 ": engine %s/%s, view %s/%s", seed,
	          bo_op_str(c->op), c->event_id, bo_status_str(want->status),
	          bo_detail_str(want->detail), bo_status_str(got->status),
	          bo_detail_str(got->detail));
	bo_result g = *got;
	g.view_seq = 0;
	cr_assert_eq(want->view_seq, 0);
	cr_assert_eq(g.op, want->op);
	cr_assert_eq(g.client_id, want->client_id);
	cr_assert_eq(g.request_id, want->request_id);
	cr_assert_eq(g.event_id, want->event_id);
	cr_assert_eq(g.seat_count, want->seat_count, "seed %" PRIu64, seed);
	cr_assert_arr_eq(g.seats, want->seats, sizeof(g.seats), "seed %" PRIu64, seed);
	cr_assert_arr_eq(g.seat_state, want->seat_state, sizeof(g.seat_state),
	                 "seed %" PRIu64 ": %s of event %" PRIu64 ": seat states differ", seed,
	                 bo_op_str(c->op), c->event_id);
	cr_assert_arr_eq(&g.avail, &want->avail, sizeof(g.avail),
	                 "seed %" PRIu64 ": availability of event %" PRIu64 " differs", seed,
	                 c->event_id);
	cr_assert_arr_eq(&g, want, sizeof(g), "seed %" PRIu64 ": some other field differs", seed);
}

/* The view against the engine, for every id and some random queries. */
static void expect_view_is_engine(vdrive *d, view *v, uint64_t seed)
{
	for (uint64_t id = 0; id <= VDRIVE_EVENT_IDS + 1; id++) {
		bo_cmd q;
		memset(&q, 0, sizeof(q));
		q.op = BO_OP_QUERY_AVAIL;
		q.event_id = id;
		bo_result want, got;
		engine_apply(d->e, &q, &want);
		view_query(v, &q, &got);
		expect_results_equal(seed, &q, &want, &got);
		cr_assert_eq(got.view_seq, view_seq(v, id), "seed %" PRIu64, seed);
		bo_event_image im;
		int rc = view_image(v, id, &im);
		cr_assert_eq(rc, want.status == BO_OK ? 0 : -ENOENT,
		             "seed %" PRIu64 ": view_image = %d", seed, rc);
		if (rc != 0)
			continue;
		cr_assert_eq(im.seq, got.view_seq, "seed %" PRIu64, seed);
		for (uint32_t s = 0; s < im.seat_count; s++) {
			uint8_t st = 0xff;
			uint64_t claim = 0;
			cr_assert_eq(engine_seat(d->e, id, s, &st, &claim), 0);
			cr_assert_eq(im.states[s], st,
			             "seed %" PRIu64 ": event %" PRIu64
			             " seat %u: view %s, engine %s",
			             seed, id, s, bo_seat_state_str(im.states[s]),
			             bo_seat_state_str(st));
		}
		const bo_seatmap *map = d->maps[id];
		cr_assert_not_null(map);
		cr_assert(im.seat_count == map->seat_count && im.row_count == map->row_count &&
		                  im.category_count == map->category_count &&
		                  im.pool_count == map->pool_count,
		          "seed %" PRIu64, seed);
		cr_assert_arr_eq(im.rows, map->rows, map->row_count * sizeof(bo_row_def));
		cr_assert_arr_eq(im.categories, map->categories, map->seat_count);
		bo_event_image_free(&im);
	}
	for (int k = 0; k < 8; k++) {
		bo_cmd q = vdrive_query(d);
		bo_result want, got;
		engine_apply(d->e, &q, &want);
		view_query(v, &q, &got);
		expect_results_equal(seed, &q, &want, &got);
	}
}

/* The mirror rebuilt from the emits against view_image. */
static void expect_mirror_is_view(const mirror *m, const view *v)
{
	for (uint64_t id = 1; id <= VDRIVE_EVENT_IDS; id++) {
		bo_event_image im;
		int rc = view_image(v, id, &im);
		cr_assert_eq(rc == 0, m->ev[id].event_id == id,
		             "seed %" PRIu64 ": event %" PRIu64 " in the view %d, emitted %d",
		             m->seed, id, rc == 0, m->ev[id].event_id == id);
		if (rc == 0)
			expect_images_equal(m->seed, "mirror", &m->ev[id], &im, 1);
		bo_event_image_free(&im);
	}
}

/* ---- Tests ------------------------------------------------------------------ */

static void random_run(uint64_t seed, uint32_t batches)
{
	static mirror m; /* large: off the stack */
	static vdrive d;
	memset(&m, 0, sizeof(m));
	m.seed = seed;
	m.d = &d;
	vdrive_init(&d, seed, on_emit, &m);
	for (uint32_t b = 0; b < batches; b++) {
		vdrive_batch(&d, 24);
		expect_view_is_engine(&d, d.views[0], seed);
		expect_mirror_is_view(&m, d.views[0]);
	}

	/* A view loaded from the final engine: the same availability. Loaded
	 * while pool holds are active, so that confirming them later tests
	 * that view_load carried them. */
	view_stats s0, s1;
	for (uint32_t b = 0; b < 1000; b++) {
		view_stats_get(d.views[0], &s0);
		if (s0.pool_holds > 0)
			break;
		vdrive_batch(&d, 24);
		expect_view_is_engine(&d, d.views[0], seed);
	}
	cr_assert_gt(s0.pool_holds, 0, "seed %" PRIu64 ": no pool hold active in 1000 batches",
	             seed);
	engine_config cfg;
	vdrive_config(&cfg);
	cr_assert_eq(view_new(&cfg, &d.views[1]), 0);
	d.nviews = 2;
	cr_assert_eq(view_load(d.views[1], d.e, d.seq), 0);
	view_stats_get(d.views[0], &s0);
	view_stats_get(d.views[1], &s1);
	cr_assert_eq(s0.events, s1.events, "seed %" PRIu64, seed);
	cr_assert_eq(s0.pool_holds, s1.pool_holds, "seed %" PRIu64 ": active pool holds", seed);
	for (uint64_t id = 1; id <= VDRIVE_EVENT_IDS; id++) {
		bo_event_image a, b;
		int ra = view_image(d.views[0], id, &a), rb = view_image(d.views[1], id, &b);
		cr_assert_eq(ra, rb);
		if (ra == 0) {
			cr_assert_eq(b.seq, d.seq, "a loaded event's seq is the load's");
			expect_images_equal(seed, "loaded", &a, &b, 0);
		}
		bo_event_image_free(&a);
		bo_event_image_free(&b);
	}
	/* Both go on from there alike. */
	for (uint32_t b = 0; b < batches / 4; b++) {
		vdrive_batch(&d, 24);
		expect_view_is_engine(&d, d.views[0], seed);
		expect_view_is_engine(&d, d.views[1], seed);
		expect_mirror_is_view(&m, d.views[0]);
	}
	view_stats_get(d.views[0], &s0);
	cr_log_info("seed %" PRIu64 ": %" PRIu64 " batches, %" PRIu64 " commands, %" PRIu64
	            " expiries, %" PRIu64 " emits of %" PRIu64 " changes, %u events, %u pool holds",
	            seed, d.batches, d.commands, d.expiries, m.emits, m.changes, s0.events,
	            s0.pool_holds);
	char ok[256];
	int len = 0;
	for (int op = 1; op < BO_OP_COUNT; op++)
		len += snprintf(ok + len, sizeof(ok) - (size_t)len, " %s %" PRIu64, bo_op_str(op),
		                d.ok[op]);
	cr_log_info("seed %" PRIu64 ": ok:%s; taken %" PRIu64 ", not found %" PRIu64
	            ", invalid %" PRIu64 ", limit %" PRIu64 ", expired %" PRIu64
	            ", conflict %" PRIu64,
	            seed, ok, d.status[BO_TAKEN], d.status[BO_NOT_FOUND], d.status[BO_INVALID],
	            d.status[BO_LIMIT], d.status[BO_EXPIRED], d.status[BO_CONFLICT]);
	cr_assert_eq(s0.changes, m.changes, "every change applied was emitted");
	/* The paths that need the writer's memory of its pool holds (and the
	 * late confirm of seats) did run. */
	cr_log_info("seed %" PRIu64 ": %" PRIu64 " replays; late confirms: %" PRIu64
	            " pool, %" PRIu64 " seats",
	            seed, d.replays, m.late_pool, m.late_seats);
	cr_assert_gt(d.expiries, 0);
	cr_assert_gt(m.late_pool, 0);
	cr_assert_gt(m.late_seats, 0);
	cr_assert_gt(d.replays, 0);
	mirror_free(&m);
	vdrive_free(&d);
}

Test(view, random_run_equals_engine_and_emits_rebuild_it, .timeout = 600)
{
	const char *env = getenv("BO_VIEW_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : 0x5eed0001u;
	for (uint64_t i = 0; i < 4; i++)
		random_run(seed + i, 1500);
}

/* What one emit carried (the targeted test below keeps them all). */
typedef struct emitted {
	uint64_t event, prev, seq;
	int64_t at_ms;
	uint32_t n;
	bo_change changes[4];
	uint32_t held_visible; /* the event's held seats a reader saw during the emit */
	int other_visible;     /* view_seq of the other event during the emit */
} emitted;

typedef struct emit_log {
	view *v;
	uint32_t n;
	emitted e[4];
} emit_log;

static void log_emit(void *ctx, uint64_t event_id, uint64_t prev_seq, uint64_t seq, int64_t at_ms,
                     const bo_change *changes, uint32_t n)
{
	emit_log *l = ctx;
	cr_assert_lt(l->n, 4u);
	cr_assert_leq(n, 4u);
	emitted *e = &l->e[l->n++];
	*e = (emitted){.event = event_id, .prev = prev_seq, .seq = seq, .at_ms = at_ms, .n = n};
	memcpy(e->changes, changes, n * sizeof(bo_change));
	bo_cmd q;
	memset(&q, 0, sizeof(q));
	q.op = BO_OP_QUERY_AVAIL;
	q.event_id = event_id;
	bo_result r;
	view_query(l->v, &q, &r);
	cr_assert_eq(r.status, BO_OK, "an event is visible when its emit runs");
	e->held_visible = r.avail.by_state[BO_SEAT_HELD];
	e->other_visible = view_seq(l->v, event_id == 1 ? 2 : 1) != 0;
}

static bo_result apply_ok(engine *e, const bo_cmd *c)
{
	bo_result r;
	engine_apply(e, c, &r);
	cr_assert_eq(r.status, BO_OK, "%s: %s", bo_op_str(c->op), bo_detail_str(r.detail));
	return r;
}

/* A batch is invisible until view_batch_end, which then shows each event
 * with all of its changes and emits them, event by event in first-touch
 * order, each event's changes in journal order. */
Test(view, a_batch_is_invisible_until_its_end_and_emits_per_event_in_order)
{
	engine_config cfg;
	vdrive_config(&cfg);
	engine *e = NULL;
	view *v = NULL;
	cr_assert_eq(engine_new(&cfg, &e), 0);
	cr_assert_eq(view_new(&cfg, &v), 0);
	engine_advance(e, 5000, NULL, NULL);
	bo_seatmap *m = bo_seatmap_new(2, 8, 1);
	cr_assert_not_null(m);
	m->category_count = 1;
	m->rows[0] = m->rows[1] = (bo_row_def){.section = 0, .seats = 4};
	m->pool_capacity[0] = 10;
	bo_cmd c[4];
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 4; i++)
		c[i] = (bo_cmd){.client_id = 5,
		                .request_id = 100 + (uint64_t)i,
		                .event_id = 1,
		                .ttl_ms = 60000};
	c[0].op = BO_OP_CREATE_EVENT;
	c[0].map = m;
	c[1].op = BO_OP_HOLD_SEATS;
	c[1].seat_count = 2;
	c[1].seats[0] = 5;
	c[1].seats[1] = 1;
	c[2] = c[0];
	c[2].event_id = 2;
	c[2].request_id = 200;
	c[3].op = BO_OP_HOLD_POOL;
	c[3].quantity = 3;
	emit_log log = {.v = v};

	view_batch_begin(v);
	bo_result r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = apply_ok(e, &c[i]);
		view_add_result(v, &r[i], &c[i], 11 + (uint64_t)i, 5000);
	}
	bo_cmd q;
	memset(&q, 0, sizeof(q));
	q.op = BO_OP_QUERY_AVAIL;
	q.event_id = 1;
	bo_result got;
	view_query(v, &q, &got);
	cr_assert_eq(got.status, BO_NOT_FOUND, "created, but its batch has not ended");
	bo_event_image im;
	cr_assert_eq(view_image(v, 1, &im), -ENOENT);
	cr_assert_eq(view_seq(v, 2), 0);
	view_batch_end(v, log_emit, &log);

	cr_assert_eq(log.n, 2, "one emit per event");
	emitted *a = &log.e[0], *b = &log.e[1];
	cr_assert(a->event == 1 && b->event == 2, "first-touch order");
	cr_assert(a->prev == 0 && a->seq == 14 && b->prev == 0 && b->seq == 13);
	cr_assert_eq(a->at_ms, 5000);
	cr_assert_eq(a->n, 3);
	cr_assert(a->changes[0].cause == BO_CAUSE_CREATE && a->changes[1].cause == BO_CAUSE_HOLD &&
	                  a->changes[2].cause == BO_CAUSE_HOLD,
	          "journal order within the event");
	cr_assert(!a->changes[1].is_pool && a->changes[1].seat_count == 2 &&
	          a->changes[1].seats[0] == 5 && a->changes[1].seats[1] == 1 &&
	          a->changes[1].state == BO_SEAT_HELD && a->changes[1].claim_id == r[1].claim_id);
	cr_assert(a->changes[2].is_pool && a->changes[2].pool == 0 && a->changes[2].quantity == 3 &&
	          a->changes[2].pool_free == 7 && a->changes[2].claim_id == r[3].claim_id);
	cr_assert_eq(a->held_visible, 2, "the whole batch is visible at the emit");
	cr_assert_eq(a->other_visible, 0,
	             "event 2 is shown after event 1's emit, in creation order");
	cr_assert(b->n == 1 && b->changes[0].cause == BO_CAUSE_CREATE && b->other_visible);

	/* The next batch: its release is not seen before view_batch_end. */
	bo_cmd rel = {.op = BO_OP_RELEASE,
	              .client_id = 5,
	              .request_id = 300,
	              .event_id = 1,
	              .claim_id = r[1].claim_id};
	bo_result rr = apply_ok(e, &rel);
	log.n = 0;
	view_batch_begin(v);
	view_add_result(v, &rr, NULL, 15, 5100);
	view_query(v, &q, &got);
	cr_assert(got.status == BO_OK && got.avail.by_state[BO_SEAT_HELD] == 2 &&
	                  got.view_seq == 14,
	          "the old state and its seq until the batch ends");
	view_batch_end(v, log_emit, &log);
	view_query(v, &q, &got);
	cr_assert(got.avail.by_state[BO_SEAT_HELD] == 0 && got.view_seq == 15);
	cr_assert(log.n == 1 && log.e[0].prev == 14 && log.e[0].seq == 15 &&
	          log.e[0].at_ms == 5100);
	cr_assert(log.e[0].changes[0].cause == BO_CAUSE_RELEASE &&
	          log.e[0].changes[0].state == BO_SEAT_FREE);

	view_stats st;
	view_stats_get(v, &st);
	cr_assert(st.batches == 2 && st.changes == 5 && st.events == 2 && st.pool_holds == 1,
	          "stats: %" PRIu64 " batches, %" PRIu64 " changes, %u events, %u pool holds",
	          st.batches, st.changes, st.events, st.pool_holds);
	bo_seatmap_free(m);
	view_free(v);
	engine_free(e);
}

static void expect_config_refused(engine_config cfg, const char *why)
{
	view *v = (view *)0x1;
	cr_assert_eq(view_new(&cfg, &v), -EINVAL, "%s", why);
	cr_assert_null(v, "%s: *out is NULL on failure", why);
}

Test(view, new_refuses_configs_outside_limits)
{
	engine_config ok;
	engine_config_default(&ok);
	engine_config c = ok;
	c.seats_max = 0;
	expect_config_refused(c, "seats_max 0");
	c = ok;
	c.seats_max = BO_SEATS_PER_SHARD_MAX + 1;
	expect_config_refused(c, "seats_max over");
	c = ok;
	c.claims_max = 0;
	expect_config_refused(c, "claims_max 0");
	c = ok;
	c.claims_max = BO_CLAIMS_PER_SHARD_MAX + 1;
	expect_config_refused(c, "claims_max over");
	c = ok;
	c.events_max = 0;
	expect_config_refused(c, "events_max 0");
	c = ok;
	c.events_max = BO_EVENTS_PER_SHARD_MAX + 1;
	expect_config_refused(c, "events_max over");
	c = ok;
	c.idem_capacity = 1000;
	expect_config_refused(c, "idem_capacity not a power of two");
	c = ok;
	c.idem_capacity = BO_IDEM_CAPACITY_MAX * 2;
	expect_config_refused(c, "idem_capacity over");
	view *v = NULL;
	cr_assert_eq(view_new(&ok, &v), 0);
	view_free(v);
}

Test(view, load_into_a_non_empty_view_is_eexist)
{
	static vdrive d;
	vdrive_init(&d, 77, NULL, NULL);
	while (engine_event_count(d.e) == 0)
		vdrive_batch(&d, 24);
	engine_config cfg;
	vdrive_config(&cfg);
	view *v = NULL;
	cr_assert_eq(view_new(&cfg, &v), 0);
	cr_assert_eq(view_load(v, d.e, d.seq), 0);
	cr_assert_eq(view_load(v, d.e, d.seq), -EEXIST, "loaded twice");
	cr_assert_eq(view_load(d.views[0], d.e, d.seq), -EEXIST, "fed by batches, then loaded");
	view_free(v);
	vdrive_free(&d);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert_not_null(f);
	long pages = 0, resident = 0;
	cr_assert_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(view, memory_is_reserved_not_touched)
{
	engine_config cfg;
	engine_config_default(&cfg);
	size_t bytes = view_memory_bytes(&cfg);
	/* limits.h: a state and a category byte and a 4-byte row entry per
	 * seat, at most BO_VIEW_EVENT_BYTES per event, 32 bytes per claim,
	 * plus the fixed batch buffers (under 1 MiB). */
	size_t formula = (size_t)cfg.seats_max * 6 + (size_t)cfg.events_max * BO_VIEW_EVENT_BYTES +
	                 (size_t)cfg.claims_max * 32;
	cr_log_info("view_memory_bytes(defaults) = %zu (%.1f MiB)", bytes, bytes / 1048576.0);
	cr_assert_leq(bytes, formula + (1u << 20));
	cr_assert_geq(bytes, (size_t)cfg.seats_max * 6 + (size_t)cfg.claims_max * 32);
	long before = rss_kib();
	view *v = NULL;
	cr_assert_eq(view_new(&cfg, &v), 0);
	long after = rss_kib();
	cr_log_info("RSS +%ld KiB for a view reserving %zu MiB", after - before, bytes >> 20);
	cr_assert_lt(after - before, 8 * 1024, "a fresh view touches its tables: +%ld KiB",
	             after - before);
	view_free(v);
}
