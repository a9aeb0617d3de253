/* pki_script: the unit tests that need certificates make them with openssl, from a shell script
 * run in a fresh temporary directory. Header-only, for the unit tests. */
#ifndef CERTMQ_TEST_PKI_SCRIPT_H
#define CERTMQ_TEST_PKI_SCRIPT_H

#include <stdio.h>
#include <stdlib.h>

/* dir: a mkdtemp template, filled in. 0, or -1 (the script's output is printed). */
static inline int pki_script_run(char *dir, const char *script)
{
    if (!mkdtemp(dir))
        return -1;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s/gen.sh", dir);
    FILE *f = fopen(cmd, "w");
    if (!f || fputs(script, f) < 0 || fclose(f) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "cd '%s' && sh gen.sh >gen.log 2>&1 || { cat gen.log; exit 1; }",
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "PKI generation failed\n");
        return -1;
    }
    return 0;
}

/* dir/name in one of 16 rotating buffers, so a call can take several paths at once. */
static inline const char *pki_path(const char *dir, const char *name)
{
    static char buf[16][512];
    static int i;
    char *p = buf[i++ % 16];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

#endif
