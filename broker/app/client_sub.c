/* client_sub: SUBSCRIBE and UNSUBSCRIBE, paced across loop turns.
 *
 * One packet may hold 65,535 filters, each owed a walk of the retained store, so handling it in
 * one go could hold the loop for seconds. Instead every client's subscription work in a loop
 * turn shares one CPU budget (CLIENT_SUB_BUDGET_NS, measured with uv_hrtime between units of
 * work: one filter, or one step of a retained walk). A packet that does not fit becomes a job:
 * the packet is copied (bounded by max_packet_size), the connection is paused, and the job goes
 * on in later turns from an idle handle, clients taking turns. Nothing else the client sent is
 * handled before the job ends (client.c stops decoding while there is one), and its SUBACK,
 * with every reason code in order, goes out at the end; publishes stay queued until then, so
 * the SUBACK still precedes the retained messages it announces.
 *
 * In cluster mode a job may also wait, unqueued and costing nothing, for a cluster ticket
 * (client_env_wait_done): a SUBSCRIBE for the read barrier (the local retained store has caught
 * up with the cluster's), a CONNECT for its session's claim. The connection stays paused
 * meanwhile. (Publishes waiting for the cluster do not pause it: client_ack.c.) */
#include "client_int.h"

#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Subscription CPU per loop turn, for all clients together. */
#define CLIENT_SUB_BUDGET_NS (2 * 1000 * 1000)
/* Retained-store nodes visited between two looks at the clock (a few microseconds). */
#define CLIENT_SUB_WALK_CHUNK 256

struct client_job {
    uint8_t type; /* MQTT_SUBSCRIBE, MQTT_UNSUBSCRIBE or MQTT_CONNECT (waiting for its claim) */
    bool waiting; /* for ticket: in the env's wait table, not in its run queue */
    bool wait_ok; /* how the ticket completed */
    uint64_t ticket;
    struct client *c;
    UT_hash_handle hh; /* env->waits, by ticket */
    uint16_t id, count;
    uint32_t sub_id;
    struct mqtt_sub_iter it; /* the filters left: in the read buffer, then in pkt */
    uint8_t *pkt;            /* the packet, copied once the job outlives the read */
    size_t pkt_len;
    uint8_t *rcs;              /* reason codes so far (count of them allocated) */
    size_t n;                  /* reason codes so far */
    struct broker_retained rw; /* the retained messages of the last filter, if still owed */
};

static void turn_end(uv_check_t *h)
{
    ((struct client_env *)h->data)->sub_spent_ns = 0;
}

static void run_jobs(uv_idle_t *h);

void client__sub_init(struct client_env *e)
{
    uv_idle_init(e->loop, &e->sub_idle);
    e->sub_idle.data = e;
    uv_check_init(e->loop, &e->sub_turn);
    e->sub_turn.data = e;
    uv_check_start(&e->sub_turn, turn_end);
    uv_unref((uv_handle_t *)&e->sub_turn);
}

void client__sub_close(struct client_env *e)
{
    uv_close((uv_handle_t *)&e->sub_idle, NULL);
    uv_close((uv_handle_t *)&e->sub_turn, NULL);
}

static void job_free(struct client *c)
{
    struct client_job *j = c->job;
    if (j->waiting)
        HASH_DEL(c->env->waits, j);
    broker_retained_end(&j->rw);
    free(j->pkt);
    free(j->rcs);
    free(j);
    c->job = NULL;
}

static void send_ack(struct client *c, struct client_job *j)
{
    struct mqtt_packet a = {0};
    a.type = j->type == MQTT_SUBSCRIBE ? MQTT_SUBACK : MQTT_UNSUBACK;
    a.u.suback.id = j->id;
    a.u.suback.rcs = j->rcs;
    a.u.suback.count = (uint16_t)j->n;
    client__send(c, &a);
    conn_want_write(c->conn);
}

