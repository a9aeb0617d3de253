/* ACL fuzz target: parse arbitrary text; when it parses, compile it for a few identities (one
 * with a client id that must not widen %c patterns, each with certificate attributes: clean,
 * ambiguous and hostile ones, for %{attr} patterns and match blocks) and evaluate fixed topics plus
 * the last word of every input line. Oracle: for a valid topic name t, "may read t" and "may
 * subscribe to the filter t" must agree, since a filter without wildcards covers and intersects
 * exactly what it matches. Any disagreement aborts. */
#include "acl.h"
#include "topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TOPICS 24
#define MAX_TOPIC_LEN 256

struct span {
    const char *p;
    size_t len;
};

/* The last word of each line, when it is a usable topic name: rules name the topics worth
 * asking about, so the checks reach the matching code instead of default deny. */
static size_t fuzz__topics(const char *text, size_t size, struct span *out, size_t max)
{
    static const char *fixed[] = {
        "devices/dev-1/t", "devices/dev-2/t",  "$SYS/x",       "a", "a/b/c", "/", "c/c1/o",
        "fleet/x",         "gateways/0042/up", "s/sensor/0042"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && n < max; i++)
        out[n++] = (struct span){fixed[i], strlen(fixed[i])};
    size_t start = 0;
    for (size_t i = 0; i <= size && n < max; i++) {
        if (i < size && text[i] != '\n')
            continue;
        size_t end = i;
        while (end > start && (text[end - 1] == '\r' || text[end - 1] == ' '))
            end--;
        size_t w = end;
        while (w > start && text[w - 1] != ' ' && text[w - 1] != '\t')
            w--;
        if (end > w && end - w <= MAX_TOPIC_LEN && topic_name_valid(text + w, end - w))
            out[n++] = (struct span){text + w, end - w};
        start = i + 1;
    }
    return n;
}

/* Attributes for identity i: 0 clean (a gateway with a URN), 1 none, 2 ambiguous, 3 hostile. */
static struct certattrs *fuzz__attrs(size_t i)
{
    static const struct {
        int k;
        const char *v;
    } sets[][5] = {
        {{CERTATTR_OU, "gateways"},
         {CERTATTR_SAN_URI, "urn:acme:device:sensor:0042"},
         {CERTATTR_ISSUER_CN, "Acme Gateway CA"},
         {CERTATTR_POLICY, "1.3.6.1.4.1.99999.1.2"},
         {CERTATTR_SERIAL, "0A1B"}},
        {{-1, NULL}},
        {{CERTATTR_OU, "a"}, {CERTATTR_OU, "b"}, {CERTATTR_O, "Acme"}, {CERTATTR_O, "Acme"}},
        {{CERTATTR_OU, "+"}, {CERTATTR_O, "#"}, {CERTATTR_CN, "a/b"}, {CERTATTR_SAN_URI, "u:+:/"}},
    };
    if (i == 1)
        return NULL;
    struct certattrs *a = certattrs_new();
    for (size_t j = 0; j < 5 && sets[i][j].v; j++)
        a = certattrs_add(a, sets[i][j].k, sets[i][j].v, strlen(sets[i][j].v));
    return a;
}

static void fuzz__print(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct diag d, w;
    diag_init(&d);
    diag_init(&w);
    struct acl *a = acl_parse(text, size, "fuzz.acl", &d, &w);
    /* Failure and diagnostics go together. */
    if ((a == NULL) != (d.count > 0))
        abort();
    if (a) {
        static const char *ids[][2] = {{"dev-1", "c1"}, {"admin", ""}, {"x", "a/+"}, {"a", "#"}};
        struct span topics[MAX_TOPICS];
        size_t nt = fuzz__topics(text, size, topics, MAX_TOPICS);
        char last[MAX_TOPIC_LEN + 1]; /* the spans are not NUL-terminated */
        memcpy(last, topics[nt - 1].p, topics[nt - 1].len);
        last[topics[nt - 1].len] = '\0';
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            struct certattrs *at = fuzz__attrs(i);
            for (int k = 0; k < ACL_LIMIT_COUNT; k++) {
                uint64_t lim = 7;
                bool set = acl_limit(a, at, (enum acl_limit)k, &lim);
                if ((!set && lim != 7) || (set && !acl_limit_used(a, (enum acl_limit)k)))
                    abort(); /* no block set it: the default stays */
            }
            struct acl_client *c = acl_compile_cert(a, ids[i][0], ids[i][1], at);
            /* --explain over the same rules: must not crash on anything that parses. */
            acl_explain(a, ids[i][0], ids[i][1], at, last, fuzz__print, NULL);
            certattrs_free(at);
            for (size_t t = 0; t < nt; t++) {
                bool r = acl_check(c, topics[t].p, topics[t].len, ACL_READ);
                acl_check(c, topics[t].p, topics[t].len, ACL_WRITE);
                if (r != acl_check_subscribe(c, topics[t].p, topics[t].len))
                    abort();
            }
            acl_check_subscribe(c, "#", 1);
            acl_check_subscribe(c, "a/+/c", 5);
            acl_check_subscribe(c, "$SYS/#", 6);
            acl_client_free(c);
        }
        acl_free(a);
    }
    diag_free(&d);
    diag_free(&w);
    return 0;
}
