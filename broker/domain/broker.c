/* broker: the session registry and message routing.
 *
 * A publish is matched once against the subscription tree; matches are collected in a scratch
 * array (reused, so no allocation per message) where overlapping subscriptions of one session
 * merge into one delivery at the highest granted QoS, then each delivery is checked against the
 * receiver's compiled ACL and queued on its session. Never touches sockets, TLS or the clock. */
#include "broker_int.h"

#include "acl.h"
#include "ident.h"
#include "log.h"
#include "retain.h"
#include "topic.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct broker *broker_new(const struct broker_limits *l)
{
    struct broker *b = xcalloc(1, sizeof(*b));
    b->lim = *l;
    if (!b->lim.rate_burst_s)
        b->lim.rate_burst_s = 1;
    b->rates_on = quota_rates_used(&l->per_identity, NULL);
    b->subs = topic_tree_new();
    b->retained = retain_new();
    b->idents = ident_table_new();
    b->msgs = msg_pool_new(BROKER_MSG_POOL_FREE);
    return b;
}

void broker_set_client_ops(struct broker *b, const struct broker_client_ops *ops)
{
    b->ops = *ops;
}

void broker_set_policy(struct broker *b, const struct broker_policy *p)
{
    b->policy = *p;
}

/* The subscription tree's first/last watch, passed on to the cluster. Nothing is reported
 * while the broker is being freed: the cluster may be gone, and so is every interest. */
static void on_interest(void *ctx, const char *filter, size_t flen, const char *group, size_t glen,
                        bool add)
{
    struct broker *b = ctx;
    if (!b->closing && b->cluster.interest)
        b->cluster.interest(b->cluster.ctx, filter, flen, group, glen, add);
}

void broker_set_cluster(struct broker *b, const struct broker_cluster *c)
{
    b->cluster = *c;
    topic_tree_set_watch(b->subs, on_interest, b);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    /* Freeing memory is not forgetting: nothing below may reach the store. */
    b->closing = true;
    struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        session_set_store(e->s, NULL);
    }
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        broker__destroy_session(b, e->s);
    }
    topic_tree_free(b->subs);
    retain_free(b->retained);
    ident_table_free(b->idents);
    acl_free(b->acl);
    msg_pool_free(b->msgs);
    free(b->m);
    free(b);
}

struct msg_pool *broker_msg_pool(struct broker *b)
{
    return b->msgs;
}

struct broker_stats *broker_stats(struct broker *b)
{
    return &b->stats;
}

const struct broker_limits *broker_limits(const struct broker *b)
{
    return &b->lim;
}

size_t broker_retained_count(const struct broker *b)
{
    return retain_count(b->retained);
}

size_t broker_subscription_count(const struct broker *b)
{
    return topic_tree_count(b->subs);
}

void broker_queue_totals(const struct broker *b, uint64_t *queued, uint64_t *inflight)
{
    *queued = *inflight = 0;
    const struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        *queued += session_queued(e->s);
        *inflight += session_inflight(e->s);
    }
}

uint64_t broker_next_msg_id(struct broker *b)
{
    return ++b->msg_id;
}

static bool acl_ok(const struct session *s, const char *t, size_t len, enum acl_access a)
{
    const struct acl_client *c = session_acl(s);
    return c && acl_check(c, t, len, a);
}

/* The ACL file, then the plugins' say (topic must be a message's NUL-terminated topic). */
static bool allowed(const struct broker *b, const struct session *s, const struct msg *m,
                    enum acl_access a)
{
    return acl_ok(s, m->topic, m->topic_len, a) &&
           (!b->policy.acl || b->policy.acl(b->policy.ctx, s, m->topic, (int)a));
}

void broker__compile_acl(struct broker *b, struct session *s)
{
    session_set_acl(s, b->acl ? acl_compile_cert(b->acl, session_identity(s), session_client_id(s),
                                                 session_attrs(s))
                              : NULL);
}

