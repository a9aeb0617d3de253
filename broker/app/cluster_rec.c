/* cluster_rec: what lets the cluster carry on when a node dies without a word (kill -9, power
 * loss, a long stall), from the loop.
 *
 *  - Session records: the owner of a persistent session's epoch writes <prefix>.rec.<H>.<epoch>
 *    (sessrec.h: subscriptions, whether a device is connected, a lower bound of the arrival of
 *    every message the session is still owed) to the stream CMQ_REC_<cluster> at the end of
 *    every loop turn in which the session changed. The stream keeps one message per subject; a
 *    record is read only for the epoch before the reader's own claim, so a stale owner (a
 *    zombie) writing its old epoch's record misleads no one.
 *  - Heartbeats: every BEAT_MS each node writes <prefix>.node.<node> with a checkpoint: a lower
 *    bound of the arrival of every message its connected sessions are owed (msg ids map to
 *    arrival times through a ring of (id, time) taken at every beat).
 *  - Death: a node whose heartbeats stopped for DEAD_MS (seen on core NATS) is dead to this
 *    one. Its devices reconnect elsewhere and get their sessions from its records
 *    (cluster_sess_rec.c); its offline sessions are adopted by one surviving node
 *    (cluster_adopt.c).
 *  - A stall: when this node's own loop stood still for STALL_MS (SIGSTOP, swapping) others may
 *    have taken it for dead: it checks its sessions' claims at once (cluster_fence.c) and gives
 *    every other node a fresh DEAD_MS before it judges them. */
#include "cluster_int.h"

#include "envelope.h"
#include "jsreply.h"
#include "log.h"
#include "sessrec.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define BEAT_MS 1000
#define DEAD_MS 5000
/* Two heartbeats missed: not asked for its sessions (it would not answer in time). */
#define SILENT_MS 2500
#define STALL_MS 3000
#define RETRY_MS 2000
#define WRITE_TIMEOUT_MS 3000
/* Arrival times kept for msg ids: one per beat, an hour's worth. */
#define RING 3600
#define JS_ERR_STREAM_EXISTS 10058
/* Room left in a NATS message for the subject and headers of a record. */
#define REC_MARGIN 4096

/* A session whose record is due, or written and waiting for JetStream's acknowledgement (a
 * write JetStream did not acknowledge — no stream leader at that moment — is due again). */
struct dirty {
    char key[33];
    char *identity, *client_id; /* one allocation */
    uint64_t epoch;             /* the last one seen with the session */
    uint64_t n, deadline;       /* written: the write's number and when it is given up */
    UT_hash_handle hh;          /* in dirty (by key) or in writing (by n) */
};

struct peer {
    char name[CLUSTER_NODE_MAX + 1];
    uint64_t seen; /* loop ms of its last heartbeat */
    bool dead;     /* judged, adopted or left to another node */
    UT_hash_handle hh;
};

struct cluster_rec {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    struct cluster_replay *replay;
    uv_loop_t *loop;
    uv_timer_t timer;
    char stream[72], prefix[64], beat_subj[128];
    char *inbox;
    natsSubscription *replies, *beats;
    bool ready, asked, stopped, cut_off;
    uint64_t asked_at, last_tick, up_since, beat_acked;
    int64_t started;
    struct dirty *dirty, *writing;
    uint64_t next_write;
    struct peer *peers;
    struct cluster_adopt *adopt;
    struct {
        uint64_t id;
        int64_t at;
    } ring[RING];
    size_t ring_n, ring_head; /* ring_head: the oldest */
    struct handover_writer w;
    uint8_t *chunk; /* the record's handover chunk */
    size_t chunk_len, chunks;
    uint8_t *buf, *wbuf; /* the record, the will's envelope */
    size_t cap, wcap;
    struct cluster_rec_stats stats;
};

static uint64_t now_ms(const struct cluster_rec *r)
{
    return uv_now(r->loop);
}

static bool request(struct cluster_rec *r, const char *subj, const void *body, size_t len,
                    char kind, uint64_t n)
{
    return cluster__request(r->link, r->inbox, "session records", subj, body, len, kind, n);
}

