/*
 * bench_http — the HTTP/JSON front of boxoffice-server end to end
 * (issue 10's fields of `scripts/bench e2e`, which runs this after
 * bench_e2e and merges the two JSON lines).
 *
 *   http_requests_per_sec   one command per request (hold_pool of one
 *                           ticket, 1 s TTL, a fresh client each), keep-alive,
 *                           saturated: wrk (Debian's) when installed, with 512
 *                           connections (--connections), else this program's
 *                           closed loop
 *   http_ok_fraction        of those requests, answered 200
 *   http_latency_ms_p50/p99 at 20,000 requests/s offered, open loop: each
 *                           request has a due time (1/rate apart, spread over
 *                           the connections) and its latency counts from
 *                           that time, so a stalled server is not hidden by
 *                           requests that were never sent
 *   metrics_scrape_ms       GET /metrics on a keep-alive connection, median of
 *                           50 after the load (and its max)
 *
 * A server is started as a child (--sync data, 2 shards, --throttle-rate 0
 * so the load is not throttled: this measures the front, not the bucket).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static const char *prog = "bench_http";
static pid_t server_pid;
static char data_dir[256];
static int port;
/* wrk's connections: each waits for its answer, which waits for a journal
 * sync (~3 ms here), so by Little's law 64 connections cap the rate near
 * 20k/s whatever the server could do; 512 keep it saturated. */
static unsigned wrk_conns = 512;

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void stop_server(void) { bench_server_stop(prog, &server_pid, data_dir); }

static void start_server(const char *path)
{
	snprintf(data_dir, sizeof(data_dir), "/var/tmp/boxoffice-bench-http-XXXXXX");
	if (!mkdtemp(data_dir))
		bench_die(prog, "mkdtemp", -errno);
	char addr[64], listen[300];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(listen, sizeof(listen), "ipc://%s/sock", data_dir);
	server_pid = fork();
	if (server_pid < 0)
		bench_die(prog, "fork", -errno);
	if (server_pid == 0) {
		execl(path, path, "--data-dir", data_dir, "--listen", listen, "--http", addr, "--shards", "2",
		      "--log-level", "warn", "--no-pg", "--status-every", "0", "--throttle-rate", "0", (char *)NULL);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, path, strerror(errno));
		_exit(127);
	}
}

/* ---- A minimal HTTP/1.1 client: one request at a time per connection ------- */

typedef struct conn {
	int fd;
	char in[65536];
	size_t in_len;
	int busy;
	int64_t due;   /* the request's due time (open loop) or send time */
	uint64_t sent; /* requests sent on it */
} conn;

static int conn_open(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		bench_die(prog, "socket", -errno);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			bench_die(prog, "send", -errno);
		buf += n;
		len -= (size_t)n;
	}
}

/* A complete response at the start of c->in: its status, and it is
 * consumed. Returns the status, 0 when incomplete. */
static int take_response(conn *c)
{
	char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	size_t head = (size_t)(end - c->in) + 4, body = 0;
	char *cl = memmem(c->in, head, "Content-Length: ", 16);
	if (cl)
		body = strtoul(cl + 16, NULL, 10);
	if (c->in_len < head + body)
		return 0;
	int status = atoi(c->in + 9);
	memmove(c->in, c->in + head + body, c->in_len - head - body);
	c->in_len -= head + body;
	return status;
}

