/* envelope: a message with every carried property survives encode -> decode -> msg_new; the
 * user properties are re-packed as pairs; every truncation, an unknown version or flag, and
 * invalid text are refused; an expired message is not encoded. */
#include "check.h"
#include "envelope.h"
#include "msg.h"

#include <stdint.h>
#include <string.h>

#define BIN(s) ((struct mqtt_bin){(const uint8_t *)(s), (uint16_t)(sizeof(s) - 1)})

/* user property a=1, then a content type (skipped when walked), then user property b=22 */
static const uint8_t raw_up[] = {0x26, 0,    1, 'a', 0,   1, '1', 0x03, 0,  1,
                                 'x',  0x26, 0, 1,   'b', 0, 2,   '2',  '2'};
static const uint8_t pairs[] = {0x26, 0, 1, 'a', 0, 1, '1', 0x26, 0, 1, 'b', 0, 2, '2', '2'};

static struct msg *sample(int64_t expiry_at)
{
    struct mqtt_publish pub = {
        .qos = 1, .retain = true, .payload = (const uint8_t *)"hello", .payload_len = 5};
    struct mqtt_props *pr = &pub.props;
    pr->present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
                  MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                  MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
    pr->payload_format = 1;
    pr->content_type = BIN("text/plain");
    pr->response_topic = BIN("reply/to");
    pr->correlation_data = BIN("\x00\x01\x02");
    pr->user_props = raw_up;
    pr->user_props_len = sizeof(raw_up);
    return msg_new("a/b", 3, &pub, expiry_at, 9);
}

static void test_roundtrip(void)
{
    struct msg *m = sample(1000 + 5000);
    uint8_t buf[512];
    size_t n =
        envelope_encode(m, 1000, "node-1", "device-7", 0x0102030405060708ull, buf, sizeof(buf));
    CHECK(n > 0);
    CHECK_EQ_INT(n, envelope_size(m, "node-1", "device-7", 1));
    struct envelope e;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), 0);
    CHECK_EQ_INT(e.qos, 1);
    CHECK(e.retain && e.has_payload_format && e.payload_format == 1);
    CHECK(e.has_expiry && e.expiry_ms == 5000);
    CHECK(e.has_id && e.id == 0x0102030405060708ull);
    CHECK(e.node.len == 6 && memcmp(e.node.p, "node-1", 6) == 0);
    CHECK(e.identity.len == 8 && memcmp(e.identity.p, "device-7", 8) == 0);
    CHECK(e.payload_len == 5 && memcmp(e.payload, "hello", 5) == 0);
    CHECK(e.user_props_len == sizeof(pairs) && memcmp(e.user_props, pairs, sizeof(pairs)) == 0);

    struct mqtt_publish pub;
    envelope_publish(&e, "a/b", 3, &pub);
    struct msg *r = msg_new("a/b", 3, &pub, 7000, 1);
    CHECK(r->qos == 1 && r->retain && r->has_payload_format && r->payload_format == 1);
    CHECK(r->content_type.len == 10 && memcmp(r->content_type.p, "text/plain", 10) == 0);
    CHECK(r->response_topic.len == 8 && memcmp(r->response_topic.p, "reply/to", 8) == 0);
    CHECK(r->correlation_data.len == 3 && memcmp(r->correlation_data.p, "\0\1\2", 3) == 0);
    CHECK(r->payload_len == 5 && memcmp(r->payload, "hello", 5) == 0);
    CHECK_EQ_INT(strcmp(r->topic, "a/b"), 0);

    /* The same message encoded again from the decoded copy is the same bytes. */
    uint8_t buf2[512];
    size_t n2 = envelope_encode(r, 2000, "node-1", "device-7", e.id, buf2, sizeof(buf2));
    CHECK(n2 == n && memcmp(buf, buf2, n) == 0);

    /* Every truncation is refused. */
    for (size_t cut = 0; cut < n - 5; cut++)
        CHECK(envelope_decode(buf, cut, &e) < 0);
    CHECK_EQ_INT(envelope_encode(m, 1000, "node-1", "device-7", 1, buf, n - 1), 0);
    CHECK_EQ_INT(envelope_encode(m, 6000, "node-1", "device-7", 1, buf, sizeof(buf)), 0);
    /* Without an id: 8 bytes fewer, and none decoded. */
    CHECK_EQ_INT(envelope_encode(m, 1000, "node-1", "device-7", 0, buf, sizeof(buf)), n - 8);
    CHECK_EQ_INT(envelope_decode(buf, n - 8, &e), 0);
    CHECK(!e.has_id && e.id == 0 && e.payload_len == 5);
    msg_unref(r);
    msg_unref(m);
}

