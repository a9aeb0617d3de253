/* sys: $SYS topics from the stats table (stats.c): every row with a topic is published, its
 * number in decimal with the row's suffix; refusals per reason are one topic per tls_reject
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

void sys_publish(struct broker *b, const struct conn_stats *cs, const struct stats_extra *x,
                 int64_t now)
{
    const struct stats_src src = {.b = b, .cs = cs, .x = x};
    char payload[SYS_PAYLOAD_MAX];
    for (size_t i = 0; i < stats_row_count; i++) {
        const struct stats_row *r = &stats_rows[i];
        if (!r->topic || !stats_row_present(&src, r))
            continue;
        if (r->src == STATS_VERSION)
            snprintf(payload, sizeof(payload), "certmq %s", CERTMQ_VERSION);
        else
            snprintf(payload, sizeof(payload), "%" PRIu64 "%s", stats_value(&src, r),
                     r->suffix ? r->suffix : "");
        sys_pub(b, r->topic, payload, now);
    }
    for (int r = 1; r < TLS_REJECT_COUNT; r++) {
        char topic[SYS_TOPIC_MAX], name[48];
        stats_reason_name((enum tls_reject)r, name, sizeof(name));
        snprintf(topic, sizeof(topic), "$SYS/broker/tls/refused/%s", name);
        snprintf(payload, sizeof(payload), "%" PRIu64, cs->refused_by[r]);
        sys_pub(b, topic, payload, now);
    }
}
