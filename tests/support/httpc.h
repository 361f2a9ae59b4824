/*
 * httpc.h — a blocking HTTP/1.1 client for the in-process gateway tests:
 * one request per connection (Connection: close), the whole response read
 * until the server closes. Enough to see status, headers and body exactly
 * as sent; the API's behaviour is checked against a standard client in
 * tests/http/http_api_test.py.
 */
#ifndef BO_TEST_HTTPC_H
#define BO_TEST_HTTPC_H

#include <stddef.h>

typedef struct httpc_resp {
	int status;     /* 0: no response (connection refused or closed early) */
	char head[4096]; /* status line and headers, NUL-terminated */
	char body[65536]; /* NUL-terminated (truncated when longer) */
	size_t body_len;
} httpc_resp;

/* Sends METHOD PATH to 127.0.0.1:port with `headers` ("" or lines each
 * ending in \r\n) and body (NULL: none), and reads the response into r.
 * Returns 0 or -errno. */
int httpc_do(int port, const char *method, const char *path, const char *headers, const char *body,
	     httpc_resp *r);

/* The value of header `name` (case-insensitive) in r->head, copied to
 * out[0..len); NULL when absent. */
const char *httpc_header(const httpc_resp *r, const char *name, char *out, size_t len);

#endif /* BO_TEST_HTTPC_H */
