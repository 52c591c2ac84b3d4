/*
 * pushgate_auth.so: a Mosquitto 2 (plugin API v5) plugin that applies the pushgate permission model to devices.
 *
 * Devices connect with username = app id, password = JWT, client id = the token's `client` claim. Users that are
 * not app ids (the gateway's account, operators, anyone else) get what Mosquitto gives them without the plugin: the
 * plugin DEFERs them to Mosquitto's password_file and acl_file, and where the broker has none of its own (read from
 * the broker's configuration file, or plugin_opt_non_app_acl / plugin_opt_non_app_login) allows their ACL checks
 * and accepts their usernames as Mosquitto would, because Mosquitto 2.0 refuses what every plugin deferred.
 * The broker's own accounts (broker_username, every user of broker_password_file and of the password_file(s) in the
 * broker's own configuration) are never app ids here, even when an app of that id exists: the plugin defers them
 * and warns once.
 *
 * Tenants cannot touch each other's sessions: an app client's CONNECT is refused when its client id is held by a
 * connected client of another app or by a deferred client (gateway, operator), and app clients never get a client
 * id of the gateways' form (PG_GATEWAY_CLIENT_ID_PREFIX), so a device can never disconnect a gateway. A takeover
 * within one app stays as MQTT defines it. Deferred clients are tracked from BASIC_AUTH (they may still be refused
 * by the password file: the DISCONNECT that follows removes them) to DISCONNECT.
 *
 * Messages of app clients carry no gateway metadata: MOSQ_EVT_MESSAGE removes the user properties the gateway
 * reads as facts (user_id, client_id, socket_id, ts, and the delivery sequence origin, seq, prev that gap
 * detection trusts) and an `event` naming a protocol event (pusher:…, pusher_internal:…, client-…, pushgate:…,
 * socket.io's reserved names). A device's will never reaches anyone, as the plugin
 * cannot see a will's properties (no API for them; the ACL check of a will gets none, and wills skip
 * MOSQ_EVT_MESSAGE): on a disconnect the broker checks it after MOSQ_EVT_DISCONNECT, when the session's state is
 * gone, and on a session takeover before it, when the session is marked as taken over (takeover_note()).
 *
 * Pusher's protected channels (private-…, presence-…) need a credential in every app: an app client without a
 * token may not publish or subscribe on them, and its wildcard subscriptions never deliver them.
 *
 * Every ACL check of an app session re-checks the app and the token's expiry; an expired session is denied and
 * kicked from the next MOSQ_EVT_TICK, because kicking inside the broker's own packet handling (where ACL checks
 * run) would fire MOSQ_EVT_DISCONNECT and close the socket under the caller's feet.
 *
 * Apps come from the config file's [app ID] sections and, when the global option apps_db names one, from the
 * gateway's SQLite apps store, opened read-only (a config app wins over a store app with the same id). The store
 * may not exist when the broker starts: it is opened on a later tick. A tick (at most every STORE_POLL_MS) asks
 * SQLite's data_version whether another process committed; if so apps and revocations are re-read and every live
 * session is checked again: sessions of an app that is gone or inactive, of a revoked client id or of a revoked
 * token id (jti) are kicked at that tick, and their next CONNECT is refused. An expired revocation is ignored.
 *
 * Device presence: a device the plugin admitted gets a retained {root}/{app}/d/{client_id} message
 * {"id","user_id","connected_at"}, emptied when it disconnects, and an event device_joined / device_left (v5 user
 * property `event`, payload {"id","user_id"}) on the channel named by device_channel. Devices may not write on
 * that channel; {root}/{app}/d/ is outside their channels anyway.
 *
 * Options (mosquitto.conf): plugin_opt_config /path/to/pushgate.conf; plugin_opt_non_app_acl and
 * plugin_opt_non_app_login: auto (default), defer or allow (see non_app_resolve()).
 *
 * Mosquitto 2.0.11 facts this file relies on (read from its sources):
 *  - ACL checks and BASIC_AUTH run on the broker's single thread, as do TICK and DISCONNECT; no locking needed.
 *    Anything slow here stalls every client, so SQLite is only read on a tick, with a short busy timeout.
 *  - MOSQ_EVT_TICK fires once per main-loop pass (the loop waits at most 100 ms in epoll), and only with
 *    `per_listener_settings false`, the default; otherwise the plugin warns (tick_check()).
 *  - mosquitto_acl_check() and mosquitto_unpwd_check() (src/security.c) turn "every callback deferred" into a
 *    refusal, but with no callback at all they allow every ACL check and apply allow_anonymous to every login,
 *    named or not. acl_file and password_file are callbacks registered after the plugins' only when set.
 *  - MOSQ_EVT_DISCONNECT fires for every context that is disconnected (context__disconnect), including the old
 *    context of a session takeover, which is why client state is keyed by the struct mosquitto pointer: the new
 *    context authenticates before the old one disconnects. Only the newest session of a client id reports a
 *    device as gone.
 *  - mosquitto_broker_publish*() only queues: the broker sends the message at the start of its next loop pass,
 *    with no ACL check of a sender (subscribers' READ checks still apply). Safe from any callback.
 *  - mosquitto_kick_client_by_clientid() fires MOSQ_EVT_DISCONNECT synchronously, before it returns.
 *  - A CONNECT refused after BASIC_AUTH (by us, or by the password file after we deferred) is disconnected through
 *    context__disconnect, so MOSQ_EVT_DISCONNECT fires for it too. The session takeover happens only after
 *    BASIC_AUTH succeeded, so refusing there leaves the old session untouched.
 *  - context__disconnect fires MOSQ_EVT_DISCONNECT before it sends the will, whose WRITE check therefore finds no
 *    state for an app client. A takeover (connect__on_authorised) sends the old connection's will right after the
 *    new one's BASIC_AUTH and before the old one's MOSQ_EVT_DISCONNECT: the plugin marks the old session in that
 *    BASIC_AUTH and denies its checks. A delayed will (will delay interval) is sent after DISCONNECT, or dropped by
 *    the takeover. So device wills are never sent. Wills are not ACL-checked at CONNECT.
 *  - MOSQ_EVT_MESSAGE runs for PUBLISHes received from clients (not for wills or mosquitto_broker_publish*()); the
 *    broker keeps whatever list ed->properties points to afterwards and does not free the one it passed in.
 *  - At shutdown no MOSQ_EVT_DISCONNECT fires and the database is saved first: with `persistence true`, the
 *    device records of clients connected at that moment survive a restart (with `persistence false`, the
 *    pushgate default, every retained message is gone).
 *  - A v5 plugin gets no cleanup/init on SIGHUP, only MOSQ_EVT_RELOAD; the config file is re-read then.
 *  - After MOSQ_EVT_RELOAD, mosquitto_security_apply() re-runs BASIC_AUTH for every known context (the password
 *    is kept), so a reload re-verifies live tokens and drops sessions whose app or token is no longer valid.
 *  - A persistent session whose connection is gone keeps its username and is still ACL-checked when messages are
 *    queued for it; its state was freed at DISCONNECT, so such checks are denied.
 *  - Started as root, the broker switches to user `mosquitto` unless its config says `user root`; that user then
 *    must be able to read the apps store (created 0600 by the gateway) and open or create its -wal and -shm files.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

/* uthash must never exit() inside the broker: a failed insert leaves the element out and sets hash_oom. */
static int hash_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#include <uthash.h>

