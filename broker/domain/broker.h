/* broker: sessions, routing and retained messages; the MQTT domain without any I/O.
 *
 * publish -> ACL write check -> retained store -> topic tree match -> per-subscriber ACL read
 * check -> session queue. Connections are opaque `client` pointers that the broker only hands
 * back through the client ops (wake up to send, kick on takeover); plugins and the like see it
 * through the policy slots. Time is passed in as `now` (ms). */
#ifndef CERTMQ_BROKER_H
#define CERTMQ_BROKER_H

#include "msg.h"
#include "quota.h"
#include "reason.h"
#include "retain.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;
struct certattrs;

struct broker_limits {
    struct session_limits session;
    uint32_t max_topic_length;                /* bytes */
    uint32_t max_topic_levels;                /* 0 = unlimited */
    uint32_t max_subscriptions_per_client;    /* 0 = unlimited */
    uint32_t persistent_client_expiration;    /* s; 0 = never (3.1.1 sessions) */
    uint32_t max_retained_messages;           /* 0 = unlimited */
    uint64_t max_retained_bytes;              /* topic + payload of all retained; 0 = unlimited */
    uint64_t max_retained_bytes_per_identity; /* ...of those one identity set; 0 = unlimited */
    uint32_t max_persistent_sessions_per_identity; /* outliving their connection; 0 = none */
    /* Connected clients of one identity at once; 0 = unlimited. An ACL `match` block's
     * `limit max_connections_per_identity N` overrides it for the devices it selects. */
    uint32_t max_connections_per_identity;
    /* Publish rates, subscriptions and retained messages per identity (quota.h); a match
     * block's `limit` overrides each for the devices it selects. 0 = unlimited. */
    struct quota_limits per_identity;
    uint32_t rate_burst_s; /* a rate's bucket holds this many seconds' worth (>= 1) */
    bool retain_available;
    bool upgrade_outgoing_qos;
};

/* What the broker asks of a connected client; the client module registers these. client is the
 * pointer given to broker_attach. */
struct broker_client_ops {
    /* The online client of a session has something to send. */
    void (*wakeup)(void *client);
    /* Another connection took the session over: the client must detach from its session
     * (broker_detach is not to be called for it) and close for the given reason. */
    void (*kick)(void *client, enum reason why);
};

/* Policy beyond the ACL file, and observers (the plugin module fills these); every slot is
 * optional and gets ctx. */
struct broker_policy {
    void *ctx;
    /* A further check after the ACL file allowed a publish (ACL_WRITE) or a delivery
     * (ACL_READ) on a NUL-terminated topic; false denies. */
    bool (*acl)(void *ctx, const struct session *s, const char *topic, int access);
    /* A message from a client passed every check. */
    void (*observe)(void *ctx, const struct session *from, const struct msg *m);
    /* A client attached to s (broker_attach) from peer ("ip:port"). */
    void (*connected)(void *ctx, const struct session *s, const char *peer);
    /* The client attached to s is gone: broker_detach, or kicked by a takeover. Exactly once
     * per connected. */
    void (*disconnected)(void *ctx, const struct session *s);
};

/* The cluster (cluster module, cluster mode only) fills these; broker never knows NATS. */
struct broker_cluster {
    void *ctx;
    /* A message from a local client passed every check and was routed locally: send it to
     * the other nodes. Not called for the broker's own messages ($SYS) nor for messages that
     * came from another node. Returns a ticket (> 0) when the publisher's acknowledgement is to
     * wait until the cluster has made m durable, BROKER_TICKET_FAILED when it cannot now, 0
     * when there is nothing to wait for. */
    uint64_t (*publish)(void *ctx, const struct session *from, const struct msg *m, int64_t now);
    /* A filter (group NULL) gained its first / lost its last non-shared subscriber on this
     * node, or a shared group on a filter its first / last member (add tells which). */
    void (*interest)(void *ctx, const char *filter, size_t flen, const char *group, size_t glen,
                     bool add);
    /* Shared groups are served cluster-wide: a local publish picks no group member here; each
     * message comes back once, for one node's group, through broker_deliver_remote. */
    bool shared_remote;
    /* Retained messages are cluster-wide (optional): a retained set or clear from a local
     * client that passed the limits goes here instead of into the local store, which the
     * cluster feeds back through broker_retained_apply in the cluster's order. Returns a ticket
     * (> 0) that completes when the cluster store accepted it, or 0 when it cannot be written
     * now (not retained anywhere; the publish is still delivered). */
    uint64_t (*retain)(void *ctx, const struct session *from, const struct msg *m, int64_t now);
    /* Read barrier for a new subscription's retained messages: a ticket (> 0) that completes
     * once the local store holds every retained message the cluster had accepted when it was
     * asked, or 0 when there is nothing to wait for. */
    uint64_t (*barrier)(void *ctx);
    /* One session per (identity, client id) in the cluster (optional): a CONNECT asks for the
     * session before it attaches (persistent: it is to outlive the connection; clean: a clean
     * start, nothing of an old session is wanted). Returns a
     * ticket (> 0) that completes once this node owns the session — the copy its previous
     * owner handed over imported (broker_import) — or failed to; 0 to go on at once;
     * BROKER_CLAIM_REFUSED to refuse the CONNECT now. */
    uint64_t (*claim)(void *ctx, const char *identity, const char *client_id,
                      const struct certattrs *attrs, bool persistent, bool clean);
    /* The CONNECT whose claim completed with ticket attached to s (or gave up: s NULL). */
    void (*claimed)(void *ctx, struct session *s, uint64_t ticket);
    /* A persistent session was saved, changed its subscriptions or is being deleted (optional;
     * s is valid only during the call): its cluster-wide record is due again. */
    void (*changed)(void *ctx, const struct session *s);
};
#define BROKER_CLAIM_REFUSED UINT64_MAX
#define BROKER_TICKET_FAILED UINT64_MAX

