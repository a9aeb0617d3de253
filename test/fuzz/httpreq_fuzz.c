/* httpreq fuzz target: any bytes a scraper (or anyone reaching the metrics port) sends. The
 * verdict may only firm up as bytes arrive: a prefix that is refused is refused whole, a prefix
 * that is complete gives the same head whole; nothing is read beyond n (exact-size copies) and a
 * complete head is never longer than HTTPREQ_MAX, its path inside it. */
#include "httpreq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse_prefix(const uint8_t *data, size_t n, struct httpreq *out, size_t *path_off)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, data, n);
    else
        copy[0] = 0; /* never read (n is 0), but the optimiser cannot know */
    int r = httpreq_parse(copy, n, out);
    if (r > 0) {
        if (out->path < copy || out->path + out->path_len > copy + r)
            abort();
        *path_off = (size_t)(out->path - copy);
    }
    free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct httpreq whole;
    size_t whole_off = 0;
    int r = parse_prefix(data, size, &whole, &whole_off);
    if (r > HTTPREQ_MAX || (r > 0 && (size_t)r > size))
        abort();
    if (r > 0 && (whole.method < HTTPREQ_GET || whole.method > HTTPREQ_OTHER || !whole.path_len))
        abort();
    /* Every prefix would be quadratic on large inputs; a stride keeps it fast yet covers the
     * short ones completely. */
    size_t step = size > 512 ? size / 256 : 1;
    for (size_t k = 0; k < size; k += step) {
        struct httpreq part;
        size_t off = 0;
        int rk = parse_prefix(data, k, &part, &off);
        if (rk < 0 && rk != r)
            abort();
        if (rk > 0 && (rk != r || off != whole_off || part.path_len != whole.path_len ||
                       part.method != whole.method || part.headers != whole.headers))
            abort();
    }
    return 0;
}
