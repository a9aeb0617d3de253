/* codec_props: MQTT 5 properties, driven by one table (identifier -> value kind, the packets it
 * may appear in, where it lives in struct mqtt_props). Unknown identifiers, properties in the
 * wrong packet and repeats of single-valued properties are protocol errors, as the 5.0
 * specification requires. Also home of the bounded read cursor and the write primitives the
 * rest of the codec uses. Like codec.c it knows nothing of sessions or the broker. */
#include "codec_props.h"
#include "utf8.h"

#include <stddef.h>
#include <string.h>

/* ---- reading ------------------------------------------------------------------------------ */

/* Every read checks the bytes left first and marks the cursor bad instead of moving past the
 * end; callers may chain reads and test `bad` once. */

void codec__cur_init(struct codec_cur *c, const uint8_t *p, size_t len)
{
    c->p = p;
    c->end = p + len;
    c->bad = false;
}

bool codec__u8(struct codec_cur *c, uint8_t *v)
{
    if (c->bad || c->p >= c->end) {
        c->bad = true;
        return false;
    }
    *v = *c->p++;
    return true;
}

bool codec__u16(struct codec_cur *c, uint16_t *v)
{
    if (c->bad || c->end - c->p < 2) {
        c->bad = true;
        return false;
    }
    *v = (uint16_t)(c->p[0] << 8 | c->p[1]);
    c->p += 2;
    return true;
}

bool codec__u32(struct codec_cur *c, uint32_t *v)
{
    if (c->bad || c->end - c->p < 4) {
        c->bad = true;
        return false;
    }
    *v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    return true;
}

bool codec__varint(struct codec_cur *c, uint32_t *v)
{
    uint32_t val = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t b;
        if (!codec__u8(c, &b))
            return false;
        val |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *v = val;
            return true;
        }
    }
    c->bad = true;
    return false;
}

bool codec__bin(struct codec_cur *c, struct mqtt_bin *b)
{
    uint16_t n;
    if (!codec__u16(c, &n))
        return false;
    if (c->end - c->p < n) {
        c->bad = true;
        return false;
    }
    b->p = c->p;
    b->len = n;
    c->p += n;
    return true;
}

bool codec__str(struct codec_cur *c, struct mqtt_bin *b)
{
    if (!codec__bin(c, b))
        return false;
    if (!utf8_valid(b->p, b->len, false)) {
        c->bad = true;
        return false;
    }
    return true;
}

/* ---- writing primitives ------------------------------------------------------------------ */

uint8_t *codec__put_varint(uint8_t *o, uint32_t v)
{
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        *o++ = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return o;
}

uint8_t *codec__put_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

uint8_t *codec__put_u32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

uint8_t *codec__put_bin(uint8_t *o, const uint8_t *p, uint16_t n)
{
    o = codec__put_u16(o, n);
    if (n)
        memcpy(o, p, n);
    return o + n;
}

/* ---- properties -------------------------------------------------------------------------- */

enum kind { K_NONE, K_BYTE, K_U16, K_U32, K_VARINT, K_STR, K_BIN, K_PAIR };

#define P(t) (1u << (t))
#define WILL P(CODEC_WILL_PROPS)
#define ACKS (P(MQTT_PUBACK) | P(MQTT_PUBREC) | P(MQTT_PUBREL) | P(MQTT_PUBCOMP))

struct prop_def {
    uint8_t kind;
    uint32_t packets; /* bit per packet type that may carry it */
    uint8_t max;      /* byte properties: largest valid value */
    uint16_t off;     /* offset of the field in struct mqtt_props */
};

#define F(field) offsetof(struct mqtt_props, field)

