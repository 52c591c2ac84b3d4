/* App ids: the one rule for config sections, store slugs and plugin usernames (see app_id.h). */
#include <ctype.h>
#include <string.h>

#include "app_id.h"

/*
 * The first path segments of the gateway's routes (the route table, gateway/http/routes.c, is their source; the
 * plugin cannot link it, so they are listed here and unit/routes fails when the two differ), and the control
 * topics' levels ({root}/_ctl/..., {root}/_node/...).
 */
static const char *const reserved[] = {"v1",     "app",     "apps",        "api",  "socket.io", "healthz",
                                       "readyz", "metrics", "pushgate.js", "_ctl", "_node"};

const char *const *pg_app_id_reserved_names(size_t *n)
{
    *n = sizeof reserved / sizeof reserved[0];
    return reserved;
}

int pg_app_id_reserved(const char *id)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(id, reserved[i]))
            return 1;
    return 0;
}

int pg_app_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > PG_APP_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_' && id[i] != '.')
            return 0;
    return !pg_app_id_reserved(id);
}
