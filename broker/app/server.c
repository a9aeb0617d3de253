/* server: wires config, TLS contexts, listeners, plugins, persistence, the broker and the
 * clients onto one loop (loop: signals, file watches, tick), and shuts them down in order.
 *
 * Reloads are all-or-nothing: new ACL rules or TLS contexts are built completely before they
 * replace the old ones, and files with errors leave the running ones in force, logged. */
#include "server_int.h"

#include "aclfile.h"
#include "fileread.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "pidfile.h"
#include "sys.h"
#include "xmalloc.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A TLS reload whose CRLs list under half the revoked certificates they listed before, and at
 * least this many fewer, is warned about. CRLs only grow in normal operation (an entry leaves
 * only after its certificate expired), so a sharp drop is a truncated file or a CRL of the wrong
 * CA; the reload still applies, since a new CA generation legitimately starts empty. */
#define CRL_SHRINK_MIN 8
/* Housekeeping granularity: session expiry, delayed wills and $SYS are due at most this late. */
#define TICK_MS 1000
/* How often a stopping cluster node looks whether its sessions have been claimed elsewhere. */
#define DRAIN_CHECK_MS 100
/* Time WebSocket close handshakes get at shutdown before libwebsockets is taken down. */
#define WS_CLOSE_GRACE_MS 1000
/* The loop clock is in milliseconds; uptime and sys_interval are in seconds. */
#define MS_PER_S 1000

int server_check(const struct config *cfg, struct diag *d)
{
    size_t before = d->count;
    struct tls_lib *lib = tls_lib_new(cfg->session_tickets, cfg->session_ticket_lifetime);
    struct tls_load how = {.settle_ms = 0};
    if (cfg->tls_ticket_key_file)
        tls_lib_ticket_keys(lib, cfg->tls_ticket_key_file, &how, d);
    for (size_t i = 0; i < cfg->listener_count; i++) {
        struct tls_ctx *ctx = tls_ctx_new(lib, &cfg->listeners[i].tls, d);
        if (ctx)
            tls_ctx_unref(ctx);
    }
    if (cfg->metrics.require_certificate) {
        struct tls_ctx *ctx = server__metrics_tls(lib, cfg, d);
        if (ctx)
            tls_ctx_unref(ctx);
    }
    tls_lib_free(lib);
    plugin_check_all(cfg, d);
    if (cluster_enabled(&cfg->cluster))
        cluster_check(&cfg->cluster, d);
    size_t warnings = aclfile_check(cfg->acl_file, d);
    return d->count - before > warnings ? -1 : 0;
}

/* ---- file watches ------------------------------------------------------------------------ */

static bool reload_tls(struct server *s);

/* The ACL file's and every CRL's directory are watched; a crlpath is watched as a whole.
 * A reload that found a file still being written comes back on the next debounce tick (and so
 * at most LOOP_DEBOUNCE_MAX_MS later even while the writes go on). */
/* aclfile_reload, counted for metrics; true when the file was still being written. */
static bool reload_acl(struct server *s)
{
    int r = aclfile_reload(s->b, s->cfg.acl_file, &s->acl_rules);
    if (r == ACLFILE_OK)
        s->counts.acl_reloads++;
    else if (r == ACLFILE_FAILED)
        s->counts.acl_reload_failures++;
    return r == ACLFILE_AGAIN;
}