static void ask_stream(struct cluster_rec *r)
{
    uint32_t exp = broker_limits(r->b)->persistent_client_expiration;
    char subj[128], body[640];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", r->stream);
    int n = snprintf(body, sizeof(body),
                     "{\"name\":\"%s\",\"subjects\":[\"%s.rec.>\",\"%s.node.>\"],\"retention\":"
                     "\"limits\",\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,"
                     "\"max_age\":%" PRIu64 ",\"max_msgs_per_subject\":1,\"max_msg_size\":-1,"
                     "\"discard\":\"old\",\"storage\":\"file\",\"num_replicas\":%u,"
                     "\"allow_direct\":true}",
                     r->stream, r->prefix, r->prefix,
                     exp ? ((uint64_t)exp + 86400u) * 1000000000u : 0, cluster__replicas(r->o));
    r->asked = true;
    r->asked_at = now_ms(r);
    request(r, subj, body, (size_t)n, 's', 0);
}

/* ---- arrival times ----------------------------------------------------------------------- */

static void ring_add(struct cluster_rec *r, uint64_t id, int64_t at)
{
    size_t i = (r->ring_head + r->ring_n) % RING;
    if (r->ring_n == RING)
        r->ring_head = (r->ring_head + 1) % RING;
    else
        r->ring_n++;
    r->ring[i].id = id;
    r->ring[i].at = at;
}

