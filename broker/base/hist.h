/* hist: a fixed-bucket histogram cheap enough for hot paths (a few compares and two adds, no
 * allocation). Bucket bounds are integers in the caller's unit (ns, us, ms) and shared, static
 * tables; the metrics writer turns them into Prometheus's cumulative buckets in seconds. */
#ifndef CERTMQ_HIST_H
#define CERTMQ_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_MAX_BUCKETS 16

struct hist {
    const uint64_t *bounds;                /* ascending upper bounds, inclusive */
    uint8_t n;                             /* how many (<= HIST_MAX_BUCKETS) */
    uint64_t counts[HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative; [n] = above the last */
    uint64_t sum;                          /* of every observed value, in the bounds' unit */
};

static inline void hist_init(struct hist *h, const uint64_t *bounds, size_t n)
{
    *h = (struct hist){.bounds = bounds,
                       .n = (uint8_t)(n > HIST_MAX_BUCKETS ? HIST_MAX_BUCKETS : n)};
}

static inline void hist_observe(struct hist *h, uint64_t v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
}

static inline uint64_t hist_count(const struct hist *h)
{
    uint64_t c = 0;
    for (size_t i = 0; i <= h->n; i++)
        c += h->counts[i];
    return c;
}

#endif
