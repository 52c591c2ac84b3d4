/*
 * lg_sub.c: the load generator's WebSocket subscribers, all on one libwebsockets client context.
 *
 * Owns: the lws context, one struct lg_sub per subscriber (its wsi, channel, state and received-sequence
 * bitmap) and the aggregate result (counts, latency histogram). Called only from loadgen.c's thread.
 *
 * Per target, a subscriber is "subscribed" when:
 *   native  /v1/{app}:  after {"type":"open"} it sends {"type":"subscribe","room":C,"cb":1} and gets the reply
 *                       without "error";
 *   Pusher  /app/{key}: after pusher:connection_established it sends pusher:subscribe and gets
 *                       pusher_internal:subscription_succeeded;
 *   nchan   /sub/{C}:   the WebSocket is established (nchan subscribes on the upgrade).
 * With --no-subscribe (native, Pusher) it sends nothing and is "subscribed" (done) at the greeting ("open",
 * pusher:connection_established): an idle connection with no channel.
 *
 * Every attempt ends: subscribed, or an error, or (with --retries) a retry. An attempt that is not subscribed
 * --open-timeout seconds after it began is closed here and counted ("open_timeouts"); lws' own waits (the TCP
 * connect, its handshake timeouts) are set longer than that, so ours comes first: with lws' timeout equal to the
 * whole phase's, an attempt the server never answered used to end with the phase, uncounted. lws 4.1 also ends some
 * attempts without CLIENT_CONNECTION_ERROR, saying only CLOSED_CLIENT_HTTP (seen in a connection storm against a
 * stalled worker) or WSI_DESTROY: both count here as a failed attempt, so no subscriber waits for a connection
 * that no longer exists. Retried (at most --retries times, LG_RETRY_DELAY_S apart) is an attempt that
 * never got an answer from the server: the TCP connect failed or timed out (a full accept queue drops the SYN, or the
 * handshake's last ACK, and the server never sees the connection), the connection closed or timed out before the
 * upgrade answer. An answer (a refused upgrade, an error frame, a close) is never retried: it is the server's.
 * Each attempt is a new wsi whose opaque user data names its subscriber; an attempt given up is detached from it
 * (opaque user data NULL), so its last callbacks cannot touch the next attempt.
 * Control frames are parsed with jansson; message frames are scanned for the payload marker (see lg.h).
 */
#define _GNU_SOURCE /* memmem */
#include "lg.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define LG_RX_MAX 65536
#define LG_TICK_US (20 * LWS_US_PER_MS)
#define LG_OPEN_CHECK_TICKS 50 /* attempts are checked against --open-timeout every 50 ticks (1 s) */
#define LG_RETRY_DELAY_S 1.0   /* a failed attempt is tried again this much later (--retries) */

enum lg_state { ST_IDLE, ST_CONNECTING, ST_OPEN, ST_SUBSCRIBED, ST_DEAD };

struct lg_sub {
    struct lg_subs *owner;
    struct lws *wsi;
    int index, channel;
    enum lg_state state;
    int want_write;
    int attempts;            /* attempts retried so far (--retries) */
    int answered;            /* this attempt got the server's HTTP answer */
    double t_attempt;        /* this attempt's start (CLOCK_MONOTONIC ns) */
    double retry_at;         /* ST_IDLE in the retry queue: not before */
    uint8_t *bits;           /* received sequences of this subscriber's channel, bit seq / channels */
    size_t nbytes;
    char *rx;                /* a message arriving in fragments */
    size_t rxlen;
};

struct lg_subs {
    const struct lg_opts *o;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lg_sub *subs;
    int next_to_open, in_flight, nsubscribed;
    int *retry_q;            /* subscribers waiting to be tried again, oldest first (ring of o->subs) */
    int retry_head, retry_len;
    unsigned ticks;
    double t_first, t_last_sub;
    lws_sorted_usec_list_t tick;
    struct lg_sub_result r;
    char src[LG_MAX_SRC_ADDRS][16];
    int closing_all;
    uv_loop_t loop;          /* with --evlib uv: ours, lent to lws as a foreign loop */
};

/* One pass of the event loop: lws' own poll() wait, or one libuv (epoll) iteration. The tick timer bounds the
 * wait either way, so callers re-check their conditions at least every LG_TICK_US. */
