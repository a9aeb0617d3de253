/* plugin: dlopen'd extensions behind certmq_plugin.h. Hooks are called in load order; for the
 * ACL and the certificate check the first plugin that denies decides (each can only restrict). */
#include "plugin.h"

#include "broker.h"
#include "certmq_plugin.h"
#include "conn.h"
#include "log.h"
#include "prom.h"
#include "xmalloc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A plugin's log line and a refusal reason: long enough for a URL or a DN and a sentence,
 * bounded because they come from outside code. */
#define PLUGIN_LOG_LINE_MAX 1024
#define PLUGIN_REASON_MAX 160

struct loaded {
    void *dl;
    char *path;
    struct certmq_plugin_hooks hooks;
};

/* One connection's certificate decision, walking the plugins that have cert_check. Owned by
 * the set until a plugin decides (or the set is freed); conn is NULL once it went away. */
struct certmq_pending {
    struct plugin_set *set;
    struct conn *conn;
    size_t at; /* the plugin being asked */
    bool in_hook, decided;
    int decision;
    char reason[PLUGIN_REASON_MAX];
    struct certmq_pending *prev, *next;
};

struct plugin_set {
    struct loaded *v;
    size_t n;
    struct certmq_plugin_api api; /* plugins keep a pointer to it */
    struct certmq_pending *pending;
    bool stopped; /* cleanup hooks ran: no hook is called any more */
};

typedef int (*init_fn)(const struct certmq_plugin_api *, const struct certmq_plugin_opts *,
                       struct certmq_plugin_hooks *);
static void *open_plugin(const char *path, struct diag *d, init_fn *init_out);

static int cert_decide(struct certmq_pending *p, int decision, const char *reason);

/* The plugin's hooks table as certmq sees it: members past the size the plugin was built with
 * are NULL (an older minor version does not know them). 0, or -1 with the reason in d. */
static int hooks_fit(struct certmq_plugin_hooks *h, const char *path, struct diag *d)
{
    size_t known = offsetof(struct certmq_plugin_hooks, ud) + sizeof(h->ud);
    if (h->size < known) {
        diag_add(d, path, 0,
                 "plugin hooks table has size %zu: init must set hooks->size = "
                 "sizeof(struct certmq_plugin_hooks)",
                 h->size);
        return -1;
    }
    if (h->size < sizeof(*h))
        memset((char *)h + h->size, 0, sizeof(*h) - h->size);
    return 0;
}

static void plugin_log(int level, const char *fmt, ...)
{
    char line[PLUGIN_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    enum log_level l = level == CERTMQ_LOG_ERR      ? LOGL_ERR
                       : level == CERTMQ_LOG_WARN   ? LOGL_WARN
                       : level == CERTMQ_LOG_NOTICE ? LOGL_NOTICE
                       : level == CERTMQ_LOG_DEBUG  ? LOGL_DEBUG
                                                    : LOGL_INFO;
    log_msg(l, "plugin: %s", line);
}

struct plugin_set *plugin_load_all(const struct config *cfg, void *loop,
                                   const struct plugin_server *srv, struct diag *d)
{
    struct plugin_set *s = xcalloc(1, sizeof(*s));
    s->v = xcalloc(cfg->plugin_count ? cfg->plugin_count : 1, sizeof(*s->v));
    s->api = (struct certmq_plugin_api){.size = sizeof(s->api),
                                        .api_major = CERTMQ_PLUGIN_API_MAJOR,
                                        .api_minor = CERTMQ_PLUGIN_API_MINOR,
                                        .loop = loop,
                                        .log = plugin_log,
                                        .broker = srv->broker,
                                        .cert_decide = cert_decide,
                                        .disconnect = srv->disconnect,
                                        .cert_attr = srv->cert_attr};
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const struct config_plugin *cp = &cfg->plugins[i];
        init_fn init;
        void *dl = open_plugin(cp->path, d, &init);
        if (!dl)
            continue;
        struct certmq_plugin_opts opts = {(const char *const *)cp->opt_keys,
                                          (const char *const *)cp->opt_values, cp->opt_count};
        struct loaded *l = &s->v[s->n];
        memset(&l->hooks, 0, sizeof(l->hooks));
        if (init(&s->api, &opts, &l->hooks) != 0) {
            diag_add(d, cp->path, 0, "plugin initialisation failed (see its log lines)");
            dlclose(dl);
            continue;
        }
        if (hooks_fit(&l->hooks, cp->path, d) != 0) {
            /* Its init ran: let it release what it took before it is unloaded. */
            if (l->hooks.cleanup)
                l->hooks.cleanup(l->hooks.ud);
            dlclose(dl);
            continue;
        }
        l->dl = dl;
        l->path = xstrdup(cp->path);
        s->n++;
        log_notice("plugin: loaded %s", cp->path);
    }
    if (s->n != cfg->plugin_count) {
        plugin_free_all(s);
        return NULL;
    }
    return s;
}

