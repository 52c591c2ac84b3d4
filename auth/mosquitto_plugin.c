/*
 * pushgate_auth.so: a Mosquitto 2 (plugin API v5) plugin that applies the pushgate permission model to devices.
 *
 * Devices connect with username = app id, password = JWT, client id = the token's `client` claim. Users that are
 * not app ids (the gateway's account, operators) are DEFERred so Mosquitto's password_file and acl_file decide.
 * Every ACL check of an app session re-checks the app and the token's expiry; an expired session is denied and
 * kicked from the next MOSQ_EVT_TICK, because kicking inside the broker's own packet handling (where ACL checks
 * run) would fire MOSQ_EVT_DISCONNECT and close the socket under the caller's feet.
 *
 * Options (mosquitto.conf): plugin_opt_config /path/to/pushgate.conf
 *
 * Mosquitto 2.0.11 facts this file relies on (read from its sources):
 *  - ACL checks and BASIC_AUTH run on the broker's single thread, as do TICK and DISCONNECT; no locking needed.
 *  - MOSQ_EVT_DISCONNECT fires for every context that is disconnected (context__disconnect), including the old
 *    context of a session takeover, which is why client state is keyed by the struct mosquitto pointer: the new
 *    context authenticates before the old one disconnects.
 *  - A v5 plugin gets no cleanup/init on SIGHUP, only MOSQ_EVT_RELOAD; the config file is re-read then.
 *  - After MOSQ_EVT_RELOAD, mosquitto_security_apply() re-runs BASIC_AUTH for every known context (the password
 *    is kept), so a reload re-verifies live tokens and drops sessions whose app or token is no longer valid.
 *  - A persistent session whose connection is gone keeps its username and is still ACL-checked when messages are
 *    queued for it; its state was freed at DISCONNECT, so such checks are denied.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* uthash must never exit() inside the broker: a failed insert leaves the element out and sets hash_oom. */
static int hash_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#include <uthash.h>

#include "pushgate_auth.h"

#define PLUGIN_EXPORT __attribute__((visibility("default")))
#define LOG_PREFIX "pushgate_auth: "
#define DEFAULT_TOPIC_ROOT "pushgate"
#define DEFAULT_MAX_CHANNEL_BYTES 200
#define MAX_TOPIC_ROOT_BYTES 128
/* Kicks are done from the tick in batches so one tick never walks an unbounded list while holding ids. */
#define KICKS_PER_TICK 64

struct app_entry {
    struct pg_app_creds creds; /* creds.id is the hash key */
    int line;                  /* line of the [app] header, for errors found when the section is complete */
    UT_hash_handle hh;
};

struct plugin_conf {
    char *topic_root;
    size_t topic_root_len;
    struct pg_auth_limits lim;
    size_t max_channel_bytes;
    struct app_entry *apps;
};

/* One authenticated app session. */
struct client_state {
    struct mosquitto *client; /* key of hh; only compared, dereferenced by the broker's accessors */
    char *app_id;             /* looked up on every check so a reload or deactivation applies at once */
    char *client_id;          /* key of hh_id when in_by_id */
    pg_token *tok;            /* NULL: app without require_auth, connected without a token */
    int in_by_id;             /* this is the newest session with client_id (so a kick by id reaches it) */
    int kick_pending;
    int kicked;
    UT_hash_handle hh;
    UT_hash_handle hh_id;
};

struct plugin {
    mosquitto_plugin_id_t *pid;
    char *conf_path;
    struct plugin_conf *conf;
    struct client_state *clients; /* by struct mosquitto pointer */
    struct client_state *by_id;   /* by client id, newest session only */
    size_t kicks_pending;
    /*
     * Set from MOSQ_EVT_RELOAD to the next tick: mosquitto then re-runs BASIC_AUTH for every context it knows,
     * including persistent sessions whose connection is gone. Those must not get state: no DISCONNECT will
     * ever free it, and a later context at the same address would inherit it.
     */
    int reapplying;
};

/* ---- configuration ------------------------------------------------------------------------------------ */

static void app_free(struct app_entry *app)
{
    if (!app)
        return;
    pg_app_creds_clear(&app->creds);
    free(app);
}

