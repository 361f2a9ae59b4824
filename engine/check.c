/*
 * check.c — engine_check(): the invariants listed in check.h.
 *
 * It proves that the tables are a state the engine could have reached, in
 * the sense that matters: every index the engine will follow is in range,
 * every counter equals what it counts, every cross-reference is mutual, and
 * no assertion of engine.c can fire on any later command. Runs on hostile
 * input, so it reads an index only after checking it, and never asserts on
 * the data. O(state): one pass over each used table (the client table, the
 * bucket index and the event index are scanned whole: they are what a
 * lookup probes) plus hash probes that cost what the engine's own lookups
 * cost.
 *
 * Caches. rowcat.max_run is an upper bound of the longest free run of its
 * category in the row (best-available skips a row below it, and its
 * fallback treats 0 as "none free"): checked >= the true longest run
 * (saturated at 255) and <= the category's seats in the row. rowcat.no_clean
 * bit n-1 says "no block of n here strands nothing": a set bit is checked
 * to be true now (no clean block of n exists), a clear bit says nothing. A
 * run of L free seats holds a clean block of n whenever L - n >= 4, so only
 * a few starts per run are tried: O(seats).
 *
 * Idempotency positions are 32-bit (idem_bucket.pos): while idem_tail <=
 * 2^32 - 1 they are exact and the index is checked exactly (every live slot
 * points at a live entry with its hash, each entry has exactly one slot,
 * stale slots point before the window). Past that, a slot stale for 2^32
 * insertions looks live again; the engine tolerates such ghosts (a ghost
 * never matches a key, or matches it at the right entry), so the check
 * only requires every live entry to be found by the engine's lookup.
 */
#include "check.h"
#include "engine_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                           \
	do {                                                       \
		if (!(cond))                                       \
			return eng_fail(err, errlen, __VA_ARGS__); \
	} while (0)

static int check_scalars(const engine *e, char *err, size_t errlen)
{
	const engine_config *c = &e->cfg;
	CHECK(eng_config_ok(c), "config outside limits.h");
	CHECK(e->now_ms >= 0 && e->now_ms <= ENG_CLOCK_MS_MAX, "clock %" PRId64 " out of range",
	      e->now_ms);
	CHECK(e->seats_used <= c->seats_max && e->rows_used <= c->seats_max &&
	              e->rowcats_used <= c->seats_max,
	      "arena use over seats_max %" PRIu32, c->seats_max);
	CHECK(e->event_count <= c->events_max, "event_count %" PRIu32 " over events_max",
	      e->event_count);
	CHECK(e->claims_fresh <= c->claims_max, "claims_fresh %" PRIu32 " over claims_max",
	      e->claims_fresh);
	CHECK(e->heap_len <= c->claims_max, "heap_len %" PRIu32 " over claims_max", e->heap_len);
	CHECK(e->recycle_head <= e->recycle_tail &&
	              e->recycle_tail - e->recycle_head <= eng_recycle_cap(c),
	      "recycle queue [%" PRIu64 ", %" PRIu64 ") over its capacity", e->recycle_head,
	      e->recycle_tail);
	CHECK(e->idem_head <= e->idem_tail && e->idem_tail - e->idem_head <= c->idem_capacity,
	      "idempotency window [%" PRIu64 ", %" PRIu64 ") over its capacity", e->idem_head,
	      e->idem_tail);
	CHECK(e->event_index_mask + 1ull >= 2ull * c->events_max &&
	              e->clients_mask + 1ull >= 2ull * c->claims_max,
	      "hash tables smaller than twice their bound");
	return 0;
}

