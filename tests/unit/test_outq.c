/* gateway/msg.c: shared message buffers and the bounded per-session out-queue. */
#include <string.h>

#include "check.h"
#include "core/msg.h"

int main(void)
{
    struct pg_outq a = {0}, b = {0};
    struct pg_msg *m = pg_msg_new("hello", 5);
    CHECK(m != NULL, "allocation");
    if (!m)
        return check_report("test_outq");
    CHECK(!memcmp(pg_msg_data(m), "hello", 5), "payload copied after LWS_PRE headroom");

    /* one encoding shared by two queues: references, not copies */
    CHECK_EQ(pg_outq_push(&a, m, 1024, 10), 0, "push to a");
    CHECK_EQ(pg_outq_push(&b, m, 1024, 10), 0, "push to b");
    CHECK_EQ(m->refs, 3, "creator + two queues hold references");
    CHECK(pg_outq_peek(&a) == m && pg_outq_peek(&b) == m, "both queues hold the same buffer");
    pg_outq_pop(&a);
    CHECK_EQ(m->refs, 2, "pop drops one reference");

    /* message-count limit */
    for (int i = 0; i < 9; i++)
        CHECK_EQ(pg_outq_push(&b, m, 1024, 10), 0, "push within limit");
    CHECK_EQ(b.count, 10, "ten queued");
    CHECK_EQ(pg_outq_push(&b, m, 1024, 10), PG_ELIMIT, "11th message over max_msgs");
    CHECK_EQ(b.count, 10, "a refused push leaves the queue as it was");

    /* byte limit */
    struct pg_outq c = {0};
    CHECK_EQ(pg_outq_push(&c, m, 12, 100), 0, "5 bytes of 12");
    CHECK_EQ(pg_outq_push(&c, m, 12, 100), 0, "10 bytes of 12");
    CHECK_EQ(pg_outq_push(&c, m, 12, 100), PG_ELIMIT, "15 bytes over 12");
    CHECK_EQ(c.bytes, 10, "byte count");

    /* a ring grown for a burst is freed once the queue drains; a small one is kept */
    struct pg_outq burst = {0};
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(pg_outq_push(&burst, m, 1 << 20, 1000), 0, "burst push");
    CHECK(burst.cap >= 1000, "the ring grew to hold the burst");
    for (int i = 0; i < 999; i++)
        pg_outq_pop(&burst);
    CHECK(burst.cap >= 1000 && burst.count == 1, "kept while a message waits");
    pg_outq_pop(&burst);
    CHECK(burst.cap == 0 && burst.ring == NULL && burst.bytes == 0, "freed once drained (cap %zu)", burst.cap);
    CHECK_EQ(pg_outq_push(&burst, m, 1 << 20, 1000), 0, "a push after the drain");
    CHECK(pg_outq_peek(&burst) == m && burst.cap <= PG_OUTQ_KEEP_SLOTS, "starts small again");
    for (int i = 1; i < PG_OUTQ_KEEP_SLOTS; i++)
        CHECK_EQ(pg_outq_push(&burst, m, 1 << 20, 1000), 0, "fill the kept size");
    while (burst.count)
        pg_outq_pop(&burst);
    CHECK(burst.cap == PG_OUTQ_KEEP_SLOTS && burst.ring != NULL, "a ring of the kept size stays (cap %zu)", burst.cap);
    pg_outq_clear(&burst);

    /* replies to the session's own requests: queued whatever the limits, and not counted against them */
    struct pg_outq r = {0};
    struct pg_msg *rep = pg_msg_new("reply", 5);
    CHECK(rep != NULL, "allocation");
    if (rep) {
        rep->reply = 1;
        for (int i = 0; i < 5; i++)
            CHECK_EQ(pg_outq_push(&r, rep, 12, 2), 0, "a reply is queued past the limits");
        CHECK_EQ(r.replies, 5, "counted as replies");
        CHECK_EQ(r.reply_bytes, 25, "reply bytes");
        CHECK_EQ(pg_outq_push(&r, m, 12, 2), 0, "fan-out still fits: replies do not count");
        CHECK_EQ(pg_outq_push(&r, m, 12, 2), 0, "second fan-out message");
        CHECK_EQ(pg_outq_push(&r, m, 12, 2), PG_ELIMIT, "third over max_msgs");
        pg_outq_pop(&r);
        CHECK_EQ(r.replies, 4, "a popped reply leaves the count");
        CHECK_EQ(r.reply_bytes, 20, "and the bytes");
        pg_outq_clear(&r);
        CHECK_EQ(r.replies, 0, "clear resets the reply count");
        CHECK_EQ(rep->refs, 1, "clear released the replies");
        pg_msg_unref(rep);
    }

    /* FIFO order across ring growth and wrap-around */
    struct pg_outq d = {0};
    struct pg_msg *ms[40];
    for (int i = 0; i < 40; i++) {
        char s[16];
        snprintf(s, sizeof s, "%d", i);
        ms[i] = pg_msg_new(s, strlen(s));
        if (i == 20)
            for (int k = 0; k < 15; k++)
                pg_outq_pop(&d);
        CHECK_EQ(pg_outq_push(&d, ms[i], 1 << 20, 1000), 0, "push");
    }
    int expect = 15;
    while (pg_outq_peek(&d)) {
        char s[16];
        snprintf(s, sizeof s, "%d", expect++);
        CHECK(!strcmp((char *)pg_msg_data(pg_outq_peek(&d)), s), "FIFO order: expected %s", s);
        pg_outq_pop(&d);
    }
    CHECK_EQ(expect, 40, "all messages came out");
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(ms[i]->refs, 1, "queue released its reference");
        pg_msg_unref(ms[i]);
    }

    json_t *o = json_pack("{s:s}", "type", "open");
    struct pg_msg *j = pg_msg_from_json(o);
    CHECK(j && !strcmp((char *)pg_msg_data(j), "{\"type\":\"open\"}"), "compact JSON encoding");
    json_decref(o);
    pg_msg_unref(j);

    pg_outq_clear(&a);
    pg_outq_clear(&b);
    pg_outq_clear(&c);
    pg_outq_clear(&d);
    CHECK_EQ(m->refs, 1, "clear released every reference");
    pg_msg_unref(m);
    return check_report("test_outq");
}
