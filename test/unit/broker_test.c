/* broker: routing with ACL checks on both sides, overlapping subscriptions, retained messages,
 * wills, takeover, session expiry and isolation between identities. */
#include "acl.h"
#include "broker.h"
#include "certattr.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int wakeups, kicks;
static void *last_kicked;

static void on_wakeup(void *client)
{
    wakeups++;
}

static void on_kick(void *client, enum reason why)
{
    kicks++;
    last_kicked = client;
    CHECK_EQ_INT(why, REASON_TAKEN_OVER);
    CHECK_EQ_INT(reason_info(why)->v5, 0x8E);
}

static uint32_t max_retained;       /* for the next mkbroker */
static struct broker_limits quotas; /* retained bytes and sessions, for the next mkbroker */

static struct broker *mkbroker(const char *acl_text)
{
    struct broker_limits l = {
        .session = {.max_inflight = 10, .max_queued = 100},
        .max_topic_length = 65535,
        .max_retained_messages = max_retained,
        .max_retained_bytes = quotas.max_retained_bytes,
        .max_retained_bytes_per_identity = quotas.max_retained_bytes_per_identity,
        .max_persistent_sessions_per_identity = quotas.max_persistent_sessions_per_identity,
        .max_connections_per_identity = quotas.max_connections_per_identity,
        .per_identity = quotas.per_identity,
        .rate_burst_s = quotas.rate_burst_s,
        .retain_available = true,
    };
    struct broker_client_ops ops = {.wakeup = on_wakeup, .kick = on_kick};
    struct broker *b = broker_new(&l);
    broker_set_client_ops(b, &ops);
    struct diag d;
    diag_init(&d);
    struct acl *a = acl_parse(acl_text, strlen(acl_text), "test.acl", &d, NULL);
    CHECK(a != NULL);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);
    diag_free(&d);
    broker_set_acl(b, a);
    return b;
}

/* A clean MQTT 3.1.1 session for identity/client_id, online with client as its owner. */
static struct session *online(struct broker *b, const char *identity, const char *client_id,
                              void *client)
{
    bool present;
    return broker_attach(b, identity, NULL, client_id, client, "127.0.0.1:1", true, false, 0, 4,
                         &present, 0);
}

static struct msg *mk(struct broker *b, const char *topic, const char *payload, uint8_t qos,
                      bool retain)
{
    struct mqtt_publish p = {0};
    p.qos = qos;
    p.retain = retain;
    p.payload = (const uint8_t *)payload;
    p.payload_len = (uint32_t)strlen(payload);
    return msg_new(topic, strlen(topic), &p, 0, broker_next_msg_id(b));
}

/* Pops the next PUBLISH for s; returns its topic or NULL. */
static const char *next_topic(struct session *s, uint8_t *qos, bool *retain)
{
    struct session_out o;
    if (!session_next_out(s, 0, &o) || o.kind != SESSION_OUT_PUBLISH)
        return NULL;
    if (qos)
        *qos = o.qos;
    if (retain)
        *retain = o.retain;
    static char topic[256];
    snprintf(topic, sizeof(topic), "%s", o.msg->topic);
    if (o.qos == 1)
        session_puback(s, o.id); /* may free the message */
    return topic;
}

static const char *ACL = "pattern readwrite devices/%u/#\n"
                         "pattern read fleet/#\n"
                         "user ops\n"
                         "topic readwrite fleet/#\n"
                         "topic read devices/#\n"
                         "user admin\n"
                         "topic read $SYS/#\n";

static void test_isolation(void)
{
    struct broker *b = mkbroker(ACL);
    int c1, c2, c3;
    struct session *a = online(b, "dev-a", "x", &c1);
    struct session *bb = online(b, "dev-b", "x", &c2);
    struct session *ops = online(b, "ops", "ops", &c3);
    CHECK(a != bb); /* same client id, different identity: separate sessions */
    CHECK_EQ_INT(kicks, 0);
    CHECK_EQ_INT(broker_subscribe(b, a, "devices/#", 9, 1, 0, 0), 1);
    CHECK_EQ_INT(broker_subscribe(b, bb, "devices/dev-a/#", 15, 1, 0, 0), 0x87);
    CHECK_EQ_INT(broker_subscribe(b, ops, "devices/+/temp", 14, 2, 0, 0), 2);
    CHECK_EQ_INT(broker_subscribe(b, a, "bad/#/x", 7, 0, 0, 0), 0x8F);

    struct msg *m = mk(b, "devices/dev-b/temp", "21", 1, false);
    CHECK_EQ_INT(broker_publish(b, bb, m, 0), BROKER_PUB_OK);
    msg_unref(m);
    /* dev-a subscribed to devices/# but may only read its own subtree. */
    CHECK(next_topic(a, NULL, NULL) == NULL);
    uint8_t qos = 9;
    CHECK_EQ_STR(next_topic(ops, &qos, NULL), "devices/dev-b/temp");
    CHECK_EQ_INT(qos, 1);

    m = mk(b, "devices/dev-a/temp", "1", 0, false);
    CHECK_EQ_INT(broker_publish(b, bb, m, 0), BROKER_PUB_DENIED);
    msg_unref(m);
    CHECK(next_topic(ops, NULL, NULL) == NULL);

    /* Overlapping subscriptions: one delivery at the highest QoS. */
    CHECK_EQ_INT(broker_subscribe(b, ops, "devices/dev-b/#", 15, 0, 0, 0), 0);
    m = mk(b, "devices/dev-b/temp", "x", 2, false);
    broker_publish(b, bb, m, 0);
    msg_unref(m);
    struct session_out o;
    CHECK(session_next_out(ops, 0, &o));
    CHECK_EQ_INT(o.qos, 2);
    CHECK(!session_next_out(ops, 0, &o));
    broker_free(b);
}

