/* xmalloc: allocation that aborts on exhaustion.
 *
 * Memory a client can drive is bounded before it is allocated (packet size, queue limits,
 * inflight windows), so running out is a sizing bug and not an error path to handle. */
#ifndef CERTMQ_XMALLOC_H
#define CERTMQ_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

#endif
