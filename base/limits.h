/*
 * limits.h — every bound in boxoffice, in one place, each with its reason.
 *
 * "Put a limit on everything": a limit turns an unbounded input into an
 * error result (BO_LIMIT) instead of a crash, an allocation on the hot path
 * or a latency cliff. Compile-time relationships between limits are asserted
 * at the bottom of this file.
 */
#ifndef BO_LIMITS_H
#define BO_LIMITS_H

/* ---- Events and seat maps ------------------------------------------------ */

/* The largest stadiums hold ~150k seats; 1 Mi leaves room for dense maps
 * while keeping a seat index in 20 bits and an event's seat array <= 8 MiB. */
#define BO_SEATS_PER_EVENT_MAX (1u << 20)

/* Rows per event: a 1 Mi-seat event with 16 seats per row needs 64 Ki rows. */
#define BO_ROWS_PER_EVENT_MAX (1u << 16)

/* Seats in one row: stored in 16 bits; real rows have < 200 seats. */
#define BO_SEATS_PER_ROW_MAX 4096u

/* Sections per event: a section number is stored in 16 bits. */
#define BO_SECTIONS_PER_EVENT_MAX 4096u

/* Price tiers per event. Availability answers carry one counter per
 * category, so this bounds the size of a reply (and a ring slot). */
#define BO_CATEGORIES_MAX 16u

/* General-admission pools per event (floor, standing areas, lawn). */
#define BO_POOLS_PER_EVENT_MAX 8u

/* Capacity of one pool: fits in 32 bits with room for sums. */
#define BO_POOL_CAPACITY_MAX 1000000u

/* Bytes of a seat map's description: 4 per row (u16 section, u16 seats),
 * 3 per category run (u16 length, u8 category; a run is a maximal stretch
 * of one category within one row, so a row has at least one) and 4 per pool
 * (u32 capacity): exactly what engine/codec.c writes for a map after its
 * fixed counts. A CREATE_EVENT is journaled, map included, as one record,
 * and the journal format caps a payload at 2 MiB (JOURNAL_PAYLOAD_BYTES_MAX).
 * Without this bound a map legal by every other rule (1 Mi seats whose
 * categories alternate seat by seat: over 3 MiB) was applied and then could
 * not be journaled, which stops the shard. The value leaves the room the
 * rest of the largest entry needs (the 5-byte entry header, the 37 fixed
 * bytes of a CREATE_EVENT and the 277 of the largest result: 319 bytes, so
 * one spare; shard/entry.h asserts the sum), and no more: journals written
 * before this bound may hold maps of up to 2 MiB - 70 bytes (with the
 * smallest result, 28 bytes), and every one of them up to this bound still
 * decodes and replays. Only a record of a map of 2 MiB - 319 .. 2 MiB - 70
 * bytes, which no real venue comes near, is now refused as malformed. */
#define BO_MAP_DESC_BYTES_MAX ((2u << 20) - 320u)

/* Events resident in one shard: the event table is allocated at start-up. */
#define BO_EVENTS_PER_SHARD_MAX 4096u

/* ---- Holds --------------------------------------------------------------- */

/* Seats in one hold (explicit or best-available). Ticketing sites cap an
 * order at 8-10 seats to fight scalpers; 16 covers group sales and keeps a
 * hold's seat list inline (64 bytes) in a command, a result and a claim. */
#define BO_SEATS_PER_HOLD_MAX 16u

/* Tickets of one pool hold. GA orders are larger than seated ones. */
#define BO_POOL_QTY_PER_HOLD_MAX 100u

/* Active holds per client: one shopper rarely needs more than a few baskets;
 * the cap stops one client from locking a venue with many small holds. */
#define BO_HOLDS_PER_CLIENT_MAX 16u

/* Hold time-to-live. Below 1 s a hold cannot survive a checkout round trip;
 * above 30 min abandoned holds keep seats looking sold out (the complaint
 * this engine exists to fix). */
#define BO_TTL_MS_MIN 1000u
#define BO_TTL_MS_MAX (30u * 60u * 1000u)

/* A hold may be extended, but never to live longer than this from its
 * creation: extensions must not become a way to hoard seats. */
#define BO_HOLD_LIFETIME_MS_MAX (60u * 60u * 1000u)

/* Payment reference carried by a confirm (PSP ids are < 32 chars). */
#define BO_PAYREF_LEN_MAX 32u

/* Seats named by one status query: answers must fit one result slot. */
#define BO_QUERY_SEATS_MAX BO_SEATS_PER_HOLD_MAX

