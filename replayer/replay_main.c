/*
 * replay_main.c — boxoffice-replay, the operator's tool for journals:
 * main(), the overall --help, and the dispatch to a subcommand (verify,
 * dump, stats, snapshot, repair, to-postgres; each in its cmd_<name>.c, described by a
 * replay_cmd of replay_cli.h). The --help texts are the user documentation;
 * what verify proves is written at the top of rebuild.h.
 *
 * The flow: pick the subcommand by name, parse the rest of the command line
 * with its options (replay_cli_parse: a bad line is exit 2 before anything
 * is read), select the shards of DIR (all, or --shard N), run.
 *
 * Exit codes: 0 ok, 1 verification failed / corruption found, 2 usage,
 * 3 I/O or environment. Output: results on stdout (one JSON object or JSON
 * lines with --json), one line per error on stderr, a progress line on
 * stderr only when it is a terminal and the work has run for over 1 s.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"

#ifndef BO_VERSION
#define BO_VERSION "0.1.0-dev"
#endif

static const char usage_main[] =
        "Usage: " REPLAY_PROG " COMMAND DIR [OPTIONS]\n"
        "\n"
        "The operator's tool for boxoffice journals. DIR is a data directory (the\n"
        "server's data_dir) holding shard-NNNN/ subdirectories with journal segments\n"
        "(*.seg) and snapshots (snap-*.snap). It only reads, except `snapshot` (adds a\n"
        "snapshot file), `repair` (cuts the journal) and `to-postgres` (writes to a\n"
        "database, never to DIR). Stop the server before `snapshot`, `repair` or\n"
        "`to-postgres`: nothing locks a running shard out.\n"
        "\n"
        "Commands:\n"
        "  verify DIR     checksums, hash chain, continuity, re-execution of every\n"
        "                 record with result comparison, snapshots against the journal\n"
        "  dump DIR       one line per record (--json: JSON lines)\n"
        "  stats DIR      counts, bytes, time span, rate (--json: one object)\n"
        "  snapshot DIR   rebuild the state offline and save it as a snapshot\n"
        "  repair DIR     cut a corrupt journal at a seq, keeping a copy of what is cut\n"
        "  to-postgres DIR --dsn DSN\n"
        "                 load the PostgreSQL system of record from the journals, from\n"
        "                 scratch or from the database's checkpoint\n"
        "\n"
        "Options for every command:\n"
        "  --shard N      only shard N (default: every shard of DIR; repair needs it)\n"
        "  --json         machine-readable output on stdout\n"
        "  --no-progress  never draw the progress line\n"
        "  --help, -h     help (also `" REPLAY_PROG " COMMAND --help` or `help COMMAND`)\n"
        "  --version      print the version\n"
        "\n"
        "Options of some commands (see their --help): --from, --to, --event (dump);\n"
        "--at (snapshot); --truncate-at, --backup (repair); --dsn, --from-scratch,\n"
        "--batch (to-postgres); --allow-torn-tail (verify, dump, stats, snapshot,\n"
        "to-postgres); --seats-max, --claims-max,\n"
        "--idem-capacity, --events-max: the server's engine capacity (verify,\n"
        "snapshot). Options may come before or after DIR; `--` makes the next\n"
        "argument DIR even if it starts with '-'. Option names are never abbreviated.\n"
        "\n"
        "Exit codes:\n"
        "  0  ok\n"
        "  1  verification failed or corruption found (stdout and stderr say where:\n"
        "     file, offset, seq)\n"
        "  2  usage error (bad command line)\n"
        "  3  I/O or environment error (missing or unreadable DIR, not a data\n"
        "     directory, out of memory, disk errors)\n"
        "\n"
        "Errors are one line each on stderr. A progress line (records done / estimate,\n"
        "rate) is drawn on stderr only when it is a terminal (for dump: and stdout is\n"
        "not) and the work takes over a second; it never touches stdout.\n";

static const replay_cmd *const commands[] = {
        &cmd_verify, &cmd_dump, &cmd_stats, &cmd_snapshot, &cmd_repair, &cmd_to_postgres,
};
#define COMMANDS_N (sizeof commands / sizeof commands[0])

static const replay_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < COMMANDS_N; i++)
		if (strcmp(name, commands[i]->name) == 0)
			return commands[i];
	return NULL;
}

/* Keeps only shard o->shard in *sl, if DIR has it. Returns 0 or an exit code. */
static int select_one(const replay_opts *o, replay_shard_list *sl)
{
	int found = 0;
	for (uint32_t i = 0; i < sl->count; i++)
		found |= sl->ids[i] == o->shard;
	if (!found) {
		replay_err("%s: no shard %" PRIu32 " here (no directory shard-%04" PRIu32 ")",
		           o->dir, o->shard, o->shard);
		return REPLAY_EXIT_IO;
	}
	sl->ids[0] = o->shard;
	sl->count = 1;
	return 0;
}

/* Resolves which shards to work on into *sl (caller frees sl->ids).
 * Returns 0, or an exit code after an error line. */
static int select_shards(const replay_opts *o, replay_shard_list *sl)
{
	char err[PATH_MAX + 256];
	struct stat st;
	if (stat(o->dir, &st) != 0) {
		replay_err("%s: cannot open data directory: %s", o->dir, strerror(errno));
		return REPLAY_EXIT_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_err("%s: not a directory (expected a data directory with shard-NNNN/ "
		           "subdirectories)",
		           o->dir);
		return REPLAY_EXIT_IO;
	}
	if (replay_dir_shards(o->dir, &sl->ids, &sl->count, err, sizeof err) < 0) {
		replay_err("%s", err);
		return REPLAY_EXIT_IO;
	}
	if (o->have_shard)
		return select_one(o, sl);
	if (sl->count == 0) {
		replay_err("%s: not a data directory: no shard-NNNN subdirectories", o->dir);
		return REPLAY_EXIT_IO;
	}
	return 0;
}

/* `--help`, `-h`, `help [COMMAND]`. */
static int help(int argc, char **argv)
{
	const replay_cmd *c = NULL;
	if (strcmp(argv[1], "help") == 0 && argc > 2)
		c = find_command(argv[2]);
	fputs(c ? c->usage : usage_main, stdout);
	return REPLAY_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return replay_usage_error(NULL, "missing COMMAND");
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0)
		return help(argc, argv);
	if (strcmp(name, "--version") == 0) {
		printf(REPLAY_PROG " " BO_VERSION "\n");
		return REPLAY_EXIT_OK;
	}
	const replay_cmd *c = find_command(name);
	if (!c)
		return replay_usage_error(NULL, "unknown command '%s'", name);
	replay_opts o;
	int done = 0;
	int rc = replay_cli_parse(argc, argv, c, &o, &done);
	if (rc != 0 || done)
		return rc;
	/* Dumps of millions of lines: fewer, larger writes when not a terminal. */
	if (!isatty(STDOUT_FILENO))
		setvbuf(stdout, NULL, _IOFBF, 1u << 16);
	replay_shard_list sl = {0};
	rc = select_shards(&o, &sl);
	if (rc == 0)
		rc = c->run(&o, &sl);
	free(sl.ids);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		replay_err("cannot write to stdout: %s", strerror(errno));
		return rc > REPLAY_EXIT_IO ? rc : REPLAY_EXIT_IO;
	}
	return rc;
}
