/*
 * snapshot.c — a shard's engine as one raw, checksummed image: its format,
 * the writer and the loader, whose last step is engine_check() (check.h).
 * Files (their names, the atomic save, the scan for the newest valid one)
 * belong to the durable shard: shard/snapfile.c.
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
#include "check.h"
#include "engine_internal.h"
#include "base/fsio.h"
#include "base/le.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#define SNAP_HEADER_BYTES SNAPSHOT_HEADER_BYTES
#define SNAP_TRAILER_BYTES 8u
_Static_assert(SNAPSHOT_MIN_BYTES == SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES, "snapshot.h");
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

/* Table sizes engine_new() can allocate: bounds header fields before the
 * engine exists, so the length arithmetic cannot overflow. */
#define SNAP_TABLE_LEN_MAX (UINT32_C(1) << 26)

#define CLIENT_REC_BYTES (4u + (uint32_t)sizeof(client_slot))
#define BUCKET_REC_BYTES (4u + (uint32_t)sizeof(idem_bucket))

#define WRITE_BUF_BYTES (32u * 1024u)

/* ---- Small helpers ------------------------------------------------------- */

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
	bo_le_store32(out + H_VERSION, h->version);
	bo_le_store32(out + H_HEADER_BYTES, h->header_bytes);
	bo_le_store64(out + H_LAYOUT, h->layout);
	bo_le_store64(out + H_FILE_BYTES, h->file_bytes);
	bo_le_store32(out + H_SHARD, h->shard);
	bo_le_store64(out + H_SEQ, h->seq);
	bo_le_store64(out + H_SEQ_TS, (uint64_t)h->seq_ts_ms);
	bo_le_store32(out + H_SEATS_MAX, h->cfg.seats_max);
	bo_le_store32(out + H_CLAIMS_MAX, h->cfg.claims_max);
	bo_le_store32(out + H_IDEM_CAP, h->cfg.idem_capacity);
	bo_le_store32(out + H_EVENTS_MAX, h->cfg.events_max);
	bo_le_store32(out + H_SEATS_USED, h->seats_used);
	bo_le_store32(out + H_ROWS_USED, h->rows_used);
	bo_le_store32(out + H_ROWCATS_USED, h->rowcats_used);
	bo_le_store32(out + H_EVENT_COUNT, h->event_count);
	bo_le_store32(out + H_EVENT_INDEX_LEN, h->event_index_len);
	bo_le_store32(out + H_CLAIMS_FRESH, h->claims_fresh);
	bo_le_store32(out + H_HEAP_LEN, h->heap_len);
	bo_le_store32(out + H_CLIENTS_LEN, h->clients_len);
	bo_le_store32(out + H_CLIENTS_USED, h->clients_used);
	bo_le_store32(out + H_IDEM_INDEX_LEN, h->idem_index_len);
	bo_le_store32(out + H_IDEM_BUCKETS_USED, h->idem_buckets_used);
	bo_le_store32(out + H_HOLDS_LIVE, h->holds_live);
	bo_le_store32(out + H_BOOKINGS_LIVE, h->bookings_live);
	bo_le_store64(out + H_RECYCLE_HEAD, h->recycle_head);
	bo_le_store64(out + H_RECYCLE_TAIL, h->recycle_tail);
	bo_le_store64(out + H_IDEM_HEAD, h->idem_head);
	bo_le_store64(out + H_IDEM_TAIL, h->idem_tail);
	bo_le_store64(out + H_EXPIRED_TOTAL, h->expired_total);
	bo_le_store64(out + H_HEADER_HASH, XXH3_64bits(out, SNAP_HASHED_HEADER_BYTES));
}

/* Decodes and checks what a header alone can prove (step 1 of the loader):
 * shared by snapshot_load and snapshot_header_decode. */