/* ---- Time ---------------------------------------------------------------- */

/* When no command arrives, a shard feeds itself a tick this often, so an
 * expired hold is released at most BO_TICK_MS (+ scheduling) after expiry;
 * the promised bound is BO_EXPIRY_LAG_MS_MAX. */
#define BO_TICK_MS 20u
#define BO_EXPIRY_LAG_MS_MAX 100u

/* Idempotency: a repeated (client, request) is answered from the window if
 * it is at most this old AND among the last `idem_capacity` mutating
 * commands of its shard (a runtime setting, see engine_config). Ten minutes
 * outlasts any sane client retry policy. */
#define BO_IDEM_WINDOW_MS (10u * 60u * 1000u)

/* ---- Shard-wide defaults (runtime settings may lower or raise them) ------ */

/* Claims (holds + bookings) per shard. A claim is ~128 bytes; memory is
 * reserved at start-up but only touched when used. */
#define BO_CLAIMS_PER_SHARD_DEFAULT (1u << 20)
#define BO_CLAIMS_PER_SHARD_MAX (1u << 24)

/* Seats per shard (sum over its events), reserved at start-up. */
#define BO_SEATS_PER_SHARD_DEFAULT (1u << 24)
#define BO_SEATS_PER_SHARD_MAX (1u << 28)

/* Idempotency window entries per shard (power of two). */
#define BO_IDEM_CAPACITY_DEFAULT (1u << 18)
#define BO_IDEM_CAPACITY_MAX (1u << 24)

/* ---- Rings --------------------------------------------------------------- */

/* Command ring slots per shard. 64 Ki slots x 256 B = 16 MiB: ~10 ms of
 * commands at the 5M/s target, enough to ride out a slow fsync without
 * answering busy. Power of two so an index is a mask. */
#define BO_RING_SLOTS_DEFAULT (1u << 16)

/* The writer drains at most this many commands as one batch: bounds the
 * latency of the first command in a batch and the journal buffer. */
#define BO_BATCH_MAX 4096u

/* ---- Read side: read model and projections (issue 9) --------------------- */

/* The read model (view/view.h) keeps per shard a state byte and a category
 * byte per seat of seats_max, a 4-byte row entry per seat (rows <= seats),
 * at most BO_VIEW_EVENT_BYTES per event of events_max (its 256-byte record,
 * its share of the id index and a state word of padding, since each event's
 * states start on an 8-byte word: 312 bytes with the defaults), 32 bytes
 * per claim of claims_max (the active pool holds table, half empty) and
 * 0.8 MiB of batch buffers: with the defaults (16 Mi seats, 4 Ki events,
 * 1 Mi claims) 130 MiB of address space per shard, touched only as events
 * fill it. view_memory_bytes() computes it exactly. */
#define BO_VIEW_EVENT_BYTES 512u

/* Subscribers connected to a server's PUB sockets at once; one more is
 * disconnected as it connects. Each costs the server one connection and
 * at most BO_PUB_SENDBUF_MSGS queued messages, which are shared between
 * subscribers (nng keeps one copy of a message, counted by reference). */
#define BO_SUBSCRIBERS_MAX 16384u

/* Messages nng queues per subscriber that does not read: when the queue is
 * full, newer messages are dropped for that subscriber alone (it sees a
 * gap in the event's sequence and resynchronises). So a subscriber that
 * never reads holds at most this many messages of the server's memory. */
#define BO_PUB_SENDBUF_MSGS 16u

/* Projection messages waiting between the shards' output threads and the
 * publisher thread; when full, new ones are dropped (counted; subscribers
 * see gaps): a slow publisher never slows the replies. */
#define BO_PUB_QUEUE_MSGS 4096u
#define BO_PUB_QUEUE_BYTES (64u << 20)

/* Events one subscriber of the client library watches (its topics): the
 * library keeps an image of each, up to BO_SEATS_PER_EVENT_MAX seats. */
#define BO_SUB_TOPICS_MAX 256u

/* event_state requests (a subscriber's snapshot) a server answers per
 * second; more are answered `throttled`. An image of the largest event is
 * ~2 MiB (a state and a category byte per seat): this bounds the copy work
 * a resynchronisation storm can cost at ~400 MiB/s on one thread. */
#define BO_EVENT_STATE_PER_SEC_MAX 200u

/* ---- HTTP front (gateway/http.c, schemas/http.md) -------------------------- */

