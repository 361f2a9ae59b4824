/*
 * json_test.c — proves that the HTTP/JSON form of the protocol
 * (protocol/json.c, json.h, schemas/http.md) means what the msgpack form
 * means and treats bodies as hostile input.
 *
 * How:
 *  - Random batches of every op (random seat maps, values at every integer
 *    width, payrefs with NULs) written as msgpack, turned into JSON by a
 *    converter of the test's own, decode to what the msgpack decoder gives.
 *  - Every op, alone and in one batch: the JSON command decodes to the
 *    command the msgpack decoder gives for the same command written by
 *    wire_encode_request (tests/support/cmd.h builds it): equal by
 *    codec_cmd_equal and byte for byte where there is no seat map. Ids at
 *    2^63-1 travel exactly; a payref with "\u0000" inside keeps its NUL.
 *  - Every command-level rejection class gives the status, detail and text
 *    the msgpack decoder gives (wrong types: float, boolean, string, null,
 *    negative; values over their field; too many seats; long payref; unknown
 *    op, unknown key, missing key, key of another op; seat map faults; a
 *    non-object in a batch), and only that command is rejected.
 *  - Every message-level class is -EINVAL with a reason and nothing
 *    decoded: not JSON, empty, a depth bomb (and depth JSON_DEPTH_MAX still
 *    passes), a batch over the cap (refused before jansson builds it),
 *    an empty batch, the wrong shape, duplicate keys, trailing garbage,
 *    invalid UTF-8, integers past 2^63-1.
 *  - Encoders: replies, message errors and event images parse back with
 *    jansson and carry the keys and values schemas/http.md lists;
 *    "retry_after_ms" exactly on throttled/busy with a hint; texts with
 *    quotes, controls and high bytes stay valid JSON; json_http_status
 *    follows its table.
 *  - Every curl body of schemas/http.md decodes as its route takes it, and
 *    its message-level example is the decoder's own text.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>

#include "base/seatmap.h"
#include "engine/codec.h"
#include "protocol/json.h"
#include "protocol/wire.h"
#include "tests/support/cmd.h"
#include "tests/support/rng.h"

#define CAP 64u

/* Test JSON is written with ' for " (C strings stay readable); q() turns
 * it into JSON. The returned string is the caller's to free. */
static char *q(const char *s)
{
	char *d = strdup(s);
	cr_assert(d != NULL);
	for (char *p = d; *p; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return d;
}

static bo_cmd jcmds[CAP], mcmds[CAP];
static wire_cmd_error jerrs[CAP], merrs[CAP];

/* Decodes q(json) as shape; returns the decoder's result. */
static int jdecode(const char *json, int shape, wire_msg *msg)
{
	char *body = q(json);
	int rc = json_decode_request(body, strlen(body), shape, jcmds, jerrs, CAP, msg);
	free(body);
	return rc;
}

/* The msgpack decode of cmds[0..n) as wire_encode_request writes them. */
static void mdecode(const bo_cmd *cmds, uint32_t n, int as_array)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(cmds, n, as_array, &sb), 0);
	wire_msg msg;
	cr_assert_eq(
	        wire_decode_request((const uint8_t *)sb.data, sb.size, mcmds, merrs, CAP, &msg), 0);
	cr_assert_eq(msg.count, n);
	cr_assert_eq(msg.invalid, 0);
	msgpack_sbuffer_destroy(&sb);
}

static void assert_same(const bo_cmd *a, const bo_cmd *b, const char *what)
{
	cr_assert(codec_cmd_equal(a, b) && codec_cmd_equal(b, a), "%s: commands differ", what);
	if (a->op != BO_OP_CREATE_EVENT)
		cr_assert(memcmp(a, b, sizeof(*a)) == 0, "%s: bytes differ", what);
}

/* ---- Every op ------------------------------------------------------------ */

static const uint32_t seats3[] = {7, 8, 4000000000u};

/* One command of each op: JSON text and the command it means. */
typedef struct op_case {
	const char *json;
	bo_cmd cmd;
} op_case;

static bo_seatmap *mixed_map(void)
{
	/* Row 0: 3 seats of category 1 (compact form); row 1: 3 seats of
	 * categories 0, 2, 2 (per-seat form); two pools. */
	bo_seatmap *m = bo_seatmap_new(2, 6, 2);
	cr_assert(m != NULL);
	m->category_count = 3;
	m->rows[0] = (bo_row_def){.section = 5, .seats = 3};
	m->rows[1] = (bo_row_def){.section = 6, .seats = 3};
	const uint8_t cats[6] = {1, 1, 1, 0, 2, 2};
	memcpy(m->categories, cats, 6);
	m->pool_capacity[0] = 100;
	m->pool_capacity[1] = 1000000;
	return m;
}

/* A claim op of client 1 on event 3. */
static bo_cmd claim_cmd(uint8_t op, uint64_t request, uint64_t claim, uint32_t ttl_ms)
{
	bo_cmd c = tcmd(op, 1, request, 3);
	c.claim_id = claim;
	c.ttl_ms = ttl_ms;
	return c;
}

