/*
 * wire_test.c — proves that the wire codec (protocol/) speaks the wire protocol v1 of
 * schemas/protocol.md and treats requests as hostile input.
 *
 * How:
 *  - Round trips: random commands of every op (random seat maps included),
 *    alone and in batches, go through wire_encode_request and
 *    wire_decode_request and must come back equal (codec_cmd_equal, both
 *    ways); random results of every op x status go through
 *    wire_encode_replies and wire_decode_replies (codec_result_equal);
 *    a query's read-model sequence (view_seq, key "seq") travels with it,
 *    any other op's is neither written nor read back.
 *  - A real engine session driven only through the wire (encode request,
 *    decode, engine_apply, encode replies, decode): every op, a replay, a
 *    conflict and a taken seat; each decoded reply equals the engine's own
 *    result and carries the documented keys.
 *  - Claim ids have the form protocol.md §3 gives (generation * 2^32 + slot,
 *    a reused slot one generation up) and travel exactly past 2^53.
 *  - Exact bytes: the hex examples of schemas/protocol.md are produced by
 *    the encoders and accepted by the decoders.
 *  - Hostile input: every truncation of a valid request and reply (exact-size
 *    heap copies, so ASan sees any over-read), random garbage and mutated
 *    messages, and a table of malformed messages and commands (wrong types,
 *    unknown op/key, oversized arrays and strings, huge declared counts with
 *    few bytes, depth 9 vs 8, trailing bytes, int overflow, negative ints)
 *    each give a clean invalid with the expected detail and text.
 *  - Seat maps are counted (the binary is linked with
 *    -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free): no test may leave
 *    one allocated, and an injected allocation failure yields -ENOMEM with
 *    nothing left allocated.
 *
 * The seed is random per run and printed in failure messages; set
 * WIRE_TEST_SEED=<n> to replay a run.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack/pack.h>

#include "engine/codec.h"
#include "engine/engine.h"
#include "protocol/wire.h"
#include "tests/support/seatmap_count.h"

/* ---- Randomness ---------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t seed;
#define SEED_FMT "seed %llu: "
#define SEED ((unsigned long long)seed)

static void seed_init(void)
{
	const char *s = getenv("WIRE_TEST_SEED");
	seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
	rng_state = seed ? seed : 1;
}

static uint64_t rnd(void)
{
	/* xorshift64*: enough for test data, reproducible from the seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Integers that hit every msgpack width. */
static uint64_t rnd_u64(void)
{
	switch (rnd_below(5)) {
	case 0:
		return rnd_below(128);
	case 1:
		return rnd_below(65536);
	case 2:
		return rnd_below(1ull << 32);
	case 3:
		return UINT64_MAX - rnd_below(3);
	default:
		return rnd();
	}
}

/* ---- Seat maps under test control ---------------------------------------- */

/* Every map the codec allocates is counted by tests/support/seatmap_count.c
 * (this binary is linked with -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free). */
static long leak_baseline(void)
{
	/* Without the wrap every leak check below would be blind. */
	cr_assert(seatmap_count_wrapped(), "link wire_test with -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free");
	return seatmap_count_live;
}

static void assert_no_leak(long baseline)
{
	cr_assert_eq(seatmap_count_live, baseline, "%ld seat maps leaked", seatmap_count_live - baseline);
}

/* ---- Helpers ------------------------------------------------------------- */

/* Decoder state big enough for any message, shared by the tests (static:
 * 4096 commands do not belong on a stack). */
static bo_cmd cmds[WIRE_BATCH_MAX];
static wire_cmd_error errs[WIRE_BATCH_MAX];
static bo_result results[WIRE_BATCH_MAX];
static wire_reply_info infos[WIRE_BATCH_MAX];

/* Decodes from an exact-size heap copy, so any read past the end is an
 * ASan error. */
static int decode_req(const void *buf, size_t len, uint32_t cap, wire_msg *msg)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy != NULL);
	if (len)
		memcpy(copy, buf, len);
	int rc = wire_decode_request(copy, len, cmds, errs, cap, msg);
	free(copy);
	return rc;
}

static int decode_rep(const void *buf, size_t len, wire_msg *msg)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy != NULL);
	if (len)
		memcpy(copy, buf, len);
	int rc = wire_decode_replies(copy, len, results, infos, WIRE_BATCH_MAX, msg);
	free(copy);
	return rc;
}

static bo_seatmap *random_map(void)
{
	uint32_t rows = (uint32_t)rnd_below(5), pools = (uint32_t)rnd_below(4);
	uint16_t seats[5];
	uint32_t total = 0;
	for (uint32_t r = 0; r < rows; r++) {
		seats[r] = (uint16_t)rnd_below(30);
		total += seats[r];
	}
	bo_seatmap *m = bo_seatmap_new(rows, total, pools);
	cr_assert(m != NULL);
	m->category_count = (uint32_t)rnd_below(20);
	uint32_t first = 0;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].section = (uint16_t)rnd_u64();
		m->rows[r].seats = seats[r];
		int uniform = rnd_below(2) == 0;
		uint8_t cat = (uint8_t)rnd();
		for (uint32_t s = 0; s < seats[r]; s++)
			m->categories[first + s] = uniform ? cat : (uint8_t)rnd_below(4);
		first += seats[r];
	}
	for (uint32_t p = 0; p < pools; p++)
		m->pool_capacity[p] = (uint32_t)rnd_u64();
	return m;
}

/* A command with every field random, the unused ones too (they must not
 * matter). CREATE_EVENT gets a fresh map the caller frees. */
static void random_cmd(bo_cmd *c, uint8_t op)
{
	memset(c, 0, sizeof(*c));
	c->op = op;
	c->seat_count = (uint8_t)rnd_below(BO_SEATS_PER_HOLD_MAX + 1);
	c->category = (uint8_t)rnd();
	c->pool = (uint8_t)rnd();
	c->payref_len = (uint8_t)rnd_below(BO_PAYREF_LEN_MAX + 1);
	c->quantity = (uint16_t)rnd();
	c->ttl_ms = (uint32_t)rnd_u64();
	c->client_id = rnd_u64();
	c->request_id = rnd_u64();
	c->event_id = rnd_u64();
	c->claim_id = rnd_u64();
	for (uint32_t i = 0; i < BO_SEATS_PER_HOLD_MAX; i++)
		c->seats[i] = (uint32_t)rnd_u64();
	for (uint32_t i = 0; i < BO_PAYREF_LEN_MAX; i++)
		c->payref[i] = (char)rnd(); /* any bytes: payref is taken as is */
	c->map = op == BO_OP_CREATE_EVENT ? random_map() : NULL;
	if ((op == BO_OP_RELEASE || op == BO_OP_CANCEL) && rnd_below(2))
		c->flags = BO_CMD_F_OPERATOR; /* the one flag the wire carries */
}

static void free_cmd_maps(bo_cmd *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		bo_seatmap_free((bo_seatmap *)(uintptr_t)c[i].map);
		c[i].map = NULL;
	}
}

static void random_result(bo_result *r, uint8_t op, uint8_t status)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->status = status;
	r->detail = status == BO_OK ? 0 : (uint8_t)rnd_below(BO_D_COUNT);
	r->seat_count = (uint8_t)rnd_below(BO_SEATS_PER_HOLD_MAX + 1);
	r->quantity = (uint32_t)rnd_u64();
	r->client_id = rnd_u64();
	r->request_id = rnd_u64();
	r->event_id = rnd_u64();
	r->claim_id = rnd_u64();
	r->expires_at_ms = (int64_t)(rnd() >> (rnd_below(2) ? 1 : 20));
	if (rnd_below(8) == 0)
		r->expires_at_ms = -r->expires_at_ms;
	for (uint32_t i = 0; i < BO_SEATS_PER_HOLD_MAX; i++) {
		r->seats[i] = (uint32_t)rnd_u64();
		r->seat_state[i] = (uint8_t)rnd_below(BO_SEAT_STATE_COUNT);
	}
	r->pool = (uint8_t)rnd_below(3);
	r->replayed = (uint8_t)rnd_below(2);
	/* Set for every op: only queries may carry it over the wire. */
	r->view_seq = rnd_below(3) == 0 ? 0 : rnd_u64() >> rnd_below(64);
	bo_avail *a = &r->avail;
	for (uint32_t i = 0; i < BO_SEAT_STATE_COUNT; i++)
		a->by_state[i] = (uint32_t)rnd_u64();
	a->category_count = (uint8_t)rnd_below(BO_CATEGORIES_MAX + 1);
	a->pool_count = (uint8_t)rnd_below(BO_POOLS_PER_EVENT_MAX + 1);
	for (uint32_t i = 0; i < BO_CATEGORIES_MAX; i++)
		a->free_by_category[i] = (uint32_t)rnd_u64();
	for (uint32_t i = 0; i < BO_POOLS_PER_EVENT_MAX; i++) {
		a->pool_capacity[i] = (uint32_t)rnd_u64();
		a->pool_free[i] = (uint32_t)rnd_u64();
	}
}

