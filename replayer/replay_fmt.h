/*
 * replay_fmt.h — how boxoffice-replay prints journal records and values:
 * ISO-8601 times, JSON strings, and one line per record (human or JSON).
 *
 * A record line, human form (one line, key=value, greppable):
 *
 *   shard=0 seq=12 time=2026-11-28T01:52:03.123Z kind=command op=hold_best
 *     client=5 request=17 event=7 category=1 qty=2 ttl_ms=60000
 *     -> ok claim=0x100000003 seats=10,11 qty=2 expires=2026-11-28T01:53:03.123Z
 *   shard=0 seq=13 time=2026-11-28T01:52:04.000Z kind=tick
 *
 * JSON form: one object per line with the same fields (see replay_fmt_record
 * in replay_fmt.c for the keys); integers are JSON numbers (ids are
 * unsigned 64-bit: parse them as integers, not doubles); every string is
 * escaped by base/json.h (bytes outside printable ASCII as \u00XX), so any
 * payment reference or path yields valid JSON.
 */
#ifndef BO_REPLAY_FMT_H
#define BO_REPLAY_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"
#include "shard/entry.h"
#include "journal/journal.h"

/* Room for any time replay_fmt_time writes. */
#define REPLAY_FMT_TIME_LEN 40u

/* "2026-11-28T01:52:03.123Z" for a millisecond Unix time (UTC). */
void replay_fmt_time(int64_t ms, char *buf, size_t len);

/* A short machine token for a detail code: "sold_out", "no_hold", ...
 * ("none" for BO_D_NONE, "unknown" out of range). */
const char *replay_fmt_detail_token(int detail);

/* Writes one record line (with '\n'). `en` is the decoded payload, `map`
 * the seat map of a CREATE_EVENT (may be NULL). json: 1 for a JSON line. */
void replay_fmt_record(FILE *f, uint32_t shard, const journal_record *rec, const entry *en,
                       const bo_seatmap *map, int json);

#endif /* BO_REPLAY_FMT_H */
