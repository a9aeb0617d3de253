/* codec: round trips for every packet type x version with and without properties, every fixture
 * fed byte by byte and at every split point of a stream, encoder contracts and the UTF-8
 * validator (bad and borderline input: codec_bad_test.c). Every decode reads from an exactly
 * sized heap copy so a sanitizer build catches any read past the input. */
#include "codec_util.h"
#include "utf8.h"

static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};

/* ---- fixtures ----------------------------------------------------------------------------- */

/* Raw user property bytes (identifier, key, value) x2 with a content type between them: the
 * span keeps other properties, the iterator and the encoder skip them. */
static const uint8_t user_raw[] = {0x26, 0, 1,   'k',  0, 2, 'v', '1', 0x03,
                                   0,    1, 't', 0x26, 0, 1, 'x', 0,   0};
static const uint8_t payload[] = "hello \xe2\x82\xac world";
static const uint32_t two_sub_ids[] = {7, 300000};

static void add_users(struct mqtt_props *pr)
{
    pr->user_props = user_raw;
    pr->user_props_len = sizeof(user_raw);
}

static void all_connect_props(struct mqtt_props *pr)
{
    pr->present = BIT(SESSION_EXPIRY) | BIT(RECEIVE_MAXIMUM) | BIT(MAXIMUM_PACKET_SIZE) |
                  BIT(TOPIC_ALIAS_MAXIMUM) | BIT(REQUEST_PROBLEM_INFO) |
                  BIT(REQUEST_RESPONSE_INFO) | BIT(AUTH_METHOD) | BIT(AUTH_DATA);
    pr->session_expiry = 0xFFFFFFFF;
    pr->receive_maximum = 20;
    pr->maximum_packet_size = 65536;
    pr->topic_alias_maximum = 10;
    pr->request_problem_info = 0;
    pr->request_response_info = 1;
    pr->auth_method = B("cert");
    pr->auth_data = B("\x00\x01\x02");
    add_users(pr);
}

static void all_will_props(struct mqtt_props *pr)
{
    pr->present = BIT(WILL_DELAY) | BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
                  BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA);
    pr->will_delay = 30;
    pr->payload_format = 1;
    pr->message_expiry = 3600;
    pr->content_type = B("text/plain");
    pr->response_topic = B("r/t");
    pr->correlation_data = B("\xff\x00");
    add_users(pr);
}

static void all_connack_props(struct mqtt_props *pr)
{
    pr->present = BIT(SESSION_EXPIRY) | BIT(ASSIGNED_CLIENT_ID) | BIT(SERVER_KEEPALIVE) |
                  BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(RESPONSE_INFO) | BIT(SERVER_REFERENCE) |
                  BIT(REASON_STRING) | BIT(RECEIVE_MAXIMUM) | BIT(TOPIC_ALIAS_MAXIMUM) |
                  BIT(MAXIMUM_QOS) | BIT(RETAIN_AVAILABLE) | BIT(MAXIMUM_PACKET_SIZE) |
                  BIT(WILDCARD_SUB_AVAILABLE) | BIT(SUB_ID_AVAILABLE) | BIT(SHARED_SUB_AVAILABLE);
    pr->session_expiry = 60;
    pr->assigned_client_id = B("auto-1");
    pr->server_keepalive = 120;
    pr->auth_method = B("m");
    pr->auth_data = B("d");
    pr->response_info = B("ri");
    pr->server_reference = B("other:8883");
    pr->reason_string = B("ok");
    pr->receive_maximum = 65535;
    pr->topic_alias_maximum = 0;
    pr->maximum_qos = 1;
    pr->retain_available = 0;
    pr->maximum_packet_size = 268435460;
    pr->wildcard_sub_available = 1;
    pr->sub_id_available = 1;
    pr->shared_sub_available = 0;
    add_users(pr);
}

static void all_publish_props(struct mqtt_props *pr)
{
    pr->present = BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
                  BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA) | BIT(TOPIC_ALIAS) |
                  BIT(SUBSCRIPTION_ID);
    pr->payload_format = 1;
    pr->message_expiry = 5;
    pr->content_type = B("application/json");
    pr->response_topic = B("reply/here");
    pr->correlation_data = B("\x01\x02\x03");
    pr->topic_alias = 3;
    pr->subscription_id = 268435455;
    add_users(pr);
}

