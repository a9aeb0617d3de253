/* cluster_kv: retained messages cluster-wide in a JetStream KV bucket, from the loop.
 *
 * The bucket (stream KV_cmq_ret_<cluster>, subjects $KV.cmq_ret_<cluster>.>) holds one message
 * per topic: the key is the topic's subject (subject.h, QoS and partition 0, valid KV keys), the
 * value its envelope; a clear is a KV delete marker (header KV-Operation: DEL). Every node keeps
 * the whole set in its broker's retained store, fed only by an ephemeral push consumer on the
 * stream (ack none, in stream order), so every node applies the same updates in the same order:
 * the KV's, not the order publishes reached it, including its own. The consumer is recreated
 * from the last applied stream sequence + 1 after a gap in its consumer sequence, a silent
 * heartbeat or a reconnection, so nothing is skipped.
 *
 * A retained publish from a local client is written with a plain publish and a reply inbox; its
 * PUBACK/PUBREC waits for JetStream's ack (a ticket the client waits on). A SUBSCRIBE's read
 * barrier: the stream's last sequence, asked once per loop turn for every SUBSCRIBE that
 * arrived in it ($JS.API.STREAM.INFO, after them), and the SUBSCRIBE is answered once the
 * consumer has applied up to it. Nothing here blocks: every JetStream call is a publish whose
 * reply arrives on the inbox subscription, drained with the rest. Everything pending is bounded
 * in number and time; when JetStream cannot be reached, writes are refused (the client says
 * what the device sees) and subscriptions get this node's copy, each logged. */
#include "cluster_int.h"

#include "envelope.h"
#include "jsreply.h"
#include "log.h"
#include "subject.h"
#include "utf8.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* Retained writes waiting for JetStream's ack, and SUBSCRIBEs waiting for the barrier. */
#define KV_MAX_WRITES 4096
#define KV_MAX_BARRIERS 4096
/* A write not acked within this is failed (longer than the measured ~6.7 s leader fail-over
 * stall would make devices wait for nothing); a barrier not reached within this is answered
 * from the local copy. */
#define KV_WRITE_TIMEOUT_MS 5000
#define KV_BARRIER_TIMEOUT_MS 2000
/* Setting up the bucket and the consumer is retried this often while it does not succeed. */
#define KV_RETRY_MS 2000
/* The consumer's heartbeat while idle; silent for KV_SILENT_BEATS of them: recreated. */
#define KV_HEARTBEAT_MS 2000
#define KV_SILENT_BEATS 3
#define KV_TIMER_MS 100
/* Complaints about one kind of failure are logged once every this many. */
#define KV_LOG_EVERY 1000
/* JetStream: "stream name already in use" (the bucket exists). */
#define JS_ERR_STREAM_EXISTS 10058

enum kv_state {
    KV_DOWN,     /* routing link not connected */
    KV_STREAM,   /* bucket creation asked */
    KV_CONSUMER, /* consumer creation asked */
    KV_READY,    /* the consumer feeds the local store */
};

struct kv_write {
    uint64_t ticket;
    uint64_t deadline;
    UT_hash_handle hh;
};

struct kv_barrier {
    uint64_t ticket;
    uint64_t batch;  /* the STREAM.INFO request it waits on; 0 = not asked yet */
    uint64_t target; /* the stream's last sequence then; 0 = not known yet */
    uint64_t deadline;
};

struct cluster_kv {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    uv_loop_t *loop;
    uv_timer_t timer;
    void (*done)(void *ctx, uint64_t ticket, bool ok);
    void *done_ctx;
    enum kv_state state;
    uint64_t state_since; /* ms: when the current setup step was asked */
    char bucket[64], stream[72], prefix[72], filter[80];
    char *inbox; /* replies: <inbox>.<kind>.<n> */
    natsSubscription *replies;
    char *deliver; /* the consumer's deliver subject (a fresh inbox per consumer) */
    natsSubscription *feed;
    uint64_t applied;    /* stream sequence of the last applied update */
    uint64_t last_cseq;  /* consumer sequence of the last delivery */
    uint64_t last_heard; /* ms: the consumer's last delivery or heartbeat */
    uint64_t next_batch;
    struct kv_write *writes;
    size_t nwrites;
    struct kv_barrier *barriers;
    size_t nbarriers;
    bool barrier_unsent;
    char *subj, *topic; /* reused, o->max_subject + 1 bytes */
    size_t cap;
    uint8_t *env;
    size_t env_cap;
    char *ident; /* a delivery's identity, NUL-terminated */
    struct cluster_kv_stats stats;
    bool restart; /* updates were missed: a new consumer after this drain */
    bool stopped;
};

