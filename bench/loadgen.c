/*
 * loadgen.c: pushgate's benchmark load generator (bench/README.md): options, the run, the result.
 *
 * One run: open every subscriber (bench/lg_sub.c) and time it; optionally measure the servers' RSS before
 * and after; fork the publishers (bench/lg_pub.c) and serve the subscribers while they publish and for a
 * drain period after; then print one JSON object on stdout:
 *   {"target","subs","channels","subscribed","errors","subscribe_s","published","acked","pub_errors",
 *    "pub_s","delivered","expected","lost","dups","delivered_per_s","p50_us","p99_us","max_us",
 *    "rss_before_kb","rss_after_kb","rss_per_conn_kb","reconnect_s","held","first_ns","last_sub_ns","retried",
 *    "open_timeouts"}
 * "held" counts subscribers still subscribed and connected at the end; "first_ns" / "last_sub_ns" are the first
 * connect attempt and the last subscribe confirmation on CLOCK_MONOTONIC, so that run.sh can time several
 * load-generator processes together (BIG). "retried" counts attempts tried again (--retries: only attempts the server
 * never answered, bench/lg_sub.c), "open_timeouts" attempts ended because they were not subscribed --open-timeout
 * seconds after they began; "errors" counts subscribers that finally failed.
 *
 * BIG (bench/run.sh) runs several of these at once and measures the servers itself while all are held:
 * --ready-file names a file created when the opening phase has ended (all subscribed, or the connect timeout),
 * and SIGUSR1 ends --hold early (run.sh sends it once it has measured).
 * --sub-procs K deals the subscribers over K processes (bench/lg.h): one thread reading 1000 sockets at a full core
 * leaves each unread for as long as one pass over all of them takes. The output is the same object, summed over
 * them (subscribe_s from the first attempt to the last confirmation in any of them).
 * "lost" counts (message, subscriber) pairs whose message the server acknowledged to the publisher and the
 * subscriber never received: it must be 0. The exit status is 0 when every subscriber subscribed, nothing
 * acknowledged was lost, no publisher failed and every subscriber was still held at the end; 1 otherwise; 2 for
 * bad options.
 */
#include "lg.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int hist_index(uint64_t v)
{
    if (v < LG_HIST_SUB)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    if (e >= LG_HIST_EXP)
        return LG_HIST_SIZE - 1;
    return (e - 5) * LG_HIST_SUB + (int)((v >> (e - 6)) & (LG_HIST_SUB - 1));
}

static double hist_value(int i)
{
    if (i < LG_HIST_SUB)
        return i;
    int e = i / LG_HIST_SUB + 5, sub = i % LG_HIST_SUB;
    return ldexp(LG_HIST_SUB + sub + 0.5, e - 6);
}

void lg_hist_add(struct lg_hist *h, uint64_t us)
{
    h->n[hist_index(us)]++;
    h->count++;
}

double lg_hist_pct(const struct lg_hist *h, double pct)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)ceil(pct / 100.0 * (double)h->count), seen = 0;
    for (int i = 0; i < LG_HIST_SIZE; i++) {
        seen += h->n[i];
        if (seen >= want && h->n[i])
            return hist_value(i);
    }
    return 0;
}

void lg_build_payload(char *buf, int size, uint64_t seq)
{
    int n = snprintf(buf, (size_t)size + 1, LG_MARKER "%llu:%llu:", (unsigned long long)seq,
                     (unsigned long long)lg_now_ns());
    if (n < size)
        memset(buf + n, 'x', (size_t)(size - n));
    buf[size] = '\0';
}

/* Sum of VmRSS (KB) of the listed pids. */
static long rss_kb(const char *pids)
{
    if (!pids || !*pids)
        return 0;
    long total = 0;
    char *copy = strdup(pids), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%s/status", p);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f))
            if (!strncmp(line, "VmRSS:", 6))
                total += atol(line + 6);
        fclose(f);
    }
    free(copy);
    return total;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --target native|pusher|nchan --port P [--host 127.0.0.1] [--app demo] [--key demo-key]\n"
            "  [--subs N] [--channels C] [--src-addrs K] [--connect-concurrency N] [--connect-timeout S (all)]\n"
            "  [--open-timeout S (one attempt, 30)] [--retries N (attempts never answered, 0)]\n"
            "  [--pub http|mqtt|none] [--pub-port P] [--mqtt-port P] [--mqtt-user demo] [--topic-root pushgate]\n"
            "  [--pub-conns P] [--rate R (0: max)] [--duration S] [--messages M] [--size B] [--drain S]\n"
            "  [--hold S] [--rss-pids a,b] [--max-msgs N] [--reconnect-storm] [--prefix ch] [--evlib poll|uv]\n"
            "  [--no-subscribe] [--ready-file PATH] [--src-first F (127.0.0.F is the first source address)]\n"
            "  [--sub-procs K (subscribers dealt over K processes, 1; not with --hold, --ready-file,\n"
            "   --reconnect-storm)] [-v]\n");
}

