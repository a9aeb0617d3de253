/* cluster_q: QoS 1/2 publishes made durable in JetStream before they are acknowledged
 * (cluster mode with persistence true), from the loop.
 *
 * The stream CMQ_Q_<cluster> captures the QoS 1 and 2 subjects of the routing layout
 * (subject.h: <prefix>.t.1.>, .t.2.>, .d.1.>, .d.2.>). A durable publish is the routing publish
 * itself, sent with a reply inbox: NATS delivers it to the nodes with interest and the stream
 * stores it (replicated), in one message (shared/notes/cluster-on-nats.md §2.6). The device's
 * PUBACK/PUBREC waits for the stream's acknowledgement (a ticket the client waits on); local
 * subscribers get the message at once. The stream keeps messages Q_MAX_AGE_S: it is the log a
 * recovery replays (cluster_replay.c). Retained publishes are made durable by their bucket
 * (cluster_kv.c).
 *
 * While the stream elects a new leader (up to ~9 s after its server dies) a publish gets no
 * answer, no responders or a 503, and this node's own link may move to another server (nats.c
 * drops what it had not written). So a publish is kept (in a buffer reused with its wait) and
 * sent again until the stream stores it, up to cluster_ack_timeout; only then, or at a final
 * refusal, is the device told (MQTT 5: 0x80; 3.1.1: disconnected). Nothing unconfirmed is
 * acknowledged. Attempts after the first carry Nats-Msg-Id <node>.<boot>.<ticket>: the duplicate
 * window keeps one copy of those. Each attempt is also a routing publish, so subscribers on other
 * nodes may get a retried message more than once (QoS 1 allows it; counted in stats.retried). */
#include "cluster_int.h"

#include "jsreply.h"
#include "log.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define Q_MAX_PENDING 65536
#define Q_MAX_KEPT (64u << 20) /* bytes of subjects and envelopes kept to send again */
#define Q_MAX_AGE_S 900
#define Q_MIN_DUP_WINDOW_S 120
#define Q_TIMER_MS 100
#define Q_RETRY_MS 2000
#define Q_ANSWER_MS 1000     /* JetStream answers in ms: 1 s of silence is a lost attempt; */
#define Q_ANSWER_SHIFT_MAX 2 /* then 2 s and 4 s (each attempt is delivered to subscribers) */
#define Q_PAUSE_MS 250       /* after "unavailable", doubling up to 2 s */
#define Q_CHECK_MS 1000      /* stream info while attempts wait: is there a leader, a stream? */
#define Q_LOG_EVERY 1000
#define JS_ERR_STREAM_EXISTS 10058
#define JS_ERR_NOT_LEADER 10009
#define JS_ERR_STREAM_NOT_FOUND 10059

struct q_wait {
    uint64_t ticket;
    uint64_t deadline; /* cluster_ack_timeout after the publish */
    uint64_t sent_at, resend_at;
    uint32_t attempt; /* attempts sent; a reply names its attempt: older failures are stale */
    size_t subj_len, env_len, cap;
    char *buf; /* subject, NUL, envelope; grows only, kept with the wait when it is spare */
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
    natsSubscription *replies, *elected; /* elected: the stream's leader advisories */
    bool ready, asked, stopped;
    uint64_t asked_at, checked_at;
    struct q_wait *waits;
    size_t nwaits;
    struct q_wait *spare; /* finished waits, reused: nothing allocated per message */
    size_t kept;          /* bytes of all the waits' buffers, spare ones included */
    uint64_t boot;        /* wall clock µs at start: message ids unique across restarts */
    struct cluster_q_stats stats;
};

static uint64_t now_ms(const struct cluster_q *q)
{
    return uv_now(q->loop);
}

