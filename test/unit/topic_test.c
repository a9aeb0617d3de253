/* topic: validation, matching rules ($, +, #), filter relations, the tree against brute force,
 * and the retained store. */
#include "check.h"
#include "retain.h"
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

static void test_validation(void)
{
    CHECK(topic_name_valid(S("a/b")));
    CHECK(topic_name_valid(S("/")));
    CHECK(!topic_name_valid(S("")));
    CHECK(!topic_name_valid(S("a/+")));
    CHECK(!topic_name_valid(S("a#")));
    CHECK(topic_filter_valid(S("#")));
    CHECK(topic_filter_valid(S("+/a/+/#")));
    CHECK(topic_filter_valid(S("a//b")));
    CHECK(!topic_filter_valid(S("a/#/b")));
    CHECK(!topic_filter_valid(S("a+")));
    CHECK(!topic_filter_valid(S("a/b#")));
    CHECK_EQ_INT(topic_levels(S("a/b/c")), 3);
    CHECK_EQ_INT(topic_levels(S("/")), 2);
    const char *g, *f;
    size_t gl, fl;
    CHECK_EQ_INT(topic_share_split(S("$share/grp/a/#"), &g, &gl, &f, &fl), 1);
    CHECK(gl == 3 && !memcmp(g, "grp", 3) && fl == 3 && !memcmp(f, "a/#", 3));
    CHECK_EQ_INT(topic_share_split(S("$share//a"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/g+/a"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("$share/g"), &g, &gl, &f, &fl), -1);
    CHECK_EQ_INT(topic_share_split(S("a/b"), &g, &gl, &f, &fl), 0);
}

static void test_matching(void)
{
    CHECK(topic_matches(S("a/#"), S("a")));
    CHECK(topic_matches(S("a/#"), S("a/b/c")));
    CHECK(topic_matches(S("a/+"), S("a/")));
    CHECK(!topic_matches(S("a/+"), S("a/b/c")));
    CHECK(topic_matches(S("+/+"), S("/x")));
    CHECK(!topic_matches(S("#"), S("$SYS/x")));
    CHECK(!topic_matches(S("+/x"), S("$SYS/x")));
    CHECK(topic_matches(S("$SYS/#"), S("$SYS/x")));
    CHECK(topic_filters_intersect(S("a/+/c"), S("a/b/#")));
    CHECK(!topic_filters_intersect(S("a/+/c"), S("a/b/d")));
    CHECK(topic_filters_intersect(S("#"), S("a")));
    CHECK(!topic_filters_intersect(S("#"), S("$SYS/#")));
    CHECK(topic_filters_intersect(S("$SYS/#"), S("$SYS/+/x")));
    CHECK(topic_filter_covers(S("a/#"), S("a/+/b")));
    CHECK(!topic_filter_covers(S("a/+"), S("a/#")));
    CHECK(topic_filter_covers(S("a/+"), S("a/b")));
    CHECK(!topic_filter_covers(S("#"), S("$SYS/#")));
    CHECK(!topic_filter_covers(S("a/b"), S("a/+")));
}

struct hits {
    void *subs[64];
    int n;
};

static void on_hit(void *ctx, const struct topic_sub *s)
{
    struct hits *h = ctx;
    h->subs[h->n++] = s->subscriber;
}

static void on_group(void *ctx, struct topic_group *g)
{
    struct hits *h = ctx;
    h->subs[h->n++] = (void *)g;
}

static void test_tree_vs_bruteforce(void)
{
    static const char *levels[] = {"a", "b", "", "$x", "+", "#"};
    char filters[200][32];
    int nf = 0;
    srand(42);
    struct topic_tree *t = topic_tree_new();
    while (nf < 200) {
        char f[32] = "";
        int depth = 1 + rand() % 4;
        for (int d = 0; d < depth; d++) {
            const char *l = levels[rand() % 6];
            if (!strcmp(l, "#") && d != depth - 1)
                l = "+";
            if (!strcmp(l, "$x") && d != 0)
                l = "a";
            strcat(f, d ? "/" : "");
            strcat(f, l);
        }
        if (!topic_filter_valid(S(f)))
            continue;
        strcpy(filters[nf], f);
        bool rep;
        topic_tree_subscribe(t, S(f), NULL, 0, filters[nf], 0, 0, &rep);
        nf++;
    }
    static const char *tl[] = {"a", "b", "", "$x"};
    for (int i = 0; i < 300; i++) {
        char topic[32] = "";
        int depth = 1 + rand() % 4;
        for (int d = 0; d < depth; d++) {
            const char *l = tl[rand() % 4];
            if (d && !strcmp(l, "$x"))
                l = "b";
            strcat(topic, d ? "/" : "");
            strcat(topic, l);
        }
        struct hits h = {.n = 0};
        topic_tree_match(t, S(topic), on_hit, NULL, &h);
        int expect = 0;
        for (int k = 0; k < nf; k++) {
            /* duplicates of a filter share one tree entry per subscriber pointer */
            if (topic_matches(S(filters[k]), S(topic)))
                expect++;
        }
        CHECK_EQ_INT(h.n, expect);
    }
    CHECK_EQ_INT(topic_tree_count(t), 200);
    for (int k = 0; k < nf; k++)
        CHECK_EQ_INT(topic_tree_unsubscribe(t, S(filters[k]), NULL, 0, filters[k]), 0);
    CHECK_EQ_INT(topic_tree_count(t), 0);
    topic_tree_free(t);
}

static void test_groups(void)
{
    struct topic_tree *t = topic_tree_new();
    int a, b;
    bool rep;
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &a, 1, 0, &rep);
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &b, 1, 0, &rep);
    topic_tree_subscribe(t, S("jobs/#"), S("workers"), &b, 2, 0, &rep);
    CHECK(rep);
    struct hits h = {.n = 0};
    topic_tree_match(t, S("jobs/1"), on_hit, on_group, &h);
    CHECK_EQ_INT(h.n, 1);
    struct topic_group *g = h.subs[0];
    CHECK_EQ_INT(topic_group_size(g), 2);
    CHECK(topic_group_member(g, 1)->subscriber == &b);
    CHECK_EQ_INT(topic_group_member(g, 1)->options, 2);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("workers"), &a), 0);
    CHECK_EQ_INT(topic_tree_unsubscribe(t, S("jobs/#"), S("workers"), &a), -1);
    CHECK_EQ_INT(topic_tree_count(t), 1);
    topic_tree_free(t);
}

