/* broker_cluster: what the cluster asks of the broker about sessions — claims before a
 * CONNECT attaches, and sessions leaving for another node (arriving ones: broker_restore.c;
 * the cluster module moves them, see cluster_sess.c and cluster_give.c). */
#include "broker_int.h"

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

void broker_changed(struct broker *b, struct session *s)
{
    BCHANGED(b, s);
}