static const struct prop_def defs[0x2B] = {
    [0x01] = {K_BYTE, P(MQTT_PUBLISH) | WILL, 1, F(payload_format)},
    [0x02] = {K_U32, P(MQTT_PUBLISH) | WILL, 0, F(message_expiry)},
    [0x03] = {K_STR, P(MQTT_PUBLISH) | WILL, 0, F(content_type)},
    [0x08] = {K_STR, P(MQTT_PUBLISH) | WILL, 0, F(response_topic)},
    [0x09] = {K_BIN, P(MQTT_PUBLISH) | WILL, 0, F(correlation_data)},
    [0x0B] = {K_VARINT, P(MQTT_PUBLISH) | P(MQTT_SUBSCRIBE), 0, F(subscription_id)},
    [0x11] = {K_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_DISCONNECT), 0, F(session_expiry)},
    [0x12] = {K_STR, P(MQTT_CONNACK), 0, F(assigned_client_id)},
    [0x13] = {K_U16, P(MQTT_CONNACK), 0, F(server_keepalive)},
    [0x15] = {K_STR, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH), 0, F(auth_method)},
    [0x16] = {K_BIN, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH), 0, F(auth_data)},
    [0x17] = {K_BYTE, P(MQTT_CONNECT), 1, F(request_problem_info)},
    [0x18] = {K_U32, WILL, 0, F(will_delay)},
    [0x19] = {K_BYTE, P(MQTT_CONNECT), 1, F(request_response_info)},
    [0x1A] = {K_STR, P(MQTT_CONNACK), 0, F(response_info)},
    [0x1C] = {K_STR, P(MQTT_CONNACK) | P(MQTT_DISCONNECT), 0, F(server_reference)},
    [0x1F] = {K_STR,
              P(MQTT_CONNACK) | ACKS | P(MQTT_SUBACK) | P(MQTT_UNSUBACK) | P(MQTT_DISCONNECT) |
                  P(MQTT_AUTH),
              0, F(reason_string)},
    [0x21] = {K_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK), 0, F(receive_maximum)},
    [0x22] = {K_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK), 0, F(topic_alias_maximum)},
    [0x23] = {K_U16, P(MQTT_PUBLISH), 0, F(topic_alias)},
    [0x24] = {K_BYTE, P(MQTT_CONNACK), 1, F(maximum_qos)},
    [0x25] = {K_BYTE, P(MQTT_CONNACK), 1, F(retain_available)},
    [0x26] = {K_PAIR, 0xFFFFFFFFu, 0, 0},
    [0x27] = {K_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK), 0, F(maximum_packet_size)},
    [0x28] = {K_BYTE, P(MQTT_CONNACK), 1, F(wildcard_sub_available)},
    [0x29] = {K_BYTE, P(MQTT_CONNACK), 1, F(sub_id_available)},
    [0x2A] = {K_BYTE, P(MQTT_CONNACK), 1, F(shared_sub_available)},
};

static void *field(struct mqtt_props *pr, const struct prop_def *d)
{
    return (char *)pr + d->off;
}

static const void *cfield(const struct mqtt_props *pr, const struct prop_def *d)
{
    return (const char *)pr + d->off;
}

/* Values the specification forbids even though they parse. */
static bool value_ok(uint8_t id, uint32_t v)
{
    switch (id) {
    case MQTT_PROP_RECEIVE_MAXIMUM:
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
    case MQTT_PROP_TOPIC_ALIAS:
        return v != 0;
    case MQTT_PROP_SUBSCRIPTION_ID:
        return v != 0 && v <= 268435455;
    default:
        return true;
    }
}

/* Reads one property's value into its field of *pr, checking what its kind allows. Numeric
 * values (bytes aside: value_ok() has no rule for them) are also left in *v for value_ok();
 * user property pairs are only checked, the caller records their span. Returns 0 or the
 * CODEC_ERR_* codec__props_decode() returns for it. */
static int decode_value(struct codec_cur *pc, const struct prop_def *d, struct mqtt_props *pr,
                        uint32_t *v)
{
    switch (d->kind) {
    case K_BYTE: {
        uint8_t b;
        if (!codec__u8(pc, &b))
            return CODEC_ERR_MALFORMED;
        if (b > d->max)
            return CODEC_ERR_PROTOCOL;
        *(uint8_t *)field(pr, d) = b;
        break;
    }
    case K_U16: {
        uint16_t w;
        if (!codec__u16(pc, &w))
            return CODEC_ERR_MALFORMED;
        *v = w;
        *(uint16_t *)field(pr, d) = w;
        break;
    }
    case K_U32:
        if (!codec__u32(pc, v))
            return CODEC_ERR_MALFORMED;
        *(uint32_t *)field(pr, d) = *v;
        break;
    case K_VARINT:
        if (!codec__varint(pc, v))
            return CODEC_ERR_MALFORMED;
        *(uint32_t *)field(pr, d) = *v;
        break;
    case K_STR:
        if (!codec__str(pc, field(pr, d)))
            return CODEC_ERR_MALFORMED;
        break;
    case K_BIN:
        if (!codec__bin(pc, field(pr, d)))
            return CODEC_ERR_MALFORMED;
        break;
    case K_PAIR: {
        struct mqtt_bin k, val;
        if (!codec__str(pc, &k) || !codec__str(pc, &val))
            return CODEC_ERR_MALFORMED;
        break;
    }
    }
    return 0;
}

