/* topic: validation, matching rules ($, +, #), the filter relations against an exhaustive
 * brute force over a small alphabet, and the subscription tree (wildcards, $SYS, shared groups,
 * counts, pruning, very deep topics, and a randomized cross-check against topic_matches). */
#include "check.h"
#include "topic.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

static void test_validation(void)
{
    CHECK(topic_name_valid(S("a/b")));
    CHECK(topic_name_valid(S("/")));
    CHECK(topic_name_valid(S("a//b")));
    CHECK(topic_name_valid(S("/a")));
    CHECK(topic_name_valid(S("$SYS/x")));
    CHECK(!topic_name_valid(S("")));
    CHECK(!topic_name_valid(S("a/+")));
    CHECK(!topic_name_valid(S("a#")));
    CHECK(!topic_name_valid(S("#")));
    CHECK(!topic_name_valid("a\0b", 3));
    CHECK(topic_filter_valid(S("#")));
    CHECK(topic_filter_valid(S("+")));
    CHECK(topic_filter_valid(S("+/a/+/#")));
    CHECK(topic_filter_valid(S("a//b")));
    CHECK(topic_filter_valid(S("/")));
    CHECK(topic_filter_valid(S("//#")));
    CHECK(topic_filter_valid(S("$SYS/#")));
    CHECK(!topic_filter_valid(S("")));
    CHECK(!topic_filter_valid(S("a/#/b")));
    CHECK(!topic_filter_valid(S("#/")));
    CHECK(!topic_filter_valid(S("a+")));
    CHECK(!topic_filter_valid(S("+a")));
    CHECK(!topic_filter_valid(S("a/b#")));
    CHECK(!topic_filter_valid(S("##")));
    CHECK(!topic_filter_valid(S("++")));
    CHECK(!topic_filter_valid("a\0", 2));
    CHECK_EQ_INT(topic_levels(S("a/b/c")), 3);
    CHECK_EQ_INT(topic_levels(S("a")), 1);
    CHECK_EQ_INT(topic_levels(S("/")), 2);
    CHECK_EQ_INT(topic_levels(S("a//")), 3);
}

