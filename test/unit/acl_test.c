/* acl: parsing (every error with its file:line, all of them at once), warnings, per-client
 * compilation (%u/%c, unsafe client ids), evaluation (deny first, access bits, default deny,
 * the $ rule), subscribe checks, acl_load limits, and the hashed evaluator against a brute-force
 * reference. */
#include "acl.h"
#include "check.h"
#include "topic.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(x) x, strlen(x)

static struct acl *parse(const char *text, struct diag *d, struct diag *w)
{
    return acl_parse(text, strlen(text), "test.acl", d, w);
}

/* Is there a message starting with prefix? (Exact file:line position, then the reason.) */
static bool has(const struct diag *d, const char *prefix)
{
    for (size_t i = 0; i < d->count; i++)
        if (!strncmp(d->msgs[i], prefix, strlen(prefix)))
            return true;
    return false;
}

static void test_parse_valid(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    const char *text = "# fleet ACL\r\n"
                       "\r\n"
                       "   # indented comment\n"
                       "pattern readwrite devices/%u/#\r\n"
                       "\tpattern read fleet/#  \n"
                       "pattern write rates/50%/x\n" /* '%' + non-letter is literal */
                       "user ops team\r\n"           /* names may contain spaces */
                       "topic read   room/living room/temp\n"
                       "topic ops/#\n" /* access omitted = readwrite */
                       "user dashboard\n"
                       "topic deny ops/secret\n"
                       "user ops team\n"    /* blocks for one user accumulate */
                       "topic write cmd/#"; /* no final newline */
    struct acl *a = parse(text, &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(d.count, 0);
    CHECK_EQ_INT(w.count, 0);
    CHECK_EQ_INT(acl_rule_count(a), 7);
    struct acl_client *ops = acl_compile(a, "ops team", "c");
    CHECK_EQ_INT(acl_client_rule_count(ops), 3 + 3);
    CHECK(acl_check(ops, S("room/living room/temp"), ACL_READ));
    CHECK(!acl_check(ops, S("room/living room/temp"), ACL_WRITE));
    CHECK(acl_check(ops, S("ops/secret"), ACL_WRITE)); /* dashboard's deny is not ops' */
    CHECK(acl_check(ops, S("ops/x"), ACL_READ));
    CHECK(acl_check(ops, S("cmd/reboot"), ACL_WRITE));
    CHECK(!acl_check(ops, S("cmd/reboot"), ACL_READ));
    CHECK(acl_check(ops, S("rates/50%/x"), ACL_WRITE));
    CHECK(acl_check(ops, S("devices/ops team/t"), ACL_WRITE));
    acl_client_free(ops);
    acl_free(a);

    /* An empty file (or only comments) is valid and denies everything. */
    a = parse("# nothing\n\n", &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(acl_rule_count(a), 0);
    struct acl_client *c = acl_compile(a, "device-001", "x");
    CHECK_EQ_INT(acl_client_rule_count(c), 0);
    CHECK(!acl_check(c, S("a"), ACL_READ));
    CHECK(!acl_check(c, S("a"), ACL_WRITE));
    CHECK(!acl_check_subscribe(c, S("#")));
    acl_client_free(c);
    acl_free(a);
    a = acl_parse("", 0, "empty.acl", &d, &w);
    CHECK(a != NULL);
    acl_free(a);
    CHECK_EQ_INT(d.count, 0);
    diag_free(&d);
    diag_free(&w);
}

static void test_parse_errors(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    const char *text = "# comment\r\n"                        /* 1 */
                       "user dev 1\n"                         /* 2 */
                       "topic read a/#\n"                     /* 3 ok */
                       "topic banana a\n"                     /* 4 */
                       "pattern read a/x%u\n"                 /* 5 */
                       "pattern read a/%q\n"                  /* 6 */
                       "frobnicate x\n"                       /* 7 */
                       "topic read a/#/b\n"                   /* 8 */
                       "topic read\n"                         /* 9 */
                       "user\n"                               /* 10 */
                       "topic\r\n"                            /* 11 */
                       "pattern deny %c/%ux\n"                /* 12 */
                       "pattern read a/%U\n"                  /* 13 */
                       "topic write a+/b\n"                   /* 14 */
                       "topic read caf\xc3/x\n"               /* 15 */
                       "user \xff\xfe\n"                      /* 16 */
                       "pattern readwrite devices/%u/#\n"     /* 17 ok */
                       "Topic read a\n"                       /* 18: keywords are case-sensitive */
                       "topic read a/b # trailing comment\n"; /* 19: no trailing comments */
    CHECK(parse(text, &d, &w) == NULL);
    CHECK_EQ_INT(d.count, 15);
    CHECK(has(&d, "test.acl:4: bad access 'banana'"));
    CHECK(has(&d, "test.acl:5: %u and %c must be a whole topic level"));
    CHECK(has(&d, "test.acl:6: unknown substitution"));
    CHECK(has(&d, "test.acl:7: unknown keyword 'frobnicate'"));
    CHECK(has(&d, "test.acl:8: invalid topic filter 'a/#/b'"));
    CHECK(has(&d, "test.acl:9: 'topic read' has no topic"));
    CHECK(has(&d, "test.acl:10: 'user' needs a name"));
    CHECK(has(&d, "test.acl:11: 'topic' needs a topic"));
    CHECK(has(&d, "test.acl:12: %u and %c must be a whole topic level"));
    CHECK(has(&d, "test.acl:13: unknown substitution"));
    CHECK(has(&d, "test.acl:14: invalid topic filter 'a+/b'"));
    CHECK(has(&d, "test.acl:15: topic filter is not valid UTF-8"));
    CHECK(has(&d, "test.acl:16: user name is not valid UTF-8"));
    CHECK(has(&d, "test.acl:18: unknown keyword 'Topic'"));
    CHECK(has(&d, "test.acl:19: invalid topic filter"));
    CHECK(!has(&d, "test.acl:3:"));
    CHECK(!has(&d, "test.acl:17:"));
    diag_free(&d);

    /* A NUL byte and an over-long line are reported with their line numbers too. */
    const char nul[] = "user a\ntopic read x\0y\npattern read ok/#\nbad\n";
    CHECK(acl_parse(nul, sizeof(nul) - 1, "n.acl", &d, NULL) == NULL);
    CHECK_EQ_INT(d.count, 2);
    CHECK(has(&d, "n.acl:2: line contains a NUL byte"));
    CHECK(has(&d, "n.acl:4: unknown keyword 'bad'"));
    diag_free(&d);
    size_t big = 200000;
    char *longl = malloc(big + 64);
    strcpy(longl, "user a\ntopic read ");
    size_t at = strlen(longl);
    memset(longl + at, 'x', big);
    strcpy(longl + at + big, "\ntopic read ok\n");
    CHECK(parse(longl, &d, NULL) == NULL);
    CHECK_EQ_INT(d.count, 1);
    CHECK(has(&d, "test.acl:2: line longer than"));
    free(longl);
    diag_free(&d);
    diag_free(&w);
}

static void test_warnings(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    struct acl *a = parse("topic read anon/#\n"
                          "pattern read x/#\n"
                          "user a/b\n"
                          "topic read y\n"
                          "user dev\n"
                          "topic read devices/%u/#\n",
                          &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(d.count, 0);
    CHECK_EQ_INT(w.count, 3);
    CHECK(has(&w, "test.acl:1: topic rule before any 'user' line"));
    CHECK(has(&w, "test.acl:3: user 'a/b' contains"));
    CHECK(has(&w, "test.acl:6: 'topic' rules are not substituted"));
    /* The anonymous rule applies to nobody and is not counted. */
    CHECK_EQ_INT(acl_rule_count(a), 3);
    struct acl_client *c = acl_compile(a, "dev", "c");
    CHECK(!acl_check(c, S("anon/x"), ACL_READ));
    CHECK(acl_check(c, S("devices/%u/x"), ACL_READ)); /* literal in a topic rule */
    CHECK(!acl_check(c, S("devices/dev/x"), ACL_READ));
    acl_client_free(c);
    acl_free(a);
    /* warn may be NULL. */
    a = parse("topic read anon/#\n", &d, NULL);
    CHECK(a != NULL);
    acl_free(a);
    diag_free(&d);
    diag_free(&w);
}

static const char *fleet = "pattern readwrite devices/%u/#\n"
                           "pattern write clients/%c/out\n"
                           "pattern read fleet/#\n"
                           "pattern deny fleet/secret/#\n"
                           "user ops team\n"
                           "topic read devices/#\n"
                           "topic write fleet/#\n"
                           "user admin\n"
                           "topic read $SYS/#\n"
                           "topic read #\n"
                           "user device-002\n"
                           "topic deny devices/device-002/locked\n";

static void test_evaluation(void)
{
    struct diag d;
    diag_init(&d);
    struct acl *a = parse(fleet, &d, NULL);
    CHECK(a != NULL);
    CHECK_EQ_INT(acl_rule_count(a), 9);

    /* Per-device isolation through devices/%u/#. */
    struct acl_client *dev = acl_compile(a, "device-001", "c1");
    CHECK_EQ_INT(acl_client_rule_count(dev), 4); /* patterns only: no user block */
    CHECK(acl_check(dev, S("devices/device-001/t"), ACL_WRITE));
    CHECK(acl_check(dev, S("devices/device-001/t"), ACL_READ));
    CHECK(acl_check(dev, S("devices/device-001"), ACL_READ)); /* # matches the parent too */
    CHECK(!acl_check(dev, S("devices/device-002/t"), ACL_READ));
    CHECK(!acl_check(dev, S("devices/device-002/t"), ACL_WRITE));
    CHECK(!acl_check(dev, S("devices/device-0011/t"), ACL_READ));
    /* %c and the write-only bit. */
    CHECK(acl_check(dev, S("clients/c1/out"), ACL_WRITE));
    CHECK(!acl_check(dev, S("clients/c1/out"), ACL_READ));
    CHECK(!acl_check(dev, S("clients/c2/out"), ACL_WRITE));
    /* Read-only fleet topics, and deny beating the grant. */
    CHECK(acl_check(dev, S("fleet/news"), ACL_READ));
    CHECK(!acl_check(dev, S("fleet/news"), ACL_WRITE));
    CHECK(!acl_check(dev, S("fleet/secret/x"), ACL_READ));
    CHECK(!acl_check(dev, S("fleet/secret"), ACL_READ));
    /* Default deny and the $ rule. */
    CHECK(!acl_check(dev, S("other/x"), ACL_READ));
    CHECK(!acl_check(dev, S("$SYS/broker/uptime"), ACL_READ));
    acl_client_free(dev);

    /* A user's own deny beats a pattern's grant. */
    struct acl_client *d2 = acl_compile(a, "device-002", "c2");
    CHECK_EQ_INT(acl_client_rule_count(d2), 5);
    CHECK(acl_check(d2, S("devices/device-002/t"), ACL_WRITE));
    CHECK(!acl_check(d2, S("devices/device-002/locked"), ACL_WRITE));
    CHECK(!acl_check(d2, S("devices/device-002/locked"), ACL_READ));
    acl_client_free(d2);

    /* A client id with + # or / (or an empty one) makes the %c patterns match nothing. */
    const char *bad_ids[] = {"x/+", "+", "#", "a/b", ""};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        struct acl_client *wide = acl_compile(a, "device-001", bad_ids[i]);
        CHECK_EQ_INT(acl_client_rule_count(wide), 3);
        CHECK(!acl_check(wide, S("clients/x/y/out"), ACL_WRITE));
        CHECK(!acl_check(wide, S("clients/a/b/out"), ACL_WRITE));
        CHECK(!acl_check(wide, S("clients/+/out"), ACL_WRITE));
        CHECK(!acl_check(wide, S("clients//out"), ACL_WRITE));
        CHECK(acl_check(wide, S("devices/device-001/t"), ACL_WRITE));
        acl_client_free(wide);
    }

    struct acl_client *ops = acl_compile(a, "ops team", "o");
    CHECK(acl_check(ops, S("devices/device-009/t"), ACL_READ));
    CHECK(!acl_check(ops, S("devices/device-009/t"), ACL_WRITE));
    CHECK(acl_check(ops, S("fleet/news"), ACL_WRITE));
    CHECK(!acl_check(ops, S("fleet/secret/plan"), ACL_WRITE)); /* pattern deny applies to all */
    acl_client_free(ops);

    /* `#` does not reach $SYS; `$SYS/#` must be named. */
    struct acl_client *adm = acl_compile(a, "admin", "a");
    CHECK(acl_check(adm, S("$SYS/broker/uptime"), ACL_READ));
    CHECK(acl_check(adm, S("anything/at/all"), ACL_READ));
    CHECK(!acl_check(adm, S("$other/x"), ACL_READ));
    CHECK(acl_check_subscribe(adm, S("$SYS/#")));
    acl_client_free(adm);
    struct acl *hash_only = parse("user admin\ntopic read #\n", &d, NULL);
    struct acl_client *h = acl_compile(hash_only, "admin", "a");
    CHECK(acl_check(h, S("a/b"), ACL_READ));
    CHECK(!acl_check(h, S("$SYS/broker/uptime"), ACL_READ));
    CHECK(!acl_check_subscribe(h, S("$SYS/#")));
    CHECK(!acl_check_subscribe(h, S("$SYS/broker/uptime")));
    CHECK(acl_check_subscribe(h, S("#")));
    acl_client_free(h);
    acl_free(hash_only);

    /* Identities are validated before they get here; should one slip through with a
     * wildcard, separator or nothing at all, the %u patterns still match nothing. */
    const char *bad_idents[] = {"+", "#", "a/b", ""};
    for (size_t i = 0; i < sizeof(bad_idents) / sizeof(bad_idents[0]); i++) {
        struct acl_client *bi = acl_compile(a, bad_idents[i], "c9");
        CHECK_EQ_INT(acl_client_rule_count(bi), 3);
        CHECK(!acl_check(bi, S("devices/x/t"), ACL_READ));
        CHECK(!acl_check(bi, S("devices/a/b/t"), ACL_READ));
        CHECK(!acl_check(bi, S("devices/+/t"), ACL_READ));
        CHECK(!acl_check(bi, S("devices/#/t"), ACL_READ));
        acl_client_free(bi);
    }

    /* Unknown identity: patterns only; NULL client denies. */
    struct acl_client *none = acl_compile(a, "nobody", "n");
    CHECK(!acl_check(none, S("other/x"), ACL_READ));
    CHECK(acl_check(none, S("devices/nobody/x"), ACL_READ));
    acl_client_free(none);
    CHECK(!acl_check(NULL, S("x"), ACL_READ));
    CHECK(!acl_check_subscribe(NULL, S("x")));
    acl_free(a);
    diag_free(&d);
}

static void test_subscribe(void)
{
    struct diag d;
    diag_init(&d);
    struct acl *a = parse(fleet, &d, NULL);
    struct acl_client *dev = acl_compile(a, "device-001", "c1");
    CHECK(acl_check_subscribe(dev, S("#")));   /* partially readable */
    CHECK(acl_check_subscribe(dev, S("+/+"))); /* fleet/x */
    CHECK(acl_check_subscribe(dev, S("devices/+/t")));
    CHECK(acl_check_subscribe(dev, S("devices/device-001/#")));
    CHECK(!acl_check_subscribe(dev, S("devices/device-002/#"))); /* never readable */
    CHECK(!acl_check_subscribe(dev, S("other/#")));
    CHECK(!acl_check_subscribe(dev, S("clients/c1/out"))); /* write-only */
    CHECK(!acl_check_subscribe(dev, S("fleet/secret/#"))); /* covered by deny */
    CHECK(!acl_check_subscribe(dev, S("fleet/secret/+/x")));
    CHECK(acl_check_subscribe(dev, S("fleet/+"))); /* deny covers only part of it */
    CHECK(!acl_check_subscribe(dev, S("$SYS/#")));
    acl_client_free(dev);
    acl_free(a);

    /* Only a/# readable: `#` is allowed (delivery filters), `b/#` is not. */
    a = parse("user u\ntopic read a/#\ntopic write b/#\n", &d, NULL);
    struct acl_client *u = acl_compile(a, "u", "c");
    CHECK(acl_check_subscribe(u, S("#")));
    CHECK(acl_check_subscribe(u, S("+/x")));
    CHECK(!acl_check_subscribe(u, S("b/#")));
    CHECK(!acl_check_subscribe(u, S("c")));
    acl_client_free(u);
    acl_free(a);
    diag_free(&d);
}

/* Exact rules go through the hash: duplicates, many rules, and a brute-force reference. */
static bool reference(const char *rules[][2], size_t n, const char *topic, int access)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rules[i][0], "deny") && topic_matches(S(rules[i][1]), S(topic)))
            return false;
    for (size_t i = 0; i < n; i++) {
        int acc = !strcmp(rules[i][0], "read")    ? ACL_READ
                  : !strcmp(rules[i][0], "write") ? ACL_WRITE
                  : !strcmp(rules[i][0], "deny")  ? 0
                                                  : ACL_READ | ACL_WRITE;
        if ((acc & access) && topic_matches(S(rules[i][1]), S(topic)))
            return true;
    }
    return false;
}

