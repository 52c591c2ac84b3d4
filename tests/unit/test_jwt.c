/*
 * auth/jwt.c and auth/app_creds.c: token verification with the algorithm pinned per
 * app, claim checks, and the credentials that feed them. Tokens are minted here
 * with libjwt's encoder (or assembled by hand for headers libjwt would not
 * write) and keys are generated with OpenSSL, so no fixture can go stale.
 */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "check.h"
#include "pushgate_auth.h"

#define NOW_MS INT64_C(1700000000000)
#define NOW_S (NOW_MS / 1000)
#define HS_SECRET "demo-secret-that-is-long-enough-for-hs256"

static char tmpdir[64];
static char *rsa_pub_pem, *rsa_priv_pem, *rsa2_priv_pem;

/* ---- helpers ------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return d;
}

static char *pem_of(EVP_PKEY *pkey, int private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out = NULL;
    long n;

    if (!bio)
        return NULL;
    if (private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, pkey)) {
        n = BIO_get_mem_data(bio, &data);
        out = strndup(data, (size_t)n);
    }
    BIO_free(bio);
    return out;
}

static void write_file(const char *name, const char *text)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    CHECK(f != NULL, "cannot create %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* base64url without padding, via OpenSSL's encoder. */
static char *b64url(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    int n;

    if (!out)
        exit(2);
    n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* header.payload.sig from raw JSON; for headers libjwt's encoder will not produce. */
static char *handmade(const char *header_json, const char *claims_json, const char *sig)
{
    char *h = b64url(header_json), *p = b64url(claims_json), *out;
    if (asprintf(&out, "%s.%s.%s", h, p, sig) < 0)
        exit(2);
    free(h);
    free(p);
    return out;
}

/* header.payload.sig with a real HS256 signature, for shapes libjwt's encoder will not produce. */
static char *signed_hs256(const char *header_json, const char *claims_json, const char *secret)
{
    char *unsigned_tok = handmade(header_json, claims_json, ""), *out, *sig;
    unsigned char mac[32], b64[64];
    unsigned int mac_len = 0;
    size_t n = strlen(unsigned_tok) - 1; /* without the trailing '.' */
    int m;

    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)unsigned_tok, n, mac, &mac_len))
        exit(2);
    m = EVP_EncodeBlock(b64, mac, (int)mac_len);
    while (m > 0 && b64[m - 1] == '=')
        m--;
    b64[m] = '\0';
    for (unsigned char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    sig = (char *)b64;
    if (asprintf(&out, "%s%s", unsigned_tok, sig) < 0)
        exit(2);
    free(unsigned_tok);
    return out;
}

/* A token signed by libjwt's encoder. */
static char *mint(jwt_alg_t alg, const char *key, const char *claims_json)
{
    jwt_t *j = NULL;
    char *tok = NULL;

    if (jwt_new(&j))
        return NULL;
    if (jwt_add_grants_json(j, claims_json) == 0 &&
        jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0) == 0)
        tok = jwt_encode_str(j);
    jwt_free(j);
    CHECK(tok != NULL, "libjwt could not mint a %s token", jwt_alg_str(alg));
    return tok;
}

static char *claims(const char *extra, long long exp)
{
    char *out;
    if (asprintf(&out, "{\"channel\":\"demo\",\"client\":\"c1\",\"exp\":%lld%s%s}", exp, extra && *extra ? "," : "",
                 extra ? extra : "") < 0)
        exit(2);
    return out;
}

static int verify(const struct pg_app_creds *app, const char *tok, const struct pg_auth_limits *lim, int64_t now,
                  pg_token **out, char *err, size_t errlen)
{
    pg_token *t = NULL;
    int rc;

    if (!tok)
        return 999;
    rc = pg_token_verify(tok, strlen(tok), app, lim, now, &t, err, errlen);
    if (rc == 0 && !t)
        rc = 998;
    if (rc != 0 && t)
        rc = 997; /* a failure must not hand out a token */
    if (out)
        *out = t;
    else
        pg_token_free(t);
    return rc;
}

