/* auth/crypto.c: HMAC-SHA256 hex, constant-time secret comparison, random tokens. */
#include <string.h>

#include "check.h"
#include "pushgate_auth.h"

static void test_hmac(void)
{
    char hex[65];
    unsigned char key1[20];

    /* RFC 4231 test case 2: a key shorter than the block size. */
    CHECK_EQ(pg_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex), 0, "hmac rc");
    CHECK(!strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
          "RFC 4231 case 2 mismatch: %s", hex);

    /* RFC 4231 test case 1. */
    memset(key1, 0x0b, sizeof(key1));
    CHECK_EQ(pg_hmac_sha256_hex(key1, sizeof(key1), "Hi There", 8, hex), 0, "hmac rc");
    CHECK(!strcmp(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
          "RFC 4231 case 1 mismatch: %s", hex);

    /* Empty key and message are legal HMAC inputs (known value from OpenSSL's dgst -hmac ""). */
    CHECK_EQ(pg_hmac_sha256_hex("", 0, "", 0, hex), 0, "hmac of empty key/msg rc");
    CHECK(!strcmp(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"), "empty HMAC mismatch: %s",
          hex);
    CHECK_EQ(strlen(hex), 64, "hex length");

    CHECK_EQ(pg_hmac_sha256_hex(NULL, 3, "x", 1, hex), PG_EINVAL, "NULL key with a length");
}

static void test_secret_equal(void)
{
    CHECK(pg_secret_equal("secret", 6, "secret", 6) == 1, "equal strings must compare equal");
    CHECK(pg_secret_equal("secret", 6, "secreT", 6) == 0, "last byte differs");
    CHECK(pg_secret_equal("Secret", 6, "secret", 6) == 0, "first byte differs");
    CHECK(pg_secret_equal("secret", 6, "secret2", 7) == 0, "prefix must not be equal");
    CHECK(pg_secret_equal("secret2", 7, "secret", 6) == 0, "longer first must not be equal");
    CHECK(pg_secret_equal("", 0, "", 0) == 1, "two empty strings are equal");
    CHECK(pg_secret_equal("", 0, "a", 1) == 0, "empty vs non-empty");
    CHECK(pg_secret_equal("a\0b", 3, "a\0c", 3) == 0, "bytes after a NUL are compared");
    CHECK(pg_secret_equal("a\0b", 3, "a\0b", 3) == 1, "embedded NUL, equal");
    CHECK(pg_secret_equal(NULL, 0, "", 0) == 1, "NULL with length 0 is the empty string");
    CHECK(pg_secret_equal(NULL, 2, "ab", 2) == 0, "NULL with a length is never equal");
}

static void test_random_token(void)
{
    enum { N = 62 * 200 };
    static char big[N + 1];
    char a[33], b[33], z[1] = {'x'};
    int seen[256] = {0};
    int missing = 0, bad = 0;

    CHECK_EQ(pg_random_token(a, 32), 0, "random rc");
    CHECK_EQ(pg_random_token(b, 32), 0, "random rc");
    CHECK_EQ(strlen(a), 32, "token length");
    CHECK(strcmp(a, b) != 0, "two 32-char tokens must differ (%s)", a);
    CHECK_EQ(pg_random_token(z, 0), 0, "zero-length rc");
    CHECK(z[0] == '\0', "zero-length token is the empty string");

    CHECK_EQ(pg_random_token(big, N), 0, "random rc");
    CHECK_EQ(strlen(big), N, "long token length");
    for (size_t i = 0; i < N; i++) {
        unsigned char c = (unsigned char)big[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            bad++;
        seen[c]++;
    }
    CHECK_EQ(bad, 0, "characters outside [A-Za-z0-9]");
    /* Each of 62 characters is expected 200 times; missing one entirely has probability ~e^-200. */
    for (const char *p = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"; *p; p++)
        missing += seen[(unsigned char)*p] == 0;
    CHECK_EQ(missing, 0, "alphabet characters never produced");
}

int main(void)
{
    test_hmac();
    test_secret_equal();
    test_random_token();
    return check_report("test_crypto");
}
