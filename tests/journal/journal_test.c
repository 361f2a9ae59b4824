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
 * The random test damages the files at random (seeded, seed printed on
 * failure) and checks that the reader only ever returns true records and
 * that a forced open always yields a clean journal, except that a missing
 * first segment is refused even when forced (a cut would keep nothing).
 *
 * Reading from a sequence, pruning and repair: a reader from A is checked
 * record by record to give exactly A+1..end; that it skips whole segments is
 * proved by damaging a segment it must not open (read still succeeds) and
 * that it validates its first segment by damaging a record before A there
 * (refused). Prune results are compared with a two-line model of its rule
 * over the file names; the open journal's last segment must survive a prune
 * at its durable seq and keep taking appends. The pruned journal reopens
 * with after_seq and continues sequence and hash chain (a reader from the
 * first remaining segment re-checks every chain link). truncate_at is run on
 * a journal with a flipped bit that journal_open refuses: each backup file
 * is compared byte for byte with the file contents saved just before, kept
 * bytes unchanged, cut bytes zero, and the journal opens without force and
 * appends. Refusals (beyond the end, seq 0, pruned start, bad backup dir,
 * existing backup) must leave every byte as it was.
 *
 * Roll-over off the writer: a storage observer (base/fsio.h) sees every
 * file-system change with the thread that made it; while the test thread
 * appends across many segments, no file is created, sized or removed on it
 * (the spare thread does that), every segment gets its name by a rename of
 * the spare, reported before the segment's first write, and a failing
 * rename fails the journal like any other I/O of its chain. A spare left
 * behind (a copy of a real segment, or the last segment under the spare's
 * name as after a crash that lost its rename) is ignored by the reader,
 * recovery, prune and the segment listing, and gone after journal_close.
 *
 * Two units in flight: units are made one per batch (commit, then wait), so
 * their records are known; a crash that tore the older of two units in
 * flight is made by zeroing records of the second-to-last unit (some, or
 * all of them) with the last unit intact: recovery must cut (not refuse)
 * and keep exactly the records before the hole. Damage followed by two
 * whole units (a third unit) and damage in a segment's opening unit
 * followed by another unit (a unit that opens a segment is alone in
 * flight) must be refused.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsio.h"
#include "journal/journal.h"
#include "journal/maint.h"
#include "tests/support/tmpdir.h"
#include "tests/support/uring_skip.h"

#define SHARD 3u
#define SEG_BYTES (64u << 10)
#define BUF_BYTES (16u << 10)
#define PAYLOAD_MAX 4096u

static char g_root[64];

static void make_root(void)
{
	int rc = tmpdir_make(g_root, sizeof g_root, "bo_journal");
	cr_assert_eq(rc, 0, "mkdtemp: %s", strerror(-rc));
}

static void setup(void)
{
	uring_skip_unless_available();
	make_root();
}

static void teardown(void)
{
	if (g_root[0] != '\0')
		tmpdir_remove(g_root);
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
	int n = snprintf(out, len, "%s/shard-%04u/%s", g_root, SHARD, name);
	cr_assert(n > 0 && (size_t)n < len, "path too long for %s", name);
}

static int open_fails(const journal_options *o, char *err, size_t err_len)
{
	journal *j = NULL;
	int rc = journal_open(g_root, SHARD, o, &j, NULL, err, err_len);
	cr_assert_null(j);
	return rc;
}

/* Reads the records after `after` and checks them: consecutive from after + 1,
 * each against payload_of(). Returns how many; rc of the end in *end_rc. */
