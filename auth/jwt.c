/*
 * JWT verification on top of libjwt 1.10.
 *
 * libjwt 1.10 trusts the token's own `alg` header: handed an RSA public key
 * PEM and a token that says HS256, it happily verifies an HMAC keyed with the
 * PEM text. So the header is decoded here first and its `alg` must equal the
 * algorithm pinned for the app before libjwt sees the key; afterwards libjwt's
 * own reading of `alg` is compared again, so a parser difference between the
 * two cannot reopen the hole. libjwt 1.10 checks neither `exp` nor `nbf`;
 * that is done here too.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>

#include "auth_internal.h"

struct pg_token {
    char *client;
    char *user_id;
    char *jti;
    int64_t exp_ms;
    int64_t leeway_ms;
    pg_rules *rules; /* NULL: the token carries no permissions, every action is denied */
};

/* exp/nbf above this are milliseconds (DESIGN: 10^11 s is year 5138, 10^11 ms is 1973). */
#define PG_JWT_MS_THRESHOLD 100000000000LL
/* Far enough for any real deadline, small enough that adding a leeway cannot overflow. */
#define PG_JWT_MAX_MS (INT64_C(1) << 52)
#define PG_JWT_MAX_LEEWAY_MS (INT64_C(1) << 40)

void pg_token_free(pg_token *tok)
{
    if (!tok)
        return;
    free(tok->client);
    free(tok->user_id);
    free(tok->jti);
    pg_rules_free(tok->rules);
    free(tok);
}

const char *pg_token_client(const pg_token *tok)
{
    return tok ? tok->client : NULL;
}

const char *pg_token_user_id(const pg_token *tok)
{
    return tok ? tok->user_id : NULL;
}

const char *pg_token_jti(const pg_token *tok)
{
    return tok ? tok->jti : NULL;
}

int64_t pg_token_exp_ms(const pg_token *tok)
{
    return tok ? tok->exp_ms : 0;
}

int pg_token_expired(const pg_token *tok, int64_t now_ms)
{
    if (!tok)
        return 1;
    /* exp_ms and leeway_ms are bounded at verification, so the sum cannot overflow. */
    return tok->exp_ms + tok->leeway_ms <= now_ms;
}

pg_decision pg_token_allows(const pg_token *tok, pg_action action, const char *channel, size_t len)
{
    if (!tok)
        return PG_DENY;
    return pg_rules_allow(tok->rules, action, channel, len);
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Decode one unpadded base64url segment into a JSON value. OpenSSL speaks
 * standard base64 only, so the alphabet is translated and padding restored.
 */
static json_t *decode_segment_json(const char *seg, size_t len)
{
    EVP_ENCODE_CTX *ctx = NULL;
    char *b64 = NULL;
    unsigned char *raw = NULL;
    json_t *json = NULL;
    size_t padded = (len + 3) / 4 * 4;
    int n1 = 0, n2 = 0;

    if (len % 4 == 1 || padded > INT32_MAX)
        goto out;
    b64 = malloc(padded);
    raw = malloc(padded / 4 * 3 + 1);
    ctx = EVP_ENCODE_CTX_new();
    if (!b64 || !raw || !ctx)
        goto out;
    for (size_t i = 0; i < len; i++)
        b64[i] = seg[i] == '-' ? '+' : seg[i] == '_' ? '/' : seg[i];
    memset(b64 + len, '=', padded - len);
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, raw, &n1, (const unsigned char *)b64, (int)padded) < 0)
        goto out;
    if (EVP_DecodeFinal(ctx, raw + n1, &n2) < 0)
        goto out;
    /* Duplicate keys would let our reading of `alg` differ from libjwt's. */
    json = json_loadb((const char *)raw, (size_t)n1 + (size_t)n2, JSON_REJECT_DUPLICATES, NULL);
out:
    EVP_ENCODE_CTX_free(ctx);
    free(b64);
    free(raw);
    return json;
}

/* The alg named in the token header, 0 for anything this library refuses (none, HS512, garbage...). */
static pg_alg header_alg(const char *hdr, size_t len)
{
    json_t *h = decode_segment_json(hdr, len);
    const char *alg;
    pg_alg out = 0;

    if (!json_is_object(h))
        goto out;
    alg = json_string_value(json_object_get(h, "alg"));
    if (!alg)
        goto out;
    if (!strcmp(alg, "HS256"))
        out = PG_ALG_HS256;
    else if (!strcmp(alg, "RS256"))
        out = PG_ALG_RS256;
out:
    json_decref(h);
    return out;
}

/* NumericDate -> ms since the epoch; values above 10^11 already are ms. */
static int claim_time_ms(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return PG_EAUTH;
        if (i > PG_JWT_MS_THRESHOLD)
            *ms = i > PG_JWT_MAX_MS ? PG_JWT_MAX_MS : (int64_t)i;
        else
            *ms = (int64_t)i * 1000;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0)
            return PG_EAUTH;
        if (d <= (double)PG_JWT_MS_THRESHOLD)
            d *= 1000.0;
        *ms = d >= (double)PG_JWT_MAX_MS ? PG_JWT_MAX_MS : (int64_t)d;
        return 0;
    }
    return PG_EAUTH;
}

/* Optional string claim: absent -> NULL, present but not a string -> PG_EAUTH. */
static int string_claim(const json_t *claims, const char *name, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(claims, name);

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return pg__err(err, errlen, PG_EAUTH, "claim %s must be a string", name);
    *out = strdup(json_string_value(v));
    return *out ? 0 : PG_ENOMEM;
}

