/*
 * snapshot.c — a shard's engine as one raw, checksummed image, and the
 * validator (engine_check) that makes loading a hostile image safe.
 *
 * WHY A RAW IMAGE
 *
 * Restart time is snapshot load + journal replay. Re-creating events and
 * re-applying holds would cost as much as replay; copying the tables back is
 * a memcpy per table (a 10 Mi-seat shard is ~80 MiB of seats). So the file
 * holds the used part of every table of engine_internal.h byte for byte, and
 * the loader trusts nothing in it: every count is bounded before a byte is
 * copied, and the rebuilt engine must pass engine_check() before anyone sees
 * it. A raw image is only meaningful to a build with the same structs: the
 * header carries a fingerprint of their layout (every size and offset) and a
 * build with another layout refuses the file (SNAPSHOT_VERSION covers changes
 * of meaning that keep the layout; bump it for those).
 *
 * SNAPSHOT FILE FORMAT (version 1)
 *
 * All integers are little-endian (the tables are the in-memory structs, so
 * this build only supports little-endian hosts, asserted below). A file is a
 * 256-byte header, eleven sections with no padding between them, and an
 * 8-byte trailer.
 *
 *   HEADER                                    (offset, size)
 *     0   8  magic "BOXSNAP" 0x1a
 *     8   4  format version (1)
 *    12   4  header bytes (256)
 *    16   8  layout fingerprint: XXH3-64 of the sizes and offsets of every
 *            field of the tables (layout_fingerprint())
 *    24   8  file bytes: the length of the whole file, trailer included
 *    32   4  shard
 *    36   4  reserved, 0
 *    40   8  seq: the last journal record the state includes
 *    48   8  seq_ts_ms (signed): that record's time, the engine's clock
 *    56  16  engine_config: seats_max, claims_max, idem_capacity, events_max
 *    72   4  seats_used          76   4  rows_used
 *    80   4  rowcats_used        84   4  event_count
 *    88   4  event_index_len: slots of the event index (whole table)
 *    92   4  claims_fresh        96   4  heap_len
 *   100   4  clients_len: slots of the client table
 *   104   4  clients_used: occupied client slots written (section 9)
 *   108   4  idem_index_len: buckets of the idempotency index
 *   112   4  idem_buckets_used: non-zero buckets written (section 11)
 *   116   4  holds_live         120   4  bookings_live
 *   124   4  reserved, 0
 *   128   8  recycle_head       136   8  recycle_tail
 *   144   8  idem_head          152   8  idem_tail
 *   160   8  expired_total
 *   168  80  reserved, 0
 *   248   8  header checksum: XXH3-64 of bytes [0, 248)
 *
 *   SECTIONS (in this order; sizes follow from the header)
 *     1  seats        seats_used x 8          seats[0, seats_used)
 *     2  rows         rows_used x 16          rows[0, rows_used)
 *     3  rowcats      rowcats_used x 4        rowcats[0, rowcats_used)
 *     4  events       event_count x 216       events[0, event_count)
 *     5  event index  event_index_len x 4     the whole table
 *     6  claims       claims_fresh x 152      claims[0, claims_fresh)
 *     7  recycle      (tail - head) x 4       queue entries, oldest first
 *     8  heap         heap_len x 4            heap[0, heap_len)
 *     9  clients      clients_used x 20       (u32 slot index, client_slot),
 *                                             occupied slots in index order
 *    10  idem         (tail - head) x 128     window entries, oldest first
 *    11  idem index   idem_buckets_used x 68  (u32 bucket index, bucket),
 *                                             non-zero buckets in index order
 *
 *   TRAILER
 *     8  XXH3-64 of bytes [0, file bytes - 8)
 *
 * Everything else is implied and zero: table slots past the used lengths,
 * queue and window slots outside [head, tail) (the engine zeroes an evicted
 * idempotency entry; stale recycle and heap slots are never read), empty
 * client slots and never-written buckets. The client table (2 x claims_max
 * slots) and the bucket index are mostly empty, hence the (index, record)
 * pairs. The clock is seq_ts_ms, not engine_now(): a clock that moved
 * without changing anything is not state (the next batch moves it again).
 *
 * VALIDITY RULE
 *
 * A file is a valid snapshot if and only if: it has at least 264 bytes; the
 * magic matches; the header checksum matches; version and header bytes are
 * 1 and 256; the layout fingerprint is this build's; the reserved fields are
 * zero; the config is one engine_new() accepts (limits.h); every count is
 * within the capacity that config gives (used lengths <= table sizes,
 * 0 <= tail - head <= queue capacity for both queues); the table sizes in
 * the header are those engine_new() allocates; the file bytes field equals
 * both the length the counts give and the actual length; the trailer equals
 * XXH3-64 of everything before it; pair indices are strictly ascending and
 * in range, written client slots are occupied and written buckets are not
 * all zero; and the engine rebuilt from it passes engine_check().
 *
 * The pair rules make the encoding of an accepted file unique: encoding the
 * loaded engine gives back the same bytes (the fuzz target checks it).
 *
 * LOADER ALGORITHM (snapshot_load)
 *
 *   1. Header: length, magic, header checksum, version, layout, reserved.
 *   2. Config within limits.h; counts within the capacities it implies.
 *   3. Length from the counts == header's file bytes == actual length.
 *   4. Whole-file checksum (the trailer). Up to here nothing is allocated.
 *   5. engine_new(config); table sizes in the header == the engine's.
 *   6. Copy the sections into the tables; the queues start at head % cap;
 *      pairs are checked (ascending, in range, non-empty) as they are read.
 *   7. engine_check(); any failure frees the engine: -EINVAL and the reason.
 *
 * WRITER (snapshot_write_fd)
 *
 * Runs in a child forked from the multi-threaded server, where another
 * thread may have held the allocator's lock at fork(): so no heap, no locks.
 * It streams through a 32 KiB stack buffer with write(2) (large tables go to
 * write(2) straight from the engine's memory) and hashes with an XXH3 state
 * on the stack. Two passes over the client table and the bucket index count
 * the pairs first, as the header precedes them.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no heap in the writer */

#include "snapshot.h"
#include "engine_internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "snapshots are raw little-endian tables");
/* The sizes the format description above gives; a change of layout must
 * update it (the fingerprint already keeps old files out). */
_Static_assert(sizeof(seat) == 8 && sizeof(row) == 16 && sizeof(rowcat) == 4, "documented sizes");
_Static_assert(sizeof(event) == 216 && sizeof(claim) == 152, "documented sizes");
_Static_assert(sizeof(client_slot) == 16 && sizeof(idem_entry) == 128 && sizeof(idem_bucket) == 64,
               "documented sizes");

#define SNAP_VERSION 1u
#define SNAP_HEADER_BYTES 256u
#define SNAP_TRAILER_BYTES 8u
#define SNAP_HASHED_HEADER_BYTES 248u /* the header checksum covers [0, 248) */
static const uint8_t snap_magic[8] = {'B', 'O', 'X', 'S', 'N', 'A', 'P', 0x1a};

/* Header field offsets (see the format above). */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_HEADER_BYTES = 12,
	H_LAYOUT = 16,
	H_FILE_BYTES = 24,
	H_SHARD = 32,
	H_RESERVED0 = 36,
	H_SEQ = 40,
	H_SEQ_TS = 48,
	H_SEATS_MAX = 56,
	H_CLAIMS_MAX = 60,
	H_IDEM_CAP = 64,
	H_EVENTS_MAX = 68,
	H_SEATS_USED = 72,
	H_ROWS_USED = 76,
	H_ROWCATS_USED = 80,
	H_EVENT_COUNT = 84,
	H_EVENT_INDEX_LEN = 88,
	H_CLAIMS_FRESH = 92,
	H_HEAP_LEN = 96,
	H_CLIENTS_LEN = 100,
	H_CLIENTS_USED = 104,
	H_IDEM_INDEX_LEN = 108,
	H_IDEM_BUCKETS_USED = 112,
	H_HOLDS_LIVE = 116,
	H_BOOKINGS_LIVE = 120,
	H_RESERVED1 = 124,
	H_RECYCLE_HEAD = 128,
	H_RECYCLE_TAIL = 136,
	H_IDEM_HEAD = 144,
	H_IDEM_TAIL = 152,
	H_EXPIRED_TOTAL = 160,
	H_RESERVED2 = 168, /* to 248 */
	H_HEADER_HASH = 248,
};

/* The engine's clock is wall-clock milliseconds (~2^41 today). A loaded
 * clock, creation or expiry time above this is corrupt; the bound keeps
 * now + ttl and created + lifetime far from signed overflow. */
#define SNAP_CLOCK_MS_MAX (INT64_C(1) << 60)

/* Table sizes engine_new() can allocate: bounds header fields before the
 * engine exists, so the length arithmetic cannot overflow. */
#define SNAP_TABLE_LEN_MAX (UINT32_C(1) << 26)

#define CLIENT_REC_BYTES (4u + (uint32_t)sizeof(client_slot))
#define BUCKET_REC_BYTES (4u + (uint32_t)sizeof(idem_bucket))

#define WRITE_BUF_BYTES (32u * 1024u)

/* ---- Small helpers ------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Sizes and offsets of every field the image holds, plus the constants that
 * give them meaning. Hashing them pins the layout a file was written with. */
