/* conn_handshake: a connection from accept to OPEN, and every trust verdict after.
 *
 * An accepted connection is only read (a few KB at most, no TLS engine) until its ClientHello
 * is complete, within hello_timeout_ms, so a peer that stays silent costs a socket and never a
 * handshake slot. Then it is admitted up to max_handshakes; a source address holds at most
 * max_pending_per_ip connections that have not settled yet (and max_per_ip in all); handshakes
 * advance
 * one Mbed TLS state at a time within a CPU budget per loop turn (deferred, unread, beyond it),
 * then go through the certificate checker (plugins) before the transport opens and application
 * data may flow. The verdicts on a connected peer afterwards (CRL reload, plugin, expiry) are
 * conn_trust.c's. This file drives conn.c's stream; conn.c reaches back only through the
 * conn_admission table given in conn_env_new. */
#include "conn_internal.h"

#include "log.h"
#include "proxy_v2.h"
#include "tls_hello.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A checker's refusal reason (a plugin's text, e.g. an OCSP responder's answer). */
#define CHECK_WHY_MAX 160

static void open_ready(struct conn *c);
static void undefer(struct conn *c);
static void handshake_step(struct conn *c);
static void leave_handshake(struct conn *c);
static void leave_checking(struct conn *c);
static void check_finish(struct conn *c, bool allow, const char *why);
static void admission_closing(struct conn *c);
static void hello_input(struct conn *c, const uint8_t *p, size_t n);
static void admission_expired(struct conn *c);
static void turn_end(uv_check_t *h);
static void run_deferred(uv_idle_t *h);

static const struct conn_admission admission = {
    .hello = hello_input,
    .input = handshake_step,
    .closing = admission_closing,
};

/* ---- the env --------------------------------------------------------------------------------- */

/* Handshake CPU (ns): a resumption costs ~0.1-0.3 ms, a full ECDSA P-256 one 3-12 ms, RSA or a
 * loaded machine more. */
static const uint64_t hs_cpu_bounds[] = {100000,  250000,   500000,   1000000,  2500000,
                                         5000000, 10000000, 25000000, 50000000, 100000000};

struct conn_env *conn_env_new(uv_loop_t *loop, const struct conn_env_opts *o)
{
    struct conn_env *e = xcalloc(1, sizeof(*e));
    e->loop = loop;
    e->o = *o;
    e->admission = &admission;
    e->holds = 4; /* the four handles below and in conn__stream_init */
    if (!e->o.hello_timeout_ms)
        e->o.hello_timeout_ms = CONN_DEFAULT_HELLO_TIMEOUT_MS;
    if (!e->o.max_handshakes)
        e->o.max_handshakes = 1;
    if (!e->o.max_backlog)
        e->o.max_backlog = CONN_DEFAULT_MAX_BACKLOG;
    if (!e->o.handshake_budget_us)
        e->o.handshake_budget_us = CONN_DEFAULT_HANDSHAKE_BUDGET_US;
    if (!e->o.park_after_ms)
        e->o.park_after_ms = CONN_DEFAULT_PARK_AFTER_MS;
    e->hs_budget_ns = (uint64_t)e->o.handshake_budget_us * 1000;
    size_t nb = sizeof(hs_cpu_bounds) / sizeof(hs_cpu_bounds[0]);
    hist_init(&e->stats.handshake_cpu_full, hs_cpu_bounds, nb);
    hist_init(&e->stats.handshake_cpu_resumed, hs_cpu_bounds, nb);
    uv_idle_init(loop, &e->defer_idle);
    e->defer_idle.data = e;
    uv_unref((uv_handle_t *)&e->defer_idle);
    uv_check_init(loop, &e->turn_end);
    e->turn_end.data = e;
    uv_check_start(&e->turn_end, turn_end);
    uv_unref((uv_handle_t *)&e->turn_end);
    conn__stream_init(e);
    return e;
}

static void env_handle_closed(uv_handle_t *h)
{
    conn__env_drop(h->data);
}

/* The env outlives this call until its handles and its last connection are closed. */
void conn_env_free(struct conn_env *e)
{
    if (!e)
        return;
    uv_close((uv_handle_t *)&e->defer_idle, env_handle_closed);
    uv_close((uv_handle_t *)&e->turn_end, env_handle_closed);
    conn__stream_close(e, env_handle_closed);
}