/* A certificate as the revocation paths name it: SHA-256 of the issuer's DER name, the serial's
 * length, the serial zero-padded to 32 bytes (tls_cert_id_key). */
#define BROKER_CERT_KEY_LEN (32 + 1 + 32)

struct broker_stats {
    uint64_t msgs_received, msgs_sent, msgs_dropped;
    uint64_t bytes_received, bytes_sent; /* topic + payload */
    /* The same per QoS (0, 1, 2) of the PUBLISH as received or as sent. */
    uint64_t msgs_received_qos[3], msgs_sent_qos[3];
    uint64_t bytes_received_qos[3], bytes_sent_qos[3];
    uint64_t publish_denied, subscribe_denied;
    uint64_t retained_refused; /* retained messages not stored: a retained limit reached */
    uint64_t sessions_refused; /* CONNECTs refused: max_persistent_sessions_per_identity reached */
    uint64_t connections_refused;       /* CONNECTs refused: max_connections_per_identity reached */
    uint64_t rate_refused;              /* PUBLISHes over max_publish_rate_per_identity */
    uint64_t byte_rate_refused;         /* PUBLISHes over max_publish_byte_rate_per_identity */
    uint64_t identity_subs_refused;     /* filters over max_subscriptions_per_identity */
    uint64_t identity_retained_refused; /* not retained: max_retained_messages_per_identity */
    uint64_t memory_refused; /* CONNECTs, PUBLISHes, SUBSCRIBEs refused over max_memory */
    uint64_t retained_cut;   /* subscriptions whose retained messages stopped at a full queue */
    uint64_t sessions;
    uint64_t clients_online;
    uint64_t remote_in; /* messages from other nodes delivered to at least one session */
};

/* Where the broker's durable state goes (persist module): sessions, subscriptions, retained
 * messages; session queues go through `session`. */
struct broker_store {
    void *ctx;
    const struct session_store *session;
    void (*session_saved)(void *ctx, const struct session *s, int64_t offline_since_ms);
    void (*session_deleted)(void *ctx, const struct session *s);
    void (*sub)(void *ctx, const struct session *s, const char *filter, size_t len, uint8_t options,
                uint32_t sub_id, bool add);
    void (*retained)(void *ctx, const struct msg *m); /* set, or clear when the payload is empty */
};

struct broker;

struct broker *broker_new(const struct broker_limits *l);
void broker_set_client_ops(struct broker *b, const struct broker_client_ops *ops);
void broker_set_policy(struct broker *b, const struct broker_policy *p);
/* Install the cluster hooks before any subscription exists (before restoring sessions): the
 * interest hook reports changes, not the state. */
void broker_set_cluster(struct broker *b, const struct broker_cluster *c);
void broker_free(struct broker *b);
struct broker_stats *broker_stats(struct broker *b);
const struct broker_limits *broker_limits(const struct broker *b);
size_t broker_retained_count(const struct broker *b);
size_t broker_subscription_count(const struct broker *b);
/* Messages waiting in every session's queue, and in flight (sent, not yet acknowledged): a walk
 * over the sessions, for metrics at scrape time, not for hot paths. */
void broker_queue_totals(const struct broker *b, uint64_t *queued, uint64_t *inflight);

/* Replace the ACL (takes ownership; NULL = deny everything) and recompile it for every session,
 * so new rules apply at once to existing clients and deliveries. */
void broker_set_acl(struct broker *b, struct acl *a);

