/* topic fuzz target: input = filter NUL topic. Checks the relations between validation,
 * matching, the tree and the filter relations. */
#include <stdint.h>
#include "topic.h"

#include <stdlib.h>
#include <string.h>

static int hits;
static void on_hit(void *ctx, const struct topic_sub *s)
{
    hits++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *f = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t fl = nul ? (size_t)(nul - f) : size;
    const char *t = nul ? nul + 1 : "";
    size_t tl = nul ? size - fl - 1 : 0;
    if (fl > 512 || tl > 512)
        return 0;
    bool fv = topic_filter_valid(f, fl), tv = topic_name_valid(t, tl);
    if (tv && !topic_filter_valid(t, tl))
        abort(); /* every valid name is a valid filter */
    if (!fv || !tv)
        return 0;
    bool m = topic_matches(f, fl, t, tl);
    if (m && (!topic_filters_intersect(f, fl, t, tl) || !topic_filter_covers(f, fl, t, tl)))
        abort();
    if (topic_filter_covers(f, fl, t, tl) != m)
        abort(); /* for a plain name, covering and matching are the same */
    struct topic_tree *tree = topic_tree_new();
    bool rep;
    int who;
    topic_tree_subscribe(tree, f, fl, NULL, 0, &who, 0, 0, &rep);
    hits = 0;
    topic_tree_match(tree, t, tl, on_hit, NULL, NULL);
    if (hits != (m ? 1 : 0))
        abort();
    if (topic_tree_unsubscribe(tree, f, fl, NULL, 0, &who) != 0 || topic_tree_count(tree))
        abort();
    topic_tree_free(tree);
    return 0;
}
