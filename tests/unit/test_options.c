/*
 * common/options.c: the options the gateway and the broker plugin both read. Each shared row's default passes its
 * own rules, the limits' defaults are the auth library's built-in ones (pg_auth_limits_default, used when a caller
 * passes no limits), and the parsers and rules answer as both readers expect.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pg_common.h"
#include "pg_options.h"
#include "pushgate_auth.h"

static const struct pg_opt_def rows[] = {
    {PG_SHARED_OPT_TOPIC_ROOT},          {PG_SHARED_OPT_MAX_CHANNEL_BYTES}, {PG_SHARED_OPT_DEVICE_CHANNEL},
    {PG_SHARED_OPT_REGEX_MATCH_LIMIT},   {PG_SHARED_OPT_REGEX_DEPTH_LIMIT}, {PG_SHARED_OPT_JWT_LEEWAY_MS},
    {PG_SHARED_OPT_MAX_TOKEN_BYTES},     {PG_SHARED_OPT_MAX_RULES},         {PG_SHARED_OPT_APPS_DB},
    {PG_SHARED_OPT_BROKER_PASSWORD_FILE}, {PG_SHARED_OPT_BROKER_USERNAME},
};

static long long number(const struct pg_opt_def *d)
{
    char err[256];
    long long v = -1;
    CHECK(pg_opt_number(d->type, d->min, d->max, d->def, &v, err, sizeof err) == 0, "default of %s: %s", d->name,
          err);
    return v;
}

static void test_defaults(void)
{
    char err[256];
    long long max_channel = number(&(struct pg_opt_def){PG_SHARED_OPT_MAX_CHANNEL_BYTES});

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct pg_opt_def *d = &rows[i];
        CHECK(d->name && d->def, "row %zu complete", i);
        if (d->type != PG_OPT_STR)
            CHECK(d->min <= d->max && number(d) >= d->min, "%s: bounds", d->name);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(d->name, rows[j].name) != 0, "%s twice", d->name);
    }
    CHECK(pg_opt_check_topic_root(((struct pg_opt_def){PG_SHARED_OPT_TOPIC_ROOT}).def, err, sizeof err) == 0,
          "default topic_root: %s", err);
    CHECK(pg_opt_check_device_channel(((struct pg_opt_def){PG_SHARED_OPT_DEVICE_CHANNEL}).def, max_channel, err,
                                      sizeof err) == 0,
          "default device_channel: %s", err);
    /* the auth library's defaults, for callers without a configuration, are the configuration's */
    CHECK_EQ(number(&(struct pg_opt_def){PG_SHARED_OPT_REGEX_MATCH_LIMIT}), pg_auth_limits_default.regex_match_limit,
             "regex_match_limit");
    CHECK_EQ(number(&(struct pg_opt_def){PG_SHARED_OPT_REGEX_DEPTH_LIMIT}), pg_auth_limits_default.regex_depth_limit,
             "regex_depth_limit");
    CHECK_EQ(number(&(struct pg_opt_def){PG_SHARED_OPT_JWT_LEEWAY_MS}), pg_auth_limits_default.leeway_ms,
             "jwt_leeway_ms");
    CHECK_EQ(number(&(struct pg_opt_def){PG_SHARED_OPT_MAX_TOKEN_BYTES}), pg_auth_limits_default.max_token_bytes,
             "max_token_bytes");
    CHECK_EQ(number(&(struct pg_opt_def){PG_SHARED_OPT_MAX_RULES}), pg_auth_limits_default.max_rules, "max_rules");
}

static void test_numbers(void)
{
    char err[256];
    long long v = 0;

    CHECK_EQ(pg_opt_number(PG_OPT_INT, 1, 10, "7", &v, err, sizeof err), 0, "int");
    CHECK_EQ(v, 7, "int value");
    CHECK_EQ(pg_opt_number(PG_OPT_INT, 1, 10, "11", &v, err, sizeof err), PG_EINVAL, "int over");
    CHECK(!strcmp(err, "expected an integer in 1..10, got \"11\""), "int message: %s", err);
    CHECK_EQ(pg_opt_number(PG_OPT_INT, 1, 10, "lots", &v, err, sizeof err), PG_EINVAL, "not an int");
    CHECK_EQ(pg_opt_number(PG_OPT_SIZE, 64, 1048576, "8k", &v, err, sizeof err), 0, "size");
    CHECK_EQ(v, 8192, "size value");
    CHECK_EQ(pg_opt_number(PG_OPT_SIZE, 64, 1048576, "2m", &v, err, sizeof err), PG_EINVAL, "size over");
    CHECK(!strcmp(err, "expected a size (e.g. 64k) in 64..1048576 bytes, got \"2m\""), "size message: %s", err);
    CHECK_EQ(pg_opt_number(PG_OPT_SIZE, 64, 1048576, "63", &v, err, sizeof err), PG_EINVAL, "size under");
    CHECK_EQ(pg_opt_number(PG_OPT_STR, 0, 0, "x", &v, err, sizeof err), PG_EINVAL, "a string is no number");
}

static void test_rules(void)
{
    char err[256];

    CHECK_EQ(pg_opt_check_topic_root("pg2", err, sizeof err), 0, "pg2");
    CHECK_EQ(pg_opt_check_topic_root("a/b", err, sizeof err), PG_EINVAL, "a/b");
    CHECK(strstr(err, "got \"a/b\"") != NULL, "message names the value: %s", err);
    CHECK_EQ(pg_opt_check_topic_root("$SYS", err, sizeof err), PG_EINVAL, "$SYS");
    CHECK_EQ(pg_opt_check_topic_root("", err, sizeof err), PG_EINVAL, "empty");
    CHECK_EQ(pg_opt_check_device_channel("", 200, err, sizeof err), 0, "empty: no events");
    CHECK_EQ(pg_opt_check_device_channel("private-devices", 200, err, sizeof err), 0, "a channel");
    CHECK_EQ(pg_opt_check_device_channel("a/+", 200, err, sizeof err), PG_EINVAL, "a filter");
    CHECK_EQ(pg_opt_check_device_channel("private-devices", 5, err, sizeof err), PG_EINVAL, "over the bound");
}

static void test_paths(void)
{
    char *p = NULL;

    CHECK_EQ(pg_opt_path("/etc/pushgate", "apps.db", &p), 0, "relative");
    CHECK(p && !strcmp(p, "/etc/pushgate/apps.db"), "relative: %s", p);
    free(p);
    CHECK_EQ(pg_opt_path("/etc/pushgate", "/var/lib/apps.db", &p), 0, "absolute");
    CHECK(p && !strcmp(p, "/var/lib/apps.db"), "absolute: %s", p);
    free(p);
    CHECK_EQ(pg_opt_path("/etc/pushgate", "", &p), 0, "none");
    CHECK(p && !strcmp(p, ""), "none stays empty: %s", p);
    free(p);
    CHECK_EQ(pg_opt_path(NULL, "apps.db", &p), 0, "no directory");
    CHECK(p && !strcmp(p, "apps.db"), "no directory: %s", p);
    free(p);
}

int main(void)
{
    test_defaults();
    test_numbers();
    test_rules();
    test_paths();
    return check_report("test_options");
}
