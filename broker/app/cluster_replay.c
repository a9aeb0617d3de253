/* cluster_replay: QoS 1/2 messages replayed from the stream CMQ_Q_<cluster> after a failure,
 * from the loop.
 *
 * With persistence true every QoS >= 1 publish any node acknowledged is in the stream (cluster_q.c)
 * for Q_MAX_AGE. When a session's owner died (its sessions are rebuilt here from their records,
 * cluster_rec.c) or this node's own NATS link was down for a while, what the session(s) may have
 * missed is read back: an ephemeral push consumer from a start time (a lower bound of the oldest
 * message still owed, minus REPLAY_SLACK_MS for clocks and messages in transit), delivered like
 * a message from another node but only to the target session (or, for a link that came back, to
 * every local session, this node's own publishes excepted: they were delivered here), up to an
 * end time after which live delivery had taken over. Where the window overlaps live delivery
 * here, a message live routing already delivered to the session (seen.h: its publishing node's
 * id for it, recorded as routing delivers) is skipped. Messages the failed node had delivered
 * before the failure come again: the device sees duplicates, never a gap (QoS 1's at least once;
 * a replayed QoS 2 message is a new one to the device). Nothing here blocks: the consumer is
 * created by a publish whose reply comes to the inbox, and its messages to a subscription drained
 * with the rest, at most the turn's budget at a time. */
#include "cluster_int.h"

#include "envelope.h"
#include "jsreply.h"
#include "log.h"
#include "seen.h"
#include "subject.h"
#include "utf8.h"
#include "xmalloc.h"

#include <uthash.h>
#include <utlist.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Replays running at once; more wait for a free slot (their sessions queue live messages
 * meanwhile). */
#define MAX_JOBS 64
/* A replay that has not reached its end in this long is given up (logged). */
#define JOB_TIMEOUT_MS 60000
#define HEARTBEAT_MS 1000
#define TIMER_MS 250
/* Messages routed here remembered for skipping (2^17: 9 minutes at 250 msg/s, 13 s at 10,000;
 * older ones are replayed as duplicates). 5 MiB. */
#define SEEN_LOG2 17

enum job_state { J_WAITING, J_CREATING, J_FEEDING };

/* The replays of one session (usually one), found by its session key: the record writer and
 * takeovers ask for them once per session change, so they must not walk every job. */
struct target {
    char key[33];
    struct job *jobs; /* by same_next */
    UT_hash_handle hh;
};

struct job {
    uint64_t n;
    enum job_state state;
    int64_t start_ms, end_ms;
    char *identity, *client_id; /* NULL: every local session */
    struct target *t;           /* NULL: every local session */
    struct job *same_next;
    const struct session *only; /* identity's session, once found here */
    int64_t attach_ms;          /* loop ms: when it was, or later (routing delivered to it after) */
    char *deliver;
    natsSubscription *feed;
    uint64_t last_cseq, last_sseq, deadline;
    uint64_t queued, skipped;
    bool running;
    struct job *prev, *next; /* in waiting or running (utlist) */
};

struct cluster_replay {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    uv_loop_t *loop;
    uv_timer_t timer;
    char stream[72], prefix[64];
    char *inbox;
    natsSubscription *replies;
    /* A mass adoption queues thousands of jobs: the loop turn and the timer walk only the
     * running ones (at most MAX_JOBS); the others wait in arrival order. */
    struct job *waiting, *running;
    size_t running_n;
    struct target *targets;
    uint64_t next_n;
    char *topic; /* max_subject + 1, reused */
    struct seen *seen;
    bool stopped;
    struct cluster_replay_stats stats;
};

static uint64_t now_ms(const struct cluster_replay *r)
{
    return uv_now(r->loop);
}

int64_t cluster__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(struct cluster_replay *r, struct job *j)
{
    if (j->running) {
        DL_DELETE(r->running, j);
        r->running_n--;
    } else {
        DL_DELETE(r->waiting, j);
    }
    if (j->t) {
        struct job **p = &j->t->jobs;
        while (*p != j)
            p = &(*p)->same_next;
        *p = j->same_next;
        if (!j->t->jobs) {
            HASH_DEL(r->targets, j->t);
            free(j->t);
        }
    }
    natsSubscription_Destroy(j->feed); /* the server drops the consumer with its interest */
    natsInbox_Destroy(j->deliver);
    free(j->identity);
    free(j);
}

