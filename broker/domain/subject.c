/* subject: the topic <-> NATS subject codec (layout and escaping rules in subject.h).
 *
 * Everything is written into the caller's bounded buffer, never allocated: the encoder runs
 * once per published message on the cluster's hot path, the decoder once per message from
 * another node, whose subject is untrusted input. */
#include "subject.h"

#include <stdint.h>
#include <string.h>

static const char hexdig[] = "0123456789ABCDEF";

/* Bytes that stand for themselves in a token; everything else is escaped. */
static bool literal(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* A bounded writer: once anything does not fit, `over` sticks and nothing more is written. */
struct out {
    char *p;
    size_t n, cap;
    bool over;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->over || len >= o->cap - o->n) { /* keep room for the NUL */
        o->over = true;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

static void put_c(struct out *o, char c)
{
    put(o, &c, 1);
}

static void put_uint(struct out *o, unsigned v)
{
    char tmp[12];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof(tmp) - i);
}

/* One MQTT level as one token. */
static void put_level(struct out *o, const char *l, size_t len)
{
    if (len == 0) {
        put_c(o, '=');
        return;
    }
    for (size_t i = 0; i < len && !o->over; i++) {
        unsigned char c = (unsigned char)l[i];
        if (literal(c)) {
            put_c(o, (char)c);
        } else {
            char esc[3] = {'=', hexdig[c >> 4], hexdig[c & 15]};
            put(o, esc, 3);
        }
    }
}

static int finish(struct out *o)
{
    if (o->over)
        return SUBJECT_TOO_LONG;
    o->p[o->n] = '\0';
    return (int)o->n;
}

/* PREFIX.NS.QOS.PART or, for filters, PREFIX.NS.*.* */
static void put_head(struct out *o, const char *prefix, bool dollar)
{
    put(o, prefix, strlen(prefix));
    put(o, dollar ? ".d." : ".t.", 3);
}

/* Each level of s (split on '/') through fn, tokens joined by '.'. */
static void put_levels(struct out *o, const char *s, size_t len,
                       void (*fn)(struct out *, const char *, size_t))
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        if (start)
            put_c(o, '.');
        fn(o, s + start, i - start);
        start = i + 1;
    }
}

int subject_from_topic(const char *prefix, const char *topic, size_t len, unsigned qos,
                       unsigned part, char *out, size_t cap)
{
    if (cap == 0)
        return SUBJECT_TOO_LONG;
    struct out o = {out, 0, cap, false};
    put_head(&o, prefix, len && topic[0] == '$');
    put_uint(&o, qos);
    put_c(&o, '.');
    put_uint(&o, part);
    put_c(&o, '.');
    put_levels(&o, topic, len, put_level);
    return finish(&o);
}

/* A filter level: the wildcards become NATS's, the rest is escaped as in topics. */
static void put_filter_level(struct out *o, const char *l, size_t len)
{
    if (len == 1 && l[0] == '+')
        put_c(o, '*');
    else if (len == 1 && l[0] == '#')
        put_c(o, '>');
    else
        put_level(o, l, len);
}

static bool filter_ok(const char *f, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (f[i] != '+' && f[i] != '#')
            continue;
        bool start = i == 0 || f[i - 1] == '/', end = i + 1 == len || f[i + 1] == '/';
        if (!start || !end || (f[i] == '#' && i + 1 != len))
            return false;
    }
    return true;
}