/* ---- msgpack builders for hand-made messages ----------------------------- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void mp_begin(void)
{
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void mp_str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}
static void mp_kv_u(const char *k, uint64_t v)
{
	mp_str(k);
	msgpack_pack_uint64(&pk, v);
}
static void mp_kv_s(const char *k, const char *v)
{
	mp_str(k);
	mp_str(v);
}
static void mp_raw(const void *p, size_t n)
{
	msgpack_sbuffer_write(&sb, p, n);
}

/* Writes the keys of a valid release command, `extra` more pairs to follow. */
static void mp_release(uint32_t extra)
{
	msgpack_pack_map(&pk, 5 + extra);
	mp_kv_s("op", "release");
	mp_kv_u("client", 7);
	mp_kv_u("request", 1);
	mp_kv_u("event", 42);
	mp_kv_u("hold", 12345);
}

static void sb_free(void)
{
	msgpack_sbuffer_destroy(&sb);
}

TestSuite(wire, .init = seed_init, .fini = sb_free);

/* ---- Names --------------------------------------------------------------- */

Test(wire, detail_names_complete_and_unique)
{
	cr_assert_str_eq(wire_detail_name(BO_D_NONE), "none");
	cr_assert_null(wire_detail_name(BO_D_COUNT));
	cr_assert_null(wire_detail_name(-1));
	for (int d = 0; d < BO_D_COUNT; d++) {
		const char *n = wire_detail_name(d);
		cr_assert(n != NULL && n[0] != '\0', "detail %d has no wire name", d);
		cr_assert(strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n), "name '%s'", n);
		cr_assert_str_neq(n, WIRE_DETAIL_MALFORMED);
		for (int e = 0; e < d; e++)
			cr_assert_str_neq(n, wire_detail_name(e), "details %d and %d share a name",
			                  e, d);
	}
	cr_assert_str_eq(wire_detail_name(BO_D_SEAT_UNAVAILABLE), "seat_unavailable");
}

/* ---- Round trips --------------------------------------------------------- */

static void check_request_roundtrip(const bo_cmd *src, uint32_t n, int as_array, int iter)
{
	long base = seatmap_count_live;
	mp_begin();
	cr_assert_eq(wire_encode_request(src, n, as_array, &sb), 0, SEED_FMT "iter %d", SEED, iter);
	wire_msg msg;
	int rc = decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg);
	cr_assert_eq(rc, 0, SEED_FMT "iter %d: %s", SEED, iter, msg.error);
	cr_assert_eq(msg.count, n);
	cr_assert_eq(msg.is_array, as_array ? 1 : 0);
	cr_assert_eq(msg.invalid, 0, SEED_FMT "iter %d: %s", SEED, iter, errs[0].text);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(errs[i].status, BO_OK, SEED_FMT "iter %d cmd %u: %s", SEED, iter, i,
		             errs[i].text);
		cr_assert(codec_cmd_equal(&src[i], &cmds[i]) && codec_cmd_equal(&cmds[i], &src[i]),
		          SEED_FMT "iter %d cmd %u op %s differs", SEED, iter, i,
		          bo_op_str(src[i].op));
	}
	wire_free_maps(cmds, n);
	cr_assert_eq(seatmap_count_live, base);
}

Test(wire, request_roundtrip_every_op)
{
	long base = leak_baseline();
	bo_cmd src[40];
	for (int iter = 0; iter < 3000; iter++) {
		uint8_t op = (uint8_t)(1 + iter % (BO_OP_COUNT - 1));
		random_cmd(&src[0], op);
		check_request_roundtrip(src, 1, 0, iter);
		free_cmd_maps(src, 1);
	}
	for (int iter = 0; iter < 200; iter++) {
		uint32_t n = (uint32_t)rnd_below(40);
		for (uint32_t i = 0; i < n; i++)
			random_cmd(&src[i], (uint8_t)(1 + rnd_below(BO_OP_COUNT - 1)));
		check_request_roundtrip(src, n, 1, iter);
		free_cmd_maps(src, n);
	}
	assert_no_leak(base);
}

Test(wire, request_roundtrip_full_batch_and_big_map)
{
	long base = leak_baseline();
	static bo_cmd src[WIRE_BATCH_MAX];
	for (uint32_t i = 0; i < WIRE_BATCH_MAX; i++)
		random_cmd(&src[i], BO_OP_HOLD_SEATS);
	check_request_roundtrip(src, WIRE_BATCH_MAX, 1, 0);
	/* The largest event on the wire: 256 rows of 4096 seats, a category
	 * listed per seat. The categories change every second seat, not every
	 * seat: one-seat runs all along would be over BO_MAP_DESC_BYTES_MAX. */
	bo_cmd c;
	random_cmd(&c, BO_OP_QUERY_AVAIL);
	c.op = BO_OP_CREATE_EVENT;
	bo_seatmap *m = bo_seatmap_new(256, BO_SEATS_PER_EVENT_MAX, BO_POOLS_PER_EVENT_MAX);
	cr_assert(m != NULL);
	m->category_count = BO_CATEGORIES_MAX;
	for (uint32_t r = 0; r < 256; r++)
		m->rows[r] = (bo_row_def){.section = (uint16_t)r, .seats = BO_SEATS_PER_ROW_MAX};
	for (uint32_t s = 0; s < BO_SEATS_PER_EVENT_MAX; s++)
		m->categories[s] = (uint8_t)((s / 2) % BO_CATEGORIES_MAX);
	for (uint32_t p = 0; p < BO_POOLS_PER_EVENT_MAX; p++)
		m->pool_capacity[p] = BO_POOL_CAPACITY_MAX;
	c.map = m;
	cr_assert_eq(bo_seatmap_check(m), BO_D_NONE);
	check_request_roundtrip(&c, 1, 0, 1);
	cr_assert_leq(sb.size, WIRE_MSG_MAX);
	bo_seatmap_free(m);
	assert_no_leak(base);
}

static void check_reply_roundtrip(const bo_result *src, uint32_t n, int is_array, int iter)
{
	mp_begin();
	cr_assert_eq(wire_encode_replies(src, NULL, n, is_array, &sb), 0, SEED_FMT "iter %d", SEED,
	             iter);
	wire_msg msg;
	int rc = decode_rep(sb.data, sb.size, &msg);
	cr_assert_eq(rc, 0, SEED_FMT "iter %d: %s", SEED, iter, msg.error);
	cr_assert_eq(msg.count, n);
	cr_assert_eq(msg.is_array, is_array ? 1 : 0);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert(codec_result_equal(&src[i], &results[i]) &&
		                  codec_result_equal(&results[i], &src[i]),
		          SEED_FMT "iter %d reply %u op %s status %s differs", SEED, iter, i,
		          bo_op_str(src[i].op), bo_status_str(src[i].status));
		int query = src[i].op == BO_OP_QUERY_AVAIL || src[i].op == BO_OP_QUERY_SEATS;
		cr_assert_eq(results[i].view_seq, query ? src[i].view_seq : 0,
		             SEED_FMT "iter %d reply %u op %s: view_seq", SEED, iter, i,
		             bo_op_str(src[i].op));
		if (src[i].status != BO_OK)
			cr_assert_str_eq(infos[i].error, src[i].detail
			                                         ? bo_detail_str(src[i].detail)
			                                         : infos[i].error);
		cr_assert_eq(infos[i].malformed, 0);
	}
}

Test(wire, reply_roundtrip_every_op_and_status)
{
	bo_result src[30];
	int iter = 0;
	for (int rep = 0; rep < 40; rep++) {
		for (uint8_t op = 1; op < BO_OP_COUNT; op++) {
			for (uint8_t st = 0; st < BO_STATUS_COUNT; st++) {
				random_result(&src[0], op, st);
				check_reply_roundtrip(src, 1, 0, iter++);
			}
		}
	}
	for (int rep = 0; rep < 200; rep++) {
		uint32_t n = (uint32_t)rnd_below(30);
		for (uint32_t i = 0; i < n; i++)
			random_result(&src[i], (uint8_t)(1 + rnd_below(BO_OP_COUNT - 1)),
			              (uint8_t)rnd_below(BO_STATUS_COUNT));
		check_reply_roundtrip(src, n, 1, iter++);
	}
}

/* The "seq" key: written exactly when a query has a view_seq, read on
 * queries (absent: 0, an old server), typed, dropped on other ops. */
Test(wire, query_replies_carry_the_read_model_seq)
{
	static const uint8_t seq_key[] = {0xa3, 's', 'e', 'q'};
	bo_result r = {.op = BO_OP_QUERY_SEATS, .status = BO_OK, .event_id = 9, .seat_count = 1,
	               .view_seq = 1ull << 40};
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, seq_key, sizeof(seq_key)) != NULL);
	wire_msg msg;
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].view_seq, 1ull << 40);
	r.view_seq = 0; /* answered by the engine itself */
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, seq_key, sizeof(seq_key)) == NULL);
	r = (bo_result){.op = BO_OP_HOLD_SEATS, .status = BO_OK, .seat_count = 1, .view_seq = 5};
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, seq_key, sizeof(seq_key)) == NULL, "not on a write");

	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "query_avail");
	mp_kv_u("seq", UINT64_MAX);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].view_seq, UINT64_MAX);
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_u("seq", 77); /* before "op": key order does not matter */
	mp_kv_s("status", "not_found");
	mp_kv_s("op", "query_seats");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].view_seq, 77);
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "release");
	mp_kv_u("seq", 77);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].view_seq, 0, "only a query's seq is kept");
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "query_avail");
	mp_kv_s("seq", "77");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "'seq' must be an unsigned integer") != NULL, "%s", msg.error);
	mp_begin();
	msgpack_pack_map(&pk, 4);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "query_avail");
	mp_kv_u("seq", 1);
	mp_kv_u("seq", 2);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "key 'seq' given twice") != NULL, "%s", msg.error);
}