#include "apps_store.h"
#include "broker_conf.h"
#include "pushgate_auth.h"

#define PLUGIN_EXPORT __attribute__((visibility("default")))
#define LOG_PREFIX "pushgate_auth: "
#define DEFAULT_TOPIC_ROOT "pushgate"
#define DEFAULT_MAX_CHANNEL_BYTES 200
#define DEFAULT_DEVICE_CHANNEL "private-pushgate-devices"
#define MAX_TOPIC_ROOT_BYTES 128
/* Kicks are done from the tick in batches so one tick never walks an unbounded list while holding ids. */
#define KICKS_PER_TICK 64
/* A missing or broken apps store is tried again this often, not on every tick. */
#define STORE_RETRY_MS 1000
/*
 * A busy broker ticks once per loop pass, thousands of times a second; asking SQLite for its data_version (a read
 * transaction on the WAL index) that often would cost real CPU for changes that come from rare admin writes.
 */
#define STORE_POLL_MS 100
/*
 * SQLite waits this long for another process's lock before giving up until the next tick. A WAL reader almost
 * never waits; when it does, the broker's thread must not sleep for long.
 */
#define STORE_BUSY_TIMEOUT_MS 10
#define DEFAULT_BROKER_USERNAME "pushgate"
/*
 * Mosquitto ticks ten times a second when it ticks at all; no tick this long after loading means it never will
 * (per_listener_settings true in 2.0), which is logged once, from the first check after that.
 */
#define TICK_SILENCE_WARN_MS 5000
#define BROKER_CONF_PATH_MAX 4096

/* What clients that are not apps get from the plugin where it has no opinion of its own. */
enum non_app_mode {
    NON_APP_AUTO,  /* from the broker's configuration file: what Mosquitto gives them without the plugin */
    NON_APP_DEFER, /* left to Mosquitto's files and other plugins; refused when none of them decides */
    NON_APP_ALLOW, /* allowed, as Mosquitto does with no acl_file (ACL) or no password_file (login) */
};

struct app_entry {
    struct pg_app_creds creds; /* creds.id is the hash key */
    int line;                  /* line of the [app] header, for errors found when the section is complete */
    UT_hash_handle hh;
};

/* A username the broker authenticates itself; never an app id here. */
struct account {
    char *name; /* key */
    int warned; /* an app with this id was found and ignored; logged once per configuration */
    UT_hash_handle hh;
};

struct plugin_conf {
    char *topic_root;
    size_t topic_root_len;
    struct pg_auth_limits lim;
    size_t max_channel_bytes;
    char *apps_db;        /* resolved path of the apps store; NULL: none */
    char *device_channel; /* "": no device join/leave events */
    int device_channel_line;
    char *broker_username; /* "": none */
    char *passwd_file;     /* resolved path of broker_password_file; NULL: none */
    struct account *accounts;
    struct app_entry *apps;
};

/* A revoked client id or token id; the key is "app\0kind\0value" so one lookup answers for all three. */
struct revocation {
    char *key;
    size_t keylen;
    int64_t expires_ms; /* wall clock; an expired entry is ignored until the next reload drops it */
    UT_hash_handle hh;
};

/* The apps store as last read; everything here belongs to the broker's thread. */
struct store {
    struct pg_apps_store *db; /* NULL: not open (yet) */
    char *path;               /* what db was opened from */
    int64_t version;          /* data_version the tables below reflect */
    int loaded;
    struct app_entry *apps; /* by id */
    struct revocation *revoked;
    int64_t retry_at_ms; /* monotonic: next open attempt */
    int64_t poll_at_ms;  /* monotonic: next data_version check */
    int failing;         /* a failure was logged; the next one is not, the next success is */
    int sweep_pending;   /* sessions still to be re-checked against the tables (allocation failed) */
};

/*
 * A connection deferred to Mosquitto (the gateway, operators), from its BASIC_AUTH to its DISCONNECT. Only its
 * client id is kept, counted in plugin.held, so that no app client takes the id over.
 */
struct deferred_conn {
    struct mosquitto *client; /* key; only compared */
    char *client_id;
    struct mosquitto *replaces; /* the app session this login takes the client id of (see takeover_note()) */
    UT_hash_handle hh;
};

/* A client id in use by deferred connections (a takeover between two of them briefly counts two). */
struct held_id {
    char *id; /* key */
    unsigned refs;
    UT_hash_handle hh;
};

/* One authenticated app session. */
struct client_state {
    struct mosquitto *client; /* key of hh; only compared, dereferenced by the broker's accessors */
    char *app_id;             /* looked up on every check so a reload or deactivation applies at once */
    char *client_id;          /* key of hh_id when in_by_id */
    pg_token *tok;            /* NULL: app without require_auth, connected without a token */
    int in_by_id;             /* this is the newest session with client_id (so a kick by id reaches it) */
    /*
     * replaced_by: a newer connection with this client id authenticated, so the broker is taking this session over
     * (every check is denied, its will first of all); replaces: the session this one takes over. Both only
     * compared, never dereferenced; see takeover_note().
     */
    struct mosquitto *replaced_by;
    struct mosquitto *replaces;
    int kick_pending;
    int kicked;
    const char *kick_why; /* static string, for the log */
    UT_hash_handle hh;
    UT_hash_handle hh_id;
};

struct plugin {
    mosquitto_plugin_id_t *pid;
    char *conf_path;
    struct plugin_conf *conf;
    /*
     * Users of the broker's own password_file(s), read from its configuration at load and on SIGHUP: broker
     * accounts even when pushgate.conf has no broker_password_file.
     */
    struct account *broker_accounts;
    struct client_state *clients;   /* by struct mosquitto pointer */
    struct client_state *by_id;     /* by client id, newest session only */
    struct deferred_conn *deferred; /* by struct mosquitto pointer */
    struct held_id *held;           /* client ids of deferred connections */
    size_t kicks_pending;
    struct store store;
    /*
     * Set from MOSQ_EVT_RELOAD to the next tick: mosquitto then re-runs BASIC_AUTH for every context it knows,
     * including persistent sessions whose connection is gone. Those must not get state: no DISCONNECT will
     * ever free it, and a later context at the same address would inherit it.
     */
    int reapplying;
    enum non_app_mode acl_opt, login_opt; /* plugin_opt_non_app_acl / plugin_opt_non_app_login */
    int acl_allow;                        /* non-app ACL checks: allowed (1) or deferred (0) */
    int login_allow;                      /* non-app named logins: accepted (1) or deferred (0) */
    int64_t loaded_mono_ms;
    int ticked;      /* a MOSQ_EVT_TICK has arrived */
    int tick_warned; /* the broker was found not to tick, and the log said so */
};