struct conn *conn_env_find(struct conn_env *e, uint64_t id)
{
    struct conn *c;
    HASH_FIND(hh, e->by_id, &id, sizeof(id), c);
    return c;
}

void conn_env_set_checker(struct conn_env *e, const struct conn_checker *ck)
{
    e->checker = *ck;
}

bool conn_cert_der(const struct conn *c, const uint8_t **der, size_t *len, const uint8_t **issuer,
                   size_t *issuer_len)
{
    return tls_conn_cert_der(c->tls, der, len, issuer, issuer_len);
}

static void defer(struct conn *c);

/* The ClientHello is already inside the TLS engine and the peer now waits for our answer: the
 * first step runs from the deferred list, within this turn's handshake budget, and never inside
 * the callbacks of the connection that gave the slot back. */
static void begin_handshake(struct conn *c)
{
    c->state = C_HANDSHAKE;
    c->env->stats.handshaking++;
    defer(c);
}

static void admit_next(struct conn_env *e)
{
    while (e->wait_head && e->stats.handshaking < e->o.max_handshakes) {
        struct conn *c = e->wait_head;
        e->wait_head = c->wait_next;
        if (!e->wait_head)
            e->wait_tail = NULL;
        e->stats.waiting--;
        begin_handshake(c);
    }
}

static void leave_handshake(struct conn *c)
{
    if (c->deferred)
        undefer(c);
    if (c->state == C_HELLO) {
        c->env->stats.hello--;
        buf_free(&c->hello);
    } else if (c->state == C_HANDSHAKE) {
        c->env->stats.handshaking--;
        admit_next(c->env);
    } else if (c->state == C_WAITING) {
        struct conn **pp = &c->env->wait_head, *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->wait_next;
        }
        if (*pp) {
            *pp = c->wait_next;
            if (c->env->wait_tail == c)
                c->env->wait_tail = prev;
            c->env->stats.waiting--;
        }
    }
}

static void turn_end(uv_check_t *h)
{
    ((struct conn_env *)h->data)->hs_spent_ns = 0;
}

/* Out of this turn's handshake budget: c continues in a later turn, unread meanwhile (what it
 * sent is already inside its TLS engine). */
static void defer(struct conn *c)
{
    struct conn_env *e = c->env;
    c->deferred = true;
    c->wait_next = NULL;
    if (e->defer_tail)
        e->defer_tail->wait_next = c;
    else
        e->defer_head = c;
    e->defer_tail = c;
    conn__update_reading(c);
    uv_idle_start(&e->defer_idle, run_deferred);
}

static void undefer(struct conn *c)
{
    struct conn_env *e = c->env;
    struct conn **pp = &e->defer_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (*pp) {
        *pp = c->wait_next;
        if (e->defer_tail == c)
            e->defer_tail = prev;
    }
    c->deferred = false;
    c->wait_next = NULL;
}

/* Idle handles run every turn while active (and keep the poll from blocking). */
static void run_deferred(uv_idle_t *h)
{
    struct conn_env *e = h->data;
    while (e->defer_head && e->hs_spent_ns < e->hs_budget_ns) {
        struct conn *c = e->defer_head;
        undefer(c);
        conn__update_reading(c);
        if (c->state == C_HANDSHAKE)
            handshake_step(c);
        conn__pump(c); /* application data that came with the last flight */
    }
    if (!e->defer_head)
        uv_idle_stop(h);
}

/* Refuse a connection before OPEN: counted, logged once with what is known of the peer. */
void conn__refuse(struct conn *c, enum tls_reject why, const char *detail)
{
    c->env->stats.refused++;
    c->env->stats.refused_by[why]++;
    if (!c->tls) { /* before the ClientHello: nothing is known but the address */
        log_notice("refused %s: %s: %s", c->addr, tls_reject_str(why), detail);
        conn__start_close(c, false);
        return;
    }
    const struct tls_peer *p = tls_conn_peer(c->tls);
    log_notice("refused %s: %s: %s (identity %s, serial %s, issuer %s)", c->addr,
               tls_reject_str(why), detail, p->identity, p->serial, p->issuer);
    conn__start_close(c, false);
}

static void handshake_failed(struct conn *c)
{
    enum tls_reject why = tls_conn_reject(c->tls);
    if (why == TLS_REJECT_NONE)
        why = TLS_REJECT_HANDSHAKE;
    c->env->stats.refused++;
    c->env->stats.refused_by[why]++;
    log_notice("refused %s: %s: %s", c->addr, tls_reject_str(why), tls_conn_error(c->tls));
    conn__flush_out(c); /* the alert */
    conn__start_close(c, false);
}

