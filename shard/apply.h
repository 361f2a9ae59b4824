/*
 * apply.h — re-executing journal records against an engine: the one code
 * path shared by recovery, `boxoffice-replay verify` and `snapshot`.
 *
 * Replaying a record is exactly what the shard did when it wrote it:
 * engine_advance(record timestamp), then engine_apply(command). With
 * `verify`, the result is compared with the recorded one (codec's notion
 * of the meaningful fields): a difference means the engine is not
 * deterministic, or the journal was written by different code.
 */
#ifndef BO_SHARD_APPLY_H
#define BO_SHARD_APPLY_H

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

/* Applies one record. On success returns REPLAY_OK and, when `out` is not
 * NULL, the decoded entry (its cmd.map is NULL: the map is freed here).
 * REPLAY_MALFORMED / REPLAY_MISMATCH: err names the sequence, the file and
 * offset, what was expected and what came; the engine has advanced (and
 * for MISMATCH applied the command) and should not be trusted further. */
int replay_apply(engine *e, const journal_record *rec, int verify, entry *out /* OUT, optional */, char *err,
		 size_t errlen);

/* Writes "op status[/detail] claim=..." for a result, for messages. */
void replay_result_str(const bo_result *r, char *buf, size_t len);

#endif /* BO_SHARD_APPLY_H */
