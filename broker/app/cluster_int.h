/* cluster_int: what cluster.c (routing, interests, draining) and cluster_link.c (a NATS
 * connection on the loop) share; private to the cluster module. */
#ifndef CERTMQ_CLUSTER_INT_H
#define CERTMQ_CLUSTER_INT_H

#include "cluster.h"
#include "handover.h"

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* One NATS connection whose socket is polled by the loop. nats.c calls the adapter (attach,
 * read, write, detach) from the loop thread or, while reconnecting, from its own threads; it
 * reports connection events from its threads too. Anything from another thread only updates the
 * pending state under lock and wakes the loop (async); the loop applies it. */
struct cluster_link {
    struct cluster *c;
    const char *label; /* "routing" or "shared", for logs */
    natsConnection *nc;
    uv_loop_t *loop;
    uv_thread_t loop_thread;
    uv_poll_t *poll; /* the current socket's, NULL while none */
    uv_async_t async;
    uv_mutex_t lock;
    /* under lock */
    bool closing;
    bool pend_attach, pend_detach, pend_events;
    natsSock pend_sock;
    natsConnection *pend_nc;
    int want; /* UV_READABLE | UV_WRITABLE */
    unsigned pend_status;
    natsStatus pend_err;
    /* loop thread */
    bool connected, open;
};

/* Open l (its loop handles and connection) with opts; noecho for the routing link. 0 when
 * connected or retrying in the background, -1 when the options were refused (logged). */
int cluster__link_open(struct cluster_link *l, struct cluster *c, const char *label,
                       uv_loop_t *loop, const struct cluster_opts *o, bool noecho);
/* Close the connection and the loop handles (subscriptions are to be destroyed first). */
void cluster__link_close(struct cluster_link *l);
/* After the loop ran the closes: drop the connection. nats.c's threads may still run its
 * callbacks until nats_CloseAndWait returns; then cluster__link_release. */
void cluster__link_free(struct cluster_link *l);
void cluster__link_release(struct cluster_link *l);
/* The loop read from the link's socket: messages may wait in its subscriptions. */
void cluster__rx(struct cluster *c);
/* A ticket for the client waiter, unique among all the cluster's modules (they share it). */
uint64_t cluster__ticket(struct cluster *c);
/* JetStream requests from the loop: publish body on subj with the reply <inbox>.<kind>.<n>;
 * false (logged, naming what) when nats.c refuses. */
bool cluster__request(struct cluster_link *l, const char *inbox, const char *what, const char *subj,
                      const void *body, size_t len, char kind, uint64_t n);
/* A new inbox and a subscription to every reply under it (<inbox>.>), for cluster__request. */
natsStatus cluster__reply_inbox(struct cluster_link *l, char **inbox, natsSubscription **sub);
/* A reply's kind and number from its subject <inbox>.<kind>.<n>; false when it is not one. */
bool cluster__reply_of(const char *subj, const char *inbox, char *kind, uint64_t *n);
/* Replicas of the streams certmq creates: cluster_retained_replicas, else up to 3. */
uint32_t cluster__replicas(const struct cluster_opts *o);
/* Deliver every message already received from other nodes now (a session about to be handed
 * over gets what arrived for it first). */
void cluster__take_pending(struct cluster *c);
/* The link is (again) connected to NATS, or lost it. */
void cluster__link_event(struct cluster *c, struct cluster_link *l, bool up);

/* cluster_kv.c: retained messages in a JetStream KV bucket (see there). Counters are the
 * retained_* and barriers_skipped fields of struct cluster_stats. */
struct cluster_kv_stats {
    uint64_t writes, writes_failed, applied, bad_updates, barriers_skipped;
};
struct cluster_kv;
struct cluster_kv *cluster__kv_new(uv_loop_t *loop, struct broker *b, const struct cluster_opts *o,
                                   struct cluster_link *link);
const char *cluster__kv_bucket(const struct cluster_kv *k);
void cluster__kv_set_done(struct cluster_kv *k, void (*done)(void *ctx, uint64_t ticket, bool ok),
                          void *ctx);
/* The routing link came up (set up the bucket and its consumer again) or went down. */
void cluster__kv_link(struct cluster_kv *k, bool up);
/* The broker's retain and barrier hooks (broker_cluster). */
uint64_t cluster__kv_retain(struct cluster_kv *k, const struct session *from, const struct msg *m,
                            int64_t now);
uint64_t cluster__kv_barrier(struct cluster_kv *k);
/* Replies and updates waiting on the routing link, up to *budget messages (lowered). */
void cluster__kv_drain(struct cluster_kv *k, int64_t now, size_t *budget);
/* End of a loop turn: ask for the barriers that arrived in it. */
void cluster__kv_turn_end(struct cluster_kv *k);
bool cluster__kv_ready(const struct cluster_kv *k);
const struct cluster_kv_stats *cluster__kv_stats(const struct cluster_kv *k);
void cluster__kv_stop(struct cluster_kv *k);
void cluster__kv_free(struct cluster_kv *k);

