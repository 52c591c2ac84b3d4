/* store/apps_store.c: apps in SQLite, shared between a writer and read-only readers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps_store.h"
#include "check.h"

static char dir[256];

static void path_in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static int all_alnum(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

/* A body for update from JSON text; the test owns it. */
static json_t *body(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(j != NULL, "test body parses: %s", text);
    return j;
}

static void test_slugify(void)
{
    static const struct {
        const char *name, *slug;
    } cases[] = {
        {"Foo App!", "foo-app"},
        {"foo-app", "foo-app"},
        {"  My   Shiny__App  ", "my-shiny-app"},
        {"--a--b--", "a-b"},
        {"Caf\xc3\xa9 Bar", "caf-bar"},
        {"API v2", "api-v2"},
        {"123", "123"},
        {"x", "x"},
    };
    char slug[PG_APP_SLUG_MAX + 1];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ(pg_apps_slugify(cases[i].name, slug), 0, cases[i].name);
        CHECK(!strcmp(slug, cases[i].slug), "slug of \"%s\": expected \"%s\", got \"%s\"", cases[i].name, cases[i].slug,
              slug);
    }
    CHECK_EQ(pg_apps_slugify("!!! ???", slug), PG_EINVAL, "no letters or digits");
    CHECK_EQ(pg_apps_slugify("", slug), PG_EINVAL, "empty name");

    /* long names: at most 64 bytes and never a trailing '-' at the cut */
    char name[201];
    memset(name, 'a', 200);
    name[200] = '\0';
    CHECK_EQ(pg_apps_slugify(name, slug), 0, "long name");
    CHECK_EQ(strlen(slug), PG_APP_SLUG_MAX, "slug cut to 64 bytes");
    memset(name, 'b', 63);
    strcpy(name + 63, " tail");
    CHECK_EQ(pg_apps_slugify(name, slug), 0, "cut at a separator");
    CHECK_EQ(strlen(slug), 63, "separator at byte 64 is dropped, not kept as a trailing '-'");
    CHECK(slug[strlen(slug) - 1] != '-', "no trailing '-': %s", slug);
}

