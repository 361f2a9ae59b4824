#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int httpc_do(int port, const char *method, const char *path, const char *headers, const char *body,
	     httpc_resp *r)
{
	memset(r, 0, sizeof(*r));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	size_t blen = body ? strlen(body) : 0;
	size_t cap = strlen(method) + strlen(path) + strlen(headers) + blen + 256;
	char *req = malloc(cap);
	if (!req) {
		close(fd);
		return -ENOMEM;
	}
	int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s", method, path,
			 headers);
	if (body)
		n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
			      blen);
	n += snprintf(req + n, cap - (size_t)n, "\r\n");
	if (body) {
		memcpy(req + n, body, blen);
		n += (int)blen;
	}
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may answer (413) and close early */
		off += (size_t)w;
	}
	free(req);
	static __thread char in[1 << 17];
	size_t len = 0;
	for (;;) {
		ssize_t k = recv(fd, in + len, sizeof(in) - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
		if (len == sizeof(in) - 1)
			break;
	}
	close(fd);
	in[len] = '\0';
	char *end = strstr(in, "\r\n\r\n");
	if (len < 12 || strncmp(in, "HTTP/1.", 7) != 0 || !end)
		return 0;
	r->status = atoi(in + 9);
	size_t hl = (size_t)(end - in);
	if (hl >= sizeof(r->head))
		hl = sizeof(r->head) - 1;
	memcpy(r->head, in, hl);
	r->head[hl] = '\0';
	r->body_len = len - (size_t)(end + 4 - in);
	if (r->body_len >= sizeof(r->body))
		r->body_len = sizeof(r->body) - 1;
	memcpy(r->body, end + 4, r->body_len);
	r->body[r->body_len] = '\0';
	return 0;
}

const char *httpc_header(const httpc_resp *r, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			const char *e = strstr(v, "\r\n");
			size_t vl = e ? (size_t)(e - v) : strlen(v);
			if (vl >= len)
				vl = len - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
	}
	return NULL;
}
