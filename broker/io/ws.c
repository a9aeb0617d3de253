/* ws: the socketpair bridge between our TLS plaintext and libwebsockets.
 *
 * Each bridged connection is a socketpair: our end is a uv_pipe_t, lws's end is adopted into a
 * plaintext, non-listening vhost whose only protocols are "mqtt" and "mqttv3.1". A ws_conn is
 * held by its pipe handle and by its wsi (released in WSI_DESTROY, the one callback every wsi
 * gets); the owner only holds a pointer until ws_conn_release(). Server-initiated graceful
 * close is deferred to the next loop turn and done with lws_close_reason() + a synchronous
 * kill timeout, the workaround for Debian's lws 4.1.6 double close on the libuv backend. */
#include "ws.h"

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_MAX 16384

struct ws_ctx {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    uv_loop_t *loop;
    uv_timer_t closer; /* runs deferred closes outside lws callbacks */
    bool stopped;
    size_t live; /* bridged connections not yet freed */
    struct ws_conn *close_head;
    uint8_t frame[LWS_PRE + FRAME_MAX];
};

struct ws_conn {
    struct ws_ctx *w;
    const struct ws_io *io;
    void *ud;
    uv_pipe_t pipe;
    struct lws *wsi;
    struct buf out;
    size_t pipe_queued;
    int refs;
    bool pipe_open;
    bool close_pending;
    bool text_message; /* the WebSocket message being received is a text message */
    uint16_t close_code;
    char close_reason[64];
    struct ws_conn *close_next;
};

struct pwrite {
    uv_write_t req;
    struct ws_conn *c;
    size_t len;
    uint8_t data[];
};

static void unref(struct ws_conn *c)
{
    if (--c->refs == 0) {
        c->w->live--;
        buf_free(&c->out);
        free(c);
    }
}

/* ---- lws side ----------------------------------------------------------------------------- */

static void writeable(struct ws_conn *c, struct lws *wsi)
{
    size_t n = buf_size(&c->out);
    if (n > FRAME_MAX)
        n = FRAME_MAX;
    if (!n)
        return;
    uint8_t *f = c->w->frame + LWS_PRE;
    memcpy(f, buf_head(&c->out), n);
    buf_consume(&c->out, n);
    if (lws_write(wsi, f, n, LWS_WRITE_BINARY) < (int)n)
        return;
    if (buf_size(&c->out))
        lws_callback_on_writable(wsi);
    else
        buf_shrink(&c->out, 0);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct ws_conn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        /* lws falls back to the first protocol when none is offered: refuse that here. */
        char proto[64];
        return lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL) <= 0 ? 1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        c->wsi = wsi;
        if (c->ud)
            c->io->established(c->ud);
        if (buf_size(&c->out))
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c || !c->ud)
            return -1;
        /* Continuation frames carry no type of their own: the first fragment decides. */
        if (lws_is_first_fragment(wsi))
            c->text_message = !lws_frame_is_binary(wsi);
        if (c->text_message) {
            static const char why[] = "MQTT needs binary frames";
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)why,
                             sizeof(why) - 1);
            return -1;
        }
        c->io->message(c->ud, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c)
            writeable(c, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c) {
            lws_set_opaque_user_data(wsi, NULL);
            c->wsi = NULL;
            unref(c);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"mqtt", ws_callback, 0, 0, 0, NULL, 0},
    {"mqttv3.1", ws_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOGL_ERR : LOGL_WEBSOCKETS, "websockets: %.*s", (int)n, line);
}

static void run_closes(uv_timer_t *t)
{
    struct ws_ctx *w = t->data;
    struct ws_conn *c = w->close_head;
    w->close_head = NULL;
    while (c) {
        struct ws_conn *next = c->close_next;
        c->close_next = NULL;
        if (c->close_pending && c->wsi) {
            c->close_pending = false;
            lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                             (unsigned char *)c->close_reason, strlen(c->close_reason));
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
        }
        unref(c);
        c = next;
    }
}

struct ws_ctx *ws_ctx_new(uv_loop_t *loop, unsigned max_clients)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct ws_ctx *w = xcalloc(1, sizeof(*w));
    w->loop = loop;
    void *foreign[1] = {loop};
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    ci.foreign_loops = foreign;
    ci.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    ci.fd_limit_per_thread = 16 + 3 * max_clients;
    w->ctx = lws_create_context(&ci);
    if (!w->ctx) {
        log_err("websockets: cannot create the libwebsockets context (is the package "
                "libwebsockets-evlib-uv installed?)");
        free(w);
        return NULL;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.vhost_name = "mqtt-ws";
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    w->vh = lws_create_vhost(w->ctx, &vi);
    if (!w->vh) {
        log_err("websockets: cannot create the vhost");
        lws_context_destroy(w->ctx);
        free(w);
        return NULL;
    }
    uv_timer_init(loop, &w->closer);
    w->closer.data = w;
    return w;
}

