/* codec fuzz target: decode arbitrary bytes as every protocol version; whatever decodes must
 * re-encode and decode again to the same packet type, ids, topic and payload. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

static void roundtrip(const struct mqtt_packet *p, uint8_t v)
{
    static uint8_t out[1 << 20];
    if (p->type == MQTT_PUBLISH && p->u.publish.topic.len == 0)
        return;
    size_t n = codec_encode(p, v, out, sizeof(out));
    if (!n || n > sizeof(out))
        return;
    struct mqtt_packet q;
    long r = codec_decode(out, n, v, 0, &q);
    if (r != (long)n || q.type != p->type)
        abort();
    if (p->type == MQTT_PUBLISH &&
        (q.u.publish.payload_len != p->u.publish.payload_len ||
         q.u.publish.topic.len != p->u.publish.topic.len || q.u.publish.id != p->u.publish.id ||
         memcmp(q.u.publish.payload, p->u.publish.payload, p->u.publish.payload_len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    static const uint32_t limits[] = {0, 16, 4096};
    for (size_t vi = 0; vi < 3; vi++) {
        for (size_t li = 0; li < 3; li++) {
            size_t off = 0;
            while (off < size) {
                struct mqtt_packet p;
                long r = codec_decode(data + off, size - off, versions[vi], limits[li], &p);
                if (r <= 0)
                    break;
                if ((size_t)r > size - off)
                    abort();
                uint8_t v = p.type == MQTT_CONNECT ? p.u.connect.version : versions[vi];
                if (p.type == MQTT_SUBSCRIBE || p.type == MQTT_UNSUBSCRIBE) {
                    struct mqtt_sub_iter it;
                    struct mqtt_bin f;
                    uint8_t o;
                    unsigned n = 0;
                    codec_sub_iter(&p.u.subscribe, p.type == MQTT_SUBSCRIBE, &it);
                    while (codec_sub_next(&it, &f, &o))
                        n++;
                    if (n != p.u.subscribe.count)
                        abort();
                }
                if (p.type == MQTT_PUBLISH) {
                    uint32_t uo = 0;
                    struct mqtt_bin k, val;
                    while (codec_user_prop_next(&p.u.publish.props, &uo, &k, &val))
                        ;
                }
                roundtrip(&p, v);
                off += (size_t)r;
            }
        }
    }
    return 0;
}
