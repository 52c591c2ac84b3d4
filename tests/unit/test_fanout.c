/*
 * The channel index (gateway/core/channels.c) and the one fan-out
 * (gateway/core/fanout.c) without a broker, a socket or an lws context.
 *
 * The gateway here is a struct pg_gw with a config, two apps in gw->apps and
 * sessions registered in gw->sessions (core/registry.c). The broker is a fake
 * struct pg_channel_broker (core/channels.h) that counts subscriptions by
 * topic and grants, refuses or defers SUBACKs as the test says. The sessions
 * speak two fake protocols (struct pg_proto, core/session.h): their encode
 * op writes "{proto}{slot}|{channel or #general}|{payload}" and counts the
 * encodings, their gap op queues "gap|{sub}|{channel}" (as native queues its
 * gap frame), wake and member_left count calls, may_read_app answers what the
 * session says. What reaches a session is read back from its out-queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <uthash.h>

#include "check.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/fanout.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/registry.h"
#include "core/seq.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

#define SECRET "fanout-test-secret-fanout-test-secret"
#define QUEUE_MESSAGES 64
#define QUEUE_BYTES 65536

static struct pg_config cfg;
static struct pg_gw gw;

/* ---- the fake broker ---------------------------------------------------------------- */

#define MAX_TOPICS 32
#define MAX_WAITERS 16

static struct {
    int connected;
    int refuse_subscribe; /* subscribe fails (the bridge out of memory, a bad filter) */
    int wait_rc;          /* subscribe_wait of a subscribed topic: 0 live now, 1 deferred, < 0 that error */
    int subscribes, unsubscribes;
    struct {
        char topic[128];
        int refs;
    } topics[MAX_TOPICS];
    struct {
        char topic[128];
        pg_bridge_ack_cb cb;
        void *ud;
    } waiters[MAX_WAITERS];
    int nwaiters;
} broker;

static int topic_index(const char *topic)
{
    for (int i = 0; i < MAX_TOPICS; i++)
        if (broker.topics[i].refs && !strcmp(broker.topics[i].topic, topic))
            return i;
    return -1;
}

/* References the channel index holds on topic at the broker. */
static int topic_refs(const char *topic)
{
    int i = topic_index(topic);
    return i < 0 ? 0 : broker.topics[i].refs;
}

static int fake_connected(struct pg_gw *g)
{
    (void)g;
    return broker.connected;
}

static int fake_subscribe(struct pg_gw *g, const char *topic)
{
    (void)g;
    if (broker.refuse_subscribe)
        return PG_ENOMEM;
    broker.subscribes++;
    int i = topic_index(topic);
    for (int k = 0; i < 0 && k < MAX_TOPICS; k++)
        if (!broker.topics[k].refs)
            i = k;
    if (i < 0)
        return PG_ENOMEM;
    snprintf(broker.topics[i].topic, sizeof broker.topics[i].topic, "%s", topic);
    broker.topics[i].refs++;
    return 0;
}

static int fake_subscribe_wait(struct pg_gw *g, const char *topic, pg_bridge_ack_cb cb, void *ud)
{
    (void)g;
    if (topic_index(topic) < 0)
        return PG_ENOTFOUND;
    if (broker.wait_rc != 1)
        return broker.wait_rc;
    if (broker.nwaiters == MAX_WAITERS)
        return PG_ENOMEM;
    snprintf(broker.waiters[broker.nwaiters].topic, sizeof broker.waiters[0].topic, "%s", topic);
    broker.waiters[broker.nwaiters].cb = cb;
    broker.waiters[broker.nwaiters].ud = ud;
    broker.nwaiters++;
    return 1;
}

/* The broker answers topic's SUBACK (or the bridge drops it): its waiters hear result, in order. */
static void broker_answer(const char *topic, int result)
{
    for (int i = 0; i < broker.nwaiters;) {
        if (strcmp(broker.waiters[i].topic, topic) != 0) {
            i++;
            continue;
        }
        pg_bridge_ack_cb cb = broker.waiters[i].cb;
        void *ud = broker.waiters[i].ud;
        memmove(&broker.waiters[i], &broker.waiters[i + 1], (size_t)(broker.nwaiters - i - 1) * sizeof broker.waiters[0]);
        broker.nwaiters--;
        cb(ud, result);
    }
}

static int fake_unsubscribe(struct pg_gw *g, const char *topic)
{
    (void)g;
    int i = topic_index(topic);
    if (i < 0)
        return PG_ENOTFOUND;
    broker.unsubscribes++;
    if (--broker.topics[i].refs == 0)
        broker_answer(topic, PG_EBUSY); /* as the bridge: waiters of a dropped filter hear PG_EBUSY */
    return 0;
}

static const struct pg_channel_broker fake_broker = {
    .connected = fake_connected,
    .subscribe = fake_subscribe,
    .subscribe_wait = fake_subscribe_wait,
    .unsubscribe = fake_unsubscribe,
};

/* ---- the fake protocols: a session sink that records ---------------------------------- */

struct tsess {
    struct pg_session s; /* first: the core sees &t->s */
    int slot;            /* the encoding it needs (protocol A has two) */
    int read_app;        /* may_read_app's answer */
    int wakes, gaps, member_lefts;
};

static struct tsess *ts(const struct pg_session *s)
{
    return (struct tsess *)(uintptr_t)s;
}

static int encodes[2][PG_PROTO_MAX_SLOTS]; /* per protocol (A, B) and slot */
static const struct pg_proto proto_a, proto_b;

