/*
 * Apps store: the apps created through the admin API, kept in one SQLite file.
 *
 * The gateway opens it read-write (it creates the file and the schema); the
 * Mosquitto plugin and other processes open it read-only and poll
 * pg_apps_store_data_version() to notice another connection's commit without
 * re-reading the table. The file is created with mode 0600 because it holds
 * app secrets: a reader running as another user needs it (and the directory,
 * for the WAL's -shm file) made accessible by the operator.
 *
 * A store handle is used by one thread at a time. Functions return 0 or a
 * negative PG_E* code; after a failure pg_apps_store_errmsg() says why in
 * words fit for an HTTP error body or a log line (never a key or secret).
 *
 * App JSON, as returned by create/get/list/update (caller owns it, json_decref):
 *   {"id":1, "slug":"foo-app", "name":"Foo App", "key":"<20 chars>", "secret":"<40 chars>",
 *    "active":true, "require_auth":false, "allowed_origins":["https://example.com"],
 *    "push_token":"<40 chars>", "updated_ms":<ms>}
 *   push_token: X-AUTH-TOKEN of the per-user push API (null if none); updated_ms: time of the last change
 */
#ifndef PG_APPS_STORE_H
#define PG_APPS_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "app_id.h"
#include "pushgate_auth.h"

#define PG_APP_NAME_MAX 200   /* bytes of an app name */
#define PG_APP_SLUG_MAX PG_APP_ID_MAX /* bytes of a slug: slugs are app ids */
#define PG_APP_KEY_LEN 20     /* characters of a generated key */
#define PG_APP_SECRET_LEN 40  /* characters of a generated secret */
#define PG_APP_ORIGINS_MAX 64 /* entries of allowed_origins */
#define PG_APP_ORIGIN_MAX 255 /* bytes of one allowed origin */
#define PG_REVOKED_VALUE_MAX 256 /* bytes of a revoked client id or jti */

struct pg_apps_store;

/*
 * Open the store at `path`. Read-write (readonly == 0) creates the file (mode
 * 0600) and the schema when missing and switches the file to WAL mode;
 * read-only needs an existing store. err receives "path: reason" on failure.
 * Errors: PG_EIO (cannot open, not an apps store, newer schema), PG_ENOMEM,
 * PG_EINVAL (NULL arguments).
 */
int pg_apps_store_open(const char *path, int readonly, struct pg_apps_store **out, char *err, size_t errlen);
void pg_apps_store_close(struct pg_apps_store *st);

/* Reason of the last failed call on `st` (empty string if none). Valid until the next call. */
const char *pg_apps_store_errmsg(const struct pg_apps_store *st);

/*
 * How long a call waits for another connection's lock before failing with
 * PG_EBUSY (5 s unless set). The broker plugin reads on the
 * broker's only thread and sets it low: it tries again on its next tick.
 */
int pg_apps_store_set_busy_timeout(struct pg_apps_store *st, int ms);

/*
 * A name no app may take as its slug, besides the reserved route names: the
 * gateway's broker username, so an app's credentials can never be mistaken for
 * the gateway's account. Copied; NULL or "" clears it.
 */
int pg_apps_store_set_broker_user(struct pg_apps_store *st, const char *username);

/*
 * Slug of `name`: ASCII letters lowercased, digits kept, every run of other
 * bytes becomes one '-', no '-' at either end, at most PG_APP_SLUG_MAX bytes.
 * out needs PG_APP_SLUG_MAX + 1 bytes. PG_EINVAL when nothing is left.
 */
int pg_apps_slugify(const char *name, char out[PG_APP_SLUG_MAX + 1]);

/*
 * Create an app named `name` (1..PG_APP_NAME_MAX bytes of UTF-8, no control
 * characters) with a fresh random key and secret; active, require_auth off, no
 * allowed origins. Errors: PG_EINVAL (bad name, empty slug, reserved slug),
 * PG_EEXIST (slug taken), PG_EDENIED (read-only store), PG_EBUSY, PG_EIO.
 */
