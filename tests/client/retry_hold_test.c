/*
 * retry_hold_test.c — the client library's resends when a primary holds
 * thousands of commands (client/boxoffice.h "Several servers"; issue 13's
 * retry storm: with `--min-in-sync 2` and the standby dead, or during a
 * failover, a primary holds what it received and answers nothing).
 *
 * Stand-ins, nng REP sockets in raw mode in this process, so a server can
 * hold any number of requests and answer them later in one go:
 *  - A, the primary: holds every request until `resume_ns`, then answers
 *    each held one and every later one at once (ok for every command);
 *  - B, a standby: answers every command not_primary naming A.
 * The client knows both ("A,B"), 1 s timeouts, retries on.
 *
 * Proves (each failed against the first design, which resent each command
 * alone from nng's callback threads: see client.c, RESENDS):
 *  - after A resumes, every one of N = 8192 commands submitted before gets
 *    its answer, ok (its deadline is still ahead), exactly once, within
 *    the longest backoff and a detour through B (before: the last outcomes
 *    came 8-50 s after the resume, in some runs most were timeouts);
 *  - the resends do not storm the servers: they travel in batches (before:
 *    76,614-409,600 resends in as many messages) and no command reaches A
 *    more often than one copy per timeout (before: up to 26 copies);
 *  - the same with B dead (--min-in-sync 2 with the standby down: its
 *    address refuses connections), where every resend there waits out a
 *    timeout (before: 17,800-19,298 messages; under LeakSanitizer 29,598
 *    leaked requests, nng 1.5.2 having handed timed-out sends back as
 *    successes on aios that had slept);
 *  - a command that cannot be answered (A never resumes) ends with a clear
 *    no-answer (BOC_ERR_TIMEOUT, or B's not_primary when that was its last
 *    outcome) by its deadline, deadline_ms after boc_submit (before: none
 *    of the 8192 had an outcome after 30 s);
 *  - boc_close with every command parked for a resend ends each one with
 *    BOC_ERR_CLOSED before it returns;
 *  - nng's threads only carry nng's work: no context is opened, closed or
 *    sent on, and no message allocated, on one of them (the test wraps
 *    those calls at link time and counts the ones made on a thread nng
 *    named "nng:..."; before: 134,000-298,000 per test).
 * Servers listen on tcp://127.0.0.1 on ports the kernel picks.
 */
#if defined(__SANITIZE_THREAD__)
/* Criterion cannot start under ThreadSanitizer, and the resend pool is
 * shared by the flusher and nng's threads: tests/support/tsan_harness. */
#include "tests/support/tsan_harness.h"
#else
#include <criterion/criterion.h>
#endif

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack/sbuffer.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "base/clock.h"
#include "client/boxoffice.h"
#include "protocol/wire.h"

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer slows the codec ~20 times: a 4096-command message took
 * ~1 s to decode and answer, past the 1 s timeouts. Here the run is for
 * data races, with the same shape at a quarter of the size. */
#define CMDS 2048u
#else
#define CMDS 8192u /* commands held: two full batches */
#endif
#define REQUEST_BASE 1000000u /* request ids are REQUEST_BASE + i */
#define HELD_MAX (1u << 17)   /* messages a holding server can keep */

/* ---- Raw REP stand-ins ---------------------------------------------------- */

enum srv_mode {
	SRV_HOLD, /* hold until resume_ns, then ok for everything */
	SRV_NP,   /* not_primary naming `primary` */
};

typedef struct srv {
	nng_socket sock;
	char url[64];
	int mode;
	_Atomic int64_t resume_ns; /* SRV_HOLD: INT64_MAX = never */
	wire_primary primary;      /* SRV_NP: what the replies name */
	pthread_t thread;
	atomic_int stop;
	nng_msg **held; /* [HELD_MAX] */
	uint32_t nheld;
	/* Counters (the server thread writes, the test reads after stop or
	 * racily while it runs). */
	_Atomic uint64_t messages, commands;
	_Atomic uint32_t *seen; /* [CMDS]: copies of each request received */
	bo_cmd *cmds;           /* [WIRE_BATCH_MAX] decode scratch */
	wire_cmd_error *errs;
	bo_result *res;
	wire_primary *prim;
} srv;

/* Answers one request (raw mode: the reply carries the request's header,
 * the pipe and request id, back). */