static int proto_index(const struct pg_proto *p)
{
    return p == &proto_b ? 1 : 0;
}

static void fake_wake(struct pg_session *s)
{
    ts(s)->wakes++;
}

static int fake_slot(const struct pg_session *s)
{
    return ts(s)->slot;
}

/* "{A|B}{slot}|{channel}|{payload}"; a payload "unencodable" cannot be encoded (NULL). */
static struct pg_msg *fake_encode(const struct pg_session *s, const struct pg_event *ev)
{
    char buf[512];
    int pi = proto_index(s->proto), slot = s->proto->slot ? s->proto->slot(s) : 0;
    if (ev->len == 11 && !memcmp(ev->payload, "unencodable", 11))
        return NULL;
    encodes[pi][slot]++;
    int n = snprintf(buf, sizeof buf, "%c%d|%s|%.*s", pi ? 'B' : 'A', slot, ev->channel ? ev->channel : "#general",
                     (int)ev->len, (const char *)ev->payload);
    return pg_msg_new(buf, (size_t)n);
}

static int fake_may_read_app(const struct pg_session *s)
{
    return ts(s)->read_app;
}

static void fake_gap(struct pg_session *s, const char *sub, const char *channel)
{
    char buf[300];
    ts(s)->gaps++;
    int n = snprintf(buf, sizeof buf, "gap|%s|%s", sub ? sub : "null", channel ? channel : "null");
    struct pg_msg *m = pg_msg_new(buf, (size_t)n);
    if (m)
        pg_session_send(s, m);
    pg_msg_unref(m);
}

static void fake_member_left(struct pg_member *m)
{
    ts(m->s)->member_lefts++;
}

static const struct pg_proto proto_a = {
    .name = "fake-a",
    .wake = fake_wake,
    .nslots = 2,
    .slot = fake_slot,
    .encode = fake_encode,
    .may_read_app = fake_may_read_app,
    .gap = fake_gap,
    .member_left = fake_member_left,
};

static const struct pg_proto proto_b = {
    .name = "fake-b",
    .wake = fake_wake,
    .nslots = 1,
    .encode = fake_encode,
    .may_read_app = fake_may_read_app,
    .gap = fake_gap,
};

/* ---- the gateway around them -------------------------------------------------------- */

static struct pg_app_creds creds_demo, creds_other;
static struct pg_app demo, other;

static void app_init(struct pg_app *a, struct pg_app_creds *c, const char *id)
{
    char err[128];
    CHECK_EQ(pg_app_creds_init(c, id), 0, "app credentials");
    CHECK_EQ(pg_app_creds_set(c, "secret", SECRET, NULL, err, sizeof err), 0, "app secret");
    memset(a, 0, sizeof *a);
    a->id = c->id;
    a->creds = c;
    HASH_ADD_KEYPTR(hh, gw.apps, a->id, strlen(a->id), a);
}

static void gateway_init(void)
{
    pg_log_set_level(PG_LOG_ERROR); /* gaps and slow consumers log warnings: expected here */
    memset(&cfg, 0, sizeof cfg);
    cfg.topic_root = "pg";
    cfg.max_subscriptions = 4;
    cfg.max_queue_messages = QUEUE_MESSAGES;
    cfg.max_queue_bytes = QUEUE_BYTES;
    cfg.gap_tracking_max = 16;
    memset(&gw, 0, sizeof gw);
    gw.cfg = &cfg;
    gw.channel_broker = &fake_broker;
    app_init(&demo, &creds_demo, "demo");
    app_init(&other, &creds_other, "other");
    broker.connected = 1;
}

static void gateway_free(void)
{
    HASH_CLEAR(hh, gw.apps);
    pg_seq_table_free(&demo.broadcast_seqs);
    pg_app_creds_clear(&creds_demo);
    pg_app_creds_clear(&creds_other);
}

static struct tsess *open_session(const struct pg_proto *p, struct pg_app *app)
{
    struct tsess *t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    t->s.proto = p;
    t->s.app = app;
    t->read_app = 1;
    pg_session_register(&gw, &t->s, NULL);
    return t;
}

static void close_session(struct tsess *t)
{
    pg_session_release(&gw, &t->s);
    free(t);
}

static struct pg_channel *find_channel(struct pg_app *a, const char *name)
{
    struct pg_channel *ch;
    HASH_FIND_STR(pg_channel_is_filter(name) ? a->filters : a->channels, name, ch);
    return ch;
}

static struct pg_member *find_member(struct tsess *t, const char *name)
{
    struct pg_member *m;
    HASH_FIND_STR(t->s.subs, name, m);
    return m;
}

/* The acknowledgement a deferred join waits for. */
struct ack {
    int calls, result;
};

static void acked(void *ud, int result)
{
    struct ack *a = ud;
    a->calls++;
    a->result = result;
}

static int join(struct tsess *t, const char *name)
{
    static struct ack ignored;
    return pg_channel_join(&t->s, name, acked, &ignored);
}

/* The i-th frame queued on t ("" past the end). */
static const char *frame(const struct tsess *t, size_t i)
{
    const struct pg_outq *q = &t->s.q;
    return i < q->count ? (const char *)pg_msg_data(q->ring[(q->head + i) % q->cap]) : "";
}

static struct pg_msg *frame_msg(const struct tsess *t, size_t i)
{
    const struct pg_outq *q = &t->s.q;
    return i < q->count ? q->ring[(q->head + i) % q->cap] : NULL;
}

