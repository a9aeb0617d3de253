/* cluster: this node's link to the other certmq nodes through NATS (cluster mode only).
 *
 * Fills the broker's cluster slots: every local publish goes once to NATS on its topic's
 * subject (subject.h) in an envelope (envelope.h); the node holds one NATS subscription per
 * filter its sessions have (ref-counted by the subscription tree's first/last watch), so NATS
 * forwards only what this node needs; what arrives is delivered locally through
 * broker_deliver_remote, never sent on. Shared groups are NATS queue groups. Everything runs on
 * the loop thread: nats.c's socket I/O through a small libuv adapter, synchronous
 * subscriptions drained from a uv_check handle, connection events posted to the loop. No
 * blocking nats.c call (request, JetStream, KV) is ever made here. Without cluster keys in the
 * config nothing of this runs. */
#ifndef CERTMQ_CLUSTER_H
#define CERTMQ_CLUSTER_H

#include "broker.h"
#include "diag.h"
#include "envelope.h"
#include "subject.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/* The cluster_* keys and node_name (config_cluster.c); strings owned by the config. */
struct cluster_opts {
    char *name;  /* cluster_name: [A-Za-z0-9_-], part of every subject */
    char *node;  /* node_name: unique per node */
    char **urls; /* cluster_nats, in fail-over order */
    size_t url_count;
    char *user, *password; /* cluster_nats_user / cluster_nats_password */
    char *creds;           /* cluster_nats_creds (JWT + NKey seed file) */
    char *tls_ca, *tls_cert, *tls_key;
    uint32_t partitions;        /* cluster_partitions: JetStream streams (later) */
    uint32_t retained_replicas; /* cluster_retained_replicas; 0 = min(3, url_count) */
    bool durable;           /* persistence true: QoS >= 1 acknowledged once JetStream stored it */
    uint32_t drain_s;       /* cluster_drain_timeout: at a stop, how long persistent sessions
                               wait here for their devices to claim them elsewhere */
    bool dead_wills;        /* cluster_dead_node_wills: a dead node's devices' wills published */
    uint32_t max_subject;   /* cluster_max_subject_length: bytes, below nats-server's
                               max_control_line */
    uint32_t ack_timeout_s; /* cluster_ack_timeout: a durable publish is sent again until
                               JetStream stores it, at most this long */
};

/* Cluster and node names: subject_name_ok (subject.h). */
#define CLUSTER_NAME_MAX 32 /* cluster_name */
#define CLUSTER_NODE_MAX 64 /* node_name */
/* Is cluster mode configured (cluster_nats given)? */
bool cluster_enabled(const struct cluster_opts *o);
/* --test-config: the files the link needs are readable (problems to d); returns 0 when good. */
int cluster_check(const struct cluster_opts *o, struct diag *d);
/* --test-config: what this node would use and create in NATS. */
void cluster_print_plan(const struct cluster_opts *o, FILE *f);

struct cluster;

/* The loop handles (o must outlive c). */
struct cluster *cluster_new(uv_loop_t *loop, struct broker *b, const struct cluster_opts *o);
/* Connect (one blocking attempt per server, bounded by a short timeout; if none answers the
 * broker starts anyway and the link keeps retrying in the background) and install the broker's
 * cluster slots. Call before sessions are restored. -1 when the options cannot be used
 * (logged); cluster_stop and cluster_free are still due. */
int cluster_connect(struct cluster *c);
/* Stop sending and receiving, close the NATS connections and the loop handles. Safe to call
 * twice; the broker's hooks do nothing afterwards. */
void cluster_stop(struct cluster *c);
/* After the loop has run the closes: frees everything. */
void cluster_free(struct cluster *c);
/* Who hears about completed tickets (a retained write acknowledged or refused, a read barrier
 * reached): the clients waiting for them. */
void cluster_set_waiter(struct cluster *c, void (*done)(void *ctx, uint64_t ticket, bool ok),
                        void *ctx);

/* Certificate revocations between nodes: this node learnt r (its CRL reload, a plugin's
 * verdict) and tells the others at once (core NATS, at most once; every node still enforces its
 * own CRLs). */
