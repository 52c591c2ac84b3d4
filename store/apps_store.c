/*
 * The apps store's file and connection: opening (creating the file private and the schema in WAL mode for a writer,
 * checking the schema version for a reader), the prepared statements, errors, transactions and SQLite's
 * data_version. The tables themselves are read and written by app_rows.c (apps), deletions.c (deletions and their
 * tombstones) and revocations.c; all of them share struct pg_apps_store through store_internal.h.
 *
 * Schema (user_version 1): apps (one row per app, slug and key unique), revocations (app, kind, value) until
 * expires_ms, deletions (the latest deletion of each slug, replication's tombstones).
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store_internal.h"

#define SCHEMA_VERSION 1
/* Long enough to ride out another process's write transaction, short enough to answer an admin request. */
#define BUSY_TIMEOUT_MS 5000
#define BUSY_RETRY_MS 10 /* opening: the pause between two tries of a setup SQLite refused as busy */

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

void pg__store_seterr(struct pg_apps_store *st, const char *fmt, ...)
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

int pg__store_fail(struct pg_apps_store *st, int rc)
{
    pg__store_seterr(st, "apps store: %s", sqlite3_errmsg(st->db));
    return map_sqlite(rc);
}

/* Leave a statement ready for its next use; a statement left mid-step would pin a read snapshot. */
void pg__store_done(sqlite3_stmt *s)
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

/*
 * What opening does to the database: read-write, WAL (readers in other processes, the broker plugin, never block
 * the admin API's writes; *mode is the journal mode then), the schema and its version; then the version in
 * *version. Idempotent. An SQLite result code.
 */
static int setup(sqlite3 *db, int readonly, char *mode, size_t modelen, int64_t *version)
{
    int src;
    if (!readonly) {
        if ((src = run_once(db, "PRAGMA journal_mode = WAL", mode, modelen, NULL)) != SQLITE_OK)
            return src;
        if (strcasecmp(mode, "wal") != 0)
            return SQLITE_OK; /* refused by the caller */
        if ((src = sqlite3_exec(db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK) /* several statements */
            return src;
    }
    if ((src = run_once(db, "PRAGMA user_version", NULL, 0, version)) != SQLITE_OK)
        return src;
    if (*version == 0 && !readonly) {
        if ((src = run_once(db, "PRAGMA user_version = 1", NULL, 0, NULL)) != SQLITE_OK)
            return src;
        *version = SCHEMA_VERSION;
    }
    return SQLITE_OK;
}

int pg_apps_store_open(const char *path, int readonly, struct pg_apps_store **out, char *err, size_t errlen)
{
    struct pg_apps_store *st = NULL;
    char mode[16] = "";
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
            pg__store_seterr(st, "%s: cannot create apps store: %s", path, strerror(errno));
            rc = PG_EIO;
            goto out;
        }
        close(fd);
    }
    src = sqlite3_open_v2(path, &st->db, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, NULL);
    if (src != SQLITE_OK) {
        int sys = st->db ? sqlite3_system_errno(st->db) : 0;
        pg__store_seterr(st, "%s: cannot open apps store: %s%s%s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory",
               sys ? ": " : "", sys ? strerror(sys) : "");
        rc = map_sqlite(src) == PG_ENOMEM ? PG_ENOMEM : PG_EIO;
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);

    /*
     * Several processes open the store at once when a gateway with workers starts, beside the broker plugin's
     * reader. The busy timeout does not cover every lock conflict of this setup: SQLite answers SQLITE_BUSY at once,
     * without its busy handler, where waiting could deadlock (two connections that read the schema both wanting to
     * write it, a journal mode switch). The setup is idempotent, so it is tried again until BUSY_TIMEOUT_MS.
     */
    for (int waited = 0;; waited += BUSY_RETRY_MS) {
        src = setup(st->db, readonly, mode, sizeof mode, &version);
        if ((src & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS)
            break;
        sqlite3_sleep(BUSY_RETRY_MS);
    }
    if (src != SQLITE_OK)
        goto db_error;
    if (!readonly && strcasecmp(mode, "wal") != 0) {
        pg__store_seterr(st, "%s: apps store: cannot switch to WAL mode (journal mode is %s)", path, mode);
        rc = PG_EIO;
        goto out;
    }
    if (version == 0) {
        pg__store_seterr(st, "%s: not a pushgate apps store (open it read-write once to create it)", path);
        rc = PG_EIO;
        goto out;
    }
    if (version > SCHEMA_VERSION) {
        pg__store_seterr(st, "%s: apps store schema version %lld is newer than this program's (%d)", path, (long long)version,
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
    pg__store_seterr(st, "%s: apps store: %s", path, sqlite3_errmsg(st->db));
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

int pg__store_slug_reserved(const struct pg_apps_store *st, const char *slug)
{
    if (pg_app_id_reserved(slug)) /* slugs are URL segments next to the gateway's own routes */
        return 1;
    return st->broker_user && !strcasecmp(slug, st->broker_user);
}

/* Every write starts here: clears the last error, refuses a read-only store. */
int pg__store_begin_write(struct pg_apps_store *st)
{
    st->err[0] = '\0';
    if (!st->readonly)
        return 0;
    pg__store_seterr(st, "apps store is open read-only");
    return PG_EDENIED;
}

/* Runs a transaction's BEGIN IMMEDIATE, COMMIT or ROLLBACK. */
int pg__store_tx(struct pg_apps_store *st, const char *sql)
{
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? 0 : pg__store_fail(st, src);
}

/* Ends the caller's transaction: COMMIT when rc is 0, else (or when COMMIT fails) ROLLBACK, keeping the first error. */
int pg__store_tx_end(struct pg_apps_store *st, int rc)
{
    if (rc == 0 && (rc = pg__store_tx(st, "COMMIT")) == 0)
        return 0;
    char why[sizeof st->err];
    snprintf(why, sizeof why, "%s", st->err);
    pg__store_tx(st, "ROLLBACK");
    snprintf(st->err, sizeof st->err, "%s", why);
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
        rc = pg__store_fail(st, src);
    pg__store_done(s);
    return rc;
}
