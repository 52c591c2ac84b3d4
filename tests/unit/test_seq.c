/* gateway/seq.c: sequence stamps on publish and gap detection on receipt. */
#include <string.h>

#include "check.h"
#include "config.h"
#include "core/gw.h"
#include "core/seq.h"

/* One received message: origin, seq, prev as a gateway stamps them. */
static int receive(struct pg_gw *gw, struct pg_seq **table, const char *origin, uint64_t seq, uint64_t prev,
                   const char *channel)
{
    struct pg_seq_in in = {origin, seq, prev};
    return pg_seq_check(gw, table, &in, channel);
}

int main(void)
{
    struct pg_config cfg;
    struct pg_gw gw;
    memset(&cfg, 0, sizeof cfg);
    memset(&gw, 0, sizeof gw);
    cfg.gap_tracking_max = 3;
    gw.cfg = &cfg;

    /* publisher: prev is the last seq given on the same topic, 0 for a topic never published */
    struct pg_seq_stamp a1, b1, a2;
    pg_seq_stamp(&gw, "t/a", &a1);
    pg_seq_published(&gw, "t/a", &a1);
    pg_seq_stamp(&gw, "t/b", &b1);
    pg_seq_published(&gw, "t/b", &b1);
    pg_seq_stamp(&gw, "t/a", &a2);
    CHECK(!strcmp(a1.prev, "0"), "first message on t/a: prev 0, got %s", a1.prev);
    CHECK_EQ(a2.n, 3, "one counter per origin");
    CHECK(!strcmp(a2.prev, "1"), "t/a's previous message was seq 1, got %s", a2.prev);
    /* a publish the bridge refused is not a previous message */
    struct pg_seq_stamp a3;
    pg_seq_stamp(&gw, "t/a", &a3);
    CHECK(!strcmp(a3.prev, "1"), "an unpublished stamp does not move prev, got %s", a3.prev);
    /* bounded: the least recently used topic is forgotten first */
    const char *topics[] = {"t/c", "t/d", "t/e"};
    for (int i = 0; i < 3; i++) {
        struct pg_seq_stamp st;
        pg_seq_stamp(&gw, topics[i], &st);
        pg_seq_published(&gw, topics[i], &st);
    }
    struct pg_seq_stamp again;
    pg_seq_stamp(&gw, "t/a", &again);
    CHECK(!strcmp(again.prev, "0"), "a forgotten topic says prev 0 (unknown), got %s", again.prev);
    pg_seq_free(&gw);

    /* receiver, exact channel: the first message is a baseline, a chain without holes is no gap */
    struct pg_seq *t = NULL;
    CHECK_EQ(receive(&gw, &t, "n1.x", 10, 7, NULL), 0, "first message seen: baseline");
    CHECK_EQ(receive(&gw, &t, "n1.x", 12, 10, NULL), 0, "prev is the last seen");
    CHECK_EQ(receive(&gw, &t, "n1.x", 13, 10, NULL), 0, "in flight with 12: prev below the last seen is no gap");
    CHECK_EQ(receive(&gw, &t, "n1.x", 15, 14, NULL), 1, "seq 14 never arrived: gap");
    CHECK_EQ(receive(&gw, &t, "n1.x", 15, 14, NULL), 0, "a repeat is neither new nor a gap");
    CHECK_EQ(receive(&gw, &t, "n1.x", 16, 0, NULL), 0, "prev 0: the publisher forgot, start over");
    CHECK_EQ(receive(&gw, &t, "n2.y", 3, 2, NULL), 0, "another origin has its own chain");
    CHECK_EQ(receive(&gw, &t, "n1.x", 20, 16, NULL), 0, "origins do not disturb each other");
    /* a refused publish (seq 21) never becomes a prev: the next one names the last acknowledged */
    CHECK_EQ(receive(&gw, &t, "n1.x", 22, 20, NULL), 0, "a refused seq in between is no gap");
    /* filters key by origin and channel */
    struct pg_seq *f = NULL;
    CHECK_EQ(receive(&gw, &f, "n1.x", 30, 0, "s/a"), 0, "baseline s/a");
    CHECK_EQ(receive(&gw, &f, "n1.x", 31, 0, "s/b"), 0, "baseline s/b");
    CHECK_EQ(receive(&gw, &f, "n1.x", 33, 30, "s/a"), 0, "s/a's chain is whole though s/b came between");
    CHECK_EQ(receive(&gw, &f, "n1.x", 35, 34, "s/b"), 1, "s/b missed 34");
    /* bounded, least recently used first: forgetting hides a gap, never invents one */
    receive(&gw, &f, "n3.z", 1, 0, "s/c");
    receive(&gw, &f, "n4.w", 1, 0, "s/d");
    CHECK_EQ(receive(&gw, &f, "n1.x", 40, 38, "s/a"), 0, "s/a was forgotten: a new baseline, no gap");
    pg_seq_table_free(&t);
    pg_seq_table_free(&f);
    CHECK(t == NULL && f == NULL, "tables emptied");

    /* parsing */
    struct pg_bridge_prop props[] = {{"event", "x"}, {"origin", "n1.x"}, {"seq", "5"}, {"prev", "4"}};
    struct pg_seq_in in;
    CHECK_EQ(pg_seq_parse(props, 4, &in), 1, "all three properties");
    CHECK(in.seq == 5 && in.prev == 4 && !strcmp(in.origin, "n1.x"), "values");
    struct pg_bridge_prop bad[] = {{"origin", "n1.x"}, {"seq", "5x"}, {"prev", "4"}};
    CHECK_EQ(pg_seq_parse(bad, 3, &in), 0, "a malformed seq is no sequence");
    CHECK_EQ(pg_seq_parse(props, 2, &in), 0, "without seq and prev");
    return check_report("test_seq");
}