/* The "retry_after_ms" key: written exactly on a busy/throttled reply with
 * a hint, read back on those statuses (typed, uint32), dropped on others. */
Test(wire, shed_replies_carry_the_retry_hint)
{
	static const uint8_t key[] = {0xae, 'r', 'e', 't', 'r', 'y', '_', 'a',
	                              'f',  't', 'e', 'r', '_', 'm', 's'};
	bo_result r = {.op = BO_OP_HOLD_SEATS, .status = BO_THROTTLED, .client_id = 3,
	               .request_id = 4, .event_id = 9, .retry_after_ms = 37};
	wire_msg msg;
	for (int st = BO_BUSY; st <= BO_THROTTLED; st++) {
		r.status = (uint8_t)st;
		mp_begin();
		cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
		cr_assert(memmem(sb.data, sb.size, key, sizeof(key)) != NULL);
		cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
		cr_assert_eq(results[0].status, st);
		cr_assert_eq(results[0].retry_after_ms, 37);
	}
	r.retry_after_ms = 0; /* no hint: no key */
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, key, sizeof(key)) == NULL);
	r = (bo_result){.op = BO_OP_HOLD_SEATS, .status = BO_TAKEN, .retry_after_ms = 5};
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, key, sizeof(key)) == NULL, "only on shed replies");

	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "release");
	mp_kv_u("retry_after_ms", 5);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].retry_after_ms, 0, "only a shed reply's hint is kept");
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("status", "throttled");
	mp_kv_u("retry_after_ms", (uint64_t)UINT32_MAX + 1);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "retry_after_ms") != NULL, "%s", msg.error);
}

/* not_primary (issue 13): a reply with that status carries "epoch" and,
 * when the server knows it, "primary" {"node", "address"}; both read back
 * into wire_reply_info.primary on that status only. */
Test(wire, not_primary_replies_name_the_primary)
{
	static const uint8_t key[] = {0xa7, 'p', 'r', 'i', 'm', 'a', 'r', 'y'};
	bo_result r[3] = {
	        {.op = BO_OP_HOLD_SEATS, .status = BO_NOT_PRIMARY, .client_id = 3, .request_id = 4,
	         .event_id = 9},
	        {.op = BO_OP_RELEASE, .status = BO_NOT_PRIMARY, .client_id = 3, .request_id = 5,
	         .event_id = 10},
	        {.op = BO_OP_RELEASE, .status = BO_TAKEN, .client_id = 3, .request_id = 6},
	};
	wire_primary p[3] = {{.epoch = 7, .known = 1, .node = 2, .address = "tcp://127.0.0.2:7100"},
	                     {.epoch = UINT64_MAX, .known = 0},
	                     {.epoch = 99, .known = 1, .node = 1, .address = "tcp://x:1"}};
	wire_msg msg;
	mp_begin();
	cr_assert_eq(wire_encode_replies_primary(r, NULL, p, 3, 1, &sb), 0);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(msg.count, 3);
	cr_assert_eq(results[0].status, BO_NOT_PRIMARY);
	cr_assert_eq(results[0].request_id, 4);
	cr_assert_eq(infos[0].primary.known, 1);
	cr_assert_eq(infos[0].primary.epoch, 7);
	cr_assert_eq(infos[0].primary.node, 2);
	cr_assert_str_eq(infos[0].primary.address, "tcp://127.0.0.2:7100");
	cr_assert_str_eq(infos[0].error, "this server is not the primary of the shard");
	cr_assert_eq(infos[1].primary.known, 0, "unknown primary: no key");
	cr_assert_eq(infos[1].primary.epoch, UINT64_MAX);
	cr_assert_eq(results[2].status, BO_TAKEN);
	cr_assert_eq(infos[2].primary.known, 0, "only a not_primary reply names a primary");
	cr_assert_eq(infos[2].primary.epoch, 0);

	/* Without primaries (wire_encode_replies): epoch 0, no primary key. */
	mp_begin();
	cr_assert_eq(wire_encode_replies(r, NULL, 1, 0, &sb), 0);
	cr_assert(memmem(sb.data, sb.size, key, sizeof(key)) == NULL);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].status, BO_NOT_PRIMARY);
	cr_assert_eq(infos[0].primary.known, 0);

	/* A known primary without an address is not written. */
	mp_begin();
	mp_str("prefix");
	size_t before = sb.size;
	wire_primary bad = {.known = 1, .node = 1};
	cr_assert_eq(wire_encode_replies_primary(r, NULL, &bad, 1, 0, &sb), -EINVAL);
	cr_assert_eq(wire_encode_not_primary(&bad, "x", &sb), -EINVAL);
	memset(bad.address, 'a', sizeof(bad.address));
	cr_assert_eq(wire_encode_not_primary(&bad, "x", &sb), -EINVAL);
	cr_assert_eq(sb.size, before);

	/* Message-level not_primary. */
	mp_begin();
	cr_assert_eq(wire_encode_not_primary(&p[0], "shard 3 moved", &sb), 0);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].status, BO_NOT_PRIMARY);
	cr_assert_eq(results[0].op, 0);
	cr_assert_str_eq(infos[0].error, "shard 3 moved");
	cr_assert_str_eq(infos[0].primary.address, "tcp://127.0.0.2:7100");
	mp_begin();
	cr_assert_eq(wire_encode_not_primary(NULL, "no idea", &sb), 0);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(infos[0].primary.known, 0);

	/* Hostile "primary" values. */
	static const struct {
		const char *why;
		int form;
	} bads[] = {{"needs 'node' and 'address'", 0}, {"'node' is", 1}, {"bytes, must be 1..127", 2},
	            {"'primary' must be a map", 3},    {"key 'node' given twice", 4}};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		mp_begin();
		msgpack_pack_map(&pk, 2);
		mp_kv_s("status", "not_primary");
		mp_str("primary");
		switch (bads[i].form) {
		case 0:
			msgpack_pack_map(&pk, 1);
			mp_kv_u("node", 1);
			break;
		case 1:
			msgpack_pack_map(&pk, 2);
			mp_kv_u("node", (uint64_t)UINT32_MAX + 1);
			mp_kv_s("address", "tcp://a:1");
			break;
		case 2:
			msgpack_pack_map(&pk, 2);
			mp_kv_u("node", 1);
			mp_kv_s("address", "");
			break;
		case 3:
			msgpack_pack_uint8(&pk, 2);
			break;
		default:
			msgpack_pack_map(&pk, 3);
			mp_kv_u("node", 1);
			mp_kv_u("node", 1);
			mp_kv_s("address", "tcp://a:1");
			break;
		}
		cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL, "%s", bads[i].why);
		cr_assert(strstr(msg.error, bads[i].why) != NULL, "'%s' lacks '%s'", msg.error, bads[i].why);
	}
}

/* A request may carry "epoch" (any op): the decoder reports the highest
 * in wire_msg.epoch and decodes the command as without it. */
Test(wire, requests_carry_the_routing_epoch)
{
	bo_cmd c[2];
	random_cmd(&c[0], BO_OP_RELEASE);
	random_cmd(&c[1], BO_OP_QUERY_AVAIL);
	wire_msg msg;
	mp_begin();
	cr_assert_eq(wire_encode_request_epoch(c, 2, 1, 41, &sb), 0);
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(msg.invalid, 0, "%s", errs[0].text);
	cr_assert_eq(msg.epoch, 41);
	cr_assert(codec_cmd_equal(&cmds[0], &c[0]) && codec_cmd_equal(&cmds[1], &c[1]));
	mp_begin();
	cr_assert_eq(wire_encode_request(c, 1, 0, &sb), 0);
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(msg.epoch, 0, "no key: 0");

	mp_begin();
	msgpack_pack_array(&pk, 2);
	mp_release(1);
	mp_kv_u("epoch", 3);
	mp_release(1);
	mp_kv_u("epoch", 9);
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(msg.epoch, 9, "the highest");
	mp_begin();
	mp_release(1);
	mp_str("epoch");
	msgpack_pack_int64(&pk, -1);
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(msg.invalid, 1);
	cr_assert(strstr(errs[0].text, "'epoch' must not be negative") != NULL, "%s", errs[0].text);
	cr_assert_eq(msg.epoch, 0, "a rejected command reports no epoch");
}