static uint64_t read_from(uint64_t after, int force, int *end_rc, char *err, size_t err_len)
{
	journal_options o = small_opts();
	o.force_truncate = force;
	journal_reader *r;
	int rc = journal_reader_open_from(g_root, SHARD, &o, after, &r, err, err_len);
	cr_assert_eq(rc, 0, "journal_reader_open_from: %s", err);
	journal_record x;
	uint64_t n = 0;
	uint8_t want[PAYLOAD_MAX];
	while ((rc = journal_reader_next(r, &x)) == 1) {
		n++;
		cr_assert_eq(x.seq, after + n, "after %" PRIu64 ": got seq %" PRIu64, after, x.seq);
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

static uint64_t read_from_ok(uint64_t after)
{
	int rc;
	char err[JOURNAL_ERR_LEN];
	uint64_t n = read_from(after, 0, &rc, err, sizeof err);
	cr_assert_eq(rc, 0, "reader from %" PRIu64 ": %d %s", after, rc, err);
	return n;
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x04;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* The whole file, malloc'ed (caller frees); its size in *len. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	uint8_t *b = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(b);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, b, (size_t)st.st_size, 0), (ssize_t)st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static uint64_t first_of(const char *name)
{
	return strtoull(name, NULL, 10);
}

/* Files in dir (any name), sorted; returns how many. */
static int list_dir(const char *dir, char names[][64], int max)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s", dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		cr_assert_lt(n, max);
		size_t l = strlen(de->d_name);
		cr_assert_lt(l, 64);
		memcpy(names[n++], de->d_name, l + 1);
	}
	closedir(d);
	qsort(names, (size_t)n, 64, cmp_name);
	return n;
}

static void write_closed(uint64_t n, unsigned seed)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, n, 30, seed);
	uint64_t d;
	cr_assert_eq(journal_close(w.j, &d), 0);
	cr_assert_eq(d, n);
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
		o.force_truncate = 1;
		o.sync = JOURNAL_SYNC_DATA;
		char names[64][64];
		int segs = list_segments(names, 64);
		if (segs > 0 && strtoull(names[0], NULL, 10) != 1) {
			/* The first segment was deleted: a missing head is refused even
			 * when forced (a cut would delete every good record), and the
			 * refusal changes nothing. */
			cr_assert_eq(rc, -EBADMSG, "seed %u: %d %s", 1000 + iter, rc, err);
			cr_assert_neq(strstr(err, "missing segment"), NULL, "seed %u: %s",
			              1000 + iter, err);
			cr_assert_eq(got, 0, "seed %u", 1000 + iter);
			cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "seed %u: %s",
			             1000 + iter, err);
			cr_assert_eq(list_segments(names, 64), segs, "seed %u", 1000 + iter);
			teardown();
			make_root();
			continue;
		}
		cr_assert_eq(rc, 0, "seed %u: forced reader: %d %s", 1000 + iter, rc, err);
		cr_assert_eq(forced, got, "seed %u", 1000 + iter);

		/* Otherwise a forced open always succeeds and leaves a clean journal
		 * holding exactly those records. */
		journal_recovery rec;
		journal *j = open_ok(&o, &rec);
		cr_assert_eq(rec.last_seq, got, "seed %u: %s", 1000 + iter, rec.note);
		cr_assert_eq(journal_close(j, NULL), 0);
		cr_assert_eq(read_all_ok(), got, "seed %u", 1000 + iter);

		teardown();
		make_root();
	}
}

/* ---- Reading from a sequence, pruning, listing, repair ----------------------- */

Test(journal, reader_from_skips_older_segments_and_checks_its_first)
{
	write_closed(5000, 20);
	char names[64][64], path[256];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 6, "only %d segments", n);
	uint64_t f3 = first_of(names[3]), f4 = first_of(names[4]);
	uint64_t a = f3 + 10;
	cr_assert_lt(a, f4 - 1);
	cr_assert_eq(read_from_ok(a), 5000 - a);
	cr_assert_eq(read_from_ok(f3 - 1), 5000 - (f3 - 1)); /* starts exactly at a segment */
	cr_assert_eq(read_from_ok(f3), 5000 - f3);
	cr_assert_eq(read_from_ok(4999), 1);
	cr_assert_eq(read_from_ok(5000), 0);

	/* Damage in segment 1: the plain reader refuses, a reader from a is
	 * unaffected because it never opens segment 1 (whole segments skipped). */
	uint64_t off, off3;
	uint32_t len;
	char path3[256];
	locate(f3 + 2, path3, sizeof path3, &off3, &len); /* before any damage */
	locate(first_of(names[1]) + 5, path, sizeof path, &off, &len);
	flip_byte(path, off + 48);
	int rc;
	char err[JOURNAL_ERR_LEN];
	read_all(0, &rc, err, sizeof err);
	cr_assert_eq(rc, -EBADMSG, "%s", err);
	cr_assert_eq(read_from_ok(a), 5000 - a);

	/* Damage before a inside the segment it starts in: it is still
	 * validated, refused, and nothing after it is handed out. */
	flip_byte(path3, off3 + 48);
	uint64_t got = read_from(a, 0, &rc, err, sizeof err);
	cr_assert_eq(rc, -EBADMSG, "%s", err);
	cr_assert_eq(got, 0);
	char want[64];
	snprintf(want, sizeof want, "expected seq %" PRIu64, f3 + 2);
	cr_assert_neq(strstr(err, want), NULL, "no '%s' in: %s", want, err);

	/* Asking for records after the end is a short log: refused. */
	cr_assert_eq(read_from(6000, 0, &rc, err, sizeof err), 0);
	cr_assert_eq(rc, -EBADMSG);
	cr_assert_neq(strstr(err, "ends at seq 5000"), NULL, "%s", err);
}

typedef struct seglist {
	int calls;
	int stop_after; /* 0: never stop */
	uint64_t first[64];
	uint64_t last_max[64];
	uint64_t size[64];
	char path[64][256];
} seglist;

