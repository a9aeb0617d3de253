/* conn: one accepted TCP connection carrying TLS, seen from above as a plaintext byte stream
 * with a verified identity.
 *
 * Owns the socket, the TLS engine and the connection's timer; enforces the hello and handshake
 * time limits and admits at most max_handshakes handshakes at once, counting only connections
 * whose ClientHello is complete (the rest wait, unread, so a reconnect storm cannot starve
 * connected clients and silent peers cannot hold the slots). Knows nothing of MQTT: it carries
 * bytes and an identity. Output is coalesced: the user asks for a write slot with conn_want_write()
 * and produces all its bytes for this loop turn in one on_writable() call, which become as few TLS
 * records as possible and one socket write. */
#ifndef CERTMQ_CONN_H
#define CERTMQ_CONN_H

#include "cidr.h"
#include "hist.h"
#include "reason.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct conn;

struct conn_cbs {
    /* Handshake and certificate checks passed; conn_peer() is valid from now on. */
    void (*on_ready)(void *ud, struct conn *c);
    /* Decrypted bytes; borrowed for the duration of the call. */
    void (*on_data)(void *ud, struct conn *c, const uint8_t *p, size_t n);
    /* The write slot for this loop turn: call conn_write() as needed. */
    void (*on_writable)(void *ud, struct conn *c);
    /* The connection is gone (called once, from a later loop turn than conn_close, never from
     * inside another callback of this conn). The user frees its state here; c is freed after. */
    void (*on_close)(void *ud, struct conn *c);
    /* A trust verdict on the connected peer (conn_untrust): its certificate was revoked (CRL
     * reload, plugin) or expired. detail is the text to log. The user ends the session
     * (conn_close) without trusting anything more the peer sent. */
    void (*on_untrusted)(void *ud, struct conn *c, enum reason why, const char *detail);
    /* Optional: no I/O for a while (the TLS record buffers were just given back); the user may
     * free what it keeps for a busy connection. Called from the loop, not from another
     * callback of this conn. */
    void (*on_idle)(void *ud, struct conn *c);
};

/* A certificate check beyond the TLS policy (plugins). It runs after the handshake and before
 * any application byte is read: check() answers CONN_CHECK_ALLOW, _DENY (reason in why) or
 * _PENDING (setting *token). A pending connection is held, unread, until conn_check_done() or
 * the handshake time limit; cancel(token) tells the checker when the connection went away
 * first. closed() is called when a connection that went to check() closes. */
enum conn_check { CONN_CHECK_ALLOW, CONN_CHECK_DENY, CONN_CHECK_PENDING };
struct conn_checker {
    enum conn_check (*check)(void *ctx, struct conn *c, void **token, char *why, size_t n);
    void (*cancel)(void *ctx, void *token);
    void (*closed)(void *ctx, struct conn *c);
    void *ctx;
};

struct conn_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t handshakes, resumed, refused;
    uint64_t expiring_soon; /* connections whose certificate expires within the warning window */
    uint64_t parked;        /* times an idle connection gave its TLS record buffers back */
    uint64_t proxied;       /* connections whose PROXY v2 header named the device's address */
    uint64_t proxy_checks;  /* PROXY v2 LOCAL connections (the proxy's health checks) */
    /* Open connections ended by a trust verdict (conn_untrust), per reason. */
    uint64_t untrusted[REASON_COUNT];
    uint64_t refused_by[TLS_REJECT_COUNT];
    /* Of refused_by[TLS_REJECT_HANDSHAKE]: refused before any TLS work by a per-address limit. */
    uint64_t refused_per_ip, refused_pending_per_ip;
    /* CPU spent in the TLS engine per completed handshake (ns), full and resumed. */
    struct hist handshake_cpu_full, handshake_cpu_resumed;
    /* hello: accepted, ClientHello not complete (no handshake slot); waiting: ClientHello in,
     * no slot free yet. */
    uint32_t hello, handshaking, waiting, checking, open;
};

