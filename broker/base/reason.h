/* reason: why certmq refuses or ends a connection, named once.
 *
 * Every refusal and every disconnect that certmq decides carries one of these. The table in
 * reason.c maps each to the MQTT 3.1.1 CONNACK return code, the MQTT 5 reason code and the text
 * that goes into the log (and into an MQTT 5 Reason String), so no module writes a raw reason
 * code of its own. Plain data, libc only: the transport (a certificate verdict), the codec and
 * the MQTT engine share it. The wire codes themselves are named in enum mqtt_rc below, the only
 * place their numbers appear. */
#ifndef CERTMQ_REASON_H
#define CERTMQ_REASON_H

#include <stdbool.h>
#include <stdint.h>

enum reason {
    REASON_NONE = 0,
    /* Trust verdicts on a connected device (conn_untrust): no will, session per policy. */
    REASON_REVOKED_CRL,    /* the device's certificate or one of its CAs is on a current CRL */
    REASON_REVOKED_PLUGIN, /* a certificate-check plugin (OCSP) says revoked */
    REASON_CERT_EXPIRED,   /* a certificate of the chain passed its notAfter */

    /* CONNECT refusals: a CONNACK with a failure code, then close (v3 != 0). */
    REASON_BAD_VERSION,        /* protocol level we do not speak */
    REASON_ENHANCED_AUTH,      /* MQTT 5 authentication method: identity is the certificate */
    REASON_CLIENTID_EMPTY,     /* empty client id where the rules or the config forbid it */
    REASON_CLIENTID_NUL,       /* client id with U+0000 (cannot be a C string) */
    REASON_CLIENTID_MISMATCH,  /* clientid_policy match: client id != certificate identity */
    REASON_KEEPALIVE_TOO_LONG, /* v3 keep-alive over max_keepalive (v5 gets it overridden) */
    REASON_WILL_DENIED,        /* the ACL does not let the session publish its will */
    REASON_SESSION_QUOTA, /* max_persistent_sessions_per_identity: no new session for this identity
                           */
    REASON_MEMORY,        /* max_memory reached: no new work until memory is back down */
    REASON_IDENTITY_CONNECTIONS, /* max_connections_per_identity: that many clients connected */
    REASON_CLUSTER_CLAIM,        /* the cluster did not give this node the session */

    /* Protocol errors: closed (MQTT 5 DISCONNECT once connected, nothing before). */
    REASON_MALFORMED,            /* codec: malformed packet */
    REASON_PROTOCOL_ERROR,       /* codec: bad flags, bad property, ... */
    REASON_PACKET_TOO_LARGE,     /* codec: over max_packet_size */
    REASON_PAYLOAD_FORMAT,       /* codec: payload format indicator 1 on a non-UTF-8 payload */
    REASON_NOT_MQTT,             /* codec: bad protocol name */
    REASON_FIRST_NOT_CONNECT,    /* the connection did not start with CONNECT */
    REASON_SECOND_CONNECT,       /* CONNECT on a connected session */
    REASON_PACKET_TYPE_INVALID,  /* a server-to-client or reserved packet type */
    REASON_WILL_TOPIC_INVALID,   /* will topic fails the topic name rules or limits */
    REASON_TOPIC_NAME_INVALID,   /* PUBLISH topic fails the topic name rules or limits */
    REASON_TOPIC_ALIAS_INVALID,  /* topic alias 0 or over the maximum we announced */
    REASON_TOPIC_ALIAS_UNSET,    /* topic alias used before the client set it */
    REASON_RECEIVE_MAX_EXCEEDED, /* more QoS 2 publishes in flight than we announced */
    REASON_RETAIN_UNSUPPORTED,   /* retained PUBLISH when retain_available is off */
    REASON_NO_LOCAL_SHARED,      /* no-local on a shared subscription [MQTT-3.8.3-4] */
    REASON_EXPIRY_AFTER_ZERO,    /* DISCONNECT sets a session expiry after connecting with 0 */
    REASON_AUTH_UNEXPECTED,      /* AUTH although no enhanced authentication took place */
    REASON_SUB_ID_FROM_CLIENT,   /* PUBLISH to the server with a Subscription Identifier */

    /* The broker ends a live connection. */
    REASON_KEEPALIVE_TIMEOUT,  /* nothing received for 1.5 x keep-alive */
    REASON_PACKET_TIMEOUT,     /* a packet started but not finished within packet_timeout */
    REASON_TAKEN_OVER,         /* another connection attached to the session */
    REASON_SHUTDOWN,           /* the server stops */
    REASON_RETAIN_UNAVAILABLE, /* 3.1.1: a QoS >= 1 publish the cluster could not store */
    REASON_PUBLISH_RATE,       /* max_publish_rate_per_identity exceeded (3.1.1, or disconnect) */
    REASON_PUBLISH_BYTE_RATE,  /* max_publish_byte_rate_per_identity exceeded */
    REASON_COUNT
};

struct reason_info {
    uint8_t v3;         /* MQTT 3.1.1 CONNACK return code (refusals only; 0 = not a refusal) */
    uint8_t v5;         /* MQTT 5 CONNACK / DISCONNECT reason code */
    bool untrusted;     /* a trust verdict: the will is not published */
    const char *text;   /* log text and MQTT 5 Reason String */
    const char *metric; /* $SYS / metrics label */
};

/* Never NULL: an out-of-range value maps to REASON_NONE's row. */
const struct reason_info *reason_info(enum reason r);

/* MQTT reason codes by their specification names (MQTT 5 table 2-6; MQTT 3.1.1 CONNACK return
 * codes as MQTT_RC3_*). Besides the table's codes, these are the per-item results the broker
 * puts in PUBACK, PUBREC, PUBCOMP, SUBACK and UNSUBACK. */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00, /* also: granted QoS 0, normal disconnection */
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_UNSPECIFIED = 0x80, /* also the one 3.1.1 SUBACK failure code */
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENTID_INVALID = 0x85,
    MQTT_RC_BAD_USERNAME_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96, /* DISCONNECT only: PUBACK/PUBREC cannot carry it */
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,

    MQTT_RC3_UNACCEPTABLE_VERSION = 0x01,
    MQTT_RC3_IDENTIFIER_REJECTED = 0x02,
    MQTT_RC3_SERVER_UNAVAILABLE = 0x03,
    MQTT_RC3_BAD_USERNAME_PASSWORD = 0x04,
    MQTT_RC3_NOT_AUTHORIZED = 0x05,
};

/* MQTT 5: codes from 0x80 on report a failure, lower ones a success of some kind. */
static inline bool mqtt_rc_failed(uint8_t rc)
{
    return rc >= MQTT_RC_UNSPECIFIED;
}

#endif
