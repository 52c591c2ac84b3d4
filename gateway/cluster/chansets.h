/*
 * Channel counts packed for the cluster view (chansets.c): what a node's
 * snapshot says of its channels, {app: {channel: subscriptions}}, held in a
 * fraction of what the parsed jansson tree takes.
 *
 * Channel counts are the bulk of the cluster view: 100,000 channels over 7
 * workers, and every worker hears of the 86,000 or so of its peers. A jansson
 * object holds a channel in about 130 bytes (pair, key, integer, bucket); a
 * struct pg_chanset holds it in its name plus 9: one block per node and app,
 * the names back to back in strcmp order with their counts, found by binary
 * search, and compared with another set by walking both (pg_chanset_seek).
 * A set is immutable: a new snapshot makes a new one.
 *
 * Nothing here knows nodes or apps beyond their names: cluster/cluster.c
 * keeps the sets of each peer, of this node and of the leader's last report.
 */
#ifndef PG_CLUSTER_CHANSETS_H
#define PG_CLUSTER_CHANSETS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct pg_chanset {
    size_t n;
    uint32_t *off;   /* n offsets into names, in strcmp order of the names; all four in this one block */
    uint32_t *count; /* n subscription counts (saturated at UINT32_MAX) */
    char *names;     /* NUL-terminated, back to back */
};

/* Channel sets per app, sorted by app id (few: one lookup per app and node). */
struct pg_appset {
    char *app;              /* owned */
    struct pg_chanset *set; /* owned; may be NULL (a user's meaning: cluster.c's occupied) */
};
struct pg_appsets {
    size_t n;
    struct pg_appset *v; /* owned */
};

/* What a set is made from: names (borrowed: they must outlive pg_chanset_new) and counts, in any order. */
struct pg_chanset_item {
    const char *name;
    uint64_t count;
};
struct pg_chanset_items { /* a growing array; {0} is empty; free(v) when done */
    struct pg_chanset_item *v;
    size_t n, cap;
};

/* 0 or PG_ENOMEM. */
int pg_chanset_items_push(struct pg_chanset_items *it, const char *name, uint64_t count);
/* Every channel of s (NULL: none), its names borrowed from s. 0 or PG_ENOMEM. */
int pg_chanset_items_add(struct pg_chanset_items *it, const struct pg_chanset *s);
/* it's items as a new set (one block: free()), equal names summed; it is sorted in place. NULL: out of memory. */
struct pg_chanset *pg_chanset_new(struct pg_chanset_items *it);

const char *pg_chanset_name(const struct pg_chanset *s, size_t i);
/* The count of name (0: not in s; s NULL: empty), by binary search. */
uint32_t pg_chanset_find(const struct pg_chanset *s, const char *name);
/*
 * Walking two sorted sets side by side: the count of name in s, looked for from *at on, *at moved past the
 * smaller names; NULL when name is not in s. Names asked for in increasing order make one pass over s.
 */
const uint32_t *pg_chanset_seek(const struct pg_chanset *s, size_t *at, const char *name);

/* Free every set and app name; as is empty after. */
void pg_appsets_clear(struct pg_appsets *as);
/* Sort as->v by app id: after filling it in any order. */
void pg_appsets_sort(struct pg_appsets *as);
/* The entry of app; NULL: none. */
struct pg_appset *pg_appsets_find(const struct pg_appsets *as, const char *app);
/* The set of app; NULL: none. */
const struct pg_chanset *pg_appsets_get(const struct pg_appsets *as, const char *app);
/*
 * {app: {channel: subscriptions}} (borrowed; NULL or not an object: none) packed into out, emptied first. Counts
 * that are no positive integers are left out, and apps left with none. 0, or PG_ENOMEM and out empty.
 */
int pg_appsets_from_json(const json_t *apps, struct pg_appsets *out);
/* How many channels {app: {channel: subscriptions}} names. */
size_t pg_appsets_json_channels(const json_t *apps);

#endif
