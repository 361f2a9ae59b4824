/*
 * base_test.c — the shared helpers of base/ that every tool's command line
 * and output go through: bo_parse_u64 (what a number is, and what is
 * refused: signs, spaces, empty, trailing bytes, overflow, octal; hex only
 * when asked), bo_json_str (every byte outside 0x20..0x7e escaped, so the
 * output is ASCII and valid JSON whatever the input) and the little-endian
 * loads and stores (byte order fixed whatever the host).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hist.h"
#include "base/json.h"
#include "base/le.h"
#include "base/parse.h"

Test(parse, whole_numbers)
{
	uint64_t v = 0;
	cr_assert_eq(bo_parse_u64("0", 0, UINT64_MAX, 0, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(bo_parse_u64("18446744073709551615", 0, UINT64_MAX, 0, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(bo_parse_u64("010", 0, UINT64_MAX, 0, &v), 0);
	cr_assert_eq(v, 10, "never octal");
	cr_assert_eq(bo_parse_u64("0x1F", 0, UINT64_MAX, BO_PARSE_HEX, &v), 0);
	cr_assert_eq(v, 31);
	cr_assert_eq(bo_parse_u64("0XfF", 0, UINT64_MAX, BO_PARSE_HEX, &v), 0);
	cr_assert_eq(v, 255);
}

Test(parse, refuses_what_is_not_a_whole_number)
{
	const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "x", "0x", "0x1F", "1.0", "1e3", "١"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 77;
		cr_assert_eq(bo_parse_u64(bad[i], 0, UINT64_MAX, 0, &v), -EINVAL, "'%s'", bad[i]);
		cr_assert_eq(v, 77, "'%s' wrote its output", bad[i]);
	}
	uint64_t v = 77;
	cr_assert_eq(bo_parse_u64(NULL, 0, UINT64_MAX, 0, &v), -EINVAL);
	cr_assert_eq(bo_parse_u64("0x", 0, UINT64_MAX, BO_PARSE_HEX, &v), -EINVAL);
	cr_assert_eq(bo_parse_u64("0xg", 0, UINT64_MAX, BO_PARSE_HEX, &v), -EINVAL);
	/* An overflowing number followed by garbage is still not a number. */
	cr_assert_eq(bo_parse_u64("99999999999999999999x", 0, UINT64_MAX, 0, &v), -EINVAL);
	cr_assert_eq(v, 77);
}

Test(parse, range)
{
	uint64_t v = 77;
	cr_assert_eq(bo_parse_u64("18446744073709551616", 0, UINT64_MAX, 0, &v), -ERANGE, "2^64");
	cr_assert_eq(bo_parse_u64("0x10000000000000000", 0, UINT64_MAX, BO_PARSE_HEX, &v), -ERANGE);
	cr_assert_eq(bo_parse_u64("0", 1, 64, 0, &v), -ERANGE);
	cr_assert_eq(bo_parse_u64("65", 1, 64, 0, &v), -ERANGE);
	cr_assert_eq(v, 77);
	cr_assert_eq(bo_parse_u64("64", 1, 64, 0, &v), 0);
	cr_assert_eq(v, 64);
	cr_assert_eq(bo_parse_u64("1", 1, 64, 0, &v), 0);
	cr_assert_eq(v, 1);
}

static char *json_of(const char *s, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	cr_assert_not_null(f);
	bo_json_str(f, s, len);
	fclose(f);
	return buf;
}

Test(json, escapes_every_byte_outside_printable_ascii)
{
	char *out = json_of("a\"b\\c", 5);
	cr_assert_str_eq(out, "\"a\\\"b\\\\c\"");
	free(out);
	const char raw[] = {'x', 0x00, 0x1f, 0x7f, (char)0xc3, (char)0xa9, (char)0xff, ' ', '~'};
	out = json_of(raw, sizeof(raw));
	cr_assert_str_eq(out, "\"x\\u0000\\u001f\\u007f\\u00c3\\u00a9\\u00ff ~\"");
	free(out);
	/* Every byte value: the output is printable ASCII only. */
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	out = json_of(all, sizeof(all));
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		cr_assert(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in the output", *p);
	free(out);
}

Test(le, fixed_byte_order)
{
	uint8_t b[8];
	bo_le_store64(b, 0x0102030405060708ull);
	const uint8_t want[8] = {8, 7, 6, 5, 4, 3, 2, 1};
	cr_assert_arr_eq(b, want, 8);
	cr_assert_eq(bo_le_load64(b), 0x0102030405060708ull);
	cr_assert_eq(bo_le_load32(b), 0x05060708u);
	cr_assert_eq(bo_le_load16(b), 0x0708u);
	bo_le_store32(b, 0xa1b2c3d4u);
	cr_assert_eq(b[0], 0xd4);
	cr_assert_eq(b[3], 0xa1);
	bo_le_store16(b, 0xbeefu);
	cr_assert_eq(b[0], 0xef);
	cr_assert_eq(b[1], 0xbe);
}

/* Bucket i holds 2^(i-1) < v <= 2^i (bucket 0: v <= 1), the top bucket
 * everything above 2^(BO_HIST_TOP-1); reading gives cumulative-ready
 * counts whose total is the count of values observed, and their sum. */
Test(hist, buckets_and_read)
{
	cr_assert_eq(bo_hist_index(0), 0);
	cr_assert_eq(bo_hist_index(1), 0);
	cr_assert_eq(bo_hist_index(2), 1);
	cr_assert_eq(bo_hist_index(3), 2);
	cr_assert_eq(bo_hist_index(4), 2);
	cr_assert_eq(bo_hist_index(5), 3);
	cr_assert_eq(bo_hist_index(1000), 10);
	cr_assert_eq(bo_hist_index(1024), 10);
	cr_assert_eq(bo_hist_index(1025), 11);
	for (uint32_t i = 1; i < BO_HIST_TOP; i++) {
		cr_assert_eq(bo_hist_index(bo_hist_bound(i)), i, "bound of %u", i);
		cr_assert_eq(bo_hist_index(bo_hist_bound(i) + 1), i + 1, "just over the bound of %u", i);
	}
	cr_assert_eq(bo_hist_index(UINT64_MAX), BO_HIST_TOP);
	static bo_hist h;
	const uint64_t vals[] = {0, 1, 2, 3, 1000, 5000000, UINT32_MAX};
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		bo_hist_observe(&h, vals[i]);
		sum += vals[i];
	}
	bo_hist_snap s;
	bo_hist_read(&h, &s);
	cr_assert_eq(s.count, 7);
	cr_assert_eq(s.sum, sum);
	cr_assert_eq(s.n[0], 2);
	cr_assert_eq(s.n[1], 1);
	cr_assert_eq(s.n[2], 1);
	cr_assert_eq(s.n[10], 1);
	cr_assert_eq(s.n[BO_HIST_TOP], 2, "5 s and 4295 s are over 4.2 s");
}
