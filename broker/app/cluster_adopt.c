/* cluster_adopt: the offline sessions of a node taken for dead (cluster_rec.c judges, from
 * its heartbeats) are adopted by one surviving node, from the loop.
 *
 * Every survivor that judges the node dead reads its last heartbeat (its JetStream sequence
 * names this death; its checkpoint bounds the replay) and tries to create
 * <prefix>.claim.adopt.<node>.<heartbeat seq> in the claims stream: create-only, so exactly one
 * survivor becomes the adopter. The adopter lists the dead node's session records (an ephemeral
 * consumer, last message per subject), claims each session's next epoch (skipped when its
 * device has already reconnected somewhere and claimed it), rebuilds the session offline here,
 * publishes the will its device had set (cluster_dead_node_wills), and replays from the message
 * stream what the session is owed (cluster_replay.c). A clean session that had a will only gets
 * its will published. One dead node at a time; each step is a publish whose reply comes to the
 * inbox, drained with the rest. */
#include "cluster_int.h"

#include "jsreply.h"
#include "log.h"
#include "sessrec.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* An adoption that has not ended in this long is given up (logged). */
#define ADOPT_TIMEOUT_MS 30000

enum adopt_state { A_BEAT, A_CLAIM, A_LIST, A_TAKE };

/* One dead node whose offline sessions are being adopted. */
struct dead {
    char node[CLUSTER_NODE_MAX + 1];
    enum adopt_state state;
    uint64_t deadline, beat_seq;
    int64_t ckpt;
    char *deliver;
    natsSubscription *feed;
    natsMsg **items; /* its records, kept until their claims are answered */
    size_t nitems, cap, answered;
};

struct cluster_adopt {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    struct cluster_replay *replay;
    struct cluster_rec *rec;
    struct cluster_rec_stats *stats; /* the records module's: adoptions, adopted, records_bad */
    char stream[72], prefix[64], claims[72];
    char *inbox;
    natsSubscription *replies;
    struct dead *dead;
};

static bool request(struct cluster_adopt *r, const char *subj, const void *body, size_t len,
                    char kind, uint64_t n)
{
    return cluster__request(r->link, r->inbox, "adoption", subj, body, len, kind, n);
}

static void adopt_end(struct cluster_adopt *r, const char *why)
{
    struct dead *a = r->dead;
    if (why)
        log_warn("cluster: adopting the sessions of node %s: %s", a->node, why);
    natsSubscription_Destroy(a->feed);
    natsInbox_Destroy(a->deliver);
    for (size_t i = 0; i < a->nitems; i++)
        natsMsg_Destroy(a->items[i]);
    free(a->items);
    free(a);
    r->dead = NULL;
}

/* Its last heartbeat: the claim that makes one survivor the adopter names it. */
static void adopt_on_beat(struct cluster_adopt *r, natsMsg *nm)
{
    struct dead *a = r->dead;
    const char *seq = NULL;
    int64_t started;
    if (natsMsgHeader_Get(nm, "Nats-Sequence", &seq) != NATS_OK || !seq ||
        sessrec_beat_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &started, &a->ckpt) != 0) {
        adopt_end(r, "no valid last heartbeat in JetStream");
        return;
    }
    a->beat_seq = strtoull(seq, NULL, 10);
    a->state = A_CLAIM;
    char subj[192];
    snprintf(subj, sizeof(subj), "%s.adopt.%s.%" PRIu64, r->claims, a->node, a->beat_seq);
    if (!request(r, subj, r->o->node, strlen(r->o->node), 'a', 0))
        adopt_end(r, "NATS refused the request");
}

static void adopt_list(struct cluster_adopt *r)
{
    struct dead *a = r->dead;
    a->state = A_LIST;
    natsStatus s = natsInbox_Create(&a->deliver);
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&a->feed, r->link->nc, a->deliver);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(a->feed, -1, 256 * 1024 * 1024);
    if (s != NATS_OK) {
        adopt_end(r, natsStatus_GetText(s));
        return;
    }
    char subj[128], body[640];
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.CREATE.%s", r->stream);
    int n = snprintf(body, sizeof(body),
                     "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"%s\","
                     "\"deliver_policy\":\"last_per_subject\",\"filter_subject\":\"%s.rec.>\","
                     "\"ack_policy\":\"none\",\"replay_policy\":\"instant\","
                     "\"idle_heartbeat\":1000000000,\"mem_storage\":true,\"num_replicas\":1}}",
                     r->stream, a->deliver, r->prefix);
    if (!request(r, subj, body, (size_t)n, 'l', 0))
        adopt_end(r, "NATS refused the request");
}

