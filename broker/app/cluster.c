/* cluster: routing between certmq nodes over core NATS (see cluster.h for the contract).
 *
 * Out: broker_publish -> on_publish: the topic's subject and the envelope are written into
 * buffers this module reuses, and nats.c copies them into its write buffer: no allocation per
 * message. In: one NATS subscription per distinct local filter (two for "x/#": "x.>" and "x"),
 * created on the filter's first local subscriber and dropped with its last (the broker's
 * first/last watch, O(1)). NATS sends one copy per matching subscription, so a topic matched
 * by several local filters arrives several times; only the copy that came through the oldest
 * matching interest is delivered (each copy runs the full local match, so each session gets the
 * message once, as for a local publish). Shared groups are queue subscriptions on a second
 * connection that keeps echo on, so this node's own publishes can reach its own group members
 * while the routing connection (NoEcho) never gets its own messages back. */
#include "cluster_int.h"

#include "envelope.h"
#include "log.h"
#include "subject.h"
#include "topic.h"
#include "utf8.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* Messages taken from NATS per loop turn before the loop serves its clients again; the rest
 * waits in nats.c's subscription queues and the idle handle brings the loop straight back. */
#define DRAIN_BUDGET 2048
/* Complaints about one kind of bad input are logged once every this many. */
#define LOG_EVERY 1000

struct interest {
    natsSubscription *sub[2]; /* the filter's subjects (the second only for "x/#") */
    uint64_t ord;             /* creation order: the oldest matching interest delivers */
    struct cluster_link *link;
    const char *group, *filter; /* in key */
    size_t glen, flen;
    UT_hash_handle hh;
    size_t klen;
    char key[]; /* group NUL filter (group empty for non-shared) */
};

struct cluster {
    struct broker *b;
    const struct cluster_opts *o;
    uv_loop_t *loop;
    struct cluster_link route, share;
    struct cluster_kv *kv;         /* retained messages (cluster_kv.c) */
    struct cluster_sess *sess;     /* session ownership (cluster_sess.c) */
    struct cluster_q *q;           /* durable QoS >= 1 (cluster_q.c), persistence true only */
    struct cluster_fence *fence;   /* after an outage (cluster_fence.c) */
    struct cluster_replay *replay; /* messages read back after failures, persistence true only */
    struct cluster_rec *rec;       /* session records, heartbeats, adoption (cluster_rec.c) */
    bool route_lost;               /* the routing link went down since it last came up */
    int64_t route_lost_at;         /* wall ms: when it went down */
    natsSubscription *revocations; /* <prefix>.ctl.revoked, on the routing link (no echo) */
    void (*revoked)(void *ctx, const struct envelope_revoke *r);
    void *revoked_ctx;
    uv_check_t drain;
    uv_idle_t more;
    struct interest *interests;
    struct topic_tree *plain; /* non-shared interests by filter, for the oldest-copy rule */
    uint64_t next_ord;
    uint64_t next_ticket; /* cluster__ticket */
    uint64_t next_id;     /* the envelope id of the last durable publish (from the boot's µs) */
    char prefix[48];
    char *subj; /* max_subject + 1 bytes, reused */
    size_t subj_cap;
    char *topic; /* decoded topics, reused */
    char *queue; /* queue group names, reused */
    uint8_t *env;
    size_t env_cap;
    struct cluster_stats stats;
    bool rx, stopped;
};

bool cluster_enabled(const struct cluster_opts *o)
{
    return o->url_count > 0;
}

/* ---- --test-config --------------------------------------------------------------------------- */

static void check_file(const char *key, const char *path, struct diag *d)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (path && !f)
        diag_add(d, NULL, 0, "%s %s: cannot be read", key, path);
    if (f)
        fclose(f);
}

int cluster_check(const struct cluster_opts *o, struct diag *d)
{
    size_t before = d->count;
    check_file("cluster_nats_creds", o->creds, d);
    check_file("cluster_nats_tls_ca", o->tls_ca, d);
    check_file("cluster_nats_tls_cert", o->tls_cert, d);
    check_file("cluster_nats_tls_key", o->tls_key, d);
    return d->count == before ? 0 : -1;
}

