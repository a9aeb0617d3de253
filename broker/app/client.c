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
#include "connect.h"
#include "log.h"
#include "reason.h"
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

/* End the connection from our side for reason r. will: publish the will (anything but a
 * DISCONNECT). why: what is logged and sent as the MQTT 5 Reason String, normally the table's
 * text for r; NULL for neither. */
static void client_end(struct client *c, enum reason r, bool will, const char *why)
{
    if (c->state == CS_CLOSING)
        return;
    if (why && c->env->o.connection_messages)
        log_notice("client %s from %s (%s) disconnected: %s", client__id(c), conn_addr(c->conn),
                   conn_peer(c->conn)->identity, why);
    client__send_disconnect(c, reason_info(r)->v5, why);
    if (c->session) {
        broker_detach(c->env->broker, c->session, will, client__now(c));
        c->session = NULL;
    }
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static void client_kick(void *client, enum reason why)
{
    struct client *c = client;
    c->session = NULL; /* the broker has moved the session on */
    client_end(c, why, false, reason_info(why)->text);
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

void client_untrust(struct client *c, enum reason why, const char *detail)
{
    if (c->state == CS_CLOSING)
        return;
    const struct reason_info *ri = reason_info(why);
    const char *text = detail && *detail ? detail : ri->text;
    bool discard_session = c->env->o.discard_revoked;
    const struct tls_peer *p = conn_peer(c->conn);
    log_notice("disconnecting client %s from %s (identity %s, serial %s, issuer %s): %s%s",
               client__id(c), conn_addr(c->conn), p->identity, p->serial, p->issuer, text,
               discard_session && c->session ? "; session discarded" : "");
    if (c->session)
        broker_untrust(c->env->broker, c->session, discard_session, client__now(c));
    c->session = NULL;
    client_end(c, why, false, text);
}

/* Every trust verdict (CRL reload, plugin, expiry) arrives here through conn_untrust. */
static void on_untrusted(void *ud, struct conn *conn, enum reason why, const char *detail)
{
    client_untrust(ud, why, detail);
}

void client_close_all(struct client_env *e)
{
    for (struct client *c = e->head; c; c = c->next)
        client_end(c, REASON_SHUTDOWN, false, NULL); /* one shutdown, not a line per client */
}

/* The client broke the protocol: before CONNECT the connection is just closed, after it MQTT 5
 * clients get a DISCONNECT with r's code. The log says which code. */
static void protocol_error(struct client *c, enum reason r)
{
    const struct reason_info *ri = reason_info(r);
    char why[160];
    snprintf(why, sizeof(why), "%s (reason 0x%02X)", ri->text, ri->v5);
    if (c->state == CS_WAIT_CONNECT) {
        log_notice("connection %s (%s) closed before CONNECT: %s", conn_addr(c->conn),
                   conn_peer(c->conn)->identity, why);
        c->state = CS_CLOSING;
        conn_close(c->conn, false);
        return;
    }
    client_end(c, r, true, why);
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

/* Refuse a CONNECT: CONNACK with r's code for the client's version, then close. */
static void refuse(struct client *c, enum reason r)
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

static void keepalive_check(void *ud, struct conn *conn);

static void arm_keepalive(struct client *c)
{
    if (c->keepalive)
        conn_timer(c->conn, connect_keepalive_limit_ms(c->keepalive), keepalive_check);
}

static void keepalive_check(void *ud, struct conn *conn)
{
    struct client *c = ud;
    uint64_t limit = connect_keepalive_limit_ms(c->keepalive);
    uint64_t idle = uv_now(c->env->loop) - c->last_rx;
    if (idle >= limit) {
        client_end(c, REASON_KEEPALIVE_TIMEOUT, true, reason_info(REASON_KEEPALIVE_TIMEOUT)->text);
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

/* Give the session its will, unless the ACL forbids it: then the connection is refused (after
 * the attach, since the ACL is compiled for the session) and false returned. */
static bool set_will(struct client *c, const struct mqtt_connect *k)
{
    struct client_env *e = c->env;
    struct session *s = c->session;
    if (!broker_may_publish(e->broker, s, (const char *)k->will_topic.p, k->will_topic.len)) {
        broker_detach(e->broker, s, false, client__now(c));
        c->session = NULL;
        refuse(c, REASON_WILL_DENIED);
        return false;
    }
    struct msg *w = make_will(c, k);
    session_set_will(s, w);
    msg_unref(w);
    if (k->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY))
        session_set_will_delay(s, k->will_props.will_delay);
    return true;
}

static bool topic_ok(const void *broker, const char *t, size_t len)
{
    return broker_topic_ok(broker, t, len);
}

static struct connect_limits connect_limits(const struct client_opts *o)
{
    return (struct connect_limits){
        .max_packet_size = o->max_packet_size,
        .persistent_client_expiration = o->persistent_client_expiration,
        .max_keepalive = o->max_keepalive,
        .receive_maximum = o->receive_maximum,
        .max_topic_alias = o->max_topic_alias,
        .allow_zero_length_clientid = o->allow_zero_length_clientid,
        .clientid_match = o->clientid_match,
        .retain_available = o->retain_available,
    };
}

/* CONNECT: connect_decide says what; here it happens (CONNACK, session, will, timers). */
static void handle_connect(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_connect *k = &p->u.connect;
    struct client_env *e = c->env;
    const char *identity = conn_peer(c->conn)->identity;
    struct connect_limits lim = connect_limits(&e->o);
    char auto_id[sizeof("auto-") + 16]; /* "auto-" and 16 hex digits of a uint64_t */
    snprintf(auto_id, sizeof(auto_id), "auto-%016" PRIx64, e->next_auto_id);
    struct connect_request req = {.lim = &lim,
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
    if (d.client_id.p) /* stops at a NUL, which is then refused: the log shows what it can */
        c->client_id = xstrndup((const char *)d.client_id.p, d.client_id.len);
    if (r != REASON_NONE) {
        if (reason_info(r)->v3)
            refuse(c, r);
        else
            protocol_error(c, r);
        return;
    }
    c->keepalive = d.keepalive;
    c->peer_max_packet = d.peer_max_packet;
    c->out_alias_max = d.out_alias_max;
    bool present;
    c->session = broker_attach(e->broker, identity, c->client_id, c, conn_addr(c->conn), k->clean,
                               d.persistent, d.expiry_s, c->version, &present, client__now(c));
    session_set_window(c->session, d.receive_window);
    if (k->will && !set_will(c, k))
        return;
    c->state = CS_CONNECTED;
    connack(c, present && !k->clean, MQTT_RC_SUCCESS, &d.connack);
    if (e->o.connection_messages)
        log_notice("client %s connected from %s as %s (p%u, c%d, k%u%s)", c->client_id,
                   conn_addr(c->conn), identity, c->version, k->clean, d.keepalive,
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
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
        protocol_error(c, REASON_SUB_ID_FROM_CLIENT);
        return;
    }
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = pub->props.topic_alias;
        if (a == 0 || a > e->o.max_topic_alias) {
            protocol_error(c, REASON_TOPIC_ALIAS_INVALID);
            return;
        }
        if (!c->in_alias)
            c->in_alias = xcalloc((size_t)e->o.max_topic_alias + 1, sizeof(char *));
        if (topic_len) {
            if (!broker_topic_ok(e->broker, topic, topic_len)) {
                protocol_error(c, REASON_TOPIC_NAME_INVALID);
                return;
            }
            free(c->in_alias[a]);
            c->in_alias[a] = xstrndup(topic, topic_len);
        } else if (!c->in_alias[a]) {
            protocol_error(c, REASON_TOPIC_ALIAS_UNSET);
            return;
        } else {
            topic = c->in_alias[a];
            topic_len = strlen(topic);
        }
    } else if (!broker_topic_ok(e->broker, topic, topic_len)) {
        protocol_error(c, REASON_TOPIC_NAME_INVALID);
        return;
    }
    if (pub->qos == 2 && session_qos2_in_has(c->session, pub->id)) {
        client__send_ack(c, MQTT_PUBREC, pub->id,
                         MQTT_RC_SUCCESS); /* duplicate: already routed once */
        return;
    }
    if (pub->qos > 0 && c->version == MQTT_V5 && pub->qos == 2 &&
        session_qos2_in_count(c->session) >= e->o.receive_maximum) {
        protocol_error(c, REASON_RECEIVE_MAX_EXCEEDED);
        return;
    }
    struct broker_stats *st = broker_stats(e->broker);
    st->bytes_received += pub->payload_len + pub->topic.len;
    uint8_t rc = MQTT_RC_SUCCESS;
    if (pub->retain && !e->o.retain_available) {
        protocol_error(c, REASON_RETAIN_UNSUPPORTED);
        return;
    }
    if (e->o.message_size_limit && pub->payload_len > e->o.message_size_limit) {
        rc = MQTT_RC_QUOTA_EXCEEDED;
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
            rc = MQTT_RC_NOT_AUTHORIZED;
            log_debug("client %s: publish to %s denied by the ACL", c->client_id, m->topic);
        } else if (r == BROKER_PUB_NO_MATCH) {
            rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
        }
        msg_unref(m);
    }
    if (pub->qos == 1) {
        client__send_ack(c, MQTT_PUBACK, pub->id, rc);
    } else if (pub->qos == 2) {
        if (!mqtt_rc_failed(rc))
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
            if (mqtt_rc_failed(p->u.ack.rc)) /* v5: the receiver refused; the flow ends here */
                session_pubcomp(s, id);
            conn_want_write(c->conn);
        } else {
            client__send_ack(c, MQTT_PUBREL, id, MQTT_RC_PACKET_ID_NOT_FOUND);
        }
        break;
    case MQTT_PUBREL: {
        bool had = session_qos2_in_has(s, id);
        session_qos2_in_del(s, id);
        client__send_ack(c, MQTT_PUBCOMP, id, had ? MQTT_RC_SUCCESS : MQTT_RC_PACKET_ID_NOT_FOUND);
        break;
    }
    case MQTT_PUBCOMP:
        if (session_pubcomp(s, id) == 0)
            conn_want_write(c->conn);
        break;
    }
}

/* ---- SUBSCRIBE / UNSUBSCRIBE / PING / DISCONNECT ------------------------------------------ */

/* SUBACK / UNSUBACK codes gathered on the stack up to this many entries (one byte each), on the
 * heap beyond (a SUBSCRIBE is bounded by max_packet_size, so that is bounded too). */
#define ACK_RCS_ON_STACK 512

static void send_suback(struct client *c, uint8_t type, uint16_t id, uint8_t *r, size_t n,
                        const uint8_t *stack);

static void handle_subscribe(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sb = &p->u.subscribe;
    uint8_t rcs[ACK_RCS_ON_STACK];
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
    session_sub_batch(c->session);
    codec_sub_iter(sb, true, &it);
    while (codec_sub_next(&it, &f, &opts) && i < sb->count) {
        if (c->version != MQTT_V5)
            opts &= MQTT_SUBOPT_QOS_MASK;
        if ((opts & MQTT_SUBOPT_NO_LOCAL) && f.len > 7 && !memcmp(f.p, "$share/", 7)) {
            if (r != rcs)
                free(r);
            protocol_error(c, REASON_NO_LOCAL_SHARED);
            return;
        }
        uint8_t rc = broker_subscribe(c->env->broker, c->session, (const char *)f.p, f.len, opts,
                                      sub_id, client__now(c));
        if (c->version != MQTT_V5 && mqtt_rc_failed(rc))
            rc = MQTT_RC_UNSPECIFIED; /* 3.1.1 has one failure code */
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
    uint8_t rcs[ACK_RCS_ON_STACK];
    uint8_t *r = sb->count <= sizeof(rcs) ? rcs : xmalloc(sb->count);
    struct mqtt_sub_iter it;
    struct mqtt_bin f;
    uint8_t opts;
    size_t i = 0;
    codec_sub_iter(sb, false, &it);
    while (codec_sub_next(&it, &f, &opts) && i < sb->count) {
        int x = broker_unsubscribe(c->env->broker, c->session, (const char *)f.p, f.len);
        log_msg(LOGL_UNSUBSCRIBE, "%s %.*s", c->client_id, f.len, (const char *)f.p);
        r[i++] = x == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
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
            protocol_error(c, REASON_EXPIRY_AFTER_ZERO);
            return;
        }
        session_set_persistent(c->session, d->props.session_expiry > 0, d->props.session_expiry);
    }
    bool will = c->version == MQTT_V5 && d->rc == MQTT_RC_DISCONNECT_WITH_WILL;
    if (c->env->o.connection_messages)
        log_notice("client %s disconnected", client__id(c));
    broker_detach(c->env->broker, c->session, will, client__now(c));
    c->session = NULL;
    c->state = CS_CLOSING;
    conn_close(c->conn, true);
}

static void handle_auth(struct client *c, const struct mqtt_packet *p)
{
    protocol_error(c, REASON_AUTH_UNEXPECTED);
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
            protocol_error(c, REASON_FIRST_NOT_CONNECT);
            return;
        }
        conn_settle(c->conn); /* no longer a pending connection of its address */
        handle_connect(c, p);
        return;
    }
    handler_fn h = dispatch[p->type & 15];
    if (!h || (p->type == MQTT_AUTH && c->version != MQTT_V5)) {
        protocol_error(c, p->type == MQTT_CONNECT ? REASON_SECOND_CONNECT
                                                  : REASON_PACKET_TYPE_INVALID);
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
            enum reason why = codec_err_reason((int)r);
            if (why == REASON_BAD_VERSION && c->state == CS_WAIT_CONNECT) {
                /* Answer in the version the client asked for if we can tell it is 5. */
                c->version = (len - off > 8 && data[off + 8] == 5) ? MQTT_V5 : MQTT_V311;
                refuse(c, why);
                return -1;
            }
            protocol_error(c, why);
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
    .on_untrusted = on_untrusted,
};
