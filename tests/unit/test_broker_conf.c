/* plugin/broker_conf.c: the facts the plugin reads from Mosquitto's configuration file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_conf.h"
#include "check.h"
#include "pg_common.h"

static char dir[] = "/tmp/pg-test-broker-conf-XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static const char *path_of(const char *name)
{
    static char path[256];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static int read_conf(const char *name, struct pg_broker_conf *bc)
{
    char path[256], err[256];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return pg_broker_conf_read(path, bc, NULL, NULL, err, sizeof err);
}

/* Collects password_file values, joined by ';'. */
static int collect_path(void *ud, const char *path)
{
    char *buf = ud;
    size_t n = strlen(buf);

    snprintf(buf + n, 512 - n, "%s%s", n ? ";" : "", path);
    return 0;
}

int main(void)
{
    struct pg_broker_conf bc;
    char path[4096];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }

    /* pushgate's own shape: both files, allow_anonymous false, the plugin alone */
    write_file("both.conf", "# comment\nlistener 1883 127.0.0.1\nallow_anonymous false\npassword_file /x/passwd\n"
                            "acl_file /x/acl\nplugin /x/pushgate_auth.so\nplugin_opt_config /x/pushgate.conf\n");
    CHECK_EQ(read_conf("both.conf", &bc), 0, "read both.conf");
    CHECK_EQ(bc.acl_file, 1, "acl_file");
    CHECK_EQ(bc.password_file, 1, "password_file");
    CHECK_EQ(bc.allow_anonymous, 0, "allow_anonymous");
    CHECK_EQ(bc.plugins, 1, "plugins");
    CHECK_EQ(bc.per_listener_settings, 0, "per_listener_settings");

    /* none of them; a commented-out acl_file and a plugin_opt_ are not options of their own; CRLF endings */
    write_file("none.conf", "listener 1883\r\n#acl_file /x/acl\r\nallow_anonymous true\r\nplugin_opt_acl_file x\r\n");
    CHECK_EQ(read_conf("none.conf", &bc), 0, "read none.conf");
    CHECK_EQ(bc.acl_file, 0, "no acl_file");
    CHECK_EQ(bc.password_file, 0, "no password_file");
    CHECK_EQ(bc.allow_anonymous, 1, "allow_anonymous true");
    CHECK_EQ(bc.plugins, 0, "no plugin");

    /* allow_anonymous never set: -1 (Mosquitto 2.0 refuses anonymous logins then) */
    write_file("unset.conf", "listener 1883\n");
    CHECK_EQ(read_conf("unset.conf", &bc), 0, "read unset.conf");
    CHECK_EQ(bc.allow_anonymous, -1, "allow_anonymous unset");

    /* include_dir: *.conf files only; the last allow_anonymous wins; per-listener files count too */
    char inc[300], text[400];
    snprintf(inc, sizeof inc, "%s/conf.d", dir);
    CHECK_EQ(mkdir(inc, 0700), 0, "mkdir conf.d");
    write_file("conf.d/a.conf", "allow_anonymous true\n");
    write_file("conf.d/b.conf", "listener 1884\n  acl_file /x/acl\nauth_plugin /x/other.so\n");
    write_file("conf.d/c.txt", "password_file /x/passwd\n");
    snprintf(text, sizeof text, "per_listener_settings true\nallow_anonymous false\ninclude_dir %s\n", inc);
    write_file("main.conf", text);
    CHECK_EQ(read_conf("main.conf", &bc), 0, "read main.conf");
    CHECK_EQ(bc.per_listener_settings, 1, "per_listener_settings from main.conf");
    CHECK_EQ(bc.allow_anonymous, 1, "allow_anonymous from conf.d/a.conf, read after main.conf's");
    CHECK_EQ(bc.acl_file, 1, "acl_file from conf.d/b.conf (indented)");
    CHECK_EQ(bc.password_file, 0, "c.txt is not read");
    CHECK_EQ(bc.plugins, 1, "auth_plugin counts as a plugin");

    /* every password_file reaches the callback: global, per listener, from include_dir; values trimmed */
    char paths[512] = "";
    snprintf(text, sizeof text, "password_file /x/global\nlistener 1884\npassword_file  rel/passwd \ninclude_dir %s\n",
             inc);
    write_file("paths.conf", text);
    write_file("conf.d/d.conf", "password_file /x/included\n#password_file /x/commented\n");
    CHECK_EQ(pg_broker_conf_read(path_of("paths.conf"), &bc, collect_path, paths, text, sizeof text), 0,
             "read paths.conf");
    CHECK(!strcmp(paths, "/x/global;rel/passwd;/x/included"), "password_file paths: %s", paths);

    /* a file or include_dir that cannot be read is an error, never "no acl_file" */
    CHECK_EQ(read_conf("missing.conf", &bc), PG_EIO, "missing file");
    write_file("baddir.conf", "include_dir /nonexistent/pg-test-dir\n");
    CHECK_EQ(read_conf("baddir.conf", &bc), PG_EIO, "missing include_dir");

    /* this process was not started with -c */
    CHECK_EQ(pg_broker_conf_path(path, sizeof path), PG_ENOTFOUND, "no -c on the command line");

    static const char *const files[] = {"both.conf",    "none.conf", "unset.conf",  "conf.d/a.conf", "conf.d/b.conf",
                                        "conf.d/c.txt", "main.conf", "baddir.conf", "paths.conf",    "conf.d/d.conf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(inc);
    rmdir(dir);
    return check_report("test_broker_conf");
}
