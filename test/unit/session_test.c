/* session: queue limits, in-flight window, acknowledgement flows, redelivery, QoS 2 inbound. */
#include "check.h"
#include "session.h"

#include <string.h>

static struct msg *mk(const char *topic, const char *payload, uint8_t qos, int64_t expiry)
{
    struct mqtt_publish p = {0};
    p.qos = qos;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    return msg_new(topic, strlen(topic), &p, expiry, 1);
}

static int enq(struct session *s, struct msg *m, uint8_t qos, bool retain, uint32_t sub_id,
               bool online)
{
    struct session_delivery d = {.msg = m, .qos = qos, .retain = retain};
    if (sub_id)
        d.sub_ids[d.n_sub_ids++] = sub_id;
    return session_enqueue(s, &d, online);
}

static void test_window_and_acks(void)
{
    struct session_limits lim = {.max_inflight = 2, .max_queued = 10};
    struct session *s = session_new("dev1", "c1", &lim);
    CHECK_EQ_STR(session_identity(s), "dev1");
    CHECK_EQ_STR(session_client_id(s), "c1");
    struct msg *m = mk("a/b", "x", 1, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(enq(s, m, 1, false, 0, true), 0);
    CHECK_EQ_INT(m->refs, 4);
    struct session_out o;
    CHECK(session_next_out(s, 0, &o));
    CHECK_EQ_INT(o.kind, SESSION_OUT_PUBLISH);
    CHECK_EQ_INT(o.qos, 1);
    CHECK(!o.dup);
    uint16_t id1 = o.id;
    CHECK(id1 != 0);
    CHECK(session_next_out(s, 0, &o));
    uint16_t id2 = o.id;
    CHECK(id2 != id1);
    /* Window of 2 is full: the third waits. */
    CHECK(!session_next_out(s, 0, &o));
    CHECK_EQ_INT(session_inflight(s), 2);
    CHECK_EQ_INT(session_queued(s), 1);
    CHECK_EQ_INT(session_puback(s, 999), -1);
    CHECK_EQ_INT(session_puback(s, id1), 0);
    CHECK_EQ_INT(session_puback(s, id1), -1);
    CHECK(session_next_out(s, 0, &o));
    CHECK(o.id != id2);
    /* Reconnect: everything in flight is sent again with DUP, before anything new. */
    session_resend_all(s);
    CHECK(session_next_out(s, 0, &o));
    CHECK(o.dup);
    CHECK_EQ_INT(o.id, id2);
    session_free(s);
    CHECK_EQ_INT(m->refs, 1);
    msg_unref(m);
}

static void test_qos2_out(void)
{
    struct session_limits lim = {.max_inflight = 5, .max_queued = 10};
    struct session *s = session_new("d", "c", &lim);
    struct msg *m = mk("t", "p", 2, 0);
    enq(s, m, 2, true, 7, true);
    struct session_out o;
    CHECK(session_next_out(s, 0, &o));
    CHECK_EQ_INT(o.qos, 2);
    CHECK(o.retain);
    CHECK(o.n_sub_ids == 1 && o.sub_ids[0] == 7);
    CHECK_EQ_INT(session_pubcomp(s, o.id), -1); /* PUBCOMP before PUBREC is wrong */
    CHECK_EQ_INT(session_pubrec(s, o.id), 0);
    CHECK_EQ_INT(m->refs, 1); /* released at PUBREC */
    struct session_out r;
    CHECK(session_next_out(s, 0, &r));
    CHECK_EQ_INT(r.kind, SESSION_OUT_PUBREL);
    CHECK_EQ_INT(r.id, o.id);
    CHECK(!session_next_out(s, 0, &r));
    /* After a reconnect PUBREL is sent again. */
    session_resend_all(s);
    CHECK(session_next_out(s, 0, &r));
    CHECK_EQ_INT(r.kind, SESSION_OUT_PUBREL);
    CHECK_EQ_INT(session_pubcomp(s, o.id), 0);
    CHECK_EQ_INT(session_inflight(s), 0);
    session_free(s);
    msg_unref(m);
}

static void test_limits(void)
{
    struct session_limits lim = {.max_inflight = 1, .max_queued = 3, .max_queued_bytes = 0};
    struct session *s = session_new("d", "c", &lim);
    struct msg *m = mk("t", "payload", 1, 0);
    CHECK_EQ_INT(enq(s, m, 0, false, 0, false), -1); /* QoS 0 offline */
    for (int i = 0; i < 3; i++) {
        CHECK(!session_queue_full(s));
        CHECK_EQ_INT(enq(s, m, 1, false, 0, false), 0);
    }
    CHECK(session_queue_full(s)); /* what a walk of retained messages stops at */
    CHECK_EQ_INT(enq(s, m, 1, false, 0, false), -1);
    CHECK_EQ_INT(session_dropped(s), 1);
    session_free(s);

    lim.max_queued = 100;
    lim.max_queued_bytes = msg_size(m) * 2;
    s = session_new("d", "c", &lim);
    CHECK_EQ_INT(enq(s, m, 1, false, 0, true), 0);
    CHECK(!session_queue_full(s));
    CHECK_EQ_INT(enq(s, m, 1, false, 0, true), 0);
    CHECK(session_queue_full(s)); /* the byte limit is used up */
    CHECK_EQ_INT(enq(s, m, 1, false, 0, true), -1);
    session_free(s);
    CHECK_EQ_INT(m->refs, 1);
    msg_unref(m);
}

static void test_expiry_and_qos0(void)
{
    struct session_limits lim = {.max_inflight = 4, .max_queued = 10, .queue_qos0_offline = true};
    struct session *s = session_new("d", "c", &lim);
    struct msg *old = mk("t", "old", 0, 1000);
    struct msg *fresh = mk("t", "new", 0, 0);
    enq(s, old, 0, false, 0, false);
    enq(s, fresh, 0, false, 0, false);
    struct session_out o;
    CHECK(session_next_out(s, 2000, &o)); /* the expired one is skipped */
    CHECK(o.msg == fresh);
    CHECK_EQ_INT(o.id, 0);
    CHECK_EQ_INT(old->refs, 1);
    CHECK(!session_next_out(s, 2000, &o));
    CHECK_EQ_INT(fresh->refs, 1);
    session_free(s);
    msg_unref(old);
    msg_unref(fresh);
}

static void test_qos2_in_and_subs(void)
{
    struct session_limits lim = {.max_inflight = 1, .max_queued = 1};
    struct session *s = session_new("d", "c", &lim);
    CHECK(!session_qos2_in_has(s, 5));
    session_qos2_in_add(s, 5);
    session_qos2_in_add(s, 5);
    session_qos2_in_add(s, 65535);
    CHECK(session_qos2_in_has(s, 5));
    CHECK_EQ_INT(session_qos2_in_count(s), 2);
    session_qos2_in_del(s, 5);
    CHECK(!session_qos2_in_has(s, 5));
    session_qos2_in_del(s, 65535);
    CHECK_EQ_INT(session_qos2_in_count(s), 0);

    CHECK(session_sub_add(s, "a/#", 3, 1, 0) == SESSION_SUB_NEW);
    CHECK(session_sub_add(s, "a/#", 3, 2, 0) == SESSION_SUB_REPEATED); /* same batch */
    session_sub_batch(s);
    CHECK(session_sub_add(s, "a/#", 3, 2, 0) == SESSION_SUB_REPLACED);
    CHECK(session_sub_add(s, "$share/g/x", 10, 0, 0) == SESSION_SUB_NEW);
    CHECK(session_sub_find(s, "a/#", 3) && session_sub_find(s, "a/#", 3)->options == 2);
    CHECK(!session_sub_find(s, "a/", 2));
    CHECK_EQ_INT(session_sub_count(s), 2);
    CHECK_EQ_INT(session_sub_at(s, 0)->options, 2);
    CHECK(session_sub_del(s, "a/#", 3));
    CHECK(!session_sub_del(s, "a/#", 3));
    CHECK_EQ_INT(session_sub_count(s), 1);

    struct msg *w = mk("will", "bye", 1, 0);
    session_set_will(s, w);
    CHECK_EQ_INT(w->refs, 2);
    struct msg *t = session_take_will(s);
    CHECK(t == w);
    CHECK(session_take_will(s) == NULL);
    msg_unref(t);
    msg_unref(w);
    session_free(s);
}

static int handed;
static void take(void *ctx, const struct session_delivery *d)
{
    handed++;
    CHECK(d->group == ctx);
}

static void test_shared_handover_and_window(void)
{
    struct session_limits lim = {.max_inflight = 10, .max_queued = 10};
    struct session *s = session_new("d", "c", &lim);
    struct msg *m = mk("t", "p", 1, 0);
    int g;
    struct session_delivery shared = {.msg = m, .qos = 1, .group = &g};
    struct session_delivery own = {.msg = m, .qos = 1};
    session_enqueue(s, &shared, true);
    session_enqueue(s, &own, true);
    session_enqueue(s, &shared, true);
    session_set_window(s, 1); /* the client's receive maximum */
    struct session_out o;
    CHECK(session_next_out(s, 0, &o));
    CHECK(!session_next_out(s, 0, &o));
    session_take_shared(s, take, &g);
    CHECK_EQ_INT(handed, 2); /* one in flight, one queued */
    CHECK_EQ_INT(session_inflight(s), 0);
    CHECK_EQ_INT(session_queued(s), 1);
    session_free(s);
    CHECK_EQ_INT(m->refs, 1);
    msg_unref(m);
}

int main(void)
{
    test_shared_handover_and_window();
    test_window_and_acks();
    test_qos2_out();
    test_limits();
    test_expiry_and_qos0();
    test_qos2_in_and_subs();
    return check_finish("session_test");
}
