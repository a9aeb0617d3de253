/* conn_internal: the state conn.c, conn_handshake.c and conn_ws.c share; nothing outside conn
 * includes it.
 *
 * Who calls whom, one way only:
 *   conn_handshake.c  accept, admission, handshake budget, certificate checks, verdicts -> OPEN
 *        |  calls the stream side (conn__*) and picks the transport (conn_ops)
 *        v
 *   conn.c            the byte stream: socket reads and writes, the flush list, back-pressure,
 *                     parking, timers, close. It reaches the two sides above it only through
 *                     function pointers they filled in (env->admission, c->ops, c->deadline).
 *   conn_ws.c         the WebSocket transport (conn_ops) on top of conn.c's stream. */
#ifndef CERTMQ_CONN_INTERNAL_H
#define CERTMQ_CONN_INTERNAL_H

#include "conn.h"

#include <uthash.h>

/* How long a closing connection may take to drain its last bytes (close_notify, a WebSocket
 * close handshake) before the socket is closed regardless: a peer that stops reading must not
 * pin the connection. */
#define CLOSE_GRACE_MS 3000

/* A refusal that anyone on the network can provoke at line rate is logged at most this often. */
#define CONN_REFUSAL_LOG_MS 10000

/* Room for "[ipv6]:port" and for an IPv6 address as text. */
#define CONN_ADDR_MAX 64
#define CONN_IP_MAX 48

/* C_HELLO: accepted, its ClientHello not complete yet: read into a small buffer of its own,
 * no TLS engine, no handshake slot (a silent peer must not hold one).
 * C_WAITING: the ClientHello is inside the TLS engine, a handshake slot is not free yet.
 * C_CHECKING: TLS is done, a certificate-check plugin has not answered yet.
 * C_ENDING: the transport runs its own closing exchange (a WebSocket close handshake) that TLS
 * still carries; the user has been told on_close already. */
enum conn_state { C_HELLO, C_WAITING, C_HANDSHAKE, C_CHECKING, C_OPEN, C_ENDING, C_CLOSING };

/* A transport on top of the TLS byte stream: plain MQTT over TLS (conn__tls_ops, conn.c) or MQTT
 * over WebSocket over TLS (conn__ws_ops, conn_ws.c). conn.c calls these and never knows which
 * one it has. */
struct conn_ops {
    /* Every certificate check passed (state C_OPEN): start the transport. It calls
     * conn__user_ready() when application bytes may flow (at once, or after an upgrade). */
    void (*open)(struct conn *c);
    /* Plaintext out of TLS, in order; borrowed for the call. */
    void (*input)(struct conn *c, const uint8_t *p, size_t n);
    /* The user's bytes (conn_write) while C_OPEN: 0, or -1 when the connection cannot take them. */
    int (*write)(struct conn *c, const uint8_t *p, size_t n);
    /* A graceful close of a C_OPEN connection: true when the transport takes it over with an
     * exchange of its own (it calls conn__begin_ending, later conn__finish_close); false and
     * conn.c closes TLS at once. NULL = always false. */
    bool (*close)(struct conn *c);
    /* Bytes the transport holds beyond the TLS engine (counted for back-pressure). NULL = 0. */
    size_t (*backlog)(const struct conn *c);
    /* The connection closes for good: drop the transport's state, no more calls into conn.
     * NULL = nothing to drop. */
    void (*release)(struct conn *c);
};
extern const struct conn_ops conn__tls_ops;
extern const struct conn_ops conn__ws_ops;

/* What conn.c needs from the admission side (conn_handshake.c) for connections on their way to
 * OPEN; filled by conn_env_new. */
struct conn_admission {
    /* C_HELLO: the peer sent bytes (borrowed for the call); no TLS engine exists yet. */
    void (*hello)(struct conn *c, const uint8_t *p, size_t n);
    /* C_HANDSHAKE: the peer sent bytes (already inside the TLS engine). */
    void (*input)(struct conn *c);
    /* The connection starts to close (any state but C_CLOSING): give back the handshake slot,
     * leave the wait and defer lists, cancel a pending check, tell the checker. */
    void (*closing)(struct conn *c);
};

struct conn {
    struct conn_env *env;
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct tls_conn *tls; /* NULL while C_HELLO: made when the ClientHello is complete */
    struct tls_ctx *ctx;
    struct buf hello; /* C_HELLO: a ClientHello that came in pieces (< TLS_HELLO_MAX bytes) */
    struct tls_ctx *const *ctx_slot;
    void *check_token;  /* the checker's, while C_CHECKING */
    uint64_t hs_cpu_ns; /* spent in the TLS engine's handshake so far (metrics) */
    uint64_t id;
    UT_hash_handle hh;                  /* env->by_id */
    struct conn_cert *cert;             /* env->by_cert, once open: its leaf certificate */
    struct conn *cert_next, *cert_prev; /* the other open connections with that certificate */
    /* The timer's two jobs, in loop time (ms, 0 = none): the state's deadline or the user's
     * timer, and the next look at the peer's certificate expiry. One uv_timer_t set for the
     * earlier of them: a second handle cost every connection 152 bytes. */
    uint64_t due, cert_due;
    const struct conn_ops *ops;
    void *tp_ctx;       /* the transport's per-listener context (the ws_ctx) */
    void *tp;           /* the transport's per-connection state (the ws_conn) */
    bool user_ready;    /* on_ready was called: the user owns the session */
    bool user_notified; /* on_close scheduled or done */
    bool checked;       /* went to the checker: it hears of the close */
    bool deferred;      /* handshake work waits for a later loop turn (env->defer_head) */
    const struct conn_cbs *cbs;
    void *ud;
    /* What the timer means before the user owns it: a handshake, check or upgrade deadline
     * (conn__deadline). NULL = the user's timer_cb. */
    void (*deadline)(struct conn *c);
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
    bool pending;             /* counted in counted->pending: no conn_settle() yet */
    bool await_proxy;         /* C_HELLO: its PROXY v2 header is still to come */
    /* "ip:port" and "ip" for logs, limits and plugins: "?" until known, then exact-length
     * copies in one allocation (fixed arrays cost every connection ~110 bytes). */
    const char *addr, *ip;
};