void cluster_print_plan(const struct cluster_opts *o, FILE *f)
{
    if (!cluster_enabled(o)) {
        fprintf(f, "cluster: off (no cluster_nats): single node, no NATS needed\n");
        return;
    }
    fprintf(f, "cluster: %s, this node %s\n", o->name, o->node);
    for (size_t i = 0; i < o->url_count; i++)
        fprintf(f, "cluster: NATS server %zu: %s\n", i + 1, o->urls[i]);
    fprintf(f, "cluster: authentication %s%s\n",
            o->creds  ? "credentials file"
            : o->user ? "user and password"
                      : "none",
            o->tls_cert ? ", TLS client certificate" : "");
    fprintf(f,
            "cluster: publishes on cmq.%s.t.QOS.PART.<topic levels> (topics starting with $: "
            "cmq.%s.d....), at most %u bytes per subject\n",
            o->name, o->name, o->max_subject);
    fprintf(f, "cluster: subscribes one NATS subject per local filter; $share groups as queue "
               "groups share.<group>.<filter>\n");
    fprintf(f,
            "cluster: retained messages in JetStream KV bucket cmq_ret_%s (stream KV_cmq_ret_%s, "
            "created at start-up when missing, %u replica(s))\n",
            o->name, o->name, cluster__replicas(o));
    fprintf(f,
            "cluster: session ownership in JetStream stream CMQ_SESS_%s (subjects "
            "cmq.%s.claim.<session hash>.<epoch>, one message each), takeovers on "
            "cmq.%s.take.<node>\n",
            o->name, o->name, o->name);
    if (o->durable)
        fprintf(f,
                "cluster: QoS 1/2 publishes stored in JetStream stream CMQ_Q_%s (subjects "
                "cmq.%s.[td].[12].>, %u replica(s), 15 min) before their PUBACK/PUBREC, "
                "sent again until stored for up to %u s (persistence true)\n",
                o->name, o->name, cluster__replicas(o), o->ack_timeout_s);
    else
        fprintf(f, "cluster: QoS 1/2 publishes acknowledged once this node has them "
                   "(persistence false: nothing stored in JetStream)\n");
    fprintf(f,
            "cluster: session records and heartbeats in JetStream stream CMQ_REC_%s (subjects "
            "cmq.%s.rec.<session hash>.<epoch>, cmq.%s.node.<node>, one message each): a node "
            "silent for 5 s is dead; its sessions are rebuilt elsewhere%s; dead nodes' wills "
            "%s\n",
            o->name, o->name, o->name,
            o->durable ? " and what they were owed is read back from CMQ_Q" : "",
            o->dead_wills ? "published (cluster_dead_node_wills true)" : "dropped");
}

/* ---- out: local publishes ------------------------------------------------------------------- */

/* The publisher's partition: its session key hashed (FNV-1a), so one publisher keeps order. */
static unsigned partition(const struct cluster *c, const struct session *from)
{
    if (c->o->partitions <= 1)
        return 0;
    size_t len;
    const char *k = session_key(from, &len);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h % c->o->partitions;
}

static uint64_t on_publish(void *ctx, const struct session *from, const struct msg *m, int64_t now)
{
    struct cluster *c = ctx;
    if (c->stopped)
        return 0;
    int n = subject_from_topic(c->prefix, m->topic, m->topic_len, m->qos, partition(c, from),
                               c->subj, c->subj_cap);
    if (n < 0) {
        if (c->stats.dropped_long++ % LOG_EVERY == 0)
            log_warn("cluster: topic of %u bytes is over cluster_max_subject_length %u as a NATS "
                     "subject: delivered on this node only (%llu so far)",
                     m->topic_len, c->o->max_subject, (unsigned long long)c->stats.dropped_long);
        return 0;
    }
    const char *ident = session_identity(from);
    /* Durable ones are named for replays to skip what routing delivered (seen.h). */
    uint64_t id = c->q && m->qos && !m->retain ? ++c->next_id : 0;
    size_t need = envelope_size(m, c->o->node, ident, id);
    if (need > c->env_cap) { /* grows to the largest message seen, then stays */
        c->env_cap = need * 2;
        c->env = xrealloc(c->env, c->env_cap);
    }
    size_t len = envelope_encode(m, now, c->o->node, ident, id, c->env, c->env_cap);
    if (!len)
        return 0;                       /* expired meanwhile */
    if (c->q && m->qos && !m->retain) { /* retained ones are durable in their bucket */
        uint64_t t = cluster__q_publish(c->q, c->subj, c->env, len);
        if (t != CLUSTER_Q_FAILED)
            c->stats.sent++;
        return t == CLUSTER_Q_FAILED ? BROKER_TICKET_FAILED : t;
    }
    natsStatus s = natsConnection_Publish(c->route.nc, c->subj, c->env, (int)len);
    if (s == NATS_OK) {
        c->stats.sent++;
    } else if (c->stats.send_failed++ % LOG_EVERY == 0) {
        log_warn("cluster: cannot send %s to NATS: %s (%llu so far)", m->topic,
                 natsStatus_GetText(s), (unsigned long long)c->stats.send_failed);
    }
    return 0;
}

