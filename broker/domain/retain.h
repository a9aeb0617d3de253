/* retain: the retained-message store, keyed by topic name.
 *
 * Holds one reference to each retained msg. Lookup by subscription filter walks only the
 * branches the filter can match (a level tree like topic's), not every retained message. */
#ifndef CERTMQ_RETAIN_H
#define CERTMQ_RETAIN_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>

struct retain;

struct retain *retain_new(void);
void retain_free(struct retain *r);
/* Store m under m->topic, replacing any previous message (takes its own reference). A message
 * with an empty payload clears the topic instead. owner is the caller's tag of who set it (may
 * be NULL), handed back by retain_peek for quotas. */
void retain_set(struct retain *r, struct msg *m, void *owner);
/* What a retained message costs the store: its topic and payload bytes. */
uint64_t retain_cost(const struct msg *m);
/* Total retain_cost of the stored messages. */
uint64_t retain_bytes(const struct retain *r);
/* The message stored under exactly this topic: its owner and cost; false when none. */
bool retain_peek(const struct retain *r, const char *topic, size_t len, void **owner,
                 uint64_t *cost);
/* Call cb for each retained message whose topic matches filter (the `$` rule applies). */
void retain_match(const struct retain *r, const char *filter, size_t flen,
                  void (*cb)(void *ctx, struct msg *m), void *ctx);
/* Every retained message, for persistence and $SYS counts. */
void retain_foreach(const struct retain *r, void (*cb)(void *ctx, struct msg *m), void *ctx);
size_t retain_count(const struct retain *r);
/* Is a message retained under exactly this topic name? */
bool retain_has(const struct retain *r, const char *topic, size_t len);
/* Number of level nodes below the root, counted by walking (O(nodes)): for memory metrics and
 * for tests that cleared branches are pruned. */
size_t retain_nodes(const struct retain *r);

#endif
