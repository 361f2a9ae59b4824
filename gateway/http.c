/*
 * http.c — the HTTP/JSON front (schemas/http.md, schemas/openapi.yaml):
 * the /v1/ API over the same request path as nng, plus /metrics, /healthz
 * and /readyz (gateway/metrics.h).
 *
 * LIBRARY. GNU libmicrohttpd, chosen by measurement (perf/README.md,
 * "HTTP library"): within ~10% of h2o's request rate for a minimal
 * keep-alive handler on this machine and ~1.7x nng's HTTP server; it has
 * the limits a hostile network needs built in (connections, per-connection
 * memory for the request line and headers, idle timeout), and a
 * thread-safe suspend/resume that fits answering after durability.
 *
 * A REQUEST, on one of MHD's epoll threads (BO_HTTP_THREADS_DEFAULT):
 *   1st call   route (404/405), bearer token (401), Content-Length against
 *              the route's bound (413): any of these answers at once.
 *   upload     body bytes appended up to the bound (a chunked body past
 *              it is cut off: 413).
 *   last call  GET: answered at once from the read model (or metrics).
 *              POST: decode the JSON (protocol/json.h) into a request
 *              slot taken from this front's pool (none free: 503 busy),
 *              suspend the connection, gw_slot_submit(). Suspending comes
 *              first: the last result may be filed, and resume called,
 *              before this call returns (MHD then processes the resume on
 *              its next loop turn).
 *   resumed    the slot is complete (done_fn ran on an output thread and
 *              resumed us): encode the replies, queue the response, give
 *              the slot back.
 * The HTTP status follows the reply's status for /v1/command
 * (json_http_status), and is 200 for a batch. 429 and 503 carry
 * Retry-After.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/parse.h"
#include "gateway/auth.h"
#include "gateway/internal.h"
#include "gateway/metrics.h"
#include "protocol/json.h"
#include "view/view.h"

enum route {
	R_NONE = 0,
	R_COMMAND,
	R_BATCH,
	R_AVAIL,
	R_SEATS,
	R_STATE,
	R_METRICS,
	R_HEALTHZ,
	R_READYZ,
};

struct gw_http {
	gw_server *gw;
	struct MHD_Daemon *d;
	uint16_t port;
	/* Free slot indices (into gw->slots), one stack per size. */
	pthread_mutex_t lock;
	uint32_t *free_small, n_small;
	uint32_t *free_big, n_big;
};

/* One HTTP request (MHD's per-request pointer). */
typedef struct hreq {
	struct gw_http *hs;
	struct MHD_Connection *conn;
	int route;
	uint64_t event_id;
	char *body;
	size_t len, cap, max;
	int too_big;
	int64_t start_ns; /* bo_clock_ns at the request's first call (/metrics) */
	gw_slot *sl;	/* POST: taken when submitted, given back once answered */
	atomic_int done; /* the slot's last result is filed (release/acquire) */
	int answered;	/* a response is queued */
} hreq;

/* ---- Slots ------------------------------------------------------------------ */

static gw_slot *slot_take(struct gw_http *hs, int big)
{
	gw_slot *sl = NULL;
	pthread_mutex_lock(&hs->lock);
	if (big && hs->n_big > 0)
		sl = &hs->gw->slots[hs->free_big[--hs->n_big]];
	else if (!big && hs->n_small > 0)
		sl = &hs->gw->slots[hs->free_small[--hs->n_small]];
	pthread_mutex_unlock(&hs->lock);
	return sl;
}

static void slot_give(struct gw_http *hs, gw_slot *sl)
{
	wire_free_maps(sl->cmds, sl->count);
	sl->count = 0;
	sl->front = NULL;
	pthread_mutex_lock(&hs->lock);
	if (sl->cap == 1)
		hs->free_small[hs->n_small++] = sl->index;
	else
		hs->free_big[hs->n_big++] = sl->index;
	pthread_mutex_unlock(&hs->lock);
}

/* done_fn: every result of the request is filed (any thread). */
static void http_done(gw_slot *sl)
{
	hreq *h = sl->front;
	atomic_store_explicit(&h->done, 1, memory_order_release);
	MHD_resume_connection(h->conn);
}

/* ---- Responses -------------------------------------------------------------- */