static void test_crud(struct pg_apps_store *st)
{
    json_t *a = NULL, *b = NULL, *c = NULL, *list = NULL, *got = NULL, *upd = NULL, *changes = NULL;

    CHECK_EQ(pg_apps_store_create(st, "Foo App!", &a), 0, "create \"Foo App!\"");
    CHECK_EQ(pg_apps_store_create(st, "bar", &b), 0, "create \"bar\"");
    CHECK_EQ(pg_apps_store_create(st, "foo-app", &c), PG_EEXIST, "\"foo-app\" has the slug of \"Foo App!\"");
    CHECK(c == NULL, "no app on failure");
    CHECK(strstr(pg_apps_store_errmsg(st), "foo-app") != NULL, "error names the slug: %s", pg_apps_store_errmsg(st));
    CHECK(!strcmp(pg_strerror(PG_EEXIST), "already exists"), "PG_EEXIST has a name");
    if (!a || !b)
        goto out;

    CHECK(!strcmp(str(a, "slug"), "foo-app"), "slug: %s", str(a, "slug"));
    CHECK(!strcmp(str(a, "name"), "Foo App!"), "name kept as given: %s", str(a, "name"));
    CHECK(json_is_integer(json_object_get(a, "id")), "id is an integer");
    CHECK(json_integer_value(json_object_get(a, "id")) != json_integer_value(json_object_get(b, "id")), "ids differ");
    CHECK(json_is_true(json_object_get(a, "active")), "new app is active");
    CHECK(json_is_false(json_object_get(a, "require_auth")), "new app does not require auth");
    CHECK(json_is_array(json_object_get(a, "allowed_origins")) &&
              json_array_size(json_object_get(a, "allowed_origins")) == 0,
          "no allowed origins yet");
    CHECK_EQ(json_object_size(a), 10, "app JSON has exactly its 10 members");

    /* keys and secrets: CSPRNG tokens of the documented length, different for every app */
    CHECK_EQ(strlen(str(a, "key")), PG_APP_KEY_LEN, "key length");
    CHECK_EQ(strlen(str(a, "secret")), PG_APP_SECRET_LEN, "secret length");
    CHECK(all_alnum(str(a, "key")) && all_alnum(str(a, "secret")), "key and secret are [A-Za-z0-9]");
    CHECK(strcmp(str(a, "key"), str(b, "key")) != 0, "keys differ between apps");
    CHECK(strcmp(str(a, "secret"), str(b, "secret")) != 0, "secrets differ between apps");
    CHECK(strcmp(str(a, "key"), str(a, "secret")) != 0, "key is not the secret");

    /* get and list return what create returned */
    CHECK_EQ(pg_apps_store_get(st, "foo-app", &got), 0, "get foo-app");
    CHECK(got && json_equal(got, a), "get returns the created app");
    CHECK_EQ(pg_apps_store_get(st, "nope", &upd), PG_ENOTFOUND, "get unknown slug");
    CHECK(upd == NULL, "nothing returned for unknown slug");
    char longslug[300];
    memset(longslug, 'a', sizeof longslug - 1);
    longslug[sizeof longslug - 1] = '\0';
    CHECK_EQ(pg_apps_store_get(st, longslug, &upd), PG_ENOTFOUND, "overlong slug is simply not found");
    CHECK_EQ(pg_apps_store_list(st, &list), 0, "list");
    CHECK_EQ(json_array_size(list), 2, "two apps listed");
    CHECK(json_equal(json_array_get(list, 0), a) && json_equal(json_array_get(list, 1), b), "list oldest first");

    /* update: name, flags and origins change; slug, key and secret stay */
    changes = body("{\"name\":\"Foo Renamed\",\"active\":false,\"require_auth\":true,"
                   "\"allowed_origins\":[\"https://a.example\",\"http://localhost:3000\"]}");
    CHECK_EQ(pg_apps_store_update(st, "foo-app", changes, &upd), 0, "update foo-app");
    json_decref(changes);
    changes = NULL;
    if (upd) {
        CHECK(!strcmp(str(upd, "name"), "Foo Renamed"), "name updated");
        CHECK(!strcmp(str(upd, "slug"), "foo-app"), "slug unchanged by a rename");
        CHECK(!strcmp(str(upd, "key"), str(a, "key")) && !strcmp(str(upd, "secret"), str(a, "secret")),
              "key and secret unchanged");
        CHECK(json_is_false(json_object_get(upd, "active")), "deactivated");
        CHECK(json_is_true(json_object_get(upd, "require_auth")), "require_auth set");
        json_t *o = json_object_get(upd, "allowed_origins");
        CHECK(json_array_size(o) == 2 && !strcmp(json_string_value(json_array_get(o, 1)), "http://localhost:3000"),
              "allowed origins stored in order");
    }
    json_decref(got);
    got = NULL;
    CHECK_EQ(pg_apps_store_get(st, "foo-app", &got), 0, "get after update");
    CHECK(got && upd && json_equal(got, upd), "update's reply is what is stored");
    json_decref(upd);
    upd = NULL;

    /* a partial update leaves the other fields alone; null clears the origins */
    changes = body("{\"active\":true,\"allowed_origins\":null}");
    CHECK_EQ(pg_apps_store_update(st, "foo-app", changes, &upd), 0, "partial update");
    json_decref(changes);
    changes = NULL;
    CHECK(upd && json_is_true(json_object_get(upd, "active")), "reactivated");
    CHECK(upd && json_is_true(json_object_get(upd, "require_auth")), "require_auth untouched");
    CHECK(upd && !strcmp(str(upd, "name"), "Foo Renamed"), "name untouched");
    CHECK(upd && json_array_size(json_object_get(upd, "allowed_origins")) == 0, "origins cleared");
    json_decref(upd);
    upd = NULL;
    changes = body("{}");
    CHECK_EQ(pg_apps_store_update(st, "bar", changes, NULL), 0, "empty update is accepted, reply not wanted");
    CHECK_EQ(pg_apps_store_update(st, "missing", changes, &upd), PG_ENOTFOUND, "update unknown slug");
    CHECK(upd == NULL, "nothing returned");
    json_decref(changes);
    changes = NULL;

    /* credentials for the auth library */
    struct pg_app_creds *creds = NULL;
    size_t n = 0;
    CHECK_EQ(pg_apps_store_load_creds(st, &creds, &n), 0, "load creds");
    CHECK_EQ(n, 2, "two apps as credentials");
    if (creds && n == 2) {
        CHECK(!strcmp(creds[0].id, "foo-app") && !strcmp(creds[1].id, "bar"), "id = slug");
        CHECK(!strcmp(creds[0].key, str(a, "key")) && !strcmp(creds[0].secret, str(a, "secret")), "key and secret");
        CHECK(creds[0].jwt_alg == PG_ALG_HS256 && creds[0].public_key_pem == NULL, "HS256 with the secret");
        CHECK(creds[0].active == 1 && creds[0].require_auth == 1, "flags of foo-app");
        CHECK(creds[1].active == 1 && creds[1].require_auth == 0, "flags of bar");
        CHECK_EQ(pg_app_creds_check(&creds[0], NULL, 0), 0, "credentials pass the auth library's check");
    }
    pg_apps_store_free_creds(creds, n);

    /* delete */
    CHECK_EQ(pg_apps_store_delete(st, "bar"), 0, "delete bar");
    CHECK_EQ(pg_apps_store_delete(st, "bar"), PG_ENOTFOUND, "delete twice");
    json_decref(got);
    got = NULL;
    CHECK_EQ(pg_apps_store_get(st, "bar", &got), PG_ENOTFOUND, "deleted app is gone");
    json_decref(list);
    CHECK_EQ(pg_apps_store_list(st, &list), 0, "list after delete");
    CHECK_EQ(json_array_size(list), 1, "one app left");
    CHECK_EQ(pg_apps_store_create(st, "Bar", &upd), 0, "a deleted slug can be taken again");
    CHECK(upd && strcmp(str(upd, "key"), str(b, "key")) != 0, "the new app gets a new key");
    CHECK_EQ(pg_apps_store_delete(st, "bar"), 0, "delete again");
out:
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(list);
    json_decref(got);
    json_decref(upd);
    json_decref(changes);
}

