/*
 * tmpdir.c — scratch directories for tests (see tmpdir.h).
 */
#include "tests/support/tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int tmpdir_make(char *buf, size_t cap, const char *name)
{
	const char *root = getenv("TMPDIR");
	if (root == NULL || root[0] == '\0')
		root = "/tmp";
	int n = snprintf(buf, cap, "%s/%s-XXXXXX", root, name);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return mkdtemp(buf) != NULL ? 0 : -errno;
}

/* nftw gives its callback no context: the first failure of the current
 * walk (tests remove one tree at a time, from one thread). */
static int remove_failure;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && remove_failure == 0)
		remove_failure = -errno;
	return 0; /* go on: remove as much as possible */
}

int tmpdir_remove(const char *path)
{
	remove_failure = 0;
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return errno == ENOENT ? 0 : -errno;
	return remove_failure;
}
