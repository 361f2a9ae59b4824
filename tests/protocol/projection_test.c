/*
 * projection_test.c — proves the read side of the wire codec
 * (protocol/projection.c): projection messages and the event_state reply,
 * as protocol/projection.h and schemas/protocol.md part II describe them.
 *
 * How:
 *  - Topics: wire_topic writes the event id big-endian, and every encoded
 *    message starts with its event's topic (so an nng SUB prefix selects
 *    exactly one event).
 *  - Projection round trips: every cause (seat changes, pool changes,
 *    create), the extremes of every field (seats at the last index, 16
 *    seats, pool 7, 100 tickets, 1000000 free, ids and sequences at
 *    UINT64_MAX, negative times), a message of WIRE_PROJECTION_CHANGES_MAX
 *    changes, and random messages decode to what was encoded.
 *  - The encoder refuses what the decoder would refuse (and leaves the
 *    buffer as it was), so whatever the server writes a client reads.
 *  - Every decoder rejection the header lists has a case in a table of
 *    hand-written messages (written in a small notation, mp_spec below),
 *    each with the text it must give; unknown keys are skipped at both
 *    levels.
 *  - event_state images: a small map, a pool-only event and a 1 Mi-seat
 *    event round trip; the encoder refuses images over limits.h or
 *    inconsistent; every rejection of the decoder has a case; refusals
 *    (not_found, throttled, busy) decode as statuses with their text;
 *    an allocation failure at each of the decoder's allocations is -ENOMEM
 *    with nothing left allocated (malloc is wrapped: -Wl,--wrap=malloc).
 *  - Hostile bytes: a truncation at every byte offset of a valid message
 *    of each kind is rejected, read from exact-size heap copies (ASan sees
 *    any over-read).
 *  - The worked example of schemas/protocol.md (section 16) is what the
 *    encoder writes, byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/names.h"
#include "protocol/projection.h"

/* ---- malloc under the test's control (-Wl,--wrap=malloc) ----------------- */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void __real_free(void *p);
void __wrap_free(void *p);

/* While `tracking`, the blocks malloc hands out are remembered until freed,
 * and the fail_at-th allocation (counting from 1) fails. */
static int tracking;
static int fail_at, mallocs;
static void *live[64];

void *__wrap_malloc(size_t n)
{
	if (!tracking)
		return __real_malloc(n);
	if (++mallocs == fail_at)
		return NULL;
	void *p = __real_malloc(n);
	for (size_t i = 0; p && i < sizeof(live) / sizeof(live[0]); i++) {
		if (!live[i]) {
			live[i] = p;
			return p;
		}
	}
	abort(); /* more live blocks than the table: the test is wrong */
}

void __wrap_free(void *p)
{
	for (size_t i = 0; p && i < sizeof(live) / sizeof(live[0]); i++) {
		if (live[i] == p)
			live[i] = NULL;
	}
	__real_free(p);
}

static int live_blocks(void)
{
	int n = 0;
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		n += live[i] != NULL;
	return n;
}

/* ---- Helpers ------------------------------------------------------------- */

static msgpack_sbuffer sb;
static msgpack_packer pk;
static bo_change ch_in[WIRE_PROJECTION_CHANGES_MAX + 1], ch_out[WIRE_PROJECTION_CHANGES_MAX + 1];

static void sb_reset(void)
{
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void fini(void)
{
	msgpack_sbuffer_destroy(&sb);
}

TestSuite(projection, .fini = fini);

/* Decoders read from an exact-size heap copy (ASan sees any over-read). */
static int decode_proj(const void *buf, size_t len, wire_projection *h, uint32_t cap, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	int rc = wire_decode_projection(copy, len, h, ch_out, cap, m);
	free(copy);
	return rc;
}

static int decode_image(const void *buf, size_t len, bo_event_image *im, int *status, wire_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert(copy);
	memcpy(copy, buf, len);
	tracking = 1;
	int rc = wire_decode_event_image(copy, len, im, status, m);
	tracking = 0;
	free(copy);
	return rc;
}

static bo_change seat_change(int cause, int state, uint64_t claim, uint32_t n, uint32_t first)
{
	bo_change c = {.cause = (uint8_t)cause,
	               .state = (uint8_t)state,
	               .claim_id = claim,
	               .seat_count = (uint8_t)n};
	for (uint32_t i = 0; i < n && i < BO_SEATS_PER_HOLD_MAX; i++)
		c.seats[i] = first + i;
	return c;
}

static bo_change pool_change(int cause, uint64_t claim, int pool, uint32_t qty, uint32_t free_)
{
	return (bo_change){.cause = (uint8_t)cause,
	                   .is_pool = 1,
	                   .pool = (uint8_t)pool,
	                   .quantity = qty,
	                   .pool_free = free_,
	                   .claim_id = claim};
}

static void assert_changes_equal(const bo_change *a, const bo_change *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(a[i].cause, b[i].cause, "change %u", i);
		cr_assert_eq(a[i].is_pool, b[i].is_pool, "change %u", i);
		cr_assert_eq(a[i].claim_id, b[i].claim_id, "change %u", i);
		if (a[i].is_pool) {
			cr_assert(a[i].pool == b[i].pool && a[i].quantity == b[i].quantity &&
			                  a[i].pool_free == b[i].pool_free,
			          "change %u", i);
			continue;
		}
		cr_assert_eq(a[i].seat_count, b[i].seat_count, "change %u", i);
		if (a[i].seat_count)
			cr_assert_eq(a[i].state, b[i].state, "change %u", i);
		cr_assert(memcmp(a[i].seats, b[i].seats, a[i].seat_count * sizeof(uint32_t)) == 0,
		          "change %u", i);
	}
}

/* Encodes h + ch_in, decodes it, and checks both agree. */
static void roundtrip(const wire_projection *h)
{
	sb_reset();
	cr_assert_eq(wire_encode_projection(h, ch_in, &sb), 0);
	uint8_t topic[WIRE_TOPIC_BYTES];
	wire_topic(h->event_id, topic);
	cr_assert(memcmp(sb.data, topic, sizeof(topic)) == 0, "the message starts with its topic");
	wire_projection got;
	wire_msg m;
	cr_assert_eq(decode_proj(sb.data, sb.size, &got, WIRE_PROJECTION_CHANGES_MAX, &m), 0, "%s",
	             m.error);
	cr_assert(got.event_id == h->event_id && got.prev_seq == h->prev_seq && got.seq == h->seq &&
	          got.at_ms == h->at_ms && got.pub_us == h->pub_us && got.count == h->count);
	cr_assert_eq(m.count, h->count);
	assert_changes_equal(ch_in, ch_out, h->count);
}

/* ---- A notation for hand-written messages --------------------------------
 *
 *   {k=v k=v}  a map (string keys)      [v,v]  an array
 *   123        an unsigned integer      -5     a negative integer
 *   word       a string ('' quotes one with other characters: 'a b')
 *   ~          nil                      #0a0b  a bin of those bytes
 *
 * So the table of malformed messages reads like the doc's JSON. */

