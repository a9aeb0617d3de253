/* memwatch: the process's resident memory against a budget (max_memory).
 *
 * Measured, not estimated: every allocation counts (messages, queues, TLS buffers, libraries),
 * read from /proc once per check (the broker checks once a second). Hysteresis keeps the state
 * from flapping: over at the budget, back under at 90 % of it. */
#ifndef CERTMQ_MEMWATCH_H
#define CERTMQ_MEMWATCH_H

#include <stdbool.h>
#include <stdint.h>

struct memwatch {
    uint64_t limit; /* bytes */
    uint64_t rss;   /* at the last check */
    bool over;
};

/* limit 0: three quarters of the memory this process may use (the machine's, or its cgroup's
 * limit when lower). */
void memwatch_init(struct memwatch *w, uint64_t limit);
/* Read the resident size and update over. Returns true when the state changed. */
bool memwatch_check(struct memwatch *w);
/* The memory this process may use: MemTotal, or the cgroup v2/v1 limit when lower; 0 when
 * unknown. */
uint64_t memwatch_available(void);

#endif