/* cluster_sess.c: one session per (identity, client id) cluster-wide (see there). */
/* cluster_q.c: QoS >= 1 publishes durable in JetStream before their acknowledgement. */
#define CLUSTER_Q_FAILED UINT64_MAX
struct cluster_q;
struct cluster_q *cluster__q_new(uv_loop_t *loop, const struct cluster_opts *o,
                                 struct cluster_link *link);
void cluster__q_set_done(struct cluster_q *q, void (*done)(void *ctx, uint64_t ticket, bool ok),
                         void *ctx);
void cluster__q_link(struct cluster_q *q, bool up);
/* Publish env on subj (a QoS >= 1 subject) through the stream: a ticket, or CLUSTER_Q_FAILED. */
uint64_t cluster__q_publish(struct cluster_q *q, const char *subj, const void *env, size_t len);
void cluster__q_drain(struct cluster_q *q, size_t *budget);
bool cluster__q_ready(const struct cluster_q *q);
const struct cluster_q_stats *cluster__q_stats(const struct cluster_q *q);
void cluster__q_stop(struct cluster_q *q);
void cluster__q_free(struct cluster_q *q);

/* A session was rebuilt here from the record of its dead owner prev: read back what it is owed
 * from since (wall clock ms) on. */
void cluster__recovered(struct cluster *c, const char *identity, const char *client_id,
                        int64_t since, const char *prev);

/* cluster_replay.c: QoS >= 1 messages read back from CMQ_Q after a failure (see there). */
/* Replays start this much before the bound they are given and go on this much after (clocks,
 * messages in transit). */
#define REPLAY_SLACK_MS 2000
int64_t cluster__wall_ms(void);
struct cluster_replay;
struct cluster_replay *cluster__replay_new(uv_loop_t *loop, struct broker *b,
                                           const struct cluster_opts *o, struct cluster_link *link);
void cluster__replay_link(struct cluster_replay *r, bool up);
/* Deliver again what the stream stored between start_ms and end_ms (wall clock) to the session
 * (identity, client id), or with identity NULL to every local session. */
void cluster__replay(struct cluster_replay *r, const char *identity, const char *client_id,
                     int64_t start_ms, int64_t end_ms);
/* Is a replay for this session still under way? */
bool cluster__replay_busy(const struct cluster_replay *r, const char *identity,
                          const char *client_id);
/* The earliest start of the replays under way for the session (INT64_MAX: none): what they
 * have not delivered yet is owed from then (r may be NULL). */
int64_t cluster__replay_since(const struct cluster_replay *r, const char *identity,
                              const char *client_id);
void cluster__replay_drain(struct cluster_replay *r, size_t *budget);
/* Routing is about to deliver e (to every local subscription matching it, no shared group) at
 * loop ms now: false when it did already (a publish sent again during a JetStream fail-over). */
bool cluster__replay_routed(struct cluster_replay *r, const struct envelope *e, int64_t now);
const struct cluster_replay_stats *cluster__replay_stats(const struct cluster_replay *r);
void cluster__replay_stop(struct cluster_replay *r);
void cluster__replay_free(struct cluster_replay *r);

/* cluster_rec.c: session records, heartbeats, a dead node's sessions adopted (see there). */
struct cluster_rec;
struct cluster_rec *cluster__rec_new(uv_loop_t *loop, struct broker *b,
                                     const struct cluster_opts *o, struct cluster_link *link,
                                     struct cluster_replay *replay);
void cluster__rec_link(struct cluster_rec *r, bool up);
/* The broker's changed hook: s's record is written at the end of the turn. */
void cluster__rec_changed(struct cluster_rec *r, const struct session *s);
void cluster__rec_flush(struct cluster_rec *r); /* end of a loop turn */
void cluster__rec_drain(struct cluster_rec *r, size_t *budget);
const struct cluster_rec_stats *cluster__rec_stats(const struct cluster_rec *r);
/* Has node missed its last heartbeats (seen from a link that has been up long enough)? */
bool cluster__rec_silent(const struct cluster_rec *r, const char *node);
bool cluster__node_silent(struct cluster *c, const char *node);
void cluster__rec_stop(struct cluster_rec *r);
void cluster__rec_free(struct cluster_rec *r);
/* This node's loop stood still: others may have taken its sessions (cluster_fence). */
void cluster__stalled(struct cluster *c);

/* cluster_adopt.c: a dead node's offline sessions adopted by one survivor (see there). */
struct cluster_adopt;
struct cluster_adopt *cluster__adopt_new(struct broker *b, const struct cluster_opts *o,
                                         struct cluster_link *link, struct cluster_replay *replay,
                                         struct cluster_rec *rec, struct cluster_rec_stats *stats);
void cluster__adopt_link(struct cluster_adopt *a); /* the routing link is up */
/* node was taken for dead: try to become the adopter of its sessions (one node at a time). */
void cluster__adopt_start(struct cluster_adopt *a, const char *node, uint64_t now);
/* Deadlines; true while an adoption is under way. */
bool cluster__adopt_tick(struct cluster_adopt *a, uint64_t now);
void cluster__adopt_drain(struct cluster_adopt *a, size_t *budget);
void cluster__adopt_stop(struct cluster_adopt *a);
void cluster__adopt_free(struct cluster_adopt *a);

