/*
 * lg_pub.c: one publisher of the load generator, run in a forked child (one per --pub-conns).
 *
 * Publisher `index` of P sends sequences index, index + P, index + 2P, ... (sequence s to channel
 * s % channels), paced to rate / P per second or as fast as acknowledgements come (rate 0), until the duration
 * or its share of --messages is over. Every acknowledged sequence gets its bit in the shared block.
 *
 * HTTP: one keep-alive connection, one request at a time (pushgate answers a publish once the broker has it;
 * pipelining is not supported there). pushgate: POST /{app}/{channel}/publish, 200 = acknowledged.
 * nchan: POST /pub/{channel}, 201/202 = acknowledged. Only the status line and Content-Length are read.
 * MQTT: libmosquitto, MQTT v5, QoS 1 to {topic_root}/{app}/c/{channel} as user {mqtt_user} (an open app's
 * device); acknowledged = PUBACK with a reason code under 0x80 (on_publish). A PUBACK >= 0x80 is a refusal (the
 * broker plugin refuses device publishes while a gateway is behind: 0x87), counted as a publish error.
 */
#define _GNU_SOURCE /* memmem */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_HTTP_BUF 8192
#define LG_MQTT_WINDOW 1000

static void mark_acked(struct lg_shared *sh, const struct lg_opts *o, uint64_t seq)
{
    if (seq < (uint64_t)o->max_msgs)
        __atomic_fetch_or(&sh->acked_bits[seq / 8], (uint8_t)(1u << (seq % 8)), __ATOMIC_RELAXED);
}

static void note_seq(struct lg_shared *sh, uint64_t seq)
{
    uint64_t cur = __atomic_load_n(&sh->max_seq_plus1, __ATOMIC_RELAXED);
    while (cur < seq + 1 &&
           !__atomic_compare_exchange_n(&sh->max_seq_plus1, &cur, seq + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void pace(const struct lg_opts *o, double start, uint64_t k)
{
    if (o->rate <= 0)
        return;
    double per = 1e9 * o->pub_conns / o->rate;
    double due = start + (double)k * per;
    double now = lg_now_ns();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1e9), (long)((long long)(due - now) % 1000000000LL)};
        nanosleep(&ts, NULL);
    }
}

static int http_connect(const struct lg_opts *o)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->pub_port)};
    inet_pton(AF_INET, o->host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response; returns its status, or -1 when the connection failed. */
static int http_response(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        char *eoh = memmem(buf, *have, "\r\n\r\n", 4);
        if (eoh) {
            size_t hlen = (size_t)(eoh - buf) + 4;
            int status = 0;
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return -1;
            size_t clen = 0;
            for (char *l = buf; l && l < eoh; l = memchr(l, '\n', (size_t)(eoh - l))) {
                if (*l == '\n')
                    l++;
                if (!strncasecmp(l, "Content-Length:", 15))
                    clen = strtoul(l + 15, NULL, 10);
            }
            while (*have < hlen + clen) {
                ssize_t n = read(fd, buf + *have, cap - *have);
                if (n <= 0)
                    return -1;
                *have += (size_t)n;
            }
            memmove(buf, buf + hlen + clen, *have - hlen - clen);
            *have -= hlen + clen;
            return status;
        }
        if (*have == cap)
            return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
}

static int run_http(const struct lg_opts *o, int index, struct lg_shared *sh)
{
    struct lg_pubstat *st = &sh->pub[index];
    int fd = http_connect(o);
    if (fd < 0) {
        st->errors++;
        return 1;
    }
    char *body = malloc((size_t)o->size + 1), *req = malloc((size_t)o->size + 512), *rbuf = malloc(LG_HTTP_BUF);
    size_t have = 0;
    long share = o->messages ? (o->messages + o->pub_conns - 1 - index) / o->pub_conns : 0;
    double start = lg_now_ns(), end = start + o->duration_s * 1e9;
    st->first_ns = start;
    for (uint64_t k = 0; (!share || (long)k < share) && lg_now_ns() < end; k++) {
        pace(o, start, k);
        uint64_t seq = k * (uint64_t)o->pub_conns + (uint64_t)index;
        lg_build_payload(body, o->size, seq);
        int ch = (int)(seq % (uint64_t)o->channels);
        int n = o->target == LG_NCHAN
                    ? snprintf(req, (size_t)o->size + 512,
                               "POST /pub/%s%d HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                               "Content-Length: %d\r\n\r\n%s",
                               o->channel_prefix, ch, o->host, o->size, body)
                    : snprintf(req, (size_t)o->size + 512,
                               "POST /%s/%s%d/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                               "Content-Length: %d\r\n\r\n%s",
                               o->app, o->channel_prefix, ch, o->host, o->size, body);
        note_seq(sh, seq);
        if (write(fd, req, (size_t)n) != n) {
            st->errors++;
            break;
        }
        st->sent++;
        int status = http_response(fd, rbuf, LG_HTTP_BUF, &have);
        if (status < 0) {
            st->errors++;
            break;
        }
        if (status == 200 || status == 201 || status == 202) {
            mark_acked(sh, o, seq);
            st->acked++;
        } else {
            st->errors++;
        }
    }
    st->last_ns = lg_now_ns();
    close(fd);
    free(body);
    free(req);
    free(rbuf);
    return 0;
}

struct mqtt_ctx {
    const struct lg_opts *o;
    struct lg_shared *sh;
    struct lg_pubstat *st;
    uint64_t seq_of_mid[65536];
    long inflight;
    int connected, failed;
};

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    struct mqtt_ctx *c = arg;
    (void)m;
    if (rc)
        c->failed = 1;
    else
        c->connected = 1;
}

