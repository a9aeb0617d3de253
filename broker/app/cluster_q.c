/* cluster_q: QoS 1/2 publishes made durable in JetStream before they are acknowledged
 * (cluster mode with persistence true), from the loop.
 *
 * The stream CMQ_Q_<cluster> captures the QoS 1 and 2 subjects of the routing layout
 * (subject.h: <prefix>.t.1.>, .t.2.>, .d.1.>, .d.2.>). A durable publish is the routing publish
 * itself, sent with a reply inbox: NATS delivers it to the nodes with
 * interest and the stream stores it (replicated), in one message (shared/notes/cluster-on-nats.md
 * §2.6). The device's PUBACK/PUBREC waits for the stream's acknowledgement (a ticket the client
 * waits on); a refusal, or no answer within Q_ACK_TIMEOUT_MS, and the device is told the
 * message was not accepted (MQTT 5: 0x80; 3.1.1: disconnected, it sends it again). Local
 * subscribers get the message at once, as on a single node. The stream keeps messages
 * Q_MAX_AGE_S: it is the log a recovery replays (cluster_replay.c), not read on the happy path.
 * Retained publishes are made durable by the retained bucket instead (cluster_kv.c). */
#include "cluster_int.h"

#include "jsreply.h"
#include "log.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define Q_MAX_PENDING 65536
#define Q_ACK_TIMEOUT_MS 5000
#define Q_MAX_AGE_S 900
#define Q_TIMER_MS 100
#define Q_RETRY_MS 2000
#define Q_LOG_EVERY 1000
#define JS_ERR_STREAM_EXISTS 10058

struct q_wait {
    uint64_t ticket;
    uint64_t deadline;
    struct q_wait *next; /* in the spare list */
    UT_hash_handle hh;
};

struct cluster_q {
    struct cluster_link *link;
    const struct cluster_opts *o;
    uv_loop_t *loop;
    uv_timer_t timer;
    void (*done)(void *ctx, uint64_t ticket, bool ok);
    void *done_ctx;
    char stream[72], prefix[64];
    char *inbox;
    natsSubscription *replies;
    bool ready, asked, stopped;
    uint64_t asked_at;
    struct q_wait *waits;
    size_t nwaits;
    struct q_wait *spare; /* finished waits, reused: nothing allocated per message */
    struct cluster_q_stats stats;
};

static uint64_t now_ms(const struct cluster_q *q)
{
    return uv_now(q->loop);
}

static void ask_stream(struct cluster_q *q)
{
    char subj[128], body[768];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", q->stream);
    const char *p = q->prefix;
    int n = snprintf(body, sizeof(body),
                     "{\"name\":\"%s\",\"subjects\":[\"%s.t.1.>\",\"%s.t.2.>\",\"%s.d.1.>\","
                     "\"%s.d.2.>\"],\"retention\":\"limits\",\"max_consumers\":-1,"
                     "\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":%" PRIu64 ","
                     "\"max_msgs_per_subject\":-1,\"max_msg_size\":-1,\"discard\":\"old\","
                     "\"storage\":\"file\",\"num_replicas\":%u}",
                     q->stream, p, p, p, p, (uint64_t)Q_MAX_AGE_S * 1000000000u,
                     cluster__replicas(q->o));
    q->asked = true;
    q->asked_at = now_ms(q);
    cluster__request(q->link, q->inbox, "durable messages", subj, body, (size_t)n, 's', 0);
}

static void finish(struct cluster_q *q, struct q_wait *w, bool ok)
{
    uint64_t t = w->ticket;
    HASH_DEL(q->waits, w);
    q->nwaits--;
    w->next = q->spare;
    q->spare = w;
    if (q->done)
        q->done(q->done_ctx, t, ok);
}

/* Counted, and logged once every Q_LOG_EVERY. */
static void refused(struct cluster_q *q, const char *why)
{
    if (q->stats.failed++ % Q_LOG_EVERY == 0)
        log_warn("cluster: a QoS >= 1 message was not acknowledged to its publisher: %s (%llu so "
                 "far)",
                 why, (unsigned long long)q->stats.failed);
}

