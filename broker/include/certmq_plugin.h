/* certmq_plugin.h: the public, versioned interface for certmq plugins.
 *
 * A plugin is a shared object loaded with `plugin PATH` and configured with
 * `plugin_opt_NAME VALUE` lines. It exports two functions:
 *
 *   int certmq_plugin_version(void);    returns CERTMQ_PLUGIN_API_VERSION it was built against
 *   int certmq_plugin_init(const struct certmq_plugin_api *api,
 *                          const struct certmq_plugin_opts *opts,
 *                          struct certmq_plugin_hooks *hooks);   0 = ready, else refused
 *
 * and init sets hooks->size = sizeof(struct certmq_plugin_hooks).
 *
 * Compatibility (docs/plugins.md): the API has a major and a minor version. A minor version only
 * appends members at the end of struct certmq_plugin_api and struct certmq_plugin_hooks; anything
 * else is a new major. certmq loads a plugin built for its own major and the same or an older
 * minor (hooks past the plugin's hooks->size are NULL to certmq), and refuses one built for
 * another major or a newer minor, with a message naming both versions.
 *
 * certmq refuses to start when a plugin cannot be loaded, speaks an incompatible API version, or
 * its init fails; a hook that returns an error fails closed (the operation is denied). Everything
 * runs on the broker's single event loop: hooks must not block. The loop is available as a
 * `uv_loop_t *` for timers, TCP connections and name resolution (uv_timer_*, uv_tcp_connect,
 * uv_getaddrinfo); a plugin that uses it links libuv itself and closes its handles in cleanup.
 *
 * Hooks can only restrict what certmq's own checks allow: the ACL file, the certificate policy
 * and identity are always applied first. */
#ifndef CERTMQ_PLUGIN_H
#define CERTMQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

/* 3.0: size-prefixed tables, major/minor versions. 3.1: the tick hook. 3.2: the metrics hook and
 * cert_attr. */
#define CERTMQ_PLUGIN_API_MAJOR 3
#define CERTMQ_PLUGIN_API_MINOR 2
/* What certmq_plugin_version() returns. Versions before 3.0 returned a plain 1 or 2. */
#define CERTMQ_PLUGIN_VERSION_OF(major, minor) ((major)*1000 + (minor))
#define CERTMQ_PLUGIN_API_VERSION                                                                  \
    CERTMQ_PLUGIN_VERSION_OF(CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR)

enum certmq_access { CERTMQ_ACCESS_READ = 1, CERTMQ_ACCESS_WRITE = 2 };
enum certmq_decision { CERTMQ_ALLOW = 0, CERTMQ_DENY = 1, CERTMQ_PENDING = 2 };
enum certmq_log_level {
    CERTMQ_LOG_ERR = 1,
    CERTMQ_LOG_WARN = 2,
    CERTMQ_LOG_NOTICE = 4,
    CERTMQ_LOG_INFO = 8,
    CERTMQ_LOG_DEBUG = 16
};

struct certmq_plugin_opts {
    const char *const *keys; /* plugin_opt_NAME -> "NAME" */
    const char *const *values;
    size_t count;
};

/* A client certificate that passed certmq's own checks (chain, validity, CRLs, identity). */
struct certmq_cert {
    uint64_t conn_id; /* this connection in disconnect() and conn_closed; never reused */
    const char *identity;
    const char *address; /* "ip:port" */
    const uint8_t *der;  /* the client's certificate */
    size_t der_len;
    const uint8_t *issuer_der; /* the certificate that issued it; NULL when not at hand */
    size_t issuer_der_len;
    int resumed; /* 1: TLS session ticket (certmq re-checked the ticket's certificate) */
};

/* A certificate decision the plugin owes certmq (see cert_check). */
struct certmq_pending;

/* What certmq gives a plugin. Never shorter than the plugin's minor version knows. */
struct certmq_plugin_api {
    size_t size;              /* sizeof the table certmq was built with */
    int api_major, api_minor; /* the version certmq speaks */
    void *loop;               /* uv_loop_t * */
    void (*log)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void *broker; /* pass back to disconnect() */
    /* Complete a decision: exactly once per pending, from any later loop turn or from inside
     * cert_check itself. reason (may be NULL) is logged when denying. Returns 0, or -1 when
     * the connection went away meanwhile (the decision is discarded). */
    int (*cert_decide)(struct certmq_pending *p, int decision, const char *reason);
    /* Disconnect the client on conn_id as untrusted (MQTT 5: DISCONNECT 0x98; its will is not
     * published). 0 when it was connected, -1 when not (any more). */
    int (*disconnect)(void *broker, uint64_t conn_id, const char *reason);
    /* Since 3.2 (check api_minor >= 2 first): the certificate attributes of the client on
     * conn_id, read once at its handshake, exactly as the ACL sees them (docs/acl.md): attr is
     * "o", "ou", "cn", "serial", "san_uri", "san_dns", "issuer_cn" or "policy". Returns how many
     * values of attr the certificate has (0: none), or -1 when conn_id is not connected or attr
     * is unknown. When index is below that count and the value was kept (at most 8 values of
     * 256 bytes), *value (NUL-terminated; may hold hostile bytes, even a NUL before *len) and
     * *len are set, else *value is NULL; value and len may be NULL to only count. Valid until
     * the calling hook returns. */
    int (*cert_attr)(void *broker, uint64_t conn_id, const char *attr, size_t index,
                     const char **value, size_t *len);
};