static enum MHD_Result respond(hreq *h, unsigned code, const char *type, const void *body, size_t len,
			       uint32_t retry_after_ms, const char *allow)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO; /* out of memory: MHD closes the connection */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == 429 || code == 503) {
		char ra[16];
		uint32_t s = retry_after_ms == 0 ? 1 : (retry_after_ms + 999) / 1000;
		snprintf(ra, sizeof(ra), "%" PRIu32, s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (code == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ret = MHD_queue_response(h->conn, code, r);
	MHD_destroy_response(r);
	h->answered = 1;
	return ret;
}

/* A message-level error: {"status", "detail", "error"}. */
static enum MHD_Result respond_error(hreq *h, unsigned code, int status, const char *text,
				     const char *allow)
{
	msgpack_sbuffer b;
	msgpack_sbuffer_init(&b);
	if (json_encode_error(status, text, &b) != 0) {
		msgpack_sbuffer_destroy(&b);
		return MHD_NO;
	}
	enum MHD_Result ret = respond(h, code, "application/json", b.data, b.size, 0, allow);
	msgpack_sbuffer_destroy(&b);
	return ret;
}

/* One reply object: r, or e when e->status is not ok (as
 * json_encode_replies). code 0: the HTTP status of the reply's status. */
static enum MHD_Result respond_reply(hreq *h, unsigned code, const bo_result *r, const wire_cmd_error *e)
{
	msgpack_sbuffer b;
	msgpack_sbuffer_init(&b);
	if (json_encode_replies(r, e, 1, 0, &b) != 0) {
		msgpack_sbuffer_destroy(&b);
		return respond_error(h, 500, BO_INVALID, "internal error: reply could not be encoded", NULL);
	}
	if (code == 0)
		code = (unsigned)json_http_status(e->status != BO_OK ? e->status : r->status);
	enum MHD_Result ret = respond(h, code, "application/json", b.data, b.size, 0, NULL);
	msgpack_sbuffer_destroy(&b);
	return ret;
}

/* A refusal that no command produced: {"status", "detail", "error"} with a
 * detail, e.g. 401's unauthorized (as nng answers a message without the
 * token) or 404's no_event. */
static enum MHD_Result respond_refusal(hreq *h, unsigned code, uint8_t status, uint8_t detail, const char *text)
{
	bo_result r;
	memset(&r, 0, sizeof(r));
	wire_cmd_error e = {.status = status, .detail = detail};
	snprintf(e.text, sizeof(e.text), "%s", text);
	return respond_reply(h, code, &r, &e);
}

/* The replies of a completed slot. */
static enum MHD_Result respond_slot(hreq *h)
{
	gw_slot *sl = h->sl;
	gw_server *gw = h->hs->gw;
	sl->reply.size = 0;
	unsigned code = 200;
	uint32_t retry = 0;
	int rc = json_encode_replies(sl->res, sl->errs, sl->count, sl->is_array, &sl->reply);
	if (rc == 0 && !sl->is_array) {
		const wire_cmd_error *e = &sl->errs[0];
		int status = e->status != BO_OK ? e->status : sl->res[0].status;
		code = (unsigned)json_http_status(status);
		retry = e->status != BO_OK ? 0 : sl->res[0].retry_after_ms;
	}
	enum MHD_Result ret;
	if (rc != 0) {
		bo_log(BO_LOG_ERROR, "msg=\"HTTP reply could not be encoded\" commands=%u error=%d", sl->count, rc);
		ret = respond_error(h, rc == -ENOMEM ? 503 : 500, rc == -ENOMEM ? BO_BUSY : BO_INVALID,
				    rc == -ENOMEM ? "out of memory for the reply, retry later"
						  : "internal error: reply could not be encoded",
				    NULL);
	} else {
		ret = respond(h, code, "application/json", sl->reply.data, sl->reply.size, retry, NULL);
	}
	gw_count_results(gw, sl->res, sl->errs, sl->cmds, sl->count);
	gw_observe_request(gw, h->start_ns);
	atomic_fetch_add_explicit(&gw->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&gw->commands, sl->count, memory_order_relaxed);
	h->sl = NULL;
	slot_give(h->hs, sl);
	atomic_fetch_sub_explicit(&gw->in_flight, 1, memory_order_relaxed);
	return ret;
}

/* ---- Routes ----------------------------------------------------------------- */

/* bo_parse_u64 (decimal, 0..max) of s[0..n), which is not NUL-terminated
 * where it sits (a path segment, a list entry). */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	char buf[24];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return bo_parse_u64(buf, 0, max, 0, out) == 0 ? 0 : -1;
}

/* The route of a path, and the methods it takes (for 405's Allow). */
static int route_of(const char *url, uint64_t *event_id, const char **allow)
{
	static const struct {
		const char *path;
		int route;
		const char *allow;
	} fixed[] = {
		{"/v1/command", R_COMMAND, "POST"}, {"/v1/batch", R_BATCH, "POST"},
		{"/metrics", R_METRICS, "GET, HEAD"}, {"/healthz", R_HEALTHZ, "GET, HEAD"},
		{"/readyz", R_READYZ, "GET, HEAD"},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0) {
			*allow = fixed[i].allow;
			return fixed[i].route;
		}
	static const char ev[] = "/v1/events/";
	if (strncmp(url, ev, sizeof(ev) - 1) != 0)
		return R_NONE;
	const char *id = url + sizeof(ev) - 1, *slash = strchr(id, '/');
	if (!slash || parse_u64(id, (size_t)(slash - id), INT64_MAX, event_id) != 0)
		return R_NONE;
	*allow = "GET, HEAD";
	if (strcmp(slash, "/availability") == 0)
		return R_AVAIL;
	if (strcmp(slash, "/seats") == 0)
		return R_SEATS;
	if (strcmp(slash, "/state") == 0)
		return R_STATE;
	return R_NONE;
}

/* "Authorization: Bearer TOKEN" against the server's token. */
static int bearer_ok(hreq *h)
{
	gw_server *gw = h->hs->gw;
	if (gw_auth_ok(gw, "", 0))
		return 1; /* no token configured */
	const char *v = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	static const char pre[] = "Bearer ";
	if (!v || strncmp(v, pre, sizeof(pre) - 1) != 0)
		return 0;
	v += sizeof(pre) - 1;
	return gw_auth_ok(gw, v, strlen(v));
}

/* A query answered from the read model: one reply object. */
static enum MHD_Result answer_query(hreq *h, const bo_cmd *c, const wire_cmd_error *e)
{
	gw_server *gw = h->hs->gw;
	bo_result r;
	memset(&r, 0, sizeof(r));
	if (e->status == BO_OK) {
		view_query(gw->views[shard_for_event(c->event_id, gw->cfg.shards)], c, &r);
		atomic_fetch_add_explicit(&gw->reads, 1, memory_order_relaxed);
	}
	enum MHD_Result ret = respond_reply(h, 0, &r, e);
	gw_count_results(gw, &r, e, c, 1);
	gw_observe_request(gw, h->start_ns);
	atomic_fetch_add_explicit(&gw->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&gw->commands, 1, memory_order_relaxed);
	return ret;
}

/* GET /v1/events/{id}/seats?seats=3,4,5 */
static enum MHD_Result answer_seats(hreq *h)
{
	bo_cmd c;
	memset(&c, 0, sizeof(c));
	c.op = BO_OP_QUERY_SEATS;
	c.event_id = h->event_id;
	wire_cmd_error e = {.status = BO_OK};
	const char *q = MHD_lookup_connection_value(h->conn, MHD_GET_ARGUMENT_KIND, "seats");
	if (!q || !*q) {
		e = (wire_cmd_error){.status = BO_INVALID, .detail = BO_D_SEAT_COUNT};
		snprintf(e.text, sizeof(e.text), "query parameter 'seats' is required: seats=3,4,5");
		return answer_query(h, &c, &e);
	}
	for (const char *p = q; e.status == BO_OK;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		uint64_t v;
		if (parse_u64(p, n, UINT64_MAX, &v) != 0) {
			e = (wire_cmd_error){.status = BO_INVALID, .detail = BO_D_NONE};
			snprintf(e.text, sizeof(e.text), "'seats' must be seat numbers separated by commas");
		} else if (c.seat_count == BO_QUERY_SEATS_MAX) {
			e = (wire_cmd_error){.status = BO_INVALID, .detail = BO_D_SEAT_COUNT};
			snprintf(e.text, sizeof(e.text), "'seats' has more than %u entries", BO_QUERY_SEATS_MAX);
		} else if (v > UINT32_MAX) {
			e = (wire_cmd_error){.status = BO_INVALID, .detail = BO_D_SEAT_RANGE};
			snprintf(e.text, sizeof(e.text), "seat %" PRIu64 " out of range", v);
		} else {
			c.seats[c.seat_count++] = (uint32_t)v;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (e.status != BO_OK)
		memset(&c, 0, sizeof(c));
	return answer_query(h, &c, &e);
}

/* GET /v1/events/{id}/state: the event's image, within event_state's
 * budget (shared with nng). */
static enum MHD_Result answer_state(hreq *h)
{
	gw_server *gw = h->hs->gw;
	if (!gw_event_state_admit(gw)) {
		atomic_fetch_add_explicit(&gw->event_states_throttled, 1, memory_order_relaxed);
		char text[WIRE_ERROR_LEN_MAX];
		snprintf(text, sizeof(text), "over %u event_state requests per second: retry later",
			 BO_EVENT_STATE_PER_SEC_MAX);
		return respond_error(h, 429, BO_THROTTLED, text, NULL);
	}
	bo_event_image im;
	int rc = view_image(gw->views[shard_for_event(h->event_id, gw->cfg.shards)], h->event_id, &im);
	if (rc == -ENOENT)
		return respond_refusal(h, 0, BO_NOT_FOUND, BO_D_NO_EVENT, "no such event");
	if (rc != 0)
		return respond_error(h, 503, BO_BUSY, "out of memory for the event's image, retry later", NULL);
	msgpack_sbuffer b;
	msgpack_sbuffer_init(&b);
	rc = json_encode_event_image(&im, &b);
	bo_event_image_free(&im);
	enum MHD_Result ret = rc == 0 ? respond(h, 200, "application/json", b.data, b.size, 0, NULL)
				      : respond_error(h, 503, BO_BUSY, "out of memory for the image, retry later", NULL);
	msgpack_sbuffer_destroy(&b);
	if (rc == 0)
		atomic_fetch_add_explicit(&gw->event_states, 1, memory_order_relaxed);
	return ret;
}

static enum MHD_Result answer_ops(hreq *h)
{
	gw_server *gw = h->hs->gw;
	if (h->route == R_METRICS) {
		msgpack_sbuffer b;
		msgpack_sbuffer_init(&b);
		int rc = gw_metrics_render(gw, &b);
		enum MHD_Result ret =
			rc == 0 ? respond(h, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.size, 0, NULL)
				: respond(h, 503, "text/plain", "out of memory\n", 14, 0, NULL);
		msgpack_sbuffer_destroy(&b);
		return ret;
	}
	char reason[512], text[600];
	int rc = h->route == R_HEALTHZ ? gw_health(gw, reason, sizeof(reason)) : gw_ready(gw, reason, sizeof(reason));
	int n = snprintf(text, sizeof(text), "%s\n", rc == 0 ? "ok" : reason);
	return respond(h, rc == 0 ? 200 : 503, "text/plain; charset=utf-8", text,
		       (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1, 0, NULL);
}

/* POST: decode into a slot, suspend, submit. */
static enum MHD_Result submit(hreq *h)
{
	gw_server *gw = h->hs->gw;
	int big = h->route == R_BATCH;
	if (atomic_load_explicit(&gw->draining, memory_order_relaxed))
		return respond_error(h, 503, BO_BUSY, "server stopping, retry later", NULL);
	gw_slot *sl = slot_take(h->hs, big);
	if (!sl) {
		atomic_fetch_add_explicit(&gw->busy, 1, memory_order_relaxed);
		return respond_error(h, 503, BO_BUSY, "too many requests in flight, retry later", NULL);
	}
	wire_msg wm;
	int rc = json_decode_request(h->body ? h->body : "", h->len, big ? JSON_BATCH : JSON_ONE, sl->cmds,
				     sl->errs, sl->cap, &wm);
	if (rc != 0) {
		slot_give(h->hs, sl);
		atomic_fetch_add_explicit(&gw->invalid_msgs, 1, memory_order_relaxed);
		if (rc == -ENOMEM)
			return respond_error(h, 503, BO_BUSY, wm.error, NULL);
		return respond_error(h, 400, BO_INVALID, wm.error, NULL);
	}
	sl->count = wm.count;
	sl->is_array = wm.is_array;
	sl->front = h;
	sl->done_fn = http_done;
	h->sl = sl;
	atomic_fetch_add_explicit(&gw->in_flight, 1, memory_order_relaxed);
	MHD_suspend_connection(h->conn);
	gw_slot_submit(sl);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct gw_http *hs = cls;
	hreq *h = *con_cls;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h)
			return MHD_NO;
		*con_cls = h;
		h->hs = hs;
		h->conn = conn;
		h->start_ns = bo_clock_ns();
		const char *allow = NULL;
		h->route = route_of(url, &h->event_id, &allow);
		int post = h->route == R_COMMAND || h->route == R_BATCH;
		int get = !post && h->route != R_NONE;
		if (h->route == R_NONE)
			return respond_error(h, 404, BO_NOT_FOUND, "no such resource (schemas/http.md)", NULL);
		if ((post && strcmp(method, "POST") != 0) ||
		    (get && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
			return respond_error(h, 405, BO_INVALID, "method not allowed", allow);
		/* The probes and the scrape stay open without the token: they
		 * say nothing about any event or client. */
		if (h->route < R_METRICS && !bearer_ok(h)) {
			atomic_fetch_add_explicit(&hs->gw->unauthorized, 1, memory_order_relaxed);
			return respond_refusal(h, 401, BO_INVALID, BO_D_UNAUTHORIZED,
					       "missing or wrong token: send Authorization: Bearer TOKEN");
		}
		h->max = h->route == R_BATCH ? BO_HTTP_BATCH_BODY_MAX : post ? BO_HTTP_BODY_MAX : 0;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;
		if (cl && parse_u64(cl, strlen(cl), UINT64_MAX, &n) == 0 && n > h->max)
			return respond_error(h, 413, BO_INVALID, "request body too large", NULL);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (h->answered || h->too_big)
			return MHD_YES;
		if (n > h->max - h->len) {
			h->too_big = 1;
			return MHD_YES;
		}
		if (h->len + n > h->cap) {
			size_t cap = h->cap ? h->cap : 4096;
			while (cap < h->len + n)
				cap *= 2;
			char *b = realloc(h->body, cap);
			if (!b)
				return MHD_NO;
			h->body = b;
			h->cap = cap;
		}
		memcpy(h->body + h->len, upload, n);
		h->len += n;
		return MHD_YES;
	}
	if (h->answered)
		return MHD_YES;
	if (h->sl) {
		/* Resumed: MHD calls again only after http_done. */
		if (!atomic_load_explicit(&h->done, memory_order_acquire))
			return MHD_YES;
		return respond_slot(h);
	}
	if (h->too_big)
		return respond_error(h, 413, BO_INVALID, "request body too large", NULL);
	switch (h->route) {
	case R_COMMAND:
	case R_BATCH:
		return submit(h);
	case R_AVAIL: {
		bo_cmd c;
		memset(&c, 0, sizeof(c));
		c.op = BO_OP_QUERY_AVAIL;
		c.event_id = h->event_id;
		wire_cmd_error e = {.status = BO_OK};
		return answer_query(h, &c, &e);
	}
	case R_SEATS:
		return answer_seats(h);
	case R_STATE:
		return answer_state(h);
	default:
		return answer_ops(h);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	(void)cls;
	(void)conn;
	(void)why;
	hreq *h = *con_cls;
	if (!h)
		return;
	*con_cls = NULL;
	if (h->sl) {
		/* Ended before its answer was queued, after completing (a
		 * suspended connection is never ended by MHD). */
		assert(atomic_load_explicit(&h->done, memory_order_acquire));
		gw_server *gw = h->hs->gw;
		slot_give(h->hs, h->sl);
		atomic_fetch_sub_explicit(&gw->in_flight, 1, memory_order_relaxed);
	}
	free(h->body);
	free(h);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char text[256];
	vsnprintf(text, sizeof(text), fmt, ap);
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '"'))
		text[--n] = '\0';
	for (char *p = text; *p; p++)
		if (*p == '"')
			*p = '\'';
	bo_log(BO_LOG_DEBUG, "msg=\"http: %s\"", text);
}

int gw_http_parse_addr(const char *s, struct sockaddr_in *a)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	if (!colon || parse_u64(colon + 1, strlen(colon + 1), 65535, &port) != 0)
		return -1;
	char host[64];
	size_t n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

int gw_http_start(gw_server *gw, char *err, size_t errlen)
{
	struct sockaddr_in addr;
	if (gw_http_parse_addr(gw->cfg.http, &addr) != 0) {
		snprintf(err, errlen, "invalid --http address '%s': want HOST:PORT with an IPv4 HOST or localhost",
			 gw->cfg.http);
		return -EINVAL;
	}
	struct gw_http *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	hs->gw = gw;
	pthread_mutex_init(&hs->lock, NULL);
	hs->free_small = calloc(GW_HTTP_SLOTS_SMALL, sizeof(uint32_t));
	hs->free_big = calloc(GW_HTTP_SLOTS_BIG, sizeof(uint32_t));
	gw->http = hs;
	if (!hs->free_small || !hs->free_big) {
		snprintf(err, errlen, "out of memory for the HTTP front");
		return -ENOMEM;
	}
	uint32_t first = gw->cfg.contexts + 1;
	for (uint32_t i = 0; i < GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG; i++) {
		gw_slot *sl = &gw->slots[first + i];
		if (sl->cap == 1)
			hs->free_small[hs->n_small++] = sl->index;
		else
			hs->free_big[hs->n_big++] = sl->index;
	}
	hs->d = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
		on_request, hs, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
		(unsigned)BO_HTTP_THREADS_DEFAULT, MHD_OPTION_CONNECTION_LIMIT, (unsigned)BO_HTTP_CONNECTIONS_MAX,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)BO_HTTP_CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)BO_HTTP_IDLE_TIMEOUT_S, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, hs, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, hs, MHD_OPTION_END);
	if (!hs->d) {
		snprintf(err, errlen, "cannot listen for HTTP on %s: %s", gw->cfg.http,
			 errno ? strerror(errno) : "libmicrohttpd refused to start");
		return errno ? -errno : -EIO;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(hs->d, MHD_DAEMON_INFO_BIND_PORT);
	hs->port = di ? di->port : ntohs(addr.sin_port);
	bo_log(BO_LOG_INFO, "msg=\"listening for HTTP\" addr=%s port=%u", gw->cfg.http, hs->port);
	return 0;
}

/* After the output threads stopped: a request still suspended has
 * commands that never came out of their shard (one whose journal failed
 * stops answering, shard.h); answer them busy (not applied, resend with
 * the same request id) and resume, since MHD must not stop with a
 * suspended connection. Returns the requests resumed. */
static uint32_t resume_stuck(struct gw_http *hs)
{
	gw_server *gw = hs->gw;
	uint32_t n = 0, first = gw->cfg.contexts + 1;
	for (uint32_t i = 0; i < GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG; i++) {
		gw_slot *sl = &gw->slots[first + i];
		hreq *h = sl->front;
		if (!h || atomic_load_explicit(&h->done, memory_order_acquire))
			continue;
		for (uint32_t c = 0; c < sl->count; c++) {
			bo_result *r = &sl->res[c];
			if (sl->errs[c].status != BO_OK || r->op != 0)
				continue;
			r->op = sl->cmds[c].op;
			r->status = BO_BUSY;
			r->client_id = sl->cmds[c].client_id;
			r->request_id = sl->cmds[c].request_id;
			r->event_id = sl->cmds[c].event_id;
		}
		http_done(sl);
		n++;
	}
	return n;
}

void gw_http_stop(gw_server *gw)
{
	struct gw_http *hs = gw->http;
	if (!hs)
		return;
	if (hs->d && resume_stuck(hs) > 0) {
		bo_log(BO_LOG_WARN, "msg=\"HTTP requests left in a stopped shard answered busy\"");
		/* Let MHD's threads answer them (they give back their slots). */
		int64_t deadline = bo_clock_ns() + 2000000000;
		while (atomic_load_explicit(&gw->in_flight, memory_order_relaxed) > 0 && bo_clock_ns() < deadline)
			usleep(1000);
	}
	if (hs->d)
		MHD_stop_daemon(hs->d);
	free(hs->free_small);
	free(hs->free_big);
	pthread_mutex_destroy(&hs->lock);
	free(hs);
	gw->http = NULL;
}

int gw_http_port(const gw_server *gw) { return gw->http ? gw->http->port : -1; }