static int collect(void *ctx, const journal_segment_info *info)
{
	seglist *l = ctx;
	cr_assert_lt(l->calls, 64);
	l->first[l->calls] = info->first_seq;
	l->last_max[l->calls] = info->last_seq_max;
	l->size[l->calls] = info->size_bytes;
	snprintf(l->path[l->calls], sizeof l->path[0], "%s", info->path);
	l->calls++;
	return l->stop_after != 0 && l->calls == l->stop_after ? -ECANCELED : 0;
}

Test(journal, prune_then_read_from_the_middle)
{
	write_closed(5000, 21);
	char names[64][64], after[64][64];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 6);
	const uint64_t u = 2500;
	/* Model of the rule: segment i goes iff segment i + 1 starts at or before u. */
	int expect = 0;
	while (expect + 1 < n && first_of(names[expect + 1]) <= u)
		expect++;
	cr_assert_gt(expect, 1);
	cr_assert_lt(expect, n - 1);
	char err[JOURNAL_ERR_LEN] = "";
	cr_assert_eq(journal_prune(g_root, SHARD, u, err, sizeof err), expect, "%s", err);
	int m = list_segments(after, 64);
	cr_assert_eq(m, n - expect);
	for (int i = 0; i < m; i++)
		cr_assert_str_eq(after[i], names[expect + i]);
	uint64_t f = first_of(after[0]);
	cr_assert_leq(f, u);
	cr_assert_gt(first_of(after[1]), u);

	/* The listing agrees with the directory. */
	static seglist l;
	memset(&l, 0, sizeof l);
	cr_assert_eq(journal_segments(g_root, SHARD, collect, &l, err, sizeof err), m, "%s", err);
	cr_assert_eq(l.calls, m);
	for (int i = 0; i < m; i++) {
		char path[256];
		seg_path(path, sizeof path, after[i]);
		struct stat st;
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_str_eq(l.path[i], path);
		cr_assert_eq(l.first[i], first_of(after[i]));
		cr_assert_eq(l.size[i], (uint64_t)st.st_size);
		cr_assert_eq(l.last_max[i], i + 1 < m ? first_of(after[i + 1]) - 1 : UINT64_MAX);
	}

	/* Readable from u, and from anywhere down to f - 1; not from f - 2 nor seq 1. */
	cr_assert_eq(read_from_ok(u), 5000 - u);
	cr_assert_eq(read_from_ok(f - 1), 5000 - (f - 1));
	int rc;
	cr_assert_eq(read_from(f - 2, 0, &rc, err, sizeof err), 0);
	cr_assert_eq(rc, -EBADMSG);
	cr_assert_neq(strstr(err, "missing segment"), NULL, "%s", err);
	cr_assert_eq(read_all(1, &rc, err, sizeof err), 0);
	cr_assert_eq(rc, -EBADMSG, "forced reader of a pruned journal from seq 1: %s", err);

	/* Pruning again at the same point removes nothing. */
	cr_assert_eq(journal_prune(g_root, SHARD, u, err, sizeof err), 0, "%s", err);
	cr_assert_eq(list_segments(after, 64), m);
}

Test(journal, prune_never_removes_the_active_or_last_segment)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 4000, 30, 22);
	char names[64][64], after[64][64];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 4);
	char err[JOURNAL_ERR_LEN] = "";
	/* Below the second segment's start: nothing goes. */
	cr_assert_eq(journal_prune(g_root, SHARD, first_of(names[1]) - 1, err, sizeof err), 0);
	/* Everything durable, journal open: all but the segment being appended to. */
	cr_assert_eq(journal_prune(g_root, SHARD, w.durable, err, sizeof err), n - 1, "%s", err);
	cr_assert_eq(list_segments(after, 64), 1);
	cr_assert_str_eq(after[0], names[n - 1]);
	cr_assert_eq(journal_prune(g_root, SHARD, UINT64_MAX, err, sizeof err), 0, "%s", err);
	/* The writer goes on appending into it and across new segments. */
	uint64_t u = w.durable;
	write_batches(&w, 5000, 30, 23);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_from_ok(u), 5000 - u);
	cr_assert_gt(list_segments(after, 64), 1);
}

Test(journal, prune_refuses_when_the_new_first_segment_is_damaged)
{
	write_closed(3000, 24);
	char names[64][64], path[256];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 4);
	seg_path(path, sizeof path, names[2]);
	flip_byte(path, 64 + 48); /* first record's payload */
	char err[JOURNAL_ERR_LEN] = "";
	cr_assert_eq(journal_prune(g_root, SHARD, first_of(names[2]), err, sizeof err), -EBADMSG);
	cr_assert_neq(strstr(err, path), NULL, "%s", err);
	cr_assert_eq(list_segments(names, 64), n);
	flip_byte(path, 64 + 48);
	flip_byte(path, 20); /* header: first_seq */
	cr_assert_eq(journal_prune(g_root, SHARD, first_of(names[2]), err, sizeof err), -EBADMSG);
	cr_assert_eq(list_segments(names, 64), n);
	/* A damaged segment further on is not prune's business: prune to before it. */
	cr_assert_eq(journal_prune(g_root, SHARD, first_of(names[1]), err, sizeof err), 1, "%s",
	             err);
}

