/*
 * journal_test.c — proves that the journal gives back exactly what it
 * reported durable, across segments, reopen, torn tails, corruption and
 * failing I/O.
 *
 * How: every test works in a fresh mkdtemp() directory under /tmp (removed
 * afterwards) with small segments (64 KiB) so a few thousand records cross
 * many segment boundaries. Payloads are a pure function of the sequence
 * number (length and bytes), so the reader can check every record it gets
 * back without keeping a copy. Damage is done to the files with pwrite /
 * truncate between close and reopen, at offsets the reader reported; I/O
 * failures are injected with the journal's fault hook. If the kernel refuses
 * io_uring (ENOSYS/EPERM) every test that needs it is skipped, loudly.
 * The last test damages the files at random (seeded, seed printed on
 * failure) and checks that the reader only ever returns true records and
 * that a forced open always yields a clean journal.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal/journal.h"

#define SHARD 3u
#define SEG_BYTES (64u << 10)
#define BUF_BYTES (16u << 10)
#define PAYLOAD_MAX 4096u

static char g_root[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(8, &ring, 0);
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring refused by this kernel/sandbox (%s): journal untested here",
		             strerror(-rc));
	cr_assert_eq(rc, 0, "io_uring_queue_init: %s", strerror(-rc));
	io_uring_queue_exit(&ring);
	snprintf(g_root, sizeof g_root, "/tmp/bo_journal_XXXXXX");
	cr_assert_not_null(mkdtemp(g_root), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	if (g_root[0] != '\0')
		nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	g_root[0] = '\0';
}

TestSuite(journal, .init = setup, .fini = teardown);

/* ---- Helpers ---------------------------------------------------------------- */

static journal_options small_opts(void)
{
	journal_options o;
	journal_options_default(&o);
	o.segment_bytes = SEG_BYTES;
	o.buffer_bytes = BUF_BYTES;
	o.payload_bytes_max = PAYLOAD_MAX;
	return o;
}

/* The payload of record `seq`: 1..300 bytes, content derived from seq. */
static uint32_t payload_of(uint64_t seq, uint8_t *out)
{
	uint32_t len = (uint32_t)(1 + (seq * 7919u) % 300u);
	for (uint32_t i = 0; i < len; i++)
		out[i] = (uint8_t)(seq * 31u + i * 7u);
	return len;
}

static int64_t ts_of(uint64_t seq)
{
	return 1700000000000 + (int64_t)(seq / 10);
}

static journal *open_ok(const journal_options *o, journal_recovery *rec)
{
	journal *j = NULL;
	char err[JOURNAL_ERR_LEN] = "";
	int rc = journal_open(g_root, SHARD, o, &j, rec, err, sizeof err);
	cr_assert_eq(rc, 0, "journal_open: %d %s", rc, err);
	cr_assert_not_null(j);
	return j;
}

/* A writer of the test's records: payload_of(seq), ts_of(seq). */
typedef struct writer {
	journal *j;
	uint64_t next;    /* seq of the next append */
	uint64_t durable; /* last durable seq seen */
} writer;

/* Appends records up to and including seq `last` in batches of 1..max_batch,
 * commits each batch and polls, checking that the durable seq never goes
 * back nor beyond what was appended; then waits until `last` is durable. */
static void write_batches(writer *w, uint64_t last, uint32_t max_batch, unsigned seed)
{
	uint8_t p[PAYLOAD_MAX];
	while (w->next <= last) {
		uint32_t n = 1 + (uint32_t)rand_r(&seed) % max_batch;
		for (uint32_t k = 0; k < n && w->next <= last; k++) {
			uint32_t len = payload_of(w->next, p);
			uint64_t seq = 0;
			int rc = journal_append(w->j, ts_of(w->next), p, len, &seq);
			cr_assert_eq(rc, 0, "append %" PRIu64 ": %d %s", w->next, rc,
			             journal_error(w->j));
			cr_assert_eq(seq, w->next);
			w->next++;
		}
		cr_assert_eq(journal_commit(w->j), 0, "%s", journal_error(w->j));
		uint64_t d = 0;
		cr_assert_eq(journal_poll(w->j, &d), 0, "%s", journal_error(w->j));
		cr_assert_geq(d, w->durable, "durable seq went back");
		cr_assert_lt(d, w->next, "durable seq beyond the last append");
		w->durable = d;
	}
	uint64_t d = 0;
	cr_assert_eq(journal_wait(w->j, last, &d), 0, "%s", journal_error(w->j));
	cr_assert_geq(d, last);
	w->durable = d;
}

