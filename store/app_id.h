/*
 * What an app id may be. An id is at once a URL path segment (/apps/{id}/..., /app/{id}), an MQTT topic level
 * ({root}/{id}/c/...), a JWT `channel` claim and, for the broker plugin, an MQTT username; the store's slugs are
 * ids too. The gateway's config reader, the broker plugin's and the store all apply these rules, so an id one of
 * them accepts is never refused by another.
 */
#ifndef PG_APP_ID_H
#define PG_APP_ID_H

#include <stddef.h>

#define PG_APP_ID_MAX 64 /* bytes of an app id */

/*
 * 1 for ids that would shadow a gateway route or control topic (v1, api, healthz, _ctl, _node, ...): no app, of a
 * config file or of the store, may have one.
 */
int pg_app_id_reserved(const char *id);
/* Every reserved id (*n of them): the route names first, then the control topics' levels. */
const char *const *pg_app_id_reserved_names(size_t *n);

/* 1 if id may name an app: 1..PG_APP_ID_MAX characters of A-Z a-z 0-9 - _ . and not reserved. */
int pg_app_id_valid(const char *id);

/* How pg_app_id_valid's rule reads in an error message. */
#define PG_APP_ID_RULE "use 1-64 characters of A-Z a-z 0-9 - _ . (not a reserved route name)"

#endif
