/* ocsp: the OCSP-check plugin. Every new device certificate is checked with its issuer's OCSP
 * responder (RFC 6960) before the device may speak MQTT; connected devices are re-checked at an
 * interval and disconnected once revoked. Everything is asynchronous on the broker's loop: a
 * slow or silent responder holds only the connections waiting for it.
 *
 *   plugin_opt_ocsp_responder URL                   every certificate asks URL (else its AIA)
 *   plugin_opt_ocsp_responder_for ISSUER-DN URL     certificates of that issuer ask URL
 *   plugin_opt_ocsp_fail_mode closed|open           no valid answer: refuse (default) / allow
 *   plugin_opt_ocsp_unknown deny|allow              answer "unknown" (default deny)
 *   plugin_opt_ocsp_timeout_ms N                    per request (default 5000)
 *   plugin_opt_ocsp_recheck_s N                     re-check connected devices (default 3600,
 *                                                   0 = never)
 *   plugin_opt_ocsp_cache_max_age_s N               cap on caching an answer (default 3600)
 *   plugin_opt_ocsp_cache_size N                    answers kept (default 10000)
 *
 * An answer is cached per CertID until its nextUpdate (at most the max age); concurrent checks
 * of one certificate share one request. Re-checks always ask the responder; they disconnect on
 * a verified "revoked" (or "unknown" under deny) and only log when the responder fails, so a
 * responder outage does not drop the fleet. */
#include "certmq_plugin.h"
#include "ocsp_codec.h"
#include "mbedx.h"
#include "ocsp_http.h"

#include <mbedtls/x509_crt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <uv.h>

#define MAX_INFLIGHT 64          /* HTTP requests at once; more wait in a queue */
#define MAX_RESPONSE (64 * 1024) /* an OCSP answer with a responder chain is a few KB */
#define REQ_MAX 512
/* Responder latency buckets (us), for the metrics hook: a local responder answers in a few ms,
 * a CA's over the internet in 50-500 ms; timeout_ms ends the rest. */