static void closer_closed(uv_handle_t *h)
{
    free(h->data);
}

size_t ws_ctx_live(const struct ws_ctx *w)
{
    return w->live;
}

void ws_ctx_stop(struct ws_ctx *w)
{
    if (w && !w->stopped) {
        w->stopped = true;
        uv_timer_stop(&w->closer);
        lws_context_destroy(w->ctx);
    }
}

void ws_ctx_free(struct ws_ctx *w)
{
    if (!w)
        return;
    ws_ctx_stop(w);
    /* The second call frees what lws could only free after its handles closed. */
    lws_context_destroy(w->ctx);
    uv_close((uv_handle_t *)&w->closer, closer_closed);
}

/* ---- our side of the bridge --------------------------------------------------------------- */

static void pipe_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void close_pipe(struct ws_conn *c)
{
    if (!c->pipe_open)
        return;
    c->pipe_open = false;
    uv_close((uv_handle_t *)&c->pipe, pipe_closed);
    if (c->ud) {
        void *ud = c->ud;
        c->ud = NULL;
        c->io->closed(ud);
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct ws_conn *c = h->data;
    b->base = (char *)c->w->frame;
    b->len = sizeof(c->w->frame);
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct ws_conn *c = s->data;
    if (n > 0 && c->ud)
        c->io->send(c->ud, (const uint8_t *)b->base, (size_t)n);
    else if (n < 0)
        close_pipe(c); /* lws closed its end: it is done */
}

static void pipe_written(uv_write_t *req, int status)
{
    struct pwrite *pw = (struct pwrite *)req;
    struct ws_conn *c = pw->c;
    c->pipe_queued -= pw->len;
    free(pw);
    if (c->pipe_queued == 0 && c->ud)
        c->io->drained(c->ud);
    unref(c);
}

struct ws_conn *ws_conn_new(struct ws_ctx *w, const struct ws_io *io, void *ud)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        log_err("websockets: socketpair: %s", strerror(errno));
        return NULL;
    }
    struct ws_conn *c = xcalloc(1, sizeof(*c));
    c->w = w;
    c->io = io;
    c->ud = ud;
    uv_pipe_init(w->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_pipe_open(&c->pipe, sv[0]) != 0) {
        close(sv[0]);
        close(sv[1]);
        uv_close((uv_handle_t *)&c->pipe, (uv_close_cb)free);
        return NULL;
    }
    c->pipe_open = true;
    c->refs = 2; /* the pipe handle and the wsi */
    w->live++;
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof(ad));
    ad.vh = w->vh;
    ad.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP;
    ad.fd.sockfd = sv[1];
    ad.opaque = c;
    if (!lws_adopt_descriptor_vhost_via_info(&ad)) {
        /* lws closed sv[1] itself. */
        c->refs = 1;
        c->ud = NULL;
        close_pipe(c);
        return NULL;
    }
    uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, pipe_read);
    return c;
}

void ws_conn_feed(struct ws_conn *c, const uint8_t *p, size_t n)
{
    if (!c->pipe_open || !n)
        return;
    if (c->pipe_queued == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (!n)
        return;
    struct pwrite *pw = xmalloc(sizeof(*pw) + n);
    memcpy(pw->data, p, n);
    pw->c = c;
    pw->len = n;
    c->refs++;
    c->pipe_queued += n;
    uv_buf_t b = uv_buf_init((char *)pw->data, (unsigned)n);
    if (uv_write(&pw->req, (uv_stream_t *)&c->pipe, &b, 1, pipe_written) != 0) {
        c->pipe_queued -= n;
        c->refs--;
        free(pw);
        close_pipe(c);
    }
}

void ws_conn_write(struct ws_conn *c, const uint8_t *p, size_t n)
{
    buf_append(&c->out, p, n);
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

size_t ws_conn_backlog(const struct ws_conn *c)
{
    return buf_size(&c->out) + c->pipe_queued;
}

void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->close_pending || !c->wsi)
        return;
    c->close_pending = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "");
    c->refs++;
    c->close_next = c->w->close_head;
    c->w->close_head = c;
    uv_timer_start(&c->w->closer, run_closes, 0, 0);
}

void ws_conn_release(struct ws_conn *c)
{
    c->ud = NULL;
    close_pipe(c);
}

const char *ws_library_version(void)
{
    return lws_get_library_version();
}