int subject_from_filter(const char *prefix, const char *filter, size_t len, char *out, size_t cap,
                        size_t lens[2])
{
    if (!filter_ok(filter, len))
        return SUBJECT_INVALID;
    if (cap == 0)
        return SUBJECT_TOO_LONG;
    /* Only a literal first level can start with `$`: wildcards stay in `t`. */
    bool dollar = filter[0] == '$';
    struct out o = {out, 0, cap, false};
    put_head(&o, prefix, dollar);
    put(&o, "*.*.", 4);
    put_levels(&o, filter, len, put_filter_level);
    int n = finish(&o);
    if (n < 0)
        return n;
    lens[0] = (size_t)n;
    lens[1] = 0;
    /* "X/#": also the parent "X" (".>" dropped). "#" alone needs none: no topic has 0 levels. */
    if (len < 2 || filter[len - 1] != '#' || filter[len - 2] != '/')
        return 1;
    size_t plen = (size_t)n - 2;
    if ((size_t)n + 1 + plen + 1 > cap)
        return SUBJECT_TOO_LONG;
    memcpy(out + n + 1, out, plen);
    out[n + 1 + plen] = '\0';
    lens[1] = plen;
    return 2;
}

int subject_queue_name(const char *group, size_t glen, const char *filter, size_t flen, char *out,
                       size_t cap)
{
    if (cap == 0)
        return SUBJECT_TOO_LONG;
    struct out o = {out, 0, cap, false};
    put(&o, "share.", 6);
    put_level(&o, group, glen);
    put_c(&o, '.');
    put_levels(&o, filter, flen, put_level);
    return finish(&o);
}

/* ---- decoding ------------------------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is not canonical */
}

/* A decimal token without leading zeros, at most max; advances *p past it and the '.'. */
static bool take_uint(const char **p, const char *end, unsigned max, unsigned *v)
{
    const char *s = *p;
    unsigned x = 0;
    size_t n = 0;
    while (s + n < end && s[n] >= '0' && s[n] <= '9' && n < 9) {
        x = x * 10 + (unsigned)(s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0') || x > max || s + n >= end || s[n] != '.')
        return false;
    *v = x;
    *p = s + n + 1;
    return true;
}

/* One token [tok, end) back into level bytes at out; returns the length or -1. */
static int take_level(const char *tok, const char *end, char *out)
{
    if (end - tok == 1 && tok[0] == '=')
        return 0;
    int n = 0;
    for (const char *p = tok; p < end; n++) {
        if (literal((unsigned char)*p)) {
            out[n] = *p++;
            continue;
        }
        if (*p != '=' || end - p < 3)
            return -1;
        int hi = hexval(p[1]), lo = hexval(p[2]);
        if (hi < 0 || lo < 0 || literal((unsigned char)(hi << 4 | lo)))
            return -1;
        out[n] = (char)(hi << 4 | lo);
        p += 3;
    }
    return n > 0 ? n : -1;
}

int subject_to_topic(const char *prefix, const char *subj, size_t slen, char *out, size_t cap,
                     unsigned *qos, unsigned *part)
{
    size_t plen = strlen(prefix);
    const char *p = subj + plen, *end = subj + slen;
    if (slen < plen + 3 || memcmp(subj, prefix, plen) != 0 || p[0] != '.' || p[2] != '.' ||
        (p[1] != 't' && p[1] != 'd'))
        return SUBJECT_INVALID;
    bool dollar = p[1] == 'd';
    unsigned q, pt;
    p += 3;
    if (!take_uint(&p, end, 2, &q) || !take_uint(&p, end, 999999999u, &pt))
        return SUBJECT_INVALID;
    /* Each token shrinks or stays as long as decoded; one '/' replaces each '.'. */
    if ((size_t)(end - p) > cap)
        return SUBJECT_INVALID;
    size_t n = 0;
    for (const char *tok = p; tok <= end;) {
        const char *dot = memchr(tok, '.', (size_t)(end - tok));
        const char *tend = dot ? dot : end;
        int l = take_level(tok, tend, out + n);
        if (l < 0)
            return SUBJECT_INVALID;
        n += (size_t)l;
        if (!dot)
            break;
        out[n++] = '/';
        tok = dot + 1;
    }
    if (dollar != (n > 0 && out[0] == '$') || n > INT32_MAX)
        return SUBJECT_INVALID;
    if (qos)
        *qos = q;
    if (part)
        *part = pt;
    return (int)n;
}

bool subject_name_ok(const char *p, size_t len, size_t max)
{
    if (!len || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
            return false;
    return true;
}