/* The TLS handshake is done: the certificate checker, if any, has the last word. */
static void handshake_done(struct conn *c)
{
    const struct tls_peer *peer = tls_conn_peer(c->tls);
    char why[REVOKED_WHY_MAX];
    if (*c->ctx_slot != c->ctx && tls_ctx_peer_revoked(*c->ctx_slot, peer, why, sizeof(why))) {
        conn__refuse(c, TLS_REJECT_REVOKED,
                     why); /* the CRLs were reloaded while this handshake ran */
        return;
    }
    leave_handshake(c);
    if (!c->env->checker.check) {
        open_ready(c);
        return;
    }
    char reason[CHECK_WHY_MAX] = "denied";
    c->checked = true;
    c->state = C_CHECKING;
    c->env->stats.checking++;
    enum conn_check v =
        c->env->checker.check(c->env->checker.ctx, c, &c->check_token, reason, sizeof(reason));
    if (v == CONN_CHECK_PENDING) {
        /* Held unread with a fresh deadline; the loop serves everyone else meanwhile. */
        conn__deadline(c, c->env->o.handshake_timeout_ms, admission_expired);
        conn__update_reading(c);
        return;
    }
    check_finish(c, v == CONN_CHECK_ALLOW, reason);
}

static void handshake_step(struct conn *c)
{
    struct conn_env *e = c->env;
    int r;
    do {
        if (e->hs_spent_ns >= e->hs_budget_ns) {
            defer(c);
            conn__flush_out(c);
            return;
        }
        uint64_t t0 = uv_hrtime();
        r = tls_conn_handshake_step(c->tls);
        uint64_t spent = uv_hrtime() - t0;
        e->hs_spent_ns += spent;
        c->hs_cpu_ns += spent;
    } while (r == TLS_MORE);
    if (r == TLS_AGAIN)
        conn__flush_out(c);
    else if (r < 0)
        handshake_failed(c);
    else
        handshake_done(c);
}

/* The deadline of every state before OPEN (armed at accept, renewed for a pending check). */
static void admission_expired(struct conn *c)
{
    if (c->state == C_CHECKING) {
        check_finish(c, false, "certificate check not answered in time");
        return;
    }
    c->env->stats.refused++;
    if (c->await_proxy) {
        c->env->stats.refused_by[TLS_REJECT_PROXY]++;
        log_notice("refused %s: %s: no complete PROXY v2 header within %u ms (tls_hello_timeout, "
                   "%zu bytes received)",
                   c->addr, tls_reject_str(TLS_REJECT_PROXY), c->env->o.hello_timeout_ms,
                   buf_size(&c->hello));
        conn__start_close(c, false);
        return;
    }
    c->env->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
    if (c->state == C_HELLO)
        log_notice("refused %s: handshake failed: no complete ClientHello within %u ms "
                   "(tls_hello_timeout, %zu bytes received)",
                   c->addr, c->env->o.hello_timeout_ms, buf_size(&c->hello));
    else
        log_notice("refused %s: handshake failed: not completed within %u ms", c->addr,
                   c->env->o.handshake_timeout_ms);
    conn__start_close(c, false);
}

static void leave_checking(struct conn *c)
{
    c->env->stats.checking--;
    c->state = C_WAITING; /* off every list: closing has nothing to undo */
    c->check_token = NULL;
    tls_conn_drop_der(c->tls);
}

static void check_finish(struct conn *c, bool allow, const char *why)
{
    leave_checking(c);
    if (!allow) {
        conn__refuse(c, TLS_REJECT_PLUGIN, why && *why ? why : "denied");
        return;
    }
    open_ready(c);
}

void conn_check_done(struct conn *c, bool allow, const char *why)
{
    if (c->state != C_CHECKING)
        return;
    check_finish(c, allow, why);
    if (c->state == C_OPEN)
        conn__pump(c); /* bytes that came with the handshake's last flight */
}

