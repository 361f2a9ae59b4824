/*
 * codec_test.c — proves that engine/codec.c is a canonical, hostile-input-safe
 * encoding of commands and results.
 *
 * How:
 *  - Roundtrip: thousands of random commands (every op) and results (every
 *    op x every status), with every field random (also the ones the
 *    op does not use). decode(encode(x)) must equal a test-local projection
 *    of x (only the meaningful fields, written here independently of codec.c,
 *    everything else zero), byte for byte; re-encoding must reproduce the
 *    same bytes; size() must predict encode() exactly.
 *  - Equality helpers: single random field mutations must change
 *    codec_*_equal() exactly when they change the projection.
 *  - Hostile input: every truncation of valid encodings (maps included)
 *    fails with -EINVAL from an exact-size heap copy (ASan catches any
 *    over-read) and frees every seat map it allocated (maps are counted,
 *    see "Seat maps under test control"); random garbage and
 *    mutated encodings never crash and, when accepted, re-encode to the very
 *    bytes accepted (canonical form); counts over limits.h, unknown ops and
 *    versions, and non-canonical maps are rejected.
 *  - Layout: two hand-assembled encodings pin the documented little-endian
 *    layout, including the per-row run-length encoding of categories.
 *  - Versions: claim ops carry the flags byte (version 2), unknown flag bits
 *    are refused both ways, and version 1 commands (journals from before
 *    claim ownership) still decode, to the same value with the old
 *    any-client rule (BO_CMD_F_ANY_CLIENT) on claim ops.
 *  - Size: 100k- and 512k-seat maps roundtrip within CODEC_CMD_SIZE_MAX; the
 *    largest valid map (description BO_MAP_DESC_BYTES_MAX) encodes to
 *    exactly CODEC_CMD_SIZE_MAX, and one run or byte more has no encoding
 *    and does not decode.
 *
 *  - Output: every too-small buffer gives -ENOSPC and nothing is written
 *    past its end.
 *
 * The seed is random per run, printed in every failure message; set
 * CODEC_TEST_SEED=<n> to replay a run. Link with
 * -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free (see below); without it
 * every leak-checking test fails and says so.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/le.h"
#include "engine/codec.h"
#include "tests/support/descmap.h"
#include "tests/support/seatmap_count.h"

/* ---- Randomness ---------------------------------------------------------- */

