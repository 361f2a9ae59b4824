/*
 * vdrive.h — an engine driven by random commands, its output fed to read
 * models (view/view.h) exactly as a shard's output ring would feed them:
 * one view batch per engine batch, the batch's expiries first (they share
 * the seq of the tick record the shard journals for them), then one result
 * per command, with seq increasing by one for every journaled command
 * (mutating ones with a client, failed and replayed ones included) and 0
 * for queries, which the shard does not journal.
 *
 * The commands: creates (valid maps with seats, pools or both, plus
 * invalid, duplicate, over-the-limit ones), holds of seats, best
 * available and pool tickets, extends, releases, confirms (also of
 * expired holds), cancels, blocks, unblocks, queries, repeats of earlier
 * (client, request) pairs (replays and conflicts), unknown events and
 * claims; the clock moves by random steps, some past every hold's expiry.
 * Small tables (claims_max 48) make claim slots recycle and CLAIMS_FULL
 * happen. Deterministic for a seed.
 *
 * Free of Criterion (the ThreadSanitizer build uses it): an unexpected
 * failure (a map that cannot be allocated) prints why and aborts.
 */
#ifndef BO_TEST_VDRIVE_H
#define BO_TEST_VDRIVE_H

#include <stdint.h>

#include "base/seatmap.h"
#include "engine/engine.h"
#include "view/view.h"

/* Event ids the stream names: 1..VDRIVE_EVENT_IDS; events_max is lower,
 * so some creates fail and some ids never exist. */
#define VDRIVE_EVENT_IDS 14u
#define VDRIVE_VIEWS_MAX 2u
#define VDRIVE_CLAIMS 64u
#define VDRIVE_RECENT 8u

typedef struct vdrive {
	engine *e;
	view *views[VDRIVE_VIEWS_MAX]; /* fed alike; views[0] from the start */
	uint32_t nviews;
	view_emit_fn emit; /* called for views[0] only (may be NULL) */
	void *emit_ctx;
	uint64_t rng;
	uint64_t seq;     /* the last journal sequence used */
	uint64_t request; /* the last request id used */
	int64_t now_ms;
	/* Maps of the events created (by id), so a test can rebuild an
	 * event's first image; NULL for ids never created. Owned here. */
	bo_seatmap *maps[VDRIVE_EVENT_IDS + 1];
	uint64_t claims[VDRIVE_CLAIMS]; /* claims of OK holds, newest overwrite */
	uint64_t claim_event[VDRIVE_CLAIMS];
	uint64_t claim_client[VDRIVE_CLAIMS]; /* the client that made it */
	uint32_t nclaims;
	uint64_t bookings[VDRIVE_CLAIMS]; /* claims of OK confirms, for cancels */
	uint64_t booking_event[VDRIVE_CLAIMS];
	uint64_t booking_client[VDRIVE_CLAIMS];
	uint32_t nbookings;
	bo_cmd blocks[VDRIVE_RECENT]; /* OK blocks, so unblocks name blocked seats */
	uint32_t nblocks;
	bo_cmd recent[VDRIVE_RECENT]; /* mutating commands without a map, to repeat */
	uint32_t nrecent;
	uint64_t commands, expiries, batches; /* totals */
	uint64_t ok[BO_OP_COUNT];             /* OK results (not replayed) per op */
	uint64_t status[BO_STATUS_COUNT];     /* results per status */
	uint64_t replays;                     /* results answered from the window */
} vdrive;

/* The engine configuration of the stream. */
void vdrive_config(engine_config *cfg /* OUT */);

/* A new engine and one empty view; seed non-zero. emit receives the
 * emits of views[0]. Aborts when either cannot be made. */
void vdrive_init(vdrive *d, uint64_t seed, view_emit_fn emit, void *emit_ctx);

/* Frees the engine, the views and the maps. */
void vdrive_free(vdrive *d);

/* One batch: the clock moves, the engine expires what is due, then 1 ..
 * commands_max random commands are applied; every view gets the batch. */
void vdrive_batch(vdrive *d, uint32_t commands_max);

/* A random QUERY_AVAIL or QUERY_SEATS: unknown events, bad seat counts,
 * seats out of range and repeated seats among them. */
bo_cmd vdrive_query(vdrive *d);

/* A number in 0 .. n-1 from the driver's generator. */
uint32_t vdrive_rnd(vdrive *d, uint32_t n);

#endif /* BO_TEST_VDRIVE_H */
