/*
 * journal.c — the log: segments, record format, io_uring appender, reader,
 * recovery and pruning. Operator truncation (journal_truncate_at) is
 * maint.c's; the helpers both use are declared in journal_internal.h.
 *
 * ==== JOURNAL FILE FORMAT ====================================================
 *
 * A shard's journal is the directory <root>/shard-NNNN/ (NNNN = shard id, at
 * least 4 decimal digits). It holds segment files named by the sequence
 * number of their first record, 20 decimal digits, so names sort in log
 * order:  shard-0003/00000000000000000001.seg, .../00000000000000052117.seg
 * Other files in the directory are ignored. One of them is the journal's
 * own: "segment.spare", the next segment created and fallocated ahead of
 * time (see The spare segment below); it becomes a segment only by being
 * renamed to one, holds nothing before that, and is never read. All integers are little-endian,
 * stored and loaded byte by byte (base/le.h) whatever the host.
 * XXH3 below is XXH3_64bits() of xxhash 0.8 with the default seed and secret.
 *
 * A segment is segment_bytes long from birth: it is created with fallocate()
 * (so its size never changes and fdatasync never has to log a new size), and
 * bytes never written read as zero. It begins with a 64-byte header:
 *
 *   off size
 *     0   4  magic 0x314A4F42 ("BOJ1" as bytes)
 *     4   4  format version, 1
 *     8   4  shard id
 *    12   4  header bytes, 64
 *    16   8  first_seq: sequence number of the segment's first record (= name)
 *    24   8  chain seed: checksum of the record before first_seq, 0 for seq 1
 *    32   8  segment_bytes: the file's size (a shorter file reads as zero-padded)
 *    40  16  reserved, zero
 *    56   8  XXH3 of bytes 0..55
 *
 * Records follow from offset 64, back to back, each starting 8-byte aligned:
 *
 *   off size
 *     0   8  checksum: XXH3 of the record's bytes 8 .. size-1 (header fields,
 *            payload and padding: every byte but itself)
 *     8   8  prev: checksum of the previous record of the shard (the chain)
 *    16   8  seq: sequence number, consecutive per shard, from 1
 *    24   8  timestamp_ms (signed): the batch timestamp
 *    32   4  payload_len: bytes of payload, <= JOURNAL_PAYLOAD_BYTES_MAX
 *    36   4  shard id
 *    40   4  unit_index: records before this one in the same write unit
 *    44   4  reserved, zero
 *    48   n  payload (opaque), then zero padding to the next multiple of 8
 *   size = 48 + payload_len rounded up to 8
 *
 * A write unit is the bytes of one write buffer: the records of one or more
 * committed batches, submitted as one write followed by one fdatasync (the
 * first unit of a segment also carries the segment header, and its chain is
 * rename of the spare to the segment's name, write, fdatasync, fsync of the
 * directory). At most two units are in flight at a time (their I/Os may
 * reach the disk in any order), and two only when both write to the same
 * segment and neither opens it: a unit that opens a segment is submitted
 * only after every I/O of the units before it completed successfully, and
 * nothing is submitted beside it until all of its own have. A unit's
 * records are reported durable only once it and every unit before it have
 * completed successfully. A unit never spans segments, so neither does a
 * record. The unused end of a segment stays zero.
 *
 * A segment header is valid if and only if its magic, version, header bytes,
 * shard id and reserved bytes are as above, its checksum matches, first_seq
 * equals the file name, segment_bytes >= the file size, first_seq is one
 * more than the last record of the previous segment read and the chain seed
 * equals that record's checksum. For the first segment read (the START
 * segment, see PRUNED JOURNALS) first_seq must be 1 with seed 0, or, when
 * the reader was asked for the records after A > 0, first_seq <= A + 1 with
 * its seed taken as given.
 *
 * A record at offset o of a segment is valid if and only if
 *   (1) o is a multiple of 8, o >= 64, o + 48 <= segment size;
 *   (2) payload_len <= JOURNAL_PAYLOAD_BYTES_MAX and o + size <= segment size;
 *   (3) shard id is the segment's shard, reserved is zero, seq >= 1 and
 *       unit_index < seq;
 *   (4) checksum matches;                     -- (1)..(4): "well-formed"
 *   (5) o is 64 and seq is the segment's first_seq and prev is its chain
 *       seed and unit_index is 0; or o is the end of the previous valid
 *       record R of the segment and seq = R.seq + 1, prev = R.checksum and
 *       unit_index is 0 or R.unit_index + 1.
 * The log is the longest run of valid records from the start segment's
 * first record across the segments in name order (from seq 1 when nothing
 * was pruned and the reader wants everything).
 *
 * ==== PRUNED JOURNALS =======================================================
 *
 * Once a snapshot covers the state through seq S and every other consumer
 * (the PostgreSQL committer, a standby) has taken the records through C,
 * records <= U = min(S, C) are needed by no one, and journal_prune(U)
 * deletes the oldest segments that hold nothing else. Its rule: segment i
 * goes when segment i + 1 starts at or before U (so i's records are all
 * < U), oldest first. The segment that becomes the first thus holds a
 * record <= U: it has a durable header and first record (U <= durable seq is
 * the caller's contract), and prune checks both before deleting anything.
 * The last segment is never removed, and a crash part-way through leaves a
 * shorter prefix removed: never a gap between remaining segments.
 *
 * A reader (and journal_open) is told A = after_seq: "I hold everything
 * through A; give me (check) what follows". It picks its START segment by
 * file name: the last segment whose first_seq <= A, or, when there is none
 * and the first segment starts at exactly A + 1, that one (A = 0: the first
 * segment, which must start at seq 1). Segments before START are not read;
 * START's header chain seed is the chain value before its first record,
 * taken as given (it cannot be checked against a pruned record); from there
 * everything is validated as above, records <= A are checked but not handed
 * out. Missing segments between START and the end are corruption as ever.
 * Starting at first_seq <= A rather than <= A + 1 when both exist costs at
 * most one extra segment and checks the chain across the boundary at A.
 *
 * Refused whatever force_truncate says, because no cut can repair them and
 * a forced cut would delete good records:
 *   - MISSING HEAD: no segment starts at or before A + 1 (or there is no
 *     segment at all and A > 0): records A + 1 .. are absent, pruned beyond
 *     what the caller holds or lost. In particular a pruned journal read
 *     from seq 1 (A = 0) is refused, never "cut" to nothing. Unless the
 *     caller sets allow_pruned: then START is the first segment, whatever
 *     it starts at, and the caller checks the first seq read (recovery's
 *     first_seq) against what it holds once it knows (a shard that opens
 *     its journal before loading its snapshot).
 *   - SHORT LOG: the log (after any torn-tail or forced cut) ends before A:
 *     the caller holds state the journal no longer has.
 *   - journal_open only: the START segment's header is not valid and the
 *     log has no record before it to continue the chain from.
 *
 * journal_truncate_at(seq), the operator's repair, reads from the segment
 * holding seq - 2 or seq - 1 on: maint.c opens with how it cuts.
 *
 * ==== READER / RECOVERY ALGORITHM ==========================================
 *
 * Let L be the last valid record so far and e = L.seq + 1 (the seq expected
 * next). Walk the segments in name order; in each, check the header, then
 * read valid records from offset 64. Where the next record is not valid:
 *   - if every byte to the end of the segment is zero, the segment ended
 *     cleanly: go to the next segment (none: the log ends here, nothing cut);
 *     its header must be valid, else it is treated as the hole below at its
 *     offset 0;
 *   - otherwise there is a hole at this (segment, offset). Scan every 8-byte
 *     aligned offset from the hole to the end of the segment and all bytes
 *     of later segments for well-formed records, and look at later
 *     segments' headers. The hole is CORRUPTION if any of:
 * *       a later segment has a well-formed header (a new segment's header is
 *       written only after the units before it were durable),
 *       a well-formed record R with R.seq <= L.seq (a duplicate);
 *     and, calling R's unit first seq f = R.seq - R.unit_index, the records
 *     with f <= e (the TORN unit, holding the hole) and those with f > e
 *     (the NEXT unit, submitted while the torn one was in flight) must fit
 *     two units in flight together; it is corruption if:
 *       torn-unit records with two different f,
 *       a torn-unit record after (at a larger offset than) a next-unit one,
 *       next-unit records with two different f (a third unit: at most two
 *       are in flight),
 *       a next-unit record in a later segment than the hole's, or beside a
 *       torn unit that opens the segment (the segment starts at e or later,
 *       or a torn-unit record has f = the segment's first seq: such a unit
 *       is alone in flight),
 *       a next-unit f <= the largest seq of a torn-unit record.
 *     Otherwise the hole is a TORN TAIL: all bytes after L belong at most to
 *     the two units that were in flight at the crash (whose sectors reach
 *     the disk in any order), neither of which was reported durable (the
 *     next unit is reported only after the torn one). The log ends at L;
 *     what follows is cut (journal_open zeroes the rest of L's segment and
 *     deletes later segments) and reported (bytes, records).
 * Missing and duplicated segments after START break the header rule
 * (first_seq not e, or not the file name) and are corruption (a missing
 * head: see PRUNED JOURNALS). Corruption is refused with the
 * file, offset and expected seq, unless force_truncate is set, in which
 * case it is cut like a torn tail and reported as forced.
 *
 * What this cannot tell apart: damage confined to the final two units (say a
 * flipped bit in one of the last two batches written before a clean
 * shutdown) looks like a torn write of units in flight and is cut, with a
 * report, not refused; damage followed by two or more whole units is
 * refused. Telling
 * them apart needs a second copy of the tail's headers (TigerBeetle's
 * redundant headers); that is left open.
 *
 * Every length read from disk is checked against the bytes left in the
 * mapped file before it is used.
 */
#include "journal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/fsio.h"
#include "base/le.h"
#include "base/parse.h"
#include "journal_internal.h"

#define SEG_MAGIC 0x314A4F42u
#define SEG_VERSION 1u
#define SEG_HDR_BYTES 64u
#define REC_HDR_BYTES 48u
#define UNIT_INDEX_NONE UINT32_MAX /* before the first record of a segment */
/* The spare segment's file name in the shard directory (not a segment name). */
#define SPARE_NAME "segment.spare"

/* Field offsets of the segment header (the first table above). */
enum {
	SEG_OFF_MAGIC = 0,
	SEG_OFF_VERSION = 4,
	SEG_OFF_SHARD = 8,
	SEG_OFF_HDR_BYTES = 12,
	SEG_OFF_FIRST_SEQ = 16,
	SEG_OFF_SEED = 24,
	SEG_OFF_SEGMENT_BYTES = 32,
	SEG_OFF_RESERVED = 40, /* two 8-byte words */
	SEG_OFF_CHECKSUM = 56, /* XXH3 of every byte before it */
};

/* Field offsets of a record header (the second table above). */
enum {
	REC_OFF_CHECKSUM = 0,
	REC_OFF_PREV = 8, /* the checksum covers the record from here on */
	REC_OFF_SEQ = 16,
	REC_OFF_TIMESTAMP = 24,
	REC_OFF_PAYLOAD_LEN = 32,
	REC_OFF_SHARD = 36,
	REC_OFF_UNIT_INDEX = 40,
	REC_OFF_RESERVED = 44,
};

/* Bytes of a record with `len` bytes of payload: header, payload, padding
 * to 8 (a constant expression, for the assertions below). */
#define REC_BYTES(len) (((uint64_t)REC_HDR_BYTES + (uint64_t)(len) + 7u) & ~(uint64_t)7u)

/* io_uring entries: the units in flight need at most UNITS_MAX * OP_COUNT
 * of them (asserted below; a unit opening a segment, the only one with four,
 * is alone in flight); 8 is a power of two, which the kernel would round up
 * to anyway. */
#define RING_ENTRIES 8u

