/* explain: `certmq --explain -c FILE --cert device.crt [--client-id X] [--topic T]`, what the
 * configuration's ACL means for the device holding that certificate (see acl_explain). */
#ifndef CERTMQ_EXPLAIN_H
#define CERTMQ_EXPLAIN_H

#include "config.h"

#include <stdio.h>

/* Prints to out; problems (unreadable certificate or ACL) to err. 0, or 1 on such a problem. */
int explain_run(const struct config *cfg, const char *cert, const char *client_id,
                const char *topic, FILE *out, FILE *err);

#endif