#define EXPECT(app, tok, want, why)                                                                                    \
    do {                                                                                                               \
        char e_[160] = "";                                                                                             \
        int r_ = verify(app, tok, NULL, NOW_MS, NULL, e_, sizeof(e_));                                                 \
        CHECK(r_ == (want), "%s: expected %s (%d), got %s (%d) [%s]", why, pg_strerror(want), want, pg_strerror(r_),   \
              r_, e_);                                                                                                 \
        if ((want) != 0)                                                                                               \
            CHECK(e_[0] != '\0', "%s: expected an error message", why);                                                \
    } while (0)

/* ---- fixtures ------------------------------------------------------------- */

static void setup_keys(void)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048), *rsa2 = EVP_RSA_gen(2048), *small = EVP_RSA_gen(1024);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    char *ec_pem, *small_pem;

    if (!rsa || !rsa2 || !small || !ec) {
        fprintf(stderr, "key generation failed\n");
        exit(2);
    }
    rsa_pub_pem = pem_of(rsa, 0);
    rsa_priv_pem = pem_of(rsa, 1);
    rsa2_priv_pem = pem_of(rsa2, 1);
    ec_pem = pem_of(ec, 0);
    small_pem = pem_of(small, 0);
    if (!rsa_pub_pem || !rsa_priv_pem || !rsa2_priv_pem || !ec_pem || !small_pem)
        exit(2);

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pg_test_jwt.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
    write_file("rsa_pub.pem", rsa_pub_pem);
    write_file("rsa_priv.pem", rsa_priv_pem);
    write_file("ec_pub.pem", ec_pem);
    write_file("rsa1024_pub.pem", small_pem);
    write_file("garbage.pem", "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n");
    free(ec_pem);
    free(small_pem);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

static void cleanup_keys(void)
{
    static const char *files[] = {"rsa_pub.pem", "rsa_priv.pem", "ec_pub.pem", "rsa1024_pub.pem", "garbage.pem"};
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    free(rsa_pub_pem);
    free(rsa_priv_pem);
    free(rsa2_priv_pem);
}

static void make_hs_app(struct pg_app_creds *app)
{
    char err[160] = "";
    CHECK_EQ(pg_app_creds_init(app, "demo"), 0, "init");
    CHECK_EQ(pg_app_creds_set(app, "key", "demo-key", NULL, err, sizeof(err)), 0, "set key");
    CHECK_EQ(pg_app_creds_set(app, "secret", HS_SECRET, NULL, err, sizeof(err)), 0, "set secret");
    CHECK_EQ(pg_app_creds_check(app, err, sizeof(err)), 0, "HS256 app valid");
}

static void make_rs_app(struct pg_app_creds *app)
{
    char err[160] = "";
    make_hs_app(app);
    CHECK_EQ(pg_app_creds_set(app, "jwt_alg", "RS256", NULL, err, sizeof(err)), 0, "set jwt_alg");
    CHECK_EQ(pg_app_creds_set(app, "public_key_file", "rsa_pub.pem", tmpdir, err, sizeof(err)), 0,
             "public_key_file relative to base_dir");
    CHECK_EQ(pg_app_creds_check(app, err, sizeof(err)), 0, "RS256 app valid");
}

/* ---- app credentials ------------------------------------------------------ */