_Static_assert(SEG_OFF_CHECKSUM + 8 == SEG_HDR_BYTES, "the header checksum ends the header");
_Static_assert(SEG_OFF_RESERVED + 16 == SEG_OFF_CHECKSUM, "reserved runs up to the checksum");
_Static_assert(REC_OFF_PREV == REC_OFF_CHECKSUM + 8, "a record's checksum covers all but itself");
_Static_assert(REC_OFF_RESERVED + 4 == REC_HDR_BYTES, "the payload follows the header");
_Static_assert(SEG_HDR_BYTES % 8 == 0 && REC_HDR_BYTES % 8 == 0, "records stay 8-aligned");
_Static_assert(SEG_HDR_BYTES <= PAGE_BYTES, "a write buffer's head room is one page");
_Static_assert(REC_BYTES(JOURNAL_PAYLOAD_BYTES_MAX) <= JOURNAL_BUFFER_BYTES_DEFAULT,
               "the default buffer holds the largest record");
_Static_assert(JOURNAL_SEGMENT_BYTES_DEFAULT >= JOURNAL_BUFFER_BYTES_DEFAULT + SEG_HDR_BYTES,
               "a full buffer fits an empty segment");
_Static_assert(JOURNAL_BUFFER_BYTES_DEFAULT % PAGE_BYTES == 0 &&
                       JOURNAL_SEGMENT_BYTES_DEFAULT % PAGE_BYTES == 0,
               "the defaults pass check_options");

static uint64_t align8(uint64_t n)
{
	return (n + 7u) & ~(uint64_t)7u;
}
static uint64_t rec_bytes(uint32_t payload_len)
{
	return REC_BYTES(payload_len);
}

/* ==== Format: parse and build ============================================== */

/* A record's fields as read from disk. */
typedef struct jrec {
	uint64_t checksum;
	uint64_t prev;
	uint64_t seq;
	int64_t timestamp_ms;
	uint32_t payload_len;
	uint32_t shard_id;
	uint32_t unit_index;
	uint64_t bytes; /* header + payload + padding */
} jrec;

typedef struct jseghdr {
	uint32_t shard_id;
	uint64_t first_seq;
	uint64_t seed;
	uint64_t segment_bytes;
} jseghdr;

/* Rules (1)..(4) of the validity rule: is there a well-formed record at
 * base[off] in a file of `size` bytes? Never reads outside [0, size). */
static int rec_parse(const uint8_t *base, uint64_t size, uint64_t off, uint32_t shard_id, jrec *out)
{
	if (off % 8 != 0 || off < SEG_HDR_BYTES || off > size || size - off < REC_HDR_BYTES)
		return 0;
	const uint8_t *p = base + off;
	jrec r;
	r.payload_len = bo_le_load32(p + REC_OFF_PAYLOAD_LEN);
	if (r.payload_len > JOURNAL_PAYLOAD_BYTES_MAX)
		return 0;
	r.bytes = rec_bytes(r.payload_len);
	if (r.bytes > size - off)
		return 0;
	r.shard_id = bo_le_load32(p + REC_OFF_SHARD);
	r.seq = bo_le_load64(p + REC_OFF_SEQ);
	r.unit_index = bo_le_load32(p + REC_OFF_UNIT_INDEX);
	if (r.shard_id != shard_id || bo_le_load32(p + REC_OFF_RESERVED) != 0 || r.seq == 0 ||
	    r.unit_index >= r.seq)
		return 0;
	r.checksum = bo_le_load64(p + REC_OFF_CHECKSUM);
	if (XXH3_64bits(p + REC_OFF_PREV, (size_t)r.bytes - REC_OFF_PREV) != r.checksum)
		return 0;
	r.prev = bo_le_load64(p + REC_OFF_PREV);
	r.timestamp_ms = (int64_t)bo_le_load64(p + REC_OFF_TIMESTAMP);
	*out = r;
	return 1;
}

/* The record's CONTENT checksum (journal_record.checksum): XXH3 of its
 * bytes without the checksum, prev and unit_index fields, i.e. of its seq,
 * timestamp, payload length, shard and payload. Unlike the stored checksum
 * it does not depend on how the writer grouped records into write units
 * (unit_index) nor on the chain before it (prev), so a standby that appends
 * the same records with its own group commit has equal content checksums
 * record for record: replication compares them (issue 13). */
static uint64_t rec_content(const uint8_t *p, uint64_t bytes)
{
	uint64_t h = XXH3_64bits(p + REC_OFF_SEQ, REC_OFF_UNIT_INDEX - REC_OFF_SEQ);
	return XXH3_64bits_withSeed(p + REC_OFF_RESERVED, (size_t)bytes - REC_OFF_RESERVED, h);
}

/* Rule (5): does well-formed `r` continue the chain after (seq, checksum,
 * unit index of the previous record in this segment or UNIT_INDEX_NONE)? */
static int rec_follows(const jrec *r, uint64_t next_seq, uint64_t prev_checksum, uint32_t prev_unit)
{
	if (r->seq != next_seq || r->prev != prev_checksum)
		return 0;
	if (prev_unit == UNIT_INDEX_NONE)
		return r->unit_index == 0;
	return r->unit_index == 0 || r->unit_index == prev_unit + 1;
}

/* Writes one record at p (rec_bytes(len) bytes) and returns its checksum. */
static uint64_t rec_build(uint8_t *p, uint64_t prev, uint64_t seq, int64_t timestamp_ms,
                          uint32_t shard_id, uint32_t unit_index, const void *payload, uint32_t len)
{
	uint64_t bytes = rec_bytes(len);
	bo_le_store64(p + REC_OFF_PREV, prev);
	bo_le_store64(p + REC_OFF_SEQ, seq);
	bo_le_store64(p + REC_OFF_TIMESTAMP, (uint64_t)timestamp_ms);
	bo_le_store32(p + REC_OFF_PAYLOAD_LEN, len);
	bo_le_store32(p + REC_OFF_SHARD, shard_id);
	bo_le_store32(p + REC_OFF_UNIT_INDEX, unit_index);
	bo_le_store32(p + REC_OFF_RESERVED, 0);
	if (len > 0)
		memcpy(p + REC_HDR_BYTES, payload, len);
	memset(p + REC_HDR_BYTES + len, 0, (size_t)(bytes - REC_HDR_BYTES - len));
	uint64_t sum = XXH3_64bits(p + REC_OFF_PREV, (size_t)bytes - REC_OFF_PREV);
	bo_le_store64(p + REC_OFF_CHECKSUM, sum);
	return sum;
}

/* Is there a well-formed segment header at base? (name and chain checks are
 * the caller's, so it can say which rule broke). */
static int seghdr_parse(const uint8_t *base, uint64_t size, uint32_t shard_id, jseghdr *out)
{
	if (size < SEG_HDR_BYTES)
		return 0;
	if (bo_le_load32(base + SEG_OFF_MAGIC) != SEG_MAGIC ||
	    bo_le_load32(base + SEG_OFF_VERSION) != SEG_VERSION ||
	    bo_le_load32(base + SEG_OFF_HDR_BYTES) != SEG_HDR_BYTES)
		return 0;
	if (bo_le_load32(base + SEG_OFF_SHARD) != shard_id ||
	    bo_le_load64(base + SEG_OFF_RESERVED) != 0 ||
	    bo_le_load64(base + SEG_OFF_RESERVED + 8) != 0)
		return 0;
	if (XXH3_64bits(base, SEG_OFF_CHECKSUM) != bo_le_load64(base + SEG_OFF_CHECKSUM))
		return 0;
	out->shard_id = shard_id;
	out->first_seq = bo_le_load64(base + SEG_OFF_FIRST_SEQ);
	out->seed = bo_le_load64(base + SEG_OFF_SEED);
	out->segment_bytes = bo_le_load64(base + SEG_OFF_SEGMENT_BYTES);
	return out->first_seq >= 1;
}

static void seghdr_build(uint8_t *p, uint32_t shard_id, uint64_t first_seq, uint64_t seed,
                         uint64_t segment_bytes)
{
	memset(p, 0, SEG_HDR_BYTES);
	bo_le_store32(p + SEG_OFF_MAGIC, SEG_MAGIC);
	bo_le_store32(p + SEG_OFF_VERSION, SEG_VERSION);
	bo_le_store32(p + SEG_OFF_SHARD, shard_id);
	bo_le_store32(p + SEG_OFF_HDR_BYTES, SEG_HDR_BYTES);
	bo_le_store64(p + SEG_OFF_FIRST_SEQ, first_seq);
	bo_le_store64(p + SEG_OFF_SEED, seed);
	bo_le_store64(p + SEG_OFF_SEGMENT_BYTES, segment_bytes);
	bo_le_store64(p + SEG_OFF_CHECKSUM, XXH3_64bits(p, SEG_OFF_CHECKSUM));
}

int journal_segment_name_parse(const char *name, uint64_t *first_seq)
{
	if (strlen(name) != SEG_NAME_LEN || strcmp(name + SEG_NAME_DIGITS, ".seg") != 0)
		return 0;
	char digits[SEG_NAME_DIGITS + 1];
	memcpy(digits, name, SEG_NAME_DIGITS);
	digits[SEG_NAME_DIGITS] = '\0';
	/* Digits only, no overflow (20 digits can exceed 2^64 - 1). */
	return bo_parse_u64(digits, 0, UINT64_MAX, 0, first_seq) == 0;
}

/* ==== Reader ================================================================ */

enum {
	RD_RUN = 0,
	RD_END = 1,
	RD_ERROR = 2
};

struct journal_reader {
	char dir[DIR_MAX];   /* <root>/shard-NNNN */
	char path[PATH_MAX]; /* current segment file */
	uint32_t shard_id;
	int force;          /* force_truncate */
	int allow_pruned;   /* a missing head starts at the first segment instead */
	uint64_t after_seq; /* A: records <= A are validated but not handed out */
	jsegent *segs;      /* [seg_count], sorted by first_seq; owned */
	uint32_t seg_count;
	uint32_t start;     /* index of the START segment (PRUNED JOURNALS) */
	int chain_known;    /* last_checksum is known: reading began at seq 1, or
	                     * START's header (its seed) has been read */
	uint32_t cur;       /* index of the current segment */
	const uint8_t *map; /* current segment mapped read-only, or NULL */
	uint64_t map_bytes;
	uint64_t off;           /* next record offset in the current segment */
	uint64_t next_seq;      /* e: the seq expected next */
	uint64_t last_checksum; /* checksum of record next_seq - 1 (0 before seq 1) */
	uint64_t last_content;  /* rec_content of record next_seq - 1 (0: none read) */
	uint32_t last_unit;     /* unit index of the previous record in this segment */
	int state;              /* RD_RUN / RD_END / RD_ERROR */
	int rc;                 /* what next() returns once state != RD_RUN */
	/* Where appending continues: the segment and offset after the last good
	 * record (tail_seg == UINT32_MAX: no usable segment). */
	uint32_t tail_seg;
	uint64_t tail_off;
	uint64_t tail_seg_bytes;
	/* The cut at the end (state RD_END): from (cut_seg, cut_off) on, all is
	 * discarded; cut_off 0 means the whole segment goes. cut_seg ==
	 * seg_count: nothing to cut. */
	uint32_t cut_seg;
	uint64_t cut_off;
	journal_recovery rec;
	char err[JOURNAL_ERR_LEN];
	journal_error_at err_at; /* where: set with err by every path to RD_ERROR */
};

static void rd_unmap(journal_reader *r)
{
	if (r->map != NULL)
		munmap((void *)r->map, r->map_bytes);
	r->map = NULL;
	r->map_bytes = 0;
}

/* Maps the file at path read-only. Returns 0, or -errno with err set. A
 * file too small to map (0 bytes) maps as NULL with *bytes 0. */
static int map_file(const char *path, uint32_t shard_id, const uint8_t **map, uint64_t *bytes,
                    char *err, size_t err_len)
{
	*map = NULL;
	*bytes = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		msg(err, err_len, "journal shard %" PRIu32 ": open %s: %s", shard_id, path,
		    strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		msg(err, err_len, "journal shard %" PRIu32 ": stat %s: %s", shard_id, path,
		    strerror(e));
		return -e;
	}
	if (st.st_size > 0) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			close(fd);
			msg(err, err_len, "journal shard %" PRIu32 ": mmap %s: %s", shard_id, path,
			    strerror(e));
			return -e;
		}
		*map = m;
		*bytes = (uint64_t)st.st_size;
	}
	close(fd);
	return 0;
}

/* Records where the reader stopped on an error (journal_reader_error_at),
 * beside the message the caller writes into r->err. */
