#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "app_id.h"
#include "config.h"
#include "log.h"
#include "pg_options.h"

/* The option types of pg_options.h, whose parsers every row uses. */
enum opt_type { T_STR = PG_OPT_STR, T_INT = PG_OPT_INT, T_SIZE = PG_OPT_SIZE };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    const char *def;
    long long min, max; /* T_INT and T_SIZE bounds */
    const char *help;
};

#define O(f) offsetof(struct pg_config, f)
#define BIG (1LL << 40)
/*
 * A row of an option the broker plugin reads too: name, type, default and bounds come from pg_options.h, so the two
 * cannot disagree; the offset and the help text are the gateway's. (ROW_ takes the row's expanded fields.)
 */
#define SHARED(row, off, help) ROW_(row, off, help)
#define ROW_(name, type, def, min, max, off, help) {name, (enum opt_type)(type), off, def, min, max, help}

/* The one table of options. Keep help text short: it is printed by --help and in the README. */
static const struct opt opts[] = {
    {"listen_host", T_STR, O(listen_host), "127.0.0.1", 0, 0, "address for HTTP and WebSocket (0.0.0.0 = all)"},
    {"listen_port", T_INT, O(listen_port), "8080", 1, 65535, "port for HTTP and WebSocket"},
    {"workers", T_INT, O(workers), "0", 0, PG_WORKERS_MAX,
     "gateway processes sharing listen_port, each its own node (0: one per CPU; 1: a single process)"},
    {"listen_backlog", T_INT, O(listen_backlog), "4096", 16, 1048576,
     "connections the kernel holds for a worker until it accepts them (capped by net.core.somaxconn; workers > 1)"},
    {"broker_host", T_STR, O(broker_host), "127.0.0.1", 0, 0, "MQTT broker address"},
    {"broker_port", T_INT, O(broker_port), "1883", 1, 65535, "MQTT broker port"},
    SHARED(PG_SHARED_OPT_BROKER_USERNAME, O(broker_username), "gateway's broker account (empty: anonymous)"),
    {"broker_password", T_STR, O(broker_password), "", 0, 0, "gateway's broker password"},
    SHARED(PG_SHARED_OPT_BROKER_PASSWORD_FILE, O(broker_password_file),
           "Mosquitto's password_file: its users are never app ids (relative: to the config file)"),
    {"broker_keepalive_s", T_INT, O(broker_keepalive_s), "30", 5, 3600, "MQTT keepalive interval (seconds)"},
    {"broker_reconnect_min_ms", T_INT, O(broker_reconnect_min_ms), "100", 10, 60000, "first reconnect delay"},
    {"broker_reconnect_max_ms", T_INT, O(broker_reconnect_max_ms), "5000", 10, 600000, "largest reconnect delay"},
    {"broker_connect_timeout_ms", T_INT, O(broker_connect_timeout_ms), "5000", 100, 600000,
     "a broker connect without CONNACK by then is dropped and retried"},
    SHARED(PG_SHARED_OPT_TOPIC_ROOT, O(topic_root), "first MQTT topic level of every pushgate topic"),
    {"node_id", T_STR, O(node_id), "", 0, 0, "this process's id among gateways (empty: random)"},
    {"node_liveness_ms", T_INT, O(node_liveness_ms), "30000", 1000, 3600000,
     "a gateway silent this long is dead to its peers (snapshot refreshed every third)"},
    {"max_frame_bytes", T_SIZE, O(max_frame_bytes), "64k", 128, BIG, "largest WebSocket message (close 1009)"},
    {"max_message_bytes", T_SIZE, O(max_message_bytes), "64k", 1, BIG, "largest published message payload (413)"},
    {"pusher_activity_timeout_s", T_INT, O(pusher_activity_timeout_s), "120", 1, 3600,
     "Pusher: idle seconds before the server pings"},
    {"pusher_pong_timeout_s", T_INT, O(pusher_pong_timeout_s), "30", 1, 600,
     "Pusher: seconds to answer the ping before close 4201"},
    {"max_event_data_bytes", T_SIZE, O(max_event_data_bytes), "10k", 1, BIG, "Pusher event data size limit (413)"},
    {"max_body_bytes", T_SIZE, O(max_body_bytes), "64k", 1, BIG, "largest REST request body (413)"},
    {"max_header_bytes", T_SIZE, O(max_header_bytes), "16k", 4096, 1048576,
     "largest request headers, JWT and cookies included (431)"},
    {"max_query_bytes", T_INT, O(max_query_bytes), "1024", 64, PG_QUERY_ARG_MAX, "longest query parameter name=value (400)"},
    {"http_body_timeout_ms", T_INT, O(http_body_timeout_ms), "10000", 100, 600000,
     "time to receive a whole request body (408)"},
    {"http_keepalive_s", T_INT, O(http_keepalive_s), "5", 1, 3600,
     "idle keep-alive HTTP connection closed after (sent as Keep-Alive: timeout)"},
    SHARED(PG_SHARED_OPT_MAX_CHANNEL_BYTES, O(max_channel_bytes), "longest channel name in bytes"),
    {"max_subscriptions", T_INT, O(max_subscriptions), "100", 1, 1000000, "subscriptions per session"},
    {"max_queue_bytes", T_SIZE, O(max_queue_bytes), "1m", 1024, BIG, "out-queue bytes per session (slow reader closed)"},
    {"max_queue_messages", T_INT, O(max_queue_messages), "4000", 1, 10000000,
     "out-queue messages per session (past it, messages are lost for the session, or it is closed)"},
    /* under max_queue_messages: one reader a moment behind the others waits instead of losing (core/session.c) */
    {"behind_queue_messages", T_INT, O(behind_queue_messages), "1000", 1, 10000000,
     "out-queue messages that count as full when judging whether the gateway is behind its readers (broker input "
     "pauses at 3/4, publishes are refused at 1/2 on average); capped at max_queue_messages"},
    {"slow_consumer_ms", T_INT, O(slow_consumer_ms), "10000", 100, 600000,
     "a session whose socket accepts no bytes this long while it has output is closed (1013)"},
    /* with client_unsent_bytes a reader that is behind fills its socket between two of its reads (core/session.c) */
    {"slow_consumer_grace_ms", T_INT, O(slow_consumer_grace_ms), "1000", 0, 600000,
     "a socket full for less than this still counts as reading: a message that finds its session's out-queue full is "
     "lost with a gap signal, not the session closed (1013), unless such losses go on for slow_consumer_ms"},
    {"max_pending_bytes", T_SIZE, O(max_pending_bytes), "256m", 1024, BIG,
     "bytes queued for all sessions together past which publishes are refused (503, Retry-After)"},
    /* the stated bound of lag under load (README, Bounded lag); it compares this host's clock with other gateways'
       (ts): hosts whose clocks are not synced to well under it set 0 */
    {"max_inbound_lag_ms", T_INT, O(max_inbound_lag_ms), "2000", 0, 600000,
     "broker messages arriving this late means the gateway is behind: publishes refused, cluster-wide (503; 0: off; needs synced clocks)"},
    /* bounds the lag of every node: what may wait in a node's broker queue is at most this many publishes */
    {"max_unconfirmed_publishes", T_INT, O(max_unconfirmed_publishes), "100", 0, 10000000,
     "publishes admitted but not yet processed by every gateway node (their marks, README Bounded lag) past which publishes are refused (503; 0: off)"},
    {"gap_tracking_max", T_INT, O(gap_tracking_max), "10000", 16, 10000000,
     "sequence entries kept per table for gap detection (channels published, origins per channel)"},
    {"max_sessions", T_INT, O(max_sessions), "10000", 1, 10000000, "concurrent WebSocket sessions per process"},
    /* lws 4.1 sizes a table by the open-files limit and walks it on every connection's open and close (server.c) */
    {"max_open_files", T_INT, O(max_open_files), "0", 0, 100000000,
     "open-files limit this process sets itself, capped by the hard limit (0: max_sessions + 4096)"},
    {"max_sessions_per_address", T_INT, O(max_sessions_per_address), "0", 0, 10000000,
     "concurrent sessions per client IP address (429; 0: no limit)"},
    {"max_new_sessions_per_address", T_INT, O(max_new_sessions_per_address), "0", 0, 10000000,
     "new sessions per second per client IP address (429; 0: no limit)"},
    {"ws_partial_frame_timeout_ms", T_INT, O(ws_partial_frame_timeout_ms), "10000", 100, 600000,
     "a begun WebSocket message must be whole within this (close 1008)"},
    /* lws 4.1 allocates this per WebSocket for its whole life and reads at most this much per wakeup, at most its
       16 KB service buffer (server.c) */
    {"ws_rx_buffer_bytes", T_SIZE, O(ws_rx_buffer_bytes), "512", 128, 16384,
     "WebSocket receive buffer per connection: bytes read per wakeup, held while open (larger messages arrive in pieces)"},
    {"ws_ping_interval_s", T_INT, O(ws_ping_interval_s), "30", 1, 3600,
     "WebSocket: seconds from the last PONG (or the opening) to the next PING"},
    {"ws_pong_timeout_s", T_INT, O(ws_pong_timeout_s), "30", 1, 3600,
     "WebSocket: seconds to answer a PING before the connection is dropped"},
    {"ws_nagle", T_STR, O(ws_nagle), "busy", 0, 0,
     "off (every frame leaves at once, TCP_NODELAY), on (the kernel gathers small frames while earlier ones are "
     "unacknowledged: Nagle) or busy (on while the event loop is busier than ws_nagle_busy_percent)"},
    {"ws_nagle_busy_percent", T_INT, O(ws_nagle_busy_percent), "95", 1, 99,
     "ws_nagle = busy: share of its time the loop spends working (averaged over about 0.4 s) from which frames are gathered; under half of it they leave at once again"},
    /* 0: the kernel's send buffer autotuning may hold up to net.ipv4.tcp_wmem's maximum for a slow reader, out of
       the load checks' sight, until every such socket is full at once (bench/README.md, "Slow readers") */
    {"client_unsent_bytes", T_SIZE, O(client_unsent_bytes), "16k", 0, 64 << 20,
     "unsent bytes the kernel may hold for a client connection (TCP_NOTSENT_LOWAT); more waits in the session's "
     "out-queue, where slow-consumer handling and bounded lag see it (0: the kernel's default, no limit)"},
    {"publish_timeout_ms", T_INT, O(publish_timeout_ms), "5000", 100, 600000, "broker acknowledgement wait (504)"},
    {"local_first", T_INT, O(local_first), "0", 0, 1,
     "1: a publish reaches this process's own subscribers at once, not after the broker's round trip (an error "
     "answer may then follow a delivery here)"},
    {"shutdown_grace_ms", T_INT, O(shutdown_grace_ms), "2000", 0, 600000, "SIGTERM: time to finish before exit"},
    {"event_loop", T_STR, O(event_loop), "ev", 0, 0,
     "ev (libev, epoll: cost per ready socket), uv (libuv, epoll, but two epoll_ctl per change of a socket's events) or poll (lws's own poll(): cost per open socket)"},
    SHARED(PG_SHARED_OPT_REGEX_MATCH_LIMIT, O(regex_match_limit), "PCRE2 match limit per rule"),
    SHARED(PG_SHARED_OPT_REGEX_DEPTH_LIMIT, O(regex_depth_limit), "PCRE2 depth limit per rule"),
    SHARED(PG_SHARED_OPT_JWT_LEEWAY_MS, O(jwt_leeway_ms), "clock skew allowed on exp and nbf"),
    SHARED(PG_SHARED_OPT_MAX_TOKEN_BYTES, O(max_token_bytes), "longest accepted JWT"),
    SHARED(PG_SHARED_OPT_MAX_RULES, O(max_rules), "patterns in one permissions claim"),
    {"webhook_batch_ms", T_INT, O(webhook_batch_ms), "250", 0, 60000, "how long webhook events gather into one POST"},
    {"webhook_timeout_ms", T_INT, O(webhook_timeout_ms), "5000", 100, 600000, "time limit of one webhook request"},
    {"webhook_max_attempts", T_INT, O(webhook_max_attempts), "6", 1, 100,
     "tries of a webhook batch before dropping it"},
    {"webhook_max_queue", T_INT, O(webhook_max_queue), "10000", 1, 10000000,
     "queued webhook events per app (then oldest dropped)"},
    SHARED(PG_SHARED_OPT_APPS_DB, O(apps_db),
           "SQLite apps store for the admin API (relative: to the config file; empty: none)"),
    {"admin_user", T_STR, O(admin_user), "admin", 0, 0, "admin API user (HTTP Basic)"},
    {"admin_password", T_STR, O(admin_password), "", 0, 0, "admin API password (empty: admin API off)"},
    {"admin_allowed_origins", T_STR, O(admin_allowed_origins), "", 0, 0,
     "origins besides the gateway's own that may send admin writes"},
    {"revocation_ttl_s", T_INT, O(revocation_ttl_s), "2592000", 60, 315360000,
     "how long a revocation lasts unless the call says"},
    SHARED(PG_SHARED_OPT_DEVICE_CHANNEL, O(device_channel), "channel of MQTT device join/leave events"),
    {"default_app", T_STR, O(default_app), "", 0, 0, "app of socket.io namespace / (empty: the first app)"},
    {"push_registration_ttl_s", T_INT, O(push_registration_ttl_s), "86400", 1, 31536000,
     "lifetime of a registered push connectionId"},
    {"sio_ping_interval_ms", T_INT, O(sio_ping_interval_ms), "25000", 100, 600000, "Engine.IO ping interval"},
    {"sio_ping_timeout_ms", T_INT, O(sio_ping_timeout_ms), "20000", 100, 600000,
     "Engine.IO: wait for pong before closing"},
    {"sio_max_payload_bytes", T_SIZE, O(sio_max_payload_bytes), "100k", 1024, BIG,
     "largest Engine.IO polling body or packet"},
    {"sio_handshake_timeout_ms", T_INT, O(sio_handshake_timeout_ms), "5000", 100, 600000,
     "Engine.IO: a polling session's first request, and its longest time without a transport before CONNECT"},
    {"sio_connect_timeout_ms", T_INT, O(sio_connect_timeout_ms), "45000", 100, 600000,
     "socket.io: a session's first CONNECT after its Engine.IO handshake"},
    {"log_level", T_STR, O(log_level), "info", 0, 0, "debug, info, warn or error"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

static void type_desc(const struct opt *o, char *buf, size_t len)
{
    switch (o->type) {
    case T_STR: snprintf(buf, len, "string"); break;
    case T_INT: snprintf(buf, len, "integer %lld..%lld", o->min, o->max); break;
    case T_SIZE: snprintf(buf, len, "size (e.g. 64k, 1m)"); break;
    }
}

/* Sets one option; on error writes "expected ..., got ..." into err. */
static int set_opt(struct pg_config *cfg, const struct opt *o, const char *value, char *err, size_t errlen)
{
    char *base = (char *)cfg + o->off;
    switch (o->type) {
    case T_STR: {
        char *copy = strdup(value);
        if (!copy)
            return PG_ENOMEM;
        free(*(char **)base);
        *(char **)base = copy;
        return 0;
    }
    case T_INT:
    case T_SIZE: {
        long long v;
        int rc = pg_opt_number((enum pg_opt_type)o->type, o->min, o->max, value, &v, err, errlen);
        if (rc == 0 && o->type == T_INT)
            *(long long *)base = v;
        else if (rc == 0)
            *(uint64_t *)base = (uint64_t)v;
        return rc;
    }
    }
    return PG_EINVAL;
}

struct file_ctx {
    struct pg_config *cfg;
    const char *path;
    char base_dir[4096];
    char *err;
    size_t errlen;
};

static void free_origins(struct pg_app_conf *app)
{
    for (size_t i = 0; app->allowed_origins && app->allowed_origins[i]; i++)
        free(app->allowed_origins[i]);
    free(app->allowed_origins);
    app->allowed_origins = NULL;
}

/* "https://a.example, http://127.0.0.1:8080": exact scheme://host[:port] values, compared as sent by browsers */
static int set_origins(struct pg_app_conf *app, const char *value, struct file_ctx *fc, int line)
{
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == ',';
    free_origins(app);
    if (!(app->allowed_origins = calloc(n + 1, sizeof *app->allowed_origins)))
        return PG_ENOMEM;
    size_t k = 0;
    for (const char *p = value; *p;) {
        p += strspn(p, " \t,");
        size_t l = strcspn(p, ",");
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (!l)
            break;
        if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) {
            snprintf(fc->err, fc->errlen, "%s:%d: allowed_origins: expected http(s)://host[:port] values", fc->path,
                     line);
            return PG_EINVAL;
        }
        if (!(app->allowed_origins[k++] = strndup(p, l)))
            return PG_ENOMEM;
        p += l;
    }
    return 0;
}

static int file_cb(void *ud, const char *stype, const char *sname, const char *key, const char *value, int line)
{
    struct file_ctx *fc = ud;
    struct pg_config *cfg = fc->cfg;
    char why[256];
    if (!key) { /* section header */
        if (strcmp(stype, "app") != 0) {
            snprintf(fc->err, fc->errlen, "%s:%d: unknown section type \"%s\" (expected [app ID])", fc->path, line,
                     stype);
            return PG_EINVAL;
        }
        if (!pg_app_id_valid(sname)) {
            snprintf(fc->err, fc->errlen, "%s:%d: app id \"%.64s\": " PG_APP_ID_RULE, fc->path, line, sname);
            return PG_EINVAL;
        }
        for (size_t i = 0; i < cfg->napps; i++) {
            if (!strcmp(cfg->apps[i].creds.id, sname)) {
                snprintf(fc->err, fc->errlen, "%s:%d: app \"%s\" declared twice (first at line %d)", fc->path, line,
                         sname, cfg->apps[i].line);
                return PG_EINVAL;
            }
        }
        struct pg_app_conf *apps = realloc(cfg->apps, (cfg->napps + 1) * sizeof *apps);
        if (!apps)
            return PG_ENOMEM;
        cfg->apps = apps;
        memset(&apps[cfg->napps], 0, sizeof apps[0]);
        apps[cfg->napps].line = line;
        apps[cfg->napps].creds.active = 1;
        apps[cfg->napps].creds.jwt_alg = PG_ALG_HS256;
        if (!(apps[cfg->napps].creds.id = strdup(sname)))
            return PG_ENOMEM;
        cfg->napps++;
        return 0;
    }
    if (*stype) { /* inside [app ID] */
        struct pg_app_conf *app = &cfg->apps[cfg->napps - 1];
        int rc = pg_app_creds_set(&app->creds, key, value, fc->base_dir, why, sizeof why);
        if (rc == PG_ENOTFOUND && !strcmp(key, "allowed_origins"))
            return set_origins(app, value, fc, line);
        if (rc == PG_ENOTFOUND && !strcmp(key, "push_token")) {
            if (strlen(value) < 16) {
                snprintf(fc->err, fc->errlen, "%s:%d: push_token: expected at least 16 characters", fc->path, line);
                return PG_EINVAL;
            }
            free(app->push_token);
            return (app->push_token = strdup(value)) ? 0 : PG_ENOMEM;
        }
        if (rc == PG_ENOTFOUND && !strcmp(key, "webhook_url")) {
            if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
                snprintf(fc->err, fc->errlen, "%s:%d: webhook_url: expected an http:// or https:// URL", fc->path, line);
                return PG_EINVAL;
            }
            free(app->webhook_url);
            return (app->webhook_url = strdup(value)) ? 0 : PG_ENOMEM;
        }
        if (rc == PG_ENOTFOUND) {
            snprintf(fc->err, fc->errlen, "%s:%d: %s: unknown app option", fc->path, line, key);
            return PG_EINVAL;
        }
        if (rc != 0) {
            snprintf(fc->err, fc->errlen, "%s:%d: %s: %s", fc->path, line, key, why);
            return rc;
        }
        return 0;
    }
    const struct opt *o = find_opt(key);
    if (!o) {
        snprintf(fc->err, fc->errlen, "%s:%d: %s: unknown option (see pushgate --help)", fc->path, line, key);
        return PG_EINVAL;
    }
    int rc = set_opt(cfg, o, value, why, sizeof why);
    if (rc == PG_EINVAL)
        snprintf(fc->err, fc->errlen, "%s:%d: %s: %s", fc->path, line, key, why);
    if (rc == 0 && (o->off == O(apps_db) || o->off == O(broker_password_file))) {
        /* The plugin reads the same file and resolves the path the same way (pg_opt_path). */
        char **slot = (char **)((char *)cfg + o->off), *path;
        if (pg_opt_path(fc->base_dir, value, &path) != 0)
            return PG_ENOMEM;
        free(*slot);
        *slot = path;
    }
    return rc;
}

