/*
 * codec.h — the canonical binary encoding of engine commands and results
 * (the types of engine.h).
 *
 * Used as journal record payloads (shard/entry.c; recovery and the replay
 * tool decode a command, re-apply it and check that the engine reproduces
 * the recorded result with codec_result_equal()). Snapshots do not use it:
 * they are raw table images (snapshot.h). The byte layout, the validity
 * rule and the table of meaningful fields are at the top of codec.c.
 *
 * Properties every function here keeps:
 *  - Explicit little-endian, field by field; no struct is ever copied as
 *    bytes, so padding, layout and host byte order never matter.
 *  - Only the fields an op (and, for results, its status) uses are encoded;
 *    decode sets every other field to zero.
 *  - Canonical: a value has exactly one encoding. Decode accepts nothing
 *    else, so decode(b) succeeding implies encode(decode(b)) == b; the one
 *    exception is a version 1 command, which re-encodes as version 2.
 *  - Decode treats its input as hostile: every count is checked against
 *    limits.h and against the bytes left before anything is allocated or
 *    read, and it never reads outside [buf, buf + len).
 *
 * Errors: negative errno values. -EINVAL: malformed or non-canonical input
 * (including truncation, an unknown op or format version), or a value
 * that has no encoding. -ENOSPC: the output buffer is too small (nothing
 * useful was written). -ENOMEM: a seat map could not be allocated.
 *
 * A NULL pointer where an object is required is a programmer error (assert).
 */
#ifndef BO_CODEC_H
#define BO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "base/limits.h"

/* Format versions, byte 1 of every encoding. Bump one when its layout in
 * codec.c changes; decode refuses every version it does not know (a reader
 * must never guess at the meaning of bytes written by another format).
 * Commands: version 2 added the flags byte (bo_cmd.flags, the claim
 * ownership rule of engine.h); version 1 commands, written before it, still
 * decode, as claim ops with flags = BO_CMD_F_ANY_CLIENT (codec.c's top
 * comment), so old journals recover and verify. Encode writes CODEC_VERSION
 * only. Results did not change and stay at version 1. */
#define CODEC_VERSION 2u
#define CODEC_VERSION_V1 1u
#define CODEC_RESULT_VERSION 1u

/* ---- Size bounds (for buffers reserved up front) ------------------------- */

/* A command without a map: op, version, three ids, claim, ttl, category,
 * pool, quantity, seat list, payref, map flag, flags (an upper bound; no
 * single op uses all of these). */
#define CODEC_CMD_SIZE_NOMAP_MAX                                                        \
	(2u + 3u * 8u + 8u + 4u + 1u + 1u + 2u + 1u + 4u * BO_SEATS_PER_HOLD_MAX + 1u + \
	 BO_PAYREF_LEN_MAX + 1u + 1u)

/* The bytes of an encoded map (has_map == 1) other than its description:
 * has_map, row_count, seat_count, pool_count, category_count. */
#define CODEC_MAP_FIXED_BYTES (1u + 4u + 4u + 1u + 1u)

/* A CREATE_EVENT carries op, version, the three ids and its map, whose
 * description (rows, category runs, pools) bo_seatmap_check() bounds by
 * BO_MAP_DESC_BYTES_MAX; every other op is within the map-less bound. */
#define CODEC_CMD_SIZE_MAX (2u + 3u * 8u + CODEC_MAP_FIXED_BYTES + BO_MAP_DESC_BYTES_MAX)

/* The largest result encoding (QUERY_AVAIL and QUERY_SEATS bound it). */
#define CODEC_RESULT_SIZE_MAX                                                           \
	(4u + 1u + 3u * 8u + 8u + 8u + 4u + 1u + 1u + 5u * BO_SEATS_PER_HOLD_MAX + 2u + \
	 4u * (BO_SEAT_STATE_COUNT + BO_CATEGORIES_MAX + 2u * BO_POOLS_PER_EVENT_MAX))

_Static_assert(CODEC_CMD_SIZE_MAX <= INT32_MAX, "sizes are returned as int32_t");
_Static_assert(CODEC_CMD_SIZE_NOMAP_MAX <= CODEC_CMD_SIZE_MAX,
               "the map-less bound is within the bound");