#define FLD(type, field) (uint32_t) offsetof(type, field), (uint32_t)sizeof(((type *)0)->field)
static uint64_t layout_fingerprint(void)
{
	static const uint32_t d[] = {
	        (uint32_t)sizeof(seat),
	        FLD(seat, owner),
	        FLD(seat, row),
	        FLD(seat, state),
	        FLD(seat, cat),
	        (uint32_t)sizeof(row),
	        FLD(row, first),
	        FLD(row, rc_first),
	        FLD(row, len),
	        FLD(row, section),
	        FLD(row, rc_count),
	        (uint32_t)sizeof(rowcat),
	        FLD(rowcat, no_clean),
	        FLD(rowcat, max_run),
	        FLD(rowcat, cat),
	        (uint32_t)sizeof(event),
	        FLD(event, id),
	        FLD(event, seat_base),
	        FLD(event, seat_count),
	        FLD(event, row_base),
	        FLD(event, row_count),
	        FLD(event, rc_base),
	        FLD(event, rc_count),
	        FLD(event, category_count),
	        FLD(event, pool_count),
	        FLD(event, by_state),
	        FLD(event, free_by_cat),
	        FLD(event, pool_cap),
	        FLD(event, pool_held),
	        FLD(event, pool_booked),
	        (uint32_t)sizeof(claim),
	        FLD(claim, gen),
	        FLD(claim, event),
	        FLD(claim, heap_pos),
	        FLD(claim, quantity),
	        FLD(claim, state),
	        FLD(claim, is_pool),
	        FLD(claim, pool),
	        FLD(claim, seat_count),
	        FLD(claim, payref_len),
	        FLD(claim, in_recycle),
	        FLD(claim, ticket),
	        FLD(claim, client),
	        FLD(claim, created_ms),
	        FLD(claim, expires_ms),
	        FLD(claim, seats),
	        FLD(claim, payref),
	        (uint32_t)sizeof(client_slot),
	        FLD(client_slot, client),
	        FLD(client_slot, holds),
	        (uint32_t)sizeof(idem_entry),
	        FLD(idem_entry, client),
	        FLD(idem_entry, request),
	        FLD(idem_entry, content),
	        FLD(idem_entry, at_ms),
	        FLD(idem_entry, claim_id),
	        FLD(idem_entry, expires_at_ms),
	        FLD(idem_entry, quantity),
	        FLD(idem_entry, op),
	        FLD(idem_entry, status),
	        FLD(idem_entry, detail),
	        FLD(idem_entry, seat_count),
	        FLD(idem_entry, pool),
	        FLD(idem_entry, seats),
	        (uint32_t)sizeof(idem_bucket),
	        FLD(idem_bucket, hash),
	        FLD(idem_bucket, spill),
	        FLD(idem_bucket, pos),
	        IDEM_SLOTS,
	        SLOT_NONE,
	        CL_UNUSED,
	        CL_HELD,
	        CL_BOOKED,
	        CL_EXPIRED,
	        CL_RELEASED,
	        CL_CANCELLED,
	        BO_SEAT_FREE,
	        BO_SEAT_HELD,
	        BO_SEAT_BOOKED,
	        BO_SEAT_BLOCKED,
	};
	return XXH3_64bits(d, sizeof(d));
}
#undef FLD

/* ---- Header -------------------------------------------------------------- */

typedef struct snap_header {
	uint32_t version, header_bytes, shard;
	uint64_t layout, file_bytes, seq;
	int64_t seq_ts_ms;
	engine_config cfg;
	uint32_t seats_used, rows_used, rowcats_used, event_count, event_index_len;
	uint32_t claims_fresh, heap_len, clients_len, clients_used, idem_index_len,
	        idem_buckets_used;
	uint32_t holds_live, bookings_live;
	uint64_t recycle_head, recycle_tail, idem_head, idem_tail, expired_total;
} snap_header;

enum {
	SEC_SEATS,
	SEC_ROWS,
	SEC_ROWCATS,
	SEC_EVENTS,
	SEC_EVENT_INDEX,
	SEC_CLAIMS,
	SEC_RECYCLE,
	SEC_HEAP,
	SEC_CLIENTS,
	SEC_IDEM,
	SEC_IDEM_INDEX,
	SEC_COUNT
};

/* Section offsets (off[SEC_COUNT] is the trailer's) and the file length.
 * Every count must already be bounded (all are < 2^32, queue windows are
 * checked against their capacity), so the sums cannot overflow. */
static uint64_t snap_sections(const snap_header *h, uint64_t off[SEC_COUNT + 1])
{
	const uint64_t n[SEC_COUNT] = {
	        [SEC_SEATS] = (uint64_t)h->seats_used * sizeof(seat),
	        [SEC_ROWS] = (uint64_t)h->rows_used * sizeof(row),
	        [SEC_ROWCATS] = (uint64_t)h->rowcats_used * sizeof(rowcat),
	        [SEC_EVENTS] = (uint64_t)h->event_count * sizeof(event),
	        [SEC_EVENT_INDEX] = (uint64_t)h->event_index_len * sizeof(uint32_t),
	        [SEC_CLAIMS] = (uint64_t)h->claims_fresh * sizeof(claim),
	        [SEC_RECYCLE] = (h->recycle_tail - h->recycle_head) * sizeof(uint32_t),
	        [SEC_HEAP] = (uint64_t)h->heap_len * sizeof(uint32_t),
	        [SEC_CLIENTS] = (uint64_t)h->clients_used * CLIENT_REC_BYTES,
	        [SEC_IDEM] = (h->idem_tail - h->idem_head) * sizeof(idem_entry),
	        [SEC_IDEM_INDEX] = (uint64_t)h->idem_buckets_used * BUCKET_REC_BYTES,
	};
	off[0] = SNAP_HEADER_BYTES;
	for (int i = 0; i < SEC_COUNT; i++)
		off[i + 1] = off[i] + n[i];
	return off[SEC_COUNT] + SNAP_TRAILER_BYTES;
}

static void header_encode(const snap_header *h, uint8_t out[SNAP_HEADER_BYTES])
{
	memset(out, 0, SNAP_HEADER_BYTES);
	memcpy(out + H_MAGIC, snap_magic, sizeof(snap_magic));
	put32(out + H_VERSION, h->version);
	put32(out + H_HEADER_BYTES, h->header_bytes);
	put64(out + H_LAYOUT, h->layout);
	put64(out + H_FILE_BYTES, h->file_bytes);
	put32(out + H_SHARD, h->shard);
	put64(out + H_SEQ, h->seq);
	put64(out + H_SEQ_TS, (uint64_t)h->seq_ts_ms);
	put32(out + H_SEATS_MAX, h->cfg.seats_max);
	put32(out + H_CLAIMS_MAX, h->cfg.claims_max);
	put32(out + H_IDEM_CAP, h->cfg.idem_capacity);
	put32(out + H_EVENTS_MAX, h->cfg.events_max);
	put32(out + H_SEATS_USED, h->seats_used);
	put32(out + H_ROWS_USED, h->rows_used);
	put32(out + H_ROWCATS_USED, h->rowcats_used);
	put32(out + H_EVENT_COUNT, h->event_count);
	put32(out + H_EVENT_INDEX_LEN, h->event_index_len);
	put32(out + H_CLAIMS_FRESH, h->claims_fresh);
	put32(out + H_HEAP_LEN, h->heap_len);
	put32(out + H_CLIENTS_LEN, h->clients_len);
	put32(out + H_CLIENTS_USED, h->clients_used);
	put32(out + H_IDEM_INDEX_LEN, h->idem_index_len);
	put32(out + H_IDEM_BUCKETS_USED, h->idem_buckets_used);
	put32(out + H_HOLDS_LIVE, h->holds_live);
	put32(out + H_BOOKINGS_LIVE, h->bookings_live);
	put64(out + H_RECYCLE_HEAD, h->recycle_head);
	put64(out + H_RECYCLE_TAIL, h->recycle_tail);
	put64(out + H_IDEM_HEAD, h->idem_head);
	put64(out + H_IDEM_TAIL, h->idem_tail);
	put64(out + H_EXPIRED_TOTAL, h->expired_total);
	put64(out + H_HEADER_HASH, XXH3_64bits(out, SNAP_HASHED_HEADER_BYTES));
}

/* Decodes and checks what a header alone can prove (steps 1 of the loader):
 * shared by snapshot_load and snapshot_peek. */
static int header_decode(const uint8_t *b, size_t len, snap_header *h, char *err, size_t errlen)
{
	if (len < SNAP_HEADER_BYTES)
		return fail(err, errlen, "truncated: %zu bytes, a snapshot header has %u", len,
		            SNAP_HEADER_BYTES);
	if (memcmp(b + H_MAGIC, snap_magic, sizeof(snap_magic)) != 0)
		return fail(err, errlen, "not a snapshot (bad magic)");
	uint64_t stored = get64(b + H_HEADER_HASH),
	         computed = XXH3_64bits(b, SNAP_HASHED_HEADER_BYTES);
	if (stored != computed)
		return fail(err, errlen,
		            "header checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64
		            ")",
		            stored, computed);
	memset(h, 0, sizeof(*h));
	h->version = get32(b + H_VERSION);
	h->header_bytes = get32(b + H_HEADER_BYTES);
	h->layout = get64(b + H_LAYOUT);
	if (h->version != SNAP_VERSION)
		return fail(err, errlen, "format version %" PRIu32 ", this build reads version %u",
		            h->version, SNAP_VERSION);
	if (h->header_bytes != SNAP_HEADER_BYTES)
		return fail(err, errlen, "header size %" PRIu32 ", version %u has %u",
		            h->header_bytes, SNAP_VERSION, SNAP_HEADER_BYTES);
	uint64_t layout = layout_fingerprint();
	if (h->layout != layout)
		return fail(err, errlen,
		            "written by a build with another table layout (fingerprint %016" PRIx64
		            ", this build %016" PRIx64 "): rebuild the state from the journal",
		            h->layout, layout);
	if (get32(b + H_RESERVED0) || get32(b + H_RESERVED1) ||
	    !all_zero(b + H_RESERVED2, H_HEADER_HASH - H_RESERVED2))
		return fail(err, errlen, "reserved header bytes are not zero");
	h->file_bytes = get64(b + H_FILE_BYTES);
	h->shard = get32(b + H_SHARD);
	h->seq = get64(b + H_SEQ);
	h->seq_ts_ms = (int64_t)get64(b + H_SEQ_TS);
	h->cfg.seats_max = get32(b + H_SEATS_MAX);
	h->cfg.claims_max = get32(b + H_CLAIMS_MAX);
	h->cfg.idem_capacity = get32(b + H_IDEM_CAP);
	h->cfg.events_max = get32(b + H_EVENTS_MAX);
	h->seats_used = get32(b + H_SEATS_USED);
	h->rows_used = get32(b + H_ROWS_USED);
	h->rowcats_used = get32(b + H_ROWCATS_USED);
	h->event_count = get32(b + H_EVENT_COUNT);
	h->event_index_len = get32(b + H_EVENT_INDEX_LEN);
	h->claims_fresh = get32(b + H_CLAIMS_FRESH);
	h->heap_len = get32(b + H_HEAP_LEN);
	h->clients_len = get32(b + H_CLIENTS_LEN);
	h->clients_used = get32(b + H_CLIENTS_USED);
	h->idem_index_len = get32(b + H_IDEM_INDEX_LEN);
	h->idem_buckets_used = get32(b + H_IDEM_BUCKETS_USED);
	h->holds_live = get32(b + H_HOLDS_LIVE);
	h->bookings_live = get32(b + H_BOOKINGS_LIVE);
	h->recycle_head = get64(b + H_RECYCLE_HEAD);
	h->recycle_tail = get64(b + H_RECYCLE_TAIL);
	h->idem_head = get64(b + H_IDEM_HEAD);
	h->idem_tail = get64(b + H_IDEM_TAIL);
	h->expired_total = get64(b + H_EXPIRED_TOTAL);
	return 0;
}