int pg_apps_store_create(struct pg_apps_store *st, const char *name, json_t **out_app);

/* Every app, oldest first, as a JSON array. */
int pg_apps_store_list(struct pg_apps_store *st, json_t **out_array);

/* One app by slug; PG_ENOTFOUND if there is none. */
int pg_apps_store_get(struct pg_apps_store *st, const char *slug, json_t **out);

/*
 * Apply `changes`, a JSON object that may set "name" (string, as for create),
 * "active" (bool), "require_auth" (bool), "allowed_origins" (array of at most
 * PG_APP_ORIGINS_MAX non-empty strings, or null for none). Any other member,
 * including the immutable id/slug/key/secret, or a wrong type is PG_EINVAL and
 * changes nothing. *out (may be NULL) receives the app as stored afterwards.
 * PG_ENOTFOUND if there is no such app.
 */
int pg_apps_store_update(struct pg_apps_store *st, const char *slug, json_t *changes, json_t **out);

/*
 * Remove an app; PG_ENOTFOUND if there is none. The deletion is recorded
 * (at the current time, or just after the app's updated_ms if that is later)
 * so that no older copy of the app is stored again (pg_apps_store_put).
 */
int pg_apps_store_delete(struct pg_apps_store *st, const char *slug);

/*
 * A deletion replicated from another store (a tombstone of deleted_ms):
 * removes the app if it is not newer than that (*removed, may be NULL, says
 * whether it did) and records the deletion either way. Errors: PG_EINVAL,
 * PG_EDENIED, PG_EBUSY, PG_EIO.
 */
int pg_apps_store_forget(struct pg_apps_store *st, const char *slug, int64_t deleted_ms, int *removed);

/* When slug was last deleted (recorded by delete or forget): 0 and *deleted_ms, or PG_ENOTFOUND. */
int pg_apps_store_deleted(struct pg_apps_store *st, const char *slug, int64_t *deleted_ms);

/*
 * SQLite's data_version of this connection: it changes whenever another
 * connection (this process or another) commits to the file. Cheap enough to
 * call on every broker tick.
 */
int pg_apps_store_data_version(struct pg_apps_store *st, int64_t *v);

/*
 * Every app as credentials (id = slug, HS256, active and require_auth as
 * stored). *out is an array of *n entries owned by the caller; release it with
 * pg_apps_store_free_creds(). *out is NULL when there are no apps.
 */
int pg_apps_store_load_creds(struct pg_apps_store *st, struct pg_app_creds **out, size_t *n);
void pg_apps_store_free_creds(struct pg_app_creds *creds, size_t n);

/*
 * Revoke a client id (kind "client") or a token id (kind "jti") of app `app`
 * (any app id, from the store or a config file) until expires_ms (wall clock).
 * Revoking again keeps the later expiry. Expired revocations are purged here.
 * Errors: PG_EINVAL (bad kind, empty or over PG_REVOKED_VALUE_MAX, not UTF-8),
 * PG_EDENIED (read-only store), PG_EBUSY, PG_EIO.
 */
int pg_apps_store_revoke(struct pg_apps_store *st, const char *app, const char *kind, const char *value,
                         int64_t expires_ms);
/*
 * Store `app` (app JSON as above, e.g. replicated from another store) under
 * its slug, inserting or replacing every field but the id, when its
 * updated_ms is newer than the stored row's and than the slug's last
 * deletion (deletion wins over every older state); *changed (may be NULL) says
 * whether the row was written. Fields are validated as for create and
 * update. Errors: PG_EINVAL, PG_EEXIST (its key belongs to another slug here),
 * PG_EDENIED, PG_EBUSY, PG_EIO.
 */
int pg_apps_store_put(struct pg_apps_store *st, json_t *app, int *changed);
/* Revocations still in force at now_ms: [{"app","kind","value","expires_ms"}], oldest first. */
int pg_apps_store_revocations(struct pg_apps_store *st, int64_t now_ms, json_t **out);

#endif