static int check_events(const engine *e, char *err, size_t errlen)
{
	uint64_t seat_next = 0, row_next = 0, rc_next = 0;
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		CHECK(ev->id != 0, "event %" PRIu32 " has id 0", i);
		CHECK(ev->seat_base == seat_next && ev->row_base == row_next &&
		              ev->rc_base == rc_next,
		      "event %" PRIu32 " (id %" PRIu64
		      ") does not follow the previous one in the arenas "
		      "(seat_base %" PRIu32 ", row_base %" PRIu32 ", rc_base %" PRIu32 ")",
		      i, ev->id, ev->seat_base, ev->row_base, ev->rc_base);
		CHECK(ev->seat_count <= BO_SEATS_PER_EVENT_MAX &&
		              ev->row_count <= BO_ROWS_PER_EVENT_MAX &&
		              ev->pool_count <= BO_POOLS_PER_EVENT_MAX &&
		              ev->category_count <= BO_CATEGORIES_MAX,
		      "event %" PRIu32 ": counts over limits.h", i);
		CHECK((ev->seat_count > 0) == (ev->row_count > 0) &&
		              ev->row_count <= ev->seat_count && ev->rc_count <= ev->seat_count,
		      "event %" PRIu32 ": %" PRIu32 " rows, %" PRIu32 " rowcats for %" PRIu32
		      " seats",
		      i, ev->row_count, ev->rc_count, ev->seat_count);
		CHECK(ev->seat_count > 0 || ev->pool_count > 0, "event %" PRIu32 " sells nothing",
		      i);
		CHECK(ev->seat_count == 0 || ev->category_count > 0,
		      "event %" PRIu32 ": seats without categories", i);
		for (uint32_t p = 0; p < BO_POOLS_PER_EVENT_MAX; p++) {
			if (p < ev->pool_count)
				CHECK(ev->pool_cap[p] >= 1 &&
				              ev->pool_cap[p] <= BO_POOL_CAPACITY_MAX,
				      "event %" PRIu32 " pool %" PRIu32 ": capacity %" PRIu32, i, p,
				      ev->pool_cap[p]);
			else
				CHECK(ev->pool_cap[p] == 0 && ev->pool_held[p] == 0 &&
				              ev->pool_booked[p] == 0,
				      "event %" PRIu32 ": unused pool %" PRIu32 " not zero", i, p);
		}
		seat_next += ev->seat_count;
		row_next += ev->row_count;
		rc_next += ev->rc_count;
	}
	CHECK(seat_next == e->seats_used && row_next == e->rows_used && rc_next == e->rowcats_used,
	      "events use %" PRIu64 " seats, %" PRIu64 " rows, %" PRIu64
	      " rowcats; arenas say %" PRIu32 ", %" PRIu32 ", %" PRIu32,
	      seat_next, row_next, rc_next, e->seats_used, e->rows_used, e->rowcats_used);

	/* The id index: exactly event_count entries, each event found by the
	 * engine's probe (so ids are distinct), and empty slots left so a
	 * probe for an unknown id ends. */
	uint32_t slots = e->event_index_mask + 1, used = 0;
	for (uint32_t j = 0; j < slots; j++) {
		uint32_t v = e->event_index[j];
		CHECK(v <= e->event_count,
		      "event index slot %" PRIu32 " points at event %" PRIu32 " of %" PRIu32, j, v,
		      e->event_count);
		used += v != 0;
	}
	CHECK(used == e->event_count,
	      "event index holds %" PRIu32 " entries for %" PRIu32 " events", used, e->event_count);
	for (uint32_t i = 0; i < e->event_count; i++) {
		uint64_t id = e->events[i].id;
		uint32_t j = (uint32_t)mix64(id) & e->event_index_mask, probes = 0;
		for (;; j = (j + 1) & e->event_index_mask, probes++) {
			uint32_t v = e->event_index[j];
			CHECK(v != 0 && probes < slots,
			      "event %" PRIu32 " (id %" PRIu64 ") not found by its index", i, id);
			if (e->events[v - 1].id == id)
				break;
		}
		CHECK(e->event_index[j] - 1 == i,
		      "event id %" PRIu64 " belongs to events %" PRIu32 " and %" PRIu32, id,
		      e->event_index[j] - 1, i);
	}
	return 0;
}

typedef struct claim_counts {
	uint32_t held, booked, expired;
} claim_counts;