static bool config_ok(const engine_config *c)
{
	/* engine_new()'s own rule, checked here to name the problem. */
	return c->seats_max >= 1 && c->seats_max <= BO_SEATS_PER_SHARD_MAX && c->claims_max >= 1 &&
	       c->claims_max <= BO_CLAIMS_PER_SHARD_MAX && BO_IS_POW2(c->idem_capacity) &&
	       c->idem_capacity <= BO_IDEM_CAPACITY_MAX && c->events_max >= 1 &&
	       c->events_max <= BO_EVENTS_PER_SHARD_MAX;
}

/* Step 2: every count within what the config allows, so that the section
 * sizes are bounded and the copies stay inside the tables. */
static int header_counts_check(const snap_header *h, char *err, size_t errlen)
{
	const engine_config *c = &h->cfg;
	if (!config_ok(c))
		return fail(err, errlen,
		            "config outside limits.h: seats_max %" PRIu32 " claims_max %" PRIu32
		            " idem_capacity %" PRIu32 " events_max %" PRIu32,
		            c->seats_max, c->claims_max, c->idem_capacity, c->events_max);
	if (h->seq_ts_ms < 0 || h->seq_ts_ms > SNAP_CLOCK_MS_MAX)
		return fail(err, errlen, "clock seq_ts_ms %" PRId64 " out of range", h->seq_ts_ms);
	if (h->seats_used > c->seats_max || h->rows_used > c->seats_max ||
	    h->rowcats_used > c->seats_max)
		return fail(err, errlen,
		            "arena use over capacity: seats %" PRIu32 ", rows %" PRIu32
		            ", rowcats %" PRIu32 " for seats_max %" PRIu32,
		            h->seats_used, h->rows_used, h->rowcats_used, c->seats_max);
	if (h->event_count > c->events_max)
		return fail(err, errlen, "event_count %" PRIu32 " over events_max %" PRIu32,
		            h->event_count, c->events_max);
	if (h->claims_fresh > c->claims_max || h->heap_len > c->claims_max ||
	    h->holds_live > c->claims_max || h->bookings_live > c->claims_max)
		return fail(err, errlen,
		            "claim counts over claims_max %" PRIu32 ": fresh %" PRIu32
		            ", heap %" PRIu32 ", holds %" PRIu32 ", bookings %" PRIu32,
		            c->claims_max, h->claims_fresh, h->heap_len, h->holds_live,
		            h->bookings_live);
	if (h->recycle_tail < h->recycle_head ||
	    h->recycle_tail - h->recycle_head > eng_recycle_cap(c))
		return fail(err, errlen,
		            "recycle queue [%" PRIu64 ", %" PRIu64 ") over its capacity %" PRIu64,
		            h->recycle_head, h->recycle_tail, eng_recycle_cap(c));
	if (h->idem_tail < h->idem_head || h->idem_tail - h->idem_head > c->idem_capacity)
		return fail(err, errlen,
		            "idempotency window [%" PRIu64 ", %" PRIu64
		            ") over its capacity %" PRIu32,
		            h->idem_head, h->idem_tail, c->idem_capacity);
	if (h->event_index_len > SNAP_TABLE_LEN_MAX || h->clients_len > SNAP_TABLE_LEN_MAX ||
	    h->idem_index_len > SNAP_TABLE_LEN_MAX)
		return fail(err, errlen,
		            "table sizes out of range: event index %" PRIu32 ", clients %" PRIu32
		            ", idempotency index %" PRIu32,
		            h->event_index_len, h->clients_len, h->idem_index_len);
	if (h->clients_used > h->clients_len || h->idem_buckets_used > h->idem_index_len)
		return fail(err, errlen,
		            "more records than slots: clients %" PRIu32 "/%" PRIu32
		            ", buckets %" PRIu32 "/%" PRIu32,
		            h->clients_used, h->clients_len, h->idem_buckets_used,
		            h->idem_index_len);
	return 0;
}

static bool bucket_empty(const idem_bucket *b)
{
	return all_zero(b, sizeof(*b));
}

static void header_from_engine(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
                               snap_header *h)
{
	memset(h, 0, sizeof(*h));
	h->version = SNAP_VERSION;
	h->header_bytes = SNAP_HEADER_BYTES;
	h->layout = layout_fingerprint();
	h->shard = shard;
	h->seq = seq;
	h->seq_ts_ms = seq_ts_ms;
	h->cfg = e->cfg;
	h->seats_used = e->seats_used;
	h->rows_used = e->rows_used;
	h->rowcats_used = e->rowcats_used;
	h->event_count = e->event_count;
	h->event_index_len = e->event_index_mask + 1;
	h->claims_fresh = e->claims_fresh;
	h->heap_len = e->heap_len;
	h->clients_len = e->clients_mask + 1;
	for (uint32_t i = 0; i < h->clients_len; i++)
		h->clients_used += e->clients[i].client != 0;
	h->idem_index_len = e->idem_index_mask + 1;
	for (uint32_t i = 0; i < h->idem_index_len; i++)
		h->idem_buckets_used += !bucket_empty(&e->idem_index[i]);
	h->holds_live = e->holds_live;
	h->bookings_live = e->bookings_live;
	h->recycle_head = e->recycle_head;
	h->recycle_tail = e->recycle_tail;
	h->idem_head = e->idem_head;
	h->idem_tail = e->idem_tail;
	h->expired_total = e->expired_total;
	uint64_t off[SEC_COUNT + 1];
	h->file_bytes = snap_sections(h, off);
}

/* ---- Writer -------------------------------------------------------------- */

/* Where the encoding goes: a file descriptor through a (stack) staging
 * buffer, or a memory block of the exact size. */
typedef struct snap_out {
	int fd;             /* >= 0: file mode; -1: memory mode */
	uint8_t *mem;       /* memory mode: the destination */
	uint8_t *buf;       /* file mode: staging buffer */
	size_t buf_len;     /* bytes staged */
	size_t buf_cap;     /* its size */
	uint64_t pos;       /* bytes emitted so far */
	XXH3_state_t *hash; /* file mode: hash of everything emitted */
	int err;            /* first -errno of a write; later output is dropped */
} snap_out;

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void out_emit(snap_out *o, const void *p, size_t n)
{
	XXH3_64bits_update(o->hash, p, n);
	if (!o->err)
		o->err = write_all(o->fd, p, n);
}

static void out_flush(snap_out *o)
{
	if (o->buf_len) {
		out_emit(o, o->buf, o->buf_len);
		o->buf_len = 0;
	}
}

static void out_put(snap_out *o, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (o->fd < 0) {
		memcpy(o->mem + o->pos, p, n);
		o->pos += n;
		return;
	}
	o->pos += n;
	if (o->buf_len + n <= o->buf_cap) {
		memcpy(o->buf + o->buf_len, p, n);
		o->buf_len += n;
		return;
	}
	out_flush(o);
	if (n >= o->buf_cap) {
		out_emit(o, p, n); /* a whole table: no copy */
		return;
	}
	memcpy(o->buf, p, n);
	o->buf_len = n;
}

/* The live part [head, tail) of a ring of `cap` elements: at most two runs. */
static void out_ring(snap_out *o, const void *base, size_t size, uint64_t cap, uint64_t head,
                     uint64_t tail)
{
	uint64_t n = tail - head, first = head % cap;
	uint64_t k = n < cap - first ? n : cap - first;
	out_put(o, (const uint8_t *)base + first * size, k * size);
	out_put(o, base, (n - k) * size);
}

static void encode_body(const engine *e, const snap_header *h, snap_out *o)
{
	out_put(o, e->seats, (size_t)h->seats_used * sizeof(seat));
	out_put(o, e->rows, (size_t)h->rows_used * sizeof(row));
	out_put(o, e->rowcats, (size_t)h->rowcats_used * sizeof(rowcat));
	out_put(o, e->events, (size_t)h->event_count * sizeof(event));
	out_put(o, e->event_index, (size_t)h->event_index_len * sizeof(uint32_t));
	out_put(o, e->claims, (size_t)h->claims_fresh * sizeof(claim));
	out_ring(o, e->recycle, sizeof(uint32_t), eng_recycle_cap(&e->cfg), h->recycle_head,
	         h->recycle_tail);
	out_put(o, e->heap, (size_t)h->heap_len * sizeof(uint32_t));
	for (uint32_t i = 0; i < h->clients_len; i++) {
		if (e->clients[i].client == 0)
			continue;
		out_put(o, &i, sizeof(i));
		out_put(o, &e->clients[i], sizeof(client_slot));
	}
	out_ring(o, e->idem, sizeof(idem_entry), e->cfg.idem_capacity, h->idem_head, h->idem_tail);
	for (uint32_t i = 0; i < h->idem_index_len; i++) {
		if (bucket_empty(&e->idem_index[i]))
			continue;
		out_put(o, &i, sizeof(i));
		out_put(o, &e->idem_index[i], sizeof(idem_bucket));
	}
}