Test(wire, unencodable_values_leave_buffer_unchanged)
{
	bo_cmd c;
	random_cmd(&c, BO_OP_HOLD_SEATS);
	mp_begin();
	mp_str("prefix");
	size_t before = sb.size;
	c.op = 0;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	c.op = BO_OP_HOLD_SEATS;
	c.seat_count = BO_SEATS_PER_HOLD_MAX + 1;
	cr_assert_eq(wire_encode_request(&c, 1, 1, &sb), -EINVAL);
	c.seat_count = 1;
	c.op = BO_OP_CREATE_EVENT;
	c.map = NULL;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	c.op = BO_OP_RELEASE;
	cr_assert_eq(wire_encode_request(&c, 2, 0, &sb), -EINVAL, "a map message has one command");
	bo_result r;
	random_result(&r, BO_OP_HOLD_SEATS, BO_TAKEN);
	r.detail = BO_D_COUNT;
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), -EINVAL);
	random_result(&r, BO_OP_QUERY_SEATS, BO_OK);
	r.seat_count = 2;
	r.seat_state[1] = BO_SEAT_STATE_COUNT;
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), -EINVAL);
	cr_assert_eq(wire_encode_error(BO_OK, "x", &sb), -EINVAL);
	/* "operator" exists for release and cancel only, and nothing on the
	 * wire can say "any client" (that is an old journal's rule). */
	random_cmd(&c, BO_OP_EXTEND);
	c.flags = BO_CMD_F_OPERATOR;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	random_cmd(&c, BO_OP_CONFIRM);
	c.flags = BO_CMD_F_OPERATOR;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	random_cmd(&c, BO_OP_RELEASE);
	c.flags = BO_CMD_F_ANY_CLIENT;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	c.flags = BO_CMD_F_OPERATOR | BO_CMD_F_ANY_CLIENT;
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), -EINVAL);
	cr_assert_eq(sb.size, before);
}

/* ---- A real engine, driven through the wire ------------------------------ */

static engine *eng;

/* Sends one command through both codecs and the engine; returns the
 * decoded reply (in results[0]) after checking it equals the engine's. */
static const bo_result *roundtrip_engine(const bo_cmd *c, bo_result *engine_res)
{
	mp_begin();
	cr_assert_eq(wire_encode_request(c, 1, 0, &sb), 0);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(errs[0].status, BO_OK, "%s", errs[0].text);
	bo_cmd got = cmds[0];
	engine_apply(eng, &got, engine_res);
	wire_free_maps(cmds, 1);
	mp_begin();
	cr_assert_eq(wire_encode_replies(engine_res, NULL, 1, 0, &sb), 0);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert(codec_result_equal(engine_res, &results[0]),
	          "op %s: decoded reply differs from the engine's result", bo_op_str(c->op));
	return &results[0];
}

/* 1 when the last encoded message contains the msgpack string `s`. */
static int sb_has_str(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i + n + 1 <= sb.size; i++) {
		if ((uint8_t)sb.data[i] == (0xa0 | n) && memcmp(sb.data + i + 1, s, n) == 0)
			return 1;
	}
	return 0;
}

Test(wire, engine_session_every_op)
{
	long base = leak_baseline();
	engine_config cfg;
	engine_config_default(&cfg);
	cfg.seats_max = 1 << 16;
	cfg.claims_max = 1024;
	cfg.idem_capacity = 1024;
	cfg.events_max = 16;
	cr_assert_eq(engine_new(&cfg, &eng), 0);
	engine_advance(eng, 1000000, NULL, NULL);
	bo_result er;
	const bo_result *r;
	bo_cmd c = {0};
	bo_seatmap *m = bo_seatmap_new(2, 20, 1);
	m->category_count = 2;
	m->rows[0] = (bo_row_def){.section = 1, .seats = 10};
	m->rows[1] = (bo_row_def){.section = 1, .seats = 10};
	for (uint32_t s = 0; s < 20; s++)
		m->categories[s] = s < 10 ? 0 : 1;
	m->pool_capacity[0] = 100;
	c = (bo_cmd){
	        .op = BO_OP_CREATE_EVENT, .client_id = 1, .request_id = 1, .event_id = 9, .map = m};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK, "%s", bo_detail_str(r->detail));
	bo_seatmap_free(m);

	c = (bo_cmd){.op = BO_OP_HOLD_SEATS,
	             .client_id = 1,
	             .request_id = 2,
	             .event_id = 9,
	             .seat_count = 2,
	             .seats = {3, 4},
	             .ttl_ms = 60000};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK);
	cr_assert(sb_has_str("hold") && sb_has_str("expires_at_ms") && sb_has_str("seats"));
	uint64_t hold1 = r->claim_id;
	cr_assert_eq(r->expires_at_ms, 1000000 + 60000);

	/* The same request again: answered from the idempotency window. */
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->replayed, 1);
	cr_assert_eq(r->claim_id, hold1);
	cr_assert(sb_has_str("replayed"));
	/* Same request id, other content: conflict. */
	c.seats[1] = 5;
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_CONFLICT);
	cr_assert(sb_has_str("idem_conflict"));

	c = (bo_cmd){.op = BO_OP_HOLD_SEATS,
	             .client_id = 2,
	             .request_id = 1,
	             .event_id = 9,
	             .seat_count = 2,
	             .seats = {5, 4},
	             .ttl_ms = 60000};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_TAKEN);
	cr_assert_eq(r->detail, BO_D_SEAT_UNAVAILABLE);
	cr_assert(r->seat_count == 1 && r->seats[0] == 4);
	cr_assert(sb_has_str("seat_unavailable") && sb_has_str("seat not available"));

	c = (bo_cmd){.op = BO_OP_HOLD_BEST,
	             .client_id = 2,
	             .request_id = 2,
	             .event_id = 9,
	             .category = 1,
	             .quantity = 3,
	             .ttl_ms = 60000};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->seat_count == 3 && r->quantity == 3);

	c = (bo_cmd){.op = BO_OP_HOLD_POOL,
	             .client_id = 3,
	             .request_id = 1,
	             .event_id = 9,
	             .pool = 0,
	             .quantity = 7,
	             .ttl_ms = 60000};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->quantity == 7 && r->seat_count == 0);
	uint64_t pool_hold = r->claim_id;
	cr_assert(sb_has_str("pool"));

	c = (bo_cmd){.op = BO_OP_EXTEND,
	             .client_id = 1,
	             .request_id = 3,
	             .event_id = 9,
	             .claim_id = hold1,
	             .ttl_ms = 120000};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->expires_at_ms == 1000000 + 120000);

	c = (bo_cmd){.op = BO_OP_CONFIRM,
	             .client_id = 1,
	             .request_id = 4,
	             .event_id = 9,
	             .claim_id = hold1,
	             .payref_len = 6};
	memcpy(c.payref, "psp-42", 6);
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->claim_id == hold1);
	cr_assert(sb_has_str("booking") && sb_has_str("hold"));

	c = (bo_cmd){.op = BO_OP_RELEASE,
	             .client_id = 3,
	             .request_id = 2,
	             .event_id = 9,
	             .claim_id = pool_hold};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->quantity == 7);

	c = (bo_cmd){.op = BO_OP_BLOCK,
	             .client_id = 4,
	             .request_id = 1,
	             .event_id = 9,
	             .seat_count = 2,
	             .seats = {0, 1}};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->seat_count == 2);

	c = (bo_cmd){
	        .op = BO_OP_QUERY_SEATS, .event_id = 9, .seat_count = 4, .seats = {0, 3, 9, 12}};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK);
	cr_assert(r->seat_state[0] == BO_SEAT_BLOCKED && r->seat_state[1] == BO_SEAT_BOOKED &&
	          r->seat_state[2] == BO_SEAT_FREE);
	cr_assert(sb_has_str("states") && sb_has_str("blocked") && sb_has_str("booked"));

	c = (bo_cmd){.op = BO_OP_UNBLOCK,
	             .client_id = 4,
	             .request_id = 2,
	             .event_id = 9,
	             .seat_count = 1,
	             .seats = {0}};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK);

	c = (bo_cmd){.op = BO_OP_CANCEL,
	             .client_id = 1,
	             .request_id = 5,
	             .event_id = 9,
	             .claim_id = hold1};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_OK && r->seat_count == 2);

	c = (bo_cmd){.op = BO_OP_QUERY_AVAIL, .event_id = 9};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK);
	cr_assert_eq(r->avail.by_state[BO_SEAT_FREE], 20 - 3 - 1);
	cr_assert_eq(r->avail.by_state[BO_SEAT_HELD], 3);
	cr_assert(r->avail.pool_count == 1 && r->avail.pool_free[0] == 100);
	cr_assert(sb_has_str("avail") && sb_has_str("free_by_category"));

	c = (bo_cmd){.op = BO_OP_QUERY_AVAIL, .event_id = 77};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_NOT_FOUND && r->detail == BO_D_NO_EVENT);
	engine_free(eng);
	assert_no_leak(base);
}

/* Hold and booking ids as protocol.md §3 describes them: generation * 2^32
 * + slot, the first ones 2^32 + n, a reused slot one generation up; sent as
 * msgpack uint64 and carried exactly past 2^53. */
