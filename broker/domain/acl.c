/* acl: mosquitto-syntax ACL files, parsed (this file) and compiled per client (acl_client.c).
 *
 * The parsed file keeps each user's rules in a hash keyed by the user name (= certificate
 * identity), the patterns in one list and the `match` blocks (conditions on certificate
 * attributes, then rules) in another. acl_compile_cert() turns one client's rules (its user
 * block, the patterns and the blocks its certificate satisfies, with %u/%c/%{attr}
 * substituted) into a single allocation: deny rules first,
 * then wildcard grants, then exact-topic grants reachable through a small open-addressing hash,
 * so a check costs the deny rules + wildcard grants + one hash probe, never the whole file.
 * This module never knows sessions, sockets or the clock; only acl_load() touches a file. */
#include "acl_internal.h"

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
#include <ctype.h>

#define ACL_SHOW 80 /* bytes of a topic quoted in a diagnostic */

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

static void acl__block_free(struct block *b)
{
    for (size_t i = 0; i < b->ncond; i++)
        free(b->conds[i].value);
    free(b->conds);
    acl__rules_free(&b->rules);
    free(b);
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nblocks; i++)
        acl__block_free(a->blocks[i]);
    free(a->blocks);
    free(a->fname);
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

/* Where the parser is: the file position and the block rules go to. */
struct parser {
    struct acl *a;
    struct user *user; /* after `user NAME` */
    struct block *blk; /* after `match ...` (then user is NULL) */
    const char *fname;
    int line;
    struct diag *d, *warn;
};

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

/* `%{attr}` or `%{attr:N}` at t (after the '%'), len bytes available: the token's length
 * including the braces, the attribute and N (0: the whole value), or 0 with *why. */
static size_t acl__brace(const char *t, size_t len, int *attr, int *field, const char **why)
{
    const char *close = memchr(t, '}', len);
    const char *colon = close ? memchr(t, ':', (size_t)(close - t)) : NULL;
    *why = "unknown substitution %{...} (expected %{o}, %{ou}, %{cn}, %{serial}, %{san_uri}, "
           "%{san_dns}, %{issuer_cn} or %{policy}, optionally with :N for the Nth "
           "colon-separated field)";
    if (!close)
        return 0;
    *attr = certattr_from_name(t + 1, (size_t)((colon ? colon : close) - t - 1));
    if (*attr < 0)
        return 0;
    *field = 0;
    if (colon) {
        char num[8] = {0};
        size_t n = (size_t)(close - colon - 1);
        char *end;
        memcpy(num, colon + 1, n < sizeof(num) - 1 ? n : sizeof(num) - 1);
        long v = strtol(num, &end, 10);
        bool num_ok = n && n < sizeof(num) && (num[0] == '-' || (num[0] >= '0' && num[0] <= '9'));
        if (!num_ok || *end || v == 0 || v > ACL_FIELD_MAX || v < -ACL_FIELD_MAX) {
            *why = "bad field number in %{attr:N} (N = 1..64 counts fields from the start, "
                   "-1..-64 from the end)";
            return 0;
        }
        *field = (int)v;
    }
    return (size_t)(close - t) + 1;
}

long acl__token(const char *t, size_t len, size_t i, int *attr, int *field, const char **why)
{
    char k = i + 1 < len ? t[i + 1] : '\0';
    size_t tl = 0;
    *field = 0;
    if (k == 'u' || k == 'c') {
        tl = 2;
        *attr = -k;
    } else if (k == '{') {
        tl = acl__brace(t + i + 1, len - i - 1, attr, field, why);
        if (!tl)
            return -1;
        tl++;
    } else if ((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z')) {
        *why = "unknown substitution (only %u = certificate identity, %c = client id and "
               "%{attr} = certificate attribute)";
        return -1;
    } else {
        return 0;
    }
    if ((i > 0 && t[i - 1] != '/') || (i + tl < len && t[i + tl] != '/')) {
        *why = k == '{' ? "%{...} must be a whole topic level (e.g. fleet/%{ou}/#)"
                        : "%u and %c must be a whole topic level (e.g. devices/%u/#)";
        return -1;
    }
    return (long)tl;
}

/* Counts the substitution levels of t in *n. Returns NULL or the problem. */
static const char *acl__scan_subst(const char *t, size_t len, uint32_t *n)
{
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '%')
            continue;
        int attr, field;
        const char *why = NULL;
        long tl = acl__token(t, len, i, &attr, &field, &why);
        if (tl < 0)
            return why;
        if (tl > 0) {
            (*n)++;
            i += (size_t)tl - 1;
        }
    }
    return NULL;
}