static void ask_stream(struct cluster_q *q)
{
    char subj[128], body[768];
    /* A message's attempts all fall within cluster_ack_timeout: a window that long catches any
     * copy stored twice. */
    uint64_t dup_s =
        q->o->ack_timeout_s > Q_MIN_DUP_WINDOW_S ? q->o->ack_timeout_s : Q_MIN_DUP_WINDOW_S;
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", q->stream);
    const char *p = q->prefix;
    int n = snprintf(body, sizeof(body),
                     "{\"name\":\"%s\",\"subjects\":[\"%s.t.1.>\",\"%s.t.2.>\",\"%s.d.1.>\","
                     "\"%s.d.2.>\"],\"retention\":\"limits\",\"max_consumers\":-1,"
                     "\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":%" PRIu64 ","
                     "\"max_msgs_per_subject\":-1,\"max_msg_size\":-1,\"discard\":\"old\","
                     "\"storage\":\"file\",\"num_replicas\":%u,\"duplicate_window\":%" PRIu64 "}",
                     q->stream, p, p, p, p, (uint64_t)Q_MAX_AGE_S * 1000000000u,
                     cluster__replicas(q->o), dup_s * 1000000000u);
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

/* A wait whose buffer holds need bytes, or NULL when the kept bytes would pass Q_MAX_KEPT. */
static struct q_wait *take_wait(struct cluster_q *q, size_t need)
{
    need = (need + 511) & ~(size_t)511; /* fewer steps for sizes that creep up */
    struct q_wait *w = q->spare;
    if (w && w->cap >= need) {
        q->spare = w->next;
        return w;
    }
    size_t have = w ? w->cap : 0;
    if (q->kept - have + need > Q_MAX_KEPT) { /* spare buffers go first: a flood passed */
        for (struct q_wait *x = q->spare; x; x = x->next) {
            q->kept -= x->cap;
            free(x->buf);
            x->buf = NULL;
            x->cap = 0;
        }
        if (q->kept + need > Q_MAX_KEPT)
            return NULL;
    }
    if (w)
        q->spare = w->next;
    else
        w = xcalloc(1, sizeof(*w));
    q->kept += need - w->cap;
    w->buf = xrealloc(w->buf, need);
    w->cap = need;
    return w;
}

static void reply_to(const struct cluster_q *q, const struct q_wait *w, char *reply, size_t n)
{
    snprintf(reply, n, "%s.q.%" PRIu64 ".%" PRIu32, q->inbox, w->ticket, w->attempt);
}

/* Attempts after the first, and a first one that waited for the link: with the message id. */
static natsStatus resend(struct cluster_q *q, struct q_wait *w)
{
    char reply[160], id[128];
    bool again = w->attempt++ > 0;
    w->sent_at = now_ms(q);
    reply_to(q, w, reply, sizeof(reply));
    snprintf(id, sizeof(id), "%s.%" PRIu64 ".%" PRIu64, q->o->node, q->boot, w->ticket);
    natsMsg *nm = NULL;
    natsStatus s = natsMsg_Create(&nm, w->buf, reply, w->buf + w->subj_len + 1, (int)w->env_len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(nm, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(q->link->nc, nm);
    natsMsg_Destroy(nm);
    if (s == NATS_OK && again)
        q->stats.retried++;
    return s;
}

uint64_t cluster__q_publish(struct cluster_q *q, const char *subj, const void *env, size_t len)
{
    size_t slen = strlen(subj);
    struct q_wait *w = NULL;
    if (!q->stopped && q->ready && q->nwaits < Q_MAX_PENDING)
        w = take_wait(q, slen + 1 + len);
    if (!w) {
        refused(q, q->stopped || !q->ready      ? "JetStream's message stream is not reachable"
                   : q->nwaits >= Q_MAX_PENDING ? "too many waiting for JetStream"
                                                : "too many bytes waiting for JetStream");
        return CLUSTER_Q_FAILED;
    }
    w->ticket = cluster__ticket(q->link->c);
    w->attempt = 0;
    w->subj_len = slen;
    w->env_len = len;
    memcpy(w->buf, subj, slen + 1);
    memcpy(w->buf + slen + 1, env, len);
    uint64_t now = now_ms(q);
    w->deadline = now + (uint64_t)q->o->ack_timeout_s * 1000;
    w->resend_at = now; /* while the link is down, sent once it is up again */
    if (q->link->connected) {
        /* Without the message id: a natsMsg with its header per message took the durable
         * fan-in from 13.4 to 17.8 µs/msg (cluster-scale --only durable, -30% msg/s). What it
         * would prevent, this attempt stored twice, needs its answer lost too, and only adds
         * a stream copy to the second delivery the retry makes anyway. */
        char reply[160];
        w->attempt = 1;
        reply_to(q, w, reply, sizeof(reply));
        natsStatus s = natsConnection_PublishRequest(q->link->nc, subj, reply, env, (int)len);
        if (s != NATS_OK) {
            refused(q, natsStatus_GetText(s));
            w->next = q->spare;
            q->spare = w;
            return CLUSTER_Q_FAILED;
        }
        w->sent_at = now;
        w->resend_at = now + Q_ANSWER_MS;
    }
    HASH_ADD(hh, q->waits, ticket, sizeof(w->ticket), w);
    q->nwaits++;
    q->stats.stored++;
    return w->ticket;
}

/* The stream has a leader (again): what was sent while it had none is sent again now rather
 * than after its 1, 2 or 4 s. */
static void wake(struct cluster_q *q)
{
    uint64_t now = now_ms(q);
    struct q_wait *w, *tmp;
    HASH_ITER(hh, q->waits, w, tmp)
    if (w->attempt && now - w->sent_at >= Q_PAUSE_MS && w->resend_at > now)
        w->resend_at = now;
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
            if (!q->ready) /* else it was made: a link that came back during an election */
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
    struct q_wait *w, *tmp;
    if (kind == 'i' && valid && r.has_error && r.err_code == JS_ERR_STREAM_NOT_FOUND && q->ready) {
        log_warn("cluster: JetStream stream %s is gone: QoS >= 1 publishes waiting for it are "
                 "refused; making it again",
                 q->stream);
        q->ready = false;
        HASH_ITER(hh, q->waits, w, tmp)
        {
            refused(q, "JetStream's message stream is missing");
            finish(q, w, false);
        }
    } else if (kind == 'i' && valid && !r.has_error) {
        wake(q);
    }
    HASH_FIND(hh, q->waits, &t, sizeof(t), w);
    if (kind != 'q' || !w)
        return; /* timed out before, or stored by another attempt */
    if (valid && !r.has_error && r.has_seq) {
        finish(q, w, true); /* whichever attempt it answers */
        return;
    }
    /* Not now, but once a leader is elected or a peer is back: */
    if (natsMsg_IsNoResponders(nm) ||
        (valid && r.has_error && (r.code == 503 || r.err_code == JS_ERR_NOT_LEADER))) {
        const char *a = strrchr(natsMsg_GetSubject(nm), '.');
        if (a && strtoul(a + 1, NULL, 10) == w->attempt) /* else an older attempt's */
            w->resend_at =
                now_ms(q) + ((uint64_t)Q_PAUSE_MS << (w->attempt < 4 ? w->attempt - 1 : 3));
        return;
    }
    refused(q, "JetStream refused it");
    finish(q, w, false);
}

void cluster__q_drain(struct cluster_q *q, size_t *budget)
{
    natsMsg *nm;
    while (*budget && q->replies && natsSubscription_NextMsg(&nm, q->replies, 0) == NATS_OK) {
        on_reply(q, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    while (*budget && q->elected && natsSubscription_NextMsg(&nm, q->elected, 0) == NATS_OK) {
        wake(q);
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
    bool retrying = false;
    struct q_wait *w, *tmp;
    HASH_ITER(hh, q->waits, w, tmp)
    {
        if (now >= w->deadline) {
            refused(q, "not stored by JetStream within cluster_ack_timeout");
            finish(q, w, false);
            continue;
        }
        if (now >= w->resend_at && q->link->connected) {
            natsStatus s = resend(q, w);
            if (s == NATS_MAX_PAYLOAD || s == NATS_CONNECTION_CLOSED) {
                refused(q, natsStatus_GetText(s));
                finish(q, w, false);
                continue;
            }
            unsigned shift = w->attempt <= Q_ANSWER_SHIFT_MAX ? w->attempt - 1 : Q_ANSWER_SHIFT_MAX;
            w->resend_at = now + (s == NATS_OK ? (uint64_t)Q_ANSWER_MS << shift : Q_RETRY_MS);
        }
        retrying |= w->attempt > 1;
    }
    /* While attempts wait: a leader's advisory may be lost, and the silence may be a stream
     * someone deleted (final). */
    if (retrying && q->ready && q->link->connected && now - q->checked_at >= Q_CHECK_MS) {
        char subj[128];
        snprintf(subj, sizeof(subj), "$JS.API.STREAM.INFO.%s", q->stream);
        q->checked_at = now;
        cluster__request(q->link, q->inbox, "durable messages", subj, "", 0, 'i', 0);
    }
}

struct cluster_q *cluster__q_new(uv_loop_t *loop, const struct cluster_opts *o,
                                 struct cluster_link *link)
{
    struct cluster_q *q = xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->o = o;
    q->link = link;
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    q->boot = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
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
        return; /* the waits are sent again once it is up; nats.c resubscribes the inbox */
    struct q_wait *w, *tmp;
    uint64_t now = now_ms(q);
    HASH_ITER(hh, q->waits, w, tmp)
    w->resend_at = now; /* what the old server had, or nats.c had not written, may be lost */
    if (!q->inbox) {
        natsStatus s = cluster__reply_inbox(q->link, &q->inbox, &q->replies);
        if (s != NATS_OK) {
            log_err("cluster: cannot subscribe for JetStream's acknowledgements: %s (QoS >= 1 "
                    "publishes are refused)",
                    natsStatus_GetText(s));
            return;
        }
        char subj[128];
        snprintf(subj, sizeof(subj), "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.%s", q->stream);
        if (natsConnection_SubscribeSync(&q->elected, q->link->nc, subj) != NATS_OK)
            q->elected = NULL; /* attempts wait for their next time or the stream info */
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
    natsSubscription_Destroy(q->elected);
    q->replies = q->elected = NULL;
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
        free(w->buf);
        free(w);
    }
    free(q);
}
