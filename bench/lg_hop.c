/*
 * pushgate_hop: the broker hop alone, the part of a pushgate delivery nginx + nchan does not have.
 *
 * One MQTT v5 client does what a gateway's broker link does for a REST publish: it publishes a message with
 * QoS 1 on {root}/{app}/c/{channel}, the broker answers PUBACK and sends the message back on the client's own
 * subscription to that topic. The time from handing the message to libmosquitto to reading it back is the
 * hop: two loopback crossings, the broker's wakeup, its auth-plugin check and its routing. bench/run.sh runs
 * it beside W2 (same broker, same rate) so that W2's latency can be split into hop and gateway
 * (bench/README.md, "W2: the broker hop").
 *
 *   pushgate_hop --port P --user U --password PW [--host 127.0.0.1] [--topic-root pushgate] [--app demo]
 *                [--channel hop] [--rate R] [--duration S] [--size B]
 *
 * U and PW are the gateway's broker account (broker_username, broker_password of its pushgate.conf): an app's
 * client would be a device, held back by the auth plugin's load window (plugin/load.c) once 100 of its
 * publishes wait for gateways that never mark them, and it would not be the gateway's path.
 *
 * Prints one JSON line: {"sent","received","lost","p50_us","p99_us","max_us"}. Every message carries its send
 * time (CLOCK_MONOTONIC, ns) in its first 8 bytes. Single-threaded, like the gateway: between sends the client
 * sleeps in ppoll() on its socket until the next send is due, and reads what arrives (mosquitto_loop_read), so
 * a read-back is timed when it arrives, not at the next send, and nothing spins.
 */
#define _GNU_SOURCE /* ppoll */
#include <getopt.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOP_MAX_SAMPLES 2000000 /* 1000 msgs/s for over half an hour: more than any run asks for */
#define HOP_DRAIN_NS 2000000000LL /* after the last send, how long late messages are still waited for */

struct hop {
    const char *topic;
    int connected, subscribed, failed;
    uint64_t *lat_ns; /* owned; one entry per message read back */
    size_t nlat;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags, const mosquitto_property *props)
{
    (void)flags, (void)props;
    struct hop *h = ud;
    if (rc != 0 || mosquitto_subscribe(m, NULL, h->topic, 1) != MOSQ_ERR_SUCCESS)
        h->failed = 1;
    else
        h->connected = 1;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m, (void)mid;
    struct hop *h = ud;
    if (n < 1 || granted[0] > 2)
        h->failed = 1; /* the broker (its auth plugin) refused the subscription */
    else
        h->subscribed = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    struct hop *h = ud;
    int64_t sent;
    if (msg->payloadlen < (int)sizeof sent || h->nlat >= HOP_MAX_SAMPLES)
        return;
    memcpy(&sent, msg->payload, sizeof sent);
    h->lat_ns[h->nlat++] = (uint64_t)(now_ns() - sent);
}

/* Services the client's socket until deadline (CLOCK_MONOTONIC ns): reads every packet as it arrives. */
static int service_until(struct mosquitto *m, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ns();
        if (left < 0)
            left = 0;
        struct pollfd pfd = {.fd = mosquitto_socket(m), .events = POLLIN};
        if (mosquitto_want_write(m))
            pfd.events |= POLLOUT;
        struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
        int n = ppoll(&pfd, 1, &ts, NULL);
        if (n < 0)
            return -1;
        if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
            if (mosquitto_loop_read(m, 1) != MOSQ_ERR_SUCCESS)
                return -1;
        }
        if ((pfd.revents & POLLOUT) && mosquitto_loop_write(m, 1) != MOSQ_ERR_SUCCESS)
            return -1;
        if (n == 0 && now_ns() >= deadline) {
            mosquitto_loop_misc(m);
            return 0;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *user = NULL, *password = NULL, *root = "pushgate", *app = "demo", *channel = "hop";
    int port = 0, rate = 1000, duration = 10, size = 100;
    static const struct option longs[] = {
        {"port", 1, 0, 'p'},     {"host", 1, 0, 'h'},     {"user", 1, 0, 'u'}, {"password", 1, 0, 'w'}, {"topic-root", 1, 0, 't'},
        {"app", 1, 0, 'a'},      {"channel", 1, 0, 'c'},  {"rate", 1, 0, 'r'}, {"duration", 1, 0, 'd'},
        {"size", 1, 0, 's'},     {0, 0, 0, 0}};
    for (int ch; (ch = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        switch (ch) {
        case 'p': port = atoi(optarg); break;
        case 'h': host = optarg; break;
        case 'u': user = optarg; break;
        case 'w': password = optarg; break;
        case 't': root = optarg; break;
        case 'a': app = optarg; break;
        case 'c': channel = optarg; break;
        case 'r': rate = atoi(optarg); break;
        case 'd': duration = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (port <= 0 || !user || !password || rate <= 0 || duration <= 0 || size < 8 || size > 65536) {
    usage:
        fprintf(stderr, "usage: pushgate_hop --port P --user U --password PW [--host 127.0.0.1] [--topic-root pushgate]\n"
                        "  [--app demo] [--channel hop] [--rate R (1000)] [--duration S (10)] [--size B (100, >= 8)]\n");
        return 2;
    }
    char topic[512];
    snprintf(topic, sizeof topic, "%s/%s/c/%s", root, app, channel);
    struct hop h = {.topic = topic, .lat_ns = malloc(HOP_MAX_SAMPLES * sizeof(uint64_t))};
    char *body = calloc(1, (size_t)size);
    if (!h.lat_ns || !body)
        return 1;
    mosquitto_lib_init();
    char id[64];
    snprintf(id, sizeof id, "pgbench-hop-%d", (int)getpid()); /* not a gateway's client id: no load marks expected */
    struct mosquitto *m = mosquitto_new(id, true, &h);
    if (!m)
        return 1;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1); /* as the gateway's link (bridge/bridge.c) */
    mosquitto_username_pw_set(m, user, password);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "pushgate_hop: cannot connect to %s:%d\n", host, port);
        return 1;
    }
    int64_t give_up = now_ns() + 10 * 1000000000LL;
    while (!h.subscribed && !h.failed && now_ns() < give_up)
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS)
            h.failed = 1;
    if (!h.subscribed) {
        fprintf(stderr, "pushgate_hop: the broker did not grant a subscription to %s\n", topic);
        return 1;
    }
    int64_t start = now_ns(), per = 1000000000LL / rate, end = start + (int64_t)duration * 1000000000LL;
    uint64_t sent = 0;
    for (int64_t next = start; next < end; next += per) {
        if (service_until(m, next) != 0)
            break;
        int64_t ts = now_ns();
        memcpy(body, &ts, sizeof ts);
        if (mosquitto_publish(m, NULL, topic, size, body, 1, false) != MOSQ_ERR_SUCCESS)
            break;
        sent++;
    }
    for (int64_t until = now_ns() + HOP_DRAIN_NS; h.nlat < sent && now_ns() < until;)
        if (service_until(m, now_ns() + 10000000LL) != 0)
            break;
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    qsort(h.lat_ns, h.nlat, sizeof *h.lat_ns, cmp_u64);
    printf("{\"sent\":%" PRIu64 ",\"received\":%zu,\"lost\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"max_us\":%.1f}\n",
           sent, h.nlat, sent > h.nlat ? sent - (uint64_t)h.nlat : 0, pct_us(h.lat_ns, h.nlat, 0.50),
           pct_us(h.lat_ns, h.nlat, 0.99), pct_us(h.lat_ns, h.nlat, 1.0));
    free(h.lat_ns);
    free(body);
    return 0;
}
