/*
 * crash_test.c — proves that a durable shard keeps its promises across
 * crashes: nothing a client was answered is ever lost or changed, nothing
 * is journaled that no client sent, nothing is applied twice, and the state
 * recovered from snapshot + journal is exactly the state the journal
 * describes.
 *
 *     crash_test HARNESS            (BO_CRASH_CYCLES, BO_CRASH_SEED, BO_CRASH_KEEP)
 *
 * How: cycle after cycle, it starts crash_harness (HARNESS) on one data
 * directory with its stdout on a pipe, lets it run a random 30..300 ms and
 * kills its whole process group with SIGKILL (shard writers, journal
 * writes in flight, output threads, snapshot builders writing: all of
 * it dies at once). Every tenth cycle it sends SIGTERM instead and expects
 * a clean exit with every submitted command answered. Each start of the
 * harness is itself a recovery of the previous crash: if shard_open()
 * refuses (exit 3) the test fails with its message.
 *
 * After each cycle, with the harness dead, it reads every shard's journal
 * with journal_reader_open() from seq 1 (the harness never prunes) and
 * checks, per shard:
 *  (1) every "ack" (shard, seq, client, request, status, claim) names a
 *      journal record at that seq with the same (client, request) and the
 *      same recorded status and claim: what a client saw is durable;
 *  (2) every command record's (client, request) was announced by a "sub"
 *      line, in some run, for this shard: nothing invented;
 *  (3) the command records of this run that were not acknowledged all come
 *      after the last acknowledged one (answers leave in journal order),
 *      and there are at most CRASH_OUT_SLOTS of them: a journaled command
 *      holds an output slot until the client is answered, so the output
 *      ring bounds what can be durable yet unanswered at a crash;
 *  (4) the state shard_open() recovered at the next start (snapshot + tail,
 *      reported by the harness as engine_digest()) equals the state of a
 *      reference engine that replayed the whole journal from seq 1 with
 *      replay_apply(verify = 1), which also re-checks every recorded
 *      result. The reference is kept across cycles and fed only the new
 *      records: records it already applied are compared by fingerprint
 *      (timestamp + payload hash) every cycle, so an old record that
 *      changed or vanished fails the test, and at the end a fresh engine
 *      replays everything from seq 1 and must reach the same digest, as
 *      must a final shard_open() in this process;
 *  (5) no (client, request) is journaled twice, except the fixed
 *      creations the harness repeats on purpose at every start; sequence
 *      numbers run 1, 2, 3, ... without a gap or a repeat.
 * A graceful cycle also requires every "sub" of the run to be acked.
 *
 * The delays and the harness's random mix come from the seed (printed);
 * thread timing does not, so a failing seed narrows a bug down but may not
 * replay it exactly. BO_CRASH_CYCLES sets the number of cycles (default
 * 100); long runs use a fresh data directory every 200 cycles so reading
 * the journals from seq 1 stays cheap. BO_CRASH_KEEP=1 keeps the data
 * directory even on success (it is always kept on failure).
 *
 * Plain C rather than Criterion: one long scenario that forks and kills
 * processes, reported through the exit code (0 pass, 1 fail, 77 skip:
 * io_uring refused), which meson understands.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "crash_config.h"
#include "base/clock.h"
#include "shard/shard.h"
#include "shard/entry.h"
#include "journal/journal.h"
#include "shard/apply.h"
#include "tests/support/rng.h"
#include "tests/support/tmpdir.h"

#define CYCLES_DEFAULT 100u
#define EPOCH_CYCLES 200u /* cycles per data directory in long runs */
#define GRACEFUL_EVERY 10u
#define KILL_MS_MIN 30u
#define KILL_MS_SPAN 271u  /* 30..300 ms */
#define EXIT_WAIT_MS 60000 /* a harness must be gone this long after a signal */
#define ERR_LEN 2048u

/* ---- Small helpers ------------------------------------------------------- */

static double now_s(void) { return (double)bo_clock_ns() / 1e9; }

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "crash_test: out of memory\n");
		exit(1);
	}
	return q;
}

/* Failures of the current cycle: printed at once, counted, and the test
 * stops after the cycle that had any. */
static unsigned failures;
static char cycle_ctx[512];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	failures++;
	if (failures > 20)
		return; /* enough to see the pattern */
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "crash_test: FAIL %s: ", cycle_ctx);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- A hash table keyed by (client, request) ----------------------------- */

