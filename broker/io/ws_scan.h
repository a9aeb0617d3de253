/* ws_scan: watches the bytes a WebSocket client sends, for what libwebsockets lets through.
 *
 * RFC 6455 5.1: a server MUST close the connection when a client frame is not masked; lws 4.1
 * accepts them. The scanner follows the stream without copying it: the HTTP upgrade request up
 * to its empty line, then frame headers (their length fields say how much payload to skip). It
 * is pure (no I/O, no allocation), fed in pieces of any size. */
#ifndef CERTMQ_WS_SCAN_H
#define CERTMQ_WS_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum ws_scan_result {
    WS_SCAN_OK = 0,
    WS_SCAN_UNMASKED = -1,  /* a client frame without a mask */
    WS_SCAN_TOO_LARGE = -2, /* HTTP request headers beyond WS_SCAN_HTTP_MAX */
};

/* An upgrade request is a few hundred bytes; lws refuses far less than this anyway. */
#define WS_SCAN_HTTP_MAX (16 * 1024)

struct ws_scan {
    uint8_t in_frames; /* past the HTTP request */
    uint8_t crlf;      /* bytes of "\r\n\r\n" matched so far */
    uint8_t hdr[14];   /* the frame header being read */
    uint8_t hdr_len;
    uint32_t http_len;
    uint64_t skip; /* payload bytes left in the current frame */
};

/* Start of a connection: zeroed. */
void ws_scan_init(struct ws_scan *s);
/* The next n bytes from the client. Once it returns an error the stream is not to be trusted
 * (and the scanner stays in error). */
enum ws_scan_result ws_scan_feed(struct ws_scan *s, const uint8_t *p, size_t n);

#endif