static void kv_done(struct cluster_kv *k, uint64_t ticket, bool ok)
{
    if (k->done)
        k->done(k->done_ctx, ticket, ok);
}

static uint64_t now_ms(const struct cluster_kv *k)
{
    return uv_now(k->loop);
}

/* ---- JetStream requests ---------------------------------------------------------------- */

static bool request(struct cluster_kv *k, const char *subj, const char *body, size_t len, char kind,
                    uint64_t n)
{
    return cluster__request(k->link, k->inbox, "retained", subj, body, len, kind, n);
}

static void set_state(struct cluster_kv *k, enum kv_state s)
{
    k->state = s;
    k->state_since = now_ms(k);
}

/* The bucket as nats.c's js_CreateKeyValue makes it (history 1, deletes as markers, rollups
 * for purges, direct gets); an existing bucket is kept as it is. */
static void ask_stream(struct cluster_kv *k)
{
    char subj[128], body[512];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", k->stream);
    int n = snprintf(body, sizeof(body),
                     "{\"name\":\"%s\",\"subjects\":[\"%s\"],\"retention\":\"limits\","
                     "\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":0,"
                     "\"max_msgs_per_subject\":1,\"max_msg_size\":-1,\"discard\":\"new\","
                     "\"storage\":\"file\",\"num_replicas\":%u,\"duplicate_window\":120000000000,"
                     "\"allow_rollup_hdrs\":true,\"deny_delete\":true,\"allow_direct\":true}",
                     k->stream, k->filter, cluster__replicas(k->o));
    set_state(k, KV_STREAM);
    request(k, subj, body, (size_t)n, 's', 0);
}

/* A new consumer from the update after the last applied one, on a fresh deliver subject (the
 * old consumer loses its interest and the server removes it). */
static void ask_consumer(struct cluster_kv *k)
{
    natsSubscription_Destroy(k->feed);
    k->feed = NULL;
    natsInbox_Destroy(k->deliver);
    k->deliver = NULL;
    set_state(k, KV_CONSUMER);
    natsStatus s = natsInbox_Create(&k->deliver);
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&k->feed, k->link->nc, k->deliver);
    if (s != NATS_OK) {
        log_warn("cluster: retained: cannot subscribe for the bucket's updates: %s",
                 natsStatus_GetText(s));
        return; /* retried by the timer */
    }
    k->last_cseq = 0;
    k->last_heard = now_ms(k);
    char subj[128], start[64] = "\"deliver_policy\":\"all\"", body[1024];
    if (k->applied)
        snprintf(start, sizeof(start),
                 "\"deliver_policy\":\"by_start_sequence\",\"opt_start_seq\":%" PRIu64,
                 k->applied + 1);
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.CREATE.%s", k->stream);
    int n = snprintf(body, sizeof(body),
                     "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"%s\",%s,"
                     "\"ack_policy\":\"none\",\"replay_policy\":\"instant\","
                     "\"filter_subject\":\"%s\",\"idle_heartbeat\":%" PRIu64 ","
                     "\"mem_storage\":true,\"num_replicas\":1}}",
                     k->stream, k->deliver, start, k->filter, (uint64_t)KV_HEARTBEAT_MS * 1000000u);
    request(k, subj, body, (size_t)n, 'c', 0);
}

/* Ask the stream's last sequence for the barriers not asked for yet (end of a loop turn, so
 * after every SUBSCRIBE read in it). */
void cluster__kv_turn_end(struct cluster_kv *k)
{
    if (!k || !k->barrier_unsent)
        return;
    k->barrier_unsent = false;
    uint64_t batch = ++k->next_batch;
    for (size_t i = 0; i < k->nbarriers; i++)
        if (!k->barriers[i].batch)
            k->barriers[i].batch = batch;
    char subj[128];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.INFO.%s", k->stream);
    request(k, subj, "", 0, 'i', batch);
}

/* ---- barriers ------------------------------------------------------------------------------ */

static void barrier_remove(struct cluster_kv *k, size_t i, bool ok)
{
    uint64_t t = k->barriers[i].ticket;
    k->barriers[i] = k->barriers[--k->nbarriers];
    kv_done(k, t, ok);
}

