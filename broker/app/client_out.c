/* client_out: the output side of the client module: control packets, the write slot that
 * pulls publishes from the session into one scratch buffer (so a loop turn becomes few TLS
 * records), topic aliases toward MQTT 5 clients, and per-subscriber maximum packet size. */
#include "client_int.h"

#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- output ------------------------------------------------------------------------------- */

void client__send(struct client *c, const struct mqtt_packet *p)
{
    if (c->state == CS_CLOSING)
        return;
    size_t n = codec_encode(p, c->version, NULL, 0);
    if (!n)
        return;
    codec_encode(p, c->version, buf_reserve(&c->out, n), n);
    buf_commit(&c->out, n);
    conn_want_write(c->conn);
}

void client__send_ack(struct client *c, uint8_t type, uint16_t id, uint8_t rc)
{
    struct mqtt_packet p = {0};
    p.type = type;
    p.flags = type == MQTT_PUBREL ? 0x2 : 0;
    p.u.ack.id = id;
    p.u.ack.rc = rc;
    client__send(c, &p);
}

static void scratch_flush(struct client *c)
{
    struct client_env *e = c->env;
    if (e->scratch_len) {
        conn_write(c->conn, e->scratch, e->scratch_len);
        e->scratch_len = 0;
    }
}

static void scratch_put(struct client *c, const uint8_t *p, size_t n)
{
    struct client_env *e = c->env;
    if (e->scratch_len + n > SCRATCH_SIZE)
        scratch_flush(c);
    if (n > SCRATCH_SIZE) {
        conn_write(c->conn, p, n);
        return;
    }
    memcpy(e->scratch + e->scratch_len, p, n);
    e->scratch_len += n;
}

/* MQTT 5 properties of an outgoing PUBLISH (and the topic alias, which can empty its topic).
 * A new alias is only proposed (*new_alias): it is registered once the packet is known to fit
 * the subscriber's maximum packet size, or the next send of the topic would carry an alias the
 * client never learnt. */
static void publish_props_v5(struct client *c, const struct session_out *o,
                             struct mqtt_publish *pub, bool *new_alias)
{
    const struct msg *m = o->msg;
    struct mqtt_props *pr = &pub->props;
    if (m->has_payload_format) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = m->payload_format;
    }
    if (m->expiry_at) {
        int64_t left = (m->expiry_at - client__now(c) + 999) / 1000;
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
        pr->message_expiry = left > 0 ? (uint32_t)left : 1;
    }
    if (m->content_type.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        pr->content_type = m->content_type;
    }
    if (m->response_topic.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        pr->response_topic = m->response_topic;
    }
    if (m->correlation_data.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        pr->correlation_data = m->correlation_data;
    }
    pr->user_props = m->user_props;
    pr->user_props_len = m->user_props_len;
    pr->sub_ids = o->sub_ids;
    pr->sub_id_count = o->n_sub_ids;
    if (c->out_alias_max) {
        /* The first topics sent get an alias while the client allows more; later sends of
         * an aliased topic carry only the alias. */
        struct out_alias *a;
        HASH_FIND(hh, c->out_alias, m->topic, m->topic_len, a);
        if (a) {
            pub->topic.len = 0;
            pr->topic_alias = a->alias;
        } else if (c->out_alias_count < c->out_alias_max) {
            *new_alias = true;
            pr->topic_alias = (uint16_t)(c->out_alias_count + 1);
        }
        if (a || *new_alias)
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    }
}

static void alias_register(struct client *c, const struct msg *m)
{
    struct out_alias *a = xmalloc(sizeof(*a));
    a->topic = xstrndup(m->topic, m->topic_len);
    a->alias = ++c->out_alias_count;
    HASH_ADD_KEYPTR(hh, c->out_alias, a->topic, m->topic_len, a);
}

/* Encode one outgoing PUBLISH: head into scratch, payload after it (or straight to the
 * transport when it is large), so the payload is never copied twice. */
