/*
 * replay_main.c — boxoffice-replay, the operator's tool for journals:
 * verify, dump, stats, snapshot, repair. The --help texts below are the
 * user documentation; this comment is the design.
 *
 * ==== WHAT "VERIFY" PROVES ==================================================
 *
 * For each shard directory DIR/shard-NNNN:
 *  1. Integrity: the journal reader checks every record's checksum, the hash
 *     chain and sequence continuity (journal.c, "validity rule").
 *  2. Determinism: every record is re-executed (replay_apply, the same code
 *     path as recovery) against an engine that starts empty at seq 0 — or,
 *     when old segments were pruned so seq 1 is gone, against the OLDEST
 *     valid snapshot whose seq reaches the first remaining segment (the
 *     oldest, not the newest, so that as much journal as possible is
 *     re-executed and every newer snapshot can be compared) — and each
 *     re-executed result must equal the recorded one.
 *  3. Snapshots: when the rebuild passes the seq of a snapshot file, the
 *     file must load (checksums, invariants) and equal the rebuilt state:
 *     same engine_digest() and the same bytes as snapshot_encode() of the
 *     rebuilt engine (the encoding is canonical). A snapshot newer than the
 *     journal's end means durable records were lost.
 *  4. The end: a torn tail (bytes after the last whole record, which the
 *     next start of the shard would cut) fails verification unless
 *     --allow-torn-tail: the journal cannot tell a torn final write from
 *     damage to the final batch (journal.c), so the operator decides.
 * The first failure of each shard is reported with file, offset and seq;
 * re-execution stops there (the engine can no longer be trusted).
 *
 * The engine's capacity (engine_config) is not in the journal, yet results
 * depend on it (LIMIT answers). It comes from, in order: the command line
 * (--seats-max ...), the newest snapshot's header, engine_config_default().
 *
 * Exit codes: 0 ok, 1 verification failed / corruption found, 2 usage,
 * 3 I/O or environment. Output: results on stdout (one JSON object or JSON
 * lines with --json), one line per error on stderr, a progress line on
 * stderr only when it is a terminal and the work has run for over 1 s.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/snapshot.h"
#include "shard/snapfile.h"
#include "shard/entry.h"
#include "journal/journal.h"
#include "shard/apply.h"
#include "replayer/replay_dir.h"
#include "replayer/replay_fmt.h"

#ifndef BO_VERSION
#define BO_VERSION "0.1.0-dev"
#endif

#define PROG "boxoffice-replay"

enum {
	EXIT_OKAY = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_IO = 3
};

/* Problems kept per shard: the first is what matters; a few more give
 * context (say, a bad snapshot and then a corrupt record). */
#define PROBLEMS_MAX 8u

/* The progress line appears after this long, and is redrawn at most this
 * often: short runs stay silent, long ones do not flood the terminal. */
#define PROGRESS_DELAY_S 1.0
#define PROGRESS_EVERY_S 0.2

/* Largest snapshot file read into memory: an engine at its maximum
 * capacity (BO_SEATS_PER_SHARD_MAX seats ...) stays far below this. */
#define SNAPSHOT_BYTES_MAX (16ull << 30)

/* ==== Options =============================================================== */

typedef struct opts {
	const char *cmd; /* subcommand */
	const char *dir; /* data directory */
	int json;
	int no_progress;
	int allow_torn_tail;
	int have_shard;
	uint32_t shard;
	int have_from, have_to, have_event, have_at, have_trunc;
	uint64_t from, to, event, at, trunc;
	const char *backup;
	/* engine capacity overrides; 0 = not given */
	uint32_t seats_max, claims_max, idem_capacity, events_max;
} opts;

static const char *const usage_main =
        "Usage: " PROG " COMMAND DIR [OPTIONS]\n"
        "\n"
        "The operator's tool for boxoffice journals. DIR is a data directory (the\n"
        "server's data_dir) holding shard-NNNN/ subdirectories with journal segments\n"
        "(*.seg) and snapshots (snap-*.snap). It only reads, except `snapshot` (adds a\n"
        "snapshot file) and `repair` (cuts the journal). Stop the server before\n"
        "`snapshot` or `repair`: nothing locks a running shard out.\n"
        "\n"
        "Commands:\n"
        "  verify DIR     checksums, hash chain, continuity, re-execution of every\n"
        "                 record with result comparison, snapshots against the journal\n"
        "  dump DIR       one line per record (--json: JSON lines)\n"
        "  stats DIR      counts, bytes, time span, rate (--json: one object)\n"
        "  snapshot DIR   rebuild the state offline and save it as a snapshot\n"
        "  repair DIR     cut a corrupt journal at a seq, keeping a copy of what is cut\n"
        "\n"
        "Options for every command:\n"
        "  --shard N      only shard N (default: every shard of DIR)\n"
        "  --json         machine-readable output on stdout\n"
        "  --no-progress  never draw the progress line\n"
        "  --help, -h     help (also `" PROG " COMMAND --help`)\n"
        "  --version      print the version\n"
        "\n"
        "Options of some commands (see their --help): --from, --to, --event (dump);\n"
        "--at (snapshot); --truncate-at, --backup (repair); --allow-torn-tail\n"
        "(verify, dump, stats, snapshot); --seats-max, --claims-max,\n"
        "--idem-capacity, --events-max: the server's engine capacity (verify,\n"
        "snapshot).\n"
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
        "rate) is drawn on stderr only when it is a terminal and the work takes over\n"
        "a second; it never touches stdout.\n";

static const char *const usage_verify =
        "Usage: " PROG " verify DIR [--shard N] [--json] [--allow-torn-tail]\n"
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
        "--claims-max, --idem-capacity, --events-max.\n"
        "\n"
        "--json prints one object: {\"ok\":bool,\"shards\":[{\"shard\",\"ok\",\"base\",\n"
        "\"base_seq\",\"first_seq\",\"last_seq\",\"records\",\"commands\",\"ticks\",\n"
        "\"snapshots\",\"snapshots_checked\",\"snapshots_older\",\"segments\",\n"
        "\"torn_tail_bytes\",\"notes\":[...],\"problems\":[{\"kind\",\"seq\",\"file\",\n"
        "\"offset\",\"message\"}]}]}.\n"
        "Problem kinds: corruption, mismatch, malformed, torn_tail, snapshot_invalid,\n"
        "snapshot_mismatch, snapshot_beyond_end, pruned, beyond_end, io.\n"
        "\n"
        "Exit: 0 all good, 1 a problem found, 2 usage, 3 I/O or environment.\n";

static const char *const usage_dump =
        "Usage: " PROG " dump DIR [--shard N] [--from SEQ] [--to SEQ] [--event ID] [--json]\n"
        "                      [--allow-torn-tail]\n"
        "\n"
        "Prints one line per journal record, in seq order per shard:\n"
        "  shard=0 seq=12 time=2026-11-28T01:52:03.123Z kind=command op=hold_best\n"
        "  client=5 request=17 event=7 category=1 qty=2 ttl_ms=60000 -> ok\n"
        "  claim=0x100000003 seats=10,11 qty=2 expires=2026-11-28T01:53:03.123Z\n"
        "(one line). Times are UTC. kind=tick is an idle advance of the clock that\n"
        "expired holds or aged out idempotency entries. The command's essentials per\n"
        "op: seats, category/qty, pool/qty, claim, ttl_ms, payref; the map's size for\n"
        "create_event. The result: status/detail, claim, seats, qty, expiry;\n"
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

static const char *const usage_stats =
        "Usage: " PROG " stats DIR [--shard N] [--json] [--allow-torn-tail]\n"
        "\n"
        "Per shard and in total: records (first..last seq), commands by op and by\n"
        "status, ticks, bytes (segment files, records, payloads), first and last\n"
        "timestamp, time span, average rate (records per second over the span),\n"
        "segments, snapshots (and their seqs).\n"
        "--json prints one object: {\"shards\":[{...}],\"total\":{...}} with the keys\n"
        "records, first_seq, last_seq, commands, ticks, by_op{}, by_status{},\n"
        "segments, segment_bytes, record_bytes, payload_bytes, first_ts_ms,\n"
        "last_ts_ms, first_time, last_time, span_s, rate_per_s, snapshots,\n"
        "snapshot_seqs[], torn_tail_bytes, error (null or a message).\n"
        "\n"
        "Exit: 0 ok, 1 corruption, a torn tail (unless --allow-torn-tail) or an\n"
        "undecodable record (counts cover the records before it), 2 usage, 3 I/O or\n"
        "environment.\n";