static void rd_error_at(journal_reader *r, const char *file, int has_offset, uint64_t offset,
                        uint64_t seq)
{
	snprintf(r->err_at.file, sizeof r->err_at.file, "%s", file);
	r->err_at.has_offset = has_offset;
	r->err_at.offset = has_offset ? offset : 0;
	r->err_at.seq = seq;
}

/* Maps segment i read-only (see map_file), its path in path. */
static int rd_map_file(journal_reader *r, uint32_t i, const uint8_t **map, uint64_t *bytes,
                       char *path, size_t path_len)
{
	char name[SEG_NAME_LEN + 1];
	seg_name(name, sizeof name, r->segs[i].first_seq);
	snprintf(path, path_len, "%s/%s", r->dir, name);
	int rc = map_file(path, r->shard_id, map, bytes, r->err, sizeof r->err);
	if (rc != 0)
		rd_error_at(r, path, 0, 0, r->next_seq);
	return rc;
}

static void rd_end(journal_reader *r, uint32_t cut_seg, uint64_t cut_off)
{
	r->state = RD_END;
	r->rc = 0;
	r->cut_seg = cut_seg;
	r->cut_off = cut_off;
	r->rec.last_seq = r->next_seq - 1;
	r->rec.records = r->rec.first_seq != 0 ? r->next_seq - r->rec.first_seq : 0;
	uint32_t kept = cut_seg < r->seg_count ? cut_seg + (cut_off > 0 ? 1u : 0u) : r->seg_count;
	r->rec.segments = kept;
	rd_unmap(r);
	if (r->rec.last_seq < r->after_seq) {
		/* SHORT LOG (PRUNED JOURNALS): no cut may leave the journal behind
		 * state the caller already holds; force_truncate does not change that. */
		r->state = RD_ERROR;
		r->rc = -EBADMSG;
		/* Where the missing records should have been: after the last good one. */
		char tail[PATH_MAX] = "";
		if (r->tail_seg < r->seg_count) {
			char name[SEG_NAME_LEN + 1];
			seg_name(name, sizeof name, r->segs[r->tail_seg].first_seq);
			snprintf(tail, sizeof tail, "%s/%s", r->dir, name);
		}
		rd_error_at(r, tail, tail[0] != '\0', r->tail_off, r->next_seq);
		msg(r->err, sizeof r->err,
		    "journal shard %" PRIu32 ": corrupt: the log ends at seq %" PRIu64
		    "%s%.600s%s, before seq %" PRIu64
		    " which the caller already holds (after_seq): records it covers are "
		    "missing; refusing",
		    r->shard_id, r->rec.last_seq, r->rec.note[0] != '\0' ? " (" : "", r->rec.note,
		    r->rec.note[0] != '\0' ? ")" : "", r->after_seq);
	}
}

/* A well-formed record x found after a hole where seq e was expected (in the
 * hole's segment or not, which starts at seg_first): NULL if it may belong
 * to one of the units in flight at a crash, else why not. Tracks those
 * units in *torn_first, *torn_last and *next_first (see rd_hole). */
static const char *hole_record_bad(const jrec *x, uint64_t e, int same_segment, uint64_t seg_first,
                                   uint64_t *torn_first, uint64_t *torn_last, uint64_t *next_first)
{
	uint64_t uf = x->seq - x->unit_index;
	if (x->seq < e)
		return "a duplicate of a record already read";
	if (uf <= e) {
		if (*torn_first != 0 && uf != *torn_first)
			return "a second unit begun before the hole";
		if (*next_first != 0)
			return "the unit at the hole continues after the next unit's records";
		*torn_first = uf;
		*torn_last = x->seq > *torn_last ? x->seq : *torn_last;
		return NULL;
	}
	if (*next_first != 0 && uf != *next_first)
		return "records of a third unit (at most two are in flight)";
	if (!same_segment)
		return "a later unit in a later segment (units in flight share one)";
	if (seg_first >= e || *torn_first == seg_first)
		return "a later unit beside the unit that opens the segment (which is alone in flight)";
	if (uf <= *torn_last)
		return "a later unit overlapping the unit at the hole";
	*next_first = uf;
	return NULL;
}

/* The hole at (segment i, offset off): decide torn tail or corruption, as
 * the READER / RECOVERY ALGORITHM says. `why` describes what is wrong at the
 * hole. */
static int rd_hole(journal_reader *r, uint32_t i, uint64_t off, const char *why)
{
	const uint64_t e = r->next_seq;
	char evidence[JOURNAL_ERR_LEN] = "";
	char hole_path[PATH_MAX];
	snprintf(hole_path, sizeof hole_path, "%s", r->path);
	if (i != r->cur || r->map == NULL) {
		char name[SEG_NAME_LEN + 1];
		seg_name(name, sizeof name, r->segs[i].first_seq);
		snprintf(hole_path, sizeof hole_path, "%s/%s", r->dir, name);
	}
	/* The units whose records may follow the hole (UNITS_MAX = 2 in flight
	 * at the crash): the torn unit, which began at or before e, and the one
	 * submitted while it was in flight, which begins after it in the same
	 * segment. Each is known by its first seq (seq - unit_index); 0: none
	 * seen yet. */
	uint64_t torn_first = 0, torn_last = 0, next_first = 0;
	const uint64_t seg_first = r->segs[i].first_seq;
	uint64_t records_cut = 0, bytes_cut = 0;
	int corrupt = 0;
	rd_unmap(r);
	for (uint32_t s = i; s < r->seg_count; s++) {
		const uint8_t *m;
		uint64_t n;
		char path[PATH_MAX];
		int rc = rd_map_file(r, s, &m, &n, path, sizeof path);
		if (rc != 0) {
			r->state = RD_ERROR;
			r->rc = rc;
			return rc;
		}
		uint64_t from = s == i ? off : 0;
		if (from < n)
			bytes_cut += last_nonzero_end(m, from, n) - from;
		jseghdr h;
		if (s > i && !corrupt && seghdr_parse(m, n, r->shard_id, &h)) {
			corrupt = 1;
			msg(evidence, sizeof evidence,
			    "a valid segment header follows in %s (first seq %" PRIu64 ")", path,
			    h.first_seq);
		}
		uint64_t o = from < SEG_HDR_BYTES ? SEG_HDR_BYTES : align8(from);
		while (o + REC_HDR_BYTES <= n) {
			jrec x;
			if (!rec_parse(m, n, o, r->shard_id, &x)) {
				o += 8;
				continue;
			}
			const char *bad = hole_record_bad(&x, e, s == i, seg_first, &torn_first,
			                                  &torn_last, &next_first);
			if (bad != NULL && !corrupt) {
				corrupt = 1;
				msg(evidence, sizeof evidence,
				    "a valid record follows at %s offset %" PRIu64 " (seq %" PRIu64
				    "): %s",
				    path, o, x.seq, bad);
			}
			records_cut++;
			o += x.bytes;
		}
		if (m != NULL)
			munmap((void *)m, n);
	}
	r->rec.bytes_cut = bytes_cut;
	r->rec.records_cut = records_cut;
	if (corrupt && !r->force) {
		r->state = RD_ERROR;
		r->rc = -EBADMSG;
		rd_error_at(r, hole_path, 1, off, e);
		msg(r->err, sizeof r->err,
		    "journal shard %" PRIu32 ": corrupt: %s at %s offset %" PRIu64
		    " (expected seq %" PRIu64
		    "), and %s; refusing (force_truncate would cut here and lose seq %" PRIu64
		    " on)",
		    r->shard_id, why, hole_path, off, e, evidence, e);
		return r->rc;
	}
	r->rec.forced = corrupt;
	msg(r->rec.note, sizeof r->rec.note,
	    "%s at %s offset %" PRIu64 " (seq %" PRIu64 "): cut %" PRIu64
	    " non-zero bytes, %" PRIu64 " whole records%s%s",
	    corrupt ? "corruption (force_truncate)" : "torn tail", hole_path, off, e, bytes_cut,
	    records_cut, corrupt ? "; " : "", corrupt ? evidence : "");
	rd_end(r, i, off);
	return 0;
}

/* A header-level break of segment i (missing, duplicated, renamed segment or
 * broken chain): corruption, or with force a cut that removes segment i on. */
static int rd_segment_corrupt(journal_reader *r, uint32_t i, const char *what)
{
	if (!r->force) {
		r->state = RD_ERROR;
		r->rc = -EBADMSG;
		rd_error_at(r, r->path, 1, 0, r->next_seq);
		msg(r->err, sizeof r->err,
		    "journal shard %" PRIu32 ": corrupt: %s at %s offset 0 (expected seq %" PRIu64
		    "); refusing (force_truncate would cut here)",
		    r->shard_id, what, r->path, r->next_seq);
		return r->rc;
	}
	r->rec.forced = 1;
	msg(r->rec.note, sizeof r->rec.note,
	    "corruption (force_truncate): %s at %s (expected seq %" PRIu64
	    "): segments from here removed",
	    what, r->path, r->next_seq);
	rd_end(r, i, 0);
	return 0;
}

/* Maps segment r->cur and checks its header. Returns 0 to go on reading,
 * or the final rc (state set). */
static int rd_open_segment(journal_reader *r)
{
	int rc = rd_map_file(r, r->cur, &r->map, &r->map_bytes, r->path, sizeof r->path);
	if (rc != 0) {
		r->state = RD_ERROR;
		r->rc = rc;
		return rc;
	}
	jseghdr h;
	if (!seghdr_parse(r->map, r->map_bytes, r->shard_id, &h))
		return rd_hole(r, r->cur, 0, "invalid segment header");
	char what[JOURNAL_ERR_LEN];
	if (h.first_seq != r->segs[r->cur].first_seq) {
		msg(what, sizeof what,
		    "segment header names first seq %" PRIu64 ", not its file name "
		    "(duplicated or renamed segment)",
		    h.first_seq);
		return rd_segment_corrupt(r, r->cur, what);
	}
	if (h.first_seq > r->next_seq) {
		msg(what, sizeof what, "missing segment: seqs %" PRIu64 "..%" PRIu64 " absent",
		    r->next_seq, h.first_seq - 1);
		return rd_segment_corrupt(r, r->cur, what);
	}
	if (h.first_seq < r->next_seq) {
		msg(what, sizeof what, "duplicated segment: first seq %" PRIu64 " already read",
		    h.first_seq);
		return rd_segment_corrupt(r, r->cur, what);
	}
	if (!r->chain_known) {
		/* The START segment of a reader that begins after seq 1: its seed
		 * is the chain value before its first record, taken as given
		 * (PRUNED JOURNALS). */
		assert(r->cur == r->start && h.first_seq > 1);
		r->last_checksum = h.seed;
		r->chain_known = 1;
	}
	if (h.seed != r->last_checksum) {
		msg(what, sizeof what, "segment chain seed does not match the previous record");
		return rd_segment_corrupt(r, r->cur, what);
	}
	if (h.segment_bytes < r->map_bytes) {
		msg(what, sizeof what, "segment header says %" PRIu64 " bytes, file has %" PRIu64,
		    h.segment_bytes, r->map_bytes);
		return rd_segment_corrupt(r, r->cur, what);
	}
	/* A file shorter than its header says (truncated from outside) reads as
	 * if the missing end were zero: what is missing was never durable, or
	 * the records after it show the damage. */
	r->off = SEG_HDR_BYTES;
	r->last_unit = UNIT_INDEX_NONE;
	r->tail_seg = r->cur;
	r->tail_off = SEG_HDR_BYTES;
	r->tail_seg_bytes = h.segment_bytes;
	r->rec.segments = r->cur + 1;
	return 0;
}

static int cmp_seg(const void *a, const void *b)
{
	uint64_t x = ((const jsegent *)a)->first_seq, y = ((const jsegent *)b)->first_seq;
	return x < y ? -1 : x > y;
}

/* Lists the segment files of dir, sorted by first seq. Returns 0 with *out
 * (caller frees; NULL when *count is 0), or -errno with a message. */
