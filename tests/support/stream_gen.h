/*
 * stream_gen.h — the commands of the random stream of the PostgreSQL tests
 * (stream.h submits them to a shard): holds of every kind, extends,
 * releases, confirms (some payment references with bytes the text column
 * must escape), cancels, blocks, unblocks, repeats and conflicts of earlier
 * requests, on TSTREAM_EVENTS small events.
 *
 * Free of Criterion, unlike stream.h: the process the committer's fault
 * tests kill (tests/committer/committer_child.c) draws the same stream.
 * Deterministic: the same seed and the same results fed back through
 * tstream_note give the same commands.
 */
#ifndef BO_TEST_STREAM_GEN_H
#define BO_TEST_STREAM_GEN_H

#include <stdint.h>

#include "base/types.h"
#include "shard/shard.h"

/* The events of the stream: ids TSTREAM_EVENT_FIRST .. + TSTREAM_EVENTS - 1,
 * each 4 rows of 12 seats in 3 categories, the first two with 2 pools. */
#define TSTREAM_EVENTS 3u
#define TSTREAM_EVENT_FIRST 100u

/* The stream's state: seed rng (non-zero) before the first call. */
typedef struct tstream_gen {
	uint64_t rng;
	uint64_t request;     /* last request id used */
	uint64_t claims[256]; /* claim ids seen (holds, some confirmed) */
	uint64_t claim_event[256];
	uint64_t claim_client[256]; /* the client that made it, 0: unknown */
	uint32_t nclaims;
} tstream_gen;

/* A number in 0 .. n-1 (n > 0) from the stream's generator. */
uint32_t tstream_rnd(tstream_gen *g, uint32_t n);

/* The seat map of event TSTREAM_EVENT_FIRST + i (i < TSTREAM_EVENTS). The
 * caller frees it (bo_seatmap_free) once its creation was applied. Aborts
 * when it cannot be allocated (tcmd_rows_map). */
bo_seatmap *tstream_event_map(uint32_t i);

/* The next random command. */
bo_cmd tstream_random_cmd(tstream_gen *g);

/* Remembers the claim of a successful hold (r is any result), so that
 * later extends, releases, confirms and cancels name real claims. */
void tstream_note(tstream_gen *g, const bo_result *r);

/* Takes what shard s's output ring holds now (up to SHARD_OUT_POLL_MAX
 * records), feeds every result to tstream_note and returns how many
 * results there were. The caller is the ring's one consumer. */
uint32_t tstream_drain(shard *s, tstream_gen *g);

/* Remembers claim (of event, made by client; 0 when not known) learned
 * otherwise: a restarted process finds the holds and bookings of its
 * recovered engine on its seats. Claim ops on a claim are sent mostly by
 * its client (the others are refused: engine.h, "Ownership"). */
void tstream_remember(tstream_gen *g, uint64_t event_id, uint64_t claim_id, uint64_t client);

/* The durable shard the committer tests run the stream through, in dir:
 * small tables (the stream's events fit), the given clock, retain_seq 0
 * (a committer follows: nothing is pruned before it applied it), small
 * journal segments of segment_bytes so that pruning and rolling happen. */
void tstream_shard_config(shard_config *cfg, const char *dir, shard_clock_fn clock, uint64_t snapshot_every,
			  uint32_t segment_bytes);

#endif /* BO_TEST_STREAM_GEN_H */