#define CHECK_FRAME(t, i, want)                                                                                        \
    CHECK(!strcmp(frame(t, i), want), "frame %d: expected \"%s\", got \"%s\"", (int)(i), want, frame(t, i))

static void publish(struct pg_app *a, const char *channel_name, const char *payload)
{
    pg_fanout_channel(&gw, a, channel_name, 0, payload, strlen(payload), NULL, 0);
}

static void publish_props(struct pg_app *a, const char *channel_name, const char *payload,
                          const struct pg_bridge_prop *props, size_t nprops)
{
    pg_fanout_channel(&gw, a, channel_name, 0, payload, strlen(payload), props, nprops);
}

static void reset_counts(struct tsess **all, size_t n)
{
    memset(encodes, 0, sizeof encodes);
    for (size_t i = 0; i < n; i++) {
        pg_outq_clear(&all[i]->s.q);
        all[i]->wakes = all[i]->gaps = 0;
    }
}

/* ---- the channel index ---------------------------------------------------------------- */

static void index_bookkeeping(void)
{
    struct tsess *a = open_session(&proto_a, &demo), *b = open_session(&proto_a, &demo);
    gw.local_dirty = 0;

    CHECK_EQ(join(a, "room"), 0, "join granted at once");
    struct pg_channel *ch = find_channel(&demo, "room");
    CHECK(ch && !ch->wildcard && ch->app == &demo && ch->nmembers == 1, "room is an exact channel with one member");
    CHECK(ch && !strcmp(ch->topic, "pg/demo/c/room"), "its topic: %s", ch ? ch->topic : "-");
    CHECK(find_member(a, "room") && find_member(a, "room")->ch == ch && find_member(a, "room")->s == &a->s, "a holds room");
    CHECK_EQ(a->s.nsubs, 1, "a: one subscription");
    CHECK_EQ(topic_refs("pg/demo/c/room"), 1, "the first member subscribes the topic");
    CHECK_EQ(gw.local_dirty, 1, "local channels changed");

    CHECK_EQ(join(b, "room"), 0, "second member");
    CHECK(find_channel(&demo, "room") == ch && ch->nmembers == 2, "one channel, two members");
    CHECK_EQ(broker.subscribes, 1, "the second member does not subscribe again");
    CHECK_EQ(join(a, "room"), 0, "a again: asks whether it is live");
    CHECK(a->s.nsubs == 1 && ch->nmembers == 2, "a joining twice holds it once");

    CHECK_EQ(join(a, "sensors/+"), 0, "a filter");
    struct pg_channel *f = find_channel(&demo, "sensors/+");
    CHECK(f && f->wildcard && !find_channel(&demo, "room/+"), "sensors/+ is a filter");
    CHECK_EQ(topic_refs("pg/demo/c/sensors/+"), 1, "a filter's topic is a broker filter");
    CHECK_EQ(join(a, "#server-to-user-42"), 0, "the per-user channel");
    CHECK_EQ(topic_refs("pg/demo/u/42"), 1, "the per-user channel's topic is u/");
    CHECK(pg_channel_is_filter("#") && pg_channel_is_filter("a/#") && pg_channel_is_filter("+/b"), "filters");
    CHECK(!pg_channel_is_filter("#server-to-user-1") && !pg_channel_is_filter("a+b") && !pg_channel_is_filter("a#/b"),
          "a wildcard is a whole level");
    CHECK_EQ(a->s.nsubs, 3, "a: three subscriptions");

    /* the same name in another app is another channel */
    struct tsess *o = open_session(&proto_a, &other);
    CHECK_EQ(join(o, "room"), 0, "other app");
    CHECK(find_channel(&other, "room") && find_channel(&other, "room") != ch, "channels are per app");
    CHECK_EQ(topic_refs("pg/other/c/room"), 1, "other's topic");

    pg_channel_leave(&a->s, "room");
    CHECK(!find_member(a, "room") && a->s.nsubs == 2 && ch->nmembers == 1, "a left room");
    CHECK_EQ(a->member_lefts, 1, "member_left told once");
    CHECK_EQ(topic_refs("pg/demo/c/room"), 1, "b still holds the topic");
    pg_channel_leave(&a->s, "room");
    CHECK_EQ(a->member_lefts, 1, "leaving what is not held does nothing");
    pg_channel_leave(&b->s, "room");
    CHECK(!find_channel(&demo, "room"), "the last member leaving frees the channel");
    CHECK_EQ(topic_refs("pg/demo/c/room"), 0, "and unsubscribes its topic");

    pg_channel_leave_all(&a->s);
    CHECK(a->s.nsubs == 0 && !a->s.subs, "leave_all: nothing held");
    CHECK(!find_channel(&demo, "sensors/+") && !demo.filters && !demo.channels, "every channel of demo freed");
    CHECK(topic_refs("pg/demo/c/sensors/+") == 0 && topic_refs("pg/demo/u/42") == 0, "and unsubscribed");
    CHECK_EQ(a->member_lefts, 3, "member_left for each");

    /* max_subscriptions */
    const char *names[] = {"c1", "c2", "c3", "c4"};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(join(a, names[i]), 0, "within max_subscriptions");
    CHECK_EQ(join(a, "c5"), PG_ELIMIT, "over max_subscriptions");
    CHECK(!find_member(a, "c5") && !find_channel(&demo, "c5") && a->s.nsubs == 4, "nothing joined over the limit");
    CHECK_EQ(join(a, "c1"), 0, "a channel already held is no new subscription");

    /* pg_session_release leaves every channel */
    close_session(a);
    CHECK(!demo.channels && topic_refs("pg/demo/c/c1") == 0, "a released session holds nothing");
    close_session(b);
    close_session(o);
    CHECK(!other.channels && gw.nsessions == 0 && !gw.sessions, "every session gone");
    CHECK_EQ(broker.subscribes, broker.unsubscribes, "every subscription undone");
}