static int parse(int argc, char **argv, struct lg_opts *o)
{
    *o = (struct lg_opts){.target = LG_NATIVE, .host = "127.0.0.1", .app = "demo", .pusher_key = "demo-key",
                          .channel_prefix = "ch", .subs = 10, .channels = 1, .src_addrs = 1, .src_first = 1,
                          .connect_concurrency = 200, .connect_timeout_s = 60, .open_timeout_s = 30, .pub = LG_PUB_HTTP,
                          .mqtt_user = "demo", .topic_root = "pushgate", .pub_conns = 1, .duration_s = 10,
                          .size = 100, .drain_s = 30, .max_msgs = 1L << 24, .sub_procs = 1};
    static const struct option lo[] = {
        {"target", 1, 0, 't'}, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"app", 1, 0, 'a'},
        {"key", 1, 0, 'k'}, {"subs", 1, 0, 's'}, {"channels", 1, 0, 'c'}, {"src-addrs", 1, 0, 'A'},
        {"connect-concurrency", 1, 0, 'C'}, {"connect-timeout", 1, 0, 'T'}, {"pub", 1, 0, 'P'},
        {"pub-port", 1, 0, 'q'}, {"mqtt-port", 1, 0, 'm'}, {"mqtt-user", 1, 0, 'u'}, {"topic-root", 1, 0, 'R'},
        {"pub-conns", 1, 0, 'n'}, {"rate", 1, 0, 'r'}, {"duration", 1, 0, 'd'}, {"messages", 1, 0, 'M'},
        {"size", 1, 0, 'z'}, {"drain", 1, 0, 'D'}, {"hold", 1, 0, 'h'}, {"rss-pids", 1, 0, 'S'},
        {"max-msgs", 1, 0, 'X'}, {"reconnect-storm", 0, 0, 'Z'}, {"prefix", 1, 0, 'x'}, {"verbose", 0, 0, 'v'}, {"evlib", 1, 0, 'E'},
        {"no-subscribe", 0, 0, 'N'}, {"src-first", 1, 0, 'B'}, {"ready-file", 1, 0, 'F'},
        {"open-timeout", 1, 0, 'O'}, {"retries", 1, 0, 'Y'}, {"sub-procs", 1, 0, 'K'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            o->target = !strcmp(optarg, "nchan") ? LG_NCHAN : !strcmp(optarg, "pusher") ? LG_PUSHER : LG_NATIVE;
            if (strcmp(optarg, "nchan") && strcmp(optarg, "pusher") && strcmp(optarg, "native"))
                return -1;
            break;
        case 'H': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'a': o->app = optarg; break;
        case 'k': o->pusher_key = optarg; break;
        case 's': o->subs = atoi(optarg); break;
        case 'c': o->channels = atoi(optarg); break;
        case 'A': o->src_addrs = atoi(optarg); break;
        case 'C': o->connect_concurrency = atoi(optarg); break;
        case 'T': o->connect_timeout_s = atof(optarg); break;
        case 'P':
            o->pub = !strcmp(optarg, "mqtt") ? LG_PUB_MQTT : !strcmp(optarg, "none") ? LG_PUB_NONE : LG_PUB_HTTP;
            break;
        case 'q': o->pub_port = atoi(optarg); break;
        case 'm': o->mqtt_port = atoi(optarg); break;
        case 'u': o->mqtt_user = optarg; break;
        case 'R': o->topic_root = optarg; break;
        case 'n': o->pub_conns = atoi(optarg); break;
        case 'r': o->rate = atof(optarg); break;
        case 'd': o->duration_s = atof(optarg); break;
        case 'M': o->messages = atol(optarg); break;
        case 'z': o->size = atoi(optarg); break;
        case 'D': o->drain_s = atof(optarg); break;
        case 'h': o->hold_s = atof(optarg); break;
        case 'S': o->rss_pids = optarg; break;
        case 'X': o->max_msgs = atol(optarg); break;
        case 'Z': o->reconnect_storm = 1; break;
        case 'x': o->channel_prefix = optarg; break;
        case 'v': o->verbose++; break;
        case 'N': o->no_subscribe = 1; break;
        case 'B': o->src_first = atoi(optarg); break;
        case 'F': o->ready_file = optarg; break;
        case 'O': o->open_timeout_s = atof(optarg); break;
        case 'Y': o->retries = atoi(optarg); break;
        case 'K': o->sub_procs = atoi(optarg); break;
        case 'E':
            if (strcmp(optarg, "uv") && strcmp(optarg, "poll"))
                return -1;
            o->evlib_uv = !strcmp(optarg, "uv");
            break;
        default: return -1;
        }
    }
    if (!o->pub_port)
        o->pub_port = o->port;
    if (o->port <= 0 || o->subs < 0 || o->channels < 1 || o->src_addrs < 1 || o->src_first < 1 ||
        o->src_first + o->src_addrs - 1 > 254 || o->src_addrs > LG_MAX_SRC_ADDRS ||
        o->pub_conns < 1 || o->pub_conns > LG_MAX_PUBLISHERS || o->size < 48 || o->connect_concurrency < 1 ||
        (o->pub == LG_PUB_MQTT && (!o->mqtt_port || o->target == LG_NCHAN)) || o->max_msgs < 8 ||
        (o->no_subscribe && o->target == LG_NCHAN) || o->open_timeout_s < 1 || o->open_timeout_s > 3600 ||
        o->retries < 0 || o->sub_procs < 1 || o->sub_procs > LG_MAX_SUB_PROCS ||
        (o->sub_procs > 1 && (o->hold_s > 0 || o->ready_file || o->reconnect_storm)))
        return -1;
    return 0;
}