static uint32_t op_cases(op_case *c, bo_seatmap *map)
{
	uint32_t n = 0;
	c[n++] = (op_case){"{'op':'create_event','client':1,'request':2,'event':3,'map':{"
	                   "'categories':3,'rows':[{'section':5,'seats':3,'category':1},"
	                   "{'section':6,'categories':[0,2,2]}],'pools':[100,1000000]}}",
	                   tcmd_create(1, 2, 3, map)};
	c[n++] = (op_case){"{'op':'hold_seats','client':9223372036854775807,'request':2,"
	                   "'event':3,'seats':[7,8,4000000000],'ttl_ms':60000}",
	                   tcmd_hold_seats(INT64_MAX, 2, 3, seats3, 3, 60000)};
	c[n++] = (op_case){"{'ttl_ms':1000,'quantity':4,'category':2,'event':3,'request':5,"
	                   "'client':1,'op':'hold_best'}",
	                   tcmd_hold_best(1, 5, 3, 2, 4, 1000)};
	bo_cmd pool = tcmd(BO_OP_HOLD_POOL, 1, 6, 3);
	pool.pool = 1;
	pool.quantity = 2;
	pool.ttl_ms = 30000;
	c[n++] = (op_case){"{'op':'hold_pool','client':1,'request':6,'event':3,'pool':1,"
	                   "'quantity':2,'ttl_ms':30000}",
	                   pool};
	c[n++] = (op_case){"{'op':'extend','client':1,'request':7,'event':3,'hold':21474836497,"
	                   "'ttl_ms':90000}",
	                   claim_cmd(BO_OP_EXTEND, 7, (5ull << 32) | 17, 90000)};
	c[n++] = (op_case){"{'op':'release','client':1,'request':8,'event':3,'hold':42}",
	                   claim_cmd(BO_OP_RELEASE, 8, 42, 0)};
	bo_cmd conf = claim_cmd(BO_OP_CONFIRM, 9, 42, 0);
	memcpy(conf.payref, "ab\0c", 4); /* "\u0000" is a byte like any other */
	conf.payref_len = 4;
	c[n++] = (op_case){"{'op':'confirm','client':1,'request':9,'event':3,'hold':42,"
	                   "'payref':'ab\\u0000c'}",
	                   conf};
	c[n++] = (op_case){"{'op':'cancel','client':1,'request':10,'event':3,'booking':43}",
	                   claim_cmd(BO_OP_CANCEL, 10, 43, 0)};
	c[n++] = (op_case){
	        "{'op':'block','client':1,'request':11,'event':3,'seats':[7,8,4000000000]}",
	        tcmd_seats(BO_OP_BLOCK, 1, 11, 3, seats3, 3)};
	c[n++] = (op_case){"{'op':'unblock','client':1,'request':12,'event':3,'seats':[]}",
	                   tcmd_seats(BO_OP_UNBLOCK, 1, 12, 3, NULL, 0)};
	c[n++] = (op_case){"{'op':'query_seats','event':3,'seats':[10,11,12]}",
	                   tcmd_query_seats(3, 10, 3)};
	c[n++] = (op_case){"{'op':'query_avail','event':18446744073709551615}",
	                   tcmd_query_avail(UINT64_MAX)};
	return n;
}

Test(json, every_op_decodes_as_msgpack)
{
	bo_seatmap *map = mixed_map();
	op_case c[16];
	uint32_t n = op_cases(c, map);
	int ops_seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		wire_msg msg;
		int rc = jdecode(c[i].json, JSON_ONE, &msg);
		if (c[i].cmd.event_id == UINT64_MAX) {
			/* 2^64-1 is a valid msgpack id but past JSON's 2^63-1. */
			cr_assert_eq(rc, -EINVAL, "case %u", i);
			cr_assert(strstr(msg.error, "too big integer") != NULL, "%s", msg.error);
			c[i].cmd.event_id = INT64_MAX;
			c[i].json = "{'op':'query_avail','event':9223372036854775807}";
			rc = jdecode(c[i].json, JSON_ONE, &msg);
		}
		cr_assert_eq(rc, 0, "case %u: %s", i, msg.error);
		cr_assert(msg.count == 1 && msg.invalid == 0 && !msg.is_array, "case %u: %s", i,
		          jerrs[0].text);
		mdecode(&c[i].cmd, 1, 0);
		assert_same(&jcmds[0], &mcmds[0], bo_op_str(c[i].cmd.op));
		ops_seen |= 1 << c[i].cmd.op;
		wire_free_maps(jcmds, 1);
		wire_free_maps(mcmds, 1);
	}
	cr_assert_eq(ops_seen, ((1 << BO_OP_COUNT) - 1) & ~1, "every op is covered");
	bo_seatmap_free(map);
}

Test(json, a_batch_of_every_op_decodes_as_msgpack)
{
	bo_seatmap *map = mixed_map();
	op_case c[16];
	uint32_t n = op_cases(c, map) - 1; /* without the 2^64-1 query */
	size_t len = 2;
	for (uint32_t i = 0; i < n; i++)
		len += strlen(c[i].json) + 1;
	char *batch = calloc(1, len + 1);
	cr_assert(batch != NULL);
	strcat(batch, "[");
	bo_cmd cmds[16];
	for (uint32_t i = 0; i < n; i++) {
		strcat(batch, c[i].json);
		strcat(batch, i + 1 < n ? "," : "]");
		cmds[i] = c[i].cmd;
	}
	wire_msg msg;
	cr_assert_eq(jdecode(batch, JSON_BATCH, &msg), 0, "%s", msg.error);
	cr_assert(msg.count == n && msg.is_array && msg.invalid == 0);
	mdecode(cmds, n, 1);
	for (uint32_t i = 0; i < n; i++)
		assert_same(&jcmds[i], &mcmds[i], bo_op_str(cmds[i].op));
	wire_free_maps(jcmds, n);
	wire_free_maps(mcmds, n);
	free(batch);
	bo_seatmap_free(map);
}

/* ---- Random commands ------------------------------------------------------ */

/* Seeded per run (printed on failure; JSON_TEST_SEED=<n> replays a run). */
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	return trng_xorshift(&rng);
}

/* Values of every width up to max: small ones, ones near 2^8/2^16/2^32
 * and max itself are what a JSON or msgpack codec gets wrong. */
static uint64_t rnd_upto(uint64_t max)
{
	static const uint64_t edges[] = {0,     1,     127,         128,           255,      256,
	                                 65535, 65536, 4294967295u, 4294967296ull, INT64_MAX};
	uint64_t v = rnd() % 3 == 0 ? edges[rnd() % (sizeof(edges) / sizeof(edges[0]))]
	                            : rnd() >> (rnd() % 64);
	return v > max ? max : v;
}