static int check_claims(const engine *e, claim_counts *n, char *err, size_t errlen)
{
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		CHECK(c->gen != 0, "claim %" PRIu32 " has generation 0", slot);
		CHECK(c->state >= CL_HELD && c->state <= CL_CANCELLED,
		      "claim %" PRIu32 ": state %u", slot, c->state);
		CHECK(c->event < e->event_count, "claim %" PRIu32 ": event %" PRIu32 " of %" PRIu32,
		      slot, c->event, e->event_count);
		CHECK(c->is_pool <= 1 && c->in_recycle <= 1, "claim %" PRIu32 ": flags not 0/1",
		      slot);
		CHECK(c->client != 0, "claim %" PRIu32 " has client 0", slot);
		CHECK(c->payref_len <= BO_PAYREF_LEN_MAX &&
		              (c->state != CL_BOOKED || c->payref_len > 0),
		      "claim %" PRIu32 ": payref length %u", slot, c->payref_len);
		const event *ev = &e->events[c->event];
		if (c->is_pool) {
			CHECK(c->pool < ev->pool_count && c->quantity >= 1 &&
			              c->quantity <= BO_POOL_QTY_PER_HOLD_MAX && c->seat_count == 0,
			      "pool claim %" PRIu32 ": pool %u quantity %" PRIu32 " seats %u", slot,
			      c->pool, c->quantity, c->seat_count);
		} else {
			CHECK(c->seat_count >= 1 && c->seat_count <= BO_SEATS_PER_HOLD_MAX &&
			              c->quantity == 0 && c->pool == 0,
			      "seat claim %" PRIu32 ": %u seats, quantity %" PRIu32, slot,
			      c->seat_count, c->quantity);
			/* Ended claims too: a late confirm frees-checks and books them. */
			for (uint32_t i = 0; i < c->seat_count; i++) {
				CHECK(c->seats[i] < ev->seat_count,
				      "claim %" PRIu32 ": seat %" PRIu32 " of %" PRIu32, slot,
				      c->seats[i], ev->seat_count);
				for (uint32_t j = 0; j < i; j++)
					CHECK(c->seats[i] != c->seats[j],
					      "claim %" PRIu32 " lists seat %" PRIu32 " twice",
					      slot, c->seats[i]);
			}
		}
		CHECK(c->created_ms >= 0 && c->created_ms <= e->now_ms,
		      "claim %" PRIu32 ": created at %" PRId64 ", clock %" PRId64, slot,
		      c->created_ms, e->now_ms);
		CHECK(c->expires_ms >= c->created_ms + (int64_t)BO_TTL_MS_MIN &&
		              c->expires_ms <= c->created_ms + (int64_t)BO_HOLD_LIFETIME_MS_MAX,
		      "claim %" PRIu32 ": expiry %" PRId64 " outside its lifetime from %" PRId64,
		      slot, c->expires_ms, c->created_ms);
		bool live = c->state == CL_HELD || c->state == CL_BOOKED;
		CHECK(c->in_recycle == !live, "claim %" PRIu32 " (state %u) %s the recycle queue",
		      slot, c->state, c->in_recycle ? "is in" : "is not in");
		if (c->state == CL_HELD) {
			CHECK(c->expires_ms > e->now_ms,
			      "hold %" PRIu32 " expired at %" PRId64 " but is still held", slot,
			      c->expires_ms);
			CHECK(c->heap_pos < e->heap_len && e->heap[c->heap_pos] == slot,
			      "hold %" PRIu32 ": heap position %" PRIu32 " does not hold it", slot,
			      c->heap_pos);
			n->held++;
		} else {
			CHECK(c->heap_pos == SLOT_NONE,
			      "claim %" PRIu32 " (state %u) has heap position %" PRIu32, slot,
			      c->state, c->heap_pos);
		}
		n->booked += c->state == CL_BOOKED;
		n->expired += c->state == CL_EXPIRED;
		if (live && !c->is_pool) {
			uint8_t want = c->state == CL_HELD ? BO_SEAT_HELD : BO_SEAT_BOOKED;
			for (uint32_t i = 0; i < c->seat_count; i++) {
				const seat *st = &e->seats[ev->seat_base + c->seats[i]];
				CHECK(st->state == want && st->owner == slot + 1,
				      "claim %" PRIu32 ": seat %" PRIu32 " of event %" PRIu32
				      " is %u owned by %" PRIu32,
				      slot, c->seats[i], c->event, st->state, st->owner);
			}
		}
	}
	return 0;
}

static inline bool seat_is_free(const seat *base, uint32_t i)
{
	return base[i].state == BO_SEAT_FREE;
}

/* engine.h's "strands" rule for a block [s, s+n) in a row [lo, hi). */
static bool block_strands(const seat *base, uint32_t lo, uint32_t hi, uint32_t s, uint32_t n)
{
	if (s > lo && seat_is_free(base, s - 1) && !(s - 1 > lo && seat_is_free(base, s - 2)))
		return true;
	uint32_t t = s + n;
	return t < hi && seat_is_free(base, t) && !(t + 1 < hi && seat_is_free(base, t + 1));
}

/* Bit n-1 set when the run [a, b) of free seats of one category holds a
 * block of n that strands nothing. Starts >= a+2 whose block ends <= b-2
 * never strand (both neighbours on each side are free), so only runs with
 * L - n < 4 need trying, at most four starts each. */
