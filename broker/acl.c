/* acl: mosquitto-syntax ACL files, compiled per client.
 *
 * The parsed file keeps each user's rules in a hash and the patterns in a list. acl_compile()
 * copies one client's rules (its user block plus the patterns with %u/%c substituted) into a
 * flat array, so a check scans only that client's rules. Deny rules are kept first so they
 * decide before any allow rule. Pure apart from acl_load() reading the file. */
#include "acl.h"

#include "topic.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define ACL_MAX_FILE (16u << 20)
#define ACL_MAX_LINE 70000

enum { A_READ = 1, A_WRITE = 2, A_DENY = 4 };

struct rule {
    char *topic;
    size_t len;
    uint8_t access;
    bool uses_c; /* pattern refers to %c */
};

struct rules {
    struct rule *v;
    size_t n, cap;
};

struct user {
    char *name;
    struct rules rules;
    UT_hash_handle hh;
};

struct acl {
    struct user *users;
    struct rules patterns;
    size_t total;
};

struct acl_client {
    struct rule *v; /* deny rules first */
    size_t n;
};

static void rules_add(struct rules *r, char *topic, uint8_t access, bool uses_c)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = (struct rule){topic, strlen(topic), access, uses_c};
}

static void rules_free(struct rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].topic);
    free(r->v);
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    struct user *u, *tmp;
    HASH_ITER(hh, a->users, u, tmp)
    {
        HASH_DEL(a->users, u);
        rules_free(&u->rules);
        free(u->name);
        free(u);
    }
    rules_free(&a->patterns);
    free(a);
}

size_t acl_rule_count(const struct acl *a)
{
    return a->total;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Checks %u/%c use in a pattern: each must be a whole level. Returns NULL or the problem. */
static const char *check_subst(const char *t, bool is_pattern, bool *uses_c)
{
    size_t len = strlen(t);
    *uses_c = false;
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '%')
            continue;
        if (!is_pattern)
            continue; /* a literal % in a topic rule is just a character */
        char k = i + 1 < len ? t[i + 1] : '\0';
        if (k != 'u' && k != 'c')
            return "'%' in a pattern must be %u (certificate identity) or %c (client id)";
        bool start = i == 0 || t[i - 1] == '/';
        bool end = i + 2 == len || t[i + 2] == '/';
        if (!start || !end)
            return "%u and %c must be a whole topic level (e.g. devices/%u/#)";
        if (k == 'c')
            *uses_c = true;
        i++;
    }
    return NULL;
}

static int parse_line(struct acl *a, struct user **cur, char *line, const char *fname, int lineno,
                      struct diag *d, struct diag *warn)
{
    char *s = trim(line);
    if (!*s || *s == '#')
        return 0;
    char *sp = s;
    while (*sp && *sp != ' ' && *sp != '\t')
        sp++;
    char *rest = *sp ? trim(sp + 1) : sp;
    *sp = '\0';
    if (!strcmp(s, "user")) {
        if (!*rest) {
            diag_add(d, fname, lineno, "'user' needs a name");
            return -1;
        }
        struct user *u;
        HASH_FIND_STR(a->users, rest, u);
        if (!u) {
            u = xcalloc(1, sizeof(*u));
            u->name = xstrdup(rest);
            HASH_ADD_KEYPTR(hh, a->users, u->name, strlen(u->name), u);
        }
        *cur = u;
        return 0;
    }
    bool is_pattern = !strcmp(s, "pattern");
    if (!is_pattern && strcmp(s, "topic") != 0) {
        diag_add(d, fname, lineno, "unknown keyword '%s' (expected user, topic or pattern)", s);
        return -1;
    }
    uint8_t access = A_READ | A_WRITE;
    char *topic = rest;
    char *sp2 = rest;
    while (*sp2 && *sp2 != ' ' && *sp2 != '\t')
        sp2++;
    if (*sp2) {
        char save = *sp2;
        *sp2 = '\0';
        const char *w = rest;
        int acc = !strcmp(w, "read")        ? A_READ
                  : !strcmp(w, "write")     ? A_WRITE
                  : !strcmp(w, "readwrite") ? A_READ | A_WRITE
                  : !strcmp(w, "deny")      ? A_DENY
                                            : -1;
        if (acc < 0) {
            diag_add(d, fname, lineno,
                     "bad access '%s' (expected read, write, readwrite or deny before the topic)",
                     w);
            return -1;
        }
        access = (uint8_t)acc;
        topic = trim(sp2 + 1);
        (void)save;
    } else if (!strcmp(rest, "read") || !strcmp(rest, "write") || !strcmp(rest, "readwrite") ||
               !strcmp(rest, "deny")) {
        diag_add(d, fname, lineno, "'%s %s' has no topic", s, rest);
        return -1;
    }
    if (!*topic) {
        diag_add(d, fname, lineno, "'%s' needs a topic", s);
        return -1;
    }
    if (!topic_filter_valid(topic, strlen(topic))) {
        diag_add(d, fname, lineno, "invalid topic filter '%s'", topic);
        return -1;
    }
    bool uses_c;
    const char *bad = check_subst(topic, is_pattern, &uses_c);
    if (bad) {
        diag_add(d, fname, lineno, "%s", bad);
        return -1;
    }
    if (is_pattern) {
        rules_add(&a->patterns, xstrdup(topic), access, uses_c);
    } else if (*cur) {
        rules_add(&(*cur)->rules, xstrdup(topic), access, false);
    } else {
        if (warn)
            diag_add(warn, fname, lineno,
                     "topic rule before any 'user' line applies to anonymous clients, which "
                     "certmq never has; use 'pattern' to apply it to every device");
        return 0;
    }
    a->total++;
    return 0;
}

