/* codec fuzz target: decode arbitrary bytes as a stream of packets under every protocol version
 * and a few size limits. Whatever decodes must: respect the limit, need more bytes when cut one
 * short, walk its entries and user properties, and re-encode to bytes that decode to the same
 * packet and re-encode identically (encode . decode is a fixed point after one step). */
#include "codec.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void walk_users(const struct mqtt_props *pr)
{
    uint32_t off = 0, prev = 0;
    struct mqtt_bin k, v;
    while (codec_user_prop_next(pr, &off, &k, &v)) {
        REQUIRE(off > prev && off <= pr->user_props_len);
        REQUIRE(utf8_valid(k.p, k.len, false) && utf8_valid(v.p, v.len, false));
        prev = off;
    }
}

/* The properties struct of any packet, for walking; NULL for PINGREQ/PINGRESP. */
static const struct mqtt_props *props_of(const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        walk_users(&p->u.connect.will_props);
        return &p->u.connect.props;
    case MQTT_CONNACK:
        return &p->u.connack.props;
    case MQTT_PUBLISH:
        return &p->u.publish.props;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return &p->u.ack.props;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return &p->u.subscribe.props;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return &p->u.suback.props;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return &p->u.disconnect.props;
    default:
        return NULL;
    }
}

static void walk(const struct mqtt_packet *p)
{
    const struct mqtt_props *pr = props_of(p);
    if (pr)
        walk_users(pr);
    if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
        struct mqtt_sub_iter it;
        struct mqtt_bin f;
        uint8_t o;
        unsigned n = 0;
        codec_sub_iter(&p->u.subscribe, p->type == MQTT_SUBSCRIBE, &it);
        while (codec_sub_next(&it, &f, &o)) {
            REQUIRE(utf8_valid(f.p, f.len, false));
            n++;
        }
        REQUIRE(n == p->u.subscribe.count && n > 0);
    }
}

/* Fields every re-encoding keeps. */
static void same(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
    REQUIRE(a->type == b->type);
    switch (a->type) {
    case MQTT_CONNECT:
        REQUIRE(bin_eq(a->u.connect.client_id, b->u.connect.client_id));
        REQUIRE(a->u.connect.will == b->u.connect.will);
        REQUIRE(bin_eq(a->u.connect.will_topic, b->u.connect.will_topic));
        REQUIRE(a->u.connect.keepalive == b->u.connect.keepalive);
        break;
    case MQTT_PUBLISH:
        REQUIRE(a->u.publish.qos == b->u.publish.qos && a->u.publish.id == b->u.publish.id);
        REQUIRE(bin_eq(a->u.publish.topic, b->u.publish.topic));
        REQUIRE(a->u.publish.payload_len == b->u.publish.payload_len);
        REQUIRE(!a->u.publish.payload_len ||
                !memcmp(a->u.publish.payload, b->u.publish.payload, a->u.publish.payload_len));
        REQUIRE(a->u.publish.props.present == b->u.publish.props.present);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        REQUIRE(a->u.ack.id == b->u.ack.id && a->u.ack.rc == b->u.ack.rc);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        REQUIRE(a->u.subscribe.id == b->u.subscribe.id);
        REQUIRE(a->u.subscribe.count == b->u.subscribe.count);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        REQUIRE(a->u.suback.id == b->u.suback.id && a->u.suback.count == b->u.suback.count);
        break;
    default:
        break;
    }
}

static void roundtrip(const struct mqtt_packet *p, uint8_t v)
{
    static uint8_t e1[1 << 17], e2[1 << 17];
    size_t n = codec_encode(p, v, NULL, 0);
    REQUIRE(n >= 2); /* everything that decodes is encodable in its own version */
    if (n > sizeof(e1))
        return;
    REQUIRE(codec_encode(p, v, e1, sizeof(e1)) == n);
    struct mqtt_packet q;
    REQUIRE(codec_decode(e1, n, v, 0, &q) == (long)n);
    same(p, &q);
    REQUIRE(codec_decode(e1, n - 1, v, 0, &q) == 0);
    REQUIRE(codec_decode(e1, n, v, 0, &q) == (long)n);
    REQUIRE(codec_encode(&q, v, e2, sizeof(e2)) == n);
    REQUIRE(memcmp(e1, e2, n) == 0);
    if (p->type == MQTT_PUBLISH) {
        uint8_t head[1 << 16];
        size_t hn = codec_encode_publish_head(&p->u.publish, v, head, sizeof(head));
        REQUIRE(hn + p->u.publish.payload_len == n && !memcmp(head, e1, hn));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    static const uint32_t limits[] = {0, 16, 4096};
    for (size_t vi = 0; vi < 3; vi++) {
        for (size_t li = 0; li < 3; li++) {
            size_t off = 0;
            while (off < size) {
                struct mqtt_packet p;
                long r = codec_decode(data + off, size - off, versions[vi], limits[li], &p);
                if (r <= 0)
                    break;
                REQUIRE((size_t)r <= size - off);
                REQUIRE(!limits[li] || (uint32_t)r <= limits[li]);
                struct mqtt_packet cut;
                REQUIRE(codec_decode(data + off, (size_t)r - 1, versions[vi], limits[li], &cut) ==
                        0);
                uint8_t v = p.type == MQTT_CONNECT ? p.u.connect.version : versions[vi];
                walk(&p);
                roundtrip(&p, v);
                off += (size_t)r;
            }
        }
    }
    return 0;
}
