/* acl: parsing (every error with file:line), per-client compilation, evaluation rules. */
#include "acl.h"
#include "check.h"

#include <string.h>

#define S(x) x, strlen(x)

static struct acl *parse(const char *text, struct diag *d, struct diag *w)
{
    return acl_parse(text, strlen(text), "test.acl", d, w);
}

static bool has(const struct diag *d, const char *frag)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->msgs[i], frag))
            return true;
    return false;
}

static void test_parse_errors(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    const char *text = "# comment\r\n"
                       "user dev 1\n"
                       "topic read a/#\n"
                       "topic banana a\n"
                       "pattern read a/x%u\n"
                       "pattern read a/%q\n"
                       "frobnicate\n"
                       "topic read a/#/b\n"
                       "topic read\n"
                       "user\n";
    CHECK(parse(text, &d, &w) == NULL);
    CHECK_EQ_INT(d.count, 7);
    CHECK(has(&d, "test.acl:4: bad access 'banana'"));
    CHECK(has(&d, "test.acl:5: %u and %c must be a whole topic level"));
    CHECK(has(&d, "test.acl:6:"));
    CHECK(has(&d, "test.acl:7: unknown keyword 'frobnicate'"));
    CHECK(has(&d, "test.acl:8: invalid topic filter"));
    CHECK(has(&d, "test.acl:9: 'topic read' has no topic"));
    CHECK(has(&d, "test.acl:10: 'user' needs a name"));
    diag_free(&d);
    struct acl *a = parse("topic read anon/#\npattern read x/#\n", &d, &w);
    CHECK(a != NULL);
    CHECK_EQ_INT(w.count, 1);
    CHECK(has(&w, "test.acl:1: topic rule before any 'user' line"));
    acl_free(a);
    diag_free(&d);
    diag_free(&w);
}

static void test_evaluation(void)
{
    struct diag d;
    diag_init(&d);
    struct acl *a = parse("pattern readwrite devices/%u/#\n"
                          "pattern write clients/%c/out\n"
                          "pattern read fleet/#\n"
                          "pattern deny fleet/secret/#\n"
                          "user ops team\n"
                          "topic read devices/#\n"
                          "topic write fleet/#\n"
                          "user admin\n"
                          "topic read $SYS/#\n"
                          "topic read #\n",
                          &d, NULL);
    CHECK(a != NULL);
    CHECK_EQ_INT(acl_rule_count(a), 8);
    struct acl_client *dev = acl_compile(a, "dev-1", "c1");
    CHECK(acl_check(dev, S("devices/dev-1/t"), ACL_WRITE));
    CHECK(acl_check(dev, S("devices/dev-1"), ACL_READ));
    CHECK(!acl_check(dev, S("devices/dev-2/t"), ACL_READ));
    CHECK(acl_check(dev, S("clients/c1/out"), ACL_WRITE));
    CHECK(!acl_check(dev, S("clients/c1/out"), ACL_READ));
    CHECK(acl_check(dev, S("fleet/news"), ACL_READ));
    CHECK(!acl_check(dev, S("fleet/news"), ACL_WRITE));
    CHECK(!acl_check(dev, S("fleet/secret/x"), ACL_READ)); /* deny wins */
    CHECK(acl_check_subscribe(dev, S("#")));               /* partially readable */
    CHECK(!acl_check_subscribe(dev, S("devices/dev-2/#")));
    CHECK(!acl_check_subscribe(dev, S("fleet/secret/#"))); /* covered by deny */
    CHECK(acl_check_subscribe(dev, S("fleet/+")));
    CHECK(!acl_check_subscribe(dev, S("$SYS/#")));
    acl_client_free(dev);

    /* %c with a client id that would widen the rule matches nothing. */
    struct acl_client *wide = acl_compile(a, "dev-1", "x/+");
    CHECK(!acl_check(wide, S("clients/x/y/out"), ACL_WRITE));
    acl_client_free(wide);

    struct acl_client *ops = acl_compile(a, "ops team", "o");
    CHECK(acl_check(ops, S("devices/dev-9/t"), ACL_READ));
    CHECK(acl_check(ops, S("fleet/news"), ACL_WRITE));
    acl_client_free(ops);

    struct acl_client *adm = acl_compile(a, "admin", "a");
    CHECK(acl_check(adm, S("$SYS/broker/uptime"), ACL_READ));
    CHECK(acl_check(adm, S("anything"), ACL_READ));
    acl_client_free(adm);

    /* Default deny; NULL client denies. */
    struct acl_client *none = acl_compile(a, "nobody", "");
    CHECK(!acl_check(none, S("other/x"), ACL_READ));
    acl_client_free(none);
    CHECK(!acl_check(NULL, S("x"), ACL_READ));
    acl_free(a);
    diag_free(&d);
}

int main(void)
{
    test_parse_errors();
    test_evaluation();
    return check_finish("acl_test");
}