struct pubs {
    pid_t pid[LG_MAX_PUBLISHERS];
    int n, running;
};

static int pubs_done(void *arg)
{
    struct pubs *p = arg;
    for (int i = 0; i < p->n; i++) {
        if (p->pid[i] > 0 && waitpid(p->pid[i], NULL, WNOHANG) == p->pid[i]) {
            p->pid[i] = 0;
            p->running--;
        }
    }
    return p->running == 0;
}

/* SIGUSR1: the hold ends (run.sh has measured the servers). */
static volatile sig_atomic_t hold_ended;

static void end_hold(int sig)
{
    (void)sig;
    hold_ended = 1;
}

static int hold_over(void *arg)
{
    (void)arg;
    return hold_ended;
}

/* The ready file: created (empty) once; run.sh waits for one per process. */
static void say_ready(const char *path)
{
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    else
        perror(path);
}

/* Subscribers of the run's total in process `shard` of K: the run's subscriber g is in process g % K. */
static int share_of(int total, int k, int shard)
{
    return (total - shard + k - 1) / k;
}

struct shards {
    struct lg_shared *sh;
    int k;
    pid_t pid[LG_MAX_SUB_PROCS]; /* [0] unused: the parent is process 0 */
};

/* Every forked subscriber process has ended its opening (or died: its share then counts as not subscribed). */
static int shards_ready(void *arg)
{
    struct shards *x = arg;
    for (int i = 1; i < x->k; i++) {
        if (__atomic_load_n(&x->sh->shard[i].ready, __ATOMIC_ACQUIRE))
            continue;
        if (x->pid[i] > 0 && waitpid(x->pid[i], NULL, WNOHANG) != x->pid[i])
            return 0;
        x->pid[i] = 0;
        __atomic_store_n(&x->sh->shard[i].ready, 1, __ATOMIC_RELEASE);
    }
    return 1;
}

static pid_t parent_pid;

static int run_over(void *arg)
{
    struct lg_shared *sh = arg;
    return __atomic_load_n(&sh->pubs_over, __ATOMIC_ACQUIRE) || getppid() != parent_pid;
}

/* Drained when nothing arrived for 1 s (the tick wakes lws_service at least every 20 ms). */
static int drained(void *arg)
{
    return lg_now_ns() - lg_subs_result(arg)->last_rx_ns > 1e9;
}

/* A forked subscriber process (--sub-procs): opens its share, serves it until the parent says the publishers are
 * over, drains, and leaves its counts in its slot. */