static void test_retained_and_will(void)
{
    struct broker *b = mkbroker(ACL);
    int c1, c2;
    struct session *a = online(b, "dev-a", "a", &c1);
    struct msg *m = mk(b, "devices/dev-a/state", "on", 1, true);
    CHECK_EQ_INT(broker_publish(b, a, m, 0), BROKER_PUB_NO_MATCH);
    msg_unref(m);
    CHECK_EQ_INT(broker_retained_count(b), 1);
    struct session *ops = online(b, "ops", "o", &c2);
    broker_subscribe(b, ops, "devices/#", 9, 1, 0, 0);
    bool retain = false;
    CHECK_EQ_STR(next_topic(ops, NULL, &retain), "devices/dev-a/state");
    CHECK(retain);
    /* An empty retained payload clears. */
    m = mk(b, "devices/dev-a/state", "", 0, true);
    broker_publish(b, a, m, 0);
    msg_unref(m);
    CHECK_EQ_INT(broker_retained_count(b), 0);
    CHECK(next_topic(ops, NULL, NULL) != NULL); /* the live delivery of the clear */

    /* Will: published on abnormal detach only. */
    struct msg *w = mk(b, "devices/dev-a/status", "gone", 1, false);
    session_set_will(a, w);
    msg_unref(w);
    broker_detach(b, a, true, 0);
    CHECK_EQ_STR(next_topic(ops, NULL, NULL), "devices/dev-a/status");
    a = online(b, "dev-a", "a", &c1);
    w = mk(b, "devices/dev-a/status", "gone", 1, false);
    session_set_will(a, w);
    msg_unref(w);
    broker_detach(b, a, false, 0);
    CHECK(next_topic(ops, NULL, NULL) == NULL);
    broker_free(b);
}

static void publish_retained(struct broker *b, struct session *from, const char *topic,
                             const char *payload)
{
    struct msg *m = mk(b, topic, payload, 0, true);
    broker_publish(b, from, m, 0);
    msg_unref(m);
}

/* Retained bytes are charged to the identity that set each message; over a limit a message is
 * delivered but not retained; replacing and clearing give bytes back, to whoever set them. */
static void test_retained_bytes(void)
{
    quotas =
        (struct broker_limits){.max_retained_bytes = 100, .max_retained_bytes_per_identity = 60};
    struct broker *b = mkbroker("pattern readwrite devices/#\n");
    quotas = (struct broker_limits){0};
    int c1, c2;
    bool present;
    struct session *a = online(b, "dev-a", "a", &c1);
    struct session *x =
        broker_attach(b, "dev-x", NULL, "x", &c2, "127.0.0.1:2", true, false, 0, 4, &present, 0);
    /* "devices/1" + 31 bytes = 40 each */
    const char *p31 = "0123456789012345678901234567890";
    publish_retained(b, a, "devices/1", p31);
    publish_retained(b, a, "devices/2", p31); /* dev-a would hold 80 > 60 */
    CHECK_EQ_INT(broker_retained_count(b), 1);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 1);
    publish_retained(b, a, "devices/1", "short"); /* replacing its own: 14 bytes now */
    publish_retained(b, a, "devices/2", p31);     /* 14 + 40 = 54 <= 60 */
    CHECK_EQ_INT(broker_retained_count(b), 2);
    publish_retained(b, x, "devices/3", p31); /* total 94 <= 100 */
    publish_retained(b, x, "devices/4", "v"); /* total 104 > 100 */
    CHECK_EQ_INT(broker_retained_count(b), 3);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 2);
    /* dev-x clears dev-a's topic: dev-a gets its 40 bytes back, and can store again. */
    publish_retained(b, x, "devices/2", "");
    publish_retained(b, a, "devices/5", p31);
    CHECK_EQ_INT(broker_retained_count(b), 3);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 2);
    /* dev-a goes away: its retained messages stay, charged to it. */
    broker_detach(b, a, false, 0);
    publish_retained(b, x, "devices/1", ""); /* clearing works for anyone */
    CHECK_EQ_INT(broker_retained_count(b), 2);
    broker_free(b);
}

/* max_persistent_sessions_per_identity: one more persistent session for the identity is
 * refused; sessions that end with their connection are not counted, and the existing ones may
 * come back (and take over) as often as they like. */
static void test_sessions_per_identity(void)
{
    quotas = (struct broker_limits){.max_persistent_sessions_per_identity = 2};
    struct broker *b = mkbroker(ACL);
    quotas = (struct broker_limits){0};
    int c[6];
    bool present;
    CHECK(broker_attach(b, "dev-a", NULL, "a1", &c[0], "p", false, true, 60, 4, &present, 0));
    CHECK(broker_attach(b, "dev-a", NULL, "a2", &c[1], "p", false, true, 60, 4, &present, 0));
    CHECK(!broker_attach(b, "dev-a", NULL, "a3", &c[2], "p", false, true, 60, 4, &present, 0));
    CHECK_EQ_INT(broker_stats(b)->sessions_refused, 1);
    /* Clean sessions of the same identity: not counted. */
    struct session *t1 =
        broker_attach(b, "dev-a", NULL, "t1", &c[2], "p", true, false, 0, 4, &present, 0);
    struct session *t2 =
        broker_attach(b, "dev-a", NULL, "t2", &c[4], "p", true, false, 0, 4, &present, 0);
    CHECK(t1 && t2);
    broker_detach(b, t1, false, 0);
    broker_detach(b, t2, false, 0);
    CHECK(broker_attach(b, "dev-b", NULL, "b1", &c[2], "p", false, true, 60, 4, &present, 0));
    /* a1 takes itself over (allowed), now as a clean session: its persistence ends. */
    CHECK(broker_attach(b, "dev-a", NULL, "a1", &c[3], "p", true, false, 0, 4, &present, 0));
    struct session *a1 = broker_find(b, "dev-a", "a1");
    broker_detach(b, a1, false, 0);
    CHECK(broker_attach(b, "dev-a", NULL, "a3", &c[0], "p", false, true, 60, 4, &present, 0));
    CHECK(!broker_attach(b, "dev-a", NULL, "a4", &c[5], "p", false, true, 60, 4, &present, 0));
    broker_free(b);
}

