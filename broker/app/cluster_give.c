/* cluster_give: this node hands a session over to the node that claimed it next
 * (cluster_sess.c asks; see there for the claims).
 *
 * In two parts, so that nothing published meanwhile falls between the nodes:
 *
 *   1. (take request) the device's connection here is kicked (MQTT 5 DISCONNECT 0x8E); the
 *      header and the subscriptions go to the new owner, which subscribes them at once. The
 *      session stays here, offline, still subscribed: what arrives for it is queued.
 *   2. (finish request, sent by the new owner after its subscriptions, on the same NATS
 *      connection, so its interest is known by then) every message already received goes into
 *      the session, the deliveries and QoS 2 ids follow, and the session is forgotten here.
 *
 * The finish waits FINISH_SETTLE_MS before it is answered: a message published elsewhere just
 * before that node's NATS server learnt the new owner's interest may still be on its way here
 * (routes between NATS servers are not ordered with each other). A message published while both
 * nodes hold the interest reaches both: the device may get it twice (QoS 1's at least once),
 * not lose it. A new owner that never finishes (it died) is
 * given FINISH_TIMEOUT_MS; then the session is dropped here, logged: the claim chain says it is
 * the other node's. */
#include "cluster_int.h"

#include "handover.h"
#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* Between the two parts, at most this long. */
#define FINISH_TIMEOUT_MS 5000
/* From the finish request to the answer (see above). */
#define FINISH_SETTLE_MS 20
/* Room left in a NATS message for the subject, reply and headers of a chunk. */
#define CHUNK_MARGIN 4096

struct leaving {
    char key[33];
    uint64_t epoch; /* the new owner's */
    uint64_t deadline;
    char *identity, *client_id; /* one allocation */
    char *finish_reply;         /* the finish asked for, answered at deadline */
    uint32_t finish_index;
    UT_hash_handle hh;
};

struct cluster_give {
    uv_timer_t settle;
    struct broker *b;
    struct cluster_link *link;
    const char *node;
    struct leaving *leaving;
    uint64_t given, dropped;
};

struct export
{
    struct cluster_give *g;
    struct handover_writer w;
    const char *reply;
};

static void exp_flush(void *ctx, const uint8_t *p, size_t len, bool last)
{
    struct export *x = ctx;
    natsStatus st = natsConnection_Publish(x->g->link->nc, x->reply, p, (int)len);
    if (st != NATS_OK)
        log_warn("cluster: sessions: a session's handover could not be sent: %s",
                 natsStatus_GetText(st));
    (void)last;
}

static void exp_delivery(void *ctx, const struct session_delivery *d, uint16_t id, bool released)
{
    handover_delivery(&((struct export *)ctx)->w, d, id, released);
}

static void exp_qos2(void *ctx, uint16_t id)
{
    handover_qos2_in(&((struct export *)ctx)->w, id);
}

static void start(struct cluster_give *g, struct export *x, const char *reply, uint32_t index,
                  int64_t now)
{
    size_t max = (size_t)natsConnection_GetMaxPayload(g->link->nc);
    x->g = g;
    x->reply = reply;
    handover_begin(&x->w, max > CHUNK_MARGIN * 2 ? max - CHUNK_MARGIN : max / 2, index, g->node,
                   now, exp_flush, x);
}

static void leaving_free(struct cluster_give *g, struct leaving *l)
{
    HASH_DEL(g->leaving, l);
    free(l->finish_reply);
    free(l->identity);
    free(l);
}

struct cluster_give *cluster__give_new(uv_loop_t *loop, struct broker *b, struct cluster_link *link,
                                       const char *node)
{
    struct cluster_give *g = xcalloc(1, sizeof(*g));
    uv_timer_init(loop, &g->settle);
    g->settle.data = g;
    g->b = b;
    g->link = link;
    g->node = node;
    return g;
}

