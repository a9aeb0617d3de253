/* ocsp_http: an OCSP POST on the broker's loop. Every stage (resolve, connect, write, read) is
 * asynchronous and one timer bounds the whole exchange, so a responder that accepts and never
 * answers costs a socket and a timer, never loop time. */
#include "ocsp_http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADER_MAX (16 * 1024)

int ocsp_url_parse(const char *url, struct ocsp_url *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (strncasecmp(url, "http://", 7) != 0) {
        *why = strncasecmp(url, "https://", 8) == 0 ? "https responders are not supported"
                                                    : "not an http:// URL";
        return -1;
    }
    const char *h = url + 7, *end;
    size_t hl;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end) {
            *why = "unterminated IPv6 address";
            return -1;
        }
        h++;
        hl = (size_t)(end - h);
        end++;
    } else {
        end = h + strcspn(h, ":/?#");
        hl = (size_t)(end - h);
    }
    if (!hl || hl >= sizeof(out->host)) {
        *why = "bad host";
        return -1;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (!isalnum(ch) && !strchr(".-_:%", ch)) {
            *why = "bad character in host";
            return -1;
        }
    }
    memcpy(out->host, h, hl);
    strcpy(out->port, "80");
    if (*end == ':') {
        const char *p = ++end;
        unsigned long port = 0;
        while (isdigit((unsigned char)*end) && end - p < 6)
            port = port * 10 + (unsigned long)(*end++ - '0');
        if (end == p || port == 0 || port > 65535 || (*end && *end != '/')) {
            *why = "bad port";
            return -1;
        }
        snprintf(out->port, sizeof(out->port), "%lu", port);
    }
    if (*end && *end != '/') {
        *why = "bad URL"; /* a query or fragment straight after the authority */
        return -1;
    }
    const char *path = *end ? end : "/";
    if (strlen(path) >= sizeof(out->path)) {
        *why = "path too long";
        return -1;
    }
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f) {
            *why = "bad character in path";
            return -1;
        }
    strcpy(out->path, path);
    return 0;
}

/* A header line "Name: value" (without CRLF) named name? Then *value, *vlen. */
static bool header_is(const uint8_t *line, size_t n, const char *name, const uint8_t **value,
                      size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp((const char *)line, name, nl) != 0)
        return false;
    const uint8_t *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return true;
}

int ocsp_http_parse(const uint8_t *p, size_t n, bool eof, int *status, size_t *body_off,
                    size_t *body_len, const char **why)
{
    const uint8_t *hend = memmem(p, n < HEADER_MAX ? n : HEADER_MAX, "\r\n\r\n", 4);
    if (!hend) {
        if (n >= HEADER_MAX) {
            *why = "response headers too long";
            return -1;
        }
        if (eof) {
            *why = "connection closed before the response headers ended";
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        !isdigit(p[9]) || !isdigit(p[10]) || !isdigit(p[11]) ||
        (hlen > 12 && p[12] != ' ' && p[12] != '\r')) {
        *why = "not an HTTP/1.x response";
        return -1;
    }
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    bool have_len = false;
    size_t clen = 0;
    const uint8_t *line = memchr(p, '\n', hlen);
    while (line && line < hend) {
        line++;
        const uint8_t *le = memchr(line, '\r', (size_t)(hend + 2 - line));
        if (!le)
            break;
        const uint8_t *v;
        size_t vl;
        if (header_is(line, (size_t)(le - line), "Content-Length", &v, &vl)) {
            if (!vl || vl > 9 || have_len) {
                *why = "bad Content-Length";
                return -1;
            }
            clen = 0;
            for (size_t i = 0; i < vl; i++) {
                if (!isdigit(v[i])) {
                    *why = "bad Content-Length";
                    return -1;
                }
                clen = clen * 10 + (size_t)(v[i] - '0');
            }
            have_len = true;
        } else if (header_is(line, (size_t)(le - line), "Transfer-Encoding", &v, &vl) &&
                   !(vl == 8 && !strncasecmp((const char *)v, "identity", 8))) {
            *why = "chunked or encoded responses are not supported";
            return -1;
        }
        line = le + 1;
    }
    size_t off = hlen + 4;
    if (have_len) {
        if (n - off < clen) {
            if (eof) {
                *why = "connection closed before the response body ended";
                return -1;
            }
            return 0;
        }
        *body_off = off;
        *body_len = clen;
        return 1;
    }
    if (!eof)
        return 0;
    *body_off = off;
    *body_len = n - off;
    return 1;
}

/* ---- the exchange ----------------------------------------------------------------------- */

struct ocsp_http {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    uv_write_t write;
    ocsp_http_cb cb;
    void *ud;
    uint32_t timeout_ms;
    int handles;      /* open uv handles */
    bool resolving;   /* uv_getaddrinfo outstanding */
    bool finished;    /* the callback was called, or the request cancelled */
    bool tcp_started; /* tcp handle initialised */
    bool starting;    /* inside ocsp_http_post: failures are reported from the next turn */
    bool deferred;
    char *req;
    size_t req_len;
    uint8_t *resp;
    size_t resp_len, max;
    char err[160];
};

static void maybe_free(struct ocsp_http *h)
{
    if (h->handles || h->resolving)
        return;
    free(h->req);
    free(h->resp);
    free(h);
}

static void handle_closed(uv_handle_t *hd)
{
    struct ocsp_http *h = hd->data;
    h->handles--;
    maybe_free(h);
}

static void teardown(struct ocsp_http *h)
{
    h->finished = true;
    if (h->resolving)
        uv_cancel((uv_req_t *)&h->gai); /* may fail if it already runs: the callback frees */
    if (h->tcp_started && !uv_is_closing((uv_handle_t *)&h->tcp))
        uv_close((uv_handle_t *)&h->tcp, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&h->timer))
        uv_close((uv_handle_t *)&h->timer, handle_closed);
}