static void reason_props(struct mqtt_props *pr)
{
    pr->present = BIT(REASON_STRING);
    pr->reason_string = B("because");
    add_users(pr);
}

static const uint8_t sub_entries[] = {0,   3,    'a', '/', '#', 0x01, 0,   1,
                                      'b', 0x02, 0,   3,   'c', '/',  '+', 0x00};
static const uint8_t sub_entries5[] = {0, 3, 'a', '/', '#', 0x2E, 0, 1, 'b', 0x12, 0, 1, 'c', 0x04};
static const uint8_t unsub_entries[] = {0, 3, 'a', '/', '#', 0, 1, 'b'};
static const uint8_t suback_rcs[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t unsuback_rcs[] = {0x00, 0x11};

#define MAX_FIX 64
struct fixture {
    struct mqtt_packet p;
    const char *name;
};

/* Builds every packet type for version v, each with and without properties (properties are
 * set for every version: the encoder must drop them before v5). */
static size_t fixtures(uint8_t v, struct fixture *f)
{
    size_t n = 0;
    struct mqtt_packet *p;
#define NEW(t, nm)                                                                                 \
    (memset(&f[n], 0, sizeof(f[n])), f[n].name = (nm), f[n].p.type = (t), p = &f[n++].p)
    NEW(MQTT_CONNECT, "connect minimal");
    p->u.connect.version = v;
    p->u.connect.clean = true;
    p->u.connect.client_id = B("");
    NEW(MQTT_CONNECT, "connect full");
    {
        struct mqtt_connect *k = &p->u.connect;
        k->version = v;
        k->keepalive = 65535;
        k->client_id = B("dev-\xc3\xa9");
        k->will = true;
        k->will_qos = 2;
        k->will_retain = true;
        k->will_topic = B("devices/dev/status");
        k->will_payload = payload;
        k->will_payload_len = sizeof(payload) - 1;
        k->has_username = k->has_password = true;
        k->username = B("user");
        k->password = B("\x00\xffpw");
        all_connect_props(&k->props);
        all_will_props(&k->will_props);
    }
    NEW(MQTT_CONNECT, "connect will qos1 no user");
    p->u.connect.version = v;
    p->u.connect.client_id = B("c");
    p->u.connect.will = true;
    p->u.connect.will_qos = 1;
    p->u.connect.will_topic = B("w");
    NEW(MQTT_CONNACK, "connack");
    p->u.connack.session_present = v != MQTT_V31;
    NEW(MQTT_CONNACK, "connack refused props");
    p->u.connack.rc = v == MQTT_V5 ? 0x87 : 5;
    all_connack_props(&p->u.connack.props);
    for (uint8_t q = 0; q < 3; q++) {
        NEW(MQTT_PUBLISH, "publish");
        p->u.publish.qos = q;
        p->u.publish.retain = q != 1;
        p->u.publish.dup = q == 2;
        p->u.publish.id = q ? (uint16_t)(q == 1 ? 1 : 65535) : 0;
        p->u.publish.topic = B("a/b/\xf0\x9f\x98\x80");
        p->u.publish.payload = payload;
        p->u.publish.payload_len = q == 1 ? 0 : sizeof(payload) - 1;
        NEW(MQTT_PUBLISH, "publish props");
        p->u.publish = f[n - 2].p.u.publish;
        all_publish_props(&p->u.publish.props);
    }
    static const uint8_t ack_types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t i = 0; i < 4; i++) {
        NEW(ack_types[i], "ack short");
        p->u.ack.id = 513;
        NEW(ack_types[i], "ack rc");
        p->u.ack.id = 1;
        p->u.ack.rc = v == MQTT_V5 ? 0x10 : 0;
        NEW(ack_types[i], "ack props");
        p->u.ack.id = 65535;
        reason_props(&p->u.ack.props);
        NEW(ack_types[i], "ack props rc0");
        p->u.ack.id = 2;
        p->u.ack.props.present = BIT(REASON_STRING);
        p->u.ack.props.reason_string = B("r");
    }
    NEW(MQTT_SUBSCRIBE, "subscribe");
    p->u.subscribe.id = 9;
    p->u.subscribe.entries = v == MQTT_V5 ? sub_entries5 : sub_entries;
    p->u.subscribe.entries_len = v == MQTT_V5 ? sizeof(sub_entries5) : sizeof(sub_entries);
    p->u.subscribe.count = 3;
    NEW(MQTT_SUBSCRIBE, "subscribe props");
    p->u.subscribe = f[n - 2].p.u.subscribe;
    p->u.subscribe.props.present = BIT(SUBSCRIPTION_ID);
    p->u.subscribe.props.subscription_id = 16384;
    add_users(&p->u.subscribe.props);
    NEW(MQTT_SUBACK, "suback");
    p->u.suback.id = 9;
    p->u.suback.rcs = suback_rcs;
    p->u.suback.count = sizeof(suback_rcs);
    NEW(MQTT_SUBACK, "suback props");
    p->u.suback = f[n - 2].p.u.suback;
    reason_props(&p->u.suback.props);
    NEW(MQTT_UNSUBSCRIBE, "unsubscribe");
    p->u.subscribe.id = 10;
    p->u.subscribe.entries = unsub_entries;
    p->u.subscribe.entries_len = sizeof(unsub_entries);
    p->u.subscribe.count = 2;
    NEW(MQTT_UNSUBSCRIBE, "unsubscribe props");
    p->u.subscribe = f[n - 2].p.u.subscribe;
    add_users(&p->u.subscribe.props);
    NEW(MQTT_UNSUBACK, "unsuback");
    p->u.suback.id = 10;
    p->u.suback.rcs = unsuback_rcs;
    p->u.suback.count = sizeof(unsuback_rcs);
    NEW(MQTT_UNSUBACK, "unsuback props");
    p->u.suback = f[n - 2].p.u.suback;
    reason_props(&p->u.suback.props);
    NEW(MQTT_PINGREQ, "pingreq");
    NEW(MQTT_PINGRESP, "pingresp");
    NEW(MQTT_DISCONNECT, "disconnect");
    NEW(MQTT_DISCONNECT, "disconnect rc");
    p->u.disconnect.rc = 0x8E;
    NEW(MQTT_DISCONNECT, "disconnect props");
    p->u.disconnect.rc = 0x04;
    p->u.disconnect.props.present =
        BIT(SESSION_EXPIRY) | BIT(SERVER_REFERENCE) | BIT(REASON_STRING);
    p->u.disconnect.props.session_expiry = 0;
    p->u.disconnect.props.server_reference = B("s");
    p->u.disconnect.props.reason_string = B("bye");
    add_users(&p->u.disconnect.props);
    if (v == MQTT_V5) {
        NEW(MQTT_AUTH, "auth short");
        NEW(MQTT_AUTH, "auth props");
        p->u.disconnect.rc = 0x18;
        p->u.disconnect.props.present = BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(REASON_STRING);
        p->u.disconnect.props.auth_method = B("SCRAM");
        p->u.disconnect.props.auth_data = B("\x00");
        p->u.disconnect.props.reason_string = B("more");
        add_users(&p->u.disconnect.props);
    }
#undef NEW
    return n;
}

