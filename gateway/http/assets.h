/*
 * Static files embedded at build time (gateway/static/, by
 * cmake/embed.cmake into assets.c): pushgate.js and the demo page, served by
 * their route rows, and the dashboard page, served only behind the admin
 * credentials (its name has no leading '/', so no path reaches it).
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
