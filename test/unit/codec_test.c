/* codec: round trips for every packet type and version, every split point, malformed input. */
#include "check.h"
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define B(s) ((struct mqtt_bin){(const uint8_t *)(s), (uint16_t)(sizeof(s) - 1)})

static size_t enc(const struct mqtt_packet *p, uint8_t v, uint8_t *out)
{
    size_t n = codec_encode(p, v, NULL, 0);
    CHECK(n > 0 && n < 4096);
    CHECK_EQ_INT(codec_encode(p, v, out, 4096), n);
    return n;
}

/* Feed every prefix: 0 until complete; then the full decode. Also decode at every split of a
 * two-packet stream. */
static void splits(const uint8_t *buf, size_t n, uint8_t v)
{
    struct mqtt_packet p;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(codec_decode(buf, i, v, 0, &p), 0);
    CHECK_EQ_INT(codec_decode(buf, n, v, 0, &p), (long)n);
    uint8_t two[8192];
    memcpy(two, buf, n);
    memcpy(two + n, buf, n);
    CHECK_EQ_INT(codec_decode(two, 2 * n, v, 0, &p), (long)n);
    CHECK_EQ_INT(codec_decode(two + n, n, v, 0, &p), (long)n);
}

static void test_connect(uint8_t v)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    struct mqtt_connect *k = &p.u.connect;
    k->version = v;
    k->clean = true;
    k->keepalive = 30;
    k->client_id = B("dev-1");
    k->will = true;
    k->will_qos = 1;
    k->will_retain = true;
    k->will_topic = B("devices/dev-1/status");
    k->will_payload = (const uint8_t *)"gone";
    k->will_payload_len = 4;
    k->has_username = k->has_password = true;
    k->username = B("ignored");
    k->password = B("secret");
    if (v == MQTT_V5) {
        k->props.present =
            MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) | MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        k->props.session_expiry = 3600;
        k->props.receive_maximum = 10;
        k->will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
        k->will_props.will_delay = 5;
    }
    uint8_t buf[4096];
    size_t n = enc(&p, v, buf);
    struct mqtt_packet d;
    CHECK_EQ_INT(codec_decode(buf, n, 0, 0, &d), (long)n);
    CHECK_EQ_INT(d.type, MQTT_CONNECT);
    CHECK_EQ_INT(d.u.connect.version, v);
    CHECK_EQ_INT(d.u.connect.keepalive, 30);
    CHECK(d.u.connect.clean && d.u.connect.will && d.u.connect.will_retain);
    CHECK_EQ_INT(d.u.connect.will_qos, 1);
    CHECK(d.u.connect.client_id.len == 5 && !memcmp(d.u.connect.client_id.p, "dev-1", 5));
    CHECK(d.u.connect.will_payload_len == 4 && !memcmp(d.u.connect.will_payload, "gone", 4));
    CHECK(d.u.connect.password.len == 6);
    if (v == MQTT_V5) {
        CHECK_EQ_INT(d.u.connect.props.session_expiry, 3600);
        CHECK_EQ_INT(d.u.connect.props.receive_maximum, 10);
        CHECK_EQ_INT(d.u.connect.will_props.will_delay, 5);
    }
    splits(buf, n, 0);
}

static void test_publish(uint8_t v)
{
    static uint8_t payload[3000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    for (uint8_t q = 0; q < 3; q++) {
        struct mqtt_packet p = {.type = MQTT_PUBLISH};
        struct mqtt_publish *pub = &p.u.publish;
        pub->qos = q;
        pub->retain = q == 1;
        pub->dup = q == 2;
        pub->topic = B("a/b/c");
        pub->id = q ? 77 : 0;
        pub->payload = payload;
        pub->payload_len = sizeof(payload);
        uint32_t ids[2] = {5, 300};
        if (v == MQTT_V5) {
            pub->props.present =
                MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) | MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
            pub->props.content_type = B("text/plain");
            pub->props.message_expiry = 60;
            /* user properties as raw property bytes */
            static const uint8_t up[] = {0x26, 0, 1, 'k', 0, 1, 'v', 0x26, 0, 1, 'x', 0, 0};
            pub->props.user_props = up;
            pub->props.user_props_len = sizeof(up);
            pub->props.sub_ids = ids;
            pub->props.sub_id_count = 0; /* a client may not send them */
        }
        uint8_t buf[8192];
        size_t n = enc(&p, v, buf);
        struct mqtt_packet d;
        CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
        CHECK_EQ_INT(d.u.publish.qos, q);
        CHECK_EQ_INT(d.u.publish.id, pub->id);
        CHECK(d.u.publish.payload_len == sizeof(payload) &&
              !memcmp(d.u.publish.payload, payload, sizeof(payload)));
        if (v == MQTT_V5) {
            CHECK_EQ_INT(d.u.publish.props.message_expiry, 60);
            uint32_t off = 0;
            struct mqtt_bin k, val;
            int pairs = 0;
            while (codec_user_prop_next(&d.u.publish.props, &off, &k, &val))
                pairs++;
            CHECK_EQ_INT(pairs, 2);
        }
        splits(buf, n, v);
        /* The head encoder writes everything but the payload. */
        uint8_t head[256];
        size_t hn = codec_encode_publish_head(pub, v, head, sizeof(head));
        CHECK_EQ_INT(hn, n - sizeof(payload));
        CHECK(!memcmp(head, buf, hn));
    }
}

