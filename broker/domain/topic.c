/* topic: names, filters, the relations between filters, and the subscription tree.
 *
 * Tree nodes hold their exact children in a uthash keyed by the level's bytes, plus direct
 * pointers to the `+` and `#` children, so matching a topic visits only branches that can match.
 * Every walk over the tree (match, free) is iterative and climbs back through parent pointers, so
 * neither the stack nor the heap grows with topic depth: a 65535-byte topic of empty levels is as
 * safe as "a/b". Subscribers are opaque pointers; this module knows nothing of sessions, ACLs or
 * the wire format. */
#include "topic.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* ---- names and filters -------------------------------------------------------------------- */

bool topic_name_valid(const char *t, size_t len)
{
    if (len == 0 || len > 65535)
        return false;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '+' || t[i] == '#' || t[i] == '\0')
            return false;
    return true;
}

bool topic_filter_valid(const char *f, size_t len)
{
    if (len == 0 || len > 65535)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = f[i];
        if (c == '\0')
            return false;
        if (c == '+' || c == '#') {
            bool start = i == 0 || f[i - 1] == '/';
            bool end = i + 1 == len || f[i + 1] == '/';
            if (!start || !end || (c == '#' && i + 1 != len))
                return false;
        }
    }
    return true;
}

unsigned topic_levels(const char *t, size_t len)
{
    unsigned n = 1;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '/';
    return n;
}

size_t topic_level_end(const char *s, size_t len, size_t pos)
{
    const char *slash = memchr(s + pos, '/', len - pos);
    return slash ? (size_t)(slash - s) : len;
}

size_t topic_level_prev(const char *s, size_t pos)
{
    size_t i = pos - 1; /* index of the '/' (or len) that ended the level */
    while (i > 0 && s[i - 1] != '/')
        i--;
    return i;
}

/* A level cursor over a name or filter. `pos` is the start of the next level; pos == len + 1
 * means every level has been consumed ("a/" has two levels: "a" and ""). */
struct lv {
    const char *s;
    size_t len, pos;
    const char *l; /* current level after topic__next */
    size_t ll;
};

static bool topic__next(struct lv *c)
{
    if (c->pos > c->len)
        return false;
    size_t end = topic_level_end(c->s, c->len, c->pos);
    c->l = c->s + c->pos;
    c->ll = end - c->pos;
    c->pos = end + 1;
    return true;
}

static bool topic__is(const char *l, size_t ll, char w)
{
    return ll == 1 && l[0] == w;
}

/* The `$` rule: a filter whose first level is a wildcard never matches a topic starting with
 * `$`. For two filters, a first level starting with `$` is literal (wildcards are whole levels),
 * so it only meets the other filter's first level if that one is literal too. */
static bool topic__dollar_blocked(const char *f, size_t flen, const char *x, size_t xlen)
{
    return xlen && x[0] == '$' && flen && (f[0] == '+' || f[0] == '#');
}

bool topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    if (topic__dollar_blocked(filter, flen, topic, tlen))
        return false;
    struct lv f = {filter, flen, 0, NULL, 0}, t = {topic, tlen, 0, NULL, 0};
    for (;;) {
        bool hf = topic__next(&f), ht = topic__next(&t);
        if (hf && topic__is(f.l, f.ll, '#'))
            return true; /* also matches the parent level: "a/#" matches "a" */
        if (!hf || !ht)
            return hf == ht;
        if (!topic__is(f.l, f.ll, '+') && (f.ll != t.ll || memcmp(f.l, t.l, f.ll) != 0))
            return false;
    }
}

/* The empty string is one empty level but no valid topic name. Two filters match it besides
 * others, and dropping it from their sets makes them equal to filters that do not need it:
 * "#" matches exactly the names "+/#" matches, and "/#" exactly those of "/+/#". The relations
 * below reason about level sequences, so they first rewrite these two into the longer form;
 * otherwise "+" and "/#" would seem to meet (at "") and "/+/#" would not seem to cover "/#". */
static void topic__canon(const char **f, size_t *len)
{
    if (*len == 1 && (*f)[0] == '#') {
        *f = "+/#";
        *len = 3;
    } else if (*len == 2 && (*f)[0] == '/' && (*f)[1] == '#') {
        *f = "/+/#";
        *len = 4;
    }
}

/* Walk both filters level by level. A `#` on either side accepts every continuation of the
 * other (including none, since "a/#" matches "a"); `+` meets any single level. */
