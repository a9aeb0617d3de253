/* prom: families, samples with and without labels, escaping of label values and HELP text,
 * histograms (cumulative buckets, +Inf, sum scaled to seconds, count), and name validation, each
 * compared with the exact text Prometheus's format 0.0.4 expects. */
#include "check.h"
#include "prom.h"

#include <math.h>
#include <string.h>

static const char *text(struct buf *b)
{
    buf_append(b, "", 1);
    return (const char *)buf_head(b);
}

static void test_samples(void)
{
    struct buf b;
    buf_init(&b);
    prom_family(&b, "certmq_x_total", PROM_COUNTER, "Things.\nMore \\ text");
    prom_u64(&b, "certmq_x_total", NULL, 42);
    struct prom_labels l = {{"reason", "listener"}, {"a\"b\\c\nd", "8883"}};
    prom_u64(&b, "certmq_x_total", &l, 18446744073709551615ull);
    struct prom_labels one = {{"file"}, {"/etc/crl.pem"}};
    prom_double(&b, "certmq_g", &one, -1.5);
    prom_double(&b, "certmq_g", NULL, INFINITY);
    CHECK_EQ_STR(text(&b), "# HELP certmq_x_total Things.\\nMore \\\\ text\n"
                           "# TYPE certmq_x_total counter\n"
                           "certmq_x_total 42\n"
                           "certmq_x_total{reason=\"a\\\"b\\\\c\\nd\",listener=\"8883\"} "
                           "18446744073709551615\n"
                           "certmq_g{file=\"/etc/crl.pem\"} -1.5\n"
                           "certmq_g +Inf\n");
    buf_free(&b);
}

static void test_hist(void)
{
    static const uint64_t bounds[] = {1000, 5000, 25000};
    struct hist h;
    hist_init(&h, bounds, 3);
    hist_observe(&h, 0);
    hist_observe(&h, 1000);
    hist_observe(&h, 1001);
    hist_observe(&h, 100000);
    CHECK_EQ_INT(hist_count(&h), 4);
    struct buf b;
    buf_init(&b);
    struct prom_labels l = {{"kind"}, {"full"}};
    prom_hist(&b, "certmq_h_seconds", &l, &h, 1e6);
    CHECK_EQ_STR(text(&b), "certmq_h_seconds_bucket{kind=\"full\",le=\"0.001\"} 2\n"
                           "certmq_h_seconds_bucket{kind=\"full\",le=\"0.005\"} 3\n"
                           "certmq_h_seconds_bucket{kind=\"full\",le=\"0.025\"} 3\n"
                           "certmq_h_seconds_bucket{kind=\"full\",le=\"+Inf\"} 4\n"
                           "certmq_h_seconds_sum{kind=\"full\"} 0.102001\n"
                           "certmq_h_seconds_count{kind=\"full\"} 4\n");
    buf_free(&b);
}

static void test_names(void)
{
    CHECK(prom_name_valid("certmq_ocsp_requests_total", false));
    CHECK(prom_name_valid("a:b_c9", false));
    CHECK(!prom_name_valid("a:b", true));
    CHECK(!prom_name_valid("9a", false));
    CHECK(!prom_name_valid("", false));
    CHECK(!prom_name_valid("a-b", false));
    CHECK(!prom_name_valid("a b", true));
    CHECK(!prom_name_valid(NULL, true));
}

int main(void)
{
    test_samples();
    test_hist();
    test_names();
    return check_finish("prom_test");
}