static void test_small_packets(uint8_t v)
{
    uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t i = 0; i < sizeof(types); i++) {
        struct mqtt_packet p = {.type = types[i]};
        p.u.ack.id = 513;
        p.u.ack.rc = v == MQTT_V5 ? 0x10 : 0;
        uint8_t buf[64];
        size_t n = enc(&p, v, buf);
        struct mqtt_packet d;
        CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
        CHECK_EQ_INT(d.type, types[i]);
        CHECK_EQ_INT(d.u.ack.id, 513);
        CHECK_EQ_INT(d.u.ack.rc, p.u.ack.rc);
    }
    /* SUBSCRIBE with two entries, then SUBACK */
    static const uint8_t entries[] = {0, 3, 'a', '/', '#', 1, 0, 1, 'b', 2};
    struct mqtt_packet s = {.type = MQTT_SUBSCRIBE};
    s.u.subscribe.id = 9;
    s.u.subscribe.entries = entries;
    s.u.subscribe.entries_len = sizeof(entries);
    uint8_t buf[128];
    size_t n = enc(&s, v, buf);
    struct mqtt_packet d;
    CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
    CHECK_EQ_INT(d.u.subscribe.count, 2);
    struct mqtt_sub_iter it;
    struct mqtt_bin f;
    uint8_t o;
    codec_sub_iter(&d.u.subscribe, true, &it);
    CHECK(codec_sub_next(&it, &f, &o) && f.len == 3 && o == 1);
    CHECK(codec_sub_next(&it, &f, &o) && f.len == 1 && o == 2);
    CHECK(!codec_sub_next(&it, &f, &o));
    splits(buf, n, v);
    uint8_t rcs[] = {1, 0x80};
    struct mqtt_packet a = {.type = MQTT_SUBACK};
    a.u.suback.id = 9;
    a.u.suback.rcs = rcs;
    a.u.suback.count = 2;
    n = enc(&a, v, buf);
    CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
    CHECK(d.u.suback.count == 2 && d.u.suback.rcs[1] == 0x80);
    struct mqtt_packet ping = {.type = MQTT_PINGREQ};
    n = enc(&ping, v, buf);
    CHECK_EQ_INT(n, 2);
    struct mqtt_packet disc = {.type = MQTT_DISCONNECT};
    disc.u.disconnect.rc = 0x8E;
    n = enc(&disc, v, buf);
    CHECK_EQ_INT(n, v == MQTT_V5 ? 3 : 2);
    CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
    struct mqtt_packet ca = {.type = MQTT_CONNACK};
    ca.u.connack.session_present = true;
    ca.u.connack.rc = 0;
    n = enc(&ca, v, buf);
    CHECK_EQ_INT(codec_decode(buf, n, v, 0, &d), (long)n);
    CHECK(d.u.connack.session_present);
}

static void bad(const uint8_t *b, size_t n, uint8_t v, int want)
{
    struct mqtt_packet p;
    long r = codec_decode(b, n, v, 0, &p);
    if (r != want)
        fprintf(stderr, "  bad case: got %ld want %d (first byte %02x)\n", r, want, b[0]);
    CHECK_EQ_INT(r, want);
}

