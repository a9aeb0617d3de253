/* seen: which cluster messages this node delivered lately, and when; pure, no NATS.
 *
 * A replay from the stream of QoS >= 1 messages (cluster_replay.c) reads back a window that
 * overlaps what live routing delivered here (the window starts before the failure and ends after
 * live delivery took over). Each routed message names itself with its publishing node and that
 * node's id for it (envelope.h); the routing path adds the pair here as it delivers, and the
 * replay skips a message whose pair it finds with a time at which its session was already here.
 *
 * A fixed ring of the newest entries with a hash index over it: adding never allocates, the
 * oldest entry is simply overwritten, and a lookup that reaches an overwritten entry stops
 * there (its chain runs from new to old). What the ring has forgotten is replayed: a duplicate,
 * never a loss. */
#ifndef CERTMQ_SEEN_H
#define CERTMQ_SEEN_H

#include <stddef.h>
#include <stdint.h>

struct seen;

/* A ring of 2^log2_cap entries (log2_cap 4..24). */
struct seen *seen_new(unsigned log2_cap);
void seen_free(struct seen *s);
/* The key of a publishing node's name. */
uint64_t seen_origin(const void *node, size_t len);
void seen_add(struct seen *s, uint64_t origin, uint64_t id, int64_t at);
/* The time of the newest entry for (origin, id); -1 when there is none (or it was forgotten). */
int64_t seen_when(const struct seen *s, uint64_t origin, uint64_t id);

#endif
