/*
 * libFuzzer harness for pg_token_verify. Two shapes of input:
 *  - first byte even: the rest is a raw compact token, verified against an
 *    HS256 and an RS256 app (header/structure/alg-pinning paths);
 *  - first byte odd: the rest is the claims JSON, wrapped in an HS256 token
 *    signed with the app secret, so the fuzzer reaches claim and permission
 *    parsing behind a valid signature.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "pushgate_auth.h"

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret"
#define NOW_MS INT64_C(1700000000000)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pg_app_creds hs_app, rs_app;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long n;

    (void)argc;
    (void)argv;
    if (!rsa || !bio || !PEM_write_bio_PUBKEY(bio, rsa))
        abort();
    n = BIO_get_mem_data(bio, &pem);
    if (pg_app_creds_init(&hs_app, "demo") || pg_app_creds_set(&hs_app, "secret", SECRET, NULL, NULL, 0) ||
        pg_app_creds_init(&rs_app, "demo") || pg_app_creds_set(&rs_app, "secret", SECRET, NULL, NULL, 0) ||
        pg_app_creds_set(&rs_app, "jwt_alg", "RS256", NULL, NULL, 0))
        abort();
    rs_app.public_key_pem = strndup(pem, (size_t)n);
    rs_app.public_key_len = (size_t)n;
    if (!rs_app.public_key_pem)
        abort();
    BIO_free(bio);
    EVP_PKEY_free(rsa);
    return 0;
}

/* Unpadded base64url of in[0..len) appended at out; returns chars written. */
static size_t b64url(char *out, const unsigned char *in, size_t len)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return (size_t)n;
}

static void check(const struct pg_app_creds *app, const char *tok, size_t len)
{
    pg_token *t = NULL;
    char err[128];

    if (pg_token_verify(tok, len, app, NULL, NOW_MS, &t, err, sizeof(err)) == 0) {
        (void)pg_token_client(t);
        (void)pg_token_expired(t, NOW_MS);
        (void)pg_token_allows(t, PG_ACT_PUBLISH, "room", 4);
        (void)pg_token_allows(t, PG_ACT_SUBSCRIBE, "a/b/c", 5);
        pg_token_free(t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char *tok;
    size_t n;

    if (size < 1 || size > 16384)
        return 0;
    if ((data[0] & 1) == 0) {
        check(&hs_app, (const char *)data + 1, size - 1);
        check(&rs_app, (const char *)data + 1, size - 1);
        return 0;
    }
    tok = malloc(2 * size + 128);
    if (!tok)
        return 0;
    n = b64url(tok, (const unsigned char *)hdr, sizeof(hdr) - 1);
    tok[n++] = '.';
    n += b64url(tok + n, data + 1, size - 1);
    if (HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, n, mac, &mac_len)) {
        tok[n++] = '.';
        n += b64url(tok + n, mac, mac_len);
        check(&hs_app, tok, n);
    }
    free(tok);
    return 0;
}
