/* seen: what was added is found with its newest time, per (origin, id); what the ring pushed out
 * is forgotten (never confused with a newer entry in its slot); chains through overwritten
 * entries end; bad sizes are refused. */
#include "check.h"
#include "seen.h"

#include <string.h>

static void test_found_and_newest(void)
{
    struct seen *s = seen_new(8);
    uint64_t a = seen_origin("node1", 5), b = seen_origin("node2", 5);
    CHECK(a != b);
    CHECK_EQ_INT(seen_when(s, a, 1), -1);
    seen_add(s, a, 1, 100);
    seen_add(s, b, 1, 200);
    CHECK_EQ_INT(seen_when(s, a, 1), 100);
    CHECK_EQ_INT(seen_when(s, b, 1), 200);
    CHECK_EQ_INT(seen_when(s, a, 2), -1);
    seen_add(s, a, 1, 300); /* a retried publish comes twice: the newest time counts */
    CHECK_EQ_INT(seen_when(s, a, 1), 300);
    seen_free(s);
}

static void test_forgets_oldest(void)
{
    struct seen *s = seen_new(4); /* 16 entries, 16 buckets: chains collide */
    uint64_t o = seen_origin("n", 1);
    for (uint64_t id = 1; id <= 40; id++)
        seen_add(s, o, id, (int64_t)id * 10);
    for (uint64_t id = 1; id <= 24; id++)
        CHECK_EQ_INT(seen_when(s, o, id), -1);
    for (uint64_t id = 25; id <= 40; id++)
        CHECK_EQ_INT(seen_when(s, o, id), (int64_t)id * 10);
    CHECK_EQ_INT(seen_when(s, o, 41), -1);
    seen_free(s);
}

static void test_many(void)
{
    struct seen *s = seen_new(12);
    uint64_t o[3] = {seen_origin("a", 1), seen_origin("b", 1), seen_origin("c", 1)};
    for (uint64_t id = 1; id <= 100000; id++)
        seen_add(s, o[id % 3], id, (int64_t)id);
    int found = 0;
    for (uint64_t id = 1; id <= 100000; id++) {
        int64_t at = seen_when(s, o[id % 3], id);
        CHECK(at == -1 || at == (int64_t)id);
        CHECK(seen_when(s, o[(id + 1) % 3], id) == -1);
        found += at != -1;
    }
    CHECK_EQ_INT(found, 4096);
    seen_free(s);
}

int main(void)
{
    CHECK(seen_new(3) == NULL && seen_new(25) == NULL);
    seen_free(NULL);
    test_found_and_newest();
    test_forgets_oldest();
    test_many();
    return check_finish("seen_test");
}
