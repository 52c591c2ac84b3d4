/*
 * The one fan-out (core/fanout.h).
 *
 * Channel messages: the exact channel's members, then every wildcard filter
 * of the app that matches the channel. An exact subscription was checked when
 * it was made; a wildcard one is checked here per channel, so `#` never
 * reads a private-/presence- channel it may not. A message that reveals
 * missed ones before it (core/seq.c) is announced to the channel's readers
 * (the gap signal, in each protocol's way) before the message itself.
 *
 * Broadcasts: every session of the app whose protocol says it may read
 * app-wide events; the app's broadcast topic is subscribed for as long as the
 * app exists, so a gap there concerns every such session.
 */
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/fanout.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/seq.h"
#include "core/session.h"
#include "log.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

#define MAX_PROTOCOLS 8 /* distinct protocols one message may meet: more than the gateway speaks */

/* A message's frames for one protocol, one per slot, encoded at the first recipient that needs each. */
struct encoding {
    const struct pg_proto *ops;
    struct pg_msg *m[PG_PROTO_MAX_SLOTS];
};

struct fanout {
    struct pg_gw *gw;
    struct pg_event ev;
    size_t channel_len;
    int protected_channel;      /* pg_channel_protected(channel): computed once, asked per wildcard reader */
    const char *exclude_socket; /* Pusher socket_id that must not receive it (the sender) */
    struct encoding enc[MAX_PROTOCOLS];
    int nenc, encodings;
    size_t recipients;
    uint64_t seq;        /* gw->fanout_seq of this message: one delivery per session */
    struct pg_seq_in in; /* origin, seq, prev of the message (has_seq) */
    int has_seq;
};

/* The frame s gets (borrowed from f), or NULL when its protocol cannot encode the message. */
static struct pg_msg *frame_for(struct fanout *f, const struct pg_session *s)
{
    const struct pg_proto *p = s->proto;
    struct encoding *e = NULL;
    for (int i = 0; i < f->nenc && !e; i++)
        if (f->enc[i].ops == p)
            e = &f->enc[i];
    if (!e && f->nenc < MAX_PROTOCOLS) {
        e = &f->enc[f->nenc++];
        e->ops = p;
    }
    if (!e)
        return NULL;
    int slot = p->slot ? p->slot(s) : 0;
    if (!e->m[slot] && (e->m[slot] = p->encode(s, &f->ev)) != NULL)
        f->encodings++;
    return e->m[slot];
}

static void fanout_done(struct fanout *f)
{
    /* most recipients read, their queues still over 3/4 (pg_behind_messages): the gateway outruns its readers */
    if (f->gw->fan_filling * 2 > f->recipients)
        pg_session_pause_input(f->gw);
    f->gw->fan_filling = 0;
    for (int i = 0; i < f->nenc; i++)
        for (int k = 0; k < PG_PROTO_MAX_SLOTS; k++)
            pg_msg_unref(f->enc[i].m[k]);
}

/* ---- channel messages ------------------------------------------------------------ */

static int may_read(const struct fanout *f, const struct pg_session *s, int via_wildcard)
{
    if (!via_wildcard)
        return 1;
    if (s->token)
        return pg_token_allows(s->token, PG_ACT_SUBSCRIBE, f->ev.channel, f->channel_len) == PG_ALLOW;
    return !f->protected_channel;
}

/* Messages before this one never reached ch (seq.c): its readers hear of it before the message itself. */
static void gap_notify(struct fanout *f, struct pg_channel *ch)
{
    struct pg_member *m, *mtmp;
    ch->app->stats.gaps++;
    pg_log(PG_LOG_WARN, "fanout", "gap: messages missed app=%s subscription=%s channel=%s origin=%s sessions=%zu",
           ch->app->creds->id, ch->name, f->ev.channel, f->in.origin, ch->nmembers);
    DL_FOREACH_SAFE(ch->members, m, mtmp) {
        struct pg_session *s = m->s;
        if (s->gap_seq == f->seq || s->close_code || !may_read(f, s, ch->wildcard))
            continue;
        s->gap_seq = f->seq;
        pg_session_gap(s, ch->name, f->ev.channel);
    }
}

static void deliver_one(struct fanout *f, struct pg_session *s, int via_wildcard)
{
    if (s->delivered_seq == f->seq || s->close_code)
        return;
    if (!may_read(f, s, via_wildcard))
        return;
    if (f->exclude_socket && !strcmp(s->socket_id, f->exclude_socket))
        return;
    s->delivered_seq = f->seq;
    struct pg_msg *m = frame_for(f, s);
    if (!m)
        return;
    f->recipients++;
    pg_session_send(s, m);
}

