/*
 * Apps at run time: the config file's [app] sections and the apps store.
 *
 * Config apps live as long as the process. Store apps are (re)loaded from
 * the SQLite store whenever its data_version changes: every process on the
 * file (gateways, the broker plugin) notices another's commit on its next
 * tick, so an admin call takes effect everywhere without a restart. A store
 * app that is deactivated or deleted keeps its struct pg_app (sessions, HTTP
 * requests and queued callbacks point at it) with active = 0: it answers
 * like a disabled app until it comes back under the same slug.
 *
 * Revocations (client ids and token ids) are kept in memory, filled from the
 * store and from `{root}/_ctl/{app}/revoke` messages of other gateways (which
 * may use another store file), and checked when a token or client id is
 * presented; adding one closes the matching sessions at once.
 *
 * Store apps replicate between gateways that do not share a file through
 * retained `{root}/_ctl/apps/{slug}` messages (the app's JSON, or once
 * deleted a tombstone {"slug","deleted":true,"updated_ms"}), published after
 * each admin change; a receiving gateway writes the row into its own store
 * when it is newer, so its broker plugin sees it too. The broker keeps the
 * latest state of every app, deletions included, for gateways that start or
 * reconnect later. Deletion wins: each store records when a slug was
 * deleted, and no copy of the app from before then is stored again, even
 * one that a gateway changed while away from the broker and announces on
 * its return; whoever ignores such a copy announces the tombstone again, so
 * the broker's retained state is the deletion once more. `_ctl` is readable only by gateway accounts (conf/mosquitto.acl).
 *
 * The state behind all this is struct pg_apps (gw->apps_state), private to
 * this file (apps.h says who may call what). The messages of other gateways
 * arrive already sorted by topic (the broker message dispatch): this file
 * parses no topic, it only builds the ones it publishes and subscribes.
 *
 * Everything here runs on the loop thread (core/gw.h).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apps_store.h"
#include "cluster/apps.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/seq.h"
#include "core/session.h"
#include "log.h"
#include "pg_topic.h"

#define STORE_CHECK_MS 200       /* data_version polling period */
#define REVOKED_PURGE_MS 60000   /* how often expired revocations are dropped */

/* A store app changed while the broker was unavailable: announced again on the next connect. */
struct pg_unannounced {
    char *slug;
    int64_t since_ms; /* wall clock of the change: a deletion's tombstone carries it */
    UT_hash_handle hh;
};

struct pg_revocation {
    char *key; /* "app\nkind\nvalue" */
    int64_t expires_ms;
    UT_hash_handle hh;
};

/* What this file keeps of one app, config or store app alike. */
struct app_entry {
    struct pg_app *app;        /* the hash key is its id */
    struct pg_app_conf *owned; /* store apps: the current conf (app->conf; replaced on reload) */
    json_t *stored;            /* store apps: the row as last loaded; NULL once deleted */
    int seen;                  /* in the store's list at the current reload */
    int shadow_warned;         /* a config app that a store app of the same id was told to yield to */
    UT_hash_handle hh;
};

struct pg_apps {
    struct app_entry *entries;        /* every app, in gw->apps's order */
    struct pg_apps_store *store;      /* apps_db, read-write; NULL without one */
    int64_t store_version;            /* its data_version at the last reload */
    int store_dirty;                  /* reload at the next check (own commits keep data_version) */
    int64_t last_store_check_ms, last_revoked_purge_ms;
    struct pg_revocation *revoked;    /* revoked client ids and jti by "app\nkind\nvalue" */
    struct pg_unannounced *unannounced; /* store apps changed while the broker was away */
};

/* ---- app structs ------------------------------------------------------------------ */

static struct app_entry *entry_of(struct pg_apps *as, const struct pg_app *a)
{
    struct app_entry *e;
    HASH_FIND_STR(as->entries, a->id, e);
    return e;
}

static struct app_entry *app_new(struct pg_gw *gw, const char *id, const struct pg_app_conf *conf)
{
    struct pg_app *a = calloc(1, sizeof *a);
    struct app_entry *e = calloc(1, sizeof *e);
    if (!a || !e || !(a->id = strdup(id))) {
        free(a);
        free(e);
        return NULL;
    }
    a->conf = conf;
    a->creds = &conf->creds;
    e->app = a;
    HASH_ADD_KEYPTR(hh, gw->apps, a->id, strlen(a->id), a);
    HASH_ADD_KEYPTR(hh, gw->apps_state->entries, a->id, strlen(a->id), e);
    return e;
}