Test(journal, pruned_journal_reopens_and_continues_sequence_and_chain)
{
	write_closed(3000, 25);
	char err[JOURNAL_ERR_LEN] = "";
	int removed = journal_prune(g_root, SHARD, 2000, err, sizeof err);
	cr_assert_gt(removed, 0, "%d %s", removed, err);
	char names[64][64];
	cr_assert_geq(list_segments(names, 64), 2);
	uint64_t f = first_of(names[0]);
	cr_assert_gt(f, 1);

	/* From seq 1 (after_seq 0) it is a missing head: refused, forced or not,
	 * and nothing is deleted. */
	journal_options o = small_opts();
	int n = list_segments(names, 64);
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG);
	cr_assert_neq(strstr(err, "missing segment"), NULL, "%s", err);
	o.force_truncate = 1;
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG);
	cr_assert_eq(list_segments(names, 64), n);
	o.force_truncate = 0;
	/* A caller holding more than the journal has is refused too. */
	o.after_seq = 3001;
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG);
	cr_assert_neq(strstr(err, "ends at seq 3000"), NULL, "%s", err);

	o.after_seq = 2000;
	journal_recovery rec;
	writer w = {open_ok(&o, &rec), 3001, 3000};
	cr_assert_eq(rec.last_seq, 3000, "%s", rec.note);
	cr_assert_eq(rec.first_seq, f, "validation starts at the first segment <= 2000");
	cr_assert_eq(rec.records, 3000 - f + 1);
	cr_assert_eq(rec.bytes_cut, 0);
	write_batches(&w, 3600, 30, 26); /* crosses into new segments: seeds chained */
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_gt(list_segments(names, 64), n);
	/* The chain is checked from f's seed through the reopen and the new
	 * segments' seeds. */
	cr_assert_eq(read_from_ok(f - 1), 3600 - (f - 1));
	cr_assert_eq(read_from_ok(2000), 1600);
	/* An open starting right at the first segment (after_seq f - 1) works too. */
	o.after_seq = f - 1;
	journal *j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, 3600);
	cr_assert_eq(journal_close(j, NULL), 0);
	/* allow_pruned: a caller that does not know its snapshot seq yet opens
	 * from the first segment and learns where the journal starts. */
	o.after_seq = 0;
	o.allow_pruned = 1;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.first_seq, f);
	cr_assert_eq(rec.last_seq, 3600);
	w.next = 3601;
	w.durable = 3600;
	write_batches(&w, 3700, 30, 32);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	journal_reader *r;
	cr_assert_eq(journal_reader_open(g_root, SHARD, &o, &r, err, sizeof err), 0, "%s", err);
	journal_record x;
	cr_assert_eq(journal_reader_next(r, &x), 1, "%s", journal_reader_error(r));
	cr_assert_eq(x.seq, f);
	journal_reader_close(r);
	cr_assert_eq(read_from_ok(f - 1), 3700 - (f - 1));
}

