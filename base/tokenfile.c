/*
 * tokenfile.c — the shared token's file (see tokenfile.h).
 */
#include "base/tokenfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The bytes read at most: the longest token, "\r\n", and one more to tell
 * a file that is too long from one that just fits. */
#define TOKEN_READ_MAX (BO_AUTH_TOKEN_LEN_MAX + 3u)

/* Checks the file's type and mode on the open descriptor (not the path, so
 * a rename between the check and the read changes nothing). */
static int check_stat(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		snprintf(err, errlen, "auth token file %s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "auth token file %s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
		         "auth token file %s: mode %04o lets group or others in; make it private "
		         "(chmod 600 %s)",
		         path, (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
}

/* Reads up to cap bytes (fewer at end of file). Returns the count or -errno. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The token's length in buf[0..n): the line without its "\n" or "\r\n";
 * -EINVAL or -E2BIG (err says why) when the rule of tokenfile.h is broken. */
static int token_length(const char *buf, size_t n, const char *path, char *err, size_t errlen)
{
	size_t end = n;
	if (end > 0 && buf[end - 1] == '\n')
		end--;
	if (end > 0 && buf[end - 1] == '\r' && end < n)
		end--;
	if (end > BO_AUTH_TOKEN_LEN_MAX) {
		snprintf(err, errlen, "auth token file %s: the token is longer than %u bytes", path,
		         BO_AUTH_TOKEN_LEN_MAX);
		return -E2BIG;
	}
	if (end == 0) {
		snprintf(err, errlen,
		         "auth token file %s: empty (put one line with the token in it)", path);
		return -EINVAL;
	}
	for (size_t i = 0; i < end; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n') {
			snprintf(err, errlen, "auth token file %s: more than one line", path);
			return -EINVAL;
		}
		if (c < 0x21 || c > 0x7e) {
			snprintf(
			        err, errlen,
			        "auth token file %s: byte %zu is 0x%02x; the token is one line of visible ASCII "
			        "characters (no spaces)",
			        path, i, c);
			return -EINVAL;
		}
	}
	return (int)end;
}

int bo_token_file_read(const char *path, char out[BO_AUTH_TOKEN_LEN_MAX + 1], size_t *len,
                       char *err, size_t errlen)
{
	assert(path != NULL && out != NULL && len != NULL && (err != NULL || errlen == 0));
	memset(out, 0, BO_AUTH_TOKEN_LEN_MAX + 1);
	*len = 0;
	/* O_NONBLOCK: a FIFO put there by mistake must not hang start-up
	 * before check_stat refuses it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "auth token file %s: %s", path, strerror(e));
		return -e;
	}
	char buf[TOKEN_READ_MAX];
	int rc = check_stat(fd, path, err, errlen);
	ssize_t n = 0;
	if (rc == 0 && (n = read_all(fd, buf, sizeof(buf))) < 0) {
		rc = (int)n;
		snprintf(err, errlen, "auth token file %s: %s", path, strerror(-rc));
	}
	close(fd);
	if (rc == 0)
		rc = token_length(buf, (size_t)n, path, err, errlen);
	if (rc > 0) {
		memcpy(out, buf, (size_t)rc);
		*len = (size_t)rc;
		rc = 0;
	}
	/* The secret does not outlive its use on this stack. */
	explicit_bzero(buf, sizeof(buf));
	return rc;
}
