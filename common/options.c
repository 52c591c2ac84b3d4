/*
 * Parsers and rules of the options the gateway and the broker plugin share (pg_options.h). The gateway's table
 * parses every numeric option of its own through pg_opt_number() too, so a number means the same in any option.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_common.h"
#include "pg_options.h"
#include "pg_topic.h"

int pg_opt_number(enum pg_opt_type type, long long min, long long max, const char *value, long long *out, char *err,
                  size_t errlen)
{
    long long v;
    uint64_t size;

    switch (type) {
    case PG_OPT_INT:
        if (pg_parse_int(value, min, max, &v) != 0) {
            snprintf(err, errlen, "expected an integer in %lld..%lld, got \"%.64s\"", min, max, value);
            return PG_EINVAL;
        }
        *out = v;
        return 0;
    case PG_OPT_SIZE:
        if (pg_parse_size(value, &size) != 0 || size < (uint64_t)min || size > (uint64_t)max) {
            snprintf(err, errlen, "expected a size (e.g. 64k) in %lld..%lld bytes, got \"%.64s\"", min, max, value);
            return PG_EINVAL;
        }
        *out = (long long)size;
        return 0;
    case PG_OPT_STR:
        break;
    }
    snprintf(err, errlen, "not a number option");
    return PG_EINVAL;
}

int pg_opt_check_topic_root(const char *value, char *err, size_t errlen)
{
    if (pg_topic_root_valid(value))
        return 0;
    snprintf(err, errlen, PG_TOPIC_ROOT_RULE ", got \"%.64s\"", value ? value : "");
    return PG_EINVAL;
}

int pg_opt_check_device_channel(const char *value, long long max_channel_bytes, char *err, size_t errlen)
{
    if (!value || !value[0] || pg_channel_check(value, strlen(value), (size_t)max_channel_bytes, 0) == 0)
        return 0;
    snprintf(err, errlen, "expected a channel name without wildcards of at most max_channel_bytes bytes (or empty for "
                          "no device events)");
    return PG_EINVAL;
}

int pg_opt_path(const char *base_dir, const char *value, char **out)
{
    size_t n;

    if (!value[0] || value[0] == '/' || !base_dir) {
        *out = strdup(value);
        return *out ? 0 : PG_ENOMEM;
    }
    n = strlen(base_dir) + strlen(value) + 2;
    if (!(*out = malloc(n)))
        return PG_ENOMEM;
    snprintf(*out, n, "%s/%s", base_dir, value);
    return 0;
}
