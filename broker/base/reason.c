/* reason: the one table from internal reasons to MQTT codes and log text.
 *
 * The texts are what operators grep for in the log and what MQTT 5 clients see as the Reason
 * String: change one only on purpose. */
#include "reason.h"

#include <stddef.h>

/* Columns: 3.1.1 CONNACK code (0 = not a refusal), MQTT 5 code, trust verdict, text, metric. */
static const struct reason_info table[REASON_COUNT] = {
    [REASON_NONE] = {0x00, 0x00, false, "normal", "none"},
    /* MQTT 5 0x98 Administrative action: the broker ended it, not the protocol. */
    [REASON_REVOKED_CRL] = {0x00, MQTT_RC_ADMINISTRATIVE_ACTION, true, "certificate revoked",
                            "revoked"},
    [REASON_REVOKED_PLUGIN] = {0x00, MQTT_RC_ADMINISTRATIVE_ACTION, true, "revoked by plugin",
                               "revoked_by_plugin"},
    [REASON_CERT_EXPIRED] = {0x00, MQTT_RC_ADMINISTRATIVE_ACTION, true, "certificate expired",
                             "expired"},

    [REASON_BAD_VERSION] = {MQTT_RC3_UNACCEPTABLE_VERSION, MQTT_RC_UNSUPPORTED_VERSION, false,
                            "unsupported protocol version", "bad_version"},
    [REASON_ENHANCED_AUTH] = {MQTT_RC3_NOT_AUTHORIZED, MQTT_RC_BAD_AUTH_METHOD, false,
                              "enhanced authentication requested; identity comes from the "
                              "client certificate",
                              "enhanced_auth"},
    [REASON_CLIENTID_EMPTY] = {MQTT_RC3_IDENTIFIER_REJECTED, MQTT_RC_CLIENTID_INVALID, false,
                               "empty client id not allowed", "clientid_empty"},
    [REASON_CLIENTID_NUL] = {MQTT_RC3_IDENTIFIER_REJECTED, MQTT_RC_CLIENTID_INVALID, false,
                             "client id contains NUL", "clientid_nul"},
    [REASON_CLIENTID_MISMATCH] = {MQTT_RC3_IDENTIFIER_REJECTED, MQTT_RC_CLIENTID_INVALID, false,
                                  "client id differs from the certificate identity "
                                  "(clientid_policy match)",
                                  "clientid_mismatch"},
    /* 3.1.1 has no way to lower a keep-alive, so the client is told its id is refused (as
     * mosquitto does); MQTT 5 clients get Server Keep Alive instead (connect_decide). */
    [REASON_KEEPALIVE_TOO_LONG] = {MQTT_RC3_IDENTIFIER_REJECTED, MQTT_RC_CLIENTID_INVALID, false,
                                   "keep-alive over max_keepalive", "keepalive_too_long"},
    [REASON_WILL_DENIED] = {MQTT_RC3_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED, false,
                            "will topic not allowed by the ACL", "will_denied"},
    /* 3.1.1 has no quota code: "server unavailable" is the nearest it lets a client retry. */
    [REASON_SESSION_QUOTA] = {MQTT_RC3_SERVER_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED, false,
                              "too many persistent sessions for this identity", "session_quota"},
    [REASON_MEMORY] = {MQTT_RC3_SERVER_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED, false,
                       "server memory budget (max_memory) reached", "memory"},
    [REASON_IDENTITY_CONNECTIONS] = {MQTT_RC3_SERVER_UNAVAILABLE, MQTT_RC_QUOTA_EXCEEDED, false,
                                     "too many clients connected with this identity "
                                     "(max_connections_per_identity)",
                                     "identity_connections"},
    [REASON_CLUSTER_CLAIM] = {MQTT_RC3_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, false,
                              "the cluster did not give this node the session (JetStream "
                              "unreachable, or a newer connection claimed it)",
                              "cluster_claim"},

    [REASON_MALFORMED] = {0, MQTT_RC_MALFORMED, false, "malformed packet", "malformed"},
    [REASON_PROTOCOL_ERROR] = {0, MQTT_RC_PROTOCOL_ERROR, false, "protocol error",
                               "protocol_error"},
    [REASON_PACKET_TOO_LARGE] = {0, MQTT_RC_PACKET_TOO_LARGE, false, "packet too large",
                                 "packet_too_large"},
    [REASON_PAYLOAD_FORMAT] = {0, MQTT_RC_PAYLOAD_FORMAT_INVALID, false,
                               "payload is not UTF-8 although its payload format indicator says "
                               "so",
                               "payload_format"},
    /* Never sent (no CONNACK to a peer that does not speak MQTT); the code is for the log. */
    [REASON_NOT_MQTT] = {0, MQTT_RC_MALFORMED, false, "not an MQTT connection (bad protocol name)",
                         "not_mqtt"},
    [REASON_FIRST_NOT_CONNECT] = {0, MQTT_RC_PROTOCOL_ERROR, false, "first packet is not CONNECT",
                                  "first_not_connect"},
    [REASON_SECOND_CONNECT] = {0, MQTT_RC_PROTOCOL_ERROR, false, "second CONNECT",
                               "second_connect"},
    [REASON_PACKET_TYPE_INVALID] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                    "packet type not allowed from a client", "packet_type"},
    [REASON_WILL_TOPIC_INVALID] = {0, MQTT_RC_TOPIC_FILTER_INVALID, false, "invalid will topic",
                                   "will_topic_invalid"},
    [REASON_TOPIC_NAME_INVALID] = {0, MQTT_RC_TOPIC_NAME_INVALID, false,
                                   "invalid topic name in PUBLISH", "topic_name_invalid"},
    [REASON_TOPIC_ALIAS_INVALID] = {0, MQTT_RC_TOPIC_ALIAS_INVALID, false,
                                    "topic alias out of range", "topic_alias_invalid"},
    [REASON_TOPIC_ALIAS_UNSET] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                  "topic alias used before it was set", "topic_alias_unset"},
    [REASON_RECEIVE_MAX_EXCEEDED] = {0, MQTT_RC_RECEIVE_MAX_EXCEEDED, false,
                                     "receive maximum exceeded", "receive_max_exceeded"},
    [REASON_RETAIN_UNSUPPORTED] = {0, MQTT_RC_RETAIN_NOT_SUPPORTED, false, "retain not supported",
                                   "retain_unsupported"},
    [REASON_NO_LOCAL_SHARED] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                "no-local on a shared subscription", "no_local_shared"},
    [REASON_EXPIRY_AFTER_ZERO] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                  "session expiry set in DISCONNECT after connecting with 0",
                                  "expiry_after_zero"},
    [REASON_AUTH_UNEXPECTED] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                "AUTH without enhanced authentication", "auth_unexpected"},
    /* [MQTT-3.3.4-6]: only the server sets Subscription Identifiers on a PUBLISH. */
    [REASON_SUB_ID_FROM_CLIENT] = {0, MQTT_RC_PROTOCOL_ERROR, false,
                                   "subscription identifier in a PUBLISH from a client",
                                   "sub_id_from_client"},

    [REASON_KEEPALIVE_TIMEOUT] = {0, MQTT_RC_KEEPALIVE_TIMEOUT, false, "keep-alive timeout",
                                  "keepalive_timeout"},
    /* The nearest MQTT 5 code: the client stopped sending what it owes. */
    [REASON_PACKET_TIMEOUT] = {0, MQTT_RC_KEEPALIVE_TIMEOUT, false,
                               "packet not completed within packet_timeout", "packet_timeout"},
    [REASON_TAKEN_OVER] = {0, MQTT_RC_SESSION_TAKEN_OVER, false,
                           "session taken over by another connection", "taken_over"},
    [REASON_SHUTDOWN] = {0, MQTT_RC_SERVER_SHUTTING_DOWN, false, "server shutting down",
                         "shutdown"},
    [REASON_RETAIN_UNAVAILABLE] = {0, MQTT_RC_UNSPECIFIED, false,
                                   "the cluster could not store a QoS >= 1 publish (its "
                                   "retained store or message stream is unavailable)",
                                   "retain_unavailable"},
    [REASON_PUBLISH_RATE] = {0, MQTT_RC_MESSAGE_RATE_TOO_HIGH, false,
                             "publish rate over this identity's limit "
                             "(max_publish_rate_per_identity)",
                             "publish_rate"},
    [REASON_PUBLISH_BYTE_RATE] = {0, MQTT_RC_MESSAGE_RATE_TOO_HIGH, false,
                                  "publish byte rate over this identity's limit "
                                  "(max_publish_byte_rate_per_identity)",
                                  "publish_byte_rate"},
};

const struct reason_info *reason_info(enum reason r)
{
    if ((unsigned)r >= REASON_COUNT)
        r = REASON_NONE;
    return &table[r];
}