Test(wire, claim_ids_are_generation_and_slot)
{
	long base = leak_baseline();
	engine_config cfg;
	engine_config_default(&cfg);
	cfg.seats_max = 1 << 10;
	cfg.claims_max = 2;
	cfg.idem_capacity = 64;
	cfg.events_max = 2;
	cr_assert_eq(engine_new(&cfg, &eng), 0);
	engine_advance(eng, 1000000, NULL, NULL);
	bo_result er;
	const bo_result *r;
	bo_seatmap *m = bo_seatmap_new(1, 10, 0);
	m->category_count = 1;
	m->rows[0] = (bo_row_def){.section = 1, .seats = 10};
	bo_cmd c = {
	        .op = BO_OP_CREATE_EVENT, .client_id = 1, .request_id = 1, .event_id = 9, .map = m};
	r = roundtrip_engine(&c, &er);
	cr_assert_eq(r->status, BO_OK);
	bo_seatmap_free(m);
	const uint64_t expect[3] = {(1ull << 32) | 0, (1ull << 32) | 1, (2ull << 32) | 0};
	for (uint32_t i = 0; i < 3; i++) {
		if (i == 2) { /* end the first hold: its slot is the one reused */
			c = (bo_cmd){.op = BO_OP_RELEASE,
			             .client_id = 1,
			             .request_id = 10,
			             .event_id = 9,
			             .claim_id = expect[0]};
			cr_assert_eq(roundtrip_engine(&c, &er)->status, BO_OK);
		}
		c = (bo_cmd){.op = BO_OP_HOLD_SEATS,
		             .client_id = 1,
		             .request_id = 2 + i,
		             .event_id = 9,
		             .seat_count = 1,
		             .seats = {i},
		             .ttl_ms = 60000};
		r = roundtrip_engine(&c, &er);
		cr_assert_eq(r->status, BO_OK);
		cr_assert_eq(r->claim_id, expect[i], "hold %u: id %" PRIu64 ", expected %" PRIu64,
		             i, r->claim_id, expect[i]);
		/* "hold": uint64 0x00000001_0000000i (0x..02.. for the reused slot) */
		uint8_t want[14] = {0xa4, 'h', 'o', 'l', 'd', 0xcf};
		for (int b = 0; b < 8; b++)
			want[6 + b] = (uint8_t)(expect[i] >> (56 - 8 * b));
		cr_assert(memmem(sb.data, sb.size, want, sizeof(want)) != NULL,
		          "hold %u: id not sent as msgpack uint64", i);
	}
	/* The old id of the reused slot is gone. */
	c = (bo_cmd){.op = BO_OP_RELEASE,
	             .client_id = 1,
	             .request_id = 11,
	             .event_id = 9,
	             .claim_id = expect[0]};
	r = roundtrip_engine(&c, &er);
	cr_assert(r->status == BO_NOT_FOUND && r->detail == BO_D_NO_HOLD);
	engine_free(eng);
	/* Past 2^53 (after 2^21 reuses of a slot) ids still travel exactly. */
	c = (bo_cmd){.op = BO_OP_RELEASE,
	             .client_id = 1,
	             .request_id = 12,
	             .event_id = 9,
	             .claim_id = ((1ull << 21) + 1) << 32 | 5};
	cr_assert_gt(c.claim_id, 1ull << 53);
	mp_begin();
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), 0);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert_eq(cmds[0].claim_id, c.claim_id);
	bo_result big = {.status = BO_OK,
	                 .op = BO_OP_RELEASE,
	                 .event_id = 9,
	                 .claim_id = c.claim_id,
	                 .quantity = 1,
	                 .seat_count = 1};
	mp_begin();
	cr_assert_eq(wire_encode_replies(&big, NULL, 1, 0, &sb), 0);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert_eq(results[0].claim_id, c.claim_id);
	assert_no_leak(base);
}

/* ---- Exact bytes (the examples of schemas/protocol.md) -------------------- */

static void hex_of(const char *data, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", (uint8_t)data[i]);
	out[2 * n] = '\0';
}

/* The doc's request: {"op":"release","event":42,"client":7,"request":1,
 * "hold":4294967296} and its ok reply. */
static const char doc_request_hex[] = "85a26f70a772656c65617365a56576656e742aa6636c69656e7407a7"
                                      "7265717565737401a4686f6c64cf0000000100000000";

Test(wire, doc_example_bytes)
{
	bo_cmd c = {.op = BO_OP_RELEASE,
	            .client_id = 7,
	            .request_id = 1,
	            .event_id = 42,
	            .claim_id = 4294967296};
	mp_begin();
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), 0);
	char hex[256];
	hex_of(sb.data, sb.size, hex);
	cr_assert_str_eq(hex, doc_request_hex);

	bo_result r = {.op = BO_OP_RELEASE,
	               .status = BO_OK,
	               .client_id = 7,
	               .request_id = 1,
	               .event_id = 42,
	               .claim_id = 4294967296,
	               .seat_count = 2,
	               .seats = {3, 4},
	               .quantity = 2};
	mp_begin();
	cr_assert_eq(wire_encode_replies(&r, NULL, 1, 0, &sb), 0);
	static const char doc_reply_hex[] =
	        "88a6737461747573a26f6ba26f70a772656c65617365a6636c69656e7407a7726571756573"
	        "7401a56576656e742aa4686f6c64cf0000000100000000a57365617473920304a87175616e7469747902";
	char hex2[512];
	hex_of(sb.data, sb.size, hex2);
	cr_assert_str_eq(hex2, doc_reply_hex);

	/* A hand-built message in another key order decodes the same. */
	mp_begin();
	msgpack_pack_map(&pk, 5);
	mp_kv_u("hold", 4294967296);
	mp_kv_u("event", 42);
	mp_kv_u("request", 1);
	mp_kv_s("op", "release");
	mp_kv_u("client", 7);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0);
	cr_assert(codec_cmd_equal(&c, &cmds[0]));
}

/* ---- Hostile input: message level ---------------------------------------- */

static void expect_msg_invalid(const void *buf, size_t len, const char *needle)
{
	long base = seatmap_count_live;
	wire_msg msg;
	int rc = decode_req(buf, len, WIRE_BATCH_MAX, &msg);
	cr_assert_eq(rc, -EINVAL, "expected a message-level error containing '%s'", needle);
	cr_assert_eq(msg.count, 0);
	cr_assert(strstr(msg.error, needle) != NULL, "error '%s' lacks '%s'", msg.error, needle);
	cr_assert_eq(seatmap_count_live, base);
	/* The reply a server sends for it. */
	msgpack_sbuffer rep;
	msgpack_sbuffer_init(&rep);
	cr_assert_eq(wire_encode_error(BO_INVALID, msg.error, &rep), 0);
	wire_msg rmsg;
	cr_assert_eq(decode_rep(rep.data, rep.size, &rmsg), 0, "%s", rmsg.error);
	cr_assert(rmsg.count == 1 && rmsg.is_array == 0);
	cr_assert(results[0].status == BO_INVALID && infos[0].malformed == 1);
	cr_assert_str_eq(infos[0].error, msg.error);
	msgpack_sbuffer_destroy(&rep);
}

