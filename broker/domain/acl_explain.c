/* acl_explain: `certmq --explain`, the ACL file read for one device: which rules apply (with
 * their file:line and substituted topic), which do not and why, and the verdict on one topic
 * with the line that decides it. The verdict itself comes from the same compiled list the
 * broker uses (acl_compile_cert + acl_check), so the explanation cannot disagree with it; the
 * scan here only finds the lines to cite. Pure: every line goes to the caller's print. */
#include "acl_internal.h"

#include "topic.h"
#include "xmalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What decides one question (publish, receive, subscribe) about the topic: the first deny and
 * the first grant seen, as file lines (0 = none). */
struct cite {
    uint32_t deny, grant;
};

struct ex {
    acl_print_fn print;
    void *ctx;
    const struct acl *a;
    struct acl_who w;
    const char *topic;
    size_t tlen;
    bool name; /* topic is a valid topic name (no wildcards) */
    struct cite pub, recv, sub;
    size_t applied, skipped;
};

static void ex__say(struct ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ex__say(struct ex *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    e->print(e->ctx, line);
}

static const char *ex__access(uint8_t a)
{
    return a & A_DENY                ? "deny"
           : a == (A_READ | A_WRITE) ? "readwrite"
           : a & A_READ              ? "read"
                                     : "write";
}

static void ex__note(uint32_t *at, uint32_t line)
{
    if (!*at)
        *at = line;
}

/* Which questions about the topic this applied rule (topic t, substituted) answers. */
static void ex__cite(struct ex *e, const struct rule *r, const char *t, size_t len)
{
    bool deny = r->access & A_DENY;
    if (e->name && topic_matches(t, len, e->topic, e->tlen)) {
        if (deny) {
            ex__note(&e->pub.deny, r->line);
            ex__note(&e->recv.deny, r->line);
        }
        if (r->access & A_WRITE)
            ex__note(&e->pub.grant, r->line);
        if (r->access & A_READ)
            ex__note(&e->recv.grant, r->line);
    }
    if (deny && topic_filter_covers(t, len, e->topic, e->tlen))
        ex__note(&e->sub.deny, r->line);
    if (!deny && (r->access & A_READ) && topic_filters_intersect(t, len, e->topic, e->tlen))
        ex__note(&e->sub.grant, r->line);
}

static void ex__rule(struct ex *e, const struct rule *r, const char *scope)
{
    const char *why = NULL;
    long len = acl__expand(r, &e->w, NULL, &why);
    const char *kw = r->pattern ? "pattern" : "topic";
    if (len < 0) {
        if (!e->w.cl && strstr(why, "%c"))
            why = "%c: no client id given (--client-id)";
        ex__say(e, "  %s:%u: %s %s %s  [%s] does not apply: %s", e->a->fname, r->line, kw,
                ex__access(r->access), r->topic, scope, why);
        e->skipped++;
        return;
    }
    char *t = xmalloc((size_t)len + 1);
    acl__expand(r, &e->w, t, NULL);
    t[len] = '\0';
    if (r->nsub)
        ex__say(e, "  %s:%u: %s %s %s -> %s  [%s]", e->a->fname, r->line, kw, ex__access(r->access),
                r->topic, t, scope);
    else
        ex__say(e, "  %s:%u: %s %s %s  [%s]", e->a->fname, r->line, kw, ex__access(r->access),
                r->topic, scope);
    if (e->topic && topic_filter_valid(e->topic, e->tlen))
        ex__cite(e, r, t, (size_t)len);
    e->applied++;
    free(t);
}

static void ex__rules(struct ex *e, const struct rules *rs, const char *scope)
{
    for (size_t i = 0; i < rs->n; i++)
        ex__rule(e, &rs->v[i], scope);
}

/* A match block: its rules when every condition holds, else the first one that does not. */
static void ex__block(struct ex *e, const struct block *b)
{
    char scope[256];
    int o = snprintf(scope, sizeof(scope), "match");
    for (size_t i = 0; i < b->ncond && o > 0 && (size_t)o < sizeof(scope); i++)
        o += snprintf(scope + o, sizeof(scope) - (size_t)o, "%s %s=%s", i ? "," : "",
                      certattr_name(b->conds[i].attr), b->conds[i].value);
    if (acl__block_applies(b, e->w.attrs)) {
        ex__rules(e, &b->rules, scope);
        for (int k = 0; k < ACL_LIMIT_COUNT; k++)
            if (b->limits[k].set)
                ex__say(e, "  %s:%u: limit %s %llu  [%s]", e->a->fname, b->limits[k].line,
                        acl_limit_name(k), (unsigned long long)b->limits[k].v, scope);
        return;
    }
    for (size_t i = 0; i < b->ncond; i++) {
        const struct cond *c = &b->conds[i];
        if (certattrs_has(e->w.attrs, c->attr, c->value, c->len))
            continue;
        const char *v = "", *sep = "";
        size_t n = 0, count = certattrs_count(e->w.attrs, c->attr);
        if (certattrs_value(e->w.attrs, c->attr, 0, &v, &n))
            sep = count > 1 ? ", ..." : "";
        ex__say(e,
                "  %s:%u: match %s=%s does not hold (the certificate has %s%s%.*s%s; %zu rules "
                "not applied)",
                e->a->fname, c->line, certattr_name(c->attr), c->value,
                count ? certattr_name(c->attr) : "no ", count ? "=" : certattr_name(c->attr),
                count ? (int)n : 0, v, sep, b->rules.n);
        e->skipped += b->rules.n;
        return;
    }
}

/* One attribute value, with anything unprintable escaped. */
static void ex__value(struct ex *e, enum certattr k, const char *v, size_t n, size_t count)
{
    char out[4 * CERTATTR_MAX_LEN + 1];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == 0x7F || ch == '\\')
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02X", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    const char *note = count > 1                  ? "  (several values: no %{} substitution)"
                       : !certattr_level_ok(v, n) ? "  (unusable as a topic level)"
                                                  : "";
    ex__say(e, "  %-9s = %s%s", certattr_name(k), out, note);
}