static const char *mp_value(const char *p);

/* Items of the container whose body starts at p (after the opening bracket). */
static uint32_t spec_items(const char *p, char close)
{
	int depth = 0, quoted = 0;
	uint32_t n = 0;
	int in_item = 0;
	for (; *p && !(depth == 0 && *p == close && !quoted); p++) {
		if (*p == '\'')
			quoted = !quoted;
		if (quoted)
			continue;
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		if (depth == 0 && close == '}' && *p == '=')
			n++;
		if (close == ']' && *p != ' ')
			in_item = 1;
		if (depth == 0 && close == ']' && *p == ',')
			n++;
	}
	return close == ']' ? n + (uint32_t)in_item : n;
}

static const char *mp_word(const char *p)
{
	const char *s = p;
	if (*p == '\'') {
		s = ++p;
		while (*p != '\'')
			p++;
		msgpack_pack_str_with_body(&pk, s, (size_t)(p - s));
		return p + 1;
	}
	while (*p && !strchr(" =,]}", *p))
		p++;
	msgpack_pack_str_with_body(&pk, s, (size_t)(p - s));
	return p;
}

static const char *mp_value(const char *p)
{
	while (*p == ' ')
		p++;
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		uint32_t n = spec_items(p + 1, close);
		if (close == '}')
			msgpack_pack_map(&pk, n);
		else
			msgpack_pack_array(&pk, n);
		p++;
		for (uint32_t i = 0; i < n; i++) {
			while (*p == ' ' || *p == ',')
				p++;
			if (close == '}') {
				p = mp_value(p); /* a key: a string, or not, on purpose */
				cr_assert_eq(*p, '=', "spec: '=' expected at '%s'", p);
				p++;
			}
			p = mp_value(p);
		}
		while (*p == ' ')
			p++;
		cr_assert_eq(*p, close, "spec: '%c' expected at '%s'", close, p);
		return p + 1;
	}
	char *end;
	if (*p == '-') {
		msgpack_pack_int64(&pk, strtoll(p, &end, 10));
		return end;
	}
	if (*p >= '0' && *p <= '9') {
		msgpack_pack_uint64(&pk, strtoull(p, &end, 10));
		return end;
	}
	if (*p == '~') {
		msgpack_pack_nil(&pk);
		return p + 1;
	}
	if (*p == '#') {
		uint8_t bytes[64];
		size_t n = 0;
		for (p++; strchr("0123456789abcdef", *p) && *p; p += 2) {
			cr_assert_lt(n, sizeof(bytes));
			unsigned v;
			sscanf(p, "%2x", &v);
			bytes[n++] = (uint8_t)v;
		}
		msgpack_pack_bin(&pk, n);
		msgpack_pack_bin_body(&pk, bytes, n);
		return p;
	}
	return mp_word(p);
}

/* sb = spec's value (mp_body) or, for a projection, the topic of `topic`
 * and then spec's value (mp_spec). */
static void mp_body(const char *spec)
{
	const char *end = mp_value(spec);
	cr_assert_eq(*end, '\0', "spec: trailing '%s'", end);
}

static void mp_spec(uint64_t topic, const char *spec)
{
	sb_reset();
	uint8_t t[WIRE_TOPIC_BYTES];
	wire_topic(topic, t);
	msgpack_sbuffer_write(&sb, (const char *)t, sizeof(t));
	mp_body(spec);
}

/* ---- Topics -------------------------------------------------------------- */

Test(projection, topic_is_the_event_id_big_endian)
{
	uint8_t t[WIRE_TOPIC_BYTES];
	wire_topic(0x0102030405060708ull, t);
	static const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8};
	cr_assert(memcmp(t, want, sizeof(want)) == 0);
	wire_topic(42, t);
	static const uint8_t want42[] = {0, 0, 0, 0, 0, 0, 0, 42};
	cr_assert(memcmp(t, want42, sizeof(want42)) == 0);
	wire_topic(UINT64_MAX, t);
	for (unsigned i = 0; i < WIRE_TOPIC_BYTES; i++)
		cr_assert_eq(t[i], 0xff);
}

/* ---- Projection round trips ---------------------------------------------- */

Test(projection, roundtrip_every_cause)
{
	uint32_t n = 0;
	ch_in[n++] = (bo_change){.cause = BO_CAUSE_CREATE};
	ch_in[n++] = seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 4294967296ull, 2, 3);
	ch_in[n++] = pool_change(BO_CAUSE_HOLD, 4294967297ull, 0, 4, 496);
	ch_in[n++] = seat_change(BO_CAUSE_RELEASE, BO_SEAT_FREE, 4294967296ull, 2, 3);
	ch_in[n++] = pool_change(BO_CAUSE_RELEASE, 4294967297ull, 0, 4, 500);
	ch_in[n++] = seat_change(BO_CAUSE_EXPIRY, BO_SEAT_FREE, 7, 1, 9);
	ch_in[n++] = pool_change(BO_CAUSE_EXPIRY, 8, 1, 1, 10);
	ch_in[n++] = seat_change(BO_CAUSE_CONFIRM, BO_SEAT_BOOKED, 9, 3, 0);
	ch_in[n++] = pool_change(BO_CAUSE_CONFIRM, 10, 2, 2, 0);
	ch_in[n++] = seat_change(BO_CAUSE_CANCEL, BO_SEAT_FREE, 9, 3, 0);
	ch_in[n++] = pool_change(BO_CAUSE_CANCEL, 10, 2, 2, 2);
	ch_in[n++] = seat_change(BO_CAUSE_BLOCK, BO_SEAT_BLOCKED, 0, 2, 100);
	ch_in[n++] = seat_change(BO_CAUSE_UNBLOCK, BO_SEAT_FREE, 0, 1, 101);
	wire_projection h = {.event_id = 42,
	                     .prev_seq = 1843,
	                     .seq = 1851,
	                     .at_ms = 1700000000000,
	                     .pub_us = 1700000000001234,
	                     .count = n};
	roundtrip(&h);
	/* Each cause alone, too. */
	bo_change all[16];
	memcpy(all, ch_in, n * sizeof(bo_change));
	for (uint32_t i = 0; i < n; i++) {
		ch_in[0] = all[i];
		h.count = 1;
		roundtrip(&h);
	}
}