/* A revoked certificate takes the offline persistent sessions last used with it: not the online
 * ones (their connections have their own verdict), not clean ones, not those of another
 * certificate, not one whose device came back with a renewed certificate. */
static void test_revoked_cert(void)
{
    struct broker *b = mkbroker(ACL);
    uint8_t k1[BROKER_CERT_KEY_LEN] = {1}, k2[BROKER_CERT_KEY_LEN] = {2};
    int c[6];
    bool present;
    const char *ids[] = {"p1", "p2", "on", "renew", "other"};
    struct session *s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = broker_attach(b, "dev-a", NULL, ids[i], &c[i], "p", false, true, 60, 4, &present, 0);
        broker_session_cert(b, s[i], i == 4 ? k2 : k1);
    }
    struct session *cl =
        broker_attach(b, "dev-a", NULL, "clean", &c[5], "p", true, false, 0, 4, &present, 0);
    broker_session_cert(b, cl, k1);
    broker_detach(b, s[0], false, 0);
    broker_detach(b, s[1], false, 0);
    broker_detach(b, s[4], false, 0);
    broker_session_cert(b, s[3], k2); /* came back with a renewed certificate */
    broker_detach(b, s[3], false, 0);
    CHECK_EQ_INT(broker_revoked_cert(b, k1), 2); /* p1, p2 */
    CHECK(!broker_find(b, "dev-a", "p1") && !broker_find(b, "dev-a", "p2"));
    CHECK(broker_find(b, "dev-a", "on") && broker_find(b, "dev-a", "clean"));
    CHECK(broker_find(b, "dev-a", "renew") && broker_find(b, "dev-a", "other"));
    CHECK_EQ_INT(broker_revoked_cert(b, k1), 0);
    broker_detach(b, s[2], false, 0); /* "on" goes offline: now it goes too */
    CHECK_EQ_INT(broker_revoked_cert(b, k1), 1);
    CHECK_EQ_INT(broker_revoked_cert(b, k2), 2); /* renew, other */
    CHECK_EQ_INT(broker_stats(b)->sessions, 1);  /* clean, still connected */
    broker_free(b);
}

/* max_connections_per_identity, and a match block's limit overriding it for its devices. */
static void test_connections_per_identity(void)
{
    quotas = (struct broker_limits){.max_connections_per_identity = 2};
    struct broker *b = mkbroker("pattern readwrite devices/%u/#\n"
                                "match ou=gateways\n"
                                "limit max_connections_per_identity 3\n");
    quotas = (struct broker_limits){0};
    int c[8];
    bool present;
    struct session *s[4];
    for (int i = 0; i < 2; i++) {
        char cid[8];
        snprintf(cid, sizeof(cid), "s%d", i);
        CHECK(broker_connection_ok(b, "dev-a", NULL, cid));
        s[i] = broker_attach(b, "dev-a", NULL, cid, &c[i], "p", true, false, 0, 4, &present, 0);
    }
    CHECK(!broker_connection_ok(b, "dev-a", NULL, "s2"));
    CHECK_EQ_INT(broker_stats(b)->connections_refused, 1);
    CHECK(broker_connection_ok(b, "dev-a", NULL, "s1")); /* a takeover is not one more */
    s[1] = broker_attach(b, "dev-a", NULL, "s1", &c[2], "p", true, false, 0, 4, &present, 0);
    CHECK(!broker_connection_ok(b, "dev-a", NULL, "s2"));
    broker_detach(b, s[0], false, 0);
    CHECK(broker_connection_ok(b, "dev-a", NULL, "s2"));
    CHECK(broker_connection_ok(b, "dev-b", NULL, "s0")); /* per identity */
    /* A gateway's certificate: its block allows 3. */
    struct certattrs *gw = certattrs_add(NULL, CERTATTR_OU, "gateways", 8);
    for (int i = 0; i < 3; i++) {
        char cid[8];
        snprintf(cid, sizeof(cid), "g%d", i);
        CHECK(broker_connection_ok(b, "gw", gw, cid));
        broker_attach(b, "gw", gw, cid, &c[3 + i], "p", true, false, 0, 4, &present, 0);
    }
    CHECK(!broker_connection_ok(b, "gw", gw, "g3"));
    CHECK(!broker_connection_ok(b, "gw", NULL, "g3"));
    certattrs_free(gw);
    broker_free(b);
}

/* Publish rates per identity: shared by its clients, refilled from the publish's time, others
 * untouched; a gateway's match block allows more; an ACL reload re-resolves the limits. */