static void emit_publish(struct client *c, const struct session_out *o)
{
    struct client_env *e = c->env;
    const struct msg *m = o->msg;
    struct mqtt_publish pub = {0};
    pub.qos = o->qos;
    pub.dup = o->dup && o->qos > 0;
    pub.retain = o->retain;
    pub.topic.p = (const uint8_t *)m->topic;
    pub.topic.len = m->topic_len;
    pub.id = o->id;
    pub.payload = m->payload;
    pub.payload_len = m->payload_len;
    bool new_alias = false;
    if (c->version == MQTT_V5)
        publish_props_v5(c, o, &pub, &new_alias);
    uint8_t head[1024];
    size_t hn = codec_encode_publish_head(&pub, c->version, head, sizeof(head));
    uint8_t *big = NULL;
    if (hn > sizeof(head)) {
        big = xmalloc(hn);
        codec_encode_publish_head(&pub, c->version, big, hn);
    }
    if (!hn || (c->peer_max_packet && hn + m->payload_len > c->peer_max_packet)) {
        free(big); /* too large for this subscriber: dropped for it alone */
        broker_stats(e->broker)->msgs_dropped++;
        if (o->qos > 0) {
            if (o->qos == 1)
                session_puback(c->session, o->id);
            else {
                session_pubrec(c->session, o->id);
                session_pubcomp(c->session, o->id);
            }
        }
        return;
    }
    if (new_alias)
        alias_register(c, m);
    scratch_put(c, big ? big : head, hn);
    free(big);
    scratch_put(c, m->payload, m->payload_len);
    struct broker_stats *st = broker_stats(e->broker);
    st->msgs_sent++;
    st->bytes_sent += hn + m->payload_len;
    st->msgs_sent_qos[o->qos]++;
    st->bytes_sent_qos[o->qos] += hn + m->payload_len;
}

void client__on_writable(void *ud, struct conn *conn)
{
    struct client *c = ud;
    struct client_env *e = c->env;
    e->scratch_len = 0;
    if (buf_size(&c->out)) {
        scratch_put(c, buf_head(&c->out), buf_size(&c->out));
        buf_consume(&c->out, buf_size(&c->out));
        buf_shrink(&c->out, 1024);
    }
    /* While a SUBSCRIBE is being worked on, its retained messages wait behind its SUBACK. */
    if (c->session && c->state == CS_CONNECTED && !c->job) {
        struct session_out o;
        int64_t now = client__now(c);
        while (!conn_output_full(conn) && session_next_out(c->session, now, &o)) {
            if (o.kind == SESSION_OUT_PUBREL) {
                uint8_t tmp[64];
                struct mqtt_packet p = {0};
                p.type = MQTT_PUBREL;
                p.flags = 0x2;
                p.u.ack.id = o.id;
                size_t n = codec_encode(&p, c->version, tmp, sizeof(tmp));
                if (n <= sizeof(tmp)) /* always: a PUBREL without properties is 4 bytes */
                    scratch_put(c, tmp, n);
            } else {
                emit_publish(c, &o);
            }
        }
    }
    scratch_flush(c);
    /* Resumes from conn's write_cb when the backlog drains (conn_want_write there). */
}

/* ---- closing ------------------------------------------------------------------------------ */

/* Longest MQTT 5 Reason String we send: our texts are shorter; a cap keeps a long detail from
 * making a packet the client may not accept. */
#define REASON_STRING_MAX 200

void client__reason_string(const struct client *c, struct mqtt_props *pr, const char *why)
{
    if (why && !c->no_problem_info) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        pr->reason_string.p = (const uint8_t *)why;
        pr->reason_string.len = (uint16_t)strnlen(why, REASON_STRING_MAX);
    }
}

void client__send_disconnect(struct client *c, uint8_t rc, const char *why)
{
    if (c->state != CS_CONNECTED)
        return;
    struct mqtt_packet p = {0};
    p.type = MQTT_DISCONNECT;
    p.u.disconnect.rc = rc;
    client__reason_string(c, &p.u.disconnect.props, why);
    /* Behind the control packets still queued, and written now: the connection closes next.
     * 3.1.1 has no server DISCONNECT, but the acknowledgements of messages already accepted
     * still go out, so that the client does not send them again. */
    size_t n = c->version == MQTT_V5 ? codec_encode(&p, c->version, NULL, 0) : 0;
    if (n) {
        codec_encode(&p, c->version, buf_reserve(&c->out, n), n);
        buf_commit(&c->out, n);
    }
    if (buf_size(&c->out)) {
        conn_write(c->conn, buf_head(&c->out), buf_size(&c->out));
        buf_consume(&c->out, buf_size(&c->out));
    }
}
