/*
 * maint.c — operator maintenance: journal_truncate_at, the explicit repair.
 *
 * ==== WHAT TRUNCATION DOES ==================================================
 *
 * journal_truncate_at(seq) makes seq - 1 the last record of the log, for an
 * operator who has decided to give up records >= seq (a journal_open that
 * refuses corruption at seq, a bad batch to take back). It never runs on a
 * live shard: nothing here locks out an appender.
 *
 *   1. CHECK. seq >= 1; the backup directory exists, is a directory, and is
 *      not the shard directory (backups there would carry segment names and
 *      become part of the log).
 *   2. FIND THE CUT. A reader opened after seq - 2 (journal.c's algorithm:
 *      the segment holding seq - 2 or seq - 1 is validated from its header
 *      on, older ones are not read) must hand out record seq - 1 first; the
 *      cut is (its segment, the offset right after it). For seq 1 the cut is
 *      offset 0 of the first segment, which must start at seq 1 (a pruned
 *      journal has nothing there to keep). A record seq - 1 that is not
 *      readable — the log ends before it, or corruption comes first — is
 *      -ERANGE: the cut would not leave a valid log ending at seq - 1.
 *   3. BACK UP everything from the cut on into the backup directory:
 *      `<segment name>.from-<offset, 20 digits>` for the rest of the cut
 *      segment (only when some byte of it is non-zero: a segment's unused
 *      end is zeros that never held data) and `<segment name>` for each
 *      later segment, whole. Each file is created with O_EXCL (an existing
 *      backup is never overwritten: -EEXIST), holds the bytes at the same
 *      positions relative to its offset (all-zero 4 KiB blocks are left as
 *      holes, which read back as zeros: the copy is byte-exact), is
 *      fsynced; then the backup directory is fsynced.
 *   4. CUT. Later segments are unlinked newest first; then the cut segment's
 *      tail is zeroed and synced (or the segment unlinked when the cut is at
 *      its offset 0); then the shard directory is fsynced.
 *
 * ==== WHAT IT GUARANTEES =====================================================
 *
 *   - Nothing is cut before every byte to be cut is durable in the backup:
 *     any failure in steps 1-3 returns with the journal untouched.
 *   - A crash (or failure) in step 4 leaves a valid journal that is a prefix
 *     of the original, ending at seq - 1 or later: segments go newest first,
 *     so there is never a gap before a surviving segment, and the zeroing
 *     never leaves a hole before surviving records (jnl_zero_tail). Running
 *     the truncation again after moving the backups away finishes it.
 *   - Restoring is copying back: `<name>` as the segment, and
 *     `<name>.from-<offset>` written into the segment at that offset.
 *   - Afterwards journal_open() succeeds without force_truncate unless
 *     damage older than seq - 1 remains; snapshots at seq >= `seq` no longer
 *     match the journal (journal_open refuses them as a short log).
 */
#include "maint.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsio.h"
#include "journal_internal.h"

/* Digits of the offset in a partial backup's name: any uint64, zero-padded
 * so that the names of one segment's partial backups sort by offset. */
#define BACKUP_OFF_DIGITS 20

/* Where the log is cut: the segments from the one holding the cut on. */
typedef struct cut_plan {
	jsegent *segs;    /* the cut segment, then every later one; owned */
	uint32_t count;   /* segments in segs (0: an empty journal cut at seq 1) */
	uint64_t cut_off; /* offset of the cut in segs[0]; 0: the whole segment goes */
} cut_plan;

/* Step 1: refuses a backup directory that is missing, not a directory, or
 * the shard directory itself. */
