/*
 * reader_error_test.c — proves that journal_reader_error_at() tells where a
 * reader stopped, as fields, for each kind of error journal.h lists: the
 * file, offset and seq it returns are the ones of the damage, not of the
 * last good record or of some other file, and it says "no error" (0, fields
 * cleared) while reading and at a clean end.
 *
 * How: a journal of 1500 records with small segments (64 KiB, so it spans
 * four files) is written through journal_open/append, then read once
 * cleanly to learn where every record lives (file and offset as the reader
 * hands them out). Each test then damages the files at a place named by
 * that map — a flipped payload byte, a deleted middle segment, a deleted
 * first segment, a segment replaced by a directory (an I/O error: mmap
 * refuses it) — or asks for more than the log holds, reads until the reader
 * stops, and compares journal_reader_error_at() with the map. Where the
 * reader says the log ends (a short log), the place is checked against
 * where the journal itself appends the next record. io_uring refused by
 * the kernel skips the tests, loudly.
 *
 * The hash chain: a record rewritten by hand (record format at the top of
 * journal/journal.c) with the right seq and a correctly computed checksum
 * but a `prev` that is not the previous record's checksum — a stale link,
 * or a record spliced from another journal of the same shard — must be
 * refused by the reader (from seq 1 and from a later after_seq) and by
 * journal_open, at that record's file, offset and seq. Nothing else about
 * such a record is wrong, so these tests fail if the reader stops checking
 * the link.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/le.h"
#include "journal/journal.h"
#include "tests/support/tmpdir.h"
#include "tests/support/uring_skip.h"

#define SHARD 5u
#define RECORDS 1500u
#define PAYLOAD 100u

static char g_root[64];

/* Where each record lives, from a clean read: [seq] (index 0 unused). */
static char g_file[RECORDS + 2][PATH_MAX];
static uint64_t g_off[RECORDS + 2];

static journal_options small_opts(void)
{
	journal_options o;
	journal_options_default(&o);
	o.segment_bytes = 64u << 10;
	o.buffer_bytes = 16u << 10;
	o.payload_bytes_max = 4096;
	return o;
}

static void append_one(journal *j, uint64_t want_seq)
{
	uint8_t p[PAYLOAD];
	for (uint32_t i = 0; i < PAYLOAD; i++)
		p[i] = (uint8_t)(want_seq * 13u + i);
	uint64_t seq = 0;
	cr_assert_eq(journal_append(j, 1700000000000 + (int64_t)want_seq, p, PAYLOAD, &seq), 0,
	             "%s", journal_error(j));
	cr_assert_eq(seq, want_seq);
}

/* Reads the whole journal cleanly, filling g_file / g_off. */
static void map_records(void)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(g_root, SHARD, NULL, &r, err, sizeof err), 0, "%s", err);
	journal_record x;
	uint64_t n = 0;
	int rc;
	while ((rc = journal_reader_next(r, &x)) == 1) {
		cr_assert_eq(x.seq, ++n);
		cr_assert_leq(n, RECORDS);
		snprintf(g_file[n], sizeof g_file[n], "%s", x.file);
		g_off[n] = x.offset;
	}
	cr_assert_eq(rc, 0, "%s", journal_reader_error(r));
	cr_assert_eq(n, RECORDS);
	/* Clean end: no error, and the fields are cleared, not left as found. */
	journal_error_at at;
	memset(&at, 0x5a, sizeof at);
	cr_assert_eq(journal_reader_error_at(r, &at), 0);
	cr_assert_eq(at.file[0], '\0');
	cr_assert_eq(at.has_offset, 0);
	cr_assert_eq(at.seq, 0);
	journal_reader_close(r);
}

static void setup(void)
{
	uring_skip_unless_available();
	int rc;
	rc = tmpdir_make(g_root, sizeof g_root, "bo_rderr");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));

	journal_options o = small_opts();
	journal *j;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_open(g_root, SHARD, &o, &j, NULL, err, sizeof err), 0, "%s", err);
	for (uint64_t s = 1; s <= RECORDS; s++) {
		append_one(j, s);
		if (s % 50 == 0)
			cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
	}
	cr_assert_eq(journal_close(j, NULL), 0);
	map_records();
	cr_assert_str_neq(g_file[1], g_file[RECORDS], "the journal must span several segments");
}

static void teardown(void)
{
	if (g_root[0] != '\0')
		tmpdir_remove(g_root);
	g_root[0] = '\0';
}