static void test_refusals(struct pg_apps_store *st)
{
    static const char *const reserved[] = {"api", "apps", "APP", "v1", "Metrics", "healthz", "readyz"};
    json_t *app = NULL, *list = NULL;

    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        CHECK_EQ(pg_apps_store_create(st, reserved[i], &app), PG_EINVAL, reserved[i]);
        CHECK(app == NULL, "no app for reserved %s", reserved[i]);
    }
    CHECK(strstr(pg_apps_store_errmsg(st), "reserved") != NULL, "says why: %s", pg_apps_store_errmsg(st));

    CHECK_EQ(pg_apps_store_set_broker_user(st, "pushgate"), 0, "set broker user");
    CHECK_EQ(pg_apps_store_create(st, "PushGate", &app), PG_EINVAL, "broker username is reserved");
    CHECK_EQ(pg_apps_store_set_broker_user(st, NULL), 0, "clear broker user");
    CHECK_EQ(pg_apps_store_create(st, "pushgate", &app), 0, "allowed once the broker user is another");
    json_decref(app);
    app = NULL;
    CHECK_EQ(pg_apps_store_delete(st, "pushgate"), 0, "cleanup");

    CHECK_EQ(pg_apps_store_create(st, "", &app), PG_EINVAL, "empty name");
    CHECK_EQ(pg_apps_store_create(st, "!!!", &app), PG_EINVAL, "name without letters or digits");
    CHECK_EQ(pg_apps_store_create(st, "tab\there", &app), PG_EINVAL, "control character in name");
    CHECK_EQ(pg_apps_store_create(st, "bad \xff utf8", &app), PG_EINVAL, "invalid UTF-8 in name");
    char name[300];
    memset(name, 'n', 201);
    name[201] = '\0';
    CHECK_EQ(pg_apps_store_create(st, name, &app), PG_EINVAL, "201-byte name");
    name[200] = '\0';
    CHECK_EQ(pg_apps_store_create(st, name, &app), 0, "200-byte name");
    CHECK(app && strlen(str(app, "slug")) == PG_APP_SLUG_MAX, "its slug is cut to 64");
    if (app)
        CHECK_EQ(pg_apps_store_delete(st, str(app, "slug")), 0, "cleanup");
    json_decref(app);
    app = NULL;

    /* invalid update bodies: refused whole, nothing changed */
    CHECK_EQ(pg_apps_store_create(st, "target", &app), 0, "create target");
    static const char *const bad[] = {
        "[]",
        "\"name\"",
        "{\"name\":\"\"}",
        "{\"name\":42}",
        "{\"name\":\"a\\u0000b\"}",
        "{\"name\":\"line\\nbreak\"}",
        "{\"active\":\"yes\"}",
        "{\"active\":1}",
        "{\"require_auth\":null}",
        "{\"allowed_origins\":\"https://a.example\"}",
        "{\"allowed_origins\":[1]}",
        "{\"allowed_origins\":[\"\"]}",
        "{\"allowed_origins\":[\"has space\"]}",
        "{\"slug\":\"other\"}",
        "{\"key\":\"k\"}",
        "{\"secret\":\"s\"}",
        "{\"id\":9}",
        "{\"colour\":\"red\"}",
        "{\"name\":\"Renamed\",\"bogus\":true}",
        "{\"allowed_origins\":[\"https://ok.example\"],\"active\":\"no\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *changes = body(bad[i]), *upd = NULL;
        CHECK_EQ(pg_apps_store_update(st, "target", changes, &upd), PG_EINVAL, bad[i]);
        CHECK(upd == NULL, "no reply for %s", bad[i]);
        json_decref(changes);
    }
    CHECK_EQ(pg_apps_store_update(st, "target", NULL, NULL), PG_EINVAL, "NULL body");
    json_t *many = json_pack("{s:[]}", "allowed_origins");
    for (int i = 0; i <= PG_APP_ORIGINS_MAX; i++)
        json_array_append_new(json_object_get(many, "allowed_origins"), json_string("https://x.example"));
    CHECK_EQ(pg_apps_store_update(st, "target", many, NULL), PG_EINVAL, "65 origins");
    json_decref(many);
    CHECK(strstr(pg_apps_store_errmsg(st), "allowed_origins") != NULL, "error names the field: %s",
          pg_apps_store_errmsg(st));

    json_t *now = NULL;
    CHECK_EQ(pg_apps_store_get(st, "target", &now), 0, "get target");
    CHECK(now && app && json_equal(now, app), "refused updates changed nothing");
    json_decref(now);
    json_decref(app);
    app = NULL;
    CHECK_EQ(pg_apps_store_delete(st, "target"), 0, "cleanup");

    CHECK_EQ(pg_apps_store_list(st, &list), 0, "list");
    CHECK_EQ(json_array_size(list), 1, "refusals left only foo-app");
    json_decref(list);
}

