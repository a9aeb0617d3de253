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
 * answer within TAKE_TIMEOUT_MS (dead, cut off) is passed over: the device gets a new session
 * (issue #16 is to recover it from JetStream). Nothing here blocks: every JetStream operation
 * is a publish whose reply arrives on the inbox subscription, drained with the rest. */
#include "cluster_int.h"

#include "certattr.h"
#include "handover.h"
#include "jsreply.h"
#include "log.h"
#include "mbedx.h"
#include "sessrec.h"
#include "utf8.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* CONNECTs waiting for a claim at once; more are refused (server unavailable). */
#define MAX_CLAIMS 4096
/* Claim races lost in a row before the CONNECT is refused. */
#define CLAIM_ATTEMPTS 3
/* Reading and creating the claim (a JetStream leader election takes ~7 s on 2.9.10; a device
 * should not wait longer than its own connect timeout would let it). */
#define CLAIM_TIMEOUT_MS 5000
/* The previous owner's handover, once asked. */
#define TAKE_TIMEOUT_MS 2000
/* A takeover request waits for a replay under way here at most this long (below the asker's
 * TAKE_TIMEOUT_MS: a late answer is no answer). */
#define DEFER_MS 1500
#define DEFER_MAX 64
/* A granted claim waits this long for its CONNECT to attach (the client may have gone). */
#define GRANTED_KEEP_MS 10000
#define TIMER_MS 100
#define RETRY_MS 2000
#define LOG_EVERY 1000
#define JS_ERR_STREAM_EXISTS 10058
/* Room left in a NATS message for the subject, reply and headers of a handover chunk. */
#define CHUNK_MARGIN 4096

enum claim_state {
    CL_LAST,    /* asked for the key's last claim */
    CL_CREATE,  /* creating epoch */
    CL_TAKE,    /* asked prev for the session */
    CL_REC,     /* prev is gone: asked for its record of the session */
    CL_BEAT,    /* ...and for its last heartbeat (the record says a device was connected) */
    CL_GRANTED, /* this node owns epoch; waiting for the CONNECT to attach */
};

struct claim {
    uint64_t ticket;
    enum claim_state state;
    uint64_t epoch; /* the one tried or won; 0 before the create */
    uint64_t deadline;
    int attempts;
    bool persistent, clean;
    bool finishing; /* the second part was asked for: live messages wait in `live` */
    struct session_delivery *live;
    size_t nlive, live_cap;
    int64_t since;                   /* CL_BEAT: the record's bound of what the session is owed */
    bool from_record;                /* rebuilt from the dead previous owner's record */
    bool superseded;                 /* a newer claim asked for the session: the CONNECT loses */
    bool done;                       /* the CONNECT's ticket has completed */
    char key[33];                    /* H */
    char prev[CLUSTER_NODE_MAX + 1]; /* the last epoch's node, "" when none */
    char *identity, *client_id;
    struct certattrs *attrs;
    /* the handover being received */
    uint32_t next_chunk;
    struct cluster_import imp;
    /* a newer claimer's request that came while this claim was under way */
    char *succ_reply;
    uint64_t succ_epoch;
    UT_hash_handle hh; /* by ticket */
    UT_hash_handle hk; /* by key: the newest claim of the key on this node */
};

struct cluster_sess {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    uv_loop_t *loop;
    uv_timer_t timer;
    void (*done)(void *ctx, uint64_t ticket, bool ok);
    void *done_ctx;
    char stream[72], prefix[64], take_subj[128];
    char *inbox;
    natsSubscription *replies, *takes;
    bool ready, asked, stopped;
    uint64_t asked_at;
    struct claim *by_ticket, *by_key;
    struct cluster_give *give;
    struct cluster_replay *replay;
    char rec_stream[72];
    /* takeover requests for sessions still replaying here: answered when the replay is done */
    natsMsg *deferred[DEFER_MAX];
    uint64_t deferred_at[DEFER_MAX];
    size_t ndeferred;
    size_t nclaims;
    struct cluster_sess_stats stats;
};

static uint64_t now_ms(const struct cluster_sess *s)
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

static bool request(struct cluster_sess *s, const char *subj, const void *body, size_t len,
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
    s->asked_at = now_ms(s);
    request(s, subj, body, (size_t)n, 's', 0);
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
    if (!request(s, subj, body, (size_t)n, 'l', c->ticket))
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
    c->deadline = now_ms(s) + CLAIM_TIMEOUT_MS;
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
    c->state = CL_CREATE;
    snprintf(subj, sizeof(subj), "%s.claim.%s.%" PRIu64, s->prefix, c->key, c->epoch);
    if (!request(s, subj, s->o->node, strlen(s->o->node), 'c', c->ticket))
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
        !cluster_name_ok(data, (size_t)dlen, CLUSTER_NODE_MAX))
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

static void serve_successor(struct cluster_sess *s, struct claim *c);
static void send_take(struct cluster_sess *s, struct claim *c, char op, uint32_t index);
static void ask_record(struct cluster_sess *s, struct claim *c);

static void granted(struct cluster_sess *s, struct claim *c)
{
    c->state = CL_GRANTED;
    c->deadline = now_ms(s) + GRANTED_KEEP_MS;
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
        log_info("cluster: client %s (%s): session taken over from node %s: %u subscription(s), "
                 "%u message(s)",
                 c->client_id, c->identity, c->prev, c->imp.subs, c->imp.msgs);
    }
    if (c->succ_reply) { /* a newer claim is waiting for what this one gathered */
        serve_successor(s, c);
        c->superseded = true;
    }
    complete(s, c, !c->superseded);
}