static void test_share_split(void)
{
    const char *g = NULL, *f = NULL;
    size_t gl = 0, fl = 0;
    CHECK_EQ_INT(topic_share_split(S("$share/grp/a/#"), &g, &gl, &f, &fl), 1);
    CHECK(gl == 3 && !memcmp(g, "grp", 3) && fl == 3 && !memcmp(f, "a/#", 3));
    CHECK_EQ_INT(topic_share_split(S("$share/g//"), &g, &gl, &f, &fl), 1);
    CHECK(gl == 1 && fl == 1 && f[0] == '/');
    CHECK_EQ_INT(topic_share_split(S("$share//a"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/g+/a"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/#/a"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/g"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/g/"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/"), &g, &gl, &f, &fl), -1);
    g = f = NULL;
    CHECK_EQ_INT(topic_share_split(S("$share"), &g, &gl, &f, &fl), 0);
    CHECK_EQ_INT(topic_share_split(S("$sharex/g/a"), &g, &gl, &f, &fl), 0);
    CHECK_EQ_INT(topic_share_split(S("a/b"), &g, &gl, &f, &fl), 0);
    CHECK(g == NULL && f == NULL);
}

struct rel {
    const char *a, *b;
    bool want;
};

static void test_matching(void)
{
    static const struct rel m[] = {
        {"a/#", "a", true},         {"a/#", "a/b/c", true},     {"a/#", "ab", false},
        {"a/+", "a/", true},        {"a/+", "a", false},        {"a/+", "a/b/c", false},
        {"+/+", "/x", true},        {"+/+", "/", true},         {"+", "/", false},
        {"#", "/", true},           {"#", "a", true},           {"a//b", "a//b", true},
        {"a/+/b", "a//b", true},    {"/a", "a", false},         {"a/b", "a/b/", false},
        {"a/b/", "a/b/", true},     {"#", "$SYS/x", false},     {"+/x", "$SYS/x", false},
        {"+", "$", false},          {"$SYS/#", "$SYS/x", true}, {"$SYS/#", "$SYS", true},
        {"$SYS/+", "$SYS/x", true}, {"a/+", "a/$x", true},      {"a/#", "a/$x/y", true},
        {"+/#", "a", true},         {"+/+/#", "a", false},      {"a/b/c", "a/b/c", true},
        {"a/b/c", "a/b/d", false},  {"x/$", "x/$", true},       {"$a", "$a", true},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        bool got = topic_matches(S(m[i].a), S(m[i].b));
        if (got != m[i].want)
            fprintf(stderr, "  matches(%s, %s)\n", m[i].a, m[i].b);
        CHECK(got == m[i].want);
    }
}

static void test_relations(void)
{
    static const struct rel in[] = {
        {"a/+/c", "a/b/#", true}, {"a/+/c", "a/b/d", false}, {"#", "a", true},
        {"#", "$SYS/#", false},   {"+/#", "$SYS/x", false},  {"$SYS/#", "$SYS/+/x", true},
        {"a/#", "a", true},       {"a/+/#", "a", false},     {"a/+/#", "a/b", true},
        {"a/b/#", "a", false},    {"+", "+/+", false},       {"+/#", "+/+", true},
        {"a", "b", false},        {"/", "+/+", true},        {"+", "#", true},
        {"$a", "$a/#", true},     {"$a", "$b", false},       {"x/+", "x/$y", true},
        {"+", "/#", false},       {"+/#", "/#", true},       {"#", "/#", true},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        bool ab = topic_filters_intersect(S(in[i].a), S(in[i].b));
        bool ba = topic_filters_intersect(S(in[i].b), S(in[i].a));
        if (ab != in[i].want || ba != in[i].want)
            fprintf(stderr, "  intersect(%s, %s)\n", in[i].a, in[i].b);
        CHECK(ab == in[i].want && ba == in[i].want);
    }
    static const struct rel cov[] = {
        {"a/#", "a/+/b", true},   {"a/+", "a/#", false}, {"a/+", "a/b", true},
        {"#", "$SYS/#", false},   {"a/b", "a/+", false}, {"#", "#", true},
        {"+/#", "#", true},       {"+/+/#", "#", false}, {"+", "#", false},
        {"a/#", "a", true},       {"a", "a/#", false},   {"a/+/#", "a/#", false},
        {"a/+/#", "a/+", true},   {"+/#", "a/#", true},  {"$SYS/#", "$SYS/+", true},
        {"+/+", "$SYS/x", false}, {"#", "+/x", true},    {"a//b", "a/+/b", false},
        {"a/+/b", "a//b", true},  {"$a/#", "$a", true},  {"+/#", "$a", false},
        {"/+/#", "/#", true},     {"+/+/#", "/#", true}, {"/#", "/+/#", true},
        {"+/#", "+/#", true},     {"#", "+/#", true},    {"/+", "/#", false},
    };
    for (size_t i = 0; i < sizeof(cov) / sizeof(cov[0]); i++) {
        bool got = topic_filter_covers(S(cov[i].a), S(cov[i].b));
        if (got != cov[i].want)
            fprintf(stderr, "  covers(%s, %s)\n", cov[i].a, cov[i].b);
        CHECK(got == cov[i].want);
    }
}

/* ---- exhaustive relations over a small alphabet ------------------------------------------- */

#define MAXF 160
#define MAXT 400

struct strs {
    char s[MAXT][16];
    int n;
};

/* All strings of 1..depth levels over the given level alphabet (filters: only valid ones). */
static void enumerate(struct strs *out, const char *const *alpha, int na, int depth, bool filters)
{
    int idx[4];
    out->n = 0;
    for (int d = 1; d <= depth; d++) {
        int total = 1;
        for (int k = 0; k < d; k++)
            total *= na;
        for (int v = 0; v < total; v++) {
            char buf[16] = "";
            int x = v;
            for (int k = 0; k < d; k++, x /= na)
                idx[k] = x % na;
            for (int k = 0; k < d; k++) {
                if (k)
                    strcat(buf, "/");
                strcat(buf, alpha[idx[k]]);
            }
            bool ok = filters ? topic_filter_valid(S(buf)) : topic_name_valid(S(buf));
            if (ok)
                strcpy(out->s[out->n++], buf);
        }
    }
}

/* The spec's matching rule written independently of topic.c, over split levels. */
static bool ref_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        const char *fe = strchr(f, '/'), *te = strchr(t, '/');
        size_t fl = fe ? (size_t)(fe - f) : strlen(f), tl = te ? (size_t)(te - t) : strlen(t);
        if (fl == 1 && f[0] == '#')
            return true;
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        if (!fe || !te)
            return !fe && !te ? true : (!te && fe && !strcmp(fe + 1, "#"));
        f = fe + 1;
        t = te + 1;
    }
}

static void test_relations_exhaustive(void)
{
    static const char *const fa[] = {"a", "$a", "", "+", "#"};
    static const char *const ta[] = {"a", "$a", "", "z"};
    static struct strs fs, ts;
    static bool mt[MAXF][MAXT];
    enumerate(&fs, fa, 5, 3, true);
    enumerate(&ts, ta, 4, 4, false);
    CHECK(fs.n > 100 && fs.n <= MAXF);
    CHECK_EQ_INT(ts.n, 3 + 16 + 64 + 256); /* "" is no topic name */
    int bad = 0;
    for (int i = 0; i < fs.n; i++) {
        for (int k = 0; k < ts.n; k++) {
            mt[i][k] = ref_match(fs.s[i], ts.s[k]);
            if (topic_matches(S(fs.s[i]), S(ts.s[k])) != mt[i][k] && bad++ < 5)
                fprintf(stderr, "  matches(%s, %s)\n", fs.s[i], ts.s[k]);
        }
    }
    for (int i = 0; i < fs.n; i++) {
        for (int j = 0; j < fs.n; j++) {
            bool meet = false, cover = true;
            for (int k = 0; k < ts.n; k++) {
                meet |= mt[i][k] && mt[j][k];
                cover &= !mt[j][k] || mt[i][k];
            }
            if (topic_filters_intersect(S(fs.s[i]), S(fs.s[j])) != meet && bad++ < 10)
                fprintf(stderr, "  intersect(%s, %s) want %d\n", fs.s[i], fs.s[j], meet);
            if (topic_filter_covers(S(fs.s[i]), S(fs.s[j])) != cover && bad++ < 10)
                fprintf(stderr, "  covers(%s, %s) want %d\n", fs.s[i], fs.s[j], cover);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- the tree ----------------------------------------------------------------------------- */

struct hits {
    const void *subs[256];
    const struct topic_sub *last;
    struct topic_group *groups[16];
    int n, ng;
};

static void on_hit(void *ctx, const struct topic_sub *s)
{
    struct hits *h = ctx;
    if (h->n < 256)
        h->subs[h->n] = s->subscriber;
    h->n++;
    h->last = s;
}

static void on_group(void *ctx, struct topic_group *g)
{
    struct hits *h = ctx;
    if (h->ng < 16)
        h->groups[h->ng] = g;
    h->ng++;
}

static struct hits match(const struct topic_tree *t, const char *topic)
{
    struct hits h;
    memset(&h, 0, sizeof(h));
    topic_tree_match(t, S(topic), on_hit, on_group, &h);
    return h;
}

static bool hit(const struct hits *h, const void *who)
{
    for (int i = 0; i < h->n && i < 256; i++)
        if (h->subs[i] == who)
            return true;
    return false;
}

static void test_tree_basic(void)
{
    struct topic_tree *t = topic_tree_new();
    int a, b, c;
    bool rep = true;
    CHECK_EQ_INT(topic_tree_subscribe(t, S("x/y"), NULL, 0, &a, 1, 7, &rep), 0);
    CHECK(!rep);
    topic_tree_subscribe(t, S("x/y"), NULL, 0, &a, 2, 9, &rep);
    CHECK(rep);
    CHECK_EQ_INT(topic_tree_count(t), 1);
    struct hits h = match(t, "x/y");
    CHECK_EQ_INT(h.n, 1);
    CHECK(h.last && h.last->options == 2 && h.last->sub_id == 9 && h.last->group == NULL);

    topic_tree_subscribe(t, S("x/+"), NULL, 0, &b, 0, 0, &rep);
    topic_tree_subscribe(t, S("x/#"), NULL, 0, &c, 0, 0, &rep);
    topic_tree_subscribe(t, S("#"), NULL, 0, &c, 0, 0, &rep);
    CHECK_EQ_INT(topic_tree_count(t), 4);
    h = match(t, "x/y");
    CHECK(h.n == 4 && hit(&h, &a) && hit(&h, &b) && hit(&h, &c));
    h = match(t, "x");
    CHECK(h.n == 2 && hit(&h, &c) && !hit(&h, &b)); /* x/# and # */
    h = match(t, "x/");
    CHECK(h.n == 3 && hit(&h, &b));
    h = match(t, "x/y/z");
    CHECK_EQ_INT(h.n, 2);
    h = match(t, "q");
    CHECK_EQ_INT(h.n, 1);

    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("x/+"), NULL, 0, &a), -1);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("nope/deep"), NULL, 0, &a), -1);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("x/+"), NULL, 0, &b), 0);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("x/+"), NULL, 0, &b), -1);
    h = match(t, "x/y");
    CHECK(h.n == 3 && !hit(&h, &b));
    CHECK_EQ_INT(topic_tree_count(t), 3);
    topic_tree_free(t);
    topic_tree_free(NULL);
}