Test(journal, truncate_at_repairs_a_corrupt_journal_with_an_exact_backup)
{
	write_closed(3000, 27);
	char names[64][64], path[256], path1[256];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 4);
	uint64_t off, off1;
	uint32_t len, len1;
	locate(1500, path, sizeof path, &off, &len);
	locate(1499, path1, sizeof path1, &off1, &len1);
	uint64_t cut = off1 + ((48u + len1 + 7u) & ~7u); /* end of record 1499 */
	flip_byte(path, off + 48);
	journal_options o = small_opts();
	char err[JOURNAL_ERR_LEN] = "";
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);

	/* The files as they are before the repair. */
	static uint8_t *before[64];
	static size_t before_len[64];
	int k1 = -1;
	for (int i = 0; i < n; i++) {
		char p[256];
		seg_path(p, sizeof p, names[i]);
		before[i] = slurp(p, &before_len[i]);
		if (strcmp(p, path1) == 0)
			k1 = i;
	}
	cr_assert_geq(k1, 0);
	cr_assert_lt(k1, n - 1, "record 1499 in the last segment: later segments untested");

	char bak[128];
	snprintf(bak, sizeof bak, "%s/backup", g_root);
	cr_assert_eq(mkdir(bak, 0755), 0);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1500, bak, err, sizeof err), 0, "%s", err);
	cr_assert_neq(strstr(err, "truncated at seq 1500"), NULL, "%s", err);

	/* Kept: segments before k1 untouched; k1 up to the cut, zero after it. */
	char after[64][64];
	cr_assert_eq(list_segments(after, 64), k1 + 1);
	for (int i = 0; i <= k1; i++) {
		char p[256];
		size_t l;
		seg_path(p, sizeof p, after[i]);
		uint8_t *now = slurp(p, &l);
		cr_assert_eq(l, before_len[i]);
		size_t same = i < k1 ? l : (size_t)cut;
		cr_assert_eq(memcmp(now, before[i], same), 0, "segment %d changed before the cut",
		             i);
		for (size_t b = same; b < l; b++)
			cr_assert_eq(now[b], 0, "segment %d byte %zu not zeroed", i, b);
		free(now);
	}
	/* Backup: the cut tail of k1 (when it held anything) and every later
	 * segment, byte for byte, and nothing else. */
	char files[64][64];
	int nf = list_dir(bak, files, 64);
	int expect_files = 0;
	int tail_nonzero = 0;
	for (size_t b = (size_t)cut; b < before_len[k1]; b++)
		tail_nonzero |= before[k1][b] != 0;
	if (tail_nonzero) {
		char want[64], p[256];
		snprintf(want, sizeof want, "%s.from-%020" PRIu64, names[k1], cut);
		snprintf(p, sizeof p, "%s/%s", bak, want);
		size_t l;
		uint8_t *got = slurp(p, &l);
		cr_assert_eq(l, before_len[k1] - cut);
		cr_assert_eq(memcmp(got, before[k1] + cut, l), 0, "tail backup differs");
		free(got);
		expect_files++;
	}
	cr_assert(tail_nonzero || strcmp(path, path1) != 0, "1500's own segment must be backed up");
	for (int i = k1 + 1; i < n; i++) {
		char p[256];
		size_t l;
		snprintf(p, sizeof p, "%s/%s", bak, names[i]);
		uint8_t *got = slurp(p, &l);
		cr_assert_eq(l, before_len[i]);
		cr_assert_eq(memcmp(got, before[i], l), 0, "backup of %s differs", names[i]);
		free(got);
		expect_files++;
	}
	cr_assert_eq(nf, expect_files);
	for (int i = 0; i < n; i++)
		free(before[i]);

	/* The journal now opens cleanly, without force, and appends. */
	journal_recovery rec;
	writer w = {open_ok(&o, &rec), 1500, 1499};
	cr_assert_eq(rec.last_seq, 1499, "%s", rec.note);
	cr_assert_eq(rec.bytes_cut, 0, "%s", rec.note);
	cr_assert_eq(rec.forced, 0);
	write_batches(&w, 1700, 30, 28);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), 1700);

	/* A second repair never overwrites an earlier backup. */
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1500, bak, err, sizeof err), -EEXIST, "%s",
	             err);
	cr_assert_eq(read_all_ok(), 1700);
}

Test(journal, truncate_at_refuses_what_it_cannot_do_and_changes_nothing)
{
	write_closed(1000, 29);
	char names[64][64], bak[128], err[JOURNAL_ERR_LEN] = "", files[8][64];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 2);
	char last[256];
	seg_path(last, sizeof last, names[n - 1]);
	static uint8_t *before[64];
	static size_t before_len[64];
	for (int i = 0; i < n; i++) {
		char p[256];
		seg_path(p, sizeof p, names[i]);
		before[i] = slurp(p, &before_len[i]);
	}
	snprintf(bak, sizeof bak, "%s/backup", g_root);
	cr_assert_eq(mkdir(bak, 0755), 0);

	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1002, bak, err, sizeof err), -ERANGE);
	cr_assert_neq(strstr(err, "ends at seq 1000"), NULL, "%s", err);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 5000, bak, err, sizeof err), -ERANGE);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 0, bak, err, sizeof err), -ERANGE);
	char shard_dir[128];
	snprintf(shard_dir, sizeof shard_dir, "%s/shard-%04u", g_root, SHARD);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 500, shard_dir, err, sizeof err), -EINVAL,
	             "%s", err);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 500, last, err, sizeof err), -EINVAL);
	cr_assert_eq(list_dir(bak, files, 8), 0);
	cr_assert_eq(list_segments(names, 64), n);
	for (int i = 0; i < n; i++) {
		char p[256];
		size_t l;
		seg_path(p, sizeof p, names[i]);
		uint8_t *now = slurp(p, &l);
		cr_assert(l == before_len[i] && memcmp(now, before[i], l) == 0,
		          "refusals changed %s", names[i]);
		free(now);
		free(before[i]);
	}
	cr_assert_eq(read_all_ok(), 1000);

	/* At the end: nothing to cut, nothing to back up. */
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1001, bak, err, sizeof err), 0, "%s", err);
	cr_assert_eq(list_dir(bak, files, 8), 0);
	cr_assert_eq(read_all_ok(), 1000);

	/* Pruned: the first kept record is the limit. */
	cr_assert_geq(n, 2);
	cr_assert_eq(journal_prune(g_root, SHARD, first_of(names[n - 1]), err, sizeof err), n - 1,
	             "%s", err);
	cr_assert_eq(list_segments(names, 64), 1);
	uint64_t f = first_of(names[0]);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, f, bak, err, sizeof err), -ERANGE);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1, bak, err, sizeof err), -ERANGE);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, f + 1, bak, err, sizeof err), 0, "%s", err);
	cr_assert_eq(list_dir(bak, files, 8), 1);
	journal_options o = small_opts();
	o.after_seq = f;
	journal_recovery rec;
	journal *j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, f);
	cr_assert_eq(journal_close(j, NULL), 0);
}

