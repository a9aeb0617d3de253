/* acl with certificate attributes: the certattr set (bounds, counting, single values, hostile
 * values, URN fields), every %{attr} substitution and every `match` condition, each with a
 * missing, an ambiguous and a hostile value, match-block semantics (all conditions, consecutive
 * lines, scoping, deny wins) and the file:line errors and warnings of the new syntax. */
#include "acl_util.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

static bool has(const struct diag *d, const char *prefix)
{
    for (size_t i = 0; i < d->count; i++)
        if (!strncmp(d->msgs[i], prefix, strlen(prefix)))
            return true;
    return false;
}

/* May a device with these attributes write topic under text? */
static bool may(const char *text, const char *spec, const char *topic, enum acl_access acc)
{
    struct acl *a = parse(text);
    struct certattrs *at = spec ? attrs(spec) : NULL;
    struct acl_client *c = acl_compile_cert(a, "dev-1", "c1", at);
    bool ok = acl_check(c, topic, strlen(topic), acc);
    acl_client_free(c);
    certattrs_free(at);
    acl_free(a);
    return ok;
}

static void test_certattr(void)
{
    struct certattrs *a = certattrs_new();
    CHECK_EQ_INT(certattrs_count(a, CERTATTR_OU), 0);
    for (int i = 0; i < CERTATTR_MAX_VALUES + 3; i++)
        a = certattrs_add(a, CERTATTR_OU, S("x"));
    CHECK_EQ_INT(certattrs_count(a, CERTATTR_OU), CERTATTR_MAX_VALUES + 3);
    char big[CERTATTR_MAX_LEN + 1];
    memset(big, 'a', sizeof(big));
    a = certattrs_add(a, CERTATTR_O, big, sizeof(big)); /* counted, not kept */
    CHECK_EQ_INT(certattrs_count(a, CERTATTR_O), 1);
    const char *v;
    size_t n;
    CHECK(!certattrs_single(a, CERTATTR_O, &v, &n));
    CHECK(!certattrs_single(a, CERTATTR_OU, &v, &n)); /* ambiguous */
    a = certattrs_add(a, CERTATTR_CN, "a\0b", 3);
    CHECK(certattrs_value(a, CERTATTR_CN, 0, &v, &n) && n == 3);
    CHECK(!certattrs_single(a, CERTATTR_CN, &v, &n)); /* NUL inside */
    CHECK(!certattrs_has(a, CERTATTR_CN, S("a")));
    CHECK(certattrs_has(a, CERTATTR_CN, "a\0b", 3));
    struct certattrs *b = certattrs_dup(a);
    CHECK(certattrs_has(b, CERTATTR_CN, "a\0b", 3));
    CHECK_EQ_INT(certattrs_count(b, CERTATTR_OU), CERTATTR_MAX_VALUES + 3);
    certattrs_free(a);
    certattrs_free(b);
    CHECK(certattr_level_ok(S("sensor 7")));
    const char *bad[] = {"", "a+b", "a#", "a/b", "a\tb", "\xc2\x85", "\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!certattr_level_ok(bad[i], strlen(bad[i])));
    const char *urn = "urn:acme:device:sensor:0042";
    CHECK(certattr_field(urn, strlen(urn), 4, &v, &n) && n == 6 && !memcmp(v, "sensor", 6));
    CHECK(certattr_field(urn, strlen(urn), -1, &v, &n) && n == 4 && !memcmp(v, "0042", 4));
    CHECK(certattr_field(urn, strlen(urn), 1, &v, &n) && n == 3);
    CHECK(!certattr_field(urn, strlen(urn), 6, &v, &n));
    CHECK(!certattr_field(urn, strlen(urn), -6, &v, &n));
    CHECK(certattr_field(S("a::b"), 2, &v, &n) && n == 0);
    CHECK_EQ_STR(certattr_name(CERTATTR_ISSUER_CN), "issuer_cn");
    CHECK_EQ_INT(certattr_from_name(S("san_uri")), CERTATTR_SAN_URI);
    CHECK_EQ_INT(certattr_from_name(S("OU")), -1);
}

/* Every substitution: present, missing, ambiguous, hostile. */
static void test_substitutions(void)
{
    static const struct {
        const char *name, *one, *topic;
    } cases[] = {
        {"o", "Acme", "t/Acme/x"},
        {"ou", "gateways", "t/gateways/x"},
        {"cn", "gw-7", "t/gw-7/x"},
        {"serial", "0A1B", "t/0A1B/x"},
        {"san_uri", "urn:acme:gw:7", "t/urn:acme:gw:7/x"},
        {"san_dns", "gw7.acme.example", "t/gw7.acme.example/x"},
        {"issuer_cn", "Acme Gateway CA", "t/Acme Gateway CA/x"},
        {"policy", "1.3.6.1.4.1.99999.1.2", "t/1.3.6.1.4.1.99999.1.2/x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rule[128], spec[256];
        snprintf(rule, sizeof(rule), "pattern write t/%%{%s}/x\n", cases[i].name);
        snprintf(spec, sizeof(spec), "%s=%s", cases[i].name, cases[i].one);
        CHECK(may(rule, spec, cases[i].topic, ACL_WRITE));
        CHECK(!may(rule, spec, cases[i].topic, ACL_READ));
        CHECK(!may(rule, spec, "t/other/x", ACL_WRITE));
        CHECK(!may(rule, NULL, cases[i].topic, ACL_WRITE)); /* no attributes at all */
        CHECK(!may(rule, "o=;ou=;cn=", cases[i].topic, ACL_WRITE) || i > 2);
        snprintf(spec, sizeof(spec), "%s=%s;%s=%s", cases[i].name, cases[i].one, cases[i].name,
                 cases[i].one);
        CHECK(!may(rule, spec, cases[i].topic, ACL_WRITE)); /* ambiguous, even if equal */
        const char *hostile[] = {"a+b", "#", "a/b", "x\ty"};
        for (size_t h = 0; h < 4; h++) {
            snprintf(spec, sizeof(spec), "%s=%s", cases[i].name, hostile[h]);
            char topic[64];
            snprintf(topic, sizeof(topic), "t/%s/x", hostile[h]);
            CHECK(!may(rule, spec, topic, ACL_WRITE));
            CHECK(!may(rule, spec, "t/a/x", ACL_WRITE));
        }
        /* A missing attribute does not disturb the other rules. */
        snprintf(rule, sizeof(rule), "pattern write t/%%{%s}/x\npattern write ok/%%u\n",
                 cases[i].name);
        CHECK(may(rule, "", "ok/dev-1", ACL_WRITE));
    }
    /* Fields of a URN. */
    const char *urn = "san_uri=urn:acme:device:sensor:0042";
    CHECK(may("pattern write s/%{san_uri:4}/%{san_uri:5}\n", urn, "s/sensor/0042", ACL_WRITE));
    CHECK(may("pattern write s/%{san_uri:-1}\n", urn, "s/0042", ACL_WRITE));
    CHECK(!may("pattern write s/%{san_uri:6}\n", urn, "s/", ACL_WRITE)); /* no 6th field */
    CHECK(!may("pattern write s/%{san_uri:2}\n", "san_uri=urn::x", "s/", ACL_WRITE)); /* empty */
    CHECK(!may("pattern write s/%{san_uri:2}\n", "san_uri=urn:a/b:x", "s/a/b", ACL_WRITE));
    CHECK(!may("pattern write s/%{san_uri:-1}\n", "san_uri=urn:a:1;san_uri=urn:b:1", "s/1",
               ACL_WRITE));
    /* Mixed with %u and %c, and in deny rules: a deny whose value is missing denies nothing. */
    CHECK(may("pattern write f/%{ou}/%u/%c\n", "ou=gw", "f/gw/dev-1/c1", ACL_WRITE));
    CHECK(may("pattern write f/#\npattern deny f/%{ou}\n", "", "f/gw", ACL_WRITE));
    CHECK(!may("pattern write f/#\npattern deny f/%{ou}\n", "ou=gw", "f/gw", ACL_WRITE));
    /* A value that makes the topic too long is skipped. */
    CHECK(may("pattern readwrite %{o}\n", "o=Acme", "Acme", ACL_READ));
}

static void test_match(void)
{
    const char *fleet = "match ou=gateways\n"
                        "topic write gateways/up/#\n"
                        "pattern read commands/%{cn}/#\n"
                        "\n"
                        "match issuer_cn=Acme Gateway CA\n"
                        "# conditions accumulate across comments\n"
                        "match policy=1.3.6.1.4.1.99999.1.2\n"
                        "topic read firmware/#\n"
                        "match serial=0a:1b\n"
                        "topic deny gateways/up/blocked\n"
                        "match o=Acme\n"
                        "match san_uri=urn:acme:tool\n"
                        "match san_dns=eng.acme.example\n"
                        "topic readwrite debug/#\n"
                        "match cn=gw-7\n"
                        "topic read cn/only\n"
                        "user dev-1\n"
                        "topic read mine\n"
                        "pattern read everyone/%u\n"; /* after `user`: every device again */
    const char *gw = "ou=gateways;cn=gw-7;issuer_cn=Acme Gateway CA";
    CHECK(may(fleet, gw, "gateways/up/a", ACL_WRITE));
    CHECK(!may(fleet, gw, "gateways/up/a", ACL_READ));
    CHECK(may(fleet, gw, "commands/gw-7/reboot", ACL_READ));
    CHECK(!may(fleet, gw, "commands/gw-8/reboot", ACL_READ));
    CHECK(may(fleet, gw, "cn/only", ACL_READ));
    CHECK(may(fleet, gw, "mine", ACL_READ)); /* the identity's own rules still apply */
    CHECK(may(fleet, gw, "everyone/dev-1", ACL_READ));
    CHECK(may(fleet, NULL, "everyone/dev-1", ACL_READ));
    /* All conditions must hold: issuer and policy. */
    CHECK(!may(fleet, gw, "firmware/x", ACL_READ));
    CHECK(may(fleet, "issuer_cn=Acme Gateway CA;policy=1.3.6.1.4.1.99999.1.2", "firmware/x",
              ACL_READ));
    CHECK(!may(fleet, "policy=1.3.6.1.4.1.99999.1.2", "firmware/x", ACL_READ));
    /* Any of several values satisfies a condition (policies, OUs, SANs are lists). */
    CHECK(may(fleet, "issuer_cn=Acme Gateway CA;policy=1.2.3;policy=1.3.6.1.4.1.99999.1.2",
              "firmware/x", ACL_READ));
    /* Deny from another block wins over a grant; serial compared normalised. */
    CHECK(may(fleet, gw, "gateways/up/blocked", ACL_WRITE));
    CHECK(!may(fleet, "ou=gateways;serial=0A1B", "gateways/up/blocked", ACL_WRITE));
    CHECK(may(fleet, "ou=gateways;serial=0A1B", "gateways/up/ok", ACL_WRITE));
    /* Three conditions. */
    const char *eng = "o=Acme;san_uri=urn:acme:tool;san_dns=eng.acme.example";
    CHECK(may(fleet, eng, "debug/x", ACL_WRITE));
    CHECK(!may(fleet, "o=Acme;san_uri=urn:acme:tool", "debug/x", ACL_WRITE));
    CHECK(!may(fleet, "o=Acme Inc;san_uri=urn:acme:tool;san_dns=eng.acme.example", "debug/x",
               ACL_WRITE));
    /* Hostile values never equal a clean condition, and a NUL cannot cut a value short. */
    struct acl *a = parse(fleet);
    struct certattrs *at = certattrs_add(NULL, CERTATTR_OU, "gateways\0x", 10);
    struct acl_client *c = acl_compile_cert(a, "dev-2", "c", at);
    CHECK(!acl_check(c, S("gateways/up/a"), ACL_WRITE));
    CHECK_EQ_INT(acl_client_rule_count(c), 1); /* only "everyone/%u" */
    acl_client_free(c);
    certattrs_free(at);
    /* Case matters, as in the certificate. */
    CHECK(!may(fleet, "ou=Gateways", "gateways/up/a", ACL_WRITE));
    acl_free(a);
}

static void test_match_errors(void)
{
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    const char *text = "match ou=gateways\n"              /* 1 ok */
                       "match\n"                          /* 2 */
                       "match OU=x\n"                     /* 3 */
                       "match colour=red\n"               /* 4 */
                       "match ou=\n"                      /* 5 */
                       "match serial=xyz\n"               /* 6 */
                       "match policy=1..2\n"              /* 7 */
                       "pattern read a/%{nope}\n"         /* 8 */
                       "pattern read a/%{ou:0}\n"         /* 9 */
                       "pattern read a/x%{ou}\n"          /* 10 */
                       "pattern read a/%{ou\n"            /* 11 */
                       "pattern read a/%{san_uri:99}\n"   /* 12 */
                       "match o=\xff\n"                   /* 13 */
                       "pattern read a/%{san_uri:-2}/#\n" /* 14 ok */
                       "match ou=a o=b\n"                 /* 15 warning */
                       "topic read lit/%{ou}\n"           /* 16 warning */
                       "pattern read rates/50%{/x\n"      /* 17 */
                       "pattern read a/%{san_uri: 1}\n";  /* 18 */
    CHECK(acl_parse(text, strlen(text), "t.acl", &d, &w) == NULL);
    CHECK(has(&d, "t.acl:2: 'match' needs ATTR=VALUE"));
    CHECK(has(&d, "t.acl:3: 'match' needs ATTR=VALUE"));
    CHECK(has(&d, "t.acl:4: 'match' needs ATTR=VALUE"));
    CHECK(has(&d, "t.acl:5: 'match ou=' needs a value"));
    CHECK(has(&d, "t.acl:6: bad serial 'xyz'"));
    CHECK(has(&d, "t.acl:7: bad policy '1..2'"));
    CHECK(has(&d, "t.acl:8: unknown substitution %{...}"));
    CHECK(has(&d, "t.acl:9: bad field number"));
    CHECK(has(&d, "t.acl:10: %{...} must be a whole topic level"));
    CHECK(has(&d, "t.acl:11: unknown substitution %{...}"));
    CHECK(has(&d, "t.acl:12: bad field number"));
    CHECK(has(&d, "t.acl:13: match value is not valid UTF-8"));
    CHECK(has(&d, "t.acl:17: unknown substitution %{...}"));
    CHECK(has(&d, "t.acl:18: bad field number"));
    CHECK(!has(&d, "t.acl:1:"));
    CHECK(!has(&d, "t.acl:14:"));
    CHECK(!has(&d, "t.acl:15:"));
    CHECK(!has(&d, "t.acl:16:"));
    CHECK_EQ_INT(d.count, 14);
    CHECK(has(&w, "t.acl:15: the value 'a o=b' contains 'o='"));
    CHECK(has(&w, "t.acl:16: 'topic' rules are not substituted"));
    diag_free(&d);
    diag_free(&w);
}

static void test_limits(void)
{
    const char *text = "match ou=gateways\n"
                       "limit max_connections_per_identity 50\n"
                       "match ou=gateways\n" /* after a limit: a new block */
                       "match o=Acme\n"
                       "limit max_connections_per_identity 80\n"
                       "match ou=unlimited\n"
                       "limit max_connections_per_identity 0\n";
    struct acl *a = parse(text);
    CHECK(a != NULL);
    uint64_t v = 7;
    CHECK(!acl_limit(a, NULL, ACL_LIMIT_CONNECTIONS, &v) && v == 7);
    struct certattrs *s = attrs("ou=sensors");
    CHECK(!acl_limit(a, s, ACL_LIMIT_CONNECTIONS, &v) && v == 7);
    certattrs_free(s);
    s = attrs("ou=gateways");
    CHECK(acl_limit(a, s, ACL_LIMIT_CONNECTIONS, &v) && v == 50);
    certattrs_free(s);
    s = attrs("ou=gateways;o=Acme"); /* two blocks: the larger allowance */
    CHECK(acl_limit(a, s, ACL_LIMIT_CONNECTIONS, &v) && v == 80);
    certattrs_free(s);
    s = attrs("ou=gateways;ou=unlimited;o=Acme"); /* 0 = unlimited, the largest */
    CHECK(acl_limit(a, s, ACL_LIMIT_CONNECTIONS, &v) && v == 0);
    certattrs_free(s);
    acl_free(a);
    CHECK_EQ_STR(acl_limit_name(ACL_LIMIT_CONNECTIONS), "max_connections_per_identity");

    struct diag d;
    diag_init(&d);
    const char *bad = "limit max_connections_per_identity 5\n"        /* 1: outside a block */
                      "match ou=x\n"                                  /* 2 ok */
                      "limit max_speed 5\n"                           /* 3 */
                      "limit max_connections_per_identity\n"          /* 4 */
                      "limit max_connections_per_identity -1\n"       /* 5 */
                      "limit max_connections_per_identity 1x\n"       /* 6 */
                      "limit max_connections_per_identity 99999999\n" /* 7 */
                      "user u\n"
                      "limit max_connections_per_identity 5\n"; /* 9: a user block */
    CHECK(acl_parse(bad, strlen(bad), "t.acl", &d, NULL) == NULL);
    CHECK(has(&d, "t.acl:1: 'limit' belongs in a 'match' block"));
    CHECK(has(&d, "t.acl:3: unknown limit 'max_speed'"));
    CHECK(has(&d, "t.acl:4: 'limit max_connections_per_identity' needs a number"));
    CHECK(has(&d, "t.acl:5: 'limit max_connections_per_identity' needs a number"));
    CHECK(has(&d, "t.acl:6: 'limit max_connections_per_identity' needs a number"));
    CHECK(has(&d, "t.acl:7: 'limit max_connections_per_identity' needs a number"));
    CHECK(has(&d, "t.acl:9: 'limit' belongs in a 'match' block"));
    CHECK_EQ_INT(d.count, 7);
    diag_free(&d);

    /* Every limit name, each with its own bound. */
    diag_init(&d);
    const char *more = "match ou=x\n"
                       "limit max_publish_rate_per_identity 10000000\n"                  /* 2 ok */
                       "limit max_publish_rate_per_identity 10000001\n"                  /* 3 */
                       "limit max_publish_byte_rate_per_identity 1000000000000\n"        /* 4 ok */
                       "limit max_publish_byte_rate_per_identity 1000000000001\n"        /* 5 */
                       "limit max_subscriptions_per_identity 10000001\n"                 /* 6 */
                       "limit max_retained_messages_per_identity 100000000\n"            /* 7 ok */
                       "limit max_retained_messages_per_identity 99999999999999999999\n" /* 8 */
                       "limit max_publish_rate 5\n";                                     /* 9 */
    CHECK(acl_parse(more, strlen(more), "t.acl", &d, NULL) == NULL);
    CHECK(has(&d, "t.acl:3: 'limit max_publish_rate_per_identity' needs a number from 0 "
                  "(unlimited) to 10000000"));
    CHECK(has(&d, "t.acl:5: 'limit max_publish_byte_rate_per_identity' needs a number from 0 "
                  "(unlimited) to 1000000000000"));
    CHECK(has(&d, "t.acl:6: 'limit max_subscriptions_per_identity' needs a number from 0 "
                  "(unlimited) to 10000000"));
    CHECK(has(&d, "t.acl:8: 'limit max_retained_messages_per_identity' needs a number from 0 "
                  "(unlimited) to 100000000"));
    CHECK(has(&d, "t.acl:9: unknown limit 'max_publish_rate' (expected "
                  "max_connections_per_identity, max_publish_rate_per_identity, "
                  "max_publish_byte_rate_per_identity, max_subscriptions_per_identity or "
                  "max_retained_messages_per_identity)"));
    CHECK_EQ_INT(d.count, 5);
    diag_free(&d);
    for (int k = 0; k < ACL_LIMIT_COUNT; k++)
        CHECK(strncmp(acl_limit_name((enum acl_limit)k), "max_", 4) == 0);
    a = parse("match ou=x\nlimit max_subscriptions_per_identity 3\n");
    CHECK(acl_limit_used(a, ACL_LIMIT_SUBSCRIPTIONS));
    CHECK(!acl_limit_used(a, ACL_LIMIT_RATE));
    acl_free(a);
}

int main(void)
{
    test_certattr();
    test_substitutions();
    test_match();
    test_match_errors();
    test_limits();
    return check_finish("acl_attr_test");
}
