/*
 * throttle.c — per-event token buckets (see throttle.h).
 *
 * THE BUCKET: GCRA. A token bucket of size `burst` refilled at `rate` per
 * second is kept as one number, tat (the "theoretical arrival time", ns):
 * the instant at which the bucket will be full again. With the interval
 * T = ceil(1e9 / rate) ns and the tolerance tau = (burst - 1) * T:
 *
 *   take at now:  base = max(tat, now)
 *                 admitted  iff base - now <= tau;  then tat = base + T
 *                 refused   otherwise; tat unchanged; a token is due at
 *                           base - tau, i.e. in (base - tau - now) ns
 *
 * The tokens left are burst - (base - now) / T, so this is exactly the
 * bucket, with no floating point and no refill step, and a refusal changes
 * nothing (a storm of refused takes cannot push the hot event's next
 * admission further away). T is rounded up: the rate admitted is never
 * above the one configured. tat <= now means the bucket is full: such a
 * slot holds no information and may be reused by another event.
 *
 * THE TABLE: 2^k slots split into GW_THROTTLE_STRIPES stripes, each with a
 * mutex of its own (the request threads of nng and HTTP take at once; one
 * hot event serialises its own takers, as any exact bucket must, and
 * nobody else's). An event hashes to a stripe and a home slot in it and
 * looks at GW_THROTTLE_PROBE slots from there (wrapping inside the
 * stripe): its own, else the first never-used or full-and-never-refused
 * slot, else a full slot whose event was refused (its /metrics counts are
 * lost: the last resort), else the stripe's overflow bucket (throttle.h,
 * TABLE FULL). Slots are never emptied, only handed over, so a lookup may
 * stop at the first never-used slot. All of it was allocated by
 * gw_throttle_new.
 */
#include "throttle.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SEC 1000000000ll
#define NS_PER_MS 1000000ll
/* Largest events_max: 2^21 slots of 40 bytes, 80 MiB. */
#define EVENTS_MAX_MAX (1u << 20)

_Static_assert((GW_THROTTLE_STRIPES & (GW_THROTTLE_STRIPES - 1)) == 0, "stripes: a power of two");
_Static_assert((GW_THROTTLE_PROBE & (GW_THROTTLE_PROBE - 1)) == 0, "probe: a power of two");
/* tau + T + now stay far below INT64_MAX: at most 1e7 * 1e9 = 1e16 ns. */
_Static_assert(NS_PER_SEC * GW_THROTTLE_BURST_MAX < INT64_MAX / 4,
               "bucket spans fit int64");

typedef struct tslot {
	uint64_t event;    /* the event (when used) */
	int64_t tat_ns;    /* GCRA: when the bucket is full again */
	uint64_t admitted; /* takes of this event since it got the slot */
	uint64_t refused;
	uint32_t used; /* 0: never used (ends every lookup) */
} tslot;

typedef struct stripe {
	pthread_mutex_t lock; /* guards everything below and the stripe's slots */
	tslot *slots;         /* per_stripe slots */
	int64_t overflow_tat_ns;
	uint64_t admitted, refused;                   /* all takes of the stripe */
	uint64_t overflow_admitted, overflow_refused; /* ... through the overflow bucket */
	uint64_t reused;
} __attribute__((aligned(64))) stripe; /* one lock per cache line */

struct gw_throttle {
	int64_t interval_ns;  /* T */
	int64_t tolerance_ns; /* tau */
	uint32_t rate, burst;
	uint32_t per_stripe; /* slots per stripe, a power of two >= GW_THROTTLE_PROBE */
	tslot *slots;
	stripe stripes[GW_THROTTLE_STRIPES];
};

int gw_throttle_new(uint32_t rate, uint32_t burst, uint32_t events_max, gw_throttle **out)
{
	*out = NULL;
	if (rate == 0 || rate > GW_THROTTLE_RATE_MAX || burst == 0 ||
	    burst > GW_THROTTLE_BURST_MAX || events_max == 0 || events_max > EVENTS_MAX_MAX)
		return -EINVAL;
	uint32_t slots = GW_THROTTLE_STRIPES * GW_THROTTLE_PROBE;
	while (slots < 2 * events_max)
		slots *= 2;
	gw_throttle *t = aligned_alloc(64, sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	t->slots = calloc(slots, sizeof(tslot));
	if (!t->slots) {
		free(t);
		return -ENOMEM;
	}
	t->rate = rate;
	t->burst = burst;
	t->interval_ns = (NS_PER_SEC + rate - 1) / rate;
	t->tolerance_ns = (int64_t)(burst - 1) * t->interval_ns;
	t->per_stripe = slots / GW_THROTTLE_STRIPES;
	for (uint32_t i = 0; i < GW_THROTTLE_STRIPES; i++) {
		pthread_mutex_init(&t->stripes[i].lock, NULL);
		t->stripes[i].slots = t->slots + (size_t)i * t->per_stripe;
	}
	*out = t;
	return 0;
}

void gw_throttle_free(gw_throttle *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < GW_THROTTLE_STRIPES; i++)
		pthread_mutex_destroy(&t->stripes[i].lock);
	free(t->slots);
	free(t);
}

/* splitmix64's finaliser: event ids are often consecutive, and the low
 * bits pick the stripe. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* GCRA on *tat_ns. Returns 0 (admitted, *tat_ns moved on) or the ns until
 * a token is due (> 0; nothing changed). */
