/*
 * Pusher-style webhooks. Events queue per app; once the oldest queued event is
 * webhook_batch_ms old, up to WH_BATCH_MAX of them leave as one signed POST.
 * Each app has at most one request in flight, so a receiver sees batches in
 * the order their events happened, and a failed batch is retried (same body,
 * same signature) with exponential backoff before anything newer is sent.
 *
 * libcurl's multi interface is driven from the loop's 100 ms tick. perform()
 * only does non-blocking socket work (names resolve on libcurl's resolver
 * thread), so a slow, hanging or dead receiver costs the loop nothing; it only
 * delays its own webhooks.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cluster/webhooks.h"
#include "core/app.h"
#include "core/gw.h"
#include "log.h"

#define WH_BATCH_MAX 100 /* events per POST: the body stays small however long the backlog */
#define WH_BACKOFF_FIRST_MS 1000
#define WH_BACKOFF_MAX_MS 60000
#define WH_DROP_LOG_MS 1000 /* queue overflow is reported at most once a second per app */

struct wh_event {
    json_t *ev;    /* owned reference */
    int64_t at_ms; /* monotonic arrival */
};

struct wh_app {
    struct pg_app *app; /* hash key (the pointer) */
    struct wh_event *ring;
    size_t head, count, cap;
    /* the batch being delivered: its body is kept unchanged across retries */
    char *body;
    size_t body_len, body_events;
    int attempts;
    int64_t retry_at_ms;
    CURL *easy; /* non-NULL while in flight */
    struct curl_slist *headers;
    uint64_t overflow_unlogged;
    int64_t overflow_log_ms;
    UT_hash_handle hh;
};

struct pg_webhooks {
    struct pg_gw *gw;
    CURLM *multi;
    struct wh_app *apps;
    size_t pending; /* events queued plus events in the current batches */
    uint64_t dropped;
};

static struct wh_app *app_get(struct pg_webhooks *w, struct pg_app *app)
{
    struct wh_app *a;
    HASH_FIND_PTR(w->apps, &app, a);
    if (a)
        return a;
    if (!(a = calloc(1, sizeof *a)))
        return NULL;
    a->app = app;
    HASH_ADD_PTR(w->apps, app, a);
    return a;
}

static int ring_grow(struct wh_app *a, size_t limit)
{
    size_t cap = a->cap ? a->cap * 2 : 16;
    if (cap > limit)
        cap = limit;
    struct wh_event *r = malloc(cap * sizeof *r);
    if (!r)
        return PG_ENOMEM;
    for (size_t i = 0; i < a->count; i++)
        r[i] = a->ring[(a->head + i) % a->cap];
    free(a->ring);
    a->ring = r;
    a->head = 0;
    a->cap = cap;
    return 0;
}

static void ring_pop(struct wh_app *a)
{
    json_decref(a->ring[a->head].ev);
    a->head = (a->head + 1) % a->cap;
    a->count--;
}

static void overflow_log(struct wh_app *a, int64_t now)
{
    if (!a->overflow_unlogged || now - a->overflow_log_ms < WH_DROP_LOG_MS)
        return;
    pg_log(PG_LOG_WARN, "webhooks", "queue full, oldest events dropped app=%s dropped=%llu queued=%zu",
           a->app->creds->id, (unsigned long long)a->overflow_unlogged, a->count);
    a->overflow_unlogged = 0;
    a->overflow_log_ms = now;
}

void pg_webhook_emit(struct pg_gw *gw, struct pg_app *app, json_t *event)
{
    struct pg_webhooks *w = gw->webhooks;
    struct wh_app *a;
    int64_t now;
    size_t limit;

    if (!event || !w || !app || !app->conf || !app->conf->webhook_url)
        goto out;
    if (!(a = app_get(w, app))) {
        pg_log(PG_LOG_WARN, "webhooks", "out of memory, event dropped app=%s", app->creds->id);
        goto out;
    }
    now = pg_mono_ms();
    limit = (size_t)w->gw->cfg->webhook_max_queue;
    if (a->count >= limit) {
        ring_pop(a);
        w->pending--;
        w->dropped++;
        a->overflow_unlogged++;
        overflow_log(a, now);
    }
    if (a->count == a->cap && ring_grow(a, limit) != 0) {
        pg_log(PG_LOG_WARN, "webhooks", "out of memory, event dropped app=%s", app->creds->id);
        goto out;
    }
    a->ring[(a->head + a->count) % a->cap] = (struct wh_event){event, now};
    a->count++;
    w->pending++;
    event = NULL;
out:
    json_decref(event);
}

