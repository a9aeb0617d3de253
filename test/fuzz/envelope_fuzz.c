/* envelope fuzz target: the input is an envelope (or a revocation) from another node. Whatever the
 * decoder accepts must become a message (msg_new) that encodes back to exactly the input, except
 * the user properties, which are compared as decoded pairs; nothing may read out of bounds. */
#include "envelope.h"
#include "msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The same bytes as a revocation: what decodes must encode back to exactly them. */
    struct envelope_revoke rv;
    if (envelope_revoke_decode(data, size, &rv) == 0) {
        char rnode[256];
        memcpy(rnode, rv.node.p, rv.node.len);
        rnode[rv.node.len] = '\0';
        uint8_t again[ENVELOPE_REVOKE_MAX];
        size_t rn = envelope_revoke_encode(&rv, rnode, again, sizeof(again));
        if (!memchr(rnode, 0, rv.node.len) && (rn != size || memcmp(again, data, size) != 0))
            abort();
    }
    struct envelope e;
    if (envelope_decode(data, size, &e) != 0)
        return 0;
    struct mqtt_publish pub;
    envelope_publish(&e, "t", 1, &pub);
    int64_t now = 1000;
    int64_t exp = e.has_expiry ? now + (int64_t)(e.expiry_ms & 0xffffffffffffu) + 1 : 0;
    struct msg *m = msg_new("t", 1, &pub, exp, 1);
    char node[256], ident[65536];
    memcpy(node, e.node.p, e.node.len);
    node[e.node.len] = '\0';
    memcpy(ident, e.identity.p, e.identity.len);
    ident[e.identity.len] = '\0';
    uint64_t id = e.has_id ? e.id : 0; /* id 0 is "none" on the way out */
    size_t need = envelope_size(m, node, ident, id);
    uint8_t *out = malloc(need);
    size_t n = envelope_encode(m, now, node, ident, id, out, need);
    /* Pairs only in, pairs only out: the re-encoding is byte-identical unless the expiry was
     * clamped above (or absent) or a NUL in node/identity was cut by the C strings. */
    struct envelope e2;
    if (!n || envelope_decode(out, n, &e2) != 0)
        abort();
    if (e2.payload_len != e.payload_len || memcmp(e2.payload, e.payload, e.payload_len) != 0 ||
        e2.user_props_len != e.user_props_len ||
        memcmp(e2.user_props, e.user_props, e.user_props_len) != 0 || e2.qos != e.qos ||
        e2.retain != e.retain || e2.id != id || e2.has_id != (id != 0) ||
        e2.has_payload_format != e.has_payload_format || e2.payload_format != e.payload_format ||
        e2.content_type.len != e.content_type.len ||
        e2.response_topic.len != e.response_topic.len ||
        e2.correlation_data.len != e.correlation_data.len)
        abort();
    free(out);
    msg_unref(m);
    return 0;
}