/* ---- comparison --------------------------------------------------------------------------- */

static size_t user_count(const struct mqtt_props *pr)
{
    uint32_t off = 0;
    struct mqtt_bin k, val;
    size_t n = 0;
    while (codec_user_prop_next(pr, &off, &k, &val))
        n++;
    return n;
}

/* The properties a version keeps: none before v5; in v5 exactly what was set. */
static void same_props(const struct mqtt_props *want, const struct mqtt_props *got, uint8_t v)
{
    if (v != MQTT_V5) {
        CHECK_EQ_INT(got->present, 0);
        CHECK_EQ_INT(got->user_props_len, 0);
        return;
    }
    /* Decoding marks user properties present too. */
    CHECK_EQ_INT(got->present, want->present | (user_count(want) ? BIT(USER_PROPERTY) : 0));
    CHECK_EQ_INT(got->payload_format, want->payload_format);
    CHECK_EQ_INT(got->request_problem_info, want->request_problem_info);
    CHECK_EQ_INT(got->request_response_info, want->request_response_info);
    CHECK_EQ_INT(got->maximum_qos, want->maximum_qos);
    CHECK_EQ_INT(got->retain_available, want->retain_available);
    CHECK_EQ_INT(got->wildcard_sub_available, want->wildcard_sub_available);
    CHECK_EQ_INT(got->sub_id_available, want->sub_id_available);
    CHECK_EQ_INT(got->shared_sub_available, want->shared_sub_available);
    CHECK_EQ_INT(got->server_keepalive, want->server_keepalive);
    CHECK_EQ_INT(got->receive_maximum, want->receive_maximum);
    CHECK_EQ_INT(got->topic_alias_maximum, want->topic_alias_maximum);
    CHECK_EQ_INT(got->topic_alias, want->topic_alias);
    CHECK_EQ_INT(got->message_expiry, want->message_expiry);
    CHECK_EQ_INT(got->session_expiry, want->session_expiry);
    CHECK_EQ_INT(got->will_delay, want->will_delay);
    CHECK_EQ_INT(got->maximum_packet_size, want->maximum_packet_size);
    CHECK_EQ_INT(got->subscription_id, want->subscription_id);
    CHECK(bin_eq(got->content_type, want->content_type));
    CHECK(bin_eq(got->response_topic, want->response_topic));
    CHECK(bin_eq(got->correlation_data, want->correlation_data));
    CHECK(bin_eq(got->assigned_client_id, want->assigned_client_id));
    CHECK(bin_eq(got->auth_method, want->auth_method));
    CHECK(bin_eq(got->auth_data, want->auth_data));
    CHECK(bin_eq(got->response_info, want->response_info));
    CHECK(bin_eq(got->server_reference, want->server_reference));
    CHECK(bin_eq(got->reason_string, want->reason_string));
    CHECK_EQ_INT(user_count(got), user_count(want));
    uint32_t o1 = 0, o2 = 0;
    struct mqtt_bin k1, v1, k2, v2;
    while (codec_user_prop_next(want, &o1, &k1, &v1)) {
        CHECK(codec_user_prop_next(got, &o2, &k2, &v2));
        CHECK(bin_eq(k1, k2) && bin_eq(v1, v2));
    }
}

