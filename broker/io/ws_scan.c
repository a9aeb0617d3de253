/* ws_scan: the HTTP request's end, then RFC 6455 5.2 frame headers. */
#include "ws_scan.h"

#include <string.h>

void ws_scan_init(struct ws_scan *s)
{
    memset(s, 0, sizeof(*s));
}

/* Bytes of the HTTP request; returns how many were consumed (the rest are frames). */
static size_t scan_http(struct ws_scan *s, const uint8_t *p, size_t n)
{
    static const char end[] = "\r\n\r\n";
    size_t i = 0;
    while (i < n && !s->in_frames) {
        uint8_t c = p[i++];
        s->crlf = c == (uint8_t)end[s->crlf] ? s->crlf + 1 : (c == '\r' ? 1 : 0);
        if (s->crlf == 4)
            s->in_frames = 1;
    }
    s->http_len += (uint32_t)i;
    return i;
}

/* Header length once its first two bytes are known: 2, the extended length, the mask key. */
static uint8_t header_need(const uint8_t *h)
{
    uint8_t len7 = h[1] & 0x7F;
    return (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0));
}

static uint64_t payload_len(const uint8_t *h)
{
    uint8_t len7 = h[1] & 0x7F;
    if (len7 < 126)
        return len7;
    uint64_t v = 0;
    for (int i = 0; i < (len7 == 126 ? 2 : 8); i++)
        v = v << 8 | h[2 + i];
    return v;
}

enum ws_scan_result ws_scan_feed(struct ws_scan *s, const uint8_t *p, size_t n)
{
    if (s->hdr_len == 0xFF)
        return WS_SCAN_UNMASKED;
    if (!s->in_frames) {
        size_t used = scan_http(s, p, n);
        if (!s->in_frames)
            return s->http_len > WS_SCAN_HTTP_MAX ? WS_SCAN_TOO_LARGE : WS_SCAN_OK;
        p += used;
        n -= used;
    }
    while (n) {
        if (s->skip) {
            size_t k = s->skip < n ? (size_t)s->skip : n;
            s->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        s->hdr[s->hdr_len++] = *p++;
        n--;
        if (s->hdr_len < 2 || s->hdr_len < header_need(s->hdr))
            continue;
        if (!(s->hdr[1] & 0x80)) {
            s->hdr_len = 0xFF; /* stays in error */
            return WS_SCAN_UNMASKED;
        }
        s->skip = payload_len(s->hdr);
        s->hdr_len = 0;
    }
    return WS_SCAN_OK;
}
