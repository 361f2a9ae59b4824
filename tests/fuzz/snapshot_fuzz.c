/*
 * snapshot_fuzz.c — libFuzzer target for engine/snapshot.c.
 *
 * Proves, for any input bytes: snapshot_load never crashes, never reads out
 * of bounds, never leaks and never hits an assertion (ASan, UBSan, LSan);
 * and what it accepts is safe and canonical: engine_check() passes, encoding
 * the loaded engine gives back exactly the input, and the engine then
 * survives a fixed drill of every command on every event and claim (and
 * expiry of everything) with no assertion firing, after which engine_check()
 * passes again (the invariants it checks are kept by the engine, so an
 * accepted state cannot lead to a broken one).
 *
 * The first input byte selects a mode (mod 3), the rest is the data:
 *   0  the data is the file, as is: exercises the header and checksum checks.
 *   1  the data is the file with both checksums fixed up by the harness, so
 *      the fuzzer gets past them to the counts, the loader and engine_check.
 *   2  the data is a list of edits (3 bytes each: 16-bit offset, xor byte)
 *      to a valid snapshot the harness builds once (every table in use),
 *      checksums fixed up: the deep path, engine_check against near-valid
 *      states.
 *
 * Build and run (clang 14, ASan + UBSan), from the repository root:
 *   scripts/fuzz --seconds 300 snapshot
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "base/le.h"
#include "engine/check.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "engine/snapshot.h"
#include "tests/support/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_HASHED 248u /* the header checksum covers [0, 248), stored at 248 */

static void fix_checksums(uint8_t *b, size_t len)
{
	if (len >= SNAPSHOT_HEADER_BYTES)
		bo_le_store64(b + HDR_HASHED, XXH3_64bits(b, HDR_HASHED));
	if (len >= SNAPSHOT_MIN_BYTES)
		bo_le_store64(b + len - 8, XXH3_64bits(b, len - 8));
}

static uint64_t g_req = 1u << 30;

static void apply(engine *e, bo_cmd *c, bo_result *r)
{
	c->request_id = g_req++;
	engine_apply(e, c, r);
}

/* The base image of mode 2: two events (seats in three categories, a
 * pool), live holds of several clients, bookings, a released hold, an
 * expired one confirmed late, blocked seats, a wrapped idempotency window
 * and recycled claim slots. */
static uint8_t *g_base;
static size_t g_base_len;

static void build_base(void)
{
	engine_config cfg = {
	        .seats_max = 256, .claims_max = 10, .idem_capacity = 16, .events_max = 2};
	engine *e;
	FUZZ_CHECK(engine_new(&cfg, &e) == 0);
	engine_advance(e, 1000000, NULL, NULL);
	for (uint32_t ev = 0; ev < 2; ev++) {
		bo_seatmap *m = bo_seatmap_new(4, 40, 1);
		FUZZ_CHECK(m != NULL);
		m->category_count = 3;
		for (uint32_t i = 0; i < 4; i++)
			m->rows[i] = (bo_row_def){.section = (uint16_t)i, .seats = 10};
		for (uint32_t s = 0; s < 40; s++)
			m->categories[s] = (uint8_t)((s / 7) % 3);
		m->pool_capacity[0] = 20;
		bo_cmd c = {
		        .op = BO_OP_CREATE_EVENT, .client_id = 1, .event_id = 10 + ev, .map = m};
		bo_result r;
		apply(e, &c, &r);
		FUZZ_CHECK(r.status == BO_OK);
		bo_seatmap_free(m);
	}
	bo_result r;
	uint64_t ids[12] = {0};
	for (uint32_t i = 0; i < 12; i++) {
		bo_cmd c = {.op = (uint8_t)(i % 3 == 2 ? BO_OP_HOLD_POOL : BO_OP_HOLD_BEST),
		            .client_id = 2 + i % 4,
		            .event_id = 10 + i % 2,
		            .category = (uint8_t)(i % 3),
		            .quantity = (uint16_t)(1 + i % 3),
		            .ttl_ms = 5000 + 1000 * (i % 5)}; /* equal expiries too */
		apply(e, &c, &r);
		ids[i] = r.status == BO_OK ? r.claim_id : 0;
		if (i == 3)
			engine_advance(e, 1007000, NULL, NULL); /* expire the first holds */
		if (i == 4 && ids[0]) {
			bo_cmd k = {.op = BO_OP_CONFIRM,
			            .client_id = 2,
			            .event_id = 10,
			            .claim_id = ids[0],
			            .payref_len = 4,
			            .payref = "late"};
			apply(e, &k, &r); /* a late confirm: a stale recycle entry */
		}
		if (i == 6 && ids[5]) {
			bo_cmd k = {.op = BO_OP_RELEASE,
			            .client_id = 3,
			            .event_id = 11,
			            .claim_id = ids[5]};
			apply(e, &k, &r);
		}
		if (i == 8 && ids[7]) {
			bo_cmd k = {.op = BO_OP_CONFIRM,
			            .client_id = 5,
			            .event_id = 11,
			            .claim_id = ids[7],
			            .payref_len = 2,
			            .payref = "ok"};
			apply(e, &k, &r);
		}
	}
	bo_cmd b = {.op = BO_OP_BLOCK,
	            .client_id = 1,
	            .event_id = 10,
	            .seat_count = 2,
	            .seats = {38, 39}};
	apply(e, &b, &r);
	/* Ended claims still queued for recycling: a release and a cancel. */
	bo_cmd rel = {
	        .op = BO_OP_RELEASE, .client_id = 3, .event_id = 10 + 11 % 2, .claim_id = ids[11]};
	apply(e, &rel, &r);
	bo_cmd can = {.op = BO_OP_CANCEL, .client_id = 5, .event_id = 11, .claim_id = ids[7]};
	apply(e, &can, &r);
	char err[SNAPSHOT_ERR_LEN];
	FUZZ_CHECK(engine_check(e, err, sizeof(err)) == 0);
	uint32_t queued = 0;
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++)
		queued += e->claims[slot].in_recycle;
	FUZZ_CHECK(queued >= 1 && e->heap_len >= 2 && e->bookings_live >= 1);
	FUZZ_CHECK(snapshot_encode(e, 1, 99, engine_now(e), &g_base, &g_base_len) == 0);
	engine_free(e);
}

