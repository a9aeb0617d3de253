/* aclfile: loading and reloading the ACL file with its diagnostics in the log (see aclfile.h).
 * Reloads are all-or-nothing: a new ACL is parsed completely before it replaces the old one. */
#include "aclfile.h"

#include "log.h"

static void log_diag(enum log_level lvl, const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        log_msg(lvl, "acl: %s", d->msgs[i]);
}

struct acl *aclfile_load(const char *path)
{
    struct diag d, warn;
    diag_init(&d);
    diag_init(&warn);
    struct acl *a = acl_load(path, &d, &warn);
    log_diag(LOGL_ERR, &d);
    log_diag(LOGL_WARN, &warn);
    if (a)
        log_notice("acl: loaded %s (%zu rules)", path, acl_rule_count(a));
    diag_free(&d);
    diag_free(&warn);
    return a;
}

void aclfile_reload(struct broker *b, const char *path)
{
    struct acl *a = aclfile_load(path);
    if (!a) {
        log_err("acl: reload of %s failed, keeping the previous rules", path);
        return;
    }
    broker_set_acl(b, a);
}

size_t aclfile_check(const char *path, struct diag *d)
{
    struct diag warn;
    diag_init(&warn);
    acl_free(acl_load(path, d, &warn));
    for (size_t i = 0; i < warn.count; i++)
        diag_add(d, NULL, 0, "warning: %s", warn.msgs[i]);
    size_t warnings = warn.count;
    diag_free(&warn);
    return warnings;
}
