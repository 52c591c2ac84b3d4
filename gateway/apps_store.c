#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "apps_store.h"
#include "config.h"

#define SCHEMA_VERSION 1
/* Long enough to ride out another process's write transaction, short enough to answer an admin request. */
#define BUSY_TIMEOUT_MS 5000
/* A key that collides with an existing one (62^20 odds) is drawn again, a few times at most. */
#define CREATE_ATTEMPTS 3

#define APP_COLS "id, slug, name, key, secret, active, require_auth, allowed_origins, push_token, updated_ms"
enum { C_ID, C_SLUG, C_NAME, C_KEY, C_SECRET, C_ACTIVE, C_REQUIRE_AUTH, C_ORIGINS, C_PUSH_TOKEN, C_UPDATED };

/* Statements a read-only store needs come first: only those are prepared for it. */
enum stmt_id {
    S_GET, S_LIST, S_DATA_VERSION, S_REVOKED, S_NREAD,
    S_INSERT = S_NREAD, S_SLUG_EXISTS, S_UPDATE, S_DELETE, S_REVOKE, S_PURGE, S_PUT, S_FORGET, S_TOMBSTONE,
    S_DELETED, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_GET] = "SELECT " APP_COLS " FROM apps WHERE slug = ?1",
    [S_LIST] = "SELECT " APP_COLS " FROM apps ORDER BY id",
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_REVOKED] = "SELECT app, kind, value, expires_ms FROM revocations WHERE expires_ms > ?1 ORDER BY rowid",
    [S_INSERT] = "INSERT INTO apps (slug, name, key, secret, active, require_auth, allowed_origins, push_token, "
                 "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, 1, 0, NULL, ?6, ?5, "
                 /* a slug created again is newer than its deletion, on every replica, whatever the clocks say */
                 "max(?5, coalesce((SELECT deleted_ms + 1 FROM deletions WHERE slug = ?1), 0)))",
    [S_SLUG_EXISTS] = "SELECT 1 FROM apps WHERE slug = ?1",
    /* NULL parameters keep a column: one statement, so a concurrent update of another field is never lost. */
    [S_UPDATE] = "UPDATE apps SET name = coalesce(?2, name), active = coalesce(?3, active), "
                 "require_auth = coalesce(?4, require_auth), "
                 "allowed_origins = CASE WHEN ?5 THEN ?6 ELSE allowed_origins END, "
                 /* strictly increasing: replicas apply only newer states (pg_apps_store_put) */
                 "updated_ms = max(?7, coalesce(updated_ms, 0) + 1) "
                 "WHERE slug = ?1 RETURNING " APP_COLS,
    [S_DELETE] = "DELETE FROM apps WHERE slug = ?1 RETURNING updated_ms",
    /* A second revocation of the same id keeps the later expiry. */
    [S_REVOKE] = "INSERT INTO revocations (app, kind, value, expires_ms) VALUES (?1, ?2, ?3, ?4) "
                 "ON CONFLICT (app, kind, value) DO UPDATE SET expires_ms = max(expires_ms, excluded.expires_ms)",
    [S_PURGE] = "DELETE FROM revocations WHERE expires_ms <= ?1",
    /* A row replicated from another store: written only when something differs, so changes() says whether it did. */
    [S_PUT] = "INSERT INTO apps (slug, name, key, secret, active, require_auth, allowed_origins, push_token, "
              "created_ms, updated_ms) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9 "
              /* deletion wins: a state not newer than the slug's deletion never comes back */
              "WHERE NOT EXISTS (SELECT 1 FROM deletions WHERE slug = ?1 AND deleted_ms >= ?9) "
              "ON CONFLICT (slug) DO UPDATE SET name = excluded.name, key = excluded.key, secret = excluded.secret, "
              "active = excluded.active, require_auth = excluded.require_auth, "
              "allowed_origins = excluded.allowed_origins, push_token = excluded.push_token, "
              "updated_ms = excluded.updated_ms "
              /* only a newer state replaces this one: a stale copy must not undo a later local change */
              "WHERE excluded.updated_ms > coalesce(apps.updated_ms, 0) AND "
              "(name IS NOT excluded.name OR key IS NOT excluded.key OR secret IS NOT excluded.secret OR "
              "active IS NOT excluded.active OR require_auth IS NOT excluded.require_auth OR "
              "allowed_origins IS NOT excluded.allowed_origins OR push_token IS NOT excluded.push_token)",
    /* a replicated deletion removes only what is not newer than it */
    [S_FORGET] = "DELETE FROM apps WHERE slug = ?1 AND coalesce(updated_ms, 0) <= ?2",
    [S_TOMBSTONE] = "INSERT INTO deletions (slug, deleted_ms) VALUES (?1, ?2) "
                    /* no write (no data_version change for every reader) when the record is as recent */
                    "ON CONFLICT (slug) DO UPDATE SET deleted_ms = excluded.deleted_ms "
                    "WHERE excluded.deleted_ms > deletions.deleted_ms",
    [S_DELETED] = "SELECT deleted_ms FROM deletions WHERE slug = ?1",
};