/* Body of POST /v1/command: one command. The largest legal one, a 1 Mi-seat
 * create_event written row by row with a category per seat, is ~2.2 MiB of
 * JSON; an event that large is created over nng (8 MiB messages) or as rows
 * of one category each (a few KiB). 1 MiB bounds what one request makes the
 * server buffer and parse. A larger Content-Length is refused (413) before
 * a byte of the body is read; a chunked body is cut off (413) at the bound. */
#define BO_HTTP_BODY_MAX (1u << 20)

/* Body of POST /v1/batch, and its commands: a batch is one ring claim per
 * shard like an nng message, kept smaller so that a slot for it (commands,
 * results, ~0.5 KiB each) stays ~0.5 MiB. The body bound is jansson's: its
 * tree of a hostile body of small integers takes ~20x the body in memory
 * and ~0.4 s of CPU per MiB (measured: 173 MiB and 3 s for 8 MiB), on one
 * of the BO_HTTP_THREADS_DEFAULT threads; 2 MiB bounds that at ~45 MiB and
 * under a second per request, and still carries 1024 commands of 2 KiB. */
#define BO_HTTP_BATCH_BODY_MAX (2u << 20)
#define BO_HTTP_BATCH_MAX 1024u

/* Requests in flight at once (waiting for their journal sync): single
 * commands, and batches. Each holds a request slot allocated at start-up;
 * one more is answered 503 busy at once. 4096 single commands in flight
 * are ~4 group commits' worth at this machine's saturated rate. */
#define BO_HTTP_INFLIGHT_MAX 4096u
#define BO_HTTP_BATCH_INFLIGHT_MAX 16u

/* Connections open at once (more are accepted and closed at once), and
 * what each may use for its request line and headers: MHD's per-connection
 * memory pool, which a header flood exhausts (431/413, then close). 16 KiB
 * x 16384 connections bounds the headers' memory at 256 MiB, touched only
 * as headers arrive. */
#define BO_HTTP_CONNECTIONS_MAX 16384u
#define BO_HTTP_CONN_MEMORY 16384u

/* Seconds a connection may stay without a byte in either direction
 * (idle keep-alive, or a slowloris client dripping its headers slower
 * than this) before it is closed. */
#define BO_HTTP_IDLE_TIMEOUT_S 10u

/* Threads serving HTTP (each runs its own epoll loop). */
#define BO_HTTP_THREADS_DEFAULT 2u
#define BO_HTTP_THREADS_MAX 16u
/* ---- Access -------------------------------------------------------------- */

/* Bytes of the shared token (--auth-token-file; schemas/protocol.md section
 * 17). 256 is far beyond any sensible secret (64 hex digits of 32 random
 * bytes are plenty) and keeps the token inline in every request message at
 * a fixed small cost, and the file that holds it one short line. */
#define BO_AUTH_TOKEN_LEN_MAX 256u

/* ---- Relationships ------------------------------------------------------- */

#define BO_IS_POW2(x) ((x) != 0 && ((x) & ((x)-1)) == 0)

_Static_assert(BO_IS_POW2(BO_RING_SLOTS_DEFAULT), "ring size must be a power of two");
_Static_assert(BO_BATCH_MAX <= BO_RING_SLOTS_DEFAULT, "a batch cannot exceed the ring");
_Static_assert(BO_IS_POW2(BO_IDEM_CAPACITY_DEFAULT), "idempotency window is a mask");
_Static_assert(BO_SEATS_PER_ROW_MAX <= BO_SEATS_PER_EVENT_MAX, "row within event");
_Static_assert(BO_SEATS_PER_HOLD_MAX <= BO_SEATS_PER_ROW_MAX, "a hold fits a row");
_Static_assert(BO_TTL_MS_MIN < BO_TTL_MS_MAX, "TTL range is not empty");
_Static_assert(BO_TTL_MS_MAX <= BO_HOLD_LIFETIME_MS_MAX, "a fresh hold is within its lifetime");
_Static_assert(BO_TICK_MS * 2 < BO_EXPIRY_LAG_MS_MAX, "tick leaves slack for scheduling");
_Static_assert(BO_CATEGORIES_MAX <= 256, "category is stored in 8 bits");
_Static_assert(BO_SEATS_PER_SHARD_DEFAULT <= BO_SEATS_PER_SHARD_MAX, "default within max");
_Static_assert(BO_CLAIMS_PER_SHARD_MAX < (1u << 31), "claim index fits 31 bits");

#endif /* BO_LIMITS_H */
