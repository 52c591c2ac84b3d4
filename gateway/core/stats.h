/*
 * Per-app counters behind /metrics (http/metrics.c) and the dashboard
 * (http/dashboard.c): monotonic, never reset while the process runs.
 *
 * Each counter has one writer, named beside it; nobody else writes it. They
 * live in struct pg_app (core/app.h) rather than in each writer's state so
 * that the hot paths add to them without a lookup, and the readers find
 * every counter of an app in one place.
 */
#ifndef PG_CORE_STATS_H
#define PG_CORE_STATS_H

#include <stdint.h>

struct pg_app_stats {
    uint64_t frames_in, bytes_in;       /* WebSocket frames from clients: core/ws.c, proto/eio.c, proto/eio_ws.c */
    uint64_t frames_out, bytes_out;     /* WebSocket frames written to clients: the same */
    uint64_t published, publish_failed; /* publishes handed to the broker on behalf of clients: core/publish.c */
    uint64_t delivered;                 /* broker messages fanned out (once per message): core/fanout.c */
    uint64_t slow_closes;               /* sessions closed as slow consumers: core/session.c, core/publish.c */
    uint64_t gaps;                      /* messages that revealed missed ones before them: core/fanout.c */
    uint64_t gap_signals;               /* sessions told they missed messages: core/session.c */
    uint64_t shed;                      /* publishes refused because this gateway was behind: core/publish.c */
};

#endif