static uint16_t run_clean_mask(const seat *base, uint32_t lo, uint32_t hi, uint32_t a, uint32_t b)
{
	uint32_t len = b - a;
	uint16_t mask = 0;
	for (uint32_t n = 1; n <= BO_SEATS_PER_HOLD_MAX && n <= len; n++) {
		bool clean = len - n >= 4;
		for (uint32_t s = a; !clean && s + n <= b; s++)
			clean = !block_strands(base, lo, hi, s, n);
		if (clean)
			mask |= (uint16_t)(1u << (n - 1));
	}
	return mask;
}

/* What one row's seats say about each category, for its rowcats. */
typedef struct row_tally {
	uint32_t count[BO_CATEGORIES_MAX];   /* seats of the category */
	uint32_t longest[BO_CATEGORIES_MAX]; /* longest run of free seats */
	uint16_t clean[BO_CATEGORIES_MAX];   /* bit n-1: a clean block of n exists */
	uint32_t present;                    /* bit per category with seats */
} row_tally;

/* What one event's seats say, for its counters. */
typedef struct event_tally {
	uint32_t by_state[BO_SEAT_STATE_COUNT];
	uint32_t free_by_cat[BO_CATEGORIES_MAX];
} event_tally;

/* Records the maximal run [a, b) of free seats of one category in the row
 * [lo, hi). */
static void tally_run(row_tally *t, const seat *base, uint32_t lo, uint32_t hi, uint32_t a,
                      uint32_t b)
{
	uint8_t c = base[a].cat;
	if (b - a > t->longest[c])
		t->longest[c] = b - a;
	t->clean[c] |= run_clean_mask(base, lo, hi, a, b);
}

/* Seat k of event i, in row ri: its fields, and its owner, which must be a
 * claim of the matching state listing it when the seat is held or booked,
 * and none otherwise. */
static int check_seat(const engine *e, uint32_t i, uint32_t ri, uint32_t k, char *err,
                      size_t errlen)
{
	const event *ev = &e->events[i];
	const seat *st = &e->seats[ev->seat_base + k];
	CHECK(st->state < BO_SEAT_STATE_COUNT && st->cat < ev->category_count && st->row == ri,
	      "event %" PRIu32 " seat %" PRIu32 ": state %u, category %u, row %u (in row %" PRIu32
	      ")",
	      i, k, st->state, st->cat, st->row, ri);
	if (st->state != BO_SEAT_HELD && st->state != BO_SEAT_BOOKED) {
		CHECK(st->owner == 0, "event %" PRIu32 " seat %" PRIu32 " (%s) has owner %" PRIu32,
		      i, k, bo_seat_state_str(st->state), st->owner);
		return 0;
	}
	CHECK(st->owner >= 1 && st->owner - 1 < e->claims_fresh,
	      "event %" PRIu32 " seat %" PRIu32 ": owner %" PRIu32 " past claims_fresh %" PRIu32, i,
	      k, st->owner, e->claims_fresh);
	const claim *c = &e->claims[st->owner - 1];
	uint8_t want = st->state == BO_SEAT_HELD ? CL_HELD : CL_BOOKED;
	bool listed = false;
	for (uint32_t j = 0; j < c->seat_count && !c->is_pool; j++)
		listed |= c->seats[j] == k;
	CHECK(c->state == want && c->event == i && listed,
	      "event %" PRIu32 " seat %" PRIu32 " (%s): owner claim %" PRIu32
	      " (state %u, event %" PRIu32 ") does not hold it",
	      i, k, bo_seat_state_str(st->state), st->owner - 1, c->state, c->event);
	return 0;
}

/* The seats [lo, hi) of row ri of event i, counted into the row's and the
 * event's tallies. */
static int check_row_seats(const engine *e, uint32_t i, uint32_t ri, uint32_t lo, uint32_t hi,
                           row_tally *rt, event_tally *et, char *err, size_t errlen)
{
	const seat *base = &e->seats[e->events[i].seat_base];
	uint32_t run_start = 0;
	bool in_run = false;
	for (uint32_t k = lo; k < hi; k++) {
		int rc = check_seat(e, i, ri, k, err, errlen);
		if (rc < 0)
			return rc;
		const seat *st = &base[k];
		et->by_state[st->state]++;
		rt->count[st->cat]++;
		rt->present |= 1u << st->cat;
		if (st->state == BO_SEAT_FREE)
			et->free_by_cat[st->cat]++;
		/* Maximal runs of free seats of one category. */
		if (in_run && (st->state != BO_SEAT_FREE || st->cat != base[run_start].cat)) {
			tally_run(rt, base, lo, hi, run_start, k);
			in_run = false;
		}
		if (!in_run && st->state == BO_SEAT_FREE) {
			in_run = true;
			run_start = k;
		}
	}
	if (in_run)
		tally_run(rt, base, lo, hi, run_start, hi);
	return 0;
}

