/* ws_scan: the upgrade request's end, frame headers of every length form, masked frames let
 * through, an unmasked one caught wherever the stream is split, an oversized request refused. */
#include "check.h"
#include "ws_scan.h"

#include <string.h>

static const char REQ[] = "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";

static size_t frame(uint8_t *out, size_t len, int masked)
{
    size_t n = 0;
    out[n++] = 0x82;
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked)
        for (int i = 0; i < 4; i++)
            out[n++] = (uint8_t)(0xA0 + i);
    memset(out + n, 0x55, len);
    return n + len;
}

static enum ws_scan_result feed(const uint8_t *p, size_t n, size_t step)
{
    struct ws_scan s;
    ws_scan_init(&s);
    enum ws_scan_result r = WS_SCAN_OK;
    for (size_t i = 0; i < n && r == WS_SCAN_OK; i += step)
        r = ws_scan_feed(&s, p + i, n - i < step ? n - i : step);
    return r;
}

int main(void)
{
    static uint8_t buf[200000];
    size_t n = strlen(REQ);
    memcpy(buf, REQ, n);
    n += frame(buf + n, 10, 1);
    n += frame(buf + n, 300, 1);   /* 16-bit length */
    n += frame(buf + n, 70000, 1); /* 64-bit length */
    size_t good = n;
    for (size_t step = 1; step <= 7; step++)
        CHECK_EQ_INT(feed(buf, good, step), WS_SCAN_OK);
    CHECK_EQ_INT(feed(buf, good, good), WS_SCAN_OK);
    /* Payload bytes that look like an unmasked header are payload, not a frame. */
    memset(buf + good - 100, 0x02, 100);
    CHECK_EQ_INT(feed(buf, good, 3), WS_SCAN_OK);
    n += frame(buf + n, 5, 0);
    for (size_t step = 1; step <= 9; step++)
        CHECK_EQ_INT(feed(buf, n, step), WS_SCAN_UNMASKED);
    CHECK_EQ_INT(feed(buf, n, n), WS_SCAN_UNMASKED);
    /* "\r\r\n\r\n" still ends the request. */
    const char odd[] = "GET / HTTP/1.1\r\r\n\r\n";
    struct ws_scan s;
    ws_scan_init(&s);
    CHECK_EQ_INT(ws_scan_feed(&s, (const uint8_t *)odd, strlen(odd)), WS_SCAN_OK);
    uint8_t f[16];
    size_t fl = frame(f, 1, 0);
    CHECK_EQ_INT(ws_scan_feed(&s, f, fl), WS_SCAN_UNMASKED);
    CHECK_EQ_INT(ws_scan_feed(&s, f, 0), WS_SCAN_UNMASKED); /* stays in error */
    /* A request that never ends. */
    ws_scan_init(&s);
    memset(buf, 'a', WS_SCAN_HTTP_MAX + 1);
    CHECK_EQ_INT(ws_scan_feed(&s, buf, WS_SCAN_HTTP_MAX), WS_SCAN_OK);
    CHECK_EQ_INT(ws_scan_feed(&s, buf, 1), WS_SCAN_TOO_LARGE);
    return check_finish("ws_scan_test");
}
