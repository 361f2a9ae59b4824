/*
 * cmd_dump.c — `boxoffice-replay dump`: prints one line per journal record
 * (human key=value, or JSON lines; formats in replay_fmt.h), in seq order
 * per shard, optionally limited to a seq range or one event. It reads and
 * decodes records but re-executes nothing (that is verify).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "base/seatmap.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_fmt.h"
#include "replayer/replay_progress.h"
#include "replayer/replay_read.h"
#include "shard/entry.h"

static const char usage[] =
        "Usage: " REPLAY_PROG
        " dump DIR [--shard N] [--from SEQ] [--to SEQ] [--event ID] [--json]\n"
        "                      [--allow-torn-tail]\n"
        "\n"
        "Prints one line per journal record, in seq order per shard:\n"
        "  shard=0 seq=12 time=2026-11-28T01:52:03.123Z kind=command op=hold_best\n"
        "  client=5 request=17 event=7 category=1 qty=2 ttl_ms=60000 -> ok\n"
        "  claim=0x100000003 seats=10,11 qty=2 expires=2026-11-28T01:53:03.123Z\n"
        "(one line). Times are UTC. kind=tick is an idle advance of the clock that\n"
        "expired holds or aged out idempotency entries. The command's essentials per\n"
        "op: seats, category/qty, pool/qty, claim, ttl_ms, payref; the map's size for\n"
        "create_event; operator=true for an operator's release/cancel, any_client=true\n"
        "for a claim op journaled before claims were owned (any client could touch\n"
        "any claim then). The result: status/detail, claim, seats, qty, expiry;\n"
        "`replayed` when it was answered from the idempotency window.\n"
        "\n"
        "  --from SEQ, --to SEQ   only records with SEQ in [from, to]\n"
        "  --event ID             only commands of event ID (ticks are left out: they\n"
        "                         name no event)\n"
        "  --json                 JSON lines: {\"shard\",\"seq\",\"ts_ms\",\"time\",\"kind\",\n"
        "                         \"op\",\"client\",\"request\",\"event\",\"cmd\":{...},\n"
        "                         \"result\":{\"status\",\"detail\",\"claim\",\"seats\",\"qty\",\n"
        "                         ...},\"file\",\"offset\",\"payload_bytes\"}; ids are\n"
        "                         unsigned 64-bit integers.\n"
        "\n"
        "  --allow-torn-tail      bytes after the last whole record (a torn tail,\n"
        "                         normal after a crash until the shard restarts and\n"
        "                         cuts it) are a warning, not a failure\n"
        "\n"
        "Does not re-execute anything (use verify). Exit: 0 ok, 1 corruption, a torn\n"
        "tail or an undecodable record (reported on stderr after the lines before\n"
        "it), 2 usage, 3 I/O or environment.\n";

/* Prints record rec unless filtered out. Returns REPLAY_EXIT_OK, or the
 * exit code of a payload that does not decode (after an error line). */
static int dump_record(const replay_opts *o, uint32_t shard, const journal_record *rec)
{
	entry en;
	bo_seatmap *map = NULL;
	int dr = entry_decode(rec->payload, rec->payload_len, &en, &map);
	if (dr == -ENOMEM) {
		replay_err("shard %" PRIu32 ": out of memory decoding seq %" PRIu64, shard,
		           rec->seq);
		return REPLAY_EXIT_IO;
	}
	if (dr < 0) {
		replay_err("shard %" PRIu32 ": malformed at seq %" PRIu64 " in %s offset %" PRIu64
		           ": payload of %" PRIu32 " bytes does not decode",
		           shard, rec->seq, rec->file, rec->offset, rec->payload_len);
		return REPLAY_EXIT_FAILED;
	}
	if (!o->have_event || (en.kind == ENTRY_COMMAND && en.cmd.event_id == o->event))
		replay_fmt_record(stdout, shard, rec, &en, map, o->json);
	bo_seatmap_free(map);
	return REPLAY_EXIT_OK;
}

/* Dumps shard d. Returns its exit code. */
static int dump_shard(const replay_opts *o, const replay_shard_dir *d)
{
	uint64_t after = o->have_from && o->from > 0 ? o->from - 1 : 0;
	uint64_t first_seg = d->seg_count ? d->segs[0].first_seq : 1;
	if (first_seg > 1 && after + 1 < first_seg)
		replay_err("shard %" PRIu32 ": note: records 1..%" PRIu64
		           " were pruned; the journal starts at seq %" PRIu64,
		           d->shard, first_seg - 1, first_seg);
	journal_reader *rd;
	if (replay_read_open(o, d, after, &rd) < 0)
		return REPLAY_EXIT_IO;
	replay_progress pg;
	replay_progress_begin(&pg, o->no_progress, d, 1);
	journal_record rec;
	int rc, c = REPLAY_EXIT_OK;
	while ((rc = journal_reader_next(rd, &rec)) == 1) {
		if (o->have_to && rec.seq > o->to)
			break;
		replay_progress_tick(&pg, &rec);
		c = dump_record(o, d->shard, &rec);
		if (c != REPLAY_EXIT_OK)
			break;
	}
	replay_progress_end(&pg);
	fflush(stdout); /* the records before an error line come first */
	if (c == REPLAY_EXIT_OK && rc <= 0)
		c = replay_read_end(o, rd, rc, d->shard, NULL);
	journal_reader_close(rd);
	return c;
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	int code = REPLAY_EXIT_OK;
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		if (replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) < 0) {
			replay_err("%s", err);
			code = REPLAY_EXIT_IO;
			continue;
		}
		int c = dump_shard(o, &d);
		code = c > code ? c : code;
		replay_dir_free(&d);
	}
	return code;
}

const replay_cmd cmd_dump = {
        .name = "dump",
        .usage = usage,
        .options = REPLAY_OPT_ALLOW_TORN | REPLAY_OPT_RANGE | REPLAY_OPT_EVENT,
        .check = NULL,
        .run = run,
};
