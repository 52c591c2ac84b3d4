/*
 * Engine.IO 4 sessions and their HTTP long-polling transport, at /socket.io/
 * (proto/eio.h). The WebSocket transport and the upgrade to it are
 * proto/eio_ws.c's; what rides on a session (socket.io, proto/sio.c) gets its
 * message packets through the session's struct pg_eio_ops.
 *
 * Wire format. A session (sid) starts either with an HTTP long-polling
 * handshake (GET ?EIO=4&transport=polling, answered with the open packet
 * 0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}) or directly
 * on a WebSocket (?EIO=4&transport=websocket). Packets: "0" open, "1" close,
 * "2" ping, "3" pong, "4" message, "5" upgrade, "6" noop. Polling: a GET
 * waits until there is something to send (at least the server's ping every
 * sio_ping_interval_ms, or the noop after POLL_MAX_MS) and carries every
 * queued packet, separated by \x1e; a POST carries the client's packets the
 * same way. Refused requests get {"code","message"} with Engine.IO's codes.
 * Packets as text (types, the pong, the open packet, splitting a body) are
 * proto/eio_packet.c's.
 *
 * Closing, as Engine.IO servers do: a "1" the client POSTs ends the session
 * and answers its parked GET with the noop "6"; a session the gateway closes
 * answers it with "1" (WebSocket: a close frame). A polling client we close
 * gets CLOSE_GRACE_MS to fetch the close packet.
 *
 * Admission: a polling handshake costs a session slot for a single request,
 * so a session whose handshake was answered must come back (poll, post or
 * probe an upgrade with its sid) within sio_handshake_timeout_ms, well below
 * the ping interval + timeout that would otherwise end it; clients do so at
 * once. Until the upper layer connects (pg_eio_connected), it also goes when
 * it has had no transport for that long (no parked GET, no WebSocket, no
 * request or answer): one GET parked and then dropped does not buy the ping
 * interval + timeout either.
 *
 * Workers (gateway/workers.c): a session lives in the worker that made it,
 * and its sid's first characters name that worker (proto/eio.h), so that a
 * new connection carrying the sid is passed to it before lws reads it
 * (gateway/listen.c). A request that reaches another worker anyway came on
 * a kept-alive connection: it is answered 400 (Session ID unknown) with
 * Connection: close, and the client's next request comes on a new one.
 *
 * State: the sessions in gw->eio_sessions by sid (struct pg_eio, owned here
 * from pg_eio_new() to its destruction by eio_reap() or pg_eio_shutdown()).
 * Invariant: a dead session does nothing more and is destroyed at the next
 * turn of the loop; a parked GET (get_serial) is unregistered from the
 * pending requests whenever it is answered or dropped.
 *
 * No timer per session in lws' sorted list (each insert walks it): every
 * deadline is a FIFO in struct pg_gw (see "deadlines" below). Only killing
 * needs the next turn of the loop rather than the next tick: killed sessions
 * wait on gw->eio_dead, and one timer for the whole gateway (gw->eio_reap,
 * due at once, so lws inserts it at the head of its list) destroys them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "config.h"
#include "core/admission.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/session.h"
#include "http/http.h"
#include "log.h"
#include "pg_common.h"
#include "proto/eio.h"
#include "proto/eio_packet.h"
#include "pushgate_auth.h"

#define CLOSE_GRACE_MS 1000 /* a polling client we close gets this long to fetch the close packet */
/* lws drops an HTTP transaction unanswered for timeout_secs (30 s, server.c): answer a parked GET before */
#define POLL_MAX_MS 20000
#define TEXT_PLAIN "text/plain; charset=UTF-8"
/* pg_random_token's alphabet (auth/crypto.c): a sid's worker number is written in the characters it is made of */
static const char SID_ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define SID_BASE ((int)sizeof SID_ALPHABET - 1)

int pg_eio_sid_worker(const char *sid, size_t len)
{
    if (len < PG_EIO_SID_WORKER_CHARS)
        return -1;
    int n = 0;
    for (int i = 0; i < PG_EIO_SID_WORKER_CHARS; i++) {
        const char *d = sid[i] ? strchr(SID_ALPHABET, sid[i]) : NULL;
        if (!d)
            return -1;
        n = n * SID_BASE + (int)(d - SID_ALPHABET);
    }
    return n;
}

