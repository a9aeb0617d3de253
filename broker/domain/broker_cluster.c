/* broker_cluster: what the cluster asks of the broker about sessions — claims before a
 * CONNECT attaches, and sessions leaving for another node or arriving from one (the
 * cluster module moves them; see cluster_sess.c and cluster_give.c). */
#include "broker_int.h"

#include "acl.h"
#include "certattr.h"
#include "topic.h"

#include <string.h>

uint64_t broker_claim(struct broker *b, const char *identity, const char *client_id,
                      const struct certattrs *attrs, bool persistent, bool clean)
{
    return b->cluster.claim
               ? b->cluster.claim(b->cluster.ctx, identity, client_id, attrs, persistent, clean)
               : 0;
}

void broker_claimed(struct broker *b, struct session *s, uint64_t ticket)
{
    if (b->cluster.claimed && ticket)
        b->cluster.claimed(b->cluster.ctx, s, ticket);
}

void broker_release(struct broker *b, struct session *s, int64_t now)
{
    broker__kick_client(b, s, now);
}

struct session *broker_import(struct broker *b, const char *identity, const char *client_id,
                              const struct certattrs *attrs, bool persistent, uint32_t expiry_s,
                              uint8_t version, int64_t now)
{
    struct session *s = broker_find(b, identity, client_id);
    if (s) { /* an older copy of the session (this node's claim lost since) */
        broker__kick_client(b, s, now);
        broker__destroy_session(b, s);
    }
    s = broker__add_session(b, identity, client_id);
    if (b->store)
        session_set_store(s, b->store->session);
    session_set_version(s, version);
    session_set_persistent(s, persistent, expiry_s);
    broker__count_persistent(b, s);
    session_set_offline_since(s, now);
    if (persistent)
        BSTORE(b, session_saved, s, now);
    session_set_attrs(s, certattrs_dup(attrs));
    broker__compile_acl(b, s);
    return s;
}

bool broker_import_sub(struct broker *b, struct session *s, const char *filter, size_t len,
                       uint8_t options, uint32_t sub_id)
{
    size_t glen = 0, flen = len;
    const char *g = NULL, *f = filter;
    if (topic_share_split(filter, len, &g, &glen, &f, &flen) < 0 || !topic_filter_valid(f, flen))
        return false;
    const struct acl_client *acl = session_acl(s);
    if (!acl || !acl_check_subscribe(acl, f, flen)) {
        b->stats.subscribe_denied++;
        return false;
    }
    bool replaced;
    topic_tree_subscribe(b->subs, f, flen, g, glen, s, options, sub_id, &replaced);
    session_sub_add(s, filter, len, options, sub_id);
    if (session_persistent(s))
        BSTORE(b, sub, s, filter, len, options, sub_id, true);
    return true;
}