static uint64_t seed_base;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: small, good enough, fully determined by the seed. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static void seed_init(void)
{
	const char *env = getenv("CODEC_TEST_SEED");
	seed_base =
	        env ? strtoull(env, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	rng_state = seed_base;
}

#define SEED_FMT "(CODEC_TEST_SEED=%llu) "
#define SEED (unsigned long long)seed_base

static void fill_random(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

/* ---- Random values ------------------------------------------------------- */

/* A random valid map: rows of 1..row_seats_max seats, categories laid down
 * in runs of random length and category (neighbouring runs may repeat a
 * category, which the encoder must merge). */
static bo_seatmap *rand_map(uint32_t rows_max, uint32_t row_seats_max)
{
	uint32_t row_count = rnd_below(rows_max + 1);
	uint16_t *seats = malloc(sizeof(uint16_t) * (row_count + 1));
	cr_assert(seats != NULL);
	uint32_t seat_count = 0;
	for (uint32_t r = 0; r < row_count; r++) {
		seats[r] = (uint16_t)(1 + rnd_below(row_seats_max));
		seat_count += seats[r];
	}
	/* An event must sell something: no rows means at least one pool. */
	uint32_t pool_count = rnd_below(BO_POOLS_PER_EVENT_MAX + 1);
	if (row_count == 0 && pool_count == 0)
		pool_count = 1;
	bo_seatmap *m = bo_seatmap_new(row_count, seat_count, pool_count);
	cr_assert(m != NULL);
	m->row_count = row_count;
	m->seat_count = seat_count;
	m->pool_count = pool_count;
	m->category_count = 1 + rnd_below(BO_CATEGORIES_MAX);
	for (uint32_t r = 0; r < row_count; r++) {
		m->rows[r].section = (uint16_t)rnd_below(BO_SECTIONS_PER_EVENT_MAX);
		m->rows[r].seats = seats[r];
	}
	uint32_t i = 0;
	while (i < seat_count) {
		uint32_t len = 1 + rnd_below(rnd_below(4) == 0 ? 40 : 4);
		uint8_t cat = (uint8_t)rnd_below(m->category_count);
		for (uint32_t k = 0; k < len && i < seat_count; k++)
			m->categories[i++] = cat;
	}
	for (uint32_t p = 0; p < pool_count; p++)
		m->pool_capacity[p] = 1 + rnd_below(BO_POOL_CAPACITY_MAX);
	free(seats);
	cr_assert(bo_seatmap_check(m) == BO_D_NONE, "test generator made an invalid map");
	return m;
}

/* Every field random; counts within what the format carries. CREATE_EVENT
 * gets a fresh map (or none, 1 in 8) that the caller frees. */
static void rand_cmd(uint8_t op, bo_cmd *c)
{
	fill_random(c, sizeof(*c));
	c->op = op;
	c->seat_count = (uint8_t)rnd_below(BO_SEATS_PER_HOLD_MAX + 1);
	c->payref_len = (uint8_t)rnd_below(BO_PAYREF_LEN_MAX + 1);
	c->flags &= BO_CMD_F_OPERATOR | BO_CMD_F_ANY_CLIENT;
	c->map = NULL;
	if (op == BO_OP_CREATE_EVENT && rnd_below(8) != 0)
		c->map = rand_map(rnd_below(4) == 0 ? 60 : 6, rnd_below(4) == 0 ? 300 : 20);
}

static void rand_result(uint8_t op, uint8_t status, bo_result *r)
{
	fill_random(r, sizeof(*r));
	r->op = op;
	r->status = status;
	r->detail = (uint8_t)rnd_below(BO_D_COUNT);
	r->seat_count = (uint8_t)rnd_below(BO_SEATS_PER_HOLD_MAX + 1);
	for (uint32_t i = 0; i < BO_QUERY_SEATS_MAX; i++)
		r->seat_state[i] = (uint8_t)rnd_below(BO_SEAT_STATE_COUNT);
	r->avail.category_count = (uint8_t)rnd_below(BO_CATEGORIES_MAX + 1);
	r->avail.pool_count = (uint8_t)rnd_below(BO_POOLS_PER_EVENT_MAX + 1);
}

/* ---- The test's own idea of "meaningful" (independent of codec.c) ------- */

/* z = x with every field the op does not use zeroed, map pointer cleared
 * (maps are compared by content separately). */
static void project_cmd(const bo_cmd *x, bo_cmd *z)
{
	memset(z, 0, sizeof(*z));
	z->op = x->op;
	z->client_id = x->client_id;
	z->request_id = x->request_id;
	z->event_id = x->event_id;
	int seats = 0;
	switch (x->op) {
	case BO_OP_CREATE_EVENT:
		break;
	case BO_OP_HOLD_SEATS:
		seats = 1;
		z->ttl_ms = x->ttl_ms;
		break;
	case BO_OP_HOLD_BEST:
		z->category = x->category;
		z->quantity = x->quantity;
		z->ttl_ms = x->ttl_ms;
		break;
	case BO_OP_HOLD_POOL:
		z->pool = x->pool;
		z->quantity = x->quantity;
		z->ttl_ms = x->ttl_ms;
		break;
	case BO_OP_EXTEND:
		z->claim_id = x->claim_id;
		z->ttl_ms = x->ttl_ms;
		z->flags = x->flags;
		break;
	case BO_OP_RELEASE:
	case BO_OP_CANCEL:
		z->claim_id = x->claim_id;
		z->flags = x->flags;
		break;
	case BO_OP_CONFIRM:
		z->claim_id = x->claim_id;
		z->flags = x->flags;
		z->payref_len = x->payref_len;
		memcpy(z->payref, x->payref, x->payref_len);
		break;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
	case BO_OP_QUERY_SEATS:
		seats = 1;
		break;
	case BO_OP_QUERY_AVAIL:
		break;
	default:
		cr_assert_fail("op %u", x->op);
	}
	if (seats) {
		z->seat_count = x->seat_count;
		memcpy(z->seats, x->seats, sizeof(uint32_t) * x->seat_count);
	}
}

/* memcmp() that allows NULL with length 0 (an empty array may be NULL). */
static int mem_same(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

static int maps_same(const bo_seatmap *a, const bo_seatmap *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->row_count != b->row_count || a->seat_count != b->seat_count ||
	    a->pool_count != b->pool_count || a->category_count != b->category_count)
		return 0;
	return mem_same(a->rows, b->rows, sizeof(bo_row_def) * a->row_count) &&
	       mem_same(a->categories, b->categories, a->seat_count) &&
	       mem_same(a->pool_capacity, b->pool_capacity, sizeof(uint32_t) * a->pool_count);
}

static int cmds_same(const bo_cmd *a, const bo_cmd *b)
{
	bo_cmd pa, pb;
	project_cmd(a, &pa);
	project_cmd(b, &pb);
	if (memcmp(&pa, &pb, sizeof(pa)) != 0)
		return 0;
	return a->op != BO_OP_CREATE_EVENT || maps_same(a->map, b->map);
}

static void project_result(const bo_result *x, bo_result *z)
{
	memset(z, 0, sizeof(*z));
	z->op = x->op;
	z->status = x->status;
	z->replayed = x->replayed;
	z->client_id = x->client_id;
	z->request_id = x->request_id;
	z->event_id = x->event_id;
	int seats = 0;
	if (x->status != BO_OK) {
		z->detail = x->detail;
		seats = 1;
	} else {
		switch (x->op) {
		case BO_OP_CREATE_EVENT:
			break;
		case BO_OP_HOLD_SEATS:
		case BO_OP_HOLD_BEST:
			z->claim_id = x->claim_id;
			z->expires_at_ms = x->expires_at_ms;
			z->quantity = x->quantity;
			seats = 1;
			break;
		case BO_OP_HOLD_POOL:
			z->claim_id = x->claim_id;
			z->expires_at_ms = x->expires_at_ms;
			z->pool = x->pool;
			z->quantity = x->quantity;
			break;
		case BO_OP_EXTEND:
			z->claim_id = x->claim_id;
			z->expires_at_ms = x->expires_at_ms;
			z->pool = x->pool;
			z->quantity = x->quantity;
			seats = 1;
			break;
		case BO_OP_RELEASE:
		case BO_OP_CONFIRM:
		case BO_OP_CANCEL:
			z->claim_id = x->claim_id;
			z->pool = x->pool;
			z->quantity = x->quantity;
			seats = 1;
			break;
		case BO_OP_BLOCK:
		case BO_OP_UNBLOCK:
			seats = 1;
			break;
		case BO_OP_QUERY_SEATS:
			seats = 1;
			memcpy(z->seat_state, x->seat_state, x->seat_count);
			break;
		case BO_OP_QUERY_AVAIL: {
			const bo_avail *a = &x->avail;
			bo_avail *b = &z->avail;
			b->category_count = a->category_count;
			b->pool_count = a->pool_count;
			memcpy(b->by_state, a->by_state, sizeof(a->by_state));
			memcpy(b->free_by_category, a->free_by_category, 4u * a->category_count);
			memcpy(b->pool_capacity, a->pool_capacity, 4u * a->pool_count);
			memcpy(b->pool_free, a->pool_free, 4u * a->pool_count);
			break;
		}
		default:
			cr_assert_fail("op %u", x->op);
		}
	}
	if (seats) {
		z->seat_count = x->seat_count;
		memcpy(z->seats, x->seats, sizeof(uint32_t) * x->seat_count);
	}
}

static int results_same(const bo_result *a, const bo_result *b)
{
	bo_result pa, pb;
	project_result(a, &pa);
	project_result(b, &pb);
	return memcmp(&pa, &pb, sizeof(pa)) == 0;
}

/* ---- Encode helpers ------------------------------------------------------ */

/* Encodes into an exact-size heap block (so ASan sees any overrun) after
 * checking that size() predicted it. Caller frees. */
static uint8_t *enc_cmd(const bo_cmd *c, int32_t *n)
{
	int32_t size = codec_cmd_size(c);
	cr_assert(size > 0, SEED_FMT "cmd op %u: size %d", SEED, c->op, size);
	uint8_t *b = malloc((size_t)size);
	cr_assert(b != NULL);
	int32_t rc = codec_cmd_encode(c, b, (size_t)size);
	cr_assert_eq(rc, size, SEED_FMT "op %u: encode %d, size %d", SEED, c->op, rc, size);
	*n = size;
	return b;
}

static uint8_t *enc_result(const bo_result *r, int32_t *n)
{
	int32_t size = codec_result_size(r);
	cr_assert(size > 0, SEED_FMT "result op %u status %u: size %d", SEED, r->op, r->status,
	          size);
	cr_assert(size <= (int32_t)CODEC_RESULT_SIZE_MAX);
	uint8_t *b = malloc((size_t)size);
	cr_assert(b != NULL);
	int32_t rc = codec_result_encode(r, b, (size_t)size);
	cr_assert_eq(rc, size, SEED_FMT "result encode %d, size %d", SEED, rc, size);
	*n = size;
	return b;
}

/* Decodes buf[0..len) from an exact-size heap copy; returns the code. */
static int32_t dec_cmd_exact(const uint8_t *buf, size_t len, bo_cmd *out, bo_seatmap **map)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy != NULL);
	memcpy(copy, buf, len);
	int32_t rc = codec_cmd_decode(copy, len, out, map);
	free(copy);
	return rc;
}

static int32_t dec_result_exact(const uint8_t *buf, size_t len, bo_result *out)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy != NULL);
	memcpy(copy, buf, len);
	int32_t rc = codec_result_decode(copy, len, out);
	free(copy);
	return rc;
}