/* Reads the whole shard and checks every record against payload_of(). Returns
 * the number of records; rc of the end in *end_rc. */
static uint64_t read_all(int force, int *end_rc, char *err, size_t err_len)
{
	journal_options o = small_opts();
	o.force_truncate = force;
	journal_reader *r;
	int rc = journal_reader_open(g_root, SHARD, &o, &r, err, err_len);
	cr_assert_eq(rc, 0, "journal_reader_open: %s", err);
	journal_record x;
	uint64_t n = 0;
	uint8_t want[PAYLOAD_MAX];
	while ((rc = journal_reader_next(r, &x)) == 1) {
		n++;
		cr_assert_eq(x.seq, n);
		cr_assert_eq(x.shard_id, SHARD);
		cr_assert_eq(x.timestamp_ms, ts_of(x.seq));
		uint32_t len = payload_of(x.seq, want);
		cr_assert_eq(x.payload_len, len, "seq %" PRIu64, x.seq);
		cr_assert_eq(memcmp(x.payload, want, len), 0, "payload of seq %" PRIu64, x.seq);
	}
	*end_rc = rc;
	snprintf(err, err_len, "%s", journal_reader_error(r));
	journal_reader_close(r);
	return n;
}

static uint64_t read_all_ok(void)
{
	int rc;
	char err[JOURNAL_ERR_LEN];
	uint64_t n = read_all(0, &rc, err, sizeof err);
	cr_assert_eq(rc, 0, "reader: %d %s", rc, err);
	return n;
}

/* Where record `seq` lives (path and offset), from the reader. */
static void locate(uint64_t seq, char *path, size_t path_len, uint64_t *off, uint32_t *len)
{
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_reader_open(g_root, SHARD, NULL, &r, err, sizeof err), 0, "%s", err);
	journal_record x;
	int rc;
	while ((rc = journal_reader_next(r, &x)) == 1 && x.seq != seq)
		;
	cr_assert_eq(rc, 1, "seq %" PRIu64 " not found", seq);
	snprintf(path, path_len, "%s", x.file);
	*off = x.offset;
	*len = x.payload_len;
	journal_reader_close(r);
}

static void overwrite(const char *path, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The segment files of the shard, sorted; returns how many. */
static int list_segments(char names[][64], int max)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/shard-%04u", g_root, SHARD);
	int n = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 4 || l >= 64 || strcmp(de->d_name + l - 4, ".seg") != 0)
			continue;
		cr_assert_lt(n, max);
		memcpy(names[n++], de->d_name, l + 1);
	}
	closedir(d);
	qsort(names, (size_t)n, 64, cmp_name);
	return n;
}

static void seg_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/shard-%04u/%s", g_root, SHARD, name);
}

static int open_fails(const journal_options *o, char *err, size_t err_len)
{
	journal *j = NULL;
	int rc = journal_open(g_root, SHARD, o, &j, NULL, err, err_len);
	cr_assert_null(j);
	return rc;
}

/* ---- Fault hook -------------------------------------------------------------- */

typedef struct fault {
	/* injection: the next I/O of `kind` after arming */
	int armed;
	journal_io_kind kind;
	int rc;          /* -errno to fail it with */
	int short_write; /* WRITE: write half */
	int corrupt;     /* WRITE: flip a bit in the middle */
	int fired;
	/* observation of every WRITE */
	uint64_t writes;
	uint64_t last_seq_last; /* seq_last of the previous write */
	uint64_t out_of_order;  /* writes not starting right after the previous one */
	uint64_t w_off, w_first, w_last;
	uint32_t w_len;
	char w_path[256];
	uint64_t unit_last[4096]; /* seq_last of each write, in order */
} fault;