/* Same major, same or older minor (see certmq_plugin.h); true with the reason in d otherwise. */
static bool version_refused(int v, const char *path, struct diag *d)
{
    int major = v / CERTMQ_PLUGIN_VERSION_OF(1, 0), minor = v % CERTMQ_PLUGIN_VERSION_OF(1, 0);
    if (major == CERTMQ_PLUGIN_API_MAJOR && minor >= 0 && minor <= CERTMQ_PLUGIN_API_MINOR)
        return false;
    if (v > 0 && major == 0)
        diag_add(d, path, 0,
                 "plugin API version %d, certmq speaks %d.%d: rebuild the plugin against this "
                 "certmq_plugin.h",
                 v, CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR);
    else if (major == CERTMQ_PLUGIN_API_MAJOR && minor > CERTMQ_PLUGIN_API_MINOR)
        diag_add(d, path, 0,
                 "plugin built for API %d.%d, newer than this certmq's %d.%d: it may rely on "
                 "what this certmq lacks (upgrade certmq or rebuild the plugin)",
                 major, minor, CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR);
    else
        diag_add(d, path, 0,
                 "plugin built for API %d.%d, certmq speaks %d.%d: only plugins for API %d.0 "
                 "to %d.%d load",
                 major, minor, CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR,
                 CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR);
    return true;
}

/* dlopen + symbols + version; returns the handle, or NULL with the reason in d. */
static void *open_plugin(const char *path, struct diag *d, init_fn *init_out)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        diag_add(d, path, 0, "cannot load plugin: %s", dlerror());
        return NULL;
    }
    /* dlsym returns data pointers; copy them into function pointers (POSIX guarantees this). */
    void *vsym = dlsym(dl, "certmq_plugin_version"), *isym = dlsym(dl, "certmq_plugin_init");
    int (*version)(void) = NULL;
    memcpy(&version, &vsym, sizeof(version));
    memcpy(init_out, &isym, sizeof(*init_out));
    if (!vsym || !isym) {
        diag_add(d, path, 0,
                 "not a certmq plugin (certmq_plugin_version/certmq_plugin_init missing)");
        dlclose(dl);
        return NULL;
    }
    if (version_refused(version(), path, d)) {
        dlclose(dl);
        return NULL;
    }
    return dl;
}

void plugin_check_all(const struct config *cfg, struct diag *d)
{
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        init_fn init;
        void *dl = open_plugin(cfg->plugins[i].path, d, &init);
        if (dl)
            dlclose(dl);
    }
}

void plugin_stop_all(struct plugin_set *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].hooks.cleanup)
            s->v[i].hooks.cleanup(s->v[i].hooks.ud);
}

void plugin_free_all(struct plugin_set *s)
{
    if (!s)
        return;
    plugin_stop_all(s);
    while (s->pending) {
        struct certmq_pending *p = s->pending;
        s->pending = p->next;
        free(p);
    }
    for (size_t i = 0; i < s->n; i++) {
        dlclose(s->v[i].dl);
        free(s->v[i].path);
    }
    free(s->v);
    free(s);
}

size_t plugin_count(const struct plugin_set *s)
{
    return s ? s->n : 0;
}

static bool plugin_acl(struct plugin_set *s, const char *identity, const char *client_id,
                       const char *topic, int access)
{
    if (s && s->stopped)
        return false;
    for (size_t i = 0; s && i < s->n; i++) {
        const struct certmq_plugin_hooks *h = &s->v[i].hooks;
        if (h->acl_check && h->acl_check(h->ud, identity, client_id, topic, access) != CERTMQ_ALLOW)
            return false; /* deny, or an error: fail closed */
    }
    return true;
}

