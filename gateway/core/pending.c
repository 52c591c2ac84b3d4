/*
 * Pending broker requests by requester serial, and broker results as
 * HTTP-like statuses (core/pending.h).
 */
#include <stdlib.h>

#include "core/pending.h"
#include "pg_common.h"

void *pg_pending_new(struct pg_gw *gw, uint64_t serial, size_t size, pg_pending_fn done, pg_pending_drop_fn drop)
{
    struct pg_pending *p = size >= sizeof *p ? calloc(1, size) : NULL;
    if (!p)
        return NULL;
    p->gw = gw;
    p->serial = serial;
    p->due = 1;
    p->done = done;
    p->drop = drop;
    return p;
}

void pg_pending_expect(struct pg_pending *p)
{
    p->due++;
}

void pg_pending_free(struct pg_pending *p)
{
    if (!p)
        return;
    if (p->drop)
        p->drop(p);
    free(p);
}

void pg_pending_ack(void *ud, int result)
{
    struct pg_pending *p = ud;
    if (result != 0 && p->result == 0)
        p->result = result;
    if (--p->due > 0)
        return;
    if (p->done)
        p->done(p, p->result);
    pg_pending_free(p);
}

int pg_broker_status(int result, const struct pg_broker_words *w, const char **message)
{
    *message = NULL;
    if (result == 0)
        return 200;
    if (result == PG_EDENIED) {
        *message = w->refused;
        return 403;
    }
    if (result == PG_ETIMEDOUT) {
        *message = w->late;
        return 504;
    }
    if (result == PG_EBUSY || !w->failed) {
        *message = w->unavailable;
        return 503;
    }
    *message = w->failed;
    return 500;
}
