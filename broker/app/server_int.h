/* server_int: what server.c (wiring, reloads, shutdown) and server_listen.c (listeners and
 * accepting connections) share; private to the server module. */
#ifndef CERTMQ_SERVER_INT_H
#define CERTMQ_SERVER_INT_H

#include "server.h"

#include "broker.h"
#include "client.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "memwatch.h"
#include "persist.h"
#include "plugin.h"
#include "stats.h"
#include "tls.h"
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct srv_listener {
    struct server *srv;
    struct listener *l;
    struct tls_ctx *ctx;
    struct ws_ctx *ws; /* websockets listeners only */
    const struct config_listener *cl;
    uint64_t accepted; /* connections accepted (metrics) */
};

struct server_metrics;

struct server {
    uv_loop_t *loop;
    struct config cfg;
    struct tls_lib *tls;
    struct srv_listener *ls;
    size_t nls;
    struct conn_env *cenv;
    struct client_env *clenv;
    struct broker *b;
    struct ws_ctx *ws;
    struct persist *persist;
    struct plugin_set *plugins;
    struct cluster *cluster; /* cluster mode only */
    uint64_t next_vacuum_ms;
    struct loop *lp;
    uv_timer_t ws_stop;
    uv_timer_t drain;   /* cluster: a stop waits for sessions to be claimed elsewhere */
    uint64_t drain_end; /* ms */
    bool draining;
    uint64_t start_ms;
    uint64_t next_sys_ms;
    struct memwatch mem;            /* max_memory */
    size_t acl_rules;               /* rules of the ACL in force, for the reload's shrink warning */
    struct stats_extra counts;      /* reloads and refusals counted here (uptime etc. on demand) */
    struct server_metrics *metrics; /* metrics_listener, NULL when off */
    bool ready;                     /* every listener up, persistence restored */
    bool stopping;
};

void server__log_diag(enum log_level lvl, const struct diag *d, const char *prefix);
/* A TLS context and a listening socket per configured listener (and the WebSocket context
 * when one is a websockets listener). 0, or -1 with every reason logged. */
int server__open_listeners(struct server *s);
/* The counters only the server knows, as of now. */
void server__stats_extra(struct server *s, struct stats_extra *x);

/* server_metrics.c: the metrics endpoint (metrics_listener). start: 0, or -1 logged. */
int server__metrics_start(struct server *s);
/* The endpoint's TLS context (metrics_require_certificate), NULL with the problems in d. */
struct tls_ctx *server__metrics_tls(struct tls_lib *lib, const struct config *cfg, struct diag *d);
void server__metrics_stop(struct server *s);
/* SIGHUP: the endpoint's certificate, key and scraper CA read again; on failure the ones in
 * force stay (logged). */
void server__metrics_reload(struct server *s);

/* server_revoke.c: what a newly revoked certificate reaches beyond its connections. */
/* After a CRL reload: for what fresh revokes and old (the contexts replaced) did not, discard
 * the offline persistent sessions (revoked_session) and, in a cluster, announce it. */
void server__revoke_new(struct server *s, struct tls_ctx *const *old, struct tls_ctx *const *fresh,
                        size_t n);
/* A plugin's verdict on c: the same for its certificate. */
void server__revoke_plugin(struct server *s, struct conn *c);
/* Another node announced r (the cluster's revoker). */
void server__revoked_elsewhere(void *ctx, const struct envelope_revoke *r);

#endif