static const char *const usage_snapshot =
        "Usage: " PROG " snapshot DIR [--shard N] [--at SEQ] [--json] [--allow-torn-tail]\n"
        "                          [--seats-max N] [--claims-max N] [--idem-capacity N]\n"
        "                          [--events-max N]\n"
        "\n"
        "Rebuilds a shard's state offline by re-executing its journal (with result\n"
        "verification, as verify does, from an empty engine or the oldest usable\n"
        "snapshot when the journal was pruned) up to SEQ (default: the last record),\n"
        "and saves it as DIR/shard-NNNN/snap-<seq>.snap (written to a temporary file,\n"
        "fsynced, renamed: an existing snapshot of that seq is replaced atomically).\n"
        "Prints the path, seq and size of each file written. A shard with an empty\n"
        "journal gets no snapshot (said on stderr). Engine capacity as for verify.\n"
        "The server must not be running.\n"
        "\n"
        "Exit: 0 ok, 1 the journal is corrupt, has a torn tail (unless\n"
        "--allow-torn-tail) or does not re-execute, or SEQ is not in it, 2 usage,\n"
        "3 I/O or environment.\n";

static const char *const usage_repair =
        "Usage: " PROG " repair DIR --shard N --truncate-at SEQ [--backup DIR2] [--json]\n"
        "\n"
        "The explicit operator action for a corrupt journal: cuts shard N's journal so\n"
        "that SEQ - 1 is its last record (records SEQ and later are removed), after\n"
        "copying every byte it cuts into a backup directory:\n"
        "  default DIR/shard-NNNN/repair-<UTC time>/ (created), or DIR2 (created when\n"
        "  missing; must not be the shard directory).\n"
        "Snapshots of seq >= SEQ (they include cut records) are moved into the backup\n"
        "too. Prints what was cut and where the copy is. Use `verify` first: its\n"
        "report names the seq of the first bad record; cutting there keeps everything\n"
        "before it. Never asks anything (scripts run it). The server must not be\n"
        "running. Refuses without --shard and --truncate-at.\n"
        "\n"
        "Exit: 0 cut (or nothing to cut), 1 the cut failed part-way (the message\n"
        "says how far; the backup is kept), 2 usage (also: SEQ outside the readable\n"
        "journal, backup directory unusable), 3 I/O or environment.\n";

static void err_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err_line(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see `" PROG "%s%s --help`)\n", cmd ? " " : "", cmd ? cmd : "");
	va_end(ap);
	return EXIT_USAGE;
}