void pg_fanout_channel(struct pg_gw *gw, struct pg_app *app, const char *name, int user, const void *payload,
                       size_t len, const struct pg_bridge_prop *props, size_t nprops)
{
    /* per-user messages live in the channel index as "#server-to-user-{id}" */
    char *user_channel = NULL;
    if (user && !(user_channel = pg_channel_of_user(name)))
        return;
    struct fanout f = {.gw = gw,
                       .ev = {.channel = user ? user_channel : name, .payload = payload, .len = len,
                              .props = props, .nprops = nprops},
                       .seq = ++gw->fanout_seq};
    gw->fan_filling = 0; /* counted by pg_session_send for this fan-out, read by fanout_done() */
    f.channel_len = strlen(f.ev.channel);
    f.protected_channel = pg_channel_protected(f.ev.channel, f.channel_len);
    for (size_t i = 0; i < nprops; i++)
        if (!strcmp(props[i].name, "socket_id"))
            f.exclude_socket = props[i].value;
    struct pg_channel *ch, *tmp;
    struct pg_member *m, *mtmp;
    f.has_seq = pg_seq_parse(props, nprops, &f.in);
    HASH_FIND_STR(app->channels, f.ev.channel, ch);
    if (ch) {
        if (f.has_seq && pg_seq_check(gw, &ch->seqs, &f.in, NULL))
            gap_notify(&f, ch);
        DL_FOREACH_SAFE(ch->members, m, mtmp) deliver_one(&f, m->s, 0);
    }
    HASH_ITER(hh, app->filters, ch, tmp) {
        bool match = false;
        if (mosquitto_topic_matches_sub(ch->name, f.ev.channel, &match) == MOSQ_ERR_SUCCESS && match) {
            if (f.has_seq && pg_seq_check(gw, &ch->seqs, &f.in, f.ev.channel))
                gap_notify(&f, ch);
            DL_FOREACH_SAFE(ch->members, m, mtmp) deliver_one(&f, m->s, 1);
        }
    }
    app->stats.delivered++;
    if (pg_log_enabled(PG_LOG_DEBUG))
        pg_log(PG_LOG_DEBUG, "fanout", "app=%s channel=%s bytes=%zu recipients=%zu encodings=%d", app->creds->id,
               f.ev.channel, len, f.recipients, f.encodings);
    fanout_done(&f);
    free(user_channel);
}

/* ---- a parsed topic: the channel or the broadcast path (dispatch.c, core/publish.c) ---- */

void pg_fanout_topic(struct pg_gw *gw, const struct pg_topic_ref *t, const void *payload, size_t len,
                     const struct pg_bridge_prop *props, size_t nprops)
{
    struct pg_app *a = pg_app_find(gw, t->app.s, t->app.len);
    if (!a)
        return;
    if (t->kind == PG_TOPIC_CHANNEL || t->kind == PG_TOPIC_USER)
        pg_fanout_channel(gw, a, t->name.s, t->kind == PG_TOPIC_USER, payload, len, props, nprops);
    else if (t->kind == PG_TOPIC_BROADCAST && a->creds->active)
        pg_fanout_broadcast(gw, a, payload, len, props, nprops);
}

/* ---- app-wide broadcasts ---------------------------------------------------------- */

void pg_fanout_broadcast(struct pg_gw *gw, struct pg_app *a, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops)
{
    struct fanout f = {.gw = gw, .ev = {.payload = payload, .len = len, .props = props, .nprops = nprops}};
    gw->fan_filling = 0;
    struct pg_session *s, *tmp;
    struct pg_seq_in in;
    int gap = pg_seq_parse(props, nprops, &in) && pg_seq_check(gw, &a->broadcast_seqs, &in, NULL);
    if (gap) {
        a->stats.gaps++;
        pg_log(PG_LOG_WARN, "apps", "gap: app-wide messages missed app=%s origin=%s", a->id, in.origin);
    }
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (s->app != a || s->close_code || !s->proto->may_read_app(s))
            continue;
        if (gap)
            pg_session_gap(s, "#general", "#general");
        if (s->close_code)
            continue;
        struct pg_msg *m = frame_for(&f, s);
        if (m) {
            pg_session_send(s, m);
            f.recipients++;
        }
    }
    a->stats.delivered++;
    pg_log(PG_LOG_DEBUG, "apps", "broadcast app=%s event=%s sessions=%zu", a->id,
           pg_prop_get(props, nprops, "event", "message"), f.recipients);
    fanout_done(&f);
}