static void index_broker(void)
{
    struct tsess *a = open_session(&proto_b, &demo), *b = open_session(&proto_b, &demo);
    struct ack ack_a = {0}, ack_b = {0};

    broker.connected = 0;
    CHECK_EQ(pg_channel_join(&a->s, "room", acked, &ack_a), PG_EBUSY, "broker unavailable");
    CHECK(!find_channel(&demo, "room") && !a->s.nsubs && !topic_refs("pg/demo/c/room"), "nothing joined");
    broker.connected = 1;

    broker.refuse_subscribe = 1;
    CHECK_EQ(pg_channel_join(&a->s, "room", acked, &ack_a), PG_ENOMEM, "the broker cannot subscribe");
    CHECK(!find_channel(&demo, "room") && !a->s.nsubs, "nothing joined");
    broker.refuse_subscribe = 0;

    /* a deferred SUBACK: granted */
    broker.wait_rc = 1;
    CHECK_EQ(pg_channel_join(&a->s, "room", acked, &ack_a), 1, "SUBACK pending");
    CHECK(find_member(a, "room") && find_channel(&demo, "room")->nmembers == 1, "a member while it waits");
    CHECK_EQ(ack_a.calls, 0, "not answered yet");
    CHECK_EQ(pg_channel_join(&b->s, "room", acked, &ack_b), 1, "a second waiter");
    broker_answer("pg/demo/c/room", 0);
    CHECK(ack_a.calls == 1 && ack_a.result == 0 && ack_b.calls == 1 && ack_b.result == 0, "both granted");

    /* refused: the caller leaves (the protocols do so in their callback) */
    CHECK_EQ(pg_channel_join(&a->s, "denied", acked, &ack_a), 1, "SUBACK pending");
    broker_answer("pg/demo/c/denied", PG_EDENIED);
    CHECK(ack_a.calls == 2 && ack_a.result == PG_EDENIED, "refused");
    pg_channel_leave(&a->s, "denied");
    CHECK(!find_channel(&demo, "denied") && !topic_refs("pg/demo/c/denied"), "left after the refusal");

    /* the last member leaves while the SUBACK is pending: the waiter hears PG_EBUSY */
    CHECK_EQ(pg_channel_join(&a->s, "brief", acked, &ack_a), 1, "SUBACK pending");
    pg_channel_leave(&a->s, "brief");
    CHECK(ack_a.calls == 3 && ack_a.result == PG_EBUSY, "dropped filter: PG_EBUSY");

    /* subscribe_wait fails: the join is undone */
    broker.wait_rc = PG_ENOMEM;
    CHECK_EQ(pg_channel_join(&a->s, "failing", acked, &ack_a), PG_ENOMEM, "the wait cannot be set up");
    CHECK(!find_member(a, "failing") && !find_channel(&demo, "failing") && !topic_refs("pg/demo/c/failing"), "undone");
    CHECK_EQ(a->s.nsubs, 1, "room only");
    broker.wait_rc = 0;

    close_session(a);
    close_session(b);
    CHECK(!demo.channels && broker.nwaiters == 0, "clean");
}

/* ---- the fan-out ---------------------------------------------------------------------- */