void cluster__give_begin(struct cluster_give *g, struct session *ss, const char *key,
                         uint64_t epoch, const char *reply, int64_t now, int64_t replay_since)
{
    struct export x;
    start(g, &x, reply, 0, now);
    if (!ss) {
        handover_end(&x.w, HANDOVER_LAST);
        return;
    }
    broker_release(g->b, ss, now); /* kicked: nothing more goes out from here */
    handover_session(&x.w, ss);
    if (replay_since != INT64_MAX)
        handover_replay(&x.w, replay_since);
    handover_end(&x.w, HANDOVER_PART);
    struct leaving *l;
    HASH_FIND(hh, g->leaving, key, strlen(key), l);
    if (l)
        leaving_free(g, l);
    l = xcalloc(1, sizeof(*l));
    memcpy(l->key, key, sizeof(l->key));
    l->epoch = epoch;
    l->deadline = (uint64_t)now + FINISH_TIMEOUT_MS;
    cluster__id_pair(session_identity(ss), session_client_id(ss), &l->identity, &l->client_id);
    HASH_ADD(hh, g->leaving, key, strlen(l->key), l);
}

bool cluster__give_leaving(const struct cluster_give *g, const char *key)
{
    struct leaving *l;
    HASH_FIND(hh, g->leaving, key, strlen(key), l);
    return l != NULL;
}

/* The second part of l's session (l freed). */
static void finish(struct cluster_give *g, struct leaving *l, int64_t now)
{
    struct export x;
    start(g, &x, l->finish_reply, l->finish_index, now);
    struct session *ss = broker_find(g->b, l->identity, l->client_id);
    if (ss) {
        cluster__take_pending(g->link->c); /* what already reached this node goes along */
        session_foreach_delivery(ss, exp_delivery, &x);
        session_foreach_qos2_in(ss, exp_qos2, &x);
        g->given++;
        if (x.w.dropped)
            log_warn("cluster: client %s: %llu message(s) too large for a NATS message not "
                     "handed over",
                     session_client_id(ss), (unsigned long long)x.w.dropped);
        broker_discard(g->b, ss);
    }
    handover_end(&x.w, HANDOVER_LAST);
    leaving_free(g, l);
}

static void on_settled(uv_timer_t *h)
{
    struct cluster_give *g = h->data;
    int64_t now = (int64_t)uv_now(h->loop);
    struct leaving *l, *tmp;
    HASH_ITER(hh, g->leaving, l, tmp)
    {
        if (l->finish_reply && (uint64_t)now >= l->deadline)
            finish(g, l, now);
    }
    HASH_ITER(hh, g->leaving, l, tmp) /* finishes asked for meanwhile */
    {
        if (l->finish_reply) {
            uv_timer_start(&g->settle, on_settled, l->deadline - (uint64_t)now, 0);
            break;
        }
    }
}

void cluster__give_finish(struct cluster_give *g, const char *key, uint64_t epoch, uint32_t index,
                          const char *reply, int64_t now)
{
    struct leaving *l;
    HASH_FIND(hh, g->leaving, key, strlen(key), l);
    if (!l || l->epoch != epoch || l->finish_reply) { /* nothing (more) to give: an empty end */
        struct export x;
        start(g, &x, reply, index, now);
        handover_end(&x.w, HANDOVER_LAST);
        return;
    }
    l->finish_reply = xstrdup(reply);
    l->finish_index = index;
    l->deadline = (uint64_t)now + FINISH_SETTLE_MS;
    if (!uv_is_active((uv_handle_t *)&g->settle))
        uv_timer_start(&g->settle, on_settled, FINISH_SETTLE_MS, 0);
}

void cluster__give_sweep(struct cluster_give *g, int64_t now)
{
    struct leaving *l, *tmp;
    HASH_ITER(hh, g->leaving, l, tmp)
    {
        if ((uint64_t)now < l->deadline || l->finish_reply)
            continue;
        struct session *ss = broker_find(g->b, l->identity, l->client_id);
        if (ss) {
            g->dropped++;
            log_warn("cluster: client %s (%s): the node that took the session over did not "
                     "finish within %d ms; the copy here (%zu queued) is dropped",
                     l->client_id, l->identity, FINISH_TIMEOUT_MS, session_queued(ss));
            broker_discard(g->b, ss);
        }
        leaving_free(g, l);
    }
}

uint64_t cluster__give_count(const struct cluster_give *g)
{
    return g->given;
}

void cluster__give_stop(struct cluster_give *g)
{
    uv_close((uv_handle_t *)&g->settle, NULL);
}

void cluster__give_free(struct cluster_give *g)
{
    if (!g)
        return;
    struct leaving *l, *tmp;
    HASH_ITER(hh, g->leaving, l, tmp)
    leaving_free(g, l);
    free(g);
}