void broker_set_acl(struct broker *b, struct acl *a)
{
    acl_free(b->acl);
    b->acl = a;
    b->rates_on = quota_rates_used(&b->lim.per_identity, a);
    struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        broker__compile_acl(b, e->s);
        broker__resolve_limits(b, e->s);
    }
}

bool broker_topic_ok(const struct broker *b, const char *t, size_t len)
{
    if (!topic_name_valid(t, len) || len > b->lim.max_topic_length)
        return false;
    return !b->lim.max_topic_levels || topic_levels(t, len) <= b->lim.max_topic_levels;
}

bool broker_may_publish(const struct broker *b, const struct session *s, const char *topic,
                        size_t len)
{
    return acl_ok(s, topic, len, ACL_WRITE);
}

/* ---- sessions ------------------------------------------------------------------------------- */

static void untrack_subs(struct broker *b, struct session *s)
{
    for (size_t i = 0; i < session_sub_count(s); i++) {
        const struct session_sub *sub = session_sub_at(s, i);
        size_t len = strlen(sub->filter), glen = 0, flen = len;
        const char *g = NULL, *f = sub->filter;
        topic_share_split(sub->filter, len, &g, &glen, &f, &flen);
        topic_tree_unsubscribe(b->subs, f, flen, g, glen, s);
    }
}

static void deliver(struct broker *b, struct session *s, const struct session_delivery *d);

struct handover {
    struct broker *b;
    struct session *leaving;
};

/* The member of a shared group that gets the next message: the next one in turn that is online
 * and may read m; an offline one only if no member is online (it gets it when it returns). skip
 * (may be NULL) is never chosen. The cursor moves past whoever is chosen. */
static const struct topic_sub *pick_member(const struct broker *b, struct topic_group *g,
                                           const struct msg *m, const struct session *skip)
{
    size_t n = topic_group_size(g);
    uint32_t *cur = topic_group_cursor(g);
    const struct topic_sub *fallback = NULL;
    for (size_t k = 0; k < n; k++) {
        size_t i = (*cur + k) % n;
        const struct topic_sub *sub = topic_group_member(g, i);
        struct session *s = sub->subscriber;
        if (s == skip || !allowed(b, s, m, ACL_READ))
            continue;
        if (session_client(s)) {
            *cur = (uint32_t)((i + 1) % n);
            return sub;
        }
        if (!fallback)
            fallback = sub;
    }
    if (fallback)
        *cur = (*cur + 1) % (uint32_t)n;
    return fallback;
}

/* A message given to a shared group goes to another member of that group when the member that
 * had it leaves before acknowledging it. The group is still valid: the leaving session is
 * still one of its members at this point. */
static void hand_over(void *ctx, const struct session_delivery *d)
{
    struct handover *h = ctx;
    const struct topic_sub *sub =
        pick_member(h->b, (struct topic_group *)d->group, d->msg, h->leaving);
    if (sub)
        deliver(h->b, sub->subscriber, d);
}

void broker__destroy_session(struct broker *b, struct session *s)
{
    struct handover h = {b, s};
    session_take_shared(s, hand_over, &h);
    if (session_persistent(s))
        BDELETED(b, s);
    else if (session_recorded(s)) /* a clean session's will was recorded: withdrawn */
        BCHANGED(b, s);
    struct entry *e;
    size_t klen;
    const char *key = session_key(s, &klen);
    HASH_FIND(hh, b->sessions, key, klen, e);
    if (e) {
        broker__cert_unindex(b, e);
        HASH_DEL(b->sessions, e);
        e->id->sessions--;
        e->id->subscriptions -= (uint32_t)session_sub_count(s);
        e->id->persistent -= e->counted;
        ident_put(b->idents, e->id);
        free(e);
    }
    untrack_subs(b, s);
    session_free(s);
    b->stats.sessions--;
}

void broker_discard(struct broker *b, struct session *s)
{
    broker__destroy_session(b, s);
}

