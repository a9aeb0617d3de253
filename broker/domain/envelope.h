/* envelope: a message as it travels between cluster nodes; pure, no NATS.
 *
 * The subject carries the topic (subject.h); the envelope carries the rest a remote node needs
 * to deliver it as if it had been published locally: QoS, the retain flag as published, the
 * MQTT 5 properties that must survive (payload format indicator, content type, response topic,
 * correlation data, user properties, message expiry as the time remaining), the publishing
 * node and identity, and the payload. Version 1 layout, integers big-endian:
 *
 *   u8 version (1) | u8 flags: qos (bits 0-1), retain (2), has payload format (3), payload
 *   format (4), has expiry (5), has id (6); bit 7 0 | [u64 remaining expiry ms] | [u64 id] |
 *   u8 len + node |
 *   u16 len + identity | u16 len + content type | u16 len + response topic | u16 len +
 *   correlation data | u32 len + user properties (only 0x26 key value pairs) | payload (the rest)
 *
 * The id is the publishing node's number for the message (unique per node name, across its
 * restarts): with the node it names one message cluster-wide, so a replay from the stream can
 * skip what live routing delivered already (cluster_replay.c). Bit 6 came after the first
 * release of version 1: a node older than it refuses such envelopes as malformed, so a cluster
 * with persistence true is upgraded all at once.
 *
 * A node parses envelopes from the network, so the decoder checks everything (lengths, UTF-8,
 * the response topic, each user property) and a message it accepts is as valid as one decoded
 * from a client. */
#ifndef CERTMQ_ENVELOPE_H
#define CERTMQ_ENVELOPE_H

#include "codec.h"
#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 1

/* A decoded envelope; every pointer borrows the decoded bytes. */
struct envelope {
    uint8_t version, qos;
    bool retain, has_payload_format, has_expiry, has_id;
    uint8_t payload_format;
    uint64_t expiry_ms; /* time left when it was sent, if has_expiry */
    uint64_t id;        /* if has_id */
    struct mqtt_bin node, identity;
    struct mqtt_bin content_type, response_topic, correlation_data; /* len 0 = absent */
    const uint8_t *user_props;
    uint32_t user_props_len;
    const uint8_t *payload;
    uint32_t payload_len;
};

enum envelope_err {
    ENVELOPE_SHORT = -1,       /* truncated */
    ENVELOPE_VERSION_BAD = -2, /* from a node speaking a version this one does not know */
    ENVELOPE_MALFORMED = -3,   /* flags, lengths or text invalid */
};

/* Bytes envelope_encode needs for m from node/identity (with an id when id is not 0). */
size_t envelope_size(const struct msg *m, const char *node, const char *identity, uint64_t id);
/* Encode m (now = the clock of m->expiry_at) into out, with id unless it is 0. Returns the
 * length, or 0 when cap is too small or m has already expired. node must be shorter than 256
 * bytes. */
size_t envelope_encode(const struct msg *m, int64_t now, const char *node, const char *identity,
                       uint64_t id, uint8_t *out, size_t cap);
/* 0, or an enum envelope_err. */
int envelope_decode(const uint8_t *p, size_t len, struct envelope *e);
/* A publish view of e on topic (for msg_new); borrows e's bytes. */
void envelope_publish(const struct envelope *e, const char *topic, size_t topic_len,
                      struct mqtt_publish *pub);
/* A certificate revocation a node learnt (its CRL reload, a plugin's verdict), for the others
 * to end their connections with that certificate. Layout: u8 version (1) | u8 kind | 32 bytes
 * SHA-256 of the issuer's DER name | u8 serial length (1-32) | serial | u8 length + node. */
enum envelope_revoke_kind { ENVELOPE_REVOKED_CRL = 1, ENVELOPE_REVOKED_PLUGIN = 2 };
struct envelope_revoke {
    uint8_t kind; /* enum envelope_revoke_kind */
    uint8_t issuer_hash[32];
    uint8_t serial[32];
    uint8_t serial_len;
    struct mqtt_bin node; /* decode: borrows the bytes; encode: ignored (node is given) */
};
#define ENVELOPE_REVOKE_MAX (2 + 32 + 1 + 32 + 1 + 255)
/* Encode r from node (shorter than 256 bytes) into out; the length, or 0 when cap is too small
 * or r is invalid. */
size_t envelope_revoke_encode(const struct envelope_revoke *r, const char *node, uint8_t *out,
                              size_t cap);
/* 0, or an enum envelope_err. */
int envelope_revoke_decode(const uint8_t *p, size_t len, struct envelope_revoke *r);

/* Text for an enum envelope_err, for log lines. */
const char *envelope_strerror(int err);

#endif
