/* stats: see stats.h. The table is in $SYS publishing order; the metrics writer groups rows of
 * one family, so a family's rows need not be adjacent. */
#include "stats.h"

#include "cluster.h"

#include <stdio.h>
#include <string.h>

#define BS(f) STATS_BROKER, offsetof(struct broker_stats, f)
#define CS(f) STATS_CONN, offsetof(struct conn_stats, f)
#define CS32(f) STATS_CONN32, offsetof(struct conn_stats, f)
#define XS(f) STATS_EXTRA, offsetof(struct stats_extra, f)
#define KS(f) STATS_CLUSTER, offsetof(struct cluster_stats, f)
#define CLUSTER_ROW(topic, metric, type, help, field)                                              \
    {                                                                                              \
        "$SYS/broker/cluster/" topic, NULL, "certmq_cluster_" metric, type, help, NULL, NULL,      \
            KS(field)                                                                              \
    }

#define REFUSALS "certmq_refusals_total"
#define REFUSALS_HELP                                                                              \
    "Connections, CONNECTs, publishes and subscriptions refused, by reason (TLS reasons, ACL, "    \
    "limits)"
#define QOS_ROWS(metric, help, field)                                                              \
    {NULL, NULL, metric, PROM_COUNTER, help, "qos", "0", BS(field[0])},                            \
        {NULL, NULL, metric, PROM_COUNTER, help, "qos", "1", BS(field[1])},                        \
    {                                                                                              \
        NULL, NULL, metric, PROM_COUNTER, help, "qos", "2", BS(field[2])                           \
    }
#define STATE_ROW(state, field)                                                                    \
    {                                                                                              \
        NULL, NULL, "certmq_connections", PROM_GAUGE,                                              \
            "Connections by state (hello: before a complete ClientHello; waiting: for a "          \
            "handshake slot; handshaking; checking: certificate-check plugins; open)",             \
            "state", state, CS32(field)                                                            \
    }