static void conf_free(struct pg_app_conf *c)
{
    if (c)
        pg_app_conf_clear(c);
    free(c);
}

/* The run-time conf of a store app from its JSON (apps_store.h). */
static struct pg_app_conf *conf_from_json(json_t *j)
{
    struct pg_app_conf *c = calloc(1, sizeof *c);
    const char *slug = json_string_value(json_object_get(j, "slug"));
    const char *key = json_string_value(json_object_get(j, "key"));
    const char *secret = json_string_value(json_object_get(j, "secret"));
    const char *push = json_string_value(json_object_get(j, "push_token"));
    json_t *origins = json_object_get(j, "allowed_origins");
    char why[128];

    if (!c || !slug || !key || !secret || pg_app_creds_init(&c->creds, slug) ||
        pg_app_creds_set(&c->creds, "key", key, NULL, why, sizeof why) ||
        pg_app_creds_set(&c->creds, "secret", secret, NULL, why, sizeof why))
        goto fail;
    c->creds.active = json_is_true(json_object_get(j, "active"));
    c->creds.require_auth = json_is_true(json_object_get(j, "require_auth"));
    if (push && !(c->push_token = strdup(push)))
        goto fail;
    if (json_array_size(origins)) { /* none listed: any Origin, as for config apps */
        size_t n = json_array_size(origins);
        if (!(c->allowed_origins = calloc(n + 1, sizeof *c->allowed_origins)))
            goto fail;
        for (size_t i = 0; i < n; i++) {
            const char *o = json_string_value(json_array_get(origins, i));
            if (!o || !(c->allowed_origins[i] = strdup(o)))
                goto fail;
        }
    }
    return c;
fail:
    conf_free(c);
    return NULL;
}

/* Close every session of the app: it was disabled or deleted. */
static void close_app_sessions(struct pg_gw *gw, struct pg_app *a, const char *why)
{
    struct pg_session *s, *tmp;
    size_t n = 0;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (s->app != a)
            continue;
        s->proto->refuse(s, 403, 4003, why);
        n++;
    }
    if (n)
        pg_log(PG_LOG_INFO, "apps", "closed %zu sessions app=%s: %s", n, a->id, why);
}

/* require_auth was switched on: each protocol closes the sessions whose credentials do not cover what they hold. */
static void close_unauthenticated(struct pg_gw *gw, struct pg_app *a)
{
    struct pg_session *s, *tmp;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (s->app != a || s->close_code)
            continue;
        s->proto->auth_required(s);
    }
}

/* ---- revocations ------------------------------------------------------------------ */

static char *revocation_key(const char *app, const char *kind, const char *value)
{
    size_t n = strlen(app) + strlen(kind) + strlen(value) + 3;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s\n%s\n%s", app, kind, value);
    return k;
}

/* The entry for app/kind/value or NULL; *oom is set when the lookup could not be made. */
static struct pg_revocation *revocation_find(struct pg_gw *gw, const char *app, const char *kind, const char *value,
                                             int *oom)
{
    struct pg_revocation *r = NULL, *table = gw->apps_state ? gw->apps_state->revoked : NULL;
    char *k = table ? revocation_key(app, kind, value) : NULL;
    *oom = table && !k;
    if (k)
        HASH_FIND_STR(table, k, r);
    free(k);
    return r;
}

int pg_revoked(struct pg_gw *gw, const char *app, const char *kind, const char *value)
{
    int oom;
    if (!value || !*value)
        return 0;
    struct pg_revocation *r = revocation_find(gw, app, kind, value, &oom);
    /* cannot tell: refuse rather than let a revoked credential through */
    return oom || (r && r->expires_ms > pg_now_ms());
}

int pg_session_revoked(struct pg_gw *gw, const struct pg_session *s)
{
    const char *id = s->app->id;
    return pg_revoked(gw, id, "client", s->client_id) || pg_revoked(gw, id, "client", s->socket_id) ||
           (s->token && (pg_revoked(gw, id, "jti", pg_token_jti(s->token)) ||
                         pg_revoked(gw, id, "client", pg_token_client(s->token))));
}