/* A whole decimal number: digits only (no sign, no spaces), no overflow. */
static int parse_u64(const char *s, uint64_t *v)
{
	if (!s || !*s)
		return 0;
	uint64_t x = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		uint64_t d = (uint64_t)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ==== Progress ============================================================== */

typedef struct progress {
	int enabled; /* stderr is a terminal (and stdout is not, for dump) */
	int drawn;   /* something is on the line: clear it at the end */
	uint32_t shard;
	double t0, last_s;
	uint64_t done; /* records so far */
	uint64_t
	        total_bytes; /* segment bytes in use (last segment: up to its last non-zero byte) */
	uint64_t *before;    /* [seg_count]: bytes of the segments before segment i */
	const replay_shard_dir *d;
	const char *cur_file; /* last file seen (pointer identity is enough to skip lookups) */
	char cur_name[PATH_MAX];
	uint64_t cur_before;
} progress;

static void progress_begin(progress *p, const opts *o, const replay_shard_dir *d, int stdout_too)
{
	memset(p, 0, sizeof *p);
	p->enabled =
	        !o->no_progress && isatty(STDERR_FILENO) && !(stdout_too && isatty(STDOUT_FILENO));
	p->shard = d->shard;
	p->d = d;
	p->t0 = now_s();
	if (!p->enabled || d->seg_count == 0)
		return;
	p->before = calloc(d->seg_count, sizeof *p->before);
	if (!p->before) {
		p->enabled = 0;
		return;
	}
	uint64_t sum = 0;
	for (uint32_t i = 0; i < d->seg_count; i++) {
		p->before[i] = sum;
		sum += i + 1 < d->seg_count ? d->segs[i].bytes : replay_dir_seg_used(d, i);
	}
	p->total_bytes = sum;
}

static void progress_tick(progress *p, const journal_record *rec)
{
	p->done++;
	/* Looking at the clock every record would cost more than the record. */
	if (!p->enabled || (p->done & 255u) != 0)
		return;
	double t = now_s();
	if (t - p->t0 < PROGRESS_DELAY_S || t - p->last_s < PROGRESS_EVERY_S)
		return;
	p->last_s = t;
	if (rec->file && strcmp(rec->file, p->cur_name) != 0) {
		snprintf(p->cur_name, sizeof p->cur_name, "%s", rec->file);
		int64_t i = replay_dir_seg_index(p->d, rec->file);
		p->cur_before = i >= 0 ? p->before[i] : p->cur_before;
	}
	uint64_t pos = p->cur_before + rec->offset;
	uint64_t est = pos > 0 && p->total_bytes > pos
	                       ? (uint64_t)((double)p->done * (double)p->total_bytes / (double)pos)
	                       : p->done;
	double pct = est ? 100.0 * (double)p->done / (double)est : 100.0;
	fprintf(stderr,
	        "\r\033[Kshard %" PRIu32 ": %" PRIu64 " / ~%" PRIu64
	        " records (%.0f%%), %.0f records/s",
	        p->shard, p->done, est, pct, (double)p->done / (t - p->t0));
	fflush(stderr);
	p->drawn = 1;
}

static void progress_end(progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	free(p->before);
	p->before = NULL;
}

/* ==== Problems ============================================================== */

typedef struct problem {
	const char *kind; /* corruption, mismatch, ... (static string) */
	uint64_t seq;     /* 0: not about one record */
	char file[PATH_MAX];
	uint64_t offset;
	int has_offset;
	char message[JOURNAL_ERR_LEN + 512];
	int io; /* an I/O or environment error (exit 3), not a finding */
} problem;

typedef struct shard_report {
	uint32_t shard;
	const char *base; /* "empty" or "snapshot" */
	uint64_t base_seq;
	uint64_t first_seq, last_seq; /* re-executed: first_seq..last_seq (0, 0: none) */
	int64_t last_ts_ms;
	uint64_t records, commands, ticks;
	uint32_t snaps_checked; /* compared equal with the rebuilt state */
	uint32_t snaps_older;   /* older than the base: loaded (valid) but not compared */
	uint64_t torn_bytes;
	char notes[4]
	          [JOURNAL_ERR_LEN + 256]; /* informational lines (torn tail allowed, pruned...) */
	uint32_t note_count;
	problem problems[PROBLEMS_MAX];
	uint32_t problem_count;
} shard_report;

static problem *add_problem(shard_report *r, const char *kind, uint64_t seq, const char *file,
                            uint64_t offset, int has_offset, int io, const char *fmt, ...)
        __attribute__((format(printf, 8, 9)));
static problem *add_problem(shard_report *r, const char *kind, uint64_t seq, const char *file,
                            uint64_t offset, int has_offset, int io, const char *fmt, ...)
{
	if (r->problem_count == PROBLEMS_MAX)
		return NULL;
	problem *p = &r->problems[r->problem_count++];
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

static void add_note(shard_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(shard_report *r, const char *fmt, ...)
{
	if (r->note_count == sizeof r->notes / sizeof r->notes[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->notes[r->note_count++], sizeof r->notes[0], fmt, ap);
	va_end(ap);
}

/* The reader's corruption messages read "... at FILE offset N (expected seq
 * S) ...": pick out FILE and N for the structured report. The message itself
 * is always reported whole, so a format change only loses the structure. */
static void parse_reader_error(const char *msg, char *file, size_t file_len, uint64_t *offset,
                               int *has_offset)
{
	*has_offset = 0;
	const char *off = strstr(msg, " offset ");
	if (!off)
		return;
	const char *at = NULL;
	for (const char *p = msg; p < off; p++)
		if (strncmp(p, " at ", 4) == 0)
			at = p + 4;
	if (!at)
		return;
	size_t n = (size_t)(off - at);
	if (n + 1 > file_len)
		return;
	memcpy(file, at, n);
	file[n] = '\0';
	char *end;
	errno = 0;
	unsigned long long v = strtoull(off + 8, &end, 10);
	if (end == off + 8 || errno != 0)
		return;
	*offset = (uint64_t)v;
	*has_offset = 1;
}

/* The reader stopped with rc < 0: corruption (-EBADMSG) or an I/O error. */
static void reader_problem(shard_report *r, journal_reader *rd, int rc, uint64_t expected_seq,
                           const char *last_file)
{
	const char *msg = journal_reader_error(rd);
	if (rc == -EBADMSG) {
		problem *p = add_problem(r, "corruption", expected_seq, last_file, 0, 0, 0, "%s",
		                         msg[0] ? msg : "corrupt journal");
		if (p)
			parse_reader_error(msg, p->file, sizeof p->file, &p->offset,
			                   &p->has_offset);
	} else {
		add_problem(r, "io", expected_seq, last_file, 0, 0, 1, "%s",
		            msg[0] ? msg : strerror(-rc));
	}
}

/* ==== Shard selection and engine capacity =================================== */

typedef struct shard_list {
	uint32_t *ids;
	uint32_t count;
} shard_list;

/* Resolves which shards to work on. Returns 0, or an exit code. */
static int select_shards(const opts *o, shard_list *out)
{
	char err[PATH_MAX + 256];
	struct stat st;
	if (stat(o->dir, &st) != 0) {
		err_line("%s: cannot open data directory: %s", o->dir, strerror(errno));
		return EXIT_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		err_line(
		        "%s: not a directory (expected a data directory with shard-NNNN/ subdirectories)",
		        o->dir);
		return EXIT_IO;
	}
	int rc = replay_dir_shards(o->dir, &out->ids, &out->count, err, sizeof err);
	if (rc < 0) {
		err_line("%s", err);
		return EXIT_IO;
	}
	if (o->have_shard) {
		int found = 0;
		for (uint32_t i = 0; i < out->count; i++)
			found |= out->ids[i] == o->shard;
		free(out->ids);
		out->ids = NULL;
		out->count = 0;
		if (!found) {
			err_line("%s: no shard %" PRIu32 " here (no directory shard-%04" PRIu32 ")",
			         o->dir, o->shard, o->shard);
			return EXIT_IO;
		}
		out->ids = malloc(sizeof *out->ids);
		if (!out->ids) {
			err_line("out of memory");
			return EXIT_IO;
		}
		out->ids[0] = o->shard;
		out->count = 1;
	}
	if (out->count == 0) {
		err_line("%s: not a data directory: no shard-NNNN subdirectories", o->dir);
		return EXIT_IO;
	}
	return 0;
}

/* The capacity the server ran with (see the design comment). `source`
 * says where it came from. */
static void resolve_config(const opts *o, const replay_shard_dir *d, engine_config *cfg,
                           const char **source)
{
	engine_config_default(cfg);
	*source = "defaults";
	/* Newest first: the server's latest configuration. */
	for (uint32_t k = d->snap_count; k > 0; k--) {
		char path[REPLAY_DIR_PATH_LEN], err[SNAPSHOT_ERR_LEN];
		snapshot_info info;
		replay_dir_snap_path(d, k - 1, path, sizeof path);
		if (snapfile_peek(path, &info, err, sizeof err) == 0) {
			*cfg = info.config;
			*source = "newest snapshot";
			break;
		}
	}
	if (o->seats_max || o->claims_max || o->idem_capacity || o->events_max)
		*source = "command line";
	if (o->seats_max)
		cfg->seats_max = o->seats_max;
	if (o->claims_max)
		cfg->claims_max = o->claims_max;
	if (o->idem_capacity)
		cfg->idem_capacity = o->idem_capacity;
	if (o->events_max)
		cfg->events_max = o->events_max;
}

/* Reads a whole file. Returns 0 and a heap buffer, or -errno. */
static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if ((uint64_t)st.st_size > SNAPSHOT_BYTES_MAX) {
		close(fd);
		return -EFBIG;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, b + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			free(b);
			close(fd);
			return -e;
		}
		got += (size_t)k;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

/* Loads snapshot i of d. Returns 0 and the engine (caller frees), or
 * adds a problem and returns -1 (invalid) / -2 (I/O). */
static int load_snap(shard_report *r, const replay_shard_dir *d, uint32_t i, engine **e,
                     snapshot_info *info, uint8_t **bytes, size_t *len)
{
	char path[REPLAY_DIR_PATH_LEN], err[SNAPSHOT_ERR_LEN];
	replay_dir_snap_path(d, i, path, sizeof path);
	uint8_t *buf;
	size_t n;
	int rc = read_file(path, &buf, &n);
	if (rc < 0) {
		add_problem(r, "io", d->snaps[i].seq, path, 0, 0, 1, "%s: cannot read snapshot: %s",
		            path, strerror(-rc));
		return -2;
	}
	err[0] = '\0';
	rc = snapshot_load(buf, n, e, info, err, sizeof err);
	if (rc == -ENOMEM) {
		free(buf);
		add_problem(r, "io", d->snaps[i].seq, path, 0, 0, 1,
		            "%s: out of memory loading snapshot", path);
		return -2;
	}
	if (rc < 0) {
		free(buf);
		add_problem(r, "snapshot_invalid", d->snaps[i].seq, path, 0, 0, 0,
		            "%s: invalid snapshot: %s", path, err[0] ? err : strerror(-rc));
		return -1;
	}
	if (info->seq != d->snaps[i].seq || info->shard != d->shard) {
		engine_free(*e);
		*e = NULL;
		free(buf);
		add_problem(r, "snapshot_invalid", d->snaps[i].seq, path, 0, 0, 0,
		            "%s: header says shard %" PRIu32 " seq %" PRIu64
		            ", not what its place and name say",
		            path, info->shard, info->seq);
		return -1;
	}
	if (bytes) {
		*bytes = buf;
		*len = n;
	} else {
		free(buf);
	}
	return 0;
}

static int configs_equal(const engine_config *a, const engine_config *b)
{
	return a->seats_max == b->seats_max && a->claims_max == b->claims_max &&
	       a->idem_capacity == b->idem_capacity && a->events_max == b->events_max;
}

/* Compares snapshot i with the rebuilt engine `e` at its seq. The clock a
 * snapshot records is the engine's (the last record's timestamp, since
 * batch times never go back). Adds a problem when they differ. */
static void compare_snap(shard_report *r, const replay_shard_dir *d, uint32_t i, const engine *e,
                         const engine_config *cfg)
{
	engine *s = NULL;
	snapshot_info info;
	uint8_t *file = NULL;
	size_t file_len = 0;
	if (load_snap(r, d, i, &s, &info, &file, &file_len) != 0)
		return;
	char path[REPLAY_DIR_PATH_LEN];
	replay_dir_snap_path(d, i, path, sizeof path);
	uint64_t seq = d->snaps[i].seq;
	uint8_t *mine = NULL;
	size_t mine_len = 0;
	int64_t ts = engine_now(e);
	int rc = ts < 0 ? -EINVAL : snapshot_encode(e, d->shard, seq, ts, &mine, &mine_len);
	uint64_t ds = engine_digest(s), de = engine_digest(e);
	if (ts < 0) {
		add_problem(r, "malformed", seq, path, 0, 0, 0,
		            "%s: the journal's clock at seq %" PRIu64 " is before 1970 (%" PRId64
		            " ms): no snapshot can hold it",
		            path, seq, ts);
	} else if (rc < 0) {
		add_problem(r, "io", seq, path, 0, 0, 1, "%s: cannot encode the rebuilt state: %s",
		            path, strerror(-rc));
	} else if (!configs_equal(&info.config, cfg)) {
		add_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		            "%s: taken with engine capacity seats %" PRIu32 " claims %" PRIu32
		            " idem %" PRIu32 " events %" PRIu32 ", rebuilt with seats %" PRIu32
		            " claims %" PRIu32 " idem %" PRIu32 " events %" PRIu32
		            " (give the server's with --seats-max ...)",
		            path, info.config.seats_max, info.config.claims_max,
		            info.config.idem_capacity, info.config.events_max, cfg->seats_max,
		            cfg->claims_max, cfg->idem_capacity, cfg->events_max);
	} else if (info.seq_ts_ms != ts) {
		add_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		            "%s: snapshot clock %" PRId64 " ms, but record %" PRIu64
		            " has timestamp %" PRId64 " ms",
		            path, info.seq_ts_ms, seq, ts);
	} else if (ds != de) {
		add_problem(r, "snapshot_mismatch", seq, path, 0, 0, 0,
		            "%s: state differs from the journal rebuilt to seq %" PRIu64
		            " (digest %016" PRIx64 " in the file, %016" PRIx64 " rebuilt)",
		            path, seq, ds, de);
	} else if (mine_len != file_len || memcmp(mine, file, file_len) != 0) {
		add_problem(
		        r, "snapshot_mismatch", seq, path, 0, 0, 0,
		        "%s: digests agree but the encoding differs from the rebuilt state's (%zu vs %zu bytes)",
		        path, file_len, mine_len);
	} else {
		r->snaps_checked++;
	}
	free(mine);
	free(file);
	engine_free(s);
}

/* ==== Rebuild: the heart of verify and snapshot ============================= */

typedef struct rebuild {
	/* in */
	const opts *o;
	const replay_shard_dir *d;
	uint64_t stop_seq; /* re-execute up to here (UINT64_MAX: the end) */
	int check_snaps;   /* verify: compare snapshots on the way */
	/* out */
	engine *e; /* the rebuilt engine (caller frees), NULL on failure */
	engine_config cfg;
	const char *cfg_source;
} rebuild;

/* Picks the starting point. Returns 0 with b->e set (empty engine or a
 * loaded snapshot), or -1 with a problem added. */
static int rebuild_base(rebuild *b, shard_report *r)
{
	const replay_shard_dir *d = b->d;
	uint64_t first_seg = d->seg_count ? d->segs[0].first_seq : 1;
	resolve_config(b->o, d, &b->cfg, &b->cfg_source);
	if (first_seg <= 1) {
		int rc = engine_new(&b->cfg, &b->e);
		if (rc < 0) {
			add_problem(
			        r, "io", 0, d->path, 0, 0, rc == -ENOMEM,
			        "shard %" PRIu32 ": cannot create an engine with seats_max %" PRIu32
			        " claims_max %" PRIu32 " idem_capacity %" PRIu32
			        " events_max %" PRIu32 " (from %s): %s",
			        d->shard, b->cfg.seats_max, b->cfg.claims_max, b->cfg.idem_capacity,
			        b->cfg.events_max, b->cfg_source, strerror(-rc));
			if (rc != -ENOMEM)
				r->problems[r->problem_count - 1].io = 1;
			return -1;
		}
		r->base = "empty";
		r->base_seq = 0;
		r->last_ts_ms = 0;
		return 0;
	}
	/* Pruned: the oldest valid snapshot that reaches the first segment and
	 * is not past where we must stop. */
	for (uint32_t i = 0; i < d->snap_count; i++) {
		if (d->snaps[i].seq + 1 < first_seg || d->snaps[i].seq > b->stop_seq)
			continue;
		snapshot_info info;
		int rc = load_snap(r, d, i, &b->e, &info, NULL, NULL);
		if (rc == -2)
			return -1;
		if (rc < 0)
			continue; /* reported; try the next one */
		b->cfg = info.config;
		b->cfg_source = "base snapshot";
		r->base = "snapshot";
		r->base_seq = info.seq;
		r->last_ts_ms = info.seq_ts_ms;
		add_note(r,
		         "journal pruned: it starts at seq %" PRIu64
		         "; re-executed from snapshot %s/snap-%020" PRIu64 ".snap (seq %" PRIu64
		         ")",
		         first_seg, d->path, info.seq, info.seq);
		return 0;
	}
	char seg[REPLAY_DIR_PATH_LEN];
	replay_dir_seg_path(d, 0, seg, sizeof seg);
	add_problem(r, "pruned", first_seg - 1, seg, 0, 0, 0,
	            "%s: journal starts at seq %" PRIu64
	            " (older segments pruned) and no valid snapshot covers seq "
	            "%" PRIu64 "%s: the state before it cannot be rebuilt",
	            seg, first_seg, first_seg - 1,
	            b->stop_seq != UINT64_MAX ? " at or before the requested seq" : "");
	return -1;
}

/* Rebuilds shard d into b->e, filling r. Returns 0 when the rebuild reached
 * its end (the journal's end, or stop_seq) without a problem that stops it. */
static int rebuild_run(rebuild *b, shard_report *r)
{
	const replay_shard_dir *d = b->d;
	const opts *o = b->o;
	memset(r, 0, sizeof *r);
	r->shard = d->shard;
	r->base = "none";
	b->e = NULL;
	if (rebuild_base(b, r) != 0)
		return -1;

	char err[JOURNAL_ERR_LEN];
	journal_reader *rd = NULL;
	int rc =
	        journal_reader_open_from(o->dir, d->shard, NULL, r->base_seq, &rd, err, sizeof err);
	if (rc < 0) {
		add_problem(r, "io", 0, d->path, 0, 0, 1, "%s", err);
		goto fail;
	}
	/* Snapshots at or below the base: validated (loaded) but not compared
	 * (the journal before the base is gone or was not re-executed). */
	uint32_t si = 0;
	for (; si < d->snap_count && d->snaps[si].seq <= r->base_seq; si++) {
		if (!b->check_snaps || d->snaps[si].seq == r->base_seq)
			continue;
		/* Those that reach the first segment were tried as the base
		 * already (and reported if invalid). */
		if (strcmp(r->base, "snapshot") == 0 && d->seg_count &&
		    d->snaps[si].seq + 1 >= d->segs[0].first_seq)
			continue;
		engine *tmp = NULL;
		snapshot_info info;
		if (load_snap(r, d, si, &tmp, &info, NULL, NULL) == 0) {
			engine_free(tmp);
			r->snaps_older++;
		}
	}
	progress pg;
	progress_begin(&pg, o, d, 0);
	journal_record rec;
	char aerr[REPLAY_ERR_LEN];
	char last_file[PATH_MAX] = "";
	uint64_t expect = r->base_seq + 1;
	int stopped = 0; /* re-execution hit a problem */
	while ((rc = journal_reader_next(rd, &rec)) == 1) {
		if (rec.seq > b->stop_seq)
			break;
		if (rec.seq != expect) {
			/* The reader guarantees continuity; a break here is a
			 * reader bug or a file changing under us: still a finding. */
			add_problem(r, "corruption", expect, rec.file, rec.offset, 1, 0,
			            "%s offset %" PRIu64 ": expected seq %" PRIu64
			            ", found %" PRIu64,
			            rec.file, rec.offset, expect, rec.seq);
			stopped = 1;
			break;
		}
		if (rec.file && strcmp(rec.file, last_file) != 0)
			snprintf(last_file, sizeof last_file, "%s", rec.file);
		entry en;
		aerr[0] = '\0';
		int ar = replay_apply(b->e, &rec, 1, &en, aerr, sizeof aerr);
		if (ar == REPLAY_MISMATCH) {
			/* A capacity other than the server's changes LIMIT answers:
			 * say which one was used, so that case is recognisable. */
			add_problem(r, "mismatch", rec.seq, rec.file, rec.offset, 1, 0,
			            "%s [replayed with seats_max %" PRIu32 " claims_max %" PRIu32
			            " idem_capacity %" PRIu32 " events_max %" PRIu32 " from %s]",
			            aerr, b->cfg.seats_max, b->cfg.claims_max, b->cfg.idem_capacity,
			            b->cfg.events_max, b->cfg_source);
			stopped = 1;
			break;
		}
		if (ar != REPLAY_OK) {
			add_problem(r, "malformed", rec.seq, rec.file, rec.offset, 1, 0, "%s",
			            aerr);
			stopped = 1;
			break;
		}
		if (r->first_seq == 0)
			r->first_seq = rec.seq;
		r->last_seq = rec.seq;
		r->last_ts_ms = rec.timestamp_ms;
		r->records++;
		if (en.kind == ENTRY_TICK)
			r->ticks++;
		else
			r->commands++;
		expect = rec.seq + 1;
		for (; si < d->snap_count && d->snaps[si].seq <= rec.seq; si++)
			if (b->check_snaps && d->snaps[si].seq == rec.seq)
				compare_snap(r, d, si, b->e, &b->cfg);
		progress_tick(&pg, &rec);
	}
	progress_end(&pg);
	if (rc < 0) {
		reader_problem(r, rd, rc, expect, last_file);
		stopped = 1;
	} else if (rc == 0) {
		journal_recovery jr;
		journal_reader_recovery(rd, &jr);
		r->torn_bytes = jr.bytes_cut;
		if (jr.bytes_cut > 0 || jr.records_cut > 0) {
			if (o->allow_torn_tail)
				add_note(r, "torn tail allowed: %s", jr.note);
			else
				add_problem(
				        r, "torn_tail", expect, last_file, 0, 0, 0,
				        "%s (the next start of the shard cuts it; --allow-torn-tail accepts it)",
				        jr.note[0] ? jr.note : "bytes after the last whole record");
		}
	}
	journal_reader_close(rd);
	uint64_t end = r->last_seq ? r->last_seq : r->base_seq;
	if (b->stop_seq != UINT64_MAX && !stopped && end < b->stop_seq) {
		add_problem(r, "beyond_end", b->stop_seq, d->path, 0, 0, 0,
		            "%s: seq %" PRIu64
		            " is not in the journal (its readable end is seq %" PRIu64 ")",
		            d->path, b->stop_seq, end);
		stopped = 1;
	}
	if (b->check_snaps && !stopped) {
		for (; si < d->snap_count; si++) {
			char path[REPLAY_DIR_PATH_LEN];
			replay_dir_snap_path(d, si, path, sizeof path);
			add_problem(r, "snapshot_beyond_end", d->snaps[si].seq, path, 0, 0, 0,
			            "%s: snapshot of seq %" PRIu64
			            " but the journal ends at seq %" PRIu64
			            ": durable records were lost",
			            path, d->snaps[si].seq, end);
		}
	}
	if (stopped)
		goto fail;
	return r->problem_count == 0 ? 0 : 1;
fail:
	engine_free(b->e);
	b->e = NULL;
	return -1;
}

/* ==== verify ================================================================ */

static int report_exit(const shard_report *r)
{
	int code = EXIT_OKAY;
	for (uint32_t i = 0; i < r->problem_count; i++) {
		int c = r->problems[i].io ? EXIT_IO : EXIT_FAILED;
		code = c > code ? c : code;
	}
	return code;
}

static void print_problem_json(const problem *p)
{
	printf("{\"kind\":\"%s\",\"seq\":%" PRIu64 ",\"file\":", p->kind, p->seq);
	replay_fmt_json_str(stdout, p->file, strlen(p->file));
	if (p->has_offset)
		printf(",\"offset\":%" PRIu64, p->offset);
	else
		fputs(",\"offset\":null", stdout);
	fputs(",\"message\":", stdout);
	replay_fmt_json_str(stdout, p->message, strlen(p->message));
	putchar('}');
}

static void problems_to_stderr(const shard_report *r)
{
	for (uint32_t i = 0; i < r->problem_count; i++) {
		const problem *p = &r->problems[i];
		if (p->seq)
			err_line("shard %" PRIu32 ": %s at seq %" PRIu64 ": %s", r->shard, p->kind,
			         p->seq, p->message);
		else
			err_line("shard %" PRIu32 ": %s: %s", r->shard, p->kind, p->message);
	}
}

static int cmd_verify(const opts *o, const shard_list *sl)
{
	int code = EXIT_OKAY;
	int all_ok = 1;
	if (o->json)
		fputs("{\"shards\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		shard_report *r = calloc(1, sizeof *r);
		if (!r) {
			err_line("out of memory");
			return EXIT_IO;
		}
		if (replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) < 0) {
			r->shard = sl->ids[k];
			r->base = "none";
			add_problem(r, "io", 0, "", 0, 0, 1, "%s", err);
		} else {
			rebuild b = {.o = o, .d = &d, .stop_seq = UINT64_MAX, .check_snaps = 1};
			rebuild_run(&b, r);
			engine_free(b.e);
		}
		int c = report_exit(r);
		code = c > code ? c : code;
		all_ok &= c == EXIT_OKAY;
		if (o->json) {
			printf("%s{\"shard\":%" PRIu32
			       ",\"ok\":%s,\"base\":\"%s\",\"base_seq\":%" PRIu64
			       ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
			       ",\"records\":%" PRIu64 ",\"commands\":%" PRIu64
			       ",\"ticks\":%" PRIu64 ",\"snapshots\":%" PRIu32
			       ",\"snapshots_checked\":%" PRIu32 ",\"snapshots_older\":%" PRIu32
			       ",\"segments\":%" PRIu32 ",\"torn_tail_bytes\":%" PRIu64
			       ",\"notes\":[",
			       k ? "," : "", r->shard, c == EXIT_OKAY ? "true" : "false", r->base,
			       r->base_seq, r->first_seq, r->last_seq, r->records, r->commands,
			       r->ticks, d.snap_count, r->snaps_checked, r->snaps_older,
			       d.seg_count, r->torn_bytes);
			for (uint32_t i = 0; i < r->note_count; i++) {
				if (i)
					putchar(',');
				replay_fmt_json_str(stdout, r->notes[i], strlen(r->notes[i]));
			}
			fputs("],\"problems\":[", stdout);
			for (uint32_t i = 0; i < r->problem_count; i++) {
				if (i)
					putchar(',');
				print_problem_json(&r->problems[i]);
			}
			fputs("]}", stdout);
		} else {
			for (uint32_t i = 0; i < r->note_count; i++)
				printf("shard %" PRIu32 ": note: %s\n", r->shard, r->notes[i]);
			if (c == EXIT_OKAY) {
				printf("shard %" PRIu32 ": OK: %" PRIu64 " records", r->shard,
				       r->records);
				if (r->records)
					printf(" (seq %" PRIu64 "..%" PRIu64 ": %" PRIu64
					       " commands, %" PRIu64 " ticks)",
					       r->first_seq, r->last_seq, r->commands, r->ticks);
				printf(" re-executed with identical results from %s",
				       strcmp(r->base, "empty") == 0 ? "an empty engine"
				                                     : "snapshot");
				if (strcmp(r->base, "snapshot") == 0)
					printf(" seq %" PRIu64, r->base_seq);
				printf("; %" PRIu32 " segment%s; %" PRIu32 " snapshot%s",
				       d.seg_count, d.seg_count == 1 ? "" : "s", d.snap_count,
				       d.snap_count == 1 ? "" : "s");
				if (d.snap_count)
					printf(" (%" PRIu32
					       " equal to the rebuilt state, %d the starting point, %" PRIu32
					       " older: valid, not compared)",
					       r->snaps_checked, strcmp(r->base, "snapshot") == 0,
					       r->snaps_older);
				putchar('\n');
			} else {
				for (uint32_t i = 0; i < r->problem_count; i++) {
					const problem *p = &r->problems[i];
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
					printf("shard %" PRIu32 ": %" PRIu64
					       " records (seq %" PRIu64 "..%" PRIu64
					       ") re-executed before the first failure\n",
					       r->shard, r->records, r->first_seq, r->last_seq);
			}
		}
		problems_to_stderr(r);
		replay_dir_free(&d);
		free(r);
	}
	if (o->json)
		printf("],\"ok\":%s}\n", all_ok ? "true" : "false");
	return code;
}

/* ==== dump ================================================================== */

/* Opens a reader positioned after `after`, but never before what pruning
 * left (the first segment's first seq - 1). */
static int open_reader_at(const opts *o, const replay_shard_dir *d, uint64_t after,
                          journal_reader **rd)
{
	uint64_t first_seg = d->seg_count ? d->segs[0].first_seq : 1;
	if (first_seg > 1 && after < first_seg - 1)
		after = first_seg - 1;
	char err[JOURNAL_ERR_LEN];
	int rc = journal_reader_open_from(o->dir, d->shard, NULL, after, rd, err, sizeof err);
	if (rc < 0)
		err_line("%s", err);
	return rc;
}

/* Ends a read: reports how the reader stopped. Returns an exit code: a
 * torn tail is a failure unless allowed (it may be damage, see verify). */
static int reader_end(const opts *o, journal_reader *rd, int rc, uint32_t shard,
                      uint64_t *torn_bytes)
{
	if (rc < 0) {
		err_line("shard %" PRIu32 ": %s", shard,
		         journal_reader_error(rd)[0] ? journal_reader_error(rd) : strerror(-rc));
		return rc == -EBADMSG ? EXIT_FAILED : EXIT_IO;
	}
	journal_recovery jr;
	journal_reader_recovery(rd, &jr);
	if (torn_bytes)
		*torn_bytes = jr.bytes_cut;
	if (jr.bytes_cut == 0 && jr.records_cut == 0)
		return EXIT_OKAY;
	if (o->allow_torn_tail) {
		err_line("shard %" PRIu32 ": warning: %s", shard, jr.note);
		return EXIT_OKAY;
	}
	err_line("shard %" PRIu32
	         ": torn_tail: %s (everything before it was read; --allow-torn-tail accepts it)",
	         shard, jr.note);
	return EXIT_FAILED;
}

static int cmd_dump(const opts *o, const shard_list *sl)
{
	int code = EXIT_OKAY;
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		if (replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) < 0) {
			err_line("%s", err);
			code = EXIT_IO;
			continue;
		}
		journal_reader *rd;
		uint64_t after = o->have_from && o->from > 0 ? o->from - 1 : 0;
		uint64_t first_seg = d.seg_count ? d.segs[0].first_seq : 1;
		if (first_seg > 1 && after + 1 < first_seg)
			err_line("shard %" PRIu32 ": note: records 1..%" PRIu64
			         " were pruned; the journal starts at seq "
			         "%" PRIu64,
			         d.shard, first_seg - 1, first_seg);
		if (open_reader_at(o, &d, after, &rd) < 0) {
			replay_dir_free(&d);
			code = EXIT_IO;
			continue;
		}
		progress pg;
		progress_begin(&pg, o, &d, 1);
		journal_record rec;
		int rc, c = EXIT_OKAY;
		while ((rc = journal_reader_next(rd, &rec)) == 1) {
			if (o->have_to && rec.seq > o->to)
				break;
			progress_tick(&pg, &rec);
			entry en;
			bo_seatmap *map = NULL;
			int dr = entry_decode(rec.payload, rec.payload_len, &en, &map);
			if (dr == -ENOMEM) {
				err_line("shard %" PRIu32 ": out of memory decoding seq %" PRIu64,
				         d.shard, rec.seq);
				c = EXIT_IO;
				break;
			}
			if (dr < 0) {
				err_line("shard %" PRIu32 ": malformed at seq %" PRIu64
				         " in %s offset %" PRIu64 ": payload of %" PRIu32
				         " bytes does not decode",
				         d.shard, rec.seq, rec.file, rec.offset, rec.payload_len);
				c = EXIT_FAILED;
				break;
			}
			if (!o->have_event ||
			    (en.kind == ENTRY_COMMAND && en.cmd.event_id == o->event))
				replay_fmt_record(stdout, d.shard, &rec, &en, map, o->json);
			bo_seatmap_free(map);
		}
		progress_end(&pg);
		fflush(stdout);
		if (c == EXIT_OKAY && rc <= 0)
			c = reader_end(o, rd, rc, d.shard, NULL);
		code = c > code ? c : code;
		journal_reader_close(rd);
		replay_dir_free(&d);
	}
	return code;
}

