/* server_metrics: the Prometheus endpoint (metrics_listener): /metrics, /healthz, /readyz over
 * httpd on the broker's loop. Everything is read at scrape time from counters the modules keep
 * anyway (the stats table, conn_stats, the listeners, the TLS contexts' CRLs, persistence,
 * plugins); the only work of its own is the loop-lag timer. Connections are walked once per
 * scrape (per listener, and their certificates' days to expiry), never on the hot path. */
#include "server_int.h"

#include "httpd.h"
#include "listener.h"
#include "prom.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A scraper sends one small request; Prometheus scrapes at most a few times a minute. */
#define METRICS_MAX_CLIENTS 8
#define METRICS_IDLE_MS 10000
/* Loop lag: a timer every LAG_MS measures how late it fires. */
#define LAG_MS 250
#define SECONDS_PER_DAY 86400

/* Loop lag (us): a healthy loop is well under a millisecond late; a handshake step is a few. */
static const uint64_t lag_bounds[] = {1000,   2500,   5000,    10000,   25000,   50000,
                                      100000, 250000, 1000000, 2500000, 10000000};
/* certmq_device_certificates: connected devices whose certificate expires within N days. */
static const uint32_t expiry_days[] = {1, 7, 14, 30, 60, 90, 180, 365};
#define EXPIRY_BUCKETS (sizeof(expiry_days) / sizeof(expiry_days[0]))

struct server_metrics {
    struct server *s;
    struct httpd *httpd;
    struct tls_ctx *tls;
    uv_timer_t lag_timer;
    uint64_t lag_due_ns;
    struct hist lag;
};

/* ---- per connection: listener and certificate expiry ------------------------------------ */

struct conn_walk {
    struct server *s;
    uint64_t *per_listener;
    uint64_t expiring[EXPIRY_BUCKETS + 1]; /* [EXPIRY_BUCKETS]: every connected device */
    int64_t now;
};

static void walk_conn(void *ud, const struct conn *c)
{
    struct conn_walk *w = ud;
    /* The slot is the ctx member of its listener's srv_listener: its index, in O(1). */
    const char *slot = (const char *)conn_ctx_slot(c), *first = (const char *)&w->s->ls[0].ctx;
    size_t li = (size_t)(slot - first) / sizeof(struct srv_listener);
    if (slot >= first && li < w->s->nls && (const char *)&w->s->ls[li].ctx == slot)
        w->per_listener[li]++;
    const struct tls_peer *p = conn_peer(c);
    w->expiring[EXPIRY_BUCKETS]++;
    if (!p || !p->not_after)
        return;
    int64_t left = p->not_after - w->now;
    for (size_t i = 0; i < EXPIRY_BUCKETS; i++)
        if (left <= (int64_t)expiry_days[i] * SECONDS_PER_DAY)
            w->expiring[i]++;
}

static void listener_name(const struct srv_listener *sl, char *out, size_t n)
{
    const char *a = sl->l ? listener_address(sl->l) : (sl->cl->address ? sl->cl->address : "*");
    unsigned port = sl->l ? listener_port(sl->l) : sl->cl->port;
    snprintf(out, n, strchr(a, ':') ? "[%s]:%u" : "%s:%u", a, port);
}

/* One family with a sample per listener, v[i] for listener i. */
static void per_listener(struct server *s, struct buf *out, const char *name, enum prom_type type,
                         const char *help, const uint64_t *v)
{
    prom_family(out, name, type, help);
    for (size_t i = 0; i < s->nls; i++) {
        char lname[96];
        listener_name(&s->ls[i], lname, sizeof(lname));
        struct prom_labels l = {{"listener", "transport"},
                                {lname, s->ls[i].ws ? "websockets" : "mqtt"}};
        prom_u64(out, name, &l, v[i]);
    }
}

static void write_connections(struct server *s, struct buf *out)
{
    struct conn_walk w = {.s = s, .now = (int64_t)time(NULL)};
    w.per_listener = xcalloc(s->nls ? s->nls : 1, sizeof(uint64_t));
    conn_env_each_open(s->cenv, walk_conn, &w);
    per_listener(s, out, "certmq_listener_connections", PROM_GAUGE,
                 "Open device connections (TLS and certificate checks passed) per listener",
                 w.per_listener);
    for (size_t i = 0; i < s->nls; i++)
        w.per_listener[i] = s->ls[i].accepted;
    per_listener(s, out, "certmq_listener_accepted_total", PROM_COUNTER,
                 "TCP connections accepted per listener", w.per_listener);
    free(w.per_listener);
    prom_family(out, "certmq_device_certificates", PROM_GAUGE,
                "Connected devices whose certificate chain expires within N days (cumulative; "
                "+Inf: every connected device)");
    for (size_t i = 0; i <= EXPIRY_BUCKETS; i++) {
        char days[16];
        snprintf(days, sizeof(days), "%u", i < EXPIRY_BUCKETS ? expiry_days[i] : 0);
        struct prom_labels l = {{"expires_within_days"}, {i < EXPIRY_BUCKETS ? days : "+Inf"}};
        prom_u64(out, "certmq_device_certificates", &l, w.expiring[i]);
    }
}

