/*
 * Permission rules: the `permissions` claim maps Perl regexes to
 * {"publish": bool, "subscribe": bool}. Patterns come from tokens, i.e. from
 * whoever holds the app secret, but a buggy or hostile pattern must still not
 * stall the event loop or the broker: every match runs under PCRE2 match and
 * depth limits, and a limit hit counts as a denying match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "auth_internal.h"

/* Per action: -1 the pattern does not mention it, 0 denies, 1 grants. */
struct pg_rule {
    pcre2_code *re;
    signed char grant[2];
};

struct pg_rules {
    size_t n;
    pcre2_match_context *mctx;
    struct pg_rule *rule;
};

const struct pg_auth_limits pg_auth_limits_default = {
    .regex_match_limit = 10000,
    .regex_depth_limit = 200,
    .leeway_ms = 5000,
    .max_token_bytes = 8192,
    .max_rules = 64,
    .max_pattern_bytes = 512,
};

int pg__err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void pg_rules_free(pg_rules *rules)
{
    if (!rules)
        return;
    for (size_t i = 0; i < rules->n; i++)
        pcre2_code_free(rules->rule[i].re);
    pcre2_match_context_free(rules->mctx);
    free(rules->rule);
    free(rules);
}

static int parse_grants(const json_t *spec, signed char grant[2], char *err, size_t errlen)
{
    static const char *names[2] = {[PG_ACT_PUBLISH] = "publish", [PG_ACT_SUBSCRIBE] = "subscribe"};

    if (!json_is_object(spec))
        return pg__err(err, errlen, PG_EAUTH, "permissions: each pattern needs an object");
    for (int a = 0; a < 2; a++) {
        const json_t *v = json_object_get(spec, names[a]);
        if (!v) {
            grant[a] = -1;
        } else if (json_is_boolean(v)) {
            grant[a] = json_is_true(v) ? 1 : 0;
        } else {
            return pg__err(err, errlen, PG_EAUTH, "permissions: %s must be a boolean", names[a]);
        }
    }
    /* Other keys (history, presence, ...) are for later actions and ignored here. */
    return 0;
}

int pg__rules_from_json(const json_t *perms, const struct pg_auth_limits *lim, pg_rules **out, char *err, size_t errlen)
{
    pg_rules *rules = NULL;
    const char *pattern;
    json_t *spec;
    size_t n;
    int rc;

    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!lim)
        lim = &pg_auth_limits_default;
    if (!json_is_object(perms)) {
        rc = pg__err(err, errlen, PG_EAUTH, "permissions must be an object");
        goto out;
    }
    n = json_object_size(perms);
    if (n > lim->max_rules) {
        rc = pg__err(err, errlen, PG_EAUTH, "permissions: more than %zu patterns", lim->max_rules);
        goto out;
    }
    rules = calloc(1, sizeof(*rules));
    if (!rules || (n && !(rules->rule = calloc(n, sizeof(*rules->rule))))) {
        rc = PG_ENOMEM;
        goto out;
    }
    rules->mctx = pcre2_match_context_create(NULL);
    if (!rules->mctx) {
        rc = PG_ENOMEM;
        goto out;
    }
    /* Applies to JIT too; the depth limit only to the interpreter, JIT is bounded by its stack instead. */
    pcre2_set_match_limit(rules->mctx, lim->regex_match_limit);
    pcre2_set_depth_limit(rules->mctx, lim->regex_depth_limit);

    /* The iteration API takes a non-const object but only reads it. */
    json_object_foreach((json_t *)perms, pattern, spec)
    {
        struct pg_rule *r = &rules->rule[rules->n];
        size_t plen = strlen(pattern);
        int errcode;
        PCRE2_SIZE erroff;

        if (plen == 0 || plen > lim->max_pattern_bytes) {
            rc = pg__err(err, errlen, PG_EAUTH, "permissions: pattern length must be 1..%zu bytes",
                         lim->max_pattern_bytes);
            goto out;
        }
        rc = parse_grants(spec, r->grant, err, errlen);
        if (rc)
            goto out;
        /*
         * jansson only hands out valid UTF-8 without NUL, so PCRE2_UTF cannot
         * fail on encoding; \C would split characters, so it is refused.
         */
        r->re = pcre2_compile((PCRE2_SPTR)pattern, plen, PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C, &errcode, &erroff, NULL);
        if (!r->re) {
            if (errcode == PCRE2_ERROR_NOMEMORY) {
                rc = PG_ENOMEM;
            } else {
                PCRE2_UCHAR msg[120];
                if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
                    snprintf((char *)msg, sizeof(msg), "error %d", errcode);
                rc = pg__err(err, errlen, PG_EAUTH, "permissions: invalid pattern at offset %zu: %s", (size_t)erroff,
                             (const char *)msg);
            }
            goto out;
        }
        rules->n++;
        /* Without JIT support (or on its failure) the interpreter does the same job, just slower. */
        (void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);
    }
    *out = rules;
    rules = NULL;
    rc = 0;
out:
    pg_rules_free(rules);
    return rc;
}

int pg_rules_compile(const char *perms_json, size_t len, const struct pg_auth_limits *lim, pg_rules **out, char *err,
                     size_t errlen)
{
    json_t *perms = NULL;
    json_error_t jerr;
    int rc;

    if (!out)
        return PG_EINVAL;
    *out = NULL;
    if (!perms_json) {
        rc = pg__err(err, errlen, PG_EAUTH, "permissions: missing");
        goto out;
    }
    /* Duplicate patterns would make the decision depend on which copy the parser keeps. */
    perms = json_loadb(perms_json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!perms) {
        rc = pg__err(err, errlen, PG_EAUTH, "permissions: invalid JSON");
        goto out;
    }
    rc = pg__rules_from_json(perms, lim, out, err, errlen);
out:
    json_decref(perms);
    return rc;
}

pg_decision pg_rules_allow(const pg_rules *rules, pg_action action, const char *channel, size_t len)
{
    pcre2_match_data *md = NULL;
    int granted = 0, denied = 0;

    if (!rules || !channel || (action != PG_ACT_PUBLISH && action != PG_ACT_SUBSCRIBE))
        return PG_DENY;
    /* Only "did it match" matters, so one ovector pair is enough. */
    md = pcre2_match_data_create(1, NULL);
    if (!md)
        return PG_DENY;
    for (size_t i = 0; i < rules->n && !denied; i++) {
        const struct pg_rule *r = &rules->rule[i];
        int m;

        if (r->grant[action] < 0)
            continue;
        m = pcre2_match(r->re, (PCRE2_SPTR)channel, len, 0, 0, md, rules->mctx);
        if (m == PCRE2_ERROR_NOMATCH)
            continue;
        /* Match, limit hit, invalid UTF-8 subject or any other error: only a clean match may grant. */
        if (m < 0 || r->grant[action] == 0)
            denied = 1;
        else
            granted = 1;
    }
    pcre2_match_data_free(md);
    return granted && !denied ? PG_ALLOW : PG_DENY;
}
