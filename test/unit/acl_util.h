/* Helpers for the tests that parse ACL text and build certificate attribute sets. */
#ifndef CERTMQ_TEST_ACL_UTIL_H
#define CERTMQ_TEST_ACL_UTIL_H

#include "acl.h"
#include "certattr.h"
#include "diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "ou=gateways;san_uri=urn:a:b" -> a set (values may not contain ';') */
static inline struct certattrs *attrs(const char *spec)
{
    struct certattrs *a = certattrs_new();
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        int k = certattr_from_name(kv, (size_t)(eq - kv));
        if (k < 0)
            abort();
        a = certattrs_add(a, k, eq + 1, strlen(eq + 1));
    }
    return a;
}

/* text as t.acl; any problem is printed (the caller expects none). */
static inline struct acl *parse(const char *text)
{
    struct diag d;
    diag_init(&d);
    struct acl *a = acl_parse(text, strlen(text), "t.acl", &d, NULL);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "unexpected: %s\n", d.msgs[i]);
    diag_free(&d);
    return a;
}

#endif