typedef struct kv {
	uint64_t client, request; /* (0, 0): empty (no journaled command has client 0) */
	uint64_t val;
} kv;

typedef struct table {
	kv *slots;
	size_t cap, n; /* cap a power of two, n <= cap / 2 */
} table;

static void table_clear(table *t)
{
	free(t->slots);
	t->cap = 1024;
	t->n = 0;
	t->slots = calloc(t->cap, sizeof(kv));
	if (!t->slots) {
		fprintf(stderr, "crash_test: out of memory\n");
		exit(1);
	}
}

static size_t key_hash(uint64_t c, uint64_t r)
{
	return (size_t)trng_mix64(c * 31 + trng_mix64(r));
}

static kv *table_find(table *t, uint64_t c, uint64_t r)
{
	for (size_t i = key_hash(c, r) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		kv *s = &t->slots[i];
		if (s->client == c && s->request == r)
			return s;
		if (s->client == 0 && s->request == 0)
			return NULL;
	}
}

/* Inserts or finds: returns the slot and whether it was new. */
static kv *table_put(table *t, uint64_t c, uint64_t r, int *fresh)
{
	if ((t->n + 1) * 2 > t->cap) {
		table old = *t;
		t->cap *= 2;
		t->n = 0;
		t->slots = calloc(t->cap, sizeof(kv));
		if (!t->slots) {
			fprintf(stderr, "crash_test: out of memory\n");
			exit(1);
		}
		for (size_t i = 0; i < old.cap; i++) {
			kv *s = &old.slots[i];
			if (s->client != 0 || s->request != 0) {
				int f;
				*table_put(t, s->client, s->request, &f) = *s;
			}
		}
		free(old.slots);
	}
	size_t i = key_hash(c, r) & (t->cap - 1);
	for (;; i = (i + 1) & (t->cap - 1)) {
		kv *s = &t->slots[i];
		if (s->client == c && s->request == r) {
			*fresh = 0;
			return s;
		}
		if (s->client == 0 && s->request == 0)
			break;
	}
	t->slots[i].client = c;
	t->slots[i].request = r;
	t->slots[i].val = 0;
	t->n++;
	*fresh = 1;
	return &t->slots[i];
}

/* ---- What the driver knows ---------------------------------------------- */

typedef struct ack {
	uint32_t shard;
	uint32_t status;
	uint64_t seq, client, request, claim;
} ack;

/* A command record of the current cycle's range, for matching acks. */
typedef struct rec_brief {
	uint64_t client, request, claim;
	uint8_t is_command, status, acked;
} rec_brief;

typedef struct shard_state {
	engine *ref;         /* reference: every record from seq 1, verified */
	uint64_t end_seq;    /* last record seen (and applied to ref) */
	uint64_t ref_digest; /* engine_digest(ref) at end_seq */
	uint64_t *fp;        /* fp[seq - 1]: fingerprint of each record seen */
	size_t fp_cap;
	table keys;     /* journaled (client, request) -> first seq */
	rec_brief *cur; /* records of this cycle's range */
	size_t cur_cap;
} shard_state;

static shard_state st[CRASH_SHARDS];
static table subs_all; /* every "sub" of this data directory -> shard + 1 */
static table subs_run; /* this run's subs -> 1, | 2 once acked */

typedef struct stats {
	uint64_t records, commands, ticks, acks, subs;
	uint64_t unacked_max, snapshot_recoveries, recoveries, replayed_max, cut_recoveries;
	unsigned graceful, killed_before_go;
	uint64_t warnings;
	double harness_s, check_s;
} stats;
static stats sum;

static engine_config ref_config(void)
{
	engine_config c;
	crash_engine_config(&c);
	return c;
}

static void state_reset(void)
{
	for (uint32_t s = 0; s < CRASH_SHARDS; s++) {
		engine_free(st[s].ref);
		engine_config c = ref_config();
		if (engine_new(&c, &st[s].ref) != 0) {
			fprintf(stderr, "crash_test: engine_new failed\n");
			exit(1);
		}
		st[s].end_seq = 0;
		st[s].ref_digest = engine_digest(st[s].ref);
		table_clear(&st[s].keys);
	}
	table_clear(&subs_all);
}

static uint64_t fingerprint(const journal_record *r)
{
	return XXH3_64bits_withSeed(r->payload, r->payload_len, (uint64_t)r->timestamp_ms);
}