/* ---- interests ------------------------------------------------------------------------------ */

static struct interest *interest_find(struct cluster *c, const char *key, size_t klen)
{
    struct interest *i;
    HASH_FIND(hh, c->interests, key, klen, i);
    return i;
}

static struct interest *interest_new(const char *filter, size_t flen, const char *group,
                                     size_t glen)
{
    struct interest *i = xcalloc(1, sizeof(*i) + glen + 1 + flen + 1);
    if (group) /* memcpy from NULL, even of 0 bytes, would let the compiler assume group set */
        memcpy(i->key, group, glen);
    memcpy(i->key + glen + 1, filter, flen);
    i->klen = glen + 1 + flen;
    i->group = group ? i->key : NULL;
    i->glen = glen;
    i->filter = i->key + glen + 1;
    i->flen = flen;
    return i;
}

/* The NATS subscriptions for i; false (logged) when its subjects cannot be used. */
static bool interest_subscribe(struct cluster *c, struct interest *i)
{
    size_t lens[2];
    int n = subject_from_filter(c->prefix, i->filter, i->flen, c->subj, c->subj_cap, lens);
    /* A SUB line carries the subject and the queue name: both within the bound together. */
    if (n > 0 && i->group &&
        subject_queue_name(i->group, i->glen, i->filter, i->flen, c->queue, c->subj_cap - lens[0]) <
            0)
        n = SUBJECT_TOO_LONG;
    if (n < 0 && i->group) {
        log_warn("cluster: shared subscription $share/%.*s/%.*s is too long for NATS "
                 "(cluster_max_subject_length %u): its group gets no messages",
                 (int)i->glen, i->group, (int)i->flen, i->filter, c->o->max_subject);
        return false;
    }
    if (n < 0) {
        log_warn("cluster: filter %.*s is too long for a NATS subject (cluster_max_subject_length "
                 "%u): it gets messages from this node only",
                 (int)i->flen, i->filter, c->o->max_subject);
        return false;
    }
    const char *queue = c->queue;
    const char *subj[2] = {c->subj, c->subj + lens[0] + 1};
    for (int k = 0; k < n; k++) {
        natsStatus s =
            i->group ? natsConnection_QueueSubscribeSync(&i->sub[k], i->link->nc, subj[k], queue)
                     : natsConnection_SubscribeSync(&i->sub[k], i->link->nc, subj[k]);
        if (s != NATS_OK) {
            log_err("cluster: cannot subscribe to %s: %s", subj[k], natsStatus_GetText(s));
            return false;
        }
    }
    return true;
}

static void interest_free(struct cluster *c, struct interest *i)
{
    for (int k = 0; k < 2; k++)
        natsSubscription_Destroy(i->sub[k]); /* also unsubscribes */
    if (!i->group && i->sub[0])
        topic_tree_unsubscribe(c->plain, i->filter, i->flen, NULL, 0, i);
    free(i);
}

