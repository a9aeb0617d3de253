/* session: per-client MQTT state with bounded queues.
 *
 * The in-flight window is a small array kept in send order (at most max_inflight entries, 20 by
 * default), so lookups by packet id scan the window, never the queue. The queue is a ring that
 * grows by doubling up to max_queued. Incoming QoS 2 ids live in a lazily allocated 8 KiB
 * bitmap, which bounds them whatever the client sends. Knows no connection, clock or topic. */
#include "session.h"

#include "acl.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

enum { INF_WAIT_ACK = 0, INF_WAIT_COMP = 1 };

struct inflight {
    struct session_delivery d; /* d.msg is NULL once PUBREC arrived */
    uint16_t id;
    uint8_t state;
    bool sent; /* sent on the current connection */
};

typedef struct session_delivery qitem_t;

struct sub_ent {
    struct session_sub sub;
    size_t pos;     /* index in subs */
    uint64_t batch; /* the batch that last set it */
    UT_hash_handle hh;
};

struct session {
    char *key; /* identity NUL client_id */
    size_t key_len;
    const char *client_id;
    void *client;
    struct acl_client *acl;
    struct certattrs *attrs;
    struct session_limits lim;
    uint8_t version;
    bool persistent;
    bool recorded; /* the cluster was told of it (session_set_recorded) */
    uint32_t expiry_s;
    int64_t offline_since;
    struct msg *will;
    uint32_t will_delay_s;
    int64_t will_at;

    struct inflight *inf;
    uint32_t inf_count, inf_cap;
    uint32_t window; /* effective outgoing window */
    uint16_t next_id;

    qitem_t *q;
    uint32_t q_cap, q_head, q_count;
    uint64_t q_bytes;
    uint64_t dropped;

    uint8_t *qos2_in; /* 65536-bit map */
    uint32_t qos2_in_count;

    const struct session_store *store;
    uint64_t next_seq;

    struct sub_ent **subs; /* in no particular order (removal moves the last one in) */
    size_t sub_count, sub_cap;
    struct sub_ent *sub_index; /* uthash by filter: a SUBSCRIBE costs O(1) per filter */
    uint64_t sub_batch;        /* session_sub_batch(): the SUBSCRIBE packet being handled */

    uint64_t match_gen;
    uint64_t epoch;
    int64_t drop_logged;
    struct ident *ident;
    struct msg *out0; /* the QoS 0 message last returned by session_next_out */
    qitem_t out0_d;
};

static struct inflight *inf_push(struct session *s);

struct session *session_new(const char *identity, const char *client_id,
                            const struct session_limits *lim)
{
    struct session *s = xcalloc(1, sizeof(*s));
    size_t il = strlen(identity), cl = strlen(client_id);
    s->key_len = il + 1 + cl;
    s->key = xmalloc(s->key_len + 1);
    memcpy(s->key, identity, il + 1);
    memcpy(s->key + il + 1, client_id, cl + 1);
    s->client_id = s->key + il + 1;
    s->lim = *lim;
    if (s->lim.max_inflight == 0)
        s->lim.max_inflight = 1;
    if (s->lim.max_inflight > 65535)
        s->lim.max_inflight = 65535;
    s->window = s->lim.max_inflight; /* s->inf grows on demand: idle sessions stay small */
    s->next_id = 1;
    return s;
}

/* Calls a store callback when the session is persistent and the store has it. */
#define STORE(s, fn, ...)                                                                          \
    do {                                                                                           \
        if ((s)->persistent && (s)->store && (s)->store->fn)                                       \
            (s)->store->fn((s)->store->ctx, (s), __VA_ARGS__);                                     \
    } while (0)

void session_clear_messages(struct session *s)
{
    if ((s->inf_count || s->q_count || s->qos2_in_count) && s->persistent && s->store &&
        s->store->cleared)
        s->store->cleared(s->store->ctx, s);
    for (uint32_t i = 0; i < s->inf_count; i++)
        msg_unref(s->inf[i].d.msg);
    s->inf_count = 0;
    msg_unref(s->out0);
    s->out0 = NULL;
    for (uint32_t i = 0; i < s->q_count; i++)
        msg_unref(s->q[(s->q_head + i) % s->q_cap].msg);
    s->q_count = 0;
    s->q_head = 0;
    s->q_bytes = 0;
    free(s->qos2_in);
    s->qos2_in = NULL;
    s->qos2_in_count = 0;
}