static void test_app_creds(void)
{
    struct pg_app_creds app;
    char err[160], abs_path[160];

    CHECK_EQ(pg_app_creds_init(&app, "demo"), 0, "init");
    CHECK(app.active == 1 && app.jwt_alg == PG_ALG_HS256 && app.require_auth == 0, "init defaults");
    CHECK(app.id && !strcmp(app.id, "demo"), "init copies the id");

    err[0] = '\0';
    CHECK_EQ(pg_app_creds_check(&app, err, sizeof(err)), PG_EINVAL, "secret is required");
    CHECK(strstr(err, "secret") != NULL, "message names the secret: %s", err);

    CHECK_EQ(pg_app_creds_set(&app, "secret", "", NULL, err, sizeof(err)), PG_EINVAL, "empty secret");
    CHECK_EQ(pg_app_creds_set(&app, "secret", "s3cr3t-value", NULL, err, sizeof(err)), 0, "secret");
    CHECK_EQ(pg_app_creds_set(&app, "secret", "s3cr3t-value-2", NULL, err, sizeof(err)), 0, "secret replaced");
    CHECK(!strcmp(app.secret, "s3cr3t-value-2"), "secret replaced");
    CHECK_EQ(pg_app_creds_set(&app, "key", "k", NULL, err, sizeof(err)), 0, "key");
    CHECK_EQ(pg_app_creds_check(&app, err, sizeof(err)), 0, "complete HS256 app");

    CHECK_EQ(pg_app_creds_set(&app, "require_auth", "true", NULL, err, sizeof(err)), 0, "require_auth");
    CHECK_EQ(app.require_auth, 1, "require_auth value");
    CHECK_EQ(pg_app_creds_set(&app, "require_auth", "off", NULL, err, sizeof(err)), 0, "require_auth off");
    CHECK_EQ(app.require_auth, 0, "require_auth value");
    err[0] = '\0';
    CHECK_EQ(pg_app_creds_set(&app, "require_auth", "maybe", NULL, err, sizeof(err)), PG_EINVAL, "bad bool");
    CHECK(strstr(err, "maybe") != NULL, "message quotes the bad value: %s", err);
    CHECK_EQ(pg_app_creds_set(&app, "active", "no", NULL, err, sizeof(err)), 0, "active");
    CHECK_EQ(app.active, 0, "active value");
    CHECK_EQ(pg_app_creds_set(&app, "active", "yes", NULL, err, sizeof(err)), 0, "active");

    CHECK_EQ(pg_app_creds_set(&app, "listen_port", "80", NULL, err, sizeof(err)), PG_ENOTFOUND, "foreign option");
    CHECK_EQ(pg_app_creds_set(&app, "jwt_alg", "HS512", NULL, err, sizeof(err)), PG_EINVAL, "HS512 not offered");
    CHECK_EQ(pg_app_creds_set(&app, "jwt_alg", "none", NULL, err, sizeof(err)), PG_EINVAL, "none not offered");
    CHECK_EQ(pg_app_creds_set(&app, "jwt_alg", "RS256", NULL, err, sizeof(err)), 0, "RS256");
    err[0] = '\0';
    CHECK_EQ(pg_app_creds_check(&app, err, sizeof(err)), PG_EINVAL, "RS256 needs a key");
    CHECK(strstr(err, "public_key_file") != NULL, "message names the option: %s", err);

    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", "missing.pem", tmpdir, err, sizeof(err)), PG_EINVAL,
             "missing key file");
    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", "ec_pub.pem", tmpdir, err, sizeof(err)), PG_EINVAL,
             "EC key is the wrong type");
    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", "rsa1024_pub.pem", tmpdir, err, sizeof(err)), PG_EINVAL,
             "1024-bit RSA refused");
    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", "rsa_priv.pem", tmpdir, err, sizeof(err)), PG_EINVAL,
             "private key file is not a public key");
    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", "garbage.pem", tmpdir, err, sizeof(err)), PG_EINVAL,
             "garbage PEM");
    CHECK(app.public_key_pem == NULL, "failed loads leave no key behind");

    snprintf(abs_path, sizeof(abs_path), "%s/rsa_pub.pem", tmpdir);
    CHECK_EQ(pg_app_creds_set(&app, "public_key_file", abs_path, "/nonexistent", err, sizeof(err)), 0,
             "absolute path ignores base_dir");
    CHECK(app.public_key_pem && app.public_key_len == strlen(rsa_pub_pem) &&
              !memcmp(app.public_key_pem, rsa_pub_pem, app.public_key_len),
          "key file content kept verbatim");
    CHECK_EQ(pg_app_creds_check(&app, err, sizeof(err)), 0, "complete RS256 app");
    pg_app_creds_clear(&app);
    CHECK(app.id == NULL && app.secret == NULL && app.public_key_pem == NULL, "clear releases everything");
    pg_app_creds_clear(&app); /* idempotent */
}