/* Remember a revocation and close the sessions it names. Returns 0 or PG_ENOMEM. */
static int revocation_apply(struct pg_gw *gw, const char *app, const char *kind, const char *value, int64_t expires_ms)
{
    int oom;
    if (expires_ms <= pg_now_ms())
        return 0;
    struct pg_revocation *r = revocation_find(gw, app, kind, value, &oom);
    if (oom)
        return PG_ENOMEM;
    if (r) {
        int was_live = r->expires_ms > pg_now_ms();
        if (r->expires_ms < expires_ms)
            r->expires_ms = expires_ms;
        if (was_live) /* its sessions were closed when it arrived (a reload re-reads every revocation) */
            return 0;
    } else {
        char *k = revocation_key(app, kind, value);
        if (!k || !(r = calloc(1, sizeof *r))) {
            free(k);
            return PG_ENOMEM;
        }
        r->key = k;
        r->expires_ms = expires_ms;
        HASH_ADD_KEYPTR(hh, gw->apps_state->revoked, r->key, strlen(r->key), r);
    }
    struct pg_app *a = pg_app_find(gw, app, strlen(app));
    struct pg_session *s, *tmp;
    if (!a)
        return 0;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (s->app != a || s->close_code || !pg_session_revoked(gw, s))
            continue;
        pg_log(PG_LOG_INFO, "apps", "revoked session closed app=%s client=%s %s=%s", app,
               s->client_id[0] ? s->client_id : s->socket_id, kind, value);
        s->proto->refuse(s, 401, 4009, "credential revoked");
    }
    return 0;
}

static void revocations_purge(struct pg_gw *gw)
{
    struct pg_revocation *r, *tmp;
    int64_t now = pg_now_ms();
    HASH_ITER(hh, gw->apps_state->revoked, r, tmp) {
        if (r->expires_ms <= now) {
            HASH_DEL(gw->apps_state->revoked, r);
            free(r->key);
            free(r);
        }
    }
}

static void revocations_load(struct pg_gw *gw)
{
    struct pg_apps_store *st = gw->apps_state->store;
    json_t *list = NULL, *r;
    size_t i;
    if (pg_apps_store_revocations(st, pg_now_ms(), &list) != 0) {
        pg_log(PG_LOG_WARN, "apps", "cannot read revocations: %s", pg_apps_store_errmsg(st));
        return;
    }
    json_array_foreach(list, i, r) {
        revocation_apply(gw, json_string_value(json_object_get(r, "app")),
                         json_string_value(json_object_get(r, "kind")), json_string_value(json_object_get(r, "value")),
                         json_integer_value(json_object_get(r, "expires_ms")));
    }
    json_decref(list);
}

int pg_revoke(struct pg_gw *gw, const char *app, const char *kind, const char *value, int64_t expires_ms)
{
    struct pg_apps_store *st = gw->apps_state->store;
    int rc;
    if (st && (rc = pg_apps_store_revoke(st, app, kind, value, expires_ms)) != 0)
        return rc;
    if ((rc = revocation_apply(gw, app, kind, value, expires_ms)) != 0)
        return rc;
    /* gateways on another store file learn it from the broker */
    json_t *msg = json_pack("{s:s, s:s, s:I}", "kind", kind, "value", value, "expires_ms", (json_int_t)expires_ms);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_REVOKE, app, NULL, NULL);
    if (text && topic)
        pg_bridge_publish(gw->bridge, topic, text, strlen(text), NULL, 0, NULL, NULL);
    free(topic);
    free(text);
    json_decref(msg);
    return 0;
}

/* ---- loading ------------------------------------------------------------------------- */

