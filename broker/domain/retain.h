/* retain: the retained-message store, keyed by topic name.
 *
 * Holds one reference to each retained msg. Lookup by subscription filter walks only the
 * branches the filter can match (a level tree like topic's), not every retained message. */
#ifndef CERTMQ_RETAIN_H
#define CERTMQ_RETAIN_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* Called for each matching message; returning false stops the walk. */
typedef bool (*retain_match_cb)(void *ctx, struct msg *m);

/* Call cb for each retained message whose topic matches filter (the `$` rule applies), until
 * cb returns false. */
void retain_match(const struct retain *r, const char *filter, size_t flen, retain_match_cb cb,
                  void *ctx);

/* A walk done in steps (retain_match_step) so that one filter over a large store cannot hold
 * the caller for long. The cursor holds plain values only, never pointers into the tree (which
 * may change between steps): the path of the next node to visit as its level names and the
 * creation sequence number of each node on it. Zero-initialise; retain_cursor_free after. */
struct retain_cursor {
    char *path; /* level names of the next node, '/'-joined (not NUL-terminated) */
    size_t path_len, path_cap;
    uint64_t *seqs; /* creation number of each node on that path, one per level */
    size_t depth, seqs_cap;
    uint64_t start_seq; /* nodes created after the first step are skipped */
    bool started, done;
};
/* Visit at most `budget` nodes of the walk for filter (the same filter at every step); returns
 * true when the walk is over (every match seen, or cb returned false). */
bool retain_match_step(const struct retain *r, const char *filter, size_t flen,
                       struct retain_cursor *cur, size_t budget, retain_match_cb cb, void *ctx);
void retain_cursor_free(struct retain_cursor *cur);
/* Every retained message, for persistence and $SYS counts. */
void retain_foreach(const struct retain *r, void (*cb)(void *ctx, struct msg *m), void *ctx);
size_t retain_count(const struct retain *r);
/* Is a message retained under exactly this topic name? */
bool retain_has(const struct retain *r, const char *topic, size_t len);
/* Number of level nodes below the root, counted by walking (O(nodes)): for memory metrics and
 * for tests that cleared branches are pruned. */
size_t retain_nodes(const struct retain *r);

#endif