/* ---- JWT ------------------------------------------------------------------- */

static void test_hs256(void)
{
    struct pg_app_creds app;
    pg_token *t = NULL;
    char err[160] = "", *c, *tok;
    int rc;

    make_hs_app(&app);

    c = claims("\"user_id\":\"u-42\",\"jti\":\"j-1\",\"permissions\":{\"^room\":{\"publish\":true,\"subscribe\":true},"
               "\"secret\":{\"publish\":false}}",
               NOW_S + 600);
    tok = mint(JWT_ALG_HS256, HS_SECRET, c);
    rc = verify(&app, tok, NULL, NOW_MS, &t, err, sizeof(err));
    CHECK_EQ(rc, 0, "valid HS256 token");
    if (rc == 0) {
        CHECK(pg_token_client(t) && !strcmp(pg_token_client(t), "c1"), "client claim");
        CHECK(pg_token_user_id(t) && !strcmp(pg_token_user_id(t), "u-42"), "user_id claim");
        CHECK(pg_token_jti(t) && !strcmp(pg_token_jti(t), "j-1"), "jti claim");
        CHECK_EQ(pg_token_exp_ms(t), (NOW_S + 600) * 1000, "exp in seconds becomes ms");
        CHECK_EQ(pg_token_expired(t, NOW_MS), 0, "not expired now");
        /* default leeway is 5 s: expired at exp + 5 s, not before */
        CHECK_EQ(pg_token_expired(t, (NOW_S + 600) * 1000 + 4999), 0, "inside leeway");
        CHECK_EQ(pg_token_expired(t, (NOW_S + 600) * 1000 + 5000), 1, "at exp + leeway");
        CHECK(pg_token_allows(t, PG_ACT_PUBLISH, "room-1", 6) == PG_ALLOW, "permissions grant publish");
        CHECK(pg_token_allows(t, PG_ACT_PUBLISH, "room-secret", 11) == PG_DENY, "deny wins in token rules");
        CHECK(pg_token_allows(t, PG_ACT_SUBSCRIBE, "lobby", 5) == PG_DENY, "no match, no grant");
    }
    pg_token_free(t);
    t = NULL;
    free(tok);
    free(c);

    /* Optional claims absent -> NULL; no permissions -> nothing allowed. */
    tok = mint(JWT_ALG_HS256, HS_SECRET, "{\"channel\":\"demo\",\"exp\":1700000600}");
    rc = verify(&app, tok, NULL, NOW_MS, &t, err, sizeof(err));
    CHECK_EQ(rc, 0, "minimal HS256 token");
    if (rc == 0) {
        CHECK(pg_token_client(t) == NULL && pg_token_user_id(t) == NULL && pg_token_jti(t) == NULL,
              "absent claims are NULL");
        CHECK(pg_token_allows(t, PG_ACT_SUBSCRIBE, "x", 1) == PG_DENY, "no permissions claim grants nothing");
    }
    pg_token_free(t);
    free(tok);

    /* Wrong secret / tampered signature / tampered payload. */
    c = claims(NULL, NOW_S + 600);
    tok = mint(JWT_ALG_HS256, "another-secret-of-reasonable-length!!", c);
    EXPECT(&app, tok, PG_EAUTH, "HS256 signed with another secret");
    free(tok);
    tok = mint(JWT_ALG_HS256, HS_SECRET, c);
    if (tok) {
        char *sig = strrchr(tok, '.') + 1;
        sig[5] = sig[5] == 'A' ? 'B' : 'A';
        EXPECT(&app, tok, PG_EAUTH, "flipped signature character");
    }
    free(tok);
    {
        /* Same signature, payload swapped for a more generous one. */
        char *good = mint(JWT_ALG_HS256, HS_SECRET, c);
        char *evil_claims = claims("\"permissions\":{\".*\":{\"publish\":true}}", NOW_S + 600);
        char *evil = handmade("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", evil_claims, good ? strrchr(good, '.') + 1 : "x");
        EXPECT(&app, evil, PG_EAUTH, "payload replaced under an old signature");
        free(good);
        free(evil_claims);
        free(evil);
    }
    free(c);
    pg_app_creds_clear(&app);
}

