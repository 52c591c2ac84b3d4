/* auth/rules.c: the `permissions` claim as PCRE2 rules. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "pushgate_auth.h"

static pg_rules *compile_ok(const char *json)
{
    char err[256] = "";
    pg_rules *r = NULL;
    int rc = pg_rules_compile(json, strlen(json), NULL, &r, err, sizeof(err));
    CHECK(rc == 0 && r, "compiling %s: expected success, got %d (%s)", json, rc, err);
    return r;
}

static void expect_invalid(const char *json, const struct pg_auth_limits *lim, const char *why)
{
    char err[256] = "";
    pg_rules *r = (pg_rules *)&r; /* must be reset to NULL on failure */
    int rc = pg_rules_compile(json, strlen(json), lim, &r, err, sizeof(err));
    CHECK(rc == PG_EAUTH, "%s: expected PG_EAUTH for %s, got %d", why, json, rc);
    CHECK(r == NULL, "%s: *out must be NULL on failure", why);
    CHECK(err[0] != '\0', "%s: expected an error message", why);
    if (rc == 0)
        pg_rules_free(r);
}

static pg_decision allow(const pg_rules *r, pg_action a, const char *ch)
{
    return pg_rules_allow(r, a, ch, strlen(ch));
}

#define ALLOW(r, a, ch) CHECK(allow(r, a, ch) == PG_ALLOW, "expected ALLOW for %s on \"%s\"", #a, ch)
#define DENY(r, a, ch) CHECK(allow(r, a, ch) == PG_DENY, "expected DENY for %s on \"%s\"", #a, ch)

static void test_invalid(void)
{
    struct pg_auth_limits lim = pg_auth_limits_default;

    expect_invalid("{\"(\": {\"publish\": true}}", NULL, "unbalanced parenthesis");
    expect_invalid("{\"a{2,1}\": {\"publish\": true}}", NULL, "bad quantifier");
    expect_invalid("{\"\\\\C\": {\"publish\": true}}", NULL, "\\C is refused in UTF mode");
    expect_invalid("{\"a\": {\"publish\": 1}}", NULL, "publish is a number");
    expect_invalid("{\"a\": {\"subscribe\": \"true\"}}", NULL, "subscribe is a string");
    expect_invalid("{\"a\": {\"publish\": null}}", NULL, "publish is null");
    expect_invalid("{\"a\": true}", NULL, "pattern value is not an object");
    expect_invalid("[\"a\"]", NULL, "permissions is an array");
    expect_invalid("{\"a\": {\"publish\": true}", NULL, "truncated JSON");
    expect_invalid("{\"a\": {\"publish\": true}, \"a\": {\"publish\": false}}", NULL, "duplicate pattern");
    expect_invalid("{\"\": {\"publish\": true}}", NULL, "empty pattern");

    lim.max_rules = 2;
    expect_invalid("{\"a\": {}, \"b\": {}, \"c\": {}}", &lim, "more patterns than max_rules");
    lim = pg_auth_limits_default;
    lim.max_pattern_bytes = 4;
    expect_invalid("{\"abcde\": {\"publish\": true}}", &lim, "pattern longer than max_pattern_bytes");
    {
        pg_rules *r = NULL;
        const char *ok = "{\"abcd\": {\"publish\": true}, \"b\": {}}";
        lim.max_rules = 2;
        CHECK_EQ(pg_rules_compile(ok, strlen(ok), &lim, &r, NULL, 0), 0, "limits are inclusive");
        pg_rules_free(r);
    }
}

