/* config fuzz target: arbitrary text through config_parse. include_dir is refused there (only
 * config_load reads other files), so the fuzzer never touches the file system. Checks the
 * contract too: on failure the config is left zeroed, on success it is complete. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    struct diag d;
    diag_init(&d);
    if (config_parse((const char *)data, size, "fuzz.conf", &c, &d) == 0) {
        if (d.count || !c.listener_count || !c.acl_file)
            abort();
        for (size_t i = 0; i < c.listener_count; i++)
            if (!c.listeners[i].tls.certfile || !c.listeners[i].tls.keyfile)
                abort();
        config_free(&c);
    } else if (!d.count || c.listeners || c.files || c.acl_file || c.plugins) {
        abort();
    }
    diag_free(&d);
    return 0;
}
