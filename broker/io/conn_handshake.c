/* conn_handshake: a connection from accept to OPEN. Handshakes are admitted up to
 * max_handshakes, advance one Mbed TLS state at a time within a CPU budget per loop turn
 * (deferred, unread, beyond it), then go through the certificate checker (plugins) before
 * application data may flow. */
#include "conn_internal.h"

#include "log.h"

#include <time.h>

static void open_ready(struct conn *c);
static void arm_cert_timer(struct conn *c, const struct tls_peer *p);
static void undefer(struct conn *c);

void conn_env_set_checker(struct conn_env *e, const struct conn_checker *ck)
{
    e->checker = *ck;
}

bool conn_cert_der(const struct conn *c, const uint8_t **der, size_t *len, const uint8_t **issuer,
                   size_t *issuer_len)
{
    return tls_conn_cert_der(c->tls, der, len, issuer, issuer_len);
}

void conn__begin_handshake(struct conn *c)
{
    c->state = C_HANDSHAKE;
    c->env->stats.handshaking++;
    conn__update_reading(c);
}

static void admit_next(struct conn_env *e)
{
    while (e->wait_head && e->stats.handshaking < e->o.max_handshakes) {
        struct conn *c = e->wait_head;
        e->wait_head = c->wait_next;
        if (!e->wait_head)
            e->wait_tail = NULL;
        e->stats.waiting--;
        conn__begin_handshake(c);
    }
}

void conn__leave_handshake(struct conn *c)
{
    if (c->deferred)
        undefer(c);
    if (c->state == C_HANDSHAKE) {
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

static void cert_expired(uv_timer_t *t)
{
    struct conn *c = t->data;
    const struct tls_peer *p = tls_conn_peer(c->tls);
    int64_t now = (int64_t)time(NULL);
    if (p->not_after > now) {
        /* Long timers are armed in steps; this is one of them. */
        arm_cert_timer(c, p);
        return;
    }
    c->env->stats.expired++;
    if (c->state == C_OPEN && (!c->wsctx || c->ws_ready) && c->cbs->on_cert_expired)
        c->cbs->on_cert_expired(c->ud, c);
    else
        conn__start_close(c, false);
}

static void arm_cert_timer(struct conn *c, const struct tls_peer *p)
{
    if (!p->not_after)
        return;
    int64_t left = p->not_after - (int64_t)time(NULL);
    uint32_t warn = c->env->o.cert_expiry_warning_days;
    if (warn && left < (int64_t)warn * 86400 && c->state != C_OPEN) {
        c->env->stats.expiring_soon++;
        log_warn("certificate of %s (serial %s, issuer %s) expires in %lld hours", p->identity,
                 p->serial, p->issuer, (long long)(left > 0 ? left / 3600 : 0));
    }
    /* At most a day per step: the wall clock may be adjusted while the loop clock is not. */
    int64_t ms = left <= 0 ? 0 : (left > 86400 ? 86400000 : left * 1000 + 1);
    uv_timer_start(&c->cert_timer, cert_expired, (uint64_t)ms, 0);
}

void conn__turn_end(uv_check_t *h)
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
    uv_idle_start(&e->defer_idle, conn__run_deferred);
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
void conn__run_deferred(uv_idle_t *h)
{
    struct conn_env *e = h->data;
    while (e->defer_head && e->hs_spent_ns < e->hs_budget_ns) {
        struct conn *c = e->defer_head;
        undefer(c);
        conn__update_reading(c);
        conn__process(c);
    }
    if (!e->defer_head)
        uv_idle_stop(h);
}

void conn__handshake_step(struct conn *c)
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
        e->hs_spent_ns += uv_hrtime() - t0;
    } while (r == TLS_MORE);
    if (r == TLS_AGAIN) {
        conn__flush_out(c);
        return;
    }
    if (r < 0) {
        enum tls_reject why = tls_conn_reject(c->tls);
        if (why == TLS_REJECT_NONE)
            why = TLS_REJECT_HANDSHAKE;
        c->env->stats.refused++;
        c->env->stats.refused_by[why]++;
        log_notice("refused %s: %s: %s", c->addr, tls_reject_str(why), tls_conn_error(c->tls));
        conn__flush_out(c); /* the alert */
        conn__start_close(c, false);
        return;
    }
    const struct tls_peer *peer = tls_conn_peer(c->tls);
    char why[96];
    if (*c->ctx_slot != c->ctx && tls_ctx_peer_revoked(*c->ctx_slot, peer, why, sizeof(why))) {
        /* The CRLs were reloaded while this handshake ran. */
        c->env->stats.refused++;
        c->env->stats.refused_by[TLS_REJECT_REVOKED]++;
        log_notice("refused %s: revoked: %s (identity %s, serial %s, issuer %s)", c->addr, why,
                   peer->identity, peer->serial, peer->issuer);
        conn__start_close(c, false);
        return;
    }
    conn__leave_handshake(c);
    if (!c->env->checker.check) {
        open_ready(c);
        return;
    }
    char reason[160] = "denied";
    c->checked = true;
    c->state = C_CHECKING;
    c->env->stats.checking++;
    enum conn_check v =
        c->env->checker.check(c->env->checker.ctx, c, &c->check_token, reason, sizeof(reason));
    if (v == CONN_CHECK_PENDING) {
        /* Held unread with a fresh deadline; the loop serves everyone else meanwhile. */
        uv_timer_start(&c->timer, conn__timer_fire, c->env->o.handshake_timeout_ms, 0);
        conn__update_reading(c);
        return;
    }
    conn__check_finish(c, v == CONN_CHECK_ALLOW, reason);
}

void conn__leave_checking(struct conn *c)
{
    c->env->stats.checking--;
    c->state = C_WAITING; /* off every list: conn__start_close has nothing to undo */
    c->check_token = NULL;
    tls_conn_drop_der(c->tls);
}

void conn__check_finish(struct conn *c, bool allow, const char *why)
{
    conn__leave_checking(c);
    if (!allow) {
        const struct tls_peer *p = tls_conn_peer(c->tls);
        c->env->stats.refused++;
        c->env->stats.refused_by[TLS_REJECT_PLUGIN]++;
        log_notice("refused %s: %s: %s (identity %s, serial %s, issuer %s)", c->addr,
                   tls_reject_str(TLS_REJECT_PLUGIN), why && *why ? why : "denied", p->identity,
                   p->serial, p->issuer);
        conn__start_close(c, false);
        return;
    }
    open_ready(c);
}

void conn_check_done(struct conn *c, bool allow, const char *why)
{
    if (c->state != C_CHECKING)
        return;
    conn__check_finish(c, allow, why);
    if (c->state == C_OPEN)
        conn__process(c); /* bytes that came with the handshake's last flight */
}

/* Every certificate check passed: application data may flow from here on. */
static void open_ready(struct conn *c)
{
    const struct tls_peer *peer = tls_conn_peer(c->tls);
    arm_cert_timer(c, peer);
    c->state = C_OPEN;
    c->env->stats.handshakes++;
    if (peer->resumed)
        c->env->stats.resumed++;
    c->env->stats.open++;
    conn__update_reading(c);
    conn__flush_out(c);
    if (c->wsctx) {
        /* MQTT starts after the HTTP upgrade; a fresh handshake deadline covers it. */
        uv_timer_start(&c->timer, conn__timer_fire, c->env->o.handshake_timeout_ms, 0);
        c->ws = ws_conn_new(c->wsctx, &conn__ws_bridge, c);
        if (!c->ws)
            conn__start_close(c, false);
        return;
    }
    uv_timer_stop(&c->timer);
    c->cbs->on_ready(c->ud, c);
}
