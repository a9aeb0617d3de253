/* msg: one allocation per application message (a recycled block when small); released when
 * its last queue drops it. */
#include "msg.h"

#include "xmalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Header + topic + payload of a typical device message fit (64-byte payload, 40-byte topic). */
#define MSG_POOL_BLOCK 256

struct msg_pool {
    struct msg *free; /* free blocks, linked through their pool field (pool_give) */
    size_t nfree, max_free, live;
    bool closing;
};

struct msg_pool *msg_pool_new(size_t max_free)
{
    struct msg_pool *p = xcalloc(1, sizeof(*p));
    p->max_free = max_free;
    return p;
}

static void pool_drain(struct msg_pool *p)
{
    while (p->free) {
        struct msg *m = p->free;
        p->free = (struct msg *)(void *)m->pool;
        free(m);
    }
    p->nfree = 0;
}

void msg_pool_free(struct msg_pool *p)
{
    if (!p)
        return;
    pool_drain(p);
    p->closing = true;
    if (!p->live)
        free(p);
}

static struct msg *pool_take(struct msg_pool *p, size_t size)
{
    if (!p || size > MSG_POOL_BLOCK) {
        struct msg *m = xmalloc(size);
        m->pool = NULL;
        return m;
    }
    struct msg *m = p->free;
    if (m) {
        p->free = (struct msg *)(void *)m->pool;
        p->nfree--;
    } else {
        m = xmalloc(MSG_POOL_BLOCK);
    }
    p->live++;
    m->pool = p;
    return m;
}

static void pool_give(struct msg *m)
{
    struct msg_pool *p = m->pool;
    if (!p) {
        free(m);
        return;
    }
    p->live--;
    if (!p->closing && p->nfree < p->max_free) {
        /* a free block's pool field links the free list */
        m->pool = (struct msg_pool *)(void *)p->free;
        p->free = m;
        p->nfree++;
        return;
    }
    free(m);
    if (p->closing && !p->live)
        free(p);
}

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
    return msg_new_in(NULL, topic, topic_len, pub, expiry_at, id);
}

struct msg *msg_new_in(struct msg_pool *pool, const char *topic, size_t topic_len,
                       const struct mqtt_publish *pub, int64_t expiry_at, uint64_t id)
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
    struct msg *m = pool_take(pool, sizeof(*m) + extra);
    struct msg_pool *owner = m->pool;
    memset(m, 0, sizeof(*m));
    m->pool = owner;
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
        pool_give(m);
}

size_t msg_size(const struct msg *m)
{
    return sizeof(*m) + m->topic_len + 1 + m->payload_len + m->content_type.len +
           m->response_topic.len + m->correlation_data.len + m->user_props_len;
}
