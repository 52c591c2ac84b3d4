/*
 * HTTP transactions: the primitives every route handler uses.
 *
 * State owned: one struct pg_http per HTTP transaction (lws per-wsi user
 * data, inside struct pg_conn), and gw->requests, the requests parked until
 * an asynchronous answer, by serial. An answer is set once (status != 0)
 * and written by the transaction's WRITEABLE callbacks.
 *
 * Memory: struct pg_http shares struct pg_conn's union with a WebSocket's
 * struct pg_ws, and lws allocates that union for every connection, so the
 * request's path and the route's captures (up to PG_HTTP_PATH_MAX and
 * sizeof(struct pg_http_args) bytes) are allocated per request, from its
 * headers to its end (the answer written, or the connection closed), not
 * kept inline for every idle WebSocket.
 *
 * This module knows no route: pg_http_callback() runs the transaction
 * (limits, framing, body, answer) and calls the router it is given once the
 * request's headers are in (http/routes.c). Handlers include this header;
 * this module includes no handler.
 *
 * Who may call: route handlers (http/), the socket.io polling transport
 * (proto/sio.c: answers, parking, query), the protocols' upgrade checks
 * (query arguments), server.c (the callback). Loop thread only.
 */
#ifndef PG_HTTP_HTTP_H
#define PG_HTTP_HTTP_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "http/query.h"
#include <uthash.h>

#include "core/dueq.h"

struct pg_gw;
struct pg_app;
struct pg_proto;
struct pg_route;

struct pg_http;
/* Runs once the request body is complete (at once when there is none); answers h now or later. */
typedef void (*pg_http_body_fn)(struct pg_gw *gw, struct pg_http *h);
/* Routes a request whose headers are in: answers h, or sets h->on_body. */
typedef void (*pg_http_route_fn)(struct pg_gw *gw, struct pg_http *h);

enum pg_http_method { PG_GET = 1, PG_POST, PG_PUT, PG_PATCH, PG_DELETE, PG_OPTIONS };

#define PG_HTTP_PATH_MAX 512 /* bytes of a request path, its NUL included (longer: 414) */
#define PG_HTTP_ARGS_MAX 4   /* captures of one route's path */

/* The named captures of the route's path ({app}, {channel}, ...): NUL-terminated copies in buf. */
struct pg_http_args {
    size_t n;
    uint16_t name[PG_HTTP_ARGS_MAX], value[PG_HTTP_ARGS_MAX]; /* offsets into buf */
    char buf[PG_HTTP_PATH_MAX + 64];
};
/* The capture called name, or NULL when the route has none. Borrowed from args. */
const char *pg_http_args_get(const struct pg_http_args *args, const char *name);

struct pg_http {
    uint64_t serial;
    struct pg_gw *gw;
    struct lws *wsi;
    enum pg_http_method method;
    pg_http_body_fn on_body; /* set by the router when the answer waits for the body */
    /* owned, from the request's headers to its end (NULL outside a request; set whenever the router runs) */
    char *path;                   /* the request path, shorter than PG_HTTP_PATH_MAX */
    struct pg_http_args *args;    /* the matched route's captures, filled by the router */
    const struct pg_route *route; /* the router's: the route that matched, NULL before */
    struct pg_app *app; /* the route's app ({app} of the path, or the push token's), NULL until known */
    char *body;
    size_t body_len, body_cap;
    int body_too_big;
    int body_expected; /* Content-Length > 0 */
    int body_done;     /* the body (or its absence) was acted on in this transaction */
    /* response */
    int status;
    const char *ctype;
    char *resp;
    size_t resp_len;
    const char *location;
    const char *www_auth; /* WWW-Authenticate value of a 401 */
    const char *retry_after; /* Retry-After value of a 503 (static string) */
    char *allow_origin;   /* Access-Control-Allow-Origin of the answer (owned; socket.io polling) */
    char *preflight;      /* a CORS preflight answer: the Access-Control-Allow-Headers value (owned; may be "") */
    int waiting_ack;
    int phase; /* 0: headers next, 1: body next */
    int close_after; /* the answer carries Connection: close and the connection closes once it is written */
    int client_close; /* the request asked for the close (Connection: close, HTTP/1.0 without keep-alive) */
    int http10_keepalive; /* HTTP/1.0 with Connection: keep-alive: the answer says keep-alive back */
    /* http_body_timeout_ms after its headers the announced body must have arrived: in gw->body_waits until then */
    struct pg_due body_wait;
    UT_hash_handle hh; /* gw->requests by serial */
};