Test(journal, truncate_at_seq_1_backs_up_everything)
{
	write_closed(2000, 30);
	char names[64][64], bak[128], err[JOURNAL_ERR_LEN] = "", files[64][64];
	int n = list_segments(names, 64);
	snprintf(bak, sizeof bak, "%s/backup", g_root);
	cr_assert_eq(mkdir(bak, 0755), 0);
	cr_assert_eq(journal_truncate_at(g_root, SHARD, 1, bak, err, sizeof err), 0, "%s", err);
	cr_assert_eq(list_segments(names, 64), 0);
	cr_assert_eq(list_dir(bak, files, 64), n);
	/* The backups are the journal: copied back, they read as before. */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cp %s/*.seg %s/shard-%04u/", bak, g_root, SHARD);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(read_all_ok(), 2000);
}

Test(journal, segments_listing_stops_on_request_and_reports_missing_shard)
{
	write_closed(2000, 31);
	static seglist l;
	memset(&l, 0, sizeof l);
	l.stop_after = 2;
	char err[JOURNAL_ERR_LEN] = "";
	cr_assert_eq(journal_segments(g_root, SHARD, collect, &l, err, sizeof err), -ECANCELED);
	cr_assert_eq(l.calls, 2);
	cr_assert_eq(l.first[0], 1);
	cr_assert_eq(l.last_max[0], l.first[1] - 1);
	memset(&l, 0, sizeof l);
	cr_assert_eq(journal_segments(g_root, SHARD + 1, collect, &l, err, sizeof err), -ENOENT);
	cr_assert_eq(l.calls, 0);
	cr_assert_neq(strstr(err, "shard-0004"), NULL, "%s", err);
}

/* Segment file names: the one parser that the journal and the operator
 * tools share. Exactly 20 decimal digits and ".seg"; nothing else. */
Test(journal, segment_names)
{
	uint64_t v = 0;
	cr_assert_eq(journal_segment_name_parse("00000000000000000001.seg", &v), 1);
	cr_assert_eq(v, 1);
	cr_assert_eq(journal_segment_name_parse("18446744073709551615.seg", &v), 1);
	cr_assert_eq(v, UINT64_MAX);
	const char *bad[] = {
	        "0000000000000000001.seg",   /* 19 digits */
	        "000000000000000000001.seg", /* 21 digits */
	        "0000000000000000000a.seg",
	        "+0000000000000000001.seg",
	        " 0000000000000000001.seg",
	        "18446744073709551616.seg", /* 2^64 */
	        "00000000000000000001.SEG",
	        "00000000000000000001.seg.tmp",
	        "00000000000000000001",
	        "snap-00000000000000000001.snap",
	        "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		cr_assert_eq(journal_segment_name_parse(bad[i], &v), 0, "accepted '%s'", bad[i]);
		cr_assert_eq(v, 7, "'%s' wrote its output", bad[i]);
	}
}

/* ==== Roll-over off the writer ================================================ */

Test(journal, eio_on_rename_of_the_spare_fails_journal)
{
	fault_case(JOURNAL_IO_RENAME, -EIO, 0, JOURNAL_SYNC_DATA);
}

#define SPARE_FILE "segment.spare" /* journal.c's SPARE_NAME */

typedef struct fs_watch {
	pthread_t writer;
	pthread_mutex_t mu;
	uint64_t on_writer[BO_FS_UNLINK + 1]; /* events by op, made on the writer */
	uint64_t renames;                     /* spare -> segment */
	uint64_t bad_renames;                 /* anything else renamed */
	uint64_t writes_before_rename;        /* a write to a segment not yet named */
	char named[256][64];                  /* segment names the renames made */
	uint32_t n_named;
} fs_watch;

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');
	return b != NULL ? b + 1 : path;
}

static void watch_fs(void *ctx, const bo_fs_event *ev)
{
	fs_watch *w = ctx;
	pthread_mutex_lock(&w->mu);
	if (pthread_equal(pthread_self(), w->writer))
		w->on_writer[ev->op]++;
	if (ev->op == BO_FS_RENAME) {
		if (strcmp(base_name(ev->path), SPARE_FILE) == 0 && w->n_named < 256 &&
		    strlen(base_name(ev->path2)) < 64) {
			w->renames++;
			snprintf(w->named[w->n_named++], 64, "%s", base_name(ev->path2));
		} else {
			w->bad_renames++;
		}
	}
	if (ev->op == BO_FS_WRITE) {
		int known = 0;
		for (uint32_t i = 0; i < w->n_named && !known; i++)
			known = strcmp(w->named[i], base_name(ev->path)) == 0;
		w->writes_before_rename += !known;
	}
	pthread_mutex_unlock(&w->mu);
}

