/*
 * audit_test.c — the oversell audit's rules (audit.c) on synthetic
 * outcomes: what a correct system may show must count 0, what no order of
 * application explains must count.
 */
#include <criterion/criterion.h>

#include "perf/loadgen/lg_internal.h"

#define MS 1000000ull
#define S (1000ull * MS)
#define TTL_MS 10000u

static lg_audit_log *logs[2];

static void setup(void)
{
	logs[0] = lg_audit_log_new();
	logs[1] = lg_audit_log_new();
	cr_assert(logs[0] && logs[1]);
}

static void teardown(void)
{
	lg_audit_log_free(logs[0]);
	lg_audit_log_free(logs[1]);
}

TestSuite(lg_audit, .init = setup, .fini = teardown);

static int64_t hold(int log, uint32_t event, uint32_t seat, uint64_t send, uint64_t ack)
{
	uint32_t seats[2] = {seat, seat + 1};
	int64_t i = lg_audit_hold(logs[log], event, seats, 2, TTL_MS, send, ack);
	cr_assert(i >= 0);
	return i;
}

static lg_audit_result check(void)
{
	lg_audit_result r;
	cr_assert_eq(lg_audit_check(logs, 2, &r), 0);
	cr_assert_eq(r.oversell, r.double_booked + r.held_while_held + r.held_when_booked);
	return r;
}

Test(lg_audit, second_hold_while_first_certainly_live_counts)
{
	hold(0, 0, 10, 0, 1 * MS);
	hold(1, 0, 10, 2 * MS, 3 * MS);
	lg_audit_result r = check();
	cr_assert_eq(r.held_while_held, 2, "two seats held twice: %llu",
	             (unsigned long long)r.held_while_held);
	cr_assert_eq(r.holds, 2);
}

Test(lg_audit, release_sent_before_the_second_answer_excuses_it)
{
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	/* The release's answer may come late: its send time is what counts. */
	lg_audit_end(logs[0], h1, LG_RELEASE, LG_NO_ANSWER, 2 * MS, 9 * S);
	hold(1, 0, 10, 3 * MS, 4 * MS);
	cr_assert_eq(check().oversell, 0);
}

Test(lg_audit, release_sent_after_the_second_answer_does_not_excuse_it)
{
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	hold(1, 0, 10, 3 * MS, 4 * MS);
	lg_audit_end(logs[0], h1, LG_RELEASE, LG_OK, 5 * MS, 6 * MS);
	cr_assert_eq(check().held_while_held, 2);
}

Test(lg_audit, expiry_boundary_honours_the_margin)
{
	/* H1 sent at 0 is certainly live until TTL - margin. */
	uint64_t live_until = TTL_MS * MS - LG_AUDIT_MARGIN_NS;
	hold(0, 0, 10, 0, 1 * MS);
	hold(1, 0, 10, live_until - 2 * MS, live_until - 1 * MS);
	cr_assert_eq(check().held_while_held, 2);
}

Test(lg_audit, hold_after_possible_expiry_is_fine)
{
	uint64_t live_until = TTL_MS * MS - LG_AUDIT_MARGIN_NS;
	hold(0, 0, 10, 0, 1 * MS);
	hold(1, 0, 10, live_until - 2 * MS, live_until); /* may be applied at live_until */
	cr_assert_eq(check().oversell, 0);
}

Test(lg_audit, concurrent_holds_count_only_when_no_order_explains_them)
{
	/* Overlapping windows, no release: whichever came first was live. */
	hold(0, 1, 20, 0, 5 * MS);
	hold(1, 1, 20, 1 * MS, 2 * MS);
	cr_assert_eq(check().held_while_held, 2);
}

Test(lg_audit, concurrent_holds_explained_by_a_release_of_the_second)
{
	hold(0, 1, 20, 0, 5 * MS);
	int64_t h2 = hold(1, 1, 20, 1 * MS, 2 * MS);
	/* H2 applied first, released before H1 was applied: possible. */
	lg_audit_end(logs[1], h2, LG_RELEASE, LG_OK, 3 * MS, 4 * MS);
	cr_assert_eq(check().oversell, 0);
}

