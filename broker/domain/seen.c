/* seen: the ring and its index (see seen.h). Positions count every entry ever added (from 1,
 * 0 is "none"); entry pos lives in slot pos & mask, so a link to pos is valid only while that
 * slot still holds pos. */
#include "seen.h"

#include "xmalloc.h"

#include <stdlib.h>

struct entry {
    uint64_t origin, id, pos, older; /* older: the previous entry in the same bucket */
    int64_t at;
};

struct seen {
    uint64_t mask, next; /* next: the position the next entry gets */
    struct entry *ring;
    uint64_t *bucket; /* newest position per bucket (as many buckets as entries) */
};

struct seen *seen_new(unsigned log2_cap)
{
    if (log2_cap < 4 || log2_cap > 24)
        return NULL;
    struct seen *s = xcalloc(1, sizeof(*s));
    s->mask = (1ull << log2_cap) - 1;
    s->next = 1;
    s->ring = xcalloc(s->mask + 1, sizeof(*s->ring));
    s->bucket = xcalloc(s->mask + 1, sizeof(*s->bucket));
    return s;
}

void seen_free(struct seen *s)
{
    if (!s)
        return;
    free(s->ring);
    free(s->bucket);
    free(s);
}

uint64_t seen_origin(const void *node, size_t len)
{
    const unsigned char *p = node;
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t bucket_of(const struct seen *s, uint64_t origin, uint64_t id)
{
    uint64_t h = (origin ^ id) * 0x9e3779b97f4a7c15ull;
    return (h >> 32 ^ h) & s->mask;
}

static const struct entry *at_pos(const struct seen *s, uint64_t pos)
{
    const struct entry *e = &s->ring[pos & s->mask];
    return pos && e->pos == pos ? e : NULL;
}

void seen_add(struct seen *s, uint64_t origin, uint64_t id, int64_t at)
{
    uint64_t b = bucket_of(s, origin, id), pos = s->next++;
    struct entry *e = &s->ring[pos & s->mask];
    *e = (struct entry){.origin = origin, .id = id, .pos = pos, .older = s->bucket[b], .at = at};
    s->bucket[b] = pos;
}

int64_t seen_when(const struct seen *s, uint64_t origin, uint64_t id)
{
    const struct entry *e = at_pos(s, s->bucket[bucket_of(s, origin, id)]);
    for (; e; e = at_pos(s, e->older))
        if (e->origin == origin && e->id == id)
            return e->at;
    return -1;
}