Test(wire, message_level_errors)
{
	long base = leak_baseline();
	expect_msg_invalid("", 0, "empty");
	expect_msg_invalid("\xc1", 1, "not msgpack");
	expect_msg_invalid("\xa5hello", 6, "must be a map or an array");
	expect_msg_invalid("\x07", 1, "must be a map or an array");
	expect_msg_invalid("\xc0", 1, "must be a map or an array");
	/* Declared huge counts with a handful of bytes behind them. */
	expect_msg_invalid("\xdd\xff\xff\xff\xff\x80\x80", 7, "not msgpack");
	expect_msg_invalid("\xdf\xff\xff\xff\xff\xa1x", 7, "not msgpack");
	expect_msg_invalid("\x81\xa1x\xdb\xff\xff\xff\xf0zz", 10, "not msgpack");
	expect_msg_invalid("\x81\xa1x\xc6\x7f\xff\xff\xff", 8, "not msgpack");
	expect_msg_invalid("\x81\xa1x\xc9\x00\x10\x00\x00\x01", 9, "not msgpack");
	expect_msg_invalid("\x81\xa1x\xd8\x01", 5, "not msgpack");
	expect_msg_invalid("\x91\xdc\xff\xff", 4, "not msgpack");
	/* Trailing bytes after a whole message. */
	mp_begin();
	mp_release(0);
	mp_raw("\x00", 1);
	expect_msg_invalid(sb.data, sb.size, "1 trailing bytes");
	mp_begin();
	mp_release(0);
	mp_release(0);
	expect_msg_invalid(sb.data, sb.size, "trailing bytes");
	/* Nesting: 8 containers deep is a message (whose command is not a
	 * map); 9 is not. */
	uint8_t deep[16];
	memset(deep, 0x91, sizeof(deep));
	deep[8] = 0x01;
	wire_msg msg;
	cr_assert_eq(decode_req(deep, 9, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert(msg.is_array && msg.count == 1 && msg.invalid == 1);
	cr_assert(strstr(errs[0].text, "must be a map") != NULL, "%s", errs[0].text);
	deep[8] = 0x91;
	deep[9] = 0x01;
	expect_msg_invalid(deep, 10, "nested deeper than 8");
	/* Maps nest too: {"a": {"a": ... }} nine deep. */
	uint8_t mdeep[40];
	size_t k = 0;
	for (int i = 0; i < 9; i++) {
		mdeep[k++] = 0x81;
		mdeep[k++] = 0xa1;
		mdeep[k++] = 'a';
	}
	mdeep[k++] = 0x01;
	expect_msg_invalid(mdeep, k, "nested deeper than 8");
	/* Batch size: WIRE_BATCH_MAX + 1 empty maps; and a caller's smaller cap. */
	mp_begin();
	msgpack_pack_array(&pk, WIRE_BATCH_MAX + 1);
	for (uint32_t i = 0; i < WIRE_BATCH_MAX + 1; i++)
		msgpack_pack_map(&pk, 0);
	expect_msg_invalid(sb.data, sb.size, "exceeds the limit of 4096");
	mp_begin();
	msgpack_pack_array(&pk, 3);
	for (int i = 0; i < 3; i++)
		mp_release(0);
	cr_assert_eq(decode_req(sb.data, sb.size, 2, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "limit of 2") != NULL, "%s", msg.error);
	/* Larger than WIRE_MSG_MAX: refused on its length alone. */
	size_t big = (size_t)WIRE_MSG_MAX + 1;
	uint8_t *huge = calloc(1, big);
	cr_assert(huge != NULL);
	cr_assert_eq(wire_decode_request(huge, big, cmds, errs, WIRE_BATCH_MAX, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "exceeds 8388608 bytes") != NULL, "%s", msg.error);
	free(huge);
	assert_no_leak(base);
}

/* A valid batch with every op (maps included) for the truncation tests. */
static void build_every_op_batch(void)
{
	bo_cmd src[BO_OP_COUNT];
	for (uint8_t op = 1; op < BO_OP_COUNT; op++)
		random_cmd(&src[op - 1], op);
	mp_begin();
	cr_assert_eq(wire_encode_request(src, BO_OP_COUNT - 1, 1, &sb), 0);
	free_cmd_maps(src, BO_OP_COUNT - 1);
}

Test(wire, every_truncation_is_a_clean_message_error)
{
	long base = leak_baseline();
	for (int rep = 0; rep < 5; rep++) {
		build_every_op_batch();
		wire_msg msg;
		cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s",
		             msg.error);
		cr_assert_eq(msg.invalid, 0, "%s", errs[0].text);
		wire_free_maps(cmds, msg.count);
		for (size_t len = 0; len < sb.size; len++) {
			cr_assert_eq(decode_req(sb.data, len, WIRE_BATCH_MAX, &msg), -EINVAL,
			             SEED_FMT "prefix of %zu of %zu bytes accepted", SEED, len,
			             sb.size);
			cr_assert(msg.error[0] != '\0');
		}
	}
	/* Replies too. */
	bo_result src[BO_OP_COUNT * BO_STATUS_COUNT];
	uint32_t n = 0;
	for (uint8_t op = 1; op < BO_OP_COUNT; op++)
		for (uint8_t st = 0; st < BO_STATUS_COUNT; st++)
			random_result(&src[n++], op, st);
	mp_begin();
	cr_assert_eq(wire_encode_replies(src, NULL, n, 1, &sb), 0);
	wire_msg msg;
	for (size_t len = 0; len < sb.size; len++)
		cr_assert_eq(decode_rep(sb.data, len, &msg), -EINVAL, "reply prefix %zu", len);
	assert_no_leak(base);
}

Test(wire, garbage_and_mutations_never_crash)
{
	long base = leak_baseline();
	uint8_t buf[600];
	wire_msg msg;
	for (int iter = 0; iter < 20000; iter++) {
		size_t len;
		if (iter % 2 == 0) {
			len = (size_t)rnd_below(sizeof(buf));
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd();
		} else {
			/* Flip bytes of a valid message: reaches deep into commands. */
			if (iter % 64 == 1)
				build_every_op_batch();
			len = sb.size < sizeof(buf) ? sb.size : sizeof(buf);
			memcpy(buf, sb.data, len);
			for (uint64_t f = 1 + rnd_below(4); f > 0; f--)
				buf[rnd_below(len)] = (uint8_t)rnd();
		}
		int rc = decode_req(buf, len, WIRE_BATCH_MAX, &msg);
		cr_assert(rc == 0 || rc == -EINVAL, SEED_FMT "iter %d rc %d", SEED, iter, rc);
		if (rc == 0) {
			uint32_t bad = 0;
			for (uint32_t i = 0; i < msg.count; i++) {
				bad += errs[i].status != BO_OK;
				cr_assert(errs[i].status == BO_OK || errs[i].text[0] != '\0');
				cr_assert(errs[i].status == BO_OK || cmds[i].map == NULL);
			}
			cr_assert_eq(bad, msg.invalid);
			wire_free_maps(cmds, msg.count);
		}
		rc = decode_rep(buf, len, &msg);
		cr_assert(rc == 0 || rc == -EINVAL);
	}
	assert_no_leak(base);
}

/* ---- Hostile input: command level ---------------------------------------- */

/* Decodes the message in sb, which must hold one command map, and checks
 * that the command is rejected with (status, detail) and a text holding
 * `needle`; also that the reply the server sends for it says so. */
static void expect_cmd_invalid(uint8_t status, uint8_t detail, const char *needle)
{
	long base = seatmap_count_live;
	wire_msg msg;
	int rc = decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg);
	cr_assert_eq(rc, 0, "message-level error '%s' where '%s' was expected", msg.error, needle);
	cr_assert(msg.count == 1 && msg.invalid == 1, "accepted; expected '%s'", needle);
	cr_assert_eq(errs[0].status, status, "'%s': status %d", errs[0].text, errs[0].status);
	cr_assert_eq(errs[0].detail, detail, "'%s': detail %s", errs[0].text,
	             wire_detail_name(errs[0].detail));
	cr_assert(strstr(errs[0].text, needle) != NULL, "error '%s' lacks '%s'", errs[0].text,
	          needle);
	cr_assert_null(cmds[0].map);
	cr_assert_eq(seatmap_count_live, base);
	msgpack_sbuffer rep;
	msgpack_sbuffer_init(&rep);
	cr_assert_eq(wire_encode_replies(results, errs, 1, 0, &rep), 0);
	cr_assert_eq(decode_rep(rep.data, rep.size, &msg), 0, "%s", msg.error);
	cr_assert(results[0].status == status && results[0].detail == detail);
	cr_assert_eq(infos[0].malformed, detail == BO_D_NONE);
	cr_assert_str_eq(infos[0].error, errs[0].text);
	msgpack_sbuffer_destroy(&rep);
}

/* A release with one extra pair, the key given and the value written by
 * the caller right after. */
#define WITH_EXTRA(key) (mp_begin(), mp_release(1), mp_str(key))

