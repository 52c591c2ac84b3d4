/*
 * The channel index: which local sessions listen to which channel.
 *
 * A channel (or wildcard filter) exists while it has local members; the
 * first member subscribes its topic at the broker (gw->channel_broker), the
 * last one leaving unsubscribes it, so a gateway receives only traffic
 * someone here wants. Delivering to the members is core/fanout.c's job.
 *
 * State: the channels and members of every app (app->channels,
 * app->filters, s->subs), this module's alone; the protocols join and leave
 * through it, the fan-out and the cluster's snapshot read it.
 */
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/seq.h"
#include "core/session.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

/*
 * Every session that subscribes gets its own table (s->subs), and uthash's first 32 buckets made 512 bytes of an
 * idle subscriber's 4 KB (bench/README.md, W3 memory). Tables made here (s->subs, app->channels, app->filters)
 * start with one bucket and double as they fill (uthash splits a bucket at 10 entries); lookups and deletes in
 * other files read the table's own bucket count.
 */
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 1U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 0U

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

char *pg_channel_of_user(const char *user)
{
    size_t n = strlen(PG_USER_CHANNEL_PREFIX) + strlen(user) + 1;
    char *name = malloc(n);
    if (name)
        snprintf(name, n, "%s%s", PG_USER_CHANNEL_PREFIX, user);
    return name;
}

char *pg_channel_topic(struct pg_gw *gw, const char *app, const char *name)
{
    size_t pl = strlen(PG_USER_CHANNEL_PREFIX);
    if (!strncmp(name, PG_USER_CHANNEL_PREFIX, pl))
        return pg_topic_new(gw->cfg->topic_root, PG_TOPIC_USER, app, name + pl, NULL);
    return pg_topic_new(gw->cfg->topic_root, PG_TOPIC_CHANNEL, app, name, NULL);
}

static struct pg_channel *channel_get(struct pg_session *s, const char *name, int wildcard)
{
    struct pg_app *app = s->app;
    struct pg_channel **table = wildcard ? &app->filters : &app->channels;
    struct pg_channel *ch;
    HASH_FIND_STR(*table, name, ch);
    if (ch)
        return ch;
    char *topic = pg_channel_topic(s->gw, app->creds->id, name);
    if (!topic)
        return NULL;
    /* one block: the struct, then its name and topic (a channel per idle subscriber is common: W3) */
    size_t nl = strlen(name) + 1, tl = strlen(topic) + 1;
    ch = calloc(1, sizeof *ch + nl + tl);
    if (!ch) {
        free(topic);
        return NULL;
    }
    ch->name = memcpy((char *)(ch + 1), name, nl);
    ch->topic = memcpy(ch->name + nl, topic, tl);
    free(topic);
    if (s->gw->channel_broker->subscribe(s->gw, ch->topic) != 0) {
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
    gw->channel_broker->unsubscribe(gw, ch->topic);
    pg_seq_table_free(&ch->seqs);
    free(ch); /* with its name and topic */
}

static void member_remove(struct pg_session *s, struct pg_member *m);

int pg_channel_join(struct pg_session *s, const char *name, pg_bridge_ack_cb cb, void *ud)
{
    struct pg_member *m;
    HASH_FIND_STR(s->subs, name, m);
    if (m)
        return s->gw->channel_broker->subscribe_wait(s->gw, m->ch->topic, cb, ud);
    if (s->nsubs >= (size_t)s->gw->cfg->max_subscriptions)
        return PG_ELIMIT;
    if (!s->gw->channel_broker->connected(s->gw))
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
    pg_gw_local_changed(s->gw);
    int rc = s->gw->channel_broker->subscribe_wait(s->gw, ch->topic, cb, ud);
    if (rc < 0)
        member_remove(s, m);
    return rc;
}

static void member_remove(struct pg_session *s, struct pg_member *m)
{
    struct pg_channel *ch = m->ch;
    if (s->proto->member_left)
        s->proto->member_left(m);
    HASH_DEL(s->subs, m);
    s->nsubs--;
    DL_DELETE(ch->members, m);
    ch->nmembers--;
    pg_gw_local_changed(s->gw);
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
