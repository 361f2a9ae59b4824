/*
 * json_check.c — a small strict JSON reader for tests (see json_check.h).
 */
#include "tests/support/json_check.h"

#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

const char *tjson_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* A string at p: returns the byte after its closing quote (NULL: invalid);
 * copies its raw contents, escapes not decoded, into key[0..cap) if key. */
static const char *json_string(const char *p, char *key, size_t cap)
{
	if (*p != '"')
		return NULL;
	size_t n = 0;
	for (p++; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20) /* also the end of the text */
			return NULL;
		if (key != NULL && n + 1 < cap)
			key[n++] = *p;
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!is_hex(p[i]))
					return NULL;
		} else if (*p == '\0' || strchr("\"\\/bfnrt", *p) == NULL) {
			return NULL;
		}
		if (key != NULL && n + 1 < cap)
			key[n++] = *p;
	}
	if (key != NULL)
		key[n] = '\0';
	return p + 1;
}

static const char *json_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (is_digit(*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		if (!is_digit(*++p))
			return NULL;
		while (is_digit(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return NULL;
		while (is_digit(*p))
			p++;
	}
	return p;
}

static const char *json_value(const char *p, const char *path, const char **found, int depth);

/* The members of an object; p is just after its '{'. */
static const char *json_object(const char *p, const char *path, const char **found, int depth)
{
	p = tjson_ws(p);
	if (*p == '}')
		return p + 1;
	for (;;) {
		char key[64];
		p = json_string(tjson_ws(p), key, sizeof(key));
		if (p == NULL)
			return NULL;
		p = tjson_ws(p);
		if (*p++ != ':')
			return NULL;
		const char *sub = NULL;
		if (path != NULL) {
			size_t klen = strcspn(path, ".");
			if (strlen(key) == klen && strncmp(key, path, klen) == 0) {
				if (path[klen] == '\0')
					*found = tjson_ws(p);
				else
					sub = path + klen + 1;
			}
		}
		p = json_value(p, sub, found, depth + 1);
		if (p == NULL)
			return NULL;
		p = tjson_ws(p);
		if (*p == '}')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

/* The elements of an array; p is just after its '['. */
static const char *json_array(const char *p, int depth)
{
	p = tjson_ws(p);
	if (*p == ']')
		return p + 1;
	for (;;) {
		p = json_value(p, NULL, NULL, depth + 1);
		if (p == NULL)
			return NULL;
		p = tjson_ws(p);
		if (*p == ']')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p, const char *path, const char **found, int depth)
{
	if (depth > TJSON_DEPTH_MAX)
		return NULL;
	p = tjson_ws(p);
	if (*p == '{')
		return json_object(p + 1, path, found, depth);
	if (*p == '[')
		return json_array(p + 1, depth);
	if (*p == '"')
		return json_string(p, NULL, 0);
	if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
		return p + 4;
	if (strncmp(p, "false", 5) == 0)
		return p + 5;
	return json_number(p);
}

const char *tjson_value(const char *p, const char *path, const char **found)
{
	return json_value(p, path, found, 0);
}

int tjson_valid(const char *s, size_t len)
{
	char *copy = strndup(s, len);
	if (copy == NULL)
		return 0;
	const char *end = tjson_value(copy, NULL, NULL);
	int ok = end != NULL && *tjson_ws(end) == '\0';
	free(copy);
	return ok;
}
