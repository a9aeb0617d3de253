/* example: a minimal certmq plugin, built and tested with the broker.
 *
 * plugin_opt_deny_level WORD   deny publishing and receiving on any topic with the level WORD
 *                              (e.g. "secret" denies devices/a/secret/x), whatever the ACL says
 * plugin_opt_log_messages true log every accepted message (topic, identity, size)
 * plugin_opt_deny_cert ID      refuse the certificate whose identity is ID at the handshake
 * plugin_opt_cert_delay_ms N   decide every certificate N ms later (a stand-in for a network
 *                              lookup: the connection waits, the broker serves everyone else)
 * plugin_opt_log_attributes true  log each certificate's attributes (O, OU, SAN URI, ...) as
 *                              the ACL sees them (API 3.2 cert_attr)
 *
 * It shows the whole contract: version check, options, hooks that can only restrict, an
 * asynchronous certificate decision on the broker's libuv loop, logging through the broker,
 * cleanup that closes its handles. */
#include "certmq_plugin.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* One delayed certificate decision. */
struct delayed {
    uv_timer_t timer;
    struct certmq_pending *pending;
    struct example *x;
    struct delayed *prev, *next;
};

struct example {
    const struct certmq_plugin_api *api;
    char *deny_level, *deny_cert;
    int log_messages, log_attributes;
    unsigned long messages;
    long cert_delay_ms;
    struct delayed *delayed;
};

static void delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void delayed_unlink(struct delayed *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        d->x->delayed = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static void delayed_fire(uv_timer_t *t)
{
    struct delayed *d = t->data;
    delayed_unlink(d);
    d->x->api->cert_decide(d->pending, CERTMQ_ALLOW, NULL);
    uv_close((uv_handle_t *)t, delayed_closed);
}

/* Every attribute value of the connection's certificate, through the 3.2 api. */
static void log_attributes(struct example *x, const struct certmq_cert *cert)
{
    static const char *const names[] = {"o",       "ou",      "cn",        "serial",
                                        "san_uri", "san_dns", "issuer_cn", "policy"};
    if (x->api->api_minor < 2) /* an older certmq: no cert_attr in its table */
        return;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        int n = x->api->cert_attr(x->api->broker, cert->conn_id, names[k], 0, NULL, NULL);
        for (int i = 0; i < n; i++) {
            const char *v;
            size_t len;
            x->api->cert_attr(x->api->broker, cert->conn_id, names[k], (size_t)i, &v, &len);
            x->api->log(CERTMQ_LOG_NOTICE, "example: %s has %s=%.*s", cert->identity, names[k],
                        v ? (int)len : 0, v ? v : "");
        }
    }
}

static int cert_check(void *ud, const struct certmq_cert *cert, struct certmq_pending *p)
{
    struct example *x = ud;
    if (x->log_attributes)
        log_attributes(x, cert);
    if (x->deny_cert && !strcmp(cert->identity, x->deny_cert)) {
        x->api->cert_decide(p, CERTMQ_DENY, "example: identity on the deny list");
        return CERTMQ_DENY;
    }
    if (x->cert_delay_ms <= 0)
        return CERTMQ_ALLOW;
    struct delayed *d = calloc(1, sizeof(*d));
    if (!d)
        return CERTMQ_DENY; /* fail closed */
    d->pending = p;
    d->x = x;
    d->timer.data = d;
    uv_timer_init(x->api->loop, &d->timer);
    uv_timer_start(&d->timer, delayed_fire, (uint64_t)x->cert_delay_ms, 0);
    d->next = x->delayed;
    if (d->next)
        d->next->prev = d;
    x->delayed = d;
    x->api->log(CERTMQ_LOG_INFO, "example: deciding on %s (%zu-byte certificate) in %ld ms",
                cert->identity, cert->der_len, x->cert_delay_ms);
    return CERTMQ_PENDING;
}

static int has_level(const char *topic, const char *level)
{
    size_t n = strlen(level);
    for (const char *p = topic; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (!strncmp(p, level, n) && (p[n] == '/' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

static int acl_check(void *ud, const char *identity, const char *client_id, const char *topic,
                     int access)
{
    struct example *x = ud;
    if (x->deny_level && has_level(topic, x->deny_level)) {
        x->api->log(CERTMQ_LOG_INFO, "example: %s denied on %s", identity, topic);
        return CERTMQ_DENY;
    }
    return CERTMQ_ALLOW;
}

static void message(void *ud, const char *identity, const char *topic, const void *payload,
                    size_t len, int qos, int retain)
{
    struct example *x = ud;
    x->messages++;
    if (x->log_messages)
        x->api->log(CERTMQ_LOG_NOTICE, "example: message #%lu from %s on %s (%zu bytes, q%d)",
                    x->messages, identity, topic, len, qos);
}

static void connected(void *ud, const char *identity, const char *client_id, const char *addr)
{
    struct example *x = ud;
    x->api->log(CERTMQ_LOG_NOTICE, "example: %s connected as %s from %s", identity, client_id,
                addr);
}

static void free_example(struct example *x)
{
    free(x->deny_level);
    free(x->deny_cert);
    free(x);
}

static void cleanup(void *ud)
{
    struct example *x = ud;
    x->api->log(CERTMQ_LOG_NOTICE, "example: unloading after %lu messages", x->messages);
    for (struct delayed *d = x->delayed; d; d = d->next)
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
    free_example(x);
}

CERTMQ_PLUGIN_VERSION_FUNCTION

int certmq_plugin_init(const struct certmq_plugin_api *api, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h)
{
    struct example *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->api = api;
    for (size_t i = 0; i < o->count; i++) {
        if (!strcmp(o->keys[i], "deny_level")) {
            if (!o->values[i][0] || strpbrk(o->values[i], "/+#")) {
                api->log(CERTMQ_LOG_ERR, "example: deny_level must be one topic level");
                free_example(x);
                return -1;
            }
            free(x->deny_level);
            x->deny_level = strdup(o->values[i]);
        } else if (!strcmp(o->keys[i], "deny_cert")) {
            free(x->deny_cert);
            x->deny_cert = strdup(o->values[i]);
        } else if (!strcmp(o->keys[i], "cert_delay_ms")) {
            char *end;
            x->cert_delay_ms = strtol(o->values[i], &end, 10);
            if (*end || x->cert_delay_ms < 0 || x->cert_delay_ms > 60000) {
                api->log(CERTMQ_LOG_ERR, "example: cert_delay_ms must be 0..60000");
                free_example(x);
                return -1;
            }
        } else if (!strcmp(o->keys[i], "log_messages")) {
            x->log_messages = !strcmp(o->values[i], "true");
        } else if (!strcmp(o->keys[i], "log_attributes")) {
            x->log_attributes = !strcmp(o->values[i], "true");
        } else {
            api->log(CERTMQ_LOG_ERR, "example: unknown option plugin_opt_%s", o->keys[i]);
            free_example(x);
            return -1;
        }
    }
    h->size = sizeof(*h);
    h->ud = x;
    h->acl_check = acl_check;
    h->message = message;
    h->connect = connected;
    h->cleanup = cleanup;
    if (x->deny_cert || x->cert_delay_ms || x->log_attributes)
        h->cert_check = cert_check;
    api->log(CERTMQ_LOG_NOTICE, "example: ready (deny_level %s)",
             x->deny_level ? x->deny_level : "none");
    return 0;
}
