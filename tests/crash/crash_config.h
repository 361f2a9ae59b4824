/*
 * crash_config.h — what the crash harness and its driver must agree on: the
 * shard layout and engine capacity the harness opens its shards with (the
 * driver rebuilds the reference state with the same capacity, and an engine
 * digest covers it), and the line protocol on the harness's stdout.
 *
 * Line protocol (one write(2) per group of whole lines, each group <=
 * PIPE_BUF bytes, so a SIGKILL never splits a line and lines of different
 * threads never interleave):
 *
 *   rec <shard> <snapshot_seq> <last_seq> <replayed> <records_cut> <digest hex>
 *                      shard_open() finished: what recovery found, and the
 *                      engine_digest() of the recovered state
 *   go                 every shard started, producers running
 *   sub <client> <request> <shard>
 *                      written BEFORE the command is submitted
 *   ack <shard> <seq> <client> <request> <status> <claim_id>
 *                      a RESULT left the output ring: the client saw it
 *   bye                SIGTERM handled: everything submitted was acknowledged
 *   fail <errno> <message>
 *                      shard_open() failed (the harness exits 3, or 77 when
 *                      io_uring is refused)
 */
#ifndef BO_CRASH_CONFIG_H
#define BO_CRASH_CONFIG_H

#include <stdint.h>

#include "engine/engine.h"
#include "journal/journal.h"

#define CRASH_SHARDS 2u

/* Small capacities: the harness runs for a fraction of a second, and the
 * driver keeps a reference engine per shard for the whole test. */
#define CRASH_SEATS_MAX (1u << 16)
#define CRASH_CLAIMS_MAX (1u << 14)
#define CRASH_IDEM_CAPACITY (1u << 12)
#define CRASH_EVENTS_MAX 16u

/* Ring sizes: the smallest shard_new() accepts, so a crash finds the rings
 * full more often. The output ring bounds how many journaled commands can
 * be durable yet unacknowledged when the harness dies (see crash_test.c). */
#define CRASH_IN_SLOTS 4096u
#define CRASH_OUT_SLOTS 8192u

/* A snapshot every this many records. A shard counts them from its last
 * snapshot or, after a restart, from where recovery ended; one run of the
 * harness writes a few hundred records per shard, so this small interval
 * makes most runs snapshot (and some die while a snapshot is written), and
 * most recoveries start from a snapshot and replay a tail after it. */
#define CRASH_SNAPSHOT_EVERY 200u

/* The event creations use fixed (client, request) pairs: client
 * CRASH_CREATE_CLIENT_BASE + event index, request 1, so that the same create
 * after a restart is a repeat the engine answers from its window. These are
 * the only keys that may appear more than once in a journal. */
#define CRASH_CREATE_CLIENT_BASE 0xC0FFEE00ull
#define CRASH_EVENTS_PER_SHARD 2u
#define CRASH_EVENTS (CRASH_EVENTS_PER_SHARD * CRASH_SHARDS)

/* Small journal segments: a recovery (and every read of the driver) scans
 * the unused zero tail of the last segment, which would cost more than the
 * records at the default 64 MiB; and a run crosses segment boundaries every
 * few cycles, so roll-over is crashed into too. A record here is < 1 KiB. */
#define CRASH_SEGMENT_BYTES (256u << 10)
#define CRASH_BUFFER_BYTES (64u << 10)
#define CRASH_PAYLOAD_BYTES_MAX (16u << 10)

/* Exit codes of the harness. */
enum {
	CRASH_EXIT_OK = 0,
	CRASH_EXIT_USAGE = 2,
	CRASH_EXIT_OPEN = 3,
	CRASH_EXIT_SKIP = 77
};

static inline void crash_engine_config(engine_config *cfg)
{
	engine_config_default(cfg);
	cfg->seats_max = CRASH_SEATS_MAX;
	cfg->claims_max = CRASH_CLAIMS_MAX;
	cfg->idem_capacity = CRASH_IDEM_CAPACITY;
	cfg->events_max = CRASH_EVENTS_MAX;
}

static inline void crash_journal_options(journal_options *opt)
{
	journal_options_default(opt);
	opt->segment_bytes = CRASH_SEGMENT_BYTES;
	opt->buffer_bytes = CRASH_BUFFER_BYTES;
	opt->payload_bytes_max = CRASH_PAYLOAD_BYTES_MAX;
}

#endif /* BO_CRASH_CONFIG_H */
