/* codec, bad and borderline input: every malformed-packet rule gives its exact error, inputs at
 * the edge of the rules are accepted, and packets over the size limit are refused before their
 * body is read. */
#include "codec_util.h"

/* ---- malformed input: one exact error per rule -------------------------------------------- */

struct bad_case {
    const char *name;
    uint8_t v;
    uint8_t first; /* 0: `body` is the whole packet; else the fixed header's first byte */
    const char *body;
    int want;
};

#define M CODEC_ERR_MALFORMED
#define PE CODEC_ERR_PROTOCOL
static const struct bad_case bad_cases[] = {
    /* fixed header */
    {"5-byte remaining length", 4, 0, "30 ff ff ff ff 01", M},
    {"4 continued length bytes", 4, 0, "30 80 80 80 80", M},
    {"type 0", 4, 0, "00 00", M},
    {"type 0 first byte alone", 4, 0, "00", M},
    {"PUBREL flags 0", 4, 0x60, "00 01", M},
    {"SUBSCRIBE flags 0", 4, 0x80, "00 01 00 01 78 00", M},
    {"UNSUBSCRIBE flags 0", 4, 0xA0, "00 01 00 01 78", M},
    {"PUBACK flags 2", 4, 0x42, "00 01", M},
    {"CONNECT flags 1", 4, 0x11, "00 04 4d 51 54 54 04 02 00 3c 00 00", M},
    {"PINGREQ flags 1", 4, 0xC1, "", M},
    {"DISCONNECT flags 2", 5, 0xE2, "", M},
    {"SUBACK flags 2", 4, 0x92, "00 01 00", M},
    /* CONNECT */
    {"protocol name HTTP", 4, 0x10, "00 04 48 54 54 50 04 02 00 3c 00 00",
     CODEC_ERR_BAD_PROTOCOL_NAME},
    {"protocol name mqtt", 4, 0x10, "00 04 6d 71 74 74 04 02 00 3c 00 00",
     CODEC_ERR_BAD_PROTOCOL_NAME},
    {"MQTT level 3", 4, 0x10, "00 04 4d 51 54 54 03 02 00 3c 00 00", CODEC_ERR_BAD_VERSION},
    {"MQTT level 7", 4, 0x10, "00 04 4d 51 54 54 07 02 00 3c 00 00", CODEC_ERR_BAD_VERSION},
    {"MQIsdp level 4", 4, 0x10, "00 06 4d 51 49 73 64 70 04 02 00 3c 00 00", CODEC_ERR_BAD_VERSION},
    {"MQIsdp level 5", 4, 0x10, "00 06 4d 51 49 73 64 70 05 02 00 3c 00 00", CODEC_ERR_BAD_VERSION},
    {"reserved connect flag", 4, 0x10, "00 04 4d 51 54 54 04 03 00 3c 00 00", M},
    {"will qos without will", 4, 0x10, "00 04 4d 51 54 54 04 0a 00 3c 00 00", M},
    {"will retain without will", 4, 0x10, "00 04 4d 51 54 54 04 22 00 3c 00 00", M},
    {"will qos 3", 4, 0x10, "00 04 4d 51 54 54 04 1e 00 3c 00 00 00 01 74 00 00", M},
    {"password without user 3.1.1", 4, 0x10, "00 04 4d 51 54 54 04 42 00 3c 00 00 00 01 70", M},
    {"password without user 3.1", 3, 0x10, "00 06 4d 51 49 73 64 70 03 42 00 3c 00 00 00 01 70", M},
    {"client id bad utf8", 4, 0x10, "00 04 4d 51 54 54 04 02 00 3c 00 01 ff", M},
    {"client id U+0000", 4, 0x10, "00 04 4d 51 54 54 04 02 00 3c 00 01 00", M},
    {"connect missing client id", 4, 0x10, "00 04 4d 51 54 54 04 02 00 3c", M},
    {"connect missing password", 4, 0x10, "00 04 4d 51 54 54 04 c2 00 3c 00 00 00 01 75", M},
    {"connect trailing byte", 4, 0x10, "00 04 4d 51 54 54 04 02 00 3c 00 00 00", M},
    {"v5 connect no props length", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c", M},
    {"v5 connect topic alias", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 03 23 00 01 00 00", PE},
    {"v5 connect receive max 0", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", PE},
    {"v5 connect max packet 0", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00",
     PE},
    {"v5 request problem 2", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00", PE},
    {"v5 request response 2", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 02 19 02 00 00", PE},
    {"v5 duplicate session expiry", 5, 0x10,
     "00 04 4d 51 54 54 05 02 00 3c 0a 11 00 00 00 01 11 00 00 00 02 00 00", PE},
    {"v5 props past packet", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 09 11 00 00 00 01 00 00", M},
    {"v5 props length 5 bytes", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 80 80 80 80 00 00 00", M},
    {"v5 will session expiry", 5, 0x10,
     "00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 01 00 01 74 00 00", PE},
    {"v5 will pfi 2", 5, 0x10, "00 04 4d 51 54 54 05 06 00 3c 00 00 00 02 01 02 00 01 74 00 00",
     PE},
    {"v5 will delay in connect", 5, 0x10, "00 04 4d 51 54 54 05 02 00 3c 05 18 00 00 00 01 00 00",
     PE},
    /* PUBLISH */
    {"qos 3", 4, 0x36, "00 01 78 00 01", M},
    {"dup with qos 0", 4, 0x38, "00 01 78", M},
    {"publish id 0", 4, 0x32, "00 01 78 00 00", PE},
    {"publish topic truncated", 4, 0x30, "00 05", M},
    {"publish topic overlong utf8", 4, 0x30, "00 02 c0 80", M},
    {"publish topic U+0000", 4, 0x30, "00 01 00", M},
    {"publish topic surrogate", 4, 0x30, "00 03 ed a0 80", M},
    {"publish empty topic 3.1.1", 4, 0x30, "00 00 61", PE},
    {"publish empty topic v5 no alias", 5, 0x30, "00 00 00 61", PE},
    {"publish qos1 no id", 4, 0x32, "00 01 78", M},
    {"v5 publish no props length", 5, 0x30, "00 01 78", M},
    {"v5 unknown property", 5, 0x30, "00 01 78 02 7f 00", PE},
    {"v5 property id 0", 5, 0x30, "00 01 78 02 00 00", PE},
    {"v5 duplicate expiry", 5, 0x30, "00 01 78 0a 02 00 00 00 01 02 00 00 00 01", PE},
    {"v5 duplicate content type", 5, 0x30, "00 01 78 08 03 00 01 61 03 00 01 62", PE},
    {"v5 maximum qos in publish", 5, 0x30, "00 01 78 02 24 01", PE},
    {"v5 session expiry in publish", 5, 0x30, "00 01 78 05 11 00 00 00 01", PE},
    {"v5 pfi 2", 5, 0x30, "00 01 78 02 01 02", PE},
    {"v5 topic alias 0", 5, 0x30, "00 01 78 03 23 00 00", PE},
    {"v5 sub id 0", 5, 0x30, "00 01 78 02 0b 00", PE},
    {"v5 sub id 5 bytes", 5, 0x30, "00 01 78 06 0b 80 80 80 80 01", M},
    {"v5 second sub id 0", 5, 0x30, "00 01 78 04 0b 01 0b 00", PE},
    {"v5 pfi 1 bad payload", 5, 0x30, "00 01 78 02 01 01 ff", CODEC_ERR_PAYLOAD_FORMAT},
    {"v5 pfi 1 long payload bad tail", 5, 0x30,
     "00 01 78 02 01 01 00 00 00 00 61 62 63 64 00 00 00 00 00 00 00 00 e2 82",
     CODEC_ERR_PAYLOAD_FORMAT},
    {"v5 content type bad utf8", 5, 0x30, "00 01 78 04 03 00 01 ff", M},
    {"v5 user prop bad utf8", 5, 0x30, "00 01 78 06 26 00 01 ff 00 00", M},
    {"v5 user prop value missing", 5, 0x30, "00 01 78 04 26 00 01 61", M},
    {"v5 prop string past block", 5, 0x30, "00 01 78 03 03 00 05 61 61 61 61 61", M},
    {"v5 props past packet", 5, 0x30, "00 01 78 09 02 00 00 00 01", M},
    {"v5 truncated u32 prop", 5, 0x30, "00 01 78 03 02 00 00", M},
    /* acks */
    {"puback id 0", 4, 0x40, "00 00", PE},
    {"pubrec id 0", 4, 0x50, "00 00", PE},
    {"pubrel id 0", 5, 0x62, "00 00", PE},
    {"pubcomp id 0", 5, 0x70, "00 00", PE},
    {"puback too short", 4, 0x40, "00", M},
    {"puback 3.1.1 rc", 4, 0x40, "00 01 00", M},
    {"puback v5 content type", 5, 0x40, "00 01 10 04 03 00 01 61", PE},
    {"puback v5 dup reason", 5, 0x40, "00 01 10 08 1f 00 01 61 1f 00 01 62", PE},
    {"puback v5 trailing", 5, 0x40, "00 01 10 00 00", M},
    {"puback v5 props past", 5, 0x40, "00 01 10 05 1f 00 01", M},
    /* SUBSCRIBE / UNSUBSCRIBE */
    {"subscribe id 0", 4, 0x82, "00 00 00 01 78 00", PE},
    {"subscribe no entries", 4, 0x82, "00 01", PE},
    {"subscribe v5 no entries", 5, 0x82, "00 01 00", PE},
    {"subscribe qos 3", 4, 0x82, "00 01 00 01 78 03", M},
    {"subscribe 3.1 qos 3", 3, 0x82, "00 01 00 01 78 03", M},
    {"subscribe 3.1.1 reserved bit", 4, 0x82, "00 01 00 01 78 04", M},
    {"subscribe missing options", 4, 0x82, "00 01 00 01 78", M},
    {"subscribe filter bad utf8", 4, 0x82, "00 01 00 01 fe 00", M},
    {"subscribe v5 reserved bits", 5, 0x82, "00 01 00 00 01 78 40", M},
    {"subscribe v5 reserved bit 7", 5, 0x82, "00 01 00 00 01 78 80", M},
    {"subscribe v5 retain handling 3", 5, 0x82, "00 01 00 00 01 78 30", PE},
    {"subscribe v5 qos 3", 5, 0x82, "00 01 00 00 01 78 03", PE},
    {"subscribe v5 two sub ids", 5, 0x82, "00 01 04 0b 01 0b 02 00 01 78 00", PE},
    {"subscribe v5 sub id 0", 5, 0x82, "00 01 02 0b 00 00 01 78 00", PE},
    {"subscribe v5 reason string", 5, 0x82, "00 01 04 1f 00 01 61 00 01 78 00", PE},
    {"unsubscribe id 0", 4, 0xA2, "00 00 00 01 78", PE},
    {"unsubscribe no entries", 4, 0xA2, "00 01", PE},
    {"unsubscribe v5 no entries", 5, 0xA2, "00 01 00", PE},
    {"unsubscribe v5 sub id", 5, 0xA2, "00 01 02 0b 01 00 01 78", PE},
    {"unsubscribe truncated filter", 4, 0xA2, "00 01 00 03 78", M},
    /* SUBACK / UNSUBACK / CONNACK */
    {"suback id 0", 4, 0x90, "00 00 00", PE},
    {"suback no codes", 4, 0x90, "00 01", PE},
    {"suback v5 no codes", 5, 0x90, "00 01 00", PE},
    {"unsuback id 0", 4, 0xB0, "00 00", PE},
    {"unsuback 3.1.1 trailing", 4, 0xB0, "00 01 00", M},
    {"unsuback v5 no codes", 5, 0xB0, "00 01 00", PE},
    {"connack flags 2", 4, 0x20, "02 00", M},
    {"connack short", 4, 0x20, "00", M},
    {"connack 3.1.1 trailing", 4, 0x20, "00 00 00", M},
    {"connack v5 no props", 5, 0x20, "00 00", M},
    {"connack v5 max qos 2", 5, 0x20, "00 00 02 24 02", PE},
    {"connack v5 retain avail 2", 5, 0x20, "00 00 02 25 02", PE},
    {"connack v5 wildcard avail 2", 5, 0x20, "00 00 02 28 02", PE},
    {"connack v5 sub id avail 2", 5, 0x20, "00 00 02 29 02", PE},
    {"connack v5 shared avail 2", 5, 0x20, "00 00 02 2a 02", PE},
    {"connack v5 receive max 0", 5, 0x20, "00 00 03 21 00 00", PE},
    {"connack v5 request problem", 5, 0x20, "00 00 02 17 01", PE},
    {"connack v5 will delay", 5, 0x20, "00 00 05 18 00 00 00 01", PE},
    /* PING / DISCONNECT / AUTH */
    {"pingreq body", 4, 0xC0, "00", M},
    {"pingresp body", 5, 0xD0, "00", M},
    {"disconnect 3.1.1 body", 4, 0xE0, "00", M},
    {"disconnect v5 will delay", 5, 0xE0, "04 05 18 00 00 00 01", PE},
    {"disconnect v5 auth method", 5, 0xE0, "00 04 15 00 01 61", PE},
    {"disconnect v5 props past", 5, 0xE0, "00 04 1f 00 01", M},
    {"auth in 3.1.1", 4, 0xF0, "", PE},
    {"auth in 3.1", 3, 0xF0, "", PE},
    {"auth v5 session expiry", 5, 0xF0, "18 05 11 00 00 00 01", PE},
    {"auth v5 flags", 5, 0xF1, "", M},
};
#undef M
#undef PE

static size_t build(const struct bad_case *c, uint8_t *out)
{
    if (!c->first)
        return hex(c->body, out);
    uint8_t body[512];
    size_t n = hex(c->body, body);
    out[0] = c->first;
    size_t h = 1;
    size_t rl = n;
    do {
        uint8_t b = rl & 0x7F;
        rl >>= 7;
        out[h++] = rl ? (uint8_t)(b | 0x80) : b;
    } while (rl);
    memcpy(out + h, body, n);
    return h + n;
}

static void test_malformed(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        uint8_t buf[600];
        size_t n = build(c, buf);
        struct mqtt_packet p;
        long r = decode_copy(buf, n, c->v, 0, &p);
        if (r != c->want)
            fprintf(stderr, "  bad case '%s': got %ld want %d\n", c->name, r, c->want);
        CHECK_EQ_INT(r, c->want);
    }
}

/* Inputs at the edge of the rules that must be accepted. */
static void test_accepted_edges(void)
{
    static const struct {
        const char *name;
        uint8_t v;
        const char *hex;
    } ok[] = {
        {"v5 password without user", 5, "10 11 00 04 4d 51 54 54 05 42 00 3c 00 00 00 00 02 70 77"},
        {"v5 empty topic with alias", 5, "30 06 00 00 03 23 00 07"},
        {"v5 two sub ids (server sent)", 5, "30 08 00 01 78 04 0b 05 0b 06"},
        {"v5 pfi 1 payload with NUL", 5, "30 08 00 01 78 02 01 01 00 61"},
        {"v5 pfi 1 long payload with NULs", 5,
         "30 19 00 01 78 02 01 01 00 00 00 00 61 62 63 64 00 00 00 00 00 00 00 00 e2 82 ac"},
        {"v5 puback short", 5, "40 02 00 01"},
        {"v5 puback rc only", 5, "40 03 00 01 10"},
        {"v5 disconnect rc only", 5, "e0 01 8e"},
        {"v5 disconnect empty", 5, "e0 00"},
        {"v5 auth empty", 5, "f0 00"},
        {"3.1.1 connack refused", 4, "20 02 00 05"},
        {"v5 subscribe all options", 5, "82 07 00 01 00 00 01 78 2e"},
        {"3.1 connect", 3, "10 0e 00 06 4d 51 49 73 64 70 03 02 00 3c 00 00"},
        {"3.1.1 control chars in topic", 4, "30 04 00 02 01 7f"},
        {"v5 reason string on pubrel", 5, "62 08 00 01 92 04 1f 00 01 61"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint8_t buf[128];
        size_t n = hex(ok[i].hex, buf);
        struct mqtt_packet p;
        long r = decode_copy(buf, n, ok[i].v, 0, &p);
        if (r != (long)n)
            fprintf(stderr, "  accepted case '%s': got %ld\n", ok[i].name, r);
        CHECK_EQ_INT(r, (long)n);
    }
    struct mqtt_packet p;
    uint8_t buf[64];
    size_t n = hex("30 08 00 01 78 04 0b 05 0b 06", buf);
    CHECK_EQ_INT(codec_decode(buf, n, 5, 0, &p), (long)n);
    CHECK_EQ_INT(p.u.publish.props.subscription_id, 5); /* the first is kept */
    n = hex("40 03 00 01 10", buf);
    CHECK_EQ_INT(codec_decode(buf, n, 5, 0, &p), 5);
    CHECK(p.u.ack.id == 1 && p.u.ack.rc == 0x10 && p.u.ack.props.present == 0);
    n = hex("10 11 00 04 4d 51 54 54 05 42 00 3c 00 00 00 00 02 70 77", buf);
    CHECK_EQ_INT(codec_decode(buf, n, 0, 0, &p), (long)n);
    CHECK(p.u.connect.has_password && !p.u.connect.has_username && p.u.connect.password.len == 2);
}

/* ---- size limits -------------------------------------------------------------------------- */

static void test_too_large(void)
{
    struct mqtt_packet p;
    uint8_t buf[16];
    /* 2 + 11 = 13 bytes: known from two bytes, with no body yet */
    size_t n = hex("30 0b", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 12, &p), CODEC_ERR_TOO_LARGE);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 13, &p), 0);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 0, &p), 0);
    /* a continued length byte already proves the size */
    n = hex("30 ff", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 100, &p), CODEC_ERR_TOO_LARGE);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 1000, &p), 0);
    n = hex("30 ff ff", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 1000, &p), CODEC_ERR_TOO_LARGE);
    n = hex("30 ff 7f", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 5, 16385, &p), CODEC_ERR_TOO_LARGE);
    CHECK_EQ_INT(decode_copy(buf, n, 5, 16386, &p), 0);
    /* the largest MQTT packet: no limit means it is waited for */
    n = hex("30 ff ff ff 7f", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 0, &p), 0);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 268435459, &p), CODEC_ERR_TOO_LARGE);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 268435460, &p), 0);
    /* a complete packet exactly at the limit */
    n = hex("30 03 00 01 78", buf);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 5, &p), 5);
    CHECK_EQ_INT(decode_copy(buf, n, 4, 4, &p), CODEC_ERR_TOO_LARGE);
    CHECK_EQ_INT(decode_copy(buf, 0, 4, 4, &p), 0);
}

/* ---- encoder contracts -------------------------------------------------------------------- */

int main(void)
{
    test_malformed();
    test_accepted_edges();
    test_too_large();
    return check_finish("codec_bad");
}