/* One filter of a SUBSCRIBE; false after a protocol error (the client is closing). */
static bool subscribe_one(struct client *c, struct client_job *j, struct mqtt_bin f, uint8_t opts)
{
    if (c->version != MQTT_V5)
        opts &= MQTT_SUBOPT_QOS_MASK;
    if ((opts & MQTT_SUBOPT_NO_LOCAL) && f.len > 7 && !memcmp(f.p, "$share/", 7)) {
        client__protocol_error(c, REASON_NO_LOCAL_SHARED);
        return false;
    }
    uint8_t rc = client__memory_refused(c, "SUBSCRIBE")
                     ? MQTT_RC_QUOTA_EXCEEDED
                     : broker_subscribe_begin(c->env->broker, c->session, (const char *)f.p, f.len,
                                              opts, j->sub_id, client__now(c), &j->rw);
    if (c->version != MQTT_V5 && mqtt_rc_failed(rc))
        rc = MQTT_RC_UNSPECIFIED; /* 3.1.1 has one failure code */
    log_msg(LOGL_SUBSCRIBE, "%s %u %.*s -> 0x%02X", c->client_id, opts & 3, f.len,
            (const char *)f.p, rc);
    j->rcs[j->n++] = rc;
    return true;
}

static void unsubscribe_one(struct client *c, struct client_job *j, struct mqtt_bin f)
{
    int x = broker_unsubscribe(c->env->broker, c->session, (const char *)f.p, f.len);
    log_msg(LOGL_UNSUBSCRIBE, "%s %.*s", c->client_id, f.len, (const char *)f.p);
    j->rcs[j->n++] = x == 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
}

/* Work on c's job until it ends or this turn's budget is spent; true when it ended (acked, or
 * dropped because the client is going). */
static bool job_run(struct client *c)
{
    struct client_env *e = c->env;
    struct client_job *j = c->job;
    if (j->type == MQTT_CONNECT) {
        c->claim_granted = j->wait_ok ? 1 : -1;
        uint8_t *pkt = j->pkt;
        size_t len = j->pkt_len;
        j->pkt = NULL;
        job_free(c);
        struct mqtt_packet p;
        if (pkt && c->state == CS_WAIT_CONNECT &&
            codec_decode(pkt, len, c->version, e->o.connect.max_packet_size, &p) > 0)
            client__handle_connect(c, &p);
        free(pkt);
        return true;
    }
    if (c->state != CS_CONNECTED || !c->session) { /* closing, or kicked off its session */
        job_free(c);
        return true;
    }
    uint64_t t0 = uv_hrtime(), t = t0;
    bool more = true;
    while (e->sub_spent_ns + (t - t0) < CLIENT_SUB_BUDGET_NS) {
        struct mqtt_bin f;
        uint8_t opts;
        if (j->rw.active) {
            broker_retained_step(e->broker, c->session, &j->rw, CLIENT_SUB_WALK_CHUNK);
        } else if (j->n >= j->count || !codec_sub_next(&j->it, &f, &opts)) {
            more = false;
            break;
        } else if (j->type == MQTT_UNSUBSCRIBE) {
            unsubscribe_one(c, j, f);
        } else if (!subscribe_one(c, j, f, opts)) {
            job_free(c);
            return true;
        }
        t = uv_hrtime();
    }
    e->sub_spent_ns += uv_hrtime() - t0;
    if (more)
        return false;
    send_ack(c, j);
    job_free(c);
    return true;
}

/* Park c's job until ticket completes (client_env_wait_done). */
static void job_wait(struct client *c, struct client_job *j, uint64_t ticket)
{
    j->ticket = ticket;
    j->waiting = true;
    HASH_ADD(hh, c->env->waits, ticket, sizeof(j->ticket), j);
}

void client__wait_connect(struct client *c, uint64_t ticket)
{
    struct client_job *j = xcalloc(1, sizeof(*j));
    j->type = MQTT_CONNECT;
    j->c = c;
    c->job = j;
    job_wait(c, j, ticket);
}

