/*
 * tokenfile.h — reading the shared token (--auth-token-file) from its file:
 * one reader, so the server and the command-line client accept and refuse
 * the same files with the same words.
 *
 * The rule: a regular file, readable by its owner only (no group or other
 * permission bits: a secret that every local user can read protects
 * nothing), holding one line of 1..BO_AUTH_TOKEN_LEN_MAX bytes, each a
 * visible ASCII character (0x21..0x7e: it travels in an HTTP
 * "Authorization: Bearer" header and in msgpack strings unchanged), and
 * nothing after the line but its newline ("\n" or "\r\n").
 *
 * The only file I/O in base/ besides the logger: a few hundred bytes, once
 * at start-up.
 */
#ifndef BO_BASE_TOKENFILE_H
#define BO_BASE_TOKENFILE_H

#include <stddef.h>

#include "base/limits.h"

/* Reads the token of the file at path into out[0..BO_AUTH_TOKEN_LEN_MAX]
 * (NUL-terminated; *len is its length without the NUL).
 * Returns 0; or, with err saying why in words a user can act on (naming
 * the file): -ENOENT/-EACCES/... (cannot open or read: strerror), -EINVAL
 * (not a regular file, empty, a character outside 0x21..0x7e, more than
 * one line), -E2BIG (longer than BO_AUTH_TOKEN_LEN_MAX), -EPERM (group or
 * others have any permission on it). out is zeroed on failure. */
int bo_token_file_read(const char *path, char out[BO_AUTH_TOKEN_LEN_MAX + 1] /* OUT */,
                       size_t *len /* OUT */, char *err /* OUT */, size_t errlen);

#endif /* BO_BASE_TOKENFILE_H */
