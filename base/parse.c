/*
 * parse.c — see parse.h. Hand-rolled rather than strtoull: strtoull skips
 * leading spaces, accepts a sign (and negates "-1" into 2^64-1) and takes
 * octal, all of which a command line must refuse.
 */
#include "base/parse.h"

#include <errno.h>
#include <stddef.h>

static int digit(char c, unsigned base)
{
	int d;
	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	else
		return -1;
	return (unsigned)d < base ? d : -1;
}

int bo_parse_u64(const char *s, uint64_t min, uint64_t max, unsigned flags, uint64_t *out)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	unsigned base = 10;
	if ((flags & BO_PARSE_HEX) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (*s == '\0')
			return -EINVAL;
	}
	uint64_t v = 0;
	int overflow = 0;
	for (; *s; s++) {
		int d = digit(*s, base);
		if (d < 0)
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)d) / base)
			overflow = 1; /* keep scanning: "99999999999999999999x" is not a number */
		else
			v = v * base + (uint64_t)d;
	}
	if (overflow || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}
