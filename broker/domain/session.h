/* session: one MQTT session's state, online or not, keyed by (identity, client id).
 *
 * Holds what must survive a disconnect: subscriptions, the outgoing in-flight window (QoS 1/2
 * messages sent but not acknowledged), incoming QoS 2 packet ids awaiting PUBREL, the queue of
 * messages not yet sent, the will. Every queue is bounded by limits fixed at creation. Pure
 * state: no I/O, no clock (time is passed in), no knowledge of the connection that serves it
 * beyond an opaque pointer. */
#ifndef CERTMQ_SESSION_H
#define CERTMQ_SESSION_H

#include "msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl_client;
struct certattrs;
struct session_delivery;

struct session_limits {
    uint32_t max_inflight;     /* outgoing QoS 1/2 window (>= 1) */
    uint32_t max_queued;       /* messages waiting behind the window */
    uint64_t max_queued_bytes; /* 0 = no byte limit */
    bool queue_qos0_offline;   /* keep QoS 0 for offline sessions */
};

struct session;

/* Where a persistent session's changes go to be made durable (persist module). Every callback
 * is optional; the session only calls it while it is persistent. */
struct session_store {
    void *ctx;
    void (*enqueued)(void *ctx, const struct session *s, const struct session_delivery *d);
    void (*sent)(void *ctx, const struct session *s, uint64_t seq, uint16_t id);
    void (*released)(void *ctx, const struct session *s, uint64_t seq); /* PUBREC received */
    void (*removed)(void *ctx, const struct session *s, uint64_t seq);
    void (*cleared)(void *ctx, const struct session *s);
    void (*qos2_in)(void *ctx, const struct session *s, uint16_t id, bool add);
};

struct session *session_new(const char *identity, const char *client_id,
                            const struct session_limits *lim);
/* Releases every message reference, the will and the compiled ACL. Subscriptions must have
 * been removed from the topic tree by the caller (see session_sub_*). */
void session_free(struct session *s);

const char *session_identity(const struct session *s);
const char *session_client_id(const struct session *s);
/* Hash key: identity, NUL, client id. */
const char *session_key(const struct session *s, size_t *len);

void session_set_store(struct session *s, const struct session_store *store);
/* Restore one stored delivery: queued (id 0), in flight (id set, released = PUBREC seen). */
void session_restore(struct session *s, const struct session_delivery *d, uint16_t id,
                     bool released);
/* Cluster: a delivery handed over by another node, stored like a new one (persistent sessions). */
void session_import(struct session *s, const struct session_delivery *d, uint16_t id,
                    bool released);
void session_set_client(struct session *s, void *client);
void *session_client(const struct session *s);
void session_set_acl(struct session *s, struct acl_client *acl); /* takes ownership */
/* The certificate attributes of the session's latest connection (takes ownership; NULL: none,
 * e.g. a session restored from disk), kept to recompile the ACL on reloads. */
void session_set_attrs(struct session *s, struct certattrs *attrs);
const struct certattrs *session_attrs(const struct session *s);
const struct acl_client *session_acl(const struct session *s);

/* Protocol details of the current (or last) connection. */
void session_set_version(struct session *s, uint8_t version);
uint8_t session_version(const struct session *s);
void session_set_persistent(struct session *s, bool persistent, uint32_t expiry_s);
bool session_persistent(const struct session *s);
uint32_t session_expiry_s(const struct session *s);
void session_set_offline_since(struct session *s, int64_t now_ms);
int64_t session_offline_since(const struct session *s);

/* The will: msg (reference taken) plus its QoS and retain flag; NULL clears. delay_s is the
 * MQTT 5 will delay interval. */
void session_set_will(struct session *s, struct msg *will);
void session_set_will_delay(struct session *s, uint32_t delay_s);
uint32_t session_will_delay(const struct session *s);
/* When a delayed will is due (absolute ms), 0 when none is pending. */
void session_set_will_at(struct session *s, int64_t at_ms);
int64_t session_will_at(const struct session *s);
struct msg *session_take_will(struct session *s);        /* caller owns the returned reference */
const struct msg *session_will(const struct session *s); /* NULL: none (or taken) */
/* Cluster: the session has a cluster-wide record (its end must be recorded too). */
void session_set_recorded(struct session *s);
bool session_recorded(const struct session *s);

/* One message on its way to this session. MQTT 5 lets one delivery carry the identifiers of
 * every matching subscription; more than SESSION_MAX_SUB_IDS are not kept. */
#define SESSION_MAX_SUB_IDS 4
struct session_delivery {
    uint64_t seq; /* order within the session, assigned at enqueue (persistence key) */
    struct msg *msg;
    const void *group; /* the shared-subscription group it was given to, or NULL */
    uint32_t sub_ids[SESSION_MAX_SUB_IDS];
    uint8_t n_sub_ids;
    uint8_t qos;
    bool retain;
};

/* Queue a delivery (a reference to d->msg is taken). Returns 0, or -1 when dropped because a
 * limit was reached (or QoS 0 while offline without queue_qos0_offline). */
int session_enqueue(struct session *s, const struct session_delivery *d, bool online);
/* Is the queue at a limit (max_queued, or max_queued_bytes used up), so that session_enqueue
 * would drop anything more? Lets a long delivery (retained messages) stop early. */
