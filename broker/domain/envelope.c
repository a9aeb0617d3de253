/* envelope: encode a message for another node, and parse what another node sent (layout in
 * envelope.h). The encoder writes into the caller's reused buffer so the cluster's publish path
 * allocates nothing; the decoder only borrows, and trusts nothing. */
#include "envelope.h"

#include "topic.h"
#include "utf8.h"

#include <string.h>

enum {
    F_QOS = 0x03,
    F_RETAIN = 0x04,
    F_HAS_PFI = 0x08,
    F_PFI = 0x10,
    F_HAS_EXPIRY = 0x20,
    F_HAS_ID = 0x40,
    F_KNOWN = 0x7f,
};

/* Fixed part: version, flags, node length, identity/content type/response topic/correlation
 * data lengths, user properties length. */
#define FIXED (1 + 1 + 1 + 2 * 4 + 4)

/* Each user property pair alone, as the encoder writes them (id, two length-prefixed strings):
 * the stored bytes may hold other properties between the pairs. */
static size_t user_pairs(const struct msg *m, uint8_t *out)
{
    struct mqtt_props pr = {.user_props = m->user_props, .user_props_len = m->user_props_len};
    struct mqtt_bin k = {0}, v = {0};
    uint32_t off = 0;
    size_t n = 0;
    while (codec_user_prop_next(&pr, &off, &k, &v)) {
        if (out) {
            uint8_t *o = out + n;
            o[0] = MQTT_PROP_USER_PROPERTY;
            o[1] = (uint8_t)(k.len >> 8);
            o[2] = (uint8_t)k.len;
            memcpy(o + 3, k.p, k.len);
            o[3 + k.len] = (uint8_t)(v.len >> 8);
            o[4 + k.len] = (uint8_t)v.len;
            memcpy(o + 5 + k.len, v.p, v.len);
        }
        n += 5u + k.len + v.len;
    }
    return n;
}

size_t envelope_size(const struct msg *m, const char *node, const char *identity, uint64_t id)
{
    return FIXED + (m->expiry_at ? 8 : 0) + (id ? 8 : 0) + strlen(node) + strlen(identity) +
           m->content_type.len + m->response_topic.len + m->correlation_data.len +
           (m->user_props_len ? user_pairs(m, NULL) : 0) + m->payload_len;
}

static uint8_t *put_be(uint8_t *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

static uint8_t *put_str(uint8_t *o, const void *p, size_t len, int lenbytes)
{
    o = put_be(o, len, lenbytes);
    if (len)
        memcpy(o, p, len);
    return o + len;
}

size_t envelope_encode(const struct msg *m, int64_t now, const char *node, const char *identity,
                       uint64_t id, uint8_t *out, size_t cap)
{
    size_t need = envelope_size(m, node, identity, id), nlen = strlen(node),
           ilen = strlen(identity);
    if (need > cap || nlen > 255 || ilen > 65535 || (m->expiry_at && m->expiry_at <= now))
        return 0;
    uint8_t flags = (uint8_t)(m->qos & F_QOS);
    flags |= m->retain ? F_RETAIN : 0;
    flags |= m->has_payload_format ? F_HAS_PFI | (m->payload_format ? F_PFI : 0) : 0;
    flags |= m->expiry_at ? F_HAS_EXPIRY : 0;
    flags |= id ? F_HAS_ID : 0;
    uint8_t *o = out;
    *o++ = ENVELOPE_VERSION;
    *o++ = flags;
    if (m->expiry_at)
        o = put_be(o, (uint64_t)(m->expiry_at - now), 8);
    if (id)
        o = put_be(o, id, 8);
    o = put_str(o, node, nlen, 1);
    o = put_str(o, identity, ilen, 2);
    o = put_str(o, m->content_type.p, m->content_type.len, 2);
    o = put_str(o, m->response_topic.p, m->response_topic.len, 2);
    o = put_str(o, m->correlation_data.p, m->correlation_data.len, 2);
    size_t up = m->user_props_len ? user_pairs(m, o + 4) : 0;
    o = put_be(o, up, 4) + up;
    if (m->payload_len)
        memcpy(o, m->payload, m->payload_len);
    return (size_t)(o - out) + m->payload_len;
}

/* ---- decoding ------------------------------------------------------------------------------ */

struct cur {
    const uint8_t *p, *end;
};

static bool get_be(struct cur *c, int bytes, uint64_t *v)
{
    if (c->end - c->p < bytes)
        return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++)
        x = x << 8 | *c->p++;
    *v = x;
    return true;
}

static bool get_bin(struct cur *c, int lenbytes, struct mqtt_bin *b)
{
    uint64_t len;
    if (!get_be(c, lenbytes, &len) || (uint64_t)(c->end - c->p) < len)
        return false;
    b->p = c->p;
    b->len = (uint16_t)len;
    c->p += len;
    return true;
}

static bool text_ok(const struct mqtt_bin *b)
{
    return utf8_valid(b->p, b->len, false);
}

/* Only well-formed user property pairs with UTF-8 keys and values: they go to devices as is. */
static bool user_props_ok(const uint8_t *p, uint32_t len)
{
    struct cur c = {p, p + len};
    while (c.p < c.end) {
        struct mqtt_bin k, v;
        if (*c.p++ != MQTT_PROP_USER_PROPERTY || !get_bin(&c, 2, &k) || !get_bin(&c, 2, &v) ||
            !text_ok(&k) || !text_ok(&v))
            return false;
    }
    return true;
}

