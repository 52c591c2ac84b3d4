/*
 * Per-address admission: optional limits on the sessions one client IP
 * address holds (max_sessions_per_address) and opens per second
 * (max_new_sessions_per_address), for every session kind (native, Pusher,
 * socket.io), checked where a session is admitted, beside max_sessions.
 *
 * The address is the TCP peer. Behind a reverse proxy every client shares the
 * proxy's address, which is why both limits are off (0) by default: they are
 * for gateways that browsers reach directly.
 *
 * Memory stays bounded: an entry exists only while its address holds a
 * session or opened one within the last second, so there are at most
 * max_sessions + (sessions admitted in the last two seconds) entries. An
 * entry's count is the number of sessions whose ->addr points to it
 * (borrowed by the session); the entry is freed here, never while counted.
 * With both limits off nothing is allocated and sessions carry no entry.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/admission.h"
#include "core/gw.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"

#define WINDOW_MS 1000
#define SWEEP_INTERVAL_MS 1000

struct pg_addr {
    char ip[64];          /* lws_get_peer_simple()'s text: the hash key */
    long long sessions;   /* live sessions attached to this entry */
    int64_t window_ms;    /* start (monotonic) of the one-second window of new sessions */
    long long window_new; /* sessions admitted in that window */
    UT_hash_handle hh;    /* gw->addrs */
};

static int limits_on(const struct pg_gw *gw)
{
    return gw->cfg->max_sessions_per_address > 0 || gw->cfg->max_new_sessions_per_address > 0;
}

static int peer_ip(struct lws *wsi, char *buf, size_t len)
{
    const char *ip = wsi ? lws_get_peer_simple(wsi, buf, len) : NULL;
    return ip && *buf ? 0 : -1;
}

static struct pg_addr *addr_get(struct pg_gw *gw, const char *ip, int create)
{
    struct pg_addr *a;
    HASH_FIND_STR(gw->addrs, ip, a);
    if (a || !create)
        return a;
    if (!(a = calloc(1, sizeof *a)))
        return NULL;
    snprintf(a->ip, sizeof a->ip, "%s", ip);
    HASH_ADD_STR(gw->addrs, ip, a);
    return a;
}

static void addr_drop_if_idle(struct pg_gw *gw, struct pg_addr *a, int64_t now)
{
    if (a->sessions == 0 && now - a->window_ms >= WINDOW_MS) {
        HASH_DEL(gw->addrs, a);
        free(a);
    }
}

const char *pg_addr_refusal(struct pg_gw *gw, struct lws *wsi)
{
    const struct pg_config *c = gw->cfg;
    char ip[64];
    if (!limits_on(gw) || peer_ip(wsi, ip, sizeof ip) != 0)
        return NULL; /* no limits, or no address to count (never the case for a TCP peer) */
    int64_t now = pg_mono_ms();
    struct pg_addr *a = addr_get(gw, ip, 0);
    if (a && c->max_sessions_per_address > 0 && a->sessions >= c->max_sessions_per_address) {
        pg_log(PG_LOG_DEBUG, "admission", "session refused address=%s: max_sessions_per_address", ip);
        return "too many sessions from this address (max_sessions_per_address)";
    }
    if (a && now - a->window_ms >= WINDOW_MS) {
        a->window_ms = now;
        a->window_new = 0;
    }
    if (a && c->max_new_sessions_per_address > 0 && a->window_new >= c->max_new_sessions_per_address) {
        pg_log(PG_LOG_DEBUG, "admission", "session refused address=%s: max_new_sessions_per_address", ip);
        return "too many new sessions from this address (max_new_sessions_per_address)";
    }
    if (!a) {
        if (!(a = addr_get(gw, ip, 1)))
            return "out of memory";
        a->window_ms = now;
    }
    a->window_new++;
    return NULL;
}

void pg_addr_attach(struct pg_gw *gw, struct pg_session *s, struct lws *wsi)
{
    char ip[64];
    if (s->addr || !limits_on(gw) || peer_ip(wsi, ip, sizeof ip) != 0)
        return;
    struct pg_addr *a = addr_get(gw, ip, 1);
    if (!a)
        return; /* out of memory: the session goes uncounted rather than refused after its upgrade */
    if (!a->window_ms)
        a->window_ms = pg_mono_ms();
    a->sessions++;
    s->addr = a;
}

void pg_addr_detach(struct pg_gw *gw, struct pg_session *s)
{
    struct pg_addr *a = s->addr;
    if (!a)
        return;
    s->addr = NULL;
    a->sessions--;
    addr_drop_if_idle(gw, a, pg_mono_ms());
}

void pg_addr_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    if (!gw->addrs || now - gw->addrs_swept_ms < SWEEP_INTERVAL_MS)
        return;
    gw->addrs_swept_ms = now;
    struct pg_addr *a, *tmp;
    HASH_ITER(hh, gw->addrs, a, tmp) {
        addr_drop_if_idle(gw, a, now);
    }
}

void pg_addr_free(struct pg_gw *gw)
{
    struct pg_addr *a, *tmp;
    HASH_ITER(hh, gw->addrs, a, tmp) {
        HASH_DEL(gw->addrs, a);
        free(a);
    }
}

const char *pg_session_refusal(const struct pg_gw *gw)
{
    /* like /readyz: no new sessions while they could not subscribe or publish */
    if (gw->draining)
        return "shutting down";
    if (!pg_bridge_connected(gw->bridge))
        return "broker unavailable";
    if (!pg_bridge_ready(gw->bridge))
        return "broker subscriptions not restored yet";
    if (gw->nsessions >= (size_t)gw->cfg->max_sessions)
        return "over capacity (max_sessions)";
    return NULL;
}