static void test_decisions(void)
{
    pg_rules *r;

    /* Empty rules grant nothing. */
    r = compile_ok("{}");
    DENY(r, PG_ACT_PUBLISH, "room");
    DENY(r, PG_ACT_SUBSCRIBE, "room");
    pg_rules_free(r);

    /* Deny wins over a broader grant, in either order of the patterns. */
    r = compile_ok("{\"^room-\": {\"publish\": true, \"subscribe\": true}, \"secret\": {\"publish\": false}}");
    ALLOW(r, PG_ACT_PUBLISH, "room-1");
    DENY(r, PG_ACT_PUBLISH, "room-secret");
    ALLOW(r, PG_ACT_SUBSCRIBE, "room-secret"); /* the deny pattern omits subscribe */
    DENY(r, PG_ACT_PUBLISH, "lobby");
    pg_rules_free(r);
    r = compile_ok("{\"secret\": {\"publish\": false}, \"^room-\": {\"publish\": true}}");
    DENY(r, PG_ACT_PUBLISH, "room-secret");
    ALLOW(r, PG_ACT_PUBLISH, "room-open");
    pg_rules_free(r);

    /* A pattern that omits an action neither grants nor denies it. */
    r = compile_ok("{\".*\": {\"subscribe\": true}}");
    DENY(r, PG_ACT_PUBLISH, "x");
    ALLOW(r, PG_ACT_SUBSCRIBE, "x");
    pg_rules_free(r);

    /* A pattern that only denies grants nothing on its own. */
    r = compile_ok("{\"a\": {\"publish\": false}}");
    DENY(r, PG_ACT_PUBLISH, "b");
    DENY(r, PG_ACT_PUBLISH, "a");
    pg_rules_free(r);

    /* Unanchored, as in PCRE: "main" matches inside "domain". */
    r = compile_ok("{\"main\": {\"publish\": true}}");
    ALLOW(r, PG_ACT_PUBLISH, "main");
    ALLOW(r, PG_ACT_PUBLISH, "domain");
    ALLOW(r, PG_ACT_PUBLISH, "mainland");
    DENY(r, PG_ACT_PUBLISH, "mai");
    pg_rules_free(r);
    r = compile_ok("{\"^main$\": {\"publish\": true}}");
    ALLOW(r, PG_ACT_PUBLISH, "main");
    DENY(r, PG_ACT_PUBLISH, "domain");
    pg_rules_free(r);

    /* UTF mode: '.' is one character, not one byte; channels with '/' levels match as plain text. */
    r = compile_ok("{\"^caf.$\": {\"subscribe\": true}, \"^chat/[^/]+$\": {\"subscribe\": true}}");
    ALLOW(r, PG_ACT_SUBSCRIBE, "caf\xc3\xa9");
    ALLOW(r, PG_ACT_SUBSCRIBE, "chat/room");
    DENY(r, PG_ACT_SUBSCRIBE, "chat/room/sub");
    pg_rules_free(r);

    /* A subject that is not UTF-8 cannot be matched: an error, so it denies. */
    r = compile_ok("{\".*\": {\"publish\": true}}");
    CHECK(pg_rules_allow(r, PG_ACT_PUBLISH, "ok\xff", 3) == PG_DENY, "invalid UTF-8 channel must be denied");
    /* The length bounds the subject, not a NUL. */
    CHECK(pg_rules_allow(r, PG_ACT_PUBLISH, "ok\xff", 2) == PG_ALLOW, "length-bounded subject");
    CHECK(pg_rules_allow(r, (pg_action)7, "ok", 2) == PG_DENY, "unknown action must be denied");
    pg_rules_free(r);

    CHECK(pg_rules_allow(NULL, PG_ACT_PUBLISH, "x", 1) == PG_DENY, "NULL rules deny");
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/*
 * `(a+)+$` against "aaaa…b" backtracks exponentially. The rule set also grants
 * everything through ".*", so the only way to get DENY is the nested pattern
 * counting as a denying match, i.e. the match limit firing. On a short subject
 * the same rules must still compute the true answer (no match -> ALLOW).
 */
static void test_catastrophic(void)
{
    enum { LEN = 30000 };
    const char *json = "{\"(a+)+$\": {\"subscribe\": true, \"publish\": false}, \".*\": {\"subscribe\": true}}";
    char *ch = malloc(LEN + 1);
    struct timespec t0, t1;
    pg_rules *r = compile_ok(json);
    pg_decision d;

    CHECK(ch != NULL, "malloc");
    if (!ch || !r)
        goto out;
    memset(ch, 'a', LEN - 1);
    ch[LEN - 1] = 'b';
    ch[LEN] = '\0';

    ALLOW(r, PG_ACT_SUBSCRIBE, "aaaaaaab");
    ALLOW(r, PG_ACT_SUBSCRIBE, "xyz");
    DENY(r, PG_ACT_PUBLISH, "aaaa"); /* a real match of the denying pattern */

    clock_gettime(CLOCK_MONOTONIC, &t0);
    d = pg_rules_allow(r, PG_ACT_SUBSCRIBE, ch, LEN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(d == PG_DENY, "catastrophic pattern on a %d-byte channel must hit the limit and deny", LEN);
    printf("catastrophic (a+)+$ on %d bytes: %s in %.2f ms\n", LEN, d == PG_DENY ? "DENY" : "ALLOW",
           elapsed_ms(&t0, &t1));
out:
    pg_rules_free(r);
    free(ch);
}

int main(void)
{
    test_invalid();
    test_decisions();
    test_catastrophic();
    return check_report("test_rules");
}
