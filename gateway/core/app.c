/*
 * The apps table (gw->apps, by id): lookups by id and by Pusher key. Apps are
 * created, reloaded and freed by cluster/apps.c; this file only finds them.
 */
#include <string.h>

#include "core/app.h"
#include "core/gw.h"

struct pg_app *pg_app_find(struct pg_gw *gw, const char *id, size_t len)
{
    struct pg_app *a;
    HASH_FIND(hh, gw->apps, id, len, a);
    return a;
}

struct pg_app *pg_app_lookup(struct pg_gw *gw, const char *id, size_t len)
{
    struct pg_app *a = pg_app_find(gw, id, len);
    return a && !pg_app_deleted(a) ? a : NULL;
}

struct pg_app *pg_app_find_by_key(struct pg_gw *gw, const char *key, size_t len)
{
    struct pg_app *a, *tmp;
    HASH_ITER(hh, gw->apps, a, tmp) {
        if (a->creds->key && strlen(a->creds->key) == len && !memcmp(a->creds->key, key, len) && !pg_app_deleted(a))
            return a;
    }
    return NULL;
}
