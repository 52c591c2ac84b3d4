/*
 * The pushgate topic scheme (pg_topic.h): building, filtering and parsing every pushgate topic.
 *
 * Building goes through one table per kind (a list of pieces joined by '/'), so a topic and the filter that
 * receives it cannot drift apart; parsing walks the levels once, left to right, and never allocates: parts are
 * (pointer, length) pairs into the caller's topic. Only pg_topic_new() allocates (the string it returns). Nothing
 * here keeps state.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_common.h"
#include "pg_topic.h"

/* What a piece of a topic under construction is, and so how it is checked. */
enum piece_rule {
    P_LIT,   /* a fixed level of the scheme ("c", "_ctl", "+", ...): written as is */
    P_LEVEL, /* a caller's level: pg_topic_level_valid */
    P_TAIL,  /* a caller's tail: non-empty, its content is its owner's rule */
};

struct piece {
    const char *s;
    enum piece_rule rule;
};

/* The most pieces of any topic: root, _ctl, app, terminate, user. */
#define MAX_PIECES 5

struct shape {
    struct piece p[MAX_PIECES];
    size_t n;
};

static void add(struct shape *sh, const char *s, enum piece_rule rule)
{
    sh->p[sh->n].s = s;
    sh->p[sh->n].rule = rule;
    sh->n++;
}

int pg_topic_root_valid(const char *root)
{
    size_t n = root ? strnlen(root, PG_TOPIC_ROOT_MAX + 1) : 0;

    return n && n <= PG_TOPIC_ROOT_MAX && root[0] != '$' && pg_topic_level_valid(root, n);
}

/*
 * The pieces of kind's topic (filter == 0) or of its all-apps filter (filter == 1). For a topic, the caller's
 * parts a kind does not use must be NULL; *used says which were taken (1 app, 2 a, 4 b).
 */
static int shape_of(enum pg_topic_kind kind, int filter, const char *root, const char *app, const char *a,
                    const char *b, struct shape *sh, unsigned *used)
{
    /* in a filter, every app (or node, or id) is '+', every tail '#' */
    const char *any = "+", *rest = "#";

    sh->n = 0;
    *used = 0;
    if (kind == PG_TOPIC_DROPPED) {
        add(sh, PG_TOPIC_DROPPED_TOPIC, P_LIT);
        return 0;
    }
    add(sh, root, P_LIT); /* checked by the caller with pg_topic_root_valid() */
#define APP() (filter ? add(sh, any, P_LIT) : (*used |= 1, add(sh, app, P_LEVEL)))
#define A(rule, wild) (filter ? add(sh, wild, P_LIT) : (*used |= 2, add(sh, a, rule)))
    switch (kind) {
    case PG_TOPIC_CHANNEL:
    case PG_TOPIC_USER:
        APP();
        add(sh, kind == PG_TOPIC_CHANNEL ? "c" : "u", P_LIT);
        A(P_TAIL, rest);
        break;
    case PG_TOPIC_BROADCAST:
        APP();
        add(sh, "b", P_LIT);
        break;
    case PG_TOPIC_PRESENCE:
        APP();
        add(sh, "p", P_LIT);
        if (filter) {
            add(sh, rest, P_LIT); /* node and channel */
            break;
        }
        A(P_LEVEL, any);
        *used |= 4;
        add(sh, b, P_TAIL);
        break;
    case PG_TOPIC_DEVICE:
        APP();
        add(sh, "d", P_LIT);
        A(P_LEVEL, any);
        break;
    case PG_TOPIC_NODE:
    case PG_TOPIC_LOAD:
        add(sh, "_node", P_LIT);
        A(P_LEVEL, any);
        if (kind == PG_TOPIC_LOAD)
            add(sh, "load", P_LIT);
        break;
    case PG_TOPIC_TERMINATE:
        add(sh, "_ctl", P_LIT);
        APP();
        add(sh, "terminate", P_LIT);
        A(P_TAIL, any); /* see pg_topic_filter() */
        break;
    case PG_TOPIC_REVOKE:
        add(sh, "_ctl", P_LIT);
        APP();
        add(sh, "revoke", P_LIT);
        break;
    case PG_TOPIC_REG:
        add(sh, "_ctl", P_LIT);
        APP();
        add(sh, "reg", P_LIT);
        A(P_LEVEL, any);
        break;
    case PG_TOPIC_APP_RECORD:
        add(sh, "_ctl", P_LIT);
        add(sh, "apps", P_LIT);
        APP();
        break;
    default:
        return PG_EINVAL;
    }
#undef APP
#undef A
    return 0;
}