static int hook(void *ctx, journal_io *io)
{
	fault *f = ctx;
	if (io->kind == JOURNAL_IO_WRITE) {
		if (f->last_seq_last != 0 && io->seq_first != f->last_seq_last + 1)
			f->out_of_order++;
		f->last_seq_last = io->seq_last;
		if (f->writes < 4096)
			f->unit_last[f->writes] = io->seq_last;
		f->writes++;
		f->w_off = io->offset;
		f->w_len = io->len;
		f->w_first = io->seq_first;
		f->w_last = io->seq_last;
		snprintf(f->w_path, sizeof f->w_path, "%s", io->path);
	}
	if (!f->armed || io->kind != f->kind)
		return 0;
	f->armed = 0;
	f->fired = 1;
	if (f->short_write) {
		io->len /= 2;
		return 0;
	}
	if (f->corrupt) {
		io->buf[io->len / 2] ^= 0x10;
		return 0;
	}
	return f->rc;
}

/* ---- Tests ------------------------------------------------------------------ */

Test(journal, empty_open_close_leaves_nothing)
{
	journal_options o = small_opts();
	journal_recovery rec;
	journal *j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, 0);
	uint64_t d = 99;
	cr_assert_eq(journal_close(j, &d), 0);
	cr_assert_eq(d, 0);
	char names[4][64];
	cr_assert_eq(list_segments(names, 4), 0);
	cr_assert_eq(read_all_ok(), 0);
}

Test(journal, roundtrip_many_batches_across_segments)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 5000, 40, 1);
	uint64_t d;
	cr_assert_eq(journal_close(w.j, &d), 0);
	cr_assert_eq(d, 5000);
	char names[64][64];
	int segs = list_segments(names, 64);
	cr_assert_geq(segs, 5, "only %d segments: roll-over untested", segs);
	cr_assert_eq(read_all_ok(), 5000);

	/* Reopen: nothing cut, appends continue with seq 5001 in the last segment. */
	journal_recovery rec;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, 5000);
	cr_assert_eq(rec.bytes_cut, 0, "%s", rec.note);
	cr_assert_eq(rec.records_cut, 0);
	cr_assert_eq(rec.forced, 0);
	write_batches(&w, 6000, 40, 2);
	cr_assert_eq(journal_close(w.j, &d), 0);
	cr_assert_eq(d, 6000);
	cr_assert_eq(read_all_ok(), 6000);
}

Test(journal, durable_seq_is_ordered_and_at_unit_boundaries)
{
	journal_options o = small_opts();
	static fault f;
	memset(&f, 0, sizeof f);
	o.fault = hook;
	o.fault_ctx = &f;
	journal *j = open_ok(&o, NULL);
	uint8_t p[PAYLOAD_MAX];
	uint64_t next = 1, durable = 0;
	unsigned seed = 5;
	for (int batch = 0; batch < 400; batch++) {
		uint32_t n = 1 + (uint32_t)rand_r(&seed) % 30;
		for (uint32_t k = 0; k < n; k++, next++)
			cr_assert_eq(journal_append(j, ts_of(next), p, payload_of(next, p), NULL),
			             0);
		cr_assert_eq(journal_commit(j), 0);
		uint64_t d;
		cr_assert_eq(journal_poll(j, &d), 0);
		cr_assert_geq(d, durable);
		if (d > durable) {
			/* Reported durable only at the end of a unit that was written. */
			int found = 0;
			for (uint64_t u = 0; u < f.writes && u < 4096; u++)
				found |= f.unit_last[u] == d;
			cr_assert(found, "durable seq %" PRIu64 " is not the end of a written unit",
			          d);
		}
		cr_assert_leq(d, f.last_seq_last, "durable beyond what was submitted");
		durable = d;
	}
	cr_assert_eq(journal_wait(j, next - 1, &durable), 0);
	cr_assert_eq(durable, next - 1);
	cr_assert_eq(f.out_of_order, 0, "units were not written in log order");
	/* Group commit: fewer writes than batches when the disk is the bottleneck is
	 * likely but not guaranteed; never more writes than batches + roll-overs. */
	cr_assert_leq(f.writes, 400 + 64);
	cr_assert_eq(journal_close(j, NULL), 0);
	cr_assert_eq(read_all_ok(), next - 1);
}

