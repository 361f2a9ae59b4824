/*
 * stats.c — latency histograms and outcome counts of boxoffice-bench.
 *
 * Every worker keeps its own lg_stats (no sharing on the hot path); main.c
 * merges them after the run. The histogram is log-bucketed (see
 * lg_internal.h) so a 60 s run at 100k requests/s costs a fixed 15 KB per
 * histogram instead of 6 million samples.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lg_internal.h"

/* Bucket of v: v < 32 exactly; else power p = floor(log2 v) >= 5 and the
 * top five bits below the leading one. */
static unsigned bucket_of(uint64_t v)
{
	if (v < LG_HIST_SUB)
		return (unsigned)v;
	unsigned p = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (p - 5)) & (LG_HIST_SUB - 1);
	unsigned b = (p - 4) * LG_HIST_SUB + sub;
	return b < LG_HIST_BUCKETS ? b : LG_HIST_BUCKETS - 1;
}

/* Lowest value of bucket b and its width. */
static void bucket_range(unsigned b, uint64_t *lo, uint64_t *width)
{
	if (b < LG_HIST_SUB) {
		*lo = b;
		*width = 1;
		return;
	}
	unsigned p = b / LG_HIST_SUB + 4;
	uint64_t sub = b % LG_HIST_SUB;
	*lo = (1ull << p) + (sub << (p - 5));
	*width = 1ull << (p - 5);
}

void lg_hist_add(lg_hist *h, uint64_t ns)
{
	h->b[bucket_of(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

void lg_hist_merge(lg_hist *into, const lg_hist *h)
{
	for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	if (h->max > into->max)
		into->max = h->max;
}

uint64_t lg_hist_quantile(const lg_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t lo, w;
			bucket_range(i, &lo, &w);
			uint64_t mid = lo + w / 2;
			return mid < h->max ? mid : h->max;
		}
	}
	return h->max;
}

lg_stats *lg_stats_new(int timeline)
{
	lg_stats *s = calloc(1, sizeof(*s));
	if (s)
		s->timeline = timeline;
	return s;
}

void lg_stats_free(lg_stats *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nsec; i++)
		free(s->sec[i]);
	free(s->sec);
	free(s);
}

/* The timeline's histogram of second `sec`, grown on demand; NULL when out
 * of memory. */
static lg_hist *sec_hist(lg_stats *s, uint32_t sec)
{
	if (sec >= s->nsec) {
		uint32_t n = s->nsec ? s->nsec : 16;
		while (n <= sec)
			n *= 2;
		lg_hist **g = realloc(s->sec, n * sizeof(*g));
		if (!g)
			return NULL;
		memset(g + s->nsec, 0, (n - s->nsec) * sizeof(*g));
		s->sec = g;
		s->nsec = n;
	}
	if (!s->sec[sec])
		s->sec[sec] = calloc(1, sizeof(lg_hist));
	return s->sec[sec];
}

int lg_stats_add(lg_stats *s, unsigned op, unsigned outcome, uint64_t lat_ns, uint64_t at_ns)
{
	lg_hist_add(&s->all, lat_ns);
	lg_hist_add(&s->op[op], lat_ns);
	s->outcomes[op][outcome]++;
	if (!s->timeline)
		return 0;
	lg_hist *h = sec_hist(s, (uint32_t)(at_ns / 1000000000ull));
	if (!h)
		return -ENOMEM;
	lg_hist_add(h, lat_ns);
	return 0;
}

int lg_stats_merge(lg_stats *into, const lg_stats *s)
{
	lg_hist_merge(&into->all, &s->all);
	for (unsigned o = 0; o < LG_OP_COUNT; o++) {
		lg_hist_merge(&into->op[o], &s->op[o]);
		for (unsigned k = 0; k < LG_OUTCOME_COUNT; k++)
			into->outcomes[o][k] += s->outcomes[o][k];
	}
	int rc = 0;
	for (uint32_t i = 0; i < s->nsec; i++) {
		if (!s->sec[i])
			continue;
		lg_hist *h = sec_hist(into, i);
		if (!h)
			rc = -ENOMEM;
		else
			lg_hist_merge(h, s->sec[i]);
	}
	return rc;
}
