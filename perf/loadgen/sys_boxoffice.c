/*
 * sys_boxoffice.c — boxoffice through libboxoffice-client (client/boxoffice.h).
 *
 * target: the server's nng URL (default tcp://127.0.0.1:7400).
 * --opt keys:
 *   single=1     one command per message (batch_max 1, linger 0, one nng
 *                context per connection): boxoffice_single_per_sec
 *   token=FILE   the server's shared token (--auth-token-file)
 *   linger_us=N, batch_max=N, inflight=N  the library's batching (tuning)
 *   as=NAME      audit figures are named NAME_booked / NAME_held
 *                (default read_model; the harness says as=engine when the
 *                server was restarted and its read model rebuilt from the
 *                engine it recovered)
 *   pg=CONNINFO  also count the committer's PostgreSQL tables
 *                (postgres_booked / postgres_held)
 *
 * Every connection shares one boc_client, so the library coalesces what all
 * of them submit into few messages: the library's best setting. exec
 * submits its requests and waits for all their callbacks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "base/clock.h"
#include "base/parse.h"
#include "base/tokenfile.h"
#include "client/boxoffice.h"
#include "lg.h"
#include "sys_bo.h"

#define BX_URL_DEFAULT "tcp://127.0.0.1:7400"
#define BX_PAYREF "boxoffice-bench"
/* Commands per setup/audit round (events created or read per wait). */
#define BX_ROUND 256u

typedef struct bx_sys {
	boc_client *c;
	lg_config cfg;
	bo_seatmap *map;
	char url[512];
	char as[40];
	char pg[1024];
	int has_pg;
} bx_sys;

/* One outstanding request of a round: the callback's context. */
typedef struct bx_slot {
	struct bx_round *round;
	lg_req *req;
	bo_result res; /* setup/audit rounds keep the answer */
	int err;
} bx_slot;

/* A round of submitted commands and the wait for their callbacks. */
typedef struct bx_round {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned pending;
	bx_slot *slots;
	unsigned nslots;
} bx_round;

typedef struct bx_conn {
	bx_sys *sys;
	bx_round round;
} bx_conn;

static int round_init(bx_round *r, unsigned n)
{
	memset(r, 0, sizeof(*r));
	r->slots = calloc(n, sizeof(*r->slots));
	if (!r->slots)
		return -ENOMEM;
	r->nslots = n;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (unsigned i = 0; i < n; i++)
		r->slots[i].round = r;
	return 0;
}