uint64_t cluster__q_publish(struct cluster_q *q, const char *subj, const void *env, size_t len)
{
    if (q->stopped || !q->ready || !q->link->connected || q->nwaits >= Q_MAX_PENDING) {
        refused(q, q->nwaits >= Q_MAX_PENDING ? "too many waiting for JetStream"
                                              : "JetStream's message stream is not reachable");
        return CLUSTER_Q_FAILED;
    }
    uint64_t t = cluster__ticket(q->link->c);
    char reply[128];
    snprintf(reply, sizeof(reply), "%s.q.%" PRIu64, q->inbox, t);
    natsStatus s = natsConnection_PublishRequest(q->link->nc, subj, reply, env, (int)len);
    if (s != NATS_OK) {
        refused(q, natsStatus_GetText(s));
        return CLUSTER_Q_FAILED;
    }
    struct q_wait *w = q->spare;
    if (w)
        q->spare = w->next;
    else
        w = xmalloc(sizeof(*w));
    w->ticket = t;
    w->deadline = now_ms(q) + Q_ACK_TIMEOUT_MS;
    HASH_ADD(hh, q->waits, ticket, sizeof(w->ticket), w);
    q->nwaits++;
    q->stats.stored++;
    return t;
}

static void on_reply(struct cluster_q *q, natsMsg *nm)
{
    char kind;
    uint64_t t;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), q->inbox, &kind, &t))
        return;
    struct jsreply r;
    bool valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &r) == 0;
    if (kind == 's') {
        q->asked = false;
        if (!valid || (r.has_error && r.err_code != JS_ERR_STREAM_EXISTS)) {
            log_warn("cluster: cannot create the stream %s (JetStream error %" PRIu64
                     "); retrying every %d ms, QoS >= 1 publishes are refused meanwhile",
                     q->stream, valid ? r.err_code : 0, Q_RETRY_MS);
            return;
        }
        if (!q->ready)
            log_notice("cluster: QoS >= 1 messages made durable in JetStream stream %s", q->stream);
        q->ready = true;
        return;
    }
    struct q_wait *w;
    HASH_FIND(hh, q->waits, &t, sizeof(t), w);
    if (!w)
        return; /* timed out before */
    bool ok = valid && !r.has_error && r.has_seq;
    if (!ok)
        refused(q, natsMsg_IsNoResponders(nm) ? "no JetStream stream answered"
                                              : "JetStream refused it");
    finish(q, w, ok);
}

void cluster__q_drain(struct cluster_q *q, size_t *budget)
{
    natsMsg *nm;
    while (*budget && q->replies && natsSubscription_NextMsg(&nm, q->replies, 0) == NATS_OK) {
        on_reply(q, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_q *q = h->data;
    uint64_t now = now_ms(q);
    if (!q->ready && q->link->connected && (!q->asked || now - q->asked_at >= Q_RETRY_MS))
        ask_stream(q);
    struct q_wait *w, *tmp;
    HASH_ITER(hh, q->waits, w, tmp)
    {
        if (now >= w->deadline) {
            refused(q, "no acknowledgement from JetStream in time");
            finish(q, w, false);
        }
    }
}

struct cluster_q *cluster__q_new(uv_loop_t *loop, const struct cluster_opts *o,
                                 struct cluster_link *link)
{
    struct cluster_q *q = xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->o = o;
    q->link = link;
    snprintf(q->stream, sizeof(q->stream), "CMQ_Q_%s", o->name);
    snprintf(q->prefix, sizeof(q->prefix), "cmq.%s", o->name);
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    return q;
}

void cluster__q_set_done(struct cluster_q *q, void (*done)(void *ctx, uint64_t ticket, bool ok),
                         void *ctx)
{
    q->done = done;
    q->done_ctx = ctx;
}

void cluster__q_link(struct cluster_q *q, bool up)
{
    if (q->stopped || !up)
        return; /* waits time out; nats.c resends the subscription on reconnection */
    if (!q->inbox) {
        natsStatus s = cluster__reply_inbox(q->link, &q->inbox, &q->replies);
        if (s != NATS_OK) {
            log_err("cluster: cannot subscribe for JetStream's acknowledgements: %s (QoS >= 1 "
                    "publishes are refused)",
                    natsStatus_GetText(s));
            return;
        }
        uv_timer_start(&q->timer, on_timer, Q_TIMER_MS, Q_TIMER_MS);
    }
    ask_stream(q);
}

bool cluster__q_ready(const struct cluster_q *q)
{
    return q->ready;
}

const struct cluster_q_stats *cluster__q_stats(const struct cluster_q *q)
{
    return &q->stats;
}

void cluster__q_stop(struct cluster_q *q)
{
    if (!q || q->stopped)
        return;
    q->stopped = true;
    struct q_wait *w, *tmp;
    HASH_ITER(hh, q->waits, w, tmp)
    finish(q, w, false);
    natsSubscription_Destroy(q->replies);
    q->replies = NULL;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, NULL);
}

void cluster__q_free(struct cluster_q *q)
{
    if (!q)
        return;
    natsInbox_Destroy(q->inbox);
    while (q->spare) {
        struct q_wait *w = q->spare;
        q->spare = w->next;
        free(w);
    }
    free(q);
}