static void test_rs256(void)
{
    struct pg_app_creds app;
    pg_token *t = NULL;
    char err[160] = "", *c, *tok;
    int rc;

    make_rs_app(&app);
    c = claims(NULL, NOW_S + 600);

    tok = mint(JWT_ALG_RS256, rsa_priv_pem, c);
    rc = verify(&app, tok, NULL, NOW_MS, &t, err, sizeof(err));
    CHECK_EQ(rc, 0, "valid RS256 token");
    if (rc == 0)
        CHECK(pg_token_client(t) && !strcmp(pg_token_client(t), "c1"), "client claim from RS256 token");
    pg_token_free(t);
    free(tok);

    tok = mint(JWT_ALG_RS256, rsa2_priv_pem, c);
    EXPECT(&app, tok, PG_EAUTH, "RS256 signed by another RSA key");
    free(tok);

    /* An RS256 app must not accept HS256 tokens signed with its secret either. */
    tok = mint(JWT_ALG_HS256, HS_SECRET, c);
    EXPECT(&app, tok, PG_EAUTH, "HS256 token for an RS256 app");
    free(tok);

    /*
     * The key-confusion attack: the public key is public, so an attacker signs
     * HS256 with the PEM text as HMAC key. First show the token really is
     * accepted by libjwt when it is handed the PEM, so this test has teeth.
     */
    tok = mint(JWT_ALG_HS256, rsa_pub_pem, c);
    if (tok) {
        jwt_t *j = NULL;
        int lrc = jwt_decode(&j, tok, (const unsigned char *)rsa_pub_pem, (int)strlen(rsa_pub_pem));
        CHECK(lrc == 0, "precondition: libjwt alone accepts HS256 keyed with the RSA public PEM (rc %d)", lrc);
        jwt_free(j);
    }
    EXPECT(&app, tok, PG_EAUTH, "HS256 signed with the RSA public key as HMAC secret");
    free(tok);

    free(c);
    pg_app_creds_clear(&app);
}