/* Let the SUBSCRIBEs go whose target the local store has reached. */
static void barriers_release(struct cluster_kv *k)
{
    for (size_t i = 0; i < k->nbarriers;) {
        const struct kv_barrier *w = &k->barriers[i];
        if (w->target && w->target <= k->applied)
            barrier_remove(k, i, true);
        else
            i++;
    }
}

static void skipped_barrier(struct cluster_kv *k, const char *why)
{
    if (k->stats.barriers_skipped++ % KV_LOG_EVERY == 0)
        log_warn("cluster: retained: a subscription gets this node's copy of the retained "
                 "messages without waiting for the cluster's latest: %s (%llu so far)",
                 why, (unsigned long long)k->stats.barriers_skipped);
}

uint64_t cluster__kv_barrier(struct cluster_kv *k)
{
    if (k->stopped)
        return 0;
    if (k->state != KV_READY) {
        skipped_barrier(k, "JetStream's retained bucket is not reachable");
        return 0;
    }
    if (k->nbarriers >= KV_MAX_BARRIERS) {
        skipped_barrier(k, "too many subscriptions waiting");
        return 0;
    }
    k->barriers[k->nbarriers++] = (struct kv_barrier){
        .ticket = cluster__ticket(k->link->c), .deadline = now_ms(k) + KV_BARRIER_TIMEOUT_MS};
    k->barrier_unsent = true;
    return k->barriers[k->nbarriers - 1].ticket;
}

static void on_info(struct cluster_kv *k, uint64_t batch, const struct jsreply *r, bool valid)
{
    bool ok = valid && !r->has_error && r->has_last_seq;
    for (size_t i = 0; i < k->nbarriers;) {
        struct kv_barrier *w = &k->barriers[i];
        if (w->batch != batch) {
            i++;
        } else if (ok && r->last_seq) {
            w->target = r->last_seq;
            i++;
        } else if (ok) { /* an empty bucket: nothing to wait for */
            barrier_remove(k, i, true);
        } else {
            skipped_barrier(k, "JetStream did not say how far the bucket is");
            barrier_remove(k, i, true);
        }
    }
    barriers_release(k);
}

/* ---- writes -------------------------------------------------------------------------------- */

static void refused_write(struct cluster_kv *k, const char *topic, const char *why)
{
    if (k->stats.writes_failed++ % KV_LOG_EVERY == 0)
        log_warn("cluster: retained message on %.200s not stored: %s (%llu so far)", topic, why,
                 (unsigned long long)k->stats.writes_failed);
}

/* The value of m (its envelope) in k->env; its length, 0 when it has expired. */
static size_t value_of(struct cluster_kv *k, const struct session *from, const struct msg *m,
                       int64_t now)
{
    const char *ident = session_identity(from);
    size_t need = envelope_size(m, k->o->node, ident, 0);
    if (need > k->env_cap) {
        k->env_cap = need * 2;
        k->env = xrealloc(k->env, k->env_cap);
    }
    return envelope_encode(m, now, k->o->node, ident, 0, k->env, k->env_cap);
}

/* Publish the value (or a delete marker for an empty payload) on k->subj with a reply. */
static natsStatus put(struct cluster_kv *k, const char *reply, size_t len, bool clear)
{
    natsMsg *nm = NULL;
    natsStatus s = natsMsg_Create(&nm, k->subj, reply, clear ? NULL : (const char *)k->env,
                                  clear ? 0 : (int)len);
    if (s == NATS_OK && clear)
        s = natsMsgHeader_Set(nm, "KV-Operation", "DEL");
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(k->link->nc, nm);
    natsMsg_Destroy(nm);
    return s;
}