static void same_entries(const struct mqtt_subscribe *a, const struct mqtt_subscribe *b, bool opt)
{
    CHECK_EQ_INT(b->count, a->count);
    struct mqtt_sub_iter ia, ib;
    struct mqtt_bin fa, fb;
    uint8_t oa, ob;
    codec_sub_iter(a, opt, &ia);
    codec_sub_iter(b, opt, &ib);
    uint16_t n = 0;
    while (codec_sub_next(&ia, &fa, &oa)) {
        CHECK(codec_sub_next(&ib, &fb, &ob));
        CHECK(bin_eq(fa, fb));
        CHECK_EQ_INT(ob, oa);
        n++;
    }
    CHECK(!codec_sub_next(&ib, &fb, &ob));
    CHECK_EQ_INT(n, b->count);
}

static void same(const struct mqtt_packet *a, const struct mqtt_packet *b, uint8_t v)
{
    CHECK_EQ_INT(b->type, a->type);
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        CHECK_EQ_INT(y->version, v);
        CHECK_EQ_INT(y->clean, x->clean);
        CHECK_EQ_INT(y->keepalive, x->keepalive);
        CHECK(bin_eq(y->client_id, x->client_id));
        CHECK_EQ_INT(y->will, x->will);
        CHECK_EQ_INT(y->will_qos, x->will_qos);
        CHECK_EQ_INT(y->will_retain, x->will_retain);
        CHECK(bin_eq(y->will_topic, x->will_topic));
        CHECK_EQ_INT(y->will_payload_len, x->will_payload_len);
        CHECK(!x->will_payload_len ||
              !memcmp(y->will_payload, x->will_payload, x->will_payload_len));
        CHECK_EQ_INT(y->has_username, x->has_username);
        CHECK_EQ_INT(y->has_password, x->has_password);
        CHECK(bin_eq(y->username, x->username));
        CHECK(bin_eq(y->password, x->password));
        same_props(&x->props, &y->props, v);
        if (x->will)
            same_props(&x->will_props, &y->will_props, v);
        break;
    }
    case MQTT_CONNACK:
        CHECK_EQ_INT(b->u.connack.session_present, a->u.connack.session_present);
        CHECK_EQ_INT(b->u.connack.rc, a->u.connack.rc);
        same_props(&a->u.connack.props, &b->u.connack.props, v);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        CHECK_EQ_INT(b->flags, (x->dup ? 8 : 0) | x->qos << 1 | (x->retain ? 1 : 0));
        CHECK_EQ_INT(y->qos, x->qos);
        CHECK_EQ_INT(y->dup, x->dup);
        CHECK_EQ_INT(y->retain, x->retain);
        CHECK_EQ_INT(y->id, x->id);
        CHECK(bin_eq(y->topic, x->topic));
        CHECK_EQ_INT(y->payload_len, x->payload_len);
        CHECK(!x->payload_len || !memcmp(y->payload, x->payload, x->payload_len));
        same_props(&x->props, &y->props, v);
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        CHECK_EQ_INT(b->u.ack.id, a->u.ack.id);
        CHECK_EQ_INT(b->u.ack.rc, v == MQTT_V5 ? a->u.ack.rc : 0);
        same_props(&a->u.ack.props, &b->u.ack.props, v);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        CHECK_EQ_INT(b->u.subscribe.id, a->u.subscribe.id);
        same_entries(&a->u.subscribe, &b->u.subscribe, a->type == MQTT_SUBSCRIBE);
        same_props(&a->u.subscribe.props, &b->u.subscribe.props, v);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: {
        CHECK_EQ_INT(b->u.suback.id, a->u.suback.id);
        bool none = a->type == MQTT_UNSUBACK && v != MQTT_V5;
        CHECK_EQ_INT(b->u.suback.count, none ? 0 : a->u.suback.count);
        CHECK(none || !memcmp(b->u.suback.rcs, a->u.suback.rcs, a->u.suback.count));
        same_props(&a->u.suback.props, &b->u.suback.props, v);
        break;
    }
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        CHECK_EQ_INT(b->u.disconnect.rc, v == MQTT_V5 ? a->u.disconnect.rc : 0);
        same_props(&a->u.disconnect.props, &b->u.disconnect.props, v);
        break;
    default:
        break;
    }
}

