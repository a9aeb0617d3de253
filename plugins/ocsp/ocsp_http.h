/* ocsp_http: one HTTP/1.1 POST over plain TCP on a libuv loop, for OCSP (RFC 6960 appendix A).
 *
 * Just enough HTTP for an OCSP responder: "Connection: close", a Content-Length or
 * read-to-close body, a bounded response size, one deadline for the whole exchange. The URL and
 * the response come from certificates and from the network, so both parsers are pure functions
 * with a fuzz target. */
#ifndef CERTMQ_OCSP_HTTP_H
#define CERTMQ_OCSP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ocsp_url {
    char host[256]; /* without brackets for IPv6 literals */
    char port[8];
    char path[1024];
};

/* "http://host[:port][/path]". 0, or -1 with *why. https is refused (responses are signed, and
 * RFC 6960 responders speak plain HTTP). */
int ocsp_url_parse(const char *url, struct ocsp_url *out, const char **why);

/* Parse the response in p[0..n). eof: the peer has closed. Returns 1 when complete (status and
 * the body's place filled in), 0 when more bytes are needed, -1 on a malformed or unsupported
 * response (*why says which). */
int ocsp_http_parse(const uint8_t *p, size_t n, bool eof, int *status, size_t *body_off,
                    size_t *body_len, const char **why);

struct ocsp_http;
/* Called exactly once unless the request is cancelled: err NULL and the body of a 200 answer,
 * or err set. body is valid during the call only. */
typedef void (*ocsp_http_cb)(void *ud, const uint8_t *body, size_t len, const char *err);

/* Starts at once; the callback always comes from a later loop turn. */
struct ocsp_http *ocsp_http_post(uv_loop_t *loop, const struct ocsp_url *u, const uint8_t *body,
                                 size_t len, uint32_t timeout_ms, size_t max_response,
                                 ocsp_http_cb cb, void *ud);
/* The callback will not be called; the request frees itself once its handles are closed. */
void ocsp_http_cancel(struct ocsp_http *h);

#endif
