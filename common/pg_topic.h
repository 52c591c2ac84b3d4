/*
 * The pushgate MQTT topic scheme: the one place that knows how every pushgate topic is built and read back. The
 * gateway and the broker plugin both link it (libpushgate_common), which is why it lives here: it needs nothing but
 * the string rules of mqtt_names.c, no event loop, and allocates only the string pg_topic_new() returns.
 *
 * The README's table ("MQTT topics") and this module, row for row (`pushgate` there is `root` here, topic_root):
 *
 *   README topic                              kind                  parts filled by pg_topic_parse()
 *   pushgate/{app}/c/{channel}                PG_TOPIC_CHANNEL      app, name = channel (tail)
 *   pushgate/{app}/u/{user}                   PG_TOPIC_USER         app, name = user id (tail)
 *   pushgate/{app}/p/{node}/{channel}         PG_TOPIC_PRESENCE     app, node, name = channel (tail)
 *   pushgate/{app}/d/{client_id}              PG_TOPIC_DEVICE       app, name = MQTT client id (level)
 *   pushgate/_node/{node}                     PG_TOPIC_NODE         node
 *   pushgate/_node/{node}/load                PG_TOPIC_LOAD         node
 *   pushgate/{app}/b                          PG_TOPIC_BROADCAST    app
 *   pushgate/_ctl/{app}/terminate/{user}      PG_TOPIC_TERMINATE    app, name = user id (tail)
 *   pushgate/_ctl/{app}/revoke                PG_TOPIC_REVOKE       app
 *   pushgate/_ctl/{app}/reg/{connectionId}    PG_TOPIC_REG          app, name = connection id (level)
 *   pushgate/_ctl/apps/{slug}                 PG_TOPIC_APP_RECORD   app = slug
 *   $SYS/broker/publish/messages/dropped      PG_TOPIC_DROPPED      none (the broker's counter, outside the root)
 *
 * Words: a *level* is one topic level: non-empty, no '/', '+' or '#' (and, when built, pg_topic_level_valid). A
 * *tail* is the rest of the topic: one or more levels, non-empty; what else it must be is its owner's rule (a channel
 * name or, in a subscription, a channel filter: pg_channel_check; user ids: the protocol that names them). `_ctl`
 * and `_node` are never app ids (store/app_id.c reserves them), so {root}/_ctl/… and {root}/_node/… are read as
 * control topics only; {root}/_ctl/apps/{slug} is an app record whenever {slug} is one level.
 *
 * Incoming messages: pg_topic_parse() returns the kind, so a dispatcher can index a table of handlers by it.
 * Outgoing: pg_topic_build() for one topic (pg_topic_new() for the same in a new string), pg_topic_filter() for the
 * subscription that receives a kind for every app or node (it fits in PG_TOPIC_FILTER_MAX). Nobody else formats a
 * pushgate topic. Every function is bounded by its buffer, and callable from any thread (no state).
 */
#ifndef PG_TOPIC_H
#define PG_TOPIC_H

#include <stddef.h>
#include <string.h>

enum pg_topic_kind {
    PG_TOPIC_NONE = 0,   /* not a pushgate topic (another root, another shape, an empty or wildcard level) */
    PG_TOPIC_CHANNEL,    /* {root}/{app}/c/{channel} */
    PG_TOPIC_USER,       /* {root}/{app}/u/{user} */
    PG_TOPIC_BROADCAST,  /* {root}/{app}/b */
    PG_TOPIC_PRESENCE,   /* {root}/{app}/p/{node}/{channel} */
    PG_TOPIC_DEVICE,     /* {root}/{app}/d/{client_id} */
    PG_TOPIC_NODE,       /* {root}/_node/{node} */
    PG_TOPIC_LOAD,       /* {root}/_node/{node}/load */
    PG_TOPIC_TERMINATE,  /* {root}/_ctl/{app}/terminate/{user} */
    PG_TOPIC_REVOKE,     /* {root}/_ctl/{app}/revoke */
    PG_TOPIC_REG,        /* {root}/_ctl/{app}/reg/{connectionId} */
    PG_TOPIC_APP_RECORD, /* {root}/_ctl/apps/{slug} */
    PG_TOPIC_DROPPED,    /* $SYS/broker/publish/messages/dropped */
    PG_TOPIC_KINDS       /* number of kinds, NONE included: the size of a dispatch table */
};

/* The broker's count of dropped messages (Mosquitto's $SYS tree); the same for every root. */
#define PG_TOPIC_DROPPED_TOPIC "$SYS/broker/publish/messages/dropped"

/* The longest topic_root, in bytes. */
#define PG_TOPIC_ROOT_MAX 128
/*
 * Room for any pg_topic_filter() result, NUL included, under a valid root: the longest is {root}/_ctl/+/terminate/+
 * (the root and 19 bytes; $SYS/broker/publish/messages/dropped is 36 bytes).
 */