Test(lg_audit, other_seats_and_events_do_not_interact)
{
	hold(0, 0, 10, 0, 1 * MS);
	hold(1, 0, 12, 2 * MS, 3 * MS); /* seats 12, 13 */
	hold(1, 1, 10, 2 * MS, 3 * MS); /* another event */
	cr_assert_eq(check().oversell, 0);
}

Test(lg_audit, partial_overlap_counts_the_shared_seat_only)
{
	hold(0, 0, 10, 0, 1 * MS);      /* 10, 11 */
	hold(1, 0, 11, 2 * MS, 3 * MS); /* 11, 12 */
	cr_assert_eq(check().held_while_held, 1);
}

Test(lg_audit, seat_booked_twice_counts)
{
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	lg_audit_end(logs[0], h1, LG_CONFIRM, LG_OK, 2 * MS, 3 * MS);
	/* H2 sent while H1's hold may have expired, yet after its booking
	 * could have been applied; confirming it books the seats again. */
	int64_t h2 = hold(1, 0, 10, 1 * MS + TTL_MS * MS, 2 * MS + TTL_MS * MS);
	lg_audit_end(logs[1], h2, LG_CONFIRM, LG_OK, 3 * MS + TTL_MS * MS, 4 * MS + TTL_MS * MS);
	lg_audit_result r = check();
	cr_assert_eq(r.double_booked, 2);
	cr_assert_eq(r.held_when_booked, 2);
	cr_assert_eq(r.bench_booked, 4);
	cr_assert_eq(r.bench_booked_max, 4);
}

Test(lg_audit, hold_on_a_booked_seat_counts)
{
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	lg_audit_end(logs[0], h1, LG_CONFIRM, LG_OK, 2 * MS, 3 * MS);
	hold(1, 0, 10, 20 * S, 20 * S + MS);
	lg_audit_result r = check();
	cr_assert_eq(r.held_when_booked, 2);
	cr_assert_eq(r.held_while_held, 0);
}

Test(lg_audit, late_confirm_of_an_expired_hold_after_a_release_is_fine)
{
	/* H1 expired long ago; H2 held the free seats and released them;
	 * H1's late confirm then books them (the engine books an expired
	 * hold whose seats are free). */
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	int64_t h2 = hold(1, 0, 10, 20 * S, 20 * S + 2 * MS);
	lg_audit_end(logs[1], h2, LG_RELEASE, LG_OK, 20 * S + 3 * MS, 20 * S + 4 * MS);
	lg_audit_end(logs[0], h1, LG_CONFIRM, LG_OK, 20 * S + 5 * MS, 20 * S + 6 * MS);
	lg_audit_result r = check();
	cr_assert_eq(r.oversell, 0);
	cr_assert_eq(r.bench_booked, 2);
}

Test(lg_audit, confirms_without_an_answer_widen_the_booked_range)
{
	int64_t h1 = hold(0, 0, 10, 0, 1 * MS);
	int64_t h2 = hold(0, 0, 20, 0, 1 * MS);
	int64_t h3 = hold(0, 0, 30, 0, 1 * MS);
	lg_audit_end(logs[0], h1, LG_CONFIRM, LG_OK, 2 * MS, 3 * MS);
	lg_audit_end(logs[0], h2, LG_CONFIRM, LG_NO_ANSWER, 2 * MS, 5 * S);
	lg_audit_end(logs[0], h3, LG_CONFIRM, LG_EXPIRED, 2 * MS, 3 * MS);
	lg_audit_result r = check();
	cr_assert_eq(r.bench_booked, 2);
	cr_assert_eq(r.bench_booked_max, 4);
	cr_assert_eq(r.oversell, 0);
}
