/* server: wires config, TLS contexts, listeners, the broker and the clients onto one loop.
 *
 * Reloads are all-or-nothing: a new ACL is parsed completely before it replaces the old one,
 * and a file with errors leaves the running rules in force with every error logged. */
#include "server.h"

#include "acl.h"
#include "broker.h"
#include "client.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "persist.h"
#include "plugin.h"
#include "sys.h"
#include "tls.h"
#include "ws.h"
#include "xmalloc.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Housekeeping granularity: session expiry, delayed wills and $SYS are due at most this late. */
#define TICK_MS 1000
/* SQLite incremental vacuum: often enough to give pages back, rare enough to cost nothing. */
#define VACUUM_INTERVAL_MS 60000
/* Time WebSocket close handshakes get at shutdown before libwebsockets is taken down. */
#define WS_CLOSE_GRACE_MS 1000
/* lws needs a connection table size up front: a third of the descriptors (each WSS device
 * uses three), capped when the limit is unlimited or huge so the table stays small. */
#define WS_MAX_FDS 1000000

struct srv_listener {
    struct server *srv;
    struct listener *l;
    struct tls_ctx *ctx;
    struct ws_ctx *ws; /* websockets listeners only */
    const struct config_listener *cl;
};

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
    uint64_t next_vacuum_ms;
    struct loop *lp;
    uv_timer_t ws_stop;
    uint64_t untrusted; /* clients disconnected because their certificate was revoked */
    uint64_t start_ms;
    uint64_t next_sys_ms;
    bool stopping;
};

static void log_diag(enum log_level lvl, const struct diag *d, const char *prefix)
{
    for (size_t i = 0; i < d->count; i++)
        log_msg(lvl, "%s%s", prefix, d->msgs[i]);
}

int server_check(const struct config *cfg, struct diag *d)
{
    size_t before = d->count;
    struct tls_lib *lib = tls_lib_new(cfg->session_tickets, cfg->session_ticket_lifetime);
    for (size_t i = 0; i < cfg->listener_count; i++) {
        struct tls_ctx *ctx = tls_ctx_new(lib, &cfg->listeners[i].tls, d);
        if (ctx)
            tls_ctx_unref(ctx);
    }
    tls_lib_free(lib);
    plugin_check_all(cfg, d);
    struct diag warn;
    diag_init(&warn);
    struct acl *a = acl_load(cfg->acl_file, d, &warn);
    acl_free(a);
    for (size_t i = 0; i < warn.count; i++)
        diag_add(d, NULL, 0, "warning: %s", warn.msgs[i]);
    size_t warnings = warn.count;
    diag_free(&warn);
    return d->count - before > warnings ? -1 : 0;
}

/* ---- ACL ---------------------------------------------------------------------------------- */

static struct acl *load_acl(struct server *s)
{
    struct diag d, warn;
    diag_init(&d);
    diag_init(&warn);
    struct acl *a = acl_load(s->cfg.acl_file, &d, &warn);
    log_diag(LOGL_ERR, &d, "acl: ");
    log_diag(LOGL_WARN, &warn, "acl: ");
    if (a)
        log_notice("acl: loaded %s (%zu rules)", s->cfg.acl_file, acl_rule_count(a));
    diag_free(&d);
    diag_free(&warn);
    return a;
}

static void reload_acl(struct server *s)
{
    struct acl *a = load_acl(s);
    if (!a) {
        log_err("acl: reload of %s failed, keeping the previous rules", s->cfg.acl_file);
        return;
    }
    broker_set_acl(s->b, a);
}

static void reload_tls(struct server *s);

/* The ACL file's and every CRL's directory are watched; a crlpath is watched as a whole. */
static void acl_changed(void *ctx)
{
    reload_acl(ctx);
}

static void tls_changed(void *ctx)
{
    reload_tls(ctx);
}

static void watch_file(struct server *s, const char *path, void (*cb)(void *ctx))
{
    char *a = xstrdup(path), *b = xstrdup(path);
    loop_watch(s->lp, dirname(a), basename(b), LOOP_DEBOUNCE_MS, cb, s);
    free(a);
    free(b);
}