static const char schema_sql[] = "CREATE TABLE IF NOT EXISTS apps ("
                                 "id INTEGER PRIMARY KEY, "
                                 "slug TEXT UNIQUE NOT NULL, "
                                 "name TEXT NOT NULL, "
                                 "key TEXT UNIQUE NOT NULL, "
                                 "secret TEXT NOT NULL, "
                                 "active INTEGER NOT NULL DEFAULT 1, "
                                 "require_auth INTEGER NOT NULL DEFAULT 0, "
                                 "allowed_origins TEXT, "
                                 "push_token TEXT, "
                                 "created_ms INTEGER, "
                                 "updated_ms INTEGER);"
                                 /* Revoked client ids and token ids (jti), kept until the revocation expires. */
                                 "CREATE TABLE IF NOT EXISTS revocations ("
                                 "app TEXT NOT NULL, "
                                 "kind TEXT NOT NULL CHECK (kind IN ('client', 'jti')), "
                                 "value TEXT NOT NULL, "
                                 "expires_ms INTEGER NOT NULL, "
                                 "PRIMARY KEY (app, kind, value));"
                                 /*
                                  * The latest deletion of every slug (replication's tombstones): no copy of
                                  * the app as it was before then is stored again (pg_apps_store_put). One
                                  * row per deleted slug, as many as admins delete; a store without the table
                                  * (older versions) gets it when opened read-write.
                                  */
                                 "CREATE TABLE IF NOT EXISTS deletions ("
                                 "slug TEXT PRIMARY KEY, "
                                 "deleted_ms INTEGER NOT NULL)";


struct pg_apps_store {
    sqlite3 *db;
    int readonly;
    sqlite3_stmt *stmt[S_COUNT];
    char *broker_user;
    char err[256];
};

static void seterr(struct pg_apps_store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct pg_apps_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

static int map_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return PG_EBUSY;
    case SQLITE_NOMEM:
        return PG_ENOMEM;
    case SQLITE_READONLY:
        return PG_EDENIED;
    default:
        return PG_EIO;
    }
}

static int db_fail(struct pg_apps_store *st, int rc)
{
    seterr(st, "apps store: %s", sqlite3_errmsg(st->db));
    return map_sqlite(rc);
}

/* Leave a statement ready for its next use; a statement left mid-step would pin a read snapshot. */
static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Run a constant statement at open time; the first result column, if any, goes to text/num. */
static int run_once(sqlite3 *db, const char *sql, char *text, size_t textlen, int64_t *num)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (text && textlen) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(text, textlen, "%s", t ? (const char *)t : "");
        }
        if (num)
            *num = sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s);
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

void pg_apps_store_close(struct pg_apps_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    free(st->broker_user);
    free(st);
}

