/*
 * The query string's parameters (http/query.h): each in order, or one by exact name.
 */
#include <string.h>

#include "config.h"
#include "http/query.h"

int pg_http_query_each(struct lws *wsi, int (*fn)(void *ud, char *param), void *ud)
{
    char frag[PG_QUERY_ARG_MAX + 1]; /* pg_http_refusal() keeps every parameter within max_query_bytes */
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
        int rc = fn(ud, frag);
        if (rc)
            return rc;
    }
    return 0;
}

struct query_find {
    const char *name;
    size_t nl;
    char *buf;
    size_t len;
};

static int query_find(void *ud, char *param)
{
    struct query_find *q = ud;
    /* exact name match: lws_get_urlarg_by_name() would also accept a longer name with this prefix */
    if (strncmp(param, q->name, q->nl) != 0 || param[q->nl] != '=')
        return 0;
    size_t vl = strlen(param + q->nl + 1);
    if (vl >= q->len) {
        if (q->len)
            q->buf[0] = '\0'; /* callers that treat it as present see an empty, unknown value */
        return -2;
    }
    memcpy(q->buf, param + q->nl + 1, vl + 1);
    return (int)vl + 1;
}

int pg_http_query_arg(struct lws *wsi, const char *name, char *buf, size_t len)
{
    struct query_find q = {name, strlen(name), buf, len};
    int rc = pg_http_query_each(wsi, query_find, &q);
    return rc > 0 ? rc - 1 : rc == 0 ? -1 : rc;
}
