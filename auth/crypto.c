/*
 * HMAC-SHA256, constant-time secret comparison and random tokens, all on top
 * of OpenSSL so that no primitive is hand-rolled here.
 */
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pushgate_auth.h"

int pg_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int rc = PG_EINVAL;

    if (!out)
        return PG_EINVAL;
    out[0] = '\0';
    if ((!key && key_len) || (!msg && msg_len) || key_len > INT_MAX)
        goto out;
    /* HMAC() rejects a NULL key even for length 0; an empty key is still a key. */
    if (!HMAC(EVP_sha256(), key_len ? key : "", (int)key_len, msg_len ? msg : (const void *)"", msg_len, mac,
              &mac_len) ||
        mac_len != 32) {
        rc = PG_EIO;
        goto out;
    }
    for (unsigned int i = 0; i < mac_len; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0xf];
    }
    out[64] = '\0';
    rc = 0;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int pg_secret_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if ((!a && a_len) || (!b && b_len))
        return 0;
    if (a_len != b_len) {
        /*
         * Lengths are not secret, contents are: spend the same time as an
         * equal-length comparison would, then refuse.
         */
        if (a_len)
            (void)CRYPTO_memcmp(a, a, a_len);
        return 0;
    }
    if (a_len == 0)
        return 1;
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

int pg_random_token(char *out, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    /* 62 * 4 = 248: bytes at or above it are dropped so every character is equally likely. */
    enum { NCHARS = sizeof(alphabet) - 1, CUTOFF = (256 / NCHARS) * NCHARS };
    unsigned char buf[64];
    size_t n = 0;
    int rc = 0;

    if (!out)
        return PG_EINVAL;
    while (n < len) {
        if (RAND_bytes(buf, (int)sizeof(buf)) != 1) {
            rc = PG_EIO;
            goto out;
        }
        for (size_t i = 0; i < sizeof(buf) && n < len; i++) {
            if (buf[i] < CUTOFF)
                out[n++] = alphabet[buf[i] % NCHARS];
        }
    }
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    out[rc ? 0 : len] = '\0';
    return rc;
}
