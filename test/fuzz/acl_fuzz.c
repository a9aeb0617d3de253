/* ACL fuzz target: parse arbitrary text; when it parses, compile it for a few identities and
 * evaluate some topics and filters. */
#include <stdint.h>
#include "acl.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    struct acl *a = acl_parse((const char *)data, size, "fuzz.acl", &d, &w);
    if (a) {
        static const char *ids[][2] = {{"dev-1", "c1"}, {"admin", ""}, {"x", "a/+"}};
        static const char *topics[] = {"devices/dev-1/t", "$SYS/x", "a", "a/b/c", "/"};
        for (size_t i = 0; i < 3; i++) {
            struct acl_client *c = acl_compile(a, ids[i][0], ids[i][1]);
            for (size_t t = 0; t < 5; t++) {
                acl_check(c, topics[t], strlen(topics[t]), ACL_READ);
                acl_check(c, topics[t], strlen(topics[t]), ACL_WRITE);
            }
            acl_check_subscribe(c, "#", 1);
            acl_check_subscribe(c, "a/+/c", 5);
            acl_client_free(c);
        }
        acl_free(a);
    }
    diag_free(&d);
    diag_free(&w);
    return 0;
}