/* The access word and topic of a `topic`/`pattern` line. Returns the topic or NULL after
 * reporting the problem. */
static char *acl__rule_words(struct parser *p, const char *kw, char *rest, int *access)
{
    if (!*rest) {
        diag_add(p->d, p->fname, p->line, "'%s' needs a topic", kw);
        return NULL;
    }
    *access = A_READ | A_WRITE;
    char *after = acl__word(rest);
    if (*after) {
        /* As in mosquitto, a line with two or more words names the access first; the topic is
         * the rest of the line, so a topic with spaces needs an explicit access word. */
        *access = acl__access(rest);
        if (*access < 0) {
            diag_add(p->d, p->fname, p->line,
                     "bad access '%.*s' (expected read, write, readwrite or deny before the "
                     "topic; a topic with spaces needs one)",
                     ACL_SHOW, rest);
            return NULL;
        }
        return after;
    }
    if (acl__access(rest) >= 0) {
        /* mosquitto would take "topic read" as the topic "read": almost surely a mistake. */
        diag_add(p->d, p->fname, p->line, "'%s %s' has no topic", kw, rest);
        return NULL;
    }
    return rest;
}

/* `topic` and `pattern` lines. Returns 0 or -1 after reporting the problem. */
static int acl__parse_rule(struct parser *p, bool is_pattern, char *rest)
{
    int access;
    char *topic = acl__rule_words(p, is_pattern ? "pattern" : "topic", rest, &access);
    if (!topic)
        return -1;
    size_t len = strlen(topic);
    if (!topic_filter_valid(topic, len) || len > ACL_TOPIC_MAX) {
        diag_add(p->d, p->fname, p->line, "invalid topic filter '%.*s'", ACL_SHOW, topic);
        return -1;
    }
    if (!utf8_valid((const uint8_t *)topic, len, false)) {
        diag_add(p->d, p->fname, p->line, "topic filter is not valid UTF-8");
        return -1;
    }
    struct rule r = {.len = (uint32_t)len,
                     .line = (uint32_t)p->line,
                     .access = (uint8_t)access,
                     .wild = strpbrk(topic, "+#") != NULL,
                     .pattern = is_pattern};
    const char *bad = acl__scan_subst(topic, len, &r.nsub);
    if (is_pattern && bad) {
        diag_add(p->d, p->fname, p->line, "%s", bad);
        return -1;
    }
    struct rules *to = p->blk ? &p->blk->rules : &p->a->patterns;
    if (!is_pattern) {
        if (!bad && r.nsub && p->warn)
            diag_add(p->warn, p->fname, p->line,
                     "'topic' rules are not substituted: %%u/%%c/%%{...} here is literal text "
                     "(did you mean 'pattern'?)");
        r.nsub = 0;
        if (!p->user && !p->blk) {
            if (p->warn)
                diag_add(p->warn, p->fname, p->line,
                         "topic rule before any 'user' line applies to anonymous clients, which "
                         "certmq never has, so it applies to no device; use 'pattern' to apply "
                         "it to every device (or put it in a 'match' block)");
            return 0;
        }
        if (p->user)
            to = &p->user->rules;
    }
    r.topic = xstrdup(topic);
    acl__rules_add(to, &r);
    if (p->blk)
        p->blk->body = true;
    p->a->total++;
    return 0;
}

static int acl__parse_user(struct parser *p, char *rest)
{
    if (!*rest) {
        diag_add(p->d, p->fname, p->line, "'user' needs a name");
        return -1;
    }
    if (!utf8_valid((const uint8_t *)rest, strlen(rest), false)) {
        diag_add(p->d, p->fname, p->line, "user name is not valid UTF-8");
        return -1;
    }
    if (strpbrk(rest, "+#/") && p->warn)
        diag_add(p->warn, p->fname, p->line,
                 "user '%.*s' contains '+', '#' or '/': certificates with such an identity are "
                 "refused, so these rules apply to no device",
                 ACL_SHOW, rest);
    struct user *u;
    HASH_FIND_STR(p->a->users, rest, u);
    if (!u) {
        u = xcalloc(1, sizeof(*u));
        u->name = xstrdup(rest);
        HASH_ADD_KEYPTR(hh, p->a->users, u->name, strlen(u->name), u);
    }
    p->user = u;
    p->blk = NULL;
    return 0;
}

/* A serial as the certificate's is kept (certattr.h): upper-case hex, even length, no leading
 * zero bytes; colons (as Mbed TLS prints serials) are dropped. False when v is not hex. */
