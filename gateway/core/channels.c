/*
 * The channel index: which local sessions listen to which channel.
 *
 * A channel (or wildcard filter) exists while it has local members; the
 * first member subscribes its topic at the broker, the last one leaving
 * unsubscribes it, so a gateway receives only traffic someone here wants.
 * A message is encoded once per wire protocol and the same buffer is queued
 * on every recipient.
 */
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "gateway.h"

struct pg_app *pg_app_find(struct pg_gw *gw, const char *id, size_t len)
{
    struct pg_app *a;
    HASH_FIND(hh, gw->apps, id, len, a);
    return a;
}

struct pg_app *pg_app_lookup(struct pg_gw *gw, const char *id, size_t len)
{
    struct pg_app *a = pg_app_find(gw, id, len);
    return a && !pg_app_deleted(a) ? a : NULL;
}

char *pg_topic(struct pg_gw *gw, const char *app, const char *kind, const char *name)
{
    size_t n = strlen(gw->cfg->topic_root) + strlen(app) + strlen(kind) + strlen(name) + 4;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%s/%s/%s/%s", gw->cfg->topic_root, app, kind, name);
    return t;
}

int pg_channel_is_filter(const char *name)
{
    /* a wildcard is a whole level: "#server-to-user-1" or "a+b" are plain names */
    for (const char *lvl = name; lvl; lvl = strchr(lvl, '/') ? strchr(lvl, '/') + 1 : NULL) {
        size_t n = strcspn(lvl, "/");
        if (n == 1 && (*lvl == '+' || *lvl == '#'))
            return 1;
    }
    return 0;
}

char *pg_channel_topic(struct pg_gw *gw, const char *app, const char *name)
{
    size_t pl = strlen(PG_USER_CHANNEL_PREFIX);
    if (!strncmp(name, PG_USER_CHANNEL_PREFIX, pl))
        return pg_topic(gw, app, "u", name + pl);
    return pg_topic(gw, app, "c", name);
}

static struct pg_channel *channel_get(struct pg_session *s, const char *name, int wildcard)
{
    struct pg_app *app = s->app;
    struct pg_channel **table = wildcard ? &app->filters : &app->channels;
    struct pg_channel *ch;
    HASH_FIND_STR(*table, name, ch);
    if (ch)
        return ch;
    ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->name = strdup(name);
    ch->topic = pg_channel_topic(s->gw, app->creds->id, name);
    if (!ch->name || !ch->topic || pg_bridge_subscribe(s->gw->bridge, ch->topic) != 0) {
        free(ch->name);
        free(ch->topic);
        free(ch);
        return NULL;
    }
    ch->wildcard = wildcard;
    ch->app = app;
    HASH_ADD_KEYPTR(hh, *table, ch->name, strlen(ch->name), ch);
    return ch;
}

static void channel_put(struct pg_gw *gw, struct pg_channel *ch)
{
    if (ch->nmembers)
        return;
    struct pg_channel **table = ch->wildcard ? &ch->app->filters : &ch->app->channels;
    HASH_DEL(*table, ch);
    pg_bridge_unsubscribe(gw->bridge, ch->topic);
    pg_seq_table_free(&ch->seqs);
    free(ch->name);
    free(ch->topic);
    free(ch);
}

static void member_remove(struct pg_session *s, struct pg_member *m);

int pg_channel_join(struct pg_session *s, const char *name, pg_bridge_ack_cb cb, void *ud)
{
    struct pg_member *m;
    HASH_FIND_STR(s->subs, name, m);
    if (m)
        return pg_bridge_subscribe_wait(s->gw->bridge, m->ch->topic, cb, ud);
    if (s->nsubs >= (size_t)s->gw->cfg->max_subscriptions)
        return PG_ELIMIT;
    if (!pg_bridge_connected(s->gw->bridge))
        return PG_EBUSY;
    m = calloc(1, sizeof *m);
    if (!m)
        return PG_ENOMEM;
    struct pg_channel *ch = channel_get(s, name, pg_channel_is_filter(name));
    if (!ch) {
        free(m);
        return PG_ENOMEM;
    }
    m->ch = ch;
    m->s = s;
    DL_APPEND(ch->members, m);
    ch->nmembers++;
    HASH_ADD_KEYPTR(hh, s->subs, ch->name, strlen(ch->name), m);
    s->nsubs++;
    pg_cluster_changed(s->gw);
    int rc = pg_bridge_subscribe_wait(s->gw->bridge, ch->topic, cb, ud);
    if (rc < 0)
        member_remove(s, m);
    return rc;
}

static void member_remove(struct pg_session *s, struct pg_member *m)
{
    struct pg_channel *ch = m->ch;
    pg_pusher_member_left(m);
    HASH_DEL(s->subs, m);
    s->nsubs--;
    DL_DELETE(ch->members, m);
    ch->nmembers--;
    pg_cluster_changed(s->gw);
    free(m);
    channel_put(s->gw, ch);
}

void pg_channel_leave(struct pg_session *s, const char *name)
{
    struct pg_member *m;
    HASH_FIND_STR(s->subs, name, m);
    if (m)
        member_remove(s, m);
}

void pg_channel_leave_all(struct pg_session *s)
{
    struct pg_member *m, *tmp;
    HASH_ITER(hh, s->subs, m, tmp) {
        member_remove(s, m);
    }
}