/* Unsent output per connection beyond which its peer is no longer read: room for a burst of
 * publishes to a subscriber on a slow link (16 full TLS records), while stalled subscribers
 * stay bounded (256 MB per thousand of them). */
#define CONN_DEFAULT_MAX_BACKLOG (256 * 1024)
/* Handshake CPU per loop turn: connected clients wait at most about this long (plus one
 * handshake step) for their turn during a reconnect storm; a full ECDSA P-256 handshake costs
 * ~12 ms here, in several steps. */
#define CONN_DEFAULT_HANDSHAKE_BUDGET_US 5000
/* From accept to a complete ClientHello. Real clients send it in their first packet, one round
 * trip after the TCP handshake: 3 s covers a slow cellular link (several RTTs and a retransmit),
 * while a peer that stays silent holds only a socket and a few bytes, and for less than a third
 * of the handshake timeout. */
#define CONN_DEFAULT_HELLO_TIMEOUT_MS 3000
/* Idle time before a connection gives its record buffers back: long enough that a busy client
 * does not re-allocate them between messages, short enough to matter for fleets of idle
 * devices. */
#define CONN_DEFAULT_PARK_AFTER_MS 5000

/* Shared by every connection of the process: loop, limits, the flush list, counters. */
struct conn_env;
struct conn_env_opts {
    uint32_t cert_expiry_warning_days; /* 0 = no warning */
    /* From accept to a complete ClientHello (0 = CONN_DEFAULT_HELLO_TIMEOUT_MS); then
     * handshake_timeout_ms for the rest of the handshake. */
    uint32_t hello_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t max_handshakes;
    /* Stop reading a peer whose unsent output exceeds this (0 = CONN_DEFAULT_MAX_BACKLOG). */
    size_t max_backlog;
    uint32_t max_per_ip; /* open connections per peer address, 0 = unlimited */
    /* Connections per peer address not yet settled (conn_settle: accepted, hello, handshake,
     * checks, waiting for the first application message), 0 = unlimited. Beyond it a new
     * connection is refused before any TLS work. */
    uint32_t max_pending_per_ip;
    /* Handshake CPU per loop turn (0 = CONN_DEFAULT_HANDSHAKE_BUDGET_US): beyond it, handshakes
     * continue next turn, so connected clients are served between public-key operations. */
    uint32_t handshake_budget_us;
    /* A connection without I/O for between one and two of these gives its TLS record buffers
     * back until its next I/O (0 = CONN_DEFAULT_PARK_AFTER_MS). */
    uint32_t park_after_ms;
};
struct conn_env *conn_env_new(uv_loop_t *loop, const struct conn_env_opts *o);
void conn_env_free(struct conn_env *e);
/* Called once per loop turn before any connection writes (persistence commits there, so no
 * acknowledgement leaves before what it acknowledges is durable). */
void conn_env_set_before_flush(struct conn_env *e, void (*cb)(void *ctx), void *ctx);
const struct conn_stats *conn_env_stats(const struct conn_env *e);
/* From now on every new connection goes through ck (copied). */
void conn_env_set_checker(struct conn_env *e, const struct conn_checker *ck);
/* The answer to a CONN_CHECK_PENDING; ignored unless c is still waiting for it. */
void conn_check_done(struct conn *c, bool allow, const char *why);
/* The peer's certificate and its issuer's (DER) while check() runs or is pending. */
bool conn_cert_der(const struct conn *c, const uint8_t **der, size_t *len, const uint8_t **issuer,
                   size_t *issuer_len);
/* Unique within the process, never reused; 1 is the first. */
uint64_t conn_id(const struct conn *c);
/* Every open connection (handshake and checks passed, not closing), in no order: for figures
 * computed on demand (metrics) rather than kept on the hot path. cb must not close anything. */
void conn_env_each_open(struct conn_env *e, void (*cb)(void *ud, const struct conn *c), void *ud);
/* The listener slot c was accepted with (conn_accept's ctx_slot): tells its listener apart. */
struct tls_ctx *const *conn_ctx_slot(const struct conn *c);
/* The connection with that id, or NULL once it is gone (O(1)). */
struct conn *conn_env_find(struct conn_env *e, uint64_t id);

