/* memwatch: a budget below the process's size is over at once, one far above it never; the
 * state changes are reported once, with hysteresis on the way back. */
#include "check.h"
#include "memwatch.h"

int main(void)
{
    struct memwatch w;
    memwatch_init(&w, 1);
    CHECK(memwatch_check(&w)); /* changed: over */
    CHECK(w.over);
    CHECK(w.rss > 1);
    CHECK(!memwatch_check(&w)); /* still over: no change to report */
    /* Back under only below 90 % of the budget. */
    w.limit = w.rss + w.rss / 20; /* rss is 95 % of it: stays over */
    memwatch_check(&w);
    CHECK(w.over);
    w.limit = (uint64_t)1 << 50;
    CHECK(memwatch_check(&w));
    CHECK(!w.over);
    memwatch_init(&w, 0); /* three quarters of the machine */
    CHECK(w.limit > 0 && w.limit <= memwatch_available());
    return check_finish("memwatch_test");
}