static int check_backup_dir(const char *dir, const char *backup_dir, uint32_t shard_id, char *err,
                            size_t err_len)
{
	struct stat bst, dst;
	int bad_dir = stat(backup_dir, &bst) != 0 ? errno : S_ISDIR(bst.st_mode) ? 0 : ENOTDIR;
	if (bad_dir != 0) {
		msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: backup dir %s: %s",
		    shard_id, backup_dir, strerror(bad_dir));
		return -EINVAL;
	}
	if (stat(dir, &dst) != 0) {
		int e = errno;
		msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: stat %s: %s", shard_id,
		    dir, strerror(e));
		return -e;
	}
	if (bst.st_dev == dst.st_dev && bst.st_ino == dst.st_ino) {
		/* Backups there would carry segment names and become the journal. */
		msg(err, err_len,
		    "journal shard %" PRIu32 ": truncate_at: backup dir %s is the shard directory",
		    shard_id, backup_dir);
		return -EINVAL;
	}
	return 0;
}

/* Step 2 with a reader opened after seq - 2 (seq >= 2): record seq - 1 must
 * be the first it hands out; the cut is right after it. */
static int locate_after(journal_reader *r, uint32_t shard_id, uint64_t seq, uint32_t *cut_seg,
                        uint64_t *cut_off, char *err, size_t err_len)
{
	journal_record x;
	int rc = journal_reader_next(r, &x);
	if (rc == 1) {
		assert(x.seq == seq - 1);
		jnl_reader_position(r, cut_seg, cut_off);
		return 0;
	}
	if (rc != 0 && rc != -EBADMSG) {
		snprintf(err, err_len, "%s", journal_reader_error(r));
		return rc;
	}
	char why[JOURNAL_ERR_LEN];
	if (rc == 0) {
		journal_recovery end;
		journal_reader_recovery(r, &end);
		msg(why, sizeof why, "the log ends at seq %" PRIu64 "%s%.700s", end.last_seq,
		    end.note[0] != '\0' ? ": " : "", end.note);
	} else {
		msg(why, sizeof why, "%s", journal_reader_error(r));
	}
	msg(err, err_len,
	    "journal shard %" PRIu32 ": truncate_at %" PRIu64 ": seq %" PRIu64
	    " is not a readable record, so it cannot be the last one kept "
	    "(%.800s); nothing cut",
	    shard_id, seq, seq - 1, why);
	return -ERANGE;
}

/* Step 2: finds the cut for seq and fills *plan (caller frees plan->segs).
 * Returns 0, or -ERANGE / the reader's -errno with a message. */
static int find_cut(const char *root, uint32_t shard_id, uint64_t seq, cut_plan *plan, char *err,
                    size_t err_len)
{
	*plan = (cut_plan){0};
	journal_reader *r = NULL;
	int rc = journal_reader_open_from(root, shard_id, NULL, seq >= 2 ? seq - 2 : 0, &r, err,
	                                  err_len);
	if (rc != 0)
		return rc;
	uint32_t n;
	const jsegent *segs = jnl_reader_segments(r, &n);
	uint32_t cut_seg = 0;
	if (seq >= 2) {
		rc = locate_after(r, shard_id, seq, &cut_seg, &plan->cut_off, err, err_len);
	} else if (n > 0 && segs[0].first_seq != 1) {
		msg(err, err_len,
		    "journal shard %" PRIu32 ": truncate_at 1: the journal was pruned (it "
		    "starts at seq %" PRIu64 "); nothing cut",
		    shard_id, segs[0].first_seq);
		rc = -ERANGE;
	}
	if (rc == 0 && cut_seg < n) {
		plan->count = n - cut_seg;
		plan->segs = malloc(plan->count * sizeof *plan->segs);
		if (plan->segs == NULL) {
			msg(err, err_len, "journal shard %" PRIu32 ": out of memory", shard_id);
			rc = -ENOMEM;
		} else {
			memcpy(plan->segs, segs + cut_seg, plan->count * sizeof *plan->segs);
		}
	}
	/* Closing unmaps the segment holding the cut before it is changed. */
	journal_reader_close(r);
	return rc;
}

/* Copies bytes [from, end of file) of the mapped segment m[0, n) to a new
 * file `dst` (O_EXCL), writing only non-zero PAGE_BYTES blocks (the rest is
 * a hole, which reads as zero: byte-exact), then fsyncs it. Returns 0 or
 * -errno with a message. */
