/*
 * common/topic.c: the pushgate topic scheme. Every kind is built and parsed back (round trip), every subscription
 * filter is checked (and fits in PG_TOPIC_FILTER_MAX), and malformed topics, wrong parts and short buffers are
 * refused without writing past the buffer. With README.md's path as its argument, the README's "MQTT topics" table is
 * read row by row: every row is one kind, built byte for byte by this module, and every kind has its row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pg_common.h"
#include "pg_topic.h"

#define ROOT "pushgate"

/* part equals the string want (NULL: the part is absent) */
static int part_eq(const struct pg_topic_part *part, const char *want)
{
    if (!want)
        return part->s == NULL && part->len == 0;
    return pg_topic_part_is(part, want);
}

static void expect_parse(const char *topic, enum pg_topic_kind kind, const char *app, const char *node,
                         const char *name)
{
    struct pg_topic_ref ref;
    enum pg_topic_kind got = pg_topic_parse(ROOT, topic, &ref);

    CHECK(got == kind && ref.kind == kind, "%s: kind %s, expected %s", topic, pg_topic_kind_name(got),
          pg_topic_kind_name(kind));
    CHECK(part_eq(&ref.app, app), "%s: app %.*s, expected %s", topic, (int)ref.app.len, ref.app.s ? ref.app.s : "",
          app ? app : "(none)");
    CHECK(part_eq(&ref.node, node), "%s: node %.*s, expected %s", topic, (int)ref.node.len,
          ref.node.s ? ref.node.s : "", node ? node : "(none)");
    CHECK(part_eq(&ref.name, name), "%s: name %.*s, expected %s", topic, (int)ref.name.len,
          ref.name.s ? ref.name.s : "", name ? name : "(none)");
    /* the name ends the topic: usable as a C string */
    if (ref.name.s)
        CHECK(ref.name.s[ref.name.len] == '\0', "%s: name is not the end of the topic", topic);
}

static void expect_none(const char *topic)
{
    expect_parse(topic, PG_TOPIC_NONE, NULL, NULL, NULL);
}

/* Builds kind from (app, a, b), expects `want`, and parses it back to the same parts. */
static void round_trip(enum pg_topic_kind kind, const char *app, const char *a, const char *b, const char *want,
                       const char *p_app, const char *p_node, const char *p_name)
{
    char buf[256];
    int n = pg_topic_build(buf, sizeof buf, ROOT, kind, app, a, b);

    CHECK(n == (int)strlen(want) && !strcmp(buf, want), "build %s: got %d \"%s\", expected \"%s\"",
          pg_topic_kind_name(kind), n, buf, want);
    CHECK_EQ(pg_topic_build(NULL, 0, ROOT, kind, app, a, b), strlen(want), "measured length");
    expect_parse(buf, kind, p_app, p_node, p_name);
}

