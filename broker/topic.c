/* topic: names, filters and the subscription tree.
 *
 * Tree nodes hold their children in a uthash keyed by the level's bytes, plus direct pointers to
 * the `+` and `#` children, so matching a topic visits only branches that can match. Matching
 * recurses only into `+` branches and iterates along exact ones; depth is bounded by the topic
 * length limit. Subscribers are opaque pointers in a per-node hash. Knows nothing of sessions. */
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
            if (!start || !end)
                return false;
            if (c == '#' && i + 1 != len)
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

/* Next level of s[*pos..len): sets *l and *ll; returns false when there are no more levels. */
static bool next_level(const char *s, size_t len, size_t *pos, bool *done, const char **l,
                       size_t *ll)
{
    if (*done)
        return false;
    size_t start = *pos, i = start;
    while (i < len && s[i] != '/')
        i++;
    *l = s + start;
    *ll = i - start;
    if (i >= len)
        *done = true;
    else
        *pos = i + 1;
    return true;
}

bool topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    if (tlen && topic[0] == '$' && flen && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t fp = 0, tp = 0;
    bool fd = false, td = false;
    const char *fl, *tl;
    size_t fll, tll;
    for (;;) {
        bool hf = next_level(filter, flen, &fp, &fd, &fl, &fll);
        bool ht = next_level(topic, tlen, &tp, &td, &tl, &tll);
        if (hf && fll == 1 && fl[0] == '#')
            return true; /* also matches the parent level: "a/#" matches "a" */
        if (!hf || !ht)
            return hf == ht;
        if (!(fll == 1 && fl[0] == '+') && (fll != tll || memcmp(fl, tl, fll) != 0))
            return false;
    }
}

static bool is_wild(const char *l, size_t n, char w)
{
    return n == 1 && l[0] == w;
}

bool topic_filters_intersect(const char *a, size_t alen, const char *b, size_t blen)
{
    bool ad = alen && a[0] == '$', bd = blen && b[0] == '$';
    /* A `$` level can only be matched literally by the other filter. */
    if (ad && blen && (b[0] == '+' || b[0] == '#'))
        return false;
    if (bd && alen && (a[0] == '+' || a[0] == '#'))
        return false;
    size_t ap = 0, bp = 0;
    bool adone = false, bdone = false;
    const char *al, *bl;
    size_t all, bll;
    for (;;) {
        bool ha = next_level(a, alen, &ap, &adone, &al, &all);
        bool hb = next_level(b, blen, &bp, &bdone, &bl, &bll);
        if ((ha && is_wild(al, all, '#')) || (hb && is_wild(bl, bll, '#')))
            return true;
        if (!ha || !hb)
            return ha == hb;
        if (is_wild(al, all, '+') || is_wild(bl, bll, '+'))
            continue;
        if (all != bll || memcmp(al, bl, all) != 0)
            return false;
    }
}

bool topic_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen)
{
    if (ilen && inner[0] == '$' && olen && (outer[0] == '+' || outer[0] == '#'))
        return false;
    size_t op = 0, ip = 0;
    bool od = false, id = false;
    const char *ol, *il;
    size_t oll, ill;
    for (;;) {
        bool ho = next_level(outer, olen, &op, &od, &ol, &oll);
        bool hi = next_level(inner, ilen, &ip, &id, &il, &ill);
        if (ho && is_wild(ol, oll, '#'))
            return true;
        if (!ho || !hi)
            return ho == hi;
        if (is_wild(il, ill, '#'))
            return false; /* inner reaches deeper than a non-# outer level */
        if (is_wild(ol, oll, '+'))
            continue;
        if (is_wild(il, ill, '+'))
            return false;
        if (oll != ill || memcmp(ol, il, oll) != 0)
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
    UT_hash_handle hh;
};

struct topic_group {
    char *name;
    size_t name_len;
    struct topic_sub *members;
    size_t count, cap;
    uint32_t cursor;
    struct topic_group *next;
};

struct node {
    char *level;
    size_t level_len;
    struct node *parent;
    struct node *children; /* uthash of exact levels */
    struct node *plus, *hash;
    struct subent *subs;
    struct topic_group *groups;
    UT_hash_handle hh;
};

struct topic_tree {
    struct node root;
    size_t count;
};

struct topic_tree *topic_tree_new(void)
{
    return xcalloc(1, sizeof(struct topic_tree));
}

static void node_free_all(struct node *n)
{
    struct node *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp)
    {
        HASH_DEL(n->children, c);
        node_free_all(c);
        free(c);
    }
    if (n->plus) {
        node_free_all(n->plus);
        free(n->plus);
    }
    if (n->hash) {
        node_free_all(n->hash);
        free(n->hash);
    }
    struct subent *s, *st;
    HASH_ITER(hh, n->subs, s, st)
    {
        HASH_DEL(n->subs, s);
        free(s);
    }
    struct topic_group *g = n->groups;
    while (g) {
        struct topic_group *next = g->next;
        free(g->name);
        free(g->members);
        free(g);
        g = next;
    }
    free(n->level);
}

void topic_tree_free(struct topic_tree *t)
{
    if (!t)
        return;
    node_free_all(&t->root);
    free(t);
}

