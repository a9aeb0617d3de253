/* httpd: a small HTTP/1.1 server on the loop, for the metrics endpoint. One request per
 * connection (answered with Connection: close), the head parsed by httpreq (strict, bounded),
 * at most max_clients connections at once (more are closed at accept), each given idle_ms to
 * send its request and as long again to take the answer. Optionally over mutual TLS through
 * the tls module's engine (the client's certificate verified like a device's: chain, validity,
 * CRLs, EKU, identity).
 *
 * Knows nothing of what it serves: the handler fills the response for a valid request; bad
 * requests (400, 414, 431, 505) are answered here without calling it. */
#ifndef CERTMQ_HTTPD_H
#define CERTMQ_HTTPD_H

#include "buf.h"
#include "httpreq.h"
#include "tls.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct httpd_response {
    int status;               /* default 200 */
    const char *content_type; /* default text/plain */
    const char *allow;        /* for 405: the Allow header */
    struct buf *body;         /* the server's scratch body, empty at the call */
};

typedef void httpd_handler(void *ud, const struct httpreq *req, struct httpd_response *res);

struct httpd_opts {
    const char *address; /* numeric */
    uint16_t port;
    uint32_t max_clients;
    uint32_t idle_ms;    /* from accept to a complete request */
    struct tls_ctx *tls; /* NULL: plain HTTP; else mutual TLS (httpd takes a reference) */
};

struct httpd_stats {
    uint64_t requests;     /* answered by the handler */
    uint64_t bad_requests; /* answered 4xx/5xx by httpd itself */
    uint64_t refused;      /* over max_clients, idle timeout, TLS handshake refused */
};

struct httpd;
/* NULL with *err (a uv error) when it cannot listen. */
struct httpd *httpd_open(uv_loop_t *loop, const struct httpd_opts *o, httpd_handler *h, void *ud,
                         int *err);
uint16_t httpd_port(const struct httpd *h);
/* New TLS connections use ctx from now on (httpd takes a reference; connections in progress keep
 * theirs). Only for a server opened with TLS. */
void httpd_set_tls(struct httpd *h, struct tls_ctx *ctx);
const struct httpd_stats *httpd_stats(const struct httpd *h);
/* Stop listening and drop every connection; the memory goes once the loop has closed the
 * handles. */
void httpd_close(struct httpd *h);

#endif
