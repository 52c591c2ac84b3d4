/*
 * libFuzzer harness for the HTTP requests the gateway parses itself: request
 * paths and query strings of the publish route, the admin API, the Pusher HTTP
 * API (and its signed query), the push API, socket.io polling, and the
 * WebSocket paths (pg_ws_path). Each input becomes one HTTP/1.1 request,
 * written into one end of a socketpair whose other end is adopted into the
 * in-memory gateway's lws context (fuzz_gw.h): lws parses it as it would from
 * a client, and the gateway's own HTTP callback routes and answers it.
 *
 * Input: the first byte chooses the method (bits 0-2: GET POST PUT PATCH
 * DELETE OPTIONS, a WebSocket upgrade, POST) and headers (bit 3: the admin's Basic credentials, bit 4:
 * Content-Type: application/json, bit 5: an Origin, bit 6: the demo app's
 * X-AUTH-TOKEN, bit 7: a Bearer token that is not a valid JWT); then the
 * request target up to the first newline (bytes a request line cannot hold
 * are percent-encoded, so lws hands the gateway what a client meant), then
 * the body. A target with "auth_signature=SIGN" is signed as Pusher's server
 * SDKs sign (auth_timestamp=NOW and body_md5=MD5 filled in first), so the
 * fuzzer gets past the Pusher HTTP API's signature check to its body parsing.
 *
 * Invariants: every request gets exactly one answer with a status of 100-599
 * before the connection is reused or closed; every JSON error answer outside
 * /socket.io/ (Engine.IO has its own error shape) and /readyz (its 503 is the
 * readiness report) is
 * {"error":{"code":<the status>,"message":<string>}}; a WebSocket path
 * pg_ws_path() accepts names an app the way its route says (native: by id).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fuzz_gw.h"

#define MAX_TARGET 1024
#define MAX_BODY 8192
#define MAX_IDLE 64       /* lws loop turns without progress before a request counts as unanswered */
#define MAX_SERVICE 64    /* turns to let a request the client left go */
#define RESP_KEEP 65536   /* bytes of an answer kept for the checks */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 6: a WebSocket upgrade (GET with its headers), answered before any session opens */
static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "GET", "POST"};
#define UPGRADE 6

/* Appends at *n; returns 0, or -1 when buf is full. */
static int put(char *buf, size_t cap, size_t *n, const void *s, size_t len)
{
    if (*n + len > cap)
        return -1;
    memcpy(buf + *n, s, len);
    *n += len;
    return 0;
}

static void check_ws_path(struct pg_gw *gw, const char *target, size_t len)
{
    char path[MAX_TARGET + 1];
    const struct pg_proto *proto = NULL;
    struct pg_app *app = NULL;
    memcpy(path, target, len);
    path[len] = '\0';
    path[strcspn(path, "?")] = '\0';
    if (pg_ws_path(gw, path, &proto, &app) != 0)
        return;
    FUZZ_CHECK(proto == &pg_native_proto || proto == &pg_pusher_proto || proto == &pg_sio_proto);
    if (proto == &pg_native_proto)
        FUZZ_CHECK(app && !strncmp(path + 4, app->id, strlen(app->id)));
    if (proto == &pg_pusher_proto && app)
        FUZZ_CHECK(!strncmp(path + 5, app->creds->key, strlen(app->creds->key)));
}

/* Replaces the first "from" in t (length *tlen, capacity cap) with "to". */
static void replace(char *t, size_t *tlen, size_t cap, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *at = memmem(t, *tlen, from, fl);
    if (!at || *tlen - fl + tl > cap)
        return;
    memmove(at + tl, at + fl, *tlen - (size_t)(at - t) - fl);
    memcpy(at, to, tl);
    *tlen = *tlen - fl + tl;
}

static int key_cmp(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t xl = strcspn(x, "="), yl = strcspn(y, "=");
    int c = strncmp(x, y, xl < yl ? xl : yl);
    return c ? c : (int)xl - (int)yl;
}

/*
 * What a Pusher server SDK does: auth_signature = hex HMAC-SHA256(secret,
 * "METHOD\npath\nquery"), the query's other parameters sorted by lowercased key.
 */