static bo_seatmap *rnd_map(void)
{
	uint32_t rows = (uint32_t)(rnd() % 5), seats[5], total = 0;
	for (uint32_t r = 0; r < rows; r++)
		total += seats[r] = (uint32_t)(rnd() % 20);
	bo_seatmap *m =
	        bo_seatmap_new(rows, total, (uint32_t)(rnd() % (BO_POOLS_PER_EVENT_MAX + 1)));
	cr_assert(m != NULL);
	m->category_count = (uint32_t)rnd_upto(UINT32_MAX);
	int uniform = rnd() % 2;
	for (uint32_t r = 0, first = 0; r < rows; first += seats[r++]) {
		m->rows[r] = (bo_row_def){.section = (uint16_t)rnd_upto(UINT16_MAX),
		                          .seats = (uint16_t)seats[r]};
		for (uint32_t i = 0; i < seats[r]; i++)
			m->categories[first + i] = (uint8_t)(uniform ? r : rnd_upto(UINT8_MAX));
	}
	for (uint32_t p = 0; p < m->pool_count; p++)
		m->pool_capacity[p] = (uint32_t)rnd_upto(UINT32_MAX);
	return m;
}

/* A command of op with random values in every field it could use (the
 * encoder writes those its op has); ids within JSON's 0..2^63-1. */
static bo_cmd rnd_cmd(uint8_t op)
{
	bo_cmd c = tcmd(op, rnd_upto(INT64_MAX), rnd_upto(INT64_MAX), rnd_upto(INT64_MAX));
	c.seat_count = (uint8_t)(rnd() % (BO_SEATS_PER_HOLD_MAX + 1));
	for (uint32_t i = 0; i < c.seat_count; i++)
		c.seats[i] = (uint32_t)rnd_upto(UINT32_MAX);
	c.ttl_ms = (uint32_t)rnd_upto(UINT32_MAX);
	c.category = (uint8_t)rnd_upto(UINT8_MAX);
	c.quantity = (uint16_t)rnd_upto(UINT16_MAX);
	c.pool = (uint8_t)rnd_upto(UINT8_MAX);
	c.claim_id = rnd_upto(INT64_MAX);
	c.payref_len = (uint8_t)(rnd() % (BO_PAYREF_LEN_MAX + 1));
	for (uint32_t i = 0; i < c.payref_len; i++)
		c.payref[i] = (char)(rnd() % 128); /* ASCII, NUL included: JSON strings are UTF-8 */
	if (op == BO_OP_CREATE_EVENT)
		c.map = rnd_map();
	return c;
}

/* The msgpack value o as JSON (a test-side converter over msgpack-c's
 * unpacker and jansson: independent of json.c). */
static json_t *to_json(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		cr_assert(o->via.u64 <= INT64_MAX);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_STR:
		return json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			json_array_append_new(a, to_json(&o->via.array.ptr[i]));
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			cr_assert_eq(kv->key.type, MSGPACK_OBJECT_STR);
			json_object_setn_new_nocheck(m, kv->key.via.str.ptr, kv->key.via.str.size,
			                             to_json(&kv->val));
		}
		return m;
	}
	default:
		cr_assert_fail("wire_encode_request wrote a msgpack type %d", o->type);
		return NULL;
	}
}

/* Random batches of every op: the JSON of the msgpack request decodes to
 * what the msgpack decoder gives, field for field. */
