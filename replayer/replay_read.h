/*
 * replay_read.h — a plain read of one shard's journal, for the subcommands
 * that print records without re-executing them (dump, stats): where it
 * starts, and what its end means for the exit code.
 */
#ifndef BO_REPLAY_READ_H
#define BO_REPLAY_READ_H

#include <stdint.h>

#include "journal/journal.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"

/* Opens a reader of shard d positioned after `after`, but never before what
 * pruning left (the first segment's first seq - 1). Returns 0 and *rd
 * (caller closes), or the reader's -errno after one error line on stderr. */
int replay_read_open(const replay_opts *o, const replay_shard_dir *d, uint64_t after,
                     journal_reader **rd /* OUT */);

/* Ends a read whose last journal_reader_next() returned rc <= 0: prints one
 * line on stderr for an error, a torn tail, or (allowed) a torn-tail warning,
 * and stores the torn bytes in *torn_bytes (may be NULL; left alone after an
 * error). Returns REPLAY_EXIT_OK; REPLAY_EXIT_FAILED for corruption
 * (-EBADMSG) or a torn tail without --allow-torn-tail (the journal cannot
 * tell one from damage to the last batch); REPLAY_EXIT_IO for other errors. */
int replay_read_end(const replay_opts *o, const journal_reader *rd, int rc, uint32_t shard,
                    uint64_t *torn_bytes /* OUT */);

#endif /* BO_REPLAY_READ_H */
