/*
 * json.h — the one JSON string writer of the tools (boxoffice-replay dump,
 * boxoffice-cli --json). Output is always valid JSON, whatever the bytes:
 *  - '"' and '\' are escaped with a backslash;
 *  - bytes 0x20..0x7e are written as they are;
 *  - every other byte (controls, DEL 0x7f, and each byte >= 0x80) is written
 *    as \u00XX, i.e. the string's bytes read as Latin-1. Payment references
 *    and names are arbitrary bytes that need not be UTF-8: this keeps every
 *    byte recoverable (each \u00XX is one byte) and never emits invalid UTF-8.
 */
#ifndef BO_BASE_JSON_H
#define BO_BASE_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Writes s[0..len) as a quoted JSON string to f. */
void bo_json_str(FILE *f, const char *s, size_t len);

/* bo_json_str of a NUL-terminated string. */
void bo_json_cstr(FILE *f, const char *s);

#endif /* BO_BASE_JSON_H */