static void fanout_channels(void)
{
    struct tsess *a0 = open_session(&proto_a, &demo), *a0b = open_session(&proto_a, &demo);
    struct tsess *a1 = open_session(&proto_a, &demo), *b = open_session(&proto_b, &demo);
    struct tsess *wild = open_session(&proto_b, &demo), *both = open_session(&proto_b, &demo);
    struct tsess *o = open_session(&proto_b, &other);
    struct tsess *all[] = {a0, a0b, a1, b, wild, both, o};
    size_t nall = sizeof all / sizeof all[0];
    a1->slot = 1;
    CHECK(join(a0, "room") == 0 && join(a0b, "room") == 0 && join(a1, "room") == 0 && join(b, "room") == 0,
          "four on room");
    CHECK_EQ(join(wild, "sensors/+"), 0, "wild on sensors/+");
    CHECK(join(both, "room") == 0 && join(both, "#") == 0 && join(both, "sensors/#") == 0, "both: room, #, sensors/#");
    CHECK_EQ(join(o, "room"), 0, "other app's room");

    /* one encoding per protocol slot, the same frame on every queue of that slot */
    uint64_t delivered = demo.stats.delivered;
    publish(&demo, "room", "hello");
    CHECK_FRAME(a0, 0, "A0|room|hello");
    CHECK_FRAME(a0b, 0, "A0|room|hello");
    CHECK_FRAME(a1, 0, "A1|room|hello");
    CHECK_FRAME(b, 0, "B0|room|hello");
    CHECK_FRAME(both, 0, "B0|room|hello");
    CHECK(both->s.q.count == 1, "room, # and sensors/#: once (got %zu)", both->s.q.count);
    CHECK(wild->s.q.count == 0 && o->s.q.count == 0, "sensors/+ and the other app: nothing");
    CHECK(encodes[0][0] == 1 && encodes[0][1] == 1 && encodes[1][0] == 1, "three encodings for five recipients");
    CHECK(frame_msg(a0, 0) == frame_msg(a0b, 0) && frame_msg(b, 0) == frame_msg(both, 0), "frames shared");
    CHECK_EQ(frame_msg(a0, 0)->refs, 2, "held by the two queues only");
    CHECK_EQ(frame_msg(b, 0)->refs, 2, "B's frame too");
    CHECK_EQ(demo.stats.delivered, delivered + 1, "delivered counts messages, not recipients");
    CHECK(a0->wakes == 1 && b->wakes == 1 && wild->wakes == 0, "recipients woken once");
    reset_counts(all, nall);

    /* wildcards: whole levels, MQTT semantics */
    publish(&demo, "sensors/kitchen", "21");
    CHECK_FRAME(wild, 0, "B0|sensors/kitchen|21");
    CHECK_FRAME(both, 0, "B0|sensors/kitchen|21");
    CHECK(both->s.q.count == 1 && a0->s.q.count == 0, "# and sensors/# give one frame; room nothing");
    CHECK_EQ(encodes[1][0], 1, "one encoding");
    reset_counts(all, nall);
    publish(&demo, "sensors/kitchen/fridge", "4");
    CHECK(wild->s.q.count == 0 && both->s.q.count == 1, "+ is one level, # any number");
    reset_counts(all, nall);
    publish(&demo, "sensors", "x");
    CHECK(wild->s.q.count == 0 && both->s.q.count == 1, "sensors/# matches its parent level too");
    reset_counts(all, nall);
    publish(&demo, "nobody", "x");
    CHECK(both->s.q.count == 1 && encodes[0][0] == 0, "# alone");
    reset_counts(all, nall);

    /* the sender does not receive its own message (socket_id) */
    snprintf(a0->s.socket_id, sizeof a0->s.socket_id, "1.2");
    snprintf(b->s.socket_id, sizeof b->s.socket_id, "3.4");
    struct pg_bridge_prop sender[] = {{"event", "client-x"}, {"socket_id", "1.2"}};
    publish_props(&demo, "room", "hi", sender, 2);
    CHECK(a0->s.q.count == 0 && a0->wakes == 0, "the sender's session skipped");
    CHECK(a0b->s.q.count == 1 && b->s.q.count == 1 && both->s.q.count == 1, "the others get it");
    reset_counts(all, nall);

    /* a frame that cannot be encoded reaches nobody of that protocol */
    publish(&demo, "room", "unencodable");
    CHECK(a0->s.q.count == 0 && b->s.q.count == 0 && a0->wakes == 0, "nothing queued");
    reset_counts(all, nall);

    /* per-user messages: {root}/{app}/u/{id} reach #server-to-user-{id} */
    CHECK_EQ(join(b, "#server-to-user-42"), 0, "b listens for user 42");
    pg_fanout_channel(&gw, &demo, "42", 1, "dm", 2, NULL, 0);
    CHECK_FRAME(b, 0, "B0|#server-to-user-42|dm");
    CHECK(b->s.q.count == 1 && a0->s.q.count == 0, "only the user's channel");
    CHECK_EQ(both->s.q.count, 0, "# never matches a per-user channel (its name is no MQTT topic level)");
    reset_counts(all, nall);

    /* closed sessions are skipped, and cost no encoding */
    pg_session_close(&a1->s, 1000, "bye");
    CHECK(a1->s.close_code == 1000 && !strcmp(a1->s.close_reason, "bye") && a1->wakes == 1, "close wakes it");
    publish(&demo, "room", "later");
    CHECK(a1->s.q.count == 0, "a closed session gets nothing");
    CHECK(encodes[0][1] == 0 && encodes[0][0] == 1, "no encoding for a closed session's slot");
    reset_counts(all, nall);

    for (size_t i = 0; i < nall; i++)
        close_session(all[i]);
    CHECK(!demo.channels && !demo.filters && !other.channels, "index empty");
}

/* The JWT of a session of demo whose permissions are perms (JSON), valid for an hour. */
static pg_token *token(const char *perms)
{
    char claims[512], err[128];
    jwt_t *j = NULL;
    char *jws = NULL;
    pg_token *tok = NULL;
    snprintf(claims, sizeof claims, "{\"channel\":\"demo\",\"exp\":%lld,\"permissions\":%s}",
             (long long)time(NULL) + 3600, perms);
    if (jwt_new(&j) == 0 && jwt_add_grants_json(j, claims) == 0 &&
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)) == 0)
        jws = jwt_encode_str(j);
    jwt_free(j);
    int rc = jws ? pg_token_verify(jws, strlen(jws), &creds_demo, &pg_auth_limits_default, pg_now_ms(), &tok, err,
                                   sizeof err)
                 : PG_ENOMEM;
    CHECK(rc == 0 && tok, "token for %s: %d %s", perms, rc, err);
    free(jws);
    return tok;
}