static bool fields_ok(const struct envelope *e)
{
    const struct mqtt_bin *rt = &e->response_topic;
    return text_ok(&e->node) && text_ok(&e->identity) && text_ok(&e->content_type) && text_ok(rt) &&
           (!rt->len || topic_name_valid((const char *)rt->p, rt->len)) &&
           user_props_ok(e->user_props, e->user_props_len);
}

int envelope_decode(const uint8_t *p, size_t len, struct envelope *e)
{
    memset(e, 0, sizeof(*e));
    struct cur c = {p, p + len};
    uint64_t v;
    if (len < 2)
        return ENVELOPE_SHORT;
    e->version = *c.p++;
    if (e->version != ENVELOPE_VERSION)
        return ENVELOPE_VERSION_BAD;
    uint8_t flags = *c.p++;
    if ((flags & ~F_KNOWN) || (flags & F_QOS) > 2 || ((flags & F_PFI) && !(flags & F_HAS_PFI)))
        return ENVELOPE_MALFORMED;
    e->qos = flags & F_QOS;
    e->retain = flags & F_RETAIN;
    e->has_payload_format = flags & F_HAS_PFI;
    e->payload_format = (flags & F_PFI) ? 1 : 0;
    e->has_expiry = flags & F_HAS_EXPIRY;
    e->has_id = flags & F_HAS_ID;
    if ((e->has_expiry && !get_be(&c, 8, &e->expiry_ms)) || (e->has_id && !get_be(&c, 8, &e->id)))
        return ENVELOPE_SHORT;
    if (!get_bin(&c, 1, &e->node) || !get_bin(&c, 2, &e->identity) ||
        !get_bin(&c, 2, &e->content_type) || !get_bin(&c, 2, &e->response_topic) ||
        !get_bin(&c, 2, &e->correlation_data) || !get_be(&c, 4, &v) || (uint64_t)(c.end - c.p) < v)
        return ENVELOPE_SHORT;
    e->user_props = c.p;
    e->user_props_len = (uint32_t)v;
    c.p += v;
    if ((uint64_t)(c.end - c.p) > UINT32_MAX)
        return ENVELOPE_MALFORMED;
    e->payload = c.p;
    e->payload_len = (uint32_t)(c.end - c.p);
    return fields_ok(e) ? 0 : ENVELOPE_MALFORMED;
}

void envelope_publish(const struct envelope *e, const char *topic, size_t topic_len,
                      struct mqtt_publish *pub)
{
    memset(pub, 0, sizeof(*pub));
    pub->qos = e->qos;
    pub->retain = e->retain;
    pub->topic = (struct mqtt_bin){(const uint8_t *)topic, (uint16_t)topic_len};
    pub->payload = e->payload;
    pub->payload_len = e->payload_len;
    struct mqtt_props *pr = &pub->props;
    if (e->has_payload_format) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = e->payload_format;
    }
    if (e->content_type.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        pr->content_type = e->content_type;
    }
    if (e->response_topic.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        pr->response_topic = e->response_topic;
    }
    if (e->correlation_data.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        pr->correlation_data = e->correlation_data;
    }
    pr->user_props = e->user_props;
    pr->user_props_len = e->user_props_len;
}

const char *envelope_strerror(int err)
{
    switch (err) {
    case ENVELOPE_SHORT:
        return "truncated envelope";
    case ENVELOPE_VERSION_BAD:
        return "unknown envelope version";
    case ENVELOPE_MALFORMED:
        return "malformed envelope";
    default:
        return "no error";
    }
}

/* ---- certificate revocations ---------------------------------------------------------------- */

static bool revoke_valid(uint8_t kind, uint8_t serial_len)
{
    return (kind == ENVELOPE_REVOKED_CRL || kind == ENVELOPE_REVOKED_PLUGIN) && serial_len >= 1 &&
           serial_len <= 32;
}

size_t envelope_revoke_encode(const struct envelope_revoke *r, const char *node, uint8_t *out,
                              size_t cap)
{
    size_t nlen = strlen(node);
    size_t need = 2 + 32 + 1 + (size_t)r->serial_len + 1 + nlen;
    if (!revoke_valid(r->kind, r->serial_len) || nlen > 255 || need > cap)
        return 0;
    uint8_t *p = out;
    *p++ = ENVELOPE_VERSION;
    *p++ = r->kind;
    memcpy(p, r->issuer_hash, 32);
    p += 32;
    *p++ = r->serial_len;
    memcpy(p, r->serial, r->serial_len);
    p += r->serial_len;
    *p++ = (uint8_t)nlen;
    memcpy(p, node, nlen);
    return need;
}

int envelope_revoke_decode(const uint8_t *p, size_t len, struct envelope_revoke *r)
{
    memset(r, 0, sizeof(*r));
    if (len < 2)
        return ENVELOPE_SHORT;
    if (p[0] != ENVELOPE_VERSION)
        return ENVELOPE_VERSION_BAD;
    if (len < 2 + 32 + 1)
        return ENVELOPE_SHORT;
    r->kind = p[1];
    memcpy(r->issuer_hash, p + 2, 32);
    r->serial_len = p[34];
    if (!revoke_valid(r->kind, r->serial_len))
        return ENVELOPE_MALFORMED;
    size_t at = 35;
    if (len < at + r->serial_len + 1)
        return ENVELOPE_SHORT;
    memcpy(r->serial, p + at, r->serial_len);
    at += r->serial_len;
    size_t nlen = p[at++];
    if (len < at + nlen)
        return ENVELOPE_SHORT;
    if (len > at + nlen)
        return ENVELOPE_MALFORMED;
    if (!utf8_valid(p + at, nlen, false))
        return ENVELOPE_MALFORMED;
    r->node = (struct mqtt_bin){p + at, (uint16_t)nlen};
    return 0;
}
