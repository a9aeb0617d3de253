/* handover: a session's subscriptions, in-flight (with ids, one released) and queued deliveries
 * and incoming QoS 2 ids survive write -> chunks -> decode in order; a small chunk limit splits
 * them over several chunks, each valid on its own; a record larger than a chunk is dropped and
 * counted; a replay under way is passed on; every truncation, a bad kind, version or flag, a record
 * before the header and a second header are refused whole. */
#include "check.h"
#include "handover.h"
#include "msg.h"

#include <stdlib.h>
#include <string.h>

struct chunks {
    uint8_t *p[64];
    size_t len[64];
    bool last[64];
    size_t n;
};

static void keep(void *ctx, const uint8_t *p, size_t len, bool last)
{
    struct chunks *c = ctx;
    c->p[c->n] = malloc(len);
    memcpy(c->p[c->n], p, len);
    c->len[c->n] = len;
    c->last[c->n++] = last;
}

static void chunks_free(struct chunks *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->p[i]);
}

struct seen {
    int headers, subs, deliveries, q2;
    uint8_t version;
    bool persistent;
    uint32_t expiry;
    char filters[8][32];
    uint16_t ids[16];
    bool released[16];
    char payloads[16][16];
    uint16_t q2ids[4];
    int64_t replay;
};

static void on_header(void *ctx, uint8_t v, bool p, uint32_t e)
{
    struct seen *s = ctx;
    s->headers++;
    s->version = v;
    s->persistent = p;
    s->expiry = e;
}

static void on_sub(void *ctx, const char *f, size_t len, uint8_t o, uint32_t id)
{
    struct seen *s = ctx;
    memcpy(s->filters[s->subs], f, len);
    s->filters[s->subs++][len] = '\0';
    CHECK(o == 1 && id == (uint32_t)s->subs);
}

static void on_delivery(void *ctx, const struct handover_delivery *d)
{
    struct seen *s = ctx;
    s->ids[s->deliveries] = d->id;
    s->released[s->deliveries] = d->released;
    if (!d->released) {
        memcpy(s->payloads[s->deliveries], d->env.payload, d->env.payload_len);
        CHECK(d->topic_len == 3 && memcmp(d->topic, "a/b", 3) == 0);
    }
    s->deliveries++;
}

static void on_q2(void *ctx, uint16_t id)
{
    struct seen *s = ctx;
    s->q2ids[s->q2++] = id;
}

static void on_replay(void *ctx, int64_t since)
{
    struct seen *s = ctx;
    s->replay = since;
}

static const struct handover_visitor visitor = {on_header, on_sub, on_delivery, on_q2, on_replay};

static struct msg *mk(const char *payload, uint8_t qos)
{
    struct mqtt_publish pub = {
        .qos = qos, .payload = (const uint8_t *)payload, .payload_len = (uint32_t)strlen(payload)};
    return msg_new("a/b", 3, &pub, 0, 1);
}

/* A session: 2 subscriptions, in flight 7 (QoS 1) and 8 (QoS 2, released), queued 2 messages,
 * one delivery of a shared group (not sent), incoming QoS 2 ids 5 and 65535. */
static void write_session(struct handover_writer *w, struct msg *m[3])
{
    handover_header(w, 5, true, 3600);
    handover_sub(w, "x/#", 1, 1);
    handover_sub(w, "$share/g/y", 1, 2);
    handover_replay(w, 1764800000123);
    struct session_delivery d = {.msg = m[0], .qos = 1, .n_sub_ids = 1, .sub_ids = {1}};
    handover_delivery(w, &d, 7, false);
    struct session_delivery r = {.msg = NULL, .qos = 2};
    handover_delivery(w, &r, 8, true);
    struct session_delivery g = {.msg = m[1], .qos = 1, .group = &g};
    handover_delivery(w, &g, 0, false);
    struct session_delivery q1 = {.msg = m[1], .qos = 1};
    handover_delivery(w, &q1, 0, false);
    struct session_delivery q2 = {.msg = m[2], .qos = 0};
    handover_delivery(w, &q2, 0, false);
    handover_qos2_in(w, 5);
    handover_qos2_in(w, 65535);
}

static void decode_all(struct chunks *c, struct seen *s)
{
    for (size_t i = 0; i < c->n; i++) {
        uint32_t index;
        uint8_t flags;
        CHECK_EQ_INT(handover_decode(c->p[i], c->len[i], &visitor, s, &index, &flags), 0);
        CHECK_EQ_INT(index, i);
        CHECK((flags == HANDOVER_LAST) == (i + 1 == c->n));
        CHECK((flags == HANDOVER_LAST) == c->last[i]);
    }
}

static void check_session(const struct seen *s)
{
    CHECK(s->headers == 1 && s->version == 5 && s->persistent && s->expiry == 3600);
    CHECK_EQ_INT(s->subs, 2);
    CHECK_EQ_STR(s->filters[0], "x/#");
    CHECK_EQ_STR(s->filters[1], "$share/g/y");
    CHECK(s->replay == 1764800000123);
    CHECK_EQ_INT(s->deliveries, 4);
    CHECK(s->ids[0] == 7 && !s->released[0] && !strcmp(s->payloads[0], "first"));
    CHECK(s->ids[1] == 8 && s->released[1]);
    CHECK(s->ids[2] == 0 && !strcmp(s->payloads[2], "second"));
    CHECK(s->ids[3] == 0 && !strcmp(s->payloads[3], "third"));
    CHECK(s->q2 == 2 && s->q2ids[0] == 5 && s->q2ids[1] == 65535);
}