bool topic_filters_intersect(const char *a, size_t alen, const char *b, size_t blen)
{
    if (topic__dollar_blocked(a, alen, b, blen) || topic__dollar_blocked(b, blen, a, alen))
        return false;
    topic__canon(&a, &alen);
    topic__canon(&b, &blen);
    struct lv x = {a, alen, 0, NULL, 0}, y = {b, blen, 0, NULL, 0};
    for (;;) {
        bool hx = topic__next(&x), hy = topic__next(&y);
        if ((hx && topic__is(x.l, x.ll, '#')) || (hy && topic__is(y.l, y.ll, '#')))
            return true;
        if (!hx || !hy)
            return hx == hy;
        if (topic__is(x.l, x.ll, '+') || topic__is(y.l, y.ll, '+'))
            continue;
        if (x.ll != y.ll || memcmp(x.l, y.l, x.ll) != 0)
            return false;
    }
}

/* Every topic of `inner` must be a topic of `outer`. Level by level: an outer `#` takes all that
 * is left; an outer `+` takes any single inner level but not an inner `#`, which also stands for
 * the parent level and for many levels. */
bool topic_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen)
{
    if (topic__dollar_blocked(outer, olen, inner, ilen))
        return false;
    topic__canon(&outer, &olen);
    topic__canon(&inner, &ilen);
    struct lv o = {outer, olen, 0, NULL, 0}, in = {inner, ilen, 0, NULL, 0};
    for (;;) {
        bool ho = topic__next(&o), hi = topic__next(&in);
        if (ho && topic__is(o.l, o.ll, '#'))
            return true;
        if (!ho || !hi)
            return ho == hi;
        if (topic__is(in.l, in.ll, '#'))
            return false;
        if (topic__is(o.l, o.ll, '+'))
            continue;
        if (topic__is(in.l, in.ll, '+'))
            return false;
        if (o.ll != in.ll || memcmp(o.l, in.l, o.ll) != 0)
            return false;
    }
}

int topic_share_split(const char *f, size_t len, const char **group, size_t *glen,
                      const char **filter, size_t *flen)
{
    static const char pre[] = "$share/";
    if (len < sizeof(pre) - 1 || memcmp(f, pre, sizeof(pre) - 1) != 0)
        return 0;
    const char *g = f + sizeof(pre) - 1, *end = f + len;
    const char *slash = memchr(g, '/', (size_t)(end - g));
    if (!slash || slash == g || slash + 1 >= end)
        return -1;
    for (const char *p = g; p < slash; p++)
        if (*p == '+' || *p == '#')
            return -1;
    *group = g;
    *glen = (size_t)(slash - g);
    *filter = slash + 1;
    *flen = (size_t)(end - slash - 1);
    return 1;
}

/* ---- the tree ----------------------------------------------------------------------------- */

struct subent {
    struct topic_sub sub;
    UT_hash_handle hh; /* keyed by sub.subscriber */
};

/* A group's address is stable for as long as it has members: queued deliveries point at it. */
struct topic_group {
    struct topic_sub *members; /* subscription order */
    size_t count, cap;
    uint32_t cursor;
    UT_hash_handle hh; /* keyed by name */
    size_t name_len;
    char name[];
};

struct node {
    struct node *parent;   /* NULL for the root */
    struct node *children; /* uthash of exact levels */
    struct node *plus, *hash;
    struct subent *subs;
    struct topic_group *groups;
    UT_hash_handle hh; /* keyed by level, in the parent's children */
    size_t level_len;
    char level[]; /* the level's bytes, NUL-terminated for debugging */
};

struct topic_tree {
    struct node *root;
    size_t count;
    topic_watch_cb watch;
    void *watch_ctx;
};

static struct node *topic__node_new(struct node *parent, const char *l, size_t ll)
{
    struct node *n = xcalloc(1, sizeof(*n) + ll + 1);
    n->parent = parent;
    n->level_len = ll;
    memcpy(n->level, l, ll);
    return n;
}

struct topic_tree *topic_tree_new(void)
{
    struct topic_tree *t = xcalloc(1, sizeof(*t));
    t->root = topic__node_new(NULL, "", 0);
    return t;
}

static void topic__group_free(struct topic_group *g)
{
    free(g->members);
    free(g);
}

/* Detach n from its parent (n must have no children) and free it with its subscriptions. */
static void topic__node_free(struct node *n)
{
    struct node *p = n->parent;
    if (p && p->plus == n)
        p->plus = NULL;
    else if (p && p->hash == n)
        p->hash = NULL;
    else if (p)
        HASH_DEL(p->children, n);
    struct subent *s, *st;
    HASH_ITER(hh, n->subs, s, st)
    {
        HASH_DEL(n->subs, s);
        free(s);
    }
    struct topic_group *g, *gt;
    HASH_ITER(hh, n->groups, g, gt)
    {
        HASH_DEL(n->groups, g);
        topic__group_free(g);
    }
    free(n);
}

/* Post-order without recursion: descend to any child until a leaf, free it, resume at its
 * parent. */
