/*
 * fsio.h — every change boxoffice makes to the file system goes through
 * here, so that a test can watch it.
 *
 * The journal, its maintenance, the snapshot files and recovery's cuts call
 * these wrappers instead of open(2), pwrite(2), fallocate(2), fsync(2),
 * rename(2), unlink(2) and mkdir(2). Each wrapper makes the call and, when
 * it succeeded, reports what it changed to the observer, if one is
 * installed. I/O done elsewhere (the journal's io_uring writes and syncs)
 * is reported with bo_fs_note() when its completion arrives, from what was
 * really submitted (a NOP submitted in place of an fdatasync reports
 * nothing).
 *
 * The observer is the storage simulator of the power-loss tests
 * (tests/support/simfs.h): it keeps, per file and per directory, what a
 * completed sync has made durable and what is only in the page cache, and
 * at a simulated power cut drops, tears or reorders the latter. Production
 * installs no observer; a wrapper then costs one relaxed atomic load.
 *
 * Reading (mmap, read) is not reported: it changes nothing.
 *
 * Rules for callers:
 *   - report after success only, with exactly what changed (a short write
 *     reports the bytes written);
 *   - the fd-based wrappers take the file's path too, as the caller opened
 *     it (the observer knows files by path; a directory is named by its
 *     path, without a trailing slash);
 *   - a sync is reported once it has completed: from then on the observer
 *     counts everything reported earlier on that file (data, size) or that
 *     directory (its entries: creations, renames, unlinks) as durable.
 *
 * Threading: the wrappers and bo_fs_note() may be called from any thread
 * at any time; the observer serialises what it needs. bo_fs_observe() is
 * called by a test while no other thread uses these functions.
 */
#ifndef BO_BASE_FSIO_H
#define BO_BASE_FSIO_H

#include <stdint.h>
#include <sys/types.h>

typedef enum bo_fs_op {
	BO_FS_CREATE = 1, /* path: open with O_CREAT succeeded; `len` 1 if the file
	                   * was truncated to zero (O_TRUNC) or did not exist */
	BO_FS_MKDIR,      /* path: a new directory */
	BO_FS_WRITE,      /* path, off, buf, len: bytes written */
	BO_FS_SIZE,       /* path, len: the file's size is now at least `len`
	                   * (fallocate without KEEP_SIZE) ... */
	BO_FS_TRUNCATE,   /* path, len: ... or exactly `len` (ftruncate) */
	BO_FS_ZERO,       /* path, off, len: the range now reads as zero, size kept */
	BO_FS_SYNC,       /* path: fsync or fdatasync of the file or directory completed */
	BO_FS_RENAME,     /* path -> path2 (replacing path2 if it existed) */
	BO_FS_UNLINK,     /* path */
} bo_fs_op;

typedef struct bo_fs_event {
	bo_fs_op op;
	const char *path;  /* borrowed for the call */
	const char *path2; /* RENAME: the new name */
	uint64_t off;
	uint64_t len;
	const void *buf;   /* WRITE: the bytes (borrowed for the call) */
} bo_fs_event;

/* The observer: called after each reported change, from the thread that
 * made it. It must not call the wrappers. */
typedef void (*bo_fs_observer_fn)(void *ctx, const bo_fs_event *ev);

/* Installs (fn != NULL) or removes the process's observer. Tests only. */
void bo_fs_observe(bo_fs_observer_fn fn, void *ctx);

/* 1 while an observer is installed: a caller may skip preparing what only
 * bo_fs_note() needs. */
int bo_fs_observed(void);

/* Reports a change made without a wrapper (io_uring completions). */
void bo_fs_note(const bo_fs_event *ev);

/* The wrappers: the libc call's result and errno, reported on success. */
int bo_fs_open(const char *path, int flags, mode_t mode);
ssize_t bo_fs_pwrite(int fd, const char *path, const void *buf, size_t len, off_t off);
/* mode 0 (reports SIZE), or FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
 * (reports ZERO); other modes are a programmer error. */
int bo_fs_fallocate(int fd, const char *path, int mode, off_t off, off_t len);
int bo_fs_ftruncate(int fd, const char *path, off_t len);
int bo_fs_fsync(int fd, const char *path);
int bo_fs_fdatasync(int fd, const char *path);
/* Opens the directory, fsyncs it, closes it: 0 or -errno (not -1). */
int bo_fs_fsync_dir(const char *path);
int bo_fs_rename(const char *from, const char *to);
int bo_fs_unlink(const char *path);
int bo_fs_mkdir(const char *path, mode_t mode);

#endif /* BO_BASE_FSIO_H */