static void test_tree_dollar(void)
{
    struct topic_tree *t = topic_tree_new();
    int a, b, c, d;
    bool rep;
    topic_tree_subscribe(t, S("#"), NULL, 0, &a, 0, 0, &rep);
    topic_tree_subscribe(t, S("+/x"), NULL, 0, &b, 0, 0, &rep);
    topic_tree_subscribe(t, S("$SYS/#"), NULL, 0, &c, 0, 0, &rep);
    topic_tree_subscribe(t, S("$SYS/+"), NULL, 0, &d, 0, 0, &rep);
    struct hits h = match(t, "$SYS/x");
    CHECK(h.n == 2 && hit(&h, &c) && hit(&h, &d));
    h = match(t, "$SYS");
    CHECK(h.n == 1 && hit(&h, &c));
    h = match(t, "SYS/x");
    CHECK(h.n == 2 && hit(&h, &a) && hit(&h, &b));
    h = match(t, "$");
    CHECK_EQ_INT(h.n, 0);
    topic_tree_free(t);
}

static void test_tree_groups(void)
{
    struct topic_tree *t = topic_tree_new();
    int a, b, c, solo;
    bool rep;
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &a, 1, 0, &rep);
    CHECK(!rep);
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &b, 1, 0, &rep);
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &c, 1, 0, &rep);
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &b, 2, 5, &rep);
    CHECK(rep);
    topic_tree_subscribe(t, S("jobs/#"), S("other"), &a, 0, 0, &rep);
    CHECK(!rep);
    topic_tree_subscribe(t, S("jobs/#"), NULL, 0, &solo, 0, 0, &rep);
    CHECK(!rep);
    CHECK_EQ_INT(topic_tree_count(t), 5);

    struct hits h = match(t, "jobs/1");
    CHECK_EQ_INT(h.n, 1);
    CHECK_EQ_INT(h.ng, 2);
    struct topic_group *g = NULL;
    for (int i = 0; i < h.ng && i < 16; i++) {
        size_t len;
        const char *name = topic_group_name(h.groups[i], &len);
        if (len == 7 && !memcmp(name, "workers", 7))
            g = h.groups[i];
    }
    CHECK(g != NULL);
    if (!g) {
        topic_tree_free(t);
        return;
    }
    CHECK_EQ_INT(topic_group_size(g), 3);
    CHECK(topic_group_member(g, 0)->subscriber == &a);
    CHECK(topic_group_member(g, 1)->subscriber == &b);
    CHECK(topic_group_member(g, 2)->subscriber == &c);
    CHECK_EQ_INT(topic_group_member(g, 1)->options, 2);
    CHECK_EQ_INT(topic_group_member(g, 1)->sub_id, 5);
    CHECK(topic_group_member(g, 1)->group == g);
    CHECK_EQ_INT(*topic_group_cursor(g), 0);

    /* The cursor follows the member it pointed at when an earlier member leaves. */
    *topic_group_cursor(g) = 2;
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("workers"), &a), 0);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("workers"), &a), -1);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("nogroup"), &b), -1);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), NULL, 0, &b), -1);
    CHECK_EQ_INT(topic_group_size(g), 2);
    CHECK_EQ_INT(*topic_group_cursor(g), 1);
    CHECK(topic_group_member(g, *topic_group_cursor(g))->subscriber == &c);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("workers"), &c), 0);
    CHECK_EQ_INT(*topic_group_cursor(g), 0);
    CHECK_EQ_INT(topic_tree_count(t), 3);

    h = match(t, "other/1");
    CHECK(h.n == 0 && h.ng == 0);
    /* A NULL group callback is allowed. */
    h.n = h.ng = 0;
    topic_tree_match(t, S("jobs/x"), on_hit, NULL, &h);
    CHECK(h.n == 1 && h.ng == 0);
    topic_tree_free(t); /* groups still holding members are freed too (ASan checks) */
}