static void test_against_reference(void)
{
    static const char *rules[][2] = {
        {"read", "a/b"},    {"write", "a/b"}, {"deny", "a/c"},   {"read", "a/c"},
        {"readwrite", "x"}, {"read", "x/+"},  {"deny", "x/+/z"}, {"write", "$SYS/x"},
        {"read", "+/b/#"},  {"deny", "q/#"},  {"read", "q/r"},   {"write", "/"},
        {"read", "a/b/c"},  {"write", "k/#"}, {"read", "k/1"},   {"readwrite", "z/z/z"},
    };
    static const char *topics[] = {"a/b",   "a/c", "x",   "x/y",  "x/y/z", "$SYS/x", "q/r",
                                   "a/b/c", "/",   "k/1", "k/2",  "z/z/z", "z/z",    "b/b",
                                   "m/b/n", "a",   "",    "$SYS", "k",     "x/y/z/w"};
    size_t nr = sizeof(rules) / sizeof(rules[0]);
    char text[2048] = "user u\n";
    for (size_t i = 0; i < nr; i++) {
        strcat(text, "topic ");
        strcat(text, rules[i][0]);
        strcat(text, " ");
        strcat(text, rules[i][1]);
        strcat(text, "\n");
    }
    struct diag d;
    diag_init(&d);
    struct acl *a = parse(text, &d, NULL);
    CHECK(a != NULL);
    struct acl_client *c = acl_compile(a, "u", "c");
    CHECK_EQ_INT(acl_client_rule_count(c), nr);
    for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
        if (!*topics[t])
            continue;
        for (int acc = ACL_READ; acc <= ACL_WRITE; acc++) {
            bool want = reference(rules, nr, topics[t], acc);
            bool got = acl_check(c, S(topics[t]), (enum acl_access)acc);
            if (want != got)
                fprintf(stderr, "topic '%s' access %d: want %d got %d\n", topics[t], acc, want,
                        got);
            CHECK(want == got);
        }
    }
    acl_client_free(c);
    acl_free(a);

    /* Many exact topics: every one found, none invented. */
    char *many = malloc(64 * 1024);
    strcpy(many, "user u\n");
    for (int i = 0; i < 500; i++)
        sprintf(many + strlen(many), "topic %s t/%d\n", i % 2 ? "read" : "write", i);
    a = parse(many, &d, NULL);
    c = acl_compile(a, "u", "c");
    for (int i = 0; i < 500; i++) {
        char t[32];
        snprintf(t, sizeof(t), "t/%d", i);
        CHECK(acl_check(c, S(t), i % 2 ? ACL_READ : ACL_WRITE));
        CHECK(!acl_check(c, S(t), i % 2 ? ACL_WRITE : ACL_READ));
        snprintf(t, sizeof(t), "t/%d/x", i);
        CHECK(!acl_check(c, S(t), ACL_READ));
    }
    acl_client_free(c);
    acl_free(a);
    free(many);
    diag_free(&d);
}