TestSuite(reader_error, .init = setup, .fini = teardown);

/* The first seq of the segment after the one holding `seq`. */
static uint64_t next_segment_start(uint64_t seq)
{
	uint64_t s = seq;
	while (s <= RECORDS && strcmp(g_file[s], g_file[seq]) == 0)
		s++;
	cr_assert_leq(s, RECORDS, "no segment after seq %" PRIu64, seq);
	return s;
}

/* Opens a reader after `after`, reads until it stops; returns its rc and
 * the error place. `handed` (may be NULL) gets the number of records handed
 * out, `msg` (may be NULL, JOURNAL_ERR_LEN bytes) the message. */
static int read_until_stop(uint64_t after, journal_error_at *at, uint64_t *handed, char *msg)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open_from(g_root, SHARD, NULL, after, &r, err, sizeof err), 0,
	             "%s", err);
	journal_record x;
	int rc;
	uint64_t n = 0;
	while ((rc = journal_reader_next(r, &x)) == 1) {
		n++;
		/* While it reads, there is no error to locate. */
		journal_error_at mid;
		cr_assert_eq(journal_reader_error_at(r, &mid), 0);
	}
	memset(at, 0x5a, sizeof *at);
	int got = journal_reader_error_at(r, at);
	cr_assert_eq(got, rc < 0, "error_at says %d for rc %d", got, rc);
	if (msg)
		snprintf(msg, JOURNAL_ERR_LEN, "%s", journal_reader_error(r));
	journal_reader_close(r);
	if (handed)
		*handed = n;
	return rc;
}

Test(reader_error, a_corrupt_record_is_located_at_its_file_and_offset)
{
	/* A record in the middle of the second segment: valid records follow it
	 * in the same file, so it is corruption, not a torn tail. */
	uint64_t bad = next_segment_start(1) + 40;
	int fd = open(g_file[bad], O_RDWR);
	cr_assert_geq(fd, 0);
	off_t at_byte = (off_t)(g_off[bad] + 48 + PAYLOAD / 2); /* inside the payload */
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, at_byte), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, at_byte), 1);
	close(fd);

	journal_error_at at;
	uint64_t handed;
	char msg[JOURNAL_ERR_LEN];
	cr_assert_eq(read_until_stop(0, &at, &handed, msg), -EBADMSG);
	cr_assert_eq(handed, bad - 1);
	cr_assert_str_eq(at.file, g_file[bad]);
	cr_assert_eq(at.has_offset, 1);
	cr_assert_eq(at.offset, g_off[bad], "offset %" PRIu64 ", record at %" PRIu64, at.offset,
	             g_off[bad]);
	cr_assert_eq(at.seq, bad);
	/* The message says the same in words. */
	char want[PATH_MAX + 64];
	snprintf(want, sizeof want, "%s offset %" PRIu64 " (expected seq %" PRIu64 ")", at.file,
	         at.offset, at.seq);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
}

Test(reader_error, a_missing_middle_segment_is_located_at_the_next_ones_header)
{
	uint64_t s2 = next_segment_start(1);
	uint64_t s3 = next_segment_start(s2);
	cr_assert_eq(unlink(g_file[s2]), 0);
	journal_error_at at;
	cr_assert_eq(read_until_stop(0, &at, NULL, NULL), -EBADMSG);
	cr_assert_str_eq(at.file, g_file[s3], "the segment that does not follow");
	cr_assert_eq(at.has_offset, 1);
	cr_assert_eq(at.offset, 0);
	cr_assert_eq(at.seq, s2, "the first missing record");
}

Test(reader_error, a_missing_head_names_the_first_segment_present)
{
	uint64_t s2 = next_segment_start(1);
	cr_assert_eq(unlink(g_file[1]), 0);
	/* Found at open: error_at says so before any read. */
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(g_root, SHARD, NULL, &r, err, sizeof err), 0, "%s", err);
	journal_error_at at;
	cr_assert_eq(journal_reader_error_at(r, &at), 1);
	cr_assert_str_eq(at.file, g_file[s2]);
	cr_assert_eq(at.has_offset, 0);
	cr_assert_eq(at.seq, 1);
	journal_record x;
	cr_assert_eq(journal_reader_next(r, &x), -EBADMSG);
	journal_reader_close(r);

	/* No segment at all, yet records after 7 are needed: no file to name. */
	uint64_t s;
	for (s = s2; s <= RECORDS; s = next_segment_start(s)) {
		cr_assert_eq(unlink(g_file[s]), 0);
		if (strcmp(g_file[s], g_file[RECORDS]) == 0)
			break;
	}
	cr_assert_eq(read_until_stop(7, &at, NULL, NULL), -EBADMSG);
	cr_assert_str_eq(at.file, "");
	cr_assert_eq(at.has_offset, 0);
	cr_assert_eq(at.seq, 8);
}

