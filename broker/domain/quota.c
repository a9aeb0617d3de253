/* quota: per-identity limits and the token-bucket arithmetic behind the publish rates. */
#include "quota.h"

#include "acl.h"

/* Refill b as of now: rate thousandths per ms, up to the bucket's size. The room left (the
 * size plus any debt) bounds elapsed x rate before it is formed, so a gap of any length fills
 * the bucket without overflowing, and a debt is repaid in full first. */
static void refill(struct quota_bucket *b, uint64_t rate, uint32_t burst_s, uint64_t now)
{
    int64_t cap = (int64_t)(rate * burst_s * 1000);
    if (!b->at) {
        b->milli = cap;
        b->at = now ? now : 1;
        return;
    }
    if (b->milli > cap) /* the limit was lowered since (an ACL reload): no more than a bucket */
        b->milli = cap;
    if (now <= b->at) /* the same ms, or a clock that went back: nothing to add */
        return;
    uint64_t elapsed = now - b->at, room = (uint64_t)(cap - b->milli);
    b->at = now;
    if (elapsed > room / rate)
        b->milli = cap;
    else
        b->milli += (int64_t)(elapsed * rate);
}

/* May b pay cost thousandths now? At most the whole bucket is asked for (see quota.h). */
static bool affords(const struct quota_bucket *b, uint64_t rate, uint32_t burst_s, uint64_t cost)
{
    uint64_t cap = rate * burst_s * 1000;
    return b->milli >= (int64_t)(cost < cap ? cost : cap);
}

bool quota_bucket_take(struct quota_bucket *b, uint64_t rate, uint32_t burst_s, uint64_t cost,
                       uint64_t now)
{
    if (!rate)
        return true;
    refill(b, rate, burst_s, now);
    if (!affords(b, rate, burst_s, cost * 1000))
        return false;
    b->milli -= (int64_t)(cost * 1000);
    return true;
}

enum quota_verdict quota_publish(struct quota_meter *m, const struct quota_limits *l,
                                 uint32_t burst_s, uint32_t payload, uint64_t now)
{
    if (l->rate) {
        refill(&m->msgs, l->rate, burst_s, now);
        if (!affords(&m->msgs, l->rate, burst_s, 1000))
            return QUOTA_RATE;
    }
    if (l->byte_rate) {
        refill(&m->bytes, l->byte_rate, burst_s, now);
        if (!affords(&m->bytes, l->byte_rate, burst_s, (uint64_t)payload * 1000))
            return QUOTA_BYTE_RATE;
        m->bytes.milli -= (int64_t)payload * 1000;
    }
    if (l->rate)
        m->msgs.milli -= 1000;
    return QUOTA_OK;
}

static bool bucket_rested(struct quota_bucket b, uint64_t rate, uint32_t burst_s, uint64_t now)
{
    if (!rate || !b.at)
        return true;
    refill(&b, rate, burst_s, now);
    return b.milli >= (int64_t)(rate * burst_s * 1000);
}

bool quota_meter_rested(const struct quota_meter *m, const struct quota_limits *l, uint32_t burst_s,
                        uint64_t now)
{
    return bucket_rested(m->msgs, l->rate, burst_s, now) &&
           bucket_rested(m->bytes, l->byte_rate, burst_s, now);
}

void quota_resolve(struct quota_limits *out, const struct quota_limits *defaults,
                   const struct acl *a, const struct certattrs *attrs)
{
    *out = *defaults;
    if (!a)
        return;
    acl_limit(a, attrs, ACL_LIMIT_RATE, &out->rate);
    acl_limit(a, attrs, ACL_LIMIT_BYTE_RATE, &out->byte_rate);
    acl_limit(a, attrs, ACL_LIMIT_SUBSCRIPTIONS, &out->subscriptions);
    acl_limit(a, attrs, ACL_LIMIT_RETAINED, &out->retained);
}

bool quota_rates_used(const struct quota_limits *defaults, const struct acl *a)
{
    return defaults->rate || defaults->byte_rate ||
           (a && (acl_limit_used(a, ACL_LIMIT_RATE) || acl_limit_used(a, ACL_LIMIT_BYTE_RATE)));
}