static void test_malformed(void)
{
    bad((const uint8_t *)"\x30\xff\xff\xff\xff\x01", 6, 4, CODEC_ERR_MALFORMED);
    bad((const uint8_t *)"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", 14, 0,
        CODEC_ERR_MALFORMED);
    bad((const uint8_t *)"\x10\x0c\x00\x04HTTP\x04\x02\x00\x3c\x00\x00", 14, 0,
        CODEC_ERR_BAD_PROTOCOL_NAME);
    bad((const uint8_t *)"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00", 14, 0,
        CODEC_ERR_BAD_VERSION);
    /* password without user name in 3.1.1 */
    bad((const uint8_t *)"\x10\x0c\x00\x04MQTT\x04\x42\x00\x3c\x00\x00", 14, 0,
        CODEC_ERR_MALFORMED);
    bad((const uint8_t *)"\x36\x05\x00\x01x\x00\x01", 7, 4, CODEC_ERR_MALFORMED);     /* QoS 3 */
    bad((const uint8_t *)"\x38\x03\x00\x01x", 5, 4, CODEC_ERR_MALFORMED);             /* DUP QoS0 */
    bad((const uint8_t *)"\x32\x05\x00\x01x\x00\x00", 7, 4, CODEC_ERR_PROTOCOL);      /* id 0 */
    bad((const uint8_t *)"\x80\x06\x00\x01\x00\x01x\x00", 8, 4, CODEC_ERR_MALFORMED); /* flags */
    bad((const uint8_t *)"\x82\x02\x00\x01", 4, 4, CODEC_ERR_PROTOCOL); /* no entries */
    bad((const uint8_t *)"\x82\x06\x00\x01\x00\x01x\x03", 8, 4, CODEC_ERR_MALFORMED); /* qos 3 */
    bad((const uint8_t *)"\x30\x04\x00\x02\xc0\x80", 6, 4, CODEC_ERR_MALFORMED);      /* overlong */
    bad((const uint8_t *)"\x30\x03\x00\x01\x00", 5, 4, CODEC_ERR_MALFORMED);          /* U+0000 */
    bad((const uint8_t *)"\x30\x02\x00\x05", 4, 4, CODEC_ERR_MALFORMED); /* truncated */
    bad((const uint8_t *)"\xc0\x01\x00", 3, 4, CODEC_ERR_MALFORMED);     /* trailing */
    bad((const uint8_t *)"\x00\x00", 2, 4, CODEC_ERR_MALFORMED);         /* type 0 */
    bad((const uint8_t *)"\xf0\x00", 2, 4, CODEC_ERR_PROTOCOL);          /* AUTH v3 */
    /* v5: unknown property, duplicate property, property not allowed in the packet */
    bad((const uint8_t *)"\x30\x06\x00\x01x\x02\x7f\x00", 8, 5, CODEC_ERR_PROTOCOL);
    bad((const uint8_t *)"\x30\x08\x00\x01x\x04\x01\x01\x01\x01", 10, 5, CODEC_ERR_PROTOCOL);
    bad((const uint8_t *)"\x30\x06\x00\x01x\x02\x24\x01", 8, 5, CODEC_ERR_PROTOCOL);
    bad((const uint8_t *)"\x30\x06\x00\x01x\x02\x01\x02", 8, 5, CODEC_ERR_PROTOCOL); /* pfi 2 */
    bad((const uint8_t *)"\x30\x07\x00\x01x\x02\x01\x01\xff", 9, 5, CODEC_ERR_PAYLOAD_FORMAT);
    /* too large is known from the header alone */
    struct mqtt_packet p;
    CHECK_EQ_INT(codec_decode((const uint8_t *)"\x30\xff\x7f", 3, 4, 1000, &p),
                 CODEC_ERR_TOO_LARGE);
}

static void test_utf8(void)
{
    CHECK(codec_utf8_valid((const uint8_t *)"caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CHECK(!codec_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
    CHECK(!codec_utf8_valid((const uint8_t *)"\xe0\x80\x80", 3)); /* overlong */
    CHECK(!codec_utf8_valid((const uint8_t *)"\xf0\x9f\x98", 3)); /* truncated */
    CHECK(!codec_utf8_valid((const uint8_t *)"a\0b", 3));
    CHECK(!codec_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

int main(void)
{
    uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    for (size_t i = 0; i < 3; i++) {
        test_connect(versions[i]);
        test_publish(versions[i]);
        test_small_packets(versions[i]);
    }
    test_malformed();
    test_utf8();
    return check_finish("codec_test");
}