static void job_end(struct cluster_replay *r, struct job *j, const char *why)
{
    if (why)
        log_warn("cluster: replay for %s%s ended early: %s (%" PRIu64 " message(s) queued)",
                 j->identity ? "client " : "every local session", j->identity ? j->client_id : "",
                 why, j->queued);
    else
        log_info("cluster: replay for %s%s done: %" PRIu64 " message(s) queued again, %" PRIu64
                 " skipped (delivered here already)",
                 j->identity ? "client " : "every local session", j->identity ? j->client_id : "",
                 j->queued, j->skipped);
    r->stats.replays_done++;
    job_free(r, j);
}

/* Create the consumer from start (or after stream sequence after, when > 0). */
static void ask_consumer(struct cluster_replay *r, struct job *j, uint64_t after)
{
    natsSubscription_Destroy(j->feed);
    j->feed = NULL;
    natsInbox_Destroy(j->deliver);
    j->deliver = NULL;
    natsStatus s = natsInbox_Create(&j->deliver);
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&j->feed, r->link->nc, j->deliver);
    if (s == NATS_OK) /* a replay can be long: nats.c's default 64k pending would drop some */
        s = natsSubscription_SetPendingLimits(j->feed, -1, 256 * 1024 * 1024);
    if (s != NATS_OK) {
        job_end(r, j, natsStatus_GetText(s));
        return;
    }
    char start[160];
    if (after) {
        snprintf(start, sizeof(start),
                 "\"deliver_policy\":\"by_start_sequence\",\"opt_start_seq\":%" PRIu64, after + 1);
    } else {
        time_t sec = (time_t)(j->start_ms / 1000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        char when[40];
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(start, sizeof(start),
                 "\"deliver_policy\":\"by_start_time\",\"opt_start_time\":\"%s.%03dZ\"", when,
                 (int)(j->start_ms % 1000));
    }
    char subj[128], body[768];
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.CREATE.%s", r->stream);
    int n =
        snprintf(body, sizeof(body),
                 "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"%s\",%s,"
                 "\"ack_policy\":\"none\",\"replay_policy\":\"instant\",\"idle_heartbeat\":%" PRIu64
                 ",\"mem_storage\":true,\"num_replicas\":1}}",
                 r->stream, j->deliver, start, (uint64_t)HEARTBEAT_MS * 1000000u);
    j->state = J_CREATING;
    j->last_cseq = 0;
    if (!cluster__request(r->link, r->inbox, "replay", subj, body, (size_t)n, 'c', j->n))
        job_end(r, j, "NATS refused the request");
}

static void start_waiting(struct cluster_replay *r)
{
    while (r->waiting && r->running_n < MAX_JOBS && r->link->connected && r->inbox) {
        struct job *j = r->waiting;
        DL_DELETE(r->waiting, j);
        DL_APPEND(r->running, j);
        j->running = true;
        r->running_n++;
        j->deadline = now_ms(r) + JOB_TIMEOUT_MS;
        ask_consumer(r, j, 0);
    }
}

static struct target *target_of(const struct cluster_replay *r, const char *identity,
                                const char *client_id)
{
    if (!r || !r->targets)
        return NULL;
    char key[33];
    cluster__session_key(identity, client_id, key);
    struct target *t;
    HASH_FIND(hh, r->targets, key, 32, t);
    return t;
}

void cluster__replay(struct cluster_replay *r, const char *identity, const char *client_id,
                     int64_t start_ms, int64_t end_ms)
{
    if (r->stopped)
        return;
    struct job *j = xcalloc(1, sizeof(*j));
    j->n = ++r->next_n;
    j->start_ms = start_ms > REPLAY_SLACK_MS ? start_ms - REPLAY_SLACK_MS : 0;
    j->end_ms = end_ms + REPLAY_SLACK_MS;
    if (identity) {
        cluster__id_pair(identity, client_id, &j->identity, &j->client_id);
        struct target *t = target_of(r, identity, client_id);
        if (!t) {
            t = xcalloc(1, sizeof(*t));
            cluster__session_key(identity, client_id, t->key);
            HASH_ADD(hh, r->targets, key, 32, t);
        }
        j->t = t;
        j->same_next = t->jobs;
        t->jobs = j;
    }
    DL_APPEND(r->waiting, j);
    r->stats.replays++;
    start_waiting(r);
}