/* ---- configuration ------------------------------------------------------------------------------------ */

static void app_free(struct app_entry *app)
{
    if (!app)
        return;
    pg_app_creds_clear(&app->creds);
    free(app);
}

static void accounts_free(struct account **set)
{
    struct account *acc, *tmp;

    HASH_ITER(hh, *set, acc, tmp) {
        HASH_DEL(*set, acc);
        free(acc->name);
        free(acc);
    }
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
static int account_add(void *ud, const char *name)
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
    hash_oom = 0;
    HASH_ADD_KEYPTR(hh, *set, acc->name, len, acc);
    if (hash_oom) {
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

static struct app_entry *find_in(struct app_entry *apps, const char *id)
{
    struct app_entry *app = NULL;

    if (id)
        HASH_FIND(hh, apps, id, strlen(id), app);
    return app;
}

/* An app of the config file, else of the apps store. */
static const struct app_entry *find_app(const struct plugin *pl, const char *id)
{
    const struct app_entry *app = find_in(pl->conf->apps, id);

    return app ? app : find_in(pl->store.apps, id);
}

static const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/*
 * The app a login username names, or NULL when the username is not the plugin's: not an app id, or one of the
 * broker's own accounts, which an app of the same id must never shadow (its owner could no longer log in, and
 * anyone could log in anonymously under its name).
 */
static const struct app_entry *app_of_user(const struct plugin *pl, const char *username)
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

static void schedule_kick(struct plugin *pl, struct client_state *st, const char *why)
{
    if (st->kick_pending)
        return;
    st->kick_pending = 1;
    st->kick_why = why;
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

/*
 * A login by `client` with client id cid succeeded (or was deferred): if an app session holds cid, the broker is
 * about to take it over. Mosquitto 2.0 then sends that session's will (connect__on_authorised, context__send_will)
 * before the old connection's MOSQ_EVT_DISCONNECT, while its state still exists, and a will never passes
 * MOSQ_EVT_MESSAGE, where forged properties are removed: the session is marked so that its ACL checks, the will's
 * WRITE among them, are denied. Returns the session's client (for the newer login's `replaces`), or NULL.
 */
static struct mosquitto *takeover_note(struct plugin *pl, struct mosquitto *client, const char *cid)
{
    struct client_state *prev = NULL;

    if (!cid)
        return NULL;
    HASH_FIND(hh_id, pl->by_id, cid, strlen(cid), prev);
    if (!prev || prev->client == client)
        return NULL;
    prev->replaced_by = client;
    return prev->client;
}

/*
 * newer disconnected: when it never took over `older` (the password file refused a deferred login after the
 * plugin let it through), older is a live session again.
 */
static void takeover_forget(struct plugin *pl, struct mosquitto *newer, struct mosquitto *older)
{
    struct client_state *st = NULL;

    if (!older)
        return;
    HASH_FIND_PTR(pl->clients, &older, st);
    if (st && st->replaced_by == newer)
        st->replaced_by = NULL;
}

/* ---- deferred connections ---------------------------------------------------------------------------- */

static void deferred_remove(struct plugin *pl, struct deferred_conn *d)
{
    struct held_id *h = NULL;

    HASH_DEL(pl->deferred, d);
    HASH_FIND(hh, pl->held, d->client_id, strlen(d->client_id), h);
    if (h && !--h->refs) {
        HASH_DEL(pl->held, h);
        free(h->id);
        free(h);
    }
    free(d->client_id);
    free(d);
}

static void deferred_free(struct plugin *pl)
{
    struct deferred_conn *d, *tmp;

    HASH_ITER(hh, pl->deferred, d, tmp) {
        deferred_remove(pl, d);
    }
}

/*
 * A login the plugin leaves to Mosquitto: its client id is held until its DISCONNECT (which also comes when the
 * password file refuses it). Failing to remember it refuses the login, or an app client could take the id over.
 */
static int defer(struct plugin *pl, struct mosquitto *client, const char *cid)
{
    struct deferred_conn *d = NULL;
    struct held_id *h = NULL;
    size_t len;

    HASH_FIND_PTR(pl->deferred, &client, d);
    /* Known already; or a reload re-checking every context, offline sessions too, which no DISCONNECT frees. */
    if (d || pl->reapplying || !cid)
        return MOSQ_ERR_PLUGIN_DEFER;
    len = strlen(cid);
    if (!(d = calloc(1, sizeof(*d))) || !(d->client_id = strdup(cid)))
        goto nomem;
    d->client = client;
    HASH_FIND(hh, pl->held, cid, len, h);
    if (!h) {
        if (!(h = calloc(1, sizeof(*h))) || !(h->id = strdup(cid))) {
            free(h);
            goto nomem;
        }
        hash_oom = 0;
        HASH_ADD_KEYPTR(hh, pl->held, h->id, len, h);
        if (hash_oom) {
            free(h->id);
            free(h);
            goto nomem;
        }
    }
    hash_oom = 0;
    HASH_ADD_PTR(pl->deferred, client, d);
    if (hash_oom) {
        if (!h->refs) {
            HASH_DEL(pl->held, h);
            free(h->id);
            free(h);
        }
        goto nomem;
    }
    h->refs++;
    d->replaces = takeover_note(pl, client, cid);
    return MOSQ_ERR_PLUGIN_DEFER;
nomem:
    if (d)
        free(d->client_id);
    free(d);
    return MOSQ_ERR_NOMEM;
}

/*
 * Why an app client may not use client id cid (a static string), NULL if it may. MQTT lets a new connection with a
 * client id take the session of the old one; across tenants, or from a tenant to the gateway, that would let any
 * device disconnect others.
 */
static const char *client_id_unavailable(const struct plugin *pl, const char *app_id, const struct mosquitto *client,
                                         const char *cid)
{
    struct held_id *h = NULL;
    struct client_state *prev = NULL;
    size_t len = strlen(cid);

    if (!strncmp(cid, PG_GATEWAY_CLIENT_ID_PREFIX, strlen(PG_GATEWAY_CLIENT_ID_PREFIX)))
        return "client id reserved for gateways";
    HASH_FIND(hh, pl->held, cid, len, h);
    if (h)
        return "client id in use by a broker account";
    HASH_FIND(hh_id, pl->by_id, cid, len, prev);
    if (prev && prev->client != client && strcmp(prev->app_id, app_id) != 0)
        return "client id in use by another app";
    return NULL;
}

/* ---- apps store: apps and revocations ------------------------------------------------------------------ */

static void apps_free(struct app_entry **apps)
{
    struct app_entry *app, *tmp;

    HASH_ITER(hh, *apps, app, tmp) {
        HASH_DEL(*apps, app);
        app_free(app);
    }
}

static void revocations_free(struct revocation **revoked)
{
    struct revocation *r, *tmp;

    HASH_ITER(hh, *revoked, r, tmp) {
        HASH_DEL(*revoked, r);
        free(r->key);
        free(r);
    }
}

/* "app\0kind\0value" into buf when it fits, else into a new allocation; NULL when that fails. */
static char *revocation_key(char *buf, size_t buflen, const char *app, const char *kind, const char *value,
                            size_t *len)
{
    size_t al = strlen(app), kl = strlen(kind), vl = strlen(value);
    char *key;

    *len = al + 1 + kl + 1 + vl;
    key = *len <= buflen ? buf : malloc(*len);
    if (!key)
        return NULL;
    memcpy(key, app, al + 1);
    memcpy(key + al + 1, kind, kl + 1);
    memcpy(key + al + 1 + kl + 1, value, vl);
    return key;
}

/* 1: revoked at now_ms, 0: not, PG_ENOMEM. */
static int is_revoked(const struct plugin *pl, const char *app, const char *kind, const char *value, int64_t now_ms)
{
    char buf[512], *key;
    struct revocation *r = NULL;
    size_t len;

    /* The store refuses longer values, so no such revocation exists and nothing needs allocating. */
    if (!pl->store.revoked || !value || strlen(value) > PG_REVOKED_VALUE_MAX)
        return 0;
    if (!(key = revocation_key(buf, sizeof buf, app, kind, value, &len)))
        return PG_ENOMEM;
    HASH_FIND(hh, pl->store.revoked, key, len, r);
    if (key != buf)
        free(key);
    return r && r->expires_ms > now_ms;
}

/* Why st may no longer stay connected (a static string), NULL if it may; *nomem set when that was not decidable. */
static const char *session_invalid(const struct plugin *pl, const struct client_state *st, int64_t now_ms, int *nomem)
{
    const struct app_entry *app = find_app(pl, st->app_id);
    int rc;

    if (!app || !app->creds.active)
        return "app removed or inactive";
    if (app->creds.require_auth && !st->tok)
        return "the app now requires a token"; /* require_auth switched on over the admin API */
    if ((rc = is_revoked(pl, st->app_id, "client", st->client_id, now_ms)) != 0) {
        if (rc == 1)
            return "client id revoked";
        *nomem = 1;
    }
    if (st->tok && (rc = is_revoked(pl, st->app_id, "jti", pg_token_jti(st->tok), now_ms)) != 0) {
        if (rc == 1)
            return "token revoked";
        *nomem = 1;
    }
    return NULL;
}

/* After the tables changed: every live session is checked against them and kicked at this tick if refused. */
static void sweep_sessions(struct plugin *pl)
{
    struct client_state *st;
    int64_t now = pg_now_ms();
    int nomem = 0;

    for (st = pl->clients; st; st = st->hh.next) {
        const char *why = session_invalid(pl, st, now, &nomem);
        if (why)
            schedule_kick(pl, st, why);
    }
    pl->store.sweep_pending = nomem;
}

static int store_apps_build(struct pg_app_creds *creds, size_t n, struct app_entry **out)
{
    struct app_entry *apps = NULL, *app;

    for (size_t i = 0; i < n; i++) {
        if (find_in(apps, creds[i].id))
            continue; /* slugs are unique in the store; a duplicate would only shadow itself */
        if (!(app = calloc(1, sizeof(*app))))
            goto nomem;
        app->creds = creds[i]; /* moved: the array's entry no longer owns its strings */
        memset(&creds[i], 0, sizeof(creds[i]));
        hash_oom = 0;
        HASH_ADD_KEYPTR(hh, apps, app->creds.id, strlen(app->creds.id), app);
        if (hash_oom) {
            app_free(app);
            goto nomem;
        }
    }
    *out = apps;
    return 0;
nomem:
    apps_free(&apps);
    return PG_ENOMEM;
}

/* rows: [{"app","kind","value","expires_ms"}] as pg_apps_store_revocations() returns them. */
static int store_revocations_build(json_t *rows, struct revocation **out)
{
    struct revocation *revoked = NULL, *r, *old;
    json_t *row;
    size_t i;

    json_array_foreach(rows, i, row) {
        const char *app = json_string_value(json_object_get(row, "app"));
        const char *kind = json_string_value(json_object_get(row, "kind"));
        const char *value = json_string_value(json_object_get(row, "value"));
        json_t *exp = json_object_get(row, "expires_ms");
        if (!app || !kind || !value || !json_is_integer(exp))
            continue; /* NOT NULL columns: a row like this cannot revoke anything we could match */
        if (!(r = calloc(1, sizeof(*r))) ||
            !(r->key = revocation_key(NULL, 0, app, kind, value, &r->keylen))) {
            free(r);
            goto nomem;
        }
        r->expires_ms = json_integer_value(exp);
        HASH_FIND(hh, revoked, r->key, r->keylen, old);
        if (old) {
            if (r->expires_ms > old->expires_ms)
                old->expires_ms = r->expires_ms;
            free(r->key);
            free(r);
            continue;
        }
        hash_oom = 0;
        HASH_ADD_KEYPTR(hh, revoked, r->key, r->keylen, r);
        if (hash_oom) {
            free(r->key);
            free(r);
            goto nomem;
        }
    }
    *out = revoked;
    return 0;
nomem:
    revocations_free(&revoked);
    return PG_ENOMEM;
}

/* Logs a store problem once per run of failures: a broken store must not flood the log ten times a second. */
static void store_failed(struct store *sto, const char *what, const char *why)
{
    if (!sto->failing)
        mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "apps store %s: %s (retrying)", what, why);
    sto->failing = 1;
}

static void store_close(struct plugin *pl)
{
    struct store *sto = &pl->store;

    pg_apps_store_close(sto->db);
    free(sto->path);
    apps_free(&sto->apps);
    revocations_free(&sto->revoked);
    memset(sto, 0, sizeof(*sto));
}

static void store_open(struct plugin *pl, int64_t now_mono)
{
    struct store *sto = &pl->store;
    char err[512];
    int rc;

    sto->retry_at_ms = now_mono + STORE_RETRY_MS;
    if (!sto->path && !(sto->path = strdup(pl->conf->apps_db)))
        return;
    rc = pg_apps_store_open(sto->path, 1, &sto->db, err, sizeof err);
    if (rc) {
        store_failed(sto, "not available", err);
        return;
    }
    pg_apps_store_set_busy_timeout(sto->db, STORE_BUSY_TIMEOUT_MS);
    sto->loaded = 0;
    mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "apps store opened: %s", sto->path);
}

/* Re-read apps and revocations when another process committed since the last read. */
static void store_load(struct plugin *pl)
{
    struct store *sto = &pl->store;
    struct pg_app_creds *creds = NULL;
    struct app_entry *apps = NULL;
    struct revocation *revoked = NULL;
    json_t *rows = NULL;
    size_t n = 0;
    int64_t version;
    int rc;

    /* Read the version first: a commit racing with the reads below only causes one more reload. */
    if ((rc = pg_apps_store_data_version(sto->db, &version)) != 0) {
        store_failed(sto, "unreadable", pg_apps_store_errmsg(sto->db));
        return;
    }
    if (sto->loaded && version == sto->version) {
        if (sto->sweep_pending)
            sweep_sessions(pl);
        return;
    }
    if ((rc = pg_apps_store_load_creds(sto->db, &creds, &n)) != 0 ||
        (rc = pg_apps_store_revocations(sto->db, pg_now_ms(), &rows)) != 0) {
        store_failed(sto, "unreadable", pg_apps_store_errmsg(sto->db));
        goto out;
    }
    if ((rc = store_apps_build(creds, n, &apps)) != 0 || (rc = store_revocations_build(rows, &revoked)) != 0) {
        store_failed(sto, "not loaded", pg_strerror(rc));
        goto out;
    }
    apps_free(&sto->apps);
    revocations_free(&sto->revoked);
    sto->apps = apps;
    sto->revoked = revoked;
    apps = NULL;
    revoked = NULL;
    sto->version = version;
    sto->loaded = 1;
    sto->failing = 0;
    mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "apps store loaded: %u app(s), %u revocation(s)",
                         HASH_COUNT(sto->apps), HASH_COUNT(sto->revoked));
    sweep_sessions(pl);
out:
    apps_free(&apps);
    revocations_free(&revoked);
    pg_apps_store_free_creds(creds, n);
    json_decref(rows);
}

