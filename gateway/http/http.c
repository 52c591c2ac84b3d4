/*
 * HTTP transactions (http/http.h): request state, answers, headers, the
 * query string, bodies, parked requests and publishes answered once the
 * broker acknowledged them. Routing is the router's (http/routes.c), which
 * pg_http_callback() is given. Every error answer is JSON:
 * {"error":{"code":N,"message":"..."}}.
 *
 * A publish on behalf of a request is answered only when the broker has
 * acknowledged it (QoS 1 PUBACK): 200 then, 503 if the broker is
 * unreachable, 504 if it did not answer within publish_timeout_ms. The
 * request waits in gw->requests, keyed by a serial, so an acknowledgement
 * arriving after the client went away finds nothing instead of a freed
 * request.
 *
 * No byte of a connection is ever read as a request unless the one before
 * it had an unambiguous length and was read whole: a request with bad
 * framing (Content-Length, Transfer-Encoding), oversized headers or query
 * parameters, a body that does not arrive in time, or an answer decided
 * before its body arrived, is answered with Connection: close and the
 * connection closed.
 *
 * Every answer after which the connection closes says so (Connection:
 * close): a client that pools connections (Node's http agent, browsers)
 * never sends its next request on a socket that is about to close.
 * close_after is that one decision; it starts as what the request asked
 * (request_wants_close(), a superset of what lws itself closes after).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/admission.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/pending.h"
#include "core/publish.h"
#include "core/session.h"
#include "http/http.h"
#include "log.h"

/* lws sizes every connection's user data (struct pg_conn, server.h) by the larger of the two: keep it the WebSocket */
_Static_assert(sizeof(struct pg_http) <= sizeof(struct pg_ws),
               "struct pg_http must not be larger than struct pg_ws: allocate per request instead");

/* The request is over (answered, or its connection gone): what it alone needed goes. */
static void request_end(struct pg_http *h)
{
    free(h->path);
    free(h->args);
    h->path = NULL;
    h->args = NULL;
}

/*
 * The answer is written, or will never be (the connection went): a drain no longer waits for it. An answer is
 * counted in gw->answers_unwritten while h->status is set, from respond() to here.
 */
static void answer_gone(struct pg_http *h)
{
    if (h->status && h->gw)
        h->gw->answers_unwritten--;
    h->status = 0;
}

static void h_reset(struct pg_http *h)
{
    answer_gone(h);
    pg_due_stop(&h->body_wait);
    request_end(h);
    free(h->body);
    free(h->resp);
    free(h->allow_origin);
    free(h->preflight);
    h->body = h->resp = h->allow_origin = h->preflight = NULL;
    h->body_len = h->body_cap = h->resp_len = 0;
    h->body_too_big = h->waiting_ack = h->status = h->phase = h->body_done = 0;
    h->body_expected = h->close_after = h->client_close = h->http10_keepalive = 0;
    h->ctype = h->location = h->www_auth = h->retry_after = NULL;
    h->app = NULL;
    h->route = NULL;
    h->on_body = NULL;
    h->method = 0;
}

void pg_http_wait(struct pg_gw *gw, struct pg_http *h)
{
    h->serial = ++gw->next_serial;
    HASH_ADD(hh, gw->requests, serial, sizeof h->serial, h);
    h->waiting_ack = 1;
}

struct pg_http *pg_http_find(struct pg_gw *gw, uint64_t serial)
{
    struct pg_http *h;
    HASH_FIND(hh, gw->requests, &serial, sizeof serial, h);
    return h;
}

void pg_http_unregister(struct pg_gw *gw, struct pg_http *h)
{
    if (h->serial) {
        struct pg_http *found;
        HASH_FIND(hh, gw->requests, &h->serial, sizeof h->serial, found);
        if (found == h)
            HASH_DEL(gw->requests, h);
        h->serial = 0;
    }
    h->waiting_ack = 0;
}

struct pg_http *pg_http_resume(struct pg_gw *gw, uint64_t serial)
{
    struct pg_http *h = pg_http_find(gw, serial);
    if (h)
        pg_http_unregister(gw, h);
    return h;
}

