/*
 * etcd_test.c — the etcd client (cluster/etcd.h) against a real etcd 3.4
 * and against a fake one:
 *  - a private single member (support/etcd_proc): put/get/missing/delete;
 *    get_prefix's keys, order and revisions; the CAS as the shard map uses
 *    it (create once, stale mod_revision refused, fresh one accepted);
 *    leases (a key under an unrenewed lease disappears, one kept alive stays,
 *    revoke removes at once); watch (a change after the revision wakes it,
 *    live and from history; silence and changes outside the prefix time out);
 *    failover past a dead endpoint;
 *  - a fake HTTP server in a thread answering garbage, truncated JSON, wrong
 *    types, bad base64, error statuses and silence: each is a clean -EPROTO
 *    (or -ETIMEDOUT within the budget), never a crash; a well-formed answer
 *    is accepted (so the fake server itself is proven to be read); every
 *    cut of a valid answer and 300 seeded random damages of it end cleanly;
 *  - a 3-member cluster losing 2 members: a put is an error within
 *    timeout_ms plus slack, not a hang.
 * Without an etcd binary the real-etcd tests skip loudly.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "base/clock.h"
#include "cluster/etcd.h"
#include "tests/support/etcd_proc.h"

/* Per-call budget of the tests' handles: generous for sanitizer builds on
 * a loaded 2-core machine, small enough that a hang would show. */
#define CALL_MS 3000

/* How late past its budget a call may return: curl's timers are exact to a
 * few ms, the rest is scheduling on a loaded machine under sanitizers. */
#define SLACK_MS 1000

static tetcd cl;
static char err[512];

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Starts a private single member (or skips loudly) and opens a handle. */
static etcd *one_member(void)
{
	if (tetcd_binary() == NULL)
		cr_skip_test("SKIP: no etcd binary (/usr/bin/etcd, or set BO_ETCD_BIN): "
		             "install etcd-server to run the etcd client tests");
	int rc = tetcd_start(&cl, 1, NULL, err, sizeof(err));
	cr_assert_eq(rc, 0, "etcd start: %s", err);
	etcd *e = NULL;
	cr_assert_eq(etcd_open(cl.endpoints, CALL_MS, &e, err, sizeof(err)), 0, "%s", err);
	return e;
}

static void fini(void)
{
	tetcd_stop(&cl);
}

/* Ends a test: closes the handle and, in the ASan build, checks for leaks.
 * Criterion's workers end without LeakSanitizer's exit check (and a
 * failure in .fini does not count), so each test asks for it here: a leak
 * of the client, which runs for the life of a server's control thread,
 * then fails the test. */
static void finish(etcd *e)
{
	etcd_close(e);
#if defined(__SANITIZE_ADDRESS__)
	cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report above)");
#endif
}

TestSuite(cluster, .fini = fini);

