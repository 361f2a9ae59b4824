/*
 * uring_skip.h — the journal tests need io_uring. Where the kernel or a
 * sandbox refuses it (ENOSYS, EPERM) a test is skipped, loudly, rather
 * than failed: the machine cannot run it, the code is not at fault. Any
 * other failure to set up a ring fails the test.
 *
 * Criterion only (it skips and fails through Criterion): used by the
 * journal tests, which are all Criterion tests.
 */
#ifndef BO_TEST_URING_SKIP_H
#define BO_TEST_URING_SKIP_H

/* Sets up and tears down a small io_uring. Returns when that worked;
 * otherwise skips the current test (ENOSYS, EPERM: "io_uring refused by
 * this kernel/sandbox") or fails it (any other error). */
void uring_skip_unless_available(void);

#endif /* BO_TEST_URING_SKIP_H */
