/*
 * The in-memory gateway of the protocol harnesses (fuzz_gw.h). The set-up
 * mirrors pg_server_run() minus the listening socket, the signal handlers
 * and pg_bridge_start(); the HTTP callback mirrors main_callback()'s HTTP
 * branch, so a request adopted into the context runs the gateway's own code.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_gw.h"

#define FUZZ_CONFIG                                                                                                    \
    "# the harnesses' gateway: two apps, the admin API on a private apps store\n"                                     \
    "topic_root = pg\n"                                                                                                \
    "node_id = fuzz\n"                                                                                                 \
    "log_level = error\n"                                                                                              \
    "max_subscriptions = 8\n"                                                                                          \
    "max_queue_messages = 64\n"                                                                                        \
    "admin_user = " FUZZ_ADMIN_USER "\n"                                                                               \
    "admin_password = " FUZZ_ADMIN_PASSWORD "\n"                                                                       \
    "[app demo]\n"                                                                                                     \
    "key = " FUZZ_KEY "\n"                                                                                             \
    "secret = " FUZZ_SECRET "\n"                                                                                       \
    "push_token = fuzz-push-token-0123456789\n"                                                                        \
    "[app locked]\n"                                                                                                   \
    "key = " FUZZ_LOCKED_KEY "\n"                                                                                      \
    "secret = " FUZZ_SECRET "\n"                                                                                       \
    "require_auth = true\n"

static struct pg_config cfg;
static struct pg_gw gw;
static struct lws *raw_wsi;
static int raw_pipe[2] = {-1, -1};
#define STORE_PARENT "/tmp"
#define STORE_PREFIX "pushgate-fuzz-" /* then the pid, so a stale one can be told from a live one */

static char store_dir[PATH_MAX];
unsigned long fuzz_http_requests;
char fuzz_http_path[1024];