/* ---- Seat maps under test control ---------------------------------------
 *
 * This binary is linked with tests/support/seatmap_count.c and
 * -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free: every map the codec (or
 * this file) allocates is counted there, which makes "no leak" an exact
 * check in every build. */

static long leak_baseline(void)
{
	/* Without the wrap every leak check below would be blind. */
	cr_assert(seatmap_count_wrapped(), "link codec_test with -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free");
	return seatmap_count_live;
}

static void assert_no_leak(long baseline)
{
	cr_assert_eq(seatmap_count_live, baseline, "%ld seat maps leaked", seatmap_count_live - baseline);
}

/* ---- Roundtrips ---------------------------------------------------------- */

/* Full roundtrip of one command; returns nothing, asserts everything. */
static void check_cmd_roundtrip(const bo_cmd *x, int iter)
{
	int32_t n;
	uint8_t *b = enc_cmd(x, &n);
	bo_cmd y;
	bo_seatmap *map = (bo_seatmap *)1;
	int32_t rc = dec_cmd_exact(b, (size_t)n, &y, &map);
	cr_assert_eq(rc, n, SEED_FMT "iter %d op %u: decode %d of %d bytes", SEED, iter, x->op, rc,
	             n);
	cr_assert(cmds_same(x, &y), SEED_FMT "iter %d op %u: meaningful fields differ", SEED, iter,
	          x->op);
	/* Decode zeroes what the op does not use: y equals its own projection. */
	bo_cmd py = y;
	project_cmd(&y, &py);
	py.map = NULL;
	bo_cmd y0 = y;
	y0.map = NULL;
	cr_assert(memcmp(&py, &y0, sizeof(py)) == 0, SEED_FMT "iter %d op %u: unused field set",
	          SEED, iter, x->op);
	cr_assert(y.map == map, "out->map must be the returned map");
	if (x->op == BO_OP_CREATE_EVENT && x->map != NULL) {
		cr_assert(map != NULL && map != x->map);
		cr_assert(bo_seatmap_check(map) == BO_D_NONE);
	} else {
		cr_assert(map == NULL, SEED_FMT "iter %d: no map expected", SEED, iter);
	}
	cr_assert(codec_cmd_equal(x, &y) && codec_cmd_equal(&y, x), SEED_FMT "iter %d op %u", SEED,
	          iter, x->op);
	/* Canonical: encoding the decoded value gives the same bytes. */
	int32_t n2;
	uint8_t *b2 = enc_cmd(&y, &n2);
	cr_assert(n2 == n && memcmp(b, b2, (size_t)n) == 0, SEED_FMT "iter %d: re-encode differs",
	          SEED, iter);
	free(b2);
	free(b);
	bo_seatmap_free(map);
}

Test(codec, cmd_roundtrip_every_op)
{
	seed_init();
	long baseline = leak_baseline();
	for (int iter = 0; iter < 12000; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		bo_cmd x;
		rand_cmd(op, &x);
		check_cmd_roundtrip(&x, iter);
		bo_seatmap_free((bo_seatmap *)x.map);
	}
	assert_no_leak(baseline);
}

Test(codec, result_roundtrip_every_op_and_status)
{
	seed_init();
	int iter = 0;
	for (int round = 0; round < 60; round++) {
		for (uint8_t op = 1; op < BO_OP_COUNT; op++) {
			for (uint8_t st = 0; st < BO_STATUS_COUNT; st++, iter++) {
				bo_result x, y;
				rand_result(op, st, &x);
				int32_t n;
				uint8_t *b = enc_result(&x, &n);
				int32_t rc = dec_result_exact(b, (size_t)n, &y);
				cr_assert_eq(rc, n, SEED_FMT "iter %d op %u st %u: decode %d/%d",
				             SEED, iter, op, st, rc, n);
				cr_assert(results_same(&x, &y), SEED_FMT "iter %d op %u st %u",
				          SEED, iter, op, st);
				bo_result py;
				project_result(&y, &py);
				cr_assert(memcmp(&py, &y, sizeof(y)) == 0,
				          SEED_FMT "iter %d op %u st %u: unused field set", SEED,
				          iter, op, st);
				cr_assert(codec_result_equal(&x, &y) && codec_result_equal(&y, &x));
				int32_t n2;
				uint8_t *b2 = enc_result(&y, &n2);
				cr_assert(n2 == n && memcmp(b, b2, (size_t)n) == 0,
				          SEED_FMT "iter %d: re-encode differs", SEED, iter);
				free(b2);
				free(b);
			}
		}
	}
}

/* ---- Equality helpers compare exactly the meaningful fields -------------- */

/* Flips one random byte somewhere in the struct, skipping the map pointer
 * (a command's map is mutated through its content below). */
static void mutate_bytes(void *p, size_t size, size_t skip_off, size_t skip_len)
{
	uint8_t *b = p;
	size_t i;
	do {
		i = rnd_below((uint32_t)size);
	} while (i >= skip_off && i < skip_off + skip_len);
	b[i] ^= (uint8_t)(1 + rnd_below(255));
}

Test(codec, equal_helpers_track_meaningful_fields)
{
	seed_init();
	int changed = 0, unchanged = 0;
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		bo_cmd x, y;
		rand_cmd(op, &x);
		y = x;
		mutate_bytes(&y, sizeof(y), offsetof(bo_cmd, map), sizeof(y.map));
		/* Keep y's counts in range, as for any value that has an encoding. */
		y.seat_count %= BO_SEATS_PER_HOLD_MAX + 1;
		y.payref_len %= BO_PAYREF_LEN_MAX + 1;
		y.flags &= BO_CMD_F_OPERATOR | BO_CMD_F_ANY_CLIENT;
		y.op = x.op;
		int same = cmds_same(&x, &y);
		cr_assert_eq(codec_cmd_equal(&x, &y), same, SEED_FMT "iter %d op %u", SEED, iter,
		             op);
		same ? unchanged++ : changed++;

		bo_result r, s;
		rand_result(op, (uint8_t)rnd_below(BO_STATUS_COUNT), &r);
		s = r;
		mutate_bytes(&s, sizeof(s), 0, 0);
		s.op = r.op;
		s.status = r.status;
		s.seat_count %= BO_SEATS_PER_HOLD_MAX + 1;
		s.avail.category_count %= BO_CATEGORIES_MAX + 1;
		s.avail.pool_count %= BO_POOLS_PER_EVENT_MAX + 1;
		same = results_same(&r, &s);
		cr_assert_eq(codec_result_equal(&r, &s), same, SEED_FMT "iter %d op %u st %u", SEED,
		             iter, op, r.status);
		same ? unchanged++ : changed++;

		bo_seatmap_free((bo_seatmap *)x.map);
	}
	/* Both branches must have been exercised for the test to mean anything. */
	cr_assert(changed > 1000 && unchanged > 1000, "changed %d unchanged %d", changed,
	          unchanged);
}