static int seg_list(const char *dir, uint32_t shard_id, jsegent **out, uint32_t *count, char *err,
                    size_t err_len)
{
	*out = NULL;
	*count = 0;
	DIR *d = opendir(dir);
	if (d == NULL) {
		int e = errno;
		msg(err, err_len, "journal shard %" PRIu32 ": opendir %s: %s", shard_id, dir,
		    strerror(e));
		return -e;
	}
	jsegent *segs = NULL;
	uint32_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t first;
		if (!journal_segment_name_parse(de->d_name, &first))
			continue;
		if (n == cap) {
			uint32_t ncap = cap ? cap * 2 : 16;
			jsegent *g = cap < UINT32_MAX / 2 ? realloc(segs, ncap * sizeof *g) : NULL;
			if (g == NULL) {
				closedir(d);
				free(segs);
				msg(err, err_len, "journal shard %" PRIu32 ": out of memory",
				    shard_id);
				return -ENOMEM;
			}
			segs = g;
			cap = ncap;
		}
		segs[n++].first_seq = first;
	}
	closedir(d);
	if (n > 0)
		qsort(segs, n, sizeof *segs, cmp_seg);
	*out = segs;
	*count = n;
	return 0;
}

int jnl_shard_dir(char *out, size_t len, const char *root, uint32_t shard_id, char *err,
                  size_t err_len)
{
	if ((size_t)snprintf(out, len, "%s/shard-%04" PRIu32, root, shard_id) >= len) {
		msg(err, err_len, "journal shard %" PRIu32 ": path too long", shard_id);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Picks the START segment for after_seq (PRUNED JOURNALS), or puts the
 * reader in the error state for a MISSING HEAD. */
static void rd_pick_start(journal_reader *r)
{
	const uint64_t a = r->after_seq;
	if (r->seg_count == 0) {
		if (a == 0)
			return; /* an empty journal: next() ends at once */
		r->state = RD_ERROR;
		r->rc = -EBADMSG;
		rd_error_at(r, "", 0, 0, a + 1);
		msg(r->err, sizeof r->err,
		    "journal shard %" PRIu32 ": corrupt: missing segment: no segment in %s, "
		    "but the caller needs the records after seq %" PRIu64 " (after_seq); "
		    "refusing",
		    r->shard_id, r->dir, a);
		return;
	}
	uint32_t k = 0;
	while (k + 1 < r->seg_count && r->segs[k + 1].first_seq <= a)
		k++;
	uint64_t first = r->segs[k].first_seq;
	if (first > a + 1 && !r->allow_pruned) {
		char name[SEG_NAME_LEN + 1];
		seg_name(name, sizeof name, first);
		r->state = RD_ERROR;
		r->rc = -EBADMSG;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", r->dir, name);
		rd_error_at(r, path, 0, 0, a + 1);
		msg(r->err, sizeof r->err,
		    "journal shard %" PRIu32 ": corrupt: missing segment: seqs %" PRIu64
		    "..%" PRIu64 " absent: the first segment is %s/%s (expected seq %" PRIu64
		    "); pruned beyond what the caller holds (after_seq %" PRIu64
		    ") or lost; refusing, force_truncate or not (a cut would keep nothing)",
		    r->shard_id, a + 1, first - 1, r->dir, name, a + 1, a);
		return;
	}
	r->start = k;
	r->cur = k;
	/* A segment named 0 is never valid; it fails its header check with seq 1
	 * expected, as before pruning existed. */
	r->next_seq = first > 1 ? first : 1;
	r->chain_known = r->next_seq == 1;
	r->last_checksum = 0;
}

int journal_reader_open_from(const char *root, uint32_t shard_id, const journal_options *opt,
                             uint64_t after_seq, journal_reader **out, char *err, size_t err_len)
{
	assert(root != NULL && out != NULL);
	*out = NULL;
	journal_reader *r = calloc(1, sizeof *r);
	if (r == NULL) {
		msg(err, err_len, "journal shard %" PRIu32 ": out of memory", shard_id);
		return -ENOMEM;
	}
	int rc = jnl_shard_dir(r->dir, sizeof r->dir, root, shard_id, err, err_len);
	if (rc == 0)
		rc = seg_list(r->dir, shard_id, &r->segs, &r->seg_count, err, err_len);
	if (rc != 0) {
		free(r);
		return rc;
	}
	r->shard_id = shard_id;
	r->force = opt != NULL && opt->force_truncate;
	r->allow_pruned = opt != NULL && opt->allow_pruned;
	r->after_seq = after_seq;
	r->next_seq = 1;
	r->chain_known = 1;
	r->tail_seg = UINT32_MAX;
	r->cut_seg = UINT32_MAX;
	rd_pick_start(r);
	*out = r;
	return 0;
}

int journal_reader_open(const char *root, uint32_t shard_id, const journal_options *opt,
                        journal_reader **out, char *err, size_t err_len)
{
	return journal_reader_open_from(root, shard_id, opt, 0, out, err, err_len);
}

int journal_reader_next(journal_reader *r, journal_record *rec)
{
	assert(r != NULL && rec != NULL);
	for (;;) {
		if (r->state != RD_RUN)
			return r->rc;
		if (r->map == NULL) {
			if (r->cur >= r->seg_count) {
				rd_end(r, r->seg_count, 0);
				continue;
			}
			int rc = rd_open_segment(r);
			if (rc != 0 || r->state != RD_RUN)
				continue;
		}
		jrec x;
		if (rec_parse(r->map, r->map_bytes, r->off, r->shard_id, &x) &&
		    rec_follows(&x, r->next_seq, r->last_checksum, r->last_unit)) {
			/* Paired assertion, read side: what we hand out is what we checked. */
			assert(x.seq == r->next_seq && r->off + x.bytes <= r->map_bytes);
			assert(r->chain_known);
			uint64_t off = r->off;
			r->off += x.bytes;
			r->next_seq = x.seq + 1;
			r->last_checksum = x.checksum;
			r->last_content = rec_content(r->map + off, x.bytes);
			r->last_unit = x.unit_index;
			r->tail_off = r->off;
			if (r->rec.first_seq == 0)
				r->rec.first_seq = x.seq;
			if (x.seq <= r->after_seq)
				continue; /* checked, but the caller holds it already */
			rec->seq = x.seq;
			rec->timestamp_ms = x.timestamp_ms;
			rec->shard_id = x.shard_id;
			rec->payload_len = x.payload_len;
			rec->payload = r->map + off + REC_HDR_BYTES;
			rec->file = r->path;
			rec->offset = off;
			rec->checksum = r->last_content;
			return 1;
		}
		if (r->off >= r->map_bytes ||
		    last_nonzero_end(r->map, r->off, r->map_bytes) == r->off) {
			/* Clean end of this segment: the rest never held a record. */
			rd_unmap(r);
			r->cur++;
			continue;
		}
		rd_hole(r, r->cur, r->off, "invalid record");
	}
}

const char *journal_reader_error(const journal_reader *r)
{
	return r->err;
}

int journal_reader_error_at(const journal_reader *r, journal_error_at *out)
{
	assert(r != NULL && out != NULL);
	if (r->state != RD_ERROR) {
		memset(out, 0, sizeof *out);
		return 0;
	}
	/* Every path to RD_ERROR records its place (rd_error_at) or is an
	 * I/O error of rd_map_file, which does too. */
	*out = r->err_at;
	return 1;
}

void journal_reader_recovery(const journal_reader *r, journal_recovery *rec)
{
	assert(r != NULL && rec != NULL);
	*rec = r->rec;
}

void journal_reader_close(journal_reader *r)
{
	if (r == NULL)
		return;
	rd_unmap(r);
	free(r->segs);
	free(r);
}

const jsegent *jnl_reader_segments(const journal_reader *r, uint32_t *count)
{
	assert(r != NULL && count != NULL);
	*count = r->seg_count;
	return r->segs;
}

void jnl_reader_position(const journal_reader *r, uint32_t *seg, uint64_t *off)
{
	/* A record was just handed out: its segment is still mapped. */
	assert(r != NULL && r->state == RD_RUN && r->map != NULL && r->cur < r->seg_count);
	*seg = r->cur;
	*off = r->off;
}

/* ==== Appender ================================================================
 *
 * Three write buffers: one is filled by journal_append(), up to two are in
 * flight as the units the kernel is writing (UNITS_MAX). With one unit in
 * flight, a batch committed while it syncs waits for the rest of that sync
 * and then for its own: two round trips. With two, it goes at once as its
 * own write + fdatasync chain and is acknowledged when both are done: about
 * one round trip (throwaway /tmp/hj/exp/ov.c, 152-byte records at 100k/s,
 * group commit, busy shared disk: p50 5.2-6.5 ms with one in flight, 1.0-1.7
 * ms with two). Why two and not four: a later unit can reach the disk before
 * an earlier one, and the recovery rule above must tell the holes a crash
 * leaves from corruption; it accepts the records of exactly the two units
 * that can be in flight together (same segment, neither opening it), and
 * each more unit allowed would let more damage pass as a torn tail. Group
 * commit does not suffer: whatever is committed while two units are in
 * flight waits in the fill buffer and goes as the next unit, so units grow
 * with the load (measured below).
 *
 * Write + fdatasync as two linked SQEs (IOSQE_IO_LINK) or one O_DSYNC write?
 * Measured on this machine (ext4 on virtio, 2 cores; throwaway program
 * /tmp/jbench/bench.c, 152-byte records = 100 B payload + header, one unit at
 * a time, 2 s per point; run-to-run noise is +-30 %):
 *   batch   fallocated file               zero-filled file
 *           write+fdatasync  O_DSYNC      write+fdatasync  O_DSYNC   (records/s)
 *       1        6.9k          8.7k            5.8k          5.6k
 *      64        257k          244k            320k          302k
 *     256        927k          650k            1.10M         1.20M
 *    1024        2.53M         563k            3.96M         2.06M
 *    4096        4.02M         1.68M           8.18M         1.30M
 * Linked write + fdatasync is never clearly worse and is much better for big
 * units, and the same chain carries the directory fsync of a new segment;
 * the UNSAFE mode is then just "no fdatasync SQE". So: linked SQEs.
 * >= 1M records/s per shard needs units of >= ~300-500 records, which group
 * commit reaches by itself under that load: through this API (jperf.c, 100 B
 * payloads, commit + poll after every batch) 1.5M records/s with batches of
 * 1 and 4.6-5.3M with batches of 256-1024; commit + wait after every batch
 * (no group commit) gives 1.3M at 1024. Zero-filled segments sync faster
 * than fallocated ones (no unwritten-extent conversion in fdatasync), at
 * the price of writing each segment twice; see the report, left open.
 */

typedef struct jbuf {
	uint8_t *mem;       /* SEG_HDR_BYTES of head room + buffer_bytes; page aligned; owned */
	uint32_t used;      /* record bytes after the head room */
	uint32_t records;   /* records in the unit */
	uint64_t seq_first; /* first record's seq (valid when records > 0) */
	uint64_t prev;      /* chain value before the unit's first record */
	int header;         /* 1: the unit opens a segment; mem[0..64) holds its header
	                     * and its chain begins by renaming the spare into place */
} jbuf;

/* The I/Os of one unit, in chain order (a unit uses a subset). */
enum {
	OP_RENAME = 0, /* the spare becomes the new segment (its first unit only) */
	OP_WRITE = 1,
	OP_SYNC = 2,
	OP_DIRSYNC = 3, /* the new name made durable (its first unit only) */
	OP_COUNT = 4
};

/* The spare segment: the next segment, created and fallocated ahead of time
 * by a thread of the journal's own so that roll-over on the writer is only
 * a RENAMEAT linked before the new segment's first write. */
typedef struct jspare {
	pthread_t thread;
	int thread_live;    /* started: journal_free stops and joins it */
	pthread_mutex_t mu; /* guards the fields below */
	pthread_cond_t cv;  /* signalled on every change of them */
	int want;           /* the writer asks for a spare (the last one's rename is done) */
	int stop;           /* journal_free: exit */
	int fd;             /* -1, or a spare ready to take (owned until taken) */
	int rc;             /* 0, or the -errno that made creating one fail */
	char err[JOURNAL_ERR_LEN];
	uint64_t bytes;      /* its size: opt.segment_bytes */
	int sync;            /* fsync it and the directory once created (not UNSAFE) */
	char path[PATH_MAX]; /* <dir>/SPARE_NAME */
	char dir[DIR_MAX];
} jspare;

/* Units in flight at most (see the Appender comment and the recovery rule). */
#define UNITS_MAX 2u
#define BUFS (UNITS_MAX + 1u) /* each unit in flight holds one, one is filled */

_Static_assert(RING_ENTRIES >= UNITS_MAX * OP_COUNT, "the units' SQEs fit the ring");
_Static_assert(UNITS_MAX == 2, "reap_one holds back the reports of the second unit only");

/* A unit submitted and not yet retired (its records not yet counted durable). */
typedef struct junit {
	uint32_t buf;        /* the buffer it holds */
	uint32_t pending;    /* its completions still to come */
	int inj[OP_COUNT];   /* injected result per op (0 = none) */
	uint32_t expect_len; /* bytes its write must report */
	int fd;              /* segment fd it writes to */
	const char *path;    /* and that file's path (seg_path or old_path) */
	uint64_t off;        /* file offset of its write */
	uint64_t seq_first;  /* its records */
	uint64_t seq_last;
	int64_t start_ns; /* when it was submitted (opt.sync_hist) */
	int renames;      /* it opens a segment: renames the spare into place */
	int rc;           /* first failure among its completions */
	char err[JOURNAL_ERR_LEN];
	/* For the storage observer (base/fsio.h), filled only while one is
	 * installed: what each SQE really is, as prepared (a NOP put in place
	 * of an fdatasync must report no sync), and the bytes the write takes. */
	int observed;
	uint8_t opcode[OP_COUNT];
	int sqe_fd[OP_COUNT];
	const uint8_t *wbuf;
	uint32_t deferred; /* completions held back (reap_one), in order */
	uint8_t defer_op[OP_COUNT];
	int defer_res[OP_COUNT];
} junit;

struct journal {
	journal_options opt; /* copy of the caller's options */
	uint32_t shard_id;
	char dir[DIR_MAX]; /* <root>/shard-NNNN */
	int dir_fd;        /* for directory fsync; owned */
	struct io_uring ring;
	int ring_live;   /* ring initialised: journal_free tears it down */
	int ring_broken; /* waiting on it failed: no completion will come */
	jbuf buf[BUFS];
	uint32_t fill;      /* index of the buffer being filled */
	int commit_pending; /* records committed in the fill buffer, not submitted */

	/* Current segment (where the fill buffer goes). */
	int seg_fd; /* owned */
	char seg_path[PATH_MAX];
	uint64_t seg_bytes; /* its size */
	uint64_t seg_off;   /* file offset where the fill buffer's records go */
	/* The previous segment while units in flight still write to it. */
	int old_fd; /* -1 or owned */
	char old_path[PATH_MAX];

	jspare spare;

	/* The units in flight, oldest first: unit[(head + k) % UNITS_MAX] for
	 * k < nflight. They are retired (counted durable) in that order only. */
	junit unit[UNITS_MAX];
	uint32_t head;
	uint32_t nflight;
	/* After a failure: the bytes of the units not retired, to zero once none
	 * is in flight any more (invalidate). */
	int inval_pending;
	int inval_fd;
	const char *inval_path;
	uint64_t inval_from, inval_to;

	uint64_t next_seq;      /* seq the next append gets */
	uint64_t last_checksum; /* chain value: checksum of next_seq - 1 */
	uint64_t last_content;  /* rec_content of next_seq - 1 (journal_last) */
	uint64_t durable_seq;   /* records 1..durable_seq are durable */
	int fail_rc;            /* 0, or the -errno that failed the journal */
	char err[JOURNAL_ERR_LEN];
};

static const uint8_t zero_page[PAGE_BYTES];

void journal_options_default(journal_options *opt)
{
	assert(opt != NULL);
	memset(opt, 0, sizeof *opt);
	opt->segment_bytes = JOURNAL_SEGMENT_BYTES_DEFAULT;
	opt->buffer_bytes = JOURNAL_BUFFER_BYTES_DEFAULT;
	opt->payload_bytes_max = JOURNAL_PAYLOAD_BYTES_MAX;
	opt->sync = JOURNAL_SYNC_DATA;
}

static const char *unsafe_tag(const journal *j)
{
	return j->opt.sync == JOURNAL_SYNC_NONE_UNSAFE ? " [sync none: UNSAFE, no fdatasync]" : "";
}

/* Enters the failed state (first failure wins). */
static void fail(journal *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(journal *j, int rc, const char *fmt, ...)
{
	assert(rc < 0);
	if (j->fail_rc != 0)
		return;
	j->fail_rc = rc;
	char m[JOURNAL_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	snprintf(j->err, sizeof j->err,
	         "journal shard %" PRIu32 " failed: %.800s; durable seq stays %" PRIu64
	         ", appends refused%s",
	         j->shard_id, m, j->durable_seq, unsafe_tag(j));
}

/* After a failed unit, once no unit is in flight: best effort to zero the
 * bytes of every unit not retired (the failed one and the one in flight
 * beside it: they are contiguous in one segment) so that a restart does not
 * bring back records that were never reported durable (they may have
 * reached the page cache or the disk in part). */
static void invalidate_units(journal *j)
{
	uint64_t off = j->inval_from, end = j->inval_to;
	int ok = 1;
	j->inval_pending = 0;
	while (off < end && ok) {
		size_t n = end - off < PAGE_BYTES ? (size_t)(end - off) : PAGE_BYTES;
		ssize_t w = bo_fs_pwrite(j->inval_fd, j->inval_path, zero_page, n, (off_t)off);
		ok = w == (ssize_t)n;
		off += n;
	}
	if (ok && j->opt.sync == JOURNAL_SYNC_DATA)
		ok = bo_fs_fdatasync(j->inval_fd, j->inval_path) == 0;
	if (!ok) {
		size_t l = strlen(j->err);
		snprintf(j->err + l, sizeof j->err - l,
		         "; could not zero the failed batch (%s): "
		         "records after seq %" PRIu64 " may reappear on restart",
		         strerror(errno), j->durable_seq);
	}
}

static const char *op_name(int op)
{
	return op == OP_WRITE    ? "write of "
	       : op == OP_SYNC   ? "fdatasync of "
	       : op == OP_RENAME ? "rename of the spare segment to "
	                         : "directory fsync for the new segment ";
}

static void spare_request(journal *j);

/* Reports a successful completion to the storage observer from what the
 * SQE really was: its opcode and fd, not what the unit meant it to be. */
static void note_completion(const journal *j, const junit *u, uint64_t op, int res)
{
	bo_fs_event ev = {.path = u->sqe_fd[op] == j->dir_fd ? j->dir : u->path};
	if (u->opcode[op] == IORING_OP_WRITE && res > 0) {
		ev.op = BO_FS_WRITE;
		ev.off = u->off;
		ev.buf = u->wbuf;
		ev.len = (uint64_t)res; /* a short write reports what it wrote */
	} else if (u->opcode[op] == IORING_OP_FSYNC && res == 0) {
		ev.op = BO_FS_SYNC;
	} else if (u->opcode[op] == IORING_OP_RENAMEAT && res == 0) {
		ev.op = BO_FS_RENAME; /* the spare into place (roll_segment) */
		ev.path = j->spare.path;
		ev.path2 = u->path;
	} else {
		return; /* a NOP, or a failed or cancelled I/O: nothing changed */
	}
	bo_fs_note(&ev);
}

static junit *unit_at(journal *j, uint32_t k)
{
	assert(k < j->nflight);
	return &j->unit[(j->head + k) % UNITS_MAX];
}

/* Does any unit in flight write to fd / open a segment? */
static int units_use_fd(journal *j, int fd)
{
	for (uint32_t k = 0; k < j->nflight; k++)
		if (unit_at(j, k)->fd == fd)
			return 1;
	return 0;
}
static int units_rename(journal *j)
{
	for (uint32_t k = 0; k < j->nflight; k++)
		if (unit_at(j, k)->renames)
			return 1;
	return 0;
}

/* The unit at the head has completed: count it durable, or, if one of its
 * I/Os failed, fail the journal there. Units before a failed one were
 * retired (durable) already; the failed one and the unit in flight beside
 * it (after it) are zeroed once nothing is in flight any more. */
static void retire_head(journal *j)
{
	junit *u = unit_at(j, 0);
	if (j->fail_rc == 0 && u->rc != 0) {
		fail(j, u->rc, "%s", u->err);
		const junit *last = unit_at(j, j->nflight - 1);
		/* Units in flight together: one segment, contiguous, in order. */
		assert(last->fd == u->fd && last->off >= u->off);
		j->inval_pending = 1;
		j->inval_fd = u->fd;
		j->inval_path = u->path;
		j->inval_from = u->off;
		j->inval_to = last->off + last->expect_len;
	} else if (j->fail_rc == 0) {
		assert(u->seq_first == j->durable_seq + 1 && u->seq_last > j->durable_seq);
		j->durable_seq = u->seq_last;
		if (u->renames)
			spare_request(j); /* its name is free again */
		if (j->opt.sync_hist)
			bo_hist_observe(j->opt.sync_hist,
			                (uint64_t)(bo_clock_ns() - u->start_ns) / 1000);
	}
	j->head = (j->head + 1) % UNITS_MAX;
	j->nflight--;
}

/* Retires the completed units at the head, in log order: durable_seq only
 * ever moves over a contiguous prefix of completed units. */
static void retire(journal *j)
{
	while (j->nflight > 0 && unit_at(j, 0)->pending == 0)
		retire_head(j);
	if (j->nflight == 0 && j->inval_pending)
		invalidate_units(j);
	if (j->old_fd >= 0 && !units_use_fd(j, j->old_fd)) {
		close(j->old_fd);
		j->old_fd = -1;
	}
}

/* The first failed I/O of unit u, kept until u reaches the head (retire). */
static void unit_failed(junit *u, int op, int res)
{
	if (u->rc != 0)
		return;
	u->rc = res < 0 ? res : -EIO;
	if (res < 0)
		snprintf(u->err, sizeof u->err,
		         "%s%s offset %" PRIu64 " (%" PRIu32 " bytes, seqs %" PRIu64 "..%" PRIu64
		         "): %s",
		         op_name(op), u->path, u->off, u->expect_len, u->seq_first, u->seq_last,
		         strerror(-res));
	else
		snprintf(u->err, sizeof u->err,
		         "short write to %s offset %" PRIu64 ": %d of %" PRIu32
		         " bytes (seqs %" PRIu64 "..%" PRIu64 ")",
		         u->path, u->off, res, u->expect_len, u->seq_first, u->seq_last);
}

/* One completion of a unit in flight (user data: slot * OP_COUNT + op). */
static void reap_one(journal *j, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint64_t op = ud % OP_COUNT;
	assert(ud / OP_COUNT < UNITS_MAX);
	junit *u = &j->unit[ud / OP_COUNT];
	assert(j->nflight > 0 && u->pending > 0);
	if (u->observed) {
		/* A unit's completions are reported only once every unit before it
		 * has completed (tests/support/simfs.h): its write may have missed
		 * the earlier unit's running fdatasync, so it must not be reported
		 * before that sync, which covers everything reported before it. */
		if (u != unit_at(j, 0) && unit_at(j, 0)->pending > 0) {
			assert(u->deferred < OP_COUNT);
			u->defer_op[u->deferred] = (uint8_t)op;
			u->defer_res[u->deferred++] = cqe->res;
		} else {
			note_completion(j, u, op, cqe->res);
		}
	}
	int res = u->inj[op] != 0 ? u->inj[op] : cqe->res;
	int bad = op == OP_WRITE ? res != (int)u->expect_len : res != 0;
	if (bad)
		unit_failed(u, (int)op, res);
	u->pending--;
	if (u == unit_at(j, 0) && u->pending == 0 && j->nflight > 1) {
		junit *n = unit_at(j, 1); /* UNITS_MAX is 2: the only one deferred */
		for (uint32_t k = 0; k < n->deferred; k++)
			note_completion(j, n, n->defer_op[k], n->defer_res[k]);
		n->deferred = 0;
	}
}

/* Reaps what has completed; with `block`, waits for one completion first
 * (a unit must be in flight). Then retires what it can. */
static void reap(journal *j, int block)
{
	assert(!block || j->nflight > 0);
	while (j->nflight > 0 && !j->ring_broken) {
		struct io_uring_cqe *cqe;
		int rc = block ? io_uring_wait_cqe(&j->ring, &cqe)
		               : io_uring_peek_cqe(&j->ring, &cqe);
		if (rc == -EAGAIN && !block)
			break;
		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			/* The ring itself broke; we cannot know what reached the disk. */
			fail(j, rc, "io_uring wait: %s", strerror(-rc));
			j->ring_broken = 1;
			return;
		}
		reap_one(j, cqe);
		io_uring_cqe_seen(&j->ring, cqe);
		block = 0;
	}
	retire(j);
}

/* Waits until no unit is in flight (or the ring broke). */
static void reap_all(journal *j)
{
	while (j->nflight > 0 && !j->ring_broken)
		reap(j, 1);
}

/* Before each I/O: the fault hook may change or fail it. Returns the
 * injected -errno or 0. */
static int consult_fault(journal *j, journal_io *io)
{
	if (j->opt.fault == NULL)
		return 0;
	int rc = j->opt.fault(j->opt.fault_ctx, io);
	assert(rc <= 0);
	return rc;
}

/* Paired assertion, write side: the unit about to be written is a run of
 * valid records continuing the chain. */
static void assert_unit_valid(const journal *j, const jbuf *b)
{
	const uint8_t *base = b->mem + SEG_HDR_BYTES;
	uint64_t off = 0, seq = b->seq_first, prev = b->prev;
	for (uint32_t k = 0; k < b->records; k++) {
		/* rec_parse wants segment coordinates: records start at 64. */
		jrec x;
		int ok = rec_parse(base - SEG_HDR_BYTES, SEG_HDR_BYTES + (uint64_t)b->used,
		                   SEG_HDR_BYTES + off, j->shard_id, &x);
		assert(ok && x.seq == seq && x.prev == prev && x.unit_index == k);
		(void)ok;
		off += x.bytes;
		seq++;
		prev = x.checksum;
	}
	assert(off == b->used);
	if (b->header) {
		jseghdr h;
		assert(seghdr_parse(b->mem, SEG_HDR_BYTES, j->shard_id, &h) &&
		       h.first_seq == b->seq_first);
	}
}

/* May the fill buffer go now? It holds records, the journal has not
 * failed, fewer than UNITS_MAX units are in flight, and it joins units in
 * flight only when neither it nor they open a segment (a unit that opens a
 * segment is alone in flight: the recovery rule relies on it). */
static int can_submit(journal *j)
{
	const jbuf *b = &j->buf[j->fill];
	if (b->records == 0 || j->fail_rc != 0 || j->nflight >= UNITS_MAX)
		return 0;
	for (uint32_t k = 0; k < j->nflight; k++)
		if (unit_at(j, k)->rc != 0)
			return 0; /* the journal fails when that unit retires */
	return j->nflight == 0 || (!b->header && !units_rename(j));
}

/* Submits the fill buffer as a unit (can_submit) and switches to a free
 * buffer. */
static int submit_fill(journal *j)
{
	assert(can_submit(j));
	jbuf *b = &j->buf[j->fill];
	assert_unit_valid(j, b);
	const uint8_t *start = b->header ? b->mem : b->mem + SEG_HDR_BYTES;
	uint32_t len = b->used + (b->header ? SEG_HDR_BYTES : 0);
	uint64_t off = b->header ? 0 : j->seg_off;
	uint64_t seq_last = b->seq_first + b->records - 1;
	const uint32_t slot = (j->head + j->nflight) % UNITS_MAX;
	junit *u = &j->unit[slot];
	/* Units in flight together are contiguous in one segment. */
	assert(j->nflight == 0 || (unit_at(j, j->nflight - 1)->fd == j->seg_fd &&
	                           unit_at(j, j->nflight - 1)->seq_last + 1 == b->seq_first));

	memset(u, 0, sizeof *u);
	u->buf = j->fill;
	u->fd = j->seg_fd;
	u->path = j->seg_path;
	u->off = off;
	u->seq_first = b->seq_first;
	u->seq_last = seq_last;
	u->expect_len = len;
	u->observed = bo_fs_observed();
	u->wbuf = start;

	/* The chain, in order: rename of the spare into place (a unit opening a
	 * segment), write, fdatasync, directory fsync (opening a segment). */
	const int sync = j->opt.sync == JOURNAL_SYNC_DATA;
	int ops[OP_COUNT], nops = 0;
	if (b->header)
		ops[nops++] = OP_RENAME;
	ops[nops++] = OP_WRITE;
	if (sync)
		ops[nops++] = OP_SYNC;
	if (sync && b->header)
		ops[nops++] = OP_DIRSYNC;
	u->renames = b->header;
	static const journal_io_kind kind_of[OP_COUNT] = {
	        [OP_RENAME] = JOURNAL_IO_RENAME,
	        [OP_WRITE] = JOURNAL_IO_WRITE,
	        [OP_SYNC] = JOURNAL_IO_SYNC,
	        [OP_DIRSYNC] = JOURNAL_IO_DIRSYNC,
	};
	journal_io io = {.shard_id = j->shard_id,
	                 .offset = off,
	                 .buf = (uint8_t *)start,
	                 .len = len,
	                 .seq_first = b->seq_first,
	                 .seq_last = seq_last};
	for (int k = 0; k < nops; k++) {
		int op = ops[k];
		io.kind = kind_of[op];
		io.path = op == OP_DIRSYNC ? j->dir : j->seg_path;
		uint32_t len_before = io.len;
		u->inj[op] = consult_fault(j, &io);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&j->ring);
		assert(sqe != NULL); /* the units' SQEs fit the ring (RING_ENTRIES) */
		if (u->inj[op] != 0)
			io_uring_prep_nop(sqe);
		else if (op == OP_RENAME)
			io_uring_prep_renameat(sqe, AT_FDCWD, j->spare.path, AT_FDCWD, j->seg_path,
			                       0);
		else if (op == OP_WRITE)
			io_uring_prep_write(sqe, j->seg_fd, start,
			                    io.len <= len_before ? io.len : len_before, off);
		else if (op == OP_SYNC)
			io_uring_prep_fsync(sqe, j->seg_fd, IORING_FSYNC_DATASYNC);
		else
			io_uring_prep_fsync(sqe, j->dir_fd, 0);
		/* Link so that each I/O starts only after the one before completed:
		 * the write after the rename, the fdatasync after the write, the
		 * directory fsync last; a failure or short write cancels the rest. */
		if (k + 1 < nops)
			sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(sqe, (uint64_t)slot * OP_COUNT + (uint64_t)op);
		if (u->observed) {
			u->opcode[op] = sqe->opcode;
			u->sqe_fd[op] = sqe->fd;
		}
	}
	if (j->opt.sync_hist)
		u->start_ns = bo_clock_ns();
	int rc = io_uring_submit(&j->ring);
	if (rc != nops) {
		int e = rc < 0 ? rc : -EIO;
		fail(j, e,
		     "io_uring submit of %s offset %" PRIu64 " (seqs %" PRIu64 "..%" PRIu64 "): %s",
		     j->seg_path, off, b->seq_first, seq_last,
		     rc < 0 ? strerror(-rc) : "partial submit");
		return e;
	}
	u->pending = (uint32_t)nops;
	j->nflight++;
	j->seg_off = (b->header ? 0 : j->seg_off) + len;
	/* The next fill buffer: the one no unit in flight holds. */
	uint32_t next = 0;
	for (int held = 1; held;) {
		held = 0;
		for (uint32_t k = 0; k < j->nflight && !held; k++)
			held = unit_at(j, k)->buf == next;
		next += (uint32_t)held;
	}
	assert(next < BUFS);
	j->fill = next;
	jbuf *n = &j->buf[j->fill];
	n->used = 0;
	n->records = 0;
	n->header = 0;
	j->commit_pending = 0;
	return 0;
}

/* Waits until the fill buffer may go, then submits it. */
static int flush_fill(journal *j)
{
	while (j->fail_rc == 0 && !can_submit(j))
		reap(j, 1);
	if (j->fail_rc != 0)
		return j->fail_rc;
	return submit_fill(j);
}

/* ==== The spare segment ====================================================
 *
 * Roll-over used to create and fallocate the next segment on the writer
 * (~100 us, more on a busy disk, right inside a batch's latency). Now a
 * thread of the journal's own keeps one spare file, SPARE_NAME in the shard
 * directory, created, allocated to segment_bytes and synced with its
 * directory entry ahead of time. At roll-over the writer takes its open fd
 * and the segment's first unit renames it into place as the first link of
 * its chain: RENAMEAT -> write (header + records) -> fdatasync -> fsync of
 * the directory, so the new name is durable before any record in it is
 * reported durable, as before. The thread is asked for the next spare only
 * once that chain has completed (the name is free again), so there is never
 * more than one spare; should the writer need it before it is ready (a
 * segment filled faster than a spare is made), it waits for it.
 *
 * A spare is never written before it is renamed (the write is linked after
 * the rename), and readers, recovery, pruning and the tools only read files
 * named like segments: one left by a crash (or a failed rename) is ignored,
 * and truncated to zero by the next journal_open's spare; journal_close
 * removes an unused one.
 */

static int spare_create(jspare *sp, int *fd_out, char *err, size_t err_len)
{
	int fd = bo_fs_open(sp->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		msg(err, err_len, "create %s: %s", sp->path, strerror(e));
		return -e;
	}
	const char *what = "fallocate";
	int rc = bo_fs_fallocate(fd, sp->path, 0, 0, (off_t)sp->bytes) == 0 ? 0 : -errno;
	if (rc == -EOPNOTSUPP) {
		/* A file system without fallocate still works, with slower syncs. */
		what = "ftruncate";
		rc = bo_fs_ftruncate(fd, sp->path, (off_t)sp->bytes) == 0 ? 0 : -errno;
	}
	/* Synced here, off the writer: the first unit's fdatasync then has no
	 * allocation to commit, and its directory fsync only the rename. */
	if (rc == 0 && sp->sync) {
		what = "fsync";
		rc = bo_fs_fsync(fd, sp->path) == 0 ? 0 : -errno;
	}
	if (rc == 0 && sp->sync) {
		what = "fsync of the directory of";
		rc = bo_fs_fsync_dir(sp->dir);
	}
	if (rc != 0) {
		close(fd);
		bo_fs_unlink(sp->path);
		msg(err, err_len, "%s %s (spare segment, %" PRIu64 " bytes): %s", what, sp->path,
		    sp->bytes, strerror(-rc));
		return rc;
	}
	*fd_out = fd;
	return 0;
}

/* The spare thread: makes a spare whenever one is wanted and none is ready. */
static void *spare_main(void *arg)
{
	jspare *sp = arg;
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->stop && !(sp->want && sp->fd < 0 && sp->rc == 0))
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->stop)
			break;
		pthread_mutex_unlock(&sp->mu);
		int fd = -1;
		char err[JOURNAL_ERR_LEN];
		int rc = spare_create(sp, &fd, err, sizeof err);
		pthread_mutex_lock(&sp->mu);
		sp->want = 0;
		if (rc == 0) {
			sp->fd = fd;
		} else {
			sp->rc = rc;
			memcpy(sp->err, err, sizeof sp->err);
		}
		pthread_cond_broadcast(&sp->cv);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

/* Asks the spare thread for the next spare (writer; no file-system work). */
static void spare_request(journal *j)
{
	jspare *sp = &j->spare;
	pthread_mutex_lock(&sp->mu);
	sp->want = 1;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}

/* Starts the spare thread, which makes the first spare at once. */
static int spare_start(journal *j, char *m, size_t m_len)
{
	jspare *sp = &j->spare;
	snprintf(sp->dir, sizeof sp->dir, "%s", j->dir);
	snprintf(sp->path, sizeof sp->path, "%s/" SPARE_NAME, j->dir);
	sp->bytes = j->opt.segment_bytes;
	sp->sync = j->opt.sync == JOURNAL_SYNC_DATA;
	sp->want = 1;
	int rc = pthread_create(&sp->thread, NULL, spare_main, sp);
	if (rc != 0) {
		msg(m, m_len, "starting the spare segment thread: %s", strerror(rc));
		return -rc;
	}
	sp->thread_live = 1;
	return 0;
}

/* Stops the spare thread and removes an unused spare. */
static void spare_stop(journal *j)
{
	jspare *sp = &j->spare;
	if (sp->thread_live) {
		pthread_mutex_lock(&sp->mu);
		sp->stop = 1;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->thread, NULL);
		sp->thread_live = 0;
	}
	if (sp->fd >= 0) {
		close(sp->fd);
		sp->fd = -1;
		bo_fs_unlink(sp->path);
	}
}