static void srv_answer(srv *s, nng_msg *req)
{
	wire_msg m;
	int rv = wire_decode_request(nng_msg_body(req), nng_msg_len(req), s->cmds, s->errs,
	                             WIRE_BATCH_MAX, &m);
	cr_assert_eq(rv, 0, "undecodable request: %s", m.error);
	for (uint32_t i = 0; i < m.count; i++) {
		bo_result *r = &s->res[i];
		memset(r, 0, sizeof(*r));
		r->op = s->cmds[i].op;
		r->status = s->mode == SRV_HOLD ? BO_OK : BO_NOT_PRIMARY;
		r->client_id = s->cmds[i].client_id;
		r->request_id = s->cmds[i].request_id;
		r->event_id = s->cmds[i].event_id;
		r->claim_id = r->request_id; /* lets the test tell answers apart */
		s->prim[i] = s->primary;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_replies_primary(s->res, NULL, s->prim, m.count, m.is_array, &sb),
	             0);
	nng_msg *rep;
	cr_assert_eq(nng_msg_alloc(&rep, sb.size), 0);
	memcpy(nng_msg_body(rep), sb.data, sb.size);
	cr_assert_eq(nng_msg_header_append(rep, nng_msg_header(req), nng_msg_header_len(req)), 0);
	if (nng_sendmsg(s->sock, rep, 0) != 0)
		nng_msg_free(rep); /* the client went away: nobody to answer */
	msgpack_sbuffer_destroy(&sb);
}

static void srv_count(srv *s, nng_msg *req)
{
	wire_msg m;
	int rv = wire_decode_request(nng_msg_body(req), nng_msg_len(req), s->cmds, s->errs,
	                             WIRE_BATCH_MAX, &m);
	cr_assert_eq(rv, 0, "undecodable request: %s", m.error);
	atomic_fetch_add(&s->messages, 1);
	atomic_fetch_add(&s->commands, m.count);
	for (uint32_t i = 0; i < m.count; i++) {
		uint64_t k = s->cmds[i].request_id - REQUEST_BASE;
		if (k < CMDS)
			atomic_fetch_add(&s->seen[k], 1);
	}
}

static void *srv_main(void *arg)
{
	srv *s = arg;
	while (!atomic_load(&s->stop)) {
		bool holding = bo_clock_ns() < atomic_load(&s->resume_ns);
		if (!holding) {
			for (uint32_t i = 0; i < s->nheld; i++) {
				srv_answer(s, s->held[i]);
				nng_msg_free(s->held[i]);
			}
			s->nheld = 0;
		}
		nng_msg *req;
		int rv = nng_recvmsg(s->sock, &req, 0);
		if (rv == NNG_ETIMEDOUT)
			continue;
		cr_assert_eq(rv, 0, "recv: %s", nng_strerror(rv));
		srv_count(s, req);
		if (s->mode == SRV_HOLD && bo_clock_ns() < atomic_load(&s->resume_ns)) {
			cr_assert_lt(s->nheld, HELD_MAX, "the stand-in holds too many messages");
			s->held[s->nheld++] = req;
			continue;
		}
		srv_answer(s, req);
		nng_msg_free(req);
	}
	return NULL;
}

