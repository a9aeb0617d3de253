/* cluster_sess: one session per (identity, client id) in the whole cluster, from the loop.
 *
 * Ownership is a chain of epochs in a JetStream stream (CMQ_SESS_<cluster>, subjects
 * <prefix>.claim.<H>.<epoch>, H = 32 hex digits of SHA-256(identity NUL client id)) that keeps
 * one message per subject and refuses a second one (discard new per subject): of two nodes
 * claiming the same epoch exactly one wins, which nats-server 2.9's compare-and-set cannot
 * promise (shared/notes/cluster-on-nats.md §2.5). A CONNECT on this node:
 *
 *   1. reads the key's last claim (direct get, last_by_subj <prefix>.claim.<H>.*): epoch e and
 *      the node that made it;
 *   2. creates <prefix>.claim.<H>.<e+1> naming this node; losing that race (someone created it
 *      first) goes back to 1, at most CLAIM_ATTEMPTS times;
 *   3. when e was another node's, asks it (<prefix>.take.<node>) for the session, which it hands
 *      over in two parts (cluster_give.c): the subscriptions, imported here (re-checked against
 *      this node's ACL for this device) and subscribed; then, asked on the same NATS connection
 *      after those subscriptions, the messages owed. A clean start only asks it to kick;
 *   4. completes the CONNECT's ticket: the client attaches (session present when one came).
 *
 * Each node is asked only by the claimer of the next epoch, so a chain of quick takeovers
 * passes the session along it; a node asked while its own claim is still under way answers
 * when that claim is done (and refuses its own CONNECT: a newer one won). A node that does not
 * answer within TAKE_TIMEOUT_MS (dead, cut off), or that NATS says has no connection, is passed
 * over: the session is rebuilt from its record (cluster_sess_rec.c). Takeover requests from
 * the next owner are answered in cluster_sess_take.c. Nothing here blocks: every JetStream
 * operation is a publish whose reply arrives on the inbox subscription, drained with the rest. */
#include "cluster_sess_int.h"

#include "certattr.h"
#include "handover.h"
#include "jsreply.h"
#include "log.h"
#include "mbedx.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

uint64_t sess__now(const struct cluster_sess *s)
{
    return uv_now(s->loop);
}

void cluster__id_pair(const char *identity, const char *client_id, char **id_out, char **cid_out)
{
    size_t il = strlen(identity), cl = strlen(client_id);
    char *p = xmalloc(il + 1 + cl + 1);
    memcpy(p, identity, il + 1);
    memcpy(p + il + 1, client_id, cl + 1);
    *id_out = p;
    *cid_out = p + il + 1;
}

