/* cluster_sess_take: takeover requests from the node that claimed a session's next epoch
 * (see cluster_sess.c for the claims and cluster_give.c for the handover sent back). */
#include "cluster_sess_int.h"

#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- requests from the next owner ------------------------------------------------------- */

/* A take request: u8 op | u64 epoch | u32 chunk index | u16 len + identity | u16 len + client id.
 * op 'T': take the session (first part), 'K': kick only (the new connection starts clean),
 * 'F': finish (second part from index). */
struct take_req {
    char op;
    uint64_t epoch;
    uint32_t index;
    char *id, *cid; /* NUL-terminated copies */
};

static bool parse_take(const uint8_t *p, size_t len, struct take_req *t)
{
    if (len < 17 || (p[0] != 'T' && p[0] != 'K' && p[0] != 'F'))
        return false;
    t->op = (char)p[0];
    t->epoch = 0;
    for (int i = 1; i <= 8; i++)
        t->epoch = t->epoch << 8 | p[i];
    t->index = (uint32_t)p[9] << 24 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 8 | p[12];
    size_t il = (size_t)p[13] << 8 | p[14];
    if (len < 15 + il + 2)
        return false;
    size_t cl = (size_t)p[15 + il] << 8 | p[16 + il];
    if (len != 17 + il + cl || !il || !utf8_valid(p + 15, il, false) ||
        !utf8_valid(p + 17 + il, cl, false))
        return false;
    t->id = xstrndup((const char *)p + 15, il);
    t->cid = xstrndup((const char *)p + 17 + il, cl);
    return true;
}

void sess__send_take(struct cluster_sess *s, struct claim *c, char op, uint32_t index)
{
    size_t il = strlen(c->identity), cl = strlen(c->client_id);
    uint8_t *body = xmalloc(17 + il + cl), *o = body;
    *o++ = (uint8_t)op;
    for (int i = 7; i >= 0; i--)
        *o++ = (uint8_t)(c->epoch >> (8 * i));
    for (int i = 3; i >= 0; i--)
        *o++ = (uint8_t)(index >> (8 * i));
    *o++ = (uint8_t)(il >> 8);
    *o++ = (uint8_t)il;
    memcpy(o, c->identity, il);
    o += il;
    *o++ = (uint8_t)(cl >> 8);
    *o++ = (uint8_t)cl;
    memcpy(o, c->client_id, cl);
    o += cl;
    char subj[160];
    snprintf(subj, sizeof(subj), "%s.take.%s", s->prefix, c->prev);
    c->deadline = sess__now(s) + TAKE_TIMEOUT_MS;
    bool ok = sess__request(s, subj, body, (size_t)(o - body), 't', c->ticket);
    free(body);
    if (!ok)
        sess__granted(s, c); /* as if the owner were gone */
}

void sess__serve_successor(struct cluster_sess *s, struct claim *c)
{
    struct session *ss = broker_find(s->b, c->identity, c->client_id);
    cluster__give_begin(s->give, ss, c->key, c->succ_epoch, c->succ_reply, (int64_t)sess__now(s),
                        cluster__replay_since(s->replay, c->identity, c->client_id));
    c->imp.imported = NULL;
    free(c->succ_reply);
    c->succ_reply = NULL;
}

/* false when nm was kept to be answered later (a replay for its session is under way here:
 * what the replay still brings would not go along). */
bool sess__on_take(struct cluster_sess *s, natsMsg *nm, bool may_defer)
{
    const char *reply = natsMsg_GetReply(nm);
    struct take_req t = {0};
    if (!reply ||
        !parse_take((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &t)) {
        s->stats.handover_bad++;
        log_warn("cluster: sessions: a malformed takeover request ignored");
        goto out;
    }
    if (may_defer && t.op == 'T' && s->replay && s->ndeferred < DEFER_MAX &&
        cluster__replay_busy(s->replay, t.id, t.cid)) {
        s->deferred[s->ndeferred] = nm;
        s->deferred_at[s->ndeferred++] = sess__now(s);
        free(t.id);
        free(t.cid);
        return false;
    }
    int64_t now = (int64_t)sess__now(s);
    char key[33];
    cluster__session_key(t.id, t.cid, key);
    if (t.op == 'F') {
        cluster__give_finish(s->give, key, t.epoch, t.index, reply, now);
        goto out;
    }
    struct claim *c;
    HASH_FIND(hk, s->by_key, key, strlen(key), c);
    if (c && c->state != CL_GRANTED && c->epoch && c->epoch < t.epoch) {
        /* This node's claim is older and not finished: it answers when it is. */
        if (c->succ_reply) /* an even newer one supersedes that requester too */
            cluster__give_begin(s->give, NULL, key, 0, c->succ_reply, now, INT64_MAX);
        free(c->succ_reply);
        c->succ_reply = xstrdup(reply);
        c->succ_epoch = t.epoch;
        goto out;
    }
    struct session *ss = broker_find(s->b, t.id, t.cid);
    if (ss && session_epoch(ss) > t.epoch) /* a stale request: this node's claim is newer */
        ss = NULL;
    else if (c && c->state == CL_GRANTED && c->epoch < t.epoch)
        c->superseded = true; /* its CONNECT, not attached yet, is kicked when it does */
    if (ss && t.op == 'K') {  /* the device starts clean there: nothing to send */
        broker_release(s->b, ss, now);
        broker_discard(s->b, ss);
        ss = NULL;
    }
    cluster__give_begin(s->give, ss, key, t.epoch, reply, now,
                        cluster__replay_since(s->replay, t.id, t.cid));
out:
    free(t.id);
    free(t.cid);
    return true;
}

/* Deferred takeover requests whose replay is done, or that waited long enough. */
void sess__serve_deferred(struct cluster_sess *s)
{
    uint64_t now = sess__now(s);
    for (size_t i = 0; i < s->ndeferred;) {
        natsMsg *nm = s->deferred[i];
        struct take_req t = {0};
        bool due = now - s->deferred_at[i] >= DEFER_MS ||
                   !parse_take((const uint8_t *)natsMsg_GetData(nm),
                               (size_t)natsMsg_GetDataLength(nm), &t) ||
                   !cluster__replay_busy(s->replay, t.id, t.cid);
        free(t.id);
        free(t.cid);
        if (!due) {
            i++;
            continue;
        }
        s->deferred[i] = s->deferred[--s->ndeferred];
        s->deferred_at[i] = s->deferred_at[s->ndeferred];
        sess__on_take(s, nm, false);
        natsMsg_Destroy(nm);
    }
}
