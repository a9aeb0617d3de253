/* msg: one allocation per application message; freed when its last queue drops it. */
#include "msg.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *put(uint8_t *dst, struct mqtt_bin *out, struct mqtt_bin in)
{
    out->p = dst;
    out->len = in.len;
    if (in.len)
        memcpy(dst, in.p, in.len);
    return dst + in.len;
}

struct msg *msg_new(const char *topic, size_t topic_len, const struct mqtt_publish *pub,
                    int64_t expiry_at, uint64_t id)
{
    const struct mqtt_props *pr = &pub->props;
    struct mqtt_bin ct = {0}, rt = {0}, cd = {0};
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE))
        ct = pr->content_type;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC))
        rt = pr->response_topic;
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))
        cd = pr->correlation_data;
    size_t extra = topic_len + 1 + pub->payload_len + ct.len + rt.len + cd.len + pr->user_props_len;
    struct msg *m = xmalloc(sizeof(*m) + extra);
    memset(m, 0, sizeof(*m));
    uint8_t *p = (uint8_t *)(m + 1);
    m->refs = 1;
    m->qos = pub->qos;
    m->retain = pub->retain;
    m->has_payload_format = (pr->present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) != 0;
    m->payload_format = pr->payload_format;
    m->expiry_at = expiry_at;
    m->id = id;
    m->topic = (const char *)p;
    m->topic_len = (uint16_t)topic_len;
    memcpy(p, topic, topic_len);
    p[topic_len] = '\0';
    p += topic_len + 1;
    m->payload = p;
    m->payload_len = pub->payload_len;
    if (pub->payload_len)
        memcpy(p, pub->payload, pub->payload_len);
    p += pub->payload_len;
    p = put(p, &m->content_type, ct);
    p = put(p, &m->response_topic, rt);
    p = put(p, &m->correlation_data, cd);
    m->user_props = p;
    m->user_props_len = pr->user_props_len;
    if (pr->user_props_len)
        memcpy(p, pr->user_props, pr->user_props_len);
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

size_t msg_size(const struct msg *m)
{
    return sizeof(*m) + m->topic_len + 1 + m->payload_len + m->content_type.len +
           m->response_topic.len + m->correlation_data.len + m->user_props_len;
}