static void test_publish_rate(void)
{
    quotas = (struct broker_limits){.per_identity = {.rate = 3, .byte_rate = 1000}};
    struct broker *b = mkbroker("pattern readwrite devices/%u/#\n"
                                "match ou=gateways\n"
                                "limit max_publish_rate_per_identity 10\n");
    quotas = (struct broker_limits){0};
    int c[4];
    struct session *a1 = online(b, "dev-a", "a1", &c[0]), *a2 = online(b, "dev-a", "a2", &c[1]);
    struct session *x = online(b, "dev-x", "x", &c[2]);
    CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 1000), REASON_NONE);
    CHECK_EQ_INT(broker_publish_rate(b, a2, 10, 1000), REASON_NONE);
    CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 1000), REASON_NONE);
    CHECK_EQ_INT(broker_publish_rate(b, a2, 10, 1000), REASON_PUBLISH_RATE); /* one bucket */
    CHECK_EQ_INT(broker_publish_rate(b, x, 10, 1000), REASON_NONE);
    CHECK_EQ_INT(broker_publish_rate(b, a2, 10, 1334), REASON_NONE); /* 1/3 s refills one */
    CHECK_EQ_INT(broker_publish_rate(b, x, 1001, 1000), REASON_PUBLISH_BYTE_RATE); /* not full */
    CHECK_EQ_INT(broker_publish_rate(b, x, 1001, 3000), REASON_NONE); /* full: may go in debt */
    CHECK_EQ_INT(broker_publish_rate(b, x, 1, 3000), REASON_PUBLISH_BYTE_RATE);
    CHECK_EQ_INT(broker_stats(b)->rate_refused, 1);
    CHECK_EQ_INT(broker_stats(b)->byte_rate_refused, 2);
    /* Reconnecting gives no fresh bucket: the identity is remembered until its meters rest. */
    broker_detach(b, a1, false, 1400);
    broker_detach(b, a2, false, 1400);
    a1 = online(b, "dev-a", "a1", &c[0]);
    CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 1400), REASON_PUBLISH_RATE);
    broker_detach(b, a1, false, 1400);
    broker_tick(b, 1700); /* not yet full again: kept (and one more token by now) */
    a1 = online(b, "dev-a", "a1", &c[0]);
    CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 1700), REASON_NONE);
    CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 1700), REASON_PUBLISH_RATE);
    broker_detach(b, a1, false, 1700);
    broker_tick(b, 9000); /* rested: forgotten, and a new entry starts full */
    a1 = online(b, "dev-a", "a1", &c[0]);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(broker_publish_rate(b, a1, 10, 9000), REASON_NONE);
    struct certattrs *gw = certattrs_add(NULL, CERTATTR_OU, "gateways", 8);
    bool present;
    struct session *g = broker_attach(b, "gw", gw, "g", &c[3], "p", true, false, 0, 4, &present, 0);
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += broker_publish_rate(b, g, 1, 5000) == REASON_NONE;
    CHECK_EQ_INT(ok, 10);
    /* A reload dropping the block: certmq.conf's 3 from the next refill on. */
    struct acl *a = acl_parse("pattern readwrite #\n", 20, "t", NULL, NULL);
    broker_set_acl(b, a);
    ok = 0;
    for (int i = 0; i < 20; i++)
        ok += broker_publish_rate(b, g, 1, 9000) == REASON_NONE;
    CHECK_EQ_INT(ok, 3);
    certattrs_free(gw);
    broker_free(b);
    /* Nothing configured: never refused. */
    b = mkbroker(ACL);
    struct session *u = online(b, "dev-u", "u", &c[0]);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(broker_publish_rate(b, u, 1u << 20, 0), REASON_NONE);
    broker_free(b);
}

/* max_subscriptions_per_identity across the identity's sessions; changing a filter's options is
 * not one more; unsubscribing and ending a session give them back. */
static void test_subscriptions_per_identity(void)
{
    quotas = (struct broker_limits){.per_identity = {.subscriptions = 3}};
    struct broker *b = mkbroker("pattern readwrite devices/%u/#\n"
                                "match ou=gateways\n"
                                "limit max_subscriptions_per_identity 0\n");
    quotas = (struct broker_limits){0};
    int c[3];
    struct session *a1 = online(b, "dev-a", "a1", &c[0]), *a2 = online(b, "dev-a", "a2", &c[1]);
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/1", 15, 1, 0, 0), 1);
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/2", 15, 1, 0, 0), 1);
    CHECK_EQ_INT(broker_subscribe(b, a2, "devices/dev-a/1", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, a2, "devices/dev-a/3", 15, 0, 0, 0), MQTT_RC_QUOTA_EXCEEDED);
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/2", 15, 0, 0, 0), 0); /* options only */
    CHECK_EQ_INT(broker_stats(b)->identity_subs_refused, 1);
    CHECK_EQ_INT(broker_unsubscribe(b, a1, "devices/dev-a/2", 15), 0);
    CHECK_EQ_INT(broker_subscribe(b, a2, "devices/dev-a/3", 15, 0, 0, 0), 0);
    broker_detach(b, a2, false, 0); /* clean: its two subscriptions go with it */
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/4", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/5", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, a1, "devices/dev-a/6", 15, 0, 0, 0), MQTT_RC_QUOTA_EXCEEDED);
    struct certattrs *gw = certattrs_add(NULL, CERTATTR_OU, "gateways", 8);
    bool present;
    struct session *g = broker_attach(b, "gw", gw, "g", &c[2], "p", true, false, 0, 4, &present, 0);
    for (int i = 0; i < 10; i++) {
        char f[32];
        int n = snprintf(f, sizeof(f), "devices/gw/%d", i);
        CHECK_EQ_INT(broker_subscribe(b, g, f, (size_t)n, 0, 0, 0), 0); /* unlimited */
    }
    certattrs_free(gw);
    broker_free(b);
}

/* A session handed over by another node: its subscriptions are re-checked against this node's
 * ACL and count towards the identity's limit like any others, and give the count back when the
 * session goes (a count not taken would wrap when it is given back). */
