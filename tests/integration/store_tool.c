/*
 * pushgate_store_tool: changes an apps store the way the gateway's admin API does (store/apps_store.c), so the
 * integration tests can drive the broker plugin's store reading without a gateway:
 *
 *   pushgate_store_tool DB create NAME                  -> the app's JSON on stdout
 *   pushgate_store_tool DB update SLUG CHANGES_JSON     -> the app's JSON on stdout
 *   pushgate_store_tool DB delete SLUG
 *   pushgate_store_tool DB revoke APP KIND VALUE TTL_MS (TTL_MS may be negative: already expired)
 *
 * The store is created (mode 0600, WAL) when missing. Exit status 0 on success, 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps_store.h"

static int print_app(json_t *app)
{
    char *text = json_dumps(app, JSON_COMPACT);
    int rc = text ? 0 : PG_ENOMEM;

    if (text)
        puts(text);
    free(text);
    json_decref(app);
    return rc;
}

int main(int argc, char **argv)
{
    struct pg_apps_store *st = NULL;
    json_t *app = NULL, *changes = NULL;
    char err[512];
    int rc;

    if (argc < 4) {
        fprintf(stderr, "usage: %s DB create NAME | update SLUG JSON | delete SLUG | revoke APP KIND VALUE TTL_MS\n",
                argv[0]);
        return 1;
    }
    if ((rc = pg_apps_store_open(argv[1], 0, &st, err, sizeof err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char *cmd = argv[2];
    if (!strcmp(cmd, "create") && argc == 4) {
        if ((rc = pg_apps_store_create(st, argv[3], &app)) == 0)
            rc = print_app(app);
    } else if (!strcmp(cmd, "update") && argc == 5) {
        if (!(changes = json_loads(argv[4], 0, NULL)))
            rc = PG_EINVAL;
        else if ((rc = pg_apps_store_update(st, argv[3], changes, &app)) == 0)
            rc = print_app(app);
    } else if (!strcmp(cmd, "delete") && argc == 4) {
        rc = pg_apps_store_delete(st, argv[3]);
    } else if (!strcmp(cmd, "revoke") && argc == 7) {
        rc = pg_apps_store_revoke(st, argv[3], argv[4], argv[5], pg_now_ms() + strtoll(argv[6], NULL, 10));
    } else {
        fprintf(stderr, "%s: unknown command or wrong number of arguments\n", cmd);
        rc = PG_EINVAL;
    }
    if (rc)
        fprintf(stderr, "%s: %s\n", pg_strerror(rc), pg_apps_store_errmsg(st));
    json_decref(changes);
    pg_apps_store_close(st);
    return rc ? 1 : 0;
}