/* Every certificate check passed: the transport opens, application data may flow. */
static void open_ready(struct conn *c)
{
    const struct tls_peer *peer = tls_conn_peer(c->tls);
    conn__arm_cert_timer(c, peer);
    conn__cert_index(c, peer);
    c->state = C_OPEN;
    c->env->stats.handshakes++;
    if (peer->resumed)
        c->env->stats.resumed++;
    hist_observe(peer->resumed ? &c->env->stats.handshake_cpu_resumed
                               : &c->env->stats.handshake_cpu_full,
                 c->hs_cpu_ns);
    c->env->stats.open++;
    conn__update_reading(c);
    conn__flush_out(c);
    if (c->state == C_OPEN) /* the flush may have failed */
        c->ops->open(c);
}

/* conn.c closes c (any state but C_CLOSING): undo what admission holds. */
static void admission_closing(struct conn *c)
{
    conn_settle(c);
    if (c->state == C_CHECKING) {
        void *token = c->check_token;
        leave_checking(c);
        if (c->env->checker.cancel)
            c->env->checker.cancel(c->env->checker.ctx, token);
    }
    if (c->checked && c->env->checker.closed) {
        c->checked = false;
        c->env->checker.closed(c->env->checker.ctx, c);
    }
    leave_handshake(c);
}

/* ---- accept ---------------------------------------------------------------------------------- */

/* The address every log line, per-address limit and plugin sees: c->ip and c->addr from raw
 * network-order bytes. Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d; operators know
 * them as a.b.c.d. */
static const char unknown_addr[] = "?";

void conn__addr_free(struct conn *c)
{
    if (c->addr != unknown_addr)
        free((char *)c->addr);
    c->addr = c->ip = unknown_addr;
}

static void set_addr(struct conn *c, const uint8_t *ip, size_t len, uint16_t port)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (len == 16 && !memcmp(ip, v4_mapped, sizeof(v4_mapped))) {
        ip += sizeof(v4_mapped);
        len = 4;
    }
    char ipbuf[CONN_IP_MAX], addr[CONN_ADDR_MAX];
    inet_ntop(len == 4 ? AF_INET : AF_INET6, ip, ipbuf, sizeof(ipbuf));
    int n = snprintf(addr, sizeof(addr), len == 4 ? "%s:%u" : "[%s]:%u", ipbuf, port);
    size_t alen = (size_t)n + 1, ilen = strlen(ipbuf) + 1;
    char *m = xmalloc(alen + ilen);
    memcpy(m, addr, alen);
    memcpy(m + alen, ipbuf, ilen);
    conn__addr_free(c);
    c->addr = m;
    c->ip = m + alen;
}

/* The socket's peer as bytes (4 or 16 in ip, *len), or false when the kernel does not say. */
static bool socket_peer(struct conn *c, uint8_t ip[16], size_t *len, uint16_t *port)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        memcpy(ip, &a->sin_addr, 4);
        *len = 4;
        *port = ntohs(a->sin_port);
        return true;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        memcpy(ip, &a->sin6_addr, 16);
        *len = 16;
        *port = ntohs(a->sin6_port);
        return true;
    }
    return false;
}

/* Count c against its address: all its connections (max_per_ip) and those not settled yet
 * (max_pending_per_ip). Returns the name of the limit the address is over, or NULL. */
static const char *count_ip(struct conn *c, uint32_t *limit)
{
    struct conn_env *e = c->env;
    if (!e->o.max_per_ip && !e->o.max_pending_per_ip)
        return NULL;
    struct ip_count *ic;
    HASH_FIND_STR(e->per_ip, c->ip, ic);
    if (!ic) {
        ic = xcalloc(1, sizeof(*ic));
        snprintf(ic->ip, sizeof(ic->ip), "%s", c->ip);
        HASH_ADD_STR(e->per_ip, ip, ic);
    }
    ic->n++;
    ic->pending++;
    c->counted = ic;
    c->pending = true;
    if (e->o.max_per_ip && ic->n > e->o.max_per_ip) {
        *limit = e->o.max_per_ip;
        return "max_connections_per_ip";
    }
    if (e->o.max_pending_per_ip && ic->pending > e->o.max_pending_per_ip) {
        *limit = e->o.max_pending_per_ip;
        return "max_pending_per_ip";
    }
    return NULL;
}

void conn_settle(struct conn *c)
{
    if (!c->pending)
        return;
    c->pending = false;
    c->counted->pending--;
}

/* Takes c out of C_HELLO: a TLS engine for it, holding what it sent, and a handshake slot or a
 * place on the wait list. The handshake timeout counts from here. */