static void start_watches(struct server *s)
{
    watch_file(s, s->cfg.acl_file, acl_changed);
    for (size_t i = 0; i < s->cfg.listener_count; i++) {
        const struct config_listener *cl = &s->cfg.listeners[i];
        for (size_t k = 0; k < cl->tls.crlfile_count; k++)
            watch_file(s, cl->tls.crlfiles[k], tls_changed);
        if (cl->tls.crlpath)
            loop_watch(s->lp, cl->tls.crlpath, NULL, LOOP_DEBOUNCE_MS, tls_changed, s);
    }
}

/* ---- certificates and revocation ---------------------------------------------------------- */

struct sweep {
    struct server *s;
    size_t checked, dropped;
};

static void sweep_client(void *ctx, struct client *c, struct conn *conn)
{
    struct sweep *sw = ctx;
    struct srv_listener *sl = conn_tag(conn);
    char why[96];
    sw->checked++;
    if (sl && sl->ctx && tls_ctx_peer_revoked(sl->ctx, conn_peer(conn), why, sizeof(why))) {
        sw->dropped++;
        sw->s->untrusted++;
        client_untrust(c, why, sw->s->cfg.revoked_session == CONFIG_REVOKED_DISCARD);
    }
}

struct untrust_one {
    struct server *s;
    uint64_t id;
    const char *why;
    bool found;
};

static void untrust_if(void *ctx, struct client *c, struct conn *conn)
{
    struct untrust_one *u = ctx;
    if (u->found || conn_id(conn) != u->id)
        return;
    u->found = true;
    u->s->untrusted++;
    client_untrust(c, u->why, u->s->cfg.revoked_session == CONFIG_REVOKED_DISCARD);
}

/* A plugin's verdict on a connected device (e.g. OCSP now says revoked). A scan: revocations
 * are rare and this keeps the per-connection state free of an index. */
static int server_disconnect(void *ctx, uint64_t conn_id, const char *reason)
{
    struct untrust_one u = {ctx, conn_id, reason && *reason ? reason : "by plugin", false};
    client_foreach(u.s->clenv, untrust_if, &u);
    return u.found ? 0 : -1;
}

/* Rebuild every listener's TLS context from its files (CA, certificate, key, CRLs). All or
 * nothing: if any listener's files are bad, every listener keeps its current context. Then
 * every connected device is checked against the new CRLs. */
static void reload_tls(struct server *s)
{
    struct tls_ctx **fresh = xcalloc(s->nls, sizeof(*fresh));
    bool ok = true;
    for (size_t i = 0; i < s->nls; i++) {
        struct diag d;
        diag_init(&d);
        fresh[i] = tls_ctx_new(s->tls, &s->ls[i].cl->tls, &d);
        log_diag(LOGL_ERR, &d, "tls reload: ");
        diag_free(&d);
        ok &= fresh[i] != NULL;
    }
    if (!ok) {
        log_err("tls reload failed: keeping the certificates and CRLs in force");
        for (size_t i = 0; i < s->nls; i++)
            tls_ctx_unref(fresh[i]);
        free(fresh);
        return;
    }
    for (size_t i = 0; i < s->nls; i++) {
        /* Connections hold their own reference to the context they were made with. */
        tls_ctx_unref(s->ls[i].ctx);
        s->ls[i].ctx = fresh[i];
    }
    free(fresh);
    struct sweep sw = {s, 0, 0};
    client_foreach(s->clenv, sweep_client, &sw);
    log_notice("tls: certificates and CRLs reloaded; %zu connected device(s) checked, %zu "
               "disconnected as revoked",
               sw.checked, sw.dropped);
}

/* ---- $SYS and housekeeping ---------------------------------------------------------------- */

static void publish_sys(struct server *s)
{
    struct sys_extra x = {.uptime_s = (uv_now(s->loop) - s->start_ms) / 1000,
                          .revoked = s->untrusted};
    for (size_t i = 0; i < s->nls; i++)
        x.chain_cache_hits += s->ls[i].ctx ? tls_ctx_chain_cache_hits(s->ls[i].ctx) : 0;
    sys_publish(s->b, conn_env_stats(s->cenv), &x, (int64_t)uv_now(s->loop));
}

