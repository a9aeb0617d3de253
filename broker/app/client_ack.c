/* client_ack: acknowledgements of a client's QoS 1/2 publishes that wait for the cluster (the
 * durable stream's or the retained store's acknowledgement, a ticket), sent in the order of the
 * publishes [MQTT-4.6.0-2, -3] while the client goes on being served: its PINGREQs answered,
 * its later publishes routed, its subscriptions delivered. A JetStream leader election stalls
 * acknowledgements for seconds; a device whose keep-alive is shorter must still get its
 * PINGRESP. An acknowledgement due at once while others wait queues behind them. Once
 * CLIENT_ACK_MAX wait, the client is not read any more until the oldest is answered. Slots live
 * in one ring per client, allocated with its first wait and doubled when full (up to the
 * maximum): nothing is allocated per message. */
#include "client_int.h"

#include "xmalloc.h"

#include <stdlib.h>

struct client_ack {
    uint64_t ticket;
    struct client *c;
    uint16_t id;
    uint8_t qos, rc;
    bool waiting;      /* in env->ack_waits */
    UT_hash_handle hh; /* env->ack_waits, by ticket */
};

struct client_acks {
    struct client_ack *slot;
    unsigned head, n, cap;
};

#define FIRST_CAP 8

static struct client_ack *at(const struct client_acks *r, unsigned i)
{
    return &r->slot[(r->head + i) % r->cap];
}

/* Twice the room, the oldest first; the waiting slots move in the wait table with them. */
static void grow(struct client_env *e, struct client_acks *r)
{
    unsigned cap = r->cap ? r->cap * 2 : FIRST_CAP;
    struct client_ack *slot = xcalloc(cap, sizeof(*slot));
    for (unsigned i = 0; i < r->n; i++) {
        struct client_ack *old = at(r, i);
        slot[i] = *old;
        if (old->waiting) {
            HASH_DEL(e->ack_waits, old);
            HASH_ADD(hh, e->ack_waits, ticket, sizeof(slot[i].ticket), &slot[i]);
        }
    }
    free(r->slot);
    r->slot = slot;
    r->head = 0;
    r->cap = cap;
}

static struct client_ack *push(struct client *c, uint8_t qos, uint16_t id)
{
    if (!c->acks)
        c->acks = xcalloc(1, sizeof(*c->acks));
    struct client_acks *r = c->acks;
    if (r->n == r->cap)
        grow(c->env, r);
    struct client_ack *a = at(r, r->n++);
    *a = (struct client_ack){.c = c, .id = id, .qos = qos};
    if (r->n == CLIENT_ACK_MAX)
        c->ack_full = true; /* client.c stops decoding; resumed by client__acks_flush */
    return a;
}

void client__ack_wait(struct client *c, uint8_t qos, uint16_t id, uint64_t ticket)
{
    struct client_ack *a = push(c, qos, id);
    a->ticket = ticket;
    a->waiting = true;
    HASH_ADD(hh, c->env->ack_waits, ticket, sizeof(a->ticket), a);
}

bool client__ack_later(struct client *c, uint8_t qos, uint16_t id, uint8_t rc)
{
    if (!c->acks || !c->acks->n)
        return false;
    push(c, qos, id)->rc = rc;
    return true;
}

bool client__ack_done(struct client_env *e, uint64_t ticket, bool ok)
{
    struct client_ack *a;
    HASH_FIND(hh, e->ack_waits, &ticket, sizeof(ticket), a);
    if (!a)
        return false;
    HASH_DEL(e->ack_waits, a);
    a->waiting = false;
    a->rc = ok ? MQTT_RC_SUCCESS : MQTT_RC_UNSPECIFIED;
    struct client *c = a->c;
    if (!c->ack_queued) { /* answered from the idle handle, not from inside the cluster's drain */
        c->ack_queued = true;
        c->ack_next = e->ack_head;
        e->ack_head = c;
    }
    return true;
}

/* Answer what is due from the oldest on; false when the client is going (a 3.1.1 refusal). */
static bool answer(struct client *c)
{
    struct client_acks *r = c->acks;
    while (r->n && !at(r, 0)->waiting) {
        struct client_ack a = *at(r, 0);
        r->head = (r->head + 1) % r->cap;
        r->n--;
        if (c->state != CS_CONNECTED || !c->session)
            continue;
        client__publish_send(c, a.qos, a.id, a.rc);
        if (c->state == CS_CLOSING)
            return false;
    }
    return true;
}

void client__acks_flush(struct client_env *e)
{
    while (e->ack_head) {
        struct client *c = e->ack_head;
        e->ack_head = c->ack_next;
        c->ack_next = NULL;
        c->ack_queued = false;
        if (!answer(c) || !c->ack_full || c->acks->n == CLIENT_ACK_MAX)
            continue;
        c->ack_full = false;
        if (!c->job && c->state != CS_CLOSING)
            client__input_resume(c); /* what came after the publish that filled the ring */
    }
}

void client__acks_drop(struct client *c)
{
    struct client_env *e = c->env;
    if (c->ack_queued) {
        struct client **pp = &e->ack_head;
        while (*pp != c)
            pp = &(*pp)->ack_next;
        *pp = c->ack_next;
        c->ack_queued = false;
    }
    if (!c->acks)
        return;
    for (unsigned i = 0; i < c->acks->n; i++) {
        struct client_ack *a = at(c->acks, i);
        if (a->waiting)
            HASH_DEL(e->ack_waits, a);
    }
    free(c->acks->slot);
    free(c->acks);
    c->acks = NULL;
}
