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
#include "xmalloc.h"

#include <uthash.h>

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
    client__sub_init(e);
    return e;
}

void client_env_close(struct client_env *e)
{
    if (e)
        client__sub_close(e);
}

void client_env_free(struct client_env *e)
{
    free(e);
}

void client_env_set_opts(struct client_env *e, const struct client_opts *o)
{
    e->o = *o;
}

void client_env_set_over_memory(struct client_env *e, bool over)
{
    e->over_memory = over;
}

/* A client refused for memory is told each time, but logged at most once per interval: a
 * busy device would otherwise write a log line per message. */
#define REFUSAL_LOG_INTERVAL_MS 10000

bool client__memory_refused(struct client *c, const char *what)
{
    struct client_env *e = c->env;
    if (!e->over_memory)
        return false;
    broker_stats(e->broker)->memory_refused++;
    if (log_due(&c->refusal_logged, client__now(c), REFUSAL_LOG_INTERVAL_MS))
        log_warn("client %s from %s (%s): %s refused: %s", client__id(c), conn_addr(c->conn),
                 conn_peer(c->conn)->identity, what, reason_info(REASON_MEMORY)->text);
    return true;
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
/* An active client keeps up to 1 KB of output buffer between writes (client__on_writable); an
 * idle one gives it back (~270 bytes per idle connection after its CONNACK). */
static void on_idle(void *ud, struct conn *conn)
{
    (void)conn;
    struct client *c = ud;
    buf_shrink(&c->out, 0);
    buf_shrink(&c->in, 0);
}

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
void client__protocol_error(struct client *c, enum reason r)
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

/* ---- deadlines ---------------------------------------------------------------------------- */

/* The connection's one timer serves two deadlines: the keep-alive (1.5 x keep-alive without a
 * packet) and packet_timeout for a packet once started. It is re-armed only when the earliest
 * deadline moves earlier, so a busy client costs no timer update per packet. */
static void check_deadlines(void *ud, struct conn *conn)
{
    struct client *c = ud;
    uint64_t now = uv_now(c->env->loop), next = UINT64_MAX;
    if (c->keepalive) {
        /* A client whose packet we are still working on is not idle (it is not being read). */
        uint64_t limit = connect_keepalive_limit_ms(c->keepalive);
        uint64_t idle = c->job || c->ack_full ? 0 : now - c->last_rx;
        if (idle >= limit) {
            client_end(c, REASON_KEEPALIVE_TIMEOUT, true,
                       reason_info(REASON_KEEPALIVE_TIMEOUT)->text);
            return;
        }
        next = limit - idle;
    }
    if (c->partial_since) {
        uint64_t limit = c->env->o.packet_timeout_ms, age = now - c->partial_since;
        if (age >= limit) {
            client_end(c, REASON_PACKET_TIMEOUT, true, reason_info(REASON_PACKET_TIMEOUT)->text);
            return;
        }
        next = limit - age < next ? limit - age : next;
    }
    c->timer_due = next == UINT64_MAX ? 0 : now + next;
    if (c->timer_due)
        conn_timer(conn, next, check_deadlines);
}

void client__arm_deadlines(struct client *c)
{
    check_deadlines(c, c->conn);
}

/* After input: a packet left unfinished starts (or keeps) its clock. */
static void track_partial(struct client *c, uint64_t now)
{
    if (!buf_size(&c->in)) {
        c->partial_since = 0;
        return;
    }
    if (c->partial_since || c->state != CS_CONNECTED)
        return; /* before CONNECT, connect_timeout bounds everything */
    c->partial_since = now;
    if (!c->timer_due || now + c->env->o.packet_timeout_ms < c->timer_due)
        check_deadlines(c, c->conn);
}

/* ---- PUBLISH and acknowledgements --------------------------------------------------------- */

/* A PUBLISH that passed every check: one shared msg, routed; the acknowledgement's code.
 * *ticket: the cluster's retained write the acknowledgement waits for (0: none). */
static uint8_t route_publish(struct client *c, const struct mqtt_publish *pub, const char *topic,
                             size_t topic_len, uint64_t *ticket)
{
    struct client_env *e = c->env;
    int64_t now = client__now(c), exp = 0;
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
        exp = now + (int64_t)pub->props.message_expiry * 1000;
    struct msg *m = msg_new_in(broker_msg_pool(e->broker), topic, topic_len, pub, exp,
                               broker_next_msg_id(e->broker));
    enum broker_pub_result r = broker_publish_wait(e->broker, c->session, m, now, ticket);
    uint8_t rc = MQTT_RC_SUCCESS;
    if (r == BROKER_PUB_NOT_RETAINED || r == BROKER_PUB_NOT_DURABLE) {
        rc = MQTT_RC_UNSPECIFIED;
        log_info("client %s: %s on %s not acknowledged: the cluster's %s is unavailable",
                 c->client_id, r == BROKER_PUB_NOT_DURABLE ? "message" : "retained message",
                 m->topic, r == BROKER_PUB_NOT_DURABLE ? "message stream" : "retained store");
    } else if (r == BROKER_PUB_DENIED) {
        rc = MQTT_RC_NOT_AUTHORIZED;
        log_debug("client %s: publish to %s denied by the ACL", c->client_id, m->topic);
    } else if (r == BROKER_PUB_NO_MATCH) {
        rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    }
    msg_unref(m);
    return rc;
}

static void handle_publish(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_publish *pub = &p->u.publish;
    struct client_env *e = c->env;
    const char *topic = (const char *)pub->topic.p;
    size_t topic_len = pub->topic.len;
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) {
        client__protocol_error(c, REASON_SUB_ID_FROM_CLIENT);
        return;
    }
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = pub->props.topic_alias;
        if (a == 0 || a > e->o.connect.max_topic_alias) {
            client__protocol_error(c, REASON_TOPIC_ALIAS_INVALID);
            return;
        }
        if (!c->in_alias)
            c->in_alias = xcalloc((size_t)e->o.connect.max_topic_alias + 1, sizeof(char *));
        if (topic_len) {
            if (!broker_topic_ok(e->broker, topic, topic_len)) {
                client__protocol_error(c, REASON_TOPIC_NAME_INVALID);
                return;
            }
            free(c->in_alias[a]);
            c->in_alias[a] = xstrndup(topic, topic_len);
        } else if (!c->in_alias[a]) {
            client__protocol_error(c, REASON_TOPIC_ALIAS_UNSET);
            return;
        } else {
            topic = c->in_alias[a];
            topic_len = strlen(topic);
        }
    } else if (!broker_topic_ok(e->broker, topic, topic_len)) {
        client__protocol_error(c, REASON_TOPIC_NAME_INVALID);
        return;
    }
    if (pub->qos == 2 && session_qos2_in_has(c->session, pub->id)) {
        client__publish_answer(c, 2, pub->id, MQTT_RC_SUCCESS); /* duplicate: routed once */
        return;
    }
    if (pub->qos > 0 && c->version == MQTT_V5 && pub->qos == 2 &&
        session_qos2_in_count(c->session) >= e->o.connect.receive_maximum) {
        client__protocol_error(c, REASON_RECEIVE_MAX_EXCEEDED);
        return;
    }
    struct broker_stats *st = broker_stats(e->broker);
    st->bytes_received += pub->payload_len + pub->topic.len;
    st->bytes_received_qos[pub->qos] += pub->payload_len + pub->topic.len; /* qos <= 2: codec */
    uint8_t rc = MQTT_RC_SUCCESS;
    if (pub->retain && !e->o.connect.retain_available) {
        client__protocol_error(c, REASON_RETAIN_UNSUPPORTED);
        return;
    }
    enum reason over = REASON_NONE;
    if (client__memory_refused(c, "PUBLISH") ||
        (over = broker_publish_rate(e->broker, c->session, pub->payload_len, client__now(c)))) {
        over = over ? over : REASON_MEMORY;
        /* 3.1.1 has no way to refuse one message. MQTT 5's PUBACK and PUBREC cannot carry
         * 0x96 Message rate too high [MQTT-3.4.2-1]: a refused one gets 0x97 Quota exceeded,
         * the DISCONNECT of rate_limit_action disconnect gets 0x96. */
        if (c->version != MQTT_V5 || (over != REASON_MEMORY && e->o.rate_disconnect)) {
            client_end(c, over, true, reason_info(over)->text);
            return;
        }
        rc = MQTT_RC_QUOTA_EXCEEDED;
        st->msgs_dropped++;
    } else if (e->o.message_size_limit && pub->payload_len > e->o.message_size_limit) {
        rc = MQTT_RC_QUOTA_EXCEEDED;
        st->msgs_dropped++;
        log_info("client %s: message on %.*s dropped: payload %u bytes over message_size_limit",
                 c->client_id, (int)topic_len, topic, pub->payload_len);
    } else {
        st->msgs_received++;
        st->msgs_received_qos[pub->qos]++;
        uint64_t ticket;
        rc = route_publish(c, pub, topic, topic_len, &ticket);
        if (ticket && pub->qos > 0) { /* acknowledged once the cluster stored it */
            client__ack_wait(c, pub->qos, pub->id, ticket);
            return;
        }
    }
    client__publish_answer(c, pub->qos, pub->id, rc);
}

