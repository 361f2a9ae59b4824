/*
 * maint.h — operator maintenance of a shard's journal: the explicit repair
 * that cuts the log at a sequence number after backing up every byte it
 * cuts. Run by an operator tool (boxoffice-replay truncate) on a stopped
 * shard, never by the shard itself; pruning, which the shard runs, is the
 * log's own (journal.h). How the cut is made and what a crash part-way
 * leaves is described at the top of maint.c.
 */
#ifndef BO_JOURNAL_MAINT_H
#define BO_JOURNAL_MAINT_H

#include <stddef.h>
#include <stdint.h>

/* The operator's explicit repair: cuts the journal so that seq - 1 is its
 * last record (records >= seq are removed; seq 1 removes everything of an
 * unpruned journal), after copying every byte it cuts into `backup_dir` (an
 * existing directory, not the shard's):
 *   <segment name>.from-<offset, 20 digits>
 *                                 bytes [offset, end of file) of the segment
 *                                 holding seq - 1 (only if any is non-zero;
 *                                 never-written zeros read back as zeros),
 *   <segment name>                every later segment, whole,
 * each created exclusively (an existing file is never overwritten), written,
 * fsynced, then the directory fsynced — before anything is cut. Then later
 * segments are deleted newest first and the rest of seq - 1's segment is
 * zeroed and synced, so a crash part-way leaves a shorter valid journal.
 * Works on a journal journal_open() refuses, as long as record seq - 1 is
 * readable: it is read with journal_reader_open_from(seq - 2), so older
 * segments are not read and a pruned journal works too (down to seq - 1 =
 * its first record); afterwards journal_open() succeeds
 * without force_truncate unless older damage remains. The shard must not be
 * running (nothing here locks out an appender). Snapshots at seq >= `seq` no
 * longer match the journal (opening with such an after_seq is refused as a
 * short log): the operator removes them.
 * Returns 0 with a summary of what was cut and copied in err; or, with the
 * reason in err and nothing cut:
 *   -ERANGE   seq is beyond the end (seq - 1 is not a readable record; err
 *             says where the readable log ends and why) or before the first
 *             remaining segment (pruned),
 *   -EINVAL   backup_dir is the shard directory or not a directory,
 *   -EEXIST   a backup file exists already (from an earlier attempt?),
 *   -ENOENT / -ENOMEM / -errno of a failed read, copy, fsync;
 * or -errno of a failed unlink/zeroing after the backups were written (the
 * backups stay; err says how far the cut got). */
int journal_truncate_at(const char *root, uint32_t shard_id, uint64_t seq, const char *backup_dir,
                        char *err, size_t err_len);

/* Replication's cut (issue 13): a copy rejoining as a standby drops the
 * records after `seq` that the new primary's term replaced, so that `seq`
 * becomes its last record. The same cut as journal_truncate_at(seq + 1)
 * without the backup: the records cut were never acknowledged (a reply
 * needs every in-sync copy durable), so nothing is kept of them. Later
 * segments are deleted newest first, the rest of seq's segment is zeroed
 * and synced (seq 0: every segment goes), the directory fsynced: a crash
 * part-way leaves a valid journal ending at seq or a little later, and
 * running it again finishes it. The shard must not be running.
 * Returns 0 (err: what was cut); or, nothing cut, with the reason in err:
 *   -ERANGE   record seq is not readable: beyond the end of the log, or
 *             before its first remaining segment (pruned), or seq 0 on a
 *             pruned journal;
 *   -ENOENT / -ENOMEM / -errno of a failed read;
 * or -errno of a failed unlink/zeroing/fsync (err says how far it got). */
int journal_cut_after(const char *root, uint32_t shard_id, uint64_t seq, char *err, size_t err_len);

#endif /* BO_JOURNAL_MAINT_H */