void session_free(struct session *s)
{
    if (!s)
        return;
    session_clear_messages(s);
    free(s->inf);
    free(s->q);
    msg_unref(s->will);
    acl_client_free(s->acl);
    certattrs_free(s->attrs);
    HASH_CLEAR(hh, s->sub_index);
    for (size_t i = 0; i < s->sub_count; i++) {
        free(s->subs[i]->sub.filter);
        free(s->subs[i]);
    }
    free(s->subs);
    free(s->key);
    free(s);
}

const char *session_identity(const struct session *s)
{
    return s->key;
}

const char *session_client_id(const struct session *s)
{
    return s->client_id;
}

const char *session_key(const struct session *s, size_t *len)
{
    *len = s->key_len;
    return s->key;
}

void session_set_store(struct session *s, const struct session_store *store)
{
    s->store = store;
}

void session_restore(struct session *s, const struct session_delivery *d, uint16_t id,
                     bool released)
{
    if (d->seq >= s->next_seq)
        s->next_seq = d->seq + 1;
    if (!id || s->inf_count >= s->lim.max_inflight) {
        const struct session_store *keep = s->store;
        s->store = NULL; /* already stored */
        struct session_delivery q = *d;
        q.seq = 0;
        session_enqueue(s, &q, false);
        s->q[(s->q_head + s->q_count - 1) % s->q_cap].seq = d->seq;
        s->store = keep;
        return;
    }
    struct inflight *f = inf_push(s);
    f->d = *d;
    f->d.msg = released ? NULL : msg_ref(d->msg);
    f->id = id;
    f->state = released ? INF_WAIT_COMP : INF_WAIT_ACK;
    f->sent = false; /* sent again (DUP) on the next connection */
}

void session_import(struct session *s, const struct session_delivery *d, uint16_t id, bool released)
{
    struct session_delivery q = *d;
    q.seq = s->next_seq;
    uint32_t inflight = s->inf_count;
    session_restore(s, &q, id, released);
    if (released) /* nothing left to store but a packet id: kept in memory only */
        return;
    STORE(s, enqueued, &q);
    if (s->inf_count > inflight)
        STORE(s, sent, q.seq, id);
}

void session_set_client(struct session *s, void *client)
{
    s->client = client;
}

void *session_client(const struct session *s)
{
    return s->client;
}

void session_set_acl(struct session *s, struct acl_client *acl)
{
    acl_client_free(s->acl);
    s->acl = acl;
}

void session_set_attrs(struct session *s, struct certattrs *attrs)
{
    certattrs_free(s->attrs);
    s->attrs = attrs;
}

const struct certattrs *session_attrs(const struct session *s)
{
    return s->attrs;
}

const struct acl_client *session_acl(const struct session *s)
{
    return s->acl;
}

void session_set_version(struct session *s, uint8_t version)
{
    s->version = version;
}

uint8_t session_version(const struct session *s)
{
    return s->version;
}

void session_set_persistent(struct session *s, bool persistent, uint32_t expiry_s)
{
    s->persistent = persistent;
    s->expiry_s = expiry_s;
}

bool session_persistent(const struct session *s)
{
    return s->persistent;
}

uint32_t session_expiry_s(const struct session *s)
{
    return s->expiry_s;
}

void session_set_offline_since(struct session *s, int64_t now_ms)
{
    s->offline_since = now_ms;
}

int64_t session_offline_since(const struct session *s)
{
    return s->offline_since;
}

void session_set_will(struct session *s, struct msg *will)
{
    msg_unref(s->will);
    s->will = will ? msg_ref(will) : NULL;
    s->will_at = 0;
    s->will_delay_s = 0;
}

const struct msg *session_will(const struct session *s)
{
    return s->will;
}

void session_set_recorded(struct session *s)
{
    s->recorded = true;
}

bool session_recorded(const struct session *s)
{
    return s->recorded;
}

struct msg *session_take_will(struct session *s)
{
    struct msg *w = s->will;
    s->will = NULL;
    s->will_at = 0;
    return w;
}

void session_set_will_delay(struct session *s, uint32_t delay_s)
{
    s->will_delay_s = delay_s;
}

uint32_t session_will_delay(const struct session *s)
{
    return s->will_delay_s;
}

void session_set_will_at(struct session *s, int64_t at_ms)
{
    s->will_at = at_ms;
}

int64_t session_will_at(const struct session *s)
{
    return s->will ? s->will_at : 0;
}

/* ---- queue -------------------------------------------------------------------------------- */

