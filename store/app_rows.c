/*
 * The apps table: creating apps (a slug from the name, a random key, secret and push token), reading them as app
 * JSON or as credentials, updating their mutable fields, and storing a row replicated from another store. Every
 * field is validated here, whoever sends it (admin API, replication); see apps_store.h for the JSON.
 */
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* A key that collides with an existing one (62^20 odds) is drawn again, a few times at most. */
#define CREATE_ATTEMPTS 3

int pg_apps_slugify(const char *name, char out[PG_APP_SLUG_MAX + 1])
{
    size_t n = 0;
    int dash = 0;

    if (!name || !out)
        return PG_EINVAL;
    for (const unsigned char *p = (const unsigned char *)name; *p && n < PG_APP_SLUG_MAX; p++) {
        int c = *p;
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            /* a run of other bytes becomes one '-', but only between kept characters */
            if (dash && n > 0 && n + 1 < PG_APP_SLUG_MAX)
                out[n++] = '-';
            else if (dash && n > 0)
                break; /* no room for the '-' and a character after it */
            dash = 0;
            out[n++] = (char)c;
        } else {
            dash = 1;
        }
    }
    out[n] = '\0';
    return n ? 0 : PG_EINVAL;
}

/* 1..PG_APP_NAME_MAX bytes of UTF-8 without control characters (names end up in logs and dashboards). */
static int name_valid(const char *name, size_t len)
{
    if (len == 0 || len > PG_APP_NAME_MAX || !pg_utf8_valid(name, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

/* An origin is scheme://host[:port]: printable ASCII without blanks is all we need to compare it later. */
static int origin_valid(const char *s, size_t len)
{
    if (len == 0 || len > PG_APP_ORIGIN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static int obj_set(json_t *obj, const char *key, json_t *value)
{
    return json_object_set_new(obj, key, value) ? PG_ENOMEM : 0; /* value is released on failure too */
}

/* The app JSON of the current row of a SELECT/RETURNING of APP_COLS. */
static int row_to_json(struct pg_apps_store *st, sqlite3_stmt *s, json_t **out)
{
    const char *origins_text = pg__store_col_text(s, C_ORIGINS);
    json_t *app = NULL, *origins = NULL;
    int rc = 0;

    *out = NULL;
    if (origins_text) {
        origins = json_loads(origins_text, JSON_REJECT_DUPLICATES, NULL);
        int ok = json_is_array(origins);
        for (size_t i = 0; ok && i < json_array_size(origins); i++)
            ok = json_is_string(json_array_get(origins, i));
        if (!ok) {
            pg__store_seterr(st, "apps store: app \"%.64s\" has a corrupt allowed_origins column", pg__store_col_text(s, C_SLUG));
            rc = PG_EIO;
            goto out;
        }
    } else if (!(origins = json_array())) {
        rc = PG_ENOMEM;
        goto out;
    }
    if (!(app = json_object())) {
        rc = PG_ENOMEM;
        goto out;
    }
    /* jansson refuses NULL strings, so a failed column read surfaces as PG_ENOMEM here */
    if ((rc = obj_set(app, "id", json_integer(sqlite3_column_int64(s, C_ID)))) ||
        (rc = obj_set(app, "slug", json_string(pg__store_col_text(s, C_SLUG)))) ||
        (rc = obj_set(app, "name", json_string(pg__store_col_text(s, C_NAME)))) ||
        (rc = obj_set(app, "key", json_string(pg__store_col_text(s, C_KEY)))) ||
        (rc = obj_set(app, "secret", json_string(pg__store_col_text(s, C_SECRET)))) ||
        (rc = obj_set(app, "active", json_boolean(sqlite3_column_int(s, C_ACTIVE) != 0))) ||
        (rc = obj_set(app, "require_auth", json_boolean(sqlite3_column_int(s, C_REQUIRE_AUTH) != 0))) ||
        (rc = obj_set(app, "push_token",
                      pg__store_col_text(s, C_PUSH_TOKEN) ? json_string(pg__store_col_text(s, C_PUSH_TOKEN)) : json_null())) ||
        (rc = obj_set(app, "updated_ms", json_integer(sqlite3_column_int64(s, C_UPDATED)))))
        goto out;
    rc = obj_set(app, "allowed_origins", origins);
    origins = NULL;
    if (rc)
        goto out;
    *out = app;
    app = NULL;
out:
    if (rc == PG_ENOMEM && !st->err[0])
        pg__store_seterr(st, "apps store: out of memory");
    json_decref(origins);
    json_decref(app);
    return rc;
}

static int slug_exists(struct pg_apps_store *st, const char *slug, int *exists)
{
    sqlite3_stmt *s = st->stmt[S_SLUG_EXISTS];
    int rc = 0, src;

    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    src = sqlite3_step(s);
    if (src == SQLITE_ROW || src == SQLITE_DONE)
        *exists = src == SQLITE_ROW;
    else
        rc = pg__store_fail(st, src);
    pg__store_done(s);
    return rc;
}

int pg_apps_store_create(struct pg_apps_store *st, const char *name, json_t **out_app)
{
    char slug[PG_APP_SLUG_MAX + 1], key[PG_APP_KEY_LEN + 1], secret[PG_APP_SECRET_LEN + 1];
    char push_token[PG_APP_SECRET_LEN + 1];
    sqlite3_stmt *s = NULL;
    json_t *app = NULL;
    int rc = 0, src, exists = 0, inserted = 0;

    if (!st || !name || !out_app)
        return PG_EINVAL;
    *out_app = NULL;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    if (!name_valid(name, strnlen(name, PG_APP_NAME_MAX + 1))) {
        pg__store_seterr(st, "name: expected 1-%d bytes of UTF-8 without control characters", PG_APP_NAME_MAX);
        rc = PG_EINVAL;
        goto out;
    }
    if (pg_apps_slugify(name, slug)) {
        pg__store_seterr(st, "name: needs at least one letter or digit to make a slug from");
        rc = PG_EINVAL;
        goto out;
    }
    if (pg__store_slug_reserved(st, slug)) {
        pg__store_seterr(st, "slug \"%s\" is reserved; choose another name", slug);
        rc = PG_EINVAL;
        goto out;
    }
    s = st->stmt[S_INSERT];
    for (int attempt = 0; attempt < CREATE_ATTEMPTS && !inserted; attempt++) {
        if ((rc = pg_random_token(key, PG_APP_KEY_LEN)) || (rc = pg_random_token(secret, PG_APP_SECRET_LEN)) ||
            (rc = pg_random_token(push_token, PG_APP_SECRET_LEN))) {
            pg__store_seterr(st, "apps store: no random bytes for a key");
            goto out;
        }
        sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, secret, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, pg_now_ms());
        sqlite3_bind_text(s, 6, push_token, -1, SQLITE_STATIC);
        src = sqlite3_step(s);
        pg__store_done(s);
        if (src == SQLITE_DONE) {
            inserted = 1;
        } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
            /* slug or key taken; only the slug is the caller's problem */
            if ((rc = slug_exists(st, slug, &exists)))
                goto out;
            if (exists) {
                pg__store_seterr(st, "an app with slug \"%s\" already exists", slug);
                rc = PG_EEXIST;
                goto out;
            }
        } else {
            rc = pg__store_fail(st, src);
            goto out;
        }
    }
    if (!inserted) {
        pg__store_seterr(st, "apps store: could not draw a unique key");
        rc = PG_EIO;
        goto out;
    }
    /* Read the row back rather than assemble it: the reply shows exactly what was stored. */
    rc = pg_apps_store_get(st, slug, &app);
    if (rc == PG_ENOTFOUND)
        pg__store_seterr(st, "app \"%s\" was deleted right after it was created", slug);
    if (rc)
        goto out;
    *out_app = app;
    app = NULL;
out:
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(push_token, sizeof push_token);
    json_decref(app);
    return rc;
}

int pg_apps_store_list(struct pg_apps_store *st, json_t **out_array)
{
    sqlite3_stmt *s;
    json_t *arr = NULL, *app = NULL;
    int rc = 0, src;

    if (!st || !out_array)
        return PG_EINVAL;
    *out_array = NULL;
    st->err[0] = '\0';
    s = st->stmt[S_LIST];
    if (!(arr = json_array())) {
        rc = PG_ENOMEM;
        goto out;
    }
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = row_to_json(st, s, &app)))
            goto out;
        if (json_array_append_new(arr, app)) {
            app = NULL;
            rc = PG_ENOMEM;
            goto out;
        }
        app = NULL;
    }
    if (src != SQLITE_DONE) {
        rc = pg__store_fail(st, src);
        goto out;
    }
    *out_array = arr;
    arr = NULL;
out:
    pg__store_done(s);
    json_decref(arr);
    return rc;
}