Test(wire, command_level_errors)
{
	long base = leak_baseline();
	/* Unknown op, unknown key, missing keys, keys of another op. */
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "sell_everything");
	mp_kv_u("event", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_BAD_OP, "unknown op 'sell_everything'");
	WITH_EXTRA("colour"), msgpack_pack_uint8(&pk, 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "unknown key 'colour'");
	WITH_EXTRA("bad\xff\x01key"), msgpack_pack_uint8(&pk, 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "unknown key 'bad??key'");
	mp_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_u("event", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "missing key 'op'");
	mp_begin();
	msgpack_pack_map(&pk, 4);
	mp_kv_s("op", "release");
	mp_kv_u("client", 7);
	mp_kv_u("event", 42);
	mp_kv_u("hold", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "missing key 'request'");
	mp_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_s("op", "query_avail");
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "missing key 'event'");
	WITH_EXTRA("ttl_ms"), msgpack_pack_uint32(&pk, 5000);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "key 'ttl_ms' does not apply to op 'release'");
	WITH_EXTRA("hold"), msgpack_pack_uint32(&pk, 5000);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "key 'hold' given twice");
	/* Keys must be strings. */
	mp_begin();
	mp_release(1);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint8(&pk, 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "keys of a command must be strings");
	/* Wrong types. */
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_u("op", 6);
	mp_kv_u("event", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'op' must be a string");
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_kv_s("event", "42");
	expect_cmd_invalid(BO_INVALID, BO_D_NONE,
	                   "'event' must be an unsigned integer, not a string");
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_str("event");
	msgpack_pack_double(&pk, 42.0);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "not a float");
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_str("event");
	msgpack_pack_nil(&pk);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "not nil");
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("op", "query_seats");
	mp_kv_u("event", 1);
	mp_kv_u("seats", 3);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'seats' must be an array");
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("op", "query_seats");
	mp_kv_u("event", 1);
	mp_str("seats");
	msgpack_pack_array(&pk, 1);
	mp_str("A1");
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'seats[]' must be an unsigned integer");
	WITH_EXTRA("payref"), mp_str("psp-1");
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "key 'payref' does not apply to op 'release'");
	/* Negative ints where unsigned ones are expected. */
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_str("event");
	msgpack_pack_int64(&pk, -1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'event' must not be negative (got -1)");
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_str("event");
	mp_raw("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9); /* INT64_MIN */
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "got -9223372036854775808");
	/* Integer overflow of each narrow field gets the engine's detail. */
	struct {
		const char *op, *key;
		uint64_t v;
		uint8_t detail;
		const char *needle;
	} over[] = {
	        {"hold_best", "category", 256, BO_D_CATEGORY_RANGE,
	         "'category' is 256, more than 255"},
	        {"hold_best", "quantity", 65536, BO_D_QUANTITY, "'quantity' is 65536"},
	        {"hold_pool", "pool", 300, BO_D_POOL_RANGE, "'pool' is 300"},
	        {"hold_pool", "ttl_ms", 1ull << 32, BO_D_TTL_RANGE, "'ttl_ms' is 4294967296"},
	};
	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		mp_begin();
		msgpack_pack_map(&pk, 5);
		mp_kv_s("op", over[i].op);
		mp_kv_u("client", 1);
		mp_kv_u("request", 1);
		mp_kv_u("event", 1);
		mp_kv_u(over[i].key, over[i].v);
		expect_cmd_invalid(BO_INVALID, over[i].detail, over[i].needle);
	}
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("op", "query_seats");
	mp_kv_u("event", 1);
	mp_str("seats");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint64(&pk, 1ull << 32);
	expect_cmd_invalid(BO_INVALID, BO_D_SEAT_RANGE, "'seats[]' is 4294967296");
	/* Oversized arrays and strings. */
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("op", "query_seats");
	mp_kv_u("event", 1);
	mp_str("seats");
	msgpack_pack_array(&pk, BO_SEATS_PER_HOLD_MAX + 1);
	for (uint32_t i = 0; i <= BO_SEATS_PER_HOLD_MAX; i++)
		msgpack_pack_uint8(&pk, (uint8_t)i);
	expect_cmd_invalid(BO_INVALID, BO_D_SEAT_COUNT, "'seats' has 17 entries, at most 16");
	mp_begin();
	msgpack_pack_map(&pk, 6);
	mp_kv_s("op", "confirm");
	mp_kv_u("client", 1);
	mp_kv_u("request", 1);
	mp_kv_u("event", 1);
	mp_kv_u("hold", 1);
	mp_kv_s("payref", "0123456789abcdef0123456789abcdefX");
	expect_cmd_invalid(BO_INVALID, BO_D_PAYREF, "'payref' has 33 bytes, at most 32");
	/* A positive value in a signed format is an unsigned integer. */
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_str("event");
	mp_raw("\xd0\x05", 2);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0);
	cr_assert(msg.invalid == 0 && cmds[0].event_id == 5);
	assert_no_leak(base);
}

/* Decodes the one command in sb, which must be valid. */
static const bo_cmd *decode_one_ok(void)
{
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert(msg.count == 1 && msg.invalid == 0, "refused: %s", errs[0].text);
	return &cmds[0];
}

Test(wire, operator_key_on_release_and_cancel_only)
{
	WITH_EXTRA("operator"), msgpack_pack_true(&pk);
	cr_assert_eq(decode_one_ok()->flags, BO_CMD_F_OPERATOR);
	WITH_EXTRA("operator"), msgpack_pack_false(&pk);
	cr_assert_eq(decode_one_ok()->flags, 0, "false is the same as no key");
	mp_begin();
	mp_release(0);
	cr_assert_eq(decode_one_ok()->flags, 0);

	mp_begin();
	msgpack_pack_map(&pk, 6);
	mp_kv_s("op", "cancel");
	mp_kv_u("client", 7);
	mp_kv_u("request", 1);
	mp_kv_u("event", 42);
	mp_kv_u("booking", 9);
	mp_str("operator");
	msgpack_pack_true(&pk);
	const bo_cmd *c = decode_one_ok();
	cr_assert(c->op == BO_OP_CANCEL && c->claim_id == 9 && c->flags == BO_CMD_F_OPERATOR);

	WITH_EXTRA("operator"), msgpack_pack_uint8(&pk, 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'operator' must be a boolean");
	WITH_EXTRA("operator"), mp_str("yes");
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "'operator' must be a boolean");

	/* An operator may undo a claim, never extend or confirm another's. */
	mp_begin();
	msgpack_pack_map(&pk, 7);
	mp_kv_s("op", "extend");
	mp_kv_u("client", 7);
	mp_kv_u("request", 1);
	mp_kv_u("event", 42);
	mp_kv_u("hold", 9);
	mp_kv_u("ttl_ms", 60000);
	mp_str("operator");
	msgpack_pack_true(&pk);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "key 'operator' does not apply to op 'extend'");
	mp_begin();
	msgpack_pack_map(&pk, 7);
	mp_kv_s("op", "confirm");
	mp_kv_u("client", 7);
	mp_kv_u("request", 1);
	mp_kv_u("event", 42);
	mp_kv_u("hold", 9);
	mp_kv_s("payref", "psp-1");
	mp_str("operator");
	msgpack_pack_true(&pk);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "key 'operator' does not apply to op 'confirm'");
	mp_begin();
	msgpack_pack_map(&pk, 7);
	mp_kv_s("op", "hold_seats");
	mp_kv_u("client", 7);
	mp_kv_u("request", 1);
	mp_kv_u("event", 42);
	mp_kv_u("ttl_ms", 60000);
	mp_str("seats");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_uint8(&pk, 1);
	mp_str("operator");
	msgpack_pack_false(&pk);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE,
	                   "key 'operator' does not apply to op 'hold_seats'");

	/* The encoder writes the key only when set: a client's own release
	 * is byte for byte what it was before the key existed. */
	bo_cmd r;
	memset(&r, 0, sizeof(r));
	r.op = BO_OP_RELEASE;
	r.client_id = 7;
	r.request_id = 1;
	r.event_id = 42;
	r.claim_id = 12345;
	mp_begin();
	cr_assert_eq(wire_encode_request(&r, 1, 0, &sb), 0);
	cr_assert_null(memmem(sb.data, sb.size, "operator", 8));
	size_t plain_size = sb.size;
	r.flags = BO_CMD_F_OPERATOR;
	mp_begin();
	cr_assert_eq(wire_encode_request(&r, 1, 0, &sb), 0);
	cr_assert_eq(sb.size, plain_size + 1 + 8 + 1, "fixstr 'operator' and true added");
	cr_assert_eq(decode_one_ok()->flags, BO_CMD_F_OPERATOR);
}

/* Seat-map specific rejections, all before anything is allocated. */
static void map_cmd_begin(void)
{
	mp_begin();
	msgpack_pack_map(&pk, 5);
	mp_kv_s("op", "create_event");
	mp_kv_u("client", 1);
	mp_kv_u("request", 1);
	mp_kv_u("event", 1);
	mp_str("map");
}

static void row(uint32_t section, uint32_t seats, uint32_t category)
{
	msgpack_pack_map(&pk, 3);
	mp_kv_u("section", section);
	mp_kv_u("seats", seats);
	mp_kv_u("category", category);
}

Test(wire, seat_map_errors)
{
	long base = leak_baseline();
	map_cmd_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_u("categories", 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	row(1, 65536, 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "'seats' is 65536, more than 65535");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	mp_kv_u("section", 1);
	mp_str("categories");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint16(&pk, 256);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "'categories[]' is 256");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	mp_kv_u("section", 1);
	mp_kv_u("seats", 4);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID,
	                   "either 'seats' and 'category' or 'categories'");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	mp_kv_u("section", 1);
	mp_kv_u("seats", 4);
	mp_kv_u("category", 0);
	mp_kv_u("price", 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "unknown key 'price' in row 0");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_u("layout", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "unknown key 'layout' in 'map'");
	/* Every other fault inside the map is map_invalid too (protocol.md §3):
	 * a wrong type, a repeated key, a row without a section, a map that is
	 * not a map. */
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_s("categories", "two");
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID,
	                   "'categories' must be an unsigned integer, not a string");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	mp_kv_u("section", 1);
	mp_kv_u("seats", 4);
	mp_kv_u("category", 0);
	mp_kv_u("seats", 4);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "key 'seats' given twice");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	mp_kv_u("seats", 4);
	mp_kv_u("category", 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "row 0: missing key 'section'");
	map_cmd_begin();
	msgpack_pack_array(&pk, 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "'map' must be a map");
	/* A key unknown to the command itself stays malformed. */
	mp_begin();
	mp_release(1);
	mp_kv_u("layout", 1);
	expect_cmd_invalid(BO_INVALID, BO_D_NONE, "unknown key 'layout'");
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("pools");
	msgpack_pack_array(&pk, BO_POOLS_PER_EVENT_MAX + 1);
	for (uint32_t p = 0; p <= BO_POOLS_PER_EVENT_MAX; p++)
		msgpack_pack_uint8(&pk, 1);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "'pools' has 9 entries, at most 8");
	/* More rows than an event may have: refused on the count. */
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, BO_ROWS_PER_EVENT_MAX + 1);
	for (uint32_t r = 0; r <= BO_ROWS_PER_EVENT_MAX; r++)
		msgpack_pack_map(&pk, 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID, "'rows' has 65537 entries, at most 65536");
	/* More seats than an event may have (257 rows of 4096). */
	map_cmd_begin();
	msgpack_pack_map(&pk, 1);
	mp_str("rows");
	msgpack_pack_array(&pk, 257);
	for (uint32_t r = 0; r < 257; r++)
		row(1, BO_SEATS_PER_ROW_MAX, 0);
	expect_cmd_invalid(BO_INVALID, BO_D_MAP_INVALID,
	                   "'map' has 1052672 seats, at most 1048576");
	/* A map the engine will reject but that can be represented decodes. */
	map_cmd_begin();
	msgpack_pack_map(&pk, 0);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0);
	cr_assert(msg.invalid == 0 && cmds[0].map != NULL);
	cr_assert_eq(bo_seatmap_check(cmds[0].map), BO_D_MAP_INVALID);
	wire_free_maps(cmds, 1);
	assert_no_leak(base);
}

