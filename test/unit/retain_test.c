/* retain: set/replace/clear, matching with `#`, `+` and `$` topics, pruning, references held
 * and released (checked through msg refcounts), very deep topics, and a randomized cross-check
 * of retain_match against topic_matches. */
#include "check.h"
#include "retain.h"
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

struct seen {
    struct msg *m[64];
    int n;
};

static void on_msg(void *ctx, struct msg *m)
{
    struct seen *s = ctx;
    if (s->n < 64)
        s->m[s->n] = m;
    s->n++;
}

static struct msg *mk(const char *topic, size_t tlen, const char *payload)
{
    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.retain = true;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    return msg_new(topic, tlen, &p, 0, 1);
}

static struct seen match(const struct retain *r, const char *f)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    retain_match(r, S(f), on_msg, &s);
    return s;
}

static bool has(const struct seen *s, const struct msg *m)
{
    for (int i = 0; i < s->n && i < 64; i++)
        if (s->m[i] == m)
            return true;
    return false;
}

static void test_match(void)
{
    struct retain *r = retain_new();
    static const char *const topics[] = {"a", "a/b", "a/b/c", "x/b", "$SYS/up", "/", "a//c", "$"};
    enum { N = sizeof(topics) / sizeof(topics[0]) };
    struct msg *ms[N];
    for (int i = 0; i < N; i++) {
        ms[i] = mk(S(topics[i]), "v");
        retain_set(r, ms[i], NULL);
    }
    CHECK_EQ_INT(retain_count(r), N);
    static const struct {
        const char *f;
        int n;
    } cases[] = {
        {"#", 6},     {"a/#", 4},     {"+/b", 2}, {"a/+/c", 2}, {"$SYS/#", 1},  {"+/up", 0},
        {"a", 1},     {"nope/#", 0},  {"+", 1},   {"+/+", 3},   {"/#", 1},      {"+/#", 6},
        {"$SYS", 0},  {"$SYS/+", 1},  {"$", 1},   {"a/b/#", 2}, {"a/b/c/#", 1}, {"a//+", 1},
        {"+/+/+", 2}, {"a/b/c/d", 0}, {"$+", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!topic_filter_valid(S(cases[i].f)))
            continue;
        struct seen s = match(r, cases[i].f);
        int expect = 0;
        for (int k = 0; k < N; k++) {
            bool want = topic_matches(S(cases[i].f), S(topics[k]));
            expect += want;
            CHECK(has(&s, ms[k]) == want);
        }
        if (s.n != cases[i].n || s.n != expect)
            fprintf(stderr, "  filter %s: %d\n", cases[i].f, s.n);
        CHECK_EQ_INT(s.n, cases[i].n);
    }
    struct seen all;
    memset(&all, 0, sizeof(all));
    retain_foreach(r, on_msg, &all);
    CHECK_EQ_INT(all.n, N);
    for (int k = 0; k < N; k++)
        CHECK(has(&all, ms[k]));
    all.n = 0;
    retain_match(r, "", 0, on_msg, &all);
    CHECK_EQ_INT(all.n, 0);
    retain_free(r);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(ms[i]->refs, 1);
        msg_unref(ms[i]);
    }
}

static void test_set_clear(void)
{
    struct retain *r = retain_new();
    struct msg *a = mk(S("a/b/c"), "1"), *b = mk(S("a/b/c"), "2"), *c = mk(S("a/x"), "3");
    retain_set(r, a, NULL);
    CHECK_EQ_INT(a->refs, 2);
    retain_set(r, a, NULL); /* the same message again: still one reference held */
    CHECK_EQ_INT(a->refs, 2);
    retain_set(r, b, NULL);
    CHECK_EQ_INT(a->refs, 1);
    CHECK_EQ_INT(b->refs, 2);
    retain_set(r, c, NULL);
    CHECK_EQ_INT(retain_count(r), 2);
    CHECK_EQ_INT(retain_nodes(r), 4); /* a, b, c, x */
    struct seen s = match(r, "a/b/c");
    CHECK(s.n == 1 && s.m[0] == b);

    /* Clearing prunes exactly the branch that held nothing else. */
    struct msg *clear = mk(S("a/b/c"), "");
    retain_set(r, clear, NULL);
    CHECK_EQ_INT(clear->refs, 1);
    CHECK_EQ_INT(b->refs, 1);
    CHECK_EQ_INT(retain_count(r), 1);
    CHECK_EQ_INT(retain_nodes(r), 2);
    retain_set(r, clear, NULL); /* clearing what is not there is a no-op */
    struct msg *clear2 = mk(S("q/r"), "");
    retain_set(r, clear2, NULL);
    CHECK_EQ_INT(retain_count(r), 1);
    CHECK_EQ_INT(retain_nodes(r), 2);
    s = match(r, "#");
    CHECK(s.n == 1 && s.m[0] == c);

    /* An inner node with a message keeps its place when its children go. */
    struct msg *mid = mk(S("a"), "m"), *deep = mk(S("a/y/z"), "d");
    retain_set(r, mid, NULL);
    retain_set(r, deep, NULL);
    CHECK_EQ_INT(retain_nodes(r), 4);
    struct msg *cd = mk(S("a/y/z"), "");
    retain_set(r, cd, NULL);
    CHECK_EQ_INT(retain_nodes(r), 2);
    CHECK_EQ_INT(deep->refs, 1);
    struct msg *cx = mk(S("a/x"), "");
    retain_set(r, cx, NULL);
    CHECK_EQ_INT(retain_nodes(r), 1);
    s = match(r, "a/#");
    CHECK(s.n == 1 && s.m[0] == mid);
    struct msg *cm = mk(S("a"), "");
    retain_set(r, cm, NULL);
    CHECK_EQ_INT(retain_nodes(r), 0);
    CHECK_EQ_INT(retain_count(r), 0);
    CHECK_EQ_INT(c->refs, 1);
    CHECK_EQ_INT(mid->refs, 1);
    retain_free(r);
    retain_free(NULL);
    struct msg *all[] = {a, b, c, clear, clear2, mid, deep, cd, cx, cm};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        CHECK_EQ_INT(all[i]->refs, 1);
        msg_unref(all[i]);
    }
}

