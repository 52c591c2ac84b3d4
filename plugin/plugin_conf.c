/*
 * pushgate.conf as the broker plugin reads it: the [app ID] sections (credentials, through the auth library),
 * the global options the plugin shares with the gateway, and the broker's own accounts (broker_username,
 * broker_password_file), which an app of the same id never shadows. Options and sections that only the
 * gateway reads are skipped. A reload builds a whole new struct plugin_conf and swaps it in.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define DEFAULT_TOPIC_ROOT "pushgate"
#define DEFAULT_MAX_CHANNEL_BYTES 200
#define DEFAULT_DEVICE_CHANNEL "private-pushgate-devices"
#define MAX_TOPIC_ROOT_BYTES 128
#define DEFAULT_BROKER_USERNAME "pushgate"

void app_free(struct app_entry *app)
{
    if (!app)
        return;
    pg_app_creds_clear(&app->creds);
    free(app);
}

void accounts_free(struct account **set)
{
    struct account *acc, *tmp;

    HASH_ITER(hh, *set, acc, tmp) {
        HASH_DEL(*set, acc);
        free(acc->name);
        free(acc);
    }
}

void conf_free(struct plugin_conf *conf)
{
    struct app_entry *app, *tmp;

    if (!conf)
        return;
    for (app = conf->apps; app; app = tmp) {
        tmp = app->hh.next;
        HASH_DEL(conf->apps, app);
        app_free(app);
    }
    accounts_free(&conf->accounts);
    free(conf->topic_root);
    free(conf->apps_db);
    free(conf->device_channel);
    free(conf->broker_username);
    free(conf->passwd_file);
    free(conf);
}

struct conf_reader {
    const char *path;
    char *base_dir;
    struct plugin_conf *conf;
    struct app_entry *cur; /* the [app] section being read; NULL in other sections */
    int in_global;
    char *err;
    size_t errlen;
};

static int conf_fail(struct conf_reader *r, int line, const char *key, const char *msg)
{
    if (key)
        snprintf(r->err, r->errlen, "%s:%d: %s: %s", r->path, line, key, msg);
    else
        snprintf(r->err, r->errlen, "%s:%d: %s", r->path, line, msg);
    return PG_EINVAL;
}

/* Names and bounds follow the gateway's option table (gateway/config.c): one file must mean the same to both. */
static int replace_str(char **slot, const char *value)
{
    char *dup = strdup(value);

    if (!dup)
        return PG_ENOMEM;
    free(*slot);
    *slot = dup;
    return 0;
}

/* A file option: "" is none, a relative path is relative to the config file, as the gateway resolves it. */
static int resolve_path(struct conf_reader *r, char **slot, const char *value)
{
    size_t n;

    free(*slot);
    *slot = NULL;
    if (!value[0])
        return 0;
    if (value[0] == '/')
        return replace_str(slot, value);
    n = strlen(r->base_dir) + strlen(value) + 2;
    if (!(*slot = malloc(n)))
        return PG_ENOMEM;
    snprintf(*slot, n, "%s/%s", r->base_dir, value);
    return 0;
}

/* Adds name to the set *ud (a struct account **); a pg_passwd_cb. */
int account_add(void *ud, const char *name)
{
    struct account **set = ud;
    struct account *acc = NULL;
    size_t len = strlen(name);

    HASH_FIND(hh, *set, name, len, acc);
    if (acc)
        return 0;
    if (!(acc = calloc(1, sizeof(*acc))) || !(acc->name = strdup(name))) {
        free(acc);
        return PG_ENOMEM;
    }
    plugin_hash_oom = 0;
    HASH_ADD_KEYPTR(hh, *set, acc->name, len, acc);
    if (plugin_hash_oom) {
        free(acc->name);
        free(acc);
        return PG_ENOMEM;
    }
    return 0;
}