static void test_round_trips(void)
{
    round_trip(PG_TOPIC_CHANNEL, "demo", "news", NULL, "pushgate/demo/c/news", "demo", NULL, "news");
    round_trip(PG_TOPIC_CHANNEL, "demo", "a/b/c", NULL, "pushgate/demo/c/a/b/c", "demo", NULL, "a/b/c");
    round_trip(PG_TOPIC_CHANNEL, "demo", "private-x", NULL, "pushgate/demo/c/private-x", "demo", NULL, "private-x");
    round_trip(PG_TOPIC_USER, "demo", "42", NULL, "pushgate/demo/u/42", "demo", NULL, "42");
    round_trip(PG_TOPIC_BROADCAST, "demo", NULL, NULL, "pushgate/demo/b", "demo", NULL, NULL);
    round_trip(PG_TOPIC_PRESENCE, "demo", "node-1", "presence-room", "pushgate/demo/p/node-1/presence-room", "demo",
               "node-1", "presence-room");
    round_trip(PG_TOPIC_PRESENCE, "demo", "n", "presence-a/b", "pushgate/demo/p/n/presence-a/b", "demo", "n",
               "presence-a/b");
    round_trip(PG_TOPIC_DEVICE, "demo", "sensor-7", NULL, "pushgate/demo/d/sensor-7", "demo", NULL, "sensor-7");
    round_trip(PG_TOPIC_NODE, NULL, "node-1", NULL, "pushgate/_node/node-1", NULL, "node-1", NULL);
    round_trip(PG_TOPIC_LOAD, NULL, "node-1", NULL, "pushgate/_node/node-1/load", NULL, "node-1", NULL);
    round_trip(PG_TOPIC_TERMINATE, "demo", "u1", NULL, "pushgate/_ctl/demo/terminate/u1", "demo", NULL, "u1");
    round_trip(PG_TOPIC_REVOKE, "demo", NULL, NULL, "pushgate/_ctl/demo/revoke", "demo", NULL, NULL);
    round_trip(PG_TOPIC_REG, "demo", "conn-1", NULL, "pushgate/_ctl/demo/reg/conn-1", "demo", NULL, "conn-1");
    round_trip(PG_TOPIC_APP_RECORD, "foo-app", NULL, NULL, "pushgate/_ctl/apps/foo-app", "foo-app", NULL, NULL);
    round_trip(PG_TOPIC_DROPPED, NULL, NULL, NULL, "$SYS/broker/publish/messages/dropped", NULL, NULL, NULL);
    /* a one-letter app is an app like any other, and kinds' letters are not special as app ids */
    round_trip(PG_TOPIC_CHANNEL, "c", "c", NULL, "pushgate/c/c/c", "c", NULL, "c");
    round_trip(PG_TOPIC_DEVICE, "d", "d", NULL, "pushgate/d/d/d", "d", NULL, "d");
    /* UTF-8 levels */
    round_trip(PG_TOPIC_DEVICE, "demo", "caf\xc3\xa9", NULL, "pushgate/demo/d/caf\xc3\xa9", "demo", NULL,
               "caf\xc3\xa9");
}

static void test_filters(void)
{
    static const struct {
        enum pg_topic_kind kind;
        const char *want;
    } rows[] = {
        {PG_TOPIC_CHANNEL, "pushgate/+/c/#"},
        {PG_TOPIC_USER, "pushgate/+/u/#"},
        {PG_TOPIC_BROADCAST, "pushgate/+/b"},
        {PG_TOPIC_PRESENCE, "pushgate/+/p/#"},
        {PG_TOPIC_DEVICE, "pushgate/+/d/+"},
        {PG_TOPIC_NODE, "pushgate/_node/+"},
        {PG_TOPIC_LOAD, "pushgate/_node/+/load"},
        {PG_TOPIC_TERMINATE, "pushgate/_ctl/+/terminate/+"},
        {PG_TOPIC_REVOKE, "pushgate/_ctl/+/revoke"},
        {PG_TOPIC_REG, "pushgate/_ctl/+/reg/+"},
        {PG_TOPIC_APP_RECORD, "pushgate/_ctl/apps/+"},
        {PG_TOPIC_DROPPED, "$SYS/broker/publish/messages/dropped"},
    };
    char buf[128];

    CHECK_EQ(sizeof rows / sizeof rows[0], PG_TOPIC_KINDS - 1, "a filter for every kind");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int n = pg_topic_filter(buf, sizeof buf, ROOT, rows[i].kind);
        CHECK(n == (int)strlen(rows[i].want) && !strcmp(buf, rows[i].want), "filter %s: got %d \"%s\"",
              pg_topic_kind_name(rows[i].kind), n, buf);
        CHECK_EQ(pg_topic_filter(NULL, 0, ROOT, rows[i].kind), strlen(rows[i].want), "filter length");
        /* filters hold wildcards where a level is expected: never read back as a topic of that kind */
        struct pg_topic_ref ref;
        if (rows[i].kind != PG_TOPIC_DROPPED)
            CHECK(pg_topic_parse(ROOT, buf, &ref) == PG_TOPIC_NONE, "filter %s parsed as %s", buf,
                  pg_topic_kind_name(ref.kind));
    }
    CHECK_EQ(pg_topic_filter(buf, sizeof buf, ROOT, PG_TOPIC_NONE), PG_EINVAL, "no filter for NONE");
    CHECK_EQ(pg_topic_filter(buf, sizeof buf, ROOT, PG_TOPIC_KINDS), PG_EINVAL, "no filter past the kinds");
    CHECK_EQ(pg_topic_filter(buf, sizeof buf, "a/b", PG_TOPIC_NODE), PG_EINVAL, "bad root");
    CHECK_EQ(pg_topic_filter(buf, 5, ROOT, PG_TOPIC_NODE), PG_ELIMIT, "filter truncated");
    CHECK(buf[0] == '\0', "truncated filter leaves an empty string");
}

