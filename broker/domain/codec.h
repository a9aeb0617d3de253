/* codec: MQTT 3.1, 3.1.1 and 5.0 packet decoding and encoding.
 *
 * Pure and allocation-free: decoded packets are plain values whose byte fields borrow the input
 * buffer (valid until the caller consumes those bytes). Decoding validates everything the
 * specification lets a receiver check without session state: fixed-header flags, remaining
 * length, string UTF-8 rules, topic name/filter syntax is NOT checked here (the topic module
 * does that), property identifiers allowed per packet type, duplicate properties, lengths.
 * It never reads past `len` and never trusts a length field. Depends on buf.h, and on reason.h
 * for the names of MQTT reason codes and of its decode errors. */
#ifndef CERTMQ_CODEC_H
#define CERTMQ_CODEC_H

#include "reason.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* Protocol level byte of CONNECT. */
enum mqtt_version {
    MQTT_V31 = 3,  /* "MQIsdp" */
    MQTT_V311 = 4, /* "MQTT" */
    MQTT_V5 = 5,
};

/* Negative results of decoding. Each is one internal reason (codec_err_reason), whose MQTT 5
 * code and text come from reason.c's table. */
enum codec_err {
    CODEC_ERR_MALFORMED = -1,         /* REASON_MALFORMED */
    CODEC_ERR_PROTOCOL = -2,          /* REASON_PROTOCOL_ERROR: bad flags, bad property, ... */
    CODEC_ERR_TOO_LARGE = -3,         /* REASON_PACKET_TOO_LARGE: over max_size */
    CODEC_ERR_BAD_VERSION = -4,       /* REASON_BAD_VERSION (CONNECT only) */
    CODEC_ERR_BAD_PROTOCOL_NAME = -5, /* REASON_NOT_MQTT: close without CONNACK */
    CODEC_ERR_PAYLOAD_FORMAT = -6     /* REASON_PAYLOAD_FORMAT */
};
/* The reason for a decode error; anything unknown is REASON_MALFORMED. */
enum reason codec_err_reason(int err);

/* A borrowed byte span (string, binary data). Strings are validated UTF-8 without U+0000. */
struct mqtt_bin {
    const uint8_t *p;
    uint16_t len;
};

/* MQTT 5 property identifiers. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEPALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Presence bit of a property in mqtt_props.present: (1ull << id). */
#define MQTT_PROP_BIT(id) (1ull << (id))

/* MQTT 5 properties of one packet (or of a CONNECT's will). Only fields whose bit is set in
 * `present` are meaningful. User properties are kept as their raw encoded pairs in order
 * (each pair = two length-prefixed UTF-8 strings) so they can be forwarded unchanged; iterate
 * with codec_user_prop_next(). */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t server_keepalive;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t maximum_packet_size;
    uint32_t subscription_id; /* SUBSCRIBE: the one allowed identifier */
    struct mqtt_bin content_type;
    struct mqtt_bin response_topic;
    struct mqtt_bin correlation_data;
    struct mqtt_bin assigned_client_id;
    struct mqtt_bin auth_method;
    struct mqtt_bin auth_data;
    struct mqtt_bin response_info;
    struct mqtt_bin server_reference;
    struct mqtt_bin reason_string;
    /* Raw property bytes from the first user property to the end of the last (identifiers
     * included; other properties inside are skipped when walked), kept so they can be
     * forwarded in order without copying them apart. */
    const uint8_t *user_props;
    uint32_t user_props_len;
    /* Encode only (PUBLISH to a subscriber): several subscription identifiers. */
    const uint32_t *sub_ids;
    uint8_t sub_id_count;
};

/* Iterate user properties: *off starts at 0; returns true and fills k/v while pairs remain. */
bool codec_user_prop_next(const struct mqtt_props *pr, uint32_t *off, struct mqtt_bin *k,
                          struct mqtt_bin *v);

