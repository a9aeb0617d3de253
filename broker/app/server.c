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
#include "msg.h"
#include "persist.h"
#include "plugin.h"
#include "tls.h"
#include "ws.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 1000
#define ACL_DEBOUNCE_MS 200

/* One watched directory: the ACL file's, a CRL file's, or a crlpath. Directories are watched
 * rather than files, so a file replaced by rename keeps being seen. */
struct watch {
    uv_fs_event_t ev;
    struct server *s;
    char *dir;
    bool any_file_is_crl; /* a crlpath: every change there is a CRL change */
};

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
    uv_signal_t sighup, sigterm, sigint;
    uv_timer_t tick;
    uv_timer_t ws_stop;
    struct watch *watches;
    size_t nwatches;
    uv_timer_t acl_debounce, tls_debounce;
    char *acl_dir, *acl_base;
    uint64_t start_ms;
    uint64_t next_sys_ms;
    bool stopping;
};

static void tls_opts_from(const struct config *cfg, const struct config_listener *cl,
                          struct tls_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cafile = cl->cafile;
    o->capath = cl->capath;
    o->certfile = cl->certfile;
    o->keyfile = cl->keyfile;
    o->crlfiles = (const char *const *)cl->crlfiles;
    o->crlfile_count = cl->crlfile_count;
    o->crlpath = cl->crlpath;
    o->tls_version = cl->tls_version;
    o->ciphers = cl->ciphers;
    o->verify_depth = cl->verify_depth;
    o->identity = (enum tls_identity_mode)cl->identity;
    o->crl_strict = cl->crl_mode == CONFIG_CRL_STRICT;
    o->crl_expired_warn = cl->crl_expired == CONFIG_CRL_EXPIRED_WARN;
}

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
        struct tls_server_opts o;
        tls_opts_from(cfg, &cfg->listeners[i], &o);
        struct tls_ctx *ctx = tls_ctx_new(lib, &o, d);
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

static void acl_debounced(uv_timer_t *t)
{
    reload_acl(t->data);
}

static void reload_tls(struct server *s);

static void tls_debounced(uv_timer_t *t)
{
    reload_tls(t->data);
}

static bool is_crl_file(const struct server *s, const char *dir, const char *name)
{
    for (size_t i = 0; i < s->cfg.listener_count; i++) {
        const struct config_listener *cl = &s->cfg.listeners[i];
        for (size_t k = 0; k < cl->crlfile_count; k++) {
            const char *f = cl->crlfiles[k], *slash = strrchr(f, '/');
            size_t dl = slash ? (size_t)(slash - f) : 0;
            if (slash && strlen(dir) == dl && !strncmp(f, dir, dl) && !strcmp(slash + 1, name))
                return true;
        }
    }
    return false;
}

static void dir_changed(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct watch *w = h->data;
    struct server *s = w->s;
    if (status < 0 || !name)
        return;
    /* Editors and tools write in several steps; reload once things settle. */
    if (!strcmp(w->dir, s->acl_dir) && !strcmp(name, s->acl_base))
        uv_timer_start(&s->acl_debounce, acl_debounced, ACL_DEBOUNCE_MS, 0);
    if (w->any_file_is_crl || is_crl_file(s, w->dir, name))
        uv_timer_start(&s->tls_debounce, tls_debounced, ACL_DEBOUNCE_MS, 0);
}

static void watch_dir(struct server *s, const char *dir, bool any_file_is_crl)
{
    for (size_t i = 0; i < s->nwatches; i++) {
        if (!strcmp(s->watches[i].dir, dir)) {
            s->watches[i].any_file_is_crl |= any_file_is_crl;
            return;
        }
    }
    s->watches = xrealloc(s->watches, (s->nwatches + 1) * sizeof(*s->watches));
    struct watch *w = &s->watches[s->nwatches];
    memset(w, 0, sizeof(*w)); /* handles are initialised once the array is final */
    w->s = s;
    w->dir = xstrdup(dir);
    w->any_file_is_crl = any_file_is_crl;
    s->nwatches++;
}