Test(projection, roundtrip_extremes)
{
	ch_in[0] = seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, UINT64_MAX, BO_SEATS_PER_HOLD_MAX,
	                       BO_SEATS_PER_EVENT_MAX - BO_SEATS_PER_HOLD_MAX);
	ch_in[1] = pool_change(BO_CAUSE_CONFIRM, UINT64_MAX, BO_POOLS_PER_EVENT_MAX - 1,
	                       BO_POOL_QTY_PER_HOLD_MAX, BO_POOL_CAPACITY_MAX);
	ch_in[2] = seat_change(BO_CAUSE_BLOCK, BO_SEAT_BLOCKED, 0, 1, 0);
	wire_projection h = {.event_id = UINT64_MAX,
	                     .prev_seq = UINT64_MAX - 1,
	                     .seq = UINT64_MAX,
	                     .at_ms = INT64_MIN,
	                     .pub_us = INT64_MAX,
	                     .count = 3};
	roundtrip(&h);
	h = (wire_projection){.event_id = 1, .prev_seq = 0, .seq = 1, .at_ms = -1, .count = 3};
	roundtrip(&h);
}

Test(projection, roundtrip_max_changes)
{
	for (uint32_t i = 0; i < WIRE_PROJECTION_CHANGES_MAX; i++)
		ch_in[i] =
		        i % 2 ? seat_change(BO_CAUSE_EXPIRY, BO_SEAT_FREE, UINT64_MAX - i,
		                            BO_SEATS_PER_HOLD_MAX, BO_SEATS_PER_EVENT_MAX - 17 - i)
		              : pool_change(BO_CAUSE_HOLD, i, i % 8, 100, BO_POOL_CAPACITY_MAX - i);
	wire_projection h = {.event_id = 7,
	                     .prev_seq = 5,
	                     .seq = 5 + WIRE_PROJECTION_CHANGES_MAX,
	                     .count = WIRE_PROJECTION_CHANGES_MAX};
	roundtrip(&h);
	cr_assert_leq(sb.size, WIRE_TOPIC_BYTES + WIRE_MSG_MAX);
	/* A smaller cap refuses it. */
	wire_projection got;
	wire_msg m;
	cr_assert_eq(decode_proj(sb.data, sb.size, &got, WIRE_PROJECTION_CHANGES_MAX - 1, &m),
	             -EINVAL);
	cr_assert(strstr(m.error, "'changes' has 4096 entries, at most 4095"), "%s", m.error);
	cr_assert_eq(got.count, 0);
}

Test(projection, roundtrip_random)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int iter = 0; iter < 300; iter++) {
		uint32_t n =
		        1 + (uint32_t)((x = x * 6364136223846793005ull + 1442695040888963407ull) >>
		                       33) %
		                    40;
		for (uint32_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			int cause = 1 + (int)((x >> 20) % (BO_CAUSE_COUNT - 1));
			if (cause == BO_CAUSE_CREATE)
				ch_in[i] = (bo_change){.cause = BO_CAUSE_CREATE};
			else if (cause < BO_CAUSE_BLOCK && (x >> 40) % 3 == 0)
				ch_in[i] = pool_change(
				        cause, x >> 7, (int)((x >> 12) % 8),
				        1 + (uint32_t)((x >> 30) % 100),
				        (uint32_t)((x >> 3) % (BO_POOL_CAPACITY_MAX + 1)));
			else
				ch_in[i] = seat_change(
				        cause, (int)((x >> 50) % BO_SEAT_STATE_COUNT),
				        cause < BO_CAUSE_BLOCK ? x >> 5 : 0,
				        1 + (uint32_t)((x >> 44) % 16),
				        (uint32_t)((x >> 8) % (BO_SEATS_PER_EVENT_MAX - 16)));
		}
		wire_projection h = {.event_id = x >> (x % 64),
		                     .prev_seq = x >> 32,
		                     .seq = (x >> 32) + 1 + (x & 0xff),
		                     .at_ms = (int64_t)(x >> 24),
		                     .pub_us = -(int64_t)(x >> 30),
		                     .count = n};
		roundtrip(&h);
	}
}

/* ---- Projection encoder refusals ----------------------------------------- */

Test(projection, encoder_refuses_what_the_decoder_would)
{
	const bo_change good = seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 5, 2, 0);
	bo_change bad[] = {
	        {.cause = BO_CAUSE_NONE, .seat_count = 1},
	        {.cause = BO_CAUSE_COUNT, .seat_count = 1},
	        seat_change(BO_CAUSE_HOLD, BO_SEAT_STATE_COUNT, 5, 1, 0),
	        seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 5, 0, 0),
	        seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 5, BO_SEATS_PER_HOLD_MAX + 1, 0),
	        seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 5, 1, BO_SEATS_PER_EVENT_MAX),
	        seat_change(BO_CAUSE_CREATE, BO_SEAT_FREE, 0, 1, 0),
	        pool_change(BO_CAUSE_CREATE, 0, 0, 1, 1),
	        pool_change(BO_CAUSE_BLOCK, 0, 0, 1, 1),
	        pool_change(BO_CAUSE_UNBLOCK, 0, 0, 1, 1),
	        pool_change(BO_CAUSE_HOLD, 5, BO_POOLS_PER_EVENT_MAX, 1, 1),
	        pool_change(BO_CAUSE_HOLD, 5, 0, 0, 1),
	        pool_change(BO_CAUSE_HOLD, 5, 0, BO_POOL_QTY_PER_HOLD_MAX + 1, 1),
	        pool_change(BO_CAUSE_HOLD, 5, 0, 1, BO_POOL_CAPACITY_MAX + 1),
	};
	sb_reset();
	msgpack_pack_str_with_body(&pk, "prefix", 6);
	size_t before = sb.size;
	wire_projection h = {.event_id = 1, .prev_seq = 1, .seq = 2, .count = 2};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ch_in[0] = good;
		ch_in[1] = bad[i];
		cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), -EINVAL, "case %zu", i);
	}
	ch_in[1] = good;
	h.count = 0;
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), -EINVAL, "no changes");
	h.count = WIRE_PROJECTION_CHANGES_MAX + 1;
	for (uint32_t i = 0; i < h.count; i++)
		ch_in[i] = good;
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), -EINVAL, "too many changes");
	h.count = 2;
	h.seq = 1;
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), -EINVAL, "seq == prev");
	h.seq = 0;
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), -EINVAL, "seq < prev");
	cr_assert_eq(sb.size, before, "the buffer is as it was");
	h.seq = 2;
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), 0);
	cr_assert_gt(sb.size, before, "appended after what was there");
}

/* ---- Projection decoder rejections --------------------------------------- */

#define NO_TOPIC 0x7e57ull /* a case whose message has no topic */
#define HEAD "event=42 prev=10 seq=11 at_ms=1700000000000 pub_us=1700000000000123"
#define HOLD "{cause=hold claim=5 state=held seats=[1,2]}"

