/* topic: topic name/filter validation, single-filter matching, and the subscription tree.
 *
 * The tree maps filters to opaque subscriber pointers. Matching a topic costs time in proportion
 * to the topic's depth and the number of matching subscriptions, never to the total number of
 * subscriptions: each node keeps its children in a hash keyed by level, plus direct `+` and
 * `#` children. Topics starting with `$` are not matched by a leading `+` or `#`.
 * Shared subscriptions ($share/GROUP/FILTER) are stored under FILTER in a per-node group. */
#ifndef CERTMQ_TOPIC_H
#define CERTMQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A topic name: non-empty, no `+` or `#`, no U+0000 (UTF-8 itself is checked by the codec). */
bool topic_name_valid(const char *t, size_t len);
/* A topic filter: non-empty; `+` and `#` only as whole levels; `#` only last. */
bool topic_filter_valid(const char *f, size_t len);
/* Number of levels ("a/b" = 2, "/" = 2). */
unsigned topic_levels(const char *t, size_t len);
/* Walking levels without copying, for every level tree (subscriptions, retained messages):
 * the end of the level that starts at s[pos] (the index of its '/', or len), and the start of
 * the level that ends just before pos (pos being one past that level's '/' or end). */
size_t topic_level_end(const char *s, size_t len, size_t pos);
size_t topic_level_prev(const char *s, size_t pos);
/* Does filter match topic? Both assumed valid. Applies the `$` rule. */
bool topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);
/* Could any topic match both filters? (Used to decide whether a subscription can ever be
 * readable under an ACL rule.) The `$` rule applies. */
bool topic_filters_intersect(const char *a, size_t alen, const char *b, size_t blen);
/* Is every topic matched by `inner` also matched by `outer`? */
bool topic_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen);

/* Split "$share/GROUP/FILTER". Returns 1 and sets group/filter when f is a valid shared
 * subscription, 0 when f is not a shared subscription (group/filter untouched), -1 when it
 * starts with "$share/" but is malformed (empty group, group containing + or #, no filter). */
int topic_share_split(const char *f, size_t len, const char **group, size_t *glen,
                      const char **filter, size_t *flen);

struct topic_tree;
struct topic_group;

/* What the tree stores for one subscription. */
struct topic_sub {
    void *subscriber;
    uint8_t options;                 /* MQTT_SUBOPT_* byte */
    uint32_t sub_id;                 /* 0 = none */
    const struct topic_group *group; /* NULL unless shared */
};

struct topic_tree *topic_tree_new(void);
/* Frees the tree; subscriber pointers are not touched, the watch is not called. */
void topic_tree_free(struct topic_tree *t);

/* Called when a filter gets its first non-shared subscription or loses its last one (group
 * NULL), and when a shared group on a filter gets its first member or loses its last one; add
 * tells which. The strings are only valid during the call. At most one watch per tree. */
typedef void (*topic_watch_cb)(void *ctx, const char *filter, size_t flen, const char *group,
                               size_t glen, bool add);
void topic_tree_set_watch(struct topic_tree *t, topic_watch_cb cb, void *ctx);
/* The shared group on filter, or NULL. */
struct topic_group *topic_tree_group(const struct topic_tree *t, const char *filter, size_t flen,
                                     const char *group, size_t glen);

/* Add or replace (same subscriber, same filter, same group) a subscription. group may be NULL.
 * *replaced is set to whether one existed. Returns 0. Filter must be valid. */
int topic_tree_subscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                         size_t glen, void *subscriber, uint8_t options, uint32_t sub_id,
                         bool *replaced);
/* Returns 0 when removed, -1 when there was no such subscription. Empty nodes are freed. */
int topic_tree_unsubscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                           size_t glen, void *subscriber);

/* Called once per matching non-shared subscription. */
typedef void (*topic_match_cb)(void *ctx, const struct topic_sub *sub);
/* Called once per matching shared group (the caller picks a member). */
typedef void (*topic_group_cb)(void *ctx, struct topic_group *g);
void topic_tree_match(const struct topic_tree *t, const char *topic, size_t tlen, topic_match_cb cb,
                      topic_group_cb gcb, void *ctx);

/* Members of a group, in subscription order; valid until the tree changes. */
size_t topic_group_size(const struct topic_group *g);
const struct topic_sub *topic_group_member(const struct topic_group *g, size_t i);
/* A cursor the caller may use for round-robin choice; starts at 0. */
uint32_t *topic_group_cursor(struct topic_group *g);
const char *topic_group_name(const struct topic_group *g, size_t *len);

size_t topic_tree_count(const struct topic_tree *t);
/* Number of nodes below the root, counted by walking the tree (O(nodes)): for memory metrics
 * and for tests that empty branches are pruned. */
size_t topic_tree_nodes(const struct topic_tree *t);

#endif