Test(codec, cmd_equal_compares_map_content)
{
	seed_init();
	for (int iter = 0; iter < 300; iter++) {
		bo_cmd x;
		for (;;) {
			rand_cmd(BO_OP_CREATE_EVENT, &x);
			if (x.map != NULL && x.map->seat_count > 0)
				break;
			bo_seatmap_free((bo_seatmap *)x.map);
		}
		int32_t n;
		uint8_t *b = enc_cmd(&x, &n);
		bo_cmd y;
		bo_seatmap *m;
		cr_assert_eq(codec_cmd_decode(b, (size_t)n, &y, &m), n);
		cr_assert(codec_cmd_equal(&x, &y));
		uint32_t i = rnd_below(m->seat_count);
		m->categories[i] = (uint8_t)((m->categories[i] + 1) % (BO_CATEGORIES_MAX + 1));
		cr_assert(!codec_cmd_equal(&x, &y), SEED_FMT "category change unseen", SEED);
		m->categories[i] = x.map->categories[i];
		m->rows[rnd_below(m->row_count)].section ^= 1;
		cr_assert(!codec_cmd_equal(&x, &y), SEED_FMT "section change unseen", SEED);
		y.map = NULL;
		cr_assert(!codec_cmd_equal(&x, &y), "map vs no map");
		free(b);
		bo_seatmap_free(m);
		bo_seatmap_free((bo_seatmap *)x.map);
	}
}

/* ---- Truncation ---------------------------------------------------------- */

Test(codec, every_truncation_fails_cleanly)
{
	seed_init();
	long baseline = leak_baseline();
	long prefixes = 0;
	for (int iter = 0; iter < 600; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		bo_cmd x;
		rand_cmd(op, &x);
		int32_t n;
		uint8_t *b = enc_cmd(&x, &n);
		for (int32_t len = 0; len < n; len++, prefixes++) {
			bo_cmd y;
			bo_seatmap *m = (bo_seatmap *)1;
			int32_t rc = dec_cmd_exact(b, (size_t)len, &y, &m);
			cr_assert_eq(rc, -EINVAL, SEED_FMT "op %u prefix %d of %d: %d", SEED, op,
			             len, n, rc);
			cr_assert(m == NULL, "failed decode must leave no map");
		}
		free(b);
		bo_seatmap_free((bo_seatmap *)x.map);

		bo_result r, s;
		rand_result(op, (uint8_t)rnd_below(BO_STATUS_COUNT), &r);
		b = enc_result(&r, &n);
		for (int32_t len = 0; len < n; len++, prefixes++)
			cr_assert_eq(dec_result_exact(b, (size_t)len, &s), -EINVAL,
			             SEED_FMT "result op %u st %u prefix %d/%d", SEED, op, r.status,
			             len, n);
		free(b);
	}
	cr_assert(prefixes > 10000, "only %ld prefixes", prefixes);
	assert_no_leak(baseline);
}

/* Truncating a large map's encoding at points spread over its length: from
 * the row data on, every failure happens after the map was allocated, so
 * each cut exercises a failure path that must free it. */
Test(codec, large_map_truncations_free_the_map)
{
	seed_init();
	long baseline = leak_baseline();
	bo_cmd c;
	rand_cmd(BO_OP_CREATE_EVENT, &c);
	bo_seatmap_free((bo_seatmap *)c.map);
	bo_seatmap *m = bo_seatmap_new(1000, 200000, 1);
	cr_assert(m != NULL);
	m->row_count = 1000, m->seat_count = 200000, m->pool_count = 1, m->category_count = 4;
	for (uint32_t r = 0; r < 1000; r++)
		m->rows[r] = (bo_row_def){.section = (uint16_t)(r / 50), .seats = 200};
	for (uint32_t i = 0; i < 200000; i++)
		m->categories[i] = (uint8_t)((i / 13 + rnd_below(2)) % 4);
	m->pool_capacity[0] = 10;
	c.map = m;
	int32_t n;
	uint8_t *b = enc_cmd(&c, &n);
	int32_t step = n / 3000 > 0 ? n / 3000 : 1;
	int cuts = 0;
	for (int32_t len = 0; len < n; len += (len < 5000 ? 1 : step), cuts++) {
		bo_cmd y;
		bo_seatmap *dm = (bo_seatmap *)1;
		cr_assert_eq(dec_cmd_exact(b, (size_t)len, &y, &dm), -EINVAL, "cut %d of %d", len,
		             n);
		cr_assert(dm == NULL);
	}
	bo_cmd y;
	bo_seatmap *dm;
	cr_assert_eq(dec_cmd_exact(b, (size_t)n, &y, &dm), n, "the whole encoding decodes");
	cr_assert(maps_same(m, dm));
	bo_seatmap_free(dm);
	bo_seatmap_free(m);
	free(b);
	cr_log_info("%d cuts of a %d-byte map encoding", cuts, n);
	assert_no_leak(baseline);
}

/* ---- Garbage ------------------------------------------------------------- */

/* Decodes buf as both kinds; whatever is accepted must re-encode to
 * exactly the accepted bytes. Returns how many kinds accepted it. */
static int claim_op(uint8_t op)
{
	return op == BO_OP_EXTEND || op == BO_OP_RELEASE || op == BO_OP_CONFIRM ||
	       op == BO_OP_CANCEL;
}

/* The version 1 form of a version 2 command encoding b[0..n), in place:
 * version byte 1 and, for a claim op, no trailing flags byte (the only
 * layout difference, codec.c). Returns its length. */
static int32_t to_v1(uint8_t *b, int32_t n)
{
	cr_assert(n >= 2 && b[1] == CODEC_VERSION);
	b[1] = CODEC_VERSION_V1;
	return claim_op(b[0]) ? n - 1 : n;
}

static int decode_any(const uint8_t *buf, size_t len)
{
	int accepted = 0;
	bo_cmd c;
	bo_seatmap *m;
	int32_t rc = dec_cmd_exact(buf, len, &c, &m);
	cr_assert(rc == -EINVAL || (rc > 0 && (size_t)rc <= len), SEED_FMT "cmd rc %d", SEED, rc);
	if (rc > 0) {
		accepted++;
		int32_t n;
		uint8_t *b = enc_cmd(&c, &n);
		/* A version 1 command re-encodes as version 2: canonical means
		 * its v1 form is the very bytes accepted, and a claim op took
		 * the old rule with it. */
		if (buf[1] == CODEC_VERSION_V1) {
			cr_assert(!claim_op(c.op) || c.flags == BO_CMD_F_ANY_CLIENT,
			          SEED_FMT "v1 claim op flags %u", SEED, c.flags);
			n = to_v1(b, n);
		}
		cr_assert(n == rc && memcmp(b, buf, (size_t)n) == 0, SEED_FMT "cmd not canonical",
		          SEED);
		free(b);
		bo_seatmap_free(m);
	} else {
		cr_assert(m == NULL);
	}
	bo_result r;
	rc = dec_result_exact(buf, len, &r);
	cr_assert(rc == -EINVAL || (rc > 0 && (size_t)rc <= len), SEED_FMT "res rc %d", SEED, rc);
	if (rc > 0) {
		accepted++;
		int32_t n;
		uint8_t *b = enc_result(&r, &n);
		cr_assert(n == rc && memcmp(b, buf, (size_t)n) == 0,
		          SEED_FMT "result not canonical", SEED);
		free(b);
	}
	return accepted;
}