/* The rowcats of row ri of event i (starting at the event's rowcat rc)
 * against what its seats say: one per category present, and caches that
 * hold (see "Caches" above). */
static int check_rowcats(const engine *e, uint32_t i, uint32_t ri, uint32_t rc, const row_tally *t,
                         char *err, size_t errlen)
{
	const event *ev = &e->events[i];
	const row *rw = &e->rows[ev->row_base + ri];
	uint32_t seen = 0;
	for (uint32_t j = 0; j < rw->rc_count; j++) {
		const rowcat *r = &e->rowcats[ev->rc_base + rc + j];
		CHECK(r->cat < BO_CATEGORIES_MAX && (t->present & (1u << r->cat)) &&
		              !(seen & (1u << r->cat)),
		      "event %" PRIu32 " row %" PRIu32 ": rowcat %" PRIu32
		      " of category %u is absent or repeated",
		      i, ri, j, r->cat);
		seen |= 1u << r->cat;
		uint32_t lo_bound = t->longest[r->cat] > 255 ? 255 : t->longest[r->cat];
		uint32_t hi_bound = t->count[r->cat] > 255 ? 255 : t->count[r->cat];
		CHECK(r->max_run >= lo_bound && r->max_run <= hi_bound,
		      "event %" PRIu32 " row %" PRIu32
		      " category %u: max_run %u, longest free run %" PRIu32 ", seats %" PRIu32,
		      i, ri, r->cat, r->max_run, t->longest[r->cat], t->count[r->cat]);
		CHECK((r->no_clean & t->clean[r->cat]) == 0,
		      "event %" PRIu32 " row %" PRIu32
		      " category %u: no_clean %04x but clean blocks exist for %04x",
		      i, ri, r->cat, r->no_clean, t->clean[r->cat]);
	}
	CHECK(seen == t->present,
	      "event %" PRIu32 " row %" PRIu32 ": categories %04" PRIx32
	      " present, rowcats for %04" PRIx32,
	      i, ri, t->present, seen);
	return 0;
}

/* Row ri of event i, whose first seat and rowcat must be s and rc: where
 * it starts, its size and that it fits in the event. */
static int check_row(const engine *e, uint32_t i, uint32_t ri, uint32_t s, uint32_t rc, char *err,
                     size_t errlen)
{
	const event *ev = &e->events[i];
	const row *rw = &e->rows[ev->row_base + ri];
	CHECK(rw->first == s && rw->rc_first == rc,
	      "event %" PRIu32 " row %" PRIu32 ": first seat %" PRIu32 " / rowcat %" PRIu32
	      ", expected %" PRIu32 " / %" PRIu32,
	      i, ri, rw->first, rw->rc_first, s, rc);
	CHECK(rw->len >= 1 && rw->len <= BO_SEATS_PER_ROW_MAX &&
	              rw->section < BO_SECTIONS_PER_EVENT_MAX && rw->rc_count >= 1 &&
	              rw->rc_count <= ev->category_count,
	      "event %" PRIu32 " row %" PRIu32 ": %u seats, section %u, %u categories", i, ri,
	      rw->len, rw->section, rw->rc_count);
	CHECK((uint64_t)s + rw->len <= ev->seat_count &&
	              (uint64_t)rc + rw->rc_count <= ev->rc_count,
	      "event %" PRIu32 " row %" PRIu32 " runs past the event's seats or rowcats", i, ri);
	return 0;
}

/* Every event's rows, their seats and rowcats, and the event's counters. */
static int check_seats(const engine *e, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		event_tally et = {0};
		uint32_t s = 0, rc = 0;
		for (uint32_t ri = 0; ri < ev->row_count; ri++) {
			const row *rw = &e->rows[ev->row_base + ri];
			row_tally rt = {0};
			int r = check_row(e, i, ri, s, rc, err, errlen);
			if (r == 0)
				r = check_row_seats(e, i, ri, s, s + rw->len, &rt, &et, err,
				                    errlen);
			if (r == 0)
				r = check_rowcats(e, i, ri, rc, &rt, err, errlen);
			if (r < 0)
				return r;
			s += rw->len;
			rc += rw->rc_count;
		}
		CHECK(s == ev->seat_count && rc == ev->rc_count,
		      "event %" PRIu32 ": rows hold %" PRIu32 " seats / %" PRIu32
		      " rowcats of %" PRIu32 " / %" PRIu32,
		      i, s, rc, ev->seat_count, ev->rc_count);
		for (uint32_t k = 0; k < BO_SEAT_STATE_COUNT; k++)
			CHECK(ev->by_state[k] == et.by_state[k],
			      "event %" PRIu32 ": by_state[%s] = %" PRIu32 ", seats say %" PRIu32,
			      i, bo_seat_state_str((int)k), ev->by_state[k], et.by_state[k]);
		for (uint32_t k = 0; k < BO_CATEGORIES_MAX; k++)
			CHECK(ev->free_by_cat[k] == et.free_by_cat[k],
			      "event %" PRIu32 ": free_by_cat[%" PRIu32 "] = %" PRIu32
			      ", seats say %" PRIu32,
			      i, k, ev->free_by_cat[k], et.free_by_cat[k]);
	}
	return 0;
}