/* Takes the ready spare's fd, waiting for it if need be. 0, or the journal's
 * failure (a failed unit), or the -errno of making the spare (message in m). */
static int spare_take(journal *j, int *fd, char *m, size_t m_len)
{
	jspare *sp = &j->spare;
	/* The next spare is asked for when the unit renaming the last one has
	 * completed: if it is in flight, let it finish. */
	if (units_rename(j)) {
		reap_all(j);
		if (j->fail_rc != 0)
			return j->fail_rc;
	}
	pthread_mutex_lock(&sp->mu);
	/* Asked for, and not failed: it comes. */
	assert(sp->fd >= 0 || sp->rc != 0 || sp->want);
	while (sp->fd < 0 && sp->rc == 0)
		pthread_cond_wait(&sp->cv, &sp->mu);
	int rc = sp->rc;
	*fd = sp->fd;
	sp->fd = -1;
	if (rc != 0)
		msg(m, m_len, "%s", sp->err);
	pthread_mutex_unlock(&sp->mu);
	return rc;
}

/* The fill buffer is empty and the record does not fit the segment: the
 * spare becomes the next segment (renamed by the first unit's chain). */
static int roll_segment(journal *j)
{
	assert(j->buf[j->fill].records == 0);
	int fd = -1;
	char m[JOURNAL_ERR_LEN];
	int rc = spare_take(j, &fd, m, sizeof m);
	if (rc != 0) {
		if (j->fail_rc == 0)
			fail(j, rc, "segment roll-over at seq %" PRIu64 ": %s", j->next_seq, m);
		return j->fail_rc;
	}
	if (j->nflight > 0) {
		/* They all write to this segment: the unit that opened it was
		 * alone in flight and retired (spare_take), which closed old_fd. */
		assert(j->old_fd < 0);
		j->old_fd = j->seg_fd;
		memcpy(j->old_path, j->seg_path, sizeof j->old_path);
		for (uint32_t k = 0; k < j->nflight; k++) {
			assert(unit_at(j, k)->fd == j->old_fd);
			unit_at(j, k)->path = j->old_path;
		}
	} else if (j->seg_fd >= 0) {
		close(j->seg_fd);
	}
	char name[SEG_NAME_LEN + 1];
	seg_name(name, sizeof name, j->next_seq);
	snprintf(j->seg_path, sizeof j->seg_path, "%s/%s", j->dir, name);
	j->seg_fd = fd;
	j->seg_bytes = j->spare.bytes;
	j->seg_off = SEG_HDR_BYTES;
	/* The header goes out with the segment's first unit, whose chain renames
	 * the spare first and fsyncs the directory last: so the new name is
	 * durable before any record in it is reported durable. A crash before
	 * leaves a zero header or the spare's name, both a torn tail. */
	jbuf *b = &j->buf[j->fill];
	seghdr_build(b->mem, j->shard_id, j->next_seq, j->last_checksum, j->seg_bytes);
	b->header = 1;
	return 0;
}

