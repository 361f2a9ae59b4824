/*
 * slow_subscribers_test.c — subscribers that never read cannot grow the
 * server's memory, and the server bounds how many there are.
 *
 * A child process opens BO_SUBSCRIBERS_MAX + SUB_EXTRA raw connections to
 * the server's PUB socket (ipc://), sends each one's SP handshake as a
 * SUB peer, and then never reads a byte. The server (in this process)
 * must refuse exactly SUB_EXTRA of them. Then writes run in two equal
 * phases, each publishing a message per request to every subscriber:
 * the server's resident memory after the second phase may not exceed the
 * first's by more than RSS_SLACK (a queue per subscriber that grew with
 * the messages would add gigabytes: 16 Ki subscribers x hundreds of
 * messages), and every write is answered ok. Latencies of the writes with
 * and without the subscribers are printed for the record (speed is the
 * benchmark's business, scripts/bench reads).
 *
 * Needs 16 Ki + file descriptors in each process: when RLIMIT_NOFILE's
 * hard limit is lower, the test is skipped, loudly.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "base/limits.h"
#include "gateway/gateway.h"
#include "protocol/wire.h"
#include "tests/support/cmd.h"
#include "tests/support/tmpdir.h"

#define WAIT_MS 60000
#define SUB_EXTRA 16u
#define SUBS (BO_SUBSCRIBERS_MAX + SUB_EXTRA)
#define RSS_SLACK (48u << 20)
#define PHASE_REQUESTS 300u
#define CMDS_PER_REQUEST 16u

static char g_dir[PATH_MAX];
static gw_server *g_gw;
static pid_t g_child = -1;

static void fini(void)
{
	if (g_child > 0) {
		kill(g_child, SIGKILL);
		waitpid(g_child, NULL, 0);
	}
	if (g_gw) {
		gw_stop(g_gw, 5000);
		if (!gw_close_hung(g_gw))
			gw_free(g_gw);
	}
	if (g_dir[0])
		tmpdir_remove(g_dir);
}

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert_not_null(f);
	unsigned long size, resident;
	cr_assert_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The child: SUBS connections that never read; says "ready" on `ready`,
 * then waits for `hold` to close. */
static void child_main(const char *path, int ready, int hold)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		_exit(1); /* checked before the fork */
	memcpy(sa.sun_path, path, len + 1);
	/* The SP handshake of a SUB v0 peer (protocol 0x21). */
	static const unsigned char hello[8] = {0x00, 'S', 'P', 0x00, 0x00, 0x21, 0x00, 0x00};
	for (uint32_t i = 0; i < SUBS; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello)) {
			fprintf(stderr, "child: subscriber %u: %s\n", i, strerror(errno));
			_exit(1);
		}
	}
	if (write(ready, "k", 1) != 1)
		_exit(1);
	char c;
	while (read(hold, &c, 1) > 0)
		;
	_exit(0);
}

static void raise_nofile(rlim_t need)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < need) {
		rl.rlim_max = need;
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			cr_skip_test(
			        "SKIP: needs %lu file descriptors per process, RLIMIT_NOFILE allows %lu",
			        (unsigned long)need, (unsigned long)rl.rlim_max);
	}
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Runs one phase of writes: PHASE_REQUESTS requests that block 16 seats
 * and unblock them again; every one answered ok. Returns the p99 latency in us. */
static int64_t phase(nng_socket s, uint64_t *request)
{
	static int64_t lat[PHASE_REQUESTS];
	for (uint32_t r = 0; r < PHASE_REQUESTS; r++) {
		bo_cmd cmds[CMDS_PER_REQUEST];
		for (uint32_t i = 0; i < CMDS_PER_REQUEST; i++) {
			/* Even requests block 16 seats, odd ones unblock them. */
			uint32_t seat = 100 + i;
			cmds[i] = tcmd_seats(r % 2 ? BO_OP_UNBLOCK : BO_OP_BLOCK, 1, ++*request, 1,
			                     &seat, 1);
		}
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		cr_assert_eq(wire_encode_request(cmds, CMDS_PER_REQUEST, 1, &sb), 0);
		int64_t t0 = now_us();
		cr_assert_eq(nng_send(s, sb.data, sb.size, 0), 0);
		msgpack_sbuffer_destroy(&sb);
		nng_msg *m;
		cr_assert_eq(nng_recvmsg(s, &m, 0), 0, "a write was not answered");
		lat[r] = now_us() - t0;
		bo_result res[CMDS_PER_REQUEST];
		wire_msg wm;
		cr_assert_eq(wire_decode_replies(nng_msg_body(m), nng_msg_len(m), res, NULL,
		                                 CMDS_PER_REQUEST, &wm),
		             0);
		nng_msg_free(m);
		for (uint32_t i = 0; i < CMDS_PER_REQUEST; i++)
			cr_assert_eq(res[i].status, BO_OK, "request %u command %u: %s/%s", r, i,
			             bo_status_str(res[i].status), bo_detail_str(res[i].detail));
	}
	for (uint32_t i = 1; i < PHASE_REQUESTS; i++)
		for (uint32_t j = i; j > 0 && lat[j - 1] > lat[j]; j--) {
			int64_t x = lat[j];
			lat[j] = lat[j - 1];
			lat[j - 1] = x;
		}
	return lat[PHASE_REQUESTS * 99 / 100];
}

/* Waits until the publisher's queue is empty (every message handed to nng). */
static void wait_published(void)
{
	int64_t deadline = now_us() + WAIT_MS * 1000LL;
	gw_stats st;
	for (gw_stats_get(g_gw, &st); st.pub.queued > 0; gw_stats_get(g_gw, &st)) {
		cr_assert_lt(now_us(), deadline, "the publisher never drained its queue");
		usleep(1000);
	}
}