_Static_assert(BO_SEATS_PER_ROW_MAX <= UINT16_MAX, "a category run length is 16 bits");
_Static_assert(BO_CATEGORIES_MAX <= UINT8_MAX, "category_count is one byte");
_Static_assert(BO_SEATS_PER_HOLD_MAX <= UINT8_MAX, "seat_count is one byte");
_Static_assert(BO_PAYREF_LEN_MAX <= UINT8_MAX, "payref_len is one byte");

/* ---- Commands ------------------------------------------------------------ */

/* Exact size of the encoding of `cmd`, or -EINVAL when it has none: op not
 * in 1..BO_OP_COUNT-1, seat_count > BO_SEATS_PER_HOLD_MAX, payref_len >
 * BO_PAYREF_LEN_MAX, a claim op with a flag bit outside BO_CMD_F_*, or a
 * CREATE_EVENT whose map (when not NULL) fails
 * bo_seatmap_check(). Values the engine itself rejects with a result (ttl
 * out of range, seat_count 0, unknown category...) are encodable: the
 * journal records rejected mutating commands too. O(seats) for a map. */
int32_t codec_cmd_size(const bo_cmd *cmd);

/* Writes the encoding of `cmd` to buf[0..cap). Returns the bytes written
 * (== codec_cmd_size()), -EINVAL as codec_cmd_size(), or -ENOSPC when cap is
 * too small (buf may then hold a partial encoding; nothing past cap). */
int32_t codec_cmd_encode(const bo_cmd *cmd, uint8_t *buf, size_t cap);

/* Decodes one command (version 2, or version 1: see CODEC_VERSION) from
 * buf[0..len). Trailing bytes are not looked at.
 * Returns the bytes consumed, -EINVAL or -ENOMEM. On success *out holds the
 * command with every field the op does not use zeroed, and *map is the
 * decoded seat map of a CREATE_EVENT (also in out->map; NULL for other ops
 * and for a CREATE_EVENT encoded without a map). The caller owns *map and
 * frees it with bo_seatmap_free() after the last use of out->map. A decoded
 * map always passes bo_seatmap_check(). On failure *map is NULL, nothing is
 * left allocated and *out is unspecified. */
int32_t codec_cmd_decode(const uint8_t *buf, size_t len, bo_cmd *out /* OUT */,
                         bo_seatmap **map /* OUT */);

/* 1 when a and b agree on op and on every field meaningful for that op
 * (the table at the top of codec.c; a CREATE_EVENT map is compared by
 * content), else 0. Fields the op does not use are ignored. */
int codec_cmd_equal(const bo_cmd *a, const bo_cmd *b);

/* ---- Results ------------------------------------------------------------- */

/* Exact size of the encoding of `res`, or -EINVAL when it has none: op not
 * in 1..BO_OP_COUNT-1, status >= BO_STATUS_COUNT, detail >= BO_D_COUNT (when
 * status != BO_OK), seat_count > BO_SEATS_PER_HOLD_MAX, a seat_state >=
 * BO_SEAT_STATE_COUNT (QUERY_SEATS), avail counts over BO_CATEGORIES_MAX /
 * BO_POOLS_PER_EVENT_MAX (QUERY_AVAIL). */
int32_t codec_result_size(const bo_result *res);

/* As codec_cmd_encode(), for a result. */
int32_t codec_result_encode(const bo_result *res, uint8_t *buf, size_t cap);

/* Decodes one result. Returns the bytes consumed or -EINVAL; *out holds the
 * result with every field that is not meaningful for its (op, status)
 * zeroed. */
int32_t codec_result_decode(const uint8_t *buf, size_t len, bo_result *out /* OUT */);

/* 1 when a and b agree on op, status and every field meaningful for that
 * (op, status), else 0. This is what replay uses to decide that
 * re-execution reproduced a recorded result. */
int codec_result_equal(const bo_result *a, const bo_result *b);

#endif /* BO_CODEC_H */