struct fanout {
    struct pg_gw *gw;
    const char *channel;
    size_t channel_len;
    int protected_channel; /* pg_channel_protected(channel): computed once, asked per wildcard reader */
    const void *payload;
    size_t len;
    const struct pg_bridge_prop *props;
    size_t nprops;
    struct pg_msg *native; /* encoded lazily, once per wire protocol */
    struct pg_msg *pusher;
    struct pg_msg *sio[2]; /* socket.io: namespace "/" and "/{app}" frame differently */
    const char *exclude_socket; /* Pusher socket_id that must not receive it (the sender) */
    int encodings;
    size_t recipients;
    uint64_t seq;
    struct pg_seq_in in; /* origin, seq, prev of the message (has_seq) */
    int has_seq;
};

/*
 * An exact subscription was checked when it was made; a wildcard one is checked per channel here: against the
 * token, or without one (an open app) public channels only, so `#` never reads a private-/presence- channel.
 */
static int may_read(const struct fanout *f, const struct pg_session *s, int via_wildcard)
{
    if (!via_wildcard)
        return 1;
    if (s->token)
        return pg_token_allows(s->token, PG_ACT_SUBSCRIBE, f->channel, f->channel_len) == PG_ALLOW;
    return !f->protected_channel;
}

/* Messages before this one never reached ch (seq.c): its readers hear of it before the message itself. */
static void gap_notify(struct fanout *f, struct pg_channel *ch)
{
    struct pg_member *m, *mtmp;
    ch->app->stats.gaps++;
    pg_log(PG_LOG_WARN, "fanout", "gap: messages missed app=%s subscription=%s channel=%s origin=%s sessions=%zu",
           ch->app->creds->id, ch->name, f->channel, f->in.origin, ch->nmembers);
    DL_FOREACH_SAFE(ch->members, m, mtmp) {
        struct pg_session *s = m->s;
        if (s->gap_seq == f->seq || s->close_code || !may_read(f, s, ch->wildcard))
            continue;
        s->gap_seq = f->seq;
        pg_session_gap(s, ch->name, f->channel);
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
    struct pg_msg **enc = s->proto == PG_PROTO_PUSHER ? &f->pusher
                          : s->proto == PG_PROTO_SIO  ? &f->sio[pg_sio_nsp_slot(s)]
                                                      : &f->native;
    if (!*enc) {
        if (s->proto == PG_PROTO_PUSHER)
            pg_pusher_encode(f->channel, f->payload, f->len, f->props, f->nprops, enc);
        else if (s->proto == PG_PROTO_SIO)
            pg_sio_encode(s, f->payload, f->len, f->props, f->nprops, enc);
        else
            pg_native_encode(f->gw, f->channel, f->payload, f->len, f->props, f->nprops, enc);
        if (!*enc)
            return;
        f->encodings++;
    }
    f->recipients++;
    pg_session_send(s, *enc);
}

void pg_channels_deliver(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops)
{
    /* {root}/{app}/c/{channel} */
    size_t rl = strlen(gw->cfg->topic_root);
    if (strncmp(topic, gw->cfg->topic_root, rl) != 0 || topic[rl] != '/')
        return;
    const char *app_id = topic + rl + 1;
    const char *slash = strchr(app_id, '/');
    int user = slash && !strncmp(slash, "/u/", 3);
    if (!slash || (strncmp(slash, "/c/", 3) != 0 && !user))
        return;
    struct pg_app *app = pg_app_find(gw, app_id, (size_t)(slash - app_id));
    if (!app)
        return;
    /* per-user messages live in the channel index as "#server-to-user-{id}" */
    char *user_channel = NULL;
    if (user) {
        size_t n = strlen(PG_USER_CHANNEL_PREFIX) + strlen(slash + 3) + 1;
        if (!(user_channel = malloc(n)))
            return;
        snprintf(user_channel, n, "%s%s", PG_USER_CHANNEL_PREFIX, slash + 3);
    }
    struct fanout f = {.gw = gw, .channel = user ? user_channel : slash + 3, .payload = payload, .len = len, .props = props,
                       .nprops = nprops, .seq = ++gw->fanout_seq};
    f.channel_len = strlen(f.channel);
    f.protected_channel = pg_channel_protected(f.channel, f.channel_len);
    for (size_t i = 0; i < nprops; i++)
        if (!strcmp(props[i].name, "socket_id"))
            f.exclude_socket = props[i].value;
    struct pg_channel *ch, *tmp;
    struct pg_member *m, *mtmp;
    f.has_seq = pg_seq_parse(props, nprops, &f.in);
    HASH_FIND_STR(app->channels, f.channel, ch);
    if (ch) {
        if (f.has_seq && pg_seq_check(gw, &ch->seqs, &f.in, NULL))
            gap_notify(&f, ch);
        DL_FOREACH_SAFE(ch->members, m, mtmp) deliver_one(&f, m->s, 0);
    }
    HASH_ITER(hh, app->filters, ch, tmp) {
        bool match = false;
        if (mosquitto_topic_matches_sub(ch->name, f.channel, &match) == MOSQ_ERR_SUCCESS && match) {
            if (f.has_seq && pg_seq_check(gw, &ch->seqs, &f.in, f.channel))
                gap_notify(&f, ch);
            DL_FOREACH_SAFE(ch->members, m, mtmp) deliver_one(&f, m->s, 1);
        }
    }
    app->stats.delivered++;
    if (pg_log_enabled(PG_LOG_DEBUG))
        pg_log(PG_LOG_DEBUG, "fanout", "app=%s channel=%s bytes=%zu recipients=%zu encodings=%d", app->creds->id,
               f.channel, len, f.recipients, f.encodings);
    pg_msg_unref(f.native);
    pg_msg_unref(f.pusher);
    pg_msg_unref(f.sio[0]);
    pg_msg_unref(f.sio[1]);
    free(user_channel);
}
