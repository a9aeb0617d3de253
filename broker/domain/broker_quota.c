/* broker_quota: what one certificate identity may hold and do across its sessions, for the
 * broker: sessions, connections, subscriptions and retained messages it holds, the rate of its
 * publishes (quota.c's buckets, in its ident entry), and the refusals' counters and log lines.
 * Limits are resolved when a client connects and on ACL reloads, never per message. */
#include "broker_int.h"

#include "acl.h"
#include "ident.h"
#include "log.h"
#include "retain.h"

/* The identity's limits from this session's certificate (the latest client decides). */
void broker__resolve_limits(struct broker *b, struct session *s)
{
    if (session_client(s))
        quota_resolve(&session_ident(s)->lim, &b->lim.per_identity, b->acl, session_attrs(s));
}

/* max_persistent_sessions_per_identity: may this identity get one more persistent session? */
bool broker__persistent_quota_ok(struct broker *b, const char *identity, const char *client_id)
{
    const struct ident *id = ident_find(b->idents, identity);
    uint32_t max = b->lim.max_persistent_sessions_per_identity;
    if (!max || !id || id->persistent < max)
        return true;
    if (b->stats.sessions_refused++ % QUOTA_LOG_EVERY == 0)
        log_warn("identity %s already has %u persistent sessions "
                 "(max_persistent_sessions_per_identity): client id %s refused (%llu so far)",
                 identity, id->persistent, client_id,
                 (unsigned long long)b->stats.sessions_refused);
    return false;
}

/* One more or one less client connected (the broker's count and its identity's). */
void broker__count_online(struct broker *b, const struct session *s, int delta)
{
    b->stats.clients_online += (uint64_t)(int64_t)delta;
    session_ident(s)->online += (uint32_t)delta;
}

bool broker_connection_ok(struct broker *b, const char *identity, const struct certattrs *attrs,
                          const char *client_id)
{
    uint64_t max = b->lim.max_connections_per_identity;
    if (b->acl)
        acl_limit(b->acl, attrs, ACL_LIMIT_CONNECTIONS, &max);
    const struct ident *id = ident_find(b->idents, identity);
    if (!max || !id || id->online < max)
        return true;
    const struct session *s = broker_find(b, identity, client_id);
    if (s && session_client(s))
        return true; /* a takeover: the old connection goes */
    if (b->stats.connections_refused++ % QUOTA_LOG_EVERY == 0)
        log_warn("identity %s already has %u clients connected (max_connections_per_identity "
                 "%llu): client id %s refused (%llu so far)",
                 identity, id->online, (unsigned long long)max, client_id,
                 (unsigned long long)b->stats.connections_refused);
    return false;
}

/* Rate refusals are logged once per identity per this interval; the counters are exact. */
#define RATE_LOG_INTERVAL_MS 10000

enum reason broker_publish_rate(struct broker *b, struct session *s, uint32_t payload, int64_t now)
{
    if (!b->rates_on)
        return REASON_NONE;
    struct ident *id = session_ident(s);
    enum quota_verdict v =
        quota_publish(&id->meter, &id->lim, b->lim.rate_burst_s, payload, (uint64_t)now);
    if (v == QUOTA_OK)
        return REASON_NONE;
    bool msgs = v == QUOTA_RATE;
    uint64_t n = msgs ? ++b->stats.rate_refused : ++b->stats.byte_rate_refused;
    if (log_due(&id->rate_logged, now, RATE_LOG_INTERVAL_MS))
        log_warn("identity %s publishes over %s %llu (client id %s): refused (%llu so far)",
                 session_identity(s), acl_limit_name(msgs ? ACL_LIMIT_RATE : ACL_LIMIT_BYTE_RATE),
                 (unsigned long long)(msgs ? id->lim.rate : id->lim.byte_rate),
                 session_client_id(s), (unsigned long long)n);
    return msgs ? REASON_PUBLISH_RATE : REASON_PUBLISH_BYTE_RATE;
}

/* An identity without sessions is forgotten once its rate meters would be full again. */
static bool meter_rested(void *ctx, const struct ident *i)
{
    const struct broker *b = ctx;
    return quota_meter_rested(&i->meter, &i->lim, b->lim.rate_burst_s, (uint64_t)b->now);
}

void broker__sweep_idents(struct broker *b)
{
    ident_sweep(b->idents, meter_rested, b);
}

/* Which retained limit storing m would break, or NULL. Clearing and replacing within the
 * limits always work; the broker's own messages ($SYS) count only toward the totals. */
static const char *retained_over(const struct broker *b, const struct ident *id,
                                 const struct msg *m, void *prev_owner, uint64_t prev, bool had)
{
    const struct broker_limits *l = &b->lim;
    uint64_t cost = retain_cost(m);
    if (!m->payload_len)
        return NULL;
    if (l->max_retained_messages && !had && retain_count(b->retained) >= l->max_retained_messages)
        return "max_retained_messages";
    if (l->max_retained_bytes && retain_bytes(b->retained) - prev + cost > l->max_retained_bytes)
        return "max_retained_bytes";
    if (id && l->max_retained_bytes_per_identity &&
        id->retained_bytes - (prev_owner == id ? prev : 0) + cost >
            l->max_retained_bytes_per_identity)
        return "max_retained_bytes_per_identity";
    /* Replacing one of its own is not one more. */
    if (id && id->lim.retained && id->retained >= id->lim.retained && prev_owner != id)
        return acl_limit_name(ACL_LIMIT_RETAINED);
    return NULL;
}

/* Does storing m stay within the retained limits? Beyond them it is delivered but not
 * retained (counted, logged now and then), so the store stays bounded per device and in total. */
bool broker__retained_fits(struct broker *b, const char *identity, const struct msg *m)
{
    void *prev_owner = NULL;
    uint64_t prev = 0;
    bool had = retain_peek(b->retained, m->topic, m->topic_len, &prev_owner, &prev);
    struct ident *id = identity ? ident_get(b->idents, identity) : NULL;
    const char *limit = retained_over(b, id, m, prev_owner, prev, had);
    ident_put(b->idents, id);
    if (!limit)
        return true;
    /* The per-identity count has a counter of its own, so that each refusal sums once. */
    uint64_t *n = limit == acl_limit_name(ACL_LIMIT_RETAINED) ? &b->stats.identity_retained_refused
                                                              : &b->stats.retained_refused;
    if ((*n)++ % QUOTA_LOG_EVERY == 0)
        log_warn("%s reached: %s not retained (from %s; %llu so far)", limit, m->topic,
                 identity ? identity : "the broker", (unsigned long long)*n);
    return false;
}

/* max_subscriptions_per_identity: one more filter for s's identity? (changing the options of
 * one it has is not one more) */
bool broker__identity_subs_ok(struct broker *b, struct session *s, const char *filter, size_t len)
{
    struct ident *id = session_ident(s);
    uint64_t max = id->lim.subscriptions;
    if (!max || id->subscriptions < max || session_sub_find(s, filter, len))
        return true;
    if (b->stats.identity_subs_refused++ % QUOTA_LOG_EVERY == 0)
        log_warn("identity %s already holds %u subscriptions (max_subscriptions_per_identity "
                 "%llu): %.*s refused for client id %s (%llu so far)",
                 session_identity(s), id->subscriptions, (unsigned long long)max, (int)len, filter,
                 session_client_id(s), (unsigned long long)b->stats.identity_subs_refused);
    return false;
}
