/* ident: per-identity usage, a uthash keyed by the identity string. */
#include "ident.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct entry {
    struct ident u; /* first: an ident pointer is its entry */
    bool resting;   /* holds nothing but running meters: in t->resting */
    UT_hash_handle hh;
    char name[];
};

struct ident_table {
    struct entry *all;
    size_t resting;
};

struct ident_table *ident_table_new(void)
{
    return xcalloc(1, sizeof(struct ident_table));
}

void ident_table_free(struct ident_table *t)
{
    if (!t)
        return;
    struct entry *e, *tmp;
    HASH_ITER(hh, t->all, e, tmp)
    {
        HASH_DEL(t->all, e);
        free(e);
    }
    free(t);
}

struct ident *ident_find(const struct ident_table *t, const char *name)
{
    struct entry *e;
    HASH_FIND_STR(t->all, name, e);
    return e ? &e->u : NULL;
}

struct ident *ident_get(struct ident_table *t, const char *name)
{
    struct ident *i = ident_find(t, name);
    if (i) {
        struct entry *e = (struct entry *)i;
        t->resting -= e->resting;
        e->resting = false;
        return i;
    }
    size_t len = strlen(name);
    struct entry *e = xcalloc(1, sizeof(*e) + len + 1);
    memcpy(e->name, name, len);
    HASH_ADD(hh, t->all, name[0], len, e);
    return &e->u;
}

static bool holds(const struct ident *i)
{
    return i->sessions || i->online || i->retained || i->retained_bytes;
}

void ident_put(struct ident_table *t, struct ident *i)
{
    if (!i || holds(i))
        return;
    struct entry *e = (struct entry *)i;
    if (i->meter.msgs.at || i->meter.bytes.at) {
        t->resting += !e->resting;
        e->resting = true;
        return;
    }
    HASH_DEL(t->all, e);
    free(e);
}

void ident_sweep(struct ident_table *t, bool (*rested)(void *ctx, const struct ident *i), void *ctx)
{
    if (!t->resting)
        return;
    struct entry *e, *tmp;
    HASH_ITER(hh, t->all, e, tmp)
    {
        if (e->resting && !holds(&e->u) && rested(ctx, &e->u)) {
            HASH_DEL(t->all, e);
            t->resting--;
            free(e);
        }
    }
}

size_t ident_count(const struct ident_table *t)
{
    return HASH_COUNT(t->all);
}
