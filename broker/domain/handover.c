/* handover: session snapshots between cluster nodes (see handover.h). */
#include "handover.h"

#include "utf8.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *put(uint8_t *o, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

static void chunk_start(struct handover_writer *w)
{
    uint8_t *o = w->buf;
    *o++ = HANDOVER_VERSION;
    *o++ = 0;
    put(o, w->index, 4);
    w->len = HANDOVER_CHUNK_HEAD;
}

void handover_begin(struct handover_writer *w, size_t limit, uint32_t first, const char *node,
                    int64_t now, void (*flush)(void *ctx, const uint8_t *p, size_t len, bool last),
                    void *ctx)
{
    memset(w, 0, sizeof(*w));
    w->index = first;
    w->limit = limit < 256 ? 256 : limit;
    w->cap = w->limit < 65536 ? w->limit : 65536;
    w->buf = xmalloc(w->cap);
    w->node = node;
    w->now = now;
    w->flush = flush;
    w->ctx = ctx;
    chunk_start(w);
}

static void emit(struct handover_writer *w, uint8_t flags)
{
    w->buf[1] = flags;
    w->flush(w->ctx, w->buf, w->len, flags & HANDOVER_LAST);
    w->index++;
    chunk_start(w);
}

/* Room for a record of n bytes at w->buf + the returned offset; NULL when it can never fit. */
static uint8_t *reserve(struct handover_writer *w, size_t n)
{
    if (HANDOVER_CHUNK_HEAD + n > w->limit) {
        w->dropped++;
        return NULL;
    }
    if (w->len + n > w->limit)
        emit(w, 0);
    if (w->len + n > w->cap) {
        while (w->len + n > w->cap)
            w->cap *= 2;
        if (w->cap > w->limit)
            w->cap = w->limit;
        w->buf = xrealloc(w->buf, w->cap);
    }
    uint8_t *o = w->buf + w->len;
    w->len += n;
    return o;
}

void handover_header(struct handover_writer *w, uint8_t version, bool persistent, uint32_t expiry_s)
{
    uint8_t *o = reserve(w, 7);
    *o++ = 'H';
    *o++ = version;
    *o++ = persistent;
    put(o, expiry_s, 4);
}

void handover_sub(struct handover_writer *w, const char *filter, uint8_t options, uint32_t sub_id)
{
    size_t fl = strlen(filter);
    if (fl > 65535)
        return;
    uint8_t *o = reserve(w, 1 + 2 + fl + 1 + 4);
    if (!o)
        return;
    *o++ = 'S';
    o = put(o, fl, 2);
    memcpy(o, filter, fl);
    o += fl;
    *o++ = options;
    put(o, sub_id, 4);
}

void handover_delivery(struct handover_writer *w, const struct session_delivery *d, uint16_t id,
                       bool released)
{
    if (d->group)
        return; /* the group's other members on this node get it (the session is destroyed) */
    size_t tl = released ? 0 : d->msg->topic_len;
    size_t el = released ? 0 : envelope_size(d->msg, w->node, "", 0);
    uint8_t n = d->n_sub_ids > SESSION_MAX_SUB_IDS ? SESSION_MAX_SUB_IDS : d->n_sub_ids;
    uint8_t *o = reserve(w, 1 + 2 + 1 + 1 + 4u * n + 2 + tl + 4 + el);
    if (!o)
        return;
    uint8_t *start = o;
    *o++ = 'D';
    o = put(o, id, 2);
    *o++ = (uint8_t)((d->qos & 3) | (d->retain ? 4 : 0) | (released ? 8 : 0));
    *o++ = n;
    for (uint8_t i = 0; i < n; i++)
        o = put(o, d->sub_ids[i], 4);
    o = put(o, tl, 2);
    if (tl)
        memcpy(o, d->msg->topic, tl);
    o += tl;
    uint8_t *lenp = o;
    o += 4;
    size_t got = released ? 0 : envelope_encode(d->msg, w->now, w->node, "", 0, o, el);
    if (!released && !got) { /* expired meanwhile: not owed any more */
        w->len = (size_t)(start - w->buf);
        return;
    }
    put(lenp, got, 4);
    w->len -= el - got;
}

void handover_qos2_in(struct handover_writer *w, uint16_t id)
{
    uint8_t *o = reserve(w, 3);
    *o++ = 'Q';
    put(o, id, 2);
}

void handover_replay(struct handover_writer *w, int64_t since_ms)
{
    uint8_t *o = reserve(w, 9);
    *o++ = 'R';
    put(o, (uint64_t)(since_ms > 0 ? since_ms : 0), 8);
}

void handover_end(struct handover_writer *w, uint8_t how)
{
    emit(w, how);
    free(w->buf);
    w->buf = NULL;
}

