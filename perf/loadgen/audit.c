/*
 * audit.c — the oversell audit of boxoffice-bench: did any system hand
 * out a seat twice, judging only by what the workers saw?
 *
 * What a worker sees of a request is when it sent it (send) and when the
 * answer came (ack); the system applied it at some unknown instant in
 * between. A hold applied at a lives until it is released, or until it
 * expires at a + ttl or later (the margin LG_AUDIT_MARGIN_NS absorbs the
 * servers' millisecond clocks and expiry ticks), or for ever once it is
 * confirmed (the workloads never cancel a booking). Three rules, each
 * counting only what NO order of application consistent with the
 * observed times can explain, so that none of them ever counts a correct
 * system (no false positive); the price is that an oversell inside the
 * uncertainty windows goes uncounted (they can miss):
 *
 *  (a) double_booked: a seat confirmed OK by two different holds. Nothing
 *      frees a booked seat, so one of the two confirms sold it again.
 *  (c) held_when_booked: a hold H answered OK on a seat whose booking (a
 *      confirm of another hold K, answered OK) was acknowledged before H
 *      was sent: the seat was booked during all of H's window.
 *  (b) held_while_held: two OK holds X and Y of a seat, where neither
 *      could have been applied first and have ended before the other was
 *      applied. "X first" needs X.send < Y.ack (X applied before Y), and
 *      X ended before Y was applied: a release of X sent before Y.ack
 *      (whatever its answer: a lost answer may hide a release done), or X
 *      expired by then: X.send + ttl - margin <= Y.ack. If neither "X
 *      first" nor "Y first" is possible, both were live at once.
 *
 * Each (hold, seat) counts at most once, (a) per extra confirm of a seat;
 * oversell is the total. The end state (what the system says it booked)
 * is compared in main.c with bench_booked..bench_booked_max.
 *
 * Workers append to their own log without locks; lg_audit_check sorts all
 * (event, seat, hold) entries after the run and checks each seat's holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lg_internal.h"

#define NONE UINT64_MAX

typedef struct au_hold {
	uint64_t send, ack, ttl_ns;
	uint64_t rel_send;    /* earliest release sent; NONE */
	uint64_t confirm_ack; /* earliest confirm answered OK; NONE */
	uint32_t event;
	uint8_t n;
	uint8_t confirm_unknown; /* a confirm got no answer: booked or not */
	uint32_t seat[LG_SEATS_MAX];
} au_hold;

struct lg_audit_log {
	au_hold *h;
	size_t n, cap;
};

lg_audit_log *lg_audit_log_new(void)
{
	return calloc(1, sizeof(lg_audit_log));
}

void lg_audit_log_free(lg_audit_log *log)
{
	if (!log)
		return;
	free(log->h);
	free(log);
}