/* ==== stats ================================================================= */

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

static void stats_json(const stats *s, const replay_shard_dir *d, int total)
{
	char t0[REPLAY_FMT_TIME_LEN], t1[REPLAY_FMT_TIME_LEN];
	replay_fmt_time(s->first_ts, t0, sizeof t0);
	replay_fmt_time(s->last_ts, t1, sizeof t1);
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
	if (s->records)
		printf(",\"first_ts_ms\":%" PRId64 ",\"last_ts_ms\":%" PRId64
		       ",\"first_time\":\"%s\",\"last_time\":\"%s\"",
		       s->first_ts, s->last_ts, t0, t1);
	else
		fputs(",\"first_ts_ms\":null,\"last_ts_ms\":null,\"first_time\":null,\"last_time\":null",
		      stdout);
	printf(",\"span_s\":%.3f,\"rate_per_s\":%.1f,\"snapshots\":%" PRIu32
	       ",\"torn_tail_bytes\":%" PRIu64,
	       stats_span_s(s), stats_rate(s), s->snapshots, s->torn_bytes);
	if (!total) {
		fputs(",\"snapshot_seqs\":[", stdout);
		for (uint32_t i = 0; d && i < d->snap_count; i++)
			printf("%s%" PRIu64, i ? "," : "", d->snaps[i].seq);
		fputs("],\"error\":", stdout);
		if (s->error[0])
			replay_fmt_json_str(stdout, s->error, strlen(s->error));
		else
			fputs("null", stdout);
	}
	putchar('}');
}