static void env_name(const char *opt, char *buf, size_t len)
{
    size_t i = (size_t)snprintf(buf, len, "PUSHGATE_");
    for (; *opt && i + 1 < len; opt++)
        buf[i++] = (char)toupper((unsigned char)*opt);
    buf[i] = '\0';
}

int pg_config_load(struct pg_config *cfg, const char *path, int argc, char **argv, char *err, size_t errlen)
{
    char why[256];
    int rc;
    memset(cfg, 0, sizeof *cfg);
    cfg->worker = -1;
    for (size_t i = 0; i < NOPTS; i++)
        if ((rc = set_opt(cfg, &opts[i], opts[i].def, why, sizeof why)) != 0) {
            snprintf(err, errlen, "built-in default of %s: %s", opts[i].name, why);
            return rc;
        }
    if (path) {
        struct file_ctx fc = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", path);
        snprintf(fc.base_dir, sizeof fc.base_dir, "%s", dirname(tmp));
        if (!(cfg->config_path = strdup(path)))
            return PG_ENOMEM;
        if ((rc = pg_conf_read(path, file_cb, &fc, err, errlen)) != 0)
            return rc;
        for (size_t i = 0; i < cfg->napps; i++) {
            if (pg_app_creds_check(&cfg->apps[i].creds, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s:%d: [app %s]: %s", path, cfg->apps[i].line, cfg->apps[i].creds.id, why);
                return PG_EINVAL;
            }
        }
    }
    for (size_t i = 0; i < NOPTS; i++) {
        char name[128];
        env_name(opts[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && (rc = set_opt(cfg, &opts[i], v, why, sizeof why)) != 0) {
            snprintf(err, errlen, "environment %s: %s", name, why);
            return rc;
        }
    }
    /* --option value / --option=value, with '-' or '_' between words */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char name[128];
        const char *val = NULL;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\" (see --help)", a);
            return PG_EINVAL;
        }
        snprintf(name, sizeof name, "%s", a + 2);
        char *eq = strchr(name, '=');
        if (eq) {
            *eq = '\0';
            val = a + 2 + (eq - name) + 1;
        }
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        const struct opt *o = find_opt(name);
        if (!o) {
            snprintf(err, errlen, "unknown option --%.64s (see --help)", a + 2);
            return PG_EINVAL;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option %s needs a value", a);
                return PG_EINVAL;
            }
            val = argv[++i];
        }
        if ((rc = set_opt(cfg, o, val, why, sizeof why)) != 0) {
            snprintf(err, errlen, "command line --%s: %s", o->name, why);
            return rc;
        }
    }
    enum pg_log_level lvl;
    if (pg_log_parse_level(cfg->log_level, &lvl) != 0) {
        snprintf(err, errlen, "log_level: expected debug, info, warn or error, got \"%.32s\"", cfg->log_level);
        return PG_EINVAL;
    }
    if (strcmp(cfg->event_loop, "uv") != 0 && strcmp(cfg->event_loop, "ev") != 0 && strcmp(cfg->event_loop, "poll") != 0) {
        snprintf(err, errlen, "event_loop: expected uv, ev or poll, got \"%.32s\"", cfg->event_loop);
        return PG_EINVAL;
    }
    static const char *const nagle_modes[] = {[PG_WS_NAGLE_OFF] = "off", [PG_WS_NAGLE_BUSY] = "busy",
                                              [PG_WS_NAGLE_ON] = "on"};
    cfg->ws_nagle_mode = -1;
    for (int m = 0; m < (int)(sizeof nagle_modes / sizeof nagle_modes[0]); m++)
        if (!strcmp(cfg->ws_nagle, nagle_modes[m]))
            cfg->ws_nagle_mode = m;
    if (cfg->ws_nagle_mode < 0) {
        snprintf(err, errlen, "ws_nagle: expected off, busy or on, got \"%.32s\"", cfg->ws_nagle);
        return PG_EINVAL;
    }
    /* the rules the broker plugin applies to the same options (pg_options.h) */
    if (pg_opt_check_topic_root(cfg->topic_root, why, sizeof why) != 0) {
        snprintf(err, errlen, "topic_root: %s", why);
        return PG_EINVAL;
    }
    if (pg_opt_check_device_channel(cfg->device_channel, cfg->max_channel_bytes, why, sizeof why) != 0) {
        snprintf(err, errlen, "device_channel: %s", why);
        return PG_EINVAL;
    }
    for (size_t i = 0; i < cfg->napps; i++) {
        /* the broker plugin owns app-id usernames: the gateway's own login would be taken for a device */
        if (*cfg->broker_username && !strcmp(cfg->apps[i].creds.id, cfg->broker_username)) {
            snprintf(err, errlen, "%s:%d: [app %s]: app id equals broker_username", cfg->config_path ? cfg->config_path : "",
                     cfg->apps[i].line, cfg->apps[i].creds.id);
            return PG_EINVAL;
        }
    }
    if (cfg->broker_password_file[0]) {
        /* read here so that an unreadable file is a config error, not a surprise at the first admin request; an
           empty name is never a user */
        if ((rc = pg_config_broker_account(cfg, "", why, sizeof why)) < 0) {
            snprintf(err, errlen, "broker_password_file: %s", why);
            return rc;
        }
        for (size_t i = 0; i < cfg->napps; i++) {
            if ((rc = pg_config_broker_account(cfg, cfg->apps[i].creds.id, why, sizeof why)) < 0) {
                snprintf(err, errlen, "broker_password_file: %s", why);
                return rc;
            }
            if (rc == 1) {
                snprintf(err, errlen, "%s:%d: [app %s]: app id is a user of broker_password_file",
                         cfg->config_path ? cfg->config_path : "", cfg->apps[i].line, cfg->apps[i].creds.id);
                return PG_EINVAL;
            }
        }
    }
    if (cfg->broker_reconnect_max_ms < cfg->broker_reconnect_min_ms) {
        snprintf(err, errlen, "broker_reconnect_max_ms must be >= broker_reconnect_min_ms");
        return PG_EINVAL;
    }
    if (cfg->admin_password[0] && !cfg->apps_db[0]) {
        snprintf(err, errlen, "admin_password is set but apps_db is not: the admin API keeps its apps in apps_db");
        return PG_EINVAL;
    }
    if (cfg->admin_password[0] && strlen(cfg->admin_password) < 12) {
        snprintf(err, errlen, "admin_password: use at least 12 characters");
        return PG_EINVAL;
    }
    if (strchr(cfg->admin_user, ':')) {
        snprintf(err, errlen, "admin_user: HTTP Basic user names cannot contain ':'");
        return PG_EINVAL;
    }
    if (cfg->default_app[0]) {
        size_t i = 0;
        while (i < cfg->napps && strcmp(cfg->apps[i].creds.id, cfg->default_app) != 0)
            i++;
        if (i == cfg->napps && !cfg->apps_db[0]) {
            snprintf(err, errlen, "default_app \"%s\" is not an [app] of the config file", cfg->default_app);
            return PG_EINVAL;
        }
    }
    return 0;
}