static void test_parse_edges(void)
{
    /* other roots, the root alone, a root that is only a prefix of the first level */
    expect_none("other/demo/c/x");
    expect_none("pushgate");
    expect_none("pushgate/");
    expect_none("pushgatex/demo/c/x");
    expect_none("pushgat/demo/c/x");
    expect_none("");
    /* app kinds: missing or empty parts */
    expect_none("pushgate/demo");
    expect_none("pushgate/demo/");
    expect_none("pushgate//c/x");
    expect_none("pushgate/demo/c");
    expect_none("pushgate/demo/c/");
    expect_none("pushgate/demo/u/");
    expect_none("pushgate/demo/x/y");
    expect_none("pushgate/demo/cc/y");
    expect_none("pushgate/demo/b/");
    expect_none("pushgate/demo/b/x");
    expect_none("pushgate/demo/d/");
    expect_none("pushgate/demo/d/a/b");
    expect_none("pushgate/demo/p/node");
    expect_none("pushgate/demo/p/node/");
    expect_none("pushgate/demo/p//ch");
    /* wildcards: refused in levels, kept in tails (a subscription filter on a channel) */
    expect_none("pushgate/+/c/x");
    expect_none("pushgate/#");
    expect_none("pushgate/de+mo/c/x");
    expect_none("pushgate/demo/d/+");
    expect_none("pushgate/demo/p/+/ch");
    expect_parse("pushgate/demo/c/#", PG_TOPIC_CHANNEL, "demo", NULL, "#");
    expect_parse("pushgate/demo/c/a/+/b", PG_TOPIC_CHANNEL, "demo", NULL, "a/+/b");
    /* channel tails may hold empty levels: their rules are pg_channel_check's, not the topic's */
    expect_parse("pushgate/demo/c/a//b", PG_TOPIC_CHANNEL, "demo", NULL, "a//b");
    expect_parse("pushgate/demo/c//", PG_TOPIC_CHANNEL, "demo", NULL, "/");
    /* _node */
    expect_none("pushgate/_node");
    expect_none("pushgate/_node/");
    expect_none("pushgate/_node/a/b");
    expect_none("pushgate/_node/a/load/x");
    expect_none("pushgate/_node/+/load");
    expect_none("pushgate/_node//load");
    expect_none("pushgate/_node/+");
    /* _ctl is never an app: its topics are control topics or nothing */
    expect_none("pushgate/_ctl/c/x");
    expect_none("pushgate/_node/c/x");
    expect_none("pushgate/_ctl");
    expect_none("pushgate/_ctl/demo");
    expect_none("pushgate/_ctl/demo/revoke/x");
    expect_none("pushgate/_ctl/demo/reg");
    expect_none("pushgate/_ctl/demo/reg/");
    expect_none("pushgate/_ctl/demo/reg/a/b");
    expect_none("pushgate/_ctl/demo/terminate");
    expect_none("pushgate/_ctl/demo/terminate/");
    expect_none("pushgate/_ctl//revoke");
    expect_none("pushgate/_ctl/+/revoke");
    expect_none("pushgate/_ctl/apps");
    expect_none("pushgate/_ctl/apps/");
    expect_none("pushgate/_ctl/apps/+");
    expect_none("pushgate/_ctl/demo/other");
    expect_parse("pushgate/_ctl/demo/terminate/a/b", PG_TOPIC_TERMINATE, "demo", NULL, "a/b");
    /* _ctl/apps/{one level} is an app record, also when the slug is a word of the scheme */
    expect_parse("pushgate/_ctl/apps/revoke", PG_TOPIC_APP_RECORD, "revoke", NULL, NULL);
    expect_parse("pushgate/_ctl/apps/reg", PG_TOPIC_APP_RECORD, "reg", NULL, NULL);
    /* deeper, "apps" is an app id like another */
    expect_parse("pushgate/_ctl/apps/reg/x", PG_TOPIC_REG, "apps", NULL, "x");
    /* $SYS is read whatever the root, and only the one counter */
    expect_parse("$SYS/broker/publish/messages/dropped", PG_TOPIC_DROPPED, NULL, NULL, NULL);
    expect_none("$SYS/broker/publish/messages/dropped/x");
    expect_none("$SYS/broker/clients/connected");

    struct pg_topic_ref ref;
    CHECK_EQ(pg_topic_parse(NULL, "pushgate/demo/b", &ref), PG_TOPIC_NONE, "no root");
    CHECK_EQ(pg_topic_parse(ROOT, NULL, &ref), PG_TOPIC_NONE, "no topic");
    CHECK_EQ(pg_topic_parse("", "/demo/b", &ref), PG_TOPIC_NONE, "empty root");
    /* another valid root */
    CHECK_EQ(pg_topic_parse("pg2", "pg2/demo/b", &ref), PG_TOPIC_BROADCAST, "root pg2");
    CHECK_EQ(pg_topic_parse("pg2", "pushgate/demo/b", &ref), PG_TOPIC_NONE, "root pg2, topic of pushgate");
    /* NONE leaves no part behind from a half-matched topic */
    CHECK_EQ(pg_topic_parse(ROOT, "pushgate/demo/p/n1", &ref), PG_TOPIC_NONE, "half presence");
    CHECK(!ref.app.s && !ref.node.s && !ref.name.s, "parts cleared on NONE");
}