int snapshot_write_fd(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms, int fd)
{
	assert(e && fd >= 0);
	assert(seq_ts_ms >= 0 && seq_ts_ms <= e->now_ms); /* the contract: the clock at seq */
	snap_header h;
	header_from_engine(e, shard, seq, seq_ts_ms, &h);
	uint8_t hdr[SNAP_HEADER_BYTES];
	header_encode(&h, hdr);

	uint8_t buf[WRITE_BUF_BYTES];
	XXH3_state_t st;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	snap_out o = {.fd = fd, .buf = buf, .buf_cap = sizeof(buf), .hash = &st};
	out_put(&o, hdr, sizeof(hdr));
	encode_body(e, &h, &o);
	out_flush(&o);
	assert(o.pos + SNAP_TRAILER_BYTES == h.file_bytes);
	uint8_t trailer[SNAP_TRAILER_BYTES];
	put64(trailer, XXH3_64bits_digest(&st));
	if (!o.err)
		o.err = write_all(fd, trailer, sizeof(trailer));
	return o.err;
}

int snapshot_encode(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms, uint8_t **buf,
                    size_t *len)
{
	assert(e && buf && len);
	assert(seq_ts_ms >= 0 && seq_ts_ms <= e->now_ms);
	*buf = NULL;
	*len = 0;
	snap_header h;
	header_from_engine(e, shard, seq, seq_ts_ms, &h);
	uint8_t *mem = malloc(h.file_bytes);
	if (!mem)
		return -ENOMEM;
	header_encode(&h, mem);
	snap_out o = {.fd = -1, .mem = mem, .pos = SNAP_HEADER_BYTES};
	encode_body(e, &h, &o);
	assert(o.pos + SNAP_TRAILER_BYTES == h.file_bytes);
	put64(mem + o.pos, XXH3_64bits(mem, o.pos));
	*buf = mem;
	*len = h.file_bytes;
	return 0;
}

/* ---- Loader -------------------------------------------------------------- */

static void load_ring(void *base, size_t size, uint64_t cap, uint64_t head, uint64_t tail,
                      const uint8_t *src)
{
	uint64_t n = tail - head, first = head % cap;
	uint64_t k = n < cap - first ? n : cap - first;
	memcpy((uint8_t *)base + first * size, src, k * size);
	memcpy(base, src + k * size, (n - k) * size);
}

/* Steps 5-6: copies the sections into a fresh engine. */
static int load_tables(engine *e, const snap_header *h, const uint8_t *buf,
                       const uint64_t off[SEC_COUNT + 1], char *err, size_t errlen)
{
	if (h->event_index_len != e->event_index_mask + 1 ||
	    h->clients_len != e->clients_mask + 1 || h->idem_index_len != e->idem_index_mask + 1)
		return fail(err, errlen,
		            "table sizes do not match the config: event index %" PRIu32
		            " (engine %" PRIu32 "), clients %" PRIu32 " (%" PRIu32
		            "), idempotency index %" PRIu32 " (%" PRIu32 ")",
		            h->event_index_len, e->event_index_mask + 1, h->clients_len,
		            e->clients_mask + 1, h->idem_index_len, e->idem_index_mask + 1);
	e->now_ms = h->seq_ts_ms;
	memcpy(e->seats, buf + off[SEC_SEATS], off[SEC_SEATS + 1] - off[SEC_SEATS]);
	memcpy(e->rows, buf + off[SEC_ROWS], off[SEC_ROWS + 1] - off[SEC_ROWS]);
	memcpy(e->rowcats, buf + off[SEC_ROWCATS], off[SEC_ROWCATS + 1] - off[SEC_ROWCATS]);
	memcpy(e->events, buf + off[SEC_EVENTS], off[SEC_EVENTS + 1] - off[SEC_EVENTS]);
	memcpy(e->event_index, buf + off[SEC_EVENT_INDEX],
	       off[SEC_EVENT_INDEX + 1] - off[SEC_EVENT_INDEX]);
	memcpy(e->claims, buf + off[SEC_CLAIMS], off[SEC_CLAIMS + 1] - off[SEC_CLAIMS]);
	memcpy(e->heap, buf + off[SEC_HEAP], off[SEC_HEAP + 1] - off[SEC_HEAP]);
	e->seats_used = h->seats_used;
	e->rows_used = h->rows_used;
	e->rowcats_used = h->rowcats_used;
	e->event_count = h->event_count;
	e->claims_fresh = h->claims_fresh;
	e->heap_len = h->heap_len;
	e->recycle_head = h->recycle_head;
	e->recycle_tail = h->recycle_tail;
	load_ring(e->recycle, sizeof(uint32_t), eng_recycle_cap(&e->cfg), h->recycle_head,
	          h->recycle_tail, buf + off[SEC_RECYCLE]);
	e->idem_head = h->idem_head;
	e->idem_tail = h->idem_tail;
	load_ring(e->idem, sizeof(idem_entry), e->cfg.idem_capacity, h->idem_head, h->idem_tail,
	          buf + off[SEC_IDEM]);
	e->holds_live = h->holds_live;
	e->bookings_live = h->bookings_live;
	e->expired_total = h->expired_total;

	const uint8_t *p = buf + off[SEC_CLIENTS];
	for (uint32_t j = 0, prev = 0; j < h->clients_used; j++, p += CLIENT_REC_BYTES) {
		uint32_t i = get32(p);
		if (i >= h->clients_len || (j > 0 && i <= prev))
			return fail(err, errlen,
			            "client record %" PRIu32 ": slot %" PRIu32
			            " out of order or range",
			            j, i);
		memcpy(&e->clients[i], p + 4, sizeof(client_slot));
		if (e->clients[i].client == 0)
			return fail(err, errlen,
			            "client record %" PRIu32 ": slot %" PRIu32 " written but empty",
			            j, i);
		prev = i;
	}
	p = buf + off[SEC_IDEM_INDEX];
	for (uint32_t j = 0, prev = 0; j < h->idem_buckets_used; j++, p += BUCKET_REC_BYTES) {
		uint32_t i = get32(p);
		if (i >= h->idem_index_len || (j > 0 && i <= prev))
			return fail(err, errlen,
			            "bucket record %" PRIu32 ": bucket %" PRIu32
			            " out of order or range",
			            j, i);
		memcpy(&e->idem_index[i], p + 4, sizeof(idem_bucket));
		if (bucket_empty(&e->idem_index[i]))
			return fail(err, errlen,
			            "bucket record %" PRIu32 ": bucket %" PRIu32
			            " written but empty",
			            j, i);
		prev = i;
	}
	return 0;
}

int snapshot_load(const uint8_t *buf, size_t len, engine **out, snapshot_info *info, char *err,
                  size_t errlen)
{
	assert(out);
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!buf)
		len = 0;
	if (len < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES)
		return fail(err, errlen, "truncated: %zu bytes, a snapshot has at least %u", len,
		            SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES);
	snap_header h;
	int rc = header_decode(buf, len, &h, err, errlen);
	if (rc < 0)
		return rc;
	rc = header_counts_check(&h, err, errlen);
	if (rc < 0)
		return rc;
	uint64_t off[SEC_COUNT + 1];
	uint64_t want = snap_sections(&h, off);
	if (want != h.file_bytes)
		return fail(err, errlen,
		            "header counts give %" PRIu64 " bytes but the header says %" PRIu64,
		            want, h.file_bytes);
	if (len != h.file_bytes)
		return fail(err, errlen, "%s: %zu bytes, the header says %" PRIu64,
		            len < h.file_bytes ? "truncated" : "trailing bytes", len, h.file_bytes);
	uint64_t stored = get64(buf + len - SNAP_TRAILER_BYTES);
	uint64_t computed = XXH3_64bits(buf, len - SNAP_TRAILER_BYTES);
	if (stored != computed)
		return fail(err, errlen,
		            "checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64 ")",
		            stored, computed);

	engine *e = NULL;
	rc = engine_new(&h.cfg, &e);
	if (rc == -ENOMEM) {
		if (err && errlen)
			snprintf(err, errlen,
			         "out of memory for an engine of %" PRIu32 " seats, %" PRIu32
			         " claims",
			         h.cfg.seats_max, h.cfg.claims_max);
		return rc;
	}
	if (rc < 0)
		return fail(err, errlen, "engine_new refused the config (%d)", rc);
	rc = load_tables(e, &h, buf, off, err, errlen);
	if (rc == 0) {
		char why[SNAPSHOT_ERR_LEN];
		rc = engine_check(e, why, sizeof(why));
		if (rc < 0 && err && errlen)
			snprintf(err, errlen, "broken invariant: %s", why);
	}
	if (rc < 0) {
		engine_free(e);
		return rc;
	}
	if (info) {
		memset(info, 0, sizeof(*info));
		info->shard = h.shard;
		info->seq = h.seq;
		info->seq_ts_ms = h.seq_ts_ms;
		info->config = h.cfg;
		info->bytes = h.file_bytes;
	}
	*out = e;
	return 0;
}

/* ---- Files --------------------------------------------------------------- */

