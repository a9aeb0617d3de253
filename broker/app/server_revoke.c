/* server_revoke: certificate revocations shared between cluster nodes.
 *
 * A node that reloads its CRLs announces each certificate the new CRLs revoke and the old ones
 * did not (a set of the old entries, so one pass over each list), and a plugin's verdict on a
 * connected device announces that device's certificate. Every other node ends its connections
 * presenting that leaf certificate through conn_untrust, the one verdict path (found by an index,
 * no walk), so the device is disconnected and its session handled (revoked_session) exactly as
 * if the node had found it revoked itself. Announcements are not forwarded again. */
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

static void announce(struct server *s, const struct tls_cert_id *id, uint8_t kind)
{
    struct envelope_revoke r = {.kind = kind, .serial_len = id->serial_len};
    memcpy(r.issuer_hash, id->issuer_hash, 32);
    memcpy(r.serial, id->serial, id->serial_len <= 32 ? id->serial_len : 32);
    cluster_revoked(s->cluster, &r);
}

struct announce_new {
    struct server *s;
    struct id_set *seen; /* the old entries, then those announced */
    size_t n;
};

static void announce_if_new(void *ud, const struct tls_cert_id *id)
{
    struct announce_new *a = ud;
    if (!id_add(a->seen, id))
        return;
    announce(a->s, id, ENVELOPE_REVOKED_CRL);
    a->n++;
}

void server__revoke_announce(struct server *s, struct tls_ctx *const *old,
                             struct tls_ctx *const *fresh, size_t n)
{
    if (!s->cluster)
        return;
    struct id_set seen = {NULL};
    for (size_t i = 0; i < n; i++)
        if (old[i])
            tls_ctx_crl_foreach(old[i], add_old, &seen);
    struct announce_new a = {s, &seen, 0};
    for (size_t i = 0; i < n; i++)
        if (fresh[i])
            tls_ctx_crl_foreach(fresh[i], announce_if_new, &a);
    id_set_free(&seen);
    if (a.n)
        log_notice("cluster: %zu newly revoked certificate(s) announced to the other nodes", a.n);
}

void server__revoke_plugin(struct server *s, struct conn *c)
{
    const struct tls_peer *p = conn_peer(c);
    if (s->cluster && p->chain_len)
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
    if (n)
        log_notice("cluster: %s: %zu connection(s) ended here", why, n);
}
