/* sessrec: a record and a heartbeat survive encode -> decode; a gone record carries no chunk;
 * every truncation, a bad version or flag, epoch 0, a bad node name, invalid UTF-8 and an empty
 * identity are refused. */
#include "check.h"
#include "sessrec.h"

#include <string.h>

static size_t sample(uint8_t *out, size_t cap, uint8_t flags, const char *node, const char *id)
{
    static const uint8_t chunk[] = {1, 1, 0, 0, 0, 0, 'H', 5, 1, 0, 0, 0, 60};
    struct sessrec r = {.flags = flags,
                        .epoch = 7,
                        .since_ms = 1700000000123,
                        .node = node,
                        .node_len = strlen(node),
                        .identity = id,
                        .identity_len = strlen(id),
                        .client_id = "cid-1",
                        .client_id_len = 5,
                        .chunk = (flags & SESSREC_GONE) ? NULL : chunk,
                        .chunk_len = (flags & SESSREC_GONE) ? 0 : sizeof(chunk)};
    return sessrec_encode(&r, out, cap);
}

static void test_round_trip(void)
{
    uint8_t buf[256];
    size_t n = sample(buf, sizeof(buf), SESSREC_ONLINE, "node-1", "device-7");
    CHECK(n > 0);
    CHECK_EQ_INT((int)sample(buf, n - 1, SESSREC_ONLINE, "node-1", "device-7"), 0);
    struct sessrec r;
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), 0);
    CHECK(r.flags == SESSREC_ONLINE && r.epoch == 7 && r.since_ms == 1700000000123);
    CHECK(r.node_len == 6 && !memcmp(r.node, "node-1", 6));
    CHECK(r.identity_len == 8 && !memcmp(r.identity, "device-7", 8));
    CHECK(r.client_id_len == 5 && !memcmp(r.client_id, "cid-1", 5));
    CHECK(r.chunk_len == 13 && r.chunk[6] == 'H');
    CHECK(!r.has_will);
    for (size_t cut = 0; cut < n; cut++)
        CHECK_EQ_INT(sessrec_decode(buf, cut, &r), -1);
    buf[n] = 0; /* one byte after the chunk: a will too short */
    CHECK_EQ_INT(sessrec_decode(buf, n + 1, &r), -1);

    static const uint8_t env[] = {1, 2, 3};
    struct sessrec w = r;
    w.has_will = true;
    w.will_delay_s = 30;
    w.will_topic = "status/d";
    w.will_topic_len = 8;
    w.will_env = env;
    w.will_env_len = sizeof(env);
    n = sessrec_encode(&w, buf, sizeof(buf));
    CHECK(n == sessrec_size(&w));
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), 0);
    CHECK(r.has_will && r.will_delay_s == 30 && r.will_topic_len == 8 &&
          !memcmp(r.will_topic, "status/d", 8) && r.will_env_len == 3 && r.will_env[2] == 3);
    CHECK(r.chunk_len == 13);
    CHECK_EQ_INT(sessrec_decode(buf, n - 3, &r), -1); /* a will without its envelope */

    n = sample(buf, sizeof(buf), SESSREC_GONE, "n", "d");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), 0);
    CHECK(r.flags == SESSREC_GONE && !r.chunk && !r.chunk_len);
    buf[n] = 0; /* a gone record with bytes after it */
    CHECK_EQ_INT(sessrec_decode(buf, n + 1, &r), -1);
}

static void test_refused(void)
{
    uint8_t buf[256];
    struct sessrec r;
    size_t n = sample(buf, sizeof(buf), 0, "node-1", "device-7");
    buf[0] = 2;
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    buf[0] = 1;
    buf[1] = 4;
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    buf[1] = 0;
    uint8_t e[8];
    memcpy(e, buf + 2, 8);
    memset(buf + 2, 0, 8);
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1); /* epoch 0 */
    memcpy(buf + 2, e, 8);
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), 0);
    n = sample(buf, sizeof(buf), 0, "node.1", "device-7");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    n = sample(buf, sizeof(buf), 0, "node-1", "");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    n = sample(buf, sizeof(buf), 0, "node-1", "\xc3\x28");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    char long_node[66];
    memset(long_node, 'n', 65);
    long_node[65] = 0;
    n = sample(buf, sizeof(buf), 0, long_node, "d");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), -1);
    long_node[64] = 0;
    n = sample(buf, sizeof(buf), 0, long_node, "d");
    CHECK_EQ_INT(sessrec_decode(buf, n, &r), 0);
}

static void test_beat(void)
{
    uint8_t b[SESSREC_BEAT_LEN];
    sessrec_beat_encode(1700000000000, 1700000005000, b);
    int64_t s, c;
    CHECK_EQ_INT(sessrec_beat_decode(b, sizeof(b), &s, &c), 0);
    CHECK(s == 1700000000000 && c == 1700000005000);
    CHECK_EQ_INT(sessrec_beat_decode(b, sizeof(b) - 1, &s, &c), -1);
    b[0] = 9;
    CHECK_EQ_INT(sessrec_beat_decode(b, sizeof(b), &s, &c), -1);
    b[0] = 1;
    b[1] = 0x80; /* beyond int64 */
    CHECK_EQ_INT(sessrec_beat_decode(b, sizeof(b), &s, &c), -1);
}

int main(void)
{
    test_round_trip();
    test_refused();
    test_beat();
    return check_finish("sessrec_test");
}