int codec__props_decode(struct codec_cur *c, uint8_t type, struct mqtt_props *pr)
{
    uint32_t len;
    if (!codec__varint(c, &len))
        return CODEC_ERR_MALFORMED;
    if ((size_t)(c->end - c->p) < len)
        return CODEC_ERR_MALFORMED;
    struct codec_cur pc;
    codec__cur_init(&pc, c->p, len);
    c->p += len;
    const uint8_t *user_start = NULL, *user_end = NULL;
    while (pc.p < pc.end) {
        uint32_t id32;
        const uint8_t *prop_start = pc.p;
        if (!codec__varint(&pc, &id32))
            return CODEC_ERR_MALFORMED;
        if (id32 >= sizeof(defs) / sizeof(defs[0]) || defs[id32].kind == K_NONE)
            return CODEC_ERR_PROTOCOL;
        uint8_t id = (uint8_t)id32;
        const struct prop_def *d = &defs[id];
        if (!(d->packets & P(type)))
            return CODEC_ERR_PROTOCOL;
        uint64_t bit = MQTT_PROP_BIT(id);
        /* Only user properties may repeat, plus subscription identifiers in a PUBLISH (a
         * server sends one per matching subscription; a client may send none, which the
         * caller checks as it knows the direction). The first identifier is kept. */
        if (pr->present & bit) {
            if (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH) {
                uint32_t ignored;
                if (!codec__varint(&pc, &ignored))
                    return CODEC_ERR_MALFORMED;
                if (!value_ok(id, ignored))
                    return CODEC_ERR_PROTOCOL;
                continue;
            }
            if (d->kind != K_PAIR)
                return CODEC_ERR_PROTOCOL;
        }
        uint32_t v = 0;
        int r = decode_value(&pc, d, pr, &v);
        if (r)
            return r;
        if (d->kind == K_PAIR) {
            /* The span runs from the first user property's identifier to the end of the last
             * one; other properties inside it are skipped when it is walked. */
            if (!user_start)
                user_start = prop_start;
            user_end = pc.p;
        }
        if (!value_ok(id, v))
            return CODEC_ERR_PROTOCOL;
        pr->present |= bit;
    }
    if (pc.bad)
        return CODEC_ERR_MALFORMED;
    if (user_start) {
        pr->user_props = user_start;
        pr->user_props_len = (uint32_t)(user_end - user_start);
    }
    return 0;
}

/* Next property in a validated span; returns its identifier (0 at the end) and, for user
 * properties, the pair. */
static uint8_t span_next(struct codec_cur *c, struct mqtt_bin *k, struct mqtt_bin *v)
{
    uint32_t id;
    if (c->p >= c->end || !codec__varint(c, &id) || id >= sizeof(defs) / sizeof(defs[0]))
        return 0;
    struct mqtt_bin skip;
    uint8_t b;
    uint16_t w;
    uint32_t x;
    bool ok;
    switch (defs[id].kind) {
    case K_BYTE:
        ok = codec__u8(c, &b);
        break;
    case K_U16:
        ok = codec__u16(c, &w);
        break;
    case K_U32:
        ok = codec__u32(c, &x);
        break;
    case K_VARINT:
        ok = codec__varint(c, &x);
        break;
    case K_STR:
    case K_BIN:
        ok = codec__bin(c, &skip);
        break;
    case K_PAIR:
        ok = codec__bin(c, k) && codec__bin(c, v);
        break;
    default:
        ok = false;
    }
    return ok ? (uint8_t)id : 0;
}

