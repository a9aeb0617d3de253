/* cluster_fence: after this node was cut off from NATS, it closes the connections whose sessions
 * another node claimed meanwhile.
 *
 * While a node cannot reach NATS, a device may connect elsewhere: that node claims the next
 * epoch, asks this one for the session, gets no answer and starts the session anew. When the
 * routing link comes back, every session this node holds under a claim is looked up (the
 * key's last claim, a direct get, at most FENCE_INFLIGHT at a time); one whose last claim is
 * newer and another node's is dropped here, its connection closed (MQTT 5: DISCONNECT 0x8E). */
#include "cluster_int.h"

#include "log.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define FENCE_INFLIGHT 256
/* Lookups not answered within this are given up (the next reconnection checks again). */
#define FENCE_TIMEOUT_MS 5000

struct fence_check {
    char *identity, *client_id; /* one allocation */
    char key[33];
    uint64_t epoch;
};

struct cluster_fence {
    struct broker *b;
    struct cluster_link *link;
    const struct cluster_opts *o;
    char prefix[64], stream[72];
    char *inbox;
    natsSubscription *replies;
    struct fence_check *todo;
    size_t n, cap, next, inflight, round;
    uint64_t progress_at; /* ms: the last lookup sent or answered */
    uint64_t fenced;
};

struct cluster_fence *cluster__fence_new(struct broker *b, const struct cluster_opts *o,
                                         struct cluster_link *link)
{
    struct cluster_fence *f = xcalloc(1, sizeof(*f));
    f->b = b;
    f->o = o;
    f->link = link;
    snprintf(f->prefix, sizeof(f->prefix), "cmq.%s", o->name);
    snprintf(f->stream, sizeof(f->stream), "CMQ_SESS_%s", o->name);
    return f;
}

static void todo_clear(struct cluster_fence *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->todo[i].identity);
    f->n = f->next = f->inflight = 0;
}

static void collect(void *ctx, struct session *s)
{
    struct cluster_fence *f = ctx;
    if (!session_epoch(s))
        return; /* never claimed: nobody else can have taken it */
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->todo = xrealloc(f->todo, f->cap * sizeof(*f->todo));
    }
    struct fence_check *c = &f->todo[f->n++];
    cluster__id_pair(session_identity(s), session_client_id(s), &c->identity, &c->client_id);
    cluster__session_key(c->identity, c->client_id, c->key);
    c->epoch = session_epoch(s);
}

static void pump(struct cluster_fence *f)
{
    char subj[128], body[160];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", f->stream);
    while (f->next < f->n && f->inflight < FENCE_INFLIGHT) {
        struct fence_check *c = &f->todo[f->next];
        int len =
            snprintf(body, sizeof(body), "{\"last_by_subj\":\"%s.claim.%s.*\"}", f->prefix, c->key);
        /* the reply names the round and the check, so a late answer of an old round is ignored */
        if (!cluster__request(f->link, f->inbox, "sessions", subj, body, (size_t)len, 'f',
                              (uint64_t)f->round << 32 | f->next))
            return;
        f->next++;
        f->inflight++;
        f->progress_at = uv_now(f->link->loop);
    }
}

void cluster__fence_start(struct cluster_fence *f)
{
    if (!f->inbox) {
        natsStatus s = cluster__reply_inbox(f->link, &f->inbox, &f->replies);
        if (s != NATS_OK) {
            log_err("cluster: sessions: cannot check them after the reconnection: %s",
                    natsStatus_GetText(s));
            return;
        }
    }
    todo_clear(f);
    f->round++;
    broker_foreach_session(f->b, collect, f);
    if (f->n)
        log_notice("cluster: back on NATS: checking whether other nodes took over any of the %zu "
                   "session(s) held here",
                   f->n);
    pump(f);
}

static void on_reply(struct cluster_fence *f, natsMsg *nm)
{
    char kind;
    uint64_t t;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), f->inbox, &kind, &t) || kind != 'f' ||
        t >> 32 != f->round || (t & 0xffffffffu) >= f->n)
        return;
    f->inflight--;
    f->progress_at = uv_now(f->link->loop);
    struct fence_check *c = &f->todo[t & 0xffffffffu];
    uint64_t epoch = 0;
    char node[CLUSTER_NODE_MAX + 1];
    if (cluster__last_claim(nm, f->prefix, c->key, &epoch, node) == 1 && epoch > c->epoch &&
        strcmp(node, f->o->node) != 0) {
        struct session *s = broker_find(f->b, c->identity, c->client_id);
        if (s && session_epoch(s) == c->epoch) {
            log_notice("cluster: client %s (%s): node %s took the session over while this node "
                       "was cut off from NATS; closed and dropped here",
                       c->client_id, c->identity, node);
            broker_release(f->b, s, (int64_t)uv_now(f->link->loop));
            broker_discard(f->b, s);
            f->fenced++;
        }
    }
    pump(f);
}

void cluster__fence_drain(struct cluster_fence *f, size_t *budget)
{
    natsMsg *nm;
    while (*budget && f->replies && natsSubscription_NextMsg(&nm, f->replies, 0) == NATS_OK) {
        on_reply(f, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    if (f->inflight && uv_now(f->link->loop) - f->progress_at > FENCE_TIMEOUT_MS) {
        log_warn("cluster: sessions: %zu ownership lookup(s) unanswered after the reconnection; "
                 "those sessions are checked at the next one",
                 f->inflight);
        f->inflight = 0;
        pump(f);
    }
    if (f->next == f->n && !f->inflight && f->n)
        todo_clear(f); /* done: nothing held between rounds */
}

uint64_t cluster__fence_count(const struct cluster_fence *f)
{
    return f->fenced;
}

void cluster__fence_stop(struct cluster_fence *f)
{
    todo_clear(f);
    natsSubscription_Destroy(f->replies);
    f->replies = NULL;
}

void cluster__fence_free(struct cluster_fence *f)
{
    if (!f)
        return;
    todo_clear(f);
    free(f->todo);
    natsInbox_Destroy(f->inbox);
    free(f);
}
