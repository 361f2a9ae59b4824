/*
 * replay_cli.h — the command line of boxoffice-replay: exit codes, the
 * options every subcommand shares, how a subcommand is described (name,
 * --help text, the options it takes, its run function), error lines, and
 * the parser (getopt_long) that turns argv into options.
 *
 * Each subcommand lives in its own cmd_<name>.c and exports one replay_cmd
 * (declared at the end); replay_main.c picks one by name and runs it.
 */
#ifndef BO_REPLAY_CLI_H
#define BO_REPLAY_CLI_H

#include <stdint.h>

#define REPLAY_PROG "boxoffice-replay"

/* Exit codes: the tool's contract with scripts (--help lists them). */
enum {
	REPLAY_EXIT_OK = 0,     /* all good */
	REPLAY_EXIT_FAILED = 1, /* verification failed, corruption found */
	REPLAY_EXIT_USAGE = 2,  /* bad command line */
	REPLAY_EXIT_IO = 3      /* I/O or environment (missing DIR, out of memory, disk) */
};

/* Options beyond the common ones (--shard, --json, --no-progress, --help)
 * that a subcommand takes; any other option is a usage error for it, so a
 * typo is never silently ignored. */
enum {
	REPLAY_OPT_ALLOW_TORN = 1u << 0, /* --allow-torn-tail */
	REPLAY_OPT_RANGE = 1u << 1,      /* --from SEQ, --to SEQ */
	REPLAY_OPT_EVENT = 1u << 2,      /* --event ID */
	REPLAY_OPT_AT = 1u << 3,         /* --at SEQ */
	REPLAY_OPT_CUT = 1u << 4,        /* --truncate-at SEQ, --backup DIR2 */
	REPLAY_OPT_CAPACITY = 1u << 5,   /* --seats-max, --claims-max, --idem-capacity,
	                                  * --events-max */
	REPLAY_OPT_PG = 1u << 6          /* --dsn DSN, --from-scratch, --batch N */
};

/* What the command line asked for. have_X says whether --X was given. */
typedef struct replay_opts {
	const char *cmd; /* subcommand name */
	const char *dir; /* data directory (argv, borrowed) */
	int json;
	int no_progress;
	int allow_torn_tail;
	int have_shard;
	uint32_t shard;
	int have_from, have_to, have_event, have_at, have_trunc;
	uint64_t from, to, event, at, trunc; /* at, trunc >= 1 when given */
	const char *backup;                  /* --backup (argv, borrowed), or NULL */
	/* engine capacity overrides; 0 = not given */
	uint32_t seats_max, claims_max, idem_capacity, events_max;
	const char *dsn;  /* --dsn (argv, borrowed), or NULL */
	int from_scratch; /* --from-scratch */
	uint32_t batch;   /* --batch: 1 .. REPLAY_BATCH_MAX; 0 = not given */
} replay_opts;

/* Largest --batch (journal records per database transaction): a batch is
 * gathered in memory before it is sent, so this bounds the memory. */
#define REPLAY_BATCH_MAX (1u << 20)

/* The shards to work on, ascending. ids is owned by whoever filled it. */
typedef struct replay_shard_list {
	uint32_t *ids;
	uint32_t count;
} replay_shard_list;

typedef struct replay_cmd {
	const char *name;  /* "verify" ... */
	const char *usage; /* its --help text (the user documentation) */
	unsigned options;  /* REPLAY_OPT_* it takes besides the common ones */
	/* Checks that need every option (NULL: none). Returns 0, or the exit
	 * code of a usage error it printed (replay_usage_error). Runs before
	 * anything touches DIR, so a bad command line is always exit 2. */
	int (*check)(const replay_opts *o);
	/* Does the work on the selected shards; returns the exit code. */
	int (*run)(const replay_opts *o, const replay_shard_list *sl);
} replay_cmd;

/* Writes "boxoffice-replay: <message>\n" to stderr: every error is one line. */
void replay_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes "boxoffice-replay: <message> (see `boxoffice-replay [CMD] --help`)"
 * to stderr. cmd may be NULL. Returns REPLAY_EXIT_USAGE. */
int replay_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses argv[2..] (argv[1] is the subcommand c) into *o (zeroed first).
 * Returns 0 with *o filled; REPLAY_EXIT_OK with *done = 1 after printing c's
 * --help (-h) to stdout; or REPLAY_EXIT_USAGE after one line on stderr
 * (unknown option for c, missing or malformed value, missing DIR, a second
 * DIR, --from after --to, or c->check refusing). argv is not changed. */
int replay_cli_parse(int argc, char **argv, const replay_cmd *c, replay_opts *o /* OUT */,
                     int *done /* OUT */);

/* The subcommands (cmd_<name>.c). */
extern const replay_cmd cmd_verify;
extern const replay_cmd cmd_dump;
extern const replay_cmd cmd_stats;
extern const replay_cmd cmd_snapshot;
extern const replay_cmd cmd_repair;
extern const replay_cmd cmd_to_postgres;

#endif /* BO_REPLAY_CLI_H */