Test(codec, random_garbage_never_crashes)
{
	seed_init();
	long baseline = leak_baseline();
	uint8_t buf[400];
	int accepted = 0;
	for (int iter = 0; iter < 60000; iter++) {
		size_t len = rnd_below(sizeof(buf) + 1);
		fill_random(buf, len);
		/* Half the time make the header plausible, to get past byte 1. */
		if (len >= 2 && rnd_below(2)) {
			buf[0] = (uint8_t)(1 + rnd_below(BO_OP_COUNT - 1));
			/* Version 1 is also the result version. */
			buf[1] = rnd_below(2) ? CODEC_VERSION : CODEC_VERSION_V1;
		}
		accepted += decode_any(buf, len);
	}
	assert_no_leak(baseline);
	cr_log_info("garbage: %d accepted decodes", accepted);
	cr_assert(accepted > 0, "the header trick should let some garbage through");
}

Test(codec, mutated_encodings_never_crash)
{
	seed_init();
	long baseline = leak_baseline();
	int accepted = 0;
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		int32_t n;
		uint8_t *b;
		bo_cmd x;
		x.map = NULL;
		if (iter % 2 == 0) {
			rand_cmd(op, &x);
			b = enc_cmd(&x, &n);
		} else {
			bo_result r;
			rand_result(op, (uint8_t)rnd_below(BO_STATUS_COUNT), &r);
			b = enc_result(&r, &n);
		}
		int flips = 1 + (int)rnd_below(4);
		for (int k = 0; k < flips; k++) {
			uint32_t at = rnd_below((uint32_t)n);
			/* Small values hit counts and flags at their edges. */
			b[at] = rnd_below(2) ? (uint8_t)rnd() : (uint8_t)(b[at] + rnd_below(3) - 1);
		}
		accepted += decode_any(b, (size_t)n);
		free(b);
		bo_seatmap_free((bo_seatmap *)x.map);
	}
	assert_no_leak(baseline);
	cr_log_info("mutations: %d accepted decodes", accepted);
	cr_assert(accepted > 0);
}

/* ---- Limits and malformed input ------------------------------------------ */

/* Offsets in the documented layout (see codec.c). */
#define OFF_AFTER_IDS 26 /* op, version, three u64 ids */

static int32_t dec_cmd_free(const uint8_t *buf, size_t len)
{
	bo_cmd c;
	bo_seatmap *m = (bo_seatmap *)1;
	int32_t rc = dec_cmd_exact(buf, len, &c, &m);
	if (rc < 0)
		cr_assert(m == NULL);
	bo_seatmap_free(m);
	return rc;
}

Test(codec, oversize_counts_rejected_on_decode)
{
	seed_init();
	uint8_t buf[4096];
	memset(buf, 0, sizeof(buf));

	/* HOLD_SEATS: ttl then seat_count. 16 seats decode, 17 do not. */
	buf[0] = BO_OP_HOLD_SEATS;
	buf[1] = CODEC_VERSION;
	buf[OFF_AFTER_IDS + 4] = BO_SEATS_PER_HOLD_MAX;
	cr_assert_eq(dec_cmd_free(buf, 200), OFF_AFTER_IDS + 4 + 1 + 4 * BO_SEATS_PER_HOLD_MAX);
	buf[OFF_AFTER_IDS + 4] = BO_SEATS_PER_HOLD_MAX + 1;
	cr_assert_eq(dec_cmd_free(buf, 200), -EINVAL);
	buf[OFF_AFTER_IDS + 4] = 255;
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL);

	/* CONFIRM: claim then payref_len. */
	memset(buf, 0, sizeof(buf));
	buf[0] = BO_OP_CONFIRM;
	buf[1] = CODEC_VERSION;
	buf[OFF_AFTER_IDS + 8] = BO_PAYREF_LEN_MAX;
	cr_assert_eq(dec_cmd_free(buf, 200), OFF_AFTER_IDS + 8 + 1 + BO_PAYREF_LEN_MAX + 1);
	buf[OFF_AFTER_IDS + 8] = BO_PAYREF_LEN_MAX + 1;
	cr_assert_eq(dec_cmd_free(buf, 200), -EINVAL);

	/* CREATE_EVENT map header: has_map, rows, seats, pools, categories. A
	 * valid one-row map first, then each count pushed over its limit. */
	uint8_t *h = buf + OFF_AFTER_IDS;
	memset(buf, 0, sizeof(buf));
	buf[0] = BO_OP_CREATE_EVENT;
	buf[1] = CODEC_VERSION;
	h[0] = 1;
	bo_le_store32(h + 1, 1); /* rows */
	bo_le_store32(h + 5, 3); /* seats */
	h[9] = 0;                /* pools */
	h[10] = 2;               /* categories */
	h[11] = 7, h[12] = 0;    /* section 7 */
	h[13] = 3, h[14] = 0;    /* 3 seats */
	h[15] = 3, h[16] = 0;    /* run of 3 */
	h[17] = 1;               /* category 1 */
	int32_t valid_len = OFF_AFTER_IDS + 18;
	cr_assert_eq(dec_cmd_free(buf, (size_t)valid_len), valid_len);

	uint8_t save[32];
	memcpy(save, h, sizeof(save));
	bo_le_store32(h + 1, BO_ROWS_PER_EVENT_MAX + 1);
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "rows over limit");
	memcpy(h, save, sizeof(save));
	bo_le_store32(h + 5, BO_SEATS_PER_EVENT_MAX + 1);
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "seats over limit");
	memcpy(h, save, sizeof(save));
	bo_le_store32(h + 5, BO_SEATS_PER_ROW_MAX + 1);
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "seats beyond what rows can hold");
	memcpy(h, save, sizeof(save));
	h[9] = BO_POOLS_PER_EVENT_MAX + 1;
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "pools over limit");
	memcpy(h, save, sizeof(save));
	h[10] = BO_CATEGORIES_MAX + 1;
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "categories over limit");
	memcpy(h, save, sizeof(save));
	/* Maximal counts but far too few bytes: refused before allocating. */
	bo_le_store32(h + 1, BO_ROWS_PER_EVENT_MAX);
	bo_le_store32(h + 5, BO_SEATS_PER_EVENT_MAX);
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "counts larger than input");
	memcpy(h, save, sizeof(save));

	/* Non-canonical or inconsistent maps. */
	h[0] = 2;
	cr_assert_eq(dec_cmd_free(buf, (size_t)valid_len), -EINVAL, "has_map 2");
	memcpy(h, save, sizeof(save));
	h[15] = 2; /* run of 2 + run of 1 of the same category: not maximal */
	h[18] = 1, h[19] = 0, h[20] = 1;
	cr_assert_eq(dec_cmd_free(buf, (size_t)valid_len + 3), -EINVAL, "split run");
	h[20] = 0; /* same split, different categories: valid */
	cr_assert_eq(dec_cmd_free(buf, (size_t)valid_len + 3), valid_len + 3, "two runs");
	memcpy(h, save, sizeof(save));
	h[15] = 0; /* zero-length run */
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "empty run");
	memcpy(h, save, sizeof(save));
	h[15] = 4; /* run longer than the row */
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "run overflows row");
	memcpy(h, save, sizeof(save));
	h[13] = 2; /* rows sum to 2, header says 3 */
	h[15] = 2;
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "row sum mismatch");
	memcpy(h, save, sizeof(save));
	h[17] = 2; /* category 2 of 2: the engine's check must refuse it */
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "category out of range");
	memcpy(h, save, sizeof(save));
	h[12] = 0xff; /* section 0xff07 >= BO_SECTIONS_PER_EVENT_MAX */
	cr_assert_eq(dec_cmd_free(buf, sizeof(buf)), -EINVAL, "section out of range");
	memcpy(h, save, sizeof(save));
	cr_assert_eq(dec_cmd_free(buf, (size_t)valid_len), valid_len, "restored");

	/* Unknown op, version, tag. */
	bo_cmd c;
	rand_cmd(BO_OP_RELEASE, &c);
	int32_t n;
	uint8_t *b = enc_cmd(&c, &n);
	cr_assert_eq(dec_cmd_free(b, (size_t)n), n);
	b[1] = CODEC_VERSION + 1;
	cr_assert_eq(dec_cmd_free(b, (size_t)n), -EINVAL, "future version");
	b[1] = CODEC_VERSION_V1; /* v1 has no flags byte: it is left over */
	cr_assert_eq(dec_cmd_free(b, (size_t)n), n - 1, "the same bytes as version 1");
	b[1] = 0;
	cr_assert_eq(dec_cmd_free(b, (size_t)n), -EINVAL, "version 0");
	b[1] = CODEC_VERSION;
	b[0] = BO_OP_NONE;
	cr_assert_eq(dec_cmd_free(b, (size_t)n), -EINVAL, "op none");
	b[0] = BO_OP_COUNT;
	cr_assert_eq(dec_cmd_free(b, (size_t)n), -EINVAL, "op past the last");
	free(b);

	/* Results: status, detail, seat_count, seat_state, avail counts. */
	bo_result r, s;
	memset(&r, 0, sizeof(r));
	r.op = BO_OP_QUERY_SEATS;
	r.seat_count = 2;
	b = enc_result(&r, &n);
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), n);
	uint8_t *rs = b + 28; /* op, version, status, replayed, ids */
	rs[0] = BO_SEATS_PER_HOLD_MAX + 1;
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), -EINVAL, "result seat_count");
	rs[0] = 2;
	rs[1 + 8] = BO_SEAT_STATE_COUNT;
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), -EINVAL, "seat state");
	rs[1 + 8] = 0;
	b[2] = BO_STATUS_COUNT;
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), -EINVAL, "status");
	free(b);
	memset(&r, 0, sizeof(r));
	r.op = BO_OP_QUERY_AVAIL;
	b = enc_result(&r, &n);
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), n);
	uint8_t big[256];
	memset(big, 0, sizeof(big));
	memcpy(big, b, (size_t)n);
	big[28] = BO_CATEGORIES_MAX + 1;
	cr_assert_eq(dec_result_exact(big, sizeof(big), &s), -EINVAL, "avail categories");
	big[28] = 0;
	big[29] = BO_POOLS_PER_EVENT_MAX + 1;
	cr_assert_eq(dec_result_exact(big, sizeof(big), &s), -EINVAL, "avail pools");
	free(b);
	memset(&r, 0, sizeof(r));
	r.op = BO_OP_HOLD_SEATS;
	r.status = BO_TAKEN;
	b = enc_result(&r, &n);
	b[28] = BO_D_COUNT;
	cr_assert_eq(dec_result_exact(b, (size_t)n, &s), -EINVAL, "detail");
	free(b);
}