static void finish(struct ocsp_http *h, const uint8_t *body, size_t len, const char *err)
{
    if (h->finished)
        return;
    h->finished = true;
    h->cb(h->ud, body, len, err);
    teardown(h);
}

static void fail(struct ocsp_http *h, const char *fmt, const char *detail)
{
    snprintf(h->err, sizeof(h->err), fmt, detail);
    if (h->starting)
        h->deferred = true;
    else
        finish(h, NULL, 0, h->err);
}

static void on_deferred(uv_timer_t *t)
{
    struct ocsp_http *h = t->data;
    finish(h, NULL, 0, h->err);
}

static void on_timeout(uv_timer_t *t)
{
    struct ocsp_http *h = t->data;
    char ms[16];
    snprintf(ms, sizeof(ms), "%u", h->timeout_ms);
    fail(h, "no answer within %s ms", ms);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct ocsp_http *h = hd->data;
    if (!h->resp)
        h->resp = malloc(h->max + 1);
    b->base = (char *)h->resp + h->resp_len;
    /* One spare byte: filling it means the answer is over the limit. */
    b->len = h->resp ? h->max + 1 - h->resp_len : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct ocsp_http *h = s->data;
    if (h->finished || n == 0)
        return;
    if (n < 0 && n != UV_EOF) {
        fail(h, "read: %s", uv_strerror((int)n));
        return;
    }
    if (n > 0)
        h->resp_len += (size_t)n;
    if (h->resp_len > h->max) {
        fail(h, "response larger than %s bytes", "the limit");
        return;
    }
    int status = 0;
    size_t off = 0, len = 0;
    const char *why = NULL;
    int r = ocsp_http_parse(h->resp, h->resp_len, n == UV_EOF, &status, &off, &len, &why);
    if (r < 0) {
        fail(h, "%s", why);
    } else if (r > 0 && status != 200) {
        char st[8];
        snprintf(st, sizeof(st), "%d", status);
        fail(h, "HTTP status %s", st);
    } else if (r > 0) {
        finish(h, h->resp + off, len, NULL);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct ocsp_http *h = w->data;
    if (status < 0 && !h->finished)
        fail(h, "write: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
    struct ocsp_http *h = c->data;
    if (h->finished)
        return;
    if (status < 0) {
        fail(h, "connect: %s", uv_strerror(status));
        return;
    }
    uv_buf_t b = uv_buf_init(h->req, (unsigned)h->req_len);
    h->write.data = h;
    int r = uv_write(&h->write, (uv_stream_t *)&h->tcp, &b, 1, on_write);
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read);
    if (r < 0)
        fail(h, "write: %s", uv_strerror(r));
}

static void start_connect(struct ocsp_http *h, const struct sockaddr *sa)
{
    int r = uv_tcp_init(h->loop, &h->tcp);
    if (r == 0) {
        h->tcp.data = h;
        h->tcp_started = true;
        h->handles++;
        h->connect.data = h;
        r = uv_tcp_connect(&h->connect, &h->tcp, sa, on_connect);
    }
    if (r < 0)
        fail(h, "connect: %s", uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct ocsp_http *h = g->data;
    h->resolving = false;
    if (h->finished) {
        uv_freeaddrinfo(res);
        maybe_free(h);
        return;
    }
    if (status < 0 || !res)
        fail(h, "cannot resolve the responder: %s", status < 0 ? uv_strerror(status) : "none");
    else
        start_connect(h, res->ai_addr);
    uv_freeaddrinfo(res);
}

struct ocsp_http *ocsp_http_post(uv_loop_t *loop, const struct ocsp_url *u, const uint8_t *body,
                                 size_t len, uint32_t timeout_ms, size_t max_response,
                                 ocsp_http_cb cb, void *ud)
{
    struct ocsp_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    h->cb = cb;
    h->ud = ud;
    h->max = max_response;
    h->timeout_ms = timeout_ms;
    bool v6 = strchr(u->host, ':') != NULL;
    char head[1536];
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n"
                      "Content-Type: application/ocsp-request\r\n"
                      "Accept: application/ocsp-response\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      u->path, v6 ? "[" : "", u->host, v6 ? "]" : "",
                      strcmp(u->port, "80") ? ":" : "", strcmp(u->port, "80") ? u->port : "", len);
    h->req = malloc((size_t)hl + len);
    if (!h->req || hl <= 0 || (size_t)hl >= sizeof(head)) {
        free(h->req);
        free(h);
        return NULL;
    }
    memcpy(h->req, head, (size_t)hl);
    memcpy(h->req + hl, body, len);
    h->req_len = (size_t)hl + len;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->handles = 1;
    uv_timer_start(&h->timer, on_timeout, timeout_ms, 0);

    h->starting = true;
    struct sockaddr_storage ss;
    int port = atoi(u->port);
    if (uv_ip4_addr(u->host, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(u->host, port, (struct sockaddr_in6 *)&ss) == 0) {
        start_connect(h, (const struct sockaddr *)&ss);
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        h->gai.data = h;
        int r = uv_getaddrinfo(loop, &h->gai, on_resolved, u->host, u->port, &hints);
        if (r < 0)
            fail(h, "cannot resolve the responder: %s", uv_strerror(r));
        else
            h->resolving = true;
    }
    h->starting = false;
    if (h->deferred)
        uv_timer_start(&h->timer, on_deferred, 0, 0);
    return h;
}

void ocsp_http_cancel(struct ocsp_http *h)
{
    if (h && !h->finished)
        teardown(h);
}