void client__publish_answer(struct client *c, uint8_t qos, uint16_t id, uint8_t rc)
{
    if (qos && !client__ack_later(c, qos, id, rc))
        client__publish_send(c, qos, id, rc);
}

void client__publish_send(struct client *c, uint8_t qos, uint16_t id, uint8_t rc)
{
    if (qos && rc == MQTT_RC_UNSPECIFIED && c->version != MQTT_V5) {
        /* 3.1.1 cannot refuse one message: without an acknowledgement the device sends it
         * again after it reconnects. */
        client_end(c, REASON_RETAIN_UNAVAILABLE, false,
                   reason_info(REASON_RETAIN_UNAVAILABLE)->text);
        return;
    }
    if (qos == 1) {
        client__send_ack(c, MQTT_PUBACK, id, rc);
    } else if (qos == 2) {
        if (!mqtt_rc_failed(rc))
            session_qos2_in_add(c->session, id);
        client__send_ack(c, MQTT_PUBREC, id, rc);
    }
    conn_want_write(c->conn);
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
            client__protocol_error(c, REASON_EXPIRY_AFTER_ZERO);
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
    client__protocol_error(c, REASON_AUTH_UNEXPECTED);
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
    [MQTT_SUBSCRIBE] = client__handle_subscribe,
    [MQTT_UNSUBSCRIBE] = client__handle_unsubscribe,
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
            client__protocol_error(c, REASON_FIRST_NOT_CONNECT);
            return;
        }
        conn_settle(c->conn); /* no longer a pending connection of its address */
        client__handle_connect(c, p);
        return;
    }
    handler_fn h = dispatch[p->type & 15];
    if (!h || (p->type == MQTT_AUTH && c->version != MQTT_V5)) {
        client__protocol_error(c, p->type == MQTT_CONNECT ? REASON_SECOND_CONNECT
                                                          : REASON_PACKET_TYPE_INVALID);
        return;
    }
    h(c, p);
}