Test(journal, oversized_record_refused_journal_continues)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	static uint8_t big[PAYLOAD_MAX + 1];
	cr_assert_eq(journal_append(w.j, 0, big, PAYLOAD_MAX + 1, NULL), -EMSGSIZE);
	write_batches(&w, 100, 10, 3);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), 100);
}

static void torn_then_continue(uint64_t n, void (*damage)(uint64_t n))
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, n, 20, 4);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	damage(n);
	journal_recovery rec;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, n - 1, "%s", rec.note);
	cr_assert_gt(rec.bytes_cut, 0, "a cut must be reported");
	cr_assert_eq(rec.forced, 0);
	cr_assert_neq(strstr(rec.note, "torn tail"), NULL, "%s", rec.note);
	w.next = n;
	w.durable = n - 1;
	write_batches(&w, n + 300, 20, 5);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), n + 300);
}

static void truncate_mid_last(uint64_t n)
{
	char path[256];
	uint64_t off;
	uint32_t len;
	locate(n, path, sizeof path, &off, &len);
	cr_assert_eq(truncate(path, (off_t)(off + 20)), 0);
}

static void zero_end_of_last(uint64_t n)
{
	char path[256];
	uint64_t off;
	uint32_t len;
	locate(n, path, sizeof path, &off, &len);
	static const uint8_t z[64];
	uint32_t k = len < 16 ? len : 16;
	overwrite(path, off + 48 + len - k, z, k);
}

Test(journal, torn_final_record_truncated_is_cut_and_appending_continues)
{
	torn_then_continue(1000, truncate_mid_last);
}

Test(journal, partly_zeroed_final_record_is_cut_and_appending_continues)
{
	torn_then_continue(1001, zero_end_of_last);
}

Test(journal, hole_inside_final_unit_is_a_torn_write)
{
	/* The last unit's sectors reached the disk out of order: one sector of it
	 * is missing, records after it are whole. That unit was never durable, so
	 * recovery must cut it (not refuse) and keep everything before it. */
	journal_options o = small_opts();
	static fault f;
	memset(&f, 0, sizeof f);
	o.fault = hook;
	o.fault_ctx = &f;
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 300, 10, 6);
	uint64_t first = 0, last = 0, uoff = 0;
	uint32_t ulen = 0;
	/* One big batch; retry if a segment roll-over split it. */
	for (int tries = 0; tries < 20 && ulen < 4096; tries++) {
		uint64_t from = w.next;
		uint8_t p[PAYLOAD_MAX];
		for (int k = 0; k < 60; k++, w.next++)
			cr_assert_eq(
			        journal_append(w.j, ts_of(w.next), p, payload_of(w.next, p), NULL),
			        0);
		cr_assert_eq(journal_wait(w.j, w.next - 1, &w.durable), 0);
		if (f.w_first == from) {
			first = f.w_first;
			last = f.w_last;
			uoff = f.w_off;
			ulen = f.w_len;
		}
	}
	cr_assert_geq(ulen, 4096, "could not produce a unit of >= 4 KiB");
	cr_assert_eq(journal_close(w.j, NULL), 0);
	uint64_t s = (uoff + 64 + 511) & ~(uint64_t)511; /* skip a segment header */
	cr_assert_lt(s + 1024, uoff + ulen);
	static const uint8_t z[512];
	overwrite(f.w_path, s, z, sizeof z);
	journal_recovery rec;
	o.fault = NULL;
	journal *j = open_ok(&o, &rec);
	cr_assert_geq(rec.last_seq, first - 1, "%s", rec.note);
	cr_assert_lt(rec.last_seq, last, "%s", rec.note);
	cr_assert_gt(rec.records_cut, 0, "whole records after the hole are cut: %s", rec.note);
	cr_assert_eq(rec.forced, 0);
	cr_assert_eq(journal_close(j, NULL), 0);
	cr_assert_eq(read_all_ok(), rec.last_seq);
}

