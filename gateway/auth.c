/*
 * auth.c — the shared token (gateway/auth.h): the constant-time comparison
 * every front uses, the loopback test of listener addresses, and gw_start's
 * rule that nothing listens beyond loopback without a token.
 *
 * WHY LOOPBACK IS THE LINE
 *
 * A listener on 127.0.0.0/8, ::1, an ipc:// path or inproc:// is reachable
 * from this machine only, whose users the operating system already
 * separates (an ipc socket has file permissions). Anything else (0.0.0.0,
 * ::, a LAN address, a host name other than localhost, which may resolve
 * anywhere) is reachable by whoever can route to it, and then every
 * command, cancel and block included, needs the token.
 */
#include "gateway/auth.h"
#include "gateway/internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/limits.h"

int gw_auth_ok(const gw_server *gw, const char *tok, size_t len)
{
	assert(gw != NULL && (tok != NULL || len == 0));
	if (gw->auth_token == NULL)
		return 1;
	size_t n = gw->auth_token_len;
	assert(n > 0);
	/* Every byte of the server's token is looked at whatever the input:
	 * the time taken depends on the token's length only, never on how
	 * many leading bytes a guess got right. A guess of another length is
	 * compared with the token itself, so that branch costs the same. */
	const unsigned char *a = (const unsigned char *)gw->auth_token;
	const unsigned char *b = len == n ? (const unsigned char *)tok : a;
	volatile unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return (diff == 0) & (len == n);
}

/* 1 when host[0..len) is a loopback address literal or "localhost". */
static int host_is_loopback(const char *host, size_t len)
{
	char h[64];
	if (len == 0 || len >= sizeof(h))
		return 0; /* empty: every address (nng's "tcp://:PORT") */
	memcpy(h, host, len);
	h[len] = '\0';
	if (strcasecmp(h, "localhost") == 0)
		return 1;
	struct in_addr a4;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	struct in6_addr a6;
	if (inet_pton(AF_INET6, h, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 1;
		/* ::ffff:127.x.y.z reaches the IPv4 loopback. */
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return 0;
}

/* The host part of "HOST:PORT" or "[HOST]:PORT" (a path after it
 * allowed): *host and *len, or -1 when there is no such form. */
static int split_host(const char *s, const char **host, size_t *len)
{
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		*host = s + 1;
		*len = (size_t)(close - s - 1);
		return 0;
	}
	size_t end = strcspn(s, "/");
	const char *colon = NULL;
	for (const char *p = s; p < s + end; p++)
		if (*p == ':') {
			if (colon != NULL)
				return -1; /* an IPv6 address without brackets: ambiguous */
			colon = p;
		}
	if (colon == NULL)
		return -1;
	*host = s;
	*len = (size_t)(colon - s);
	return 0;
}

int gw_addr_is_loopback(const char *url)
{
	assert(url != NULL);
	/* Transports that never leave the machine. */
	static const char *const local[] = {"inproc://", "ipc://", "abstract://"};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strncmp(url, local[i], strlen(local[i])) == 0)
			return 1;
	const char *rest = strstr(url, "://");
	rest = rest ? rest + 3 : url; /* no scheme: the HTTP form HOST:PORT */
	const char *host;
	size_t len;
	if (split_host(rest, &host, &len) < 0)
		return 0;
	return host_is_loopback(host, len);
}

/* 1 when url names a transport that reaches other machines (nng's
 * tcp, ws and tls families, ZeroTier) or is the HTTP form HOST:PORT; 0 for
 * a scheme nng does not know, which its listen refuses with its own, more
 * precise error. */
static int is_network_url(const char *url)
{
	static const char *const net[] = {"tcp",      "tcp4",     "tcp6", "ws",   "ws4",
	                                  "ws6",      "wss",      "wss4", "wss6", "tls+tcp",
	                                  "tls+tcp4", "tls+tcp6", "zt"};
	const char *sep = strstr(url, "://");
	if (sep == NULL)
		return 1;
	size_t n = (size_t)(sep - url);
	for (size_t i = 0; i < sizeof(net) / sizeof(net[0]); i++)
		if (strlen(net[i]) == n && strncasecmp(url, net[i], n) == 0)
			return 1;
	return 0;
}

static int exposed(const char *url)
{
	return is_network_url(url) && !gw_addr_is_loopback(url);
}

/* The listener of cfg that is not on loopback, or NULL. kind says which
 * sort it is, for the message. */
static const char *first_exposed(const gw_config *cfg, const char **kind)
{
	for (uint32_t i = 0; i < cfg->listen_count; i++)
		if (exposed(cfg->listen[i])) {
			*kind = "--listen";
			return cfg->listen[i];
		}
	for (uint32_t i = 0; i < cfg->publish_count; i++)
		if (exposed(cfg->publish[i])) {
			*kind = "--publish";
			return cfg->publish[i];
		}
	if (cfg->http != NULL && exposed(cfg->http)) {
		*kind = "--http";
		return cfg->http;
	}
	if (cfg->frame != NULL && exposed(cfg->frame)) {
		*kind = "--frame";
		return cfg->frame;
	}
	return NULL;
}

int gw_auth_check_config(const gw_config *cfg, char *err, size_t errlen)
{
	assert(cfg != NULL && err != NULL);
	if (cfg->auth_token != NULL) {
		if (cfg->auth_token_len == 0 || cfg->auth_token_len > BO_AUTH_TOKEN_LEN_MAX) {
			snprintf(err, errlen,
			         "invalid configuration: the auth token must be 1..%u bytes",
			         BO_AUTH_TOKEN_LEN_MAX);
			return -EINVAL;
		}
		return 0;
	}
	const char *kind = NULL;
	const char *url = first_exposed(cfg, &kind);
	if (url == NULL)
		return 0;
	snprintf(err, errlen,
	         "refusing to listen on %s (%s): not a loopback address, and no auth token is set; "
	         "give --auth-token-file FILE, or listen on 127.0.0.1, ::1, localhost or ipc://",
	         url, kind);
	return -EPERM;
}

int gw_auth_init(gw_server *gw)
{
	assert(gw != NULL && gw->auth_token == NULL);
	const gw_config *cfg = &gw->cfg;
	if (cfg->auth_token == NULL)
		return 0;
	assert(cfg->auth_token_len > 0 && cfg->auth_token_len <= BO_AUTH_TOKEN_LEN_MAX);
	gw->auth_token = malloc(cfg->auth_token_len);
	if (gw->auth_token == NULL)
		return -ENOMEM;
	memcpy(gw->auth_token, cfg->auth_token, cfg->auth_token_len);
	gw->auth_token_len = cfg->auth_token_len;
	/* The caller's buffer may die after gw_start: only the copy is used. */
	gw->cfg.auth_token = gw->auth_token;
	return 0;
}

void gw_auth_fini(gw_server *gw)
{
	if (gw->auth_token != NULL) {
		explicit_bzero(gw->auth_token, gw->auth_token_len);
		free(gw->auth_token);
	}
	gw->auth_token = NULL;
	gw->auth_token_len = 0;
	gw->cfg.auth_token = NULL;
}