static void on_tick(void *ctx, uint64_t now)
{
    struct server *s = ctx;
    broker_tick(s->b, (int64_t)now);
    plugin_tick(s->plugins);
    if (s->persist) {
        persist_commit(s->persist); /* what the tick changed (expired sessions, wills) */
        if (now >= s->next_vacuum_ms) {
            persist_vacuum(s->persist);
            s->next_vacuum_ms = now + VACUUM_INTERVAL_MS;
        }
    }
    if (s->cfg.sys_interval && now >= s->next_sys_ms) {
        publish_sys(s);
        s->next_sys_ms = now + (uint64_t)s->cfg.sys_interval * 1000;
    }
}

/* ---- listeners and signals ---------------------------------------------------------------- */

static void on_conn(void *ud, uv_stream_t *server)
{
    struct srv_listener *sl = ud;
    struct server *s = sl->srv;
    const struct conn_stats *cs = conn_env_stats(s->cenv);
    struct conn *c = conn_accept(s->cenv, server, &sl->ctx, sl->ws, &client_conn_cbs, s->clenv, sl);
    if (!c)
        return;
    if (s->cfg.max_connections >= 0 &&
        cs->open + cs->handshaking + cs->waiting > (uint32_t)s->cfg.max_connections) {
        log_notice("refused %s: max_connections (%d) reached", conn_addr(c),
                   s->cfg.max_connections);
        conn_close(c, false);
    }
}

static void on_reload(void *ctx)
{
    struct server *s = ctx;
    log_notice("SIGHUP: reloading the ACL, certificates and CRLs");
    reload_acl(s);
    reload_tls(s);
    plugin_reload(s->plugins);
}

static void on_stop(void *ctx)
{
    server_stop(ctx);
}

static int open_listeners(struct server *s)
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
        log_diag(LOGL_ERR, &d, "");
        diag_free(&d);
        if (!sl->ctx) {
            bad = -1;
            continue;
        }
        if (cl->protocol == CONFIG_PROTO_WEBSOCKETS) {
            if (!s->ws) {
                struct rlimit rl = {0};
                getrlimit(RLIMIT_NOFILE, &rl);
                unsigned fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > WS_MAX_FDS
                                   ? WS_MAX_FDS
                                   : (unsigned)rl.rlim_cur;
                s->ws = ws_ctx_new(s->loop, fds / 3 + 1);
            }
            if (!s->ws) {
                bad = -1;
                continue;
            }
            sl->ws = s->ws;
        }
        int err = 0;
        sl->l = listener_open(s->loop, cl->address, cl->port, on_conn, sl, &err);
        if (!sl->l) {
            log_err("%s:%d: cannot listen on %s:%u: %s", cl->file, cl->line,
                    cl->address ? cl->address : "*", cl->port, uv_strerror(err));
            bad = -1;
            continue;
        }
        const char *a = listener_address(sl->l);
        const char *proto = sl->ws ? "websockets" : "mqtt";
        log_notice(strchr(a, ':') ? "listening on [%s]:%u (%s)" : "listening on %s:%u (%s)", a,
                   listener_port(sl->l), proto);
    }
    return bad;
}

static void commit_turn(void *ctx)
{
    persist_commit(ctx);
}

/* Restore the durable state, then have every change written and committed once per loop turn
 * before acknowledgements go out. */
static int open_persistence(struct server *s)
{
    const char *dir = s->cfg.persistence_location ? s->cfg.persistence_location : ".";
    struct diag d;
    diag_init(&d);
    s->persist = persist_open(dir, &d);
    if (s->persist &&
        persist_load(s->persist, s->b, (int64_t)uv_now(s->loop), (int64_t)time(NULL), &d) != 0) {
        persist_close(s->persist);
        s->persist = NULL;
    }
    log_diag(LOGL_ERR, &d, "");
    diag_free(&d);
    if (!s->persist)
        return -1;
    broker_set_store(s->b, persist_store(s->persist));
    conn_env_set_before_flush(s->cenv, commit_turn, s->persist);
    return 0;
}

