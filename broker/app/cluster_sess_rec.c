/* cluster_sess_rec: the previous owner of a session did not answer (it died, or is cut off):
 * the session is rebuilt from the record it kept in JetStream (cluster_rec.c, sessrec.h) — its
 * subscriptions, its will — and what it was owed is read back from the message stream
 * (cluster_replay.c), from the later of the record's bound and the dead node's last checkpoint.
 *
 * The same when the previous owner answers but has no session (it restarted without its disk),
 * or is this node without one: its record says whether it had one. When it has no record either,
 * its epoch may be a claim that never became a session (its acknowledgement lost, an adoption
 * given up): the claim before it names the node to ask next, at most WALK_MAX times. */
#include "cluster_sess_int.h"

#include "log.h"
#include "sessrec.h"

#include <inttypes.h>
#include <string.h>

/* ---- a dead previous owner: the session from its record ---------------------------------- */

static void ask_direct(struct cluster_sess *s, struct claim *c, const char *stream,
                       enum claim_state st, char kind, const char *what)
{
    char subj[128], body[256];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", stream);
    int n = snprintf(body, sizeof(body), "{\"last_by_subj\":\"%s\"}", what);
    c->state = st;
    c->deadline = sess__now(s) + CLAIM_TIMEOUT_MS;
    if (!sess__request(s, subj, body, (size_t)n, kind, c->ticket))
        sess__granted(s, c);
}

/* The previous owner did not answer: its record of the session (the epoch before ours). A clean
 * start wants nothing of it. */
void sess__ask_record(struct cluster_sess *s, struct claim *c)
{
    if (!c->prev_epoch) {
        sess__granted(s, c);
        return;
    }
    char what[160];
    snprintf(what, sizeof(what), "%s.rec.%s.%" PRIu64, s->prefix, c->key, c->prev_epoch);
    ask_direct(s, c, s->rec_stream, CL_REC, 'r', what);
}

void sess__verify(struct cluster_sess *s, struct claim *c)
{
    c->prev_alive = true;
    sess__ask_record(s, c);
}

void sess__ask_prev(struct cluster_sess *s, struct claim *c)
{
    if (cluster__node_silent(s->link->c, c->prev)) { /* dead, or stopped */
        log_info("cluster: client %s (%s): node %s sends no heartbeat; the session is rebuilt "
                 "from its record",
                 c->client_id, c->identity, c->prev);
        sess__ask_record(s, c);
        return;
    }
    c->state = CL_TAKE; /* a clean start needs nothing but the old connection's end */
    c->next_chunk = 0;
    c->finishing = false;
    sess__send_take(s, c, c->clean ? 'K' : 'T', 0);
}

/* prev has neither the session nor a record of it: the claim of the epoch before. */
static void walk(struct cluster_sess *s, struct claim *c)
{
    if (c->clean || c->walks >= WALK_MAX || c->prev_epoch < 2) {
        log_info("cluster: client %s (%s): no record of the session at node %s; a new session "
                 "starts here",
                 c->client_id, c->identity, c->prev);
        sess__granted(s, c);
        return;
    }
    c->walks++;
    char what[160];
    snprintf(what, sizeof(what), "%s.claim.%s.%" PRIu64, s->prefix, c->key, c->prev_epoch - 1);
    ask_direct(s, c, s->stream, CL_WALK, 'w', what);
}

void sess__on_walk(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    uint64_t e = 0;
    char node[CLUSTER_NODE_MAX + 1];
    if (cluster__last_claim(nm, s->prefix, c->key, &e, node) <= 0 || e != c->prev_epoch - 1) {
        log_info("cluster: client %s (%s): no claim before epoch %" PRIu64 "; a new session "
                 "starts here",
                 c->client_id, c->identity, c->prev_epoch);
        sess__granted(s, c);
        return;
    }
    log_notice("cluster: client %s (%s): node %s never held epoch %" PRIu64 " of the session; "
               "asking node %s, which held epoch %" PRIu64,
               c->client_id, c->identity, c->prev, c->prev_epoch, node, e);
    memcpy(c->prev, node, strlen(node) + 1);
    c->prev_epoch = e;
    c->prev_alive = false;
    if (strcmp(node, s->o->node))
        sess__ask_prev(s, c);
    else if (broker_find(s->b, c->identity, c->client_id))
        sess__granted(s, c);
    else
        sess__verify(s, c);
}

/* Rebuild the session from the record and read back from the stream what it is owed since
 * since. */
static void recover(struct cluster_sess *s, struct claim *c, int64_t since)
{
    if (c->imp.imported) {
        cluster__recovered(s->link->c, c->identity, c->client_id, since, c->prev);
        c->from_record = true;
    }
    sess__granted(s, c);
}

void sess__on_record(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    struct sessrec r;
    const char *status = NULL;
    bool found = !(natsMsgHeader_Get(nm, "Status", &status) == NATS_OK && status);
    if (found && (sessrec_decode((const uint8_t *)natsMsg_GetData(nm),
                                 (size_t)natsMsg_GetDataLength(nm), &r) != 0 ||
                  r.epoch != c->prev_epoch || r.identity_len != strlen(c->identity) ||
                  memcmp(r.identity, c->identity, r.identity_len) ||
                  r.client_id_len != strlen(c->client_id) ||
                  memcmp(r.client_id, c->client_id, r.client_id_len))) {
        s->stats.handover_bad++;
        found = false;
    }
    if (c->partial) { /* the subscriptions came: only the record's bound is wanted */
        if (found && !(r.flags & SESSREC_GONE))
            recover(s, c, r.since_ms);
        else
            sess__granted(s, c);
        return;
    }
    if (!found) {
        walk(s, c);
        return;
    }
    if ((r.flags & SESSREC_GONE) || !r.chunk) {
        log_info("cluster: client %s (%s): the session at node %s had ended; a new session "
                 "starts here",
                 c->client_id, c->identity, c->prev);
        sess__granted(s, c);
        return;
    }
    uint32_t index;
    uint8_t flags;
    if (sess__import(s, c, r.chunk, r.chunk_len, &index, &flags) != 0) {
        sess__granted(s, c);
        return;
    }
    /* The device is back: a will with a delay is not owed (it reconnected in time). */
    if (c->imp.imported && s->o->dead_wills && !r.will_delay_s)
        cluster__dead_will(s->b, c->imp.imported, &r, c->imp.now);
    if (c->clean) { /* only the will was wanted: attaching drops the rest */
        sess__granted(s, c);
        return;
    }
    if (!(r.flags & SESSREC_ONLINE) || c->prev_alive) {
        recover(s, c, r.since_ms); /* a node alive now: its checkpoint is a later run's */
        return;
    }
    /* A device was connected: the owner's last heartbeat may bound the replay closer. */
    c->since = r.since_ms;
    char what[160];
    snprintf(what, sizeof(what), "%s.node.%s", s->prefix, c->prev);
    ask_direct(s, c, s->rec_stream, CL_BEAT, 'b', what);
}

void sess__on_beat(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    int64_t started, ckpt;
    if (sessrec_beat_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &started, &ckpt) == 0 &&
        ckpt > c->since)
        c->since = ckpt;
    recover(s, c, c->since);
}