Test(cluster, open_refuses_bad_endpoint_lists)
{
	etcd *e = NULL;
	const char *bad[] = {"",
	                     " ",
	                     "127.0.0.1:2379",
	                     "http://host",
	                     "http://h:1/path",
	                     "http://a:1,,http://b:2",
	                     "https://a:1",
	                     "http://a:1 x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(etcd_open(bad[i], 100, &e, err, sizeof(err)), -EINVAL, "'%s'", bad[i]);
	cr_assert_eq(etcd_open(" http://a:1 , http://b:2 ", 100, &e, err, sizeof(err)), 0, "%s",
	             err);
	cr_expect_str_eq(etcd_endpoint(e), "http://a:1");
	finish(e);
}

Test(cluster, put_get_delete)
{
	etcd *e = one_member();
	char *v = (char *)"untouched";
	size_t len = 99;
	int64_t mod = -1;
	cr_assert_eq(etcd_get(e, "/t/missing", &v, &len, &mod, err, sizeof(err)), 0, "%s", err);
	cr_expect_null(v);
	cr_expect_eq(len, 99, "untouched when missing");

	/* Bytes, including a NUL and high bytes, come back as they went. */
	const char val[] = {'a', '\0', (char)0xff, 'z'};
	cr_assert_eq(etcd_put(e, "/t/k", val, sizeof(val), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_get(e, "/t/k", &v, &len, &mod, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(len, sizeof(val));
	cr_expect_eq(memcmp(v, val, len), 0);
	cr_expect_eq(v[len], '\0', "NUL after the bytes");
	cr_expect_gt(mod, 0);
	free(v);

	/* An empty value is a present key. */
	cr_assert_eq(etcd_put(e, "/t/empty", "", 0, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_get(e, "/t/empty", &v, &len, NULL, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(len, 0);
	free(v);

	/* A large value (a body curl would send with "Expect: 100-continue"). */
	size_t big_len = 200 * 1024;
	char *big = malloc(big_len);
	cr_assert_not_null(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)(i * 7 + (i >> 8));
	cr_assert_eq(etcd_put(e, "/t/big", big, big_len, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_get(e, "/t/big", &v, &len, NULL, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(len, big_len);
	cr_expect_eq(memcmp(v, big, big_len), 0);
	free(v);
	free(big);

	cr_expect_eq(etcd_delete(e, "/t/k", err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(etcd_delete(e, "/t/k", err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(etcd_get(e, "/t/k", NULL, NULL, NULL, err, sizeof(err)), 0, "%s", err);
	finish(e);
}

Test(cluster, get_prefix_keys_and_revisions)
{
	etcd *e = one_member();
	etcd_kv *kvs = NULL;
	size_t n = 9;
	int64_t rev0 = 0, rev1 = 0, mod_b = 0;
	cr_assert_eq(etcd_get_prefix(e, "/p/", &kvs, &n, &rev0, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(n, 0);
	cr_expect_null(kvs);
	cr_expect_gt(rev0, 0);

	/* Neighbours outside the prefix ("/p" and "/p0": '0' follows '/'). */
	cr_assert_eq(etcd_put(e, "/p", "x", 1, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/p0", "x", 1, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/p/b", "2", 1, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/p/a", "1", 1, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/p/b", "22", 2, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_get(e, "/p/b", NULL, NULL, &mod_b, err, sizeof(err)), 1, "%s", err);

	cr_assert_eq(etcd_get_prefix(e, "/p/", &kvs, &n, &rev1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(kvs[0].key, "/p/a", "sorted by key");
	cr_expect_str_eq(kvs[1].key, "/p/b");
	cr_expect_eq(kvs[1].value_len, 2);
	cr_expect_str_eq(kvs[1].value, "22");
	cr_expect_eq(kvs[1].version, 2);
	cr_expect_eq(kvs[1].mod_revision, mod_b);
	cr_expect_lt(kvs[1].create_revision, kvs[1].mod_revision);
	cr_expect_eq(rev1, rev0 + 5, "five writes since the first read");
	cr_expect_eq(rev1, mod_b, "the last write was /p/b's");
	etcd_kvs_free(kvs, n);

	/* The empty prefix is every key. */
	cr_assert_eq(etcd_get_prefix(e, "", &kvs, &n, NULL, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(n, 4);
	etcd_kvs_free(kvs, n);
	finish(e);
}

Test(cluster, cas_create_and_swap)
{
	etcd *e = one_member();
	int64_t m1 = 0, m2 = 0, m3 = 0, seen = 0;
	cr_assert_eq(etcd_cas(e, "/s/0", 0, "e1", 2, 0, &m1, err, sizeof(err)), 1, "%s", err);
	cr_expect_gt(m1, 0);
	cr_expect_eq(etcd_cas(e, "/s/0", 0, "e9", 2, 0, &m2, err, sizeof(err)), 0,
	             "a second create fails: %s", err);
	cr_expect_eq(m2, 0, "untouched on failure");

	cr_assert_eq(etcd_cas(e, "/s/0", m1, "e2", 2, 0, &m2, err, sizeof(err)), 1, "%s", err);
	cr_expect_gt(m2, m1);
	cr_assert_eq(etcd_get(e, "/s/0", NULL, NULL, &seen, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(seen, m2, "new_mod_revision is the key's mod_revision");

	cr_expect_eq(etcd_cas(e, "/s/0", m1, "e3", 2, 0, &m3, err, sizeof(err)), 0,
	             "a stale mod_revision fails: %s", err);
	char *v = NULL;
	size_t len = 0;
	cr_assert_eq(etcd_get(e, "/s/0", &v, &len, NULL, err, sizeof(err)), 1, "%s", err);
	cr_expect_str_eq(v, "e2", "the failed swap wrote nothing");
	free(v);

	/* After a delete, the create path works again and the old revision no more. */
	cr_assert_eq(etcd_delete(e, "/s/0", err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(etcd_cas(e, "/s/0", m2, "e4", 2, 0, NULL, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(etcd_cas(e, "/s/0", 0, "e5", 2, 0, NULL, err, sizeof(err)), 1, "%s", err);
	finish(e);
}

Test(cluster, lease_expiry_keepalive_revoke)
{
	etcd *e = one_member();
	int64_t a = 0, b = 0, ttl_a = 0, ttl_b = 0, left = 0;
	cr_assert_eq(etcd_lease_grant(e, 1500, &a, &ttl_a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_lease_grant(e, 1500, &b, &ttl_b, err, sizeof(err)), 0, "%s", err);
	cr_expect_geq(ttl_a, 2, "1500 ms rounds up to 2 s");
	cr_assert_eq(etcd_put(e, "/n/a", "a", 1, a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/n/b", "b", 1, b, err, sizeof(err)), 0, "%s", err);
	etcd_kv *kvs = NULL;
	size_t n = 0;
	cr_assert_eq(etcd_get_prefix(e, "/n/", &kvs, &n, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_expect_eq(kvs[0].lease, a);
	etcd_kvs_free(kvs, n);

	/* Wait for /n/a to go (bound: TTL + 3 s), renewing b all along. */
	int64_t start = bo_clock_ms(), bound = start + ttl_a * 1000 + 3000;
	int got;
	while ((got = etcd_get(e, "/n/a", NULL, NULL, NULL, err, sizeof(err))) == 1) {
		cr_assert_lt(bo_clock_ms(), bound, "/n/a still there after TTL + 3 s");
		cr_assert_eq(etcd_lease_keepalive(e, b, &left, err, sizeof(err)), 1, "%s", err);
		cr_expect_eq(left, ttl_b);
		sleep_ms(200);
	}
	cr_assert_eq(got, 0, "%s", err);
	cr_expect_geq(bo_clock_ms() - start, 1000, "not before its TTL");
	cr_expect_eq(etcd_lease_keepalive(e, a, NULL, err, sizeof(err)), 0, "expired: %s", err);
	cr_expect_eq(etcd_put(e, "/n/a", "a", 1, a, err, sizeof(err)), -ENOENT,
	             "a put under an expired lease");

	/* b, granted with a, outlived a only because it was kept alive; one
	 * more TTL of renewals, and it is still there. */
	cr_expect_eq(etcd_get(e, "/n/b", NULL, NULL, NULL, err, sizeof(err)), 1, "%s", err);
	for (int64_t until = bo_clock_ms() + ttl_b * 1000; bo_clock_ms() < until;) {
		cr_assert_eq(etcd_lease_keepalive(e, b, NULL, err, sizeof(err)), 1, "%s", err);
		sleep_ms(300);
	}
	cr_expect_eq(etcd_get(e, "/n/b", NULL, NULL, NULL, err, sizeof(err)), 1, "%s", err);

	cr_expect_eq(etcd_lease_revoke(e, b, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(etcd_get(e, "/n/b", NULL, NULL, NULL, err, sizeof(err)), 0,
	             "gone at once on revoke: %s", err);
	cr_expect_eq(etcd_lease_revoke(e, b, err, sizeof(err)), 0, "twice: %s", err);
	cr_expect_eq(etcd_lease_keepalive(e, b, NULL, err, sizeof(err)), 0, "%s", err);
	finish(e);
}

/* A writer on its own handle, delay_ms after it starts. */
typedef struct later_put {
	const char *endpoints;
	const char *key;
	int delay_ms;
	int rc;
} later_put;

static void *put_later(void *arg)
{
	later_put *p = arg;
	char msg[256];
	etcd *e = NULL;
	sleep_ms(p->delay_ms);
	p->rc = etcd_open(p->endpoints, CALL_MS, &e, msg, sizeof(msg));
	if (p->rc == 0)
		p->rc = etcd_put(e, p->key, "w", 1, 0, msg, sizeof(msg));
	etcd_close(e);
	return NULL;
}

Test(cluster, watch_prefix)
{
	etcd *e = one_member();
	int64_t rev = 0, got = -1, put_rev = 0;
	etcd_kv *kvs = NULL;
	size_t n = 0;
	cr_assert_eq(etcd_get_prefix(e, "/w/", &kvs, &n, &rev, err, sizeof(err)), 0, "%s", err);

	/* Silence, and a change outside the prefix, time out with 0. */
	cr_assert_eq(etcd_put(e, "/wx", "x", 1, 0, err, sizeof(err)), 0, "%s", err);
	int64_t t0 = bo_clock_ms();
	cr_expect_eq(etcd_watch_prefix(e, "/w/", rev, 400, &got, err, sizeof(err)), 0, "%s", err);
	int64_t took = bo_clock_ms() - t0;
	cr_expect_geq(took, 350, "waited its timeout (%lld ms)", (long long)took);
	cr_expect_lt(took, 400 + SLACK_MS, "and not much longer (%lld ms)", (long long)took);
	cr_expect_eq(got, rev);

	/* A live change wakes it before its timeout. */
	later_put p = {.endpoints = cl.endpoints, .key = "/w/live", .delay_ms = 300};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, put_later, &p), 0);
	t0 = bo_clock_ms();
	cr_expect_eq(etcd_watch_prefix(e, "/w/", rev, 10000, &got, err, sizeof(err)), 1, "%s", err);
	took = bo_clock_ms() - t0;
	pthread_join(th, NULL);
	cr_assert_eq(p.rc, 0);
	cr_expect_lt(took, 5000, "woken by the put (%lld ms)", (long long)took);
	cr_assert_eq(etcd_get(e, "/w/live", NULL, NULL, &put_rev, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(got, put_rev);

	/* A change already made after the revision is found from history. */
	cr_expect_eq(etcd_watch_prefix(e, "/w/", rev, 5000, &got, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(got, put_rev);
	/* And from the change's own revision on, nothing new: timeout. */
	cr_expect_eq(etcd_watch_prefix(e, "/w/", put_rev, 300, &got, err, sizeof(err)), 0, "%s",
	             err);
	/* A delete is a change too. */
	cr_assert_eq(etcd_delete(e, "/w/live", err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(etcd_watch_prefix(e, "/w/", put_rev, 5000, &got, err, sizeof(err)), 1, "%s",
	             err);
	cr_expect_eq(got, put_rev + 1);
	finish(e);
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

Test(cluster, endpoint_failover)
{
	etcd *real = one_member();
	etcd_close(real);
	char list[256];
	snprintf(list, sizeof(list), "http://127.0.0.1:%d,%s", dead_port(), cl.m[0].url);
	etcd *e = NULL;
	cr_assert_eq(etcd_open(list, CALL_MS, &e, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_neq(etcd_endpoint(e), cl.m[0].url);
	cr_assert_eq(etcd_put(e, "/f", "1", 1, 0, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(etcd_endpoint(e), cl.m[0].url, "remembers the one that worked");
	cr_expect_eq(etcd_get(e, "/f", NULL, NULL, NULL, err, sizeof(err)), 1, "%s", err);
	etcd_close(e);

	/* A black hole first: a listener whose accept queue is full drops
	 * SYNs, so connecting hangs. The call gives it only its share of the
	 * budget and goes on to the live member within the same call. */
	int hole = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	cr_assert_eq(bind(hole, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(hole, 0), 0);
	cr_assert_eq(getsockname(hole, (struct sockaddr *)&a, &alen), 0);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	sleep_ms(100); /* let the handshakes of the fillers complete */
	snprintf(list, sizeof(list), "http://127.0.0.1:%d,%s", ntohs(a.sin_port), cl.m[0].url);
	cr_assert_eq(etcd_open(list, CALL_MS, &e, err, sizeof(err)), 0, "%s", err);
	int64_t t0 = bo_clock_ms();
	cr_expect_eq(etcd_put(e, "/f", "2", 1, 0, err, sizeof(err)), 0, "%s", err);
	int64_t took = bo_clock_ms() - t0;
	cr_log_info("past a black hole in %lld ms", (long long)took);
	cr_expect_lt(took, CALL_MS, "within the call's budget (%lld ms)", (long long)took);
	cr_expect_str_eq(etcd_endpoint(e), cl.m[0].url);
	etcd_close(e);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(hole);

	/* Only dead endpoints: an error, quickly. */
	snprintf(list, sizeof(list), "http://127.0.0.1:%d,http://127.0.0.1:%d", dead_port(),
	         dead_port());
	cr_assert_eq(etcd_open(list, CALL_MS, &e, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(etcd_put(e, "/f", "1", 1, 0, err, sizeof(err)), -ECONNREFUSED, "%s", err);
	finish(e);
}

/* ---- a fake etcd -------------------------------------------------------- */

/* Answers every request with the current canned answer; "hang" reads the
 * request and says nothing until the connection is closed by the client. */
typedef struct fake {
	int lfd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	char answer[4096]; /* the whole HTTP answer; "" means hang */
	atomic_int requests;
	atomic_bool stop;
} fake;

/* Reads one HTTP request (headers and Content-Length body) from fd. */
static void read_request(int fd)
{
	char buf[8192];
	size_t len = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 2000) <= 0)
			return;
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			return;
		len += (size_t)r;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		const char *cl_hdr = strcasestr(buf, "Content-Length:");
		if (end != NULL &&
		    (cl_hdr == NULL ||
		     (size_t)(end + 4 - buf) + strtoul(cl_hdr + 15, NULL, 10) <= len))
			return;
		if (len == sizeof(buf) - 1)
			return;
	}
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		read_request(fd);
		atomic_fetch_add(&f->requests, 1);
		pthread_mutex_lock(&f->lock);
		char out[sizeof(f->answer)];
		memcpy(out, f->answer, sizeof(out));
		pthread_mutex_unlock(&f->lock);
		if (out[0] != '\0') {
			ssize_t w = write(fd, out, strlen(out));
			(void)w;
		} else {
			/* Hang: wait for the client to give up (or the end). */
			char c;
			struct pollfd q = {.fd = fd, .events = POLLIN};
			while (!atomic_load(&f->stop) && poll(&q, 1, 50) == 0)
				;
			ssize_t r = read(fd, &c, 1);
			(void)r;
		}
		close(fd);
	}
	return NULL;
}

static void fake_start(fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->lfd, 16), 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

/* Sets the answer: an HTTP status and a body, sent with Connection: close
 * (and without a length when body_len < 0: read until the close). */
static void fake_answer(fake *f, int status, const char *body)
{
	pthread_mutex_lock(&f->lock);
	if (body == NULL)
		f->answer[0] = '\0';
	else
		snprintf(f->answer, sizeof(f->answer),
		         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		         status, strlen(body), body);
	pthread_mutex_unlock(&f->lock);
}

#define HDR "\"header\":{\"revision\":\"5\"}"

Test(cluster, malformed_answers_are_refused)
{
	fake f;
	fake_start(&f);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
	etcd *e = NULL;
	cr_assert_eq(etcd_open(url, 1000, &e, err, sizeof(err)), 0, "%s", err);
	char *v = NULL;
	size_t len = 0;
	int64_t mod = 0;

	/* The control: a well-formed answer is read (the fake is heard). */
	fake_answer(&f, 200,
	            "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"MQ==\","
	            "\"mod_revision\":\"3\"}],\"count\":\"1\"}");
	cr_assert_eq(etcd_get(e, "a", &v, &len, &mod, err, sizeof(err)), 1, "%s", err);
	cr_expect_str_eq(v, "1");
	cr_expect_eq(mod, 3);
	free(v);

	const char *bad_get[] = {
	        "hello",
	        "",
	        "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"val",            /* truncated */
	        "[1,2]",                                                /* not an object */
	        "{\"kvs\":[]}",                                         /* no header */
	        "{\"header\":{\"revision\":\"abc\"}}",                  /* not a number */
	        "{\"header\":{\"revision\":\"99999999999999999999\"}}", /* overflows */
	        "{\"header\":{\"revision\":true}}",                     /* wrong type */
	        "{" HDR ",\"kvs\":\"x\"}",                              /* kvs not an array */
	        "{" HDR ",\"kvs\":[7]}",                                /* kv not an object */
	        "{" HDR ",\"kvs\":[{\"key\":\"!!!!\",\"mod_revision\":\"2\"}]}", /* bad base64 */
	        "{" HDR ",\"kvs\":[{\"key\":\"YQ=\",\"mod_revision\":\"2\"}]}",  /* bad length */
	        "{" HDR ",\"kvs\":[{\"key\":\"YR==\",\"mod_revision\":\"2\"}]}", /* not canonical */
	        "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"value\":5,\"mod_revision\":\"2\"}]}",
	        "{" HDR ",\"kvs\":[{\"key\":\"YQ==\"}]}", /* no mod_revision */
	        "{" HDR ",\"kvs\":[{\"key\":\"Yg==\",\"mod_revision\":\"2\"}]}", /* another key */
	        "{" HDR ",\"kvs\":[{\"key\":\"YQBh\",\"mod_revision\":\"2\"}]}", /* NUL in key */
	};
	for (size_t i = 0; i < sizeof(bad_get) / sizeof(bad_get[0]); i++) {
		fake_answer(&f, 200, bad_get[i]);
		v = (char *)"untouched";
		cr_expect_eq(etcd_get(e, "a", &v, &len, &mod, err, sizeof(err)), -EPROTO,
		             "answer %zu: %s", i, bad_get[i]);
		cr_expect_null(v, "answer %zu", i);
		cr_expect_neq(err[0], '\0', "a message for answer %zu", i);
	}

	/* Error statuses: etcd's error body is mapped; anything else is -EPROTO. */
	fake_answer(&f, 503,
	            "{\"error\":\"etcdserver: no leader\",\"message\":"
	            "\"etcdserver: no leader\",\"code\":14}");
	cr_expect_eq(etcd_put(e, "a", "1", 1, 0, err, sizeof(err)), -EAGAIN, "%s", err);
	cr_expect(strstr(err, "no leader") != NULL, "%s", err);
	fake_answer(&f, 500, "oops");
	cr_expect_eq(etcd_put(e, "a", "1", 1, 0, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 404, "{\"code\":\"x\"}");
	cr_expect_eq(etcd_put(e, "a", "1", 1, 0, err, sizeof(err)), -EPROTO, "%s", err);

	/* The other calls' own fields. */
	fake_answer(&f, 200, "{" HDR ",\"succeeded\":\"yes\"}");
	cr_expect_eq(etcd_cas(e, "a", 0, "1", 1, 0, NULL, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{" HDR ",\"ID\":\"12\"}");
	int64_t id = 0;
	cr_expect_eq(etcd_lease_grant(e, 1000, &id, NULL, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{" HDR ",\"TTL\":\"2\",\"ID\":\"-4\"}");
	cr_expect_eq(etcd_lease_grant(e, 1000, &id, NULL, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{\"result\":{\"ID\":\"12\",\"TTL\":\"2\"}}");
	cr_expect_eq(etcd_lease_keepalive(e, 12, NULL, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{\"result\":7}");
	cr_expect_eq(etcd_lease_keepalive(e, 12, NULL, err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{" HDR ",\"deleted\":\"2\"}");
	cr_expect_eq(etcd_delete(e, "a", err, sizeof(err)), -EPROTO, "%s", err);
	fake_answer(&f, 200, "{" HDR ",\"kvs\":[],\"more\":1}");
	etcd_kv *kvs = NULL;
	size_t n = 0;
	cr_expect_eq(etcd_get_prefix(e, "a", &kvs, &n, NULL, err, sizeof(err)), -EPROTO, "%s", err);

	/* A watch stream: created, then garbage. And a stream that ends. */
	int64_t rev = 0;
	fake_answer(&f, 200, "{\"result\":{" HDR ",\"created\":true}}\nnot json\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 4, 1000, &rev, err, sizeof(err)), -EPROTO, "%s",
	             err);
	fake_answer(&f, 200, "{\"result\":{" HDR ",\"created\":true}}\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 4, 1000, &rev, err, sizeof(err)), -EIO, "%s", err);
	fake_answer(&f, 200, "{\"result\":{" HDR ",\"events\":{}}}\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 4, 1000, &rev, err, sizeof(err)), -EPROTO, "%s",
	             err);
	/* History compacted past the revision: a change (the caller re-reads). */
	fake_answer(&f, 200,
	            "{\"result\":{" HDR ",\"created\":true}}\n{\"result\":{" HDR
	            ",\"canceled\":true,\"compact_revision\":\"4\"}}\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 2, 1000, &rev, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(rev, 4);
	fake_answer(&f, 200, "{\"result\":{" HDR ",\"canceled\":true}}\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 2, 1000, &rev, err, sizeof(err)), -EIO, "%s", err);
	/* The control: an event is read. */
	fake_answer(&f, 200,
	            "{\"result\":{" HDR ",\"created\":true}}\n{\"result\":{" HDR
	            ",\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"5\"}}]}}\n");
	cr_expect_eq(etcd_watch_prefix(e, "a", 4, 1000, &rev, err, sizeof(err)), 1, "%s", err);
	cr_expect_eq(rev, 5);

	/* Silence: -ETIMEDOUT within the handle's 1000 ms (plus slack). */
	fake_answer(&f, 200, NULL);
	int64_t t0 = bo_clock_ms();
	cr_expect_eq(etcd_put(e, "a", "1", 1, 0, err, sizeof(err)), -ETIMEDOUT, "%s", err);
	int64_t took = bo_clock_ms() - t0;
	cr_expect_lt(took, 1000 + SLACK_MS, "returned after %lld ms", (long long)took);
	cr_expect_geq(took, 900, "gave it its time (%lld ms)", (long long)took);
	cr_expect_eq(etcd_watch_prefix(e, "a", 4, 500, &rev, err, sizeof(err)), -ETIMEDOUT,
	             "a watch never created is no 'nothing changed': %s", err);
	fake_stop(&f);
	finish(e);
}

/* Every cut of a valid answer, and random byte changes in it, give a clean
 * result (read, missing, or an error with a message), never a crash or a
 * sanitizer report; every cut is refused. Seeded: the failing seed and
 * answer are printed. */
Test(cluster, damaged_answers_never_crash)
{
	fake f;
	fake_start(&f);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
	etcd *e = NULL;
	cr_assert_eq(etcd_open(url, 1000, &e, err, sizeof(err)), 0, "%s", err);
	const char *good = "{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\","
	                   "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"aGVsbG8=\","
	                   "\"lease\":\"7\"}],\"count\":\"1\"}";
	size_t good_len = strlen(good);
	char body[512];
	char *v = NULL;
	size_t len = 0;
	for (size_t cut = 0; cut < good_len; cut++) {
		memcpy(body, good, cut);
		body[cut] = '\0';
		fake_answer(&f, 200, body);
		cr_assert_eq(etcd_get(e, "a", &v, &len, NULL, err, sizeof(err)), -EPROTO,
		             "cut at %zu: %s", cut, body);
	}
	uint64_t seed = 0x5eed0001u;
	for (int round = 0; round < 300; round++) {
		memcpy(body, good, good_len + 1);
		uint64_t x = seed + (uint64_t)round * 0x9e3779b97f4a7c15u;
		for (int k = 0; k < 1 + round % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Printable changes, so the fake's text stays a C string. */
			body[x % good_len] = (char)(0x20 + (x >> 32) % 0x5f);
		}
		fake_answer(&f, 200, body);
		v = NULL;
		int rc = etcd_get(e, "a", &v, &len, NULL, err, sizeof(err));
		cr_assert(rc == 1 || rc == 0 || rc == -EPROTO, "round %d (seed %#llx): %d for %s",
		          round, (unsigned long long)seed, rc, body);
		if (rc == 1) {
			cr_assert_eq(v[len], '\0');
			free(v);
		} else {
			cr_assert_null(v);
		}
		cr_assert(rc >= 0 || err[0] != '\0', "a message for round %d", round);
	}
	fake_stop(&f);
	finish(e);
}

Test(cluster, quorum_loss_is_an_error_not_a_hang, .timeout = 120)
{
	if (tetcd_binary() == NULL)
		cr_skip_test("SKIP: no etcd binary (/usr/bin/etcd, or set BO_ETCD_BIN): "
		             "install etcd-server to run the etcd client tests");
	const char *ips[] = {"127.0.0.21", "127.0.0.22", "127.0.0.23"};
	int rc = tetcd_start(&cl, 3, ips, err, sizeof(err));
	cr_assert_eq(rc, 0, "etcd start: %s", err);
	etcd *e = NULL;
	int timeout_ms = 1000;
	cr_assert_eq(etcd_open(cl.endpoints, timeout_ms, &e, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(etcd_put(e, "/q", "1", 1, 0, err, sizeof(err)), 0, "%s", err);

	/* A hung member (SIGSTOP) first in the list: the call times out
	 * within its budget, and the next calls go to the others, which
	 * carry on (after electing a new leader if it led). */
	cr_assert_eq(tetcd_pause(&cl, 0), 0);
	int64_t t0 = bo_clock_ms();
	rc = etcd_put(e, "/q", "p", 1, 0, err, sizeof(err));
	int64_t took = bo_clock_ms() - t0;
	cr_expect_eq(rc, -ETIMEDOUT, "%s", err);
	cr_expect_lt(took, timeout_ms + SLACK_MS, "returned after %lld ms", (long long)took);
	cr_expect_str_eq(etcd_endpoint(e), cl.m[1].url, "the next call starts elsewhere");
	int64_t bound = bo_clock_ms() + 15000;
	while ((rc = etcd_put(e, "/q", "p", 1, 0, err, sizeof(err))) < 0)
		cr_assert_lt(bo_clock_ms(), bound, "no progress without the hung member: %s", err);
	cr_log_info("progress without the hung member after %lld ms",
	            (long long)(bo_clock_ms() - t0));
	cr_assert_eq(tetcd_resume(&cl, 0), 0);

	cr_assert_eq(tetcd_kill(&cl, 1), 0);
	cr_assert_eq(tetcd_kill(&cl, 2), 0);
	for (int i = 0; i < 3; i++) {
		t0 = bo_clock_ms();
		rc = etcd_put(e, "/q", "2", 1, 0, err, sizeof(err));
		took = bo_clock_ms() - t0;
		cr_expect(rc == -ETIMEDOUT || rc == -EAGAIN || rc == -ECONNREFUSED,
		          "put %d without quorum: %d %s", i, rc, err);
		cr_expect_lt(took, timeout_ms + SLACK_MS, "put %d returned after %lld ms", i,
		             (long long)took);
		cr_log_info("put %d without quorum: %lld ms: %s", i, (long long)took, err);
	}
	t0 = bo_clock_ms();
	rc = etcd_get(e, "/q", NULL, NULL, NULL, err, sizeof(err));
	cr_expect_lt(rc, 0, "a linearizable read without quorum fails");
	cr_expect_lt(bo_clock_ms() - t0, timeout_ms + SLACK_MS);
	finish(e);
}