void broker_untrust(struct broker *b, struct session *s, bool discard, int64_t now)
{
    bool survives = session_persistent(s); /* detach destroys the others */
    broker_detach(b, s, false, now);
    if (survives && discard)
        broker__destroy_session(b, s);
}

static void publish_will(struct broker *b, struct session *s, int64_t now)
{
    struct msg *will = session_take_will(s);
    if (will) {
        broker_publish(b, s, will, now);
        msg_unref(will);
    }
}

struct session *broker__add_session(struct broker *b, const char *identity, const char *client_id)
{
    struct session *s = session_new(identity, client_id, &b->lim.session);
    struct entry *e = xcalloc(1, sizeof(*e));
    e->s = s;
    e->id = ident_get(b->idents, identity);
    e->id->sessions++;
    session_set_ident(s, e->id);
    size_t klen;
    const char *k = session_key(s, &klen);
    HASH_ADD_KEYPTR(hh, b->sessions, k, klen, e);
    b->stats.sessions++;
    return s;
}

/* Keep the identity's count of persistent sessions in step with s (after its persistence
 * may have changed). */
void broker__count_persistent(struct broker *b, struct session *s)
{
    struct entry *e;
    size_t klen;
    const char *key = session_key(s, &klen);
    HASH_FIND(hh, b->sessions, key, klen, e);
    bool p = session_persistent(s);
    if (e && e->counted != p) {
        e->counted = p;
        if (p)
            e->id->persistent++;
        else
            e->id->persistent--;
    }
}

struct session *broker_find(struct broker *b, const char *identity, const char *client_id)
{
    size_t il = strlen(identity), cl = strlen(client_id);
    char *key = xmalloc(il + cl + 2);
    memcpy(key, identity, il + 1);
    memcpy(key + il + 1, client_id, cl + 1);
    struct entry *e;
    HASH_FIND(hh, b->sessions, key, il + 1 + cl, e);
    free(key);
    return e ? e->s : NULL;
}

/* The session's connection, if any, is replaced by another (here or on another node). */
void broker__kick_client(struct broker *b, struct session *s, int64_t now)
{
    void *old = session_client(s);
    if (old) {
        session_set_client(s, NULL);
        broker__count_online(b, s, -1);
        if (b->policy.disconnected)
            b->policy.disconnected(b->policy.ctx, s);
        b->ops.kick(old, REASON_TAKEN_OVER);
        /* The old connection did not say DISCONNECT: its will goes out, unless it has a
         * delay, which the new connection to the session cancels (MQTT 5 3.1.3.2.2). */
        if (session_will_delay(s) == 0)
            publish_will(b, s, now);
    }
    /* A delayed will still pending is cancelled by the session's new connection. */
    msg_unref(session_take_will(s));
}

struct session *broker_attach(struct broker *b, const char *identity, const struct certattrs *attrs,
                              const char *client_id, void *client, const char *peer, bool clean,
                              bool persistent, uint32_t expiry_s, uint8_t version, bool *present,
                              int64_t now)
{
    struct session *s = broker_find(b, identity, client_id);
    *present = false;
    if (persistent && !(s && session_persistent(s)) &&
        !broker__persistent_quota_ok(b, identity, client_id))
        return NULL;
    if (s) {
        broker__kick_client(b, s, now);
        if (clean) {
            broker__destroy_session(b, s);
            s = NULL;
        } else {
            *present = true;
        }
    }
    if (!s) {
        s = broker__add_session(b, identity, client_id);
        if (b->store)
            session_set_store(s, b->store->session);
    }
    session_set_client(s, client);
    session_set_version(s, version);
    if (session_persistent(s) && !persistent)
        BDELETED(b, s); /* the new connection does not keep it */
    session_set_persistent(s, persistent, expiry_s);
    broker__count_persistent(b, s);
    if (persistent)
        BSESS(b, session_saved, s, 0);
    /* This connection's certificate (maybe renewed with other attributes) decides from now on. */
    session_set_attrs(s, certattrs_dup(attrs));
    broker__compile_acl(b, s);
    broker__count_online(b, s, 1);
    broker__resolve_limits(b, s);
    if (*present)
        session_resend_all(s);
    if (b->policy.connected)
        b->policy.connected(b->policy.ctx, s, peer);
    return s;
}