static void round_fini(bx_round *r)
{
	free(r->slots);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

static void round_wait(bx_round *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->pending)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

/* What a boxoffice answer counts as (sys_bo.h): one mapping for every
 * path to the server, so nng and frames are counted alike. */
void lg_bo_fill(lg_req *q, int err, const bo_result *res)
{
	if (err < 0) {
		q->outcome = LG_NO_ANSWER;
		return;
	}
	switch (res->status) {
	case BO_OK:
		q->outcome = LG_OK;
		break;
	case BO_TAKEN:
		q->outcome = LG_TAKEN;
		break;
	case BO_EXPIRED:
		q->outcome = LG_EXPIRED;
		break;
	case BO_NOT_FOUND: /* a claim recycled after its expiry */
		q->outcome = q->op == LG_CONFIRM || q->op == LG_RELEASE ? LG_EXPIRED : LG_ERROR;
		break;
	case BO_BUSY:
		q->outcome = LG_BUSY;
		break;
	case BO_THROTTLED:
		q->outcome = LG_THROTTLED;
		break;
	default:
		q->outcome = LG_ERROR;
		break;
	}
	if (q->outcome == LG_OK && (q->op == LG_HOLD_SEATS || q->op == LG_HOLD_BEST)) {
		q->claim_out = res->claim_id;
		unsigned n = res->seat_count < LG_SEATS_MAX ? res->seat_count : LG_SEATS_MAX;
		q->nseats_out = (uint8_t)n;
		memcpy(q->seat_out, res->seats, n * sizeof(q->seat_out[0]));
	} else if (q->outcome == LG_OK && q->op == LG_READ) {
		q->avail_out = res->avail.by_state[BO_SEAT_FREE];
	}
}

/* Runs on nng's threads: fills the request (or keeps the answer) and
 * wakes the round's waiter when it was the last. */
static void on_result(void *ctx, int err, const bo_result *res, const char *text)
{
	(void)text;
	bx_slot *s = ctx;
	if (s->req) {
		lg_bo_fill(s->req, err, res);
	} else {
		s->err = err;
		s->res = *res;
	}
	bx_round *r = s->round;
	pthread_mutex_lock(&r->mu);
	if (--r->pending == 0)
		pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void lg_bo_cmd(const lg_req *q, bo_cmd *cmd)
{
	uint64_t ev = (uint64_t)q->event + 1; /* lg.h: boxoffice names event e as e + 1 */
	switch (q->op) {
	case LG_READ:
		boc_query_avail(cmd, ev);
		break;
	case LG_HOLD_SEATS:
		boc_hold_seats(cmd, q->client, q->request_id, ev, q->seat, q->n, q->ttl_ms);
		break;
	case LG_HOLD_BEST:
		boc_hold_best(cmd, q->client, q->request_id, ev, q->category, q->n, q->ttl_ms);
		break;
	case LG_CONFIRM:
		boc_confirm(cmd, q->client, q->request_id, ev, q->claim, BX_PAYREF);
		break;
	default:
		boc_release(cmd, q->client, q->request_id, ev, q->claim);
		break;
	}
}

static void bx_exec(void *connp, lg_req *reqs, unsigned n)
{
	bx_conn *c = connp;
	bx_round *r = &c->round;
	/* Count them all in first: a callback may run before the loop ends. */
	pthread_mutex_lock(&r->mu);
	r->pending = n;
	pthread_mutex_unlock(&r->mu);
	unsigned refused = 0;
	for (unsigned i = 0; i < n; i++) {
		bo_cmd cmd;
		lg_bo_cmd(&reqs[i], &cmd);
		r->slots[i].req = &reqs[i];
		int rc = boc_submit(c->sys->c, &cmd, on_result, &r->slots[i]);
		if (rc != 0) {
			reqs[i].outcome = rc == -EBUSY ? LG_BUSY : LG_NO_ANSWER;
			refused++;
		}
	}
	pthread_mutex_lock(&r->mu);
	r->pending -= refused;
	while (r->pending)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

/* The workload's seat map: rows of per_row seats (the last may be
 * shorter), categories by lg_category. */
static bo_seatmap *make_map(const lg_config *cfg)
{
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	bo_seatmap *m = bo_seatmap_new(rows, cfg->seats_per_event, 0);
	if (!m)
		return NULL;
	m->category_count = cfg->categories;
	for (uint32_t r = 0; r < rows; r++) {
		uint32_t first = r * cfg->per_row;
		uint32_t left = cfg->seats_per_event - first;
		m->rows[r].section = (uint16_t)(r / 25);
		m->rows[r].seats = (uint16_t)(left < cfg->per_row ? left : cfg->per_row);
	}
	for (uint32_t s = 0; s < cfg->seats_per_event; s++)
		m->categories[s] = lg_category(cfg, s);
	return m;
}

/* Reads the token file into buf (trailing newlines cut). 0 / -errno. */
/* --opt key=N as a number in [lo, hi]; absent: *out unchanged. */
static int opt_u32(const char *opts, const char *key, uint32_t lo, uint32_t hi, uint32_t *out,
                   char *err)
{
	char v[32];
	uint64_t x;
	if (!lg_opt(opts, key, v, sizeof(v)))
		return 0;
	if (bo_parse_u64(v, lo, hi, 0, &x) != 0) {
		snprintf(err, LG_ERR_LEN, "boxoffice: --opt %s=%s: expected %u..%u", key, v, lo,
		         hi);
		return -EINVAL;
	}
	*out = (uint32_t)x;
	return 0;
}

static int client_options(const lg_config *cfg, boc_options *o,
                          char token[BO_AUTH_TOKEN_LEN_MAX + 1], char *err)
{
	boc_options_default(o);
	char v[512];
	if (lg_opt(cfg->opts, "single", v, sizeof(v)) && strcmp(v, "0") != 0) {
		o->batch_max = 1;
		o->linger_zero = 1;
		o->inflight_max =
		        cfg->conns < BOC_INFLIGHT_MAX_MAX ? cfg->conns : BOC_INFLIGHT_MAX_MAX;
	}
	if (opt_u32(cfg->opts, "linger_us", 0, BOC_LINGER_US_MAX, &o->linger_us, err) ||
	    opt_u32(cfg->opts, "batch_max", 1, BOC_BATCH_MAX_DEFAULT, &o->batch_max, err) ||
	    opt_u32(cfg->opts, "inflight", 1, BOC_INFLIGHT_MAX_MAX, &o->inflight_max, err))
		return -EINVAL;
	if (lg_opt(cfg->opts, "linger_us", v, sizeof(v)) && o->linger_us == 0)
		o->linger_zero = 1;
	/* Room for every connection's whole round and for a setup/audit
	 * round, whatever the batching. */
	uint64_t need = (uint64_t)cfg->conns * cfg->depth * 2;
	uint64_t dflt = (uint64_t)o->batch_max * o->inflight_max * 2;
	uint64_t q = need > dflt ? need : dflt;
	if (q < 2 * BX_ROUND)
		q = 2 * BX_ROUND;
	o->queue_max = (uint32_t)(q < BOC_QUEUE_MAX_MAX ? q : BOC_QUEUE_MAX_MAX);
	if (lg_opt(cfg->opts, "token", v, sizeof(v))) {
		/* The CLI's and the server's reader: same checks, same words. */
		size_t len;
		int rc = bo_token_file_read(v, token, &len, err, LG_ERR_LEN);
		if (rc)
			return rc;
		o->auth_token = token;
	}
	return 0;
}

/* Submits cmds[0..n) (n <= BX_ROUND) and waits for every answer in r. */
static void run_round(boc_client *c, bx_round *r, const bo_cmd *cmds, unsigned n)
{
	pthread_mutex_lock(&r->mu);
	r->pending = n;
	pthread_mutex_unlock(&r->mu);
	for (unsigned i = 0; i < n; i++) {
		r->slots[i].req = NULL;
		int rc = boc_submit(c, &cmds[i], on_result, &r->slots[i]);
		if (rc != 0) {
			r->slots[i].err = rc;
			memset(&r->slots[i].res, 0, sizeof(r->slots[i].res));
			pthread_mutex_lock(&r->mu);
			r->pending--;
			pthread_mutex_unlock(&r->mu);
		}
	}
	round_wait(r);
}

/* Creates events 1..cfg->events, BX_ROUND at a time. */
static int create_events(bx_sys *s, char *err)
{
	bx_round r;
	bo_cmd cmds[BX_ROUND];
	if (round_init(&r, BX_ROUND))
		return -ENOMEM;
	int rc = 0;
	uint64_t req = ((uint64_t)time(NULL) << 20) & 0x7fffffffffffffffull;
	for (uint32_t e = 0; e < s->cfg.events && !rc; e += BX_ROUND) {
		unsigned n = s->cfg.events - e < BX_ROUND ? s->cfg.events - e : BX_ROUND;
		for (unsigned i = 0; i < n; i++)
			boc_create_event(&cmds[i], 1, ++req, (uint64_t)e + i + 1, s->map);
		run_round(s->c, &r, cmds, n);
		for (unsigned i = 0; i < n && !rc; i++) {
			const bx_slot *sl = &r.slots[i];
			if (sl->err < 0 || sl->res.status != BO_OK) {
				snprintf(err, LG_ERR_LEN,
				         "boxoffice: create event %u at %.120s: %s%s%s", e + i + 1,
				         s->url,
				         sl->err < 0 ? boc_strerror(sl->err)
				                     : boc_status_name(sl->res.status),
				         sl->err < 0 ? "" : "/",
				         sl->err < 0 ? "" : boc_detail_name(sl->res.detail));
				rc = sl->err < 0 ? sl->err : -EEXIST;
			}
		}
	}
	round_fini(&r);
	if (rc && rc != -EEXIST)
		return rc;
	if (rc == -EEXIST) {
		size_t l = strlen(err);
		snprintf(err + l, LG_ERR_LEN - l,
		         " (a fresh server, or --no-setup for existing events)");
		return -EEXIST;
	}
	return 0;
}

static int sum_avail(bx_sys *s, int64_t *booked, int64_t *held, char *err);

/* The read model learns of a new event a moment after the engine (it
 * follows the journal): a read before that is answered not_found and
 * would count as an error of the run. Waits until every event reads OK,
 * 10 s at most. */
static int wait_readable(bx_sys *s, char *err)
{
	int64_t booked, held, until = bo_clock_ms() + 10000;
	int rc;
	while ((rc = sum_avail(s, &booked, &held, err)) == -EPROTO && bo_clock_ms() < until) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	return rc;
}

static int bx_setup(const lg_config *cfg, void **out, char *err)
{
	bx_sys *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	snprintf(s->url, sizeof(s->url), "%s", cfg->target ? cfg->target : BX_URL_DEFAULT);
	if (!lg_opt(cfg->opts, "as", s->as, sizeof(s->as)) || !s->as[0])
		snprintf(s->as, sizeof(s->as), "read_model");
	s->has_pg = lg_opt(cfg->opts, "pg", s->pg, sizeof(s->pg));
	static char token[BO_AUTH_TOKEN_LEN_MAX + 1];
	boc_options o;
	int rc = client_options(cfg, &o, token, err);
	if (rc == 0 && (rc = boc_open(s->url, &o, &s->c)) != 0)
		snprintf(err, LG_ERR_LEN, "boxoffice: cannot open a client of %.160s: %s", s->url,
		         strerror(-rc));
	if (rc) {
		free(s);
		return rc;
	}
	/* Does it answer? (Any answer will do: the event need not exist.) */
	bo_cmd cmd;
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	boc_query_avail(&cmd, 1);
	rc = boc_call(s->c, &cmd, &res, text, sizeof(text));
	if (rc < 0) {
		snprintf(err, LG_ERR_LEN, "boxoffice: no answer from %.160s: %s", s->url,
		         boc_strerror(rc));
		boc_close(s->c);
		free(s);
		return rc;
	}
	if (res.status == BO_INVALID && res.detail == BO_D_UNAUTHORIZED) {
		snprintf(err, LG_ERR_LEN,
		         "boxoffice: %.160s wants the shared token (--opt token=FILE)", s->url);
		boc_close(s->c);
		free(s);
		return -EACCES;
	}
	s->map = make_map(cfg);
	rc = s->map ? 0 : -ENOMEM;
	if (rc == -ENOMEM)
		snprintf(err, LG_ERR_LEN, "boxoffice: out of memory for the seat map");
	if (rc == 0 && cfg->setup && (rc = create_events(s, err)) == 0)
		rc = wait_readable(s, err);
	if (rc) {
		boc_close(s->c);
		bo_seatmap_free(s->map);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int bx_conn_open(void *sysp, unsigned idx, void **out, char *err)
{
	(void)idx;
	bx_sys *s = sysp;
	bx_conn *c = calloc(1, sizeof(*c));
	if (!c || round_init(&c->round, s->cfg.depth)) {
		free(c);
		snprintf(err, LG_ERR_LEN, "boxoffice: out of memory");
		return -ENOMEM;
	}
	c->sys = s;
	*out = c;
	return 0;
}

static void bx_conn_close(void *connp)
{
	bx_conn *c = connp;
	round_fini(&c->round);
	free(c);
}

/* Sums booked and held seats over the workload's events as QUERY_AVAIL
 * answers them. 0 / -errno + err. */
static int sum_avail(bx_sys *s, int64_t *booked, int64_t *held, char *err)
{
	bx_round r;
	bo_cmd cmds[BX_ROUND];
	if (round_init(&r, BX_ROUND))
		return -ENOMEM;
	int rc = 0;
	*booked = *held = 0;
	for (uint32_t e = 0; e < s->cfg.events && !rc; e += BX_ROUND) {
		unsigned n = s->cfg.events - e < BX_ROUND ? s->cfg.events - e : BX_ROUND;
		for (unsigned i = 0; i < n; i++)
			boc_query_avail(&cmds[i], (uint64_t)e + i + 1);
		run_round(s->c, &r, cmds, n);
		for (unsigned i = 0; i < n && !rc; i++) {
			const bx_slot *sl = &r.slots[i];
			if (sl->err < 0 || sl->res.status != BO_OK) {
				snprintf(err, LG_ERR_LEN, "boxoffice: availability of event %u: %s",
				         e + i + 1,
				         sl->err < 0 ? boc_strerror(sl->err)
				                     : boc_status_name(sl->res.status));
				rc = sl->err < 0 ? sl->err : -EPROTO;
			}
			*booked += sl->res.avail.by_state[BO_SEAT_BOOKED];
			*held += sl->res.avail.by_state[BO_SEAT_HELD];
		}
	}
	round_fini(&r);
	return rc;
}

static void add_fig(lg_audit *out, const char *prefix, const char *what, int64_t v)
{
	if (out->nfigs >= LG_AUDIT_FIGS_MAX)
		return;
	lg_audit_fig *f = &out->figs[out->nfigs++];
	snprintf(f->name, sizeof(f->name), "%s_%s", prefix, what);
	f->value = v;
}

/* Waits until every shard's committer has carried the journal into the
 * database (lag 0), at most 30 s. 1: caught up, 0: not (or no status). */
static int committers_caught_up(bx_sys *s)
{
	static boc_server_report rep;
	int64_t until = bo_clock_ms() + 30000;
	while (bo_clock_ms() < until) {
		if (boc_server_status(s->c, &rep, NULL, 0) != 0 || rep.status != BO_OK)
			return 0;
		int ok = 1;
		for (uint32_t i = 0; i < rep.shard_count; i++)
			if (rep.shards[i].committer.state != BOC_COMMITTER_RUNNING ||
			    rep.shards[i].committer.lag_records != 0)
				ok = 0;
		if (ok)
			return 1;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int pg_counts(PGconn *db, const lg_config *cfg, int64_t *booked, int64_t *held, char *err)
{
	char q[256];
	snprintf(q, sizeof(q),
	         "SELECT count(*) FILTER (WHERE state = 'booked'), count(*) FILTER (WHERE state = "
	         "'held') FROM boxoffice.seats WHERE event_id BETWEEN 1 AND %u",
	         cfg->events);
	PGresult *res = PQexec(db, q);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, LG_ERR_LEN, "boxoffice: postgres audit: %s", PQerrorMessage(db));
		PQclear(res);
		return -EIO;
	}
	*booked = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*held = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}

/* postgres_booked / postgres_held once the committers have caught up (or,
 * if the server cannot say, once the counts have not changed for 2 s). */
static int pg_audit(bx_sys *s, lg_audit *out, char *err)
{
	PGconn *db = PQconnectdb(s->pg);
	if (PQstatus(db) != CONNECTION_OK) {
		snprintf(err, LG_ERR_LEN, "boxoffice: postgres audit: %s", PQerrorMessage(db));
		PQfinish(db);
		return -ECONNREFUSED;
	}
	int64_t b = 0, h = 0;
	int rc = 0;
	if (committers_caught_up(s)) {
		rc = pg_counts(db, &s->cfg, &b, &h, err);
	} else {
		int64_t pb = -1, ph = -1, since = bo_clock_ms(), until = since + 60000;
		while (rc == 0 && bo_clock_ms() < until) {
			if ((rc = pg_counts(db, &s->cfg, &b, &h, err)) != 0)
				break;
			if (b != pb || h != ph) {
				pb = b, ph = h, since = bo_clock_ms();
			} else if (bo_clock_ms() - since >= 2000) {
				break;
			}
			struct timespec ts = {0, 100 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	PQfinish(db);
	if (rc == 0) {
		add_fig(out, "postgres", "booked", b);
		add_fig(out, "postgres", "held", h);
	}
	return rc;
}

static int bx_audit(void *sysp, const lg_config *cfg, lg_audit *out, char *err)
{
	(void)cfg;
	bx_sys *s = sysp;
	memset(out, 0, sizeof(*out));
	/* The read model follows the journal a moment behind the answers the
	 * workers got: read until bookings (which nothing undoes after the
	 * run) read the same three times in a row, 5 s at most. */
	int64_t b = 0, h = 0, prev = -1;
	int same = 0, rc = 0;
	int64_t until = bo_clock_ms() + 5000;
	while ((rc = sum_avail(s, &b, &h, err)) == 0 && same < 2 && bo_clock_ms() < until) {
		same = b == prev ? same + 1 : 0;
		prev = b;
		if (same < 2) {
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	if (rc)
		return rc;
	add_fig(out, s->as, "booked", b);
	add_fig(out, s->as, "held", h);
	return s->has_pg ? pg_audit(s, out, err) : 0;
}

static void bx_teardown(void *sysp)
{
	bx_sys *s = sysp;
	boc_close(s->c);
	bo_seatmap_free(s->map);
	free(s);
}

const lg_system lg_sys_boxoffice = {
        .name = "boxoffice",
        .ops = (1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM) |
               (1u << LG_RELEASE),
        .setup = bx_setup,
        .conn_open = bx_conn_open,
        .exec = bx_exec,
        .conn_close = bx_conn_close,
        .audit = bx_audit,
        .teardown = bx_teardown,
};
