/* core/dueq.h: deadline FIFOs kept in order by appending, popped from the head while due. */
#include <stddef.h>

#include "check.h"
#include "core/dueq.h"

#define N 5

int main(void)
{
    struct pg_dueq q = {0}, other = {0};
    struct pg_due e[N] = {0};
    CHECK(pg_dueq_pop(&q, 1000, 0) == NULL, "an empty queue has nothing due");
    CHECK(!pg_due_queued(&e[0]), "a zeroed entry is on no queue");
    pg_due_stop(&e[0]); /* stopping an entry on no queue does nothing */
    CHECK(!pg_due_queued(&e[0]), "still on none");

    /* joined at 100, 110, ..., 140 with an interval of 50 */
    for (int i = 0; i < N; i++)
        pg_due_start(&q, &e[i], 100 + 10 * i);
    CHECK_EQ(q.list.count, N, "all joined");
    CHECK(pg_dueq_pop(&q, 149, 50) == NULL, "the head is due at 150, not before");
    CHECK(pg_dueq_pop(&q, 150, 50) == &e[0], "the head at its deadline");
    CHECK(!pg_due_queued(&e[0]), "a popped entry is off the queue");
    CHECK(pg_dueq_pop(&q, 150, 50) == NULL, "the next one is not due yet");

    /* restarting moves an entry to the tail: e[1] is now due last */
    pg_due_start(&q, &e[1], 155);
    CHECK_EQ(q.list.count, N - 1, "a restart does not add a second copy");
    /* stopping takes one out of the middle */
    pg_due_stop(&e[3]);
    CHECK(!pg_due_queued(&e[3]), "stopped");
    CHECK_EQ(q.list.count, N - 2, "stopped one left the queue");

    /* at 200: e[2] (120) and e[4] (140) are due, e[1] (155) is not */
    CHECK(pg_dueq_pop(&q, 200, 50) == &e[2], "due in order: e[2]");
    CHECK(pg_dueq_pop(&q, 200, 50) == &e[4], "then e[4]; e[3] was stopped");
    CHECK(pg_dueq_pop(&q, 200, 50) == NULL, "the restarted e[1] is due at 205");
    CHECK(pg_dueq_pop(&q, 205, 50) == &e[1], "e[1] at 205");
    CHECK_EQ(q.list.count, 0, "empty");

    /* starting on another queue leaves the first one */
    pg_due_start(&q, &e[0], 300);
    pg_due_start(&other, &e[0], 301);
    CHECK_EQ(q.list.count, 0, "left q");
    CHECK_EQ(other.list.count, 1, "joined other");
    CHECK(pg_dueq_pop(&q, 1000, 0) == NULL, "nothing on q");
    CHECK(pg_dueq_pop(&other, 311, 10) == &e[0], "due on other after its interval there");
    return check_report("test_dueq");
}