void cluster__session_key(const char *identity, const char *client_id, char out[33])
{
    uint8_t h[32];
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts(&ctx, 0);
    mbedtls_sha256_update(&ctx, (const unsigned char *)identity, strlen(identity) + 1);
    mbedtls_sha256_update(&ctx, (const unsigned char *)client_id, strlen(client_id));
    mbedtls_sha256_finish(&ctx, h);
    mbedtls_sha256_free(&ctx);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

bool sess__request(struct cluster_sess *s, const char *subj, const void *body, size_t len,
                   char kind, uint64_t ticket)
{
    return cluster__request(s->link, s->inbox, "sessions", subj, body, len, kind, ticket);
}

/* ---- the stream -------------------------------------------------------------------------- */

/* Claims must outlive every session they order (a key with no claim left starts again at 1,
 * which an old copy of the session elsewhere would not know to yield to). */
static uint64_t claim_max_age_ns(const struct cluster_sess *s)
{
    uint32_t exp = broker_limits(s->b)->persistent_client_expiration;
    return exp ? ((uint64_t)exp + 86400u) * 1000000000u : 0;
}

static void ask_stream(struct cluster_sess *s)
{
    char subj[128], body[640];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", s->stream);
    int n = snprintf(body, sizeof(body),
                     "{\"name\":\"%s\",\"subjects\":[\"%s.claim.>\"],\"retention\":\"limits\","
                     "\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":%" PRIu64
                     ",\"max_msgs_per_subject\":1,\"max_msg_size\":1024,\"discard\":\"new\","
                     "\"discard_new_per_subject\":true,\"storage\":\"file\",\"num_replicas\":%u,"
                     "\"duplicate_window\":60000000000,\"deny_delete\":true,\"deny_purge\":true,"
                     "\"allow_direct\":true}",
                     s->stream, s->prefix, claim_max_age_ns(s), cluster__replicas(s->o));
    s->asked = true;
    s->asked_at = sess__now(s);
    sess__request(s, subj, body, (size_t)n, 's', 0);
}

static void on_stream(struct cluster_sess *s, const struct jsreply *r, bool valid)
{
    s->asked = false;
    if (!valid || (r->has_error && r->err_code != JS_ERR_STREAM_EXISTS)) {
        log_warn("cluster: sessions: cannot create the stream %s (JetStream error %" PRIu64
                 "); retrying every %d ms, persistent sessions are refused meanwhile",
                 s->stream, valid ? r->err_code : 0, RETRY_MS);
        return;
    }
    if (!s->ready)
        log_notice("cluster: sessions owned through JetStream stream %s", s->stream);
    s->ready = true;
}

/* ---- claims ------------------------------------------------------------------------------ */

static void claim_free(struct cluster_sess *s, struct claim *c)
{
    HASH_DEL(s->by_ticket, c);
    struct claim *k;
    HASH_FIND(hk, s->by_key, c->key, strlen(c->key), k);
    if (k == c)
        HASH_DELETE(hk, s->by_key, c);
    s->nclaims--;
    free(c->identity);
    certattrs_free(c->attrs);
    free(c->succ_reply);
    for (size_t i = 0; i < c->nlive; i++)
        msg_unref(c->live[i].msg);
    free(c->live);
    free(c);
}

/* The CONNECT learns the outcome (once); the record stays for claimed() when granted. */
static void complete(struct cluster_sess *s, struct claim *c, bool ok)
{
    if (c->done)
        return;
    c->done = true;
    if (!ok)
        s->stats.claims_failed++;
    if (s->done)
        s->done(s->done_ctx, c->ticket, ok);
}

static void fail(struct cluster_sess *s, struct claim *c, const char *why)
{
    if (s->stats.claims_failed % LOG_EVERY == 0)
        log_warn("cluster: sessions: client %s (%s) refused: %s (%llu so far)", c->client_id,
                 c->identity, why, (unsigned long long)s->stats.claims_failed + 1);
    complete(s, c, false);
    claim_free(s, c);
}

static void ask_last(struct cluster_sess *s, struct claim *c)
{
    char subj[128], body[160];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", s->stream);
    int n = snprintf(body, sizeof(body), "{\"last_by_subj\":\"%s.claim.%s.*\"}", s->prefix, c->key);
    c->state = CL_LAST;
    if (!sess__request(s, subj, body, (size_t)n, 'l', c->ticket))
        fail(s, c, "NATS refused the request");
}

uint64_t cluster__sess_claim(struct cluster_sess *s, const char *identity, const char *client_id,
                             const struct certattrs *attrs, bool persistent, bool clean)
{
    if (s->stopped)
        return persistent ? BROKER_CLAIM_REFUSED : 0;
    if (!s->ready || !s->link->connected || s->nclaims >= MAX_CLAIMS) {
        /* Without JetStream nothing can be owned: a clean session is served here alone (it
         * loses nothing when another node has the same client id), a persistent one waits. */
        if (s->stats.unclaimed++ % LOG_EVERY == 0)
            log_warn("cluster: sessions: client %s (%s) not registered cluster-wide: %s (%llu "
                     "so far)%s",
                     client_id, identity,
                     s->nclaims >= MAX_CLAIMS ? "too many CONNECTs waiting"
                                              : "JetStream unreachable",
                     (unsigned long long)s->stats.unclaimed,
                     persistent ? "; persistent session refused" : "");
        return persistent ? BROKER_CLAIM_REFUSED : 0;
    }
    struct claim *c = xcalloc(1, sizeof(*c));
    c->ticket = cluster__ticket(s->link->c);
    c->persistent = persistent;
    c->clean = clean;
    cluster__id_pair(identity, client_id, &c->identity, &c->client_id);
    c->attrs = certattrs_dup(attrs);
    c->imp = (struct cluster_import){
        .b = s->b, .identity = c->identity, .client_id = c->client_id, .attrs = c->attrs};
    c->deadline = sess__now(s) + CLAIM_TIMEOUT_MS;
    cluster__session_key(identity, client_id, c->key);
    struct claim *older;
    HASH_FIND(hk, s->by_key, c->key, strlen(c->key), older);
    if (older) { /* the same device twice on this node: the newer CONNECT is the one to serve */
        HASH_DELETE(hk, s->by_key, older);
        older->superseded = true;
        if (older->state == CL_LAST)
            fail(s, older, "a newer connection with the same client id");
    }
    HASH_ADD(hh, s->by_ticket, ticket, sizeof(c->ticket), c);
    HASH_ADD(hk, s->by_key, key, strlen(c->key), c);
    s->nclaims++;
    s->stats.claims++;
    ask_last(s, c);
    return c->ticket;
}

static struct claim *find(struct cluster_sess *s, uint64_t ticket)
{
    struct claim *c;
    HASH_FIND(hh, s->by_ticket, &ticket, sizeof(ticket), c);
    return c;
}

static void ask_create(struct cluster_sess *s, struct claim *c, uint64_t last)
{
    char subj[160];
    c->epoch = last + 1;
    c->prev_epoch = last;
    c->state = CL_CREATE;
    snprintf(subj, sizeof(subj), "%s.claim.%s.%" PRIu64, s->prefix, c->key, c->epoch);
    if (!sess__request(s, subj, s->o->node, strlen(s->o->node), 'c', c->ticket))
        fail(s, c, "NATS refused the request");
}

int cluster__last_claim(natsMsg *nm, const char *prefix, const char *key, uint64_t *epoch,
                        char node[CLUSTER_NODE_MAX + 1])
{
    const char *status = NULL, *subj = NULL;
    if (natsMsgHeader_Get(nm, "Status", &status) == NATS_OK && status)
        return strcmp(status, "404") == 0 ? 0 : -1; /* 503: no stream (yet), 408: ... */
    const char *data = natsMsg_GetData(nm);
    int dlen = natsMsg_GetDataLength(nm);
    size_t pl = strlen(prefix) + strlen(".claim.") + 32 + 1;
    if (natsMsgHeader_Get(nm, "Nats-Subject", &subj) != NATS_OK || !subj || strlen(subj) <= pl ||
        strncmp(subj + strlen(prefix) + 7, key, 32) != 0 ||
        !subject_name_ok(data, (size_t)dlen, CLUSTER_NODE_MAX))
        return -1;
    char *end;
    uint64_t last = strtoull(subj + pl, &end, 10);
    if (*end || !last || last >= UINT64_MAX - 1)
        return -1;
    memcpy(node, data, (size_t)dlen);
    node[dlen] = '\0';
    *epoch = last;
    return 1;
}

/* The key's last claim: its epoch from the subject, its node from the data. */
static void on_last(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    uint64_t last = 0;
    int r = cluster__last_claim(nm, s->prefix, c->key, &last, c->prev);
    if (r < 0) {
        fail(s, c, "no valid answer from JetStream to the session lookup");
        return;
    }
    if (r == 0)
        c->prev[0] = '\0';
    ask_create(s, c, last);
}

/* The session being imported was replaced meanwhile (a newer claim or an adoption on this
 * node): the claim lets go of it. */
static bool imported_gone(struct cluster_sess *s, struct claim *c)
{
    if (!c->imp.imported || broker_find(s->b, c->identity, c->client_id) == c->imp.imported)
        return false;
    c->imp.imported = NULL;
    return true;
}

void sess__granted(struct cluster_sess *s, struct claim *c)
{
    imported_gone(s, c);
    c->state = CL_GRANTED;
    c->deadline = sess__now(s) + GRANTED_KEEP_MS;
    if (c->imp.imported) {
        /* What arrived here live while the second part was on its way comes after it. */
        for (size_t i = 0; i < c->nlive; i++) {
            session_enqueue(c->imp.imported, &c->live[i], false);
            msg_unref(c->live[i].msg);
        }
        c->nlive = 0;
        session_set_epoch(c->imp.imported, c->epoch);
        if (!c->from_record)
            s->stats.takeovers_in++;
        if (c->imp.replaying && s->replay) {
            log_info("cluster: client %s (%s): node %s had not finished reading back the "
                     "session's messages; they are read back here",
                     c->client_id, c->identity, c->prev);
            cluster__replay(s->replay, c->identity, c->client_id, c->imp.replay_since,
                            cluster__wall_ms());
        }
        log_info("cluster: client %s (%s): session taken over from node %s: %u subscription(s), "
                 "%u message(s)",
                 c->client_id, c->identity, c->prev, c->imp.subs, c->imp.msgs);
    }
    if (c->succ_reply) { /* a newer claim is waiting for what this one gathered */
        sess__serve_successor(s, c);
        c->superseded = true;
    }
    complete(s, c, !c->superseded);
}

static void on_create(struct cluster_sess *s, struct claim *c, const struct jsreply *r, bool valid)
{
    if (valid && !r->has_error && r->has_seq) {
        if (!c->prev[0])
            sess__granted(s, c); /* new */
        else if (strcmp(c->prev, s->o->node))
            sess__ask_prev(s, c);
        else if (c->clean || broker_find(s->b, c->identity, c->client_id))
            sess__granted(s, c); /* ours: broker_attach takes the local session over */
        else /* ours, but not here: ended, or this node restarted, or a claim of ours failed */
            sess__verify(s, c);
        return;
    }
    if (valid && r->has_error && ++c->attempts < CLAIM_ATTEMPTS) {
        s->stats.claim_races++;
        ask_last(s, c); /* another node made that epoch first: the next one */
        return;
    }
    fail(s, c,
         valid && r->has_error ? "another connection kept claiming the session"
                               : "no valid acknowledgement from JetStream");
}

/* ---- handover: receiving ----------------------------------------------------------------- */

/* A live delivery that reached the imported session before the old owner's queue. */
static void stash(void *ctx, const struct session_delivery *d)
{
    struct claim *c = ctx;
    if (c->nlive == c->live_cap) {
        c->live_cap = c->live_cap ? c->live_cap * 2 : 16;
        c->live = xrealloc(c->live, c->live_cap * sizeof(*c->live));
    }
    c->live[c->nlive] = *d;
    msg_ref(d->msg);
    c->nlive++;
}

int sess__import(struct cluster_sess *s, struct claim *c, const uint8_t *p, size_t n,
                 uint32_t *index, uint8_t *flags)
{
    c->imp.now = (int64_t)sess__now(s);
    if (handover_decode(p, n, &cluster__importer, &c->imp, index, flags) == 0)
        return 0;
    s->stats.handover_bad++;
    return -1;
}

static void on_chunk(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    if (c->state != CL_TAKE)
        return;
    if (imported_gone(s, c)) { /* what a newer claim or an adoption put here is kept */
        sess__granted(s, c);
        return;
    }
    if (natsMsg_IsNoResponders(nm)) { /* the previous owner is gone */
        log_info("cluster: client %s (%s): node %s holds no connection to NATS; the session is "
                 "rebuilt from its record",
                 c->client_id, c->identity, c->prev);
        sess__ask_record(s, c);
        return;
    }
    uint32_t index;
    uint8_t flags;
    if (c->finishing && c->imp.imported && !c->nlive && session_queued(c->imp.imported))
        session_take_queue(c->imp.imported, stash, c);
    int bad = sess__import(s, c, (const uint8_t *)natsMsg_GetData(nm),
                           (size_t)natsMsg_GetDataLength(nm), &index, &flags);
    if (bad || index != c->next_chunk) {
        if (!bad)
            s->stats.handover_bad++;
        log_warn("cluster: client %s (%s): session from node %s incomplete (a malformed or "
                 "missing part); what arrived is kept",
                 c->client_id, c->identity, c->prev);
        sess__granted(s, c);
        return;
    }
    c->next_chunk++;
    if (flags & HANDOVER_LAST && index == 0 && !c->imp.imported && !c->clean) {
        sess__verify(s, c); /* prev has no session: did it ever have this one? */
    } else if (flags & HANDOVER_LAST) {
        sess__granted(s, c);
    } else if (flags & HANDOVER_PART) {
        /* The subscriptions are in: this node's interest is on its NATS connection ahead of
         * the finish request, so the old owner lets go only after it. */
        c->finishing = true;
        sess__send_take(s, c, 'F', c->next_chunk);
    }
}

void cluster__sess_claimed(struct cluster_sess *s, struct session *ss, uint64_t ticket)
{
    struct claim *c = find(s, ticket);
    if (!c)
        return;
    if (ss) {
        session_set_epoch(ss, c->epoch);
        if (c->superseded) { /* the session went on to a newer claimer meanwhile */
            broker_release(s->b, ss, (int64_t)sess__now(s));
            if (!cluster__give_leaving(s->give, c->key))
                broker_discard(s->b, ss);
        }
    }
    claim_free(s, c);
}

/* ---- replies, time, life ----------------------------------------------------------------- */

static void on_reply(struct cluster_sess *s, natsMsg *nm)
{
    char kind;
    uint64_t t;
    if (!cluster__reply_of(natsMsg_GetSubject(nm), s->inbox, &kind, &t))
        return;
    struct jsreply r;
    bool valid;
    if (kind == 's') {
        valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &r) == 0;
        on_stream(s, &r, valid);
        return;
    }
    struct claim *c = find(s, t);
    if (!c)
        return; /* timed out or refused before */
    if (kind == 'l' && c->state == CL_LAST) {
        on_last(s, c, nm);
    } else if (kind == 'c' && c->state == CL_CREATE) {
        valid = jsreply_parse(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), &r) == 0;
        on_create(s, c, &r, valid);
    } else if (kind == 't') {
        on_chunk(s, c, nm);
    } else if (kind == 'r' && c->state == CL_REC) {
        sess__on_record(s, c, nm);
    } else if (kind == 'b' && c->state == CL_BEAT) {
        sess__on_beat(s, c, nm);
    } else if (kind == 'w' && c->state == CL_WALK) {
        sess__on_walk(s, c, nm);
    }
}