static void batch_clear(struct pg_webhooks *w, struct wh_app *a)
{
    free(a->body);
    a->body = NULL;
    a->body_len = 0;
    w->pending -= a->body_events;
    a->body_events = 0;
    a->attempts = 0;
    a->retry_at_ms = 0;
}

/* Move up to WH_BATCH_MAX queued events into a new body {"time_ms":…, "events":[…]}. */
static int batch_build(struct wh_app *a)
{
    json_t *root = json_object(), *events = json_array();
    size_t n = a->count < WH_BATCH_MAX ? a->count : WH_BATCH_MAX;
    int rc = PG_ENOMEM;

    if (!root || !events)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (json_array_append(events, a->ring[(a->head + i) % a->cap].ev) != 0)
            goto out;
    if (json_object_set_new(root, "time_ms", json_integer((json_int_t)pg_now_ms())) != 0 ||
        json_object_set(root, "events", events) != 0)
        goto out;
    if (!(a->body = json_dumps(root, JSON_COMPACT)))
        goto out;
    a->body_len = strlen(a->body);
    a->body_events = n;
    a->attempts = 0;
    a->retry_at_ms = 0;
    for (size_t i = 0; i < n; i++)
        ring_pop(a);
    rc = 0;
out:
    json_decref(events);
    json_decref(root);
    return rc;
}

static void transfer_release(struct pg_webhooks *w, struct wh_app *a)
{
    if (a->easy) {
        curl_multi_remove_handle(w->multi, a->easy);
        curl_easy_cleanup(a->easy);
        a->easy = NULL;
    }
    curl_slist_free_all(a->headers);
    a->headers = NULL;
}

/* One attempt of the current batch ended without a 2xx: retry later, or give up after webhook_max_attempts. */
static void attempt_failed(struct pg_webhooks *w, struct wh_app *a, long status, const char *why)
{
    long long max = w->gw->cfg->webhook_max_attempts;
    a->attempts++;
    if (a->attempts >= max) {
        pg_log(PG_LOG_WARN, "webhooks", "batch dropped after %d attempts app=%s events=%zu status=%ld error=%s",
               a->attempts, a->app->creds->id, a->body_events, status, why);
        w->dropped += a->body_events;
        batch_clear(w, a);
        return;
    }
    int64_t delay = WH_BACKOFF_MAX_MS;
    if (a->attempts <= 6)
        delay = (int64_t)WH_BACKOFF_FIRST_MS << (a->attempts - 1);
    if (delay > WH_BACKOFF_MAX_MS)
        delay = WH_BACKOFF_MAX_MS;
    a->retry_at_ms = pg_mono_ms() + delay;
    pg_log(PG_LOG_INFO, "webhooks",
           "delivery failed, retrying app=%s status=%ld error=%s attempt=%d/%lld retry_ms=%lld", a->app->creds->id,
           status, why, a->attempts, max, (long long)delay);
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* curl_slist_append leaves the list untouched on failure; this keeps it owned and reports the failure. */
static int header_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return PG_ENOMEM;
    *list = l;
    return 0;
}

static int transfer_start(struct pg_webhooks *w, struct wh_app *a)
{
    const struct pg_app_creds *cr = a->app->creds;
    char sig[65], line[256];
    CURL *e = NULL;
    int rc = PG_ENOMEM;

    if (pg_hmac_sha256_hex(cr->secret, strlen(cr->secret), a->body, a->body_len, sig) != 0)
        goto out;
    snprintf(line, sizeof line, "X-Pusher-Signature: %s", sig);
    if (header_add(&a->headers, "Content-Type: application/json") != 0 || header_add(&a->headers, line) != 0 ||
        header_add(&a->headers, "Expect:") != 0) /* no 100-continue round trip */
        goto out;
    if (cr->key) {
        if (snprintf(line, sizeof line, "X-Pusher-Key: %s", cr->key) >= (int)sizeof line)
            goto out;
        if (header_add(&a->headers, line) != 0)
            goto out;
    }
    if (!(e = curl_easy_init()))
        goto out;
    rc = PG_EINVAL;
    if (curl_easy_setopt(e, CURLOPT_URL, a->app->conf->webhook_url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->gw->cfg->webhook_timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body) != CURLE_OK || /* not copied: a->body outlives e */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "pushgate/" PUSHGATE_VERSION) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)a) != CURLE_OK)
        goto out;
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK)
        goto out;
    a->easy = e;
    e = NULL;
    rc = 0;