Test(projection, decoder_accepts_the_notation_and_skips_unknown_keys)
{
	wire_projection h;
	wire_msg m;
	mp_spec(42, "{" HEAD " colour=red changes=[" HOLD
	            ",{cause=hold claim=6 pool=1 quantity=4 pool_free=96 note={a=[1,{}]}},"
	            "{cause=create},{cause=unblock state=free seats=[0]}]}");
	cr_assert_eq(decode_proj(sb.data, sb.size, &h, 8, &m), 0, "%s", m.error);
	cr_assert(h.event_id == 42 && h.prev_seq == 10 && h.seq == 11 && h.at_ms == 1700000000000 &&
	          h.pub_us == 1700000000000123 && h.count == 4);
	cr_assert(ch_out[0].cause == BO_CAUSE_HOLD && !ch_out[0].is_pool &&
	          ch_out[0].claim_id == 5 && ch_out[0].state == BO_SEAT_HELD &&
	          ch_out[0].seat_count == 2 && ch_out[0].seats[0] == 1 && ch_out[0].seats[1] == 2);
	cr_assert(ch_out[1].is_pool && ch_out[1].pool == 1 && ch_out[1].quantity == 4 &&
	          ch_out[1].pool_free == 96 && ch_out[1].claim_id == 6);
	cr_assert(ch_out[2].cause == BO_CAUSE_CREATE && ch_out[2].seat_count == 0 &&
	          !ch_out[2].is_pool && ch_out[2].claim_id == 0);
	cr_assert(ch_out[3].cause == BO_CAUSE_UNBLOCK && ch_out[3].state == BO_SEAT_FREE &&
	          ch_out[3].claim_id == 0);
	/* Negative times, an event at the top of the range. */
	mp_spec(UINT64_MAX,
	        "{event=18446744073709551615 prev=0 seq=1 at_ms=-5 pub_us=-6 changes=[" HOLD "]}");
	cr_assert_eq(decode_proj(sb.data, sb.size, &h, 1, &m), 0, "%s", m.error);
	cr_assert(h.event_id == UINT64_MAX && h.at_ms == -5 && h.pub_us == -6);
}

Test(projection, decoder_rejections)
{
	static const struct {
		uint64_t topic;
		const char *spec;
		const char *error; /* a part of msg.error */
	} cases[] = {
	        /* the topic */
	        {43, "{" HEAD " changes=[" HOLD "]}", "the topic names event 43 but 'event' is 42"},
	        {0, "{" HEAD " changes=[" HOLD "]}", "the topic names event 0 but 'event' is 42"},
	        /* no topic at all: the map's first 8 bytes are read as one */
	        {NO_TOPIC, "{" HEAD " changes=[" HOLD "]}", "trailing bytes"},
	        /* not one map */
	        {42, "[1,2]", "a projection must be a map, not an array"},
	        {42, "7", "a projection must be a map, not an unsigned integer"},
	        /* missing keys */
	        {42, "{prev=10 seq=11 at_ms=1 pub_us=2 changes=[" HOLD "]}", "missing key 'event'"},
	        {42, "{event=42 seq=11 at_ms=1 pub_us=2 changes=[" HOLD "]}", "missing key 'prev'"},
	        {42, "{event=42 prev=10 at_ms=1 pub_us=2 changes=[" HOLD "]}", "missing key 'seq'"},
	        {42, "{event=42 prev=10 seq=11 pub_us=2 changes=[" HOLD "]}",
	         "missing key 'at_ms'"},
	        {42, "{event=42 prev=10 seq=11 at_ms=1 changes=[" HOLD "]}",
	         "missing key 'pub_us'"},
	        {42, "{" HEAD "}", "missing key 'changes'"},
	        {42, "{" HEAD " changes=[{claim=5 state=held seats=[1]}]}",
	         "changes[0]: missing key 'cause'"},
	        {42, "{" HEAD " changes=[{cause=hold state=held seats=[1]}]}",
	         "changes[0]: a 'hold' change needs 'claim'"},
	        {42, "{" HEAD " changes=[" HOLD ",{cause=hold claim=5 seats=[1]}]}",
	         "changes[1]: a 'hold' change needs 'state'"},
	        {42, "{" HEAD " changes=[{cause=release claim=5 state=free}]}",
	         "a 'release' change needs 'seats'"},
	        {42, "{" HEAD " changes=[{cause=confirm claim=5}]}",
	         "a 'confirm' change needs 'state'"},
	        {42, "{" HEAD " changes=[{cause=block}]}", "a 'block' change needs 'state'"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 quantity=1 pool_free=3}]}",
	         "a 'hold' change needs 'pool'"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=1 pool_free=3}]}",
	         "a 'hold' change needs 'quantity'"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=1 quantity=3}]}",
	         "a 'hold' change needs 'pool_free'"},
	        /* mistyped keys */
	        {42, "{event=x prev=10 seq=11 at_ms=1 pub_us=2 changes=[" HOLD "]}",
	         "'event' must be an unsigned integer, not a string"},
	        {42, "{event=42 prev=-1 seq=11 at_ms=1 pub_us=2 changes=[" HOLD "]}",
	         "'prev' must not be negative"},
	        {42, "{event=42 prev=10 seq=~ at_ms=1 pub_us=2 changes=[" HOLD "]}",
	         "'seq' must be an unsigned integer, not nil"},
	        {42, "{event=42 prev=10 seq=11 at_ms=soon pub_us=2 changes=[" HOLD "]}",
	         "'at_ms' must be an int64"},
	        {42,
	         "{event=42 prev=10 seq=11 at_ms=1 pub_us=18446744073709551615 changes=[" HOLD "]}",
	         "'pub_us' must be an int64"},
	        {42, "{" HEAD " changes={}}", "'changes' must be an array"},
	        {42, "{" HEAD " changes=[[]]}", "changes[0]: 'changes[]' must be a map"},
	        {42, "{" HEAD " changes=[{cause=1 claim=5 state=held seats=[1]}]}",
	         "'cause' must be a string"},
	        {42, "{" HEAD " changes=[{cause=hold claim=x state=held seats=[1]}]}",
	         "'claim' must be an unsigned integer"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=2 seats=[1]}]}",
	         "'state' must be a string"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=held seats=1}]}",
	         "'seats' must be an array"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=held seats=[a]}]}",
	         "'seats' must be an unsigned integer"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=x quantity=1 pool_free=1}]}",
	         "'pool' must be an unsigned integer"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=1 quantity=-1 pool_free=1}]}",
	         "'quantity' must not be negative"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=1 quantity=1 pool_free=[]}]}",
	         "'pool_free' must be an unsigned integer"},
	        {42, "{" HEAD " changes=[{3=hold}]}", "keys of a change must be strings"},
	        {42, "{" HEAD " 3=4 changes=[" HOLD "]}", "keys of a projection must be strings"},
	        /* unknown cause or state */
	        {42, "{" HEAD " changes=[{cause=sell claim=5 state=held seats=[1]}]}",
	         "unknown cause 'sell'"},
	        {42, "{" HEAD " changes=[{cause=none}]}", "unknown cause 'none'"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=sold seats=[1]}]}",
	         "unknown state 'sold'"},
	        /* a seat or pool field (or a claim) where the cause has none */
	        {42, "{" HEAD " changes=[{cause=create state=free seats=[1]}]}",
	         "a 'create' change has no seat fields"},
	        {42, "{" HEAD " changes=[{cause=create seats=[1]}]}",
	         "a 'create' change has no seat fields"},
	        {42, "{" HEAD " changes=[{cause=create pool=0 quantity=1 pool_free=1}]}",
	         "a 'create' change has no pool fields"},
	        {42, "{" HEAD " changes=[{cause=block pool=0 quantity=1 pool_free=1}]}",
	         "a 'block' change has no pool fields"},
	        {42, "{" HEAD " changes=[{cause=unblock pool_free=1}]}",
	         "a 'unblock' change has no pool fields"},
	        {42, "{" HEAD " changes=[{cause=create claim=5}]}",
	         "a 'create' change has no 'claim'"},
	        {42, "{" HEAD " changes=[{cause=block claim=5 state=blocked seats=[1]}]}",
	         "a 'block' change has no 'claim'"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=held seats=[1] pool=1}]}",
	         "a change has seat or pool fields, not both"},
	        /* values over limits.h */
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=held seats=[]}]}",
	         "'seats' is empty"},
	        {42,
	         "{" HEAD
	         " changes=[{cause=hold claim=5 state=held seats=[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}]}",
	         "'seats' has 17 entries, at most 16"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 state=held seats=[1048576]}]}",
	         "'seats' is 1048576, more than 1048575"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=8 quantity=1 pool_free=1}]}",
	         "'pool' is 8, more than 7"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=0 quantity=0 pool_free=1}]}",
	         "'quantity' is 0, less than 1"},
	        {42, "{" HEAD " changes=[{cause=hold claim=5 pool=0 quantity=101 pool_free=1}]}",
	         "'quantity' is 101, more than 100"},
	        {42,
	         "{" HEAD " changes=[{cause=hold claim=5 pool=0 quantity=1 pool_free=1000001}]}",
	         "'pool_free' is 1000001, more than 1000000"},
	        {42, "{" HEAD " changes=[]}", "'changes' is empty"},
	        {42, "{" HEAD " changes=[" HOLD "," HOLD "," HOLD "]}",
	         "'changes' has 3 entries, at most 2"},
	        /* repeated keys */
	        {42, "{" HEAD " seq=12 changes=[" HOLD "]}", "key 'seq' given twice"},
	        {42, "{" HEAD " changes=[{cause=hold cause=hold claim=5 state=held seats=[1]}]}",
	         "key 'cause' given twice"},
	        /* seq <= prev */
	        {42, "{event=42 prev=10 seq=10 at_ms=1 pub_us=2 changes=[" HOLD "]}",
	         "'seq' 10 is not above 'prev' 10"},
	        {42, "{event=42 prev=10 seq=9 at_ms=1 pub_us=2 changes=[" HOLD "]}",
	         "'seq' 9 is not above 'prev' 10"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mp_spec(cases[i].topic, cases[i].spec);
		if (cases[i].topic == NO_TOPIC)
			memmove(sb.data, sb.data + WIRE_TOPIC_BYTES, sb.size -= WIRE_TOPIC_BYTES);
		wire_projection h;
		wire_msg m;
		cr_assert_eq(decode_proj(sb.data, sb.size, &h, 2, &m), -EINVAL, "case %zu: %s", i,
		             cases[i].spec);
		cr_assert(strstr(m.error, cases[i].error) != NULL, "case %zu: got '%s', want '%s'",
		          i, m.error, cases[i].error);
		cr_assert(h.count == 0 && h.event_id == 0 && h.seq == 0, "case %zu: header zeroed",
		          i);
	}
}

