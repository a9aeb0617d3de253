/* certificate identity fuzz target: arbitrary DER through X.509 parsing and every identity
 * mode; any identity returned must pass the identity rules. */
#include <stdint.h>
#include "tls.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int mode = TLS_ID_CN; mode <= TLS_ID_SUBJECT; mode++) {
        char out[TLS_IDENTITY_MAX + 1];
        const char *why = NULL;
        if (tls_identity_from_der(data, size, (enum tls_identity_mode)mode, out, sizeof(out),
                                  &why) == 0) {
            if (!tls_identity_valid((const uint8_t *)out, strlen(out), &why))
                abort();
        } else if (!why) {
            abort();
        }
    }
    return 0;
}
