/* codec_props: MQTT 5 property blocks, and the bounded cursor the codec reads with.
 * Private to the codec (codec__ prefix); nothing outside codec*.c includes this header. */
#ifndef CERTMQ_CODEC_PROPS_H
#define CERTMQ_CODEC_PROPS_H

#include "codec.h"

/* Pseudo packet type for the will properties inside CONNECT. */
#define CODEC_WILL_PROPS 16

struct codec_cur {
    const uint8_t *p, *end;
    bool bad; /* set by any read past the end; sticky */
};

void codec__cur_init(struct codec_cur *c, const uint8_t *p, size_t len);
bool codec__u8(struct codec_cur *c, uint8_t *v);
bool codec__u16(struct codec_cur *c, uint16_t *v);
bool codec__u32(struct codec_cur *c, uint32_t *v);
bool codec__varint(struct codec_cur *c, uint32_t *v);
bool codec__bin(struct codec_cur *c, struct mqtt_bin *b);
bool codec__str(struct codec_cur *c, struct mqtt_bin *b);

uint8_t *codec__put_varint(uint8_t *o, uint32_t v);
uint8_t *codec__put_u16(uint8_t *o, uint16_t v);
uint8_t *codec__put_u32(uint8_t *o, uint32_t v);
uint8_t *codec__put_bin(uint8_t *o, const uint8_t *p, uint16_t n);

/* Reads the property length and the properties of a packet of `type` (or CODEC_WILL_PROPS).
 * Returns 0 or a negative enum codec_err. */
int codec__props_decode(struct codec_cur *c, uint8_t type, struct mqtt_props *pr);
/* Writes the properties (without the length prefix); returns the end. */
uint8_t *codec__props_encode(uint8_t *o, const struct mqtt_props *pr, uint8_t type);

#endif
