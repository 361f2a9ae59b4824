/*
 * workload.c — the platform's traffic profiles (issue 11): what each
 * connection asks next, and what it remembers of its answers.
 *
 * Buyers: every hold is made by a buyer of its own (a fresh client id),
 * and only that buyer confirms or releases it. One buyer per connection
 * would hit boxoffice's BO_HOLDS_PER_CLIENT_MAX (16 live holds) within
 * milliseconds at these rates, turning the run into LIMIT errors that no
 * real sale produces: real sales have one buyer per basket.
 *
 * Ids: client and request ids are (run << 43) | (conn << 31) | counter,
 * below 2^63 (PostgreSQL's bigint is signed), with `run` 20 random bits
 * drawn per run so that two runs against one server never reuse an id
 * inside its idempotency window. --seed drives the choices only.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lg_internal.h"

#define MIX(r, hs, hb, c, rel)    \
	{                         \
		r, hs, hb, c, rel \
	}
#define OPS_SEATS \
	((1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_CONFIRM) | (1u << LG_RELEASE))
#define OPS_FLASH ((1u << LG_READ) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM))

/* name, events, seats, per_row, categories, ttl, mix (permille), confirm
 * permille (flash), demand x, ops. */
static const lg_workload_def defs[] = {
        {"normal", 20, 10000, 50, 4, 10000, MIX(920, 40, 0, 25, 15), 0, 0, OPS_SEATS},
        {"on-sale", 20, 50000, 50, 4, 10000, MIX(870, 80, 0, 30, 20), 0, 0, OPS_SEATS},
        {"flash", 1, 50000, 50, 4, 3000, MIX(250, 0, 750, 0, 0), 700, 10, OPS_FLASH},
        {"many-events", 2000, 500, 50, 4, 10000, MIX(870, 80, 0, 30, 20), 0, 0, OPS_SEATS},
};
/* --quick: the same profiles on smaller venues, so setup is quick too. */
static const lg_workload_def quick_defs[] = {
        {"normal", 20, 1000, 50, 4, 10000, MIX(920, 40, 0, 25, 15), 0, 0, OPS_SEATS},
        {"on-sale", 20, 5000, 50, 4, 10000, MIX(870, 80, 0, 30, 20), 0, 0, OPS_SEATS},
        {"flash", 1, 5000, 50, 4, 3000, MIX(250, 0, 750, 0, 0), 700, 10, OPS_FLASH},
        {"many-events", 200, 500, 50, 4, 10000, MIX(870, 80, 0, 30, 20), 0, 0, OPS_SEATS},
};

const lg_workload_def *lg_workload_find(const char *name, int quick)
{
	const lg_workload_def *d = quick ? quick_defs : defs;
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		if (!strcmp(d[i].name, name))
			return &d[i];
	return NULL;
}

static const char *const op_keys[LG_OP_COUNT] = {"read", "hold_seats", "hold_best", "confirm",
                                                 "release"};
static const char *const outcome_keys[LG_OUTCOME_COUNT] = {"ok",        "taken", "expired",  "busy",
                                                           "throttled", "error", "no_answer"};

const char *lg_op_key(unsigned op)
{
	return op < LG_OP_COUNT ? op_keys[op] : "?";
}
const char *lg_outcome_key(unsigned o)
{
	return o < LG_OUTCOME_COUNT ? outcome_keys[o] : "?";
}

int lg_opt(const char *opts, const char *key, char *buf, size_t bufsz)
{
	if (!opts || !key)
		return 0;
	size_t klen = strlen(key);
	const char *p = opts;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			size_t vlen = len - klen - 1;
			if (bufsz) {
				if (vlen >= bufsz)
					vlen = bufsz - 1;
				memcpy(buf, p + klen + 1, vlen);
				buf[vlen] = '\0';
			}
			return 1;
		}
		if (len == klen && !strncmp(p, key, klen)) { /* bare "key": value "" */
			if (bufsz)
				buf[0] = '\0';
			return 1;
		}
		p += len + (end ? 1 : 0);
	}
	return 0;
}

/* ---- A connection's generator --------------------------------------------- */

/* A hold this connection made and may still confirm or release. */
typedef struct wl_hold {
	uint64_t claim, client;
	uint64_t deadline_ns; /* use it before this (ack + ttl - margin) */
	int64_t tag;          /* its index in the audit log */
	uint32_t event;
	uint8_t n;
	uint32_t seat[LG_SEATS_MAX];
} wl_hold;