Test(journal, roll_over_creates_no_file_on_the_writer)
{
	journal_options o = small_opts();
	static fs_watch w;
	memset(&w, 0, sizeof w);
	w.writer = pthread_self();
	pthread_mutex_init(&w.mu, NULL);
	journal *j = open_ok(&o, NULL); /* opening may create (the directory) */
	bo_fs_observe(watch_fs, &w);
	writer wr = {j, 1, 0};
	write_batches(&wr, 4000, 40, 21);
	bo_fs_observe(NULL, NULL);
	uint64_t writer_fs = w.on_writer[BO_FS_CREATE] + w.on_writer[BO_FS_SIZE] +
	                     w.on_writer[BO_FS_TRUNCATE] + w.on_writer[BO_FS_ZERO] +
	                     w.on_writer[BO_FS_MKDIR] + w.on_writer[BO_FS_UNLINK];
	cr_assert_eq(writer_fs, 0,
	             "file-system work on the writer: %" PRIu64 " creates, %" PRIu64
	             " fallocates, %" PRIu64 " unlinks",
	             w.on_writer[BO_FS_CREATE], w.on_writer[BO_FS_SIZE], w.on_writer[BO_FS_UNLINK]);
	cr_assert_eq(w.bad_renames, 0);
	cr_assert_eq(w.writes_before_rename, 0, "a segment written before it got its name");
	cr_assert_eq(journal_close(j, NULL), 0);
	char names[64][64];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 5, "only %d segments: roll-over untested", n);
	/* Every segment got its name from the spare, in log order. */
	cr_assert_eq(w.renames, (uint64_t)n);
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(w.named[i], names[i]);
	cr_assert_eq(read_all_ok(), 4000);
}

static int spare_exists(void)
{
	char p[256];
	seg_path(p, sizeof p, SPARE_FILE);
	return access(p, F_OK) == 0;
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(in >= 0 && out >= 0, "copy %s to %s", from, to);
	char b[4096];
	ssize_t n;
	while ((n = read(in, b, sizeof b)) > 0)
		cr_assert_eq(write(out, b, (size_t)n), n);
	cr_assert_eq(n, 0);
	close(in);
	close(out);
}

static int count_segment_cb(void *ctx, const journal_segment_info *info)
{
	(void)info;
	(*(int *)ctx)++;
	return 0;
}

Test(journal, a_spare_left_behind_is_ignored_and_removed)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_batches(&w, 3000, 40, 22);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert(!spare_exists(), "journal_close leaves no spare");
	char names[64][64], last[256], spare[256];
	int n = list_segments(names, 64);
	cr_assert_geq(n, 3);
	seg_path(last, sizeof last, names[n - 1]);
	seg_path(spare, sizeof spare, SPARE_FILE);

	/* A spare holding a whole valid segment (header and records): nobody
	 * reads it, whatever it holds. */
	copy_file(last, spare);
	cr_assert_eq(read_all_ok(), 3000);
	int listed = 0;
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(journal_segments(g_root, SHARD, count_segment_cb, &listed, err, sizeof err), n,
	             "%s", err);
	cr_assert_eq(listed, n);
	cr_assert_eq(journal_prune(g_root, SHARD, 1, err, sizeof err), 0, "%s", err);
	journal_recovery rec;
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, 3000);
	cr_assert_eq(rec.bytes_cut, 0, "%s", rec.note);
	write_batches(&w, 3500, 40, 23);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert(!spare_exists(), "the old spare is gone after close");
	cr_assert_eq(read_all_ok(), 3500);

	/* A crash after the last segment's first unit was written but before its
	 * rename was durable: its records are under the spare's name (never
	 * acknowledged). The log ends at the segment before; appending goes on
	 * from there and the segment gets its name again. */
	n = list_segments(names, 64);
	seg_path(last, sizeof last, names[n - 1]);
	uint64_t first_lost = strtoull(names[n - 1], NULL, 10);
	cr_assert_eq(rename(last, spare), 0);
	w.j = open_ok(&o, &rec);
	cr_assert_eq(rec.last_seq, first_lost - 1);
	cr_assert_eq(rec.bytes_cut, 0, "%s", rec.note);
	w.next = first_lost;
	w.durable = first_lost - 1;
	write_batches(&w, 4000, 40, 24);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert(!spare_exists());
	cr_assert_eq(read_all_ok(), 4000);
	cr_assert_eq(list_segments(names, 64) > n - 1, 1);
	cr_assert_eq(access(last, F_OK), 0, "%s named again", names[n - 1]);
}

