/* cluster_sess_rec: the previous owner of a session did not answer (it died, or is cut off):
 * the session is rebuilt from the record it kept in JetStream (cluster_rec.c, sessrec.h) — its
 * subscriptions, its will — and what it was owed is read back from the message stream
 * (cluster_replay.c), from the later of the record's bound and the dead node's last checkpoint. */
#include "cluster_sess_int.h"

#include "log.h"
#include "sessrec.h"

#include <inttypes.h>
#include <string.h>

/* ---- a dead previous owner: the session from its record ---------------------------------- */

static void ask_direct(struct cluster_sess *s, struct claim *c, enum claim_state st, char kind,
                       const char *what)
{
    char subj[128], body[256];
    snprintf(subj, sizeof(subj), "$JS.API.DIRECT.GET.%s", s->rec_stream);
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
    if (c->epoch < 2) {
        sess__granted(s, c);
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
    sess__granted(s, c);
}

void sess__on_record(struct cluster_sess *s, struct claim *c, natsMsg *nm)
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
        sess__granted(s, c);
        return;
    }
    c->imp.now = (int64_t)sess__now(s);
    uint32_t index;
    uint8_t flags;
    if (handover_decode(r.chunk, r.chunk_len, &cluster__importer, &c->imp, &index, &flags) != 0) {
        s->stats.handover_bad++;
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

void sess__on_beat(struct cluster_sess *s, struct claim *c, natsMsg *nm)
{
    int64_t started, ckpt;
    if (sessrec_beat_decode((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                            &started, &ckpt) == 0 &&
        ckpt > c->since)
        c->since = ckpt;
    recover(s, c, c->since);
}