static const uint64_t latency_bounds[] = {1000,   5000,   10000,   25000,   50000,   100000,
                                          250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define LATENCY_BUCKETS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

struct issuer {      /* shared by every tracked device it issued */
    uint8_t key[40]; /* name hash + key hash of its CertIDs */
    mbedtls_x509_crt crt;
    unsigned refs;
    UT_hash_handle hh;
};

struct cached {
    struct ocsp_certid id;
    enum ocsp_status status;
    int64_t expires;
    UT_hash_handle hh; /* insertion order = age: the head is evicted first */
};

enum waiter_kind { W_CONNECT, W_RECHECK };
struct waiter {
    enum waiter_kind kind;
    struct certmq_pending *pending; /* W_CONNECT */
    uint64_t conn_id;
    struct waiter *next;
    char identity[];
};

/* One request in flight (or queued) for a CertID; everyone who asks meanwhile waits on it. */
struct lookup {
    struct ocsp_certid id;
    struct issuer *iss;
    struct ocsp_url url;
    char *url_s;
    uint8_t nonce[OCSP_NONCE_LEN];
    struct ocsp_http *http;
    uint64_t started_ns; /* uv_hrtime when the request went out */
    struct waiter *waiters;
    struct lookup *queue_next;
    struct ocsp *x;
    UT_hash_handle hh;
};

struct tracked { /* a connected device, for re-checks */
    uint64_t conn_id;
    struct ocsp_certid id;
    struct issuer *iss;
    char *url;
    UT_hash_handle hh;
    char identity[];
};

struct responder_for {
    char *issuer_dn, *url;
    struct responder_for *next;
};

struct ocsp {
    const struct certmq_plugin_api *api;
    char *responder;
    struct responder_for *responder_for;
    bool fail_open, unknown_allow;
    uint32_t timeout_ms, recheck_s, max_age_s, cache_size;
    struct issuer *issuers;
    struct cached *cache;
    size_t cache_count;
    struct lookup *lookups;
    struct lookup *queue_head, *queue_tail;
    unsigned inflight;
    struct tracked *tracked;
    uv_timer_t recheck;
    bool recheck_on;
    uint64_t stats_good, stats_revoked, stats_unknown, stats_failed, stats_cached;
    /* Time from request to answer (or failure) per responder exchange, us. */
    uint64_t latency[LATENCY_BUCKETS + 1], latency_sum_us;
};

#define LOG(x, lvl, ...) (x)->api->log(lvl, "ocsp: " __VA_ARGS__)

static void serial_hex(const struct ocsp_certid *id, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < id->serial_len && o + 4 < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%s%02X", i ? ":" : "", id->serial[i]);
    out[o] = 0;
}

/* ---- issuers, cache, tracking ------------------------------------------------------------ */

static struct issuer *issuer_get(struct ocsp *x, const struct ocsp_certid *id, const uint8_t *der,
                                 size_t len)
{
    uint8_t key[40];
    memcpy(key, id->name_hash, 20);
    memcpy(key + 20, id->key_hash, 20);
    struct issuer *i;
    HASH_FIND(hh, x->issuers, key, sizeof(key), i);
    if (!i) {
        i = calloc(1, sizeof(*i));
        if (!i)
            return NULL;
        memcpy(i->key, key, sizeof(key));
        mbedtls_x509_crt_init(&i->crt);
        if (mbedtls_x509_crt_parse_der(&i->crt, der, len) != 0) {
            mbedtls_x509_crt_free(&i->crt);
            free(i);
            return NULL;
        }
        HASH_ADD(hh, x->issuers, key, sizeof(i->key), i);
    }
    i->refs++;
    return i;
}

static void issuer_put(struct ocsp *x, struct issuer *i)
{
    if (!i || --i->refs)
        return;
    HASH_DEL(x->issuers, i);
    mbedtls_x509_crt_free(&i->crt);
    free(i);
}

static void cache_drop(struct ocsp *x, struct cached *c)
{
    HASH_DEL(x->cache, c);
    x->cache_count--;
    free(c);
}

static void cache_clear(struct ocsp *x)
{
    struct cached *c, *tmp;
    HASH_ITER(hh, x->cache, c, tmp)
    cache_drop(x, c);
}

static struct cached *cache_find(struct ocsp *x, const struct ocsp_certid *id, int64_t now)
{
    struct cached *c;
    HASH_FIND(hh, x->cache, id, sizeof(*id), c);
    if (c && c->expires <= now) {
        cache_drop(x, c);
        return NULL;
    }
    return c;
}

static void cache_put(struct ocsp *x, const struct ocsp_certid *id, const struct ocsp_result *r,
                      int64_t now)
{
    int64_t exp = now + x->max_age_s;
    if (r->next_update && r->next_update < exp)
        exp = r->next_update;
    struct cached *c;
    HASH_FIND(hh, x->cache, id, sizeof(*id), c);
    if (c)
        cache_drop(x, c); /* the fresh answer goes in at the young end */
    if (exp <= now || !x->cache_size)
        return;
    while (x->cache_count >= x->cache_size)
        cache_drop(x, x->cache);
    c = malloc(sizeof(*c));
    if (!c)
        return;
    c->id = *id;
    c->status = r->status;
    c->expires = exp;
    HASH_ADD(hh, x->cache, id, sizeof(c->id), c);
    x->cache_count++;
}

static void track(struct ocsp *x, uint64_t conn_id, const char *identity, struct lookup *l)
{
    struct tracked *t;
    HASH_FIND(hh, x->tracked, &conn_id, sizeof(conn_id), t);
    if (t || !x->recheck_s)
        return;
    size_t il = strlen(identity) + 1;
    t = calloc(1, sizeof(*t) + il);
    if (!t)
        return;
    t->conn_id = conn_id;
    t->id = l->id;
    t->iss = l->iss;
    t->iss->refs++;
    t->url = strdup(l->url_s);
    memcpy(t->identity, identity, il);
    HASH_ADD(hh, x->tracked, conn_id, sizeof(t->conn_id), t);
}

static void untrack(struct ocsp *x, struct tracked *t)
{
    HASH_DEL(x->tracked, t);
    issuer_put(x, t->iss);
    free(t->url);
    free(t);
}

static void conn_closed(void *ud, uint64_t conn_id);

/* ---- outcomes ----------------------------------------------------------------------------- */

/* A connecting device: status < 0 means no valid answer (err says why). */
static void outcome_connect(struct ocsp *x, struct lookup *l, struct waiter *w, int status,
                            const char *err)
{
    char serial[100], why[256];
    serial_hex(&l->id, serial, sizeof(serial));
    int d = CERTMQ_DENY;
    if (status == OCSP_GOOD) {
        d = CERTMQ_ALLOW;
        LOG(x, CERTMQ_LOG_INFO, "%s (serial %s): good", w->identity, serial);
    } else if (status == OCSP_REVOKED) {
        snprintf(why, sizeof(why), "OCSP: certificate revoked (serial %s, responder %s)", serial,
                 l->url_s);
    } else if (status == OCSP_UNKNOWN) {
        d = x->unknown_allow ? CERTMQ_ALLOW : CERTMQ_DENY;
        snprintf(why, sizeof(why), "OCSP: responder does not know the certificate (serial %s)",
                 serial);
        if (x->unknown_allow)
            LOG(x, CERTMQ_LOG_WARN, "%s: %s; allowed (ocsp_unknown allow)", w->identity, why);
    } else if (x->fail_open) {
        d = CERTMQ_ALLOW;
        LOG(x, CERTMQ_LOG_WARN,
            "%s (serial %s): no valid answer from %s: %s; allowed "
            "(ocsp_fail_mode open)",
            w->identity, serial, l->url_s, err);
    } else {
        snprintf(why, sizeof(why), "OCSP: no valid answer from %s: %s", l->url_s, err);
    }
    /* Tracked first: applying the decision may close the connection at once, and conn_closed
     * must find it then. */
    if (d == CERTMQ_ALLOW)
        track(x, w->conn_id, w->identity, l);
    if (x->api->cert_decide(w->pending, d, d == CERTMQ_DENY ? why : NULL) != 0 && d == CERTMQ_ALLOW)
        conn_closed(x, w->conn_id); /* it was already gone */
}

static void outcome_recheck(struct ocsp *x, struct lookup *l, struct waiter *w, int status,
                            const char *err)
{
    struct tracked *t;
    HASH_FIND(hh, x->tracked, &w->conn_id, sizeof(w->conn_id), t);
    if (!t)
        return; /* gone meanwhile */
    char serial[100], why[200];
    serial_hex(&l->id, serial, sizeof(serial));
    if (status == OCSP_REVOKED || (status == OCSP_UNKNOWN && !x->unknown_allow)) {
        snprintf(why, sizeof(why), "OCSP: certificate %s (serial %s)",
                 status == OCSP_REVOKED ? "revoked" : "unknown to the responder", serial);
        untrack(x, t); /* first: disconnecting may report conn_closed at once */
        x->api->disconnect(x->api->broker, w->conn_id, why);
    } else if (status < 0) {
        LOG(x, CERTMQ_LOG_WARN, "re-check of %s (serial %s) failed: %s: %s; still connected",
            t->identity, serial, l->url_s, err);
    }
}

/* ---- lookups ------------------------------------------------------------------------------ */

static void lookup_start(struct lookup *l);

static void lookup_done(struct lookup *l, int status, const char *err)
{
    struct ocsp *x = l->x;
    HASH_DEL(x->lookups, l);
    struct waiter *w = l->waiters;
    while (w) {
        struct waiter *next = w->next;
        if (w->kind == W_CONNECT)
            outcome_connect(x, l, w, status, err);
        else
            outcome_recheck(x, l, w, status, err);
        free(w);
        w = next;
    }
    issuer_put(x, l->iss);
    free(l->url_s);
    free(l);
    while (x->queue_head && x->inflight < MAX_INFLIGHT) {
        struct lookup *q = x->queue_head;
        x->queue_head = q->queue_next;
        if (!x->queue_head)
            x->queue_tail = NULL;
        lookup_start(q);
    }
}

static void on_answer(void *ud, const uint8_t *body, size_t len, const char *err)
{
    struct lookup *l = ud;
    struct ocsp *x = l->x;
    x->inflight--;
    l->http = NULL;
    uint64_t us = (uv_hrtime() - l->started_ns) / 1000;
    size_t b = 0;
    while (b < LATENCY_BUCKETS && us > latency_bounds[b])
        b++;
    x->latency[b]++;
    x->latency_sum_us += us;
    if (err) {
        x->stats_failed++;
        lookup_done(l, -1, err);
        return;
    }
    struct ocsp_result r;
    char why[160];
    int64_t now = (int64_t)time(NULL);
    if (ocsp_response_verify(body, len, &l->id, &l->iss->crt, l->nonce, sizeof(l->nonce), now, &r,
                             why, sizeof(why)) != 0) {
        x->stats_failed++;
        char serial[100];
        serial_hex(&l->id, serial, sizeof(serial));
        LOG(x, CERTMQ_LOG_WARN, "invalid answer from %s for serial %s: %s", l->url_s, serial, why);
        lookup_done(l, -1, why);
        return;
    }
    if (r.status == OCSP_GOOD)
        x->stats_good++;
    else if (r.status == OCSP_REVOKED)
        x->stats_revoked++;
    else
        x->stats_unknown++;
    cache_put(x, &l->id, &r, now);
    lookup_done(l, (int)r.status, NULL);
}

static void lookup_start(struct lookup *l)
{
    struct ocsp *x = l->x;
    uint8_t req[REQ_MAX];
    int n = -1;
    if (uv_random(NULL, NULL, l->nonce, sizeof(l->nonce), 0, NULL) == 0)
        n = ocsp_request_encode(&l->id, l->nonce, sizeof(l->nonce), req, sizeof(req));
    l->started_ns = uv_hrtime();
    if (n > 0)
        l->http = ocsp_http_post(x->api->loop, &l->url, req, (size_t)n, x->timeout_ms, MAX_RESPONSE,
                                 on_answer, l);
    if (!l->http) {
        x->stats_failed++;
        lookup_done(l, -1, "cannot build the request");
        return;
    }
    x->inflight++;
}

/* Join the lookup for id, or begin one. Returns false when none could be made (err set). */
static bool lookup_join(struct ocsp *x, const struct ocsp_certid *id, struct issuer *iss,
                        const char *url, struct waiter *w, const char **err)
{
    struct lookup *l;
    HASH_FIND(hh, x->lookups, id, sizeof(*id), l);
    if (l) {
        w->next = l->waiters;
        l->waiters = w;
        return true;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        *err = "out of memory";
        return false;
    }
    if (ocsp_url_parse(url, &l->url, err) != 0) {
        free(l);
        return false;
    }
    l->id = *id;
    l->x = x;
    l->iss = iss;
    iss->refs++;
    l->url_s = strdup(url);
    l->waiters = w;
    HASH_ADD(hh, x->lookups, id, sizeof(l->id), l);
    if (x->inflight < MAX_INFLIGHT) {
        lookup_start(l);
    } else {
        if (x->queue_tail)
            x->queue_tail->queue_next = l;
        else
            x->queue_head = l;
        x->queue_tail = l;
    }
    return true;
}

static struct waiter *waiter_new(enum waiter_kind kind, uint64_t conn_id, const char *identity,
                                 struct certmq_pending *p)
{
    size_t il = strlen(identity) + 1;
    struct waiter *w = calloc(1, sizeof(*w) + il);
    if (w) {
        w->kind = kind;
        w->conn_id = conn_id;
        w->pending = p;
        memcpy(w->identity, identity, il);
    }
    return w;
}

/* ---- hooks -------------------------------------------------------------------------------- */

static const char *responder_url(struct ocsp *x, const mbedtls_x509_crt *leaf, char *aia, size_t n)
{
    if (x->responder_for) {
        char dn[512];
        if (mbedtls_x509_dn_gets(dn, sizeof(dn), &leaf->issuer) > 0)
            for (struct responder_for *r = x->responder_for; r; r = r->next)
                if (!strcmp(r->issuer_dn, dn))
                    return r->url;
    }
    if (x->responder)
        return x->responder;
    return ocsp_aia_url(leaf, aia, n) == 0 ? aia : NULL;
}

/* No answer can be had at all (no URL, unparsable certificate): the fail mode decides. */
static int no_answer(struct ocsp *x, const struct certmq_cert *cert, struct certmq_pending *p,
                     const char *err)
{
    x->stats_failed++;
    if (x->fail_open) {
        LOG(x, CERTMQ_LOG_WARN, "%s: %s; allowed (ocsp_fail_mode open)", cert->identity, err);
        return CERTMQ_ALLOW;
    }
    char why[200];
    snprintf(why, sizeof(why), "OCSP: %.190s", err); /* cut, not overflowed */
    x->api->cert_decide(p, CERTMQ_DENY, why);
    return CERTMQ_DENY;
}

static int cert_check(void *ud, const struct certmq_cert *cert, struct certmq_pending *p)
{
    struct ocsp *x = ud;
    mbedtls_x509_crt leaf, iss_crt;
    mbedtls_x509_crt_init(&leaf);
    mbedtls_x509_crt_init(&iss_crt);
    struct ocsp_certid id;
    memset(&id, 0, sizeof(id));
    int r;
    char aia[1024];
    const char *url;
    if (!cert->issuer_der || mbedtls_x509_crt_parse_der(&leaf, cert->der, cert->der_len) != 0 ||
        mbedtls_x509_crt_parse_der(&iss_crt, cert->issuer_der, cert->issuer_der_len) != 0 ||
        ocsp_certid_from(&leaf, &iss_crt, &id) != 0) {
        r = no_answer(x, cert, p, "cannot form a CertID (issuer certificate not at hand)");
        goto out;
    }
    struct cached *c = cache_find(x, &id, (int64_t)time(NULL));
    if (c) {
        x->stats_cached++;
        if (c->status == OCSP_GOOD || (c->status == OCSP_UNKNOWN && x->unknown_allow)) {
            r = CERTMQ_ALLOW;
            if (x->recheck_s) {
                /* Tracking needs the issuer and URL a lookup would carry. */
                url = responder_url(x, &leaf, aia, sizeof(aia));
                struct issuer *iss = issuer_get(x, &id, cert->issuer_der, cert->issuer_der_len);
                if (iss && url) {
                    struct lookup tmp = {.id = id, .iss = iss, .url_s = (char *)url};
                    track(x, cert->conn_id, cert->identity, &tmp);
                }
                issuer_put(x, iss);
            }
        } else {
            char serial[100], why[200];
            serial_hex(&id, serial, sizeof(serial));
            snprintf(why, sizeof(why), "OCSP: certificate %s (serial %s, cached answer)",
                     c->status == OCSP_REVOKED ? "revoked" : "unknown to the responder", serial);
            x->api->cert_decide(p, CERTMQ_DENY, why);
            r = CERTMQ_DENY;
        }
        goto out;
    }
    url = responder_url(x, &leaf, aia, sizeof(aia));
    if (!url) {
        r = no_answer(x, cert, p, "no responder (no AIA OCSP URL and no ocsp_responder)");
        goto out;
    }
    struct issuer *iss = issuer_get(x, &id, cert->issuer_der, cert->issuer_der_len);
    struct waiter *w = waiter_new(W_CONNECT, cert->conn_id, cert->identity, p);
    const char *err = "out of memory";
    if (!iss || !w || !lookup_join(x, &id, iss, url, w, &err)) {
        free(w);
        issuer_put(x, iss);
        char e[200];
        snprintf(e, sizeof(e), "responder %.100s: %.80s", url, err);
        r = no_answer(x, cert, p, e);
        goto out;
    }
    issuer_put(x, iss); /* the lookup holds its own reference */
    r = CERTMQ_PENDING;
out:
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&iss_crt);
    return r;
}

