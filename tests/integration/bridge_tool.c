/*
 * pushgate_bridge_tool: runs the gateway's MQTT bridge (bridge/) alone against a real broker, so
 * bridge.test.mjs can check when the bridge calls itself ready:
 *
 *   pushgate_bridge_tool HOST PORT USER PASSWORD FILTER...
 *
 * Each FILTER is subscribed before connecting; a FILTER written @FILTER is subscribed from the on_state callback
 * instead, the way the gateway adds its control filters when the connection comes up. A FILTER written !FILTER
 * is expected to be refused by the broker. *N:PREFIX stands for the N filters PREFIX/0 .. PREFIX/N-1, subscribed
 * all in one loop pass once the bridge is ready, then flushed (pg_bridge_flush), as a storm of session opens
 * would. In that same pass a filter written ~FILTER (subscribed before connecting like a plain one) is dropped and
 * subscribed again (its new SUBACK awaited), and one written %FILTER is subscribed and dropped (never answered,
 * never sent). Every SUBACK is awaited with pg_bridge_subscribe_wait. A FILTER written ^FILTER (an exact topic) is
 * subscribed with PG_BRIDGE_SUB_NO_LOCAL; with one of those, once every filter is answered the tool publishes one
 * message to each FILTER through the bridge and reads what comes back for a second after the last PUBACK, so the
 * test sees which of its own publishes the broker returned. One line per event on stdout:
 *
 *   connected ready=R        on_state(1), with pg_bridge_ready() at that moment
 *   granted FILTER           the SUBACK of FILTER was processed
 *   refused FILTER           the broker refused FILTER (an error unless written !FILTER)
 *   ready                    pg_bridge_ready() turned 1 (checked after every pg_bridge_io)
 *   granted N PREFIX/...     the N filters of *N:PREFIX were all granted
 *   message TOPIC            a message arrived on TOPIC (only after the ^ publishes)
 *
 * The client id is pushgate-bridge-tool, or $BRIDGE_TOOL_CLIENT_ID when set (to log in as an app's device).
 *
 * Exits 0 once ready and every filter answered as expected; 1 after 20 s or on an error (message on stderr).
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
    int answered; /* of filters: granted, or refused as expected */
    int failed;
    const char *many_prefix; /* *N:PREFIX, NULL if none */
    int many, many_granted, many_started;
    int npass; /* ~ and % filters, handled in the ready pass */
    char **many_filters;
    int echo; /* some filter is ^FILTER: publish to every filter at the end */
    int echo_sent, echo_acked;
    int64_t echo_until; /* monotonic ms: reading what came back until then (0: not all acknowledged yet) */
};

struct grant {
    struct tool *t;
    const char *filter;
    int expect_refused;
    int many;
    char pass; /* '~' or '%': see the ready pass */
    int no_local; /* ^FILTER */
};

static struct grant *grants;

static void on_granted(void *ud, int result)
{
    struct grant *g = ud;
    struct tool *t = g->t;
    if (result == PG_EDENIED && g->expect_refused) {
        printf("refused %s\n", g->filter);
        t->answered++;
        return;
    }
    if (result != 0 || g->expect_refused) {
        fprintf(stderr, "subscription %s %s (%d)\n", g->filter, result ? "not granted" : "granted", result);
        t->failed = 1;
        return;
    }
    if (g->many) {
        if (++t->many_granted == t->many)
            printf("granted %d %s/...\n", t->many, t->many_prefix);
        return;
    }
    printf("granted %s\n", g->filter);
    t->answered++;
}

static void await_grant(struct tool *t, struct grant *g)
{
    g->t = t;
    int rc = pg_bridge_subscribe_wait(t->bridge, g->filter, on_granted, g);
    if (rc == 0)
        on_granted(g, 0);
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
    for (int i = 0; i < t->nfilters; i++) {
        grants[i].filter = t->filters[i];
        if (grants[i].pass == '%')
            t->answered++; /* nothing to wait for */
        else
            await_grant(t, &grants[i]);
    }
}

