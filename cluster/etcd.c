/*
 * etcd.c — the etcd v3 client over the HTTP/JSON gateway (see etcd.h).
 *
 * THE GATEWAY'S FORMAT (etcd 3.4, checked with curl against etcd 3.4.23):
 * every call is a POST of one JSON object to /v3/<service>/<method>; the
 * answer is one JSON object. Bytes (keys, values) travel as standard base64
 * strings; int64 fields travel as decimal JSON strings ("revision":"5");
 * fields at their zero value are left out (no "kvs" when nothing matched,
 * no "succeeded" when a txn's compare failed, no "TTL" for a lease that is
 * gone), so a missing field means zero, except the answer's "header" and its
 * "revision", which every successful answer carries and which this file
 * requires as the sign that the answer came from etcd. An error is any HTTP
 * status but 200, with a body {"error":..., "message":..., "code": <gRPC
 * code>}. The two streaming methods wrap each message in {"result":{...}}
 * (or {"error":{...}}), one per line: /v3/lease/keepalive answers one
 * message per request object sent, /v3/watch first {"created":true}, then
 * one message per batch of events, or {"canceled":true,"compact_revision"}
 * when the asked revision was compacted away.
 *
 * VALIDITY RULE: an answer is accepted only when it parses as JSON, has the
 * fields above with their types, its numbers are decimal int64 and its
 * base64 is canonical; anything else is -EPROTO with what was wrong.
 *
 * TIME: each call has one deadline (the handle's timeout_ms from its
 * start). Attempts on successive endpoints share it; each connection
 * attempt gets an equal share of what remains, so a black-holed endpoint
 * cannot use the whole budget before the others are tried.
 */
#include "cluster/etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

/* Bound on one answer: a reply larger than this is refused, so a broken or
 * hostile endpoint cannot make the control thread allocate without limit.
 * 64 MiB is far above the shard map and node registry (a few KiB). */
#define ETCD_ANSWER_BYTES_MAX (64u << 20)

/* Shortest connect budget per endpoint: below it even a local connect can
 * miss, and the call would fail over for nothing. */
#define ETCD_CONNECT_MS_MIN 50

struct etcd {
	CURL *curl;                 /* reused: keeps connections alive */
	struct curl_slist *headers; /* Content-Type: json; no Expect */
	char endpoints[ETCD_ENDPOINTS_MAX][ETCD_ENDPOINT_LEN_MAX]; /* "http://host:port" */
	size_t endpoints_n;                                        /* 1..ETCD_ENDPOINTS_MAX */
	size_t current; /* index of the one that last worked */
	int timeout_ms; /* budget of every call */
};

/* What the write callback collects of one answer. */
typedef struct etcd_buf {
	char *data;   /* heap, NUL-terminated when len > 0 */
	size_t len;   /* bytes received */
	size_t cap;   /* bytes allocated */
	bool too_big; /* the answer passed ETCD_ANSWER_BYTES_MAX */
	bool oom;     /* realloc failed */
} etcd_buf;