/* ---- round trips and splitting ------------------------------------------------------------ */

static size_t enc(const struct mqtt_packet *p, uint8_t v, uint8_t *out, size_t cap)
{
    size_t n = codec_encode(p, v, NULL, 0);
    CHECK(n >= 2 && n <= cap);
    if (n < 2 || n > cap)
        return 0;
    memset(out, 0xA5, n);
    CHECK_EQ_INT(codec_encode(p, v, out, n - 1), n); /* too small: nothing written */
    CHECK_EQ_INT(out[0], 0xA5);
    CHECK_EQ_INT(codec_encode(p, v, out, cap), n);
    return n;
}

/* Every proper prefix needs more bytes; the whole packet decodes to exactly its length. */
static void prefixes(const uint8_t *buf, size_t n, uint8_t v)
{
    struct mqtt_packet d;
    for (size_t i = 0; i < n; i++) {
        long r = decode_copy(buf, i, v, 0, &d);
        if (r != 0)
            fprintf(stderr, "  prefix %zu of %zu: %ld\n", i, n, r);
        CHECK_EQ_INT(r, 0);
    }
    CHECK_EQ_INT(decode_copy(buf, n, v, 0, &d), (long)n);
}

static void test_roundtrips(void)
{
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        struct fixture f[MAX_FIX];
        size_t nf = fixtures(v, f);
        for (size_t i = 0; i < nf; i++) {
            uint8_t buf[4096];
            size_t n = enc(&f[i].p, v, buf, sizeof(buf));
            if (!n)
                continue;
            struct mqtt_packet d;
            long r = decode(buf, n, v, &d);
            if (r != (long)n)
                fprintf(stderr, "  roundtrip %s v%u: %ld\n", f[i].name, v, r);
            CHECK_EQ_INT(r, (long)n);
            same(&f[i].p, &d, v);
            prefixes(buf, n, v);
            /* Decoded values re-encode to the same bytes. */
            uint8_t again[4096];
            CHECK_EQ_INT(codec_encode(&d, v, again, sizeof(again)), n);
            CHECK(!memcmp(again, buf, n));
        }
    }
}