/* Newest first: a buyer pays soon after the hold, or abandons it. The
 * stack keeps the newest WL_HOLDS_MAX; older ones are left to expire. */
#define WL_HOLDS_MAX 4096u

struct lg_wl {
	lg_wl_shared *sh;
	uint64_t rng;
	uint64_t id_prefix; /* (run << 43) | (conn << 31) */
	uint64_t nclient, nreq;
	uint32_t top, count; /* stack in a ring: holds[(top - 1 - i) % MAX] */
	wl_hold holds[WL_HOLDS_MAX];
	/* The holds the current round confirms or releases, in request
	 * order (lg_wl_done sees a round's requests in lg_wl_next's order):
	 * one that was shed (busy, throttled) goes back on the stack, as a
	 * buyer whose payment was refused for load tries again. */
	wl_hold *fly;
	uint32_t fly_n, fly_head;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)((rnd(s) >> 32) * n >> 32);
}

lg_wl *lg_wl_new(lg_wl_shared *sh, unsigned conn, uint64_t seed, uint64_t ids_base)
{
	lg_wl *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->sh = sh;
	/* splitmix64 of (seed, conn): distinct streams, never the zero state. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull * (conn + 1);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	w->rng = (z ^ (z >> 31)) | 1;
	w->id_prefix = ((ids_base & 0xfffffull) << 43) | ((uint64_t)conn << 31);
	w->fly = calloc(sh->cfg->depth, sizeof(*w->fly));
	if (!w->fly) {
		free(w);
		return NULL;
	}
	return w;
}

void lg_wl_free(lg_wl *w)
{
	if (w)
		free(w->fly);
	free(w);
}

static uint64_t next_request_id(lg_wl *w)
{
	return w->id_prefix | (++w->nreq & 0x7fffffffull);
}

/* Pops the newest hold still usable at now_ns into *h. 0: none. */
static int pop_hold(lg_wl *w, uint64_t now_ns, wl_hold *h)
{
	while (w->count) {
		w->top = (w->top + WL_HOLDS_MAX - 1) % WL_HOLDS_MAX;
		w->count--;
		if (w->holds[w->top].deadline_ns > now_ns) {
			*h = w->holds[w->top];
			return 1;
		}
	}
	return 0;
}

static void push_hold(lg_wl *w, const wl_hold *h)
{
	w->holds[w->top] = *h;
	w->top = (w->top + 1) % WL_HOLDS_MAX;
	if (w->count < WL_HOLDS_MAX)
		w->count++;
}

/* 1..4 adjacent seats in a random row of a random event. */
static void make_hold_seats(lg_wl *w, lg_req *r)
{
	const lg_config *cfg = w->sh->cfg;
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	uint32_t row = rnd_below(&w->rng, rows);
	uint32_t first = row * cfg->per_row;
	uint32_t len = cfg->seats_per_event - first < cfg->per_row ? cfg->seats_per_event - first
	                                                           : cfg->per_row;
	uint32_t n = 1 + rnd_below(&w->rng, 4);
	if (n > len)
		n = len;
	uint32_t start = first + rnd_below(&w->rng, len - n + 1);
	r->op = LG_HOLD_SEATS;
	r->event = rnd_below(&w->rng, cfg->events);
	r->n = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++)
		r->seat[i] = start + i;
}

/* A best-available hold of 1..4 seats of a random category. 0: the
 * demand is used up (lg_wl_done counts it as answers come). */
static int make_hold_best(lg_wl *w, lg_req *r)
{
	const lg_config *cfg = w->sh->cfg;
	uint32_t q = 1 + rnd_below(&w->rng, 4);
	if (w->sh->demand_limit && atomic_load(&w->sh->demanded) >= w->sh->demand_limit) {
		atomic_store(&w->sh->exhausted, 1);
		return 0;
	}
	r->op = LG_HOLD_BEST;
	r->event = rnd_below(&w->rng, cfg->events);
	r->n = (uint8_t)q;
	r->category = (uint8_t)rnd_below(&w->rng, cfg->categories);
	return 1;
}

/* The write the mix asked for (confirm/release of an own hold, or a hold
 * when there is none). 0: the demand is used up. */
