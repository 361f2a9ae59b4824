/*
 * replay_dir.c — listing a data directory (see replay_dir.h for the layout).
 *
 * Only names and sizes are read here; whether a file's contents are valid is
 * the journal reader's and the snapshot loader's business.
 */
#include "replay_dir.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/parse.h"
#include "journal/journal.h"
#include "shard/snapfile.h"

#define SHARD_DIGITS_MIN 4
#define SHARD_DIGITS_MAX 10 /* a uint32_t */

/* "shard-NNNN" with 4..10 digits and a value that fits a uint32_t. */
static int shard_name_parse(const char *name, uint32_t *id)
{
	if (strncmp(name, "shard-", 6) != 0)
		return 0;
	size_t n = strlen(name + 6);
	uint64_t v;
	if (n < SHARD_DIGITS_MIN || n > SHARD_DIGITS_MAX || bo_parse_u64(name + 6, 0, UINT32_MAX, 0, &v) != 0)
		return 0;
	/* The journal names shards with %04u: "shard-00012" is not shard 12's
	 * directory, and reading it as such would read another directory. */
	char canon[32];
	snprintf(canon, sizeof canon, "%04" PRIu64, v);
	if (strcmp(canon, name + 6) != 0)
		return 0;
	*id = (uint32_t)v;
	return 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_seg(const void *a, const void *b)
{
	uint64_t x = ((const replay_seg *)a)->first_seq, y = ((const replay_seg *)b)->first_seq;
	return x < y ? -1 : x > y;
}

static int cmp_snap(const void *a, const void *b)
{
	uint64_t x = ((const replay_snap *)a)->seq, y = ((const replay_snap *)b)->seq;
	return x < y ? -1 : x > y;
}

int replay_dir_shards(const char *root, uint32_t **ids, uint32_t *count, char *err, size_t errlen)
{
	assert(root && ids && count);
	*ids = NULL;
	*count = 0;
	DIR *d = opendir(root);
	if (!d) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open data directory: %s", root, strerror(e));
		return -e;
	}
	uint32_t cap = 0, n = 0;
	uint32_t *v = NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint32_t id;
		if (!shard_name_parse(de->d_name, &id))
			continue;
		char path[PATH_MAX];
		struct stat st;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", root, de->d_name) >= sizeof path ||
		    stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == REPLAY_DIR_SHARDS_MAX)
			break;
		if (n == cap) {
			uint32_t ncap = cap ? cap * 2 : 16;
			uint32_t *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				free(v);
				closedir(d);
				snprintf(err, errlen, "%s: out of memory", root);
				return -ENOMEM;
			}
			v = nv;
			cap = ncap;
		}
		v[n++] = id;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof *v, cmp_u32);
	*ids = v;
	*count = n;
	return 0;
}

