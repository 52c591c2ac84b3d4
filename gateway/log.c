#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libwebsockets.h>

#include "log.h"

static enum pg_log_level min_level = PG_LOG_INFO;
static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void pg_log_set_level(enum pg_log_level level)
{
    min_level = level;
}

int pg_log_enabled(enum pg_log_level level)
{
    return level >= min_level;
}

int pg_log_parse_level(const char *s, enum pg_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, names[i]) || (i == PG_LOG_WARN && !strcasecmp(s, "warning"))) {
            *out = (enum pg_log_level)i;
            return 0;
        }
    }
    return -1;
}

void pg_log(enum pg_log_level level, const char *component, const char *fmt, ...)
{
    char msg[1024], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    if (level < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one event, one line: a message must not be able to forge a second log line */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-5s %s %s\n", ts, now.tv_nsec / 1000000, names[level], component, msg);
}

static void lws_emit(int level, const char *line)
{
    enum pg_log_level l = level == LLL_ERR ? PG_LOG_ERROR : level == LLL_WARN ? PG_LOG_WARN : PG_LOG_DEBUG;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* lws prefixes its own timestamp: drop it, ours is on the line */
    const char *m = buf;
    if (m[0] == '[' && strchr(m, ']'))
        m = strchr(m, ']') + 1;
    while (*m == ' ')
        m++;
    pg_log(l, "lws", "%s", m);
}

void pg_log_hook_lws(void)
{
    int mask = LLL_ERR | LLL_WARN;
    if (min_level == PG_LOG_DEBUG)
        mask |= LLL_NOTICE;
    lws_set_log_level(mask, lws_emit);
}