static int make_write(lg_wl *w, lg_req *r, unsigned op, int64_t *tag, uint64_t now_ns)
{
	wl_hold h;
	if ((op == LG_CONFIRM || op == LG_RELEASE) && pop_hold(w, now_ns, &h)) {
		r->op = (uint8_t)op;
		r->event = h.event;
		r->n = h.n;
		memcpy(r->seat, h.seat, sizeof(r->seat));
		r->client = h.client;
		r->claim = h.claim;
		*tag = h.tag;
		assert(w->fly_n < w->sh->cfg->depth);
		w->fly[w->fly_n++] = h;
		return 1;
	}
	int best = op == LG_HOLD_BEST || (w->sh->def->ops & (1u << LG_HOLD_SEATS)) == 0;
	r->client = w->id_prefix | (++w->nclient & 0x7fffffffull);
	r->ttl_ms = w->sh->cfg->ttl_ms;
	if (best)
		return make_hold_best(w, r);
	make_hold_seats(w, r);
	return 1;
}

int lg_wl_next(lg_wl *w, lg_req *r, int64_t *tag, uint64_t now_ns)
{
	if (atomic_load_explicit(&w->sh->exhausted, memory_order_relaxed))
		return 0;
	const lg_workload_def *d = w->sh->def;
	memset(r, 0, sizeof(*r));
	*tag = -1;
	r->request_id = next_request_id(w);
	r->client = w->id_prefix | 0x7fffffffull; /* the connection's reader */
	uint32_t x = rnd_below(&w->rng, 1000);
	unsigned op = 0;
	while (op + 1 < LG_OP_COUNT && x >= d->mix[op]) {
		x -= d->mix[op];
		op++;
	}
	if (op == LG_READ) {
		r->op = LG_READ;
		r->event = rnd_below(&w->rng, w->sh->cfg->events);
		return 1;
	}
	/* flash: pending confirms go first within the write share. */
	if (d->confirm_permille && op == LG_HOLD_BEST && w->count)
		op = LG_CONFIRM;
	return make_write(w, r, op, tag, now_ns);
}

void lg_wl_done(lg_wl *w, const lg_req *r, int64_t tag, uint64_t send_ns, uint64_t ack_ns,
                lg_audit_log *log)
{
	if (r->op == LG_CONFIRM || r->op == LG_RELEASE) {
		assert(w->fly_head < w->fly_n);
		wl_hold h = w->fly[w->fly_head++];
		assert(h.claim == r->claim && h.tag == tag);
		if (w->fly_head == w->fly_n)
			w->fly_head = w->fly_n = 0;
		if (log && tag >= 0)
			lg_audit_end(log, tag, r->op, r->outcome, send_ns, ack_ns);
		if ((r->outcome == LG_BUSY || r->outcome == LG_THROTTLED) && h.deadline_ns > ack_ns)
			push_hold(w, &h);
		return;
	}
	/* Demand counts the holds the system decided on: a shed or lost one
	 * (busy, throttled, no answer) is a buyer who comes back, not one
	 * served. */
	if (r->op == LG_HOLD_BEST && w->sh->demand_limit && r->outcome != LG_BUSY &&
	    r->outcome != LG_THROTTLED && r->outcome != LG_NO_ANSWER)
		atomic_fetch_add(&w->sh->demanded, r->n);
	if ((r->op != LG_HOLD_SEATS && r->op != LG_HOLD_BEST) || r->outcome != LG_OK)
		return;
	wl_hold h = {.claim = r->claim_out, .client = r->client, .event = r->event, .tag = -1};
	if (r->nseats_out) {
		h.n = r->nseats_out > LG_SEATS_MAX ? LG_SEATS_MAX : r->nseats_out;
		memcpy(h.seat, r->seat_out, h.n * sizeof(h.seat[0]));
	} else {
		h.n = r->n;
		memcpy(h.seat, r->seat, h.n * sizeof(h.seat[0]));
	}
	/* A best-available hold whose system did not say which seats it got
	 * cannot be audited (a system bug the ERROR counts would not show). */
	if (log && (r->nseats_out || r->op == LG_HOLD_SEATS))
		h.tag = lg_audit_hold(log, h.event, h.seat, h.n, r->ttl_ms, send_ns, ack_ns);
	uint64_t ttl_ns = (uint64_t)r->ttl_ms * 1000000ull;
	h.deadline_ns = ack_ns + (ttl_ns > LG_AUDIT_MARGIN_NS ? ttl_ns - LG_AUDIT_MARGIN_NS : 0);
	/* flash: only confirm_permille of the holds are paid for; the rest
	 * are abandoned and expire (their seats come back during the run). */
	if (w->sh->def->confirm_permille &&
	    rnd_below(&w->rng, 1000) >= w->sh->def->confirm_permille)
		return;
	push_hold(w, &h);
}