static void plugin_message(struct plugin_set *s, const char *identity, const char *topic,
                           const void *payload, size_t len, int qos, int retain)
{
    if (s && s->stopped)
        return;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.message)
            s->v[i].hooks.message(s->v[i].hooks.ud, identity, topic, payload, len, qos, retain);
}

static void plugin_connect(struct plugin_set *s, const char *identity, const char *client_id,
                           const char *address)
{
    if (s && s->stopped)
        return;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.connect)
            s->v[i].hooks.connect(s->v[i].hooks.ud, identity, client_id, address);
}

static void plugin_disconnect(struct plugin_set *s, const char *identity, const char *client_id)
{
    if (s && s->stopped)
        return;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.disconnect)
            s->v[i].hooks.disconnect(s->v[i].hooks.ud, identity, client_id);
}

/* ---- the broker's policy slots ----------------------------------------------------------- */

static bool policy_acl(void *ctx, const struct session *se, const char *topic, int access)
{
    return plugin_acl(ctx, session_identity(se), session_client_id(se), topic, access);
}

static void policy_observe(void *ctx, const struct session *from, const struct msg *m)
{
    plugin_message(ctx, session_identity(from), m->topic, m->payload, m->payload_len, m->qos,
                   m->retain);
}

static void policy_connected(void *ctx, const struct session *se, const char *peer)
{
    plugin_connect(ctx, session_identity(se), session_client_id(se), peer);
}

static void policy_disconnected(void *ctx, const struct session *se)
{
    plugin_disconnect(ctx, session_identity(se), session_client_id(se));
}

void plugin_policy(struct plugin_set *s, struct broker_policy *out)
{
    *out = (struct broker_policy){.ctx = s};
    /* No plugin, no calls: the broker's hot paths skip empty slots. */
    if (!plugin_count(s))
        return;
    out->acl = policy_acl;
    out->observe = policy_observe;
    out->connected = policy_connected;
    out->disconnected = policy_disconnected;
}

void plugin_tick(struct plugin_set *s)
{
    if (s && s->stopped)
        return;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.tick)
            s->v[i].hooks.tick(s->v[i].hooks.ud);
}

/* ---- metrics ----------------------------------------------------------------------------- */

struct metrics_emit {
    struct buf *out;
    char family[128]; /* the name announced last */
    const char *plugin;
};

static bool metric_ok(const struct certmq_metric *m)
{
    if (m->size < offsetof(struct certmq_metric, scale) + sizeof(m->scale))
        return false;
    if (!prom_name_valid(m->name, false) || strlen(m->name) >= 128)
        return false;
    if (m->label_name &&
        (!prom_name_valid(m->label_name, true) || !m->label_value || !strcmp(m->label_name, "le")))
        return false;
    if (m->type == CERTMQ_METRIC_HISTOGRAM)
        return m->bounds && m->counts && m->nbuckets <= HIST_MAX_BUCKETS && m->scale > 0;
    return m->type == CERTMQ_METRIC_COUNTER || m->type == CERTMQ_METRIC_GAUGE;
}

static void emit_metric(void *ctx, const struct certmq_metric *m)
{
    struct metrics_emit *e = ctx;
    if (!m || !metric_ok(m)) {
        log_warn("plugin %s: a metric with an invalid name, label or type was dropped", e->plugin);
        return;
    }
    if (strcmp(e->family, m->name) != 0) {
        snprintf(e->family, sizeof(e->family), "%s", m->name);
        enum prom_type t = m->type == CERTMQ_METRIC_COUNTER ? PROM_COUNTER
                           : m->type == CERTMQ_METRIC_GAUGE ? PROM_GAUGE
                                                            : PROM_HISTOGRAM;
        prom_family(e->out, m->name, t, m->help ? m->help : "");
    }
    struct prom_labels l = {{m->label_name}, {m->label_value}};
    const struct prom_labels *lp = m->label_name ? &l : NULL;
    if (m->type != CERTMQ_METRIC_HISTOGRAM) {
        prom_double(e->out, m->name, lp, m->value);
        return;
    }
    struct hist h = {.bounds = m->bounds, .n = (uint8_t)m->nbuckets, .sum = m->sum};
    memcpy(h.counts, m->counts, (m->nbuckets + 1) * sizeof(uint64_t));
    prom_hist(e->out, m->name, lp, &h, m->scale);
}

