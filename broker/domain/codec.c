/* codec: MQTT 3.1 / 3.1.1 / 5.0 packet decoding and encoding.
 *
 * Pure: no allocation, no I/O. Decoding reads through a bounded cursor that refuses to move past
 * the end of the packet, so no length field is ever trusted. Properties are in codec_props.c.
 * Knows nothing of sessions, topics' meaning or the broker. */
#include "codec.h"

#include "codec_props.h"
#include "utf8.h"

#include <string.h>

/* ---- errors ------------------------------------------------------------------------------- */

enum reason codec_err_reason(int err)
{
    switch (err) {
    case CODEC_ERR_PROTOCOL:
        return REASON_PROTOCOL_ERROR;
    case CODEC_ERR_TOO_LARGE:
        return REASON_PACKET_TOO_LARGE;
    case CODEC_ERR_BAD_VERSION:
        return REASON_BAD_VERSION;
    case CODEC_ERR_BAD_PROTOCOL_NAME:
        return REASON_NOT_MQTT;
    case CODEC_ERR_PAYLOAD_FORMAT:
        return REASON_PAYLOAD_FORMAT;
    default:
        return REASON_MALFORMED;
    }
}

/* ---- decoding ----------------------------------------------------------------------------- */

/* Fixed-header flags a packet type must carry (PUBLISH's are checked separately). */
static const uint8_t required_flags[16] = {
    [MQTT_PUBREL] = 2, [MQTT_SUBSCRIBE] = 2, [MQTT_UNSUBSCRIBE] = 2};

static int decode_connect(struct codec_cur *c, struct mqtt_connect *k)
{
    struct mqtt_bin name;
    uint8_t level, flags;
    if (!codec__bin(c, &name) || !codec__u8(c, &level))
        return CODEC_ERR_MALFORMED;
    bool is_mqtt = name.len == 4 && memcmp(name.p, "MQTT", 4) == 0;
    bool is_isdp = name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0;
    if (!is_mqtt && !is_isdp)
        return CODEC_ERR_BAD_PROTOCOL_NAME;
    if ((is_mqtt && level != MQTT_V311 && level != MQTT_V5) || (is_isdp && level != MQTT_V31))
        return CODEC_ERR_BAD_VERSION;
    k->version = level;
    if (!codec__u8(c, &flags) || !codec__u16(c, &k->keepalive))
        return CODEC_ERR_MALFORMED;
    if (flags & 0x01)
        return CODEC_ERR_MALFORMED; /* reserved bit */
    k->clean = flags & 0x02;
    k->will = flags & 0x04;
    k->will_qos = (flags >> 3) & 3;
    k->will_retain = flags & 0x20;
    k->has_password = flags & 0x40;
    k->has_username = flags & 0x80;
    if (k->will_qos == 3 || (!k->will && (k->will_qos || k->will_retain)))
        return CODEC_ERR_MALFORMED;
    if (level != MQTT_V5 && k->has_password && !k->has_username)
        return CODEC_ERR_MALFORMED;
    if (level == MQTT_V5) {
        int r = codec__props_decode(c, MQTT_CONNECT, &k->props);
        if (r)
            return r;
    }
    if (!codec__str(c, &k->client_id))
        return CODEC_ERR_MALFORMED;
    if (k->will) {
        if (level == MQTT_V5) {
            int r = codec__props_decode(c, CODEC_WILL_PROPS, &k->will_props);
            if (r)
                return r;
        }
        struct mqtt_bin payload;
        if (!codec__str(c, &k->will_topic) || !codec__bin(c, &payload))
            return CODEC_ERR_MALFORMED;
        k->will_payload = payload.p;
        k->will_payload_len = payload.len;
    }
    if (k->has_username && !codec__str(c, &k->username))
        return CODEC_ERR_MALFORMED;
    if (k->has_password && !codec__bin(c, &k->password))
        return CODEC_ERR_MALFORMED;
    return 0;
}