static void test_reader(const char *dbpath, struct pg_apps_store *writer)
{
    struct pg_apps_store *ro = NULL, *w2 = NULL;
    char err[512];
    int64_t v1 = 0, v2 = 0, v3 = 0;
    json_t *app = NULL, *list = NULL;

    CHECK_EQ(pg_apps_store_open(dbpath, 1, &ro, err, sizeof err), 0, "open read-only");
    if (!ro) {
        fprintf(stderr, "read-only open: %s\n", err);
        return;
    }
    CHECK_EQ(pg_apps_store_get(ro, "foo-app", &app), 0, "reader sees the writer's app");
    json_decref(app);
    app = NULL;

    CHECK_EQ(pg_apps_store_data_version(ro, &v1), 0, "data_version");
    CHECK_EQ(pg_apps_store_data_version(ro, &v2), 0, "data_version again");
    CHECK_EQ(v2, v1, "no write, same version");

    CHECK_EQ(pg_apps_store_create(writer, "Second App", &app), 0, "writer creates");
    json_decref(app);
    app = NULL;
    CHECK_EQ(pg_apps_store_data_version(ro, &v2), 0, "data_version after write");
    CHECK(v2 != v1, "another connection's commit changes data_version (%lld -> %lld)", (long long)v1, (long long)v2);
    CHECK_EQ(pg_apps_store_get(ro, "second-app", &app), 0, "reader sees the new app");
    json_decref(app);
    app = NULL;

    /* a second writer (another process would do the same) */
    CHECK_EQ(pg_apps_store_open(dbpath, 0, &w2, err, sizeof err), 0, "second writer opens");
    if (w2) {
        json_t *changes = body("{\"active\":false}");
        CHECK_EQ(pg_apps_store_update(w2, "second-app", changes, NULL), 0, "second writer deactivates");
        json_decref(changes);
        CHECK_EQ(pg_apps_store_data_version(ro, &v3), 0, "data_version after update");
        CHECK(v3 != v2, "update changes data_version");
        CHECK_EQ(pg_apps_store_get(writer, "second-app", &app), 0, "first writer reads it back");
        CHECK(app && json_is_false(json_object_get(app, "active")), "and sees the other writer's change");
        json_decref(app);
        app = NULL;
        CHECK_EQ(pg_apps_store_data_version(w2, &v1), 0, "writer's own version");
        CHECK_EQ(pg_apps_store_delete(w2, "second-app"), 0, "second writer deletes");
        CHECK_EQ(pg_apps_store_data_version(w2, &v2), 0, "writer's own version after its commit");
        CHECK_EQ(v2, v1, "a connection's own commits do not change its data_version");
        pg_apps_store_close(w2);
    }
    CHECK_EQ(pg_apps_store_get(ro, "second-app", &app), PG_ENOTFOUND, "reader sees the delete");

    /* the reader cannot write */
    CHECK_EQ(pg_apps_store_create(ro, "nope", &app), PG_EDENIED, "create on read-only store");
    CHECK_EQ(pg_apps_store_delete(ro, "foo-app"), PG_EDENIED, "delete on read-only store");
    json_t *changes = body("{\"active\":false}");
    CHECK_EQ(pg_apps_store_update(ro, "foo-app", changes, NULL), PG_EDENIED, "update on read-only store");
    json_decref(changes);
    CHECK_EQ(pg_apps_store_list(ro, &list), 0, "reader lists");
    CHECK_EQ(json_array_size(list), 1, "one app");
    CHECK(json_is_true(json_object_get(json_array_get(list, 0), "active")), "foo-app untouched by the reader");
    json_decref(list);

    struct pg_app_creds *creds = NULL;
    size_t n = 0;
    CHECK_EQ(pg_apps_store_load_creds(ro, &creds, &n), 0, "reader loads creds");
    CHECK_EQ(n, 1, "one app");
    pg_apps_store_free_creds(creds, n);
    pg_apps_store_close(ro);
}

