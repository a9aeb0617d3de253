/* client: one connection's MQTT protocol engine, between conn (bytes + identity) and broker.
 *
 * Decodes as many packets as each read holds, dispatches them through a static table that checks
 * the connection state once, and produces output in the connection's write slot: control
 * packets first, then publishes pulled from the session while the transport has room, encoded
 * into one shared scratch buffer so a loop turn becomes few TLS records. */
#ifndef CERTMQ_CLIENT_H
#define CERTMQ_CLIENT_H

#include "broker.h"
#include "conn.h"
#include "connect.h"
#include "reason.h"

#include <stdbool.h>
#include <stdint.h>

struct client_opts {
    struct connect_limits connect; /* what a CONNECT is judged by (connect_decide) */
    uint32_t connect_timeout_ms;
    uint32_t packet_timeout_ms;  /* to finish a packet once started, keep-alive or not */
    uint32_t message_size_limit; /* payload; 0 = none */
    bool connection_messages;
    bool discard_revoked; /* revoked_session: a revoked device's session goes with it */
    /* rate_limit_action disconnect: a publish over its identity's rate ends an MQTT 5 client's
     * connection (DISCONNECT 0x96) instead of being refused alone; 3.1.1 clients always are. */
    bool rate_disconnect;
};

struct client_env;
struct client;

/* Also registers the client's operations (wake up, kick) with b. */
struct client_env *client_env_new(uv_loop_t *loop, struct broker *b, const struct client_opts *o);
/* Close the env's loop handles; the loop must run once more before client_env_free. */
void client_env_close(struct client_env *e);
void client_env_free(struct client_env *e);
void client_env_set_opts(struct client_env *e, const struct client_opts *o);
/* The callbacks every listener gives conn_accept (with the client_env as user data). */
extern const struct conn_cbs client_conn_cbs;

/* The certificate behind c is no longer trusted (revoked, expired): disconnect it (MQTT 5:
 * DISCONNECT with reason_info(why)'s code) without publishing its will; discard its session when
 * the revoked_session option says so. detail is the text logged and sent (NULL = the reason's). */
void client_untrust(struct client *c, enum reason why, const char *detail);

/* max_memory: while over, new CONNECTs, PUBLISHes and SUBSCRIBEs are refused (MQTT 5 0x97;
 * a 3.1.1 client that publishes is disconnected); deliveries go on, they free memory. */
void client_env_set_over_memory(struct client_env *e, bool over);

/* Close every client (server shutdown): MQTT 5 clients get a DISCONNECT for REASON_SHUTDOWN. */
void client_close_all(struct client_env *e);
size_t client_count(const struct client_env *e);
/* A cluster ticket completed (ok: the cluster stored the retained message, or the read barrier
 * was reached): the client waiting for it, if still there, goes on. */
void client_env_wait_done(struct client_env *e, uint64_t ticket, bool ok);

#endif
