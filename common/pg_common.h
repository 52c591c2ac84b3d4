/*
 * pushgate common: error codes, the configuration-file reader and the rules
 * for names carried in MQTT topics and strings, shared by the gateway and the
 * Mosquitto plugin. No event loop, no logging, no exit(). The MQTT topic
 * scheme itself is pg_topic.h; the options both read, pg_options.h.
 */
#ifndef PG_COMMON_H
#define PG_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Every pushgate function returns 0 on success or one of these (negative). */
enum pg_err {
    PG_OK = 0,
    PG_EINVAL = -1,   /* malformed input */
    PG_ENOMEM = -2,   /* allocation failed */
    PG_EIO = -3,      /* file or socket error */
    PG_EAUTH = -4,    /* credential invalid (bad signature, wrong alg, bad claims) */
    PG_EEXPIRED = -5, /* credential expired or not yet valid */
    PG_EDENIED = -6,  /* credential valid, action not permitted */
    PG_ENOTFOUND = -7,
    PG_ELIMIT = -8,   /* a configured bound was exceeded */
    PG_EBUSY = -9,    /* try later (broker down, queue full) */
    PG_ETIMEDOUT = -10, /* no answer in time (broker acknowledgement) */
    PG_EEXIST = -11,    /* the name is taken (duplicate app slug) */
};

/* Static string naming an error code; never NULL. */
const char *pg_strerror(int err);

/*
 * Configuration files are line based:
 *
 *     # comment
 *     name = value
 *     [app demo]
 *     secret = ...
 *
 * Keys before the first section belong to section type "" (global). A section
 * header is "[type name]". Values run to end of line, surrounding blanks
 * trimmed; a value may be wrapped in double quotes to keep blanks.
 *
 * pg_conf_read() calls `cb` for every section header (key == NULL) and every
 * key. A non-zero return from `cb` stops reading and is returned. On a syntax
 * error it writes "file:line: message" into err and returns PG_EINVAL.
 */
typedef int (*pg_conf_cb)(void *ud, const char *section_type, const char *section_name, const char *key,
                          const char *value, int line);
int pg_conf_read(const char *path, pg_conf_cb cb, void *ud, char *err, size_t errlen);

/*
 * Calls cb for every username of a Mosquitto password file (`user:hash` lines,
 * as mosquitto_passwd writes them; blank and `#` lines skipped, blanks around
 * the name trimmed as Mosquitto does). What follows the ':' (the hash) is
 * skipped, never parsed or kept.
 * A non-zero return from cb stops reading and is returned; a file that cannot
 * be opened or read is PG_EIO with the reason in err.
 */
typedef int (*pg_passwd_cb)(void *ud, const char *username);
int pg_passwd_users(const char *path, pg_passwd_cb cb, void *ud, char *err, size_t errlen);

/* Parse helpers used by option tables; each returns 0 or PG_EINVAL. */
int pg_parse_bool(const char *s, int *out);
int pg_parse_size(const char *s, uint64_t *out); /* "64k", "1m", "512" */
int pg_parse_int(const char *s, long long min, long long max, long long *out);

/* ---- names in MQTT topics and strings (mqtt_names.c) ---- */

/*
 * A channel name is 1..max_bytes of pg_mqtt_utf8_valid text; '+' and '#' only
 * when allow_wildcards (and then only as whole MQTT levels, '#' last).
 * Returns 0 or PG_EINVAL.
 */
int pg_channel_check(const char *name, size_t len, size_t max_bytes, int allow_wildcards);
/* 1 if buf[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int pg_utf8_valid(const void *buf, size_t len);
/* The longest MQTT string (a length-prefixed UTF-8 string, MQTT 3.1.1 §1.5.3). */
#define PG_MQTT_STRING_MAX 65535
/*
 * 1 if buf[0..len) is a string an MQTT broker accepts in a topic or a string
 * property: valid UTF-8 without NUL, C0/C1 control characters or Unicode
 * noncharacters, at most PG_MQTT_STRING_MAX bytes (what libmosquitto's
 * mosquitto_validate_utf8() accepts).
 */
int pg_mqtt_utf8_valid(const void *buf, size_t len);
/* 1 if s[0..len) can be one topic level: non-empty, no '/', '+', '#', and pg_mqtt_utf8_valid. */
int pg_topic_level_valid(const char *s, size_t len);

/* Milliseconds since the epoch (CLOCK_REALTIME) and monotonic milliseconds. */
int64_t pg_now_ms(void);
int64_t pg_mono_ms(void);

#endif