void broker_detach(struct broker *b, struct session *s, bool will, int64_t now)
{
    if (session_client(s)) {
        broker__count_online(b, s, -1);
        if (b->policy.disconnected)
            b->policy.disconnected(b->policy.ctx, s);
    }
    session_set_client(s, NULL);
    bool stays = session_persistent(s) && session_expiry_s(s) != 0;
    if (!will)
        msg_unref(session_take_will(s));
    else if (stays && session_will_delay(s))
        session_set_will_at(s, now + (int64_t)session_will_delay(s) * 1000); /* see broker_tick */
    else
        publish_will(b, s, now);
    if (!stays) {
        broker__destroy_session(b, s);
    } else {
        session_set_offline_since(s, now);
        BSESS(b, session_saved, s, now);
    }
}

void broker_tick(struct broker *b, int64_t now)
{
    b->now = now;
    broker__sweep_idents(b);
    struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        struct session *s = e->s;
        uint32_t exp = session_expiry_s(s);
        if (session_client(s))
            continue;
        int64_t will_at = session_will_at(s);
        bool expired = exp != UINT32_MAX && now - session_offline_since(s) >= (int64_t)exp * 1000;
        /* A delayed will goes out when due, or when the session ends, whichever is first. */
        if (will_at && (now >= will_at || expired))
            publish_will(b, s, now);
        if (expired)
            broker__destroy_session(b, s);
    }
}

void broker_foreach_session(struct broker *b, void (*cb)(void *ctx, struct session *s), void *ctx)
{
    struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        cb(ctx, e->s);
    }
}

/* ---- routing -------------------------------------------------------------------------------- */

static void add_match(struct broker *b, struct session *s, uint8_t sub_qos, uint8_t options,
                      uint32_t sub_id, const void *group)
{
    const struct msg *m = b->cur;
    if ((options & MQTT_SUBOPT_NO_LOCAL) && s == b->cur_from)
        return;
    uint8_t qos = b->lim.upgrade_outgoing_qos ? sub_qos : (m->qos < sub_qos ? m->qos : sub_qos);
    bool retain = (options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED) && m->retain;
    uint64_t *gen = session_match_gen(s);
    if (*gen == b->gen) {
        /* Overlapping subscriptions: one delivery at the highest QoS, every identifier. */
        for (size_t i = 0; i < b->m_count; i++) {
            struct session_delivery *d = &b->m[i].d;
            if (b->m[i].s != s)
                continue;
            if (qos > d->qos)
                d->qos = qos;
            d->retain |= retain;
            if (sub_id && d->n_sub_ids < SESSION_MAX_SUB_IDS)
                d->sub_ids[d->n_sub_ids++] = sub_id;
            return;
        }
    }
    *gen = b->gen;
    if (b->m_count == b->m_cap) {
        b->m_cap = b->m_cap ? b->m_cap * 2 : 64;
        b->m = xrealloc(b->m, b->m_cap * sizeof(*b->m));
    }
    struct match *x = &b->m[b->m_count++];
    memset(x, 0, sizeof(*x));
    x->s = s;
    x->d.msg = (struct msg *)m;
    x->d.qos = qos;
    x->d.retain = retain;
    x->d.group = group;
    if (sub_id)
        x->d.sub_ids[x->d.n_sub_ids++] = sub_id;
}

static void on_match(void *ctx, const struct topic_sub *sub)
{
    add_match(ctx, sub->subscriber, sub->options & MQTT_SUBOPT_QOS_MASK, sub->options, sub->sub_id,
              sub->group);
}