static int shard_main(struct lg_opts o, int shard, struct lg_shared *sh)
{
    int total = o.subs;
    o.shard = shard;
    o.subs = share_of(total, o.sub_procs, shard);
    o.rss_pids = NULL;
    struct lg_shard *slot = &sh->shard[shard];
    struct lg_subs *S = lg_subs_new(&o);
    if (!S)
        return 1;
    lg_subs_open_all(S);
    slot->r = *lg_subs_result(S);
    __atomic_store_n(&slot->ready, 1, __ATOMIC_RELEASE);
    lg_subs_serve(S, lg_now_ns() + (o.connect_timeout_s + o.duration_s + 60) * 1e9, run_over, sh);
    lg_subs_serve(S, lg_now_ns() + o.drain_s * 1e9, drained, S);
    slot->r = *lg_subs_result(S);
    slot->lost = lg_subs_lost(S, sh, &slot->expected);
    slot->held = lg_subs_held(S);
    __atomic_store_n(&slot->done, 1, __ATOMIC_RELEASE);
    lg_subs_free(S);
    return 0;
}

/* to += r: counts and latencies add up; the first attempt is the earliest, the last instants the latest. */
static void add_result(struct lg_sub_result *to, const struct lg_sub_result *r)
{
    to->connected += r->connected;
    to->subscribed += r->subscribed;
    to->errors += r->errors;
    to->closed_early += r->closed_early;
    to->retried += r->retried;
    to->open_timeouts += r->open_timeouts;
    to->delivered += r->delivered;
    to->dups += r->dups;
    for (int i = 0; i < LG_HIST_SIZE; i++)
        to->lat.n[i] += r->lat.n[i];
    to->lat.count += r->lat.count;
    if (r->first_ns && (!to->first_ns || r->first_ns < to->first_ns))
        to->first_ns = r->first_ns;
    if (r->last_sub_ns > to->last_sub_ns)
        to->last_sub_ns = r->last_sub_ns;
    if (r->last_rx_ns > to->last_rx_ns)
        to->last_rx_ns = r->last_rx_ns;
    to->subscribe_s = to->subscribed ? (to->last_sub_ns - to->first_ns) / 1e9 : 0;
}