static void stats_human(const stats *s, const replay_shard_dir *d, const char *title)
{
	char t0[REPLAY_FMT_TIME_LEN], t1[REPLAY_FMT_TIME_LEN];
	printf("%s\n", title);
	if (s->records)
		printf("  %-16s %" PRIu64 " (seq %" PRIu64 "..%" PRIu64 ")\n", "records",
		       s->records, s->first_seq, s->last_seq);
	else
		printf("  %-16s 0\n", "records");
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

static int cmd_stats(const opts *o, const shard_list *sl)
{
	int code = EXIT_OKAY;
	stats total;
	memset(&total, 0, sizeof total);
	if (o->json)
		fputs("{\"shards\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		stats *s = calloc(1, sizeof *s);
		if (!s) {
			err_line("out of memory");
			return EXIT_IO;
		}
		s->shard = sl->ids[k];
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		int have_dir = replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) == 0;
		int c = EXIT_OKAY;
		if (!have_dir) {
			snprintf(s->error, sizeof s->error, "%s", err);
			err_line("%s", err);
			c = EXIT_IO;
		} else {
			s->segments = d.seg_count;
			s->snapshots = d.snap_count;
			s->seg_bytes = d.seg_bytes;
			journal_reader *rd;
			if (open_reader_at(o, &d, 0, &rd) < 0) {
				snprintf(s->error, sizeof s->error,
				         "cannot open the journal of shard %" PRIu32, d.shard);
				c = EXIT_IO;
			} else {
				progress pg;
				progress_begin(&pg, o, &d, 0);
				journal_record rec;
				int rc;
				while ((rc = journal_reader_next(rd, &rec)) == 1) {
					progress_tick(&pg, &rec);
					entry en;
					bo_seatmap *map = NULL;
					int dr = entry_decode(rec.payload, rec.payload_len, &en,
					                      &map);
					bo_seatmap_free(map);
					if (dr < 0) {
						snprintf(s->error, sizeof s->error,
						         "seq %" PRIu64 " in %s offset %" PRIu64
						         ": payload does not decode",
						         rec.seq, rec.file, rec.offset);
						err_line("shard %" PRIu32 ": malformed at %s",
						         d.shard, s->error);
						c = dr == -ENOMEM ? EXIT_IO : EXIT_FAILED;
						break;
					}
					if (!s->records) {
						s->first_seq = rec.seq;
						s->first_ts = rec.timestamp_ms;
					}
					s->records++;
					s->last_seq = rec.seq;
					s->last_ts = rec.timestamp_ms;
					s->payload_bytes += rec.payload_len;
					s->rec_bytes += (48u + (uint64_t)rec.payload_len + 7u) &
					                ~(uint64_t)7u;
					if (en.kind == ENTRY_TICK) {
						s->ticks++;
					} else {
						s->commands++;
						if (en.cmd.op < BO_OP_COUNT)
							s->by_op[en.cmd.op]++;
						if (en.res.status < BO_STATUS_COUNT)
							s->by_status[en.res.status]++;
					}
				}
				progress_end(&pg);
				if (c == EXIT_OKAY && rc <= 0) {
					c = reader_end(o, rd, rc, d.shard, &s->torn_bytes);
					if (rc < 0)
						snprintf(s->error, sizeof s->error, "%s",
						         journal_reader_error(rd));
				}
				journal_reader_close(rd);
			}
		}
		code = c > code ? c : code;
		stats_add(&total, s);
		if (o->json) {
			if (k)
				putchar(',');
			stats_json(s, have_dir ? &d : NULL, 0);
		} else {
			char title[64];
			snprintf(title, sizeof title, "shard %" PRIu32, s->shard);
			stats_human(s, have_dir ? &d : NULL, title);
		}
		if (have_dir)
			replay_dir_free(&d);
		free(s);
	}
	if (o->json) {
		fputs("],\"total\":", stdout);
		stats_json(&total, NULL, 1);
		fputs("}\n", stdout);
	} else if (sl->count > 1) {
		stats_human(&total, NULL, "total");
	}
	return code;
}

