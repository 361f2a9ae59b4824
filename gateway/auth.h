/*
 * auth.h — the shared token. A server started with a token
 * (--auth-token-file) requires it on every request it takes: on nng as
 * schemas/protocol.md says (the helper defines it there), on HTTP as
 * "Authorization: Bearer TOKEN". Compared in constant time.
 */
#ifndef BO_GATEWAY_AUTH_H
#define BO_GATEWAY_AUTH_H

#include <stddef.h>

#include "gateway/gateway.h"

/* 1 when the server has no token, or tok[0..len) equals it (constant time
 * in the token's length); else 0. */
int gw_auth_ok(const gw_server *gw, const char *tok, size_t len);

/* 1 when host (an nng URL's or HTTP address's host part) is a loopback
 * address: 127.0.0.0/8, ::1, localhost, or an ipc:// / inproc:// URL. */
int gw_addr_is_loopback(const char *url);

#endif /* BO_GATEWAY_AUTH_H */