static void on_interest(void *ctx, const char *filter, size_t flen, const char *group, size_t glen,
                        bool add)
{
    struct cluster *c = ctx;
    struct interest *key = interest_new(filter, flen, group, glen);
    struct interest *i = interest_find(c, key->key, key->klen);
    if (!add || i || c->stopped) {
        free(key);
        if (!add && i) {
            HASH_DEL(c->interests, i);
            interest_free(c, i);
            c->stats.interests--;
        }
        return;
    }
    i = key;
    i->ord = c->next_ord++;
    i->link = group ? &c->share : &c->route;
    HASH_ADD(hh, c->interests, key, i->klen, i);
    c->stats.interests++;
    if (!interest_subscribe(c, i)) {
        for (int k = 0; k < 2; k++) {
            natsSubscription_Destroy(i->sub[k]);
            i->sub[k] = NULL;
        }
        return;
    }
    if (!group) {
        bool rep;
        topic_tree_subscribe(c->plain, filter, flen, NULL, 0, i, 0, 0, &rep);
    }
}

/* ---- in: messages from other nodes ---------------------------------------------------------- */

struct oldest {
    const struct interest *best;
};

static void on_plain_match(void *ctx, const struct topic_sub *sub)
{
    struct oldest *o = ctx;
    const struct interest *i = sub->subscriber;
    if (!o->best || i->ord < o->best->ord)
        o->best = i;
}

/* Does the copy that came through i deliver (see the top of this file)? */
static bool copy_delivers(const struct cluster *c, const struct interest *i, const char *topic,
                          size_t len)
{
    if (i->group)
        return true;
    struct oldest o = {NULL};
    topic_tree_match(c->plain, topic, len, on_plain_match, NULL, &o);
    return o.best == i;
}

static void bad_input(struct cluster *c, const char *subj, const char *why)
{
    if (c->stats.bad_received++ % LOG_EVERY == 0)
        log_warn("cluster: message from NATS on %.200s dropped: %s (%llu so far)", subj, why,
                 (unsigned long long)c->stats.bad_received);
}

static void receive(struct cluster *c, const struct interest *i, natsMsg *nm, int64_t now)
{
    const char *subj = natsMsg_GetSubject(nm);
    int tlen = subject_to_topic(c->prefix, subj, strlen(subj), c->topic, c->subj_cap, NULL, NULL);
    if (tlen < 0 || !broker_topic_ok(c->b, c->topic, (size_t)tlen) ||
        !utf8_valid((const uint8_t *)c->topic, (size_t)tlen, false)) {
        bad_input(c, subj, "not the subject of a valid topic");
        return;
    }
    c->stats.received++;
    if (!copy_delivers(c, i, c->topic, (size_t)tlen))
        return;
    struct envelope e;
    int r = envelope_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &e);
    if (r != 0) {
        bad_input(c, subj, envelope_strerror(r));
        return;
    }
    if (c->replay && !i->group && !cluster__replay_routed(c->replay, &e, now)) {
        c->stats.repeated++;
        return;
    }
    struct mqtt_publish pub;
    envelope_publish(&e, c->topic, (size_t)tlen, &pub);
    int64_t expiry = 0;
    if (e.has_expiry) /* at most MQTT's largest interval: no overflow from a hostile value */
        expiry = now +
                 (int64_t)(e.expiry_ms < UINT32_MAX * 1000ull ? e.expiry_ms : UINT32_MAX * 1000ull);
    struct msg *m = msg_new(c->topic, (size_t)tlen, &pub, expiry, broker_next_msg_id(c->b));
    broker_deliver_remote(c->b, m, i->group, i->glen, i->filter, i->flen, now);
    msg_unref(m);
}

/* ---- certificate revocations between nodes ---------------------------------------------- */

void cluster_set_revoker(struct cluster *c,
                         void (*revoked)(void *ctx, const struct envelope_revoke *r), void *ctx)
{
    c->revoked = revoked;
    c->revoked_ctx = ctx;
}

static int revocation_subject(const struct cluster *c, char *out, size_t cap)
{
    return snprintf(out, cap, "%s.ctl.revoked", c->prefix);
}

