/* jsreply fuzz target: the input is a JetStream reply or a delivery's reply subject from the
 * network. Neither parser may read out of bounds or recurse without bound; a reply accepted as
 * JSON is accepted again with surrounding whitespace (the walk is position-independent). */
#include "jsreply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsreply r, r2;
    uint64_t s, c;
    jsreply_ack_seqs((const char *)data, size, &s, &c);
    if (jsreply_parse((const char *)data, size, &r) != 0)
        return 0;
    char *padded = malloc(size + 2);
    padded[0] = ' ';
    memcpy(padded + 1, data, size);
    padded[size + 1] = '\n';
    if (jsreply_parse(padded, size + 2, &r2) != 0 || memcmp(&r, &r2, sizeof(r)) != 0)
        abort();
    free(padded);
    return 0;
}