static int is_create_key(uint64_t client, uint64_t request)
{
	return request == 1 && client >= CRASH_CREATE_CLIENT_BASE &&
	       client < CRASH_CREATE_CLIENT_BASE + CRASH_EVENTS;
}

/* ---- One harness run ---------------------------------------------------- */

typedef struct run_out {
	char *buf;
	size_t len, cap;
	int status; /* waitpid status */
	int killed; /* we sent SIGKILL */
	int hung;   /* it did not go away after the signal */
} run_out;

static void run_harness(const char *harness, const char *dir, const char *mode, uint64_t seed,
                        uint32_t delay_ms, int graceful, const char *log, run_out *ro)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		perror("crash_test: pipe");
		exit(1);
	}
	char seed_s[32];
	snprintf(seed_s, sizeof(seed_s), "%" PRIu64, seed);
	pid_t pid = fork();
	if (pid < 0) {
		perror("crash_test: fork");
		exit(1);
	}
	if (pid == 0) {
		/* Own process group: the kill reaches the whole harness at once. */
		setpgid(0, 0);
		/* SIGTERM stays blocked (the mask survives exec) until the
		 * harness has installed its handler and unblocks it: a SIGTERM
		 * sent while the harness is still starting (slow under ASan) is
		 * then held pending instead of killing it by default. */
		sigset_t term;
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
		dup2(pfd[1], STDOUT_FILENO);
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (lfd >= 0)
			dup2(lfd, STDERR_FILENO);
		execl(harness, harness, dir, mode, seed_s, (char *)NULL);
		fprintf(stderr, "crash_test: exec %s: %s\n", harness, strerror(errno));
		_exit(126);
	}
	setpgid(pid, pid); /* also here: whichever runs first */
	close(pfd[1]);
	ro->len = 0;
	ro->killed = 0;
	ro->hung = 0;
	double t0 = now_s();
	double deadline = t0 + delay_ms / 1000.0;
	int signalled = 0;
	for (;;) {
		double now = now_s();
		if (!signalled && now >= deadline) {
			if (graceful) {
				kill(pid, SIGTERM);
			} else {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				ro->killed = 1;
			}
			signalled = 1;
			deadline = now + EXIT_WAIT_MS / 1000.0;
		} else if (signalled && now >= deadline) {
			ro->hung = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int ms = (int)((deadline - now) * 1000.0) + 1;
		int pr = poll(&p, 1, ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		if (ro->cap - ro->len < 65536) {
			ro->cap = ro->cap * 2 + 65536;
			ro->buf = xrealloc(ro->buf, ro->cap);
		}
		ssize_t n = read(pfd[0], ro->buf + ro->len, ro->cap - ro->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EOF: every process of the group is gone */
		ro->len += (size_t)n;
	}
	close(pfd[0]);
	/* The harness exits before its group's last pipe holder; reap it. */
	while (waitpid(pid, &ro->status, 0) < 0 && errno == EINTR)
		;
	kill(-pid, SIGKILL); /* leftovers of the group, if any (none expected) */
}

/* ---- Parsing the lines -------------------------------------------------- */

typedef struct run_lines {
	ack *acks;
	size_t acks_n, acks_cap;
	int go, bye;
	char failmsg[1200];
	int rec_seen[CRASH_SHARDS];
	uint64_t subs;
} run_lines;

static void parse_lines(const run_out *ro, run_lines *rl)
{
	rl->acks_n = 0;
	rl->go = rl->bye = 0;
	rl->failmsg[0] = '\0';
	rl->subs = 0;
	memset(rl->rec_seen, 0, sizeof(rl->rec_seen));
	uint64_t last_ack_seq[CRASH_SHARDS] = {0};
	size_t pos = 0;
	while (pos < ro->len) {
		char *nl = memchr(ro->buf + pos, '\n', ro->len - pos);
		if (!nl) {
			fail("partial line at the end of the harness output "
			     "(a write(2) was split): \"%.*s\"",
			     (int)(ro->len - pos), ro->buf + pos);
			return;
		}
		*nl = '\0';
		char *line = ro->buf + pos;
		pos = (size_t)(nl - ro->buf) + 1;
		uint64_t a, b, c, d, e, f;
		uint32_t sh;
		if (sscanf(line, "sub %" SCNu64 " %" SCNu64 " %u", &a, &b, &sh) == 3) {
			if (sh >= CRASH_SHARDS || (a == 0 && b == 0)) {
				fail("bad sub line: %s", line);
				continue;
			}
			rl->subs++;
			int fresh;
			kv *k = table_put(&subs_all, a, b, &fresh);
			if (!fresh && !is_create_key(a, b))
				fail("harness reused (client %" PRIu64 ", request %" PRIu64 ")", a,
				     b);
			if (fresh)
				k->val = sh + 1u;
			else if (k->val != sh + 1u)
				fail("(client %" PRIu64 ", request %" PRIu64
				     ") sent to shard %u and %" PRIu64,
				     a, b, sh, k->val - 1);
			kv *r = table_put(&subs_run, a, b, &fresh);
			r->val |= 1;
		} else if (sscanf(line,
		                  "ack %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
		                  &sh, &a, &b, &c, &d, &e) == 6) {
			if (sh >= CRASH_SHARDS) {
				fail("bad ack line: %s", line);
				continue;
			}
			kv *r = table_find(&subs_run, b, c);
			if (!r)
				fail("ack for a command this run never announced: %s", line);
			else if (r->val & 2)
				fail("second ack for (client %" PRIu64 ", request %" PRIu64 "): %s",
				     b, c, line);
			else
				r->val |= 2;
			if (a <= last_ack_seq[sh])
				fail("acks of shard %u out of journal order: seq %" PRIu64
				     " after %" PRIu64,
				     sh, a, last_ack_seq[sh]);
			last_ack_seq[sh] = a;
			if (rl->acks_n == rl->acks_cap) {
				rl->acks_cap = rl->acks_cap * 2 + 4096;
				rl->acks = xrealloc(rl->acks, rl->acks_cap * sizeof(ack));
			}
			rl->acks[rl->acks_n++] = (ack){.shard = sh,
			                               .seq = a,
			                               .client = b,
			                               .request = c,
			                               .status = (uint32_t)d,
			                               .claim = e};
		} else if (sscanf(line,
		                  "rec %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNx64,
		                  &sh, &a, &b, &c, &d, &f) == 6) {
			if (sh >= CRASH_SHARDS) {
				fail("bad rec line: %s", line);
				continue;
			}
			rl->rec_seen[sh] = 1;
			sum.recoveries++;
			sum.snapshot_recoveries += a > 0;
			sum.cut_recoveries += d > 0;
			if (c > sum.replayed_max)
				sum.replayed_max = c;
			/* (4): what shard_open() rebuilt is what the journal says. */
			if (b != st[sh].end_seq)
				fail("shard %u recovered up to seq %" PRIu64
				     " but the journal read after the crash "
				     "ended at seq %" PRIu64 " (snapshot %" PRIu64 ", %" PRIu64
				     " cut)",
				     sh, b, st[sh].end_seq, a, d);
			else if (f != st[sh].ref_digest)
				fail("shard %u: state recovered by shard_open "
				     "(snapshot seq %" PRIu64
				     " + %" PRIu64 " replayed, last seq %" PRIu64
				     ") has digest %016" PRIx64
				     ", replaying the journal from seq 1 gives %016" PRIx64,
				     sh, a, c, b, f, st[sh].ref_digest);
		} else if (strcmp(line, "go") == 0) {
			rl->go = 1;
		} else if (strcmp(line, "bye") == 0) {
			rl->bye = 1;
		} else if (strncmp(line, "fail ", 5) == 0) {
			snprintf(rl->failmsg, sizeof(rl->failmsg), "%s", line + 5);
		} else {
			fail("unexpected harness line: \"%s\"", line);
		}
	}
}

/* ---- Checking the journals ---------------------------------------------- */

static void check_shard(uint32_t sh, const char *dir, const run_lines *rl, int graceful)
{
	shard_state *s = &st[sh];
	uint64_t start = s->end_seq; /* this run's records are (start, end] */
	journal_reader *r = NULL;
	char err[ERR_LEN];
	int rc = journal_reader_open(dir, sh, NULL, &r, err, sizeof(err));
	if (rc == -ENOENT) {
		if (s->end_seq > 0)
			fail("shard %u: journal directory vanished (had %" PRIu64 " records)", sh,
			     s->end_seq);
		return;
	}
	if (rc < 0) {
		fail("shard %u: journal_reader_open: %s (%s)", sh, err, strerror(-rc));
		return;
	}
	journal_record jr;
	uint64_t seq = 0;
	size_t ncur = 0;
	while ((rc = journal_reader_next(r, &jr)) == 1) {
		if (jr.seq != seq + 1) {
			fail("shard %u: journal goes from seq %" PRIu64 " to %" PRIu64
			     " (%s offset %" PRIu64 ")",
			     sh, seq, jr.seq, jr.file, jr.offset);
			break;
		}
		seq = jr.seq;
		uint64_t fp = fingerprint(&jr);
		if (seq <= s->end_seq) {
			/* Seen and applied in an earlier cycle: must not change. */
			if (s->fp[seq - 1] != fp) {
				fail("shard %u: record %" PRIu64
				     " changed since an earlier cycle (%s offset %" PRIu64 ")",
				     sh, seq, jr.file, jr.offset);
				break;
			}
			continue;
		}
		if (seq > s->fp_cap) {
			s->fp_cap = s->fp_cap * 2 + 4096;
			s->fp = xrealloc(s->fp, s->fp_cap * sizeof(uint64_t));
		}
		s->fp[seq - 1] = fp;
		entry en;
		char rerr[REPLAY_ERR_LEN];
		int ar = replay_apply(s->ref, &jr, 1, &en, rerr, sizeof(rerr));
		if (ar != REPLAY_OK) {
			fail("shard %u: reference replay: %s", sh, rerr);
			break;
		}
		if (ncur == s->cur_cap) {
			s->cur_cap = s->cur_cap * 2 + 4096;
			s->cur = xrealloc(s->cur, s->cur_cap * sizeof(rec_brief));
		}
		rec_brief *b = &s->cur[ncur++];
		memset(b, 0, sizeof(*b));
		sum.records++;
		if (en.kind != ENTRY_COMMAND) {
			sum.ticks++;
			continue;
		}
		sum.commands++;
		b->is_command = 1;
		b->client = en.cmd.client_id;
		b->request = en.cmd.request_id;
		b->status = en.res.status;
		b->claim = en.res.claim_id;
		if (en.res.client_id != b->client || en.res.request_id != b->request)
			fail("shard %u: record %" PRIu64 " result names (client %" PRIu64
			     ", request %" PRIu64 ") but its command (client %" PRIu64
			     ", request %" PRIu64 ")",
			     sh, seq, en.res.client_id, en.res.request_id, b->client, b->request);
		/* (2) nothing invented. */
		kv *k = table_find(&subs_all, b->client, b->request);
		if (!k)
			fail("shard %u: record %" PRIu64 " has (client %" PRIu64
			     ", request %" PRIu64 ") that no run ever submitted",
			     sh, seq, b->client, b->request);
		else if (k->val != sh + 1u)
			fail("shard %u: record %" PRIu64 " was submitted to shard %" PRIu64, sh,
			     seq, k->val - 1);
		/* (5) nothing twice. */
		int fresh;
		kv *j = table_put(&s->keys, b->client, b->request, &fresh);
		if (fresh)
			j->val = seq;
		else if (!is_create_key(b->client, b->request) || en.cmd.op != BO_OP_CREATE_EVENT)
			fail("shard %u: (client %" PRIu64 ", request %" PRIu64
			     ") journaled twice: seq %" PRIu64 " and %" PRIu64,
			     sh, b->client, b->request, j->val, seq);
	}
	if (rc < 0)
		fail("shard %u: journal reader: %s (%s)", sh, journal_reader_error(r),
		     strerror(-rc));
	journal_reader_close(r);
	if (seq < s->end_seq) {
		fail("shard %u: journal ends at seq %" PRIu64 " but had %" PRIu64
		     " records after an earlier cycle",
		     sh, seq, s->end_seq);
		return;
	}
	s->end_seq = seq;
	s->ref_digest = engine_digest(s->ref);

	/* (1) every ack is in the journal, as the client saw it. */
	uint64_t acked_max = 0, acked = 0;
	for (size_t i = 0; i < rl->acks_n; i++) {
		const ack *a = &rl->acks[i];
		if (a->shard != sh)
			continue;
		sum.acks++;
		acked++;
		if (a->seq <= start || a->seq > seq) {
			fail("shard %u: ack of (client %" PRIu64 ", request %" PRIu64
			     ") names seq %" PRIu64 ", outside this run's records (%" PRIu64
			     ", %" PRIu64 "]: an acknowledged command "
			     "is not in the journal",
			     sh, a->client, a->request, a->seq, start, seq);
			continue;
		}
		if (a->seq - start - 1 >= ncur) {
			fail("shard %u: ack of seq %" PRIu64 " past the records checked", sh,
			     a->seq);
			continue;
		}
		rec_brief *b = &s->cur[a->seq - start - 1];
		if (!b->is_command || b->client != a->client || b->request != a->request ||
		    b->status != a->status || b->claim != a->claim) {
			fail("shard %u: ack (seq %" PRIu64 " client %" PRIu64 " request %" PRIu64
			     " status %u claim %#" PRIx64
			     ") but the journal has at that seq: %s client %" PRIu64
			     " request %" PRIu64 " status %u claim %#" PRIx64,
			     sh, a->seq, a->client, a->request, a->status, a->claim,
			     b->is_command ? "command" : "tick", b->client, b->request, b->status,
			     b->claim);
			continue;
		}
		b->acked = 1;
		if (a->seq > acked_max)
			acked_max = a->seq;
	}
	/* (3) unanswered records only after the last answered one, bounded. */
	uint64_t unacked = 0, early = 0, early_first = 0;
	for (size_t i = 0; i < ncur; i++) {
		const rec_brief *b = &s->cur[i];
		if (!b->is_command || b->acked)
			continue;
		unacked++;
		if (start + 1 + i < acked_max && early++ == 0)
			early_first = start + 1 + i;
	}
	if (early > 0)
		fail("shard %u: %" PRIu64
		     " journaled commands were never acknowledged although later ones were "
		     "(first seq %" PRIu64 ", last acked seq %" PRIu64 ")",
		     sh, early, early_first, acked_max);
	if (unacked > CRASH_OUT_SLOTS)
		fail("shard %u: %" PRIu64
		     " journaled commands unacknowledged at the crash, more than the output "
		     "ring's %u slots",
		     sh, unacked, CRASH_OUT_SLOTS);
	if (graceful && unacked > 0)
		fail("shard %u: graceful stop left %" PRIu64 " journaled commands unacknowledged",
		     sh, unacked);
	if (unacked > sum.unacked_max)
		sum.unacked_max = unacked;
}

/* The end of a data directory's life: a fresh engine replays each journal
 * from seq 1, and shard_open() in this process recovers it once more; both
 * must reach the reference's digest. */
static int final_check(const char *dir)
{
	for (uint32_t sh = 0; sh < CRASH_SHARDS; sh++) {
		engine_config c = ref_config();
		engine *e;
		if (engine_new(&c, &e) != 0) {
			fail("engine_new failed");
			return -1;
		}
		journal_reader *r;
		char err[ERR_LEN];
		uint64_t n = 0;
		int rc = journal_reader_open(dir, sh, NULL, &r, err, sizeof(err));
		if (rc == 0) {
			journal_record jr;
			char rerr[REPLAY_ERR_LEN];
			while ((rc = journal_reader_next(r, &jr)) == 1) {
				if (replay_apply(e, &jr, 1, NULL, rerr, sizeof(rerr)) !=
				    REPLAY_OK) {
					fail("shard %u: fresh replay: %s", sh, rerr);
					break;
				}
				n = jr.seq;
			}
			journal_reader_close(r);
		}
		if (n != st[sh].end_seq || engine_digest(e) != st[sh].ref_digest)
			fail("shard %u: a fresh replay from seq 1 reaches seq %" PRIu64
			     " digest %016" PRIx64 ", the reference seq %" PRIu64
			     " digest %016" PRIx64,
			     sh, n, engine_digest(e), st[sh].end_seq, st[sh].ref_digest);
		engine_free(e);

		shard_config cfg;
		shard_config_default(&cfg);
		cfg.id = sh;
		cfg.engine = c;
		cfg.in_slots = CRASH_IN_SLOTS;
		cfg.out_slots = CRASH_OUT_SLOTS;
		cfg.data_dir = dir;
		crash_journal_options(&cfg.journal);
		cfg.snapshot_every = CRASH_SNAPSHOT_EVERY;
		cfg.prune = 0;
		shard *s;
		shard_recovery rec;
		rc = shard_open(&cfg, &s, &rec, err, sizeof(err));
		if (rc < 0) {
			fail("shard %u: final shard_open: %s (%s)", sh, err, strerror(-rc));
			continue;
		}
		if (rec.last_seq != st[sh].end_seq ||
		    engine_digest(shard_engine(s)) != st[sh].ref_digest)
			fail("shard %u: final shard_open recovered seq %" PRIu64
			     " (snapshot %" PRIu64 ") digest %016" PRIx64
			     ", the reference seq %" PRIu64 " digest %016" PRIx64,
			     sh, rec.last_seq, rec.snapshot_seq, engine_digest(shard_engine(s)),
			     st[sh].end_seq, st[sh].ref_digest);
		shard_free(s);
	}
	return failures ? -1 : 0;
}

/* ---- Main ---------------------------------------------------------------- */

static void free_all(run_out *ro, run_lines *rl)
{
	for (uint32_t sh = 0; sh < CRASH_SHARDS; sh++) {
		engine_free(st[sh].ref);
		free(st[sh].fp);
		free(st[sh].cur);
		free(st[sh].keys.slots);
	}
	free(subs_all.slots);
	free(subs_run.slots);
	free(ro->buf);
	free(rl->acks);
}

/* Reads what the harness wrote to its stderr since *offset. A sanitizer
 * report (UBSan only prints and goes on by default) or a shard that
 * stopped on a journal failure fails the cycle; warnings are counted and
 * the first few shown. */
static void scan_log(const char *log, long *offset)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	if (fseek(f, *offset, SEEK_SET) != 0) {
		fclose(f);
		return;
	}
	char line[2048];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strstr(line, "runtime error") || strstr(line, "Sanitizer") ||
		    strstr(line, "level=error"))
			fail("harness stderr: %s", line);
		else if (strstr(line, "level=warn") && sum.warnings++ < 5)
			fprintf(stderr, "crash_test: harness warning: %s\n", line);
	}
	*offset = ftell(f);
	fclose(f);
}

