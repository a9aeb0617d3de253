/* sessrec fuzz target: the input is a session record or a heartbeat read back from JetStream.
 * What the decoder accepts is encoded again and must give the same bytes; nothing may read
 * out of bounds. */
#include "sessrec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sessrec r;
    if (sessrec_decode(data, size, &r) == 0) {
        uint8_t *out = malloc(size);
        if (sessrec_encode(&r, out, size) != size || memcmp(out, data, size) != 0)
            abort();
        free(out);
    }
    int64_t s, c;
    if (sessrec_beat_decode(data, size, &s, &c) == 0) {
        uint8_t b[SESSREC_BEAT_LEN];
        sessrec_beat_encode(s, c, b);
        if (memcmp(b, data, sizeof(b)) != 0)
            abort();
    }
    return 0;
}