/* ---- decoding ----------------------------------------------------------------------------- */

struct rd {
    const uint8_t *p, *end;
};

static bool get(struct rd *r, size_t n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = x << 8 | *r->p++;
    *v = x;
    return true;
}

static bool bytes(struct rd *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    *out = r->p;
    r->p += n;
    return true;
}

static bool text(struct rd *r, const char **s, size_t *len)
{
    uint64_t n;
    const uint8_t *b;
    if (!get(r, 2, &n) || !bytes(r, (size_t)n, &b) || !utf8_valid(b, (size_t)n, false))
        return false;
    *s = (const char *)b;
    *len = (size_t)n;
    return true;
}

static bool delivery(struct rd *r, struct handover_delivery *d)
{
    uint64_t id, flags, n, el;
    if (!get(r, 2, &id) || !get(r, 1, &flags) || !get(r, 1, &n) || (flags & ~15u) ||
        (flags & 3) == 3 || n > SESSION_MAX_SUB_IDS)
        return false;
    memset(d, 0, sizeof(*d));
    d->id = (uint16_t)id;
    d->qos = flags & 3;
    d->retain = flags & 4;
    d->released = flags & 8;
    d->n_sub_ids = (uint8_t)n;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t sid;
        if (!get(r, 4, &sid) || sid == 0 || sid > 268435455)
            return false;
        d->sub_ids[i] = (uint32_t)sid;
    }
    const uint8_t *env;
    if (!text(r, &d->topic, &d->topic_len) || !get(r, 4, &el) || !bytes(r, (size_t)el, &env))
        return false;
    if (d->released) /* only the PUBREL is owed: in flight, QoS 2, nothing else */
        return d->id && d->qos == 2 && d->topic_len == 0 && el == 0;
    if ((!d->qos && d->id) || !d->topic_len) /* id 0: queued, not sent yet */
        return false;
    return envelope_decode(env, (size_t)el, &d->env) == 0;
}

/* One pass over the records: checks only (v NULL), or reports them. */
static bool walk(struct rd r, const struct handover_visitor *v, void *ctx, bool first)
{
    bool header_seen = false;
    while (r.p < r.end) {
        uint8_t kind = *r.p++;
        if (kind == 'H') {
            uint64_t ver, pers, exp;
            if (!first || header_seen || !get(&r, 1, &ver) || !get(&r, 1, &pers) ||
                !get(&r, 4, &exp) || pers > 1 || ver < 3 || ver > 5)
                return false;
            header_seen = true;
            if (v && v->header)
                v->header(ctx, (uint8_t)ver, pers, (uint32_t)exp);
            continue;
        }
        if (first && !header_seen)
            return false; /* chunk 0 starts with its header */
        if (kind == 'S') {
            const char *f;
            size_t fl;
            uint64_t opts, sid;
            if (!text(&r, &f, &fl) || !fl || !get(&r, 1, &opts) || !get(&r, 4, &sid) ||
                sid > 268435455)
                return false;
            if (v && v->sub)
                v->sub(ctx, f, fl, (uint8_t)opts, (uint32_t)sid);
        } else if (kind == 'D') {
            struct handover_delivery d;
            if (!delivery(&r, &d))
                return false;
            if (v && v->delivery)
                v->delivery(ctx, &d);
        } else if (kind == 'Q') {
            uint64_t id;
            if (!get(&r, 2, &id) || !id)
                return false;
            if (v && v->qos2_in)
                v->qos2_in(ctx, (uint16_t)id);
        } else if (kind == 'R') {
            uint64_t ms;
            if (!get(&r, 8, &ms) || ms > INT64_MAX)
                return false;
            if (v && v->replay)
                v->replay(ctx, (int64_t)ms);
        } else {
            return false;
        }
    }
    return true; /* an empty chunk 0: there was no session to hand over */
}

int handover_decode(const uint8_t *p, size_t len, const struct handover_visitor *v, void *ctx,
                    uint32_t *index, uint8_t *flags)
{
    if (len < HANDOVER_CHUNK_HEAD || p[0] != HANDOVER_VERSION || (p[1] & ~3u) || p[1] == 3)
        return -1;
    uint32_t idx = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
    struct rd r = {p + HANDOVER_CHUNK_HEAD, p + len};
    if (!walk(r, NULL, NULL, idx == 0))
        return -1;
    *index = idx;
    *flags = p[1];
    walk(r, v, ctx, idx == 0);
    return 0;
}

void handover_session(struct handover_writer *w, const struct session *s)
{
    handover_header(w, session_version(s), session_persistent(s), session_expiry_s(s));
    for (size_t i = 0; i < session_sub_count(s); i++) {
        const struct session_sub *sub = session_sub_at(s, i);
        handover_sub(w, sub->filter, sub->options, sub->sub_id);
    }
}