static void conf_free(struct plugin_conf *conf)
{
    struct app_entry *app, *tmp;

    if (!conf)
        return;
    for (app = conf->apps; app; app = tmp) {
        tmp = app->hh.next;
        HASH_DEL(conf->apps, app);
        app_free(app);
    }
    free(conf->topic_root);
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
    hash_oom = 0;
    HASH_ADD_KEYPTR(hh, r->conf->apps, app->creds.id, len, app);
    if (hash_oom) {
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
static int conf_load(const char *path, struct plugin_conf **out, char *err, size_t errlen)
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

static const struct app_entry *find_app(const struct plugin_conf *conf, const char *id)
{
    struct app_entry *app = NULL;

    if (id)
        HASH_FIND(hh, conf->apps, id, strlen(id), app);
    return app;
}

/* ---- client state ------------------------------------------------------------------------------------ */

static void state_remove(struct plugin *pl, struct client_state *st)
{
    HASH_DEL(pl->clients, st);
    if (st->in_by_id)
        HASH_DELETE(hh_id, pl->by_id, st);
    if (st->kick_pending && !st->kicked && pl->kicks_pending)
        pl->kicks_pending--;
    pg_token_free(st->tok);
    free(st->app_id);
    free(st->client_id);
    free(st);
}

/* Takes ownership of tok (also on failure). */
static int state_add(struct plugin *pl, struct mosquitto *client, const char *app_id, const char *client_id,
                     pg_token *tok)
{
    struct client_state *st = NULL, *old = NULL;
    int rc = MOSQ_ERR_NOMEM;

    HASH_FIND_PTR(pl->clients, &client, old);
    if (!old && pl->reapplying) {
        /* An offline persistent session being re-checked: the decision stands, no state is kept. */
        rc = MOSQ_ERR_SUCCESS;
        goto out;
    }
    if (old)
        state_remove(pl, old); /* re-authentication of the same connection */
    st = calloc(1, sizeof(*st));
    if (!st)
        goto out;
    st->client = client;
    st->tok = tok;
    tok = NULL;
    st->app_id = strdup(app_id);
    st->client_id = client_id ? strdup(client_id) : NULL;
    if (!st->app_id || (client_id && !st->client_id))
        goto out;
    hash_oom = 0;
    HASH_ADD_PTR(pl->clients, client, st);
    if (hash_oom)
        goto out;
    if (st->client_id) {
        HASH_FIND(hh_id, pl->by_id, st->client_id, strlen(st->client_id), old);
        if (old) {
            /* The broker is about to take over old's session; a kick by id must not reach this one for it. */
            HASH_DELETE(hh_id, pl->by_id, old);
            old->in_by_id = 0;
        }
        hash_oom = 0;
        HASH_ADD_KEYPTR(hh_id, pl->by_id, st->client_id, strlen(st->client_id), st);
        st->in_by_id = !hash_oom;
    }
    st = NULL;
    rc = MOSQ_ERR_SUCCESS;
out:
    if (st) {
        HASH_FIND_PTR(pl->clients, &client, old);
        if (old == st)
            HASH_DEL(pl->clients, st);
        pg_token_free(st->tok);
        free(st->app_id);
        free(st->client_id);
        free(st);
    }
    pg_token_free(tok);
    return rc;
}

static void schedule_kick(struct plugin *pl, struct client_state *st)
{
    if (st->kick_pending)
        return;
    st->kick_pending = 1;
    pl->kicks_pending++;
}

static void states_free(struct plugin *pl)
{
    struct client_state *st, *tmp;

    for (st = pl->clients; st; st = tmp) {
        tmp = st->hh.next;
        state_remove(pl, st);
    }
}

/* ---- callbacks ------------------------------------------------------------------------------------------- */

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    struct plugin *pl = userdata;
    const struct app_entry *app;
    const char *cid, *claim;
    pg_token *tok = NULL;
    char err[160];
    size_t len;
    int rc;

    (void)event;
    app = find_app(pl->conf, ed->username);
    if (!app)
        return MOSQ_ERR_PLUGIN_DEFER;
    cid = mosquitto_client_id(ed->client);
    if (!app->creds.active) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "connect denied client=%s app=%s reason=app inactive",
                             str_or(cid, "-"), app->creds.id);
        return MOSQ_ERR_AUTH;
    }
    if (!ed->password || !ed->password[0]) {
        if (app->creds.require_auth) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "connect denied client=%s app=%s reason=token required",
                                 str_or(cid, "-"), app->creds.id);
            return MOSQ_ERR_AUTH;
        }
        rc = state_add(pl, ed->client, app->creds.id, cid, NULL);
        if (rc == MOSQ_ERR_SUCCESS)
            mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "connect allowed client=%s app=%s token=none",
                                 str_or(cid, "-"), app->creds.id);
        return rc;
    }
    /* Bounded: one byte over the limit is enough for the verifier to refuse it unparsed. */
    len = strnlen(ed->password, pl->conf->lim.max_token_bytes + 1);
    err[0] = '\0';
    rc = pg_token_verify(ed->password, len, &app->creds, &pl->conf->lim, pg_now_ms(), &tok, err, sizeof err);
    if (rc == PG_ENOMEM)
        return MOSQ_ERR_NOMEM;
    if (rc) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "connect denied client=%s app=%s reason=%s", str_or(cid, "-"),
                             app->creds.id, err[0] ? err : pg_strerror(rc));
        return MOSQ_ERR_AUTH;
    }
    claim = pg_token_client(tok);
    if (!cid || !claim || strcmp(cid, claim) != 0) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "connect denied client=%s app=%s reason=%s", str_or(cid, "-"),
                             app->creds.id,
                             claim ? "client id differs from the token's client claim" : "token has no client claim");
        pg_token_free(tok);
        return MOSQ_ERR_AUTH;
    }
    rc = state_add(pl, ed->client, app->creds.id, cid, tok);
    if (rc == MOSQ_ERR_SUCCESS)
        mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "connect allowed client=%s app=%s token=valid", cid,
                             app->creds.id);
    return rc;
}

