/*
 * The ScaleDrone-style REST publish:
 *
 *   POST /{app}/{channel}/publish   body: the message (any bytes; JSON when Content-Type says so)
 *
 * Anonymous for public channels of an open app; otherwise Authorization:
 * Bearer <JWT> of the app allowing the publish. Answered once the broker
 * acknowledged the message (pg_http_publish).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/apps.h"
#include "cluster/devices.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "http/http.h"
#include "http/rest.h"
#include "pg_common.h"
#include "pushgate_auth.h"

void pg_rest_publish(struct pg_gw *gw, struct pg_http *h)
{
    const char *channel = pg_http_arg(h, "channel");
    char ctype[128] = "", auth[64 + 8192] = "", why[160];
    pg_token *tok = NULL;
    if (h->body_too_big) {
        pg_http_respond_error(h, 413, "body larger than max_body_bytes");
        return;
    }
    if (!h->body_len) {
        pg_http_respond_error(h, 400, "empty message");
        return;
    }
    if (!h->app->creds->active) {
        pg_http_respond_error(h, 403, "app disabled");
        return;
    }
    if (pg_devices_channel_reserved(gw, channel)) {
        pg_http_respond_error(h, 403, "only the broker reports device presence on this channel");
        return;
    }
    if (pg_channel_check(channel, strlen(channel), (size_t)gw->cfg->max_channel_bytes, 0) != 0) {
        pg_http_respond_error(h, 400, "invalid channel name (UTF-8, no + or #, not too long)");
        return;
    }
    if (h->body_len > gw->cfg->max_message_bytes) {
        pg_http_respond_error(h, 413, "message larger than max_message_bytes");
        return;
    }
    pg_http_header(h->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    if (!strncasecmp(ctype, "application/json", 16)) {
        json_t *j = json_loadb(h->body, h->body_len, JSON_DECODE_ANY, NULL);
        if (!j) {
            pg_http_respond_error(h, 400, "body is not valid JSON but Content-Type says application/json");
            return;
        }
        json_decref(j);
    }
    int alen = pg_http_header(h->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
    if (alen < 0) {
        pg_http_respond_error(h, 401, "Authorization header too long");
        return;
    }
    if (alen > 0) {
        if (strncasecmp(auth, "Bearer ", 7) != 0) {
            pg_http_respond_error(h, 401, "Authorization must be \"Bearer <JWT>\"");
            return;
        }
        int rc = pg_token_verify(auth + 7, strlen(auth + 7), h->app->creds, &gw->limits, pg_now_ms(), &tok, why,
                                 sizeof why);
        if (rc != 0) {
            pg_http_respond_error(h, 401, why);
            return;
        }
        if (pg_revoked(gw, h->app->id, "jti", pg_token_jti(tok)) ||
            pg_revoked(gw, h->app->id, "client", pg_token_client(tok))) {
            pg_token_free(tok);
            pg_http_respond_error(h, 401, "token revoked");
            return;
        }
        if (pg_token_allows(tok, PG_ACT_PUBLISH, channel, strlen(channel)) != PG_ALLOW) {
            pg_token_free(tok);
            pg_http_respond_error(h, 403, "token does not allow publishing to this channel");
            return;
        }
        pg_token_free(tok);
    } else if (h->app->creds->require_auth) {
        pg_http_respond_error(h, 401, "this app requires a JWT: Authorization: Bearer <token>");
        return;
    } else if (pg_channel_protected(channel, strlen(channel))) {
        pg_http_respond_error(h, 401, "private- and presence- channels need a JWT: Authorization: Bearer <token>");
        return;
    }
    const char *props[] = {"event", "message", NULL};
    char *topic = pg_channel_topic(gw, h->app->creds->id, channel);
    if (!topic) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    pg_http_publish(gw, h, h->app->creds->id, topic, h->body, h->body_len, props, NULL);
    free(topic);
}