static void start_watches(struct server *s)
{
    char *a = xstrdup(s->cfg.acl_file), *b = xstrdup(s->cfg.acl_file);
    s->acl_dir = xstrdup(dirname(a));
    s->acl_base = xstrdup(basename(b));
    free(a);
    free(b);
    watch_dir(s, s->acl_dir, false);
    for (size_t i = 0; i < s->cfg.listener_count; i++) {
        const struct config_listener *cl = &s->cfg.listeners[i];
        for (size_t k = 0; k < cl->crlfile_count; k++) {
            char *d = xstrdup(cl->crlfiles[k]);
            watch_dir(s, dirname(d), false);
            free(d);
        }
        if (cl->crlpath)
            watch_dir(s, cl->crlpath, true);
    }
    uv_timer_init(s->loop, &s->acl_debounce);
    s->acl_debounce.data = s;
    uv_timer_init(s->loop, &s->tls_debounce);
    s->tls_debounce.data = s;
    for (size_t i = 0; i < s->nwatches; i++) {
        struct watch *w = &s->watches[i];
        uv_fs_event_init(s->loop, &w->ev);
        w->ev.data = w;
        int r = uv_fs_event_start(&w->ev, dir_changed, w->dir, 0);
        if (r != 0)
            log_warn("cannot watch %s (%s); reload with SIGHUP", w->dir, uv_strerror(r));
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
    conn_untrust(c, REASON_REVOKED_PLUGIN, reason && *reason ? reason : "by plugin");
    return 0;
}

/* Rebuild every listener's TLS context from its files (CA, certificate, key, CRLs). All or
 * nothing: if any listener's files are bad, every listener keeps its current context. Then
 * every connected device is checked against the new CRLs. */
static void reload_tls(struct server *s)
{
    struct tls_ctx **fresh = xcalloc(s->nls, sizeof(*fresh));
    bool ok = true;
    for (size_t i = 0; i < s->nls; i++) {
        struct tls_server_opts o;
        tls_opts_from(&s->cfg, s->ls[i].cl, &o);
        struct diag d;
        diag_init(&d);
        fresh[i] = tls_ctx_new(s->tls, &o, &d);
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
    size_t dropped = 0, checked = conn_env_recheck(s->cenv, &dropped);
    log_notice("tls: certificates and CRLs reloaded; %zu connected device(s) checked, %zu "
               "disconnected as revoked",
               checked, dropped);
}

/* ---- $SYS and housekeeping ---------------------------------------------------------------- */

static void sys_pub(struct server *s, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sys_pub(struct server *s, const char *topic, const char *fmt, ...)
{
    char payload[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(payload, sizeof(payload), fmt, ap);
    va_end(ap);
    struct mqtt_publish p = {0};
    p.retain = true;
    p.payload = (const uint8_t *)payload;
    p.payload_len = n > 0 ? (uint32_t)n : 0;
    struct msg *m = msg_new(topic, strlen(topic), &p, 0, broker_next_msg_id(s->b));
    broker_publish(s->b, NULL, m, (int64_t)uv_now(s->loop));
    msg_unref(m);
}

static void sys_publish(struct server *s)
{
    const struct broker_stats *st = broker_stats(s->b);
    const struct conn_stats *cs = conn_env_stats(s->cenv);
    uint64_t up = (uv_now(s->loop) - s->start_ms) / 1000;
    sys_pub(s, "$SYS/broker/version", "certmq %s", CERTMQ_VERSION);
    sys_pub(s, "$SYS/broker/uptime", "%" PRIu64 " seconds", up);
    sys_pub(s, "$SYS/broker/clients/connected", "%" PRIu64, st->clients_online);
    sys_pub(s, "$SYS/broker/clients/total", "%" PRIu64, st->sessions);
    sys_pub(s, "$SYS/broker/messages/received", "%" PRIu64, st->msgs_received);
    sys_pub(s, "$SYS/broker/messages/sent", "%" PRIu64, st->msgs_sent);
    sys_pub(s, "$SYS/broker/messages/dropped", "%" PRIu64, st->msgs_dropped);
    sys_pub(s, "$SYS/broker/bytes/received", "%" PRIu64, cs->bytes_in);
    sys_pub(s, "$SYS/broker/bytes/sent", "%" PRIu64, cs->bytes_out);
    sys_pub(s, "$SYS/broker/subscriptions/count", "%zu", broker_subscription_count(s->b));
    sys_pub(s, "$SYS/broker/retained messages/count", "%zu", broker_retained_count(s->b));
    sys_pub(s, "$SYS/broker/tls/handshakes", "%" PRIu64, cs->handshakes);
    sys_pub(s, "$SYS/broker/tls/resumed", "%" PRIu64, cs->resumed);
    sys_pub(s, "$SYS/broker/tls/refused", "%" PRIu64, cs->refused);
    sys_pub(s, "$SYS/broker/tls/disconnected/revoked", "%" PRIu64,
            cs->untrusted[REASON_REVOKED_CRL] + cs->untrusted[REASON_REVOKED_PLUGIN]);
    sys_pub(s, "$SYS/broker/tls/disconnected/expired", "%" PRIu64,
            cs->untrusted[REASON_CERT_EXPIRED]);
    sys_pub(s, "$SYS/broker/tls/expiring_soon", "%" PRIu64, cs->expiring_soon);
    uint64_t hits = 0;
    for (size_t i = 0; i < s->nls; i++)
        hits += s->ls[i].ctx ? tls_ctx_chain_cache_hits(s->ls[i].ctx) : 0;
    sys_pub(s, "$SYS/broker/tls/chain_cache_hits", "%" PRIu64, hits);
    sys_pub(s, "$SYS/broker/tls/buffers_released", "%" PRIu64, cs->parked);
    for (int r = 1; r < TLS_REJECT_COUNT; r++) {
        char topic[96];
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/refused/%s",
                 tls_reject_str((enum tls_reject)r));
        for (char *p = topic; *p; p++)
            if (*p == ' ')
                *p = '_';
        sys_pub(s, topic, "%" PRIu64, cs->refused_by[r]);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct server *s = t->data;
    uint64_t now = uv_now(s->loop);
    broker_tick(s->b, (int64_t)now);
    if (s->persist) {
        persist_commit(s->persist); /* what the tick changed (expired sessions, wills) */
        if (now >= s->next_vacuum_ms) {
            persist_vacuum(s->persist);
            s->next_vacuum_ms = now + 60000;
        }
    }
    if (s->cfg.sys_interval && now >= s->next_sys_ms) {
        sys_publish(s);
        s->next_sys_ms = now + (uint64_t)s->cfg.sys_interval * 1000;
    }
}

/* ---- listeners and signals ---------------------------------------------------------------- */

static void on_conn(void *ud, uv_stream_t *server)
{
    struct srv_listener *sl = ud;
    struct server *s = sl->srv;
    const struct conn_stats *cs = conn_env_stats(s->cenv);
    struct conn *c = conn_accept(s->cenv, server, &sl->ctx, sl->ws, &client_conn_cbs, s->clenv);
    if (!c)
        return;
    if (s->cfg.max_connections >= 0 &&
        cs->open + cs->handshaking + cs->waiting > (uint32_t)s->cfg.max_connections) {
        log_notice("refused %s: max_connections (%d) reached", conn_addr(c),
                   s->cfg.max_connections);
        conn_close(c, false);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    if (s->stopping) {
        log_notice("signal %d: already stopping", signum);
        return;
    }
    if (signum == SIGHUP) {
        log_notice("SIGHUP: reloading the ACL, certificates and CRLs");
        reload_acl(s);
        reload_tls(s);
        plugin_reload(s->plugins);
        return;
    }
    log_notice("%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_stop(s);
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
        struct tls_server_opts o;
        tls_opts_from(&s->cfg, cl, &o);
        struct diag d;
        diag_init(&d);
        sl->ctx = tls_ctx_new(s->tls, &o, &d);
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
                unsigned fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000
                                   ? 1000000
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

static bool plugins_acl(void *ctx, const struct session *se, const char *topic, int access)
{
    return plugin_acl(ctx, session_identity(se), session_client_id(se), topic, access);
}

static void plugins_observed(void *ctx, const struct session *from, const struct msg *m)
{
    plugin_message(ctx, session_identity(from), m->topic, m->payload, m->payload_len, m->qos,
                   m->retain);
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

static void init_signal(struct server *s, uv_signal_t *h, int signum)
{
    uv_signal_init(s->loop, h);
    h->data = s;
    uv_signal_start(h, on_signal, signum);
}

struct server *server_start(uv_loop_t *loop, struct config *cfg)
{
    struct server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    s->start_ms = uv_now(loop);
    const struct config *c = &s->cfg;

    struct broker_limits bl = {
        .session = {.max_inflight = c->max_inflight_messages,
                    .max_queued = c->max_queued_messages,
                    .max_queued_bytes = c->max_queued_bytes,
                    .queue_qos0_offline = c->queue_qos0_messages},
        .max_topic_length = c->max_topic_length,
        .max_topic_levels = c->max_topic_levels,
        .max_subscriptions_per_client = c->max_subscriptions_per_client,
        .persistent_client_expiration = c->persistent_client_expiration,
        .retain_available = c->retain_available,
        .max_retained_messages = c->max_retained_messages,
        .upgrade_outgoing_qos = c->upgrade_outgoing_qos,
    };
    struct diag pd;
    diag_init(&pd);
    s->plugins = plugin_load_all(c, loop, server_disconnect, s, &pd);
    log_diag(LOGL_ERR, &pd, "");
    diag_free(&pd);
    /* The client hooks get the client pointer itself; the context is the plugin set. */
    struct broker_hooks hooks = {.ctx = s->plugins,
                                 .wakeup = client_wakeup,
                                 .kick = client_kick,
                                 .acl_extra = plugin_count(s->plugins) ? plugins_acl : NULL,
                                 .observed = plugin_count(s->plugins) ? plugins_observed : NULL};
    s->b = broker_new(&bl, &hooks);
    struct client_opts co = {
        .connect_timeout_ms = c->connect_timeout_ms,
        .max_packet_size = c->max_packet_size,
        .message_size_limit = c->message_size_limit,
        .max_keepalive = c->max_keepalive,
        .receive_maximum =
            c->max_inflight_messages
                ? (uint16_t)(c->max_inflight_messages > 65535 ? 65535 : c->max_inflight_messages)
                : 65535,
        .max_topic_alias = (uint16_t)c->max_topic_alias,
        .allow_zero_length_clientid = c->allow_zero_length_clientid,
        .clientid_match = c->clientid_policy == CONFIG_CLIENTID_MATCH,
        .connection_messages = c->connection_messages,
        .retain_available = c->retain_available,
        .persistent_client_expiration = c->persistent_client_expiration,
        .plugins = s->plugins,
    };
    s->clenv = client_env_new(loop, s->b, &co);
    client_set_discard_revoked(s->clenv, c->revoked_session == CONFIG_REVOKED_DISCARD);
    struct conn_env_opts ceo = {.cert_expiry_warning_days = c->cert_expiry_warning_days,
                                .handshake_timeout_ms = c->tls_handshake_timeout_ms,
                                .max_handshakes = c->max_handshakes,
                                .max_per_ip = c->max_connections_per_ip};
    s->cenv = conn_env_new(loop, &ceo);
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
    init_signal(s, &s->sighup, SIGHUP);
    init_signal(s, &s->sigterm, SIGTERM);
    init_signal(s, &s->sigint, SIGINT);
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
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

static void close_if(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
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
    /* Signals stay handled until exit (a second SIGTERM must not kill a clean shutdown), but
     * no longer keep the loop alive. */
    uv_unref((uv_handle_t *)&s->sighup);
    uv_unref((uv_handle_t *)&s->sigterm);
    uv_unref((uv_handle_t *)&s->sigint);
    close_if((uv_handle_t *)&s->tick);
    close_if((uv_handle_t *)&s->acl_debounce);
    close_if((uv_handle_t *)&s->tls_debounce);
    for (size_t i = 0; i < s->nwatches; i++)
        close_if((uv_handle_t *)&s->watches[i].ev);
    client_close_all(s->clenv);
    plugin_stop_all(s->plugins);
    if (s->ws) {
        /* Give WebSocket close handshakes a moment, then take lws down (its handles keep the
         * loop alive until then). */
        uv_timer_init(s->loop, &s->ws_stop);
        s->ws_stop.data = s;
        uv_timer_start(&s->ws_stop, ws_shutdown, 1000, 0);
    }
}

void server_free(struct server *s)
{
    if (!s)
        return;
    conn_env_free(s->cenv);
    close_if((uv_handle_t *)&s->sighup);
    close_if((uv_handle_t *)&s->sigterm);
    close_if((uv_handle_t *)&s->sigint);
    /* Closing the last handle restores the default action; a late SIGTERM must not turn a
     * finished clean shutdown into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
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
    for (size_t i = 0; i < s->nwatches; i++)
        free(s->watches[i].dir);
    free(s->watches);
    free(s->acl_dir);
    free(s->acl_base);
    free(s);
}
