/*
 * libFuzzer harness for permission rules and channel names. Input: the
 * channel name up to the first newline, then the `permissions` JSON.
 */
#include <stdint.h>
#include <string.h>

#include "pushgate_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t ch_len = nl ? (size_t)(nl - in) : size;
    const char *json = nl ? nl + 1 : "";
    size_t json_len = nl ? size - ch_len - 1 : 0;
    struct pg_auth_limits lim = pg_auth_limits_default;
    pg_rules *rules = NULL;
    char err[128];

    (void)pg_utf8_valid(in, ch_len);
    (void)pg_channel_check(in, ch_len, 200, 0);
    (void)pg_channel_check(in, ch_len, 200, 1);

    lim.max_rules = 16;
    if (pg_rules_compile(json, json_len, &lim, &rules, err, sizeof(err)) == 0) {
        (void)pg_rules_allow(rules, PG_ACT_PUBLISH, in, ch_len);
        (void)pg_rules_allow(rules, PG_ACT_SUBSCRIBE, in, ch_len);
        pg_rules_free(rules);
    }
    return 0;
}