static void respond(struct pg_http *h, int status, const char *ctype, const void *body, size_t len)
{
    /* a publish leaves gw->requests at its PUBACK, a WRITEABLE before its answer goes: the drain counts both */
    if (!h->status && h->gw)
        h->gw->answers_unwritten++;
    h->status = status;
    h->ctype = ctype;
    free(h->resp);
    h->resp = malloc(LWS_PRE + len + 1);
    h->resp_len = h->resp ? len : 0;
    if (h->resp && len)
        memcpy(h->resp + LWS_PRE, body, len);
    lws_callback_on_writable(h->wsi);
}

void pg_http_respond(struct pg_http *h, int status, const char *ctype, const void *body, size_t len)
{
    respond(h, status, ctype, body, len);
}

void pg_http_respond_json(struct pg_http *h, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    respond(h, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    json_decref(o);
}

/* The body of every error answer, REST or refused upgrade. */
static json_t *error_body(int status, const char *message)
{
    json_t *o = json_pack("{s:{s:i, s:s}}", "error", "code", status, "message", message);
    /* a message quoting request bytes that are not UTF-8 (a slug in a path) is no JSON string: still an error body */
    return o ? o : json_pack("{s:{s:i, s:s}}", "error", "code", status, "message", "invalid request (not UTF-8)");
}

void pg_http_respond_error(struct pg_http *h, int status, const char *message)
{
    pg_http_respond_json(h, status, error_body(status, message));
}

void pg_http_respond_overloaded(struct pg_http *h, const char *why)
{
    h->retry_after = PG_RETRY_AFTER_S;
    pg_http_respond_error(h, 503, why);
}

static int answered(struct pg_http *h);

/*
 * Writes the answer: on HTTP/1 a body that fits beside the headers goes with them, in one write (one segment for
 * the client to read); a larger one follows them in the same WRITEABLE (a second WRITEABLE round would be one more
 * loop pass, and on the libuv loop two more epoll_ctl pairs, per answer). On an HTTP/2 stream, or when lws kept
 * part of the headers, the body waits for the next WRITEABLE.
 */
static int h_write(struct pg_http *h)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (!h->status)
        return 0;
    if (h->phase == 0) {
        if (lws_add_http_common_headers(h->wsi, (unsigned int)h->status, h->ctype, (lws_filepos_t)h->resp_len, &p,
                                        end))
            return -1;
        if (h->location && lws_add_http_header_by_token(h->wsi, WSI_TOKEN_HTTP_LOCATION,
                                                        (const unsigned char *)h->location,
                                                        (int)strlen(h->location), &p, end))
            return -1;
        if (h->www_auth && lws_add_http_header_by_token(h->wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                                        (const unsigned char *)h->www_auth,
                                                        (int)strlen(h->www_auth), &p, end))
            return -1;
        if (h->retry_after && lws_add_http_header_by_token(h->wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
                                                           (const unsigned char *)h->retry_after,
                                                           (int)strlen(h->retry_after), &p, end))
            return -1;
        if (h->allow_origin &&
            (lws_add_http_header_by_name(h->wsi, (const unsigned char *)"access-control-allow-origin:",
                                         (const unsigned char *)h->allow_origin, (int)strlen(h->allow_origin), &p,
                                         end) ||
             lws_add_http_header_by_name(h->wsi, (const unsigned char *)"access-control-allow-credentials:",
                                         (const unsigned char *)"true", 4, &p, end)))
            return -1;
        if (h->preflight &&
            (lws_add_http_header_by_name(h->wsi, (const unsigned char *)"access-control-allow-methods:",
                                         (const unsigned char *)"GET, POST", 9, &p, end) ||
             (h->preflight[0] &&
              lws_add_http_header_by_name(h->wsi, (const unsigned char *)"access-control-allow-headers:",
                                          (const unsigned char *)h->preflight, (int)strlen(h->preflight), &p, end)) ||
             lws_add_http_header_by_name(h->wsi, (const unsigned char *)"access-control-max-age:",
                                         (const unsigned char *)"600", 3, &p, end)))
            return -1;
        if (lws_add_http_header_by_name(h->wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &p, end))
            return -1;
        if (pg_http_add_worker_header(h->gw, h->wsi, &p, end))
            return -1;
        /* HTTP/2 (an h2c upgrade lws answers) forbids connection headers: its streams end, not the connection */
        int h1 = lws_get_network_wsi(h->wsi) == h->wsi;
        if (h1 && h->close_after &&
            lws_add_http_header_by_token(h->wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
            return -1;
        if (h1 && !h->close_after && h->http10_keepalive &&
            lws_add_http_header_by_token(h->wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"keep-alive", 10, &p,
                                         end))
            return -1;
        if (h1 && !h->close_after) {
            /* how long an idle connection stays: a pooling client retires the socket before the gateway closes it */
            char ka[32];
            int n = snprintf(ka, sizeof ka, "timeout=%lld", h->gw->cfg->http_keepalive_s);
            if (lws_add_http_header_by_name(h->wsi, (const unsigned char *)"keep-alive:", (const unsigned char *)ka, n,
                                            &p, end))
                return -1;
        }
        if (h1 && h->resp_len && h->resp_len + 2 <= (size_t)(end - p)) {
            /* lws counts only HTTP writes against the content length, and forgets it when the transaction ends */
            if (lws_finalize_http_header(h->wsi, &p, end))
                return -1;
            memcpy(p, h->resp + LWS_PRE, h->resp_len);
            p += h->resp_len;
            if (lws_write(h->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
                return -1;
            return answered(h);
        }
        if (lws_finalize_write_http_header(h->wsi, start, &p, end))
            return -1;
        h->phase = 1;
        /* an HTTP/2 stream writes once per WRITEABLE; HTTP/1 sends the body at once unless lws kept headers back */
        if (h->resp_len && (!h1 || lws_partial_buffered(h->wsi))) {
            lws_callback_on_writable(h->wsi);
            return 0;
        }
    }
    if (h->resp_len &&
        lws_write(h->wsi, (unsigned char *)h->resp + LWS_PRE, h->resp_len, LWS_WRITE_HTTP_FINAL) != (int)h->resp_len)
        return -1;
    return answered(h);
}

/* The whole answer is with lws: the request ends, and the connection waits for the next one or closes. */
static int answered(struct pg_http *h)
{
    answer_gone(h);
    /* a connection that upgrades to a WebSocket next gets its struct pg_conn zeroed (server.c): nothing owned is left */
    request_end(h);
    if (h->close_after)
        return -1; /* nothing more is read from this connection */
    return lws_http_transaction_completed(h->wsi) ? -1 : 0;
}

/* Whether token (lower case) is one of the comma-separated items of header value v. */
static int has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = v; *p;) {
        p += strspn(p, " \t,");
        size_t l = strcspn(p, ","), t = l;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == tl && !strncasecmp(p, token, tl))
            return 1;
        p += l;
    }
    return 0;
}

/*
 * 1 when the connection must close after this request's answer: it asked
 * (a "close" token in Connection), or it is HTTP/1.0 without keep-alive.
 * lws 4.1 closes after lws_http_transaction_completed() when Connection is
 * exactly "close", or the version is not 1.1 and Connection is not exactly
 * "keep-alive"; every such case answers 1 here, so no connection lws closes
 * goes without the header. *http10_ka: an HTTP/1.0 keep-alive request.
 */
static int request_wants_close(struct lws *wsi, int *http10_ka)
{
    char version[16] = "", conn[128] = "";
    int vl = pg_http_header(wsi, WSI_TOKEN_HTTP, version, sizeof version);
    int cl = pg_http_header(wsi, WSI_TOKEN_CONNECTION, conn, sizeof conn);
    int v11 = vl > 0 && !strcmp(version, "HTTP/1.1");
    *http10_ka = 0;
    if (lws_get_network_wsi(wsi) != wsi)
        return 0; /* an HTTP/2 stream: closing it is not closing the connection */
    if (cl < 0)
        return 1; /* a Connection header too long to read: the safe answer */
    if (has_token(conn, "close"))
        return 1;
    if (v11)
        return 0;
    *http10_ka = !strcasecmp(conn, "keep-alive");
    return !*http10_ka;
}

/*
 * Answers at once and closes the connection: for a request whose framing
 * or headers cannot be trusted, nothing that follows it on the connection is
 * read, so nothing hidden there runs as a further request. Returns -1, the
 * callback's "close".
 */
static int answer_and_close(struct pg_http *h, int status, const char *message)
{
    pg_log(PG_LOG_INFO, "http", "%d and close: %s", status, message);
    h->close_after = 1;
    pg_http_respond_error(h, status, message);
    if (h_write(h) == 0 && h->status)
        h_write(h);
    return -1;
}

static const struct pg_broker_words publish_words = {
    .refused = "the broker refused the message",
    .late = "the broker did not acknowledge the message in time",
    .unavailable = "broker unavailable, message not published",
    .failed = "cannot publish",
};

struct publish_ack {
    struct pg_pending p; /* p.serial: the parked request */
    json_t *ok;
};

static void publish_acked(struct pg_pending *p, int result)
{
    struct publish_ack *a = (struct publish_ack *)p;
    struct pg_http *h = pg_http_resume(p->gw, p->serial);
    const char *message;
    int status = pg_broker_status(result, &publish_words, &message);
    if (!h)
        return;
    if (status == 200) {
        pg_http_respond_json(h, 200, a->ok);
        a->ok = NULL;
    } else {
        pg_http_respond_error(h, status, message);
    }
}

static void publish_ack_drop(struct pg_pending *p)
{
    json_decref(((struct publish_ack *)p)->ok);
}

void pg_http_publish(struct pg_gw *gw, struct pg_http *h, const char *app, const char *topic, const void *payload,
                     size_t len, const char *const *props, json_t *ok)
{
    const char *why = pg_publish_refusal(gw, pg_app_find(gw, app, strlen(app)));
    if (why) {
        json_decref(ok);
        pg_http_respond_overloaded(h, why);
        return;
    }
    if (!ok)
        ok = json_pack("{s:b}", "ok", 1);
    struct publish_ack *a = pg_pending_new(gw, 0, sizeof *a, publish_acked, publish_ack_drop);
    if (!a || !ok) {
        if (a)
            pg_pending_free(&a->p);
        json_decref(ok);
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    a->ok = ok;
    pg_http_wait(gw, h);
    a->p.serial = h->serial;
    int rc = pg_publish_topic(gw, app, topic, payload, len, props, pg_pending_ack, a);
    if (rc != 0)
        pg_pending_ack(a, rc); /* answers at once: 503 (broker unavailable) or 500 */
}

int pg_http_add_worker_header(struct pg_gw *gw, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char v[16];
    if (gw->cfg->worker < 0)
        return 0;
    int n = snprintf(v, sizeof v, "%d", gw->cfg->worker);
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"x-pushgate-worker:", (const unsigned char *)v, n,
                                       p, end);
}

int pg_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len)
{
    if (lws_hdr_total_length(wsi, t) >= len)
        return -1;
    return lws_hdr_copy(wsi, buf, len, t) < 0 ? -1 : (int)strlen(buf);
}