static const char *access_name(int access)
{
    switch (access) {
    case MOSQ_ACL_READ:
        return "read";
    case MOSQ_ACL_WRITE:
        return "write";
    case MOSQ_ACL_SUBSCRIBE:
        return "subscribe";
    case MOSQ_ACL_UNSUBSCRIBE:
        return "unsubscribe";
    default:
        return "unknown";
    }
}

/*
 * The channel of `topic` when it is {root}/{app}/c/{channel} with a non-empty channel, else NULL.
 */
static const char *own_channel(const struct plugin_conf *conf, const char *app_id, const char *topic)
{
    size_t app_len = strlen(app_id);
    const char *p = topic;

    if (strncmp(p, conf->topic_root, conf->topic_root_len) != 0 || p[conf->topic_root_len] != '/')
        return NULL;
    p += conf->topic_root_len + 1;
    if (strncmp(p, app_id, app_len) != 0 || strncmp(p + app_len, "/c/", 3) != 0)
        return NULL;
    p += app_len + 3;
    return *p ? p : NULL;
}

/* NULL to allow, else the reason for the denial (a static string, safe to log). */
static const char *acl_decide(const struct plugin *pl, const struct client_state *st, int access, const char *topic)
{
    const char *chan = own_channel(pl->conf, st->app_id, topic);
    size_t len;
    int wild;

    if (!chan)
        return "outside the app's channel topics";
    len = strlen(chan);
    switch (access) {
    case MOSQ_ACL_SUBSCRIBE:
        wild = strpbrk(chan, "+#") != NULL;
        if (pg_channel_check(chan, len, pl->conf->max_channel_bytes, 1) != 0)
            return "invalid channel filter";
        /* A wildcard filter is accepted: every message it would deliver is checked at READ. */
        if (wild || !st->tok)
            return NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_READ:
        if (!st->tok)
            return NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_WRITE:
        if (pg_channel_check(chan, len, pl->conf->max_channel_bytes, 0) != 0)
            return "invalid channel name";
        if (!st->tok)
            return NULL;
        return pg_token_allows(st->tok, PG_ACT_PUBLISH, chan, len) == PG_ALLOW ? NULL : "publish not permitted";
    default:
        return "unknown access";
    }
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;
    const struct app_entry *app;
    const char *cid = mosquitto_client_id(ed->client);
    const char *why;

    (void)event;
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st) {
        /* An app user without state is a session whose connection is gone; it holds no valid token. */
        if (find_app(pl->conf, mosquitto_client_username(ed->client))) {
            mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s denied client=%s topic=%s reason=no live session",
                                 access_name(ed->access), str_or(cid, "-"), ed->topic);
            return MOSQ_ERR_ACL_DENIED;
        }
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
        return MOSQ_ERR_SUCCESS; /* giving up a subscription never widens access */
    app = find_app(pl->conf, st->app_id);
    if (!app || !app->creds.active) {
        why = "app removed or inactive";
        schedule_kick(pl, st);
    } else if (st->tok && pg_token_expired(st->tok, pg_now_ms())) {
        why = "token expired";
        schedule_kick(pl, st);
    } else {
        why = acl_decide(pl, st, ed->access, ed->topic);
    }
    if (!why) {
        mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s allowed client=%s app=%s topic=%s", access_name(ed->access),
                             str_or(cid, "-"), st->app_id, ed->topic);
        return MOSQ_ERR_SUCCESS;
    }
    /* READ denials are the expected filtering of wildcard subscriptions; keep them out of notice logs. */
    mosquitto_log_printf(ed->access == MOSQ_ACL_READ ? MOSQ_LOG_DEBUG : MOSQ_LOG_NOTICE,
                         LOG_PREFIX "%s denied client=%s app=%s topic=%s reason=%s", access_name(ed->access),
                         str_or(cid, "-"), st->app_id, ed->topic, why);
    return MOSQ_ERR_ACL_DENIED;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;

    (void)event;
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (st)
        state_remove(pl, st);
    return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct client_state *st;
    char *ids[KICKS_PER_TICK];
    size_t n = 0;

    (void)event;
    (void)event_data;
    pl->reapplying = 0;
    if (!pl->kicks_pending)
        return MOSQ_ERR_SUCCESS;
    /* Collect first: each kick fires MOSQ_EVT_DISCONNECT, which frees states while we would be iterating. */
    for (st = pl->clients; st; st = st->hh.next) {
        if (n == KICKS_PER_TICK)
            break;
        if (!st->kick_pending || st->kicked)
            continue;
        st->kicked = 1;
        pl->kicks_pending--;
        /* Not the newest session with its id: the broker is replacing it, and a kick by id would hit the new one. */
        if (!st->in_by_id || !st->client_id)
            continue;
        ids[n] = strdup(st->client_id);
        if (!ids[n]) {
            st->kicked = 0; /* try again next tick */
            pl->kicks_pending++;
            break;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "disconnecting client=%s reason=credential no longer valid",
                             ids[i]);
        mosquitto_kick_client_by_clientid(ids[i], false);
        free(ids[i]);
    }
    return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct plugin_conf *conf = NULL;
    char err[512];

    (void)event;
    (void)event_data;
    pl->reapplying = 1;
    if (conf_load(pl->conf_path, &conf, err, sizeof err) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "reload failed, keeping the previous configuration: %s", err);
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    /* Sessions keep their tokens; they hold app ids, not app pointers, so the swap is safe. */
    conf_free(pl->conf);
    pl->conf = conf;
    mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "configuration reloaded from %s", pl->conf_path);
    /* Let other plugins see the reload too. */
    return MOSQ_ERR_PLUGIN_DEFER;
}