/* Appends one element of `size` bytes to a growable array. */
static int push(void **arr, uint32_t *n, uint32_t *cap, size_t size, const void *elem)
{
	if (*n == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 16;
		void *na = realloc(*arr, ncap * size);
		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	memcpy((char *)*arr + (size_t)*n * size, elem, size);
	(*n)++;
	return 0;
}

int replay_dir_scan(const char *root, uint32_t shard, replay_shard_dir *out, char *err,
                    size_t errlen)
{
	assert(root && out);
	memset(out, 0, sizeof *out);
	out->shard = shard;
	/* Leave room for "/" + the longest file name used here, so that
	 * replay_dir_*_path() never truncate. */
	int plen = snprintf(out->path, sizeof out->path, "%s/shard-%04" PRIu32, root, shard);
	if (plen < 0 || (size_t)plen + 64 >= sizeof out->path) {
		snprintf(err, errlen, "%s: path too long", root);
		return -ENAMETOOLONG;
	}
	DIR *d = opendir(out->path);
	if (!d) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open shard directory: %s", out->path,
		         strerror(e));
		return -e;
	}
	uint32_t seg_cap = 0, snap_cap = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		uint64_t seq;
		int is_seg = journal_segment_name_parse(de->d_name, &seq);
		if (!is_seg && !snapfile_name_parse(de->d_name, &seq))
			continue;
		char path[PATH_MAX];
		struct stat st;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", out->path, de->d_name) >=
		    sizeof path)
			continue;
		if (stat(path, &st) != 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: stat: %s", path, strerror(-rc));
			break;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (is_seg) {
			replay_seg s = {.first_seq = seq, .bytes = (uint64_t)st.st_size};
			rc = push((void **)&out->segs, &out->seg_count, &seg_cap, sizeof s, &s);
			out->seg_bytes += s.bytes;
		} else {
			replay_snap s = {.seq = seq, .bytes = (uint64_t)st.st_size};
			rc = push((void **)&out->snaps, &out->snap_count, &snap_cap, sizeof s, &s);
		}
		if (rc == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", out->path);
	}
	closedir(d);
	if (rc < 0) {
		replay_dir_free(out);
		return rc;
	}
	if (out->seg_count > 1)
		qsort(out->segs, out->seg_count, sizeof *out->segs, cmp_seg);
	if (out->snap_count > 1)
		qsort(out->snaps, out->snap_count, sizeof *out->snaps, cmp_snap);
	return 0;
}

void replay_dir_free(replay_shard_dir *d)
{
	if (!d)
		return;
	free(d->segs);
	free(d->snaps);
	d->segs = NULL;
	d->snaps = NULL;
	d->seg_count = d->snap_count = 0;
}

void replay_dir_snap_path(const replay_shard_dir *d, uint32_t i, char *buf, size_t len)
{
	assert(i < d->snap_count);
	int rc = snapfile_path(buf, len, d->path, d->snaps[i].seq);
	assert(rc == 0 && "replay_dir_scan leaves room for the name");
	(void)rc;
}

void replay_dir_seg_path(const replay_shard_dir *d, uint32_t i, char *buf, size_t len)
{
	assert(i < d->seg_count);
	int n = snprintf(buf, len, "%s/%020" PRIu64 ".seg", d->path, d->segs[i].first_seq);
	assert(n > 0 && (size_t)n < len && "replay_dir_scan leaves room for the name");
	(void)n;
}

int64_t replay_dir_seg_index(const replay_shard_dir *d, const char *file)
{
	const char *slash = strrchr(file, '/');
	const char *name = slash ? slash + 1 : file;
	uint64_t first;
	if (!journal_segment_name_parse(name, &first))
		return -1;
	/* Few segments, looked up once per segment change: linear is fine. */
	for (uint32_t i = 0; i < d->seg_count; i++)
		if (d->segs[i].first_seq == first)
			return i;
	return -1;
}

uint64_t replay_dir_seg_used(const replay_shard_dir *d, uint32_t i)
{
	assert(i < d->seg_count);
	enum {
		CHUNK = 64 * 1024
	};
	char path[REPLAY_DIR_PATH_LEN];
	replay_dir_seg_path(d, i, path, sizeof path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return d->segs[i].bytes;
	uint8_t *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return d->segs[i].bytes;
	}
	uint64_t end = d->segs[i].bytes;
	while (end > 0) {
		uint64_t from = end > CHUNK ? end - CHUNK : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - from), (off_t)from);
		if (n != (ssize_t)(end - from)) {
			end = d->segs[i].bytes;
			break;
		}
		uint64_t k = (uint64_t)n;
		while (k > 0 && buf[k - 1] == 0)
			k--;
		if (k > 0) {
			end = from + k;
			break;
		}
		end = from;
	}
	free(buf);
	close(fd);
	return end;
}

int replay_dir_read_file(const char *path, uint64_t max_bytes, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		close(fd);
		return -EFBIG;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, b + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			free(b);
			close(fd);
			return -e;
		}
		got += (size_t)k;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}
