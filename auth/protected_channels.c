/*
 * Pusher's protected channel kinds (private-…, private-encrypted-…, presence-…): in every app, whatever its
 * require_auth, only a credential that grants the action reads or writes them. The gateway's routes and the broker
 * plugin ask pg_channel_protected() before they fall back to an app's anonymous access.
 */
#include <string.h>

#include "pushgate_auth.h"

int pg_channel_protected(const char *name, size_t len)
{
    static const char *const prefixes[] = {"private-", "presence-"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (name && len >= n && !memcmp(name, prefixes[i], n))
            return 1;
    }
    return 0;
}