static void on_publish(struct mosquitto *m, void *arg, int mid, int reason_code, const mosquitto_property *props)
{
    struct mqtt_ctx *c = arg;
    (void)m;
    (void)props;
    if (reason_code < 0x80) {
        mark_acked(c->sh, c->o, c->seq_of_mid[mid & 0xffff]);
        c->st->acked++;
    } else {
        c->st->errors++;
    }
    c->inflight--;
}

static int run_mqtt(const struct lg_opts *o, int index, struct lg_shared *sh)
{
    struct mqtt_ctx *c = calloc(1, sizeof(*c));
    c->o = o;
    c->sh = sh;
    c->st = &sh->pub[index];
    mosquitto_lib_init();
    char id[64];
    snprintf(id, sizeof(id), "pgbench-pub-%d-%d", (int)getpid(), index);
    struct mosquitto *m = mosquitto_new(id, true, c);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(m, LG_MQTT_WINDOW);
    mosquitto_username_pw_set(m, o->mqtt_user, NULL);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_v5_callback_set(m, on_publish);
    if (mosquitto_connect(m, o->host, o->mqtt_port, 60) != MOSQ_ERR_SUCCESS) {
        c->st->errors++;
        return 1;
    }
    while (!c->connected && !c->failed)
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS)
            c->failed = 1;
    if (c->failed) {
        c->st->errors++;
        return 1;
    }
    char *body = malloc((size_t)o->size + 1);
    long share = o->messages ? (o->messages + o->pub_conns - 1 - index) / o->pub_conns : 0;
    double start = lg_now_ns(), end = start + o->duration_s * 1e9;
    c->st->first_ns = start;
    for (uint64_t k = 0; (!share || (long)k < share) && lg_now_ns() < end; k++) {
        pace(o, start, k);
        while (c->inflight >= LG_MQTT_WINDOW && lg_now_ns() < end)
            mosquitto_loop(m, 10, 1);
        uint64_t seq = k * (uint64_t)o->pub_conns + (uint64_t)index;
        lg_build_payload(body, o->size, seq);
        char topic[256];
        snprintf(topic, sizeof(topic), "%s/%s/c/%s%d", o->topic_root, o->app, o->channel_prefix,
                 (int)(seq % (uint64_t)o->channels));
        int mid = 0;
        note_seq(sh, seq);
        if (mosquitto_publish(m, &mid, topic, o->size, body, 1, false) != MOSQ_ERR_SUCCESS) {
            c->st->errors++;
            break;
        }
        c->seq_of_mid[mid & 0xffff] = seq;
        c->inflight++;
        c->st->sent++;
        mosquitto_loop(m, 0, 1);
    }
    double until = lg_now_ns() + 5e9;
    while (c->inflight > 0 && lg_now_ns() < until)
        mosquitto_loop(m, 10, 1);
    c->st->last_ns = lg_now_ns();
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    free(body);
    free(c);
    return 0;
}

int lg_pub_run(const struct lg_opts *o, int index, struct lg_shared *sh)
{
    return o->pub == LG_PUB_MQTT ? run_mqtt(o, index, sh) : run_http(o, index, sh);
}
