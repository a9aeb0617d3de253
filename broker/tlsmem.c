/* tlsmem: the record-buffer pool behind --wrap=calloc/free (see tlsmem.h). Process-wide state,
 * like the allocator it stands in for. Single-threaded by design (the broker's one loop). */
#include "tlsmem.h"

#ifdef CERTMQ_TLSMEM

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RECORD_BUF_LEN 16717u /* MBEDTLS_SSL_IN_BUFFER_LEN == MBEDTLS_SSL_OUT_BUFFER_LEN */
#define SLOT (5u * 4096u)     /* the buffer rounded up to whole pages */
#define MAX_SLOTS (1u << 18)  /* 262,144 buffers = 131,072 connections; 5 GiB of address space */

void *__real_calloc(size_t n, size_t size);
void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);
void *__wrap_realloc(void *p, size_t n);

static struct {
    uint8_t *base;  /* MAX_SLOTS * SLOT, reserved, not committed */
    uint32_t *free; /* stack of free slot indexes (also in the reserved region's style) */
    uint32_t nfree;
    uint32_t used; /* slots handed out at least once (high-water mark) */
    size_t in_use;
    int failed;
} pool;

static int pool_init(void)
{
    if (pool.base)
        return 0;
    if (pool.failed)
        return -1;
    void *b = mmap(NULL, (size_t)MAX_SLOTS * SLOT, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *f = mmap(NULL, (size_t)MAX_SLOTS * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED || f == MAP_FAILED) {
        pool.failed = 1; /* fall back to calloc: correct, only larger */
        return -1;
    }
    pool.base = b;
    pool.free = f;
    return 0;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (n == 1 && size == RECORD_BUF_LEN && pool_init() == 0) {
        uint32_t i;
        if (pool.nfree)
            i = pool.free[--pool.nfree];
        else if (pool.used < MAX_SLOTS)
            i = pool.used++;
        else
            return __real_calloc(n, size);
        pool.in_use++;
        return pool.base + (size_t)i * SLOT; /* fresh or MADV_DONTNEED'd pages read as zero */
    }
    return __real_calloc(n, size);
}

static int in_pool(const void *p)
{
    const uint8_t *q = p;
    return pool.base && q >= pool.base && q < pool.base + (size_t)MAX_SLOTS * SLOT;
}

/* Nothing reallocates record buffers today; this keeps it correct if something ever does. */
void *__wrap_realloc(void *p, size_t n)
{
    if (!in_pool(p))
        return __real_realloc(p, n);
    void *r = __real_calloc(1, n ? n : 1);
    if (r)
        memcpy(r, p, n < SLOT ? n : SLOT);
    __wrap_free(p);
    return r;
}

void __wrap_free(void *p)
{
    uint8_t *q = p;
    if (in_pool(q)) {
        size_t i = (size_t)(q - pool.base) / SLOT;
        madvise(pool.base + i * SLOT, SLOT, MADV_DONTNEED);
        pool.free[pool.nfree++] = (uint32_t)i;
        pool.in_use--;
        return;
    }
    __real_free(p);
}

bool tlsmem_owns(const void *p)
{
    return in_pool(p);
}

bool tlsmem_release(void *p)
{
    uint8_t *q = p;
    if (!in_pool(q))
        return false;
    size_t i = (size_t)(q - pool.base) / SLOT;
    madvise(pool.base + i * SLOT, SLOT, MADV_DONTNEED);
    return true;
}

size_t tlsmem_in_use(void)
{
    return pool.in_use;
}

size_t tlsmem_capacity(void)
{
    return pool.used;
}

#else

bool tlsmem_owns(const void *p)
{
    (void)p;
    return false;
}

bool tlsmem_release(void *p)
{
    (void)p;
    return false;
}

size_t tlsmem_in_use(void)
{
    return 0;
}

size_t tlsmem_capacity(void)
{
    return 0;
}

#endif