/* A slug longer than any stored one cannot match: answer without binding unbounded input. */
int pg__store_slug_arg_ok(const char *slug)
{
    size_t n = strnlen(slug, PG_APP_SLUG_MAX + 1);
    return n > 0 && n <= PG_APP_SLUG_MAX;
}

int pg_apps_store_get(struct pg_apps_store *st, const char *slug, json_t **out)
{
    sqlite3_stmt *s = NULL;
    int rc = 0, src;

    if (!st || !slug || !out)
        return PG_EINVAL;
    *out = NULL;
    st->err[0] = '\0';
    if (!pg__store_slug_arg_ok(slug)) {
        pg__store_seterr(st, "no such app");
        rc = PG_ENOTFOUND;
        goto out;
    }
    s = st->stmt[S_GET];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        rc = row_to_json(st, s, out);
    } else if (src == SQLITE_DONE) {
        pg__store_seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
    } else {
        rc = pg__store_fail(st, src);
    }
out:
    if (s)
        pg__store_done(s);
    return rc;
}

/* Field names are echoed in errors only when they are plain identifiers. */
static const char *printable_field(const char *k)
{
    size_t n = strnlen(k, 33);
    if (n == 0 || n > 32)
        return "?";
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') ||
              k[i] == '_'))
            return "?";
    return k;
}