static void conn_closed(void *ud, uint64_t conn_id)
{
    struct ocsp *x = ud;
    struct tracked *t;
    HASH_FIND(hh, x->tracked, &conn_id, sizeof(conn_id), t);
    if (t)
        untrack(x, t);
}

static void on_recheck(uv_timer_t *timer)
{
    struct ocsp *x = timer->data;
    struct tracked *t, *tmp;
    size_t n = 0;
    HASH_ITER(hh, x->tracked, t, tmp)
    {
        struct waiter *w = waiter_new(W_RECHECK, t->conn_id, t->identity, NULL);
        const char *err = "out of memory";
        if (!w || !lookup_join(x, &t->id, t->iss, t->url, w, &err)) {
            free(w);
            LOG(x, CERTMQ_LOG_WARN, "re-check of %s not started: %s", t->identity, err);
            continue;
        }
        n++;
    }
    if (n)
        LOG(x, CERTMQ_LOG_DEBUG, "re-checking %zu connected device(s)", n);
}

static void reload(void *ud)
{
    struct ocsp *x = ud;
    /* Operators revoke and then reload: answers cached before must not outlive that. */
    cache_clear(x);
    LOG(x, CERTMQ_LOG_NOTICE,
        "cache cleared; answers so far: %llu good, %llu revoked, %llu "
        "unknown, %llu failed, %llu from cache",
        (unsigned long long)x->stats_good, (unsigned long long)x->stats_revoked,
        (unsigned long long)x->stats_unknown, (unsigned long long)x->stats_failed,
        (unsigned long long)x->stats_cached);
}