int pg_token_verify(const char *jwt, size_t len, const struct pg_app_creds *app, const struct pg_auth_limits *lim,
                    int64_t now_ms, pg_token **out, char *err, size_t errlen)
{
    const char *dot1, *dot2;
    const unsigned char *key;
    size_t key_len;
    char *buf = NULL, *claims_txt = NULL;
    jwt_t *parsed = NULL;
    json_t *claims = NULL;
    const json_t *v;
    pg_token *tok = NULL;
    pg_alg alg;
    jwt_alg_t want_alg;
    int64_t nbf_ms = 0, leeway;
    int has_nbf, rc, jrc;

    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!lim)
        lim = &pg_auth_limits_default;
    if (!app || !app->id) {
        rc = pg__err(err, errlen, PG_EAUTH, "unknown app");
        goto out;
    }
    if (!app->active) {
        rc = pg__err(err, errlen, PG_EAUTH, "app disabled");
        goto out;
    }
    if (!jwt || len == 0) {
        rc = pg__err(err, errlen, PG_EAUTH, "missing token");
        goto out;
    }
    if (len > lim->max_token_bytes) {
        rc = pg__err(err, errlen, PG_ELIMIT, "token longer than %zu bytes", lim->max_token_bytes);
        goto out;
    }

    /* Compact form: three non-empty base64url segments. An empty signature is an unsigned token. */
    dot1 = memchr(jwt, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt)) : NULL;
    if (!dot1 || !dot2 || dot1 == jwt || dot2 == dot1 + 1 || dot2 + 1 == jwt + len) {
        rc = pg__err(err, errlen, PG_EAUTH, "malformed token");
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_b64url(jwt[i]) && jwt + i != dot1 && jwt + i != dot2) {
            rc = pg__err(err, errlen, PG_EAUTH, "malformed token");
            goto out;
        }
    }

    alg = header_alg(jwt, (size_t)(dot1 - jwt));
    if (alg == 0 || alg != app->jwt_alg) {
        rc = pg__err(err, errlen, PG_EAUTH, "token algorithm not accepted for this app");
        goto out;
    }
    if (alg == PG_ALG_HS256) {
        key = (const unsigned char *)app->secret;
        key_len = app->secret ? strlen(app->secret) : 0;
        want_alg = JWT_ALG_HS256;
    } else {
        key = (const unsigned char *)app->public_key_pem;
        key_len = app->public_key_pem ? app->public_key_len : 0;
        want_alg = JWT_ALG_RS256;
    }
    if (!key || key_len == 0 || key_len > INT32_MAX) {
        rc = pg__err(err, errlen, PG_EAUTH, "app has no key for its algorithm");
        goto out;
    }

    buf = malloc(len + 1);
    if (!buf) {
        rc = PG_ENOMEM;
        goto out;
    }
    memcpy(buf, jwt, len);
    buf[len] = '\0';
    jrc = jwt_decode(&parsed, buf, key, (int)key_len);
    if (jrc) {
        parsed = NULL;
        rc = jrc == ENOMEM ? PG_ENOMEM : pg__err(err, errlen, PG_EAUTH, "invalid token or signature");
        goto out;
    }
    if (jwt_get_alg(parsed) != want_alg) {
        rc = pg__err(err, errlen, PG_EAUTH, "token algorithm not accepted for this app");
        goto out;
    }

    claims_txt = jwt_get_grants_json(parsed, NULL);
    claims = claims_txt ? json_loads(claims_txt, 0, NULL) : NULL;
    if (!json_is_object(claims)) {
        rc = pg__err(err, errlen, PG_EAUTH, "token claims are not an object");
        goto out;
    }

    v = json_object_get(claims, "channel");
    if (!json_is_string(v) || strcmp(json_string_value(v), app->id) != 0) {
        rc = pg__err(err, errlen, PG_EAUTH, "claim channel does not name this app");
        goto out;
    }

    tok = calloc(1, sizeof(*tok));
    if (!tok) {
        rc = PG_ENOMEM;
        goto out;
    }
    v = json_object_get(claims, "exp");
    if (!v) {
        rc = pg__err(err, errlen, PG_EAUTH, "claim exp missing");
        goto out;
    }
    if (claim_time_ms(v, &tok->exp_ms)) {
        rc = pg__err(err, errlen, PG_EAUTH, "claim exp is not a valid time");
        goto out;
    }
    v = json_object_get(claims, "nbf");
    has_nbf = v != NULL;
    if (has_nbf && claim_time_ms(v, &nbf_ms)) {
        rc = pg__err(err, errlen, PG_EAUTH, "claim nbf is not a valid time");
        goto out;
    }
    if ((rc = string_claim(claims, "client", &tok->client, err, errlen)) ||
        (rc = string_claim(claims, "user_id", &tok->user_id, err, errlen)) ||
        (rc = string_claim(claims, "jti", &tok->jti, err, errlen)))
        goto out;

    leeway = lim->leeway_ms < 0 ? 0 : lim->leeway_ms > PG_JWT_MAX_LEEWAY_MS ? PG_JWT_MAX_LEEWAY_MS : lim->leeway_ms;
    tok->leeway_ms = leeway;
    if (pg_token_expired(tok, now_ms)) {
        rc = pg__err(err, errlen, PG_EEXPIRED, "token expired");
        goto out;
    }
    if (has_nbf && nbf_ms - leeway > now_ms) {
        rc = pg__err(err, errlen, PG_EEXPIRED, "token not yet valid");
        goto out;
    }

    v = json_object_get(claims, "permissions");
    if (v) {
        rc = pg__rules_from_json(v, lim, &tok->rules, err, errlen);
        if (rc)
            goto out;
    }

    *out = tok;
    tok = NULL;
    rc = 0;
out:
    pg_token_free(tok);
    json_decref(claims);
    free(claims_txt);
    jwt_free(parsed);
    free(buf);
    return rc;
}
