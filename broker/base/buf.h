/* buf: a growable byte buffer with a consumed prefix.
 *
 * Used for socket input (bytes arrive, whole packets are consumed from the front) and for
 * plaintext output staging. A plain value struct; the owner decides the limit and checks it
 * before appending, so buf itself never refuses. */
#ifndef CERTMQ_BUF_H
#define CERTMQ_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t off; /* start of unconsumed bytes */
    size_t len; /* end of valid bytes (data[off..len) is live) */
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
static inline size_t buf_size(const struct buf *b)
{
    return b->len - b->off;
}
static inline uint8_t *buf_head(const struct buf *b)
{
    return b->data + b->off;
}
/* Make room for at least n more bytes at the tail and return where they go. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
/* Drop the storage when empty and larger than keep bytes: idle connections stay small. */
void buf_shrink(struct buf *b, size_t keep);

#endif
