/*
 * Deletions: an app removed here (pg_apps_store_delete) or on another store (pg_apps_store_forget, replicated) leaves
 * a record of when, so that no older copy of the app is ever stored again (the S_PUT statement compares with it).
 * The row and its record change in one transaction.
 */
#include <sqlite3.h>
#include <stdio.h>

#include "store_internal.h"

/* Records the deletion of slug at deleted_ms (the later one stays). Inside the caller's transaction. */
static int record_deletion(struct pg_apps_store *st, const char *slug, int64_t deleted_ms)
{
    sqlite3_stmt *s = st->stmt[S_TOMBSTONE];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, deleted_ms);
    int src = sqlite3_step(s);
    pg__store_done(s);
    return src == SQLITE_DONE ? 0 : pg__store_fail(st, src);
}

int pg_apps_store_delete(struct pg_apps_store *st, const char *slug)
{
    sqlite3_stmt *s = NULL;
    int rc = 0, src, found = 0;
    int64_t updated = 0;

    if (!st || !slug)
        return PG_EINVAL;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    if (!pg__store_slug_arg_ok(slug)) {
        pg__store_seterr(st, "no such app");
        return PG_ENOTFOUND;
    }
    /* the row and its deletion record go together or not at all */
    if ((rc = pg__store_tx(st, "BEGIN IMMEDIATE")))
        return rc;
    s = st->stmt[S_DELETE];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        found = 1;
        updated = sqlite3_column_int64(s, 0);
    }
    pg__store_done(s);
    if (src != SQLITE_DONE) {
        rc = pg__store_fail(st, src);
    } else if (!found) {
        pg__store_seterr(st, "no app with slug \"%s\"", slug);
        rc = PG_ENOTFOUND;
    } else {
        /* newer than the state it removes, even when this clock is behind the one that wrote that state */
        int64_t now = pg_now_ms();
        rc = record_deletion(st, slug, now > updated ? now : updated + 1);
    }
    return pg__store_tx_end(st, rc);
}

int pg_apps_store_forget(struct pg_apps_store *st, const char *slug, int64_t deleted_ms, int *removed)
{
    int rc, src;

    if (removed)
        *removed = 0;
    if (!st || !slug || deleted_ms <= 0)
        return PG_EINVAL;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    if (!pg__store_slug_arg_ok(slug)) {
        pg__store_seterr(st, "slug: expected a slug");
        return PG_EINVAL;
    }
    if ((rc = pg__store_tx(st, "BEGIN IMMEDIATE")))
        return rc;
    sqlite3_stmt *s = st->stmt[S_FORGET];
    sqlite3_bind_text(s, 1, slug, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, deleted_ms);
    src = sqlite3_step(s);
    pg__store_done(s);
    if (src != SQLITE_DONE)
        rc = pg__store_fail(st, src);
    else if (removed)
        *removed = sqlite3_changes(st->db) > 0;
    if (rc == 0)
        rc = record_deletion(st, slug, deleted_ms);
    if ((rc = pg__store_tx_end(st, rc)) != 0 && removed)
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
        rc = pg__store_fail(st, src);
    }
    pg__store_done(s);
    return rc;
}