static void test_imported_subscriptions_counted(void)
{
    quotas = (struct broker_limits){.per_identity = {.subscriptions = 3}};
    struct broker *b = mkbroker("pattern readwrite devices/%u/#\n");
    quotas = (struct broker_limits){0};
    struct session *s = broker_import(b, "dev-a", "moved", NULL, true, 60, 4, 0);
    CHECK(broker_import_sub(b, s, "devices/dev-a/1", 15, 1, 0));
    CHECK(broker_import_sub(b, s, "devices/dev-a/2", 15, 1, 0));
    CHECK(!broker_import_sub(b, s, "devices/dev-b/1", 15, 1, 0)); /* not this device's */
    CHECK(!broker_import_sub(b, s, "devices/#/x", 11, 1, 0));     /* not a filter */
    CHECK_EQ_INT(session_sub_count(s), 2);
    int c[2];
    struct session *o = online(b, "dev-a", "other", &c[0]);
    CHECK_EQ_INT(broker_subscribe(b, o, "devices/dev-a/3", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, o, "devices/dev-a/4", 15, 0, 0, 0), MQTT_RC_QUOTA_EXCEEDED);
    broker_discard(b, s);
    CHECK_EQ_INT(broker_subscribe(b, o, "devices/dev-a/4", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, o, "devices/dev-a/5", 15, 0, 0, 0), 0);
    CHECK_EQ_INT(broker_subscribe(b, o, "devices/dev-a/6", 15, 0, 0, 0), MQTT_RC_QUOTA_EXCEEDED);
    broker_free(b);
}

/* max_retained_messages_per_identity: counted like the bytes, refused like them (delivered,
 * not retained), replacing its own is not one more, a clear by anyone gives one back. */
static void test_retained_per_identity(void)
{
    quotas = (struct broker_limits){.per_identity = {.retained = 2}};
    struct broker *b = mkbroker("pattern readwrite devices/#\n");
    quotas = (struct broker_limits){0};
    int c1, c2;
    struct session *a = online(b, "dev-a", "a", &c1), *x = online(b, "dev-x", "x", &c2);
    publish_retained(b, a, "devices/1", "v");
    publish_retained(b, a, "devices/2", "v");
    publish_retained(b, a, "devices/3", "v");
    CHECK_EQ_INT(broker_retained_count(b), 2);
    CHECK_EQ_INT(broker_stats(b)->identity_retained_refused, 1);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 0);
    publish_retained(b, a, "devices/2", "w"); /* its own */
    publish_retained(b, x, "devices/1", "");  /* cleared by another */
    publish_retained(b, a, "devices/3", "v");
    CHECK_EQ_INT(broker_retained_count(b), 2);
    CHECK_EQ_INT(broker_stats(b)->identity_retained_refused, 1);
    publish_retained(b, x, "devices/2", "y"); /* dev-x takes over dev-a's topic */
    publish_retained(b, a, "devices/4", "v");
    CHECK_EQ_INT(broker_retained_count(b), 3);
    broker_free(b);
}

/* A trust verdict (revoked, expired): the will is never published, not even with a delay, and a
 * persistent session stays or goes as revoked_session says. */
static void test_untrust(void)
{
    struct broker *b = mkbroker(ACL);
    int c1, c2;
    bool present;
    struct session *ops = online(b, "ops", "o", &c2);
    broker_subscribe(b, ops, "devices/#", 9, 1, 0, 0);
    for (int discard = 0; discard <= 1; discard++) {
        struct session *a = broker_attach(b, "dev-a", NULL, "a", &c1, "127.0.0.1:1", true, true,
                                          3600, 5, &present, 0);
        struct msg *w = mk(b, "devices/dev-a/status", "gone", 1, false);
        session_set_will(a, w);
        session_set_will_delay(a, 1);
        msg_unref(w);
        broker_untrust(b, a, discard, 0);
        broker_tick(b, 5000); /* past the will delay */
        CHECK(next_topic(ops, NULL, NULL) == NULL);
        struct session *left = broker_find(b, "dev-a", "a");
        CHECK(discard ? left == NULL : left != NULL && !session_client(left));
        if (left)
            broker_discard(b, left);
    }
    /* A session that is not persistent goes with its connection either way. */
    struct session *a = online(b, "dev-a", "a", &c1);
    broker_untrust(b, a, false, 0);
    CHECK(broker_find(b, "dev-a", "a") == NULL);
    broker_free(b);
}

/* The retained store is bounded: new topics beyond max_retained_messages are delivered but not
 * kept; replacing and clearing a kept topic still work, and clearing makes room. */
static void test_retained_limit(void)
{
    max_retained = 2;
    struct broker *b = mkbroker(ACL);
    max_retained = 0;
    int c1;
    struct session *a = online(b, "dev-a", "a", &c1);
    const char *topics[] = {"devices/dev-a/1", "devices/dev-a/2", "devices/dev-a/3",
                            "devices/dev-a/1", "devices/dev-a/2"};
    for (size_t i = 0; i < 5; i++) {
        struct msg *m = mk(b, topics[i], "v", 0, true);
        broker_publish(b, a, m, 0);
        msg_unref(m);
    }
    CHECK_EQ_INT(broker_retained_count(b), 2);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 1);
    struct msg *m = mk(b, "devices/dev-a/1", "", 0, true);
    broker_publish(b, a, m, 0);
    msg_unref(m);
    m = mk(b, "devices/dev-a/3", "v", 0, true);
    broker_publish(b, a, m, 0);
    msg_unref(m);
    CHECK_EQ_INT(broker_retained_count(b), 2);
    CHECK_EQ_INT(broker_stats(b)->retained_refused, 1);
    broker_free(b);
}

/* Retained messages for a new subscription in steps: a step visits at most its budget of
 * nodes, the walk stops once the queue is full (max_queued 100 of 150 matches, nothing dropped,
 * one cut counted), a subscription made with the queue full walks nothing, and a filter
 * repeated within one SUBSCRIBE is owed nothing the second time. */
