/*
 * journal_fuzz.c — libFuzzer target for the journal reader (journal.c) and
 * the entry decoder (entry.c): whatever bytes a segment file holds, reading
 * it never crashes, never reads out of bounds, never leaks, and every record
 * it hands out is whole (its payload lies inside what was read).
 *
 * Two modes, chosen by the first input byte:
 *   even  the rest of the input is the segment file itself (raw bytes);
 *   odd   the harness first writes a VALID journal whose record payloads are
 *         slices of the input, then damages the file at offsets and with
 *         values taken from the input (flip, zero, truncate), so the fuzzer
 *         reaches the record-level checks and the torn-tail/corruption
 *         logic instead of stopping at the segment header.
 * Every record read is also decoded as a journal entry (entry_decode).
 *
 * Build and run: scripts/fuzz journal (clang 14, -fsanitize=fuzzer,address,
 * undefined).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard/entry.h"
#include "journal/journal.h"
#include "tests/support/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];

/* Empties the shard directory (no fork/exec per input: speed). */
static void rm_shard_dir(void)
{
	char dir[128], path[512];
	snprintf(dir, sizeof(dir), "%s/shard-0000", root);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FUZZ_CHECK(unlink(path) == 0);
	}
	closedir(d);
	FUZZ_CHECK(rmdir(dir) == 0);
}

static void options(journal_options *opt)
{
	journal_options_default(opt);
	opt->segment_bytes = 64 * 1024;
	opt->buffer_bytes = 16 * 1024;
	opt->payload_bytes_max = 4096;
}

/* Reads the whole shard, checking what the reader hands out. */
static void read_all(void)
{
	journal_options opt;
	options(&opt);
	journal_reader *r;
	char err[JOURNAL_ERR_LEN];
	if (journal_reader_open(root, 0, &opt, &r, err, sizeof(err)) != 0)
		return;
	journal_record rec;
	int rc;
	uint64_t last = 0;
	while ((rc = journal_reader_next(r, &rec)) == 1) {
		FUZZ_CHECK(rec.seq == last + 1);
		FUZZ_CHECK(rec.payload_len <= opt.payload_bytes_max);
		last = rec.seq;
		entry en;
		bo_seatmap *map = NULL;
		if (entry_decode(rec.payload, rec.payload_len, &en, &map) == 0)
			bo_seatmap_free(map);
		else
			FUZZ_CHECK(map == NULL);
	}
	FUZZ_CHECK(rc == 0 || rc < 0);
	journal_reader_close(r);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/journal-fuzz-XXXXXX");
		FUZZ_CHECK(mkdtemp(root) != NULL);
	}
	if (size < 1)
		return 0;
	rm_shard_dir();
	char dir[128], seg[192];
	snprintf(dir, sizeof(dir), "%s/shard-0000", root);
	snprintf(seg, sizeof(seg), "%s/00000000000000000001.seg", dir);
	if ((data[0] & 1) == 0) {
		FUZZ_CHECK(mkdir(dir, 0755) == 0);
		write_file(seg, data + 1, size - 1);
		read_all();
		return 0;
	}
	/* A valid journal from the input's bytes: records of up to 64 bytes. */
	journal_options opt;
	options(&opt);
	opt.sync = JOURNAL_SYNC_NONE_UNSAFE; /* the page cache is all a reader sees */
	journal *j;
	journal_recovery rec;
	char err[JOURNAL_ERR_LEN];
	if (journal_open(root, 0, &opt, &j, &rec, err, sizeof(err)) != 0)
		return 0; /* e.g. io_uring refused: nothing to fuzz */
	size_t pos = 1, damage_at = size > 16 ? size - 16 : size;
	while (pos < damage_at) {
		size_t len = data[pos] % 64u;
		if (pos + 1 + len > damage_at)
			len = damage_at - pos - 1;
		FUZZ_CHECK(journal_append(j, (int64_t)pos, data + pos + 1, (uint32_t)len, NULL) == 0);
		pos += 1 + len;
	}
	uint64_t durable;
	FUZZ_CHECK(journal_close(j, &durable) == 0);
	/* Damage: up to 4 (offset, value) pairs from the last 16 bytes. */
	int fd = open(seg, O_RDWR);
	if (fd < 0) {
		FUZZ_CHECK(errno == ENOENT); /* nothing appended: no segment yet */
		read_all();
		return 0;
	}
	struct stat st;
	FUZZ_CHECK(fstat(fd, &st) == 0);
	for (size_t k = damage_at; k + 4 <= size; k += 4) {
		uint32_t off = ((uint32_t)data[k] | (uint32_t)data[k + 1] << 8 | (uint32_t)data[k + 2] << 16) %
			       (uint32_t)(st.st_size ? st.st_size : 1);
		uint8_t v = data[k + 3];
		if (v == 0xff) {
			FUZZ_CHECK(ftruncate(fd, off) == 0);
		} else {
			uint8_t b;
			if (pread(fd, &b, 1, off) == 1) {
				b = v & 0x80 ? 0 : (uint8_t)(b ^ (1u << (v & 7)));
				FUZZ_CHECK(pwrite(fd, &b, 1, off) == 1);
			}
		}
	}
	close(fd);
	read_all();
	return 0;
}