/* The records listed: claim the next epoch of each of the dead node's sessions. */
static void adopt_claim_all(struct cluster_adopt *r)
{
    struct dead *a = r->dead;
    natsSubscription_Destroy(a->feed);
    a->feed = NULL;
    a->state = A_TAKE;
    log_notice("cluster: adopting %zu session(s) of dead node %s", a->nitems, a->node);
    if (!a->nitems) {
        adopt_end(r, NULL);
        return;
    }
    r->stats->adoptions++;
    for (size_t i = 0; i < a->nitems; i++) {
        struct sessrec rec;
        sessrec_decode((const uint8_t *)natsMsg_GetData(a->items[i]),
                       (size_t)natsMsg_GetDataLength(a->items[i]), &rec);
        const char *subj = natsMsg_GetSubject(a->items[i]);
        size_t pl = strlen(r->prefix) + strlen(".rec.");
        char claim[192];
        snprintf(claim, sizeof(claim), "%s.%.32s.%" PRIu64, r->claims, subj + pl, rec.epoch + 1);
        if (!request(r, claim, r->o->node, strlen(r->o->node), 'e', i))
            a->answered++;
    }
    if (a->answered == a->nitems)
        adopt_end(r, "NATS refused every claim");
}

static void adopt_on_record(struct cluster_adopt *r, natsMsg *nm, bool *keep)
{
    struct dead *a = r->dead;
    const char *ack = natsMsg_GetReply(nm);
    struct jsack k;
    if (!ack || jsreply_ack_meta(ack, strlen(ack), &k) != 0) {
        adopt_claim_all(r); /* idle heartbeat: every record was delivered */
        return;
    }
    struct sessrec rec;
    const char *subj = natsMsg_GetSubject(nm);
    size_t pl = strlen(r->prefix) + strlen(".rec.");
    if (sessrec_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                       &rec) != 0 ||
        strlen(subj) < pl + 33) {
        r->stats->records_bad++;
    } else if (!(rec.flags & SESSREC_GONE) && rec.chunk && rec.node_len == strlen(a->node) &&
               !memcmp(rec.node, a->node, rec.node_len)) {
        if (a->nitems == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 16;
            a->items = xrealloc(a->items, a->cap * sizeof(*a->items));
        }
        a->items[a->nitems++] = nm;
        *keep = true;
    }
    if (!k.pending)
        adopt_claim_all(r);
}

/* The claim of one session's next epoch was answered: ours (rebuild it) or not (skip). */
static void adopt_on_claim(struct cluster_adopt *r, size_t i, natsMsg *nm)
{
    struct dead *a = r->dead;
    struct jsreply jr;
    if (i >= a->nitems)
        return;
    a->answered++;
    if (jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &jr) == 0 &&
        !jr.has_error && jr.has_seq) {
        struct sessrec rec;
        sessrec_decode((const uint8_t *)natsMsg_GetData(a->items[i]),
                       (size_t)natsMsg_GetDataLength(a->items[i]), &rec);
        char *id = xmalloc(rec.identity_len + 1 + rec.client_id_len + 1);
        char *cid = id + rec.identity_len + 1;
        memcpy(id, rec.identity, rec.identity_len);
        id[rec.identity_len] = '\0';
        memcpy(cid, rec.client_id, rec.client_id_len);
        cid[rec.client_id_len] = '\0';
        if (broker_find(r->b, id, cid)) {
            /* A newer claim got here first (this node's own CONNECT, which rebuilt the session
             * from the record itself): importing would replace it. */
            log_info("cluster: client %s (%s): not adopted: the session is here already", cid, id);
            rec.chunk = NULL;
        }
        struct cluster_import x = {
            .b = r->b, .identity = id, .client_id = cid, .now = (int64_t)uv_now(r->link->loop)};
        uint32_t index;
        uint8_t flags;
        if (!rec.chunk) {
            /* skipped above */
        } else if (handover_decode(rec.chunk, rec.chunk_len, &cluster__importer, &x, &index,
                                   &flags) == 0 &&
                   x.imported) {
            session_set_epoch(x.imported, rec.epoch + 1);
            if (r->o->dead_wills)
                cluster__dead_will(r->b, x.imported, &rec, x.now);
            if (!session_persistent(x.imported)) { /* only its will was owed */
                broker_discard(r->b, x.imported);
            } else {
                cluster__rec_changed(r->rec, x.imported);
                int64_t since = rec.since_ms;
                if ((rec.flags & SESSREC_ONLINE) && a->ckpt > since)
                    since = a->ckpt;
                if (r->replay)
                    cluster__replay(r->replay, id, cid, since, cluster__wall_ms());
                r->stats->adopted++;
            }
        } else {
            r->stats->records_bad++;
        }
        free(id);
    }
    if (a->answered == a->nitems) {
        log_notice("cluster: adopted the sessions of dead node %s", a->node);
        adopt_end(r, NULL);
    }
}