Test(journal, flipped_bit_in_middle_record_refused_then_forced)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 3000, 20, 8);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char path[256];
	uint64_t off;
	uint32_t len;
	locate(1500, path, sizeof path, &off, &len);
	int fd = open(path, O_RDWR);
	uint8_t byte;
	cr_assert_eq(pread(fd, &byte, 1, (off_t)(off + 48)), 1);
	byte ^= 0x04;
	cr_assert_eq(pwrite(fd, &byte, 1, (off_t)(off + 48)), 1);
	close(fd);

	char err[JOURNAL_ERR_LEN], want[320];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, path), NULL, "no file in: %s", err);
	snprintf(want, sizeof want, "offset %" PRIu64 " ", off);
	cr_assert_neq(strstr(err, want), NULL, "no '%s' in: %s", want, err);
	cr_assert_neq(strstr(err, "seq 1500"), NULL, "no seq in: %s", err);
	/* The reader refuses too, and the refusal changed nothing on disk. */
	int rc;
	char rerr[JOURNAL_ERR_LEN];
	cr_assert_eq(read_all(0, &rc, rerr, sizeof rerr), 1499);
	cr_assert_eq(rc, -EBADMSG);

	o.force_truncate = 1;
	journal_recovery rec;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.forced, 1);
	cr_assert_eq(rec.last_seq, 1499);
	cr_assert_gt(rec.records_cut, 0);
	w.next = 1500;
	w.durable = 1499;
	write_batches(&w, 1600, 20, 9);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), 1600);
}

Test(journal, zeroed_block_in_the_middle_refused)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 3000, 20, 10);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char names[64][64], path[256];
	cr_assert_geq(list_segments(names, 64), 3);
	seg_path(path, sizeof path, names[0]);
	static const uint8_t z[4096];
	overwrite(path, 8192, z, sizeof z);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, path), NULL, "%s", err);
	cr_assert_neq(strstr(err, "follows"), NULL, "%s", err);
}

Test(journal, missing_segment_refused)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 3000, 20, 11);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char names[64][64], path[256];
	cr_assert_geq(list_segments(names, 64), 3);
	seg_path(path, sizeof path, names[1]);
	cr_assert_eq(unlink(path), 0);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, "missing segment"), NULL, "%s", err);
	cr_assert_neq(strstr(err, names[2]), NULL, "%s", err);
	/* Forced: keeps the first segment only. */
	o.force_truncate = 1;
	journal_recovery rec;
	journal *j = open_ok(&o, &rec);
	cr_assert_eq(rec.forced, 1);
	uint64_t second_first = strtoull(names[1], NULL, 10);
	cr_assert_eq(rec.last_seq, second_first - 1, "%s", rec.note);
	cr_assert_eq(journal_close(j, NULL), 0);
	cr_assert_eq(read_all_ok(), second_first - 1);
}

Test(journal, duplicated_segment_refused)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 3000, 20, 12);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char names[64][64], src[256], dst[256], cmd[600];
	cr_assert_geq(list_segments(names, 64), 3);
	seg_path(src, sizeof src, names[1]);
	snprintf(dst, sizeof dst, "%s/shard-%04u/%020u.seg", g_root, SHARD, 3001u);
	snprintf(cmd, sizeof cmd, "cp %s %s", src, dst);
	cr_assert_eq(system(cmd), 0);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, "duplicated"), NULL, "%s", err);
	cr_assert_neq(strstr(err, dst), NULL, "%s", err);
	cr_assert_neq(strstr(err, "seq 3001"), NULL, "%s", err);
}

Test(journal, corrupted_on_the_way_to_disk_is_detected)
{
	journal_options o = small_opts();
	static fault f;
	memset(&f, 0, sizeof f);
	o.fault = hook;
	o.fault_ctx = &f;
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 500, 20, 13);
	f.armed = 1;
	f.kind = JOURNAL_IO_WRITE;
	f.corrupt = 1;
	write_batches(&w, 1000, 20, 14);
	cr_assert(f.fired);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char err[JOURNAL_ERR_LEN];
	o.fault = NULL;
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
}

