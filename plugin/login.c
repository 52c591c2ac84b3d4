/*
 * MOSQ_EVT_BASIC_AUTH: a username that names an app (and is no broker account) is the plugin's. Its login is
 * refused for an inactive app, a revoked or unavailable client id, a missing or invalid token, or a token
 * whose `client` claim is not the client id; an admitted session gets state (clients.c) and, when the device
 * comes online, its presence (device_presence.c). Every other login is deferred (clients.c, non_app.c).
 */
#include <string.h>

#include "plugin.h"

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

int on_basic_auth(int event, void *event_data, void *userdata)
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
