/*
 * pushgate_bridge_tool: runs the gateway's MQTT bridge (bridge/) alone against a real broker, so
 * bridge.test.mjs can check when the bridge calls itself ready:
 *
 *   pushgate_bridge_tool HOST PORT USER PASSWORD FILTER...
 *
 * Each FILTER is subscribed before connecting; a FILTER written @FILTER is subscribed from the on_state callback
 * instead, the way the gateway adds its control filters when the connection comes up. Every SUBACK is awaited with
 * pg_bridge_subscribe_wait. One line per event on stdout:
 *
 *   connected ready=R        on_state(1), with pg_bridge_ready() at that moment
 *   granted FILTER           the SUBACK of FILTER was processed
 *   ready                    pg_bridge_ready() turned 1 (checked after every pg_bridge_io)
 *
 * Exits 0 once ready and every filter granted; 1 after 10 s or on an error (message on stderr).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pushgate_bridge.h"

struct tool {
    pg_bridge *bridge;
    int fd;
    char **filters;
    int nfilters;
    int granted;
    int failed;
};

struct grant {
    struct tool *t;
    const char *filter;
};

static struct grant grants[64];

static void on_granted(void *ud, int result)
{
    struct grant *g = ud;
    if (result != 0) {
        fprintf(stderr, "subscription %s not granted (%d)\n", g->filter, result);
        g->t->failed = 1;
        return;
    }
    printf("granted %s\n", g->filter);
    g->t->granted++;
}

static void await_grant(struct tool *t, int i)
{
    grants[i].t = t;
    grants[i].filter = t->filters[i];
    int rc = pg_bridge_subscribe_wait(t->bridge, grants[i].filter, on_granted, &grants[i]);
    if (rc == 0)
        on_granted(&grants[i], 0);
    else if (rc != 1)
        t->failed = 1;
}

static void on_socket(void *ud, int fd)
{
    ((struct tool *)ud)->fd = fd;
}

static void on_state(void *ud, int connected)
{
    struct tool *t = ud;
    if (!connected) {
        fprintf(stderr, "connection lost\n");
        t->failed = 1;
        return;
    }
    printf("connected ready=%d\n", pg_bridge_ready(t->bridge));
    for (int i = 0; i < t->nfilters; i++) {
        if (t->filters[i][0] == '@') {
            t->filters[i]++;
            if (pg_bridge_subscribe(t->bridge, t->filters[i]) != 0)
                t->failed = 1;
        }
    }
    for (int i = 0; i < t->nfilters; i++)
        await_grant(t, i);
}

static void on_log(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= 2)
        fprintf(stderr, "bridge: %s\n", msg);
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc - 5 > (int)(sizeof grants / sizeof grants[0])) {
        fprintf(stderr, "usage: %s HOST PORT USER PASSWORD FILTER... (at most 64 filters)\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct tool t = {.fd = -1, .filters = argv + 5, .nfilters = argc - 5};
    struct pg_bridge_config cfg = {
        .host = argv[1],
        .port = atoi(argv[2]),
        .username = argv[3],
        .password = argv[4],
        .client_id = "pushgate-bridge-tool",
        .keepalive_s = 30,
        .reconnect_min_ms = 100,
        .reconnect_max_ms = 1000,
        .publish_timeout_ms = 5000,
    };
    struct pg_bridge_ops ops = {.on_socket = on_socket, .on_state = on_state, .on_log = on_log};
    if (pg_bridge_new(&cfg, &ops, &t, &t.bridge) != 0) {
        fprintf(stderr, "cannot create the bridge\n");
        return 1;
    }
    for (int i = 0; i < t.nfilters; i++) {
        if (t.filters[i][0] != '@' && pg_bridge_subscribe(t.bridge, t.filters[i]) != 0) {
            fprintf(stderr, "cannot subscribe %s\n", t.filters[i]);
            pg_bridge_free(t.bridge);
            return 1;
        }
    }
    pg_bridge_start(t.bridge);

    int ready = 0, rc = 1;
    int64_t deadline = pg_mono_ms() + 10000;
    while (!t.failed && pg_mono_ms() < deadline) {
        if (t.fd >= 0) {
            struct pollfd p = {.fd = t.fd, .events = POLLIN | (pg_bridge_want_write(t.bridge) ? POLLOUT : 0)};
            int n = poll(&p, 1, PG_BRIDGE_TICK_MS);
            if (n > 0)
                pg_bridge_io(t.bridge, (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0, (p.revents & POLLOUT) != 0);
        } else {
            poll(NULL, 0, PG_BRIDGE_TICK_MS);
        }
        pg_bridge_tick(t.bridge);
        if (!ready && pg_bridge_ready(t.bridge)) {
            ready = 1;
            printf("ready\n");
        }
        if (ready && t.granted == t.nfilters) {
            rc = 0;
            break;
        }
    }
    if (rc != 0 && !t.failed)
        fprintf(stderr, "timed out: ready=%d granted=%d/%d\n", ready, t.granted, t.nfilters);
    pg_bridge_free(t.bridge);
    return rc;
}