/* API 3.2: the counters above as Prometheus samples (docs/operations.md, "Metrics"). */
static void metrics(void *ud, certmq_metric_emit *emit, void *ctx)
{
    struct ocsp *x = ud;
    static const char *const results[] = {"good", "revoked", "unknown", "failed"};
    const uint64_t counts[] = {x->stats_good, x->stats_revoked, x->stats_unknown, x->stats_failed};
    struct certmq_metric m = {.size = sizeof(m)};
    m.name = "certmq_ocsp_requests_total";
    m.help = "OCSP requests sent to responders, by outcome (failed: no valid answer: "
             "unreachable, timeout, HTTP error, bad signature or nonce)";
    m.type = CERTMQ_METRIC_COUNTER;
    m.label_name = "result";
    for (int i = 0; i < 4; i++) {
        m.label_value = results[i];
        m.value = (double)counts[i];
        emit(ctx, &m);
    }
    const struct {
        const char *name, *help;
        int type;
        uint64_t value;
    } plain[] = {
        {"certmq_ocsp_cache_hits_total", "Certificate checks answered from the OCSP cache",
         CERTMQ_METRIC_COUNTER, x->stats_cached},
        {"certmq_ocsp_cache_entries", "OCSP answers cached", CERTMQ_METRIC_GAUGE, x->cache_count},
        {"certmq_ocsp_requests_in_flight", "OCSP requests waiting for their responder",
         CERTMQ_METRIC_GAUGE, x->inflight},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        m = (struct certmq_metric){.size = sizeof(m),
                                   .name = plain[i].name,
                                   .help = plain[i].help,
                                   .type = plain[i].type,
                                   .value = (double)plain[i].value};
        emit(ctx, &m);
    }
    m = (struct certmq_metric){.size = sizeof(m),
                               .name = "certmq_ocsp_responder_latency_seconds",
                               .help = "Time from an OCSP request to its answer or failure",
                               .type = CERTMQ_METRIC_HISTOGRAM,
                               .bounds = latency_bounds,
                               .counts = x->latency,
                               .nbuckets = LATENCY_BUCKETS,
                               .sum = x->latency_sum_us,
                               .scale = 1e6};
    emit(ctx, &m);
}

