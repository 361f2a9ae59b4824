/*
 * parse.h — whole numbers from command lines and configuration: the one
 * parser, so every tool accepts and refuses the same spellings.
 */
#ifndef BO_BASE_PARSE_H
#define BO_BASE_PARSE_H

#include <stdint.h>

/* Also accept hexadecimal after "0x"/"0X". Without it only decimal is taken;
 * octal never is (a seat "010" is ten). */
#define BO_PARSE_HEX 1u

/* Parses all of `s` as an unsigned whole number: digits only (no sign, no
 * spaces, nothing after), no overflow. Returns 0 and *out; -EINVAL when s is
 * NULL, empty or not such a number; -ERANGE when it is outside [min, max]
 * (*out is untouched on failure). */
int bo_parse_u64(const char *s, uint64_t min, uint64_t max, unsigned flags, uint64_t *out /* OUT */);

#endif /* BO_BASE_PARSE_H */
