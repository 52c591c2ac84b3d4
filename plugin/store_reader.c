/*
 * The apps store as the plugin reads it: its apps and revocations, polled from the broker's ticks.
 *
 * Apps come from the config file's [app ID] sections and, when the global option apps_db names one, from the
 * gateway's SQLite apps store, opened read-only (a config app wins over a store app with the same id). The store
 * may not exist when the broker starts: it is opened on a later tick. A tick (at most every STORE_POLL_MS) asks
 * SQLite's data_version whether another process committed; if so apps and revocations are re-read and every live
 * session is checked again: sessions of an app that is gone or inactive, of a revoked client id or of a revoked
 * token id (jti) are kicked at that tick, and their next CONNECT is refused. An expired revocation is ignored.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plugin.h"

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
int is_revoked(const struct plugin *pl, const char *app, const char *kind, const char *value, int64_t now_ms)
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
        plugin_hash_oom = 0;
        HASH_ADD_KEYPTR(hh, apps, app->creds.id, strlen(app->creds.id), app);
        if (plugin_hash_oom) {
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
        plugin_hash_oom = 0;
        HASH_ADD_KEYPTR(hh, revoked, r->key, r->keylen, r);
        if (plugin_hash_oom) {
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

void store_close(struct plugin *pl)
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
void store_poll(struct plugin *pl, int now)
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
