/* broker_int: the broker's state, shared by broker.c (sessions, routing) and broker_quota.c
 * (per-identity limits). Nothing outside the broker module includes it. */
#ifndef CERTMQ_BROKER_INT_H
#define CERTMQ_BROKER_INT_H

#include "broker.h"

#include <uthash.h>

struct entry {
    struct session *s;
    struct ident *id;      /* the session's identity's usage */
    struct cert_ent *cert; /* persistent sessions: their certificate's index entry */
    bool counted;          /* in id->persistent */
    UT_hash_handle hh;
};

/* broker_revoke.c: persistent sessions by the certificate of their latest connection. */
struct cert_ent {
    uint8_t key[BROKER_CERT_KEY_LEN];
    struct entry **v;
    uint32_t n, cap;
    UT_hash_handle hh;
};
/* The session of e leaves the index (destroyed, or no longer persistent). */
void broker__cert_unindex(struct broker *b, struct entry *e);
struct entry *broker__entry(struct broker *b, const struct session *s);

struct match {
    struct session *s;
    struct session_delivery d;
};

/* Free message blocks kept for reuse: 8,192 x 256 bytes = 2 MiB at most, enough to absorb a
 * burst of a few thousand messages in flight without going back to malloc. */
#define BROKER_MSG_POOL_FREE 8192

struct broker {
    struct broker_limits lim;
    struct broker_client_ops ops;
    struct broker_policy policy;
    struct broker_cluster cluster;
    struct broker_stats stats;
    struct topic_tree *subs;
    struct retain *retained;
    struct ident_table *idents;
    struct acl *acl;
    struct msg_pool *msgs;
    struct entry *sessions;
    struct cert_ent *certs; /* broker_revoke.c */
    uint64_t gen;
    uint64_t msg_id;
    /* per-publish scratch */
    struct match *m;
    size_t m_count, m_cap;
    const struct msg *cur;
    int64_t now; /* of the publish (or tick) being handled */
    const struct session *cur_from;
    const struct session *cur_only; /* broker_deliver_replay: the one session matched */
    const struct broker_store *store;
    bool rates_on; /* some identity may have a publish rate: see broker_publish_rate */
    bool closing;
};

/* Refusals by a quota are logged once every this many, so a device hammering one cannot flood
 * the log; the $SYS counters have the exact numbers. */
#define QUOTA_LOG_EVERY 1000

#define BSTORE(b, fn, ...)                                                                         \
    do {                                                                                           \
        if ((b)->store && (b)->store->fn && !(b)->closing)                                         \
            (b)->store->fn((b)->store->ctx, __VA_ARGS__);                                          \
    } while (0)
/* A persistent session changed (saved, subscriptions, deleted): the store and the cluster's
 * session record hear of it. */
#define BCHANGED(b, s)                                                                             \
    do {                                                                                           \
        if ((b)->cluster.changed && !(b)->closing) {                                               \
            session_set_recorded(s);                                                               \
            (b)->cluster.changed((b)->cluster.ctx, (s));                                           \
        }                                                                                          \
    } while (0)
#define BSESS(b, fn, s, ...)                                                                       \
    do {                                                                                           \
        BSTORE(b, fn, s, __VA_ARGS__);                                                             \
        BCHANGED(b, s);                                                                            \
    } while (0)
#define BDELETED(b, s)                                                                             \
    do {                                                                                           \
        BSTORE(b, session_deleted, s);                                                             \
        BCHANGED(b, s);                                                                            \
    } while (0)

/* broker_quota.c */
/* The identity's limits from s's certificate (the latest client decides); nothing offline. */
void broker__resolve_limits(struct broker *b, struct session *s);
/* max_persistent_sessions_per_identity: may this identity get one more persistent session? */
bool broker__persistent_quota_ok(struct broker *b, const char *identity, const char *client_id);
/* One more or one less client connected (the broker's count and its identity's). */
void broker__count_online(struct broker *b, const struct session *s, int delta);
/* broker.c, for broker_cluster.c: a new session (in the table, counted), one destroyed (out of
 * the tree and the store), the persistent count brought up to date, the ACL compiled for the
 * session's certificate, and the session's connection kicked (its will as for a takeover). */
struct session *broker__add_session(struct broker *b, const char *identity, const char *client_id);
void broker__destroy_session(struct broker *b, struct session *s);
void broker__count_persistent(struct broker *b, struct session *s);
void broker__compile_acl(struct broker *b, struct session *s);
void broker__kick_client(struct broker *b, struct session *s, int64_t now);
/* max_subscriptions_per_identity: may s's identity hold filter as one more? */
bool broker__identity_subs_ok(struct broker *b, struct session *s, const char *filter, size_t len);
/* Does storing m stay within the retained limits? (counted and logged when not) */
bool broker__retained_fits(struct broker *b, const char *identity, const struct msg *m);
/* Forget the identities without sessions whose rate meters would be full again by b->now. */
void broker__sweep_idents(struct broker *b);

#endif