/* A receive buffer fed in two chunks at every split point of a stream of every fixture back to
 * back must yield the same packets in order. */
static void test_stream(void)
{
    for (size_t vi = 0; vi < 3; vi++) {
        uint8_t v = versions[vi];
        struct fixture f[MAX_FIX];
        size_t nf = fixtures(v, f), total = 0, lens[MAX_FIX];
        static uint8_t stream[MAX_FIX * 600];
        for (size_t i = 0; i < nf; i++) {
            lens[i] = codec_encode(&f[i].p, v, stream + total, sizeof(stream) - total);
            total += lens[i];
        }
        size_t step = v == MQTT_V5 ? 1 : 3;
        for (size_t split = 0; split <= total; split += step) {
            size_t have = split, off = 0, k = 0;
            bool ok = true;
            for (int round = 0; round < 2 && ok; round++) {
                for (;;) {
                    struct mqtt_packet d;
                    long r = codec_decode(stream + off, have - off, v, 0, &d);
                    if (r == 0)
                        break;
                    if (r < 0 || (size_t)r != lens[k] || d.type != f[k].p.type) {
                        ok = false;
                        break;
                    }
                    off += (size_t)r;
                    k++;
                }
                have = total;
            }
            CHECK(ok && off == total && k == nf);
        }
    }
}

