/*
 * The configuration-file reader shared by the gateway and the broker plugin.
 * It only tokenises; what a key means is decided by the caller's option table,
 * so the two readers of one file cannot disagree on its syntax.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg_common.h"

#define PG_CONF_MAX_LINE 4096

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* A '#' starts a comment only at line start or after a blank, so values such as "#general" survive. */
static void strip_comment(char *s)
{
    int quoted = 0;
    for (char *p = s; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == '#' && !quoted && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

int pg_conf_read(const char *path, pg_conf_cb cb, void *ud, char *err, size_t errlen)
{
    char line[PG_CONF_MAX_LINE + 2];
    char stype[64] = "", sname[256] = "";
    int lineno = 0, rc = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return PG_EIO;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n > PG_CONF_MAX_LINE && line[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, PG_CONF_MAX_LINE);
            rc = PG_EINVAL;
            goto out;
        }
        strip_comment(line);
        char *s = trim(line);
        if (!*s)
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || *trim(end + 1)) {
                snprintf(err, errlen, "%s:%d: expected \"[type name]\"", path, lineno);
                rc = PG_EINVAL;
                goto out;
            }
            *end = '\0';
            char *body = trim(s + 1);
            char *sp = body + strcspn(body, " \t");
            char *name = *sp ? trim(sp + 1) : sp;
            *sp = '\0';
            if (!*body || !*name || strlen(body) >= sizeof stype || strlen(name) >= sizeof sname) {
                snprintf(err, errlen, "%s:%d: expected \"[type name]\"", path, lineno);
                rc = PG_EINVAL;
                goto out;
            }
            snprintf(stype, sizeof stype, "%s", body);
            snprintf(sname, sizeof sname, "%s", name);
            if ((rc = cb(ud, stype, sname, NULL, NULL, lineno)) != 0)
                goto out;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected \"name = value\"", path, lineno);
            rc = PG_EINVAL;
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        if (!*key) {
            snprintf(err, errlen, "%s:%d: missing option name", path, lineno);
            rc = PG_EINVAL;
            goto out;
        }
        if ((rc = cb(ud, stype, sname, key, val, lineno)) != 0)
            goto out;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = PG_EIO;
    }
out:
    fclose(f);
    return rc;
}

int pg_passwd_users(const char *path, pg_passwd_cb cb, void *ud, char *err, size_t errlen)
{
    char line[PG_CONF_MAX_LINE + 2];
    int rc = 0, skipping = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return PG_EIO;
    }
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        int partial = n && line[n - 1] != '\n';
        /* the rest of an overlong line (a long hash) is not a new line */
        int was_skipping = skipping;
        skipping = partial;
        if (was_skipping)
            continue;
        char *colon = strchr(line, ':');
        if (line[0] == '#' || !colon)
            continue;
        *colon = '\0';
        char *user = trim(line);
        if (*user && (rc = cb(ud, user)) != 0)
            break;
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = PG_EIO;
    }
    fclose(f);
    return rc;
}

int pg_parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return PG_EINVAL;
}

int pg_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return PG_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return PG_EINVAL;
    uint64_t mul = 1;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k': mul = 1024ULL; end++; break;
    case 'm': mul = 1024ULL * 1024; end++; break;
    case 'g': mul = 1024ULL * 1024 * 1024; end++; break;
    default: return PG_EINVAL;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || (v && mul > UINT64_MAX / v))
        return PG_EINVAL;
    *out = v * mul;
    return 0;
}

int pg_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return PG_EINVAL;
    *out = v;
    return 0;
}