/* Bring store apps in line with the store's current content. */
static void store_reload(struct pg_gw *gw)
{
    struct pg_apps *as = gw->apps_state;
    json_t *list = NULL, *j;
    struct app_entry *e, *tmp;
    size_t i;

    if (pg_apps_store_list(as->store, &list) != 0) {
        pg_log(PG_LOG_WARN, "apps", "cannot read the apps store: %s", pg_apps_store_errmsg(as->store));
        return;
    }
    HASH_ITER(hh, as->entries, e, tmp)
        e->seen = 0;
    json_array_foreach(list, i, j) {
        const char *slug = json_string_value(json_object_get(j, "slug"));
        if (!slug)
            continue;
        HASH_FIND_STR(as->entries, slug, e);
        if (e && !e->owned) {
            if (!e->shadow_warned)
                pg_log(PG_LOG_WARN, "apps", "store app %s ignored: the config file declares an app with that id", slug);
            e->shadow_warned = 1;
            continue;
        }
        if (e)
            e->seen = 1;
        if (e && e->stored && json_equal(e->stored, j))
            continue;
        struct pg_app_conf *conf = conf_from_json(j);
        if (!conf) {
            pg_log(PG_LOG_ERROR, "apps", "cannot load store app %s: out of memory", slug);
            continue;
        }
        if (!e && !(e = app_new(gw, slug, conf))) {
            conf_free(conf);
            continue;
        }
        struct pg_app *a = e->app;
        int was_active = e->owned && a->creds->active;
        int was_open = e->owned && !a->creds->require_auth;
        conf_free(e->owned);
        e->owned = conf;
        a->conf = conf;
        a->creds = &conf->creds;
        json_decref(e->stored);
        e->stored = json_incref(j);
        a->deleted = 0;
        e->seen = 1;
        pg_log(PG_LOG_INFO, "apps", "app %s loaded from the store (active=%d)", slug, conf->creds.active);
        if (was_active && !conf->creds.active)
            close_app_sessions(gw, a, "app disabled");
        else if (was_open && conf->creds.require_auth)
            close_unauthenticated(gw, a);
    }
    HASH_ITER(hh, as->entries, e, tmp) {
        if (!e->owned || e->seen || !e->stored)
            continue;
        /* deleted: keep the struct for whoever still points at it, refuse everything */
        json_decref(e->stored);
        e->stored = NULL;
        e->app->deleted = 1;
        e->owned->creds.active = 0;
        pg_log(PG_LOG_INFO, "apps", "app %s deleted from the store", e->app->id);
        close_app_sessions(gw, e->app, "app deleted");
    }
    json_decref(list);
}

static void store_check(struct pg_gw *gw)
{
    struct pg_apps *as = gw->apps_state;
    int64_t v;
    if (pg_apps_store_data_version(as->store, &v) != 0) {
        pg_log(PG_LOG_WARN, "apps", "apps store: %s", pg_apps_store_errmsg(as->store));
        return;
    }
    if (v == as->store_version && !as->store_dirty)
        return;
    as->store_version = v;
    as->store_dirty = 0;
    store_reload(gw);
    revocations_load(gw);
}

void pg_apps_store_changed(struct pg_gw *gw)
{
    /* this connection's own commits do not move its data_version */
    gw->apps_state->store_dirty = 1;
    store_check(gw);
}

struct pg_apps_store *pg_apps_db(struct pg_gw *gw)
{
    return gw->apps_state ? gw->apps_state->store : NULL;
}

int pg_apps_from_store(struct pg_gw *gw, const struct pg_app *a)
{
    struct app_entry *e = gw->apps_state ? entry_of(gw->apps_state, a) : NULL;
    return e && e->owned;
}

int pg_apps_init(struct pg_gw *gw)
{
    char err[512];
    if (!(gw->apps_state = calloc(1, sizeof *gw->apps_state)))
        return PG_ENOMEM;
    for (size_t i = 0; i < gw->cfg->napps; i++)
        if (!app_new(gw, gw->cfg->apps[i].creds.id, &gw->cfg->apps[i]))
            return PG_ENOMEM;
    if (!gw->cfg->apps_db[0])
        return 0;
    int rc = pg_apps_store_open(gw->cfg->apps_db, 0, &gw->apps_state->store, err, sizeof err);
    if (rc != 0) {
        pg_log(PG_LOG_ERROR, "apps", "%s", err);
        return rc;
    }
    pg_apps_store_set_broker_user(gw->apps_state->store, gw->cfg->broker_username);
    gw->apps_state->store_dirty = 1;
    store_check(gw);
    pg_log(PG_LOG_INFO, "apps", "apps store %s: %u apps", gw->cfg->apps_db, HASH_COUNT(gw->apps) - (unsigned)gw->cfg->napps);
    return 0;
}

void pg_apps_tick(struct pg_gw *gw)
{
    struct pg_apps *as = gw->apps_state;
    int64_t now = pg_mono_ms();
    if (as->store && now - as->last_store_check_ms >= STORE_CHECK_MS) {
        as->last_store_check_ms = now;
        store_check(gw);
    }
    if (now - as->last_revoked_purge_ms >= REVOKED_PURGE_MS) {
        as->last_revoked_purge_ms = now;
        revocations_purge(gw);
    }
}