static void test_build_refusals(void)
{
    char buf[64];
    /* missing parts, extra parts */
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_CHANNEL, "demo", NULL, NULL), PG_EINVAL, "no channel");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_CHANNEL, NULL, "x", NULL), PG_EINVAL, "no app");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_CHANNEL, "demo", "x", "y"), PG_EINVAL, "extra b");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_BROADCAST, "demo", "x", NULL), PG_EINVAL, "extra a");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_NODE, "demo", "n", NULL), PG_EINVAL, "node with app");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_PRESENCE, "demo", "n", NULL), PG_EINVAL, "no channel");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_DROPPED, "demo", NULL, NULL), PG_EINVAL, "dropped+app");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_NONE, "demo", NULL, NULL), PG_EINVAL, "kind NONE");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, (enum pg_topic_kind)99, "demo", NULL, NULL), PG_EINVAL,
             "unknown kind");
    /* levels: empty, wildcards, '/', what the broker refuses */
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_BROADCAST, "", NULL, NULL), PG_EINVAL, "empty app");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_BROADCAST, "+", NULL, NULL), PG_EINVAL, "app +");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_BROADCAST, "a#", NULL, NULL), PG_EINVAL, "app #");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_BROADCAST, "a/b", NULL, NULL), PG_EINVAL, "app /");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_DEVICE, "demo", "a/b", NULL), PG_EINVAL, "id /");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_DEVICE, "demo", "", NULL), PG_EINVAL, "empty id");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_DEVICE, "demo", "a\x01", NULL), PG_EINVAL, "control");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_DEVICE, "demo", "\xc3", NULL), PG_EINVAL, "bad UTF-8");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_REG, "demo", "+", NULL), PG_EINVAL, "conn +");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_NODE, NULL, "a/b", NULL), PG_EINVAL, "node /");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_PRESENCE, "demo", "a/b", "ch"), PG_EINVAL, "node /");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_APP_RECORD, "a/b", NULL, NULL), PG_EINVAL, "slug /");
    /* tails: non-empty; a filter is the owner's business (subscriptions) */
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_USER, "demo", "", NULL), PG_EINVAL, "empty user");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_TERMINATE, "demo", "", NULL), PG_EINVAL, "empty user");
    CHECK(pg_topic_build(buf, sizeof buf, ROOT, PG_TOPIC_CHANNEL, "demo", "a/+", NULL) > 0 &&
              !strcmp(buf, "pushgate/demo/c/a/+"),
          "channel filter: %s", buf);
    /* roots */
    CHECK_EQ(pg_topic_build(buf, sizeof buf, NULL, PG_TOPIC_BROADCAST, "demo", NULL, NULL), PG_EINVAL, "NULL root");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, "a/b", PG_TOPIC_BROADCAST, "demo", NULL, NULL), PG_EINVAL, "root /");
    CHECK_EQ(pg_topic_build(buf, sizeof buf, "$x", PG_TOPIC_BROADCAST, "demo", NULL, NULL), PG_EINVAL, "root $");
    CHECK(pg_topic_build(buf, sizeof buf, NULL, PG_TOPIC_DROPPED, NULL, NULL, NULL) > 0, "dropped needs no root");
}