/* 65536 empty levels: set, match with `#` and with many `+`, free, all without recursion. */
static void test_deep(void)
{
    enum { LEN = 65535 };
    char *slashes = malloc(LEN), *pluses = malloc(LEN);
    memset(slashes, '/', LEN);
    for (size_t i = 0; i < LEN; i++)
        pluses[i] = i % 2 ? '/' : '+';
    struct retain *r = retain_new();
    struct msg *m = mk(slashes, LEN, "x"), *half = mk(slashes, 32767, "y");
    retain_set(r, m, NULL);
    retain_set(r, half, NULL);
    CHECK_EQ_INT(retain_nodes(r), 65536);
    struct seen s;
    memset(&s, 0, sizeof(s));
    retain_match(r, S("#"), on_msg, &s);
    CHECK_EQ_INT(s.n, 2);
    memset(&s, 0, sizeof(s));
    retain_match(r, pluses, LEN, on_msg, &s);
    CHECK(s.n == 1 && s.m[0] == half);
    memset(&s, 0, sizeof(s));
    retain_match(r, slashes, LEN, on_msg, &s);
    CHECK(s.n == 1 && s.m[0] == m);
    retain_free(r);
    CHECK_EQ_INT(m->refs, 1);
    msg_unref(m);
    msg_unref(half);
    free(slashes);
    free(pluses);
}

/* Random retained topics against random filters: retain_match must return exactly the
 * messages whose topic topic_matches accepts. */
static void test_vs_bruteforce(void)
{
    static const char *const tl[] = {"a", "b", "", "$x"};
    static const char *const fl[] = {"a", "b", "", "$x", "+", "#"};
    static struct msg *ms[150];
    struct retain *r = retain_new();
    srand(7);
    int n = 0;
    while (n < 150) {
        char t[40] = "";
        int depth = 1 + rand() % 5;
        for (int d = 0; d < depth; d++) {
            strcat(t, d ? "/" : "");
            strcat(t, tl[rand() % 4]);
        }
        struct seen s = match(r, t);
        if (!topic_name_valid(S(t)) || s.n) /* keep one message per topic */
            continue;
        ms[n] = mk(S(t), "p");
        retain_set(r, ms[n++], NULL);
    }
    CHECK_EQ_INT(retain_count(r), 150);
    int bad = 0, total = 0;
    for (int i = 0; i < 300; i++) {
        char f[40] = "";
        int depth = 1 + rand() % 5;
        for (int d = 0; d < depth; d++) {
            strcat(f, d ? "/" : "");
            strcat(f, fl[rand() % 6]);
        }
        if (!topic_filter_valid(S(f)))
            continue;
        struct seen s = match(r, f);
        int expect = 0;
        for (int k = 0; k < n; k++) {
            bool want = topic_matches(S(f), ms[k]->topic, ms[k]->topic_len);
            expect += want;
            if (want && s.n <= 64 && !has(&s, ms[k]))
                bad++;
        }
        total += expect;
        if (s.n != expect && bad++ < 5)
            fprintf(stderr, "  retain_match %s: %d != %d\n", f, s.n, expect);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(total > 300);
    retain_free(r);
    for (int k = 0; k < n; k++) {
        CHECK_EQ_INT(ms[k]->refs, 1);
        msg_unref(ms[k]);
    }
}

int main(void)
{
    test_match();
    test_set_clear();
    test_deep();
    test_vs_bruteforce();
    return check_finish("retain_test");
}