static void test_tree_pruning(void)
{
    struct topic_tree *t = topic_tree_new();
    int a, b;
    bool rep;
    CHECK_EQ_INT(topic_tree_nodes(t), 0);
    topic_tree_subscribe(t, S("a/b/c/d"), NULL, 0, &a, 0, 0, &rep);
    CHECK_EQ_INT(topic_tree_nodes(t), 4);
    topic_tree_subscribe(t, S("a/b/+/#"), NULL, 0, &a, 0, 0, &rep);
    topic_tree_subscribe(t, S("a/b"), S("g"), &b, 0, 0, &rep);
    topic_tree_subscribe(t, S("a//x"), NULL, 0, &b, 0, 0, &rep);
    CHECK_EQ_INT(topic_tree_nodes(t), 8);
    /* A failed unsubscribe creates nothing. */
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("a/b/c/d/e/f"), NULL, 0, &a), -1);
    CHECK_EQ_INT(topic_tree_nodes(t), 8);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("a/b/c/d"), NULL, 0, &a), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 6); /* c and d gone, b kept (group, + child) */
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("a/b/+/#"), NULL, 0, &a), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 4);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("a/b"), S("g"), &b), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 3);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("a//x"), NULL, 0, &b), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 0);
    CHECK_EQ_INT(topic_tree_count(t), 0);
    struct hits h = match(t, "a/b/c/d");
    CHECK_EQ_INT(h.n, 0);
    topic_tree_free(t);
}

