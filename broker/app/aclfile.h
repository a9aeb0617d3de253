/* aclfile: the ACL file as operators meet it: loaded with every error and warning logged,
 * reloaded all-or-nothing into the broker, or checked for --test-config. Parsing and evaluation
 * are the domain's acl module. */
#ifndef CERTMQ_ACLFILE_H
#define CERTMQ_ACLFILE_H

#include "acl.h"
#include "broker.h"
#include "diag.h"

/* Parse path; errors and warnings are logged ("acl: ..."). NULL when the file has errors. */
struct acl *aclfile_load(const char *path);
/* Load path and give it to b; a file with errors leaves b's rules in force (logged). */
void aclfile_reload(struct broker *b, const char *path);
/* For --test-config: errors go to d, warnings too as "warning: ...". Returns the number of
 * warnings added (they do not fail the check). */
size_t aclfile_check(const char *path, struct diag *d);

#endif