bool session_queue_full(const struct session *s);
/* MQTT 5 receive maximum of the connected client: the outgoing window is the smaller of this
 * and max_inflight. 0 restores max_inflight. */
void session_set_window(struct session *s, uint16_t receive_maximum);
/* Hand back every message that came through a shared subscription and is not yet acknowledged
 * (queued, or in flight awaiting PUBACK/PUBREC), removing them from this session, so another
 * member of the group can have them. */
void session_take_shared(struct session *s, void (*cb)(void *ctx, const struct session_delivery *d),
                         void *ctx);
size_t session_queued(const struct session *s);
size_t session_inflight(const struct session *s);
/* The smallest msg id among the messages the session still owes (in flight, then the queue's
 * head: the queue is in arrival order); UINT64_MAX when it owes none. Scans the in-flight
 * window, which the device's receive maximum bounds. */
uint64_t session_oldest_msg_id(const struct session *s);
uint64_t session_dropped(const struct session *s);

/* The next packet the connection should send. */
enum session_out_kind { SESSION_OUT_NONE = 0, SESSION_OUT_PUBLISH, SESSION_OUT_PUBREL };
struct session_out {
    enum session_out_kind kind;
    struct msg *msg; /* borrowed; valid until the session acknowledges or drops it */
    uint8_t qos;
    bool retain;
    bool dup;
    uint16_t id;
    const uint32_t *sub_ids;
    uint8_t n_sub_ids;
};
/* Fills *o with the next packet: first re-sends of the in-flight window after a reconnect
 * (session_resend_all), then queued messages while the window has room. Expired messages
 * (expiry_at <= now) are dropped on the way. QoS 0 messages leave the session when returned. */
bool session_next_out(struct session *s, int64_t now, struct session_out *o);
/* After a reconnect: everything in flight is sent again (PUBLISH with DUP, or PUBREL). */
void session_resend_all(struct session *s);

/* Acknowledgements from the client. Each returns 0, or -1 for an unknown packet id. */
int session_puback(struct session *s, uint16_t id);
int session_pubrec(struct session *s, uint16_t id); /* moves to awaiting PUBCOMP */
int session_pubcomp(struct session *s, uint16_t id);

/* Incoming QoS 2: ids for which PUBREC was sent and PUBREL not yet received. */
bool session_qos2_in_has(const struct session *s, uint16_t id);
void session_qos2_in_add(struct session *s, uint16_t id);
void session_qos2_in_del(struct session *s, uint16_t id);
size_t session_qos2_in_count(const struct session *s);

/* The session's own list of its subscriptions (the topic tree holds the routing side). */
struct session_sub {
    char *filter; /* full filter as subscribed, "$share/g/f" included */
    uint8_t options;
    uint32_t sub_id;
};
/* Subscriptions are found by filter in O(1), so a SUBSCRIBE of n filters costs O(n). */
enum session_sub_added {
    SESSION_SUB_NEW,      /* the filter was new */
    SESSION_SUB_REPLACED, /* an existing subscription got the new options */
    SESSION_SUB_REPEATED, /* the same filter again within one batch (one SUBSCRIBE packet) */
};
/* Starts a batch: a filter added twice within it is SESSION_SUB_REPEATED the second time. */
void session_sub_batch(struct session *s);
enum session_sub_added session_sub_add(struct session *s, const char *filter, size_t len,
                                       uint8_t options, uint32_t sub_id);
bool session_sub_del(struct session *s, const char *filter, size_t len);
const struct session_sub *session_sub_find(const struct session *s, const char *filter, size_t len);
size_t session_sub_count(const struct session *s);
const struct session_sub *session_sub_at(const struct session *s, size_t i);

/* Per-publish de-duplication of overlapping subscriptions: the broker stamps each session it
 * delivers to with the publish's generation. */
uint64_t *session_match_gen(struct session *s);
/* When the broker last logged this session's dropped messages (ms; the broker's to use). */
int64_t *session_drop_logged(struct session *s);
/* The broker's per-identity record of the session (opaque here), so that a publish reaches its
 * identity's meters without a lookup. */
struct ident;
void session_set_ident(struct session *s, struct ident *id);
struct ident *session_ident(const struct session *s);

/* Every delivery not yet acknowledged, in the order the client is owed them: the in-flight
 * window (id set; released = PUBREC seen, d->msg NULL), then the queue (id 0). */
void session_foreach_delivery(const struct session *s,
                              void (*cb)(void *ctx, const struct session_delivery *d, uint16_t id,
                                         bool released),
                              void *ctx);
/* Take every queued (not in flight) delivery out of the session, in order: cb gets each and
 * must take its own reference to d->msg if it keeps it. */
void session_take_queue(struct session *s, void (*cb)(void *ctx, const struct session_delivery *d),
                        void *ctx);
/* Every incoming QoS 2 packet id awaiting PUBREL. */
void session_foreach_qos2_in(const struct session *s, void (*cb)(void *ctx, uint16_t id),
                             void *ctx);
/* Cluster: the ownership epoch this node holds the session under (0: none claimed). */
void session_set_epoch(struct session *s, uint64_t epoch);
uint64_t session_epoch(const struct session *s);

/* Drop everything queued and in flight (clean start on a resumed key). */
void session_clear_messages(struct session *s);

#endif
