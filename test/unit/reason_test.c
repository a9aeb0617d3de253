/* reason: the table is complete and its codes are valid MQTT. */
#include "check.h"
#include "reason.h"

/* MQTT 3.1.1 CONNACK refusal codes are 1..5. */
static void test_rows(void)
{
    for (int r = 0; r < REASON_COUNT; r++) {
        const struct reason_info *ri = reason_info((enum reason)r);
        CHECK(ri != NULL);
        CHECK(ri->text && ri->text[0]);
        CHECK(ri->metric && ri->metric[0]);
        if (r == REASON_NONE) {
            CHECK_EQ_INT(ri->v5, MQTT_RC_SUCCESS);
            CHECK_EQ_INT(ri->v3, 0);
            continue;
        }
        CHECK(mqtt_rc_failed(ri->v5)); /* every other row is a failure */
        CHECK(ri->v3 <= MQTT_RC3_NOT_AUTHORIZED);
        if (ri->untrusted) /* a verdict ends a session, it is no CONNECT refusal */
            CHECK_EQ_INT(ri->v3, 0);
        /* Metrics labels are unique. */
        for (int q = 0; q < r; q++)
            CHECK(strcmp(reason_info((enum reason)q)->metric, ri->metric) != 0);
    }
}

static void test_known_rows(void)
{
    CHECK_EQ_INT(reason_info(REASON_REVOKED_CRL)->v5, 0x98);
    CHECK(reason_info(REASON_REVOKED_CRL)->untrusted);
    CHECK(reason_info(REASON_REVOKED_PLUGIN)->untrusted);
    CHECK(reason_info(REASON_CERT_EXPIRED)->untrusted);
    CHECK(!reason_info(REASON_KEEPALIVE_TIMEOUT)->untrusted);
    /* Refusals: the codes clients see on the wire. */
    CHECK_EQ_INT(reason_info(REASON_BAD_VERSION)->v3, 0x01);
    CHECK_EQ_INT(reason_info(REASON_BAD_VERSION)->v5, 0x84);
    CHECK_EQ_INT(reason_info(REASON_ENHANCED_AUTH)->v3, 0x05);
    CHECK_EQ_INT(reason_info(REASON_ENHANCED_AUTH)->v5, 0x8C);
    CHECK_EQ_INT(reason_info(REASON_CLIENTID_EMPTY)->v3, 0x02);
    CHECK_EQ_INT(reason_info(REASON_CLIENTID_EMPTY)->v5, 0x85);
    CHECK_EQ_INT(reason_info(REASON_WILL_DENIED)->v3, 0x05);
    CHECK_EQ_INT(reason_info(REASON_WILL_DENIED)->v5, 0x87);
    /* Ends and protocol errors. */
    CHECK_EQ_INT(reason_info(REASON_KEEPALIVE_TIMEOUT)->v5, 0x8D);
    CHECK_EQ_INT(reason_info(REASON_TAKEN_OVER)->v5, 0x8E);
    CHECK_EQ_INT(reason_info(REASON_SHUTDOWN)->v5, 0x8B);
    CHECK_EQ_INT(reason_info(REASON_PUBLISH_RATE)->v5, 0x96);
    CHECK_EQ_INT(reason_info(REASON_PUBLISH_BYTE_RATE)->v5, 0x96);
    CHECK_EQ_INT(reason_info(REASON_WILL_TOPIC_INVALID)->v5, 0x8F);
    CHECK_EQ_INT(reason_info(REASON_TOPIC_NAME_INVALID)->v5, 0x90);
    CHECK_EQ_INT(reason_info(REASON_TOPIC_ALIAS_INVALID)->v5, 0x94);
    CHECK_EQ_INT(reason_info(REASON_PACKET_TOO_LARGE)->v5, 0x95);
    CHECK_EQ_INT(reason_info(REASON_RECEIVE_MAX_EXCEEDED)->v5, 0x93);
    CHECK_EQ_INT(reason_info(REASON_PAYLOAD_FORMAT)->v5, 0x99);
    CHECK_EQ_INT(reason_info(REASON_RETAIN_UNSUPPORTED)->v5, 0x9A);
    CHECK_EQ_INT(reason_info(REASON_MALFORMED)->v5, 0x81);
    CHECK_EQ_INT(reason_info(REASON_PROTOCOL_ERROR)->v5, 0x82);
    CHECK_EQ_STR(reason_info(REASON_KEEPALIVE_TIMEOUT)->text, "keep-alive timeout");
    CHECK_EQ_STR(reason_info(REASON_TAKEN_OVER)->text, "session taken over by another connection");
}

static void test_out_of_range(void)
{
    CHECK(reason_info(REASON_COUNT) == reason_info(REASON_NONE));
    CHECK(reason_info((enum reason) - 1) == reason_info(REASON_NONE));
    CHECK(reason_info((enum reason)1000) == reason_info(REASON_NONE));
}

static void test_codes(void)
{
    CHECK(!mqtt_rc_failed(MQTT_RC_SUCCESS));
    CHECK(!mqtt_rc_failed(MQTT_RC_NO_MATCHING_SUBSCRIBERS));
    CHECK(!mqtt_rc_failed(MQTT_RC_NO_SUBSCRIPTION_EXISTED));
    CHECK(mqtt_rc_failed(MQTT_RC_UNSPECIFIED));
    CHECK(mqtt_rc_failed(MQTT_RC_QUOTA_EXCEEDED));
    CHECK_EQ_INT(MQTT_RC_PACKET_ID_IN_USE, 0x91);
    CHECK_EQ_INT(MQTT_RC_PACKET_ID_NOT_FOUND, 0x92);
}

int main(void)
{
    test_rows();
    test_known_rows();
    test_out_of_range();
    test_codes();
    return check_finish("reason");
}