void pg_http_refuse_upgrade(struct lws *wsi, unsigned int status, const char *message)
{
    /* the answer is written at once, before lws drops the connection, like lws_return_http_status() does, but with
       the JSON error body every other refusal of the gateway carries */
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    json_t *o = error_body((int)status, message);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    size_t n = body ? strlen(body) : 0;
    json_decref(o);
    if (!body || n > 512 ||
        lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)n, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0) {
        free(body);
        lws_return_http_status(wsi, status, message);
        return;
    }
    memcpy(start, body, n);
    free(body);
    lws_write(wsi, start, n, LWS_WRITE_HTTP_FINAL);
}

int pg_http_upgrade_checks(struct pg_gw *gw, struct lws *wsi, struct pg_app *app)
{
    const char *why;
    /* browsers send Origin: an app that lists its origins refuses pages from anywhere else */
    char origin[256];
    if (app && app->conf->allowed_origins && pg_http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) != 0) {
        int ok = 0;
        for (char **o = app->conf->allowed_origins; *o && !ok; o++)
            ok = !strcmp(*o, origin);
        if (!ok) {
            pg_log(PG_LOG_INFO, "http", "upgrade refused app=%s: origin not allowed", app->creds->id);
            pg_http_refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
            return 1;
        }
    }
    if ((why = pg_session_refusal(gw)) != NULL) {
        pg_http_refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, why);
        return 1;
    }
    if ((why = pg_addr_refusal(gw, wsi)) != NULL) {
        pg_http_refuse_upgrade(wsi, 429, why);
        return 1;
    }
    return 0;
}

