/* sys: the broker's own $SYS topics (docs/operations.md), published as retained messages from
 * the stats table (stats.h), which the metrics endpoint reads too. */
#ifndef CERTMQ_SYS_H
#define CERTMQ_SYS_H

#include "broker.h"
#include "conn.h"
#include "stats.h"

#include <stdint.h>

/* Publish every $SYS topic once, through the broker as its own (from = NULL) retained
 * messages. */
void sys_publish(struct broker *b, const struct conn_stats *cs, const struct stats_extra *x,
                 int64_t now);

#endif