static int backup_copy(const uint8_t *m, uint64_t n, uint64_t from, const char *dst,
                       uint32_t shard_id, char *err, size_t err_len)
{
	assert(from <= n);
	int fd = bo_fs_open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: create backup %s: %s%s",
		    shard_id, dst, strerror(e),
		    e == EEXIST ? " (an earlier attempt's? move it away; nothing was cut)" : "");
		return -e;
	}
	int rc = 0;
	for (uint64_t o = from; o < n && rc == 0;) {
		size_t len = n - o < PAGE_BYTES ? (size_t)(n - o) : PAGE_BYTES;
		if (last_nonzero_end(m, o, o + len) != o &&
		    bo_fs_pwrite(fd, dst, m + o, len, (off_t)(o - from)) != (ssize_t)len)
			rc = errno != 0 ? -errno : -EIO;
		o += len;
	}
	if (rc == 0 && bo_fs_ftruncate(fd, dst, (off_t)(n - from)) != 0)
		rc = -errno;
	if (rc == 0 && bo_fs_fsync(fd, dst) != 0)
		rc = -errno;
	close(fd);
	if (rc != 0)
		msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: writing backup %s: %s",
		    shard_id, dst, strerror(-rc));
	return rc;
}

/* Step 3: backs up every byte from the cut on into backup_dir and makes
 * the copies durable. Stores the non-zero bytes copied and the files
 * written. Returns 0, or -errno with a message (nothing cut; the backups
 * written so far stay). */
static int back_up(const char *dir, const char *backup_dir, uint32_t shard_id, const cut_plan *plan,
                   uint64_t *copied, uint32_t *files, char *err, size_t err_len)
{
	*copied = 0;
	*files = 0;
	int rc = 0;
	for (uint32_t s = 0; s < plan->count && rc == 0; s++) {
		char name[SEG_NAME_LEN + 1], src[PATH_MAX], bak[PATH_MAX];
		seg_name(name, sizeof name, plan->segs[s].first_seq);
		snprintf(src, sizeof src, "%s/%s", dir, name);
		uint64_t from = s == 0 ? plan->cut_off : 0;
		if (from > 0)
			snprintf(bak, sizeof bak, "%s/%s.from-%0*" PRIu64, backup_dir, name,
			         BACKUP_OFF_DIGITS, from);
		else
			snprintf(bak, sizeof bak, "%s/%s", backup_dir, name);
		const uint8_t *m;
		uint64_t n;
		rc = jnl_map_file(src, shard_id, &m, &n, err, err_len);
		if (rc != 0)
			break;
		uint64_t live = from < n ? last_nonzero_end(m, from, n) - from : 0;
		/* A kept segment's zero tail was never data: no file for it. */
		if (from == 0 || live > 0) {
			rc = backup_copy(m, n, from < n ? from : n, bak, shard_id, err, err_len);
			*copied += live;
			(*files)++;
		}
		if (m != NULL)
			munmap((void *)m, n);
	}
	if (rc == 0 && *files > 0) {
		rc = jnl_fsync_dir(backup_dir);
		if (rc != 0)
			msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: fsync %s: %s",
			    shard_id, backup_dir, strerror(-rc));
	}
	return rc;
}

/* Step 4: later segments newest first, then the tail of the cut segment (or
 * the whole of it when the cut is at its start), then the directory. Each
 * step leaves a valid, shorter journal. Stores the segments removed.
 * Returns 0, or -errno with a message in m. */
static int cut_segments(const char *dir, const cut_plan *plan, uint32_t *removed, char *m,
                        size_t m_len)
{
	*removed = 0;
	int rc = 0;
	for (uint32_t s = plan->count; s-- > 0 && rc == 0;) {
		char name[SEG_NAME_LEN + 1], path[PATH_MAX];
		seg_name(name, sizeof name, plan->segs[s].first_seq);
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if (s == 0 && plan->cut_off > 0) {
			rc = jnl_zero_tail(path, plan->cut_off, m, m_len);
		} else if (bo_fs_unlink(path) != 0) {
			rc = -errno;
			msg(m, m_len, "unlink %s: %s", path, strerror(-rc));
		} else {
			(*removed)++;
		}
	}
	if (*removed > 0 && rc == 0) {
		rc = jnl_fsync_dir(dir);
		if (rc != 0)
			msg(m, m_len, "fsync %s: %s", dir, strerror(-rc));
	}
	return rc;
}