static int conf_global(struct conf_reader *r, const char *key, const char *value, int line)
{
    struct plugin_conf *conf = r->conf;
    long long v;
    uint64_t size;

    if (!strcmp(key, "topic_root")) {
        size_t len = strlen(value);
        if (!len || len > MAX_TOPIC_ROOT_BYTES || strpbrk(value, "+#") || value[0] == '/' || value[len - 1] == '/' ||
            value[0] == '$' || !pg_utf8_valid(value, len))
            return conf_fail(r, line, key, "expected a topic prefix without wildcards or leading/trailing '/'");
        char *dup = strdup(value);
        if (!dup)
            return PG_ENOMEM;
        free(conf->topic_root);
        conf->topic_root = dup;
        conf->topic_root_len = len;
    } else if (!strcmp(key, "regex_match_limit")) {
        if (pg_parse_int(value, 100, 100000000LL, &v))
            return conf_fail(r, line, key, "expected an integer from 100 to 100000000");
        conf->lim.regex_match_limit = (uint32_t)v;
    } else if (!strcmp(key, "regex_depth_limit")) {
        if (pg_parse_int(value, 10, 10000000LL, &v))
            return conf_fail(r, line, key, "expected an integer from 10 to 10000000");
        conf->lim.regex_depth_limit = (uint32_t)v;
    } else if (!strcmp(key, "jwt_leeway_ms")) {
        if (pg_parse_int(value, 0, 600000LL, &v))
            return conf_fail(r, line, key, "expected milliseconds from 0 to 600000");
        conf->lim.leeway_ms = v;
    } else if (!strcmp(key, "max_token_bytes")) {
        if (pg_parse_size(value, &size) || size < 64 || size > 1048576)
            return conf_fail(r, line, key, "expected a size from 64 to 1m");
        conf->lim.max_token_bytes = (size_t)size;
    } else if (!strcmp(key, "max_rules")) {
        if (pg_parse_int(value, 1, 10000, &v))
            return conf_fail(r, line, key, "expected an integer from 1 to 10000");
        conf->lim.max_rules = (size_t)v;
    } else if (!strcmp(key, "max_channel_bytes")) {
        if (pg_parse_int(value, 1, 65535, &v))
            return conf_fail(r, line, key, "expected an integer from 1 to 65535");
        conf->max_channel_bytes = (size_t)v;
    } else if (!strcmp(key, "apps_db")) {
        return resolve_path(r, &conf->apps_db, value);
    } else if (!strcmp(key, "broker_password_file")) {
        return resolve_path(r, &conf->passwd_file, value);
    } else if (!strcmp(key, "broker_username")) {
        return replace_str(&conf->broker_username, value);
    } else if (!strcmp(key, "device_channel")) {
        conf->device_channel_line = line;
        return replace_str(&conf->device_channel, value);
    }
    /* Any other global option belongs to the gateway. */
    return 0;
}

static int conf_app_header(struct conf_reader *r, const char *name, int line)
{
    struct app_entry *app = NULL;
    size_t len = strlen(name);

    /* The id is a topic level: it must not split or widen a topic. */
    if (strpbrk(name, "/+#") || !pg_utf8_valid(name, len))
        return conf_fail(r, line, NULL, "app id must be valid UTF-8 without '/', '+' or '#'");
    HASH_FIND(hh, r->conf->apps, name, len, app);
    if (app)
        return conf_fail(r, line, NULL, "duplicate [app] section");
    app = calloc(1, sizeof(*app));
    if (!app)
        return PG_ENOMEM;
    if (pg_app_creds_init(&app->creds, name) != 0) {
        app_free(app);
        return PG_ENOMEM;
    }
    app->line = line;
    plugin_hash_oom = 0;
    HASH_ADD_KEYPTR(hh, r->conf->apps, app->creds.id, len, app);
    if (plugin_hash_oom) {
        app_free(app);
        return PG_ENOMEM;
    }
    r->cur = app;
    return 0;
}