void cluster_revoked(struct cluster *c, const struct envelope_revoke *r);
/* Who acts on a revocation another node announced (r borrows the message). */
void cluster_set_revoker(struct cluster *c,
                         void (*revoked)(void *ctx, const struct envelope_revoke *r), void *ctx);

/* Session ownership (cluster_sess.c) and durable QoS >= 1 (cluster_q.c) counters. */
struct cluster_sess_stats {
    uint64_t claims;            /* CONNECTs that asked for their session */
    uint64_t claims_failed;     /* ...refused: JetStream silent, or a newer connection won */
    uint64_t claim_races;       /* epochs another node created first (retried) */
    uint64_t unclaimed;         /* CONNECTs served without a claim (JetStream unreachable) */
    uint64_t takeovers_in;      /* sessions handed over to this node */
    uint64_t takeovers_out;     /* ...by this node to another */
    uint64_t handover_timeouts; /* previous owners that did not answer in time */
    uint64_t handover_bad;      /* malformed handovers or takeover requests */
};
struct cluster_replay_stats {
    uint64_t replays;      /* sessions (or the whole node) that had messages read back */
    uint64_t replays_done; /* ...finished */
    uint64_t replayed;     /* deliveries queued from the stream (duplicates included) */
    uint64_t skipped;      /* stored messages not replayed: routing had delivered them here */
    uint64_t restarts;     /* consumers recreated after a lost delivery */
    uint64_t bad;          /* stored messages not valid (skipped) */
};
struct cluster_rec_stats {
    uint64_t records;         /* session records written */
    uint64_t records_bad;     /* records or heartbeats read back that were not valid */
    uint64_t records_retried; /* writes JetStream did not acknowledge, made again */
    uint64_t recovered;       /* sessions rebuilt here from a dead owner's record */
    uint64_t nodes_dead;      /* other nodes found dead (heartbeat stopped, no answer) */
    uint64_t adoptions;       /* ...whose offline sessions this node took */
    uint64_t adopted;         /* sessions taken that way */
    uint64_t stalls;          /* this node's loop stopped long enough to be taken for dead */
};
struct cluster_q_stats {
    uint64_t stored;  /* QoS >= 1 publishes sent to the stream */
    uint64_t failed;  /* ...not acknowledged by it (the publisher was told) */
    uint64_t retried; /* attempts sent again: no answer, or JetStream briefly unavailable */
};

/* For $SYS/broker/cluster/...: every field a uint64_t. */
struct cluster_stats {
    uint64_t connected; /* 1 while both NATS connections are up */
    uint64_t interests; /* filters and shared groups this node holds NATS interest for */
    uint64_t sent, send_failed;
    uint64_t dropped_long;     /* topics too long for a subject: delivered on this node only */
    uint64_t received;         /* valid messages from NATS, before the overlapping-filter rule */
    uint64_t bad_received;     /* dropped: not a valid subject or envelope */
    uint64_t repeated;         /* dropped: delivered here already (a durable publish sent again) */
    uint64_t delivered;        /* messages from other nodes delivered to at least one session */
    uint64_t retained_ready;   /* 1 while the retained bucket feeds this node's store */
    uint64_t retained_writes;  /* retained sets and clears sent to the bucket */
    uint64_t retained_failed;  /* ...refused or not acknowledged (not stored anywhere) */
    uint64_t retained_applied; /* updates from the bucket applied to this node's store */
    uint64_t retained_invalid; /* updates ignored: not a valid key or envelope */
    uint64_t barriers_skipped; /* subscriptions answered without the read barrier */
    uint64_t revocations_sent; /* certificate revocations announced to the other nodes */
    uint64_t revocations_received; /* ...announced by them (valid ones) */
    uint64_t sessions_ready;       /* 1 while session ownership works through JetStream */
    struct cluster_sess_stats sess;
    uint64_t fenced; /* sessions dropped after an outage: another node claimed them meanwhile */
    uint64_t durable_ready; /* 1 while the QoS >= 1 stream takes messages (persistence true) */
    struct cluster_q_stats durable;
    struct cluster_rec_stats rec;
    struct cluster_replay_stats replay;
    uint64_t rec_recovered; /* counted here, reported in rec.recovered */
};
const struct cluster_stats *cluster_stats(struct cluster *c);

#endif
