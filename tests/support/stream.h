/*
 * stream.h — the long random command streams of the PostgreSQL tests
 * (tests/committer/committer_test.c, tests/replayer/to_postgres_test.c),
 * submitted to a durable shard: holds of every kind, extends, releases,
 * confirms of active and of expired holds (some payment references with
 * bytes the text column must escape), cancels, blocks, unblocks, repeats
 * and conflicts of earlier requests, in random batches, on a test clock that
 * moves 0..400 ms per batch so that holds expire, on the 100 ms grid so
 * that expiries also fall exactly on batch times.
 *
 * The shard must run on tstream_clock (shard_config.clock). Failures are
 * Criterion assertions: a ring that stays full, results that do not come.
 */
#ifndef BO_TEST_STREAM_H
#define BO_TEST_STREAM_H

#include <stdint.h>

#include "committer/committer.h"
#include "shard/shard.h"
#include "tests/support/stream_gen.h"

/* The test clock (shard_clock_fn), in ms; tstream_run moves it. */
int64_t tstream_clock(void *ctx);

/* Submits n commands and waits for their n results (durable), remembering
 * the claim ids of successful holds. */
void tstream_submit_wait(shard *s, tstream_gen *g, const bo_cmd *c, uint32_t n);

/* Creates the TSTREAM_EVENTS events (stream_gen.h). */
void tstream_create_events(shard *s, tstream_gen *g);

/* `n` random commands in random batches of 1..32; calls between(done)
 * every `every` commands (0: never). Ends by moving the clock 10 minutes
 * and submitting a query, so that every hold expires in a journaled tick. */
void tstream_run(shard *s, tstream_gen *g, uint32_t n, uint32_t every, void (*between)(uint32_t));

/* Opens and starts the durable shard of tstream_shard_config in dir (a
 * test skips loudly where the kernel refuses io_uring; other failures
 * fail it). */
shard *tstream_open_shard(const char *dir, uint64_t snapshot_every);

/* Starts a committer of s into dsn with a quick retry (20..200 ms) and
 * batch_records (0: the default); fails the test if it cannot start. */
committer *tstream_start_committer(shard *s, const char *dsn, uint32_t batch_records);

#endif /* BO_TEST_STREAM_H */