/* cluster_fence.c: after a NATS outage, sessions another node claimed meanwhile are dropped. */
struct cluster_fence;
struct cluster_fence *cluster__fence_new(struct broker *b, const struct cluster_opts *o,
                                         struct cluster_link *link);
void cluster__fence_start(struct cluster_fence *f); /* the routing link is back */
void cluster__fence_drain(struct cluster_fence *f, size_t *budget);
uint64_t cluster__fence_count(const struct cluster_fence *f); /* sessions dropped */
void cluster__fence_stop(struct cluster_fence *f);
void cluster__fence_free(struct cluster_fence *f);

/* cluster_give.c: handing a session over to the next owner, in two parts (see there). */
struct cluster_give;
struct cluster_give *cluster__give_new(uv_loop_t *loop, struct broker *b, struct cluster_link *link,
                                       const char *node);
/* First part to reply: ss kicked, header and subscriptions sent, ss kept until the finish (ss
 * NULL: an empty answer, there is no session). epoch: the new owner's. replay_since: the start
 * of a replay for ss still under way here (INT64_MAX: none), for the new owner to go on with. */
void cluster__give_begin(struct cluster_give *g, struct session *ss, const char *key,
                         uint64_t epoch, const char *reply, int64_t now, int64_t replay_since);
/* Second part from chunk index: the deliveries, then the session is forgotten here. */
void cluster__give_finish(struct cluster_give *g, const char *key, uint64_t epoch, uint32_t index,
                          const char *reply, int64_t now);
/* Is the session with this key between the two parts? */
bool cluster__give_leaving(const struct cluster_give *g, const char *key);
/* Sessions whose new owner never finished: dropped here. */
void cluster__give_sweep(struct cluster_give *g, int64_t now);
uint64_t cluster__give_count(const struct cluster_give *g); /* sessions handed over */
void cluster__give_stop(struct cluster_give *g);            /* closes its timer */
void cluster__give_free(struct cluster_give *g);

/* cluster_import.c: a session arriving from another node, built by handover_decode with
 * cluster__importer and a struct cluster_import as its context (see there). */
struct cluster_import {
    struct broker *b;
    const char *identity, *client_id;
    const struct certattrs *attrs; /* the connecting device's; NULL when none is connected */
    int64_t now;
    struct session *imported; /* once the header came */
    bool replaying;           /* the sender was replaying its messages... */
    int64_t replay_since;     /* ...from then on (wall ms) */
    uint32_t subs, msgs;      /* what was imported, for the log */
};
extern const struct handover_visitor cluster__importer;
/* The will in r of a session whose node died while its device was connected, for s rebuilt from
 * r: published now, or set to be published after its delay (persistent sessions). true when r
 * had one. */
struct sessrec;
bool cluster__dead_will(struct broker *b, struct session *s, const struct sessrec *r, int64_t now);

struct cluster_sess;
/* identity and client id copied into one allocation (*identity, freed alone); *client_id
 * points into it. */
void cluster__id_pair(const char *identity, const char *client_id, char **id_out, char **cid_out);
/* A session's key in subjects: 32 hex digits of SHA-256(identity NUL client id). */
void cluster__session_key(const char *identity, const char *client_id, char out[33]);
/* A direct get's answer for the last claim of key: 1 with *epoch and node (the claimer), 0
 * when the key has none, -1 when it is not a valid answer. */
int cluster__last_claim(natsMsg *nm, const char *prefix, const char *key, uint64_t *epoch,
                        char node[CLUSTER_NODE_MAX + 1]);
struct cluster_sess *cluster__sess_new(uv_loop_t *loop, struct broker *b,
                                       const struct cluster_opts *o, struct cluster_link *link);
const char *cluster__sess_stream(const struct cluster_sess *s);
/* Takeover requests for a session still replaying wait for the replay (r may be NULL). */
void cluster__sess_set_replay(struct cluster_sess *s, struct cluster_replay *r);
void cluster__sess_set_done(struct cluster_sess *s,
                            void (*done)(void *ctx, uint64_t ticket, bool ok), void *ctx);
/* The routing link came up (subscriptions, the stream) or went down. */
void cluster__sess_link(struct cluster_sess *s, bool up);
/* The broker's claim and claimed hooks (broker_cluster). */
uint64_t cluster__sess_claim(struct cluster_sess *s, const char *identity, const char *client_id,
                             const struct certattrs *attrs, bool persistent, bool clean);
void cluster__sess_claimed(struct cluster_sess *s, struct session *ss, uint64_t ticket);
/* Replies and takeover requests waiting on the routing link, up to *budget (lowered). */
void cluster__sess_drain(struct cluster_sess *s, size_t *budget);
bool cluster__sess_ready(const struct cluster_sess *s);
const struct cluster_sess_stats *cluster__sess_stats(struct cluster_sess *s);
void cluster__sess_stop(struct cluster_sess *s);
void cluster__sess_free(struct cluster_sess *s);

#endif