static void test_truncation(void)
{
    char buf[32];
    const char *want = "pushgate/demo/c/news"; /* 20 bytes */

    /* exactly enough: length + NUL */
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(pg_topic_build(buf, 21, ROOT, PG_TOPIC_CHANNEL, "demo", "news", NULL), 20, "fits");
    CHECK(!strcmp(buf, want), "fits: %s", buf);
    /* one short: refused, empty string, nothing written past len */
    memset(buf, 'x', sizeof buf);
    CHECK_EQ(pg_topic_build(buf, 20, ROOT, PG_TOPIC_CHANNEL, "demo", "news", NULL), PG_ELIMIT, "one short");
    CHECK(buf[0] == '\0', "one short leaves \"\"");
    for (size_t i = 1; i < sizeof buf; i++)
        CHECK(buf[i] == 'x', "byte %zu written after a refusal", i);
    CHECK_EQ(pg_topic_build(buf, 1, ROOT, PG_TOPIC_CHANNEL, "demo", "news", NULL), PG_ELIMIT, "len 1");
    CHECK_EQ(pg_topic_build(NULL, 5, ROOT, PG_TOPIC_CHANNEL, "demo", "news", NULL), PG_ELIMIT, "NULL buf, len 5");
    /* no topic past the longest MQTT string, measured or not */
    size_t big = PG_MQTT_STRING_MAX;
    char *name = malloc(big + 1);
    CHECK(name != NULL, "malloc");
    if (name) {
        memset(name, 'a', big);
        name[big] = '\0';
        CHECK_EQ(pg_topic_build(NULL, 0, ROOT, PG_TOPIC_CHANNEL, "demo", name, NULL), PG_ELIMIT, "too long");
        /* the longest channel that still fits: root/demo/c/ is 16 bytes */
        name[big - 16] = '\0';
        CHECK_EQ(pg_topic_build(NULL, 0, ROOT, PG_TOPIC_CHANNEL, "demo", name, NULL), PG_MQTT_STRING_MAX,
                 "longest topic");
        free(name);
    }
    /* part copies */
    struct pg_topic_ref ref;
    char small[5];
    pg_topic_parse(ROOT, "pushgate/demo/d/sensor", &ref);
    CHECK_EQ(pg_topic_part_copy(&ref.app, small, sizeof small), 4, "app copied");
    CHECK(!strcmp(small, "demo"), "app copy: %s", small);
    CHECK_EQ(pg_topic_part_copy(&ref.name, small, sizeof small), PG_ELIMIT, "name does not fit");
    CHECK(small[0] == '\0', "refused copy leaves \"\"");
    CHECK_EQ(pg_topic_part_copy(&ref.node, small, sizeof small), 0, "absent part copies as \"\"");
    CHECK_EQ(pg_topic_part_copy(&ref.app, small, 0), PG_ELIMIT, "no room at all");
}

static void test_root_rule(void)
{
    char root[PG_TOPIC_ROOT_MAX + 2];

    CHECK(pg_topic_root_valid("pushgate"), "pushgate");
    CHECK(pg_topic_root_valid("pg-2_x.y"), "punctuation");
    CHECK(pg_topic_root_valid("caf\xc3\xa9"), "UTF-8");
    CHECK(!pg_topic_root_valid(NULL), "NULL");
    CHECK(!pg_topic_root_valid(""), "empty");
    CHECK(!pg_topic_root_valid("a/b"), "two levels");
    CHECK(!pg_topic_root_valid("/a"), "leading /");
    CHECK(!pg_topic_root_valid("a/"), "trailing /");
    CHECK(!pg_topic_root_valid("a+"), "+");
    CHECK(!pg_topic_root_valid("#"), "#");
    CHECK(!pg_topic_root_valid("$SYS"), "$");
    CHECK(!pg_topic_root_valid("\xc3"), "bad UTF-8");
    CHECK(!pg_topic_root_valid("a\x7f"), "control character");
    memset(root, 'r', PG_TOPIC_ROOT_MAX);
    root[PG_TOPIC_ROOT_MAX] = '\0';
    CHECK(pg_topic_root_valid(root), "longest root");
    root[PG_TOPIC_ROOT_MAX] = 'r';
    root[PG_TOPIC_ROOT_MAX + 1] = '\0';
    CHECK(!pg_topic_root_valid(root), "root one byte too long");
}