int pg_apps_store_open(const char *path, int readonly, struct pg_apps_store **out, char *err, size_t errlen)
{
    struct pg_apps_store *st = NULL;
    char mode[16];
    int64_t version = 0;
    int rc = 0, src;

    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path || !out) {
        rc = PG_EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "apps store: no path given");
        goto out;
    }
    *out = NULL;
    if (!(st = calloc(1, sizeof *st))) {
        rc = PG_ENOMEM;
        goto out;
    }
    st->readonly = readonly ? 1 : 0;

    if (!readonly) {
        /* Create the file ourselves so it is born private: it holds every app's secret. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            seterr(st, "%s: cannot create apps store: %s", path, strerror(errno));
            rc = PG_EIO;
            goto out;
        }
        close(fd);
    }
    src = sqlite3_open_v2(path, &st->db, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, NULL);
    if (src != SQLITE_OK) {
        int sys = st->db ? sqlite3_system_errno(st->db) : 0;
        seterr(st, "%s: cannot open apps store: %s%s%s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory",
               sys ? ": " : "", sys ? strerror(sys) : "");
        rc = map_sqlite(src) == PG_ENOMEM ? PG_ENOMEM : PG_EIO;
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

    if (!readonly) {
        /* WAL: readers in other processes (the broker plugin) never block the admin API's writes. */
        if ((src = run_once(st->db, "PRAGMA journal_mode = WAL", mode, sizeof mode, NULL)) != SQLITE_OK)
            goto db_error;
        if (strcasecmp(mode, "wal") != 0) {
            seterr(st, "%s: apps store: cannot switch to WAL mode (journal mode is %s)", path, mode);
            rc = PG_EIO;
            goto out;
        }
        if ((src = sqlite3_exec(st->db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK) /* several statements */
            goto db_error;
    }
    if ((src = run_once(st->db, "PRAGMA user_version", NULL, 0, &version)) != SQLITE_OK)
        goto db_error;
    if (version == 0 && !readonly) {
        if ((src = run_once(st->db, "PRAGMA user_version = 1", NULL, 0, NULL)) != SQLITE_OK)
            goto db_error;
        version = SCHEMA_VERSION;
    }
    if (version == 0) {
        seterr(st, "%s: not a pushgate apps store (open it read-write once to create it)", path);
        rc = PG_EIO;
        goto out;
    }
    if (version > SCHEMA_VERSION) {
        seterr(st, "%s: apps store schema version %lld is newer than this program's (%d)", path, (long long)version,
               SCHEMA_VERSION);
        rc = PG_EIO;
        goto out;
    }
    for (int i = 0; i < (readonly ? S_NREAD : S_COUNT); i++) {
        if ((src = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL)) !=
            SQLITE_OK)
            goto db_error;
    }
    *out = st;
    st = NULL;
    goto out;

db_error:
    seterr(st, "%s: apps store: %s", path, sqlite3_errmsg(st->db));
    rc = map_sqlite(src) == PG_ENOMEM ? PG_ENOMEM : PG_EIO;
out:
    if (st && err && errlen)
        snprintf(err, errlen, "%s", st->err[0] ? st->err : pg_strerror(rc));
    else if (rc == PG_ENOMEM && err && errlen)
        snprintf(err, errlen, "apps store: out of memory");
    pg_apps_store_close(st);
    return rc;
}

const char *pg_apps_store_errmsg(const struct pg_apps_store *st)
{
    return st ? st->err : "";
}

int pg_apps_store_set_busy_timeout(struct pg_apps_store *st, int ms)
{
    if (!st || ms < 0)
        return PG_EINVAL;
    sqlite3_busy_timeout(st->db, ms);
    return 0;
}

int pg_apps_store_set_broker_user(struct pg_apps_store *st, const char *username)
{
    char *copy = NULL;
    if (!st)
        return PG_EINVAL;
    if (username && *username && !(copy = strdup(username)))
        return PG_ENOMEM;
    free(st->broker_user);
    st->broker_user = copy;
    return 0;
}

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

/*
 * Declared in config.h for the gateway; defined here so the broker plugin, which links this file without the
 * gateway's config code, refuses the same ids. The route names come from the gateway's route table, given once at
 * start-up (pg_app_ids_reserve); the control topics' levels are fixed.
 */
static int (*route_segment_reserved)(const char *id);

void pg_app_ids_reserve(int (*route_segment)(const char *id))
{
    route_segment_reserved = route_segment;
}

int pg_app_id_reserved(const char *id)
{
    static const char *const topics[] = {"_ctl", "_node"}; /* {root}/_ctl/..., {root}/_node/... */
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        if (!strcmp(id, topics[i]))
            return 1;
    return route_segment_reserved && route_segment_reserved(id);
}

static int slug_reserved(const struct pg_apps_store *st, const char *slug)
{
    if (pg_app_id_reserved(slug)) /* slugs are URL segments next to the gateway's own routes */
        return 1;
    return st->broker_user && !strcasecmp(slug, st->broker_user);
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

static const char *col_text(sqlite3_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s, col);
}