static int check_heap(const engine *e, const claim_counts *n, char *err, size_t errlen)
{
	for (uint32_t p = 0; p < e->heap_len; p++) {
		uint32_t slot = e->heap[p];
		CHECK(slot < e->claims_fresh,
		      "heap[%" PRIu32 "] = claim %" PRIu32 " past claims_fresh", p, slot);
		CHECK(e->claims[slot].state == CL_HELD && e->claims[slot].heap_pos == p,
		      "heap[%" PRIu32 "] = claim %" PRIu32 " (state %u, heap position %" PRIu32 ")",
		      p, slot, e->claims[slot].state, e->claims[slot].heap_pos);
		if (p > 0)
			CHECK(!eng_heap_less(e, slot, e->heap[(p - 1) / 2]),
			      "heap out of order: claim %" PRIu32 " at %" PRIu32
			      " expires before its parent",
			      slot, p);
	}
	CHECK(n->held == e->heap_len, "%" PRIu32 " holds but %" PRIu32 " heap entries", n->held,
	      e->heap_len);
	return 0;
}

/* Recycle queue. An entry is valid when its slot is in_recycle with the
 * entry's position as ticket; other entries are stale. A slot has at most
 * one valid entry (the newest) and one stale one before it, none while
 * held, at most the stale one while booked: so the queue never outgrows its
 * 2 x claims_max slots (claim_end asserts it) and a taken slot leaves no
 * entry behind. */
static int check_recycle(const engine *e, uint8_t *count, char *err, size_t errlen)
{
	const uint64_t cap = eng_recycle_cap(&e->cfg), head = e->recycle_head,
	               tail = e->recycle_tail;
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (!c->in_recycle)
			continue;
		uint64_t p = eng_window_pos(head, tail, c->ticket);
		CHECK(p < tail && e->recycle[p % cap] == slot,
		      "ended claim %" PRIu32 ": no recycle entry at its ticket %" PRIu32, slot,
		      c->ticket);
	}
	for (uint64_t pos = head; pos < tail; pos++) {
		uint32_t slot = e->recycle[pos % cap];
		CHECK(slot < e->claims_fresh,
		      "recycle entry %" PRIu64 " = claim %" PRIu32 " past claims_fresh", pos, slot);
		CHECK(++count[slot] <= 2, "claim %" PRIu32 " has more than two recycle entries",
		      slot);
		const claim *c = &e->claims[slot];
		if (c->in_recycle && c->ticket != (uint32_t)pos)
			CHECK(pos < eng_window_pos(head, tail, c->ticket),
			      "stale recycle entry %" PRIu64 " of claim %" PRIu32
			      " after its valid one",
			      pos, slot);
	}
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		uint8_t st = e->claims[slot].state;
		CHECK(!(st == CL_HELD && count[slot] > 0) && !(st == CL_BOOKED && count[slot] > 1),
		      "live claim %" PRIu32 " has %u recycle entries", slot, count[slot]);
	}
	return 0;
}

/* Client table: open addressing with linear probing and no tombstones, so
 * a key is found iff every slot from its home to it is occupied. Counts
 * must equal the holds per client (a duplicate key would keep a count no
 * hold matches). */
