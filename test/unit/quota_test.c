/* quota: token-bucket arithmetic (burst, refill, debt for messages larger than the bucket,
 * large and backward time gaps, the bounds' extremes) and limits resolved from match blocks. */
#include "acl_util.h"
#include "check.h"
#include "quota.h"

#include <stdint.h>
#include <string.h>

/* How many unit-cost takes succeed at now, one after another. */
static int drain(struct quota_bucket *b, uint64_t rate, uint32_t burst_s, uint64_t now)
{
    int n = 0;
    while (n < 1000000 && quota_bucket_take(b, rate, burst_s, 1, now))
        n++;
    return n;
}

static void test_burst_and_refill(void)
{
    struct quota_bucket b = {0};
    /* Starts full: one second's worth at burst 1, three at burst 3. */
    CHECK_EQ_INT(drain(&b, 10, 1, 5000), 10);
    struct quota_bucket b3 = {0};
    CHECK_EQ_INT(drain(&b3, 10, 3, 5000), 30);
    /* 10/s = one per 100 ms: 99 ms give nothing, 100 ms give one. */
    CHECK(!quota_bucket_take(&b, 10, 1, 1, 5099));
    CHECK(quota_bucket_take(&b, 10, 1, 1, 5100));
    CHECK(!quota_bucket_take(&b, 10, 1, 1, 5100));
    /* Refill is capped at the burst however long the pause. */
    CHECK_EQ_INT(drain(&b, 10, 1, 9000), 10);
    /* Fractions accumulate across calls: 3 x 40 ms = 1.2 tokens at 10/s. */
    CHECK(!quota_bucket_take(&b, 10, 1, 1, 9040));
    CHECK(!quota_bucket_take(&b, 10, 1, 1, 9080));
    CHECK(quota_bucket_take(&b, 10, 1, 1, 9120));
    /* A lower rate since (an ACL reload): the bucket shrinks to its new size at once. */
    struct quota_bucket lo = {0};
    CHECK(quota_bucket_take(&lo, 100, 1, 1, 1000));
    CHECK_EQ_INT(drain(&lo, 10, 1, 1000), 10);
    CHECK_EQ_INT(drain(&lo, 10, 1, 1500), 5);
    /* rate 0 = unlimited. */
    struct quota_bucket u = {0};
    CHECK_EQ_INT(drain(&u, 0, 1, 1), 1000000);
}

static void test_time_gaps(void)
{
    struct quota_bucket b = {0};
    uint64_t t = UINT64_MAX - 5000; /* uv_now never wraps; a huge value must not overflow */
    CHECK_EQ_INT(drain(&b, 1000, 1, t), 1000);
    CHECK(!quota_bucket_take(&b, 1000, 1, 1, t - 1000000)); /* backwards: adds nothing */
    CHECK(quota_bucket_take(&b, 1000, 1, 1, t + 1));        /* time moved on from where it was */
    CHECK_EQ_INT(drain(&b, 1000, 1, UINT64_MAX), 1000);     /* a gap of anything: just full */
    /* First use at time 0 (a test loop), then a gap of 2^63 ms. */
    struct quota_bucket z = {0};
    CHECK_EQ_INT(drain(&z, 5, 1, 0), 5);
    CHECK_EQ_INT(drain(&z, 5, 1, (uint64_t)1 << 63), 5);
    /* The bounds' extreme: the largest byte rate and burst in int64 without overflow. */
    struct quota_bucket x = {0};
    CHECK(quota_bucket_take(&x, QUOTA_MAX_BYTE_RATE, QUOTA_MAX_BURST_S,
                            QUOTA_MAX_BYTE_RATE * QUOTA_MAX_BURST_S, 10));
    CHECK(!quota_bucket_take(&x, QUOTA_MAX_BYTE_RATE, QUOTA_MAX_BURST_S, 1, 10));
    CHECK(quota_bucket_take(&x, QUOTA_MAX_BYTE_RATE, QUOTA_MAX_BURST_S, 1,
                            10 + (uint64_t)QUOTA_MAX_BURST_S * 1000 - 1));
    CHECK(x.milli > 0);
}

/* A cost larger than the bucket passes when the bucket is full, and the debt is repaid. */
static void test_debt(void)
{
    struct quota_bucket b = {0};
    CHECK(quota_bucket_take(&b, 100, 1, 250, 1000)); /* 250 bytes, bucket of 100: in debt 150 */
    CHECK(!quota_bucket_take(&b, 100, 1, 1, 2000));  /* 1 s later: back to -50 */
    CHECK(!quota_bucket_take(&b, 100, 1, 1, 2499));
    CHECK(quota_bucket_take(&b, 100, 1, 1, 2510)); /* +1 */
    CHECK(!quota_bucket_take(&b, 100, 1, 250, 2600));
    CHECK(quota_bucket_take(&b, 100, 1, 250, 4000)); /* full again: the big one passes */
}