static void log_tail(const char *log)
{
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, size > 3000 ? size - 3000 : 0, SEEK_SET);
	char buf[3001];
	size_t n = fread(buf, 1, 3000, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "crash_test: last lines of the harness's stderr (%s):\n%s\n", log, buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: crash_test PATH_TO_crash_harness\n");
		return 2;
	}
	const char *harness = argv[1];
	unsigned cycles = CYCLES_DEFAULT;
	const char *env = getenv("BO_CRASH_CYCLES");
	if (env && atoi(env) > 0)
		cycles = (unsigned)atoi(env);
	uint64_t seed;
	env = getenv("BO_CRASH_SEED");
	if (env && env[0])
		seed = strtoull(env, NULL, 0);
	else
		seed = trng_mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	int keep = getenv("BO_CRASH_KEEP") && atoi(getenv("BO_CRASH_KEEP")) != 0;
	signal(SIGPIPE, SIG_IGN);

	char root[192]; /* room for the names below in 256 */
	int trc = tmpdir_make(root, sizeof(root), "bo-crash");
	if (trc != 0) {
		fprintf(stderr, "crash_test: mkdtemp: %s\n", strerror(-trc));
		return 1;
	}
	char dir[256], log[256];
	fprintf(stderr,
	        "crash_test: seed=%#" PRIx64
	        " cycles=%u root=%s (rerun with BO_CRASH_SEED=%#" PRIx64 ")\n",
	        seed, cycles, root, seed);

	run_out ro = {0};
	run_lines rl = {0};
	double t_start = now_s();
	unsigned epoch = 0;
	long log_offset = 0;
	snprintf(dir, sizeof(dir), "%s/data-%u", root, epoch);
	snprintf(log, sizeof(log), "%s/harness-%u.log", root, epoch);
	state_reset();
	for (unsigned cyc = 0; cyc < cycles; cyc++) {
		uint64_t cs = trng_mix64(seed ^ trng_mix64(cyc + 1));
		uint32_t delay_ms = KILL_MS_MIN + (uint32_t)(cs % KILL_MS_SPAN);
		int graceful = cyc % GRACEFUL_EVERY == GRACEFUL_EVERY - 1;
		const char *mode = (cs >> 20) % 3 == 0 ? "burst" : "mix";
		uint64_t hseed = trng_mix64(cs);
		snprintf(cycle_ctx, sizeof(cycle_ctx),
		         "cycle %u (seed %#" PRIx64 ", harness %s %s %" PRIu64 ", %s after %u ms)",
		         cyc, seed, dir, mode, hseed, graceful ? "SIGTERM" : "SIGKILL", delay_ms);
		table_clear(&subs_run);

		double t0 = now_s();
		run_harness(harness, dir, mode, hseed, delay_ms, graceful, log, &ro);
		double t1 = now_s();
		sum.harness_s += t1 - t0;
		scan_log(log, &log_offset);
		parse_lines(&ro, &rl);
		sum.subs += rl.subs;
		if (!rl.go)
			sum.killed_before_go++;

		int st_ok = 1;
		if (ro.hung) {
			fail("the harness did not exit within %d ms of the signal", EXIT_WAIT_MS);
			st_ok = 0;
		} else if (WIFEXITED(ro.status)) {
			int code = WEXITSTATUS(ro.status);
			if (code == CRASH_EXIT_SKIP) {
				fprintf(stderr,
				        "crash_test: SKIP: io_uring refused by this kernel "
				        "(shard_open: %s); the crash test cannot run here\n",
				        rl.failmsg);
				tmpdir_remove(root);
				free_all(&ro, &rl);
				return 77;
			}
			if (!(graceful && code == 0 && !ro.killed)) {
				if (code == CRASH_EXIT_OPEN)
					fail("recovery failed: the harness's shard_open refused "
					     "the data directory: %s",
					     rl.failmsg[0] ? rl.failmsg : "(no message, see log)");
				else
					fail("harness exited with %d", code);
				st_ok = 0;
			}
		} else if (WIFSIGNALED(ro.status)) {
			if (!(ro.killed && WTERMSIG(ro.status) == SIGKILL)) {
				fail("harness died of signal %d (%s)", WTERMSIG(ro.status),
				     strsignal(WTERMSIG(ro.status)));
				st_ok = 0;
			}
		}
		if (graceful && st_ok) {
			sum.graceful++;
			if (!rl.bye)
				fail("graceful stop without \"bye\"");
			for (size_t i = 0; i < subs_run.cap; i++) {
				const kv *k = &subs_run.slots[i];
				if ((k->client || k->request) && k->val != 3) {
					fail("graceful stop: (client %" PRIu64 ", request %" PRIu64
					     ") was submitted but never acknowledged",
					     k->client, k->request);
					break;
				}
			}
		}
		for (uint32_t sh = 0; sh < CRASH_SHARDS; sh++)
			check_shard(sh, dir, &rl, graceful && st_ok);
		sum.check_s += now_s() - t1;
		if (failures)
			break;
		int last = cyc + 1 == cycles;
		if (last || (cyc + 1) % EPOCH_CYCLES == 0) {
			if (final_check(dir) != 0)
				break;
			if (!last) {
				if (!keep)
					tmpdir_remove(dir);
				epoch++;
				snprintf(dir, sizeof(dir), "%s/data-%u", root, epoch);
				snprintf(log, sizeof(log), "%s/harness-%u.log", root, epoch);
				log_offset = 0;
				state_reset();
			}
		}
		if (cycles >= 20 && (cyc + 1) % (cycles / 10) == 0)
			fprintf(stderr,
			        "crash_test: %u/%u cycles, %" PRIu64 " records, %" PRIu64
			        " acks, %.1f s\n",
			        cyc + 1, cycles, sum.records, sum.acks, now_s() - t_start);
	}
	double total = now_s() - t_start;
	if (failures) {
		log_tail(log);
		fprintf(stderr,
		        "crash_test: FAILED (%u failures) seed=%#" PRIx64 "; data kept in %s\n",
		        failures, seed, root);
		free_all(&ro, &rl);
		return 1;
	}
	printf("crash_test: PASS cycles=%u graceful=%u seed=%#" PRIx64 " records=%" PRIu64
	       " (commands %" PRIu64 " ticks %" PRIu64 ") subs=%" PRIu64 " acks=%" PRIu64
	       " unacked_at_crash_max=%" PRIu64 " recoveries=%" PRIu64 " from_snapshot=%" PRIu64
	       " with_cut_tail=%" PRIu64 " replayed_max=%" PRIu64
	       " killed_before_go=%u warnings=%" PRIu64
	       " harness_s=%.1f check_s=%.1f total_s=%.1f\n",
	       cycles, sum.graceful, seed, sum.records, sum.commands, sum.ticks, sum.subs, sum.acks,
	       sum.unacked_max, sum.recoveries, sum.snapshot_recoveries, sum.cut_recoveries,
	       sum.replayed_max, sum.killed_before_go, sum.warnings, sum.harness_s, sum.check_s,
	       total);
	fflush(stdout);
	if (!keep)
		tmpdir_remove(root);
	else
		fprintf(stderr, "crash_test: data kept in %s\n", root);
	free_all(&ro, &rl);
	return 0;
}
