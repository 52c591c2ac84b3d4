/*
 * A gateway for the protocol harnesses, in memory: the real configuration
 * (FUZZ_CONFIG, loaded by pg_config_load), the real apps, a real lws context
 * with no listening socket, and a real bridge that is never started, so every
 * subscribe and publish takes the "broker unavailable" path at once. Nothing
 * connects anywhere. The config travels through a memfd; the admin API's apps
 * store lives in /tmp/pushgate-fuzz-{pid}-XXXXXX, removed at exit (and, after
 * a crash, by the next harness that starts).
 *
 * Built once per process (fuzz_gw()); every input then opens a session,
 * feeds it and releases it (fuzz_session_*), leaving the gateway as it was.
 */
#ifndef FUZZ_GW_H
#define FUZZ_GW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cluster/apps.h"
#include "cluster/push_regs.h"
#include "cluster/webhooks.h"
#include "config.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/session.h"
#include "dispatch.h"
#include "http/http.h"
#include "http/routes.h"
#include "http/upgrade.h"
#include "log.h"
#include "proto/native.h"
#include "proto/pusher.h"
#include "proto/pusher_wire.h"
#include "proto/sio.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"
#include "server.h"

/* An invariant of a harness: checked whatever NDEBUG says (a failure is a finding). */
#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                              \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define FUZZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret"
#define FUZZ_KEY "fuzzkey"
#define FUZZ_LOCKED_KEY "lockedkey"
#define FUZZ_SOCKET_ID "1234.5678" /* Pusher sessions' socket_id: seeds sign channel auth and signin for it */
#define FUZZ_CLIENT_ID "fuzzclientfuzzclient" /* native sessions' client_id: seeds' JWTs name it */
#define FUZZ_ADMIN_USER "admin"
#define FUZZ_ADMIN_PASSWORD "fuzz-admin-password"

/* The gateway (built at the first call; aborts when it cannot be). Apps: "demo" (open), "locked" (require_auth). */
struct pg_gw *fuzz_gw(void);
/* A raw lws connection that sessions may wake (lws_callback_on_writable); never serviced. */
struct lws *fuzz_gw_wsi(void);
/* Requests that reached the gateway's HTTP callback (lws refuses some itself, e.g. %00 in a path). */
extern unsigned long fuzz_http_requests;
extern char fuzz_http_path[1024]; /* the last one's path as lws gave it (decoded, "//" merged) */
/* Run the lws loop once without waiting (timers due now, adopted sockets). */
void fuzz_gw_service(void);

/*
 * Open s (&w.own of a zeroed struct pg_ws: the protocol keeps its own fields after it) as lws would for proto
 * in app: listed in gw->sessions.
 */
void fuzz_session_open(struct pg_session *s, struct pg_app *app, const struct pg_proto *proto);
/* Every frame queued on s must be a JSON object whose member key is a string; aborts otherwise. */
void fuzz_session_check_output(struct pg_session *s, const char *key);
/* Undo fuzz_session_open and whatever the input left (channels, queue, token, timers). */
void fuzz_session_close(struct pg_session *s);

/*
 * One input of a WebSocket frame harness (native, Pusher): the first byte picks the app (bit 0: "locked", which
 * requires auth), the rest is up to max_frames frames separated by 0x1f (never raw inside JSON text), fed in order
 * to one session of proto (client_id FUZZ_CLIENT_ID, Pusher: socket_id FUZZ_SOCKET_ID), so an authenticate or a
 * signin can precede a subscribe (each through proto->receive). check(frame) runs the harness's own invariants before each frame is received;
 * every frame queued in answer must be a JSON object with a string member key.
 */
void fuzz_frames(const uint8_t *data, size_t size, const struct pg_proto *proto, int max_frames,
                 void (*check)(const char *frame, size_t len), const char *key);

/* 1 when the JSON text is an object with a string member key. */
int fuzz_json_has_string(const char *text, size_t len, const char *key);

#endif
