/* codec_util: helpers shared by the codec unit tests. */
#ifndef CERTMQ_CODEC_UTIL_H
#define CERTMQ_CODEC_UTIL_H

#include "check.h"
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(s) ((struct mqtt_bin){(const uint8_t *)(s), (uint16_t)(sizeof(s) - 1)})
#define BIT(id) MQTT_PROP_BIT(MQTT_PROP_##id)

static inline long decode_copy(const uint8_t *b, size_t n, uint8_t v, uint32_t max,
                               struct mqtt_packet *p)
{
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, b, n);
    long r = codec_decode(c, n, v, max, p);
    free(c);
    return r;
}

/* Decodes that must keep their borrowed views use the original buffer. */
static inline long decode(const uint8_t *b, size_t n, uint8_t v, struct mqtt_packet *p)
{
    long r = decode_copy(b, n, v, 0, p); /* bounds check under ASan */
    long r2 = codec_decode(b, n, v, 0, p);
    CHECK_EQ_INT(r, r2);
    return r2;
}

static inline size_t hex(const char *h, uint8_t *out)
{
    size_t n = 0;
    while (*h) {
        if (*h == ' ') {
            h++;
            continue;
        }
        unsigned x;
        sscanf(h, "%2x", &x);
        out[n++] = (uint8_t)x;
        h += 2;
    }
    return n;
}

static inline bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

#endif
