/* retain: retained messages in a level tree, so a subscription filter visits only the branches
 * it can match (`#` takes a whole subtree, `+` one level, a literal one child). The store holds
 * one msg reference per stored message and prunes branches left empty when a topic is cleared.
 * Every walk is iterative through parent pointers and uthash's sibling links, so topic depth
 * costs neither stack nor heap. Knows nothing of sessions, subscriptions or the wire. */
#include "retain.h"

#include "topic.h"
#include "xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct rnode {
    struct rnode *parent;   /* NULL for the root */
    uint64_t seq;           /* creation number: siblings are in this order (uthash appends) */
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
    uint64_t seq;   /* the last creation number given to a node */
};

uint64_t retain_cost(const struct msg *m)
{
    return (uint64_t)m->topic_len + m->payload_len;
}

typedef void (*retain_cb)(void *ctx, struct msg *m);

static struct rnode *retain__node_new(struct retain *r, struct rnode *parent, const char *l,
                                      size_t ll)
{
    struct rnode *n = xcalloc(1, sizeof(*n) + ll + 1);
    n->parent = parent;
    n->seq = ++r->seq;
    n->level_len = ll;
    memcpy(n->level, l, ll);
    return n;
}

struct retain *retain_new(void)
{
    struct retain *r = xcalloc(1, sizeof(*r));
    r->root = retain__node_new(r, NULL, "", 0);
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

static struct rnode *retain__find(struct retain *r, const char *t, size_t len, bool create)
{
    struct rnode *n = r->root;
    for (size_t pos = 0;;) {
        size_t end = topic_level_end(t, len, pos);
        struct rnode *c;
        HASH_FIND(hh, n->children, t + pos, end - pos, c);
        if (!c) {
            if (!create)
                return NULL;
            c = retain__node_new(r, n, t + pos, end - pos);
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
    const struct rnode *n = retain__find((struct retain *)r, topic, len, false);
    return n && n->msg;
}

bool retain_peek(const struct retain *r, const char *topic, size_t len, void **owner,
                 uint64_t *cost)
{
    const struct rnode *n = retain__find((struct retain *)r, topic, len, false);
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

/* ---- matching a filter ---------------------------------------------------------------------
 *
 * A filter's walk is a pre-order walk over the nodes whose levels match the filter's levels:
 * a literal takes its one child, `+` and `#` every child (but `$` levels at the root), and
 * below a `#` everything. It is resumable without keeping pointers into the tree between steps
 * (messages may be set and cleared in between, pruning nodes): a pause records the next node
 * to visit as its level names and the creation number (seq) of every node on its path.
 * Siblings are in seq order (uthash appends and never reorders), so the node after a pruned
 * one is the first sibling with a greater seq, and a resumed walk neither repeats nor skips
 * the nodes that stayed. Nodes created after the walk began are skipped: their messages were
 * published after the subscription existed and were routed to it already. */
struct walk {
    const char *f;
    size_t flen, pos; /* pos: the filter level applied to n's children */
    unsigned levels;  /* number of filter levels */
    bool hash;        /* the last level is `#` */
    uint64_t start;   /* nodes with a greater seq are newer than the walk */
    const struct rnode *n;
    unsigned d; /* depth of n, the root being 0 */
};

static void walk_init(struct walk *w, const struct retain *r, const char *f, size_t flen,
                      uint64_t start)
{
    *w = (struct walk){.f = f, .flen = flen, .start = start, .n = r->root};
    w->levels = topic_levels(f, flen);
    size_t last = topic_level_prev(f, flen + 1);
    w->hash = flen - last == 1 && f[last] == '#';
}

static bool walk_has_children(const struct walk *w)
{
    return w->d < w->levels || w->hash;
}

static bool walk_matches(const struct walk *w)
{
    if (!w->n->msg || w->d == 0)
        return false;
    return w->hash ? w->d + 1 >= w->levels : w->d == w->levels;
}

static void walk_down(struct walk *w, const struct rnode *c)
{
    w->n = c;
    w->d++;
    if (w->d + 1 <= w->levels) /* else the level stays `#`, or there are no children */
        w->pos = topic_level_end(w->f, w->flen, w->pos) + 1;
}

static void walk_up(struct walk *w)
{
    if (w->d + 1 <= w->levels)
        w->pos = topic_level_prev(w->f, w->pos);
    w->n = w->n->parent;
    w->d--;
}

/* May child c of n be visited under a wildcard level? */
static bool walk_wild_ok(const struct walk *w, const struct rnode *c)
{
    return !(w->d == 0 && c->level_len && c->level[0] == '$');
}

static bool walk_level_wild(const struct walk *w, const char **l, size_t *ll)
{
    size_t end = topic_level_end(w->f, w->flen, w->pos);
    *l = w->f + w->pos;
    *ll = end - w->pos;
    return *ll == 1 && (**l == '+' || **l == '#');
}

/* The first child of n to visit with a seq above floor (0: the first of all), or NULL. */
static const struct rnode *walk_from(const struct walk *w, uint64_t floor)
{
    const char *l;
    size_t ll;
    const struct rnode *c;
    if (!walk_level_wild(w, &l, &ll)) {
        HASH_FIND(hh, w->n->children, l, ll, c);
        return c && c->seq > floor && c->seq <= w->start ? c : NULL;
    }
    for (c = w->n->children; c && c->seq <= w->start; c = c->hh.next)
        if (c->seq > floor && walk_wild_ok(w, c))
            return c;
    return NULL;
}

/* The sibling to visit after c, a child of n, or NULL. */
static const struct rnode *walk_after(const struct walk *w, const struct rnode *c)
{
    const char *l;
    size_t ll;
    if (!walk_level_wild(w, &l, &ll))
        return NULL; /* a literal level has one child */
    for (c = c->hh.next; c && c->seq <= w->start; c = c->hh.next)
        if (walk_wild_ok(w, c))
            return c;
    return NULL;
}

/* n's subtree is done: on to the next sibling of n or of its nearest ancestor that has one.
 * False when the walk is over. */
static bool walk_skip(struct walk *w)
{
    while (w->d > 0) {
        const struct rnode *done = w->n;
        walk_up(w);
        const struct rnode *c = walk_after(w, done);
        if (c) {
            walk_down(w, c);
            return true;
        }
    }
    return false;
}

/* On to the next node in walk order; false when the walk is over. */
static bool walk_next(struct walk *w)
{
    const struct rnode *c = walk_has_children(w) ? walk_from(w, 0) : NULL;
    if (c) {
        walk_down(w, c);
        return true;
    }
    return walk_skip(w);
}

/* Back to the node the cursor names or, when it is gone, to the next one in walk order. The
 * path was valid for this filter when saved, so every node found on it is still allowed. */
static bool walk_resume(struct walk *w, const struct retain_cursor *cur)
{
    size_t p = 0;
    for (size_t i = 0; i < cur->depth; i++) {
        size_t e = topic_level_end(cur->path, cur->path_len, p);
        const struct rnode *c;
        HASH_FIND(hh, w->n->children, cur->path + p, e - p, c);
        if (!c || c->seq != cur->seqs[i]) {
            c = walk_from(w, cur->seqs[i]);
            if (!c)
                return walk_skip(w);
            walk_down(w, c);
            return true;
        }
        walk_down(w, c);
        p = e + 1;
    }
    return true;
}

/* Record w's node (depth >= 1) in cur: level names and seqs, filled from the leaf up. */
static void walk_save(const struct walk *w, struct retain_cursor *cur)
{
    size_t len = 0;
    for (const struct rnode *n = w->n; n->parent; n = n->parent)
        len += n->level_len + 1;
    len--; /* no '/' before the first level */
    if (len > cur->path_cap) {
        cur->path_cap = len;
        cur->path = xrealloc(cur->path, len ? len : 1);
    }
    if (w->d > cur->seqs_cap) {
        cur->seqs_cap = w->d;
        cur->seqs = xrealloc(cur->seqs, w->d * sizeof(*cur->seqs));
    }
    cur->path_len = len;
    cur->depth = w->d;
    size_t at = len, i = w->d;
    for (const struct rnode *n = w->n; n->parent; n = n->parent) {
        at -= n->level_len;
        memcpy(cur->path + at, n->level, n->level_len);
        if (at)
            cur->path[--at] = '/';
        cur->seqs[--i] = n->seq;
    }
}

bool retain_match_step(const struct retain *r, const char *filter, size_t flen,
                       struct retain_cursor *cur, size_t budget, retain_match_cb cb, void *ctx)
{
    if (cur->done || !flen) {
        cur->done = true;
        return true;
    }
    if (!cur->started) {
        cur->started = true;
        cur->start_seq = r->seq;
    }
    struct walk w;
    walk_init(&w, r, filter, flen, cur->start_seq);
    bool more = cur->depth ? walk_resume(&w, cur) : walk_next(&w);
    while (more) {
        if (budget-- == 0) {
            walk_save(&w, cur);
            return false;
        }
        if (walk_matches(&w) && !cb(ctx, w.n->msg))
            break;
        more = walk_next(&w);
    }
    cur->done = true;
    return true;
}

void retain_cursor_free(struct retain_cursor *cur)
{
    free(cur->path);
    free(cur->seqs);
    *cur = (struct retain_cursor){0};
}

void retain_match(const struct retain *r, const char *filter, size_t flen, retain_match_cb cb,
                  void *ctx)
{
    struct retain_cursor cur = {0};
    retain_match_step(r, filter, flen, &cur, SIZE_MAX, cb, ctx);
    retain_cursor_free(&cur);
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