static void acl_changed(void *ctx)
{
    struct server *s = ctx;
    if (reload_acl(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, acl_changed, s);
}

static void tls_changed(void *ctx)
{
    struct server *s = ctx;
    if (reload_tls(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, tls_changed, s);
}

/* Session-ticket keys (tls_ticket_key_file): all or nothing, like the TLS files. A key file
 * that fails its checks leaves the keys in force, so tickets keep resuming; the operator is
 * told. True when the file was still being written (nothing changed; try again later). */
static bool reload_ticket_keys(struct server *s)
{
    const char *path = s->cfg.tls_ticket_key_file;
    if (!path)
        return false;
    struct diag d;
    diag_init(&d);
    struct tls_load how = {.settle_ms = FILEREAD_SETTLE_MS};
    int r = tls_lib_ticket_keys(s->tls, path, &how, &d);
    server__log_diag(LOGL_ERR, &d, "tls reload: ");
    diag_free(&d);
    if (r == 0) {
        char name[33];
        size_t n = tls_lib_ticket_key_info(s->tls, name);
        log_notice("tls: %zu session-ticket key(s) loaded from %s; new tickets use key %.8s...", n,
                   path, name);
    } else if (how.unstable) {
        log_notice("tls reload: %s is still being written; keeping the session-ticket keys in "
                   "force, retrying",
                   how.unstable_at);
    } else {
        log_err("tls reload: keeping the session-ticket keys in force");
    }
    return how.unstable;
}

static void ticket_keys_changed(void *ctx)
{
    struct server *s = ctx;
    if (reload_ticket_keys(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, ticket_keys_changed, s);
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
    if (s->cfg.tls_ticket_key_file)
        watch_file(s, s->cfg.tls_ticket_key_file, ticket_keys_changed);
    for (size_t i = 0; i < s->cfg.listener_count; i++) {
        const struct config_listener *cl = &s->cfg.listeners[i];
        for (size_t k = 0; k < cl->tls.crlfile_count; k++)
            watch_file(s, cl->tls.crlfiles[k], tls_changed);
        if (cl->tls.crlpath)
            loop_watch(s->lp, cl->tls.crlpath, NULL, LOOP_DEBOUNCE_MS, tls_changed, s);
    }
}

/* ---- certificates and revocation ---------------------------------------------------------- */

/* A plugin's verdict on a connected device (e.g. OCSP now says revoked). */
static int server_disconnect(void *ctx, uint64_t conn_id, const char *reason)
{
    struct server *s = ctx;
    struct conn *c = conn_env_find(s->cenv, conn_id);
    if (!c)
        return -1;
    server__revoke_plugin(s, c);
    conn_untrust(c, REASON_REVOKED_PLUGIN, reason && *reason ? reason : "by plugin");
    return 0;
}

static int server_cert_attr(void *ctx, uint64_t conn_id, const char *attr, size_t index,
                            const char **value, size_t *len)
{
    struct server *s = ctx;
    struct conn *c = conn_env_find(s->cenv, conn_id);
    int k = attr ? certattr_from_name(attr, strlen(attr)) : -1;
    if (!c || k < 0)
        return -1;
    const struct certattrs *a = conn_peer(c)->attrs;
    if (value && len && !certattrs_value(a, k, index, value, len)) {
        *value = NULL;
        *len = 0;
    }
    return (int)certattrs_count(a, k);
}

static size_t crl_entries(struct tls_ctx *const *ctx, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ctx[i] ? tls_ctx_crl_entries(ctx[i]) : 0;
    return total;
}

/* Build every listener's new context; NULL when any failed (logged) or a file was still being
 * written (*again set). */
static struct tls_ctx **build_tls(struct server *s, bool *again)
{
    struct tls_ctx **fresh = xcalloc(s->nls, sizeof(*fresh));
    bool ok = true;
    *again = false;
    for (size_t i = 0; i < s->nls && ok; i++) {
        struct diag d;
        diag_init(&d);
        struct tls_load how = {.settle_ms = FILEREAD_SETTLE_MS};
        fresh[i] = tls_ctx_load(s->tls, &s->ls[i].cl->tls, &how, &d);
        server__log_diag(LOGL_ERR, &d, "tls reload: ");
        diag_free(&d);
        if (how.unstable)
            log_notice("tls reload: %s is still being written; keeping the certificates and "
                       "CRLs in force, retrying",
                       how.unstable_at);
        *again |= how.unstable;
        ok = fresh[i] != NULL;
    }
    if (!ok) {
        for (size_t i = 0; i < s->nls; i++)
            tls_ctx_unref(fresh[i]);
        free(fresh);
        return NULL;
    }
    return fresh;
}

/* Rebuild every listener's TLS context from its files (CA, certificate, key, CRLs). All or
 * nothing: if any listener's files are bad or still being written, every listener keeps its
 * current context. Then every connected device is checked against the new CRLs. True when a
 * file was still being written: nothing changed, the caller tries again later. */
static bool reload_tls(struct server *s)
{
    bool again;
    struct tls_ctx **fresh = build_tls(s, &again);
    if (!fresh) {
        if (!again) {
            s->counts.tls_reload_failures++;
            log_err("tls reload failed: keeping the certificates and CRLs in force");
        }
        return again;
    }
    s->counts.tls_reloads++;
    size_t was = 0, now = crl_entries(fresh, s->nls);
    struct tls_ctx **old = xcalloc(s->nls, sizeof(*old));
    for (size_t i = 0; i < s->nls; i++)
        old[i] = s->ls[i].ctx;
    server__revoke_new(s, old, fresh, s->nls);
    free(old);
    for (size_t i = 0; i < s->nls; i++) {
        was += s->ls[i].ctx ? tls_ctx_crl_entries(s->ls[i].ctx) : 0;
        /* Connections hold their own reference to the context they were made with. */
        tls_ctx_unref(s->ls[i].ctx);
        s->ls[i].ctx = fresh[i];
    }
    free(fresh);
    if (now * 2 < was && was - now >= CRL_SHRINK_MIN)
        log_warn("tls: the CRLs now list %zu revoked certificates, %zu before; applied (if a CRL "
                 "file was cut short, restore it: write a temporary file and rename it over)",
                 now, was);
    size_t dropped = 0, checked = conn_env_recheck(s->cenv, &dropped);
    log_notice("tls: certificates and CRLs reloaded (%zu revoked certificates listed); %zu "
               "connected device(s) checked, %zu disconnected as revoked",
               now, checked, dropped);
    return false;
}

/* ---- $SYS and housekeeping ---------------------------------------------------------------- */

void server__stats_extra(struct server *s, struct stats_extra *x)
{
    *x = s->counts;
    x->uptime_s = (uv_now(s->loop) - s->start_ms) / MS_PER_S;
    x->resident_bytes = s->mem.rss;
    x->cluster = s->cluster ? cluster_stats(s->cluster) : NULL;
    for (size_t i = 0; i < s->nls; i++)
        x->chain_cache_hits += s->ls[i].ctx ? tls_ctx_chain_cache_hits(s->ls[i].ctx) : 0;
}

static void publish_sys(struct server *s)
{
    struct stats_extra x;
    server__stats_extra(s, &x);
    sys_publish(s->b, conn_env_stats(s->cenv), &x, (int64_t)uv_now(s->loop));
}

/* max_memory: checked once a tick; the state change is what gets logged. */
static void check_memory(struct server *s)
{
    if (!memwatch_check(&s->mem))
        return;
    client_env_set_over_memory(s->clenv, s->mem.over);
    if (s->mem.over)
        log_warn("max_memory: resident memory %llu MiB of %llu MiB: refusing new connections, "
                 "publishes and subscriptions until it is back under 90%%",
                 (unsigned long long)(s->mem.rss >> 20), (unsigned long long)(s->mem.limit >> 20));
    else
        log_notice("max_memory: resident memory %llu MiB, back under the budget",
                   (unsigned long long)(s->mem.rss >> 20));
}

static void on_tick(void *ctx, uint64_t now)
{
    struct server *s = ctx;
    check_memory(s);
    broker_tick(s->b, (int64_t)now);
    plugin_tick(s->plugins);
    if (s->persist)
        persist_tick(s->persist, now, &s->next_vacuum_ms);
    if (s->cfg.sys_interval && now >= s->next_sys_ms) {
        publish_sys(s);
        s->next_sys_ms = now + (uint64_t)s->cfg.sys_interval * MS_PER_S;
    }
}

/* ---- signals ---------------------------------------------------------------------------- */

static void on_reload(void *ctx)
{
    struct server *s = ctx;
    notify_reloading();
    log_notice("SIGHUP: reloading the ACL, certificates and CRLs%s",
               s->cfg.tls_ticket_key_file ? ", session-ticket keys" : "");
    if (reload_acl(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, acl_changed, s);
    if (reload_ticket_keys(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, ticket_keys_changed, s);
    if (reload_tls(s))
        loop_again(s->lp, LOOP_DEBOUNCE_MS, tls_changed, s);
    server__metrics_reload(s);
    plugin_reload(s->plugins);
    /* Files still being written are retried on the debounce tick; the broker serves on with
     * what it has meanwhile, so it is ready again now. */
    notify_ready("running");
}

/* At start a key file that fails its checks stops the broker: starting with random keys would
 * silently bring back the handshake storm the file is there to prevent. */
static int start_ticket_keys(struct server *s)
{
    const char *path = s->cfg.tls_ticket_key_file;
    if (!path)
        return 0;
    struct diag d;
    diag_init(&d);
    struct tls_load how = {.settle_ms = 0};
    int r = tls_lib_ticket_keys(s->tls, path, &how, &d);
    server__log_diag(LOGL_ERR, &d, "");
    diag_free(&d);
    if (r != 0) {
        if (how.unstable)
            log_err("%s: changed while being read; not starting", path);
        log_err("tls_ticket_key_file: cannot use the session-ticket keys; not starting");
        return -1;
    }
    char name[33];
    size_t n = tls_lib_ticket_key_info(s->tls, name);
    log_notice("tls: %zu session-ticket key(s) from %s; new tickets use key %.8s...", n, path,
               name);
    return 0;
}

static void on_stop(void *ctx)
{
    server_stop(ctx);
}

static void wait_done(void *clenv, uint64_t ticket, bool ok)
{
    client_env_wait_done(clenv, ticket, ok);
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
    struct plugin_server ps = {s, server_disconnect, server_cert_attr};
    s->plugins = plugin_load_all(c, loop, &ps, &pd);
    server__log_diag(LOGL_ERR, &pd, "");
    diag_free(&pd);
    s->b = broker_new(&c->broker);
    struct broker_policy policy;
    plugin_policy(s->plugins, &policy);
    broker_set_policy(s->b, &policy);
    s->clenv = client_env_new(loop, s->b, &c->client);
    s->cenv = conn_env_new(loop, &c->conn);
    if (plugin_has_cert_check(s->plugins)) {
        struct conn_checker ck;
        plugin_checker(s->plugins, &ck);
        conn_env_set_checker(s->cenv, &ck);
    }
    s->tls = tls_lib_new(c->session_tickets, c->session_ticket_lifetime);

    struct acl *a = NULL;
    if (start_ticket_keys(s) == 0)
        a = aclfile_load(c->acl_file);
    if (!s->plugins || !a || server__open_listeners(s) != 0) {
        acl_free(a);
        s->stopping = false;
        server_stop(s);
        uv_run(loop, UV_RUN_DEFAULT);
        server_free(s);
        return NULL;
    }
    s->acl_rules = acl_rule_count(a);
    broker_set_acl(s->b, a);
    /* Before persistence restores subscriptions: the cluster learns interest from changes. */
    if (cluster_enabled(&c->cluster)) {
        s->cluster = cluster_new(loop, s->b, &c->cluster);
        /* Retained writes and read barriers complete for the clients waiting on them. */
        cluster_set_waiter(s->cluster, wait_done, s->clenv);
        cluster_set_revoker(s->cluster, server__revoked_elsewhere, s);
    }
    if ((s->cluster && cluster_connect(s->cluster) != 0) ||
        (c->persistence &&
         !(s->persist = persist_start(c->persistence_location ? c->persistence_location : ".", s->b,
                                      s->cenv, (int64_t)uv_now(loop), (int64_t)time(NULL))))) {
        server_stop(s);
        uv_run(loop, UV_RUN_DEFAULT);
        server_free(s);
        return NULL;
    }
    if (server__metrics_start(s) != 0) {
        server_stop(s);
        uv_run(loop, UV_RUN_DEFAULT);
        server_free(s);
        return NULL;
    }
    start_watches(s);
    loop_on_signals(s->lp, on_reload, on_stop, s);
    memwatch_init(&s->mem, c->max_memory);
    log_info("max_memory %llu MiB", (unsigned long long)(s->mem.limit >> 20));
    loop_every(s->lp, TICK_MS, on_tick, s);
    pidfile_write(c->pid_file);
    s->ready = true;
    log_notice("certmq %s running", CERTMQ_VERSION);
    notify_ready("running");
    return s;
}

void server_versions(char *out, size_t n)
{
    char mbed[32];
    tls_library_version(mbed);
    snprintf(out, n, "certmq %s\nMbed TLS %s\nlibuv %s\nlibwebsockets %s\nSQLite %s\n",
             CERTMQ_VERSION, mbed, uv_version_string(), ws_library_version(),
             persist_sqlite_version());
}

static void ws_shutdown(uv_timer_t *t)
{
    struct server *s = t->data;
    ws_ctx_stop(s->ws);
    uv_close((uv_handle_t *)t, NULL);
}

static void count_session(void *ctx, struct session *ss)
{
    if (session_persistent(ss))
        ++*(size_t *)ctx;
}

static size_t persistent_sessions(struct server *s)
{
    size_t n = 0;
    broker_foreach_session(s->b, count_session, &n);
    return n;
}

static void stop_rest(struct server *s);

static void on_drain(uv_timer_t *t)
{
    struct server *s = t->data;
    size_t left = persistent_sessions(s);
    if (left && uv_now(s->loop) < s->drain_end)
        return;
    if (left)
        log_warn("cluster: stopping with %zu persistent session(s) not claimed by another node "
                 "(cluster_drain_timeout)%s",
                 left, s->cfg.persistence ? "; they are kept on disk for this node's restart" : "");
    else
        log_notice("cluster: every persistent session was taken over by another node");
    stop_rest(s);
}

/* Cluster: the devices just disconnected claim their persistent sessions on other nodes; this
 * node stays on NATS to hand them over, up to cluster_drain_timeout. */
static bool drain(struct server *s)
{
    size_t n = s->cluster && s->cfg.cluster.drain_s ? persistent_sessions(s) : 0;
    if (!n)
        return false;
    log_notice("cluster: %zu persistent session(s) wait here for their devices to claim them on "
               "other nodes (at most %u s; a second signal stops at once)",
               n, s->cfg.cluster.drain_s);
    s->draining = true;
    s->drain_end = uv_now(s->loop) + (uint64_t)s->cfg.cluster.drain_s * MS_PER_S;
    uv_timer_init(s->loop, &s->drain);
    s->drain.data = s;
    uv_timer_start(&s->drain, on_drain, DRAIN_CHECK_MS, DRAIN_CHECK_MS);
    return true;
}

void server_stop(struct server *s)
{
    if (s->stopping) {
        if (s->draining) /* asked again: no more waiting */
            stop_rest(s);
        return;
    }
    s->stopping = true;
    notify_stopping();
    s->ready = false;
    server__metrics_stop(s);
    for (size_t i = 0; i < s->nls; i++) {
        listener_close(s->ls[i].l);
        s->ls[i].l = NULL;
    }
    client_close_all(s->clenv);
    if (!drain(s))
        stop_rest(s);
}

/* The rest of a stop: signals, the cluster link, plugins, WebSockets. */
static void stop_rest(struct server *s)
{
    if (s->draining) {
        s->draining = false;
        uv_close((uv_handle_t *)&s->drain, NULL);
    }
    loop_stop(s->lp);
    cluster_stop(s->cluster);
    plugin_stop_all(s->plugins);
    if (s->ws) {
        /* Give WebSocket close handshakes a moment, then take lws down (its handles keep the
         * loop alive until then). */
        uv_timer_init(s->loop, &s->ws_stop);
        s->ws_stop.data = s;
        uv_timer_start(&s->ws_stop, ws_shutdown, ws_ctx_live(s->ws) ? WS_CLOSE_GRACE_MS : 0, 0);
    }
}

void server_free(struct server *s)
{
    if (!s)
        return;
    conn_env_free(s->cenv);
    client_env_close(s->clenv);
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
    persist_stop(s->persist, s->b);
    broker_free(s->b);
    cluster_free(s->cluster); /* the broker's hooks point at it until here */
    client_env_free(s->clenv);
    plugin_free_all(s->plugins);
    tls_lib_free(s->tls);
    pidfile_remove(s->cfg.pid_file);
    config_free(&s->cfg);
    free(s);
}