struct server *server_start(uv_loop_t *loop, struct config *cfg)
{
    struct server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    s->start_ms = uv_now(loop);
    s->lp = loop_new(loop);
    const struct config *c = &s->cfg;

    struct diag pd;
    diag_init(&pd);
    s->plugins = plugin_load_all(c, loop, server_disconnect, s, &pd);
    log_diag(LOGL_ERR, &pd, "");
    diag_free(&pd);
    s->b = broker_new(&c->broker);
    struct broker_policy policy;
    plugin_policy(s->plugins, &policy);
    broker_set_policy(s->b, &policy);
    s->clenv = client_env_new(loop, s->b, &c->client);
    client_set_discard_revoked(s->clenv, c->revoked_session == CONFIG_REVOKED_DISCARD);
    s->cenv = conn_env_new(loop, &c->conn);
    if (plugin_has_cert_check(s->plugins)) {
        struct conn_checker ck;
        plugin_checker(s->plugins, &ck);
        conn_env_set_checker(s->cenv, &ck);
    }
    s->tls = tls_lib_new(c->session_tickets, c->session_ticket_lifetime);

    struct acl *a = load_acl(s);
    if (!s->plugins || !a || open_listeners(s) != 0) {
        acl_free(a);
        s->stopping = false;
        server_stop(s);
        uv_run(loop, UV_RUN_DEFAULT);
        server_free(s);
        return NULL;
    }
    broker_set_acl(s->b, a);
    if (c->persistence && open_persistence(s) != 0) {
        server_stop(s);
        uv_run(loop, UV_RUN_DEFAULT);
        server_free(s);
        return NULL;
    }
    start_watches(s);
    loop_on_signals(s->lp, on_reload, on_stop, s);
    loop_every(s->lp, TICK_MS, on_tick, s);
    if (c->pid_file) {
        FILE *f = fopen(c->pid_file, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        } else {
            log_warn("cannot write pid_file %s", c->pid_file);
        }
    }
    log_notice("certmq %s running", CERTMQ_VERSION);
    return s;
}

static void ws_shutdown(uv_timer_t *t)
{
    struct server *s = t->data;
    ws_ctx_stop(s->ws);
    uv_close((uv_handle_t *)t, NULL);
}

void server_stop(struct server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    for (size_t i = 0; i < s->nls; i++) {
        listener_close(s->ls[i].l);
        s->ls[i].l = NULL;
    }
    loop_stop(s->lp);
    client_close_all(s->clenv);
    plugin_stop_all(s->plugins);
    if (s->ws) {
        /* Give WebSocket close handshakes a moment, then take lws down (its handles keep the
         * loop alive until then). */
        uv_timer_init(s->loop, &s->ws_stop);
        s->ws_stop.data = s;
        uv_timer_start(&s->ws_stop, ws_shutdown, WS_CLOSE_GRACE_MS, 0);
    }
}

void server_free(struct server *s)
{
    if (!s)
        return;
    conn_env_free(s->cenv);
    loop_free(s->lp);
    uv_run(s->loop, UV_RUN_DEFAULT);
    if (s->ws) {
        ws_ctx_free(s->ws);
        uv_run(s->loop, UV_RUN_DEFAULT);
    }
    for (size_t i = 0; i < s->nls; i++)
        if (s->ls[i].ctx)
            tls_ctx_unref(s->ls[i].ctx);
    free(s->ls);
    /* Durable state is complete; detach it before the broker frees its memory. */
    if (s->persist) {
        broker_set_store(s->b, NULL);
        persist_close(s->persist);
    }
    broker_free(s->b);
    client_env_free(s->clenv);
    plugin_free_all(s->plugins);
    tls_lib_free(s->tls);
    if (s->cfg.pid_file)
        unlink(s->cfg.pid_file);
    config_free(&s->cfg);
    free(s);
}
