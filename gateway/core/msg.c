#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/msg.h"
#include "pg_common.h"

struct pg_msg *pg_msg_new(const void *data, size_t len)
{
    struct pg_msg *m = malloc(sizeof *m + LWS_PRE + len + 1);
    if (!m)
        return NULL;
    m->refs = 1;
    m->reply = 0;
    m->len = len;
    if (data)
        memcpy(m->buf + LWS_PRE, data, len);
    m->buf[LWS_PRE + len] = '\0';
    return m;
}

struct pg_msg *pg_msg_from_json(json_t *obj)
{
    size_t len = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (len == 0)
        return NULL;
    struct pg_msg *m = pg_msg_new(NULL, len);
    if (m && json_dumpb(obj, (char *)pg_msg_data(m), len, JSON_COMPACT) != len) {
        pg_msg_unref(m);
        return NULL;
    }
    return m;
}

void pg_msg_unref(struct pg_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

int pg_outq_push(struct pg_outq *q, struct pg_msg *m, size_t max_bytes, size_t max_msgs)
{
    /* replies are bounded by flow control on their sender's requests, not here */
    if (!m->reply && (q->count - q->replies + 1 > max_msgs || q->bytes - q->reply_bytes + m->len > max_bytes))
        return PG_ELIMIT;
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 8;
        struct pg_msg **r = malloc(ncap * sizeof *r);
        if (!r)
            return PG_ENOMEM;
        for (size_t i = 0; i < q->count; i++)
            r[i] = q->ring[(q->head + i) % q->cap];
        free(q->ring);
        q->ring = r;
        q->head = 0;
        q->cap = ncap;
    }
    q->ring[(q->head + q->count) % q->cap] = m;
    q->count++;
    q->bytes += m->len;
    if (m->reply) {
        q->replies++;
        q->reply_bytes += m->len;
    }
    m->refs++;
    return 0;
}

struct pg_msg *pg_outq_peek(const struct pg_outq *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

void pg_outq_pop(struct pg_outq *q)
{
    if (!q->count)
        return;
    struct pg_msg *m = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->bytes -= m->len;
    if (m->reply) {
        q->replies--;
        q->reply_bytes -= m->len;
    }
    pg_msg_unref(m);
    if (q->count == 0 && q->cap > PG_OUTQ_KEEP_SLOTS) { /* a burst's ring: the next push starts small again */
        free(q->ring);
        q->ring = NULL;
        q->head = q->cap = 0;
    }
}

void pg_outq_clear(struct pg_outq *q)
{
    while (q->count)
        pg_outq_pop(q);
    free(q->ring);
    memset(q, 0, sizeof *q);
}

json_t *pg_binary_json(const void *payload, size_t len)
{
    unsigned char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (!b64)
        return NULL;
    EVP_EncodeBlock(b64, payload, (int)len);
    json_t *o = json_pack("{s:s}", "binary", (char *)b64);
    free(b64);
    return o;
}

json_t *pg_payload_json(const void *payload, size_t len)
{
    json_t *j = len ? json_loadb(payload, len, JSON_DECODE_ANY, NULL) : NULL;
    if (!j && pg_utf8_valid(payload, len))
        j = json_stringn(payload, len);
    return j ? j : pg_binary_json(payload, len);
}

const char *pg_prop_get(const struct pg_bridge_prop *props, size_t nprops, const char *name, const char *def)
{
    for (size_t i = 0; i < nprops; i++)
        if (!strcmp(props[i].name, name))
            return props[i].value;
    return def;
}
