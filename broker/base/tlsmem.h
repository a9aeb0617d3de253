/* tlsmem: lazily resident memory for Mbed TLS's record buffers.
 *
 * Mbed TLS 2.28 (Debian build) allocates two 16,717-byte record buffers per connection with
 * calloc, and glibc's calloc touches every page of them, so an idle connection keeps ~33 KB
 * resident although it only ever uses the first pages. certmq links Mbed TLS statically with
 * `-Wl,--wrap=calloc,--wrap=free`; the wrappers here hand out those two sizes from a reserved
 * mmap region instead, whose untouched pages never become resident, and give a slot back with
 * madvise(MADV_DONTNEED) (which also makes it read as zeros again). Everything else goes to the
 * real allocator. Measured in shared/notes/mbedtls-2.28.md section 3.
 *
 * Mbed TLS 3.x offers allocator hooks (MBEDTLS_PLATFORM_MEMORY, mbedtls_platform_set_calloc_free)
 * instead: tls.c installs tlsmem_calloc/tlsmem_free and brackets mbedtls_ssl_setup() with
 * tlsmem_capture(), so the two record buffers it allocates come from the pool (and tls.c learns
 * where they are, which 3.x's public API does not say). */
#ifndef CERTMQ_TLSMEM_H
#define CERTMQ_TLSMEM_H

#include <stdbool.h>
#include <stddef.h>
/* Give the pages of a record buffer back to the kernel while it stays allocated; they read as
 * zeros when next touched. False (nothing done) when p is not a pooled buffer. */
bool tlsmem_release(void *p);
/* Is p a pooled record buffer? Freeing one discards its pages (MADV_DONTNEED), which wipes it
 * as surely as zeroing it would, without touching ~33 KB per connection first. */
bool tlsmem_owns(const void *p);

/* A record buffer seen by tlsmem_calloc while capturing. */
struct tlsmem_buf {
    void *p;
    size_t size;
};
/* Allocations at least this large while capturing are record buffers (16 KiB of content). */
#define TLSMEM_RECORD_MIN 16384u
/* Until n such allocations were seen, record them in out[] (and serve them from the pool when
 * there is one); tlsmem_capture(NULL, 0) stops. */
void tlsmem_capture(struct tlsmem_buf *out, unsigned n);
/* calloc/free for mbedtls_platform_set_calloc_free (any pointer from either may be freed). */
void *tlsmem_calloc(size_t n, size_t size);
void tlsmem_free(void *p);

/* Slots in use and slots ever handed out (for $SYS / tests). */
size_t tlsmem_in_use(void);
size_t tlsmem_capacity(void);

#endif