/* ---- TLS: handshake CPU, CRLs ------------------------------------------------------------- */

static void write_tls(struct server *s, const struct conn_stats *cs, struct buf *out)
{
    prom_family(out, "certmq_tls_handshake_cpu_seconds", PROM_HISTOGRAM,
                "CPU time spent in the TLS engine per completed handshake");
    struct prom_labels full = {{"kind"}, {"full"}}, resumed = {{"kind"}, {"resumed"}};
    prom_hist(out, "certmq_tls_handshake_cpu_seconds", &full, &cs->handshake_cpu_full, 1e9);
    prom_hist(out, "certmq_tls_handshake_cpu_seconds", &resumed, &cs->handshake_cpu_resumed, 1e9);

    static const char *const names[] = {"certmq_crl_last_update_timestamp_seconds",
                                        "certmq_crl_next_update_timestamp_seconds"};
    static const char *const helps[] = {
        "thisUpdate of the CRLs in force, per CRL file (oldest of the file's CRLs)",
        "nextUpdate of the CRLs in force, per CRL file (earliest of the file's CRLs; absent "
        "when a CRL has none)"};
    for (int k = 0; k < 2; k++) {
        prom_family(out, names[k], PROM_GAUGE, helps[k]);
        for (size_t i = 0; i < s->nls; i++) {
            if (!s->ls[i].ctx)
                continue;
            char name[96];
            listener_name(&s->ls[i], name, sizeof(name));
            size_t n;
            const struct tls_crl_file *f = tls_ctx_crl_files(s->ls[i].ctx, &n);
            for (size_t j = 0; j < n; j++) {
                int64_t v = k == 0 ? f[j].this_update : f[j].next_update;
                struct prom_labels l = {{"listener", "file"}, {name, f[j].path}};
                if (v)
                    prom_double(out, names[k], &l, (double)v);
            }
        }
    }
}

/* ---- the loop, persistence, the endpoint itself ------------------------------------------- */

static void on_lag(uv_timer_t *t)
{
    struct server_metrics *m = t->data;
    uint64_t now = uv_hrtime();
    hist_observe(&m->lag, now > m->lag_due_ns ? (now - m->lag_due_ns) / 1000 : 0);
    m->lag_due_ns = now + (uint64_t)LAG_MS * 1000000;
}

static void write_runtime(struct server_metrics *m, struct buf *out)
{
    prom_family(out, "certmq_loop_lag_seconds", PROM_HISTOGRAM,
                "How late a timer due every 250 ms fires: time the loop was busy elsewhere");
    prom_hist(out, "certmq_loop_lag_seconds", NULL, &m->lag, 1e6);
    if (m->s->persist) {
        prom_family(out, "certmq_persistence_commit_seconds", PROM_HISTOGRAM,
                    "Persistence commits (SQLite COMMIT with fsync), once per loop turn with "
                    "changes");
        prom_hist(out, "certmq_persistence_commit_seconds", NULL,
                  persist_commit_hist(m->s->persist), 1e9);
    }
    const struct httpd_stats *hs = httpd_stats(m->httpd);
    prom_family(out, "certmq_metrics_requests_total", PROM_COUNTER,
                "Requests to the metrics endpoint: answered, malformed (4xx), or dropped (too many "
                "at once, idle, TLS refused)");
    static const char *const results[] = {"answered", "malformed", "dropped"};
    const uint64_t v[] = {hs->requests, hs->bad_requests, hs->refused};
    for (int i = 0; i < 3; i++) {
        struct prom_labels l = {{"result"}, {results[i]}};
        prom_u64(out, "certmq_metrics_requests_total", &l, v[i]);
    }
}

static void write_build_info(struct buf *out)
{
    char mbed[32];
    tls_library_version(mbed);
    prom_family(out, "certmq_build_info", PROM_GAUGE,
                "Always 1: the certmq version and the Mbed TLS version it runs with (certmq "
                "--version lists the other libraries)");
    struct prom_labels l = {{"version", "mbedtls"}, {CERTMQ_VERSION, mbed}};
    prom_u64(out, "certmq_build_info", &l, 1);
}

static void write_metrics(struct server_metrics *m, struct buf *out)
{
    struct server *s = m->s;
    struct stats_extra x;
    server__stats_extra(s, &x);
    const struct conn_stats *cs = conn_env_stats(s->cenv);
    const struct stats_src src = {.b = s->b, .cs = cs, .x = &x};
    write_build_info(out);
    stats_write_metrics(out, &src);
    write_connections(s, out);
    write_tls(s, cs, out);
    write_runtime(m, out);
    plugin_metrics(s->plugins, out);
}

/* ---- routes ------------------------------------------------------------------------------- */

