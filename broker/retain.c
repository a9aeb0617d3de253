/* retain: retained messages in a level tree, so a subscription filter visits only the branches
 * it can match (`#` takes a whole subtree, `+` one level). One msg reference per stored
 * message; empty branches are pruned when a topic is cleared. */
#include "retain.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct rnode {
    char *level;
    size_t level_len;
    struct rnode *parent;
    struct rnode *children;
    struct msg *msg;
    UT_hash_handle hh;
};

struct retain {
    struct rnode root;
    size_t count;
};

struct retain *retain_new(void)
{
    return xcalloc(1, sizeof(struct retain));
}

static void free_below(struct rnode *n)
{
    struct rnode *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp)
    {
        HASH_DEL(n->children, c);
        free_below(c);
        free(c->level);
        free(c);
    }
    msg_unref(n->msg);
    n->msg = NULL;
}

void retain_free(struct retain *r)
{
    if (!r)
        return;
    free_below(&r->root);
    free(r);
}

static struct rnode *find(struct retain *r, const char *t, size_t len, bool create)
{
    struct rnode *n = &r->root;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && t[j] != '/')
            j++;
        struct rnode *c;
        HASH_FIND(hh, n->children, t + i, j - i, c);
        if (!c) {
            if (!create)
                return NULL;
            c = xcalloc(1, sizeof(*c));
            c->level = xstrndup(t + i, j - i);
            c->level_len = j - i;
            c->parent = n;
            HASH_ADD_KEYPTR(hh, n->children, c->level, c->level_len, c);
        }
        n = c;
        if (j >= len)
            return n;
        i = j + 1;
    }
}

void retain_set(struct retain *r, struct msg *m)
{
    if (m->payload_len == 0) {
        struct rnode *n = find(r, m->topic, m->topic_len, false);
        if (!n || !n->msg)
            return;
        msg_unref(n->msg);
        n->msg = NULL;
        r->count--;
        while (n->parent && !n->msg && !n->children) {
            struct rnode *p = n->parent;
            HASH_DEL(p->children, n);
            free(n->level);
            free(n);
            n = p;
        }
        return;
    }
    struct rnode *n = find(r, m->topic, m->topic_len, true);
    if (n->msg)
        msg_unref(n->msg);
    else
        r->count++;
    n->msg = msg_ref(m);
}

struct walk {
    void (*cb)(void *ctx, struct msg *m);
    void *ctx;
};

static void all_below(struct rnode *n, const struct walk *w, bool skip_dollar)
{
    if (n->msg)
        w->cb(w->ctx, n->msg);
    struct rnode *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp)
    {
        if (skip_dollar && c->level_len && c->level[0] == '$')
            continue;
        all_below(c, w, false);
    }
}

static void match(struct rnode *n, const char *f, size_t flen, size_t pos, bool root,
                  const struct walk *w)
{
    size_t j = pos;
    while (j < flen && f[j] != '/')
        j++;
    const char *l = f + pos;
    size_t ll = j - pos;
    bool last = j >= flen;
    if (ll == 1 && l[0] == '#') {
        /* Matches the parent level too ("a/#" matches "a"), but never `$` topics at the root. */
        if (!root && n->msg)
            w->cb(w->ctx, n->msg);
        struct rnode *c, *tmp;
        HASH_ITER(hh, n->children, c, tmp)
        {
            if (root && c->level_len && c->level[0] == '$')
                continue;
            all_below(c, w, false);
        }
        return;
    }
    if (ll == 1 && l[0] == '+') {
        struct rnode *c, *tmp;
        HASH_ITER(hh, n->children, c, tmp)
        {
            if (root && c->level_len && c->level[0] == '$')
                continue;
            if (last) {
                if (c->msg)
                    w->cb(w->ctx, c->msg);
            } else {
                match(c, f, flen, j + 1, false, w);
            }
        }
        return;
    }
    struct rnode *c;
    HASH_FIND(hh, n->children, l, ll, c);
    if (!c)
        return;
    if (last) {
        if (c->msg)
            w->cb(w->ctx, c->msg);
        return;
    }
    match(c, f, flen, j + 1, false, w);
}

void retain_match(const struct retain *r, const char *filter, size_t flen,
                  void (*cb)(void *ctx, struct msg *m), void *ctx)
{
    struct walk w = {cb, ctx};
    if (flen)
        match((struct rnode *)&r->root, filter, flen, 0, true, &w);
}

void retain_foreach(const struct retain *r, void (*cb)(void *ctx, struct msg *m), void *ctx)
{
    struct walk w = {cb, ctx};
    all_below((struct rnode *)&r->root, &w, false);
}

size_t retain_count(const struct retain *r)
{
    return r->count;
}