int journal_truncate_at(const char *root, uint32_t shard_id, uint64_t seq, const char *backup_dir,
                        char *err, size_t err_len)
{
	assert(root != NULL && backup_dir != NULL);
	char dir[DIR_MAX];
	int rc = jnl_shard_dir(dir, sizeof dir, root, shard_id, err, err_len);
	if (rc != 0)
		return rc;
	if (seq == 0) {
		msg(err, err_len, "journal shard %" PRIu32 ": truncate_at: seq 0 does not exist",
		    shard_id);
		return -ERANGE;
	}
	rc = check_backup_dir(dir, backup_dir, shard_id, err, err_len);
	if (rc != 0)
		return rc;
	cut_plan plan;
	rc = find_cut(root, shard_id, seq, &plan, err, err_len);
	uint64_t copied = 0;
	uint32_t files = 0;
	if (rc == 0)
		rc = back_up(dir, backup_dir, shard_id, &plan, &copied, &files, err, err_len);
	if (rc != 0) {
		free(plan.segs);
		return rc; /* nothing cut */
	}
	char m[JOURNAL_ERR_LEN] = "";
	uint32_t removed = 0;
	rc = cut_segments(dir, &plan, &removed, m, sizeof m);
	if (rc != 0) {
		msg(err, err_len,
		    "journal shard %" PRIu32 ": truncate_at %" PRIu64 ": cutting failed after the "
		    "backup (%" PRIu32 " files in %s are complete): %.600s; %" PRIu32
		    " segments removed so far",
		    shard_id, seq, files, backup_dir, m, removed);
	} else {
		char cut_name[SEG_NAME_LEN + 1] = "-";
		if (plan.count > 0)
			seg_name(cut_name, sizeof cut_name, plan.segs[0].first_seq);
		msg(err, err_len,
		    "journal shard %" PRIu32 ": truncated at seq %" PRIu64
		    " (last record kept %" PRIu64 "): cut %s/%s from offset %" PRIu64
		    ", removed %" PRIu32 " segments; %" PRIu64
		    " non-zero bytes copied first to %" PRIu32 " files in %s",
		    shard_id, seq, seq - 1, dir, cut_name, plan.cut_off, removed, copied, files,
		    backup_dir);
	}
	free(plan.segs);
	return rc;
}

int journal_cut_after(const char *root, uint32_t shard_id, uint64_t seq, char *err, size_t err_len)
{
	assert(root != NULL);
	char dir[DIR_MAX];
	int rc = jnl_shard_dir(dir, sizeof dir, root, shard_id, err, err_len);
	if (rc != 0)
		return rc;
	if (seq == UINT64_MAX) {
		msg(err, err_len, "journal shard %" PRIu32 ": cut_after: seq out of range", shard_id);
		return -ERANGE;
	}
	cut_plan plan;
	/* Truncating "at seq + 1" keeps seq: the same plan, no backup. */
	rc = find_cut(root, shard_id, seq + 1, &plan, err, err_len);
	if (rc != 0) {
		free(plan.segs);
		return rc;
	}
	char m[JOURNAL_ERR_LEN] = "";
	uint32_t removed = 0;
	rc = cut_segments(dir, &plan, &removed, m, sizeof m);
	if (rc != 0)
		msg(err, err_len,
		    "journal shard %" PRIu32 ": cut_after %" PRIu64 ": %.700s; %" PRIu32
		    " segments removed so far",
		    shard_id, seq, m, removed);
	else
		msg(err, err_len,
		    "journal shard %" PRIu32 ": cut after seq %" PRIu64 " from offset %" PRIu64
		    ", removed %" PRIu32 " segments",
		    shard_id, seq, plan.cut_off, removed);
	free(plan.segs);
	return rc;
}