Test(json, random_commands_decode_as_msgpack)
{
	const char *s = getenv("JSON_TEST_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
	rng = seed ? seed : 1;
	bo_cmd cmds[CAP];
	for (int round = 0; round < 300; round++) {
		uint32_t n = 1 + (uint32_t)(rnd() % 24);
		int as_array = n > 1 || rnd() % 2;
		for (uint32_t i = 0; i < n; i++)
			cmds[i] = rnd_cmd((uint8_t)(1 + rnd() % (BO_OP_COUNT - 1)));
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		cr_assert_eq(wire_encode_request(cmds, n, as_array, &sb), 0);
		msgpack_unpacked up;
		msgpack_unpacked_init(&up);
		cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, NULL),
		             MSGPACK_UNPACK_SUCCESS);
		json_t *j = to_json(&up.data);
		char *body = json_dumps(j, JSON_COMPACT);
		cr_assert(body != NULL);
		wire_msg msg;
		int rc = json_decode_request(body, strlen(body), as_array ? JSON_BATCH : JSON_ONE,
		                             jcmds, jerrs, CAP, &msg);
		cr_assert_eq(rc, 0, "seed %llu: %s", (unsigned long long)seed, msg.error);
		cr_assert(msg.count == n && msg.is_array == as_array, "seed %llu",
		          (unsigned long long)seed);
		mdecode(cmds, n, as_array);
		for (uint32_t i = 0; i < n; i++) {
			cr_assert_eq(jerrs[i].status, merrs[i].status, "seed %llu",
			             (unsigned long long)seed);
			cr_assert_str_eq(jerrs[i].text, merrs[i].text, "seed %llu",
			                 (unsigned long long)seed);
			if (merrs[i].status == BO_OK)
				assert_same(&jcmds[i], &mcmds[i], bo_op_str(cmds[i].op));
		}
		wire_free_maps(jcmds, n);
		wire_free_maps(mcmds, n);
		for (uint32_t i = 0; i < n; i++)
			bo_seatmap_free((bo_seatmap *)(uintptr_t)cmds[i].map);
		free(body);
		json_decref(j);
		msgpack_unpacked_destroy(&up);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ---- Command-level rejections --------------------------------------------- */

typedef struct bad_case {
	const char *json;
	uint8_t status;
	uint8_t detail;
	const char *text;
} bad_case;

#define HS "'op':'hold_seats','client':1,'request':2,'event':3"
#define MAP_CE "'op':'create_event','client':1,'request':2,'event':3,'map':"

static const bad_case bad_cases[] = {
        {"{'op':'query_avail','event':1.0}", BO_INVALID, BO_D_NONE,
         "'event' must be an unsigned integer, not a float"},
        {"{'op':'query_avail','event':1e3}", BO_INVALID, BO_D_NONE,
         "'event' must be an unsigned integer, not a float"},
        {"{'op':'query_avail','event':true}", BO_INVALID, BO_D_NONE,
         "'event' must be an unsigned integer, not a boolean"},
        {"{'op':'query_avail','event':'3'}", BO_INVALID, BO_D_NONE,
         "'event' must be an unsigned integer, not a string"},
        {"{'op':'query_avail','event':null}", BO_INVALID, BO_D_NONE,
         "'event' must be an unsigned integer, not nil"},
        {"{'op':'query_avail','event':-1}", BO_INVALID, BO_D_NONE,
         "'event' must not be negative (got -1)"},
        {"{'op':'query_avail','event':-9223372036854775808}", BO_INVALID, BO_D_NONE,
         "'event' must not be negative (got -9223372036854775808)"},
        {"{" HS ",'seats':[1],'ttl_ms':false}", BO_INVALID, BO_D_NONE,
         "'ttl_ms' must be an unsigned integer, not a boolean"},
        {"{" HS ",'seats':[1],'ttl_ms':4294967296}", BO_INVALID, BO_D_TTL_RANGE,
         "'ttl_ms' is 4294967296, more than 4294967295"},
        {"{" HS ",'seats':[1.5],'ttl_ms':1000}", BO_INVALID, BO_D_NONE,
         "'seats[]' must be an unsigned integer, not a float"},
        {"{" HS ",'seats':[4294967296],'ttl_ms':1000}", BO_INVALID, BO_D_SEAT_RANGE,
         "'seats[]' is 4294967296, more than 4294967295"},
        {"{" HS ",'seats':[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17],'ttl_ms':1000}", BO_INVALID,
         BO_D_SEAT_COUNT, "'seats' has 17 entries, at most 16"},
        {"{" HS ",'seats':{},'ttl_ms':1000}", BO_INVALID, BO_D_NONE, "'seats' must be an array"},
        {"{" HS ",'seats':[1]}", BO_INVALID, BO_D_NONE, "missing key 'ttl_ms' (op 'hold_seats')"},
        {"{" HS ",'seats':[1],'ttl_ms':1000,'hold':4}", BO_INVALID, BO_D_NONE,
         "key 'hold' does not apply to op 'hold_seats'"},
        {"{" HS ",'seats':[1],'ttl_ms':1000,'colour':4}", BO_INVALID, BO_D_NONE,
         "unknown key 'colour'"},
        {"{'op':'hold_sets','event':3}", BO_INVALID, BO_D_BAD_OP, "unknown op 'hold_sets'"},
        {"{'op':'hold_seats\\u0000','event':3}", BO_INVALID, BO_D_BAD_OP,
         "unknown op 'hold_seats?'"},
        {"{'op':7,'event':3}", BO_INVALID, BO_D_NONE, "'op' must be a string"},
        {"{'event':3}", BO_INVALID, BO_D_NONE, "missing key 'op'"},
        {"{'op':'hold_best','client':1,'request':2,'event':3,'category':256,'quantity':1,"
         "'ttl_ms':1000}",
         BO_INVALID, BO_D_CATEGORY_RANGE, "'category' is 256, more than 255"},
        {"{'op':'hold_best','client':1,'request':2,'event':3,'category':1,'quantity':65536,"
         "'ttl_ms':1000}",
         BO_INVALID, BO_D_QUANTITY, "'quantity' is 65536, more than 65535"},
        {"{'op':'hold_pool','client':1,'request':2,'event':3,'pool':300,'quantity':1,"
         "'ttl_ms':1000}",
         BO_INVALID, BO_D_POOL_RANGE, "'pool' is 300, more than 255"},
        {"{'op':'confirm','client':1,'request':2,'event':3,'hold':4,"
         "'payref':'123456789012345678901234567890123'}",
         BO_INVALID, BO_D_PAYREF, "'payref' has 33 bytes, at most 32"},
        {"{'op':'confirm','client':1,'request':2,'event':3,'hold':4,'payref':5}", BO_INVALID,
         BO_D_NONE, "'payref' must be a string"},
        {"{'op':'release','client':1,'event':3,'hold':4}", BO_INVALID, BO_D_NONE,
         "missing key 'request' (op 'release')"},
        {"{" MAP_CE "[]}", BO_INVALID, BO_D_MAP_INVALID, "'map' must be a map"},
        {"{" MAP_CE "{'rows':[{'seats':3,'category':1}]}}", BO_INVALID, BO_D_MAP_INVALID,
         "row 0: missing key 'section'"},
        {"{" MAP_CE "{'rows':[{'section':1,'seats':3,'category':1,'categories':[1]}]}}", BO_INVALID,
         BO_D_MAP_INVALID, "row 0: give either 'seats' and 'category' or 'categories'"},
        {"{" MAP_CE "{'rows':[{'section':1,'seats':3,'category':1.0}]}}", BO_INVALID,
         BO_D_MAP_INVALID, "'category' must be an unsigned integer, not a float"},
        {"{" MAP_CE "{'pools':[1,2,3,4,5,6,7,8,9]}}", BO_INVALID, BO_D_MAP_INVALID,
         "'pools' has 9 entries, at most 8"},
        {"{" MAP_CE "{'shape':1}}", BO_INVALID, BO_D_MAP_INVALID, "unknown key 'shape' in 'map'"},
};

/* The text must match the msgpack decoder's word for word, so compare the
 * whole text, not a fragment. */
Test(json, each_command_fault_is_the_msgpack_fault)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const bad_case *b = &bad_cases[i];
		wire_msg msg;
		int rc = jdecode(b->json, JSON_ONE, &msg);
		cr_assert_eq(rc, 0, "case %zu: %s", i, msg.error);
		cr_assert(msg.count == 1 && msg.invalid == 1, "case %zu", i);
		cr_assert_eq(jerrs[0].status, b->status, "case %zu: status %u", i, jerrs[0].status);
		cr_assert_eq(jerrs[0].detail, b->detail, "case %zu: detail %u (%s)", i,
		             jerrs[0].detail, jerrs[0].text);
		cr_assert_str_eq(jerrs[0].text, b->text, "case %zu", i);
		cr_assert_eq(jcmds[0].op, 0, "case %zu: a rejected command is zeroed", i);
	}
}

