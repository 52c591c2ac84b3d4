/*
 * An app as the gateway holds it (struct pg_app): its credentials and
 * settings, the roots of its channel index, the seq table of its app-wide
 * broadcasts, its counters.
 *
 * Owner: cluster/apps.c creates, replaces (a store app's settings on reload)
 * and marks deleted; apps are freed only at exit, so a pointer to an app
 * stays valid for the process's life. The index roots are core/channels.c's,
 * broadcast_seqs core/fanout.c's, the counters core/stats.h's writers'.
 * Anyone may look an app up here (by id, or by Pusher key).
 */
#ifndef PG_CORE_APP_H
#define PG_CORE_APP_H

#include <stdint.h>
#include <jansson.h>
#include <uthash.h>

#include "config.h"
#include "core/stats.h"

struct pg_gw;
struct pg_channel;
struct pg_seq;

struct pg_app {
    char *id;                         /* owned; the hash key (creds may be replaced, the id stays) */
    const struct pg_app_creds *creds; /* &conf->creds */
    const struct pg_app_conf *conf;   /* the config's, or a store app's current one (apps.c replaces it on reload) */
    int deleted;                      /* a store app deleted from the store (set by apps.c only) */
    struct pg_channel *channels;      /* exact names */
    struct pg_channel *filters;       /* wildcard filters */
    struct pg_seq *broadcast_seqs;    /* last seq of app-wide broadcasts per origin (seq.c) */
    struct pg_app_stats stats;        /* counters for /metrics and the dashboard (core/stats.h) */
    UT_hash_handle hh;
};

struct pg_app *pg_app_find(struct pg_gw *gw, const char *id, size_t len);
/* A store app that was deleted: its struct stays for whoever points at it, but it is gone for users. */
static inline int pg_app_deleted(const struct pg_app *a)
{
    return a->deleted;
}
/* The app as users (clients, REST, admin calls) see it: NULL when unknown or deleted. */
struct pg_app *pg_app_lookup(struct pg_gw *gw, const char *id, size_t len);
struct pg_app *pg_app_find_by_key(struct pg_gw *gw, const char *key, size_t len);

#endif