void pg_apps_free(struct pg_gw *gw)
{
    struct pg_apps *as = gw->apps_state;
    struct app_entry *e, *tmp;
    struct pg_revocation *r, *rtmp;
    struct pg_unannounced *u, *utmp;
    if (!as)
        return;
    /* every app has its entry, in the same order */
    HASH_ITER(hh, as->entries, e, tmp) {
        struct pg_app *a = e->app;
        HASH_DEL(as->entries, e);
        HASH_DEL(gw->apps, a);
        pg_seq_table_free(&a->broadcast_seqs);
        conf_free(e->owned);
        json_decref(e->stored);
        free(a->id);
        free(a);
        free(e);
    }
    HASH_ITER(hh, as->revoked, r, rtmp) {
        HASH_DEL(as->revoked, r);
        free(r->key);
        free(r);
    }
    HASH_ITER(hh, as->unannounced, u, utmp) {
        HASH_DEL(as->unannounced, u);
        free(u->slug);
        free(u);
    }
    pg_apps_store_close(as->store);
    free(as);
    gw->apps_state = NULL;
}

/* ---- broker messages: revocations from other gateways, app-wide broadcasts ------------ */

void pg_apps_announce(struct pg_gw *gw, const char *slug)
{
    struct pg_apps_store *st = gw->apps_state->store;
    json_t *app = NULL;
    char *text = NULL, *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_APP_RECORD, slug, NULL, NULL);
    struct pg_unannounced *u;
    int rc = pg_apps_store_get(st, slug, &app), sent = 0;
    int64_t gone = 0;
    HASH_FIND_STR(gw->apps_state->unannounced, slug, u);
    /* a tombstone, not an empty message: a gateway away from the broker learns of it too; it carries the time the
       store recorded for the deletion */
    if (rc == PG_ENOTFOUND && pg_apps_store_deleted(st, slug, &gone) != 0)
        gone = u ? u->since_ms : pg_now_ms();
    if (rc == PG_ENOTFOUND)
        app = json_pack("{s:s, s:b, s:I}", "slug", slug, "deleted", 1, "updated_ms", (json_int_t)gone);
    if (app && (rc == 0 || rc == PG_ENOTFOUND))
        text = json_dumps(app, JSON_COMPACT);
    /* retained: gateways that start or reconnect later learn the latest state */
    if (topic && text)
        sent = pg_bridge_publish(gw->bridge, topic, text, strlen(text), NULL, 1, NULL, NULL) == 0;
    if (sent && u) {
        HASH_DEL(gw->apps_state->unannounced, u);
        free(u->slug);
        free(u);
    } else if (!sent && !u) {
        pg_log(PG_LOG_WARN, "apps", "app %s changed while the broker is unavailable: announced when it is back", slug);
        char *copy = strdup(slug);
        if (copy && (u = calloc(1, sizeof *u))) {
            u->slug = copy;
            u->since_ms = pg_now_ms();
            HASH_ADD_KEYPTR(hh, gw->apps_state->unannounced, u->slug, strlen(u->slug), u);
        } else {
            free(copy);
        }
    }
    if (text)
        OPENSSL_cleanse(text, strlen(text));
    free(text);
    free(topic);
    json_decref(app);
}