static void on_create(struct cluster_sess *s, struct claim *c, const struct jsreply *r, bool valid)
{
    if (valid && !r->has_error && r->has_seq) {
        if (!c->prev[0] || !strcmp(c->prev, s->o->node))
            granted(s, c); /* new, or ours: broker_attach takes a local session over */
        else {             /* a clean start needs nothing but the old connection's end */
            c->state = CL_TAKE;
            send_take(s, c, c->clean ? 'K' : 'T', 0);
        }
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

static void on_chunk(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    if (c->state != CL_TAKE)
        return;
    if (natsMsg_IsNoResponders(nm)) { /* the previous owner is gone */
        log_info("cluster: client %s (%s): node %s holds no connection to NATS; the session is "
                 "rebuilt from its record",
                 c->client_id, c->identity, c->prev);
        ask_record(s, c);
        return;
    }
    c->imp.now = (int64_t)now_ms(s);
    uint32_t index;
    uint8_t flags;
    if (c->finishing && c->imp.imported && !c->nlive && session_queued(c->imp.imported))
        session_take_queue(c->imp.imported, stash, c);
    if (handover_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                        &cluster__importer, &c->imp, &index, &flags) != 0 ||
        index != c->next_chunk) {
        s->stats.handover_bad++;
        log_warn("cluster: client %s (%s): session from node %s incomplete (a malformed or "
                 "missing part); what arrived is kept",
                 c->client_id, c->identity, c->prev);
        granted(s, c);
        return;
    }
    c->next_chunk++;
    if (flags & HANDOVER_LAST) {
        granted(s, c);
    } else if (flags & HANDOVER_PART) {
        /* The subscriptions are in: this node's interest is on its NATS connection ahead of
         * the finish request, so the old owner lets go only after it. */
        c->finishing = true;
        send_take(s, c, 'F', c->next_chunk);
    }
}

/* ---- a dead previous owner: the session from its record ---------------------------------- */

static void ask_direct(struct cluster_sess *s, struct claim *c, enum claim_state st, char kind,
                       const char *what)
{
    char subj[128], body[256];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", s->rec_stream);
    int n = snprintf(body, sizeof(body), "{\"last_by_subj\":\"%s\"}", what);
    c->state = st;
    c->deadline = now_ms(s) + CLAIM_TIMEOUT_MS;
    if (!request(s, subj, body, (size_t)n, kind, c->ticket))
        granted(s, c);
}

/* The previous owner did not answer: its record of the session (the epoch before ours). A clean
 * start wants nothing of it. */
static void ask_record(struct cluster_sess *s, struct claim *c)
{
    if (c->epoch < 2) {
        granted(s, c);
        return;
    }
    char what[160];
    snprintf(what, sizeof(what), "%s.rec.%s.%" PRIu64, s->prefix, c->key, c->epoch - 1);
    ask_direct(s, c, CL_REC, 'r', what);
}

/* Rebuild the session from the record and read back from the stream what it is owed since
 * since. */
static void recover(struct cluster_sess *s, struct claim *c, int64_t since)
{
    if (c->imp.imported) {
        cluster__recovered(s->link->c, c->identity, c->client_id, since, c->prev);
        c->from_record = true;
    }
    granted(s, c);
}

static void on_record(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    struct sessrec r;
    const char *status = NULL;
    bool found = !(natsMsgHeader_Get(nm, "Status", &status) == NATS_OK && status);
    if (found && (sessrec_decode((const uint8_t *)natsMsg_GetData(nm),
                                 (size_t)natsMsg_GetDataLength(nm), &r) != 0 ||
                  r.epoch != c->epoch - 1 || r.identity_len != strlen(c->identity) ||
                  memcmp(r.identity, c->identity, r.identity_len) ||
                  r.client_id_len != strlen(c->client_id) ||
                  memcmp(r.client_id, c->client_id, r.client_id_len))) {
        s->stats.handover_bad++;
        found = false;
    }
    if (!found || (r.flags & SESSREC_GONE) || !r.chunk) {
        log_info("cluster: client %s (%s): no record of the session at node %s; a new session "
                 "starts here",
                 c->client_id, c->identity, c->prev);
        granted(s, c);
        return;
    }
    c->imp.now = (int64_t)now_ms(s);
    uint32_t index;
    uint8_t flags;
    if (handover_decode(r.chunk, r.chunk_len, &cluster__importer, &c->imp, &index, &flags) != 0) {
        s->stats.handover_bad++;
        granted(s, c);
        return;
    }
    /* The device is back: a will with a delay is not owed (it reconnected in time). */
    if (c->imp.imported && s->o->dead_wills && !r.will_delay_s)
        cluster__dead_will(s->b, c->imp.imported, &r, c->imp.now);
    if (c->clean) { /* only the will was wanted: attaching drops the rest */
        granted(s, c);
        return;
    }
    if (!(r.flags & SESSREC_ONLINE)) {
        recover(s, c, r.since_ms);
        return;
    }
    /* A device was connected: the owner's last heartbeat may bound the replay closer. */
    c->since = r.since_ms;
    char what[160];
    snprintf(what, sizeof(what), "%s.node.%s", s->prefix, c->prev);
    ask_direct(s, c, CL_BEAT, 'b', what);
}

static void on_beat(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    int64_t started, ckpt;
    if (sessrec_beat_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &started, &ckpt) == 0 &&
        ckpt > c->since)
        c->since = ckpt;
    recover(s, c, c->since);
}

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

