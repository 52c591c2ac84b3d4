/*
 * App credentials as read from `[app ID]` sections. Messages from
 * pg_app_creds_set() do not repeat the option name: callers prefix
 * "file:line: option:" themselves. The RSA public key is
 * parsed once here so a bad key file is a config error at startup, not a
 * stream of refused tokens later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth_internal.h"

/* A 16384-bit RSA public key PEM is about 2.8 KiB; anything much larger is not a key. */
#define PG_MAX_KEY_FILE_BYTES (64 * 1024)
#define PG_MIN_RSA_BITS 2048

static void free_secret(char *s)
{
    if (s)
        OPENSSL_clear_free(s, strlen(s));
}

void pg_app_creds_clear(struct pg_app_creds *app)
{
    if (!app)
        return;
    free(app->id);
    free(app->key);
    free_secret(app->secret);
    free(app->public_key_pem);
    memset(app, 0, sizeof(*app));
}

int pg_app_creds_init(struct pg_app_creds *app, const char *id)
{
    if (!app || !id || !*id)
        return PG_EINVAL;
    memset(app, 0, sizeof(*app));
    app->id = strdup(id);
    if (!app->id)
        return PG_ENOMEM;
    app->jwt_alg = PG_ALG_HS256;
    app->active = 1;
    return 0;
}

static int replace_string(char **slot, const char *value, int secret)
{
    char *copy = strdup(value);
    if (!copy)
        return PG_ENOMEM;
    if (secret)
        free_secret(*slot);
    else
        free(*slot);
    *slot = copy;
    return 0;
}

/* Reads the whole file into a NUL-terminated heap buffer, refusing files over max bytes. */
static int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t n;
    int rc;

    f = fopen(path, "re");
    if (!f) {
        rc = PG_EIO;
        goto out;
    }
    buf = malloc(max + 1);
    if (!buf) {
        rc = PG_ENOMEM;
        goto out;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        rc = PG_EIO;
        goto out;
    }
    if (n > max) {
        rc = PG_ELIMIT;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

/* The PEM must hold an RSA public key libjwt's RS256 verifier can use. */
static int check_rsa_public_pem(const char *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    int rc;

    if (len > INT32_MAX) {
        rc = pg__err(err, errlen, PG_EINVAL, "key file too large");
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        rc = PG_ENOMEM;
        goto out;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        rc = pg__err(err, errlen, PG_EINVAL, "not a PEM public key");
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        rc = pg__err(err, errlen, PG_EINVAL, "not an RSA key");
        goto out;
    }
    if (EVP_PKEY_get_bits(pkey) < PG_MIN_RSA_BITS) {
        rc = pg__err(err, errlen, PG_EINVAL, "RSA key shorter than %d bits", PG_MIN_RSA_BITS);
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

static int set_public_key_file(struct pg_app_creds *app, const char *value, const char *base_dir, char *err,
                               size_t errlen)
{
    char *path = NULL, *pem = NULL;
    size_t pem_len = 0;
    int rc;

    if (!*value) {
        rc = pg__err(err, errlen, PG_EINVAL, "empty path");
        goto out;
    }
    if (value[0] != '/' && base_dir && *base_dir) {
        size_t n = strlen(base_dir) + 1 + strlen(value) + 1;
        path = malloc(n);
        if (!path) {
            rc = PG_ENOMEM;
            goto out;
        }
        snprintf(path, n, "%s/%s", base_dir, value);
    } else {
        path = strdup(value);
        if (!path) {
            rc = PG_ENOMEM;
            goto out;
        }
    }
    rc = read_file(path, PG_MAX_KEY_FILE_BYTES, &pem, &pem_len);
    if (rc == PG_EIO) {
        rc = pg__err(err, errlen, PG_EINVAL, "cannot read %s", path);
        goto out;
    } else if (rc == PG_ELIMIT) {
        rc = pg__err(err, errlen, PG_EINVAL, "%s is larger than %d bytes", path, PG_MAX_KEY_FILE_BYTES);
        goto out;
    } else if (rc) {
        goto out;
    }
    rc = check_rsa_public_pem(pem, pem_len, err, errlen);
    if (rc)
        goto out;
    free(app->public_key_pem);
    app->public_key_pem = pem;
    app->public_key_len = pem_len;
    pem = NULL;
out:
    free(pem);
    free(path);
    return rc;
}

int pg_app_creds_set(struct pg_app_creds *app, const char *opt, const char *value, const char *base_dir, char *err,
                     size_t errlen)
{
    int b;

    if (!app || !opt || !value)
        return PG_EINVAL;
    if (!strcmp(opt, "key") || !strcmp(opt, "secret")) {
        int secret = opt[0] == 's';
        if (!*value)
            return pg__err(err, errlen, PG_EINVAL, "must not be empty");
        return replace_string(secret ? &app->secret : &app->key, value, secret);
    }
    if (!strcmp(opt, "jwt_alg")) {
        if (!strcmp(value, "HS256"))
            app->jwt_alg = PG_ALG_HS256;
        else if (!strcmp(value, "RS256"))
            app->jwt_alg = PG_ALG_RS256;
        else
            return pg__err(err, errlen, PG_EINVAL, "expected HS256 or RS256, got \"%s\"", value);
        return 0;
    }
    if (!strcmp(opt, "public_key_file"))
        return set_public_key_file(app, value, base_dir, err, errlen);
    if (!strcmp(opt, "require_auth") || !strcmp(opt, "active")) {
        if (pg_parse_bool(value, &b))
            return pg__err(err, errlen, PG_EINVAL, "expected a boolean (true/false), got \"%s\"", value);
        if (opt[0] == 'r')
            app->require_auth = b;
        else
            app->active = b;
        return 0;
    }
    return PG_ENOTFOUND;
}

int pg_app_creds_check(const struct pg_app_creds *app, char *err, size_t errlen)
{
    if (!app || !app->id || !*app->id)
        return pg__err(err, errlen, PG_EINVAL, "app without an id");
    if (!app->secret || !*app->secret)
        return pg__err(err, errlen, PG_EINVAL, "app %s: secret is required", app->id);
    if (app->jwt_alg != PG_ALG_HS256 && app->jwt_alg != PG_ALG_RS256)
        return pg__err(err, errlen, PG_EINVAL, "app %s: jwt_alg must be HS256 or RS256", app->id);
    if (app->jwt_alg == PG_ALG_RS256 && !app->public_key_pem)
        return pg__err(err, errlen, PG_EINVAL, "app %s: jwt_alg RS256 needs public_key_file", app->id);
    return 0;
}
