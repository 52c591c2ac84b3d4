/*
 * What the broker plugin knows of Mosquitto's own security settings, read from Mosquitto's configuration file.
 *
 * Mosquitto 2.0 treats a check every plugin deferred as a refusal, while with no plugin at all it allows every
 * publish and subscribe (no acl_file) and any username (no password_file, allow_anonymous true). The plugin needs
 * these facts to give clients that are not apps what the broker would give them without it; Mosquitto has no API
 * for them, so its file is read here, the way Mosquitto reads it (one `key value` per line, `include_dir`).
 */
#ifndef PUSHGATE_BROKER_CONF_H
#define PUSHGATE_BROKER_CONF_H

#include <stddef.h>

struct pg_broker_conf {
    int acl_file;              /* an acl_file is set (globally or on some listener) */
    int password_file;         /* a password_file is set (globally or on some listener) */
    int allow_anonymous;       /* the last allow_anonymous: 1, 0, or -1 when never set (2.0: then false) */
    int per_listener_settings; /* per_listener_settings true */
    int plugins;               /* plugin / auth_plugin lines, this plugin's own included */
};

/*
 * The file the broker was started with (`-c` / `--config-file` in /proc/self/cmdline) into buf.
 * PG_ENOTFOUND: started without one; PG_EIO: the command line is unreadable; PG_ELIMIT: the path does not fit.
 */
int pg_broker_conf_path(char *buf, size_t len);

/*
 * Called with each password_file value (borrowed; as written, so a relative path is relative to the broker's working
 * directory, as Mosquitto opens it). A non-zero return stops the reading and is returned.
 */
typedef int (*pg_broker_path_cb)(void *ud, const char *path);

/*
 * Reads path and its include_dir files into *out; on_password_file (may be NULL) gets every password_file, global or
 * per listener. PG_EIO with the file in err when one cannot be read.
 */
int pg_broker_conf_read(const char *path, struct pg_broker_conf *out, pg_broker_path_cb on_password_file, void *ud,
                        char *err, size_t errlen);

#endif
