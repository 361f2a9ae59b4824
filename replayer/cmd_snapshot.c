/*
 * cmd_snapshot.c — `boxoffice-replay snapshot`: rebuilds each shard's state
 * offline (rebuild.h: re-execution with result verification, from an empty
 * engine or the oldest usable snapshot of a pruned journal) up to --at SEQ
 * or the journal's end, and saves it as the shard's snapshot of that seq,
 * the same file the server would write.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "engine/snapshot.h"
#include "replayer/rebuild.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_report.h"
#include "shard/snapfile.h"

static const char usage[] =
        "Usage: " REPLAY_PROG " snapshot DIR [--shard N] [--at SEQ] [--json] [--allow-torn-tail]\n"
        "                          [--seats-max N] [--claims-max N] [--idem-capacity N]\n"
        "                          [--events-max N]\n"
        "\n"
        "Rebuilds a shard's state offline by re-executing its journal (with result\n"
        "verification, as verify does, from an empty engine or the oldest usable\n"
        "snapshot when the journal was pruned) up to SEQ (default: the last record),\n"
        "and saves it as DIR/shard-NNNN/snap-<seq>.snap (written to a temporary file,\n"
        "fsynced, renamed: an existing snapshot of that seq is replaced atomically).\n"
        "Prints the path, seq and size of each file written (--json: one object,\n"
        "{\"snapshots\":[{\"shard\",\"seq\",\"bytes\",\"path\"}]}). A shard with an empty\n"
        "journal gets no snapshot (said on stderr). Engine capacity as for verify.\n"
        "The server must not be running.\n"
        "\n"
        "Exit: 0 ok, 1 the journal is corrupt, has a torn tail (unless\n"
        "--allow-torn-tail) or does not re-execute, or SEQ is not in it, 2 usage,\n"
        "3 I/O or environment.\n";

/* Saves the rebuilt engine of shard d at seq and prints what was written.
 * Returns the exit code. */
static int save(const replay_opts *o, const replay_shard_dir *d, const engine *e, uint64_t seq,
                const replay_report *r, int *first)
{
	/* The engine's clock: the last record's time (batch times never go
	 * back, and a hostile journal's that do are held by the engine), so it
	 * is never older than the last change. */
	int64_t ts = engine_now(e);
	if (seq == 0) {
		replay_err("shard %" PRIu32 ": the journal is empty: no snapshot written",
		           d->shard);
		return REPLAY_EXIT_OK;
	}
	if (ts < 0) {
		replay_err("shard %" PRIu32 ": the journal's clock at seq %" PRIu64
		           " is before 1970 (%" PRId64 " ms): no snapshot written",
		           d->shard, seq, ts);
		return REPLAY_EXIT_FAILED;
	}
	char serr[SNAPSHOT_ERR_LEN];
	if (snapfile_save(e, d->path, d->shard, seq, ts, serr, sizeof serr) < 0) {
		replay_err("shard %" PRIu32 ": %s", d->shard, serr);
		return REPLAY_EXIT_IO;
	}
	char path[REPLAY_DIR_PATH_LEN];
	int prc = snapfile_path(path, sizeof path, d->path, seq);
	(void)prc; /* replay_dir_scan leaves room for any file name in d->path */
	struct stat st;
	uint64_t bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (o->json) {
		printf("%s{\"shard\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"path\":",
		       *first ? "" : ",", d->shard, seq, bytes);
		bo_json_cstr(stdout, path);
		putchar('}');
	} else {
		printf("shard %" PRIu32 ": snapshot of seq %" PRIu64 " (%" PRIu64
		       " records re-executed from %s) written: %s (%" PRIu64 " bytes)\n",
		       d->shard, seq, r->records,
		       strcmp(r->base, "empty") == 0 ? "an empty engine" : "a snapshot", path,
		       bytes);
	}
	*first = 0;
	return REPLAY_EXIT_OK;
}

/* Rebuilds and saves shard d. Returns the exit code. */
static int snapshot_shard(const replay_opts *o, const replay_shard_dir *d, int *first)
{
	replay_report *r = calloc(1, sizeof *r);
	if (!r) {
		replay_err("out of memory");
		return -1;
	}
	rebuild b = {.o = o, .d = d, .stop_seq = o->have_at ? o->at : UINT64_MAX, .check_snaps = 0};
	int rc = rebuild_run(&b, r);
	int c = replay_report_exit(r);
	if (rc != 0 || c != REPLAY_EXIT_OK) {
		replay_report_to_stderr(r);
		if (c == REPLAY_EXIT_OK)
			c = REPLAY_EXIT_FAILED;
	} else {
		c = save(o, d, b.e, r->last_seq ? r->last_seq : r->base_seq, r, first);
	}
	engine_free(b.e);
	free(r);
	return c;
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	int code = REPLAY_EXIT_OK;
	int first = 1;
	if (o->json)
		fputs("{\"snapshots\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		if (replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) < 0) {
			replay_err("%s", err);
			code = REPLAY_EXIT_IO;
			continue;
		}
		int c = snapshot_shard(o, &d, &first);
		replay_dir_free(&d);
		if (c < 0)
			return REPLAY_EXIT_IO; /* out of memory */
		code = c > code ? c : code;
	}
	if (o->json)
		fputs("]}\n", stdout);
	return code;
}

const replay_cmd cmd_snapshot = {
        .name = "snapshot",
        .usage = usage,
        .options = REPLAY_OPT_ALLOW_TORN | REPLAY_OPT_AT | REPLAY_OPT_CAPACITY,
        .check = NULL,
        .run = run,
};