/* ==== snapshot ============================================================== */

static int cmd_snapshot(const opts *o, const shard_list *sl)
{
	int code = EXIT_OKAY;
	int first = 1;
	if (o->json)
		fputs("{\"snapshots\":[", stdout);
	for (uint32_t k = 0; k < sl->count; k++) {
		replay_shard_dir d;
		char err[PATH_MAX + 256];
		if (replay_dir_scan(o->dir, sl->ids[k], &d, err, sizeof err) < 0) {
			err_line("%s", err);
			code = EXIT_IO;
			continue;
		}
		shard_report *r = calloc(1, sizeof *r);
		if (!r) {
			err_line("out of memory");
			replay_dir_free(&d);
			return EXIT_IO;
		}
		rebuild b = {.o = o,
		             .d = &d,
		             .stop_seq = o->have_at ? o->at : UINT64_MAX,
		             .check_snaps = 0};
		int rc = rebuild_run(&b, r);
		int c = report_exit(r);
		if (rc != 0 || c != EXIT_OKAY) {
			problems_to_stderr(r);
			code = c > code ? c : code;
			if (code == EXIT_OKAY)
				code = EXIT_FAILED;
		} else {
			uint64_t seq = r->last_seq ? r->last_seq : r->base_seq;
			/* The engine's clock: the last record's time (batch times never
			 * go back, and a hostile journal's that do are held by the
			 * engine), so it is never older than the last change. */
			int64_t ts = engine_now(b.e);
			if (seq != 0 && ts < 0) {
				err_line("shard %" PRIu32 ": the journal's clock at seq %" PRIu64
				         " is before 1970 (%" PRId64 " ms): no snapshot written",
				         d.shard, seq, ts);
				code = EXIT_FAILED;
			} else if (seq == 0) {
				err_line("shard %" PRIu32
				         ": the journal is empty: no snapshot written",
				         d.shard);
			} else {
				char serr[SNAPSHOT_ERR_LEN];
				int sr = snapfile_save(b.e, d.path, d.shard, seq, ts, serr,
				                       sizeof serr);
				if (sr < 0) {
					err_line("shard %" PRIu32 ": %s", d.shard, serr);
					code = EXIT_IO;
				} else {
					char path[REPLAY_DIR_PATH_LEN];
					snprintf(path, sizeof path, "%s/snap-%020" PRIu64 ".snap",
					         d.path, seq);
					struct stat st;
					uint64_t bytes =
					        stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
					if (o->json) {
						printf("%s{\"shard\":%" PRIu32 ",\"seq\":%" PRIu64
						       ",\"bytes\":%" PRIu64 ",\"path\":",
						       first ? "" : ",", d.shard, seq, bytes);
						replay_fmt_json_str(stdout, path, strlen(path));
						putchar('}');
					} else {
						printf("shard %" PRIu32 ": snapshot of seq %" PRIu64
						       " (%" PRIu64
						       " records re-executed from %s) written: %s (%" PRIu64
						       " bytes)\n",
						       d.shard, seq, r->records,
						       strcmp(r->base, "empty") == 0
						               ? "an empty engine"
						               : "a snapshot",
						       path, bytes);
					}
					first = 0;
				}
			}
		}
		engine_free(b.e);
		free(r);
		replay_dir_free(&d);
	}
	if (o->json)
		fputs("]}\n", stdout);
	return code;
}