static void pusher_sign(char *t, size_t *tlen, size_t cap, const char *method, const char *body, size_t blen)
{
    char num[32], md5hex[33], hex[65], work[MAX_TARGET * 2], *args[64], tosign[MAX_TARGET * 2 + 16];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!memmem(t, *tlen, "auth_signature=SIGN", 19))
        return;
    snprintf(num, sizeof num, "auth_timestamp=%lld", (long long)(pg_now_ms() / 1000));
    replace(t, tlen, cap, "auth_timestamp=NOW", num);
    EVP_Digest(body, blen, md, &mdlen, EVP_md5(), NULL);
    for (unsigned i = 0; i < mdlen && i < 16; i++)
        snprintf(md5hex + 2 * i, 3, "%02x", md[i]);
    snprintf(work, sizeof work, "body_md5=%s", md5hex);
    replace(t, tlen, cap, "body_md5=MD5", work);
    memcpy(work, t, *tlen);
    work[*tlen] = '\0';
    char *q = strchr(work, '?');
    if (!q)
        return;
    *q++ = '\0';
    int n = 0;
    for (char *a = strtok(q, "&"); a && n < 64; a = strtok(NULL, "&")) {
        for (char *k = a; *k && *k != '='; k++)
            *k = (char)tolower((unsigned char)*k);
        if (strncmp(a, "auth_signature=", 15) != 0)
            args[n++] = a;
    }
    qsort(args, (size_t)n, sizeof args[0], key_cmp);
    size_t len = (size_t)snprintf(tosign, sizeof tosign, "%s\n%s\n", method, work);
    for (int i = 0; i < n && len < sizeof tosign; i++)
        len += (size_t)snprintf(tosign + len, sizeof tosign - len, "%s%s", i ? "&" : "", args[i]);
    if (len >= sizeof tosign || pg_hmac_sha256_hex(FUZZ_SECRET, strlen(FUZZ_SECRET), tosign, len, hex) != 0)
        return;
    snprintf(work, sizeof work, "auth_signature=%s", hex);
    replace(t, tlen, cap, "auth_signature=SIGN", work);
}

/*
 * The answer: its first n bytes in resp, total bytes received. 1 when complete
 * (headers, then Content-Length bytes of body); body/body_len: what is kept.
 */
static int answer_complete(const char *resp, size_t n, size_t total, int *status, const char **body,
                           size_t *body_len)
{
    const char *eoh = memmem(resp, n, "\r\n\r\n", 4);
    if (!eoh)
        return 0;
    if (n < 12 || memcmp(resp, "HTTP/1.", 7) != 0)
        return 0;
    *status = atoi(resp + 9);
    const char *cl = memmem(resp, (size_t)(eoh - resp), "content-length: ", 16);
    size_t want = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
    *body = eoh + 4;
    *body_len = n - (size_t)(*body - resp);
    return total - (size_t)(*body - resp) >= want;
}