int journal_append(journal *j, int64_t timestamp_ms, const void *payload, uint32_t payload_len,
                   uint64_t *seq_out)
{
	assert(j != NULL && (payload != NULL || payload_len == 0));
	if (j->fail_rc != 0)
		return j->fail_rc;
	if (payload_len > j->opt.payload_bytes_max)
		return -EMSGSIZE;
	uint64_t bytes = rec_bytes(payload_len);
	int rc;
	if (j->buf[j->fill].used + bytes > j->opt.buffer_bytes && (rc = flush_fill(j)) != 0)
		return rc;
	if (j->seg_fd < 0 || j->seg_off + j->buf[j->fill].used + bytes > j->seg_bytes) {
		if (j->buf[j->fill].records > 0 && (rc = flush_fill(j)) != 0)
			return rc;
		if ((rc = roll_segment(j)) != 0)
			return rc;
	}
	jbuf *b = &j->buf[j->fill];
	assert(b->used + bytes <= j->opt.buffer_bytes &&
	       j->seg_off + b->used + bytes <= j->seg_bytes);
	if (b->records == 0) {
		b->seq_first = j->next_seq;
		b->prev = j->last_checksum;
	}
	uint8_t *at = b->mem + SEG_HDR_BYTES + b->used;
	j->last_checksum = rec_build(at, j->last_checksum, j->next_seq, timestamp_ms, j->shard_id,
	                             b->records, payload, payload_len);
	j->last_content = rec_content(at, bytes);
	b->used += (uint32_t)bytes;
	b->records++;
	if (seq_out != NULL)
		*seq_out = j->next_seq;
	j->next_seq++;
	return 0;
}

