/*
 * libFuzzer harness for the topic scheme (common/topic.c). Input: one byte
 * choosing the root, then a topic as the broker could deliver it.
 *
 * Invariants (abort when broken):
 *  - pg_topic_parse never reads past the topic and its parts lie inside it;
 *  - what it reads as a pushgate topic is built back, byte for byte, by
 *    pg_topic_build from the parts it found (parse and build are one scheme):
 *    always when the topic is valid MQTT UTF-8 without wildcards, and never
 *    differently when build accepts the parts at all;
 *  - pg_topic_build's length-only call agrees with the build itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg_common.h"
#include "pg_topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOPIC_MAX 4096

static int inside(const struct pg_topic_part *p, const char *t, size_t n)
{
    return !p->s || (p->s >= t && p->s + p->len <= t + n);
}

static void copy(const struct pg_topic_part *p, char *buf, size_t len, const char **out)
{
    *out = NULL;
    if (p->s && pg_topic_part_copy(p, buf, len) >= 0)
        *out = buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roots[] = {"pushgate", "p", "tenant-1.prod"};
    static char topic[TOPIC_MAX + 1], built[TOPIC_MAX + 1];
    static char app[TOPIC_MAX + 1], node[TOPIC_MAX + 1], name[TOPIC_MAX + 1];
    if (size < 1 || size - 1 > TOPIC_MAX)
        return 0;
    const char *root = roots[data[0] % 3];
    size_t n = size - 1;
    memcpy(topic, data + 1, n);
    topic[n] = '\0';
    n = strlen(topic); /* a topic name holds no NUL */

    struct pg_topic_ref r;
    enum pg_topic_kind kind = pg_topic_parse(root, topic, &r);
    if (kind != r.kind || !inside(&r.app, topic, n) || !inside(&r.node, topic, n) || !inside(&r.name, topic, n))
        abort();
    if (kind == PG_TOPIC_NONE)
        return 0;

    const char *a_app, *a_node, *a_name, *a = NULL, *b = NULL;
    copy(&r.app, app, sizeof app, &a_app);
    copy(&r.node, node, sizeof node, &a_node);
    copy(&r.name, name, sizeof name, &a_name);
    switch (kind) { /* the parts pg_topic_build takes for each kind (pg_topic.h) */
    case PG_TOPIC_PRESENCE:
        a = a_node, b = a_name;
        break;
    case PG_TOPIC_NODE:
    case PG_TOPIC_LOAD:
        a = a_node, a_app = NULL;
        break;
    case PG_TOPIC_CHANNEL:
    case PG_TOPIC_USER:
    case PG_TOPIC_DEVICE:
    case PG_TOPIC_TERMINATE:
    case PG_TOPIC_REG:
        a = a_name;
        break;
    case PG_TOPIC_DROPPED:
        a_app = NULL;
        break;
    default:
        break;
    }
    int need = pg_topic_build(NULL, 0, root, kind, a_app, a, b);
    int len = pg_topic_build(built, sizeof built, root, kind, a_app, a, b);
    if (len >= 0 && (need != len || (size_t)len != n || memcmp(built, topic, n) != 0))
        abort(); /* parse and build disagree on the scheme */
    int clean = pg_mqtt_utf8_valid(topic, n) && !strpbrk(topic, "+#");
    if (clean && len < 0)
        abort(); /* a topic parse accepts must be one build makes */
    return 0;
}