static enum pg_http_method request_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        enum pg_http_method m;
    } methods[] = {{WSI_TOKEN_GET_URI, PG_GET},     {WSI_TOKEN_POST_URI, PG_POST},
                   {WSI_TOKEN_PUT_URI, PG_PUT},     {WSI_TOKEN_PATCH_URI, PG_PATCH},
                   {WSI_TOKEN_DELETE_URI, PG_DELETE}, {WSI_TOKEN_OPTIONS_URI, PG_OPTIONS}};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
            return methods[i].m;
    return 0;
}

const char *pg_http_args_get(const struct pg_http_args *args, const char *name)
{
    for (size_t i = 0; i < args->n; i++)
        if (!strcmp(args->buf + args->name[i], name))
            return args->buf + args->value[i];
    return NULL;
}

const char *pg_http_arg(const struct pg_http *h, const char *name)
{
    return h->args ? pg_http_args_get(h->args, name) : NULL;
}

/*
 * The request headers lws stored (every header it knows: Authorization,
 * Cookie, Origin, ...). lws 4.1 keeps them in a store of 4 x max_header_bytes
 * and closes the connection without an answer when that overflows (it has no
 * hook for it); up to there the gateway answers 431 itself.
 */
static int headers_too_big(struct pg_gw *gw, struct lws *wsi)
{
    uint64_t n = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++)
        n += (uint64_t)lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
    return n > gw->cfg->max_header_bytes;
}