static void test_load(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    char path[] = "/tmp/acl_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "user dev\ntopic read a/#\nbogus\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(acl_load(path, &d, &w) == NULL);
    CHECK_EQ_INT(d.count, 1);
    char want[64];
    snprintf(want, sizeof(want), "%s:3: unknown keyword", path);
    CHECK(has(&d, want));
    diag_free(&d);

    CHECK(ftruncate(fd, 0) == 0);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, text, 23) == 23);
    struct acl *a = acl_load(path, &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(acl_rule_count(a), 1);
    acl_free(a);

    /* Over the size limit (sparse, so cheap): refused before reading. */
    CHECK(ftruncate(fd, (off_t)17 << 20) == 0);
    CHECK(acl_load(path, &d, &w) == NULL);
    CHECK_EQ_INT(d.count, 1);
    CHECK(d.count && strstr(d.msgs[0], "more than the"));
    diag_free(&d);
    close(fd);
    unlink(path);

    CHECK(acl_load(path, &d, &w) == NULL); /* gone */
    CHECK(d.count == 1 && strstr(d.msgs[0], "cannot open ACL file"));
    diag_free(&d);
    CHECK(acl_load("/tmp", &d, &w) == NULL);
    CHECK(d.count == 1 && strstr(d.msgs[0], "not a regular file"));
    diag_free(&d);
    diag_free(&w);
}