Test(json, a_bad_command_rejects_only_itself)
{
	wire_msg msg;
	int rc = jdecode("[{'op':'query_avail','event':1},[1],'x',{'op':'query_avail','event':-2},"
	                 "{'op':'query_avail','event':4}]",
	                 JSON_BATCH, &msg);
	cr_assert_eq(rc, 0, "%s", msg.error);
	cr_assert(msg.count == 5 && msg.invalid == 3 && msg.is_array);
	cr_assert(jerrs[0].status == BO_OK && jcmds[0].event_id == 1);
	cr_assert_str_eq(jerrs[1].text, "a command must be a map, not an array");
	cr_assert_str_eq(jerrs[2].text, "a command must be a map, not a string");
	cr_assert_str_eq(jerrs[3].text, "'event' must not be negative (got -2)");
	cr_assert(jerrs[4].status == BO_OK && jcmds[4].event_id == 4);
}

/* ---- Message-level rejections ------------------------------------------- */

/* Asserts -EINVAL, nothing decoded, and an error containing `why`. */
static void assert_refused(const char *body, size_t len, int shape, uint32_t cap, const char *why)
{
	wire_msg msg;
	memset(jcmds, 0xab, sizeof(jcmds));
	int rc = json_decode_request(body, len, shape, jcmds, jerrs, cap, &msg);
	cr_assert_eq(rc, -EINVAL, "accepted (%d): %.60s", rc, body);
	cr_assert_eq(msg.count, 0);
	cr_assert(strstr(msg.error, why) != NULL, "'%s' lacks '%s'", msg.error, why);
}

static void assert_refused_q(const char *json, int shape, const char *why)
{
	char *body = q(json);
	assert_refused(body, strlen(body), shape, CAP, why);
	free(body);
}

Test(json, malformed_messages_are_refused_whole)
{
	assert_refused("", 0, JSON_ONE, CAP, "empty body");
	assert_refused_q("{'op':'query_avail'", JSON_ONE, "not JSON");
	assert_refused_q("{'op':'query_avail','event':1} x", JSON_ONE, "end of file expected");
	assert_refused_q("{'op':'query_avail','event':1}{}", JSON_ONE, "end of file expected");
	assert_refused_q("{'op':'query_avail','event':1,'event':2}", JSON_ONE, "duplicate");
	assert_refused_q("[{'op':'query_avail','event':1,'op':'x'}]", JSON_BATCH, "duplicate");
	assert_refused_q("{'op':'query_avail','event':9223372036854775808}", JSON_ONE,
	                 "too big integer");
	assert_refused_q("{'op':'query_avail','event':-9223372036854775809}", JSON_ONE, "too big");
	assert_refused_q("[{'op':'query_avail','event':1}]", JSON_ONE,
	                 "expected one command object, not an array");
	assert_refused_q("{'op':'query_avail','event':1}", JSON_BATCH,
	                 "expected an array of command objects, not an object");
	assert_refused_q("[]", JSON_BATCH, "empty batch");
	assert_refused_q("  [ ]  ", JSON_BATCH, "empty batch");
	assert_refused_q("'hold_seats'", JSON_ONE, "not JSON");
	assert_refused_q("17", JSON_BATCH, "not JSON");
	/* A raw control byte inside a string is not JSON either. */
	assert_refused("{\"op\":\"a\tb\",\"event\":1}", 22, JSON_ONE, CAP, "not JSON");
}