int64_t lg_audit_hold(lg_audit_log *log, uint32_t event, const uint32_t *seats, unsigned n,
                      uint32_t ttl_ms, uint64_t send_ns, uint64_t ack_ns)
{
	if (n > LG_SEATS_MAX)
		n = LG_SEATS_MAX;
	if (log->n == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 4096;
		au_hold *h = realloc(log->h, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		log->h = h;
		log->cap = cap;
	}
	au_hold *h = &log->h[log->n];
	memset(h, 0, sizeof(*h));
	h->send = send_ns;
	h->ack = ack_ns;
	h->ttl_ns = (uint64_t)ttl_ms * 1000000ull;
	h->rel_send = NONE;
	h->confirm_ack = NONE;
	h->event = event;
	h->n = (uint8_t)n;
	memcpy(h->seat, seats, n * sizeof(*seats));
	return (int64_t)log->n++;
}

void lg_audit_end(lg_audit_log *log, int64_t hold, unsigned op, unsigned outcome, uint64_t send_ns,
                  uint64_t ack_ns)
{
	if (hold < 0 || (size_t)hold >= log->n)
		return;
	au_hold *h = &log->h[hold];
	if (op == LG_RELEASE) {
		if (send_ns < h->rel_send)
			h->rel_send = send_ns;
	} else if (op == LG_CONFIRM) {
		if (outcome == LG_OK && ack_ns < h->confirm_ack)
			h->confirm_ack = ack_ns;
		else if (outcome == LG_NO_ANSWER)
			h->confirm_unknown = 1;
	}
}

typedef struct au_entry {
	uint32_t event, seat;
	const au_hold *h;
} au_entry;

static int cmp_entry(const void *pa, const void *pb)
{
	const au_entry *a = pa, *b = pb;
	if (a->event != b->event)
		return a->event < b->event ? -1 : 1;
	if (a->seat != b->seat)
		return a->seat < b->seat ? -1 : 1;
	if (a->h->send != b->h->send)
		return a->h->send < b->h->send ? -1 : 1;
	return (a->h > b->h) - (a->h < b->h);
}

/* Could x have been applied before y and have ended before y was? */
static int first_possible(const au_hold *x, const au_hold *y)
{
	if (x->send >= y->ack)
		return 0;
	if (x->rel_send < y->ack)
		return 1;
	return x->send + x->ttl_ns <= y->ack + LG_AUDIT_MARGIN_NS;
}

/* Checks one seat's holds g[0..n) (sorted by send); counted[] is scratch. */
static void check_seat(const au_entry *g, size_t n, uint8_t *counted, lg_audit_result *out)
{
	/* (a), and the two earliest bookings for (c). */
	size_t booked = 0;
	uint64_t b1 = NONE, b2 = NONE;
	const au_hold *h1 = NULL;
	for (size_t i = 0; i < n; i++) {
		counted[i] = 0;
		uint64_t c = g[i].h->confirm_ack;
		if (c == NONE)
			continue;
		booked++;
		if (c < b1) {
			b2 = b1;
			b1 = c;
			h1 = g[i].h;
		} else if (c < b2) {
			b2 = c;
		}
	}
	if (booked > 1)
		out->double_booked += booked - 1;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = g[i].h == h1 ? b2 : b1;
		if (b < g[i].h->send) {
			out->held_when_booked++;
			counted[i] = 1;
		}
	}
	/* (b): only holds sent before x certainly expired can overlap it. */
	for (size_t i = 0; i < n; i++) {
		const au_hold *x = g[i].h;
		for (size_t j = i + 1; j < n; j++) {
			const au_hold *y = g[j].h;
			if (y->send + LG_AUDIT_MARGIN_NS >= x->send + x->ttl_ns)
				break;
			if (counted[j] || first_possible(x, y) || first_possible(y, x))
				continue;
			out->held_while_held++;
			counted[j] = 1;
		}
	}
}

int lg_audit_check(lg_audit_log *const *logs, unsigned nlogs, lg_audit_result *out)
{
	memset(out, 0, sizeof(*out));
	size_t total = 0;
	for (unsigned l = 0; l < nlogs; l++) {
		for (size_t i = 0; i < logs[l]->n; i++) {
			const au_hold *h = &logs[l]->h[i];
			total += h->n;
			out->holds++;
			if (h->confirm_ack != NONE)
				out->bench_booked += h->n;
			else if (h->confirm_unknown)
				out->bench_booked_max += h->n;
		}
	}
	out->bench_booked_max += out->bench_booked;
	au_entry *e = malloc((total ? total : 1) * sizeof(*e));
	uint8_t *counted = malloc(total ? total : 1);
	if (!e || !counted) {
		free(e);
		free(counted);
		return -ENOMEM;
	}
	size_t k = 0;
	for (unsigned l = 0; l < nlogs; l++)
		for (size_t i = 0; i < logs[l]->n; i++) {
			const au_hold *h = &logs[l]->h[i];
			for (unsigned s = 0; s < h->n; s++)
				e[k++] = (au_entry){h->event, h->seat[s], h};
		}
	qsort(e, total, sizeof(*e), cmp_entry);
	for (size_t i = 0; i < total;) {
		size_t j = i + 1;
		while (j < total && e[j].event == e[i].event && e[j].seat == e[i].seat)
			j++;
		check_seat(e + i, j - i, counted + i, out);
		i = j;
	}
	out->oversell = out->double_booked + out->held_while_held + out->held_when_booked;
	free(e);
	free(counted);
	return 0;
}
