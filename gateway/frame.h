/*
 * frame.h — the framed TCP front (schemas/frame.md): length-prefixed
 * request messages of schemas/protocol.md over plain TCP, served by one
 * thread on one io_uring, beside nng.
 *
 * WHY. nng 1.5.2 hands each message across several threads; on a 2-core
 * machine that costs more per message than the rest of a single-command
 * request (issue 11: a bare nng REQ/REP echo is slower than Redis). Here a
 * request costs one recv completion, the gateway's usual path
 * (gw_slot_receive), and one send per connection per loop turn for every
 * reply that is ready.
 *
 * THREADS. The front's thread owns every connection and its buffers. The
 * thread that completes a request (an output thread, or the front's own
 * thread for answers given at once) pushes the slot onto a lock-free list
 * and, when the list was empty, writes an eventfd whose read the ring
 * keeps posted.
 *
 * ORDER. Replies leave a connection in the order of its requests: a reply
 * completed early waits for those before it.
 *
 * LIMITS (below). A connection with GW_FRAME_INFLIGHT_MAX requests
 * unanswered or unsent is not read until some leave (back-pressure); one
 * whose pending send has not progressed for GW_FRAME_STALL_MS is closed (a
 * client that never reads its replies).
 */
#ifndef BO_GATEWAY_FRAME_H
#define BO_GATEWAY_FRAME_H

#include <stddef.h>

#include "gateway/internal.h"

/* Connections at once; one more is accepted and closed at once (logged). */
#define GW_FRAME_CONNS_MAX 1024u
/* Requests of one connection received but not yet fully sent back. */
#define GW_FRAME_INFLIGHT_MAX 128u
/* A pending send that moves no byte for this long closes the connection. */
#define GW_FRAME_STALL_MS 10000
/* The receive buffer a connection starts with; it grows to hold one frame
 * of up to the message bound (cfg.recv_max_bytes) and shrinks back. */
#define GW_FRAME_RECV_BUF 65536u
/* The frame header: the body's length, 4 bytes big-endian. */
#define GW_FRAME_HEADER_BYTES 4u

/* The front's counters (/metrics); any thread. */
typedef struct gw_frame_stats {
	uint64_t connections; /* open now */
	uint64_t accepted;    /* connections accepted since start */
	uint64_t refused;     /* connections closed at once: GW_FRAME_CONNS_MAX open */
	uint64_t requests;    /* request frames taken */
	uint64_t bad_frames;  /* connections ended by a bad length */
	uint64_t stalled;     /* connections closed: replies not read for GW_FRAME_STALL_MS */
} gw_frame_stats;

/* Fills out; 0, or -ENOENT without a framed front (out zeroed). */
int gw_frame_stats_get(const gw_server *gw, gw_frame_stats *out /* OUT */);

/* Starts the front on gw->cfg.frame ("HOST:PORT", IPv4 literal or
 * localhost; port 0: any free one) once the slots exist. Returns 0, or a
 * negative errno with the reason in err (a bad address, the address in use,
 * io_uring refused); gw_frame_stop cleans up after a failure too. */
int gw_frame_start(gw_server *gw, char *err, size_t errlen);

/* Stops the front (safe without one): no more accepts or reads; requests
 * still waiting for a shard are answered busy (call it only once the
 * output threads are stopped: nothing else completes a slot then); the
 * replies are sent within ~1 s; then every connection is closed and the
 * thread joined. */
void gw_frame_stop(gw_server *gw);

#endif /* BO_GATEWAY_FRAME_H */