/* ==== repair ================================================================ */

/* Moves file `from` into directory `dir` (rename; copy + fsync + unlink
 * across file systems). Returns 0 or -errno. */
static int move_into(const char *from, const char *dir)
{
	const char *slash = strrchr(from, '/');
	const char *name = slash ? slash + 1 : from;
	char to[REPLAY_DIR_PATH_LEN];
	int tl = snprintf(to, sizeof to, "%s/%s", dir, name);
	if (tl < 0 || (size_t)tl >= sizeof to)
		return -ENAMETOOLONG;
	if (access(to, F_OK) == 0)
		return -EEXIST;
	if (rename(from, to) == 0)
		return 0;
	if (errno != EXDEV)
		return -errno;
	uint8_t *buf;
	size_t n;
	int rc = read_file(from, &buf, &n);
	if (rc < 0)
		return rc;
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t k = write(fd, buf + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)k;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	free(buf);
	if (rc == 0 && unlink(from) != 0)
		rc = -errno;
	return rc;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int cmd_repair(const opts *o, const shard_list *sl)
{
	assert(sl->count == 1);
	replay_shard_dir d;
	char err[PATH_MAX + 256];
	if (replay_dir_scan(o->dir, sl->ids[0], &d, err, sizeof err) < 0) {
		err_line("%s", err);
		return EXIT_IO;
	}
	char backup[REPLAY_DIR_PATH_LEN];
	if (o->backup) {
		snprintf(backup, sizeof backup, "%s", o->backup);
		if (mkdir(backup, 0755) != 0 && errno != EEXIST) {
			err_line("%s: cannot create backup directory: %s", backup, strerror(errno));
			replay_dir_free(&d);
			return EXIT_IO;
		}
	} else {
		/* repair-<UTC time>, and -2, -3 ... if run twice in one second. */
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		char stamp[32];
		strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
		int made = 0;
		for (int i = 1; i < 100 && !made; i++) {
			if (i == 1)
				snprintf(backup, sizeof backup, "%s/repair-%s", d.path, stamp);
			else
				snprintf(backup, sizeof backup, "%s/repair-%s-%d", d.path, stamp,
				         i);
			if (mkdir(backup, 0755) == 0)
				made = 1;
			else if (errno != EEXIST)
				break;
		}
		if (!made) {
			err_line("%s: cannot create backup directory: %s", backup, strerror(errno));
			replay_dir_free(&d);
			return EXIT_IO;
		}
	}
	char jerr[JOURNAL_ERR_LEN];
	jerr[0] = '\0';
	int rc = journal_truncate_at(o->dir, d.shard, o->trunc, backup, jerr, sizeof jerr);
	if (rc < 0) {
		err_line("shard %" PRIu32 ": repair refused or failed: %s", d.shard,
		         jerr[0] ? jerr : strerror(-rc));
		if (!o->backup)
			rmdir(backup); /* only succeeds when nothing was copied into it */
		replay_dir_free(&d);
		if (rc == -ERANGE || rc == -EINVAL)
			return EXIT_USAGE;
		/* Nothing cut for these; a failure after the backups were
		 * written leaves a half-done cut: the operator must look. */
		return rc == -EEXIST || rc == -ENOENT || rc == -ENOMEM ? EXIT_IO : EXIT_FAILED;
	}
	/* Snapshots of cut records describe a state the journal no longer
	 * reaches: the shard would refuse to start on them. */
	uint32_t moved = 0;
	int code = EXIT_OKAY;
	char moved_list[1024] = "";
	for (uint32_t i = 0; i < d.snap_count; i++) {
		if (d.snaps[i].seq < o->trunc)
			continue;
		char path[REPLAY_DIR_PATH_LEN];
		replay_dir_snap_path(&d, i, path, sizeof path);
		int mr = move_into(path, backup);
		if (mr < 0) {
			err_line(
			        "%s: cannot move this snapshot of a cut seq into %s: %s; move it away before starting "
			        "the shard",
			        path, backup, strerror(-mr));
			code = EXIT_IO;
			continue;
		}
		moved++;
		size_t used = strlen(moved_list);
		snprintf(moved_list + used, sizeof moved_list - used, "%s%" PRIu64,
		         used ? ", " : "", d.snaps[i].seq);
	}
	if (moved) {
		fsync_dir(d.path);
		fsync_dir(backup);
	}
	if (o->json) {
		printf("{\"shard\":%" PRIu32 ",\"truncated_at\":%" PRIu64 ",\"backup\":", d.shard,
		       o->trunc);
		replay_fmt_json_str(stdout, backup, strlen(backup));
		printf(",\"snapshots_moved\":%" PRIu32 ",\"summary\":", moved);
		replay_fmt_json_str(stdout, jerr, strlen(jerr));
		printf(",\"ok\":%s}\n", code == EXIT_OKAY ? "true" : "false");
	} else {
		printf("shard %" PRIu32 ": journal cut so that seq %" PRIu64
		       " is its last record: %s\n",
		       d.shard, o->trunc - 1, jerr);
		printf("shard %" PRIu32 ": backup of what was cut: %s\n", d.shard, backup);
		if (moved)
			printf("shard %" PRIu32
			       ": snapshots of cut seqs moved into the backup: seq %s\n",
			       d.shard, moved_list);
	}
	replay_dir_free(&d);
	return code;
}

/* ==== main ================================================================== */

typedef struct command {
	const char *name;
	const char *usage;
	int (*run)(const opts *o, const shard_list *sl);
} command;

static const command commands[] = {
        {"verify", usage_verify, cmd_verify}, {"dump", usage_dump, cmd_dump},
        {"stats", usage_stats, cmd_stats},    {"snapshot", usage_snapshot, cmd_snapshot},
        {"repair", usage_repair, cmd_repair},
};

/* Which options each command takes (anything else is a usage error, so a
 * typo is never silently ignored). */
static int option_allowed(const char *cmd, const char *opt)
{
	static const char *const common[] = {"--shard", "--json", "--no-progress", NULL};
	for (int i = 0; common[i]; i++)
		if (strcmp(opt, common[i]) == 0)
			return 1;
	int capacity = strcmp(opt, "--seats-max") == 0 || strcmp(opt, "--claims-max") == 0 ||
	               strcmp(opt, "--idem-capacity") == 0 || strcmp(opt, "--events-max") == 0;
	if (strcmp(opt, "--allow-torn-tail") == 0)
		return strcmp(cmd, "repair") != 0;
	if (strcmp(cmd, "verify") == 0)
		return capacity;
	if (strcmp(cmd, "dump") == 0)
		return strcmp(opt, "--from") == 0 || strcmp(opt, "--to") == 0 ||
		       strcmp(opt, "--event") == 0;
	if (strcmp(cmd, "snapshot") == 0)
		return capacity || strcmp(opt, "--at") == 0;
	if (strcmp(cmd, "repair") == 0)
		return strcmp(opt, "--truncate-at") == 0 || strcmp(opt, "--backup") == 0;
	return 0;
}

static int takes_value(const char *opt)
{
	static const char *const v[] = {"--shard",         "--from",       "--to",
	                                "--event",         "--at",         "--truncate-at",
	                                "--backup",        "--seats-max",  "--claims-max",
	                                "--idem-capacity", "--events-max", NULL};
	for (int i = 0; v[i]; i++)
		if (strcmp(opt, v[i]) == 0)
			return 1;
	return 0;
}

/* Parses argv after the command name. Returns 0, or an exit code
 * (EXIT_OKAY with *done set for --help). */
static int parse_args(int argc, char **argv, const command *c, opts *o, int *done)
{
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(c->usage, stdout);
			*done = 1;
			return EXIT_OKAY;
		}
		if (strcmp(a, "--") == 0 || a[0] != '-' || a[1] == '\0') {
			const char *pos =
			        strcmp(a, "--") == 0 ? (i + 1 < argc ? argv[++i] : NULL) : a;
			if (!pos)
				return usage_error(c->name, "missing DIR after --");
			if (o->dir)
				return usage_error(c->name,
				                   "unexpected argument '%s' (DIR is already '%s')",
				                   pos, o->dir);
			o->dir = pos;
			continue;
		}
		char name[64];
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		if (nlen >= sizeof name)
			return usage_error(c->name, "unknown option '%s'", a);
		memcpy(name, a, nlen);
		name[nlen] = '\0';
		if (!option_allowed(c->name, name))
			return usage_error(c->name, "unknown option '%s' for %s", name, c->name);
		if (takes_value(name)) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage_error(c->name, "option %s needs a value", name);
		} else if (eq) {
			return usage_error(c->name, "option %s takes no value", name);
		}
		uint64_t v = 0;
		if (val && strcmp(name, "--backup") != 0 && !parse_u64(val, &v))
			return usage_error(c->name, "%s: '%s' is not a non-negative whole number",
			                   name, val);
		if (strcmp(name, "--json") == 0)
			o->json = 1;
		else if (strcmp(name, "--no-progress") == 0)
			o->no_progress = 1;
		else if (strcmp(name, "--allow-torn-tail") == 0)
			o->allow_torn_tail = 1;
		else if (strcmp(name, "--shard") == 0) {
			if (v > UINT32_MAX)
				return usage_error(c->name, "--shard %s is out of range", val);
			o->have_shard = 1;
			o->shard = (uint32_t)v;
		} else if (strcmp(name, "--from") == 0) {
			o->have_from = 1;
			o->from = v;
		} else if (strcmp(name, "--to") == 0) {
			o->have_to = 1;
			o->to = v;
		} else if (strcmp(name, "--event") == 0) {
			o->have_event = 1;
			o->event = v;
		} else if (strcmp(name, "--at") == 0) {
			if (v == 0)
				return usage_error(c->name, "--at must be a seq >= 1");
			o->have_at = 1;
			o->at = v;
		} else if (strcmp(name, "--truncate-at") == 0) {
			if (v == 0)
				return usage_error(c->name, "--truncate-at must be a seq >= 1");
			o->have_trunc = 1;
			o->trunc = v;
		} else if (strcmp(name, "--backup") == 0) {
			if (!val[0])
				return usage_error(c->name, "--backup needs a directory");
			o->backup = val;
		} else {
			/* engine capacity */
			if (v == 0 || v > UINT32_MAX)
				return usage_error(c->name, "%s %s is out of range", name, val);
			uint32_t *dst = strcmp(name, "--seats-max") == 0       ? &o->seats_max
			                : strcmp(name, "--claims-max") == 0    ? &o->claims_max
			                : strcmp(name, "--idem-capacity") == 0 ? &o->idem_capacity
			                                                       : &o->events_max;
			*dst = (uint32_t)v;
		}
	}
	if (!o->dir)
		return usage_error(c->name, "missing DIR");
	if (o->have_from && o->have_to && o->from > o->to)
		return usage_error(c->name, "--from %" PRIu64 " is after --to %" PRIu64, o->from,
		                   o->to);
	if (strcmp(c->name, "repair") == 0) {
		if (!o->have_shard)
			return usage_error(
			        c->name,
			        "repair needs --shard N (it never cuts more than one shard)");
		if (!o->have_trunc)
			return usage_error(
			        c->name,
			        "repair needs --truncate-at SEQ (the first seq to remove)");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error(NULL, "missing COMMAND");
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		if (strcmp(cmd, "help") == 0 && argc > 2)
			for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
				if (strcmp(argv[2], commands[i].name) == 0) {
					fputs(commands[i].usage, stdout);
					return EXIT_OKAY;
				}
		fputs(usage_main, stdout);
		return EXIT_OKAY;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf(PROG " " BO_VERSION "\n");
		return EXIT_OKAY;
	}
	const command *c = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(cmd, commands[i].name) == 0)
			c = &commands[i];
	if (!c)
		return usage_error(NULL, "unknown command '%s'", cmd);
	opts o;
	memset(&o, 0, sizeof o);
	o.cmd = c->name;
	int done = 0;
	int rc = parse_args(argc, argv, c, &o, &done);
	if (rc != 0 || done)
		return rc;
	/* Dumps of millions of lines: fewer, larger writes when not a terminal. */
	if (!isatty(STDOUT_FILENO))
		setvbuf(stdout, NULL, _IOFBF, 1u << 16);
	shard_list sl = {0};
	rc = select_shards(&o, &sl);
	if (rc != 0)
		return rc;
	rc = c->run(&o, &sl);
	free(sl.ids);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		err_line("cannot write to stdout: %s", strerror(errno));
		return rc > EXIT_IO ? rc : EXIT_IO;
	}
	return rc;
}