/* Decode every whole packet in data; returns bytes consumed or -1 after closing. */
static long decode_all(struct client *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    uint32_t max = c->env->o.connect.max_packet_size;
    while (off < len && c->state != CS_CLOSING && !c->ack_full) {
        struct mqtt_packet p;
        long r = codec_decode(data + off, len - off, c->version, max, &p);
        if (r == 0)
            break;
        if (r < 0) {
            enum reason why = codec_err_reason((int)r);
            if (why == REASON_BAD_VERSION && c->state == CS_WAIT_CONNECT) {
                /* Answer in the version the client asked for if we can tell it is 5. */
                c->version = (len - off > 8 && data[off + 8] == 5) ? MQTT_V5 : MQTT_V311;
                client__refuse(c, why);
                return -1;
            }
            client__protocol_error(c, why);
            return -1;
        }
        on_packet(c, &p);
        if (c->job) { /* paced over later turns: nothing after it is handled before it ends */
            if (c->state != CS_CLOSING)
                client__job_keep(c, data + off, (size_t)r);
            off += (size_t)r;
            break;
        }
        off += (size_t)r;
        if (c->ack_full) { /* too many acknowledgements wait: the rest is kept */
            conn_pause(c->conn);
            break;
        }
    }
    return (long)off;
}

void client__input_resume(struct client *c)
{
    c->last_rx = uv_now(c->env->loop); /* it was waiting for us, not idle */
    if (buf_size(&c->in)) {
        long used = decode_all(c, buf_head(&c->in), buf_size(&c->in));
        if (used > 0)
            buf_consume(&c->in, (size_t)used);
        buf_shrink(&c->in, 0);
    }
    if (!c->job && !c->ack_full && c->state != CS_CLOSING)
        conn_resume(c->conn);
}

static void on_data(void *ud, struct conn *conn, const uint8_t *p, size_t n)
{
    struct client *c = ud;
    if (c->state == CS_CLOSING)
        return;
    uint64_t now = uv_now(c->env->loop);
    c->last_rx = now;
    if (c->job || c->ack_full) { /* bytes conn had in hand when it paused: kept for after */
        buf_append(&c->in, p, n);
        return;
    }
    if (buf_size(&c->in) == 0) {
        long used = decode_all(c, p, n);
        if (used >= 0 && (size_t)used < n && c->state != CS_CLOSING)
            buf_append(&c->in, p + used, n - (size_t)used);
    } else {
        buf_append(&c->in, p, n);
        long used = decode_all(c, buf_head(&c->in), buf_size(&c->in));
        if (used > 0)
            buf_consume(&c->in, (size_t)used);
        buf_shrink(&c->in, 0);
    }
    if (c->state != CS_CLOSING)
        track_partial(c, now);
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
    client__job_drop(c);
    client__acks_drop(c);
    buf_free(&c->in);
    buf_free(&c->out);
    if (c->in_alias) {
        for (size_t i = 0; i <= e->o.connect.max_topic_alias; i++)
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
    .on_idle = on_idle,
};