static int header_decode(const uint8_t *b, size_t len, snap_header *h, char *err, size_t errlen)
{
	if (len < SNAP_HEADER_BYTES)
		return eng_fail(err, errlen, "truncated: %zu bytes, a snapshot header has %u", len,
		                SNAP_HEADER_BYTES);
	if (memcmp(b + H_MAGIC, snap_magic, sizeof(snap_magic)) != 0)
		return eng_fail(err, errlen, "not a snapshot (bad magic)");
	uint64_t stored = bo_le_load64(b + H_HEADER_HASH),
	         computed = XXH3_64bits(b, SNAP_HASHED_HEADER_BYTES);
	if (stored != computed)
		return eng_fail(err, errlen,
		                "header checksum mismatch (stored %016" PRIx64
		                ", computed %016" PRIx64 ")",
		                stored, computed);
	memset(h, 0, sizeof(*h));
	h->version = bo_le_load32(b + H_VERSION);
	h->header_bytes = bo_le_load32(b + H_HEADER_BYTES);
	h->layout = bo_le_load64(b + H_LAYOUT);
	if (h->version != SNAP_VERSION)
		return eng_fail(err, errlen,
		                "format version %" PRIu32 ", this build reads version %u",
		                h->version, SNAP_VERSION);
	if (h->header_bytes != SNAP_HEADER_BYTES)
		return eng_fail(err, errlen, "header size %" PRIu32 ", version %u has %u",
		                h->header_bytes, SNAP_VERSION, SNAP_HEADER_BYTES);
	uint64_t layout = layout_fingerprint();
	if (h->layout != layout)
		return eng_fail(
		        err, errlen,
		        "written by a build with another table layout (fingerprint %016" PRIx64
		        ", this build %016" PRIx64 "): rebuild the state from the journal",
		        h->layout, layout);
	if (bo_le_load32(b + H_RESERVED0) || bo_le_load32(b + H_RESERVED1) ||
	    !all_zero(b + H_RESERVED2, H_HEADER_HASH - H_RESERVED2))
		return eng_fail(err, errlen, "reserved header bytes are not zero");
	h->file_bytes = bo_le_load64(b + H_FILE_BYTES);
	h->shard = bo_le_load32(b + H_SHARD);
	h->seq = bo_le_load64(b + H_SEQ);
	h->seq_ts_ms = (int64_t)bo_le_load64(b + H_SEQ_TS);
	h->cfg.seats_max = bo_le_load32(b + H_SEATS_MAX);
	h->cfg.claims_max = bo_le_load32(b + H_CLAIMS_MAX);
	h->cfg.idem_capacity = bo_le_load32(b + H_IDEM_CAP);
	h->cfg.events_max = bo_le_load32(b + H_EVENTS_MAX);
	h->seats_used = bo_le_load32(b + H_SEATS_USED);
	h->rows_used = bo_le_load32(b + H_ROWS_USED);
	h->rowcats_used = bo_le_load32(b + H_ROWCATS_USED);
	h->event_count = bo_le_load32(b + H_EVENT_COUNT);
	h->event_index_len = bo_le_load32(b + H_EVENT_INDEX_LEN);
	h->claims_fresh = bo_le_load32(b + H_CLAIMS_FRESH);
	h->heap_len = bo_le_load32(b + H_HEAP_LEN);
	h->clients_len = bo_le_load32(b + H_CLIENTS_LEN);
	h->clients_used = bo_le_load32(b + H_CLIENTS_USED);
	h->idem_index_len = bo_le_load32(b + H_IDEM_INDEX_LEN);
	h->idem_buckets_used = bo_le_load32(b + H_IDEM_BUCKETS_USED);
	h->holds_live = bo_le_load32(b + H_HOLDS_LIVE);
	h->bookings_live = bo_le_load32(b + H_BOOKINGS_LIVE);
	h->recycle_head = bo_le_load64(b + H_RECYCLE_HEAD);
	h->recycle_tail = bo_le_load64(b + H_RECYCLE_TAIL);
	h->idem_head = bo_le_load64(b + H_IDEM_HEAD);
	h->idem_tail = bo_le_load64(b + H_IDEM_TAIL);
	h->expired_total = bo_le_load64(b + H_EXPIRED_TOTAL);
	return 0;
}

