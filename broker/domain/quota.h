/* quota: what one certificate identity may do across all its connections and sessions, and the
 * token buckets that meter its publishes.
 *
 * The limits come from certmq.conf and may be overridden per kind of device by the ACL file's
 * `match` blocks (`limit NAME VALUE`, largest allowance wins); they are resolved once when a
 * client connects (and on an ACL reload), never per message. A bucket is refilled lazily from
 * the time of the publish that draws on it: no timer, no allocation. Pure: time is passed in,
 * no I/O, no clock. */
#ifndef CERTMQ_QUOTA_H
#define CERTMQ_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

struct acl;
struct certattrs;

/* Bounds of the rates (config and ACL alike); with burst_s <= QUOTA_MAX_BURST_S the bucket
 * arithmetic stays inside int64_t (QUOTA_MAX_BYTE_RATE x burst x 1000 x 2 < 2^63). */
#define QUOTA_MAX_RATE 10000000ULL
#define QUOTA_MAX_BYTE_RATE 1000000000000ULL
#define QUOTA_MAX_BURST_S 3600

/* One identity's limits in force; 0 = unlimited. */
struct quota_limits {
    uint64_t rate;          /* publishes per second */
    uint64_t byte_rate;     /* payload bytes per second */
    uint64_t subscriptions; /* subscriptions across its sessions */
    uint64_t retained;      /* retained messages it set */
};

/* A token bucket in thousandths of a token, so that a rate of r per second adds exactly r
 * thousandths per millisecond. tokens may go negative: see quota_bucket_take. */
struct quota_bucket {
    int64_t milli;
    uint64_t at; /* ms of the last refill; 0 = never used (starts full) */
};

/* One identity's meters. */
struct quota_meter {
    struct quota_bucket msgs, bytes;
};

/* Refill b at rate per second up to burst_s seconds' worth, as of now (ms, monotonic; a gap of
 * any length, or time standing still or going back, is fine), then take cost if the bucket
 * holds it. A cost larger than the whole bucket (a message bigger than burst_s x byte rate)
 * passes once the bucket is full and leaves it in debt, so it is never refused forever and the
 * average rate still holds. rate 0 = unlimited (true, nothing kept). */
bool quota_bucket_take(struct quota_bucket *b, uint64_t rate, uint32_t burst_s, uint64_t cost,
                       uint64_t now);

enum quota_verdict {
    QUOTA_OK = 0,
    QUOTA_RATE,      /* the publish rate is exceeded */
    QUOTA_BYTE_RATE, /* the payload byte rate is exceeded */
};
/* One publish of payload bytes at now: both buckets are drawn on, or neither. */
enum quota_verdict quota_publish(struct quota_meter *m, const struct quota_limits *l,
                                 uint32_t burst_s, uint32_t payload, uint64_t now);

/* Would both of m's buckets be full at now (nothing to remember any more)? */
bool quota_meter_rested(const struct quota_meter *m, const struct quota_limits *l, uint32_t burst_s,
                        uint64_t now);

/* The limits for a certificate with these attributes: defaults (certmq.conf), each replaced
 * by the ACL's match blocks that set it (a may be NULL). */
void quota_resolve(struct quota_limits *out, const struct quota_limits *defaults,
                   const struct acl *a, const struct certattrs *attrs);
/* Does anything meter publishes: a rate default, or a match block setting a rate? False makes
 * the publish path's check a single branch. */
bool quota_rates_used(const struct quota_limits *defaults, const struct acl *a);

#endif
