/*
 * Clients that are not apps (the gateway, operators, anonymous clients): what Mosquitto would give them without
 * the plugin, from plugin_opt_non_app_acl / plugin_opt_non_app_login or, for `auto`, from the broker's own
 * configuration file (broker_conf.c), read at load and on SIGHUP; the broker's password files also name the
 * accounts no app may shadow. Also the watchdog that logs a broker that never ticks.
 */
#include <stdio.h>

#include "broker_conf.h"
#include "plugin.h"

/*
 * Mosquitto ticks ten times a second when it ticks at all; no tick this long after loading means it never will
 * (per_listener_settings true in 2.0), which is logged once, from the first check after that.
 */
#define TICK_SILENCE_WARN_MS 5000
#define BROKER_CONF_PATH_MAX 4096

#define TICK_WARNING                                                                                                   \
    LOG_PREFIX "the broker sends this plugin no tick (per_listener_settings true, in Mosquitto 2.0): expired "         \
               "tokens and revoked or removed apps are refused at their next check but their clients stay "            \
               "connected, apps_db is read only at start-up and on SIGHUP, and devices that connect after a SIGHUP "   \
               "are refused; set per_listener_settings false"

/* From the first checks after TICK_SILENCE_WARN_MS: a broker that never ticks is told in its log, once. */
void tick_check(struct plugin *pl)
{
    if (pl->ticked || pl->tick_warned || pg_mono_ms() - pl->loaded_mono_ms < TICK_SILENCE_WARN_MS)
        return;
    pl->tick_warned = 1;
    mosquitto_log_printf(MOSQ_LOG_WARNING, TICK_WARNING);
}

int non_app_mode_parse(const char *value, enum non_app_mode *out)
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
void non_app_resolve(struct plugin *pl)
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