/* One loop pass: the ~ and % filters, every filter of *N:PREFIX, then one flush. */
static void subscribe_many(struct tool *t)
{
    t->many_started = 1;
    for (int i = 0; i < t->nfilters; i++) {
        if (grants[i].pass == '~') {
            if (pg_bridge_unsubscribe(t->bridge, t->filters[i]) != 0 || pg_bridge_subscribe(t->bridge, t->filters[i]))
                t->failed = 1;
            t->answered--; /* answered again at its new SUBACK */
            await_grant(t, &grants[i]);
        } else if (grants[i].pass == '%') {
            if (pg_bridge_subscribe(t->bridge, t->filters[i]) != 0 || pg_bridge_unsubscribe(t->bridge, t->filters[i]))
                t->failed = 1;
        }
    }
    for (int i = 0; i < t->many; i++) {
        if (pg_bridge_subscribe(t->bridge, t->many_filters[i]) != 0) {
            t->failed = 1;
            return;
        }
        struct grant *g = &grants[t->nfilters + i];
        g->filter = t->many_filters[i];
        g->many = 1;
        await_grant(t, g);
    }
    pg_bridge_flush(t->bridge);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len, const struct pg_bridge_prop *props,
                       size_t nprops)
{
    (void)ud, (void)payload, (void)len, (void)props, (void)nprops;
    printf("message %s\n", topic);
}

static void on_echo_ack(void *ud, int result)
{
    struct tool *t = ud;
    if (result != 0) {
        fprintf(stderr, "publish not acknowledged (%d)\n", result);
        t->failed = 1;
    } else if (++t->echo_acked == t->echo_sent) {
        t->echo_until = pg_mono_ms() + 1000;
    }
}

/* One message to every filter, its own topic; what comes back is printed by on_message. */
static void publish_echo(struct tool *t)
{
    for (int i = 0; i < t->nfilters; i++) {
        if (pg_bridge_publish(t->bridge, t->filters[i], "x", 1, NULL, 0, on_echo_ack, t) != 0)
            t->failed = 1;
        else
            t->echo_sent++;
    }
    pg_bridge_flush(t->bridge);
}

/* The options a filter's first subscribe fixes, and what No Local refuses; before connecting. */
static int check_options(pg_bridge *b)
{
    int bad = 0;
    bad |= pg_bridge_subscribe_opts(b, "$share/g/pushgate/x", PG_BRIDGE_SUB_NO_LOCAL) != PG_EINVAL;
    bad |= pg_bridge_subscribe_opts(b, "pushgate/opts", 0x80) != PG_EINVAL;
    bad |= pg_bridge_subscribe_opts(b, "pushgate/opts", PG_BRIDGE_SUB_NO_LOCAL) != 0;
    bad |= pg_bridge_subscribe(b, "pushgate/opts") != PG_EINVAL;
    bad |= pg_bridge_subscribe_opts(b, "pushgate/opts", PG_BRIDGE_SUB_NO_LOCAL) != 0; /* a second reference */
    bad |= pg_bridge_unsubscribe(b, "pushgate/opts") != 0 || pg_bridge_unsubscribe(b, "pushgate/opts") != 0;
    bad |= pg_bridge_unsubscribe(b, "pushgate/opts") != PG_ENOTFOUND;
    if (bad)
        fprintf(stderr, "subscription options: unexpected result\n");
    return bad ? -1 : 0;
}

static void on_log(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= 2)
        fprintf(stderr, "bridge: %s\n", msg);
}

