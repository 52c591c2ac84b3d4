/*
 * Shared between the files of libpushgate_apps_store; not part of its API (apps_store.h).
 *
 * struct pg_apps_store is one SQLite connection with its statements prepared once at open (a read-only store
 * prepares only the first S_NREAD). Every public call clears st->err first (or through pg__store_begin_write) and
 * leaves each statement it used reset (pg__store_done), so no read snapshot stays pinned between calls.
 */
#ifndef PG_STORE_INTERNAL_H
#define PG_STORE_INTERNAL_H

#include <sqlite3.h>

#include "apps_store.h"

/* Columns of every SELECT / RETURNING of an app row, in this order. */
#define APP_COLS "id, slug, name, key, secret, active, require_auth, allowed_origins, push_token, updated_ms"
enum { C_ID, C_SLUG, C_NAME, C_KEY, C_SECRET, C_ACTIVE, C_REQUIRE_AUTH, C_ORIGINS, C_PUSH_TOKEN, C_UPDATED };

/* Statements a read-only store needs come first: only those are prepared for it. */
enum stmt_id {
    S_GET, S_LIST, S_DATA_VERSION, S_REVOKED, S_NREAD,
    S_INSERT = S_NREAD, S_SLUG_EXISTS, S_UPDATE, S_DELETE, S_REVOKE, S_PURGE, S_PUT, S_FORGET, S_TOMBSTONE,
    S_DELETED, S_COUNT
};

struct pg_apps_store {
    sqlite3 *db;
    int readonly;
    sqlite3_stmt *stmt[S_COUNT];
    char *broker_user; /* a slug no app may take; NULL: none */
    char err[256];     /* pg_apps_store_errmsg() */
};

/* Fields of an app that a change (update, or a replicated row) may set. */
struct app_changes {
    const char *name; /* NULL: unchanged */
    int active;       /* -1: unchanged */
    int require_auth; /* -1: unchanged */
    int set_origins;  /* 1: replace allowed_origins with origins (NULL = none) */
    char *origins;    /* compact JSON array text, owned */
};

/* The reason of the current call's failure, for pg_apps_store_errmsg(). */
void pg__store_seterr(struct pg_apps_store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed SQLite call (result code rc): its message into st->err, and the PG_E* code it maps to. */
int pg__store_fail(struct pg_apps_store *st, int rc);
/* Leave a statement ready for its next use; a statement left mid-step would pin a read snapshot. */
void pg__store_done(sqlite3_stmt *s);
/* Every write starts here: clears the last error, refuses a read-only store (PG_EDENIED). */
int pg__store_begin_write(struct pg_apps_store *st);
/* Runs a transaction's BEGIN IMMEDIATE, COMMIT or ROLLBACK. */
int pg__store_tx(struct pg_apps_store *st, const char *sql);
/* Ends the caller's transaction: COMMIT when rc is 0, else (or when COMMIT fails) ROLLBACK, keeping the first error. */
int pg__store_tx_end(struct pg_apps_store *st, int rc);
/* 1 if no app may take slug: a reserved app id, or the gateway's broker account. */
int pg__store_slug_reserved(const struct pg_apps_store *st, const char *slug);
/* A slug longer than any stored one cannot match: answer without binding unbounded input. */
int pg__store_slug_arg_ok(const char *slug);
/* Checks changes (a JSON object) into *c; PG_EINVAL with the reason in st->err. c->origins is the caller's. */
int pg__store_parse_changes(struct pg_apps_store *st, json_t *changes, struct app_changes *c);

static inline const char *pg__store_col_text(sqlite3_stmt *s, int col)
{
    return (const char *)sqlite3_column_text(s, col);
}

#endif
