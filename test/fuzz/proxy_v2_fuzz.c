/* proxy_v2 fuzz target: any first bytes of a connection. The verdict may only firm up as bytes
 * arrive: a prefix that needs more never contradicts the whole, an error stays an error, and a
 * complete header gives the same length and addresses however much follows it. Nothing may be
 * read beyond n (ASan sees the exact-size copies) nor beyond PROXY_V2_MAX bytes. */
#include "proxy_v2.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An exact-size copy, so a read past n is a heap overflow ASan reports. */
static int parse_prefix(const uint8_t *data, size_t n, struct proxy_v2 *out)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, data, n);
    int r = proxy_v2_parse(copy, n, out);
    free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_v2 whole;
    int r = parse_prefix(data, size, &whole);
    if (r > PROXY_V2_MAX || (r > 0 && (size_t)r > size))
        abort();
    for (size_t k = 0; k < size && k <= PROXY_V2_MAX; k++) {
        struct proxy_v2 part;
        int rk = parse_prefix(data, k, &part);
        if (rk == 0)
            continue;
        if (rk < 0 && r >= 0)
            abort(); /* refused on a prefix, accepted whole */
        if (rk > 0 && (rk != r || memcmp(&part, &whole, sizeof(part)) != 0))
            abort(); /* complete on a prefix, something else whole */
    }
    if (r > 0 && whole.command == PROXY_V2_PROXY && whole.src.len != 4 && whole.src.len != 16)
        abort();
    return 0;
}