/* ==== Two units in flight: what recovery accepts after a hole ================ */

/* Appends `units` batches of `per` records, each committed and waited for,
 * so that each is one unit. */
static void write_units(writer *w, uint32_t units, uint32_t per)
{
	uint8_t p[PAYLOAD_MAX];
	for (uint32_t u = 0; u < units; u++) {
		for (uint32_t k = 0; k < per; k++, w->next++)
			cr_assert_eq(journal_append(w->j, ts_of(w->next), p, payload_of(w->next, p),
			                            NULL),
			             0, "%s", journal_error(w->j));
		cr_assert_eq(journal_commit(w->j), 0, "%s", journal_error(w->j));
		cr_assert_eq(journal_wait(w->j, w->next - 1, &w->durable), 0, "%s",
		             journal_error(w->j));
	}
}

/* Zeroes records first..last (as if their sectors never reached the disk). */
static void zero_records(uint64_t first, uint64_t last)
{
	static const uint8_t zeros[48 + PAYLOAD_MAX + 8];
	enum {
		MAX = 16
	};
	char path[MAX][256];
	uint64_t off[MAX];
	uint32_t len[MAX];
	cr_assert_lt(last - first, MAX);
	for (uint64_t s = first; s <= last; s++) /* all found before any is zeroed */
		locate(s, path[s - first], sizeof path[0], &off[s - first], &len[s - first]);
	for (uint64_t s = first; s <= last; s++)
		overwrite(path[s - first], off[s - first], zeros, (48 + len[s - first] + 7) & ~7u);
}

enum {
	PER = 5
};

static void torn_older_of_two_is_cut(uint64_t zero_from_k, uint64_t zero_to_k)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_units(&w, 40, PER); /* seqs 1..200, all in the first segment */
	cr_assert_eq(journal_close(w.j, NULL), 0);
	char names[4][64];
	cr_assert_eq(list_segments(names, 4), 1, "the units must share one segment");
	/* Unit 39 (seqs 191..195) torn, unit 40 (196..200) whole. */
	uint64_t u39 = 38 * PER + 1;
	zero_records(u39 + zero_from_k, u39 + zero_to_k);
	journal_recovery rec;
	w.j = open_ok(&o, &rec); /* not refused */
	cr_assert_eq(rec.last_seq, u39 + zero_from_k - 1, "%s", rec.note);
	cr_assert_eq(rec.forced, 0);
	cr_assert_eq(rec.records_cut, (PER - 1 - zero_to_k) + PER, "%s", rec.note);
	cr_assert_neq(strstr(rec.note, "torn tail"), NULL, "%s", rec.note);
	/* And the journal goes on from there. */
	w.next = rec.last_seq + 1;
	w.durable = rec.last_seq;
	write_batches(&w, 300, 20, 31);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(read_all_ok(), 300);
}

Test(journal, two_in_flight_older_torn_in_the_middle_is_cut_not_refused)
{
	torn_older_of_two_is_cut(2, 2);
}

Test(journal, two_in_flight_older_never_written_is_cut_not_refused)
{
	torn_older_of_two_is_cut(0, PER - 1);
}

Test(journal, a_third_unit_after_a_hole_is_corruption)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	write_units(&w, 40, PER);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	/* Unit 38 damaged, units 39 and 40 whole after it. */
	uint64_t bad = 37 * PER + 3;
	zero_records(bad, bad);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, "third unit"), NULL, "%s", err);
	char want[64];
	snprintf(want, sizeof want, "expected seq %" PRIu64, bad);
	cr_assert_neq(strstr(err, want), NULL, "%s", err);
	cr_assert_eq(read_all(0, &(int){0}, err, sizeof err), bad - 1);
}

Test(journal, a_unit_beside_a_segment_opening_unit_is_corruption)
{
	journal_options o = small_opts();
	writer w = {open_ok(&o, NULL), 1, 0};
	char names[8][64];
	while (list_segments(names, 8) < 2)
		write_units(&w, 1, PER);
	/* The last batch was split by the roll-over: its second part opened
	 * segment 2 as a unit of its own. One more unit after it. */
	uint64_t opening = strtoull(names[1], NULL, 10);
	uint64_t next_unit = w.next;
	cr_assert_geq(next_unit - opening, 3, "an opening unit of 3+ records (sizes are fixed)");
	write_units(&w, 1, PER);
	cr_assert_eq(journal_close(w.j, NULL), 0);
	cr_assert_eq(list_segments(names, 8), 2);
	/* Its second record torn: its third is still there, so the torn unit is
	 * seen to open the segment. */
	zero_records(opening + 1, opening + 1);
	char err[JOURNAL_ERR_LEN];
	cr_assert_eq(open_fails(&o, err, sizeof err), -EBADMSG, "%s", err);
	cr_assert_neq(strstr(err, "opens the segment"), NULL, "%s", err);
}