int journal_commit(journal *j)
{
	assert(j != NULL);
	if (j->fail_rc != 0)
		return j->fail_rc;
	if (j->buf[j->fill].records == 0)
		return 0;
	j->commit_pending = 1;
	reap(j, 0);
	if (can_submit(j))
		return submit_fill(j);
	return j->fail_rc;
}

int journal_poll(journal *j, uint64_t *durable_seq)
{
	assert(j != NULL);
	reap(j, 0);
	if (j->commit_pending && can_submit(j))
		submit_fill(j);
	if (durable_seq != NULL)
		*durable_seq = j->durable_seq;
	return j->fail_rc;
}

int journal_wait(journal *j, uint64_t seq, uint64_t *durable_seq)
{
	assert(j != NULL && seq < j->next_seq); /* waiting for a record never appended */
	while (j->durable_seq < seq && j->fail_rc == 0) {
		/* seq is > durable: in a unit in flight, or in the fill buffer. */
		if (seq >= j->buf[j->fill].seq_first && can_submit(j))
			submit_fill(j);
		else
			reap(j, 1);
	}
	if (durable_seq != NULL)
		*durable_seq = j->durable_seq;
	return j->fail_rc;
}

void journal_last(const journal *j, uint64_t *seq, uint64_t *checksum)
{
	assert(j != NULL && seq != NULL && checksum != NULL);
	*seq = j->next_seq - 1;
	*checksum = j->last_content;
}

const char *journal_error(const journal *j)
{
	return j->err;
}

void journal_set_fault(journal *j, journal_fault_fn fn, void *ctx)
{
	assert(j != NULL);
	j->opt.fault = fn;
	j->opt.fault_ctx = ctx;
}

static void journal_free(journal *j)
{
	if (j->ring_live)
		io_uring_queue_exit(&j->ring);
	spare_stop(j);
	pthread_mutex_destroy(&j->spare.mu);
	pthread_cond_destroy(&j->spare.cv);
	if (j->seg_fd >= 0)
		close(j->seg_fd);
	if (j->old_fd >= 0)
		close(j->old_fd);
	if (j->dir_fd >= 0)
		close(j->dir_fd);
	for (uint32_t i = 0; i < BUFS; i++)
		free(j->buf[i].mem);
	free(j);
}

int journal_close(journal *j, uint64_t *durable_seq)
{
	assert(j != NULL);
	int rc = 0;
	if (j->fail_rc == 0 && j->next_seq > 1)
		rc = journal_wait(j, j->next_seq - 1, NULL);
	/* The kernel may still hold a buffer after a failure: never free it early. */
	reap_all(j);
	if (durable_seq != NULL)
		*durable_seq = j->durable_seq;
	rc = j->fail_rc != 0 ? j->fail_rc : rc;
	journal_free(j);
	return rc;
}

/* ==== Files shared with maint.c ============================================= */

/* The reader's map_file (it stays beside the reader, its main user). */
int jnl_map_file(const char *path, uint32_t shard_id, const uint8_t **map, uint64_t *bytes,
                 char *err, size_t err_len)
{
	return map_file(path, shard_id, map, bytes, err, err_len);
}

int jnl_zero_tail(const char *path, uint64_t from, char *err, size_t err_len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC); /* no O_CREAT: creates nothing */
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		msg(err, err_len, "open %s: %s", path, strerror(e));
		return -e;
	}
	uint64_t to = (uint64_t)st.st_size;
	int rc = 0;
	if (to > from && bo_fs_fallocate(fd, path, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	                                 (off_t)from, (off_t)(to - from)) != 0) {
		/* No ZERO_RANGE here: write the zeros, last page first. */
		while (to > from && rc == 0) {
			uint64_t o = to - from > PAGE_BYTES ? to - PAGE_BYTES : from;
			if (bo_fs_pwrite(fd, path, zero_page, (size_t)(to - o), (off_t)o) !=
			    (ssize_t)(to - o))
				rc = errno != 0 ? -errno : -EIO;
			to = o;
		}
	}
	if (rc == 0 && bo_fs_fdatasync(fd, path) != 0)
		rc = -errno;
	close(fd);
	if (rc != 0)
		msg(err, err_len, "zeroing %s from offset %" PRIu64 ": %s", path, from,
		    strerror(-rc));
	return rc;
}

int jnl_fsync_dir(const char *path)
{
	return bo_fs_fsync_dir(path);
}

/* ==== Open: recovery, then positioning ====================================== */

static int check_options(const journal_options *o, char *err, size_t err_len)
{
	if (o->payload_bytes_max > JOURNAL_PAYLOAD_BYTES_MAX) {
		msg(err, err_len, "payload_bytes_max %" PRIu32 " > %u", o->payload_bytes_max,
		    JOURNAL_PAYLOAD_BYTES_MAX);
		return -EINVAL;
	}
	if (o->buffer_bytes % PAGE_BYTES != 0 ||
	    o->buffer_bytes < rec_bytes(o->payload_bytes_max)) {
		msg(err, err_len,
		    "buffer_bytes %" PRIu32 " must be a multiple of %u holding a record of "
		    "payload_bytes_max (%" PRIu64 " bytes)",
		    o->buffer_bytes, PAGE_BYTES, rec_bytes(o->payload_bytes_max));
		return -EINVAL;
	}
	if (o->segment_bytes % PAGE_BYTES != 0 ||
	    o->segment_bytes < (uint64_t)o->buffer_bytes + PAGE_BYTES) {
		msg(err, err_len,
		    "segment_bytes %" PRIu64 " must be a multiple of %u and >= buffer_bytes + %u",
		    o->segment_bytes, PAGE_BYTES, PAGE_BYTES);
		return -EINVAL;
	}
	if (o->sync != JOURNAL_SYNC_DATA && o->sync != JOURNAL_SYNC_NONE_UNSAFE) {
		msg(err, err_len, "sync mode %d unknown", (int)o->sync);
		return -EINVAL;
	}
	return 0;
}

/* A journal in its initial state for the checked options `o`: nothing
 * opened or allocated but itself. Returns NULL when out of memory, or sets
 * *rc = -ENAMETOOLONG when the shard directory's path is too long. */
static journal *journal_new(const char *root, uint32_t shard_id, const journal_options *o, int *rc)
{
	journal *j = calloc(1, sizeof *j);
	if (j == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	j->opt = *o;
	j->shard_id = shard_id;
	j->seg_fd = j->old_fd = j->dir_fd = j->spare.fd = -1;
	j->next_seq = 1;
	pthread_mutex_init(&j->spare.mu, NULL);
	pthread_cond_init(&j->spare.cv, NULL);
	*rc = jnl_shard_dir(j->dir, sizeof j->dir, root, shard_id, NULL, 0);
	if (*rc != 0) {
		free(j);
		return NULL;
	}
	return j;
}

/* Creates the shard directory when missing (and makes its name durable in
 * root before any segment is created in it), then opens it for the
 * directory fsyncs of new segments. */
static int open_dir(journal *j, const char *root, char *m, size_t m_len)
{
	int rc = 0;
	if (bo_fs_mkdir(j->dir, 0755) == 0) {
		rc = jnl_fsync_dir(root);
		if (rc != 0)
			msg(m, m_len, "fsync %s: %s", root, strerror(-rc));
	} else if (errno != EEXIST) {
		rc = -errno;
		msg(m, m_len, "mkdir %s: %s", j->dir, strerror(-rc));
	}
	if (rc != 0)
		return rc;
	j->dir_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dir_fd < 0) {
		rc = -errno;
		msg(m, m_len, "open %s: %s", j->dir, strerror(-rc));
	}
	return rc;
}