static void test_new(void)
{
    char *t;

    t = pg_topic_new(ROOT, PG_TOPIC_PRESENCE, "demo", "node-1", "presence-a/b");
    CHECK(t && !strcmp(t, "pushgate/demo/p/node-1/presence-a/b"), "new presence: %s", t ? t : "(null)");
    free(t);
    t = pg_topic_new(ROOT, PG_TOPIC_BROADCAST, "demo", NULL, NULL);
    CHECK(t && !strcmp(t, "pushgate/demo/b"), "new broadcast (no trailing '/'): %s", t ? t : "(null)");
    free(t);
    t = pg_topic_new(ROOT, PG_TOPIC_NODE, NULL, "n1", NULL);
    CHECK(t && !strcmp(t, "pushgate/_node/n1"), "new node: %s", t ? t : "(null)");
    free(t);
    t = pg_topic_new(NULL, PG_TOPIC_DROPPED, NULL, NULL, NULL);
    CHECK(t && !strcmp(t, PG_TOPIC_DROPPED_TOPIC), "new dropped: %s", t ? t : "(null)");
    free(t);
    /* whatever pg_topic_build() refuses, pg_topic_new() refuses */
    CHECK(pg_topic_new(ROOT, PG_TOPIC_USER, "demo", "", NULL) == NULL, "empty user");
    CHECK(pg_topic_new(ROOT, PG_TOPIC_NODE, NULL, "a/b", NULL) == NULL, "node with /");
    CHECK(pg_topic_new(ROOT, PG_TOPIC_BROADCAST, "demo", "x", NULL) == NULL, "extra part");
    CHECK(pg_topic_new("a/b", PG_TOPIC_REVOKE, "demo", NULL, NULL) == NULL, "bad root");
    CHECK(pg_topic_new(ROOT, PG_TOPIC_NONE, "demo", NULL, NULL) == NULL, "kind NONE");

    size_t big = PG_MQTT_STRING_MAX;
    char *name = malloc(big + 1);
    CHECK(name != NULL, "malloc");
    if (name) {
        memset(name, 'a', big);
        name[big] = '\0';
        CHECK(pg_topic_new(ROOT, PG_TOPIC_CHANNEL, "demo", name, NULL) == NULL, "too long");
        name[big - 16] = '\0';
        t = pg_topic_new(ROOT, PG_TOPIC_CHANNEL, "demo", name, NULL);
        CHECK(t && strlen(t) == PG_MQTT_STRING_MAX, "longest topic");
        free(t);
        free(name);
    }
}

/* Every filter fits in PG_TOPIC_FILTER_MAX under the longest root, and the bound is no larger than it must be. */
static void test_filter_max(void)
{
    char root[PG_TOPIC_ROOT_MAX + 1], buf[PG_TOPIC_FILTER_MAX];
    int longest = 0;

    memset(root, 'r', PG_TOPIC_ROOT_MAX);
    root[PG_TOPIC_ROOT_MAX] = '\0';
    for (int k = PG_TOPIC_NONE + 1; k < PG_TOPIC_KINDS; k++) {
        int n = pg_topic_filter(buf, sizeof buf, root, (enum pg_topic_kind)k);
        CHECK(n > 0, "filter %s under the longest root: %d", pg_topic_kind_name((enum pg_topic_kind)k), n);
        if (n > longest)
            longest = n;
    }
    CHECK_EQ(longest + 1, PG_TOPIC_FILTER_MAX, "PG_TOPIC_FILTER_MAX is the longest filter and its NUL");
}

/* ---- README.md's "MQTT topics" table -------------------------------------------------------- */

/* What the README's placeholders stand for here; each becomes the part of the kind that names it. */
static const struct {
    const char *placeholder, *value;
} readme_parts[] = {
    {"{app}", "demo"},      {"{channel}", "news"},      {"{user}", "u1"},      {"{node}", "node-1"},
    {"{client_id}", "s-7"}, {"{connectionId}", "conn"}, {"{slug}", "foo-app"},
};

