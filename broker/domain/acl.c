/* acl: mosquitto-syntax ACL files, compiled per client, evaluated without allocating.
 *
 * The parsed file keeps each user's rules in a hash keyed by the user name (= certificate
 * identity) and the patterns in one list. acl_compile() turns one client's rules (its user
 * block plus the patterns with %u/%c substituted) into a single allocation: deny rules first,
 * then wildcard grants, then exact-topic grants reachable through a small open-addressing hash,
 * so a check costs the deny rules + wildcard grants + one hash probe, never the whole file.
 * This module never knows sessions, sockets or the clock; only acl_load() touches a file. */
#include "acl.h"

#include "codec.h"
#include "fileread.h"
#include "topic.h"
#include "utf8.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

#define ACL_MAX_LINE (65535u + 1024u) /* a topic filter of MQTT's maximum length plus keywords */
#define ACL_TOPIC_MAX 65535u          /* MQTT's limit: longer substituted rules can match nothing */
#define ACL_SHOW 80                   /* bytes of a topic quoted in a diagnostic */

enum { A_READ = ACL_READ, A_WRITE = ACL_WRITE, A_DENY = 4 };

/* One rule as written in the file. For patterns, nu/nc count the %u/%c levels. */
struct rule {
    char *topic;
    uint32_t len, nu, nc;
    uint8_t access;
    bool wild; /* contains a + or # level */
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

/* A compiled rule; its topic is arena[off, off + len). */
struct crule {
    uint32_t off, len;
    uint8_t access;
    bool wild;
};

/* rules[0, ndeny) deny; [ndeny, nwild) wildcard grants; [nwild, n) exact grants, indexed by
 * slots[hash & hmask] = index + 1 (0 = empty). Everything lives in this one allocation. */
struct acl_client {
    uint32_t n, ndeny, nwild, hmask;
    uint32_t *slots;
    char *arena;
    struct crule rules[];
};

/* ---- parsed file ---------------------------------------------------------------------------- */

static void acl__rules_add(struct rules *r, const struct rule *x)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = *x;
}

static void acl__rules_free(struct rules *r)
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
        acl__rules_free(&u->rules);
        free(u->name);
        free(u);
    }
    acl__rules_free(&a->patterns);
    free(a);
}

size_t acl_rule_count(const struct acl *a)
{
    return a ? a->total : 0;
}

/* ---- parsing -------------------------------------------------------------------------------- */