/*
 * From ticks and after a reload (now: do not wait for the next due time): follow the configured path, open the
 * store when it appears, read what changed.
 */
static void store_poll(struct plugin *pl, int now)
{
    struct store *sto = &pl->store;
    const char *want = pl->conf->apps_db;
    int64_t mono;

    if (sto->path && (!want || strcmp(want, sto->path) != 0)) {
        mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "apps store closed: %s", sto->path);
        store_close(pl);
    }
    if (!want)
        return;
    mono = pg_mono_ms();
    if (!sto->db && (now || mono >= sto->retry_at_ms))
        store_open(pl, mono);
    if (sto->db && (now || mono >= sto->poll_at_ms)) {
        sto->poll_at_ms = mono + STORE_POLL_MS;
        store_load(pl);
    }
}

/* ---- device presence ---------------------------------------------------------------------------------- */

/* A client id becomes a topic level: one that would split or widen the topic gets no presence. */
static int topic_level_ok(const char *s)
{
    return s && pg_topic_level_valid(s, strlen(s));
}

static char *topic_of(const struct plugin_conf *conf, const char *app, const char *kind, const char *name)
{
    size_t n = conf->topic_root_len + strlen(app) + strlen(kind) + strlen(name) + 4;
    char *t = malloc(n);

    if (t)
        snprintf(t, n, "%s/%s/%s/%s", conf->topic_root, app, kind, name);
    return t;
}

