/*
 * libFuzzer harness for the configuration file: the input is the file's
 * bytes, read through the real reader (common/conf.c) and option table
 * (gateway/config.c) by pg_config_load(). The file is a memfd reached as
 * /proc/self/fd/N: nothing is written to disk. Inputs naming a *_file option
 * are skipped: the key file would be read relative to /proc/self/fd, i.e. from
 * one of the process's own descriptors (stdin may block).
 *
 * Invariants of an accepted configuration: every app id is 1-64 characters of
 * A-Z a-z 0-9 - _ . and unique; topic_root is one MQTT topic level; a second
 * load of the same bytes gives the same result (no hidden state).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_gw.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fd = memfd_create("pushgate-fuzz.conf", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pg_log_set_level((enum pg_log_level)(PG_LOG_ERROR + 1));
    return 0;
}

static void check(const struct pg_config *cfg)
{
    FUZZ_CHECK(cfg->topic_root[0] && !strpbrk(cfg->topic_root, "+#/"));
    for (size_t i = 0; i < cfg->napps; i++) {
        const char *id = cfg->apps[i].creds.id;
        size_t n = strlen(id);
        FUZZ_CHECK(n >= 1 && n <= 64 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == n);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(id, cfg->apps[j].creds.id) != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pg_config cfg, again;
    char err[512], err2[512];
    if (size > 65536 || memmem(data, size, "_file", 5))
        return 0;
    FUZZ_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
    int rc = pg_config_load(&cfg, path, 0, NULL, err, sizeof err);
    if (rc == 0)
        check(&cfg);
    else
        FUZZ_CHECK(rc < 0 && err[0]); /* a refusal always says why */
    int rc2 = pg_config_load(&again, path, 0, NULL, err2, sizeof err2);
    FUZZ_CHECK(rc2 == rc && (rc == 0 ? again.napps == cfg.napps : !strcmp(err, err2)));
    pg_config_free(&cfg);
    pg_config_free(&again);
    return 0;
}