/* A topic of 32768 empty levels and filters 65536 levels deep: matching and freeing must not
 * depend on the stack (ASan would catch an overflow). */
static void test_tree_deep(void)
{
    enum { LEN = 65535 };
    char *slashes = malloc(LEN), *pluses = malloc(LEN);
    memset(slashes, '/', LEN);
    for (size_t i = 0; i < LEN; i++)
        pluses[i] = i % 2 ? '/' : '+';
    CHECK(topic_filter_valid(pluses, LEN) && topic_filter_valid(slashes, LEN));
    struct topic_tree *t = topic_tree_new();
    int a, b, c;
    bool rep;
    topic_tree_subscribe(t, pluses, LEN, NULL, 0, &a, 0, 0, &rep);
    topic_tree_subscribe(t, slashes, LEN, NULL, 0, &b, 0, 0, &rep);
    topic_tree_subscribe(t, slashes, 2, NULL, 0, &c, 0, 0, &rep);
    CHECK_EQ_INT(topic_tree_nodes(t), 32768 + 65536);
    struct hits h;
    memset(&h, 0, sizeof(h));
    topic_tree_match(t, slashes, 32767, on_hit, NULL, &h);
    CHECK(h.n == 1 && hit(&h, &a));
    memset(&h, 0, sizeof(h));
    topic_tree_match(t, slashes, LEN, on_hit, NULL, &h);
    CHECK(h.n == 1 && hit(&h, &b));
    CHECK(topic_matches(pluses, LEN, slashes, 32767));
    CHECK(!topic_matches(pluses, LEN, slashes, LEN));
    CHECK(topic_filter_covers(pluses, LEN, slashes, 32767));
    CHECK_EQ_INT(topic_tree_unsubscribe(t, slashes, LEN, NULL, 0, &b), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 32768 + 3);
    topic_tree_free(t);
    free(slashes);
    free(pluses);
}

/* 200 random filters, each with its own subscriber, against 400 random topics: the tree must
 * report exactly the filters topic_matches accepts, each once. */