static int decode_publish(struct codec_cur *c, uint8_t flags, uint8_t version,
                          struct mqtt_publish *p)
{
    p->qos = (flags >> 1) & 3;
    p->dup = flags & 0x08;
    p->retain = flags & 0x01;
    if (p->qos == 3)
        return CODEC_ERR_MALFORMED;
    if (p->qos == 0 && p->dup)
        return CODEC_ERR_MALFORMED;
    if (!codec__str(c, &p->topic))
        return CODEC_ERR_MALFORMED;
    if (p->qos) {
        if (!codec__u16(c, &p->id))
            return CODEC_ERR_MALFORMED;
        if (p->id == 0)
            return CODEC_ERR_PROTOCOL;
    }
    if (version == MQTT_V5) {
        int r = codec__props_decode(c, MQTT_PUBLISH, &p->props);
        if (r)
            return r;
        if (p->props.present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) &&
            p->props.payload_format == 1 && !utf8_valid(c->p, (size_t)(c->end - c->p), true))
            return CODEC_ERR_PAYLOAD_FORMAT;
    }
    /* An empty topic is only meaningful in v5 with a topic alias; whether the alias is known is
     * session state and the caller's check. */
    if (p->topic.len == 0 &&
        (version != MQTT_V5 || !(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))))
        return CODEC_ERR_PROTOCOL;
    p->payload = c->p;
    p->payload_len = (uint32_t)(c->end - c->p);
    c->p = c->end;
    return 0;
}

static int decode_ack(struct codec_cur *c, uint8_t type, uint8_t version, struct mqtt_ack *a)
{
    if (!codec__u16(c, &a->id))
        return CODEC_ERR_MALFORMED;
    if (a->id == 0)
        return CODEC_ERR_PROTOCOL;
    if (version != MQTT_V5 || c->p == c->end)
        return 0;
    if (!codec__u8(c, &a->rc))
        return CODEC_ERR_MALFORMED;
    if (c->p == c->end)
        return 0;
    return codec__props_decode(c, type, &a->props);
}