/* A substituted rule longer than any MQTT topic is dropped rather than kept unmatchable. */
static void test_long_identity(void)
{
    struct diag d;
    diag_init(&d);
    struct acl *a = parse("pattern read %u/%u\npattern read %u\n", &d, NULL);
    char *id = malloc(40001);
    memset(id, 'i', 40000);
    id[40000] = '\0';
    struct acl_client *c = acl_compile(a, id, "c");
    CHECK_EQ_INT(acl_client_rule_count(c), 1);
    CHECK(acl_check(c, id, strlen(id), ACL_READ));
    acl_client_free(c);
    free(id);
    acl_free(a);
    diag_free(&d);
}

/* The shipped example (tests run in test/unit) parses cleanly and means what it says. */
static void test_example(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    struct acl *a = acl_load("../../config/acl.example", &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(d.count, 0);
    CHECK_EQ_INT(w.count, 0);
    struct acl_client *dev = acl_compile(a, "device-001", "device-001");
    CHECK(acl_check(dev, S("devices/device-001/telemetry"), ACL_WRITE));
    CHECK(!acl_check(dev, S("devices/device-002/telemetry"), ACL_READ));
    CHECK(acl_check(dev, S("commands/device-001/reboot"), ACL_READ));
    CHECK(!acl_check(dev, S("commands/device-001/reboot"), ACL_WRITE));
    CHECK(acl_check(dev, S("fleet/firmware/v2"), ACL_READ));
    CHECK(!acl_check(dev, S("fleet/firmware/staging"), ACL_READ));
    CHECK(acl_check(dev, S("rooms/living room/temperature"), ACL_WRITE));
    CHECK(!acl_check_subscribe(dev, S("$SYS/#")));
    struct acl_client *dash = acl_compile(a, "dashboard", "dash-1");
    CHECK(acl_check(dash, S("devices/device-002/telemetry"), ACL_READ));
    CHECK(acl_check(dash, S("commands/device-002/reboot"), ACL_WRITE));
    CHECK(!acl_check(dash, S("$SYS/broker/uptime"), ACL_READ));
    struct acl_client *adm = acl_compile(a, "admin", "adm");
    CHECK(acl_check(adm, S("$SYS/broker/uptime"), ACL_READ));
    CHECK(!acl_check(adm, S("commands/device-002/reboot"), ACL_WRITE));
    acl_client_free(dev);
    acl_client_free(dash);
    acl_client_free(adm);
    acl_free(a);
    diag_free(&d);
    diag_free(&w);
}

int main(void)
{
    test_parse_valid();
    test_parse_errors();
    test_warnings();
    test_evaluation();
    test_subscribe();
    test_against_reference();
    test_load();
    test_long_identity();
    test_example();
    return check_finish("acl_test");
}