int snapshot_peek(const char *path, snapshot_info *info, char *err, size_t errlen)
{
	assert(path && info);
	if (err && errlen)
		err[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	uint8_t b[SNAP_HEADER_BYTES];
	ssize_t n;
	do
		n = pread(fd, b, sizeof(b), 0);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	snap_header h;
	int rc = header_decode(b, (size_t)n, &h, err, errlen);
	if (rc < 0)
		return rc;
	memset(info, 0, sizeof(*info));
	info->shard = h.shard;
	info->seq = h.seq;
	info->seq_ts_ms = h.seq_ts_ms;
	info->config = h.cfg;
	info->bytes = h.file_bytes;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int rc = fsync(dfd) == 0 ? 0 : -errno;
	close(dfd);
	return rc;
}

int snapshot_save(const engine *e, const char *dir, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
                  char *err, size_t errlen)
{
	assert(e && dir);
	if (err && errlen)
		err[0] = '\0';
	char tmp[4096], final[4096];
	if (snprintf(final, sizeof(final), "%s/snap-%020" PRIu64 ".snap", dir, seq) >=
	            (int)sizeof(final) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", final) >= (int)sizeof(tmp)) {
		if (err && errlen)
			snprintf(err, errlen, "snapshot directory path too long: %s", dir);
		return -ENAMETOOLONG;
	}
	const char *what = "create";
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	what = "write";
	rc = snapshot_write_fd(e, shard, seq, seq_ts_ms, fd);
	if (rc == 0) {
		what = "fsync";
		if (fsync(fd) != 0)
			rc = -errno;
	}
	if (close(fd) != 0 && rc == 0) {
		what = "close";
		rc = -errno;
	}
	if (rc == 0) {
		what = "rename";
		if (rename(tmp, final) != 0)
			rc = -errno;
	}
	if (rc == 0) {
		what = "fsync the directory of";
		rc = fsync_dir(dir);
		if (rc < 0) /* the file is complete; only its name may not be durable yet */
			goto out;
		return 0;
	}
	unlink(tmp);
out:
	if (err && errlen)
		snprintf(err, errlen, "cannot %s %s: %s", what, rc == 0 ? final : tmp,
		         strerror(-rc));
	return rc;
}

/* Parses "snap-<20 digits>.snap"; anything else (".tmp" files, strangers)
 * is not a snapshot. */
static bool snap_name_seq(const char *name, uint64_t *seq)
{
	if (strncmp(name, "snap-", 5) != 0 || strlen(name) != 5 + 20 + 5 ||
	    strcmp(name + 25, ".snap") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 5; i < 25; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*seq = v;
	return true;
}

static int cmp_seq_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Maps and loads one file; the name's seq must be the header's. */
static int load_file(const char *path, uint64_t name_seq, engine **out, snapshot_info *info,
                     char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(why, whylen, "%s", strerror(e));
		return -EINVAL; /* unreadable: skip it like a corrupt one */
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || sb.st_size < 0) {
		int e = errno;
		close(fd);
		snprintf(why, whylen, "%s", strerror(e));
		return -EINVAL;
	}
	size_t len = (size_t)sb.st_size;
	if (len < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES) {
		close(fd);
		return fail(why, whylen, "truncated: %zu bytes", len);
	}
	/* Mapped, not read: the loader copies each section once, straight
	 * from the page cache into the engine's tables. */
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(e));
		return e == ENOMEM ? -ENOMEM : -EINVAL;
	}
	snapshot_info inf;
	int rc = snapshot_load(map, len, out, &inf, why, whylen);
	munmap(map, len);
	if (rc == 0 && inf.seq != name_seq) {
		engine_free(*out);
		*out = NULL;
		return fail(why, whylen, "header says seq %" PRIu64, inf.seq);
	}
	if (rc == 0 && info)
		*info = inf;
	return rc;
}

int snapshot_load_latest(const char *dir, engine **out, snapshot_info *info, char *err,
                         size_t errlen)
{
	assert(dir && out);
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		if (e == ENOENT)
			return 0;
		if (err && errlen)
			snprintf(err, errlen, "cannot open %s: %s", dir, strerror(e));
		return -e;
	}
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t s;
		if (!snap_name_seq(de->d_name, &s))
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint64_t *p = realloc(seqs, ncap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			seqs = p;
			cap = ncap;
		}
		seqs[n++] = s;
	}
	closedir(d);
	if (rc < 0) {
		free(seqs);
		if (err && errlen)
			snprintf(err, errlen, "out of memory listing %s", dir);
		return rc;
	}
	if (n > 0)
		qsort(seqs, n, sizeof(*seqs), cmp_seq_desc);
	size_t used = 0; /* warnings written to err */
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4200], why[SNAPSHOT_ERR_LEN];
		snprintf(path, sizeof(path), "%s/snap-%020" PRIu64 ".snap", dir, seqs[i]);
		int r = load_file(path, seqs[i], out, info, why, sizeof(why));
		if (r == 0) {
			rc = 1;
			break;
		}
		if (r == -ENOMEM) {
			if (err && errlen)
				snprintf(err, errlen, "%s: %s", path, why);
			rc = -ENOMEM;
			break;
		}
		if (err && errlen && used < errlen) {
			int w = snprintf(err + used, errlen - used,
			                 "%sskipped invalid snapshot %s: %s", used ? "; " : "",
			                 path, why);
			if (w > 0)
				used += (size_t)w < errlen - used ? (size_t)w : errlen - used - 1;
		}
	}
	free(seqs);
	return rc;
}

/* ---- engine_check -------------------------------------------------------- *
 *
 * Proves that the tables are a state the engine could have reached, in the
 * sense that matters: every index the engine will follow is in range, every
 * counter equals what it counts, every cross-reference is mutual, and no
 * assertion of engine.c can fire on any later command. Runs on hostile
 * input, so it reads an index only after checking it, and never asserts on
 * the data. O(state): one pass over each used table (the client table, the
 * bucket index and the event index are scanned whole: they are what a
 * lookup probes) plus hash probes that cost what the engine's own lookups
 * cost.
 *
 * Caches. rowcat.max_run is an upper bound of the longest free run of its
 * category in the row (best-available skips a row below it, and its
 * fallback treats 0 as "none free"): checked >= the true longest run
 * (saturated at 255) and <= the category's seats in the row. rowcat.no_clean
 * bit n-1 says "no block of n here strands nothing": a set bit is checked
 * to be true now (no clean block of n exists), a clear bit says nothing. A
 * run of L free seats holds a clean block of n whenever L - n >= 4, so only
 * a few starts per run are tried: O(seats).
 *
 * Idempotency positions are 32-bit (idem_bucket.pos): while idem_tail <=
 * 2^32 - 1 they are exact and the index is checked exactly (every live slot
 * points at a live entry with its hash, each entry has exactly one slot,
 * stale slots point before the window). Past that, a slot stale for 2^32
 * insertions looks live again; the engine tolerates such ghosts (a ghost
 * never matches a key, or matches it at the right entry), so the check
 * only requires every live entry to be found by the engine's lookup.
 */

#define CHECK(cond, ...)                                       \
	do {                                                   \
		if (!(cond))                                   \
			return fail(err, errlen, __VA_ARGS__); \
	} while (0)

static int check_scalars(const engine *e, char *err, size_t errlen)
{
	const engine_config *c = &e->cfg;
	CHECK(config_ok(c), "config outside limits.h");
	CHECK(e->now_ms >= 0 && e->now_ms <= SNAP_CLOCK_MS_MAX, "clock %" PRId64 " out of range",
	      e->now_ms);
	CHECK(e->seats_used <= c->seats_max && e->rows_used <= c->seats_max &&
	              e->rowcats_used <= c->seats_max,
	      "arena use over seats_max %" PRIu32, c->seats_max);
	CHECK(e->event_count <= c->events_max, "event_count %" PRIu32 " over events_max",
	      e->event_count);
	CHECK(e->claims_fresh <= c->claims_max, "claims_fresh %" PRIu32 " over claims_max",
	      e->claims_fresh);
	CHECK(e->heap_len <= c->claims_max, "heap_len %" PRIu32 " over claims_max", e->heap_len);
	CHECK(e->recycle_head <= e->recycle_tail &&
	              e->recycle_tail - e->recycle_head <= eng_recycle_cap(c),
	      "recycle queue [%" PRIu64 ", %" PRIu64 ") over its capacity", e->recycle_head,
	      e->recycle_tail);
	CHECK(e->idem_head <= e->idem_tail && e->idem_tail - e->idem_head <= c->idem_capacity,
	      "idempotency window [%" PRIu64 ", %" PRIu64 ") over its capacity", e->idem_head,
	      e->idem_tail);
	CHECK(e->event_index_mask + 1ull >= 2ull * c->events_max &&
	              e->clients_mask + 1ull >= 2ull * c->claims_max,
	      "hash tables smaller than twice their bound");
	return 0;
}

