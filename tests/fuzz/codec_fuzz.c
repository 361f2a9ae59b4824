/*
 * codec_fuzz.c — libFuzzer target for engine/codec.c.
 *
 * Proves, for any input bytes: decoding as a command and as a result never
 * crashes, never reads out of bounds and never leaks (with ASan, UBSan
 * and LeakSanitizer), and whatever is accepted is canonical: encoding the
 * decoded value reproduces exactly the bytes consumed, the value equals its
 * re-decoded self, and a decoded seat map passes bo_seatmap_check().
 *
 * Seat maps: the target is linked with
 * -Wl,--wrap=bo_seatmap_new,--wrap=bo_seatmap_free and allocates maps itself
 * (below), one heap block per array, because engine.c allocates them with
 * mimalloc, which ASan and LeakSanitizer cannot see. Live maps are counted
 * and must be zero after every input. bo_seatmap_check() is the engine's.
 *
 * Build and run (clang 14, ASan + UBSan, the --wrap flags above), from the
 * repository root: scripts/fuzz --seconds 60 codec
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/codec.h"
#include "tests/support/fuzz_check.h"
#include "tests/support/seatmap_count.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes into a fresh exact-size block and compares with the consumed
 * prefix of the input. */
static void check_canonical(int32_t consumed, int32_t size, const uint8_t *data, uint8_t *buf,
                            int32_t written)
{
	FUZZ_CHECK(size == consumed);
	FUZZ_CHECK(written == size);
	FUZZ_CHECK(memcmp(buf, data, (size_t)size) == 0);
}

static void fuzz_cmd(const uint8_t *data, size_t size)
{
	bo_cmd c;
	bo_seatmap *map = (bo_seatmap *)1;
	int32_t rc = codec_cmd_decode(data, size, &c, &map);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(map == NULL);
		return;
	}
	FUZZ_CHECK((size_t)rc <= size && c.map == map);
	if (map != NULL)
		FUZZ_CHECK(bo_seatmap_check(map) == BO_D_NONE);
	int32_t n = codec_cmd_size(&c);
	FUZZ_CHECK(n > 0);
	uint8_t *buf = malloc((size_t)n);
	FUZZ_CHECK(buf != NULL);
	int32_t written = codec_cmd_encode(&c, buf, (size_t)n);
	if (data[1] == CODEC_VERSION_V1) {
		/* A version 1 command (an old journal's) re-encodes as version
		 * 2: the same bytes with byte 1 = 2 and, for a claim op, the
		 * flags byte appended, which must carry the old any-client rule. */
		FUZZ_CHECK(written == n && buf[1] == CODEC_VERSION);
		int32_t v1_len = n;
		if (c.op == BO_OP_EXTEND || c.op == BO_OP_RELEASE || c.op == BO_OP_CONFIRM ||
		    c.op == BO_OP_CANCEL) {
			FUZZ_CHECK(buf[n - 1] == BO_CMD_F_ANY_CLIENT);
			v1_len = n - 1;
		}
		FUZZ_CHECK(v1_len == rc && buf[0] == data[0]);
		FUZZ_CHECK(memcmp(buf + 2, data + 2, (size_t)rc - 2) == 0);
	} else {
		check_canonical(rc, n, data, buf, written);
	}
	bo_cmd again;
	bo_seatmap *map2;
	FUZZ_CHECK(codec_cmd_decode(buf, (size_t)n, &again, &map2) == n);
	FUZZ_CHECK(codec_cmd_equal(&c, &again) && codec_cmd_equal(&again, &c));
	bo_seatmap_free(map2);
	bo_seatmap_free(map);
	free(buf);
}

static void fuzz_result(const uint8_t *data, size_t size)
{
	bo_result r;
	int32_t rc = codec_result_decode(data, size, &r);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL);
		return;
	}
	FUZZ_CHECK((size_t)rc <= size);
	int32_t n = codec_result_size(&r);
	FUZZ_CHECK(n > 0 && n <= (int32_t)CODEC_RESULT_SIZE_MAX);
	uint8_t buf[CODEC_RESULT_SIZE_MAX];
	check_canonical(rc, n, data, buf, codec_result_encode(&r, buf, sizeof(buf)));
	bo_result again;
	FUZZ_CHECK(codec_result_decode(buf, (size_t)n, &again) == n);
	FUZZ_CHECK(codec_result_equal(&r, &again) && codec_result_equal(&again, &r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Every input is tried as both kinds: byte 0 (the op) already steers
	 * each decoder, so no input byte is spent on choosing. */
	fuzz_cmd(data, size);
	fuzz_result(data, size);
	FUZZ_CHECK(seatmap_count_live == 0);
	return 0;
}
