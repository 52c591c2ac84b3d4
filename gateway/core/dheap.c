/*
 * The deadline heap (core/dheap.h): a binary min-heap of borrowed entries in
 * one array, each entry keeping its own slot so that it can be moved or
 * removed without a search.
 */
#include <stdlib.h>

#include "core/dheap.h"
#include "pg_common.h"

#define INITIAL_CAP 64

static void place(struct pg_dheap *h, size_t i, struct pg_dl *e)
{
    h->v[i] = e;
    e->at = i + 1;
}

/* Moves the entry at i towards the root while it is earlier than its parent. */
static void sift_up(struct pg_dheap *h, size_t i)
{
    struct pg_dl *e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->due_ms <= e->due_ms)
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, e);
}

/* Moves the entry at i towards the leaves while a child is earlier. */
static void sift_down(struct pg_dheap *h, size_t i)
{
    struct pg_dl *e = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->due_ms < h->v[c]->due_ms)
            c++;
        if (e->due_ms <= h->v[c]->due_ms)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, e);
}

int pg_dheap_set(struct pg_dheap *h, struct pg_dl *e, int64_t due_ms)
{
    if (e->at) { /* on h already: move it where its new deadline belongs */
        int64_t was = e->due_ms;
        e->due_ms = due_ms;
        if (due_ms < was)
            sift_up(h, e->at - 1);
        else
            sift_down(h, e->at - 1);
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : INITIAL_CAP;
        struct pg_dl **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return PG_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    e->due_ms = due_ms;
    h->v[h->n++] = e;
    sift_up(h, h->n - 1);
    return 0;
}

void pg_dheap_remove(struct pg_dheap *h, struct pg_dl *e)
{
    if (!e->at)
        return;
    size_t i = e->at - 1;
    e->at = 0;
    struct pg_dl *last = h->v[--h->n];
    if (i < h->n) { /* the last entry fills the hole, then finds its place either way */
        place(h, i, last);
        sift_up(h, i);
        sift_down(h, last->at - 1);
    }
    if (!h->n) { /* empty: give the array back (see the header's Memory) */
        free(h->v);
        h->v = NULL;
        h->cap = 0;
    }
}

struct pg_dl *pg_dheap_pop(struct pg_dheap *h, int64_t now_ms)
{
    if (!h->n || h->v[0]->due_ms > now_ms)
        return NULL;
    struct pg_dl *e = h->v[0];
    pg_dheap_remove(h, e);
    return e;
}