Test(projection, decoder_message_level_rejections)
{
	wire_projection h;
	wire_msg m;
	/* Shorter than the topic: every length 0..7. */
	static const uint8_t eight[WIRE_TOPIC_BYTES] = {0};
	for (size_t len = 0; len < WIRE_TOPIC_BYTES; len++) {
		cr_assert_eq(decode_proj(eight, len, &h, 1, &m), -EINVAL);
		cr_assert(strstr(m.error, "shorter than its 8-byte topic"), "%s", m.error);
	}
	cr_assert_eq(decode_proj(eight, sizeof(eight), &h, 1, &m), -EINVAL, "a topic alone");
	cr_assert_str_eq(m.error, "empty message");
	/* Trailing bytes after the map: not one map. */
	mp_spec(42, "{" HEAD " changes=[" HOLD "]}");
	msgpack_pack_nil(&pk);
	cr_assert_eq(decode_proj(sb.data, sb.size, &h, 1, &m), -EINVAL);
	cr_assert(strstr(m.error, "1 trailing bytes after the message"), "%s", m.error);
	/* More than WIRE_PROJECTION_CHANGES_MAX, whatever the cap. */
	sb_reset();
	uint8_t t[WIRE_TOPIC_BYTES];
	wire_topic(42, t);
	msgpack_sbuffer_write(&sb, (const char *)t, sizeof(t));
	msgpack_pack_map(&pk, 6);
	mp_value("event");
	msgpack_pack_uint8(&pk, 42);
	mp_value("prev");
	msgpack_pack_uint8(&pk, 1);
	mp_value("seq");
	msgpack_pack_uint8(&pk, 2);
	mp_value("at_ms");
	msgpack_pack_uint8(&pk, 0);
	mp_value("pub_us");
	msgpack_pack_uint8(&pk, 0);
	mp_value("changes");
	msgpack_pack_array(&pk, WIRE_PROJECTION_CHANGES_MAX + 1);
	for (uint32_t i = 0; i <= WIRE_PROJECTION_CHANGES_MAX; i++)
		mp_value("{cause=create}");
	cr_assert_eq(decode_proj(sb.data, sb.size, &h, WIRE_PROJECTION_CHANGES_MAX + 1, &m),
	             -EINVAL);
	cr_assert(strstr(m.error, "'changes' has 4097 entries, at most 4096"), "%s", m.error);
	/* A count the bytes cannot back. */
	sb_reset();
	msgpack_sbuffer_write(&sb, (const char *)t, sizeof(t));
	static const uint8_t huge[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
	msgpack_sbuffer_write(&sb, (const char *)huge, sizeof(huge));
	cr_assert_eq(decode_proj(sb.data, sb.size, &h, 1, &m), -EINVAL);
	cr_assert(strstr(m.error, "not msgpack"), "%s", m.error);
}

Test(projection, every_truncation_is_rejected)
{
	ch_in[0] = seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 4294967296ull, 3, 1000);
	ch_in[1] = pool_change(BO_CAUSE_CANCEL, UINT64_MAX, 3, 100, 123456);
	ch_in[2] = (bo_change){.cause = BO_CAUSE_CREATE};
	wire_projection h = {.event_id = 1ull << 40,
	                     .prev_seq = 1ull << 33,
	                     .seq = (1ull << 33) + 9,
	                     .at_ms = 1700000000000,
	                     .pub_us = -1,
	                     .count = 3};
	sb_reset();
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), 0);
	wire_projection got;
	wire_msg m;
	cr_assert_eq(decode_proj(sb.data, sb.size, &got, 3, &m), 0, "%s", m.error);
	for (size_t len = 0; len < sb.size; len++) {
		cr_assert_eq(decode_proj(sb.data, len, &got, 3, &m), -EINVAL, "cut at %zu", len);
		cr_assert_neq(m.error[0], '\0');
		cr_assert_eq(got.count, 0);
	}
}