/* Sets up what appending needs, all at open so that appends never allocate:
 * the io_uring and the two write buffers. */
static int alloc_io(journal *j, char *m, size_t m_len)
{
	int rc = io_uring_queue_init(RING_ENTRIES, &j->ring, 0);
	if (rc != 0) {
		msg(m, m_len, "io_uring_queue_init: %s", strerror(-rc));
		return rc;
	}
	j->ring_live = 1;
	for (uint32_t i = 0; i < BUFS; i++) {
		/* The head room takes a page so that the buffer size stays a page multiple. */
		j->buf[i].mem = aligned_alloc(PAGE_BYTES, (size_t)j->opt.buffer_bytes + PAGE_BYTES);
		if (j->buf[i].mem == NULL) {
			msg(m, m_len, "out of memory for write buffers");
			return -ENOMEM;
		}
		/* Touch every page now so the first batches do not page-fault. */
		memset(j->buf[i].mem, 0, SEG_HDR_BYTES + (size_t)j->opt.buffer_bytes);
	}
	return 0;
}

/* Applies the reader's cut on disk: zero the rest of the cut segment (or
 * delete it when the cut is at its offset 0) and delete every later one. */
static int apply_cut(journal *j, const journal_reader *r, char *err, size_t err_len)
{
	if (r->cut_seg >= r->seg_count)
		return 0;
	int removed = 0;
	for (uint32_t s = r->cut_seg; s < r->seg_count; s++) {
		char name[SEG_NAME_LEN + 1], path[PATH_MAX];
		seg_name(name, sizeof name, r->segs[s].first_seq);
		snprintf(path, sizeof path, "%s/%s", j->dir, name);
		if (s == r->cut_seg && r->cut_off > 0) {
			char z[JOURNAL_ERR_LEN];
			int rc = jnl_zero_tail(path, r->cut_off, z, sizeof z);
			if (rc != 0) {
				msg(err, err_len, "cutting the torn tail: %s", z);
				return rc;
			}
			continue;
		}
		if (bo_fs_unlink(path) != 0) {
			int e = errno;
			msg(err, err_len, "removing %s after the cut: %s", path, strerror(e));
			return -e;
		}
		removed = 1;
	}
	if (removed && bo_fs_fsync(j->dir_fd, j->dir) != 0) {
		int e = errno;
		msg(err, err_len, "fsync %s: %s", j->dir, strerror(e));
		return -e;
	}
	return 0;
}

/* Recovery: reads the log to its end with a reader (which validates every
 * record after the START segment's header and decides torn tail or
 * corruption), takes over its chain, and cuts the torn (or forced) tail on
 * disk. Returns 0 with *rp (caller closes) positioned at the end, or -errno
 * with a message in m (*rp may still need closing). */
static int recover(journal *j, const char *root, journal_reader **rp, journal_recovery *rec,
                   char *m, size_t m_len)
{
	const journal_options *o = &j->opt;
	int rc = journal_reader_open_from(root, j->shard_id, o, o->after_seq, rp, m, m_len);
	journal_reader *r = *rp;
	journal_record x;
	while (rc == 0 && (rc = journal_reader_next(r, &x)) == 1)
		rc = 0;
	if (rc < 0 && r != NULL && journal_reader_error(r)[0] != '\0')
		msg(m, m_len, "%s", journal_reader_error(r));
	if (rc != 0)
		return rc;
	if (!r->chain_known && r->next_seq > 1) {
		/* The START segment's header was never valid and the log holds no
		 * record before it: the first append would need the checksum of
		 * record next_seq - 1, which only a pruned segment had. */
		msg(m, m_len,
		    "journal shard %" PRIu32 ": corrupt: the first remaining segment has no valid "
		    "header and no record precedes it, so the hash chain cannot continue after "
		    "seq %" PRIu64 " (%s); refusing",
		    j->shard_id, r->next_seq - 1, r->rec.note);
		return -EBADMSG;
	}
	if (rec != NULL)
		journal_reader_recovery(r, rec);
	j->next_seq = r->next_seq;
	j->last_checksum = r->last_checksum;
	j->last_content = r->last_content;
	j->durable_seq = r->next_seq - 1;
	return apply_cut(j, r, m, m_len);
}

/* Positions appends after the last good record: in the last kept segment
 * when there is one, else nowhere yet (the first append creates the
 * segment, so an opened and closed empty journal leaves no file behind). */
static int reopen_tail(journal *j, const journal_reader *r, char *m, size_t m_len)
{
	int keep_tail = r->tail_seg != UINT32_MAX &&
	                (r->tail_seg < r->cut_seg || (r->tail_seg == r->cut_seg && r->cut_off > 0));
	if (!keep_tail)
		return 0;
	char name[SEG_NAME_LEN + 1];
	seg_name(name, sizeof name, r->segs[r->tail_seg].first_seq);
	snprintf(j->seg_path, sizeof j->seg_path, "%s/%s", j->dir, name);
	j->seg_bytes = r->tail_seg_bytes;
	j->seg_off = r->tail_off;
	j->seg_fd = open(j->seg_path, O_RDWR | O_CLOEXEC);
	if (j->seg_fd < 0) {
		int rc = -errno;
		msg(m, m_len, "open %s: %s", j->seg_path, strerror(-rc));
		return rc;
	}
	/* Re-allocate a segment truncated from outside (a no-op otherwise), so
	 * appends never extend the file. */
	if (bo_fs_fallocate(j->seg_fd, j->seg_path, 0, 0, (off_t)j->seg_bytes) != 0 &&
	    errno != EOPNOTSUPP) {
		int rc = -errno;
		msg(m, m_len, "fallocate %s: %s", j->seg_path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* How every message that names the shard begins: journal_open passes those
 * on as they are and puts "journal open: " before the others. */
#define SHARD_MSG_PREFIX "journal shard"

int journal_open(const char *root, uint32_t shard_id, const journal_options *opt, journal **out,
                 journal_recovery *rec, char *err, size_t err_len)
{
	assert(root != NULL && out != NULL);
	*out = NULL;
	journal_options o;
	if (opt != NULL)
		o = *opt;
	else
		journal_options_default(&o);
	char m[JOURNAL_ERR_LEN] = "";
	int rc = check_options(&o, m, sizeof m);
	if (rc != 0) {
		msg(err, err_len, SHARD_MSG_PREFIX " %" PRIu32 ": bad options: %s", shard_id, m);
		return rc;
	}
	journal *j = journal_new(root, shard_id, &o, &rc);
	if (j == NULL) {
		msg(err, err_len, SHARD_MSG_PREFIX " %" PRIu32 ": %s", shard_id,
		    rc == -ENOMEM ? "out of memory" : "path too long");
		return rc;
	}
	journal_reader *r = NULL;
	rc = open_dir(j, root, m, sizeof m);
	if (rc == 0)
		rc = alloc_io(j, m, sizeof m);
	if (rc == 0)
		rc = recover(j, root, &r, rec, m, sizeof m);
	if (rc == 0)
		rc = reopen_tail(j, r, m, sizeof m);
	if (rc == 0)
		rc = spare_start(j, m, sizeof m);
	journal_reader_close(r);
	if (rc != 0) {
		msg(err, err_len, "%s%s",
		    strncmp(m, SHARD_MSG_PREFIX, sizeof SHARD_MSG_PREFIX - 1) == 0
		            ? ""
		            : "journal open: ",
		    m);
		journal_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

/* ==== Segments: listing and pruning ========================================== */

int journal_segments(const char *root, uint32_t shard_id, journal_segment_fn fn, void *ctx,
                     char *err, size_t err_len)
{
	assert(root != NULL && fn != NULL);
	char dir[DIR_MAX];
	jsegent *segs;
	uint32_t n;
	int rc = jnl_shard_dir(dir, sizeof dir, root, shard_id, err, err_len);
	if (rc == 0)
		rc = seg_list(dir, shard_id, &segs, &n, err, err_len);
	if (rc != 0)
		return rc;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		char name[SEG_NAME_LEN + 1], path[PATH_MAX];
		seg_name(name, sizeof name, segs[i].first_seq);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		struct stat st;
		if (stat(path, &st) != 0) {
			rc = -errno;
			msg(err, err_len, "journal shard %" PRIu32 ": stat %s: %s", shard_id, path,
			    strerror(-rc));
			break;
		}
		journal_segment_info info = {
		        .path = path,
		        .first_seq = segs[i].first_seq,
		        /* Names are unique and sorted, so segs[i + 1] >= 1. */
		        .last_seq_max = i + 1 < n ? segs[i + 1].first_seq - 1 : UINT64_MAX,
		        .size_bytes = (uint64_t)st.st_size,
		};
		rc = fn(ctx, &info);
		assert(rc <= 0); /* the callback's contract */
	}
	free(segs);
	return rc != 0 ? rc : (int)n;
}

/* Is `path` (a segment named first_seq) fit to be the first segment: a valid
 * header naming it and a valid first record continuing its seed? 0, or
 * -EBADMSG / -errno with a message. */
static int check_new_first(const char *path, uint32_t shard_id, uint64_t first_seq, char *err,
                           size_t err_len)
{
	const uint8_t *m;
	uint64_t n;
	int rc = map_file(path, shard_id, &m, &n, err, err_len);
	if (rc != 0)
		return rc;
	jseghdr h;
	jrec x;
	const char *why = NULL;
	if (!seghdr_parse(m, n, shard_id, &h) || h.first_seq != first_seq)
		why = "no valid segment header naming the file";
	else if (!rec_parse(m, n, SEG_HDR_BYTES, shard_id, &x) ||
	         !rec_follows(&x, first_seq, h.seed, UNIT_INDEX_NONE))
		why = "no valid first record";
	if (m != NULL)
		munmap((void *)m, n);
	if (why != NULL) {
		msg(err, err_len,
		    "journal shard %" PRIu32 ": prune: %s would become the first segment but has "
		    "%s; nothing removed",
		    shard_id, path, why);
		return -EBADMSG;
	}
	return 0;
}

int journal_prune(const char *root, uint32_t shard_id, uint64_t upto_seq, char *err, size_t err_len)
{
	assert(root != NULL);
	char dir[DIR_MAX];
	jsegent *segs;
	uint32_t n;
	int rc = jnl_shard_dir(dir, sizeof dir, root, shard_id, err, err_len);
	if (rc == 0)
		rc = seg_list(dir, shard_id, &segs, &n, err, err_len);
	if (rc != 0)
		return rc;
	/* keep: the new first segment, the last one starting at or before upto
	 * (never past the last segment: it is an index). */
	uint32_t keep = 0;
	while (keep + 1 < n && segs[keep + 1].first_seq <= upto_seq)
		keep++;
	assert(keep == 0 || keep <= n - 1); /* so the last segment is never removed */
	if (keep == 0) {
		free(segs);
		return 0;
	}
	char name[SEG_NAME_LEN + 1], path[PATH_MAX];
	seg_name(name, sizeof name, segs[keep].first_seq);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	rc = check_new_first(path, shard_id, segs[keep].first_seq, err, err_len);
	int dfd = -1;
	if (rc == 0) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			rc = -errno;
			msg(err, err_len, "journal shard %" PRIu32 ": open %s: %s", shard_id, dir,
			    strerror(-rc));
		}
	}
	uint32_t removed = 0;
	/* Oldest first: a crash (or a failed unlink) part-way leaves a suffix of
	 * the log, which opens with a larger after_seq, never a gap. */
	for (uint32_t i = 0; i < keep && rc == 0; i++) {
		seg_name(name, sizeof name, segs[i].first_seq);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (bo_fs_unlink(path) != 0) {
			rc = -errno;
			msg(err, err_len,
			    "journal shard %" PRIu32 ": prune: unlink %s: %s (%" PRIu32
			    " older segments removed)",
			    shard_id, path, strerror(-rc), removed);
		} else {
			removed++;
		}
	}
	if (removed > 0 && bo_fs_fsync(dfd, dir) != 0 && rc == 0) {
		rc = -errno;
		msg(err, err_len, "journal shard %" PRIu32 ": prune: fsync %s: %s", shard_id, dir,
		    strerror(-rc));
	}
	if (dfd >= 0)
		close(dfd);
	free(segs);
	return rc != 0 ? rc : (int)removed;
}
