/*
 * view_threads_test.c — proves readers of the read model never see a torn
 * event while its writer applies changes, and never see an event's
 * sequence go back.
 *
 * How: a writer thread drives an engine with a long random run
 * (tests/support/vdrive.h) and feeds a view batch by batch; two reader
 * threads meanwhile loop over every event id with view_query (QUERY_AVAIL
 * and QUERY_SEATS) and view_image, and check each answer on its own:
 * the seats counted by state sum to the event's seat count; the free
 * seats counted by category sum to the free seats; pools are within
 * their capacity; an image's rows sum to its seats and its states are
 * valid; and per event and reader the sequence never decreases. An image
 * and the availability read right after it that carry the same sequence
 * name one state, so the counts derived from the image's seat states must
 * equal the availability's counts exactly (a copy torn between two
 * batches, or between the seat words and the counters, breaks this).
 * Readers go on until the writer is done and each has made at least 64
 * such paired comparisons (after the writer stops every pair qualifies),
 * so the test waits for events, never for time.
 *
 * Under -fsanitize=thread the same test runs through tests/support/
 * tsan_harness (Criterion cannot start under TSan), and TSan checks that
 * every word shared between writer and readers is accessed without a
 * data race (suite 'tsan'; scripts/test builds build-tsan).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/vdrive.h"
#include "view/view.h"

#if defined(__SANITIZE_THREAD__)
#include "tests/support/tsan_harness.h"
#else
#include <criterion/criterion.h>
#endif

#define READERS 2
#define PAIRS_MIN 64u

typedef struct shared {
	view *v;
	_Atomic int done; /* the writer finished */
} shared;

typedef struct reader {
	shared *sh;
	uint64_t rng;
	uint64_t last_seq[VDRIVE_EVENT_IDS + 1];
	uint32_t seats[VDRIVE_EVENT_IDS + 1]; /* seat count, from an image; 0 = unknown */
	uint64_t reads, pairs;
	char failure[256]; /* the first inconsistency; empty while none */
} reader;

#define FAIL_IF(r, cond, ...)                                                      \
	do {                                                                       \
		if ((cond) && (r)->failure[0] == '\0')                             \
			snprintf((r)->failure, sizeof((r)->failure), __VA_ARGS__); \
	} while (0)

static void check_seq(reader *r, uint64_t id, uint64_t seq)
{
	FAIL_IF(r, seq < r->last_seq[id],
	        "event %" PRIu64 ": seq went back %" PRIu64 " -> %" PRIu64, id, r->last_seq[id],
	        seq);
	r->last_seq[id] = seq;
}

/* One QUERY_AVAIL, checked on its own; false when the event is unknown. */
static bool read_avail(reader *r, uint64_t id, bo_result *res)
{
	bo_cmd q;
	memset(&q, 0, sizeof(q));
	q.op = BO_OP_QUERY_AVAIL;
	q.event_id = id;
	view_query(r->sh->v, &q, res);
	r->reads++;
	if (res->status != BO_OK)
		return false;
	const bo_avail *a = &res->avail;
	uint32_t seats = 0, free_seats = 0;
	for (uint32_t s = 0; s < BO_SEAT_STATE_COUNT; s++)
		seats += a->by_state[s];
	for (uint32_t c = 0; c < BO_CATEGORIES_MAX; c++)
		free_seats += a->free_by_category[c];
	FAIL_IF(r, r->seats[id] && seats != r->seats[id],
	        "event %" PRIu64 " seq %" PRIu64 ": by_state sums to %u of %u seats", id,
	        res->view_seq, seats, r->seats[id]);
	FAIL_IF(r, free_seats != a->by_state[BO_SEAT_FREE],
	        "event %" PRIu64 " seq %" PRIu64 ": free by category %u, free seats %u", id,
	        res->view_seq, free_seats, a->by_state[BO_SEAT_FREE]);
	for (uint32_t p = 0; p < a->pool_count; p++)
		FAIL_IF(r, a->pool_free[p] > a->pool_capacity[p],
		        "event %" PRIu64 ": pool %u free %u of %u", id, p, a->pool_free[p],
		        a->pool_capacity[p]);
	check_seq(r, id, res->view_seq);
	return true;
}

/* The counts an image's seat states imply must be the availability's
 * when both name the same sequence. */
static void compare_pair(reader *r, const bo_event_image *im, const bo_avail *a)
{
	uint32_t by_state[BO_SEAT_STATE_COUNT] = {0}, free_by_cat[BO_CATEGORIES_MAX] = {0};
	for (uint32_t s = 0; s < im->seat_count; s++) {
		by_state[im->states[s]]++;
		free_by_cat[im->categories[s]] += im->states[s] == BO_SEAT_FREE;
	}
	FAIL_IF(r, memcmp(by_state, a->by_state, sizeof(by_state)) != 0,
	        "event %" PRIu64 " seq %" PRIu64 ": image states %u/%u/%u/%u, counts %u/%u/%u/%u",
	        im->event_id, im->seq, by_state[0], by_state[1], by_state[2], by_state[3],
	        a->by_state[0], a->by_state[1], a->by_state[2], a->by_state[3]);
	FAIL_IF(r, memcmp(free_by_cat, a->free_by_category, sizeof(free_by_cat)) != 0,
	        "event %" PRIu64 " seq %" PRIu64
	        ": image and counts disagree on free seats by category",
	        im->event_id, im->seq);
	FAIL_IF(r, memcmp(im->pool_free, a->pool_free, sizeof(im->pool_free)) != 0,
	        "event %" PRIu64 " seq %" PRIu64 ": image and counts disagree on pools",
	        im->event_id, im->seq);
	r->pairs++;
}