/* ---- plugin entry points -------------------------------------------------------------------------------- */

static const struct {
    int event;
    MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, on_basic_auth}, {MOSQ_EVT_ACL_CHECK, on_acl_check},
    {MOSQ_EVT_DISCONNECT, on_disconnect}, {MOSQ_EVT_TICK, on_tick},
    {MOSQ_EVT_RELOAD, on_reload},
};

static void plugin_free(struct plugin *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++)
        mosquitto_callback_unregister(pl->pid, callbacks[i].event, callbacks[i].cb, NULL);
    states_free(pl);
    conf_free(pl->conf);
    free(pl->conf_path);
    free(pl);
}

PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5)
            return 5;
    }
    return -1;
}

PLUGIN_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                        struct mosquitto_opt *options, int option_count)
{
    struct plugin *pl = NULL;
    const char *path = NULL;
    char err[512];
    int rc;

    for (int i = 0; i < option_count; i++) {
        if (options[i].key && !strcmp(options[i].key, "config"))
            path = options[i].value;
    }
    if (!path || !path[0]) {
        mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "missing option: plugin_opt_config /path/to/pushgate.conf");
        rc = MOSQ_ERR_INVAL;
        goto out;
    }
    pl = calloc(1, sizeof(*pl));
    if (!pl || !(pl->conf_path = strdup(path))) {
        rc = MOSQ_ERR_NOMEM;
        goto out;
    }
    pl->pid = identifier;
    rc = conf_load(path, &pl->conf, err, sizeof err);
    if (rc) {
        mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "%s", err);
        rc = rc == PG_ENOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_INVAL;
        goto out;
    }
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++) {
        rc = mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb, NULL, pl);
        if (rc != MOSQ_ERR_SUCCESS) {
            mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "cannot register callback %d: %s", callbacks[i].event,
                                 mosquitto_strerror(rc));
            goto out;
        }
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "loaded %s: %u app(s), topic root \"%s\"", path,
                         HASH_COUNT(pl->conf->apps), pl->conf->topic_root);
    *userdata = pl;
    pl = NULL;
    rc = MOSQ_ERR_SUCCESS;
out:
    plugin_free(pl);
    return rc;
}

PLUGIN_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    (void)options;
    (void)option_count;
    plugin_free(userdata);
    return MOSQ_ERR_SUCCESS;
}