Test(json, invalid_utf8_is_refused)
{
	const char *bodies[] = {
	        "{\"op\":\"query_avail\",\"event\":1,\"x\":\"\xff\"}",
	        "{\"op\":\"query_avail\xc3\",\"event\":1}",            /* truncated sequence */
	        "{\"op\":\"query_avail\",\"event\":1,\"\xc0\xaf\":1}", /* overlong '/' */
	        "{\"op\":\"\xed\xa0\x80\",\"event\":1}",               /* a UTF-16 surrogate */
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		assert_refused(bodies[i], strlen(bodies[i]), JSON_ONE, CAP, "not JSON");
}

/* An embedded NUL byte (not the \u0000 escape) ends nothing: the length is
 * the caller's, and the byte is not JSON. */
Test(json, raw_nul_byte_is_refused)
{
	const char body[] = "{\"op\":\"query_avail\",\"event\":1}\0";
	assert_refused(body, sizeof(body) - 1, JSON_ONE, CAP, "not JSON");
}

static char *nested(unsigned depth, int shape)
{
	/* depth containers: for JSON_BATCH "[{'op':..,'x':[[[...]]]}]", else
	 * "{'op':..,'x':[[...]]}"; depth counts every container. */
	size_t len = 2 * (size_t)depth + 64;
	char *b = calloc(1, len);
	cr_assert(b != NULL);
	unsigned arrays = depth - (shape == JSON_BATCH ? 2 : 1);
	strcat(b, shape == JSON_BATCH ? "[{\"op\":\"query_avail\",\"event\":1,\"x\":"
	                              : "{\"op\":\"query_avail\",\"event\":1,\"x\":");
	for (unsigned i = 0; i < arrays; i++)
		strcat(b, "[");
	for (unsigned i = 0; i < arrays; i++)
		strcat(b, "]");
	strcat(b, shape == JSON_BATCH ? "}]" : "}");
	return b;
}

Test(json, nesting_is_bounded_before_jansson)
{
	/* At the bound: parsed, and the command fails for its unknown key. */
	for (int shape = JSON_ONE; shape <= JSON_BATCH; shape++) {
		char *ok = nested(JSON_DEPTH_MAX, shape);
		wire_msg msg;
		int rc = json_decode_request(ok, strlen(ok), shape, jcmds, jerrs, CAP, &msg);
		cr_assert_eq(rc, 0, "%s", msg.error);
		cr_assert_str_eq(jerrs[0].text, "unknown key 'x'");
		free(ok);
		char *deep = nested(JSON_DEPTH_MAX + 1, shape);
		assert_refused(deep, strlen(deep), shape, CAP, "nested deeper than 8");
		free(deep);
	}
	/* A bomb: 4 MiB of '[' (jansson alone would recurse 2048 deep and
	 * then refuse; the scan refuses at the 9th). And '[' inside a string
	 * is not nesting. */
	size_t n = 4u << 20;
	char *bomb = malloc(n);
	cr_assert(bomb != NULL);
	memset(bomb, '[', n);
	assert_refused(bomb, n, JSON_BATCH, CAP, "nested deeper than 8 (at byte 8)");
	free(bomb);
	wire_msg msg;
	char *s = q("{'op':'[[[[[[[[[[[[\\\"[[[[[[[[','event':1}");
	cr_assert_eq(json_decode_request(s, strlen(s), JSON_ONE, jcmds, jerrs, CAP, &msg), 0);
	cr_assert_eq(jerrs[0].detail, BO_D_BAD_OP);
	free(s);
}

Test(json, a_batch_over_the_cap_is_refused_unparsed)
{
	/* cap commands pass, cap + 1 do not. */
	for (uint32_t cap = 1; cap <= 3; cap++) {
		for (uint32_t n = cap; n <= cap + 1; n++) {
			char body[256] = "[";
			for (uint32_t i = 0; i < n; i++)
				strcat(body, i ? ",{\"op\":\"query_avail\",\"event\":1}"
				               : "{\"op\":\"query_avail\",\"event\":1}");
			strcat(body, "]");
			if (n > cap) {
				assert_refused(body, strlen(body), JSON_BATCH, cap,
				               "exceeds the limit of");
				/* Unterminated: the count refused it, not jansson. */
				assert_refused(body, strlen(body) - 1, JSON_BATCH, cap,
				               "exceeds the limit of");
				continue;
			}
			wire_msg msg;
			cr_assert_eq(json_decode_request(body, strlen(body), JSON_BATCH, jcmds,
			                                 jerrs, cap, &msg),
			             0, "%s", msg.error);
			cr_assert_eq(msg.count, n);
		}
	}
	/* A huge array of 2 Mi elements: refused by the count, not parsed
	 * (the body is not even JSON past its first bytes). */
	size_t n = 4u << 20;
	char *huge = malloc(n);
	cr_assert(huge != NULL);
	for (size_t i = 0; i < n; i += 2) {
		huge[i] = i ? ',' : '[';
		huge[i + 1] = '0';
	}
	assert_refused(huge, n, JSON_BATCH, 1024,
	               "batch of 2097152 commands exceeds the limit of 1024");
	free(huge);
	/* Commas inside strings or nested containers do not count. */
	wire_msg msg;
	char *b = q("[{'op':'query_seats','event':1,'seats':[1,2,3]},"
	            "{'op':'x,,,,,,,,,,,','event':2}]");
	cr_assert_eq(json_decode_request(b, strlen(b), JSON_BATCH, jcmds, jerrs, 2, &msg), 0, "%s",
	             msg.error);
	free(b);
}

/* ---- Encoders ------------------------------------------------------------ */

static json_t *parse_out(const msgpack_sbuffer *sb)
{
	json_error_t err;
	json_t *v = json_loadb(sb->data, sb->size, JSON_REJECT_DUPLICATES, &err);
	cr_assert(v != NULL, "encoder output is not JSON: %s: %.*s", err.text, (int)sb->size,
	          sb->data);
	return v;
}

static const char *sget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_string(v), "key '%s' is not a string", k);
	return json_string_value(v);
}

static json_int_t iget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_integer(v), "key '%s' is not an integer", k);
	return json_integer_value(v);
}

/* The keys of object o, sorted by name, joined with ','. */
static void keys_of(json_t *o, char *dst, size_t cap)
{
	const char *names[32];
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		cr_assert(n < 32);
		names[n++] = k;
	}
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	}
	dst[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strncat(dst, names[i], cap - strlen(dst) - 2);
		if (i + 1 < n)
			strcat(dst, ",");
	}
}

static bo_result result(uint8_t op, uint8_t status, uint8_t detail)
{
	bo_result r;
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.status = status;
	r.detail = detail;
	r.client_id = 11;
	r.request_id = 12;
	r.event_id = 13;
	return r;
}

