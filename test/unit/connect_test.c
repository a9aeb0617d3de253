/* connect: every branch of the CONNECT decision, for MQTT 3.1, 3.1.1 and 5. */
#include "check.h"
#include "connect.h"

#include <string.h>

static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};

static struct connect_limits lim_default(void)
{
    return (struct connect_limits){.max_keepalive = 65535,
                                   .receive_maximum = 100,
                                   .max_topic_alias = 0,
                                   .max_topic_alias_broker = 10,
                                   .max_packet_size = 0,
                                   .allow_zero_length_clientid = true,
                                   .retain_available = true};
}

static struct mqtt_connect mk(uint8_t version, const char *id, bool clean, uint16_t ka)
{
    struct mqtt_connect k = {0};
    k.version = version;
    k.clean = clean;
    k.keepalive = ka;
    k.client_id.p = (const uint8_t *)id;
    k.client_id.len = (uint16_t)strlen(id);
    return k;
}

static int topic_calls;

/* Stand-in for broker_topic_ok: no wildcards, not empty. */
static bool topic_ok(const void *ctx, const char *t, size_t len)
{
    topic_calls++;
    CHECK(ctx == (const void *)&topic_calls);
    return len > 0 && !memchr(t, '#', len) && !memchr(t, '+', len);
}

static enum reason decide(const struct connect_limits *l, const struct mqtt_connect *k,
                          const char *identity, struct connect_result *out)
{
    struct connect_request req = {.lim = l,
                                  .identity = identity,
                                  .k = k,
                                  .auto_id = "auto-00000000000000ff",
                                  .topic_ok = topic_ok,
                                  .topic_ctx = &topic_calls};
    return connect_decide(&req, out);
}

/* The CONNACK code a refusal carries for this version (what client.c's refuse sends). */
static uint8_t wire(uint8_t version, enum reason r)
{
    return version == MQTT_V5 ? reason_info(r)->v5 : reason_info(r)->v3;
}

static bool has(const struct mqtt_props *pr, enum mqtt_prop_id id)
{
    return (pr->present & MQTT_PROP_BIT(id)) != 0;
}

static void test_enhanced_auth(void)
{
    struct connect_limits l = lim_default();
    for (size_t i = 0; i < sizeof(versions); i++) {
        struct mqtt_connect k = mk(versions[i], "c1", true, 30);
        k.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
        struct connect_result d;
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_ENHANCED_AUTH);
        CHECK_EQ_INT(wire(versions[i], REASON_ENHANCED_AUTH), versions[i] == MQTT_V5 ? 0x8C : 0x05);
        CHECK(d.client_id.p == NULL); /* refused before the id is looked at */
    }
}