void cluster_revoked(struct cluster *c, const struct envelope_revoke *r)
{
    uint8_t buf[ENVELOPE_REVOKE_MAX];
    size_t len = envelope_revoke_encode(r, c->o->node, buf, sizeof(buf));
    if (c->stopped || !len)
        return;
    char subj[sizeof(c->prefix) + 16];
    revocation_subject(c, subj, sizeof(subj));
    natsStatus s = natsConnection_Publish(c->route.nc, subj, buf, (int)len);
    if (s == NATS_OK)
        c->stats.revocations_sent++;
    else
        log_warn("cluster: cannot announce a revoked certificate to the other nodes: %s (each "
                 "node still applies its own CRLs)",
                 natsStatus_GetText(s));
}

static void drain_revocations(struct cluster *c, size_t *budget)
{
    natsMsg *nm;
    while (*budget && c->revocations &&
           natsSubscription_NextMsg(&nm, c->revocations, 0) == NATS_OK) {
        struct envelope_revoke r;
        int e = envelope_revoke_decode((const uint8_t *)natsMsg_GetData(nm),
                                       (size_t)natsMsg_GetDataLength(nm), &r);
        if (e != 0) {
            bad_input(c, natsMsg_GetSubject(nm), envelope_strerror(e));
        } else {
            c->stats.revocations_received++;
            if (c->revoked)
                c->revoked(c->revoked_ctx, &r);
        }
        natsMsg_Destroy(nm);
        (*budget)--;
    }
}

/* Only there so that the loop does not block while messages wait: the check handle drains. */
static void on_idle(uv_idle_t *h) {}

void cluster__take_pending(struct cluster *c)
{
    int64_t now = (int64_t)uv_now(c->loop);
    struct interest *i, *tmp;
    HASH_ITER(hh, c->interests, i, tmp)
    {
        for (int k = 0; k < 2 && i->sub[k]; k++) {
            natsMsg *nm;
            while (natsSubscription_NextMsg(&nm, i->sub[k], 0) == NATS_OK) {
                receive(c, i, nm, now);
                natsMsg_Destroy(nm);
            }
        }
    }
}

/* Take what waits in the subscriptions, up to the turn's budget. */
static void drain(struct cluster *c)
{
    if (c->stopped || !c->rx)
        return;
    int64_t now = (int64_t)uv_now(c->loop);
    size_t budget = DRAIN_BUDGET;
    cluster__kv_drain(c->kv, now, &budget);
    /* Records first: an adoption's claim acknowledged in this turn makes the session exist
     * here before a takeover request for it, in the same turn, is answered. */
    cluster__rec_drain(c->rec, &budget);
    cluster__sess_drain(c->sess, &budget);
    if (c->q)
        cluster__q_drain(c->q, &budget);
    cluster__fence_drain(c->fence, &budget);
    if (c->replay)
        cluster__replay_drain(c->replay, &budget);
    drain_revocations(c, &budget);
    struct interest *i, *tmp;
    HASH_ITER(hh, c->interests, i, tmp)
    {
        for (int k = 0; k < 2 && i->sub[k] && budget; k++) {
            natsMsg *nm;
            /* receive() may not change the interests (it only queues on sessions). */
            while (budget && natsSubscription_NextMsg(&nm, i->sub[k], 0) == NATS_OK) {
                receive(c, i, nm, now);
                natsMsg_Destroy(nm);
                budget--;
            }
        }
    }
    c->rx = budget == 0;
    if (c->rx)
        uv_idle_start(&c->more, on_idle);
    else
        uv_idle_stop(&c->more);
}

static void on_check(uv_check_t *h)
{
    struct cluster *c = h->data;
    drain(c);
    if (!c->stopped) {
        cluster__kv_turn_end(c->kv);
        cluster__rec_flush(c->rec);
    }
}

uint64_t cluster__ticket(struct cluster *c)
{
    return ++c->next_ticket;
}

void cluster__rx(struct cluster *c)
{
    c->rx = true;
}

void cluster__link_event(struct cluster *c, struct cluster_link *l, bool up)
{
    if (l == &c->route && c->kv)
        cluster__kv_link(c->kv, up);
    if (l == &c->route && c->sess)
        cluster__sess_link(c->sess, up);
    if (l == &c->route && c->q)
        cluster__q_link(c->q, up);
    if (l == &c->route && c->replay)
        cluster__replay_link(c->replay, up);
    if (l == &c->route)
        cluster__rec_link(c->rec, up);
    if (l == &c->route && !up && !c->route_lost) {
        c->route_lost = true;
        c->route_lost_at = cluster__wall_ms();
    }
    if (l == &c->route && up && c->route_lost) {
        c->route_lost = false;
        cluster__fence_start(c->fence);
        /* What other nodes published for this node's filters while it was away. */
        if (c->replay)
            cluster__replay(c->replay, NULL, NULL, c->route_lost_at, cluster__wall_ms());
    }
}

