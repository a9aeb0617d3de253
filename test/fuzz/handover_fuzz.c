/* handover fuzz target: the input is one chunk of a session handed over by another node. What
 * the decoder accepts is written again record by record and must decode to the same records;
 * nothing may read out of bounds, and a refused chunk reports nothing. */
#include "handover.h"
#include "msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct again {
    struct handover_writer w;
    size_t records;
    uint8_t *out;
    size_t out_len;
};

static void keep(void *ctx, const uint8_t *p, size_t len, bool last)
{
    struct again *a = ctx;
    (void)last;
    a->out = realloc(a->out, len);
    memcpy(a->out, p, len);
    a->out_len = len;
}

static void on_header(void *ctx, uint8_t v, bool p, uint32_t e)
{
    struct again *a = ctx;
    handover_header(&a->w, v, p, e);
    a->records++;
}

static void on_sub(void *ctx, const char *f, size_t len, uint8_t o, uint32_t id)
{
    struct again *a = ctx;
    char *z = malloc(len + 1);
    memcpy(z, f, len);
    z[len] = '\0';
    if (!memchr(f, 0, len)) {
        handover_sub(&a->w, z, o, id);
        a->records++;
    }
    free(z);
}

static void on_delivery(void *ctx, const struct handover_delivery *d)
{
    struct again *a = ctx;
    struct session_delivery sd = {.qos = d->qos, .retain = d->retain, .n_sub_ids = d->n_sub_ids};
    memcpy(sd.sub_ids, d->sub_ids, sizeof(sd.sub_ids));
    struct msg *m = NULL;
    if (!d->released) {
        struct mqtt_publish pub;
        envelope_publish(&d->env, d->topic, d->topic_len, &pub);
        m = msg_new(d->topic, d->topic_len, &pub, 0, 1);
    }
    sd.msg = m;
    handover_delivery(&a->w, &sd, d->id, d->released);
    a->records++;
    msg_unref(m);
}

static void on_q2(void *ctx, uint16_t id)
{
    struct again *a = ctx;
    handover_qos2_in(&a->w, id);
    a->records++;
}

static void on_replay(void *ctx, int64_t since)
{
    struct again *a = ctx;
    handover_replay(&a->w, since);
    a->records++;
}

static const struct handover_visitor visitor = {on_header, on_sub, on_delivery, on_q2, on_replay};

static void count(void *ctx, const struct handover_delivery *d)
{
    (void)d;
    ++*(size_t *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct again a = {0};
    handover_begin(&a.w, 1u << 20, 0, "fuzz", 1000, keep, &a);
    uint32_t index;
    uint8_t flags;
    int r = handover_decode(data, size, &visitor, &a, &index, &flags);
    handover_end(&a.w, HANDOVER_LAST);
    if (r != 0 && a.records)
        abort(); /* a refused chunk reports nothing */
    if (r == 0) {
        /* The re-encoding is a valid chunk 0 of its own (header first when there was one). */
        uint32_t i2;
        uint8_t l2;
        struct handover_visitor v2 = {0};
        v2.delivery = count;
        size_t n = 0;
        if (index == 0 && handover_decode(a.out, a.out_len, &v2, &n, &i2, &l2) != 0)
            abort();
    }
    free(a.out);
    return 0;
}