/* A query parameter (name=value) over max_query_bytes: refused, never read truncated or skipped. */
static int query_too_long(struct pg_gw *gw, struct lws *wsi)
{
    /* the fragments' lengths plus one '&' between each add up to the total */
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS), seen = 0;
    for (int i = 0; seen < total; i++) {
        int n = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n > gw->cfg->max_query_bytes)
            return 1;
        seen += n + 1;
    }
    return 0;
}

/*
 * RFC 9112 section 6: the body's length must be unambiguous, or a request
 * hidden in one body could be read as the next request. One Content-Length of
 * plain decimal digits, no Transfer-Encoding (the gateway reads no chunked
 * bodies). Every duplicate is refused, equal ones too. Returns the status to
 * refuse with (message in *why) or 0 with the length in *clen.
 */
static int framing_error(struct lws *wsi, long long *clen, const char **why)
{
    char cl[32];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    *clen = 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        *why = n ? "Transfer-Encoding and Content-Length together" : "chunked bodies are not accepted: send Content-Length";
        return n ? 400 : 411;
    }
    if (!n)
        return 0;
    *why = "invalid Content-Length";
    if (n != lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 0)) {
        *why = "more than one Content-Length";
        return 400;
    }
    if ((size_t)n >= sizeof cl || lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) != n ||
        strspn(cl, "0123456789") != (size_t)n || pg_parse_int(cl, 0, INT64_MAX, clen) != 0)
        return 400;
    return 0;
}

int pg_http_refusal(struct pg_gw *gw, struct lws *wsi, const char **why)
{
    if (headers_too_big(gw, wsi)) {
        *why = "request headers larger than max_header_bytes";
        return 431;
    }
    if (query_too_long(gw, wsi)) {
        *why = "query parameter longer than max_query_bytes";
        return 400;
    }
    return 0;
}

/*
 * The body timeout is the same for every request, so gw->body_waits is a
 * deadline FIFO (core/dueq.h), joined as headers arrive: the tick answers
 * from its head until a request is not due, at most one tick (100 ms) late.
 * (A timer per request in lws' sorted list walked every other timer in it,
 * each WebSocket's included.)
 */
void pg_http_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    struct pg_due *d;
    while ((d = pg_dueq_pop(&gw->body_waits, now, gw->cfg->http_body_timeout_ms))) {
        struct pg_http *h = lws_container_of(d, struct pg_http, body_wait);
        if (h->body_done || h->status)
            continue;
        h->body_done = 1; /* a late rest of the body changes nothing */
        h->close_after = 1;
        pg_log(PG_LOG_INFO, "http", "request body of %s not complete within http_body_timeout_ms", h->path);
        pg_http_respond_error(h, 408, "request body not received within http_body_timeout_ms");
    }
}

