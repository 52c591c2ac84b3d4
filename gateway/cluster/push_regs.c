/*
 * Push registrations as every node keeps them, and push recipients over the
 * cluster (cluster/push_regs.h).
 *
 * The table is keyed "{app}\n{connectionId}" (neither may hold a newline:
 * both are single topic levels) and holds what the broker's retained
 * {root}/_ctl/{app}/reg/{connectionId} messages say, plus this node's own
 * acknowledged registrations, which the broker's copy may follow later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "cluster/push_regs.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_bridge.h"

#define SWEEP_INTERVAL_S 60
#define FILTER_MAX (PG_TOPIC_ROOT_MAX + 16) /* {root}/_ctl/+/reg/+ */

struct push_reg {
    char *key;      /* "{app}\n{connectionId}" (owned, the hash key) */
    char *user;     /* owned */
    int64_t exp_ms; /* wall clock */
    UT_hash_handle hh;
};

struct pg_push_regs {
    struct pg_gw *gw;
    struct push_reg *regs;
    lws_sorted_usec_list_t sul_sweep;
};

int pg_push_regs_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n <= PG_PUSH_ID_MAX && pg_topic_level_valid(id, n); /* one MQTT topic level the broker accepts */
}

/* ---- the registration table ------------------------------------------------------- */

static char *reg_key(const char *app, const char *conn)
{
    size_t n = strlen(app) + strlen(conn) + 2;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s\n%s", app, conn);
    return k;
}

static void reg_drop(struct pg_push_regs *t, struct push_reg *r)
{
    HASH_DEL(t->regs, r);
    free(r->key);
    free(r->user);
    free(r);
}

void pg_push_regs_set(struct pg_gw *gw, const char *app, const char *conn, const char *user, int64_t exp_ms)
{
    struct pg_push_regs *t = gw->push_regs;
    struct push_reg *r;
    char *k = NULL, *u = NULL;
    if (!t)
        return;
    k = reg_key(app, conn);
    u = strdup(user);
    if (!k || !u)
        goto fail;
    HASH_FIND_STR(t->regs, k, r);
    if (r) {
        free(k);
        free(r->user);
        r->user = u;
        r->exp_ms = exp_ms;
        return;
    }
    if (!(r = calloc(1, sizeof *r)))
        goto fail;
    r->key = k;
    r->user = u;
    r->exp_ms = exp_ms;
    HASH_ADD_KEYPTR(hh, t->regs, r->key, strlen(r->key), r);
    return;
fail:
    pg_log(PG_LOG_ERROR, "push", "out of memory: registration of app=%s dropped", app);
    free(k);
    free(u);
}

static void reg_del(struct pg_push_regs *t, const char *app, const char *conn)
{
    struct push_reg *r;
    char *k = reg_key(app, conn);
    if (!k)
        return;
    HASH_FIND_STR(t->regs, k, r);
    if (r)
        reg_drop(t, r);
    free(k);
}

const char *pg_push_regs_user(struct pg_gw *gw, const char *app, const char *conn)
{
    struct pg_push_regs *t = gw->push_regs;
    struct push_reg *r;
    char *k = t ? reg_key(app, conn) : NULL;
    if (!k)
        return NULL;
    HASH_FIND_STR(t->regs, k, r);
    free(k);
    if (r && r->exp_ms <= pg_now_ms()) {
        reg_drop(t, r);
        r = NULL;
    }
    return r ? r->user : NULL;
}

/* The broker drops expired retained messages without telling subscribers: forget them here too. */
static void sweep(lws_sorted_usec_list_t *sul)
{
    struct pg_push_regs *t = lws_container_of(sul, struct pg_push_regs, sul_sweep);
    int64_t now = pg_now_ms();
    struct push_reg *r, *tmp;
    HASH_ITER(hh, t->regs, r, tmp) {
        if (r->exp_ms <= now)
            reg_drop(t, r);
    }
    lws_sul_schedule(t->gw->ctx, 0, &t->sul_sweep, sweep, SWEEP_INTERVAL_S * LWS_US_PER_SEC);
}

