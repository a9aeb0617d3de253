/* subject: round trips of awkward topics, the canonical-form decoder, length bounds, and the
 * wildcard semantics of the encoded filters checked with a small NATS subject matcher against
 * the broker's own topic_matches over many random topic/filter pairs. */
#include "check.h"
#include "nats_match.h"
#include "subject.h"
#include "topic.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)
#define P "cmq.c1"

static char buf[300000], back[300000];

static void roundtrip(const char *t, size_t len)
{
    int n = subject_from_topic(P, t, len, 1, 7, buf, sizeof(buf));
    CHECK(n > 0);
    if (n <= 0)
        return;
    CHECK_EQ_INT(strlen(buf), n);
    /* Every token non-empty and free of what NATS reserves. */
    CHECK(!strpbrk(buf, " \t\r\n*>") && !strstr(buf, ".."));
    CHECK(buf[n - 1] != '.');
    unsigned q = 9, part = 9;
    int m = subject_to_topic(P, buf, (size_t)n, back, sizeof(back), &q, &part);
    CHECK_EQ_INT(m, len);
    CHECK(m >= 0 && memcmp(back, t, len) == 0);
    CHECK_EQ_INT(q, 1);
    CHECK_EQ_INT(part, 7);
}

static void test_roundtrip(void)
{
    static const char *const corpus[] = {"a/b/c",
                                         "a.b",
                                         "a*b/>",
                                         ".",
                                         "*",
                                         ">",
                                         "a b\tc",
                                         "a//b",
                                         "/lead",
                                         "trail/",
                                         "/",
                                         "//",
                                         "=",
                                         "=3D",
                                         "$SYS/broker/load",
                                         "$",
                                         "x/$y",
                                         "h\xc3\xa9llo/\xe2\x82\xac/\xf0\x9f\x98\x80",
                                         "ctl\x01\x7f\x1b",
                                         "%41",
                                         "A-Z_a-z0-9",
                                         "+",
                                         "#",
                                         "a/+/#",
                                         "\xff\xfe"};
    for (size_t i = 0; i < sizeof(corpus) / sizeof(*corpus); i++)
        roundtrip(S(corpus[i]));
    roundtrip("", 0);
    roundtrip("a\0b", 3);
    /* Every single byte, and every byte as a whole level between others. */
    for (int c = 0; c < 256; c++) {
        char one[5] = {(char)c, 'x', '/', (char)c, '/'};
        roundtrip(one, 1);
        roundtrip(one, 5);
    }
    /* A 65535-byte topic of awkward bytes fits a big enough buffer. */
    static char big[65535];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "a/.b*"[i % 5];
    roundtrip(big, sizeof(big));
}

static void test_layout(void)
{
    CHECK_EQ_INT(subject_from_topic(P, S("a.b/"), 0, 3, buf, sizeof(buf)), 20);
    CHECK_EQ_STR(buf, "cmq.c1.t.0.3.a=2Eb.=");
    subject_from_topic(P, S("$SYS/x"), 2, 0, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "cmq.c1.d.2.0.=24SYS.x");
    size_t lens[2];
    CHECK_EQ_INT(subject_from_filter(P, S("a/+/#"), buf, sizeof(buf), lens), 2);
    CHECK_EQ_STR(buf, "cmq.c1.t.*.*.a.*.>");
    CHECK_EQ_STR(buf + lens[0] + 1, "cmq.c1.t.*.*.a.*");
    CHECK_EQ_INT(lens[1], strlen("cmq.c1.t.*.*.a.*"));
    CHECK_EQ_INT(subject_from_filter(P, S("#"), buf, sizeof(buf), lens), 1);
    CHECK_EQ_STR(buf, "cmq.c1.t.*.*.>");
    CHECK_EQ_INT(subject_from_filter(P, S("+/x"), buf, sizeof(buf), lens), 1);
    CHECK_EQ_STR(buf, "cmq.c1.t.*.*.*.x");
    CHECK_EQ_INT(subject_from_filter(P, S("$SYS/#"), buf, sizeof(buf), lens), 2);
    CHECK_EQ_STR(buf, "cmq.c1.d.*.*.=24SYS.>");
    CHECK_EQ_INT(subject_from_filter(P, S("a/b#"), buf, sizeof(buf), lens), SUBJECT_INVALID);
    CHECK_EQ_INT(subject_from_filter(P, S("a/#/b"), buf, sizeof(buf), lens), SUBJECT_INVALID);
    CHECK_EQ_INT(subject_from_filter(P, "", 0, buf, sizeof(buf), lens), SUBJECT_INVALID);
    CHECK(subject_queue_name(S("g"), S("a/+"), buf, sizeof(buf)) > 0);
    CHECK_EQ_STR(buf, "share.g.a.=2B");
    char q2[64];
    subject_queue_name(S("g.a"), S("+"), q2, sizeof(q2));
    CHECK(strcmp(buf, q2) != 0);
}

