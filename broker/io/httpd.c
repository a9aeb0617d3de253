/* httpd: see httpd.h. A connection lives: accept -> [TLS handshake] -> request head ->
 * response written -> shutdown, reading (and dropping) until the peer closes or the timer
 * fires -> closed. Closing with unread input would reset the connection and could destroy the
 * response before the peer read it, hence the drain. */
#include "httpd.h"

#include "listener.h"
#include "log.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After the response: time the peer has to read it and close. */
#define HTTPD_LINGER_MS 2000
#define HTTPD_READ_CHUNK 4096

struct hclient {
    struct httpd *h;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t shut;
    struct tls_conn *tls; /* NULL: plain */
    bool handshaken;
    bool answered;
    bool closing;
    uint8_t handles; /* open uv handles */
    size_t in_len;
    uint8_t in[HTTPREQ_MAX];
    uint8_t rd[HTTPD_READ_CHUNK];
    struct buf out; /* bytes inside the uv_write */
    struct hclient *prev, *next;
};

struct httpd {
    uv_loop_t *loop;
    struct listener *l;
    struct httpd_opts o;
    httpd_handler *handler;
    void *ud;
    struct hclient *clients;
    uint32_t count;
    bool closed;
    struct httpd_stats stats;
    struct buf body; /* scratch for the handler */
};

static void maybe_free_server(struct httpd *h)
{
    if (h->closed && !h->clients) {
        if (h->o.tls)
            tls_ctx_unref(h->o.tls);
        buf_free(&h->body);
        free(h);
    }
}

static void client_handle_closed(uv_handle_t *hd)
{
    struct hclient *c = hd->data;
    if (--c->handles)
        return;
    struct httpd *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->count--;
    tls_conn_free(c->tls);
    buf_free(&c->out);
    free(c);
    maybe_free_server(h);
}

static void client_close(struct hclient *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
    uv_close((uv_handle_t *)&c->timer, client_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct hclient *c = t->data;
    if (!c->answered)
        c->h->stats.refused++;
    client_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the linger timer closes it in any case */
}

static void on_written(uv_write_t *req, int status)
{
    struct hclient *c = req->data;
    buf_free(&c->out);
    if (c->closing)
        return;
    if (status < 0 || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, HTTPD_LINGER_MS, 0);
}

/* Hand whatever TLS produced (or the plain bytes already in c->out) to the socket. */
static void flush(struct hclient *c, bool last)
{
    if (c->tls) {
        struct buf *o = tls_conn_output(c->tls);
        if (buf_size(o)) {
            buf_append(&c->out, buf_head(o), buf_size(o));
            buf_consume(o, buf_size(o));
        }
    }
    if (!buf_size(&c->out)) {
        if (last)
            on_written(&c->wr, 0);
        return;
    }
    if (!last) {
        /* Handshake flights: small, and the socket is fresh; a partial write is an error. */
        uv_buf_t b = uv_buf_init((char *)buf_head(&c->out), (unsigned)buf_size(&c->out));
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n != (int)b.len) {
            client_close(c);
            return;
        }
        buf_consume(&c->out, (size_t)n);
        return;
    }
    c->wr.data = c;
    uv_buf_t b = uv_buf_init((char *)buf_head(&c->out), (unsigned)buf_size(&c->out));
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        client_close(c);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static void respond(struct hclient *c, const struct httpd_response *r, bool head_only)
{
    char hdr[512];
    size_t blen = buf_size(r->body);
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     r->status, status_text(r->status),
                     r->content_type ? r->content_type : "text/plain; charset=utf-8", blen,
                     r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "");
    c->answered = true;
    /* A peer that does not read its answer must not hold its slot: the write gets as long as the
     * request had. */
    uv_timer_start(&c->timer, on_timeout, c->h->o.idle_ms, 0);
    if (c->tls) {
        if (tls_conn_write(c->tls, (const uint8_t *)hdr, (size_t)n) < 0 ||
            (!head_only && blen && tls_conn_write(c->tls, buf_head(r->body), blen) < 0)) {
            client_close(c);
            return;
        }
        tls_conn_close_notify(c->tls);
    } else {
        buf_append(&c->out, hdr, (size_t)n);
        if (!head_only && blen)
            buf_append(&c->out, buf_head(r->body), blen);
    }
    flush(c, true);
}

