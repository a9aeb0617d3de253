/* stats: the broker's counters in one table that both readers use: $SYS (sys.c, a topic per
 * row) and the Prometheus endpoint (server_metrics.c, a sample per row). A row names where its
 * number lives (a field of broker_stats, conn_stats or stats_extra, or a computed value), its
 * $SYS topic if it has one and its metric (name, type, help, one optional label) if it has one,
 * so a counter added here appears in both, and the two cannot drift apart. */
#ifndef CERTMQ_STATS_H
#define CERTMQ_STATS_H

#include "broker.h"
#include "buf.h"
#include "conn.h"
#include "prom.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster_stats;

/* Values only the server knows. */
struct stats_extra {
    uint64_t uptime_s;
    uint64_t chain_cache_hits; /* summed over every listener's current TLS context */
    uint64_t resident_bytes;   /* at the last max_memory check */
    uint64_t acl_reloads, acl_reload_failures;
    uint64_t tls_reloads, tls_reload_failures;
    uint64_t max_connections_refused;
    const struct cluster_stats *cluster; /* NULL: not in cluster mode (no cluster rows) */
};

struct stats_src {
    struct broker *b;
    const struct conn_stats *cs;
    const struct stats_extra *x;
};

enum stats_source {
    STATS_VERSION,       /* "certmq X.Y.Z" ($SYS only) */
    STATS_BROKER,        /* a uint64_t of struct broker_stats */
    STATS_CONN,          /* a uint64_t of struct conn_stats */
    STATS_CONN32,        /* a uint32_t of struct conn_stats (connection states) */
    STATS_EXTRA,         /* a uint64_t of struct stats_extra */
    STATS_SUBSCRIPTIONS, /* broker_subscription_count() */
    STATS_RETAINED,      /* broker_retained_count() */
    STATS_REVOKED,       /* connected devices revoked by a CRL or a plugin */
    STATS_FULL,          /* handshakes that were not resumptions */
    STATS_QUEUED,        /* broker_queue_totals(): queued */
    STATS_INFLIGHT,      /* broker_queue_totals(): in flight */
    STATS_CLUSTER,       /* a uint64_t of struct cluster_stats; cluster mode only */
};

struct stats_row {
    const char *topic; /* $SYS topic, NULL = metric only */
    const char *suffix;
    const char *metric; /* NULL = $SYS only */
    enum prom_type type;
    const char *help;
    const char *label, *label_value; /* NULL = no label */
    enum stats_source src;
    size_t off;
};

extern const struct stats_row stats_rows[];
extern const size_t stats_row_count;

uint64_t stats_value(const struct stats_src *s, const struct stats_row *r);
/* False for rows that do not apply to this broker (cluster rows on a single node). */
bool stats_row_present(const struct stats_src *s, const struct stats_row *r);
/* A tls_reject reason as $SYS names it ("unknown_CA"): spaces become '_'. */
void stats_reason_name(enum tls_reject r, char *out, size_t n);
/* Every row with a metric, each family announced once, and the refusal reasons of every
 * tls_reject value in certmq_refusals_total. */
void stats_write_metrics(struct buf *out, const struct stats_src *s);

#endif
