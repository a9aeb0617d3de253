/* server_listen: the server's listeners: one TLS context and listening socket per configured
 * listener, and what every accepted connection goes through first (max_connections). */
#include "server_int.h"

#include "listener.h"
#include "xmalloc.h"

#include <string.h>
#include <sys/resource.h>

/* lws needs a connection table size up front: a third of the descriptors (each WSS device
 * uses three), capped when the limit is unlimited or huge so the table stays small. */
#define WS_MAX_FDS 1000000

void server__log_diag(enum log_level lvl, const struct diag *d, const char *prefix)
{
    for (size_t i = 0; i < d->count; i++)
        log_msg(lvl, "%s%s", prefix, d->msgs[i]);
}

static void on_conn(void *ud, uv_stream_t *server)
{
    struct srv_listener *sl = ud;
    struct server *s = sl->srv;
    const struct conn_stats *cs = conn_env_stats(s->cenv);
    struct conn *c =
        conn_accept(s->cenv, server, &sl->ctx, sl->ws, &sl->cl->proxy, &client_conn_cbs, s->clenv);
    /* Refused by conn already (a per-address limit, not a proxy): logged there, at most once
     * per 10 s for non-proxies, so not again here. */
    if (!c || conn_closing(c))
        return;
    sl->accepted++;
    if (s->cfg.max_connections >= 0 &&
        cs->open + cs->hello + cs->handshaking + cs->waiting > (uint32_t)s->cfg.max_connections) {
        s->counts.max_connections_refused++;
        log_notice("refused %s: max_connections (%d) reached", conn_addr(c),
                   s->cfg.max_connections);
        conn_close(c, false);
    }
}

/* One WebSocket context for every websockets listener, sized by the descriptor limit. */
static struct ws_ctx *ws_for(struct server *s)
{
    if (!s->ws) {
        struct rlimit rl = {0};
        getrlimit(RLIMIT_NOFILE, &rl);
        unsigned fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > WS_MAX_FDS
                           ? WS_MAX_FDS
                           : (unsigned)rl.rlim_cur;
        s->ws = ws_ctx_new(s->loop, fds / 3 + 1);
    }
    return s->ws;
}

int server__open_listeners(struct server *s)
{
    s->nls = s->cfg.listener_count;
    s->ls = xcalloc(s->nls, sizeof(*s->ls));
    int bad = 0;
    for (size_t i = 0; i < s->nls; i++) {
        struct srv_listener *sl = &s->ls[i];
        const struct config_listener *cl = &s->cfg.listeners[i];
        sl->srv = s;
        sl->cl = cl;
        struct diag d;
        diag_init(&d);
        sl->ctx = tls_ctx_new(s->tls, &cl->tls, &d);
        server__log_diag(LOGL_ERR, &d, "");
        diag_free(&d);
        if (!sl->ctx) {
            bad = -1;
            continue;
        }
        if (cl->protocol == CONFIG_PROTO_WEBSOCKETS) {
            if (!ws_for(s)) {
                bad = -1;
                continue;
            }
            sl->ws = s->ws;
        }
        int err = 0;
        sl->l = listener_open(s->loop, cl->address, cl->port, cl->reuse_port, on_conn, sl, &err);
        if (!sl->l) {
            log_err("%s:%d: cannot listen on %s:%u: %s", cl->file, cl->line,
                    cl->address ? cl->address : "*", cl->port, uv_strerror(err));
            bad = -1;
            continue;
        }
        const char *a = listener_address(sl->l);
        const char *proto = sl->ws ? "websockets" : "mqtt";
        log_notice(strchr(a, ':') ? "listening on [%s]:%u (%s%s%s)" : "listening on %s:%u (%s%s%s)",
                   a, listener_port(sl->l), proto, cl->proxy.v2 ? ", PROXY protocol v2" : "",
                   cl->reuse_port ? ", reuse_port" : "");
    }
    return bad;
}