/* What main_callback() does for HTTP and WebSocket upgrades (which the broker being down always refuses). */
static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct pg_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        fuzz_http_requests++;
        snprintf(fuzz_http_path, sizeof fuzz_http_path, "%s", in ? (const char *)in : "");
        /* fall through */
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        return pg_http_callback(&gw, pg_routes_route, wsi, reason, c ? &c->u.http : NULL, in, len);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (!in || strcmp((const char *)in, "websocket") != 0)
            return -1;
        fuzz_http_requests++;
        if (lws_hdr_copy(wsi, fuzz_http_path, sizeof fuzz_http_path, WSI_TOKEN_GET_URI) < 0)
            fuzz_http_path[0] = '\0';
        /* with the broker down every upgrade is refused (answered); one accepted would be a session anyway */
        FUZZ_CHECK(pg_http_confirm_upgrade(&gw, wsi) != 0);
        return 1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)wsi, (void)reason, (void)user, (void)in, (void)len;
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"pushgate", http_callback, sizeof(struct pg_conn), 4096, 0, NULL, 0},
    {"fuzz-raw", raw_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void bridge_noop(void *ud, int fd)
{
    (void)ud, (void)fd;
}

static void remove_store(const char *dir)
{
    char path[PATH_MAX];
    static const char *const files[] = {"apps.db", "apps.db-wal", "apps.db-shm", "apps.db-journal"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void cleanup(void)
{
    if (store_dir[0])
        remove_store(store_dir);
}

/* A harness that found a crash aborts without atexit: the next one removes what such a process left. */
static void remove_stale_stores(void)
{
    DIR *d = opendir(STORE_PARENT);
    struct dirent *e;
    char path[PATH_MAX];
    int pid;
    while (d && (e = readdir(d)) != NULL) {
        if (sscanf(e->d_name, STORE_PREFIX "%d-", &pid) == 1 && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
            snprintf(path, sizeof path, "%s/%s", STORE_PARENT, e->d_name);
            remove_store(path);
        }
    }
    if (d)
        closedir(d);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_gw: %s\n", what);
    abort();
}

struct pg_gw *fuzz_gw(void)
{
    static int ready;
    char err[512], path[64], conf[2048 + PATH_MAX];
    if (ready)
        return &gw;
    ready = 1;

    /* the admin API needs an apps store: a private directory, removed at exit */
    remove_stale_stores();
    snprintf(store_dir, sizeof store_dir, "%s/%s%d-XXXXXX", STORE_PARENT, STORE_PREFIX, (int)getpid());
    if (!mkdtemp(store_dir))
        die("mkdtemp");
    atexit(cleanup);
    /* the config through the real file reader, from memory */
    int n = snprintf(conf, sizeof conf, "apps_db = %s/apps.db\n" FUZZ_CONFIG, store_dir);
    int fd = memfd_create("pushgate-fuzz.conf", MFD_CLOEXEC);
    if (fd < 0 || write(fd, conf, (size_t)n) != n)
        die("memfd");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (pg_config_load(&cfg, path, 0, NULL, err, sizeof err) != 0)
        die(err);
    close(fd);

    pg_log_set_level((enum pg_log_level)(PG_LOG_ERROR + 1)); /* quiet: the fuzzer's output is its own */
    lws_set_log_level(0, NULL);

    gw.cfg = &cfg;
    gw.channel_broker = &pg_server_channel_broker;
    gw.started_ms = pg_now_ms();
    pg_config_auth_limits(&cfg, &gw.limits);
    snprintf(gw.node_id, sizeof gw.node_id, "%s", cfg.node_id);
    if (pg_apps_init(&gw) != 0)
        die("pg_apps_init");
    struct pg_bridge_config bc = {
        .host = "127.0.0.1", .port = 1, .client_id = "pushgate-fuzz", .keepalive_s = 30,
        .reconnect_min_ms = 100, .reconnect_max_ms = 1000, .publish_timeout_ms = 1000,
    };
    struct pg_bridge_ops ops = {.on_socket = bridge_noop};
    if (pg_bridge_new(&bc, &ops, &gw, &gw.bridge) != 0 || pg_webhooks_new(&gw, &gw.webhooks) != 0)
        die("bridge or webhooks");

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = &gw;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 16384;
    info.timeout_secs = 30;
    if (!(gw.ctx = lws_create_context(&info)))
        die("lws_create_context");
    gw.vhost = lws_get_vhost_by_name(gw.ctx, "default");
    if (pg_push_regs_init(&gw) != 0) /* subscribes on the bridge that never connects; sweeps in the context */
        die("push registrations");

    /* a raw descriptor for sessions to wake: the read end of a pipe nobody writes */
    if (pipe(raw_pipe) != 0)
        die("pipe");
    lws_sock_file_fd_type u;
    u.filefd = raw_pipe[0];
    if (!(raw_wsi = lws_adopt_descriptor_vhost(gw.vhost, LWS_ADOPT_RAW_FILE_DESC, u, "fuzz-raw", NULL)))
        die("adopt");
    return &gw;
}

struct lws *fuzz_gw_wsi(void)
{
    fuzz_gw();
    return raw_wsi;
}

void fuzz_gw_service(void)
{
    lws_service(gw.ctx, -1);
}

void fuzz_session_open(struct pg_session *s, struct pg_app *app, const struct pg_proto *proto)
{
    struct pg_gw *g = fuzz_gw();
    s->wsi = raw_wsi;
    s->app = app;
    s->proto = proto;
    s->last_rx_ms = pg_mono_ms();
    pg_session_register(g, s, raw_wsi);
}

void fuzz_frames(const uint8_t *data, size_t size, const struct pg_proto *proto, int max_frames,
                 void (*check)(const char *frame, size_t len), const char *key)
{
    struct pg_ws w; /* room for the protocol's own session fields, as lws gives a WebSocket */
    struct pg_session *s = &w.own;
    if (size < 1 || size > 65536)
        return;
    const char *app_id = data[0] & 1 ? "locked" : "demo";
    memset(&w, 0, sizeof w);
    fuzz_session_open(s, pg_app_lookup(fuzz_gw(), app_id, strlen(app_id)), proto);
    if (proto == &pg_pusher_proto) {
        snprintf(s->socket_id, sizeof s->socket_id, "%s", FUZZ_SOCKET_ID);
        snprintf(s->client_id, sizeof s->client_id, "%s", FUZZ_SOCKET_ID);
    } else {
        snprintf(s->client_id, sizeof s->client_id, "%s", FUZZ_CLIENT_ID);
    }
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int i = 0; i < max_frames && p <= end && !s->close_code; i++) {
        const char *sep = memchr(p, 0x1f, (size_t)(end - p));
        size_t n = (size_t)((sep ? sep : end) - p);
        check(p, n);
        proto->receive(s, p, n);
        fuzz_session_check_output(s, key);
        if (!sep)
            break;
        p = sep + 1;
    }
    fuzz_session_close(s);
}

int fuzz_json_has_string(const char *text, size_t len, const char *key)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    int ok = json_is_object(o) && json_is_string(json_object_get(o, key));
    json_decref(o);
    return ok;
}

void fuzz_session_check_output(struct pg_session *s, const char *key)
{
    for (size_t i = 0; i < s->q.count; i++) {
        struct pg_msg *m = s->q.ring[(s->q.head + i) % s->q.cap];
        if (!fuzz_json_has_string((const char *)pg_msg_data(m), m->len, key)) {
            fprintf(stderr, "fuzz_gw: frame without a string \"%s\": %.*s\n", key, (int)m->len,
                    (const char *)pg_msg_data(m));
            abort();
        }
    }
}

void fuzz_session_close(struct pg_session *s)
{
    pg_session_release(s->gw, s);
}
