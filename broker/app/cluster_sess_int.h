/* cluster_sess_int: what the three parts of session ownership share — cluster_sess.c (claims,
 * the handover received), cluster_sess_take.c (takeover requests from the next owner),
 * cluster_sess_rec.c (a dead previous owner: the session from its record). Private. */
#ifndef CERTMQ_CLUSTER_SESS_INT_H
#define CERTMQ_CLUSTER_SESS_INT_H

#include "cluster_int.h"

#include <uthash.h>

/* CONNECTs waiting for a claim at once; more are refused (server unavailable). */
#define MAX_CLAIMS 4096
/* Claim races lost in a row before the CONNECT is refused. */
#define CLAIM_ATTEMPTS 3
/* Reading and creating the claim (a JetStream leader election takes ~7 s on 2.9.10; a device
 * should not wait longer than its own connect timeout would let it). */
#define CLAIM_TIMEOUT_MS 5000
/* The previous owner's handover, once asked. */
#define TAKE_TIMEOUT_MS 2000
/* A takeover request waits for a replay under way here at most this long (below the asker's
 * TAKE_TIMEOUT_MS: a late answer is no answer). */
#define DEFER_MS 1500
#define DEFER_MAX 64
/* Epochs walked back when the previous owner turns out never to have had the session. */
#define WALK_MAX 4
/* A granted claim waits this long for its CONNECT to attach (the client may have gone). */
#define GRANTED_KEEP_MS 10000
#define TIMER_MS 100
#define RETRY_MS 2000
#define LOG_EVERY 1000
#define JS_ERR_STREAM_EXISTS 10058
/* Room left in a NATS message for the subject, reply and headers of a handover chunk. */
#define CHUNK_MARGIN 4096

enum claim_state {
    CL_LAST,    /* asked for the key's last claim */
    CL_CREATE,  /* creating epoch */
    CL_TAKE,    /* asked prev for the session */
    CL_REC,     /* prev is gone: asked for its record of the session */
    CL_BEAT,    /* ...and for its last heartbeat (the record says a device was connected) */
    CL_WALK,    /* prev never had it: asked for the claim of the epoch before prev's */
    CL_GRANTED, /* this node owns epoch; waiting for the CONNECT to attach */
};

struct claim {
    uint64_t ticket;
    enum claim_state state;
    uint64_t epoch;      /* the one tried or won; 0 before the create */
    uint64_t prev_epoch; /* prev's: epoch - 1, or earlier after a walk back */
    int walks;
    bool prev_alive; /* prev answered without the session: its heartbeat is a later run's */
    bool partial;    /* prev sent the first part only: its record bounds what to read back */
    uint64_t deadline;
    int attempts;
    bool persistent, clean;
    bool finishing; /* the second part was asked for: live messages wait in `live` */
    struct session_delivery *live;
    size_t nlive, live_cap;
    int64_t since;                   /* CL_BEAT: the record's bound of what the session is owed */
    bool from_record;                /* rebuilt from the dead previous owner's record */
    bool superseded;                 /* a newer claim asked for the session: the CONNECT loses */
    bool done;                       /* the CONNECT's ticket has completed */
    char key[33];                    /* H */
    char prev[CLUSTER_NODE_MAX + 1]; /* the last epoch's node, "" when none */
    char *identity, *client_id;
    struct certattrs *attrs;
    /* the handover being received */
    uint32_t next_chunk;
    struct cluster_import imp;
    /* a newer claimer's request that came while this claim was under way */
    char *succ_reply;
    uint64_t succ_epoch;
    UT_hash_handle hh; /* by ticket */
    UT_hash_handle hk; /* by key: the newest claim of the key on this node */
};

struct cluster_sess {
    struct broker *b;
    const struct cluster_opts *o;
    struct cluster_link *link;
    uv_loop_t *loop;
    uv_timer_t timer;
    void (*done)(void *ctx, uint64_t ticket, bool ok);
    void *done_ctx;
    char stream[72], prefix[64], take_subj[128];
    char *inbox;
    natsSubscription *replies, *takes;
    bool ready, asked, stopped;
    uint64_t asked_at;
    struct claim *by_ticket, *by_key;
    struct cluster_give *give;
    struct cluster_replay *replay;
    char rec_stream[72];
    /* takeover requests for sessions still replaying here: answered when the replay is done */
    natsMsg *deferred[DEFER_MAX];
    uint64_t deferred_at[DEFER_MAX];
    size_t ndeferred;
    size_t nclaims;
    struct cluster_sess_stats stats;
};

uint64_t sess__now(const struct cluster_sess *s);
bool sess__request(struct cluster_sess *s, const char *subj, const void *body, size_t len,
                   char kind, uint64_t ticket);
/* This node owns c's epoch: c's CONNECT goes on (with what was imported). */
void sess__granted(struct cluster_sess *s, struct claim *c);
/* Import one handover chunk into c's session; -1 (counted) when it is malformed. */
int sess__import(struct cluster_sess *s, struct claim *c, const uint8_t *p, size_t n,
                 uint32_t *index, uint8_t *flags);

/* cluster_sess_take.c */
void sess__send_take(struct cluster_sess *s, struct claim *c, char op, uint32_t index);
/* Hand what c gathered to the newer claim that asked for it meanwhile. */
void sess__serve_successor(struct cluster_sess *s, struct claim *c);
/* A takeover request; false when nm was kept to be answered later. */
bool sess__on_take(struct cluster_sess *s, natsMsg *nm, bool may_defer);
void sess__serve_deferred(struct cluster_sess *s);

/* cluster_sess_rec.c */
void sess__ask_record(struct cluster_sess *s, struct claim *c);
void sess__on_record(struct cluster_sess *s, struct claim *c, natsMsg *nm);
void sess__on_beat(struct cluster_sess *s, struct claim *c, natsMsg *nm);
void sess__on_walk(struct cluster_sess *s, struct claim *c, natsMsg *nm);
/* prev (maybe this node) has no copy of the session a persistent CONNECT wants: find out from
 * the records and the claims before whether anything was lost on the way. */
void sess__verify(struct cluster_sess *s, struct claim *c);
/* Ask prev for the session, or its record when prev is silent. */
void sess__ask_prev(struct cluster_sess *s, struct claim *c);

#endif