static int check_events(const engine *e, char *err, size_t errlen)
{
	uint64_t seat_next = 0, row_next = 0, rc_next = 0;
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		CHECK(ev->id != 0, "event %" PRIu32 " has id 0", i);
		CHECK(ev->seat_base == seat_next && ev->row_base == row_next &&
		              ev->rc_base == rc_next,
		      "event %" PRIu32 " (id %" PRIu64
		      ") does not follow the previous one in the arenas "
		      "(seat_base %" PRIu32 ", row_base %" PRIu32 ", rc_base %" PRIu32 ")",
		      i, ev->id, ev->seat_base, ev->row_base, ev->rc_base);
		CHECK(ev->seat_count <= BO_SEATS_PER_EVENT_MAX &&
		              ev->row_count <= BO_ROWS_PER_EVENT_MAX &&
		              ev->pool_count <= BO_POOLS_PER_EVENT_MAX &&
		              ev->category_count <= BO_CATEGORIES_MAX,
		      "event %" PRIu32 ": counts over limits.h", i);
		CHECK((ev->seat_count > 0) == (ev->row_count > 0) &&
		              ev->row_count <= ev->seat_count && ev->rc_count <= ev->seat_count,
		      "event %" PRIu32 ": %" PRIu32 " rows, %" PRIu32 " rowcats for %" PRIu32
		      " seats",
		      i, ev->row_count, ev->rc_count, ev->seat_count);
		CHECK(ev->seat_count > 0 || ev->pool_count > 0, "event %" PRIu32 " sells nothing",
		      i);
		CHECK(ev->seat_count == 0 || ev->category_count > 0,
		      "event %" PRIu32 ": seats without categories", i);
		for (uint32_t p = 0; p < BO_POOLS_PER_EVENT_MAX; p++) {
			if (p < ev->pool_count)
				CHECK(ev->pool_cap[p] >= 1 &&
				              ev->pool_cap[p] <= BO_POOL_CAPACITY_MAX,
				      "event %" PRIu32 " pool %" PRIu32 ": capacity %" PRIu32, i, p,
				      ev->pool_cap[p]);
			else
				CHECK(ev->pool_cap[p] == 0 && ev->pool_held[p] == 0 &&
				              ev->pool_booked[p] == 0,
				      "event %" PRIu32 ": unused pool %" PRIu32 " not zero", i, p);
		}
		seat_next += ev->seat_count;
		row_next += ev->row_count;
		rc_next += ev->rc_count;
	}
	CHECK(seat_next == e->seats_used && row_next == e->rows_used && rc_next == e->rowcats_used,
	      "events use %" PRIu64 " seats, %" PRIu64 " rows, %" PRIu64
	      " rowcats; arenas say %" PRIu32 ", %" PRIu32 ", %" PRIu32,
	      seat_next, row_next, rc_next, e->seats_used, e->rows_used, e->rowcats_used);

	/* The id index: exactly event_count entries, each event found by the
	 * engine's probe (so ids are distinct), and empty slots left so a
	 * probe for an unknown id ends. */
	uint32_t slots = e->event_index_mask + 1, used = 0;
	for (uint32_t j = 0; j < slots; j++) {
		uint32_t v = e->event_index[j];
		CHECK(v <= e->event_count,
		      "event index slot %" PRIu32 " points at event %" PRIu32 " of %" PRIu32, j, v,
		      e->event_count);
		used += v != 0;
	}
	CHECK(used == e->event_count,
	      "event index holds %" PRIu32 " entries for %" PRIu32 " events", used, e->event_count);
	for (uint32_t i = 0; i < e->event_count; i++) {
		uint64_t id = e->events[i].id;
		uint32_t j = (uint32_t)mix64(id) & e->event_index_mask, probes = 0;
		for (;; j = (j + 1) & e->event_index_mask, probes++) {
			uint32_t v = e->event_index[j];
			CHECK(v != 0 && probes < slots,
			      "event %" PRIu32 " (id %" PRIu64 ") not found by its index", i, id);
			if (e->events[v - 1].id == id)
				break;
		}
		CHECK(e->event_index[j] - 1 == i,
		      "event id %" PRIu64 " belongs to events %" PRIu32 " and %" PRIu32, id,
		      e->event_index[j] - 1, i);
	}
	return 0;
}

typedef struct claim_counts {
	uint32_t held, booked, expired;
} claim_counts;

static int check_claims(const engine *e, claim_counts *n, char *err, size_t errlen)
{
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		CHECK(c->gen != 0, "claim %" PRIu32 " has generation 0", slot);
		CHECK(c->state >= CL_HELD && c->state <= CL_CANCELLED,
		      "claim %" PRIu32 ": state %u", slot, c->state);
		CHECK(c->event < e->event_count, "claim %" PRIu32 ": event %" PRIu32 " of %" PRIu32,
		      slot, c->event, e->event_count);
		CHECK(c->is_pool <= 1 && c->in_recycle <= 1, "claim %" PRIu32 ": flags not 0/1",
		      slot);
		CHECK(c->client != 0, "claim %" PRIu32 " has client 0", slot);
		CHECK(c->payref_len <= BO_PAYREF_LEN_MAX &&
		              (c->state != CL_BOOKED || c->payref_len > 0),
		      "claim %" PRIu32 ": payref length %u", slot, c->payref_len);
		const event *ev = &e->events[c->event];
		if (c->is_pool) {
			CHECK(c->pool < ev->pool_count && c->quantity >= 1 &&
			              c->quantity <= BO_POOL_QTY_PER_HOLD_MAX && c->seat_count == 0,
			      "pool claim %" PRIu32 ": pool %u quantity %" PRIu32 " seats %u", slot,
			      c->pool, c->quantity, c->seat_count);
		} else {
			CHECK(c->seat_count >= 1 && c->seat_count <= BO_SEATS_PER_HOLD_MAX &&
			              c->quantity == 0 && c->pool == 0,
			      "seat claim %" PRIu32 ": %u seats, quantity %" PRIu32, slot,
			      c->seat_count, c->quantity);
			/* Ended claims too: a late confirm frees-checks and books them. */
			for (uint32_t i = 0; i < c->seat_count; i++) {
				CHECK(c->seats[i] < ev->seat_count,
				      "claim %" PRIu32 ": seat %" PRIu32 " of %" PRIu32, slot,
				      c->seats[i], ev->seat_count);
				for (uint32_t j = 0; j < i; j++)
					CHECK(c->seats[i] != c->seats[j],
					      "claim %" PRIu32 " lists seat %" PRIu32 " twice",
					      slot, c->seats[i]);
			}
		}
		CHECK(c->created_ms >= 0 && c->created_ms <= e->now_ms,
		      "claim %" PRIu32 ": created at %" PRId64 ", clock %" PRId64, slot,
		      c->created_ms, e->now_ms);
		CHECK(c->expires_ms >= c->created_ms + (int64_t)BO_TTL_MS_MIN &&
		              c->expires_ms <= c->created_ms + (int64_t)BO_HOLD_LIFETIME_MS_MAX,
		      "claim %" PRIu32 ": expiry %" PRId64 " outside its lifetime from %" PRId64,
		      slot, c->expires_ms, c->created_ms);
		bool live = c->state == CL_HELD || c->state == CL_BOOKED;
		CHECK(c->in_recycle == !live, "claim %" PRIu32 " (state %u) %s the recycle queue",
		      slot, c->state, c->in_recycle ? "is in" : "is not in");
		if (c->state == CL_HELD) {
			CHECK(c->expires_ms > e->now_ms,
			      "hold %" PRIu32 " expired at %" PRId64 " but is still held", slot,
			      c->expires_ms);
			CHECK(c->heap_pos < e->heap_len && e->heap[c->heap_pos] == slot,
			      "hold %" PRIu32 ": heap position %" PRIu32 " does not hold it", slot,
			      c->heap_pos);
			n->held++;
		} else {
			CHECK(c->heap_pos == SLOT_NONE,
			      "claim %" PRIu32 " (state %u) has heap position %" PRIu32, slot,
			      c->state, c->heap_pos);
		}
		n->booked += c->state == CL_BOOKED;
		n->expired += c->state == CL_EXPIRED;
		if (live && !c->is_pool) {
			uint8_t want = c->state == CL_HELD ? BO_SEAT_HELD : BO_SEAT_BOOKED;
			for (uint32_t i = 0; i < c->seat_count; i++) {
				const seat *st = &e->seats[ev->seat_base + c->seats[i]];
				CHECK(st->state == want && st->owner == slot + 1,
				      "claim %" PRIu32 ": seat %" PRIu32 " of event %" PRIu32
				      " is %u owned by %" PRIu32,
				      slot, c->seats[i], c->event, st->state, st->owner);
			}
		}
	}
	return 0;
}

static inline bool seat_is_free(const seat *base, uint32_t i)
{
	return base[i].state == BO_SEAT_FREE;
}

/* engine.h's "strands" rule for a block [s, s+n) in a row [lo, hi). */
static bool block_strands(const seat *base, uint32_t lo, uint32_t hi, uint32_t s, uint32_t n)
{
	if (s > lo && seat_is_free(base, s - 1) && !(s - 1 > lo && seat_is_free(base, s - 2)))
		return true;
	uint32_t t = s + n;
	return t < hi && seat_is_free(base, t) && !(t + 1 < hi && seat_is_free(base, t + 1));
}

/* Bit n-1 set when the run [a, b) of free seats of one category holds a
 * block of n that strands nothing. Starts >= a+2 whose block ends <= b-2
 * never strand (both neighbours on each side are free), so only runs with
 * L - n < 4 need trying, at most four starts each. */
static uint16_t run_clean_mask(const seat *base, uint32_t lo, uint32_t hi, uint32_t a, uint32_t b)
{
	uint32_t len = b - a;
	uint16_t mask = 0;
	for (uint32_t n = 1; n <= BO_SEATS_PER_HOLD_MAX && n <= len; n++) {
		bool clean = len - n >= 4;
		for (uint32_t s = a; !clean && s + n <= b; s++)
			clean = !block_strands(base, lo, hi, s, n);
		if (clean)
			mask |= (uint16_t)(1u << (n - 1));
	}
	return mask;
}

