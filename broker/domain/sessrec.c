/* sessrec: session records and node heartbeats (see sessrec.h). */
#include "sessrec.h"

#include "subject.h"
#include "utf8.h"

#include <string.h>

#define NODE_MAX 64

static uint8_t *put_u64(uint8_t *o, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint8_t *put_str(uint8_t *o, const char *s, size_t len)
{
    *o++ = (uint8_t)(len >> 8);
    *o++ = (uint8_t)len;
    memcpy(o, s, len);
    return o + len;
}

size_t sessrec_size(const struct sessrec *r)
{
    return 18 + 6 + r->node_len + r->identity_len + r->client_id_len + 4 + r->chunk_len +
           (r->has_will ? 6 + r->will_topic_len + r->will_env_len : 0);
}

size_t sessrec_encode(const struct sessrec *r, uint8_t *out, size_t cap)
{
    size_t need = sessrec_size(r);
    if (need > cap || r->node_len > 0xffff || r->identity_len > 0xffff ||
        r->client_id_len > 0xffff || r->chunk_len > UINT32_MAX || r->will_topic_len > 0xffff)
        return 0;
    uint8_t *o = out;
    *o++ = SESSREC_VERSION;
    *o++ = r->flags;
    o = put_u64(o, r->epoch);
    o = put_u64(o, (uint64_t)r->since_ms);
    o = put_str(o, r->node, r->node_len);
    o = put_str(o, r->identity, r->identity_len);
    o = put_str(o, r->client_id, r->client_id_len);
    for (int i = 3; i >= 0; i--)
        *o++ = (uint8_t)(r->chunk_len >> (8 * i));
    if (r->chunk_len)
        memcpy(o, r->chunk, r->chunk_len);
    o += r->chunk_len;
    if (r->has_will) {
        for (int i = 3; i >= 0; i--)
            *o++ = (uint8_t)(r->will_delay_s >> (8 * i));
        o = put_str(o, r->will_topic, r->will_topic_len);
        if (r->will_env_len)
            memcpy(o, r->will_env, r->will_env_len);
    }
    return need;
}

/* A u16-length string at *p (left bytes *left); false when it does not fit. */
static bool get_str(const uint8_t **p, size_t *left, const char **s, size_t *len)
{
    if (*left < 2)
        return false;
    size_t n = (size_t)(*p)[0] << 8 | (*p)[1];
    if (*left - 2 < n)
        return false;
    *s = (const char *)*p + 2;
    *len = n;
    *p += 2 + n;
    *left -= 2 + n;
    return true;
}

int sessrec_decode(const uint8_t *p, size_t len, struct sessrec *r)
{
    if (len < 18 || p[0] != SESSREC_VERSION || (p[1] & ~(SESSREC_ONLINE | SESSREC_GONE)))
        return -1;
    memset(r, 0, sizeof(*r));
    r->flags = p[1];
    r->epoch = get_u64(p + 2);
    uint64_t since = get_u64(p + 10);
    if (!r->epoch || since > INT64_MAX)
        return -1;
    r->since_ms = (int64_t)since;
    const uint8_t *q = p + 18;
    size_t left = len - 18;
    if (!get_str(&q, &left, &r->node, &r->node_len) ||
        !get_str(&q, &left, &r->identity, &r->identity_len) ||
        !get_str(&q, &left, &r->client_id, &r->client_id_len) ||
        !subject_name_ok(r->node, r->node_len, NODE_MAX) || !r->identity_len ||
        !utf8_valid((const uint8_t *)r->identity, r->identity_len, false) ||
        !utf8_valid((const uint8_t *)r->client_id, r->client_id_len, false))
        return -1;
    if (left < 4)
        return -1;
    size_t clen = (size_t)q[0] << 24 | (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
    q += 4;
    left -= 4;
    if (clen > left)
        return -1;
    r->chunk = clen ? q : NULL;
    r->chunk_len = clen;
    q += clen;
    left -= clen;
    if (left) { /* the will */
        if (left < 6 || (r->flags & SESSREC_GONE))
            return -1;
        r->has_will = true;
        r->will_delay_s = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        q += 4;
        left -= 4;
        if (!get_str(&q, &left, &r->will_topic, &r->will_topic_len) || !r->will_topic_len || !left)
            return -1;
        r->will_env = q;
        r->will_env_len = left;
    }
    if ((r->flags & SESSREC_GONE) && clen)
        return -1;
    return 0;
}

void sessrec_beat_encode(int64_t started_ms, int64_t ckpt_ms, uint8_t out[SESSREC_BEAT_LEN])
{
    out[0] = SESSREC_VERSION;
    put_u64(put_u64(out + 1, (uint64_t)started_ms), (uint64_t)ckpt_ms);
}

int sessrec_beat_decode(const uint8_t *p, size_t len, int64_t *started_ms, int64_t *ckpt_ms)
{
    if (len != SESSREC_BEAT_LEN || p[0] != SESSREC_VERSION)
        return -1;
    uint64_t s = get_u64(p + 1), c = get_u64(p + 9);
    if (s > INT64_MAX || c > INT64_MAX)
        return -1;
    *started_ms = (int64_t)s;
    *ckpt_ms = (int64_t)c;
    return 0;
}