/* ---- the transaction ---------------------------------------------------------------- */

/* The lws HTTP callbacks of one transaction; route is called once per request, when its headers are in. */
int pg_http_callback(struct pg_gw *gw, pg_http_route_fn route, struct lws *wsi, enum lws_callback_reasons reason,
                     struct pg_http *h, void *in, size_t len);
/* From the loop's tick: answers 408 to requests whose body did not arrive within http_body_timeout_ms. */
void pg_http_tick(struct pg_gw *gw);
/*
 * What every request and WebSocket upgrade must pass before it is routed
 * (headers within max_header_bytes, query parameters within
 * max_query_bytes): 0, or the status to refuse with and its reason in *why.
 */
int pg_http_refusal(struct pg_gw *gw, struct lws *wsi, const char **why);
/* Answers a refused WebSocket upgrade: status with the JSON error body {"error":{"code","message"}}. */
void pg_http_refuse_upgrade(struct lws *wsi, unsigned int status, const char *message);
/*
 * The checks every WebSocket upgrade passes after its protocol's own (the confirm_upgrade op): the app's
 * allowed_origins (app may be NULL), pg_session_refusal, the address's admission. 0: accept; 1: refused (answered).
 */
int pg_http_upgrade_checks(struct pg_gw *gw, struct lws *wsi, struct pg_app *app);

/* ---- answers ------------------------------------------------------------------------ */

/* Answers: JSON body (o stolen) / {"error":{"code","message"}}. */
void pg_http_respond_json(struct pg_http *h, int status, json_t *o);
void pg_http_respond_error(struct pg_http *h, int status, const char *message);
/* 503 with Retry-After: the gateway is behind (why: pg_publish_refusal's reason). */
void pg_http_respond_overloaded(struct pg_http *h, const char *why);
/* Answers with body (copied) as ctype. */
void pg_http_respond(struct pg_http *h, int status, const char *ctype, const void *body, size_t len);

/* ---- parked requests ------------------------------------------------------------------ */

/* Park h until an asynchronous answer; completions find it by h->serial (NULL once the client left). */
void pg_http_wait(struct pg_gw *gw, struct pg_http *h);
struct pg_http *pg_http_find(struct pg_gw *gw, uint64_t serial);
/* Unpark h (it no longer waits for an acknowledgement). */
void pg_http_unregister(struct pg_gw *gw, struct pg_http *h);
/* The parked request serial, unparked to be answered now; NULL when its client left. */
struct pg_http *pg_http_resume(struct pg_gw *gw, uint64_t serial);
/*
 * Publish for h on topic and answer h once the broker acknowledged: 200 with
 * ok (stolen; NULL: {"ok":true}), 403 refused, 504 no acknowledgement in time,
 * 503 broker unavailable (or 503 with Retry-After when the gateway is behind).
 */
void pg_http_publish(struct pg_gw *gw, struct pg_http *h, const char *app, const char *topic, const void *payload,
                     size_t len, const char *const *props, json_t *ok);

/* ---- the request ---------------------------------------------------------------------- */

/*
 * Adds "X-Pushgate-Worker: <i>" at *p when this process is worker i of several (gateway/workers.c), nothing when
 * it is the only one. For every answer: HTTP here, the WebSocket handshake through server.c. 0, or nonzero when
 * the header does not fit.
 */
int pg_http_add_worker_header(struct pg_gw *gw, struct lws *wsi, unsigned char **p, unsigned char *end);

/* Header value into buf; its length, 0 when absent, -1 when longer than buf. */
int pg_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len);
/* The route's path capture called name ("app", "channel", "user", "slug"), or NULL. Borrowed from h. */
const char *pg_http_arg(const struct pg_http *h, const char *name);

#endif
