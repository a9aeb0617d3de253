/* jsreply: a strict, bounded JSON walk that keeps only the numbers certmq reads (see jsreply.h).
 *
 * Recursive descent over RFC 8259 with the depth bounded by JSREPLY_MAX_DEPTH, so a hostile
 * reply can cost neither stack nor more than one pass. Keys are compared as raw bytes (the keys
 * we want contain no escapes); the path of the current value is tracked only as "which of the
 * wanted slots is this", never stored. */
#include "jsreply.h"

#include <string.h>

struct walk {
    const char *p, *end;
    struct jsreply *r;
};

/* Where a value sits, as far as the wanted paths go. */
enum slot { S_NONE, S_TOP, S_SEQ, S_STATE, S_LAST_SEQ, S_ERROR, S_ERR_CODE, S_CODE, S_NUM_PENDING };

static void skip_ws(struct walk *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w->p++;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string; *s and *n are its raw bytes (escapes left as they are). */
static bool parse_string(struct walk *w, const char **s, size_t *n)
{
    if (w->p >= w->end || *w->p != '"')
        return false;
    const char *start = ++w->p;
    while (w->p < w->end && *w->p != '"') {
        unsigned char ch = (unsigned char)*w->p;
        if (ch < 0x20)
            return false;
        if (ch != '\\') {
            w->p++;
            continue;
        }
        if (++w->p >= w->end)
            return false;
        char e = *w->p++;
        if (e == 'u') {
            for (int i = 0; i < 4; i++, w->p++)
                if (w->p >= w->end || !is_hex(*w->p))
                    return false;
        } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
            return false;
        }
    }
    if (w->p >= w->end)
        return false;
    *s = start;
    *n = (size_t)(w->p - start);
    w->p++;
    return true;
}

static bool digits(struct walk *w)
{
    const char *s = w->p;
    while (w->p < w->end && *w->p >= '0' && *w->p <= '9')
        w->p++;
    return w->p > s;
}

/* A number; an unsigned integer that fits 64 bits is put in *out and *kept set. */
static bool parse_number(struct walk *w, uint64_t *out, bool *kept)
{
    bool neg = w->p < w->end && *w->p == '-';
    if (neg)
        w->p++;
    const char *int_start = w->p;
    if (!digits(w) || (*int_start == '0' && w->p - int_start > 1))
        return false;
    const char *int_end = w->p;
    bool integer = true;
    if (w->p < w->end && *w->p == '.') {
        w->p++;
        integer = false;
        if (!digits(w))
            return false;
    }
    if (w->p < w->end && (*w->p == 'e' || *w->p == 'E')) {
        w->p++;
        integer = false;
        if (w->p < w->end && (*w->p == '+' || *w->p == '-'))
            w->p++;
        if (!digits(w))
            return false;
    }
    if (neg || !integer)
        return true;
    uint64_t v = 0;
    for (const char *d = int_start; d < int_end; d++) {
        unsigned dig = (unsigned)(*d - '0');
        if (v > (UINT64_MAX - dig) / 10)
            return true; /* too large to be a sequence: not kept */
        v = v * 10 + dig;
    }
    *out = v;
    *kept = true;
    return true;
}

static bool literal(struct walk *w, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(w->end - w->p) < n || memcmp(w->p, lit, n) != 0)
        return false;
    w->p += n;
    return true;
}

static bool key_is(const char *k, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(k, want, n) == 0;
}

/* The slot of member key k inside an object at slot parent. */
static enum slot child_slot(enum slot parent, const char *k, size_t n)
{
    if (parent == S_TOP) {
        if (key_is(k, n, "seq"))
            return S_SEQ;
        if (key_is(k, n, "state"))
            return S_STATE;
        if (key_is(k, n, "error"))
            return S_ERROR;
        if (key_is(k, n, "num_pending"))
            return S_NUM_PENDING;
    } else if (parent == S_STATE && key_is(k, n, "last_seq")) {
        return S_LAST_SEQ;
    } else if (parent == S_ERROR) {
        if (key_is(k, n, "err_code"))
            return S_ERR_CODE;
        if (key_is(k, n, "code"))
            return S_CODE;
    }
    return S_NONE;
}

/* Keep an unsigned integer found at slot s. */
static void store_number(struct jsreply *r, enum slot s, uint64_t v)
{
    switch (s) {
    case S_SEQ:
        r->seq = v;
        r->has_seq = true;
        break;
    case S_LAST_SEQ:
        r->last_seq = v;
        r->has_last_seq = true;
        break;
    case S_ERR_CODE:
        r->err_code = v;
        break;
    case S_NUM_PENDING:
        r->num_pending = v;
        r->has_num_pending = true;
        break;
    case S_CODE:
        r->code = v;
        break;
    default:
        break;
    }
}

