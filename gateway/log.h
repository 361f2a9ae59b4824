/*
 * log.h — one line per event on stderr: "level=info ts=<UTC ISO-8601> k=v...".
 * Operators grep and ship these; the format is stable.
 */
#ifndef BO_GW_LOG_H
#define BO_GW_LOG_H

enum { GW_DEBUG = 0, GW_INFO = 1, GW_WARN = 2, GW_ERROR = 3 };

/* Lines below this level are dropped (default GW_INFO). */
void gw_log_level(int level);

/* Writes one line: level=..., ts=..., then the caller's "k=v ..." text. */
void gw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* BO_GW_LOG_H */
