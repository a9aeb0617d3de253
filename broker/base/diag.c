/* diag: a list of formatted problem reports. */
#include "diag.h"

#include "xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void diag_init(struct diag *d)
{
    d->msgs = NULL;
    d->count = 0;
}

void diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->msgs[i]);
    free(d->msgs);
    diag_init(d);
}

void diag_add(struct diag *d, const char *file, int line, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    char msg[1024];
    if (file && line > 0)
        snprintf(msg, sizeof(msg), "%s:%d: %s", file, line, reason);
    else if (file)
        snprintf(msg, sizeof(msg), "%s: %s", file, reason);
    else
        snprintf(msg, sizeof(msg), "%s", reason);
    d->msgs = xrealloc(d->msgs, (d->count + 1) * sizeof(*d->msgs));
    d->msgs[d->count++] = xstrdup(msg);
}