void cluster__sess_drain(struct cluster_sess *s, size_t *budget)
{
    natsMsg *nm;
    while (*budget && s->replies && natsSubscription_NextMsg(&nm, s->replies, 0) == NATS_OK) {
        on_reply(s, nm);
        natsMsg_Destroy(nm);
        (*budget)--;
    }
    while (*budget && s->takes && natsSubscription_NextMsg(&nm, s->takes, 0) == NATS_OK) {
        if (sess__on_take(s, nm, true))
            natsMsg_Destroy(nm);
        (*budget)--;
    }
    if (s->ndeferred)
        sess__serve_deferred(s);
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_sess *s = h->data;
    uint64_t now = sess__now(s);
    if (!s->ready && s->link->connected && (!s->asked || now - s->asked_at >= RETRY_MS))
        ask_stream(s);
    cluster__give_sweep(s->give, (int64_t)now);
    struct claim *c, *tmp;
    HASH_ITER(hh, s->by_ticket, c, tmp)
    {
        if (now < c->deadline)
            continue;
        if (c->state == CL_TAKE) {
            s->stats.handover_timeouts++;
            log_warn("cluster: client %s (%s): node %s did not hand the session over within %d "
                     "ms; %s",
                     c->client_id, c->identity, c->prev, TAKE_TIMEOUT_MS,
                     c->next_chunk ? "what arrived is kept, its messages are read back"
                                   : "the session is rebuilt from its record");
            c->partial = c->next_chunk > 0;
            sess__ask_record(s, c);
        } else if (c->state == CL_REC || c->state == CL_BEAT || c->state == CL_WALK) {
            log_warn("cluster: client %s (%s): JetStream did not answer for the session's record; "
                     "%s",
                     c->client_id, c->identity,
                     c->imp.imported ? "its messages are not read back"
                                     : "a new session starts here");
            sess__granted(s, c);
        } else if (c->state == CL_GRANTED) {
            claim_free(s, c); /* its client went away before attaching */
        } else {
            fail(s, c, "JetStream did not answer in time");
        }
    }
}