static bool parse_value(struct walk *w, enum slot s, unsigned depth);

static bool parse_object(struct walk *w, enum slot s, unsigned depth)
{
    w->p++; /* '{' */
    if (s == S_ERROR)
        w->r->has_error = true;
    skip_ws(w);
    if (w->p < w->end && *w->p == '}') {
        w->p++;
        return true;
    }
    for (;;) {
        const char *k;
        size_t n;
        skip_ws(w);
        if (!parse_string(w, &k, &n))
            return false;
        skip_ws(w);
        if (w->p >= w->end || *w->p++ != ':')
            return false;
        if (!parse_value(w, child_slot(s, k, n), depth + 1))
            return false;
        skip_ws(w);
        if (w->p >= w->end)
            return false;
        char c = *w->p++;
        if (c == '}')
            return true;
        if (c != ',')
            return false;
    }
}

static bool parse_array(struct walk *w, unsigned depth)
{
    w->p++; /* '[' */
    skip_ws(w);
    if (w->p < w->end && *w->p == ']') {
        w->p++;
        return true;
    }
    for (;;) {
        if (!parse_value(w, S_NONE, depth + 1))
            return false;
        skip_ws(w);
        if (w->p >= w->end)
            return false;
        char c = *w->p++;
        if (c == ']')
            return true;
        if (c != ',')
            return false;
    }
}

static bool parse_value(struct walk *w, enum slot s, unsigned depth)
{
    if (depth > JSREPLY_MAX_DEPTH)
        return false;
    skip_ws(w);
    if (w->p >= w->end)
        return false;
    const char *k;
    size_t n;
    uint64_t v;
    bool kept = false;
    switch (*w->p) {
    case '{':
        return parse_object(w, s, depth);
    case '[':
        return parse_array(w, depth);
    case '"':
        return parse_string(w, &k, &n);
    case 't':
        return literal(w, "true");
    case 'f':
        return literal(w, "false");
    case 'n':
        return literal(w, "null");
    default:
        if (!parse_number(w, &v, &kept))
            return false;
        if (kept)
            store_number(w->r, s, v);
        return true;
    }
}

int jsreply_parse(const char *p, size_t len, struct jsreply *r)
{
    memset(r, 0, sizeof(*r));
    struct walk w = {p, p + len, r};
    skip_ws(&w);
    if (w.p >= w.end || *w.p != '{' || !parse_value(&w, S_TOP, 1))
        return -1;
    skip_ws(&w);
    return w.p == w.end ? 0 : -1;
}

/* ---- $JS.ACK subjects -------------------------------------------------------------------- */

/* Token i (0-based) of subj as an unsigned decimal without leading zeros; false if not. */
static bool token_u64(const char *t, size_t n, uint64_t *v)
{
    if (n == 0 || n > 20 || (n > 1 && t[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        unsigned d = (unsigned)(t[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

#define ACK_MAX_TOKENS 12

int jsreply_ack_meta(const char *subj, size_t len, struct jsack *a)
{
    const char *tok[ACK_MAX_TOKENS];
    size_t tlen[ACK_MAX_TOKENS], n = 0;
    const char *s = subj, *end = subj + len;
    while (s <= end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *e = dot ? dot : end;
        if (n == ACK_MAX_TOKENS || e == s)
            return -1; /* too many tokens, or an empty one */
        tok[n] = s;
        tlen[n++] = (size_t)(e - s);
        s = e + 1;
        if (!dot)
            break;
    }
    if ((n != 9 && n != 11 && n != 12) || !key_is(tok[0], tlen[0], "$JS") ||
        !key_is(tok[1], tlen[1], "ACK"))
        return -1;
    size_t at = n == 9 ? 5 : 7; /* the stream sequence's token */
    return token_u64(tok[at], tlen[at], &a->sseq) &&
                   token_u64(tok[at + 1], tlen[at + 1], &a->cseq) &&
                   token_u64(tok[at + 2], tlen[at + 2], &a->ts_ns) &&
                   token_u64(tok[at + 3], tlen[at + 3], &a->pending)
               ? 0
               : -1;
}

int jsreply_ack_seqs(const char *subj, size_t len, uint64_t *sseq, uint64_t *cseq)
{
    struct jsack a;
    if (jsreply_ack_meta(subj, len, &a) != 0)
        return -1;
    *sseq = a.sseq;
    *cseq = a.cseq;
    return 0;
}