Test(codec, unencodable_values_rejected_on_encode)
{
	seed_init();
	uint8_t buf[CODEC_CMD_SIZE_NOMAP_MAX + CODEC_RESULT_SIZE_MAX];
	bo_cmd c;
	rand_cmd(BO_OP_HOLD_SEATS, &c);
	c.seat_count = BO_SEATS_PER_HOLD_MAX + 1;
	cr_assert_eq(codec_cmd_size(&c), -EINVAL);
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);
	rand_cmd(BO_OP_CONFIRM, &c);
	c.payref_len = BO_PAYREF_LEN_MAX + 1;
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);
	/* Counts over the arrays matter only where the op uses them. */
	rand_cmd(BO_OP_RELEASE, &c);
	c.seat_count = 200;
	c.payref_len = 200;
	cr_assert(codec_cmd_encode(&c, buf, sizeof(buf)) > 0);
	c.op = BO_OP_NONE;
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);
	c.op = BO_OP_COUNT;
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);

	/* A map the engine would refuse has no encoding. */
	rand_cmd(BO_OP_CREATE_EVENT, &c);
	bo_seatmap_free((bo_seatmap *)c.map);
	bo_seatmap *m = bo_seatmap_new(1, 2, 0);
	cr_assert(m != NULL);
	m->row_count = 1, m->seat_count = 2, m->category_count = 1;
	m->rows[0].seats = 2;
	c.map = m;
	cr_assert(codec_cmd_size(&c) > 0);
	m->categories[1] = 1; /* >= category_count */
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);
	m->categories[1] = 0;
	m->rows[0].seats = 3; /* rows no longer sum to seat_count */
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);
	bo_seatmap_free(m);

	bo_result r;
	rand_result(BO_OP_QUERY_SEATS, BO_OK, &r);
	r.seat_count = 1;
	r.seat_state[0] = BO_SEAT_STATE_COUNT;
	cr_assert_eq(codec_result_encode(&r, buf, sizeof(buf)), -EINVAL);
	rand_result(BO_OP_QUERY_AVAIL, BO_OK, &r);
	r.avail.pool_count = BO_POOLS_PER_EVENT_MAX + 1;
	cr_assert_eq(codec_result_encode(&r, buf, sizeof(buf)), -EINVAL);
	rand_result(BO_OP_HOLD_BEST, BO_TAKEN, &r);
	r.detail = BO_D_COUNT;
	cr_assert_eq(codec_result_encode(&r, buf, sizeof(buf)), -EINVAL);
	r.status = BO_STATUS_COUNT;
	cr_assert_eq(codec_result_encode(&r, buf, sizeof(buf)), -EINVAL);
}

/* ---- Short output buffers ------------------------------------------------ */