Test(slow_subscribers, never_reading_subscribers_cannot_grow_memory, .fini = fini, .timeout = 600)
{
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(SUBS + 1024);
	cr_assert_eq(tmpdir_make(g_dir, sizeof(g_dir), "bo-slowsub-test"), 0);
	char data[PATH_MAX + 8], url[PATH_MAX + 16], pub[PATH_MAX + 16], pubpath[PATH_MAX + 8];
	snprintf(data, sizeof(data), "%s/data", g_dir);
	snprintf(url, sizeof(url), "ipc://%s/sock", g_dir);
	snprintf(pubpath, sizeof(pubpath), "%s/pub", g_dir);
	snprintf(pub, sizeof(pub), "ipc://%s", pubpath);
	cr_assert_eq(mkdir(data, 0700), 0);
	cr_assert_lt(strlen(pubpath), sizeof(((struct sockaddr_un *)0)->sun_path),
	             "socket path too long: %s", pubpath);
	gw_config cfg;
	gw_config_default(&cfg);
	cfg.data_dir = data;
	cfg.shards = 1;
	cfg.listen[0] = url;
	cfg.listen_count = 1;
	cfg.publish[0] = pub;
	cfg.publish_count = 1;
	cfg.contexts = 4;
	cfg.status_every_ms = 0;
	cfg.shard.engine.seats_max = 65536;
	cfg.shard.engine.claims_max = 65536;
	cfg.shard.engine.idem_capacity = 65536;
	cfg.shard.engine.events_max = 16;
	char err[GW_ERR_LEN];
	cr_assert_eq(gw_start(&cfg, &g_gw, err, sizeof(err)), 0, "gw_start: %s", err);

	nng_socket s;
	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, WAIT_MS);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	bo_seatmap *m = tcmd_rows_map(10, 100, 0, 0);
	bo_cmd c = tcmd_create(1, 1, 1, m);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_assert_eq(wire_encode_request(&c, 1, 0, &sb), 0);
	cr_assert_eq(nng_send(s, sb.data, sb.size, 0), 0);
	msgpack_sbuffer_destroy(&sb);
	nng_msg *rm;
	cr_assert_eq(nng_recvmsg(s, &rm, 0), 0);
	nng_msg_free(rm);
	uint64_t request = 10;
	int64_t p99_alone = phase(s, &request);

	int ready[2], hold[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(hold), 0);
	g_child = fork();
	cr_assert_geq(g_child, 0);
	if (g_child == 0) {
		close(ready[0]);
		close(hold[1]);
		child_main(pubpath, ready[1], hold[0]);
	}
	close(ready[1]);
	close(hold[0]);
	char k;
	cr_assert_eq(read(ready[0], &k, 1), 1, "the child could not connect its subscribers");

	/* The server takes BO_SUBSCRIBERS_MAX of them and refuses the rest. */
	int64_t deadline = now_us() + WAIT_MS * 1000LL;
	gw_stats st;
	for (gw_stats_get(g_gw, &st);
	     st.pub.subscribers < BO_SUBSCRIBERS_MAX || st.pub.subscribers_refused < SUB_EXTRA;
	     gw_stats_get(g_gw, &st)) {
		cr_assert_lt(now_us(), deadline, "subscribers %u, refused %lu", st.pub.subscribers,
		             (unsigned long)st.pub.subscribers_refused);
		usleep(10000);
	}
	cr_assert_eq(st.pub.subscribers, BO_SUBSCRIBERS_MAX);
	cr_assert_eq(st.pub.subscribers_refused, SUB_EXTRA);

	size_t rss0 = rss_bytes();
	int64_t p99_a = phase(s, &request);
	wait_published();
	size_t rss1 = rss_bytes();
	int64_t p99_b = phase(s, &request);
	wait_published();
	size_t rss2 = rss_bytes();
	gw_stats_get(g_gw, &st);
	cr_log_info(
	        "%u subscribers that never read: RSS %.1f MiB before the writes, %.1f MiB after %u requests, "
	        "%.1f MiB after %u; published %lu, dropped by the queue %lu; write p99 %ld us alone, %ld/%ld us "
	        "with them",
	        st.pub.subscribers, rss0 / 1048576.0, rss1 / 1048576.0, PHASE_REQUESTS,
	        rss2 / 1048576.0, 2 * PHASE_REQUESTS, (unsigned long)st.pub.published,
	        (unsigned long)st.pub.dropped, (long)p99_alone, (long)p99_a, (long)p99_b);
	cr_assert_gt(st.pub.published, 2 * PHASE_REQUESTS - 1, "the writes published nothing");
	cr_assert_leq(
	        rss2, rss1 + RSS_SLACK,
	        "memory grew with the messages: %.1f MiB after the first phase, %.1f MiB after the second",
	        rss1 / 1048576.0, rss2 / 1048576.0);

	/* The subscribers go: the server forgets them. */
	close(hold[1]);
	cr_assert_eq(waitpid(g_child, NULL, 0), g_child);
	g_child = -1;
	deadline = now_us() + WAIT_MS * 1000LL;
	for (gw_stats_get(g_gw, &st); st.pub.subscribers > 0; gw_stats_get(g_gw, &st)) {
		cr_assert_lt(now_us(), deadline, "%u subscribers still counted after they closed",
		             st.pub.subscribers);
		usleep(10000);
	}
	bo_seatmap_free(m);
	nng_close(s);
	cr_assert_eq(gw_stop(g_gw, WAIT_MS), 0);
	if (!gw_close_hung(g_gw))
		gw_free(g_gw);
	g_gw = NULL;
}
