/* stats: the table both $SYS and the metrics endpoint read. Every metric name is valid, counters
 * end in _total and nothing else does, a family keeps one type and has its help on its first
 * row, labels are valid; the exposition of a broker's counters has each family announced once,
 * the per-QoS and per-reason samples, and the value a counter holds. */
#include "check.h"
#include "stats.h"

#include <stdio.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void test_table(void)
{
    for (size_t i = 0; i < stats_row_count; i++) {
        const struct stats_row *r = &stats_rows[i];
        CHECK(r->topic || r->metric);
        if (!r->metric)
            continue;
        CHECK(prom_name_valid(r->metric, false));
        CHECK(strncmp(r->metric, "certmq_", 7) == 0);
        CHECK(ends_with(r->metric, "_total") == (r->type == PROM_COUNTER));
        CHECK(!r->label || (prom_name_valid(r->label, true) && r->label_value));
        bool first = true;
        for (size_t k = 0; k < i; k++) {
            const struct stats_row *q = &stats_rows[k];
            if (!q->metric || strcmp(q->metric, r->metric) != 0)
                continue;
            first = false;
            CHECK(q->type == r->type);
            CHECK((q->label == NULL) == (r->label == NULL));
            CHECK(!r->label || strcmp(q->label_value, r->label_value) != 0);
        }
        if (first && !r->help)
            fprintf(stderr, "%s: no help on its first row\n", r->metric);
        CHECK(!first || r->help);
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_exposition(void)
{
    struct broker_limits l = {.session = {.max_inflight = 10, .max_queued = 100},
                              .max_topic_length = 65535};
    struct broker *b = broker_new(&l);
    broker_stats(b)->msgs_received_qos[1] = 7;
    broker_stats(b)->publish_denied = 3;
    struct conn_stats cs;
    memset(&cs, 0, sizeof(cs));
    cs.handshakes = 10;
    cs.resumed = 4;
    cs.refused_by[TLS_REJECT_UNKNOWN_CA] = 2;
    cs.refused_by[TLS_REJECT_HANDSHAKE] = 9;
    cs.refused_per_ip = 3;
    cs.refused_pending_per_ip = 1;
    cs.untrusted[REASON_CERT_EXPIRED] = 5;
    cs.open = 6;
    struct stats_extra x = {.acl_reload_failures = 1};
    struct stats_src src = {.b = b, .cs = &cs, .x = &x};
    struct buf out;
    buf_init(&out);
    stats_write_metrics(&out, &src);
    buf_append(&out, "", 1);
    const char *t = (const char *)buf_head(&out);
    CHECK_EQ_INT(count(t, "# TYPE certmq_refusals_total counter\n"), 1);
    CHECK_EQ_INT(count(t, "# TYPE certmq_messages_received_total counter\n"), 1);
    CHECK(strstr(t, "\ncertmq_messages_received_total{qos=\"1\"} 7\n"));
    CHECK(strstr(t, "\ncertmq_refusals_total{reason=\"acl_publish\"} 3\n"));
    CHECK(strstr(t, "\ncertmq_refusals_total{reason=\"unknown_ca\"} 2\n"));
    CHECK(strstr(t, "\ncertmq_refusals_total{reason=\"refused_by_plugin\"} 0\n"));
    /* The per-address limits have their own reasons, not also handshake_failed. */
    CHECK(strstr(t, "\ncertmq_refusals_total{reason=\"handshake_failed\"} 5\n"));
    CHECK(strstr(t, "\ncertmq_refusals_total{reason=\"max_connections_per_ip\"} 3\n"));
    CHECK(strstr(t, "\ncertmq_tls_handshakes_total{kind=\"full\"} 6\n"));
    CHECK(strstr(t, "\ncertmq_tls_handshakes_total{kind=\"resumed\"} 4\n"));
    CHECK(strstr(t, "\ncertmq_devices_disconnected_total{reason=\"expired\"} 5\n"));
    CHECK(strstr(t, "\ncertmq_connections{state=\"open\"} 6\n"));
    CHECK(strstr(t, "\ncertmq_acl_reloads_total{result=\"failed\"} 1\n"));
    /* The refusal reasons follow the table's rows inside the one family. */
    const char *fam = strstr(t, "# TYPE certmq_refusals_total");
    const char *next = fam ? strstr(fam + 1, "# HELP") : NULL;
    const char *reason = strstr(t, "reason=\"unknown_ca\"");
    CHECK(fam && reason && reason > fam && (!next || reason < next));
    char name[48];
    stats_reason_name(TLS_REJECT_UNKNOWN_CA, name, sizeof(name));
    CHECK_EQ_STR(name, "unknown_CA");
    buf_free(&out);
    broker_free(b);
}

int main(void)
{
    test_table();
    test_exposition();
    return check_finish("stats_test");
}
