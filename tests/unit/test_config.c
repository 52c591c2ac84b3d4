/* gateway/config.c: option table, file errors with file:line, environment and command-line overrides. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char dir[] = "/tmp/pg-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static int load(const char *text, int argc, char **argv, char *err, size_t errlen, struct pg_config *cfg)
{
    const char *path = text ? write_file("t.conf", text) : NULL;
    return pg_config_load(cfg, path, argc, argv, err, errlen);
}

static void test_defaults(void)
{
    struct pg_config cfg;
    char err[512] = "";
    struct pg_auth_limits lim;
    CHECK_EQ(load(NULL, 0, NULL, err, sizeof err, &cfg), 0, "defaults load");
    CHECK(!strcmp(cfg.listen_host, "127.0.0.1"), "default bind must be loopback, got %s", cfg.listen_host);
    CHECK_EQ(cfg.listen_port, 8080, "listen_port");
    CHECK_EQ(cfg.max_frame_bytes, 64 * 1024, "max_frame_bytes");
    /* the gateway and the broker plugin must judge a token alike when the file sets nothing */
    pg_config_auth_limits(&cfg, &lim);
    CHECK_EQ(lim.regex_match_limit, pg_auth_limits_default.regex_match_limit, "regex_match_limit default");
    CHECK_EQ(lim.regex_depth_limit, pg_auth_limits_default.regex_depth_limit, "regex_depth_limit default");
    CHECK_EQ(lim.leeway_ms, pg_auth_limits_default.leeway_ms, "jwt_leeway_ms default");
    CHECK_EQ(lim.max_token_bytes, pg_auth_limits_default.max_token_bytes, "max_token_bytes default");
    CHECK_EQ(lim.max_rules, pg_auth_limits_default.max_rules, "max_rules default");
    pg_config_free(&cfg);
}

static void test_file(void)
{
    struct pg_config cfg;
    char err[512] = "";
    int rc = load("# comment\nlisten_port = 9000\nmax_queue_bytes = 2m\n\n[app demo]\nkey = k\nsecret = s3cret\n"
                  "require_auth = yes\n[app other]\nsecret = x # trailing comment\n",
                  0, NULL, err, sizeof err, &cfg);
    CHECK_EQ(rc, 0, "valid file");
    CHECK(rc == 0 || !*err, "error: %s", err);
    CHECK_EQ(cfg.listen_port, 9000, "listen_port from file");
    CHECK_EQ(cfg.max_queue_bytes, 2 * 1024 * 1024, "size suffix m");
    CHECK_EQ(cfg.napps, 2, "two apps");
    if (cfg.napps == 2) {
        CHECK(!strcmp(cfg.apps[0].creds.id, "demo"), "first app id");
        CHECK_EQ(cfg.apps[0].creds.require_auth, 1, "require_auth");
        CHECK(!strcmp(cfg.apps[1].creds.secret, "x"), "comment stripped from value, got \"%s\"", cfg.apps[1].creds.secret);
    }
    pg_config_free(&cfg);
}

static void expect_error(const char *text, const char *needle)
{
    struct pg_config cfg;
    char err[512] = "";
    int rc = load(text, 0, NULL, err, sizeof err, &cfg);
    CHECK(rc != 0, "expected failure for config with %s", needle);
    CHECK(strstr(err, needle) != NULL, "error \"%s\" should contain \"%s\"", err, needle);
    pg_config_free(&cfg);
}

static void test_errors(void)
{
    expect_error("listen_host = 127.0.0.1\n\nlisten_port = lots\n", "t.conf:3: listen_port: expected an integer");
    expect_error("no_such_option = 1\n", "t.conf:1: no_such_option: unknown option");
    expect_error("max_frame_bytes = 12q\n", "t.conf:1: max_frame_bytes: expected a size");
    expect_error("listen_port\n", "t.conf:1: expected \"name = value\"");
    expect_error("[app demo]\nkey = k\n", "t.conf:1: [app demo]");           /* no secret */
    expect_error("[app demo]\nsecret = s\ncolour = red\n", "t.conf:3: colour"); /* unknown app option */
    expect_error("[app demo]\nsecret = s\n[app demo]\nsecret = t\n", "declared twice");
    expect_error("[app api]\nsecret = s\n", "t.conf:1: app id");   /* shadows a route */
    expect_error("[app a/b]\nsecret = s\n", "t.conf:1: app id");   /* not one topic level */
    expect_error("[room x]\n", "unknown section type");
    expect_error("topic_root = a/b\n", "topic_root");
    /* the rules the broker plugin applies to the same options (common/pg_options.h) */
    expect_error("topic_root = $SYS\n", "topic_root: expected one MQTT topic level");
    expect_error("device_channel = a/+\n", "device_channel: expected a channel name");
    expect_error("max_channel_bytes = 4\ndevice_channel = devices\n", "device_channel");
    expect_error("log_level = loud\n", "log_level");
}

