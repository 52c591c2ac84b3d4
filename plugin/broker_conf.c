/*
 * Reads the few facts of Mosquitto's configuration file the plugin needs (see broker_conf.h).
 *
 * Mosquitto 2.0's format: one option per line, `#` comments at the start of a line, the option name up to the
 * first space and its value after it (blanks trimmed); `include_dir DIR` reads DIR's *.conf files in name order
 * (case-insensitive). Only presence matters here, so options that Mosquitto would reject are not validated: the
 * broker itself refuses to start with them. Nothing is kept but counts and flags; password_file paths go to the
 * caller's callback (the plugin reads their usernames); no secret is read or logged.
 */
#define _GNU_SOURCE /* getline, strcasecmp via strings.h */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker_conf.h"
#include "pg_common.h"

/* /proc/self/cmdline of a broker is a handful of arguments; more than this is not a command line we know. */
#define MAX_CMDLINE_BYTES 65536
/* Mosquitto reads include_dir from the main file only; one level is all a valid configuration can have. */
#define MAX_INCLUDE_DEPTH 1

int pg_broker_conf_path(char *buf, size_t len)
{
    char *args = malloc(MAX_CMDLINE_BYTES + 1);
    size_t n;
    int rc = PG_ENOTFOUND;
    FILE *f;

    if (!args)
        return PG_ENOMEM;
    if (!(f = fopen("/proc/self/cmdline", "r"))) {
        free(args);
        return PG_EIO;
    }
    n = fread(args, 1, MAX_CMDLINE_BYTES, f);
    fclose(f);
    args[n] = '\0';
    /* NUL-separated arguments; the option's value is the next one, as Mosquitto's argument parser reads it. */
    for (size_t i = 0; i < n; i += strlen(args + i) + 1) {
        const char *a = args + i;
        if (strcmp(a, "-c") != 0 && strcmp(a, "--config-file") != 0)
            continue;
        i += strlen(a) + 1;
        if (i >= n)
            break;
        if (strlen(args + i) >= len) {
            rc = PG_ELIMIT;
            break;
        }
        snprintf(buf, len, "%s", args + i);
        rc = 0; /* the last one wins, as in Mosquitto */
    }
    free(args);
    return rc;
}

static int conf_name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcasecmp((*a)->d_name, (*b)->d_name);
}

static int conf_name_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);

    return n > 5 && !strcmp(d->d_name + n - 5, ".conf");
}

/* One reading of a configuration: where the facts go, and who gets the password_file paths. */
struct reader {
    struct pg_broker_conf *out;
    pg_broker_path_cb on_password_file; /* NULL: not wanted */
    void *ud;
    char *err;
    size_t errlen;
};

static int read_file(struct reader *r, const char *path, int depth);

static int read_dir(struct reader *r, const char *dir, int depth)
{
    struct dirent **names = NULL;
    int count = scandir(dir, &names, conf_name_filter, conf_name_cmp), rc = 0;

    if (count < 0) {
        snprintf(r->err, r->errlen, "include_dir %s: %s", dir, strerror(errno));
        return PG_EIO;
    }
    for (int i = 0; i < count; i++) {
        size_t n = strlen(dir) + strlen(names[i]->d_name) + 2;
        char *path = rc ? NULL : malloc(n);
        if (!rc && !path)
            rc = PG_ENOMEM;
        if (!rc) {
            snprintf(path, n, "%s/%s", dir, names[i]->d_name);
            rc = read_file(r, path, depth + 1);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int read_file(struct reader *r, const char *path, int depth)
{
    struct pg_broker_conf *out = r->out;
    char *line = NULL, *key, *value, *end;
    size_t cap = 0;
    int rc = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        snprintf(r->err, r->errlen, "%s: %s", path, strerror(errno));
        return PG_EIO;
    }
    while (!rc && getline(&line, &cap, f) >= 0) {
        if (line[0] == '#')
            continue;
        key = line;
        while (*key == ' ')
            key++;
        value = key + strcspn(key, " \r\n");
        if (*value == ' ')
            *value++ = '\0';
        else
            *value = '\0';
        while (isspace((unsigned char)*value))
            value++;
        end = value + strlen(value);
        while (end > value && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (!strcmp(key, "acl_file") && *value)
            out->acl_file = 1;
        else if (!strcmp(key, "password_file") && *value) {
            out->password_file = 1;
            if (r->on_password_file)
                rc = r->on_password_file(r->ud, value);
        } else if (!strcmp(key, "allow_anonymous"))
            out->allow_anonymous = !strcmp(value, "true");
        else if (!strcmp(key, "per_listener_settings"))
            out->per_listener_settings = !strcmp(value, "true");
        else if ((!strcmp(key, "plugin") || !strcmp(key, "auth_plugin")) && *value)
            out->plugins++;
        else if (!strcmp(key, "include_dir") && *value && depth < MAX_INCLUDE_DEPTH)
            rc = read_dir(r, value, depth);
    }
    if (!rc && ferror(f)) {
        snprintf(r->err, r->errlen, "%s: read error", path);
        rc = PG_EIO;
    }
    free(line);
    fclose(f);
    return rc;
}

int pg_broker_conf_read(const char *path, struct pg_broker_conf *out, pg_broker_path_cb on_password_file, void *ud,
                        char *err, size_t errlen)
{
    struct reader r = {.out = out, .on_password_file = on_password_file, .ud = ud, .err = err, .errlen = errlen};

    memset(out, 0, sizeof(*out));
    out->allow_anonymous = -1;
    err[0] = '\0';
    return read_file(&r, path, 0);
}