static void test_empty_client_id(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    /* 3.1 never allows it. */
    struct mqtt_connect k = mk(MQTT_V31, "", true, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_EMPTY);
    CHECK_EQ_INT(wire(MQTT_V31, REASON_CLIENTID_EMPTY), 0x02);
    CHECK(!d.assign_id);
    /* 3.1.1 only with a clean session. */
    k = mk(MQTT_V311, "", false, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_EMPTY);
    k = mk(MQTT_V311, "", true, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(d.assign_id);
    CHECK_EQ_INT(d.client_id.len, strlen("auto-00000000000000ff"));
    CHECK(!memcmp(d.client_id.p, "auto-00000000000000ff", d.client_id.len));
    CHECK(!has(&d.connack, MQTT_PROP_ASSIGNED_CLIENT_ID)); /* no properties before 5 */
    /* 5 with or without clean start; the id is told in CONNACK. */
    k = mk(MQTT_V5, "", false, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(d.assign_id);
    CHECK(has(&d.connack, MQTT_PROP_ASSIGNED_CLIENT_ID));
    CHECK_EQ_INT(d.connack.assigned_client_id.len, d.client_id.len);
    CHECK(d.connack.assigned_client_id.p == d.client_id.p);
    /* The configuration can forbid it everywhere. */
    l.allow_zero_length_clientid = false;
    for (size_t i = 0; i < sizeof(versions); i++) {
        k = mk(versions[i], "", true, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_EMPTY);
        CHECK_EQ_INT(wire(versions[i], REASON_CLIENTID_EMPTY),
                     versions[i] == MQTT_V5 ? 0x85 : 0x02);
    }
}

static void test_client_id_nul_and_match(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    for (size_t i = 0; i < sizeof(versions); i++) {
        struct mqtt_connect k = mk(versions[i], "c1", true, 30);
        k.client_id.p = (const uint8_t *)"ab\0cd";
        k.client_id.len = 5;
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_NUL);
        CHECK_EQ_INT(wire(versions[i], REASON_CLIENTID_NUL), versions[i] == MQTT_V5 ? 0x85 : 0x02);
        CHECK_EQ_INT(d.client_id.len, 5); /* known, for the log line */
    }
    l.clientid_match = true;
    for (size_t i = 0; i < sizeof(versions); i++) {
        struct mqtt_connect k = mk(versions[i], "dev2", true, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_MISMATCH);
        CHECK_EQ_INT(wire(versions[i], REASON_CLIENTID_MISMATCH),
                     versions[i] == MQTT_V5 ? 0x85 : 0x02);
        k = mk(versions[i], "dev", true, 30); /* a prefix is not the identity */
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_MISMATCH);
        k = mk(versions[i], "dev1", true, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    }
    /* An assigned id is never the identity. */
    struct mqtt_connect k = mk(MQTT_V5, "", true, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_CLIENTID_MISMATCH);
    CHECK(d.assign_id);
}

static void test_keepalive(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    /* No limit: whatever the client says, even none. */
    struct mqtt_connect k = mk(MQTT_V311, "c1", true, 0);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.keepalive, 0);
    CHECK(!d.server_keepalive);
    l.max_keepalive = 60;
    /* Before 5: refused when over the maximum or none. */
    for (size_t i = 0; i < 2; i++) {
        k = mk(versions[i], "c1", true, 61);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_KEEPALIVE_TOO_LONG);
        CHECK_EQ_INT(wire(versions[i], REASON_KEEPALIVE_TOO_LONG), 0x02);
        k = mk(versions[i], "c1", true, 0);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_KEEPALIVE_TOO_LONG);
        k = mk(versions[i], "c1", true, 60);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK_EQ_INT(d.keepalive, 60);
        CHECK(!d.server_keepalive);
    }
    /* 5: ours, told in CONNACK. */
    k = mk(MQTT_V5, "c1", true, 61);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.keepalive, 60);
    CHECK(d.server_keepalive);
    CHECK(has(&d.connack, MQTT_PROP_SERVER_KEEPALIVE));
    CHECK_EQ_INT(d.connack.server_keepalive, 60);
    k = mk(MQTT_V5, "c1", true, 0);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.keepalive, 60);
    CHECK(d.server_keepalive);
    k = mk(MQTT_V5, "c1", true, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.keepalive, 30);
    CHECK(!has(&d.connack, MQTT_PROP_SERVER_KEEPALIVE));
    /* MQTT: 1.5 x keep-alive. */
    CHECK_EQ_INT(connect_keepalive_limit_ms(60), 90000);
    CHECK_EQ_INT(connect_keepalive_limit_ms(65535), 98302500);
}

static void test_will_topic(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    for (size_t i = 0; i < sizeof(versions); i++) {
        struct mqtt_connect k = mk(versions[i], "c1", true, 30);
        k.will = true;
        k.will_topic.p = (const uint8_t *)"a/#";
        k.will_topic.len = 3;
        topic_calls = 0;
        enum reason r = decide(&l, &k, "dev1", &d);
        CHECK_EQ_INT(r, REASON_WILL_TOPIC_INVALID);
        CHECK_EQ_INT(topic_calls, 1);
        CHECK_EQ_INT(reason_info(r)->v3, 0); /* a protocol error: no CONNACK */
        CHECK_EQ_INT(reason_info(r)->v5, 0x8F);
        k.will_topic.p = (const uint8_t *)"a/b";
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        /* Without a will the topic is not looked at. */
        k.will = false;
        topic_calls = 0;
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK_EQ_INT(topic_calls, 0);
    }
    /* A refused keep-alive is reported before a bad will topic. */
    l.max_keepalive = 10;
    struct mqtt_connect k = mk(MQTT_V311, "c1", true, 30);
    k.will = true;
    k.will_topic.p = (const uint8_t *)"#";
    k.will_topic.len = 1;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_KEEPALIVE_TOO_LONG);
    CHECK_EQ_INT(reason_info(REASON_WILL_DENIED)->v3, 0x05);
    CHECK_EQ_INT(reason_info(REASON_WILL_DENIED)->v5, 0x87);
}