static void test_publish(void)
{
    struct quota_meter m = {0};
    struct quota_limits l = {.rate = 5, .byte_rate = 1000};
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += quota_publish(&m, &l, 1, 100, 1) == QUOTA_OK;
    CHECK_EQ_INT(ok, 5);
    CHECK_EQ_INT(quota_publish(&m, &l, 1, 0, 1), QUOTA_RATE);
    /* Byte bucket refused: the message bucket is not charged either. */
    m = (struct quota_meter){0};
    CHECK_EQ_INT(quota_publish(&m, &l, 1, 900, 1), QUOTA_OK);
    CHECK_EQ_INT(quota_publish(&m, &l, 1, 200, 1), QUOTA_BYTE_RATE);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(quota_publish(&m, &l, 1, 10, 1), QUOTA_OK);
    CHECK_EQ_INT(quota_publish(&m, &l, 1, 10, 1), QUOTA_RATE);
    /* Only a byte rate. */
    m = (struct quota_meter){0};
    l = (struct quota_limits){.byte_rate = 100};
    CHECK_EQ_INT(quota_publish(&m, &l, 2, 200, 1), QUOTA_OK);
    CHECK_EQ_INT(quota_publish(&m, &l, 2, 1, 1), QUOTA_BYTE_RATE);
    /* Rested: both buckets full again (the byte bucket refills 200 in 2 s at 100/s). */
    CHECK(!quota_meter_rested(&m, &l, 2, 1001));
    CHECK(quota_meter_rested(&m, &l, 2, 2001));
    l = (struct quota_limits){0};
    CHECK(quota_meter_rested(&m, &l, 2, 1)); /* no limit: nothing to remember */
    CHECK_EQ_INT(quota_publish(&m, &l, 1, 1u << 30, 1), QUOTA_OK);
}

static void test_resolve(void)
{
    struct acl *a = parse("match ou=sensors\n"
                          "limit max_publish_rate_per_identity 2\n"
                          "limit max_subscriptions_per_identity 4\n"
                          "match ou=gateways\n"
                          "limit max_publish_rate_per_identity 200\n"
                          "limit max_publish_byte_rate_per_identity 1000000000000\n"
                          "limit max_retained_messages_per_identity 0\n");
    CHECK(a != NULL);
    const struct quota_limits def = {
        .rate = 10, .byte_rate = 5000, .subscriptions = 50, .retained = 20};
    struct quota_limits l;
    struct certattrs *s = attrs("ou=sensors");
    quota_resolve(&l, &def, a, s);
    CHECK(l.rate == 2 && l.byte_rate == 5000 && l.subscriptions == 4 && l.retained == 20);
    struct certattrs *g = attrs("ou=gateways");
    quota_resolve(&l, &def, a, g);
    CHECK(l.rate == 200 && l.byte_rate == 1000000000000ULL && l.subscriptions == 50 &&
          l.retained == 0);
    /* A device of both kinds gets the larger allowance of each block that sets it; a block's
     * value replaces certmq.conf's, even when smaller. */
    g = certattrs_add(g, CERTATTR_OU, "sensors", 7);
    quota_resolve(&l, &def, a, g);
    CHECK(l.rate == 200 && l.subscriptions == 4 && l.retained == 0);
    quota_resolve(&l, &def, NULL, s); /* no ACL: the defaults */
    CHECK(!memcmp(&l, &def, sizeof(l)));
    quota_resolve(&l, &def, a, NULL);
    CHECK(!memcmp(&l, &def, sizeof(l)));
    /* Rates in use: a default, or any block setting one. */
    const struct quota_limits none = {.subscriptions = 3};
    CHECK(quota_rates_used(&def, NULL));
    CHECK(!quota_rates_used(&none, NULL));
    CHECK(quota_rates_used(&none, a));
    struct acl *subs_only = parse("match ou=x\nlimit max_subscriptions_per_identity 1\n");
    CHECK(!quota_rates_used(&none, subs_only));
    acl_free(subs_only);
    certattrs_free(s);
    certattrs_free(g);
    acl_free(a);
}

int main(void)
{
    test_burst_and_refill();
    test_time_gaps();
    test_debt();
    test_publish();
    test_resolve();
    return check_finish("quota_test");
}