static void hello_done(struct conn *c, const uint8_t *p, size_t n)
{
    struct conn_env *e = c->env;
    e->stats.hello--;
    c->tls = tls_conn_new(c->ctx);
    if (e->checker.check)
        tls_conn_keep_der(c->tls);
    tls_conn_input(c->tls, p, n);
    buf_free(&c->hello);
    conn__deadline(c, e->o.handshake_timeout_ms, admission_expired);
    if (e->stats.handshaking < e->o.max_handshakes) {
        begin_handshake(c);
        return;
    }
    c->state = C_WAITING;
    conn__update_reading(c);
    e->stats.waiting++;
    c->wait_next = NULL;
    if (e->wait_tail)
        e->wait_tail->wait_next = c;
    else
        e->wait_head = c;
    e->wait_tail = c;
}

/* "WHAT (first bytes 16 03 01 ...)": what a refusal says of bytes that are not what it expected,
 * so the operator can tell plain HTTP, TLS and a misconfigured proxy apart. */
static void first_bytes(char *why, size_t size, const char *what, const uint8_t *p, size_t n)
{
    int k = snprintf(why, size, "%s (first bytes", what);
    for (size_t i = 0; i < n && i < 8 && k > 0 && (size_t)k < size; i++)
        k += snprintf(why + k, size - (size_t)k, " %02x", p[i]);
    if (k > 0 && (size_t)k < size)
        snprintf(why + k, size - (size_t)k, ")");
}

/* Count c against its address (conn_accept, or the PROXY header's address): refused before any
 * TLS work when the address already holds its share. Returns false when c was refused. */
static bool admit_ip(struct conn *c)
{
    uint32_t limit = 0;
    const char *over = count_ip(c, &limit);
    if (!over)
        return true;
    c->env->stats.refused++;
    c->env->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
    if (!strcmp(over, "max_pending_per_ip"))
        c->env->stats.refused_pending_per_ip++;
    else
        c->env->stats.refused_per_ip++;
    log_notice("refused %s: %s (%u) reached", c->addr, over, limit);
    conn__start_close(c, false);
    return false;
}

/* C_HELLO on a proxy_protocol listener: the header comes before the first TLS byte. Returns its
 * length once it is complete and the device's address has replaced the proxy's, 0 while more
 * bytes are needed (fewer than PROXY_V2_MAX so far), or -1 when c was closed: a malformed
 * header, a health check (LOCAL), or the device's address over its limits. */
static int proxy_input(struct conn *c, const uint8_t *p, size_t n)
{
    struct proxy_v2 h;
    int r = proxy_v2_parse(p, n, &h);
    if (r == 0)
        return 0;
    if (r < 0) {
        char why[160];
        first_bytes(why, sizeof(why), proxy_v2_strerror(r), p, n);
        conn__refuse(c, TLS_REJECT_PROXY, why);
        return -1;
    }
    c->await_proxy = false;
    if (h.command == PROXY_V2_LOCAL) {
        /* Every second or so per proxy: a line each would drown the log. */
        c->env->stats.proxy_checks++;
        log_debug("%s: PROXY v2 LOCAL (the proxy's health check), closed", c->addr);
        conn__start_close(c, false);
        return -1;
    }
    char proxy[CONN_ADDR_MAX];
    snprintf(proxy, sizeof(proxy), "%s", c->addr);
    set_addr(c, h.src.ip, h.src.len, h.src.port);
    c->env->stats.proxied++;
    log_debug("%s: connection via proxy %s", c->addr, proxy);
    return admit_ip(c) ? r : -1;
}

/* C_HELLO: bytes from a peer without a TLS engine: first its PROXY header when the listener
 * wants one, then the ClientHello, judged from the record headers alone (tls_hello_complete).
 * Buffered only while incomplete (never beyond PROXY_V2_MAX + TLS_HELLO_MAX); the TLS bytes that
 * came with the header are kept. */