void pg_apps_on_state(struct pg_gw *gw, const char *slug, const void *payload, size_t len)
{
    struct pg_apps_store *st = gw->apps_state->store;
    int changed = 0, keep = 0, rc;
    char why[256];
    if (!st) {
        pg_log(PG_LOG_DEBUG, "apps", "replicated app %s ignored: no apps_db", slug);
        return;
    }
    json_t *app = len ? json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *s = json_string_value(json_object_get(app, "slug"));
    int deleted = len == 0 || json_is_true(json_object_get(app, "deleted"));
    if (len && (!s || strcmp(s, slug) != 0)) {
        rc = PG_EINVAL;
    } else if (deleted) {
        /* a tombstone deletes what is older than it and is recorded (deletion wins over older copies arriving
           later); an empty message (older gateways) deletes at once */
        json_t *when = json_object_get(app, "updated_ms");
        if (len && (!json_is_integer(when) || json_integer_value(when) <= 0)) {
            rc = PG_EINVAL;
        } else if (!len) {
            changed = (rc = pg_apps_store_delete(st, slug)) == 0;
            if (rc == PG_ENOTFOUND)
                rc = 0;
        } else if ((rc = pg_apps_store_forget(st, slug, json_integer_value(when), &changed)) == 0) {
            json_t *mine = NULL;
            /* a copy changed after the deletion (the slug was created again) stays */
            keep = pg_apps_store_get(st, slug, &mine) == 0;
            json_decref(mine);
        }
        if (keep) {
            /* the broker holds the tombstone now: replace it with our newer copy, for every gateway */
            pg_log(PG_LOG_INFO, "apps", "app %s kept: changed here after its deletion elsewhere", slug);
            json_decref(app);
            pg_apps_announce(gw, slug);
            return;
        }
    } else if (pg_config_broker_account(gw->cfg, slug, why, sizeof why) == 1) {
        /* this node's broker authenticates that name itself: the app would shadow the account */
        pg_log(PG_LOG_WARN, "apps", "replicated app %s not stored: a broker account here", slug);
        json_decref(app);
        return;
    } else {
        int64_t gone = 0;
        rc = pg_apps_store_put(st, app, &changed);
        if (rc == 0 && !changed && pg_apps_store_deleted(st, slug, &gone) == 0 &&
            gone >= json_integer_value(json_object_get(app, "updated_ms"))) {
            /*
             * A copy from before the app's deletion (a gateway that changed it while away from the broker
             * announces it on its return): it stays deleted, and since that copy replaced the retained
             * tombstone at the broker, this gateway puts the latest state back for gateways that come later.
             */
            pg_log(PG_LOG_INFO, "apps", "app %s stays deleted: a copy older than its deletion was ignored", slug);
            json_decref(app);
            pg_apps_announce(gw, slug);
            return;
        }
    }
    json_decref(app);
    if (rc)
        pg_log(PG_LOG_WARN, "apps", "replicated app %s not stored: %s", slug,
               rc == PG_EINVAL && !*pg_apps_store_errmsg(st) ? "malformed" : pg_apps_store_errmsg(st));
    else if (changed) {
        pg_log(PG_LOG_INFO, "apps", "app %s %s from another gateway", slug, deleted ? "deleted" : "replicated");
        pg_apps_store_changed(gw);
    }
}

void pg_apps_connected(struct pg_gw *gw)
{
    struct pg_unannounced *u, *utmp;
    const char *root = gw->cfg->topic_root;
    char apps[PG_TOPIC_FILTER_MAX], revoke[PG_TOPIC_FILTER_MAX], bcast[PG_TOPIC_FILTER_MAX];
    if (pg_topic_filter(apps, sizeof apps, root, PG_TOPIC_APP_RECORD) < 0 || pg_bridge_subscribe(gw->bridge, apps) != 0)
        pg_log(PG_LOG_ERROR, "apps", "cannot subscribe to replicated apps");
    /* a stale retained copy arriving now is older than the local row, so the store keeps the local change */
    HASH_ITER(hh, gw->apps_state->unannounced, u, utmp)
        pg_apps_announce(gw, u->slug);
    if (pg_topic_filter(revoke, sizeof revoke, root, PG_TOPIC_REVOKE) < 0 ||
        pg_topic_filter(bcast, sizeof bcast, root, PG_TOPIC_BROADCAST) < 0 ||
        pg_bridge_subscribe(gw->bridge, revoke) != 0 || pg_bridge_subscribe(gw->bridge, bcast) != 0)
        pg_log(PG_LOG_ERROR, "apps", "cannot subscribe to revocations and broadcasts");
}

void pg_apps_on_revoke(struct pg_gw *gw, const char *app, const void *payload, size_t len)
{
    struct pg_apps_store *st = gw->apps_state->store;
    json_t *j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    const char *kind = json_string_value(json_object_get(j, "kind"));
    const char *value = json_string_value(json_object_get(j, "value"));
    json_t *exp = json_object_get(j, "expires_ms");
    if (kind && value && json_is_integer(exp) && (!strcmp(kind, "client") || !strcmp(kind, "jti"))) {
        int oom;
        struct pg_revocation *r = revocation_find(gw, app, kind, value, &oom);
        if (r && r->expires_ms >= json_integer_value(exp)) {
            json_decref(j); /* known already (our own echo, or via the shared store): no write, no reload */
            return;
        }
        /* into this store too, so the broker plugin on this store's machine refuses it as well */
        if (st && pg_apps_store_revoke(st, app, kind, value, json_integer_value(exp)) != 0)
            pg_log(PG_LOG_WARN, "apps", "revocation for app %s not stored: %s", app, pg_apps_store_errmsg(st));
        revocation_apply(gw, app, kind, value, json_integer_value(exp));
    } else
        pg_log(PG_LOG_WARN, "apps", "ignored a malformed revocation for app %s", app);
    json_decref(j);
}