static int check_clients(const engine *e, uint8_t *count, char *err, size_t errlen)
{
	const uint32_t size = e->clients_mask + 1;
	uint32_t empty_at = UINT32_MAX;
	for (uint32_t i = 0; i < size; i++) {
		const client_slot *cs = &e->clients[i];
		if (cs->client == 0) {
			CHECK(cs->holds == 0,
			      "empty client slot %" PRIu32 " counts %" PRIu32 " holds", i,
			      cs->holds);
			empty_at = i;
			continue;
		}
		CHECK(cs->holds >= 1 && cs->holds <= BO_HOLDS_PER_CLIENT_MAX,
		      "client %" PRIu64 " (slot %" PRIu32 ") counts %" PRIu32 " holds", cs->client,
		      i, cs->holds);
	}
	CHECK(empty_at != UINT32_MAX, "client table full");
	/* Occupied run lengths, scanning a full lap from an empty slot. */
	uint32_t run = 0;
	for (uint32_t k = 1; k <= size; k++) {
		uint32_t i = (empty_at + k) & e->clients_mask;
		const client_slot *cs = &e->clients[i];
		if (cs->client == 0) {
			run = 0;
			continue;
		}
		run++;
		uint32_t home = (uint32_t)mix64(cs->client) & e->clients_mask;
		CHECK(((i - home) & e->clients_mask) < run,
		      "client %" PRIu64 " at slot %" PRIu32
		      " is not reachable from its home %" PRIu32,
		      cs->client, i, home);
	}
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (c->state != CL_HELD)
			continue;
		uint32_t i = (uint32_t)mix64(c->client) & e->clients_mask;
		while (e->clients[i].client != c->client && e->clients[i].client != 0)
			i = (i + 1) & e->clients_mask; /* ends: the table has an empty slot */
		CHECK(e->clients[i].client == c->client,
		      "hold %" PRIu32 ": client %" PRIu64 " not in the client table", slot,
		      c->client);
		if (count[i] < UINT8_MAX)
			count[i]++;
	}
	for (uint32_t i = 0; i < size; i++)
		CHECK(count[i] == e->clients[i].holds,
		      "client slot %" PRIu32 " (client %" PRIu64 ") counts %" PRIu32
		      " holds, claims say %u",
		      i, e->clients[i].client, e->clients[i].holds, count[i]);
	return 0;
}

static int check_pools(const engine *e, uint64_t *sum, char *err, size_t errlen)
{
	/* sum[(event * POOLS + pool) * 2 + booked] */
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (!c->is_pool || (c->state != CL_HELD && c->state != CL_BOOKED))
			continue;
		sum[((uint64_t)c->event * BO_POOLS_PER_EVENT_MAX + c->pool) * 2 +
		    (c->state == CL_BOOKED)] += c->quantity;
	}
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		for (uint32_t p = 0; p < ev->pool_count; p++) {
			const uint64_t *s = &sum[((uint64_t)i * BO_POOLS_PER_EVENT_MAX + p) * 2];
			CHECK(ev->pool_held[p] == s[0] && ev->pool_booked[p] == s[1],
			      "event %" PRIu32 " pool %" PRIu32 ": held %" PRIu32 " booked %" PRIu32
			      ", claims say %" PRIu64 " / %" PRIu64,
			      i, p, ev->pool_held[p], ev->pool_booked[p], s[0], s[1]);
			CHECK(s[0] + s[1] <= ev->pool_cap[p],
			      "event %" PRIu32 " pool %" PRIu32 " oversold: %" PRIu64
			      " of %" PRIu32,
			      i, p, s[0] + s[1], ev->pool_cap[p]);
		}
	}
	return 0;
}

