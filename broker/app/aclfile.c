/* aclfile: loading and reloading the ACL file with its diagnostics in the log (see aclfile.h).
 * Reloads are all-or-nothing: a new ACL is read whole and stable and parsed completely before it
 * replaces the old one. */
#include "aclfile.h"

#include "fileread.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>

static void log_diag(enum log_level lvl, const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        log_msg(lvl, "acl: %s", d->msgs[i]);
}

/* Log the outcome of a parse; a is the result (NULL: errors). */
static void log_loaded(const struct acl *a, const char *path, struct diag *d, struct diag *warn)
{
    log_diag(LOGL_ERR, d);
    log_diag(LOGL_WARN, warn);
    if (a)
        log_notice("acl: loaded %s (%zu rules)", path, acl_rule_count(a));
    if (a && acl_rule_count(a) == 0)
        log_warn("acl: %s has no rules: every publish and subscribe is denied", path);
}

struct acl *aclfile_load(const char *path)
{
    struct diag d, warn;
    diag_init(&d);
    diag_init(&warn);
    struct acl *a = acl_load(path, &d, &warn);
    log_loaded(a, path, &d, &warn);
    diag_free(&d);
    diag_free(&warn);
    return a;
}

/* The stable read of a reload: ACLFILE_OK with *out set (NULL when the file has errors, which
 * are logged), or ACLFILE_AGAIN. */
static int reload_read(const char *path, struct acl **out)
{
    char *text;
    size_t n;
    *out = NULL;
    int r = fileread_stable(path, ACL_MAX_FILE, FILEREAD_SETTLE_MS, NULL, &text, &n);
    if (r == FILEREAD_UNSTABLE)
        return ACLFILE_AGAIN;
    if (r != FILEREAD_OK) {
        log_err("acl: %s: cannot load ACL file: %s", path, fileread_strerror(r, errno));
        return ACLFILE_OK;
    }
    struct diag d, warn;
    diag_init(&d);
    diag_init(&warn);
    *out = acl_parse(text, n, path, &d, &warn);
    free(text);
    log_loaded(*out, path, &d, &warn);
    diag_free(&d);
    diag_free(&warn);
    return ACLFILE_OK;
}

int aclfile_reload(struct broker *b, const char *path, size_t *rules)
{
    struct acl *a;
    if (reload_read(path, &a) == ACLFILE_AGAIN) {
        log_notice("acl: %s is still being written; keeping the %zu rules in force, retrying", path,
                   *rules);
        return ACLFILE_AGAIN;
    }
    if (!a) {
        log_err("acl: reload of %s failed, keeping the previous rules", path);
        return ACLFILE_FAILED;
    }
    size_t now = acl_rule_count(a);
    if (now > 0 && now < *rules / 2 && *rules - now >= ACLFILE_SHRINK_MIN)
        log_warn("acl: %s went from %zu rules to %zu; applied (if the file was cut short, "
                 "restore it: write a temporary file and rename it over %s)",
                 path, *rules, now, path);
    else if (now == 0 && *rules > 0)
        log_warn("acl: %s went from %zu rules to none; applied", path, *rules);
    *rules = now;
    broker_set_acl(b, a);
    return ACLFILE_OK;
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
