/* config fuzz target: parse arbitrary text (include_dir is refused outside config_load). */
#include <stdint.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    struct diag d;
    diag_init(&d);
    if (config_parse((const char *)data, size, "fuzz.conf", &c, &d) == 0)
        config_free(&c);
    diag_free(&d);
    return 0;
}
