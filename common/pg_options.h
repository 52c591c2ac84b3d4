/*
 * The options of pushgate.conf that the gateway and the broker plugin both read, defined once: name, type, default
 * (as written in a file), bounds, and the rules a value must meet. The gateway's option table (gateway/config.c),
 * which also drives its environment variables, command line, --help and the README's reference, takes these rows
 * as they are and adds its help text; the plugin (plugin/plugin_conf.c) reads the same rows with the same parsers.
 * A limit or a default therefore cannot differ between the two readers of one file.
 *
 * A row is a macro expanding to the leading fields of an initializer, in the order of struct pg_opt_def:
 *     static const struct pg_opt_def d = {PG_SHARED_OPT_MAX_RULES};
 * so that a consumer's own row struct may begin with the same fields and add its own after them.
 *
 * App sections ([app ID]) are shared the same way: credentials through pg_app_creds_set() (auth/app_creds.c), the
 * id through pg_app_id_valid() (store/app_id.h).
 */
#ifndef PG_OPTIONS_H
#define PG_OPTIONS_H

#include <stddef.h>

enum pg_opt_type {
    PG_OPT_STR,  /* any string; rules of its own below */
    PG_OPT_INT,  /* integer within min..max */
    PG_OPT_SIZE, /* byte count ("512", "64k", "1m": pg_parse_size) within min..max */
};

struct pg_opt_def {
    const char *name;
    enum pg_opt_type type;
    const char *def; /* default, as it would be written in the file */
    long long min, max;
};

/*
 * The rows: name, type, default, min, max. Rules of the strings: topic_root, pg_opt_check_topic_root();
 * device_channel, pg_opt_check_device_channel(); apps_db and broker_password_file are paths, pg_opt_path();
 * broker_username is any name ("" for none).
 */
#define PG_SHARED_OPT_TOPIC_ROOT "topic_root", PG_OPT_STR, "pushgate", 0, 0
#define PG_SHARED_OPT_MAX_CHANNEL_BYTES "max_channel_bytes", PG_OPT_INT, "200", 1, 65535
#define PG_SHARED_OPT_DEVICE_CHANNEL "device_channel", PG_OPT_STR, "private-pushgate-devices", 0, 0
#define PG_SHARED_OPT_REGEX_MATCH_LIMIT "regex_match_limit", PG_OPT_INT, "10000", 100, 100000000
#define PG_SHARED_OPT_REGEX_DEPTH_LIMIT "regex_depth_limit", PG_OPT_INT, "200", 10, 10000000
#define PG_SHARED_OPT_JWT_LEEWAY_MS "jwt_leeway_ms", PG_OPT_INT, "5000", 0, 600000
#define PG_SHARED_OPT_MAX_TOKEN_BYTES "max_token_bytes", PG_OPT_SIZE, "8k", 64, 1048576
#define PG_SHARED_OPT_MAX_RULES "max_rules", PG_OPT_INT, "64", 1, 10000
#define PG_SHARED_OPT_APPS_DB "apps_db", PG_OPT_STR, "", 0, 0
#define PG_SHARED_OPT_BROKER_PASSWORD_FILE "broker_password_file", PG_OPT_STR, "", 0, 0
#define PG_SHARED_OPT_BROKER_USERNAME "broker_username", PG_OPT_STR, "pushgate", 0, 0

/*
 * Parses value as a PG_OPT_INT or PG_OPT_SIZE option bounded by min..max into *out. 0, or PG_EINVAL with
 * "expected …, got …" in err (the caller prefixes the option's name and where it came from).
 */
int pg_opt_number(enum pg_opt_type type, long long min, long long max, const char *value, long long *out, char *err,
                  size_t errlen);

/* topic_root: pg_topic_root_valid(). 0, or PG_EINVAL with the rule in err. */
int pg_opt_check_topic_root(const char *value, char *err, size_t errlen);

/*
 * device_channel, once max_channel_bytes is known too: empty (no device events) or a channel name without
 * wildcards (pg_channel_check). 0, or PG_EINVAL with the rule in err.
 */
int pg_opt_check_device_channel(const char *value, long long max_channel_bytes, char *err, size_t errlen);

/*
 * A file option written in the configuration file (apps_db, broker_password_file): "" (none) and absolute paths as
 * they are, a relative path relative to base_dir, the directory of the configuration file. *out is a new string.
 * 0 or PG_ENOMEM.
 */
int pg_opt_path(const char *base_dir, const char *value, char **out);

#endif
