/* diag: collects "file:line: reason" problems found while loading operator files.
 *
 * Loaders (config, ACL, certificates, CRLs) report every problem they find instead of stopping
 * at the first, so `certmq --test-config` can list them all and a failed reload can log exactly
 * what is wrong. */
#ifndef CERTMQ_DIAG_H
#define CERTMQ_DIAG_H

#include <stddef.h>

struct diag {
    char **msgs;
    size_t count;
};

void diag_init(struct diag *d);
void diag_free(struct diag *d);
/* line <= 0 means the problem is about the whole file. file may be NULL. */
void diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