/* Since 3.2: one sample a plugin reports to the metrics endpoint (Prometheus text format). */
enum certmq_metric_type {
    CERTMQ_METRIC_COUNTER = 1,
    CERTMQ_METRIC_GAUGE = 2,
    CERTMQ_METRIC_HISTOGRAM = 3
};
struct certmq_metric {
    size_t size;      /* sizeof(struct certmq_metric) as the plugin was built */
    const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]*, e.g. certmq_ocsp_requests_total */
    const char *help; /* taken from the first sample of a name */
    int type;         /* enum certmq_metric_type */
    const char *label_name, *label_value; /* one optional label: NULL, or [a-zA-Z_][a-zA-Z0-9_]* */
    double value;                         /* counters and gauges */
    /* Histograms: nbuckets (at most 16) ascending upper bounds and nbuckets + 1 counts per
     * bucket, not cumulative (the last: above every bound); sum of the observed values. Bounds
     * and sum are in the plugin's unit; divided by scale they are seconds (or the base unit). */
    const uint64_t *bounds, *counts;
    size_t nbuckets;
    uint64_t sum;
    double scale;
};
typedef void certmq_metric_emit(void *ctx, const struct certmq_metric *m);

/* What a plugin gives certmq; any hook may be NULL. ud is passed back to every hook. New
 * minor versions append hooks at the end. */
struct certmq_plugin_hooks {
    size_t size; /* the plugin sets sizeof(struct certmq_plugin_hooks) as it was built */
    void *ud;
    /* Every new TLS connection, before any MQTT byte is read. Return CERTMQ_ALLOW, CERTMQ_DENY,
     * or CERTMQ_PENDING and call api->cert_decide(p, ...) later: meanwhile the connection is
     * held unread (at most tls_handshake_timeout, then refused) and the loop serves everyone
     * else. Pointers in cert are valid during the call only. Plugins are asked in load order;
     * the first that denies decides. */
    int (*cert_check)(void *ud, const struct certmq_cert *cert, struct certmq_pending *p);
    /* A connection cert_check was asked about has closed, whatever the decision was. */
    void (*conn_closed)(void *ud, uint64_t conn_id);
    /* A client's CONNECT was accepted (identity from its certificate). */
    void (*connect)(void *ud, const char *identity, const char *client_id, const char *address);
    void (*disconnect)(void *ud, const char *identity, const char *client_id);
    /* After the ACL file allowed it: return CERTMQ_ALLOW or CERTMQ_DENY (anything else denies).
     * Called for every publish (write) and every delivery (read). */
    int (*acl_check)(void *ud, const char *identity, const char *client_id, const char *topic,
                     int access);
    /* A message was accepted from a client (after every check). */
    void (*message)(void *ud, const char *identity, const char *topic, const void *payload,
                    size_t len, int qos, int retain);
    /* SIGHUP. */
    void (*reload)(void *ud);
    /* At shutdown, while the loop still runs: close every handle (their close callbacks run
     * before the plugin is unloaded) and free what you own. No hook is called after it;
     * decisions still pending are discarded. */
    void (*cleanup)(void *ud);
    /* Since 3.1: once a second, on the loop (housekeeping without a timer of one's own). */
    void (*tick)(void *ud);
    /* Since 3.2: at every scrape of the metrics endpoint, on the loop: call emit(ctx, m) once per
     * sample, the samples of one name one after another. Samples with an invalid name, label or
     * type are dropped (logged). Must be cheap: read counters, do not compute. */
    void (*metrics)(void *ud, certmq_metric_emit *emit, void *ctx);
};

/* The two functions a plugin exports. CERTMQ_PLUGIN_VERSION_FUNCTION, once in one of the
 * plugin's source files, defines the first with the version the plugin is built against. */
int certmq_plugin_version(void);
int certmq_plugin_init(const struct certmq_plugin_api *api, const struct certmq_plugin_opts *opts,
                       struct certmq_plugin_hooks *hooks);
#define CERTMQ_PLUGIN_VERSION_FUNCTION                                                             \
    int certmq_plugin_version(void)                                                                \
    {                                                                                              \
        return CERTMQ_PLUGIN_API_VERSION;                                                          \
    }

#endif
