/* App ids: the one rule for config sections, store slugs and plugin usernames (see app_id.h). */
#include <ctype.h>
#include <string.h>

#include "app_id.h"

int pg_app_id_reserved(const char *id)
{
    static const char *const reserved[] = {"v1",      "app",    "apps",        "api",   "socket.io", "healthz",
                                           "readyz",  "metrics", "pushgate.js", "_ctl", "_node"};
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