static srv *srv_start(int mode)
{
	srv *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	s->mode = mode;
	atomic_store(&s->resume_ns, INT64_MAX);
	s->seen = calloc(CMDS, sizeof(*s->seen));
	s->held = calloc(HELD_MAX, sizeof(*s->held));
	s->cmds = calloc(WIRE_BATCH_MAX, sizeof(*s->cmds));
	s->errs = calloc(WIRE_BATCH_MAX, sizeof(*s->errs));
	s->res = calloc(WIRE_BATCH_MAX, sizeof(*s->res));
	s->prim = calloc(WIRE_BATCH_MAX, sizeof(*s->prim));
	cr_assert(s->seen && s->held && s->cmds && s->errs && s->res && s->prim);
	cr_assert_eq(nng_rep0_open_raw(&s->sock), 0);
	nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 20);
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, WIRE_MSG_MAX + WIRE_SP_HEADER_BYTES);
	nng_listener l;
	int rv = nng_listen(s->sock, "tcp://127.0.0.1:0", &l, 0);
	cr_assert_eq(rv, 0, "listen: %s", nng_strerror(rv));
	nng_sockaddr sa;
	cr_assert_eq(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	snprintf(s->url, sizeof(s->url), "tcp://127.0.0.1:%d", ntohs(sa.s_in.sa_port));
	cr_assert_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

/* Makes s's not_primary replies name `to` as the primary. */
static void srv_names(srv *s, const srv *to)
{
	s->primary = (wire_primary){.epoch = 3, .known = 1, .node = 1};
	snprintf(s->primary.address, sizeof(s->primary.address), "%s", to->url);
}

static void srv_stop(srv *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	for (uint32_t i = 0; i < s->nheld; i++)
		nng_msg_free(s->held[i]);
	nng_close(s->sock);
	free(s->seen);
	free(s->held);
	free(s->cmds);
	free(s->errs);
	free(s->res);
	free(s->prim);
	free(s);
}

/* ---- Outcomes --------------------------------------------------------------- */

typedef struct outcome {
	int64_t submit_ns;
	_Atomic int64_t done_ns; /* 0 until the callback */
	atomic_int calls;
	int err;
	int status;
} outcome;

typedef struct run {
	outcome o[CMDS];
	atomic_uint done;
} run;

static void on_outcome(void *ctx, int err, const bo_result *res, const char *text)
{
	outcome *o = ctx;
	(void)text;
	o->err = err;
	o->status = res->status;
	atomic_fetch_add(&o->calls, 1);
	atomic_store(&o->done_ns, bo_clock_ns());
}

static run *the_run; /* what on_counted counts into */

static void on_counted(void *ctx, int err, const bo_result *res, const char *text)
{
	on_outcome(ctx, err, res, text);
	atomic_fetch_add(&the_run->done, 1);
}

static void submit_all(boc_client *c, run *r)
{
	the_run = r;
	for (uint32_t i = 0; i < CMDS; i++) {
		bo_cmd cmd;
		uint32_t seat = i;
		boc_hold_seats(&cmd, 77, REQUEST_BASE + i, 1, &seat, 1, 600000);
		r->o[i].submit_ns = bo_clock_ns();
		cr_assert_eq(boc_submit(c, &cmd, on_counted, &r->o[i]), 0);
	}
}

/* Waits until every callback ran or `limit_ns` passed. */
static void wait_all(run *r, int64_t limit_ns)
{
	while (atomic_load(&r->done) < CMDS && bo_clock_ns() < limit_ns)
		nng_msleep(5);
}

/* Every command got exactly one outcome. */
static void check_once_each(run *r)
{
	cr_assert_eq(atomic_load(&r->done), CMDS, "%u commands never got an outcome",
	             CMDS - atomic_load(&r->done));
	for (uint32_t i = 0; i < CMDS; i++)
		cr_assert_eq(atomic_load(&r->o[i].calls), 1, "command %u: %d callbacks", i,
		             atomic_load(&r->o[i].calls));
}

static boc_client *open_pair(const char *a, const char *b, const boc_retry_options *ro)
{
	boc_options o;
	boc_options_default(&o);
	o.timeout_ms = 1000;
	/* The commands leave in full batches, as from a loaded client, even
	 * where submitting them is slow (the sanitizer builds): with the
	 * default 200 us, small batches took every slot while A held them and
	 * the rest timed out in the local queue, which is not what this is
	 * about. */
	o.linger_us = 100000;
	const char *urls[2] = {a, b};
	boc_client *c;
	cr_assert_eq(boc_open_servers(urls, 2, &o, ro, &c), 0);
	return c;
}

/* ---- Which threads call nng ------------------------------------------------
 * tests/meson.build links this test with -Wl,--wrap= for the nng calls
 * that start work; each one made on a thread of nng's own (it names them
 * "nng:task", "nng:aio:expire", ...) is counted. The library may start a
 * receive from a send's completion (nng_ctx_recv, not wrapped): nothing
 * else belongs there. */
static atomic_uint on_nng_threads;

static void count_if_nng_thread(void)
{
	char name[16];
	if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
	    strncmp(name, "nng:", 4) == 0)
		atomic_fetch_add(&on_nng_threads, 1);
}

void __real_nng_ctx_send(nng_ctx ctx, nng_aio *aio);
void __wrap_nng_ctx_send(nng_ctx ctx, nng_aio *aio);
int __real_nng_ctx_open(nng_ctx *ctx, nng_socket sock);
int __wrap_nng_ctx_open(nng_ctx *ctx, nng_socket sock);
int __real_nng_ctx_close(nng_ctx ctx);
int __wrap_nng_ctx_close(nng_ctx ctx);
int __real_nng_msg_alloc(nng_msg **msg, size_t size);
int __wrap_nng_msg_alloc(nng_msg **msg, size_t size);

