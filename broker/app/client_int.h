/* client_int: what client.c and client_out.c share; private to the client module. */
#ifndef CERTMQ_CLIENT_INT_H
#define CERTMQ_CLIENT_INT_H

#include "client.h"
#include "codec.h"

#include <uthash.h>

#define SCRATCH_SIZE (16 * 1024)

enum cstate { CS_WAIT_CONNECT, CS_CONNECTED, CS_CLOSING };

struct client {
    struct client_env *env;
    struct conn *conn;
    struct session *session;
    struct client *prev, *next;
    struct buf in;  /* partial packet carried over between reads */
    struct buf out; /* control packets for this turn */
    enum cstate state;
    uint8_t version;
    uint16_t keepalive;
    uint32_t peer_max_packet;    /* MQTT 5 maximum packet size of the client, 0 = none */
    bool no_problem_info;        /* MQTT 5 request problem information = 0 */
    char **in_alias;             /* topic aliases the client set, index 1..topic_alias_max */
    struct out_alias *out_alias; /* topics we gave aliases to (uthash), at most out_alias_max */
    uint16_t out_alias_max, out_alias_count;
    uint64_t last_rx;
    uint64_t partial_since; /* ms: a packet has been started but not finished; 0 = none */
    uint64_t timer_due;     /* ms: when the connection's timer fires; 0 = not armed */
    int64_t refusal_logged; /* ms: last log line about a refusal to this client */
    char *client_id;
    uint64_t claim;          /* the cluster's ticket for this CONNECT's session (0: none asked) */
    int8_t claim_granted;    /* its outcome once completed: 1 granted, -1 refused, 0 not yet */
    struct client_job *job;  /* a SUBSCRIBE / UNSUBSCRIBE still being handled (client_sub.c) */
    struct client *job_next; /* in the env's queue of clients with a deferred job */
    bool job_queued;
    struct client_acks *acks; /* publish acknowledgements waiting for the cluster (client_ack.c) */
    struct client *ack_next;  /* in the env's list of clients with acknowledgements due */
    bool ack_queued;
    bool ack_full; /* CLIENT_ACK_MAX wait: nothing more is decoded until the oldest is answered */
};

struct out_alias {
    char *topic;
    uint16_t alias;
    UT_hash_handle hh;
};

struct client_env {
    uv_loop_t *loop;
    struct broker *broker;
    struct client_opts o;
    struct client *head;
    size_t count;
    uint64_t next_auto_id;
    bool over_memory; /* max_memory reached: new work is refused */
    uint8_t scratch[SCRATCH_SIZE];
    size_t scratch_len;
    /* client_sub.c: deferred SUBSCRIBE / UNSUBSCRIBE jobs and this turn's budget */
    uv_idle_t sub_idle;
    uv_check_t sub_turn;
    uint64_t sub_spent_ns;
    struct client *job_head, *job_tail;
    struct client_job *waits; /* jobs waiting for a cluster ticket, by ticket */
    /* client_ack.c */
    struct client_ack *ack_waits; /* acknowledgements waiting for a cluster ticket, by ticket */
    struct client *ack_head;      /* clients with acknowledgements due */
};

/* What the broker asks of a client (wake up, kick); client_env_new registers it. */
extern const struct broker_client_ops client__broker_ops;

int64_t client__now(const struct client *c);
/* max_memory: true (counted, logged at most once per client per interval) when new work from
 * this client is to be refused; what names it in the log ("PUBLISH"). */
bool client__memory_refused(struct client *c, const char *what);
const char *client__id(const struct client *c);
/* Queue a control packet for this turn's write slot. */
void client__send(struct client *c, const struct mqtt_packet *p);
void client__send_ack(struct client *c, uint8_t type, uint16_t id, uint8_t rc);
/* MQTT 5 reason string, unless the client asked for no problem information. */
void client__reason_string(const struct client *c, struct mqtt_props *pr, const char *why);
/* MQTT 5 DISCONNECT written at once (before the connection closes). */
void client__send_disconnect(struct client *c, uint8_t rc, const char *why);
/* End the connection for a protocol violation (DISCONNECT with r's code after CONNECT). */
void client__protocol_error(struct client *c, enum reason r);
/* Decode what was kept in c->in (a deferred job has ended), then read again unless another
 * job started. */
void client__input_resume(struct client *c);

/* client_sub.c. SUBSCRIBE / UNSUBSCRIBE handlers: either done at once, or c->job is left for
 * client__job_keep (the packet must then be copied, and nothing more decoded). */
void client__handle_subscribe(struct client *c, const struct mqtt_packet *p);
void client__handle_unsubscribe(struct client *c, const struct mqtt_packet *p);
/* c->job outlives this read: copy its packet (raw, len bytes), pause reading, queue it. */
void client__job_keep(struct client *c, const uint8_t *raw, size_t len);
/* The acknowledgement of a QoS > 0 PUBLISH with code rc, behind those still waiting. */
void client__publish_answer(struct client *c, uint8_t qos, uint16_t id, uint8_t rc);
/* ...sent now (3.1.1, which cannot refuse one message: the connection is closed when the
 * cluster could not store it). */
void client__publish_send(struct client *c, uint8_t qos, uint16_t id, uint8_t rc);
/* A CONNECT waits for the cluster's claim on its session (ticket); when it completes the
 * packet is decoded again and handled by client__handle_connect. */
void client__wait_connect(struct client *c, uint64_t ticket);
/* client_connect.c */
void client__handle_connect(struct client *c, const struct mqtt_packet *p);
/* Refuse a CONNECT: CONNACK with r's code for the client's version, then close. */
void client__refuse(struct client *c, enum reason r);
/* (Re)arm the connection's timer for the keep-alive and packet_timeout deadlines. */
void client__arm_deadlines(struct client *c);
/* The client is gone: unqueue and free its job, if any. */
void client__job_drop(struct client *c);
/* client_ack.c. Publishes whose acknowledgement waits for the cluster, per client; more
 * pause reading. */
#define CLIENT_ACK_MAX 256
/* The acknowledgement (qos, packet id) of a publish goes out once ticket completes. */
void client__ack_wait(struct client *c, uint8_t qos, uint16_t id, uint64_t ticket);
/* An acknowledgement due now, queued when others wait (true) to keep their order. */
bool client__ack_later(struct client *c, uint8_t qos, uint16_t id, uint8_t rc);
/* A ticket completed: true when an acknowledgement waited for it (then client__acks_flush). */
bool client__ack_done(struct client_env *e, uint64_t ticket, bool ok);
/* Send what is due, and read again clients that had filled their ring. */
void client__acks_flush(struct client_env *e);
void client__acks_drop(struct client *c);
void client__sub_init(struct client_env *e);
void client__sub_close(struct client_env *e);
/* The write slot: control packets, then publishes pulled from the session. */
void client__on_writable(void *ud, struct conn *conn);

#endif