static void test_open_errors(void)
{
    struct pg_apps_store *st = NULL;
    char path[600], err[512], file[512];
    FILE *f;

    /* a directory component that is a regular file: unwritable even for root */
    path_in_dir(file, sizeof file, "plainfile");
    f = fopen(file, "w");
    CHECK(f != NULL, "create plain file");
    if (f) {
        fputs("not a database, and long enough that SQLite looks at the header of it............\n", f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/apps.db", file);
    CHECK_EQ(pg_apps_store_open(path, 0, &st, err, sizeof err), PG_EIO, "path under a plain file");
    CHECK(st == NULL, "no store");
    CHECK(strstr(err, path) != NULL && strstr(err, "Not a directory") != NULL, "clear error: %s", err);

    path_in_dir(path, sizeof path, "missing/dir/apps.db");
    CHECK_EQ(pg_apps_store_open(path, 0, &st, err, sizeof err), PG_EIO, "missing directory");
    CHECK(strstr(err, path) != NULL && strstr(err, "No such file or directory") != NULL, "clear error: %s", err);

    path_in_dir(path, sizeof path, "absent.db");
    CHECK_EQ(pg_apps_store_open(path, 1, &st, err, sizeof err), PG_EIO, "read-only open of a missing file");
    CHECK(strstr(err, path) != NULL, "error names the path: %s", err);
    CHECK(access(path, F_OK) != 0, "read-only open does not create the file");

    CHECK_EQ(pg_apps_store_open(file, 1, &st, err, sizeof err), PG_EIO, "read-only open of a non-database");
    CHECK(strstr(err, "not a database") != NULL, "says so: %s", err);
    CHECK_EQ(pg_apps_store_open(file, 0, &st, err, sizeof err), PG_EIO, "read-write open of a non-database");
    CHECK(strstr(err, "not a database") != NULL, "says so: %s", err);
    unlink(file);

    CHECK_EQ(pg_apps_store_open(NULL, 0, &st, err, sizeof err), PG_EINVAL, "NULL path");
    CHECK_EQ(pg_apps_store_open("", 0, &st, err, sizeof err), PG_EINVAL, "empty path");
}

static void test_revocations(struct pg_apps_store *st)
{
    json_t *list = NULL, *a = NULL;
    int64_t now = pg_now_ms();

    CHECK_EQ(pg_apps_store_create(st, "Push Token App", &a), 0, "create for push_token");
    CHECK(a && json_is_string(json_object_get(a, "push_token")) && strlen(str(a, "push_token")) == PG_APP_SECRET_LEN &&
              all_alnum(str(a, "push_token")),
          "a new app gets a random push token");
    CHECK(a && strcmp(str(a, "push_token"), str(a, "secret")) != 0, "push token is not the secret");
    json_decref(a);

    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "client", "dev-1", now + 60000), 0, "revoke a client id");
    CHECK_EQ(pg_apps_store_revoke(st, "demo", "jti", "tok-9", now + 60000), 0, "revoke a jti of any app id");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "client", "dev-1", now + 120000), 0, "revoke again: later expiry");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "client", "dev-1", now + 1000), 0, "revoke again: earlier expiry");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "client", "old", now - 1), 0, "an already expired revocation");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "user", "x", now + 1000), PG_EINVAL, "unknown kind refused");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "jti", "", now + 1000), PG_EINVAL, "empty value refused");
    CHECK_EQ(pg_apps_store_revoke(st, "foo-app", "jti", "\xff", now + 1000), PG_EINVAL, "non-UTF-8 value refused");
    CHECK_EQ(pg_apps_store_revocations(st, now, &list), 0, "list revocations");
    CHECK(json_array_size(list) == 2, "two revocations in force, got %zu", json_array_size(list));
    json_t *r0 = json_array_get(list, 0), *r1 = json_array_get(list, 1);
    CHECK(r0 && !strcmp(str(r0, "app"), "foo-app") && !strcmp(str(r0, "kind"), "client") &&
              !strcmp(str(r0, "value"), "dev-1") &&
              json_integer_value(json_object_get(r0, "expires_ms")) == now + 120000,
          "client revocation keeps the later expiry");
    CHECK(r1 && !strcmp(str(r1, "app"), "demo") && !strcmp(str(r1, "kind"), "jti"), "jti revocation listed");
    json_decref(list);
    CHECK_EQ(pg_apps_store_revocations(st, now + 90000, &list), 0, "list later");
    CHECK(json_array_size(list) == 1, "expired revocations are not listed");
    json_decref(list);
}

