/* sys: $SYS topics from a table. Each row names its topic and where the number comes from (a
 * counter of the broker, of the connections, or one the caller passes in); the payload is the
 * number in decimal, with the row's suffix. Refusals per reason are one topic per tls_reject
 * value, named after it. */
#include "sys.h"

#include "msg.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Payloads are short numbers or the version line; topics are fixed or one reason long. */
#define SYS_PAYLOAD_MAX 128
#define SYS_TOPIC_MAX 96

enum sys_source {
    SYS_VERSION,       /* "certmq X.Y.Z" */
    SYS_BROKER,        /* a uint64_t of struct broker_stats */
    SYS_CONN,          /* a uint64_t of struct conn_stats */
    SYS_EXTRA,         /* a uint64_t of struct sys_extra */
    SYS_SUBSCRIPTIONS, /* broker_subscription_count() */
    SYS_RETAINED,      /* broker_retained_count() */
    SYS_REVOKED,       /* connected devices revoked by a CRL or a plugin */
    SYS_CLUSTER,       /* a uint64_t of struct cluster_stats; cluster mode only */
};

struct sys_row {
    const char *topic;
    enum sys_source src;
    size_t off;
    const char *suffix;
};

#define BS(f) SYS_BROKER, offsetof(struct broker_stats, f)
#define CS(f) SYS_CONN, offsetof(struct conn_stats, f)
#define XS(f) SYS_EXTRA, offsetof(struct sys_extra, f)
#define KS(f) SYS_CLUSTER, offsetof(struct cluster_stats, f)

/* In publishing order. */
static const struct sys_row rows[] = {
    {"$SYS/broker/version", SYS_VERSION, 0, NULL},
    {"$SYS/broker/uptime", XS(uptime_s), " seconds"},
    {"$SYS/broker/clients/connected", BS(clients_online), NULL},
    {"$SYS/broker/clients/total", BS(sessions), NULL},
    {"$SYS/broker/messages/received", BS(msgs_received), NULL},
    {"$SYS/broker/messages/sent", BS(msgs_sent), NULL},
    {"$SYS/broker/messages/dropped", BS(msgs_dropped), NULL},
    {"$SYS/broker/bytes/received", CS(bytes_in), NULL},
    {"$SYS/broker/bytes/sent", CS(bytes_out), NULL},
    {"$SYS/broker/subscriptions/count", SYS_SUBSCRIPTIONS, 0, NULL},
    {"$SYS/broker/retained messages/count", SYS_RETAINED, 0, NULL},
    {"$SYS/broker/tls/handshakes", CS(handshakes), NULL},
    {"$SYS/broker/tls/resumed", CS(resumed), NULL},
    {"$SYS/broker/tls/refused", CS(refused), NULL},
    {"$SYS/broker/tls/disconnected/revoked", SYS_REVOKED, 0, NULL},
    {"$SYS/broker/tls/disconnected/expired", CS(untrusted[REASON_CERT_EXPIRED]), NULL},
    {"$SYS/broker/tls/expiring_soon", CS(expiring_soon), NULL},
    {"$SYS/broker/tls/chain_cache_hits", XS(chain_cache_hits), NULL},
    {"$SYS/broker/tls/buffers_released", CS(parked), NULL},
    {"$SYS/broker/proxy/connections", CS(proxied), NULL},
    {"$SYS/broker/proxy/health_checks", CS(proxy_checks), NULL},
    {"$SYS/broker/memory/resident", XS(resident_bytes), NULL},
    {"$SYS/broker/refused/memory", BS(memory_refused), NULL},
    {"$SYS/broker/refused/sessions", BS(sessions_refused), NULL},
    {"$SYS/broker/refused/identity_connections", BS(connections_refused), NULL},
    {"$SYS/broker/refused/retained", BS(retained_refused), NULL},
    {"$SYS/broker/cluster/connected", KS(connected), NULL},
    {"$SYS/broker/cluster/interests", KS(interests), NULL},
    {"$SYS/broker/cluster/messages/sent", KS(sent), NULL},
    {"$SYS/broker/cluster/messages/send_failed", KS(send_failed), NULL},
    {"$SYS/broker/cluster/messages/local_only", KS(dropped_long), NULL},
    {"$SYS/broker/cluster/messages/received", KS(received), NULL},
    {"$SYS/broker/cluster/messages/invalid", KS(bad_received), NULL},
    {"$SYS/broker/cluster/messages/delivered", KS(delivered), NULL},
};

static void sys_pub(struct broker *b, const char *topic, const char *payload, int64_t now)
{
    struct mqtt_publish p = {0};
    p.retain = true;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    struct msg *m = msg_new(topic, strlen(topic), &p, 0, broker_next_msg_id(b));
    broker_publish(b, NULL, m, now);
    msg_unref(m);
}

static uint64_t field(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

static uint64_t row_value(struct broker *b, const struct conn_stats *cs, const struct sys_extra *x,
                          const struct sys_row *r)
{
    switch (r->src) {
    case SYS_BROKER:
        return field(broker_stats(b), r->off);
    case SYS_CONN:
        return field(cs, r->off);
    case SYS_EXTRA:
        return field(x, r->off);
    case SYS_CLUSTER:
        return field(x->cluster, r->off);
    case SYS_SUBSCRIPTIONS:
        return broker_subscription_count(b);
    case SYS_RETAINED:
        return broker_retained_count(b);
    case SYS_REVOKED:
        return cs->untrusted[REASON_REVOKED_CRL] + cs->untrusted[REASON_REVOKED_PLUGIN];
    case SYS_VERSION:
        break;
    }
    return 0;
}

void sys_publish(struct broker *b, const struct conn_stats *cs, const struct sys_extra *x,
                 int64_t now)
{
    char payload[SYS_PAYLOAD_MAX];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct sys_row *r = &rows[i];
        if (r->src == SYS_CLUSTER && !x->cluster)
            continue;
        if (r->src == SYS_VERSION)
            snprintf(payload, sizeof(payload), "certmq %s", CERTMQ_VERSION);
        else
            snprintf(payload, sizeof(payload), "%" PRIu64 "%s", row_value(b, cs, x, r),
                     r->suffix ? r->suffix : "");
        sys_pub(b, r->topic, payload, now);
    }
    for (int r = 1; r < TLS_REJECT_COUNT; r++) {
        char topic[SYS_TOPIC_MAX];
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/refused/%s",
                 tls_reject_str((enum tls_reject)r));
        for (char *p = topic; *p; p++)
            if (*p == ' ')
                *p = '_';
        snprintf(payload, sizeof(payload), "%" PRIu64, cs->refused_by[r]);
        sys_pub(b, topic, payload, now);
    }
}