/* The app JSON of the current row of a SELECT/RETURNING of APP_COLS. */
static int row_to_json(struct pg_apps_store *st, sqlite3_stmt *s, json_t **out)
{
    const char *origins_text = col_text(s, C_ORIGINS);
    json_t *app = NULL, *origins = NULL;
    int rc = 0;

    *out = NULL;
    if (origins_text) {
        origins = json_loads(origins_text, JSON_REJECT_DUPLICATES, NULL);
        int ok = json_is_array(origins);
        for (size_t i = 0; ok && i < json_array_size(origins); i++)
            ok = json_is_string(json_array_get(origins, i));
        if (!ok) {
            seterr(st, "apps store: app \"%.64s\" has a corrupt allowed_origins column", col_text(s, C_SLUG));
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
        (rc = obj_set(app, "slug", json_string(col_text(s, C_SLUG)))) ||
        (rc = obj_set(app, "name", json_string(col_text(s, C_NAME)))) ||
        (rc = obj_set(app, "key", json_string(col_text(s, C_KEY)))) ||
        (rc = obj_set(app, "secret", json_string(col_text(s, C_SECRET)))) ||
        (rc = obj_set(app, "active", json_boolean(sqlite3_column_int(s, C_ACTIVE) != 0))) ||
        (rc = obj_set(app, "require_auth", json_boolean(sqlite3_column_int(s, C_REQUIRE_AUTH) != 0))) ||
        (rc = obj_set(app, "push_token",
                      col_text(s, C_PUSH_TOKEN) ? json_string(col_text(s, C_PUSH_TOKEN)) : json_null())) ||
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
        seterr(st, "apps store: out of memory");
    json_decref(origins);
    json_decref(app);
    return rc;
}

/* Every write starts here: clears the last error, refuses a read-only store. */
static int begin_write(struct pg_apps_store *st)
{
    st->err[0] = '\0';
    if (!st->readonly)
        return 0;
    seterr(st, "apps store is open read-only");
    return PG_EDENIED;
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
        rc = db_fail(st, src);
    stmt_done(s);
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
    if ((rc = begin_write(st)))
        return rc;
    if (!name_valid(name, strnlen(name, PG_APP_NAME_MAX + 1))) {
        seterr(st, "name: expected 1-%d bytes of UTF-8 without control characters", PG_APP_NAME_MAX);
        rc = PG_EINVAL;
        goto out;
    }
    if (pg_apps_slugify(name, slug)) {
        seterr(st, "name: needs at least one letter or digit to make a slug from");
        rc = PG_EINVAL;
        goto out;
    }
    if (slug_reserved(st, slug)) {
        seterr(st, "slug \"%s\" is reserved; choose another name", slug);
        rc = PG_EINVAL;
        goto out;
    }
    s = st->stmt[S_INSERT];
    for (int attempt = 0; attempt < CREATE_ATTEMPTS && !inserted; attempt++) {
        if ((rc = pg_random_token(key, PG_APP_KEY_LEN)) || (rc = pg_random_token(secret, PG_APP_SECRET_LEN)) ||
            (rc = pg_random_token(push_token, PG_APP_SECRET_LEN))) {
            seterr(st, "apps store: no random bytes for a key");
            goto out;
        }
        sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, secret, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, pg_now_ms());
        sqlite3_bind_text(s, 6, push_token, -1, SQLITE_STATIC);
        src = sqlite3_step(s);
        stmt_done(s);
        if (src == SQLITE_DONE) {
            inserted = 1;
        } else if ((src & 0xff) == SQLITE_CONSTRAINT) {
            /* slug or key taken; only the slug is the caller's problem */
            if ((rc = slug_exists(st, slug, &exists)))
                goto out;
            if (exists) {
                seterr(st, "an app with slug \"%s\" already exists", slug);
                rc = PG_EEXIST;
                goto out;
            }
        } else {
            rc = db_fail(st, src);
            goto out;
        }
    }
    if (!inserted) {
        seterr(st, "apps store: could not draw a unique key");
        rc = PG_EIO;
        goto out;
    }
    /* Read the row back rather than assemble it: the reply shows exactly what was stored. */
    rc = pg_apps_store_get(st, slug, &app);
    if (rc == PG_ENOTFOUND)
        seterr(st, "app \"%s\" was deleted right after it was created", slug);
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
        rc = db_fail(st, src);
        goto out;
    }
    *out_array = arr;
    arr = NULL;
out:
    stmt_done(s);
    json_decref(arr);
    return rc;
}

/* A slug longer than any stored one cannot match: answer without binding unbounded input. */
static int slug_arg_ok(const char *slug)
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
    if (!slug_arg_ok(slug)) {
        seterr(st, "no such app");
        rc = PG_ENOTFOUND;
        goto out;
    }
    s = st->stmt[S_GET];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        rc = row_to_json(st, s, out);
    } else if (src == SQLITE_DONE) {
        seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
    } else {
        rc = db_fail(st, src);
    }