static void fanout_protected(void)
{
    struct tsess *anon = open_session(&proto_b, &demo), *tok = open_session(&proto_b, &demo);
    struct tsess *exact = open_session(&proto_b, &demo);
    struct tsess *all[] = {anon, tok, exact};
    tok->s.token = token("{\"^private-a$\":{\"subscribe\":true},\"^[a-z]+$\":{\"subscribe\":true}}");
    CHECK(join(anon, "#") == 0 && join(tok, "#") == 0, "# without and with a token");
    CHECK_EQ(join(exact, "private-b"), 0, "an exact subscription (its credential checked by its protocol)");

    publish(&demo, "private-a", "secret");
    CHECK_EQ(anon->s.q.count, 0, "# without a token does not read private-");
    CHECK_FRAME(tok, 0, "B0|private-a|secret");
    CHECK_EQ(exact->s.q.count, 0, "not its channel");
    reset_counts(all, 3);

    publish(&demo, "private-b", "secret");
    CHECK_EQ(anon->s.q.count, 0, "private-b: not without a token");
    CHECK_EQ(tok->s.q.count, 0, "private-b: not with a token that does not grant it");
    CHECK_FRAME(exact, 0, "B0|private-b|secret");
    reset_counts(all, 3);

    publish(&demo, "presence-a", "who");
    CHECK_EQ(anon->s.q.count, 0, "nor presence- without a token");
    reset_counts(all, 3);

    publish(&demo, "public", "hi");
    CHECK(anon->s.q.count == 1 && tok->s.q.count == 1, "a public channel: both");
    reset_counts(all, 3);
    publish(&demo, "Public", "hi");
    CHECK(anon->s.q.count == 1 && tok->s.q.count == 0, "a token reads through # only what it grants");
    reset_counts(all, 3);

    for (size_t i = 0; i < 3; i++)
        close_session(all[i]);
}

static void fanout_broadcast(void)
{
    struct tsess *a = open_session(&proto_a, &demo), *a1 = open_session(&proto_a, &demo);
    struct tsess *b = open_session(&proto_b, &demo), *locked = open_session(&proto_b, &demo);
    struct tsess *closed = open_session(&proto_b, &demo), *o = open_session(&proto_b, &other);
    struct tsess *all[] = {a, a1, b, locked, closed, o};
    size_t nall = sizeof all / sizeof all[0];
    a1->slot = 1;
    locked->read_app = 0;
    pg_session_close(&closed->s, 1000, "bye");
    uint64_t delivered = demo.stats.delivered;
    struct pg_bridge_prop ev[] = {{"event", "notice"}};
    pg_fanout_broadcast(&gw, &demo, "all", 3, ev, 1);
    CHECK_FRAME(a, 0, "A0|#general|all");
    CHECK_FRAME(a1, 0, "A1|#general|all");
    CHECK_FRAME(b, 0, "B0|#general|all");
    CHECK_EQ(locked->s.q.count, 0, "may_read_app 0: nothing");
    CHECK_EQ(closed->s.q.count, 0, "closed: nothing");
    CHECK_EQ(o->s.q.count, 0, "another app's session: nothing");
    CHECK(encodes[0][0] == 1 && encodes[0][1] == 1 && encodes[1][0] == 1, "one encoding per slot");
    CHECK_EQ(demo.stats.delivered, delivered + 1, "counted once");
    reset_counts(all, nall);

    /* a gap in app-wide messages: every reader hears of it first */
    struct pg_bridge_prop p1[] = {{"origin", "n1.x"}, {"seq", "10"}, {"prev", "8"}};
    struct pg_bridge_prop p2[] = {{"origin", "n1.x"}, {"seq", "13"}, {"prev", "12"}};
    pg_fanout_broadcast(&gw, &demo, "one", 3, p1, 3);
    CHECK(a->gaps == 0 && a->s.q.count == 1, "the first message is a baseline");
    reset_counts(all, nall);
    uint64_t gaps = demo.stats.gaps, signals = demo.stats.gap_signals;
    pg_fanout_broadcast(&gw, &demo, "two", 3, p2, 3);
    CHECK_FRAME(a, 0, "gap|#general|#general");
    CHECK_FRAME(a, 1, "A0|#general|two");
    CHECK_FRAME(b, 0, "gap|#general|#general");
    CHECK_FRAME(b, 1, "B0|#general|two");
    CHECK(locked->gaps == 0 && closed->gaps == 0 && o->gaps == 0, "only readers are told");
    CHECK_EQ(demo.stats.gaps, gaps + 1, "one gap");
    CHECK_EQ(demo.stats.gap_signals, signals + 3, "three sessions told");
    reset_counts(all, nall);

    for (size_t i = 0; i < nall; i++)
        close_session(all[i]);
}