/* A shared group gets the message once (pick_member). */
static void on_group(void *ctx, struct topic_group *g)
{
    struct broker *b = ctx;
    const struct topic_sub *sub = pick_member(b, g, b->cur, NULL);
    if (sub)
        on_match(b, sub);
}

/* A subscriber whose queue is full loses messages: say so, once per session per interval (a
 * slow consumer would otherwise log a line per message). */
#define DROP_LOG_INTERVAL_MS 10000

static void log_dropped(struct broker *b, struct session *s)
{
    if (!log_due(session_drop_logged(s), b->now, DROP_LOG_INTERVAL_MS))
        return;
    const struct session_limits *l = &b->lim.session;
    log_warn("client %s (%s): queue full (max_queued_messages %u, max_queued_bytes %llu): "
             "%llu message(s) dropped so far",
             session_client_id(s), session_identity(s), l->max_queued,
             (unsigned long long)l->max_queued_bytes, (unsigned long long)session_dropped(s));
}

static void deliver(struct broker *b, struct session *s, const struct session_delivery *d)
{
    void *client = session_client(s);
    if (session_enqueue(s, d, client != NULL) != 0) {
        b->stats.msgs_dropped++;
        log_dropped(b, s);
        return;
    }
    if (client)
        b->ops.wakeup(client);
}

/* Store m as the topic's retained message; usage is charged to the identity that set it. */
static void store_retained(struct broker *b, const char *identity, struct msg *m)
{
    void *prev_owner = NULL;
    uint64_t prev = 0;
    retain_peek(b->retained, m->topic, m->topic_len, &prev_owner, &prev);
    struct ident *id = identity ? ident_get(b->idents, identity) : NULL;
    if (prev_owner) {
        struct ident *old = prev_owner;
        old->retained_bytes -= prev;
        old->retained--;
        if (old != id)
            ident_put(b->idents, old);
    }
    if (id && m->payload_len) {
        id->retained_bytes += retain_cost(m);
        id->retained++;
    }
    retain_set(b->retained, m, m->payload_len ? id : NULL);
    ident_put(b->idents, id);
    BSTORE(b, retained, m);
}

/* A retained set or clear from a publish: into the local store, or (cluster, from a client)
 * to the cluster's store, which feeds every node's local one in its own order. */
static enum broker_pub_result keep_retained(struct broker *b, struct session *from, struct msg *m,
                                            int64_t now, uint64_t *ticket)
{
    const char *identity = from ? session_identity(from) : NULL;
    if (!broker__retained_fits(b, identity, m))
        return BROKER_PUB_OK;
    if (!from || !b->cluster.retain) {
        store_retained(b, identity, m);
        return BROKER_PUB_OK;
    }
    *ticket = b->cluster.retain(b->cluster.ctx, from, m, now);
    return *ticket ? BROKER_PUB_OK : BROKER_PUB_NOT_RETAINED;
}

void broker_retained_apply(struct broker *b, struct msg *m, const char *identity)
{
    store_retained(b, identity, m);
}

uint64_t broker_retained_barrier(struct broker *b)
{
    return b->cluster.barrier ? b->cluster.barrier(b->cluster.ctx) : 0;
}

/* Start collecting the deliveries of m (from = publishing session or NULL). */
static void collect_begin(struct broker *b, const struct session *from, const struct msg *m)
{
    b->gen++;
    b->m_count = 0;
    b->cur = m;
    b->cur_from = from;
}

/* Queue the collected deliveries that pass the receiver's read check; returns how many. */
static size_t deliver_collected(struct broker *b, const struct msg *m)
{
    size_t delivered = 0;
    for (size_t i = 0; i < b->m_count; i++) {
        struct match *x = &b->m[i];
        if (!allowed(b, x->s, m, ACL_READ))
            continue;
        deliver(b, x->s, &x->d);
        delivered++;
    }
    b->cur = NULL;
    b->cur_from = NULL;
    return delivered;
}