void plugin_metrics(struct plugin_set *s, struct buf *out)
{
    if (!s || s->stopped)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->v[i].hooks.metrics)
            continue;
        struct metrics_emit e = {.out = out, .plugin = s->v[i].path};
        s->v[i].hooks.metrics(s->v[i].hooks.ud, emit_metric, &e);
    }
}

void plugin_reload(struct plugin_set *s)
{
    if (s && s->stopped)
        return;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.reload)
            s->v[i].hooks.reload(s->v[i].hooks.ud);
}

/* ---- certificate checks ------------------------------------------------------------------ */

bool plugin_has_cert_check(const struct plugin_set *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.cert_check)
            return true;
    return false;
}

static void pending_free(struct certmq_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->set->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

/* Ask the plugins from p->at on; stops at the first that denies or has not decided yet. */
static enum conn_check ask(struct certmq_pending *p)
{
    struct plugin_set *s = p->set;
    const struct tls_peer *peer = conn_peer(p->conn);
    struct certmq_cert cert = {.conn_id = conn_id(p->conn),
                               .identity = peer->identity,
                               .address = conn_addr(p->conn),
                               .resumed = peer->resumed};
    conn_cert_der(p->conn, &cert.der, &cert.der_len, &cert.issuer_der, &cert.issuer_der_len);
    for (; p->at < s->n; p->at++) {
        const struct certmq_plugin_hooks *h = &s->v[p->at].hooks;
        if (!h->cert_check)
            continue;
        p->in_hook = true;
        p->decided = false;
        int r = h->cert_check(h->ud, &cert, p);
        p->in_hook = false;
        if (p->decided)
            r = p->decision;
        if (r == CERTMQ_PENDING)
            return CONN_CHECK_PENDING;
        if (r != CERTMQ_ALLOW) {
            if (!p->decided || !p->reason[0])
                snprintf(p->reason, sizeof(p->reason), "denied by %s", s->v[p->at].path);
            return CONN_CHECK_DENY;
        }
    }
    return CONN_CHECK_ALLOW;
}

static enum conn_check check(void *ctx, struct conn *c, void **token, char *why, size_t n)
{
    struct plugin_set *s = ctx;
    if (s->stopped) {
        snprintf(why, n, "shutting down");
        return CONN_CHECK_DENY;
    }
    struct certmq_pending *p = xcalloc(1, sizeof(*p));
    p->set = s;
    p->conn = c;
    p->next = s->pending;
    if (p->next)
        p->next->prev = p;
    s->pending = p;
    enum conn_check r = ask(p);
    if (r == CONN_CHECK_PENDING) {
        *token = p;
        return r;
    }
    snprintf(why, n, "%s", p->reason);
    pending_free(p);
    return r;
}

static int cert_decide(struct certmq_pending *p, int decision, const char *reason)
{
    if (!p)
        return -1;
    snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "");
    if (p->in_hook) {
        p->decided = true;
        p->decision = decision;
        return 0;
    }
    if (!p->conn || p->set->stopped) { /* gone while we waited */
        pending_free(p);
        return -1;
    }
    enum conn_check r = CONN_CHECK_DENY;
    if (decision == CERTMQ_ALLOW) {
        p->at++;
        r = ask(p);
        if (r == CONN_CHECK_PENDING)
            return 0;
    } else if (!p->reason[0]) {
        snprintf(p->reason, sizeof(p->reason), "denied by %s", p->set->v[p->at].path);
    }
    struct conn *c = p->conn;
    char why[sizeof(p->reason)];
    memcpy(why, p->reason, sizeof(why));
    pending_free(p);
    conn_check_done(c, r == CONN_CHECK_ALLOW, why);
    return 0;
}

static void cancel(void *ctx, void *token)
{
    (void)ctx;
    ((struct certmq_pending *)token)->conn = NULL;
}

static void closed(void *ctx, struct conn *c)
{
    struct plugin_set *s = ctx;
    for (size_t i = 0; i < s->n && !s->stopped; i++)
        if (s->v[i].hooks.conn_closed)
            s->v[i].hooks.conn_closed(s->v[i].hooks.ud, conn_id(c));
}

void plugin_checker(struct plugin_set *s, struct conn_checker *out)
{
    *out = (struct conn_checker){.check = check, .cancel = cancel, .closed = closed, .ctx = s};
}