#define PG_TOPIC_FILTER_MAX (PG_TOPIC_ROOT_MAX + 20)
/* pg_topic_root_valid()'s rule, for error messages. */
#define PG_TOPIC_ROOT_RULE "expected one MQTT topic level of 1-128 bytes without + # / and not starting with $"

/*
 * 1 if root may be topic_root: one level (pg_topic_level_valid) of at most PG_TOPIC_ROOT_MAX bytes that does not
 * start with '$' (the broker's own topics, which wildcard subscriptions never match). Checked once, where the
 * configuration is read; the functions below take a root that passed it.
 */
int pg_topic_root_valid(const char *root);

/* A part of a parsed topic: borrowed from the topic string, not NUL-terminated unless said. */
struct pg_topic_part {
    const char *s; /* NULL: the kind has no such part */
    size_t len;
};

struct pg_topic_ref {
    enum pg_topic_kind kind;
    struct pg_topic_part app;  /* the app id (APP_RECORD: the slug); every kind but NODE, LOAD and DROPPED */
    struct pg_topic_part node; /* PRESENCE, NODE, LOAD */
    /*
     * CHANNEL and PRESENCE: the channel; USER and TERMINATE: the user id; DEVICE: the client id; REG: the
     * connection id. It always ends the topic, so name.s is a NUL-terminated string.
     */
    struct pg_topic_part name;
};

/*
 * Reads topic (a topic name as the broker delivers it, or a subscription filter: wildcards are kept in a tail and
 * refused in a level) under root into *out and returns out->kind; PG_TOPIC_NONE, with every part empty, for
 * anything else. Parts point into topic. The broker has checked the topic's UTF-8; only the shape is checked here.
 */
enum pg_topic_kind pg_topic_parse(const char *root, const char *topic, struct pg_topic_ref *out);

/* 1 if part is exactly the string s. */
static inline int pg_topic_part_is(const struct pg_topic_part *part, const char *s)
{
    return part->s && s && strlen(s) == part->len && !memcmp(part->s, s, part->len);
}

/* Copies part into buf as a string: its length, or PG_ELIMIT (buf then "") when it does not fit in len - 1. */
int pg_topic_part_copy(const struct pg_topic_part *part, char *buf, size_t len);

/*
 * Writes the topic of kind into buf (len bytes, NUL included) and returns its length, or with buf NULL and len 0
 * returns the length it needs. What app, a and b are, by kind (a part a kind does not use must be NULL):
 *
 *   CHANNEL     app, a = channel (tail; a filter too, when subscribing)
 *   USER        app, a = user id (tail)
 *   BROADCAST   app
 *   PRESENCE    app, a = node (level), b = channel (tail)
 *   DEVICE      app, a = client id (level)
 *   NODE        a = node (level)
 *   LOAD        a = node (level)
 *   TERMINATE   app, a = user id (tail)
 *   REVOKE      app
 *   REG         app, a = connection id (level)
 *   APP_RECORD  app = slug (level)
 *   DROPPED     nothing; root is not used either
 *
 * app is a level. Errors: PG_EINVAL (unknown kind, a missing or extra part, a level that is not
 * pg_topic_level_valid, an empty tail, a root that is not pg_topic_root_valid), PG_ELIMIT (longer than
 * PG_MQTT_STRING_MAX, or than len - 1: buf is then "").
 */
int pg_topic_build(char *buf, size_t len, const char *root, enum pg_topic_kind kind, const char *app, const char *a,
                   const char *b);

/*
 * pg_topic_build() into a new string (owned by the caller, who frees it); NULL when pg_topic_build() refuses the
 * parts or memory runs out. For callers that keep the topic (a channel's subscription) or whose parts are unbounded.
 */
char *pg_topic_new(const char *root, enum pg_topic_kind kind, const char *app, const char *a, const char *b);

/*
 * Writes the subscription filter that receives every topic of kind, of every app and node, into buf; returns its
 * length, or the length it needs (buf NULL, len 0). Errors as pg_topic_build(). The filters:
 *
 *   CHANNEL {root}/+/c/#         USER {root}/+/u/#                BROADCAST {root}/+/b
 *   PRESENCE {root}/+/p/#        DEVICE {root}/+/d/+              NODE {root}/_node/+
 *   LOAD {root}/_node/+/load
 *   TERMINATE {root}/_ctl/+/terminate/+ (the user id as one level, as gateways have always subscribed)
 *   REVOKE {root}/_ctl/+/revoke  REG {root}/_ctl/+/reg/+          APP_RECORD {root}/_ctl/apps/+
 *   DROPPED $SYS/broker/publish/messages/dropped
 */
int pg_topic_filter(char *buf, size_t len, const char *root, enum pg_topic_kind kind);

/* Static name of a kind for logs ("channel", "device", ...; "none" for NONE and unknown values). */
const char *pg_topic_kind_name(enum pg_topic_kind kind);

#endif