static void fanout_gaps(void)
{
    struct tsess *room = open_session(&proto_a, &demo), *wild = open_session(&proto_b, &demo);
    struct tsess *both = open_session(&proto_b, &demo), *lost = open_session(&proto_b, &demo);
    struct tsess *all[] = {room, wild, both, lost};
    CHECK(join(room, "room") == 0 && join(wild, "+") == 0 && join(both, "room") == 0 && join(both, "#") == 0,
          "room, +, room and #");
    CHECK_EQ(join(lost, "room"), 0, "lost on room");

    struct pg_bridge_prop first[] = {{"origin", "n1.x"}, {"seq", "5"}, {"prev", "3"}};
    struct pg_bridge_prop next[] = {{"origin", "n1.x"}, {"seq", "6"}, {"prev", "5"}};
    struct pg_bridge_prop after_loss[] = {{"origin", "n1.x"}, {"seq", "9"}, {"prev", "8"}};
    struct pg_bridge_prop other_origin[] = {{"origin", "n2.y"}, {"seq", "100"}, {"prev", "99"}};
    struct pg_bridge_prop malformed[] = {{"origin", "n1.x"}, {"seq", "x"}, {"prev", "99"}};
    publish_props(&demo, "room", "m5", first, 3);
    publish_props(&demo, "room", "m6", next, 3);
    CHECK(room->gaps == 0 && wild->gaps == 0 && both->gaps == 0, "a chain without holes: no gap");
    CHECK_EQ(room->s.q.count, 2, "both delivered");
    reset_counts(all, 4);

    uint64_t gaps = demo.stats.gaps;
    lost->s.lost = 3;
    publish_props(&demo, "room", "m9", after_loss, 3);
    CHECK_FRAME(room, 0, "gap|room|room");
    CHECK_FRAME(room, 1, "A0|room|m9");
    CHECK_FRAME(wild, 0, "gap|+|room");
    CHECK_FRAME(wild, 1, "B0|room|m9");
    CHECK_EQ(both->gaps, 1, "a session reached through two subscriptions is told once");
    CHECK_FRAME(both, 0, "gap|room|room");
    CHECK_FRAME(both, 1, "B0|room|m9");
    CHECK_EQ(both->s.q.count, 2, "and gets the message once");
    CHECK_EQ(lost->s.lost, 0, "the signal covers what it lost before");
    CHECK_EQ(demo.stats.gaps, gaps + 3, "seen in room, + and #: each its own table");
    reset_counts(all, 4);

    publish_props(&demo, "room", "m9", after_loss, 3);
    CHECK(room->gaps == 0 && room->s.q.count == 1, "a redelivery: no gap");
    reset_counts(all, 4);
    publish_props(&demo, "room", "n2", other_origin, 3);
    CHECK(room->gaps == 0, "another origin starts its own chain");
    reset_counts(all, 4);
    publish_props(&demo, "room", "bad", malformed, 3);
    CHECK(room->gaps == 0 && room->s.q.count == 1, "unreadable seq: delivered, no gap");
    reset_counts(all, 4);

    /* a closed session is not told */
    pg_session_close(&room->s, 1000, "bye");
    struct pg_bridge_prop later[] = {{"origin", "n1.x"}, {"seq", "20"}, {"prev", "19"}};
    publish_props(&demo, "room", "m20", later, 3);
    CHECK(room->gaps == 0 && room->s.q.count == 0, "closed: neither gap nor message");
    CHECK_EQ(wild->gaps, 1, "the others are");
    reset_counts(all, 4);

    for (size_t i = 0; i < 4; i++)
        close_session(all[i]);
}

static void fanout_queue_limits(void)
{
    struct tsess *slow = open_session(&proto_b, &demo), *fast = open_session(&proto_b, &demo);
    CHECK(join(slow, "room") == 0 && join(fast, "room") == 0, "two on room");
    cfg.max_queue_messages = 4;
    uint64_t slow_closes = demo.stats.slow_closes;
    for (int i = 0; i < 4; i++) {
        publish(&demo, "room", "x");
        pg_outq_clear(&fast->s.q); /* fast drains */
    }
    CHECK(slow->s.q.count == 4 && !slow->s.close_code, "up to max_queue_messages queued");
    publish(&demo, "room", "x");
    CHECK_EQ(slow->s.close_code, 1013, "over max_queue_messages: closed 1013");
    CHECK(!strcmp(slow->s.close_reason, "slow consumer: out-queue limit reached, reconnect later"), "reason: %s",
          slow->s.close_reason);
    CHECK_EQ(slow->s.q.count, 0, "its queue dropped: nothing more is written to it");
    CHECK_EQ(demo.stats.slow_closes, slow_closes + 1, "counted");
    CHECK(!fast->s.close_code && fast->s.q.count == 1, "a reader that drains is not affected");
    int wakes = slow->wakes;
    publish(&demo, "room", "x");
    CHECK(slow->s.q.count == 0 && slow->wakes == wakes, "closed: skipped from then on");
    cfg.max_queue_messages = QUEUE_MESSAGES;
    close_session(slow);
    close_session(fast);

    /* the byte limit: "B0|room|" is 8 bytes of every frame */
    struct tsess *big = open_session(&proto_b, &demo);
    CHECK_EQ(join(big, "room"), 0, "big on room");
    cfg.max_queue_bytes = 40;
    publish(&demo, "room", "0123456789"); /* 18 bytes */
    publish(&demo, "room", "0123456789"); /* 36 */
    CHECK(big->s.q.count == 2 && !big->s.close_code, "within max_queue_bytes");
    publish(&demo, "room", "0123");        /* 48 > 40 */
    CHECK_EQ(big->s.close_code, 1013, "over max_queue_bytes: closed 1013");
    CHECK_EQ(demo.stats.slow_closes, slow_closes + 2, "counted");
    cfg.max_queue_bytes = QUEUE_BYTES;
    close_session(big);
}

/*
 * The load tick (core/publish.c) visits only gw->loaded: sessions join it when output is queued for them and leave
 * it at the tick that finds them empty with no gap owed, or at their release. Its sums and decisions are those of
 * every session's queue.
 */