Test(codec, short_buffer_is_enospc_and_writes_nothing_past_cap)
{
	seed_init();
	uint8_t buf[CODEC_CMD_SIZE_NOMAP_MAX + 4096];
	for (int iter = 0; iter < 200; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		bo_cmd c;
		for (;;) {
			rand_cmd(op, &c);
			if (codec_cmd_size(&c) < (int32_t)sizeof(buf))
				break;
			bo_seatmap_free((bo_seatmap *)c.map); /* too big for buf: again */
		}
		bo_result r;
		rand_result(op, (uint8_t)rnd_below(BO_STATUS_COUNT), &r);
		int32_t sizes[2] = {codec_cmd_size(&c), codec_result_size(&r)};
		for (int kind = 0; kind < 2; kind++) {
			for (int32_t cap = 0; cap < sizes[kind]; cap++) {
				memset(buf, 0xa5, sizeof(buf));
				int32_t rc = kind == 0 ? codec_cmd_encode(&c, buf, (size_t)cap)
				                       : codec_result_encode(&r, buf, (size_t)cap);
				cr_assert_eq(rc, -ENOSPC, SEED_FMT "kind %d cap %d size %d", SEED,
				             kind, cap, sizes[kind]);
				for (size_t i = (size_t)cap; i < sizeof(buf); i++)
					cr_assert_eq(buf[i], 0xa5, "wrote past cap");
			}
		}
		bo_seatmap_free((bo_seatmap *)c.map);
	}
}

/* ---- The documented layout, byte by byte --------------------------------- */

Test(codec, layout_is_little_endian_as_documented)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.op = BO_OP_RELEASE;
	c.client_id = 0x0102030405060708ull;
	c.request_id = 0x1112131415161718ull;
	c.event_id = 0x2122232425262728ull;
	c.claim_id = 0x3132333435363738ull;
	c.ttl_ms = 5000; /* unused by RELEASE: must not appear */
	/* clang-format off */
	const uint8_t want[] = {
		BO_OP_RELEASE, CODEC_VERSION,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
		0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31,
		0x00, /* flags */
	};
	/* clang-format on */
	uint8_t got[64];
	cr_assert_eq(codec_cmd_encode(&c, got, sizeof(got)), (int32_t)sizeof(want));
	cr_assert(memcmp(got, want, sizeof(want)) == 0);

	/* A two-row map: categories 0 0 1 | 1 1, one pool of 500. */
	bo_seatmap *m = bo_seatmap_new(2, 5, 1);
	cr_assert(m != NULL);
	m->row_count = 2, m->seat_count = 5, m->pool_count = 1, m->category_count = 2;
	m->rows[0] = (bo_row_def){.section = 0x0102, .seats = 3};
	m->rows[1] = (bo_row_def){.section = 0x0003, .seats = 2};
	const uint8_t cats[] = {0, 0, 1, 1, 1};
	memcpy(m->categories, cats, sizeof(cats));
	m->pool_capacity[0] = 500;
	memset(&c, 0, sizeof(c));
	c.op = BO_OP_CREATE_EVENT;
	c.map = m;
	/* clang-format off */
	const uint8_t want_map[] = {
		1,			/* has_map */
		2, 0, 0, 0,		/* rows */
		5, 0, 0, 0,		/* seats */
		1,			/* pools */
		2,			/* categories */
		0xf4, 0x01, 0, 0,	/* pool capacity 500 */
		0x02, 0x01, 3, 0,	/* row 0: section 0x102, 3 seats */
		2, 0, 0, 1, 0, 1,	/* runs (2 x cat 0) (1 x cat 1) */
		3, 0, 2, 0,		/* row 1: section 3, 2 seats */
		2, 0, 1,		/* run (2 x cat 1): runs restart per row */
	};
	/* clang-format on */
	uint8_t got_map[128];
	int32_t n = codec_cmd_encode(&c, got_map, sizeof(got_map));
	cr_assert_eq(n, OFF_AFTER_IDS + (int32_t)sizeof(want_map));
	cr_assert(memcmp(got_map + OFF_AFTER_IDS, want_map, sizeof(want_map)) == 0);
	bo_seatmap_free(m);
}

/* ---- Large maps ---------------------------------------------------------- */

static void big_map_roundtrip(uint32_t rows, uint32_t seats_per_row, int alternate)
{
	uint32_t seats = rows * seats_per_row;
	bo_seatmap *m = bo_seatmap_new(rows, seats, BO_POOLS_PER_EVENT_MAX);
	cr_assert(m != NULL);
	m->row_count = rows, m->seat_count = seats, m->pool_count = BO_POOLS_PER_EVENT_MAX;
	m->category_count = BO_CATEGORIES_MAX;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].section = (uint16_t)(r % BO_SECTIONS_PER_EVENT_MAX);
		m->rows[r].seats = (uint16_t)seats_per_row;
	}
	for (uint32_t i = 0; i < seats; i++) {
		/* Alternating: every seat its own run, the worst case. */
		m->categories[i] = alternate
		                           ? (uint8_t)(i % 2)
		                           : (uint8_t)((i / 7 + rnd_below(2)) % BO_CATEGORIES_MAX);
	}
	for (uint32_t p = 0; p < BO_POOLS_PER_EVENT_MAX; p++)
		m->pool_capacity[p] = BO_POOL_CAPACITY_MAX - p;
	bo_cmd c;
	rand_cmd(BO_OP_CREATE_EVENT, &c);
	bo_seatmap_free((bo_seatmap *)c.map);
	c.map = m;
	int32_t n;
	uint8_t *b = enc_cmd(&c, &n);
	cr_assert(n <= (int32_t)CODEC_CMD_SIZE_MAX, "size %d > max %u", n, CODEC_CMD_SIZE_MAX);
	bo_cmd y;
	bo_seatmap *dm;
	cr_assert_eq(dec_cmd_exact(b, (size_t)n, &y, &dm), n);
	cr_assert(maps_same(m, dm) && codec_cmd_equal(&c, &y));
	cr_log_info("map of %u seats in %u rows: %d bytes", seats, rows, n);
	free(b);
	bo_seatmap_free(dm);
	bo_seatmap_free(m);
}

Test(codec, large_maps_roundtrip)
{
	seed_init();
	big_map_roundtrip(1000, 100, 0); /* 100k seats, typical runs */
	big_map_roundtrip(25, BO_SEATS_PER_ROW_MAX, 0);
	/* Every seat its own run in 512 rows of 1,024: 1.5 MiB of description,
	 * within BO_MAP_DESC_BYTES_MAX (1 Mi seats of one-seat runs are over
	 * it: see the next test). */
	big_map_roundtrip(512, 1024, 1);
}

/* The largest valid map (a description of exactly BO_MAP_DESC_BYTES_MAX)
 * encodes to exactly CODEC_CMD_SIZE_MAX and roundtrips; a map one byte
 * over has no encoding, and bytes that carry one run more than the largest
 * map do not decode (and leave nothing allocated). */