/* Rows replicated from another store: written when different, refused when invalid. */
static void test_put(struct pg_apps_store *st)
{
    json_t *a = NULL, *got = NULL, *copy;
    int changed = -1;

    CHECK_EQ(pg_apps_store_create(st, "Put Source", &a), 0, "create a source app");
    if (!a)
        return;
    CHECK_EQ(pg_apps_store_put(st, a, &changed), 0, "put the same row");
    CHECK_EQ(changed, 0, "an identical row changes nothing");

    copy = json_deep_copy(a);
    json_int_t t0 = json_integer_value(json_object_get(a, "updated_ms"));
    CHECK(t0 > 0, "updated_ms is set");
    json_object_set_new(copy, "active", json_false());
    json_object_set_new(copy, "updated_ms", json_integer(t0 - 1));
    CHECK_EQ(pg_apps_store_put(st, copy, &changed), 0, "put an older state");
    CHECK_EQ(changed, 0, "an older state does not replace a newer one");
    json_object_set_new(copy, "updated_ms", json_integer(t0 + 1000));
    json_object_set_new(copy, "secret", json_string("other-secret"));
    json_object_set_new(copy, "allowed_origins", json_pack("[s]", "https://x.example"));
    CHECK_EQ(pg_apps_store_put(st, copy, &changed), 0, "put a changed row");
    CHECK_EQ(changed, 1, "a different row is written");
    CHECK_EQ(pg_apps_store_get(st, "put-source", &got), 0, "get it back");
    json_object_set(copy, "id", json_object_get(got, "id"));
    CHECK(got && json_equal(got, copy), "the stored row is the put row");
    json_decref(got);

    json_object_set_new(copy, "slug", json_string("replicated-app"));
    json_object_set_new(copy, "key", json_string("replicated-key"));
    CHECK_EQ(pg_apps_store_put(st, copy, &changed), 0, "put a new slug");
    CHECK_EQ(changed, 1, "a new row is written");
    CHECK_EQ(pg_apps_store_get(st, "replicated-app", &got), 0, "the new slug exists");
    json_decref(got);

    json_object_set_new(copy, "slug", json_string("third-app"));
    CHECK_EQ(pg_apps_store_put(st, copy, NULL), PG_EEXIST, "a key owned by another slug is refused");
    static const char *const bad[] = {
        "{\"slug\":\"Bad Slug\",\"name\":\"n\",\"key\":\"k\",\"secret\":\"s\",\"active\":true,\"require_auth\":false,\"updated_ms\":5}",
        "{\"slug\":\"v1\",\"name\":\"n\",\"key\":\"k\",\"secret\":\"s\",\"active\":true,\"require_auth\":false,\"updated_ms\":5}",
        "{\"slug\":\"ok\",\"name\":\"n\",\"key\":\"k k\",\"secret\":\"s\",\"active\":true,\"require_auth\":false,\"updated_ms\":5}",
        "{\"slug\":\"ok\",\"name\":\"n\",\"key\":\"k\",\"active\":true,\"require_auth\":false,\"updated_ms\":5}",
        "{\"slug\":\"ok\",\"name\":\"n\",\"key\":\"k\",\"secret\":\"s\",\"active\":\"yes\",\"require_auth\":false,\"updated_ms\":5}",
        "{\"slug\":\"ok\",\"key\":\"k\",\"secret\":\"s\",\"active\":true,\"require_auth\":false,\"updated_ms\":5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = body(bad[i]);
        CHECK(pg_apps_store_put(st, b, NULL) == PG_EINVAL, "invalid row refused: %s", bad[i]);
        json_decref(b);
    }
    CHECK_EQ(pg_apps_store_get(st, "ok", &got), PG_ENOTFOUND, "nothing written by refused rows");
    json_decref(copy);
    json_decref(a);
}

