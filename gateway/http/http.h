/*
 * HTTP transactions: request state, answers, headers, query arguments, and
 * requests parked until an asynchronous answer.
 */
#ifndef PG_HTTP_HTTP_H
#define PG_HTTP_HTTP_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <uthash.h>

struct pg_gw;
struct pg_app;
struct pg_proto;

struct pg_http;
/* Runs once the request body is complete (at once when there is none); answers h now or later. */
typedef void (*pg_http_body_fn)(struct pg_gw *gw, struct pg_http *h);

enum pg_http_method { PG_GET = 1, PG_POST, PG_PUT, PG_PATCH, PG_DELETE, PG_OPTIONS };

struct pg_http {
    uint64_t serial;
    struct pg_gw *gw;
    struct lws *wsi;
    int method_post;
    enum pg_http_method method;
    pg_http_body_fn on_body; /* set by a route that needs the body */
    char path[512];
    struct pg_app *app;
    char *channel;
    int pusher_api; /* 1: /apps/{id}/events|batch_events */
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
    lws_sorted_usec_list_t sul_body; /* http_body_timeout_ms: the announced body must have arrived by then */
    UT_hash_handle hh; /* gw->requests by serial */
};

/* http.c */
int pg_http_callback(struct pg_gw *gw, struct lws *wsi, enum lws_callback_reasons reason, struct pg_http *h,
                     void *in, size_t len);
int pg_http_confirm_upgrade(struct pg_gw *gw, struct lws *wsi);
/* Answers a refused WebSocket upgrade: status with the JSON error body {"error":{"code","message"}}. */
void pg_http_refuse_upgrade(struct lws *wsi, unsigned int status, const char *message);
/*
 * The checks every WebSocket upgrade passes after its protocol's own (the confirm_upgrade op): the app's
 * allowed_origins (app may be NULL), pg_session_refusal, the address's admission. 0: accept; 1: refused (answered).
 */
int pg_http_upgrade_checks(struct pg_gw *gw, struct lws *wsi, struct pg_app *app);
/* Why no new session may open now (shutting down, broker unavailable, max_sessions reached), or NULL. */
const char *pg_session_refusal(const struct pg_gw *gw);

/* Answers: JSON body (o stolen) / {"error":{"code","message"}}. */
void pg_http_respond_json(struct pg_http *h, int status, json_t *o);
void pg_http_respond_error(struct pg_http *h, int status, const char *message);
/* 503 with Retry-After: the gateway is behind (why: pg_publish_refusal's reason). */
void pg_http_respond_overloaded(struct pg_http *h, const char *why);
/* Answers with body (copied) as ctype. */
void pg_http_respond(struct pg_http *h, int status, const char *ctype, const void *body, size_t len);
/* Header value into buf; its length, 0 when absent, -1 when longer than buf. */
int pg_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len);
/* Park h until an asynchronous answer; completions find it by h->serial (NULL once the client left). */
void pg_http_wait(struct pg_gw *gw, struct pg_http *h);
struct pg_http *pg_http_find(struct pg_gw *gw, uint64_t serial);
void pg_http_unregister(struct pg_gw *gw, struct pg_http *h);
/*
 * Publish for h on topic and answer h once the broker acknowledged: 200 with
 * ok (stolen; NULL: {"ok":true}), 403 refused, 504 no acknowledgement in time,
 * 503 broker unavailable.
 */
void pg_http_publish(struct pg_gw *gw, struct pg_http *h, const char *app, const char *topic, const void *payload,
                     size_t len, const char *const *props, json_t *ok);
/* HTTP Basic credentials of the request: 0 and user/pass filled, or -1 (absent or malformed). */
int pg_http_basic_auth(struct lws *wsi, char *user, size_t ulen, char *pass, size_t plen);
/*
 * The admin API's check: 1 when the request carries the configured admin
 * credentials; otherwise h is answered (401 with WWW-Authenticate, or 404 when
 * the admin API is off) and 0 is returned.
 */
int pg_http_admin_ok(struct pg_gw *gw, struct pg_http *h);
/* A query argument by exact name (URL-decoded) into buf: its length, -1 when absent, -2 when longer than buf. */
int pg_http_query_arg(struct lws *wsi, const char *name, char *buf, size_t len);
/* "/v1/{app}" -> native (app set), "/app/{key}" -> Pusher (app may be NULL: refused after the upgrade). */
int pg_ws_path(struct pg_gw *gw, const char *path, const struct pg_proto **proto, struct pg_app **app);

#endif