static bool acl__blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static char *acl__trim(char *s)
{
    while (acl__blank(*s))
        s++;
    size_t n = strlen(s);
    while (n && acl__blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Splits off the first word of s (NUL-terminating it); returns the trimmed rest. */
static char *acl__word(char *s)
{
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (!*s)
        return s;
    *s = '\0';
    return acl__trim(s + 1);
}

static int acl__access(const char *w)
{
    static const struct {
        const char *word;
        int access;
    } words[] = {
        {"read", A_READ}, {"write", A_WRITE}, {"readwrite", A_READ | A_WRITE}, {"deny", A_DENY}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (!strcmp(w, words[i].word))
            return words[i].access;
    return -1;
}

/* Finds %u/%c in t. A '%' followed by a letter must be %u or %c occupying a whole level;
 * a '%' followed by anything else is a literal character, as in mosquitto. Returns NULL or the
 * problem; counts the %u and %c levels in *nu and *nc. */
static const char *acl__scan_subst(const char *t, size_t len, uint32_t *nu, uint32_t *nc)
{
    *nu = *nc = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        char k = t[i + 1];
        if (t[i] != '%' || !((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z')))
            continue;
        if (k != 'u' && k != 'c')
            return "unknown substitution (only %u = certificate identity and %c = client id)";
        if ((i > 0 && t[i - 1] != '/') || (i + 2 < len && t[i + 2] != '/'))
            return "%u and %c must be a whole topic level (e.g. devices/%u/#)";
        if (k == 'u')
            (*nu)++;
        else
            (*nc)++;
        i++;
    }
    return NULL;
}

/* `topic` and `pattern` lines. Returns 0 or -1 after reporting the problem. */
static int acl__parse_rule(struct acl *a, struct user *cur, bool is_pattern, char *rest,
                           const char *fname, int lineno, struct diag *d, struct diag *warn)
{
    const char *kw = is_pattern ? "pattern" : "topic";
    if (!*rest) {
        diag_add(d, fname, lineno, "'%s' needs a topic", kw);
        return -1;
    }
    int access = A_READ | A_WRITE;
    char *topic = rest;
    char *after = acl__word(rest);
    if (*after) {
        /* As in mosquitto, a line with two or more words names the access first; the topic is
         * the rest of the line, so a topic with spaces needs an explicit access word. */
        access = acl__access(rest);
        if (access < 0) {
            diag_add(d, fname, lineno,
                     "bad access '%.*s' (expected read, write, readwrite or deny before the "
                     "topic; a topic with spaces needs one)",
                     ACL_SHOW, rest);
            return -1;
        }
        topic = after;
    } else if (acl__access(rest) >= 0) {
        /* mosquitto would take "topic read" as the topic "read": almost surely a mistake. */
        diag_add(d, fname, lineno, "'%s %s' has no topic", kw, rest);
        return -1;
    }
    size_t len = strlen(topic);
    if (!topic_filter_valid(topic, len) || len > ACL_TOPIC_MAX) {
        diag_add(d, fname, lineno, "invalid topic filter '%.*s'", ACL_SHOW, topic);
        return -1;
    }
    if (!utf8_valid((const uint8_t *)topic, len, false)) {
        diag_add(d, fname, lineno, "topic filter is not valid UTF-8");
        return -1;
    }
    struct rule r = {
        .len = (uint32_t)len, .access = (uint8_t)access, .wild = strpbrk(topic, "+#") != NULL};
    const char *bad = acl__scan_subst(topic, len, &r.nu, &r.nc);
    if (is_pattern && bad) {
        diag_add(d, fname, lineno, "%s", bad);
        return -1;
    }
    if (!is_pattern) {
        if (!bad && (r.nu || r.nc) && warn)
            diag_add(warn, fname, lineno,
                     "'topic' rules are not substituted: %%u/%%c here is literal text (did you "
                     "mean 'pattern'?)");
        r.nu = r.nc = 0;
        if (!cur) {
            if (warn)
                diag_add(warn, fname, lineno,
                         "topic rule before any 'user' line applies to anonymous clients, which "
                         "certmq never has, so it applies to no device; use 'pattern' to apply "
                         "it to every device");
            return 0;
        }
    }
    r.topic = xstrdup(topic);
    acl__rules_add(is_pattern ? &a->patterns : &cur->rules, &r);
    a->total++;
    return 0;
}

static int acl__parse_line(struct acl *a, struct user **cur, char *line, const char *fname,
                           int lineno, struct diag *d, struct diag *warn)
{
    char *kw = acl__trim(line);
    if (!*kw || *kw == '#')
        return 0;
    char *rest = acl__word(kw);
    if (!strcmp(kw, "topic") || !strcmp(kw, "pattern"))
        return acl__parse_rule(a, *cur, kw[0] == 'p', rest, fname, lineno, d, warn);
    if (strcmp(kw, "user") != 0) {
        diag_add(d, fname, lineno, "unknown keyword '%.*s' (expected user, topic or pattern)",
                 ACL_SHOW, kw);
        return -1;
    }
    if (!*rest) {
        diag_add(d, fname, lineno, "'user' needs a name");
        return -1;
    }
    if (!utf8_valid((const uint8_t *)rest, strlen(rest), false)) {
        diag_add(d, fname, lineno, "user name is not valid UTF-8");
        return -1;
    }
    if (strpbrk(rest, "+#/") && warn)
        diag_add(warn, fname, lineno,
                 "user '%.*s' contains '+', '#' or '/': certificates with such an identity are "
                 "refused, so these rules apply to no device",
                 ACL_SHOW, rest);
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

struct acl *acl_parse(const char *text, size_t len, const char *fname, struct diag *d,
                      struct diag *warn)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    struct user *cur = NULL;
    int errors = 0, lineno = 0;
    /* One mutable copy; each line is cut in place. */
    char *buf = xmalloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len;) {
        char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        lineno++;
        if (end - i > ACL_MAX_LINE) {
            diag_add(d, fname, lineno, "line longer than %u bytes", ACL_MAX_LINE);
            errors++;
        } else if (memchr(buf + i, '\0', end - i)) {
            diag_add(d, fname, lineno, "line contains a NUL byte");
            errors++;
        } else {
            buf[end] = '\0';
            if (acl__parse_line(a, &cur, buf + i, fname, lineno, d, warn) != 0)
                errors++;
        }
        i = end + 1;
    }
    free(buf);
    if (errors) {
        acl_free(a);
        return NULL;
    }
    return a;
}

struct acl *acl_load(const char *path, struct diag *d, struct diag *warn)
{
    char *buf;
    size_t n;
    /* No settle time: this is the start-up and --test-config read, with no rules to keep. */
    int r = fileread_stable(path, ACL_MAX_FILE, 0, NULL, &buf, &n);
    if (r == FILEREAD_ERR)
        diag_add(d, path, 0, "cannot open ACL file: %s", strerror(errno));
    else if (r == FILEREAD_NOT_REGULAR)
        diag_add(d, path, 0, "ACL file is not a regular file");
    else if (r == FILEREAD_TOO_BIG)
        diag_add(d, path, 0, "ACL file has more than the %u bytes allowed", ACL_MAX_FILE);
    else if (r == FILEREAD_UNSTABLE)
        diag_add(d, path, 0, "ACL file kept changing while it was read");
    if (r != FILEREAD_OK)
        return NULL;
    struct acl *a = acl_parse(buf, n, path, d, warn);
    free(buf);
    return a;
}

/* ---- per client ----------------------------------------------------------------------------- */

static uint32_t acl__hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, no allocation, good enough spread */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Copies r's topic to out with %u/%c levels replaced (the parser guaranteed they are whole
 * levels and that every other '%' is literal). Returns the length written. */
static size_t acl__subst(char *out, const struct rule *r, const char *identity, size_t il,
                         const char *client_id, size_t cl)
{
    if (!r->nu && !r->nc) {
        memcpy(out, r->topic, r->len);
        return r->len;
    }
    size_t o = 0;
    for (size_t i = 0; i < r->len; i++) {
        char k = i + 1 < r->len ? r->topic[i + 1] : '\0';
        if (r->topic[i] == '%' && (k == 'u' || k == 'c')) {
            memcpy(out + o, k == 'u' ? identity : client_id, k == 'u' ? il : cl);
            o += k == 'u' ? il : cl;
            i++;
        } else {
            out[o++] = r->topic[i];
        }
    }
    return o;
}

/* A source rule chosen for this client and the length it will have once substituted. */
struct pick {
    const struct rule *r;
    size_t len;
};

static size_t acl__class(const struct rule *r)
{
    return (r->access & A_DENY) ? 0 : r->wild ? 1 : 2;
}

struct acl_client *acl_compile(const struct acl *a, const char *identity, const char *client_id)
{
    size_t il = strlen(identity), cl = strlen(client_id);
    /* A value with a wildcard or separator would widen a rule; an empty one would make a
     * different level count. Either way the rules using it match nothing for this client. */
    bool id_ok = il && !strpbrk(identity, "+#/");
    bool cid_ok = cl && !strpbrk(client_id, "+#/");
    struct user *u = NULL;
    HASH_FIND_STR(a->users, identity, u);
    size_t nsrc = (u ? u->rules.n : 0) + a->patterns.n, n = 0, bytes = 0, per[3] = {0};
    struct pick *picks = xmalloc((nsrc ? nsrc : 1) * sizeof(*picks));
    for (size_t i = 0; i < nsrc; i++) {
        const struct rule *r =
            u && i < u->rules.n ? &u->rules.v[i] : &a->patterns.v[i - (u ? u->rules.n : 0)];
        if ((r->nu && !id_ok) || (r->nc && !cid_ok))
            continue;
        size_t len = r->len - 2 * (size_t)(r->nu + r->nc) + r->nu * il + r->nc * cl;
        if (len > ACL_TOPIC_MAX)
            continue; /* no MQTT topic is that long */
        picks[n++] = (struct pick){r, len};
        bytes += len;
        per[acl__class(r)]++;
    }
    /* Offsets are 32-bit to keep rules small. Past 4 GiB for one client the file is a sizing
     * bug (xmalloc's contract); dropping rules instead could drop a deny. */
    if (bytes > UINT32_MAX)
        abort();
    size_t nslots = 0;
    while (per[2] && nslots < 2 * per[2])
        nslots = nslots ? nslots * 2 : 4;
    struct acl_client *c =
        xcalloc(1, sizeof(*c) + n * sizeof(struct crule) + nslots * sizeof(uint32_t) + bytes);
    c->n = (uint32_t)n;
    c->ndeny = (uint32_t)per[0];
    c->nwild = (uint32_t)(per[0] + per[1]);
    c->hmask = nslots ? (uint32_t)(nslots - 1) : 0;
    c->slots = (uint32_t *)(c->rules + n);
    c->arena = (char *)(c->slots + nslots);
    size_t next[3] = {0, per[0], per[0] + per[1]}, off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rule *r = picks[i].r;
        size_t k = acl__class(r), at = next[k]++;
        size_t len = acl__subst(c->arena + off, r, identity, il, client_id, cl);
        c->rules[at] = (struct crule){(uint32_t)off, (uint32_t)len, r->access, r->wild};
        if (k == 2) {
            uint32_t h = acl__hash(c->arena + off, len) & c->hmask;
            while (c->slots[h])
                h = (h + 1) & c->hmask;
            c->slots[h] = (uint32_t)at + 1;
        }
        off += len;
    }
    free(picks);
    return c;
}

void acl_client_free(struct acl_client *c)
{
    free(c);
}

size_t acl_client_rule_count(const struct acl_client *c)
{
    return c ? c->n : 0;
}

static bool acl__rule_matches(const struct acl_client *c, const struct crule *r, const char *t,
                              size_t len)
{
    const char *rt = c->arena + r->off;
    if (!r->wild)
        return r->len == len && memcmp(rt, t, len) == 0;
    return topic_matches(rt, r->len, t, len);
}

bool acl_check(const struct acl_client *c, const char *topic, size_t len, enum acl_access access)
{
    if (!c)
        return false;
    for (uint32_t i = 0; i < c->ndeny; i++)
        if (acl__rule_matches(c, &c->rules[i], topic, len))
            return false;
    if (c->nwild < c->n) {
        /* Probe until an empty slot: duplicates of one topic (e.g. read + write lines) sit in
         * the same chain, so every one of them is seen. */
        for (uint32_t h = acl__hash(topic, len) & c->hmask; c->slots[h]; h = (h + 1) & c->hmask) {
            const struct crule *r = &c->rules[c->slots[h] - 1];
            if ((r->access & access) && acl__rule_matches(c, r, topic, len))
                return true;
        }
    }
    for (uint32_t i = c->ndeny; i < c->nwild; i++) {
        const struct crule *r = &c->rules[i];
        if ((r->access & access) && acl__rule_matches(c, r, topic, len))
            return true;
    }
    return false;
}

bool acl_check_subscribe(const struct acl_client *c, const char *filter, size_t len)
{
    if (!c)
        return false;
    for (uint32_t i = 0; i < c->ndeny; i++) {
        const struct crule *r = &c->rules[i];
        if (topic_filter_covers(c->arena + r->off, r->len, filter, len))
            return false;
    }
    for (uint32_t i = c->ndeny; i < c->n; i++) {
        const struct crule *r = &c->rules[i];
        if ((r->access & A_READ) && topic_filters_intersect(c->arena + r->off, r->len, filter, len))
            return true;
    }
    return false;
}
