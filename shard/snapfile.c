/*
 * snapfile.c — snapshot files of a shard (see snapfile.h): names, the
 * atomic save, the scan for the newest valid one, the header peek.
 */
#include "shard/snapfile.h"

#include "base/fsio.h"
#include "base/parse.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Names --------------------------------------------------------------- */

int snapfile_path(char *buf, size_t len, const char *dir, uint64_t seq)
{
	int n = dir ? snprintf(buf, len, "%s/snap-%020" PRIu64 ".snap", dir, seq)
	            : snprintf(buf, len, "snap-%020" PRIu64 ".snap", seq);
	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int snapfile_name_parse(const char *name, uint64_t *seq)
{
	if (strlen(name) != SNAPFILE_NAME_LEN || strncmp(name, "snap-", 5) != 0 ||
	    strcmp(name + 5 + SNAPFILE_SEQ_DIGITS, ".snap") != 0)
		return 0;
	char digits[SNAPFILE_SEQ_DIGITS + 1];
	memcpy(digits, name + 5, SNAPFILE_SEQ_DIGITS);
	digits[SNAPFILE_SEQ_DIGITS] = '\0';
	/* Digits only, no overflow (20 digits can exceed 2^64 - 1). */
	return bo_parse_u64(digits, 0, UINT64_MAX, 0, seq) == 0;
}

/* ---- Peek ---------------------------------------------------------------- */

int snapfile_peek(const char *path, snapshot_info *info, char *err, size_t errlen)
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
	uint8_t b[SNAPSHOT_HEADER_BYTES];
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
	return snapshot_header_decode(b, (size_t)n, info, err, errlen);
}

/* ---- Save ---------------------------------------------------------------- */

int snapfile_save(const engine *e, const char *dir, uint32_t shard, uint64_t seq, int64_t seq_ts_ms,
                  char *err, size_t errlen)
{
	assert(e && dir);
	if (err && errlen)
		err[0] = '\0';
	char tmp[PATH_MAX], final[PATH_MAX];
	if (snapfile_path(final, sizeof(final), dir, seq) < 0 ||
	    snprintf(tmp, sizeof(tmp), "%s" SNAPFILE_TMP_SUFFIX, final) >= (int)sizeof(tmp)) {
		if (err && errlen)
			snprintf(err, errlen, "snapshot directory path too long: %s", dir);
		return -ENAMETOOLONG;
	}
	const char *what = "create";
	int rc = 0;
	int fd = bo_fs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	what = "write";
	rc = snapshot_write_file(e, shard, seq, seq_ts_ms, fd, tmp);
	if (rc == 0) {
		what = "fsync";
		if (bo_fs_fsync(fd, tmp) != 0)
			rc = -errno;
	}
	if (close(fd) != 0 && rc == 0) {
		what = "close";
		rc = -errno;
	}
	if (rc == 0) {
		what = "rename";
		if (bo_fs_rename(tmp, final) != 0)
			rc = -errno;
	}
	if (rc == 0) {
		what = "fsync the directory of";
		rc = bo_fs_fsync_dir(dir);
		if (rc < 0) /* the file is complete; only its name may not be durable yet */
			goto out;
		return 0;
	}
	bo_fs_unlink(tmp);
out:
	if (err && errlen)
		snprintf(err, errlen, "cannot %s %s: %s", what, rc == 0 ? final : tmp,
		         strerror(-rc));
	return rc;
}

/* ---- Load the newest valid one ------------------------------------------- */

static int cmp_seq_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The sequence numbers of dir's snapshot files, newest first, in *seqs
 * (caller frees; NULL when there are none). Returns their number, 0 when
 * dir does not exist, or -errno (err says why). */
static ssize_t list_seqs(const char *dir, uint64_t **seqs, char *err, size_t errlen)
{
	*seqs = NULL;
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		if (e == ENOENT)
			return 0;
		if (err && errlen)
			snprintf(err, errlen, "cannot open %s: %s", dir, strerror(e));
		return -e;
	}
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t s;
		if (!snapfile_name_parse(de->d_name, &s))
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint64_t *p = realloc(v, ncap * sizeof(*p));
			if (!p) {
				closedir(d);
				free(v);
				if (err && errlen)
					snprintf(err, errlen, "out of memory listing %s", dir);
				return -ENOMEM;
			}
			v = p;
			cap = ncap;
		}
		v[n++] = s;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_seq_desc);
	*seqs = v;
	return (ssize_t)n;
}

/* Maps and loads one file; the name's seq must be the header's. Returns 0,
 * -ENOMEM, or -EINVAL for a file to skip (why says why). */
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
	if (len < SNAPSHOT_MIN_BYTES) {
		close(fd);
		snprintf(why, whylen, "truncated: %zu bytes", len);
		return -EINVAL;
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
		snprintf(why, whylen, "header says seq %" PRIu64, inf.seq);
		return -EINVAL;
	}
	if (rc == 0 && info)
		*info = inf;
	return rc;
}

int snapfile_load_latest(const char *dir, engine **out, snapshot_info *info, char *err,
                         size_t errlen)
{
	assert(dir && out);
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	uint64_t *seqs;
	ssize_t n = list_seqs(dir, &seqs, err, errlen);
	if (n < 0)
		return (int)n;
	size_t used = 0; /* warnings written to err */
	int rc = 0;
	for (ssize_t i = 0; i < n; i++) {
		char path[PATH_MAX], why[SNAPSHOT_ERR_LEN];
		if (snapfile_path(path, sizeof(path), dir, seqs[i]) < 0) {
			if (err && errlen)
				snprintf(err, errlen, "snapshot directory path too long: %s", dir);
			rc = -ENAMETOOLONG;
			break;
		}
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