static void free_ocsp(struct ocsp *x)
{
    while (x->responder_for) {
        struct responder_for *r = x->responder_for;
        x->responder_for = r->next;
        free(r->issuer_dn);
        free(r->url);
        free(r);
    }
    free(x->responder);
    free(x);
#ifdef CERTMQ_PLUGIN_OWN_MBEDTLS
    mbedx_crypto_free(); /* the plugin's own Mbed TLS: its PSA state goes before dlclose */
#endif
}

static void recheck_closed(uv_handle_t *h)
{
    free_ocsp(h->data);
}

static void cleanup(void *ud)
{
    struct ocsp *x = ud;
    struct lookup *l, *ltmp;
    HASH_ITER(hh, x->lookups, l, ltmp)
    {
        HASH_DEL(x->lookups, l);
        ocsp_http_cancel(l->http);
        while (l->waiters) { /* pending decisions are discarded by the broker */
            struct waiter *w = l->waiters;
            l->waiters = w->next;
            free(w);
        }
        issuer_put(x, l->iss);
        free(l->url_s);
        free(l);
    }
    struct tracked *t, *ttmp;
    HASH_ITER(hh, x->tracked, t, ttmp)
    untrack(x, t);
    cache_clear(x);
    if (x->recheck_on)
        uv_close((uv_handle_t *)&x->recheck, recheck_closed);
    else
        free_ocsp(x);
}

