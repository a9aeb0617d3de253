/* client: the MQTT protocol for one connection.
 *
 * Input: bytes are decoded straight from the read buffer when they hold whole packets; only a
 * trailing partial packet is copied (bounded by max_packet_size, which the codec enforces as
 * soon as the length is known). Handlers get validated structs from codec_decode.
 * Output: control packets go to a small per-client buffer; publishes stay in the session until
 * the write slot, where they are encoded into the environment's scratch buffer. A client is
 * freed only in on_close, after conn has unwound. */
#include "client_int.h"

#include "codec.h"
#include "log.h"
#include "topic.h"
#include "xmalloc.h"

#include <uthash.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client_env *client_env_new(uv_loop_t *loop, struct broker *b, const struct client_opts *o)
{
    struct client_env *e = xcalloc(1, sizeof(*e));
    e->loop = loop;
    e->broker = b;
    e->o = *o;
    e->next_auto_id = (uint64_t)uv_hrtime();
    broker_set_client_ops(b, &client__broker_ops);
    return e;
}

void client_env_free(struct client_env *e)
{
    free(e);
}

void client_env_set_opts(struct client_env *e, const struct client_opts *o)
{
    e->o = *o;
}

size_t client_count(const struct client_env *e)
{
    return e->count;
}

int64_t client__now(const struct client *c)
{
    return (int64_t)uv_now(c->env->loop);
}

const char *client__id(const struct client *c)
{
    return c->client_id ? c->client_id : "(no client id)";
}