/* Checks and joins sh into buf (see pg_topic_build() for len, buf NULL and the result). */
static int join(const struct shape *sh, char *buf, size_t len)
{
    size_t need = 0, at = 0;

    for (size_t i = 0; i < sh->n; i++) {
        const char *s = sh->p[i].s;
        size_t n = s ? strlen(s) : 0;
        if ((sh->p[i].rule == P_LEVEL && !pg_topic_level_valid(s, n)) || (sh->p[i].rule == P_TAIL && !n))
            return PG_EINVAL;
        need += n + (i > 0);
    }
    if (need > PG_MQTT_STRING_MAX)
        return PG_ELIMIT;
    if (!buf && !len)
        return (int)need;
    if (!buf || need >= len)
        return PG_ELIMIT;
    for (size_t i = 0; i < sh->n; i++) {
        size_t n = strlen(sh->p[i].s);
        if (i > 0)
            buf[at++] = '/';
        memcpy(buf + at, sh->p[i].s, n);
        at += n;
    }
    buf[at] = '\0';
    return (int)need;
}

int pg_topic_build(char *buf, size_t len, const char *root, enum pg_topic_kind kind, const char *app, const char *a,
                   const char *b)
{
    struct shape sh;
    unsigned used;
    int rc;

    if (buf && len)
        buf[0] = '\0'; /* whatever happens next */
    if (kind != PG_TOPIC_DROPPED && !pg_topic_root_valid(root))
        return PG_EINVAL;
    if ((rc = shape_of(kind, 0, root, app, a, b, &sh, &used)) != 0)
        return rc;
    /* a part the kind has no place for is a caller's mistake, not something to drop silently */
    if ((app && !(used & 1)) || (a && !(used & 2)) || (b && !(used & 4)))
        return PG_EINVAL;
    return join(&sh, buf, len);
}

char *pg_topic_new(const char *root, enum pg_topic_kind kind, const char *app, const char *a, const char *b)
{
    int n = pg_topic_build(NULL, 0, root, kind, app, a, b);
    char *t = n < 0 ? NULL : malloc((size_t)n + 1);

    if (t && pg_topic_build(t, (size_t)n + 1, root, kind, app, a, b) != n) {
        free(t); /* cannot happen: the same parts measured just before */
        t = NULL;
    }
    return t;
}

int pg_topic_filter(char *buf, size_t len, const char *root, enum pg_topic_kind kind)
{
    struct shape sh;
    unsigned used;
    int rc;

    if (buf && len)
        buf[0] = '\0';
    if (kind != PG_TOPIC_DROPPED && !pg_topic_root_valid(root))
        return PG_EINVAL;
    if ((rc = shape_of(kind, 1, root, NULL, NULL, NULL, &sh, &used)) != 0)
        return rc;
    return join(&sh, buf, len);
}

/* ---- parsing ----------------------------------------------------------------------------------------- */

/* Moves past the next level of *p into *out; *p becomes NULL after the last level. 0 when there is none. */
static int next_level(const char **p, struct pg_topic_part *out)
{
    const char *s = *p, *slash;

    if (!s)
        return 0;
    slash = strchr(s, '/');
    out->s = s;
    out->len = slash ? (size_t)(slash - s) : strlen(s);
    *p = slash ? slash + 1 : NULL;
    return 1;
}

/* A level of a received topic: the broker checked its UTF-8; a wildcard means a filter, never a name. */
static int level_ok(const struct pg_topic_part *l)
{
    return l->len && !memchr(l->s, '+', l->len) && !memchr(l->s, '#', l->len);
}

static int lit(const struct pg_topic_part *l, const char *s)
{
    return pg_topic_part_is(l, s);
}

/* The rest of the topic, from *p, as a tail (non-empty); consumes it. */
static int take_tail(const char **p, struct pg_topic_part *out)
{
    if (!*p || !**p)
        return 0;
    out->s = *p;
    out->len = strlen(*p);
    *p = NULL;
    return 1;
}

/* The next level, which must be a level and the last one. */
static int take_last_level(const char **p, struct pg_topic_part *out)
{
    return next_level(p, out) && level_ok(out) && !*p;
}

/* {root}/_ctl/…: what follows _ctl is at *p. */
static enum pg_topic_kind parse_ctl(const char *p, struct pg_topic_ref *out)
{
    struct pg_topic_part l;
    const char *rest;