static qitem_t q_pop(struct session *s);

/* A free in-flight slot; the caller has checked the window. */
static struct inflight *inf_push(struct session *s)
{
    if (s->inf_count == s->inf_cap) {
        uint32_t cap = s->inf_cap ? s->inf_cap * 2 : 4;
        if (cap > s->lim.max_inflight)
            cap = s->lim.max_inflight;
        s->inf = xrealloc(s->inf, cap * sizeof(*s->inf));
        s->inf_cap = cap;
    }
    return &s->inf[s->inf_count++];
}

bool session_queue_full(const struct session *s)
{
    return s->q_count >= s->lim.max_queued ||
           (s->lim.max_queued_bytes && s->q_bytes >= s->lim.max_queued_bytes);
}

int session_enqueue(struct session *s, const struct session_delivery *d, bool online)
{
    if (d->qos == 0 && !online && !s->lim.queue_qos0_offline)
        return -1;
    size_t sz = msg_size(d->msg);
    if (s->q_count >= s->lim.max_queued ||
        (s->lim.max_queued_bytes && s->q_bytes + sz > s->lim.max_queued_bytes)) {
        s->dropped++;
        return -1;
    }
    if (s->q_count == s->q_cap) {
        uint32_t cap = s->q_cap ? s->q_cap * 2 : 8;
        if (cap > s->lim.max_queued)
            cap = s->lim.max_queued;
        qitem_t *q = xmalloc(cap * sizeof(*q));
        for (uint32_t i = 0; i < s->q_count; i++)
            q[i] = s->q[(s->q_head + i) % s->q_cap];
        free(s->q);
        s->q = q;
        s->q_cap = cap;
        s->q_head = 0;
    }
    qitem_t *it = &s->q[(s->q_head + s->q_count) % s->q_cap];
    *it = *d;
    it->seq = s->next_seq++;
    msg_ref(it->msg);
    s->q_count++;
    s->q_bytes += sz;
    STORE(s, enqueued, it);
    return 0;
}

void session_set_window(struct session *s, uint16_t receive_maximum)
{
    s->window = receive_maximum && receive_maximum < s->lim.max_inflight ? receive_maximum
                                                                         : s->lim.max_inflight;
}

void session_take_shared(struct session *s, void (*cb)(void *ctx, const struct session_delivery *d),
                         void *ctx)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < s->inf_count; i++) {
        struct inflight *f = &s->inf[i];
        if (f->d.group && f->state == INF_WAIT_ACK) {
            cb(ctx, &f->d);
            STORE(s, removed, f->d.seq);
            msg_unref(f->d.msg);
        } else {
            s->inf[keep++] = *f;
        }
    }
    s->inf_count = keep;
    uint32_t n = s->q_count;
    for (uint32_t i = 0; i < n; i++) {
        qitem_t it = q_pop(s);
        if (it.group) {
            cb(ctx, &it);
            STORE(s, removed, it.seq);
            msg_unref(it.msg);
        } else {
            /* Back in at the tail: after n pops and pushes the order is unchanged. */
            s->q[(s->q_head + s->q_count) % s->q_cap] = it;
            s->q_count++;
            s->q_bytes += msg_size(it.msg);
        }
    }
}

size_t session_queued(const struct session *s)
{
    return s->q_count;
}

size_t session_inflight(const struct session *s)
{
    return s->inf_count;
}

uint64_t session_oldest_msg_id(const struct session *s)
{
    uint64_t id = UINT64_MAX;
    for (uint32_t i = 0; i < s->inf_count; i++)
        if (s->inf[i].d.msg && s->inf[i].d.msg->id < id)
            id = s->inf[i].d.msg->id;
    if (s->q_count && s->q[s->q_head].msg && s->q[s->q_head].msg->id < id)
        id = s->q[s->q_head].msg->id;
    return id;
}

uint64_t session_dropped(const struct session *s)
{
    return s->dropped;
}

static qitem_t q_pop(struct session *s)
{
    qitem_t it = s->q[s->q_head];
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_count--;
    s->q_bytes -= msg_size(it.msg);
    return it;
}

static bool id_in_use(const struct session *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->inf_count; i++)
        if (s->inf[i].id == id)
            return true;
    return false;
}

static uint16_t alloc_id(struct session *s)
{
    /* The window is far smaller than 65535, so this terminates quickly. */
    for (;;) {
        uint16_t id = s->next_id++;
        if (s->next_id == 0)
            s->next_id = 1;
        if (id && !id_in_use(s, id))
            return id;
    }
}