static void service(struct lg_subs *S)
{
    if (S->o->evlib_uv)
        uv_run(&S->loop, UV_RUN_ONCE);
    else
        lws_service(S->ctx, 0);
}

static void record(struct lg_sub *s, const char *p, size_t len)
{
    struct lg_subs *S = s->owner;
    const char *m = memmem(p, len, LG_MARKER, sizeof(LG_MARKER) - 1);
    if (!m)
        return;
    char *end;
    uint64_t seq = strtoull(m + 4, &end, 10);
    if (*end != ':')
        return;
    uint64_t t = strtoull(end + 1, NULL, 10);
    double now = lg_now_ns();
    S->r.last_rx_ns = now;
    uint64_t bit = seq / (uint64_t)S->o->channels;
    size_t need = (size_t)(bit / 8 + 1);
    if (need > s->nbytes) {
        size_t n = s->nbytes ? s->nbytes : 64;
        while (n < need)
            n *= 2;
        uint8_t *b = realloc(s->bits, n);
        if (!b)
            abort();
        memset(b + s->nbytes, 0, n - s->nbytes);
        s->bits = b;
        s->nbytes = n;
    }
    uint8_t mask = (uint8_t)(1u << (bit % 8));
    if (s->bits[bit / 8] & mask) {
        S->r.dups++;
        return;
    }
    s->bits[bit / 8] |= mask;
    S->r.delivered++;
    double lat_us = (now - (double)t) / 1000.0;
    lg_hist_add(&S->r.lat, lat_us < 0 ? 0 : (uint64_t)lat_us);
}

static void mark_subscribed(struct lg_sub *s)
{
    if (s->state == ST_SUBSCRIBED)
        return;
    s->state = ST_SUBSCRIBED;
    s->answered = 1;
    s->owner->nsubscribed++;
    s->owner->in_flight--;
    s->owner->t_last_sub = lg_now_ns();
}

/* The attempt's wsi no longer names s: its remaining callbacks are ignored. */
static void detach(struct lg_sub *s)
{
    if (s->wsi)
        lws_set_opaque_user_data(s->wsi, NULL);
    s->wsi = NULL;
}

static void fail(struct lg_sub *s, const char *why)
{
    struct lg_subs *S = s->owner;
    if (S->o->verbose)
        fprintf(stderr, "loadgen: subscriber %d: %s\n", s->index, why);
    if (s->state == ST_CONNECTING || s->state == ST_OPEN)
        S->in_flight--;
    if (s->state != ST_DEAD)
        S->r.errors++;
    s->state = ST_DEAD;
    detach(s);
}

/* An attempt that ended before the server answered it: tried again while --retries allows, else an error. */
static void fail_unanswered(struct lg_sub *s, const char *why)
{
    struct lg_subs *S = s->owner;
    if (s->answered || s->attempts >= S->o->retries || (s->state != ST_CONNECTING && s->state != ST_OPEN)) {
        fail(s, why);
        return;
    }
    if (S->o->verbose)
        fprintf(stderr, "loadgen: subscriber %d: %s; tried again\n", s->index, why);
    S->in_flight--;
    S->r.retried++;
    s->attempts++;
    s->state = ST_IDLE;
    detach(s);
    s->retry_at = lg_now_ns() + LG_RETRY_DELAY_S * 1e9;
    S->retry_q[(S->retry_head + S->retry_len++) % S->o->subs] = (int)(s - S->subs);
}

/* A control frame (not a message): advances the handshake. */
static void control(struct lg_sub *s, const char *p, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(p, len, 0, &e);
    if (!j) {
        fail(s, "unparsable frame");
        return;
    }
    const struct lg_opts *o = s->owner->o;
    if (o->target == LG_NATIVE) {
        const char *type = json_string_value(json_object_get(j, "type"));
        if (type && !strcmp(type, "open") && s->state == ST_OPEN) {
            if (o->no_subscribe) {
                mark_subscribed(s);
            } else {
                s->want_write = 1;
                lws_callback_on_writable(s->wsi);
            }
        } else if (type && !strcmp(type, "subscribe")) {
            json_t *err = json_object_get(j, "error");
            if (err) {
                char why[160];
                char *text = json_dumps(err, JSON_COMPACT);
                snprintf(why, sizeof(why), "subscribe refused: %.120s", text ? text : "?");
                free(text);
                fail(s, why);
            } else {
                mark_subscribed(s);
            }
        } else if (type && !strcmp(type, "error")) {
            fail(s, "error frame");
        }
    } else {
        const char *ev = json_string_value(json_object_get(j, "event"));
        if (ev && !strcmp(ev, "pusher:connection_established") && s->state == ST_OPEN) {
            if (o->no_subscribe) {
                mark_subscribed(s);
            } else {
                s->want_write = 1;
                lws_callback_on_writable(s->wsi);
            }
        } else if (ev && !strcmp(ev, "pusher_internal:subscription_succeeded")) {
            mark_subscribed(s);
        } else if (ev && !strcmp(ev, "pusher:error")) {
            fail(s, "pusher:error");
        }
    }
    json_decref(j);
}