/* Every command on every event and claim, then expiry of everything. */
static void drill(engine *e)
{
	bo_result r;
	uint32_t events = e->event_count, fresh = e->claims_fresh;
	for (uint32_t slot = 0; slot < fresh; slot++) {
		uint64_t id = claim_id_of(e, slot);
		uint64_t ev = e->events[e->claims[slot].event].id;
		static const uint8_t ops[] = {BO_OP_EXTEND, BO_OP_CONFIRM, BO_OP_CANCEL,
		                              BO_OP_RELEASE};
		for (uint32_t k = 0; k < sizeof(ops); k++) {
			bo_cmd c = {.op = ops[k],
			            .client_id = 7,
			            .event_id = ev,
			            .claim_id = id,
			            .ttl_ms = 60000,
			            .payref_len = 1,
			            .payref = "x"};
			apply(e, &c, &r);
		}
	}
	for (uint32_t i = 0; i < events; i++) {
		const event *ev = &e->events[i];
		for (uint32_t cat = 0; cat < ev->category_count; cat++) {
			for (uint16_t q = 1; q <= 4; q++) {
				bo_cmd c = {.op = BO_OP_HOLD_BEST,
				            .client_id = 100 + q,
				            .event_id = ev->id,
				            .category = (uint8_t)cat,
				            .quantity = q,
				            .ttl_ms = 30000};
				apply(e, &c, &r);
			}
		}
		if (ev->seat_count >= 3) {
			bo_cmd h = {.op = BO_OP_HOLD_SEATS,
			            .client_id = 200,
			            .event_id = ev->id,
			            .seat_count = 2,
			            .seats = {0, ev->seat_count - 1},
			            .ttl_ms = 30000};
			apply(e, &h, &r);
			bo_cmd b = {.op = BO_OP_BLOCK,
			            .client_id = 201,
			            .event_id = ev->id,
			            .seat_count = 1,
			            .seats = {ev->seat_count / 2}};
			apply(e, &b, &r);
			b.op = BO_OP_UNBLOCK;
			apply(e, &b, &r);
		}
		for (uint32_t p = 0; p < ev->pool_count; p++) {
			bo_cmd c = {.op = BO_OP_HOLD_POOL,
			            .client_id = 300,
			            .event_id = ev->id,
			            .pool = (uint8_t)p,
			            .quantity = 1,
			            .ttl_ms = 30000};
			apply(e, &c, &r);
		}
		bo_cmd q = {.op = BO_OP_QUERY_AVAIL, .event_id = ev->id};
		engine_apply(e, &q, &r);
	}
	engine_advance(e, engine_now(e) + 2 * 3600 * 1000, NULL, NULL);
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		bo_cmd c = {.op = BO_OP_CONFIRM,
		            .client_id = 8,
		            .event_id = e->events[e->claims[slot].event].id,
		            .claim_id = claim_id_of(e, slot),
		            .payref_len = 1,
		            .payref = "y"};
		apply(e, &c, &r);
	}
}

static void try_load(const uint8_t *b, size_t len)
{
	engine *e = NULL;
	snapshot_info info;
	char err[SNAPSHOT_ERR_LEN];
	int rc = snapshot_load(b, len, &e, &info, err, sizeof(err));
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(e == NULL && err[0] != '\0');
		return;
	}
	FUZZ_CHECK(e != NULL && info.bytes == len);
	FUZZ_CHECK(engine_check(e, err, sizeof(err)) == 0);
	uint8_t *again;
	size_t again_len;
	FUZZ_CHECK(snapshot_encode(e, info.shard, info.seq, info.seq_ts_ms, &again, &again_len) ==
	           0);
	FUZZ_CHECK(again_len == len && memcmp(again, b, len) == 0);
	free(again);
	drill(e);
	if (engine_check(e, err, sizeof(err)) != 0) {
		fprintf(stderr, "accepted state broke after the drill: %s\n", err);
		abort();
	}
	engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (!g_base)
		build_base();
	uint8_t mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		try_load(data, size);
		return 0;
	}
	if (mode == 1) {
		uint8_t *b = malloc(size ? size : 1);
		FUZZ_CHECK(b != NULL);
		memcpy(b, data, size);
		fix_checksums(b, size);
		try_load(b, size);
		free(b);
		return 0;
	}
	uint8_t *b = malloc(g_base_len);
	FUZZ_CHECK(b != NULL);
	memcpy(b, g_base, g_base_len);
	for (size_t i = 0; i + 3 <= size; i += 3) {
		size_t off = (size_t)(data[i] | data[i + 1] << 8) % g_base_len;
		b[off] ^= data[i + 2];
	}
	fix_checksums(b, g_base_len);
	try_load(b, g_base_len);
	free(b);
	return 0;
}