uint64_t cluster__kv_retain(struct cluster_kv *k, const struct session *from, const struct msg *m,
                            int64_t now)
{
    if (k->stopped || k->state != KV_READY || !k->link->connected) {
        refused_write(k, m->topic, "JetStream's retained bucket is not reachable");
        return 0;
    }
    if (k->nwrites >= KV_MAX_WRITES) {
        refused_write(k, m->topic, "too many retained messages waiting for JetStream");
        return 0;
    }
    if (subject_from_topic(k->prefix, m->topic, m->topic_len, 0, 0, k->subj, k->cap) < 0) {
        refused_write(k, m->topic, "topic too long for a KV key (cluster_max_subject_length)");
        return 0;
    }
    bool clear = m->payload_len == 0;
    size_t len = clear ? 0 : value_of(k, from, m, now);
    if (!clear && !len)
        return 0; /* expired on the way: nothing to keep */
    char reply[128];
    uint64_t t = cluster__ticket(k->link->c);
    snprintf(reply, sizeof(reply), "%s.w.%" PRIu64, k->inbox, t);
    natsStatus s = put(k, reply, len, clear);
    if (s != NATS_OK) {
        refused_write(k, m->topic, natsStatus_GetText(s));
        return 0;
    }
    struct kv_write *w = xmalloc(sizeof(*w));
    w->ticket = t;
    w->deadline = now_ms(k) + KV_WRITE_TIMEOUT_MS;
    HASH_ADD(hh, k->writes, ticket, sizeof(w->ticket), w);
    k->nwrites++;
    k->stats.writes++;
    return t;
}

static void write_end(struct cluster_kv *k, struct kv_write *w, bool ok)
{
    uint64_t t = w->ticket;
    HASH_DEL(k->writes, w);
    k->nwrites--;
    free(w);
    kv_done(k, t, ok);
}

static void on_write_ack(struct cluster_kv *k, uint64_t ticket, const struct jsreply *r, bool valid)
{
    struct kv_write *w;
    HASH_FIND(hh, k->writes, &ticket, sizeof(ticket), w);
    if (!w)
        return; /* timed out before */
    bool ok = valid && !r->has_error && r->has_seq;
    if (!ok) {
        char why[64] = "no valid acknowledgement from JetStream";
        if (valid && r->has_error)
            snprintf(why, sizeof(why), "JetStream error %" PRIu64, r->err_code);
        refused_write(k, "a topic", why);
    }
    write_end(k, w, ok);
}

/* ---- setup replies ------------------------------------------------------------------------- */

static void on_stream(struct cluster_kv *k, const struct jsreply *r, bool valid)
{
    if (k->state != KV_STREAM)
        return;
    if (!valid || (r->has_error && r->err_code != JS_ERR_STREAM_EXISTS)) {
        log_warn("cluster: retained: cannot create the bucket %s (JetStream error %" PRIu64
                 "); retrying every %d ms, retained messages stay on each node meanwhile",
                 k->bucket, valid ? r->err_code : 0, KV_RETRY_MS);
        return;
    }
    ask_consumer(k);
}

static void on_consumer(struct cluster_kv *k, const struct jsreply *r, bool valid)
{
    if (k->state != KV_CONSUMER)
        return;
    if (!valid || r->has_error) {
        log_warn("cluster: retained: cannot watch the bucket %s (JetStream error %" PRIu64
                 "); retrying every %d ms",
                 k->bucket, valid ? r->err_code : 0, KV_RETRY_MS);
        return;
    }
    set_state(k, KV_READY);
    log_notice("cluster: retained messages in JetStream bucket %s, applied from stream sequence "
               "%" PRIu64,
               k->bucket, k->applied + 1);
}

/* A reply on <inbox>.<kind>.<n>. */
static void on_reply(struct cluster_kv *k, natsMsg *nm)
{
    char kind;
    uint64_t n;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), k->inbox, &kind, &n))
        return;
    struct jsreply r;
    bool valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &r) == 0;
    if (kind == 'w')
        on_write_ack(k, n, &r, valid);
    else if (kind == 'i')
        on_info(k, n, &r, valid);
    else if (kind == 's')
        on_stream(k, &r, valid);
    else if (kind == 'c')
        on_consumer(k, &r, valid);
}

/* ---- the consumer's updates ---------------------------------------------------------------- */

static void bad_update(struct cluster_kv *k, const char *subj, const char *why)
{
    if (k->stats.bad_updates++ % KV_LOG_EVERY == 0)
        log_warn("cluster: retained: update on %.200s ignored: %s (%llu so far)", subj, why,
                 (unsigned long long)k->stats.bad_updates);
}

/* Is nm a delete or purge marker? */
static bool is_clear(natsMsg *nm)
{
    const char *op = NULL;
    return natsMsgHeader_Get(nm, "KV-Operation", &op) == NATS_OK && op &&
           (!strcmp(op, "DEL") || !strcmp(op, "PURGE"));
}

/* The retained message of a valid update for topic (tlen bytes in k->topic); NULL when the
 * value is not a valid envelope. *ident: who set it (NULL when unknown). */
