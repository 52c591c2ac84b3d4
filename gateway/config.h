/*
 * Gateway configuration: one option table drives the file parser, the
 * PUSHGATE_* environment overrides, the --option command line, --help and the
 * README's reference (tests/unit/test_config.c checks the README against it).
 */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pushgate_auth.h"

/* The largest max_query_bytes: query parameters are read into buffers of this size plus one. */
#define PG_QUERY_ARG_MAX 4096
/* The most gateway processes one pushgate runs (workers; gateway/workers.c). */
#define PG_WORKERS_MAX 256

struct pg_handoff;

struct pg_app_conf {
    struct pg_app_creds creds;
    char *webhook_url; /* Pusher-style webhooks for this app; NULL: none */
    char **allowed_origins; /* NULL-terminated; NULL: any Origin may open WebSockets */
    char *push_token; /* X-AUTH-TOKEN of the per-user push API (notification-socket.io); NULL: API off */
    int line; /* where the section started, for messages */
};

/* ws_nagle (core/ws.c says what each does) */
enum pg_ws_nagle { PG_WS_NAGLE_OFF, PG_WS_NAGLE_BUSY, PG_WS_NAGLE_ON };

struct pg_config {
    char *config_path;
    /* network */
    char *listen_host;
    long long listen_port;
    long long workers; /* 0: one per online CPU; 1: this process alone (gateway/workers.c) */
    long long listen_backlog; /* a worker's accept queue (gateway/listen.c); lws' own listener uses SOMAXCONN */
    /*
     * Not an option: this process's worker number (0..workers-1), set by gateway/workers.c in the worker before
     * it runs the server; -1 when the gateway is one process (workers = 1). HTTP answers and /metrics name it.
     */
    int worker;
    /* Not an option: in a worker, the hand-off channels between workers (gateway/handoff.h; borrowed), else NULL. */
    struct pg_handoff *handoff;
    /* broker */
    char *broker_host;
    long long broker_port;
    char *broker_username;
    char *broker_password;
    char *broker_password_file;
    long long broker_keepalive_s;
    long long broker_reconnect_min_ms;
    long long broker_reconnect_max_ms;
    long long broker_connect_timeout_ms;
    char *topic_root;
    char *node_id;
    long long node_liveness_ms;
    /* limits */
    uint64_t max_frame_bytes;
    uint64_t max_message_bytes;
    uint64_t max_body_bytes;
    uint64_t max_header_bytes;
    long long max_query_bytes;
    long long http_body_timeout_ms;
    long long http_keepalive_s;
    uint64_t max_event_data_bytes;
    long long pusher_activity_timeout_s;
    long long pusher_pong_timeout_s;
    long long max_channel_bytes;
    long long max_subscriptions;
    uint64_t max_queue_bytes;
    long long max_queue_messages;
    long long behind_queue_messages; /* the load rules' "full" out-queue (pg_behind_messages) */
    long long slow_consumer_ms;   /* socket choked with output pending this long: close 1013 */
    long long slow_consumer_grace_ms; /* socket choked for less than this still counts as reading */
    uint64_t max_pending_bytes;   /* all out-queues together: past it, publishes get 503 */
    long long max_inbound_lag_ms; /* broker messages this late: publishes get 503; 0: off */
    long long max_unconfirmed_publishes; /* admitted, not yet processed by every node: publishes get 503; 0: off */
    long long gap_tracking_max;   /* entries per sequence table (seq.c) */
    long long max_sessions;
    long long max_open_files;               /* 0: max_sessions + PG_OPEN_FILES_RESERVE */
    long long max_sessions_per_address;     /* 0: no limit */
    long long max_new_sessions_per_address; /* per second; 0: no limit */
    long long ws_partial_frame_timeout_ms;
    uint64_t ws_rx_buffer_bytes;  /* lws's per-WebSocket receive buffer and read size (server.c) */
    long long ws_ping_interval_s; /* lws validity: from the opening or last PONG to a PING */
    long long ws_pong_timeout_s;  /* then seconds for the PONG before the connection is dropped */
    char *ws_nagle;               /* "off", "busy" or "on": when WebSocket sockets leave TCP_NODELAY (core/ws.c) */
    int ws_nagle_mode;            /* ws_nagle as an enum pg_ws_nagle, set by the check */
    long long ws_nagle_busy_percent; /* "busy": the loop's averaged busy share from which the kernel gathers */
    uint64_t client_unsent_bytes; /* TCP_NOTSENT_LOWAT of client connections, set on the listener (listen.c) */
    long long publish_timeout_ms;
    long long local_first; /* 1: own publishes fan out here at once, the broker's copy is dropped (core/publish.c) */
    long long shutdown_grace_ms;
    char *event_loop; /* "uv" (libuv's epoll loop, lws as a foreign loop) or "poll" (lws_service) */
    /* auth */
    long long regex_match_limit;
    long long regex_depth_limit;
    long long jwt_leeway_ms;
    uint64_t max_token_bytes;
    long long max_rules;
    /* webhooks */
    long long webhook_batch_ms;
    long long webhook_timeout_ms;
    long long webhook_max_attempts;
    long long webhook_max_queue;
    /* apps store and admin API */
    char *apps_db;
    char *admin_user;
    char *admin_password;
    char *admin_allowed_origins;
    long long revocation_ttl_s;
    char *device_channel;
    /* socket.io (notification-socket.io) */
    char *default_app;
    long long push_registration_ttl_s;
    long long sio_ping_interval_ms;
    long long sio_ping_timeout_ms;
    uint64_t sio_max_payload_bytes;
    long long sio_handshake_timeout_ms;
    long long sio_connect_timeout_ms;
    /* logging */
    char *log_level;

    struct pg_app_conf *apps;
    size_t napps;
};

/*
 * Build the configuration from defaults, then the file (if path), then
 * PUSHGATE_* environment variables, then argv options. Errors (with file:line
 * and option name) go into err. Returns 0 or a PG_E* code.
 */
int pg_config_load(struct pg_config *cfg, const char *path, int argc, char **argv, char *err, size_t errlen);
void pg_config_free(struct pg_config *cfg);
/* Release what one app's conf owns (the struct itself stays the caller's). */
void pg_app_conf_clear(struct pg_app_conf *app);
/* --help text: every option with type, default, env var and help. */
void pg_config_usage(FILE *out, const char *argv0);
/* Markdown table of every option (README reference). */
void pg_config_markdown(FILE *out);
/*
 * 1 if id is a username the broker authenticates itself (broker_username, a user of broker_password_file): such
 * an id can never be an app. 0 if not; PG_EIO (reason in err) when the password file cannot be read.
 */
int pg_config_broker_account(const struct pg_config *cfg, const char *id, char *err, size_t errlen);
/* Limits for the auth library derived from the config. */
void pg_config_auth_limits(const struct pg_config *cfg, struct pg_auth_limits *lim);

#endif