static void test_retained_in_steps(void)
{
    struct broker *b = mkbroker(ACL);
    int c1, c2;
    struct session *a = online(b, "dev-a", "a", &c1);
    struct session *ops = online(b, "ops", "ops", &c2);
    char topic[64];
    for (int i = 0; i < 150; i++) {
        snprintf(topic, sizeof(topic), "devices/dev-a/%d", i);
        struct msg *m = mk(b, topic, "v", 0, true);
        broker_publish(b, a, m, 0);
        msg_unref(m);
    }
    uint64_t dropped = broker_stats(b)->msgs_dropped;
    struct broker_retained rw = {0};
    session_sub_batch(ops);
    CHECK_EQ_INT(broker_subscribe_begin(b, ops, "devices/+/+", 11, 0, 0, 0, &rw), 0);
    CHECK(rw.active);
    CHECK_EQ_INT(session_queued(ops), 0); /* nothing until stepped */
    CHECK(!broker_retained_step(b, ops, &rw, 12));
    size_t first = session_queued(ops);
    CHECK(first > 0 && first <= 12);
    int steps = 1;
    while (!broker_retained_step(b, ops, &rw, 12))
        steps++;
    CHECK(steps >= 100 / 12);
    CHECK(!rw.active && rw.filter == NULL);
    CHECK_EQ_INT(session_queued(ops), 100);
    CHECK_EQ_INT(broker_stats(b)->msgs_dropped, dropped);
    CHECK_EQ_INT(broker_stats(b)->retained_cut, 1);
    /* The queue is full: the next subscription's walk ends at once. */
    CHECK_EQ_INT(broker_subscribe_begin(b, ops, "devices/dev-a/#", 15, 0, 0, 0, &rw), 0);
    CHECK(rw.active);
    CHECK(broker_retained_step(b, ops, &rw, 1));
    CHECK_EQ_INT(broker_stats(b)->retained_cut, 2);
    /* Repeated within the batch: owed nothing. */
    CHECK_EQ_INT(broker_subscribe_begin(b, ops, "devices/+/+", 11, 0, 0, 0, &rw), 0);
    CHECK(!rw.active);
    /* An abandoned walk is freed. */
    session_sub_batch(ops);
    CHECK_EQ_INT(broker_subscribe_begin(b, ops, "devices/+/+", 11, 0, 0, 0, &rw), 0);
    CHECK(rw.active);
    broker_retained_end(&rw);
    CHECK(!rw.active);
    broker_free(b);
}

static void test_takeover_and_expiry(void)
{
    struct broker *b = mkbroker(ACL);
    int c1, c2, c3;
    bool present;
    kicks = 0;
    struct session *s1 =
        broker_attach(b, "dev-a", NULL, "a", &c1, "127.0.0.1:1", false, true, 60, 4, &present, 0);
    CHECK(!present);
    broker_subscribe(b, s1, "devices/dev-a/cmd", 17, 1, 0, 0);
    struct session *s2 =
        broker_attach(b, "dev-a", NULL, "a", &c2, "127.0.0.1:1", false, true, 60, 4, &present, 0);
    CHECK(present);
    CHECK(s1 == s2);
    CHECK_EQ_INT(kicks, 1);
    CHECK(last_kicked == &c1);
    CHECK(session_client(s2) == &c2);
    /* Offline: QoS 1 queued, QoS 0 not. */
    broker_detach(b, s2, false, 1000);
    struct session *ops = online(b, "ops", "o", &c3);
    (void)ops;
    struct msg *m = mk(b, "devices/dev-a/cmd", "reboot", 1, false);
    /* ops may not write devices/... : denied. dev-b may not either; dev-a itself may. */
    CHECK_EQ_INT(broker_publish(b, ops, m, 0), BROKER_PUB_DENIED);
    CHECK_EQ_INT(broker_publish(b, NULL, m, 0), BROKER_PUB_OK);
    msg_unref(m);
    CHECK_EQ_INT(session_queued(s2), 1);
    /* Expiry: 60 s after going offline the session is gone. */
    broker_tick(b, 1000 + 59000);
    CHECK_EQ_INT(broker_stats(b)->sessions, 2);
    broker_tick(b, 1000 + 60000);
    CHECK_EQ_INT(broker_stats(b)->sessions, 1);
    CHECK_EQ_INT(broker_subscription_count(b), 0);
    broker_free(b);
}

static void test_acl_reload_applies(void)
{
    struct broker *b = mkbroker("pattern read fleet/#\n");
    int c1;
    struct session *s = online(b, "dev-a", "a", &c1);
    CHECK_EQ_INT(broker_subscribe(b, s, "fleet/#", 7, 0, 0, 0), 0);
    struct msg *m = mk(b, "fleet/news", "1", 0, false);
    broker_publish(b, NULL, m, 0);
    CHECK(next_topic(s, NULL, NULL) != NULL);
    /* New rules without fleet/#: the existing subscription no longer delivers. */
    struct diag d;
    diag_init(&d);
    const char *t = "pattern read other/#\n";
    broker_set_acl(b, acl_parse(t, strlen(t), "x", &d, NULL));
    diag_free(&d);
    broker_publish(b, NULL, m, 0);
    CHECK(next_topic(s, NULL, NULL) == NULL);
    msg_unref(m);
    broker_free(b);
}

/* The policy's connected/disconnected come in pairs: attach, then detach or a takeover's kick,
 * with the session's identity and the peer address. */
static int connected, disconnected;
static char last_peer[32];

static void on_connected(void *ctx, const struct session *s, const char *peer)
{
    connected++;
    snprintf(last_peer, sizeof(last_peer), "%s", peer);
    CHECK_EQ_STR(session_identity(s), "dev-a");
}

static void on_disconnected(void *ctx, const struct session *s)
{
    disconnected++;
    CHECK_EQ_STR(session_client_id(s), "a");
}

