#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "workers.h"

int main(int argc, char **argv)
{
    struct pg_config cfg;
    char err[512] = "";
    const char *path = NULL;
    char *rest[256];
    int nrest = 0, check_only = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pg_config_usage(stdout, argv[0]);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("pushgate " PUSHGATE_VERSION "\n");
            return 0;
        } else if (!strcmp(argv[i], "--markdown-options")) {
            pg_config_markdown(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--check")) {
            check_only = 1;
        } else if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (++i >= argc) {
                fprintf(stderr, "pushgate: --config needs a file name\n");
                return 2;
            }
            path = argv[i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        } else if (nrest < (int)(sizeof rest / sizeof rest[0])) {
            rest[nrest++] = argv[i];
        } else {
            fprintf(stderr, "pushgate: too many arguments\n");
            return 2;
        }
    }
    rc = pg_config_load(&cfg, path, nrest, rest, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "pushgate: %s\n", err);
        pg_config_free(&cfg);
        return 2;
    }
    enum pg_log_level level = PG_LOG_INFO;
    pg_log_parse_level(cfg.log_level, &level);
    pg_log_set_level(level);
    pg_log_hook_lws();
    if (check_only) {
        printf("pushgate: configuration OK (%zu apps)\n", cfg.napps);
        pg_config_free(&cfg);
        return 0;
    }
    /* The 409 for app ids that are broker accounts needs their names; the broker plugin reads its broker's file. */
    if (cfg.admin_password[0] && !cfg.broker_password_file[0])
        pg_log(PG_LOG_WARN, "admin",
               "broker_password_file is not set: the admin API cannot refuse (409) apps named after broker accounts "
               "(the broker plugin still leaves those usernames to the broker's password_file)");
    rc = pg_workers_run(&cfg); /* in a worker too: its own server's status */
    pg_config_free(&cfg);
    return rc;
}