bool cluster__node_silent(struct cluster *c, const char *node)
{
    return cluster__rec_silent(c->rec, node);
}

void cluster__stalled(struct cluster *c)
{
    cluster__fence_start(c->fence);
}

void cluster__recovered(struct cluster *c, const char *identity, const char *client_id,
                        int64_t since, const char *prev)
{
    c->stats.rec_recovered++;
    log_notice("cluster: client %s (%s): session rebuilt from the record of node %s%s", client_id,
               identity, prev,
               c->replay ? "; its messages since then are read back from JetStream"
                         : " (persistence false: messages it was owed there are lost)");
    if (c->replay)
        cluster__replay(c->replay, identity, client_id, since, cluster__wall_ms());
}

static void on_changed(void *ctx, const struct session *s)
{
    struct cluster *c = ctx;
    if (!c->stopped)
        cluster__rec_changed(c->rec, s);
}

static uint64_t on_retain(void *ctx, const struct session *from, const struct msg *m, int64_t now)
{
    struct cluster *c = ctx;
    return c->stopped ? 0 : cluster__kv_retain(c->kv, from, m, now);
}

static uint64_t on_barrier(void *ctx)
{
    struct cluster *c = ctx;
    return c->stopped ? 0 : cluster__kv_barrier(c->kv);
}

static uint64_t on_claim(void *ctx, const char *identity, const char *client_id,
                         const struct certattrs *attrs, bool persistent, bool clean)
{
    struct cluster *c = ctx;
    return cluster__sess_claim(c->sess, identity, client_id, attrs, persistent, clean);
}

static void on_claimed(void *ctx, struct session *s, uint64_t ticket)
{
    struct cluster *c = ctx;
    if (!c->stopped)
        cluster__sess_claimed(c->sess, s, ticket);
}

void cluster_set_waiter(struct cluster *c, void (*done)(void *ctx, uint64_t ticket, bool ok),
                        void *ctx)
{
    cluster__kv_set_done(c->kv, done, ctx);
    cluster__sess_set_done(c->sess, done, ctx);
    if (c->q)
        cluster__q_set_done(c->q, done, ctx);
}

/* ---- life ----------------------------------------------------------------------------------- */

struct cluster *cluster_new(uv_loop_t *loop, struct broker *b, const struct cluster_opts *o)
{
    struct cluster *c = xcalloc(1, sizeof(*c));
    c->b = b;
    c->o = o;
    c->loop = loop;
    c->plain = topic_tree_new();
    snprintf(c->prefix, sizeof(c->prefix), "cmq.%s", o->name);
    c->subj_cap = (size_t)o->max_subject + 1;
    c->subj = xmalloc(c->subj_cap);
    c->topic = xmalloc(c->subj_cap);
    c->queue = xmalloc(c->subj_cap);
    uv_check_init(loop, &c->drain);
    c->drain.data = c;
    uv_check_start(&c->drain, on_check);
    uv_idle_init(loop, &c->more);
    c->more.data = c;
    /* Unique per node name across restarts, unless a run averaged a message per µs. */
    c->next_id = (uint64_t)cluster__wall_ms() * 1000u;
    c->kv = cluster__kv_new(loop, b, o, &c->route);
    c->sess = cluster__sess_new(loop, b, o, &c->route);
    c->q = o->durable ? cluster__q_new(loop, o, &c->route) : NULL;
    c->fence = cluster__fence_new(b, o, &c->route);
    c->replay = o->durable ? cluster__replay_new(loop, b, o, &c->route) : NULL;
    c->rec = cluster__rec_new(loop, b, o, &c->route, c->replay);
    cluster__sess_set_replay(c->sess, c->replay);
    return c;
}

