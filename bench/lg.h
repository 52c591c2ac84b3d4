/*
 * lg.h: the load generator's shared declarations (bench/loadgen.c, bench/lg_sub.c, bench/lg_pub.c).
 *
 * The load generator is one process: a libwebsockets client context holding every subscriber connection
 * (bench/lg_sub.c), plus forked publisher processes (bench/lg_pub.c) that share one anonymous MAP_SHARED
 * block (struct lg_shared) with it: the publishers set the bit of every sequence number the server
 * acknowledged, the parent reads them at the end to find acknowledged messages a subscriber never got.
 * With --sub-procs K the subscribers are dealt over K processes (the parent and K-1 forked ones, subscriber g in
 * process g % K), each with its own lws context; they meet in the same block (struct lg_shard): each says when its
 * share is subscribed, the parent starts the publishers once all are and says when they are done, and each
 * process leaves its counts there for the parent to add up.
 *
 * Payload (the published bytes, identical for every target): "pgb:<seq>:<send_ns>:" followed by 'x' padding
 * up to --size bytes. <send_ns> is CLOCK_MONOTONIC, comparable between processes on one machine. The text
 * contains no quote or backslash, so it arrives unchanged inside a native "message" string, a Pusher "data"
 * string and an nchan frame; subscribers find it by its "pgb:" marker (our own bytes, not a JSON parse).
 * Sequence s goes to channel s % channels; a subscriber of channel c records s in bit s / channels.
 */
#ifndef PG_BENCH_LG_H
#define PG_BENCH_LG_H

#include <stddef.h>
#include <stdint.h>

#define LG_MAX_PUBLISHERS 16
#define LG_MAX_SUB_PROCS 8
#define LG_MAX_SRC_ADDRS 64
#define LG_HIST_SUB 64     /* sub-buckets per power of two: about 1.6 % resolution */
#define LG_HIST_EXP 40     /* up to 2^40 us */
#define LG_HIST_SIZE ((LG_HIST_EXP - 5) * LG_HIST_SUB)
#define LG_MARKER "pgb:"

enum lg_target { LG_NATIVE, LG_PUSHER, LG_NCHAN };
enum lg_pub_kind { LG_PUB_NONE, LG_PUB_HTTP, LG_PUB_MQTT };

struct lg_opts {
    enum lg_target target;
    const char *host;
    int port;
    const char *app;          /* native app id, Pusher key; REST publish app id */
    const char *pusher_key;
    const char *channel_prefix;
    int subs;                 /* this process's share of the run's subscribers (--sub-procs) */
    int channels;
    int sub_procs;            /* K: the run's subscribers are dealt over K processes */
    int shard;                /* this process's share: subscriber k here is the run's shard + k * K */
    int src_addrs;            /* bind subscribers round-robin to 127.0.0.F .. 127.0.0.F+N-1 (N = 1, F = 1: no bind) */
    int src_first;            /* F: BIG starts at 2, leaving 127.0.0.1's ephemeral ports to everything else */
    int connect_concurrency;
    double connect_timeout_s; /* the whole opening phase */
    double open_timeout_s;    /* one attempt: connect, upgrade and subscription (lg_sub.c) */
    int retries;              /* attempts the server never answered are tried again this many times */
    enum lg_pub_kind pub;
    int pub_port;
    int mqtt_port;
    const char *mqtt_user;
    const char *topic_root;
    int pub_conns;
    double rate;              /* messages/s over all publishers, 0 = as fast as acknowledgements allow */
    double duration_s;
    long messages;            /* stop after this many (over all publishers), 0 = duration only */
    int size;
    double drain_s;           /* after the publishers stop: wait at most this long for the rest */
    double hold_s;            /* idle hold after everyone subscribed (W3, BIG) */
    const char *ready_file;   /* created when the opening phase has ended (BIG: run.sh measures then) */
    int no_subscribe;         /* a subscriber is done at the server's greeting: an idle connection, no channel */
    const char *rss_pids;     /* comma-separated server pids: RSS before and after the subscribers */
    long max_msgs;            /* size of the acknowledged-bits block */
    int evlib_uv;             /* run the lws client context on libuv (epoll) instead of lws' poll() */
    int reconnect_storm;      /* after subscribing: drop every connection at once and reconnect */
    int verbose;
};

struct lg_pubstat {
    uint64_t sent, acked, errors;
    double first_ns, last_ns;
};

struct lg_hist {
    uint64_t n[LG_HIST_SIZE];
    uint64_t count;
};

struct lg_sub_result {
    long connected, subscribed, errors, closed_early;
    long retried, open_timeouts;   /* attempts tried again; attempts ended by --open-timeout */
    double subscribe_s;            /* first connect attempt to last subscribe confirmation */
    double first_ns, last_sub_ns;  /* the same two instants (CLOCK_MONOTONIC), to combine several processes */
    uint64_t delivered, dups;
    struct lg_hist lat;
    double last_rx_ns;
};

/* One subscriber process's part of the run (--sub-procs): written by it, read by the parent once "done" is set. */
struct lg_shard {
    int ready, done; /* its share's opening has ended; its results below are final */
    struct lg_sub_result r;
    uint64_t lost, expected;
    long held;
};

struct lg_shared {
    struct lg_pubstat pub[LG_MAX_PUBLISHERS];
    uint64_t max_seq_plus1;        /* highest sequence handed out + 1 */
    int pubs_over;                 /* --sub-procs: the publishers have ended, the subscriber processes drain */
    struct lg_shard shard[LG_MAX_SUB_PROCS];
    uint8_t acked_bits[];          /* max_msgs bits */
};

/* loadgen.c */
double lg_now_ns(void);
void lg_hist_add(struct lg_hist *h, uint64_t us);
double lg_hist_pct(const struct lg_hist *h, double pct);
void lg_build_payload(char *buf, int size, uint64_t seq);

/* lg_pub.c: runs in a forked child, returns the exit status. */
int lg_pub_run(const struct lg_opts *o, int index, struct lg_shared *sh);

/* lg_sub.c */
struct lg_subs;
struct lg_subs *lg_subs_new(const struct lg_opts *o);
/* Opens every subscriber; returns 0 when all are subscribed, negative on timeout. */
int lg_subs_open_all(struct lg_subs *s);
/* Serves the connections until deadline_ns or until stop() says so (checked every tick). */
void lg_subs_serve(struct lg_subs *s, double deadline_ns, int (*stop)(void *), void *arg);
/* Drops every connection and opens them again; returns the seconds that took, negative on timeout. */
double lg_subs_reconnect_storm(struct lg_subs *s);
/* Acknowledged messages of the subscriber's channel it did not receive, summed over subscribers. */
uint64_t lg_subs_lost(struct lg_subs *s, const struct lg_shared *sh, uint64_t *expected);
const struct lg_sub_result *lg_subs_result(struct lg_subs *s);
/* Subscribers subscribed and still connected now. */
long lg_subs_held(const struct lg_subs *s);
void lg_subs_free(struct lg_subs *s);

#endif