static int parse_filters(struct tool *t, char **args, int n)
{
    t->filters = calloc((size_t)n, sizeof *t->filters);
    for (int i = 0; t->filters && i < n; i++) {
        if (args[i][0] == '*') {
            char *colon = strchr(args[i], ':');
            if (!colon || t->many_prefix)
                return -1;
            t->many = atoi(args[i] + 1);
            t->many_prefix = colon + 1;
            continue;
        }
        t->filters[t->nfilters++] = args[i];
    }
    grants = calloc((size_t)(t->nfilters + t->many), sizeof *grants);
    t->many_filters = calloc((size_t)t->many + 1, sizeof *t->many_filters);
    if (!t->filters || !grants || !t->many_filters)
        return -1;
    for (int i = 0; i < t->nfilters; i++) {
        if (t->filters[i][0] == '!') {
            t->filters[i]++;
            grants[i].expect_refused = 1;
        } else if (t->filters[i][0] == '^') {
            t->filters[i]++;
            grants[i].no_local = 1;
            t->echo = 1;
        } else if (t->filters[i][0] == '~' || t->filters[i][0] == '%') {
            grants[i].pass = t->filters[i][0];
            t->filters[i]++;
            t->npass++;
        }
    }
    for (int i = 0; i < t->many; i++) {
        size_t len = strlen(t->many_prefix) + 16;
        if (!(t->many_filters[i] = malloc(len)))
            return -1;
        snprintf(t->many_filters[i], len, "%s/%d", t->many_prefix, i);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT USER PASSWORD FILTER...\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct tool t = {.fd = -1};
    if (parse_filters(&t, argv + 5, argc - 5) != 0) {
        fprintf(stderr, "bad filters or out of memory\n");
        return 1;
    }
    struct pg_bridge_config cfg = {
        .host = argv[1],
        .port = atoi(argv[2]),
        .username = argv[3],
        .password = argv[4],
        .client_id = getenv("BRIDGE_TOOL_CLIENT_ID") ? getenv("BRIDGE_TOOL_CLIENT_ID") : "pushgate-bridge-tool",
        .keepalive_s = 30,
        .reconnect_min_ms = 100,
        .reconnect_max_ms = 1000,
        .publish_timeout_ms = 15000,
    };
    struct pg_bridge_ops ops = {
        .on_socket = on_socket, .on_state = on_state, .on_message = on_message, .on_log = on_log};
    if (pg_bridge_new(&cfg, &ops, &t, &t.bridge) != 0) {
        fprintf(stderr, "cannot create the bridge\n");
        return 1;
    }
    if (t.echo && check_options(t.bridge) != 0) {
        pg_bridge_free(t.bridge);
        return 1;
    }
    for (int i = 0; i < t.nfilters; i++) {
        unsigned opts = grants[i].no_local ? PG_BRIDGE_SUB_NO_LOCAL : 0;
        if (t.filters[i][0] != '@' && grants[i].pass != '%' &&
            pg_bridge_subscribe_opts(t.bridge, t.filters[i], opts) != 0) {
            fprintf(stderr, "cannot subscribe %s\n", t.filters[i]);
            pg_bridge_free(t.bridge);
            return 1;
        }
    }
    pg_bridge_start(t.bridge);

    int ready = 0, rc = 1;
    int64_t deadline = pg_mono_ms() + 20000;
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
        if (ready && !t.many_started && (t.many > 0 || t.npass > 0))
            subscribe_many(&t);
        if (ready && (t.many_started || (t.many == 0 && t.npass == 0)) && t.answered == t.nfilters &&
            t.many_granted == t.many) {
            if (t.echo && !t.echo_sent)
                publish_echo(&t);
            if (!t.echo || (t.echo_until && pg_mono_ms() >= t.echo_until)) {
                rc = 0;
                break;
            }
        }
    }
    if (rc != 0 && !t.failed)
        fprintf(stderr, "timed out: ready=%d answered=%d/%d many=%d/%d\n", ready, t.answered, t.nfilters,
                t.many_granted, t.many);
    pg_bridge_free(t.bridge);
    for (int i = 0; i < t.many; i++)
        free(t.many_filters[i]);
    free(t.many_filters);
    free(t.filters);
    free(grants);
    return rc;
}