out:
    curl_easy_cleanup(e);
    if (rc != 0) {
        curl_slist_free_all(a->headers);
        a->headers = NULL;
    }
    return rc;
}

static void transfer_done(struct pg_webhooks *w, CURL *e, CURLcode res)
{
    char *priv = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    struct wh_app *a = (struct wh_app *)priv;
    if (!a || a->easy != e) {
        /* not ours: cannot happen, but never leave a finished handle in the multi */
        curl_multi_remove_handle(w->multi, e);
        curl_easy_cleanup(e);
        return;
    }
    if (res == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    transfer_release(w, a);
    if (res != CURLE_OK) {
        /* curl_easy_strerror names the failure class only: no URL, so no credentials in the log */
        attempt_failed(w, a, 0, curl_easy_strerror(res));
        return;
    }
    if (status < 200 || status > 299) {
        attempt_failed(w, a, status, "non-2xx");
        return;
    }
    pg_log(PG_LOG_DEBUG, "webhooks", "delivered app=%s events=%zu status=%ld attempt=%d", a->app->creds->id,
           a->body_events, status, a->attempts + 1);
    batch_clear(w, a);
}

void pg_webhooks_tick(struct pg_webhooks *w)
{
    struct wh_app *a, *tmp;
    CURLMsg *msg;
    int running = 0, left = 0, started = 0;

    if (!w)
        return;
    curl_multi_perform(w->multi, &running);
    while ((msg = curl_multi_info_read(w->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            transfer_done(w, msg->easy_handle, msg->data.result);

    int64_t now = pg_mono_ms();
    HASH_ITER(hh, w->apps, a, tmp) {
        overflow_log(a, now);
        if (a->easy)
            continue;
        if (!a->body) {
            /* while draining, nothing more will join a batch: send at once */
            if (!a->count || (!w->gw->draining && now - a->ring[a->head].at_ms < w->gw->cfg->webhook_batch_ms))
                continue;
            if (batch_build(a) != 0) {
                pg_log(PG_LOG_WARN, "webhooks", "out of memory building a batch app=%s", a->app->creds->id);
                continue;
            }
        }
        if (now < a->retry_at_ms)
            continue;
        if (transfer_start(w, a) != 0)
            attempt_failed(w, a, 0, "cannot start request");
        else
            started = 1;
    }
    /* begin the new requests now rather than a tick later */
    if (started)
        curl_multi_perform(w->multi, &running);
}

size_t pg_webhooks_pending(const struct pg_webhooks *w)
{
    return w ? w->pending : 0;
}

int pg_webhooks_new(struct pg_gw *gw, struct pg_webhooks **out)
{
    struct pg_webhooks *w = NULL;
    int rc = PG_ENOMEM;

    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return PG_EIO;
    if (!(w = calloc(1, sizeof *w)) || !(w->multi = curl_multi_init()))
        goto out;
    w->gw = gw;
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS))
        pg_log(PG_LOG_WARN, "webhooks",
               "libcurl %s resolves names synchronously: a webhook_url host name can stall the loop, use an address",
               vi->version);
    *out = w;
    w = NULL;
    rc = 0;
out:
    if (w) {
        free(w);
        curl_global_cleanup();
    }
    return rc;
}

void pg_webhooks_free(struct pg_webhooks *w)
{
    struct wh_app *a, *tmp;
    if (!w)
        return;
    if (w->pending)
        pg_log(PG_LOG_WARN, "webhooks", "stopping with %zu undelivered events", w->pending);
    HASH_ITER(hh, w->apps, a, tmp) {
        transfer_release(w, a);
        free(a->body);
        while (a->count)
            ring_pop(a);
        free(a->ring);
        HASH_DEL(w->apps, a);
        free(a);
    }
    curl_multi_cleanup(w->multi);
    free(w);
    curl_global_cleanup();
}