static void test_tree_vs_bruteforce(void)
{
    static const char *const fl[] = {"a", "b", "", "$x", "+", "#"};
    static const char *const tl[] = {"a", "b", "", "$x", "c"};
    static char filters[200][40];
    int nf = 0;
    srand(42);
    struct topic_tree *t = topic_tree_new();
    while (nf < 200) {
        char f[40] = "";
        int depth = 1 + rand() % 5;
        for (int d = 0; d < depth; d++) {
            strcat(f, d ? "/" : "");
            strcat(f, fl[rand() % 6]);
        }
        if (!topic_filter_valid(S(f)))
            continue;
        strcpy(filters[nf], f);
        bool rep;
        topic_tree_subscribe(t, S(f), NULL, 0, filters[nf], (uint8_t)nf, 0, &rep);
        CHECK(!rep);
        nf++;
    }
    CHECK_EQ_INT(topic_tree_count(t), 200);
    int mismatches = 0, total = 0;
    for (int i = 0; i < 400; i++) {
        char topic[40] = "";
        int depth = 1 + rand() % 6;
        for (int d = 0; d < depth; d++) {
            strcat(topic, d ? "/" : "");
            strcat(topic, tl[rand() % 5]);
        }
        struct hits h = match(t, topic);
        int expect = 0;
        for (int k = 0; k < nf; k++) {
            if (topic_matches(S(filters[k]), S(topic))) {
                expect++;
                mismatches += !hit(&h, filters[k]);
            }
        }
        total += expect;
        if (h.n != expect && mismatches++ < 5)
            fprintf(stderr, "  tree match %s: %d != %d\n", topic, h.n, expect);
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(total > 400); /* the generator really produces matches */
    for (int k = 0; k < nf; k += 2)
        CHECK_EQ_INT(topic_tree_unsubscribe(t, S(filters[k]), NULL, 0, filters[k]), 0);
    CHECK_EQ_INT(topic_tree_count(t), 100);
    struct hits h = match(t, "a/b");
    for (int k = 0; k < nf; k++)
        if (topic_matches(S(filters[k]), S("a/b")))
            CHECK(hit(&h, filters[k]) == (k % 2 == 1));
    for (int k = 1; k < nf; k += 2)
        CHECK_EQ_INT(topic_tree_unsubscribe(t, S(filters[k]), NULL, 0, filters[k]), 0);
    CHECK_EQ_INT(topic_tree_count(t), 0);
    CHECK_EQ_INT(topic_tree_nodes(t), 0);
    topic_tree_free(t);
}

/* The watch reports a filter's (or a group's) first and last subscriber, nothing between. */
struct watch_log {
    char last[64];
    int adds, dels;
};

static void on_watch(void *ctx, const char *f, size_t flen, const char *g, size_t glen, bool add)
{
    struct watch_log *w = ctx;
    snprintf(w->last, sizeof(w->last), "%s%.*s%s%.*s", add ? "+" : "-", (int)flen, f, g ? "@" : "",
             (int)glen, g ? g : "");
    if (add)
        w->adds++;
    else
        w->dels++;
}

static void test_tree_watch(void)
{
    struct topic_tree *t = topic_tree_new();
    struct watch_log w = {0};
    topic_tree_set_watch(t, on_watch, &w);
    int a, b;
    bool rep;
    topic_tree_subscribe(t, S("x/#"), NULL, 0, &a, 0, 0, &rep);
    CHECK_EQ_STR(w.last, "+x/#");
    topic_tree_subscribe(t, S("x/#"), NULL, 0, &b, 0, 0, &rep);
    topic_tree_subscribe(t, S("x/#"), NULL, 0, &b, 1, 0, &rep);
    CHECK_EQ_INT(w.adds, 1);
    topic_tree_subscribe(t, S("x/#"), S("g"), &a, 0, 0, &rep);
    CHECK_EQ_STR(w.last, "+x/#@g");
    topic_tree_subscribe(t, S("x/#"), S("g"), &b, 0, 0, &rep);
    CHECK_EQ_INT(w.adds, 2);
    CHECK(topic_tree_group(t, S("x/#"), S("g")) != NULL);
    CHECK(topic_tree_group(t, S("x/#"), S("h")) == NULL);
    CHECK(topic_tree_group(t, S("x/y"), S("g")) == NULL);
    topic_tree_unsubscribe(t, S("x/#"), NULL, 0, &a);
    CHECK_EQ_INT(w.dels, 0);
    topic_tree_unsubscribe(t, S("x/#"), NULL, 0, &b);
    CHECK_EQ_STR(w.last, "-x/#");
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("x/#"), NULL, 0, &b), -1);
    topic_tree_unsubscribe(t, S("x/#"), S("g"), &a);
    CHECK_EQ_INT(w.dels, 1);
    topic_tree_unsubscribe(t, S("x/#"), S("g"), &b);
    CHECK_EQ_STR(w.last, "-x/#@g");
    CHECK_EQ_INT(w.adds, 2);
    CHECK_EQ_INT(w.dels, 2);
    topic_tree_free(t);
}

int main(void)
{
    test_validation();
    test_share_split();
    test_matching();
    test_relations();
    test_relations_exhaustive();
    test_tree_basic();
    test_tree_dollar();
    test_tree_groups();
    test_tree_pruning();
    test_tree_deep();
    test_tree_vs_bruteforce();
    test_tree_watch();
    return check_finish("topic_test");
}
