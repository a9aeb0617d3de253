/* connect: the decision on an MQTT CONNECT, apart from acting on it.
 *
 * Given the limits a listener applies, the certificate identity and the decoded CONNECT, decide
 * whether the connection is refused (and why) or what it gets: its client id, keep-alive,
 * session persistence, the limits it announced, and the CONNACK properties we answer with.
 * Pure: no I/O, no clock, no broker state beyond what the caller hands in (a topic check). The
 * client module acts on the result: CONNACK or close, session attach, will. The will's ACL check
 * needs the attached session, so it is the caller's. */
#ifndef CERTMQ_CONNECT_H
#define CERTMQ_CONNECT_H

#include "codec.h"
#include "reason.h"

#include <stdbool.h>
#include <stdint.h>

/* MQTT-3.1.2-24: a client that sends nothing for 1.5 times its keep-alive is gone. */
#define CONNECT_KEEPALIVE_GRACE_MS_PER_S 1500

/* The per-listener limits a CONNECT is judged by (a subset of struct client_opts). */
struct connect_limits {
    uint32_t max_packet_size;              /* what we accept; 0 = MQTT maximum */
    uint32_t persistent_client_expiration; /* s, longest session expiry; 0 = never */
    uint16_t max_keepalive;                /* s; 65535 = no limit */
    uint16_t receive_maximum;              /* MQTT 5 inbound window we announce */
    uint16_t max_topic_alias;              /* MQTT 5 topic aliases a client may set */
    uint16_t max_topic_alias_broker;       /* ...and that we set toward a client, at most */
    bool allow_zero_length_clientid;
    bool clientid_match; /* clientid_policy match: client id must equal the identity */
    bool retain_available;
};

struct connect_request {
    const struct connect_limits *lim;
    const char *identity;         /* from the verified certificate */
    const struct mqtt_connect *k; /* as decoded; borrowed */
    /* The id given to a client that sends none (NUL-terminated, borrowed); the caller makes
     * a fresh one and keeps it if the result says assign_id. */
    const char *auto_id;
    /* Is this a valid topic name (MQTT rules and configured limits)? Pure. */
    bool (*topic_ok)(const void *ctx, const char *topic, size_t len);
    const void *topic_ctx;
};

struct connect_result {
    /* Filled even on refusal, since the refusal is worded by them. */
    bool no_problem_info;      /* MQTT 5 request problem information = 0 */
    struct mqtt_bin client_id; /* the id as sent, or auto_id; p == NULL: not decided yet */
    bool assign_id;            /* client_id is auto_id */

    /* Accepted only. */
    uint16_t keepalive;        /* s; 0 = none */
    bool server_keepalive;     /* keepalive is ours, not the client's (MQTT 5) */
    bool persistent;           /* the session outlives the connection... */
    uint32_t expiry_s;         /* ...for this long (UINT32_MAX = forever) */
    uint16_t receive_window;   /* the client's receive maximum; 0 = not given */
    uint32_t peer_max_packet;  /* the client's maximum packet size; 0 = none */
    uint16_t out_alias_max;    /* topic aliases the client lets us use */
    struct mqtt_props connack; /* properties for the CONNACK (borrows auto_id) */
};

/* Decide on CONNECT req->k. Returns REASON_NONE and fills *out when accepted. Otherwise the
 * reason: a refusal to answer with a CONNACK when reason_info(r)->v3 != 0, else a protocol error
 * (the connection is closed without CONNACK). */
enum reason connect_decide(const struct connect_request *req, struct connect_result *out);

/* Milliseconds without a packet after which a client with this keep-alive is gone. */
uint64_t connect_keepalive_limit_ms(uint16_t keepalive_s);

#endif