/* ---- options ------------------------------------------------------------------------------ */

static bool opt_uint(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || *v == '-' || n < min || n > max)
        return false;
    *out = (uint32_t)n;
    return true;
}

static bool opt_url(const struct certmq_plugin_api *api, const char *key, const char *v)
{
    struct ocsp_url u;
    const char *why;
    if (ocsp_url_parse(v, &u, &why) == 0)
        return true;
    api->log(CERTMQ_LOG_ERR, "ocsp: plugin_opt_%s %s: %s", key, v, why);
    return false;
}

static bool parse_opt(struct ocsp *x, const char *k, const char *v)
{
    const struct certmq_plugin_api *api = x->api;
    if (!strcmp(k, "ocsp_responder")) {
        if (!opt_url(api, k, v))
            return false;
        free(x->responder);
        x->responder = strdup(v);
        return true;
    }
    if (!strcmp(k, "ocsp_responder_for")) {
        const char *sp = strrchr(v, ' ');
        if (!sp || sp == v) {
            api->log(CERTMQ_LOG_ERR, "ocsp: plugin_opt_ocsp_responder_for needs ISSUER-DN URL");
            return false;
        }
        if (!opt_url(api, k, sp + 1))
            return false;
        struct responder_for *r = calloc(1, sizeof(*r));
        if (!r)
            return false;
        r->issuer_dn = strndup(v, (size_t)(sp - v));
        r->url = strdup(sp + 1);
        r->next = x->responder_for;
        x->responder_for = r;
        return true;
    }
    if (!strcmp(k, "ocsp_fail_mode") || !strcmp(k, "ocsp_unknown")) {
        bool fm = k[5] == 'f';
        const char *a = fm ? "open" : "allow", *b = fm ? "closed" : "deny";
        if (strcmp(v, a) && strcmp(v, b)) {
            api->log(CERTMQ_LOG_ERR, "ocsp: plugin_opt_%s must be %s or %s, not '%s'", k, b, a, v);
            return false;
        }
        *(fm ? &x->fail_open : &x->unknown_allow) = !strcmp(v, a);
        return true;
    }
    static const struct {
        const char *key;
        size_t off;
        uint32_t min, max;
    } nums[] = {{"ocsp_timeout_ms", offsetof(struct ocsp, timeout_ms), 100, 600000},
                {"ocsp_recheck_s", offsetof(struct ocsp, recheck_s), 0, 31 * 86400},
                {"ocsp_cache_max_age_s", offsetof(struct ocsp, max_age_s), 0, 31 * 86400},
                {"ocsp_cache_size", offsetof(struct ocsp, cache_size), 0, 10000000}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(k, nums[i].key))
            continue;
        if (!opt_uint(v, nums[i].min, nums[i].max, (uint32_t *)((char *)x + nums[i].off))) {
            api->log(CERTMQ_LOG_ERR,
                     "ocsp: plugin_opt_%s must be a number from %u to %u, "
                     "not '%s'",
                     k, nums[i].min, nums[i].max, v);
            return false;
        }
        return true;
    }
    api->log(CERTMQ_LOG_ERR, "ocsp: unknown option plugin_opt_%s", k);
    return false;
}