/* A time at or before which the message with this id reached this node (0: unknown). */
static int64_t arrived_by(const struct cluster_rec *r, uint64_t id)
{
    size_t lo = 0, hi = r->ring_n; /* the last entry with ring id <= id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->ring[(r->ring_head + mid) % RING].id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? r->ring[(r->ring_head + lo - 1) % RING].at : 0;
}

/* Every message s is owed reached this node at or after the result; so will later ones. */
static int64_t owed_since(const struct cluster_rec *r, const struct session *s, int64_t wall)
{
    uint64_t id = session_oldest_msg_id(s);
    if (id == UINT64_MAX)
        return wall;
    int64_t at = arrived_by(r, id);
    return at < wall ? at : wall;
}

/* ---- records ----------------------------------------------------------------------------- */

void cluster__rec_changed(struct cluster_rec *r, const struct session *s)
{
    if (r->stopped)
        return;
    char key[33];
    cluster__session_key(session_identity(s), session_client_id(s), key);
    struct dirty *d;
    HASH_FIND(hh, r->dirty, key, 32, d);
    if (!d) {
        d = xcalloc(1, sizeof(*d));
        memcpy(d->key, key, sizeof(key));
        cluster__id_pair(session_identity(s), session_client_id(s), &d->identity, &d->client_id);
        HASH_ADD(hh, r->dirty, key, 32, d);
    }
    if (session_epoch(s))
        d->epoch = session_epoch(s);
}

static void keep_chunk(void *ctx, const uint8_t *p, size_t len, bool last)
{
    struct cluster_rec *r = ctx;
    (void)last;
    if (r->chunks++)
        return; /* more than one: not written (see write_record) */
    r->chunk = xrealloc(r->chunk, len);
    memcpy(r->chunk, p, len);
    r->chunk_len = len;
}

/* false when nothing was sent (d can go). */
static bool publish(struct cluster_rec *r, struct dirty *d, const struct sessrec *rec)
{
    size_t need = sessrec_size(rec);
    if (need > r->cap) {
        r->cap = need;
        r->buf = xrealloc(r->buf, need);
    }
    size_t len = sessrec_encode(rec, r->buf, r->cap);
    char subj[160];
    snprintf(subj, sizeof(subj), "%s.rec.%s.%" PRIu64, r->prefix, d->key, rec->epoch);
    d->n = ++r->next_write;
    d->deadline = now_ms(r) + WRITE_TIMEOUT_MS;
    return request(r, subj, r->buf, len, 'w', d->n);
}

static void dirty_free(struct dirty *d)
{
    free(d->identity);
    free(d);
}

/* A write not acknowledged: due again, unless the session changed since (then that is). */
static void write_again(struct cluster_rec *r, struct dirty *d)
{
    HASH_DEL(r->writing, d);
    struct dirty *newer;
    HASH_FIND(hh, r->dirty, d->key, 32, newer);
    if (newer) {
        dirty_free(d);
        return;
    }
    r->stats.records_retried++;
    HASH_ADD(hh, r->dirty, key, 32, d);
}

/* The epoch's record says the session ended, so no node rebuilds an older state of it. */
static bool withdraw(struct cluster_rec *r, struct dirty *d, struct sessrec *rec)
{
    rec->flags = SESSREC_GONE;
    rec->epoch = d->epoch;
    return publish(r, d, rec);
}

/* false when d is not to be kept (nothing to write, or not sent). */
static bool write_record(struct cluster_rec *r, struct dirty *d, int64_t wall)
{
    struct session *s = broker_find(r->b, d->identity, d->client_id);
    struct sessrec rec = {.node = r->o->node,
                          .node_len = strlen(r->o->node),
                          .identity = d->identity,
                          .identity_len = strlen(d->identity),
                          .client_id = d->client_id,
                          .client_id_len = strlen(d->client_id)};
    const struct msg *will = s ? session_will(s) : NULL;
    if (!s || !session_epoch(s) || (!session_persistent(s) && !will)) {
        if (!d->epoch)
            return false; /* never owned through a claim here: nothing to withdraw */
        return withdraw(r, d, &rec);
    }
    size_t max = (size_t)natsConnection_GetMaxPayload(r->link->nc);
    r->chunks = 0;
    handover_begin(&r->w, max > REC_MARGIN * 2 ? max - REC_MARGIN : max / 2, 0, r->o->node, 0,
                   keep_chunk, r);
    handover_session(&r->w, s);
    handover_end(&r->w, HANDOVER_LAST);
    if (r->chunks != 1) {
        /* The record written while it still fitted would bring back a past state: the
         * device is told session present 0 instead. */
        log_warn("cluster: client %s (%s): too many subscriptions for one session record; "
                 "another node cannot rebuild the session if this one dies",
                 d->client_id, d->identity);
        d->epoch = session_epoch(s);
        return withdraw(r, d, &rec);
    }
    rec.flags = session_client(s) ? SESSREC_ONLINE : 0;
    rec.epoch = d->epoch = session_epoch(s);
    rec.since_ms = owed_since(r, s, wall);
    int64_t replaying = cluster__replay_since(r->replay, d->identity, d->client_id);
    if (replaying < rec.since_ms)
        rec.since_ms = replaying;
    rec.chunk = r->chunk;
    rec.chunk_len = r->chunk_len;
    size_t need = will ? envelope_size(will, r->o->node, d->identity, 0) : 0;
    if (need > r->wcap) {
        r->wcap = need;
        r->wbuf = xrealloc(r->wbuf, need);
    }
    size_t elen = will ? envelope_encode(will, (int64_t)now_ms(r), r->o->node, d->identity, 0,
                                         r->wbuf, r->wcap)
                       : 0;
    if (elen) {
        rec.has_will = true;
        rec.will_delay_s = session_will_delay(s);
        rec.will_topic = will->topic;
        rec.will_topic_len = will->topic_len;
        rec.will_env = r->wbuf;
        rec.will_env_len = elen;
    }
    return publish(r, d, &rec);
}

void cluster__rec_flush(struct cluster_rec *r)
{
    if (r->stopped || !r->dirty || !r->link->connected || !r->ready)
        return; /* kept for when the link and the stream are there */
    int64_t wall = cluster__wall_ms();
    struct dirty *d, *tmp;
    HASH_ITER(hh, r->dirty, d, tmp)
    {
        HASH_DEL(r->dirty, d);
        if (write_record(r, d, wall))
            HASH_ADD(hh, r->writing, n, sizeof(d->n), d);
        else
            dirty_free(d);
    }
}

static void on_written(struct cluster_rec *r, uint64_t n, bool ok)
{
    struct dirty *d;
    HASH_FIND(hh, r->writing, &n, sizeof(n), d);
    if (!d)
        return;
    if (ok) {
        r->stats.records++;
        HASH_DEL(r->writing, d);
        dirty_free(d);
    } else {
        write_again(r, d);
    }
}

/* ---- heartbeats -------------------------------------------------------------------------- */

struct ckpt {
    const struct cluster_rec *r;
    int64_t at;
};

static void lowest(void *ctx, struct session *s)
{
    struct ckpt *k = ctx;
    if (session_client(s)) {
        int64_t at = owed_since(k->r, s, k->at);
        if (at < k->at)
            k->at = at;
    }
}

static void beat(struct cluster_rec *r)
{
    int64_t wall = cluster__wall_ms();
    ring_add(r, broker_next_msg_id(r->b), wall);
    struct ckpt k = {r, wall};
    broker_foreach_session(r->b, lowest, &k);
    uint8_t b[SESSREC_BEAT_LEN];
    sessrec_beat_encode(r->started, k.at, b);
    request(r, r->beat_subj, b, sizeof(b), 'h', 0);
}

/* JetStream acknowledged a heartbeat. After a stretch without (this node, or its NATS server,
 * cut off from the JetStream quorum: the others may have taken it for dead and adopted its
 * sessions although its link never dropped) its claims are checked again. */
static void on_beat_ack(struct cluster_rec *r, bool ok)
{
    if (!ok)
        return;
    r->beat_acked = now_ms(r);
    if (r->cut_off) {
        r->cut_off = false;
        log_notice("cluster: JetStream acknowledges this node's heartbeats again: checking which "
                   "sessions other nodes took meanwhile");
        cluster__stalled(r->link->c);
    }
}

static void on_beat(struct cluster_rec *r, natsMsg *nm)
{
    const char *subj = natsMsg_GetSubject(nm);
    size_t pl = strlen(r->prefix) + strlen(".node.");
    int64_t started, ckpt;
    if (strlen(subj) <= pl || !subject_name_ok(subj + pl, strlen(subj + pl), CLUSTER_NODE_MAX) ||
        sessrec_beat_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &started, &ckpt) != 0) {
        r->stats.records_bad++;
        return;
    }
    if (!strcmp(subj + pl, r->o->node))
        return;
    struct peer *p;
    HASH_FIND_STR(r->peers, subj + pl, p);
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", subj + pl);
        HASH_ADD_STR(r->peers, name, p);
    } else if (p->dead) {
        log_notice("cluster: node %s is back", p->name);
    }
    p->dead = false;
    p->seen = now_ms(r);
}