/* QoS 1 so a gateway that subscribed with QoS 1 gets every change. properties is taken (also on failure). */
static int publish(const char *topic, const char *payload, int retain, mosquitto_property *props)
{
    int rc;

    if (!payload)
        payload = ""; /* the broker copies even an empty payload with memcpy */
    rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(payload), payload, 1, retain, props);
    if (rc != MOSQ_ERR_SUCCESS)
        mosquitto_property_free_all(&props);
    return rc;
}

/*
 * joined: the retained {root}/{app}/d/{id} record, else its removal; event: also the device_joined/device_left
 * event on the device channel (a session takeover changes the record, not whether the device is online).
 * A failure costs only the report, never the session.
 */
static void presence_report(const struct plugin *pl, const struct client_state *st, int joined, int event)
{
    const struct plugin_conf *conf = pl->conf;
    const char *user_id = st->tok ? pg_token_user_id(st->tok) : NULL;
    mosquitto_property *props = NULL;
    char *topic = NULL, *body = NULL;
    json_t *o = NULL;
    int rc = MOSQ_ERR_NOMEM;

    if (!topic_level_ok(st->client_id)) {
        mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "no presence for client=%s app=%s: not a topic level",
                             str_or(st->client_id, "-"), st->app_id);
        return;
    }
    if (!(topic = topic_of(conf, st->app_id, "d", st->client_id)))
        goto out;
    if (joined) {
        o = json_pack("{s:s, s:s?, s:I}", "id", st->client_id, "user_id", user_id, "connected_at",
                      (json_int_t)pg_now_ms());
        if (!o || !(body = json_dumps(o, JSON_COMPACT)))
            goto out;
    }
    if ((rc = publish(topic, body, 1, NULL)) != MOSQ_ERR_SUCCESS)
        goto out;
    if (!event || !conf->device_channel[0])
        goto out;
    free(topic);
    free(body);
    json_decref(o);
    body = NULL;
    rc = MOSQ_ERR_NOMEM;
    o = json_pack("{s:s, s:s?}", "id", st->client_id, "user_id", user_id);
    if (!(topic = topic_of(conf, st->app_id, "c", conf->device_channel)) || !o ||
        !(body = json_dumps(o, JSON_COMPACT)) ||
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "event",
                                           joined ? "device_joined" : "device_left") != MOSQ_ERR_SUCCESS)
        goto out;
    rc = publish(topic, body, 0, props);
    props = NULL;
out:
    if (rc != MOSQ_ERR_SUCCESS)
        mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "presence of client=%s app=%s not published: %s",
                             st->client_id, st->app_id, mosquitto_strerror(rc));
    mosquitto_property_free_all(&props);
    json_decref(o);
    free(body);
    free(topic);
}

/* ---- clients that are not apps ---------------------------------------------------------------------- */

#define TICK_WARNING                                                                                                   \
    LOG_PREFIX "the broker sends this plugin no tick (per_listener_settings true, in Mosquitto 2.0): expired "         \
               "tokens and revoked or removed apps are refused at their next check but their clients stay "            \
               "connected, apps_db is read only at start-up and on SIGHUP, and devices that connect after a SIGHUP "   \
               "are refused; set per_listener_settings false"