/* Writes worker's number over the first PG_EIO_SID_WORKER_CHARS characters of sid. */
static void sid_mark(char *sid, int worker)
{
    for (int i = PG_EIO_SID_WORKER_CHARS - 1; i >= 0; i--, worker /= SID_BASE)
        sid[i] = SID_ALPHABET[worker % SID_BASE];
}

struct pg_eio *pg_eio_find(struct pg_gw *gw, const char *sid)
{
    struct pg_eio *e;
    HASH_FIND(hh_sid, gw->eio_sessions, sid, strlen(sid), e);
    return e && !e->dead ? e : NULL;
}

/* ---- lifetime ------------------------------------------------------------------------- */

void pg_eio_detach_ws(struct pg_eio *e)
{
    if (!e->ws)
        return;
    if (e->ws_conn && e->ws_conn->s == &e->s)
        e->ws_conn->s = NULL;
    e->ws_conn = NULL;
    lws_callback_on_writable(e->ws); /* with no session behind it, its next WRITEABLE closes it */
    e->ws = NULL;
    e->s.wsi = NULL;
}

struct pg_http *pg_eio_parked_get(struct pg_eio *e)
{
    struct pg_http *h = e->get_serial ? pg_http_find(e->s.gw, e->get_serial) : NULL;
    if (!h)
        e->get_serial = 0; /* the client went away meanwhile */
    return h;
}

/*
 * The parked GET, unless its client hung up: lws reads nothing from a
 * connection whose request waits for its answer, so a dropped GET would
 * otherwise only be noticed when the answer is written. The hung-up one is
 * closed (its late answer would go nowhere) and forgotten.
 */