void cluster__adopt_start(struct cluster_adopt *r, const char *node, uint64_t now)
{
    if (r->dead || !r->inbox)
        return;
    struct dead *a = xcalloc(1, sizeof(*a));
    snprintf(a->node, sizeof(a->node), "%s", node);
    a->state = A_BEAT;
    a->deadline = now + ADOPT_TIMEOUT_MS;
    r->dead = a;
    char subj[128], body[200];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", r->stream);
    int n = snprintf(body, sizeof(body), "{\"last_by_subj\":\"%s.node.%s\"}", r->prefix, a->node);
    if (!request(r, subj, body, (size_t)n, 'b', 0))
        adopt_end(r, "NATS refused the request");
}

static void on_reply(struct cluster_adopt *r, natsMsg *nm)
{
    char kind;
    uint64_t n;
    struct dead *a = r->dead;
    if (!a || !cluster__reply_of(natsMsg_GetSubject(nm), r->inbox, &kind, &n))
        return;
    struct jsreply jr;
    bool valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &jr) == 0;
    if (kind == 'b' && a->state == A_BEAT) {
        adopt_on_beat(r, nm);
    } else if (kind == 'a' && a->state == A_CLAIM) {
        if (valid && !jr.has_error && jr.has_seq)
            adopt_list(r);
        else /* another survivor adopts it */
            adopt_end(r, valid && jr.has_error ? NULL : "no valid answer to the claim");
    } else if (kind == 'l' && a->state == A_LIST) {
        if (!valid || jr.has_error)
            adopt_end(r, "JetStream refused to list the records");
        else if (jr.has_num_pending && !jr.num_pending)
            adopt_claim_all(r);
    } else if (kind == 'e' && a->state == A_TAKE) {
        adopt_on_claim(r, (size_t)n, nm);
    }
}

void cluster__adopt_drain(struct cluster_adopt *r, size_t *budget)
{
    natsMsg *nm;
    while (*budget && r->replies && natsSubscription_NextMsg(&nm, r->replies, 0) == NATS_OK) {
        on_reply(r, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    while (*budget && r->dead && r->dead->state == A_LIST && r->dead->feed &&
           natsSubscription_NextMsg(&nm, r->dead->feed, 0) == NATS_OK) {
        bool keep = false;
        adopt_on_record(r, nm, &keep);
        if (!keep)
            natsMsg_Destroy(nm);
        (*budget)--;
    }
}

bool cluster__adopt_tick(struct cluster_adopt *r, uint64_t now)
{
    if (r->dead && now >= r->dead->deadline)
        adopt_end(r, "no end within the time allowed");
    return r->dead != NULL;
}

struct cluster_adopt *cluster__adopt_new(struct broker *b, const struct cluster_opts *o,
                                         struct cluster_link *link, struct cluster_replay *replay,
                                         struct cluster_rec *rec, struct cluster_rec_stats *stats)
{
    struct cluster_adopt *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->o = o;
    r->link = link;
    r->replay = replay;
    r->rec = rec;
    r->stats = stats;
    snprintf(r->stream, sizeof(r->stream), "CMQ_REC_%s", o->name);
    snprintf(r->prefix, sizeof(r->prefix), "cmq.%s", o->name);
    snprintf(r->claims, sizeof(r->claims), "cmq.%s.claim", o->name);
    return r;
}

void cluster__adopt_link(struct cluster_adopt *r)
{
    if (r->inbox)
        return;
    natsStatus s = cluster__reply_inbox(r->link, &r->inbox, &r->replies);
    if (s != NATS_OK) {
        log_err("cluster: adoption: cannot subscribe on NATS: %s", natsStatus_GetText(s));
        natsInbox_Destroy(r->inbox);
        r->inbox = NULL;
    }
}

void cluster__adopt_stop(struct cluster_adopt *r)
{
    if (r->dead)
        adopt_end(r, "the node stops");
    natsSubscription_Destroy(r->replies);
    r->replies = NULL;
}

void cluster__adopt_free(struct cluster_adopt *r)
{
    if (!r)
        return;
    natsInbox_Destroy(r->inbox);
    free(r);
}