int pg_push_regs_init(struct pg_gw *gw)
{
    char filter[FILTER_MAX];
    struct pg_push_regs *t = calloc(1, sizeof *t);
    if (!t)
        return PG_ENOMEM;
    t->gw = gw;
    gw->push_regs = t;
    int rc = pg_topic_filter(filter, sizeof filter, gw->cfg->topic_root, PG_TOPIC_REG);
    if (rc >= 0)
        rc = pg_bridge_subscribe(gw->bridge, filter);
    if (rc == 0)
        lws_sul_schedule(gw->ctx, 0, &t->sul_sweep, sweep, SWEEP_INTERVAL_S * LWS_US_PER_SEC);
    return rc;
}

void pg_push_regs_free(struct pg_gw *gw)
{
    struct pg_push_regs *t = gw->push_regs;
    struct push_reg *r, *tmp;
    if (!t)
        return;
    lws_sul_cancel(&t->sul_sweep);
    HASH_ITER(hh, t->regs, r, tmp) {
        reg_drop(t, r);
    }
    free(t);
    gw->push_regs = NULL;
}

void pg_push_regs_on_message(struct pg_gw *gw, const char *app, size_t app_len, const char *conn, const void *payload,
                             size_t len)
{
    char app_id[128];
    if (!gw->push_regs || !app_len || app_len >= sizeof app_id || !pg_push_regs_id_valid(conn))
        return;
    snprintf(app_id, sizeof app_id, "%.*s", (int)app_len, app);
    if (!len) { /* an operator (or a test) cleared the retained registration */
        reg_del(gw->push_regs, app_id, conn);
        return;
    }
    json_t *o = json_loadb(payload, len, 0, NULL);
    const char *user = json_string_value(json_object_get(o, "user"));
    json_t *exp = json_object_get(o, "exp");
    if (user && pg_push_regs_id_valid(user) && json_is_integer(exp) && json_integer_value(exp) > pg_now_ms())
        pg_push_regs_set(gw, app_id, conn, user, json_integer_value(exp));
    else
        reg_del(gw->push_regs, app_id, conn);
    json_decref(o);
}

/* ---- recipients ---------------------------------------------------------------------- */

static size_t live_members(const struct pg_channel *ch)
{
    size_t n = 0;
    const struct pg_member *m;
    DL_FOREACH(ch->members, m) n += m->live ? 1 : 0;
    return n;
}

json_t *pg_push_regs_local_users(struct pg_gw *gw)
{
    json_t *apps = json_object();
    size_t pl = strlen(PG_USER_CHANNEL_PREFIX);
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        json_t *users = NULL;
        struct pg_channel *ch, *ctmp;
        HASH_ITER(hh, a->channels, ch, ctmp) {
            size_t n = strncmp(ch->name, PG_USER_CHANNEL_PREFIX, pl) ? 0 : live_members(ch);
            if (n && (users || (users = json_object())))
                json_object_set_new(users, ch->name + pl, json_integer((json_int_t)n));
        }
        if (users)
            json_object_set_new(apps, a->id, users);
    }
    return apps;
}

uint64_t pg_push_regs_recipients(struct pg_gw *gw, struct pg_app *app, const char *user)
{
    uint64_t n = pg_cluster_peer_count(gw, PG_PUSH_REGS_SNAPSHOT_KEY, app->id, user);
    size_t cl = strlen(PG_USER_CHANNEL_PREFIX) + strlen(user) + 1;
    char *name = malloc(cl);
    struct pg_channel *ch = NULL;
    if (name) {
        snprintf(name, cl, "%s%s", PG_USER_CHANNEL_PREFIX, user);
        HASH_FIND_STR(app->channels, name, ch);
        free(name);
    }
    return n + (ch ? live_members(ch) : 0);
}