static struct node *child(struct node *n, const char *l, size_t ll, bool create)
{
    struct node **slot = NULL;
    if (ll == 1 && l[0] == '+')
        slot = &n->plus;
    else if (ll == 1 && l[0] == '#')
        slot = &n->hash;
    if (slot) {
        if (!*slot && create) {
            *slot = xcalloc(1, sizeof(struct node));
            (*slot)->level = xstrndup(l, ll);
            (*slot)->level_len = ll;
            (*slot)->parent = n;
        }
        return *slot;
    }
    struct node *c;
    HASH_FIND(hh, n->children, l, ll, c);
    if (!c && create) {
        c = xcalloc(1, sizeof(*c));
        c->level = xstrndup(l, ll);
        c->level_len = ll;
        c->parent = n;
        HASH_ADD_KEYPTR(hh, n->children, c->level, c->level_len, c);
    }
    return c;
}

static struct node *walk(struct topic_tree *t, const char *f, size_t flen, bool create)
{
    struct node *n = &t->root;
    size_t pos = 0;
    bool done = false;
    const char *l;
    size_t ll;
    while (n && next_level(f, flen, &pos, &done, &l, &ll))
        n = child(n, l, ll, create);
    return n;
}

static struct topic_group *find_group(struct node *n, const char *g, size_t glen)
{
    for (struct topic_group *x = n->groups; x; x = x->next)
        if (x->name_len == glen && memcmp(x->name, g, glen) == 0)
            return x;
    return NULL;
}

int topic_tree_subscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                         size_t glen, void *subscriber, uint8_t options, uint32_t sub_id,
                         bool *replaced)
{
    struct node *n = walk(t, filter, flen, true);
    *replaced = false;
    if (group) {
        struct topic_group *g = find_group(n, group, glen);
        if (!g) {
            g = xcalloc(1, sizeof(*g));
            g->name = xstrndup(group, glen);
            g->name_len = glen;
            g->next = n->groups;
            n->groups = g;
        }
        for (size_t i = 0; i < g->count; i++) {
            if (g->members[i].subscriber == subscriber) {
                g->members[i].options = options;
                g->members[i].sub_id = sub_id;
                *replaced = true;
                return 0;
            }
        }
        if (g->count == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 4;
            g->members = xrealloc(g->members, g->cap * sizeof(*g->members));
        }
        g->members[g->count++] = (struct topic_sub){subscriber, options, sub_id, g};
        t->count++;
        return 0;
    }
    struct subent *s;
    HASH_FIND_PTR(n->subs, &subscriber, s);
    if (s) {
        s->sub.options = options;
        s->sub.sub_id = sub_id;
        *replaced = true;
        return 0;
    }
    s = xcalloc(1, sizeof(*s));
    s->sub = (struct topic_sub){subscriber, options, sub_id, NULL};
    HASH_ADD_PTR(n->subs, sub.subscriber, s);
    t->count++;
    return 0;
}

static bool node_empty(const struct node *n)
{
    return !n->children && !n->plus && !n->hash && !n->subs && !n->groups;
}

static void prune(struct node *n)
{
    while (n->parent && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            HASH_DEL(p->children, n);
        free(n->level);
        free(n);
        n = p;
    }
}

int topic_tree_unsubscribe(struct topic_tree *t, const char *filter, size_t flen, const char *group,
                           size_t glen, void *subscriber)
{
    struct node *n = walk(t, filter, flen, false);
    if (!n)
        return -1;
    if (group) {
        struct topic_group *g = find_group(n, group, glen), **pp;
        if (!g)
            return -1;
        size_t i = 0;
        while (i < g->count && g->members[i].subscriber != subscriber)
            i++;
        if (i == g->count)
            return -1;
        memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof(*g->members));
        g->count--;
        if (g->cursor > i)
            g->cursor--;
        if (g->count == 0) {
            for (pp = &n->groups; *pp != g; pp = &(*pp)->next)
                ;
            *pp = g->next;
            free(g->name);
            free(g->members);
            free(g);
        }
    } else {
        struct subent *s;
        HASH_FIND_PTR(n->subs, &subscriber, s);
        if (!s)
            return -1;
        HASH_DEL(n->subs, s);
        free(s);
    }
    t->count--;
    prune(n);
    return 0;
}

struct match_ctx {
    topic_match_cb cb;
    topic_group_cb gcb;
    void *ctx;
};

static void emit(struct node *n, const struct match_ctx *m)
{
    struct subent *s, *tmp;
    HASH_ITER(hh, n->subs, s, tmp)
    {
        m->cb(m->ctx, &s->sub);
    }
    for (struct topic_group *g = n->groups; g; g = g->next)
        if (m->gcb)
            m->gcb(m->ctx, g);
}

/* Match the levels of topic[pos..] below n. */
static void match_from(struct node *n, const char *topic, size_t tlen, size_t pos, bool done,
                       bool first, const struct match_ctx *m)
{
    for (;;) {
        /* `#` here matches this level and everything below (and the parent level itself). */
        if (n->hash && !(first && tlen && topic[0] == '$'))
            emit(n->hash, m);
        const char *l;
        size_t ll;
        if (!next_level(topic, tlen, &pos, &done, &l, &ll)) {
            emit(n, m);
            return;
        }
        if (n->plus && !(first && ll && l[0] == '$'))
            match_from(n->plus, topic, tlen, pos, done, false, m);
        struct node *c;
        HASH_FIND(hh, n->children, l, ll, c);
        if (!c)
            return;
        n = c;
        first = false;
    }
}

void topic_tree_match(const struct topic_tree *t, const char *topic, size_t tlen, topic_match_cb cb,
                      topic_group_cb gcb, void *ctx)
{
    struct match_ctx m = {cb, gcb, ctx};
    match_from((struct node *)&t->root, topic, tlen, 0, false, true, &m);
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

size_t topic_tree_count(const struct topic_tree *t)
{
    return t->count;
}