struct acl *acl_parse(const char *text, size_t len, const char *fname, struct diag *d,
                      struct diag *warn)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    struct user *cur = NULL;
    int errors = 0, lineno = 0;
    size_t i = 0;
    char *line = xmalloc(ACL_MAX_LINE + 1);
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        lineno++;
        if (j - i > ACL_MAX_LINE) {
            diag_add(d, fname, lineno, "line longer than %u bytes", ACL_MAX_LINE);
            errors++;
        } else if (memchr(text + i, '\0', j - i)) {
            diag_add(d, fname, lineno, "line contains a NUL byte");
            errors++;
        } else {
            memcpy(line, text + i, j - i);
            line[j - i] = '\0';
            if (parse_line(a, &cur, line, fname, lineno, d, warn) != 0)
                errors++;
        }
        i = j + 1;
    }
    free(line);
    if (errors) {
        acl_free(a);
        return NULL;
    }
    return a;
}

struct acl *acl_load(const char *path, struct diag *d, struct diag *warn)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_add(d, path, 0, "cannot open ACL file: %s", strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(ACL_MAX_FILE + 1);
    size_t n = fread(buf, 1, ACL_MAX_FILE + 1, f);
    bool err = ferror(f);
    fclose(f);
    struct acl *a = NULL;
    if (err)
        diag_add(d, path, 0, "cannot read ACL file");
    else if (n > ACL_MAX_FILE)
        diag_add(d, path, 0, "ACL file larger than %u bytes", ACL_MAX_FILE);
    else
        a = acl_parse(buf, n, path, d, warn);
    free(buf);
    return a;
}

/* ---- per client ----------------------------------------------------------------------------- */

static char *substitute(const char *t, const char *identity, const char *client_id)
{
    size_t il = strlen(identity), cl = strlen(client_id), n = strlen(t);
    size_t cap = n + 1 + (il > cl ? il : cl) * (n / 2 + 1);
    char *out = xmalloc(cap), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '%' && i + 1 < n && (t[i + 1] == 'u' || t[i + 1] == 'c')) {
            const char *v = t[i + 1] == 'u' ? identity : client_id;
            size_t vl = strlen(v);
            memcpy(o, v, vl);
            o += vl;
            i++;
        } else {
            *o++ = t[i];
        }
    }
    *o = '\0';
    return out;
}

static void client_add(struct acl_client *c, size_t *cap, char *topic, uint8_t access)
{
    if (c->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        c->v = xrealloc(c->v, *cap * sizeof(*c->v));
    }
    c->v[c->n++] = (struct rule){topic, strlen(topic), access, false};
}

struct acl_client *acl_compile(const struct acl *a, const char *identity, const char *client_id)
{
    struct acl_client *c = xcalloc(1, sizeof(*c));
    size_t cap = 0;
    bool cid_ok = *client_id && !strpbrk(client_id, "+#/");
    struct user *u;
    HASH_FIND_STR(a->users, identity, u);
    /* Two passes: deny rules first, so evaluation can stop at the first decisive match. */
    for (int pass = 0; pass < 2; pass++) {
        bool want_deny = pass == 0;
        if (u)
            for (size_t i = 0; i < u->rules.n; i++)
                if (((u->rules.v[i].access & A_DENY) != 0) == want_deny)
                    client_add(c, &cap, xstrdup(u->rules.v[i].topic), u->rules.v[i].access);
        for (size_t i = 0; i < a->patterns.n; i++) {
            const struct rule *p = &a->patterns.v[i];
            if (((p->access & A_DENY) != 0) != want_deny || (p->uses_c && !cid_ok))
                continue;
            client_add(c, &cap, substitute(p->topic, identity, client_id), p->access);
        }
    }
    return c;
}

void acl_client_free(struct acl_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].topic);
    free(c->v);
    free(c);
}

bool acl_check(const struct acl_client *c, const char *topic, size_t len, enum acl_access access)
{
    if (!c)
        return false;
    for (size_t i = 0; i < c->n; i++) {
        const struct rule *r = &c->v[i];
        if (!topic_matches(r->topic, r->len, topic, len))
            continue;
        if (r->access & A_DENY)
            return false;
        if (r->access & access)
            return true;
    }
    return false;
}

bool acl_check_subscribe(const struct acl_client *c, const char *filter, size_t len)
{
    if (!c)
        return false;
    for (size_t i = 0; i < c->n; i++) {
        const struct rule *r = &c->v[i];
        if (r->access & A_DENY) {
            if (topic_filter_covers(r->topic, r->len, filter, len))
                return false;
            continue;
        }
        if ((r->access & A_READ) && topic_filters_intersect(r->topic, r->len, filter, len))
            return true;
    }
    return false;
}