static void test_alg_pinning(void)
{
    struct pg_app_creds app;
    char *c, *tok;

    make_hs_app(&app);
    c = claims(NULL, NOW_S + 600);

    /* alg none: libjwt writes an empty signature; also try one with a signature segment. */
    tok = mint(JWT_ALG_NONE, NULL, c);
    EXPECT(&app, tok, PG_EAUTH, "alg none from libjwt");
    free(tok);
    tok = handmade("{\"alg\":\"none\",\"typ\":\"JWT\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "alg none with a signature segment");
    free(tok);
    tok = handmade("{\"alg\":\"None\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "alg None");
    free(tok);

    /* Algorithms the app does not use, even if libjwt could verify them with the secret. */
    tok = mint(JWT_ALG_HS512, HS_SECRET, c);
    EXPECT(&app, tok, PG_EAUTH, "HS512 with the right secret");
    free(tok);
    tok = mint(JWT_ALG_HS384, HS_SECRET, c);
    EXPECT(&app, tok, PG_EAUTH, "HS384 with the right secret");
    free(tok);
    tok = handmade("{\"alg\":\"XY999\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "unknown alg");
    free(tok);
    tok = handmade("{\"typ\":\"JWT\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "no alg at all");
    free(tok);
    tok = handmade("{\"alg\":256}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "alg not a string");
    free(tok);
    /* Two alg keys: whichever one a parser keeps, the token is refused. */
    tok = handmade("{\"alg\":\"HS256\",\"alg\":\"none\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "duplicate alg");
    free(tok);
    tok = handmade("{\"alg\":\"none\",\"alg\":\"HS256\"}", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "duplicate alg, reversed");
    free(tok);
    tok = handmade("[\"HS256\"]", c, "AAAA");
    EXPECT(&app, tok, PG_EAUTH, "header not an object");
    free(tok);

    free(c);
    pg_app_creds_clear(&app);
}

static void test_malformed(void)
{
    struct pg_app_creds app;
    struct pg_auth_limits lim = pg_auth_limits_default;
    char err[160] = "", *c, *tok;
    static const char *bad[] = {"", "abc", "a.b", "a..c", ".b.c", "a.b.", "a.b.c.d", "a b.c.d", "a.b.c=", "a+b.c.d"};

    make_hs_app(&app);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT(&app, bad[i], PG_EAUTH, bad[i]);

    c = claims(NULL, NOW_S + 600);
    tok = mint(JWT_ALG_HS256, HS_SECRET, c);
    if (tok) {
        size_t n = strlen(tok);
        char *with_nul = xstrdup(tok);
        pg_token *t = NULL;

        with_nul[n / 2] = '\0';
        CHECK_EQ(pg_token_verify(with_nul, n, &app, NULL, NOW_MS, &t, err, sizeof(err)), PG_EAUTH, "embedded NUL");
        free(with_nul);

        /* Size limit: refused before parsing, and the limit is inclusive. */
        lim.max_token_bytes = n - 1;
        CHECK_EQ(verify(&app, tok, &lim, NOW_MS, NULL, err, sizeof(err)), PG_ELIMIT, "token over max_token_bytes");
        lim.max_token_bytes = n;
        CHECK_EQ(verify(&app, tok, &lim, NOW_MS, NULL, err, sizeof(err)), 0, "token at max_token_bytes");
        /* The verifier must use len, not strlen: a valid token followed by junk is not valid. */
        {
            char *longer;
            if (asprintf(&longer, "%sXYZ", tok) < 0)
                exit(2);
            CHECK_EQ(pg_token_verify(longer, n, &app, NULL, NOW_MS, &t, err, sizeof(err)), 0, "len bounds the token");
            pg_token_free(t);
            t = NULL;
            CHECK_EQ(pg_token_verify(longer, n + 3, &app, NULL, NOW_MS, &t, err, sizeof(err)), PG_EAUTH,
                     "trailing junk breaks the signature");
            free(longer);
        }
    }
    free(tok);

    /* Correctly signed, but the claims are not a JSON object. */
    tok = signed_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "[1,2,3]", HS_SECRET);
    EXPECT(&app, tok, PG_EAUTH, "claims are an array");
    free(tok);
    /* Correctly signed with duplicate alg keys: refused whichever copy a parser would keep. */
    tok = signed_hs256("{\"alg\":\"none\",\"alg\":\"HS256\"}", c, HS_SECRET);
    EXPECT(&app, tok, PG_EAUTH, "signed token with duplicate alg");
    free(tok);
    /* The signing helper itself is sound: the same construction with a plain header verifies. */
    tok = signed_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", c, HS_SECRET);
    EXPECT(&app, tok, 0, "hand-signed control token");
    free(tok);

    /* Inactive app: everything refused. */
    app.active = 0;
    tok = mint(JWT_ALG_HS256, HS_SECRET, c);
    EXPECT(&app, tok, PG_EAUTH, "inactive app");
    free(tok);
    EXPECT(NULL, "a.b.c", PG_EAUTH, "no app");
    free(c);
    pg_app_creds_clear(&app);
}

static void test_claims(void)
{
    struct pg_app_creds app;
    pg_token *t = NULL;
    char err[160] = "", *tok;
    int rc;

    make_hs_app(&app);

#define CLAIMS_CASE(json, want, why)                                                                                   \
    do {                                                                                                               \
        char *tk_ = mint(JWT_ALG_HS256, HS_SECRET, json);                                                              \
        EXPECT(&app, tk_, want, why);                                                                                  \
        free(tk_);                                                                                                     \
    } while (0)

    /* exp in seconds */
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1699996400}", PG_EEXPIRED, "expired an hour ago (s)");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700000000}", 0, "exp == now, inside the 5 s leeway");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1699999995}", PG_EEXPIRED, "exp + leeway == now");
    /* exp in milliseconds (> 10^11) */
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1699999990000}", PG_EEXPIRED, "expired 10 s ago (ms), leeway 5 s");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1699999998000}", 0, "expired 2 s ago (ms), inside leeway");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700000600000}", 0, "valid (ms)");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700000600.5}", 0, "fractional seconds");
    /* nbf */
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"nbf\":1700003000}", PG_EEXPIRED, "nbf in the future");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"nbf\":1700000010000}", PG_EEXPIRED, "nbf 10 s ahead (ms)");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"nbf\":1700000003}", 0, "nbf 3 s ahead, inside leeway");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"nbf\":1699990000}", 0, "nbf in the past");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"nbf\":\"soon\"}", PG_EAUTH, "nbf not a number");
    /* exp required and numeric */
    CLAIMS_CASE("{\"channel\":\"demo\"}", PG_EAUTH, "missing exp");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":\"1700003600\"}", PG_EAUTH, "exp as a string");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":-5}", PG_EAUTH, "negative exp");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":null}", PG_EAUTH, "null exp");
    /* channel claim binds the token to the app */
    CLAIMS_CASE("{\"channel\":\"other\",\"exp\":1700003600}", PG_EAUTH, "wrong channel");
    CLAIMS_CASE("{\"channel\":\"demox\",\"exp\":1700003600}", PG_EAUTH, "channel with a suffix");
    CLAIMS_CASE("{\"exp\":1700003600}", PG_EAUTH, "missing channel");
    CLAIMS_CASE("{\"channel\":[\"demo\"],\"exp\":1700003600}", PG_EAUTH, "channel not a string");
    /* optional string claims must be strings */
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"client\":7}", PG_EAUTH, "client not a string");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"user_id\":{}}", PG_EAUTH, "user_id not a string");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"jti\":false}", PG_EAUTH, "jti not a string");
    /* permissions must compile at verification time */
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"permissions\":{\"(\":{\"publish\":true}}}", PG_EAUTH,
                "invalid pattern");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"permissions\":{\"a\":{\"publish\":\"yes\"}}}", PG_EAUTH,
                "non-bool publish");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"permissions\":[]}", PG_EAUTH, "permissions not an object");
    CLAIMS_CASE("{\"channel\":\"demo\",\"exp\":1700003600,\"permissions\":{}}", 0, "empty permissions");

    /* exp in ms is kept as ms; leeway from the limits is honoured. */
    tok = mint(JWT_ALG_HS256, HS_SECRET, "{\"channel\":\"demo\",\"exp\":1700000600123}");
    rc = verify(&app, tok, NULL, NOW_MS, &t, err, sizeof(err));
    CHECK_EQ(rc, 0, "exp in ms");
    if (rc == 0)
        CHECK_EQ(pg_token_exp_ms(t), INT64_C(1700000600123), "exp ms kept");
    pg_token_free(t);
    t = NULL;
    free(tok);
    {
        struct pg_auth_limits lim = pg_auth_limits_default;
        lim.leeway_ms = 0;
        tok = mint(JWT_ALG_HS256, HS_SECRET, "{\"channel\":\"demo\",\"exp\":1699999998000}");
        CHECK_EQ(verify(&app, tok, &lim, NOW_MS, NULL, err, sizeof(err)), PG_EEXPIRED, "no leeway: 2 s late is late");
        lim.leeway_ms = 60000;
        CHECK_EQ(verify(&app, tok, &lim, NOW_MS, &t, err, sizeof(err)), 0, "60 s leeway");
        if (t) {
            CHECK_EQ(pg_token_expired(t, NOW_MS + 57999), 0, "expired uses the verify-time leeway");
            CHECK_EQ(pg_token_expired(t, NOW_MS + 58000), 1, "expired at exp + leeway");
        }
        pg_token_free(t);
        free(tok);
    }

#undef CLAIMS_CASE
    pg_app_creds_clear(&app);
}

int main(void)
{
    setup_keys();
    test_app_creds();
    test_hs256();
    test_rs256();
    test_alg_pinning();
    test_malformed();
    test_claims();
    cleanup_keys();
    return check_report("test_jwt");
}
