/* conn_ws: MQTT over WebSocket as a conn transport (conn_ops).
 *
 * Between conn's TLS stream and ws (libwebsockets on the socketpair bridge): plaintext from TLS
 * is fed to lws, lws's output (HTTP response, frames) is encrypted and sent, and the payload of
 * binary frames is the user's byte stream. The user's on_ready waits for the HTTP upgrade; a
 * graceful close sends a close frame and waits (C_ENDING, bounded by CLOSE_GRACE_MS) for lws to
 * finish the WebSocket close before TLS ends. Knows neither MQTT nor the handshake. */
#include "conn_internal.h"

#include "log.h"
#include "ws.h"
#include "ws_scan.h"
#include "xmalloc.h"

#include <stdlib.h>

/* RFC 6455 7.4.1: normal closure; protocol error. */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL_ERROR 1002

/* c->tp: the lws bridge, and our own look at what the client sends (ws_scan). */
struct wsc {
    struct ws_conn *ws;
    struct ws_scan scan;
};

static struct ws_conn *bridge_of(const struct conn *c)
{
    return c->tp ? ((const struct wsc *)c->tp)->ws : NULL;
}

static void wsc_free(struct conn *c)
{
    free(c->tp);
    c->tp = NULL;
}

static const struct ws_io bridge;

/* The HTTP upgrade did not complete within the handshake time limit. */
static void upgrade_expired(struct conn *c)
{
    c->env->stats.refused++;
    c->env->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
    log_notice("refused %s: WebSocket upgrade not completed within %u ms", c->addr,
               c->env->o.handshake_timeout_ms);
    conn__finish_close(c, false);
}

static void ws_open(struct conn *c)
{
    /* MQTT starts after the HTTP upgrade; a fresh handshake deadline covers it. */
    conn__deadline(c, c->env->o.handshake_timeout_ms, upgrade_expired);
    struct wsc *w = xcalloc(1, sizeof(*w));
    ws_scan_init(&w->scan);
    c->tp = w;
    w->ws = ws_conn_new(c->tp_ctx, &bridge, c);
    if (!w->ws) {
        wsc_free(c);
        conn__start_close(c, false);
    }
}

static void ws_input(struct conn *c, const uint8_t *p, size_t n)
{
    if (!c->tp)
        return;
    struct wsc *w = c->tp;
    enum ws_scan_result r = ws_scan_feed(&w->scan, p, n);
    if (r != WS_SCAN_OK) {
        /* Nothing more reaches lws: it would accept what RFC 6455 says to refuse. */
        if (c->state != C_OPEN)
            return; /* already closing */
        log_notice("closing %s (%s): %s", c->addr, conn_peer(c)->identity,
                   r == WS_SCAN_UNMASKED ? "unmasked WebSocket frame from the client (RFC 6455 5.1)"
                                         : "HTTP upgrade request too large");
        if (!c->user_ready) {
            conn__finish_close(c, false);
            return;
        }
        ws_conn_close(w->ws, WS_CLOSE_PROTOCOL_ERROR, "");
        conn__begin_ending(c);
        return;
    }
    ws_conn_feed(w->ws, p, n);
    if (c->tp)
        conn__check_backlog(c); /* lws is not keeping up: stop reading the peer until it does */
}

static int ws_write(struct conn *c, const uint8_t *p, size_t n)
{
    if (!c->tp)
        return -1;
    ws_conn_write(bridge_of(c), p, n);
    conn__check_backlog(c);
    return 0;
}

/* Graceful: a close frame, then lws finishes the WebSocket close before TLS ends. */
static bool ws_close(struct conn *c)
{
    if (!c->tp || !c->user_ready)
        return false;
    conn__begin_ending(c);
    ws_conn_close(bridge_of(c), WS_CLOSE_NORMAL, "");
    return true;
}

static size_t ws_backlog(const struct conn *c)
{
    return c->tp ? ws_conn_backlog(bridge_of(c)) : 0;
}

static void ws_release(struct conn *c)
{
    if (c->tp) {
        ws_conn_release(bridge_of(c));
        wsc_free(c);
    }
}

const struct conn_ops conn__ws_ops = {
    .open = ws_open,
    .input = ws_input,
    .write = ws_write,
    .close = ws_close,
    .backlog = ws_backlog,
    .release = ws_release,
};

/* ---- the bridge's view of the connection ----------------------------------------------------- */

static void bridge_established(void *ud)
{
    struct conn *c = ud;
    if (c->state == C_OPEN)
        conn__user_ready(c);
}

static void bridge_message(void *ud, const uint8_t *p, size_t n)
{
    struct conn *c = ud;
    if (c->state == C_OPEN && c->user_ready)
        c->cbs->on_data(c->ud, c, p, n);
}

static void bridge_send(void *ud, const uint8_t *p, size_t n)
{
    struct conn *c = ud;
    if (c->state != C_OPEN && c->state != C_ENDING)
        return;
    if (tls_conn_write(c->tls, p, n) < 0) {
        conn__finish_close(c, false);
        return;
    }
    conn__flush_out(c);
}

static void bridge_closed(void *ud)
{
    struct conn *c = ud;
    wsc_free(c); /* the bridge released itself */
    conn__finish_close(c, true);
}

static void bridge_drained(void *ud)
{
    conn__drained(ud);
}

static const struct ws_io bridge = {
    .established = bridge_established,
    .message = bridge_message,
    .send = bridge_send,
    .closed = bridge_closed,
    .drained = bridge_drained,
};
