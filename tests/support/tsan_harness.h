/*
 * tsan_harness.h — a stand-in for Criterion in the ThreadSanitizer build.
 *
 * Criterion 2.4.1 aborts at start-up under ThreadSanitizer ("Could not
 * initialize inheritable arena", Criterion issue #274): its sandbox maps a
 * shared arena at fixed addresses in a range TSan reserves for its shadow
 * memory. The threaded tests (tests/shard/ring_test.c, shard_test.c,
 * tests/client/client_test.c) therefore include this header instead of
 * <criterion/criterion.h> when built with -fsanitize=thread, and run the same
 * test bodies through tsan_harness.c's main():
 *
 *     #if defined(__SANITIZE_THREAD__)
 *     #include "tests/support/tsan_harness.h"
 *     #else
 *     #include <criterion/criterion.h>
 *     #endif
 *
 * As under Criterion, each test runs in a child process of its own, in the
 * order of registration, so that a failed or crashed test cannot hide the
 * others; the program exits 1 when any test failed. A test declared with
 * .signal = SIG passes only when its child dies of SIG; .timeout = N (in
 * seconds) kills a child that runs longer (SIGALRM: a failure). A failed
 * check prints the test, the place, the expression and the message, and
 * ends the child with exit status 1.
 *
 * Only the assertions these tests use are provided; the optional message
 * must begin with a string literal, as in Criterion. The binary links
 * libbo_test_tsan_harness (tests/meson.build), whose code compiles to
 * nothing outside the TSan build.
 */
#ifndef BO_TEST_TSAN_HARNESS_H
#define BO_TEST_TSAN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The options a Test() may give (the subset of Criterion's these tests use). */
struct tsan_harness_opts {
	int pad_;    /* lets Test() take an empty option list */
	int signal;  /* the signal the test must die of; 0: it must return */
	int timeout; /* seconds before the child is killed; 0: none */
};

/* Registers a test (called by Test() before main()); aborts with a message
 * when more tests are registered than the harness holds. */
void tsan_harness_add(const char *name, void (*fn)(void), struct tsan_harness_opts opts);

/* When !ok: prints "[FAIL] test: file:line: expr" and, when fmt holds more
 * than the leading space the macros add, ": " and the message; then exits 1. */
__attribute__((format(printf, 5, 6))) void
tsan_harness_check(bool ok, const char *expr, const char *file, int line, const char *fmt, ...);

/* cr_log_info: one line "[----] test: message" on stderr. */
__attribute__((format(printf, 1, 2))) void tsan_harness_log(const char *fmt, ...);

/* Registration runs before main(), like Criterion's. */
#define Test(suite, name, ...)                                                        \
	static void suite##_##name(void);                                             \
	__attribute__((constructor)) static void suite##_##name##_register(void)      \
	{                                                                             \
		tsan_harness_add(#suite "::" #name, suite##_##name,                   \
		                 (struct tsan_harness_opts){.pad_ = 0, __VA_ARGS__}); \
	}                                                                             \
	static void suite##_##name(void)

/* " " in front: the format is never empty, and a message literal follows it. */
#define TSAN_HARNESS_CHECK(ok, expr, ...) \
	tsan_harness_check((ok), (expr), __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert(e, ...) TSAN_HARNESS_CHECK((e), #e, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) TSAN_HARNESS_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) TSAN_HARNESS_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) TSAN_HARNESS_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) TSAN_HARNESS_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) TSAN_HARNESS_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) TSAN_HARNESS_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) TSAN_HARNESS_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) TSAN_HARNESS_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) \
	TSAN_HARNESS_CHECK(strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_assert_str_empty(s, ...) TSAN_HARNESS_CHECK((s)[0] == '\0', #s " is empty", __VA_ARGS__)
#define cr_log_info(...) tsan_harness_log(__VA_ARGS__)

#endif /* BO_TEST_TSAN_HARNESS_H */