static void fill_out(struct session_out *o, const struct session_delivery *d)
{
    o->msg = d->msg;
    o->qos = d->qos;
    o->retain = d->retain;
    o->sub_ids = d->sub_ids;
    o->n_sub_ids = d->n_sub_ids;
}

static void fill_from_inflight(struct session_out *o, struct inflight *f)
{
    o->kind = f->state == INF_WAIT_COMP ? SESSION_OUT_PUBREL : SESSION_OUT_PUBLISH;
    fill_out(o, &f->d);
    o->dup = f->state == INF_WAIT_ACK; /* only reached for re-sends */
    o->id = f->id;
}

bool session_next_out(struct session *s, int64_t now, struct session_out *o)
{
    memset(o, 0, sizeof(*o));
    msg_unref(s->out0);
    s->out0 = NULL;
    for (uint32_t i = 0; i < s->inf_count; i++) {
        struct inflight *f = &s->inf[i];
        if (!f->sent) {
            f->sent = true;
            fill_from_inflight(o, f);
            return true;
        }
    }
    while (s->q_count) {
        qitem_t *head = &s->q[s->q_head];
        if (head->qos > 0 && s->inf_count >= s->window)
            return false;
        qitem_t it = q_pop(s);
        if (it.msg->expiry_at && it.msg->expiry_at <= now) {
            STORE(s, removed, it.seq);
            msg_unref(it.msg);
            continue;
        }
        o->kind = SESSION_OUT_PUBLISH;
        if (it.qos == 0) {
            STORE(s, removed, it.seq);
            s->out0 = it.msg; /* keeps the message alive until the caller has encoded it */
            s->out0_d = it;
            fill_out(o, &s->out0_d);
            return true;
        }
        struct inflight *f = inf_push(s);
        f->d = it;
        f->state = INF_WAIT_ACK;
        f->sent = true;
        f->id = alloc_id(s);
        STORE(s, sent, f->d.seq, f->id);
        fill_out(o, &f->d);
        o->id = f->id;
        return true;
    }
    return false;
}

void session_resend_all(struct session *s)
{
    for (uint32_t i = 0; i < s->inf_count; i++)
        s->inf[i].sent = false;
}

static int inf_find(const struct session *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->inf_count; i++)
        if (s->inf[i].id == id)
            return (int)i;
    return -1;
}

static void inf_remove(struct session *s, int i)
{
    STORE(s, removed, s->inf[i].d.seq);
    msg_unref(s->inf[i].d.msg);
    memmove(&s->inf[i], &s->inf[i + 1], (s->inf_count - (uint32_t)i - 1) * sizeof(*s->inf));
    s->inf_count--;
}

int session_puback(struct session *s, uint16_t id)
{
    int i = inf_find(s, id);
    if (i < 0 || s->inf[i].d.qos != 1)
        return -1;
    inf_remove(s, i);
    return 0;
}

int session_pubrec(struct session *s, uint16_t id)
{
    int i = inf_find(s, id);
    if (i < 0 || s->inf[i].d.qos != 2)
        return -1;
    struct inflight *f = &s->inf[i];
    if (f->state == INF_WAIT_ACK) {
        msg_unref(f->d.msg);
        f->d.msg = NULL;
        f->state = INF_WAIT_COMP;
        STORE(s, released, f->d.seq);
    }
    /* A duplicate PUBREC is answered with PUBREL again. */
    f->sent = false;
    return 0;
}

int session_pubcomp(struct session *s, uint16_t id)
{
    int i = inf_find(s, id);
    if (i < 0 || s->inf[i].state != INF_WAIT_COMP)
        return -1;
    inf_remove(s, i);
    return 0;
}

/* ---- incoming QoS 2 ------------------------------------------------------------------------- */

bool session_qos2_in_has(const struct session *s, uint16_t id)
{
    return s->qos2_in && (s->qos2_in[id >> 3] & (1u << (id & 7)));
}

void session_qos2_in_add(struct session *s, uint16_t id)
{
    if (!s->qos2_in)
        s->qos2_in = xcalloc(8192, 1);
    if (!session_qos2_in_has(s, id)) {
        s->qos2_in[id >> 3] |= (uint8_t)(1u << (id & 7));
        s->qos2_in_count++;
        STORE(s, qos2_in, id, true);
    }
}

