/*
 * log.c — key=value log lines (see log.h). One fprintf per line, so lines
 * from different threads never interleave mid-line (stderr is unbuffered
 * and POSIX stdio locks the stream per call).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int min_level = BO_LOG_INFO;

void bo_log_level(int level) { min_level = level; }

void bo_log(int level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (level < min_level)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char line[2048];
	int n = snprintf(line, sizeof(line), "level=%s ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
			 names[level < 0 ? 0 : level > 3 ? 3 : level], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
