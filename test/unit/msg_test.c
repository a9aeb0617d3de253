/* msg: contents copied whole, the pool recycles small blocks, large ones bypass it, and a pool
 * freed while messages live is released by the last of them (ASan checks the memory). */
#include "check.h"
#include "msg.h"

#include <string.h>

static struct msg *mk(struct msg_pool *pool, const char *topic, size_t payload_len)
{
    static uint8_t payload[4096];
    memset(payload, 'x', sizeof(payload));
    struct mqtt_publish p = {0};
    p.qos = 1;
    p.payload = payload;
    p.payload_len = (uint32_t)payload_len;
    return msg_new_in(pool, topic, strlen(topic), &p, 0, 7);
}

static void test_contents(void)
{
    struct msg_pool *pool = msg_pool_new(4);
    struct mqtt_publish p = {0};
    p.qos = 2;
    p.retain = true;
    p.payload = (const uint8_t *)"hello";
    p.payload_len = 5;
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
    p.props.content_type = (struct mqtt_bin){(const uint8_t *)"text/plain", 10};
    struct msg *m = msg_new_in(pool, "a/b", 3, &p, 123, 9);
    CHECK_EQ_STR(m->topic, "a/b");
    CHECK_EQ_INT(m->payload_len, 5);
    CHECK(memcmp(m->payload, "hello", 5) == 0);
    CHECK_EQ_INT(m->content_type.len, 10);
    CHECK(memcmp(m->content_type.p, "text/plain", 10) == 0);
    CHECK_EQ_INT(m->qos, 2);
    CHECK(m->retain);
    CHECK_EQ_INT(m->expiry_at, 123);
    CHECK_EQ_INT(m->id, 9);
    CHECK_EQ_INT(m->refs, 1);
    msg_unref(m);
    msg_pool_free(pool);
}

static void test_recycling(void)
{
    struct msg_pool *pool = msg_pool_new(2);
    struct msg *a = mk(pool, "t", 64);
    const void *block = a;
    msg_ref(a);
    msg_unref(a); /* still referenced: not recycled */
    struct msg *b = mk(pool, "t", 64);
    CHECK(b != block);
    msg_unref(a);
    struct msg *c = mk(pool, "t/2", 10); /* reuses a's block, with its own contents */
    CHECK(c == block);
    CHECK_EQ_STR(c->topic, "t/2");
    CHECK_EQ_INT(c->payload_len, 10);
    struct msg *big = mk(pool, "t", 2000); /* larger than a block: malloc'd */
    CHECK(big->pool == NULL);
    CHECK(memcmp(big->payload, "xxxx", 4) == 0 && big->payload_len == 2000);
    msg_unref(big);
    /* at most max_free blocks kept; the rest go back to malloc */
    struct msg *more[5];
    for (int i = 0; i < 5; i++)
        more[i] = mk(pool, "t", 1);
    for (int i = 0; i < 5; i++)
        msg_unref(more[i]);
    msg_unref(b);
    msg_unref(c);
    msg_pool_free(pool);
}

static void test_pool_outlived(void)
{
    struct msg_pool *pool = msg_pool_new(8);
    struct msg *a = mk(pool, "late", 8), *b = mk(pool, "late", 8);
    msg_unref(mk(pool, "freed", 8)); /* a free block when the pool goes */
    msg_pool_free(pool);
    CHECK_EQ_STR(a->topic, "late");
    msg_unref(a);
    msg_unref(b); /* the last one releases the pool */
    struct msg *plain = msg_new("p", 1, &(struct mqtt_publish){0}, 0, 1);
    CHECK(plain->pool == NULL);
    msg_unref(plain);
}

int main(void)
{
    test_contents();
    test_recycling();
    test_pool_outlived();
    return check_finish("msg_test");
}