void session_qos2_in_del(struct session *s, uint16_t id)
{
    if (!session_qos2_in_has(s, id))
        return;
    STORE(s, qos2_in, id, false);
    s->qos2_in[id >> 3] &= (uint8_t) ~(1u << (id & 7));
    if (--s->qos2_in_count == 0) {
        free(s->qos2_in);
        s->qos2_in = NULL;
    }
}

size_t session_qos2_in_count(const struct session *s)
{
    return s->qos2_in_count;
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static struct sub_ent *sub_find(const struct session *s, const char *f, size_t len)
{
    struct sub_ent *e;
    HASH_FIND(hh, s->sub_index, f, len, e);
    return e;
}

void session_sub_batch(struct session *s)
{
    s->sub_batch++;
}

enum session_sub_added session_sub_add(struct session *s, const char *filter, size_t len,
                                       uint8_t options, uint32_t sub_id)
{
    struct sub_ent *e = sub_find(s, filter, len);
    if (e) {
        e->sub.options = options;
        e->sub.sub_id = sub_id;
        bool repeated = e->batch == s->sub_batch;
        e->batch = s->sub_batch;
        return repeated ? SESSION_SUB_REPEATED : SESSION_SUB_REPLACED;
    }
    if (s->sub_count == s->sub_cap) {
        s->sub_cap = s->sub_cap ? s->sub_cap * 2 : 4;
        s->subs = xrealloc(s->subs, s->sub_cap * sizeof(*s->subs));
    }
    e = xmalloc(sizeof(*e));
    e->sub.filter = xstrndup(filter, len);
    e->sub.options = options;
    e->sub.sub_id = sub_id;
    e->batch = s->sub_batch;
    e->pos = s->sub_count;
    s->subs[s->sub_count++] = e;
    HASH_ADD_KEYPTR(hh, s->sub_index, e->sub.filter, len, e);
    return SESSION_SUB_NEW;
}

bool session_sub_del(struct session *s, const char *filter, size_t len)
{
    struct sub_ent *e = sub_find(s, filter, len);
    if (!e)
        return false;
    HASH_DEL(s->sub_index, e);
    struct sub_ent *last = s->subs[--s->sub_count];
    s->subs[e->pos] = last;
    last->pos = e->pos;
    free(e->sub.filter);
    free(e);
    return true;
}

const struct session_sub *session_sub_find(const struct session *s, const char *filter, size_t len)
{
    struct sub_ent *e = sub_find(s, filter, len);
    return e ? &e->sub : NULL;
}

size_t session_sub_count(const struct session *s)
{
    return s->sub_count;
}

const struct session_sub *session_sub_at(const struct session *s, size_t i)
{
    return &s->subs[i]->sub;
}

uint64_t *session_match_gen(struct session *s)
{
    return &s->match_gen;
}

int64_t *session_drop_logged(struct session *s)
{
    return &s->drop_logged;
}

void session_foreach_delivery(const struct session *s,
                              void (*cb)(void *ctx, const struct session_delivery *d, uint16_t id,
                                         bool released),
                              void *ctx)
{
    for (uint32_t i = 0; i < s->inf_count; i++)
        cb(ctx, &s->inf[i].d, s->inf[i].id, s->inf[i].state == INF_WAIT_COMP);
    for (uint32_t i = 0; i < s->q_count; i++)
        cb(ctx, &s->q[(s->q_head + i) % s->q_cap], 0, false);
}

void session_foreach_qos2_in(const struct session *s, void (*cb)(void *ctx, uint16_t id), void *ctx)
{
    if (!s->qos2_in_count)
        return;
    for (uint32_t id = 1; id <= 65535; id++)
        if (s->qos2_in[id >> 3] & (1u << (id & 7)))
            cb(ctx, (uint16_t)id);
}

void session_set_epoch(struct session *s, uint64_t epoch)
{
    if (epoch > s->epoch) /* a late, older claim must not take the session back */
        s->epoch = epoch;
}

uint64_t session_epoch(const struct session *s)
{
    return s->epoch;
}

void session_take_queue(struct session *s, void (*cb)(void *ctx, const struct session_delivery *d),
                        void *ctx)
{
    while (s->q_count) {
        qitem_t it = q_pop(s);
        cb(ctx, &it);
        STORE(s, removed, it.seq);
        msg_unref(it.msg);
    }
}

void session_set_ident(struct session *s, struct ident *id)
{
    s->ident = id;
}

struct ident *session_ident(const struct session *s)
{
    return s->ident;
}
