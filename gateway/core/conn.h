/*
 * Per-wsi user data of the main lws protocol: an HTTP transaction or a WebSocket session.
 */
#ifndef PG_CORE_CONN_H
#define PG_CORE_CONN_H


#include "core/session.h"
#include "http/http.h"

struct pg_conn {
    int is_ws;
    int is_sio;             /* a socket.io WebSocket: u.ws is unused, sio is the session it carries */
    struct pg_session *sio; /* owned by sio.c; NULL once that session is gone (the socket then closes) */
    union {
        struct pg_http http;
        struct pg_session ws;
    } u;
};

#endif