Test(reader_error, a_short_log_is_located_where_the_next_record_goes)
{
	journal_error_at at;
	uint64_t handed;
	cr_assert_eq(read_until_stop(RECORDS + 10, &at, &handed, NULL), -EBADMSG);
	cr_assert_eq(handed, 0);
	cr_assert_eq(at.seq, RECORDS + 1);
	cr_assert_str_eq(at.file, g_file[RECORDS]);
	cr_assert_eq(at.has_offset, 1);
	cr_assert_gt(at.offset, g_off[RECORDS]);
	/* Where the journal itself puts the next record. */
	journal_options o = small_opts();
	journal *j;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_open(g_root, SHARD, &o, &j, NULL, err, sizeof err), 0, "%s", err);
	append_one(j, RECORDS + 1);
	cr_assert_eq(journal_close(j, NULL), 0);
	journal_reader *r;
	cr_assert_eq(journal_reader_open_from(g_root, SHARD, NULL, RECORDS, &r, err, sizeof err), 0,
	             "%s", err);
	journal_record x;
	cr_assert_eq(journal_reader_next(r, &x), 1, "%s", journal_reader_error(r));
	cr_assert_eq(x.seq, RECORDS + 1);
	cr_assert_str_eq(x.file, at.file);
	cr_assert_eq(x.offset, at.offset);
	journal_reader_close(r);
}

Test(reader_error, an_unreadable_segment_is_an_io_error_naming_it)
{
	uint64_t s2 = next_segment_start(1);
	cr_assert_eq(unlink(g_file[s2]), 0);
	cr_assert_eq(mkdir(g_file[s2], 0755), 0); /* same name; mmap refuses a directory */
	journal_error_at at;
	uint64_t handed;
	int rc = read_until_stop(0, &at, &handed, NULL);
	cr_assert_lt(rc, 0);
	cr_assert_neq(rc, -EBADMSG, "an I/O error, not corruption");
	cr_assert_eq(handed, s2 - 1);
	cr_assert_str_eq(at.file, g_file[s2]);
	cr_assert_eq(at.has_offset, 0);
	cr_assert_eq(at.seq, s2);
}

/* ==== The hash chain ======================================================== */

/* Record layout (journal.c): checksum at 0 covers bytes 8 .. end; prev at 8. */
#define REC_HDR 48u
#define REC_SIZE ((REC_HDR + PAYLOAD + 7u) & ~7u)

static void read_record(const char *file, uint64_t off, uint8_t rec[REC_SIZE])
{
	int fd = open(file, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s", file);
	cr_assert_eq(pread(fd, rec, REC_SIZE, (off_t)off), (ssize_t)REC_SIZE);
	close(fd);
}

static void write_record(const char *file, uint64_t off, const uint8_t rec[REC_SIZE])
{
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0, "open %s", file);
	cr_assert_eq(pwrite(fd, rec, REC_SIZE, (off_t)off), (ssize_t)REC_SIZE);
	close(fd);
}

/* Record `seq` with its link set to `prev` and its checksum recomputed, so
 * that it is well-formed: only the chain can tell it is wrong. */
static void relink(uint64_t seq, uint64_t prev)
{
	uint8_t rec[REC_SIZE];
	read_record(g_file[seq], g_off[seq], rec);
	cr_assert_eq(bo_le_load64(rec + 16), seq, "the map is right");
	cr_assert_neq(bo_le_load64(rec + 8), prev, "a different link");
	bo_le_store64(rec + 8, prev);
	bo_le_store64(rec, XXH3_64bits(rec + 8, REC_SIZE - 8));
	write_record(g_file[seq], g_off[seq], rec);
}

static uint64_t checksum_of(uint64_t seq)
{
	uint8_t rec[REC_SIZE];
	read_record(g_file[seq], g_off[seq], rec);
	return bo_le_load64(rec);
}