/* One image, checked on its own, then paired with an availability. */
static void read_image(reader *r, uint64_t id)
{
	bo_event_image im;
	int rc = view_image(r->sh->v, id, &im);
	r->reads++;
	FAIL_IF(r, rc != 0 && rc != -ENOENT, "view_image = %d", rc);
	if (rc != 0)
		return;
	uint32_t row_seats = 0;
	for (uint32_t i = 0; i < im.row_count; i++)
		row_seats += im.rows[i].seats;
	FAIL_IF(r, row_seats != im.seat_count, "event %" PRIu64 ": rows hold %u of %u seats", id,
	        row_seats, im.seat_count);
	for (uint32_t s = 0; s < im.seat_count; s++)
		FAIL_IF(r, im.states[s] >= BO_SEAT_STATE_COUNT,
		        "event %" PRIu64 " seat %u: state %u", id, s, im.states[s]);
	for (uint32_t p = 0; p < im.pool_count; p++)
		FAIL_IF(r, im.pool_free[p] > im.pool_capacity[p],
		        "event %" PRIu64 ": pool %u over capacity", id, p);
	r->seats[id] = im.seat_count;
	check_seq(r, id, im.seq);
	bo_result res;
	if (read_avail(r, id, &res) && res.view_seq == im.seq)
		compare_pair(r, &im, &res.avail);
	bo_event_image_free(&im);
}

static void read_seats(reader *r, uint64_t id)
{
	if (r->seats[id] == 0)
		return;
	bo_cmd q;
	memset(&q, 0, sizeof(q));
	q.op = BO_OP_QUERY_SEATS;
	q.event_id = id;
	q.seat_count = BO_QUERY_SEATS_MAX;
	r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
	for (uint32_t i = 0; i < q.seat_count; i++)
		q.seats[i] = (uint32_t)((r->rng >> 33) + i) % r->seats[id];
	bo_result res;
	view_query(r->sh->v, &q, &res);
	r->reads++;
	FAIL_IF(r, res.status != BO_OK, "query_seats of event %" PRIu64 ": %s", id,
	        bo_status_str(res.status));
	for (uint32_t i = 0; i < res.seat_count; i++)
		FAIL_IF(r, res.seat_state[i] >= BO_SEAT_STATE_COUNT, "seat state %u",
		        res.seat_state[i]);
	check_seq(r, id, res.view_seq);
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	while (r->failure[0] == '\0' &&
	       (!atomic_load_explicit(&r->sh->done, memory_order_acquire) ||
	        r->pairs < PAIRS_MIN)) {
		for (uint64_t id = 1; id <= VDRIVE_EVENT_IDS; id++) {
			bo_result res;
			read_avail(r, id, &res);
			read_image(r, id);
			read_seats(r, id);
		}
	}
	return NULL;
}

typedef struct writer {
	vdrive *d;
	shared *sh;
	uint32_t batches;
} writer;

static void *writer_main(void *arg)
{
	writer *w = arg;
	for (uint32_t b = 0; b < w->batches; b++)
		vdrive_batch(w->d, 24);
	/* Release: the readers' final pairs see the last batch. */
	atomic_store_explicit(&w->sh->done, 1, memory_order_release);
	return NULL;
}

Test(view_threads, readers_never_see_a_torn_event_or_a_sequence_going_back, .timeout = 600)
{
	const char *env = getenv("BO_VIEW_BATCHES");
	uint32_t batches = env ? (uint32_t)strtoul(env, NULL, 10) : 20000;
	static vdrive d;
	static shared sh;
	static reader readers[READERS];
	vdrive_init(&d, 0x7ea55eedu, NULL, NULL);
	sh.v = d.views[0];
	atomic_store(&sh.done, 0);
	writer w = {.d = &d, .sh = &sh, .batches = batches};
	pthread_t rt[READERS], wt;
	for (int i = 0; i < READERS; i++) {
		memset(&readers[i], 0, sizeof(readers[i]));
		readers[i].sh = &sh;
		readers[i].rng = 1000 + (uint64_t)i;
		cr_assert_eq(pthread_create(&rt[i], NULL, reader_main, &readers[i]), 0);
	}
	cr_assert_eq(pthread_create(&wt, NULL, writer_main, &w), 0);
	cr_assert_eq(pthread_join(wt, NULL), 0);
	for (int i = 0; i < READERS; i++)
		cr_assert_eq(pthread_join(rt[i], NULL), 0);
	view_stats st;
	view_stats_get(sh.v, &st);
	for (int i = 0; i < READERS; i++) {
		cr_log_info("reader %d: %" PRIu64 " reads, %" PRIu64 " image/availability pairs", i,
		            readers[i].reads, readers[i].pairs);
		cr_assert(readers[i].failure[0] == '\0', "reader %d: %s", i, readers[i].failure);
		cr_assert_geq(readers[i].pairs, PAIRS_MIN);
	}
	cr_log_info("writer: %" PRIu64 " batches, %" PRIu64 " commands, %" PRIu64
	            " changes; %" PRIu64 " read retries",
	            d.batches, d.commands, st.changes, st.read_retries);
	cr_assert_eq(d.batches, batches);
	vdrive_free(&d);
}
