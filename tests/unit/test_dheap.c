/* core/dheap.c: the deadline heap pops in deadline order through inserts, moves and removals. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "core/dheap.h"

#define N 500

/* Every parent no later than its children, and every entry knows its slot. */
static int heap_ok(const struct pg_dheap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i]->at != i + 1)
            return 0;
        if (i && h->v[(i - 1) / 2]->due_ms > h->v[i]->due_ms)
            return 0;
    }
    return 1;
}

/* The earliest deadline among the entries the model says are queued; INT64_MAX: none. */
static int64_t model_min(const struct pg_dl *e, const int *on)
{
    int64_t m = INT64_MAX;
    for (int i = 0; i < N; i++)
        if (on[i] && e[i].due_ms < m)
            m = e[i].due_ms;
    return m;
}

int main(void)
{
    struct pg_dheap h = {0};
    static struct pg_dl e[N];
    static int on[N];

    CHECK(pg_dheap_pop(&h, INT64_MAX) == NULL, "an empty heap has nothing due");
    CHECK(!pg_dl_queued(&e[0]), "a zeroed entry is on no heap");
    pg_dheap_remove(&h, &e[0]); /* removing an entry on no heap does nothing */
    CHECK_EQ(h.n, 0, "still empty");

    /* deadlines 30, 10, 20: popped 10, 20, 30, each only once due */
    CHECK_EQ(pg_dheap_set(&h, &e[0], 30), 0, "set");
    CHECK_EQ(pg_dheap_set(&h, &e[1], 10), 0, "set");
    CHECK_EQ(pg_dheap_set(&h, &e[2], 20), 0, "set");
    CHECK(pg_dheap_pop(&h, 9) == NULL, "nothing due before 10");
    CHECK(pg_dheap_pop(&h, 10) == &e[1], "10 at 10");
    CHECK(!pg_dl_queued(&e[1]), "a popped entry is off the heap");
    CHECK(pg_dheap_pop(&h, 19) == NULL, "20 not yet");
    /* moving: e[0] (30) earlier than e[2] (20), then e[2] later: no second copy */
    CHECK_EQ(pg_dheap_set(&h, &e[0], 15), 0, "move earlier");
    CHECK_EQ(pg_dheap_set(&h, &e[2], 40), 0, "move later");
    CHECK_EQ(h.n, 2, "moves keep one copy each");
    CHECK(pg_dheap_pop(&h, 100) == &e[0], "the moved-earlier one first");
    CHECK(pg_dheap_pop(&h, 100) == &e[2], "then the moved-later one");
    CHECK(pg_dheap_pop(&h, 100) == NULL, "empty");
    CHECK(h.v == NULL && h.cap == 0, "an empty heap holds no memory");

    /* random sets, moves and removals against a model; equal deadlines included */
    srand(12);
    for (int round = 0; round < 20000; round++) {
        int i = rand() % N, op = rand() % 4;
        if (op < 2) {
            CHECK_EQ(pg_dheap_set(&h, &e[i], rand() % 1000), 0, "set");
            on[i] = 1;
        } else if (op == 2) {
            pg_dheap_remove(&h, &e[i]);
            on[i] = 0;
        } else {
            int64_t now = rand() % 1000, want = model_min(e, on);
            struct pg_dl *d = pg_dheap_pop(&h, now);
            if (want > now) {
                CHECK(d == NULL, "nothing due at %lld (earliest %lld)", (long long)now, (long long)want);
            } else {
                CHECK(d != NULL && d->due_ms == want, "the earliest (%lld) is popped at %lld", (long long)want,
                      (long long)now);
                if (d)
                    on[d - e] = 0;
            }
        }
        if (!heap_ok(&h)) {
            CHECK(0, "heap order and slots hold after round %d", round);
            break;
        }
    }
    size_t queued = 0;
    for (int i = 0; i < N; i++) {
        queued += (size_t)on[i];
        CHECK_EQ(pg_dl_queued(&e[i]), on[i], "queued as the model says");
    }
    CHECK_EQ(h.n, queued, "count as the model says");
    /* draining pops every entry in deadline order */
    int64_t last = -1;
    struct pg_dl *d;
    while ((d = pg_dheap_pop(&h, INT64_MAX))) {
        CHECK(d->due_ms >= last, "in order: %lld after %lld", (long long)d->due_ms, (long long)last);
        last = d->due_ms;
        queued--;
    }
    CHECK_EQ(queued, 0, "every entry popped once");
    CHECK(h.v == NULL, "drained heap freed its array");
    return check_report("test_dheap");
}