bool cluster__replay_busy(const struct cluster_replay *r, const char *identity,
                          const char *client_id)
{
    return target_of(r, identity, client_id) != NULL;
}

int64_t cluster__replay_since(const struct cluster_replay *r, const char *identity,
                              const char *client_id)
{
    int64_t since = INT64_MAX;
    const struct target *t = target_of(r, identity, client_id);
    for (const struct job *j = t ? t->jobs : NULL; j; j = j->same_next)
        if (j->start_ms < since)
            since = j->start_ms;
    return since;
}

static struct job *find(struct cluster_replay *r, uint64_t n)
{
    struct job *j = r->running;
    while (j && j->n != n)
        j = j->next;
    return j;
}

static void on_reply(struct cluster_replay *r, natsMsg *nm)
{
    char kind;
    uint64_t n;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), r->inbox, &kind, &n))
        return;
    struct job *j = find(r, n);
    if (!j || j->state != J_CREATING)
        return;
    struct jsreply jr;
    if (jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &jr) != 0 ||
        jr.has_error) {
        job_end(r, j, "JetStream refused the consumer");
        return;
    }
    j->state = J_FEEDING; /* ends at a message stored after the end time, or at the first idle
                             heartbeat after it */
}

enum step { GO, END, RESTART };

/* One stored message for j's target(s). */
static enum step replay_one(struct cluster_replay *r, struct job *j, natsMsg *nm, int64_t now)
{
    const char *ack = natsMsg_GetReply(nm);
    if (!ack) /* idle heartbeat: nothing stored is left; done once the end time has passed (a
                 message routed before it may be stored a little after it) */
        return cluster__wall_ms() > j->end_ms ? END : GO;
    struct jsack a;
    if (jsreply_ack_meta(ack, strlen(ack), &a) != 0)
        return GO;
    if (a.cseq != j->last_cseq + 1) /* a delivery was lost (slow consumer): resume */
        return RESTART;
    j->last_cseq = a.cseq;
    j->last_sseq = a.sseq;
    int64_t at = (int64_t)(a.ts_ns / 1000000u);
    if (at > j->end_ms)
        return END;
    struct session *only = NULL;
    if (j->identity) {
        only = broker_find(r->b, j->identity, j->client_id);
        if (!only || (j->only && j->only != only))
            return END; /* the session went (expired, taken over) */
        if (!j->only) {
            j->only = only;
            j->attach_ms = now;
        }
    }
    const char *subj = natsMsg_GetSubject(nm);
    int tlen = subject_to_topic(r->prefix, subj, strlen(subj), r->topic, r->o->max_subject + 1u,
                                NULL, NULL);
    struct envelope e;
    if (tlen < 0 || !broker_topic_ok(r->b, r->topic, (size_t)tlen) ||
        !utf8_valid((const uint8_t *)r->topic, (size_t)tlen, false) ||
        envelope_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                        &e) != 0) {
        r->stats.bad++;
        return GO;
    }
    size_t nl = strlen(r->o->node);
    bool own = e.node.len == nl && !memcmp(e.node.p, r->o->node, nl);
    if (e.has_id) {
        /* Routing delivered it here in a later loop turn than the one the session was first
         * found in (so it was here then), or, for every local session, at all. */
        int64_t routed = seen_when(r->seen, seen_origin(e.node.p, e.node.len), e.id);
        if (routed >= 0 && (!j->identity || routed > j->attach_ms)) {
            j->skipped++;
            r->stats.skipped++;
            return GO;
        }
    }
    int64_t age = cluster__wall_ms() - at, expiry = 0;
    if (e.has_expiry && age >= 0 && (uint64_t)age >= e.expiry_ms)
        return GO; /* expired while stored */
    if (e.has_expiry) {
        uint64_t left = e.expiry_ms - (uint64_t)(age > 0 ? age : 0);
        expiry = now + (int64_t)(left < UINT32_MAX * 1000ull ? left : UINT32_MAX * 1000ull);
    }
    if (!(own && !j->identity)) {
        struct mqtt_publish pub;
        envelope_publish(&e, r->topic, (size_t)tlen, &pub);
        struct msg *m = msg_new(r->topic, (size_t)tlen, &pub, expiry, broker_next_msg_id(r->b));
        size_t got = broker_deliver_replay(r->b, m, only, now);
        msg_unref(m);
        j->queued += got;
        r->stats.replayed += got;
    }
    return GO;
}