out:
    if (s)
        stmt_done(s);
    return rc;
}

struct app_changes {
    const char *name; /* NULL: unchanged */
    int active;       /* -1: unchanged */
    int require_auth; /* -1: unchanged */
    int set_origins;  /* 1: replace allowed_origins with origins (NULL = none) */
    char *origins;    /* compact JSON array text, owned */
};

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

static int parse_changes(struct pg_apps_store *st, json_t *changes, struct app_changes *c)
{
    const char *k;
    json_t *v;

    c->name = NULL;
    c->active = c->require_auth = -1;
    c->set_origins = 0;
    c->origins = NULL;
    if (!json_is_object(changes)) {
        seterr(st, "expected a JSON object of changes");
        return PG_EINVAL;
    }
    json_object_foreach(changes, k, v) {
        if (!strcmp(k, "name")) {
            /* strlen == length also refuses an embedded \u0000 */
            if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                !name_valid(json_string_value(v), json_string_length(v))) {
                seterr(st, "name: expected a string of 1-%d bytes without control characters", PG_APP_NAME_MAX);
                return PG_EINVAL;
            }
            c->name = json_string_value(v);
        } else if (!strcmp(k, "active") || !strcmp(k, "require_auth")) {
            if (!json_is_boolean(v)) {
                seterr(st, "%s: expected true or false", k);
                return PG_EINVAL;
            }
            *(!strcmp(k, "active") ? &c->active : &c->require_auth) = json_is_true(v);
        } else if (!strcmp(k, "allowed_origins")) {
            size_t i;
            json_t *o;
            if (!json_is_null(v) && !json_is_array(v)) {
                seterr(st, "allowed_origins: expected an array of origins or null");
                return PG_EINVAL;
            }
            if (json_array_size(v) > PG_APP_ORIGINS_MAX) {
                seterr(st, "allowed_origins: at most %d entries", PG_APP_ORIGINS_MAX);
                return PG_EINVAL;
            }
            json_array_foreach(v, i, o) {
                if (!json_is_string(o) || !origin_valid(json_string_value(o), json_string_length(o))) {
                    seterr(st,
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
                seterr(st, "apps store: out of memory");
                return PG_ENOMEM;
            }
        } else if (!strcmp(k, "id") || !strcmp(k, "slug") || !strcmp(k, "key") || !strcmp(k, "secret")) {
            seterr(st, "%s cannot be changed", k);
            return PG_EINVAL;
        } else {
            seterr(st, "unknown field \"%s\" (name, active, require_auth and allowed_origins can be changed)",
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
    if ((rc = begin_write(st)))
        return rc;
    if ((rc = parse_changes(st, changes, &c)))
        goto out;
    if (!slug_arg_ok(slug)) {
        seterr(st, "no such app");
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
        seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = db_fail(st, src);
        goto out;
    }
    if ((rc = row_to_json(st, s, &app)))
        goto out;
    /* the statement commits when it runs to completion; a failure there means nothing was changed */
    if ((src = sqlite3_step(s)) != SQLITE_DONE) {
        rc = db_fail(st, src);
        goto out;
    }
    if (out) {
        *out = app;
        app = NULL;
    }
out:
    if (s)
        stmt_done(s);
    free(c.origins);
    json_decref(app);
    return rc;
}

/* Runs a transaction's BEGIN IMMEDIATE, COMMIT or ROLLBACK. */
static int tx(struct pg_apps_store *st, const char *sql)
{
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? 0 : db_fail(st, src);
}

/* Ends the caller's transaction: COMMIT when rc is 0, else (or when COMMIT fails) ROLLBACK, keeping the first error. */
static int tx_end(struct pg_apps_store *st, int rc)
{
    if (rc == 0 && (rc = tx(st, "COMMIT")) == 0)
        return 0;
    char why[sizeof st->err];
    snprintf(why, sizeof why, "%s", st->err);
    tx(st, "ROLLBACK");
    snprintf(st->err, sizeof st->err, "%s", why);
    return rc;
}

/* Records the deletion of slug at deleted_ms (the later one stays). Inside the caller's transaction. */
static int record_deletion(struct pg_apps_store *st, const char *slug, int64_t deleted_ms)
{
    sqlite3_stmt *s = st->stmt[S_TOMBSTONE];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, deleted_ms);
    int src = sqlite3_step(s);
    stmt_done(s);
    return src == SQLITE_DONE ? 0 : db_fail(st, src);
}

int pg_apps_store_delete(struct pg_apps_store *st, const char *slug)
{
    sqlite3_stmt *s = NULL;
    int rc = 0, src, found = 0;
    int64_t updated = 0;

    if (!st || !slug)
        return PG_EINVAL;
    if ((rc = begin_write(st)))
        return rc;
    if (!slug_arg_ok(slug)) {
        seterr(st, "no such app");
        return PG_ENOTFOUND;
    }
    /* the row and its deletion record go together or not at all */
    if ((rc = tx(st, "BEGIN IMMEDIATE")))
        return rc;
    s = st->stmt[S_DELETE];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        found = 1;
        updated = sqlite3_column_int64(s, 0);
    }
    stmt_done(s);
    if (src != SQLITE_DONE) {
        rc = db_fail(st, src);
    } else if (!found) {
        seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
    } else {
        /* newer than the state it removes, even when this clock is behind the one that wrote that state */
        int64_t now = pg_now_ms();
        rc = record_deletion(st, slug, now > updated ? now : updated + 1);
    }
    return tx_end(st, rc);
}

int pg_apps_store_forget(struct pg_apps_store *st, const char *slug, int64_t deleted_ms, int *removed)
{
    int rc, src;

    if (removed)
        *removed = 0;
    if (!st || !slug || deleted_ms <= 0)
        return PG_EINVAL;
    if ((rc = begin_write(st)))
        return rc;
    if (!slug_arg_ok(slug)) {
        seterr(st, "slug: expected a slug");
        return PG_EINVAL;
    }
    if ((rc = tx(st, "BEGIN IMMEDIATE")))
        return rc;
    sqlite3_stmt *s = st->stmt[S_FORGET];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, deleted_ms);
    src = sqlite3_step(s);
    stmt_done(s);
    if (src != SQLITE_DONE)
        rc = db_fail(st, src);
    else if (removed)
        *removed = sqlite3_changes(st->db) > 0;
    if (rc == 0)
        rc = record_deletion(st, slug, deleted_ms);
    if ((rc = tx_end(st, rc)) != 0 && removed)
        *removed = 0;
    return rc;
}

int pg_apps_store_deleted(struct pg_apps_store *st, const char *slug, int64_t *deleted_ms)
{
    int rc = PG_ENOTFOUND, src;

    if (!st || !slug || !deleted_ms)
        return PG_EINVAL;
    st->err[0] = '\0';
    if (st->readonly)
        return PG_ENOTFOUND; /* the statement is prepared for writers only: a reader may predate the table */
    sqlite3_stmt *s = st->stmt[S_DELETED];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        *deleted_ms = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(st, src);
    }
    stmt_done(s);
    return rc;
}

