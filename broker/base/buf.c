/* buf: growable byte buffer; compacts lazily so consuming from the front is O(1). */
#include "buf.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
    memset(b, 0, sizeof(*b));
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    size_t live = b->len - b->off;
    if (b->off && b->cap - live >= n) {
        memmove(b->data, b->data + b->off, live);
        b->off = 0;
        b->len = live;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - live < n)
        cap *= 2;
    uint8_t *d = xmalloc(cap);
    if (live)
        memcpy(d, b->data + b->off, live);
    free(b->data);
    b->data = d;
    b->cap = cap;
    b->off = 0;
    b->len = live;
    return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
    b->len += n;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    memcpy(buf_reserve(b, n), p, n);
    b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (b->off == b->len && b->cap > keep) {
        free(b->data);
        buf_init(b);
    }
}
