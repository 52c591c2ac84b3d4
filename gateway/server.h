/*
 * The gateway process: one event loop (server.c) from the configuration to
 * the end of the drain, and what lws keeps per connection of it. Called
 * once per process, by workers.c (in the process itself with workers = 1,
 * in each worker otherwise); the fuzz harnesses' in-memory gateway
 * (tests/fuzz/fuzz_gw.c) borrows its channel broker.
 */
#ifndef PG_SERVER_H
#define PG_SERVER_H

#include "core/session.h"
#include "http/http.h"

struct pg_config;
struct pg_channel_broker;

/*
 * Per-wsi user data of the main lws protocol: an HTTP transaction or a
 * WebSocket. lws allocates and zeroes it per connection and frees it after
 * LWS_CALLBACK_CLOSED / CLOSED_HTTP.
 */
struct pg_conn {
    int is_ws; /* set at ESTABLISHED: u.ws, from then on */
    union {
        struct pg_http http;
        struct pg_ws ws;
    } u;
};

/* The channel index's broker (gw->channel_broker, core/channels.h): the bridge in gw->bridge. */
extern const struct pg_channel_broker pg_server_channel_broker;

/* Run the gateway with cfg (borrowed, loaded and checked) until a signal's drain ends: the process exit code. */
int pg_server_run(struct pg_config *cfg);

#endif