/* broker_password_file: the broker's accounts can never be app ids; only usernames are read. */
static void test_broker_accounts(void)
{
    write_file("passwd",
               "pushgate:$7$101$aGFzaA==$c2lnbmF0dXJl\n# comment:line\n\n  operator :$7$101$x$y\nno-colon-line\n");
    expect_error("broker_password_file = passwd\n[app operator]\nsecret = s\n",
                 "t.conf:2: [app operator]: app id is a user of broker_password_file");
    expect_error("broker_password_file = missing-passwd\n", "broker_password_file: ");
    expect_error("broker_username = demo\n[app demo]\nsecret = s\n", "app id equals broker_username");

    struct pg_config cfg;
    char err[512] = "";
    int rc = load("broker_password_file = passwd\nbroker_username = gw\n[app demo]\nsecret = s\n", 0, NULL, err,
                  sizeof err, &cfg);
    CHECK_EQ(rc, 0, err);
    if (rc == 0) {
        CHECK_EQ(pg_config_broker_account(&cfg, "operator", err, sizeof err), 1, "blanks around a name are trimmed");
        CHECK_EQ(pg_config_broker_account(&cfg, "pushgate", err, sizeof err), 1, "a user of the file");
        CHECK_EQ(pg_config_broker_account(&cfg, "gw", err, sizeof err), 1, "broker_username");
        CHECK_EQ(pg_config_broker_account(&cfg, "demo", err, sizeof err), 0, "an app");
        CHECK_EQ(pg_config_broker_account(&cfg, "# comment", err, sizeof err), 0, "comment lines are no users");
        CHECK_EQ(pg_config_broker_account(&cfg, "no-colon-line", err, sizeof err), 0, "lines without ':' are no users");
        CHECK_EQ(pg_config_broker_account(&cfg, "", err, sizeof err), 0, "empty name");
    }
    pg_config_free(&cfg);
    char path[600];
    snprintf(path, sizeof path, "%s/passwd", dir);
    unlink(path);
}

static void test_overrides(void)
{
    struct pg_config cfg;
    char err[512] = "";
    char *argv[] = {"--listen-port", "7000", "--max_subscriptions=5"};
    setenv("PUSHGATE_LISTEN_PORT", "9100", 1);
    setenv("PUSHGATE_TOPIC_ROOT", "pg2", 1);
    CHECK_EQ(load("listen_port = 9000\n", 0, NULL, err, sizeof err, &cfg), 0, "env load");
    CHECK_EQ(cfg.listen_port, 9100, "environment overrides the file");
    CHECK(!strcmp(cfg.topic_root, "pg2"), "topic_root from environment");
    pg_config_free(&cfg);
    CHECK_EQ(load("listen_port = 9000\n", 3, argv, err, sizeof err, &cfg), 0, "argv load");
    CHECK_EQ(cfg.listen_port, 7000, "command line overrides the environment");
    CHECK_EQ(cfg.max_subscriptions, 5, "--name=value form");
    pg_config_free(&cfg);
    setenv("PUSHGATE_LISTEN_PORT", "0", 1);
    CHECK(load(NULL, 0, NULL, err, sizeof err, &cfg) != 0, "out-of-range environment value refused");
    CHECK(strstr(err, "PUSHGATE_LISTEN_PORT") != NULL, "error names the variable: %s", err);
    pg_config_free(&cfg);
    unsetenv("PUSHGATE_LISTEN_PORT");
    unsetenv("PUSHGATE_TOPIC_ROOT");
    char *bad[] = {"--nope", "1"};
    CHECK(load(NULL, 2, bad, err, sizeof err, &cfg) != 0, "unknown command-line option refused");
    pg_config_free(&cfg);
}

/*
 * The README's configuration reference must be the option table's own markdown: every row, in its order, none
 * twice and none the table does not have (the whole block, as pg_config_markdown() prints it).
 */
static void test_readme(const char *readme)
{
    char *md = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&md, &len);
    pg_config_markdown(out);
    fclose(out);
    FILE *f = fopen(readme, "r");
    CHECK(f != NULL, "cannot open %s", readme);
    if (!f) {
        free(md);
        return;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = calloc(1, (size_t)n + 1);
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n)
        text[0] = '\0';
    fclose(f);
    int whole = text && md && strstr(text, md) != NULL;
    CHECK(whole, "README.md's configuration reference is not `pushgate --markdown-options` verbatim");
    /* which row differs, to say so */
    for (char *line = whole ? NULL : strtok(md, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *at = text ? strstr(text, line) : NULL;
        CHECK(at != NULL, "README.md lacks the reference row: %s", line);
        CHECK(!at || !strstr(at + 1, line), "README.md has the reference row twice: %s", line);
    }
    free(text);
    free(md);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_file();
    test_errors();
    test_broker_accounts();
    test_overrides();
    if (argc > 1)
        test_readme(argv[1]);
    char path[600];
    snprintf(path, sizeof path, "%s/t.conf", dir);
    unlink(path);
    rmdir(dir);
    return check_report("test_config");
}
