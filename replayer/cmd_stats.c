/*
 * cmd_stats.c — `boxoffice-replay stats`: reads each shard's journal once
 * (decoding, not re-executing) and prints what it holds: records and their
 * seq range, commands by op and by status, ticks, bytes, time span and
 * rate, segments and snapshots; then the sum over shards. Seqs are per
 * shard (each numbers its records from 1), so the sum has no seq range.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/names.h"
#include "base/seatmap.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_fmt.h"
#include "replayer/replay_progress.h"
#include "replayer/replay_read.h"
#include "shard/entry.h"

static const char usage[] =
        "Usage: " REPLAY_PROG " stats DIR [--shard N] [--json] [--allow-torn-tail]\n"
        "\n"
        "Per shard: records (first..last seq), commands by op and by status, ticks,\n"
        "bytes (segment files, records, payloads), first and last timestamp, time\n"
        "span, average rate (records per second over the span), segments, snapshots\n"
        "(and their seqs). With more than one shard, then the total: the same sums,\n"
        "without seqs (each shard numbers its own records from 1).\n"
        "--json prints one object: {\"shards\":[{...}],\"total\":{...}} with the keys\n"
        "records, commands, ticks, by_op{}, by_status{}, segments, segment_bytes,\n"
        "record_bytes, payload_bytes, first_ts_ms, last_ts_ms, first_time,\n"
        "last_time, span_s, rate_per_s, snapshots, torn_tail_bytes; and per shard\n"
        "also shard, first_seq, last_seq, snapshot_seqs[], error (null or a\n"
        "message).\n"
        "\n"
        "Exit: 0 ok, 1 corruption, a torn tail (unless --allow-torn-tail) or an\n"
        "undecodable record (counts cover the records before it), 2 usage, 3 I/O or\n"
        "environment.\n";

/* Bytes a record takes in a segment: its 48-byte header and the payload,
 * padded to 8 (journal.c's record layout). */
#define RECORD_BYTES(payload_len) ((48u + (uint64_t)(payload_len) + 7u) & ~(uint64_t)7u)

typedef struct stats {
	uint32_t shard;
	uint64_t records, commands, ticks, first_seq, last_seq;
	uint64_t by_op[BO_OP_COUNT];
	uint64_t by_status[BO_STATUS_COUNT];
	uint64_t seg_bytes, rec_bytes, payload_bytes, torn_bytes;
	int64_t first_ts, last_ts;
	uint32_t segments, snapshots;
	char error[PATH_MAX + 512];
} stats;

/* Adds shard s into the total t. Seqs are not added: they are per shard. */
static void stats_add(stats *t, const stats *s)
{
	if (s->records) {
		if (!t->records || s->first_ts < t->first_ts)
			t->first_ts = s->first_ts;
		if (!t->records || s->last_ts > t->last_ts)
			t->last_ts = s->last_ts;
	}
	t->records += s->records;
	t->commands += s->commands;
	t->ticks += s->ticks;
	for (int i = 0; i < BO_OP_COUNT; i++)
		t->by_op[i] += s->by_op[i];
	for (int i = 0; i < BO_STATUS_COUNT; i++)
		t->by_status[i] += s->by_status[i];
	t->seg_bytes += s->seg_bytes;
	t->rec_bytes += s->rec_bytes;
	t->payload_bytes += s->payload_bytes;
	t->torn_bytes += s->torn_bytes;
	t->segments += s->segments;
	t->snapshots += s->snapshots;
}

static double stats_span_s(const stats *s)
{
	return s->records ? (double)(s->last_ts - s->first_ts) / 1000.0 : 0.0;
}

static double stats_rate(const stats *s)
{
	double span = stats_span_s(s);
	return span > 0 ? (double)s->records / span : 0.0;
}

/* Counts one record. Returns 0, or the exit code of a payload that does
 * not decode (s->error says where). */