static struct msg *update_msg(struct cluster_kv *k, natsMsg *nm, size_t tlen, int64_t now,
                              const char **ident)
{
    struct mqtt_publish pub = {0};
    *ident = NULL;
    if (is_clear(nm))
        return msg_new(k->topic, tlen, &pub, 0, broker_next_msg_id(k->b));
    struct envelope e;
    if (envelope_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                        &e) != 0)
        return NULL;
    envelope_publish(&e, k->topic, tlen, &pub);
    pub.retain = true;
    int64_t expiry = 0;
    if (e.has_expiry) /* as for live messages: bounded, relative to when it is applied */
        expiry = now +
                 (int64_t)(e.expiry_ms < UINT32_MAX * 1000ull ? e.expiry_ms : UINT32_MAX * 1000ull);
    if (e.identity.len) {
        memcpy(k->ident, e.identity.p, e.identity.len);
        k->ident[e.identity.len] = '\0';
        *ident = k->ident;
    }
    return msg_new(k->topic, tlen, &pub, expiry, broker_next_msg_id(k->b));
}

static void apply(struct cluster_kv *k, natsMsg *nm, uint64_t sseq, int64_t now)
{
    const char *subj = natsMsg_GetSubject(nm);
    k->applied = sseq; /* even when bad: the stream's order is what counts */
    int tlen = subject_to_topic(k->prefix, subj, strlen(subj), k->topic, k->cap, NULL, NULL);
    if (tlen < 0 || !broker_topic_ok(k->b, k->topic, (size_t)tlen) ||
        !utf8_valid((const uint8_t *)k->topic, (size_t)tlen, false)) {
        bad_update(k, subj, "not the key of a valid topic");
        return;
    }
    const char *ident;
    struct msg *m = update_msg(k, nm, (size_t)tlen, now, &ident);
    if (!m) {
        bad_update(k, subj, "not a valid envelope");
        return;
    }
    broker_retained_apply(k->b, m, ident);
    msg_unref(m);
    k->stats.applied++;
}

/* One message on the deliver subject: an update, or a heartbeat (no reply subject). */
static void on_feed(struct cluster_kv *k, natsMsg *nm, int64_t now)
{
    k->last_heard = now_ms(k);
    const char *ack = natsMsg_GetReply(nm);
    if (!ack)
        return; /* heartbeat */
    uint64_t sseq, cseq;
    if (jsreply_ack_seqs(ack, strlen(ack), &sseq, &cseq) != 0) {
        bad_update(k, natsMsg_GetSubject(nm), "no stream sequence");
        return;
    }
    if (cseq != k->last_cseq + 1) { /* something was lost: start again after what we have */
        log_warn("cluster: retained: updates from the bucket missed (consumer sequence %" PRIu64
                 " after %" PRIu64 "); resuming after stream sequence %" PRIu64,
                 cseq, k->last_cseq, k->applied);
        k->restart = true;
        return;
    }
    k->last_cseq = cseq;
    if (sseq <= k->applied)
        return; /* already applied (a consumer recreated from an older point) */
    apply(k, nm, sseq, now);
}

