/*
 * Static assets embedded at build time.
 */
#ifndef PG_HTTP_ASSETS_H
#define PG_HTTP_ASSETS_H

#include <stddef.h>

/* assets.c (generated from gateway/static) */
struct pg_asset {
    const char *path, *ctype;
    const unsigned char *data;
    size_t len;
};
const struct pg_asset *pg_asset_find(const char *path);

#endif