static void check_answer(int status, const char *body, size_t len)
{
    FUZZ_CHECK(status >= 100 && status <= 599);
    if (status < 400 || !len || body[0] != '{' || !strncmp(fuzz_http_path, "/socket.io", 10) ||
        !strcmp(fuzz_http_path, "/readyz"))
        return;
    json_t *o = json_loadb(body, len, 0, NULL), *e = json_object_get(o, "error");
    FUZZ_CHECK(json_integer_value(json_object_get(e, "code")) == status);
    FUZZ_CHECK(json_is_string(json_object_get(e, "message")));
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char req[MAX_TARGET * 6 + MAX_BODY + 1024], resp[RESP_KEEP];
    struct pg_gw *gw = fuzz_gw();
    int sv[2];
    if (size < 1)
        return 0;
    const uint8_t flags = data[0];
    const char *in = (const char *)data + 1, *end = (const char *)data + size;
    const char *nl = memchr(in, '\n', (size_t)(end - in));
    const char *tend = nl ? nl : end, *body = nl ? nl + 1 : end;
    size_t tlen = (size_t)(tend - in), blen = (size_t)(end - body);
    if (tlen == 0 || tlen > MAX_TARGET || blen > MAX_BODY)
        return 0;
    check_ws_path(gw, in, tlen);
    static char target[MAX_TARGET * 2];
    memcpy(target, in, tlen);
    pusher_sign(target, &tlen, sizeof target, methods[flags & 7], body, blen);
    in = target;

    size_t n = 0;
    char line[128];
    put(req, sizeof req, &n, methods[flags & 7], strlen(methods[flags & 7]));
    put(req, sizeof req, &n, " ", 1);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(line, sizeof line, "%%%02X", c);
            put(req, sizeof req, &n, line, 3);
        } else {
            put(req, sizeof req, &n, &in[i], 1);
        }
    }
    n += (size_t)snprintf(req + n, sizeof req - n, " HTTP/1.1\r\nHost: localhost\r\n");
    if (flags & 8) {
        char user_pass[] = FUZZ_ADMIN_USER ":" FUZZ_ADMIN_PASSWORD, b64[128];
        lws_b64_encode_string(user_pass, (int)strlen(user_pass), b64, sizeof b64);
        n += (size_t)snprintf(req + n, sizeof req - n, "Authorization: Basic %s\r\n", b64);
    } else if (flags & 128) {
        n += (size_t)snprintf(req + n, sizeof req - n, "Authorization: Bearer not.a.jwt\r\n");
    }
    if ((flags & 7) == UPGRADE)
        n += (size_t)snprintf(req + n, sizeof req - n,
                              "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    if (flags & 16)
        n += (size_t)snprintf(req + n, sizeof req - n, "Content-Type: application/json\r\n");
    if (flags & 32)
        n += (size_t)snprintf(req + n, sizeof req - n, "Origin: http://localhost:8080\r\n");
    if (flags & 64)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-AUTH-TOKEN: fuzz-push-token-0123456789\r\n");
    n += (size_t)snprintf(req + n, sizeof req - n, "Content-Length: %zu\r\n\r\n", blen);
    FUZZ_CHECK(put(req, sizeof req, &n, body, blen) == 0);

    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    FUZZ_CHECK(write(sv[0], req, n) == (ssize_t)n);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    FUZZ_CHECK(lws_adopt_socket_vhost(gw->vhost, sv[1]) != NULL);

    /*
     * One answer, then the client hangs up and lws lets the connection go. The
     * first RESP_KEEP bytes are kept (status, headers, an error body); the rest
     * is counted (/metrics grows with the apps admin inputs create). The loop
     * runs while lws makes progress.
     */
    unsigned long seen = fuzz_http_requests;
    size_t got = 0, total = 0;
    int status = 0, answered = 0, eof = 0;
    const char *rbody = NULL;
    size_t rblen = 0;
    for (int idle = 0; idle < MAX_IDLE && !eof; idle++) {
        char scratch[16384];
        ssize_t r;
        fuzz_gw_service();
        while ((r = read(sv[0], scratch, sizeof scratch)) > 0) {
            size_t keep = got + (size_t)r <= RESP_KEEP ? (size_t)r : RESP_KEEP - got;
            memcpy(resp + got, scratch, keep);
            got += keep;
            total += (size_t)r;
            idle = 0;
        }
        if (r == 0)
            eof = 1;
        if (!answered && answer_complete(resp, got, total, &status, &rbody, &rblen)) {
            answered = 1;
            if (fuzz_http_requests == seen) { /* lws answered on its own (a request it refuses) */
                shutdown(sv[0], SHUT_WR);
                continue;
            }
            if (getenv("FUZZ_VERBOSE")) /* seeds' answers, when writing them */
                fprintf(stderr, "%s %.*s -> %d %.*s\n", methods[flags & 7], (int)tlen, in, status,
                        (int)(rblen > 200 ? 200 : rblen), rbody);
            check_answer(status, rbody, rblen);
            shutdown(sv[0], SHUT_WR);
        }
    }
    FUZZ_CHECK(answered || fuzz_http_requests == seen); /* what lws refused on its own is its business */
    close(sv[0]);
    for (int i = 0; i < MAX_SERVICE && (HASH_COUNT(gw->requests) > 0); i++)
        fuzz_gw_service();
    return 0;
}