static void test_bounds(void)
{
    char small[24];
    CHECK_EQ_INT(subject_from_topic(P, S("abcdefghij"), 0, 0, small, sizeof(small)), 23);
    CHECK_EQ_INT(subject_from_topic(P, S("abcdefghijk"), 0, 0, small, sizeof(small)),
                 SUBJECT_TOO_LONG);
    CHECK_EQ_INT(subject_from_topic(P, S("abcdefghi."), 0, 0, small, sizeof(small)),
                 SUBJECT_TOO_LONG);
    size_t lens[2];
    /* The parent subject must fit too. */
    CHECK_EQ_INT(subject_from_filter(P, S("ab/#"), small, sizeof(small), lens), SUBJECT_TOO_LONG);
    CHECK_EQ_INT(subject_from_filter(P, S("ab/#"), buf, 40, lens), 2);
    CHECK_EQ_INT(subject_from_topic(P, S("a"), 0, 0, small, 0), SUBJECT_TOO_LONG);
}

static void test_decode_rejects(void)
{
    static const char *const bad[] = {
        "cmq.c1.t.0.0.",   "cmq.c1.t.0.0",         "cmq.c1.x.0.0.a",   "cmq.c1.t.3.0.a",
        "cmq.c1.t.0.01.a", "cmq.c1.t.0.0.a..b",    "cmq.c1.t.0.0.=41", "cmq.c1.t.0.0.=2e",
        "cmq.c1.t.0.0.=2", "cmq.c1.t.0.0.a=",      "cmq.c1.t.0.0.a b", "cmq.c1.t.0.0.*",
        "cmq.c1.t.0.0.>",  "cmq.c1.t.0.0.=24x",    "cmq.c1.d.0.0.x",   "cmq.c2.t.0.0.a",
        "cmq.c1.t.0.0.a.", "cmq.c1.t.*.*.a",       "cmq.c1",           "cmq.c1.t.0.1234567890.a",
        "cmq.c1.t.0.0.==", "cmq.c1.t.0.0.\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int r = subject_to_topic(P, S(bad[i]), back, sizeof(back), NULL, NULL);
        if (r != SUBJECT_INVALID)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK_EQ_INT(r, SUBJECT_INVALID);
    }
    CHECK_EQ_INT(subject_to_topic(P, S("cmq.c1.t.0.0.=.="), back, sizeof(back), NULL, NULL), 1);
    CHECK_EQ_INT(subject_to_topic(P, S("cmq.c1.t.0.0.abc"), back, 2, NULL, NULL), SUBJECT_INVALID);
}

static bool encoded_match(const char *f, const char *t)
{
    static char fs[4096], ts[4096];
    size_t lens[2];
    int n = subject_from_filter(P, S(f), fs, sizeof(fs), lens);
    if (subject_from_topic(P, S(t), 2, 5, ts, sizeof(ts)) < 0 || n < 1)
        return false;
    bool hit = nats_match(fs, ts);
    /* Never both: one subscription per message, so no duplicate from the pair itself. */
    if (n == 2) {
        bool hit2 = nats_match(fs + lens[0] + 1, ts);
        CHECK(!(hit && hit2));
        hit |= hit2;
    }
    return hit;
}

static void test_wildcards_vs_topic_matches(void)
{
    static const char *const fl[] = {"a", "b", "", "$x", "$SYS", "+", "#", "a.b", "*", ">", " "};
    static const char *const tl[] = {"a", "b", "", "$x", "$SYS", "c", "a.b", "*", ">", " "};
    srand(7);
    int mismatches = 0, matches = 0, total = 0;
    for (int i = 0; i < 200000; i++) {
        char f[64] = "", t[64] = "";
        int fd = 1 + rand() % 4, td = 1 + rand() % 5;
        for (int d = 0; d < fd; d++) {
            strcat(f, d ? "/" : "");
            strcat(f, fl[rand() % 11]);
        }
        for (int d = 0; d < td; d++) {
            strcat(t, d ? "/" : "");
            strcat(t, tl[rand() % 10]);
        }
        if (!topic_filter_valid(S(f)) || !topic_name_valid(S(t)))
            continue;
        total++;
        bool want = topic_matches(S(f), S(t)), got = encoded_match(f, t);
        matches += want;
        if (want != got && mismatches++ < 5)
            fprintf(stderr, "  filter '%s' topic '%s': mqtt %d nats %d\n", f, t, want, got);
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(total > 50000 && matches > 5000);
    CHECK(encoded_match("a/#", "a"));
    CHECK(!encoded_match("#", "$SYS/x"));
    CHECK(!encoded_match("+/x", "$SYS/x"));
    CHECK(encoded_match("$SYS/#", "$SYS/x"));
    CHECK(encoded_match("+/+", "/"));
}

/* Cluster and node names are one subject token each. */
static void test_names(void)
{
    CHECK(subject_name_ok("node-1_A", 8, 64));
    CHECK(!subject_name_ok("", 0, 64));
    CHECK(!subject_name_ok("node.1", 6, 64));
    CHECK(!subject_name_ok("node 1", 6, 64));
    CHECK(!subject_name_ok("n*", 2, 64));
    CHECK(!subject_name_ok("abc", 3, 2));
    CHECK(subject_name_ok("ab", 2, 2));
}

int main(void)
{
    test_names();
    test_roundtrip();
    test_layout();
    test_bounds();
    test_decode_rejects();
    test_wildcards_vs_topic_matches();
    return check_finish("subject");
}
