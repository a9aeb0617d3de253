/* pidfile: see pidfile.h. */
#include "pidfile.h"

#include "log.h"

#include <stdio.h>
#include <unistd.h>

void pidfile_write(const char *path)
{
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (!f) {
        log_warn("cannot write pid_file %s", path);
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

void pidfile_remove(const char *path)
{
    if (path)
        unlink(path);
}
