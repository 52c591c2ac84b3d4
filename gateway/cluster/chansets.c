/*
 * Channel counts packed for the cluster view (cluster/chansets.h says why and how they are laid out).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/chansets.h"
#include "pg_common.h"

int pg_chanset_items_push(struct pg_chanset_items *it, const char *name, uint64_t count)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? 2 * it->cap : 64;
        struct pg_chanset_item *v = realloc(it->v, cap * sizeof *v);
        if (!v)
            return PG_ENOMEM;
        it->v = v;
        it->cap = cap;
    }
    it->v[it->n++] = (struct pg_chanset_item){name, count};
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pg_chanset_item *)a)->name, ((const struct pg_chanset_item *)b)->name);
}

const char *pg_chanset_name(const struct pg_chanset *s, size_t i)
{
    return s->names + s->off[i];
}

struct pg_chanset *pg_chanset_new(struct pg_chanset_items *it)
{
    size_t k = 0, bytes = 0;
    if (it->n > 1)
        qsort(it->v, it->n, sizeof *it->v, item_cmp);
    for (size_t i = 0; i < it->n; i++) {
        if (k && !strcmp(it->v[k - 1].name, it->v[i].name)) {
            it->v[k - 1].count += it->v[i].count;
            continue;
        }
        bytes += strlen(it->v[i].name) + 1;
        it->v[k++] = it->v[i];
    }
    struct pg_chanset *s = bytes <= UINT32_MAX ? malloc(sizeof *s + 2 * k * sizeof(uint32_t) + bytes) : NULL;
    if (!s)
        return NULL;
    s->n = k;
    s->off = (uint32_t *)(s + 1);
    s->count = s->off + k;
    s->names = (char *)(s->count + k);
    for (size_t i = 0, at = 0; i < k; i++) {
        size_t len = strlen(it->v[i].name) + 1;
        memcpy(s->names + at, it->v[i].name, len);
        s->off[i] = (uint32_t)at;
        s->count[i] = it->v[i].count > UINT32_MAX ? UINT32_MAX : (uint32_t)it->v[i].count;
        at += len;
    }
    return s;
}

int pg_chanset_items_add(struct pg_chanset_items *it, const struct pg_chanset *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (pg_chanset_items_push(it, pg_chanset_name(s, i), s->count[i]) < 0)
            return PG_ENOMEM;
    return 0;
}

const uint32_t *pg_chanset_seek(const struct pg_chanset *s, size_t *at, const char *name)
{
    int cmp = 1;
    while (s && *at < s->n && (cmp = strcmp(pg_chanset_name(s, *at), name)) < 0)
        (*at)++;
    return s && *at < s->n && cmp == 0 ? &s->count[*at] : NULL;
}

/* The count of name in s (binary search); 0: not in s. */
uint32_t pg_chanset_find(const struct pg_chanset *s, const char *name)
{
    size_t lo = 0, hi = s ? s->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(pg_chanset_name(s, mid), name);
        if (!cmp)
            return s->count[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

void pg_appsets_clear(struct pg_appsets *as)
{
    for (size_t i = 0; i < as->n; i++) {
        free(as->v[i].app);
        free(as->v[i].set);
    }
    free(as->v);
    as->n = 0;
    as->v = NULL;
}

static int appset_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pg_appset *)a)->app, ((const struct pg_appset *)b)->app);
}

static int appset_key_cmp(const void *key, const void *e)
{
    return strcmp(key, ((const struct pg_appset *)e)->app);
}

void pg_appsets_sort(struct pg_appsets *as)
{
    if (as->n > 1)
        qsort(as->v, as->n, sizeof *as->v, appset_cmp);
}

struct pg_appset *pg_appsets_find(const struct pg_appsets *as, const char *app)
{
    return as->n ? bsearch(app, as->v, as->n, sizeof *as->v, appset_key_cmp) : NULL;
}

const struct pg_chanset *pg_appsets_get(const struct pg_appsets *as, const char *app)
{
    const struct pg_appset *e = pg_appsets_find(as, app);
    return e ? e->set : NULL;
}

/* {app: {channel: subscriptions}} (borrowed) packed into out (emptied first). 0 or PG_ENOMEM (out empty then). */
int pg_appsets_from_json(const json_t *apps, struct pg_appsets *out)
{
    struct pg_chanset_items it = {0};
    const char *app, *name;
    json_t *chans, *v;
    int rc = 0;
    pg_appsets_clear(out);
    if (json_object_size(apps) && !(out->v = calloc(json_object_size(apps), sizeof *out->v)))
        return PG_ENOMEM;
    json_object_foreach((json_t *)apps, app, chans)
    {
        it.n = 0;
        json_object_foreach(chans, name, v)
        {
            if (json_is_integer(v) && json_integer_value(v) > 0 &&
                (rc = pg_chanset_items_push(&it, name, (uint64_t)json_integer_value(v))) < 0)
                goto out;
        }
        if (!it.n)
            continue;
        struct pg_appset *e = &out->v[out->n];
        if (!(e->app = strdup(app)) || !(e->set = pg_chanset_new(&it))) {
            free(e->app);
            rc = PG_ENOMEM;
            goto out;
        }
        out->n++;
    }
    pg_appsets_sort(out);
out:
    free(it.v);
    if (rc < 0)
        pg_appsets_clear(out);
    return rc;
}

/* Channels in {app: {channel: subscriptions}}. */
size_t pg_appsets_json_channels(const json_t *apps)
{
    const char *app;
    json_t *chans;
    size_t n = 0;
    json_object_foreach((json_t *)apps, app, chans) n += json_object_size(chans);
    return n;
}