static int check_seats(const engine *e, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		const seat *base = &e->seats[ev->seat_base];
		uint32_t by_state[BO_SEAT_STATE_COUNT] = {0}, free_by_cat[BO_CATEGORIES_MAX] = {0};
		uint32_t s = 0, rc = 0;
		for (uint32_t ri = 0; ri < ev->row_count; ri++) {
			const row *rw = &e->rows[ev->row_base + ri];
			CHECK(rw->first == s && rw->rc_first == rc,
			      "event %" PRIu32 " row %" PRIu32 ": first seat %" PRIu32
			      " / rowcat %" PRIu32 ", expected %" PRIu32 " / %" PRIu32,
			      i, ri, rw->first, rw->rc_first, s, rc);
			CHECK(rw->len >= 1 && rw->len <= BO_SEATS_PER_ROW_MAX &&
			              rw->section < BO_SECTIONS_PER_EVENT_MAX &&
			              rw->rc_count >= 1 && rw->rc_count <= ev->category_count,
			      "event %" PRIu32 " row %" PRIu32
			      ": %u seats, section %u, %u categories",
			      i, ri, rw->len, rw->section, rw->rc_count);
			CHECK((uint64_t)s + rw->len <= ev->seat_count &&
			              (uint64_t)rc + rw->rc_count <= ev->rc_count,
			      "event %" PRIu32 " row %" PRIu32
			      " runs past the event's seats or rowcats",
			      i, ri);
			uint32_t lo = s, hi = s + rw->len;
			uint32_t count[BO_CATEGORIES_MAX] = {0}, longest[BO_CATEGORIES_MAX] = {0};
			uint16_t clean[BO_CATEGORIES_MAX] = {0};
			uint32_t present = 0, run_start = 0;
			bool in_run = false;
			for (uint32_t k = lo; k < hi; k++) {
				const seat *st = &base[k];
				CHECK(st->state < BO_SEAT_STATE_COUNT &&
				              st->cat < ev->category_count && st->row == ri,
				      "event %" PRIu32 " seat %" PRIu32
				      ": state %u, category %u, row %u (in row %" PRIu32 ")",
				      i, k, st->state, st->cat, st->row, ri);
				if (st->state == BO_SEAT_HELD || st->state == BO_SEAT_BOOKED) {
					CHECK(st->owner >= 1 && st->owner - 1 < e->claims_fresh,
					      "event %" PRIu32 " seat %" PRIu32 ": owner %" PRIu32
					      " past claims_fresh %" PRIu32,
					      i, k, st->owner, e->claims_fresh);
					const claim *c = &e->claims[st->owner - 1];
					uint8_t want =
					        st->state == BO_SEAT_HELD ? CL_HELD : CL_BOOKED;
					bool listed = false;
					for (uint32_t j = 0; j < c->seat_count && !c->is_pool; j++)
						listed |= c->seats[j] == k;
					CHECK(c->state == want && c->event == i && listed,
					      "event %" PRIu32 " seat %" PRIu32
					      " (%s): owner claim %" PRIu32
					      " (state %u, event %" PRIu32 ") does not hold it",
					      i, k, bo_seat_state_str(st->state), st->owner - 1,
					      c->state, c->event);
				} else {
					CHECK(st->owner == 0,
					      "event %" PRIu32 " seat %" PRIu32
					      " (%s) has owner %" PRIu32,
					      i, k, bo_seat_state_str(st->state), st->owner);
				}
				by_state[st->state]++;
				count[st->cat]++;
				present |= 1u << st->cat;
				if (st->state == BO_SEAT_FREE)
					free_by_cat[st->cat]++;
				/* Maximal runs of free seats of one category. */
				if (in_run &&
				    (st->state != BO_SEAT_FREE || st->cat != base[run_start].cat)) {
					uint8_t c = base[run_start].cat;
					if (k - run_start > longest[c])
						longest[c] = k - run_start;
					clean[c] |= run_clean_mask(base, lo, hi, run_start, k);
					in_run = false;
				}
				if (!in_run && st->state == BO_SEAT_FREE) {
					in_run = true;
					run_start = k;
				}
			}
			if (in_run) {
				uint8_t c = base[run_start].cat;
				if (hi - run_start > longest[c])
					longest[c] = hi - run_start;
				clean[c] |= run_clean_mask(base, lo, hi, run_start, hi);
			}
			uint32_t seen = 0;
			for (uint32_t j = 0; j < rw->rc_count; j++) {
				const rowcat *r = &e->rowcats[ev->rc_base + rc + j];
				CHECK(r->cat < BO_CATEGORIES_MAX && (present & (1u << r->cat)) &&
				              !(seen & (1u << r->cat)),
				      "event %" PRIu32 " row %" PRIu32 ": rowcat %" PRIu32
				      " of category %u is absent or "
				      "repeated",
				      i, ri, j, r->cat);
				seen |= 1u << r->cat;
				uint32_t lo_bound = longest[r->cat] > 255 ? 255 : longest[r->cat];
				uint32_t hi_bound = count[r->cat] > 255 ? 255 : count[r->cat];
				CHECK(r->max_run >= lo_bound && r->max_run <= hi_bound,
				      "event %" PRIu32 " row %" PRIu32
				      " category %u: max_run %u, longest free run %" PRIu32
				      ", seats %" PRIu32,
				      i, ri, r->cat, r->max_run, longest[r->cat], count[r->cat]);
				CHECK((r->no_clean & clean[r->cat]) == 0,
				      "event %" PRIu32 " row %" PRIu32
				      " category %u: no_clean %04x but clean blocks exist "
				      "for %04x",
				      i, ri, r->cat, r->no_clean, clean[r->cat]);
			}
			CHECK(seen == present,
			      "event %" PRIu32 " row %" PRIu32 ": categories %04" PRIx32
			      " present, rowcats for %04" PRIx32,
			      i, ri, present, seen);
			s = hi;
			rc += rw->rc_count;
		}
		CHECK(s == ev->seat_count && rc == ev->rc_count,
		      "event %" PRIu32 ": rows hold %" PRIu32 " seats / %" PRIu32
		      " rowcats of %" PRIu32 " / %" PRIu32,
		      i, s, rc, ev->seat_count, ev->rc_count);
		for (uint32_t k = 0; k < BO_SEAT_STATE_COUNT; k++)
			CHECK(ev->by_state[k] == by_state[k],
			      "event %" PRIu32 ": by_state[%s] = %" PRIu32 ", seats say %" PRIu32,
			      i, bo_seat_state_str((int)k), ev->by_state[k], by_state[k]);
		for (uint32_t k = 0; k < BO_CATEGORIES_MAX; k++)
			CHECK(ev->free_by_cat[k] == free_by_cat[k],
			      "event %" PRIu32 ": free_by_cat[%" PRIu32 "] = %" PRIu32
			      ", seats say %" PRIu32,
			      i, k, ev->free_by_cat[k], free_by_cat[k]);
	}
	return 0;
}

static bool heap_less(const engine *e, uint32_t a, uint32_t b)
{
	const claim *ca = &e->claims[a], *cb = &e->claims[b];
	if (ca->expires_ms != cb->expires_ms)
		return ca->expires_ms < cb->expires_ms;
	return claim_id_of(e, a) < claim_id_of(e, b);
}

static int check_heap(const engine *e, const claim_counts *n, char *err, size_t errlen)
{
	for (uint32_t p = 0; p < e->heap_len; p++) {
		uint32_t slot = e->heap[p];
		CHECK(slot < e->claims_fresh,
		      "heap[%" PRIu32 "] = claim %" PRIu32 " past claims_fresh", p, slot);
		CHECK(e->claims[slot].state == CL_HELD && e->claims[slot].heap_pos == p,
		      "heap[%" PRIu32 "] = claim %" PRIu32 " (state %u, heap position %" PRIu32 ")",
		      p, slot, e->claims[slot].state, e->claims[slot].heap_pos);
		if (p > 0)
			CHECK(!heap_less(e, slot, e->heap[(p - 1) / 2]),
			      "heap out of order: claim %" PRIu32 " at %" PRIu32
			      " expires before its parent",
			      slot, p);
	}
	CHECK(n->held == e->heap_len, "%" PRIu32 " holds but %" PRIu32 " heap entries", n->held,
	      e->heap_len);
	return 0;
}

/* The position in [head, tail) whose low 32 bits are `low`, or tail. */
static uint64_t window_pos(uint64_t head, uint64_t tail, uint32_t low)
{
	uint64_t p = head + (uint32_t)(low - (uint32_t)head);
	return p < tail ? p : tail;
}

/* Recycle queue. An entry is valid when its slot is in_recycle with the
 * entry's position as ticket; other entries are stale. A slot has at most
 * one valid entry (the newest) and one stale one before it, none while
 * held, at most the stale one while booked: so the queue never outgrows its
 * 2 x claims_max slots (claim_end asserts it) and a taken slot leaves no
 * entry behind. */
static int check_recycle(const engine *e, uint8_t *count, char *err, size_t errlen)
{
	const uint64_t cap = eng_recycle_cap(&e->cfg), head = e->recycle_head,
	               tail = e->recycle_tail;
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (!c->in_recycle)
			continue;
		uint64_t p = window_pos(head, tail, c->ticket);
		CHECK(p < tail && e->recycle[p % cap] == slot,
		      "ended claim %" PRIu32 ": no recycle entry at its ticket %" PRIu32, slot,
		      c->ticket);
	}
	for (uint64_t pos = head; pos < tail; pos++) {
		uint32_t slot = e->recycle[pos % cap];
		CHECK(slot < e->claims_fresh,
		      "recycle entry %" PRIu64 " = claim %" PRIu32 " past claims_fresh", pos, slot);
		CHECK(++count[slot] <= 2, "claim %" PRIu32 " has more than two recycle entries",
		      slot);
		const claim *c = &e->claims[slot];
		if (c->in_recycle && c->ticket != (uint32_t)pos)
			CHECK(pos < window_pos(head, tail, c->ticket),
			      "stale recycle entry %" PRIu64 " of claim %" PRIu32
			      " after its valid one",
			      pos, slot);
	}
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		uint8_t st = e->claims[slot].state;
		CHECK(!(st == CL_HELD && count[slot] > 0) && !(st == CL_BOOKED && count[slot] > 1),
		      "live claim %" PRIu32 " has %u recycle entries", slot, count[slot]);
	}
	return 0;
}

/* Client table: open addressing with linear probing and no tombstones, so
 * a key is found iff every slot from its home to it is occupied. Counts
 * must equal the holds per client (a duplicate key would keep a count no
 * hold matches). */