Test(codec, the_largest_valid_map_is_exactly_the_command_size_bound)
{
	seed_init();
	long baseline = leak_baseline();
	bo_seatmap *m = descmap_sized(BO_MAP_DESC_BYTES_MAX);
	cr_assert_not_null(m);
	bo_cmd c;
	rand_cmd(BO_OP_CREATE_EVENT, &c);
	bo_seatmap_free((bo_seatmap *)c.map);
	c.map = m;
	int32_t n;
	uint8_t *b = enc_cmd(&c, &n);
	cr_assert_eq(n, (int32_t)CODEC_CMD_SIZE_MAX, "largest map: %d bytes, bound %u", n,
	             CODEC_CMD_SIZE_MAX);
	bo_cmd y;
	bo_seatmap *dm;
	cr_assert_eq(dec_cmd_exact(b, (size_t)n, &y, &dm), n);
	cr_assert(maps_same(m, dm) && codec_cmd_equal(&c, &y));
	bo_seatmap_free(dm);

	/* One run more: the last row's last run (u16 length, u8 category, the
	 * final 3 bytes) split into length-1 of it and one seat of the other
	 * category. Every other rule of the map still holds. */
	uint32_t len = bo_le_load16(b + n - 3);
	uint8_t cat = b[n - 1];
	cr_assert_geq(len, 2, "the last run must be splittable");
	uint8_t *over = malloc((size_t)n + 3);
	cr_assert_not_null(over);
	memcpy(over, b, (size_t)n);
	bo_le_store16(over + n - 3, (uint16_t)(len - 1));
	over[n] = 1;
	over[n + 1] = 0;
	over[n + 2] = (uint8_t)(cat ^ 1);
	cr_assert_eq(dec_cmd_exact(over, (size_t)n + 3, &y, &dm), -EINVAL);
	cr_assert_null(dm);
	/* The same edit on the map itself: 3 bytes over, no encoding. */
	m->categories[m->seat_count - 1] ^= 1;
	cr_assert_eq(bo_seatmap_desc_bytes(m), BO_MAP_DESC_BYTES_MAX + 3u);
	cr_assert_eq(codec_cmd_size(&c), -EINVAL);
	cr_assert_eq(codec_cmd_encode(&c, over, (size_t)n + 3), -EINVAL);
	free(over);
	free(b);
	bo_seatmap_free(m);

	/* One byte over (another shape) and the defect's 1 Mi alternating
	 * seats: no encoding either. */
	m = descmap_sized(BO_MAP_DESC_BYTES_MAX + 1u);
	c.map = m;
	cr_assert_eq(codec_cmd_size(&c), -EINVAL);
	bo_seatmap_free(m);
	m = descmap_alternating();
	c.map = m;
	cr_assert_eq(codec_cmd_size(&c), -EINVAL);
	bo_seatmap_free(m);
	assert_no_leak(baseline);
}

/* ---- Version 2 flags and version 1 commands ------------------------------ */

Test(codec, flags_are_the_last_byte_of_a_claim_op_and_unknown_bits_are_invalid)
{
	seed_init();
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.op = BO_OP_RELEASE;
	c.client_id = 7;
	c.claim_id = 9;
	c.flags = BO_CMD_F_OPERATOR;
	uint8_t buf[64];
	int32_t n = codec_cmd_encode(&c, buf, sizeof(buf));
	cr_assert_eq(n, OFF_AFTER_IDS + 8 + 1);
	cr_assert_eq(buf[1], 2, "commands are version 2");
	cr_assert_eq(buf[n - 1], BO_CMD_F_OPERATOR);
	bo_cmd y;
	bo_seatmap *m;
	cr_assert_eq(dec_cmd_exact(buf, (size_t)n, &y, &m), n);
	cr_assert_eq(y.flags, BO_CMD_F_OPERATOR);
	/* A flag is content of a claim op: the equality helper sees it. */
	bo_cmd z = c;
	z.flags = 0;
	cr_assert(!codec_cmd_equal(&c, &z));

	buf[n - 1] = 0x04; /* no such flag */
	cr_assert_eq(dec_cmd_free(buf, (size_t)n), -EINVAL);
	buf[n - 1] = 0x80;
	cr_assert_eq(dec_cmd_free(buf, (size_t)n), -EINVAL);
	c.flags = 0x04;
	cr_assert_eq(codec_cmd_size(&c), -EINVAL);
	cr_assert_eq(codec_cmd_encode(&c, buf, sizeof(buf)), -EINVAL);

	/* Other ops carry no flags: not encoded, decoded as 0. */
	memset(&c, 0, sizeof(c));
	c.op = BO_OP_HOLD_POOL;
	c.client_id = 7;
	c.flags = 0xff;
	n = codec_cmd_encode(&c, buf, sizeof(buf));
	cr_assert_eq(n, OFF_AFTER_IDS + 4 + 1 + 2, "ttl, pool, quantity and nothing more");
	cr_assert_eq(dec_cmd_exact(buf, (size_t)n, &y, &m), n);
	cr_assert_eq(y.flags, 0);
}

/* A journal written before claims were owned holds version 1 commands. The
 * hand-assembled bytes below are what that encoder wrote for a RELEASE
 * (the layout test above, less its flags byte). */
Test(codec, version1_release_decodes_with_the_old_any_client_rule)
{
	/* clang-format off */
	const uint8_t v1[] = {
		BO_OP_RELEASE, 1,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
		0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31,
	};
	/* clang-format on */
	bo_cmd c;
	bo_seatmap *m;
	cr_assert_eq(dec_cmd_exact(v1, sizeof(v1), &c, &m), (int32_t)sizeof(v1));
	cr_assert_eq(c.op, BO_OP_RELEASE);
	cr_assert_eq(c.client_id, 0x0102030405060708ull);
	cr_assert_eq(c.claim_id, 0x3132333435363738ull);
	cr_assert_eq(c.flags, BO_CMD_F_ANY_CLIENT);
	/* It re-encodes as version 2, which keeps the rule it carries. */
	uint8_t buf[64];
	int32_t n = codec_cmd_encode(&c, buf, sizeof(buf));
	cr_assert_eq(n, (int32_t)sizeof(v1) + 1);
	cr_assert_eq(buf[1], CODEC_VERSION);
	cr_assert_eq(buf[n - 1], BO_CMD_F_ANY_CLIENT);
	cr_assert(memcmp(buf + 2, v1 + 2, sizeof(v1) - 2) == 0);
	/* A truncated v1 record is still refused. */
	cr_assert_eq(dec_cmd_free(v1, sizeof(v1) - 1), -EINVAL);
}

Test(codec, version1_every_op_decodes_as_its_v2_value_with_the_old_rule)
{
	seed_init();
	long baseline = leak_baseline();
	for (int iter = 0; iter < 4000; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		bo_cmd x;
		rand_cmd(op, &x);
		int32_t n;
		uint8_t *b = enc_cmd(&x, &n);
		int32_t n1 = to_v1(b, n);
		bo_cmd y;
		bo_seatmap *m;
		cr_assert_eq(dec_cmd_exact(b, (size_t)n1, &y, &m), n1, SEED_FMT "iter %d op %u",
		             SEED, iter, op);
		bo_cmd want = x;
		want.flags = claim_op(op) ? BO_CMD_F_ANY_CLIENT : 0;
		cr_assert(cmds_same(&want, &y), SEED_FMT "iter %d op %u", SEED, iter, op);
		cr_assert_eq(y.flags, want.flags, SEED_FMT "iter %d op %u: flags %u", SEED, iter,
		             op, y.flags);
		bo_seatmap_free(m);
		bo_seatmap_free((bo_seatmap *)x.map);
		free(b);
	}
	assert_no_leak(baseline);
}