void cluster__replay_drain(struct cluster_replay *r, size_t *budget)
{
    natsMsg *nm;
    while (*budget && r->replies && natsSubscription_NextMsg(&nm, r->replies, 0) == NATS_OK) {
        on_reply(r, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    int64_t now = (int64_t)now_ms(r);
    struct job *j, *next;
    DL_FOREACH_SAFE(r->running, j, next)
    {
        if (!*budget)
            break;
        enum step st = GO;
        while (st == GO && *budget && j->feed && j->state == J_FEEDING &&
               natsSubscription_NextMsg(&nm, j->feed, 0) == NATS_OK) {
            st = replay_one(r, j, nm, now);
            natsMsg_Destroy(nm);
            (*budget)--;
        }
        if (st == END) {
            job_end(r, j, NULL);
        } else if (st == RESTART) {
            r->stats.restarts++;
            ask_consumer(r, j, j->last_sseq);
        }
    }
    start_waiting(r);
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_replay *r = h->data;
    uint64_t now = now_ms(r);
    struct job *j, *next;
    DL_FOREACH_SAFE(r->running, j, next)
    {
        if (now >= j->deadline)
            job_end(r, j, "no end within the time allowed");
    }
    start_waiting(r);
}

struct cluster_replay *cluster__replay_new(uv_loop_t *loop, struct broker *b,
                                           const struct cluster_opts *o, struct cluster_link *link)
{
    struct cluster_replay *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->o = o;
    r->loop = loop;
    r->link = link;
    snprintf(r->stream, sizeof(r->stream), "CMQ_Q_%s", o->name);
    snprintf(r->prefix, sizeof(r->prefix), "cmq.%s", o->name);
    r->topic = xmalloc((size_t)o->max_subject + 1);
    r->seen = seen_new(SEEN_LOG2);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    return r;
}

void cluster__replay_link(struct cluster_replay *r, bool up)
{
    if (r->stopped || !up)
        return; /* consumers under way time out; their sessions stay */
    if (!r->inbox) {
        natsStatus s = cluster__reply_inbox(r->link, &r->inbox, &r->replies);
        if (s != NATS_OK) {
            log_err("cluster: replay: cannot subscribe on NATS: %s", natsStatus_GetText(s));
            natsInbox_Destroy(r->inbox);
            r->inbox = NULL;
            return;
        }
        uv_timer_start(&r->timer, on_timer, TIMER_MS, TIMER_MS);
    }
    start_waiting(r);
}

bool cluster__replay_routed(struct cluster_replay *r, const struct envelope *e, int64_t now)
{
    if (!e->has_id)
        return true;
    uint64_t origin = seen_origin(e->node.p, e->node.len);
    if (seen_when(r->seen, origin, e->id) >= 0)
        return false;
    seen_add(r->seen, origin, e->id, now);
    return true;
}

const struct cluster_replay_stats *cluster__replay_stats(const struct cluster_replay *r)
{
    return &r->stats;
}

void cluster__replay_stop(struct cluster_replay *r)
{
    if (!r || r->stopped)
        return;
    r->stopped = true;
    while (r->running)
        job_free(r, r->running);
    while (r->waiting)
        job_free(r, r->waiting);
    natsSubscription_Destroy(r->replies);
    r->replies = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, NULL);
}

void cluster__replay_free(struct cluster_replay *r)
{
    if (!r)
        return;
    natsInbox_Destroy(r->inbox);
    free(r->topic);
    seen_free(r->seen);
    free(r);
}