static struct pg_http *live_get(struct pg_eio *e)
{
    struct pg_http *h = pg_eio_parked_get(e);
    if (!h)
        return NULL;
    char c;
    lws_sockfd_type fd = lws_get_socket_fd(h->wsi);
    ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : -1;
    if (n > 0 || fd < 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return h;
    pg_log(PG_LOG_DEBUG, "socketio", "parked GET dropped by its client sid=%s", e->sid);
    pg_http_unregister(e->s.gw, h);
    h->waiting_ack = 0;
    e->get_serial = 0;
    lws_set_timeout(h->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    return NULL;
}

static void eio_destroy(struct pg_eio *e)
{
    struct pg_gw *gw = e->s.gw;
    pg_due_stop(&e->reap); /* its entries leave their queues before its memory goes */
    pg_due_stop(&e->upgrade);
    pg_due_stop(&e->ping);
    pg_due_stop(&e->handshake);
    pg_due_stop(&e->poll);
    pg_eio_detach_ws(e);
    struct pg_http *h = pg_eio_parked_get(e);
    if (h) {
        pg_http_unregister(gw, h);
        h->waiting_ack = 0;
        /* the client that closed knows; anyone else learns it from Engine.IO's close */
        pg_http_respond(h, 200, TEXT_PLAIN, e->client_closed ? "6" : "1", 1);
    }
    pg_log(PG_LOG_DEBUG, "socketio", "session closed sid=%s app=%s", e->sid, e->s.app ? e->s.app->id : "-");
    HASH_DELETE(hh_sid, gw->eio_sessions, e);
    pg_session_release(gw, &e->s);
    e->ops->destroy(e);
    free(e);
}

/* The reaper: destroys the killed sessions, from the loop, after whatever killed them has returned. */
static void eio_reap(lws_sorted_usec_list_t *sul)
{
    struct pg_gw *gw = lws_container_of(sul, struct pg_gw, eio_reap);
    int64_t now = pg_mono_ms();
    struct pg_due *d;
    while ((d = pg_dueq_pop(&gw->eio_dead, now, 0)))
        eio_destroy(lws_container_of(d, struct pg_eio, reap));
}

void pg_eio_kill(struct pg_eio *e)
{
    struct pg_gw *gw = e->s.gw;
    if (e->dead)
        return;
    e->dead = 1;
    if (!e->s.close_code)
        e->s.close_code = 1000; /* pg_session_send queues nothing more */
    pg_due_start(&gw->eio_dead, &e->reap, pg_mono_ms()); /* off gw->eio_close, if it was in its close grace */
    if (gw->eio_dead.list.count == 1) /* the first since the last reap: arm the reaper (re-arming one is harmless) */
        lws_sul_schedule(gw->ctx, 0, &gw->eio_reap, eio_reap, 1);
}

void pg_eio_shutdown(struct pg_gw *gw)
{
    struct pg_eio *e, *tmp;
    HASH_ITER(hh_sid, gw->eio_sessions, e, tmp) {
        eio_destroy(e);
    }
    lws_sul_cancel(&gw->eio_reap); /* nothing is left to reap */
}

/* The client had a transport at now: before CONNECT, its handshake deadline starts again (pg_eio_tick()). */
static void transport_seen(struct pg_eio *e, int64_t now)
{
    e->transport_ms = now;
    if (pg_due_queued(&e->handshake))
        pg_due_start(&e->s.gw->eio_handshake, &e->handshake, now);
}

/* ---- output -------------------------------------------------------------------------- */

void pg_eio_send(struct pg_eio *e, const char *text, size_t len)
{
    struct pg_msg *m = pg_msg_new(text, len);
    if (!m) {
        pg_eio_kill(e);
        return;
    }
    pg_session_send(&e->s, m);
    pg_msg_unref(m);
}

void pg_eio_flush_get(struct pg_eio *e, struct pg_http *h, int noop_only)
{
    struct pg_gw *gw = e->s.gw;
    size_t cap = e->s.q.bytes + e->s.q.count + 2, n = 0;
    char *b = malloc(cap);
    pg_http_unregister(gw, h);
    h->waiting_ack = 0;
    e->get_serial = 0;
    transport_seen(e, pg_mono_ms()); /* the client polls again at once */
    pg_due_stop(&e->poll);
    if (!b) {
        pg_http_respond_error(h, 500, "out of memory");
        pg_eio_kill(e);
        return;
    }
    struct pg_msg *m;
    while (!noop_only && (m = pg_outq_peek(&e->s.q)) != NULL) {
        if (n)
            b[n++] = PG_EIO_SEPARATOR;
        memcpy(b + n, pg_msg_data(m), m->len);
        n += m->len;
        if (e->s.app) {
            e->s.app->stats.frames_out++;
            e->s.app->stats.bytes_out += m->len;
        }
        pg_outq_pop(&e->s.q);
    }
    int closing = e->s.close_code && !noop_only;
    if (closing) {
        if (n)
            b[n++] = PG_EIO_SEPARATOR;
        b[n++] = '1';
    }
    if (!n)
        b[n++] = '6';
    pg_http_respond(h, 200, TEXT_PLAIN, b, n);
    free(b);
    if (closing)
        pg_eio_kill(e);
}

void pg_eio_wake(struct pg_session *s)
{
    struct pg_eio *e = pg_eio_of(s);
    if (e->dead)
        return;
    if (e->upgraded) {
        if (e->ws)
            lws_callback_on_writable(e->ws);
        return;
    }
    struct pg_http *h = pg_eio_parked_get(e);
    if (h) {
        pg_eio_flush_get(e, h, 0);
    } else if (s->close_code && !e->close_timer) {
        e->close_timer = 1; /* pg_eio_tick() kills it after the grace, unless a GET fetches the close first */
        pg_due_start(&s->gw->eio_close, &e->reap, pg_mono_ms());
    }
}

/* ---- sessions ------------------------------------------------------------------------ */

struct pg_eio *pg_eio_new(struct pg_gw *gw, struct lws *wsi, const struct pg_eio_ops *ops)
{
    struct pg_eio *e = calloc(1, ops->size);
    if (!e)
        return NULL;
    if (pg_random_token(e->sid, PG_EIO_SID_LEN) != 0 ||
        pg_http_header(wsi, WSI_TOKEN_ORIGIN, e->origin, sizeof e->origin) < 0) {
        free(e);
        return NULL;
    }
    if (gw->cfg->worker >= 0)
        sid_mark(e->sid, gw->cfg->worker);
    e->ops = ops;
    e->s.proto = ops->proto;
    snprintf(e->s.client_id, sizeof e->s.client_id, "%s", e->sid);
    e->s.last_rx_ms = pg_mono_ms();
    pg_session_register(gw, &e->s, wsi);
    HASH_ADD_KEYPTR(hh_sid, gw->eio_sessions, e->sid, strlen(e->sid), e);
    pg_due_start(&gw->eio_ping, &e->ping, e->s.last_rx_ms);
    if (ops->opened(e) != 0) {
        eio_destroy(e); /* nobody else knows it yet */
        return NULL;
    }
    pg_log(PG_LOG_DEBUG, "socketio", "session opened sid=%s", e->sid);
    return e;
}

char *pg_eio_open_packet(struct pg_eio *e, int can_upgrade)
{
    const struct pg_config *c = e->s.gw->cfg;
    return pg_eio_open_text(e->sid, c->sio_ping_interval_ms, c->sio_ping_timeout_ms,
                            (int64_t)c->sio_max_payload_bytes, can_upgrade);
}

void pg_eio_connected(struct pg_eio *e)
{
    e->connected = 1;
    pg_due_stop(&e->handshake);
}

int pg_eio_packet(struct pg_eio *e, const char *p, size_t n)
{
    struct pg_gw *gw = e->s.gw;
    e->s.last_rx_ms = pg_mono_ms();
    if (e->s.app) {
        e->s.app->stats.frames_in++;
        e->s.app->stats.bytes_in += n;
    }
    switch (pg_eio_client_type(p, n)) {
    case PG_EIO_CLOSE:
        if (e->upgraded) {
            pg_session_close(&e->s, 1000, "closed by the client");
        } else { /* Engine.IO servers end the session and answer a parked GET with the noop */
            e->client_closed = 1;
            pg_eio_kill(e);
        }
        return 0;
    case PG_EIO_PING: { /* the client's ping (Engine.IO 3 habit): answer with the same data */
        char pong[PG_EIO_PING_MAX];
        if (pg_eio_pong(p, n, pong) != 0)
            return -1;
        pg_eio_send(e, pong, n);
        return 0;
    }
    case PG_EIO_PONG:
        if (e->ping_out) {
            e->ping_out = 0;
            pg_due_start(&gw->eio_ping, &e->ping, e->s.last_rx_ms);
        }
        return 0;
    case PG_EIO_MESSAGE:
        return e->ops->message(e, p + 1, n - 1);
    case PG_EIO_NOOP:
        return 0;
    default:
        return -1; /* empty, binary, open or upgrade out of place, garbage */
    }
}

/* ---- polling transport ------------------------------------------------------------------ */

static void eio_error(struct pg_http *h, int status, int code, const char *message)
{
    pg_http_respond_json(h, status, json_pack("{s:i, s:s}", "code", code, "message", message));
}

void pg_eio_returned(struct pg_eio *e)
{
    e->returned = 1;
    transport_seen(e, pg_mono_ms());
}

static void handshake(struct pg_gw *gw, struct pg_http *h, const struct pg_eio_ops *ops)
{
    const char *why = pg_session_refusal(gw);
    if (why) {
        pg_http_respond_error(h, 503, why);
        return;
    }
    if ((why = pg_addr_refusal(gw, h->wsi)) != NULL) {
        pg_http_respond_error(h, 429, why);
        return;
    }
    struct pg_eio *e = pg_eio_new(gw, h->wsi, ops);
    char *open = e ? pg_eio_open_packet(e, 1) : NULL;
    if (!open) {
        if (e)
            pg_eio_kill(e);
        pg_http_respond_error(h, 500, "cannot open a session");
        return;
    }
    transport_seen(e, pg_mono_ms());
    pg_due_start(&gw->eio_handshake, &e->handshake, e->transport_ms);
    pg_http_respond(h, 200, TEXT_PLAIN, open, strlen(open));
    free(open);
}

static void poll_get(struct pg_eio *e, struct pg_http *h)
{
    if (pg_eio_parked_get(e)) { /* two GETs at once: Engine.IO clients never do that */
        eio_error(h, 400, 3, "Bad request");
        pg_eio_kill(e);
        return;
    }
    if (e->s.q.count || e->s.close_code || e->probing) {
        pg_eio_flush_get(e, h, 0);
        return;
    }
    pg_http_wait(e->s.gw, h); /* answered by the next wake, or the noop from pg_eio_tick() */
    e->get_serial = h->serial;
    pg_due_start(&e->s.gw->eio_poll, &e->poll, pg_mono_ms());
}

int pg_eio_payload(struct pg_eio *e, const char *body, size_t len)
{
    struct pg_eio_split it;
    const char *p;
    size_t n;
    pg_eio_split_init(&it, body, len);
    while (!e->dead && pg_eio_split_next(&it, &p, &n))
        if (pg_eio_packet(e, p, n) != 0)
            return -1;
    return 0;
}

static void poll_post(struct pg_eio *e, struct pg_http *h)
{
    struct pg_gw *gw = e->s.gw;
    if (h->body_too_big || h->body_len > gw->cfg->sio_max_payload_bytes) {
        pg_log(PG_LOG_INFO, "socketio", "payload over sio_max_payload_bytes, closing sid=%s", e->sid);
        pg_http_respond_error(h, 413, "payload too large");
        pg_eio_kill(e);
        return;
    }
    if (!h->body_len) {
        eio_error(h, 400, 3, "Bad request");
        pg_eio_kill(e);
        return;
    }
    if (pg_eio_payload(e, h->body, h->body_len) != 0) {
        pg_log(PG_LOG_INFO, "socketio", "malformed packet, closing sid=%s", e->sid);
        eio_error(h, 400, 3, "Bad request");
        pg_eio_kill(e);
        return;
    }
    pg_http_respond(h, 200, "text/html", "ok", 2);
}

/*
 * CORS preflight of a polling request that carries custom headers (the
 * client's extraHeaders): the headers asked for are allowed when they are
 * plain header names; nothing else of the request matters yet.
 */
static void preflight(struct pg_http *h)
{
    char want[256] = "";
    if (pg_http_header(h->wsi, WSI_TOKEN_HTTP_AC_REQUEST_HEADERS, want, sizeof want) < 0 ||
        want[strspn(want, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, ")] != '\0') {
        pg_http_respond_error(h, 400, "Access-Control-Request-Headers: expected header names");
        return;
    }
    if (!(h->preflight = strdup(want))) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    pg_http_respond(h, 204, TEXT_PLAIN, "", 0);
}

void pg_eio_http(struct pg_gw *gw, struct pg_http *h, const struct pg_eio_ops *ops)
{
    char eio[8], transport[16], sid[PG_EIO_SID_LEN + 8], origin[256];
    /*
     * Pages of any origin may read the answers (CORS), as with
     * notification-socket.io: the app's allowed_origins are enforced when the
     * session connects to its namespace (proto/sio.c), and a session only
     * answers requests of the origin that opened it.
     */
    int ol = pg_http_header(h->wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    if (ol < 0) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    if (ol > 0 && !(h->allow_origin = strdup(origin))) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    if (h->method == PG_OPTIONS) {
        preflight(h);
        return;
    }
    if (pg_http_query_arg(h->wsi, "EIO", eio, sizeof eio) < 0 || strcmp(eio, "4") != 0) {
        eio_error(h, 400, 5, "Unsupported protocol version");
        return;
    }
    if (pg_http_query_arg(h->wsi, "transport", transport, sizeof transport) < 0 || strcmp(transport, "polling")) {
        eio_error(h, 400, 0, "Transport unknown");
        return;
    }
    if (pg_http_query_arg(h->wsi, "sid", sid, sizeof sid) == -1) {
        if (h->method == PG_GET)
            handshake(gw, h, ops);
        else
            eio_error(h, 400, 2, "Bad handshake method");
        return;
    }
    struct pg_eio *e = pg_eio_find(gw, sid);
    if (!e) {
        int owner = gw->cfg->worker >= 0 ? pg_eio_sid_worker(sid, strlen(sid)) : -1;
        if (owner >= 0 && owner != gw->cfg->worker) {
            /*
             * Another worker's session on a connection this worker accepted: a kept-alive connection (its first
             * request went where it landed, gateway/listen.c) reused for another session. lws has read the
             * request, so the connection cannot be handed over any more: closing it sends the client's next
             * request, the reconnect, on a new connection, which the listener places.
             */
            pg_log(PG_LOG_INFO, "socketio", "a sid of worker %d on a connection of worker %d: 400 and close", owner,
                   gw->cfg->worker);
            h->close_after = 1;
            eio_error(h, 400, 1, "Session ID unknown on this connection (another worker's session): use a new one");
            return;
        }
        eio_error(h, 400, 1, "Session ID unknown");
        return;
    }
    if (strcmp(e->origin, ol > 0 ? origin : "") != 0) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    if (e->upgraded || (h->method != PG_GET && h->method != PG_POST)) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    pg_eio_returned(e);
    if (h->method == PG_GET)
        poll_get(e, h);
    else
        poll_post(e, h);
}

/* ---- deadlines ------------------------------------------------------------------------ */

/*
 * Every per-session deadline here has one interval for all sessions
 * (sio_ping_interval_ms, sio_ping_timeout_ms, sio_handshake_timeout_ms,
 * POLL_MAX_MS, PG_EIO_UPGRADE_TIMEOUT_MS, CLOSE_GRACE_MS), so each is a
 * deadline FIFO (core/dueq.h) in struct pg_gw,
 * popped here at every tick (PG_BRIDGE_TICK_MS), not a timer per session in
 * lws' sorted list. A deadline is met up to one tick late, except the ping:
 * clients close a session whose ping is later than pingInterval +
 * pingTimeout, and sio_ping_timeout_ms may be as short as a tick, so a ping
 * goes up to one tick early instead (at least half the interval after the
 * last pong), which only starts the client's clock sooner. A late pong
 * deadline, handshake deadline, noop, upgrade deadline or close grace only
 * gives the client more time.
 *
 * Sessions popped here are never freed synchronously (pg_eio_kill() frees
 * at the next turn of the loop), so popping on after sending or killing is
 * safe.
 */
void pg_eio_tick(struct pg_gw *gw)
{
    const struct pg_config *c = gw->cfg;
    int64_t now = pg_mono_ms();
    int64_t early = c->sio_ping_interval_ms / 2 < PG_BRIDGE_TICK_MS ? c->sio_ping_interval_ms / 2 : PG_BRIDGE_TICK_MS;
    struct pg_due *d;
    while ((d = pg_dueq_pop(&gw->eio_pong, now, c->sio_ping_timeout_ms))) {
        struct pg_eio *e = lws_container_of(d, struct pg_eio, ping);
        if (e->dead || e->s.close_code)
            continue;
        pg_log(PG_LOG_INFO, "socketio", "no pong in time, closing sid=%s", e->sid);
        pg_eio_kill(e);
    }
    while ((d = pg_dueq_pop(&gw->eio_ping, now, c->sio_ping_interval_ms - early))) {
        struct pg_eio *e = lws_container_of(d, struct pg_eio, ping);
        if (e->dead || e->s.close_code)
            continue; /* closing: no more pings */
        e->ping_out = 1;
        pg_due_start(&gw->eio_pong, &e->ping, now);
        pg_eio_send(e, "2", 1);
    }
    /*
     * Until it is connected, a polling session is kept while its client keeps
     * a transport: a parked GET or a WebSocket, or a request or answer within
     * sio_handshake_timeout_ms. A parked GET whose connection drops is not
     * reported to the session, so its deadline looks again each time it is due.
     */
    while ((d = pg_dueq_pop(&gw->eio_handshake, now, c->sio_handshake_timeout_ms))) {
        struct pg_eio *e = lws_container_of(d, struct pg_eio, handshake);
        if (e->dead || e->connected)
            continue;
        if (live_get(e) || e->ws) {
            e->transport_ms = now;
            pg_due_start(&gw->eio_handshake, &e->handshake, now);
            continue;
        }
        if (!e->returned)
            pg_log(PG_LOG_INFO, "socketio",
                   "no request after the handshake within sio_handshake_timeout_ms, closing sid=%s", e->sid);
        else
            pg_log(PG_LOG_INFO, "socketio", "no transport before CONNECT for sio_handshake_timeout_ms, closing sid=%s",
                   e->sid);
        pg_eio_kill(e);
    }
    while ((d = pg_dueq_pop(&gw->eio_poll, now, POLL_MAX_MS))) {
        struct pg_eio *e = lws_container_of(d, struct pg_eio, poll);
        struct pg_http *h = e->dead ? NULL : pg_eio_parked_get(e);
        if (h)
            pg_eio_flush_get(e, h, 0); /* the noop: the client polls again */
    }
    /* A probe that never completes would keep answering the polling GETs at once: drop the probe (proto/eio_ws.c). */
    while ((d = pg_dueq_pop(&gw->eio_upgrade, now, PG_EIO_UPGRADE_TIMEOUT_MS))) {
        struct pg_eio *e = lws_container_of(d, struct pg_eio, upgrade);
        if (e->dead || e->upgraded || !e->ws)
            continue;
        pg_log(PG_LOG_INFO, "socketio", "upgrade not completed in time sid=%s", e->sid);
        e->probing = e->probe_reply = 0;
        pg_eio_detach_ws(e);
    }
    /* A polling client we closed did not fetch the close packet within CLOSE_GRACE_MS: the session goes. */
    while ((d = pg_dueq_pop(&gw->eio_close, now, CLOSE_GRACE_MS)))
        pg_eio_kill(lws_container_of(d, struct pg_eio, reap));
}
