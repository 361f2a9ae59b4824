/*
 * uring_skip.c — skip a journal test where io_uring is refused (see
 * uring_skip.h).
 */
#include "tests/support/uring_skip.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <liburing.h>
#include <string.h>

void uring_skip_unless_available(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(8, &ring, 0);
	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring refused by this kernel/sandbox (%s): journal untested here",
		             strerror(-rc));
	cr_assert_eq(rc, 0, "io_uring_queue_init: %s", strerror(-rc));
	io_uring_queue_exit(&ring);
}