int pg_apps_store_data_version(struct pg_apps_store *st, int64_t *v)
{
    sqlite3_stmt *s;
    int rc = 0, src;

    if (!st || !v)
        return PG_EINVAL;
    st->err[0] = '\0';
    s = st->stmt[S_DATA_VERSION];
    src = sqlite3_step(s);
    if (src == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    else
        rc = db_fail(st, src);
    stmt_done(s);
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
        const char *slug = col_text(s, C_SLUG), *key = col_text(s, C_KEY), *secret = col_text(s, C_SECRET);
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
            seterr(st, "apps store: app \"%.64s\": %s", slug, why);
            goto out;
        }
        arr[count - 1].active = sqlite3_column_int(s, C_ACTIVE) != 0;
        arr[count - 1].require_auth = sqlite3_column_int(s, C_REQUIRE_AUTH) != 0;
    }
    if (src != SQLITE_DONE) {
        rc = db_fail(st, src);
        goto out;
    }
    *out = arr;
    *n = count;
    arr = NULL;
    count = 0;
out:
    if (rc == PG_ENOMEM && !st->err[0])
        seterr(st, "apps store: out of memory");
    stmt_done(s);
    pg_apps_store_free_creds(arr, count);
    return rc;
}

int pg_apps_store_revoke(struct pg_apps_store *st, const char *app, const char *kind, const char *value,
                         int64_t expires_ms)
{
    sqlite3_stmt *s;
    int rc, src;

    if (!st || !app || !kind || !value)
        return PG_EINVAL;
    if ((rc = begin_write(st)))
        return rc;
    if (strcmp(kind, "client") != 0 && strcmp(kind, "jti") != 0) {
        seterr(st, "revocation kind: expected \"client\" or \"jti\"");
        return PG_EINVAL;
    }
    if (!*value || strlen(value) > PG_REVOKED_VALUE_MAX || !pg_utf8_valid(value, strlen(value))) {
        seterr(st, "%s: expected 1-%d bytes of UTF-8", kind, PG_REVOKED_VALUE_MAX);
        return PG_EINVAL;
    }
    /* Expired entries go first, so the table stays as small as the live revocations. */
    s = st->stmt[S_PURGE];
    sqlite3_bind_int64(s, 1, pg_now_ms());
    src = sqlite3_step(s);
    stmt_done(s);
    if (src != SQLITE_DONE)
        return db_fail(st, src);
    s = st->stmt[S_REVOKE];
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, expires_ms);
    src = sqlite3_step(s);
    stmt_done(s);
    return src == SQLITE_DONE ? 0 : db_fail(st, src);
}