/* From the first checks after TICK_SILENCE_WARN_MS: a broker that never ticks is told in its log, once. */
static void tick_check(struct plugin *pl)
{
    if (pl->ticked || pl->tick_warned || pg_mono_ms() - pl->loaded_mono_ms < TICK_SILENCE_WARN_MS)
        return;
    pl->tick_warned = 1;
    mosquitto_log_printf(MOSQ_LOG_WARNING, TICK_WARNING);
}

static int non_app_mode_parse(const char *value, enum non_app_mode *out)
{
    if (!strcmp(value, "auto"))
        *out = NON_APP_AUTO;
    else if (!strcmp(value, "defer"))
        *out = NON_APP_DEFER;
    else if (!strcmp(value, "allow"))
        *out = NON_APP_ALLOW;
    else
        return PG_EINVAL;
    return 0;
}

/* Collects the users of the broker's password files (see non_app_resolve()). */
struct broker_users {
    struct account *set;
    int unread; /* a file could not be read: logged, and the previous users are kept as well */
};

static int broker_passwd_cb(void *ud, const char *path)
{
    struct broker_users *bu = ud;
    char err[512];
    int rc;

    err[0] = '\0';
    rc = pg_passwd_users(path, account_add, &bu->set, err, sizeof err);
    if (rc == PG_ENOMEM)
        return rc;
    if (rc) {
        bu->unread = 1;
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             LOG_PREFIX "cannot read the broker's password_file (%s): an app named after one of its "
                                        "users would shadow it; set broker_password_file",
                             err[0] ? err : pg_strerror(rc));
    }
    return 0;
}

/*
 * The broker's accounts become bu's users. When the configuration or a password file could not be read, the users
 * known so far are kept too: an account must not turn into an app because a file was briefly unreadable.
 */
static void broker_accounts_set(struct plugin *pl, struct broker_users *bu, int complete)
{
    struct account *acc, *tmp;

    if (complete) {
        accounts_free(&pl->broker_accounts);
        pl->broker_accounts = bu->set;
        bu->set = NULL;
        return;
    }
    HASH_ITER(hh, bu->set, acc, tmp) {
        if (account_add(&pl->broker_accounts, acc->name) != 0)
            mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "out of memory: broker account %s not recorded",
                                 acc->name);
    }
    accounts_free(&bu->set);
}

/*
 * What one of the two options leaves to the broker's configuration: 1 allow or 0 defer when decided (by the option
 * itself, or because auto cannot be sure: an unknown configuration, the broker's own file, another plugin), with
 * the reason in *why; -1 when auto finds nothing in the way and the caller decides from the rest.
 */
static int non_app_rule(int opt, const char *opt_name, int known, int has_file, const char *file_why, int plugins,
                        const char **why)
{
    if (opt != NON_APP_AUTO) {
        *why = opt_name;
        return opt == NON_APP_ALLOW;
    }
    *why = !known ? "broker configuration unknown" : has_file ? file_why : plugins > 1 ? "another plugin is loaded" : NULL;
    return *why ? 0 : -1;
}

/*
 * Sets acl_allow and login_allow from the options and, for `auto`, from the broker's configuration file, and logs
 * the mode in force. Without the plugin, Mosquitto 2.0 allows every publish and subscribe when it has no acl_file
 * and accepts any username when it has no password_file and allow_anonymous is true; with a plugin that defers,
 * it refuses both. `auto` gives what Mosquitto would give, and defers whenever it cannot be sure (a file, another
 * plugin, a configuration it cannot read), so a broker that has its own security is never opened. Anonymous
 * logins are always deferred: Mosquitto applies allow_anonymous to them either way. Run at load and on SIGHUP.
 */
static void non_app_resolve(struct plugin *pl)
{
    struct pg_broker_conf bc;
    struct broker_users bu = {0};
    char path[BROKER_CONF_PATH_MAX], err[512];
    const char *acl_why, *login_why;
    int known, rc;

    err[0] = '\0';
    rc = pg_broker_conf_path(path, sizeof path);
    if (rc == 0)
        rc = pg_broker_conf_read(path, &bc, broker_passwd_cb, &bu, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s", rc == PG_ENOTFOUND ? "no -c on the broker's command line" : pg_strerror(rc));
    if (rc && !err[0])
        snprintf(err, sizeof err, "%s", pg_strerror(rc));
    known = rc == 0;
    broker_accounts_set(pl, &bu, known && !bu.unread);

    int allow = non_app_rule(pl->acl_opt, "plugin_opt_non_app_acl", known, bc.acl_file,
                             "the broker has an acl_file", bc.plugins, &acl_why);
    pl->acl_allow = allow < 0 ? 1 : allow;
    if (allow < 0)
        acl_why = "the broker has no acl_file";

    allow = non_app_rule(pl->login_opt, "plugin_opt_non_app_login", known, bc.password_file,
                         "the broker has a password_file", bc.plugins, &login_why);
    if (allow >= 0) {
        pl->login_allow = allow;
    } else if (bc.per_listener_settings) {
        pl->login_allow = 0; /* allow_anonymous may differ between listeners */
        login_why = "per_listener_settings true";
    } else {
        pl->login_allow = bc.allow_anonymous == 1;
        login_why = pl->login_allow ? "the broker has no password_file and allow_anonymous true"
                                    : "the broker has no password_file and allow_anonymous false: every login refused";
    }

    if (!known && (pl->acl_opt == NON_APP_AUTO || pl->login_opt == NON_APP_AUTO))
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             LOG_PREFIX "cannot read the broker's configuration (%s): clients that are not apps are "
                                        "left to its acl_file and password_file, and refused where it has none; set "
                                        "plugin_opt_non_app_acl and plugin_opt_non_app_login",
                             err);
    if (known && pl->acl_opt == NON_APP_ALLOW && bc.acl_file)
        mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "plugin_opt_non_app_acl allow: the broker's acl_file is not "
                                                          "consulted for clients that are not apps");
    if (known && pl->login_opt == NON_APP_ALLOW && bc.password_file)
        mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "plugin_opt_non_app_login allow: the broker's password_file "
                                                          "is not consulted for clients that are not apps");
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         LOG_PREFIX "clients that are not apps: publish/subscribe %s (%s), logins with a username %s "
                                    "(%s)",
                         pl->acl_allow ? "allowed" : "left to the broker", acl_why,
                         pl->login_allow ? "accepted" : "left to the broker", login_why);
    if (known && bc.per_listener_settings && !pl->ticked && !pl->tick_warned) {
        pl->tick_warned = 1;
        mosquitto_log_printf(MOSQ_LOG_WARNING, TICK_WARNING);
    }
}