static int seen;
static void count_msg(void *ctx, struct msg *m)
{
    seen++;
}

static struct msg *mk(const char *topic, const char *payload)
{
    struct mqtt_publish p = {0};
    p.retain = true;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    return msg_new(topic, strlen(topic), &p, 0, 1);
}

static void test_retain(void)
{
    struct retain *r = retain_new();
    const char *topics[] = {"a", "a/b", "a/b/c", "x/b", "$SYS/up"};
    struct msg *ms[5];
    for (int i = 0; i < 5; i++) {
        ms[i] = mk(topics[i], "v");
        retain_set(r, ms[i]);
    }
    CHECK_EQ_INT(retain_count(r), 5);
    struct {
        const char *f;
        int n;
    } cases[] = {{"#", 4},      {"a/#", 3},  {"+/b", 2}, {"a/+/c", 1},
                 {"$SYS/#", 1}, {"+/up", 0}, {"a", 1},   {"nope/#", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        seen = 0;
        retain_match(r, S(cases[i].f), count_msg, NULL);
        if (seen != cases[i].n)
            fprintf(stderr, "  filter %s\n", cases[i].f);
        CHECK_EQ_INT(seen, cases[i].n);
    }
    CHECK_EQ_INT(ms[1]->refs, 2);
    struct msg *clear = mk("a/b", "");
    retain_set(r, clear);
    CHECK_EQ_INT(ms[1]->refs, 1);
    CHECK_EQ_INT(retain_count(r), 4);
    struct msg *again = mk("a/b/c", "new");
    retain_set(r, again);
    CHECK_EQ_INT(ms[2]->refs, 1);
    retain_free(r);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(ms[i]->refs, 1);
        msg_unref(ms[i]);
    }
    CHECK_EQ_INT(again->refs, 1);
    msg_unref(again);
    msg_unref(clear);
}

int main(void)
{
    test_validation();
    test_matching();
    test_tree_vs_bruteforce();
    test_groups();
    test_retain();
    return check_finish("topic_test");
}