    if (!next_level(&p, &out->app) || !level_ok(&out->app))
        return PG_TOPIC_NONE;
    /* _ctl/apps/{slug}, when {slug} is one level; otherwise "apps" is read as an app id like any other */
    rest = p;
    if (lit(&out->app, "apps") && take_last_level(&rest, &l)) {
        out->app = l;
        return PG_TOPIC_APP_RECORD;
    }
    if (!next_level(&p, &l))
        return PG_TOPIC_NONE;
    if (lit(&l, "revoke") && !p)
        return PG_TOPIC_REVOKE;
    if (lit(&l, "reg") && take_last_level(&p, &out->name))
        return PG_TOPIC_REG;
    if (lit(&l, "terminate") && take_tail(&p, &out->name))
        return PG_TOPIC_TERMINATE;
    return PG_TOPIC_NONE;
}

/* {root}/{app}/…: the app level is out->app, what follows it is at *p. */
static enum pg_topic_kind parse_app(const char *p, struct pg_topic_ref *out)
{
    struct pg_topic_part k;

    if (!level_ok(&out->app) || !next_level(&p, &k) || k.len != 1)
        return PG_TOPIC_NONE;
    switch (k.s[0]) {
    case 'c':
        return take_tail(&p, &out->name) ? PG_TOPIC_CHANNEL : PG_TOPIC_NONE;
    case 'u':
        return take_tail(&p, &out->name) ? PG_TOPIC_USER : PG_TOPIC_NONE;
    case 'b':
        return !p ? PG_TOPIC_BROADCAST : PG_TOPIC_NONE;
    case 'd':
        return take_last_level(&p, &out->name) ? PG_TOPIC_DEVICE : PG_TOPIC_NONE;
    case 'p':
        if (next_level(&p, &out->node) && level_ok(&out->node) && take_tail(&p, &out->name))
            return PG_TOPIC_PRESENCE;
        return PG_TOPIC_NONE;
    default:
        return PG_TOPIC_NONE;
    }
}

enum pg_topic_kind pg_topic_parse(const char *root, const char *topic, struct pg_topic_ref *out)
{
    struct pg_topic_part first;
    enum pg_topic_kind kind = PG_TOPIC_NONE;
    const char *p;
    size_t rl;

    memset(out, 0, sizeof *out);
    if (!root || !topic)
        return PG_TOPIC_NONE;
    if (!strcmp(topic, PG_TOPIC_DROPPED_TOPIC))
        return out->kind = PG_TOPIC_DROPPED;
    rl = strlen(root);
    if (!rl || strncmp(topic, root, rl) != 0 || topic[rl] != '/')
        return PG_TOPIC_NONE;
    p = topic + rl + 1;
    next_level(&p, &first);
    if (lit(&first, "_node")) {
        struct pg_topic_part l;
        if (take_last_level(&p, &out->node))
            kind = PG_TOPIC_NODE;
        else if (out->node.len && level_ok(&out->node) && take_last_level(&p, &l) && lit(&l, "load"))
            kind = PG_TOPIC_LOAD;
    } else if (lit(&first, "_ctl")) {
        kind = parse_ctl(p, out);
    } else {
        out->app = first;
        kind = parse_app(p, out);
    }
    if (kind == PG_TOPIC_NONE)
        memset(out, 0, sizeof *out);
    return out->kind = kind;
}

int pg_topic_part_copy(const struct pg_topic_part *part, char *buf, size_t len)
{
    if (!buf || !len)
        return PG_ELIMIT;
    buf[0] = '\0';
    if (!part->s)
        return 0;
    if (part->len >= len)
        return PG_ELIMIT;
    memcpy(buf, part->s, part->len);
    buf[part->len] = '\0';
    return (int)part->len;
}

const char *pg_topic_kind_name(enum pg_topic_kind kind)
{
    static const char *const names[PG_TOPIC_KINDS] = {
        [PG_TOPIC_NONE] = "none",          [PG_TOPIC_CHANNEL] = "channel",     [PG_TOPIC_USER] = "user",
        [PG_TOPIC_BROADCAST] = "broadcast", [PG_TOPIC_PRESENCE] = "presence",  [PG_TOPIC_DEVICE] = "device",
        [PG_TOPIC_NODE] = "node",          [PG_TOPIC_LOAD] = "load",          [PG_TOPIC_TERMINATE] = "terminate", [PG_TOPIC_REVOKE] = "revoke",
        [PG_TOPIC_REG] = "reg",            [PG_TOPIC_APP_RECORD] = "app_record", [PG_TOPIC_DROPPED] = "dropped",
    };

    return (unsigned)kind < PG_TOPIC_KINDS ? names[kind] : "none";
}
