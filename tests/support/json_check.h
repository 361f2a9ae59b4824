/*
 * json_check.h — a small strict JSON reader for tests that check a tool's
 * --json output (tests/client/cli_test.c, tests/replayer/replay_test.c):
 * it validates a whole document against the RFC 8259 grammar (no
 * extensions: no trailing commas, no leading zeros, no bare control
 * characters, only the standard escapes) and finds the value at a dotted
 * path of object member names ("avail.free"). Validation, not decoding:
 * strings are not unescaped, numbers not converted.
 *
 * Free of Criterion: answers are return values.
 */
#ifndef BO_TEST_JSON_CHECK_H
#define BO_TEST_JSON_CHECK_H

#include <stddef.h>

/* Nesting deeper than this is refused (it bounds the recursion). */
#define TJSON_DEPTH_MAX 16

/* p after any JSON whitespace (space, tab, newline, carriage return). */
const char *tjson_ws(const char *p);

/* The JSON value at p (leading whitespace skipped) in a NUL-terminated
 * text: returns the byte just after it, or NULL when it is not valid JSON.
 * When path is not NULL, *found is set to the start of the value at that
 * path of member names (the first member of that name at each level), and
 * left alone when there is none; found may be NULL when path is. */
const char *tjson_value(const char *p, const char *path, const char **found);

/* 1 when s[0..len) is exactly one JSON value, with only whitespace around
 * it; 0 otherwise (also when memory for a NUL-terminated copy runs out). */
int tjson_valid(const char *s, size_t len);

#endif /* BO_TEST_JSON_CHECK_H */
