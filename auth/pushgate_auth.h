/*
 * libpushgate_auth: everything that decides whether a client may do something.
 *
 *  - app credentials (id, key, secret, pinned JWT algorithm, RSA public key)
 *  - JWT verification (HS256 with the app secret, RS256 with the app's public key)
 *  - permission rules: the `permissions` claim, Perl regexes (PCRE2) on channel names
 *  - Pusher's protected channels (private-, presence-)
 *  - HMAC-SHA256 signatures and constant-time comparison
 *
 * No event loop, no logging, no global state: safe to use from the gateway and
 * from inside the Mosquitto broker (the plugin). Functions return 0 or a
 * negative PG_E* code (common/pg_common.h); decisions are pg_decision.
 */
#ifndef PUSHGATE_AUTH_H
#define PUSHGATE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "pg_common.h"

typedef enum { PG_DENY = 0, PG_ALLOW = 1 } pg_decision;
typedef enum { PG_ACT_PUBLISH = 0, PG_ACT_SUBSCRIBE = 1 } pg_action;
typedef enum { PG_ALG_HS256 = 1, PG_ALG_RS256 = 2 } pg_alg;

/* ---- app credentials ---------------------------------------------------- */

/*
 * One app's credentials. All strings are heap copies owned by the struct and
 * released by pg_app_creds_clear(). Zero-initialise before the first _set().
 */
struct pg_app_creds {
    char *id;             /* app id: URL and MQTT topic level, JWT `channel` claim */
    char *key;            /* public key (Pusher app key, HTTP Basic user) */
    char *secret;         /* HMAC secret; HS256 JWT key */
    pg_alg jwt_alg;       /* the one algorithm tokens of this app may use */
    char *public_key_pem; /* RS256 verification key (PEM), NULL if none */
    size_t public_key_len;
    int require_auth; /* 1: clients need a JWT before subscribe/publish */
    int active;       /* 0: app disabled, every credential refused */
};

/*
 * Start an app's credentials with the defaults a config section assumes when it
 * does not say otherwise: HS256, active, require_auth off. `app` is
 * overwritten (clear it first if it held anything); id is copied.
 */
int pg_app_creds_init(struct pg_app_creds *app, const char *id);
/*
 * Set one option of an `[app ID]` config section: key, secret, jwt_alg
 * (HS256|RS256), public_key_file (path, relative to base_dir), require_auth,
 * active. Returns PG_ENOTFOUND for an option that is not a credential option
 * (the caller may own it), PG_EINVAL with a message in err for a bad value.
 */
int pg_app_creds_set(struct pg_app_creds *app, const char *opt, const char *value, const char *base_dir, char *err,
                     size_t errlen);
/* Validate a completed section: a secret is required, RS256 needs a key. */
int pg_app_creds_check(const struct pg_app_creds *app, char *err, size_t errlen);
void pg_app_creds_clear(struct pg_app_creds *app);

/* ---- JWT + permissions ---------------------------------------------------- */

struct pg_auth_limits {
    uint32_t regex_match_limit; /* PCRE2 match limit per rule evaluation */
    uint32_t regex_depth_limit; /* PCRE2 depth limit (interpreter fallback) */
    int64_t leeway_ms;          /* clock skew allowed on exp/nbf */
    size_t max_token_bytes;     /* longer tokens are refused unparsed */
    size_t max_rules;           /* patterns in one `permissions` claim */
    size_t max_pattern_bytes;   /* length of one pattern */
};
/* The defaults used when a config does not override them. */
extern const struct pg_auth_limits pg_auth_limits_default;

typedef struct pg_token pg_token;

/*
 * Verify a compact JWT for `app`:
 *  - header alg must equal app->jwt_alg (so `none`, unknown algs and HS256
 *    signed with the RSA public key are refused), signature must verify;
 *  - claims: `channel` == app->id (required), `exp` required (values above
 *    10^11 are milliseconds), `nbf` optional, both checked against now_ms with
 *    lim->leeway_ms; `permissions` optional object of
 *    pattern -> {"publish":bool,"subscribe":bool}; every pattern must compile.
 * On success *out owns the parsed token (free with pg_token_free).
 * Errors: PG_EAUTH (bad token, wrong alg, bad signature, bad claim, invalid
 * pattern), PG_EEXPIRED (exp passed / nbf in future), PG_ELIMIT (too large),
 * PG_ENOMEM. err receives a short human-readable reason without secrets.
 */
int pg_token_verify(const char *jwt, size_t len, const struct pg_app_creds *app, const struct pg_auth_limits *lim,
                    int64_t now_ms, pg_token **out, char *err, size_t errlen);
void pg_token_free(pg_token *tok);

/* Claims; returned strings live as long as the token. NULL when absent. */
const char *pg_token_client(const pg_token *tok);
const char *pg_token_user_id(const pg_token *tok);
const char *pg_token_jti(const pg_token *tok);
int64_t pg_token_exp_ms(const pg_token *tok);
/* 1 when exp (plus leeway) is at or before now_ms. */
int pg_token_expired(const pg_token *tok, int64_t now_ms);

/*
 * Permission decision for `action` on `channel`: allowed iff at least one
 * matching pattern grants the action and no matching pattern denies it
 * (a pattern that omits the action neither grants nor denies). A regex that
 * hits its match or depth limit counts as a denying match.
 */
pg_decision pg_token_allows(const pg_token *tok, pg_action action, const char *channel, size_t len);

/* Permission rules on their own (the token uses these). */
typedef struct pg_rules pg_rules;
/* perms_json: the JSON text of a `permissions` object. Errors as pg_token_verify. */
int pg_rules_compile(const char *perms_json, size_t len, const struct pg_auth_limits *lim, pg_rules **out, char *err,
                     size_t errlen);
pg_decision pg_rules_allow(const pg_rules *rules, pg_action action, const char *channel, size_t len);
void pg_rules_free(pg_rules *rules);

/* ---- protected channels -------------------------------------------------- */

/* Whether a channel name is well formed is pg_channel_check()'s answer (pg_common.h, included above). */

/*
 * 1 if the channel is one of Pusher's protected kinds (`private-…`, which
 * includes `private-encrypted-…`, and `presence-…`). In every app, whatever
 * its require_auth, such a channel is read and written only with a credential
 * that grants it: Pusher channel auth, or a JWT whose permissions allow the
 * action. Routes without a credential (anonymous native sessions, REST
 * without a token, anonymous devices) are refused on them.
 */
int pg_channel_protected(const char *name, size_t len);

/*
 * Every gateway's MQTT client id is this prefix + its node id. The broker plugin never lets an app client (a
 * device) use a client id starting with it, so no device can take a gateway's session over.
 */
#define PG_GATEWAY_CLIENT_ID_PREFIX "pushgate-"

/* ---- signatures and secrets ---------------------------------------------- */

/* hex(HMAC_SHA256(key, msg)) into out (65 bytes with NUL). */
int pg_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len, char out[65]);
/* Constant-time equality of two strings; lengths are compared too. */
int pg_secret_equal(const char *a, size_t a_len, const char *b, size_t b_len);
/* len random characters [A-Za-z0-9] from the OpenSSL CSPRNG, NUL-terminated (out has len+1). */
int pg_random_token(char *out, size_t len);

#endif
