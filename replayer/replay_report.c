/*
 * replay_report.c — collecting and printing what a rebuild found (see
 * replay_report.h).
 */
#include "replay_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "replayer/replay_cli.h"

replay_problem *replay_report_problem(replay_report *r, const char *kind, uint64_t seq,
                                      const char *file, uint64_t offset, int has_offset, int io,
                                      const char *fmt, ...)
{
	if (r->problem_count == REPLAY_PROBLEMS_MAX)
		return NULL;
	replay_problem *p = &r->problems[r->problem_count++];
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->seq = seq;
	snprintf(p->file, sizeof p->file, "%s", file ? file : "");
	p->offset = offset;
	p->has_offset = has_offset;
	p->io = io;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof p->message, fmt, ap);
	va_end(ap);
	return p;
}

void replay_report_note(replay_report *r, const char *fmt, ...)
{
	if (r->note_count == REPLAY_NOTES_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->notes[r->note_count++], sizeof r->notes[0], fmt, ap);
	va_end(ap);
}

void replay_report_reader(replay_report *r, const journal_reader *rd, int rc, uint64_t expected_seq,
                          const char *last_file)
{
	const char *msg = journal_reader_error(rd);
	journal_error_at at;
	(void)journal_reader_error_at(rd, &at); /* cleared when it has no place to give */
	const char *file = at.file[0] ? at.file : last_file;
	uint64_t seq = at.seq ? at.seq : expected_seq;
	if (rc == -EBADMSG)
		replay_report_problem(r, "corruption", seq, file, at.offset, at.has_offset, 0, "%s",
		                      msg[0] ? msg : "corrupt journal");
	else
		replay_report_problem(r, "io", seq, file, at.offset, at.has_offset, 1, "%s",
		                      msg[0] ? msg : strerror(-rc));
}

int replay_report_exit(const replay_report *r)
{
	int code = REPLAY_EXIT_OK;
	for (uint32_t i = 0; i < r->problem_count; i++) {
		int c = r->problems[i].io ? REPLAY_EXIT_IO : REPLAY_EXIT_FAILED;
		code = c > code ? c : code;
	}
	return code;
}

void replay_report_to_stderr(const replay_report *r)
{
	for (uint32_t i = 0; i < r->problem_count; i++) {
		const replay_problem *p = &r->problems[i];
		if (p->seq)
			replay_err("shard %" PRIu32 ": %s at seq %" PRIu64 ": %s", r->shard,
			           p->kind, p->seq, p->message);
		else
			replay_err("shard %" PRIu32 ": %s: %s", r->shard, p->kind, p->message);
	}
}

void replay_report_problem_json(const replay_problem *p)
{
	printf("{\"kind\":\"%s\",\"seq\":%" PRIu64 ",\"file\":", p->kind, p->seq);
	bo_json_cstr(stdout, p->file);
	if (p->has_offset)
		printf(",\"offset\":%" PRIu64, p->offset);
	else
		fputs(",\"offset\":null", stdout);
	fputs(",\"message\":", stdout);
	bo_json_cstr(stdout, p->message);
	putchar('}');
}
