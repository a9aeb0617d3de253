/* retain: set/replace/clear, matching with `#`, `+` and `$` topics, pruning, references held
 * and released (checked through msg refcounts), very deep topics, and a randomized cross-check
 * of retain_match against topic_matches. */
#include "check.h"
#include "retain.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

struct seen {
    struct msg *m[64];
    int n;
};

static void on_each(void *ctx, struct msg *m)
{
    struct seen *s = ctx;
    if (s->n < 64)
        s->m[s->n] = m;
    s->n++;
}

static bool on_msg(void *ctx, struct msg *m)
{
    on_each(ctx, m);
    return true;
}

/* The same walk in steps of `budget` nodes. */
static struct seen match_steps(const struct retain *r, const char *f, size_t budget)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct retain_cursor cur = {0};
    int steps = 0;
    while (!retain_match_step(r, S(f), &cur, budget, on_msg, &s))
        steps++;
    CHECK(steps < 10000);
    retain_cursor_free(&cur);
    return s;
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
    retain_foreach(r, on_each, &all);
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
        struct seen s1 = match_steps(r, f, 1), s3 = match_steps(r, f, 3);
        if ((s1.n != s.n || s3.n != s.n) && bad++ < 5)
            fprintf(stderr, "  retain_match_step %s: %d, %d != %d\n", f, s1.n, s3.n, s.n);
        for (int k = 0; k < s.n && k < 64; k++)
            if (!has(&s1, s.m[k]) || !has(&s3, s.m[k]))
                bad++;
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

static bool stop_after_two(void *ctx, struct msg *m)
{
    struct seen *s = ctx;
    on_each(s, m);
    return s->n < 2;
}

/* The callback returning false ends the walk at once, in one call or in steps. */
static void test_early_stop(void)
{
    struct retain *r = retain_new();
    struct msg *ms[6];
    char t[8];
    for (int i = 0; i < 6; i++) {
        snprintf(t, sizeof(t), "s/%d", i);
        ms[i] = mk(S(t), "v");
        retain_set(r, ms[i], NULL);
    }
    struct seen s;
    memset(&s, 0, sizeof(s));
    retain_match(r, S("s/+"), stop_after_two, &s);
    CHECK_EQ_INT(s.n, 2);
    memset(&s, 0, sizeof(s));
    struct retain_cursor cur = {0};
    CHECK(!retain_match_step(r, S("#"), &cur, 2, stop_after_two, &s)); /* s, s/0: budget out */
    CHECK_EQ_INT(s.n, 1);
    CHECK(retain_match_step(r, S("#"), &cur, 100, stop_after_two, &s)); /* s/1: stop */
    CHECK_EQ_INT(s.n, 2);
    CHECK(cur.done);
    CHECK(retain_match_step(r, S("#"), &cur, 100, stop_after_two, &s)); /* stays over */
    CHECK_EQ_INT(s.n, 2);
    retain_cursor_free(&cur);
    retain_free(r);
    for (int i = 0; i < 6; i++)
        msg_unref(ms[i]);
}

/* A paused walk survives the tree changing under it: the node it would resume at is cleared
 * (and its branch pruned), others are added. It goes on after the cleared node, sees every
 * message that stayed exactly once, and none stored after it began. */
static void test_step_with_changes(void)
{
    struct retain *r = retain_new();
    static const char *const topics[] = {"p/a/1", "p/b/1", "p/c/1", "p/d/1", "q/a/1"};
    enum { N = 5 };
    struct msg *ms[N];
    for (int i = 0; i < N; i++) {
        ms[i] = mk(S(topics[i]), "v");
        retain_set(r, ms[i], NULL);
    }
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct retain_cursor cur = {0};
    /* Nodes in walk order: p, p/a, p/a/1, p/b, p/b/1, p/c ... four steps stop before p/b/1. */
    CHECK(!retain_match_step(r, S("+/+/1"), &cur, 4, on_msg, &s));
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(cur.depth, 3);
    struct msg *clear = mk(S("p/b/1"), ""), *late = mk(S("p/e/1"), "v"),
               *again = mk(S("p/b/1"), "w");
    retain_set(r, clear, NULL); /* prunes p/b and p/b/1 */
    retain_set(r, late, NULL);
    retain_set(r, again, NULL); /* p/b again, newer than the walk */
    while (!retain_match_step(r, S("+/+/1"), &cur, 1, on_msg, &s))
        ;
    retain_cursor_free(&cur);
    CHECK_EQ_INT(s.n, 4);
    CHECK(has(&s, ms[0]) && has(&s, ms[2]) && has(&s, ms[3]) && has(&s, ms[4]));
    CHECK(!has(&s, late) && !has(&s, again));
    /* Resuming where the saved node's parent is gone too. */
    memset(&s, 0, sizeof(s));
    CHECK(!retain_match_step(r, S("#"), &cur, 2, on_msg, &s)); /* p, p/a: next p/a/1 */
    struct msg *clear_a = mk(S("p/a/1"), "");
    retain_set(r, clear_a, NULL);
    while (!retain_match_step(r, S("#"), &cur, 2, on_msg, &s))
        ;
    retain_cursor_free(&cur);
    CHECK_EQ_INT(s.n, 5); /* p/c/1 p/d/1 p/e/1 p/b/1 q/a/1 */
    CHECK(!has(&s, ms[0]));
    retain_free(r);
    struct msg *all[] = {ms[0], ms[1], ms[2], ms[3], ms[4], clear, late, again, clear_a};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        CHECK_EQ_INT(all[i]->refs, 1);
        msg_unref(all[i]);
    }
}

int main(void)
{
    test_early_stop();
    test_step_with_changes();
    test_match();
    test_set_clear();
    test_deep();
    test_vs_bruteforce();
    return check_finish("retain_test");
}