static void test_encoder(void)
{
    uint8_t buf[512], head[512];
    struct mqtt_packet d;
    /* publish head = everything but the payload, length counting the payload */
    for (size_t vi = 0; vi < 3; vi++) {
        struct mqtt_publish pub = {.qos = 1, .id = 7, .topic = B("t/1")};
        pub.payload = payload;
        pub.payload_len = sizeof(payload) - 1;
        all_publish_props(&pub.props);
        struct mqtt_packet p = {.type = MQTT_PUBLISH};
        p.u.publish = pub;
        size_t n = codec_encode(&p, versions[vi], buf, sizeof(buf));
        size_t hn = codec_encode_publish_head(&pub, versions[vi], head, sizeof(head));
        CHECK_EQ_INT(hn + pub.payload_len, n);
        CHECK(!memcmp(head, buf, hn));
        CHECK_EQ_INT(codec_encode_publish_head(&pub, versions[vi], NULL, 0), hn);
    }
    /* several subscription identifiers from the list; decoding keeps the first */
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = B("x");
    p.u.publish.props.sub_ids = two_sub_ids;
    p.u.publish.props.sub_id_count = 2;
    p.u.publish.props.present = BIT(SUBSCRIPTION_ID);
    p.u.publish.props.subscription_id = 99; /* ignored: the list wins */
    size_t n = codec_encode(&p, 5, buf, sizeof(buf));
    CHECK_EQ_INT(n, 2 + 3 + 1 + 2 + 4);
    CHECK_EQ_INT(codec_props_size(&p.u.publish.props, MQTT_PUBLISH), 6);
    CHECK_EQ_INT(codec_decode(buf, n, 5, 0, &d), (long)n);
    CHECK_EQ_INT(d.u.publish.props.subscription_id, 7);
    /* properties a packet cannot carry are left out */
    struct mqtt_props pr = {0};
    pr.present = BIT(MAXIMUM_QOS) | BIT(CONTENT_TYPE);
    pr.content_type = B("abc");
    CHECK_EQ_INT(codec_props_size(&pr, MQTT_PUBLISH), 6);
    CHECK_EQ_INT(codec_props_size(&pr, MQTT_CONNACK), 2);
    CHECK_EQ_INT(codec_props_size(&pr, MQTT_PUBACK), 0);
    add_users(&pr);
    CHECK_EQ_INT(codec_props_size(&pr, MQTT_PUBACK), 8 + 6); /* the two pairs */
    /* short forms in v5 */
    struct mqtt_packet a = {.type = MQTT_PUBACK};
    a.u.ack.id = 3;
    CHECK_EQ_INT(codec_encode(&a, 5, buf, sizeof(buf)), 4);
    a.u.ack.rc = 0x10;
    CHECK_EQ_INT(codec_encode(&a, 5, buf, sizeof(buf)), 5);
    CHECK_EQ_INT(codec_encode(&a, 4, buf, sizeof(buf)), 4);
    struct mqtt_packet disc = {.type = MQTT_DISCONNECT};
    CHECK_EQ_INT(codec_encode(&disc, 5, buf, sizeof(buf)), 2);
    struct mqtt_packet auth = {.type = MQTT_AUTH};
    CHECK_EQ_INT(codec_encode(&auth, 5, buf, sizeof(buf)), 2);
    CHECK_EQ_INT(codec_encode(&auth, 4, buf, sizeof(buf)), 0); /* no AUTH before v5 */
    CHECK_EQ_INT(codec_encode(&auth, 3, buf, sizeof(buf)), 0);
    /* CONNACK for 3.1 has no session present; v5 failures map to 3.1.1 return codes */
    struct mqtt_packet ca = {.type = MQTT_CONNACK};
    ca.u.connack.session_present = true;
    CHECK_EQ_INT(codec_encode(&ca, 3, buf, sizeof(buf)), 4);
    CHECK_EQ_INT(buf[2], 0);
    CHECK_EQ_INT(codec_encode(&ca, 4, buf, sizeof(buf)), 4);
    CHECK_EQ_INT(buf[2], 1);
    static const uint8_t map[][2] = {{0x84, 1}, {0x85, 2}, {0x88, 3}, {0x89, 3},
                                     {0x86, 4}, {0x87, 5}, {0x80, 5}, {0x04, 4}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        ca.u.connack.rc = map[i][0];
        codec_encode(&ca, 4, buf, sizeof(buf));
        CHECK_EQ_INT(buf[3], map[i][1]);
        codec_encode(&ca, 5, buf, sizeof(buf));
        CHECK_EQ_INT(buf[3], map[i][0]);
    }
    /* 3.1.1 cannot carry a password without a user name: it is left out */
    struct mqtt_packet k = {.type = MQTT_CONNECT};
    k.u.connect.client_id = B("c");
    k.u.connect.has_password = true;
    k.u.connect.password = B("pw");
    n = codec_encode(&k, 4, buf, sizeof(buf));
    CHECK_EQ_INT(codec_decode(buf, n, 0, 0, &d), (long)n);
    CHECK(!d.u.connect.has_password);
    n = codec_encode(&k, 5, buf, sizeof(buf));
    CHECK_EQ_INT(codec_decode(buf, n, 0, 0, &d), (long)n);
    CHECK(d.u.connect.has_password && d.u.connect.password.len == 2);
    /* v5 subscription options reduce to QoS before v5 */
    struct mqtt_packet s = {.type = MQTT_SUBSCRIBE};
    s.u.subscribe.id = 1;
    s.u.subscribe.entries = sub_entries5;
    s.u.subscribe.entries_len = sizeof(sub_entries5);
    n = codec_encode(&s, 4, buf, sizeof(buf));
    CHECK_EQ_INT(codec_decode(buf, n, 4, 0, &d), (long)n);
    struct mqtt_sub_iter it;
    struct mqtt_bin f;
    uint8_t o, want[] = {2, 2, 0};
    codec_sub_iter(&d.u.subscribe, true, &it);
    for (size_t i = 0; i < 3; i++) {
        CHECK(codec_sub_next(&it, &f, &o));
        CHECK_EQ_INT(o, want[i]);
    }
    CHECK_EQ_INT(sub_entries5[5], 0x2E); /* the caller's entries are untouched */
    /* over MQTT's maximum remaining length: not encodable */
    struct mqtt_packet big = {.type = MQTT_PUBLISH};
    big.u.publish.topic = B("t");
    big.u.publish.payload = payload;
    big.u.publish.payload_len = 268435455 - 3 + 1;
    CHECK_EQ_INT(codec_encode(&big, 4, NULL, 0), 0);
    big.u.publish.payload_len--;
    CHECK_EQ_INT(codec_encode(&big, 4, NULL, 0), 268435455 + 5);
    CHECK_EQ_INT(codec_encode_publish_head(&big.u.publish, 4, head, sizeof(head)), 8);
    CHECK_EQ_INT(head[1], 0xFF);
    CHECK_EQ_INT(head[4], 0x7F);
}