static int64_t gcra(const gw_throttle *t, int64_t *tat_ns, int64_t now_ns)
{
	int64_t base = *tat_ns > now_ns ? *tat_ns : now_ns;
	if (base - now_ns > t->tolerance_ns) {
		/* <= T when now_ns never goes back; request threads read the
		 * clock before taking, so another may have taken with a later
		 * now (a few µs): the caller clamps the hint. */
		int64_t wait = base - t->tolerance_ns - now_ns;
		assert(wait > 0);
		return wait;
	}
	*tat_ns = base + t->interval_ns;
	return 0;
}

/* The slot of event in stripe s at now (lock held): its own, or one handed
 * to it (see the file's head), or NULL (the overflow bucket). */
static tslot *slot_find(gw_throttle *t, stripe *s, uint64_t home, uint64_t event, int64_t now_ns)
{
	tslot *free_slot = NULL, *stale = NULL;
	uint32_t mask = t->per_stripe - 1;
	for (uint32_t i = 0; i < GW_THROTTLE_PROBE; i++) {
		tslot *sl = &s->slots[(home + i) & mask];
		if (!sl->used) {
			if (!free_slot)
				free_slot = sl;
			break; /* slots are never emptied: the event is not further on */
		}
		if (sl->event == event)
			return sl;
		if (sl->tat_ns <= now_ns) { /* full again: nothing to remember */
			if (sl->refused == 0 && !free_slot)
				free_slot = sl;
			else if (sl->refused != 0 && !stale)
				stale = sl;
		}
	}
	tslot *sl = free_slot ? free_slot : stale;
	if (!sl)
		return NULL;
	if (sl->used)
		s->reused++;
	*sl = (tslot){.event = event, .tat_ns = now_ns, .used = 1};
	return sl;
}

uint32_t gw_throttle_take(gw_throttle *t, uint64_t event_id, int64_t now_ns)
{
	uint64_t h = mix(event_id);
	stripe *s = &t->stripes[h & (GW_THROTTLE_STRIPES - 1)];
	pthread_mutex_lock(&s->lock);
	tslot *sl = slot_find(t, s, h / GW_THROTTLE_STRIPES, event_id, now_ns);
	int64_t wait = gcra(t, sl ? &sl->tat_ns : &s->overflow_tat_ns, now_ns);
	if (wait == 0) {
		s->admitted++;
		if (sl)
			sl->admitted++;
		else
			s->overflow_admitted++;
	} else {
		s->refused++;
		if (sl)
			sl->refused++;
		else
			s->overflow_refused++;
	}
	pthread_mutex_unlock(&s->lock);
	if (wait == 0)
		return 0;
	/* Round up: at now + hint a token is due. At most ceil(T / 1 ms) <=
	 * 1000 (a clock read slightly stale by the caller could say more). */
	if (wait > t->interval_ns)
		wait = t->interval_ns;
	return (uint32_t)((wait + NS_PER_MS - 1) / NS_PER_MS);
}

typedef struct top_entry {
	uint64_t event, admitted, refused;
} top_entry;

/* Keeps top[0..*n) (at most cap) sorted by refused, descending. */
static void top_offer(top_entry *top, uint32_t *n, uint32_t cap, const tslot *sl)
{
	if (*n == cap && sl->refused <= top[cap - 1].refused)
		return;
	uint32_t i = *n < cap ? (*n)++ : cap - 1;
	while (i > 0 && top[i - 1].refused < sl->refused) {
		top[i] = top[i - 1];
		i--;
	}
	top[i] = (top_entry){.event = sl->event, .admitted = sl->admitted, .refused = sl->refused};
}

void gw_throttle_foreach(gw_throttle *t, uint32_t max, gw_throttle_fn fn, void *ctx)
{
	top_entry top[GW_THROTTLE_TOP_MAX];
	uint32_t cap = max < GW_THROTTLE_TOP_MAX ? max : GW_THROTTLE_TOP_MAX, n = 0;
	if (!t || cap == 0)
		return;
	for (uint32_t k = 0; k < GW_THROTTLE_STRIPES; k++) {
		stripe *s = &t->stripes[k];
		pthread_mutex_lock(&s->lock);
		for (uint32_t i = 0; i < t->per_stripe; i++) {
			const tslot *sl = &s->slots[i];
			if (sl->used && sl->refused > 0)
				top_offer(top, &n, cap, sl);
		}
		pthread_mutex_unlock(&s->lock);
	}
	for (uint32_t i = 0; i < n; i++)
		fn(ctx, top[i].event, top[i].admitted, top[i].refused);
}

void gw_throttle_stats_get(gw_throttle *t, gw_throttle_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!t)
		return;
	for (uint32_t k = 0; k < GW_THROTTLE_STRIPES; k++) {
		stripe *s = &t->stripes[k];
		pthread_mutex_lock(&s->lock);
		out->admitted += s->admitted;
		out->refused += s->refused;
		out->overflow_admitted += s->overflow_admitted;
		out->overflow_refused += s->overflow_refused;
		out->reused += s->reused;
		pthread_mutex_unlock(&s->lock);
	}
	out->slots = t->per_stripe * GW_THROTTLE_STRIPES;
	out->rate = t->rate;
	out->burst = t->burst;
}