/* ---- event_state images -------------------------------------------------- */

/* An image of `rows` rows of `per_row` seats (sections r % 4096), categories
 * and states from a pattern, and `pools` pools. */
static void make_image(bo_event_image *im, uint32_t rows, uint32_t per_row, uint32_t cats,
                       uint32_t pools)
{
	*im = (bo_event_image){.event_id = 42,
	                       .seq = 1ull << 35,
	                       .row_count = rows,
	                       .seat_count = rows * per_row,
	                       .category_count = cats,
	                       .pool_count = pools};
	im->rows = rows ? malloc(rows * sizeof(bo_row_def)) : NULL;
	im->categories = im->seat_count ? malloc(im->seat_count) : NULL;
	im->states = im->seat_count ? malloc(im->seat_count) : NULL;
	for (uint32_t r = 0; r < rows; r++)
		im->rows[r] = (bo_row_def){.section = (uint16_t)(r % BO_SECTIONS_PER_EVENT_MAX),
		                           .seats = (uint16_t)per_row};
	for (uint32_t s = 0; s < im->seat_count; s++) {
		im->categories[s] = (uint8_t)((s / 3 + s / 1000) % cats);
		im->states[s] = (uint8_t)((s * 2654435761u) >> 29 & 3);
	}
	for (uint32_t p = 0; p < pools; p++) {
		im->pool_capacity[p] = p == 0 ? BO_POOL_CAPACITY_MAX : 1 + p * 100;
		im->pool_free[p] = p % 2 ? im->pool_capacity[p] : p;
	}
}

static void assert_images_equal(const bo_event_image *a, const bo_event_image *b)
{
	cr_assert(a->event_id == b->event_id && a->seq == b->seq &&
	          a->seat_count == b->seat_count && a->row_count == b->row_count &&
	          a->category_count == b->category_count && a->pool_count == b->pool_count);
	if (a->row_count)
		cr_assert(memcmp(a->rows, b->rows, a->row_count * sizeof(bo_row_def)) == 0);
	if (a->seat_count) {
		cr_assert(memcmp(a->categories, b->categories, a->seat_count) == 0);
		cr_assert(memcmp(a->states, b->states, a->seat_count) == 0);
	} else {
		cr_assert(b->categories == NULL && b->states == NULL);
	}
	for (uint32_t p = 0; p < a->pool_count; p++)
		cr_assert(a->pool_capacity[p] == b->pool_capacity[p] &&
		          a->pool_free[p] == b->pool_free[p]);
}

static void image_roundtrip(const bo_event_image *im)
{
	sb_reset();
	cr_assert_eq(wire_encode_event_image(im, &sb), 0);
	cr_assert_leq(sb.size, WIRE_MSG_MAX);
	bo_event_image got;
	int status = -1;
	wire_msg m;
	cr_assert_eq(decode_image(sb.data, sb.size, &got, &status, &m), 0, "%s", m.error);
	cr_assert_eq(status, BO_OK);
	assert_images_equal(im, &got);
	bo_event_image_free(&got);
	cr_assert_eq(live_blocks(), 0);
}

Test(projection, image_roundtrip)
{
	bo_event_image im;
	make_image(&im, 2, 10, 3, 2);
	image_roundtrip(&im);
	bo_event_image_free(&im);
	/* Pools only: no rows, no seats, no arrays. */
	make_image(&im, 0, 0, 0, BO_POOLS_PER_EVENT_MAX);
	image_roundtrip(&im);
	bo_event_image_free(&im);
	/* Seats only, every row at its longest. */
	make_image(&im, 3, BO_SEATS_PER_ROW_MAX, BO_CATEGORIES_MAX, 0);
	image_roundtrip(&im);
	bo_event_image_free(&im);
}

Test(projection, image_roundtrip_of_the_largest_event)
{
	bo_event_image im;
	/* 1 Mi seats in 64 Ki rows of 16 (the most rows), 16 categories, 8 pools. */
	make_image(&im, BO_ROWS_PER_EVENT_MAX, BO_SEATS_PER_EVENT_MAX / BO_ROWS_PER_EVENT_MAX,
	           BO_CATEGORIES_MAX, BO_POOLS_PER_EVENT_MAX);
	cr_assert_eq(im.seat_count, BO_SEATS_PER_EVENT_MAX);
	image_roundtrip(&im);
	cr_assert_lt(sb.size, 3u << 20, "~2 MiB of state and category bytes, %zu", sb.size);
	bo_event_image_free(&im);
}

Test(projection, image_encoder_refusals)
{
	sb_reset();
	msgpack_pack_nil(&pk);
	size_t before = sb.size;
	for (int k = 0; k < 15; k++) {
		bo_event_image im;
		make_image(&im, 2, 10, 3, 2);
		switch (k) {
		case 0:
			im.category_count = BO_CATEGORIES_MAX + 1;
			break;
		case 1:
			im.pool_count = BO_POOLS_PER_EVENT_MAX + 1;
			break;
		case 2:
			im.row_count = BO_ROWS_PER_EVENT_MAX + 1;
			break;
		case 3:
			im.seat_count = BO_SEATS_PER_EVENT_MAX + 1;
			break;
		case 4:
			im.states[7] = BO_SEAT_STATE_COUNT;
			break;
		case 5:
			im.categories[19] = 3;
			break;
		case 6:
			im.seat_count = 19;
			break; /* rows sum to 20 */
		case 7:
			im.rows[1].seats = 0;
			im.seat_count = 10;
			break;
		case 8:
			im.rows[1].seats = BO_SEATS_PER_ROW_MAX + 1;
			break;
		case 9:
			im.rows[0].section = BO_SECTIONS_PER_EVENT_MAX;
			break;
		case 10:
			im.pool_capacity[1] = 0;
			im.pool_free[1] = 0;
			break;
		case 11:
			im.pool_capacity[1] = BO_POOL_CAPACITY_MAX + 1;
			break;
		case 12:
			im.pool_free[0] = im.pool_capacity[0] + 1;
			break;
		case 13:
			free(im.states);
			im.states = NULL;
			break;
		default:
			free(im.rows);
			im.rows = NULL;
			break;
		}
		cr_assert_eq(wire_encode_event_image(&im, &sb), -EINVAL, "case %d", k);
		bo_event_image_free(&im);
	}
	cr_assert_eq(sb.size, before);
}

