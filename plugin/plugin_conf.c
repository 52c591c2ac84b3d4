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

#include "app_id.h"
#include "pg_options.h"
#include "plugin.h"

/*
 * The global options the plugin reads: the gateway's own rows (pg_options.h), so a name, a default or a bound
 * cannot differ between the two; where the plugin keeps each value (a long long, or a char * for strings).
 */
struct conf_opt {
    struct pg_opt_def def;
    size_t off;
    int path; /* a file name, resolved against the config file's directory (pg_opt_path) */
    int (*check)(const char *value, char *err, size_t errlen); /* a string's rule, checked where it is read */
};

#define C(f) offsetof(struct plugin_conf, f)
static const struct conf_opt conf_opts[] = {
    {{PG_SHARED_OPT_TOPIC_ROOT}, C(topic_root), 0, pg_opt_check_topic_root},
    {{PG_SHARED_OPT_MAX_CHANNEL_BYTES}, C(max_channel_bytes), 0, NULL},
    {{PG_SHARED_OPT_DEVICE_CHANNEL}, C(device_channel), 0, NULL}, /* checked with max_channel_bytes, at the end */
    {{PG_SHARED_OPT_REGEX_MATCH_LIMIT}, C(regex_match_limit), 0, NULL},
    {{PG_SHARED_OPT_REGEX_DEPTH_LIMIT}, C(regex_depth_limit), 0, NULL},
    {{PG_SHARED_OPT_JWT_LEEWAY_MS}, C(jwt_leeway_ms), 0, NULL},
    {{PG_SHARED_OPT_MAX_TOKEN_BYTES}, C(max_token_bytes), 0, NULL},
    {{PG_SHARED_OPT_MAX_RULES}, C(max_rules), 0, NULL},
    {{PG_SHARED_OPT_APPS_DB}, C(apps_db), 1, NULL},
    {{PG_SHARED_OPT_BROKER_PASSWORD_FILE}, C(passwd_file), 1, NULL},
    {{PG_SHARED_OPT_BROKER_USERNAME}, C(broker_username), 0, NULL},
};
#define N_CONF_OPTS (sizeof conf_opts / sizeof conf_opts[0])
#undef C

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
    for (size_t i = 0; i < N_CONF_OPTS; i++)
        if (conf_opts[i].def.type == PG_OPT_STR)
            free(*(char **)((char *)conf + conf_opts[i].off));
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

/*
 * Sets option o to value (base_dir: the config file's directory, for paths). PG_EINVAL with "expected …" in err, or
 * PG_ENOMEM. An empty path is no file: NULL.
 */
static int opt_set(struct plugin_conf *conf, const struct conf_opt *o, const char *value, const char *base_dir,
                   char *err, size_t errlen)
{
    char *slot = (char *)conf + o->off, *str = NULL;
    long long v;
    int rc;

    if (o->def.type != PG_OPT_STR) {
        if ((rc = pg_opt_number(o->def.type, o->def.min, o->def.max, value, &v, err, errlen)) != 0)
            return rc;
        *(long long *)slot = v;
        return 0;
    }
    if (o->check && (rc = o->check(value, err, errlen)) != 0)
        return rc;
    if (o->path)
        rc = pg_opt_path(base_dir, value, &str);
    else
        rc = (str = strdup(value)) ? 0 : PG_ENOMEM;
    if (rc)
        return rc;
    if (o->path && !str[0]) {
        free(str);
        str = NULL;
    }
    free(*(char **)slot);
    *(char **)slot = str;
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
    char why[256];
    int rc;

    for (size_t i = 0; i < N_CONF_OPTS; i++) {
        if (strcmp(key, conf_opts[i].def.name) != 0)
            continue;
        if (conf_opts[i].off == offsetof(struct plugin_conf, device_channel))
            r->conf->device_channel_line = line;
        why[0] = '\0';
        rc = opt_set(r->conf, &conf_opts[i], value, r->base_dir, why, sizeof why);
        return rc == PG_EINVAL ? conf_fail(r, line, key, why) : rc;
    }
    /* Any other global option belongs to the gateway. */
    return 0;
}

static int conf_app_header(struct conf_reader *r, const char *name, int line)
{
    struct app_entry *app = NULL;
    size_t len = strlen(name);

    /* The gateway's rule (a topic level, a URL segment, not a reserved name): one file means the same to both. */
    if (!pg_app_id_valid(name)) {
        char why[256];
        snprintf(why, sizeof why, "app id \"%.64s\": " PG_APP_ID_RULE, name);
        return conf_fail(r, line, NULL, why);
    }
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
    for (size_t i = 0; i < N_CONF_OPTS; i++) {
        if ((rc = opt_set(conf, &conf_opts[i], conf_opts[i].def.def, NULL, cerr, sizeof cerr)) != 0) {
            snprintf(err, errlen, "built-in default of %s: %s", conf_opts[i].def.name, cerr);
            goto out;
        }
    }
    rc = pg_conf_read(path, conf_cb, &r, err, errlen);
    if (rc)
        goto out;
    /* What the auth library needs of the limits, as the gateway derives it (pg_config_auth_limits). */
    conf->lim = pg_auth_limits_default;
    conf->lim.regex_match_limit = (uint32_t)conf->regex_match_limit;
    conf->lim.regex_depth_limit = (uint32_t)conf->regex_depth_limit;
    conf->lim.leeway_ms = conf->jwt_leeway_ms;
    conf->lim.max_token_bytes = (size_t)conf->max_token_bytes;
    conf->lim.max_rules = (size_t)conf->max_rules;
    /* The broker's own accounts, read again on every reload as Mosquitto re-reads its password file. */
    if (conf->broker_username[0] && (rc = account_add(&conf->accounts, conf->broker_username)) != 0)
        goto out;
    if (conf->passwd_file && (rc = pg_passwd_users(conf->passwd_file, account_add, &conf->accounts, err, errlen)) != 0)
        goto out;
    /* Checked once the file is read: the bound it must meet may come after it. */
    if (pg_opt_check_device_channel(conf->device_channel, conf->max_channel_bytes, cerr, sizeof cerr) != 0) {
        rc = conf_fail(&r, conf->device_channel_line, "device_channel", cerr);
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