static void on_frame(struct lg_sub *s, const char *p, size_t len)
{
    if (memmem(p, len, LG_MARKER, sizeof(LG_MARKER) - 1))
        record(s, p, len);
    else if (s->owner->o->target != LG_NCHAN)
        control(s, p, len);
}

static int send_subscribe(struct lg_sub *s)
{
    const struct lg_opts *o = s->owner->o;
    char room[128];
    snprintf(room, sizeof(room), "%s%d", o->channel_prefix, s->channel);
    json_t *j = o->target == LG_NATIVE
                    ? json_pack("{s:s,s:s,s:i}", "type", "subscribe", "room", room, "cb", 1)
                    : json_pack("{s:s,s:{s:s}}", "event", "pusher:subscribe", "data", "channel", room);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t n = strlen(text);
    unsigned char buf[LWS_PRE + 512];
    if (n > sizeof(buf) - LWS_PRE) {
        free(text);
        return -1;
    }
    memcpy(buf + LWS_PRE, text, n);
    free(text);
    return lws_write(s->wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lg_sub *s = lws_get_opaque_user_data(wsi);
    (void)user;
    if (!s)
        return 0;
    s->wsi = wsi; /* this attempt's (a given-up attempt's wsi has no user data) */
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        /* lws says "HS: ..." when the upgrade answer was there and wrong: the server's, not retried */
        const char *why = in ? (const char *)in : "connection error";
        if (!strncmp(why, "HS:", 3))
            s->answered = 1;
        fail_unanswered(s, why);
        break;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        s->answered = 1; /* the upgrade answer's status line: from here on an ending is the server's doing */
        break;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP: /* lws 4.1: a close before the upgrade completed, no CONNECTION_ERROR */
        if (s->state == ST_CONNECTING)
            fail_unanswered(s, "closed during the WebSocket handshake");
        break;
    case LWS_CALLBACK_WSI_DESTROY: /* the attempt is gone; nothing else said so */
        if (s->state == ST_CONNECTING || s->state == ST_OPEN)
            fail_unanswered(s, "connection gone during the WebSocket handshake");
        s->wsi = NULL;
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        s->answered = 1;
        s->owner->r.connected++;
        s->state = ST_OPEN;
        if (s->owner->o->target == LG_NCHAN)
            mark_subscribed(s);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (s->want_write) {
            s->want_write = 0;
            if (send_subscribe(s))
                return -1;
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
        if (first && final && !s->rxlen) {
            on_frame(s, in, len);
            break;
        }
        if (s->rxlen + len > LG_RX_MAX)
            return -1;
        char *b = realloc(s->rx, s->rxlen + len);
        if (!b)
            abort();
        memcpy(b + s->rxlen, in, len);
        s->rx = b;
        s->rxlen += len;
        if (final) {
            on_frame(s, s->rx, s->rxlen);
            s->rxlen = 0;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!s->owner->closing_all) {
            s->owner->r.closed_early++;
            fail(s, "closed by the server");
        } else {
            s->state = ST_IDLE;
            detach(s);
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"lg", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Attempts older than --open-timeout that are not subscribed: closed, and failed or tried again. */
static void check_open_timeouts(struct lg_subs *S)
{
    double limit = lg_now_ns() - S->o->open_timeout_s * 1e9;
    for (int i = 0; i < S->o->subs; i++) {
        struct lg_sub *s = &S->subs[i];
        if ((s->state != ST_CONNECTING && s->state != ST_OPEN) || s->t_attempt > limit)
            continue;
        struct lws *wsi = s->wsi;
        S->r.open_timeouts++;
        fail_unanswered(s, s->state == ST_OPEN ? "no subscription within --open-timeout"
                                               : "not open within --open-timeout");
        if (wsi) /* detached above: its close reports nothing */
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static void tick(lws_sorted_usec_list_t *sul)
{
    struct lg_subs *S = lws_container_of(sul, struct lg_subs, tick);
    if (++S->ticks % LG_OPEN_CHECK_TICKS == 0 && !S->closing_all)
        check_open_timeouts(S);
    lws_sul_schedule(S->ctx, 0, &S->tick, tick, LG_TICK_US);
}

/* No client-side validity (ping/hangup) timers: the servers ping; and every such timer is one more insert into
 * lws' sorted timer list, which is linear in the number of connections. */
static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};

static void open_one(struct lg_subs *S, struct lg_sub *s)
{
    const struct lg_opts *o = S->o;
    char path[256];
    if (o->target == LG_NATIVE)
        snprintf(path, sizeof(path), "/v1/%s", o->app);
    else if (o->target == LG_PUSHER)
        snprintf(path, sizeof(path), "/app/%s?protocol=7&client=pgbench&version=1.0", o->pusher_key);
    else
        snprintf(path, sizeof(path), "/sub/%s%d", o->channel_prefix, s->channel);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = S->ctx;
    ci.vhost = S->vh;
    ci.address = o->host;
    ci.port = o->port;
    ci.path = path;
    ci.host = o->host;
    ci.origin = o->host;
    ci.protocol = NULL;
    ci.local_protocol_name = "lg";
    ci.ietf_version_or_minus_one = -1;
    ci.opaque_user_data = s; /* s->wsi is set from the callbacks and the return: lws never clears a pwsi of ours */
    ci.retry_and_idle_policy = &no_validity;
    if (o->src_addrs > 1 || o->src_first > 1)
        ci.iface = S->src[s->index % o->src_addrs];
    s->state = ST_CONNECTING;
    s->answered = 0;
    s->wsi = NULL;
    s->t_attempt = lg_now_ns();
    S->in_flight++;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    if (s->state != ST_CONNECTING) /* it ended inside the call (a callback said so) */
        return;
    if (!wsi)
        fail_unanswered(s, "connect failed");
    else
        s->wsi = wsi;
}

struct lg_subs *lg_subs_new(const struct lg_opts *o)
{
    struct lg_subs *S = calloc(1, sizeof(*S));
    S->o = o;
    S->subs = calloc((size_t)o->subs, sizeof(*S->subs));
    S->retry_q = calloc((size_t)o->subs + 1, sizeof(*S->retry_q));
    for (int i = 0; i < o->subs; i++) {
        S->subs[i].owner = S;
        S->subs[i].index = o->shard + i * o->sub_procs; /* the run's numbering (--sub-procs) */
        S->subs[i].channel = S->subs[i].index % o->channels;
    }
    for (int i = 0; i < LG_MAX_SRC_ADDRS; i++)
        snprintf(S->src[i], sizeof(S->src[i]), "127.0.0.%d", i + o->src_first);
    lws_set_log_level(o->verbose > 1 ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    void *loops[1] = {&S->loop};
    if (o->evlib_uv) {
        uv_loop_init(&S->loop);
        info.options |= LWS_SERVER_OPTION_LIBUV;
        info.foreign_loops = loops;
    }
    /* No fd_limit_per_thread: lws 4.1 then looks connections up by fd in a table sized from RLIMIT_NOFILE
     * (raised by main) instead of scanning every connection for every event. */
    /* lws' waits come after --open-timeout, which ends an attempt here and says so: lws 4.1 ends some of its own
     * timed-out attempts without CLIENT_CONNECTION_ERROR (above); its TCP connect wait (20 s by default) too */
    info.timeout_secs = (unsigned int)o->open_timeout_s + 10;
    info.connect_timeout_secs = (unsigned int)o->open_timeout_s + 5;
    S->ctx = lws_create_context(&info);
    if (!S->ctx)
        return NULL;
    S->vh = lws_create_vhost(S->ctx, &info);
    if (!S->vh)
        return NULL;
    lws_sul_schedule(S->ctx, 0, &S->tick, tick, LG_TICK_US);
    return S;
}

static int open_pending(struct lg_subs *S, double deadline)
{
    S->t_first = lg_now_ns();
    while (S->nsubscribed + (int)S->r.errors < S->o->subs) {
        double now = lg_now_ns();
        while (S->retry_len && S->in_flight < S->o->connect_concurrency &&
               S->subs[S->retry_q[S->retry_head]].retry_at <= now) {
            struct lg_sub *s = &S->subs[S->retry_q[S->retry_head]];
            S->retry_head = (S->retry_head + 1) % S->o->subs;
            S->retry_len--;
            if (s->state == ST_IDLE)
                open_one(S, s);
        }
        while (S->next_to_open < S->o->subs && S->in_flight < S->o->connect_concurrency) {
            struct lg_sub *s = &S->subs[S->next_to_open++];
            if (s->state == ST_IDLE)
                open_one(S, s);
        }
        if (lg_now_ns() > deadline)
            break;
        service(S);
    }
    /* also on a timeout: the result says how many made it, not 0 */
    S->r.subscribed = S->nsubscribed;
    S->r.subscribe_s = S->nsubscribed ? (S->t_last_sub - S->t_first) / 1e9 : 0;
    S->r.first_ns = S->t_first;
    S->r.last_sub_ns = S->nsubscribed ? S->t_last_sub : 0;
    return S->nsubscribed == S->o->subs ? 0 : -1;
}

int lg_subs_open_all(struct lg_subs *S)
{
    return open_pending(S, lg_now_ns() + S->o->connect_timeout_s * 1e9);
}

void lg_subs_serve(struct lg_subs *S, double deadline_ns, int (*stop)(void *), void *arg)
{
    while (lg_now_ns() < deadline_ns && !(stop && stop(arg)))
        service(S);
}

double lg_subs_reconnect_storm(struct lg_subs *S)
{
    S->closing_all = 1;
    for (int i = 0; i < S->o->subs; i++) {
        struct lg_sub *s = &S->subs[i];
        if (s->wsi)
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    double until = lg_now_ns() + 10e9;
    for (;;) {
        int open = 0;
        for (int i = 0; i < S->o->subs; i++)
            open += S->subs[i].wsi != NULL;
        if (!open || lg_now_ns() > until)
            break;
        service(S);
    }
    S->closing_all = 0;
    for (int i = 0; i < S->o->subs; i++)
        if (S->subs[i].state != ST_DEAD)
            S->subs[i].state = ST_IDLE;
    S->nsubscribed = 0;
    S->in_flight = 0;
    S->next_to_open = 0;
    S->retry_len = 0;
    long errors_before = S->r.errors;
    int rc = open_pending(S, lg_now_ns() + S->o->connect_timeout_s * 1e9);
    (void)errors_before;
    return rc ? -1 : S->r.subscribe_s;
}

uint64_t lg_subs_lost(struct lg_subs *S, const struct lg_shared *sh, uint64_t *expected)
{
    uint64_t lost = 0, exp = 0;
    uint64_t C = (uint64_t)S->o->channels, end = sh->max_seq_plus1;
    if (end > (uint64_t)S->o->max_msgs)
        end = (uint64_t)S->o->max_msgs;
    for (int i = 0; i < S->o->subs; i++) {
        const struct lg_sub *s = &S->subs[i];
        if (s->state != ST_SUBSCRIBED)
            continue;
        for (uint64_t seq = (uint64_t)s->channel; seq < end; seq += C) {
            if (!(sh->acked_bits[seq / 8] & (1u << (seq % 8))))
                continue;
            exp++;
            uint64_t bit = seq / C;
            if (bit / 8 >= s->nbytes || !(s->bits[bit / 8] & (1u << (bit % 8))))
                lost++;
        }
    }
    *expected = exp;
    return lost;
}

long lg_subs_held(const struct lg_subs *S)
{
    long n = 0;
    for (int i = 0; i < S->o->subs; i++)
        n += S->subs[i].state == ST_SUBSCRIBED && S->subs[i].wsi != NULL;
    return n;
}

const struct lg_sub_result *lg_subs_result(struct lg_subs *S)
{
    return &S->r;
}

void lg_subs_free(struct lg_subs *S)
{
    if (!S)
        return;
    S->closing_all = 1; /* our own closes are not the server's */
    if (S->ctx)
        lws_context_destroy(S->ctx);
    for (int i = 0; i < S->o->subs; i++) {
        free(S->subs[i].bits);
        free(S->subs[i].rx);
    }
    free(S->subs);
    free(S->retry_q);
    free(S);
}
