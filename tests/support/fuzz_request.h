/*
 * fuzz_request.h — the consistency check every decoded request gets in the
 * fuzz targets of the request decoders (wire_fuzz.c: msgpack, json_fuzz.c:
 * JSON): whatever the bytes, what a decoder accepted must make sense.
 */
#ifndef BO_TEST_FUZZ_REQUEST_H
#define BO_TEST_FUZZ_REQUEST_H

#include "protocol/wire.h"
#include "tests/support/fuzz_check.h"

/* Checks an accepted request of msg->count commands: every rejected
 * command has a reason and no seat map, every decoded one a real op and a
 * map exactly when it is a create_event, and msg->invalid counts the
 * rejected. Copies the decoded commands to valid[] (maps borrowed) and
 * returns how many there are. */
static inline uint32_t fuzz_check_request(const bo_cmd *cmds, const wire_cmd_error *errs,
                                          const wire_msg *msg, bo_cmd *valid /* OUT */)
{
	uint32_t n_valid = 0, n_bad = 0;
	for (uint32_t i = 0; i < msg->count; i++) {
		if (errs[i].status != BO_OK) {
			FUZZ_CHECK(errs[i].text[0] != '\0' && cmds[i].map == NULL);
			n_bad++;
			continue;
		}
		FUZZ_CHECK(cmds[i].op > BO_OP_NONE && cmds[i].op < BO_OP_COUNT);
		FUZZ_CHECK((cmds[i].op == BO_OP_CREATE_EVENT) == (cmds[i].map != NULL));
		valid[n_valid++] = cmds[i];
	}
	FUZZ_CHECK(n_bad == msg->invalid);
	return n_valid;
}

#endif /* BO_TEST_FUZZ_REQUEST_H */