Test(json, replies_have_the_documented_keys)
{
	bo_result r[6];
	r[0] = result(BO_OP_HOLD_SEATS, BO_OK, BO_D_NONE);
	r[0].claim_id = (3ull << 32) | 9;
	r[0].expires_at_ms = 1767225600000;
	r[0].seat_count = 2;
	r[0].seats[0] = 4;
	r[0].seats[1] = 5;
	r[0].quantity = 2;
	r[1] = result(BO_OP_CONFIRM, BO_OK, BO_D_NONE);
	r[1].claim_id = 77;
	r[1].seat_count = 1;
	r[1].seats[0] = 4;
	r[1].quantity = 1;
	r[1].replayed = 1;
	r[2] = result(BO_OP_QUERY_SEATS, BO_OK, BO_D_NONE);
	r[2].seat_count = 2;
	r[2].seats[0] = 4;
	r[2].seats[1] = 6;
	r[2].seat_state[0] = BO_SEAT_BOOKED;
	r[2].seat_state[1] = BO_SEAT_FREE;
	r[2].view_seq = 99;
	r[3] = result(BO_OP_QUERY_AVAIL, BO_OK, BO_D_NONE);
	r[3].avail.by_state[BO_SEAT_FREE] = 10;
	r[3].avail.by_state[BO_SEAT_BOOKED] = 1;
	r[3].avail.category_count = 2;
	r[3].avail.free_by_category[0] = 6;
	r[3].avail.free_by_category[1] = 4;
	r[3].avail.pool_count = 1;
	r[3].avail.pool_capacity[0] = 50;
	r[3].avail.pool_free[0] = 49;
	r[4] = result(BO_OP_HOLD_SEATS, BO_TAKEN, BO_D_SEAT_UNAVAILABLE);
	r[4].seat_count = 1;
	r[4].seats[0] = 4;
	r[5] = result(BO_OP_HOLD_BEST, BO_THROTTLED, BO_D_NONE);
	r[5].retry_after_ms = 250;
	static const char *const want[] = {
	        "client,event,expires_at_ms,hold,op,quantity,request,seats,status",
	        "booking,client,event,hold,op,quantity,replayed,request,seats,status",
	        "client,event,op,request,seats,seq,states,status",
	        "avail,client,event,op,request,status",
	        "client,detail,error,event,op,request,seats,status",
	        "client,detail,error,event,op,request,retry_after_ms,status",
	};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(json_encode_replies(r, NULL, 6, 1, &sb), 0);
	json_t *a = parse_out(&sb);
	cr_assert(json_is_array(a) && json_array_size(a) == 6);
	for (size_t i = 0; i < 6; i++) {
		json_t *o = json_array_get(a, i);
		char keys[256];
		keys_of(o, keys, sizeof(keys));
		cr_assert_str_eq(keys, want[i], "reply %zu", i);
		cr_assert_str_eq(sget(o, "status"), bo_status_str(r[i].status));
		cr_assert_str_eq(sget(o, "op"), bo_op_str(r[i].op));
		cr_assert(iget(o, "client") == 11 && iget(o, "request") == 12 &&
		          iget(o, "event") == 13);
	}
	json_t *o = json_array_get(a, 0);
	cr_assert_eq(iget(o, "hold"), (json_int_t)((3ull << 32) | 9));
	cr_assert_eq(iget(o, "expires_at_ms"), 1767225600000);
	cr_assert(json_integer_value(json_array_get(json_object_get(o, "seats"), 1)) == 5);
	o = json_array_get(a, 1);
	cr_assert(iget(o, "booking") == 77 && json_is_true(json_object_get(o, "replayed")));
	o = json_array_get(a, 2);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "states"), 0)),
	                 "booked");
	cr_assert_eq(iget(o, "seq"), 99);
	json_t *av = json_object_get(json_array_get(a, 3), "avail");
	cr_assert(iget(av, "free") == 10 && iget(av, "booked") == 1 && iget(av, "held") == 0);
	cr_assert_eq(json_array_size(json_object_get(av, "free_by_category")), 2);
	json_t *pool = json_array_get(json_object_get(av, "pools"), 0);
	cr_assert(iget(pool, "capacity") == 50 && iget(pool, "free") == 49);
	o = json_array_get(a, 4);
	cr_assert_str_eq(sget(o, "detail"), "seat_unavailable");
	o = json_array_get(a, 5);
	cr_assert_eq(iget(o, "retry_after_ms"), 250);
	json_decref(a);
	msgpack_sbuffer_destroy(&sb);
}

Test(json, retry_after_only_on_shed_replies_with_a_hint)
{
	bo_result r[4];
	r[0] = result(BO_OP_HOLD_BEST, BO_BUSY, BO_D_NONE);
	r[0].retry_after_ms = 1000;
	r[1] = result(BO_OP_HOLD_BEST, BO_THROTTLED, BO_D_NONE); /* no hint */
	r[2] = result(BO_OP_HOLD_BEST, BO_TAKEN, BO_D_SOLD_OUT);
	r[2].retry_after_ms = 5; /* not a shed status: no key */
	r[3] = result(BO_OP_HOLD_BEST, BO_THROTTLED, BO_D_NONE);
	r[3].retry_after_ms = 7;
	wire_cmd_error errs[4] = {{0}};
	errs[3].status = BO_INVALID; /* a decode error wins over the result */
	strcpy(errs[3].text, "'quantity' must be an unsigned integer, not a float");
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(json_encode_replies(r, errs, 4, 1, &sb), 0);
	json_t *a = parse_out(&sb);
	cr_assert_eq(iget(json_array_get(a, 0), "retry_after_ms"), 1000);
	cr_assert_str_eq(sget(json_array_get(a, 0), "error"), "server busy, retry later");
	for (size_t i = 1; i < 4; i++)
		cr_assert_null(json_object_get(json_array_get(a, i), "retry_after_ms"), "reply %zu",
		               i);
	json_t *e = json_array_get(a, 3);
	cr_assert_str_eq(sget(e, "status"), "invalid");
	cr_assert_str_eq(sget(e, "detail"), "malformed");
	cr_assert_str_eq(sget(e, "error"), errs[3].text);
	json_decref(a);
	/* One reply: an object, not an array. */
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(json_encode_replies(&r[0], NULL, 1, 0, &sb), 0);
	a = parse_out(&sb);
	cr_assert(json_is_object(a));
	json_decref(a);
	/* No encoding: -EINVAL, the buffer as it was. */
	msgpack_sbuffer_clear(&sb);
	msgpack_sbuffer_write(&sb, "xy", 2);
	r[0].status = BO_STATUS_COUNT;
	cr_assert_eq(json_encode_replies(r, NULL, 2, 1, &sb), -EINVAL);
	cr_assert(sb.size == 2 && memcmp(sb.data, "xy", 2) == 0);
	msgpack_sbuffer_destroy(&sb);
}