/* Validate a topic name against MQTT and the configured limits. */
bool broker_topic_ok(const struct broker *b, const char *t, size_t len);
/* May the session publish the will it asks for? (checked at CONNECT) */
bool broker_may_publish(const struct broker *b, const struct session *s, const char *topic,
                        size_t len);

/* CONNECT, before broker_attach: may the identity (with these certificate attributes, for the
 * ACL's limit overrides) connect one more client? A client taking over its own session
 * (same client id, still connected) is not one more. False is counted and logged. */
bool broker_connection_ok(struct broker *b, const char *identity, const struct certattrs *attrs,
                          const char *client_id);
/* CONNECT, before broker_attach: the cluster's claim on the session (broker_cluster.claim; 0
 * without a cluster), and after it the attached session (NULL: not attached). */
uint64_t broker_claim(struct broker *b, const char *identity, const char *client_id,
                      const struct certattrs *attrs, bool persistent, bool clean);
void broker_claimed(struct broker *b, struct session *s, uint64_t ticket);
/* PUBLISH of payload bytes from s's client at now: within its identity's rates? REASON_NONE,
 * or REASON_PUBLISH_RATE / REASON_PUBLISH_BYTE_RATE (counted, logged once per identity per
 * 10 s; the caller refuses the message or ends the connection). Without any rate configured
 * this is one branch. */
enum reason broker_publish_rate(struct broker *b, struct session *s, uint32_t payload, int64_t now);

/* CONNECT: find or create the session (identity, client_id) and attach client, connected from
 * peer ("ip:port", for the policy), to it. A client attached to that session before is kicked.
 * clean = clean session / clean start. persistent =
 * the session outlives the connection, for expiry_s seconds (UINT32_MAX = forever). Returns the
 * session; *present tells whether state was resumed. NULL when a new session would exceed
 * max_persistent_sessions_per_identity (nothing changed; counted and logged). */
struct session *broker_attach(struct broker *b, const char *identity, const struct certattrs *attrs,
                              const char *client_id, void *client, const char *peer, bool clean,
                              bool persistent, uint32_t expiry_s, uint8_t version, bool *present,
                              int64_t now);
/* The connection ended. publish_will: the will is published (abnormal close). A session that is
 * not persistent is destroyed. */
void broker_detach(struct broker *b, struct session *s, bool publish_will, int64_t now);
/* The certificate of s's connection (key NULL: unknown), so that its persistent session can be
 * found when that certificate is revoked. Call after broker_attach. */
void broker_session_cert(struct broker *b, struct session *s, const uint8_t *key);
/* A certificate was revoked (this node's CRLs, or another node's word): the offline persistent
 * sessions last used with it are destroyed without their wills (online ones go through their
 * connection's verdict). Returns how many. */
size_t broker_revoked_cert(struct broker *b, const uint8_t key[BROKER_CERT_KEY_LEN]);
/* Destroy a session now (whether online or not), without its will. */
void broker_discard(struct broker *b, struct session *s);
/* The online session of a device that is no longer trusted (revoked, expired): detached without
 * its will (a device that is no longer trusted must not speak again, not even by a delayed
 * will); a persistent session is destroyed too when discard is set. */
void broker_untrust(struct broker *b, struct session *s, bool discard, int64_t now);

enum broker_pub_result {
    BROKER_PUB_OK = 0,
    BROKER_PUB_DENIED = 1,
    BROKER_PUB_NO_MATCH = 2,
    BROKER_PUB_NOT_RETAINED = 3, /* delivered, but the cluster's retained store is unavailable */
    BROKER_PUB_NOT_DURABLE = 4,  /* delivered here, but the cluster could not store it */
};
/* Route m (the caller keeps its reference). from = publishing session or NULL for the broker's
 * own messages ($SYS). */
enum broker_pub_result broker_publish(struct broker *b, struct session *from, struct msg *m,
                                      int64_t now);
/* broker_publish; *ticket is the cluster's ticket for m's retained write when the
 * acknowledgement is to wait for it (0 otherwise). */
enum broker_pub_result broker_publish_wait(struct broker *b, struct session *from, struct msg *m,
                                           int64_t now, uint64_t *ticket);
/* Cluster: a retained set or clear (empty payload) in the cluster's order, set by identity
 * (NULL: unknown). Stored without the limits (they were checked where it was published, so
 * that every node holds the same set); usage is charged to identity as for a local one. */
void broker_retained_apply(struct broker *b, struct msg *m, const char *identity);
/* The cluster's read barrier for a new subscription (see broker_cluster.barrier): a ticket, or
 * 0 when the retained messages can be answered at once. */
uint64_t broker_retained_barrier(struct broker *b);

