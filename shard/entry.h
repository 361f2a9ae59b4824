/*
 * entry.h — what a journal record's payload holds.
 *
 * The journal (journal.h) stores opaque payloads; the shard writes one of
 * these per record, and everything that reads a journal (recovery,
 * boxoffice-replay, the database committer) decodes them here:
 *
 *   COMMAND  byte 0 = ENTRY_COMMAND, bytes 1..4 = u32 little-endian length L
 *            of the command, then L bytes of codec_cmd_encode(), then the
 *            rest of the payload is codec_result_encode() of its result.
 *            One per state-changing command (bo_op_mutates() with a client):
 *            read-only and rejected-before-the-window commands change
 *            nothing and are not journaled.
 *   TICK     byte 0 = ENTRY_TICK and nothing else: an idle advance of the
 *            clock (the record's timestamp) that changed state, i.e.
 *            expired holds or aged out idempotency entries.
 *   EPOCH    byte 0 = ENTRY_EPOCH, bytes 1..8 = u64 little-endian epoch (>=
 *            1): the first record of a primary's term (shard_promote,
 *            issue 13). No effect on the engine, not even a clock advance;
 *            replay records the epoch (the shard's epoch is the highest
 *            journaled) and every other reader skips it.
 *
 * Replaying a record is: engine_advance(record timestamp), then, for a
 * COMMAND, engine_apply() — see shard/apply.h; an EPOCH record is skipped.
 */
#ifndef BO_SHARD_ENTRY_H
#define BO_SHARD_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/codec.h"
#include "engine/engine.h"
#include "journal/journal.h"

enum { ENTRY_COMMAND = 1, ENTRY_TICK = 2, ENTRY_EPOCH = 3 };

/* Bytes of an EPOCH entry: the kind and the u64 epoch. */
#define ENTRY_EPOCH_BYTES (1u + 8u)

/* Does this command change state, so that it must be journaled? */
static inline int entry_journals(const bo_cmd *cmd)
{
	return bo_op_mutates(cmd->op) && cmd->client_id != 0;
}

/* Bytes before the command's encoding: the kind and the u32 length. */
#define ENTRY_COMMAND_HEADER_BYTES (1u + 4u)

/* Worst-case payload of a command entry without a seat map (a buffer of
 * this size always holds one): the header, the largest map-less command
 * and the largest result, as the codec bounds them. */
#define ENTRY_SIZE_NOMAP_MAX (ENTRY_COMMAND_HEADER_BYTES + CODEC_CMD_SIZE_NOMAP_MAX + CODEC_RESULT_SIZE_MAX)

/* The shard encodes every map-less command into a buffer of this size,
 * which a journal record must be able to hold. (A CREATE_EVENT's map
 * outgrows it and gets a buffer of its own.) */
_Static_assert(ENTRY_SIZE_NOMAP_MAX <= JOURNAL_PAYLOAD_BYTES_MAX, "a map-less command entry fits one record");

/* Worst-case payload of any command entry: the header, the largest command
 * (a CREATE_EVENT whose map description is BO_MAP_DESC_BYTES_MAX) and the
 * largest result. */
#define ENTRY_SIZE_MAX (ENTRY_COMMAND_HEADER_BYTES + CODEC_CMD_SIZE_MAX + CODEC_RESULT_SIZE_MAX)

/* Every command the engine accepts or rejects must fit one record: the
 * shard applies a command before journaling it, so a record that could not
 * be appended would stop the shard. BO_MAP_DESC_BYTES_MAX (base/limits.h)
 * exists to keep this true; raising a bound here means lowering it. */
_Static_assert(ENTRY_SIZE_MAX <= JOURNAL_PAYLOAD_BYTES_MAX, "every command entry fits one record");

/* Encodes a command and its result. A CREATE_EVENT whose map is invalid is
 * encoded without its map (replay answers MAP_INVALID all the same).
 * Returns the bytes written, or -ENOSPC when `cap` is too small. */
int32_t entry_encode_command(const bo_cmd *cmd, const bo_result *res, uint8_t *buf, size_t cap);

/* Bytes entry_encode_command() needs for this command and result. */
int32_t entry_command_size(const bo_cmd *cmd, const bo_result *res);

/* Encodes a tick (1 byte). Returns 1, or -ENOSPC. */
int32_t entry_encode_tick(uint8_t *buf, size_t cap);

/* Encodes an epoch record (epoch >= 1). Returns ENTRY_EPOCH_BYTES, or
 * -ENOSPC. */
int32_t entry_encode_epoch(uint64_t epoch, uint8_t *buf, size_t cap);

typedef struct entry {
	int kind;	/* ENTRY_COMMAND, ENTRY_TICK or ENTRY_EPOCH */
	uint64_t epoch; /* EPOCH: the term it opens; 0 otherwise */
	bo_cmd cmd;	/* COMMAND; cmd.map points at *map_out when a map came */
	bo_result res;	/* COMMAND: the recorded result */
} entry;

/* Decodes a payload. Returns 0, or -EINVAL for malformed bytes (hostile
 * input: every length is checked), -ENOMEM. A CREATE_EVENT's map is
 * allocated and handed to the caller in *map_out (NULL otherwise): free it
 * with bo_seatmap_free(). */
int entry_decode(const uint8_t *buf, size_t len, entry *out /* OUT */, bo_seatmap **map_out /* OUT */);

#endif /* BO_SHARD_ENTRY_H */
