/*
 * cmd_verify.c — `boxoffice-replay verify`: proves, shard by shard, that the
 * journal is intact and re-executes to the recorded results, and that every
 * snapshot equals the state it claims (what that means exactly: rebuild.h).
 * Prints one OK line per shard, or every problem found with file, offset
 * and seq; --json prints one object for the whole run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "replayer/rebuild.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_report.h"

static const char usage[] =
        "Usage: " REPLAY_PROG " verify DIR [--shard N] [--json] [--allow-torn-tail]\n"
        "                        [--seats-max N] [--claims-max N] [--idem-capacity N]\n"
        "                        [--events-max N]\n"
        "\n"
        "Proves, per shard, that the journal is intact and replays deterministically:\n"
        "  - every record's checksum, the hash chain, consecutive seqs (the reader);\n"
        "  - re-execution: starting from an empty engine (or, when old segments were\n"
        "    pruned so seq 1 is gone, from the oldest valid snapshot that covers the\n"
        "    gap; the output says so), every record is applied again and its result\n"
        "    compared with the recorded one; the first difference is non-determinism;\n"
        "  - snapshots: each snapshot the rebuild passes must load and equal the\n"
        "    rebuilt state at its seq (digest and encoded bytes); a snapshot beyond the\n"
        "    journal's end means durable records were lost;\n"
        "  - the end: bytes after the last whole record (a torn tail, normal after a\n"
        "    crash until the shard restarts and cuts it) fail unless --allow-torn-tail.\n"
        "The first failure per shard is reported with file, offset and seq.\n"
        "\n"
        "The engine's capacity must be the server's (it decides LIMIT results): taken\n"
        "from the newest snapshot, else the defaults, unless given with --seats-max,\n"
        "--claims-max, --idem-capacity, --events-max. Re-execution that starts from a\n"
        "snapshot (a pruned journal) runs with that snapshot's capacity: the engine is\n"
        "loaded from it.\n"
        "\n"
        "--json prints one object: {\"shards\":[{\"shard\",\"ok\",\"base\",\n"
        "\"base_seq\",\"first_seq\",\"last_seq\",\"records\",\"commands\",\"ticks\",\n"
        "\"snapshots\",\"snapshots_checked\",\"snapshots_older\",\"segments\",\n"
        "\"torn_tail_bytes\",\"notes\":[...],\"problems\":[{\"kind\",\"seq\",\"file\",\n"
        "\"offset\",\"message\"}]}],\"ok\":bool}.\n"
        "Problem kinds: corruption, mismatch, malformed, torn_tail, snapshot_invalid,\n"
        "snapshot_mismatch, snapshot_beyond_end, pruned, io.\n"
        "\n"
        "Exit: 0 all good, 1 a problem found, 2 usage, 3 I/O or environment.\n";

static void print_json(const replay_report *r, const replay_shard_dir *d, int first, int ok)
{
	printf("%s{\"shard\":%" PRIu32 ",\"ok\":%s,\"base\":\"%s\",\"base_seq\":%" PRIu64
	       ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"records\":%" PRIu64
	       ",\"commands\":%" PRIu64 ",\"ticks\":%" PRIu64 ",\"snapshots\":%" PRIu32
	       ",\"snapshots_checked\":%" PRIu32 ",\"snapshots_older\":%" PRIu32
	       ",\"segments\":%" PRIu32 ",\"torn_tail_bytes\":%" PRIu64 ",\"notes\":[",
	       first ? "" : ",", r->shard, ok ? "true" : "false", r->base, r->base_seq,
	       r->first_seq, r->last_seq, r->records, r->commands, r->ticks, d->snap_count,
	       r->snaps_checked, r->snaps_older, d->seg_count, r->torn_bytes);
	for (uint32_t i = 0; i < r->note_count; i++) {
		if (i)
			putchar(',');
		bo_json_cstr(stdout, r->notes[i]);
	}
	fputs("],\"problems\":[", stdout);
	for (uint32_t i = 0; i < r->problem_count; i++) {
		if (i)
			putchar(',');
		replay_report_problem_json(&r->problems[i]);
	}
	fputs("]}", stdout);
}

static void print_ok(const replay_report *r, const replay_shard_dir *d)
{
	int from_snap = strcmp(r->base, "snapshot") == 0;
	printf("shard %" PRIu32 ": OK: %" PRIu64 " records", r->shard, r->records);
	if (r->records)
		printf(" (seq %" PRIu64 "..%" PRIu64 ": %" PRIu64 " commands, %" PRIu64 " ticks)",
		       r->first_seq, r->last_seq, r->commands, r->ticks);
	printf(" re-executed with identical results from %s",
	       from_snap ? "snapshot" : "an empty engine");
	if (from_snap)
		printf(" seq %" PRIu64, r->base_seq);
	printf("; %" PRIu32 " segment%s; %" PRIu32 " snapshot%s", d->seg_count,
	       d->seg_count == 1 ? "" : "s", d->snap_count, d->snap_count == 1 ? "" : "s");
	if (d->snap_count)
		printf(" (%" PRIu32 " equal to the rebuilt state, %d the starting point, %" PRIu32
		       " older: valid, not compared)",
		       r->snaps_checked, from_snap, r->snaps_older);
	putchar('\n');
}

static void print_failed(const replay_report *r)
{
	for (uint32_t i = 0; i < r->problem_count; i++) {
		const replay_problem *p = &r->problems[i];
		printf("shard %" PRIu32 ": FAILED: %s", r->shard, p->kind);
		if (p->seq)
			printf(" at seq %" PRIu64, p->seq);
		if (p->file[0])
			printf(" in %s", p->file);
		if (p->has_offset)
			printf(" offset %" PRIu64, p->offset);
		printf(": %s\n", p->message);
	}
	if (r->records)
		printf("shard %" PRIu32 ": %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
		       ") re-executed before the first failure\n",
		       r->shard, r->records, r->first_seq, r->last_seq);
}

/* Verifies one shard into *r. Returns its exit code. */
static int verify_shard(const replay_opts *o, uint32_t shard, replay_shard_dir *d, replay_report *r)
{
	char err[PATH_MAX + 256];
	if (replay_dir_scan(o->dir, shard, d, err, sizeof err) < 0) {
		memset(d, 0, sizeof *d); /* printed as no segments, no snapshots */
		r->shard = shard;
		r->base = "none";
		replay_report_problem(r, "io", 0, "", 0, 0, 1, "%s", err);
	} else {
		rebuild b = {.o = o, .d = d, .stop_seq = UINT64_MAX, .check_snaps = 1};
		rebuild_run(&b, r);
		engine_free(b.e);
	}
	return replay_report_exit(r);
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	int code = REPLAY_EXIT_OK;
	int all_ok = 1;
	if (o->json)
		fputs("{\"shards\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_report *r = calloc(1, sizeof *r);
		if (!r) {
			replay_err("out of memory");
			return REPLAY_EXIT_IO;
		}
		replay_shard_dir d;
		int c = verify_shard(o, sl->ids[k], &d, r);
		code = c > code ? c : code;
		all_ok &= c == REPLAY_EXIT_OK;
		if (o->json) {
			print_json(r, &d, k == 0, c == REPLAY_EXIT_OK);
		} else {
			for (uint32_t i = 0; i < r->note_count; i++)
				printf("shard %" PRIu32 ": note: %s\n", r->shard, r->notes[i]);
			if (c == REPLAY_EXIT_OK)
				print_ok(r, &d);
			else
				print_failed(r);
		}
		replay_report_to_stderr(r);
		replay_dir_free(&d);
		free(r);
	}
	if (o->json)
		printf("],\"ok\":%s}\n", all_ok ? "true" : "false");
	return code;
}

const replay_cmd cmd_verify = {
        .name = "verify",
        .usage = usage,
        .options = REPLAY_OPT_ALLOW_TORN | REPLAY_OPT_CAPACITY,
        .check = NULL,
        .run = run,
};