void __wrap_nng_ctx_send(nng_ctx ctx, nng_aio *aio)
{
	count_if_nng_thread();
	__real_nng_ctx_send(ctx, aio);
}

int __wrap_nng_ctx_open(nng_ctx *ctx, nng_socket sock)
{
	count_if_nng_thread();
	return __real_nng_ctx_open(ctx, sock);
}

int __wrap_nng_ctx_close(nng_ctx ctx)
{
	count_if_nng_thread();
	return __real_nng_ctx_close(ctx);
}

int __wrap_nng_msg_alloc(nng_msg **msg, size_t size)
{
	count_if_nng_thread();
	return __real_nng_msg_alloc(msg, size);
}

/* ---- Tests -------------------------------------------------------------------- */

#define HOLD_NS 4000000000 /* how long A holds */

/* A holds for HOLD_NS then answers; the other address is b_url (a standby
 * naming A, or a dead port). Every command must be answered ok soon after
 * A resumes, without a storm of resends, while nng's threads stay free. */
static void held_then_resumed(srv *a, const char *b_url, const srv *b, int64_t bound_ns)
{
	atomic_store(&on_nng_threads, 0);
	boc_client *c = open_pair(a->url, b_url, NULL);
	run *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	int64_t t0 = bo_clock_ns();
	int64_t resume = t0 + HOLD_NS;
	atomic_store(&a->resume_ns, resume);
	submit_all(c, r);
	wait_all(r, t0 + 60000000000);
	int64_t first = INT64_MAX, last = 0;
	uint32_t ok = 0, copies_max = 0;
	for (uint32_t i = 0; i < CMDS; i++) {
		int64_t d = atomic_load(&r->o[i].done_ns);
		if (d != 0 && d < first)
			first = d;
		if (d > last)
			last = d;
		ok += d != 0 && r->o[i].err == 0 && r->o[i].status == BO_OK;
		uint32_t copies = atomic_load(&a->seen[i]);
		if (copies > copies_max)
			copies_max = copies;
	}
	uint64_t messages = atomic_load(&a->messages) + (b ? atomic_load(&b->messages) : 0);
	fprintf(stderr,
	        "retry_hold: %u ok of %u; outcomes from %.2f to %.2f s after the resume; %" PRIu64
	        " resends in %" PRIu64 " messages (A %" PRIu64 ", B %" PRIu64
	        "); at most %u copies of a command at A; %u nng calls on nng's threads\n",
	        ok, CMDS, (double)(first - resume) / 1e9, (double)(last - resume) / 1e9,
	        boc_retries(c), messages, atomic_load(&a->messages),
	        b ? atomic_load(&b->messages) : 0, copies_max, atomic_load(&on_nng_threads));
	check_once_each(r);
	cr_assert_eq(ok, CMDS, "%u commands were not answered ok (their deadline was ahead)",
	             CMDS - ok);
	cr_assert_lt(last - resume, bound_ns, "last outcome %.2f s after the primary resumed",
	             (double)(last - resume) / 1e9);
	/* No storm: each copy at A cost a timeout (1 s) before the next went,
	 * and copies travel in batches (of up to 4096 commands). */
	cr_assert_leq(copies_max, 2 + HOLD_NS / 1000000000, "a command reached A %u times",
	              copies_max);
	cr_assert_lt(messages, 200, "%" PRIu64 " messages for the resends of %u commands", messages,
	             CMDS);
	cr_assert_eq(
	        atomic_load(&on_nng_threads), 0,
	        "%u contexts opened, closed or sent on, or messages allocated, on nng's threads",
	        atomic_load(&on_nng_threads));
	boc_close(c);
	free(r);
}

Test(retry_hold, held_commands_are_answered_soon_after_the_primary_resumes, .timeout = 120)
{
	srv *a = srv_start(SRV_HOLD);
	srv *b = srv_start(SRV_NP);
	srv_names(b, a);
	/* After the resume a command is back at A after at most the rest of
	 * its backoff (at most 4 x 200 ms) and a detour through B. */
	held_then_resumed(a, b->url, b, 2500000000);
	srv_stop(a);
	srv_stop(b);
}

