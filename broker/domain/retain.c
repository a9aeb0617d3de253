/* retain: retained messages in a level tree, so a subscription filter visits only the branches
 * it can match (`#` takes a whole subtree, `+` one level, a literal one child). The store holds
 * one msg reference per stored message and prunes branches left empty when a topic is cleared.
 * Every walk is iterative through parent pointers and uthash's sibling links, so topic depth
 * costs neither stack nor heap. Knows nothing of sessions, subscriptions or the wire. */
#include "retain.h"

#include "topic.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct rnode {
    struct rnode *parent;   /* NULL for the root */
    struct rnode *children; /* uthash keyed by level */
    struct msg *msg;        /* one reference, or NULL */
    void *owner;            /* who set msg (the caller's tag), for quotas */
    UT_hash_handle hh;
    size_t level_len;
    char level[];
};

struct retain {
    struct rnode *root;
    size_t count;
    uint64_t bytes; /* retain_cost of every stored message */
};

uint64_t retain_cost(const struct msg *m)
{
    return (uint64_t)m->topic_len + m->payload_len;
}

typedef void (*retain_cb)(void *ctx, struct msg *m);

static struct rnode *retain__node_new(struct rnode *parent, const char *l, size_t ll)
{
    struct rnode *n = xcalloc(1, sizeof(*n) + ll + 1);
    n->parent = parent;
    n->level_len = ll;
    memcpy(n->level, l, ll);
    return n;
}

struct retain *retain_new(void)
{
    struct retain *r = xcalloc(1, sizeof(*r));
    r->root = retain__node_new(NULL, "", 0);
    return r;
}

/* Post-order without recursion: go down to a leaf, free it, resume at its parent. */
void retain_free(struct retain *r)
{
    if (!r)
        return;
    struct rnode *n = r->root;
    while (n) {
        if (n->children) {
            n = n->children;
            continue;
        }
        struct rnode *p = n->parent;
        if (p)
            HASH_DEL(p->children, n);
        msg_unref(n->msg);
        free(n);
        n = p;
    }
    free(r);
}

static struct rnode *retain__find(const struct retain *r, const char *t, size_t len, bool create)
{
    struct rnode *n = r->root;
    for (size_t pos = 0;;) {
        size_t end = topic_level_end(t, len, pos);
        struct rnode *c;
        HASH_FIND(hh, n->children, t + pos, end - pos, c);
        if (!c) {
            if (!create)
                return NULL;
            c = retain__node_new(n, t + pos, end - pos);
            HASH_ADD_KEYPTR(hh, n->children, c->level, c->level_len, c);
        }
        n = c;
        if (end == len)
            return n;
        pos = end + 1;
    }
}

bool retain_has(const struct retain *r, const char *topic, size_t len)
{
    const struct rnode *n = retain__find(r, topic, len, false);
    return n && n->msg;
}

bool retain_peek(const struct retain *r, const char *topic, size_t len, void **owner,
                 uint64_t *cost)
{
    const struct rnode *n = retain__find(r, topic, len, false);
    if (!n || !n->msg)
        return false;
    *owner = n->owner;
    *cost = retain_cost(n->msg);
    return true;
}

void retain_set(struct retain *r, struct msg *m, void *owner)
{
    if (m->payload_len == 0) {
        struct rnode *n = retain__find(r, m->topic, m->topic_len, false);
        if (!n || !n->msg)
            return;
        r->bytes -= retain_cost(n->msg);
        msg_unref(n->msg);
        n->msg = NULL;
        n->owner = NULL;
        r->count--;
        while (n->parent && !n->msg && !n->children) {
            struct rnode *p = n->parent;
            HASH_DEL(p->children, n);
            free(n);
            n = p;
        }
        return;
    }
    struct rnode *n = retain__find(r, m->topic, m->topic_len, true);
    msg_ref(m); /* before the unref: m may be the message already stored */
    if (n->msg) {
        r->bytes -= retain_cost(n->msg);
        msg_unref(n->msg);
    } else {
        r->count++;
    }
    n->msg = m;
    n->owner = owner;
    r->bytes += retain_cost(m);
}

uint64_t retain_bytes(const struct retain *r)
{
    return r->bytes;
}

static bool retain__dollar(const struct rnode *n)
{
    return !n->parent->parent && n->level_len && n->level[0] == '$';
}

/* The node after n in a pre-order walk of the subtree at top; NULL when done. */
static const struct rnode *retain__pre_next(const struct rnode *n, const struct rnode *top)
{
    if (n->children)
        return n->children;
    while (n != top && !n->hh.next)
        n = n->parent;
    return n == top ? NULL : n->hh.next;
}

/* Every message in the subtree at top, top included. */
static void retain__subtree(const struct rnode *top, retain_cb cb, void *ctx)
{
    for (const struct rnode *n = top; n; n = retain__pre_next(n, top))
        if (n->msg)
            cb(ctx, n->msg);
}

/* `#` below n: n itself ("a/#" matches "a", but the root is no topic) and all below, except
 * `$` topics when n is the root. */
static void retain__hash(const struct rnode *n, retain_cb cb, void *ctx)
{
    if (n->parent && n->msg)
        cb(ctx, n->msg);
    for (const struct rnode *c = n->children; c; c = c->hh.next)
        if (n->parent || !retain__dollar(c))
            retain__subtree(c, cb, ctx);
}

/* The next child of n to visit for filter level l after `prev` (NULL: the first). `+` takes
 * every child in hash order, skipping `$` levels at the root; a literal takes its one child. */
static const struct rnode *retain__next_child(const struct rnode *n, const char *l, size_t ll,
                                              const struct rnode *prev)
{
    if (ll == 1 && l[0] == '+') {
        const struct rnode *c = prev ? prev->hh.next : n->children;
        while (c && retain__dollar(c))
            c = c->hh.next;
        return c;
    }
    if (prev)
        return NULL;
    const struct rnode *c;
    HASH_FIND(hh, n->children, l, ll, c);
    return c;
}

/* Depth-first over the reachable branches, iteratively: the path is the parent chain and the
 * filter offset of a level is recovered by scanning back when climbing. `pos` is the start of
 * the filter level applied to n's children. Only non-final levels are descended into, so pos
 * always names a level. */
void retain_match(const struct retain *r, const char *filter, size_t flen, retain_cb cb, void *ctx)
{
    if (!flen)
        return;
    const struct rnode *n = r->root, *prev = NULL;
    size_t pos = 0;
    for (;;) {
        size_t end = topic_level_end(filter, flen, pos);
        const char *l = filter + pos;
        size_t ll = end - pos;
        const struct rnode *c = NULL;
        if (ll == 1 && l[0] == '#') {
            retain__hash(n, cb, ctx); /* `#` is last: nothing to descend into */
        } else {
            for (c = retain__next_child(n, l, ll, prev); c && end == flen;
                 c = retain__next_child(n, l, ll, c))
                if (c->msg)
                    cb(ctx, c->msg);
        }
        if (c) {
            n = c;
            pos = end + 1;
            prev = NULL;
            continue;
        }
        if (!n->parent)
            return;
        pos = topic_level_prev(filter, pos);
        prev = n;
        n = n->parent;
    }
}

void retain_foreach(const struct retain *r, retain_cb cb, void *ctx)
{
    retain__subtree(r->root, cb, ctx);
}

size_t retain_count(const struct retain *r)
{
    return r->count;
}

size_t retain_nodes(const struct retain *r)
{
    size_t count = 0;
    for (const struct rnode *n = r->root; n; n = retain__pre_next(n, r->root))
        count++;
    return count - 1;
}
