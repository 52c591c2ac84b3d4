/*
 * The gateway's log: one line per event on stderr,
 * "2026-11-25T12:00:00.123Z INFO  component message key=value".
 *
 * State: the level (set once at start-up from log_level). The libraries
 * (common, auth, bridge, store) never log: they return errors and messages,
 * and the gateway module that called them logs. Never log secrets (app
 * secrets, tokens, passwords): log ids.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

enum pg_log_level { PG_LOG_DEBUG = 0, PG_LOG_INFO, PG_LOG_WARN, PG_LOG_ERROR };

void pg_log_set_level(enum pg_log_level level);
int pg_log_parse_level(const char *s, enum pg_log_level *out);
int pg_log_enabled(enum pg_log_level level);
void pg_log(enum pg_log_level level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Route libwebsockets' own log lines through pg_log. */
void pg_log_hook_lws(void);

#endif
