/* acl_client: one client's rules compiled from the parsed file (acl.c) and checked without
 * allocating: deny rules first, then wildcard grants, then exact-topic grants reachable through a
 * small open-addressing hash, all in one allocation. */
#include "acl_internal.h"

#include "topic.h"
#include "xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- per client ----------------------------------------------------------------------------- */

static uint32_t acl__hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, no allocation, good enough spread */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

void acl__who(struct acl_who *w, const char *identity, const char *client_id,
              const struct certattrs *attrs)
{
    w->identity = identity;
    w->client_id = client_id;
    w->il = strlen(identity);
    w->cl = strlen(client_id);
    /* A value with a wildcard or separator would widen a rule; an empty one would make a
     * different level count. Either way the rules using it match nothing for this client. */
    w->id_ok = w->il && !strpbrk(identity, "+#/");
    w->cid_ok = w->cl && !strpbrk(client_id, "+#/");
    w->attrs = attrs;
}

/* The value of one substitution token for this client, or false (with *why) when the rule
 * must match nothing. */
static bool acl__value(const struct acl_who *w, int attr, int field, const char **v, size_t *vl,
                       const char **why)
{
    if (attr == -'u' || attr == -'c') {
        bool u = attr == -'u';
        *v = u ? w->identity : w->client_id;
        *vl = u ? w->il : w->cl;
        *why = u ? "%u: the identity cannot be a topic level"
                 : "%c: the client id is empty or contains '+', '#' or '/'";
        return u ? w->id_ok : w->cid_ok;
    }
    size_t n = certattrs_count(w->attrs, attr);
    *why = n == 0  ? "the certificate has no such attribute"
           : n > 1 ? "the certificate has several values"
                   : "the value cannot be a topic level (empty, too long, control "
                     "characters, '+', '#' or '/')";
    if (!certattrs_single(w->attrs, attr, v, vl))
        return false;
    if (field && !certattr_field(*v, *vl, field, v, vl)) {
        *why = "the value has no such colon-separated field";
        return false;
    }
    return certattr_level_ok(*v, *vl);
}

long acl__expand(const struct rule *r, const struct acl_who *w, char *out, const char **why)
{
    const char *dummy;
    why = why ? why : &dummy;
    if (!r->nsub) { /* most rules: no scan (every session is recompiled on a reload) */
        if (out)
            memcpy(out, r->topic, r->len);
        return (long)r->len;
    }
    size_t o = 0;
    for (size_t i = 0; i < r->len; i++) {
        int attr, field;
        long tl = r->topic[i] == '%' ? acl__token(r->topic, r->len, i, &attr, &field, why) : 0;
        if (tl <= 0) { /* the parser refused bad tokens: < 0 cannot happen here */
            if (out)
                out[o] = r->topic[i];
            o++;
            continue;
        }
        const char *v;
        size_t vl;
        if (!acl__value(w, attr, field, &v, &vl, why))
            return -1;
        if (out)
            memcpy(out + o, v, vl);
        o += vl;
        i += (size_t)tl - 1;
    }
    if (o > ACL_TOPIC_MAX) {
        *why = "longer than any MQTT topic once substituted";
        return -1;
    }
    return (long)o;
}

bool acl__block_applies(const struct block *b, const struct certattrs *attrs)
{
    for (size_t i = 0; i < b->ncond; i++)
        if (!certattrs_has(attrs, b->conds[i].attr, b->conds[i].value, b->conds[i].len))
            return false;
    return true;
}

/* The rules chosen for one client and their lengths once substituted. */
struct picks {
    struct {
        const struct rule *r;
        size_t len;
    } * v;
    size_t n, cap, bytes, per[3];
};

static size_t acl__class(const struct rule *r)
{
    return (r->access & A_DENY) ? 0 : r->wild ? 1 : 2;
}

static void acl__pick(struct picks *ps, const struct rules *rs, const struct acl_who *w)
{
    for (size_t i = 0; i < rs->n; i++) {
        long len = acl__expand(&rs->v[i], w, NULL, NULL);
        if (len < 0)
            continue;
        if (ps->n == ps->cap) {
            ps->cap = ps->cap ? 2 * ps->cap : 16;
            ps->v = xrealloc(ps->v, ps->cap * sizeof(*ps->v));
        }
        ps->v[ps->n].r = &rs->v[i];
        ps->v[ps->n++].len = (size_t)len;
        ps->bytes += (size_t)len;
        ps->per[acl__class(&rs->v[i])]++;
    }
}

/* One allocation from the picks: deny rules, wildcard grants, exact grants and their hash. */
static struct acl_client *acl__build(const struct picks *ps, const struct acl_who *w)
{
    /* Offsets are 32-bit to keep rules small. Past 4 GiB for one client the file is a sizing
     * bug (xmalloc's contract); dropping rules instead could drop a deny. */
    if (ps->bytes > UINT32_MAX)
        abort();
    size_t nslots = 0, n = ps->n;
    while (ps->per[2] && nslots < 2 * ps->per[2])
        nslots = nslots ? nslots * 2 : 4;
    struct acl_client *c =
        xcalloc(1, sizeof(*c) + n * sizeof(struct crule) + nslots * sizeof(uint32_t) + ps->bytes);
    c->n = (uint32_t)n;
    c->ndeny = (uint32_t)ps->per[0];
    c->nwild = (uint32_t)(ps->per[0] + ps->per[1]);
    c->hmask = nslots ? (uint32_t)(nslots - 1) : 0;
    c->slots = (uint32_t *)(c->rules + n);
    c->arena = (char *)(c->slots + nslots);
    size_t next[3] = {0, ps->per[0], ps->per[0] + ps->per[1]}, off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rule *r = ps->v[i].r;
        size_t k = acl__class(r), at = next[k]++;
        size_t len = (size_t)acl__expand(r, w, c->arena + off, NULL);
        c->rules[at] = (struct crule){(uint32_t)off, (uint32_t)len, r->access, r->wild};
        if (k == 2) {
            uint32_t h = acl__hash(c->arena + off, len) & c->hmask;
            while (c->slots[h])
                h = (h + 1) & c->hmask;
            c->slots[h] = (uint32_t)at + 1;
        }
        off += len;
    }
    return c;
}

struct acl_client *acl_compile_cert(const struct acl *a, const char *identity,
                                    const char *client_id, const struct certattrs *attrs)
{
    struct acl_who w;
    acl__who(&w, identity, client_id, attrs);
    struct picks ps = {0};
    struct user *u = NULL;
    HASH_FIND_STR(a->users, identity, u);
    if (u)
        acl__pick(&ps, &u->rules, &w);
    acl__pick(&ps, &a->patterns, &w);
    /* Blocks are kinds of devices, a handful: checking each costs less than indexing them. */
    for (size_t i = 0; attrs && i < a->nblocks; i++)
        if (acl__block_applies(a->blocks[i], attrs))
            acl__pick(&ps, &a->blocks[i]->rules, &w);
    struct acl_client *c = acl__build(&ps, &w);
    free(ps.v);
    return c;
}

struct acl_client *acl_compile(const struct acl *a, const char *identity, const char *client_id)
{
    return acl_compile_cert(a, identity, client_id, NULL);
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