/* Why the broker is not ready, or NULL when it is. */
static const char *not_ready(const struct server *s)
{
    if (!s->ready || s->stopping)
        return "starting or stopping";
    for (size_t i = 0; i < s->nls; i++)
        if (!s->ls[i].l)
            return "a listener is down";
    if (s->mem.over)
        return "over max_memory: refusing new connections";
    return NULL;
}

static void put(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void handle(void *ud, const struct httpreq *req, struct httpd_response *res)
{
    struct server_metrics *m = ud;
    static const char *const paths[] = {"/metrics", "/healthz", "/readyz"};
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (req->path_len == strlen(paths[i]) && !memcmp(req->path, paths[i], req->path_len))
            which = i;
    if (which < 0) {
        res->status = 404;
        put(res->body, "not found: try /metrics, /healthz or /readyz\n");
        return;
    }
    if (req->method == HTTPREQ_OTHER) {
        res->status = 405;
        res->allow = "GET, HEAD";
        put(res->body, "method not allowed: GET or HEAD\n");
        return;
    }
    if (which == 0) {
        res->content_type = PROM_CONTENT_TYPE;
        write_metrics(m, res->body);
    } else if (which == 1) {
        /* Answered from the loop itself: the loop is turning. */
        put(res->body, "ok\n");
    } else {
        const char *why = not_ready(m->s);
        res->status = why ? 503 : 200;
        put(res->body, why ? why : "ready");
        put(res->body, "\n");
    }
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void metrics_free(uv_handle_t *h)
{
    struct server_metrics *m = h->data;
    if (m->tls)
        tls_ctx_unref(m->tls);
    free(m);
}

struct tls_ctx *server__metrics_tls(struct tls_lib *lib, const struct config *cfg, struct diag *d)
{
    const struct config_metrics *cm = &cfg->metrics;
    /* A scraper's certificate is checked like a device's; its identity (CN) is only logged. */
    struct tls_server_opts o = {.cafile = cm->cafile,
                                .certfile = cm->certfile,
                                .keyfile = cm->keyfile,
                                .verify_depth = 4,
                                .identity = TLS_ID_CN};
    return tls_ctx_new(lib, &o, d);
}

static struct tls_ctx *metrics_tls(struct server *s)
{
    struct diag d;
    diag_init(&d);
    struct tls_ctx *ctx = server__metrics_tls(s->tls, &s->cfg, &d);
    server__log_diag(LOGL_ERR, &d, "metrics: ");
    diag_free(&d);
    return ctx;
}

int server__metrics_start(struct server *s)
{
    const struct config_metrics *cm = &s->cfg.metrics;
    if (!cm->address)
        return 0;
    struct server_metrics *m = xcalloc(1, sizeof(*m));
    m->s = s;
    hist_init(&m->lag, lag_bounds, sizeof(lag_bounds) / sizeof(lag_bounds[0]));
    if (cm->require_certificate && !(m->tls = metrics_tls(s))) {
        free(m);
        return -1;
    }
    struct httpd_opts o = {.address = cm->address,
                           .port = cm->port,
                           .max_clients = METRICS_MAX_CLIENTS,
                           .idle_ms = METRICS_IDLE_MS,
                           .tls = m->tls};
    int err = 0;
    m->httpd = httpd_open(s->loop, &o, handle, m, &err);
    if (!m->httpd) {
        log_err("%s:%d: metrics_listener: cannot listen on %s:%u: %s", cm->file, cm->line,
                cm->address, cm->port, uv_strerror(err));
        if (m->tls)
            tls_ctx_unref(m->tls);
        free(m);
        return -1;
    }
    uv_timer_init(s->loop, &m->lag_timer);
    m->lag_timer.data = m;
    m->lag_due_ns = uv_hrtime() + (uint64_t)LAG_MS * 1000000;
    uv_timer_start(&m->lag_timer, on_lag, LAG_MS, LAG_MS);
    uv_unref((uv_handle_t *)&m->lag_timer);
    s->metrics = m;
    log_notice(strchr(cm->address, ':') ? "metrics on http%s://[%s]:%u/metrics"
                                        : "metrics on http%s://%s:%u/metrics",
               m->tls ? "s" : "", cm->address, httpd_port(m->httpd));
    return 0;
}

void server__metrics_reload(struct server *s)
{
    struct server_metrics *m = s->metrics;
    if (!m || !m->tls)
        return;
    struct tls_ctx *ctx = metrics_tls(s);
    if (!ctx) {
        log_err("metrics: reload failed: keeping the endpoint's certificates in force");
        return;
    }
    httpd_set_tls(m->httpd, ctx);
    tls_ctx_unref(m->tls);
    m->tls = ctx;
    log_notice("metrics: certificates reloaded");
}

void server__metrics_stop(struct server *s)
{
    struct server_metrics *m = s->metrics;
    if (!m)
        return;
    s->metrics = NULL;
    httpd_close(m->httpd);
    uv_close((uv_handle_t *)&m->lag_timer, metrics_free);
}