Test(projection, image_refusals_are_statuses)
{
	static const struct {
		const char *spec;
		int status;
		const char *error;
	} cases[] = {
	        {"{status=not_found detail=no_event error='no such event'}", BO_NOT_FOUND,
	         "no such event"},
	        {"{status=throttled detail=none error='event_state over 200/s, retry later'}",
	         BO_THROTTLED, "event_state over 200/s, retry later"},
	        {"{status=busy detail=none error='server stopping, retry later'}", BO_BUSY,
	         "server stopping, retry later"},
	        {"{status=invalid detail=malformed error='bad event'}", BO_INVALID, "bad event"},
	        {"{status=invalid detail=bad_op error='unknown op'}", BO_INVALID, "unknown op"},
	        /* A refusal that also carries image keys: they are dropped. */
	        {"{status=busy rows=[[1,2]] categories=#0000 states=#0000 pools=[] error=x}",
	         BO_BUSY, "x"},
	        {"{status=busy}", BO_BUSY, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sb_reset();
		mp_body(cases[i].spec);
		bo_event_image im;
		int status = -1;
		wire_msg m;
		cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), 0, "case %zu: %s", i,
		             m.error);
		cr_assert_eq(status, cases[i].status, "case %zu", i);
		cr_assert(strncmp(m.error, cases[i].error, strlen(cases[i].error)) == 0,
		          "case %zu: %s", i, m.error);
		cr_assert(im.rows == NULL && im.seat_count == 0 && im.row_count == 0, "case %zu",
		          i);
		cr_assert_eq(live_blocks(), 0, "case %zu", i);
	}
}

#define IMG_TAIL \
	"category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=#0001020300 pools=[[500,496]]"
#define IMG_OK "{status=ok event=42 seq=7 " IMG_TAIL "}"

Test(projection, image_decoder_accepts_and_skips_unknown_keys)
{
	sb_reset();
	mp_body("{shard=3 status=ok event=42 seq=7 more={a=[1,2]} " IMG_TAIL "}");
	bo_event_image im;
	int status;
	wire_msg m;
	cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), 0, "%s", m.error);
	cr_assert(status == BO_OK && im.event_id == 42 && im.seq == 7 && im.seat_count == 5 &&
	          im.row_count == 2 && im.category_count == 2 && im.pool_count == 1);
	cr_assert(im.rows[0].section == 1 && im.rows[0].seats == 3 && im.rows[1].section == 2 &&
	          im.rows[1].seats == 2);
	static const uint8_t cats[] = {0, 1, 0, 1, 1}, states[] = {0, 1, 2, 3, 0};
	cr_assert(memcmp(im.categories, cats, 5) == 0 && memcmp(im.states, states, 5) == 0);
	cr_assert(im.pool_capacity[0] == 500 && im.pool_free[0] == 496);
	bo_event_image_free(&im);
	cr_assert_eq(live_blocks(), 0);
}

Test(projection, image_decoder_rejections)
{
	static const struct {
		const char *spec;
		const char *error;
	} cases[] = {
	        {"[1]", "an event_state reply must be a map, not an array"},
	        {"{event=42}", "missing key 'status'"},
	        {"{status=fine}", "unknown status 'fine'"},
	        {"{status=3}", "'status' must be a string"},
	        {"{status=busy error=5}", "'error' must be a string"},
	        {"{status=busy detail=[]}", "'detail' must be a string"},
	        {"{1=2 status=ok}", "keys of the reply must be strings"},
	        /* an ok reply lacks a key */
	        {"{status=ok seq=7 " IMG_TAIL "}", "an ok reply needs 'event'"},
	        {"{status=ok event=42 " IMG_TAIL "}", "an ok reply needs 'seq'"},
	        {"{status=ok event=42 seq=7 rows=[[1,3],[2,2]] categories=#0001000101 states=#0001020300 pools=[]}",
	         "an ok reply needs 'category_count'"},
	        {"{status=ok event=42 seq=7 category_count=2 categories=#0001000101 states=#0001020300 pools=[]}",
	         "an ok reply needs 'rows'"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] states=#0001020300 pools=[]}",
	         "an ok reply needs 'categories'"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 pools=[]}",
	         "an ok reply needs 'states'"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=#0001020300}",
	         "an ok reply needs 'pools'"},
	        /* not one byte per seat; rows not summing to the seats */
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#00010001 states=#0001020300 pools=[]}",
	         "'categories' (4 bytes) and 'states' (5) must have a byte per seat of the rows (5)"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=#000102030000 pools=[]}",
	         "'categories' (5 bytes) and 'states' (6) must have a byte per seat of the rows (5)"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,3]] categories=#0001000101 states=#0001020300 pools=[]}",
	         "must have a byte per seat of the rows (6)"},
	        /* values out of range */
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000102 states=#0001020300 pools=[]}",
	         "'categories' of seat 4 is 2, not below 2"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[[1,3],[2,2]] categories=#0000000000 states=#0001020300 pools=[]}",
	         "'categories' of seat 0 is 0, not below 0"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=#0001020304 pools=[]}",
	         "'states' of seat 4 is 4, not below 4"},
	        {"{status=ok event=42 seq=7 category_count=17 rows=[] categories=# states=# pools=[]}",
	         "'category_count' is 17, more than 16"},
	        {"{status=ok event=42 seq=7 category_count=1 rows=[[1,0]] categories=# states=# pools=[]}",
	         "'rows' is 0, less than 1"},
	        {"{status=ok event=42 seq=7 category_count=1 rows=[[1,4097]] categories=# states=# pools=[]}",
	         "'rows' is 4097, more than 4096"},
	        {"{status=ok event=42 seq=7 category_count=1 rows=[[4096,1]] categories=#00 states=#00 pools=[]}",
	         "'rows' is 4096, more than 4095"},
	        {"{status=ok event=42 seq=7 category_count=1 rows=[[1]] categories=#00 states=#00 pools=[]}",
	         "each entry of 'rows' must be an array of 2"},
	        {"{status=ok event=42 seq=7 category_count=1 rows=[[1,1,1]] categories=#00 states=#00 pools=[]}",
	         "each entry of 'rows' must be an array of 2"},
	        {"{status=ok event=42 seq=7 category_count=1 rows={} categories=# states=# pools=[]}",
	         "'rows' must be an array"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[[500,501]]}",
	         "pool 0 has 501 free of a capacity of 500"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[[0,0]]}",
	         "'pools' is 0, less than 1"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[[1000001,0]]}",
	         "'pools' is 1000001, more than 1000000"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[[1,-1]]}",
	         "'pools' must not be negative"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[[1,0],[1,0],[1,0],[1,0],[1,0],[1,0],[1,0],[1,0],[1,0]]}",
	         "'pools' has 9 entries, at most 8"},
	        {"{status=ok event=42 seq=7 category_count=0 rows=[] categories=# states=# pools=[5]}",
	         "each entry of 'pools' must be an array of 2"},
	        /* mistyped keys */
	        {"{status=ok event=x seq=7 " IMG_TAIL "}", "'event' must be an unsigned integer"},
	        {"{status=ok event=42 seq=-7 " IMG_TAIL "}", "'seq' must not be negative"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=[0,1,0,1,1] states=#0001020300 pools=[]}",
	         "'categories' must be a bin"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=free pools=[]}",
	         "'states' must be a bin"},
	        {"{status=ok event=42 seq=7 category_count=2 rows=[[1,3],[2,2]] categories=#0001000101 states=#0001020300 pools=~}",
	         "'pools' must be an array"},
	        /* repeated keys (rows twice: after its first array was allocated) */
	        {"{status=ok event=42 seq=7 seq=8 " IMG_TAIL "}", "key 'seq' given twice"},
	        {"{status=ok event=42 seq=7 " IMG_TAIL " rows=[[1,5]]}", "key 'rows' given twice"},
	        {"{status=ok status=ok}", "key 'status' given twice"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sb_reset();
		mp_body(cases[i].spec);
		bo_event_image im;
		int status = -1;
		wire_msg m;
		cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), -EINVAL,
		             "case %zu: %s", i, cases[i].spec);
		cr_assert(strstr(m.error, cases[i].error) != NULL, "case %zu: got '%s', want '%s'",
		          i, m.error, cases[i].error);
		cr_assert(im.rows == NULL && im.categories == NULL && im.states == NULL &&
		                  im.row_count == 0 && im.seat_count == 0,
		          "case %zu: image zeroed", i);
		cr_assert_eq(live_blocks(), 0, "case %zu: nothing left allocated", i);
	}
}