static void ex__attrs(struct ex *e)
{
    ex__say(e, "attributes:");
    for (int k = 0; k < CERTATTR_COUNT; k++) {
        size_t count = certattrs_count(e->w.attrs, k), kept = 0;
        const char *v;
        size_t n;
        for (; certattrs_value(e->w.attrs, k, kept, &v, &n); kept++)
            ex__value(e, k, v, n, count);
        if (count > kept)
            ex__say(e, "  %-9s : %zu more value(s) too long or beyond %d, not kept",
                    certattr_name(k), count - kept, CERTATTR_MAX_VALUES);
    }
}

static void ex__verdict(struct ex *e, const char *what, bool ok, const struct cite *c,
                        const char *access)
{
    if (ok)
        ex__say(e, "%s: allowed (%s:%u grants %s)", what, e->a->fname, c->grant, access);
    else if (c->deny)
        ex__say(e, "%s: denied (%s:%u denies it; deny wins)", what, e->a->fname, c->deny);
    else
        ex__say(e, "%s: denied (no rule grants %s: default deny)", what, access);
}

static void ex__topic(struct ex *e)
{
    struct acl_client *c = acl_compile_cert(e->a, e->w.identity, e->w.client_id, e->w.attrs);
    if (e->name) {
        ex__verdict(e, "publish", acl_check(c, e->topic, e->tlen, ACL_WRITE), &e->pub, "write");
        ex__verdict(e, "receive", acl_check(c, e->topic, e->tlen, ACL_READ), &e->recv, "read");
    } else {
        ex__say(e, "publish: not a topic name (wildcards): only subscribing applies");
    }
    bool sub = acl_check_subscribe(c, e->topic, e->tlen);
    if (sub)
        ex__say(e, "subscribe: allowed (%s:%u can grant read; each message is still checked)",
                e->a->fname, e->sub.grant);
    else if (e->sub.deny)
        ex__say(e, "subscribe: denied (%s:%u denies the whole filter)", e->a->fname, e->sub.deny);
    else
        ex__say(e, "subscribe: denied (no read rule can match a topic of this filter)");
    acl_client_free(c);
}

void acl_explain(const struct acl *a, const char *identity, const char *client_id,
                 const struct certattrs *attrs, const char *topic, acl_print_fn print, void *ctx)
{
    struct ex e = {.print = print, .ctx = ctx, .a = a};
    acl__who(&e.w, identity, client_id, attrs);
    ex__attrs(&e);
    ex__say(&e, "rules (%s):", a->fname);
    struct user *u = NULL;
    HASH_FIND_STR(a->users, identity, u);
    char scope[300];
    snprintf(scope, sizeof(scope), "user %s", identity);
    e.topic = topic;
    e.tlen = topic ? strlen(topic) : 0;
    e.name = topic && topic_name_valid(topic, e.tlen);
    if (u)
        ex__rules(&e, &u->rules, scope);
    else
        ex__say(&e, "  (no 'user %s' block)", identity);
    ex__rules(&e, &a->patterns, "every device");
    for (size_t i = 0; i < a->nblocks; i++)
        ex__block(&e, a->blocks[i]);
    ex__say(&e, "%zu rules apply, %zu do not", e.applied, e.skipped);
    if (topic && topic_filter_valid(topic, e.tlen))
        ex__topic(&e);
    else if (topic)
        ex__say(&e, "topic '%s' is neither a valid topic name nor a filter", topic);
}
