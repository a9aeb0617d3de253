/* client_connect: CONNECT handled (decision, cluster claim, session, will, CONNACK) and refused.
 * connect.c decides what a CONNECT asks for; this file makes it happen on the connection. */
#include "client_int.h"

#include "connect.h"
#include "log.h"
#include "reason.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static void connack(struct client *c, bool present, uint8_t rc, const struct mqtt_props *pr)
{
    struct mqtt_packet p = {0};
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = present;
    p.u.connack.rc = rc;
    if (pr)
        p.u.connack.props = *pr;
    client__send(c, &p);
}

void client__refuse(struct client *c, enum reason r)
{
    const struct reason_info *ri = reason_info(r);
    const char *why = ri->text;
    log_notice("client %s from %s (%s) refused: %s", client__id(c), conn_addr(c->conn),
               conn_peer(c->conn)->identity, why);
    struct mqtt_props pr = {0};
    if (c->version == MQTT_V5)
        client__reason_string(c, &pr, why);
    connack(c, false, c->version == MQTT_V5 ? ri->v5 : ri->v3, &pr);
    if (buf_size(&c->out)) {
        conn_write(c->conn, buf_head(&c->out), buf_size(&c->out));
        buf_consume(&c->out, buf_size(&c->out));
    }
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static struct msg *make_will(struct client *c, const struct mqtt_connect *k)
{
    struct mqtt_publish w = {0};
    w.qos = k->will_qos;
    w.retain = k->will_retain;
    w.topic = k->will_topic;
    w.payload = k->will_payload;
    w.payload_len = k->will_payload_len;
    w.props = k->will_props;
    int64_t exp = 0;
    if (k->will_props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
        exp = client__now(c) + (int64_t)k->will_props.message_expiry * 1000;
    return msg_new((const char *)k->will_topic.p, k->will_topic.len, &w, exp,
                   broker_next_msg_id(c->env->broker));
}

/* Give the session its will, unless the ACL forbids it: then the connection is refused (after
 * the attach, since the ACL is compiled for the session) and false returned. */
static bool set_will(struct client *c, const struct mqtt_connect *k)
{
    struct client_env *e = c->env;
    struct session *s = c->session;
    if (!broker_may_publish(e->broker, s, (const char *)k->will_topic.p, k->will_topic.len)) {
        broker_detach(e->broker, s, false, client__now(c));
        c->session = NULL;
        client__refuse(c, REASON_WILL_DENIED);
        return false;
    }
    struct msg *w = make_will(c, k);
    session_set_will(s, w);
    msg_unref(w);
    if (k->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY))
        session_set_will_delay(s, k->will_props.will_delay);
    broker_changed(e->broker, s);
    return true;
}

static bool topic_ok(const void *broker, const char *t, size_t len)
{
    return broker_topic_ok(broker, t, len);
}

_Static_assert(TLS_CERT_KEY_LEN == BROKER_CERT_KEY_LEN, "one certificate key for tls and broker");

/* The session knows the certificate it was last used with (its revocation discards it). */
static void session_cert(struct client *c)
{
    const struct tls_peer *p = conn_peer(c->conn);
    uint8_t key[TLS_CERT_KEY_LEN];
    if (p->chain_len)
        tls_cert_id_key(&p->chain[0], key);
    broker_session_cert(c->env->broker, c->session, p->chain_len ? key : NULL);
}

/* CONNECT in a cluster: may this node have the session? true to go on now; false when the
 * CONNECT was refused or waits for the claim (handled again when it completes). */
static bool claim_session(struct client *c, const char *identity, bool persistent, bool clean)
{
    struct client_env *e = c->env;
    if (c->claim_granted == 0) {
        uint64_t t = broker_claim(e->broker, identity, c->client_id, conn_peer(c->conn)->attrs,
                                  persistent, clean);
        if (t == 0)
            return true;
        if (t != BROKER_CLAIM_REFUSED) {
            c->claim = t;
            client__wait_connect(c, t);
            return false;
        }
        c->claim_granted = -1;
    }
    if (c->claim_granted < 0) {
        broker_claimed(e->broker, NULL, c->claim);
        client__refuse(c, REASON_CLUSTER_CLAIM);
        return false;
    }
    return true;
}

/* CONNECT: connect_decide says what; here it happens (CONNACK, session, will, timers). */
void client__handle_connect(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_connect *k = &p->u.connect;
    struct client_env *e = c->env;
    const char *identity = conn_peer(c->conn)->identity;
    char auto_id[sizeof("auto-") + 16]; /* "auto-" and 16 hex digits of a uint64_t */
    snprintf(auto_id, sizeof(auto_id), "auto-%016" PRIx64, e->next_auto_id);
    struct connect_request req = {.lim = &e->o.connect,
                                  .identity = identity,
                                  .k = k,
                                  .auto_id = auto_id,
                                  .topic_ok = topic_ok,
                                  .topic_ctx = e->broker};
    struct connect_result d;
    enum reason r = connect_decide(&req, &d);
    c->version = k->version;
    c->no_problem_info = d.no_problem_info;
    if (d.assign_id)
        e->next_auto_id++;
    if (d.client_id.p) {    /* stops at a NUL, which is then refused: the log shows what it can */
        free(c->client_id); /* handled again after a cluster claim */
        c->client_id = xstrndup((const char *)d.client_id.p, d.client_id.len);
    }
    if (r != REASON_NONE) {
        if (reason_info(r)->v3)
            client__refuse(c, r);
        else
            client__protocol_error(c, r);
        return;
    }
    if (client__memory_refused(c, "CONNECT")) {
        client__refuse(c, REASON_MEMORY);
        return;
    }
    c->keepalive = d.keepalive;
    c->peer_max_packet = d.peer_max_packet;
    c->out_alias_max = d.out_alias_max;
    if (!broker_connection_ok(e->broker, identity, conn_peer(c->conn)->attrs, c->client_id)) {
        client__refuse(c, REASON_IDENTITY_CONNECTIONS);
        return;
    }
    /* Assigned ids are unique to this node's connection: nothing to claim. */
    if (!d.assign_id && !claim_session(c, identity, d.persistent, k->clean))
        return;
    bool present;
    c->session = broker_attach(e->broker, identity, conn_peer(c->conn)->attrs, c->client_id, c,
                               conn_addr(c->conn), k->clean, d.persistent, d.expiry_s, c->version,
                               &present, client__now(c));
    broker_claimed(e->broker, c->session, c->claim);
    if (!c->session) {
        client__refuse(c, REASON_SESSION_QUOTA);
        return;
    }
    session_cert(c);
    session_set_window(c->session, d.receive_window);
    if (k->will && !set_will(c, k))
        return;
    c->state = CS_CONNECTED;
    connack(c, present && !k->clean, MQTT_RC_SUCCESS, &d.connack);
    if (e->o.connection_messages)
        log_notice("client %s connected from %s as %s (p%u, c%d, k%u%s)", c->client_id,
                   conn_addr(c->conn), identity, c->version, k->clean, d.keepalive,
                   present ? ", session resumed" : "");
    client__arm_deadlines(c);
    conn_want_write(c->conn);
}
