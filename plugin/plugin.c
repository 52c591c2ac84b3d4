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
 * The plugin's sections live in plugin/ (see plugin.h); this file holds the entry points, the table of
 * callbacks and the broker events that concern every section: DISCONNECT, TICK and RELOAD.
 *
 * Options (mosquitto.conf): plugin_opt_config /path/to/pushgate.conf; plugin_opt_non_app_acl and
 * plugin_opt_non_app_login: auto (default), defer or allow (see non_app_resolve()).
 *
 * Mosquitto 2.0.11 facts the plugin relies on (read from its sources):
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
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define PLUGIN_EXPORT __attribute__((visibility("default")))
/* Kicks are done from the tick in batches so one tick never walks an unbounded list while holding ids. */
#define KICKS_PER_TICK 64

int plugin_hash_oom;

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
    if (!st) {
        load_on_disconnect(pl, mosquitto_client_id(ed->client)); /* a gateway gone holds no device back */
        return MOSQ_ERR_SUCCESS;
    }
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
    loads_free(pl);
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
