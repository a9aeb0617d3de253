/* httpreq: see httpreq.h. Works line by line over the complete lines present: a verdict on a
 * prefix is never contradicted by more bytes (the fuzz target checks it). */
#include "httpreq.h"

#include <stdbool.h>
#include <string.h>

#define HTTP_BAD_REQUEST 400
#define HTTP_URI_TOO_LONG 414
#define HTTP_HEADERS_TOO_LARGE 431
#define HTTP_VERSION_UNSUPPORTED 505

/* RFC 9110 tchar. */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* The end of the line starting at p (index of its '\r'), or -1 when no CRLF is in sight.
 * A '\n' without its '\r' before it, or a '\r' not followed by '\n', is an error (-2). */
static long line_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            return -2;
        if (p[i] == '\r') {
            if (i + 1 == n)
                return -1;
            return p[i + 1] == '\n' ? (long)i : -2;
        }
    }
    return -1;
}

static bool token_eq(const uint8_t *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

static bool token_ieq(const uint8_t *p, size_t n, const char *s)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] >= 'A' && p[i] <= 'Z' ? (uint8_t)(p[i] + 32) : p[i];
        if (c != (uint8_t)s[i])
            return false;
    }
    return true;
}

static int request_line(const uint8_t *p, size_t n, struct httpreq *out)
{
    size_t m = 0;
    while (m < n && is_tchar(p[m]))
        m++;
    if (m == 0 || m == n || p[m] != ' ')
        return -HTTP_BAD_REQUEST;
    out->method = token_eq(p, m, "GET")    ? HTTPREQ_GET
                  : token_eq(p, m, "HEAD") ? HTTPREQ_HEAD
                                           : HTTPREQ_OTHER;
    size_t t = m + 1, e = t;
    while (e < n && is_vchar(p[e]))
        e++;
    if (e == t || e == n || p[e] != ' ' || p[t] != '/')
        return -HTTP_BAD_REQUEST;
    const uint8_t *q = memchr(p + t, '?', e - t);
    out->path = p + t;
    out->path_len = (size_t)((q ? q : p + e) - (p + t));
    const uint8_t *v = p + e + 1;
    size_t vn = n - e - 1;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -HTTP_BAD_REQUEST;
    if (v[5] != '1' || v[7] > '1')
        return -HTTP_VERSION_UNSUPPORTED;
    out->version_minor = (uint8_t)(v[7] - '0');
    return 0;
}

/* One "name: value" line; a body announced is refused. */
static int header_line(const uint8_t *p, size_t n)
{
    size_t m = 0;
    while (m < n && is_tchar(p[m]))
        m++;
    if (m == 0 || m == n || p[m] != ':')
        return -HTTP_BAD_REQUEST;
    size_t v = m + 1;
    for (size_t i = v; i < n; i++)
        if (!is_vchar(p[i]) && p[i] != ' ' && p[i] != '\t')
            return -HTTP_BAD_REQUEST;
    while (v < n && (p[v] == ' ' || p[v] == '\t'))
        v++;
    size_t ve = n;
    while (ve > v && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    if (token_ieq(p, m, "transfer-encoding"))
        return -HTTP_BAD_REQUEST;
    if (token_ieq(p, m, "content-length") && !token_eq(p + v, ve - v, "0"))
        return -HTTP_BAD_REQUEST;
    return 0;
}

int httpreq_parse(const uint8_t *p, size_t n, struct httpreq *out)
{
    memset(out, 0, sizeof(*out));
    size_t at = 0;
    bool first = true;
    for (;;) {
        size_t avail = n - at;
        if (at + avail > HTTPREQ_MAX)
            avail = HTTPREQ_MAX - at; /* nothing past the limit can help */
        long e = line_end(p + at, avail);
        if (e == -2)
            return -HTTP_BAD_REQUEST;
        if (e < 0) {
            if (at + avail < HTTPREQ_MAX)
                return 0;
            return first ? -HTTP_URI_TOO_LONG : -HTTP_HEADERS_TOO_LARGE;
        }
        const uint8_t *line = p + at;
        size_t len = (size_t)e;
        at += len + 2;
        if (first) {
            int r = request_line(line, len, out);
            if (r < 0)
                return r;
            first = false;
            continue;
        }
        if (len == 0)
            return (int)at;
        if (line[0] == ' ' || line[0] == '\t')
            return -HTTP_BAD_REQUEST; /* obsolete line folding */
        if (out->headers >= HTTPREQ_MAX_HEADERS)
            return -HTTP_HEADERS_TOO_LARGE;
        out->headers++;
        int r = header_line(line, len);
        if (r < 0)
            return r;
    }
}