struct cluster_sess *cluster__sess_new(uv_loop_t *loop, struct broker *b,
                                       const struct cluster_opts *o, struct cluster_link *link)
{
    struct cluster_sess *s = xcalloc(1, sizeof(*s));
    s->b = b;
    s->o = o;
    s->loop = loop;
    s->link = link;
    snprintf(s->stream, sizeof(s->stream), "CMQ_SESS_%s", o->name);
    snprintf(s->prefix, sizeof(s->prefix), "cmq.%s", o->name);
    snprintf(s->take_subj, sizeof(s->take_subj), "%s.take.%s", s->prefix, o->node);
    snprintf(s->rec_stream, sizeof(s->rec_stream), "CMQ_REC_%s", o->name);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->give = cluster__give_new(loop, b, link, o->node);
    return s;
}

void cluster__sess_set_replay(struct cluster_sess *s, struct cluster_replay *r)
{
    s->replay = r;
}

const char *cluster__sess_stream(const struct cluster_sess *s)
{
    return s->stream;
}

void cluster__sess_set_done(struct cluster_sess *s,
                            void (*done)(void *ctx, uint64_t ticket, bool ok), void *ctx)
{
    s->done = done;
    s->done_ctx = ctx;
}

void cluster__sess_link(struct cluster_sess *s, bool up)
{
    if (s->stopped || !up)
        return; /* claims under way time out; nats.c resends subscriptions on reconnection */
    if (!s->inbox) {
        natsStatus st = cluster__reply_inbox(s->link, &s->inbox, &s->replies);
        if (st == NATS_OK)
            st = natsConnection_SubscribeSync(&s->takes, s->link->nc, s->take_subj);
        if (st != NATS_OK) {
            log_err("cluster: sessions: cannot subscribe on NATS: %s (persistent sessions are "
                    "refused)",
                    natsStatus_GetText(st));
            return;
        }
        uv_timer_start(&s->timer, on_timer, TIMER_MS, TIMER_MS);
    }
    ask_stream(s);
}

bool cluster__sess_ready(const struct cluster_sess *s)
{
    return s->ready;
}

const struct cluster_sess_stats *cluster__sess_stats(struct cluster_sess *s)
{
    s->stats.takeovers_out = cluster__give_count(s->give);
    return &s->stats;
}

void cluster__sess_stop(struct cluster_sess *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    struct claim *c, *tmp;
    HASH_ITER(hh, s->by_ticket, c, tmp)
    {
        complete(s, c, false);
        claim_free(s, c);
    }
    while (s->ndeferred)
        natsMsg_Destroy(s->deferred[--s->ndeferred]);
    natsSubscription_Destroy(s->replies);
    natsSubscription_Destroy(s->takes);
    s->replies = s->takes = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, NULL);
    cluster__give_stop(s->give);
}

void cluster__sess_free(struct cluster_sess *s)
{
    if (!s)
        return;
    natsInbox_Destroy(s->inbox);
    cluster__give_free(s->give);
    free(s);
}
