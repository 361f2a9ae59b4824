/*
 * fsio.c — the file-system wrappers and their observer (fsio.h).
 */
#ifndef _GNU_SOURCE /* meson defines it for every file */
#define _GNU_SOURCE
#endif
#include "fsio.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h> /* rename */
#include <sys/stat.h>
#include <unistd.h>

/* One observer per process. The function and its context are published
 * together: ctx first, then fn with release; readers load fn with acquire.
 * bo_fs_observe() runs while nobody else uses the wrappers (fsio.h). */
static _Atomic(bo_fs_observer_fn) observer_fn;
static void *observer_ctx;

void bo_fs_observe(bo_fs_observer_fn fn, void *ctx)
{
	observer_ctx = ctx;
	atomic_store_explicit(&observer_fn, fn, memory_order_release);
}

int bo_fs_observed(void)
{
	return atomic_load_explicit(&observer_fn, memory_order_relaxed) != NULL;
}

void bo_fs_note(const bo_fs_event *ev)
{
	bo_fs_observer_fn fn = atomic_load_explicit(&observer_fn, memory_order_acquire);
	if (fn != NULL)
		fn(observer_ctx, ev);
}

/* Reports without disturbing errno (the callers' callers read it). */
static void note(bo_fs_op op, const char *path, const char *path2, uint64_t off, uint64_t len,
                 const void *buf)
{
	if (!bo_fs_observed())
		return;
	int e = errno;
	bo_fs_event ev = {.op = op, .path = path, .path2 = path2, .off = off, .len = len, .buf = buf};
	bo_fs_note(&ev);
	errno = e;
}

int bo_fs_open(const char *path, int flags, mode_t mode)
{
	if (!(flags & O_CREAT))
		return open(path, flags, mode);
	/* Whether the file is new only matters to an observer. */
	int existed = bo_fs_observed() && access(path, F_OK) == 0;
	int fd = open(path, flags, mode);
	if (fd >= 0)
		note(BO_FS_CREATE, path, NULL, 0, !existed || (flags & O_TRUNC) ? 1 : 0, NULL);
	return fd;
}

ssize_t bo_fs_pwrite(int fd, const char *path, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);
	if (n > 0)
		note(BO_FS_WRITE, path, NULL, (uint64_t)off, (uint64_t)n, buf);
	return n;
}

int bo_fs_fallocate(int fd, const char *path, int mode, off_t off, off_t len)
{
	assert(mode == 0 || mode == (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE));
	int rc = fallocate(fd, mode, off, len);
	if (rc == 0) {
		if (mode == 0)
			note(BO_FS_SIZE, path, NULL, 0, (uint64_t)(off + len), NULL);
		else
			note(BO_FS_ZERO, path, NULL, (uint64_t)off, (uint64_t)len, NULL);
	}
	return rc;
}

int bo_fs_ftruncate(int fd, const char *path, off_t len)
{
	int rc = ftruncate(fd, len);
	if (rc == 0)
		note(BO_FS_TRUNCATE, path, NULL, 0, (uint64_t)len, NULL);
	return rc;
}

int bo_fs_fsync(int fd, const char *path)
{
	int rc = fsync(fd);
	if (rc == 0)
		note(BO_FS_SYNC, path, NULL, 0, 0, NULL);
	return rc;
}

int bo_fs_fdatasync(int fd, const char *path)
{
	int rc = fdatasync(fd);
	if (rc == 0)
		note(BO_FS_SYNC, path, NULL, 0, 0, NULL);
	return rc;
}

int bo_fs_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = bo_fs_fsync(fd, path) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int bo_fs_rename(const char *from, const char *to)
{
	int rc = rename(from, to);
	if (rc == 0)
		note(BO_FS_RENAME, from, to, 0, 0, NULL);
	return rc;
}

int bo_fs_unlink(const char *path)
{
	int rc = unlink(path);
	if (rc == 0)
		note(BO_FS_UNLINK, path, NULL, 0, 0, NULL);
	return rc;
}

int bo_fs_mkdir(const char *path, mode_t mode)
{
	int rc = mkdir(path, mode);
	if (rc == 0)
		note(BO_FS_MKDIR, path, NULL, 0, 0, NULL);
	return rc;
}