static int stats_record(stats *s, const journal_record *rec)
{
	entry en;
	bo_seatmap *map = NULL;
	int dr = entry_decode(rec->payload, rec->payload_len, &en, &map);
	bo_seatmap_free(map);
	if (dr < 0) {
		snprintf(s->error, sizeof s->error,
		         "seq %" PRIu64 " in %s offset %" PRIu64 ": payload does not decode",
		         rec->seq, rec->file, rec->offset);
		replay_err("shard %" PRIu32 ": malformed at %s", s->shard, s->error);
		return dr == -ENOMEM ? REPLAY_EXIT_IO : REPLAY_EXIT_FAILED;
	}
	if (!s->records) {
		s->first_seq = rec->seq;
		s->first_ts = rec->timestamp_ms;
	}
	s->records++;
	s->last_seq = rec->seq;
	s->last_ts = rec->timestamp_ms;
	s->payload_bytes += rec->payload_len;
	s->rec_bytes += RECORD_BYTES(rec->payload_len);
	if (en.kind == ENTRY_TICK) {
		s->ticks++;
	} else if (en.kind == ENTRY_COMMAND) { /* EPOCH records: only in records */
		s->commands++;
		if (en.cmd.op < BO_OP_COUNT)
			s->by_op[en.cmd.op]++;
		if (en.res.status < BO_STATUS_COUNT)
			s->by_status[en.res.status]++;
	}
	return 0;
}

/* Reads shard d into s. Returns its exit code. */
static int stats_shard(const replay_opts *o, const replay_shard_dir *d, stats *s)
{
	s->segments = d->seg_count;
	s->snapshots = d->snap_count;
	s->seg_bytes = d->seg_bytes;
	journal_reader *rd;
	if (replay_read_open(o, d, 0, &rd) < 0) {
		snprintf(s->error, sizeof s->error, "cannot open the journal of shard %" PRIu32,
		         d->shard);
		return REPLAY_EXIT_IO;
	}
	replay_progress pg;
	replay_progress_begin(&pg, o->no_progress, d, 0);
	journal_record rec;
	int rc, c = REPLAY_EXIT_OK;
	while ((rc = journal_reader_next(rd, &rec)) == 1) {
		replay_progress_tick(&pg, &rec);
		c = stats_record(s, &rec);
		if (c != REPLAY_EXIT_OK)
			break;
	}
	replay_progress_end(&pg);
	if (c == REPLAY_EXIT_OK && rc <= 0) {
		c = replay_read_end(o, rd, rc, d->shard, &s->torn_bytes);
		if (rc < 0)
			snprintf(s->error, sizeof s->error, "%s", journal_reader_error(rd));
	}
	journal_reader_close(rd);
	return c;
}

/* Writes s as a JSON object; d (NULL: none) lists the snapshots. The total
 * has no shard, seqs, snapshot seqs or error. */
static void stats_json(const stats *s, const replay_shard_dir *d, int total)
{
	putchar('{');
	if (!total)
		printf("\"shard\":%" PRIu32 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",",
		       s->shard, s->first_seq, s->last_seq);
	printf("\"records\":%" PRIu64 ",\"commands\":%" PRIu64 ",\"ticks\":%" PRIu64 ",\"by_op\":{",
	       s->records, s->commands, s->ticks);
	int first = 1;
	for (int i = 1; i < BO_OP_COUNT; i++) {
		if (!bo_op_mutates(i))
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",", bo_op_str(i), s->by_op[i]);
		first = 0;
	}
	fputs("},\"by_status\":{", stdout);
	for (int i = 0; i < BO_STATUS_COUNT; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", bo_status_str(i), s->by_status[i]);
	printf("},\"segments\":%" PRIu32 ",\"segment_bytes\":%" PRIu64 ",\"record_bytes\":%" PRIu64
	       ",\"payload_bytes\":%" PRIu64,
	       s->segments, s->seg_bytes, s->rec_bytes, s->payload_bytes);
	if (s->records) {
		char t0[REPLAY_FMT_TIME_LEN], t1[REPLAY_FMT_TIME_LEN];
		replay_fmt_time(s->first_ts, t0, sizeof t0);
		replay_fmt_time(s->last_ts, t1, sizeof t1);
		printf(",\"first_ts_ms\":%" PRId64 ",\"last_ts_ms\":%" PRId64
		       ",\"first_time\":\"%s\",\"last_time\":\"%s\"",
		       s->first_ts, s->last_ts, t0, t1);
	} else {
		fputs(",\"first_ts_ms\":null,\"last_ts_ms\":null,\"first_time\":null,\"last_time\":null",
		      stdout);
	}
	printf(",\"span_s\":%.3f,\"rate_per_s\":%.1f,\"snapshots\":%" PRIu32
	       ",\"torn_tail_bytes\":%" PRIu64,
	       stats_span_s(s), stats_rate(s), s->snapshots, s->torn_bytes);
	if (!total) {
		fputs(",\"snapshot_seqs\":[", stdout);
		for (uint32_t i = 0; d && i < d->snap_count; i++)
			printf("%s%" PRIu64, i ? "," : "", d->snaps[i].seq);
		fputs("],\"error\":", stdout);
		if (s->error[0])
			bo_json_cstr(stdout, s->error);
		else
			fputs("null", stdout);
	}
	putchar('}');
}

