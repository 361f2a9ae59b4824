/*
 * metrics.h — what the HTTP front serves besides the API: Prometheus text
 * exposition (GET /metrics) and the probes (GET /healthz, GET /readyz).
 * Built from the gateway's counters, each shard's and journal's stats, the
 * committers' status, the read models and the publisher, read without
 * stopping anything (each figure is read atomically; the page as a whole
 * is not one instant). Any thread, between gw_start and gw_stop.
 */
#ifndef BO_GATEWAY_METRICS_H
#define BO_GATEWAY_METRICS_H

#include <stddef.h>

#include <msgpack/sbuffer.h>

#include "gateway/gateway.h"

/* Appends the exposition (text format 0.0.4; every family with # HELP and
 * # TYPE; names boxoffice_*). Returns 0 or -ENOMEM. */
int gw_metrics_render(gw_server *gw, msgpack_sbuffer *out);

/* 0 when every shard is writing its journal; else -1 and the reason
 * (e.g. "shard 1: journal failed: ...") in reason[0..len). */
int gw_health(gw_server *gw, char *reason, size_t len);

/* 0 once recovery is done and the listeners accept requests (and not
 * draining); else -1 and the reason. */
int gw_ready(gw_server *gw, char *reason, size_t len);

#endif /* BO_GATEWAY_METRICS_H */
