/* ws: MQTT over WebSocket through libwebsockets 4.1, as a guest on our libuv loop.
 *
 * TLS is not lws's business: conn terminates it with Mbed TLS (one certificate path for every
 * listener) and hands the plaintext to lws over a socketpair, as measured in
 * shared/notes/libwebsockets-on-libuv.md. This module owns the socketpair bridge and the lws
 * callbacks: it turns the HTTP upgrade + WebSocket framing into a byte stream of MQTT packets
 * and back. It knows neither TLS nor MQTT. */
#ifndef CERTMQ_WS_H
#define CERTMQ_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ws_ctx;
struct ws_conn;

/* Callbacks into the owner of one bridged connection (conn). */
struct ws_io {
    /* Upgrade done with an accepted subprotocol (mqtt or mqttv3.1). */
    void (*established)(void *ud);
    /* Payload bytes of binary frames, in order; frame boundaries mean nothing to MQTT. */
    void (*message)(void *ud, const uint8_t *p, size_t n);
    /* Bytes lws wants on the wire (HTTP response, frames): the owner encrypts and sends them. */
    void (*send)(void *ud, const uint8_t *p, size_t n);
    /* lws is finished with the connection (its end of the bridge is closed). */
    void (*closed)(void *ud);
    /* Everything fed to lws has been handed over (back-pressure may lift). */
    void (*drained)(void *ud);
};

/* max_clients sizes lws's fd tables (3 fds per WSS client). NULL on failure (logged). */
struct ws_ctx *ws_ctx_new(uv_loop_t *loop, unsigned max_clients);
/* The libwebsockets version the process runs with (its own string). */
const char *ws_library_version(void);
/* Two steps, because lws on a foreign libuv loop needs the loop to run in between: stop starts
 * the destruction (lws closes its handles), free completes it once the loop has run dry. */
void ws_ctx_stop(struct ws_ctx *w);
/* Bridged connections still alive (closing ones included). */
size_t ws_ctx_live(const struct ws_ctx *w);
void ws_ctx_free(struct ws_ctx *w);

struct ws_conn *ws_conn_new(struct ws_ctx *w, const struct ws_io *io, void *ud);
/* Plaintext from the TLS session (HTTP request, WebSocket frames). */
void ws_conn_feed(struct ws_conn *c, const uint8_t *p, size_t n);
/* MQTT bytes to send as binary frames. */
void ws_conn_write(struct ws_conn *c, const uint8_t *p, size_t n);
size_t ws_conn_backlog(const struct ws_conn *c);
/* Graceful close: a close frame with code and reason, then lws closes. */
void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);
/* The owner is gone: never call io again; tear the bridge down (lws sees EOF). */
void ws_conn_release(struct ws_conn *c);

#endif