/* ---- callbacks ------------------------------------------------------------------------------------------- */

/*
 * Keep state for an admitted session (takes tok, also on failure) and report a device that came online. A session
 * takeover (always by a connection of the same app) changes the device's record but not whether it is online.
 */
static int admit(struct plugin *pl, struct mosquitto *client, const char *app_id, const char *cid, pg_token *tok)
{
    struct client_state *st = NULL, *prev = NULL;
    int reauth, online = 0, rc;

    HASH_FIND_PTR(pl->clients, &client, st);
    reauth = st != NULL;
    if (cid)
        HASH_FIND(hh_id, pl->by_id, cid, strlen(cid), prev);
    /* client_id_unavailable() let it in: a session with the same id is of the same app, being taken over. */
    if (prev && prev != st)
        online = 1;
    rc = state_add(pl, client, app_id, cid, tok);
    if (rc != MOSQ_ERR_SUCCESS)
        return rc;
    st = NULL;
    HASH_FIND_PTR(pl->clients, &client, st);
    /*
     * See takeover_note(); prev left by_id in state_add() but is alive until its DISCONNECT. Marked only once this
     * login holds state, so that its DISCONNECT can undo the mark (takeover_forget()).
     */
    if (st && online) {
        prev->replaced_by = client;
        st->replaces = prev->client;
    }
    mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "connect allowed client=%s app=%s token=%s", str_or(cid, "-"),
                         app_id, tok ? "valid" : "none");
    if (st && !reauth)
        presence_report(pl, st, 1, !online);
    return MOSQ_ERR_SUCCESS;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    struct plugin *pl = userdata;
    const struct app_entry *app;
    const char *cid, *claim, *why = NULL;
    pg_token *tok = NULL;
    int64_t now = pg_now_ms();
    char err[160];
    size_t len;
    int rc;

    (void)event;
    tick_check(pl);
    app = app_of_user(pl, ed->username);
    cid = mosquitto_client_id(ed->client);
    if (!app) {
        rc = defer(pl, ed->client, cid);
        /* What Mosquitto gives a username with no password_file; anonymous logins are its own either way. */
        if (rc == MOSQ_ERR_PLUGIN_DEFER && ed->username && pl->login_allow)
            return MOSQ_ERR_SUCCESS;
        return rc;
    }
    if (!app->creds.active) {
        why = "app inactive";
        goto deny;
    }
    if ((rc = is_revoked(pl, app->creds.id, "client", cid, now)) != 0) {
        if (rc < 0)
            return MOSQ_ERR_NOMEM;
        why = "client id revoked";
        goto deny;
    }
    if (cid && (why = client_id_unavailable(pl, app->creds.id, ed->client, cid)) != NULL)
        goto deny;
    if (!ed->password || !ed->password[0]) {
        if (app->creds.require_auth) {
            why = "token required";
            goto deny;
        }
        return admit(pl, ed->client, app->creds.id, cid, NULL);
    }
    /* Bounded: one byte over the limit is enough for the verifier to refuse it unparsed. */
    len = strnlen(ed->password, pl->conf->lim.max_token_bytes + 1);
    err[0] = '\0';
    rc = pg_token_verify(ed->password, len, &app->creds, &pl->conf->lim, now, &tok, err, sizeof err);
    if (rc == PG_ENOMEM)
        return MOSQ_ERR_NOMEM;
    if (rc) {
        why = err[0] ? err : pg_strerror(rc);
        goto deny;
    }
    claim = pg_token_client(tok);
    if (!cid || !claim || strcmp(cid, claim) != 0) {
        why = claim ? "client id differs from the token's client claim" : "token has no client claim";
        goto deny;
    }
    if ((rc = is_revoked(pl, app->creds.id, "jti", pg_token_jti(tok), now)) != 0) {
        if (rc < 0) {
            pg_token_free(tok);
            return MOSQ_ERR_NOMEM;
        }
        why = "token revoked";
        goto deny;
    }
    return admit(pl, ed->client, app->creds.id, cid, tok);
