/*
 * apply.h — re-executing journal records against an engine: the one code
 * path shared by recovery, `boxoffice-replay verify` and `snapshot`.
 *
 * Replaying a record is exactly what the shard did when it wrote it:
 * engine_advance(record timestamp), then engine_apply(command); an EPOCH
 * record (entry.h) changes nothing: its epoch is in the decoded entry
 * (`out`, or the staged entry) for the caller to keep. With
 * `verify`, the result is compared with the recorded one (codec's notion
 * of the meaningful fields): a difference means the engine is not
 * deterministic, or the journal was written by different code.
 */
#ifndef BO_SHARD_APPLY_H
#define BO_SHARD_APPLY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "shard/entry.h"
#include "journal/journal.h"

#define REPLAY_ERR_LEN 1024u

enum {
	REPLAY_OK = 0,
	REPLAY_MALFORMED = -1, /* the payload does not decode */
	REPLAY_MISMATCH = -2,  /* re-execution gave another result */
};

/* Applies one record (replay_stage() then replay_apply_staged(): a caller
 * that can read one record ahead should use those two itself). On success
 * returns REPLAY_OK and, when `out` is not
 * NULL, the decoded entry (its cmd.map is NULL: the map is freed here).
 * REPLAY_MALFORMED / REPLAY_MISMATCH: err names the sequence, the file and
 * offset, what was expected and what came; the engine has advanced (and
 * for MISMATCH applied the command) and should not be trusted further. */
int replay_apply(engine *e, const journal_record *rec, int verify, entry *out /* OUT, optional */, char *err,
		 size_t errlen);

/* Room for a segment's path in a staged record (longer ones are cut). */
#define REPLAY_FILE_LEN PATH_MAX

/* A record decoded ahead of its application. A reader hands out records
 * that live only until its next call, and applying record i while record
 * i+1 is already decoded lets the engine fetch i+1's cache lines (its
 * idempotency bucket, client slot, claim, seat: each a ~200 ns miss on a
 * large engine) while it works on i: the shard's writer does the same with
 * engine_prefetch() one command ahead. The record's payload is not kept:
 * only its decoded entry and what messages name (seq, file, offset). */
typedef struct replay_staged {
	int rc;		    /* REPLAY_OK, or REPLAY_MALFORMED with err set */
	entry en;	    /* REPLAY_OK: the decoded entry */
	bo_seatmap *map;    /* a CREATE_EVENT's map, owned until applied or dropped */
	journal_record rec; /* seq, timestamp_ms, offset, payload_len; file -> file[];
			     * payload NULL */
	char file[REPLAY_FILE_LEN];
	char err[REPLAY_ERR_LEN]; /* REPLAY_MALFORMED: the message */
} replay_staged;

/* Decodes `rec` into *st (copying what outlives the reader's next call)
 * and, when it decodes, starts loading the cache lines applying it will
 * touch in `e` (a hint: e is not changed). Returns st->rc: REPLAY_OK, or
 * REPLAY_MALFORMED with the message in st->err (nothing to apply then, but
 * replay_staged_drop() is still due). */
int replay_stage(const engine *e, const journal_record *rec, replay_staged *st /* OUT */);

/* Applies a record staged with REPLAY_OK, exactly as replay_apply() (same
 * outcomes, messages and `out`), and releases what it owns. */
int replay_apply_staged(engine *e, replay_staged *st, int verify, entry *out /* OUT, optional */, char *err,
			size_t errlen);

/* Releases a staged record that will not be applied. Idempotent. */
void replay_staged_drop(replay_staged *st);

/* Writes "op status[/detail] claim=..." for a result, for messages. */
void replay_result_str(const bo_result *r, char *buf, size_t len);

#endif /* BO_SHARD_APPLY_H */