static void load_tick(void)
{
    cfg.slow_consumer_ms = 10000;
    cfg.max_pending_bytes = 1 << 20;
    cfg.publish_timeout_ms = 10000;
    cfg.broker_keepalive_s = 30;
    struct tsess *a = open_session(&proto_a, &demo), *b = open_session(&proto_b, &demo);
    struct tsess *idle = open_session(&proto_b, &demo);
    CHECK(join(a, "room") == 0 && join(b, "room") == 0 && join(idle, "quiet") == 0, "a, b on room; idle elsewhere");
    pg_publish_load_tick(&gw);
    CHECK_EQ(gw.loaded.count, 0, "nothing queued: no session to visit");
    CHECK(gw.pending_bytes == 0 && gw.pending_msgs == 0 && !gw.behind, "nothing pending");

    publish(&demo, "room", "x"); /* "A0|room|x", "B0|room|x": 9 bytes each */
    publish(&demo, "room", "y");
    CHECK_EQ(gw.loaded.count, 2, "the two with output are on the list, the idle one is not");
    pg_publish_load_tick(&gw);
    CHECK_EQ(gw.pending_msgs, 4, "two messages queued on each");
    CHECK_EQ(gw.pending_bytes, 36, "their bytes");
    CHECK(!gw.behind, "far from any limit");

    pg_outq_clear(&a->s.q); /* a drains */
    pg_publish_load_tick(&gw);
    CHECK_EQ(gw.loaded.count, 1, "a drained: it left the list");
    CHECK(gw.pending_msgs == 2 && gw.pending_bytes == 18, "only b's output is pending");

    /* two of three sessions more than half full, the third reads and has nothing queued: under half on average */
    for (int i = 0; i < QUEUE_MESSAGES / 2; i++)
        publish(&demo, "room", "z");
    pg_publish_load_tick(&gw);
    CHECK(!gw.behind, "the average counts the sessions with nothing queued: not behind");
    /* every session more than half full while its socket drains: the gateway is behind */
    pg_outq_clear(&a->s.q);
    pg_outq_clear(&b->s.q);
    CHECK(join(idle, "room") == 0, "idle joins room");
    for (int i = 0; i <= QUEUE_MESSAGES / 2; i++)
        publish(&demo, "room", "z");
    pg_publish_load_tick(&gw);
    CHECK(gw.behind != NULL, "out-queues half full: publishes refused");
    b->s.lost = 2; /* as pg_session_send counts messages it could not queue */
    pg_outq_clear(&a->s.q);
    pg_outq_clear(&b->s.q);
    pg_outq_clear(&idle->s.q);
    pg_publish_load_tick(&gw);
    CHECK(!gw.behind && gw.pending_msgs == 0, "drained: caught up");
    CHECK_EQ(b->gaps, 1, "the session that lost messages is told once it has room");
    CHECK_EQ(b->s.lost, 0, "and owes nothing more");
    CHECK_EQ(gw.loaded.count, 1, "its gap frame keeps it on the list; a and idle are gone");
    pg_outq_clear(&b->s.q);
    pg_publish_load_tick(&gw);
    CHECK_EQ(gw.loaded.count, 0, "nothing queued, nothing owed: the list is empty");

    publish(&demo, "room", "w");
    CHECK_EQ(gw.loaded.count, 3, "output again: all three back on the list");
    close_session(a);
    CHECK_EQ(gw.loaded.count, 2, "a released session leaves the list with its queue");
    close_session(b);
    close_session(idle);
    CHECK_EQ(gw.loaded.count, 0, "all released");
    pg_publish_load_tick(&gw);
    CHECK(gw.pending_msgs == 0 && !gw.behind, "nothing left");
}

/*
 * behind_queue_messages: the load rules count a queue of that length as full, while a session may hold up to
 * max_queue_messages before it loses anything. So the gateway says it is behind when its readers' queues hold half
 * of behind_queue_messages on average, and a reader far behind the others keeps all it is sent up to the limit.
 */
static void load_behind_level(void)
{
    cfg.behind_queue_messages = QUEUE_MESSAGES / 4; /* 16: behind at an average over 8 */
    struct tsess *a = open_session(&proto_a, &demo), *b = open_session(&proto_b, &demo);
    CHECK(join(a, "room") == 0 && join(b, "room") == 0, "a, b on room");
    for (int i = 0; i < QUEUE_MESSAGES / 8; i++)
        publish(&demo, "room", "x");
    pg_publish_load_tick(&gw);
    CHECK(!gw.behind, "%d queued on each: half of behind_queue_messages, not more", QUEUE_MESSAGES / 8);
    publish(&demo, "room", "x");
    pg_publish_load_tick(&gw);
    CHECK(gw.behind != NULL, "over half of behind_queue_messages on average: publishes refused");
    pg_outq_clear(&a->s.q); /* a catches up, b stays behind */
    pg_publish_load_tick(&gw);
    CHECK(!gw.behind, "one reader behind alone: caught up");
    for (int i = QUEUE_MESSAGES / 8 + 1; i < QUEUE_MESSAGES; i++) {
        publish(&demo, "room", "x");
        pg_outq_clear(&a->s.q);
    }
    CHECK(b->s.q.count == QUEUE_MESSAGES && !b->s.close_code && !b->s.lost,
          "b holds max_queue_messages (%d), four times behind_queue_messages, and lost nothing", QUEUE_MESSAGES);
    publish(&demo, "room", "x");
    CHECK_EQ(b->s.close_code, 1013, "past max_queue_messages: the slow-consumer rules apply");
    cfg.behind_queue_messages = 0; /* 0: max_queue_messages, as in the other tests here */
    close_session(a);
    close_session(b);
    pg_publish_load_tick(&gw);
    CHECK(gw.pending_msgs == 0 && !gw.behind, "nothing left");
}

int main(void)
{
    gateway_init();
    index_bookkeeping();
    index_broker();
    fanout_channels();
    fanout_protected();
    fanout_broadcast();
    fanout_gaps();
    fanout_queue_limits();
    load_tick();
    load_behind_level();
    CHECK(!gw.sessions && !demo.channels && !demo.filters && broker.subscribes == broker.unsubscribes,
          "everything undone");
    gateway_free();
    return check_report("test_fanout");
}
