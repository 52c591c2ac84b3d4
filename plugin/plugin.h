/*
 * Private to the broker plugin (pushgate_auth.so): its state and what its files call of each other. Nothing outside
 * plugin/ includes this.
 *
 * One struct plugin, created by mosquitto_plugin_init() (plugin.c) and handed to every callback as userdata, holds
 * everything; the broker calls the plugin from its one thread, so nothing here is locked. The files, by section:
 *
 *   plugin.c           entry points, the callback table, DISCONNECT, TICK (kicks), RELOAD
 *   plugin_conf.c      pushgate.conf as the plugin reads it: apps, shared options, the broker's accounts
 *   clients.c          app sessions (client state), session takeovers, connections deferred to Mosquitto
 *   store_reader.c     the apps store read on ticks: store apps, revocations, re-checking live sessions
 *   login.c            BASIC_AUTH: which logins are the plugin's, and admitting them
 *   acl.c              ACL_CHECK: an app session's publish, subscribe and read checks
 *   message_filter.c   MESSAGE: removing the gateway's metadata properties from device publishes
 *   device_presence.c  the retained device records and device_joined / device_left events
 *   load.c             gateways that say they are behind: device publishes refused meanwhile
 *   non_app.c          clients that are not apps, from the broker's own configuration; the tick watchdog
 *   broker_conf.c      reading Mosquitto's configuration file (broker_conf.h)
 */
#ifndef PG_PLUGIN_H
#define PG_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* uthash must never exit() inside the broker: a failed insert leaves the element out and sets plugin_hash_oom. */
extern int plugin_hash_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (plugin_hash_oom = 1)
#include <uthash.h>

#include "apps_store.h"
#include "pushgate_auth.h"

#define LOG_PREFIX "pushgate_auth: "

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
    /* the options shared with the gateway (pg_options.h), as plugin_conf.c read them */
    char *topic_root;
    char *device_channel;  /* "": no device join/leave events */
    char *apps_db;         /* resolved path of the apps store; NULL: none */
    char *passwd_file;     /* resolved path of broker_password_file; NULL: none */
    char *broker_username; /* "": none */
    long long max_channel_bytes, regex_match_limit, regex_depth_limit, jwt_leeway_ms, max_token_bytes, max_rules;
    int device_channel_line;
    struct pg_auth_limits lim; /* for the auth library, from the limits above */
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

#define GW_MARK_RING 64 /* a gateway's marks whose device publish count load.c remembers */

struct gw_load { /* a gateway node's last load message (load.c) */
    char *node;                  /* key */
    int64_t until_ms, last_ms;   /* monotonic: behind until then (0: not), its last load message */
    uint64_t mark, confirmed;    /* its last mark, the last of its own marks it processed */
    uint64_t window;             /* its max_unconfirmed_publishes (0: off) */
    uint64_t ring[GW_MARK_RING]; /* ring[k % GW_MARK_RING]: device publishes admitted when mark k passed by */
    UT_hash_handle hh;
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
    struct gw_load *loads; /* gateways' load messages (load.c) */
    uint64_t device_admitted; /* device publishes allowed so far (load.c counts them against every gateway) */
};

static inline const char *str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/* ---- plugin_conf.c ---- */

/* Reads the whole file into a new conf; on failure *out is untouched and err says why (file:line). */
int conf_load(const char *path, struct plugin_conf **out, char *err, size_t errlen);
void conf_free(struct plugin_conf *conf);
void app_free(struct app_entry *app);
/* Adds name to the set *ud (a struct account **); a pg_passwd_cb. */
int account_add(void *ud, const char *name);
void accounts_free(struct account **set);
struct app_entry *find_in(struct app_entry *apps, const char *id);
/* An app of the config file, else of the apps store. */
const struct app_entry *find_app(const struct plugin *pl, const char *id);
/* The app a login username names, or NULL when the username is not the plugin's (see plugin_conf.c). */
const struct app_entry *app_of_user(const struct plugin *pl, const char *username);

/* ---- clients.c ---- */

/* Keeps state for an authenticated app session; takes ownership of tok (also on failure). MOSQ_ERR_*. */
int state_add(struct plugin *pl, struct mosquitto *client, const char *app_id, const char *client_id, pg_token *tok);
void state_remove(struct plugin *pl, struct client_state *st);
void states_free(struct plugin *pl);
/* Marks st for a kick at the next tick; why is a static string, for the log. */
void schedule_kick(struct plugin *pl, struct client_state *st, const char *why);
/* See clients.c: undoes a takeover mark when the newer login never took the session over. */
void takeover_forget(struct plugin *pl, struct mosquitto *newer, struct mosquitto *older);
/* A login left to Mosquitto: holds its client id until DISCONNECT. MOSQ_ERR_PLUGIN_DEFER or MOSQ_ERR_NOMEM. */
int defer(struct plugin *pl, struct mosquitto *client, const char *cid);
void deferred_remove(struct plugin *pl, struct deferred_conn *d);
void deferred_free(struct plugin *pl);
/* Why an app client may not use client id cid (a static string), NULL if it may. */
const char *client_id_unavailable(const struct plugin *pl, const char *app_id, const struct mosquitto *client,
                                  const char *cid);

/* ---- store_reader.c ---- */

/* 1: revoked at now_ms, 0: not, PG_ENOMEM. kind is "client" or "jti". */
int is_revoked(const struct plugin *pl, const char *app, const char *kind, const char *value, int64_t now_ms);
/* Follows apps_db: opens the store when it appears, re-reads what changed (now: without waiting for it to be due). */
void store_poll(struct plugin *pl, int now);
void store_close(struct plugin *pl);

/* ---- device_presence.c ---- */

/* joined: the device's retained record, else its removal; event: also device_joined / device_left. */
void presence_report(const struct plugin *pl, const struct client_state *st, int joined, int event);

/* ---- non_app.c ---- */

void tick_check(struct plugin *pl);
int non_app_mode_parse(const char *value, enum non_app_mode *out);
void non_app_resolve(struct plugin *pl);

/* ---- callbacks (login.c, acl.c, message_filter.c) ---- */

int on_basic_auth(int event, void *event_data, void *userdata);
int on_acl_check(int event, void *event_data, void *userdata);
int on_message(int event, void *event_data, void *userdata);
/* ---- load.c ---- */
/* A PUBLISH from a client that is not an app: when topic is a gateway's load topic, note what it says. */
void load_on_message(struct plugin *pl, const char *topic, const void *payload, size_t len);
/* Why a device publish is refused now (static; *node: the gateway, borrowed), or NULL; admit: count it if not. */
const char *load_refusal(struct plugin *pl, const char **node, int admit);
/* A client that is not an app disconnected: a gateway (PG_GATEWAY_CLIENT_ID_PREFIX{node}) is forgotten. */
void load_on_disconnect(struct plugin *pl, const char *client_id);
void loads_free(struct plugin *pl);

#endif
