/* jsreply: the numbers certmq reads from JetStream replies (publish ack, stream info, errors)
 * are found at their paths and nowhere else; anything that is not one complete JSON object is
 * refused; $JS.ACK subjects give their stream and consumer sequences in both layouts. */
#include "check.h"
#include "jsreply.h"

#include <stdint.h>
#include <string.h>

static int parse(const char *s, struct jsreply *r)
{
    return jsreply_parse(s, strlen(s), r);
}

static void test_pub_ack(void)
{
    struct jsreply r;
    CHECK_EQ_INT(parse("{\"stream\":\"KV_cmq_ret_t\",\"seq\":18446744073709551615}", &r), 0);
    CHECK(r.has_seq && r.seq == UINT64_MAX);
    CHECK(!r.has_error && !r.has_last_seq);
    CHECK_EQ_INT(parse(" {\"stream\":\"x\", \"seq\" : 7, \"duplicate\": true}\n", &r), 0);
    CHECK(r.has_seq && r.seq == 7);
    /* too large, negative, fractional: valid JSON, not a sequence */
    CHECK_EQ_INT(parse("{\"seq\":18446744073709551616}", &r), 0);
    CHECK(!r.has_seq);
    CHECK_EQ_INT(parse("{\"seq\":-1}", &r), 0);
    CHECK(!r.has_seq);
    CHECK_EQ_INT(parse("{\"seq\":1.5e3}", &r), 0);
    CHECK(!r.has_seq);
}

static void test_stream_info(void)
{
    struct jsreply r;
    const char *info = "{\"type\":\"io.nats.jetstream.api.v1.stream_info_response\",\"config\":{"
                       "\"name\":\"KV_x\",\"subjects\":[\"$KV.x.\\u003e\"],\"seq\":99,"
                       "\"last_seq\":98},\"created\":\"2026-01-01T00:00:00Z\",\"state\":{"
                       "\"messages\":3,\"bytes\":10,\"first_seq\":1,\"last_seq\":42,"
                       "\"consumer_count\":0,\"deleted\":[2,3]},\"cluster\":null}";
    CHECK_EQ_INT(parse(info, &r), 0);
    CHECK(r.has_last_seq && r.last_seq == 42);
    CHECK(!r.has_seq); /* "config"."seq" is not the top-level one */
}

static void test_error(void)
{
    struct jsreply r;
    CHECK_EQ_INT(parse("{\"type\":\"t\",\"error\":{\"code\":400,\"err_code\":10058,"
                       "\"description\":\"stream name already in use\"}}",
                       &r),
                 0);
    CHECK(r.has_error && r.err_code == 10058 && r.code == 400);
    CHECK_EQ_INT(parse("{\"error\":{}}", &r), 0);
    CHECK(r.has_error && r.err_code == 0);
}

static void test_invalid(void)
{
    struct jsreply r;
    const char *bad[] = {"",
                         "[]",
                         "{",
                         "{\"seq\":1",
                         "{\"seq\":01}",
                         "{\"seq\":}",
                         "{\"a\":\"\\x\"}",
                         "{\"a\":\"\x01\"}",
                         "{\"a\":tru}",
                         "{\"a\":1,}",
                         "{\"a\":1} x",
                         "{\"a\":\"\\u12\"}",
                         "{'a':1}",
                         "{\"a\":1e}",
                         "{\"a\":-}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(parse(bad[i], &r), -1);
    char deep[200] = "{\"a\":";
    size_t n = strlen(deep);
    for (int i = 0; i < JSREPLY_MAX_DEPTH + 1; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSREPLY_MAX_DEPTH + 1; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    CHECK_EQ_INT(jsreply_parse(deep, n, &r), -1);
    /* embedded NUL: not JSON */
    CHECK_EQ_INT(jsreply_parse("{\"a\":1}\0", 8, &r), -1);
}

static void test_ack_subjects(void)
{
    uint64_t s = 0, c = 0;
    const char *a = "$JS.ACK.KV_x.abc.1.42.7.1700000000000000000.0";
    CHECK_EQ_INT(jsreply_ack_seqs(a, strlen(a), &s, &c), 0);
    CHECK(s == 42 && c == 7);
    const char *b = "$JS.ACK.dom.hash.KV_x.abc.1.43.8.1700000000000000000.0.tok";
    CHECK_EQ_INT(jsreply_ack_seqs(b, strlen(b), &s, &c), 0);
    CHECK(s == 43 && c == 8);
    const char *bad[] = {"$JS.ACK.KV_x.abc.1.42.7.1",
                         "$JS.ACK.KV_x.abc.1.042.7.1.0",
                         "$JS.ACK.KV_x.abc.1..7.1.0",
                         "$JS.NAK.KV_x.abc.1.42.7.1.0",
                         "$JS.ACK.KV_x.abc.1.42.99999999999999999999.1.0",
                         "$JS.ACK.KV_x.abc.1.42.7.1.0.",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(jsreply_ack_seqs(bad[i], strlen(bad[i]), &s, &c), -1);
    struct jsack k;
    CHECK_EQ_INT(jsreply_ack_meta(b, strlen(b), &k), 0);
    CHECK(k.sseq == 43 && k.cseq == 8 && k.ts_ns == 1700000000000000000ull && k.pending == 0);
    const char *p = "$JS.ACK.CMQ_Q_x.c.1.9.3.1700000000000000001.17";
    CHECK_EQ_INT(jsreply_ack_meta(p, strlen(p), &k), 0);
    CHECK(k.sseq == 9 && k.ts_ns == 1700000000000000001ull && k.pending == 17);
}

static void test_consumer_created(void)
{
    struct jsreply r;
    const char *j =
        "{\"type\":\"io.nats.jetstream.api.v1.consumer_create_response\",\"stream_name\":"
        "\"S\",\"config\":{\"num_pending\":5},\"num_pending\":12,\"num_ack_pending\":0}";
    CHECK_EQ_INT(jsreply_parse(j, strlen(j), &r), 0);
    CHECK(r.has_num_pending && r.num_pending == 12); /* only the top-level one */
}

int main(void)
{
    test_pub_ack();
    test_stream_info();
    test_error();
    test_invalid();
    test_ack_subjects();
    test_consumer_created();
    return check_finish("jsreply");
}