/* Reads what is there (nonblocking fd); -1 on a closed connection. */
static int conn_read(conn *c)
{
	for (;;) {
		if (c->in_len == sizeof(c->in))
			bench_die(prog, "response larger than the buffer", -EOVERFLOW);
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static uint64_t client_seq = 1000000;

/* One hold_pool request of one ticket for a fresh client. */
static size_t make_request(char *buf, size_t cap, uint32_t events)
{
	uint64_t client = ++client_seq;
	char body[256];
	int bn = snprintf(body, sizeof(body),
			  "{\"op\":\"hold_pool\",\"event\":%" PRIu64 ",\"client\":%" PRIu64
			  ",\"request\":1,\"pool\":0,\"quantity\":1,\"ttl_ms\":1000}",
			  (uint64_t)(1 + client % events), client);
	int n = snprintf(buf, cap,
			 "POST /v1/command HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\n\r\n%s",
			 bn, body);
	return (size_t)n;
}

static int http_once(int fd, const char *req, size_t len, conn *c)
{
	send_all(fd, req, len);
	int status;
	while ((status = take_response(c)) == 0) {
		ssize_t n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
	}
	return status;
}

static void wait_ready(void)
{
	int64_t deadline = now_ns() + 60 * (int64_t)1000000000;
	for (;;) {
		int fd = conn_open();
		if (fd >= 0) {
			static conn c;
			c.in_len = 0;
			const char req[] = "GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n";
			int st = http_once(fd, req, sizeof(req) - 1, &c);
			close(fd);
			if (st == 200)
				return;
		}
		if (now_ns() > deadline)
			bench_die(prog, "the server did not become ready within 60 s", -ETIMEDOUT);
		usleep(20000);
	}
}

#define EVENTS 8u

static void create_events(void)
{
	int fd = conn_open();
	static conn c;
	for (uint32_t e = 1; e <= EVENTS; e++) {
		char body[256], req[512];
		int bn = snprintf(body, sizeof(body),
				  "{\"op\":\"create_event\",\"event\":%u,\"client\":1,\"request\":%u,"
				  "\"map\":{\"pools\":[1000000]}}",
				  e, e);
		int n = snprintf(req, sizeof(req),
				 "POST /v1/command HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s", bn,
				 body);
		int st = http_once(fd, req, (size_t)n, &c);
		if (st != 200)
			bench_die(prog, "create_event over HTTP", -EPROTO);
	}
	close(fd);
}

/* ---- Open loop: `rate` requests/s for `ns`, latencies from due times ------ */

typedef struct loop_result {
	double rate, ok_fraction;
	bench_pcts lat;
	uint64_t done;
} loop_result;

static loop_result run_loop(double rate, uint32_t nconn, int64_t ns, int closed)
{
	int ep = epoll_create1(0);
	conn *cs = calloc(nconn, sizeof(conn));
	uint64_t cap = closed ? 8000000 : (uint64_t)(rate * (double)ns / 1e9) + nconn + 16;
	int64_t *lat = malloc(cap * sizeof(int64_t));
	if (!cs || !lat || ep < 0)
		bench_die(prog, "out of memory", -ENOMEM);
	for (uint32_t i = 0; i < nconn; i++) {
		cs[i].fd = conn_open();
		if (cs[i].fd < 0)
			bench_die(prog, "connect", cs[i].fd);
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	int64_t t0 = now_ns(), end = t0 + ns, step = closed ? 0 : (int64_t)(1e9 / rate);
	uint64_t next = 0, done = 0, ok = 0, n_lat = 0;
	char req[512];
	for (;;) {
		int64_t t = now_ns();
		/* Send every request that is due, on an idle connection. */
		for (uint32_t i = 0; i < nconn; i++) {
			conn *c = &cs[i];
			if (c->busy)
				continue;
			int64_t due = closed ? t : t0 + (int64_t)next * step;
			if (due > t || due >= end)
				continue;
			size_t len = make_request(req, sizeof(req), EVENTS);
			send_all(c->fd, req, len);
			c->busy = 1;
			c->due = due;
			next++;
		}
		int any_busy = 0;
		for (uint32_t i = 0; i < nconn; i++)
			any_busy |= cs[i].busy;
		if (t >= end && !any_busy)
			break;
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 1);
		for (int k = 0; k < n; k++) {
			conn *c = &cs[evs[k].data.u32];
			if (conn_read(c) < 0)
				bench_die(prog, "the server closed a connection", -EPIPE);
			int st;
			while (c->busy && (st = take_response(c)) != 0) {
				c->busy = 0;
				done++;
				ok += st == 200;
				if (n_lat < cap)
					lat[n_lat++] = now_ns() - c->due;
			}
		}
	}
	loop_result r = {.rate = (double)done * 1e9 / (double)(now_ns() - t0),
			 .ok_fraction = done ? (double)ok / (double)done : 0,
			 .done = done};
	r.lat = bench_percentiles(lat, n_lat);
	for (uint32_t i = 0; i < nconn; i++)
		close(cs[i].fd);
	close(ep);
	free(cs);
	free(lat);
	return r;
}

/* ---- wrk ---------------------------------------------------------------------- */

/* Runs wrk for `secs` with 64 connections: the rate and the fraction of
 * 2xx answers; -1 when wrk is not installed. */
static double run_wrk(int secs, double *ok_fraction)
{
	if (system("command -v wrk >/dev/null 2>&1") != 0)
		return -1;
	char script[300];
	snprintf(script, sizeof(script), "%s/hold.lua", data_dir);
	FILE *f = fopen(script, "w");
	if (!f)
		bench_die(prog, "cannot write the wrk script", -errno);
	/* A fresh client per request (a client holds at most 16): thread k
	 * numbers its clients k * 2^40 + 1, 2, ... */
	fprintf(f, "local threads = 0\n"
		   "function setup(thread) threads = threads + 1; thread:set('tid', threads) end\n"
		   "function init(args) n = 0 end\n"
		   "function request()\n"
		   "  n = n + 1\n"
		   "  local client = tid * 1099511627776 + n\n"
		   "  local body = string.format('{\"op\":\"hold_pool\",\"event\":%%d,\"client\":%%d,"
		   "\"request\":1,\"pool\":0,\"quantity\":1,\"ttl_ms\":1000}', 1 + n %% %u, client)\n"
		   "  return wrk.format('POST', '/v1/command', {['Content-Type'] = 'application/json'}, body)\n"
		   "end\n",
		EVENTS);
	fclose(f);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "wrk -t1 -c%u -d%ds -s %s http://127.0.0.1:%d/ 2>&1", wrk_conns, secs, script, port);
	FILE *p = popen(cmd, "r");
	if (!p)
		bench_die(prog, "popen wrk", -errno);
	char line[512];
	double rps = 0, non2xx = 0, total = 0;
	while (fgets(line, sizeof(line), p)) {
		fputs(line, stderr);
		double v;
		if (sscanf(line, "Requests/sec: %lf", &v) == 1)
			rps = v;
		else if (sscanf(line, "  Non-2xx or 3xx responses: %lf", &v) == 1)
			non2xx = v;
		else if (sscanf(line, " %lf requests in", &v) == 1)
			total = v;
	}
	if (pclose(p) != 0 || rps <= 0)
		bench_die(prog, "wrk failed", -EIO);
	*ok_fraction = total > 0 ? 1 - non2xx / total : 0;
	return rps;
}

/* ---- metrics scrape ---------------------------------------------------------- */

static void scrape(uint32_t n, double *median_ms, double *max_ms)
{
	int fd = conn_open();
	static conn c;
	c.in_len = 0;
	int64_t *t = calloc(n, sizeof(int64_t));
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
	for (uint32_t i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		if (http_once(fd, req, sizeof(req) - 1, &c) != 200)
			bench_die(prog, "GET /metrics", -EPROTO);
		t[i] = now_ns() - t0;
	}
	close(fd);
	bench_pcts p = bench_percentiles(t, n);
	*median_ms = (double)p.p50 / 1e6;
	qsort(t, n, sizeof(int64_t), bench_cmp_i64);
	*max_ms = (double)t[n - 1] / 1e6;
	free(t);
}

int main(int argc, char **argv)
{
	const char *server = NULL;
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--server") && i + 1 < argc)
			server = argv[++i];
		else if (!strcmp(argv[i], "--connections") && i + 1 < argc)
			wrk_conns = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: %s [--quick] [--server PATH] [--connections N (wrk's, default 512)]\n", prog);
			return 0;
		} else
			bench_bad_option(prog, argv[i]);
	}
	if (!server)
		server = bench_default_server(prog);
	signal(SIGPIPE, SIG_IGN);
	port = 20000 + (int)(getpid() % 20000);
	start_server(server);
	atexit(stop_server);
	wait_ready();
	create_events();
	int64_t secs = quick ? 2 : 10;
	double ok_fraction = 0, rps = run_wrk((int)secs, &ok_fraction);
	const char *gen = "wrk";
	if (rps < 0) {
		loop_result r = run_loop(0, 64, secs * 1000000000, 1);
		rps = r.rate;
		ok_fraction = r.ok_fraction;
		gen = "own";
	}
	loop_result at = run_loop(20000, 64, secs * 1000000000, 0);
	double med, max;
	scrape(50, &med, &max);
	printf("{\"bench\":\"http\",\"quick\":%s,\"http_generator\":\"%s\",\"http_requests_per_sec\":%.0f,"
	       "\"http_connections\":%u,\"http_ok_fraction\":%.4f,\"http_offered_per_sec\":20000,\"http_achieved_per_sec\":%.0f,"
	       "\"http_latency_ms_p50\":%.3f,\"http_latency_ms_p99\":%.3f,\"metrics_scrape_ms\":%.3f,"
	       "\"metrics_scrape_ms_max\":%.3f}\n",
	       quick ? "true" : "false", gen, rps, wrk_conns, ok_fraction, at.rate, (double)at.lat.p50 / 1e6,
	       (double)at.lat.p99 / 1e6, med, max);
	return 0;
}
