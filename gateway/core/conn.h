/*
 * Per-wsi user data of the main lws protocol (server.c): an HTTP transaction
 * or a WebSocket. lws allocates and zeroes it per connection and frees it
 * after LWS_CALLBACK_CLOSED / CLOSED_HTTP.
 */
#ifndef PG_CORE_CONN_H
#define PG_CORE_CONN_H

#include "core/session.h"
#include "http/http.h"

struct pg_conn {
    int is_ws; /* set at ESTABLISHED: u.ws, from then on */
    union {
        struct pg_http http;
        struct pg_ws ws;
    } u;
};

#endif