static void test_minimal_and_bad(void)
{
    struct mqtt_publish pub = {.qos = 0};
    struct msg *m = msg_new("x", 1, &pub, 0, 1);
    uint8_t buf[64];
    size_t n = envelope_encode(m, 0, "", "", 0, buf, sizeof(buf));
    CHECK_EQ_INT(n, 15);
    struct envelope e;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), 0);
    CHECK(!e.has_expiry && !e.has_payload_format && !e.retain && e.payload_len == 0);
    buf[0] = 2;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), ENVELOPE_VERSION_BAD);
    buf[0] = 1;
    buf[1] = 0x80;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), ENVELOPE_MALFORMED);
    buf[1] = 0x40; /* an id, but 13 bytes cannot hold it and the rest */
    CHECK_EQ_INT(envelope_decode(buf, n, &e), ENVELOPE_SHORT);
    buf[1] = 3;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), ENVELOPE_MALFORMED);
    buf[1] = 0x10;
    CHECK_EQ_INT(envelope_decode(buf, n, &e), ENVELOPE_MALFORMED);
    CHECK(strlen(envelope_strerror(ENVELOPE_MALFORMED)) > 0);
    msg_unref(m);

    /* Invalid text: identity with a NUL, response topic with a wildcard, a bad user property. */
    static const uint8_t bad_ident[] = {1, 0, 0, 0, 2, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(envelope_decode(bad_ident, sizeof(bad_ident), &e), ENVELOPE_MALFORMED);
    static const uint8_t bad_rt[] = {1, 0, 0, 0, 0, 0, 0, 0, 3, 'a', '/', '#', 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(envelope_decode(bad_rt, sizeof(bad_rt), &e), ENVELOPE_MALFORMED);
    static const uint8_t bad_up[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x03, 0, 0};
    CHECK_EQ_INT(envelope_decode(bad_up, sizeof(bad_up), &e), ENVELOPE_MALFORMED);
    static const uint8_t bad_utf8[] = {1, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(envelope_decode(bad_utf8, sizeof(bad_utf8), &e), ENVELOPE_MALFORMED);
}

/* A revocation round-trips; every truncation, a trailing byte, an unknown kind or version, a
 * serial of 0 or over 32 bytes are refused. */
static void test_revoke(void)
{
    struct envelope_revoke r = {.kind = ENVELOPE_REVOKED_CRL, .serial_len = 3};
    memset(r.issuer_hash, 0xAB, 32);
    memcpy(r.serial, "\x01\x02\x03", 3);
    uint8_t buf[ENVELOPE_REVOKE_MAX];
    size_t n = envelope_revoke_encode(&r, "node1", buf, sizeof(buf));
    CHECK_EQ_INT(n, 2 + 32 + 1 + 3 + 1 + 5);
    struct envelope_revoke d;
    CHECK_EQ_INT(envelope_revoke_decode(buf, n, &d), 0);
    CHECK(d.kind == ENVELOPE_REVOKED_CRL && d.serial_len == 3 && !memcmp(d.serial, r.serial, 3) &&
          !memcmp(d.issuer_hash, r.issuer_hash, 32));
    CHECK(d.node.len == 5 && !memcmp(d.node.p, "node1", 5));
    for (size_t cut = 0; cut < n; cut++)
        CHECK(envelope_revoke_decode(buf, cut, &d) != 0);
    uint8_t longer[ENVELOPE_REVOKE_MAX + 1];
    memcpy(longer, buf, n);
    longer[n] = 0;
    CHECK_EQ_INT(envelope_revoke_decode(longer, n + 1, &d), ENVELOPE_MALFORMED);
    buf[1] = 9;
    CHECK_EQ_INT(envelope_revoke_decode(buf, n, &d), ENVELOPE_MALFORMED);
    buf[1] = ENVELOPE_REVOKED_PLUGIN;
    buf[0] = 2;
    CHECK_EQ_INT(envelope_revoke_decode(buf, n, &d), ENVELOPE_VERSION_BAD);
    buf[0] = ENVELOPE_VERSION;
    buf[34] = 33;
    CHECK_EQ_INT(envelope_revoke_decode(buf, n, &d), ENVELOPE_MALFORMED);
    r.serial_len = 0;
    CHECK_EQ_INT(envelope_revoke_encode(&r, "node1", buf, sizeof(buf)), 0);
    r.serial_len = 3;
    CHECK_EQ_INT(envelope_revoke_encode(&r, "node1", buf, 10), 0);
}

int main(void)
{
    test_roundtrip();
    test_minimal_and_bad();
    test_revoke();
    return check_finish("envelope");
}