static void seterr(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- base64 (RFC 4648, standard alphabet, with padding) ----------------- */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes src[0..len) as a NUL-terminated heap string; NULL when out of memory. */
static char *b64_encode(const void *src, size_t len)
{
	const unsigned char *s = src;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = b64_alphabet[(v >> 6) & 63];
		*o++ = b64_alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
		*o++ = b64_alphabet[v >> 18];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	const char *p = c != '\0' ? strchr(b64_alphabet, c) : NULL;
	return p != NULL ? (int)(p - b64_alphabet) : -1;
}

/* Decodes the canonical base64 text s[0..n) into a heap buffer with a NUL
 * after the bytes. Returns 0 (*out, *len); -EPROTO when s is not canonical
 * base64 (length not a multiple of 4, a stray character, padding inside,
 * nonzero bits after the last byte); -ENOMEM. */
static int b64_decode(const char *s, size_t n, char **out, size_t *len)
{
	if (n % 4 != 0)
		return -EPROTO;
	size_t pad = 0;
	if (n > 0 && s[n - 1] == '=')
		pad = (n > 1 && s[n - 2] == '=') ? 2 : 1;
	char *buf = malloc(n / 4 * 3 + 1);
	if (buf == NULL)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int v[4];
		for (size_t j = 0; j < 4; j++) {
			bool padded = last && j >= 4 - pad;
			v[j] = padded ? 0 : b64_value(s[i + j]);
			if (v[j] < 0) {
				free(buf);
				return -EPROTO;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		size_t bytes = last ? 3 - pad : 3;
		/* Canonical: the bits below the last byte must be zero. */
		if ((bytes == 1 && (w & 0xffff) != 0) || (bytes == 2 && (w & 0xff) != 0)) {
			free(buf);
			return -EPROTO;
		}
		for (size_t j = 0; j < bytes; j++)
			buf[o++] = (char)(w >> (16 - 8 * j));
	}
	buf[o] = '\0';
	*out = buf;
	*len = o;
	return 0;
}

/* ---- reading the answers ---------------------------------------------- */

/* Reads the int64 field `name` of obj: a decimal string (what the gateway
 * sends) or a JSON integer; absent reads as 0 (the gateway omits zeros).
 * Returns 0 or -EPROTO (with the field named in err). */
static int json_i64(const json_t *obj, const char *name, int64_t *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(obj, name);
	if (v == NULL || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	const char *s = json_string_value(v);
	if (s != NULL && json_string_length(v) == strlen(s)) {
		const char *d = s[0] == '-' ? s + 1 : s;
		bool ok = d[0] >= '0' && d[0] <= '9';
		int64_t val = 0;
		for (; ok && *d != '\0'; d++) {
			int digit = *d - '0';
			ok = digit >= 0 && digit <= 9 && val <= (INT64_MAX - digit) / 10;
			val = ok ? val * 10 + digit : 0;
		}
		if (ok) {
			*out = s[0] == '-' ? -val : val;
			return 0;
		}
	}
	seterr(err, errlen, "field \"%s\" is not an int64", name);
	return -EPROTO;
}

/* Reads the base64 field `name` of obj into a heap buffer (plus a NUL);
 * absent reads as empty. Returns 0, -EPROTO or -ENOMEM. */
static int json_bytes(const json_t *obj, const char *name, char **out, size_t *len, char *err,
                      size_t errlen)
{
	const json_t *v = json_object_get(obj, name);
	const char *s = "";
	size_t n = 0;
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			seterr(err, errlen, "field \"%s\" is not a string", name);
			return -EPROTO;
		}
		s = json_string_value(v);
		n = json_string_length(v);
	}
	int rc = b64_decode(s, n, out, len);
	if (rc == -EPROTO)
		seterr(err, errlen, "field \"%s\" is not base64", name);
	else if (rc < 0)
		seterr(err, errlen, "out of memory");
	return rc;
}

/* The store revision in the answer's header, which every successful answer
 * carries. Returns 0 or -EPROTO. */
static int header_revision(const json_t *ans, int64_t *rev, char *err, size_t errlen)
{
	const json_t *h = json_object_get(ans, "header");
	if (!json_is_object(h) || json_object_get(h, "revision") == NULL) {
		seterr(err, errlen, "answer without header.revision");
		return -EPROTO;
	}
	if (json_i64(h, "revision", rev, err, errlen) < 0 || *rev <= 0) {
		seterr(err, errlen, "answer with a bad header.revision");
		return -EPROTO;
	}
	return 0;
}

/* Maps an etcd error body {"code":N,"message":...} to -errno. */
static int grpc_errno(int64_t code)
{
	switch (code) {
	case 3: /* InvalidArgument */
		return -EINVAL;
	case 4: /* DeadlineExceeded */
		return -ETIMEDOUT;
	case 5: /* NotFound */
		return -ENOENT;
	case 8:  /* ResourceExhausted: "too many requests" */
	case 14: /* Unavailable: "no leader", "request timed out", "leader changed" */
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/* Turns an error object of the gateway into -errno and a message. Returns
 * -EPROTO when obj is not such an object. */
static int error_from(const json_t *obj, const char *what, const char *ep, char *err, size_t errlen)
{
	const json_t *code = json_object_get(obj, "code");
	const char *msg = json_string_value(json_object_get(obj, "message"));
	if (msg == NULL)
		msg = json_string_value(json_object_get(obj, "error"));
	if (!json_is_integer(code) || msg == NULL) {
		seterr(err, errlen, "%s at %s: error answer without code and message", what, ep);
		return -EPROTO;
	}
	seterr(err, errlen, "%s at %s: etcd: %s (code %lld)", what, ep, msg,
	       (long long)json_integer_value(code));
	return grpc_errno(json_integer_value(code));
}

/* ---- the handle ------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Splits the comma-separated list into e->endpoints. Returns 0 or -EINVAL. */
static int parse_endpoints(etcd *e, const char *list, char *err, size_t errlen)
{
	const char *p = list;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, ", ");
		const char *q = p + n;
		while (*q == ' ')
			q++;
		if (*q != ',' && *q != '\0') {
			seterr(err, errlen, "etcd endpoints: space inside \"%.*s\"", (int)n, p);
			return -EINVAL;
		}
		if (n <= strlen("http://") || strncmp(p, "http://", 7) != 0 ||
		    memchr(p + 7, ':', n - 7) == NULL || memchr(p + 7, '/', n - 7) != NULL) {
			seterr(err, errlen, "etcd endpoints: \"%.*s\" is not http://host:port",
			       (int)n, p);
			return -EINVAL;
		}
		if (n >= ETCD_ENDPOINT_LEN_MAX || e->endpoints_n == ETCD_ENDPOINTS_MAX) {
			seterr(err, errlen, "etcd endpoints: more than %d, or one longer than %d",
			       ETCD_ENDPOINTS_MAX, ETCD_ENDPOINT_LEN_MAX - 1);
			return -EINVAL;
		}
		memcpy(e->endpoints[e->endpoints_n], p, n);
		e->endpoints[e->endpoints_n++][n] = '\0';
		p = *q == ',' ? q + 1 : q;
	}
	if (e->endpoints_n == 0) {
		seterr(err, errlen, "etcd endpoints: none given");
		return -EINVAL;
	}
	return 0;
}

int etcd_open(const char *endpoints, int timeout_ms, etcd **out, char *err, size_t errlen)
{
	if (endpoints == NULL || timeout_ms <= 0 || out == NULL) {
		seterr(err, errlen, "etcd_open: no endpoints or timeout_ms <= 0");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		seterr(err, errlen, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
		return -ENOMEM;
	}
	etcd *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->timeout_ms = timeout_ms;
	int rc = parse_endpoints(e, endpoints, err, errlen);
	if (rc < 0) {
		free(e);
		return rc;
	}
	e->curl = curl_easy_init();
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* No "Expect: 100-continue" on larger bodies: curl would wait up to a
	 * second for the 100 before sending, inside the caller's budget. */
	struct curl_slist *h = e->headers != NULL ? curl_slist_append(e->headers, "Expect:") : NULL;
	if (e->curl == NULL || h == NULL) {
		etcd_close(e);
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void etcd_close(etcd *e)
{
	if (e == NULL)
		return;
	if (e->curl != NULL)
		curl_easy_cleanup(e->curl);
	curl_slist_free_all(e->headers);
	free(e);
}

const char *etcd_endpoint(const etcd *e)
{
	return e->endpoints[e->current];
}

/* ---- one request ------------------------------------------------------ */

static size_t buf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	etcd_buf *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > ETCD_ANSWER_BYTES_MAX) {
		b->too_big = true;
		return 0; /* aborts the transfer */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->oom = true;
			return 0;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* Sets every option of one POST, so nothing of an earlier call sticks. */
static void setup_post(etcd *e, const char *url, const char *body, int64_t total_ms,
                       int64_t connect_ms, curl_write_callback write_cb, void *ud)
{
	CURL *c = e->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ud);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)total_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
	/* Threads: no SIGALRM for timeouts (the resolver is not needed for
	 * numeric hosts and would otherwise use signals). */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
}

/* Whether the failed transfer never delivered the request to a server, so
 * that sending it to the next endpoint cannot apply it twice. */
static bool never_sent(CURL *c, CURLcode rc)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return true;
	curl_off_t sent = 0;
	if (curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
		return false;
	return rc == CURLE_OPERATION_TIMEDOUT && sent == 0;
}

/* What one transfer on one endpoint gave. */
typedef enum {
	XFER_DONE,
	XFER_NEXT,
	XFER_FAILED
} xfer_outcome;

/* Runs the transfer set up on e->curl against endpoint i and classifies it:
 * XFER_DONE (an HTTP answer came, *status set), XFER_NEXT (not sent: try
 * the next endpoint), XFER_FAILED (rc set, err written). */
static xfer_outcome run_xfer(etcd *e, size_t i, const char *what, const etcd_buf *b, long *status,
                             int *rc, char *err, size_t errlen)
{
	CURLcode cr = curl_easy_perform(e->curl);
	const char *ep = e->endpoints[i];
	if (cr == CURLE_OK) {
		curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, status);
		return XFER_DONE;
	}
	if (b->too_big || b->oom) {
		seterr(err, errlen, "%s at %s: answer %s", what, ep,
		       b->oom ? "ran out of memory" : "larger than 64 MiB");
		*rc = b->oom ? -ENOMEM : -EPROTO;
		return XFER_FAILED;
	}
	if (never_sent(e->curl, cr)) {
		seterr(err, errlen, "%s at %s: %s", what, ep, curl_easy_strerror(cr));
		*rc = cr == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		return XFER_NEXT;
	}
	if (cr == CURLE_OPERATION_TIMEDOUT)
		seterr(err, errlen, "%s at %s: no answer in time (member hung, or no quorum?)",
		       what, ep);
	else
		seterr(err, errlen, "%s at %s: %s", what, ep, curl_easy_strerror(cr));
	*rc = cr == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
	return XFER_FAILED;
}

/* Connect budget of one attempt: an equal share of what remains among the
 * endpoints not tried yet. */
static int64_t connect_share(int64_t left_ms, size_t untried)
{
	int64_t share = left_ms / (int64_t)untried;
	if (share < ETCD_CONNECT_MS_MIN)
		share = ETCD_CONNECT_MS_MIN;
	return share < left_ms ? share : left_ms;
}

/* POSTs body to path on the current endpoint, failing over as etcd.h says,
 * within deadline_ms (monotonic); total_ms > 0 bounds each transfer
 * instead of what is left of the deadline. Collects the answer through cb.
 * Returns 0 with *status, or < 0; *used: the endpoint tried last. */
static int post(etcd *e, const char *path, const char *body, int64_t deadline_ms, int64_t total_ms,
                curl_write_callback cb, void *ud, const etcd_buf *b, const char *what, long *status,
                size_t *used, char *err, size_t errlen)
{
	int rc = -ETIMEDOUT;
	seterr(err, errlen, "%s: no time left", what);
	for (size_t k = 0; k < e->endpoints_n; k++) {
		size_t i = (e->current + k) % e->endpoints_n;
		int64_t left = deadline_ms - bo_clock_ms();
		if (left <= 0)
			break;
		char url[ETCD_ENDPOINT_LEN_MAX + 64];
		snprintf(url, sizeof(url), "%s%s", e->endpoints[i], path);
		int64_t total = total_ms > 0 ? total_ms : left;
		setup_post(e, url, body, total, connect_share(left, e->endpoints_n - k), cb, ud);
		xfer_outcome o = run_xfer(e, i, what, b, status, &rc, err, errlen);
		*used = i;
		if (o == XFER_DONE) {
			e->current = i;
			return 0;
		}
		if (o == XFER_FAILED) {
			/* Sent but unanswered: the next call starts elsewhere. */
			e->current = (i + 1) % e->endpoints_n;
			return rc;
		}
	}
	e->current = (e->current + 1) % e->endpoints_n;
	return rc;
}

/* One unary call: POSTs req (a JSON object, consumed) to path and returns the
 * parsed answer in *ans (the caller json_decrefs it). An etcd error answer
 * becomes its -errno (see grpc_errno); anything not JSON is -EPROTO. */
static int call(etcd *e, const char *path, json_t *req, const char *what, json_t **ans, char *err,
                size_t errlen)
{
	char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (body == NULL) {
		seterr(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	etcd_buf b = {0};
	long status = 0;
	size_t used = 0;
	int64_t deadline = bo_clock_ms() + e->timeout_ms;
	int rc = post(e, path, body, deadline, 0, buf_write, &b, &b, what, &status, &used, err,
	              errlen);
	free(body);
	if (rc < 0) {
		free(b.data);
		return rc;
	}
	const char *ep = e->endpoints[used];
	json_error_t je;
	json_t *j = json_loadb(b.data != NULL ? b.data : "", b.len, 0, &je);
	free(b.data);
	if (!json_is_object(j)) {
		seterr(err, errlen, "%s at %s: HTTP %ld, answer is not a JSON object (%s)", what,
		       ep, status, j == NULL ? je.text : "another type");
		json_decref(j);
		return -EPROTO;
	}
	if (status != 200) {
		rc = error_from(j, what, ep, err, errlen);
		json_decref(j);
		if (rc == -EAGAIN)
			e->current = (used + 1) % e->endpoints_n;
		return rc;
	}
	*ans = j;
	return 0;
}

/* Adds the base64 of bytes as field name of obj. Returns 0 or -ENOMEM. */
static int set_b64(json_t *obj, const char *name, const void *bytes, size_t len)
{
	char *s = b64_encode(bytes, len);
	if (s == NULL)
		return -ENOMEM;
	int rc = json_object_set_new(obj, name, json_string(s));
	free(s);
	return rc == 0 ? 0 : -ENOMEM;
}

/* Adds an int64 as a decimal string, as the gateway reads them. */
static int set_i64(json_t *obj, const char *name, int64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%lld", (long long)v);
	return json_object_set_new(obj, name, json_string(s)) == 0 ? 0 : -ENOMEM;
}

/* The end of the key range of prefix: the prefix with its last byte below
 * 0xff incremented and what follows dropped; "\0" (every key from prefix on)
 * when there is none, as etcd defines range_end. *len is its length. */
static char *prefix_end(const char *prefix, size_t *len)
{
	size_t n = strlen(prefix);
	char *end = malloc(n + 1);
	if (end == NULL)
		return NULL;
	memcpy(end, prefix, n + 1);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		end[0] = '\0';
		*len = 1;
		return end;
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	*len = n;
	return end;
}

/* A request {"key": prefix, "range_end": prefix_end(prefix)}; the empty
 * prefix is key "\0" with range_end "\0": every key. NULL when out of memory. */
static json_t *range_req(const char *prefix)
{
	json_t *req = json_object();
	size_t end_len = 0;
	char *end = prefix_end(prefix, &end_len);
	size_t key_len = prefix[0] != '\0' ? strlen(prefix) : 1;
	if (req == NULL || end == NULL || set_b64(req, "key", prefix, key_len) < 0 ||
	    set_b64(req, "range_end", end, end_len) < 0) {
		free(end);
		json_decref(req);
		return NULL;
	}
	free(end);
	return req;
}

/* ---- key-value -------------------------------------------------------- */

/* Fills kv from one element of "kvs". Returns 0, -EPROTO or -ENOMEM; kv
 * holds nothing to free on failure. */
static int kv_from(const json_t *o, etcd_kv *kv, char *err, size_t errlen)
{
	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o) || json_object_get(o, "key") == NULL) {
		seterr(err, errlen, "a kv without a key");
		return -EPROTO;
	}
	size_t key_len = 0;
	int rc = json_bytes(o, "key", &kv->key, &key_len, err, errlen);
	if (rc == 0 && strlen(kv->key) != key_len) {
		seterr(err, errlen, "a key with a NUL byte");
		rc = -EPROTO;
	}
	if (rc == 0)
		rc = json_bytes(o, "value", &kv->value, &kv->value_len, err, errlen);
	if (rc == 0)
		rc = json_i64(o, "create_revision", &kv->create_revision, err, errlen);
	if (rc == 0)
		rc = json_i64(o, "mod_revision", &kv->mod_revision, err, errlen);
	if (rc == 0)
		rc = json_i64(o, "version", &kv->version, err, errlen);
	if (rc == 0)
		rc = json_i64(o, "lease", &kv->lease, err, errlen);
	if (rc == 0 && kv->mod_revision <= 0) {
		seterr(err, errlen, "a kv without a mod_revision");
		rc = -EPROTO;
	}
	if (rc < 0) {
		free(kv->key);
		free(kv->value);
		memset(kv, 0, sizeof(*kv));
	}
	return rc;
}

void etcd_kvs_free(etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

/* Reads the "kvs" array of a range answer (absent: none). Returns 0 with
 * *kvs and *n, or < 0 with err prefixed by what. */
static int kvs_from(const json_t *ans, etcd_kv **kvs, size_t *n, const char *what, char *err,
                    size_t errlen)
{
	const json_t *arr = json_object_get(ans, "kvs");
	*kvs = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr)) {
		seterr(err, errlen, "%s: \"kvs\" is not an array", what);
		return -EPROTO;
	}
	size_t count = json_array_size(arr);
	if (count == 0)
		return 0;
	etcd_kv *out = calloc(count, sizeof(*out));
	if (out == NULL) {
		seterr(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		char why[160] = "";
		int rc = kv_from(json_array_get(arr, i), &out[i], why, sizeof(why));
		if (rc < 0) {
			etcd_kvs_free(out, i);
			seterr(err, errlen, "%s: %s", what, why);
			return rc;
		}
	}
	*kvs = out;
	*n = count;
	return 0;
}

/* Runs a range request and reads its kvs and header revision. */
static int range(etcd *e, json_t *req, const char *what, etcd_kv **kvs, size_t *n,
                 int64_t *revision, bool *more, char *err, size_t errlen)
{
	json_t *ans = NULL;
	int rc = call(e, "/v3/kv/range", req, what, &ans, err, errlen);
	if (rc < 0)
		return rc;
	char why[160] = "";
	rc = header_revision(ans, revision, why, sizeof(why));
	if (rc < 0)
		seterr(err, errlen, "%s at %s: %s", what, etcd_endpoint(e), why);
	const json_t *m = json_object_get(ans, "more");
	if (rc == 0 && m != NULL && !json_is_boolean(m)) {
		seterr(err, errlen, "%s at %s: \"more\" is not a boolean", what, etcd_endpoint(e));
		rc = -EPROTO;
	}
	*more = json_is_true(m);
	if (rc == 0)
		rc = kvs_from(ans, kvs, n, what, err, errlen);
	json_decref(ans);
	return rc;
}

int etcd_get(etcd *e, const char *key, char **value, size_t *len, int64_t *mod_revision, char *err,
             size_t errlen)
{
	if (value != NULL)
		*value = NULL;
	json_t *req = json_object();
	if (req == NULL || set_b64(req, "key", key, strlen(key)) < 0) {
		json_decref(req);
		seterr(err, errlen, "get %s: out of memory", key);
		return -ENOMEM;
	}
	char what[96];
	snprintf(what, sizeof(what), "get %.80s", key);
	etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev = 0;
	bool more = false;
	int rc = range(e, req, what, &kvs, &n, &rev, &more, err, errlen);
	if (rc < 0)
		return rc;
	if (n > 1 || (n == 1 && strcmp(kvs[0].key, key) != 0)) {
		etcd_kvs_free(kvs, n);
		seterr(err, errlen, "%s at %s: answer holds another key", what, etcd_endpoint(e));
		return -EPROTO;
	}
	if (n == 0)
		return 0;
	if (len != NULL)
		*len = kvs[0].value_len;
	if (mod_revision != NULL)
		*mod_revision = kvs[0].mod_revision;
	if (value != NULL) {
		*value = kvs[0].value;
		kvs[0].value = NULL;
	}
	etcd_kvs_free(kvs, n);
	return 1;
}

int etcd_get_prefix(etcd *e, const char *prefix, etcd_kv **kvs, size_t *n, int64_t *revision,
                    char *err, size_t errlen)
{
	json_t *req = range_req(prefix);
	if (req == NULL || set_i64(req, "limit", ETCD_PREFIX_KEYS_MAX) < 0) {
		json_decref(req);
		seterr(err, errlen, "get prefix %s: out of memory", prefix);
		return -ENOMEM;
	}
	char what[96];
	snprintf(what, sizeof(what), "get prefix %.70s", prefix);
	int64_t rev = 0;
	bool more = false;
	int rc = range(e, req, what, kvs, n, &rev, &more, err, errlen);
	if (rc < 0)
		return rc;
	if (more) {
		etcd_kvs_free(*kvs, *n);
		*kvs = NULL;
		*n = 0;
		seterr(err, errlen, "%s: more than %d keys", what, ETCD_PREFIX_KEYS_MAX);
		return -EOVERFLOW;
	}
	if (revision != NULL)
		*revision = rev;
	return 0;
}

/* Builds {"key","value"[,"lease"]}, the body of a put and of a txn's
 * request_put. NULL when out of memory. */
static json_t *put_req(const char *key, const void *value, size_t len, int64_t lease)
{
	json_t *req = json_object();
	if (req == NULL || set_b64(req, "key", key, strlen(key)) < 0 ||
	    set_b64(req, "value", value, len) < 0 ||
	    (lease != 0 && set_i64(req, "lease", lease) < 0)) {
		json_decref(req);
		return NULL;
	}
	return req;
}

/* A call whose answer matters only by its header: checks it and returns
 * the answer in *ans (the caller frees it) when ans is not NULL. */
static int call_checked(etcd *e, const char *path, json_t *req, const char *what, json_t **ans,
                        int64_t *revision, char *err, size_t errlen)
{
	json_t *a = NULL;
	int rc = call(e, path, req, what, &a, err, errlen);
	if (rc < 0)
		return rc;
	int64_t rev = 0;
	char why[160] = "";
	rc = header_revision(a, &rev, why, sizeof(why));
	if (rc < 0) {
		seterr(err, errlen, "%s at %s: %s", what, etcd_endpoint(e), why);
		json_decref(a);
		return rc;
	}
	if (revision != NULL)
		*revision = rev;
	if (ans != NULL)
		*ans = a;
	else
		json_decref(a);
	return 0;
}

int etcd_put(etcd *e, const char *key, const void *value, size_t len, int64_t lease, char *err,
             size_t errlen)
{
	json_t *req = put_req(key, value, len, lease);
	char what[96];
	snprintf(what, sizeof(what), "put %.80s", key);
	if (req == NULL) {
		seterr(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	return call_checked(e, "/v3/kv/put", req, what, NULL, NULL, err, errlen);
}

int etcd_delete(etcd *e, const char *key, char *err, size_t errlen)
{
	char what[96];
	snprintf(what, sizeof(what), "delete %.80s", key);
	json_t *req = json_object();
	if (req == NULL || set_b64(req, "key", key, strlen(key)) < 0) {
		json_decref(req);
		seterr(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	json_t *ans = NULL;
	int rc = call_checked(e, "/v3/kv/deleterange", req, what, &ans, NULL, err, errlen);
	if (rc < 0)
		return rc;
	int64_t deleted = 0;
	char why[160] = "";
	rc = json_i64(ans, "deleted", &deleted, why, sizeof(why));
	json_decref(ans);
	if (rc < 0 || deleted < 0 || deleted > 1) {
		seterr(err, errlen, "%s at %s: bad \"deleted\"", what, etcd_endpoint(e));
		return -EPROTO;
	}
	return (int)deleted;
}

/* The txn of etcd_cas: compare MOD == expect (or VERSION == 0), then put. */
static json_t *cas_req(const char *key, int64_t expect, const void *value, size_t len,
                       int64_t lease)
{
	json_t *txn = json_object();
	json_t *cmp = json_object();
	json_t *cmps = json_array();
	json_t *ops = json_array();
	json_t *op = json_object();
	json_t *put = put_req(key, value, len, lease);
	bool ok = txn != NULL && cmp != NULL && cmps != NULL && ops != NULL && op != NULL &&
	          put != NULL && set_b64(cmp, "key", key, strlen(key)) == 0 &&
	          json_object_set_new(cmp, "result", json_string("EQUAL")) == 0 &&
	          json_object_set_new(cmp, "target",
	                              json_string(expect == 0 ? "VERSION" : "MOD")) == 0 &&
	          set_i64(cmp, expect == 0 ? "version" : "mod_revision", expect) == 0;
	ok = ok && json_array_append(cmps, cmp) == 0 &&
	     json_object_set(op, "request_put", put) == 0 && json_array_append(ops, op) == 0 &&
	     json_object_set(txn, "compare", cmps) == 0 &&
	     json_object_set(txn, "success", ops) == 0;
	json_decref(cmp);
	json_decref(cmps);
	json_decref(ops);
	json_decref(op);
	json_decref(put);
	if (!ok) {
		json_decref(txn);
		return NULL;
	}
	return txn;
}

int etcd_cas(etcd *e, const char *key, int64_t expect_mod_revision, const void *value, size_t len,
             int64_t lease, int64_t *new_mod_revision, char *err, size_t errlen)
{
	char what[96];
	snprintf(what, sizeof(what), "cas %.80s", key);
	if (expect_mod_revision < 0) {
		seterr(err, errlen, "%s: expected mod_revision %lld < 0", what,
		       (long long)expect_mod_revision);
		return -EINVAL;
	}
	json_t *req = cas_req(key, expect_mod_revision, value, len, lease);
	if (req == NULL) {
		seterr(err, errlen, "%s: out of memory", what);
		return -ENOMEM;
	}
	json_t *ans = NULL;
	int64_t rev = 0;
	int rc = call_checked(e, "/v3/kv/txn", req, what, &ans, &rev, err, errlen);
	if (rc < 0)
		return rc;
	const json_t *s = json_object_get(ans, "succeeded");
	if (s != NULL && !json_is_boolean(s)) {
		json_decref(ans);
		seterr(err, errlen, "%s at %s: \"succeeded\" is not a boolean", what,
		       etcd_endpoint(e));
		return -EPROTO;
	}
	bool swapped = json_is_true(s);
	json_decref(ans);
	/* The put is the txn's only write, so the key's new mod_revision is
	 * the revision of the txn, which the header carries. */
	if (swapped && new_mod_revision != NULL)
		*new_mod_revision = rev;
	return swapped ? 1 : 0;
}

/* ---- leases ----------------------------------------------------------- */

int etcd_lease_grant(etcd *e, int64_t ttl_ms, int64_t *id, int64_t *ttl_s, char *err, size_t errlen)
{
	int64_t ttl = ttl_ms <= 1000 ? 1 : (ttl_ms + 999) / 1000;
	json_t *req = json_object();
	if (req == NULL || set_i64(req, "TTL", ttl) < 0) {
		json_decref(req);
		seterr(err, errlen, "lease grant: out of memory");
		return -ENOMEM;
	}
	json_t *ans = NULL;
	int rc = call_checked(e, "/v3/lease/grant", req, "lease grant", &ans, NULL, err, errlen);
	if (rc < 0)
		return rc;
	int64_t got_id = 0, got_ttl = 0;
	char why[160] = "";
	rc = json_i64(ans, "ID", &got_id, why, sizeof(why));
	if (rc == 0)
		rc = json_i64(ans, "TTL", &got_ttl, why, sizeof(why));
	const char *gerr = json_string_value(json_object_get(ans, "error"));
	if (rc == 0 && gerr != NULL && gerr[0] != '\0') {
		seterr(err, errlen, "lease grant at %s: etcd: %s", etcd_endpoint(e), gerr);
		json_decref(ans);
		return -EIO;
	}
	json_decref(ans);
	if (rc < 0 || got_id <= 0 || got_ttl <= 0) {
		seterr(err, errlen, "lease grant at %s: bad ID or TTL %s", etcd_endpoint(e), why);
		return -EPROTO;
	}
	*id = got_id;
	if (ttl_s != NULL)
		*ttl_s = got_ttl;
	return 0;
}

int etcd_lease_keepalive(etcd *e, int64_t id, int64_t *ttl_left_s, char *err, size_t errlen)
{
	json_t *req = json_object();
	if (req == NULL || set_i64(req, "ID", id) < 0) {
		json_decref(req);
		seterr(err, errlen, "lease keepalive: out of memory");
		return -ENOMEM;
	}
	json_t *ans = NULL;
	const char *what = "lease keepalive";
	int rc = call(e, "/v3/lease/keepalive", req, what, &ans, err, errlen);
	if (rc < 0)
		return rc;
	/* A stream's message: {"result":{...}} or {"error":{...}}. */
	const json_t *res = json_object_get(ans, "result");
	const json_t *gerr = json_object_get(ans, "error");
	if (json_is_object(gerr)) {
		rc = error_from(gerr, what, etcd_endpoint(e), err, errlen);
		json_decref(ans);
		return rc;
	}
	int64_t rev = 0, ttl = 0;
	char why[160] = "";
	rc = json_is_object(res) ? header_revision(res, &rev, why, sizeof(why)) : -EPROTO;
	if (rc == 0)
		rc = json_i64(res, "TTL", &ttl, why, sizeof(why));
	json_decref(ans);
	if (rc < 0) {
		seterr(err, errlen, "%s at %s: bad answer %s", what, etcd_endpoint(e), why);
		return -EPROTO;
	}
	/* An unknown (expired, revoked) lease comes back with TTL 0, left out. */
	if (ttl <= 0)
		return 0;
	if (ttl_left_s != NULL)
		*ttl_left_s = ttl;
	return 1;
}

int etcd_lease_revoke(etcd *e, int64_t id, char *err, size_t errlen)
{
	json_t *req = json_object();
	if (req == NULL || set_i64(req, "ID", id) < 0) {
		json_decref(req);
		seterr(err, errlen, "lease revoke: out of memory");
		return -ENOMEM;
	}
	int rc = call_checked(e, "/v3/lease/revoke", req, "lease revoke", NULL, NULL, err, errlen);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? rc : 1;
}

/* ---- watch ------------------------------------------------------------ */

/* The state of one watch stream, fed line by line by watch_write. */
typedef struct watch_state {
	etcd_buf buf;     /* bytes of the message being received */
	bool created;     /* etcd confirmed the watch: silence now means no change */
	int result;       /* 0 while waiting; 1 a change; < 0 an error */
	int64_t revision; /* revision of the change (result 1) */
	CURL *curl;       /* the transfer, for the endpoint's URL in messages */
	const char *ep;   /* endpoint, for messages */
	char *err;        /* the caller's error buffer */
	size_t errlen;
} watch_state;

/* The highest mod_revision among the events (0 when none is readable). */
static int64_t events_revision(const json_t *events)
{
	int64_t best = 0;
	size_t i;
	const json_t *ev;
	json_array_foreach(events, i, ev)
	{
		int64_t rev = 0;
		const json_t *kv = json_object_get(ev, "kv");
		if (json_is_object(kv) && json_i64(kv, "mod_revision", &rev, NULL, 0) == 0 &&
		    rev > best)
			best = rev;
	}
	return best;
}

/* Reads one message of the stream into st (see the format at the top). */
static void watch_message(watch_state *st, const char *line, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je);
	const json_t *res = json_object_get(j, "result");
	const json_t *gerr = json_object_get(j, "error");
	if (!json_is_object(j)) {
		seterr(st->err, st->errlen, "watch at %s: message is not a JSON object (%s)",
		       st->ep, j == NULL ? je.text : "another type");
		st->result = -EPROTO;
	} else if (json_is_object(gerr)) {
		st->result = error_from(gerr, "watch", st->ep, st->err, st->errlen);
	} else if (res == NULL) {
		/* An error body of a non-200 answer: {"error":"..","code":N,...}. */
		st->result = error_from(j, "watch", st->ep, st->err, st->errlen);
	} else if (!json_is_object(res)) {
		seterr(st->err, st->errlen, "watch at %s: \"result\" is not an object", st->ep);
		st->result = -EPROTO;
	} else {
		const json_t *events = json_object_get(res, "events");
		int64_t compact = 0, hdr = 0;
		char why[160] = "";
		if (json_i64(res, "compact_revision", &compact, why, sizeof(why)) < 0 ||
		    (events != NULL && !json_is_array(events))) {
			seterr(st->err, st->errlen, "watch at %s: bad message %s", st->ep, why);
			st->result = -EPROTO;
		} else if (json_is_true(json_object_get(res, "canceled"))) {
			const char *reason =
			        json_string_value(json_object_get(res, "cancel_reason"));
			st->result = compact > 0 ? 1 : -EIO;
			st->revision = compact;
			if (compact <= 0)
				seterr(st->err, st->errlen, "watch at %s: canceled by etcd: %s",
				       st->ep, reason != NULL ? reason : "no reason given");
		} else if (json_array_size(events) > 0) {
			st->result = 1;
			st->revision = events_revision(events);
			if (st->revision == 0 && header_revision(res, &hdr, NULL, 0) == 0)
				st->revision = hdr;
		} else if (json_is_true(json_object_get(res, "created"))) {
			st->created = true;
		}
	}
	json_decref(j);
}

/* Feeds each complete line of the received bytes to watch_message. */
static void watch_lines(watch_state *st)
{
	char *nl;
	while (st->result == 0 && st->buf.len > 0 &&
	       (nl = memchr(st->buf.data, '\n', st->buf.len)) != NULL) {
		size_t line = (size_t)(nl - st->buf.data);
		if (line > 0)
			watch_message(st, st->buf.data, line);
		st->buf.len -= line + 1;
		memmove(st->buf.data, nl + 1, st->buf.len);
		st->buf.data[st->buf.len] = '\0';
	}
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	watch_state *st = ud;
	size_t n = buf_write(ptr, size, nmemb, &st->buf);
	if (n != size * nmemb)
		return 0;
	char *url = NULL;
	if (curl_easy_getinfo(st->curl, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url != NULL)
		st->ep = url;
	watch_lines(st);
	/* Stop at the first change or error: returning short aborts. */
	return st->result == 0 ? n : 0;
}

int etcd_watch_prefix(etcd *e, const char *prefix, int64_t after_revision, int timeout_ms,
                      int64_t *revision_out, char *err, size_t errlen)
{
	json_t *create = range_req(prefix);
	json_t *req = json_object();
	bool ok = create != NULL && req != NULL &&
	          set_i64(create, "start_revision", after_revision + 1) == 0 &&
	          json_object_set(req, "create_request", create) == 0;
	json_decref(create);
	char *body = ok ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (body == NULL) {
		seterr(err, errlen, "watch %s: out of memory", prefix);
		return -ENOMEM;
	}
	watch_state st = {.curl = e->curl, .err = err, .errlen = errlen};
	long status = 0;
	size_t used = e->current;
	st.ep = e->endpoints[used];
	int64_t deadline = bo_clock_ms() + timeout_ms;
	int rc = post(e, "/v3/watch", body, deadline, 0, watch_write, &st, &st.buf, "watch",
	              &status, &used, err, errlen);
	free(body);
	st.ep = e->endpoints[used];
	if (st.result == 0 && st.buf.len > 0)
		watch_message(&st, st.buf.data, st.buf.len); /* last line without '\n' */
	free(st.buf.data);
	if (st.result != 0 || (rc == -ETIMEDOUT && st.created)) {
		/* Both are normal ends of a watch on a working endpoint. */
		e->current = used;
		if (st.result == 1 && revision_out != NULL)
			*revision_out = st.revision;
		if (st.result == 0 && revision_out != NULL)
			*revision_out = after_revision;
		return st.result;
	}
	if (rc < 0)
		return rc;
	seterr(err, errlen, "watch at %s: stream ended (HTTP %ld) without a change", st.ep, status);
	return -EIO;
}