int main(int argc, char **argv)
{
    struct lg_opts o;
    if (parse(argc, argv, &o)) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, end_hold);
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t shsize = sizeof(struct lg_shared) + (size_t)(o.max_msgs / 8 + 1);
    struct lg_shared *sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    long rss_before = rss_kb(o.rss_pids);
    /* the other subscriber processes are forked before any lws context exists: each makes its own */
    int total = o.subs;
    struct shards X = {.sh = sh, .k = o.sub_procs};
    parent_pid = getpid();
    fflush(NULL);
    for (int i = 1; i < X.k; i++) {
        X.pid[i] = fork();
        if (X.pid[i] == 0)
            _exit(shard_main(o, i, sh));
    }
    o.subs = share_of(total, X.k, 0);
    struct lg_subs *S = lg_subs_new(&o);
    if (!S) {
        fprintf(stderr, "loadgen: cannot create the lws context\n");
        return 1;
    }
    lg_subs_open_all(S);
    lg_subs_serve(S, lg_now_ns() + o.connect_timeout_s * 1e9, shards_ready, &X);
    long subscribed = lg_subs_result(S)->subscribed;
    for (int i = 1; i < X.k; i++)
        subscribed += sh->shard[i].r.subscribed;
    int sub_rc = subscribed < total ? -1 : 0;
    if (sub_rc)
        fprintf(stderr, "loadgen: only %ld of %d subscribers subscribed\n", subscribed, total);
    double reconnect_s = -1;
    if (o.reconnect_storm && !sub_rc) {
        reconnect_s = lg_subs_reconnect_storm(S);
        if (reconnect_s < 0)
            sub_rc = -1;
    }
    say_ready(o.ready_file);
    if (o.hold_s > 0)
        lg_subs_serve(S, lg_now_ns() + o.hold_s * 1e9, hold_over, NULL);
    long rss_after = rss_kb(o.rss_pids);

    struct pubs P = {.n = 0};
    double pub_start = lg_now_ns(), pub_end = pub_start;
    if (o.pub != LG_PUB_NONE && (o.duration_s > 0 || o.messages > 0)) {
        fflush(NULL);
        for (int i = 0; i < o.pub_conns; i++) {
            pid_t pid = fork();
            if (pid == 0)
                _exit(lg_pub_run(&o, i, sh));
            if (pid > 0) {
                P.pid[P.n++] = pid;
                P.running++;
            }
        }
        lg_subs_serve(S, pub_start + (o.duration_s + 30) * 1e9, pubs_done, &P);
        pub_end = lg_now_ns();
    }
    __atomic_store_n(&sh->pubs_over, 1, __ATOMIC_RELEASE);
    if (P.n)
        lg_subs_serve(S, pub_end + o.drain_s * 1e9, drained, S);

    static struct lg_sub_result R; /* the histogram makes it large */
    add_result(&R, lg_subs_result(S));
    uint64_t expected = 0, lost = lg_subs_lost(S, sh, &expected);
    long held = lg_subs_held(S);
    for (int i = 1; i < X.k; i++) {
        const struct lg_shard *x = &sh->shard[i];
        if (X.pid[i] > 0)
            waitpid(X.pid[i], NULL, 0);
        if (!__atomic_load_n(&x->done, __ATOMIC_ACQUIRE)) {
            fprintf(stderr, "loadgen: subscriber process %d ended without its results\n", i);
            sub_rc = -1;
            continue;
        }
        add_result(&R, &x->r);
        lost += x->lost;
        expected += x->expected;
        held += x->held;
    }
    const struct lg_sub_result *r = &R;
    uint64_t sent = 0, acked = 0, pub_errors = 0;
    double first = 0, last = 0;
    for (int i = 0; i < P.n; i++) {
        sent += sh->pub[i].sent;
        acked += sh->pub[i].acked;
        pub_errors += sh->pub[i].errors;
        if (!first || sh->pub[i].first_ns < first)
            first = sh->pub[i].first_ns;
        if (sh->pub[i].last_ns > last)
            last = sh->pub[i].last_ns;
    }
    double span = (r->last_rx_ns > first ? r->last_rx_ns : last) - first;
    json_t *out = json_pack("{s:s,s:i,s:i,s:I,s:I,s:I,s:f}", "target",
                            o.target == LG_NATIVE ? "native" : o.target == LG_PUSHER ? "pusher" : "nchan", "subs",
                            total, "channels", o.channels, "subscribed", (json_int_t)r->subscribed, "errors",
                            (json_int_t)r->errors, "closed_early", (json_int_t)r->closed_early, "subscribe_s",
                            r->subscribe_s);
    json_object_set_new(out, "published", json_integer((json_int_t)sent));
    json_object_set_new(out, "acked", json_integer((json_int_t)acked));
    json_object_set_new(out, "pub_errors", json_integer((json_int_t)pub_errors));
    json_object_set_new(out, "pub_s", json_real(last > first ? (last - first) / 1e9 : 0));
    json_object_set_new(out, "acked_per_s", json_real(last > first ? (double)acked / ((last - first) / 1e9) : 0));
    json_object_set_new(out, "delivered", json_integer((json_int_t)r->delivered));
    json_object_set_new(out, "expected", json_integer((json_int_t)expected));
    json_object_set_new(out, "lost", json_integer((json_int_t)lost));
    json_object_set_new(out, "dups", json_integer((json_int_t)r->dups));
    json_object_set_new(out, "delivered_per_s", json_real(span > 0 ? (double)r->delivered / (span / 1e9) : 0));
    json_object_set_new(out, "p50_us", json_real(lg_hist_pct(&r->lat, 50)));
    json_object_set_new(out, "p99_us", json_real(lg_hist_pct(&r->lat, 99)));
    json_object_set_new(out, "max_us", json_real(lg_hist_pct(&r->lat, 100)));
    json_object_set_new(out, "rss_before_kb", json_integer(rss_before));
    json_object_set_new(out, "rss_after_kb", json_integer(rss_after));
    json_object_set_new(out, "rss_per_conn_kb",
                        json_real(o.rss_pids && total ? (double)(rss_after - rss_before) / total : 0));
    json_object_set_new(out, "reconnect_s", json_real(reconnect_s));
    json_object_set_new(out, "held", json_integer(held));
    json_object_set_new(out, "first_ns", json_real(r->first_ns));
    json_object_set_new(out, "last_sub_ns", json_real(r->last_sub_ns));
    json_object_set_new(out, "retried", json_integer(r->retried));
    json_object_set_new(out, "open_timeouts", json_integer(r->open_timeouts));
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    lg_subs_free(S);
    munmap(sh, shsize);
    return sub_rc || lost || pub_errors || held < total ? 1 : 0;
}
