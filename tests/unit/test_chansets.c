/* cluster/chansets.h: channel counts packed per app, sorted, summed; lookups, side-by-side walks, the JSON reader. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cluster/chansets.h"

int main(void)
{
    /* items in any order, one name twice: one sorted set, the two counts summed */
    struct pg_chanset_items it = {0};
    const char *names[] = {"room-b", "room-a", "room-c", "room-a"};
    for (size_t i = 0; i < 4; i++)
        CHECK(pg_chanset_items_push(&it, names[i], i + 1) == 0, "push %s", names[i]);
    struct pg_chanset *s = pg_chanset_new(&it);
    CHECK(s != NULL, "a set");
    CHECK_EQ(s->n, 3, "three distinct names");
    CHECK(!strcmp(pg_chanset_name(s, 0), "room-a") && !strcmp(pg_chanset_name(s, 2), "room-c"), "in strcmp order");
    CHECK_EQ(pg_chanset_find(s, "room-a"), 2 + 4, "room-a's two counts summed");
    CHECK_EQ(pg_chanset_find(s, "room-b"), 1, "room-b");
    CHECK_EQ(pg_chanset_find(s, "room-c"), 3, "room-c");
    CHECK_EQ(pg_chanset_find(s, "room"), 0, "a prefix is not a name");
    CHECK_EQ(pg_chanset_find(s, "room-d"), 0, "past the last");
    CHECK_EQ(pg_chanset_find(NULL, "room-a"), 0, "a NULL set is empty");

    /* the names are the set's own: the items may go */
    free(it.v);

    /* a walk asks in increasing order and finds each name once, missing names in between */
    size_t at = 0;
    const uint32_t *c = pg_chanset_seek(s, &at, "room-0");
    CHECK(c == NULL, "before the first");
    c = pg_chanset_seek(s, &at, "room-a");
    CHECK(c && *c == 6, "room-a on the walk");
    c = pg_chanset_seek(s, &at, "room-bb");
    CHECK(c == NULL, "room-bb is not in the set");
    c = pg_chanset_seek(s, &at, "room-c");
    CHECK(c && *c == 3, "room-c after a miss");
    c = pg_chanset_seek(s, &at, "room-z");
    CHECK(c == NULL && at == s->n, "past the end, the walk is over");
    at = 0;
    CHECK(pg_chanset_seek(NULL, &at, "room-a") == NULL, "a walk over no set finds nothing");

    /* a set of another set's items: the union, summed */
    struct pg_chanset_items two = {0};
    CHECK(pg_chanset_items_add(&two, s) == 0 && pg_chanset_items_add(&two, s) == 0 &&
              pg_chanset_items_add(&two, NULL) == 0,
          "add a set twice and none");
    struct pg_chanset *twice = pg_chanset_new(&two);
    CHECK(twice && twice->n == 3 && pg_chanset_find(twice, "room-a") == 12, "every count doubled");
    free(two.v);
    free(twice);

    /* no items: an empty set, not a failure */
    struct pg_chanset_items none = {0};
    struct pg_chanset *empty = pg_chanset_new(&none);
    CHECK(empty && empty->n == 0 && pg_chanset_find(empty, "room-a") == 0, "an empty set");
    free(empty);
    free(s);

    /* a snapshot's "channels": apps sorted, bad counts and empty apps left out */
    json_error_t err;
    json_t *j = json_loads("{\"zeta\":{\"x\":1},\"alpha\":{\"b\":2,\"a\":3,\"neg\":-1,\"str\":\"4\",\"zero\":0},"
                           "\"empty\":{},\"bad\":{\"q\":0}}",
                           0, &err);
    CHECK(j != NULL, "test JSON parses");
    CHECK_EQ(pg_appsets_json_channels(j), 7, "channels named, whatever their counts");
    struct pg_appsets as = {0};
    CHECK(pg_appsets_from_json(j, &as) == 0, "packed");
    CHECK_EQ(as.n, 2, "alpha and zeta: the apps with a positive count");
    CHECK(as.n == 2 && !strcmp(as.v[0].app, "alpha") && !strcmp(as.v[1].app, "zeta"), "sorted by app id");
    const struct pg_chanset *alpha = pg_appsets_get(&as, "alpha");
    CHECK(alpha && alpha->n == 2 && pg_chanset_find(alpha, "a") == 3 && pg_chanset_find(alpha, "b") == 2,
          "alpha's two good counts");
    CHECK(pg_appsets_get(&as, "empty") == NULL && pg_appsets_get(&as, "nope") == NULL, "no set for the others");
    CHECK(pg_appsets_find(&as, "zeta") == &as.v[1], "find gives the entry");

    /* packing again replaces what was there; NULL or a non-object is no channels */
    json_t *k = json_loads("{\"beta\":{\"c\":1}}", 0, &err);
    CHECK(pg_appsets_from_json(k, &as) == 0 && as.n == 1 && pg_appsets_get(&as, "alpha") == NULL &&
              pg_chanset_find(pg_appsets_get(&as, "beta"), "c") == 1,
          "the second packing replaces the first");
    CHECK(pg_appsets_from_json(NULL, &as) == 0 && as.n == 0, "NULL: none");
    json_t *arr = json_array();
    CHECK(pg_appsets_from_json(arr, &as) == 0 && as.n == 0, "not an object: none");
    json_decref(arr);
    CHECK(pg_appsets_find(&as, "beta") == NULL, "an empty table finds nothing");
    pg_appsets_clear(&as);
    pg_appsets_clear(&as); /* twice is harmless */
    json_decref(j);
    json_decref(k);
    return check_report("chansets");
}
