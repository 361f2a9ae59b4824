/*
 * fuzz_check.h — the oracle check of the libFuzzer targets (tests/fuzz/).
 * A failed check aborts so that libFuzzer records the input as a crash;
 * unlike assert() it does not depend on NDEBUG.
 */
#ifndef BO_TEST_FUZZ_CHECK_H
#define BO_TEST_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                         \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

#endif /* BO_TEST_FUZZ_CHECK_H */