deny:
    mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "connect denied client=%s app=%s reason=%s", str_or(cid, "-"),
                         app->creds.id, why);
    pg_token_free(tok);
    return MOSQ_ERR_AUTH;
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
        if (wild)
            return NULL;
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_READ:
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_WRITE:
        if (pg_channel_check(chan, len, pl->conf->max_channel_bytes, 0) != 0)
            return "invalid channel name";
        /* Its events must come from the plugin alone, or a device could report others joining and leaving. */
        if (pl->conf->device_channel[0] && !strcmp(chan, pl->conf->device_channel))
            return "channel reserved for device events";
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
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
    tick_check(pl);
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st) {
        /* An app user without state is a session whose connection is gone; it holds no valid token. */
        if (app_of_user(pl, mosquitto_client_username(ed->client))) {
            mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s denied client=%s topic=%s reason=no live session",
                                 access_name(ed->access), str_or(cid, "-"), ed->topic);
            return MOSQ_ERR_ACL_DENIED;
        }
        /* Not an app: what Mosquitto would decide without this plugin (see non_app_resolve()). */
        return pl->acl_allow ? MOSQ_ERR_SUCCESS : MOSQ_ERR_PLUGIN_DEFER;
    }
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
        return MOSQ_ERR_SUCCESS; /* giving up a subscription never widens access */
    app = find_app(pl, st->app_id);
    if (st->replaced_by) {
        why = "session taken over"; /* its will: see takeover_note() */
    } else if (!app || !app->creds.active) {
        why = "app removed or inactive";
        schedule_kick(pl, st, why);
    } else if (st->tok && pg_token_expired(st->tok, pg_now_ms())) {
        why = "token expired";
        schedule_kick(pl, st, why);
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

/* 1 if a device may not name its message `event`: names the protocols use for their own events. */
static int event_reserved(const char *name)
{
    static const char *const prefixes[] = {"pusher:", "pusher_internal:", "client-", "pushgate:"};
    /* socket.io's reserved event names, and the plugin's own device events */
    static const char *const names[] = {"connect",     "connect_error",  "disconnect",    "disconnecting",
                                        "newListener", "removeListener", "device_joined", "device_left"};

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            return 1;
    return 0;
}

/* 1 if an app client's message may not carry this user property: gateways read it as a fact about the sender. */
static int user_property_forged(const char *name, const char *value)
{
    /* origin, seq, prev: the delivery sequence of gateway publishes; forged, they would fake or hide gaps */
    static const char *const facts[] = {"user_id", "client_id", "socket_id", "ts", "origin", "seq", "prev"};

    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        if (!strcmp(name, facts[i]))
            return 1;
    return !strcmp(name, "event") && event_reserved(value);
}

/* Appends a copy of prop (whatever its type) to *out; properties are typed by identifier, so one reader fits. */
static int property_copy_one(const mosquitto_property *prop, mosquitto_property **out)
{
    int id = mosquitto_property_identifier(prop);
    uint8_t b;
    uint16_t i16;
    uint32_t i32;
    void *bin = NULL;
    char *str = NULL, *val = NULL;
    int rc;

    if (mosquitto_property_read_byte(prop, id, &b, false))
        return mosquitto_property_add_byte(out, id, b);
    if (mosquitto_property_read_int16(prop, id, &i16, false))
        return mosquitto_property_add_int16(out, id, i16);
    if (mosquitto_property_read_int32(prop, id, &i32, false))
        return mosquitto_property_add_int32(out, id, i32);
    if (mosquitto_property_read_varint(prop, id, &i32, false))
        return mosquitto_property_add_varint(out, id, i32);
    /* what the readers allocate is the broker's: mosquitto_free() */
    if (mosquitto_property_read_binary(prop, id, &bin, &i16, false)) {
        rc = mosquitto_property_add_binary(out, id, bin, i16);
        mosquitto_free(bin);
        return rc;
    }
    if (mosquitto_property_read_string_pair(prop, id, &str, &val, false)) {
        rc = mosquitto_property_add_string_pair(out, id, str, val);
        mosquitto_free(str);
        mosquitto_free(val);
        return rc;
    }
    if (mosquitto_property_read_string(prop, id, &str, false)) {
        rc = mosquitto_property_add_string(out, id, str);
        mosquitto_free(str);
        return rc;
    }
    return MOSQ_ERR_NOMEM; /* a read failed to allocate (every identifier has one of the types above) */
}

/*
 * An incoming PUBLISH (not the plugin's own, not a will): an app client's message loses the user properties only
 * gateways and the plugin may set. The broker stores whatever list ed->properties points to afterwards and, in
 * 2.0.11, does not free the one it passed in.
 */
static int on_message(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_message *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;
    const mosquitto_property *p;
    mosquitto_property *kept = NULL;
    char *name = NULL, *value = NULL;
    int forged = 0, rc = MOSQ_ERR_SUCCESS;

    (void)event;
    if (!ed->client || !ed->properties)
        return MOSQ_ERR_SUCCESS;
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st && !app_of_user(pl, mosquitto_client_username(ed->client)))
        return MOSQ_ERR_SUCCESS; /* the gateway, operators */
    for (p = ed->properties; p && rc == MOSQ_ERR_SUCCESS; p = mosquitto_property_next(p)) {
        if (mosquitto_property_identifier(p) == MQTT_PROP_USER_PROPERTY &&
            mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false)) {
            if (user_property_forged(name, value))
                forged++;
            else
                rc = mosquitto_property_add_string_pair(&kept, MQTT_PROP_USER_PROPERTY, name, value);
            mosquitto_free(name);
            mosquitto_free(value);
            name = value = NULL;
            continue;
        }
        rc = property_copy_one(p, &kept);
    }
    if (rc != MOSQ_ERR_SUCCESS || !forged) {
        mosquitto_property_free_all(&kept);
        /* Unable to clean it: the message is refused rather than delivered with forged metadata. */
        return forged ? MOSQ_ERR_NOMEM : MOSQ_ERR_SUCCESS;
    }
    mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "removed %d reserved user properties from client=%s topic=%s",
                         forged, str_or(mosquitto_client_id(ed->client), "-"), ed->topic);
    mosquitto_property_free_all(&ed->properties);
    ed->properties = kept;
    return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;
    struct deferred_conn *d = NULL;

    (void)event;
    HASH_FIND_PTR(pl->deferred, &ed->client, d);
    if (d) {
        takeover_forget(pl, ed->client, d->replaces);
        deferred_remove(pl, d);
    }
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st)
        return MOSQ_ERR_SUCCESS;
    takeover_forget(pl, ed->client, st->replaces);
    /* The old connection of a takeover is not the newest session of its id: the device is still online. */
    if (st->in_by_id)
        presence_report(pl, st, 0, 1);
    state_remove(pl, st);
    return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
    struct plugin *pl = userdata;
    struct client_state *st;
    char *ids[KICKS_PER_TICK];
    const char *whys[KICKS_PER_TICK];
    size_t n = 0;

    (void)event;
    (void)event_data;
    pl->reapplying = 0;
    pl->ticked = 1;
    store_poll(pl, 0);
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
        whys[n++] = str_or(st->kick_why, "credential no longer valid");
    }
    for (size_t i = 0; i < n; i++) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "disconnecting client=%s reason=%s", ids[i], whys[i]);
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
    /* The broker has re-read its own file too: an acl_file or password_file (and its users) may have changed. */
    non_app_resolve(pl);
    if (conf_load(pl->conf_path, &conf, err, sizeof err) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "reload failed, keeping the previous configuration: %s", err);
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    /* Sessions keep their tokens; they hold app ids, not app pointers, so the swap is safe. */
    conf_free(pl->conf);
    pl->conf = conf;
    mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "configuration reloaded from %s", pl->conf_path);
    /* The broker re-authenticates every session right after this event: let it see the store as it is now. */
    store_poll(pl, 1);
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
    {MOSQ_EVT_RELOAD, on_reload},         {MOSQ_EVT_MESSAGE, on_message},
};

static void plugin_free(struct plugin *pl)
{
    if (!pl)
        return;
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++)
        mosquitto_callback_unregister(pl->pid, callbacks[i].event, callbacks[i].cb, NULL);
    states_free(pl);
    deferred_free(pl);
    store_close(pl);
    accounts_free(&pl->broker_accounts);
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

    enum non_app_mode acl_opt = NON_APP_AUTO, login_opt = NON_APP_AUTO;

    for (int i = 0; i < option_count; i++) {
        const char *key = options[i].key, *value = options[i].value ? options[i].value : "";
        enum non_app_mode *mode = NULL;
        if (!key)
            continue;
        if (!strcmp(key, "config"))
            path = value;
        else if (!strcmp(key, "non_app_acl"))
            mode = &acl_opt;
        else if (!strcmp(key, "non_app_login"))
            mode = &login_opt;
        if (mode && non_app_mode_parse(value, mode) != 0) {
            mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_%s: expected auto, defer or allow, got \"%s\"",
                                 key, value);
            rc = MOSQ_ERR_INVAL;
            goto out;
        }
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
    pl->acl_opt = acl_opt;
    pl->login_opt = login_opt;
    pl->loaded_mono_ms = pg_mono_ms();
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
    non_app_resolve(pl);
    /* Store apps should be known before the first device connects; a store that is not there yet comes later. */
    store_poll(pl, 1);
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