struct mqtt_connect {
    uint8_t version; /* enum mqtt_version */
    bool clean;      /* clean session (3.1.1) / clean start (5) */
    uint16_t keepalive;
    struct mqtt_bin client_id;
    bool has_username, has_password;
    struct mqtt_bin username, password;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_bin will_topic;
    const uint8_t *will_payload; /* binary, up to 65535 bytes */
    uint16_t will_payload_len;
    struct mqtt_props props;
    struct mqtt_props will_props;
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc; /* 3.1.1 return code or 5.0 reason code */
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_bin topic; /* may be empty in v5 when a topic alias is used */
    uint16_t id;           /* packet identifier, QoS > 0 only */
    const uint8_t *payload;
    uint32_t payload_len;
    struct mqtt_props props;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. rc is 0 when absent (v3 or v5 short form). */
struct mqtt_ack {
    uint16_t id;
    uint8_t rc;
    struct mqtt_props props;
};

/* Subscription options byte (v5 layout; v3 uses only the QoS bits). */
#define MQTT_SUBOPT_QOS_MASK 0x03
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RETAIN_AS_PUBLISHED 0x08
#define MQTT_SUBOPT_RETAIN_HANDLING_SHIFT 4
#define MQTT_SUBOPT_RETAIN_HANDLING_MASK 0x30

/* SUBSCRIBE / UNSUBSCRIBE: entries validated and counted at decode; walk with
 * codec_sub_next(). For UNSUBSCRIBE entries have no options byte. */
struct mqtt_subscribe {
    uint16_t id;
    struct mqtt_props props;
    const uint8_t *entries;
    uint32_t entries_len;
    uint16_t count;
};

struct mqtt_sub_iter {
    const uint8_t *p, *end;
    bool has_options;
};
void codec_sub_iter(const struct mqtt_subscribe *s, bool has_options, struct mqtt_sub_iter *it);
/* Returns true and fills filter/options while entries remain. */
bool codec_sub_next(struct mqtt_sub_iter *it, struct mqtt_bin *filter, uint8_t *options);

/* SUBACK / UNSUBACK (encode: rcs are the reason codes; UNSUBACK in v3 has none). */
struct mqtt_suback {
    uint16_t id;
    struct mqtt_props props;
    const uint8_t *rcs;
    uint16_t count;
};

/* DISCONNECT and AUTH (v5 may carry a reason code and properties). */
struct mqtt_disconnect {
    uint8_t rc;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;  /* enum mqtt_type */
    uint8_t flags; /* low nibble of the fixed header */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe;   /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;         /* SUBACK and UNSUBACK */
        struct mqtt_disconnect disconnect; /* DISCONNECT and AUTH */
    } u;
};

/* Decode one packet from the front of in[0..len).
 * version: the connection's negotiated protocol level (ignored for CONNECT, which sets it).
 * max_size: largest acceptable whole packet (fixed header included); larger ones return
 *   CODEC_ERR_TOO_LARGE as soon as the remaining length is known, before the body arrives.
 * Returns bytes consumed (> 0) with *out filled, 0 if more bytes are needed, < 0 enum codec_err.
 * Server-side direction checks (e.g. a CONNACK sent to the broker) are the caller's job. */
long codec_decode(const uint8_t *in, size_t len, uint8_t version, uint32_t max_size,
                  struct mqtt_packet *out);

/* Encode p for protocol `version` into out[0..cap). Returns the packet's full size; bytes are
 * written only when that size <= cap (so call with cap 0 to measure). Fields not representable
 * in the version (properties, reason codes in v3) are left out. Returns 0 if p is not
 * encodable (e.g. remaining length over the MQTT maximum). */
size_t codec_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out, size_t cap);

/* Encode a PUBLISH without its payload: fixed header (remaining length counts the payload),
 * topic, packet id, properties. The caller appends pub->payload itself, so one payload can be
 * shared by every subscriber. Same return contract as codec_encode. */
size_t codec_encode_publish_head(const struct mqtt_publish *pub, uint8_t version, uint8_t *out,
                                 size_t cap);

/* Size of a packet's properties block as encoded (without its own length prefix). */
size_t codec_props_size(const struct mqtt_props *pr, uint8_t type);

#endif
