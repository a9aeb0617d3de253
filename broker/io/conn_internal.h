/* conn_internal: the state conn.c and conn_handshake.c share; nothing outside conn includes it. */
#ifndef CERTMQ_CONN_INTERNAL_H
#define CERTMQ_CONN_INTERNAL_H

#include "conn.h"
#include "ws.h"

#include <uthash.h>

#define CLOSE_GRACE_MS 3000

/* C_CHECKING: TLS is done, a certificate-check plugin has not answered yet.
 * C_WS_CLOSING: a WebSocket close handshake is under way; TLS still carries it. */
enum conn_state { C_WAITING, C_HANDSHAKE, C_CHECKING, C_OPEN, C_WS_CLOSING, C_CLOSING };

struct conn {
    struct conn_env *env;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct tls_conn *tls;
    struct tls_ctx *ctx;
    struct tls_ctx *const *ctx_slot;
    void *tag;
    void *check_token; /* the checker's, while C_CHECKING */
    uint64_t id;
    uv_timer_t cert_timer; /* fires when the peer's certificate chain expires */
    struct ws_ctx *wsctx;  /* WebSocket listener: lws speaks the framing */
    struct ws_conn *ws;
    bool ws_ready;      /* upgrade done, MQTT may flow */
    bool user_notified; /* on_close scheduled or done */
    bool checked;       /* went to the checker: it hears of the close */
    bool deferred;      /* handshake work waits for a later loop turn (env->defer_head) */
    const struct conn_cbs *cbs;
    void *ud;
    void (*timer_cb)(void *ud, struct conn *c);
    enum conn_state state;
    bool paused;       /* by the user */
    bool out_full;     /* by back-pressure from the socket */
    bool reading;      /* uv_read_start is in effect */
    bool in_flush;     /* on the env's flush list */
    bool want_write;   /* on_writable requested */
    bool notify_close; /* on_close still owed to the user */
    bool shutting;     /* uv_shutdown issued */
    bool released;     /* uv_close issued on both handles */
    uint8_t handles;   /* open uv handles */
    size_t queued;     /* bytes inside uv_write requests */
    struct conn *flush_next;
    struct conn *active_prev, *active_next; /* on env->active: had I/O since the last sweep */
    uint32_t io_gen;
    bool active;
    struct conn *wait_next;   /* the wait list while C_WAITING, the defer list while deferred */
    struct ip_count *counted; /* this connection's entry in env->per_ip */
    char addr[64];
    char ip[48];
};

/* Open connections per peer address, for max_connections_per_ip. */
struct ip_count {
    char ip[48];
    uint32_t n;
    UT_hash_handle hh;
};

struct conn_env {
    uv_loop_t *loop;
    struct ip_count *per_ip;
    struct conn_env_opts o;
    uv_check_t check;
    struct conn *flush_head;
    struct conn *wait_head, *wait_tail;
    struct conn_stats stats;
    void (*before_flush)(void *ctx);
    void *before_flush_ctx;
    struct conn_checker checker;
    uint64_t next_id;
    /* Handshake CPU per loop turn: a reconnect storm must not stall connected clients. */
    uv_idle_t defer_idle;
    uv_check_t turn_end;
    struct conn *defer_head, *defer_tail;
    uint64_t hs_spent_ns, hs_budget_ns;
    /* Idle connections give their TLS record buffers back (tls_conn_park). */
    uv_timer_t park_timer;
    struct conn *active;
    uint32_t gen;
    int closed_handles;
    uint8_t rbuf[64 * 1024];  /* ciphertext from the socket */
    uint8_t plain[16 * 1024]; /* plaintext out of the TLS engine */
};

/* conn.c */
void conn__update_reading(struct conn *c);
void conn__flush_out(struct conn *c);
void conn__start_close(struct conn *c, bool graceful);
void conn__timer_fire(uv_timer_t *t);
void conn__process(struct conn *c);
extern const struct ws_io conn__ws_bridge;

/* conn_handshake.c: admission, the per-turn handshake budget, certificate checks, opening */
void conn__begin_handshake(struct conn *c);
void conn__leave_handshake(struct conn *c);
void conn__leave_checking(struct conn *c);
void conn__check_finish(struct conn *c, bool allow, const char *why);
void conn__handshake_step(struct conn *c);
void conn__turn_end(uv_check_t *h);
void conn__run_deferred(uv_idle_t *h);

#endif