struct account_match {
    const char *id;
    int found;
};

static int account_match_cb(void *ud, const char *username)
{
    struct account_match *m = ud;
    if (!strcmp(username, m->id))
        m->found = 1;
    return m->found; /* stop at the first match */
}

int pg_config_broker_account(const struct pg_config *cfg, const char *id, char *err, size_t errlen)
{
    struct account_match m = {.id = id};
    if (*cfg->broker_username && !strcmp(id, cfg->broker_username))
        return 1;
    if (!cfg->broker_password_file[0])
        return 0;
    int rc = pg_passwd_users(cfg->broker_password_file, account_match_cb, &m, err, errlen);
    return rc < 0 ? rc : m.found;
}

void pg_app_conf_clear(struct pg_app_conf *app)
{
    pg_app_creds_clear(&app->creds);
    free(app->webhook_url);
    free(app->push_token);
    free_origins(app);
    app->webhook_url = app->push_token = NULL;
}

void pg_config_free(struct pg_config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == T_STR)
            free(*(char **)((char *)cfg + opts[i].off));
    for (size_t i = 0; i < cfg->napps; i++)
        pg_app_conf_clear(&cfg->apps[i]);
    free(cfg->apps);
    free(cfg->config_path);
    memset(cfg, 0, sizeof *cfg);
}

