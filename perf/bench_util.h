/*
 * bench_util.h — what the benchmark programs share and nothing else uses:
 * the deterministic generator, seat maps of a given shape, latency
 * percentiles, the common command-line answers, the work directory's
 * removal and the server child's path and stop. Header only: each benchmark is one program. The
 * clock is base/clock.h's (bo_clock_ns).
 */
#ifndef BO_BENCH_UTIL_H
#define BO_BENCH_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/seatmap.h"

/* xorshift64*: deterministic, so runs are comparable. */
static inline uint64_t bench_rnd(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

/* Reports "PROG: WHAT failed (RC[: strerror(-RC)])" and exits 1. A negative
 * rc is an errno value; a positive one (a status, a count) is printed bare. */
static inline void bench_die(const char *prog, const char *what, int rc)
{
	fprintf(stderr, "%s: %s failed (%d%s%s)\n", prog, what, rc, rc < 0 ? ": " : "",
	        rc < 0 ? strerror(-rc) : "");
	exit(1);
}

/* Command-line errors exit 2, as every benchmark's --help promises. */
static inline void bench_bad_option(const char *prog, const char *arg)
{
	fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, arg);
	exit(2);
}

/* The value of --sync: 1 for "data" (fdatasync group commit), 0 for "none"
 * (UNSAFE, no fdatasync); anything else is a command-line error (exit 2). */
static inline int bench_sync_durable(const char *prog, const char *v)
{
	if (!strcmp(v, "data"))
		return 1;
	if (!strcmp(v, "none"))
		return 0;
	fprintf(stderr, "%s: --sync takes 'data' or 'none' (UNSAFE)\n", prog);
	exit(2);
}

/* A seat map of rows x per_row seats, `cats` categories in row bands.
 * Returns NULL when out of memory; the caller frees it with
 * bo_seatmap_free(). */
static inline bo_seatmap *bench_map(uint32_t rows, uint32_t per_row, uint32_t cats)
{
	bo_seatmap *m = bo_seatmap_new(rows, rows * per_row, 0);
	if (!m)
		return NULL;
	m->category_count = cats;
	for (uint32_t r = 0; r < rows; r++) {
		m->rows[r].section = (uint16_t)(r / 25);
		m->rows[r].seats = (uint16_t)per_row;
		memset(m->categories + (size_t)r * per_row, (int)(r * cats / rows), per_row);
	}
	return m;
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Value at quantile q (0..1) of a sorted array; 0 when it is empty. */
static inline int64_t bench_quantile(const int64_t *sorted, uint64_t n, double q)
{
	if (n == 0)
		return 0;
	uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

/* The percentiles every latency figure reports, in the samples' unit. */
typedef struct bench_pcts {
	int64_t p50, p99, p999;
} bench_pcts;

/* Sorts samples[0..n) in place and returns their percentiles (all 0 when
 * n is 0). */
static inline bench_pcts bench_percentiles(int64_t *samples, uint64_t n)
{
	qsort(samples, n, sizeof(int64_t), bench_cmp_i64);
	return (bench_pcts){
	        .p50 = bench_quantile(samples, n, 0.50),
	        .p99 = bench_quantile(samples, n, 0.99),
	        .p999 = bench_quantile(samples, n, 0.999),
	};
}

static inline int bench_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes the directory tree at dir (a benchmark's own work directory),
 * without following symbolic links. Stops at the first entry it cannot
 * remove and says so on stderr; the benchmark's figures stand either way. */
static inline void bench_remove_dir(const char *prog, const char *dir)
{
	if (nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "%s: could not remove %s: %s\n", prog, dir, strerror(errno));
}

/* The server built next to the running benchmark:
 * ../gateway/boxoffice-server from its own directory. */
static inline const char *bench_default_server(const char *prog)
{
	static char path[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		bench_die(prog, "readlink /proc/self/exe", -errno);
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../gateway/boxoffice-server", dirname(self));
	return path;
}

/* Stops the server child *pid (SIGTERM: its clean stop) and waits for it,
 * then removes dir (the run's work directory) when it is set; both are
 * cleared, so a second call does nothing. */
static inline void bench_server_stop(const char *prog, pid_t *pid, char *dir)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		int status;
		waitpid(*pid, &status, 0);
		*pid = 0;
	}
	if (dir[0]) {
		bench_remove_dir(prog, dir);
		dir[0] = '\0';
	}
}

#endif /* BO_BENCH_UTIL_H */
