/*
 * Revocations: client ids and token ids (jti) of an app refused until they expire. The gateway writes them (admin
 * API, other gateways' _ctl messages); the broker plugin reads those in force on its ticks.
 */
#include <sqlite3.h>
#include <string.h>

#include "store_internal.h"

int pg_apps_store_revoke(struct pg_apps_store *st, const char *app, const char *kind, const char *value,
                         int64_t expires_ms)
{
    sqlite3_stmt *s;
    int rc, src;

    if (!st || !app || !kind || !value)
        return PG_EINVAL;
    if ((rc = pg__store_begin_write(st)))
        return rc;
    if (strcmp(kind, "client") != 0 && strcmp(kind, "jti") != 0) {
        pg__store_seterr(st, "revocation kind: expected \"client\" or \"jti\"");
        return PG_EINVAL;
    }
    if (!*value || strlen(value) > PG_REVOKED_VALUE_MAX || !pg_utf8_valid(value, strlen(value))) {
        pg__store_seterr(st, "%s: expected 1-%d bytes of UTF-8", kind, PG_REVOKED_VALUE_MAX);
        return PG_EINVAL;
    }
    /* Expired entries go first, so the table stays as small as the live revocations. */
    s = st->stmt[S_PURGE];
    sqlite3_bind_int64(s, 1, pg_now_ms());
    src = sqlite3_step(s);
    pg__store_done(s);
    if (src != SQLITE_DONE)
        return pg__store_fail(st, src);
    s = st->stmt[S_REVOKE];
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, expires_ms);
    src = sqlite3_step(s);
    pg__store_done(s);
    return src == SQLITE_DONE ? 0 : pg__store_fail(st, src);
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
        r = json_pack("{s:s?, s:s?, s:s?, s:I}", "app", pg__store_col_text(s, 0), "kind", pg__store_col_text(s, 1), "value",
                      pg__store_col_text(s, 2), "expires_ms", (json_int_t)sqlite3_column_int64(s, 3));
        if (!r || json_array_append_new(arr, r)) {
            rc = PG_ENOMEM;
            pg__store_seterr(st, "apps store: out of memory");
            break;
        }
    }
    if (!rc && src != SQLITE_DONE)
        rc = pg__store_fail(st, src);
    pg__store_done(s);
    if (rc)
        json_decref(arr);
    else
        *out = arr;
    return rc;
}