static bool acl__serial_norm(char *v)
{
    size_t o = 0;
    for (size_t i = 0; v[i]; i++) {
        if (v[i] == ':')
            continue;
        if (!isxdigit((unsigned char)v[i]))
            return false;
        if (o || v[i] != '0')
            v[o++] = (char)toupper((unsigned char)v[i]);
    }
    v[o] = '\0';
    if (o == 0 || o % 2) { /* "A" is the byte 0A, "" the byte 00 */
        memmove(v + 1, v, o + 1);
        v[0] = '0';
        if (o == 0)
            strcpy(v, "00");
    }
    return true;
}

static bool acl__oid_ok(const char *v)
{
    bool digit = false;
    for (; *v; v++) {
        if (*v == '.' && !digit)
            return false;
        digit = *v != '.';
        if (digit && !isdigit((unsigned char)*v))
            return false;
    }
    return digit;
}

/* Warns when a value looks like several conditions written on one line. */
static void acl__match_warn(struct parser *p, const char *v)
{
    for (const char *s = strpbrk(v, " \t"); s && p->warn; s = strpbrk(s + 1, " \t")) {
        const char *name = s + 1, *eq = strchr(name, '=');
        if (eq && certattr_from_name(name, (size_t)(eq - name)) >= 0) {
            diag_add(p->warn, p->fname, p->line,
                     "the value '%.*s' contains '%.*s': one condition per 'match' line (write "
                     "consecutive 'match' lines when all must hold)",
                     ACL_SHOW, v, (int)(eq - name + 1), name);
            return;
        }
    }
}

/* The condition ATTR=VALUE of a `match` line, checked and normalised; -1 after reporting. */
static int acl__parse_cond(struct parser *p, char *rest, struct cond *c)
{
    char *eq = strchr(rest, '=');
    int attr = eq ? certattr_from_name(rest, (size_t)(eq - rest)) : -1;
    if (attr < 0) {
        diag_add(p->d, p->fname, p->line,
                 "'match' needs ATTR=VALUE with ATTR one of o, ou, cn, serial, san_uri, "
                 "san_dns, issuer_cn, policy (got '%.*s')",
                 ACL_SHOW, rest);
        return -1;
    }
    char *v = acl__trim(eq + 1);
    if (!*v) {
        diag_add(p->d, p->fname, p->line, "'match %s=' needs a value", certattr_name(attr));
        return -1;
    }
    if (!utf8_valid((const uint8_t *)v, strlen(v), false)) {
        diag_add(p->d, p->fname, p->line, "match value is not valid UTF-8");
        return -1;
    }
    char *val = xmalloc(strlen(v) + 3);
    strcpy(val, v);
    if ((attr == CERTATTR_SERIAL && !acl__serial_norm(val)) ||
        (attr == CERTATTR_POLICY && !acl__oid_ok(val))) {
        diag_add(p->d, p->fname, p->line, "bad %s '%.*s' (expected %s)", certattr_name(attr),
                 ACL_SHOW, v,
                 attr == CERTATTR_SERIAL ? "hexadecimal digits" : "a dotted OID like 1.3.6.1");
        free(val);
        return -1;
    }
    acl__match_warn(p, v);
    *c = (struct cond){(uint8_t)attr, (uint32_t)strlen(val), (uint32_t)p->line, val};
    return 0;
}

/* `match ATTR=VALUE`: a condition of the current block while it has no rules yet, else the
 * first condition of a new block. */
static int acl__parse_match(struct parser *p, char *rest)
{
    struct cond c;
    if (acl__parse_cond(p, rest, &c) != 0)
        return -1;
    struct acl *a = p->a;
    if (!p->blk || p->blk->body) {
        if (a->nblocks == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 4;
            a->blocks = xrealloc(a->blocks, a->cap * sizeof(*a->blocks));
        }
        p->blk = a->blocks[a->nblocks++] = xcalloc(1, sizeof(struct block));
        p->user = NULL;
    }
    struct block *b = p->blk;
    b->conds = xrealloc(b->conds, (b->ncond + 1) * sizeof(*b->conds));
    b->conds[b->ncond++] = c;
    return 0;
}