int pg__store_parse_changes(struct pg_apps_store *st, json_t *changes, struct app_changes *c)
{
    const char *k;
    json_t *v;

    c->name = NULL;
    c->active = c->require_auth = -1;
    c->set_origins = 0;
    c->origins = NULL;
    if (!json_is_object(changes)) {
        pg__store_seterr(st, "expected a JSON object of changes");
        return PG_EINVAL;
    }
    json_object_foreach(changes, k, v) {
        if (!strcmp(k, "name")) {
            /* strlen == length also refuses an embedded \u0000 */
            if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                !name_valid(json_string_value(v), json_string_length(v))) {
                pg__store_seterr(st, "name: expected a string of 1-%d bytes without control characters", PG_APP_NAME_MAX);
                return PG_EINVAL;
            }
            c->name = json_string_value(v);
        } else if (!strcmp(k, "active") || !strcmp(k, "require_auth")) {
            if (!json_is_boolean(v)) {
                pg__store_seterr(st, "%s: expected true or false", k);
                return PG_EINVAL;
            }
            *(!strcmp(k, "active") ? &c->active : &c->require_auth) = json_is_true(v);
        } else if (!strcmp(k, "allowed_origins")) {
            size_t i;
            json_t *o;
            if (!json_is_null(v) && !json_is_array(v)) {
                pg__store_seterr(st, "allowed_origins: expected an array of origins or null");
                return PG_EINVAL;
            }
            if (json_array_size(v) > PG_APP_ORIGINS_MAX) {
                pg__store_seterr(st, "allowed_origins: at most %d entries", PG_APP_ORIGINS_MAX);
                return PG_EINVAL;
            }
            json_array_foreach(v, i, o) {
                if (!json_is_string(o) || !origin_valid(json_string_value(o), json_string_length(o))) {
                    pg__store_seterr(st,
                           "allowed_origins[%zu]: expected an origin such as https://example.com (1-%d printable "
                           "characters)",
                           i, PG_APP_ORIGIN_MAX);
                    return PG_EINVAL;
                }
            }
            c->set_origins = 1;
            free(c->origins);
            c->origins = NULL;
            if (json_array_size(v) && !(c->origins = json_dumps(v, JSON_COMPACT))) {
                pg__store_seterr(st, "apps store: out of memory");
                return PG_ENOMEM;
            }
        } else if (!strcmp(k, "id") || !strcmp(k, "slug") || !strcmp(k, "key") || !strcmp(k, "secret")) {
            pg__store_seterr(st, "%s cannot be changed", k);
            return PG_EINVAL;
        } else {
            pg__store_seterr(st, "unknown field \"%s\" (name, active, require_auth and allowed_origins can be changed)",
                   printable_field(k));
            return PG_EINVAL;
        }
    }
    return 0;
}

