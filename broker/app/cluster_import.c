/* cluster_import: a session arriving from elsewhere in the cluster — handed over by its previous
 * owner (cluster_sess.c) or rebuilt from a dead owner's record (cluster_rec.c) — built here
 * from the handover records (handover.h). Inherited subscriptions are re-checked against this
 * node's ACL for the device. */
#include "cluster_int.h"

#include "handover.h"
#include "log.h"
#include "sessrec.h"
#include "utf8.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static void imp_header(void *ctx, uint8_t version, bool persistent, uint32_t expiry_s)
{
    struct cluster_import *x = ctx;
    x->imported = broker_import(x->b, x->identity, x->client_id, x->attrs, persistent, expiry_s,
                                version, x->now);
}

static void imp_sub(void *ctx, const char *filter, size_t len, uint8_t options, uint32_t sub_id)
{
    struct cluster_import *x = ctx;
    if (!x->imported)
        return;
    char *f = xstrndup(filter, len);
    x->subs++;
    if (!broker_import_sub(x->b, x->imported, f, len, options, sub_id))
        log_notice("cluster: client %s (%s): subscription %s not taken over: this node's ACL "
                   "does not allow it",
                   x->client_id, x->identity, f);
    free(f);
}

static void imp_delivery(void *ctx, const struct handover_delivery *d)
{
    struct cluster_import *x = ctx;
    if (!x->imported)
        return;
    struct session_delivery sd = {.qos = d->qos, .retain = d->retain, .n_sub_ids = d->n_sub_ids};
    memcpy(sd.sub_ids, d->sub_ids, sizeof(sd.sub_ids));
    struct msg *m = NULL;
    if (!d->released) {
        if (!broker_topic_ok(x->b, d->topic, d->topic_len))
            return;
        struct mqtt_publish pub;
        envelope_publish(&d->env, d->topic, d->topic_len, &pub);
        int64_t exp = 0;
        if (d->env.has_expiry)
            exp =
                x->now + (int64_t)(d->env.expiry_ms < UINT32_MAX * 1000ull ? d->env.expiry_ms
                                                                           : UINT32_MAX * 1000ull);
        m = msg_new(d->topic, d->topic_len, &pub, exp, broker_next_msg_id(x->b));
    }
    sd.msg = m;
    x->msgs++;
    session_import(x->imported, &sd, d->id, d->released);
    msg_unref(m);
}

static void imp_qos2(void *ctx, uint16_t id)
{
    struct cluster_import *x = ctx;
    if (x->imported)
        session_qos2_in_add(x->imported, id);
}

static void imp_replay(void *ctx, int64_t since_ms)
{
    struct cluster_import *x = ctx;
    x->replaying = true;
    x->replay_since = since_ms;
}

const struct handover_visitor cluster__importer = {imp_header, imp_sub, imp_delivery, imp_qos2,
                                                   imp_replay};

bool cluster__dead_will(struct broker *b, struct session *s, const struct sessrec *r, int64_t now)
{
    struct envelope e;
    if (!r->has_will || !(r->flags & SESSREC_ONLINE))
        return false; /* none, or its device had left: nothing was owed */
    if (!broker_topic_ok(b, r->will_topic, r->will_topic_len) ||
        !utf8_valid((const uint8_t *)r->will_topic, r->will_topic_len, false) ||
        envelope_decode(r->will_env, r->will_env_len, &e) != 0) {
        log_warn("cluster: client %s (%s): the will in its record is not valid: not published",
                 session_client_id(s), session_identity(s));
        return false;
    }
    struct mqtt_publish pub;
    envelope_publish(&e, r->will_topic, r->will_topic_len, &pub);
    int64_t exp = 0;
    if (e.has_expiry)
        exp = now +
              (int64_t)(e.expiry_ms < UINT32_MAX * 1000ull ? e.expiry_ms : UINT32_MAX * 1000ull);
    struct msg *m = msg_new(r->will_topic, r->will_topic_len, &pub, exp, broker_next_msg_id(b));
    if (r->will_delay_s && session_persistent(s)) { /* as if its connection had just ended */
        session_set_will(s, m);
        session_set_will_delay(s, r->will_delay_s);
        session_set_will_at(s, now + (int64_t)r->will_delay_s * 1000);
    } else {
        log_notice("cluster: client %s (%s): its node %.*s died: its will is published on %.*s",
                   session_client_id(s), session_identity(s), (int)r->node_len, r->node,
                   (int)r->will_topic_len, r->will_topic);
        broker_publish(b, s, m, now);
    }
    msg_unref(m);
    return true;
}