const struct stats_row stats_rows[] = {
    {"$SYS/broker/version", NULL, NULL, 0, NULL, NULL, NULL, STATS_VERSION, 0},
    {"$SYS/broker/uptime", " seconds", "certmq_uptime_seconds", PROM_GAUGE,
     "Seconds since the broker started", NULL, NULL, XS(uptime_s)},
    {"$SYS/broker/clients/connected", NULL, "certmq_clients_connected", PROM_GAUGE,
     "Clients with an MQTT session online", NULL, NULL, BS(clients_online)},
    {"$SYS/broker/clients/total", NULL, "certmq_sessions", PROM_GAUGE,
     "Sessions, online or offline", NULL, NULL, BS(sessions)},
    {"$SYS/broker/messages/received", NULL, NULL, 0, NULL, NULL, NULL, BS(msgs_received)},
    {"$SYS/broker/messages/sent", NULL, NULL, 0, NULL, NULL, NULL, BS(msgs_sent)},
    {"$SYS/broker/messages/dropped", NULL, "certmq_messages_dropped_total", PROM_COUNTER,
     "PUBLISHes dropped: a full session queue, too large for a subscriber, over "
     "message_size_limit, max_memory or an identity's publish rate",
     NULL, NULL, BS(msgs_dropped)},
    {"$SYS/broker/bytes/received", NULL, "certmq_network_received_bytes_total", PROM_COUNTER,
     "Bytes received on device connections (TLS records included)", NULL, NULL, CS(bytes_in)},
    {"$SYS/broker/bytes/sent", NULL, "certmq_network_sent_bytes_total", PROM_COUNTER,
     "Bytes sent on device connections (TLS records included)", NULL, NULL, CS(bytes_out)},
    {"$SYS/broker/subscriptions/count", NULL, "certmq_subscriptions", PROM_GAUGE,
     "Subscriptions in the topic tree", NULL, NULL, STATS_SUBSCRIPTIONS, 0},
    {"$SYS/broker/retained messages/count", NULL, "certmq_retained_messages", PROM_GAUGE,
     "Retained messages", NULL, NULL, STATS_RETAINED, 0},
    {"$SYS/broker/tls/handshakes", NULL, NULL, 0, NULL, NULL, NULL, CS(handshakes)},
    {NULL, NULL, "certmq_tls_handshakes_total", PROM_COUNTER,
     "TLS handshakes completed (every certificate check passed), full or resumed with a "
     "session ticket",
     "kind", "full", STATS_FULL, 0},
    {"$SYS/broker/tls/resumed", NULL, "certmq_tls_handshakes_total", PROM_COUNTER, NULL, "kind",
     "resumed", CS(resumed)},
    {"$SYS/broker/tls/refused", NULL, NULL, 0, NULL, NULL, NULL, CS(refused)},
    {"$SYS/broker/tls/disconnected/revoked", NULL, NULL, 0, NULL, NULL, NULL, STATS_REVOKED, 0},
    {NULL, NULL, "certmq_devices_disconnected_total", PROM_COUNTER,
     "Connected devices disconnected because their certificate was revoked (by a CRL reload, by "
     "a plugin such as OCSP) or expired",
     "reason", "revoked_crl", CS(untrusted[REASON_REVOKED_CRL])},
    {NULL, NULL, "certmq_devices_disconnected_total", PROM_COUNTER, NULL, "reason",
     "revoked_plugin", CS(untrusted[REASON_REVOKED_PLUGIN])},
    {"$SYS/broker/tls/disconnected/expired", NULL, "certmq_devices_disconnected_total",
     PROM_COUNTER, NULL, "reason", "expired", CS(untrusted[REASON_CERT_EXPIRED])},
    {"$SYS/broker/tls/expiring_soon", NULL, "certmq_tls_expiring_soon_total", PROM_COUNTER,
     "Connections made with a certificate that expires within cert_expiry_warning_days", NULL, NULL,
     CS(expiring_soon)},
    {"$SYS/broker/tls/chain_cache_hits", NULL, "certmq_tls_chain_cache_hits_total", PROM_COUNTER,
     "Full handshakes whose client chain was verified before on the current certificates", NULL,
     NULL, XS(chain_cache_hits)},
    {"$SYS/broker/tls/buffers_released", NULL, "certmq_tls_buffers_released_total", PROM_COUNTER,
     "Times an idle connection gave its TLS record buffers back", NULL, NULL, CS(parked)},
    {"$SYS/broker/proxy/connections", NULL, "certmq_proxy_connections_total", PROM_COUNTER,
     "PROXY v2 headers that named a device", NULL, NULL, CS(proxied)},
    {"$SYS/broker/proxy/health_checks", NULL, "certmq_proxy_health_checks_total", PROM_COUNTER,
     "PROXY v2 LOCAL connections (the proxy's health checks)", NULL, NULL, CS(proxy_checks)},
    {"$SYS/broker/memory/resident", NULL, "certmq_resident_memory_bytes", PROM_GAUGE,
     "Resident memory at the last max_memory check", NULL, NULL, XS(resident_bytes)},
    {"$SYS/broker/refused/memory", NULL, REFUSALS, PROM_COUNTER, REFUSALS_HELP, "reason",
     "max_memory", BS(memory_refused)},
    {"$SYS/broker/refused/sessions", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_persistent_sessions_per_identity", BS(sessions_refused)},
    {"$SYS/broker/refused/identity_connections", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_connections_per_identity", BS(connections_refused)},
    {"$SYS/broker/refused/retained", NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "retained_limit",
     BS(retained_refused)},
    {"$SYS/broker/refused/publish_rate", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_publish_rate_per_identity", BS(rate_refused)},
    {"$SYS/broker/refused/publish_byte_rate", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_publish_byte_rate_per_identity", BS(byte_rate_refused)},
    {"$SYS/broker/refused/identity_subscriptions", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_subscriptions_per_identity", BS(identity_subs_refused)},
    {"$SYS/broker/refused/identity_retained", NULL, REFUSALS, PROM_COUNTER, NULL, "reason",
     "max_retained_messages_per_identity", BS(identity_retained_refused)},
    /* metrics only */
    {NULL, NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "acl_publish", BS(publish_denied)},
    {NULL, NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "acl_subscribe", BS(subscribe_denied)},
    {NULL, NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "max_connections",
     XS(max_connections_refused)},
    {NULL, NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "max_connections_per_ip",
     CS(refused_per_ip)},
    {NULL, NULL, REFUSALS, PROM_COUNTER, NULL, "reason", "max_pending_per_ip",
     CS(refused_pending_per_ip)},
    QOS_ROWS("certmq_messages_received_total", "PUBLISHes accepted from clients, by QoS",
             msgs_received_qos),
    QOS_ROWS("certmq_messages_sent_total", "PUBLISHes delivered to clients, by QoS", msgs_sent_qos),
    QOS_ROWS("certmq_payload_received_bytes_total",
             "Topic and payload bytes of PUBLISHes received, by QoS", bytes_received_qos),
    QOS_ROWS("certmq_payload_sent_bytes_total",
             "PUBLISH bytes (header, topic, payload) delivered, by QoS", bytes_sent_qos),
    {NULL, NULL, "certmq_session_messages", PROM_GAUGE,
     "Messages held by sessions: queued (waiting for the in-flight window or an offline "
     "device) and in flight (sent, not yet acknowledged)",
     "state", "queued", STATS_QUEUED, 0},
    {NULL, NULL, "certmq_session_messages", PROM_GAUGE, NULL, "state", "inflight", STATS_INFLIGHT,
     0},
    {NULL, NULL, "certmq_subscriptions_retained_cut_total", PROM_COUNTER,
     "Subscriptions whose retained messages stopped at a full session queue", NULL, NULL,
     BS(retained_cut)},
    STATE_ROW("hello", hello),
    STATE_ROW("waiting", waiting),
    STATE_ROW("handshaking", handshaking),
    STATE_ROW("checking", checking),
    STATE_ROW("open", open),
    {NULL, NULL, "certmq_acl_reloads_total", PROM_COUNTER,
     "ACL file reloads, applied (ok) or refused with the previous rules kept (failed)", "result",
     "ok", XS(acl_reloads)},
    {NULL, NULL, "certmq_acl_reloads_total", PROM_COUNTER, NULL, "result", "failed",
     XS(acl_reload_failures)},
    {NULL, NULL, "certmq_tls_reloads_total", PROM_COUNTER,
     "Certificate and CRL reloads, applied (ok) or refused with the previous ones kept (failed)",
     "result", "ok", XS(tls_reloads)},
    {NULL, NULL, "certmq_tls_reloads_total", PROM_COUNTER, NULL, "result", "failed",
     XS(tls_reload_failures)},
    CLUSTER_ROW("connected", "link_up", PROM_GAUGE, "1 while both NATS connections are up",
                connected),
    CLUSTER_ROW("interests", "interests", PROM_GAUGE,
                "Filters and shared groups this node holds NATS interest for", interests),
    CLUSTER_ROW("messages/sent", "messages_sent_total", PROM_COUNTER,
                "Publishes sent to the other nodes through NATS", sent),
    CLUSTER_ROW("messages/send_failed", "messages_send_failed_total", PROM_COUNTER,
                "Publishes that could not be handed to NATS", send_failed),
    CLUSTER_ROW("messages/local_only", "messages_local_only_total", PROM_COUNTER,
                "Publishes delivered on this node only: topic too long for a NATS subject",
                dropped_long),
    CLUSTER_ROW("messages/received", "messages_received_total", PROM_COUNTER,
                "Valid messages received from other nodes", received),
    CLUSTER_ROW("messages/invalid", "messages_invalid_total", PROM_COUNTER,
                "Messages from NATS dropped: not a valid subject or envelope", bad_received),
    CLUSTER_ROW("messages/repeated", "messages_repeated_total", PROM_COUNTER,
                "Messages from NATS dropped: delivered here already (a durable publish sent "
                "again during a JetStream fail-over)",
                repeated),
    CLUSTER_ROW("messages/delivered", "messages_delivered_total", PROM_COUNTER,
                "Messages from other nodes delivered to at least one session here", delivered),
    CLUSTER_ROW("retained/ready", "retained_ready", PROM_GAUGE,
                "1 while the retained bucket feeds this node's retained store", retained_ready),
    CLUSTER_ROW("retained/writes", "retained_writes_total", PROM_COUNTER,
                "Retained sets and clears sent to the JetStream bucket", retained_writes),
    CLUSTER_ROW("retained/failed", "retained_failed_total", PROM_COUNTER,
                "Retained writes refused or not acknowledged by JetStream (stored nowhere)",
                retained_failed),
    CLUSTER_ROW("retained/applied", "retained_applied_total", PROM_COUNTER,
                "Updates from the retained bucket applied to this node's store", retained_applied),
    CLUSTER_ROW("retained/invalid", "retained_invalid_total", PROM_COUNTER,
                "Updates from the retained bucket ignored: not a valid key or envelope",
                retained_invalid),
    CLUSTER_ROW("retained/barriers_skipped", "retained_barriers_skipped_total", PROM_COUNTER,
                "Subscriptions answered from the local copy without the read barrier",
                barriers_skipped),
    CLUSTER_ROW("revocations/sent", "revocations_sent_total", PROM_COUNTER,
                "Certificate revocations announced to the other nodes", revocations_sent),
    CLUSTER_ROW("revocations/received", "revocations_received_total", PROM_COUNTER,
                "Valid certificate revocations announced by other nodes", revocations_received),
    CLUSTER_ROW("sessions/ready", "sessions_ready", PROM_GAUGE,
                "1 while session ownership works through JetStream", sessions_ready),
    CLUSTER_ROW("sessions/claims", "session_claims_total", PROM_COUNTER,
                "CONNECTs that asked the cluster for their session", sess.claims),
    CLUSTER_ROW("sessions/claims_failed", "session_claims_failed_total", PROM_COUNTER,
                "CONNECTs refused: JetStream silent, or a newer connection won",
                sess.claims_failed),
    CLUSTER_ROW("sessions/claim_races", "session_claim_races_total", PROM_COUNTER,
                "Session epochs another node created first (retried)", sess.claim_races),
    CLUSTER_ROW("sessions/unclaimed", "sessions_unclaimed_total", PROM_COUNTER,
                "CONNECTs served without a cluster-wide claim (JetStream unreachable)",
                sess.unclaimed),
    CLUSTER_ROW("sessions/takeovers_in", "session_takeovers_in_total", PROM_COUNTER,
                "Sessions handed over to this node by another", sess.takeovers_in),
    CLUSTER_ROW("sessions/takeovers_out", "session_takeovers_out_total", PROM_COUNTER,
                "Sessions this node handed over to another", sess.takeovers_out),
    CLUSTER_ROW("sessions/handover_timeouts", "session_handover_timeouts_total", PROM_COUNTER,
                "Previous owners that did not hand a session over in time", sess.handover_timeouts),
    CLUSTER_ROW("durable/ready", "durable_ready", PROM_GAUGE,
                "1 while the QoS >= 1 message stream takes messages (persistence true)",
                durable_ready),
    CLUSTER_ROW("durable/stored", "durable_stored_total", PROM_COUNTER,
                "QoS >= 1 publishes sent to the JetStream message stream", durable.stored),
    CLUSTER_ROW("durable/failed", "durable_failed_total", PROM_COUNTER,
                "QoS >= 1 publishes the message stream did not acknowledge (publisher told)",
                durable.failed),
    CLUSTER_ROW("durable/retried", "durable_retried_total", PROM_COUNTER,
                "QoS >= 1 publishes sent to the message stream again: no answer, or JetStream "
                "briefly unavailable (subscribers on other nodes may get them twice)",
                durable.retried),
    CLUSTER_ROW("sessions/fenced", "sessions_fenced_total", PROM_COUNTER,
                "Sessions dropped after a NATS outage: another node claimed them meanwhile",
                fenced),
    CLUSTER_ROW("sessions/handover_invalid", "session_handover_invalid_total", PROM_COUNTER,
                "Malformed session handovers or takeover requests", sess.handover_bad),
    CLUSTER_ROW("records/written", "session_records_written_total", PROM_COUNTER,
                "Session records written to JetStream for recovery by another node", rec.records),
    CLUSTER_ROW("records/invalid", "session_records_invalid_total", PROM_COUNTER,
                "Session records or heartbeats read back that were not valid", rec.records_bad),
    CLUSTER_ROW("sessions/recovered", "sessions_recovered_total", PROM_COUNTER,
                "Sessions rebuilt here from the record of a dead owner", rec.recovered),
    CLUSTER_ROW("nodes/dead", "nodes_dead_total", PROM_COUNTER,
                "Other nodes taken for dead (heartbeats stopped)", rec.nodes_dead),
    CLUSTER_ROW("nodes/adoptions", "node_adoptions_total", PROM_COUNTER,
                "Dead nodes whose offline sessions this node adopted", rec.adoptions),
    CLUSTER_ROW("sessions/adopted", "sessions_adopted_total", PROM_COUNTER,
                "Offline sessions of dead nodes adopted by this node", rec.adopted),
    CLUSTER_ROW("nodes/stalls", "node_stalls_total", PROM_COUNTER,
                "Times this node's loop stood still long enough to be taken for dead", rec.stalls),
    CLUSTER_ROW("replay/runs", "replays_total", PROM_COUNTER,
                "Replays of QoS >= 1 messages from JetStream after a failure", replay.replays),
    CLUSTER_ROW("replay/messages", "replayed_messages_total", PROM_COUNTER,
                "Deliveries queued again from JetStream (duplicates included)", replay.replayed),
    CLUSTER_ROW("replay/skipped", "replay_skipped_total", PROM_COUNTER,
                "Messages read back from JetStream but not delivered again: routing had delivered "
                "them on this node",
                replay.skipped),
};
const size_t stats_row_count = sizeof(stats_rows) / sizeof(stats_rows[0]);

static uint64_t field(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof(v));
    return v;
}

uint64_t stats_value(const struct stats_src *s, const struct stats_row *r)
{
    uint32_t v32;
    uint64_t queued, inflight;
    switch (r->src) {
    case STATS_BROKER:
        return field(broker_stats(s->b), r->off);
    case STATS_CONN:
        return field(s->cs, r->off);
    case STATS_CONN32:
        memcpy(&v32, (const char *)s->cs + r->off, sizeof(v32));
        return v32;
    case STATS_EXTRA:
        return field(s->x, r->off);
    case STATS_SUBSCRIPTIONS:
        return broker_subscription_count(s->b);
    case STATS_RETAINED:
        return broker_retained_count(s->b);
    case STATS_REVOKED:
        return s->cs->untrusted[REASON_REVOKED_CRL] + s->cs->untrusted[REASON_REVOKED_PLUGIN];
    case STATS_FULL:
        return s->cs->handshakes - s->cs->resumed;
    case STATS_QUEUED:
    case STATS_INFLIGHT:
        broker_queue_totals(s->b, &queued, &inflight);
        return r->src == STATS_QUEUED ? queued : inflight;
    case STATS_CLUSTER:
        return s->x->cluster ? field(s->x->cluster, r->off) : 0;
    case STATS_VERSION:
        break;
    }
    return 0;
}

bool stats_row_present(const struct stats_src *s, const struct stats_row *r)
{
    return r->src != STATS_CLUSTER || s->x->cluster != NULL;
}

void stats_reason_name(enum tls_reject r, char *out, size_t n)
{
    snprintf(out, n, "%s", tls_reject_str(r));
    for (char *p = out; *p; p++)
        if (*p == ' ')
            *p = '_';
}

/* The TLS refusal reasons as more samples of certmq_refusals_total. */
static void write_tls_reasons(struct buf *out, const struct stats_src *s)
{
    for (int r = 1; r < TLS_REJECT_COUNT; r++) {
        char name[48];
        stats_reason_name((enum tls_reject)r, name, sizeof(name));
        for (char *p = name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        uint64_t v = s->cs->refused_by[r];
        /* conn counts the per-address limits as handshake failures ($SYS keeps that); here they
         * have reasons of their own, so that the family sums to every refusal once. */
        if (r == TLS_REJECT_HANDSHAKE)
            v -= s->cs->refused_per_ip + s->cs->refused_pending_per_ip;
        struct prom_labels l = {{"reason"}, {name}};
        prom_u64(out, REFUSALS, &l, v);
    }
}

static bool announced_before(size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (stats_rows[k].metric && !strcmp(stats_rows[k].metric, stats_rows[i].metric))
            return true;
    return false;
}

void stats_write_metrics(struct buf *out, const struct stats_src *s)
{
    for (size_t i = 0; i < stats_row_count; i++) {
        const struct stats_row *r = &stats_rows[i];
        if (!r->metric || announced_before(i) || !stats_row_present(s, r))
            continue;
        prom_family(out, r->metric, r->type, r->help ? r->help : "");
        for (size_t k = i; k < stats_row_count; k++) {
            const struct stats_row *q = &stats_rows[k];
            if (!q->metric || strcmp(q->metric, r->metric) != 0)
                continue;
            struct prom_labels l = {{q->label}, {q->label_value}};
            prom_u64(out, q->metric, q->label ? &l : NULL, stats_value(s, q));
        }
        if (!strcmp(r->metric, REFUSALS))
            write_tls_reasons(out, s);
    }
}