/* A message from another node (cluster): delivered to local sessions only, with the same
 * per-delivery ACL check as a local publish, never stored as retained nor sent on. group NULL:
 * to the non-shared subscriptions it matches; otherwise to one member of that shared group on
 * filter. The caller keeps its reference. */
enum broker_pub_result broker_deliver_remote(struct broker *b, struct msg *m, const char *group,
                                             size_t glen, const char *filter, size_t flen,
                                             int64_t now);

/* A message replayed from the cluster's stream after a failure (cluster): as
 * broker_deliver_remote to the non-shared subscriptions it matches, of session only (NULL: of
 * every local session). Returns the number of sessions it was queued for. */
size_t broker_deliver_replay(struct broker *b, struct msg *m, const struct session *only,
                             int64_t now);

/* SUBSCRIBE one filter: returns the granted QoS, or the MQTT 5 failure code (enum mqtt_rc:
 * topic filter invalid, not authorized, quota exceeded = over the client's or the identity's
 * subscription limit). Matching
 * retained messages are queued per retain handling. */
uint8_t broker_subscribe(struct broker *b, struct session *s, const char *filter, size_t len,
                         uint8_t options, uint32_t sub_id, int64_t now);
/* The retained messages one new subscription is owed, delivered in steps so that a large
 * store cannot hold the caller: values only (a copy of the filter, a retain cursor), no pointer
 * into the store, which may change between steps. Zero-initialise. */
struct broker_retained {
    struct retain_cursor cur;
    char *filter;
    size_t len;
    uint8_t qos;
    uint32_t sub_id;
    bool active; /* call broker_retained_step until it returns true */
};
/* broker_subscribe, except that the retained messages are not delivered here: when some are
 * owed, rw (inactive on entry) is made active for broker_retained_step. */
uint8_t broker_subscribe_begin(struct broker *b, struct session *s, const char *filter, size_t len,
                               uint8_t options, uint32_t sub_id, int64_t now,
                               struct broker_retained *rw);
/* Deliver rw's retained messages to s, visiting at most budget nodes of the store. True when
 * done (rw is then inactive and freed); the delivery stops early once s's queue is full, since
 * everything more would be dropped. */
bool broker_retained_step(struct broker *b, struct session *s, struct broker_retained *rw,
                          size_t budget);
/* Abandon rw (the client went away): frees it. */
void broker_retained_end(struct broker_retained *rw);

/* Returns 0 when the subscription existed, -1 otherwise. */
int broker_unsubscribe(struct broker *b, struct session *s, const char *filter, size_t len);

/* Housekeeping: expire offline sessions whose expiry has passed. */
void broker_tick(struct broker *b, int64_t now);

void broker_set_store(struct broker *b, const struct broker_store *st);
/* Restoring durable state at start-up (nothing is written back to the store). */
struct session *broker_restore_session(struct broker *b, const char *identity,
                                       const char *client_id, uint32_t expiry_s, uint8_t version,
                                       int64_t offline_since);
void broker_restore_sub(struct broker *b, struct session *s, const char *filter, uint8_t options,
                        uint32_t sub_id);
void broker_restore_retained(struct broker *b, struct msg *m);
/* The session's will was set (cluster: its record carries it, so that the will is published if
 * this node dies). */
void broker_changed(struct broker *b, struct session *s);
/* Cluster: the session moves to another node. Its connection, if any, is kicked (its will as
 * for a takeover here); the caller exports it, then broker_discard. */
void broker_release(struct broker *b, struct session *s, int64_t now);
/* Cluster: a session handed over by another node, replacing any older copy here, offline until
 * the device's connection attaches; subscriptions and deliveries follow (session_import).
 * attrs: the connecting device's certificate, which the ACL is compiled for. */
struct session *broker_import(struct broker *b, const char *identity, const char *client_id,
                              const struct certattrs *attrs, bool persistent, uint32_t expiry_s,
                              uint8_t version, int64_t now);
/* ...one inherited subscription, checked against this node's ACL: false when it is dropped
 * (denied, or not a valid filter). */
bool broker_import_sub(struct broker *b, struct session *s, const char *filter, size_t len,
                       uint8_t options, uint32_t sub_id);
void broker_set_next_msg_id(struct broker *b, uint64_t next);

/* The session of (identity, client_id), or NULL. */
struct session *broker_find(struct broker *b, const char *identity, const char *client_id);

/* Visit every session (online or offline). */
void broker_foreach_session(struct broker *b, void (*cb)(void *ctx, struct session *s), void *ctx);
uint64_t broker_next_msg_id(struct broker *b);
/* Where publish paths take their messages from (msg_new_in). */
struct msg_pool *broker_msg_pool(struct broker *b);

#endif