int pg_apps_store_update(struct pg_apps_store *st, const char *slug, json_t *changes, json_t **out)
{
    struct app_changes c = {.origins = NULL};
    sqlite3_stmt *s = NULL;
    json_t *app = NULL;
    int rc = 0, src;

    if (!st || !slug)
        return PG_EINVAL;
    if (out)
        *out = NULL;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    if ((rc = pg__store_parse_changes(st, changes, &c)))
        goto out;
    if (!pg__store_slug_arg_ok(slug)) {
        pg__store_seterr(st, "no such app");
        rc = PG_ENOTFOUND;
        goto out;
    }
    s = st->stmt[S_UPDATE];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    if (c.name)
        sqlite3_bind_text(s, 2, c.name, -1, SQLITE_STATIC);
    if (c.active >= 0)
        sqlite3_bind_int(s, 3, c.active);
    if (c.require_auth >= 0)
        sqlite3_bind_int(s, 4, c.require_auth);
    sqlite3_bind_int(s, 5, c.set_origins);
    if (c.origins)
        sqlite3_bind_text(s, 6, c.origins, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, pg_now_ms());
    src = sqlite3_step(s);
    if (src == SQLITE_DONE) {
        pg__store_seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = pg__store_fail(st, src);
        goto out;
    }
    if ((rc = row_to_json(st, s, &app)))
        goto out;
    /* the statement commits when it runs to completion; a failure there means nothing was changed */
    if ((src = sqlite3_step(s)) != SQLITE_DONE) {
        rc = pg__store_fail(st, src);
        goto out;
    }
    if (out) {
        *out = app;
        app = NULL;
    }
out:
    if (s)
        pg__store_done(s);
    free(c.origins);
    json_decref(app);
    return rc;
}

void pg_apps_store_free_creds(struct pg_app_creds *creds, size_t n)
{
    if (!creds)
        return;
    for (size_t i = 0; i < n; i++)
        pg_app_creds_clear(&creds[i]);
    free(creds);
}

int pg_apps_store_load_creds(struct pg_apps_store *st, struct pg_app_creds **out, size_t *n)
{
    sqlite3_stmt *s;
    struct pg_app_creds *arr = NULL, *grown;
    size_t count = 0, cap = 0;
    char why[128];
    int rc = 0, src;

    if (!st || !out || !n)
        return PG_EINVAL;
    *out = NULL;
    *n = 0;
    st->err[0] = '\0';
    s = st->stmt[S_LIST];
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *slug = pg__store_col_text(s, C_SLUG), *key = pg__store_col_text(s, C_KEY), *secret = pg__store_col_text(s, C_SECRET);
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            if (!(grown = realloc(arr, cap * sizeof *arr))) {
                rc = PG_ENOMEM;
                goto out;
            }
            arr = grown;
        }
        if (!slug || !key || !secret) {
            rc = PG_ENOMEM; /* the columns are NOT NULL: only a failed conversion gives NULL */
            goto out;
        }
        if ((rc = pg_app_creds_init(&arr[count], slug)))
            goto out;
        count++; /* from here the entry owns memory, so it is cleared with the rest on failure */
        if ((rc = pg_app_creds_set(&arr[count - 1], "key", key, NULL, why, sizeof why)) ||
            (rc = pg_app_creds_set(&arr[count - 1], "secret", secret, NULL, why, sizeof why))) {
            pg__store_seterr(st, "apps store: app \"%.64s\": %s", slug, why);
            goto out;
        }
        arr[count - 1].active = sqlite3_column_int(s, C_ACTIVE) != 0;
        arr[count - 1].require_auth = sqlite3_column_int(s, C_REQUIRE_AUTH) != 0;
    }
    if (src != SQLITE_DONE) {
        rc = pg__store_fail(st, src);
        goto out;
    }
    *out = arr;
    *n = count;
    arr = NULL;
    count = 0;
