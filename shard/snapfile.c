/*
 * snapfile.c — snapshot file names (see snapfile.h).
 */
#include "shard/snapfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
	uint64_t v = 0;
	for (unsigned i = 0; i < SNAPFILE_SEQ_DIGITS; i++) {
		char c = name[5 + i];
		if (c < '0' || c > '9')
			return 0;
		uint64_t d = (uint64_t)(c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0; /* 20 digits can exceed 2^64 - 1 */
		v = v * 10 + d;
	}
	*seq = v;
	return 1;
}