static void info_from_header(const snap_header *h, snapshot_info *info)
{
	memset(info, 0, sizeof(*info));
	info->shard = h->shard;
	info->seq = h->seq;
	info->seq_ts_ms = h->seq_ts_ms;
	info->config = h->cfg;
	info->bytes = h->file_bytes;
}

/* Step 2: every count within what the config allows, so that the section
 * sizes are bounded and the copies stay inside the tables. */
static int header_counts_check(const snap_header *h, char *err, size_t errlen)
{
	const engine_config *c = &h->cfg;
	if (!eng_config_ok(c))
		return eng_fail(err, errlen,
		                "config outside limits.h: seats_max %" PRIu32 " claims_max %" PRIu32
		                " idem_capacity %" PRIu32 " events_max %" PRIu32,
		                c->seats_max, c->claims_max, c->idem_capacity, c->events_max);
	if (h->seq_ts_ms < 0 || h->seq_ts_ms > ENG_CLOCK_MS_MAX)
		return eng_fail(err, errlen, "clock seq_ts_ms %" PRId64 " out of range",
		                h->seq_ts_ms);
	if (h->seats_used > c->seats_max || h->rows_used > c->seats_max ||
	    h->rowcats_used > c->seats_max)
		return eng_fail(err, errlen,
		                "arena use over capacity: seats %" PRIu32 ", rows %" PRIu32
		                ", rowcats %" PRIu32 " for seats_max %" PRIu32,
		                h->seats_used, h->rows_used, h->rowcats_used, c->seats_max);
	if (h->event_count > c->events_max)
		return eng_fail(err, errlen, "event_count %" PRIu32 " over events_max %" PRIu32,
		                h->event_count, c->events_max);
	if (h->claims_fresh > c->claims_max || h->heap_len > c->claims_max ||
	    h->holds_live > c->claims_max || h->bookings_live > c->claims_max)
		return eng_fail(err, errlen,
		                "claim counts over claims_max %" PRIu32 ": fresh %" PRIu32
		                ", heap %" PRIu32 ", holds %" PRIu32 ", bookings %" PRIu32,
		                c->claims_max, h->claims_fresh, h->heap_len, h->holds_live,
		                h->bookings_live);
	if (h->recycle_tail < h->recycle_head ||
	    h->recycle_tail - h->recycle_head > eng_recycle_cap(c))
		return eng_fail(err, errlen,
		                "recycle queue [%" PRIu64 ", %" PRIu64
		                ") over its capacity %" PRIu64,
		                h->recycle_head, h->recycle_tail, eng_recycle_cap(c));
	if (h->idem_tail < h->idem_head || h->idem_tail - h->idem_head > c->idem_capacity)
		return eng_fail(err, errlen,
		                "idempotency window [%" PRIu64 ", %" PRIu64
		                ") over its capacity %" PRIu32,
		                h->idem_head, h->idem_tail, c->idem_capacity);
	if (h->event_index_len > SNAP_TABLE_LEN_MAX || h->clients_len > SNAP_TABLE_LEN_MAX ||
	    h->idem_index_len > SNAP_TABLE_LEN_MAX)
		return eng_fail(err, errlen,
		                "table sizes out of range: event index %" PRIu32
		                ", clients %" PRIu32 ", idempotency index %" PRIu32,
		                h->event_index_len, h->clients_len, h->idem_index_len);
	if (h->clients_used > h->clients_len || h->idem_buckets_used > h->idem_index_len)
		return eng_fail(err, errlen,
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
	const char *path;   /* file mode: NULL (write(2)) or the file's path
	                     * (bo_fs_pwrite at file_off, reported to fsio.h) */
	uint64_t file_off;  /* bytes written to the file so far */
} snap_out;

static int write_all(snap_out *o, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = o->path ? bo_fs_pwrite(o->fd, o->path, p, n, (off_t)o->file_off)
		                    : write(o->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		o->file_off += (uint64_t)w;
	}
	return 0;
}

static void out_emit(snap_out *o, const void *p, size_t n)
{
	XXH3_64bits_update(o->hash, p, n);
	if (!o->err)
		o->err = write_all(o, p, n);
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
	return snapshot_write_file(e, shard, seq, seq_ts_ms, fd, NULL);
}

int snapshot_write_file(const engine *e, uint32_t shard, uint64_t seq, int64_t seq_ts_ms, int fd,
                        const char *path)
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
	snap_out o = {.fd = fd, .buf = buf, .buf_cap = sizeof(buf), .hash = &st, .path = path};
	out_put(&o, hdr, sizeof(hdr));
	encode_body(e, &h, &o);
	out_flush(&o);
	assert(o.pos + SNAP_TRAILER_BYTES == h.file_bytes);
	uint8_t trailer[SNAP_TRAILER_BYTES];
	bo_le_store64(trailer, XXH3_64bits_digest(&st));
	if (!o.err)
		o.err = write_all(&o, trailer, sizeof(trailer));
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
	bo_le_store64(mem + o.pos, XXH3_64bits(mem, o.pos));
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
		return eng_fail(err, errlen,
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
		uint32_t i = bo_le_load32(p);
		if (i >= h->clients_len || (j > 0 && i <= prev))
			return eng_fail(err, errlen,
			                "client record %" PRIu32 ": slot %" PRIu32
			                " out of order or range",
			                j, i);
		memcpy(&e->clients[i], p + 4, sizeof(client_slot));
		if (e->clients[i].client == 0)
			return eng_fail(err, errlen,
			                "client record %" PRIu32 ": slot %" PRIu32
			                " written but empty",
			                j, i);
		prev = i;
	}
	p = buf + off[SEC_IDEM_INDEX];
	for (uint32_t j = 0, prev = 0; j < h->idem_buckets_used; j++, p += BUCKET_REC_BYTES) {
		uint32_t i = bo_le_load32(p);
		if (i >= h->idem_index_len || (j > 0 && i <= prev))
			return eng_fail(err, errlen,
			                "bucket record %" PRIu32 ": bucket %" PRIu32
			                " out of order or range",
			                j, i);
		memcpy(&e->idem_index[i], p + 4, sizeof(idem_bucket));
		if (bucket_empty(&e->idem_index[i]))
			return eng_fail(err, errlen,
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
		return eng_fail(err, errlen, "truncated: %zu bytes, a snapshot has at least %u",
		                len, SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES);
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
		return eng_fail(err, errlen,
		                "header counts give %" PRIu64 " bytes but the header says %" PRIu64,
		                want, h.file_bytes);
	if (len != h.file_bytes)
		return eng_fail(err, errlen, "%s: %zu bytes, the header says %" PRIu64,
		                len < h.file_bytes ? "truncated" : "trailing bytes", len,
		                h.file_bytes);
	uint64_t stored = bo_le_load64(buf + len - SNAP_TRAILER_BYTES);
	uint64_t computed = XXH3_64bits(buf, len - SNAP_TRAILER_BYTES);
	if (stored != computed)
		return eng_fail(err, errlen,
		                "checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64
		                ")",
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
		return eng_fail(err, errlen, "engine_new refused the config (%d)", rc);
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
	if (info)
		info_from_header(&h, info);
	*out = e;
	return 0;
}

int snapshot_header_decode(const uint8_t *buf, size_t len, snapshot_info *info, char *err,
                           size_t errlen)
{
	assert(info);
	if (err && errlen)
		err[0] = '\0';
	if (!buf)
		len = 0;
	snap_header h;
	int rc = header_decode(buf, len, &h, err, errlen);
	if (rc < 0)
		return rc;
	info_from_header(&h, info);
	return 0;
}
