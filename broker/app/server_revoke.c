/* server_revoke: what a newly revoked certificate reaches beyond its connections.
 *
 * A CRL reload finds each certificate the new CRLs revoke and the old ones did not (a set of
 * the old entries, so one pass over each list). Its offline persistent sessions are discarded
 * (revoked_session discard; connections have their own verdict path), and in a cluster it is
 * announced, as is a plugin's verdict on a connected device. Every other node ends its
 * connections presenting that leaf certificate through conn_untrust, the one verdict path
 * (found by an index, no walk), and discards its offline sessions, exactly as if it had found
 * the certificate revoked itself. Announcements are not forwarded again. */
#include "server_int.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define ID_KEY TLS_CERT_KEY_LEN

struct id_entry {
    uint8_t key[ID_KEY];
    UT_hash_handle hh;
};

struct id_set {
    struct id_entry *all;
};

/* Add id to the set; false when it was there already. */
static bool id_add(struct id_set *set, const struct tls_cert_id *id)
{
    uint8_t key[ID_KEY];
    tls_cert_id_key(id, key);
    struct id_entry *e;
    HASH_FIND(hh, set->all, key, ID_KEY, e);
    if (e)
        return false;
    e = xmalloc(sizeof(*e));
    memcpy(e->key, key, ID_KEY);
    HASH_ADD(hh, set->all, key, ID_KEY, e);
    return true;
}

static void id_set_free(struct id_set *set)
{
    struct id_entry *e, *tmp;
    HASH_ITER(hh, set->all, e, tmp)
    {
        HASH_DEL(set->all, e);
        free(e);
    }
}

static void add_old(void *ud, const struct tls_cert_id *id)
{
    id_add(ud, id);
}

/* Offline persistent sessions last used with id, discarded as revoked_session says. */
static size_t discard_sessions(struct server *s, const struct tls_cert_id *id)
{
    if (!s->cfg.client.discard_revoked)
        return 0;
    uint8_t key[ID_KEY];
    tls_cert_id_key(id, key);
    return broker_revoked_cert(s->b, key);
}

static void announce(struct server *s, const struct tls_cert_id *id, uint8_t kind)
{
    if (!s->cluster)
        return;
    struct envelope_revoke r = {.kind = kind, .serial_len = id->serial_len};
    memcpy(r.issuer_hash, id->issuer_hash, 32);
    memcpy(r.serial, id->serial, id->serial_len <= 32 ? id->serial_len : 32);
    cluster_revoked(s->cluster, &r);
}

struct revoke_new {
    struct server *s;
    struct id_set *seen; /* the old entries, then those handled */
    size_t n, sessions;
};

static void revoke_if_new(void *ud, const struct tls_cert_id *id)
{
    struct revoke_new *a = ud;
    if (!id_add(a->seen, id))
        return;
    a->sessions += discard_sessions(a->s, id);
    announce(a->s, id, ENVELOPE_REVOKED_CRL);
    a->n++;
}

void server__revoke_new(struct server *s, struct tls_ctx *const *old, struct tls_ctx *const *fresh,
                        size_t n)
{
    struct id_set seen = {NULL};
    for (size_t i = 0; i < n; i++)
        if (old[i])
            tls_ctx_crl_foreach(old[i], add_old, &seen);
    struct revoke_new a = {s, &seen, 0, 0};
    for (size_t i = 0; i < n; i++)
        if (fresh[i])
            tls_ctx_crl_foreach(fresh[i], revoke_if_new, &a);
    id_set_free(&seen);
    if (a.sessions)
        log_notice("CRL reload: %zu offline persistent session(s) of newly revoked certificates "
                   "discarded",
                   a.sessions);
    if (a.n && s->cluster)
        log_notice("cluster: %zu newly revoked certificate(s) announced to the other nodes", a.n);
}

void server__revoke_plugin(struct server *s, struct conn *c)
{
    const struct tls_peer *p = conn_peer(c);
    if (!p->chain_len)
        return;
    discard_sessions(s, &p->chain[0]); /* the device's other client ids */
    announce(s, &p->chain[0], ENVELOPE_REVOKED_PLUGIN);
}

void server__revoked_elsewhere(void *ctx, const struct envelope_revoke *r)
{
    struct server *s = ctx;
    struct tls_cert_id id = {.serial_len = r->serial_len};
    memcpy(id.issuer_hash, r->issuer_hash, 32);
    memcpy(id.serial, r->serial, r->serial_len);
    char why[160];
    snprintf(why, sizeof(why), "certificate revoked on cluster node %.*s (%s)", (int)r->node.len,
             (const char *)r->node.p,
             r->kind == ENVELOPE_REVOKED_CRL ? "its CRL" : "a certificate-check plugin");
    size_t n = conn_env_untrust_cert(
        s->cenv, &id, r->kind == ENVELOPE_REVOKED_CRL ? REASON_REVOKED_CRL : REASON_REVOKED_PLUGIN,
        why);
    size_t k = discard_sessions(s, &id);
    if (n || k)
        log_notice("cluster: %s: %zu connection(s) ended and %zu offline session(s) discarded here",
                   why, n, k);
}