static int conf_cb(void *ud, const char *section_type, const char *section_name, const char *key, const char *value,
                   int line)
{
    struct conf_reader *r = ud;
    char err[256];
    int rc;

    if (!key) {
        r->in_global = 0;
        r->cur = NULL;
        if (!strcmp(section_type, "app"))
            return conf_app_header(r, section_name, line);
        return 0; /* other section types are the gateway's */
    }
    if (r->in_global && !section_type[0])
        return conf_global(r, key, value, line);
    if (!r->cur)
        return 0;
    err[0] = '\0';
    rc = pg_app_creds_set(&r->cur->creds, key, value, r->base_dir, err, sizeof err);
    if (rc == PG_ENOTFOUND)
        return 0; /* an app option the gateway owns */
    if (rc == PG_ENOMEM)
        return rc;
    if (rc) {
        size_t klen = strlen(key);
        /* The library's message usually starts with the option name already. */
        if (!strncmp(err, key, klen) && err[klen] == ':')
            return conf_fail(r, line, NULL, err);
        return conf_fail(r, line, key, err[0] ? err : pg_strerror(rc));
    }
    return 0;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Read the whole file into a new conf; on failure *out is untouched and err says why (file:line). */
int conf_load(const char *path, struct plugin_conf **out, char *err, size_t errlen)
{
    struct conf_reader r = {.path = path, .in_global = 1, .err = err, .errlen = errlen};
    struct plugin_conf *conf = NULL;
    struct app_entry *app;
    char cerr[256];
    int rc;

    err[0] = '\0';
    conf = calloc(1, sizeof(*conf));
    r.base_dir = dir_of(path);
    if (!conf || !r.base_dir) {
        rc = PG_ENOMEM;
        goto out;
    }
    r.conf = conf;
    conf->lim = pg_auth_limits_default;
    conf->max_channel_bytes = DEFAULT_MAX_CHANNEL_BYTES;
    rc = pg_conf_read(path, conf_cb, &r, err, errlen);
    if (rc)
        goto out;
    if (!conf->topic_root) {
        conf->topic_root = strdup(DEFAULT_TOPIC_ROOT);
        if (!conf->topic_root) {
            rc = PG_ENOMEM;
            goto out;
        }
        conf->topic_root_len = strlen(DEFAULT_TOPIC_ROOT);
    }
    if ((!conf->device_channel && !(conf->device_channel = strdup(DEFAULT_DEVICE_CHANNEL))) ||
        (!conf->broker_username && !(conf->broker_username = strdup(DEFAULT_BROKER_USERNAME)))) {
        rc = PG_ENOMEM;
        goto out;
    }
    /* The broker's own accounts, read again on every reload as Mosquitto re-reads its password file. */
    if (conf->broker_username[0] && (rc = account_add(&conf->accounts, conf->broker_username)) != 0)
        goto out;
    if (conf->passwd_file && (rc = pg_passwd_users(conf->passwd_file, account_add, &conf->accounts, err, errlen)) != 0)
        goto out;
    /* Checked once the file is read: the bound it must meet may come after it. */
    if (conf->device_channel[0] &&
        pg_channel_check(conf->device_channel, strlen(conf->device_channel), conf->max_channel_bytes, 0) != 0) {
        rc = conf_fail(&r, conf->device_channel_line, "device_channel",
                       "expected a channel name without wildcards (or empty for no device events)");
        goto out;
    }
    for (app = conf->apps; app; app = app->hh.next) {
        cerr[0] = '\0';
        rc = pg_app_creds_check(&app->creds, cerr, sizeof cerr);
        if (rc) {
            snprintf(err, errlen, "%s:%d: %s", path, app->line, cerr[0] ? cerr : pg_strerror(rc));
            goto out;
        }
    }
    *out = conf;
    conf = NULL;
out:
    if (rc && !err[0])
        snprintf(err, errlen, "%s: %s", path, pg_strerror(rc));
    conf_free(conf);
    free(r.base_dir);
    return rc;
}

struct app_entry *find_in(struct app_entry *apps, const char *id)
{
    struct app_entry *app = NULL;

    if (id)
        HASH_FIND(hh, apps, id, strlen(id), app);
    return app;
}

/* An app of the config file, else of the apps store. */
const struct app_entry *find_app(const struct plugin *pl, const char *id)
{
    const struct app_entry *app = find_in(pl->conf->apps, id);

    return app ? app : find_in(pl->store.apps, id);
}

/*
 * The app a login username names, or NULL when the username is not the plugin's: not an app id, or one of the
 * broker's own accounts, which an app of the same id must never shadow (its owner could no longer log in, and
 * anyone could log in anonymously under its name).
 */
const struct app_entry *app_of_user(const struct plugin *pl, const char *username)
{
    const struct app_entry *app = find_app(pl, username);
    struct account *acc = NULL;
    size_t len;

    if (!app)
        return NULL;
    len = strlen(username);
    HASH_FIND(hh, pl->conf->accounts, username, len, acc);
    if (!acc)
        HASH_FIND(hh, pl->broker_accounts, username, len, acc);
    if (!acc)
        return app;
    if (!acc->warned) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             LOG_PREFIX "app %s is ignored: %s is a broker account (broker_username, "
                                        "broker_password_file or the broker's password_file), left to the broker",
                             username, username);
        acc->warned = 1;
    }
    return NULL;
}
