/* Shared between the files of libpushgate_auth; not part of the public API. */
#ifndef PUSHGATE_AUTH_INTERNAL_H
#define PUSHGATE_AUTH_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include <jansson.h>

#include "pushgate_auth.h"

/* Compile an already-parsed `permissions` object (not consumed). Errors as pg_rules_compile. */
int pg__rules_from_json(const json_t *perms, const struct pg_auth_limits *lim, pg_rules **out, char *err,
                        size_t errlen);

/* snprintf into err when err is non-NULL; returns rc so callers can `rc = pg__err(...)`. */
int pg__err(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