/* Fails the next I/O of `kind`, checks the failed state, reopens. */
static void fault_case(journal_io_kind kind, int inj_rc, int short_write, journal_sync sync)
{
	journal_options o = small_opts();
	o.sync = sync;
	static fault f;
	memset(&f, 0, sizeof f);
	o.fault = hook;
	o.fault_ctx = &f;
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 700, 30, 15);
	uint64_t durable = w.durable;
	cr_assert_eq(durable, 700);
	f.armed = 1;
	f.kind = kind;
	f.rc = inj_rc;
	f.short_write = short_write;
	uint8_t p[PAYLOAD_MAX];
	int rc = 0;
	uint64_t d = 0;
	/* Batches until the fault fires (a DIRSYNC needs a segment roll-over). */
	for (int batch = 0; batch < 500 && rc == 0; batch++) {
		for (int k = 0; k < 25 && rc == 0; k++, w.next++)
			rc = journal_append(w.j, ts_of(w.next), p, payload_of(w.next, p), NULL);
		if (rc == 0)
			rc = journal_commit(w.j);
		if (rc == 0)
			rc = journal_wait(w.j, w.next - 1, &d);
		if (rc == 0)
			durable = d;
	}
	cr_assert(f.fired, "fault never fired");
	int want = short_write ? -EIO : inj_rc;
	cr_assert_eq(rc, want, "rc %d: %s", rc, journal_error(w.j));
	/* A batch split by a segment roll-over may have made its first part
	 * durable before the failing part: take the journal's word, then check
	 * that the failure names the records right after it. */
	cr_assert_eq(journal_poll(w.j, &d), want);
	cr_assert_geq(d, durable);
	cr_assert_lt(d, w.next - 1);
	durable = d;
	const char *e = journal_error(w.j);
	cr_assert_neq(strstr(e, short_write ? "short write" : strerror(-inj_rc)), NULL, "%s", e);
	cr_assert_neq(strstr(e, ".seg"), NULL, "no file in: %s", e);
	cr_assert_neq(strstr(e, "offset"), NULL, "%s", e);
	char seqs[64];
	snprintf(seqs, sizeof seqs, "seqs %" PRIu64 "..", durable + 1);
	cr_assert_neq(strstr(e, seqs), NULL, "no '%s' in: %s", seqs, e);
	if (sync == JOURNAL_SYNC_NONE_UNSAFE)
		cr_assert_neq(strstr(e, "UNSAFE"), NULL, "%s", e);
	/* Failed: durable stays, everything further is refused. */
	cr_assert_eq(journal_poll(w.j, &d), want);
	cr_assert_eq(d, durable);
	cr_assert_eq(journal_append(w.j, 0, p, 1, NULL), want);
	cr_assert_eq(journal_commit(w.j), want);
	cr_assert_eq(journal_close(w.j, &d), want);
	cr_assert_eq(d, durable);
	/* Reopen: exactly what was reported durable, and appending works again. */
	o.fault = NULL;
	o.sync = JOURNAL_SYNC_DATA;
	journal_recovery rec;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, durable, "%s", rec.note);
	w.next = durable + 1;
	w.durable = durable;
	write_batches(&w, durable + 200, 20, 16);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), durable + 200);
}

Test(journal, short_write_fails_journal)
{
	fault_case(JOURNAL_IO_WRITE, 0, 1, JOURNAL_SYNC_DATA);
}

Test(journal, eio_on_write_fails_journal)
{
	fault_case(JOURNAL_IO_WRITE, -EIO, 0, JOURNAL_SYNC_DATA);
}

Test(journal, enospc_on_write_fails_journal)
{
	fault_case(JOURNAL_IO_WRITE, -ENOSPC, 0, JOURNAL_SYNC_DATA);
}

Test(journal, eio_on_fdatasync_fails_journal)
{
	fault_case(JOURNAL_IO_SYNC, -EIO, 0, JOURNAL_SYNC_DATA);
}