static const struct {
    const char *name;
    uint64_t max;
} limits[ACL_LIMIT_COUNT] = {
    [ACL_LIMIT_CONNECTIONS] = {"max_connections_per_identity", 10000000},
    [ACL_LIMIT_RATE] = {"max_publish_rate_per_identity", 10000000},
    /* Bytes per second: a terabyte is beyond any link, and keeps the bucket inside int64. */
    [ACL_LIMIT_BYTE_RATE] = {"max_publish_byte_rate_per_identity", 1000000000000},
    [ACL_LIMIT_SUBSCRIPTIONS] = {"max_subscriptions_per_identity", 10000000},
    [ACL_LIMIT_RETAINED] = {"max_retained_messages_per_identity", 100000000},
};

const char *acl_limit_name(enum acl_limit k)
{
    return (unsigned)k < ACL_LIMIT_COUNT ? limits[k].name : "?";
}

/* `limit NAME VALUE` in a match block: VALUE overrides certmq.conf's NAME for its devices. */
static int acl__parse_limit(struct parser *p, char *rest)
{
    if (!p->blk) {
        diag_add(p->d, p->fname, p->line,
                 "'limit' belongs in a 'match' block (for every device, set it in certmq.conf)");
        return -1;
    }
    char *value = acl__word(rest);
    int k = 0;
    while (k < ACL_LIMIT_COUNT && strcmp(rest, limits[k].name) != 0)
        k++;
    char *end = NULL;
    unsigned long long v = *value && isdigit((unsigned char)*value) ? strtoull(value, &end, 10) : 0;
    _Static_assert(ACL_LIMIT_COUNT == 5, "the message below names every limit");
    if (k == ACL_LIMIT_COUNT) {
        diag_add(p->d, p->fname, p->line, "unknown limit '%.*s' (expected %s, %s, %s, %s or %s)",
                 ACL_SHOW, rest, limits[0].name, limits[1].name, limits[2].name, limits[3].name,
                 limits[4].name);
        return -1;
    }
    if (!end || *end || v > limits[k].max) { /* an overflow is ULLONG_MAX */
        diag_add(p->d, p->fname, p->line, "'limit %s' needs a number from 0 (unlimited) to %llu",
                 limits[k].name, (unsigned long long)limits[k].max);
        return -1;
    }
    p->blk->limits[k].set = true;
    p->blk->limits[k].line = (uint32_t)p->line;
    p->blk->limits[k].v = v;
    p->blk->body = true;
    return 0;
}

bool acl_limit_used(const struct acl *a, enum acl_limit k)
{
    for (size_t i = 0; i < a->nblocks; i++)
        if (a->blocks[i]->limits[k].set)
            return true;
    return false;
}

bool acl_limit(const struct acl *a, const struct certattrs *attrs, enum acl_limit k, uint64_t *v)
{
    bool found = false;
    for (size_t i = 0; attrs && i < a->nblocks; i++) {
        const struct block *b = a->blocks[i];
        if (!b->limits[k].set || !acl__block_applies(b, attrs))
            continue;
        /* The most generous block wins: a device of two kinds gets the larger allowance. */
        if (!found || b->limits[k].v == 0 || (*v != 0 && b->limits[k].v > *v))
            *v = b->limits[k].v;
        found = true;
    }
    return found;
}

static int acl__parse_line(struct parser *p, char *line)
{
    char *kw = acl__trim(line);
    if (!*kw || *kw == '#')
        return 0;
    char *rest = acl__word(kw);
    if (!strcmp(kw, "topic") || !strcmp(kw, "pattern"))
        return acl__parse_rule(p, kw[0] == 'p', rest);
    if (!strcmp(kw, "user"))
        return acl__parse_user(p, rest);
    if (!strcmp(kw, "match"))
        return acl__parse_match(p, rest);
    if (!strcmp(kw, "limit"))
        return acl__parse_limit(p, rest);
    diag_add(p->d, p->fname, p->line,
             "unknown keyword '%.*s' (expected user, match, topic, pattern or limit)", ACL_SHOW,
             kw);
    return -1;
}

struct acl *acl_parse(const char *text, size_t len, const char *fname, struct diag *d,
                      struct diag *warn)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    a->fname = xstrdup(fname ? fname : "");
    struct parser p = {.a = a, .fname = fname, .d = d, .warn = warn};
    int errors = 0;
    /* One mutable copy; each line is cut in place. */
    char *buf = xmalloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len;) {
        char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        p.line++;
        if (end - i > ACL_MAX_LINE) {
            diag_add(d, fname, p.line, "line longer than %u bytes", ACL_MAX_LINE);
            errors++;
        } else if (memchr(buf + i, '\0', end - i)) {
            diag_add(d, fname, p.line, "line contains a NUL byte");
            errors++;
        } else {
            buf[end] = '\0';
            if (acl__parse_line(&p, buf + i) != 0)
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
