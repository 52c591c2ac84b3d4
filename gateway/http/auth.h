/*
 * HTTP credentials the router checks (http/auth.c): admin Basic, an app's
 * key:secret. Each answers h when the credentials are wrong.
 */
#ifndef PG_HTTP_AUTH_H
#define PG_HTTP_AUTH_H

#include <stddef.h>
#include <libwebsockets.h>

struct pg_gw;
struct pg_app;
struct pg_http;

/* HTTP Basic credentials of the request: 0 and user/pass filled, or -1 (absent or malformed). */
int pg_http_basic_auth(struct lws *wsi, char *user, size_t ulen, char *pass, size_t plen);
/*
 * The admin API's check: 1 when the request carries the configured admin
 * credentials (and a write comes from an allowed origin); otherwise h is
 * answered (401 with WWW-Authenticate, 403, or 404 when the admin API is off)
 * and 0 is returned.
 */
int pg_http_admin_ok(struct pg_gw *gw, struct pg_http *h);
/* HTTP Basic key:secret of app; otherwise h is answered (401 with WWW-Authenticate, 403 app disabled) and 0. */
int pg_http_app_basic_ok(struct pg_http *h, const struct pg_app *app);

#endif