Test(wire, seat_budget_per_message)
{
	long base = leak_baseline();
	/* Five maximum-size events (~6 KiB of msgpack each): the fifth would
	 * take the message past WIRE_MAP_SEATS_PER_MSG_MAX. */
	mp_begin();
	msgpack_pack_array(&pk, 5);
	for (int e = 0; e < 5; e++) {
		msgpack_pack_map(&pk, 5);
		mp_kv_s("op", "create_event");
		mp_kv_u("client", 1);
		mp_kv_u("request", (uint64_t)e);
		mp_kv_u("event", (uint64_t)e + 1);
		mp_str("map");
		msgpack_pack_map(&pk, 2);
		mp_kv_u("categories", 1);
		mp_str("rows");
		msgpack_pack_array(&pk, 256);
		for (uint32_t r = 0; r < 256; r++)
			row(1, BO_SEATS_PER_ROW_MAX, 0);
	}
	cr_assert_lt(sb.size, 64 * 1024);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert(msg.count == 5 && msg.invalid == 1);
	for (int e = 0; e < 4; e++)
		cr_assert(errs[e].status == BO_OK &&
		          cmds[e].map->seat_count == BO_SEATS_PER_EVENT_MAX);
	cr_assert(errs[4].status == BO_LIMIT && errs[4].detail == BO_D_SEATS_FULL);
	cr_assert(strstr(errs[4].text, "exceed") != NULL);
	cr_assert_eq(seatmap_count_live, base + 4);
	wire_free_maps(cmds, msg.count);
	assert_no_leak(base);
}

Test(wire, out_of_memory_leaves_nothing_allocated)
{
	long base = leak_baseline();
	bo_cmd src[6];
	for (int i = 0; i < 6; i++)
		random_cmd(&src[i], i % 2 ? BO_OP_HOLD_SEATS : BO_OP_CREATE_EVENT);
	mp_begin();
	cr_assert_eq(wire_encode_request(src, 6, 1, &sb), 0);
	free_cmd_maps(src, 6);
	for (long ok = 0; ok < 3; ok++) {
		seatmap_count_fail_after(ok);
		wire_msg msg;
		int rc = decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg);
		seatmap_count_fail_after(-1);
		cr_assert_eq(rc, -ENOMEM, "allocation %ld failed, rc %d", ok + 1, rc);
		cr_assert(msg.count == 0 && strstr(msg.error, "out of memory") != NULL);
		assert_no_leak(base);
	}
}

Test(wire, mixed_batch_replies_in_order)
{
	long base = leak_baseline();
	mp_begin();
	msgpack_pack_array(&pk, 4);
	mp_release(0);
	msgpack_pack_uint8(&pk, 3); /* not a map */
	mp_release(1);
	mp_kv_u("colour", 1);
	msgpack_pack_map(&pk, 2);
	mp_kv_s("op", "query_avail");
	mp_kv_u("event", 42);
	wire_msg msg;
	cr_assert_eq(decode_req(sb.data, sb.size, WIRE_BATCH_MAX, &msg), 0, "%s", msg.error);
	cr_assert(msg.is_array && msg.count == 4 && msg.invalid == 2);
	cr_assert(errs[0].status == BO_OK && cmds[0].op == BO_OP_RELEASE &&
	          cmds[0].claim_id == 12345);
	cr_assert(errs[1].status == BO_INVALID &&
	          strstr(errs[1].text, "not an unsigned integer") != NULL);
	cr_assert(strstr(errs[1].text, "a command must be a map") != NULL, "%s", errs[1].text);
	cr_assert(errs[2].status == BO_INVALID && strstr(errs[2].text, "unknown key 'colour'"));
	cr_assert(errs[3].status == BO_OK && cmds[3].op == BO_OP_QUERY_AVAIL);
	bo_result res[4] = {
	        {.op = BO_OP_RELEASE,
	         .status = BO_NOT_FOUND,
	         .detail = BO_D_NO_HOLD,
	         .client_id = 7,
	         .request_id = 1,
	         .event_id = 42},
	        {0},
	        {0},
	        {.op = BO_OP_QUERY_AVAIL, .status = BO_BUSY, .event_id = 42},
	};
	msgpack_sbuffer rep;
	msgpack_sbuffer_init(&rep);
	cr_assert_eq(wire_encode_replies(res, errs, 4, 1, &rep), 0);
	cr_assert_eq(decode_rep(rep.data, rep.size, &msg), 0, "%s", msg.error);
	cr_assert(msg.is_array && msg.count == 4);
	cr_assert(codec_result_equal(&results[0], &res[0]));
	cr_assert_str_eq(infos[0].error, "no such hold");
	cr_assert(results[1].status == BO_INVALID && infos[1].malformed);
	cr_assert_str_eq(infos[1].error, errs[1].text);
	cr_assert(results[2].status == BO_INVALID && infos[2].malformed);
	cr_assert(codec_result_equal(&results[3], &res[3]) && infos[3].malformed == 0);
	cr_assert_str_eq(infos[3].error, "server busy, retry later");
	msgpack_sbuffer_destroy(&rep);
	/* A whole message shed as busy. */
	msgpack_sbuffer_init(&rep);
	cr_assert_eq(wire_encode_error(BO_BUSY, "ring full", &rep), 0);
	cr_assert_eq(decode_rep(rep.data, rep.size, &msg), 0);
	cr_assert(msg.count == 1 && !msg.is_array && results[0].status == BO_BUSY &&
	          results[0].detail == BO_D_NONE && !infos[0].malformed);
	cr_assert_str_eq(infos[0].error, "ring full");
	msgpack_sbuffer_destroy(&rep);
	assert_no_leak(base);
}

Test(wire, reply_decoder_strictness)
{
	wire_msg msg;
	/* Unknown keys are skipped (a newer server), known keys are typed. */
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_s("op", "query_avail");
	mp_str("shard");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_uint8(&pk, 2);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert(results[0].op == BO_OP_QUERY_AVAIL && results[0].status == BO_OK);
	mp_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_s("status", "fine");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "unknown status 'fine'") != NULL, "%s", msg.error);
	mp_begin();
	msgpack_pack_map(&pk, 1);
	mp_kv_s("op", "release");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "missing key 'status'") != NULL, "%s", msg.error);
	mp_begin();
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	mp_kv_s("status", "ok");
	msgpack_pack_map(&pk, 2);
	mp_kv_s("status", "ok");
	mp_kv_s("hold", "12");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "reply 1: 'hold' must be an unsigned integer") != NULL, "%s",
	          msg.error);
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "ok");
	mp_kv_u("hold", 1);
	mp_kv_u("booking", 2);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "'hold' and 'booking' differ") != NULL, "%s", msg.error);
	/* A detail a newer server added reads as none; the status stands. */
	mp_begin();
	msgpack_pack_map(&pk, 3);
	mp_kv_s("status", "limit");
	mp_kv_s("detail", "galaxy_full");
	mp_kv_s("error", "no room");
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), 0, "%s", msg.error);
	cr_assert(results[0].status == BO_LIMIT && results[0].detail == BO_D_NONE &&
	          !infos[0].malformed);
	cr_assert_str_eq(infos[0].error, "no room");
	/* Replies are bounded like requests. */
	mp_begin();
	msgpack_pack_map(&pk, 2);
	mp_kv_s("status", "ok");
	mp_str("seats");
	msgpack_pack_array(&pk, BO_SEATS_PER_HOLD_MAX + 1);
	for (uint32_t i = 0; i <= BO_SEATS_PER_HOLD_MAX; i++)
		msgpack_pack_uint8(&pk, 1);
	cr_assert_eq(decode_rep(sb.data, sb.size, &msg), -EINVAL);
	cr_assert(strstr(msg.error, "'seats' has 17 entries") != NULL, "%s", msg.error);
}