/* ---- errors, UTF-8 ------------------------------------------------------------------------ */

static void test_errors(void)
{
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_MALFORMED))->v5, 0x81);
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_PROTOCOL))->v5, 0x82);
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_TOO_LARGE))->v5, 0x95);
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_BAD_VERSION))->v5, 0x84);
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_BAD_PROTOCOL_NAME))->v5, 0x81);
    CHECK_EQ_INT(reason_info(codec_err_reason(CODEC_ERR_PAYLOAD_FORMAT))->v5, 0x99);
    CHECK_EQ_STR(reason_info(codec_err_reason(CODEC_ERR_MALFORMED))->text, "malformed packet");
    CHECK_EQ_STR(reason_info(codec_err_reason(CODEC_ERR_TOO_LARGE))->text, "packet too large");
    CHECK_EQ_INT(codec_err_reason(CODEC_ERR_BAD_PROTOCOL_NAME), REASON_NOT_MQTT);
    CHECK_EQ_INT(codec_err_reason(-99), REASON_MALFORMED);
}

static bool utf8(const char *h)
{
    uint8_t b[64];
    size_t n = hex(h, b);
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, b, n);
    bool r = utf8_valid(c, n, false);
    free(c);
    return r;
}

static void test_utf8(void)
{
    CHECK(utf8(""));
    CHECK(utf8("63 61 66 c3 a9"));
    CHECK(utf8("f0 9f 98 80"));       /* 4 bytes */
    CHECK(utf8("f4 8f bf bf"));       /* U+10FFFF */
    CHECK(utf8("ef bf bf"));          /* U+FFFF: a non-character, allowed */
    CHECK(utf8("01 1f 7f c2 80"));    /* control characters are allowed */
    CHECK(utf8("ed 9f bf ee 80 80")); /* either side of the surrogates */
    CHECK(!utf8("00"));               /* U+0000 */
    CHECK(!utf8("61 00 62"));
    CHECK(!utf8("c0 80"));    /* overlong NUL */
    CHECK(!utf8("c1 bf"));    /* overlong 2 bytes */
    CHECK(!utf8("e0 80 80")); /* overlong 3 bytes */
    CHECK(!utf8("e0 9f bf"));
    CHECK(!utf8("f0 80 80 80")); /* overlong 4 bytes */
    CHECK(!utf8("f0 8f bf bf"));
    CHECK(!utf8("ed a0 80"));    /* high surrogate */
    CHECK(!utf8("ed bf bf"));    /* low surrogate */
    CHECK(!utf8("f4 90 80 80")); /* over U+10FFFF */
    CHECK(!utf8("f5 80 80 80"));
    CHECK(!utf8("f8 88 80 80 80")); /* 5-byte form */
    CHECK(!utf8("ff"));
    CHECK(!utf8("80"));       /* lone continuation */
    CHECK(!utf8("c3"));       /* truncated 2 */
    CHECK(!utf8("e2 82"));    /* truncated 3 */
    CHECK(!utf8("f0 9f 98")); /* truncated 4 */
    CHECK(!utf8("c3 28"));    /* bad continuation */
    CHECK(!utf8("e2 28 a1"));
    /* long strings take the word-at-a-time path: a fault at any offset is still found */
    for (size_t at = 0; at < 24; at++) {
        uint8_t s[24];
        memset(s, 'a', sizeof(s));
        CHECK(utf8_valid(s, sizeof(s), false));
        s[at] = 0;
        CHECK(!utf8_valid(s, sizeof(s), false));
        s[at] = 0xC3;
        CHECK(!utf8_valid(s, sizeof(s), false));
        if (at + 1 < sizeof(s)) {
            s[at + 1] = 0xA9;
            CHECK(utf8_valid(s, sizeof(s), false));
        }
    }
}

int main(void)
{
    test_roundtrips();
    test_stream();
    test_encoder();
    test_errors();
    test_utf8();
    return check_finish("codec_test");
}