enum broker_pub_result broker_publish_wait(struct broker *b, struct session *from, struct msg *m,
                                           int64_t now, uint64_t *ticket)
{
    *ticket = 0;
    b->now = now;
    if (from && !allowed(b, from, m, ACL_WRITE)) {
        b->stats.publish_denied++;
        return BROKER_PUB_DENIED;
    }
    if (from && b->policy.observe)
        b->policy.observe(b->policy.ctx, from, m);
    enum broker_pub_result r = BROKER_PUB_OK;
    if (m->retain && b->lim.retain_available)
        r = keep_retained(b, from, m, now, ticket);
    collect_begin(b, from, m);
    topic_tree_match(b->subs, m->topic, m->topic_len, on_match,
                     b->cluster.shared_remote ? NULL : on_group, b);
    size_t delivered = deliver_collected(b, m);
    /* Other nodes' subscribers are unknown here: a message sent on counts as matched. */
    if (from && b->cluster.publish) {
        uint64_t t = b->cluster.publish(b->cluster.ctx, from, m, now);
        if (t == BROKER_TICKET_FAILED)
            return BROKER_PUB_NOT_DURABLE;
        if (t && !*ticket)
            *ticket = t;
        return r;
    }
    return r != BROKER_PUB_OK || delivered ? r : BROKER_PUB_NO_MATCH;
}

enum broker_pub_result broker_publish(struct broker *b, struct session *from, struct msg *m,
                                      int64_t now)
{
    uint64_t ticket;
    return broker_publish_wait(b, from, m, now, &ticket);
}

enum broker_pub_result broker_deliver_remote(struct broker *b, struct msg *m, const char *group,
                                             size_t glen, const char *filter, size_t flen,
                                             int64_t now)
{
    b->now = now;
    collect_begin(b, NULL, m);
    if (!group) {
        topic_tree_match(b->subs, m->topic, m->topic_len, on_match, NULL, b);
    } else {
        struct topic_group *g = topic_tree_group(b->subs, filter, flen, group, glen);
        const struct topic_sub *sub = g ? pick_member(b, g, m, NULL) : NULL;
        if (sub)
            on_match(b, sub);
    }
    size_t delivered = deliver_collected(b, m);
    b->stats.remote_in += delivered != 0;
    return delivered ? BROKER_PUB_OK : BROKER_PUB_NO_MATCH;
}

static void on_match_only(void *ctx, const struct topic_sub *sub)
{
    struct broker *b = ctx;
    if (sub->subscriber == b->cur_only)
        on_match(ctx, sub);
}

size_t broker_deliver_replay(struct broker *b, struct msg *m, const struct session *only,
                             int64_t now)
{
    b->now = now;
    collect_begin(b, NULL, m);
    b->cur_only = only;
    topic_tree_match(b->subs, m->topic, m->topic_len, only ? on_match_only : on_match, NULL, b);
    return deliver_collected(b, m);
}

struct retained_ctx {
    struct broker *b;
    struct session *s;
    uint8_t qos;
    uint32_t sub_id;
};

/* One retained message for a new subscription. False stops the walk: the session's queue is
 * full, so every further message would be dropped too (the one dropped here is counted; the
 * rest are not looked at, and the cut is counted once in retained_cut). */
static bool on_retained(void *ctx, struct msg *m)
{
    struct retained_ctx *r = ctx;
    if (!allowed(r->b, r->s, m, ACL_READ))
        return true;
    struct session_delivery d = {.msg = m, .retain = true};
    d.qos = r->b->lim.upgrade_outgoing_qos ? r->qos : (m->qos < r->qos ? m->qos : r->qos);
    if (r->sub_id)
        d.sub_ids[d.n_sub_ids++] = r->sub_id;
    deliver(r->b, r->s, &d);
    if (!session_queue_full(r->s))
        return true;
    if (r->b->stats.retained_cut++ % 1000 == 0)
        log_info("session %s: queue full, retained messages for a new subscription stopped at "
                 "%s (%llu such cuts so far)",
                 session_client_id(r->s), m->topic, (unsigned long long)r->b->stats.retained_cut);
    return false;
}

