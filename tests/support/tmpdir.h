/*
 * tmpdir.h — scratch directories for tests that write files (journals,
 * snapshots, a server's data dir and logs): a fresh one per test, removed
 * with everything in it afterwards.
 *
 * Free of Criterion (plain programs such as the crash test and the TSan
 * harness runs use it): failures come back as -errno and the caller
 * asserts or reports them.
 */
#ifndef BO_TEST_TMPDIR_H
#define BO_TEST_TMPDIR_H

#include <stddef.h>

/* Creates a new, empty directory "$TMPDIR/<name>-XXXXXX" (/tmp when TMPDIR
 * is unset or empty) with mode 0700 and writes its path into buf[0..cap).
 * Returns 0; -ENAMETOOLONG when the path does not fit in cap; or mkdtemp's
 * -errno (buf then holds the template). */
int tmpdir_make(char *buf, size_t cap, const char *name);

/* Removes path and everything below it, without following symbolic links.
 * Goes on past an entry it cannot remove and returns the -errno of the
 * first such failure, or 0 when all is gone (also when path did not
 * exist). */
int tmpdir_remove(const char *path);

#endif /* BO_TEST_TMPDIR_H */