int pg_http_callback(struct pg_gw *gw, pg_http_route_fn route, struct lws *wsi, enum lws_callback_reasons reason,
                     struct pg_http *h, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        pg_http_unregister(gw, h);
        h_reset(h);
        h->gw = gw;
        h->wsi = wsi;
        h->client_close = h->close_after = request_wants_close(wsi, &h->http10_keepalive);
        long long clen = 0;
        const char *why = NULL;
        int refuse = pg_http_refusal(gw, wsi, &why);
        if (!refuse)
            refuse = framing_error(wsi, &clen, &why);
        if (refuse)
            return answer_and_close(h, refuse, why);
        h->method = request_method(wsi);
        /* no route reads a body on these: refused, never skipped or left to be parsed as the next request */
        if (clen > 0 && h->method != PG_POST && h->method != PG_PUT && h->method != PG_PATCH)
            return answer_and_close(h, 400, "a body on a request without one (GET, DELETE, OPTIONS)");
        /* an answer made before the body arrived closes the connection: the body is never read as a request */
        if (clen > 0)
            h->close_after = 1;
        if (strlen((const char *)in) >= PG_HTTP_PATH_MAX) {
            pg_http_respond_error(h, 414, "URI too long");
            return 0;
        }
        h->path = strdup((const char *)in);
        h->args = calloc(1, sizeof *h->args);
        if (!h->path || !h->args) {
            pg_http_respond_error(h, 500, "out of memory");
            return 0;
        }
        if (!h->method) {
            pg_http_respond_error(h, 405, "method not allowed");
            return 0;
        }
        route(gw, h);
        if (h->status)
            return 0;
        h->close_after = h->client_close; /* no early answer: this one waits for the whole body */
        if (clen == 0) {
            h->body_done = 1; /* no body follows */
            if (h->on_body)
                h->on_body(gw, h);
            else if (!h->status)
                pg_http_respond_error(h, 500, "route gave no answer");
            return 0;
        }
        h->body_expected = 1;
        if ((uint64_t)clen > gw->cfg->max_body_bytes)
            h->body_too_big = 1;
        pg_due_start(&gw->body_waits, &h->body_wait, pg_mono_ms());
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (h->body_too_big || h->status || h->body_done || !in || !len)
            return 0;
        if (h->body_len + len > gw->cfg->max_body_bytes) {
            h->body_too_big = 1;
            return 0;
        }
        if (h->body_len + len > h->body_cap) {
            size_t cap = h->body_cap ? h->body_cap : 4096;
            while (cap < h->body_len + len)
                cap *= 2;
            char *b = realloc(h->body, cap);
            if (!b)
                return -1;
            h->body = b;
            h->body_cap = cap;
        }
        memcpy(h->body + h->body_len, in, len);
        h->body_len += len;
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws repeats this when bytes follow the body (a stray CRLF, a pipelined request): act once */
        if (!h->body_expected)
            return 0; /* a request without a body was answered when its headers arrived */
        if (h->body_done) {
            /*
             * lws 4.1 repeats this callback, in a tight loop that starves the
             * event loop, when bytes follow the body (a stray CRLF, a pipelined
             * request) while the answer still waits for the broker. Closing the
             * connection is the only way out: the first request's publish
             * stands, nothing is published twice, and the loop keeps serving.
             */
            pg_log(PG_LOG_INFO, "http", "closing connection: data after the request body of %s",
                   h->path ? h->path : "an answered request");
            if (h->status && !h->waiting_ack) {
                /* the answer is ready (an admin write that took effect, say): it goes out before the close */
                h->close_after = 1;
                if (h->phase == 0 && h_write(h) != 0)
                    return -1;
                if (h->phase == 1 && h->status)
                    h_write(h);
            }
            return -1;
        }
        if (h->status)
            return 0;
        h->body_done = 1;
        pg_due_stop(&h->body_wait);
        if (h->on_body)
            h->on_body(gw, h);
        else
            pg_http_respond_error(h, 500, "route gave no answer");
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return h_write(h);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* lws may free the per-transaction data after this */
        if (!h)
            return 0; /* context teardown closes connections that never had per-session data */
        pg_http_unregister(gw, h);
        h_reset(h);
        return 0;
    default:
        return 0;
    }
}