/* End the connection from our side. will: publish the will (anything but a DISCONNECT). */
static void client_end(struct client *c, uint8_t v5_reason, bool will, const char *why)
{
    if (c->state == CS_CLOSING)
        return;
    if (why && c->env->o.connection_messages)
        log_notice("client %s from %s (%s) disconnected: %s", client__id(c), conn_addr(c->conn),
                   conn_peer(c->conn)->identity, why);
    client__send_disconnect(c, v5_reason, why);
    if (c->session) {
        broker_detach(c->env->broker, c->session, will, client__now(c));
        c->session = NULL;
    }
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static void client_kick(void *client, uint8_t reason)
{
    struct client *c = client;
    c->session = NULL; /* the broker has moved the session on */
    client_end(c, reason, false, "session taken over by another connection");
}

static void client_wakeup(void *client)
{
    struct client *c = client;
    if (c->state == CS_CONNECTED)
        conn_want_write(c->conn);
}

const struct broker_client_ops client__broker_ops = {
    .wakeup = client_wakeup,
    .kick = client_kick,
};

void client_untrust(struct client *c, const char *why, bool discard_session)
{
    if (c->state == CS_CLOSING)
        return;
    const struct tls_peer *p = conn_peer(c->conn);
    log_notice("disconnecting client %s from %s (identity %s, serial %s, issuer %s): %s%s",
               client__id(c), conn_addr(c->conn), p->identity, p->serial, p->issuer, why,
               discard_session && c->session ? "; session discarded" : "");
    struct session *s = c->session;
    c->session = NULL;
    if (s) {
        /* A device that is no longer trusted must not speak again: no will. */
        broker_detach(c->env->broker, s, false, client__now(c));
    }
    client_end(c, 0x98, false, why);
    if (discard_session && c->client_id) {
        struct session *left = broker_find(c->env->broker, p->identity, c->client_id);
        if (left)
            broker_discard(c->env->broker, left);
    }
}

void client_foreach(struct client_env *e,
                    void (*cb)(void *ctx, struct client *c, struct conn *conn), void *ctx)
{
    struct client *next;
    for (struct client *c = e->head; c; c = next) {
        next = c->next; /* cb may close c; it is freed only later, in on_close */
        cb(ctx, c, c->conn);
    }
}

void client_set_discard_revoked(struct client_env *e, bool discard)
{
    e->discard_revoked = discard;
}

static void on_cert_expired(void *ud, struct conn *conn)
{
    struct client *c = ud;
    client_untrust(c, "certificate expired", c->env->discard_revoked);
}

void client_close_all(struct client_env *e)
{
    for (struct client *c = e->head; c; c = c->next)
        client_end(c, 0x8B, false, NULL);
}

static void protocol_error(struct client *c, int err, const char *what)
{
    uint8_t rc = err < 0 ? codec_err_reason(err) : (uint8_t)err;
    char why[160];
    snprintf(why, sizeof(why), "%s (reason 0x%02X)", what, rc);
    if (c->state == CS_WAIT_CONNECT) {
        log_notice("connection %s (%s) closed before CONNECT: %s", conn_addr(c->conn),
                   conn_peer(c->conn)->identity, why);
        c->state = CS_CLOSING;
        conn_close(c->conn, false);
        return;
    }
    client_end(c, rc, true, why);
}

/* ---- CONNECT ------------------------------------------------------------------------------ */

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

/* Refuse a CONNECT: v3 and v5 codes differ. */
static void refuse(struct client *c, uint8_t v3_rc, uint8_t v5_rc, const char *why)
{
    log_notice("client %s from %s (%s) refused: %s", client__id(c), conn_addr(c->conn),
               conn_peer(c->conn)->identity, why);
    struct mqtt_props pr = {0};
    if (c->version == MQTT_V5)
        client__reason_string(c, &pr, why);
    connack(c, false, c->version == MQTT_V5 ? v5_rc : v3_rc, &pr);
    if (buf_size(&c->out)) {
        conn_write(c->conn, buf_head(&c->out), buf_size(&c->out));
        buf_consume(&c->out, buf_size(&c->out));
    }
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static void keepalive_check(void *ud, struct conn *conn);

static void arm_keepalive(struct client *c)
{
    if (c->keepalive)
        conn_timer(c->conn, (uint64_t)c->keepalive * 1500, keepalive_check);
}

static void keepalive_check(void *ud, struct conn *conn)
{
    struct client *c = ud;
    uint64_t limit = (uint64_t)c->keepalive * 1500, idle = uv_now(c->env->loop) - c->last_rx;
    if (idle >= limit) {
        client_end(c, 0x8D, true, "keep-alive timeout");
        return;
    }
    conn_timer(conn, limit - idle, keepalive_check);
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

static void handle_connect(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_connect *k = &p->u.connect;
    struct client_env *e = c->env;
    const char *identity = conn_peer(c->conn)->identity;
    c->version = k->version;
    c->no_problem_info = (k->props.present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) &&
                         !k->props.request_problem_info;
    if (k->props.present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)) {
        refuse(c, 0x05, 0x8C,
               "enhanced authentication requested; identity comes from the "
               "client certificate");
        return;
    }
    bool assigned = false;
    if (k->client_id.len == 0) {
        bool ok = e->o.allow_zero_length_clientid && (k->clean || k->version == MQTT_V5) &&
                  k->version != MQTT_V31;
        if (!ok) {
            refuse(c, 0x02, 0x85, "empty client id not allowed");
            return;
        }
        char id[40];
        snprintf(id, sizeof(id), "auto-%016" PRIx64, e->next_auto_id++);
        c->client_id = xstrdup(id);
        assigned = true;
    } else {
        c->client_id = xstrndup((const char *)k->client_id.p, k->client_id.len);
        if (strlen(c->client_id) != k->client_id.len) {
            refuse(c, 0x02, 0x85, "client id contains NUL");
            return;
        }
    }
    if (e->o.clientid_match && strcmp(c->client_id, identity) != 0) {
        refuse(c, 0x02, 0x85,
               "client id differs from the certificate identity "
               "(clientid_policy match)");
        return;
    }
    uint16_t ka = k->keepalive;
    bool server_ka = false;
    if (e->o.max_keepalive < 65535 && (ka == 0 || ka > e->o.max_keepalive)) {
        if (c->version != MQTT_V5) {
            refuse(c, 0x02, 0x85, "keep-alive over max_keepalive");
            return;
        }
        ka = e->o.max_keepalive;
        server_ka = true;
    }
    if (k->will && !broker_topic_ok(e->broker, (const char *)k->will_topic.p, k->will_topic.len)) {
        protocol_error(c, 0x8F, "invalid will topic");
        return;
    }
    c->keepalive = ka;
    if (k->props.present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
        c->peer_max_packet = k->props.maximum_packet_size;
    if (k->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        c->out_alias_max = k->props.topic_alias_maximum;

    bool persistent;
    uint32_t expiry;
    if (c->version == MQTT_V5) {
        expiry = (k->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))
                     ? k->props.session_expiry
                     : 0;
        persistent = expiry > 0;
    } else {
        persistent = !k->clean;
        expiry = e->o.persistent_client_expiration ? e->o.persistent_client_expiration : UINT32_MAX;
    }
    bool present;
    struct session *s =
        broker_attach(e->broker, identity, c->client_id, c, conn_addr(c->conn), k->clean,
                      persistent, expiry, c->version, &present, client__now(c));
    c->session = s;
    session_set_window(s, (k->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
                              ? k->props.receive_maximum
                              : 0);
    if (k->will) {
        if (!broker_may_publish(e->broker, s, (const char *)k->will_topic.p, k->will_topic.len)) {
            broker_detach(e->broker, s, false, client__now(c));
            c->session = NULL;
            refuse(c, 0x05, 0x87, "will topic not allowed by the ACL");
            return;
        }
        struct msg *w = make_will(c, k);
        session_set_will(s, w);
        msg_unref(w);
        if (k->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY))
            session_set_will_delay(s, k->will_props.will_delay);
    }
    c->state = CS_CONNECTED;
    struct mqtt_props pr = {0};
    if (c->version == MQTT_V5) {
        pr.present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                      MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                      MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
        pr.receive_maximum = e->o.receive_maximum;
        pr.retain_available = e->o.retain_available;
        pr.sub_id_available = 1;
        pr.wildcard_sub_available = 1;
        pr.shared_sub_available = 1;
        if (e->o.max_topic_alias) {
            pr.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
            pr.topic_alias_maximum = e->o.max_topic_alias;
        }
        if (e->o.max_packet_size) {
            pr.present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
            pr.maximum_packet_size = e->o.max_packet_size;
        }
        if (server_ka) {
            pr.present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
            pr.server_keepalive = ka;
        }
        if (assigned) {
            pr.present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr.assigned_client_id.p = (const uint8_t *)c->client_id;
            pr.assigned_client_id.len = (uint16_t)strlen(c->client_id);
        }
    }
    connack(c, present && !k->clean, 0, &pr);
    if (e->o.connection_messages)
        log_notice("client %s connected from %s as %s (p%u, c%d, k%u%s)", c->client_id,
                   conn_addr(c->conn), identity, c->version, k->clean, ka,
                   present ? ", session resumed" : "");
    arm_keepalive(c);
    conn_want_write(c->conn);
}

/* ---- PUBLISH and acknowledgements --------------------------------------------------------- */

static void handle_publish(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_publish *pub = &p->u.publish;
    struct client_env *e = c->env;
    const char *topic = (const char *)pub->topic.p;
    size_t topic_len = pub->topic.len;
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = pub->props.topic_alias;
        if (a == 0 || a > e->o.max_topic_alias) {
            protocol_error(c, 0x94, "topic alias out of range");
            return;
        }
        if (!c->in_alias)
            c->in_alias = xcalloc((size_t)e->o.max_topic_alias + 1, sizeof(char *));
        if (topic_len) {
            if (!broker_topic_ok(e->broker, topic, topic_len)) {
                protocol_error(c, 0x90, "invalid topic name in PUBLISH");
                return;
            }
            free(c->in_alias[a]);
            c->in_alias[a] = xstrndup(topic, topic_len);
        } else if (!c->in_alias[a]) {
            protocol_error(c, 0x82, "topic alias used before it was set");
            return;
        } else {
            topic = c->in_alias[a];
            topic_len = strlen(topic);
        }
    } else if (!broker_topic_ok(e->broker, topic, topic_len)) {
        protocol_error(c, 0x90, "invalid topic name in PUBLISH");
        return;
    }
    if (pub->qos == 2 && session_qos2_in_has(c->session, pub->id)) {
        client__send_ack(c, MQTT_PUBREC, pub->id, 0); /* duplicate: already routed once */
        return;
    }
    if (pub->qos > 0 && c->version == MQTT_V5 && pub->qos == 2 &&
        session_qos2_in_count(c->session) >= e->o.receive_maximum) {
        protocol_error(c, 0x93, "receive maximum exceeded");
        return;
    }
    struct broker_stats *st = broker_stats(e->broker);
    st->bytes_received += pub->payload_len + pub->topic.len;
    uint8_t rc = 0;
    if (pub->retain && !e->o.retain_available) {
        protocol_error(c, 0x9A, "retain not supported");
        return;
    }
    if (e->o.message_size_limit && pub->payload_len > e->o.message_size_limit) {
        rc = 0x97;
        st->msgs_dropped++;
        log_info("client %s: message on %.*s dropped: payload %u bytes over message_size_limit",
                 c->client_id, (int)topic_len, topic, pub->payload_len);
    } else {
        st->msgs_received++;
        int64_t now = client__now(c), exp = 0;
        if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
            exp = now + (int64_t)pub->props.message_expiry * 1000;
        struct msg *m = msg_new(topic, topic_len, pub, exp, broker_next_msg_id(e->broker));
        enum broker_pub_result r = broker_publish(e->broker, c->session, m, now);
        if (r == BROKER_PUB_DENIED) {
            rc = 0x87;
            log_debug("client %s: publish to %s denied by the ACL", c->client_id, m->topic);
        } else if (r == BROKER_PUB_NO_MATCH) {
            rc = 0x10;
        }
        msg_unref(m);
    }
    if (pub->qos == 1) {
        client__send_ack(c, MQTT_PUBACK, pub->id, rc);
    } else if (pub->qos == 2) {
        if (rc < 0x80)
            session_qos2_in_add(c->session, pub->id);
        client__send_ack(c, MQTT_PUBREC, pub->id, rc);
    }
}

static void handle_ack(struct client *c, const struct mqtt_packet *p)
{
    uint16_t id = p->u.ack.id;
    struct session *s = c->session;
    switch (p->type) {
    case MQTT_PUBACK:
        if (session_puback(s, id) == 0)
            conn_want_write(c->conn); /* the window has room again */
        break;
    case MQTT_PUBREC:
        if (session_pubrec(s, id) == 0) {
            if (p->u.ack.rc >= 0x80) /* v5: the receiver refused; the flow ends here */
                session_pubcomp(s, id);
            conn_want_write(c->conn);
        } else {
            client__send_ack(c, MQTT_PUBREL, id, 0x92);
        }
        break;
    case MQTT_PUBREL: {
        bool had = session_qos2_in_has(s, id);
        session_qos2_in_del(s, id);
        client__send_ack(c, MQTT_PUBCOMP, id, had ? 0 : 0x92);
        break;
    }
    case MQTT_PUBCOMP:
        if (session_pubcomp(s, id) == 0)
            conn_want_write(c->conn);
        break;
    }
}

/* ---- SUBSCRIBE / UNSUBSCRIBE / PING / DISCONNECT ------------------------------------------ */

static void send_suback(struct client *c, uint8_t type, uint16_t id, uint8_t *r, size_t n,
                        const uint8_t *stack);

static void handle_subscribe(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sb = &p->u.subscribe;
    uint8_t rcs[512];
    uint8_t *r = sb->count <= sizeof(rcs) ? rcs : xmalloc(sb->count);
    struct mqtt_sub_iter it;
    struct mqtt_bin f;
    uint8_t opts;
    uint32_t sub_id = (sb->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
                          ? sb->props.subscription_id
                          : 0;
    size_t i = 0;
    /* SUBACK goes out before any retained message this subscription queues: control packets
     * are written ahead of the session queue in the write slot. */
    codec_sub_iter(sb, true, &it);
    while (codec_sub_next(&it, &f, &opts) && i < sb->count) {
        if (c->version != MQTT_V5)
            opts &= MQTT_SUBOPT_QOS_MASK;
        if ((opts & MQTT_SUBOPT_NO_LOCAL) && f.len > 7 && !memcmp(f.p, "$share/", 7)) {
            if (r != rcs)
                free(r);
            protocol_error(c, 0x82, "no-local on a shared subscription");
            return;
        }
        uint8_t rc = broker_subscribe(c->env->broker, c->session, (const char *)f.p, f.len, opts,
                                      sub_id, client__now(c));
        if (c->version != MQTT_V5 && rc >= 0x80)
            rc = 0x80;
        log_msg(LOGL_SUBSCRIBE, "%s %u %.*s -> 0x%02X", c->client_id, opts & 3, f.len,
                (const char *)f.p, rc);
        r[i++] = rc;
    }
    send_suback(c, MQTT_SUBACK, sb->id, r, i, rcs);
}

/* SUBACK or UNSUBACK with the reason codes gathered in r (freed here when heap-allocated). */
static void send_suback(struct client *c, uint8_t type, uint16_t id, uint8_t *r, size_t n,
                        const uint8_t *stack)
{
    struct mqtt_packet a = {0};
    a.type = type;
    a.u.suback.id = id;
    a.u.suback.rcs = r;
    a.u.suback.count = (uint16_t)n;
    client__send(c, &a);
    if (r != stack)
        free(r);
}

static void handle_unsubscribe(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sb = &p->u.subscribe;
    uint8_t rcs[512];
    uint8_t *r = sb->count <= sizeof(rcs) ? rcs : xmalloc(sb->count);
    struct mqtt_sub_iter it;
    struct mqtt_bin f;
    uint8_t opts;
    size_t i = 0;
    codec_sub_iter(sb, false, &it);
    while (codec_sub_next(&it, &f, &opts) && i < sb->count) {
        int x = broker_unsubscribe(c->env->broker, c->session, (const char *)f.p, f.len);
        log_msg(LOGL_UNSUBSCRIBE, "%s %.*s", c->client_id, f.len, (const char *)f.p);
        r[i++] = x == 0 ? 0x00 : 0x11;
    }
    send_suback(c, MQTT_UNSUBACK, sb->id, r, i, rcs);
}

static void handle_pingreq(struct client *c, const struct mqtt_packet *p)
{
    struct mqtt_packet a = {0};
    a.type = MQTT_PINGRESP;
    client__send(c, &a);
}

static void handle_disconnect(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_disconnect *d = &p->u.disconnect;
    if (c->version == MQTT_V5 && (d->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
        if (session_expiry_s(c->session) == 0 && d->props.session_expiry != 0) {
            protocol_error(c, 0x82, "session expiry set in DISCONNECT after connecting with 0");
            return;
        }
        session_set_persistent(c->session, d->props.session_expiry > 0, d->props.session_expiry);
    }
    bool will = c->version == MQTT_V5 && d->rc == 0x04;
    if (c->env->o.connection_messages)
        log_notice("client %s disconnected", client__id(c));
    broker_detach(c->env->broker, c->session, will, client__now(c));
    c->session = NULL;
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static void handle_auth(struct client *c, const struct mqtt_packet *p)
{
    protocol_error(c, 0x82, "AUTH without enhanced authentication");
}

/* ---- dispatch ----------------------------------------------------------------------------- */

typedef void (*handler_fn)(struct client *c, const struct mqtt_packet *p);
/* Index: packet type. NULL: a client never sends it (server-to-client types, reserved). */
static const handler_fn dispatch[16] = {
    [MQTT_PUBLISH] = handle_publish,
    [MQTT_PUBACK] = handle_ack,
    [MQTT_PUBREC] = handle_ack,
    [MQTT_PUBREL] = handle_ack,
    [MQTT_PUBCOMP] = handle_ack,
    [MQTT_SUBSCRIBE] = handle_subscribe,
    [MQTT_UNSUBSCRIBE] = handle_unsubscribe,
    [MQTT_PINGREQ] = handle_pingreq,
    [MQTT_DISCONNECT] = handle_disconnect,
    [MQTT_AUTH] = handle_auth,
};

static void on_packet(struct client *c, const struct mqtt_packet *p)
{
    log_debug("client %s: packet type %u (%u bytes pending)", client__id(c), p->type,
              (unsigned)buf_size(&c->in));
    if (c->state == CS_WAIT_CONNECT) {
        if (p->type != MQTT_CONNECT) {
            protocol_error(c, CODEC_ERR_PROTOCOL, "first packet is not CONNECT");
            return;
        }
        handle_connect(c, p);
        return;
    }
    handler_fn h = dispatch[p->type & 15];
    if (!h || (p->type == MQTT_AUTH && c->version != MQTT_V5)) {
        protocol_error(c, CODEC_ERR_PROTOCOL,
                       p->type == MQTT_CONNECT ? "second CONNECT"
                                               : "packet type not "
                                                 "allowed from a client");
        return;
    }
    h(c, p);
}

/* Decode every whole packet in data; returns bytes consumed or -1 after closing. */
static long decode_all(struct client *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    uint32_t max = c->env->o.max_packet_size;
    while (off < len && c->state != CS_CLOSING) {
        struct mqtt_packet p;
        long r = codec_decode(data + off, len - off, c->version, max, &p);
        if (r == 0)
            break;
        if (r < 0) {
            if (r == CODEC_ERR_BAD_VERSION && c->state == CS_WAIT_CONNECT) {
                c->version = (len - off > 8 && data[off + 8] == 5) ? MQTT_V5 : MQTT_V311;
                refuse(c, 0x01, 0x84, "unsupported protocol version");
                return -1;
            }
            protocol_error(c, (int)r, codec_err_str((int)r));
            return -1;
        }
        on_packet(c, &p);
        off += (size_t)r;
    }
    return (long)off;
}

static void on_data(void *ud, struct conn *conn, const uint8_t *p, size_t n)
{
    struct client *c = ud;
    if (c->state == CS_CLOSING)
        return;
    c->last_rx = uv_now(c->env->loop);
    if (buf_size(&c->in) == 0) {
        long used = decode_all(c, p, n);
        if (used >= 0 && (size_t)used < n && c->state != CS_CLOSING)
            buf_append(&c->in, p + used, n - (size_t)used);
        return;
    }
    buf_append(&c->in, p, n);
    long used = decode_all(c, buf_head(&c->in), buf_size(&c->in));
    if (used > 0)
        buf_consume(&c->in, (size_t)used);
    buf_shrink(&c->in, 0);
}

static void connect_timeout(void *ud, struct conn *conn)
{
    struct client *c = ud;
    if (c->state == CS_WAIT_CONNECT) {
        log_notice("connection %s (%s) closed: no CONNECT within %u ms", conn_addr(conn),
                   conn_peer(conn)->identity, c->env->o.connect_timeout_ms);
        c->state = CS_CLOSING;
        conn_close(conn, true);
    }
}

static void on_ready(void *ud, struct conn *conn)
{
    struct client_env *e = ud;
    struct client *c = xcalloc(1, sizeof(*c));
    c->env = e;
    c->conn = conn;
    c->version = MQTT_V311;
    c->last_rx = uv_now(e->loop);
    c->next = e->head;
    if (e->head)
        e->head->prev = c;
    e->head = c;
    e->count++;
    conn_set_user(conn, c);
    conn_timer(conn, e->o.connect_timeout_ms, connect_timeout);
}

static void on_close(void *ud, struct conn *conn)
{
    struct client *c = ud;
    struct client_env *e = c->env;
    if (c->session) {
        if (e->o.connection_messages)
            log_notice("client %s from %s closed its connection", client__id(c), conn_addr(conn));
        broker_detach(e->broker, c->session, true, (int64_t)uv_now(e->loop));
        c->session = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        e->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    e->count--;
    buf_free(&c->in);
    buf_free(&c->out);
    if (c->in_alias) {
        for (size_t i = 0; i <= e->o.max_topic_alias; i++)
            free(c->in_alias[i]);
        free(c->in_alias);
    }
    struct out_alias *a, *tmp;
    HASH_ITER(hh, c->out_alias, a, tmp)
    {
        HASH_DEL(c->out_alias, a);
        free(a->topic);
        free(a);
    }
    free(c->client_id);
    free(c);
}

const struct conn_cbs client_conn_cbs = {
    .on_ready = on_ready,
    .on_data = on_data,
    .on_writable = client__on_writable,
    .on_close = on_close,
    .on_cert_expired = on_cert_expired,
};
