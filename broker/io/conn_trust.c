/* conn_trust: the verdicts on a connection's peer after its handshake: revocation (a CRL reload,
 * another node, a plugin) and the certificate chain's expiry, all through conn_untrust, and the
 * index of open connections by leaf certificate that finds them. Split from conn_handshake.c,
 * which calls conn__cert_index and conn__arm_cert_timer when a connection opens. */
#include "conn_internal.h"

#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECONDS_PER_DAY 86400
#define SECONDS_PER_HOUR 3600

/* Index c under its leaf certificate (conn_env_untrust_cert). */
void conn__cert_index(struct conn *c, const struct tls_peer *peer)
{
    if (!peer->chain_len)
        return;
    uint8_t key[CONN_CERT_KEY];
    tls_cert_id_key(&peer->chain[0], key);
    struct conn_env *e = c->env;
    struct conn_cert *cc;
    HASH_FIND(hh, e->by_cert, key, CONN_CERT_KEY, cc);
    if (!cc) {
        cc = xcalloc(1, sizeof(*cc));
        memcpy(cc->key, key, CONN_CERT_KEY);
        HASH_ADD(hh, e->by_cert, key, CONN_CERT_KEY, cc);
    }
    c->cert = cc;
    c->cert_next = cc->head;
    if (cc->head)
        cc->head->cert_prev = c;
    cc->head = c;
}

void conn__cert_unindex(struct conn *c)
{
    struct conn_cert *cc = c->cert;
    if (!cc)
        return;
    if (c->cert_prev)
        c->cert_prev->cert_next = c->cert_next;
    else
        cc->head = c->cert_next;
    if (c->cert_next)
        c->cert_next->cert_prev = c->cert_prev;
    c->cert = NULL;
    if (!cc->head) {
        HASH_DEL(c->env->by_cert, cc);
        free(cc);
    }
}

size_t conn_env_untrust_cert(struct conn_env *e, const struct tls_cert_id *id, enum reason why,
                             const char *detail)
{
    uint8_t key[CONN_CERT_KEY];
    tls_cert_id_key(id, key);
    struct conn_cert *cc;
    HASH_FIND(hh, e->by_cert, key, CONN_CERT_KEY, cc);
    size_t n = 0;
    /* conn_untrust never frees (that waits for the handles' close callbacks): the list holds. */
    for (struct conn *c = cc ? cc->head : NULL; c; c = c->cert_next, n++)
        conn_untrust(c, why, detail);
    return n;
}

/* ---- trust verdicts -------------------------------------------------------------------------- */

/* The peer's chain expires while connected: a verdict like a revocation. */
void conn__cert_due(struct conn *c)
{
    const struct tls_peer *p = tls_conn_peer(c->tls);
    int64_t now = (int64_t)time(NULL);
    if (p->not_after > now) {
        /* Long timers are armed in steps; this is one of them. */
        conn__arm_cert_timer(c, p);
        return;
    }
    conn_untrust(c, REASON_CERT_EXPIRED, NULL);
}

void conn__arm_cert_timer(struct conn *c, const struct tls_peer *p)
{
    if (!p->not_after)
        return;
    int64_t left = p->not_after - (int64_t)time(NULL);
    uint32_t warn = c->env->o.cert_expiry_warning_days;
    if (warn && left < (int64_t)warn * SECONDS_PER_DAY && c->state != C_OPEN) {
        c->env->stats.expiring_soon++;
        log_warn("certificate of %s (serial %s, issuer %s) expires in %lld hours", p->identity,
                 p->serial, p->issuer, (long long)(left > 0 ? left / SECONDS_PER_HOUR : 0));
    }
    /* At most a day per step: the wall clock may be adjusted while the loop clock is not. */
    int64_t ms =
        left <= 0 ? 0 : (left > SECONDS_PER_DAY ? SECONDS_PER_DAY * 1000 : left * 1000 + 1);
    conn__cert_timer(c, (uint64_t)ms);
}

static enum tls_reject reject_for(enum reason why)
{
    switch (why) {
    case REASON_REVOKED_CRL:
        return TLS_REJECT_REVOKED;
    case REASON_REVOKED_PLUGIN:
        return TLS_REJECT_PLUGIN;
    case REASON_CERT_EXPIRED:
        return TLS_REJECT_EXPIRED;
    default:
        return TLS_REJECT_HANDSHAKE;
    }
}

void conn_untrust(struct conn *c, enum reason why, const char *detail)
{
    if (!detail || !*detail)
        detail = reason_info(why)->text;
    switch (c->state) {
    case C_CLOSING:
        return;
    case C_OPEN:
    case C_ENDING:
        c->env->stats.untrusted[why < REASON_COUNT ? why : REASON_NONE]++;
        if (c->state == C_OPEN && c->user_ready && c->cbs->on_untrusted) {
            c->cbs->on_untrusted(c->ud, c, why, detail);
            return;
        }
        if (c->state == C_OPEN) {
            /* No session yet (the transport is not ready): nobody else will say why. */
            const struct tls_peer *p = tls_conn_peer(c->tls);
            log_notice("closing %s: %s (identity %s, serial %s, issuer %s)", c->addr, detail,
                       p->identity, p->serial, p->issuer);
        }
        conn__start_close(c, false);
        return;
    default:
        conn__refuse(c, reject_for(why), detail);
    }
}

size_t conn_env_recheck(struct conn_env *e, size_t *dropped)
{
    size_t checked = 0, n = 0;
    struct conn *c, *tmp;
    /* conn_untrust never frees (that waits for the handles' close callbacks), so the hash stays
     * as it is during the walk. */
    HASH_ITER(hh, e->by_id, c, tmp)
    {
        if (c->state != C_CHECKING && c->state != C_OPEN)
            continue; /* not verified yet (handshake_done re-checks) or already going */
        const struct tls_ctx *now = *c->ctx_slot;
        bool counted = c->state == C_OPEN && c->user_ready;
        checked += counted;
        char why[REVOKED_WHY_MAX];
        if (now && tls_ctx_peer_revoked(now, tls_conn_peer(c->tls), why, sizeof(why))) {
            n += counted;
            conn_untrust(c, REASON_REVOKED_CRL, why);
        }
    }
    if (dropped)
        *dropped = n;
    return checked;
}

void conn_env_each_open(struct conn_env *e, void (*cb)(void *ud, const struct conn *c), void *ud)
{
    struct conn *c, *tmp;
    HASH_ITER(hh, e->by_id, c, tmp)
    {
        if (c->state == C_OPEN)
            cb(ud, c);
    }
}

struct tls_ctx *const *conn_ctx_slot(const struct conn *c)
{
    return c->ctx_slot;
}