/* ---- replies, time, life ----------------------------------------------------------------- */

static void on_reply(struct cluster_rec *r, natsMsg *nm)
{
    char kind;
    uint64_t n;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), r->inbox, &kind, &n))
        return;
    struct jsreply jr;
    bool valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &jr) == 0;
    if (kind == 's') {
        r->asked = false;
        if (!valid || (jr.has_error && jr.err_code != JS_ERR_STREAM_EXISTS)) {
            log_warn("cluster: cannot create the stream %s (JetStream error %" PRIu64
                     "); retrying every %d ms; a dead node's sessions cannot be rebuilt meanwhile",
                     r->stream, valid ? jr.err_code : 0, RETRY_MS);
            return;
        }
        if (!r->ready)
            log_notice("cluster: session records and node heartbeats in JetStream stream %s",
                       r->stream);
        if (!r->ready)
            r->beat_acked = now_ms(r);
        r->ready = true;
        return;
    }
    if (kind == 'w' || kind == 'h') {
        bool ok = valid && !jr.has_error && jr.has_seq;
        if (kind == 'w')
            on_written(r, n, ok);
        else
            on_beat_ack(r, ok);
        return;
    }
}

void cluster__rec_drain(struct cluster_rec *r, size_t *budget)
{
    natsMsg *nm;
    while (*budget && r->replies && natsSubscription_NextMsg(&nm, r->replies, 0) == NATS_OK) {
        on_reply(r, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    while (*budget && r->beats && natsSubscription_NextMsg(&nm, r->beats, 0) == NATS_OK) {
        on_beat(r, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    cluster__adopt_drain(r->adopt, budget);
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_rec *r = h->data;
    uint64_t now = now_ms(r), gap = r->last_tick ? now - r->last_tick : 0;
    bool stalled = gap >= STALL_MS;
    r->last_tick = now;
    if (!r->link->connected)
        return;
    if (!r->ready && (!r->asked || now - r->asked_at >= RETRY_MS))
        ask_stream(r);
    struct dirty *d, *dtmp;
    HASH_ITER(hh, r->writing, d, dtmp)
    {
        if (now >= d->deadline)
            write_again(r, d);
    }
    beat(r);
    struct peer *p, *tmp;
    if (stalled) {
        r->stats.stalls++;
        log_warn("cluster: this node's loop stood still for %" PRIu64 " ms: checking which "
                 "sessions other nodes took meanwhile",
                 gap);
        HASH_ITER(hh, r->peers, p, tmp)
        p->seen = now;
        cluster__stalled(r->link->c);
        return;
    }
    if (r->ready && !r->cut_off && now - r->beat_acked >= DEAD_MS) {
        r->cut_off = true;
        log_warn("cluster: JetStream has not acknowledged this node's heartbeats for %d ms: the "
                 "other nodes may take it for dead",
                 DEAD_MS);
    }
    if (cluster__adopt_tick(r->adopt, now) || !r->ready || now - r->up_since < DEAD_MS)
        return; /* one adoption at a time; only with a link that has been up long enough */
    HASH_ITER(hh, r->peers, p, tmp)
    {
        if (!p->dead && now - p->seen >= DEAD_MS) {
            p->dead = true;
            r->stats.nodes_dead++;
            log_warn("cluster: node %s is silent for %d ms: taken for dead", p->name, DEAD_MS);
            cluster__adopt_start(r->adopt, p->name, now);
            break;
        }
    }
}

struct cluster_rec *cluster__rec_new(uv_loop_t *loop, struct broker *b,
                                     const struct cluster_opts *o, struct cluster_link *link,
                                     struct cluster_replay *replay)
{
    struct cluster_rec *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->o = o;
    r->loop = loop;
    r->link = link;
    r->replay = replay;
    r->started = cluster__wall_ms();
    ring_add(r, broker_next_msg_id(b), r->started); /* what arrives from now on is bounded */
    r->adopt = cluster__adopt_new(b, o, link, replay, r, &r->stats);
    snprintf(r->stream, sizeof(r->stream), "CMQ_REC_%s", o->name);
    snprintf(r->prefix, sizeof(r->prefix), "cmq.%s", o->name);
    snprintf(r->beat_subj, sizeof(r->beat_subj), "%s.node.%s", r->prefix, o->node);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    return r;
}

void cluster__rec_link(struct cluster_rec *r, bool up)
{
    if (r->stopped || !up)
        return;
    r->up_since = r->beat_acked = now_ms(r);
    struct peer *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp)
    p->seen = r->up_since; /* heard nothing while away: everyone gets DEAD_MS again */
    if (!r->inbox) {
        char subj[128];
        snprintf(subj, sizeof(subj), "%s.node.*", r->prefix);
        natsStatus s = cluster__reply_inbox(r->link, &r->inbox, &r->replies);
        if (s == NATS_OK)
            s = natsConnection_SubscribeSync(&r->beats, r->link->nc, subj);
        if (s != NATS_OK) {
            log_err("cluster: session records: cannot subscribe on NATS: %s",
                    natsStatus_GetText(s));
            return;
        }
        uv_timer_start(&r->timer, on_timer, BEAT_MS, BEAT_MS);
    }
    cluster__adopt_link(r->adopt);
    ask_stream(r);
}

bool cluster__rec_silent(const struct cluster_rec *r, const char *node)
{
    const struct peer *p;
    HASH_FIND_STR(r->peers, node, p);
    uint64_t now = now_ms(r);
    return p && r->link->connected && now - r->up_since >= SILENT_MS && now - p->seen >= SILENT_MS;
}

const struct cluster_rec_stats *cluster__rec_stats(const struct cluster_rec *r)
{
    return &r->stats;
}

void cluster__rec_stop(struct cluster_rec *r)
{
    if (!r || r->stopped)
        return;
    cluster__rec_flush(r); /* what the last turn changed (sessions handed over at a stop) */
    r->stopped = true;
    cluster__adopt_stop(r->adopt);
    natsSubscription_Destroy(r->replies);
    natsSubscription_Destroy(r->beats);
    r->replies = r->beats = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, NULL);
}

void cluster__rec_free(struct cluster_rec *r)
{
    if (!r)
        return;
    struct dirty *d, *tmp;
    HASH_ITER(hh, r->dirty, d, tmp)
    {
        HASH_DEL(r->dirty, d);
        dirty_free(d);
    }
    HASH_ITER(hh, r->writing, d, tmp)
    {
        HASH_DEL(r->writing, d);
        dirty_free(d);
    }
    struct peer *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp)
    {
        HASH_DEL(r->peers, p);
        free(p);
    }
    cluster__adopt_free(r->adopt);
    natsInbox_Destroy(r->inbox);
    free(r->chunk);
    free(r->buf);
    free(r->wbuf);
    free(r);
}