/* Bytes of the request head arrived (plaintext). */
static void request_bytes(struct hclient *c, const uint8_t *p, size_t n)
{
    size_t room = sizeof(c->in) - c->in_len, take = n < room ? n : room;
    memcpy(c->in + c->in_len, p, take);
    c->in_len += take;
    struct httpreq req;
    int r = httpreq_parse(c->in, c->in_len, &req);
    if (r == 0)
        return;
    struct httpd *h = c->h;
    buf_consume(&h->body, buf_size(&h->body));
    struct httpd_response res = {.status = 200, .body = &h->body};
    if (r < 0) {
        h->stats.bad_requests++;
        res.status = -r;
        buf_append(&h->body, status_text(-r), strlen(status_text(-r)));
        buf_append(&h->body, "\n", 1);
        log_debug("metrics: %d answered to a malformed request", -r);
        respond(c, &res, false);
        return;
    }
    h->stats.requests++;
    h->handler(h->ud, &req, &res);
    respond(c, &res, req.method == HTTPREQ_HEAD);
}

static void tls_bytes(struct hclient *c, const uint8_t *p, size_t n)
{
    tls_conn_input(c->tls, p, n);
    if (!c->handshaken) {
        int r = tls_conn_handshake(c->tls);
        flush(c, false);
        if (c->closing || r == TLS_AGAIN)
            return;
        if (r < 0) {
            c->h->stats.refused++;
            log_notice("metrics: refused a scraper: %s: %s",
                       tls_reject_str(tls_conn_reject(c->tls)), tls_conn_error(c->tls));
            client_close(c);
            return;
        }
        c->handshaken = true;
    }
    uint8_t plain[HTTPD_READ_CHUNK];
    for (;;) {
        int r = tls_conn_read(c->tls, plain, sizeof(plain));
        if (r == TLS_AGAIN)
            return;
        if (r <= 0) {
            client_close(c);
            return;
        }
        request_bytes(c, plain, (size_t)r);
        if (c->answered || c->closing)
            return;
    }
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    struct hclient *c = hd->data;
    (void)suggested;
    *b = uv_buf_init((char *)c->rd, sizeof(c->rd));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct hclient *c = s->data;
    if (n < 0) {
        if (!c->answered)
            c->h->stats.refused++;
        client_close(c);
        return;
    }
    if (n == 0 || c->answered || c->closing)
        return; /* after the answer: drained until the peer closes */
    if (c->tls)
        tls_bytes(c, (const uint8_t *)b->base, (size_t)n);
    else
        request_bytes(c, (const uint8_t *)b->base, (size_t)n);
}

static void on_conn(void *ud, uv_stream_t *server)
{
    struct httpd *h = ud;
    struct hclient *c = xcalloc(1, sizeof(*c));
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = h->clients;
    if (h->clients)
        h->clients->prev = c;
    h->clients = c;
    h->count++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        client_close(c);
        return;
    }
    if (h->count > h->o.max_clients) {
        h->stats.refused++;
        log_debug("metrics: more than %u scrapers at once; closing the newest", h->o.max_clients);
        client_close(c);
        return;
    }
    if (h->o.tls)
        c->tls = tls_conn_new(h->o.tls);
    uv_timer_start(&c->timer, on_timeout, h->o.idle_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        client_close(c);
}

struct httpd *httpd_open(uv_loop_t *loop, const struct httpd_opts *o, httpd_handler *handler,
                         void *ud, int *err)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->o = *o;
    h->o.address = NULL; /* the caller's string is only needed to bind */
    h->handler = handler;
    h->ud = ud;
    buf_init(&h->body);
    h->l = listener_open(loop, o->address, o->port, false, on_conn, h, err);
    if (!h->l) {
        free(h);
        return NULL;
    }
    if (o->tls)
        tls_ctx_ref(o->tls);
    return h;
}

uint16_t httpd_port(const struct httpd *h)
{
    return listener_port(h->l);
}

void httpd_set_tls(struct httpd *h, struct tls_ctx *ctx)
{
    if (!h->o.tls)
        return;
    tls_ctx_ref(ctx);
    tls_ctx_unref(h->o.tls);
    h->o.tls = ctx;
}

const struct httpd_stats *httpd_stats(const struct httpd *h)
{
    return &h->stats;
}

void httpd_close(struct httpd *h)
{
    if (!h)
        return;
    listener_close(h->l);
    h->l = NULL;
    h->closed = true;
    for (struct hclient *c = h->clients; c; c = c->next)
        client_close(c);
    maybe_free_server(h);
}
