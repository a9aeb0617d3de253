/* aclfile: the ACL file as operators meet it: loaded with every error and warning logged,
 * reloaded all-or-nothing into the broker, or checked for --test-config. Parsing and evaluation
 * are the domain's acl module.
 *
 * Reloads read the file only when it is stable (fileread.h): a file still being rewritten in
 * place is not loaded (the rules in force stay) and the reload says AGAIN so the caller tries
 * once more later. A reload that empties the rules or loses most of them still applies (the
 * operator may mean it) but is logged as a warning naming both counts. */
#ifndef CERTMQ_ACLFILE_H
#define CERTMQ_ACLFILE_H

#include "acl.h"
#include "broker.h"
#include "diag.h"

#include <stddef.h>

/* A reload that drops the rule count to under half and by at least this many rules is warned
 * about. Removing a device or two removes a handful of rules, a normal edit; losing most of the
 * file at once is what a truncated or half-written file looks like. */
#define ACLFILE_SHRINK_MIN 8

enum aclfile_status {
    ACLFILE_OK = 0,
    ACLFILE_AGAIN = 1, /* the file is still being written: nothing changed, try later */
    ACLFILE_FAILED = -1,
};

/* Parse path at start-up; errors and warnings are logged ("acl: ..."). NULL when the file has
 * errors. An ACL without rules is warned about (everything is denied). */
struct acl *aclfile_load(const char *path);
/* Load path and give it to b. *rules holds the rule count in force (from aclfile_load's result
 * at start-up) and is updated. A file with errors leaves b's rules in force (logged). */
int aclfile_reload(struct broker *b, const char *path, size_t *rules);
/* For --test-config: errors go to d, warnings too as "warning: ...". Returns the number of
 * warnings added (they do not fail the check). */
size_t aclfile_check(const char *path, struct diag *d);

#endif