int cluster_connect(struct cluster *c)
{
    const struct cluster_opts *o = c->o;
    log_notice("cluster %s: node %s, %zu NATS server(s), first %s", o->name, o->node, o->url_count,
               o->urls[0]);
    if (cluster__link_open(&c->route, c, "routing", c->loop, o, true) != 0 ||
        cluster__link_open(&c->share, c, "shared", c->loop, o, false) != 0)
        return -1;
    char subj[sizeof(c->prefix) + 16];
    revocation_subject(c, subj, sizeof(subj));
    natsStatus s = natsConnection_SubscribeSync(&c->revocations, c->route.nc, subj);
    if (s != NATS_OK)
        log_err("cluster: cannot subscribe to %s: %s (revocations on other nodes are not "
                "heard here; this node's own CRLs still apply)",
                subj, natsStatus_GetText(s));
    struct broker_cluster hooks = {c,          on_publish, on_interest, true,      on_retain,
                                   on_barrier, on_claim,   on_claimed,  on_changed};
    broker_set_cluster(c->b, &hooks);
    if (c->route.connected) { /* otherwise when the link comes up */
        cluster__kv_link(c->kv, true);
        cluster__sess_link(c->sess, true);
        if (c->q)
            cluster__q_link(c->q, true);
        if (c->replay)
            cluster__replay_link(c->replay, true);
        cluster__rec_link(c->rec, true);
    }
    return 0;
}

void cluster_stop(struct cluster *c)
{
    if (!c || c->stopped)
        return;
    c->stopped = true;
    struct interest *i, *tmp;
    HASH_ITER(hh, c->interests, i, tmp)
    {
        HASH_DEL(c->interests, i);
        interest_free(c, i);
    }
    c->stats.interests = 0;
    natsSubscription_Destroy(c->revocations);
    c->revocations = NULL;
    cluster__kv_stop(c->kv);
    cluster__sess_stop(c->sess);
    cluster__q_stop(c->q);
    cluster__fence_stop(c->fence);
    cluster__rec_stop(c->rec);
    cluster__replay_stop(c->replay);
    cluster__link_close(&c->route);
    cluster__link_close(&c->share);
    uv_close((uv_handle_t *)&c->drain, NULL);
    uv_close((uv_handle_t *)&c->more, NULL);
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    cluster__link_free(&c->route);
    cluster__link_free(&c->share);
    /* nats.c's threads may still hold the connections for a moment (callbacks under way);
     * they must be gone before the links' memory is. */
    nats_CloseAndWait(2000);
    cluster__link_release(&c->route);
    cluster__link_release(&c->share);
    cluster__kv_free(c->kv);
    cluster__sess_free(c->sess);
    cluster__q_free(c->q);
    cluster__fence_free(c->fence);
    cluster__rec_free(c->rec);
    cluster__replay_free(c->replay);
    topic_tree_free(c->plain);
    free(c->subj);
    free(c->topic);
    free(c->queue);
    free(c->env);
    free(c);
}

const struct cluster_stats *cluster_stats(struct cluster *c)
{
    c->stats.connected = c->route.connected && c->share.connected;
    c->stats.delivered = broker_stats(c->b)->remote_in;
    const struct cluster_kv_stats *k = cluster__kv_stats(c->kv);
    c->stats.retained_ready = cluster__kv_ready(c->kv);
    c->stats.retained_writes = k->writes;
    c->stats.retained_failed = k->writes_failed;
    c->stats.retained_applied = k->applied;
    c->stats.retained_invalid = k->bad_updates;
    c->stats.barriers_skipped = k->barriers_skipped;
    c->stats.sessions_ready = cluster__sess_ready(c->sess);
    c->stats.sess = *cluster__sess_stats(c->sess);
    c->stats.fenced = cluster__fence_count(c->fence);
    if (c->q) {
        c->stats.durable_ready = cluster__q_ready(c->q);
        c->stats.durable = *cluster__q_stats(c->q);
        c->stats.replay = *cluster__replay_stats(c->replay);
    }
    uint64_t recovered = c->stats.rec_recovered;
    c->stats.rec = *cluster__rec_stats(c->rec);
    c->stats.rec.recovered = recovered;
    return &c->stats;
}
