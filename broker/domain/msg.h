/* msg: an immutable, refcounted application message shared by every queue it is on.
 *
 * One allocation holds the header, topic, payload and the forwardable MQTT 5 properties, so a
 * PUBLISH fanned out to N subscribers costs one malloc. Fields are read-only after msg_new. */
#ifndef CERTMQ_MSG_H
#define CERTMQ_MSG_H

#include "codec.h"

#include <stdbool.h>
#include <stdint.h>

struct msg {
    uint32_t refs;
    uint8_t qos;
    bool retain;
    uint8_t payload_format; /* 0/1; valid if has_payload_format */
    bool has_payload_format;
    uint16_t topic_len;
    uint32_t payload_len;
    int64_t expiry_at; /* absolute ms (caller's clock) after which it is dropped; 0 = never */
    uint64_t id;       /* broker-wide sequence number (persistence key, tracing) */
    const char *topic; /* NUL-terminated, in this allocation */
    const uint8_t *payload;
    struct mqtt_bin content_type, response_topic, correlation_data;
    const uint8_t *user_props;
    uint32_t user_props_len;
    struct msg_pool *pool; /* where the block goes back to; NULL: malloc'd */
};

/* Recycled blocks for small messages (the common case: telemetry of a few dozen bytes), so
 * the publish path does not call malloc and free per message. Owned by the broker; freeing it
 * with messages still alive defers the release to the last of them. */
struct msg_pool;
struct msg_pool *msg_pool_new(size_t max_free);
void msg_pool_free(struct msg_pool *p);

/* Copies everything it needs from the borrowed publish view; topic may differ from pub->topic
 * (topic alias resolved). expiry_at computed by the caller. Starts with one reference. */
struct msg *msg_new(const char *topic, size_t topic_len, const struct mqtt_publish *pub,
                    int64_t expiry_at, uint64_t id);
/* The same from pool (NULL: malloc). */
struct msg *msg_new_in(struct msg_pool *pool, const char *topic, size_t topic_len,
                       const struct mqtt_publish *pub, int64_t expiry_at, uint64_t id);
static inline struct msg *msg_ref(struct msg *m)
{
    m->refs++;
    return m;
}
void msg_unref(struct msg *m);
/* Total bytes the message occupies (for queue byte limits). */
size_t msg_size(const struct msg *m);

#endif