/* Counts over limits.h that take many bytes to write. */
Test(projection, image_decoder_counts_over_limits)
{
	bo_event_image im;
	int status;
	wire_msg m;
	for (int k = 0; k < 2; k++) {
		sb_reset();
		msgpack_pack_map(&pk, 8);
		mp_value("status");
		mp_value("ok");
		mp_value("event");
		mp_value("1");
		mp_value("seq");
		mp_value("1");
		mp_value("category_count");
		mp_value("1");
		mp_value("rows");
		/* 64 Ki + 1 rows of 1 seat; 257 rows of 4096 seats (1 Mi + 4096). */
		uint32_t rows = k == 0 ? BO_ROWS_PER_EVENT_MAX + 1 : 257;
		msgpack_pack_array(&pk, rows);
		for (uint32_t r = 0; r < rows; r++)
			mp_value(k == 0 ? "[0,1]" : "[0,4096]");
		mp_value("categories");
		mp_value("#");
		mp_value("states");
		mp_value("#");
		mp_value("pools");
		mp_value("[]");
		cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), -EINVAL);
		cr_assert(
		        strstr(m.error, k == 0 ? "'rows' has 65537 entries, at most 65536"
		                               : "the rows hold 1052672 seats, more than 1048576"),
		        "%s", m.error);
		cr_assert(im.rows == NULL && live_blocks() == 0);
	}
}

Test(projection, image_decoder_out_of_memory)
{
	bo_event_image in, im;
	make_image(&in, 2, 10, 3, 2);
	sb_reset();
	cr_assert_eq(wire_encode_event_image(&in, &sb), 0);
	int status;
	wire_msg m;
	/* Rows, categories, states: three allocations, each may fail. */
	for (int k = 1; k <= 3; k++) {
		mallocs = 0;
		fail_at = k;
		cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), -ENOMEM,
		             "allocation %d", k);
		cr_assert(strstr(m.error, "out of memory"), "%s", m.error);
		cr_assert(im.rows == NULL && im.categories == NULL && im.states == NULL);
		cr_assert_eq(live_blocks(), 0, "allocation %d: nothing left allocated", k);
	}
	mallocs = 0;
	fail_at = 4;
	cr_assert_eq(decode_image(sb.data, sb.size, &im, &status, &m), 0, "%s", m.error);
	cr_assert_eq(mallocs, 3, "exactly three allocations");
	fail_at = 0;
	assert_images_equal(&in, &im);
	bo_event_image_free(&im);
	bo_event_image_free(&in);
}

Test(projection, image_every_truncation_is_rejected)
{
	bo_event_image in, im;
	make_image(&in, 3, 7, 4, 3);
	sb_reset();
	cr_assert_eq(wire_encode_event_image(&in, &sb), 0);
	int status;
	wire_msg m;
	for (size_t len = 0; len < sb.size; len++) {
		cr_assert_eq(decode_image(sb.data, len, &im, &status, &m), -EINVAL, "cut at %zu",
		             len);
		cr_assert(im.rows == NULL && live_blocks() == 0, "cut at %zu", len);
	}
	bo_event_image_free(&in);
}

/* ---- The worked example of schemas/protocol.md (section 16) -------------- */

Test(projection, doc_example_bytes)
{
	static const char hex[] =
	        "000000000000002a86a56576656e742aa470726576cd0733a3736571cd0735a561745f6d73cf00"
	        "00018bcfe56800a67075625f7573cf00060a24181e49c4a76368616e6765739284a56361757365"
	        "a4686f6c64a5636c61696dcf0000000100000000a57374617465a468656c64a573656174739203"
	        "0485a56361757365a6657870697279a5636c61696dcf0000000100000001a4706f6f6c00a87175"
	        "616e7469747904a9706f6f6c5f66726565cd01f4";
	uint8_t doc[sizeof(hex) / 2];
	for (size_t i = 0; i < sizeof(doc); i++) {
		unsigned v;
		cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		doc[i] = (uint8_t)v;
	}
	cr_assert_eq(sizeof(doc), 176);
	ch_in[0] = seat_change(BO_CAUSE_HOLD, BO_SEAT_HELD, 4294967296ull, 2, 3);
	ch_in[1] = pool_change(BO_CAUSE_EXPIRY, 4294967297ull, 0, 4, 500);
	wire_projection h = {.event_id = 42,
	                     .prev_seq = 1843,
	                     .seq = 1845,
	                     .at_ms = 1700000000000,
	                     .pub_us = 1700000000002500,
	                     .count = 2};
	sb_reset();
	cr_assert_eq(wire_encode_projection(&h, ch_in, &sb), 0);
	cr_assert_eq(sb.size, sizeof(doc));
	cr_assert(memcmp(sb.data, doc, sizeof(doc)) == 0);
	wire_projection got;
	wire_msg m;
	cr_assert_eq(decode_proj(doc, sizeof(doc), &got, 2, &m), 0, "%s", m.error);
	cr_assert(got.event_id == 42 && got.prev_seq == 1843 && got.seq == 1845 && got.count == 2);
	assert_changes_equal(ch_in, ch_out, 2);
}