static void job_start(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_subscribe *sb = &p->u.subscribe;
    struct client_job *j = xcalloc(1, sizeof(*j));
    j->c = c;
    j->type = p->type;
    j->id = sb->id;
    j->count = sb->count;
    j->rcs = xmalloc(sb->count ? sb->count : 1);
    if (p->type == MQTT_SUBSCRIBE && (sb->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)))
        j->sub_id = sb->props.subscription_id;
    codec_sub_iter(sb, p->type == MQTT_SUBSCRIBE, &j->it);
    c->job = j;
    if (p->type == MQTT_SUBSCRIBE)
        session_sub_batch(c->session); /* a filter repeated in this packet: retained once */
    uint64_t barrier = p->type == MQTT_SUBSCRIBE ? broker_retained_barrier(c->env->broker) : 0;
    if (barrier)
        job_wait(c, j, barrier);
    else
        job_run(c);
}

void client__handle_subscribe(struct client *c, const struct mqtt_packet *p)
{
    job_start(c, p);
}

void client__handle_unsubscribe(struct client *c, const struct mqtt_packet *p)
{
    job_start(c, p);
}

static void queue_push(struct client_env *e, struct client *c)
{
    c->job_next = NULL;
    if (e->job_tail)
        e->job_tail->job_next = c;
    else
        e->job_head = c;
    e->job_tail = c;
    c->job_queued = true;
}

static struct client *queue_pop(struct client_env *e)
{
    struct client *c = e->job_head;
    e->job_head = c->job_next;
    if (!e->job_head)
        e->job_tail = NULL;
    c->job_queued = false;
    c->job_next = NULL;
    return c;
}

void client__job_keep(struct client *c, const uint8_t *raw, size_t len)
{
    struct client_job *j = c->job;
    j->pkt = xmalloc(len);
    memcpy(j->pkt, raw, len);
    j->pkt_len = len;
    if (j->type != MQTT_CONNECT) {
        j->it.p = j->pkt + (j->it.p - raw);
        j->it.end = j->pkt + (j->it.end - raw);
    }
    conn_pause(c->conn);
    if (j->waiting)
        return;
    queue_push(c->env, c);
    uv_idle_start(&c->env->sub_idle, run_jobs);
}

void client_env_wait_done(struct client_env *e, uint64_t ticket, bool ok)
{
    if (client__ack_done(e, ticket, ok)) {
        uv_idle_start(&e->sub_idle, run_jobs);
        return;
    }
    struct client_job *j;
    HASH_FIND(hh, e->waits, &ticket, sizeof(ticket), j);
    if (!j) /* its client went away meanwhile */
        return;
    HASH_DEL(e->waits, j);
    j->waiting = false;
    j->wait_ok = ok;
    queue_push(e, j->c);
    uv_idle_start(&e->sub_idle, run_jobs);
}

void client__job_drop(struct client *c)
{
    struct client_env *e = c->env;
    if (c->job_queued) {
        struct client **pp = &e->job_head, *prev = NULL;
        while (*pp != c) {
            prev = *pp;
            pp = &(*pp)->job_next;
        }
        *pp = c->job_next;
        if (e->job_tail == c)
            e->job_tail = prev;
        c->job_queued = false;
    }
    if (c->job)
        job_free(c);
}

/* Idle handles run every turn while active (and keep the poll from blocking). Clients take
 * turns: one whose job is not done goes to the back. */
static void run_jobs(uv_idle_t *h)
{
    struct client_env *e = h->data;
    client__acks_flush(e);
    while (e->job_head && e->sub_spent_ns < CLIENT_SUB_BUDGET_NS) {
        struct client *c = queue_pop(e);
        if (!job_run(c)) {
            queue_push(e, c);
            break;
        }
        if (c->state != CS_CLOSING)
            client__input_resume(c); /* what came after the packet, then reading again */
    }
    if (!e->job_head && !e->ack_head)
        uv_idle_stop(h);
}