Test(json, message_errors_escape_any_text)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	const char text[] = "quote \" backslash \\ tab \t del \x7f high \xff end";
	cr_assert_eq(json_encode_error(BO_INVALID, text, &sb), 0);
	json_t *o = parse_out(&sb);
	char keys[128];
	keys_of(o, keys, sizeof(keys));
	cr_assert_str_eq(keys, "detail,error,status");
	cr_assert_str_eq(sget(o, "status"), "invalid");
	cr_assert_str_eq(sget(o, "detail"), "malformed");
	/* Bytes outside printable ASCII come back as the Latin-1 characters
	 * they are (base/json.h): 0xff is U+00FF, UTF-8 c3 bf. */
	cr_assert_str_eq(sget(o, "error"),
	                 "quote \" backslash \\ tab \t del \x7f high \xc3\xbf end");
	json_decref(o);
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(json_encode_error(BO_BUSY, "shed", &sb), 0);
	o = parse_out(&sb);
	cr_assert_str_eq(sget(o, "status"), "busy");
	cr_assert_str_eq(sget(o, "detail"), "none");
	json_decref(o);
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(json_encode_error(BO_OK, "not an error", &sb), -EINVAL);
	cr_assert_eq(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* A decoder's message error, answered with json_encode_error, is JSON
 * whatever the client sent (jansson quotes the bytes it chokes on). */
Test(json, refusals_of_garbage_encode_as_json)
{
	const char body[] = "{\"op\":\"\xff\x01\"}";
	wire_msg msg;
	cr_assert_eq(json_decode_request(body, sizeof(body) - 1, JSON_ONE, jcmds, jerrs, CAP, &msg),
	             -EINVAL);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(json_encode_error(BO_INVALID, msg.error, &sb), 0);
	json_decref(parse_out(&sb));
	msgpack_sbuffer_destroy(&sb);
}

Test(json, http_status_table)
{
	static const int want[BO_STATUS_COUNT] = {
	        [BO_OK] = 200,        [BO_TAKEN] = 409,   [BO_EXPIRED] = 410,
	        [BO_NOT_FOUND] = 404, [BO_INVALID] = 400, [BO_LIMIT] = 422,
	        [BO_CONFLICT] = 409,  [BO_BUSY] = 503,    [BO_THROTTLED] = 429,
        [BO_NOT_PRIMARY] = 421,
	};
	for (int s = 0; s < BO_STATUS_COUNT; s++)
		cr_assert_eq(json_http_status(s), want[s], "status %s", bo_status_str(s));
	cr_assert_eq(json_http_status(BO_STATUS_COUNT), 500);
}

Test(json, event_image_has_the_documented_keys)
{
	bo_row_def rows[2] = {{.section = 1, .seats = 2}, {.section = 4, .seats = 1}};
	uint8_t cats[3] = {0, 1, 1};
	uint8_t states[3] = {BO_SEAT_FREE, BO_SEAT_HELD, BO_SEAT_BLOCKED};
	bo_event_image im = {.event_id = 13,
	                     .seq = 400,
	                     .seat_count = 3,
	                     .row_count = 2,
	                     .category_count = 2,
	                     .pool_count = 1,
	                     .rows = rows,
	                     .categories = cats,
	                     .states = states};
	im.pool_capacity[0] = 10;
	im.pool_free[0] = 3;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(json_encode_event_image(&im, &sb), 0);
	json_t *o = parse_out(&sb);
	char keys[256];
	keys_of(o, keys, sizeof(keys));
	cr_assert_str_eq(keys, "categories,event,pools,rows,seat_categories,seats,seq,status");
	cr_assert_str_eq(sget(o, "status"), "ok");
	cr_assert(iget(o, "event") == 13 && iget(o, "seq") == 400 && iget(o, "categories") == 2);
	json_t *r1 = json_array_get(json_object_get(o, "rows"), 1);
	cr_assert(iget(r1, "section") == 4 && iget(r1, "seats") == 1);
	json_t *seats = json_object_get(o, "seats");
	cr_assert_eq(json_array_size(seats), 3);
	cr_assert_str_eq(json_string_value(json_array_get(seats, 1)), "held");
	cr_assert_str_eq(json_string_value(json_array_get(seats, 2)), "blocked");
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(o, "seat_categories"), 2)),
	             1);
	json_t *p = json_array_get(json_object_get(o, "pools"), 0);
	cr_assert(iget(p, "capacity") == 10 && iget(p, "free") == 3);
	json_decref(o);
	/* An empty image is still a complete object. */
	bo_event_image empty = {.event_id = 1};
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(json_encode_event_image(&empty, &sb), 0);
	json_decref(parse_out(&sb));
	/* A state out of range has no name: -EINVAL, nothing written. */
	states[1] = BO_SEAT_STATE_COUNT;
	msgpack_sbuffer_clear(&sb);
	cr_assert_eq(json_encode_event_image(&im, &sb), -EINVAL);
	cr_assert_eq(sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- schemas/http.md ------------------------------------------------------ */

/* Every curl body of schemas/http.md (-d '...') decodes, with no rejected
 * command, as the route it is sent to; and its message-level example is
 * this decoder's text, word for word. */
Test(json, http_md_examples_decode)
{
	FILE *f = fopen(BO_SOURCE_ROOT "/schemas/http.md", "rb");
	cr_assert(f != NULL, "cannot open " BO_SOURCE_ROOT "/schemas/http.md");
	static char md[1 << 16];
	size_t n = fread(md, 1, sizeof(md) - 1, f);
	fclose(f);
	md[n] = '\0';
	int bodies = 0;
	for (const char *p = strstr(md, "-d '"); p; p = strstr(p, "-d '")) {
		p += 4;
		const char *end = strchr(p, '\'');
		cr_assert(end != NULL);
		int shape = p[0] == '[' ? JSON_BATCH : JSON_ONE;
		wire_msg msg;
		int rc = json_decode_request(p, (size_t)(end - p), shape, jcmds, jerrs, CAP, &msg);
		cr_assert_eq(rc, 0, "http.md body %d: %s", bodies, msg.error);
		cr_assert_eq(msg.invalid, 0, "http.md body %d: %s", bodies, jerrs[0].text);
		wire_free_maps(jcmds, msg.count);
		bodies++;
	}
	cr_assert_geq(bodies, 5);
	const char *body = strstr(md, "For the body `");
	cr_assert(body != NULL);
	body += strlen("For the body `");
	const char *end = strchr(body, '`');
	wire_msg msg;
	cr_assert_eq(
	        json_decode_request(body, (size_t)(end - body), JSON_ONE, jcmds, jerrs, CAP, &msg),
	        -EINVAL);
	char want[160];
	snprintf(want, sizeof(want), "\"error\": \"%s\"}", msg.error);
	cr_assert(strstr(end, want) != NULL, "http.md does not show %s", want);
}
