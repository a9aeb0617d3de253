/* topic fuzz target. Input = A NUL B: A is tried as a filter, B as a filter and as a topic name.
 * Checks that validation, topic_matches, the subscription tree, the retained store and the
 * filter relations (intersect, covers) agree with each other, and that intersect's answer
 * "yes" is backed by a topic both filters really match. Any disagreement aborts. */
#include "retain.h"
#include "topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXLEN 512

static void fuzz__require(bool ok)
{
    if (!ok)
        abort();
}

static void fuzz__count_sub(void *ctx, const struct topic_sub *s)
{
    ++*(int *)ctx;
}

static bool fuzz__count_msg(void *ctx, struct msg *m)
{
    ++*(int *)ctx;
    return true;
}

static int fuzz__tree_hits(const struct topic_tree *t, const char *topic, size_t len)
{
    int n = 0;
    topic_tree_match(t, topic, len, fuzz__count_sub, NULL, &n);
    return n;
}

/* A topic that both (intersecting, valid) filters match: per level, a literal beats `+`, two
 * `+` become "z", and a `#` on one side lets the other side's remaining levels decide. */
static size_t fuzz__witness(const char *a, size_t alen, const char *b, size_t blen, char *out)
{
    size_t ap = 0, bp = 0, n = 0, levels = 0;
    bool a_hash = false, b_hash = false;
    for (;;) {
        const char *al = a + ap, *bl = b + bp;
        size_t all = 0, bll = 0;
        bool ha = !a_hash && ap <= alen, hb = !b_hash && bp <= blen;
        if (ha) {
            while (ap + all < alen && a[ap + all] != '/')
                all++;
            a_hash = all == 1 && al[0] == '#';
            ha = !a_hash;
        }
        if (hb) {
            while (bp + bll < blen && b[bp + bll] != '/')
                bll++;
            b_hash = bll == 1 && bl[0] == '#';
            hb = !b_hash;
        }
        if (!ha && !hb)
            break;
        const char *l = "z";
        size_t ll = 1;
        if (ha && !(all == 1 && al[0] == '+')) {
            l = al;
            ll = all;
        } else if (hb && !(bll == 1 && bl[0] == '+')) {
            l = bl;
            ll = bll;
        }
        if (levels++)
            out[n++] = '/';
        memcpy(out + n, l, ll);
        n += ll;
        ap += all + 1;
        bp += bll + 1;
    }
    if (levels == 0)
        out[n++] = 'z'; /* "#" against "#": any one-level topic */
    else if (n == 0)
        out[n++] = '/'; /* "" is no name; both filters end in `#` here, so "/" does */
    return n;
}

static void fuzz__filters(const char *a, size_t al, const char *b, size_t bl)
{
    bool ab = topic_filters_intersect(a, al, b, bl);
    fuzz__require(ab == topic_filters_intersect(b, bl, a, al));
    fuzz__require(topic_filter_covers(a, al, a, al));
    if (topic_filter_covers(a, al, b, bl))
        fuzz__require(ab);
    if (!ab)
        return;
    char w[2 * MAXLEN + 2];
    size_t wl = fuzz__witness(a, al, b, bl, w);
    fuzz__require(topic_name_valid(w, wl));
    fuzz__require(topic_matches(a, al, w, wl) && topic_matches(b, bl, w, wl));

    /* Both filters in one tree: the witness reaches both, through one walk. */
    struct topic_tree *t = topic_tree_new();
    int x, y;
    bool rep;
    topic_tree_subscribe(t, a, al, NULL, 0, &x, 0, 0, &rep);
    topic_tree_subscribe(t, b, bl, NULL, 0, &y, 0, 0, &rep);
    fuzz__require(topic_tree_count(t) == 2);
    fuzz__require(fuzz__tree_hits(t, w, wl) == 2);
    fuzz__require(topic_tree_unsubscribe(t, a, al, NULL, 0, &x) == 0);
    fuzz__require(topic_tree_unsubscribe(t, b, bl, NULL, 0, &y) == 0);
    fuzz__require(topic_tree_nodes(t) == 0);
    topic_tree_free(t);
}

static void fuzz__filter_name(const char *f, size_t fl, const char *t, size_t tl)
{
    bool m = topic_matches(f, fl, t, tl);
    /* A name is a filter matching only itself: every relation collapses to matching. */
    fuzz__require(topic_filters_intersect(f, fl, t, tl) == m);
    fuzz__require(topic_filter_covers(f, fl, t, tl) == m);
    fuzz__require(topic_matches(t, tl, t, tl));

    struct topic_tree *tree = topic_tree_new();
    int who;
    bool rep;
    topic_tree_subscribe(tree, f, fl, "g", 1, &who, 0, 0, &rep);
    topic_tree_subscribe(tree, f, fl, NULL, 0, &who, 0, 0, &rep);
    fuzz__require(fuzz__tree_hits(tree, t, tl) == (m ? 1 : 0));
    fuzz__require(topic_tree_unsubscribe(tree, f, fl, NULL, 0, &who) == 0);
    fuzz__require(topic_tree_unsubscribe(tree, f, fl, "g", 1, &who) == 0);
    fuzz__require(topic_tree_count(tree) == 0 && topic_tree_nodes(tree) == 0);
    topic_tree_free(tree);

    struct mqtt_publish p;
    memset(&p, 0, sizeof(p));
    p.payload = (const uint8_t *)"x";
    p.payload_len = 1;
    struct msg *msg = msg_new(t, tl, &p, 0, 1);
    struct retain *r = retain_new();
    retain_set(r, msg, NULL);
    int n = 0;
    retain_match(r, f, fl, fuzz__count_msg, &n);
    fuzz__require(n == (m ? 1 : 0));
    retain_free(r);
    fuzz__require(msg->refs == 1);
    msg_unref(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *a = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t al = nul ? (size_t)(nul - a) : size;
    const char *b = nul ? nul + 1 : "";
    size_t bl = nul ? size - al - 1 : 0;
    if (al > MAXLEN || bl > MAXLEN)
        return 0;
    bool af = topic_filter_valid(a, al), bf = topic_filter_valid(b, bl);
    bool an = topic_name_valid(a, al), bn = topic_name_valid(b, bl);
    fuzz__require(!an || af);
    fuzz__require(!bn || bf);
    fuzz__require(topic_levels(a, al) >= 1);
    const char *g, *f;
    size_t gl, fl;
    if (topic_share_split(a, al, &g, &gl, &f, &fl) == 1)
        fuzz__require(gl > 0 && fl > 0 && g + gl + 1 == f && f + fl == a + al);
    if (af && bf)
        fuzz__filters(a, al, b, bl);
    if (af && bn)
        fuzz__filter_name(a, al, b, bl);
    return 0;
}