void pg_config_usage(FILE *out, const char *argv0)
{
    char env[128], type[64];
    fprintf(out,
            "Usage: %s [--config FILE] [--OPTION VALUE ...]\n"
            "\n"
            "pushgate: real-time push gateway (WebSocket, REST and MQTT through a Mosquitto broker).\n"
            "\n"
            "  --config FILE   read options and [app ID] sections from FILE\n"
            "  --check         validate the configuration and exit\n"
            "  --help          this text\n"
            "  --version       print the version\n"
            "\n"
            "Options (file: name = value; environment: PUSHGATE_NAME; command line: --name value):\n",
            argv0);
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(opts[i].name, env, sizeof env);
        type_desc(&opts[i], type, sizeof type);
        fprintf(out, "  --%-26s %s\n      %s; default \"%s\"; env %s\n", opts[i].name, opts[i].help, type,
                opts[i].def, env);
    }
    fprintf(out, "\nApp sections ([app ID]): key, secret, jwt_alg (HS256|RS256), public_key_file, require_auth, "
                 "active,\n  webhook_url, allowed_origins.\n");
}

void pg_config_markdown(FILE *out)
{
    char env[128], type[64];
    fprintf(out, "| option | type | default | env | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTS; i++) {
        env_name(opts[i].name, env, sizeof env);
        type_desc(&opts[i], type, sizeof type);
        fprintf(out, "| `%s` | %s | `%s` | `%s` | %s |\n", opts[i].name, type, opts[i].def, env, opts[i].help);
    }
}

void pg_config_auth_limits(const struct pg_config *cfg, struct pg_auth_limits *lim)
{
    *lim = pg_auth_limits_default;
    lim->regex_match_limit = (uint32_t)cfg->regex_match_limit;
    lim->regex_depth_limit = (uint32_t)cfg->regex_depth_limit;
    lim->leeway_ms = cfg->jwt_leeway_ms;
    lim->max_token_bytes = (size_t)cfg->max_token_bytes;
    lim->max_rules = (size_t)cfg->max_rules;
}
