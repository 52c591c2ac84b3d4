#include "pg_common.h"

const char *pg_strerror(int err)
{
    switch (err) {
    case PG_OK: return "success";
    case PG_EINVAL: return "invalid input";
    case PG_ENOMEM: return "out of memory";
    case PG_EIO: return "I/O error";
    case PG_EAUTH: return "invalid credential";
    case PG_EEXPIRED: return "credential expired";
    case PG_EDENIED: return "not permitted";
    case PG_ENOTFOUND: return "not found";
    case PG_ELIMIT: return "limit exceeded";
    case PG_EBUSY: return "temporarily unavailable";
    case PG_ETIMEDOUT: return "timed out";
    case PG_EEXIST: return "already exists";
    default: return "unknown error";
    }
}