static int check_idem(const engine *e, uint8_t *refs, char *err, size_t errlen)
{
	const uint64_t head = e->idem_head, tail = e->idem_tail, mask = e->cfg.idem_capacity - 1;
	const bool exact = tail <= UINT32_MAX; /* see "Idempotency positions" above */
	int64_t prev_at = 0;
	for (uint64_t pos = head; pos < tail; pos++) {
		const idem_entry *en = &e->idem[pos & mask];
		CHECK(en->client != 0 && bo_op_mutates(en->op) && en->status < BO_STATUS_COUNT &&
		              en->detail < BO_D_COUNT && en->seat_count <= BO_SEATS_PER_HOLD_MAX,
		      "idempotency entry %" PRIu64 ": client %" PRIu64
		      " op %u status %u detail %u seats %u",
		      pos, en->client, en->op, en->status, en->detail, en->seat_count);
		CHECK(en->at_ms >= prev_at && en->at_ms <= e->now_ms,
		      "idempotency entry %" PRIu64 " at %" PRId64
		      ": out of time order (clock %" PRId64 ")",
		      pos, en->at_ms, e->now_ms);
		if (pos == head)
			CHECK(e->now_ms - en->at_ms <= (int64_t)BO_IDEM_WINDOW_MS,
			      "idempotency entry %" PRIu64 " at %" PRId64
			      " is older than the window",
			      pos, en->at_ms);
		prev_at = en->at_ms;
	}
	const uint32_t buckets = e->idem_index_mask + 1;
	uint64_t live_slots = 0;
	for (uint32_t b = 0; b < buckets; b++) {
		const idem_bucket *bk = &e->idem_index[b];
		CHECK(bk->spill <= 1, "bucket %" PRIu32 ": spill %" PRIu32, b, bk->spill);
		for (uint32_t i = 0; i < IDEM_SLOTS; i++) {
			uint32_t p1 = bk->pos[i];
			if (!idem_live(e, p1)) {
				CHECK(!exact || p1 == 0 || p1 - 1 < head,
				      "bucket %" PRIu32 " slot %" PRIu32 ": position %" PRIu32
				      " is past the window [%" PRIu64 ", %" PRIu64 ")",
				      b, i, p1 - 1, head, tail);
				continue;
			}
			live_slots++;
			if (!exact)
				continue;
			uint64_t pos = eng_window_pos(head, tail, p1 - 1);
			const idem_entry *en = &e->idem[pos & mask];
			CHECK(idem_hash(en->client, en->request) == bk->hash[i],
			      "bucket %" PRIu32 " slot %" PRIu32 ": hash %08" PRIx32
			      " but entry %" PRIu64 " hashes else",
			      b, i, bk->hash[i], pos);
			CHECK(refs[pos - head]++ == 0,
			      "idempotency entry %" PRIu64 " is in the index twice", pos);
		}
	}
	/* idem_store needs a non-live slot somewhere. */
	CHECK(live_slots < (uint64_t)buckets * IDEM_SLOTS, "idempotency index full");
	for (uint64_t pos = head; pos < tail; pos++) {
		/* Past 2^32 the engine stores position 2^32-1 (mod 2^32) as 0,
		 * "never used": such an entry is unreachable by design. */
		if (!exact && (uint32_t)pos == UINT32_MAX)
			continue;
		const idem_entry *en = &e->idem[pos & mask];
		CHECK(!exact || refs[pos - head] == 1,
		      "idempotency entry %" PRIu64 " is not in the index", pos);
		CHECK(eng_idem_find(e, en->client, en->request) == pos,
		      "idempotency entry %" PRIu64 " (client %" PRIu64 ", request %" PRIu64
		      ") is not found by lookup",
		      pos, en->client, en->request);
	}
	return 0;
}

int engine_check(const engine *e, char *err, size_t errlen)
{
	assert(e);
	if (err && errlen)
		err[0] = '\0';
	int rc = check_scalars(e, err, errlen);
	if (rc == 0)
		rc = check_events(e, err, errlen);
	claim_counts n = {0};
	if (rc == 0)
		rc = check_claims(e, &n, err, errlen);
	if (rc == 0)
		rc = check_seats(e, err, errlen);
	if (rc == 0)
		rc = check_heap(e, &n, err, errlen);
	if (rc < 0)
		return rc;

	/* Scratch for the recounts, sized by the state (the client table is
	 * scanned anyway). */
	uint8_t *recycle_count = calloc(e->claims_fresh + 1u, 1);
	uint8_t *client_count = calloc(e->clients_mask + 1ull, 1);
	uint8_t *idem_refs = calloc(e->idem_tail - e->idem_head + 1, 1);
	uint64_t *pool_sum =
	        calloc((size_t)e->event_count * BO_POOLS_PER_EVENT_MAX * 2 + 1, sizeof(uint64_t));
	if (!recycle_count || !client_count || !idem_refs || !pool_sum) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory for the check");
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = check_recycle(e, recycle_count, err, errlen);
	if (rc == 0)
		rc = check_clients(e, client_count, err, errlen);
	if (rc == 0)
		rc = check_pools(e, pool_sum, err, errlen);
	if (rc == 0)
		rc = check_idem(e, idem_refs, err, errlen);
	free(recycle_count);
	free(client_count);
	free(idem_refs);
	free(pool_sum);
	if (rc < 0)
		return rc;
	CHECK(e->holds_live == n.held, "holds_live %" PRIu32 ", claims say %" PRIu32, e->holds_live,
	      n.held);
	CHECK(e->bookings_live == n.booked, "bookings_live %" PRIu32 ", claims say %" PRIu32,
	      e->bookings_live, n.booked);
	CHECK(e->expired_total >= n.expired,
	      "expired_total %" PRIu64 " below the %" PRIu32 " expired claims", e->expired_total,
	      n.expired);
	return 0;
}