/* --min-in-sync 2 with the standby dead: its address refuses connections,
 * so every resend there waits out its timeout for a connection. */
Test(retry_hold, held_commands_with_the_standby_dead, .timeout = 120)
{
	srv *dead = srv_start(SRV_NP);
	char dead_url[64];
	snprintf(dead_url, sizeof(dead_url), "%s", dead->url);
	srv_stop(dead);
	srv *a = srv_start(SRV_HOLD);
	/* Here the detour through B costs a timeout (1 s, waiting for a
	 * connection) and a second backoff: 0.8 + 1 + 0.8 s at most. */
	held_then_resumed(a, dead_url, NULL, 4000000000);
	srv_stop(a);
}

/* A never answers: every command ends with no answer by its deadline. */
Test(retry_hold, a_command_that_cannot_be_answered_ends_by_its_deadline, .timeout = 120)
{
	const int64_t deadline_ns = 3000000000, late_ns = 300000000;
	srv *a = srv_start(SRV_HOLD);
	srv *b = srv_start(SRV_NP);
	srv_names(b, a);
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.deadline_ms = (uint32_t)(deadline_ns / 1000000);
	atomic_store(&on_nng_threads, 0);
	boc_client *c = open_pair(a->url, b->url, &ro);
	run *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	int64_t t0 = bo_clock_ns();
	submit_all(c, r);
	wait_all(r, t0 + 30000000000);
	int64_t worst = 0;
	uint32_t timeouts = 0;
	for (uint32_t i = 0; i < CMDS; i++) {
		int64_t took = atomic_load(&r->o[i].done_ns) - r->o[i].submit_ns;
		if (took > worst)
			worst = took;
		timeouts += r->o[i].err == BOC_ERR_TIMEOUT;
	}
	fprintf(stderr,
	        "retry_hold: deadline %.1f s: %u timeouts of %u, the last %.3f s after its "
	        "submit; %" PRIu64 " resends\n",
	        deadline_ns / 1e9, timeouts, CMDS, worst / 1e9, boc_retries(c));
	check_once_each(r);
	for (uint32_t i = 0; i < CMDS; i++) {
		const outcome *o = &r->o[i];
		cr_assert(o->err == BOC_ERR_TIMEOUT || (o->err == 0 && o->status == BO_NOT_PRIMARY),
		          "command %u: err %d status %d: not a clear no-answer", i, o->err,
		          o->status);
	}
	cr_assert_gt(timeouts, 0);
	cr_assert_leq(worst, deadline_ns + late_ns, "an outcome came %.3f s after its submit",
	              worst / 1e9);
	cr_assert_gt(boc_retries(c), CMDS, "the commands were resent until their deadline");
	cr_assert_eq(atomic_load(&on_nng_threads), 0, "%u nng calls on nng's threads",
	             atomic_load(&on_nng_threads));
	boc_close(c);
	srv_stop(a);
	srv_stop(b);
	free(r);
}

/* boc_close with every command parked for a resend: each one's callback
 * runs before boc_close returns, with BOC_ERR_CLOSED, and nothing leaks
 * (the sanitizer build checks). A long backoff keeps them parked. */
Test(retry_hold, close_ends_the_resends_waiting, .timeout = 60)
{
	srv *a = srv_start(SRV_HOLD);
	srv *b = srv_start(SRV_NP);
	srv_names(b, a);
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.backoff_ms = 20000;
	ro.deadline_ms = 60000;
	boc_client *c = open_pair(a->url, b->url, &ro);
	run *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	submit_all(c, r);
	/* The first attempt times out at A after 1 s: then all are parked
	 * for 10-20 s. */
	int64_t limit = bo_clock_ns() + 30000000000;
	while (boc_retries(c) < CMDS && bo_clock_ns() < limit)
		nng_msleep(5);
	cr_assert_eq(boc_retries(c), CMDS, "%" PRIu64 " parked", boc_retries(c));
	cr_assert_eq(atomic_load(&r->done), 0);
	boc_close(c);
	check_once_each(r);
	for (uint32_t i = 0; i < CMDS; i++)
		cr_assert_eq(r->o[i].err, BOC_ERR_CLOSED, "command %u: %d", i, r->o[i].err);
	srv_stop(a);
	srv_stop(b);
	free(r);
}
