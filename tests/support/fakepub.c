/*
 * fakepub.c — the stand-in read side of fakepub.h: a PUB socket, a REP
 * socket served by one thread, and the truth both answer from, under one
 * mutex.
 */
#include "tests/support/fakepub.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "base/limits.h"
#include "protocol/projection.h"
#include "protocol/wire.h"

#define FAKE_EVENTS_MAX 512u

struct fakepub {
	char pub_url[256];
	nng_socket pub, rep;
	pthread_t thread;
	pthread_mutex_t mu; /* everything below */
	pthread_cond_t cv;  /* pipes or requests changed */
	bo_event_image ev[FAKE_EVENTS_MAX];
	uint32_t nev;
	uint32_t pipes; /* connected to the PUB socket whose id is pub_id */
	int pub_id;
	uint32_t throttle;
	uint64_t requests;
	msgpack_sbuffer sb; /* for publishing, under mu */
};

static bo_event_image *find(fakepub *f, uint64_t event_id)
{
	for (uint32_t i = 0; i < f->nev; i++)
		if (f->ev[i].event_id == event_id)
			return &f->ev[i];
	return NULL;
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	fakepub *f = arg;
	pthread_mutex_lock(&f->mu);
	/* A late callback of a socket fakepub_restart_pub closed counts no
	 * more. */
	bool current = nng_socket_id(nng_pipe_socket(p)) == f->pub_id;
	if (current && ev == NNG_PIPE_EV_ADD_POST)
		f->pipes++;
	else if (current && ev == NNG_PIPE_EV_REM_POST && f->pipes > 0)
		f->pipes--;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static int pub_open(fakepub *f)
{
	int rv = nng_pub0_open(&f->pub);
	pthread_mutex_lock(&f->mu);
	f->pub_id = rv == 0 ? nng_socket_id(f->pub) : -1;
	f->pipes = 0;
	pthread_mutex_unlock(&f->mu);
	if (rv == 0)
		rv = nng_socket_set_int(f->pub, NNG_OPT_SENDBUF, 8192);
	if (rv == 0)
		rv = nng_pipe_notify(f->pub, NNG_PIPE_EV_ADD_POST, pipe_cb, f);
	if (rv == 0)
		rv = nng_pipe_notify(f->pub, NNG_PIPE_EV_REM_POST, pipe_cb, f);
	if (rv == 0)
		rv = nng_listen(f->pub, f->pub_url, NULL, 0);
	return rv;
}

/* The answer to one request, appended to sb. */
static void answer(fakepub *f, const uint8_t *buf, size_t len, msgpack_sbuffer *sb)
{
	uint64_t event_id = 0;
	wire_msg wm;
	int kind = wire_decode_admin(buf, len, &event_id, &wm);
	if (kind != WIRE_ADMIN_EVENT_STATE) {
		wire_encode_error(BO_INVALID, "fakepub answers event_state only", sb);
		return;
	}
	pthread_mutex_lock(&f->mu);
	/* Counted as the answer is made, before it is sent: the client may
	 * read the counter as soon as it has the reply. */
	f->requests++;
	pthread_cond_broadcast(&f->cv);
	const bo_event_image *im = find(f, event_id);
	if (f->throttle > 0) {
		f->throttle--;
		wire_encode_error(BO_THROTTLED, "too many event_state requests", sb);
	} else if (im == NULL) {
		wire_encode_error(BO_NOT_FOUND, "no such event", sb);
	} else {
		int rc = wire_encode_event_image(im, sb);
		assert(rc == 0);
		(void)rc;
	}
	pthread_mutex_unlock(&f->mu);
}

static void *rep_main(void *arg)
{
	fakepub *f = arg;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	for (;;) {
		nng_msg *m = NULL;
		if (nng_recvmsg(f->rep, &m, 0) != 0)
			break; /* closed */
		sb.size = 0;
		answer(f, nng_msg_body(m), nng_msg_len(m), &sb);
		nng_msg_free(m);
		int rv = nng_send(f->rep, sb.data, sb.size, 0);
		if (rv == NNG_ECLOSED)
			break;
	}
	msgpack_sbuffer_destroy(&sb);
	return NULL;
}

int fakepub_start(const char *pub_url, const char *rep_url, fakepub **out)
{
	fakepub *f = calloc(1, sizeof(*f));
	assert(f != NULL && strlen(pub_url) < sizeof(f->pub_url));
	strcpy(f->pub_url, pub_url);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	msgpack_sbuffer_init(&f->sb);
	int rv = pub_open(f);
	if (rv == 0 && (rv = nng_rep0_open(&f->rep)) == 0)
		rv = nng_listen(f->rep, rep_url, NULL, 0);
	if (rv == 0 && pthread_create(&f->thread, NULL, rep_main, f) != 0)
		rv = NNG_ENOMEM;
	if (rv != 0) {
		nng_close(f->pub);
		nng_close(f->rep);
		msgpack_sbuffer_destroy(&f->sb);
		free(f);
		return -rv;
	}
	*out = f;
	return 0;
}

void fakepub_stop(fakepub *f)
{
	if (f == NULL)
		return;
	nng_close(f->rep); /* ends rep_main's receive */
	pthread_join(f->thread, NULL);
	nng_close(f->pub);
	for (uint32_t i = 0; i < f->nev; i++)
		bo_event_image_free(&f->ev[i]);
	msgpack_sbuffer_destroy(&f->sb);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int fakepub_restart_pub(fakepub *f)
{
	nng_close(f->pub);
	return pub_open(f);
}

void fakepub_add_event(fakepub *f, uint64_t event_id, uint32_t rows, uint32_t seats_per_row,
                       uint32_t categories, uint32_t pools, uint32_t pool_capacity, uint64_t seq)
{
	assert(rows >= categories && pools <= BO_POOLS_PER_EVENT_MAX && categories >= 1);
	bo_event_image im = {.event_id = event_id, .seq = seq};
	im.seat_count = rows * seats_per_row;
	im.row_count = rows;
	im.category_count = categories;
	im.pool_count = pools;
	im.rows = calloc(rows ? rows : 1, sizeof(*im.rows));
	im.categories = calloc(im.seat_count ? im.seat_count : 1, 1);
	im.states = calloc(im.seat_count ? im.seat_count : 1, 1);
	assert(im.rows && im.categories && im.states);
	for (uint32_t r = 0; r < rows; r++) {
		im.rows[r].section = 1;
		im.rows[r].seats = (uint16_t)seats_per_row;
		for (uint32_t k = 0; k < seats_per_row; k++)
			im.categories[r * seats_per_row + k] = (uint8_t)(r * categories / rows);
	}
	for (uint32_t p = 0; p < pools; p++)
		im.pool_capacity[p] = im.pool_free[p] = pool_capacity;
	pthread_mutex_lock(&f->mu);
	assert(f->nev < FAKE_EVENTS_MAX && find(f, event_id) == NULL);
	f->ev[f->nev++] = im;
	pthread_mutex_unlock(&f->mu);
}

/* Encodes and sends one message; under mu. */
static void send_locked(fakepub *f, uint64_t event_id, uint64_t prev, uint64_t seq,
                        const bo_change *c, uint32_t n)
{
	wire_projection h = {.event_id = event_id,
	                     .prev_seq = prev,
	                     .seq = seq,
	                     .at_ms = (int64_t)time(NULL) * 1000,
	                     .pub_us = (int64_t)time(NULL) * 1000000,
	                     .count = n};
	f->sb.size = 0;
	int rc = wire_encode_projection(&h, c, &f->sb);
	assert(rc == 0);
	(void)rc;
	rc = nng_send(f->pub, f->sb.data, f->sb.size, 0);
	assert(rc == 0);
}

void fakepub_create(fakepub *f, uint64_t event_id, uint32_t rows, uint32_t seats_per_row,
                    uint32_t categories, uint32_t pools, uint32_t pool_capacity)
{
	fakepub_add_event(f, event_id, rows, seats_per_row, categories, pools, pool_capacity, 1);
	bo_change c = {.cause = BO_CAUSE_CREATE};
	pthread_mutex_lock(&f->mu);
	send_locked(f, event_id, 0, 1, &c, 1);
	pthread_mutex_unlock(&f->mu);
}

uint64_t fakepub_publish(fakepub *f, uint64_t event_id, const bo_change *c, uint32_t n, bool skip)
{
	pthread_mutex_lock(&f->mu);
	bo_event_image *im = find(f, event_id);
	assert(im != NULL);
	for (uint32_t i = 0; i < n; i++) {
		if (c[i].is_pool) {
			assert(c[i].pool < im->pool_count &&
			       c[i].pool_free <= im->pool_capacity[c[i].pool]);
			im->pool_free[c[i].pool] = c[i].pool_free;
			continue;
		}
		for (uint32_t k = 0; k < c[i].seat_count; k++) {
			assert(c[i].seats[k] < im->seat_count);
			im->states[c[i].seats[k]] = c[i].state;
		}
	}
	uint64_t prev = im->seq, seq = ++im->seq;
	if (!skip)
		send_locked(f, event_id, prev, seq, c, n);
	pthread_mutex_unlock(&f->mu);
	return seq;
}

void fakepub_publish_raw_msg(fakepub *f, uint64_t event_id, uint64_t prev, uint64_t seq,
                             const bo_change *c, uint32_t n)
{
	pthread_mutex_lock(&f->mu);
	send_locked(f, event_id, prev, seq, c, n);
	pthread_mutex_unlock(&f->mu);
}

void fakepub_send_bytes(fakepub *f, const void *buf, size_t len)
{
	pthread_mutex_lock(&f->mu);
	int rc = nng_send(f->pub, (void *)buf, len, 0);
	assert(rc == 0);
	(void)rc;
	pthread_mutex_unlock(&f->mu);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A pool change of pool p: take or give back places, or confirm. */
static bo_change random_pool_change(const bo_event_image *im, uint8_t p, uint64_t *seed)
{
	bo_change c = {.is_pool = 1, .pool = p, .claim_id = 1 + rnd(seed) % 1000000};
	uint32_t free_now = im->pool_free[p], taken = im->pool_capacity[p] - free_now;
	uint32_t kind = (uint32_t)(rnd(seed) % 3);
	if (kind == 0 && free_now > 0) {
		c.cause = BO_CAUSE_HOLD;
		c.quantity = 1 + (uint32_t)(rnd(seed) % (free_now < 8 ? free_now : 8));
		c.pool_free = free_now - c.quantity;
	} else if (kind == 1 && taken > 0) {
		static const uint8_t back[] = {BO_CAUSE_RELEASE, BO_CAUSE_EXPIRY, BO_CAUSE_CANCEL};
		c.cause = back[rnd(seed) % 3];
		c.quantity = 1 + (uint32_t)(rnd(seed) % (taken < 8 ? taken : 8));
		c.pool_free = free_now + c.quantity;
	} else {
		c.cause = BO_CAUSE_CONFIRM;
		c.quantity = 1;
		c.pool_free = free_now;
	}
	return c;
}

bo_change fakepub_random_change(fakepub *f, uint64_t event_id, uint64_t *seed)
{
	static const struct {
		uint8_t cause, state, has_claim;
	} kinds[] = {
	        {BO_CAUSE_HOLD, BO_SEAT_HELD, 1},    {BO_CAUSE_RELEASE, BO_SEAT_FREE, 1},
	        {BO_CAUSE_EXPIRY, BO_SEAT_FREE, 1},  {BO_CAUSE_CONFIRM, BO_SEAT_BOOKED, 1},
	        {BO_CAUSE_CANCEL, BO_SEAT_FREE, 1},  {BO_CAUSE_BLOCK, BO_SEAT_BLOCKED, 0},
	        {BO_CAUSE_UNBLOCK, BO_SEAT_FREE, 0},
	};
	pthread_mutex_lock(&f->mu);
	const bo_event_image *im = find(f, event_id);
	assert(im != NULL && (im->seat_count > 0 || im->pool_count > 0));
	bo_change c;
	if (im->pool_count > 0 && (im->seat_count == 0 || rnd(seed) % 4 == 0)) {
		c = random_pool_change(im, (uint8_t)(rnd(seed) % im->pool_count), seed);
	} else {
		memset(&c, 0, sizeof(c));
		uint32_t k = (uint32_t)(rnd(seed) % (sizeof(kinds) / sizeof(kinds[0])));
		c.cause = kinds[k].cause;
		c.state = kinds[k].state;
		c.claim_id = kinds[k].has_claim ? 1 + rnd(seed) % 1000000 : 0;
		uint32_t n = 1 + (uint32_t)(rnd(seed) % 4);
		if (n > im->seat_count)
			n = im->seat_count;
		uint32_t first = (uint32_t)(rnd(seed) % (im->seat_count - n + 1));
		c.seat_count = (uint8_t)n;
		for (uint32_t i = 0; i < n; i++)
			c.seats[i] = first + i;
	}
	pthread_mutex_unlock(&f->mu);
	return c;
}

static bo_event_image image_copy(const bo_event_image *im)
{
	bo_event_image c = *im;
	c.rows = malloc(sizeof(*c.rows) * (im->row_count ? im->row_count : 1));
	c.categories = malloc(im->seat_count ? im->seat_count : 1);
	c.states = malloc(im->seat_count ? im->seat_count : 1);
	assert(c.rows && c.categories && c.states);
	memcpy(c.rows, im->rows, sizeof(*c.rows) * im->row_count);
	memcpy(c.categories, im->categories, im->seat_count);
	memcpy(c.states, im->states, im->seat_count);
	return c;
}

bool fakepub_truth(fakepub *f, uint64_t event_id, bo_event_image *out)
{
	pthread_mutex_lock(&f->mu);
	const bo_event_image *im = find(f, event_id);
	if (im != NULL)
		*out = image_copy(im);
	pthread_mutex_unlock(&f->mu);
	return im != NULL;
}

void fakepub_throttle(fakepub *f, uint32_t n)
{
	pthread_mutex_lock(&f->mu);
	f->throttle = n;
	pthread_mutex_unlock(&f->mu);
}

uint64_t fakepub_state_requests(fakepub *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = f->requests;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Waits on cv until *counter >= want or the deadline. */
static int wait_for(fakepub *f, const uint64_t *counter64, const uint32_t *counter32, uint64_t want,
                    int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	while ((counter64 ? *counter64 : *counter32) < want && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	bool ok = (counter64 ? *counter64 : *counter32) >= want;
	pthread_mutex_unlock(&f->mu);
	return ok ? 0 : -ETIMEDOUT;
}

int fakepub_wait_pipes(fakepub *f, uint32_t n, int timeout_ms)
{
	return wait_for(f, NULL, &f->pipes, n, timeout_ms);
}

int fakepub_wait_state_requests(fakepub *f, uint64_t n, int timeout_ms)
{
	return wait_for(f, &f->requests, NULL, n, timeout_ms);
}

bool fakepub_image_equal(const bo_event_image *a, const bo_event_image *b)
{
	if (a->event_id != b->event_id || a->seq != b->seq || a->seat_count != b->seat_count ||
	    a->row_count != b->row_count || a->category_count != b->category_count ||
	    a->pool_count != b->pool_count)
		return false;
	if (memcmp(a->rows, b->rows, sizeof(*a->rows) * a->row_count) != 0 ||
	    memcmp(a->categories, b->categories, a->seat_count) != 0 ||
	    memcmp(a->states, b->states, a->seat_count) != 0)
		return false;
	for (uint32_t p = 0; p < a->pool_count; p++)
		if (a->pool_capacity[p] != b->pool_capacity[p] ||
		    a->pool_free[p] != b->pool_free[p])
			return false;
	return true;
}