/* Walk entries once to validate them and count; codec_sub_next re-walks without checks. */
static int decode_subscribe(struct codec_cur *c, uint8_t type, uint8_t version,
                            struct mqtt_subscribe *s)
{
    if (!codec__u16(c, &s->id))
        return CODEC_ERR_MALFORMED;
    if (s->id == 0)
        return CODEC_ERR_PROTOCOL;
    if (version == MQTT_V5) {
        int r = codec__props_decode(c, type, &s->props);
        if (r)
            return r;
    }
    s->entries = c->p;
    s->entries_len = (uint32_t)(c->end - c->p);
    s->count = 0;
    while (c->p < c->end) {
        struct mqtt_bin f;
        if (!codec__str(c, &f))
            return CODEC_ERR_MALFORMED;
        if (type == MQTT_SUBSCRIBE) {
            uint8_t o;
            if (!codec__u8(c, &o))
                return CODEC_ERR_MALFORMED;
            /* Reserved bits make the packet malformed in both versions [MQTT-3.8.3-4/5];
             * v5 calls QoS 3 and retain handling 3 protocol errors, 3.1.1 calls QoS 3
             * malformed. */
            if (version == MQTT_V5) {
                if (o & 0xC0)
                    return CODEC_ERR_MALFORMED;
                if ((o & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT ==
                        3 ||
                    (o & MQTT_SUBOPT_QOS_MASK) == 3)
                    return CODEC_ERR_PROTOCOL;
            } else if (o & 0xFC || (o & 3) == 3) {
                return CODEC_ERR_MALFORMED;
            }
        }
        if (s->count == UINT16_MAX)
            return CODEC_ERR_MALFORMED;
        s->count++;
    }
    if (s->count == 0)
        return CODEC_ERR_PROTOCOL;
    return 0;
}

static int decode_suback(struct codec_cur *c, uint8_t type, uint8_t version, struct mqtt_suback *s)
{
    if (!codec__u16(c, &s->id))
        return CODEC_ERR_MALFORMED;
    if (s->id == 0)
        return CODEC_ERR_PROTOCOL;
    if (type == MQTT_UNSUBACK && version != MQTT_V5)
        return 0; /* 3.1.1 UNSUBACK is the packet id alone */
    if (version == MQTT_V5) {
        int r = codec__props_decode(c, type, &s->props);
        if (r)
            return r;
    }
    /* One reason code per filter, so at least one; a count over 65535 cannot match a
     * SUBSCRIBE (its count is 16 bits as well). */
    if (c->end - c->p > UINT16_MAX)
        return CODEC_ERR_MALFORMED;
    s->rcs = c->p;
    s->count = (uint16_t)(c->end - c->p);
    c->p = c->end;
    if (s->count == 0)
        return CODEC_ERR_PROTOCOL;
    return 0;
}

static int decode_body(struct codec_cur *c, uint8_t type, uint8_t flags, uint8_t version,
                       struct mqtt_packet *out)
{
    switch (type) {
    case MQTT_CONNECT:
        return decode_connect(c, &out->u.connect);
    case MQTT_CONNACK: {
        uint8_t f;
        if (!codec__u8(c, &f) || !codec__u8(c, &out->u.connack.rc))
            return CODEC_ERR_MALFORMED;
        if (f & 0xFE)
            return CODEC_ERR_MALFORMED;
        out->u.connack.session_present = f & 1;
        if (version == MQTT_V5)
            return codec__props_decode(c, type, &out->u.connack.props);
        return 0;
    }
    case MQTT_PUBLISH:
        return decode_publish(c, flags, version, &out->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(c, type, version, &out->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(c, type, version, &out->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_suback(c, type, version, &out->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (version != MQTT_V5) {
            return type == MQTT_AUTH ? CODEC_ERR_PROTOCOL : 0;
        }
        if (c->p == c->end)
            return 0;
        if (!codec__u8(c, &out->u.disconnect.rc))
            return CODEC_ERR_MALFORMED;
        if (c->p == c->end)
            return 0;
        return codec__props_decode(c, type, &out->u.disconnect.props);
    default:
        return CODEC_ERR_MALFORMED; /* type 0 is reserved */
    }
}

long codec_decode(const uint8_t *in, size_t len, uint8_t version, uint32_t max_size,
                  struct mqtt_packet *out)
{
    if (len == 0)
        return 0;
    uint8_t type = in[0] >> 4, flags = in[0] & 0x0F;
    /* The first byte alone can be wrong: reject it before waiting for the rest. */
    if (type == 0)
        return CODEC_ERR_MALFORMED; /* reserved */
    if (type != MQTT_PUBLISH && flags != required_flags[type])
        return CODEC_ERR_MALFORMED;
    /* max_size counts the whole packet; MQTT's own ceiling applies when it is 0. Every byte
     * of the remaining length raises its lower bound, so an oversized packet is refused while
     * its header is still arriving. */
    uint64_t limit = max_size ? max_size : 268435455u + 5u;
    uint32_t rl = 0;
    size_t hl = 1;
    for (int i = 0;; i++) {
        if (hl >= len)
            return 0;
        uint8_t b = in[hl++];
        rl |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80))
            break;
        if (i == 3)
            return CODEC_ERR_MALFORMED; /* a fifth length byte would follow */
        if (hl + 1 + (uint64_t)rl > limit)
            return CODEC_ERR_TOO_LARGE;
    }
    uint64_t total = hl + (uint64_t)rl;
    if (total > limit)
        return CODEC_ERR_TOO_LARGE;
    if (len < total)
        return 0;
    if (type == MQTT_CONNECT)
        version = MQTT_V311; /* the packet sets its own level */
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->flags = flags;
    struct codec_cur c;
    codec__cur_init(&c, in + hl, rl);
    int r = decode_body(&c, type, flags, version, out);
    if (r)
        return r;
    if (c.bad)
        return CODEC_ERR_MALFORMED;
    if (c.p != c.end)
        return CODEC_ERR_MALFORMED; /* trailing bytes */
    return (long)total;
}

void codec_sub_iter(const struct mqtt_subscribe *s, bool has_options, struct mqtt_sub_iter *it)
{
    it->p = s->entries;
    it->end = s->entries + s->entries_len;
    it->has_options = has_options;
}

bool codec_sub_next(struct mqtt_sub_iter *it, struct mqtt_bin *filter, uint8_t *options)
{
    if (it->end - it->p < 2)
        return false;
    uint16_t n = (uint16_t)(it->p[0] << 8 | it->p[1]);
    size_t need = 2u + n + (it->has_options ? 1u : 0u);
    if ((size_t)(it->end - it->p) < need)
        return false;
    filter->p = it->p + 2;
    filter->len = n;
    *options = it->has_options ? it->p[2 + n] : 0;
    it->p += need;
    return true;
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* Matches codec__put_varint byte for byte, including the 5 bytes a value over MQTT's maximum
 * would take, so a size is never smaller than what gets written. */
static size_t varint_size(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : v < 268435456 ? 4 : 5;
}

static size_t props_block(const struct mqtt_props *pr, uint8_t type, uint8_t version)
{
    if (version != MQTT_V5)
        return 0;
    size_t n = codec_props_size(pr, type);
    return varint_size((uint32_t)n) + n;
}

static uint8_t *put_props(uint8_t *o, const struct mqtt_props *pr, uint8_t type, uint8_t version)
{
    if (version != MQTT_V5)
        return o;
    size_t n = codec_props_size(pr, type);
    o = codec__put_varint(o, (uint32_t)n);
    return codec__props_encode(o, pr, type);
}

/* Before v5 a password needs a user name [MQTT-3.1.2-22]; one that cannot be sent is left out
 * like every other field the version cannot represent. */
static bool password_sent(const struct mqtt_connect *k, uint8_t v)
{
    return k->has_password && (k->has_username || v == MQTT_V5);
}

/* A v5 CONNACK reason code for a 3.1/3.1.1 client: codes below 0x80 are taken to be 3.1.1
 * return codes already; failures map to the nearest 3.1.1 refusal. */
static uint8_t connack_rc_v3(uint8_t rc)
{
    switch (rc) {
    case MQTT_RC_UNSUPPORTED_VERSION:
        return MQTT_RC3_UNACCEPTABLE_VERSION;
    case MQTT_RC_CLIENTID_INVALID:
        return MQTT_RC3_IDENTIFIER_REJECTED;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
        return MQTT_RC3_SERVER_UNAVAILABLE;
    case MQTT_RC_BAD_USERNAME_PASSWORD:
        return MQTT_RC3_BAD_USERNAME_PASSWORD;
    default:
        return mqtt_rc_failed(rc) ? MQTT_RC3_NOT_AUTHORIZED : rc;
    }
}

/* Entries of a SUBSCRIBE for 3.1/3.1.1 carry only the QoS bits; the v5 option bits would make
 * the packet malformed there. Entries that do not parse are copied unchanged. */
static void mask_v3_options(uint8_t *e, uint32_t len)
{
    uint32_t i = 0;
    while (len - i >= 3) {
        uint32_t n = (uint32_t)e[i] << 8 | e[i + 1];
        if (len - i - 2 < n + 1)
            return;
        e[i + 2 + n] &= MQTT_SUBOPT_QOS_MASK;
        i += 3 + n;
    }
}

/* Body size (remaining length) of p; 0 with *ok false if it cannot be encoded. */
static size_t body_size(const struct mqtt_packet *p, uint8_t v, bool *ok)
{
    *ok = true;
    switch (p->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *k = &p->u.connect;
        size_t n = (v == MQTT_V31 ? 8 : 6) + 1 + 1 + 2 + props_block(&k->props, MQTT_CONNECT, v);
        n += 2 + k->client_id.len;
        if (k->will)
            n += props_block(&k->will_props, CODEC_WILL_PROPS, v) + 2 + k->will_topic.len + 2 +
                 k->will_payload_len;
        if (k->has_username)
            n += 2 + k->username.len;
        if (password_sent(k, v))
            n += 2 + k->password.len;
        return n;
    }
    case MQTT_CONNACK:
        return 2 + props_block(&p->u.connack.props, MQTT_CONNACK, v);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *pub = &p->u.publish;
        return 2 + pub->topic.len + (pub->qos ? 2 : 0) + props_block(&pub->props, MQTT_PUBLISH, v) +
               pub->payload_len;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        const struct mqtt_ack *a = &p->u.ack;
        if (v != MQTT_V5)
            return 2;
        size_t pn = codec_props_size(&a->props, p->type);
        if (pn)
            return 3 + varint_size((uint32_t)pn) + pn;
        return a->rc ? 3 : 2;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return 2 + props_block(&p->u.subscribe.props, p->type, v) + p->u.subscribe.entries_len;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        if (p->type == MQTT_UNSUBACK && v != MQTT_V5)
            return 2;
        return 2 + props_block(&p->u.suback.props, p->type, v) + p->u.suback.count;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: {
        if (v != MQTT_V5) {
            *ok = p->type == MQTT_DISCONNECT; /* AUTH does not exist before v5 */
            return 0;
        }
        const struct mqtt_disconnect *d = &p->u.disconnect;
        size_t pn = codec_props_size(&d->props, p->type);
        if (pn)
            return 1 + varint_size((uint32_t)pn) + pn;
        return d->rc ? 1 : 0;
    }
    default:
        *ok = false;
        return 0;
    }
}

static uint8_t *encode_connect(uint8_t *o, const struct mqtt_connect *k, uint8_t v)
{
    if (v == MQTT_V31)
        o = codec__put_bin(o, (const uint8_t *)"MQIsdp", 6);
    else
        o = codec__put_bin(o, (const uint8_t *)"MQTT", 4);
    *o++ = v;
    uint8_t f =
        (uint8_t)((k->clean ? 2 : 0) | (k->will ? 4 : 0) | (k->will ? (k->will_qos & 3) << 3 : 0) |
                  (k->will && k->will_retain ? 0x20 : 0) | (password_sent(k, v) ? 0x40 : 0) |
                  (k->has_username ? 0x80 : 0));
    *o++ = f;
    o = codec__put_u16(o, k->keepalive);
    o = put_props(o, &k->props, MQTT_CONNECT, v);
    o = codec__put_bin(o, k->client_id.p, k->client_id.len);
    if (k->will) {
        o = put_props(o, &k->will_props, CODEC_WILL_PROPS, v);
        o = codec__put_bin(o, k->will_topic.p, k->will_topic.len);
        o = codec__put_bin(o, k->will_payload, k->will_payload_len);
    }
    if (k->has_username)
        o = codec__put_bin(o, k->username.p, k->username.len);
    if (password_sent(k, v))
        o = codec__put_bin(o, k->password.p, k->password.len);
    return o;
}

static uint8_t *encode_connack(uint8_t *o, const struct mqtt_connack *ca, uint8_t v)
{
    /* 3.1 has no session present flag; its first byte is reserved. */
    *o++ = ca->session_present && v != MQTT_V31 ? 1 : 0;
    *o++ = v == MQTT_V5 ? ca->rc : connack_rc_v3(ca->rc);
    return put_props(o, &ca->props, MQTT_CONNACK, v);
}

/* Without the payload when only the head is wanted (codec_encode_publish_head). */
static uint8_t *encode_publish(uint8_t *o, const struct mqtt_publish *pub, uint8_t v,
                               bool with_payload)
{
    o = codec__put_bin(o, pub->topic.p, pub->topic.len);
    if (pub->qos)
        o = codec__put_u16(o, pub->id);
    o = put_props(o, &pub->props, MQTT_PUBLISH, v);
    if (with_payload && pub->payload_len) {
        memcpy(o, pub->payload, pub->payload_len);
        o += pub->payload_len;
    }
    return o;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP: in v5 the reason code and properties are left out when they
 * are not needed. */
static uint8_t *encode_ack(uint8_t *o, uint8_t type, const struct mqtt_ack *a, uint8_t v)
{
    o = codec__put_u16(o, a->id);
    if (v != MQTT_V5)
        return o;
    size_t pn = codec_props_size(&a->props, type);
    if (pn || a->rc)
        *o++ = a->rc;
    if (pn)
        o = put_props(o, &a->props, type, v);
    return o;
}

/* SUBSCRIBE, UNSUBSCRIBE. */
static uint8_t *encode_subscribe(uint8_t *o, uint8_t type, const struct mqtt_subscribe *s,
                                 uint8_t v)
{
    o = codec__put_u16(o, s->id);
    o = put_props(o, &s->props, type, v);
    memcpy(o, s->entries, s->entries_len);
    if (type == MQTT_SUBSCRIBE && v != MQTT_V5)
        mask_v3_options(o, s->entries_len);
    return o + s->entries_len;
}

/* SUBACK, UNSUBACK: before v5 an UNSUBACK is the packet identifier alone. */
static uint8_t *encode_suback(uint8_t *o, uint8_t type, const struct mqtt_suback *s, uint8_t v)
{
    o = codec__put_u16(o, s->id);
    if (type == MQTT_UNSUBACK && v != MQTT_V5)
        return o;
    o = put_props(o, &s->props, type, v);
    if (s->count)
        memcpy(o, s->rcs, s->count);
    return o + s->count;
}

/* DISCONNECT, AUTH: empty before v5; in v5 the reason code and properties are left out when
 * they are not needed. */
static uint8_t *encode_disconnect(uint8_t *o, uint8_t type, const struct mqtt_disconnect *d,
                                  uint8_t v)
{
    if (v != MQTT_V5)
        return o;
    size_t pn = codec_props_size(&d->props, type);
    if (pn || d->rc)
        *o++ = d->rc;
    if (pn)
        o = put_props(o, &d->props, type, v);
    return o;
}

static uint8_t *encode_body(uint8_t *o, const struct mqtt_packet *p, uint8_t v, bool with_payload)
{
    switch (p->type) {
    case MQTT_CONNECT:
        return encode_connect(o, &p->u.connect, v);
    case MQTT_CONNACK:
        return encode_connack(o, &p->u.connack, v);
    case MQTT_PUBLISH:
        return encode_publish(o, &p->u.publish, v, with_payload);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return encode_ack(o, p->type, &p->u.ack, v);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return encode_subscribe(o, p->type, &p->u.subscribe, v);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return encode_suback(o, p->type, &p->u.suback, v);
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return encode_disconnect(o, p->type, &p->u.disconnect, v);
    default:
        return o;
    }
}

static uint8_t first_byte(const struct mqtt_packet *p)
{
    if (p->type == MQTT_PUBLISH) {
        const struct mqtt_publish *pub = &p->u.publish;
        return (uint8_t)(MQTT_PUBLISH << 4 | (pub->dup ? 8 : 0) | (pub->qos & 3) << 1 |
                         (pub->retain ? 1 : 0));
    }
    return (uint8_t)(p->type << 4 | required_flags[p->type & 15]);
}

static size_t encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out, size_t cap,
                     bool with_payload)
{
    bool ok;
    size_t body = body_size(p, version, &ok);
    if (!ok || body > 268435455)
        return 0;
    size_t total = 1 + varint_size((uint32_t)body) + body;
    size_t written = with_payload ? total : total - p->u.publish.payload_len;
    if (written > cap || !out)
        return with_payload ? total : written;
    uint8_t *o = out;
    *o++ = first_byte(p);
    o = codec__put_varint(o, (uint32_t)body);
    encode_body(o, p, version, with_payload);
    return with_payload ? total : written;
}

size_t codec_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out, size_t cap)
{
    return encode(p, version, out, cap, true);
}

size_t codec_encode_publish_head(const struct mqtt_publish *pub, uint8_t version, uint8_t *out,
                                 size_t cap)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish = *pub;
    return encode(&p, version, out, cap, false);
}
