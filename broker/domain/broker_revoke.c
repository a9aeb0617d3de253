/* broker_revoke: a revoked certificate takes its offline persistent sessions with it.
 *
 * A connection presenting a revoked certificate is ended through its own verdict path; a
 * session that outlived its connection has none, so each persistent session is indexed by the
 * certificate of its latest connection (one hash entry per certificate, a short array of
 * sessions). A revocation finds them in O(1) and destroys the offline ones. Sessions restored
 * from disk are indexed again when their device reconnects. */
#include "broker_int.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct entry *broker__entry(struct broker *b, const struct session *s)
{
    struct entry *e;
    size_t klen;
    const char *key = session_key(s, &klen);
    HASH_FIND(hh, b->sessions, key, klen, e);
    return e;
}

void broker__cert_unindex(struct broker *b, struct entry *e)
{
    struct cert_ent *c = e->cert;
    if (!c)
        return;
    e->cert = NULL;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->v[i] == e) {
            c->v[i] = c->v[--c->n];
            break;
        }
    if (!c->n) {
        HASH_DEL(b->certs, c);
        free(c->v);
        free(c);
    }
}

void broker_session_cert(struct broker *b, struct session *s, const uint8_t *key)
{
    struct entry *e = broker__entry(b, s);
    if (!e)
        return;
    broker__cert_unindex(b, e);
    if (!key || !session_persistent(s))
        return; /* a clean session ends with its connection, which has its own verdicts */
    struct cert_ent *c;
    HASH_FIND(hh, b->certs, key, BROKER_CERT_KEY_LEN, c);
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        memcpy(c->key, key, BROKER_CERT_KEY_LEN);
        HASH_ADD(hh, b->certs, key, BROKER_CERT_KEY_LEN, c);
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 2;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = e;
    e->cert = c;
}

size_t broker_revoked_cert(struct broker *b, const uint8_t key[BROKER_CERT_KEY_LEN])
{
    struct cert_ent *c;
    HASH_FIND(hh, b->certs, key, BROKER_CERT_KEY_LEN, c);
    size_t n = 0;
    /* Destroying a session removes it from c (and c when it was the last): walk from the end. */
    for (uint32_t i = c ? c->n : 0; i-- > 0;) {
        struct session *s = c->v[i]->s;
        if (session_client(s))
            continue;
        bool last = c->n == 1;
        broker__destroy_session(b, s);
        n++;
        if (last)
            break;
    }
    return n;
}