/* Deletion wins: once a slug is deleted (here or by a replicated tombstone), no older copy of it is stored again. */
static void test_deletions(struct pg_apps_store *st)
{
    json_t *a = NULL, *got = NULL;
    int changed = -1, removed = -1;
    int64_t when = 0;

    CHECK_EQ(pg_apps_store_create(st, "Gone App", &a), 0, "create an app to delete");
    if (!a)
        return;
    json_int_t t0 = json_integer_value(json_object_get(a, "updated_ms"));
    CHECK_EQ(pg_apps_store_deleted(st, "gone-app", &when), PG_ENOTFOUND, "no deletion recorded yet");
    CHECK_EQ(pg_apps_store_delete(st, "gone-app"), 0, "delete it");
    CHECK_EQ(pg_apps_store_deleted(st, "gone-app", &when), 0, "the deletion is recorded");
    CHECK(when > t0, "after the state it removed");
    CHECK_EQ(pg_apps_store_put(st, a, &changed), 0, "put the copy from before the deletion");
    CHECK_EQ(changed, 0, "an older copy does not bring it back");
    CHECK_EQ(pg_apps_store_get(st, "gone-app", &got), PG_ENOTFOUND, "still deleted");
    json_object_set_new(a, "updated_ms", json_integer(when));
    CHECK_EQ(pg_apps_store_put(st, a, &changed), 0, "put a copy as old as the deletion");
    CHECK_EQ(changed, 0, "the deletion wins a tie");
    json_object_set_new(a, "updated_ms", json_integer(when + 1));
    CHECK_EQ(pg_apps_store_put(st, a, &changed), 0, "put a copy newer than the deletion");
    CHECK_EQ(changed, 1, "a newer copy (the slug created again elsewhere) is stored");

    /* a replicated tombstone: removes what is not newer, is recorded either way */
    CHECK_EQ(pg_apps_store_forget(st, "gone-app", when, &removed), 0, "an older tombstone");
    CHECK_EQ(removed, 0, "leaves a newer row");
    CHECK_EQ(pg_apps_store_forget(st, "gone-app", when + 5, &removed), 0, "a newer tombstone");
    CHECK_EQ(removed, 1, "removes the row");
    CHECK_EQ(pg_apps_store_deleted(st, "gone-app", &when), 0, "and is recorded");
    json_object_set_new(a, "updated_ms", json_integer(when - 1));
    CHECK_EQ(pg_apps_store_put(st, a, &changed), 0, "put a copy older than the tombstone");
    CHECK_EQ(changed, 0, "it stays deleted");
    CHECK_EQ(pg_apps_store_forget(st, "never-here", 1000, &removed), 0, "a tombstone of an unknown slug");
    CHECK_EQ(removed, 0, "removes nothing");
    CHECK_EQ(pg_apps_store_deleted(st, "never-here", &when), 0, "but is recorded");

    /* created again here: newer than its deletion, so other stores take it */
    json_decref(a);
    a = NULL;
    CHECK_EQ(pg_apps_store_create(st, "Gone App", &a), 0, "create the slug again");
    pg_apps_store_deleted(st, "gone-app", &when);
    CHECK(a && json_integer_value(json_object_get(a, "updated_ms")) > when, "the new app is newer than the deletion");
    json_decref(a);
}