void topic_tree_free(struct topic_tree *t)
{
    if (!t)
        return;
    struct node *n = t->root;
    while (n) {
        struct node *c = n->children ? n->children : n->plus ? n->plus : n->hash;
        if (c) {
            n = c;
            continue;
        }
        struct node *p = n->parent;
        topic__node_free(n);
        n = p;
    }
    free(t);
}

static struct node *topic__child(struct node *n, const char *l, size_t ll, bool create)
{
    struct node **slot = NULL, *c;
    if (topic__is(l, ll, '+'))
        slot = &n->plus;
    else if (topic__is(l, ll, '#'))
        slot = &n->hash;
    if (slot) {
        if (!*slot && create)
            *slot = topic__node_new(n, l, ll);
        return *slot;
    }
    HASH_FIND(hh, n->children, l, ll, c);
    if (!c && create) {
        c = topic__node_new(n, l, ll);
        HASH_ADD_KEYPTR(hh, n->children, c->level, c->level_len, c);
    }
    return c;
}

static struct node *topic__walk(const struct topic_tree *t, const char *f, size_t flen, bool create)
{
    struct node *n = t->root;
    struct lv c = {f, flen, 0, NULL, 0};
    while (n && topic__next(&c))
        n = topic__child(n, c.l, c.ll, create);
    return n;
}

static struct topic_group *topic__group(struct node *n, const char *g, size_t glen, bool create)
{
    struct topic_group *x;
    HASH_FIND(hh, n->groups, g, glen, x);
    if (!x && create) {
        x = xcalloc(1, sizeof(*x) + glen + 1);
        memcpy(x->name, g, glen);
        x->name_len = glen;
        HASH_ADD_KEYPTR(hh, n->groups, x->name, x->name_len, x);
    }
    return x;
}

/* Groups are looked up by name in O(1); members are scanned linearly because a group's size is
 * the number of clients sharing one filter, and the order must be kept for fair rotation. */
static bool topic__group_add(struct topic_group *g, void *subscriber, uint8_t options,
                             uint32_t sub_id)
{
    for (size_t i = 0; i < g->count; i++) {
        if (g->members[i].subscriber == subscriber) {
            g->members[i].options = options;
            g->members[i].sub_id = sub_id;
            return true;
        }
    }
    if (g->count == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->members = xrealloc(g->members, g->cap * sizeof(*g->members));
    }
    g->members[g->count++] = (struct topic_sub){subscriber, options, sub_id, g};
    return false;
}

int topic_tree_subscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                         size_t glen, void *subscriber, uint8_t options, uint32_t sub_id,
                         bool *replaced)
{
    struct node *n = topic__walk(t, filter, flen, true);
    bool first;
    if (group) {
        struct topic_group *g = topic__group(n, group, glen, true);
        first = g->count == 0;
        *replaced = topic__group_add(g, subscriber, options, sub_id);
    } else {
        struct subent *s;
        first = n->subs == NULL;
        HASH_FIND_PTR(n->subs, &subscriber, s);
        *replaced = s != NULL;
        if (!s) {
            s = xcalloc(1, sizeof(*s));
            s->sub.subscriber = subscriber;
            HASH_ADD_PTR(n->subs, sub.subscriber, s);
        }
        s->sub.options = options;
        s->sub.sub_id = sub_id;
    }
    if (!*replaced)
        t->count++;
    if (first && t->watch)
        t->watch(t->watch_ctx, filter, flen, group, glen, true);
    return 0;
}

static bool topic__node_empty(const struct node *n)
{
    return !n->children && !n->plus && !n->hash && !n->subs && !n->groups;
}

/* Remove one member, keeping order; the cursor keeps pointing at the same next member. The
 * group is freed with its last member (*emptied). */
static bool topic__group_remove(struct node *n, struct topic_group *g, void *subscriber,
                                bool *emptied)
{
    size_t i = 0;
    while (i < g->count && g->members[i].subscriber != subscriber)
        i++;
    if (i == g->count)
        return false;
    memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof(*g->members));
    g->count--;
    if (g->cursor > i)
        g->cursor--;
    if (g->count && g->cursor >= g->count)
        g->cursor = 0;
    *emptied = g->count == 0;
    if (*emptied) {
        HASH_DEL(n->groups, g);
        topic__group_free(g);
    }
    return true;
}

