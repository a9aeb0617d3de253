/* tlsmem: the record-buffer pool behind --wrap=calloc/free (2.28) or Mbed TLS's allocator hooks
 * (3.x) (see tlsmem.h). Process-wide state,
 * like the allocator it stands in for. Single-threaded by design (the broker's one loop). */
#include "tlsmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(CERTMQ_TLSMEM) || defined(CERTMQ_TLSMEM_POOL)
#define HAVE_POOL 1

#include <sys/mman.h>

#define SLOT (5u * 4096u)    /* a record buffer (16,717 B in 2.28) rounded up to whole pages */
#define MAX_SLOTS (1u << 18) /* 262,144 buffers = 131,072 connections; 5 GiB of address space */

#ifdef CERTMQ_TLSMEM
/* 2.28: the real allocator behind --wrap. */
#define RECORD_BUF_LEN 16717u /* MBEDTLS_SSL_IN_BUFFER_LEN == MBEDTLS_SSL_OUT_BUFFER_LEN */
void *__real_calloc(size_t n, size_t size);
void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);
void *__wrap_realloc(void *p, size_t n);
#define REAL_CALLOC __real_calloc
#define REAL_FREE __real_free
#else
#define REAL_CALLOC calloc
#define REAL_FREE free
#endif

/* Freed slots wait here and are given back in batches: one madvise per run of adjacent slots
 * instead of one per buffer (at a reconnect storm's rate that syscall alone cost ~15% of the
 * broker's CPU). At most DIRTY_MAX * 20 KB stays resident meanwhile. */
#define DIRTY_MAX 128u

static struct {
    uint8_t *base; /* MAX_SLOTS * SLOT, reserved, not committed */
    uint32_t dirty[DIRTY_MAX];
    uint32_t ndirty;
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

static int by_index(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void flush_dirty(void)
{
    qsort(pool.dirty, pool.ndirty, sizeof(pool.dirty[0]), by_index);
    for (uint32_t k = 0; k < pool.ndirty;) {
        uint32_t first = pool.dirty[k], run = 1;
        while (k + run < pool.ndirty && pool.dirty[k + run] == first + run)
            run++;
        madvise(pool.base + (size_t)first * SLOT, (size_t)run * SLOT, MADV_DONTNEED);
        k += run;
    }
    /* Pushed in reverse so the lowest index is reused first (keeps the pool compact). */
    for (uint32_t k = pool.ndirty; k-- > 0;)
        pool.free[pool.nfree++] = pool.dirty[k];
    pool.ndirty = 0;
}

/* A fresh slot (its pages read as zero), or NULL when the pool is full or unavailable. */
static void *slot_get(void)
{
    uint32_t i;
    if (pool_init() != 0)
        return NULL;
    if (!pool.nfree && pool.ndirty)
        flush_dirty();
    if (pool.nfree)
        i = pool.free[--pool.nfree];
    else if (pool.used < MAX_SLOTS)
        i = pool.used++;
    else
        return NULL;
    pool.in_use++;
    return pool.base + (size_t)i * SLOT; /* fresh or MADV_DONTNEED'd pages read as zero */
}

#ifdef CERTMQ_TLSMEM
void *__wrap_calloc(size_t n, size_t size)
{
    if (n == 1 && size == RECORD_BUF_LEN) {
        void *p = slot_get();
        if (p)
            return p;
    }
    return __real_calloc(n, size);
}
#endif

static int in_pool(const void *p)
{
    const uint8_t *q = p;
    return pool.base && q >= pool.base && q < pool.base + (size_t)MAX_SLOTS * SLOT;
}

static void slot_put(void *p)
{
    uint8_t *q = p;
    pool.dirty[pool.ndirty++] = (uint32_t)((size_t)(q - pool.base) / SLOT);
    pool.in_use--;
    if (pool.ndirty == DIRTY_MAX)
        flush_dirty();
}

#ifdef CERTMQ_TLSMEM
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
    if (in_pool(p)) {
        slot_put(p);
        return;
    }
    __real_free(p);
}
#endif

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

#else /* no pool: sanitizer builds, where every buffer stays under the sanitizer's eye */

#define REAL_CALLOC calloc
#define REAL_FREE free

static bool in_pool(const void *p)
{
    (void)p;
    return false;
}

static void slot_put(void *p)
{
    (void)p;
}

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

/* ---- allocator hooks (Mbed TLS 3.x, mbedtls_platform_set_calloc_free) ---------------------- */

/* Set by tlsmem_capture() around mbedtls_ssl_setup(); the broker is single-threaded. */
static struct {
    struct tlsmem_buf *out;
    unsigned left;
} capture;

void tlsmem_capture(struct tlsmem_buf *out, unsigned n)
{
    capture.out = out;
    capture.left = out ? n : 0;
}

void *tlsmem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t total = n * size;
    void *p = NULL;
    /* Only the record buffers are this large among what mbedtls_ssl_setup() allocates. */
    bool record = capture.left && total >= TLSMEM_RECORD_MIN;
#ifdef HAVE_POOL
    if (record && total <= SLOT)
        p = slot_get();
#endif
    if (!p)
        p = REAL_CALLOC(n, size);
    if (record && p) {
        capture.out->p = p;
        capture.out->size = total;
        capture.out++;
        capture.left--;
    }
    return p;
}

void tlsmem_free(void *p)
{
    if (in_pool(p))
        slot_put(p);
    else
        REAL_FREE(p);
}
