/*
 * log.h — one line per event on stderr: "level=info ts=<UTC ISO-8601> k=v...".
 * Operators grep and ship these; the format is stable.
 */
#ifndef BO_BASE_LOG_H
#define BO_BASE_LOG_H

enum { BO_LOG_DEBUG = 0, BO_LOG_INFO = 1, BO_LOG_WARN = 2, BO_LOG_ERROR = 3 };

/* Lines below this level are dropped (default BO_LOG_INFO). */
void bo_log_level(int level);

/* Writes one line: level=..., ts=..., then the caller's "k=v ..." text. */
void bo_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* BO_BASE_LOG_H */
