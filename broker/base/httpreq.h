/* httpreq: a strict, bounded parser for the head of an HTTP/1.x request (the metrics endpoint's
 * only input from the network). Pure: bytes in, a verdict out; no allocation, no I/O.
 *
 * Accepted: "METHOD SP /target SP HTTP/1.0|1.1 CRLF", at most HTTPREQ_MAX_HEADERS header lines
 * "name: value CRLF" (token name, visible ASCII, space or tab in the value), then CRLF; the whole
 * head within HTTPREQ_MAX bytes. Refused with the HTTP status to answer: bare LF line ends,
 * obsolete line folding, control bytes, a target not starting with '/', other versions, and any
 * request that announces a body (Content-Length other than 0, Transfer-Encoding): the endpoint
 * reads no bodies, and a body it did not read could be taken for the next request. */
#ifndef CERTMQ_HTTPREQ_H
#define CERTMQ_HTTPREQ_H

#include <stddef.h>
#include <stdint.h>

/* A scraper's GET is ~200 bytes; 4 KiB leaves room for proxies' headers. */
#define HTTPREQ_MAX 4096
#define HTTPREQ_MAX_HEADERS 32

enum httpreq_method { HTTPREQ_GET = 1, HTTPREQ_HEAD, HTTPREQ_OTHER };

struct httpreq {
    enum httpreq_method method;
    const uint8_t *path; /* borrowed from the input; without the query string */
    size_t path_len;
    uint8_t version_minor; /* HTTP/1.x */
    uint8_t headers;       /* header lines seen */
};

/* > 0: a complete head of that many bytes (out filled); 0: a valid beginning, need more;
 * < 0: minus the HTTP status to answer (400, 414, 431, 505), already certain from these bytes
 * whatever follows them. */
int httpreq_parse(const uint8_t *p, size_t n, struct httpreq *out);

#endif