static void test_policy_connect_pairs(void)
{
    struct broker *b = mkbroker(ACL);
    struct broker_policy pol = {.connected = on_connected, .disconnected = on_disconnected};
    broker_set_policy(b, &pol);
    int c1, c2;
    bool present;
    struct session *s =
        broker_attach(b, "dev-a", NULL, "a", &c1, "10.0.0.1:5", false, true, 60, 4, &present, 0);
    CHECK_EQ_INT(connected, 1);
    CHECK_EQ_STR(last_peer, "10.0.0.1:5");
    s = broker_attach(b, "dev-a", NULL, "a", &c2, "10.0.0.2:6", false, true, 60, 4, &present, 0);
    CHECK_EQ_INT(disconnected, 1); /* the kicked one */
    CHECK_EQ_INT(connected, 2);
    broker_detach(b, s, false, 0);
    CHECK_EQ_INT(disconnected, 2);
    broker_detach(b, s, false, 0); /* offline already: nothing more */
    CHECK_EQ_INT(disconnected, 2);
    broker_free(b);
}

/* The cluster hooks: interest changes per filter and group, every local publish sent on (the
 * broker's own not), groups skipped locally when shared_remote, and remote messages delivered
 * locally with the receiver's ACL checked. */
struct cluster_log {
    int published, adds, dels;
    char last[64];
};

static uint64_t cl_publish(void *ctx, const struct session *from, const struct msg *m, int64_t now)
{
    ((struct cluster_log *)ctx)->published++;
    return 0;
}

static void cl_interest(void *ctx, const char *f, size_t flen, const char *g, size_t glen, bool add)
{
    struct cluster_log *c = ctx;
    snprintf(c->last, sizeof(c->last), "%.*s%s%.*s", (int)flen, f, g ? "@" : "", (int)glen,
             g ? g : "");
    if (add)
        c->adds++;
    else
        c->dels++;
}

static void test_cluster_hooks(void)
{
    struct broker *b = mkbroker(ACL);
    struct cluster_log log = {0};
    struct broker_cluster hooks = {&log, cl_publish, cl_interest, true, NULL,
                                   NULL, NULL,       NULL,        NULL};
    broker_set_cluster(b, &hooks);
    int c1, c2, c3;
    struct session *ops = online(b, "ops", "ops", &c1);
    struct session *a = online(b, "dev-a", "a", &c2);
    struct session *w = online(b, "ops", "w", &c3);
    CHECK_EQ_INT(broker_subscribe(b, ops, "devices/#", 9, 1, 0, 0), 1);
    CHECK_EQ_STR(log.last, "devices/#");
    CHECK_EQ_INT(broker_subscribe(b, a, "devices/#", 9, 1, 0, 0), 1);
    CHECK_EQ_INT(log.adds, 1);
    CHECK_EQ_INT(broker_subscribe(b, w, "$share/g/fleet/+", 16, 1, 0, 0), 1);
    CHECK_EQ_STR(log.last, "fleet/+@g");

    /* Local publish: delivered locally, sent on once; the group is left to the cluster. */
    struct msg *m = mk(b, "devices/dev-a/t", "1", 1, false);
    CHECK_EQ_INT(broker_publish(b, a, m, 0), BROKER_PUB_OK);
    msg_unref(m);
    CHECK_EQ_INT(log.published, 1);
    CHECK_EQ_STR(next_topic(ops, NULL, NULL), "devices/dev-a/t");
    CHECK_EQ_STR(next_topic(a, NULL, NULL), "devices/dev-a/t");
    m = mk(b, "fleet/x", "1", 1, false);
    CHECK_EQ_INT(broker_publish(b, ops, m, 0), BROKER_PUB_OK);
    CHECK(next_topic(w, NULL, NULL) == NULL);
    CHECK_EQ_INT(broker_deliver_remote(b, m, "g", 1, "fleet/+", 7, 0), BROKER_PUB_OK);
    CHECK_EQ_STR(next_topic(w, NULL, NULL), "fleet/x");
    CHECK_EQ_INT(broker_deliver_remote(b, m, "h", 1, "fleet/+", 7, 0), BROKER_PUB_NO_MATCH);
    msg_unref(m);
    CHECK_EQ_INT(log.published, 2);
    m = mk(b, "$SYS/x", "1", 0, false);
    broker_publish(b, NULL, m, 0);
    msg_unref(m);
    CHECK_EQ_INT(log.published, 2);

    /* Remote: the receiver's ACL decides (dev-a may not read dev-b's subtree). */
    m = mk(b, "devices/dev-b/t", "2", 1, true);
    CHECK_EQ_INT(broker_deliver_remote(b, m, NULL, 0, NULL, 0, 0), BROKER_PUB_OK);
    msg_unref(m);
    CHECK_EQ_INT(log.published, 2);
    CHECK_EQ_STR(next_topic(ops, NULL, NULL), "devices/dev-b/t");
    CHECK(next_topic(a, NULL, NULL) == NULL);
    CHECK_EQ_INT(broker_retained_count(b), 0);
    CHECK_EQ_INT(broker_stats(b)->remote_in, 2);

    CHECK_EQ_INT(broker_unsubscribe(b, ops, "devices/#", 9), 0);
    CHECK_EQ_INT(log.dels, 0);
    broker_detach(b, a, false, 0);
    CHECK_EQ_INT(log.dels, 1);
    CHECK_EQ_STR(log.last, "devices/#");
    broker_detach(b, w, false, 0);
    CHECK_EQ_INT(log.dels, 2);
    broker_free(b);
}