/* The row's topic (between its first backticks) with every placeholder replaced; 0 when the line is no row. */
static int readme_row_topic(const char *line, char *out, size_t len)
{
    const char *a, *b;
    size_t at = 0;

    if (strncmp(line, "| `", 3) != 0 || !(b = strchr(a = line + 3, '`')))
        return 0;
    while (a < b && at + 1 < len) {
        size_t i, n = 0;
        for (i = 0; i < sizeof readme_parts / sizeof readme_parts[0]; i++) {
            n = strlen(readme_parts[i].placeholder);
            if ((size_t)(b - a) >= n && !strncmp(a, readme_parts[i].placeholder, n))
                break;
        }
        if (i < sizeof readme_parts / sizeof readme_parts[0]) {
            at += (size_t)snprintf(out + at, len - at, "%s", readme_parts[i].value);
            a += n;
        } else {
            out[at++] = *a++;
        }
    }
    out[at < len ? at : len - 1] = '\0';
    return 1;
}

/* Builds the topic of ref's kind from ref's parts, as the gateway and the plugin do. */
static int rebuild(const struct pg_topic_ref *ref, char *buf, size_t len)
{
    char app[64], node[64], name[64];
    const char *x = NULL, *y = NULL, *z = NULL;

    if (pg_topic_part_copy(&ref->app, app, sizeof app) > 0)
        x = app;
    if (pg_topic_part_copy(&ref->node, node, sizeof node) > 0)
        y = node;
    if (pg_topic_part_copy(&ref->name, name, sizeof name) > 0)
        z = name;
    if (ref->kind == PG_TOPIC_PRESENCE)
        return pg_topic_build(buf, len, ROOT, ref->kind, x, y, z);
    return pg_topic_build(buf, len, ROOT, ref->kind, x, y ? y : z, NULL);
}

static void test_readme(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024], topic[256], built[256];
    int seen[PG_TOPIC_KINDS] = {0}, in_section = 0, rows = 0;

    CHECK(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3)) {
            in_section = !strcmp(line, "## MQTT topics\n");
            continue;
        }
        if (!in_section || !readme_row_topic(line, topic, sizeof topic))
            continue;
        rows++;
        struct pg_topic_ref ref;
        enum pg_topic_kind kind = pg_topic_parse(ROOT, topic, &ref);
        CHECK(kind != PG_TOPIC_NONE, "README row %s is no topic kind", topic);
        if (kind == PG_TOPIC_NONE)
            continue;
        CHECK(++seen[kind] == 1, "README: a second row of kind %s: %s", pg_topic_kind_name(kind), topic);
        CHECK(rebuild(&ref, built, sizeof built) > 0 && !strcmp(built, topic), "README row %s is built as %s", topic,
              built);
    }
    fclose(f);
    CHECK(rows > 0, "no \"## MQTT topics\" table in %s", path);
    for (int k = PG_TOPIC_NONE + 1; k < PG_TOPIC_KINDS; k++)
        CHECK(seen[k] == 1, "README's MQTT topics table lacks kind %s", pg_topic_kind_name((enum pg_topic_kind)k));
}

static void test_kind_names(void)
{
    CHECK(!strcmp(pg_topic_kind_name(PG_TOPIC_NONE), "none"), "none");
    CHECK(!strcmp(pg_topic_kind_name(PG_TOPIC_DEVICE), "device"), "device");
    CHECK(!strcmp(pg_topic_kind_name((enum pg_topic_kind)-1), "none"), "negative kind");
    CHECK(!strcmp(pg_topic_kind_name(PG_TOPIC_KINDS), "none"), "past the kinds");
    for (int k = 0; k < PG_TOPIC_KINDS; k++)
        CHECK(pg_topic_kind_name((enum pg_topic_kind)k) != NULL, "kind %d has a name", k);
}

int main(int argc, char **argv)
{
    test_round_trips();
    test_filters();
    test_parse_edges();
    test_build_refusals();
    test_truncation();
    test_root_rule();
    test_kind_names();
    test_new();
    test_filter_max();
    if (argc > 1)
        test_readme(argv[1]);
    return check_report("test_topic");
}