/* Writes s for people under `title`; d (NULL: none) lists the snapshots.
 * total: the sum over shards, whose seqs mean nothing (see the top). */
static void stats_human(const stats *s, const replay_shard_dir *d, const char *title, int total)
{
	printf("%s\n", title);
	if (s->records && !total)
		printf("  %-16s %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n", "records",
		       s->records, s->first_seq, s->last_seq);
	else
		printf("  %-16s %" PRIu64 "\n", "records", s->records);
	printf("  %-16s %" PRIu64 "\n  %-16s %" PRIu64 "\n", "commands", s->commands, "ticks",
	       s->ticks);
	for (int i = 1; i < BO_OP_COUNT; i++)
		if (s->by_op[i])
			printf("    %-14s %" PRIu64 "\n", bo_op_str(i), s->by_op[i]);
	printf("  %-16s\n", "by status");
	for (int i = 0; i < BO_STATUS_COUNT; i++)
		if (s->by_status[i])
			printf("    %-14s %" PRIu64 "\n", bo_status_str(i), s->by_status[i]);
	if (s->records) {
		char t0[REPLAY_FMT_TIME_LEN], t1[REPLAY_FMT_TIME_LEN];
		replay_fmt_time(s->first_ts, t0, sizeof t0);
		replay_fmt_time(s->last_ts, t1, sizeof t1);
		printf("  %-16s %s\n  %-16s %s\n", "first", t0, "last", t1);
	}
	printf("  %-16s %.3f s\n  %-16s %.1f records/s\n", "span", stats_span_s(s), "rate",
	       stats_rate(s));
	printf("  %-16s %" PRIu32 " (%" PRIu64 " bytes on disk)\n", "segments", s->segments,
	       s->seg_bytes);
	printf("  %-16s %" PRIu64 " (payload %" PRIu64 ")\n", "record bytes", s->rec_bytes,
	       s->payload_bytes);
	printf("  %-16s %" PRIu32, "snapshots", s->snapshots);
	if (d && d->snap_count) {
		fputs(" (seq", stdout);
		for (uint32_t i = 0; i < d->snap_count; i++)
			printf(" %" PRIu64, d->snaps[i].seq);
		putchar(')');
	}
	putchar('\n');
	if (s->torn_bytes)
		printf("  %-16s %" PRIu64 " bytes\n", "torn tail", s->torn_bytes);
	if (s->error[0])
		printf("  %-16s %s\n", "error", s->error);
}

/* Reads and prints shard `id`, adding it into *total. Returns its exit
 * code. */
static int one_shard(const replay_opts *o, uint32_t id, int first, stats *total)
{
	stats *s = calloc(1, sizeof *s);
	if (!s) {
		replay_err("out of memory");
		return -1;
	}
	s->shard = id;
	replay_shard_dir d;
	char err[PATH_MAX + 256];
	int have_dir = replay_dir_scan(o->dir, id, &d, err, sizeof err) == 0;
	int c;
	if (!have_dir) {
		snprintf(s->error, sizeof s->error, "%s", err);
		replay_err("%s", err);
		c = REPLAY_EXIT_IO;
	} else {
		c = stats_shard(o, &d, s);
	}
	stats_add(total, s);
	if (o->json) {
		if (!first)
			putchar(',');
		stats_json(s, have_dir ? &d : NULL, 0);
	} else {
		char title[64];
		snprintf(title, sizeof title, "shard %" PRIu32, s->shard);
		stats_human(s, have_dir ? &d : NULL, title, 0);
	}
	if (have_dir)
		replay_dir_free(&d);
	free(s);
	return c;
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	int code = REPLAY_EXIT_OK;
	stats total;
	memset(&total, 0, sizeof total);
	if (o->json)
		fputs("{\"shards\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		int c = one_shard(o, sl->ids[k], k == 0, &total);
		if (c < 0)
			return REPLAY_EXIT_IO; /* out of memory: nothing more is printed */
		code = c > code ? c : code;
	}
	if (o->json) {
		fputs("],\"total\":", stdout);
		stats_json(&total, NULL, 1);
		fputs("}\n", stdout);
	} else if (sl->count > 1) {
		stats_human(&total, NULL, "total", 1);
	}
	return code;
}

const replay_cmd cmd_stats = {
        .name = "stats",
        .usage = usage,
        .options = REPLAY_OPT_ALLOW_TORN,
        .check = NULL,
        .run = run,
};
