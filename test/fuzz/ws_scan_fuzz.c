/* ws_scan fuzz target: any client byte stream, fed whole, one byte at a time and split at a
 * point taken from the input, must give the same verdict; nothing may read out of bounds. */
#include "ws_scan.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum ws_scan_result feed_split(const uint8_t *p, size_t n, size_t step)
{
    struct ws_scan s;
    ws_scan_init(&s);
    enum ws_scan_result r = WS_SCAN_OK;
    for (size_t i = 0; i < n && r == WS_SCAN_OK; i += step)
        r = ws_scan_feed(&s, p + i, n - i < step ? n - i : step);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum ws_scan_result whole = feed_split(data, size, size ? size : 1);
    if (feed_split(data, size, 1) != whole)
        abort();
    size_t step = size ? 1 + data[0] % size : 1;
    if (feed_split(data, size, step) != whole)
        abort();
    return 0;
}