/* The one way a trust verdict reaches a connection. An open connection counts it in
 * conn_stats.untrusted[why] and goes to the user's on_untrusted (who ends the session); one not
 * yet open is refused (counted and logged as a refusal) and closed. detail (NULL = the reason's
 * text) is what the log says. */
void conn_untrust(struct conn *c, enum reason why, const char *detail);
/* Untrust (conn_untrust) every open connection whose leaf certificate is id: a revocation
 * learnt from elsewhere (another cluster node). Found through an index, no walk. Returns how
 * many. */
size_t conn_env_untrust_cert(struct conn_env *e, const struct tls_cert_id *id, enum reason why,
                             const char *detail);
/* Re-check every connection past its handshake against its listener's current TLS context (after
 * a CRL reload) and untrust the revoked ones (REASON_REVOKED_CRL). Returns how many open
 * connections were checked; *dropped = how many of those were revoked. */
size_t conn_env_recheck(struct conn_env *e, size_t *dropped);

/* PROXY protocol v2 on a listener (HAProxy send-proxy-v2): a connection from one of the from
 * networks (the proxies) must begin with a PROXY v2 header, read before TLS within the hello
 * timeout; the device's address it carries becomes the connection's address (conn_addr,
 * conn_ip, the per-address limits, counted only then). A LOCAL header (the proxy's health
 * check) is closed quietly and counted; a connection from anywhere else is refused, its log
 * lines rate-limited. from is the caller's and must outlive the listener. */
struct conn_proxy_opts {
    bool v2;
    const struct cidr *from;
    size_t from_count;
};

struct ws_ctx;
/* Take the pending connection from a listening stream. Returns NULL (and logs) when accept
 * fails. ctx_slot points at the listener's current TLS context: the handshake uses (and
 * references) the one current at accept; if the slot has moved on by the end of the handshake
 * (a CRL reload), the peer is re-checked against the new one. ws: NULL for MQTT over TLS, or
 * the WebSocket context for MQTT over secure WebSockets (on_ready then waits for the upgrade).
 * proxy: NULL, or the listener's PROXY protocol settings. */
struct conn *conn_accept(struct conn_env *e, uv_stream_t *server, struct tls_ctx *const *ctx_slot,
                         struct ws_ctx *ws, const struct conn_proxy_opts *proxy,
                         const struct conn_cbs *cbs, void *ud);

/* The user has the peer's first application message (MQTT: its CONNECT): the connection no
 * longer counts against max_pending_per_ip. Idempotent. */
void conn_settle(struct conn *c);

void conn_set_user(struct conn *c, void *ud);
const struct tls_peer *conn_peer(const struct conn *c);
const char *conn_addr(const struct conn *c); /* "127.0.0.1:51234" */
const char *conn_ip(const struct conn *c);   /* "127.0.0.1" */
uv_loop_t *conn_loop(const struct conn *c);

/* Arm the connection's single timer: cb(ud) after ms. Replaces any earlier arming. Used by the
 * user for CONNECT and keep-alive deadlines once the handshake is done. */
void conn_timer(struct conn *c, uint64_t ms, void (*cb)(void *ud, struct conn *c));

void conn_want_write(struct conn *c);
/* Only from on_writable (or on_ready/on_data: then it is encrypted at once). */
int conn_write(struct conn *c, const uint8_t *p, size_t n);
/* Bytes accepted but not yet handed to the kernel. */
size_t conn_backlog(const struct conn *c);
bool conn_output_full(struct conn *c);

/* Stop/restart delivering on_data (back-pressure from above). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Close: pending output (and a close_notify when graceful) is flushed first, within a bounded
 * time. Safe to call more than once and from inside any callback. */
void conn_close(struct conn *c, bool graceful);
bool conn_closing(const struct conn *c);

#endif