static void test_session(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    /* 5: the session expiry interval decides; none = ends with the connection. */
    struct mqtt_connect k = mk(MQTT_V5, "c1", false, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(!d.persistent);
    CHECK_EQ_INT(d.expiry_s, 0);
    k.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
    k.props.session_expiry = 3600;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(d.persistent);
    CHECK_EQ_INT(d.expiry_s, 3600);
    CHECK(!(d.connack.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)));
    /* ... up to persistent_client_expiration, which the CONNACK then announces. */
    l.persistent_client_expiration = 600;
    k.props.session_expiry = UINT32_MAX;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(d.persistent);
    CHECK_EQ_INT(d.expiry_s, 600);
    CHECK(d.connack.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY));
    CHECK_EQ_INT(d.connack.session_expiry, 600);
    l.persistent_client_expiration = 0;
    k.props.session_expiry = 0;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(!d.persistent);
    /* Before 5: clean session decides, persistent_client_expiration bounds it. */
    for (size_t i = 0; i < 2; i++) {
        l.persistent_client_expiration = 0;
        k = mk(versions[i], "c1", false, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK(d.persistent);
        CHECK_EQ_INT(d.expiry_s, UINT32_MAX);
        l.persistent_client_expiration = 86400;
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK_EQ_INT(d.expiry_s, 86400);
        k = mk(versions[i], "c1", true, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK(!d.persistent);
    }
}

static void test_client_limits_and_problem_info(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    struct mqtt_connect k = mk(MQTT_V5, "c1", true, 30);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.peer_max_packet, 0);
    CHECK_EQ_INT(d.out_alias_max, 0);
    CHECK_EQ_INT(d.receive_window, 0);
    CHECK(!d.no_problem_info);
    k.props.present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
                       MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) |
                       MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                       MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO);
    k.props.maximum_packet_size = 4096;
    k.props.topic_alias_maximum = 7;
    k.props.receive_maximum = 5;
    k.props.request_problem_info = 1;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.peer_max_packet, 4096);
    CHECK_EQ_INT(d.out_alias_max, 7);
    /* A client's alias maximum beyond max_topic_alias_broker is not ours to fill. */
    k.props.topic_alias_maximum = 65535;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.out_alias_max, 10);
    CHECK_EQ_INT(d.receive_window, 5);
    CHECK(!d.no_problem_info);
    /* Request problem information = 0 holds for the refusal too. */
    k.props.request_problem_info = 0;
    k.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_ENHANCED_AUTH);
    CHECK(d.no_problem_info);
}

static void test_connack_props(void)
{
    struct connect_limits l = lim_default();
    struct connect_result d;
    /* Before 5: none. */
    for (size_t i = 0; i < 2; i++) {
        struct mqtt_connect k = mk(versions[i], "c1", true, 30);
        CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
        CHECK_EQ_INT(d.connack.present, 0);
    }
    struct mqtt_connect k = mk(MQTT_V5, "c1", true, 30);
    l.retain_available = false;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK(has(&d.connack, MQTT_PROP_RECEIVE_MAXIMUM));
    CHECK_EQ_INT(d.connack.receive_maximum, 100);
    CHECK(has(&d.connack, MQTT_PROP_RETAIN_AVAILABLE));
    CHECK_EQ_INT(d.connack.retain_available, 0);
    CHECK(has(&d.connack, MQTT_PROP_SUB_ID_AVAILABLE) && d.connack.sub_id_available == 1);
    CHECK(has(&d.connack, MQTT_PROP_WILDCARD_SUB_AVAILABLE) &&
          d.connack.wildcard_sub_available == 1);
    CHECK(has(&d.connack, MQTT_PROP_SHARED_SUB_AVAILABLE) && d.connack.shared_sub_available == 1);
    CHECK(!has(&d.connack, MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
    CHECK(!has(&d.connack, MQTT_PROP_MAXIMUM_PACKET_SIZE));
    CHECK(!has(&d.connack, MQTT_PROP_SERVER_KEEPALIVE));
    CHECK(!has(&d.connack, MQTT_PROP_ASSIGNED_CLIENT_ID));
    l.retain_available = true;
    l.max_topic_alias = 16;
    l.max_packet_size = 65536;
    CHECK_EQ_INT(decide(&l, &k, "dev1", &d), REASON_NONE);
    CHECK_EQ_INT(d.connack.retain_available, 1);
    CHECK(has(&d.connack, MQTT_PROP_TOPIC_ALIAS_MAXIMUM));
    CHECK_EQ_INT(d.connack.topic_alias_maximum, 16);
    CHECK(has(&d.connack, MQTT_PROP_MAXIMUM_PACKET_SIZE));
    CHECK_EQ_INT(d.connack.maximum_packet_size, 65536);
    /* The CONNACK properties encode. */
    struct mqtt_packet p = {.type = MQTT_CONNACK};
    p.u.connack.props = d.connack;
    CHECK(codec_encode(&p, MQTT_V5, NULL, 0) > 0);
}

int main(void)
{
    test_enhanced_auth();
    test_empty_client_id();
    test_client_id_nul_and_match();
    test_keepalive();
    test_will_topic();
    test_session();
    test_client_limits_and_problem_info();
    test_connack_props();
    return check_finish("connect");
}
