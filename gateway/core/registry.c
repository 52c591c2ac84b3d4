/*
 * Sessions by serial (core/registry.h). The table is gw->sessions (uthash by
 * serial) with its count gw->nsessions; only this file adds or removes
 * entries. Releasing a session leaves its channels (core/channels.c) and its
 * address slot (core/admission.c) before it is unlisted, so nothing in the
 * index points at a session that is gone.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "core/admission.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"
#include "pushgate_auth.h"

struct pg_session *pg_session_find(struct pg_gw *gw, uint64_t serial)
{
    struct pg_session *s;
    HASH_FIND(hh, gw->sessions, &serial, sizeof serial, s);
    return s;
}

void pg_session_register(struct pg_gw *gw, struct pg_session *s, struct lws *wsi)
{
    s->gw = gw;
    s->serial = ++gw->next_serial;
    HASH_ADD(hh, gw->sessions, serial, sizeof s->serial, s);
    gw->nsessions++;
    gw->sessions_opened++;
    gw->session_opened_ms = pg_mono_ms();
    pg_addr_attach(gw, s, wsi);
}

/*
 * A burst of new sessions leaves free heap pages resident between the allocations of the sessions that stay
 * (handshakes, requests and replies come and go among them): about 0.3 KB per idle WebSocket after 10,000 opened at
 * once (bench/README.md, W3 memory). Once no session has opened for a second, they go back to the kernel. One
 * malloc_trim() per burst; it walks only the free chunks.
 */
void pg_sessions_tick(struct pg_gw *gw)
{
    if (gw->sessions_opened != gw->sessions_trimmed && pg_mono_ms() - gw->session_opened_ms >= 1000) {
        gw->sessions_trimmed = gw->sessions_opened;
        malloc_trim(0);
    }
}

void pg_session_release(struct pg_gw *gw, struct pg_session *s)
{
    if (!s->serial)
        return; /* never opened */
    pg_log(PG_LOG_DEBUG, "session", "closed app=%s client=%s", s->app ? s->app->creds->id : "-", s->client_id);
    pg_ws_collected(s); /* a message still arriving in pieces */
    pg_addr_detach(gw, s);
    pg_channel_leave_all(s);
    pg_outq_clear(&s->q);
    lws_dll2_remove(&s->loaded); /* gw->loaded (core/publish.c's tick) */
    pg_token_free(s->token);
    if (s->proto->release)
        s->proto->release(s);
    HASH_DEL(gw->sessions, s);
    gw->nsessions--;
    memset(s, 0, sizeof *s);
}

void pg_sessions_terminate_user(struct pg_gw *gw, struct pg_app *app, const char *user_id)
{
    struct pg_session *s, *tmp;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        /* a socket.io session registered for the user is one of the user's connections too */
        const char *u = s->app == app ? s->proto->user(s) : NULL;
        if (u && !strcmp(u, user_id))
            s->proto->terminate(s);
    }
}