static void hello_input(struct conn *c, const uint8_t *p, size_t n)
{
    bool pieces = buf_size(&c->hello) > 0;
    if (pieces) {
        buf_append(&c->hello, p, n);
        p = buf_head(&c->hello);
        n = buf_size(&c->hello);
    }
    if (c->await_proxy) {
        int used = proxy_input(c, p, n);
        if (used == 0 && !pieces)
            buf_append(&c->hello, p, n);
        if (used <= 0)
            return;
        if (pieces)
            buf_consume(&c->hello, (size_t)used);
        p += used;
        n -= (size_t)used;
        if (!n)
            return;
    }
    switch (tls_hello_complete(p, n)) {
    case TLS_HELLO_NEED:
        if (!pieces)
            buf_append(&c->hello, p, n);
        return;
    case TLS_HELLO_COMPLETE:
        hello_done(c, p, n);
        return;
    case TLS_HELLO_TOO_LONG:
        conn__refuse(c, TLS_REJECT_HANDSHAKE,
                     "no complete ClientHello within " /* */
                     "one TLS record's worth of bytes");
        return;
    case TLS_HELLO_NOT_TLS:
        break;
    }
    char why[96];
    first_bytes(why, sizeof(why), "not a TLS ClientHello", p, n);
    conn__refuse(c, TLS_REJECT_HANDSHAKE, why);
}

/* A peer that is not one of the listener's proxies: it may not speak for others, and without a
 * header it is not what the listener serves. Anyone on the network can provoke this at line
 * rate, so it is logged at most every CONN_REFUSAL_LOG_MS, with the count of the quiet ones. */
static void refuse_not_proxy(struct conn *c)
{
    struct conn_env *e = c->env;
    e->stats.refused++;
    e->stats.refused_by[TLS_REJECT_PROXY]++;
    uint64_t now = uv_now(e->loop);
    if (now < e->proxy_log_next_ms) {
        e->proxy_unlogged++;
        conn__start_close(c, false);
        return;
    }
    char more[64] = "";
    if (e->proxy_unlogged)
        snprintf(more, sizeof(more), " (and %llu more since the last such line)",
                 (unsigned long long)e->proxy_unlogged);
    log_notice("refused %s: %s: not from an address in proxy_protocol_from%s", c->addr,
               tls_reject_str(TLS_REJECT_PROXY), more);
    e->proxy_log_next_ms = now + CONN_REFUSAL_LOG_MS;
    e->proxy_unlogged = 0;
    conn__start_close(c, false);
}

/* The socket peer's address; on a proxy_protocol listener only a proxy may connect, and the
 * per-address limits wait for the device's address in its header. */
static bool admit_peer(struct conn *c, const struct conn_proxy_opts *proxy)
{
    uint8_t ip[16];
    size_t len = 0;
    uint16_t port = 0;
    bool known = socket_peer(c, ip, &len, &port);
    if (known)
        set_addr(c, ip, len, port);
    if (!proxy || !proxy->v2)
        return admit_ip(c);
    if (!known) {
        /* Gone before its accept (HAProxy resets its health checks at once): nobody to refuse,
         * and no reason to spend the refusal log line on it. */
        log_debug("connection on a PROXY protocol listener closed before it was accepted");
        conn__start_close(c, false);
        return false;
    }
    if (!cidr_match_any(proxy->from, proxy->from_count, ip, len)) {
        refuse_not_proxy(c);
        return false;
    }
    c->await_proxy = true;
    return true;
}

struct conn *conn_accept(struct conn_env *e, uv_stream_t *server, struct tls_ctx *const *ctx_slot,
                         struct ws_ctx *ws, const struct conn_proxy_opts *proxy,
                         const struct conn_cbs *cbs, void *ud)
{
    struct tls_ctx *ctx = *ctx_slot;
    struct conn *c = xcalloc(1, sizeof(*c));
    c->env = e;
    c->ops = ws ? &conn__ws_ops : &conn__tls_ops;
    c->tp_ctx = ws;
    c->ctx_slot = ctx_slot;
    c->cbs = cbs;
    c->ud = ud;
    uv_tcp_init(e->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->state = C_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return NULL;
    }
    uv_timer_init(e->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    e->holds++; /* until handle_closed frees c */
    uv_tcp_nodelay(&c->tcp, 1);
    c->addr = c->ip = unknown_addr;
    c->ctx = tls_ctx_ref(ctx); /* the TLS engine itself waits for the ClientHello */
    c->id = ++e->next_id;
    HASH_ADD(hh, e->by_id, id, sizeof(c->id), c);
    c->state = C_HELLO;
    e->stats.hello++;
    if (!admit_peer(c, proxy))
        return c;
    conn__deadline(c, e->o.hello_timeout_ms, admission_expired);
    conn__update_reading(c);
    return c;
}