Test(journal, eio_on_directory_fsync_of_new_segment_fails_journal)
{
	fault_case(JOURNAL_IO_DIRSYNC, -EIO, 0, JOURNAL_SYNC_DATA);
}

Test(journal, sync_none_failure_says_unsafe)
{
	fault_case(JOURNAL_IO_WRITE, -EIO, 0, JOURNAL_SYNC_NONE_UNSAFE);
}

/* Random damage to a random segment file: flip, zero, garbage, truncate or
 * delete. */
static void damage_randomly(unsigned *seed)
{
	char names[64][64], path[256];
	int n = list_segments(names, 64);
	if (n == 0)
		return;
	seg_path(path, sizeof path, names[rand_r(seed) % n]);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	uint64_t size = (uint64_t)st.st_size;
	uint64_t off = size > 0 ? (uint64_t)rand_r(seed) % size : 0;
	uint8_t buf[8192];
	switch (rand_r(seed) % 5) {
	case 0: /* bit flip */
		buf[0] = (uint8_t)(1u << (rand_r(seed) % 8));
		{
			int fd = open(path, O_RDWR);
			uint8_t b = 0;
			if (pread(fd, &b, 1, (off_t)off) == 1) {
				b ^= buf[0];
				cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
			}
			close(fd);
		}
		break;
	case 1: /* zeroed range */
		memset(buf, 0, sizeof buf);
		overwrite(path, off, buf, 1 + (size_t)rand_r(seed) % sizeof buf);
		break;
	case 2: /* garbage */
		for (size_t i = 0; i < 512; i++)
			buf[i] = (uint8_t)rand_r(seed);
		overwrite(path, off, buf, 1 + (size_t)rand_r(seed) % 512);
		break;
	case 3:
		cr_assert_eq(truncate(path, (off_t)off), 0);
		break;
	default:
		cr_assert_eq(unlink(path), 0);
		break;
	}
}

Test(journal, random_damage_never_yields_false_records, .timeout = 120)
{
	for (unsigned iter = 0; iter < 60; iter++) {
		unsigned seed = 1000 + iter;
		/* UNSAFE sync is fine here: this test is about the format, not power loss. */
		journal_options o = small_opts();
		o.sync = JOURNAL_SYNC_NONE_UNSAFE;
		writer w = {open_ok(&o, NULL), 1, 0};
		uint64_t n = 1000 + (uint64_t)rand_r(&seed) % 1000;
		write_batches(&w, n, 40, seed);
		cr_assert_eq(journal_close(w.j, NULL), 0);
		int damages = 1 + rand_r(&seed) % 3;
		for (int k = 0; k < damages; k++)
			damage_randomly(&seed);

		/* The reader returns a prefix of true records (read_all checks each
		 * against payload_of), then the end or a refusal; never a crash. */
		int rc;
		char err[JOURNAL_ERR_LEN];
		uint64_t got = read_all(0, &rc, err, sizeof err);
		cr_assert(rc == 0 || rc == -EBADMSG, "seed %u: rc %d %s", 1000 + iter, rc, err);
		cr_assert_leq(got, n, "seed %u", 1000 + iter);
		uint64_t forced = read_all(1, &rc, err, sizeof err);
		cr_assert_eq(rc, 0, "seed %u: forced reader: %d %s", 1000 + iter, rc, err);
		cr_assert_eq(forced, got, "seed %u", 1000 + iter);

		/* A forced open always succeeds and leaves a clean journal holding
		 * exactly those records. */
		o.force_truncate = 1;
		o.sync = JOURNAL_SYNC_DATA;
		journal_recovery rec;
		journal *j = open_ok(&o, &rec);
		cr_assert_eq(rec.last_seq, got, "seed %u: %s", 1000 + iter, rec.note);
		cr_assert_eq(journal_close(j, NULL), 0);
		cr_assert_eq(read_all_ok(), got, "seed %u", 1000 + iter);

		teardown();
		snprintf(g_root, sizeof g_root, "/tmp/bo_journal_XXXXXX");
		cr_assert_not_null(mkdtemp(g_root));
	}
}