static void test_roundtrip_one_chunk(void)
{
    struct msg *m[3] = {mk("first", 1), mk("second", 1), mk("third", 0)};
    struct chunks c = {0};
    struct handover_writer w;
    handover_begin(&w, 65536, 0, "node-1", 1000, keep, &c);
    write_session(&w, m);
    handover_end(&w, HANDOVER_LAST);
    CHECK_EQ_INT(c.n, 1);
    struct seen s = {0};
    decode_all(&c, &s);
    check_session(&s);
    chunks_free(&c);
    for (int i = 0; i < 3; i++)
        msg_unref(m[i]);
}

static void test_split_over_chunks(void)
{
    struct msg *m[3] = {mk("first", 1), mk("second", 1), mk("third", 0)};
    struct chunks c = {0};
    struct handover_writer w;
    handover_begin(&w, 256, 0, "node-1", 1000, keep, &c);
    write_session(&w, m);
    for (int i = 0; i < 8; i++) { /* ~40 bytes each: more than one chunk's worth */
        struct session_delivery q = {.msg = m[2], .qos = 0};
        handover_delivery(&w, &q, 0, false);
    }
    char big[400];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct msg *huge = mk(big, 1);
    struct session_delivery d = {.msg = huge, .qos = 1};
    handover_delivery(&w, &d, 0, false); /* never fits: dropped, counted */
    CHECK_EQ_INT(w.dropped, 1);
    handover_end(&w, HANDOVER_LAST);
    CHECK(c.n >= 2);
    for (size_t i = 0; i < c.n; i++)
        CHECK(c.len[i] <= 256);
    struct seen s = {0};
    decode_all(&c, &s);
    s.deliveries -= 8;
    check_session(&s);
    chunks_free(&c);
    msg_unref(huge);
    for (int i = 0; i < 3; i++)
        msg_unref(m[i]);
}

static void test_no_session(void)
{
    struct chunks c = {0};
    struct handover_writer w;
    handover_begin(&w, 1024, 0, "node-1", 1000, keep, &c);
    handover_end(&w, HANDOVER_LAST);
    CHECK_EQ_INT(c.n, 1);
    struct seen s = {0};
    decode_all(&c, &s);
    CHECK(s.headers == 0 && s.subs == 0 && s.deliveries == 0);
    chunks_free(&c);
}

static void test_refused(void)
{
    struct msg *m[3] = {mk("first", 1), mk("second", 1), mk("third", 0)};
    struct chunks c = {0};
    struct handover_writer w;
    handover_begin(&w, 65536, 0, "node-1", 1000, keep, &c);
    write_session(&w, m);
    handover_end(&w, HANDOVER_LAST);
    uint8_t *p = c.p[0];
    size_t n = c.len[0];
    struct seen s = {0};
    uint32_t index;
    uint8_t last;
    const struct handover_visitor none = {0};
    for (size_t k = 0; k < n; k++) /* every prefix: a whole chunk of fewer records, or refused */
        handover_decode(p, k, &none, NULL, &index, &last);
    for (size_t cut = 1; cut <= 2; cut++) /* inside the last record (a QoS 2 id) */
        CHECK_EQ_INT(handover_decode(p, n - cut, &visitor, &s, &index, &last), -1);
    CHECK_EQ_INT(handover_decode(p, 3, &visitor, &s, &index, &last), -1); /* inside the head */
    uint8_t *q = malloc(n + 8);
    memcpy(q, p, n);
    q[0] = 2; /* another version */
    CHECK_EQ_INT(handover_decode(q, n, &visitor, &s, &index, &last), -1);
    memcpy(q, p, n);
    q[1] = 4; /* unknown flag */
    CHECK_EQ_INT(handover_decode(q, n, &visitor, &s, &index, &last), -1);
    memcpy(q, p, n);
    q[HANDOVER_CHUNK_HEAD] = 'Z'; /* unknown kind */
    CHECK_EQ_INT(handover_decode(q, n, &visitor, &s, &index, &last), -1);
    memcpy(q, p, n);
    memcpy(q + n, p + HANDOVER_CHUNK_HEAD, 7); /* a second header at the end */
    CHECK_EQ_INT(handover_decode(q, n + 7, &visitor, &s, &index, &last), -1);
    /* A later chunk with a header, and chunk 0 starting without one. */
    memcpy(q, p, n);
    q[5] = 1;
    CHECK_EQ_INT(handover_decode(q, n, &visitor, &s, &index, &last), -1);
    const uint8_t sub_first[] = {1, 1, 0, 0, 0, 0, 'S', 0, 1, 'x', 0, 0, 0, 0, 0};
    CHECK_EQ_INT(handover_decode(sub_first, sizeof(sub_first), &visitor, &s, &index, &last), -1);
    /* A filter that is not UTF-8, a QoS 0 delivery with a packet id. */
    const uint8_t bad_utf8[] = {1, 1, 0, 0, 0, 1, 'S', 0, 1, 0xff, 0, 0, 0, 0, 0};
    CHECK_EQ_INT(handover_decode(bad_utf8, sizeof(bad_utf8), &visitor, &s, &index, &last), -1);
    const uint8_t q0_id[] = {1, 1, 0, 0, 0, 1, 'D', 0, 9, 0, 0, 0, 1, 't', 0, 0, 0, 0};
    CHECK_EQ_INT(handover_decode(q0_id, sizeof(q0_id), &visitor, &s, &index, &last), -1);
    CHECK(s.headers == 0 && s.subs == 0 && s.deliveries == 0);
    free(q);
    chunks_free(&c);
    for (int i = 0; i < 3; i++)
        msg_unref(m[i]);
}

int main(void)
{
    test_roundtrip_one_chunk();
    test_split_over_chunks();
    test_no_session();
    test_refused();
    return check_finish("handover_test");
}
