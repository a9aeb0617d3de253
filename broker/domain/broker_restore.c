/* broker_restore: sessions and retained messages that arrive from outside the running broker —
 * from disk at start-up (persistence) or from another node (a cluster takeover). Both build a
 * session the same way; one from another node is checked against this node's ACL and stored. */
#include "broker_int.h"

#include "acl.h"
#include "certattr.h"
#include "ident.h"
#include "retain.h"
#include "topic.h"

#include <string.h>

void broker_set_store(struct broker *b, const struct broker_store *st)
{
    b->store = st;
    struct entry *e, *tmp;
    HASH_ITER(hh, b->sessions, e, tmp)
    {
        session_set_store(e->s, st ? st->session : NULL);
    }
}

/* A session without a connection, as it was: offline since offline_since. */
static struct session *add_offline(struct broker *b, const char *identity, const char *client_id,
                                   bool persistent, uint32_t expiry_s, uint8_t version,
                                   int64_t offline_since)
{
    struct session *s = broker__add_session(b, identity, client_id);
    session_set_version(s, version);
    session_set_persistent(s, persistent, expiry_s);
    broker__count_persistent(b, s);
    session_set_offline_since(s, offline_since);
    return s;
}

/* One subscription of such a session into the topic tree and the identity's count; false when
 * it is not a valid filter, or acl is given and does not allow it. */
static bool add_sub(struct broker *b, struct session *s, const char *filter, size_t len,
                    uint8_t options, uint32_t sub_id, const struct acl_client *acl)
{
    size_t glen = 0, flen = len;
    const char *g = NULL, *f = filter;
    if (topic_share_split(filter, len, &g, &glen, &f, &flen) < 0 || !topic_filter_valid(f, flen))
        return false;
    if (acl && !acl_check_subscribe(acl, f, flen)) {
        b->stats.subscribe_denied++;
        return false;
    }
    bool replaced;
    topic_tree_subscribe(b->subs, f, flen, g, glen, s, options, sub_id, &replaced);
    if (session_sub_add(s, filter, len, options, sub_id) == SESSION_SUB_NEW)
        session_ident(s)->subscriptions++;
    return true;
}

struct session *broker_restore_session(struct broker *b, const char *identity,
                                       const char *client_id, uint32_t expiry_s, uint8_t version,
                                       int64_t offline_since)
{
    struct session *s = add_offline(b, identity, client_id, true, expiry_s, version, offline_since);
    broker__compile_acl(b, s);
    return s;
}

void broker_restore_sub(struct broker *b, struct session *s, const char *filter, uint8_t options,
                        uint32_t sub_id)
{
    add_sub(b, s, filter, strlen(filter), options, sub_id, NULL);
}

void broker_restore_retained(struct broker *b, struct msg *m)
{
    retain_set(b->retained, m, NULL); /* the store does not keep who set it */
}

void broker_set_next_msg_id(struct broker *b, uint64_t next)
{
    if (next > b->msg_id)
        b->msg_id = next;
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
    s = add_offline(b, identity, client_id, persistent, expiry_s, version, now);
    if (b->store)
        session_set_store(s, b->store->session);
    if (persistent)
        BSESS(b, session_saved, s, now);
    session_set_attrs(s, certattrs_dup(attrs));
    broker__compile_acl(b, s);
    return s;
}

bool broker_import_sub(struct broker *b, struct session *s, const char *filter, size_t len,
                       uint8_t options, uint32_t sub_id)
{
    const struct acl_client *acl = session_acl(s);
    if (!acl) { /* no ACL in force: nothing may be subscribed */
        b->stats.subscribe_denied++;
        return false;
    }
    if (!add_sub(b, s, filter, len, options, sub_id, acl))
        return false;
    if (session_persistent(s))
        BSESS(b, sub, s, filter, len, options, sub_id, true);
    return true;
}