bool codec_user_prop_next(const struct mqtt_props *pr, uint32_t *off, struct mqtt_bin *k,
                          struct mqtt_bin *v)
{
    struct codec_cur c;
    if (*off >= pr->user_props_len)
        return false;
    codec__cur_init(&c, pr->user_props + *off, pr->user_props_len - *off);
    for (;;) {
        uint8_t id = span_next(&c, k, v);
        if (!id)
            return false;
        *off = (uint32_t)(c.p - pr->user_props);
        if (id == MQTT_PROP_USER_PROPERTY)
            return true;
    }
}

/* Size of (and, with out, the bytes of) the user properties alone. */
static size_t user_props_put(const struct mqtt_props *pr, uint8_t *out)
{
    size_t n = 0;
    uint32_t off = 0;
    struct mqtt_bin k = {0}, v = {0}; /* gcc -O3 does not see that next() sets both */
    while (codec_user_prop_next(pr, &off, &k, &v)) {
        if (out) {
            out[n] = MQTT_PROP_USER_PROPERTY;
            codec__put_bin(codec__put_bin(out + n + 1, k.p, k.len), v.p, v.len);
        }
        n += 5u + k.len + v.len;
    }
    return n;
}

/* Matches codec__put_varint, 5 bytes for values over MQTT's maximum included. */
static size_t varint_size(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : v < 268435456 ? 4 : 5;
}

/* Encoding walks the same table; a property is written when its bit is present and the packet
 * type may carry it, so a caller can pass one props struct to any packet. A PUBLISH carries
 * sub_ids[0..sub_id_count) when that list is set, otherwise the single subscription_id when
 * its bit is present (what decoding fills in), so a decoded PUBLISH re-encodes as it came. */
size_t codec_props_size(const struct mqtt_props *pr, uint8_t type)
{
    size_t n = 0;
    for (uint8_t id = 1; id < sizeof(defs) / sizeof(defs[0]); id++) {
        const struct prop_def *d = &defs[id];
        if (d->kind == K_NONE || d->kind == K_PAIR || !(d->packets & P(type)))
            continue;
        if (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH && pr->sub_id_count) {
            for (uint8_t i = 0; i < pr->sub_id_count; i++)
                n += 1 + varint_size(pr->sub_ids[i]);
            continue;
        }
        if (!(pr->present & MQTT_PROP_BIT(id)))
            continue;
        switch (d->kind) {
        case K_BYTE:
            n += 2;
            break;
        case K_U16:
            n += 3;
            break;
        case K_U32:
            n += 5;
            break;
        case K_VARINT:
            n += 1 + varint_size(*(const uint32_t *)cfield(pr, d));
            break;
        default:
            n += 3 + ((const struct mqtt_bin *)cfield(pr, d))->len;
        }
    }
    if (pr->user_props_len)
        n += user_props_put(pr, NULL);
    return n;
}

uint8_t *codec__props_encode(uint8_t *o, const struct mqtt_props *pr, uint8_t type)
{
    for (uint8_t id = 1; id < sizeof(defs) / sizeof(defs[0]); id++) {
        const struct prop_def *d = &defs[id];
        if (d->kind == K_NONE || d->kind == K_PAIR || !(d->packets & P(type)))
            continue;
        if (id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH && pr->sub_id_count) {
            for (uint8_t i = 0; i < pr->sub_id_count; i++) {
                *o++ = id;
                o = codec__put_varint(o, pr->sub_ids[i]);
            }
            continue;
        }
        if (!(pr->present & MQTT_PROP_BIT(id)))
            continue;
        *o++ = id;
        switch (d->kind) {
        case K_BYTE:
            *o++ = *(const uint8_t *)cfield(pr, d);
            break;
        case K_U16:
            o = codec__put_u16(o, *(const uint16_t *)cfield(pr, d));
            break;
        case K_U32:
            o = codec__put_u32(o, *(const uint32_t *)cfield(pr, d));
            break;
        case K_VARINT:
            o = codec__put_varint(o, *(const uint32_t *)cfield(pr, d));
            break;
        default: {
            const struct mqtt_bin *b = cfield(pr, d);
            o = codec__put_bin(o, b->p, b->len);
        }
        }
    }
    if (pr->user_props_len)
        o += user_props_put(pr, o);
    return o;
}