out:
    if (rc == PG_ENOMEM && !st->err[0])
        pg__store_seterr(st, "apps store: out of memory");
    pg__store_done(s);
    pg_apps_store_free_creds(arr, count);
    return rc;
}

/* Printable ASCII without spaces: what keys, secrets and push tokens are made of here and elsewhere. */
static int token_valid(const char *t, size_t max)
{
    size_t n = t ? strnlen(t, max + 1) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return 0;
    return 1;
}

int pg_apps_store_put(struct pg_apps_store *st, json_t *app, int *changed)
{
    struct app_changes c = {.origins = NULL};
    char slug_of_slug[PG_APP_SLUG_MAX + 1];
    json_t *fields = NULL;
    sqlite3_stmt *s;
    int rc = 0, src;

    if (!st || !app)
        return PG_EINVAL;
    if (changed)
        *changed = 0;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    const char *slug = json_string_value(json_object_get(app, "slug"));
    const char *key = json_string_value(json_object_get(app, "key"));
    const char *secret = json_string_value(json_object_get(app, "secret"));
    json_t *push = json_object_get(app, "push_token");
    json_t *updated = json_object_get(app, "updated_ms");
    if (!slug || pg_apps_slugify(slug, slug_of_slug) || strcmp(slug, slug_of_slug) != 0 || pg__store_slug_reserved(st, slug)) {
        pg__store_seterr(st, "slug: expected a slug that is not reserved");
        return PG_EINVAL;
    }
    if (!token_valid(key, 255) || !token_valid(secret, 255) ||
        (push && !json_is_null(push) && !token_valid(json_string_value(push), 255))) {
        pg__store_seterr(st, "key, secret and push_token: expected 1-255 printable characters");
        return PG_EINVAL;
    }
    if (!json_is_integer(updated) || json_integer_value(updated) <= 0) {
        pg__store_seterr(st, "updated_ms: expected the time of the app's last change (ms)");
        return PG_EINVAL;
    }
    /* name, active, require_auth and allowed_origins are checked as an update would check them */
    if (!(fields = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(app, "name"), "active",
                             json_object_get(app, "active"), "require_auth", json_object_get(app, "require_auth"),
                             "allowed_origins", json_object_get(app, "allowed_origins")))) {
        pg__store_seterr(st, "apps store: out of memory");
        return PG_ENOMEM;
    }
    if ((rc = pg__store_parse_changes(st, fields, &c)))
        goto out;
    if (!c.name || c.active < 0 || c.require_auth < 0) {
        pg__store_seterr(st, "an app needs name, active and require_auth");
        rc = PG_EINVAL;
        goto out;
    }
    s = st->stmt[S_PUT];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, secret, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, c.active);
    sqlite3_bind_int(s, 6, c.require_auth);
    if (c.origins)
        sqlite3_bind_text(s, 7, c.origins, -1, SQLITE_STATIC);
    if (json_is_string(push))
        sqlite3_bind_text(s, 8, json_string_value(push), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, json_integer_value(updated));
    src = sqlite3_step(s);
    pg__store_done(s);
    if (src != SQLITE_DONE) {
        rc = (src & 0xff) == SQLITE_CONSTRAINT ? PG_EEXIST : pg__store_fail(st, src);
        if (rc == PG_EEXIST)
            pg__store_seterr(st, "app \"%s\": its key belongs to another app in this store", slug);
        goto out;
    }
    if (changed)
        *changed = sqlite3_changes(st->db) > 0;
out:
    free(c.origins);
    json_decref(fields);
    return rc;
}