static int check_clients(const engine *e, uint8_t *count, char *err, size_t errlen)
{
	const uint32_t size = e->clients_mask + 1;
	uint32_t empty_at = UINT32_MAX;
	for (uint32_t i = 0; i < size; i++) {
		const client_slot *cs = &e->clients[i];
		if (cs->client == 0) {
			CHECK(cs->holds == 0,
			      "empty client slot %" PRIu32 " counts %" PRIu32 " holds", i,
			      cs->holds);
			empty_at = i;
			continue;
		}
		CHECK(cs->holds >= 1 && cs->holds <= BO_HOLDS_PER_CLIENT_MAX,
		      "client %" PRIu64 " (slot %" PRIu32 ") counts %" PRIu32 " holds", cs->client,
		      i, cs->holds);
	}
	CHECK(empty_at != UINT32_MAX, "client table full");
	/* Occupied run lengths, scanning a full lap from an empty slot. */
	uint32_t run = 0;
	for (uint32_t k = 1; k <= size; k++) {
		uint32_t i = (empty_at + k) & e->clients_mask;
		const client_slot *cs = &e->clients[i];
		if (cs->client == 0) {
			run = 0;
			continue;
		}
		run++;
		uint32_t home = (uint32_t)mix64(cs->client) & e->clients_mask;
		CHECK(((i - home) & e->clients_mask) < run,
		      "client %" PRIu64 " at slot %" PRIu32
		      " is not reachable from its home %" PRIu32,
		      cs->client, i, home);
	}
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (c->state != CL_HELD)
			continue;
		uint32_t i = (uint32_t)mix64(c->client) & e->clients_mask;
		while (e->clients[i].client != c->client && e->clients[i].client != 0)
			i = (i + 1) & e->clients_mask; /* ends: the table has an empty slot */
		CHECK(e->clients[i].client == c->client,
		      "hold %" PRIu32 ": client %" PRIu64 " not in the client table", slot,
		      c->client);
		if (count[i] < UINT8_MAX)
			count[i]++;
	}
	for (uint32_t i = 0; i < size; i++)
		CHECK(count[i] == e->clients[i].holds,
		      "client slot %" PRIu32 " (client %" PRIu64 ") counts %" PRIu32
		      " holds, claims say %u",
		      i, e->clients[i].client, e->clients[i].holds, count[i]);
	return 0;
}

static int check_pools(const engine *e, uint64_t *sum, char *err, size_t errlen)
{
	/* sum[(event * POOLS + pool) * 2 + booked] */
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (!c->is_pool || (c->state != CL_HELD && c->state != CL_BOOKED))
			continue;
		sum[((uint64_t)c->event * BO_POOLS_PER_EVENT_MAX + c->pool) * 2 +
		    (c->state == CL_BOOKED)] += c->quantity;
	}
	for (uint32_t i = 0; i < e->event_count; i++) {
		const event *ev = &e->events[i];
		for (uint32_t p = 0; p < ev->pool_count; p++) {
			const uint64_t *s = &sum[((uint64_t)i * BO_POOLS_PER_EVENT_MAX + p) * 2];
			CHECK(ev->pool_held[p] == s[0] && ev->pool_booked[p] == s[1],
			      "event %" PRIu32 " pool %" PRIu32 ": held %" PRIu32 " booked %" PRIu32
			      ", claims say %" PRIu64 " / %" PRIu64,
			      i, p, ev->pool_held[p], ev->pool_booked[p], s[0], s[1]);
			CHECK(s[0] + s[1] <= ev->pool_cap[p],
			      "event %" PRIu32 " pool %" PRIu32 " oversold: %" PRIu64
			      " of %" PRIu32,
			      i, p, s[0] + s[1], ev->pool_cap[p]);
		}
	}
	return 0;
}

/* The engine's idem_find, returning the position found (or UINT64_MAX). */
static uint64_t idem_probe(const engine *e, uint64_t client, uint64_t request)
{
	uint32_t h = idem_hash(client, request);
	for (uint32_t b = h & e->idem_index_mask, probes = 0; probes <= e->idem_index_mask;
	     b = (b + 1) & e->idem_index_mask, probes++) {
		const idem_bucket *bk = &e->idem_index[b];
		for (uint32_t i = 0; i < IDEM_SLOTS; i++) {
			if (bk->hash[i] != h || !idem_live(e, bk->pos[i]))
				continue;
			uint64_t pos = window_pos(e->idem_head, e->idem_tail, bk->pos[i] - 1);
			const idem_entry *en = &e->idem[pos & (e->cfg.idem_capacity - 1)];
			if (en->client == client && en->request == request)
				return pos;
		}
		if (!bk->spill)
			return UINT64_MAX;
	}
	return UINT64_MAX;
}

static int check_idem(const engine *e, uint8_t *refs, char *err, size_t errlen)
{
	const uint64_t head = e->idem_head, tail = e->idem_tail, mask = e->cfg.idem_capacity - 1;
	const bool exact = tail <= UINT32_MAX; /* see the comment above CHECK */
	int64_t prev_at = 0;
	for (uint64_t pos = head; pos < tail; pos++) {
		const idem_entry *en = &e->idem[pos & mask];
		CHECK(en->client != 0 && bo_op_mutates(en->op) && en->status < BO_STATUS_COUNT &&
		              en->detail < BO_D_COUNT && en->seat_count <= BO_SEATS_PER_HOLD_MAX,
		      "idempotency entry %" PRIu64 ": client %" PRIu64
		      " op %u status %u detail %u seats %u",
		      pos, en->client, en->op, en->status, en->detail, en->seat_count);
		CHECK(en->at_ms >= prev_at && en->at_ms <= e->now_ms,
		      "idempotency entry %" PRIu64 " at %" PRId64
		      ": out of time order (clock %" PRId64 ")",
		      pos, en->at_ms, e->now_ms);
		if (pos == head)
			CHECK(e->now_ms - en->at_ms <= (int64_t)BO_IDEM_WINDOW_MS,
			      "idempotency entry %" PRIu64 " at %" PRId64
			      " is older than the window",
			      pos, en->at_ms);
		prev_at = en->at_ms;
	}
	const uint32_t buckets = e->idem_index_mask + 1;
	uint64_t live_slots = 0;
	for (uint32_t b = 0; b < buckets; b++) {
		const idem_bucket *bk = &e->idem_index[b];
		CHECK(bk->spill <= 1, "bucket %" PRIu32 ": spill %" PRIu32, b, bk->spill);
		for (uint32_t i = 0; i < IDEM_SLOTS; i++) {
			uint32_t p1 = bk->pos[i];
			if (!idem_live(e, p1)) {
				CHECK(!exact || p1 == 0 || p1 - 1 < head,
				      "bucket %" PRIu32 " slot %" PRIu32 ": position %" PRIu32
				      " is past the window [%" PRIu64 ", %" PRIu64 ")",
				      b, i, p1 - 1, head, tail);
				continue;
			}
			live_slots++;
			if (!exact)
				continue;
			uint64_t pos = window_pos(head, tail, p1 - 1);
			const idem_entry *en = &e->idem[pos & mask];
			CHECK(idem_hash(en->client, en->request) == bk->hash[i],
			      "bucket %" PRIu32 " slot %" PRIu32 ": hash %08" PRIx32
			      " but entry %" PRIu64 " hashes else",
			      b, i, bk->hash[i], pos);
			CHECK(refs[pos - head]++ == 0,
			      "idempotency entry %" PRIu64 " is in the index twice", pos);
		}
	}
	/* idem_store needs a non-live slot somewhere. */
	CHECK(live_slots < (uint64_t)buckets * IDEM_SLOTS, "idempotency index full");
	for (uint64_t pos = head; pos < tail; pos++) {
		/* Past 2^32 the engine stores position 2^32-1 (mod 2^32) as 0,
		 * "never used": such an entry is unreachable by design. */
		if (!exact && (uint32_t)pos == UINT32_MAX)
			continue;
		const idem_entry *en = &e->idem[pos & mask];
		CHECK(!exact || refs[pos - head] == 1,
		      "idempotency entry %" PRIu64 " is not in the index", pos);
		CHECK(idem_probe(e, en->client, en->request) == pos,
		      "idempotency entry %" PRIu64 " (client %" PRIu64 ", request %" PRIu64
		      ") is not found by lookup",
		      pos, en->client, en->request);
	}
	return 0;
}

int engine_check(const engine *e, char *err, size_t errlen)
{
	assert(e);
	if (err && errlen)
		err[0] = '\0';
	int rc = check_scalars(e, err, errlen);
	if (rc == 0)
		rc = check_events(e, err, errlen);
	claim_counts n = {0};
	if (rc == 0)
		rc = check_claims(e, &n, err, errlen);
	if (rc == 0)
		rc = check_seats(e, err, errlen);
	if (rc == 0)
		rc = check_heap(e, &n, err, errlen);
	if (rc < 0)
		return rc;

	/* Scratch for the recounts, sized by the state (the client table is
	 * scanned anyway). */
	uint8_t *recycle_count = calloc(e->claims_fresh + 1u, 1);
	uint8_t *client_count = calloc(e->clients_mask + 1ull, 1);
	uint8_t *idem_refs = calloc(e->idem_tail - e->idem_head + 1, 1);
	uint64_t *pool_sum =
	        calloc((size_t)e->event_count * BO_POOLS_PER_EVENT_MAX * 2 + 1, sizeof(uint64_t));
	if (!recycle_count || !client_count || !idem_refs || !pool_sum) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory for the check");
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = check_recycle(e, recycle_count, err, errlen);
	if (rc == 0)
		rc = check_clients(e, client_count, err, errlen);
	if (rc == 0)
		rc = check_pools(e, pool_sum, err, errlen);
	if (rc == 0)
		rc = check_idem(e, idem_refs, err, errlen);
	free(recycle_count);
	free(client_count);
	free(idem_refs);
	free(pool_sum);
	if (rc < 0)
		return rc;
	CHECK(e->holds_live == n.held, "holds_live %" PRIu32 ", claims say %" PRIu32, e->holds_live,
	      n.held);
	CHECK(e->bookings_live == n.booked, "bookings_live %" PRIu32 ", claims say %" PRIu32,
	      e->bookings_live, n.booked);
	CHECK(e->expired_total >= n.expired,
	      "expired_total %" PRIu64 " below the %" PRIu32 " expired claims", e->expired_total,
	      n.expired);
	return 0;
}
