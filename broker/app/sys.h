/* sys: the broker's own $SYS topics (docs/operations.md), published as retained messages from
 * one table of (topic, source) rows. */
#ifndef CERTMQ_SYS_H
#define CERTMQ_SYS_H

#include "broker.h"
#include "cluster.h"
#include "conn.h"

#include <stdint.h>

/* Values only the caller knows. */
struct sys_extra {
    uint64_t uptime_s;
    uint64_t chain_cache_hits;           /* summed over every listener's current TLS context */
    uint64_t resident_bytes;             /* at the last max_memory check */
    const struct cluster_stats *cluster; /* NULL: no cluster topics */
};

/* Publish every $SYS topic once, through the broker as its own (from = NULL) retained
 * messages. */
void sys_publish(struct broker *b, const struct conn_stats *cs, const struct sys_extra *x,
                 int64_t now);

#endif