void cluster__kv_drain(struct cluster_kv *k, int64_t now, size_t *budget)
{
    if (!k || k->stopped)
        return;
    natsMsg *nm;
    while (*budget && k->replies && natsSubscription_NextMsg(&nm, k->replies, 0) == NATS_OK) {
        on_reply(k, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    bool fed = false;
    while (*budget && !k->restart && k->feed &&
           natsSubscription_NextMsg(&nm, k->feed, 0) == NATS_OK) {
        on_feed(k, nm, now);
        natsMsg_Destroy(nm);
        (*budget)--;
        fed = true;
    }
    if (k->restart) { /* after the loop: the subscription goes with the old consumer */
        k->restart = false;
        ask_consumer(k);
    }
    if (fed)
        barriers_release(k);
}

/* ---- timer: deadlines and retries ---------------------------------------------------------- */

static void expire(struct cluster_kv *k, uint64_t now)
{
    struct kv_write *w, *tmp;
    HASH_ITER(hh, k->writes, w, tmp)
    {
        if (w->deadline <= now) {
            refused_write(k, "a topic", "no acknowledgement from JetStream in time");
            write_end(k, w, false);
        }
    }
    for (size_t i = 0; i < k->nbarriers;) {
        if (k->barriers[i].deadline <= now) {
            skipped_barrier(k, "the bucket's updates did not arrive in time");
            barrier_remove(k, i, true);
        } else {
            i++;
        }
    }
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_kv *k = h->data;
    uint64_t now = now_ms(k);
    expire(k, now);
    if (k->state == KV_DOWN || !k->link->connected)
        return;
    if (k->state == KV_READY && now - k->last_heard > (uint64_t)KV_HEARTBEAT_MS * KV_SILENT_BEATS) {
        log_warn("cluster: retained: no update nor heartbeat from the bucket for %d ms; watching "
                 "it again",
                 KV_HEARTBEAT_MS * KV_SILENT_BEATS);
        ask_consumer(k);
    } else if (k->state == KV_STREAM && now - k->state_since > KV_RETRY_MS) {
        ask_stream(k);
    } else if (k->state == KV_CONSUMER && now - k->state_since > KV_RETRY_MS) {
        ask_consumer(k);
    }
}

/* ---- life ---------------------------------------------------------------------------------- */

struct cluster_kv *cluster__kv_new(uv_loop_t *loop, struct broker *b, const struct cluster_opts *o,
                                   struct cluster_link *link)
{
    struct cluster_kv *k = xcalloc(1, sizeof(*k));
    k->b = b;
    k->o = o;
    k->link = link;
    k->loop = loop;
    snprintf(k->bucket, sizeof(k->bucket), "cmq_ret_%s", o->name);
    snprintf(k->stream, sizeof(k->stream), "KV_%s", k->bucket);
    snprintf(k->prefix, sizeof(k->prefix), "$KV.%s", k->bucket);
    snprintf(k->filter, sizeof(k->filter), "%s.>", k->prefix);
    k->cap = (size_t)o->max_subject + 1;
    k->subj = xmalloc(k->cap);
    k->topic = xmalloc(k->cap);
    k->ident = xmalloc(UINT16_MAX + 1);
    k->barriers = xcalloc(KV_MAX_BARRIERS, sizeof(*k->barriers));
    uv_timer_init(loop, &k->timer);
    k->timer.data = k;
    return k;
}

const char *cluster__kv_bucket(const struct cluster_kv *k)
{
    return k->bucket;
}

void cluster__kv_set_done(struct cluster_kv *k, void (*done)(void *ctx, uint64_t ticket, bool ok),
                          void *ctx)
{
    k->done = done;
    k->done_ctx = ctx;
}

void cluster__kv_link(struct cluster_kv *k, bool up)
{
    if (k->stopped)
        return;
    if (!up) {
        if (k->state != KV_DOWN)
            log_warn("cluster: retained: JetStream unreachable: retained QoS >= 1 publishes are "
                     "refused and subscriptions get this node's copy until the link is back");
        set_state(k, KV_DOWN);
        return;
    }
    if (!k->inbox) {
        natsStatus s = cluster__reply_inbox(k->link, &k->inbox, &k->replies);
        if (s != NATS_OK) {
            log_err("cluster: retained: cannot subscribe for JetStream's replies: %s",
                    natsStatus_GetText(s));
            return;
        }
        uv_timer_start(&k->timer, on_timer, KV_TIMER_MS, KV_TIMER_MS);
    }
    ask_stream(k); /* cheap when it exists; after a reconnection the consumer is new too */
}

void cluster__kv_stop(struct cluster_kv *k)
{
    if (!k || k->stopped)
        return;
    k->stopped = true;
    struct kv_write *w, *tmp;
    HASH_ITER(hh, k->writes, w, tmp)
    {
        HASH_DEL(k->writes, w);
        free(w);
    }
    k->nwrites = 0;
    k->nbarriers = 0;
    natsSubscription_Destroy(k->feed);
    natsSubscription_Destroy(k->replies);
    k->feed = k->replies = NULL;
    uv_close((uv_handle_t *)&k->timer, NULL);
}

void cluster__kv_free(struct cluster_kv *k)
{
    if (!k)
        return;
    natsInbox_Destroy(k->inbox);
    natsInbox_Destroy(k->deliver);
    free(k->subj);
    free(k->topic);
    free(k->ident);
    free(k->env);
    free(k->barriers);
    free(k);
}

bool cluster__kv_ready(const struct cluster_kv *k)
{
    return k->state == KV_READY;
}

const struct cluster_kv_stats *cluster__kv_stats(const struct cluster_kv *k)
{
    return &k->stats;
}
