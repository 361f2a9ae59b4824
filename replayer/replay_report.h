/*
 * replay_report.h — what a rebuild of one shard found (verify, snapshot):
 * counts, notes and problems, and how they are printed and turned into an
 * exit code.
 *
 * A problem has a kind (the machine token scripts match on):
 *   corruption, mismatch, malformed, torn_tail, snapshot_invalid,
 *   snapshot_mismatch, snapshot_beyond_end, pruned, beyond_end, io
 * a seq, a file and offset where it applies, and a message. Only the first
 * PROBLEMS_MAX are kept: the first is what matters; a few more give context
 * (say, a bad snapshot and then a corrupt record).
 */
#ifndef BO_REPLAY_REPORT_H
#define BO_REPLAY_REPORT_H

#include <limits.h>
#include <stdint.h>

#include "journal/journal.h"

#define REPLAY_PROBLEMS_MAX 8u
#define REPLAY_NOTES_MAX 4u

typedef struct replay_problem {
	const char *kind; /* corruption, mismatch, ... (static string) */
	uint64_t seq;     /* 0: not about one record */
	char file[PATH_MAX];
	uint64_t offset;
	int has_offset;
	char message[JOURNAL_ERR_LEN + 512];
	int io; /* an I/O or environment error (exit 3), not a finding */
} replay_problem;

typedef struct replay_report {
	uint32_t shard;
	const char *base; /* where re-execution started: "empty", "snapshot" ("none":
	                   * nowhere) */
	uint64_t base_seq;
	uint64_t first_seq, last_seq; /* re-executed: first_seq..last_seq (0, 0: none) */
	int64_t last_ts_ms;           /* timestamp of last_seq (or of the base) */
	uint64_t records, commands, ticks;
	uint32_t snaps_checked; /* compared equal with the rebuilt state */
	uint32_t snaps_older;   /* older than the base: loaded (valid) but not compared */
	uint64_t torn_bytes;
	char notes[REPLAY_NOTES_MAX][JOURNAL_ERR_LEN + 256]; /* informational lines (torn
	                                                      * tail allowed, pruned...) */
	uint32_t note_count;
	replay_problem problems[REPLAY_PROBLEMS_MAX];
	uint32_t problem_count;
} replay_report;

/* Adds a problem (file may be NULL; offset counts only when has_offset; io:
 * exit 3 rather than 1). Returns it, or NULL when REPLAY_PROBLEMS_MAX are
 * kept already (the problem is dropped). */
replay_problem *replay_report_problem(replay_report *r, const char *kind, uint64_t seq,
                                      const char *file, uint64_t offset, int has_offset, int io,
                                      const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* Adds a note (dropped beyond REPLAY_NOTES_MAX). */
void replay_report_note(replay_report *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Adds the problem of a reader that stopped with rc < 0: "corruption" for
 * -EBADMSG, else "io". File, offset and seq are the reader's
 * (journal_reader_error_at); where it names no file, last_file (the
 * segment of the last record read, may be "") and expected_seq stand in. */
void replay_report_reader(replay_report *r, const journal_reader *rd, int rc, uint64_t expected_seq,
                          const char *last_file);

/* REPLAY_EXIT_OK without problems, else REPLAY_EXIT_IO if any is an I/O
 * problem, else REPLAY_EXIT_FAILED. */
int replay_report_exit(const replay_report *r);

/* One line per problem on stderr: "shard N: KIND at seq S: MESSAGE". */
void replay_report_to_stderr(const replay_report *r);

/* Writes problem p as a JSON object to stdout:
 * {"kind","seq","file","offset" (null without one),"message"}. */
void replay_report_problem_json(const replay_problem *p);

#endif /* BO_REPLAY_REPORT_H */