uint8_t broker_subscribe_begin(struct broker *b, struct session *s, const char *filter, size_t len,
                               uint8_t options, uint32_t sub_id, int64_t now,
                               struct broker_retained *rw)
{
    const char *group = NULL, *f = filter;
    size_t glen = 0, flen = len;
    if (topic_share_split(filter, len, &group, &glen, &f, &flen) < 0)
        return MQTT_RC_TOPIC_FILTER_INVALID;
    if (len > b->lim.max_topic_length || !topic_filter_valid(f, flen) ||
        (b->lim.max_topic_levels && topic_levels(f, flen) > b->lim.max_topic_levels))
        return MQTT_RC_TOPIC_FILTER_INVALID;
    const struct acl_client *acl = session_acl(s);
    if (!acl || !acl_check_subscribe(acl, f, flen)) {
        b->stats.subscribe_denied++;
        return MQTT_RC_NOT_AUTHORIZED;
    }
    if (b->lim.max_subscriptions_per_client &&
        session_sub_count(s) >= b->lim.max_subscriptions_per_client) {
        if (!session_sub_find(s, filter, len))
            return MQTT_RC_QUOTA_EXCEEDED;
    }
    if (!broker__identity_subs_ok(b, s, filter, len))
        return MQTT_RC_QUOTA_EXCEEDED;
    bool replaced;
    topic_tree_subscribe(b->subs, f, flen, group, glen, s, options, sub_id, &replaced);
    enum session_sub_added added = session_sub_add(s, filter, len, options, sub_id);
    session_ident(s)->subscriptions += added == SESSION_SUB_NEW;
    if (session_persistent(s))
        BSESS(b, sub, s, filter, len, options, sub_id, true);
    uint8_t qos = options & MQTT_SUBOPT_QOS_MASK;
    unsigned rh = (options & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT;
    /* A filter repeated within one SUBSCRIBE gets its retained messages once. */
    if (!group && added != SESSION_SUB_REPEATED &&
        (rh == 0 || (rh == 1 && added == SESSION_SUB_NEW))) {
        *rw = (struct broker_retained){
            .filter = xstrndup(f, flen), .len = flen, .qos = qos, .sub_id = sub_id, .active = true};
    }
    return qos;
}

bool broker_retained_step(struct broker *b, struct session *s, struct broker_retained *rw,
                          size_t budget)
{
    if (!rw->active)
        return true;
    struct retained_ctx r = {b, s, rw->qos, rw->sub_id};
    /* A full queue would drop everything: not even the first message is worth a walk. */
    if (session_queue_full(s))
        b->stats.retained_cut++;
    else if (!retain_match_step(b->retained, rw->filter, rw->len, &rw->cur, budget, on_retained,
                                &r))
        return false;
    broker_retained_end(rw);
    return true;
}

void broker_retained_end(struct broker_retained *rw)
{
    retain_cursor_free(&rw->cur);
    free(rw->filter);
    *rw = (struct broker_retained){0};
}

uint8_t broker_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                         uint8_t options, uint32_t sub_id, int64_t now)
{
    struct broker_retained rw = {0};
    uint8_t rc = broker_subscribe_begin(b, s, filter, len, options, sub_id, now, &rw);
    broker_retained_step(b, s, &rw, SIZE_MAX);
    return rc;
}

int broker_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len)
{
    if (!session_sub_del(s, filter, len))
        return -1;
    session_ident(s)->subscriptions--;
    if (session_persistent(s))
        BSESS(b, sub, s, filter, len, 0, 0, false);
    const char *group = NULL, *f = filter;
    size_t glen = 0, flen = len;
    if (topic_share_split(filter, len, &group, &glen, &f, &flen) < 0)
        return -1;
    topic_tree_unsubscribe(b->subs, f, flen, group, glen, s);
    return 0;
}