/*
 * Workers open the store read-write at the same moment when a gateway starts (workers.c): every one of several
 * processes opening a store that does not exist yet must succeed, whoever switches it to WAL and creates the schema.
 */
#define RACE_ROUNDS 20
#define RACE_PROCS 6
static void test_concurrent_first_open(void)
{
    char path[512], side[600];
    int failed = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char name[32];
        snprintf(name, sizeof name, "race-%d.db", round);
        path_in_dir(path, sizeof path, name);
        pid_t pids[RACE_PROCS];
        for (int i = 0; i < RACE_PROCS; i++) {
            if ((pids[i] = fork()) == 0) {
                struct pg_apps_store *st = NULL;
                char err[512];
                int rc = pg_apps_store_open(path, 0, &st, err, sizeof err);
                if (rc != 0)
                    fprintf(stderr, "concurrent open: %s\n", err);
                pg_apps_store_close(st);
                _exit(rc == 0 ? 0 : 1);
            }
        }
        for (int i = 0; i < RACE_PROCS; i++) {
            int status = 0;
            if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
                failed++;
        }
        unlink(path);
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    CHECK(failed == 0, "%d processes opening a new store at once, %d times: every open succeeds (%d failed)",
          RACE_PROCS, RACE_ROUNDS, failed);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dbpath[512], err[512], side[600];
    struct pg_apps_store *st = NULL;
    struct stat sb;

    snprintf(dir, sizeof dir, "%s/pg-apps-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    path_in_dir(dbpath, sizeof dbpath, "apps.db");

    test_slugify();
    CHECK_EQ(pg_apps_store_open(dbpath, 0, &st, err, sizeof err), 0, "open read-write creates the store");
    if (!st) {
        fprintf(stderr, "open: %s\n", err);
        goto out;
    }
    CHECK(stat(dbpath, &sb) == 0 && (sb.st_mode & 0777) == 0600, "store file is private (mode %o)",
          (unsigned)(sb.st_mode & 0777));
    test_crud(st);
    test_refusals(st);
    test_reader(dbpath, st);
    test_revocations(st);
    test_put(st);
    test_deletions(st);
    pg_apps_store_close(st);
    st = NULL;

    /* reopening keeps the data; a reader can open after every writer closed */
    CHECK_EQ(pg_apps_store_open(dbpath, 1, &st, err, sizeof err), 0, "read-only open after every writer closed");
    if (!st)
        fprintf(stderr, "read-only open: %s\n", err);
    json_t *app = NULL;
    CHECK_EQ(pg_apps_store_get(st, "foo-app", &app), 0, "data survives close");
    json_decref(app);
    pg_apps_store_close(st);
    st = NULL;

    test_open_errors();
    test_concurrent_first_open();
out:
    pg_apps_store_close(st);
    unlink(dbpath);
    snprintf(side, sizeof side, "%s-wal", dbpath);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", dbpath);
    unlink(side);
    if (rmdir(dir) != 0)
        perror("rmdir");
    return check_report("test_apps_store");
}