/* Cluster-wide retained: a client's retained set or clear goes to the cluster (never into the
 * local store directly), its ticket is handed back; when the cluster cannot take it the publish
 * is still delivered and says so; what the cluster applies is stored whatever the limits, and
 * charged to the identity that set it; the broker's own retained messages stay local. */
struct retain_log {
    int writes;
    uint64_t next; /* ticket to return; 0 = refuse */
    bool cleared;
};

static uint64_t cl_retain(void *ctx, const struct session *from, const struct msg *m, int64_t now)
{
    struct retain_log *r = ctx;
    r->writes++;
    r->cleared = m->payload_len == 0;
    return r->next;
}

static uint64_t cl_barrier(void *ctx)
{
    return 42;
}

static void test_cluster_retained(void)
{
    struct broker *b = mkbroker(ACL);
    CHECK_EQ_INT(broker_retained_barrier(b), 0); /* single node: nothing to wait for */
    struct retain_log rl = {.next = 7};
    struct broker_cluster hooks = {&rl, NULL, NULL, false, cl_retain, cl_barrier, NULL, NULL, NULL};
    broker_set_cluster(b, &hooks);
    int c1, c2;
    struct session *a = online(b, "dev-a", "a", &c1);
    struct session *ops = online(b, "ops", "ops", &c2);
    CHECK_EQ_INT(broker_subscribe(b, ops, "devices/#", 9, 1, 0, 0), 1);
    uint64_t ticket = 0;
    struct msg *m = mk(b, "devices/dev-a/state", "on", 1, true);
    CHECK_EQ_INT(broker_publish_wait(b, a, m, 0, &ticket), BROKER_PUB_OK);
    CHECK_EQ_INT(ticket, 7);
    CHECK_EQ_INT(rl.writes, 1);
    CHECK_EQ_INT(broker_retained_count(b), 0); /* only what the cluster applies */
    CHECK_EQ_STR(next_topic(ops, NULL, NULL), "devices/dev-a/state"); /* live all the same */
    broker_retained_apply(b, m, "dev-a");
    msg_unref(m);
    CHECK_EQ_INT(broker_retained_count(b), 1);
    rl.next = 0;
    m = mk(b, "devices/dev-a/state", "", 1, true);
    CHECK_EQ_INT(broker_publish_wait(b, a, m, 0, &ticket), BROKER_PUB_NOT_RETAINED);
    CHECK_EQ_INT(ticket, 0);
    CHECK(rl.cleared);
    CHECK_EQ_INT(broker_retained_count(b), 1); /* the refused clear changed nothing */
    broker_retained_apply(b, m, NULL);
    msg_unref(m);
    CHECK_EQ_INT(broker_retained_count(b), 0);
    m = mk(b, "$SYS/broker/x", "1", 0, true);
    broker_publish(b, NULL, m, 0);
    msg_unref(m);
    CHECK_EQ_INT(rl.writes, 2);
    CHECK_EQ_INT(broker_retained_count(b), 1);
    CHECK_EQ_INT(broker_retained_barrier(b), 42);
    broker_detach(b, a, false, 0);
    broker_detach(b, ops, false, 0);
    broker_free(b);
}

static int changed_calls;
static void cl_changed(void *ctx, const struct session *s)
{
    (void)ctx;
    (void)s;
    changed_calls++;
}

/* The cluster hears of every change of a persistent session (its record), and a replayed
 * message reaches only the session it is replayed for. */
static void test_cluster_records_and_replay(void)
{
    struct broker *b = mkbroker(ACL);
    struct broker_cluster hooks = {NULL, NULL, NULL, false, NULL, NULL, NULL, NULL, cl_changed};
    broker_set_cluster(b, &hooks);
    int c1, c2;
    bool present;
    struct session *p =
        broker_attach(b, "ops", NULL, "p", &c1, "p", false, true, 60, 4, &present, 0);
    CHECK(p && changed_calls == 1);
    CHECK(broker_subscribe(b, p, "devices/a/x", 11, 1, 0, 0) == 1);
    CHECK_EQ_INT(changed_calls, 2);
    struct session *o = online(b, "ops", "o", &c2); /* clean: no record */
    CHECK(broker_subscribe(b, o, "devices/a/x", 11, 1, 0, 0) == 1);
    CHECK_EQ_INT(changed_calls, 2);
    struct msg *m = mk(b, "devices/a/x", "r", 1, false);
    CHECK_EQ_INT((int)broker_deliver_replay(b, m, p, 0), 1);
    CHECK(session_queued(p) + session_inflight(p) == 1 &&
          session_queued(o) + session_inflight(o) == 0);
    CHECK_EQ_INT((int)broker_deliver_replay(b, m, NULL, 0), 2);
    msg_unref(m);
    CHECK(session_oldest_msg_id(p) != UINT64_MAX && session_oldest_msg_id(o) != UINT64_MAX);
    broker_detach(b, p, false, 0); /* stays offline: record again */
    CHECK_EQ_INT(changed_calls, 3);
    broker_unsubscribe(b, p, "devices/a/x", 11);
    CHECK_EQ_INT(changed_calls, 4);
    broker_discard(b, p);
    CHECK_EQ_INT(changed_calls, 5);
    broker_free(b);
}

int main(void)
{
    test_isolation();
    test_retained_and_will();
    test_untrust();
    test_revoked_cert();
    test_imported_subscriptions_counted();
    test_retained_bytes();
    test_sessions_per_identity();
    test_connections_per_identity();
    test_publish_rate();
    test_subscriptions_per_identity();
    test_retained_per_identity();
    test_retained_limit();
    test_retained_in_steps();
    test_takeover_and_expiry();
    test_acl_reload_applies();
    test_policy_connect_pairs();
    test_cluster_hooks();
    test_cluster_records_and_replay();
    test_cluster_retained();
    return check_finish("broker_test");
}