static void send_take(struct cluster_sess *s, struct claim *c, char op, uint32_t index)
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
    c->deadline = now_ms(s) + TAKE_TIMEOUT_MS;
    bool ok = request(s, subj, body, (size_t)(o - body), 't', c->ticket);
    free(body);
    if (!ok)
        granted(s, c); /* as if the owner were gone */
}

static void serve_successor(struct cluster_sess *s, struct claim *c)
{
    struct session *ss = broker_find(s->b, c->identity, c->client_id);
    cluster__give_begin(s->give, ss, c->key, c->succ_epoch, c->succ_reply, (int64_t)now_ms(s));
    c->imp.imported = NULL;
    free(c->succ_reply);
    c->succ_reply = NULL;
}

/* false when nm was kept to be answered later (a replay for its session is under way here:
 * what the replay still brings would not go along). */
static bool on_take(struct cluster_sess *s, natsMsg *nm, bool may_defer)
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
        s->deferred_at[s->ndeferred++] = now_ms(s);
        free(t.id);
        free(t.cid);
        return false;
    }
    int64_t now = (int64_t)now_ms(s);
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
            cluster__give_begin(s->give, NULL, key, 0, c->succ_reply, now);
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
    cluster__give_begin(s->give, ss, key, t.epoch, reply, now);
out:
    free(t.id);
    free(t.cid);
    return true;
}

/* Deferred takeover requests whose replay is done, or that waited long enough. */
static void serve_deferred(struct cluster_sess *s)
{
    uint64_t now = now_ms(s);
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
        on_take(s, nm, false);
        natsMsg_Destroy(nm);
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
            broker_release(s->b, ss, (int64_t)now_ms(s));
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
        on_record(s, c, nm);
    } else if (kind == 'b' && c->state == CL_BEAT) {
        on_beat(s, c, nm);
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
        if (on_take(s, nm, true))
            natsMsg_Destroy(nm);
        (*budget)--;
    }
    if (s->ndeferred)
        serve_deferred(s);
}

static void on_timer(uv_timer_t *h)
{
    struct cluster_sess *s = h->data;
    uint64_t now = now_ms(s);
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
                     c->next_chunk ? "what arrived is kept"
                                   : "the session is rebuilt from its record");
            if (c->next_chunk)
                granted(s, c);
            else
                ask_record(s, c);
        } else if (c->state == CL_REC || c->state == CL_BEAT) {
            log_warn("cluster: client %s (%s): JetStream did not answer for the session's record; "
                     "%s",
                     c->client_id, c->identity,
                     c->imp.imported ? "its messages are not read back"
                                     : "a new session starts here");
            granted(s, c);
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
