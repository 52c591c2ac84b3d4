/*
 * The plugin's record of who is connected: app sessions (struct client_state, by connection and by client
 * id), connections deferred to Mosquitto (by connection, their client ids counted in plugin.held), and the
 * marks of a session takeover in progress.
 *
 * Tenants cannot touch each other's sessions: an app client's CONNECT is refused when its client id is held by a
 * connected client of another app or by a deferred client (gateway, operator), and app clients never get a client
 * id of the gateways' form (PG_GATEWAY_CLIENT_ID_PREFIX), so a device can never disconnect a gateway. A takeover
 * within one app stays as MQTT defines it. Deferred clients are tracked from BASIC_AUTH (they may still be refused
 * by the password file: the DISCONNECT that follows removes them) to DISCONNECT.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

void state_remove(struct plugin *pl, struct client_state *st)
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
int state_add(struct plugin *pl, struct mosquitto *client, const char *app_id, const char *client_id,
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
    plugin_hash_oom = 0;
    HASH_ADD_PTR(pl->clients, client, st);
    if (plugin_hash_oom)
        goto out;
    if (st->client_id) {
        HASH_FIND(hh_id, pl->by_id, st->client_id, strlen(st->client_id), old);
        if (old) {
            /* The broker is about to take over old's session; a kick by id must not reach this one for it. */
            HASH_DELETE(hh_id, pl->by_id, old);
            old->in_by_id = 0;
        }
        plugin_hash_oom = 0;
        HASH_ADD_KEYPTR(hh_id, pl->by_id, st->client_id, strlen(st->client_id), st);
        st->in_by_id = !plugin_hash_oom;
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

void schedule_kick(struct plugin *pl, struct client_state *st, const char *why)
{
    if (st->kick_pending)
        return;
    st->kick_pending = 1;
    st->kick_why = why;
    pl->kicks_pending++;
}

void states_free(struct plugin *pl)
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
void takeover_forget(struct plugin *pl, struct mosquitto *newer, struct mosquitto *older)
{
    struct client_state *st = NULL;

    if (!older)
        return;
    HASH_FIND_PTR(pl->clients, &older, st);
    if (st && st->replaced_by == newer)
        st->replaced_by = NULL;
}

void deferred_remove(struct plugin *pl, struct deferred_conn *d)
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

void deferred_free(struct plugin *pl)
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
int defer(struct plugin *pl, struct mosquitto *client, const char *cid)
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
        plugin_hash_oom = 0;
        HASH_ADD_KEYPTR(hh, pl->held, h->id, len, h);
        if (plugin_hash_oom) {
            free(h->id);
            free(h);
            goto nomem;
        }
    }
    plugin_hash_oom = 0;
    HASH_ADD_PTR(pl->deferred, client, d);
    if (plugin_hash_oom) {
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
const char *client_id_unavailable(const struct plugin *pl, const char *app_id, const struct mosquitto *client,
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