/* Connections per peer address, for max_connections_per_ip (n: until freed) and
 * max_pending_per_ip (pending: until conn_settle() or the close begins). */
struct ip_count {
    char ip[CONN_IP_MAX];
    uint32_t n, pending;
    UT_hash_handle hh;
};

/* One read's ciphertext: the most a single read callback hands over. */
#define CONN_READ_BUF (64 * 1024)
/* Plaintext per TLS read: one full TLS record (2^14 bytes). */
#define CONN_PLAIN_BUF (16 * 1024)
#define CONN_CERT_KEY TLS_CERT_KEY_LEN

/* The open connections presenting one leaf certificate (issuer name hash and serial), so a
 * revocation learnt from another node finds them without a walk. */
struct conn_cert {
    uint8_t key[CONN_CERT_KEY];
    struct conn *head;
    UT_hash_handle hh;
};

struct conn_env {
    uv_loop_t *loop;
    struct ip_count *per_ip;
    struct conn *by_id;        /* every connection until it is freed, by conn_id */
    struct conn_cert *by_cert; /* open connections by leaf certificate */
    struct conn_env_opts o;
    const struct conn_admission *admission;
    uv_check_t check;
    struct conn *flush_head;
    struct conn *wait_head, *wait_tail;
    struct conn_stats stats;
    void (*before_flush)(void *ctx);
    void *before_flush_ctx;
    struct conn_checker checker;
    uint64_t next_id;
    /* Refusals of peers that are not proxies on a proxy_protocol listener: logged at most once
     * per CONN_REFUSAL_LOG_MS, the rest counted for the next line. */
    uint64_t proxy_log_next_ms, proxy_unlogged;
    /* Handshake CPU per loop turn: a reconnect storm must not stall connected clients. */
    uv_idle_t defer_idle;
    uv_check_t turn_end;
    struct conn *defer_head, *defer_tail;
    uint64_t hs_spent_ns, hs_budget_ns;
    /* Idle connections give their TLS record buffers back (tls_conn_park). */
    uv_timer_t park_timer;
    struct conn *active;
    uint32_t gen;
    /* The env is freed when this drops to 0: one per uv handle of its own (until closed) and
     * one per connection (until freed), since connections may finish closing after
     * conn_env_free. */
    uint32_t holds;
    uint8_t rbuf[CONN_READ_BUF];   /* ciphertext from the socket */
    uint8_t plain[CONN_PLAIN_BUF]; /* plaintext out of the TLS engine */
};

/* conn.c: the open byte stream */
void conn__stream_init(struct conn_env *e);
/* Drop one of env->holds; the last frees the env. */
void conn__env_drop(struct conn_env *e);
/* The connection is being freed: out of the by-certificate index (conn_handshake.c). */
void conn__cert_unindex(struct conn *c);
/* Frees c->addr and c->ip (conn_handshake.c). */
void conn__addr_free(struct conn *c);
/* Refuses c before it opened: counted, logged once with what is known of the peer, closed
 * (conn_handshake.c). */
void conn__refuse(struct conn *c, enum tls_reject why, const char *detail);
/* conn_trust.c: index an opening connection under its leaf certificate, and arm the look at
 * its chain's expiry (warning when it is near). */
void conn__cert_index(struct conn *c, const struct tls_peer *peer);
void conn__arm_cert_timer(struct conn *c, const struct tls_peer *p);
/* Which certificate a CRL revokes ("an issuing CA certificate was revoked" and the like). */
#define REVOKED_WHY_MAX 96
/* Closes the stream side's two env handles with cb. */
void conn__stream_close(struct conn_env *e, uv_close_cb cb);
void conn__update_reading(struct conn *c);
void conn__flush_out(struct conn *c);
/* Read what the TLS engine holds while C_OPEN / C_ENDING and hand it to the transport, then
 * flush. */
void conn__pump(struct conn *c);
/* Arm the connection's timer with an internal deadline: fn(c) after ms. */
void conn__deadline(struct conn *c, uint64_t ms, void (*fn)(struct conn *c));
/* The next look at the certificate's expiry in ms (0: none); it calls conn__cert_due(). */
void conn__cert_timer(struct conn *c, uint64_t ms);
void conn__cert_due(struct conn *c); /* conn_handshake.c */
/* The transport is ready: the user gets on_ready and owns the timer from now on. */
void conn__user_ready(struct conn *c);
/* Output grew: stop reading the peer while the backlog is over the limit. */
void conn__check_backlog(struct conn *c);
/* Output shrank: resume reading (and writing) once the backlog is below half the limit. */
void conn__drained(struct conn *c);
/* The transport takes the close over (conn_ops.close): C_ENDING within CLOSE_GRACE_MS. */
void conn__begin_ending(struct conn *c);
/* Close, honouring a transport's closing exchange when graceful. */
void conn__start_close(struct conn *c, bool graceful);
/* Close TLS and the socket now, whatever the transport is doing. */
void conn__finish_close(struct conn *c, bool graceful);

#endif