int topic_tree_unsubscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                           size_t glen, void *subscriber)
{
    struct node *n = topic__walk(t, filter, flen, false);
    if (!n)
        return -1;
    bool last;
    if (group) {
        struct topic_group *g = topic__group(n, group, glen, false);
        if (!g || !topic__group_remove(n, g, subscriber, &last))
            return -1;
    } else {
        struct subent *s;
        HASH_FIND_PTR(n->subs, &subscriber, s);
        if (!s)
            return -1;
        HASH_DEL(n->subs, s);
        free(s);
        last = n->subs == NULL;
    }
    t->count--;
    if (last && t->watch)
        t->watch(t->watch_ctx, filter, flen, group, glen, false);
    while (n->parent && topic__node_empty(n)) {
        struct node *p = n->parent;
        topic__node_free(n);
        n = p;
    }
    return 0;
}

struct match_ctx {
    topic_match_cb cb;
    topic_group_cb gcb;
    void *ctx;
};

static void topic__emit(const struct node *n, const struct match_ctx *m)
{
    const struct subent *s;
    for (s = n->subs; s; s = s->hh.next)
        m->cb(m->ctx, &s->sub);
    if (!m->gcb)
        return;
    for (struct topic_group *g = n->groups; g; g = g->hh.next)
        m->gcb(m->ctx, g);
}

/* The children of n worth visiting for topic level l, in order: `+` then the exact child.
 * `prev` is the child just finished (NULL when starting at n). */
static const struct node *topic__next_child(const struct node *n, const char *l, size_t ll,
                                            const struct node *prev, bool dollar_root)
{
    if (!prev && n->plus && !dollar_root)
        return n->plus;
    if (prev && prev != n->plus)
        return NULL;
    const struct node *c;
    HASH_FIND(hh, n->children, l, ll, c);
    return c;
}

/* Depth-first over the branches that can match, with no recursion and no allocation: the path
 * is the chain of parent pointers, and the topic offset is recovered by scanning back one level
 * when climbing. Each visited node costs O(level length), so the whole match costs
 * O(nodes that match a prefix of the topic × level length), independent of how many
 * subscriptions exist elsewhere. Callbacks must not change the tree. */
void topic_tree_match(const struct topic_tree *t, const char *topic, size_t tlen, topic_match_cb cb,
                      topic_group_cb gcb, void *ctx)
{
    const struct match_ctx m = {cb, gcb, ctx};
    const bool dollar = tlen && topic[0] == '$';
    const struct node *root = t->root, *n = root, *prev = NULL;
    size_t pos = 0; /* start of the topic level below n; tlen + 1 when n consumed them all */
    for (;;) {
        if (!prev) {
            /* First arrival at n. `#` below n matches what is left, including nothing. */
            if (n->hash && !(n == root && dollar))
                topic__emit(n->hash, &m);
            if (pos > tlen)
                topic__emit(n, &m);
        }
        const struct node *next = NULL;
        struct lv c = {topic, tlen, pos, NULL, 0};
        if (topic__next(&c))
            next = topic__next_child(n, c.l, c.ll, prev, n == root && dollar);
        if (next) {
            n = next;
            pos = c.pos;
            prev = NULL;
            continue;
        }
        if (n == root)
            return;
        pos = topic_level_prev(topic, pos);
        prev = n;
        n = n->parent;
    }
}

size_t topic_group_size(const struct topic_group *g)
{
    return g->count;
}

const struct topic_sub *topic_group_member(const struct topic_group *g, size_t i)
{
    return &g->members[i];
}

uint32_t *topic_group_cursor(struct topic_group *g)
{
    return &g->cursor;
}

const char *topic_group_name(const struct topic_group *g, size_t *len)
{
    *len = g->name_len;
    return g->name;
}

void topic_tree_set_watch(struct topic_tree *t, topic_watch_cb cb, void *ctx)
{
    t->watch = cb;
    t->watch_ctx = ctx;
}

struct topic_group *topic_tree_group(const struct topic_tree *t, const char *filter, size_t flen,
                                     const char *group, size_t glen)
{
    struct node *n = topic__walk(t, filter, flen, false);
    return n ? topic__group(n, group, glen, false) : NULL;
}

size_t topic_tree_count(const struct topic_tree *t)
{
    return t->count;
}

/* The next node of a pre-order walk: exact children first, then `+`, then `#`. */
static const struct node *topic__pre_next(const struct node *n)
{
    const struct node *c = n->children ? n->children : n->plus ? n->plus : n->hash;
    if (c)
        return c;
    for (; n->parent; n = n->parent) {
        const struct node *p = n->parent;
        if (n != p->plus && n != p->hash && n->hh.next)
            return n->hh.next;
        if (n != p->plus && n != p->hash && p->plus)
            return p->plus;
        if (n != p->hash && p->hash)
            return p->hash;
    }
    return NULL;
}

size_t topic_tree_nodes(const struct topic_tree *t)
{
    size_t count = 0;
    for (const struct node *n = topic__pre_next(t->root); n; n = topic__pre_next(n))
        count++;
    return count;
}