/* The reader (from 0 and from `after`) and journal_open refuse the journal
 * at record `bad`: its file, offset and seq. */
static void assert_refused_at(uint64_t bad, uint64_t after)
{
	journal_error_at at;
	uint64_t handed;
	char msg[JOURNAL_ERR_LEN];
	cr_assert_eq(read_until_stop(0, &at, &handed, msg), -EBADMSG, "%s", msg);
	cr_assert_eq(handed, bad - 1);
	cr_assert_str_eq(at.file, g_file[bad]);
	cr_assert_eq(at.has_offset, 1);
	cr_assert_eq(at.offset, g_off[bad], "offset %" PRIu64 ", record at %" PRIu64, at.offset,
	             g_off[bad]);
	cr_assert_eq(at.seq, bad);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof want, "%s offset %" PRIu64 " (expected seq %" PRIu64 ")", g_file[bad],
	         g_off[bad], bad);
	cr_assert_not_null(strstr(msg, want), "%s", msg);

	/* A reader that starts later (after a snapshot) checks the link too. */
	cr_assert_lt(after, bad);
	cr_assert_eq(read_until_stop(after, &at, &handed, msg), -EBADMSG, "%s", msg);
	cr_assert_eq(handed, bad - 1 - after);
	cr_assert_str_eq(at.file, g_file[bad]);
	cr_assert_eq(at.offset, g_off[bad]);
	cr_assert_eq(at.seq, bad);

	/* Recovery refuses to open it (and cuts nothing: the record stays). */
	journal_options o = small_opts();
	journal *j = NULL;
	cr_assert_eq(journal_open(g_root, SHARD, &o, &j, NULL, msg, sizeof msg), -EBADMSG,
	             "journal_open accepted a broken chain");
	cr_assert_null(j);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
	cr_assert_eq(read_until_stop(0, &at, &handed, NULL), -EBADMSG);
	cr_assert_eq(handed, bad - 1);
}

Test(reader_error, a_record_linked_to_a_stale_predecessor_is_refused_at_its_place)
{
	/* Mid-segment, with valid records of later units after it: record k
	 * points at record k - 2, as if it had been written after k - 2 by a
	 * writer that lost k - 1 (seq and checksum are right). */
	uint64_t k = next_segment_start(1) + 40;
	relink(k, checksum_of(k - 2));
	assert_refused_at(k, k - 10);
}

Test(reader_error, a_segments_first_record_spliced_from_another_journal_is_refused)
{
	/* Another journal of the same shard, same record sizes and units but
	 * other payloads: its record s3 is well-formed here (same shard, seq,
	 * unit index, right checksum), but its link is the other journal's
	 * chain, not this segment's seed. */
	uint64_t s2 = next_segment_start(1);
	uint64_t s3 = next_segment_start(s2);
	cr_assert_eq(g_off[s3], 64, "a segment's first record follows its header");
	char other[64];
	int rc = tmpdir_make(other, sizeof other, "bo_rderr_other");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
	journal_options o = small_opts();
	journal *j;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_open(other, SHARD, &o, &j, NULL, err, sizeof err), 0, "%s", err);
	for (uint64_t s = 1; s <= s3; s++) {
		uint8_t p[PAYLOAD];
		for (uint32_t i = 0; i < PAYLOAD; i++)
			p[i] = (uint8_t)(s * 7u + i + 1u); /* not append_one's bytes */
		cr_assert_eq(journal_append(j, 1700000000000 + (int64_t)s, p, PAYLOAD, NULL), 0);
		if (s % 50 == 0)
			cr_assert_eq(journal_commit(j), 0, "%s", journal_error(j));
	}
	cr_assert_eq(journal_close(j, NULL), 0);
	char file[PATH_MAX];
	snprintf(file, sizeof file, "%s%s", other, g_file[s3] + strlen(g_root));
	uint8_t rec[REC_SIZE];
	read_record(file, 64, rec);
	tmpdir_remove(other);
	cr_assert_eq(bo_le_load64(rec + 16), s3, "the same seq at the same place");
	cr_assert_eq(XXH3_64bits(rec + 8, REC_SIZE - 8), bo_le_load64(rec), "well-formed");
	cr_assert_neq(bo_le_load64(rec + 8), checksum_of(s3 - 1), "another chain");
	write_record(g_file[s3], 64, rec);
	assert_refused_at(s3, s2);
}