int pg_apps_store_revocations(struct pg_apps_store *st, int64_t now_ms, json_t **out)
{
    sqlite3_stmt *s;
    json_t *arr, *r;
    int rc = 0, src;

    if (!st || !out)
        return PG_EINVAL;
    *out = NULL;
    st->err[0] = '\0';
    if (!(arr = json_array()))
        return PG_ENOMEM;
    s = st->stmt[S_REVOKED];
    sqlite3_bind_int64(s, 1, now_ms);
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        r = json_pack("{s:s?, s:s?, s:s?, s:I}", "app", col_text(s, 0), "kind", col_text(s, 1), "value",
                      col_text(s, 2), "expires_ms", (json_int_t)sqlite3_column_int64(s, 3));
        if (!r || json_array_append_new(arr, r)) {
            rc = PG_ENOMEM;
            seterr(st, "apps store: out of memory");
            break;
        }
    }
    if (!rc && src != SQLITE_DONE)
        rc = db_fail(st, src);
    stmt_done(s);
    if (rc)
        json_decref(arr);
    else
        *out = arr;
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
    if ((rc = begin_write(st)))
        return rc;
    const char *slug = json_string_value(json_object_get(app, "slug"));
    const char *key = json_string_value(json_object_get(app, "key"));
    const char *secret = json_string_value(json_object_get(app, "secret"));
    json_t *push = json_object_get(app, "push_token");
    json_t *updated = json_object_get(app, "updated_ms");
    if (!slug || pg_apps_slugify(slug, slug_of_slug) || strcmp(slug, slug_of_slug) != 0 || slug_reserved(st, slug)) {
        seterr(st, "slug: expected a slug that is not reserved");
        return PG_EINVAL;
    }
    if (!token_valid(key, 255) || !token_valid(secret, 255) ||
        (push && !json_is_null(push) && !token_valid(json_string_value(push), 255))) {
        seterr(st, "key, secret and push_token: expected 1-255 printable characters");
        return PG_EINVAL;
    }
    if (!json_is_integer(updated) || json_integer_value(updated) <= 0) {
        seterr(st, "updated_ms: expected the time of the app's last change (ms)");
        return PG_EINVAL;
    }
    /* name, active, require_auth and allowed_origins are checked as an update would check them */
    if (!(fields = json_pack("{s:O?, s:O?, s:O?, s:O?}", "name", json_object_get(app, "name"), "active",
                             json_object_get(app, "active"), "require_auth", json_object_get(app, "require_auth"),
                             "allowed_origins", json_object_get(app, "allowed_origins")))) {
        seterr(st, "apps store: out of memory");
        return PG_ENOMEM;
    }
    if ((rc = parse_changes(st, fields, &c)))
        goto out;
    if (!c.name || c.active < 0 || c.require_auth < 0) {
        seterr(st, "an app needs name, active and require_auth");
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
    stmt_done(s);
    if (src != SQLITE_DONE) {
        rc = (src & 0xff) == SQLITE_CONSTRAINT ? PG_EEXIST : db_fail(st, src);
        if (rc == PG_EEXIST)
            seterr(st, "app \"%s\": its key belongs to another app in this store", slug);
        goto out;
    }
    if (changed)
        *changed = sqlite3_changes(st->db) > 0;
out:
    free(c.origins);
    json_decref(fields);
    return rc;
}