CERTMQ_PLUGIN_VERSION_FUNCTION

int certmq_plugin_init(const struct certmq_plugin_api *api, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h)
{
    struct ocsp *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->api = api;
    x->timeout_ms = 5000;
    x->recheck_s = 3600;
    x->max_age_s = 3600;
    x->cache_size = 10000;
    for (size_t i = 0; i < o->count; i++)
        if (!parse_opt(x, o->keys[i], o->values[i])) {
            free_ocsp(x);
            return -1;
        }
    if (x->recheck_s) {
        uv_timer_init(api->loop, &x->recheck);
        x->recheck.data = x;
        uv_timer_start(&x->recheck, on_recheck, (uint64_t)x->recheck_s * 1000,
                       (uint64_t)x->recheck_s * 1000);
        uv_unref((uv_handle_t *)&x->recheck); /* never what keeps the broker running */
        x->recheck_on = true;
    }
    h->size = sizeof(*h);
    h->ud = x;
    h->cert_check = cert_check;
    h->conn_closed = conn_closed;
    h->reload = reload;
    h->cleanup = cleanup;
    h->metrics = metrics;
    LOG(x, CERTMQ_LOG_NOTICE,
        "ready: responder %s, fail mode %s, unknown %s, timeout %u ms, "
        "re-check every %u s, cache %u answers up to %u s",
        x->responder ? x->responder
                     : (x->responder_for ? "per issuer, else AIA" : "from each certificate's AIA"),
        x->fail_open ? "open" : "closed", x->unknown_allow ? "allow" : "deny", x->timeout_ms,
        x->recheck_s, x->cache_size, x->max_age_s);
    return 0;
}
