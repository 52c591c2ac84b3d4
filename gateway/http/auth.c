/*
 * The credentials the router checks before a handler runs (http/routes.c):
 * the admin's HTTP Basic (admin API, dashboard), with the origin rule for
 * admin writes, and an app's key:secret as HTTP Basic (per-app events API).
 * Comparisons take the same time whichever part is wrong.
 *
 * State: none (the configured admin credentials and allowed origins are
 * gw->cfg's). Who may call: the route table. Loop thread only.
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "config.h"
#include "core/app.h"
#include "core/gw.h"
#include "http/auth.h"
#include "http/http.h"
#include "log.h"
#include "pushgate_auth.h"

int pg_http_basic_auth(struct lws *wsi, char *user, size_t ulen, char *pass, size_t plen)
{
    char hdr[512], dec[384];
    if (pg_http_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, hdr, sizeof hdr) <= 0 || strncasecmp(hdr, "Basic ", 6))
        return -1;
    int n = lws_b64_decode_string(hdr + 6, dec, sizeof dec);
    if (n <= 0 || memchr(dec, '\0', (size_t)n))
        return -1;
    char *colon = strchr(dec, ':');
    if (!colon || (size_t)(colon - dec) >= ulen || strlen(colon + 1) >= plen)
        return -1;
    *colon = '\0';
    snprintf(user, ulen, "%s", dec);
    snprintf(pass, plen, "%s", colon + 1);
    OPENSSL_cleanse(dec, sizeof dec);
    return 0;
}

/* The origin a browser names: Origin, else Referer's scheme://host[:port]; 0 when neither is sent (curl, scripts),
   -1 when it cannot be read (taken as foreign). */
static int request_origin(struct lws *wsi, char *buf, size_t len)
{
    char ref[1024];
    int n = pg_http_header(wsi, WSI_TOKEN_ORIGIN, buf, (int)len);
    if (n != 0 || (n = pg_http_header(wsi, WSI_TOKEN_HTTP_REFERER, ref, sizeof ref)) <= 0)
        return n;
    const char *sep = strstr(ref, "://");
    if (!sep)
        return -1;
    size_t end = (size_t)(sep - ref) + 3 + strcspn(sep + 3, "/?#");
    if (end >= len)
        return -1;
    memcpy(buf, ref, end);
    buf[end] = '\0';
    return (int)end;
}

/*
 * Admin writes come from a browser only on the gateway's own origin (the
 * dashboard: Origin's host[:port] equal to Host) or one of
 * admin_allowed_origins. A page elsewhere cannot make a browser that holds
 * the admin's Basic credentials change anything (a form or text/plain POST
 * needs no CORS preflight). Requests without Origin or Referer are not a
 * browser's cross-site requests.
 */
static int admin_origin_ok(struct pg_gw *gw, struct lws *wsi)
{
    char origin[256], host[256];
    int n = request_origin(wsi, origin, sizeof origin);
    if (n <= 0)
        return n == 0;
    const char *rest = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
    if (rest && pg_http_header(wsi, WSI_TOKEN_HOST, host, sizeof host) > 0 && !strcasecmp(rest, host))
        return 1;
    for (const char *p = gw->cfg->admin_allowed_origins; *p;) { /* comma-separated exact values */
        p += strspn(p, " \t,");
        size_t l = strcspn(p, ","), t = l;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t && t == (size_t)n && !strncmp(p, origin, t))
            return 1;
        p += l;
    }
    return 0;
}

int pg_http_admin_ok(struct pg_gw *gw, struct pg_http *h)
{
    const struct pg_config *c = gw->cfg;
    char user[128] = "", pass[256] = "";
    if (!c->admin_password[0]) {
        pg_http_respond_error(h, 404, "admin API is off (set admin_password)");
        return 0;
    }
    int ok = pg_http_basic_auth(h->wsi, user, sizeof user, pass, sizeof pass) == 0;
    /* evaluate both comparisons: which half was wrong must not show in the timing */
    ok &= pg_secret_equal(user, strlen(user), c->admin_user, strlen(c->admin_user)) &
          pg_secret_equal(pass, strlen(pass), c->admin_password, strlen(c->admin_password));
    OPENSSL_cleanse(pass, sizeof pass);
    if (!ok) {
        h->www_auth = "Basic realm=\"pushgate admin\"";
        pg_http_respond_error(h, 401, "admin credentials required");
        return 0;
    }
    if (h->method != PG_GET && h->method != PG_OPTIONS && !admin_origin_ok(gw, h->wsi)) {
        pg_log(PG_LOG_INFO, "http", "admin request refused: origin not allowed (%s)", h->path);
        pg_http_respond_error(h, 403, "cross-site admin request: Origin not allowed (admin_allowed_origins)");
        return 0;
    }
    return 1;
}

int pg_http_app_basic_ok(struct pg_http *h, const struct pg_app *app)
{
    char user[128] = "", pass[256] = "";
    const struct pg_app_creds *c = app->creds;
    int ok = pg_http_basic_auth(h->wsi, user, sizeof user, pass, sizeof pass) == 0 && c->key;
    ok = ok && (pg_secret_equal(user, strlen(user), c->key, strlen(c->key)) &
                pg_secret_equal(pass, strlen(pass), c->secret, strlen(c->secret)));
    OPENSSL_cleanse(pass, sizeof pass);
    if (!ok) {
        h->www_auth = "Basic realm=\"pushgate app\"";
        pg_http_respond_error(h, 401, "app key and secret required (HTTP Basic)");
        return 0;
    }
    if (!c->active) {
        pg_http_respond_error(h, 403, "app disabled");
        return 0;
    }
    return 1;
}
